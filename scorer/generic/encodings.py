"""Finders for the client's own address spelled out inside a hostname.

Every finder works on the "address region" of a name (see
:attr:`scorer.generic.hostparts.HostParts.address_region`) and on textual forms of the
client address computed once per call. Nothing here guesses at other addresses: a name that
spells out a *different* address than the client's produces no match, which is what keeps
mail servers such as ``relay-192-0-2-10.example.net`` (seen from another IP) legit.

Matching is done with plain substring tests and one linear ``\\d+`` scan, so there is no
regex backtracking to worry about whatever the input.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv6Address

from scorer.generic.verdict import GenericEvidence
from scorer.records import record

_DIGIT_RUN_RE = re.compile(r"[0-9]+")
_HEX_DIGITS = frozenset("0123456789abcdef")
#: One more dash-separated IPv6 group (1-4 hex digits ending the token) after a match ...
_GROUP_AFTER_RE = re.compile(r"-[0-9a-f]{1,4}(?![^.-])")
#: ... or before it (1-4 hex digits starting the token), searched up to the match's start.
_GROUP_BEFORE_RE = re.compile(r"(?<![^.-])[0-9a-f]{1,4}-\Z")
#: The longest text _GROUP_BEFORE_RE can match: four hex digits and the dash.
_GROUP_BEFORE_CHARS = 5

#: Unpadded concatenations shorter than this are too ambiguous to count (``1234`` could be
#: 1.2.3.4, or just a counter); 7 digits means at least three octets have two digits.
_MIN_CONCAT_DIGITS = 7
#: A decimal integer below 2**24 would be an address in 0.0.0.0/8, never a mail client.
_MIN_INTEGER_ADDRESS = 1 << 24
#: The shortest EUI-64 form, unpadded interface-id groups: 0-ff-fe00-0 (a MAC has 12).
_MIN_EUI64_HEX_DIGITS = 8


class Strength(enum.Enum):
    """How much of the address an encoding pins down; the classifier maps it to confidence."""

    FULL = "full"  # the whole address, unambiguously (dotted, hex, integer, padded, IPv6)
    WEAK_FULL = "weak-full"  # whole address, ambiguous form (unpadded concat, EUI-64 tail)
    PARTIAL_STRONG = "partial-strong"  # three octets, or an IPv6 /64 prefix
    PARTIAL_WEAK = "partial-weak"  # the last two octets

    @property
    def is_full(self) -> bool:
        """True when the encoding identifies the whole address."""
        return self in (Strength.FULL, Strength.WEAK_FULL)


_STRENGTH_ORDER = {strength: rank for rank, strength in enumerate(Strength)}


@record
class EncodingMatch:
    """One place where (part of) the client address was found in the name."""

    evidence: GenericEvidence
    strength: Strength
    matched: str  # the text of the name that encodes the address (or part of it)
    #: A partial match writes an octet below 100 zero-padded to three digits (``097``):
    #: the mark of a name generated from the address, which people numbering servers
    #: (``mx-2-25``, ``m28-100``) do not write. Whole-address matches leave it False.
    zero_padded: bool = False


def find_encodings(ip: IPv4Address | IPv6Address, region: str) -> list[EncodingMatch]:
    """Return every encoding of ``ip`` found in ``region`` (lower-case), strongest first."""
    if isinstance(ip, IPv4Address):
        matches = _find_ipv4(int(ip), region, kind_prefix="ipv4")
    else:
        matches = _find_ipv6(ip, region)
    matches.sort(key=lambda m: _STRENGTH_ORDER[m.strength])
    return matches


# --------------------------------------------------------------------------- IPv4

#: Characters that may separate the octets of one dotted-style address group.
_SEPARATORS = "-._"


class _DigitRuns:
    """All maximal digit runs of a region, scanned once per call.

    ``octets[i]`` is the run's value when it can be an octet (1-3 digits, <= 255), else -1.
    Positions and separator groups are only needed to describe or vet a match, so they are
    computed on demand rather than for every name.
    """

    __slots__ = ("_layout", "octets", "region", "texts")

    def __init__(self, region: str) -> None:
        self.region = region
        self.texts: list[str] = _DIGIT_RUN_RE.findall(region)
        # For equal-length digit strings, string order is numeric order: no int() needed.
        self.octets: list[int] = [
            int(text) if len(text) < 3 or (len(text) == 3 and text <= "255") else -1
            for text in self.texts
        ]
        self._layout: list[tuple[int, int]] | None = None

    def windows(self, wanted: list[int]) -> Iterator[int]:
        """Index of each run where ``wanted`` octets appear consecutively, first to last."""
        values = self.octets
        size = len(wanted)
        first_value = wanted[0]
        for first in range(len(values) - size + 1):
            if values[first] == first_value and values[first : first + size] == wanted:
                yield first

    def _spans(self) -> list[tuple[int, int]]:
        """Each run's (start, end) in the region, computed on first use."""
        if self._layout is None:
            self._layout = [match.span() for match in _DIGIT_RUN_RE.finditer(self.region)]
        return self._layout

    def window_text(self, first: int, count: int) -> str:
        """The region text spanning ``count`` runs starting at run ``first``."""
        spans = self._spans()
        return self.region[spans[first][0] : spans[first + count - 1][1]]

    def _joined(self, index: int) -> bool:
        """True if run ``index`` is joined to run ``index + 1`` by separators alone."""
        spans = self._spans()
        gap = self.region[spans[index][1] : spans[index + 1][0]]
        return not gap.strip(_SEPARATORS)  # never empty: runs are maximal

    def joined_by_separators(self, first: int, count: int) -> bool:
        """True if runs ``first..first+count-1`` are joined only by separators:
        ``85-33`` is a pair of octets, ``113.pool5`` a number and a pool's index."""
        return all(self._joined(index) for index in range(first, first + count - 1))

    def neighbour_after(self, first: int, octets: tuple[int, ...]) -> bool:
        """True if the last-octet-first window at run ``first`` (d, a, b, c) runs on, by
        separators alone, into one more octet ``x`` other than d: then a, b, c, x is a
        neighbour's address written in order, and the d before it a host's index, as in
        ``out5-203-0-113-25`` or ``mx5.203-0-113-25`` seen from 203.0.113.5."""
        after = first + 4
        return (
            after < len(self.octets)
            and self.octets[after] >= 0
            and self.octets[after] != octets[3]
            and self.joined_by_separators(first, 5)
        )

    def in_full_address_group(self, first: int, count: int) -> bool:
        """True if runs ``first..first+count-1``, which are ``joined_by_separators``, sit in
        a group of >= 4 octet-valued runs joined only by separators, i.e. inside what
        reads as a complete dotted address.

        ``73-12-34-56`` is one group; ``host25-171-dynamic.52-79`` is two.
        """
        start, end = first, first + count - 1
        while start > 0 and self._joined(start - 1):
            start -= 1
        while end + 1 < len(self.texts) and self._joined(end):
            end += 1
        return sum(1 for value in self.octets[start : end + 1] if value >= 0) >= 4


#: Orders in which the four octets (a, b, c, d) are written in real schemes:
#: in order (Comcast ``c-73-12-34-56``), reversed (GCP ``56.34.12.35.bc``, SFR ``.rev.``)
#: and last-octet-first (Telefonica ``37.red-88-12-34``, OVH ``ip51.ip-149-202-82``).
_FULL_ORDERS: tuple[tuple[str, tuple[int, ...], str], ...] = (
    ("dotted", (0, 1, 2, 3), "in order"),
    ("dotted-reversed", (3, 2, 1, 0), "reversed"),
    ("dotted-rotated", (3, 0, 1, 2), "last octet first"),
)

#: Partial windows: which octet indexes, a description, and how strong the match is.
_PARTIAL_ORDERS: tuple[tuple[tuple[int, ...], str, Strength], ...] = (
    ((1, 2, 3), "last three octets", Strength.PARTIAL_STRONG),
    ((3, 2, 1), "last three octets reversed", Strength.PARTIAL_STRONG),
    ((0, 1, 2), "first three octets (the /24)", Strength.PARTIAL_STRONG),
    ((2, 3), "last two octets", Strength.PARTIAL_WEAK),
    ((3, 2), "last two octets reversed", Strength.PARTIAL_WEAK),
)


def _find_ipv4(value: int, region: str, kind_prefix: str) -> list[EncodingMatch]:
    """Find the IPv4 address ``value`` (as an integer) in ``region``.

    ``kind_prefix`` distinguishes IPv4 embedded in IPv6. Works on the integer rather than an
    ``IPv4Address`` because the ipaddress properties cost microseconds each.
    """
    octets = ((value >> 24) & 255, (value >> 16) & 255, (value >> 8) & 255, value & 255)
    ip = "{}.{}.{}.{}".format(*octets)
    runs = _DigitRuns(region)
    full = _find_ipv4_strings(ip, value, octets, region, runs, kind_prefix)
    if set(octets).issubset(runs.octets):  # cheap gate before scanning windows
        full.extend(_find_octet_windows(ip, octets, runs, kind_prefix))
    if full:
        return full
    # Partial windows are only worth reporting when nothing identifies the whole address.
    return _find_partial_windows(ip, octets, runs)


def _find_octet_windows(
    ip: str, octets: tuple[int, ...], runs: _DigitRuns, kind_prefix: str
) -> list[EncodingMatch]:
    """Four consecutive digit runs equal to the octets in one of :data:`_FULL_ORDERS`.

    Comparing integer values makes zero padding (``100-012-035-033``) and any separator
    (``-``, ``.``, ``_``, or letters as in ``37.red-88-12-34``) work without extra patterns.
    """
    matches: list[EncodingMatch] = []
    for kind, order, how in _FULL_ORDERS:
        windows = runs.windows([octets[i] for i in order])
        if kind == "dotted-rotated":
            windows = (first for first in windows if not runs.neighbour_after(first, octets))
        first = next(windows, -1)
        if first >= 0:
            text = runs.window_text(first, 4)
            evidence = GenericEvidence(f"{kind_prefix}-{kind}", f"{text} = {ip} {how}")
            matches.append(EncodingMatch(evidence, Strength.FULL, text))
    return matches


def _find_partial_windows(
    ip: str, octets: tuple[int, ...], runs: _DigitRuns
) -> list[EncodingMatch]:
    """Two or three consecutive digit runs equal to part of the address, joined by
    separators alone.

    Unlike a whole address (``37.red-88-12-34``: four octets in order are no accident),
    two or three numbers with letters between them are: ``mail113.pool5`` from
    203.0.113.5 is a host and a pool index. A window inside a complete dotted address is
    skipped too: ``relay-203-0-113-25`` seen from 203.0.113.26 names a neighbour. Each
    occurrence is judged, so one that fails (``a113b5``) hides no later one (``dyn-113-5``).
    """
    matches: list[EncodingMatch] = []
    if octets[2] not in runs.octets:  # every partial window contains the third octet
        return matches
    for order, how, strength in _PARTIAL_ORDERS:
        size = len(order)
        for first in runs.windows([octets[i] for i in order]):
            separate = runs.joined_by_separators(first, size)
            if separate and not runs.in_full_address_group(first, size):
                text = runs.window_text(first, size)
                padded = any(_is_zero_padded(run) for run in runs.texts[first : first + size])
                detail = f"{text} = {how} of {ip}{', zero-padded' if padded else ''}"
                evidence = GenericEvidence("partial-octets", detail)
                matches.append(EncodingMatch(evidence, strength, text, padded))
                break
    return matches


def _is_zero_padded(run: str) -> bool:
    """True for an octet written in three digits with a leading zero (``097``, ``005``),
    as ``%03d`` writes it. Two digits (``01``) are how people number servers (``mx01``)."""
    return len(run) == 3 and run[0] == "0"


def _find_ipv4_strings(
    ip: str,
    value: int,
    octets: tuple[int, ...],
    region: str,
    runs: _DigitRuns,
    kind_prefix: str,
) -> list[EncodingMatch]:
    """Hex, decimal-integer and concatenated-digit forms of the address."""
    matches: list[EncodingMatch] = []
    a, b, c, d = octets
    hex_form = f"{value:08x}"
    if hex_form.isdigit():
        # Eight decimal digits read as a number first (a date, an id: "bounce20240115"
        # from 32.36.1.21), as an unpadded concatenation does: ambiguous, and only when
        # it stands alone.
        if _contains_delimited(region, hex_form):
            detail = f"{hex_form} = {ip} in hex"
            evidence = GenericEvidence(f"{kind_prefix}-hex", detail)
            matches.append(EncodingMatch(evidence, Strength.WEAK_FULL, hex_form))
    elif hex_form in region:
        # Deutsche Telekom p5B0C3434, Virtua c911f022, Sky 5e0c3434.bb, 0x5b0c3434.
        detail = f"{hex_form} = {ip} in hex"
        evidence = GenericEvidence(f"{kind_prefix}-hex", detail)
        matches.append(EncodingMatch(evidence, Strength.FULL, hex_form))
    # IBM Cloud (SoftLayer) 5d.69.3da9.ip4.static.sl-reverse.com from 169.61.105.93: the
    # bytes in hex, last first, the first two joined.
    reversed_hex = f"{d:x}.{c:x}.{b:02x}{a:02x}"
    if _contains_delimited(region, reversed_hex):
        detail = f"{reversed_hex} = {ip} in hex, bytes reversed"
        evidence = GenericEvidence(f"{kind_prefix}-hex-reversed", detail)
        matches.append(EncodingMatch(evidence, Strength.FULL, reversed_hex))
    long_runs = [text for text in runs.texts if len(text) >= _MIN_CONCAT_DIGITS]
    if not long_runs:
        return matches
    padded = (f"{a:03d}{b:03d}{c:03d}{d:03d}", f"{d:03d}{c:03d}{b:03d}{a:03d}")
    concat = (f"{a}{b}{c}{d}", f"{d}{c}{b}{a}")
    integer = (str(value), f"{value:010d}") if value >= _MIN_INTEGER_ADDRESS else ()
    for text in long_runs:
        if text in integer:
            # Bell Canada bas1-montreal42-1279467834.dsl.bell.ca
            kind, how, strength = "int", "as a decimal integer", Strength.FULL
        elif padded[0] in text or padded[1] in text:
            # SoftBank softbank126012034056.bbtec.net, KDDI KD106154012034.
            how = "zero-padded" if padded[0] in text else "zero-padded, reversed"
            kind, strength = "padded", Strength.FULL
        elif text in concat:
            how = "concatenated" if text == concat[0] else "concatenated, reversed"
            kind, strength = "concat", Strength.WEAK_FULL
        else:
            continue
        detail = f"{text} = {ip} {how}"
        evidence = GenericEvidence(f"{kind_prefix}-{kind}", detail)
        matches.append(EncodingMatch(evidence, strength, text))
    return matches


# --------------------------------------------------------------------------- IPv6


def _contains_delimited(haystack: str, needle: str, label_end: bool = False) -> bool:
    """True if ``needle`` occurs in ``haystack`` not glued to further hex digits.

    Without the check ``2001-db8-1-2`` would match inside ``2001-db8-1-20`` and a compressed
    form ending in ``--5`` inside ``--50``. A compressed form (with ``--``) must not have
    another group on either side either: the ``::`` stands for as many zero groups as the
    written ones leave to eight (RFC 4291 section 2.2), so ``2001-db8--1-5`` is
    2001:db8::1:5 and ``2fff-2001-db8--1`` is 2fff:2001:db8::1, neither 2001:db8::1. With
    ``label_end`` the occurrence must also end its label, so a /64 prefix inside a longer
    (different) full address does not count.
    """
    compressed = "--" in needle
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        before_ok = start == 0 or haystack[start - 1] not in _HEX_DIGITS
        if label_end:
            after_ok = end == len(haystack) or haystack[end] == "."
        else:
            after_ok = end == len(haystack) or haystack[end] not in _HEX_DIGITS
        if before_ok and after_ok and not (compressed and _group_beside(haystack, start, end)):
            return True
        start = haystack.find(needle, start + 1)
    return False


def _group_beside(haystack: str, start: int, end: int) -> bool:
    """True if one more dash-separated group is written right before ``start`` or right
    after ``end``: a word (``dsl-``, ``-cafe1``, ``-c_1``) is none."""
    return bool(
        _GROUP_BEFORE_RE.search(haystack, max(0, start - _GROUP_BEFORE_CHARS), start)
        or _GROUP_AFTER_RE.match(haystack, end)
    )


def _compress(groups: list[str]) -> str:
    """RFC 5952 text form from unpadded groups: the longest run (>= 2) of zero groups
    becomes ``::``. Done by hand because ``IPv6Address.compressed`` costs ~10 us."""
    best_start, best_len, start = -1, 0, -1
    for index, group in enumerate([*groups, "end"]):
        if group == "0":
            start = index if start < 0 else start
            continue
        if start >= 0 and index - start > best_len:
            best_start, best_len = start, index - start
        start = -1
    if best_len < 2:
        return ":".join(groups)
    head = ":".join(groups[:best_start])
    tail = ":".join(groups[best_start + best_len :])
    return f"{head}::{tail}"


def _ipv6_full_forms(nibbles: str, groups: list[str], text: str) -> dict[str, str]:
    """Textual forms of the whole address mapped to their evidence kind.

    ``nibbles`` is the 32-hex-digit address, ``groups`` its eight unpadded groups and
    ``text`` its compressed form.
    """
    padded = [nibbles[i : i + 4] for i in range(0, 32, 4)]
    return {
        text.replace(":", "-"): "ipv6-groups",  # 2001-db8-1-2--5
        "-".join(padded): "ipv6-groups",  # 2001-0db8-0001-...
        "-".join(groups): "ipv6-groups",  # 2001-db8-1-2-0-0-0-5
        ".".join(padded): "ipv6-groups",  # 2a02.8108.1240.5a00.4971.db06.bacf.6edd
        ".".join(groups): "ipv6-groups",  # 2001.db8.1.2.0.0.0.5
        nibbles: "ipv6-hex",  # 20010db8000100020000000000000005
        ".".join(nibbles): "ipv6-nibbles",  # 2.0.0.1.0.d.b.8...
        ".".join(reversed(nibbles)): "ipv6-nibbles",  # ip6.arpa order
    }


def _ipv6_prefix_forms(nibbles: str, groups: list[str]) -> list[str]:
    """Forms of the /64 prefix, the part an ISP assigns per customer line."""
    return [
        "-".join(groups[:4]),
        "-".join(nibbles[i : i + 4] for i in range(0, 16, 4)),
        nibbles[:16],  # Deutsche Telekom p200300c8e70e1400.dip0.t-ipconnect.de
    ]


def _eui64_forms(nibbles: str) -> list[str]:
    """Forms of an EUI-64 interface id (``xxxx:xxff:fexx:xxxx``) and the MAC behind it."""
    iid = nibbles[16:]
    if iid[6:10] != "fffe":
        return []
    groups = [iid[i : i + 4] for i in range(0, 16, 4)]
    mac = f"{int(iid[:2], 16) ^ 0x02:02x}" + iid[2:6] + iid[10:]
    return [
        iid,
        "-".join(groups),
        "-".join(group.lstrip("0") or "0" for group in groups),
        mac,
        "-".join(mac[i : i + 2] for i in range(0, 12, 2)),
    ]


#: The upper half of an interface id whose lower half is an IPv4 address: zero
#: (``::a.b.c.d``), or ISATAP's IANA OUI 00-00-5e and 0xfe with the u bit clear or set
#: (set when the IPv4 address is global; the g bit is clear in a unicast address).
_IPV4_INTERFACE_ID_HIGH = frozenset((0, 0x00005EFE, 0x02005EFE))


def _embedded_ipv4_values(value: int) -> tuple[int, ...]:
    """The IPv4 addresses (as integers) the IPv6 address ``value`` visibly carries: none,
    one, or two.

    Covers IPv4-mapped (``::ffff:a.b.c.d``, RFC 4291 section 2.5.5.2), Teredo (RFC 4380
    section 4), 6to4 (``2002:AABB:CCDD::``, RFC 3056 section 2), ISATAP interface ids
    (``::5efe:a.b.c.d``, ``::200:5efe:a.b.c.d``, RFC 5214 section 6.1) and interface ids
    ``::a.b.c.d`` (upper 32 bits zero), which is how dual-stack operators commonly number
    hosts. A 6to4 site may number its hosts so under its prefix: then the address carries
    two, the site's and the host's. Never an address in 0.0.0.0/8 (no mail client, and
    its forms are mostly zeros: ``2002::1`` would find 0.0.0.0 in its own /64).
    """
    if value >> 32 == 0xFFFF:
        carried: tuple[int, ...] = (value & 0xFFFFFFFF,)
    elif value >> 96 == 0x20010000:  # Teredo: client address is stored inverted
        carried = (~value & 0xFFFFFFFF,)
    else:  # an interface id, after the 6to4 site's address if there is one
        carried = ((value >> 80) & 0xFFFFFFFF,) if value >> 112 == 0x2002 else ()
        host = value & 0xFFFFFFFF
        if (value >> 32) & 0xFFFFFFFF in _IPV4_INTERFACE_ID_HIGH and host not in carried:
            carried += (host,)
    return tuple(found for found in carried if found >= _MIN_INTEGER_ADDRESS)


def _first_delimited(region: str, forms: Iterable[str], label_end: bool = False) -> str | None:
    """The first of ``forms`` that :func:`_contains_delimited` finds in ``region``."""
    return next((form for form in forms if _contains_delimited(region, form, label_end)), None)


def _find_ipv6(ip: IPv6Address, region: str) -> list[EncodingMatch]:
    """Find full, EUI-64, embedded-IPv4 and /64-prefix encodings of ``ip``."""
    value = int(ip)
    matches: list[EncodingMatch] = []
    for carried in _embedded_ipv4_values(value):
        found = _find_ipv4(carried, region, kind_prefix="ipv6-embedded-ipv4")
        matches.extend(match for match in found if match.strength.is_full)
    nibbles = f"{value:032x}"
    groups = [nibbles[i : i + 4].lstrip("0") or "0" for i in range(0, 32, 4)]
    text = _compress(groups)  # same as str(ip), without its cost
    # A region with fewer hex digits than this address's shortest form holds none of its
    # forms, so they need not be built: the compressed form (2001-4--1), the /64 prefix
    # (2001-4-0-0), or an EUI-64 form (fewer than either when the prefix is long).
    fewest_digits = min(
        len(text) - text.count(":"), sum(map(len, groups[:4])), _MIN_EUI64_HEX_DIGITS
    )
    if sum(char in _HEX_DIGITS for char in region) < fewest_digits:
        return matches
    full_forms = _ipv6_full_forms(nibbles, groups, text)
    form = _first_delimited(region, full_forms)  # forms overlap, so one match is enough
    if form is not None:
        evidence = GenericEvidence(full_forms[form], f"{form} = {text}")
        matches.append(EncodingMatch(evidence, Strength.FULL, form))
    prefix_forms = _ipv6_prefix_forms(nibbles, groups)
    form = _first_delimited(region, _eui64_forms(nibbles))
    if form is not None and not matches:
        prefix = _prefix_beside(region, prefix_forms, form)
        if prefix is not None:
            # The /64 and the interface id are all 128 bits, however they are written
            # (host-001a2b3c4d5e.2001-db8-aa-1, or 2001-db8-aa-1-021a-2bff-fe3c-4d5e
            # with the id's groups padded and the prefix's not): the whole address.
            # Short enough for describe() whole: at most 19 + 19 + 39 characters of forms.
            detail = f"{prefix} (/64) + {form} (EUI-64 id) = {text}"
            evidence = GenericEvidence("ipv6-prefix-eui64", detail)
            return [EncodingMatch(evidence, Strength.FULL, f"{prefix} {form}")]
    if form is not None:
        evidence = GenericEvidence("ipv6-eui64", f"{form} = EUI-64 interface id of {text}")
        matches.append(EncodingMatch(evidence, Strength.WEAK_FULL, form))
    if matches:
        return matches
    form = _first_delimited(region, prefix_forms, label_end=True)
    if form is None:
        return []
    evidence = GenericEvidence("ipv6-prefix", f"{form} = /64 prefix of {text}")
    return [EncodingMatch(evidence, Strength.PARTIAL_STRONG, form)]


def _prefix_beside(region: str, prefix_forms: list[str], interface_id: str) -> str | None:
    """The form of the /64 prefix written beside ``interface_id`` in ``region``: ending a
    label of its own, or right before the id with one separator between them."""
    joined = {
        prefix + separator + interface_id: prefix
        for prefix in prefix_forms
        for separator in _SEPARATORS
    }
    form = _first_delimited(region, joined)
    if form is not None:
        return joined[form]
    return _first_delimited(region, prefix_forms, label_end=True)
