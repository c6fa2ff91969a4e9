"""One ``/metrics`` for all workers: each scrape shows the whole service.

With ``serve --workers N`` a scrape through the shared port reaches one worker,
and Prometheus keeps its connection (and so that worker) for good: it would see
1/N of the traffic and none of the other workers' failures. So every worker
keeps a snapshot of its samples in a directory the parent made (``snapshot``),
every second and before it answers a scrape, and the worker that answers sums
them all (``render``).

Why the totals never go backwards, which Prometheus would read as a counter
reset: a worker's own file only ever grows, the answering worker writes its own
before reading the others', and each file read is at least as new as the one the
previous scrape read. A worker that dies leaves its last snapshot; the parent
renames it ``dead-PID`` in one step (``retire``) and from then on its counters
and histograms still count, its gauges (in flight, cache entries) no longer do.

Merging, per sample: counters and histograms add up; gauges add up over live
workers, except ``rdns_scorer_config_last_reload_successful`` (the lowest: one
worker on a rejected config is enough to alert); ``_created`` takes the earliest;
info labels are the same everywhere and shown once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

SNAPSHOT_SECONDS = 1.0
DEAD_PREFIX = "dead-"
LOWEST = frozenset({"rdns_scorer_config_last_reload_successful"})
# Where to keep the snapshots: shared memory when there is some (a read-only
# container still has a writable /dev/shm), else the temporary directory.
SHARED_MEMORY = Path("/dev/shm")

Snapshot = list[dict[str, Any]]


def make_directory() -> Path | None:
    """A new private directory for the workers' snapshots, or None when none can be made."""
    for parent in (SHARED_MEMORY, None):
        if parent is not None and not os.access(parent, os.W_OK):
            continue
        try:
            return Path(tempfile.mkdtemp(prefix="rdns-scorer-metrics-", dir=parent))
        except OSError:
            continue
    return None


def remove_directory(directory: Path) -> None:
    for path in directory.glob("*"):
        path.unlink(missing_ok=True)
    directory.rmdir()


def retire(directory: Path, pid: int) -> None:
    """A worker died: keep its counters and histograms, drop its gauges (one rename)."""
    with contextlib.suppress(FileNotFoundError):  # it died before its first snapshot
        os.rename(directory / f"{pid}.json", directory / f"{DEAD_PREFIX}{pid}.json")


def _snapshot_of(registry: CollectorRegistry) -> Snapshot:
    return [
        {
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
        for family in registry.collect()
    ]


class WorkerMetrics:
    """This worker's part in the shared ``/metrics`` (see the module docstring)."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self._path = directory / f"{pid or os.getpid()}.json"

    @property
    def path(self) -> Path:
        """This worker's snapshot, rewritten every second: its mtime is the heartbeat
        the parent's watchdog reads."""
        return self._path

    def snapshot(self, registry: CollectorRegistry) -> None:
        """Write this worker's samples (atomically: a reader sees the old or the new)."""
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(_snapshot_of(registry)))
        os.replace(temporary, self._path)

    def render(self, registry: CollectorRegistry) -> bytes:
        """The exposition of every worker's samples together, this one's up to date."""
        self.snapshot(registry)
        merged = CollectorRegistry(auto_describe=False)
        merged.register(_Merged(_read_all(self.directory)))
        return generate_latest(merged)


def _read_all(directory: Path) -> list[tuple[Snapshot, bool]]:
    """Every snapshot and whether its worker is alive. A file renamed while we list
    (a worker retired) means listing again, so it is counted exactly once."""
    for _ in range(5):
        snapshots: list[tuple[Snapshot, bool]] = []
        try:
            for path in sorted(directory.glob("*.json")):
                snapshots.append(
                    (json.loads(path.read_text()), not path.name.startswith(DEAD_PREFIX))
                )
        except FileNotFoundError:
            continue
        return snapshots
    raise RuntimeError(f"{directory}: snapshots kept moving")


class _Merged(Collector):
    def __init__(self, snapshots: list[tuple[Snapshot, bool]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for snapshot, alive in self._snapshots:
            for family in snapshot:
                name, kind = family["name"], family["type"]
                if kind == "gauge" and not alive:
                    continue
                if name not in families:
                    families[name] = Metric(name, family["help"], kind)
                    values[name] = {}
                merged = values[name]
                for sample_name, labels, value in family["samples"]:
                    key = (sample_name, tuple(sorted(labels.items())))
                    merged[key] = _combine(kind, sample_name, merged.get(key), value)
        for name, metric in families.items():
            for (sample_name, labels), value in values[name].items():
                metric.add_sample(sample_name, dict(labels), value)
            yield metric


def _combine(kind: str, sample_name: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    if sample_name.endswith("_created"):
        return min(before, value)
    if kind == "info":
        return value
    if sample_name in LOWEST:
        return min(before, value)
    return before + value
