"""The DNS layer: three outcomes, caching with TTLs and bounds, coalescing, deadlines."""

from __future__ import annotations

import asyncio
import ipaddress

import dns.name
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.dns import wire
from scorer.dns.cache import TtlCache
from scorer.dns.layer import DnsLayer, Outcome, QueryHealth, parse_nameserver
from scorer.dns.outcomes import Answer, FailureKind, NotFound, NotFoundKind, TempFail
from tests import world
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.ports import tcp_listener
from tests.support.unbound import Unbound


def _layer(nameserver: str, timeout: float = 0.5, cache_entries: int = 1000) -> DnsLayer:
    cache: TtlCache[Outcome] = TtlCache(cache_entries, 0.0, 3600.0)
    return DnsLayer([parse_nameserver(nameserver)], timeout, cache)


def _deadline(seconds: float = 2.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_answer_nxdomain_and_nodata(unbound: Unbound) -> None:
    layer = _layer(unbound.nameserver)
    answer = await layer.ptr(ipaddress.ip_address(world.CONFIRMED_IP), _deadline())
    assert answer == Answer((world.CONFIRMED_NAME,), 300)
    missing = await layer.ptr(ipaddress.ip_address(world.MISSING_PTR_IP), _deadline())
    assert isinstance(missing, NotFound) and missing.kind is NotFoundKind.NXDOMAIN
    nodata = await layer.mx(world.IMPLICIT_MX_DOMAIN, _deadline())
    assert isinstance(nodata, NotFound) and nodata.kind is NotFoundKind.NODATA


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("servfail", FailureKind.SERVFAIL),
        ("refused", FailureKind.REFUSED),
        ("silent", FailureKind.TIMEOUT),
        ("garbage", FailureKind.TIMEOUT),
    ],
)
async def test_faults_become_tempfail(mode: str, kind: FailureKind) -> None:
    server = FaultyDns(mode).start()
    try:
        outcome = await _layer(server.nameserver, timeout=0.3).mx("example.net", _deadline())
    finally:
        server.stop()
    assert isinstance(outcome, TempFail)
    assert outcome.kind is kind


async def test_a_stalled_tcp_retry_stays_within_the_lookup_timeout() -> None:
    # UDP says "truncated" late, TCP accepts and never answers. The TCP retry used
    # to get a whole new timeout, so the lookup took up to twice [dns] timeout.
    server = FaultyDns("late-truncated", delay=0.4).start()
    stalled = tcp_listener(server.port)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await _layer(server.nameserver, timeout=0.6).mx("example.net", _deadline(5.0))
        took = loop.time() - started
    finally:
        stalled.close()
        server.stop()
    assert isinstance(outcome, TempFail) and outcome.kind is FailureKind.TIMEOUT
    assert took < 0.9, f"lookup took {took:.2f}s with a 0.6s timeout"


async def test_nothing_listening_is_tempfail() -> None:
    outcome = await _layer(f"127.0.0.1:{dead_port()}", timeout=0.3).mx("x.net", _deadline())
    assert isinstance(outcome, TempFail)


async def test_outcomes_are_cached_but_failures_are_not(unbound: Unbound) -> None:
    layer = _layer(unbound.nameserver, timeout=0.2)
    await layer.mx(world.GOOD_DOMAIN, _deadline())
    await layer.mx(world.NXDOMAIN_DOMAIN, _deadline())
    await layer.mx(world.TIMEOUT_DOMAIN, _deadline())
    assert len(layer.cache) == 2
    hits_before = layer.cache.hits
    await layer.mx(world.NXDOMAIN_DOMAIN, _deadline())
    assert layer.cache.hits == hits_before + 1


async def test_negative_ttl_comes_from_the_soa(unbound: Unbound) -> None:
    outcome = await _layer(unbound.nameserver).mx(world.NXDOMAIN_DOMAIN, _deadline())
    assert isinstance(outcome, NotFound)
    assert 0 < outcome.ttl <= 3600  # unbound's static zone SOA, not our 300 s fallback


async def test_concurrent_identical_lookups_share_one_query(unbound: Unbound) -> None:
    layer = _layer(unbound.nameserver)
    sent: list[str] = []
    layer.observer = lambda rdtype, _result, _seconds: sent.append(rdtype)  # once per query
    results = await asyncio.gather(*(layer.mx(world.GOOD_DOMAIN, _deadline()) for _ in range(20)))
    assert sent == ["MX"]
    assert len(set(results)) == 1


async def test_deadline_bounds_a_lookup_without_cancelling_it_for_others() -> None:
    server = FaultyDns("silent").start()
    try:
        layer = _layer(server.nameserver, timeout=1.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        short = layer.mx("slow.net", loop.time() + 0.1)
        long = layer.mx("slow.net", loop.time() + 3.0)
        first, second = await asyncio.gather(short, long)
        assert isinstance(first, TempFail) and first.kind is FailureKind.DEADLINE
        assert isinstance(second, TempFail) and second.kind is FailureKind.TIMEOUT
        assert loop.time() - started < 2.0
    finally:
        server.stop()


async def test_expired_deadline_makes_no_query(unbound: Unbound) -> None:
    layer = _layer(unbound.nameserver)
    outcome = await layer.mx(world.GOOD_DOMAIN, asyncio.get_running_loop().time() - 1)
    assert isinstance(outcome, TempFail) and outcome.kind is FailureKind.DEADLINE


def _value(cache: TtlCache[str], key: str) -> str | None:
    entry = cache.get_entry(key)
    return None if entry is None else entry[1]


def test_cache_respects_ttl_bounds_and_size() -> None:
    now = [0.0]
    cache: TtlCache[str] = TtlCache(2, min_ttl=5, max_ttl=60, clock=lambda: now[0])
    cache.put("a", "A", ttl=0)  # raised to the 5 s floor
    cache.put("b", "B", ttl=10)
    now[0] = 4.9
    assert _value(cache, "a") == "A"
    now[0] = 5.1
    assert _value(cache, "a") is None
    cache.put("c", "C", ttl=30)
    cache.put("d", "D", ttl=30)  # evicts "b", the least recently used
    assert len(cache) == 2
    assert _value(cache, "b") is None and _value(cache, "d") == "D"
    cache.put("e", "E", ttl=1000)  # cut to the 60 s ceiling
    now[0] = 5.1 + 59.9
    assert _value(cache, "e") == "E"
    now[0] = 5.1 + 60.1
    assert _value(cache, "e") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1", "127.0.0.1:53"), ("127.0.0.1:5353", "127.0.0.1:5353"),
     ("::1", "[::1]:53"), ("[::1]:5353", "[::1]:5353")],
)  # fmt: skip
def test_parse_nameserver(text: str, expected: str) -> None:
    assert str(parse_nameserver(text)) == expected


@pytest.mark.parametrize("text", ["dns.google", "1.2.3.4:0", "1.2.3.4:x", "[::1", "[::1]x"])
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


def test_query_health_windows() -> None:
    now = [0.0]
    health = QueryHealth(clock=lambda: now[0])
    for _ in range(19):
        health.record(failed=True)
    assert health.failure_share() is None, "too few queries to judge"
    health.record(failed=False)
    assert health.failure_share() == 0.95
    now[0] = 31.0  # a new window: the last one still counts
    for _ in range(20):
        health.record(failed=False)
    assert health.failure_share() == 19 / 40
    now[0] = 100.0  # both windows stale
    assert health.failure_share() is None


async def test_not_ready_when_recent_queries_mostly_fail(unbound: Unbound) -> None:
    """The resolver answers its probe, but nothing real resolves: a broken upstream."""
    layer = _layer(unbound.nameserver, timeout=0.2)
    assert await layer.unready_reason() is None
    deadline = _deadline()
    await asyncio.gather(*(layer.mx(f"d{i}.{world.SERVFAIL_DOMAIN}", deadline) for i in range(25)))
    reason = await layer.unready_reason()
    assert reason is not None and "of recent DNS queries failed" in reason


def test_any_parse_surprise_is_a_malformed_tempfail_not_a_crash() -> None:
    """Regression: a KeyError while parsing escaped classify() and killed the read callback."""
    import dns.message

    query = dns.message.make_query("example.net.", "TXT")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("example.net.", 60, "IN", "TXT", '"x"'))
    data = response.to_wire()
    question = data[12 : 12 + len(wire.encode_name("example.net")) + 4]
    outcome = wire.classify(data, query.id, question, 16, 300)  # TXT: no parser for it
    assert isinstance(outcome, TempFail) and outcome.kind is FailureKind.MALFORMED


def _classify_answer(qname: str, rdtype: str, records: list[tuple[str, str, str]]) -> object:
    """wire.classify() of a NOERROR response to ``qname``/``rdtype`` holding ``records``."""
    import dns.message

    query = dns.message.make_query(qname, rdtype)
    response = dns.message.make_response(query)
    for owner, kind, value in records:
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", kind, value))
    data = response.to_wire()
    question = data[12 : 12 + len(wire.encode_name(qname)) + 4]
    return wire.classify(data, query.id, question, dns.rdatatype.from_text(rdtype), 300)


@pytest.mark.parametrize(
    "records",
    [
        [("a.example.", "CNAME", "a.example.")],
        [("a.example.", "CNAME", "b.example."), ("b.example.", "CNAME", "A.example.")],
    ],
)
def test_a_cname_loop_is_a_failure_not_nodata(records: list[tuple[str, str, str]]) -> None:
    """Regression: a chain back to a name it passed counted as NODATA, cached and scored."""
    outcome = _classify_answer("a.example.", "A", records)
    assert isinstance(outcome, TempFail) and outcome.kind is FailureKind.MALFORMED
    assert "CNAME loop" in outcome.detail


def test_a_cname_chain_to_data_is_an_answer() -> None:
    records = [("a.example.", "CNAME", "b.example."), ("b.example.", "A", "192.0.2.7")]
    outcome = _classify_answer("a.example.", "A", records)
    assert outcome == Answer((ipaddress.IPv4Address("192.0.2.7"),), 60)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(rb"[a-zA-Z0-9_*-]{1,12}", fullmatch=True),
            st.binary(min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_answer_names_read_as_dnspython_presents_them(labels: list[bytes]) -> None:
    # name_text has a fast path for plain labels and an escaping path for the rest
    # (a PTR may carry any bytes): both must give dnspython's presentation form.
    expected = dns.name.Name([*labels, b""]).to_text(omit_final_dot=True).lower()
    assert wire.name_text(labels) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=4))
def test_only_the_root_dot_is_taken_off_a_name(labels: list[bytes]) -> None:
    # Labels may end in "." or "\\" (escaped in the text form): only an unescaped
    # final dot is the root's.
    text = wire.name_text(labels)
    assert wire.relative_name(text + ".") == text
    assert wire.relative_name(text) == text
    labels_back = dns.name.from_text(wire.relative_name(text + ".")).labels[:-1]
    assert labels_back == tuple(label.lower() for label in labels)


@pytest.mark.parametrize("first", ["silent", "broadcast"])
async def test_a_socket_that_cannot_be_opened_fails_queries_fast(first: str) -> None:
    # Regression: _open() failing half-way (here connect() to the broadcast address:
    # EACCES; in real life an IPv6 resolver on a host without IPv6) left the transport
    # with sockets for some servers only: the retry timer raised IndexError, the query
    # never finished and every later lookup of the name waited on it for good.
    silent = FaultyDns("silent").start()
    try:
        servers = [silent.nameserver, "255.255.255.255"]
        if first == "broadcast":
            servers.reverse()
        layer = DnsLayer(
            [parse_nameserver(s) for s in servers], 0.3, TtlCache(100, 0, 3600, clock=lambda: 0)
        )
        for attempt in range(3):  # each query tries to open the sockets again
            outcome = await asyncio.wait_for(
                layer.lookup("host.example", dns.rdatatype.A, _deadline(5.0)), 2.0
            )
            assert isinstance(outcome, TempFail), attempt
            assert outcome.kind is FailureKind.NETWORK
    finally:
        silent.stop()
