"""Policy: allowlists (with their DNS gates), shadow mode, reload, overload, public bind."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gzip
import ipaddress
import json
import logging
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from scorer.allowlist import Allowlist, AllowlistError
from scorer.app import SERVICE_KEY, create_app
from scorer.checks.helo import NAT_SLIP_CONFIDENCE, HeloKind, parse_helo
from scorer.checks.hit import Hit
from scorer.checks.mailfrom import SenderKind, parse_sender
from scorer.config import (
    MAX_BODY_BYTES,
    MAX_ENTRIES_WARNED,
    MIN_BODY_BYTES,
    Config,
    ConfigError,
    config_from_mapping,
    load_config,
)
from scorer.lookups import _before_the_cut
from scorer.names import to_ascii
from scorer.pipeline import Pipeline
from scorer.policy import NetworkSet, nat64_client, parse_network, skip_hit
from scorer.protocol import CheckRequest, SymbolResult, parse_request
from scorer.scoring import score_hits
from scorer.security import public_bind_refusal, refuse_public_without_token
from scorer.text import option
from scorer.workermetrics import PREFIX, SHARED_MEMORY, remove_directory
from scorer.workers import EXIT_LISTEN_LATER, OPEN_FILES_WANTED, listen_exit_status
from tests import world
from tests.conftest import make_config
from tests.helpers import eventually, symbols_for
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.ports import free_port, tcp_listener, wait_for_port
from tests.support.processes import children
from tests.support.service import ScorerProcess
from tests.support.unbound import Unbound


def _pipeline(unbound: Unbound, **allowlist: list[str]) -> Pipeline:
    return Pipeline(make_config(unbound.nameserver, allowlist=allowlist))


async def test_ip_allowlist_skips_every_check_and_lookup(unbound: Unbound) -> None:
    pipeline = _pipeline(unbound, ips=["203.0.113.0/28"])
    symbols = await symbols_for(
        pipeline, world.MISSING_PTR_IP, helo="localhost", mail_from="a@host.invalid"
    )
    assert set(symbols) == {"RL_ALLOWLISTED"}
    assert symbols["RL_ALLOWLISTED"].options == ("ip 203.0.113.0/28",)
    # Not one lookup (one that failed would not be in the cache: count the asking).
    assert pipeline.dns.cache.hits + pipeline.dns.cache.misses == 0


async def test_ptr_suffix_needs_forward_confirmation(unbound: Unbound) -> None:
    confirmed = _pipeline(unbound, ptr_suffixes=["some-isp.net"])
    symbols = await symbols_for(confirmed, world.GENERIC_IP, helo="localhost")
    assert set(symbols) == {"RL_ALLOWLISTED"}, "PTR and HELO checks are covered"
    assert symbols["RL_ALLOWLISTED"].options == (
        f"ptr some-isp.net ({world.GENERIC_NAME} is forward-confirmed)",
    )

    unconfirmed = _pipeline(unbound, ptr_suffixes=["unverified-sender.net"])
    symbols = await symbols_for(unconfirmed, world.UNVERIFIED_IP)
    assert set(symbols) == {"RL_PTR_UNVERIFIED"}, "a PTR anyone can write buys nothing"


async def test_helo_entry_needs_helo_equal_to_confirmed_ptr(unbound: Unbound) -> None:
    # A relay greeting with its confirmed PTR name under no public suffix.
    plain = _pipeline(unbound)
    symbols = await symbols_for(plain, world.INTERNAL_PTR_IP, helo=world.INTERNAL_PTR_NAME)
    assert set(symbols) == {"RL_HELO_NOT_FQDN"}
    pipeline = _pipeline(unbound, helo_names=[world.INTERNAL_PTR_NAME])
    symbols = await symbols_for(pipeline, world.INTERNAL_PTR_IP, helo=world.INTERNAL_PTR_NAME)
    assert set(symbols) == {"RL_ALLOWLISTED"}
    assert symbols["RL_ALLOWLISTED"].options == (
        f"helo {world.INTERNAL_PTR_NAME} (= forward-confirmed PTR)",
    )
    symbols = await symbols_for(pipeline, world.GENERIC_IP, helo="localhost")
    assert set(symbols) == {"RL_PTR_GENERIC", "RL_HELO_LOCALHOST"}, "nor does it cover PTR"

    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, helo="localhost")
    assert set(symbols) == {"RL_HELO_LOCALHOST"}
    # A PTR name that does not resolve back to the client is anyone's to write: a HELO
    # equal to it buys nothing.
    unverified = _pipeline(unbound, helo_names=[world.UNVERIFIED_NAME])
    symbols = await symbols_for(unverified, world.UNVERIFIED_IP, helo=world.UNVERIFIED_NAME)
    assert set(symbols) == {"RL_PTR_UNVERIFIED"}


async def test_allowlist_entries_apply_to_ptr_names_beyond_max_ptr_names(unbound: Unbound) -> None:
    # Regression: only the first max_ptr_names PTR names in sorted order were resolved,
    # so the partner's forward-confirmed name on a shared host with 13 PTR names was
    # never looked up: its `ptr` or `helo` entry silently did not apply, and the
    # message was scored (RL_PTR_TEMPFAIL) instead of exempted.
    ip, name = world.SHARED_PTR_IP, world.SHARED_PTR_NAME
    unlisted = await symbols_for(_pipeline(unbound), ip)
    assert set(unlisted) == {"RL_PTR_TEMPFAIL"}
    assert "3 more PTR names not checked (max_ptr_names)" in unlisted["RL_PTR_TEMPFAIL"].options
    by_ptr = _pipeline(unbound, ptr_suffixes=[world.SHARED_PTR_PARTNER])
    symbols = await symbols_for(by_ptr, ip, helo="localhost")
    assert set(symbols) == {"RL_ALLOWLISTED"}, symbols
    assert symbols["RL_ALLOWLISTED"].options == (
        f"ptr {world.SHARED_PTR_PARTNER} ({name} is forward-confirmed)",
    )
    by_helo = _pipeline(unbound, helo_names=[name])
    symbols = await symbols_for(by_helo, ip, helo=name.upper())
    assert set(symbols) == {"RL_ALLOWLISTED"}, symbols
    assert symbols["RL_ALLOWLISTED"].options == (f"helo {name} (= forward-confirmed PTR)",)


async def test_mail_from_domain_entry_covers_subdomains(unbound: Unbound) -> None:
    pipeline = _pipeline(unbound, mail_from_domains=[world.NULL_MX_DOMAIN])
    symbols = await symbols_for(
        pipeline, world.MISSING_PTR_IP, mail_from=f"bounce@lists.{world.NULL_MX_DOMAIN}"
    )
    assert set(symbols) == {"RL_PTR_MISSING", "RL_ALLOWLISTED_FROM"}
    assert symbols["RL_ALLOWLISTED_FROM"].options == (f"from {world.NULL_MX_DOMAIN}",)


async def test_a_forged_sender_gets_no_allowlist_bonus(unbound: Unbound) -> None:
    # Regression (review): a `from` entry was reported as RL_ALLOWLISTED, whose negative
    # weight (the docs' way to vouch) then went to any bot writing the domain in MAIL
    # FROM: a client without a PTR scored 5 - 5. The envelope sender proves nothing.
    config = make_config(
        unbound.nameserver,
        allowlist={"mail_from_domains": [world.GOOD_DOMAIN], "ips": ["192.0.2.0/24"]},
        weights={"RL_ALLOWLISTED": -5},
    )
    forged = await symbols_for(
        Pipeline(config), world.MISSING_PTR_IP, mail_from=f"x@{world.GOOD_DOMAIN}"
    )
    assert set(forged) == {"RL_PTR_MISSING", "RL_ALLOWLISTED_FROM"}
    assert forged["RL_ALLOWLISTED_FROM"].score == 0.0 and forged["RL_PTR_MISSING"].score == 5.0
    # ... while the entries a forger cannot meet still vouch.
    vouched = await symbols_for(Pipeline(config), "192.0.2.7", mail_from=f"x@{world.GOOD_DOMAIN}")
    assert vouched["RL_ALLOWLISTED"].score == -5.0 and set(vouched) == {"RL_ALLOWLISTED"}
    # A bonus on the from entries' own symbol is the admin's choice, but warned about.
    bonus = make_config(unbound.nameserver, weights={"RL_ALLOWLISTED_FROM": -1})
    assert any(w.startswith("[weights] RL_ALLOWLISTED_FROM = -1: anyone") for w in bonus.warnings())
    assert not any("RL_ALLOWLISTED" in w for w in config.warnings())


async def test_allowlist_weight_is_configurable(unbound: Unbound) -> None:
    config = make_config(
        unbound.nameserver, allowlist={"ips": [world.CONFIRMED_IP]}, weights={"RL_ALLOWLISTED": -2}
    )
    symbols = await symbols_for(Pipeline(config), world.CONFIRMED_IP)
    assert symbols["RL_ALLOWLISTED"].score == -2.0


def test_an_allowlist_file_that_is_no_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    # A FIFO (or /dev/stdin) would block the loader, and every reload after it, forever.
    fifo = tmp_path / "allow.fifo"
    os.mkfifo(fifo)
    with pytest.raises(AllowlistError, match=r"allow\.fifo: not a regular file$"):
        Allowlist().add_file(str(fifo))
    with pytest.raises(AllowlistError, match=r"^\S+/allow\.txt: No such file or directory$"):
        Allowlist().add_file(str(tmp_path / "allow.txt"))  # the path named once
    # Regression: the same words on every Python (3.13 words the ValueError otherwise).
    with pytest.raises(AllowlistError, match=r"allow.*txt'?: a NUL character in the file name$"):
        Allowlist().add_file(str(tmp_path / "allow\0.txt"))  # the file named too


def test_allowlist_files(tmp_path: Path) -> None:
    good = tmp_path / "allow.txt"
    good.write_text(
        "# partners\nip 192.0.2.0/24\nptr .Mail.Partner.net.  # trailing\nfrom x.org\n\n"
    )
    allowlist = Allowlist()
    allowlist.add_file(str(good))
    assert allowlist.match_ptr(["out1.mail.partner.net"]) is not None
    assert allowlist.match_from("a@x.org") == "from x.org"

    bad = tmp_path / "bad.txt"
    bad.write_text("ip 192.0.2.0/24\nip not-a-network\n")
    with pytest.raises(AllowlistError, match=r"bad\.txt:2: 'not-a-network' does not appear"):
        Allowlist().add_file(str(bad))
    with pytest.raises(ConfigError, match=r"\[allowlist\].*bad\.txt:2"):
        config_from_mapping({"allowlist": {"files": [str(bad)]}})
    bad.write_text("host example.org\n")
    with pytest.raises(ConfigError, match="unknown kind 'host'"):
        config_from_mapping({"allowlist": {"files": [str(bad)]}})
    # Regression (review): two values on a line were read as one, and refused as a name
    # or network they are not ("not a domain name: ... label 'net b'").
    for line in ("ptr a.net b.net", "ip 192.0.2.1 192.0.2.2", "from x.org y.org"):
        bad.write_text(f"# two\n{line}\n")
        value = line.split(None, 1)[1]
        with pytest.raises(
            AllowlistError, match=rf"bad\.txt:2: '{re.escape(value)}' is more than one"
        ):
            Allowlist().add_file(str(bad))
    with pytest.raises(ConfigError, match=r"ptr_suffixes: 'a\.net b\.net' is more than one value"):
        config_from_mapping({"allowlist": {"ptr_suffixes": ["a.net b.net"]}})
    # A sender's quoted local part is no second value: the domain is what an entry names.
    allowlist = Allowlist()
    allowlist.add("from", '"john doe"@x.org', "test")
    assert allowlist.match_from("a@x.org") == "from x.org"


def test_allowlist_files_take_a_tab_and_a_byte_order_mark(tmp_path: Path) -> None:
    # Regression: both were refused ("unknown kind '\ufeffip'", "expected 'KIND VALUE'").
    edited = tmp_path / "allow.txt"
    edited.write_bytes("ip\t192.0.2.0/24\nfrom\t\tx.org\n".encode("utf-8-sig"))
    allowlist = Allowlist()
    allowlist.add_file(str(edited))
    assert allowlist.match_from("a@x.org") == "from x.org"
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"


def test_allowlist_files_take_any_line_ending_and_kind_in_any_case(tmp_path: Path) -> None:
    # Windows (CRLF) and classic Mac (CR) line ends; a kind is a keyword, as in a zone.
    edited = tmp_path / "allow.txt"
    edited.write_bytes(b"IP 192.0.2.0/24\r\nPtr mail.x.org\rFrom x.org\r\n# end\r")
    allowlist = Allowlist()
    allowlist.add_file(str(edited))
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"
    assert (
        allowlist.match_ptr(["mx.mail.x.org"])
        == "ptr mail.x.org (mx.mail.x.org is forward-confirmed)"
    )
    assert allowlist.match_from("a@x.org") == "from x.org"
    edited.write_bytes(b"from x.org\rfrom bad_name!\r\n")
    with pytest.raises(AllowlistError, match=r"allow\.txt:2: not a domain name: 'bad_name!'"):
        Allowlist().add_file(str(edited))


def test_allowlist_files_take_any_space_between_kind_and_value(tmp_path: Path) -> None:
    # Regression (review): a no-break space (pasted from a web page) between kind and
    # value was "expected 'KIND VALUE'", naming neither.
    pasted = tmp_path / "allow.txt"
    pasted.write_text("ip\u00a0192.0.2.0/24\nfrom\u3000x.org\u00a0\nptr \t mail.x.org\n")
    allowlist = Allowlist()
    allowlist.add_file(str(pasted))
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"
    assert allowlist.match_from("a@x.org") == "from x.org"
    assert allowlist.match_ptr(["mx.mail.x.org"]) is not None


def test_an_allowlist_line_with_a_kind_and_no_value_is_refused_by_line(tmp_path: Path) -> None:
    # A value lost to a comment or a tab still names the line, not just the file.
    path = tmp_path / "allow.txt"
    path.write_text("ip 192.0.2.0/24\nfrom\t# partner.example, gone\n")
    with pytest.raises(AllowlistError, match=r"allow\.txt:2: expected 'KIND VALUE', got 'from'$"):
        Allowlist().add_file(str(path))


def test_allowlist_errors_name_the_key() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("[allowlist] mail_from_domains: not a domain name: 'x_y!'")
    ):
        config_from_mapping({"allowlist": {"mail_from_domains": ["ok.org", "x_y!"]}})


def test_ipv4_mapped_entries_match_ipv4_clients() -> None:
    # Regression: clients are read as IPv4 (::ffff:a.b.c.d), entries were kept as IPv6.
    allowlist = Allowlist()
    allowlist.add("ip", "::ffff:192.0.2.0/120", "test")
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"


def test_nat64_entries_match_the_ipv4_clients_they_carry() -> None:
    # Regression (review): clients in 64:ff9b::/96 are read as IPv4; a skip_networks or
    # allowlist entry in that prefix stayed IPv6 and could never match again.
    allowlist = Allowlist()
    allowlist.add("ip", "64:ff9b::c000:200/120", "test")
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"
    config = config_from_mapping({"policy": {"skip_networks": ["64:ff9b::c633:6400/120"]}})
    assert config.skip_networks == (ipaddress.ip_network("198.51.100.0/24"),)


async def test_ipv4_compatible_entries_match_the_ipv4_clients_they_carry(
    unbound: Unbound,
) -> None:
    # Regression: a client written IPv4-compatible (::192.0.2.1, RFC 4291 section
    # 2.5.5.1) is read as the IPv4 host it carries (scorer.protocol.parse_ip), as
    # local_ips are; an allowlist or skip_networks entry written so stayed IPv6 and
    # matched no client at all, config check saying "OK".
    allowlist = Allowlist()
    allowlist.add("ip", "::c000:200/120", "test")
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"
    pipeline = Pipeline(
        make_config(
            unbound.nameserver,
            allowlist={"ips": [f"::{world.CONFIRMED_IP}"]},
            policy={"skip_networks": [f"::{world.MISSING_PTR_IP}/128"]},
        )
    )
    for client in (world.MISSING_PTR_IP, f"::{world.MISSING_PTR_IP}"):
        symbols = await symbols_for(pipeline, client)
        skipped = f"{world.MISSING_PTR_IP} in {world.MISSING_PTR_IP}/32"
        assert symbols["RL_SKIPPED_LOCAL"].options == (skipped,)
    for client in (world.CONFIRMED_IP, f"::{world.CONFIRMED_IP}"):
        symbols = await symbols_for(pipeline, client, helo="localhost")
        assert symbols["RL_ALLOWLISTED"].options == (f"ip {world.CONFIRMED_IP}",)


@pytest.mark.parametrize("entry", ["::/96", "::/100", "::/103"])
def test_an_ipv4_compatible_network_holding_ipv6_clients_is_refused(entry: str) -> None:
    # ::/104 (::1 among them) stays IPv6 where the rest of ::/96 is read as IPv4: a
    # network holding both is neither, and loaded as one that matched ::1 alone.
    with pytest.raises(ValueError, match="::/104"):
        parse_network(entry)


# RFC 6052 section 2.4's own examples: 192.0.2.33 behind a prefix of each length.
RFC6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
]


@pytest.mark.parametrize(("prefix", "address"), RFC6052_EXAMPLES)
def test_a_client_behind_the_sites_nat64_prefix_is_the_ipv4_host_it_carries(
    prefix: str, address: str
) -> None:
    prefixes = config_from_mapping({"policy": {"nat64_prefixes": [prefix]}}).nat64_prefixes
    client = ipaddress.ip_address(address)
    assert nat64_client(client, prefixes) == ipaddress.ip_address("192.0.2.33")
    # Outside the prefix, or with none configured, the address stays as it came.
    other = ipaddress.ip_address("2001:db9::1")
    assert nat64_client(other, prefixes) == other
    assert nat64_client(client, []) == client


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (
            "2001:db8::/33",
            "'2001:db8::/33': a NAT64 prefix is /32, /40, /48, /56, /64 or /96 long (RFC 6052",
        ),
        ("2001:db8:0:0:ff00::/96", "'2001:db8:0:0:ff00::/96': bits 64 to 71 of a NAT64 prefix"),
        ("192.0.2.0/24", "'192.0.2.0/24' is no IPv6 network"),
        (
            "2001:db8::1/32",
            "'2001:db8::1/32' is no IPv6 network (2001:db8::1/32 has host bits set)",
        ),
        ("::/32", "'::/32' holds IPv4-mapped addresses"),
    ],
)
def test_a_nat64_prefix_that_is_none_is_refused(prefix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"[policy] nat64_prefixes: {message}")):
        config_from_mapping({"policy": {"nat64_prefixes": [prefix]}})


@pytest.mark.parametrize(
    "prefixes",
    [
        ["2001:db8::/32", "2001:db8:122:344::/96"],
        ["2001:db8:122:344::/96", "2001:db8::/32"],
        ["64:ff9b:1::/48", "64:ff9b:1::/48"],
    ],
)
def test_overlapping_nat64_prefixes_are_refused(prefixes: list[str]) -> None:
    # Regression (review): 2001:db8:122:344::c000:221 was 1.34.3.68 or 192.0.2.33 (RFC
    # 6052's own example) by the order the two prefixes were listed in, without a word.
    first, second = (ipaddress.ip_network(p) for p in prefixes)
    with pytest.raises(ConfigError, match=re.escape(f"{first} and {second} overlap")):
        config_from_mapping({"policy": {"nat64_prefixes": prefixes}})


def test_a_config_parses_its_network_lists_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: nat64_prefixes (with its overlap check) and skip_networks were parsed
    # again at every read: validation, each warning, the pipeline's build.
    from scorer import config as config_module

    calls: list[str] = []
    parse_prefixes = config_module.parse_nat64_prefixes
    parse_one = config_module.parse_network

    def counted_prefixes(texts: list[str]) -> list[ipaddress.IPv6Network]:
        calls.append("nat64")
        return parse_prefixes(texts)

    def counted_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        calls.append(text)
        return parse_one(text)

    monkeypatch.setattr(config_module, "parse_nat64_prefixes", counted_prefixes)
    monkeypatch.setattr(config_module, "parse_network", counted_network)
    config = config_from_mapping(
        {"policy": {"nat64_prefixes": ["2001:db8::/96"], "skip_networks": ["2001:db8::/32"]}}
    )
    config.warnings()
    Pipeline(config)
    Pipeline(config)
    assert sorted(calls) == ["2001:db8::/32", "nat64"]
    assert config.nat64_prefixes == (ipaddress.ip_network("2001:db8::/96"),)


def test_an_entry_inside_a_nat64_prefix_is_warned_about() -> None:
    # Regression (review): a skip_networks or allowlist entry written to cover the
    # translator's clients (when they scored RL_PTR_MISSING) matches none once the prefix
    # is in nat64_prefixes, and loaded without a word.
    config = config_from_mapping(
        {
            "policy": {
                "nat64_prefixes": ["2001:db8:64::/96"],
                "skip_networks": ["2001:db8:64::/96", "2001:db8:65::/96", "10.0.0.0/8"],
            },
            "allowlist": {"ips": ["2001:db8:64::c000:200/120", "2001:db8::/32"]},
        }
    )
    config = dataclasses.replace(config, allowlist_entries=config.read_allowlist())
    warned = [w for w in config.warnings() if "nat64_prefixes" in w]
    assert warned == [
        "[policy] skip_networks 2001:db8:64::/96 is inside [policy] nat64_prefixes "
        "2001:db8:64::/96, whose clients are read as the IPv4 hosts they carry: it matches "
        "none; write their IPv4 addresses",
        "[allowlist] ip entry 2001:db8:64::c000:200/120 is inside [policy] nat64_prefixes "
        "2001:db8:64::/96, whose clients are read as the IPv4 hosts they carry: it matches "
        "none; write their IPv4 addresses",
    ]


@pytest.mark.parametrize(
    ("skip_networks", "ips", "inside"),
    [
        (
            ["10.0.0.0/8", "fd00::/8"],
            ["10.1.2.3", "fd00::25", "8.0.0.0/6", "192.0.2.0/24", "2001:db8::/32"],
            [("10.1.2.3/32", "10.0.0.0/8"), ("fd00::25/128", "fd00::/8")],
        ),
        # Regression (review): only the most specific skipped network holding the entry's
        # first address was asked: the /24 here, narrower than the /16 the /8 skips whole.
        (
            ["10.0.0.0/8", "10.1.0.0/24"],
            ["10.1.0.0/16", "10.1.0.7"],
            [("10.1.0.0/16", "10.0.0.0/8"), ("10.1.0.7/32", "10.1.0.0/24")],
        ),
    ],
    ids=["inside", "nested"],
)
def test_an_allowlist_entry_inside_a_skipped_network_is_warned_about(
    skip_networks: list[str], ips: list[str], inside: list[tuple[str, str]]
) -> None:
    # Regression (review): a skipped client gets RL_SKIPPED_LOCAL before the allowlist is
    # looked at, so "ip 10.1.2.3" with a negative RL_ALLOWLISTED weight never applied,
    # and loaded without a word. One that only overlaps (wider than the skipped network)
    # still covers the rest, and one outside it is fine.
    config = config_from_mapping(
        {"policy": {"skip_networks": skip_networks}, "allowlist": {"ips": ips}}
    )
    config = dataclasses.replace(config, allowlist_entries=config.read_allowlist())
    warned = sorted(w for w in config.warnings() if "skip_networks" in w)
    assert warned == [
        f"[allowlist] ip entry {entry} is inside [policy] skip_networks {network}: its "
        "clients are skipped (RL_SKIPPED_LOCAL) before the allowlist is looked at, so it "
        "never applies"
        for entry, network in inside
    ]


def test_many_allowlist_entries_inside_a_skipped_network_make_few_warnings() -> None:
    # Regression (review): an allowlist of the site's own range, one entry a line, made
    # a warning per entry on every config check and reload (1,600 lines for a /21).
    ips = [f"10.0.{i // 256}.{i % 256}" for i in range(1, 40)]
    config = config_from_mapping(
        {"policy": {"skip_networks": ["10.0.0.0/8"]}, "allowlist": {"ips": ips}}
    )
    config = dataclasses.replace(config, allowlist_entries=config.read_allowlist())
    warned = [w for w in config.warnings() if "skip_networks" in w]
    assert len(warned) == MAX_ENTRIES_WARNED + 1
    assert all("is inside [policy] skip_networks 10.0.0.0/8" in w for w in warned[:-1])
    assert warned[-1] == (
        f"[allowlist] {len(ips) - MAX_ENTRIES_WARNED} more ip entries are inside "
        "[policy] skip_networks, and never apply either"
    )
    one_more = config_from_mapping(
        {
            "policy": {"skip_networks": ["10.0.0.0/8"]},
            "allowlist": {"ips": ips[: MAX_ENTRIES_WARNED + 1]},
        }
    )
    one_more = dataclasses.replace(one_more, allowlist_entries=one_more.read_allowlist())
    assert one_more.warnings()[-1] == (
        "[allowlist] 1 more ip entry is inside [policy] skip_networks, and never applies either"
    )


async def test_a_client_of_the_sites_translator_is_checked_as_its_ipv4_host(
    unbound: Unbound,
) -> None:
    # Regression (review): an IPv4 client reaching an IPv6-only MX through the site's own
    # NAT64 (a network-specific prefix, RFC 6052; or RFC 8215's 64:ff9b:1::/48) was read
    # as an IPv6 client: its PTR under ip6.arpa does not exist, so RL_PTR_MISSING (+5)
    # for every such message. Policy reads it as the IPv4 host too.
    translated = "2001:db8:64::" + world.CONFIRMED_IP
    assert "RL_PTR_MISSING" in await symbols_for(
        Pipeline(make_config(unbound.nameserver)), translated
    )
    site = make_config(unbound.nameserver, policy={"nat64_prefixes": ["2001:db8:64::/96"]})
    assert await symbols_for(Pipeline(site), translated) == {}
    local = make_config(
        unbound.nameserver,
        policy={"nat64_prefixes": ["64:ff9b:1::/48"], "skip_networks": ["10.0.0.0/8"]},
    )
    symbols = await symbols_for(Pipeline(local), "64:ff9b:1:a00:0:500::")  # 10.0.0.5
    assert symbols["RL_SKIPPED_LOCAL"].options == ("10.0.0.5 in 10.0.0.0/8",)


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0", "64:ff9b::/96", "::ffff:0:0/96"])
def test_a_network_of_every_address_is_refused(entry: str) -> None:
    # Regression (review): the whole NAT64 or IPv4-mapped prefix reads as 0.0.0.0/0 and
    # switched every IPv4 check off without a word (as 0.0.0.0/0 itself did).
    with pytest.raises(ConfigError, match="covers every IPv"):
        config_from_mapping({"allowlist": {"ips": [entry]}}).read_allowlist()
    with pytest.raises(ConfigError, match="covers every IPv"):
        config_from_mapping({"policy": {"skip_networks": [entry]}})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("0.0.0.0/0", "'0.0.0.0/0' covers every IPv4 address (0.0.0.0/0)"),
        ("::/0", "'::/0' covers every IPv6 address (::/0)"),
        # The whole NAT64 or IPv4-mapped prefix: the message says what it reads as.
        ("64:ff9b::/96", "'64:ff9b::/96' covers every IPv4 address (0.0.0.0/0)"),
        (" ::ffff:0:0/96 ", "'::ffff:0:0/96' covers every IPv4 address (0.0.0.0/0)"),
        # Padded (a list file's "ip  NETWORK", a TOML string): named without the padding.
        (
            "\t198.51.100.7/16 ",
            "'198.51.100.7/16' has host bits set: write '198.51.0.0/16' for the network "
            "or '198.51.100.7' for the one address",
        ),
    ],
)
def test_network_errors_say_what_the_entry_means(entry: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_network(entry)
    assert str(error.value) == message


def test_ip_entries_of_one_family_never_hold_a_client_of_the_other() -> None:
    # The entries are looked up by (version, prefix length): an IPv6 /48 is never
    # applied to an IPv4 client (a shift of 32 - 48 bits), nor an IPv4 0.0.0.0/8 to
    # an IPv6 client whose top 8 bits are 0.
    allowlist = Allowlist()
    allowlist.add("ip", "2001:db8:1::/48", "test")
    allowlist.add("ip", "0.0.0.0/8", "test")
    allowlist.add("ip", "192.0.2.0/24", "test")
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.1")) == "ip 192.0.2.0/24"
    assert allowlist.match_ip(ipaddress.ip_address("::c000:201")) is None
    assert allowlist.match_ip(ipaddress.ip_address("2001:db8:1::1")) == "ip 2001:db8:1::/48"


def test_an_entry_of_one_address_is_named_as_written() -> None:
    # "ip 203.0.113.11" was shown as "ip 203.0.113.11/32", which a grep of the list for
    # the address the evidence names does not find (docs walkthrough).
    allowlist = Allowlist()
    allowlist.add("ip", "203.0.113.11", "test")
    allowlist.add("ip", "2001:db8::25/128", "test")
    assert allowlist.match_ip(ipaddress.ip_address("203.0.113.11")) == "ip 203.0.113.11"
    assert allowlist.match_ip(ipaddress.ip_address("2001:db8::25")) == "ip 2001:db8::25"


def test_network_entries_may_be_padded(tmp_path: Path) -> None:
    assert parse_network(" 192.0.2.0/24\t") == ipaddress.ip_network("192.0.2.0/24")
    assert parse_network(" 2001:db8::1 ") == ipaddress.ip_network("2001:db8::1/128")
    listed = tmp_path / "allow.txt"
    listed.write_text("ip   192.0.2.0/24\nip\t\t2001:db8::/32  # two tabs\n")
    allowlist = Allowlist()
    allowlist.add_file(str(listed))
    assert allowlist.match_ip(ipaddress.ip_address("192.0.2.9")) == "ip 192.0.2.0/24"
    assert allowlist.match_ip(ipaddress.ip_address("2001:db8::9")) == "ip 2001:db8::/32"
    config = config_from_mapping({"policy": {"skip_networks": [" 10.0.0.0/8 "]}})
    assert config.skip_networks == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    "entry",
    [world.IDN_DOMAIN, world.IDN_DOMAIN_ASCII, "BÜCHER-Versand.DE.", "@Bücher-versand.de"],
)
@pytest.mark.parametrize(
    "mail_from",
    [
        f"a@{world.IDN_DOMAIN}",
        f"a@{world.IDN_DOMAIN_ASCII}",
        f"A@{world.IDN_DOMAIN_ASCII.upper()}",
        f"<jörg@{world.IDN_DOMAIN.upper()}>",
        f" <a@lists.{world.IDN_DOMAIN}> ",
        f"a@{world.IDN_DOMAIN}.",  # bad syntax, but the domain is still the vouched one
        f"a..b@{world.IDN_DOMAIN_ASCII}",
    ],
)
def test_mail_from_entry_matches_unicode_and_a_label_senders(entry: str, mail_from: str) -> None:
    allowlist = Allowlist()
    allowlist.add("from", entry, "test")
    assert allowlist.from_domains == {world.IDN_DOMAIN_ASCII}, "stored as lower-case A-label"
    assert allowlist.match_from(mail_from) == f"from {world.IDN_DOMAIN_ASCII}"


@pytest.mark.parametrize(
    "mail_from",
    [
        None,
        "",
        "<>",
        f"a@not{world.IDN_DOMAIN}",
        f"a@{world.IDN_DOMAIN_ASCII}.evil.example.net",
        f"a@{world.IDN_DOMAIN}@",
        "a@[192.0.2.1]",
    ],
)
def test_mail_from_entry_does_not_match_other_senders(mail_from: str | None) -> None:
    allowlist = Allowlist()
    allowlist.add("from", world.IDN_DOMAIN, "test")
    assert allowlist.match_from(mail_from) is None


@pytest.mark.parametrize(
    ("mail_from", "covered"),
    [
        # The syntax check is one of those a from entry covers: a sender that fails it
        # is still covered when the part after its last "@" is the vouched domain ...
        ("a b@x.org", True),
        ("<a b@x.org>", True),
        ("@x.org", True),
        ("a@b@lists.x.org", True),
        ("a\r\n@x.org", True),
        # ... and not when that part is another name, one IDNA refuses, or not there.
        ("a@b@notx.org", False),
        ("a@b@x.org.evil.net", False),
        ("a@b@x..org", False),
        ("a@lists.x.org\x01", False),
        # Regression: outer whitespace and dots were trimmed off that part, so these
        # were covered, while a control character inside it was not.
        ("a b@x.org\r\n", False),
        ("<a b@x.org\t>", False),
        ("a b@.x.org", False),
        ("a b@x.org..", False),
        ("x.org", False),
        ("<lists.x.org>", False),
        # Regression (review): a default-ignorable character, which the checks call bad
        # syntax (not erased as IDNA's mapping would), was erased here and covered.
        ("a@x\u200b.org", False),
        ("a@lists.x.org\u200b", False),
        ("a@x\u034f.org", False),
        ("a@\u00adx.org", False),
    ],
)
def test_mail_from_entry_covers_a_bad_syntax_sender_by_its_domain(
    mail_from: str, covered: bool
) -> None:
    assert parse_sender(mail_from).kind is SenderKind.BAD_SYNTAX, "the case under test"
    allowlist = Allowlist()
    allowlist.add("from", "x.org", "test")
    assert allowlist.match_from(mail_from) == ("from x.org" if covered else None)


async def test_an_allowlisted_sender_is_spared_the_syntax_penalty(unbound: Unbound) -> None:
    sender = f"a b@{world.GOOD_DOMAIN}"
    symbols = await symbols_for(_pipeline(unbound), world.CONFIRMED_IP, mail_from=sender)
    assert "RL_MAILFROM_BAD_SYNTAX" in symbols
    pipeline = _pipeline(unbound, mail_from_domains=[world.GOOD_DOMAIN])
    symbols = await symbols_for(pipeline, world.CONFIRMED_IP, mail_from=sender)
    assert set(symbols) == {"RL_ALLOWLISTED_FROM"}
    assert symbols["RL_ALLOWLISTED_FROM"].options == (f"from {world.GOOD_DOMAIN}",)


async def test_idn_mail_from_entry_covers_sender_in_the_other_form(unbound: Unbound) -> None:
    for entry, sender in [
        (world.IDN_DOMAIN, world.IDN_DOMAIN_ASCII),
        (world.IDN_DOMAIN_ASCII, world.IDN_DOMAIN),
    ]:
        pipeline = _pipeline(unbound, mail_from_domains=[entry])
        symbols = await symbols_for(pipeline, world.MISSING_PTR_IP, mail_from=f"a@{sender}")
        assert set(symbols) == {"RL_PTR_MISSING", "RL_ALLOWLISTED_FROM"}
        assert symbols["RL_ALLOWLISTED_FROM"].options == (f"from {world.IDN_DOMAIN_ASCII}",)


def test_mail_from_entry_idna_rejects_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(AllowlistError, match="not a domain name IDNA accepts"):
        Allowlist().add("from", "bü!cher.de", "test")
    # An "xn--" label that is no A-label is refused as its Unicode would be (names.to_ascii).
    with pytest.raises(ConfigError, match=r"\[allowlist\].*IDNA.*'xn--zz\.de'"):
        config_from_mapping({"allowlist": {"mail_from_domains": ["xn--zz.de"]}})
    # A symbol IDNA2008 disallows and UTS46 allows is a name, as the checks read it.
    config_from_mapping({"allowlist": {"mail_from_domains": ["☃.de", "xn--n3h.de"]}})
    bad = tmp_path / "bad.txt"
    bad.write_text(f"from {world.IDN_DOMAIN}\nfrom bü_cher.de\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.txt:2: not a domain name IDNA accepts"):
        config_from_mapping({"allowlist": {"files": [str(bad)]}})


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ptr", "mail.linode.com"),
        ("ptr", "amazonses.com"),
        ("from", "amazonaws.com"),
        ("from", "members.linode.com"),
        ("helo", "members.linode.com"),
    ],
)
def test_entries_beside_or_above_customer_names_are_kept(kind: str, value: str) -> None:
    # A provider's own hosts, and sender domains (the MAIL FROM checks are not
    # exempted by a PTR anyone can get, and the private section of the list is no
    # registry's), stay allowed.
    allowlist = Allowlist()
    allowlist.add(kind, value, "test")
    assert value in (*allowlist.ptr_suffixes, *allowlist.from_domains, *allowlist.helo_names)


@pytest.mark.parametrize(("kind", "value"), [("from", "corp"), ("ptr", "lan")])
def test_an_entry_under_no_known_suffix_is_no_public_suffix(kind: str, value: str) -> None:
    # names.is_public_suffix asks the list with accept_unknown=False: a site's internal
    # top label (user@host.corp) is not refused as if it were "com".
    allowlist = Allowlist()
    allowlist.add(kind, value, "test")
    assert value in (*allowlist.ptr_suffixes, *allowlist.from_domains)


def test_a_from_entry_covers_a_sender_under_no_public_suffix() -> None:
    # RL_MAILFROM_SPECIAL_USE is one of the checks a from entry covers: a partner
    # sending from its internal domain (user@billing.partner.corp) is covered too.
    sender = "<a@Billing.Partner.CORP.>"
    assert parse_sender(sender).kind is SenderKind.SPECIAL_USE, "the case under test"
    allowlist = Allowlist()
    allowlist.add("from", "partner.corp", "test")
    assert allowlist.match_from(sender) == "from partner.corp"


def test_public_suffixes_below_are_rules_under_the_name() -> None:
    from scorer.names import _public_suffixes_below, is_public_suffix

    below = _public_suffixes_below()
    assert below["amazonaws.com"] == "s3.amazonaws.com"
    assert below["ovh.net"] == "*.hosting.ovh.net"
    assert below["hosting.ovh.net"] == "*.hosting.ovh.net"  # every child of it is one
    assert "google.com" not in below
    for name, rule in below.items():
        assert rule.endswith("." + name), (name, rule)
    # Private-section rules are there too, though the service's list is ICANN only.
    assert not is_public_suffix("members.linode.com")


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (
            "ptr",
            "*.partner.net",
            "a ptr entry covers the name and every name under it, so write 'partner.net'",
        ),
        ("from", "*.partner.net", "so write 'partner.net'"),
        # Padded (a list file's "ptr  *.x", a TOML string): still a wildcard, named bare.
        ("ptr", " *.partner.net ", "so write 'partner.net'"),
        # Regression (review): a wildcard alone said "so write ''".
        ("ptr", "*", "every name under it, so name the domain it is under"),
        ("helo", "\t*.partner.net", "no wildcards in helo entries"),
        ("helo", "*.partner.net", "no wildcards in helo entries"),
        ("ptr", "partner net", "'partner net' is more than one value: one entry each"),
        ("from", "user@part/ner.net", "not a domain name"),
        # Only a from entry is read as a domain after its "@": a PTR or HELO has none.
        ("helo", "postmaster@mx.partner.net", "not a domain name"),
        ("ptr", "@partner.net", "not a domain name"),
        # Regression: these loaded and exempted every sender under the suffix.
        ("from", "com", "'com' is a public suffix: a from entry covers every name under it"),
        ("ptr", "CO.UK.", "'CO.UK.' is a public suffix"),
        # Regression: this loaded and exempted every EC2 instance (its default PTR,
        # ec2-...compute-1.amazonaws.com, is forward-confirmed for whoever rents it).
        ("ptr", "amazonaws.com", "'amazonaws.com' has public suffixes under it (s3.amazonaws"),
        ("ptr", "Linode.com", "(members.linode.com), where the provider's customers get names"),
        ("ptr", "hosting.ovh.net", "'hosting.ovh.net' has public suffixes under it (*.hosting"),
        # Regression: a public suffix of the private section itself loaded, while the
        # domain above it was refused for it ("ptr linode.com" names members.linode.com);
        # this one exempted every EC2 instance in the region (rule *.compute.amazonaws.com).
        ("ptr", "Members.Linode.com", "'Members.Linode.com' is a public suffix of the list's"),
        ("ptr", "us-east-1.compute.amazonaws.com", "private section, where the provider's"),
        ("ptr", "ec2-3-4-5-6.compute-1.amazonaws.com", "(or their addresses, in ip entries)"),
        # Regression: dotted digits passed as names, and no PTR or HELO name is one.
        ("ptr", "192.0.2.1", "'192.0.2.1' is an address: use an ip entry"),
        ("helo", "192.0.2.1.", "is an address: use an ip entry"),
        # Regression: written with leading zeros (RFC 5321 section 4.1.3 reads them as
        # decimal, as the HELO checks do), an address passed as a name.
        ("helo", "192.0.2.010", "'192.0.2.010' is an address: use an ip entry"),
        ("ptr", "::ffff:192.0.2.010", "is an address: use an ip entry"),
        # Regression: a network or an address literal was "not a domain name: label
        # '0/24' is not letters, digits, ...", which does not say what to write instead.
        ("ptr", "192.0.2.0/24", "'192.0.2.0/24' is a network: use an ip entry"),
        ("ptr", "2001:DB8::/32", "'2001:DB8::/32' is a network: use an ip entry"),
        ("helo", "[192.0.2.1]", "'[192.0.2.1]' is an address: use an ip entry"),
        ("helo", "[IPv6:2001:db8::1]", "is an address: use an ip entry"),
        # Regression (review): "from 192.0.2.1" loaded and covered no client, only the
        # senders u@192.0.2.1 and u@x.192.0.2.1; the others said "label '0/24' is not...".
        ("from", "192.0.2.1", "'192.0.2.1' is an address, not a sender's domain: for the"),
        ("from", "bounce@10.0.0.1", "is an address, not a sender's domain: for the client"),
        ("from", "192.0.2.0/24", "'192.0.2.0/24' is a network, not a sender's domain"),
        ("from", "user@[192.0.2.1]", "is an address, not a sender's domain"),
        ("from", "2001:db8::1", "is an address, not a sender's domain"),
        # Regression: host bits were dropped without a word (a typo for /32?).
        ("ip", "198.51.100.7/16", "write '198.51.0.0/16' for the network or '198.51.100.7'"),
    ],
)
def test_name_entries_that_could_never_match_are_refused(
    kind: str, value: str, message: str
) -> None:
    """Regression: "*.partner.net" loaded without a word and never matched anything."""
    with pytest.raises(AllowlistError, match=re.escape(message)):
        Allowlist().add(kind, value, "test")


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        # helo entries that load and can never match a forward-confirmed PTR name.
        ("helo", "localhost", "'localhost' is a single label: a helo entry matches"),
        ("helo", "mail", "is a single label"),
        ("helo", "co.uk", "'co.uk' is a public suffix: a helo entry matches"),
    ],
)
def test_a_helo_entry_no_confirmed_ptr_name_can_be_is_refused(
    kind: str, value: str, message: str
) -> None:
    # Regression (review): they loaded, and `config check` said OK.
    with pytest.raises(AllowlistError, match=re.escape(message)):
        Allowlist().add(kind, value, "test")
    # A host name under a suffix of the site's own is a HELO a private resolver confirms.
    allowlist = Allowlist()
    allowlist.add("helo", "mx.corp.lan.", "test")
    assert allowlist.helo_names == {"mx.corp.lan"}


def test_ptr_and_helo_entries_in_unicode_match_a_label_dns_names() -> None:
    # PTR answers and forward-confirmed names are A-labels; an entry written in
    # Unicode used to be kept as written and could never match.
    allowlist = Allowlist()
    allowlist.add("ptr", "Mail.Bücher.DE.", "test")
    allowlist.add("helo", "mx1.bücher.de", "test")
    confirmed = ["mx1.mail.xn--bcher-kva.de"]
    assert allowlist.match_ptr(confirmed) == (
        "ptr mail.xn--bcher-kva.de (mx1.mail.xn--bcher-kva.de is forward-confirmed)"
    )
    assert allowlist.match_helo("MX1.xn--bcher-kva.de", ["mx1.xn--bcher-kva.de"]) is not None
    # Regression: the same HELO sent in Unicode was compared as written.
    assert allowlist.match_helo("MX1.Bücher.de", ["mx1.xn--bcher-kva.de"]) is not None
    for not_idna in ("\u200d.example", "xn--1ug.example"):  # a lone ZWJ, in either form
        with pytest.raises(AllowlistError, match="not a domain name IDNA accepts"):
            allowlist.add("ptr", not_idna, "test")


def test_entries_and_names_in_capitals_are_read_as_the_checks_read_them() -> None:
    # Regression: entries and the HELO were lower-cased by str.lower(), which makes a
    # capital sigma before a digit a final sigma (U+03C2); IDNA's mapping (UTS46), by
    # which the checks read HELOs and senders, makes it U+03C3: another A-label.
    capitals, small = "\u0394\u03a31.gr", "\u03b4\u03c31.gr"  # delta, sigma, 1
    sigma = to_ascii(capitals)
    assert sigma == to_ascii(small) != to_ascii(capitals.lower()), "the case under test"
    allowlist = Allowlist()
    allowlist.add("from", capitals, "test")
    allowlist.add("helo", f"mx.{small}", "test")
    assert allowlist.match_from(f"a@{capitals}") == f"from {sigma}"
    assert parse_helo(f"MX.{capitals.upper()}").ascii == f"mx.{sigma}"
    assert allowlist.match_helo(f"MX.{capitals.upper()}", [f"mx.{sigma}"]) is not None


@pytest.mark.parametrize(
    ("helo", "covered"),
    [
        ("mx1.partner.net", True),
        ("MX1.Partner.NET.", True),  # one final dot roots the name, as the checks read it
        ("mx1.partner.net\u3002", True),  # UTS46 maps the ideographic full stop to "."
        # Regression: these were stripped of outer whitespace and dots before comparing,
        # so the entry covered HELOs the HELO checks call invalid (RL_HELO_INVALID).
        (".mx1.partner.net", False),
        ("mx1.partner.net..", False),
        ("mx1.partner.net\r\n", False),
        ("\tmx1.partner.net", False),
        ("mx1.partner.net\u00a0", False),
    ],
)
def test_a_helo_entry_covers_the_helo_equal_to_it_only(helo: str, covered: bool) -> None:
    allowlist = Allowlist()
    allowlist.add("helo", "mx1.partner.net", "test")
    match = allowlist.match_helo(helo, ["mx1.partner.net"])
    assert match == ("helo mx1.partner.net (= forward-confirmed PTR)" if covered else None)
    assert (parse_helo(helo).kind is HeloKind.INVALID) is not covered


def test_ptr_entry_evidence_is_escaped_and_capped() -> None:
    # Regression: the confirmed name (from DNS) went into the option raw: a 970-character
    # option full of backslashes from a hostile reverse zone.
    allowlist = Allowlist()
    allowlist.add("ptr", "partner.net", "test")
    hostile = "\\" * 200 + "x" * 700 + ".partner.net"
    evidence = allowlist.match_ptr([hostile])
    assert evidence is not None and len(evidence) <= 160
    assert "\\" not in evidence.replace("\\x5c", "")  # every backslash is escaped


async def test_shadow_mode_returns_evidence_at_zero_and_counts_it(
    aiohttp_client: Any, unbound: Unbound
) -> None:
    config = make_config(unbound.nameserver, policy={"shadow_symbols": ["RL_PTR_MISSING"]})
    client = await aiohttp_client(create_app(config))
    body = await (
        await client.post("/v1/check", json={"ip": world.MISSING_PTR_IP, "helo": "localhost"})
    ).json()
    symbols = {s["name"]: s for s in body["symbols"]}
    assert symbols["RL_PTR_MISSING"]["score"] == 0.0
    assert "shadow: would score +5" in symbols["RL_PTR_MISSING"]["options"]
    assert symbols["RL_PTR_MISSING"]["shadow_score"] == 5.0
    assert symbols["RL_HELO_LOCALHOST"]["score"] == 1.0, "only the listed symbol is shadowed"
    assert "shadow_score" not in symbols["RL_HELO_LOCALHOST"]
    assert body["score"] == 1.0
    metrics = await (await client.get("/metrics")).text()
    assert 'rdns_scorer_shadow_symbols_total{symbol="RL_PTR_MISSING"} 1.0' in metrics
    assert 'rdns_scorer_shadow_score_raised_total{symbol="RL_PTR_MISSING"} 5.0' in metrics


async def test_a_shadowed_negative_weight_counts_as_score_taken_off(
    aiohttp_client: Any, unbound: Unbound
) -> None:
    # The sign reaches the reply ("would score -2", shadow_score -2) and the metrics: what
    # a shadowed negative weight would have taken off, never what it would have added.
    config = make_config(
        unbound.nameserver,
        allowlist={"ips": [world.MISSING_PTR_IP]},
        weights={"RL_ALLOWLISTED": -2},
        policy={"shadow_symbols": ["RL_ALLOWLISTED"]},
    )
    client = await aiohttp_client(create_app(config))
    body = await (await client.post("/v1/check", json={"ip": world.MISSING_PTR_IP})).json()
    (allowlisted,) = body["symbols"]
    assert allowlisted["options"][-1] == "shadow: would score -2"
    assert (allowlisted["score"], allowlisted["shadow_score"], body["score"]) == (0.0, -2.0, 0.0)
    metrics = await (await client.get("/metrics")).text()
    assert 'rdns_scorer_shadow_score_lowered_total{symbol="RL_ALLOWLISTED"} 2.0' in metrics
    assert 'rdns_scorer_shadow_score_raised_total{symbol="RL_ALLOWLISTED"} 0.0' in metrics


async def test_global_shadow_mode(unbound: Unbound) -> None:
    pipeline = Pipeline(make_config(unbound.nameserver, policy={"shadow": True}))
    reply = await pipeline.check(parse_request({"ip": world.MISSING_PTR_IP}).request)
    assert reply.score == 0.0 and reply.shadowed == (("RL_PTR_MISSING", 5.0),)


async def test_global_shadow_mode_leaves_a_zero_weight_symbol_as_it_is(unbound: Unbound) -> None:
    # scoring.score_hits shadows only a symbol with a score to watch: under shadow = true a
    # zero-weight one (RL_SKIPPED_LOCAL, every *_TEMPFAIL) goes out as always, with no
    # "shadow: would score +0" option or shadow_score, and is not counted as shadowed.
    config = make_config(unbound.nameserver, policy={"shadow": True})
    reply = await Pipeline(config).check(parse_request({"ip": "10.1.1.1"}).request)
    (skipped,) = reply.symbols
    assert skipped == SymbolResult("RL_SKIPPED_LOCAL", 0.0, ("10.1.1.1 in 10.0.0.0/8",))
    assert reply.shadowed == ()
    hits = [Hit("RL_PTR_TEMPFAIL", ("PTR: timeout",)), Hit("RL_PTR_MISSING", ("no PTR",))]
    scored = score_hits(hits, config.weights, config.is_shadowed)
    assert scored.symbols[0] == SymbolResult("RL_PTR_TEMPFAIL", 0.0, ("PTR: timeout",))
    assert scored.shadowed == (("RL_PTR_MISSING", 5.0),)


@pytest.mark.parametrize("weight", [2.0, -2.0])
def test_a_repeated_symbol_is_scored_once_at_its_strongest(weight: float) -> None:
    # scoring.score_hits: one result per symbol (rspamd would add repeated names up),
    # the hit of the largest |weight x confidence| with its own evidence, a negative
    # weight included; of hits that tie, the first. The total counts it once.
    hits = [
        Hit("RL_HELO_GENERIC", ("weak",), 0.5),
        Hit("RL_HELO_GENERIC", ("strong",), 0.9),
        Hit("RL_PTR_MISSING", ("no PTR",)),
        Hit("RL_HELO_GENERIC", ("middle",), 0.7),
        Hit("RL_PTR_MISSING", ("again",)),
    ]
    weights = {"RL_HELO_GENERIC": weight, "RL_PTR_MISSING": 5.0}
    scored = score_hits(hits, weights, lambda _name: False)
    assert scored.symbols == (
        SymbolResult("RL_HELO_GENERIC", round(weight * 0.9, 4), ("strong",)),
        SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR",)),
    )
    reply = Pipeline(config_from_mapping({"weights": weights})).reply_for(hits)
    assert reply.score == round(weight * 0.9 + 5.0, 4)


def test_the_total_is_rounded_as_the_scores_are() -> None:
    # scoring.score_hits: each score is rounded to 4 places and so is their sum: 0.1 + 0.2
    # is 0.3 in the reply, not 0.30000000000000004.
    weights = {"RL_PTR_MISSING": 0.1, "RL_HELO_LOCALHOST": 0.2}
    hits = [Hit("RL_PTR_MISSING", ("no PTR",)), Hit("RL_HELO_LOCALHOST", ("helo=localhost",))]
    reply = Pipeline(config_from_mapping({"weights": weights})).reply_for(hits)
    assert [s.score for s in reply.symbols] == [0.1, 0.2]
    assert reply.score == 0.3


def test_a_score_scaled_by_confidence_is_rounded_to_four_places() -> None:
    # scoring.score_hits: weight x confidence is rounded as the total is, so the reply says
    # 0.3333, and a shadowed symbol "would score +0.6667", not 0.6666666666666666.
    weights = {"RL_HELO_LITERAL_MISMATCH": 1.0, "RL_PTR_GENERIC": 1.0}
    policy = {"shadow_symbols": ["RL_PTR_GENERIC"]}
    hits = [
        Hit("RL_HELO_LITERAL_MISMATCH", ("helo=[10.0.0.1]",), NAT_SLIP_CONFIDENCE),
        Hit("RL_PTR_GENERIC", ("ptr=x",), 2 / 3),
    ]
    reply = Pipeline(config_from_mapping({"weights": weights, "policy": policy})).reply_for(hits)
    assert [(s.score, s.shadow_score) for s in reply.symbols] == [(0.3333, 0.0), (0.0, 0.6667)]
    assert reply.symbols[1].options[-1] == "shadow: would score +0.6667"
    assert (reply.score, reply.shadowed) == (0.3333, (("RL_PTR_GENERIC", 0.6667),))


def test_a_shadowed_score_too_small_to_round_is_still_sent_as_shadowed() -> None:
    # Regression: 0.0002 x 0.2 rounds to 0 at 4 places, and the symbol went out as a plain
    # 0 with no shadow_score: SpamAssassin then applied the admin's own score for it.
    weights = {"RL_PTR_GENERIC": 0.0002}
    policy = {"shadow_symbols": ["RL_PTR_GENERIC"]}
    hits = [Hit("RL_PTR_GENERIC", ("ptr=x",), 0.2)]
    reply = Pipeline(config_from_mapping({"weights": weights, "policy": policy})).reply_for(hits)
    (symbol,) = reply.symbols
    assert symbol.score == 0.0 and symbol.shadow_score == pytest.approx(0.00004)
    assert symbol.options[-1] == "shadow: would score +4e-05"
    assert json.loads(reply.to_json(1.0))["symbols"][0]["shadow_score"] == symbol.shadow_score
    assert reply.shadowed == (("RL_PTR_GENERIC", symbol.shadow_score),)


@dataclass
class Reloadable:
    """A service whose config file the test rewrites before asking it to reload."""

    client: Any
    path: Path
    base: str
    auth: dict[str, str]
    peers: list[str]  # one entry per time the other workers were asked to reload


async def _reloadable(
    aiohttp_client: Any, unbound: Unbound, tmp_path: Path, workers: int
) -> Reloadable:
    path = tmp_path / "scorer.toml"
    base = f'[server]\ntoken = "t0k"\n[dns]\nnameservers = ["{unbound.nameserver}"]\n'
    path.write_text(base)
    peers: list[str] = []
    app = create_app(
        load_config(path, environ={}),
        lambda: load_config(path, environ={}),
        peer_reload=(lambda: peers.append("asked")) if workers > 1 else None,
    )
    client = await aiohttp_client(app)
    return Reloadable(client, path, base, {"Authorization": "Bearer t0k"}, peers)


@pytest.fixture
async def reloadable(aiohttp_client: Any, unbound: Unbound, tmp_path: Path) -> Reloadable:
    """One worker of several (``serve --workers 2``)."""
    return await _reloadable(aiohttp_client, unbound, tmp_path, workers=2)


@pytest.fixture
async def lone_reloadable(aiohttp_client: Any, unbound: Unbound, tmp_path: Path) -> Reloadable:
    """The service as one process (``serve``)."""
    return await _reloadable(aiohttp_client, unbound, tmp_path, workers=1)


async def test_a_lowered_body_limit_holds_for_chunked_bodies(reloadable: Reloadable) -> None:
    # Regression: aiohttp's own cap stays at the start-up limit; after a reload to a
    # lower one, only bodies with a Content-Length were held to it.
    reloadable.path.write_text(
        reloadable.base.replace("[server]\n", f"[server]\nmax_body_bytes = {MIN_BODY_BYTES}\n")
    )
    assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    body = json.dumps({"ip": world.MISSING_PTR_IP, "helo": "x" * 3 * MIN_BODY_BYTES}).encode()

    async def chunked() -> AsyncIterator[bytes]:
        yield body

    headers = {**reloadable.auth, "Content-Type": "application/json"}
    for data in (body, chunked()):
        response = await reloadable.client.post("/v1/check", data=data, headers=headers)
        assert response.status == 413, await response.text()
    # The limit is the largest body taken: that many bytes are read, one more are not.
    for size, status in ((MIN_BODY_BYTES, 200), (MIN_BODY_BYTES + 1, 413)):
        padded = _json_body_of(size)

        async def chunks(body: bytes = padded) -> AsyncIterator[bytes]:
            yield body

        for data in (padded, chunks()):
            response = await reloadable.client.post("/v1/check", data=data, headers=headers)
            assert response.status == status, (size, await response.text())


def _json_body_of(size: int) -> bytes:
    """A check request (an internal client: no lookup) of exactly ``size`` bytes."""
    body = json.dumps({"ip": "10.1.1.1", "helo": ""}).encode()
    return body.replace(b'""', b'"' + b"x" * (size - len(body)) + b'"')


async def test_a_reload_warns_about_a_scoring_tempfail_symbol(
    lone_reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Accepted (the admin may mean it), but said: it scores every message while DNS fails.
    reloadable = lone_reloadable
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert "RL_PTR_TEMPFAIL" not in caplog.text
    reloadable.path.write_text(reloadable.base + "[weights]\nRL_PTR_TEMPFAIL = 0.5\n")
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert "[weights] RL_PTR_TEMPFAIL = 0.5: every message is scored +0.5" in caplog.text


async def test_a_reload_that_outgrows_the_plugins_timeout_says_to_install_again(
    lone_reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (journey review): raising request_deadline past what the installers
    # wrote into the plugins (1 s for 0.8) reloaded without a word; only `rspamd check`
    # found the checks given up on, unscored.
    reloadable = lone_reloadable
    for deadline, warned in (("1.5", True), ("1.2", False), ("0.5", False)):
        reloadable.path.write_text(reloadable.base + f"request_deadline = {deadline}\n")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
            response = await reloadable.client.post("/v1/reload", headers=reloadable.auth)
            assert response.status == 200
        said = "plugins installed for the old one wait" in caplog.text
        assert said is warned, (deadline, caplog.text)
    previous = config_from_mapping({})
    raised = config_from_mapping({"dns": {"request_deadline": 1.5}})
    assert raised.reload_warnings(previous.server, previous)[0].startswith(
        "[dns] request_deadline 0.8 -> 1.5: plugins installed for the old one wait 1 s and "
        "give up on a check that takes longer"
    )


async def test_a_reload_says_what_it_changed(
    lone_reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (journey review): every reload logged "config reloaded" alone, so an
    # admin who tuned a weight or added an allowlist entry could not see it taken, nor
    # tell it from a reload of a file they had not edited (another copy, a typo'd path).
    reloadable = lone_reloadable
    with caplog.at_level(logging.INFO, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert re.search(
        r"config reloaded on POST /v1/reload \(pid \d+\): no change$", caplog.text, re.M
    )
    caplog.clear()
    allowlist = reloadable.path.parent / "allowlist.txt"
    allowlist.write_text("ip 192.0.2.0/24\nptr mail.partner.example.net\n")
    reloadable.path.write_text(
        reloadable.base
        + "max_ptr_names = 5\n"
        + '[policy]\nshadow_symbols = ["RL_HELO_NOT_FQDN"]\n'
        + '[allowlist]\nfiles = ["allowlist.txt"]\n'
        + "[weights]\nRL_PTR_UNVERIFIED = 2.5\n"
    )
    with caplog.at_level(logging.INFO, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert (
        "): [dns] max_ptr_names 10 -> 5; [policy] shadow_symbols (1 entry, were 0); "
        "[allowlist] files (1 entry, were 0); [weights] RL_PTR_UNVERIFIED 3 -> 2.5; "
        "allowlist: 2 entries (were 0)"
    ) in caplog.text, caplog.text
    # A secret is named, never shown.
    caplog.clear()
    reloadable.path.write_text(reloadable.path.read_text().replace('"t0k"', '"n3w"'))
    with caplog.at_level(logging.INFO, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert "): [server] token\n" in caplog.text and "n3w" not in caplog.text, caplog.text


async def test_a_worker_of_several_leaves_the_reload_warnings_to_its_supervisor(
    reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): every worker logged them; workers.Supervisor._reload now does,
    # once (test_performance_features.test_a_reload_with_several_workers_warns_once).
    reloadable.path.write_text(
        reloadable.base.replace("[server]\n", "[server]\nmax_body_bytes = 32768\n")
        + "[weights]\nRL_PTR_TEMPFAIL = 0.5\n"
    )
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert reloadable.peers == ["asked"]
    assert "applies after a restart" not in caplog.text
    assert "RL_PTR_TEMPFAIL" not in caplog.text


async def test_a_reload_says_which_start_only_keys_wait_for_a_restart(
    lone_reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (docs walkthrough): a reload that changed listen, workers or event_loop
    # logged "config reloaded" alone, and the service stayed on the old port.
    reloadable = lone_reloadable
    changed = '[server]\nlisten = "127.0.0.1:11999"\nworkers = 3\nevent_loop = "asyncio"\n'
    reloadable.path.write_text(reloadable.base.replace("[server]\n", changed))
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    warned = [record.getMessage() for record in caplog.records]
    assert warned == [
        '[server] listen "127.0.0.1:11999" applies after a restart; "127.0.0.1:11340" until then',
        "[server] workers 3 applies after a restart; 1 until then",
        '[server] event_loop "asyncio" applies after a restart; "auto" until then',
    ]
    # Said against what the service started with, at every reload until the restart.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert len(caplog.records) == 3
    caplog.clear()
    reloadable.path.write_text(reloadable.base)
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert caplog.records == []


async def test_a_reload_that_drops_the_token_in_use_says_who_it_refuses(
    lone_reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): a new token logged "config reloaded" alone, while every plugin
    # still holding the old one was refused from then on and failed open.
    reloadable = lone_reloadable
    kept = reloadable.base.replace('token = "t0k"', 'token = "n3w"\nprevious_tokens = ["t0k"]')
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
        reloadable.path.write_text(kept)  # a rotation: the old one still taken
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert "token changed" not in caplog.text
    reloadable.path.write_text(reloadable.base.replace('token = "t0k"', 'token = "0th3r"'))
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        new = {"Authorization": "Bearer n3w"}
        assert (await reloadable.client.post("/v1/reload", headers=new)).status == 200
    warned = [r.getMessage() for r in caplog.records if "token changed" in r.getMessage()]
    assert warned == [
        "[server] token changed: a plugin still sending the old one is refused (401) and "
        "fails open, its mail unscored, until it has the new one; keep the old one in "
        "previous_tokens while they change (docs/security.md, Rotating the token)"
    ]
    assert "n3w" not in caplog.text and "0th3r" not in caplog.text
    # Regression (review): removing the token said "changed ... refused", while nothing is
    # refused then: checks need no token, and only POST /v1/reload is.
    reloadable.path.write_text(reloadable.base.replace('token = "t0k"\n', ""))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        other = {"Authorization": "Bearer 0th3r"}
        assert (await reloadable.client.post("/v1/reload", headers=other)).status == 200
    assert [r.getMessage() for r in caplog.records] == [
        "[server] token removed: checks need no token now, and POST /v1/reload is refused "
        "(send SIGHUP)"
    ]


async def test_a_raised_body_limit_waits_for_a_restart_and_says_so(
    lone_reloadable: Reloadable, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): aiohttp kept the start-up cap (16384) while the 413 named the
    # reloaded limit, and Expect answered "100 Continue" to bodies aiohttp then refused.
    reloadable = lone_reloadable
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):  # the same limit: no word
        reloadable.path.write_text(
            reloadable.base.replace("[server]\n", "[server]\nmax_body_bytes = 16384\n")
        )
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert "applies after a restart" not in caplog.text
    reloadable.path.write_text(
        reloadable.base.replace("[server]\n", "[server]\nmax_body_bytes = 32768\n")
    )
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert (await reloadable.client.post("/v1/reload", headers=reloadable.auth)).status == 200
    assert "max_body_bytes 32768 applies after a restart; 16384 until then" in caplog.text
    body = json.dumps({"ip": world.MISSING_PTR_IP, "helo": "x" * 20000}).encode()
    headers = {**reloadable.auth, "Content-Type": "application/json"}
    response = await reloadable.client.post("/v1/check", data=body, headers=headers)
    assert response.status == 413
    assert (await response.json())["error"] == "body larger than 16384 bytes"
    reader, writer = await _raw_request(
        reloadable.client.port,
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer t0k\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body),
    )
    status, _headers, reply = await _read_response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413 "), status
    assert json.loads(reply)["error"] == "body larger than 16384 bytes"


async def test_reloads_apply_in_the_order_they_read_the_config() -> None:
    """Two reloads in a row: the second reads the file after the first, so its config is
    the one that must stay. Without one reload at a time, a first reading that was slow
    (50,000 allowlist lines) was applied last, over the newer one (review: untested)."""
    first_reading = threading.Event()
    calls: list[int] = []

    def loader() -> Config:  # the file as it was at each reading: 6.0, then 7.0
        call = len(calls)
        calls.append(call)
        if call == 0:
            assert first_reading.wait(10), "the first reading was never let go"
        return config_from_mapping({"weights": {"RL_PTR_MISSING": 6.0 + call}})

    app = create_app(config_from_mapping({}), loader)
    service = app[SERVICE_KEY]
    older = asyncio.ensure_future(service.reload("first"))
    await asyncio.sleep(0.05)  # the first reload is reading, in its thread
    newer = asyncio.ensure_future(service.reload("second"))
    await asyncio.sleep(0.05)
    first_reading.set()
    await asyncio.gather(older, newer)
    assert calls == [0, 1]
    assert service.config.weights["RL_PTR_MISSING"] == 7.0


async def test_reload_needs_a_token_even_where_checks_do_not(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Reloading is an admin action: without [server] token it is never open.
    reloads: list[str] = []
    config = config_from_mapping({})
    client = await aiohttp_client(create_app(config, lambda: config, lambda: reloads.append("")))
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        response = await client.post("/v1/reload")
        assert response.status == 401
        assert (await client.post("/v1/reload")).status == 401
    # Regression (review): a refused reload was only a metric: an admin action someone
    # tried left no line. Rate-limited as refused checks are, and told apart from them.
    lines = [r.getMessage() for r in caplog.records if "request(s) refused" in r.getMessage()]
    assert lines == [
        '1 reload request(s) refused with 401 since the last such line: "reload needs the '
        'bearer token ([server] token)" (field Authorization; the latest from 127.0.0.1); '
        "POST /v1/reload takes "
        "[server] token as a bearer token; or send SIGHUP (docs/operations.md, Reload)"
    ], lines
    assert await response.json() == {
        "error": "reload needs the bearer token ([server] token)",
        "field": "Authorization",
    }
    assert reloads == [], "nothing reloaded, no other worker asked"
    assert (await client.post("/v1/check", json={"ip": "10.1.1.1"})).status == 200


async def test_reload_endpoint_swaps_config_and_rejects_bad_ones(reloadable: Reloadable) -> None:
    client, path, base, auth = (
        reloadable.client, reloadable.path, reloadable.base, reloadable.auth
    )  # fmt: skip
    request = {"ip": world.MISSING_PTR_IP}

    assert (await client.post("/v1/reload")).status == 401
    path.write_text(base + "[weights]\nRL_PTR_MISSING = 9\n")
    response = await client.post("/v1/reload", headers=auth)
    assert response.status == 200
    assert await response.json() == {"status": "reloaded", "warnings": []}  # as the README
    assert reloadable.peers == ["asked"]
    body = await (await client.post("/v1/check", json=request, headers=auth)).json()
    assert body["score"] == 9.0

    path.write_text(base + "[weights]\nRL_PTR_MISSING = 'lots'\n")
    response = await client.post("/v1/reload", headers=auth)
    assert response.status == 422
    reply = await response.json()
    assert "RL_PTR_MISSING" in reply["error"] and reply["field"] == "config"
    # Regression: the other workers were not told, so only this one reported the
    # rejected config (and a scrape of another showed all well).
    assert reloadable.peers == ["asked", "asked"]
    body = await (await client.post("/v1/check", json=request, headers=auth)).json()
    assert body["score"] == 9.0, "the old config keeps serving"
    metrics = await (await client.get("/metrics")).text()
    assert 'rdns_scorer_config_reloads_total{result="failure"} 1.0' in metrics
    assert 'rdns_scorer_config_reloads_total{result="success"} 1.0' in metrics
    # Regression: its replies were JSON whatever the client asked for (its 417 was not).
    accept = {"Accept": "application/msgpack"}
    for headers, status in (({**auth, **accept}, 422), (accept, 401)):
        response = await client.post("/v1/reload", headers=headers)
        assert (response.status, response.content_type) == (status, "application/msgpack")
        assert set(msgpack.unpackb(await response.read())) == {"error", "field"}
    # Regression (docs walkthrough): a change that waits for a restart was said in the
    # log alone, and the API answered a plain "reloaded".
    path.write_text(base.replace("[server]\n", "[server]\nmax_body_bytes = 65536\n", 1))
    response = await client.post("/v1/reload", headers={**auth, **accept})
    assert msgpack.unpackb(await response.read()) == {
        "status": "reloaded",
        "warnings": ["[server] max_body_bytes 65536 applies after a restart; 16384 until then"],
    }


def test_sighup_reloads_a_running_service(unbound: Unbound) -> None:
    import json
    import urllib.request

    service = ScorerProcess(unbound.nameserver).start()
    try:

        def score() -> float:
            request = urllib.request.Request(
                service.url + "/v1/check",
                data=json.dumps({"ip": world.MISSING_PTR_IP}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return float(json.load(response)["score"])

        assert score() == 5.0
        service.config_path.write_text("[weights]\nRL_PTR_MISSING = 7.5\n")
        assert service._process is not None
        service._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while score() != 7.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert score() == 7.5
        service.config_path.write_text("[weights\n")
        service._process.send_signal(signal.SIGHUP)
        # The rejected reload first, then the score (review: a sleep, and a score read
        # before the reload had run passed whatever the reload did).
        log = eventually(service.log, lambda text: "reload on SIGHUP failed" in text)
        assert "reload on SIGHUP failed" in log
        assert score() == 7.5
        # Logged and counted by the reload itself: its task ends without an exception.
        assert "never retrieved" not in service.log()
        assert f"listening on {service.address}" in service.log(), "the start-up line"
    finally:
        service.stop()


async def test_overload_answers_503_at_once(aiohttp_client: Any) -> None:
    silent = FaultyDns("silent").start()
    try:
        config = config_from_mapping(
            {
                "dns": {"nameservers": [silent.nameserver], "timeout": 2, "request_deadline": 2},
                "server": {"max_in_flight": 2},
            }
        )
        client = await aiohttp_client(create_app(config))
        slow = [
            asyncio.ensure_future(client.post("/v1/check", json={"ip": f"198.51.100.{i}"}))
            for i in (1, 2)
        ]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        response = await client.post("/v1/check", json={"ip": "198.51.100.3"})
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        # Regression (docs walkthrough): "field": "body", which the body was not at fault for.
        assert await response.json() == {"error": "overloaded, retry later", "field": "service"}
        assert client.app is not None
        assert client.app[SERVICE_KEY].metrics.overloaded.value == 1
        assert time.monotonic() - started < 0.5
        assert all(r.status == 200 for r in await asyncio.gather(*slow))
        assert client.app is not None and client.app[SERVICE_KEY].in_flight == 0
    finally:
        silent.stop()


async def _raw_request(port: int, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    return reader, writer


async def test_stalled_bodies_take_no_check_slot_and_time_out(aiohttp_client: Any) -> None:
    # Regression: a client that sent the headers and stalled the body held one of
    # max_in_flight for good: two of them and every real check got 503.
    config = config_from_mapping({"server": {"max_in_flight": 2}})
    client = await aiohttp_client(create_app(config))
    head = (
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    stalled = [await _raw_request(client.port, head) for _ in range(3)]
    await asyncio.sleep(0.2)
    response = await client.post("/v1/check", json={"ip": "10.1.1.1"})  # skipped: no DNS
    assert response.status == 200
    started = time.monotonic()
    for reader, writer in stalled:
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert b" 408 " in status_line
        writer.close()
    assert time.monotonic() - started < 3


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes, bytes]:
    """One HTTP/1.1 response: status line, headers, body (by Content-Length)."""
    status = await asyncio.wait_for(reader.readline(), 5)
    headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = re.search(rb"Content-Length: (\d+)", headers)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return status, headers, body


async def _post_after_100_continue(port: int, body: bytes, expect: bytes) -> bytes:
    """POST ``body`` to /v1/check as a client asking ``Expect: 100-continue`` does: the
    headers, then the body once "100 Continue" came; the final status line."""
    reader, writer = await _raw_request(
        port,
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: %s\r\nContent-Length: %d\r\n\r\n" % (expect, len(body)),
    )
    assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(body)
    status, _headers, _body = await _read_response(reader)
    writer.close()
    return status


@pytest.mark.parametrize("encoding", ["foo", "gzip, br", "compress"])
async def test_a_content_coding_that_is_not_decoded_is_a_415(
    aiohttp_client: Any, encoding: str
) -> None:
    # Regression (review): aiohttp passed unknown codings through, so the body was read as
    # it came and answered 200 (compressed bytes would have been read as JSON).
    client = await aiohttp_client(create_app(config_from_mapping({})))
    response = await client.post(
        "/v1/check", json={"ip": "10.1.1.1"}, headers={"Content-Encoding": encoding}
    )
    assert response.status == 415
    reply = await response.json()
    assert reply["field"] == "Content-Encoding"
    assert reply["error"].startswith(f"Content-Encoding {encoding} is not supported")
    # An empty Content-Encoding is an empty list of codings (regression: it was a 415).
    plain = b'{"ip": "10.1.1.1"}'
    encoded = {"GZIP": gzip.compress(plain), "deflate": zlib.compress(plain)}
    for fine in ("identity", "GZIP", "deflate", "", " "):
        headers = {"Content-Encoding": fine, "Content-Type": "application/json"}
        response = await client.post("/v1/check", data=encoded.get(fine, plain), headers=headers)
        assert response.status == 200, fine


@pytest.mark.parametrize(
    ("lines", "body"),
    [
        ((b"identity", b"foo"), b'{"ip": "10.1.1.1"}'),
        ((b"gzip", b"gzip"), gzip.compress(gzip.compress(b'{"ip": "10.1.1.1"}'))),
    ],
    ids=["identity then foo", "gzip twice"],
)
async def test_content_codings_over_several_lines_are_one_list(
    aiohttp_client: Any, lines: tuple[bytes, bytes], body: bytes
) -> None:
    # Regression: only the first line was judged and aiohttp decodes by the last alone,
    # so "identity" then "foo" read the body as it came (200) and a body gzipped twice
    # was decoded once and read as JSON (400). RFC 9110 section 5.3: one list.
    client = await aiohttp_client(create_app(config_from_mapping({})))
    reader, writer = await _raw_request(
        client.port,
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"".join(b"Content-Encoding: %s\r\n" % line for line in lines)
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    status, _headers, reply = await _read_response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 415 "), (status, reply)
    # The codings it would have to decode, "identity" being none (RFC 9110 8.4.1).
    listed = ", ".join(line.decode() for line in lines if line != b"identity")
    assert json.loads(reply)["error"].startswith(f"Content-Encoding {listed} is not supported")


async def test_a_body_that_does_not_decode_is_a_400_saying_why(aiohttp_client: Any) -> None:
    # The reason is zlib's (scorer.contentcoding). Regression: the reply kept the
    # connection alive, which aiohttp then dropped (it could not read past the broken
    # body), so a client's next request on it was lost: it says close now.
    client = await aiohttp_client(create_app(config_from_mapping({})))
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = await client.post("/v1/check", data=b'{"ip": "10.1.1.1"}', headers=headers)
    assert response.status == 400
    assert response.headers.get("Connection") == "close"
    assert await response.json() == {
        "error": "body could not be read: gzip: incorrect header check",
        "field": "body",
    }


async def test_an_unsupported_content_coding_is_shown_capped(aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(config_from_mapping({})))
    coding = "x-" + "z" * 100
    headers = {"Content-Encoding": coding, "Content-Type": "application/json"}
    response = await client.post("/v1/check", data=b'{"ip": "10.1.1.1"}', headers=headers)
    assert response.status == 415
    error = (await response.json())["error"]
    assert error.startswith("Content-Encoding x-zzz") and coding not in error
    assert error.endswith("... is not supported (use identity, gzip or deflate)")
    assert len(error.partition(" is not")[0]) == len("Content-Encoding ") + 40


async def test_a_408_closes_the_connection(aiohttp_client: Any) -> None:
    # Regression: the connection stayed open after a 408, so the stalled body's late
    # rest and whatever followed were read as the next request ("400 Invalid method").
    client = await aiohttp_client(create_app(config_from_mapping({})))
    head = (
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 20\r\n\r\n{"
    )
    reader, writer = await _raw_request(client.port, head)
    status, headers, body = await _read_response(reader)
    assert status.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in headers
    assert json.loads(body) == {"error": "body not received within 2 s", "field": "body"}
    writer.write(b'"ip": "10.1.1.1"}  GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    assert await asyncio.wait_for(reader.read(), 5) == b"", "nothing more is answered"
    writer.close()


async def test_a_content_length_over_the_limit_is_a_413_at_once_and_closes(
    aiohttp_client: Any,
) -> None:
    # Refused on its Content-Length, before any of the body is read (none is sent here:
    # waiting for it would end in a 408), and the connection to be closed, so the body
    # that follows is not read as the next request.
    client = await aiohttp_client(create_app(config_from_mapping({})))
    reader, writer = await _raw_request(
        client.port,
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 16385\r\n\r\n",
    )
    status, headers, body = await _read_response(reader)
    assert status.startswith(b"HTTP/1.1 413 "), status
    assert b"Connection: close" in headers
    assert json.loads(body) == {"error": "body larger than 16384 bytes", "field": "body"}
    writer.close()


async def test_the_largest_body_limit_holds(aiohttp_client: Any) -> None:
    # aiohttp's own cap (client_max_size) is set to max_body_bytes, at most 1 MiB.
    config = config_from_mapping({"server": {"max_body_bytes": MAX_BODY_BYTES}})
    client = await aiohttp_client(create_app(config))
    headers = {"Content-Type": "application/json"}
    for size, status in ((MAX_BODY_BYTES, 200), (MAX_BODY_BYTES + 1, 413)):
        response = await client.post("/v1/check", data=_json_body_of(size), headers=headers)
        assert response.status == status, await response.text()
    # Regression (docs walkthrough): 100 MB loaded, which lets max_in_flight clients
    # hold gigabytes.
    with pytest.raises(ConfigError, match=r"max_body_bytes: must be at most 1048576"):
        config_from_mapping({"server": {"max_body_bytes": MAX_BODY_BYTES + 1}})


async def test_expect_100_continue_with_a_body_too_large_is_a_413_first(
    aiohttp_client: Any,
) -> None:
    # Regression: "100 Continue" came first, inviting the client to send 10 MB.
    config = config_from_mapping({"server": {"max_body_bytes": MIN_BODY_BYTES}})
    client = await aiohttp_client(create_app(config))
    head = (
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: 10000000\r\n\r\n"
    )
    reader, writer = await _raw_request(client.port, head)
    status, headers, body = await _read_response(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413 "), status
    assert b"Connection: close" in headers
    assert json.loads(body)["error"] == f"body larger than {MIN_BODY_BYTES} bytes"
    # A body within the limit (at it, here) still gets "100 Continue", then its answer;
    # the expectation is case-insensitive (RFC 9110 section 10.1.1).
    status = await _post_after_100_continue(
        client.port, _json_body_of(MIN_BODY_BYTES), b"100-Continue"
    )
    assert status.startswith(b"HTTP/1.1 200 "), status
    assert client.app is not None
    series = client.app[SERVICE_KEY].metrics.request_series("/v1/check")
    assert series[413].value == 1 and series[200].value == 1


async def test_a_bug_after_100_continue_is_still_answered_500(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "100 Continue" is no start of the response: aiohttp answers an exception in the
    # check with its 500 (a response already started would leave only a dropped
    # connection, uncounted as an answer and unexplained to the client).
    app = create_app(config_from_mapping({}))

    async def broken(*_args: object) -> tuple[bytes, str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app[SERVICE_KEY], "answer_at_once", broken)
    client = await aiohttp_client(app)
    body = json.dumps({"ip": "10.1.1.1"}).encode()
    status = await _post_after_100_continue(client.port, body, b"100-continue")
    assert status.startswith(b"HTTP/1.1 500 "), status


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nContent-Type: application/json\r\n", b"200"),
        (b"POST /nowhere HTTP/1.1\r\nContent-Type: application/json\r\n", b"404"),
        (b"POST /v1/reload HTTP/1.1\r\nContent-Type: application/json\r\n", b"401"),
        (b"POST /v1/check HTTP/1.1\r\nContent-Type: application/json\r\n", b"401"),
        (b"POST /v1/check HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n", b"415"),
    ],
    ids=["GET", "unknown path", "reload", "check 401", "check 415"],
)
async def test_only_a_check_about_to_be_read_is_told_100_continue(
    aiohttp_client: Any, head: bytes, status: bytes
) -> None:
    # Regression: every route answered "100 Continue", inviting a body it never reads
    # (a GET, an unknown path, /v1/reload) or then refused unread (401, 415): the final
    # status comes at once instead (RFC 9110 section 10.1.1), and keep-alive holds.
    config = config_from_mapping({"server": {"token": "s3cret"}})
    client = await aiohttp_client(create_app(config))
    reader, writer = await _raw_request(
        client.port,
        head + b"Host: x\r\nExpect: 100-continue\r\nContent-Length: 18\r\n\r\n",
    )
    status_line, headers, _body = await _read_response(reader)
    assert status_line.startswith(b"HTTP/1.1 " + status + b" "), status_line
    assert b"Connection: close" not in headers
    writer.write(b'{"ip": "10.1.1.1"}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
    assert (await _read_response(reader))[0].startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_an_http_1_0_client_asking_100_continue_is_not_told_it(
    aiohttp_client: Any,
) -> None:
    # RFC 9110 section 10.1.1: an HTTP/1.0 request's 100-continue is ignored; its body
    # is read as it comes.
    client = await aiohttp_client(create_app(config_from_mapping({})))
    reader, writer = await _raw_request(
        client.port,
        b"POST /v1/check HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: 18\r\n\r\n",
    )
    await asyncio.sleep(0.1)
    writer.write(b'{"ip": "10.1.1.1"}')
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.0 200 "), status_line


async def test_undecodable_authorization_header_is_a_401(aiohttp_client: Any) -> None:
    # Regression: invalid UTF-8 in Authorization raised UnicodeEncodeError: a 500.
    config = config_from_mapping({"server": {"token": "s3cret"}})
    client = await aiohttp_client(create_app(config))
    # Regression (review): the token was compared after str.strip(), so a trailing
    # no-break space (UTF-8 C2 A0) or any other Unicode space passed.
    for path, presented in [
        (b"/v1/check", b"\xff\xfe"),
        (b"/v1/reload", b"\xff\xfe"),
        (b"/v1/check", b"s3cret\xc2\xa0"),
        (b"/v1/check", b"\xe2\x80\x83s3cret"),
    ]:
        reader, writer = await _raw_request(
            client.port,
            b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + presented + b"\r\nContent-Length: 2\r\n\r\n{}",
        )
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        assert b" 401 " in status_line, (presented, status_line)


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scorer", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )


def test_serve_on_an_invalid_config_exits_2(tmp_path: Path) -> None:
    # The systemd unit's RestartPreventExitStatus=2 relies on it: a config error must
    # not be retried every RestartSec.
    config = tmp_path / "scorer.toml"
    config.write_text("[weights]\nRL_BOGUS = 1.0\n")
    process = _serve("--config", str(config), "--listen", f"127.0.0.1:{free_port()}")
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    # Regression (docs walkthrough): the error named no file, nor the key's line.
    assert f"config error: {config}:2: [weights] RL_BOGUS" in err and "Traceback" not in err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_clear_line_not_a_traceback(workers: str) -> None:
    # Regression: the log said "listening on ..." and then a 20-line traceback.
    listener = tcp_listener()
    port = listener.getsockname()[1]
    try:
        process = _serve("--listen", f"127.0.0.1:{port}", "--workers", workers)
        _out, err = process.communicate(timeout=60)
    finally:
        listener.close()
    # Regression (review): 2, which the unit's RestartPreventExitStatus=2 never retries.
    assert process.returncode == EXIT_LISTEN_LATER
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err
    assert "listening on" not in err  # only said once the socket is bound


def test_a_listen_address_not_here_yet_exits_for_a_retry() -> None:
    # Regression (review): an address not (yet) on the host at boot (IPv6 duplicate
    # address detection, a VIP on its way) exited 2, which the unit never retries: the
    # service stayed down and mail went unscored. No packet leaves: bind() fails locally.
    process = _serve("--listen", "192.0.2.1:11397", env={"RDNS_SCORER_TOKEN": "t0k"})
    _out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_LISTEN_LATER, err
    assert "cannot listen on 192.0.2.1:11397: Cannot assign requested address" in err
    # A port it may not bind is no race: 2, not retried. A name that does not resolve
    # (yet: the resolver may be starting too) is.
    assert listen_exit_status(PermissionError(errno.EACCES, "Permission denied")) == 2
    unresolved = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert listen_exit_status(unresolved) == EXIT_LISTEN_LATER


def test_a_listen_host_name_that_does_not_resolve_is_one_clear_line() -> None:
    # Regression: serve ended in a socket.gaierror traceback (after `config check` had
    # passed the same name). Resolving a real name here would leave the test's DNS.
    from scorer.workers import listen_failure

    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert listen_failure(error, "mail.example.invalid", 11397) == (
        "cannot listen on mail.example.invalid:11397: Name or service not known; choose "
        "another address with --listen, RDNS_SCORER_LISTEN or [server] listen"
    )


@pytest.mark.parametrize("listen", ["a..b:11397", "mail example:25", "x.-y:25"])
def test_a_listen_host_that_is_no_name_is_a_config_error(listen: str) -> None:
    # Regression: "a..b" passed and serve died in an IDNA UnicodeError traceback.
    process = _serve("--listen", listen)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "--listen: " in err and "is neither an address nor a host name" in err
    assert "Traceback" not in err


def test_a_second_instance_with_workers_does_not_join_the_port(unbound: Unbound) -> None:
    """Regression: workers bind with SO_REUSEPORT, so a second `serve --workers 2` on the
    same port started without a word and shared the traffic (four pids answering)."""
    port = free_port()
    listen = ("--listen", f"127.0.0.1:{port}", "--nameserver", unbound.nameserver)
    first = _serve(*listen, "--workers", "2")
    try:
        wait_for_port(port)
        second = _serve(*listen, "--workers", "2")
        _out, err = second.communicate(timeout=60)
        assert second.returncode == EXIT_LISTEN_LATER
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err
    finally:
        first.terminate()
        _out, err = first.communicate(timeout=30)
    assert err.count(f"listening on 127.0.0.1:{port}") == 2  # one line per worker


def test_the_port_check_before_the_workers_start_judges_ipv6_alone() -> None:
    """ensure_port_free probes an IPv6 address as the workers bind it, IPv6 alone
    (asyncio sets IPV6_V6ONLY): another service on 127.0.0.1:PORT does not stop
    `serve --workers N --listen [::]:PORT`, which would start; one on [::1]:PORT does."""
    from scorer.workers import ensure_port_free

    ipv4 = tcp_listener()
    try:
        ensure_port_free("::", ipv4.getsockname()[1])
    finally:
        ipv4.close()
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as ipv6:
        ipv6.bind(("::1", 0))
        ipv6.listen()
        with pytest.raises(OSError) as raised:
            ensure_port_free("::1", ipv6.getsockname()[1])
    assert raised.value.errno == errno.EADDRINUSE


def test_a_wildcard_ipv6_listen_serves_ipv6_alone() -> None:
    """docs/configuration.md says `[::]:PORT` takes no IPv4 connection (the plugins'
    default 127.0.0.1:11340 is refused there): the socket is IPv6-only whatever the
    host's net.ipv6.bindv6only, as asyncio binds one."""
    from scorer.workers import listening_sockets

    sockets = listening_sockets("::", 0, reuse_port=False)
    try:
        assert [sock.family for sock in sockets] == [socket.AF_INET6]
        assert sockets[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        sockets[0].listen()
        port = sockets[0].getsockname()[1]
        with socket.socket(socket.AF_INET6) as ipv6:
            assert ipv6.connect_ex(("::1", port)) == 0
        with socket.socket() as ipv4:
            assert ipv4.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    finally:
        for sock in sockets:
            sock.close()


def test_workers_do_not_outlive_a_killed_parent(unbound: Unbound) -> None:
    """Regression: after a SIGKILL of the parent its workers served on, unsupervised."""
    port = free_port()
    parent = _serve(
        "--listen", f"127.0.0.1:{port}", "--workers", "2", "--nameserver", unbound.nameserver
    )
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 10
        while len(workers := children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        parent.kill()
        parent.communicate(timeout=10)
        # What a killed service leaves (its next start removes it, after two minutes).
        for leftover in SHARED_MEMORY.glob(f"{PREFIX}{parent.pid}-*"):
            remove_directory(leftover)


def _serve_under_systemd(
    nameserver: str, directory: Path, workers: str, **environment: str
) -> tuple[socket.socket, subprocess.Popen[bytes], int]:
    """``serve`` as systemd starts a Type=notify unit: the socket its NOTIFY_SOCKET names
    (bound here, with the senders' credentials on), the process, its port."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(directory / "notify"))
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # the sender's pid
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", "serve", "--listen", f"127.0.0.1:{port}",
         "--workers", workers, "--nameserver", nameserver],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": str(directory / "notify"), **environment},
    )  # fmt: skip
    return notify, process, port


@pytest.mark.parametrize("workers", ["1", "2"])
def test_systemd_is_told_ready_once_the_port_listens(
    unbound: Unbound, tmp_path: Path, workers: str
) -> None:
    # The unit is Type=notify: systemd counts the service as started on READY=1 only,
    # so a reload right after a start waits instead of killing a starting process.
    notify, process, port = _serve_under_systemd(unbound.nameserver, tmp_path, workers)
    notify.settimeout(30)
    try:
        assert notify.recv(4096) == b"READY=1"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # listening already when systemd hears it
    finally:
        notify.close()
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_systemds_watchdog_hears_the_loop_until_it_stops(
    unbound: Unbound, tmp_path: Path, workers: str
) -> None:
    # Regression (review): one worker (the default) had no watchdog at all: a stuck event
    # loop held every message until someone noticed. Under WatchdogSec= the main
    # process pings from its loop; with --workers N the supervisor alone pings (it
    # watches the workers itself).
    notify, process, _port = _serve_under_systemd(
        unbound.nameserver, tmp_path, workers, WATCHDOG_USEC="3000000"
    )

    def heard(seconds: float) -> list[tuple[bytes, int]]:
        """The datagrams of ``seconds``, each with the pid that sent it."""
        found, until = [], time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            notify.settimeout(left)
            try:
                data, ancillary, _flags, _address = notify.recvmsg(4096, 64)
            except TimeoutError:
                break
            pid = struct.unpack("3i", ancillary[0][2])[0]
            found.append((data, pid))
        return found

    try:
        pings = [pid for data, pid in heard(5) if data == b"WATCHDOG=1"]
        assert len(pings) >= 3 and set(pings) == {process.pid}, pings
        os.kill(process.pid, signal.SIGSTOP)  # stuck
        heard(1)  # what was on its way
        assert heard(2) == []
        os.kill(process.pid, signal.SIGCONT)
        assert (b"WATCHDOG=1", process.pid) in heard(3)
    finally:
        notify.close()
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_systemd_is_told_stopping_by_the_main_process_alone(
    unbound: Unbound, tmp_path: Path, workers: str
) -> None:
    # Regression (review): no STOPPING=1 was ever sent, so a stop systemd did not begin
    # (a kill by hand, a supervisor giving up on its workers) showed the unit active
    # until the process was gone. A worker never says it: one stopped alone is replaced.
    notify, process, _port = _serve_under_systemd(unbound.nameserver, tmp_path, workers)
    try:
        notify.settimeout(30)
        assert notify.recv(4096) == b"READY=1"
        process.terminate()
        process.wait(timeout=30)
        notify.settimeout(0.5)
        told: list[tuple[bytes, int]] = []
        with contextlib.suppress(TimeoutError):
            while True:
                data, ancillary, _flags, _address = notify.recvmsg(4096, 64)
                told.append((data, struct.unpack("3i", ancillary[0][2])[0]))
        assert [pid for data, pid in told if data == b"STOPPING=1"] == [process.pid], told
    finally:
        notify.close()
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("usec", "pid", "interval"),
    [("30000000", None, 1.0), ("1000000", None, 0.5), ("30000000", "SELF", 1.0),
     ("30000000", "1", None), ("", None, None), ("soon", None, None)],
)  # fmt: skip
def test_systemds_watchdog_is_pinged_at_least_twice_within_its_time(
    monkeypatch: pytest.MonkeyPatch, usec: str, pid: str | None, interval: float | None
) -> None:
    # Regression (review): pings every second whatever WatchdogSec= said, so a
    # WatchdogSec=1s raced them. Another process's watchdog (WATCHDOG_PID) is not ours.
    from scorer.workers import systemd_watchdog

    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "SELF" else pid)
    assert systemd_watchdog() == interval


def test_serve_raises_its_open_files_limit_towards_the_hard_one(
    unbound: Unbound, tmp_path: Path
) -> None:
    # Regression (review): under a shell's soft limit (make run, a container) the
    # service ran out of file descriptors with a few hundred connections, and new ones
    # were dropped without a word; only the systemd unit set LimitNOFILE.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    assert wanted > 256, "this machine's hard limit leaves nothing to raise"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", "serve", "--listen", f"127.0.0.1:{port}",
         "--nameserver", unbound.nameserver],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )  # fmt: skip
    try:
        wait_for_port(port)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        found = re.search(r"^Max open files\s+(\d+)", limits, re.M)
        assert found is not None and int(found.group(1)) == wanted, limits
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_systemd_is_told_on_an_abstract_socket_and_a_gone_one_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sd_notify(3): a NOTIFY_SOCKET starting with "@" names an abstract socket, one
    # with no file. One that went away is not a reason to stop serving.
    from scorer.workers import notify_systemd

    name = f"rdns-scorer-test-{os.getpid()}"
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        notify.settimeout(5)
        notify_systemd("READY=1")
        assert notify.recv(4096) == b"READY=1"
    notify_systemd("READY=1")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost", True),  # regression: refused as "not loopback"
        ("127.0.0.1", True),
        ("127.42.0.9", True),  # all of 127/8
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),  # private is not loopback: the LAN reaches it
        ("fd00::1", False),
        # Regression (review): 127.0.0.1 on a dual-stack socket, loopback by Python
        # 3.13's ipaddress and not by 3.11's or 3.12's: the same file passed on one only.
        ("::ffff:127.0.0.1", True),
        ("::ffff:192.0.2.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1: a translator's, no loopback
        ("mail.example.net", False),  # a name may resolve to anything
        ("localhost.example.net", False),
    ],
)
def test_only_a_loopback_listener_may_go_without_a_token(host: str, loopback: bool) -> None:
    # scorer.security.public_bind_refusal, the rule serve, reload and config check share.
    refusal = public_bind_refusal(host, config_from_mapping({}).server)
    if loopback:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.startswith(f"refusing to listen on {host}, which is not loopback,")
    # A token, or the admin's word that a firewall guards the port, lets any host be.
    for server in ({"token": "s3cret"}, {"allow_public_without_token": True}):
        assert public_bind_refusal(host, config_from_mapping({"server": server}).server) is None


def test_a_reload_must_keep_the_bound_listener_protected() -> None:
    # refuse_public_without_token: the listen address the new config names and the one
    # the running service holds (listen changes only on restart) must both pass.
    loopback = config_from_mapping({"server": {"listen": "127.0.0.1:11340"}})
    public = config_from_mapping({"server": {"listen": "0.0.0.0:11340"}})
    refuse_public_without_token(loopback)
    refuse_public_without_token(loopback, bound_host="::1")
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0,"):
        refuse_public_without_token(loopback, bound_host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0,"):
        refuse_public_without_token(public, bound_host="127.0.0.1")


def test_public_bind_without_token_is_refused(tmp_path: Path) -> None:
    process = _serve("--listen", f"0.0.0.0:{free_port()}")
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "refusing to listen on 0.0.0.0" in err and "token" in err


def test_public_bind_with_token_or_explicit_opt_out_starts(tmp_path: Path) -> None:
    for config in ('[server]\ntoken = "x"\n', "[server]\nallow_public_without_token = true\n"):
        path = tmp_path / "c.toml"
        path.write_text(config)
        port = free_port()
        # A resolver of the test's (review: it asked the host's, from /etc/resolv.conf).
        nameserver = f"--nameserver=127.0.0.1:{dead_port()}"
        process = _serve("--config", str(path), "--listen", f"0.0.0.0:{port}", nameserver)
        try:
            wait_for_port(port)
            assert process.poll() is None, "it serves"
        finally:
            process.terminate()
            _out, err = process.communicate(timeout=10)
        assert f"listening on 0.0.0.0:{port}" in err, err


def _score(url: str) -> float:
    import json
    import urllib.request

    request = urllib.request.Request(
        url + "/v1/check",
        data=json.dumps({"ip": world.MISSING_PTR_IP}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return float(json.load(response)["score"])


def _metrics(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _hang_up_while_starting(
    unbound: Unbound, tmp_path: Path, starting: Callable[[subprocess.Popen[str]], None]
) -> None:
    """Start `serve`, wait for ``starting`` to return, change the config and send SIGHUP:
    the service must come up, reload once and serve the new config."""
    port = free_port()
    path = tmp_path / "c.toml"
    path.write_text("")
    process = _serve(
        "--config", str(path), "--listen", f"127.0.0.1:{port}", "--nameserver", unbound.nameserver
    )  # fmt: skip
    try:
        starting(process)
        path.write_text("[weights]\nRL_PTR_MISSING = 7.5\n")
        process.send_signal(signal.SIGHUP)
        wait_for_port(port)
        # The reload, not the score: a SIGHUP soon after exec comes before the first
        # read, which already gives 7.5, and a stop before the reload ends (the reload
        # runs in a thread) would leave nothing to find in the log.
        reloaded = 'rdns_scorer_config_reloads_total{result="success"} 1.0'
        deadline = time.monotonic() + 5
        while reloaded not in _metrics(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reloaded in _metrics(port)
        assert _score(f"http://127.0.0.1:{port}") == 7.5
        assert process.poll() is None
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=10)
    assert "config reloaded on SIGHUP" in err


def test_sighup_while_starting_is_a_reload_not_a_kill(unbound: Unbound, tmp_path: Path) -> None:
    # Regression: SIGHUP's default action killed a service still starting (before the
    # app took the signal over), and systemd does not restart a clean SIGHUP death.
    def config_read(process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:  # logged after the config is read, before the app runs
            if "starting on" in line:
                return

    _hang_up_while_starting(unbound, tmp_path, config_read)


@pytest.mark.parametrize(
    ("argv", "deferred"),
    [
        (["serve"], True),
        (["serve", "--config", "/etc/rdns-scorer/scorer.toml", "--workers", "2"], True),
        # Other commands keep SIGHUP's default: a closed terminal ends `check`.
        (["check", "192.0.2.1"], False),
        (["config", "check", "serve"], False),
    ],
)
def test_serve_defers_sighup_before_importing_the_command_line(
    argv: list[str], deferred: bool
) -> None:
    # Regression: the deferral was installed only after the command line's imports
    # (~0.5 s), so a `systemctl reload` right after a start still killed the service.
    spy = f"""
import importlib.abc, signal, sys
sys.argv = ["rdns-scorer", *{argv!r}]
import scorer.launch
assert "aiohttp" not in sys.modules and "scorer.cli" not in sys.modules, "launch is heavy"

class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "scorer.cli":
            print("deferred:", signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL)
            raise SystemExit(0)

sys.meta_path.insert(0, Spy())
scorer.launch.main()
"""
    result = subprocess.run([sys.executable, "-c", spy], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"deferred: {deferred}", result.stderr


def _catches_sighup(pid: int) -> bool:
    caught = Path(f"/proc/{pid}/status").read_text().split("SigCgt:")[1].split()[0]
    return bool(int(caught, 16) & (1 << (signal.SIGHUP - 1)))


def test_sighup_right_after_exec_is_a_reload_not_a_kill(unbound: Unbound, tmp_path: Path) -> None:
    def catches_sighup(process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 10
        while True:  # the first thing scorer.launch does
            status = Path(f"/proc/{process.pid}/status").read_text()
            caught = int(status.split("SigCgt:")[1].split()[0], 16)
            if caught & (1 << (signal.SIGHUP - 1)):
                return
            assert time.monotonic() < deadline
            time.sleep(0.005)

    _hang_up_while_starting(unbound, tmp_path, catches_sighup)


def test_a_hangup_before_the_app_handles_it_is_remembered_once() -> None:
    # Deterministic half of the tests above: defer_hangups() turns SIGHUP's default
    # action (ending the process) into a note the app reads once; deferring again
    # (scorer.launch, then the command line) keeps a note already taken.
    from scorer.hangup import defer_hangups, take_deferred_hangup

    previous = signal.getsignal(signal.SIGHUP)
    try:
        defer_hangups()
        assert take_deferred_hangup() is False
        signal.raise_signal(signal.SIGHUP)
        assert take_deferred_hangup() is True
        assert take_deferred_hangup() is False
        signal.raise_signal(signal.SIGHUP)
        defer_hangups()
        assert take_deferred_hangup() is True
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_workers_flag_has_the_config_ceiling() -> None:
    # Regression: [server] workers was capped at 256 but --workers 100000 forked away.
    for value in ("0", "257", "100000"):
        result = subprocess.run(
            [sys.executable, "-m", "scorer", "serve", "--workers", value],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2 and "expected 1 to 256" in result.stderr


def test_reload_applies_the_logging_settings(unbound: Unbound) -> None:
    # Regression: log_requests and log_format were only read at start.
    service = ScorerProcess(unbound.nameserver, "[server]\nlog_requests = false\n").start()
    try:
        _score(service.url)
        assert 'event="check"' not in service.log()
        service.config_path.write_text('[server]\nlog_requests = true\nlog_format = "json"\n')
        assert service._process is not None
        service._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "config reloaded on SIGHUP" not in service.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        _score(service.url)
        log = eventually(service.log, lambda text: '"event": "check"' in text)
        assert '"event": "check"' in log
    finally:
        service.stop()


def _status_without_token(port: int) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/check",
        data=b'{"ip": "192.0.2.1"}',
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("listen_flag", [True, False])
def test_reload_cannot_drop_the_token_of_a_public_listener(
    tmp_path: Path, listen_flag: bool
) -> None:
    # Regression: a SIGHUP with the token removed was accepted and the socket on
    # 0.0.0.0 answered anyone. Also when the new file names a loopback listen:
    # listen only changes on restart, the bound socket is still public.
    port = free_port()
    path = tmp_path / "c.toml"
    public = f'listen = "0.0.0.0:{port}"\n'
    path.write_text('[server]\ntoken = "s3cret"\n' + ("" if listen_flag else public))
    args = ("--listen", f"0.0.0.0:{port}") if listen_flag else ()
    process = _serve("--config", str(path), "--nameserver", "127.0.0.1:9", *args)
    try:
        wait_for_port(port)
        assert _status_without_token(port) == 401
        path.write_text("[server]\n" + ("" if listen_flag else f'listen = "127.0.0.1:{port}"\n'))
        process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert _status_without_token(port) == 401
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=10)
    assert "reload on SIGHUP failed" in err and "refusing to listen on 0.0.0.0" in err


def test_config_check_refuses_what_serve_refuses(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nlisten = "0.0.0.0:11340"\n')
    command = [sys.executable, "-m", "scorer", "config", "check", str(path)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "refusing to listen on 0.0.0.0" in refused.stderr
    # The token may come from the environment, as it does for `serve`.
    environ = {"PATH": "/usr/bin:/bin", "RDNS_SCORER_TOKEN": "s3cret"}
    accepted = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environ)
    assert accepted.returncode == 0, accepted.stderr


async def test_last_reload_gauge_follows_the_latest_reload(reloadable: Reloadable) -> None:
    client, path, good, auth = (
        reloadable.client, reloadable.path, reloadable.base, reloadable.auth
    )  # fmt: skip

    async def gauge() -> str:
        text = await (await client.get("/metrics")).text()
        return next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith("rdns_scorer_config_last_reload_successful ")
        )

    assert await gauge() == "1.0"
    path.write_text(good + "[weights\n")
    assert (await client.post("/v1/reload", headers=auth)).status == 422
    assert await gauge() == "0.0"
    path.write_text(good)
    assert (await client.post("/v1/reload", headers=auth)).status == 200
    assert await gauge() == "1.0"


def test_a_shadowed_symbol_must_have_a_weight_to_watch() -> None:
    # Regression (review): with weight 0 a symbol in shadow_symbols went out as an
    # ordinary 0-score symbol (no "shadow:" option): SpamAssassin then applied the
    # admin's own "score RL_X 1.5" to it. The docs' example did exactly that.
    with pytest.raises(ConfigError, match="RL_HELO_NOT_FQDN weighs 0"):
        config_from_mapping(
            {"policy": {"shadow_symbols": ["RL_HELO_NOT_FQDN"]}, "weights": {"RL_HELO_NOT_FQDN": 0}}
        )
    config_from_mapping({"policy": {"shadow_symbols": ["RL_HELO_NOT_FQDN"]}})


def test_allowlist_and_skip_network_lookups_do_not_grow_with_the_list() -> None:
    # Regression (review): match_ip and match_ptr compared a client with every entry:
    # 25,000 of each cost 9 and 5 ms per check on the event loop. So did skip_networks
    # (scorer.policy.NetworkSet now holds both). Compared as a ratio within one run
    # (never absolute times on a shared box).
    def build(entries: int) -> tuple[Allowlist, NetworkSet]:
        allowlist, skip_networks = Allowlist(), NetworkSet()
        for n in range(entries):
            allowlist.add("ip", f"10.{n >> 8 & 255}.{n & 255}.0/24", "test")
            allowlist.add("ptr", f"mail.partner{n}.example.net", "test")
            skip_networks.add(parse_network(f"10.{n >> 8 & 255}.{n & 255}.0/24"))
        return allowlist, skip_networks

    def cost(lists: tuple[Allowlist, NetworkSet]) -> float:
        allowlist, skip_networks = lists
        ip = ipaddress.ip_address("192.0.2.9")
        names = ["mx.unknown-sender.example.org"]
        started = time.perf_counter()
        for _ in range(2_000):
            allowlist.match_ip(ip)
            allowlist.match_ptr(names)
            skip_hit(ip, skip_networks)
        return time.perf_counter() - started

    small, (large, large_skip) = build(10), build(20_000)
    assert min(cost((large, large_skip)) for _ in range(3)) < 5 * min(cost(small) for _ in range(3))
    # Still right: the most specific network, IPv6 too, a name under a suffix.
    assert skip_hit(ipaddress.ip_address("10.0.5.20"), large_skip) == Hit(
        "RL_SKIPPED_LOCAL", ("10.0.5.20 in 10.0.5.0/24",)
    )
    large.add("ip", "10.0.5.128/25", "test")
    large.add("ip", "2001:db8::/32", "test")
    assert large.match_ip(ipaddress.ip_address("10.0.5.200")) == "ip 10.0.5.128/25"
    assert large.match_ip(ipaddress.ip_address("10.0.5.20")) == "ip 10.0.5.0/24"
    assert large.match_ip(ipaddress.ip_address("2001:db8::25")) == "ip 2001:db8::/32"
    assert large.match_ptr(["out.mail.partner7.example.net"]) is not None
    assert large.match_ptr(["xmail.partner7.example.net"]) is None


def test_a_hostile_ptr_answer_of_deep_names_costs_what_shallow_names_do() -> None:
    # Regression (review): beyond max_ptr_names the lookup stage asks the allowlist of
    # every PTR name whether an entry would apply (lookups._before_the_cut), and _under
    # joined every suffix of a name, label by label: a PTR answer its owner fills with
    # ~3,000 names of 127 labels (compression pointers make each 20 bytes of a TCP
    # reply) cost ~0.3 s of the event loop per check. Only as many labels as the
    # deepest entry has can match. Compared as a ratio within one run.
    allowlist = Allowlist()
    allowlist.add("ptr", "mail.partner.example.net", "test")
    allowlist.add("from", "partner.example.net", "test")
    deep_suffix = ".".join(["b"] * 120) + ".example"  # 127 labels with "a<n>." below
    request = CheckRequest(ipaddress.ip_address("192.0.2.9"), "mx.sender.example.org")

    def cost(names: list[str]) -> float:
        fastest = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            _before_the_cut(names, request, allowlist.applies_if_confirmed)
            fastest = min(fastest, time.perf_counter() - started)
        return fastest

    deep = sorted(f"a{n}.{deep_suffix}" for n in range(4_000))
    shallow = sorted(f"a{n}.example.org" for n in range(4_000))
    assert cost(deep) < 5 * cost(shallow)
    # Still right: the longest entry a name is or is under, at any depth.
    vouched = f"{deep_suffix}.mail.partner.example.net"
    assert allowlist.applies_if_confirmed(vouched, "")
    assert allowlist.applies_if_confirmed("mail.partner.example.net", "")
    assert not allowlist.applies_if_confirmed("partner.example.net", "")
    assert not allowlist.applies_if_confirmed(f"{deep_suffix}.xmail.partner.example.net", "")
    assert allowlist.match_ptr([vouched]) == (
        f"ptr mail.partner.example.net ({option(vouched, 100)} is forward-confirmed)"
    )
    allowlist.add("ptr", "out.mail.partner.example.net", "test")
    assert allowlist.match_ptr(["x.out.mail.partner.example.net"]) == (
        "ptr out.mail.partner.example.net (x.out.mail.partner.example.net is forward-confirmed)"
    )
    assert allowlist.match_from("someone@a.b.c.d.e.f.partner.example.net") == (
        "from partner.example.net"
    )
    assert allowlist.match_from("someone@partner.example.net") == "from partner.example.net"
    assert allowlist.match_from("someone@example.net") is None


def test_a_byte_that_is_not_utf8_is_named_by_line(tmp_path: Path) -> None:
    # Regression (review): "'utf-8' codec can't decode byte 0xfc in position 46": no
    # line, although every other bad entry names file:line.
    path = tmp_path / "allow.txt"
    path.write_bytes(b"\xef\xbb\xbffrom ok.example.net\n# fine\nfrom m\xfcnchen.example\n")
    with pytest.raises(AllowlistError, match=r"allow.txt:3: not UTF-8 \(byte 0xfc at column 7\)"):
        Allowlist().add_file(str(path))
    # Numbered as the entries are, also where lines end in CR alone (mutation review:
    # ":1: ... column 31" for the third entry of such a file).
    for newline in (b"\r", b"\r\n"):
        path.write_bytes(
            newline.join([b"from ok.example.net", b"# fine", b"from m\xfcnchen.example"])
        )
        with pytest.raises(
            AllowlistError, match=r"allow.txt:3: not UTF-8 \(byte 0xfc at column 7\)"
        ):
            Allowlist().add_file(str(path))


def test_an_allowlist_note_on_a_ptr_whose_lookup_failed_says_it_failed() -> None:
    # Regression (review): `rdns-scorer check` said of a partner's PTR whose address
    # lookup timed out that it "does not resolve back" to the client: it may well, and
    # the entry may apply at the next check; the admin was sent to write an `ip` entry.
    allowlist = Allowlist()
    allowlist.add("ptr", "partner.example.net", "test")
    ip = ipaddress.ip_address("192.0.2.7")
    names = ["mx1.partner.example.net", "mx2.partner.example.net"]
    notes = allowlist.unapplied(ip, None, names, [], failed=["mx2.partner.example.net"])
    assert notes == [
        "allowlist entry `ptr partner.example.net` names the PTR mx1.partner.example.net, "
        "which is not forward-confirmed (it does not resolve back to 192.0.2.7): not "
        "applied; an `ip` entry would be (docs/operations.md, Allowlists)",
        "allowlist entry `ptr partner.example.net` names the PTR mx2.partner.example.net, "
        "whose address lookup failed (it may resolve back to 192.0.2.7: check again): not "
        "applied; an `ip` entry would be (docs/operations.md, Allowlists)",
    ]


def test_an_allowlist_note_on_a_helo_a_lookup_failed_for_says_it_failed() -> None:
    # Regression (journey review): a `helo` entry was said not to be "a forward-confirmed
    # PTR name" when its forward lookup failed, or the PTR lookup did: unknown, not no.
    allowlist = Allowlist()
    allowlist.add("helo", "mx2.partner.example.net", "test")
    ip = ipaddress.ip_address("192.0.2.7")
    names = ["mx1.partner.example.net", "mx2.partner.example.net"]
    helo = "mx2.partner.example.net"
    (failed,) = allowlist.unapplied(ip, helo, names, [], failed=[helo])
    assert "whose address lookup failed (it may resolve back to 192.0.2.7" in failed
    (unknown,) = allowlist.unapplied(ip, helo, [], [], ptr_unknown="the PTR lookup failed")
    assert "is not known: the PTR lookup failed (docs/operations.md" in unknown
    # Known and not confirmed: said so, also beside names the bound left unchecked.
    for unchecked in ([], ["mx3.partner.example.net"]):
        (said,) = allowlist.unapplied(ip, helo, names, [], unchecked=unchecked)
        assert "the HELO is not a forward-confirmed PTR name of 192.0.2.7" in said
    # One of those: not looked up, and said so.
    (beyond,) = allowlist.unapplied(ip, helo, names[:1], [], unchecked=[helo])
    assert "the HELO is a PTR name of 192.0.2.7 beyond [dns] max_ptr_names" in beyond


def test_a_reload_past_what_rspamd_install_can_write_says_so() -> None:
    # Regression (review): a request_deadline raised to 8 s was told to run rspamd install
    # again, "which write 8.2 s": it writes 7.5 s at most (under rspamd's task_timeout),
    # so no install fixes that for rspamd.
    previous = config_from_mapping({"dns": {"request_deadline": 7.0}})
    raised = config_from_mapping({"dns": {"request_deadline": 8.0}})
    (warning,) = [w for w in raised.reload_warnings(previous.server, previous) if "7 -> 8" in w]
    assert "which write 8.2 s for SpamAssassin but at most 7.5 s for rspamd, which a " in warning
    assert "request_deadline up to 7.3 s fits" in warning
