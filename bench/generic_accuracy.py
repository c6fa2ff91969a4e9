"""Measure the generic-PTR classifier against the labelled corpus.

Run from the repository root: ``python bench/generic_accuracy.py``. Prints one JSON object
with precision, recall, F1, the confusion counts, every miss, and throughput. Not a test:
tests/test_generic.py enforces the thresholds.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # allow running without installing the package
    sys.path.insert(0, str(ROOT))

from scorer.generic import classify  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "generic_ptr.tsv"
#: Passes over the corpus per timing round, and rounds. The best round is reported (as
#: ``timeit`` does): slower rounds measure other processes on the machine, not the code.
TIMING_PASSES = 20
TIMING_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled corpus row."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    hostname: str
    generic: bool
    confirmed: bool
    note: str


def load_corpus(path: Path = CORPUS) -> list[Row]:
    """Parse the TSV corpus (``#`` lines are comments)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        ip, hostname, label, confirmed, note = line.split("\t")
        rows.append(
            Row(ipaddress.ip_address(ip), hostname, label == "generic", confirmed == "1", note)
        )
    return rows


def evaluate(rows: list[Row]) -> dict[str, object]:
    """Confusion counts, derived scores and misses for ``rows``."""
    tp = fp = fn = tn = 0
    misses = []
    for row in rows:
        verdict = classify(row.ip, row.hostname, row.confirmed)
        if verdict.generic and row.generic:
            tp += 1
        elif verdict.generic:
            fp += 1
        elif row.generic:
            fn += 1
        else:
            tn += 1
        if verdict.generic != row.generic:
            misses.append(
                {
                    "type": "fp" if verdict.generic else "fn",
                    "ip": str(row.ip),
                    "hostname": row.hostname,
                    "confirmed": row.confirmed,
                    "confidence": verdict.confidence,
                    "evidence": verdict.describe(),
                    "note": row.note,
                }
            )
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "rows": len(rows),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "misses": misses,
    }


def throughput(rows: list[Row]) -> float:
    """Classifications per second: best of :data:`TIMING_ROUNDS` timed rounds.

    Timed without ``classify``'s own memo: the corpus fits in it, so after the warm-up
    every call would be a cache hit, and the figure that of a dict lookup (millions per
    second), not of a classification. The memos inside (the Public Suffix List's) stay,
    as they do for a service's clients.
    """
    work = inspect.unwrap(classify)
    for row in rows:  # warm-up: builds the Public Suffix List once
        work(row.ip, row.hostname, row.confirmed)
    best = float("inf")
    for _ in range(TIMING_ROUNDS):
        start = time.perf_counter()
        for _ in range(TIMING_PASSES):
            for row in rows:
                work(row.ip, row.hostname, row.confirmed)
        best = min(best, time.perf_counter() - start)
    return round(TIMING_PASSES * len(rows) / best, 1)


def main() -> None:
    """Print the accuracy and throughput report as one JSON object."""
    rows = load_corpus()
    report = evaluate(rows)
    report["classifications_per_second"] = throughput(rows)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
