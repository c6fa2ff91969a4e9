"""A bounded, TTL-respecting cache of lookup outcomes (positive and negative)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """LRU-bounded mapping whose entries expire after their own TTL.

    TTLs are clamped to ``[min_ttl, max_ttl]``: the floor keeps a zero-TTL record
    from turning every message into a query, the ceiling bounds how long a stale
    answer survives a zone change.

    The bound counts an entry given a ``size`` above 1 as that many: a hostile zone's
    answer of 64 long names with escaped bytes holds ~55 KB, a hundred times a usual
    one, and ``max_entries`` of those would hold gigabytes.
    """

    def __init__(
        self,
        max_entries: int,
        min_ttl: float,
        max_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        # size - 1 of the entries whose size is above 1 (few: the usual entry is 1).
        self._extra: dict[Hashable, int] = {}
        self._extra_total = 0
        self._max_entries = max_entries
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get_entry(self, key: Hashable) -> tuple[float, V] | None:
        """``(expires, value)`` of a live entry (refreshed as most recently used), or None."""
        entry = self._items.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry[0] <= self._clock():
            self._remove(key)
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: Hashable, value: V, ttl: float, size: int = 1) -> float:
        """Cache ``value``, counted as ``size`` entries; return when it expires (now, when
        the cache is disabled or the value alone is above its bound: what the key held
        is dropped all the same, as no longer true)."""
        now = self._clock()
        if key in self._items:
            self._remove(key)
        if size > self._max_entries:
            return now
        expires = now + min(max(ttl, self._min_ttl), self._max_ttl)
        self._items[key] = (expires, value)
        if size > 1:
            self._extra[key] = size - 1
            self._extra_total += size - 1
        while len(self._items) + self._extra_total > self._max_entries:
            self._remove(next(iter(self._items)))  # the least recently used
        return expires

    def _remove(self, key: Hashable) -> None:
        del self._items[key]
        if self._extra:
            self._extra_total -= self._extra.pop(key, 0)

    def clear(self) -> None:
        self._items.clear()
        self._extra.clear()
        self._extra_total = 0


def question_key(name: str, rdtype: int) -> str:
    """The cache key of a question: one short string (a tuple of a name and a type
    would cost ~100 bytes more per entry; see docs/performance.md)."""
    return f"{name}|{rdtype}"
