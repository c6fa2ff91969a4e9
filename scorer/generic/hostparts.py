"""Hostname normalisation, Public Suffix List split and tokenising.

The classifier only looks for address encodings and keywords in the part of a name that the
owner of the domain chose per host; the registered domain (``comcast.net``) and the public
suffix (``com.br``) say nothing about the individual host. This module finds those parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from scorer.memo import memoise
from scorer.names import MAX_NAME_OCTETS, icann_rule_depths, public_suffix_list
from scorer.records import record

#: A whole name: 1-63 character labels separated by single dots. Underscore is not a hostname
#: character, but it does occur in real PTR data and is harmless here, so it is tolerated.
#: Labels cannot contain dots, so the repetition cannot backtrack catastrophically.
_NAME_RE = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")


#: Label tokens: runs of letters or runs of digits. Splitting on the digit/letter boundary
#: turns ``dyn123`` into ``dyn``, ``123`` and ``adsl2`` into ``adsl``, ``2`` so keywords are
#: matched as whole tokens rather than as substrings (``cable`` must not fire on
#: ``cablelabs``, and ``res`` must not fire on ``resort``).
_TOKEN_RE = re.compile(r"[a-z]+|[0-9]+")


@record
class HostParts:
    """A normalised hostname split around its registered domain.

    For ``c-73-12-34-56.hsd1.ca.comcast.net``: ``host`` is ``c-73-12-34-56.hsd1.ca``,
    ``registered`` is ``comcast.net`` and ``registrable_label`` is ``comcast``.
    ``host`` is empty when the name is the registered domain itself (or a bare suffix).
    """

    name: str
    host: str
    registered: str
    registrable_label: str

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels of the host part, left to right (empty for a bare domain)."""
        return tuple(self.host.split(".")) if self.host else ()

    @property
    def address_region(self) -> str:
        """Text searched for encodings of the client address.

        This is the host part plus the registrable label. The registrable label is included
        because some providers register one domain per range and put octets in it, e.g.
        OVH's ``ip51.ip-149-202-82.eu`` (the ``.eu`` registration is ``ip-149-202-82``).
        A legit domain spelling out the exact client address there is not a realistic case.
        The public suffix is never included. Of an A-label only the ASCII it spells counts
        (``_ascii_part``): the digits of its encoded rest are no octets (in
        ``xn---01-5cd3efw3b``, почта-01, a "01-5" would be read as two octets).
        """
        return _ascii_text(".".join(part for part in (self.host, self.registrable_label) if part))

    @property
    def ascii_host(self) -> str:
        """The host part with each A-label cut to the ASCII it spells (``_ascii_part``)."""
        return _ascii_text(self.host)


def normalize_hostname(hostname: object) -> str | None:
    """Return ``hostname`` lower-cased without its trailing dot, or None if it is unusable.

    Unusable means: not a string, empty, not ASCII, too long, an empty label, a label with
    characters outside ``[a-z0-9_-]``, or an all-numeric top-level label (an IP literal such
    as ``192.0.2.1`` is not a hostname).
    """
    if not isinstance(hostname, str):
        return None
    if not hostname.isascii():  # before lower(): it makes the Kelvin sign U+212A an ASCII "k"
        return None
    name = hostname.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_NAME_OCTETS:
        return None
    if not _NAME_RE.fullmatch(name) or name.rsplit(".", 1)[-1].isdigit():
        return None
    return name


@memoise(maxsize=4096)
def _public_suffix(tail: str) -> str | None:
    """Public suffix of ``tail``, a name's last labels as deep as its TLD's deepest rule,
    cached: clients share a small set of ISP domains (``hsd1.ca.comcast.net``), and the
    lookup is the most expensive step of a classification. No rule matches more labels
    than that (names.icann_rule_depths), so the name's own suffix is the tail's."""
    suffix: str | None = public_suffix_list().publicsuffix(tail)
    return suffix


def split_host(name: str) -> HostParts:
    """Split a normalised name (see :func:`normalize_hostname`) with the Public Suffix List."""
    labels = name.split(".")
    suffix = _public_suffix(".".join(labels[-icann_rule_depths().get(labels[-1], 1) :]))
    suffix_labels = suffix.count(".") + 1 if suffix else len(labels)
    if suffix_labels >= len(labels):
        # The name is itself a public suffix (or a single label): nothing host-specific.
        return HostParts(name=name, host="", registered=name, registrable_label="")
    registered = ".".join(labels[-suffix_labels - 1 :])
    host = ".".join(labels[: -suffix_labels - 1])
    return HostParts(
        name=name,
        host=host,
        registered=registered,
        registrable_label=registered.split(".", 1)[0],
    )


def tokenise_labels(labels: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Pair each label with its letter-run and digit-run tokens (``dsl-01x`` -> dsl, 01, x),
    of what it spells in ASCII (``_ascii_part``)."""
    return [(label, _TOKEN_RE.findall(_ascii_part(label))) for label in labels]


def _ascii_text(name: str) -> str:
    """``name`` with each of its A-labels cut to the ASCII it spells (``_ascii_part``)."""
    if "xn--" not in name:
        return name
    return ".".join(map(_ascii_part, name.split(".")))


def _ascii_part(label: str) -> str:
    """The ASCII characters a label spells: of an A-label (RFC 5890 section 2.3.2.1),
    only its basic code points, before the last hyphen after ``xn--``. The rest encodes
    the other characters (RFC 3492 section 3.1): its letters and digits would read as
    keywords and numbers the name does not have (``xn--f1am2abo`` holds no "abo")."""
    if label.startswith("xn--"):
        return label[4:].rpartition("-")[0]
    return label
