"""DNS messages on the wire: build one query, classify one response.

A deliberately small codec for the four record types the scorer asks for (PTR,
A, AAAA, MX) plus the SOA of negative answers. It replaces dnspython's general
message layer on the hot path, where building and parsing full ``Message``
objects cost more than the rest of a check (see docs/performance.md).

``classify`` turns a response into the layer's outcomes and holds the contract:
NXDOMAIN vs NODATA with the negative TTL from the SOA (RFC 2308), SERVFAIL and
REFUSED as failures, and an answer whose records do not match the question as
MALFORMED, never as "does not exist".
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable

from scorer.dns.outcomes import (
    Answer,
    FailureKind,
    MxRecord,
    NotFound,
    NotFoundKind,
    TempFail,
)

TYPE_A = 1
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5
RCODE_YXDOMAIN = 6

FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100
# EDNS0 OPT record (RFC 6891): root owner, type OPT, UDP payload 1232 (the DNS
# flag day 2020 size), no extended rcode, no options.
EDNS_PAYLOAD = 1232
_OPT_RR = b"\x00" + struct.pack("!HHIH", TYPE_OPT, EDNS_PAYLOAD, 0, 0)

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

Outcome = Answer[object] | NotFound | TempFail


class Verdict(enum.Enum):
    """Responses that are not (yet) an outcome."""

    NOT_OURS = "not ours"  # wrong id/question or unparsable: keep waiting for the real one
    TRUNCATED = "truncated"  # TC bit: ask again over TCP
    TRY_NEXT = "try next"  # SERVFAIL/REFUSED: another nameserver may do better


class NameError_(ValueError):
    """A query name that cannot be put on the wire."""


# Label bytes that appear unescaped in presentation format; everything else is
# escaped exactly as dnspython does (``\\.``-style for specials, ``\\DDD`` otherwise).
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")
_SPECIAL = frozenset(b'"().;\\@$')


def _label_text(label: bytes) -> str:
    if _PLAIN.issuperset(label):
        return label.decode("ascii")
    out = []
    for byte in label:
        if byte in _SPECIAL:
            out.append("\\" + chr(byte))
        elif 0x20 < byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def name_text(labels: list[bytes]) -> str:
    """Lower-case presentation form without the final dot; ``""`` for the root."""
    if _PLAIN.issuperset(b"".join(labels)):  # the usual name: nothing to escape
        return b".".join(labels).decode("ascii").lower()
    return ".".join(_label_text(label) for label in labels).lower()


_NAME_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789-_.*"


def encode_name(name: str) -> bytes:
    """Wire form of a lower-case query name (trailing dot optional).

    Plain ASCII names take a fast path; names with escapes or non-ASCII
    characters go through dnspython's parser (IDNA, ``\\DDD``), so every name
    dnspython accepted is still accepted.
    """
    raw = name.encode("ascii", "replace")
    if raw in (b"", b"."):
        return b"\x00"
    if not raw.translate(None, _NAME_BYTES):
        labels = raw[:-1].split(b".") if raw.endswith(b".") else raw.split(b".")
        if not 0 < min(map(len, labels)) <= max(map(len, labels)) < 64:
            raise NameError_(f"bad label length in {name[:80]!r}")
        wire = b"".join([bytes((len(label),)) + label for label in labels]) + b"\x00"
    else:
        import dns.exception
        import dns.name

        try:
            encoded = dns.name.from_text(name).to_wire()
        except (dns.exception.DNSException, UnicodeError, ValueError) as error:
            raise NameError_(str(error)) from None
        wire = encoded or b"\x00"
    if len(wire) > 255:
        raise NameError_(f"name too long: {name[:80]!r}...")
    return wire


def relative_name(name: str) -> str:
    """``name`` without its final (root) dot. An escaped dot (``\\.``, RFC 1035
    section 5.1) belongs to the last label and stays: ``mail.odd\\.`` is the
    labels ``mail`` and ``odd.``."""
    if name.endswith(".") and (len(name) - 1 - len(name[:-1].rstrip("\\"))) % 2 == 0:
        return name[:-1]
    return name


def question(name_wire: bytes, rdtype: int) -> bytes:
    return name_wire + struct.pack("!HH", rdtype, CLASS_IN)


def make_query(query_id: int, question_wire: bytes) -> bytes:
    return _HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 1) + question_wire + _OPT_RR


def reverse_name(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``d.c.b.a.in-addr.arpa`` / nibbles ``.ip6.arpa``, lower case, no final dot."""
    packed = ip.packed
    if len(packed) == 4:
        return f"{packed[3]}.{packed[2]}.{packed[1]}.{packed[0]}.in-addr.arpa"
    nibbles = packed.hex()[::-1]
    return ".".join(nibbles) + ".ip6.arpa"


class _Malformed(Exception):
    pass


def _read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """Labels of the name at ``offset`` (following compression) and the offset after it."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    size = len(data)
    total = 0
    while True:
        if offset >= size:
            raise _Malformed("name runs past the message")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length >= 0xC0:
            if offset + 1 >= size:
                raise _Malformed("truncated compression pointer")
            if end < 0:
                end = offset + 2
            jumps += 1
            if jumps > 64:
                raise _Malformed("compression loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length > 63:
            raise _Malformed("bad label type")
        label = data[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise _Malformed("label runs past the message")
        total += length + 1
        if total > 255:
            raise _Malformed("name too long")
        labels.append(label)
        offset += 1 + length
    return labels, (end if end >= 0 else offset)


def _skip_name(data: bytes, offset: int) -> int:
    size = len(data)
    while True:
        if offset >= size:
            raise _Malformed("name runs past the message")
        length = data[offset]
        if length == 0:
            return offset + 1
        if length >= 0xC0:
            return offset + 2
        offset += 1 + length


def _parse_ptr(data: bytes, offset: int, rdlength: int) -> object:
    labels, _ = _read_name(data, offset)
    return name_text(labels)


def _parse_a(data: bytes, offset: int, rdlength: int) -> object:
    if rdlength != 4:
        raise _Malformed(f"A record of {rdlength} bytes")
    return ipaddress.IPv4Address(data[offset : offset + 4])


def _parse_aaaa(data: bytes, offset: int, rdlength: int) -> object:
    if rdlength != 16:
        raise _Malformed(f"AAAA record of {rdlength} bytes")
    return ipaddress.IPv6Address(data[offset : offset + 16])


def _parse_mx(data: bytes, offset: int, rdlength: int) -> object:
    if rdlength < 3:
        raise _Malformed("short MX record")
    (preference,) = _U16.unpack_from(data, offset)
    labels, _ = _read_name(data, offset + 2)
    return MxRecord(preference, name_text(labels))


def _parse_soa(data: bytes, offset: int, rdlength: int) -> object:
    """The primary nameserver's name: all /readyz needs from the root's SOA."""
    labels, _ = _read_name(data, offset)
    return name_text(labels)


_PARSERS: dict[int, Callable[[bytes, int, int], object]] = {
    TYPE_PTR: _parse_ptr,
    TYPE_A: _parse_a,
    TYPE_AAAA: _parse_aaaa,
    TYPE_MX: _parse_mx,
    TYPE_SOA: _parse_soa,
}


def _lower_labels(labels: list[bytes]) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in labels)


def _negative_ttl(data: bytes, offset: int, count: int, fallback: int) -> int:
    """TTL of a negative answer: the SOA's TTL capped by its MINIMUM (RFC 2308 section 5)."""
    for _ in range(count):
        offset = _skip_name(data, offset)
        rdtype, _rdclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += 10
        if rdtype == TYPE_SOA:
            rdata_end = offset + rdlength
            if rdlength < 22 or rdata_end > len(data):
                raise _Malformed("short SOA record")
            (minimum,) = _U32.unpack_from(data, rdata_end - 4)
            return min(ttl, minimum)
        offset += rdlength
    return fallback


def classify(
    data: bytes, query_id: int, question_wire: bytes, rdtype: int, negative_ttl: int
) -> Outcome | Verdict:
    """The outcome of one response to our query, or why it is not one yet."""
    if len(data) < 12:
        return Verdict.NOT_OURS
    rid, flags, qdcount, ancount, nscount, _arcount = _HEADER.unpack_from(data)
    qlen = len(question_wire)
    if (
        rid != query_id
        or not flags & FLAG_QR
        or qdcount != 1
        or data[12 : 12 + qlen].lower() != question_wire
    ):
        # Not an answer to this question (late, spoofed, or garbage): ignore it.
        return Verdict.NOT_OURS
    if flags & FLAG_TC:
        return Verdict.TRUNCATED
    rcode = flags & 0x000F
    try:
        if rcode == RCODE_NOERROR:
            return _answer(data, 12 + qlen, ancount, nscount, question_wire, rdtype, negative_ttl)
        if rcode == RCODE_NXDOMAIN:
            offset = 12 + qlen
            for _ in range(ancount):  # a CNAME chain that ends in a missing name
                offset = _skip_name(data, offset)
                offset += 10 + _RR_FIXED.unpack_from(data, offset)[3]
            ttl = _negative_ttl(data, offset, nscount, negative_ttl)
            return NotFound(NotFoundKind.NXDOMAIN, ttl)
    except Exception as error:  # any surprise in a hostile packet is a failure, never a crash
        return TempFail(FailureKind.MALFORMED, f"unparsable response: {error!r}"[:200])
    if rcode in (RCODE_SERVFAIL, RCODE_REFUSED):
        return Verdict.TRY_NEXT
    if rcode == RCODE_YXDOMAIN:
        return TempFail(FailureKind.MALFORMED, "YXDOMAIN")
    return TempFail(FailureKind.MALFORMED, f"rcode {rcode}")


def failure_for_rcode(data: bytes) -> TempFail:
    """SERVFAIL or REFUSED from the last nameserver asked."""
    rcode = _HEADER.unpack_from(data)[1] & 0x000F
    if rcode == RCODE_REFUSED:
        return TempFail(FailureKind.REFUSED, "REFUSED")
    return TempFail(FailureKind.SERVFAIL, "SERVFAIL")


def _answer(
    data: bytes,
    offset: int,
    ancount: int,
    nscount: int,
    question_wire: bytes,
    rdtype: int,
    negative_ttl: int,
) -> Outcome:
    parse = _PARSERS[rdtype]
    owner: tuple[bytes, ...] | None = None  # None: still the query name (fast path)
    qname: tuple[bytes, ...] | None = None  # the query name's labels, read when needed
    chain: list[tuple[bytes, ...]] | None = None  # the names a CNAME chain went through
    records: list[object] = []
    ttl = 0x7FFFFFFF
    other = False
    looped = False
    for _ in range(ancount):
        if data[offset : offset + 2] == b"\xc0\x0c":  # the usual pointer to the question
            offset += 2
            if owner is None:
                is_owner = True
            else:
                qname = qname or _lower_labels(_read_name(data, 12)[0])
                is_owner = owner == qname
        else:
            labels, offset = _read_name(data, offset)
            lowered = _lower_labels(labels)
            if owner is None:
                qname = qname or _lower_labels(_read_name(data, 12)[0])
                is_owner = lowered == qname
            else:
                is_owner = lowered == owner
        rr_type, rr_class, rr_ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += 10
        if offset + rdlength > len(data):
            raise _Malformed("record runs past the message")
        if is_owner and rr_class == CLASS_IN:
            if rr_type == rdtype:
                records.append(parse(data, offset, rdlength))
                ttl = min(ttl, rr_ttl)
            elif rr_type == TYPE_CNAME:
                target, _ = _read_name(data, offset)
                qname = qname or _lower_labels(_read_name(data, 12)[0])
                chain = chain or [qname]
                owner = _lower_labels(target)  # follow the chain, in order
                looped = looped or owner in chain
                chain.append(owner)
                ttl = min(ttl, rr_ttl)
            else:
                other = True
        else:
            other = True
        offset += rdlength
    if records:
        return Answer(tuple(records), int(ttl))
    if looped:
        # A chain that comes back to a name it passed has no end to hold data. RFC 1034
        # section 3.6.2: "CNAME loops [are] signalled as an error" (resolvers answer
        # SERVFAIL), so a failure, not a NODATA that would be cached and scored.
        return TempFail(FailureKind.MALFORMED, "CNAME loop")
    if other:
        # Records, but not for what we asked: a broken or spoofed answer is a
        # failure, never a "does not exist" that would be scored.
        return TempFail(FailureKind.MALFORMED, "answer does not match the question")
    return NotFound(NotFoundKind.NODATA, _negative_ttl(data, offset, nscount, negative_ttl))
