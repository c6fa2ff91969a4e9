"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from scorer.pipeline import Pipeline
from scorer.protocol import SymbolResult, parse_request

T = TypeVar("T")


async def symbols_for(pipeline: Pipeline, ip: str, **fields: str) -> dict[str, SymbolResult]:
    """Run the whole pipeline for one client and index the reply's symbols by name."""
    reply = await pipeline.check(parse_request({"ip": ip, **fields}).request)
    names = [s.name for s in reply.symbols]
    assert len(names) == len(set(names)), f"a symbol appears twice: {names}"
    return {s.name: s for s in reply.symbols}


def eventually(probe: Callable[[], T], ready: Callable[[T], bool], timeout: float = 10.0) -> T:
    """``probe()`` once ``ready`` says its value is what the test waits for (a line in a
    log, a counter the server moves after it answered), polled: a fixed sleep before
    one look fails on a loaded machine. On timeout, the last value, for the assertion
    that follows to show."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value
