"""One ``/metrics`` for all workers: each scrape shows the whole service.

With ``serve --workers N`` a scrape through the shared port reaches one worker,
and Prometheus keeps its connection (and so that worker) for good: it would see
1/N of the traffic and none of the other workers' failures. So every worker
keeps a snapshot of its samples in a directory the parent made (``snapshot``),
every second, and the worker that answers a scrape adds its own live samples to
the others' snapshots (``render``).

Why the totals never go backwards, which Prometheus would read as a counter
reset: a worker's counters only grow, the answering worker shows its live values
and writes them for the next scrape before it answers (if it cannot, it shows
what it wrote last, as the others do), and each snapshot read is at least as new
as the one the previous scrape read. A worker that dies leaves
its last snapshot; the parent folds it into ``dead.json`` (``retire``), where its
counters and histograms still count and its gauges (in flight, cache entries) no
longer do. ``dead.json`` names the snapshots it absorbed, so a scrape that still
finds one beside it does not count it twice; only while they are there: ``retire``
removes a snapshot right after writing ``dead.json``, and its next rewrite forgets
the names of those gone (a name per worker that ever died would pile up). A scrape
that read a snapshot and then finds ``dead.json`` without its name checks that it
is still there, and reads again if not: it may have been absorbed, and its name
forgotten, meanwhile.

Merging, per sample: counters and histograms add up; gauges add up over live
workers, except ``rdns_scorer_config_last_reload_successful`` and
``rdns_scorer_dns_resolver_trusted`` (the lowest: one worker on a rejected config, or
distrusting its resolver, is enough to alert) and ``rdns_scorer_dns_nameserver_silent``
(the highest, for the same reason); ``process_start_time_seconds`` and
``process_max_fds`` the lowest too; ``_created`` takes the earliest;
info labels are the same everywhere and shown once.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from scorer.names import decimal_in

log = logging.getLogger("rdns_scorer")

SNAPSHOT_SECONDS = 1.0
DEAD = "dead.json"
LOWEST = frozenset(
    {
        "rdns_scorer_config_last_reload_successful",
        "rdns_scorer_dns_resolver_trusted",
        # The oldest worker's start, and the limit on open files (the same for each).
        "process_start_time_seconds",
        "process_max_fds",
    }
)
HIGHEST = frozenset({"rdns_scorer_dns_nameserver_silent"})
# Where to keep the snapshots: shared memory when there is some (a read-only
# container still has a writable /dev/shm), else the temporary directory.
SHARED_MEMORY = Path("/dev/shm")

Snapshot = list[dict[str, Any]]


PREFIX = "rdns-scorer-metrics-"
# A directory whose snapshots are older than this is no live service's: its workers
# rewrite theirs every SNAPSHOT_SECONDS.
STALE_SECONDS = 120.0
MAX_PID = 2**31 - 1  # pid_t: a larger number in a name is no process's (kill() refuses it)


def make_directory() -> Path | None:
    """A new private directory for the workers' snapshots, or None when none can be made.

    Named after this process, so that a later start can remove what a service killed
    with SIGKILL (outside systemd, which cleans up after it) left in shared memory.
    """
    for parent in (SHARED_MEMORY, None):
        if parent is not None and not os.access(parent, os.W_OK):
            continue
        try:
            directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
        except OSError:
            continue
        remove_stale_directories(directory.parent)
        return directory
    return None


def remove_stale_directories(parent: Path, now: float | None = None) -> None:
    """Remove this user's snapshot directories in ``parent`` of services that are gone:
    their process does not exist and nothing in them changed for STALE_SECONDS (a pid
    seen from another container's namespace proves nothing, a fresh snapshot does).
    A name without a pid in ASCII digits, as older versions wrote, is judged by its
    age alone."""
    now = time.time() if now is None else now
    for directory in parent.glob(f"{PREFIX}*"):
        owner = decimal_in(directory.name[len(PREFIX) :].partition("-")[0], 1, MAX_PID)
        try:
            if not _own_directory(directory.lstat()):
                continue
            # No pid (an older version's, or not ASCII digits within pid_t): not alive.
            if owner is not None and _alive(owner):
                continue
            paths = [directory, *directory.iterdir()]
            if max(path.stat().st_mtime for path in paths) > now - STALE_SECONDS:
                continue
            remove_directory(directory)
        except OSError:  # unreadable, or removed meanwhile: not ours to clean
            continue


def _own_directory(status: os.stat_result) -> bool:
    """Whether a path's ``lstat()`` is a directory of this user: not a symlink (anyone
    can name one like ours in /dev/shm, pointing to a directory whose files removing
    it would delete), nor another user's (theirs to clean, even for root)."""
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_directory(directory: Path) -> None:
    for path in directory.glob("*"):
        path.unlink(missing_ok=True)
    directory.rmdir()


def _snapshot_path(directory: Path, name: str) -> Path:
    return directory / f"worker-{name}.json"


def snapshot_name() -> str:
    """A name for one worker's snapshot, never reused: the supervisor's pid (it names
    each worker's before the fork, so that it knows which file to retire) and a random
    part, unique per worker (a pid can be reused)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def retire(directory: Path, name: str) -> None:
    """A worker died: fold its last snapshot into ``dead.json`` (counters and
    histograms; its gauges are gone with it), then remove the snapshot.

    Never raises: the supervisor calls this, and its exit would take every worker
    down. When ``dead.json`` cannot be written (a full /dev/shm), the snapshot stays
    where it is and still counts, as a live worker's: its gauges linger, but no
    count is lost.
    """
    source = _snapshot_path(directory, name)
    try:
        snapshot = json.loads(source.read_text())
        dead_path = directory / DEAD
        try:
            dead = json.loads(dead_path.read_text())
        except FileNotFoundError:
            dead = {"absorbed": [], "families": []}
        merged = list(_merge([(dead["families"], False), (snapshot, False)]))
        # The names of snapshots still there (this one until it is removed below):
        # one gone can no longer be found beside dead.json (and _read_once reads
        # again when one it read is gone and unnamed).
        kept = [n for n in dead["absorbed"] if _snapshot_path(directory, n).exists()]
        _write_atomically(dead_path, {"absorbed": [*kept, name], "families": merged})
    except FileNotFoundError:
        return  # it died before its first snapshot
    except OSError as error:
        log.error("cannot fold the metrics of a dead worker into %s: %s", directory, error)
        return
    source.unlink()


SUPERVISOR = "supervisor"  # the name of the supervisor's own snapshot


def write_supervisor_snapshot(directory: Path, registry: CollectorRegistry) -> None:
    """The supervisor's samples (the workers it replaced), counted in every scrape as a
    live worker's are. Never raises: the supervisor calls this, and its exit would take
    every worker down; what it could not write, a later write catches up with."""
    try:
        _write_atomically(_snapshot_path(directory, SUPERVISOR), _snapshot_of(registry))
    except OSError as error:
        log.error("cannot write the supervisor's metrics into %s: %s", directory, error)


def _write_atomically(path: Path, data: object) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)  # a reader sees the old file or the new one


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

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self._path = _snapshot_path(directory, name)
        self._written: Snapshot = []  # what the other workers read as this one's
        self._failing = False

    def snapshot(self, registry: CollectorRegistry) -> Snapshot:
        """This worker's samples as the other workers see them: written for their
        scrapes now, or, when that fails (a full /dev/shm), the last written. Showing
        live values the file does not have would make the totals jump back on the
        next scrape another worker answers: a counter reset to Prometheus."""
        samples = _snapshot_of(registry)
        try:
            _write_atomically(self._path, samples)
        except OSError as error:  # must not cost a check or a scrape
            if not self._failing:
                log.error("cannot write the metrics snapshot %s: %s", self._path, error)
                self._failing = True
            return self._written
        if self._failing:
            log.warning("the metrics snapshot %s is written again", self._path)
            self._failing = False
        self._written = samples
        return samples

    def render(self, registry: CollectorRegistry) -> bytes:
        """The exposition of every worker's samples together, this one's as written."""
        own = self.snapshot(registry)
        merged = CollectorRegistry(auto_describe=False)
        merged.register(_Merged([(own, True), *_read_others(self.directory, self._path)]))
        return generate_latest(merged)


def _read_others(directory: Path, own: Path) -> list[tuple[Snapshot, bool]]:
    """The other workers' snapshots and whether each is alive. A file that goes away
    while we read (a worker retired) means reading again, so it counts exactly once."""
    for _ in range(5):
        try:
            return _read_once(directory, own)
        except FileNotFoundError:
            continue
    raise RuntimeError(f"{directory}: snapshots kept moving")


def _read_once(directory: Path, own: Path) -> list[tuple[Snapshot, bool]]:
    # The live snapshots first, dead.json last: retire() writes dead.json before it
    # removes the snapshot it absorbed, so whatever this finds is counted once.
    live = {
        path: json.loads(path.read_text())
        for path in directory.glob("worker-*.json")
        if path != own
    }
    try:
        dead = json.loads((directory / DEAD).read_text())
    except FileNotFoundError:
        return [(snapshot, True) for snapshot in live.values()]
    absorbed = set(dead["absorbed"])
    unnamed = {
        path: snapshot
        for path, snapshot in live.items()
        if path.stem.removeprefix("worker-") not in absorbed
    }
    # dead.json forgets a name once its snapshot is gone (retire): one read above and
    # gone now may be in dead.json's counts, its name forgotten. stat() raises
    # FileNotFoundError for it, and the caller reads again.
    for path in unnamed:
        path.stat()
    return [(dead["families"], False)] + [(snapshot, True) for snapshot in unnamed.values()]


class _Merged(Collector):
    def __init__(self, snapshots: list[tuple[Snapshot, bool]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        for family in _merge(self._snapshots):
            metric = Metric(family["name"], family["help"], family["type"])
            for sample_name, labels, value in family["samples"]:
                metric.add_sample(sample_name, labels, value)
            yield metric


def _merge(snapshots: Iterable[tuple[Snapshot, bool]]) -> Iterator[dict[str, Any]]:
    """The families of ``snapshots`` (each with whether its worker is alive) added up."""
    families: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for snapshot, alive in snapshots:
        for family in snapshot:
            name, kind = family["name"], family["type"]
            if kind in ("gauge", "info") and not alive:
                continue
            if name not in families:
                families[name] = {"name": name, "type": kind, "help": family["help"]}
                values[name] = {}
            merged = values[name]
            for sample_name, labels, value in family["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                merged[key] = _combine(kind, sample_name, merged.get(key), value)
    for name, family in families.items():
        samples = [
            [sample, dict(labels), value] for (sample, labels), value in values[name].items()
        ]
        yield {**family, "samples": samples}


def _combine(kind: str, sample_name: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    if sample_name.endswith("_created"):
        return min(before, value)
    if kind == "info":
        return value
    if sample_name in LOWEST:
        return min(before, value)
    if sample_name in HIGHEST:
        return max(before, value)
    return before + value
