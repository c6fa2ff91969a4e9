"""Scoring: hits and configured weights in, the reply's symbols and total out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from scorer.checks.hit import Hit
from scorer.protocol import SymbolResult
from scorer.records import record


@record
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
        would_score = weights.get(hit.symbol, 0.0) * hit.confidence
        previous = best.get(hit.symbol)
        if previous is None or abs(would_score) > abs(previous[0]):
            best[hit.symbol] = (would_score, hit)
    symbols: list[SymbolResult] = []
    shadowed: list[tuple[str, float]] = []
    for name, (would_score, hit) in best.items():
        score = round(would_score, 4)
        if would_score and is_shadowed(name):
            # Unrounded where rounding to 4 places leaves nothing (a weight of 0.0002 at
            # a confidence of 0.2): a shadow_score of 0 is not sent, and SpamAssassin,
            # with the admin's own score for the symbol, took it for one to score.
            shadow_score = score or would_score
            shadowed.append((name, shadow_score))
            option = f"shadow: would score {shadow_score:+g}"
            symbols.append(SymbolResult(name, 0.0, (*hit.options, option), shadow_score))
        else:
            symbols.append(SymbolResult(name, score, hit.options))
    total = round(sum(symbol.score for symbol in symbols), 4)
    return Scored(tuple(symbols), total, tuple(shadowed))
