"""Prometheus metrics. Every name starts with ``rdns_scorer_`` and follows the naming guide.

Each app gets its own registry (tests build many apps in one process). Hot-path
bookkeeping uses pre-bound label children so a request costs a few dict
lookups; cache statistics are read at scrape time instead of counted per hit.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scorer import __version__
from scorer.protocol import CheckReply, CheckRequest
from scorer.symbols import SYMBOLS, Family

if TYPE_CHECKING:
    from scorer.dns.layer import DnsLayer

# Latency buckets: the plugin's timeout is 1 s and a warm check takes well under
# a millisecond, so resolution matters most between 0.5 ms and 1 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5)
DNS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCORE_BUCKETS = (-5.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0)

CHECKED_FAMILIES = (Family.PTR, Family.HELO, Family.MAILFROM)


class _CacheCollector(Collector):
    """Cache hits, misses and size, read from the DNS layer when Prometheus scrapes."""

    def __init__(self, dns_layer: DnsLayer) -> None:
        self.dns = dns_layer

    def collect(self) -> Iterator[Metric]:
        cache = self.dns.cache
        yield CounterMetricFamily(
            "rdns_scorer_dns_cache_hits", "Lookups answered from the cache.", value=cache.hits
        )
        yield CounterMetricFamily(
            "rdns_scorer_dns_cache_misses", "Lookups not in the cache.", value=cache.misses
        )
        yield GaugeMetricFamily(
            "rdns_scorer_dns_cache_entries", "Outcomes in the cache now.", value=len(cache)
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._cache_collector: _CacheCollector | None = None
        r = self.registry
        self.requests = Counter(
            "rdns_scorer_requests", "HTTP requests by endpoint and status.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "rdns_scorer_request_duration_seconds", "Time to answer /v1/check.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.symbols = Counter(
            "rdns_scorer_symbols", "Symbols returned, by name.", ["symbol"], registry=r
        )
        self.shadow_symbols = Counter(
            "rdns_scorer_shadow_symbols",
            "Symbols returned at weight 0 because of shadow mode, by name.",
            ["symbol"], registry=r,
        )  # fmt: skip
        # A gauge, not a counter: a negative weight makes the running sum go down.
        self.shadow_score = Gauge(
            "rdns_scorer_shadow_score",
            "Running sum of the score shadowed symbols would have added, by name.",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.scores = Histogram(
            "rdns_scorer_score", "Total score per checked message.",
            buckets=SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.checks = Counter(
            "rdns_scorer_check_outcomes", "Check results by family and outcome.",
            ["family", "outcome"], registry=r,
        )  # fmt: skip
        self.dns_queries = Counter(
            "rdns_scorer_dns_queries", "DNS queries sent, by record type and result.",
            ["rdtype", "result"], registry=r,
        )  # fmt: skip
        self.dns_latency = Histogram(
            "rdns_scorer_dns_query_duration_seconds", "Time for one DNS query.",
            ["rdtype"], buckets=DNS_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "rdns_scorer_requests_in_flight", "Checks being answered now.", registry=r
        )
        self.skipped_local = Counter(
            "rdns_scorer_skipped_local_clients",
            "Clients not checked because they are in skip_networks. Many of these mean "
            "a proxy or NAT hides the real client addresses.",
            registry=r,
        )
        self.reloads = Counter(
            "rdns_scorer_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        self.overloaded = Counter(
            "rdns_scorer_overload_rejections",
            "Requests answered 503 because too many were in flight.",
            registry=r,
        )
        Info("rdns_scorer_build", "Version of the running service.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)  # so both series exist before the first reload

    def watch_dns(self, dns_layer: DnsLayer) -> None:
        """Report ``dns_layer``'s cache from now on (a reload with new DNS settings swaps it).

        One collector, repointed: registering a second one would expose every cache series
        twice (the stale layer's first) and keep the old layer alive.
        """
        if self._cache_collector is None:
            self._cache_collector = _CacheCollector(dns_layer)
            self.registry.register(self._cache_collector)
        else:
            self._cache_collector.dns = dns_layer

    def observe_dns(self, rdtype: str, result: str, seconds: float) -> None:
        self.dns_queries.labels(rdtype, result).inc()
        self.dns_latency.labels(rdtype).observe(seconds)

    def observe_check(self, request: CheckRequest, reply: CheckReply, seconds: float) -> None:
        self.latency.observe(seconds)
        self.scores.observe(reply.score)
        for name, would_be in reply.shadowed:
            self.shadow_symbols.labels(name).inc()
            self.shadow_score.labels(name).inc(would_be)
        outcomes: dict[Family, str] = {}
        for symbol in reply.symbols:
            self.symbols.labels(symbol.name).inc()
            family = SYMBOLS[symbol.name].family
            if symbol.name == "RL_SKIPPED_LOCAL":
                self.skipped_local.inc()
                outcomes = dict.fromkeys(CHECKED_FAMILIES, "skipped")
            elif symbol.name.endswith("_TEMPFAIL"):
                outcomes.setdefault(family, "tempfail")
            elif family in CHECKED_FAMILIES:
                outcomes[family] = "fail"
        asked = {
            Family.PTR: True,
            Family.HELO: bool(request.helo),
            Family.MAILFROM: bool(request.mail_from),  # the null sender is not checked
        }
        for family in CHECKED_FAMILIES:
            outcome = outcomes.get(family, "pass" if asked[family] else "skipped")
            self.checks.labels(str(family), outcome).inc()
