"""What a check returns: a symbol name, its evidence and how sure it is."""

from __future__ import annotations

from scorer.records import record


@record
class Hit:
    symbol: str
    options: tuple[str, ...] = ()
    confidence: float = 1.0  # the weight is multiplied by this; 1.0 for yes/no checks
