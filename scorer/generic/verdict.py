"""Result types of the generic-PTR classifier.

Kept in their own module so that the finder modules (encodings, keywords, providers) can
produce evidence without importing the classifier, which would create an import cycle.
"""

from __future__ import annotations

from typing import NamedTuple

#: Longest string :meth:`GenericVerdict.describe` emits per evidence item; keeps log lines
#: and the CLI's TSV output readable.
MAX_DESCRIPTION_LENGTH = 120


class GenericEvidence(NamedTuple):
    """One observation that contributed to (or was considered for) a verdict.

    ``kind`` is a short machine-friendly tag such as ``"ipv4-hex"`` or ``"keyword"``;
    ``detail`` explains it for a person, e.g. ``"5b0c3434 = 91.12.52.52 in hex"``.
    """

    kind: str
    detail: str


class GenericVerdict(NamedTuple):
    """Whether a PTR name is a provider-assigned "generic" name, and why.

    ``confidence`` is in [0, 1] and is 0.0 whenever ``generic`` is False. ``evidence`` may
    be non-empty for a legit verdict, e.g. the provider exemption or a partial octet match
    that lacked supporting evidence, so operators can see what was considered.
    """

    generic: bool
    confidence: float
    evidence: tuple[GenericEvidence, ...]

    def describe(self) -> list[str]:
        """Return one short printable string per evidence item (at most 120 chars each)."""
        return [_shorten(f"{item.kind}: {item.detail}") for item in self.evidence]


def _shorten(text: str) -> str:
    """Cut ``text`` to :data:`MAX_DESCRIPTION_LENGTH`, marking the cut with an ellipsis."""
    if len(text) <= MAX_DESCRIPTION_LENGTH:
        return text
    return text[: MAX_DESCRIPTION_LENGTH - 3] + "..."


def not_generic(*evidence: GenericEvidence) -> GenericVerdict:
    """Build a legit verdict (confidence 0.0) carrying the given evidence."""
    return GenericVerdict(generic=False, confidence=0.0, evidence=tuple(evidence))
