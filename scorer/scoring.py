"""Scoring: hits and configured weights in, the reply's symbols and total out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scorer.checks.hit import Hit
from scorer.protocol import SymbolResult


def score_hits(hits: Iterable[Hit], weights: Mapping[str, float]) -> tuple[SymbolResult, ...]:
    """One result per symbol (rspamd adds up repeated names), score = weight x confidence."""
    results: dict[str, SymbolResult] = {}
    for hit in hits:
        score = round(weights.get(hit.symbol, 0.0) * hit.confidence, 4)
        previous = results.get(hit.symbol)
        if previous is None or abs(score) > abs(previous.score):
            results[hit.symbol] = SymbolResult(hit.symbol, score, hit.options)
    return tuple(results.values())
