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
    """

    def __init__(
        self,
        max_entries: int,
        min_ttl: float,
        max_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._max_entries = max_entries
        self._min_ttl = min_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: V, ttl: float) -> None:
        if self._max_entries <= 0:
            return
        ttl = min(max(ttl, self._min_ttl), self._max_ttl)
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
