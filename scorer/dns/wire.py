"""DNS messages on the wire: build one query, classify one response.

A deliberately small codec for the four record types the scorer asks for (PTR,
A, AAAA, MX) plus the SOA of negative answers. It replaces dnspython's general
message layer on the hot path, where building and parsing full ``Message``
objects cost more than the rest of a check (see docs/performance.md).

``classify`` turns a response into the layer's outcomes and holds the contract:
NXDOMAIN vs NODATA with the negative TTL from the SOA (RFC 2308), SERVFAIL and
REFUSED as failures, and an answer whose records do not match the question as
MALFORMED, never as "does not exist". Queries carry an EDNS0 OPT record, except to a
nameserver that answered one with FORMERR or NOTIMP and no OPT record of its own: RFC
6891 section 7, ``make_query(..., edns=False)`` and ``TryNext.without_opt``.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable
from typing import NamedTuple

from scorer.dns.outcomes import (
    Answer,
    FailureKind,
    MxRecord,
    NotFound,
    NotFoundKind,
    Outcome,
    TempFail,
)

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_DNAME = 39
TYPE_OPT = 41
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_YXDOMAIN = 6

FLAG_QR = 0x8000
OPCODE_MASK = 0x7800  # RFC 1035 section 4.1.1: 0 is QUERY, the only one we send
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


class Verdict(enum.Enum):
    """Responses that are not (yet) an outcome."""

    NOT_OURS = "not ours"  # wrong id/question or unparsable: keep waiting for the real one
    TRUNCATED = "truncated"  # TC bit: ask again over TCP


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
    dnspython accepted is still accepted. Either way the wire form is lower case:
    ``classify`` compares the echoed question in lower case (RFC 4343), and an escape
    may spell a capital letter (``\\065`` is ``A``).
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
            encoded = dns.name.from_text(name).canonicalize().to_wire()
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


def make_query(query_id: int, question_wire: bytes, edns: bool = True) -> bytes:
    """A recursive query; without ``edns``, no OPT record, for a nameserver that does
    not take one (RFC 6891 section 7), whose UDP replies are then 512 bytes at most."""
    if edns:
        return _HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 1) + question_wire + _OPT_RR
    return _HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 0) + question_wire


def reverse_name(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``d.c.b.a.in-addr.arpa`` / nibbles ``.ip6.arpa``, lower case, no final dot."""
    packed = ip.packed
    if len(packed) == 4:
        return f"{packed[3]}.{packed[2]}.{packed[1]}.{packed[0]}.in-addr.arpa"
    nibbles = packed.hex()[::-1]
    return ".".join(nibbles) + ".ip6.arpa"


class _Malformed(Exception):
    pass


def _follow_pointer(data: bytes, offset: int, jumps: int) -> tuple[int, int]:
    """Where the compression pointer at ``offset`` leads (RFC 1035 section 4.1.4), and
    the pointers followed with it: more than 64 in one name is taken for a loop."""
    if offset + 1 >= len(data):
        raise _Malformed("truncated compression pointer")
    if jumps >= 64:
        raise _Malformed("compression loop")
    return ((data[offset] & 0x3F) << 8) | data[offset + 1], jumps + 1


def _read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """Labels of the name at ``offset`` (following compression) and the offset after it."""
    labels: list[bytes] = []
    return labels, _walk_name(data, offset, None, labels)


# Names checked in one message: (octets on the wire, compression pointers followed) of
# the name starting at each offset. A hostile reply otherwise had its 256 authority
# records each point at one 255-octet name of 127 labels, read again for every owner and
# SOA field: ~100,000 labels, 20-70 ms of the loop for 9 KiB.
_Known = dict[int, tuple[int, int]]


def _name_end(data: bytes, offset: int, known: _Known) -> int:
    """The offset after the name at ``offset``, checked as ``_read_name`` reads one,
    without its labels; a name reached again (an owner pointing at one read before) is
    not read again."""
    return _walk_name(data, offset, known, None)


def _walk_name(data: bytes, offset: int, known: _Known | None, labels: list[bytes] | None) -> int:
    """The offset after the name at ``offset``, read strictly: within the message, label
    types, at most 255 octets (RFC 1035 section 2.3.4) and 64 compression pointers (more
    is taken for a loop). Its labels go to ``labels``; names met in ``known`` are not
    read again, and those read are added to it."""
    size = len(data)
    visited: list[tuple[int, int, int]] = []  # (offset, octets and pointers before it)
    end = -1
    octets = jumps = 0
    while True:
        seen = known.get(offset) if known is not None else None
        if seen is not None:
            octets += seen[0]
            jumps += seen[1]
            if octets > 255:
                raise _Malformed("name too long")
            if jumps > 64:
                raise _Malformed("compression loop")
            break
        if known is not None:
            visited.append((offset, octets, jumps))
        if offset >= size:
            raise _Malformed("name runs past the message")
        length = data[offset]
        if length == 0:
            octets += 1  # the root's zero octet
            offset += 1
            break
        if length >= 0xC0:
            if end < 0:
                end = offset + 2
            offset, jumps = _follow_pointer(data, offset, jumps)
            continue
        if length > 63:
            raise _Malformed("bad label type")
        if offset + 1 + length > size:
            raise _Malformed("label runs past the message")
        octets += length + 1
        if octets + 1 > 255:  # with the root's octet to come
            raise _Malformed("name too long")
        if labels is not None:
            labels.append(data[offset + 1 : offset + 1 + length])
        offset += 1 + length
    if known is not None:
        for start, octets_before, jumps_before in visited:
            known[start] = (octets - octets_before, jumps - jumps_before)
    return end if end >= 0 else offset


def _check_name_rdata(data: bytes, offset: int, rdlength: int, known: _Known) -> None:
    """RDATA that is exactly one name (RFC 1035 section 3.2.1), checked."""
    if _name_end(data, offset, known) != offset + rdlength:
        raise _Malformed("name does not fill its record")


def _name_rdata(data: bytes, offset: int, rdlength: int) -> list[bytes]:
    """The labels of a record whose RDATA is exactly one name (RFC 1035 section 3.2.1:
    RDATA is RDLENGTH octets, no more and no less)."""
    labels, end = _read_name(data, offset)
    if end != offset + rdlength:
        raise _Malformed("name does not fill its record")
    return labels


def _parse_ptr(data: bytes, offset: int, rdlength: int) -> object:
    return name_text(_name_rdata(data, offset, rdlength))


def _sized(kind: str, rdlength: int, size: int) -> None:
    """An address record is its address, no more and no less: A 4 octets (RFC 1035
    section 3.4.1), AAAA 16 (RFC 3596 section 2.2)."""
    if rdlength != size:
        raise _Malformed(f"{kind} record of {rdlength} bytes")


def _check_a(data: bytes, offset: int, rdlength: int, known: _Known) -> None:
    _sized("A", rdlength, 4)


def _check_aaaa(data: bytes, offset: int, rdlength: int, known: _Known) -> None:
    _sized("AAAA", rdlength, 16)


def _exchange_length(rdlength: int) -> int:
    """The octets of an MX record's exchange: after its 2-octet preference, at least the
    root's one (RFC 1035 section 3.3.9)."""
    if rdlength < 3:
        raise _Malformed("short MX record")
    return rdlength - 2


def _check_mx(data: bytes, offset: int, rdlength: int, known: _Known) -> None:
    _check_name_rdata(data, offset + 2, _exchange_length(rdlength), known)


def _parse_a(data: bytes, offset: int, rdlength: int) -> object:
    _sized("A", rdlength, 4)
    return ipaddress.IPv4Address(data[offset : offset + 4])


def _parse_aaaa(data: bytes, offset: int, rdlength: int) -> object:
    _sized("AAAA", rdlength, 16)
    return ipaddress.IPv6Address(data[offset : offset + 16])


def _parse_mx(data: bytes, offset: int, rdlength: int) -> object:
    exchange = _name_rdata(data, offset + 2, _exchange_length(rdlength))
    (preference,) = _U16.unpack_from(data, offset)
    return MxRecord(preference, name_text(exchange))


def _parse_soa(data: bytes, offset: int, rdlength: int) -> object:
    """The primary nameserver's name: all /readyz needs from the root's SOA (checked
    whole, as any record is)."""
    _soa_minimum(data, offset, rdlength, {})
    return name_text(_read_name(data, offset)[0])


_PARSERS: dict[int, Callable[[bytes, int, int], object]] = {
    TYPE_PTR: _parse_ptr,
    TYPE_A: _parse_a,
    TYPE_AAAA: _parse_aaaa,
    TYPE_MX: _parse_mx,
    TYPE_SOA: _parse_soa,
}


def _check_soa(data: bytes, offset: int, rdlength: int, known: _Known) -> None:
    _soa_minimum(data, offset, rdlength, known)


# The records whose RDATA is checked wherever they are, beside the answer or after it:
# every type our answers, a negative answer or a referral carry (RFC 1035 section
# 3.2.1: RDATA is RDLENGTH octets of its type's form; a record of a type we know that
# does not read means the packet is broken, whatever else it holds). The DNAME too,
# which an answer through one carries beside the chain (RFC 6672 section 2.1: its
# RDATA is one name).
_RDATA_CHECKS: dict[int, Callable[[bytes, int, int, _Known], None]] = {
    TYPE_PTR: _check_name_rdata,
    TYPE_A: _check_a,
    TYPE_AAAA: _check_aaaa,
    TYPE_MX: _check_mx,
    TYPE_NS: _check_name_rdata,
    TYPE_CNAME: _check_name_rdata,
    TYPE_DNAME: _check_name_rdata,
    TYPE_SOA: _check_soa,
}


def _ttl(value: int) -> int:
    """RFC 2181 section 8: a TTL with the most significant bit set is read as zero."""
    return value if value < 0x80000000 else 0


def _lower_labels(labels: list[bytes]) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in labels)


class TryNext(NamedTuple):
    """This nameserver failed (SERVFAIL, REFUSED, a referral...): another may do better;
    ``failure`` is the outcome when none does."""

    failure: TempFail
    # A FORMERR or NOTIMP without an OPT record (_NO_EDNS_SIGNS): to a query with one,
    # the nameserver may not take EDNS, and is asked again without it (the transport
    # knows which query went how). Read from ARCOUNT alone: the only additional record of
    # our query is its OPT record, so such a reply with additional records carries one
    # (echoed or its own) or is something stranger than a server that does not know EDNS.
    without_opt: bool = False


class _Tail(NamedTuple):
    """What a negative answer needs from the sections after the answer."""

    soa_ttl: int | None  # RFC 2308 section 5: the SOA's TTL capped by its MINIMUM
    has_ns: bool
    extended_rcode: int  # the upper 8 bits of the RCODE, from the OPT record (RFC 6891)


def _soa_minimum(data: bytes, offset: int, rdlength: int, known: _Known) -> int:
    """MINIMUM of the SOA whose RDATA is at ``offset``: after MNAME, RNAME and four 32-bit
    fields (RFC 1035 section 3.3.13), where the RDATA must end exactly (section 3.2.1)."""
    end = _name_end(data, _name_end(data, offset, known), known)
    if end + 20 != offset + rdlength:
        raise _Malformed("SOA record does not fill its length")
    (minimum,) = _U32.unpack_from(data, end + 16)
    return int(minimum)


def _tail(data: bytes, offset: int, nscount: int, arcount: int, known: _Known) -> _Tail:
    if nscount + arcount > MAX_TAIL_RECORDS:
        # Each record costs a strict read of its owner: thousands of them (a 64 KiB
        # answer of pointers to a 255-octet name) held the loop for 0.15 s a datagram.
        raise _Malformed(f"{nscount + arcount} authority and additional records")
    soa_ttl: int | None = None
    has_ns = False
    extended: int | None = None
    for index in range(nscount + arcount):
        # Owners read as strictly as answers (bounds, loops, label types, 255 octets):
        # a "does not exist" whose SOA cannot be read is no answer.
        offset = _name_end(data, offset, known)
        rdtype, _rdclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += 10
        rdata_end = offset + rdlength
        if rdata_end > len(data):
            raise _Malformed("record runs past the message")
        if rdtype == TYPE_SOA:
            minimum = _soa_minimum(data, offset, rdlength, known)
            if index < nscount:
                # Of several (no zone has two: a broken or forged answer), the shortest.
                negative = min(_ttl(ttl), _ttl(minimum))
                soa_ttl = negative if soa_ttl is None else min(soa_ttl, negative)
        elif rdtype in _RDATA_CHECKS:
            _RDATA_CHECKS[rdtype](data, offset, rdlength, known)
        if index < nscount:
            has_ns = has_ns or rdtype == TYPE_NS
        elif rdtype == TYPE_OPT:
            if extended is not None:
                # RFC 6891 section 6.1.1: one OPT record per message. Of two, which one's
                # extended RCODE holds? Read in order, the last one's did.
                raise _Malformed("two OPT records")
            extended = ttl >> 24
        offset = rdata_end
    if offset != len(data):
        # Bytes the counts do not cover (a record hidden after ANCOUNT 0...): the header
        # and the message disagree, so "does not exist" cannot be trusted.
        raise _Malformed("data after the last record")
    return _Tail(soa_ttl, has_ns, extended or 0)


def _negative(
    kind: NotFoundKind,
    data: bytes,
    offset: int,
    counts: tuple[int, int],
    fallback_ttl: int,
    known: _Known,
    chain: _ChainEnd | None = None,
) -> NotFound | TryNext:
    tail = _tail(data, offset, *counts, known)
    if tail.extended_rcode:
        # RFC 6891 section 6.1.3: the real RCODE is not NOERROR or NXDOMAIN (BADVERS...).
        low = RCODE_NXDOMAIN if kind is NotFoundKind.NXDOMAIN else RCODE_NOERROR
        rcode = tail.extended_rcode << 4 | low
        return TryNext(TempFail(FailureKind.MALFORMED, f"extended rcode {rcode}"))
    if kind is NotFoundKind.NODATA and tail.soa_ttl is None and tail.has_ns:
        # RFC 2308 section 2.2: NS records and no SOA make a referral, not NODATA: this
        # server does not recurse for us (an authoritative or lame one).
        return TryNext(TempFail(FailureKind.REFUSED, "referral: the nameserver does not recurse"))
    if chain is not None and kind is NotFoundKind.NODATA and tail.soa_ttl is None:
        # A chain that stops without data and without the SOA of the zone it ends in
        # was not followed (an authoritative server answers up to its zone's edge, RFC
        # 1034 section 4.3.2 step 3a): nothing is known of its end, which a resolver
        # following it would have answered, or proved empty with that SOA.
        return TryNext(
            TempFail(
                FailureKind.REFUSED, "CNAME chain not followed: the nameserver does not recurse"
            )
        )
    ttl = fallback_ttl if tail.soa_ttl is None else tail.soa_ttl
    if chain is None:
        return NotFound(kind, ttl)
    # The "no" is about the chain's last name, and holds only while every link does
    # (RFC 2308 section 2.1): a re-pointed CNAME must not stay "missing" for the SOA's TTL.
    return NotFound(kind, min(ttl, chain.ttl), name_text(list(chain.name)))


# RFC 1035 section 4.1.1; SERVFAIL, REFUSED, FORMERR, NOTIMP and the rest: this server
# could not or would not answer, another may (RFC 1034 section 5.3.3).
_RCODE_FAILURES = {
    RCODE_SERVFAIL: TempFail(FailureKind.SERVFAIL, "SERVFAIL"),
    RCODE_REFUSED: TempFail(FailureKind.REFUSED, "REFUSED"),
    RCODE_FORMERR: TempFail(FailureKind.MALFORMED, "FORMERR"),
    RCODE_NOTIMP: TempFail(FailureKind.MALFORMED, "NOTIMP"),
}
# The RCODEs that, without an OPT record, may say "no EDNS here". RFC 6891 section 7 has a
# server that does not take EDNS answer FORMERR without one; RFC 2671 section 5.3, which
# it replaced and which the servers that predate EDNS were met with, expected NOTIMP too
# (or FORMERR, or SERVFAIL), and Unbound asks again without EDNS after either (its
# serviced_udp_callback). Not SERVFAIL: a resolver says that of every zone it cannot
# reach, and an EDNS-less retry of each would hide nothing but cost a round trip.
_NO_EDNS_SIGNS = {
    rcode: TryNext(_RCODE_FAILURES[rcode], without_opt=True)
    for rcode in (RCODE_FORMERR, RCODE_NOTIMP)
}


def _error_reply(rcode: int, arcount: int) -> TryNext:
    """The failure an error RCODE makes (a FORMERR or NOTIMP with no additional record:
    maybe no EDNS)."""
    if arcount == 0 and rcode in _NO_EDNS_SIGNS:
        return _NO_EDNS_SIGNS[rcode]
    return TryNext(_RCODE_FAILURES.get(rcode) or TempFail(FailureKind.MALFORMED, f"rcode {rcode}"))


def _unreadable(detail: str) -> TryNext:
    return TryNext(TempFail(FailureKind.MALFORMED, detail[:200]))


def classify(
    data: bytes, query_id: int, question_wire: bytes, rdtype: int, negative_ttl: int
) -> Outcome | Verdict | TryNext:
    """The outcome of one response to our query, or why it is not one yet."""
    if len(data) < 12:
        return Verdict.NOT_OURS
    rid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if rid != query_id or flags & (FLAG_QR | OPCODE_MASK) != FLAG_QR:  # a reply to a QUERY
        return Verdict.NOT_OURS
    rcode = flags & 0x000F
    if qdcount == 0 and rcode in _RCODE_FAILURES:
        # RFC 1035 section 4.1.1 does not make a server echo the question in an error
        # reply, and some leave it out (dnspython takes these too): waiting for an echo
        # would turn a refusal into a timeout that holds every message for the whole
        # timeout. Our ID on our socket is the match; a forged one is a failure anyway.
        return _error_reply(rcode, arcount)
    qlen = len(question_wire)
    if qdcount != 1 or data[12 : 12 + qlen].lower() != question_wire:
        # Not an answer to this question (late, spoofed, or garbage): ignore it.
        return Verdict.NOT_OURS
    if flags & FLAG_TC:
        return Verdict.TRUNCATED
    try:
        counts = (nscount, arcount)
        if rcode == RCODE_NOERROR:
            return _answer(data, 12 + qlen, ancount, counts, rdtype, negative_ttl)
        if rcode == RCODE_NXDOMAIN:
            nxdomain = NotFoundKind.NXDOMAIN
            return _answer(data, 12 + qlen, ancount, counts, rdtype, negative_ttl, nxdomain)
    # A reply that cannot be read is this nameserver's failure, as a SERVFAIL is: it may
    # have broken it (a middlebox cutting it short without TC, stray bytes its counts do
    # not cover), and another may answer whole (RFC 1034 section 5.3.3; dnspython asks the
    # next one too). One with nobody left to ask makes this failure the outcome.
    except _Malformed as error:  # what our reading found wrong, in its words
        return _unreadable(f"unparsable response: {error}")
    except struct.error:  # a record's fixed fields (type, class, TTL...) past the end
        return _unreadable("unparsable response: record cut short")
    except Exception as error:  # any surprise in a hostile packet is a failure, never a crash
        return _unreadable(f"unparsable response: {error!r}")
    if rcode == RCODE_YXDOMAIN:  # RFC 6672 section 2.2: a DNAME made the name too long
        return TempFail(FailureKind.MALFORMED, "YXDOMAIN")
    return _error_reply(rcode, arcount)


# Resolvers give up on longer chains (BIND after 16 links); so do we, before a
# hostile 64 KiB reply of thousands of links costs the loop any time.
MAX_CNAME_LINKS = 16

# One answer record: its owner (None: a pointer to the question's name, the usual
# case), type (-1 when not class IN), TTL, and where its RDATA is.
_Record = tuple[tuple[bytes, ...] | None, int, int, int, int]


# More answer records than any PTR, A, AAAA or MX answer of a mail host has. A hostile
# 64 KiB answer (thousands of records whose owners point at a 250-octet name) otherwise
# costs the loop ~0.2 s to read and the cache ~350 KB per entry.
MAX_ANSWER_RECORDS = 64
# Authority and additional records together: a referral's NS and glue, or the A and
# AAAA records a resolver without minimal responses adds for every MX host of an answer.
MAX_TAIL_RECORDS = 4 * MAX_ANSWER_RECORDS


class _Records(NamedTuple):
    """An answer section read: every record, and the usual answer parsed on the way
    (``usual``: every record is at the question's name and of the asked type)."""

    records: list[_Record]
    values: list[object]
    ttl: int
    usual: bool
    end: int  # the offset after the section


def _answer(
    data: bytes,
    offset: int,
    ancount: int,
    counts: tuple[int, int],
    rdtype: int,
    negative_ttl: int,
    kind: NotFoundKind = NotFoundKind.NODATA,
) -> Outcome | TryNext:
    """The outcome of a NOERROR response (NODATA when it has no answer), or, with
    ``kind`` NXDOMAIN, of an NXDOMAIN, whose answer section may only hold the CNAME chain
    that led to the missing name (RFC 6604 section 3): the asked records, or records
    off the chain, contradict it, and a contradicted "does not exist" must not be
    scored."""
    parse = _PARSERS[rdtype]
    known: _Known = {}
    read = _read_answer(data, offset, ancount, rdtype, parse, known)
    nxdomain = kind is NotFoundKind.NXDOMAIN
    if read.usual and read.values and not nxdomain:
        answer = Answer(tuple(read.values), read.ttl)
        return _unless_extended_rcode(answer, data, read.end, counts, known)
    chained = _follow_chain(data, read.records, rdtype, parse)
    if nxdomain and isinstance(chained, Answer):
        return TempFail(FailureKind.MALFORMED, "NXDOMAIN with an answer")
    if chained is None or isinstance(chained, _ChainEnd):
        return _negative(kind, data, read.end, counts, negative_ttl, known, chained)
    if isinstance(chained, TempFail):
        return chained
    return _unless_extended_rcode(chained, data, read.end, counts, known)


_ROOT_OPT = b"\x00" + TYPE_OPT.to_bytes(2, "big")  # an OPT record's root owner and type


def _unless_extended_rcode(
    answer: Answer[object], data: bytes, offset: int, counts: tuple[int, int], known: _Known
) -> Answer[object] | TryNext:
    """``answer``, unless the OPT record says the RCODE is not NOERROR after all (RFC 6891
    section 6.1.3: BADVERS and the like); the sections after it must read, too."""
    if counts == (0, 0):
        if offset != len(data):  # bytes no count covers: the header and body disagree
            return TryNext(TempFail(FailureKind.MALFORMED, "data after the last record"))
        return answer
    if (
        counts == (0, 1)
        and data[offset : offset + 3] == _ROOT_OPT
        and len(data) >= offset + 11
        and offset + 11 + _U16.unpack_from(data, offset + 9)[0] == len(data)
    ):
        # The usual tail of an answer to our EDNS query, the OPT record alone, read in
        # place (owner, type, class, then the TTL whose first octet is the extended
        # RCODE): _tail would cost a fifth of classifying the whole answer.
        extended = data[offset + 5]
    else:
        extended = _tail(data, offset, *counts, known).extended_rcode
    if extended:
        return TryNext(TempFail(FailureKind.MALFORMED, f"extended rcode {extended << 4}"))
    return answer


def _read_answer(
    data: bytes,
    offset: int,
    ancount: int,
    rdtype: int,
    parse: Callable[[bytes, int, int], object],
    known: _Known,
) -> _Records:
    if ancount > MAX_ANSWER_RECORDS:
        raise _Malformed(f"{ancount} answer records (at most {MAX_ANSWER_RECORDS} are read)")
    records: list[_Record] = []
    # The usual answer, parsed on the way: every record at the question's name (a
    # pointer to it) and of the asked type. Anything else takes _follow_chain.
    values: list[object] = []
    owners: dict[bytes, tuple[bytes, ...]] = {}
    ttl = 0x7FFFFFFF
    usual = True
    size = len(data)
    for _ in range(ancount):
        owner: tuple[bytes, ...] | None = None
        pointer = data[offset : offset + 2]
        if pointer == b"\xc0\x0c":
            offset += 2
        elif pointer in owners:  # another owner pointing where one before did
            owner = owners[pointer]
            offset += 2
        else:
            labels, end = _read_name(data, offset)
            owner = _lower_labels(labels)
            if end == offset + 2:  # a pointer alone: its name is read once per message
                owners[pointer] = owner
            offset = end
        rr_type, rr_class, rr_ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += 10
        if offset + rdlength > size:
            raise _Malformed("record runs past the message")
        if rr_class != CLASS_IN:
            rr_type = -1
        if usual and owner is None and rr_type == rdtype:
            values.append(parse(data, offset, rdlength))
            ttl = min(ttl, _ttl(rr_ttl))
        else:
            usual = False
            # Read or not by _follow_chain, a record beside the answer that does not
            # read as its type (a 3-octet AAAA, a CNAME to a name that cannot be) breaks
            # the packet as one after it does.
            check = _RDATA_CHECKS.get(rr_type)
            if check is not None:
                check(data, offset, rdlength, known)
        records.append((owner, rr_type, rr_ttl, offset, rdlength))
        offset += rdlength
    return _Records(records, values, ttl, usual, offset)


class _ChainEnd(NamedTuple):
    """Where a CNAME chain without data ends: its last name, and the TTL of its links."""

    name: tuple[bytes, ...]
    ttl: int


def _follow_chain(
    data: bytes, records: list[_Record], rdtype: int, parse: Callable[[bytes, int, int], object]
) -> Answer[object] | TempFail | _ChainEnd | None:
    """The records of the asked type at the end of the CNAME chain from the question's
    name, in whatever order the answer lists them; a failure for a chain that loops or
    for records that answer something else; where the chain ends when it has links
    but no data; None when there is no chain and no data."""
    qname = _lower_labels(_read_name(data, 12)[0])
    owned = [(qname if r[0] is None else r[0], *r[1:]) for r in records]
    name, chain, ttl = qname, {qname}, 0x7FFFFFFF
    while True:
        here = [r for r in owned if r[0] == name]
        found = [r for r in here if r[1] == rdtype]
        aliases = [r for r in here if r[1] == TYPE_CNAME]
        if found and aliases:
            # RFC 1034 section 3.6.2, RFC 2181 section 10.1: an alias has no other data.
            # Its records or the alias's target's: which one answers? Neither.
            raise _Malformed("a CNAME and other data at one name")
        if found:
            values = tuple(parse(data, start, length) for _, _, _, start, length in found)
            return Answer(values, min(ttl, *(_ttl(r[2]) for r in found)))
        if not aliases:
            break
        if len(aliases) > 1:
            raise _Malformed("several CNAMEs for one name")
        _, _, alias_ttl, start, length = aliases[0]
        name = _lower_labels(_name_rdata(data, start, length))
        ttl = min(ttl, _ttl(alias_ttl))
        if name in chain:
            # RFC 1034 section 3.6.2: "CNAME loops [are] signalled as an error"
            # (resolvers answer SERVFAIL): a failure, not a NODATA to cache and score.
            return TempFail(FailureKind.MALFORMED, "CNAME loop")
        if len(chain) > MAX_CNAME_LINKS:
            return TempFail(FailureKind.MALFORMED, f"CNAME chain of over {MAX_CNAME_LINKS} links")
        chain.add(name)
    # A DNAME comes with the CNAME it synthesised (RFC 6672 section 3.4): one without
    # is as unexplained as any record off the chain.
    followed = len(chain) > 1
    for owner, rr_type, *_ in owned:
        on_chain = rr_type == TYPE_CNAME and owner in chain
        if not (on_chain or (rr_type == TYPE_DNAME and followed)):
            # Records, but not for what we asked: a broken or spoofed answer is a
            # failure, never a "does not exist" that would be scored.
            return TempFail(FailureKind.MALFORMED, "answer does not match the question")
    return _ChainEnd(name, ttl) if followed else None
