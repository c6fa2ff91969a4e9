"""Prometheus metrics. Every name starts with ``rdns_scorer_`` and follows the naming guide.

Each app gets its own registry (tests build many apps in one process). Hot-path
bookkeeping uses pre-bound label children so a request costs a few dict
lookups; cache statistics are read at scrape time instead of counted per hit.
"""

from __future__ import annotations

import bisect
import platform
from collections.abc import Iterable, Iterator, Sized
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scorer import __version__
from scorer.allowlist import ALLOWLIST_SYMBOLS, covered_families
from scorer.dns.layer import QUERY_TYPES, RESULT_NAMES, DnsLayer
from scorer.loopmetrics import HistogramSeries, LoopCounter, LoopHistogram, Series
from scorer.protocol import CheckReply, CheckRequest, SymbolResult
from scorer.symbols import SYMBOLS, Family, reports_a_failure

# Latency buckets: the plugin's timeout is 1 s and a warm check takes well under
# a millisecond, so resolution matters most between 0.5 ms and 1 s. Edges just above
# the defaults of [dns] timeout (0.5 s) and request_deadline (0.8 s), which a query
# timing out and a check cut off take a little more than: with the next edge at 1 s,
# histogram_quantile put them near 1 s, the plugin's timeout.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.6, 0.8, 0.85, 0.9, 1.0,
    2.5,
)  # fmt: skip
DNS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.55, 0.6, 1.0)
# Score buckets. Most clean mail scores exactly 0, and histogram_quantile interpolates
# inside a bucket: with 0 the top of a bucket from -1, such mail had a median of -0.5.
# A bucket from -0.001 to 0 keeps it at ~0 and the negative scores' resolution too.
SCORE_BUCKETS = (
    -5.0, -1.0, -0.001, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
)  # fmt: skip

CHECKED_FAMILIES = (Family.PTR, Family.HELO, Family.MAILFROM)
CHECK_OUTCOMES = ("pass", "fail", "tempfail", "skipped")
MOVED_MEMO_ENTRIES = 4096  # distinct replies remembered by observe_check


class _CacheCollector(Collector):
    """Cache hits, misses and size, read from the DNS layer when Prometheus scrapes; and
    the size of the serving pipeline's reply cache."""

    def __init__(self, dns_layer: DnsLayer) -> None:
        self.dns = dns_layer
        self.replies: Sized = ()  # the serving pipeline's reply cache (Metrics.watch_caches)
        # What the layers replaced by reloads counted: the counters must not restart
        # (with several workers, one restarting would show as a reset of the sum).
        self.earlier_hits = 0
        self.earlier_misses = 0

    def repoint(self, dns_layer: DnsLayer) -> None:
        if dns_layer is not self.dns:
            self.earlier_hits += self.dns.cache.hits
            self.earlier_misses += self.dns.cache.misses
            self.dns = dns_layer

    def collect(self) -> Iterator[Metric]:
        cache = self.dns.cache
        yield CounterMetricFamily(
            "rdns_scorer_dns_cache_hits",
            "Lookups answered from the cache.",
            value=self.earlier_hits + cache.hits,
        )
        yield CounterMetricFamily(
            "rdns_scorer_dns_cache_misses",
            "Lookups not in the cache.",
            value=self.earlier_misses + cache.misses,
        )
        yield GaugeMetricFamily(
            "rdns_scorer_dns_cache_entries", "Outcomes in the cache now.", value=len(cache)
        )
        yield GaugeMetricFamily(
            "rdns_scorer_reply_cache_entries",
            "Whole replies in the reply cache now.",
            value=len(self.replies),
        )
        yield GaugeMetricFamily(
            "rdns_scorer_dns_resolver_trusted",
            "1 while the resolver's NXDOMAIN and NODATA count; 0 while it says the root has "
            "no SOA or a reverse tree does not exist, and they are zero-weight failures.",
            value=0 if self.dns.untrusted is not None else 1,
        )
        silent = GaugeMetricFamily(
            "rdns_scorer_dns_nameserver_silent",
            "1 while this nameserver, one of several, is found silent: it did not answer "
            "while a later one did, and has not answered since (it is asked last, 5 s at a "
            "time; mail is scored through the others).",
            labels=["nameserver"],
        )
        found_silent = self.dns.silent_nameservers
        for nameserver in self.dns.nameservers:
            silent.add_metric([str(nameserver)], 1 if nameserver in found_silent else 0)
        yield silent


class RequestSeries(dict[int, Series]):
    """One endpoint's request counters by status, each made on its first use."""

    def __init__(self, family: LoopCounter, endpoint: str) -> None:
        super().__init__()
        self._family = family
        self._endpoint = endpoint

    def __missing__(self, status: int) -> Series:
        series = self[status] = self._family.labels(self._endpoint, str(status))
        return series


class _Moved(NamedTuple):
    """What one distinct reply moves: its symbols (held, so their id stays theirs),
    the counters it increments, and the bucket of its score."""

    symbols: tuple[SymbolResult, ...]
    counters: tuple[Series, ...]
    score_bucket: int


# Why the supervisor of ``serve --workers N`` replaced a worker (scorer.workers).
RESTART_REASONS = ("exit", "signal", "watchdog")


def worker_restarts(registry: CollectorRegistry) -> Counter:
    """``rdns_scorer_worker_restarts_total`` in ``registry``, every reason's series there
    from the start. Each worker exports it at 0; the supervisor counts (scorer.workers),
    and the shared /metrics adds the two up (scorer.workermetrics)."""
    counter = Counter(
        "rdns_scorer_worker_restarts",
        "Workers the supervisor of serve --workers replaced, by why: exit (it ended), "
        "signal (killed), watchdog (its event loop stopped; killed by the supervisor).",
        ["reason"], registry=registry,
    )  # fmt: skip
    for reason in RESTART_REASONS:
        counter.labels(reason)
    return counter


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._cache_collector: _CacheCollector | None = None
        r = self.registry
        # The usual process_* families (memory, CPU, open files), which a registry of our
        # own leaves out: the caches' memory is what an admin sizes (operations.md).
        ProcessCollector(registry=r)
        # Updated per request or per DNS query: loop-local, lock-free (scorer.loopmetrics).
        self.requests = LoopCounter(
            "rdns_scorer_requests", "HTTP requests by endpoint and status.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.latency = LoopHistogram(
            "rdns_scorer_request_duration_seconds",
            "Time to answer a check (/v1/check answered 200), from its body read to the verdict.",
            LATENCY_BUCKETS, registry=r,
        ).labels()  # fmt: skip
        self.symbols = LoopCounter(
            "rdns_scorer_symbols", "Symbols returned, by name.", ["symbol"], registry=r
        )
        self.shadow_symbols = LoopCounter(
            "rdns_scorer_shadow_symbols",
            "Symbols returned at weight 0 because of shadow mode, by name.",
            ["symbol"], registry=r,
        )  # fmt: skip
        # Two counters, not one running-sum gauge: a negative weight would make that
        # go down, and a gauge starts again at 0 on a restart, which delta() over a
        # dashboard's range then reads as a score that went away.
        self.shadow_raised = LoopCounter(
            "rdns_scorer_shadow_score_raised",
            "Score shadowed symbols would have added (their positive weights), by name.",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.shadow_lowered = LoopCounter(
            "rdns_scorer_shadow_score_lowered",
            "Score shadowed symbols would have taken off (their negative weights), by name.",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.scores = LoopHistogram(
            "rdns_scorer_score", "Total score per checked message.", SCORE_BUCKETS, registry=r
        ).labels()
        self.checks = LoopCounter(
            "rdns_scorer_check_outcomes", "Check results by family and outcome.",
            ["family", "outcome"], registry=r,
        )  # fmt: skip
        self.dns_queries = LoopCounter(
            "rdns_scorer_dns_queries", "DNS queries sent, by record type and result.",
            ["rdtype", "result"], registry=r,
        )  # fmt: skip
        self.dns_repeated_failures = LoopCounter(
            "rdns_scorer_dns_repeated_failures",
            "Failed DNS queries under a zone (registered domain, or reverse /24 or /48) "
            "whose failure counted already and is not answered since (a dead zone asked "
            "again for each message): /readyz and the resolver alert leave them out.",
            registry=r,
        ).labels()
        self.dns_latency = LoopHistogram(
            "rdns_scorer_dns_query_duration_seconds", "Time for one DNS query.",
            DNS_BUCKETS, ["rdtype"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "rdns_scorer_requests_in_flight", "Checks being answered now.", registry=r
        )
        self.connections_open = Gauge(
            "rdns_scorer_connections_open",
            "HTTP connections open now (idle keep-alive ones too), of [server] max_connections.",
            registry=r,
        )
        self.connections_refused = LoopCounter(
            "rdns_scorer_connections_refused",
            "Connections closed with a 503 on accept because [server] max_connections were open.",
            registry=r,
        ).labels()
        self.skipped_local = LoopCounter(
            "rdns_scorer_skipped_local_clients",
            "Clients not checked because they are in skip_networks. Many of these mean "
            "a proxy or NAT hides the real client addresses.",
            registry=r,
        ).labels()
        self.reloads = Counter(
            "rdns_scorer_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        self.last_reload_ok = Gauge(
            "rdns_scorer_config_last_reload_successful",
            "1 if the latest config reload succeeded (or none was tried), 0 if it was rejected.",
            registry=r,
        )
        self.last_reload_ok.set(1)
        self.overloaded = LoopCounter(
            "rdns_scorer_overload_rejections",
            "Requests answered 503 because too many were in flight.",
            registry=r,
        ).labels()
        self.previous_token = LoopCounter(
            "rdns_scorer_previous_token_requests",
            "Check requests that presented one of [server] previous_tokens (refused ones "
            "too): once it stays flat, every client sends the current token.",
            registry=r,
        ).labels()
        worker_restarts(r)
        Info("rdns_scorer_build", "Version of the running service.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)  # so both series exist before the first reload
        # Every symbol and outcome series exists from the start: a dashboard shows 0,
        # not "no data". (The hot path needs no lookup: see observe_check.)
        for name, symbol in SYMBOLS.items():
            # Not the plugins' own symbols (RL_SCORER_*): the service never returns
            # them, and a series stuck at 0 would read as "no fail-open events".
            if symbol.family is not Family.PLUGIN:
                self.symbols.labels(name)
                # All three, so the dashboard's rates see a symbol's first shadowed hit
                # and raised - lowered matches for every symbol.
                self.shadow_symbols.labels(name)
                self.shadow_raised.labels(name)
                self.shadow_lowered.labels(name)
        for family in CHECKED_FAMILIES:
            for outcome in CHECK_OUTCOMES:
                self.checks.labels(str(family), outcome)
        # And the failures the share panels divide (a healthy server showed "No data"),
        # and the latency of each type (a fresh one's latency panel did).
        for rdtype in QUERY_TYPES:
            self.dns_latency.labels(rdtype)
            for result in RESULT_NAMES:
                self.dns_queries.labels(rdtype, result)
        self._requests_by_endpoint: dict[str, RequestSeries] = {}
        self._dns_children: dict[tuple[str, str], tuple[Series, HistogramSeries]] = {}
        self._moved_by_reply: dict[tuple[int, bool, bool], _Moved] = {}

    def watch_caches(self, dns_layer: DnsLayer, replies: Sized = ()) -> None:
        """Report ``dns_layer``'s cache from now on (a reload with new DNS settings swaps it),
        and ``replies``, the reply cache (every reload builds a new one).

        One collector, repointed: registering a second one would expose every cache series
        twice (the stale layer's first) and keep the old layer alive.
        """
        if self._cache_collector is None:
            self._cache_collector = _CacheCollector(dns_layer)
            self.registry.register(self._cache_collector)
        else:
            self._cache_collector.repoint(dns_layer)
        self._cache_collector.replies = replies

    def observe_dns(self, rdtype: str, result: str, seconds: float, repeated: bool) -> None:
        # Once per DNS query: the two series are looked up once per (type, result).
        series = self._dns_children.get((rdtype, result))
        if series is None:
            series = self._dns_children[rdtype, result] = (
                self.dns_queries.labels(rdtype, result),
                self.dns_latency.labels(rdtype),
            )
        series[0].value += 1
        series[1].observe(seconds)
        if repeated:
            self.dns_repeated_failures.value += 1

    def record_reload(self, success: bool) -> None:
        self.reloads.labels("success" if success else "failure").inc()
        self.last_reload_ok.set(1 if success else 0)

    def request_series(self, endpoint: str, statuses: Iterable[int] = ()) -> RequestSeries:
        """``endpoint``'s series of ``rdns_scorer_requests_total``, by status code; those
        of ``statuses`` exist from now on, at 0 (the rest on first use)."""
        series = self._requests_by_endpoint.get(endpoint)
        if series is None:
            series = self._requests_by_endpoint[endpoint] = RequestSeries(self.requests, endpoint)
        for status in statuses:
            series[status]
        return series

    def observe_check(self, request: CheckRequest, reply: CheckReply, seconds: float) -> None:
        # Runs once per message. A reply served from the reply cache shares its symbols
        # tuple with the first one, so the series it moves are worked out once per
        # distinct reply (the memo holds the tuple, so its id cannot be reused meanwhile).
        # HistogramSeries.observe() inlined, as the updates below are.
        latency = self.latency
        latency.counts[bisect.bisect_left(latency.bounds, seconds)] += 1
        latency.total += seconds
        if reply.shadowed:
            self._observe_shadowed(reply.shadowed)
        key = (id(reply.symbols), not request.helo, not request.mail_from)
        memo = self._moved_by_reply.get(key)
        if memo is None or memo.symbols is not reply.symbols:
            if len(self._moved_by_reply) >= MOVED_MEMO_ENTRIES:
                self._moved_by_reply.clear()
            # The score is the symbols' sum: its bucket is the reply's too.
            memo = self._moved_by_reply[key] = _Moved(
                reply.symbols, self._moved(request, reply), self.scores.bucket(reply.score)
            )
        # Series.inc() and HistogramSeries.observe() inlined: a call costs as much as
        # the update, and the score's bucket is already known.
        for series in memo.counters:
            series.value += 1
        # No sum: the score histogram's negative bounds leave it out (docs/monitoring.md).
        self.scores.counts[memo.score_bucket] += 1

    def _observe_shadowed(self, shadowed: tuple[tuple[str, float], ...]) -> None:
        for name, would_be in shadowed:
            self.shadow_symbols.labels(name).inc()
            if would_be >= 0:
                self.shadow_raised.labels(name).inc(would_be)
            else:
                self.shadow_lowered.labels(name).inc(-would_be)

    def _moved(self, request: CheckRequest, reply: CheckReply) -> tuple[Series, ...]:
        """The counters one check with this reply increments: symbols and outcomes."""
        moved = []
        outcomes: dict[Family, str] = {}
        exempted: set[Family] = set()  # families an allowlist entry took out of scoring
        for symbol in reply.symbols:
            moved.append(self.symbols.labels(symbol.name))
            family = SYMBOLS[symbol.name].family
            if symbol.name == "RL_SKIPPED_LOCAL":
                moved.append(self.skipped_local)
                outcomes = dict.fromkeys(CHECKED_FAMILIES, "skipped")
            elif symbol.name in ALLOWLIST_SYMBOLS:
                exempted.update(*(covered_families(entry) for entry in symbol.options))
            elif reports_a_failure(symbol.name):
                outcomes.setdefault(family, "tempfail")
            elif family in CHECKED_FAMILIES:
                outcomes[family] = "fail"
        outcomes.update(dict.fromkeys(exempted, "skipped"))
        # Validation turns every spelling of the null sender <> into "": not checked.
        asked = (True, bool(request.helo), bool(request.mail_from))
        for family, was_asked in zip(CHECKED_FAMILIES, asked, strict=True):
            outcome = outcomes.get(family, "pass" if was_asked else "skipped")
            moved.append(self.checks.labels(str(family), outcome))
        return tuple(moved)
