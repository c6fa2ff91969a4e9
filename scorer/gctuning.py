"""Tune CPython's garbage collector for a worker with large caches and many checks in flight.

Full collections. A full (generation 2) collection walks every object the collector
tracks, and the event loop, with every request in flight, stands still meanwhile.
Full DNS and reply caches hold some 450,000 such objects (an entry is a tuple, an
outcome, a records tuple, addresses); on the bench box one walk then took ~0.5 s,
and they came every ~1,500 cold checks while the caches filled: plugins time out at
1 s. So after every full collection the survivors are frozen (``gc.freeze``): later
collections walk only what was allocated since (~30 ms at most on the same box, and
cold checks ran 30 % faster; docs/performance.md). What a frozen object costs: it is
no longer looked at for reference cycles. Cache entries and the start-up data
(config, Public Suffix List) hold none and are still freed by reference counting the
moment they are evicted or replaced; the frozen objects that are alive at a freeze
and form a cycle that later becomes garbage would stay, and tests/test_gctuning.py
checks that serving leaves none.

Young collections. CPython starts one every 700 tracked objects allocated (net of
those freed). A cold check leaves ~300 behind for a while (its cached outcomes, the
coroutines and futures of the checks in flight), so one came every few checks, and
each walked the in-flight state of all of them again, then promoted it to be walked
once more by the middle generation: ~10 % of a served cold check's CPU on the bench
box, pointer chasing that costs far more time than its instruction count says
(docs/performance.md, "Garbage-collection pauses"). A worker starts one every
YOUNG_COLLECTION_OBJECTS instead: most of that state is freed by reference counting
before any collection sees it, for young pauses of a few milliseconds. The price: a
full collection, about seven times rarer, walks all that was promoted since the last
freeze, several times more objects than at 700 while the caches fill (~125,000
against ~22,000 counted in process with 64 checks in flight; docs/performance.md,
"Young collections"), so the ~30 ms above holds at 700, not here.
"""

from __future__ import annotations

import gc
from typing import Any

_FULL = 2  # the oldest generation
# Allocations (net of frees) between young collections; CPython's default is 700.
YOUNG_COLLECTION_OBJECTS = 5_000


def _freeze_after_full_collection(phase: str, info: dict[str, Any]) -> None:
    # "stop": the collection is over, so only live objects are left to freeze.
    if phase == "stop" and info.get("generation") == _FULL:
        gc.freeze()


def tune_garbage_collection() -> None:
    """Freeze what start-up built, and the survivors of every full collection from now
    on; collect the young generation every YOUNG_COLLECTION_OBJECTS allocations.

    Call once per worker process, after start-up and before serving.
    """
    gc.collect()
    gc.freeze()
    if _freeze_after_full_collection not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full_collection)
    _young, middle, full = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_OBJECTS, middle, full)
