"""The monitoring stack (issue 6): every dashboard query and alert rule, run by a real Prometheus.

A real Prometheus (scrape and rule evaluation every second) scrapes five targets of the
"rdns-scorer" job: a scorer resolving through the test unbound, a scorer whose resolver is
dead (the broken-resolver case users hit most), one whose resolver lies, one whose first
of two resolvers is silent, and a port where nothing listens (a scorer that is down). A
short synthetic load makes every signal happen: DNS timeouts and SERVFAILs, local clients,
bad requests, a wrong token, overload 503s, a failed config reload, a shadowed symbol.
Then every PromQL expression in the Grafana dashboard and in alerts.yml must evaluate
without error and return data, and every alert must be pending or firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from scorer.app import Service
from scorer.config import Config, ConfigError, config_from_mapping, load_config, parse_listen
from scorer.dns.layer import Nameserver
from scorer.metrics import SCORE_BUCKETS
from scorer.security import public_bind_refusal
from tests import world
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.ports import free_port
from tests.support.processes import children
from tests.support.prometheus import (
    Prometheus,
    PromQLError,
    iter_panels,
    panel_queries,
    prometheus_available,
    promtool,
    substitute,
    template_values,
)
from tests.support.service import BUG_MARKER, ScorerProcess
from tests.support.unbound import Unbound, Zones
from tests.world import build_zones

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "rdns-scorer.json"
PROMETHEUS_YML = DOCKER / "prometheus" / "prometheus.yml"
ALERTS_YML = DOCKER / "prometheus" / "alerts.yml"
DOCS = REPO / "docs" / "monitoring.md"
UNIT = REPO / "contrib" / "rdns-scorer.service"
JOB = "rdns-scorer"
OTHER_JOB = "node"  # another job Prometheus scrapes: not a scorer
TOKEN = "monitoring-test-token"

# No skips: missing tools must fail loudly (`make test` installs them).
assert prometheus_available(), "prometheus/promtool not installed (`make test` installs them)"

SCORER_TOML = f"""
[server]
token = "{TOKEN}"
max_in_flight = 4
log_requests = false

[policy]
shadow_symbols = ["RL_HELO_NOT_FQDN"]

[dns]
# Longer than request_deadline (0.8 s): a lookup in the dead zone runs into the deadline,
# as a check does behind a resolver slower than it (RdnsScorerLatencyHigh). With the
# default 0.5 s a dead zone's lookup fails first, and the other family is not asked.
timeout = 1.0
"""


def alert_names() -> list[str]:
    return re.findall(r"^\s*-\s*alert:\s*(\w+)", ALERTS_YML.read_text(), re.MULTILINE)


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


# --- the live stack -------------------------------------------------------------------------

# One round of traffic to the healthy scorer. Slow ones (the dead zone) take ~0.8 s.
CHECKS: list[dict[str, str]] = [
    # Local clients (skip_networks), as behind a proxy or NAT: about a third of the checks.
    {"ip": "10.1.2.3", "helo": "mail.example.net"},
    {"ip": "192.168.7.7"},
    {"ip": "172.16.0.9", "mail_from": "someone@example.net"},
    {"ip": "127.0.0.1"},
    {"ip": "100.64.1.1"},
    {"ip": "169.254.1.1"},
    {"ip": "fd00::25"},
    {
        "ip": world.CONFIRMED_IP,
        "helo": world.CONFIRMED_NAME,
        "mail_from": f"news@{world.GOOD_DOMAIN}",
    },
    {"ip": world.GENERIC_IP, "helo": "Mail-Server", "mail_from": f"x@{world.NULL_MX_DOMAIN}"},
    {"ip": world.MISSING_PTR_IP, "helo": "localhost", "mail_from": f"y@{world.NXDOMAIN_DOMAIN}"},
    {"ip": world.UNVERIFIED_IP, "helo": world.HELO_SERVFAIL},
    {"ip": world.PTR_SERVFAIL_IP, "mail_from": f"z@{world.SERVFAIL_DOMAIN}"},
    {
        "ip": world.PTR_TIMEOUT_IP,
        "helo": world.HELO_TIMEOUT,
        "mail_from": f"a@{world.TIMEOUT_DOMAIN}",
    },
    {"ip": world.FORWARD_TEMPFAIL_IP, "helo": world.CONFIRMED_NAME},
]
FRESH_PER_ROUND = 5  # checks with names seen nowhere before: NXDOMAIN, never from the cache
FRESH = itertools.count()
# A zone whose server answers every question 0.9 s late: a HELO there makes a check run
# into request_deadline (0.8 s) in every round (RdnsScorerLatencyHigh). The dead zone does
# not do that reliably: once its queries have timed out for a while, unbound fails them at
# once (regression: the alert then named only the dead resolver's scorer; CI failed so).
SLOW_ZONE = "slow-zone.net"
SLOW_ZONE_DELAY = 0.9  # past request_deadline, and answered within [dns] timeout (1.0 s)
SLOW_PER_ROUND = 2  # the alert wants >= 3 cut-off checks in 5 minutes, over 3 rounds
# To the scorer whose resolver is dead: every lookup fails.
BROKEN_CHECKS: list[dict[str, str]] = [
    {"ip": world.CONFIRMED_IP, "helo": world.CONFIRMED_NAME, "mail_from": "a@good-sender.net"},
    {"ip": world.GENERIC_IP, "helo": "mx.example.org", "mail_from": "b@example.org"},
    {"ip": world.MISSING_PTR_IP, "helo": "mail.example.com", "mail_from": "c@example.com"},
    {"ip": world.CONFIRMED_IP, "helo": BUG_MARKER},  # a 500: RdnsScorerServerErrorsHigh
]
OVERLOAD_BURST = 8  # concurrent slow checks against max_in_flight = 4
ROUNDS = 3


@dataclass
class Stack:
    prometheus: Prometheus
    healthy: ScorerProcess
    broken: ScorerProcess
    down_target: str
    untrusted: ScorerProcess
    failover: ScorerProcess


async def _post(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    async with session.post(url, **kwargs) as response:
        await response.read()
        return response.status


async def drive_load(
    healthy: ScorerProcess, broken: ScorerProcess, rounds: int, reload: bool = False
) -> list[int]:
    """The synthetic load; returns the /v1/check statuses seen, for a sanity check."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Checks stay below each scorer's max_in_flight (4): only the burst to the healthy one
    # is shed. (The broken one's checks wait for DNS timeouts: six at once were shed too,
    # and RdnsScorerOverloaded blamed it as well, depending on timing.)
    gates = {healthy.url: asyncio.Semaphore(3), broken.url: asyncio.Semaphore(3)}
    statuses: list[int] = []

    async with aiohttp.ClientSession(headers=auth) as session:

        async def check(url: str, body: dict[str, str]) -> None:
            async with gates[url]:
                statuses.append(await _post(session, f"{url}/v1/check", json=body))

        async def bad_requests() -> None:
            url = f"{healthy.url}/v1/check"
            for kwargs in (
                {"data": b"nope", "headers": {"Content-Type": "text/plain"}},  # 415
                {"data": b"{not json", "headers": {"Content-Type": "application/json"}},  # 400
                {"json": {"ip": "300.1.1.1"}},  # 400
                # 401: a plugin with the wrong token
                {"json": {"ip": world.CONFIRMED_IP}, "headers": {"Authorization": "Bearer x"}},
            ):
                statuses.append(await _post(session, url, **kwargs))
            for path in ("/healthz", "/readyz"):
                async with session.get(f"{healthy.url}{path}") as response:
                    await response.read()

        async def reloads() -> None:
            # A good reload, then a rejected one: the failure alert fires (the latest
            # reload failed) and the old config keeps serving.
            good = healthy.config_path.read_text()
            assert await _post(session, f"{healthy.url}/v1/reload") == 200
            healthy.config_path.write_text(good + "\n[policy\n")  # invalid TOML
            assert await _post(session, f"{healthy.url}/v1/reload") == 422
            healthy.config_path.write_text(good)

        for number in range(rounds):
            # Cached answers stop costing queries after the first round; fresh names keep
            # the resolver answering, as real traffic does.
            fresh = [
                {"ip": f"203.0.113.{100 + serial}", "mail_from": f"u@n{serial}.net"}
                for serial in (next(FRESH) for _ in range(FRESH_PER_ROUND))
            ]
            fresh += [
                {"ip": world.CONFIRMED_IP, "helo": f"h{serial}.{SLOW_ZONE}"}
                for serial in (next(FRESH) for _ in range(SLOW_PER_ROUND))
            ]
            # A dead resolver fails new questions: a few fresh ones per round too.
            fresh_broken = [
                {
                    "ip": f"198.51.100.{200 + n}",
                    "helo": f"h{n}.example.net",
                    "mail_from": f"u@b{n}.net",
                }
                for n in (next(FRESH) for _ in range(3))
            ]
            await asyncio.gather(
                *(check(healthy.url, body) for body in CHECKS + fresh),
                *(check(broken.url, body) for body in BROKEN_CHECKS + fresh_broken),
                bad_requests(),
                *([reloads()] if reload and number == 0 else []),
            )
            burst = [
                _post(session, f"{healthy.url}/v1/check", json={"ip": world.PTR_TIMEOUT_IP})
                for _ in range(OVERLOAD_BURST)
            ]
            statuses += await asyncio.gather(*burst)
    return statuses


def prometheus_config(targets: list[str], other_target: str) -> str:
    # JSON is YAML: no YAML library needed. Same job name and rule file as the shipped config,
    # and another job besides, as every Prometheus has (the shipped one scrapes itself).
    return json.dumps(
        {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": targets}]},
                {"job_name": OTHER_JOB, "static_configs": [{"targets": [other_target]}]},
            ],
        }
    )


def all_queries(prometheus: Prometheus) -> list[tuple[str, str]]:
    """(where, expr) for every dashboard target and every alert rule Prometheus loaded."""
    dashboard = load_dashboard()
    variables = template_values(dashboard, prometheus.label_values)
    queries = [
        (f"panel {q.panel!r} {q.ref_id}", substitute(q.expr, variables))
        for q in panel_queries(dashboard)
    ]
    queries += [(f"alert {rule['name']}", rule["query"]) for rule in prometheus.rules()]
    return queries


def empty_queries(prometheus: Prometheus) -> list[str]:
    """Which queries fail or return nothing (an error counts: the caller reports it)."""
    missing = []
    for where, expr in all_queries(prometheus):
        try:
            if not prometheus.query(expr):
                missing.append(f"{where}: no data\n    {expr}")
        except PromQLError as error:
            missing.append(f"{where}: {error}\n    {expr}")
    return missing


def inactive_alerts(prometheus: Prometheus) -> set[str]:
    active = {a["labels"]["alertname"] for a in prometheus.alerts()}
    return set(alert_names()) - active


@pytest.fixture(scope="module")
def own_unbound(servfail_dns: FaultyDns) -> Iterator[Unbound]:
    """The test world on an unbound of our own, not the session's: after this load's many
    timeouts unbound answers SERVFAIL at once for the dead zones for a few seconds, which
    would change what later tests see from the shared one."""
    slow = FaultyDns("nxdomain").start()
    slow.others_delay = SLOW_ZONE_DELAY
    zones = build_zones(dead_port(), servfail_dns.port)
    zones.stub(SLOW_ZONE, slow.port)
    server = Unbound(zones).start()
    yield server
    server.stop()
    slow.stop()


@pytest.fixture(scope="module")
def stack(own_unbound: Unbound) -> Iterator[Stack]:
    healthy = ScorerProcess(own_unbound.nameserver, SCORER_TOML)
    # Two workers: one is killed below, and the supervisor replaces it.
    workers = SCORER_TOML.replace("[server]\n", "[server]\nworkers = 2\n", 1)
    broken = ScorerProcess(f"127.0.0.1:{dead_port()}", workers, with_bug=True)
    # A resolver that answers the root's SOA and says in-addr.arpa does not exist: it
    # serves only its own data (RdnsScorerResolverUntrusted).
    lying = Unbound(Zones(reverse_trees=False)).start()
    # Few connections: a burst of them is refused (RdnsScorerConnectionsRefused), while
    # Prometheus' scrape connection, kept alive, goes on being served.
    few_connections = SCORER_TOML.replace("[server]\n", "[server]\nmax_connections = 2\n", 1)
    untrusted = ScorerProcess(lying.nameserver, few_connections)
    # Two resolvers, the first silent: the service asks the second (its probe of the root
    # at start already), and says the first is silent (RdnsScorerNameserverSilent).
    silent = FaultyDns("silent").start()
    failover = ScorerProcess([silent.nameserver, own_unbound.nameserver], SCORER_TOML)
    down_target = f"127.0.0.1:{free_port()}"
    other_target = f"127.0.0.1:{free_port()}"  # nothing listens there either
    prometheus = Prometheus(
        prometheus_config(
            [healthy.address, broken.address, untrusted.address, failover.address, down_target],
            other_target,
        ),
        {"alerts.yml": ALERTS_YML.read_text()},
    )
    try:
        # Prometheus first: its scrape manager takes ~5 s to apply the targets anyway.
        prometheus.start()
        healthy.start()
        broken.start()
        untrusted.start()
        failover.start()
        # A warm-up round creates the labelled series, and a first scrape records them:
        # rate() and increase() ignore what a series counted before its first sample.
        asyncio.run(drive_load(healthy, broken, rounds=1))
        assert prometheus.wait_until(
            lambda: len(prometheus.query(f'up{{job="{JOB}"}}')) == 5, timeout=10
        ), prometheus.log()
        # After a scrape saw no restart: increase() counts from a series' first sample.
        _kill_a_worker(broken)  # RdnsScorerWorkerRestarted
        _refuse_connections(untrusted)  # RdnsScorerConnectionsRefused
        failover.restart()  # RdnsScorerRestarted: a crash and systemd's restart, as seen
        statuses = asyncio.run(drive_load(healthy, broken, rounds=ROUNDS, reload=True))
        assert {200, 400, 401, 415, 500, 503} <= set(statuses), sorted(set(statuses))
        # Two more scrapes catch the final counters; the evaluation loop then sees them too.
        prometheus.wait_until(
            lambda: not empty_queries(prometheus) and not inactive_alerts(prometheus),
            timeout=20,
            interval=0.5,
        )
    except Exception:
        # The services' logs go with their directories at stop(): shown here, so that a
        # setup that fails (a check the load sends cut off, say) says which one and why.
        for name, process in (("healthy", healthy), ("broken", broken), ("untrusted", untrusted),
                              ("failover", failover)):  # fmt: skip
            with contextlib.suppress(OSError):  # not started
                print(f"--- {name} ({process.address}) log ---\n{process.log()[-4000:]}")
        raise
    else:
        yield Stack(prometheus, healthy, broken, down_target, untrusted, failover)
    finally:
        prometheus.stop()
        healthy.stop()
        broken.stop()
        untrusted.stop()
        failover.stop()
        silent.stop()
        lying.stop()


def _refuse_connections(service: ScorerProcess) -> None:
    """Open more connections to ``service``, one after another, than its
    max_connections (2) take beside Prometheus' own: the rest are refused."""
    burst = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(5)]
    time.sleep(0.5)
    for client in burst:
        client.close()


def _kill_a_worker(service: ScorerProcess) -> None:
    """SIGKILL one of ``service``'s workers; return once the supervisor replaced it."""
    victim = children(service.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim in children(service.pid) or len(children(service.pid)) < 2:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.05)


def test_every_dashboard_and_alert_query_returns_data(stack: Stack) -> None:
    queries = all_queries(stack.prometheus)
    assert len([w for w, _ in queries if w.startswith("alert ")]) == len(alert_names())
    problems = empty_queries(stack.prometheus)
    assert not problems, "\n".join(problems)


def test_prometheus_loads_and_fires_every_alert(stack: Stack) -> None:
    rules = stack.prometheus.rules()
    assert sorted(r["name"] for r in rules) == sorted(alert_names())
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy
    assert not inactive_alerts(stack.prometheus)
    by_name: dict[str, set[str]] = {}
    for alert in stack.prometheus.alerts():
        by_name.setdefault(alert["labels"]["alertname"], set()).add(alert["labels"]["instance"])
    # Each alert blames the instance that has the problem.
    assert by_name["RdnsScorerDown"] == {stack.down_target}
    assert by_name["RdnsScorerResolverBroken"] == {stack.broken.address}
    assert by_name["RdnsScorerResolverUntrusted"] == {stack.untrusted.address}
    assert by_name["RdnsScorerNameserverSilent"] == {stack.failover.address}
    assert stack.healthy.address in by_name["RdnsScorerSkippedLocalHigh"]
    assert by_name["RdnsScorerOverloaded"] == {stack.healthy.address}
    # The slow zone's; the dead resolver's checks may run into the deadline too, and
    # rightly page.
    assert stack.healthy.address in by_name["RdnsScorerLatencyHigh"]
    assert by_name["RdnsScorerLatencyHigh"] <= {stack.healthy.address, stack.broken.address}
    assert by_name["RdnsScorerWorkerRestarted"] == {stack.broken.address}
    assert by_name["RdnsScorerConnectionsRefused"] == {stack.untrusted.address}
    assert by_name["RdnsScorerRestarted"] == {stack.failover.address}
    # Only the bug's 500s page as errors, not the overload's 503s (regression: both did).
    assert by_name["RdnsScorerServerErrorsHigh"] == {stack.broken.address}
    assert by_name["RdnsScorerConfigReloadFailed"] == {stack.healthy.address}


def test_every_exported_metric_family_is_on_the_dashboard(stack: Stack) -> None:
    names = set(stack.prometheus.api("label/__name__/values"))
    exported = {n for n in names if n.startswith("rdns_scorer_") and not n.endswith("_created")}
    assert "rdns_scorer_requests_total" in exported

    def family(name: str) -> str:
        stem = re.sub(r"_(bucket|sum|count)$", "", name)
        return stem if f"{stem}_bucket" in exported else name

    used = set(re.findall(r"rdns_scorer_\w+", DASHBOARD.read_text()))
    families = {family(n) for n in exported}
    unused = {f for f in families if not any(family(n) == f for n in used & exported)}
    assert not unused, f"metric families not on the dashboard: {sorted(unused)}"
    unknown = {n for n in re.findall(r"rdns_scorer_\w+", DASHBOARD.read_text())} - exported
    unknown |= set(re.findall(r"rdns_scorer_\w+", ALERTS_YML.read_text())) - exported
    assert not unknown, f"queries name metrics the service does not export: {sorted(unknown)}"


def test_panels_show_the_scorer_jobs_only(stack: Stack) -> None:
    # Regression: the job variable's "All" was ".+", every job: `up` is every target's, so
    # *Scorers up* and *Targets up* counted every target Prometheus scrapes (in the Docker
    # stack, Prometheus itself). "All" is the scorer jobs found, as for one of them.
    dashboard = load_dashboard()
    every = template_values(dashboard, stack.prometheus.label_values)
    scorer_only = {**every, "job": JOB}
    at = str(time.time())

    def result(expr: str) -> dict[frozenset[tuple[str, str]], str]:
        series = stack.prometheus.api("query", query=expr, time=at)["result"]
        return {frozenset(s["metric"].items()): s["value"][1] for s in series}

    for query in panel_queries(dashboard):
        assert result(substitute(query.expr, every)) == result(
            substitute(query.expr, scorer_only)
        ), f"panel {query.panel!r} {query.ref_id}"


def test_dashboard_variables_find_the_instances(stack: Stack) -> None:
    # Grafana's label_values(rdns_scorer_build_info{job=~"$job"}, instance) is this call.
    instances = stack.prometheus.api(
        "label/instance/values", **{"match[]": f'rdns_scorer_build_info{{job=~"{JOB}"}}'}
    )
    assert set(instances) == {
        stack.healthy.address, stack.broken.address, stack.untrusted.address,
        stack.failover.address,
    }  # fmt: skip
    jobs = stack.prometheus.api("label/job/values", **{"match[]": "rdns_scorer_build_info"})
    assert jobs == [JOB]


def test_reload_with_new_dns_settings_keeps_one_set_of_cache_series() -> None:
    configs = iter([config_from_mapping({"dns": {"nameservers": ["127.0.0.1:5353"]}})])
    service = Service(config_from_mapping({}), loader=lambda: next(configs))
    old_dns = service.pipeline.dns
    asyncio.run(service.reload("test"))  # new [dns]: a new DNS layer and cache
    assert service.pipeline.dns is not old_dns
    assert service.pipeline.dns.nameservers == [Nameserver("127.0.0.1", 5353)]
    text = generate_latest(service.metrics.registry).decode()
    samples = [line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")]
    duplicates = {name for name in samples if samples.count(name) > 1}
    assert not duplicates, "Prometheus cannot ingest a series exposed twice"
    service.pipeline.dns.cache.misses += 3
    assert (
        "rdns_scorer_dns_cache_misses_total 3.0"
        in generate_latest(service.metrics.registry).decode()
    )


def test_a_bug_while_reloading_is_a_rejected_reload(caplog: pytest.LogCaptureFixture) -> None:
    # Regression (review): only ConfigError was caught; anything else escaped a SIGHUP's
    # reload task ("Task exception was never retrieved"), uncounted, with
    # last_reload_successful still 1, so no alert fired.
    def broken() -> Config:
        raise RuntimeError("a bug")

    service = Service(config_from_mapping({}), loader=broken)
    with (
        caplog.at_level(logging.ERROR, logger="rdns_scorer"),
        pytest.raises(ConfigError, match="unexpected error reading the config"),
    ):
        asyncio.run(service.reload("SIGHUP"))
    text = generate_latest(service.metrics.registry).decode()
    assert "rdns_scorer_config_last_reload_successful 0.0" in text
    # With the pid (regression, review: with --workers N, N identical lines).
    assert f"config reload on SIGHUP failed (pid {os.getpid()})" in caplog.text
    assert "RuntimeError" in caplog.text


# --- static checks ----------------------------------------------------------------------------


def test_promtool_accepts_the_shipped_config_and_rules(tmp_path: Path) -> None:
    # Checked in a copy of the directory: rule_files must resolve relative to the config.
    for source in (PROMETHEUS_YML, ALERTS_YML):
        shutil.copy(source, tmp_path / source.name)
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout
    checked = promtool("check", "rules", str(ALERTS_YML))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(alert_names())} rules found" in checked.stdout
    assert re.search(rf"job_name:\s*{JOB}\s*$", PROMETHEUS_YML.read_text(), re.MULTILINE)


_RULE_TESTS = """
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # A quiet night: ~3 checks per 5 minutes, one in four answered 500, one 401, one 503.
      - series: 'rdns_scorer_requests_total{instance="a",endpoint="/v1/check",status="200"}'
        values: '0 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 9 9 10 10 11 11'
      - series: 'rdns_scorer_requests_total{instance="a",endpoint="/v1/check",status="500"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
      - series: 'rdns_scorer_requests_total{instance="a",endpoint="/v1/check",status="401"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
      - series: 'rdns_scorer_overload_rejections_total{instance="a"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
      # ... and one check every 4 minutes, each slow (a cold lookup of 0.6 s).
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="a",le="0.5"}'
        values: '0x23'
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="a",le="0.8"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="a",le="1"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="a",le="+Inf"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
      - series: 'rdns_scorer_request_duration_seconds_count{instance="a"}'
        values: '0 0 0 0 1 1 1 1 2 2 2 2 3 3 3 3 4 4 4 4 5 5 5 5'
    alert_rule_test:
      - {eval_time: 20m, alertname: RdnsScorerServerErrorsHigh, exp_alerts: []}
      - {eval_time: 20m, alertname: RdnsScorerLatencyHigh, exp_alerts: []}
      - {eval_time: 20m, alertname: RdnsScorerClientErrorsHigh, exp_alerts: []}
      - {eval_time: 20m, alertname: RdnsScorerOverloaded, exp_alerts: []}
  - interval: 1m
    input_series:
      # Busy: 600 checks a minute, 5 % answered 500 - the guard must not hide that.
      - series: 'rdns_scorer_requests_total{instance="b",endpoint="/v1/check",status="200"}'
        values: '0+570x20'
      - series: 'rdns_scorer_requests_total{instance="b",endpoint="/v1/check",status="500"}'
        values: '0+30x20'
    promql_expr_test:
      - eval_time: 15m
        expr: ALERTS{alertname="RdnsScorerServerErrorsHigh", alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerServerErrorsHigh", alertstate="firing",
              instance="b", severity="critical"}'
            value: 1
  - interval: 1m
    input_series:
      # Regression (review): 8 checks a minute, one every 3 minutes (on average) cut off
      # at the deadline by a sender's silent zone (0.83 s). The p99 of 40 checks is such a one:
      # "p99 above 0.8 s" fired on a healthy server.
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="i",le="0.8"}'
        values: '0+7.6667x30'
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="i",le="0.85"}'
        values: '0+8x30'
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="i",le="+Inf"}'
        values: '0+8x30'
      - series: 'rdns_scorer_request_duration_seconds_count{instance="i"}'
        values: '0+8x30'
      # 600 checks a minute, 2 % of them cut off at the deadline: a slow resolver.
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="j",le="0.8"}'
        values: '0+588x30'
      - series: 'rdns_scorer_request_duration_seconds_bucket{instance="j",le="+Inf"}'
        values: '0+600x30'
      - series: 'rdns_scorer_request_duration_seconds_count{instance="j"}'
        values: '0+600x30'
    promql_expr_test:
      - eval_time: 25m
        expr: ALERTS{alertname="RdnsScorerLatencyHigh", alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerLatencyHigh", alertstate="firing",
              instance="j", severity="warning"}'
            value: 1
  - interval: 15s
    input_series:
      # Regression (review): one process (the default) crashes and systemd starts it
      # again 2 s later: a scrape missed, a new start time, and no alert fired (too
      # short for RdnsScorerDown, and no supervisor to count it).
      - series: 'up{job="rdns-scorer",instance="k"}'
        values: '1x20 0 1x40'
      - series: 'process_start_time_seconds{instance="k"}'
        values: '1000x20 _ 1310x40'
      - series: 'rdns_scorer_build_info{instance="k"}'
        values: '1x20 _ 1x40'
      # --workers 2: the oldest worker replaced, the start time moves with it; that
      # is RdnsScorerWorkerRestarted's alone.
      - series: 'process_start_time_seconds{instance="l"}'
        values: '1000x20 1310x40'
      - series: 'rdns_scorer_build_info{instance="l"}'
        values: '1x61'
      - series: 'rdns_scorer_worker_restarts_total{instance="l",reason="signal"}'
        values: '0x20 1x40'
      # Prometheus's own start time: not a scorer's.
      - series: 'process_start_time_seconds{instance="m"}'
        values: '1000x20 1310x40'
    promql_expr_test:
      - eval_time: 8m
        expr: ALERTS{alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerRestarted", alertstate="firing",
              instance="k", severity="warning"}'
            value: 1
          - labels: 'ALERTS{alertname="RdnsScorerWorkerRestarted", alertstate="firing",
              instance="l", severity="warning"}'
            value: 1
  - interval: 1m
    input_series:
      # One rejected reload at minute 1, a good one at minute 40.
      - series: 'rdns_scorer_config_last_reload_successful{instance="c"}'
        values: '1 0x38 1x10'
    promql_expr_test:
      - eval_time: 25m
        expr: ALERTS{alertname="RdnsScorerConfigReloadFailed", alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerConfigReloadFailed", alertstate="firing",
              instance="c", severity="warning"}'
            value: 1
    alert_rule_test:
      - {eval_time: 45m, alertname: RdnsScorerConfigReloadFailed, exp_alerts: []}
  - interval: 1m
    input_series:
      # Overload alone: 600 checks a minute, 5 % shed with 503. One cause, one alert
      # (regression: RdnsScorerServerErrorsHigh paged "a bug" for it as well).
      - series: 'rdns_scorer_requests_total{instance="h",endpoint="/v1/check",status="200"}'
        values: '0+570x20'
      - series: 'rdns_scorer_requests_total{instance="h",endpoint="/v1/check",status="503"}'
        values: '0+30x20'
      - series: 'rdns_scorer_overload_rejections_total{instance="h"}'
        values: '0+30x20'
    promql_expr_test:
      - eval_time: 15m
        expr: ALERTS{alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerOverloaded", alertstate="firing",
              instance="h", severity="warning"}'
            value: 1
  - interval: 1m
    input_series:
      # A working resolver: 600 checks a minute, all but a few answered from the caches;
      # one sender with a dead reverse zone asks its PTR again on each of its 10 messages
      # a minute, so nearly every query sent fails, all but the first as repeats.
      - series: 'rdns_scorer_dns_queries_total{instance="d",rdtype="PTR",result="servfail"}'
        values: '0+10x30'
      - series: 'rdns_scorer_dns_repeated_failures_total{instance="d"}'
        values: '0+10x30'
      - series: 'rdns_scorer_dns_queries_total{instance="d",rdtype="A",result="answer"}'
        values: '0+1x30'
      - series: 'rdns_scorer_check_outcomes_total{instance="d",family="ptr",outcome="pass"}'
        values: '0+590x30'
      - series: 'rdns_scorer_check_outcomes_total{instance="d",family="ptr",outcome="tempfail"}'
        values: '0+10x30'
      # A dead resolver: every new question fails (some repeats among them too).
      - series: 'rdns_scorer_dns_queries_total{instance="e",rdtype="PTR",result="timeout"}'
        values: '0+100x30'
      - series: 'rdns_scorer_dns_repeated_failures_total{instance="e"}'
        values: '0+20x30'
      - series: 'rdns_scorer_check_outcomes_total{instance="e",family="ptr",outcome="pass"}'
        values: '0+40x30'
      - series: 'rdns_scorer_check_outcomes_total{instance="e",family="ptr",outcome="tempfail"}'
        values: '0+60x30'
      # A resolver that answers /readyz's probe (polled every second) and fails every
      # check's query: the probe's answers must not dilute the failures (review).
      - series: 'rdns_scorer_dns_queries_total{instance="f",rdtype="SOA",result="answer"}'
        values: '0+60x30'
      - series: 'rdns_scorer_dns_queries_total{instance="f",rdtype="PTR",result="servfail"}'
        values: '0+20x30'
      - series: 'rdns_scorer_dns_repeated_failures_total{instance="f"}'
        values: '0x30'
      # Regression (review): a quiet server (a check every 2 minutes) with a dead resolver
      # asked too few new questions for the guard, and nothing fired for hours; each
      # worker's probe of the root, every 10 s, fails all the same. A quiet one with a
      # working resolver answers them.
      - series: 'rdns_scorer_dns_queries_total{instance="g",rdtype="SOA",result="timeout"}'
        values: '0+6x30'
      - series: 'rdns_scorer_dns_queries_total{instance="g",rdtype="PTR",result="timeout"}'
        values: '0 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 9 9 10 10 11 11 12 12 13 13 14 14 15'
      - series: 'rdns_scorer_dns_queries_total{instance="h",rdtype="SOA",result="answer"}'
        values: '0+6x30'
      - series: 'rdns_scorer_dns_queries_total{instance="h",rdtype="PTR",result="timeout"}'
        values: '0 0 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 9 9 10 10 11 11 12 12 13 13 14 14 15'
    promql_expr_test:
      - eval_time: 25m
        expr: ALERTS{alertname=~"RdnsScorer(ResolverBroken|DnsTempfailHigh)", alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerResolverBroken", alertstate="firing",
              instance="e", severity="critical"}'
            value: 1
          - labels: 'ALERTS{alertname="RdnsScorerResolverBroken", alertstate="firing",
              instance="g", severity="critical"}'
            value: 1
          - labels: 'ALERTS{alertname="RdnsScorerResolverBroken", alertstate="firing",
              instance="f", severity="critical"}'
            value: 1
          - labels: 'ALERTS{alertname="RdnsScorerDnsTempfailHigh", alertstate="firing",
              instance="e", severity="warning"}'
            value: 1
  - interval: 1m
    input_series:
      # Two resolvers of one scorer: a lost datagram made the first silent for a moment
      # (its next query cleared it); the second has not answered for good.
      - series: 'rdns_scorer_dns_nameserver_silent{instance="k",nameserver="192.0.2.1:53"}'
        values: '0 1 0x20'
      - series: 'rdns_scorer_dns_nameserver_silent{instance="k",nameserver="[2001:db8::1]:53"}'
        values: '0 1x20'
    promql_expr_test:
      - eval_time: 10m
        expr: ALERTS{alertname="RdnsScorerNameserverSilent", alertstate="firing"}
        exp_samples:
          - labels: 'ALERTS{alertname="RdnsScorerNameserverSilent", alertstate="firing",
              instance="k", nameserver="[2001:db8::1]:53", severity="warning"}'
            value: 1
"""


def test_alerts_stay_quiet_on_little_traffic_and_reload_failure_stays_until_fixed(
    tmp_path: Path,
) -> None:
    # Regression: three ratio alerts lacked the traffic guard the runbook promises (one
    # 500 in four checks on a quiet night paged; the latency alert too, found in a
    # review), and a failed reload stopped alerting after 15 minutes while the old
    # config still ran. Regression (review): the two DNS
    # alerts divided by queries sent, so one sender with a dead zone (asked again for
    # every message, while the rest came from the cache) paged "resolver broken".
    shutil.copy(ALERTS_YML, tmp_path / "alerts.yml")
    (tmp_path / "tests.yml").write_text(_RULE_TESTS)
    tested = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_score_median_of_mail_scoring_zero_is_zero(tmp_path: Path) -> None:
    # Regression (review): with a bucket from -1 to 0, Prometheus interpolates a median
    # of -0.5 for mail that all scored 0, the usual score of clean mail: the dashboard's
    # "Score percentiles" said the typical message was vouched for. The dashboard's own
    # query, over a histogram where every check scored 0.
    dashboard = json.loads(DASHBOARD.read_text())
    panel = next(p for p in iter_panels(dashboard) if p.get("title") == "Score percentiles")
    median = next(t["expr"] for t in panel["targets"] if "histogram_quantile(0.5" in t["expr"])
    query = median.replace("$__rate_interval", "5m").replace("$job", ".+")
    query = query.replace("$instance", ".+")
    series = "".join(
        f'      - series: \'rdns_scorer_score_bucket{{job="{JOB}",instance="a",le="{bound}"}}\'\n'
        f"        values: '{'0x20' if le < 0 else '0+10x20'}'\n"
        for le in (*SCORE_BUCKETS, float("inf"))
        for bound in ["+Inf" if le == float("inf") else str(le)]  # as exported
    )
    (tmp_path / "tests.yml").write_text(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        f"    input_series:\n{series}"
        "    promql_expr_test:\n"
        f"      - expr: 'abs({query}) < bool 0.01'\n"
        "        eval_time: 15m\n"
        "        exp_samples: [{labels: '{}', value: 1}]\n"
    )
    tested = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_overview_dns_tempfail_share_reads_what_its_alert_measures(tmp_path: Path) -> None:
    # Regression (review): the stat counted new DNS questions that failed, leaving out
    # a dead zone's repeats, which make checks fail: it read 0 % (red at the alert's
    # 25 %) while RdnsScorerDnsTempfailHigh was pending at 33 %.
    panel = next(p for p in iter_panels(load_dashboard()) if p.get("title") == "DNS tempfail share")
    query = substitute(panel["targets"][0]["expr"], {"job": JOB, "instance": ".+"})
    red = max(
        step["value"] or 0 for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    )
    alert = re.search(
        r"alert: RdnsScorerDnsTempfailHigh\n.*?\) > ([\d.]+)\n", ALERTS_YML.read_text(), re.S
    )
    assert alert is not None and red == float(alert.group(1))
    scorer = f'job="{JOB}",instance="a"'
    # Every query sent fails, each a repeat of the dead zone's question; a third of the
    # checks' PTR judgements end in the failure.
    series = {
        'rdns_scorer_dns_queries_total{S,rdtype="PTR",result="timeout"}': "0+10x20",
        "rdns_scorer_dns_repeated_failures_total{S}": "0+10x20",
        'rdns_scorer_check_outcomes_total{S,family="ptr",outcome="pass"}': "0+20x20",
        'rdns_scorer_check_outcomes_total{S,family="ptr",outcome="tempfail"}': "0+10x20",
    }
    (tmp_path / "tests.yml").write_text(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
        + "".join(
            f"      - series: '{name.replace('{S', '{' + scorer)}'\n        values: '{values}'\n"
            for name, values in series.items()
        )
        + "    promql_expr_test:\n"
        f"      - expr: 'abs(({query}) - 1/3) < bool 0.01'\n"
        "        eval_time: 15m\n"
        "        exp_samples: [{labels: '{}', value: 1}]\n"
    )
    tested = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


# Counters that counted for five minutes and then stood still: a server gone idle.
_BUSY_THEN_IDLE = "0+4x20 80x20"  # one sample each 15 s
_IDLE_SERVER_SERIES = [  # (metric, its labels besides job and instance)
    ("rdns_scorer_dns_queries_total", 'rdtype="PTR",result="answer"'),
    ("rdns_scorer_dns_queries_total", 'rdtype="PTR",result="timeout"'),
    ("rdns_scorer_dns_queries_total", 'rdtype="SOA",result="answer"'),
    ("rdns_scorer_dns_repeated_failures_total", ""),
    ("rdns_scorer_dns_cache_hits_total", ""),
    ("rdns_scorer_dns_cache_misses_total", ""),
    ("rdns_scorer_requests_total", 'endpoint="/v1/check",status="200"'),
    ("rdns_scorer_requests_total", 'endpoint="/v1/check",status="401"'),
    ("rdns_scorer_requests_total", 'endpoint="/v1/check",status="503"'),
    ("rdns_scorer_request_duration_seconds_count", ""),
    ("rdns_scorer_skipped_local_clients_total", ""),
    ("rdns_scorer_symbols_total", 'symbol="RL_PTR_MISSING"'),
    ("rdns_scorer_check_outcomes_total", 'family="ptr",outcome="pass"'),
    ("rdns_scorer_check_outcomes_total", 'family="ptr",outcome="tempfail"'),
    ("rdns_scorer_check_outcomes_total", 'family="helo",outcome="skipped"'),
]


def test_share_panels_of_an_idle_server_show_zero_or_nothing_not_nan(tmp_path: Path) -> None:
    # Regression: every share divided a rate by a rate, so once the checks stopped (a
    # quiet night) 0/0 made the panels show NaN. Each dashboard query that divides is
    # run while the server works (it must show a share) and once it is idle (0 or no
    # value: `!= 0` keeps a NaN, as NaN differs from everything).
    shares = [
        substitute(q.expr, {"job": JOB, "instance": ".+"})
        for q in panel_queries(load_dashboard())
        if "/" in re.sub(r'"[^"]*"', "", q.expr)  # a division, not the "/v1/check" label
    ]
    assert len(shares) >= 10
    scorer = f'job="{JOB}",instance="a"'
    series = [
        f"{metric}{{{scorer}{',' if labels else ''}{labels}}}"
        for metric, labels in _IDLE_SERVER_SERIES
    ]
    expr_tests = []
    for expr in shares:
        expr_tests += [
            {
                "expr": f"count(({expr}) >= 0) > bool 0",
                "eval_time": "4m",
                "exp_samples": [{"labels": "{}", "value": 1}],
            },
            {"expr": f"({expr}) != 0", "eval_time": "10m", "exp_samples": []},
        ]
    rule_test = {
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": _BUSY_THEN_IDLE} for s in series],
                "promql_expr_test": expr_tests,
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(json.dumps(rule_test))  # JSON is YAML
    tested = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


# Histograms, each observed from two sources: one stops at 5 minutes, the other at 10.
_QUANTILE_BUCKETS = {"0.01": 0, "0.1": 2, "1": 4, "+Inf": 4}  # le: observations per sample
_QUANTILE_SOURCES = {"a": ("early", 20), "b": ("late", 40)}  # instance: (name, samples busy)


def quantile_grouping(expr: str) -> list[str]:
    """The labels a dashboard quantile keeps besides ``le``: one series per value."""
    match = re.search(r"histogram_quantile\([^,]+,\s*sum by \(([^)]*)\)", expr)
    assert match, f"a quantile not over `sum by (..., le)`: {expr}"
    return [label for label in re.split(r",\s*", match.group(1)) if label != "le"]


def test_quantile_panels_of_an_idle_server_show_nothing_not_nan(tmp_path: Path) -> None:
    # Regression: histogram_quantile over bucket rates that are all 0 (nothing observed in
    # the window: a quiet night) is NaN, which the latency and score panels showed. Each
    # dashboard quantile is run while both sources observe (a number for each of its
    # series; `> -Inf` drops a NaN), once the early one stopped (a series of its own, as
    # DNS latency of a type no longer asked, gone; the busy one still a number) and once
    # both stopped (no value: a NaN would be a sample).
    quantiles = [
        substitute(q.expr, {"job": JOB, "instance": ".+"})
        for q in panel_queries(load_dashboard())
        if "histogram_quantile" in q.expr
    ]
    assert len(quantiles) >= 8
    groupings = {expr: quantile_grouping(expr) for expr in quantiles}
    assert any(groupings.values()), "no quantile per label: idle beside busy goes untested"
    labels = sorted({label for grouping in groupings.values() for label in grouping})
    histograms = sorted({name for expr in quantiles for name in re.findall(r"(\w+)_bucket", expr)})
    input_series = [
        {
            "series": f'{histogram}_bucket{{job="{JOB}",instance="{instance}",'
            + "".join(f'{label}="{source}",' for label in labels)
            + f'le="{le}"}}',
            "values": f"0+{step}x{busy} {step * busy}x{60 - busy}",
        }
        for histogram in histograms
        for instance, (source, busy) in _QUANTILE_SOURCES.items()
        for le, step in _QUANTILE_BUCKETS.items()
    ]

    def one_each(grouping: list[str], *sources: str) -> list[dict[str, Any]]:
        if not grouping:  # the sources summed into one series
            return [{"labels": "{}", "value": 1}]
        return [
            {"labels": "{" + ",".join(f'{g}="{source}"' for g in grouping) + "}", "value": 1}
            for source in sources
        ]

    expr_tests = []
    for expr, grouping in groupings.items():
        by = ", ".join(grouping)
        expr_tests += [
            {
                "expr": f"count by ({by}) (({expr}) > -Inf)",
                "eval_time": "4m",
                "exp_samples": one_each(grouping, "early", "late"),
            },
            {
                "expr": f"count by ({by}) ({expr})",
                "eval_time": "8m",
                "exp_samples": one_each(grouping, "late"),
            },
            {
                "expr": f"count by ({by}) (({expr}) > -Inf)",
                "eval_time": "8m",
                "exp_samples": one_each(grouping, "late"),
            },
            {"expr": expr, "eval_time": "14m", "exp_samples": []},
        ]
    rule_test = {
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [
            {"interval": "15s", "input_series": input_series, "promql_expr_test": expr_tests}
        ],
    }
    (tmp_path / "tests.yml").write_text(json.dumps(rule_test))  # JSON is YAML
    tested = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_runbook_section() -> None:
    docs = DOCS.read_text()
    text = ALERTS_YML.read_text()
    names = alert_names()
    assert len(names) >= 7 and len(set(names)) == len(names)
    for name in names:
        assert re.search(rf"^### {name}$", docs, re.MULTILINE), f"no runbook for {name}"
        assert f"docs/monitoring.md#{name.lower()}" in text
    assert text.count("severity:") == len(names)


def test_counter_panels_count_over_windows_that_overlap() -> None:
    # Regression (review): "Config reloads" took increase() over $__interval, windows
    # that meet end to end: a reload between the last sample of one and the first of
    # the next showed in neither (about one in four at a 15 s scrape). A heatmap's
    # buckets may not overlap, or each event counts in two cells: it keeps $__interval.
    # A total over the dashboard's range ($__range) is one window.
    for query in panel_queries(load_dashboard()):
        counted = r"\b(?:rate|increase)\([^()]*?\[(\$__\w+|\d+[smhd])\]"
        for window in re.findall(counted, query.expr):
            panel = next(p for p in iter_panels(load_dashboard()) if p.get("title") == query.panel)
            wanted = "$__interval" if panel["type"] == "heatmap" else "$__rate_interval"
            assert window in (wanted, "$__range"), (query.panel, query.expr)  # or the whole


def test_dashboard_json_is_well_formed() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "rdns-scorer"
    panels = list(iter_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel.get("title") and panel.get("description"), panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    variables = template_values(dashboard)
    assert set(variables) == {"datasource", "job", "instance"}
    for query in panel_queries(dashboard):
        expanded = substitute(query.expr, variables)  # raises on an unknown variable
        assert "$" not in expanded, expanded
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("requests", "latency", "symbol", "score", "dns", "cache", "outcomes",
                  "in flight", "reloads"):  # fmt: skip
        assert topic in titles, f"no panel about {topic}"


def docker_ignored(path: str) -> bool:
    """Whether docker/Dockerfile.dockerignore keeps ``path`` out of the build context.

    Enough of the .dockerignore rules for this file: the last matching pattern wins,
    ``!`` re-includes, a pattern matches a path or anything below it.
    """
    ignored = False
    for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negated
    return ignored


def _compose() -> str:
    return (DOCKER / "compose.yaml").read_text()


def test_the_stacks_rspamd_is_the_3x_line_the_plugin_is_tested_for() -> None:
    # Regression: `rspamd/rspamd:latest` became a 4.x image, which the plugin was never
    # run with; the stack now names the 3.x line (the tests run Debian's 3.4).
    images = dict(
        re.findall(r"^  (\w+):\n(?:    #.*\n)*    image: (\S+)$", _compose(), re.MULTILINE)
    )
    assert re.fullmatch(r"rspamd/rspamd:3\.\d+(\.\d+)?", images["rspamd"]), images
    assert not [image for image in images.values() if image.endswith(":latest")], images


def test_the_stacks_unbound_is_debians_as_the_tests_run_it() -> None:
    # Regression: the stack ran `alpinelinux/unbound:latest`, whatever unbound that was
    # on the day, while the tests check unbound.conf with Debian 12's. The stack builds
    # Debian's unbound on the scorer image's Debian release, in the foreground.
    service = re.search(r"^  unbound:\n((?:    .*\n)+)", _compose(), re.MULTILINE)
    assert service is not None
    context = re.search(r"^      context: (\S+)$", service.group(1), re.MULTILINE)
    assert context and (DOCKER / context.group(1)).resolve() == DOCKER / "unbound"
    assert "image: rdns-scorer-unbound:local" in service.group(1)
    dockerfile = (DOCKER / "unbound" / "Dockerfile").read_text()
    release = re.search(r"^FROM debian:(\w+)-slim$", dockerfile, re.MULTILINE)
    scorer_base = re.search(
        r"^FROM python:\S+-slim-(\w+)", (DOCKER / "Dockerfile").read_text(), re.MULTILINE
    )
    assert release and scorer_base and release.group(1) == scorer_base.group(1)
    assert re.search(r"apt-get install -y --no-install-recommends unbound\b", dockerfile)
    assert 'CMD ["unbound", "-d", "-c", "/etc/unbound/unbound.conf"]' in dockerfile
    # What it logs goes to stderr (docker compose logs), which the config keeps so.
    config = (DOCKER / "unbound" / "unbound.conf").read_text()
    assert re.search(r"^\s+use-syslog: no$", config, re.MULTILINE)
    assert re.search(r'^\s+logfile: ""$', config, re.MULTILINE)


def test_docker_files_refer_to_files_that_exist() -> None:
    compose = _compose()
    context = re.search(r"^\s+context:\s*(\S+)", compose, re.MULTILINE)
    dockerfile = re.search(r"^\s+dockerfile:\s*(\S+)", compose, re.MULTILINE)
    assert context and dockerfile
    root = (DOCKER / context.group(1)).resolve()
    assert root == REPO
    assert (root / dockerfile.group(1)) == DOCKER / "Dockerfile"

    mounts = dict(re.findall(r"^\s+-\s+\"?(\.\.?/[^:\"]+):(/[^:\"]+)", compose, re.MULTILINE))
    assert len(mounts) >= 7
    for source in mounts:
        assert (DOCKER / source).resolve().exists(), f"compose.yaml mounts missing {source}"
    assert mounts["../lua/rdns_scorer.lua"] == "/etc/rspamd/plugins.d/rdns_scorer.lua"
    assert mounts["./rspamd/rspamd.conf.local"] == "/etc/rspamd/rspamd.conf.local"
    assert mounts["./unbound/unbound.conf"] == "/etc/unbound/unbound.conf"
    # Regression (review): configs reloaded in place (SIGHUP, Prometheus' /-/reload)
    # were single-file mounts, which keep the old file after an editor saves a new one.
    assert mounts["./scorer"] == "/etc/rdns-scorer"
    assert mounts["./prometheus"] == "/etc/prometheus"
    # rspamd (the mail path) never waits for a healthy scorer: the plugin fails open and
    # resolves a late scorer itself (review: service_healthy kept rspamd down whenever
    # the scorer would not start).
    assert "service_healthy" not in compose
    served = re.search(
        r'^CMD \["serve", "--config", "([^"]+)"\]',
        (DOCKER / "Dockerfile").read_text(),
        re.MULTILINE,
    )
    assert served and served.group(1) == "/etc/rdns-scorer/scorer.toml"
    assert (DOCKER / "scorer" / "scorer.toml").is_file()
    for name in ("prometheus.yml", "alerts.yml"):
        assert (DOCKER / "prometheus" / name).is_file()

    dockerfile_text = (DOCKER / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile_text, re.MULTILINE)
    copied = [source for line in copies for source in line.split()[:-1]]
    assert "." in copied and "docker/scorer/image-default.toml" in copied
    for source in copied:
        assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
        assert source == "." or not docker_ignored(source), f"{source} is in .dockerignore"
    # The build stage copies the filtered tree: what pyproject.toml builds from must be in it.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = [project["project"]["readme"], "pyproject.toml", "scorer/__init__.py"]
    for files in project["tool"]["setuptools"].get("data-files", {}).values():
        needed += files
    for path in needed:
        assert (REPO / path).exists(), path
        assert not docker_ignored(path), f"the image build needs {path}, .dockerignore drops it"
    # Regression (review): the other Pythons' venvs (make test-other-pythons) and the
    # stack's own scorer.toml (a token; an edit rebuilt the image) went into the build.
    dropped_files = ".venv/bin/python", ".venv-3.13/bin/python", "docker/scorer/scorer.toml"
    for dropped in (*dropped_files, "tests/world.py", ".git/HEAD"):
        assert docker_ignored(dropped), dropped
    assert re.search(r"^USER\s+(?!root|0\b)", dockerfile_text, re.MULTILINE)
    # The healthcheck reads the same config file the service is started with.
    served = re.search(r'^CMD \["serve", "--config", "([^"]+)"\]', dockerfile_text, re.MULTILINE)
    assert served is not None
    health = f'CMD ["rdns-scorer", "health", "--config", "{served.group(1)}"]'
    assert re.search(rf"^HEALTHCHECK .*\n\s*{re.escape(health)}", dockerfile_text, re.MULTILINE)


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    compose = _compose()
    provider = (DOCKER / "grafana/provisioning/dashboards/rdns-scorer.yml").read_text()
    path = re.search(r"path:\s*(\S+)", provider)
    assert path and f"./grafana/dashboards:{path.group(1)}:ro" in compose
    datasource = (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text()
    assert "type: prometheus" in datasource and "url: http://prometheus:9090" in datasource
    assert "./prometheus:/etc/prometheus:ro" in compose
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose
    prometheus = (DOCKER / "prometheus/prometheus.yml").read_text()
    assert re.search(r"rule_files:\s*\n\s*-\s*\"?alerts\.yml", prometheus), "beside it"
    rspamd = (DOCKER / "rspamd/rspamd.conf.local").read_text()
    assert re.search(r'rdns_scorer\s*\{[^}]*servers\s*=\s*"scorer:11340";', rspamd)
    assert re.search(r"^  scorer:$", compose, re.MULTILINE)


def test_container_configs_handle_the_public_bind() -> None:
    # The image listens on 0.0.0.0: its baked-in default must refuse to start without a
    # token, and the compose stack's config (port not published) must start.
    listen = re.search(r"RDNS_SCORER_LISTEN=(\S+)", (DOCKER / "Dockerfile").read_text())
    assert listen
    host, port = parse_listen(listen.group(1))
    assert (host, port) == ("0.0.0.0", 11340)
    image_default = load_config(DOCKER / "scorer" / "image-default.toml", environ={})
    assert public_bind_refusal(host, image_default.server) is not None
    stack_config = load_config(DOCKER / "scorer" / "scorer.toml", environ={})
    assert public_bind_refusal(host, stack_config.server) is None
    assert "11340:11340" not in _compose(), "the tokenless scorer must not be published"


def test_unbound_config_is_valid() -> None:
    checked = subprocess.run(
        ["unbound-checkconf", str(DOCKER / "unbound" / "unbound.conf")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    # Regressions (review): a bad config restarted the unit every 2 s for good (an
    # ExecStartPre failure is no main-process exit status for RestartPreventExitStatus),
    # and `systemctl reload` said nothing of a rejected config (kill always succeeds).
    assert "ExecStartPre=" not in text and "\nRestartPreventExitStatus=2\n" in text
    reloads = re.findall(r"^ExecReload=(.*)$", text, re.M)
    assert reloads == [
        "/opt/rdns-scorer/bin/rdns-scorer config check /etc/rdns-scorer/scorer.toml",
        "/bin/kill -HUP $MAINPID",
    ]
    for option in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert option in text
    # verify wants ExecStart's binary to exist: point it at this checkout's entry point.
    installed = str(Path(sys.executable).parent / "rdns-scorer")
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/rdns-scorer/bin/rdns-scorer", installed))
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    # Unknown keys and unparsable values are only warnings: none may appear.
    assert UNIT.name not in checked.stderr, checked.stderr


def test_a_worker_dying_at_every_start_leaves_the_unit_failed() -> None:
    # Regression (lifecycle review): with --workers N each start first tries its workers
    # (MAX_QUICK_DEATHS deaths within QUICK_DEATH_SECONDS, with back-off pauses) before
    # "giving up", so starts came slower than StartLimitBurst in StartLimitIntervalSec
    # and systemd restarted such a service for good. The start limit must be reachable
    # at the quickest such cadence: RestartSec plus the supervisor's own pauses.
    from scorer.workers import MAX_QUICK_DEATHS, QUICK_DEATH_SECONDS

    text = UNIT.read_text()

    def seconds(key: str) -> float:
        found = re.search(rf"^{key}=(\d+)s?$", text, re.M)
        assert found is not None, key
        return float(found.group(1))

    # Workers dying at once (an import error, a bug at start): the supervisor's back-off
    # pauses, plus ~0.3 s each to start (measured: ~3.6 s a start in all).
    pauses = sum(min(n, 5) * 0.2 for n in range(1, MAX_QUICK_DEATHS))
    start = pauses + MAX_QUICK_DEATHS * 0.3
    assert start < MAX_QUICK_DEATHS * QUICK_DEATH_SECONDS  # each death counts as quick
    cadence = seconds("RestartSec") + start
    assert seconds("StartLimitBurst") * cadence <= seconds("StartLimitIntervalSec")


def _unit_procfs_options() -> str:
    """The mount options of the /proc the unit's service sees (systemd.exec(5):
    ProtectProc= is procfs's hidepid=, ProcSubset=pid its subset=pid)."""
    text = UNIT.read_text()
    protect = re.search(r"^ProtectProc=(\w+)$", text, re.M)
    subset = re.search(r"^ProcSubset=(\w+)$", text, re.M)
    options = [f"hidepid={protect.group(1)}"] if protect and protect.group(1) != "default" else []
    if subset and subset.group(1) == "pid":
        options.append("subset=pid")
    return ",".join(options) or "defaults"


def test_the_units_proc_still_shows_the_process_metrics() -> None:
    # Regression (review): ProcSubset=pid hid /proc/stat, where prometheus_client reads
    # the boot time, and without it every process_* family went missing: the dashboard's
    # Memory (RSS) and CPU panels stayed empty under the documented systemd install.
    # The unit cannot run here (no systemd as PID 1): its /proc is mounted as it would
    # be, in a mount namespace of the service's own.
    options = _unit_procfs_options()
    mount = f'mount -t proc -o {options} proc /proc && exec "$@"'
    sandbox = ("unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh")
    service = ScorerProcess(f"127.0.0.1:{dead_port()}", wrapper=sandbox).start()
    try:
        with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as reply:
            exported = reply.read().decode()
    finally:
        service.stop()
    for family in ("process_resident_memory_bytes", "process_cpu_seconds_total"):
        assert f"\n{family} " in exported, (options, family)


def test_connections_refused_runbook_finds_who_holds_the_connections() -> None:
    # Regression (review): the runbook told apart "your rspamd hosts" from "another
    # address" by the log's address, which is the latest client refused: under a flood
    # that is an rspamd host, and the runbook said to raise max_connections. And it
    # compared the panel, a sum over the workers, with the per-worker limit.
    docs = DOCS.read_text()
    section = docs.split("### RdnsScorerConnectionsRefused", 1)[1].split("\n### ", 1)[0]
    text = " ".join(section.split())
    assert "ss -Htn state established" in text
    assert "not the ones holding the connections" in text
    assert "N times `max_connections`" in text
    assert "`RdnsScorerDown` fires instead" in text


def test_down_runbook_tells_a_full_worker_from_a_dead_one() -> None:
    # Regression (review): with max_connections open in a worker, a new scrape connection
    # gets the 503 of scorer.connections: up is 0 and RdnsScorerDown fires, while
    # RdnsScorerConnectionsRefused (which needs the scrape) cannot; the Down runbook's
    # `curl /healthz` then showed that 503 and said nothing of it.
    from scorer.connections import REFUSED_MESSAGE

    section = DOCS.read_text().split("### RdnsScorerDown", 1)[1].split("\n### ", 1)[0]
    assert REFUSED_MESSAGE in section
    assert "(#rdnsscorerconnectionsrefused)" in section


def test_connections_refused_summary_counts_whole_connections(tmp_path: Path) -> None:
    # Regression (review): increase() extrapolates to the window's edges, so the summary
    # said "refused 13.81 connections" for 13 (humanize keeps the fraction).
    shutil.copy(ALERTS_YML, tmp_path / "alerts.yml")
    block = ALERTS_YML.read_text().split("- alert: RdnsScorerConnectionsRefused", 1)[1]
    description = re.search(r"description: >-\n((?:\s{12}.*\n)+)", block)
    assert description
    folded = " ".join(description.group(1).split())
    summary = "a refused about 14 connections (max_connections reached)"  # 13, extrapolated
    (tmp_path / "tests.yml").write_text(
        "rule_files: [alerts.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        "    input_series:\n"
        "      - series: 'rdns_scorer_connections_refused_total{instance=\"a\"}'\n"
        "        values: '_ _ 5 5 18 18 18 18 18 18 18'\n"
        "    alert_rule_test:\n"
        "      - eval_time: 10m\n        alertname: RdnsScorerConnectionsRefused\n"
        "        exp_alerts:\n          - exp_labels: {instance: a, severity: warning}\n"
        "            exp_annotations:\n"
        f"              summary: {json.dumps(summary)}\n"
        f"              description: {json.dumps(folded)}\n"
        "              runbook: docs/monitoring.md#rdnsscorerconnectionsrefused\n"
    )
    tested = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


# Grafana's thresholds when a panel sets none (its standard field config): green, then
# red from 80, whatever the unit.
GRAFANA_DEFAULT_THRESHOLDS = {"mode": "absolute", "steps": [
    {"color": "green", "value": None}, {"color": "red", "value": 80},
]}  # fmt: skip


def threshold_colour(panel: dict[str, Any], field: str, value: float) -> str:
    """The colour Grafana gives ``value`` of the field named ``field`` (its legend) in
    a stat or bar gauge coloured by thresholds: the panel's, or an override's by name."""
    config = panel["fieldConfig"]
    thresholds = config["defaults"].get("thresholds", GRAFANA_DEFAULT_THRESHOLDS)
    for override in config.get("overrides", []):
        if override["matcher"] == {"id": "byName", "options": field}:
            for setting in override["properties"]:
                if setting["id"] == "thresholds":
                    thresholds = setting["value"]
    assert thresholds["mode"] == "absolute", panel["title"]
    colour = thresholds["steps"][0]["color"]
    for step in thresholds["steps"][1:]:
        if value >= step["value"]:
            colour = step["color"]
    return str(colour)


def test_no_stat_or_bar_gauge_is_coloured_by_grafanas_default_thresholds() -> None:
    # Regression (review): panels with no thresholds of their own got Grafana's green,
    # then red from 80: "Checks / s" turned red on a healthy server taking 80 checks a
    # second, and the symbol counts' bars red past 80 messages.
    for panel in iter_panels(load_dashboard()):
        if panel["type"] in ("stat", "bargauge", "gauge"):
            defaults = panel["fieldConfig"]["defaults"]
            assert defaults.get("color", {}).get("mode", "thresholds") == "thresholds"
            assert "thresholds" in defaults, f"{panel['title']!r}: Grafana's 80 = red"
    checks = next(p for p in iter_panels(load_dashboard()) if p["title"] == "Checks / s")
    assert threshold_colour(checks, "checks/s", 1000.0) != "red"


def test_scorers_up_turns_red_while_a_scorer_is_down(stack: Stack) -> None:
    # Regression (review): "Scorers up" showed "up N" and "targets M" in green whatever
    # they were: a dashboard opened on a dead scorer, its first number, said all was well.
    # It shows the targets that do not answer (the stack has one), red from one, and
    # "up" red at 0.
    dashboard = load_dashboard()
    panel = next(p for p in iter_panels(dashboard) if p["title"] == "Scorers up")
    every = template_values(dashboard, stack.prometheus.label_values)

    def colours(variables: dict[str, str]) -> dict[str, tuple[float, str]]:
        shown = {}
        for target in panel["targets"]:
            series = stack.prometheus.query(substitute(target["expr"], variables))
            assert len(series) == 1, (target["expr"], series)
            value = float(series[0]["value"][1])
            shown[target["legendFormat"]] = (
                value,
                threshold_colour(panel, target["legendFormat"], value),
            )
        return shown

    all_targets = colours(every)
    assert any(colour == "red" for _, colour in all_targets.values()), all_targets
    healthy = colours({**every, "instance": stack.healthy.address})
    assert not any(colour == "red" for _, colour in healthy.values()), healthy
    assert healthy["up"] == (1.0, "green"), healthy
    down = colours({**every, "instance": stack.down_target})
    assert down["up"] == (0.0, "red"), down


def test_docker_run_examples_mount_absolute_paths() -> None:
    # Regression (review): `docker run -v ./rdns-scorer:...` is read as a volume named
    # "./rdns-scorer" and refused ("includes invalid characters for a local volume name")
    # by Docker before 23, Debian 12's docker.io 20.10 among them, which the Dockerfile
    # says builds the image. An absolute source works with every version.
    texts = {path: path.read_text() for path in (DOCKER / "Dockerfile", DOCS, REPO / "README.md")}
    examples = 0
    for path, text in texts.items():
        joined = re.sub(r"\n\s*#?\s*", " ", text)  # examples wrapped over lines
        for command in re.findall(r"docker run [^`\n]*?-v[ =](\S+)", joined):
            examples += 1
            source = command.split(":", 1)[0].strip("\"'")
            assert source.startswith(("/", '"$PWD', "$PWD")), f"{path.name}: -v {command}"
    assert examples >= 2
