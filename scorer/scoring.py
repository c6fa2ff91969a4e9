"""Scoring: hits and configured weights in, the reply's symbols and total out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from scorer.checks.hit import Hit
from scorer.protocol import SymbolResult


@dataclass(frozen=True, slots=True)
class Scored:
    symbols: tuple[SymbolResult, ...]
    # The reply's score: the symbols' scores added up, rounded as each of them is, so
    # 0.1 + 0.2 is 0.3, not 0.30000000000000004.
    total: float
    # Shadowed symbols and the score each would have added: kept out of the
    # reply's total, reported in metrics so admins can watch before enforcing.
    shadowed: tuple[tuple[str, float], ...]


def score_hits(
    hits: Iterable[Hit], weights: Mapping[str, float], is_shadowed: Callable[[str], bool]
) -> Scored:
    """One result per symbol (rspamd adds up repeated names), score = weight x confidence."""
    best: dict[str, tuple[float, Hit]] = {}
    for hit in hits:
        score = round(weights.get(hit.symbol, 0.0) * hit.confidence, 4)
        previous = best.get(hit.symbol)
        if previous is None or abs(score) > abs(previous[0]):
            best[hit.symbol] = (score, hit)
    symbols: list[SymbolResult] = []
    shadowed: list[tuple[str, float]] = []
    for name, (score, hit) in best.items():
        if score and is_shadowed(name):
            shadowed.append((name, score))
            symbols.append(
                SymbolResult(name, 0.0, (*hit.options, f"shadow: would score {score:+g}"), score)
            )
        else:
            symbols.append(SymbolResult(name, score, hit.options))
    total = round(sum(symbol.score for symbol in symbols), 4)
    return Scored(tuple(symbols), total, tuple(shadowed))
