"""/metrics: every family named in issue 6, with values that follow the traffic."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PosixPath
from typing import Any, Self

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scorer import __version__, workermetrics
from scorer.allowlist import COVERS, KINDS, Allowlist, covered_families
from scorer.app import SERVICE_KEY, create_app
from scorer.config import Config, DnsConfig
from scorer.loopmetrics import Series
from scorer.metrics import DNS_BUCKETS, LATENCY_BUCKETS, MOVED_MEMO_ENTRIES, Metrics
from scorer.protocol import CheckReply, CheckRequest, SymbolResult, parse_request
from scorer.symbols import SYMBOLS, Family
from scorer.workermetrics import (
    DEAD,
    PREFIX,
    STALE_SECONDS,
    WorkerMetrics,
    make_directory,
    remove_directory,
    remove_stale_directories,
    retire,
    snapshot_name,
)
from tests import world


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_follow_traffic(client: Any) -> None:
    await client.post("/v1/check", json={"ip": world.MISSING_PTR_IP, "helo": "localhost"})
    await client.post("/v1/check", json={"ip": world.PTR_SERVFAIL_IP, "mail_from": ""})
    await client.post("/v1/check", json={"ip": "10.0.0.1"})
    await client.post("/v1/check", json={"ip": world.MISSING_PTR_IP})  # cached now
    await client.post("/v1/check", data=b"nope", headers={"Content-Type": "text/plain"})
    response = await client.get("/metrics")
    assert response.status == 200
    samples = _samples(await response.text())

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("rdns_scorer_requests_total", endpoint="/v1/check", status="200") == 4
    assert value("rdns_scorer_requests_total", endpoint="/v1/check", status="415") == 1
    assert value("rdns_scorer_request_duration_seconds_count") == 4
    assert value("rdns_scorer_symbols_total", symbol="RL_PTR_MISSING") == 2
    assert value("rdns_scorer_symbols_total", symbol="RL_HELO_LOCALHOST") == 1
    assert value("rdns_scorer_score_count") == 4
    assert value("rdns_scorer_check_outcomes_total", family="ptr", outcome="fail") == 2
    assert value("rdns_scorer_check_outcomes_total", family="ptr", outcome="tempfail") == 1
    assert value("rdns_scorer_check_outcomes_total", family="ptr", outcome="skipped") == 1
    assert value("rdns_scorer_check_outcomes_total", family="helo", outcome="fail") == 1
    assert value("rdns_scorer_check_outcomes_total", family="mailfrom", outcome="skipped") == 4
    assert value("rdns_scorer_dns_queries_total", rdtype="PTR", result="nxdomain") == 1
    assert value("rdns_scorer_dns_queries_total", rdtype="PTR", result="servfail") == 1
    assert value("rdns_scorer_dns_query_duration_seconds_count", rdtype="PTR") == 2
    assert value("rdns_scorer_dns_cache_hits_total") >= 1
    assert value("rdns_scorer_dns_cache_misses_total") >= 2
    assert value("rdns_scorer_dns_cache_entries") >= 1
    assert value("rdns_scorer_skipped_local_clients_total") == 1
    assert ("rdns_scorer_requests_in_flight", ()) in samples
    assert value("rdns_scorer_config_reloads_total", result="failure") == 0
    assert any(name == "rdns_scorer_build_info" for name, _ in samples)


async def test_the_reply_cache_size_is_the_serving_pipelines(
    aiohttp_client: Any, unbound_config: Config
) -> None:
    # Regression (soak review): the reply cache, bounded by reply_cache_max_entries, had
    # no series: an admin could not see it fill, nor tune it.
    app = create_app(unbound_config, lambda: unbound_config)
    client = await aiohttp_client(app)

    async def entries() -> float:
        samples = _samples(await (await client.get("/metrics")).text())
        return samples["rdns_scorer_reply_cache_entries", ()]

    assert await entries() == 0
    for ip in (world.CONFIRMED_IP, world.CONFIRMED_IP, world.MISSING_PTR_IP):
        assert (await client.post("/v1/check", json={"ip": ip})).status == 200
    assert await entries() == 2
    # A reload builds a new pipeline with an empty reply cache (its DNS layer kept).
    await app[SERVICE_KEY].reload("SIGHUP")
    assert await entries() == 0


async def test_the_series_error_shares_divide_exist_on_a_healthy_server(client: Any) -> None:
    # Regression: "DNS tempfail share", "Error share" and their alerts showed "No data"
    # on a healthy server, as no failure series existed before the first failure.
    assert (await client.post("/v1/check", json={"ip": world.CONFIRMED_IP})).status == 200
    samples = _samples(await (await client.get("/metrics")).text())
    for rdtype in ("PTR", "A", "AAAA", "MX", "SOA"):
        for result in ("timeout", "servfail", "other"):
            labels = (("rdtype", rdtype), ("result", result))
            assert samples[("rdns_scorer_dns_queries_total", labels)] == 0
    for status in ("400", "401", "408", "413", "415", "499", "500", "503"):
        labels = (("endpoint", "/v1/check"), ("status", status))
        assert samples[("rdns_scorer_requests_total", labels)] == 0
    assert samples[("rdns_scorer_requests_total", (("endpoint", "/v1/check"), ("status", "200")))]


async def test_every_dns_latency_series_exists_before_its_first_query(client: Any) -> None:
    # Regression (review): a type's latency series appeared with its first query, so a
    # fresh instance's latency panel showed "No data" (and MX until a sender was checked).
    samples = _samples(await (await client.get("/metrics")).text())
    for rdtype in ("PTR", "A", "AAAA", "MX"):
        labels = (("rdtype", rdtype),)
        assert samples[("rdns_scorer_dns_query_duration_seconds_count", labels)] == 0, rdtype


async def test_a_wrong_path_or_method_is_a_counted_json_error(client: Any) -> None:
    # Regression (review): plain-text 404/405 that no metric counted, so a plugin
    # posting to a wrong URL left the dashboard showing nothing at all.
    response = await client.post("/check", json={"ip": world.CONFIRMED_IP})
    assert response.status == 404
    assert (await response.json())["field"] == "path"
    response = await client.get("/v1/check")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert await response.json() == {"error": "/v1/check takes POST", "field": "method"}
    samples = _samples(await (await client.get("/metrics")).text())
    assert samples[("rdns_scorer_requests_total", (("endpoint", "other"), ("status", "404")))] == 1
    assert samples[("rdns_scorer_requests_total", (("endpoint", "other"), ("status", "405")))] == 1


def test_outcome_counts_per_check_even_when_replies_share_their_symbols() -> None:
    # observe_check remembers which series a reply moves, keyed by its symbols tuple;
    # the same tuple with and without a HELO must still count different outcomes.
    metrics = Metrics()
    symbols = (SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR",)),)
    with_helo = parse_request({"ip": "192.0.2.1", "helo": "mx.example.net"}).request
    without = parse_request({"ip": "192.0.2.1"}).request
    for request in (with_helo, with_helo, without):
        metrics.observe_check(request, CheckReply(symbols, 5.0), 0.0001)
    samples = _samples(generate_latest(metrics.registry).decode())

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("rdns_scorer_symbols_total", symbol="RL_PTR_MISSING") == 3
    assert value("rdns_scorer_check_outcomes_total", family="ptr", outcome="fail") == 3
    assert value("rdns_scorer_check_outcomes_total", family="helo", outcome="pass") == 2
    assert value("rdns_scorer_check_outcomes_total", family="helo", outcome="skipped") == 1


def _outcomes(metrics: Metrics) -> dict[tuple[str, str], float]:
    samples = _samples(generate_latest(metrics.registry).decode())
    return {
        (labels["family"], labels["outcome"]): count
        for (name, pairs), count in samples.items()
        if name == "rdns_scorer_check_outcomes_total" and count
        for labels in [dict(pairs)]
    }


def test_allowlisted_families_count_as_skipped_not_passed() -> None:
    # Regression: an allowlisted client ("no lookups, no checks") counted as a pass in
    # every family, inflating the performed checks the tempfail share divides by.
    metrics = Metrics()
    request = parse_request(
        {"ip": "192.0.2.1", "helo": "mx.example.net", "mail_from": "a@partner.net"}
    ).request
    by_ip = SymbolResult("RL_ALLOWLISTED", 0.0, ("ip 192.0.2.0/24",))
    metrics.observe_check(request, CheckReply((by_ip,), 0.0), 0.001)
    assert _outcomes(metrics) == {
        ("ptr", "skipped"): 1,
        ("helo", "skipped"): 1,
        ("mailfrom", "skipped"): 1,
    }
    metrics = Metrics()
    missing = SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR",))
    by_from = SymbolResult("RL_ALLOWLISTED_FROM", 0.0, ("from partner.net",))
    metrics.observe_check(request, CheckReply((missing, by_from), 5.0), 0.001)
    assert _outcomes(metrics) == {
        ("ptr", "fail"): 1,
        ("helo", "pass"): 1,
        ("mailfrom", "skipped"): 1,
    }


# What each kind of allowlist entry exempts, as docs/monitoring.md and the allowlist
# module's docstring state it: written out here, independent of allowlist.COVERS.
_DOCUMENTED_COVERS = {
    "ip": {Family.PTR, Family.HELO, Family.MAILFROM},
    "ptr": {Family.PTR, Family.HELO},
    "helo": {Family.HELO},
    "from": {Family.MAILFROM},
}


def test_the_documented_allowlist_coverage_is_the_one_tested() -> None:
    # The table above is the docs' sentence, so a change to one is a change to both.
    words = {"PTR": {Family.PTR}, "HELO": {Family.HELO}, "MAIL FROM": {Family.MAILFROM}}
    words["all three"] = set().union(*words.values())
    text = " ".join((Path(__file__).parents[1] / "docs" / "monitoring.md").read_text().split())
    found = re.search(r"the families its entry covers \((.*?)\)", text)
    assert found is not None
    documented: dict[str, set[Family]] = {}
    for item in found.group(1).split(", "):
        kind, _, covered = item.partition(": ")
        documented[kind.strip("`")] = set().union(*(words[w] for w in covered.split(" and ")))
    assert documented == _DOCUMENTED_COVERS


def test_allowlist_matches_name_the_families_they_cover() -> None:
    allowlist = Allowlist()
    for kind, value in (("ip", "192.0.2.0/24"), ("ptr", "partner.net"), ("helo", "mx.partner.net")):
        allowlist.add(kind, value, "test")
    allowlist.add("from", "partner.net", "test")
    matches = {
        "ip": allowlist.match_ip(ipaddress.ip_address("192.0.2.1")),
        "ptr": allowlist.match_ptr(["mx.partner.net"]),
        "helo": allowlist.match_helo("mx.partner.net", ["mx.partner.net"]),
        "from": allowlist.match_from("a@partner.net"),
    }
    for kind, match in matches.items():
        assert match is not None
        assert set(covered_families(match)) == _DOCUMENTED_COVERS[kind], match
    # Every kind is there (a kind added to COVERS needs a line in the docs and above).
    assert set(COVERS) == set(_DOCUMENTED_COVERS) == set(KINDS)
    assert covered_families("shadow: would score -2") == ()  # RL_ALLOWLISTED's, shadowed


def test_the_null_sender_in_any_spelling_is_not_a_checked_sender() -> None:
    # Regression: a literal "<>" counted as a mailfrom pass; "" as skipped. So did qmail's
    # spelling, "#@[]" (review), which the checks already took for the null sender.
    metrics = Metrics()
    spellings = ("", "<>", " <> ", "#@[]", "<#@[]>")
    for mail_from in spellings:
        request = parse_request({"ip": "192.0.2.1", "mail_from": mail_from}).request
        assert request.mail_from == ""
        metrics.observe_check(request, CheckReply((), 0.0), 0.001)
    assert _outcomes(metrics)[("mailfrom", "skipped")] == len(spellings)


def test_every_service_symbol_series_exists_and_no_plugin_one() -> None:
    # Service symbols start at 0 so dashboards show 0, not "no data". The plugins' own
    # RL_SCORER_* never come from the service: a series stuck at 0 read as "no
    # fail-open events" (regression).
    samples = _samples(generate_latest(Metrics().registry).decode())
    exported = {
        dict(labels)["symbol"] for name, labels in samples if name == "rdns_scorer_symbols_total"
    }
    assert exported == {s.name for s in SYMBOLS.values() if s.family is not Family.PLUGIN}


def test_workers_metrics_add_up_and_a_dead_workers_gauges_drop_out(tmp_path: Path) -> None:
    first, second, dead = Metrics(), Metrics(), Metrics()
    for index, metrics in enumerate((first, second, dead), 1):
        for _ in range(index):
            metrics.request_series("/v1/check")[200].inc()
            metrics.latency.observe(0.002)
        metrics.in_flight.set(index)
    second.record_reload(success=False)
    WorkerMetrics(tmp_path, "dead").snapshot(dead.registry)
    retire(tmp_path, "dead")
    WorkerMetrics(tmp_path, "second").snapshot(second.registry)
    merged = _samples(WorkerMetrics(tmp_path, "first").render(first.registry).decode())
    check = (("endpoint", "/v1/check"), ("status", "200"))
    assert merged["rdns_scorer_requests_total", check] == 1 + 2 + 3  # the dead one's too
    assert merged["rdns_scorer_request_duration_seconds_count", ()] == 6
    assert merged["rdns_scorer_request_duration_seconds_bucket", (("le", "0.0025"),)] == 6
    assert merged["rdns_scorer_requests_in_flight", ()] == 1 + 2  # live workers only
    assert merged["rdns_scorer_config_last_reload_successful", ()] == 0  # the lowest
    # Process families: memory and CPU add up over the live workers (here one process
    # each time, so twice its own); the oldest start and the file limit are not sums.
    own = _samples(generate_latest(first.registry).decode())
    assert (
        merged["process_resident_memory_bytes", ()] > 1.5 * own["process_resident_memory_bytes", ()]
    )
    assert merged["process_start_time_seconds", ()] == own["process_start_time_seconds", ()]
    assert merged["process_max_fds", ()] == own["process_max_fds", ()]
    assert merged["rdns_scorer_config_reloads_total", (("result", "failure"),)] == 1
    build = [key for key in merged if key[0] == "rdns_scorer_build_info"]
    assert len(build) == 1 and merged[build[0]] == 1.0  # the same on every worker: once
    # The merged exposition has the single worker's families, no more, no fewer.
    alone = {name for name, _labels in _samples(generate_latest(first.registry).decode())}
    assert {name for name, _labels in merged} == alone


def test_a_nameserver_one_worker_finds_silent_is_silent_once(tmp_path: Path) -> None:
    from scorer.config import config_from_mapping
    from scorer.pipeline import build_dns_layer

    servers = ["127.0.0.1:5300", "127.0.0.1:5301"]
    config = config_from_mapping({"dns": {"nameservers": servers}})
    first, second, third = Metrics(), Metrics(), Metrics()
    for metrics, silent in ((first, set()), (second, {0}), (third, {0})):
        layer = build_dns_layer(config)
        layer._transport._said_silent |= silent
        metrics.watch_caches(layer)
    WorkerMetrics(tmp_path, "second").snapshot(second.registry)
    WorkerMetrics(tmp_path, "third").snapshot(third.registry)
    merged = _samples(WorkerMetrics(tmp_path, "first").render(first.registry).decode())
    name = "rdns_scorer_dns_nameserver_silent"
    # The highest, as the alert reads it: not a count of the workers that found it so.
    assert merged[name, (("nameserver", servers[0]),)] == 1
    assert merged[name, (("nameserver", servers[1]),)] == 0


def test_a_worker_that_died_before_its_first_snapshot_is_no_error(tmp_path: Path) -> None:
    retire(tmp_path, "never-wrote")
    assert list(tmp_path.iterdir()) == []


def _checks_in(rendered: bytes) -> float:
    check = (("endpoint", "/v1/check"), ("status", "200"))
    return _samples(rendered.decode())["rdns_scorer_requests_total", check]


def test_dead_workers_count_once_whatever_a_scrape_meets(tmp_path: Path) -> None:
    """Regression (review): dead snapshots were renamed per pid, so a reused pid wiped an
    earlier one's counts, and every scrape parsed every dead worker's file again."""
    scraper = Metrics()
    for index in range(3):  # three workers die, one after the other, with 1, 2, 3 checks
        metrics = Metrics()
        for _ in range(index + 1):
            metrics.request_series("/v1/check")[200].inc()
        WorkerMetrics(tmp_path, f"w{index}").snapshot(metrics.registry)
        retire(tmp_path, f"w{index}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dead.json"]  # folded into one
    assert _checks_in(WorkerMetrics(tmp_path, "scraper").render(scraper.registry)) == 6
    # The moment inside retire() between writing dead.json and removing the snapshot
    # it absorbed: a scrape then finds both, and counts the worker once.
    late = Metrics()
    late.request_series("/v1/check")[200].inc()
    WorkerMetrics(tmp_path, "late").snapshot(late.registry)
    kept = (tmp_path / "worker-late.json").read_text()
    retire(tmp_path, "late")
    (tmp_path / "worker-late.json").write_text(kept)
    assert _checks_in(WorkerMetrics(tmp_path, "scraper").render(scraper.registry)) == 7


def _worker_snapshot(directory: Path, name: str, checks: int = 1) -> None:
    """The snapshot of a worker that counted ``checks`` checks."""
    metrics = Metrics()
    for _ in range(checks):
        metrics.request_series("/v1/check")[200].inc()
    WorkerMetrics(directory, name).snapshot(metrics.registry)


def _absorbed(directory: Path) -> list[str]:
    names: list[str] = json.loads((directory / DEAD).read_text())["absorbed"]
    return names


def test_dead_json_forgets_the_workers_whose_snapshots_are_gone(tmp_path: Path) -> None:
    # Regression: dead.json named every worker that ever died, for as long as the
    # service ran: with workers restarting it grew without end (and every scrape read
    # it). A name is needed only while its snapshot can be found beside dead.json.
    for index in range(50):
        _worker_snapshot(tmp_path, f"w{index}")
        retire(tmp_path, f"w{index}")
        assert _absorbed(tmp_path) == [f"w{index}"]
    scraper = WorkerMetrics(tmp_path, "scraper")
    assert _checks_in(scraper.render(Metrics().registry)) == 50
    # One still there (retire() wrote dead.json and has not removed it yet, as in the
    # test above) is remembered through the next worker's retirement: counted once.
    _worker_snapshot(tmp_path, "late")
    kept = (tmp_path / "worker-late.json").read_text()
    retire(tmp_path, "late")
    (tmp_path / "worker-late.json").write_text(kept)
    _worker_snapshot(tmp_path, "next")
    retire(tmp_path, "next")
    assert _absorbed(tmp_path) == ["late", "next"]
    assert _checks_in(scraper.render(Metrics().registry)) == 52


def test_a_snapshot_absorbed_and_forgotten_while_a_scrape_reads_counts_once(
    tmp_path: Path,
) -> None:
    # Between a scrape's reading the snapshots and its reading dead.json, worker x is
    # folded into dead.json and its snapshot removed, then y's retirement rewrites
    # dead.json without x's name: the scrape must not count x's checks twice (as its
    # snapshot and in dead.json), nor miss y's.
    _worker_snapshot(tmp_path, "x", checks=1)
    _worker_snapshot(tmp_path, "y", checks=2)
    retiring = ["x", "y"]

    class RetiredMeanwhile(PosixPath):
        def __truediv__(self, key: str | os.PathLike[str]) -> Self:
            while key == DEAD and retiring:
                retire(tmp_path, retiring.pop(0))
            return super().__truediv__(key)

    scraper = WorkerMetrics(RetiredMeanwhile(tmp_path), "scraper")
    assert _checks_in(scraper.render(Metrics().registry)) == 3
    assert not retiring and _absorbed(tmp_path) == ["y"]


def test_a_snapshot_that_cannot_be_written_costs_no_scrape(tmp_path: Path) -> None:
    metrics, other = Metrics(), Metrics()
    metrics.request_series("/v1/check")[200].inc()
    shared = WorkerMetrics(tmp_path, "w")
    assert _checks_in(shared.render(metrics.registry)) == 1
    (tmp_path / "worker-w.tmp").mkdir()  # from now on its writes fail, as on a full /dev/shm
    metrics.request_series("/v1/check")[200].inc()
    # Regression (review): the answering worker showed its live count (2) while the
    # others read its file (1): totals went back and forth between scrapes, each a
    # counter reset to Prometheus. Every scrape now shows what the file has.
    assert _checks_in(shared.render(metrics.registry)) == 1
    assert _checks_in(WorkerMetrics(tmp_path, "other").render(other.registry)) == 1


def test_a_dead_worker_that_cannot_be_folded_still_counts(tmp_path: Path) -> None:
    # Regression (review): retire() raised when dead.json could not be written (a full
    # /dev/shm), and the supervisor, which calls it, exited with every worker.
    dead, scraper = Metrics(), Metrics()
    dead.request_series("/v1/check")[200].inc()
    WorkerMetrics(tmp_path, "dead").snapshot(dead.registry)
    (tmp_path / "dead.tmp").mkdir()
    retire(tmp_path, "dead")
    assert (tmp_path / "worker-dead.json").exists()
    assert _checks_in(WorkerMetrics(tmp_path, "scraper").render(scraper.registry)) == 1


def test_shadowed_scores_are_counters_that_only_grow() -> None:
    """Regression: one running-sum gauge went down for negative weights and back to 0 on
    a restart, and the dashboard's delta() then showed score taken away."""
    metrics = Metrics()
    request = parse_request({"ip": world.MISSING_PTR_IP}).request
    shadowed = (("RL_PTR_MISSING", 5.0), ("RL_ALLOWLISTED", -2.0))
    reply = CheckReply((), 0.0, shadowed)
    metrics.observe_check(request, reply, 0.001)
    metrics.observe_check(request, reply, 0.001)
    samples = _samples(generate_latest(metrics.registry).decode())
    raised = samples["rdns_scorer_shadow_score_raised_total", (("symbol", "RL_PTR_MISSING"),)]
    lowered = samples["rdns_scorer_shadow_score_lowered_total", (("symbol", "RL_ALLOWLISTED"),)]
    assert (raised, lowered) == (10.0, 4.0)
    kinds = {
        f.name: f.type
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    assert (
        kinds["rdns_scorer_shadow_score_raised"]
        == kinds["rdns_scorer_shadow_score_lowered"]
        == "counter"
    )


def test_dns_cache_counters_carry_over_a_reload_that_replaces_the_layer() -> None:
    """Regression (review): a reload with new [dns] settings builds a new layer whose
    counters start at 0, and the exported hits/misses went backwards (a reset)."""
    from scorer.config import config_from_mapping
    from scorer.pipeline import build_dns_layer

    metrics = Metrics()
    first = build_dns_layer(config_from_mapping({"dns": {"nameservers": ["127.0.0.1"]}}))
    first.cache.hits, first.cache.misses = 7, 3
    metrics.watch_caches(first)
    second = build_dns_layer(config_from_mapping({"dns": {"nameservers": ["127.0.0.2"]}}))
    second.cache.hits = 1
    metrics.watch_caches(second)
    metrics.watch_caches(second)  # the layer it reports already: nothing to carry over
    samples = _samples(generate_latest(metrics.registry).decode())
    assert samples["rdns_scorer_dns_cache_hits_total", ()] == 8
    assert samples["rdns_scorer_dns_cache_misses_total", ()] == 3


def test_a_silent_nameserver_of_several_is_a_gauge_per_nameserver() -> None:
    # A dead first resolver of two is logged once and mail flows through the second: only
    # this gauge (and RdnsScorerNameserverSilent) shows how long it lasts.
    from scorer.config import config_from_mapping
    from scorer.pipeline import build_dns_layer

    metrics = Metrics()
    servers = ["127.0.0.1:5300", "[::1]:5301"]
    layer = build_dns_layer(config_from_mapping({"dns": {"nameservers": servers}}))
    metrics.watch_caches(layer)

    def silent() -> dict[str, float]:
        samples = _samples(generate_latest(metrics.registry).decode())
        return {
            s: samples["rdns_scorer_dns_nameserver_silent", (("nameserver", s),)] for s in servers
        }

    assert silent() == {servers[0]: 0, servers[1]: 0}
    layer._transport._said_silent.add(1)  # as UdpTransport._demote_silent does
    assert silent() == {servers[0]: 0, servers[1]: 1}


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(gone.stdout)


def _snapshot_directory(parent: Path, owner: int | None, seconds_ago: float, now: float) -> Path:
    """A snapshot directory of the service ``owner`` (None: of a version whose
    directories named no pid) with one snapshot, both last changed ``seconds_ago``."""
    prefix = PREFIX if owner is None else f"{PREFIX}{owner}-"
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (directory / "worker-1-ab.json").write_text("[]")
    for path in (directory / "worker-1-ab.json", directory):
        os.utime(path, (now - seconds_ago, now - seconds_ago))
    return directory


def test_stale_snapshot_directories_of_killed_services_are_removed(tmp_path: Path) -> None:
    # Regression (review): a service killed with SIGKILL outside systemd left its
    # directory in /dev/shm for good (17 of them after a day of tests).
    dead_pid = _dead_pid()
    now = time.time() + 3600  # judged at the moment it is given, not the clock's
    old, fresh = STALE_SECONDS + 5, 5
    made: dict[str, Path] = {}
    for name in ("dead-old", "dead-fresh", "alive-old", "no-pid-old", "no-pid-fresh"):
        owner = os.getpid() if name.startswith("alive") else dead_pid
        seconds_ago = old if name.endswith("old") else fresh
        made[name] = _snapshot_directory(
            tmp_path, None if "no-pid" in name else owner, seconds_ago, now
        )
    # A snapshot rewritten in place lately, in a directory that did not change: fresh.
    made["dead-old-with-fresh-file"] = _snapshot_directory(tmp_path, dead_pid, old, now)
    os.utime(made["dead-old-with-fresh-file"] / "worker-1-ab.json", (now - fresh, now - fresh))
    remove_stale_directories(tmp_path, now)
    kept = {name for name, directory in made.items() if directory.exists()}
    assert kept == {"dead-fresh", "alive-old", "no-pid-fresh", "dead-old-with-fresh-file"}


def test_stale_directories_it_may_not_judge_or_remove_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An owner that is another user's process (kill() is not permitted) is alive; a
    # directory that cannot be removed is skipped, and the next one still goes.
    dead_pid, now = _dead_pid(), time.time()
    directory = _snapshot_directory(tmp_path, dead_pid, STALE_SECONDS + 5, now)

    def not_permitted(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    with monkeypatch.context() as patched:
        patched.setattr(os, "kill", not_permitted)
        remove_stale_directories(tmp_path, now)
    assert directory.exists()
    other = _snapshot_directory(tmp_path, dead_pid, STALE_SECONDS + 5, now)
    remove = workermetrics.remove_directory

    def refused_for_the_first(path: Path) -> None:
        if path == directory:
            raise PermissionError(13, "Permission denied", str(path))
        remove(path)

    monkeypatch.setattr(workermetrics, "remove_directory", refused_for_the_first)
    remove_stale_directories(tmp_path, now)
    assert directory.exists() and not other.exists()


def test_a_start_removes_only_its_users_own_stale_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (review): /dev/shm is everyone's. A name there with a pid too large
    for kill() ("...-99999999999999999999-x") or in digits int() refuses ("²") took
    the start of ``serve --workers`` down with a traceback; and a symlink another
    user named like a stale directory had the service delete every file in the
    directory it points to."""
    parent, now = tmp_path / "shm", time.time()
    parent.mkdir()
    for owner in ("99999999999999999999", "\u00b2", "\u0664\u0664"):
        (parent / f"{PREFIX}{owner}-x").mkdir()
        os.utime(parent / f"{PREFIX}{owner}-x", (now - STALE_SECONDS - 5,) * 2)
    remove_stale_directories(parent, now)  # no pid of ours: judged by their age alone
    assert list(parent.iterdir()) == []
    elsewhere = _snapshot_directory(tmp_path, None, STALE_SECONDS + 5, now)
    (parent / f"{PREFIX}{_dead_pid()}-link").symlink_to(elsewhere)
    remove_stale_directories(parent, now)
    assert (elsewhere / "worker-1-ab.json").exists()
    # Another user's directory is theirs to clean, even for root.
    theirs = _snapshot_directory(parent, _dead_pid(), STALE_SECONDS + 5, now)
    monkeypatch.setattr(os, "geteuid", lambda: theirs.stat().st_uid + 1)
    remove_stale_directories(parent, now)
    assert theirs.exists()


def test_snapshots_go_to_shared_memory_else_to_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shm"
    shared.mkdir()
    stale = _snapshot_directory(shared, _dead_pid(), STALE_SECONDS + 5, time.time())
    monkeypatch.setattr(workermetrics, "SHARED_MEMORY", shared)
    directory = make_directory()
    assert directory is not None and directory.parent == shared
    assert not stale.exists()  # a start cleans up what a killed service left there
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setattr(workermetrics, "SHARED_MEMORY", not_a_directory)
    directory = make_directory()
    assert directory is not None
    try:
        assert directory.parent == Path(tempfile.gettempdir())
    finally:
        remove_directory(directory)


def test_without_a_place_for_snapshots_there_is_no_directory_and_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No /dev/shm (some containers) and a temporary directory that is gone: the
    # supervisor still starts its workers (each /metrics shows its own), it does not fail.
    monkeypatch.setattr(workermetrics, "SHARED_MEMORY", tmp_path / "no-shm")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-tmp"))
    assert make_directory() is None


def test_snapshot_names_are_never_reused_within_a_process() -> None:
    names = {snapshot_name() for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith(f"{os.getpid()}-") for name in names)


def test_the_snapshot_directory_is_named_after_its_service(tmp_path: Path) -> None:
    directory = make_directory()
    assert directory is not None
    try:
        assert directory.name.startswith(f"{PREFIX}{os.getpid()}-")
    finally:
        remove_directory(directory)


def test_every_shadow_series_exists_from_the_start() -> None:
    # Regression (review): rdns_scorer_shadow_symbols_total{symbol} appeared with the
    # first shadowed hit, so the dashboard's rate() missed it (the raised and lowered
    # series were created at 0).
    samples = _samples(generate_latest(Metrics().registry).decode())
    for name, symbol in SYMBOLS.items():
        if symbol.family is not Family.PLUGIN:
            for family in ("symbols", "score_raised", "score_lowered"):
                assert samples[f"rdns_scorer_shadow_{family}_total", (("symbol", name),)] == 0


def _scraped(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return _samples(generate_latest(metrics.registry).decode())


def test_a_fresh_service_exports_every_outcome_at_zero_and_its_config_as_good() -> None:
    # Every (family, outcome) pair from the start, so the pass share and the tempfail
    # share have their series before the first check; no reload tried: "successful".
    samples = _scraped(Metrics())
    for family in ("ptr", "helo", "mailfrom"):
        for outcome in ("pass", "fail", "tempfail", "skipped"):
            labels = (("family", family), ("outcome", outcome))
            assert samples["rdns_scorer_check_outcomes_total", labels] == 0
    assert samples["rdns_scorer_config_last_reload_successful", ()] == 1
    assert samples["rdns_scorer_dns_repeated_failures_total", ()] == 0
    build = [dict(labels) for name, labels in samples if name == "rdns_scorer_build_info"]
    assert [labels["version"] for labels in build] == [__version__]


def test_dns_queries_count_by_type_and_result_and_repeated_failures_apart() -> None:
    metrics = Metrics()
    metrics.observe_dns("PTR", "timeout", 0.5, repeated=False)
    metrics.observe_dns("PTR", "timeout", 0.5, repeated=True)
    metrics.observe_dns("A", "answer", 0.002, repeated=False)
    samples = _scraped(metrics)
    queries = "rdns_scorer_dns_queries_total"
    assert samples[queries, (("rdtype", "PTR"), ("result", "timeout"))] == 2
    assert samples[queries, (("rdtype", "A"), ("result", "answer"))] == 1
    assert samples[queries, (("rdtype", "PTR"), ("result", "answer"))] == 0
    assert samples["rdns_scorer_dns_repeated_failures_total", ()] == 1  # the second only
    seconds = "rdns_scorer_dns_query_duration_seconds"
    assert samples[f"{seconds}_count", (("rdtype", "PTR"),)] == 2
    assert samples[f"{seconds}_sum", (("rdtype", "PTR"),)] == 1.0
    assert samples[f"{seconds}_bucket", (("le", "0.0025"), ("rdtype", "A"))] == 1


def test_scores_and_shadowed_symbols_are_counted_per_check() -> None:
    metrics = Metrics()
    request = parse_request({"ip": "192.0.2.1"}).request
    symbols = (SymbolResult("RL_PTR_MISSING", 3.5, ("no PTR",)),)
    reply = CheckReply(symbols, 3.5, (("RL_HELO_LOCALHOST", 2.0),))
    metrics.observe_check(request, reply, 0.001)
    metrics.observe_check(request, reply, 0.001)
    metrics.observe_check(request, CheckReply((), -1.0), 0.001)
    samples = _scraped(metrics)
    assert samples["rdns_scorer_score_count", ()] == 3
    assert ("rdns_scorer_score_sum", ()) not in samples  # negative bounds: docs/monitoring.md
    assert samples["rdns_scorer_score_bucket", (("le", "-1.0"),)] == 1
    assert samples["rdns_scorer_score_bucket", (("le", "3.0"),)] == 1
    assert samples["rdns_scorer_score_bucket", (("le", "4.0"),)] == 3
    shadowed = (("symbol", "RL_HELO_LOCALHOST"),)
    assert samples["rdns_scorer_shadow_symbols_total", shadowed] == 2
    assert samples["rdns_scorer_symbols_total", shadowed] == 0  # returned at weight 0 only


def test_outcome_counts_per_check_when_replies_share_their_symbols_without_a_sender() -> None:
    # The mailfrom twin of test_outcome_counts_per_check_even_when_replies_share_their_symbols.
    metrics = Metrics()
    symbols = (SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR",)),)
    with_from = parse_request({"ip": "192.0.2.1", "mail_from": "a@example.net"}).request
    without = parse_request({"ip": "192.0.2.1"}).request
    for request in (with_from, without, without):
        metrics.observe_check(request, CheckReply(symbols, 5.0), 0.0001)
    assert _outcomes(metrics) == {
        ("ptr", "fail"): 3,
        ("helo", "skipped"): 3,
        ("mailfrom", "pass"): 1,
        ("mailfrom", "skipped"): 2,
    }


def test_a_family_that_failed_and_tempfailed_counts_as_failed() -> None:
    # A fail the family found stands, whichever symbol came first: its tempfail only
    # means another of its lookups did not answer.
    fail = SymbolResult("RL_MAILFROM_NXDOMAIN", 2.0, ())
    tempfail = SymbolResult("RL_MAILFROM_TEMPFAIL", 0.0, ())
    request = parse_request({"ip": "192.0.2.1", "mail_from": "a@example.net"}).request
    for symbols in ((fail, tempfail), (tempfail, fail)):
        metrics = Metrics()
        metrics.observe_check(request, CheckReply(symbols, 2.0), 0.001)
        assert _outcomes(metrics) == {
            ("ptr", "pass"): 1,
            ("helo", "skipped"): 1,
            ("mailfrom", "fail"): 1,
        }, symbols


def test_every_entry_an_allowlisted_reply_names_exempts_its_families() -> None:
    metrics = Metrics()
    request = parse_request(
        {"ip": "192.0.2.1", "helo": "mx.partner.net", "mail_from": "a@partner.net"}
    ).request
    allowed = SymbolResult("RL_ALLOWLISTED", 0.0, ("helo mx.partner.net",))
    by_from = SymbolResult("RL_ALLOWLISTED_FROM", 0.0, ("from partner.net",))
    missing = SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR",))
    metrics.observe_check(request, CheckReply((missing, allowed, by_from), 5.0), 0.001)
    assert _outcomes(metrics) == {
        ("ptr", "fail"): 1,
        ("helo", "skipped"): 1,
        ("mailfrom", "skipped"): 1,
    }


def test_the_series_a_reply_moves_are_worked_out_once_and_remembered_within_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cached reply (the same symbols tuple) costs one lookup, not the walk over its
    # symbols; and the memo of distinct replies does not grow without end.
    metrics = Metrics()
    worked_out: list[CheckReply] = []
    moved = metrics._moved

    def counting(request: CheckRequest, reply: CheckReply) -> tuple[Series, ...]:
        worked_out.append(reply)
        return moved(request, reply)

    monkeypatch.setattr(metrics, "_moved", counting)
    request = parse_request({"ip": "192.0.2.1"}).request
    cached = CheckReply((SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR",)),), 5.0)
    for _ in range(3):
        metrics.observe_check(request, cached, 0.001)
    assert worked_out == [cached]
    for index in range(MOVED_MEMO_ENTRIES + 1):
        symbols = (SymbolResult("RL_PTR_MISSING", 5.0, (f"no PTR {index}",)),)
        metrics.observe_check(request, CheckReply(symbols, 5.0), 0.001)
    assert len(metrics._moved_by_reply) <= MOVED_MEMO_ENTRIES
    assert _outcomes(metrics)[("ptr", "fail")] == 3 + MOVED_MEMO_ENTRIES + 1


def test_latency_buckets_have_an_edge_at_every_latency_the_alerts_and_defaults_name() -> None:
    # histogram_quantile interpolates inside a bucket: the latency alert's threshold,
    # the default request deadline and the plugins' 1 s timeout must be edges, or a
    # p99 at one of them reads as anything between its neighbours. The same for a DNS
    # query at the default [dns] timeout.
    alerts = (Path(__file__).parents[1] / "docker" / "prometheus" / "alerts.yml").read_text()
    threshold = re.search(r"alert: RdnsScorerLatencyHigh\n.*?\{le=\"([\d.]+)\"\}", alerts, re.S)
    assert threshold is not None
    defaults = DnsConfig()
    for seconds in (float(threshold.group(1)), defaults.request_deadline, 1.0):
        assert seconds in LATENCY_BUCKETS, seconds
    assert defaults.timeout in DNS_BUCKETS
    # Regression (review): a check cut off at the deadline, and a query timing out, take
    # a little longer than it, and with the next edge at 1 s histogram_quantile read
    # them as ~1 s, the plugin's timeout. An edge just above each keeps them near.
    for seconds, buckets in (
        (defaults.request_deadline, LATENCY_BUCKETS),
        (defaults.timeout, LATENCY_BUCKETS),
        (defaults.timeout, DNS_BUCKETS),
    ):
        above = min(edge for edge in buckets if edge > seconds)
        assert above - seconds <= 0.1, (seconds, above)


def test_a_snapshot_that_cannot_be_written_is_logged_once_and_its_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A full /dev/shm fails every second: one ERROR, not one a second; then one line
    # when it works again.
    metrics, shared = Metrics(), WorkerMetrics(tmp_path, "w")
    blocker = tmp_path / "worker-w.tmp"
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        blocker.mkdir()
        for _ in range(3):
            shared.snapshot(metrics.registry)
        blocker.rmdir()
        for _ in range(3):
            shared.snapshot(metrics.registry)
    messages = [(r.levelname, r.getMessage().partition(":")[0]) for r in caplog.records]
    path = tmp_path / "worker-w.json"
    assert messages == [
        ("ERROR", f"cannot write the metrics snapshot {path}"),
        ("WARNING", f"the metrics snapshot {path} is written again"),
    ]


def test_a_scrape_reads_again_when_a_snapshot_goes_away_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # retire() removes a snapshot it folded: a scrape that listed it and then cannot
    # open it reads the directory again (and gives up only when that keeps happening).
    other = Metrics()
    other.request_series("/v1/check")[200].inc()
    WorkerMetrics(tmp_path, "other").snapshot(other.registry)
    read_once = workermetrics._read_once
    misses = [4]  # the first reads miss a file, as if a worker was retired each time

    def racing(directory: Path, own: Path) -> list[tuple[workermetrics.Snapshot, bool]]:
        if misses[0]:
            misses[0] -= 1
            raise FileNotFoundError(2, "No such file or directory")
        return read_once(directory, own)

    monkeypatch.setattr(workermetrics, "_read_once", racing)
    scraper = WorkerMetrics(tmp_path, "scraper")
    assert _checks_in(scraper.render(Metrics().registry)) == 1
    misses[0] = 5
    with pytest.raises(RuntimeError, match="snapshots kept moving"):
        scraper.render(Metrics().registry)


def test_merged_families_keep_their_help_and_type_and_the_earliest_creation(
    tmp_path: Path,
) -> None:
    first, second = Metrics(), Metrics()
    written = WorkerMetrics(tmp_path, "second").snapshot(second.registry)
    for family in written:  # the second worker started long before the first
        family["samples"] = [
            [name, labels, 1000.0 if name.endswith("_created") else value]
            for name, labels, value in family["samples"]
        ]
    (tmp_path / "worker-second.json").write_text(json.dumps(written))
    rendered = WorkerMetrics(tmp_path, "first").render(first.registry).decode()
    created = _samples(rendered)["rdns_scorer_config_reloads_created", (("result", "success"),)]
    assert created == 1000.0

    def described(text: str) -> dict[str, tuple[str, str]]:
        families = text_string_to_metric_families(text)
        return {family.name: (family.documentation, family.type) for family in families}

    assert described(rendered) == described(generate_latest(first.registry).decode())


REPO = Path(__file__).resolve().parents[1]
# Named in docs/operations.md ("Upgrading") as what an older version exported.
RETIRED_METRICS = {"rdns_scorer_shadow_score"}


async def test_every_metric_exported_is_in_the_monitoring_doc(client: Any) -> None:
    """Every rdns_scorer_* series /metrics serves is named in docs/monitoring.md, in full
    or, in a row naming several, as the suffix after the first one's stem
    (`rdns_scorer_dns_cache_hits_total`, `_misses_total`: two words at least); a
    histogram by its family.
    Regression (review): the gauge rdns_scorer_worker_restarts_created was not."""
    exposition = await (await client.get("/metrics")).text()
    doc = (REPO / "docs" / "monitoring.md").read_text()
    named = set(re.findall(r"`(_?\w+)`", doc))
    missing = set()
    for family in text_string_to_metric_families(exposition):
        if not family.name.startswith("rdns_scorer_"):
            continue
        if family.type == "histogram":
            samples = {family.name}
        else:
            samples = {sample.name for sample in family.samples}
        for sample in samples:
            # Two words at least: a bare `_created` or `_total` in the prose names none.
            suffixes = {sample[i:] for i, c in enumerate(sample) if c == "_"}
            suffixes = {suffix for suffix in suffixes if suffix.count("_") > 1}
            if sample not in named and not suffixes & named:
                missing.add(sample)
    assert not missing, sorted(missing)


async def test_every_metric_the_docs_name_is_exported(client: Any) -> None:
    """A metric named in README.md or docs/ is one /metrics serves (or, in
    RETIRED_METRICS, one it no longer does): dashboards and alerts are written from
    the docs. SpamAssassin's rdns_scorer_* settings and .cf files, and rspamd's .conf
    files, are no metrics."""
    exposition = await (await client.get("/metrics")).text()
    exported = set()
    for family in text_string_to_metric_families(exposition):
        exported |= {family.name, *(sample.name for sample in family.samples)}
    cf = (REPO / "spamassassin" / "rdns_scorer.cf").read_text()
    settings = set(re.findall(r"^#?\s*(rdns_scorer_\w+) ", cf, re.MULTILINE))
    assert {"rdns_scorer_url", "rdns_scorer_token"} <= settings
    named = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        named |= set(re.findall(r"\b(rdns_scorer_\w+)\b(?!\.(?:cf|conf)\b)", doc.read_text()))
    named -= settings
    assert "rdns_scorer_requests_total" in named
    assert not named - exported - RETIRED_METRICS, sorted(named - exported - RETIRED_METRICS)
    assert not RETIRED_METRICS & exported
