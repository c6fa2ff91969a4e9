"""The lock-free loop metrics export exactly what prometheus_client's own types do."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scorer.loopmetrics import LoopCounter, LoopHistogram

Samples = set[tuple[str, tuple[tuple[str, str], ...], float]]


def _samples(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")  # the library's own types add a creation time
    }


OBSERVATIONS = [-7.0, -1.0, 0.0, 0.0004, 0.0005, 0.003, 0.5, 1.0, 3.0, 99.0]


def test_histogram_matches_the_library_including_bucket_edges_and_negative_bounds() -> None:
    for buckets in [(0.0005, 0.001, 0.0025, 0.5, 1.0), (-5.0, -1.0, 0.0, 0.5, 1.0, 2.0)]:
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
    for a, b in [("x", "1"), ("x", "1"), ("y", "2")]:
        counter.labels(a, b).inc()
        library_counter.labels(a, b).inc()
    assert unlabelled.labels().value == 0.0
    assert _samples(ours) == _samples(theirs)


def test_wrong_label_count_is_refused() -> None:
    counter = LoopCounter("c", "doc", ["a"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"expected labels \('a',\)"):
        counter.labels("x", "y")
