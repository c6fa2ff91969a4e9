"""The lock-free loop metrics export exactly what prometheus_client's own types do."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scorer.loopmetrics import LoopCounter, LoopHistogram

Samples = list[tuple[str, tuple[tuple[str, str], ...], float]]


def _samples(registry: CollectorRegistry) -> Samples:
    """Every sample, sorted: a list, not a set, so a sample exported twice shows."""
    text = generate_latest(registry).decode()
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")  # the library's own types add a creation time
    )


OBSERVATIONS = [-7.0, -1.0, 0.0, 0.0004, 0.0005, 0.003, 0.5, 1.0, 3.0, 99.0]


def test_histogram_matches_the_library_including_bucket_edges_and_negative_bounds() -> None:
    for buckets in [
        (0.0005, 0.001, 0.0025, 0.5, 1.0),
        (-5.0, -1.0, 0.0, 0.5, 1.0, 2.0),
        (0.0, 0.5, 1.0),  # a first bound of 0 is no negative one: _sum stays, _count once
        (0.5, 1.0, 10_000_000.0),  # le="1e+07", as Go (and the library) spell it
        (0.5, 1.0, math.inf),  # +Inf named as a bucket: still one +Inf bucket
    ]:
        ours, theirs = CollectorRegistry(), CollectorRegistry()
        loop = LoopHistogram("h_seconds", "doc", buckets, ["kind"], registry=ours)
        library = Histogram("h_seconds", "doc", ["kind"], buckets=buckets, registry=theirs)
        plain = LoopHistogram("plain", "doc", buckets, registry=ours)
        plain_library = Histogram("plain", "doc", buckets=buckets, registry=theirs)
        for index, value in enumerate(OBSERVATIONS):
            kind = "even" if index % 2 == 0 else "odd"
            loop.labels(kind).observe(value)
            library.labels(kind).observe(value)
        plain_library.observe(2.0)
        plain.labels().observe(2.0)
        assert _samples(ours) == _samples(theirs)


def test_counter_matches_the_library() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("c", "doc", ["a", "b"], registry=ours)
    library_counter = Counter("c", "doc", ["a", "b"], registry=theirs)
    unlabelled = LoopCounter("u", "doc", registry=ours)
    Counter("u", "doc", registry=theirs)  # never incremented: exported as 0 by both
    assert _samples(ours) == _samples(theirs)  # before anything asked for its series
    for a, b in [("x", "1"), ("x", "1"), ("y", "2")]:
        counter.labels(a, b).inc()
        library_counter.labels(a, b).inc()
    assert unlabelled.labels().value == 0.0
    assert _samples(ours) == _samples(theirs)


def test_wrong_label_count_is_refused() -> None:
    counter = LoopCounter("c", "doc", ["a"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"expected labels \('a',\)"):
        counter.labels("x", "y")
    with pytest.raises(ValueError, match=r"expected labels \('a',\), got \(\)"):
        counter.labels()


def test_histogram_bounds_are_sorted_and_may_be_only_inf() -> None:
    # The library refuses buckets out of order; these sort them. With no finite
    # bound at all, the one +Inf bucket still carries the count and the sum.
    shuffled, ordered = CollectorRegistry(), CollectorRegistry()
    for registry, buckets in ((shuffled, (1.0, 0.001, 0.5)), (ordered, (0.001, 0.5, 1.0))):
        histogram = LoopHistogram("h_seconds", "doc", buckets, registry=registry).labels()
        for value in OBSERVATIONS:
            histogram.observe(value)
    assert _samples(shuffled) == _samples(ordered)
    only_inf = CollectorRegistry()
    LoopHistogram("h_seconds", "doc", (math.inf,), registry=only_inf).labels().observe(2.5)
    assert _samples(only_inf) == [
        ("h_seconds_bucket", (("le", "+Inf"),), 1.0),
        ("h_seconds_count", (), 1.0),
        ("h_seconds_sum", (), 2.5),
    ]
