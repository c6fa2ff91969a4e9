"""Adapter from the generic-name classifier's verdict to a hit (PTR and HELO share it)."""

from __future__ import annotations

from scorer.checks.hit import Hit
from scorer.generic import classify
from scorer.names import IPAddress, shown_name
from scorer.text import option


def generic_hit(symbol: str, ip: IPAddress, name: str, confirmed: bool, role: str) -> Hit | None:
    """A hit scaled by the classifier's confidence, or None if ``name`` is not generic."""
    verdict = classify(ip, name, confirmed)
    if not verdict.generic:
        return None
    evidence = (option(f"{role}={shown_name(name)}"), *(option(e) for e in verdict.describe()))
    return Hit(symbol, evidence, verdict.confidence)
