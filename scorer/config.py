"""Configuration: one TOML file, every key with an embedded default, env overrides.

The schema is the dataclasses below; ``load_config`` validates a file against
them and reports unknown keys, wrong types and bad values with the key's path.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import importlib.util
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, get_type_hints

from scorer.allowlist import Allowlist, AllowlistError
from scorer.dns.layer import Nameserver, ambiguous_nameservers, parse_nameservers
from scorer.files import read_error, read_text_file, utf8_text
from scorer.integrations import SCORE_LIMIT, longest_deadline, plugin_timeout
from scorer.names import (
    address_in,
    address_named,
    decimal_in,
    host_port,
    hostname_problem,
    lacks_its_zone,
    non_public_suffix,
    to_ascii,
)
from scorer.policy import NetworkSet, parse_nat64_prefixes, parse_network
from scorer.protocol import parse_ip
from scorer.symbols import SYMBOLS, default_weights, reports_a_failure
from scorer.text import escape_unprintable

DEFAULT_PORT = 11340
ENV_LISTEN = "RDNS_SCORER_LISTEN"
ENV_NAMESERVERS = "RDNS_SCORER_NAMESERVERS"
ENV_TOKEN = "RDNS_SCORER_TOKEN"
ENV_VARIABLES = (ENV_LISTEN, ENV_NAMESERVERS, ENV_TOKEN)

# Clients the checks make no sense for: loopback, RFC 1918, link-local, CGNAT
# (RFC 6598), ULA (RFC 4193) and IPv6 link-local. Mail from these comes from
# inside the site or through a proxy that hides the real client.
DEFAULT_SKIP_NETWORKS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
]


class ConfigError(ValueError):
    """A config problem, phrased for the admin, naming the key."""

    def __str__(self) -> str:
        # Messages quote the file's keys and names raw: an ESC there would drive the
        # admin's terminal, a CR or LF forge a line of the log that reports the error.
        return escape_unprintable(super().__str__())


@dataclass(frozen=True)
class ServerConfig:
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    max_body_bytes: int = 16384
    token: str = ""  # shared secret; when set, clients must send "Authorization: Bearer <token>"
    token_file: str = ""  # or read it from a file (Docker/systemd secrets)
    # Taken too while a rotation replaces them with ``token`` (scorer.auth).
    previous_tokens: list[str] = field(default_factory=list)
    allow_public_without_token: bool = False
    max_in_flight: int = 256
    # Open connections, idle keep-alive ones too (scorer.connections); per worker.
    max_connections: int = 1024
    log_requests: bool = True
    log_format: str = "text"
    workers: int = 1  # processes sharing the port (SO_REUSEPORT); see docs/performance.md
    # With workers > 1: a worker whose event loop sends no heartbeat for this long is
    # killed and replaced (0: never).
    watchdog_seconds: float = 30.0
    event_loop: str = "auto"  # "auto" (uvloop when installed), "uvloop" or "asyncio"

    @property
    def logging_settings(self) -> tuple[str, bool]:
        """What ``configure_logging`` takes: a reload that changes it reconfigures."""
        return self.log_format, self.log_requests


@dataclass(frozen=True)
class DnsConfig:
    nameservers: list[str] = field(default_factory=list)  # empty: /etc/resolv.conf
    timeout: float = 0.5
    request_deadline: float = 0.8
    cache_max_entries: int = 100_000
    cache_min_ttl: float = 5.0
    cache_max_ttl: float = 3600.0
    negative_ttl: int = 300
    max_ptr_names: int = 10
    max_mx_hosts: int = 10
    # Whole replies, keyed on (ip, helo, mail_from, hostname), until the first DNS outcome
    # behind them expires; replies with a DNS failure are never kept.
    reply_cache_max_entries: int = 20_000
    reply_cache_max_ttl: float = 300.0

    @property
    def cache_settings(self) -> tuple[object, ...]:
        """What the DNS cache's outcomes depend on: whom it asks, how long and how many
        it keeps. A reload that changes none of them keeps the DNS layer and its warm
        cache (scorer.app.Service._build); the other keys apply to it as it is."""
        return (
            tuple(self.nameservers),
            self.cache_max_entries,
            self.cache_min_ttl,
            self.cache_max_ttl,
            self.negative_ttl,
        )


@dataclass(frozen=True)
class PolicyConfig:
    skip_networks: list[str] = field(default_factory=lambda: list(DEFAULT_SKIP_NETWORKS))
    local_names: list[str] = field(default_factory=list)
    local_ips: list[str] = field(default_factory=list)
    shadow: bool = False
    shadow_symbols: list[str] = field(default_factory=list)
    # The site's own NAT64 prefixes (RFC 6052 network-specific ones): a client in one is
    # the IPv4 host it carries, as one in 64:ff9b::/96 always is.
    nat64_prefixes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AllowlistConfig:
    ips: list[str] = field(default_factory=list)
    ptr_suffixes: list[str] = field(default_factory=list)
    helo_names: list[str] = field(default_factory=list)
    mail_from_domains: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConfigSource:
    """The config file a Config was read from, as that one read found it: what
    scorer.security's warnings judge. Read again for them, the file could be another by
    then (an editor or config management writing it during a reload): a half-written
    one ended the reload in "unexpected error", a deleted one the start in a traceback.
    """

    path: Path
    server: Mapping[str, Any]  # the [server] table as written, before any override


# Entries named one by one in a warning of the same kind; the rest are counted.
MAX_ENTRIES_WARNED = 5


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    allowlist: AllowlistConfig = field(default_factory=AllowlistConfig)
    weights: dict[str, float] = field(default_factory=default_weights)
    # The [allowlist] entries and list files, read once when the config is loaded:
    # what was validated is what serves (a list file edited in between cannot slip in).
    allowlist_entries: Allowlist = field(default_factory=Allowlist, compare=False, repr=False)
    # What reading the file found to warn about besides the settings themselves (a
    # token file every local user may read, a token written there that is not the one
    # served: scorer.security), set by whoever read it and said with ``warnings``: at
    # start, by `config check`, and at every reload, where an admin who rotated the token
    # in the file while RDNS_SCORER_TOKEN wins was told only "config reloaded".
    source_warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)
    # The file it was read from (load_config), None for the embedded defaults.
    source: ConfigSource | None = field(default=None, compare=False, repr=False)

    # The settings as parsed: each parsed once per Config (frozen, so the parse cannot go
    # stale), where a property parsed them again at each read (validation, the warnings,
    # the pipeline's build), nat64_prefixes with its overlap check pair by pair. Tuples,
    # as a list shared by every reader could be changed under the others.
    @cached_property
    def nameservers(self) -> tuple[Nameserver, ...]:
        return tuple(parse_nameservers(self.dns.nameservers))

    @cached_property
    def skip_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(parse_network(n) for n in self.policy.skip_networks)

    @cached_property
    def nat64_prefixes(self) -> tuple[ipaddress.IPv6Network, ...]:
        return tuple(parse_nat64_prefixes(self.policy.nat64_prefixes))

    def read_allowlist(self) -> Allowlist:
        """Entries from the config and the list files; AllowlistError names the bad one."""
        allowlist = Allowlist()
        sources = {
            "ips": ("ip", self.allowlist.ips),
            "ptr_suffixes": ("ptr", self.allowlist.ptr_suffixes),
            "helo_names": ("helo", self.allowlist.helo_names),
            "mail_from_domains": ("from", self.allowlist.mail_from_domains),
        }
        for key, (kind, values) in sources.items():
            for value in values:
                try:
                    allowlist.add(kind, value, f"[allowlist] {key}")
                except AllowlistError as error:
                    raise AllowlistError(f"{key}: {error}") from None
        for path in self.allowlist.files:
            if not path:  # os.stat("") fails as a missing file, and the error named none
                raise AllowlistError("files: an empty file name")
            allowlist.add_file(path)  # its errors name the file and line
        return allowlist

    @cached_property
    def local_ips(self) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        # As the client is read (scorer.protocol.parse_ip): ::ffff:192.0.2.1 would
        # otherwise never equal the IPv4 client it stands for.
        return frozenset(_local_ip(a) for a in self.policy.local_ips)

    def is_shadowed(self, symbol: str) -> bool:
        return self.policy.shadow or symbol in self.policy.shadow_symbols

    def changes_from(self, old: Config) -> list[str]:
        """What a reload from ``old`` to this config changed, key by key, for its log line:
        an admin who tuned a weight or added an allowlist entry sees it taken (and one who
        edited another file than the service reads sees "no change"). Secrets are named,
        never shown; lists are counted."""
        changes = []
        for section, cls in SECTIONS.items():
            before, after = getattr(old, section), getattr(self, section)
            # As declared (not _field_names' set): the same order at every reload.
            for key in (f.name for f in dataclasses.fields(cls)):
                was, now = getattr(before, key), getattr(after, key)
                if was == now:
                    continue
                if f"[{section}] {key}" in (TOKEN_KEY, PREVIOUS_TOKENS_KEY):
                    changes.append(f"[{section}] {key}")
                elif isinstance(now, list):
                    changes.append(f"[{section}] {key} ({_entries(len(now))}, were {len(was)})")
                else:
                    changes.append(f"[{section}] {key} {_shown(was)} -> {_shown(now)}")
        for name, weight in self.weights.items():
            if old.weights.get(name) != weight:
                changes.append(f"[weights] {name} {old.weights.get(name, 0):g} -> {weight:g}")
        entries, were = self.allowlist_entries, old.allowlist_entries
        if entries != were:
            changes.append(f"allowlist: {_entries(entries.count())} (were {were.count()})")
        return changes

    def warnings(self) -> list[str]:
        """What loads but does not do what it says: a ``*_TEMPFAIL`` symbol that scores
        breaks the promise that mail never pays for our trouble (it fires for every
        message while DNS fails, whatever the sender did; shadowed, it scores nothing),
        and a local name that is no public host name never matches (below). A weight
        beyond SCORE_LIMIT is capped by the plugins. A bonus for
        a ``from`` entry goes to whoever writes the domain in MAIL FROM. A lookup timeout
        the check's deadline comes before never applies. A nameserver that reads two
        ways may not be the one meant. The file's own warnings
        (``source_warnings``) come first."""
        scored_failures = [
            f"[weights] {name} = {weight:g}: every message is scored {weight:+g} while its "
            "lookups fail (a DNS outage or timeout), which says nothing about the sender; "
            "the default is 0"
            for name, weight in self.weights.items()
            if weight != 0 and reports_a_failure(name) and not self.is_shadowed(name)
        ]
        capped_weights = [
            f"[weights] {name} = {weight:g}: the plugins add at most {SCORE_LIMIT:g} either "
            f"way for one symbol (so that a forged reply cannot weigh more): it scores "
            f"{math.copysign(SCORE_LIMIT, weight):+g}"
            for name, weight in self.weights.items()
            if abs(weight) > SCORE_LIMIT
        ]
        forged_bonus = []
        bonus = self.weights["RL_ALLOWLISTED_FROM"]
        if bonus < 0 and not self.is_shadowed("RL_ALLOWLISTED_FROM"):
            forged_bonus.append(
                f"[weights] RL_ALLOWLISTED_FROM = {bonus:g}: anyone may write a listed domain "
                "in MAIL FROM, so every forger of it gets this; vouch with RL_ALLOWLISTED, "
                "which only an ip entry or a forward-confirmed ptr or helo entry earns"
            )
        current = [
            f"[server] previous_tokens (item {number}) is the current token: list the old "
            "one there, or nothing"
            for number, previous in enumerate(self.server.previous_tokens, start=1)
            if previous == self.server.token
        ]
        slow = []
        if self.dns.timeout >= self.dns.request_deadline:
            slow.append(
                f"[dns] timeout = {self.dns.timeout:g} is not below request_deadline = "
                f"{self.dns.request_deadline:g}: a lookup that gets no answer is cut off by "
                "the deadline, never by its timeout, so every check behind a silent resolver "
                "takes the whole deadline and the lookups that follow it in the check (the "
                "addresses of a PTR name or an MX host) are never asked; the defaults are "
                "0.5 and 0.8"
            )
        capped = []
        if self.dns.reply_cache_max_entries > self.dns.cache_max_entries > 0:
            # scorer.pipeline keeps the smaller: cache_max_entries is the one bound on memory.
            capped.append(
                f"[dns] reply_cache_max_entries = {self.dns.reply_cache_max_entries} is above "
                f"cache_max_entries = {self.dns.cache_max_entries}: at most "
                f"{self.dns.cache_max_entries} replies are kept, never more than DNS answers"
            )
        if self.server.max_connections < self.server.max_in_flight:
            # Each check in flight holds its connection (scorer.connections).
            capped.append(
                f"[server] max_connections = {self.server.max_connections} is below "
                f"max_in_flight = {self.server.max_in_flight}: at most "
                f"{self.server.max_connections} checks run at once, and past that many "
                "connections a new one is refused before its check is read"
            )
        return [
            *self.source_warnings,
            *scored_failures,
            *capped_weights,
            *forged_bonus,
            *current,
            *slow,
            *capped,
            *ambiguous_nameservers(self.dns.nameservers),
            *self._unmatched_local_names(),
            *self._listen_overridden(),
            *self._behind_nat64(),
            *self._allowlisted_but_skipped(),
        ]

    def _allowlisted_but_skipped(self) -> list[str]:
        """An allowlist ip entry inside one of skip_networks never applies: a skipped
        client gets RL_SKIPPED_LOCAL before the allowlist is looked at (scorer.pipeline),
        so an RL_ALLOWLISTED weight set for it went unused without a word."""
        skipped = NetworkSet(self.skip_networks)
        warnings = []
        unused = 0
        for entry in self.allowlist_entries.ip_networks.networks():
            # One holding the whole entry, not the most specific holding its first
            # address: with 10.1.0.0/24 beside 10.0.0.0/8, that is the /24, narrower
            # than an entry 10.1.0.0/16 that the /8 still skips whole.
            network = skipped.most_specific(entry.network_address, entry.prefixlen)
            if network is None:
                continue
            unused += 1
            if unused <= MAX_ENTRIES_WARNED:
                warnings.append(
                    f"[allowlist] ip entry {entry} is inside [policy] skip_networks "
                    f"{network}: its clients are skipped (RL_SKIPPED_LOCAL) before the "
                    "allowlist is looked at, so it never applies"
                )
        if unused > MAX_ENTRIES_WARNED:
            # A whole list of them (an allowlist file of the site's own ranges) made a
            # warning per line, on every config check and reload: thousands of lines.
            more = unused - MAX_ENTRIES_WARNED
            entries, apply = ("entry is", "applies") if more == 1 else ("entries are", "apply")
            warnings.append(
                f"[allowlist] {more} more ip {entries} inside [policy] skip_networks, and "
                f"never {apply} either"
            )
        return warnings

    def _behind_nat64(self) -> list[str]:
        """An IPv6 skip_networks or allowlist ip entry inside one of nat64_prefixes
        matches no client: those are read as the IPv4 hosts they carry
        (policy.nat64_client), and one written to skip the translator's clients when
        they scored RL_PTR_MISSING would stop doing so without a word."""
        prefixes = self.nat64_prefixes
        entries = [
            *(("[policy] skip_networks", n) for n in self.skip_networks if n.version == 6),
            *(
                ("[allowlist] ip entry", n)
                for n in self.allowlist_entries.ip_networks.networks()
                if n.version == 6
            ),
        ]
        return [
            f"{where} {network} is inside [policy] nat64_prefixes {prefix}, whose clients "
            "are read as the IPv4 hosts they carry: it matches none; write their IPv4 "
            "addresses"
            for where, network in entries
            for prefix in prefixes
            if network.subnet_of(prefix)
        ]

    def _listen_overridden(self) -> list[str]:
        """A ``listen`` written in the file that the variable or the flag replaced: the
        Docker image sets RDNS_SCORER_LISTEN, and an admin's [server] listen in a
        mounted config was passed over without a word."""
        source = self.source
        written = None if source is None else source.server.get("listen")
        if source is None or not isinstance(written, str) or written == self.server.listen:
            return []
        return [
            f"[server] listen {written!r} in {source.path} is not used: {ENV_LISTEN} or "
            f"--listen sets {self.server.listen!r}"
        ]

    def _unmatched_local_names(self) -> list[str]:
        """A HELO under no public suffix (``mail``, ``mx.example.org``, ``host.lan``) is
        RL_HELO_NOT_FQDN, never RL_HELO_FORGED_LOCAL (scorer.checks.helo: only what is ours
        alone counts), so such an entry changes nothing; `config check` said "OK"."""
        warnings = []
        for entry in self.policy.local_names:
            suffix = non_public_suffix(_host_name(entry))
            if suffix is not None:
                warnings.append(
                    f"[policy] local_names {entry!r}: not a public host name ({suffix}), so a "
                    "greeting with it is never judged a forgery of ours; list the public "
                    "names your mail servers greet with"
                )
        return warnings

    def reload_warnings(self, started: ServerConfig, previous: Config) -> list[str]:
        """What a reload to this config warns about, for a service that started with
        ``started`` and ran ``previous`` until now: the keys read only at start (the
        socket, the processes, the event loop) that changed, and a raised
        ``max_body_bytes``, which aiohttp keeps as it started; a token no longer taken; a
        request_deadline the installed plugins' timeouts no longer cover; then
        ``warnings``. A reload that changes them "works" and logs so, while the service
        keeps the old value (or, for the token, refuses every plugin not yet told; for the
        deadline, is given up on by them): said, or an admin would take the log's word."""
        before = previous.server
        waiting = [
            key for key in RESTART_KEYS if getattr(self.server, key) != getattr(started, key)
        ]
        if self.server.max_body_bytes > started.max_body_bytes:  # a lower one applies now
            waiting.append("max_body_bytes")
        delayed = [
            f"[server] {key} {_shown(getattr(self.server, key))} applies after a restart; "
            f"{_shown(getattr(started, key))} until then"
            for key in waiting
        ]
        if not self.server.token and before.token:
            delayed.append(
                "[server] token removed: checks need no token now, and POST /v1/reload is "
                "refused (send SIGHUP)"
            )
        elif before.token not in ("", self.server.token, *self.server.previous_tokens):
            delayed.append(
                "[server] token changed: a plugin still sending the old one is refused (401) "
                "and fails open, its mail unscored, until it has the new one; keep the old "
                "one in previous_tokens while they change (docs/security.md, Rotating the "
                "token)"
            )
        deadline, was = self.dns.request_deadline, previous.dns.request_deadline
        if plugin_timeout(deadline) > plugin_timeout(was):
            # The installers wrote the plugins' timeout from the old deadline (or left
            # their 1 s default): a check now taking longer is given up on, unscored.
            wanted = plugin_timeout(deadline)
            # rspamd install writes at most 7.5 s (under rspamd's task_timeout): past it no
            # install helps rspamd, and "which write 8.2 s" was not so. Imported here: the
            # rspamd integration imports this module.
            from scorer.integrations.rspamd import MAX_TIMEOUT

            capped = min(wanted, MAX_TIMEOUT)
            written = (
                f"{wanted:g} s"
                if capped == wanted
                else f"{wanted:g} s for SpamAssassin but at most {capped:g} s for rspamd, "
                f"which a request_deadline up to {longest_deadline(capped, deadline):g} s fits"
            )
            delayed.append(
                f"[dns] request_deadline {was:g} -> {deadline:g}: plugins installed for the "
                f"old one wait {plugin_timeout(was):g} s and give up on a check that takes "
                f"longer (it fails open, unscored): run `rdns-scorer rspamd install --config "
                f"FILE` (and `spamassassin install --config FILE`) again, which write {written}; "
                "`rdns-scorer rspamd check` says what rspamd has"
            )
        return [*delayed, *self.warnings()]

    @cached_property
    def local_names(self) -> frozenset[str]:
        return frozenset(_host_name(n) for n in self.policy.local_names)


def _local_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """One of [policy] local_ips: an address of the MX's own, which a HELO literal is
    compared with (a network would make every address in it "ours")."""
    try:
        return parse_ip(text)
    except ValueError:
        hint = ": addresses only, not networks; list each of yours" if "/" in text else ""
        raise ValueError(f"{text!r} is not an IP address{hint}") from None


# Read once, when serve starts (docs/configuration.md): a reload cannot apply them.
RESTART_KEYS = ("listen", "workers", "event_loop")


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _host_name(value: str) -> str:
    """The A-label form a HELO is compared in (scorer.checks.helo); ValueError if
    ``value`` is no hostname, which would never match one."""
    name = to_ascii(value.strip())
    if name is None:
        raise ValueError(f"{value!r} is not valid IDNA")
    if address_named(name) is not None:
        # A HELO that is an address is judged as one (RL_HELO_BARE_IP), leading zeros and
        # all, and so is a literal (RFC 5321 section 4.1.3, scorer.checks.helo): never as
        # a name.
        raise ValueError(f"{value!r} is an address, not a hostname: list it in local_ips")
    problem = hostname_problem(name)
    if problem is not None:
        raise ValueError(f"{value!r} is not a hostname: {problem}")
    return name


SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "dns": DnsConfig,
    "policy": PolicyConfig,
    "allowlist": AllowlistConfig,
}


def _type_name(expected: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(
        expected, "a list of strings"
    )


# No setting means anything beyond this; bigger numbers are typos (or hostile) and would
# overflow the float arithmetic of timers and TTLs.
MAX_NUMBER = 2**53
MAX_WORKERS = 256  # [server] workers and serve --workers; more is a typo, not a box
MIN_WATCHDOG_SECONDS = 3.0  # a few missed heartbeats (one a second), not one late timer
TOKEN_KEY = "[server] token"  # the secret: no error shows its value
PREVIOUS_TOKENS_KEY = "[server] previous_tokens"  # secrets too


def _check_value(path: str, expected: Any, value: Any) -> Any:
    """Return ``value`` coerced to the schema type, or raise ConfigError naming ``path``."""
    if expected in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
        # nan and inf are TOML floats too: nan breaks the loop's timer order, inf weights
        # make replies that are not JSON.
        if abs(value) > MAX_NUMBER or not math.isfinite(value):  # abs first: 10**400 is an int
            raise ConfigError(f"{path}: expected a finite number of at most 2^53, got {value!r}")
        if expected is float:
            return float(value)
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is bool and isinstance(value, bool):
        return value
    if expected is str and isinstance(value, str):
        return value
    if expected == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    # A token written unquoted (token = 1234...) is the secret all the same, and this
    # error goes to the terminal and the journal: its type only.
    secret = path in (TOKEN_KEY, PREVIOUS_TOKENS_KEY)
    got = f"{type(value).__name__} (not shown)" if secret else as_written(value)
    raise ConfigError(f"{path}: expected {_type_name(expected)}, got {got}")


def as_written(value: object) -> str:
    """A value of the file as TOML spells it (``true``, ``[1, "a"]``, ``{"a" = 1}``,
    ``1979-05-27``), not as Python does (``True``, ``{'a': 1}``, ``datetime.date(...)``):
    the admin looks for it in the file. A text keeps its quotes, as the other messages
    quote one (a TOML literal string)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, datetime.date | datetime.time):  # a datetime is a date too
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan: TOML's spelling, not JSON's Infinity, NaN
    # A date or a time inside a list or table (no JSON type) is shown as its text.
    return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", " = "))


def _section(name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"[{name}]: expected a table")
    hints = get_type_hints(cls)
    known = _field_names(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"[{name}] {key}: unknown key ({_did_you_mean(key, known)}"
                f"known: {', '.join(sorted(known))})"
            )
        kwargs[key] = _check_value(f"[{name}] {key}", hints[key], value)
    return cls(**kwargs)


def _not_weighable(name: str) -> str:
    """Why the service has no weight for ``name``."""
    if name in SYMBOLS:  # the plugin family: added by the plugins, never by the service
        return "added by the rspamd/SpamAssassin plugin itself: set its score there"
    # `rdns-scorer symbols` lists them wherever it is installed; docs/ is the checkout's.
    guess = _did_you_mean(name.upper(), default_weights())
    return f"unknown symbol ({guess}`rdns-scorer symbols` lists them)"


def _did_you_mean(written: str, known: Iterable[str]) -> str:
    """ "did you mean X? " for the one of ``known`` closest to a typo ``written``, or ""."""
    close = difflib.get_close_matches(written, list(known), n=1)
    return f"did you mean {close[0]}? " if close else ""


def _weights(values: Any) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise ConfigError("[weights]: expected a table of SYMBOL = number")
    weights = default_weights()
    for key, value in values.items():
        if key not in weights:
            raise ConfigError(f"[weights] {key}: {_not_weighable(key)}")
        weights[key] = _check_value(f"[weights] {key}", float, value)
    return weights


# A check body is a few hundred bytes, but the SMTP client writes most of it: the rspamd
# plugin cuts each field to 1,024 octets (MAX_FIELD_CHARS), so its largest body, every
# field at the cut, is ~5.2 KB of msgpack. A limit below that let a client padding its
# HELO and MAIL FROM (2 KB between them refused a 2 KiB limit) get a 413, which the
# plugin fails open on: that message had no check at all, RL_PTR_MISSING included.
# The SpamAssassin plugin's JSON, where a control character takes six bytes, is cut to
# fit this (MAX_BODY in RdnsScorer.pm).
# A resolver on loopback answers in well under a millisecond, but a recursive miss
# takes tens of ms: a DNS time below 50 ms fails them all.
MIN_BODY_BYTES = 8192
# A check body stays under ~25 KB even at every field's cap (1,024 characters of up to 4
# bytes); 1 MiB (aiohttp's own default) is room enough, and max_in_flight bodies of it
# are 256 MiB held at once: a larger limit is a typo that lets clients hold gigabytes.
MAX_BODY_BYTES = 1024 * 1024
MAX_REQUEST_DEADLINE = 8.0
MIN_DNS_SECONDS = 0.05

# RFC 6750 section 2.1 b64token: what "Authorization: Bearer" may carry. It also keeps
# the token clear of every quoting rule of the configs it is copied into (rspamd's UCL
# expands "$VAR" even inside quotes; SpamAssassin's .cf; HTTP header folding).
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# The longest token: "Authorization: Bearer TOKEN" must fit in one header line of the
# service's (scorer.app.MAX_HEADER_LINE_BYTES), or every request with it is aiohttp's
# plain 400 and every message fails open. `openssl rand -hex 32` makes 64 characters.
MAX_TOKEN_CHARS = 4000


def _check_token(token: str, where: str) -> None:
    """ConfigError naming ``where`` the token came from, if it is no bearer token."""
    if token and not BEARER_TOKEN.fullmatch(token):
        # Never echo the secret itself.
        padded = BEARER_TOKEN.fullmatch(token.strip()) is not None
        # "Bearer TOKEN", the header's value copied whole: the service and the plugins
        # write the scheme themselves.
        scheme, _, rest = token.strip().partition(" ")
        prefixed = scheme.lower() == "bearer" and BEARER_TOKEN.fullmatch(rest.strip()) is not None
        hint = (
            "the token without its 'Bearer ' (the scheme is added when it is sent); "
            if prefixed
            else "spaces or a line break around it; "
            if padded
            else ""
        )
        raise ConfigError(
            f"{where}: {hint}only letters, digits and -._~+/ (then = padding) may be used "
            "(RFC 6750 section 2.1); e.g. `openssl rand -hex 32`"
        )
    if len(token) > MAX_TOKEN_CHARS:
        raise ConfigError(
            f"{where}: longer than {MAX_TOKEN_CHARS} characters, which no request header "
            "of the service holds; e.g. `openssl rand -hex 32`"
        )


def _validate(config: Config) -> None:
    """Semantic checks beyond types, so a bad value fails at load time, not per message."""
    checks = [
        ("[dns] nameservers", lambda: config.nameservers),
        ("[policy] skip_networks", lambda: config.skip_networks),
        ("[policy] nat64_prefixes", lambda: config.nat64_prefixes),
        ("[policy] local_ips", lambda: config.local_ips),
        ("[policy] local_names", lambda: config.local_names),
        ("[server] listen", lambda: parse_listen(config.server.listen)),
    ]
    for path, check in checks:
        try:
            check()
        except ValueError as error:
            raise ConfigError(f"{path}: {error}") from None
    _check_token(config.server.token, TOKEN_KEY)
    for number, previous in enumerate(config.server.previous_tokens, start=1):
        if not previous:
            raise ConfigError(f"{PREVIOUS_TOKENS_KEY}: item {number} is empty")
        _check_token(previous, f"{PREVIOUS_TOKENS_KEY} (item {number})")
    # Floors: below these the service runs but is useless (every check a 413, or every
    # lookup a 0-weight tempfail), which nothing would report.
    at_least = {
        "[dns] timeout": (config.dns.timeout, MIN_DNS_SECONDS),
        "[dns] request_deadline": (config.dns.request_deadline, MIN_DNS_SECONDS),
        "[server] max_body_bytes": (config.server.max_body_bytes, MIN_BODY_BYTES),
        "[dns] max_ptr_names": (config.dns.max_ptr_names, 1),
        "[dns] max_mx_hosts": (config.dns.max_mx_hosts, 1),
        "[server] max_in_flight": (config.server.max_in_flight, 1),
        "[server] max_connections": (config.server.max_connections, 1),
        "[server] workers": (config.server.workers, 1),
    }
    why = {
        "[server] max_body_bytes": (
            " (the rspamd plugin's largest check, every field at 1,024 octets, is ~5.2 KB: "
            "a client padding its HELO would get a 413, and its message no check)"
        ),
    }
    for path, (value, floor) in at_least.items():
        if value < floor:
            reason = why.get(path, "")
            raise ConfigError(f"{path}: must be at least {floor:g}, got {value:g}{reason}")
    # Sanity ceilings: beyond these a value is a typo that would hang checks or fork-bomb.
    at_most = {
        "[dns] timeout": (config.dns.timeout, 60),
        # Stopping waits STOP_GRACE_SECONDS (10) for the checks in flight, and the
        # systemd unit 15 s: a longer deadline would cut checks off at every stop.
        "[dns] request_deadline": (config.dns.request_deadline, MAX_REQUEST_DEADLINE),
        "[server] workers": (config.server.workers, MAX_WORKERS),
        "[server] max_body_bytes": (config.server.max_body_bytes, MAX_BODY_BYTES),
        "[server] watchdog_seconds": (config.server.watchdog_seconds, 3600),
    }
    for path, (value, ceiling) in at_most.items():
        if value > ceiling:
            raise ConfigError(f"{path}: must be at most {ceiling:.15g}, got {value:.15g}")
    non_negative = {
        "[server] watchdog_seconds": config.server.watchdog_seconds,
        "[dns] cache_max_entries": config.dns.cache_max_entries,
        "[dns] cache_min_ttl": config.dns.cache_min_ttl,
        "[dns] cache_max_ttl": config.dns.cache_max_ttl,
        "[dns] negative_ttl": config.dns.negative_ttl,
        "[dns] reply_cache_max_entries": config.dns.reply_cache_max_entries,
        "[dns] reply_cache_max_ttl": config.dns.reply_cache_max_ttl,
    }
    for path, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{path}: must be 0 or more, got {value}")
    if 0 < config.server.watchdog_seconds < MIN_WATCHDOG_SECONDS:
        raise ConfigError(
            f"[server] watchdog_seconds: 0 (off) or at least {MIN_WATCHDOG_SECONDS:g} "
            f"(workers beat once a second), got {config.server.watchdog_seconds:g}"
        )
    if config.dns.cache_min_ttl > config.dns.cache_max_ttl:
        raise ConfigError(
            f"[dns] cache_min_ttl: {config.dns.cache_min_ttl:g} is above "
            f"cache_max_ttl ({config.dns.cache_max_ttl:g})"
        )
    if config.server.event_loop not in ("auto", "uvloop", "asyncio"):
        raise ConfigError(
            "[server] event_loop: must be 'auto', 'uvloop' or 'asyncio', "
            f"got {config.server.event_loop!r}"
        )
    # Here, not only when serve makes its loop: `config check` must refuse it too.
    if config.server.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigError("[server] event_loop: uvloop is not installed (use 'auto')")
    if config.server.log_format not in ("text", "json"):
        raise ConfigError(
            f"[server] log_format: must be 'text' or 'json', got {config.server.log_format!r}"
        )
    unknown = sorted(set(config.policy.shadow_symbols) - set(config.weights))
    if unknown:
        reasons = "; ".join(f"{name}: {_not_weighable(name)}" for name in unknown)
        raise ConfigError(f"[policy] shadow_symbols: {reasons}")
    # Shadow mode shows what a symbol would score; at weight 0 it would show nothing,
    # and the symbol would go out as an ordinary 0-score one, which a SpamAssassin
    # admin's own "score RL_X n" then turns into a real score.
    unweighted = sorted(n for n in config.policy.shadow_symbols if config.weights[n] == 0)
    if unweighted:
        raise ConfigError(
            f"[policy] shadow_symbols: {', '.join(unweighted)} weighs 0 in [weights]: "
            "shadow mode shows what a symbol would score; give it the weight to watch"
        )


# One to four parts, each decimal, octal (a leading 0) or hexadecimal (0x): what glibc's
# inet_aton, and so getaddrinfo, reads as an IPv4 address before any host name.
_INET_ATON_SHORTHAND = re.compile(
    r"(?:(?:0[xX][0-9a-fA-F]+|[0-9]+)\.){0,3}(?:0[xX][0-9a-fA-F]+|[0-9]+)"
)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` into (host, port)."""
    host, sep, port_text = text.rpartition(":")
    whole = address_in(text)
    if whole is not None and whole.version == 6 and address_in(host) is None:
        # "::1" or "2001:db8::": an address and no port. Split at the last colon, it
        # was a host ":" (or "2001:db8:") that no message explained.
        raise ValueError(
            f"an IPv6 address takes brackets and a port: write '[{text}]:11340' "
            f"(or another port), got {text!r}"
        )
    port = decimal_in(port_text, 1, 65535)
    if not sep or port is None:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        # One pair around the host; strip("[]") also took "[::1" or "127.0.0.1]".
        host = host[1:-1]
    if "[" in host or "]" in host:
        # "[::1:11340", "[[::1]]:11340": refused as no host name, naming only a part.
        raise ValueError(
            f"unbalanced or doubled brackets: one pair around an IPv6 address, "
            f"'[V6]:PORT' (e.g. '[::1]:11340'), got {text!r}"
        )
    host = host or "127.0.0.1"
    address = address_in(host)
    if address is not None and address.version == 6 and not bracketed:
        # "2001:db8::1:25" is an address without a port as well as ::1 and port 25:
        # brackets say which (RFC 3986 section 3.2.2), as in every URL.
        raise ValueError(f"an IPv6 address takes brackets: write '[{host}]:{port}', got {text!r}")
    if lacks_its_zone(address):
        # bind() refuses it (EINVAL: serve died in a traceback, after config check passed).
        raise ValueError(f"a link-local IPv6 address needs its zone: write '[{host}%IFACE]:{port}'")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 is 127.0.0.1 (RFC 4291 section 2.5.5.2), as is_loopback reads
        # it; an IPv6 socket, IPv6-only as asyncio binds one, cannot bind it (EINVAL).
        host = str(address.ipv4_mapped)
    if address is None and host.endswith(".") and host != ".":
        # "mail.example.org.": the root label, as a zone file writes it. getaddrinfo
        # reads the name without it (glibc's hosts file knows "localhost", not "localhost.").
        host = host[:-1]
        if address_in(host) is not None:
            # "127.0.0.1.": an address, which takes no root label (getaddrinfo fails on
            # it); "give all four parts" said of one that has them was no help.
            raise ValueError(f"an address takes no final dot: write '{host}:{port}', got {text!r}")
    if address is None and (
        host.rpartition(".")[2].isdecimal() or _INET_ATON_SHORTHAND.fullmatch(host)
    ):
        # "127.1", "0x7f.1", "0x7f000001": inet_aton's shorthands, which bind reads as
        # 127.0.0.1 and ipaddress does not; no host name ends in a numeric label (RFC
        # 3696 section 2), and getaddrinfo reads one of hexadecimal parts as an address.
        raise ValueError(
            f"{host!r} is not an IPv4 address as written here: give all four parts in "
            "decimal (e.g. '127.0.0.1')"
        )
    problem = None if address is not None else hostname_problem(host.lower())
    if problem is not None:
        # "mail..example" would pass this far and end serve in an IDNA traceback.
        raise ValueError(f"{host!r} is neither an address nor a host name ({problem})")
    return host, port


def local_address(listen: str) -> str:
    """Where a client on this host reaches a service listening on ``listen``:
    ``HOST:PORT`` (``[V6]:PORT``), the loopback of a wildcard bind's family."""
    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return host_port(host, port)


def _outside_any_section(key: str) -> str:
    """A key above the first [section] line: TOML puts it in no section (``listen = ...``
    written first, where "[listen]: unknown section" told the admin nothing)."""
    homes = [f"[{name}]" for name, cls in SECTIONS.items() if key in _field_names(cls)]
    if key in SYMBOLS:
        homes.append("[weights]")
    where = (
        f"it belongs under {' or '.join(homes)}: move it below that line"
        if homes
        else f"keys go below a section line: {', '.join(f'[{n}]' for n in [*SECTIONS, 'weights'])}"
    )
    return f"{key}: a key outside any section ({where})"


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    kwargs: dict[str, Any] = {}
    for name, values in data.items():
        if name == "weights":
            kwargs["weights"] = _weights(values)
        elif name in SECTIONS:
            kwargs[name] = _section(name, SECTIONS[name], values)
        elif not isinstance(values, Mapping):
            raise ConfigError(_outside_any_section(name))
        else:
            sections = [*SECTIONS, "weights"]
            raise ConfigError(
                f"[{name}]: unknown section ({_did_you_mean(name, sections)}"
                f"known: {', '.join(sections)})"
            )
    config = Config(**kwargs)
    try:
        config = dataclasses.replace(config, allowlist_entries=config.read_allowlist())
    except ValueError as error:
        raise ConfigError(f"[allowlist] {error}") from None
    _validate(config)
    return config


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML file at ``path`` (``read_toml_text``)."""
    return read_toml_text(path)[1]


def read_toml_text(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The text of the TOML file at ``path`` and what it says, read by ``utf8_text``: past
    the byte-order mark Notepad and other editors start a UTF-8 file with, which TOML does
    not allow ("Invalid statement" at line 1, column 1), and with lines ending in a lone
    CR (old Mac files) as Python's text files read them (TOML takes LF and CRLF only).
    Raises OSError, or ValueError ("PATH: invalid TOML: why", "PATH:LINE: not UTF-8 ...")."""
    text = utf8_text(path, Path(path).read_bytes())  # its ValueError names the line
    try:
        return text, tomllib.loads(text)
    except RecursionError:  # tomllib recurses per nesting level: [[[[...]]]] 2,000 deep
        why = "arrays or tables nested too deeply"
    except ValueError as error:  # bad TOML, a 5,000-digit int
        # The int's own message ends in advice for programmers, not for the admin.
        why = str(error).partition("; use sys.set_int_max_str_digits()")[0]
    raise ValueError(f"{path}: invalid TOML: {why}")


def _where(path: str | Path, text: str, error: ConfigError) -> str:
    """``path`` and, where it can be found, the line of the key ``error`` names ("[dns]
    timeout: ..."), of the key written above every section line ("listen: a key outside
    any section"), or of the header of a section it names ("[sever]: unknown section"):
    tomllib keeps no positions, so the text is searched for the key under its table's
    header, outside multi-line strings; a key written another way (dotted, in an inline
    table), or found more than once, gets the file's name alone. After a failed reload
    the journal otherwise named no file."""
    message = str(error)
    named = re.match(r"\[(\w+)\] ([\w-]+)", message)
    header_named = re.match(r"\[([\w-]+)\]: ", message)
    # Review: these two named no line, where the docs say a config error names the line.
    top_level = re.match(r"([\w-]+): a key outside any section", message)
    table: str | None
    key: str | None
    if named is not None:
        table, key = named.groups()
    elif header_named is not None:
        table, key = header_named.group(1), None
    elif top_level is not None:
        table, key = None, top_level.group(1)
    else:
        return str(path)
    key_line = (
        None
        if key is None
        else re.compile(rf"""\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    )
    # Above the first section line, keys are in no table (table None).
    in_table, in_string, found = table is None, False, []
    # "\n" alone: utf8_text made every line end one, and str.splitlines also splits at
    # U+2028 and others, which TOML allows in comments and strings.
    for number, line in enumerate(text.split("\n"), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:  # inside a multi-line string: no header or key, whatever it reads
            in_string = quotes % 2 == 0
            continue
        header = re.match(r"\s*\[\s*([\w-]+)\s*\]\s*(?:#.*)?$", line)
        if header is not None:
            in_table = header.group(1) == table
            if in_table and key_line is None:
                found.append(number)
        elif re.match(r"\s*\[", line):  # [a.b], [[x]], ["quoted"]: no table of ours
            in_table = False
        elif in_table and key_line is not None and key_line.match(line):
            found.append(number)
        in_string = quotes % 2 == 1
    # The one line that writes it, or none named rather than a wrong one.
    return f"{path}:{found[0]}" if len(found) == 1 else str(path)


def load_config(
    path: str | Path | None, environ: Mapping[str, str] = os.environ, *, token: bool = True
) -> Config:
    """Read ``path`` (or nothing: all defaults), then apply environment overrides; with
    ``token=False`` the token is not looked for (a command that serves nobody: the
    token file is the service user's, often unreadable to the admin running it)."""
    # As an unknown key is: RDNS_SCORER_NAMESERVER (the flag is --nameserver) or a
    # Docker-style RDNS_SCORER_TOKEN_FILE would otherwise be ignored without a word.
    unknown = sorted(n for n in environ if n.startswith("RDNS_SCORER_") and n not in ENV_VARIABLES)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown variable (known: {', '.join(ENV_VARIABLES)})")
    data: dict[str, Any] = {}
    source: ConfigSource | None = None
    if path is not None:
        if not str(path):  # `--config "$UNSET"`: Path("") is the working directory
            raise ConfigError("the config file name is empty")
        try:
            text, data = read_toml_text(path)
        except OSError as error:
            raise ConfigError(read_error(path, error)) from None
        except ValueError as error:
            raise ConfigError(str(error)) from None
        written = data.get("server")
        source = ConfigSource(Path(path), dict(written) if isinstance(written, dict) else {})
        _anchor_paths(data, Path(path).parent)
        try:
            config = dataclasses.replace(config_from_mapping(data), source=source)
        except ConfigError as error:
            raise ConfigError(f"{_where(path, text, error)}: {error}") from None
    else:
        config = config_from_mapping(data)
    if token:
        try:
            config = _with_secret(config, environ.get(ENV_TOKEN))
            if config.server.previous_tokens and not config.server.token:
                # They are taken beside the current token: alone they would be taken by
                # nobody, as a service without a token asks for none.
                raise ConfigError(
                    f"{PREVIOUS_TOKENS_KEY}: set only beside a current token ([server] "
                    f"token, token_file or {ENV_TOKEN})"
                )
        except ConfigError as error:
            # Named by file and line as the file's other errors are (review: these named
            # no file); not one of the environment's.
            if path is None or not str(error).startswith("[server] "):
                raise
            raise ConfigError(f"{_where(path, text, error)}: {error}") from None
    return with_overrides(
        config,
        listen=environ.get(ENV_LISTEN) or None,
        nameservers=_env_nameservers(environ),
        names=(ENV_LISTEN, ENV_NAMESERVERS),
    )


def _env_nameservers(environ: Mapping[str, str]) -> list[str] | None:
    """RDNS_SCORER_NAMESERVERS's resolvers; None when it names none (unset, empty, or
    commas alone, as "${NS1},${NS2}" with both unset is)."""
    listed = (n.strip() for n in environ.get(ENV_NAMESERVERS, "").split(","))
    return [n for n in listed if n] or None


def applied_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The RDNS_SCORER_* variables ``load_config`` applies from ``environ``: one that is
    set but names nothing (empty; RDNS_SCORER_NAMESERVERS of commas alone) is not."""
    return [
        name
        for name in ENV_VARIABLES
        if (_env_nameservers(environ) if name == ENV_NAMESERVERS else environ.get(name))
    ]


def _anchor_paths(data: dict[str, Any], base: Path) -> None:
    """Relative file names in the config are relative to the config file, not to the
    working directory: systemd starts the service in /, where "allow.txt" that passed
    a `config check` run in /etc/rdns-scorer is not found."""
    allowlist, server = data.get("allowlist"), data.get("server")
    if isinstance(allowlist, dict) and isinstance(allowlist.get("files"), list):
        allowlist["files"] = [
            str(base / name)
            if isinstance(name, str) and name and not Path(name).is_absolute()
            else name
            for name in allowlist["files"]
        ]
    if isinstance(server, dict):
        token_file = server.get("token_file")
        if isinstance(token_file, str) and token_file and not Path(token_file).is_absolute():
            server["token_file"] = str(base / token_file)


def _with_secret(config: Config, env_token: str | None) -> Config:
    """The token from the environment, else from ``token_file``, else from the file itself."""
    token, where = env_token, ENV_TOKEN
    if not token and config.server.token_file:
        path = config.server.token_file
        where = f"[server] token_file ({path})"
        try:
            # A byte-order mark (Notepad) is no part of the token, as it is none of the
            # config file's (read_toml) or a list file's: read_text_file drops it.
            token = read_text_file(path).strip()
        except ValueError as error:
            raise ConfigError(f"[server] token_file: {error}") from None
        if not token:
            raise ConfigError(f"[server] token_file: {path} is empty")
    if not token:
        return config
    _check_token(token, where)  # named where it came from: no "token" key was written
    return dataclasses.replace(config, server=dataclasses.replace(config.server, token=token))


def with_overrides(
    config: Config,
    listen: str | None = None,
    nameservers: list[str] | None = None,
    names: tuple[str, str] = ("--listen", "--nameserver"),
) -> Config:
    """Apply command-line (or, with ``names`` of the variables, environment) overrides,
    validated like the file; an error names the flag or variable, not a key."""
    try:
        if listen is not None:
            parse_listen(listen)
    except ValueError as error:
        raise ConfigError(f"{names[0]}: {error}") from None
    try:
        parse_nameservers(nameservers or ())
    except ValueError as error:
        raise ConfigError(f"{names[1]}: {error}") from None
    if listen is not None:
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, listen=listen)
        )
    if nameservers is not None:
        config = dataclasses.replace(
            config, dns=dataclasses.replace(config.dns, nameservers=list(nameservers))
        )
    _validate(config)
    return config
