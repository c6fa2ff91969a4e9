"""The one DNS layer: typed lookups with a cache, coalescing and a per-request deadline.

Checks never call DNS; the lookup stage (``scorer.lookups``) asks this layer for the
facts a request needs, and the pipeline hands the outcomes (``Answer``/``NotFound``/
``TempFail``) to pure check functions. The
layer knows nothing about scores.

Queries go out over ``scorer.dns.transport`` (persistent UDP sockets, TCP on
truncation) and are decoded by ``scorer.dns.wire``; dnspython is only used for
reading /etc/resolv.conf and for the odd name that needs IDNA or escapes.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dns.rdatatype

from scorer.dns.cache import TtlCache, question_key
from scorer.dns.outcomes import (
    Answer,
    FailureKind,
    Lookup,
    MxRecord,
    NotFound,
    NotFoundKind,
    Outcome,
    TempFail,
    describe,
    network_failure,
)
from scorer.dns.transport import UdpTransport
from scorer.dns.wire import NameError_, encode_name, relative_name, reverse_name
from scorer.names import (
    REVERSE_TREES,
    IPAddress,
    decimal_in,
    host_port,
    is_multicast_or_broadcast,
    lacks_its_zone,
    public_suffix_list,
)

# (rdtype, result, seconds, whether a failure repeats the question's last one)
QueryObserver = Callable[[str, str, float, bool], None]
log = logging.getLogger(__name__)

_RESULT_NAMES = {
    FailureKind.TIMEOUT: "timeout",
    FailureKind.SERVFAIL: "servfail",
}


# Every value result_name gives, and the record types the service asks (SOA: /readyz).
RESULT_NAMES = ("answer", *(str(kind) for kind in NotFoundKind), "timeout", "servfail", "other")
QUERY_TYPES = ("PTR", "A", "AAAA", "MX", "SOA")


def result_name(outcome: Outcome) -> str:
    """answer / nxdomain / nodata / timeout / servfail / other, for metrics and logs."""
    if isinstance(outcome, Answer):
        return "answer"
    if isinstance(outcome, NotFound):
        return str(outcome.kind)
    return _RESULT_NAMES.get(outcome.kind, "other")


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return host_port(self.host, self.port)

    @property
    def destination(self) -> tuple[IPAddress, int]:
        """Where the transport's queries to it go, however its address is spelled
        (``2001:DB8::1``, ``2001:db8:0::1``; an IPv4-mapped one is read as its IPv4 host
        by parse_nameserver)."""
        return ipaddress.ip_address(self.host), self.port


def parse_nameserver(text: str) -> Nameserver:
    """Parse ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    text = text.strip()
    if "," in text:
        # RDNS_SCORER_NAMESERVERS's separator, in one --nameserver or list item: it was
        # "port must be 1-65535", the port read as "53,10.0.0.2".
        raise ValueError(
            f"bad nameserver {text!r}: one address each (repeat --nameserver, or list "
            "them as separate strings)"
        )
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad nameserver {text!r}: expected [IPv6]:PORT")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        split = _port_after_ipv6(text)
        hint = f" (with a port: '[{split[0]}]:{split[1]}')" if split else ""
        raise ValueError(f"bad nameserver {text!r}: {host!r} is not an IP address{hint}") from None
    if is_multicast_or_broadcast(address):
        # No recursive resolver answers from one (224.0.0.251 is mDNS): every lookup
        # would time out and score 0.
        raise ValueError(f"bad nameserver {text!r}: {host} is not a unicast address")
    number = decimal_in(port, 1, 65535)
    if number is None:
        raise ValueError(f"bad nameserver {text!r}: port must be 1-65535")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is the IPv4 host (RFC 4291 section 2.5.5.2), asked over IPv4: an
        # IPv6 socket cannot send to it where net.ipv6.bindv6only is set or IPv6 is off
        # (ENETUNREACH: every lookup failed, scoring nothing). As `listen` is read.
        host = str(address.ipv4_mapped)
    return Nameserver(host, number)


def _port_after_ipv6(text: str) -> tuple[str, str] | None:
    """An IPv6 address and a port that ``text``, unbracketed, may be read as (``2001:db8::1``
    and ``53`` in ``2001:db8::1:53``), or None: its last group is a port number and what
    comes before it an IPv6 address of its own."""
    head, _, tail = text.strip().rpartition(":")
    if text.strip().startswith("[") or decimal_in(tail, 1, 65535) is None:
        return None
    try:
        ipaddress.IPv6Address(head)
    except ValueError:
        return None
    return head, tail


def parse_nameservers(texts: Iterable[str]) -> list[Nameserver]:
    """``parse_nameserver`` of each, as the config, ``--nameserver`` and
    RDNS_SCORER_NAMESERVERS write them; a ValueError names one listed twice, in any
    spelling: the transport would ask it twice (after its SERVFAIL, after its silence)
    in place of the next resolver, or of giving up. One that reads two ways unbracketed
    (``2001:db8::1:53``: that address on port 53, or port 53 of ``2001:db8::1``) is the
    address on port 53, as it always was (a resolver such as Quad9's ``2620:fe::fe:9``
    is written so), and warned about (``ambiguous_nameservers``); with a zone, whose
    name never holds a colon, only the port can be meant, and it is refused."""
    written: dict[tuple[IPAddress, int], str] = {}  # destination -> its first spelling
    servers = []
    for text in texts:
        server = parse_nameserver(text)
        split = _port_after_ipv6(text)
        if split is not None:
            address, port = split
            if "%" in address:  # no interface name holds a colon: one reading only
                raise ValueError(
                    f"bad nameserver {text!r}: an IPv6 address with a port is written in "
                    f"brackets, '[{address}]:{port}'"
                )
        if lacks_its_zone(server.destination[0]):
            # No packet can be sent to it (EINVAL): every lookup would fail and score 0.
            raise ValueError(
                f"bad nameserver {text!r}: a link-local address needs its zone (%IFACE)"
            )
        earlier = written.get(server.destination)
        if earlier is not None:
            same = "listed twice" if earlier == text else f"the same server as {earlier!r}"
            raise ValueError(f"duplicate nameserver {text!r}: {same}")
        written[server.destination] = text
        servers.append(server)
    return servers


def ambiguous_nameservers(texts: Iterable[str]) -> list[str]:
    """A warning for each of ``texts`` (nameservers as written) that reads two ways
    unbracketed: ``2001:db8::1:53`` is that address on port 53, but port 53 of
    ``2001:db8::1`` may have been meant (RFC 5952 section 6 brackets an address with a
    port); asked at the one not meant, every lookup would time out and score nothing.
    Not an error: an address such as Quad9's ``2620:fe::fe:9`` is written so, and was
    read so, as it still is."""
    warnings = []
    for text in texts:
        split = _port_after_ipv6(text)
        if split is not None:
            address, port = split
            warnings.append(
                f"[dns] nameservers: {text.strip()!r} is the address {text.strip()} on port "
                f"53; if port {port} of {address} is meant, write '[{address}]:{port}' (and "
                f"'[{text.strip()}]' says the address, without this warning)"
            )
    return warnings


UNREADY_FAILURE_SHARE = 0.9  # /readyz fails when this share of recent queries failed
HEALTH_WINDOW_SECONDS = 30.0
HEALTH_MIN_QUERIES = 20  # fewer recent queries than this say nothing either way
# Root probes failed in a row before a resolver that answered one is logged as silent
# (DnsLayer._judge_silence): two, 10 s apart at most (ROOT_CHECK_SECONDS), or sooner
# with /readyz polled.
SILENT_PROBES = 2
# A zone (``failure_zone``) whose query failed is remembered this long (or until a
# question that failed in it is answered), at most this many: its next failures are
# repeats, left out of the health share.
FAILING_MEMORY_SECONDS = 3600.0
FAILING_MEMORY_ENTRIES = 4096
# How much of the reverse trees a failure is charged to, in labels below the tree: an
# IPv4 /24, the usual reverse delegation (RFC 2317's classless ones lie within), and an
# IPv6 /48, a site's prefix (RFC 6177), whose /64s a host can hop between.
_REVERSE_ZONE_LABELS = {"in-addr.arpa": 3, "ip6.arpa": 12}
# What an untrusted resolver's failures say after why it is not trusted (_judge_root).
DISTRUSTED = "its NXDOMAIN/NODATA not trusted"


@dataclass(frozen=True)
class Consequences:
    """How the resolver warnings (_judge_silence, _judge_root) end: what the resolver's
    state means, worded for who reads them. The state itself is worded once for all."""

    silent: str  # after "resolver X does not answer (the root's SOA: why): "
    untrusted: str  # after "the resolver says the root has no SOA (why): ...not trusted: "


# What the resolver's state does to lookups, and no more: who builds the layer words
# what it means for the reader (scorer.pipeline for the service, scorer.cli for `check`).
LOOKUPS_ONLY = Consequences(
    silent="lookups fail until it does",
    untrusted="they are reported as lookup failures until it answers for them",
)


# An outcome counts as one cache entry per this many bytes it holds, roughly: each
# character of a name one, each record beyond the first ~100 (tracemalloc: 64 A records
# ~5.9 KB, 64 AAAA ~7.2 KB, 64 MX of short names ~7.4 KB; a usual answer ~400 bytes).
CACHE_BYTES_PER_ENTRY = 512
RECORD_BYTES = 100


def cache_size(outcome: Answer[object] | NotFound, key: str = "") -> int:
    """How many entries of ``cache_max_entries`` ``outcome``, kept under ``key``, counts
    as: 1 for all but answers of many records or long names (TtlCache: a hostile zone's
    would hold up to ~55 KB, a hundred times a usual answer). The key's name counts as
    any name: a PTR name of escaped octets (``\\128`` each) is ~940 characters, and the
    NXDOMAIN of its forward lookup held ~1.1 KB counted as one entry."""
    held = len(key)
    if isinstance(outcome, NotFound):
        held += len(outcome.alias_target or "")
    else:
        held += RECORD_BYTES * max(0, len(outcome.records) - 1)
        for record in outcome.records:
            if isinstance(record, MxRecord):
                held += len(record.exchange)
            elif isinstance(record, str):
                held += len(record)
    return 1 + held // CACHE_BYTES_PER_ENTRY


def failure_zone(name: str) -> str:
    """What a failed query of ``name`` (lower case, no final dot) is charged to: its
    registered domain (the Public Suffix List's ICANN section), or the IPv4 /24 or IPv6
    /48 of the reverse tree it is under.

    A dead zone fails whatever is asked under it, and a sender picks the names: a new
    HELO under its own lame domain for every message, or a new address of its IPv6
    prefix to connect from, would each be a new question. Not where the zone cut is
    (only an SOA query would say): the registered domain is where a domain's owner
    delegates. No coarser: a resolver that reaches nothing upstream fails zone after
    zone, and the health share must still see it (unready_reason).
    """
    for tree, depth in _REVERSE_ZONE_LABELS.items():
        if name.endswith(f".{tree}"):  # the tree itself is a public suffix, its own
            return ".".join(name.split(".")[-depth - 2 :])
    return public_suffix_list().privatesuffix(name) or name


class QueryHealth:
    """Failures among recent queries, over the current and the previous 30 s window.

    The layer leaves out the repeats of a failing zone (``DnsLayer._repeats``): answers
    are cached and failures are not, so every message from a sender whose zone is dead
    asks again and fails again, while the other senders' answers come from the caches.
    A few such senders made 92-96 % of the queries sent failures, and /readyz said the
    resolver was broken, while nearly every check was judged. A broken resolver fails
    zone after new zone.
    """

    __slots__ = ("_clock", "_current", "_previous", "_window_start")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_start = clock()
        self._current = [0, 0]  # queries, failures
        self._previous = [0, 0]

    def _roll(self) -> None:
        now = self._clock()
        if now - self._window_start >= HEALTH_WINDOW_SECONDS:
            stale = now - self._window_start >= 2 * HEALTH_WINDOW_SECONDS
            self._previous = [0, 0] if stale else self._current
            self._current = [0, 0]
            self._window_start = now

    def record(self, failed: bool) -> None:
        self._roll()
        self._current[0] += 1
        self._current[1] += failed

    def failure_share(self) -> float | None:
        self._roll()
        queries = self._current[0] + self._previous[0]
        if queries < HEALTH_MIN_QUERIES:
            return None
        return (self._current[1] + self._previous[1]) / queries


class ExpiryTracker:
    """The earliest expiry of the outcomes one request used (see ``DnsLayer.tracking``).

    Its own context manager (a class, not ``contextlib.contextmanager``: this runs
    for every check that misses the reply cache).
    """

    __slots__ = ("_token", "expires")
    _token: contextvars.Token[ExpiryTracker | None]  # set by __enter__, before __exit__

    def __init__(self) -> None:
        self.expires = float("inf")

    def __enter__(self) -> ExpiryTracker:
        self._token = _tracker.set(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        _tracker.reset(self._token)


_tracker: contextvars.ContextVar[ExpiryTracker | None] = contextvars.ContextVar(
    "rdns_scorer_expiry_tracker", default=None
)


def system_nameservers() -> list[Nameserver]:
    """The nameservers of /etc/resolv.conf (port 53), or the loopback resolver."""
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver()
    except (dns.resolver.NoResolverConfiguration, OSError):
        return [Nameserver("127.0.0.1")]
    # One listed twice is asked once, where it was first listed: not our config, so no
    # mistake to report (parse_nameservers refuses it in ours).
    servers: dict[tuple[IPAddress, int], Nameserver] = {}
    for text in resolver.nameservers:
        server = parse_nameserver(str(text))
        servers.setdefault(server.destination, server)
    return list(servers.values()) or [Nameserver("127.0.0.1")]


def resolvers(configured: Sequence[Nameserver]) -> list[Nameserver]:
    """The nameservers asked: ``configured`` ([dns] nameservers), else resolv.conf's."""
    return list(configured) or system_nameservers()


class DnsLayer:
    """Typed, cached, coalesced lookups over the UDP transport."""

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        timeout: float,
        cache: TtlCache[Outcome],
        negative_ttl: int = 300,
        consequences: Consequences = LOOKUPS_ONLY,
    ) -> None:
        self.nameservers = resolvers(nameservers)
        self._transport = UdpTransport(self.nameservers, timeout, negative_ttl)
        self._timeout = timeout
        # Until when queries sent with a longer timeout than ``_timeout`` may be in flight.
        self._longer_queries_until = 0.0
        self.cache = cache
        self._inflight: dict[Hashable, asyncio.Future[tuple[Outcome, float]]] = {}
        self._negatives: dict[NotFound, NotFound] = {}
        self.observer: QueryObserver | None = None  # set by who counts queries (metrics)
        self._consequences = consequences
        self.health = QueryHealth()
        # Set while the resolver says the root has no SOA, or a reverse tree does not
        # exist: the failure its NXDOMAIN and NODATA are reported as (_judge_root).
        self.untrusted: TempFail | None = None
        self._missing_trees: dict[str, str] = {}  # reverse trees said not to exist: why
        # How many times that judgement changed: a reply built across a change took some
        # answers at the old word, and is not cached (Pipeline.check_and_cache).
        self.trust_changes = 0
        # Set while the resolver does not answer the root's SOA (_judge_silence).
        self.silent = False
        self._silent_probes = 0  # root probes failed in a row
        self._answered = False  # it has answered one since this layer was made
        # Root probes sent, and the latest of them whose answer was judged (_probe_root).
        self._root_probes_sent = 0
        self._root_probe_judged = 0
        # /readyz's probe in flight, which every /readyz asked meanwhile awaits: a flood
        # of them (no token needed) sent the resolver three SOA queries each.
        self._readiness_probe: asyncio.Future[Outcome] | None = None
        self._failing: dict[str, float] = {}  # failure_zone -> remembered until
        self._failed_questions: dict[str, str] = {}  # question key -> its failure_zone

    def set_timeout(self, timeout: float) -> None:
        """Wait ``timeout`` for the queries sent from now on: a reload that changed only
        the timeout asks the same resolvers, whose cached answers and judgement stand."""
        if timeout < self._timeout and self._inflight:
            # Queries in flight end at their old timeout: until then a lookup sharing
            # one needs a timer of its own for its deadline (lookup, ``timed``).
            ends = asyncio.get_running_loop().time() + self._timeout
            self._longer_queries_until = max(self._longer_queries_until, ends)
        self._timeout = timeout
        self._transport.set_timeout(timeout)

    @property
    def silent_nameservers(self) -> list[Nameserver]:
        """Those of several nameservers found silent (UdpTransport.silent)."""
        return self._transport.silent

    @property
    def described_nameservers(self) -> str:
        """The resolvers asked, as the log and /readyz name them: ``127.0.0.1:53, ::1``."""
        return ", ".join(map(str, self.nameservers))

    @staticmethod
    def tracking() -> ExpiryTracker:
        """Record when the outcomes looked up inside the ``with`` block (by this task and
        the tasks it starts) expire: a reply built from them is good until
        ``tracker.expires``. Failures count as expiring at once."""
        return ExpiryTracker()

    # The typed questions: an answer's records are of the type asked, as wire decodes
    # each (_parse_ptr a name, _parse_a/_parse_aaaa an address, _parse_mx an MxRecord).
    # The one place an Outcome's records are given their type, on that word. Plain
    # functions handing back lookup's own coroutine, to be awaited as it: a coroutine
    # of their own around it cost a cached lookup a second frame and its await.

    def ptr(self, ip: IPAddress, deadline: float) -> Coroutine[Any, Any, Lookup[str]]:
        outcome = self.lookup(reverse_name(ip), dns.rdatatype.PTR, deadline)
        return cast("Coroutine[Any, Any, Lookup[str]]", outcome)

    def addresses(
        self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float
    ) -> Coroutine[Any, Any, Lookup[IPAddress]]:
        """The records of ``rdtype``, A or AAAA, of ``name``."""
        outcome = self.lookup(name, rdtype, deadline)
        return cast("Coroutine[Any, Any, Lookup[IPAddress]]", outcome)

    def mx(self, name: str, deadline: float) -> Coroutine[Any, Any, Lookup[MxRecord]]:
        outcome = self.lookup(name, dns.rdatatype.MX, deadline)
        return cast("Coroutine[Any, Any, Lookup[MxRecord]]", outcome)

    async def lookup(self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float) -> Outcome:
        """One cached, coalesced lookup that never raises and never outlives ``deadline``."""
        name = relative_name(name.lower())
        key = question_key(name, rdtype)
        tracker = _tracker.get()
        entry = self.cache.get_entry(key)
        if entry is not None:
            if self.untrusted is not None and type(entry[1]) is NotFound:
                if tracker is not None:
                    tracker.expires = 0.0  # a failure: no reply built on it is kept
                return self.untrusted
            if tracker is not None and entry[0] < tracker.expires:
                tracker.expires = entry[0]
            return entry[1]
        loop = asyncio.get_running_loop()
        now = loop.time()
        if deadline <= now:
            outcome: Outcome = TempFail(FailureKind.DEADLINE, "request deadline passed")
            expires = 0.0
        else:
            shared = self._inflight.get(key)
            if shared is None:  # else a concurrent request asked already: share its query
                shared = self._start(key, name, rdtype)
            if shared.done():
                outcome, expires = shared.result()
            else:
                # A query ends by itself within the timeout: a deadline beyond that
                # needs no timer of its own.
                timed = deadline < now + self._timeout or now < self._longer_queries_until
                outcome, expires = await self._wait(shared, deadline if timed else None, loop)
        if self.untrusted is not None and type(outcome) is NotFound:
            expires = 0.0  # reported as a failure: no reply built on it is kept
            outcome = self.untrusted
        if tracker is not None and expires < tracker.expires:
            tracker.expires = expires
        return outcome

    @staticmethod
    async def _wait(
        shared: asyncio.Future[tuple[Outcome, float]],
        deadline: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> tuple[Outcome, float]:
        """Wait for a shared query (until ``deadline``), without cancelling it for the others.

        (What ``wait_for(shield(...))`` does, with one future and at most one timer
        instead of three futures and a task: this runs for every lookup not in the cache.)
        """
        waiter: asyncio.Future[tuple[Outcome, float]] = loop.create_future()

        def done(_f: object = None) -> None:
            if not waiter.done():
                if shared.done() and not shared.cancelled():
                    waiter.set_result(shared.result())
                else:
                    failure = TempFail(FailureKind.DEADLINE, "request deadline passed")
                    waiter.set_result((failure, 0.0))

        shared.add_done_callback(done)
        timer = loop.call_at(deadline, done) if deadline is not None else None
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            shared.remove_done_callback(done)

    def _start(
        self, key: str, name: str, rdtype: dns.rdatatype.RdataType
    ) -> asyncio.Future[tuple[Outcome, float]]:
        """Send the query for ``key``; the future it returns gets (outcome, expiry).

        Callbacks, not a task per query: the transport's callback caches the outcome
        (``_settle``) and wakes every lookup waiting on it.
        """
        shared: asyncio.Future[tuple[Outcome, float]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = shared
        trust = self.trust_changes
        self._send(name, rdtype, lambda outcome: self._settle(key, shared, outcome, trust))
        return shared

    def _send(
        self,
        name: str,
        rdtype: dns.rdatatype.RdataType,
        on_done: Callable[[Outcome], None],
        for_checks: bool = True,
    ) -> None:
        """Ask the resolver; ``on_done`` gets the outcome once, after it is reported to the
        observer and, for a query ``for_checks``, to the health window. Never raises:
        failures are outcomes too."""
        started = time.perf_counter()

        def report(outcome: Outcome) -> None:
            failed = isinstance(outcome, TempFail)
            repeated = for_checks and self._repeats(name, rdtype, failed)
            if for_checks and not repeated:
                self.health.record(failed)
            if self.observer is not None:
                seconds = time.perf_counter() - started
                try:
                    self.observer(rdtype.name, result_name(outcome), seconds, repeated)
                except Exception:  # a bug in metrics must not leave the lookups waiting
                    log.exception("DNS query observer failed")
            on_done(outcome)

        try:
            self._transport.send(encode_name(name), int(rdtype), report)
        except NameError_ as error:
            report(TempFail(FailureKind.MALFORMED, f"bad query name: {error}"))
        except Exception as error:  # a bug or an OS surprise must not become a 5xx
            report(network_failure(error))

    def _repeats(self, name: str, rdtype: dns.rdatatype.RdataType, failed: bool) -> bool:
        """Whether a failed query of ``name`` repeats the failure of its zone's
        (``failure_zone``) within the hour that counted. A question that failed and is
        answered now frees its zone: a later failure there is news again (a timeout at a
        big provider last hour must not hide a resolver that broke since). Answers to
        other questions of the zone do not: each new name a sender makes up under its
        dead zone fails, and is never answered."""
        failed_questions = self._failed_questions
        if not failed:
            if failed_questions:
                zone = failed_questions.pop(question_key(name, rdtype), None)
                if zone is not None:
                    self._failing.pop(zone, None)
            return False
        failing = self._failing
        zone = failure_zone(name)
        if len(failed_questions) >= FAILING_MEMORY_ENTRIES:
            failed_questions.clear()
        failed_questions[question_key(name, rdtype)] = zone
        now = time.monotonic()
        if failing.get(zone, 0.0) > now:
            return True
        # Remembered for an hour from this failure, not from the latest: a zone that
        # keeps failing counts once an hour, so a resolver that broke while the same
        # senders came back still shows within the hour (in /readyz and alerts).
        if len(failing) >= FAILING_MEMORY_ENTRIES:
            failing.clear()
        failing[zone] = now + FAILING_MEMORY_SECONDS
        return False

    def _settle(
        self,
        key: str,
        shared: asyncio.Future[tuple[Outcome, float]],
        outcome: Outcome,
        trust: int,
    ) -> None:
        """Cache ``outcome`` and wake the lookups waiting on it. ``trust``: the resolver's
        judgement (trust_changes) when the query was sent; an answer given before a
        change is not kept (_judge_root empties the cache of what it said then): a lie
        sent while the resolver said the root does not exist, and received once it
        answers the root again, would otherwise be cached as the truth."""
        expires = 0.0  # failures are retried on the next message
        if trust != self.trust_changes and type(outcome) is NotFound:
            # Nor believed: a "no" sent while the resolver said the root does not exist,
            # received once it answers the root again, may be its lie (while it lies,
            # lookup() reports every NotFound as untrusted anyway).
            outcome = TempFail(
                FailureKind.UNTRUSTED,
                "asked before the resolver's word on the root changed: its NXDOMAIN/NODATA "
                "not trusted",
            )
        if isinstance(outcome, NotFound):  # equal negative outcomes share one object
            if len(self._negatives) > 4096:
                self._negatives.clear()
            outcome = self._negatives.setdefault(outcome, outcome)
        if not isinstance(outcome, TempFail) and trust == self.trust_changes:
            expires = self.cache.put(key, outcome, outcome.ttl, cache_size(outcome, key))
        if self._inflight.get(key) is shared:
            del self._inflight[key]
        if not shared.done():
            shared.set_result((outcome, expires))

    async def probe(self, name: str, rdtype: dns.rdatatype.RdataType) -> Outcome:
        """Ask the resolver, bypassing the cache; report the result to the observer but
        not to the health window, which is about the checks' queries: a probe answered
        every second would otherwise hide a resolver that fails all of those."""
        answered: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def settle(outcome: Outcome) -> None:
            if not answered.done():  # a caller that gave up cancelled it
                answered.set_result(outcome)

        self._send(name, rdtype, settle, for_checks=False)
        return await answered

    async def check_root(self) -> None:
        """Ask for the root's SOA and judge the resolver by the answer (the service does
        so before it listens, before a new layer serves after a reload, and every
        ROOT_CHECK_SECONDS; see _judge_root)."""
        await self._probe_root()

    async def _probe_root(self) -> Outcome:
        """The root's SOA, asked now, and the resolver judged by it unless a probe sent
        later was judged first: the periodic probe and /readyz's overlap, and a slow
        "root OK" sent before the resolver began to lie, arriving after a later probe
        caught it, would trust it again until the next probe (its NXDOMAINs scored)."""
        self._root_probes_sent += 1
        sent = self._root_probes_sent
        root, *trees = await asyncio.gather(
            *(self.probe(zone, dns.rdatatype.SOA) for zone in (".", *REVERSE_TREES))
        )
        if sent > self._root_probe_judged:
            self._root_probe_judged = sent
            self._judge_root(root, trees)
        return root

    def _judge_root(self, outcome: Outcome, trees: Sequence[Outcome]) -> None:
        """A resolver that says the root has no SOA serves only its own data or rewrites
        answers (a captive or broken one answers NXDOMAIN for everything): its NXDOMAIN
        and NODATA would be scored as missing PTRs and sender domains on every message.
        So does one that says a reverse tree (REVERSE_TREES: ``trees``, their SOAs'
        outcomes) does not exist, where every PTR is asked: one serving only local data
        beside a root it fakes, and every client had no PTR (5 points on every message).
        While it does, lookups report them as an UNTRUSTED failure, of zero weight. A
        resolver that does not answer changes nothing: its silence is a failure already.
        The cache is emptied at each change, of the "no"s it was lying or right about."""
        self._judge_silence(outcome)
        if isinstance(outcome, TempFail):
            return
        for tree, said in zip(REVERSE_TREES, trees, strict=True):
            # NXDOMAIN only: NODATA says the tree is there (a name under it exists, as in
            # a resolver's local data). A failure is no news: the tree's last word stands.
            if isinstance(said, NotFound) and said.kind is NotFoundKind.NXDOMAIN:
                self._missing_trees[tree] = (
                    f"the resolver says {tree} does not exist ({describe(said)})"
                )
            elif not isinstance(said, TempFail):
                self._missing_trees.pop(tree, None)
        if not isinstance(outcome, Answer):
            why: str | None = f"the resolver says the root has no SOA ({describe(outcome)})"
        else:
            why = next(
                (self._missing_trees[t] for t in REVERSE_TREES if t in self._missing_trees), None
            )
        untrusted = None
        if why is not None:
            untrusted = TempFail(FailureKind.UNTRUSTED, f"{why}: {DISTRUSTED}")
        changed = (untrusted is None) != (self.untrusted is None)
        # Kept even without a change of trust: evidence quotes the latest word, so a
        # resolver that went from NXDOMAIN to NODATA for the root is described as it is.
        self.untrusted = untrusted
        if not changed:
            return
        self.trust_changes += 1
        self.cache.clear()
        # Nor does a lookup from now on share a query sent before: its answer is no
        # more trusted than the cache's (_settle).
        self._inflight.clear()
        if untrusted is None:
            log.info(
                "the resolver answers the root's SOA and the reverse trees again: its "
                "NXDOMAIN and NODATA count"
            )
        else:
            log.warning("%s: %s", untrusted.detail, self._consequences.untrusted)

    def _judge_silence(self, outcome: Outcome) -> None:
        """Say in the log when the resolver stops answering the root's SOA, and when it
        answers again. Meanwhile every lookup fails and each check is a zero-weight
        TEMPFAIL, mail flowing unjudged, which no other line says (a dead resolver at
        start left "listening" as the last word). Once per change, not per probe; and
        once it has answered, only after SILENT_PROBES failures in a row: /readyz probes
        too, and a poller's every failed probe against a flaky resolver was a line."""
        if not isinstance(outcome, TempFail):
            self._silent_probes = 0
            self._answered = True
            if self.silent:
                self.silent = False
                log.info("resolver %s answers again", self.described_nameservers)
            return
        self._silent_probes += 1
        if self.silent or (self._answered and self._silent_probes < SILENT_PROBES):
            return
        self.silent = True
        log.warning(
            "resolver %s does not answer (the root's SOA: %s): %s",
            self.described_nameservers, describe(outcome), self._consequences.silent,
        )  # fmt: skip

    def _readiness_probed(self, probe: asyncio.Future[Outcome]) -> None:
        if self._readiness_probe is probe:
            self._readiness_probe = None

    async def unready_reason(self) -> str | None:
        """Why the resolver cannot serve checks now, or None when it can.

        Two signs, because a local caching resolver can answer a probe from its own
        data while it reaches nothing upstream (the broken-container-resolver case):
        the root's SOA must resolve (a recursive resolver has to ask the internet, or
        its own root zone), and recent real queries must not be almost all failures.
        """
        probe = self._readiness_probe
        if probe is None or probe.get_loop() is not asyncio.get_running_loop():
            probe = asyncio.ensure_future(self._probe_root())
            self._readiness_probe = probe
            probe.add_done_callback(self._readiness_probed)
        # Shielded: a /readyz client gone must not cancel the probe the others await.
        outcome = await asyncio.shield(probe)
        if isinstance(outcome, TempFail):
            # Which resolver and why (a refused port, a timeout): what to go and fix.
            return f"resolver {self.described_nameservers} does not answer: {describe(outcome)}"
        if self.untrusted is not None:
            # The root always has an SOA, and the reverse trees exist: a resolver that
            # says otherwise serves only its own data or rewrites answers, and every
            # client would look like it has no PTR.
            return self.untrusted.detail.removeprefix("the ").removesuffix(f": {DISTRUSTED}")
        share = self.health.failure_share()
        if share is not None and share >= UNREADY_FAILURE_SHARE:
            return f"{share:.0%} of recent DNS queries failed"
        return None
