"""Keep CPython's full garbage collections short in a worker with large caches.

A full (generation 2) collection walks every object the collector tracks, and the
event loop, with every request in flight, stands still meanwhile. Full DNS and
reply caches hold some 450,000 such objects (an entry is a tuple, an outcome, a
records tuple, addresses); on the bench box one walk then took ~0.5 s, and they
came every ~1,500 cold checks while the caches filled: plugins time out at 1 s.

So after every full collection the survivors are frozen (``gc.freeze``): later
collections walk only what was allocated since (~30 ms at most on the same box,
and cold checks ran 30 % faster; docs/performance.md). What a frozen object
costs: it is no longer looked at for reference cycles. Cache entries and the
start-up data (config, Public Suffix List) hold none and are still freed by
reference counting the moment they are evicted or replaced; the frozen objects
that are alive at a freeze and form a cycle that later becomes garbage would
stay, and tests/test_gctuning.py checks that serving leaves none.
"""

from __future__ import annotations

import gc
from typing import Any

_FULL = 2  # the oldest generation


def _freeze_after_full_collection(phase: str, info: dict[str, Any]) -> None:
    # "stop": the collection is over, so only live objects are left to freeze.
    if phase == "stop" and info.get("generation") == _FULL:
        gc.freeze()


def keep_full_collections_short() -> None:
    """Freeze what start-up built, and the survivors of every full collection from now on.

    Call once per worker process, after start-up and before serving.
    """
    gc.collect()
    gc.freeze()
    if _freeze_after_full_collection not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full_collection)
