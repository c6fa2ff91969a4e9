"""PTR family against the real unbound: missing, unverified, confirmed, tempfail, skipped."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Iterator
from typing import Any

import dns.rdatatype
import pytest

from scorer.checks.addresses import listed_addresses
from scorer.checks.hit import Hit
from scorer.checks.ptr import PtrFacts, check_ptr
from scorer.config import Config, config_from_mapping
from scorer.dns.outcomes import Answer, FailureKind, Lookup, NotFound, NotFoundKind, TempFail
from scorer.dns.wire import reverse_name
from scorer.generic import classify
from scorer.lookups import Limits, gather_facts
from scorer.names import IPAddress
from scorer.pipeline import Pipeline
from scorer.policy import NetworkSet, parse_network, skip_hit
from scorer.protocol import parse_request
from scorer.symbols import SYMBOLS
from scorer.text import OPTION_MAX_CHARS
from tests import world
from tests.conftest import make_config
from tests.helpers import KnownAnswers, symbols_for
from tests.support.unbound import Unbound, Zones


async def test_confirmed_ptr_scores_nothing(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, world.CONFIRMED_IP) == {}


async def test_missing_ptr_is_scored_strongly_with_evidence(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.MISSING_PTR_IP)
    assert set(symbols) == {"RL_PTR_MISSING"}
    hit = symbols["RL_PTR_MISSING"]
    assert hit.score == SYMBOLS["RL_PTR_MISSING"].weight
    assert any("nxdomain" in o for o in hit.options)
    assert any(world.MISSING_PTR_IP in o for o in hit.options)


async def test_unverified_ptr_names_the_name_and_where_it_points(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.UNVERIFIED_IP)
    assert set(symbols) == {"RL_PTR_UNVERIFIED"}
    assert f"{world.UNVERIFIED_NAME} -> 198.51.100.99" in symbols["RL_PTR_UNVERIFIED"].options


async def test_one_confirming_name_among_several_is_enough(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, world.MULTI_PTR_IP) == {}


async def test_a_ptr_name_ending_in_an_escaped_dot_is_confirmed(pipeline: Pipeline) -> None:
    """Regression: the escaped dot was stripped as if it were the root's, the name
    became unparsable and the client got RL_PTR_TEMPFAIL instead of a verdict."""
    assert await symbols_for(pipeline, world.ESCAPED_DOT_IP) == {}


async def test_ptr_names_checked_are_bounded(unbound_config: Config) -> None:
    config = dataclasses.replace(
        unbound_config, dns=dataclasses.replace(unbound_config.dns, max_ptr_names=4)
    )
    symbols = await symbols_for(Pipeline(config), world.MANY_PTR_IP)
    # Not UNVERIFIED: one of the 11 names not looked up might have confirmed.
    options = symbols["RL_PTR_TEMPFAIL"].options
    assert sum(".many-ptr.net" in o for o in options) == 4
    assert "11 more PTR names not checked (max_ptr_names)" in options


async def test_a_ptr_to_the_root_is_a_missing_name(pipeline: Pipeline) -> None:
    # Regression (review): "PTR ." was resolved forward (an A query for the root) and
    # scored RL_PTR_UNVERIFIED with an empty name as evidence (" : nxdomain").
    asked: list[str] = []
    pipeline.dns.observer = lambda rdtype, *_: asked.append(rdtype)
    symbols = await symbols_for(pipeline, world.ROOT_PTR_IP)
    assert set(symbols) == {"RL_PTR_MISSING"}
    assert "PTR: . (the root)" in symbols["RL_PTR_MISSING"].options
    assert asked == ["PTR"], "no forward lookup of the root"


async def test_ipv6_client_confirmed_via_aaaa(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, world.CONFIRMED_IP6) == {}


async def test_ipv6_client_without_ptr(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.MISSING_PTR_IP6)
    assert set(symbols) == {"RL_PTR_MISSING"}


async def test_ipv4_mapped_ipv6_client_is_checked_as_ipv4(pipeline: Pipeline) -> None:
    assert await symbols_for(pipeline, "::ffff:" + world.CONFIRMED_IP) == {}


async def test_a_nat64_client_is_checked_as_the_ipv4_host_it_carries(pipeline: Pipeline) -> None:
    """Regression (review): an IPv4 client reaching an IPv6-only MX through a translator
    (64:ff9b::/96, RFC 6052) scored RL_PTR_MISSING for the translated address."""
    assert await symbols_for(pipeline, "64:ff9b::" + world.CONFIRMED_IP) == {}
    missing = await symbols_for(pipeline, "64:ff9b::" + world.MISSING_PTR_IP)
    assert f"no PTR for {world.MISSING_PTR_IP}" in missing["RL_PTR_MISSING"].options


@pytest.mark.parametrize(
    ("ip", "symbol", "helo", "named"),
    [
        (world.MISSING_PTR_IP, "RL_PTR_MISSING", world.SELF_NAMED_HELO, True),
        (world.UNVERIFIED_IP, "RL_PTR_UNVERIFIED", world.SELF_NAMED_HELO, True),
        (world.GENERIC_IP, "RL_PTR_GENERIC", world.SELF_NAMED_HELO, True),
        (world.MISSING_PTR_IP, "RL_PTR_MISSING", world.CONFIRMED_NAME, False),
        (world.MISSING_PTR_IP, "RL_PTR_MISSING", "[203.0.113.11]", False),
        # the confirmed PTR name says it already
        (world.GENERIC_IP, "RL_PTR_GENERIC", world.GENERIC_NAME, False),
    ],
    ids=["missing", "unverified", "generic", "resolves-elsewhere", "literal", "the-ptr-name"],
)
async def test_ptr_evidence_names_a_helo_that_resolves_to_the_client(
    pipeline: Pipeline, ip: str, symbol: str, helo: str, named: bool
) -> None:
    # A client that gives a host name of its own, resolving to it, where the PTR does not
    # name it confirmed: the evidence says so (the name the PTR should hold; a sender that
    # left its PTR to its provider or forgot it, not a hijacked PC).
    symbols = await symbols_for(pipeline, ip, helo=helo)
    said = f"helo={helo} resolves to {ip}"
    assert (said in symbols[symbol].options) is named, symbols[symbol].options
    assert not named or not any(name.startswith("RL_HELO") for name in symbols)


async def test_ptr_timeout_is_tempfail_never_missing(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.PTR_TIMEOUT_IP)
    assert set(symbols) == {"RL_PTR_TEMPFAIL"}
    assert symbols["RL_PTR_TEMPFAIL"].score == 0.0
    # unbound reports its dead upstream as a timeout, or (once it has marked the server
    # down after earlier tests) as SERVFAIL at once: a failure either way, never "missing".
    assert any("timeout" in o or "servfail" in o for o in symbols["RL_PTR_TEMPFAIL"].options)


async def test_ptr_servfail_is_tempfail(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.PTR_SERVFAIL_IP)
    assert set(symbols) == {"RL_PTR_TEMPFAIL"}
    assert any("servfail" in o for o in symbols["RL_PTR_TEMPFAIL"].options)


@pytest.mark.parametrize("client", ["2001:db8::25", "192.0.2.25"])
def test_a_failed_ptr_lookup_names_the_client_unambiguously(client: str) -> None:
    """Regression (review): "PTR 2001:db8::25: timeout" read as the address 2001:db8::25:
    (a colon after an IPv6 address is one more of its groups); IPv4 reads as IPv6 does."""
    ip = ipaddress.ip_address(client)
    failure = TempFail(FailureKind.TIMEOUT, "no answer within 0.5s")
    hits = check_ptr(PtrFacts(ip, failure), None)
    assert hits == [
        Hit("RL_PTR_TEMPFAIL", (f"PTR of {client} failed: timeout: no answer within 0.5s",))
    ]


async def test_forward_failure_is_tempfail_not_unverified(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.FORWARD_TEMPFAIL_IP)
    assert set(symbols) == {"RL_PTR_TEMPFAIL"}


async def test_local_clients_are_skipped_without_lookups(pipeline: Pipeline) -> None:
    skipped = {
        "127.0.0.1": "127.0.0.0/8",
        "10.1.2.3": "10.0.0.0/8",
        "192.168.1.1": "192.168.0.0/16",
        "100.64.0.1": "100.64.0.0/10",
        "fd00::1": "fc00::/7",
        "fe80::1": "fe80::/10",
    }
    for ip, network in skipped.items():
        symbols = await symbols_for(pipeline, ip)
        assert set(symbols) == {"RL_SKIPPED_LOCAL"}, ip
        assert symbols["RL_SKIPPED_LOCAL"].score == 0.0
        # The evidence names the client and the network that holds it.
        assert symbols["RL_SKIPPED_LOCAL"].options == (f"{ip} in {network}",)
    # Not one lookup (one that failed would not be in the cache: count the asking).
    assert pipeline.dns.cache.hits + pipeline.dns.cache.misses == 0


async def test_skip_networks_are_configurable(unbound_config: Config) -> None:
    config = dataclasses.replace(
        unbound_config, policy=dataclasses.replace(unbound_config.policy, skip_networks=[])
    )
    symbols = await symbols_for(Pipeline(config), "10.1.2.3")
    assert "RL_SKIPPED_LOCAL" not in symbols
    assert "RL_PTR_MISSING" in symbols


def test_a_skipped_client_is_named_with_the_most_specific_network_that_holds_it() -> None:
    # Whatever the order they are listed in, as an allowlist ip entry is named.
    networks = NetworkSet(
        parse_network(n) for n in ("192.168.0.0/16", "10.0.0.0/8", "10.1.0.0/16", "::1")
    )
    assert skip_hit(ipaddress.ip_address("10.1.2.3"), networks) == Hit(
        "RL_SKIPPED_LOCAL", ("10.1.2.3 in 10.1.0.0/16",)
    )
    assert skip_hit(ipaddress.ip_address("10.2.0.1"), networks) == Hit(
        "RL_SKIPPED_LOCAL", ("10.2.0.1 in 10.0.0.0/8",)
    )
    assert skip_hit(ipaddress.ip_address("::1"), networks) == Hit(
        "RL_SKIPPED_LOCAL", ("::1 in ::1/128",)
    )
    assert skip_hit(ipaddress.ip_address("192.0.2.1"), networks) is None
    assert skip_hit(ipaddress.ip_address("::a01:203"), networks) is None  # 10.1.2.3's bits


async def test_generic_ptr_is_scored_by_confidence_with_evidence(client: Any) -> None:
    body = await (await client.post("/v1/check", json={"ip": world.GENERIC_IP})).json()
    symbols = {s["name"]: s for s in body["symbols"]}
    assert set(symbols) == {"RL_PTR_GENERIC"}
    hit = symbols["RL_PTR_GENERIC"]
    assert 0 < hit["score"] <= SYMBOLS["RL_PTR_GENERIC"].weight
    assert f"ptr={world.GENERIC_NAME}" in hit["options"]
    assert any("203.0.113.14" in o for o in hit["options"][1:])


async def test_confirmed_big_provider_name_is_not_generic(client: Any) -> None:
    body = await (await client.post("/v1/check", json={"ip": world.PROVIDER_IP})).json()
    assert body["symbols"] == []


async def test_the_mta_hostname_is_shown_beside_our_evidence(pipeline: Pipeline) -> None:
    symbols = await symbols_for(pipeline, world.UNVERIFIED_IP, hostname=world.UNVERIFIED_NAME)
    assert f"MTA hostname: {world.UNVERIFIED_NAME}" in symbols["RL_PTR_UNVERIFIED"].options
    for no_name in ("unknown", "[203.0.113.12]", ""):
        symbols = await symbols_for(pipeline, world.UNVERIFIED_IP, hostname=no_name)
        assert not any("MTA hostname" in o for o in symbols["RL_PTR_UNVERIFIED"].options)


async def test_the_mta_hostname_is_shown_beside_a_missing_or_failed_ptr(pipeline: Pipeline) -> None:
    # The MTA named a host where we found no PTR, or could not tell: the disagreement
    # is what an admin needs to see first.
    for ip, symbol in (
        (world.MISSING_PTR_IP, "RL_PTR_MISSING"),
        (world.PTR_SERVFAIL_IP, "RL_PTR_TEMPFAIL"),
    ):
        symbols = await symbols_for(pipeline, ip, hostname="mail.mta-says.net")
        assert set(symbols) == {symbol}
        assert "MTA hostname: mail.mta-says.net" in symbols[symbol].options


async def test_a_ptr_name_the_zone_repeats_is_checked_once() -> None:
    """lookups._ptr_facts: "A zone may repeat a name: checked once." A name repeated (or
    the root beside the names) took a place of max_ptr_names, or counted among the names
    not checked, and turned RL_PTR_UNVERIFIED into RL_PTR_TEMPFAIL."""
    ptr = Answer(("mail.repeats.net", "mail.repeats.net", "", "relay.repeats.net"), 300)
    layer = KnownAnswers(
        {
            (reverse_name(CLIENT), dns.rdatatype.PTR): ptr,
            ("mail.repeats.net", dns.rdatatype.A): ELSEWHERE,
            ("relay.repeats.net", dns.rdatatype.A): NotFound(NotFoundKind.NXDOMAIN, 300),
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"], "max_ptr_names": 2}})
    symbols = await symbols_for(Pipeline(config, layer), str(CLIENT))
    assert set(symbols) == {"RL_PTR_UNVERIFIED"}, symbols
    options = symbols["RL_PTR_UNVERIFIED"].options
    assert not any("not checked" in o for o in options), options
    assert [o.split()[0] for o in options[1:]] == ["mail.repeats.net", "relay.repeats.net"]
    assert sorted(layer.asked) == [
        (reverse_name(CLIENT), "PTR"), ("mail.repeats.net", "A"), ("relay.repeats.net", "A"),
    ]  # fmt: skip


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
async def test_the_names_checked_do_not_depend_on_the_ptr_answers_order(
    order: tuple[int, ...],
) -> None:
    """Regression: max_ptr_names cut the names in the order the answer listed them, and a
    resolver rotates that order: one message had its confirming name checked (no
    symbol), the next only the two that fail (RL_PTR_TEMPFAIL). The first in sorted
    order are checked."""
    names = ("a.rotates.net", "b.rotates.net", "c.rotates.net")
    layer = KnownAnswers(
        {
            (reverse_name(CLIENT), dns.rdatatype.PTR): Answer(tuple(names[i] for i in order), 300),
            ("a.rotates.net", dns.rdatatype.A): CONFIRMS,
            ("b.rotates.net", dns.rdatatype.A): ELSEWHERE,
            ("c.rotates.net", dns.rdatatype.A): ELSEWHERE,
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"], "max_ptr_names": 2}})
    assert await symbols_for(Pipeline(config, layer), str(CLIENT)) == {}
    assert sorted(layer.asked) == [
        (reverse_name(CLIENT), "PTR"), ("a.rotates.net", "A"), ("b.rotates.net", "A"),
    ]  # fmt: skip


async def test_the_name_the_mta_confirmed_is_checked_whatever_its_place() -> None:
    """Review: with more PTR names than max_ptr_names, the name the MTA confirmed (its
    hostname field) fell beyond the cut when it sorted late, and the client got
    RL_PTR_TEMPFAIL though that very name confirms. It is checked first."""
    names = ("a.rotates.net", "b.rotates.net", "c.rotates.net")
    layer = KnownAnswers(
        {
            (reverse_name(CLIENT), dns.rdatatype.PTR): Answer(names, 300),
            ("a.rotates.net", dns.rdatatype.A): ELSEWHERE,
            ("b.rotates.net", dns.rdatatype.A): ELSEWHERE,
            ("c.rotates.net", dns.rdatatype.A): CONFIRMS,
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"], "max_ptr_names": 2}})
    pipeline = Pipeline(config, layer)
    assert await symbols_for(pipeline, str(CLIENT), hostname="C.rotates.net.") == {}
    assert ("c.rotates.net", "A") in layer.asked
    # Without it, the first two in sorted order: neither confirms, one is unchecked.
    assert set(await symbols_for(pipeline, str(CLIENT))) == {"RL_PTR_TEMPFAIL"}
    # So too with a hostname that is none of the PTR names: it takes no place of theirs.
    layer.asked.clear()
    other = await symbols_for(pipeline, str(CLIENT), hostname="mx.other.net")
    assert set(other) == {"RL_PTR_TEMPFAIL"}
    assert sorted(layer.asked) == [
        (reverse_name(CLIENT), "PTR"), ("a.rotates.net", "A"), ("b.rotates.net", "A"),
    ]  # fmt: skip


async def test_the_helos_name_among_the_ptr_names_is_checked_whatever_its_place(
    unbound_config: Config,
) -> None:
    """Regression: with more PTR names than max_ptr_names, the HELO's name (the one the
    HELO checks' FCrDNS evidence is about) fell beyond the cut when it sorted late, and
    a relay greeting with its forward-confirmed PTR name got RL_PTR_TEMPFAIL."""
    pipeline = Pipeline(unbound_config)
    assert set(await symbols_for(pipeline, world.SHARED_PTR_IP)) == {"RL_PTR_TEMPFAIL"}
    for helo in (world.SHARED_PTR_NAME, f"{world.SHARED_PTR_NAME.upper()}."):
        assert await symbols_for(pipeline, world.SHARED_PTR_IP, helo=helo) == {}, helo


@pytest.mark.parametrize("order", [(0, 1, 2, 3, 4, 5), (5, 4, 3, 2, 1, 0), (3, 0, 5, 1, 4, 2)])
async def test_the_names_that_decide_go_before_the_cut_in_a_fixed_order(
    order: tuple[int, ...],
) -> None:
    """lookups._before_the_cut: the MTA's name, then the names an allowlist entry would
    apply for, then the HELO's name, then the rest in sorted order; whatever the order
    the PTR answer lists them in. A `helo` entry takes a place when it is the HELO."""
    names = (
        "a.order.net",
        "b.order.net",  # a helo entry, not the HELO
        "h.order.net",  # the HELO
        "x.partner-a.net",  # under a ptr entry
        "y.partner-b.net",  # under a ptr entry
        "z.order.net",  # the MTA's name
    )
    config = config_from_mapping(
        {
            "dns": {"nameservers": ["127.0.0.1:9"]},
            "allowlist": {
                "ptr_suffixes": ["partner-a.net", "partner-b.net"],
                "helo_names": ["b.order.net"],
            },
        }
    )
    vouched = config.allowlist_entries.applies_if_confirmed
    layer = KnownAnswers(
        {(reverse_name(CLIENT), dns.rdatatype.PTR): Answer(tuple(names[i] for i in order), 300)}
    )
    mta, ptr_a, ptr_b, rest = "z.order.net", "x.partner-a.net", "y.partner-b.net", "a.order.net"
    first = {
        "H.order.net": [mta, ptr_a, ptr_b, "h.order.net", rest],
        "b.order.net": [mta, "b.order.net", ptr_a, ptr_b, rest],  # the helo entry is the HELO
    }
    for helo, expected in first.items():
        fields = {"ip": str(CLIENT), "helo": helo, "hostname": "z.order.net."}
        request = parse_request(fields).request
        for cut in range(1, len(expected) + 1):
            deadline = asyncio.get_running_loop().time() + 2.0
            facts = await gather_facts(request, layer, Limits(cut, 10), deadline, vouched)
            assert list(facts.ptr.forward) == expected[:cut], (helo, cut)
            assert facts.ptr.unchecked_names == len(names) - cut
    # Below the cut the allowlist is not asked: every name is resolved anyway.
    asked: list[tuple[str, str]] = []

    def asking(name: str, helo: str) -> bool:
        asked.append((name, helo))
        return vouched(name, helo)

    deadline = asyncio.get_running_loop().time() + 2.0
    facts = await gather_facts(request, layer, Limits(len(names), 10), deadline, asking)
    assert asked == [] and sorted(facts.ptr.forward) == sorted(names)


async def test_the_name_the_mta_confirmed_is_checked_first_in_u_labels_too() -> None:
    """Review: an MTA that writes the client's name in U-labels (``MX.Bücher.de``) had
    it compared with the PTR names as written, which DNS gives in A-labels: never among
    them, so beyond max_ptr_names it went unchecked (RL_PTR_TEMPFAIL) though it
    confirms. Read as a HELO is, it is the PTR name ``mx.xn--bcher-kva.de``."""
    names = ("a.rotates.net", "b.rotates.net", "mx.xn--bcher-kva.de")
    layer = KnownAnswers(
        {
            (reverse_name(CLIENT), dns.rdatatype.PTR): Answer(names, 300),
            ("a.rotates.net", dns.rdatatype.A): ELSEWHERE,
            ("b.rotates.net", dns.rdatatype.A): ELSEWHERE,
            ("mx.xn--bcher-kva.de", dns.rdatatype.A): CONFIRMS,
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"], "max_ptr_names": 2}})
    pipeline = Pipeline(config, layer)
    for written in ("MX.Bücher.de", "mx.bücher.de.", "mx.bücher.de\u3002"):
        assert await symbols_for(pipeline, str(CLIENT), hostname=written) == {}, written


CLIENT = ipaddress.IPv4Address("81.2.70.71")
GENERIC = "81-2-70-71.dyn.some-isp.net"
CUSTOM = "mail.two-names.net"
CONFIRMS: Answer[IPAddress] = Answer((CLIENT,), 300)
ELSEWHERE: Answer[IPAddress] = Answer((ipaddress.IPv4Address("81.2.70.99"),), 300)
TIMEOUT = TempFail(FailureKind.TIMEOUT, "no answer")


def _ptr_facts(forward: dict[str, Lookup[IPAddress]], unchecked: int = 0) -> PtrFacts:
    return PtrFacts(CLIENT, Answer(tuple(forward), 300), forward, unchecked_names=unchecked)


@pytest.mark.parametrize("names", [[GENERIC, CUSTOM], [CUSTOM, GENERIC]])
def test_generic_verdict_does_not_depend_on_the_order_of_ptr_names(names: list[str]) -> None:
    """Regression: only the first confirmed name was classified, and a PTR answer's
    order is random: a relay with a custom name beside a generic one scored half the time."""
    assert check_ptr(_ptr_facts(dict.fromkeys(names, CONFIRMS))) == []
    unconfirmed = check_ptr(_ptr_facts(dict.fromkeys(names, ELSEWHERE)))
    assert [hit.symbol for hit in unconfirmed] == ["RL_PTR_UNVERIFIED"]


LOW_GENERIC = "81.2.70.71.some-isp.net"  # a bare address, no keyword: less sure than GENERIC
HIGH_GENERIC = "dsl-81-2-70-71.dynamic.some-isp.net"
TIED_GENERIC = "host-71.70.2.81.pool.some-isp.net"  # as sure as GENERIC


@pytest.mark.parametrize(
    "order",
    [[GENERIC, LOW_GENERIC, HIGH_GENERIC], [HIGH_GENERIC, LOW_GENERIC, GENERIC],
     [LOW_GENERIC, HIGH_GENERIC, GENERIC], [HIGH_GENERIC, GENERIC, LOW_GENERIC]],
)  # fmt: skip
def test_all_generic_names_score_at_the_lowest_confidence(order: list[str]) -> None:
    # checks.ptr._generic: every name generic, at the lowest confidence among them, with
    # that name's evidence, whatever the order. (Mutation review: with two names of one
    # confidence the highest, the first or the last passed as well.)
    alone = {name: check_ptr(_ptr_facts({name: CONFIRMS}))[0] for name in order}
    assert len({hit.confidence for hit in alone.values()}) == 3, "the test needs three levels"
    assert min(alone.values(), key=lambda hit: hit.confidence) == alone[LOW_GENERIC]
    hits = check_ptr(_ptr_facts(dict.fromkeys(order, CONFIRMS)))
    assert hits == [alone[LOW_GENERIC]]


@pytest.mark.parametrize(
    ("name", "confidence"),
    [("dyn123456.some-isp.net", 0.45), ("dyn-70-71-12.some-isp.net", 0.65), (GENERIC, 0.95)],
)
def test_a_generic_hit_is_the_verdict_as_it_stands(name: str, confidence: float) -> None:
    # checks.generic.generic_hit: the symbol's weight is scaled by the classifier's
    # confidence itself, and its options are the name and the verdict's evidence, in
    # order. (Mutation review: a confidence rounded to one decimal, 0.5 and 0.7 here,
    # passed every test.)
    verdict = classify(CLIENT, name, True)
    assert check_ptr(_ptr_facts({name: CONFIRMS})) == [
        Hit("RL_PTR_GENERIC", (f"ptr={name}", *verdict.describe()), confidence)
    ]


@pytest.mark.parametrize("order", [[GENERIC, TIED_GENERIC], [TIED_GENERIC, GENERIC]])
def test_generic_names_tied_at_the_lowest_confidence_give_one_evidence(order: list[str]) -> None:
    """Regression (mutation review): of names tied at the lowest confidence the first in
    the PTR answer gave the evidence, so the resolver's rotation changed the reply's
    options from one message to the next. The first in sorted order gives it now."""
    alone = {name: check_ptr(_ptr_facts({name: CONFIRMS}))[0] for name in order}
    assert alone[GENERIC].confidence == alone[TIED_GENERIC].confidence
    hits = check_ptr(_ptr_facts(dict.fromkeys(order, CONFIRMS)))
    assert hits == [alone[min(order)]]


def test_a_forward_failure_never_adds_a_generic_penalty() -> None:
    """Regression: the real name's forward lookup timed out, the generic one's said
    NXDOMAIN, and the generic name alone earned RL_PTR_GENERIC."""
    gone = NotFound(NotFoundKind.NXDOMAIN, 300)
    hits = check_ptr(_ptr_facts({GENERIC: gone, CUSTOM: TIMEOUT}))
    assert [hit.symbol for hit in hits] == ["RL_PTR_TEMPFAIL"]


def test_a_big_senders_name_whose_forward_lookup_failed_keeps_its_exemption() -> None:
    name = "out-71.70.2.81.mail.qq.com"
    assert classify(CLIENT, name, False).generic  # the exemption needs confirmation ...
    hits = check_ptr(_ptr_facts({name: TIMEOUT}))
    assert [hit.symbol for hit in hits] == ["RL_PTR_TEMPFAIL"]  # ... or a failed check
    # ... beside a generic name that confirms too: the failed name, judged as if it
    # had confirmed, keeps its exemption, so not every name is generic.
    assert check_ptr(_ptr_facts({GENERIC: CONFIRMS, name: TIMEOUT})) == []


@pytest.mark.parametrize("unknown", ["failed", "unchecked"])
def test_a_confirmed_generic_name_beside_an_unknown_one_is_not_scored(unknown: str) -> None:
    """Regression (review): with one generic name confirmed, a custom name whose forward
    lookup failed (or that max_ptr_names left unchecked) was ignored: RL_PTR_GENERIC."""
    if unknown == "failed":
        facts = _ptr_facts({GENERIC: CONFIRMS, CUSTOM: TIMEOUT})
    else:
        facts = _ptr_facts({GENERIC: CONFIRMS}, unchecked=1)
    assert check_ptr(facts) == []
    assert [h.symbol for h in check_ptr(_ptr_facts({GENERIC: CONFIRMS}))] == ["RL_PTR_GENERIC"]


def test_names_beyond_max_ptr_names_make_the_verdict_unknown_not_unverified() -> None:
    facts = dataclasses.replace(_ptr_facts({CUSTOM: ELSEWHERE}, unchecked=2), mta_hostname="mx.b")
    hits = check_ptr(facts)
    assert [hit.symbol for hit in hits] == ["RL_PTR_TEMPFAIL"]
    # Our evidence (the names checked, then the count of those not), the MTA's view last,
    # as beside every other PTR verdict.
    assert hits[0].options[-2:] == (
        "2 more PTR names not checked (max_ptr_names)",
        "MTA hostname: mx.b",
    )


def test_forward_evidence_names_the_record_asked_and_why_it_failed() -> None:
    """Regression (review): "mail.example : nodata" for a name that has an AAAA record
    (only A confirms an IPv4 client), and a forward failure without its reason."""
    nodata = NotFound(NotFoundKind.NODATA, 300)
    loop = TempFail(FailureKind.MALFORMED, "CNAME loop")
    unverified = check_ptr(_ptr_facts({CUSTOM: nodata}))[0]
    assert f"{CUSTOM} A: nodata" in unverified.options
    tempfail = check_ptr(_ptr_facts({CUSTOM: loop}))[0]
    assert f"{CUSTOM} A: malformed: CNAME loop" in tempfail.options
    client6 = ipaddress.IPv6Address("2001:db8::71")
    facts6 = PtrFacts(client6, Answer((CUSTOM,), 300), {CUSTOM: nodata})
    assert f"{CUSTOM} AAAA: nodata" in check_ptr(facts6)[0].options


@pytest.mark.parametrize(
    ("client", "suffix"),
    [("81.2.69.25", "25.69.2.81.in-addr.arpa"),
     ("2001:db8::25", "5.2.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2.ip6.arpa")],
)  # fmt: skip
def test_a_ptr_name_without_its_final_dot_is_unverified_and_not_generic(
    client: str, suffix: str
) -> None:
    """Regression (review): "PTR mail.example.net" written without its final dot reads
    mail.example.net.25.69.2.81.in-addr.arpa; it scored RL_PTR_UNVERIFIED and, for the
    address the reverse tree spells, RL_PTR_GENERIC too (5.12, above RL_PTR_MISSING),
    with a hint to replace a "generic PTR". One fault, said as one."""
    ip = ipaddress.ip_address(client)
    name = f"mail.example.net.{suffix}"
    nxdomain = NotFound(NotFoundKind.NXDOMAIN, 300)
    hits = check_ptr(PtrFacts(ip, Answer((name,), 300), {name: nxdomain}))
    assert [hit.symbol for hit in hits] == ["RL_PTR_UNVERIFIED"]
    record = "A" if ip.version == 4 else "AAAA"
    # (The name is shortened in its middle where long: the end stays in view.)
    assert (
        hits[0]
        .options[1]
        .endswith(
            f".arpa {record}: nxdomain (under the reverse tree: a PTR without its final dot?)"
        )
    )
    # Forward-confirmed (an odd zone that gives it an address): still not generic.
    assert check_ptr(PtrFacts(ip, Answer((name,), 300), {name: Answer((ip,), 300)})) == []


def test_the_mta_hostname_is_shown_beside_a_generic_verdict_too() -> None:
    """Regression (review): README promises it beside our PTR evidence; GENERIC lacked it."""
    facts = dataclasses.replace(_ptr_facts({GENERIC: CONFIRMS}), mta_hostname="mx.other.net")
    (hit,) = check_ptr(facts)
    assert hit.symbol == "RL_PTR_GENERIC" and "MTA hostname: mx.other.net" in hit.options


@pytest.mark.parametrize("order", [[GENERIC, CUSTOM], [CUSTOM, GENERIC]])
def test_the_hint_names_the_ptr_names_judged_whatever_their_order(order: list[str]) -> None:
    """Regression (review): `rdns-scorer check` named the first PTR name of the answer,
    which the resolver rotates: "replace the generic PTR mail40..." named the custom one."""
    forward = {GENERIC: CONFIRMS, CUSTOM: ELSEWHERE}
    facts = PtrFacts(CLIENT, Answer(tuple(order), 300), {n: forward[n] for n in order})
    assert facts.names_judged() == [GENERIC]
    unconfirmed = PtrFacts(CLIENT, Answer(tuple(order), 300), dict.fromkeys(order, ELSEWHERE))
    assert unconfirmed.names_judged() == sorted(order)


def test_a_ptr_naming_an_address_is_no_host_name() -> None:
    """Regression (review): "PTR 81.2.70.71." scored RL_PTR_UNVERIFIED after asking for
    the A record of a name that cannot exist: RFC 1123 section 2.1 says a host name never
    has the dotted-decimal form, and Postfix reads it as no name, like "PTR ."."""
    literal = str(CLIENT)
    (hit,) = check_ptr(_ptr_facts({literal: NotFound(NotFoundKind.NXDOMAIN, 300)}))
    assert hit.symbol == "RL_PTR_MISSING"
    assert f"PTR: {literal} (an address, not a host name)" in hit.options
    beside_a_name = check_ptr(_ptr_facts({literal: ELSEWHERE, CUSTOM: CONFIRMS}))
    assert beside_a_name == []


async def test_a_ptr_naming_an_address_takes_no_place_among_the_names_checked() -> None:
    """Regression: "PTR 81.2.70.70." beside host names was resolved forward (an A query for
    a name that cannot exist) and, sorting before every letter, took a place of
    max_ptr_names: the name that confirms fell beyond the cut and the client got
    RL_PTR_TEMPFAIL. Like the root, an address names no host and is not looked up."""
    names = ("b.addr-ptr.net", "81.2.70.70", "a.addr-ptr.net")
    layer = KnownAnswers(
        {
            (reverse_name(CLIENT), dns.rdatatype.PTR): Answer(names, 300),
            ("a.addr-ptr.net", dns.rdatatype.A): ELSEWHERE,
            ("b.addr-ptr.net", dns.rdatatype.A): CONFIRMS,
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"], "max_ptr_names": 2}})
    assert await symbols_for(Pipeline(config, layer), str(CLIENT)) == {}
    assert sorted(layer.asked) == [
        (reverse_name(CLIENT), "PTR"), ("a.addr-ptr.net", "A"), ("b.addr-ptr.net", "A"),
    ]  # fmt: skip


@pytest.mark.parametrize("spelled", ["81.2.70.071", "081.002.070.071", "::ffff:81.2.70.071"])
def test_a_ptr_naming_an_address_with_leading_zeros_is_no_host_name(spelled: str) -> None:
    """Regression: "PTR 81.2.70.071." scored RL_PTR_UNVERIFIED after an A query for a name
    under the unknown TLD "071": it is dotted-decimal all the same (RFC 1123 section 2.1;
    RFC 5321 section 4.1.3 reads each number as decimal, as a HELO of it is
    RL_HELO_BARE_IP), and a resolver library reading it as an address would take 071 for
    octal (57): no host name either way."""
    (hit,) = check_ptr(_ptr_facts({spelled: NotFound(NotFoundKind.NXDOMAIN, 300)}))
    assert hit.symbol == "RL_PTR_MISSING"
    assert f"PTR: {spelled} (an address, not a host name)" in hit.options


@pytest.mark.parametrize(
    "loopback", ["localhost", "ip6-localhost", "mail.localhost", "localhost.hoster.example"]
)
async def test_a_ptr_naming_loopback_names_no_host(loopback: str) -> None:
    """Regression (review): "PTR localhost." (a hoster's default for an address it has
    not given out) was looked up, found at 127.0.0.1 and scored RL_PTR_UNVERIFIED (3)
    with a fix hint to point localhost at the client; RFC 6761 section 6.3 keeps the
    name for loopback, and no remote client is it: no PTR name, as "PTR ." is. So is
    "PTR localhost.hoster.example." (review: it still scored 3), the loopback name RFC
    1912 section 4.1 has a zone give 127.0.0.1, as a HELO of it is RL_HELO_LOCALHOST."""
    layer = KnownAnswers(
        {
            (reverse_name(CLIENT), dns.rdatatype.PTR): Answer((loopback,), 300),
            (loopback, dns.rdatatype.A): Answer((ipaddress.ip_address("127.0.0.1"),), 300),
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"]}})
    symbols = await symbols_for(Pipeline(config, layer), str(CLIENT))
    assert set(symbols) == {"RL_PTR_MISSING"}, symbols
    assert f"PTR: {loopback} (loopback, not a host name)" in symbols["RL_PTR_MISSING"].options
    assert layer.asked == [(reverse_name(CLIENT), "PTR")]


@pytest.mark.parametrize(
    "records", [("81.2.70.71", "81.2.70.70", "81.2.70.71"), ("81.2.70.71", "", "81.2.70.70")]
)
def test_ptrs_naming_addresses_are_shown_once_each_whatever_the_order(
    records: tuple[str, ...],
) -> None:
    """Regression: the addresses were shown as the answer listed them, repeats and all: a
    resolver rotating the PTR answer changed RL_PTR_MISSING's options from one message
    to the next (as the names judged must not change with it)."""
    (hit,) = check_ptr(PtrFacts(CLIENT, Answer(records, 300)))
    assert "PTR: 81.2.70.70, 81.2.70.71 (an address, not a host name)" in hit.options


@pytest.mark.parametrize("order", [(99, 7, 99, 100), (100, 99, 7)])
def test_where_a_ptr_name_points_is_shown_in_one_order(order: tuple[int, ...]) -> None:
    """Regression: a name's addresses were shown as its A answer listed them: a resolver
    rotating that answer changed RL_PTR_UNVERIFIED's options from one message to the next
    (and, past the option's 160 characters, which addresses were shown at all)."""
    addresses = tuple(ipaddress.IPv4Address(f"81.2.70.{n}") for n in order)
    (hit,) = check_ptr(_ptr_facts({CUSTOM: Answer(addresses, 300)}))
    assert f"{CUSTOM} -> 81.2.70.7, 81.2.70.99, 81.2.70.100" in hit.options


def test_many_ptrs_naming_addresses_keep_the_option_within_the_cap() -> None:
    """Regression: " (an address, not a host name)" and "PTR: " were added after the list
    was capped at 160 characters, so a reverse zone listing many addresses made an option
    of 195 (every other option is capped: scorer.text.option)."""
    records = tuple(f"2001:db8::{n:x}" for n in range(16))
    (hit,) = check_ptr(PtrFacts(CLIENT, Answer(records, 300)))
    assert hit.symbol == "RL_PTR_MISSING"
    assert all(len(o) <= OPTION_MAX_CHARS for o in hit.options), hit.options
    assert any(o.startswith("PTR: 2001:db8::0, 2001:db8::1, ") for o in hit.options)


def test_a_ptr_naming_an_address_literal_is_no_host_name() -> None:
    """Regression: "PTR [81.2.70.71]." (an SMTP address literal, RFC 5321 section 4.1.3)
    was taken as a name, looked up and scored RL_PTR_UNVERIFIED: it names an address, as
    "PTR 81.2.70.71." does, and an MX target "[81.2.70.71]" is 'IP literal as MX'."""
    (hit,) = check_ptr(_ptr_facts({"[81.2.70.71]": NotFound(NotFoundKind.NXDOMAIN, 300)}))
    assert hit.symbol == "RL_PTR_MISSING"
    assert "PTR: [81.2.70.71] (an address, not a host name)" in hit.options


@pytest.mark.parametrize("literal", ["[IPv6:2001:db8::25]", "[ipv6:::ffff:81.2.70.071]"])
def test_a_ptr_naming_an_ipv6_address_literal_is_no_host_name(literal: str) -> None:
    # Regression: the "IPv6:" tag an IPv6 address literal carries (RFC 5321 section
    # 4.1.3) was read as part of a name, which was looked up: RL_PTR_UNVERIFIED.
    (hit,) = check_ptr(_ptr_facts({literal: NotFound(NotFoundKind.NXDOMAIN, 300)}))
    assert hit.symbol == "RL_PTR_MISSING"
    assert f"PTR: {literal} (an address, not a host name)" in hit.options


def test_a_long_ptr_name_keeps_why_it_is_unverified_in_view() -> None:
    # Regression (review): a 191-character PTR name resolving elsewhere showed as
    # "llll...llll...": the "-> 198.51.100.44" that says why it is unverified was cut.
    name = ".".join(["l" * 60] * 3) + ".example.net"
    elsewhere = ipaddress.IPv4Address("198.51.100.44")
    (hit,) = check_ptr(_ptr_facts({name: Answer((elsewhere,), 300)}))
    assert hit.symbol == "RL_PTR_UNVERIFIED"
    shown = hit.options[1]
    assert len(shown) <= OPTION_MAX_CHARS and shown.endswith(".example.net -> 198.51.100.44")
    assert shown.startswith("l" * 20) and "..." in shown


def test_evidence_writes_an_ipv4_mapped_address_alike_on_every_python() -> None:
    # Regression (review): str() gave "::ffff:a00:1" on Python 3.11 and 3.12 and
    # "::ffff:10.0.0.1" on 3.13, so the same answer read differently by the host's Python.
    mapped = ipaddress.ip_address("::ffff:10.0.0.1")
    others = [ipaddress.ip_address("fd00::1"), ipaddress.ip_address("10.0.0.2")]
    assert listed_addresses([mapped, *others]) == "10.0.0.2, ::ffff:10.0.0.1, fd00::1"


# Zones a resolver resolves as it would on the internet (Zones.auth_zone), where a CNAME
# is followed into another zone: world's local-data answers a CNAME alone.
CLASSLESS = "0-25.2.0.192.in-addr.arpa"  # RFC 2317 section 4's name for 192.0.2.0/25
CLASSLESS_CONFIRMED_IP = "192.0.2.5"
CLASSLESS_UNVERIFIED_IP = "192.0.2.6"  # its PTR name resolves elsewhere
CLASSLESS_NXDOMAIN_IP = "192.0.2.7"  # its CNAME's target does not exist
CLASSLESS_NODATA_IP = "192.0.2.8"  # its CNAME's target holds no PTR
ALIASED_IP = "192.0.2.9"  # PTR name -> CNAME -> A of the client
ALIAS_TO_NOTHING_IP = "192.0.2.10"  # PTR name -> CNAME -> NXDOMAIN
ALIAS_LOOP_IP = "192.0.2.11"  # PTR name -> CNAME -> CNAME -> the PTR name
NOT_FOLLOWED_IP = "203.0.113.5"  # a CNAME in local-data: unbound does not follow it
# An IPv6 /48 whose reverse names a DNAME hands to its holder's zone (RFC 6672).
DELEGATED_48 = "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"  # 2001:db8:1::/48
DELEGATED_TO = "rev6.classless.net"
DNAME_CONFIRMED_IP6 = "2001:db8:1::25"
DNAME_MISSING_IP6 = "2001:db8:1::26"


@pytest.fixture(scope="module")
def recursive() -> Iterator[Unbound]:
    # The /24's holder points each address of the /25 at a name in the zone it
    # delegated to the /25's holder, which holds the PTR (RFC 2317 section 4).
    reverse, classless, forward, local, reverse6 = Zones(), Zones(), Zones(), Zones(), Zones()
    for host in (5, 6, 7, 8):
        reverse.add(f"{host}.2.0.192.in-addr.arpa", "CNAME", f"{host}.{CLASSLESS}.")
    classless.add(f"5.{CLASSLESS}", "PTR", "mail.classless.net.")
    classless.add(f"6.{CLASSLESS}", "PTR", "other.classless.net.")
    classless.add(f"8.{CLASSLESS}", "TXT", '"no PTR here"')
    forward.address("mail.classless.net", CLASSLESS_CONFIRMED_IP)
    forward.address("other.classless.net", "192.0.2.99")
    for ip, name in (
        (ALIASED_IP, "alias"), (ALIAS_TO_NOTHING_IP, "gone"), (ALIAS_LOOP_IP, "loop"),
    ):  # fmt: skip
        reverse.ptr(ip, f"{name}.classless.net")
    forward.add("alias.classless.net", "CNAME", "host9.classless.net.")
    forward.address("host9.classless.net", ALIASED_IP)
    forward.add("gone.classless.net", "CNAME", "nothere.classless.net.")
    forward.add("loop.classless.net", "CNAME", "loop2.classless.net.")
    forward.add("loop2.classless.net", "CNAME", "loop.classless.net.")
    reverse6.add(DELEGATED_48, "DNAME", f"{DELEGATED_TO}.")
    within = reverse_name(ipaddress.ip_address(DNAME_CONFIRMED_IP6)).removesuffix(DELEGATED_48)
    forward.add(f"{within}{DELEGATED_TO}", "PTR", "mail6.classless.net.")
    forward.address("mail6.classless.net", DNAME_CONFIRMED_IP6)
    local.add("5.113.0.203.in-addr.arpa", "CNAME", "5.0-25.113.0.203.in-addr.arpa.")
    local.add("5.0-25.113.0.203.in-addr.arpa", "PTR", "mail.classless.net.")
    local.auth_zone("2.0.192.in-addr.arpa", reverse.records)
    local.auth_zone(CLASSLESS, classless.records)
    local.auth_zone("classless.net", forward.records)
    local.auth_zone("8.b.d.0.1.0.0.2.ip6.arpa", reverse6.records)
    server = Unbound(local).start()
    yield server
    server.stop()


async def test_a_classless_ptr_is_found_through_its_cname(recursive: Unbound) -> None:
    """RFC 2317: the PTR question is answered with a CNAME into the /25's zone and the PTR
    there; the PTR found is the client's, and the evidence names the PTR name (what the
    /25's holder wrote), not the CNAME's target."""
    pipeline = Pipeline(make_config(recursive.nameserver))
    assert await symbols_for(pipeline, CLASSLESS_CONFIRMED_IP) == {}
    symbols = await symbols_for(pipeline, CLASSLESS_UNVERIFIED_IP)
    assert set(symbols) == {"RL_PTR_UNVERIFIED"}
    assert "other.classless.net -> 192.0.2.99" in symbols["RL_PTR_UNVERIFIED"].options


async def test_an_ipv6_ptr_is_found_through_a_dname(recursive: Unbound) -> None:
    """An IPv6 reverse block handed to its holder by a DNAME (RFC 6672): the resolver
    answers the DNAME, the CNAME it synthesised and the PTR at its end; the PTR is the
    client's, its AAAA confirms it, and a name the holder left out is missing there."""
    pipeline = Pipeline(make_config(recursive.nameserver))
    assert await symbols_for(pipeline, DNAME_CONFIRMED_IP6) == {}
    symbols = await symbols_for(pipeline, DNAME_MISSING_IP6)
    assert set(symbols) == {"RL_PTR_MISSING"}
    within = reverse_name(ipaddress.ip_address(DNAME_MISSING_IP6)).removesuffix(DELEGATED_48)
    said = f"PTR: nxdomain at {within}{DELEGATED_TO} (CNAME target)"
    assert said in symbols["RL_PTR_MISSING"].options


@pytest.mark.parametrize(
    ("ip", "said"),
    [(CLASSLESS_NXDOMAIN_IP, "nxdomain"), (CLASSLESS_NODATA_IP, "nodata")],
    ids=["nxdomain", "nodata"],
)
async def test_a_classless_cname_to_no_ptr_is_missing_where_it_points(
    recursive: Unbound, ip: str, said: str
) -> None:
    """A CNAME whose target has no PTR: the client has none (RFC 2308 section 2.1, the
    "no" is the chain's last name's), and the evidence names that target, the record the
    /25's holder has to add."""
    symbols = await symbols_for(Pipeline(make_config(recursive.nameserver)), ip)
    assert set(symbols) == {"RL_PTR_MISSING"}
    target = f"{ip.rsplit('.', 1)[1]}.{CLASSLESS}"
    assert f"PTR: {said} at {target} (CNAME target)" in symbols["RL_PTR_MISSING"].options


@pytest.mark.parametrize(
    ("ip", "symbol", "evidence"),
    [
        (ALIASED_IP, None, None),
        (
            ALIAS_TO_NOTHING_IP,
            "RL_PTR_UNVERIFIED",
            "gone.classless.net A: nxdomain at nothere.classless.net (CNAME target)",
        ),
        (ALIAS_LOOP_IP, "RL_PTR_TEMPFAIL", "loop.classless.net A: servfail"),
    ],
    ids=["confirmed", "to-nothing", "loop"],
)
async def test_a_ptr_names_forward_lookup_follows_its_cname(
    recursive: Unbound, ip: str, symbol: str | None, evidence: str | None
) -> None:
    """The PTR name's A reached through a CNAME confirms (RFC 8601 section 3 asks for the
    name's addresses, wherever they are kept); a CNAME to nothing is no address, named
    where it ends; a CNAME loop, which the resolver answers SERVFAIL (RFC 1034 section
    3.6.2), is a failure, never an unverified PTR."""
    symbols = await symbols_for(Pipeline(make_config(recursive.nameserver)), ip)
    if symbol is None:
        assert symbols == {}
        return
    assert set(symbols) == {symbol}
    assert evidence in symbols[symbol].options


async def test_a_cname_the_resolver_does_not_follow_is_no_missing_ptr(recursive: Unbound) -> None:
    """A resolver that answers a PTR question with the CNAME alone, no PTR and no SOA of
    the target's zone (unbound's local-data, a server that does not recurse) said
    nothing of the target: a failure, never RL_PTR_MISSING."""
    symbols = await symbols_for(Pipeline(make_config(recursive.nameserver)), NOT_FOLLOWED_IP)
    assert set(symbols) == {"RL_PTR_TEMPFAIL"}
    (failure,) = symbols["RL_PTR_TEMPFAIL"].options
    assert "CNAME chain not followed" in failure
