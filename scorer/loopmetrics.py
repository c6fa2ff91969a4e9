"""Counters and histograms for code that runs on one event-loop thread.

prometheus_client's Counter and Histogram take a lock on every update. That is
right for threaded servers and pure overhead in an asyncio worker, where the
updates and the scrape (``/metrics``, served by the same loop) never overlap:
on a cached check the locked updates cost more than the check itself
(docs/performance.md). These keep plain floats per label set and hand
prometheus_client ordinary metric families when it scrapes, so the exposition
format, names and ``_total``/``_bucket``/``_sum``/``_count`` suffixes are
exactly those of the library's own types.

Not thread-safe, by design: update them from the loop's thread only.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class Series:
    """One label set of a counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramSeries:
    """One label set of a histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bucket() inlined: this runs once per message, and the call cost as much.
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def bucket(self, value: float) -> int:
        """The index in ``counts`` of the bucket ``value`` belongs to."""
        # bisect_left: a value equal to a bound belongs to that bucket (le = "<=").
        return bisect.bisect_left(self.bounds, value)


S = TypeVar("S", "Series", "HistogramSeries")


class _Family(Collector, Generic[S]):
    """The label sets of one family, each a series made by ``_new_series``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[Labels, S] = {}
        registry.register(self)
        if not self.labelnames:
            self.labels()  # exported as 0 from the start, like prometheus_client's own

    def _new_series(self) -> S:
        raise NotImplementedError

    def labels(self, *labels: str) -> S:
        """The series for ``labels``, created (at 0) on first use; bind it once, then update it."""
        series = self._series.get(labels)
        if series is None:
            if len(labels) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {labels}")
            series = self._series[labels] = self._new_series()
        return series


class LoopCounter(_Family[Series]):
    """A counter."""

    def _new_series(self) -> Series:
        return Series()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, series in self._series.items():
            family.add_metric(list(labels), series.value)
        yield family


class LoopHistogram(_Family[HistogramSeries]):
    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new_series(self) -> HistogramSeries:
        return HistogramSeries(self._bounds)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        for labels, series in self._series.items():
            cumulative, buckets = 0, []
            for le, count in zip(les, series.counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(list(labels), buckets, series.total)
            if self._bounds and self._bounds[0] < 0:
                # add_metric drops _sum and _count when a bucket is negative (OpenMetrics
                # has no sum then); the library's own Histogram still exports _count.
                names = dict(zip(self.labelnames, labels, strict=True))
                family.samples.append(Sample(f"{self.name}_count", names, float(cumulative)))
        yield family
