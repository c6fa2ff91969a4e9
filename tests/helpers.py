"""Small helpers shared by the test modules."""

from __future__ import annotations

from scorer.pipeline import Pipeline
from scorer.protocol import SymbolResult, parse_request


async def symbols_for(pipeline: Pipeline, ip: str, **fields: str) -> dict[str, SymbolResult]:
    """Run the whole pipeline for one client and index the reply's symbols by name."""
    reply = await pipeline.check(parse_request({"ip": ip, **fields}).request)
    names = [s.name for s in reply.symbols]
    assert len(names) == len(set(names)), f"a symbol appears twice: {names}"
    return {s.name: s for s in reply.symbols}
