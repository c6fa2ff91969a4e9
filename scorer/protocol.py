"""The wire protocol of ``POST /v1/check``: request decoding/validation, reply encoding.

Requests are msgpack or JSON maps. Only a body that cannot be parsed, a field of
the wrong type, or a missing/invalid ``ip`` is a client error. Garbage *inside*
HELO or MAIL FROM is evidence for the checks, not a reason to refuse: a 4xx
there would let a spammer switch our checks off, because the plugins fail open.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import msgpack

from scorer.checks.mailfrom import QMAIL_NULL_SENDER, envelope_address
from scorer.memo import memo_sized, memoise
from scorer.names import (
    THIS_NETWORK,
    IPAddress,
    ip_address,
    ipv4_compatible_unwrapped,
    is_multicast_or_broadcast,
    unmapped,
    unscoped,
)
from scorer.text import option

MSGPACK_TYPES = frozenset(
    {"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"}
)
JSON_TYPES = frozenset({"application/json"})
ACCEPTED_TYPES = MSGPACK_TYPES | JSON_TYPES
CHECKED_FIELDS = ("ip", "helo", "mail_from", "hostname")
LABEL_FIELDS = ("queue_id", "user")
KNOWN_FIELDS = frozenset(CHECKED_FIELDS + LABEL_FIELDS)
# Compact JSON. One encoder for every reply: json.dumps with separators builds a new
# one per call (~4 us of a new reply's ~12).
_JSON = json.JSONEncoder(separators=(",", ":"))
# Longer values are cut before any check sees them: no valid HELO (255) or
# address (RFC 5321 section 4.5.3.1.3: 256) is anywhere near this, so a cut
# value is still judged invalid, but IDNA and regexes never chew on 16 KiB.
MAX_FIELD_CHARS = 1024


class RequestError(ValueError):
    """A request the service cannot act on; becomes ``status`` (400 by default) naming the field."""

    def __init__(self, message: str, field: str = "body", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


# The request and reply types are NamedTuples, not frozen dataclasses: one of each
# is built for every message, and a frozen dataclass's __init__ costs three times
# as much (object.__setattr__ per field). Both are just as immutable.
class CheckRequest(NamedTuple):
    """What the checks read: the reply depends on these fields and on nothing else."""

    ip: IPAddress
    helo: str | None = None
    mail_from: str | None = None  # "" is the null sender <>
    hostname: str | None = None  # None when the MTA had no name ("unknown", "[1.2.3.4]")


# The reply-cache key: every field of a CheckRequest, the address in its packed
# form (4 or 16 bytes, so the families never collide): hashing an ipaddress
# object runs Python code.
ReplyKey = tuple[bytes, str | None, str | None, str | None]


def reply_key(request: CheckRequest) -> ReplyKey:
    return (request.ip.packed, request.helo, request.mail_from, request.hostname)


class ParsedRequest(NamedTuple):
    """A validated request with its reply-cache key, worked out once per distinct fields."""

    request: CheckRequest
    reply_key: ReplyKey


# What the caller says to tell messages apart in our log (queue ID; the user: rspamd's
# SMTP AUTH one, spamd's); never checked, and no part of the reply.
Labels = tuple[str | None, str | None]


class SymbolResult(NamedTuple):
    name: str
    score: float
    options: tuple[str, ...]
    # A shadowed symbol (score 0): what it would have scored. Sent, so a client
    # whose admin set a score of its own (SpamAssassin's "score RL_X n") still
    # knows not to apply it; 0.0 (not sent) for every other symbol.
    shadow_score: float = 0.0


class CheckReply(NamedTuple):
    """The verdict on a request. The time it took is the caller's to add when encoding:
    a reply served again from the reply cache is the very same object."""

    symbols: tuple[SymbolResult, ...]
    score: float
    shadowed: tuple[tuple[str, float], ...] = ()  # for metrics only, never sent
    # The JSON body up to "elapsed_ms", rendered once per cached reply: serving it
    # again only formats the elapsed time.
    json_head: bytes = b""

    def rendered(self) -> CheckReply:
        """This reply with its JSON head rendered, to be served many times."""
        # Positional, not _replace(), which costs as much again.
        head = self.json_head or self._render_head()
        return CheckReply(self.symbols, self.score, self.shadowed, head)

    def _render_head(self) -> bytes:
        body = _JSON.encode(self._payload()).encode()
        return body[:-1] + b',"elapsed_ms":'

    def encoded(self, elapsed_ms: float, want_msgpack: bool) -> tuple[bytes, str]:
        """The /v1/check reply body, with the time it took, and its media type."""
        if want_msgpack:
            return encode_reply(self.to_dict(elapsed_ms), want_msgpack)
        # Three decimals, as to_dict rounds: microseconds are noise at this scale.
        return (self.json_head or self._render_head()) + b"%.3f}" % elapsed_ms, "application/json"

    def to_json(self, elapsed_ms: float) -> bytes:
        return self.encoded(elapsed_ms, False)[0]

    def to_dict(self, elapsed_ms: float) -> dict[str, Any]:
        return self._payload() | {"elapsed_ms": round(float(elapsed_ms), 3)}

    def _payload(self) -> dict[str, Any]:
        # Floats only, never nil or bin: rspamd 3.4's libucl garbles negative
        # fixints and crashes on bin (see docs/rspamd.md).
        return {
            "symbols": [
                {"name": s.name, "score": float(s.score), "options": list(s.options)}
                | ({"shadow_score": float(s.shadow_score)} if s.shadow_score else {})
                for s in self.symbols
            ],
            "score": float(self.score),
        }


def _lenient_text(value: object) -> object:
    """A msgpack bin where a str belongs is read as text, like a str with bad UTF-8."""
    return value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Parse a request body into a map; raise RequestError if that is impossible."""
    if content_type in MSGPACK_TYPES:
        try:
            # Invalid UTF-8 inside a string must not fail the whole request: it is
            # evidence (a HELO full of \xff): surrogateescape keeps the bytes, and
            # scorer.text shows them as \xNN again.
            data = msgpack.unpackb(body, unicode_errors="surrogateescape", strict_map_key=False)
        except Exception as error:  # msgpack raises many unrelated types for bad input
            problem = f"{_msgpack_problem(error)}{_mislabelled(body, msgpack_expected=True)}"
            raise RequestError(f"body is not valid msgpack: {problem}") from None
        if isinstance(data, dict) and not KNOWN_FIELDS.issuperset(data):
            # Keys sent as msgpack bin: read them as text too. (A field we do not know
            # also lands here, harmlessly; one C call keeps the usual body off this path.)
            data = {_lenient_text(key): value for key, value in data.items()}
    else:
        try:
            # As for msgpack: invalid UTF-8 inside a HELO is evidence, not a bad
            # body. RFC 8259 section 8.1: JSON between systems is UTF-8, and a parser
            # may ignore a byte order mark (json's own error spoke of codecs).
            text = body.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            problem = f"{option(str(error), 80)}{_mislabelled(body, msgpack_expected=False)}"
            raise RequestError(f"body is not valid JSON: {problem}") from None
    if not isinstance(data, dict):
        raise RequestError("body must be a map/object")
    return data


# The first byte of a msgpack map: fixmap, map 16, map 32 (the msgpack spec's formats).
_MSGPACK_MAP_STARTS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}


def _mislabelled(body: bytes, msgpack_expected: bool) -> str:
    """What a body the parser refused looks like instead, for the error: a JSON object
    sent as msgpack reads as the number 123 (``{``) and then "data after the first
    value", and UTF-16 JSON as "Expecting value", neither of which says what to fix."""
    if msgpack_expected:
        first = body.lstrip(b" \t\r\n")[:1]
        return " (it looks like JSON: send it as application/json)" if first in (b"{", b"[") else ""
    if body[:1] and body[0] in _MSGPACK_MAP_STARTS:
        return " (it looks like msgpack: send it as application/msgpack)"
    # RFC 4627 section 3: JSON text starts with two ASCII characters, so a NUL among its
    # first four bytes (or a UTF-16 byte order mark) means UTF-16 or UTF-32.
    if b"\x00" in body[:4] or body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return " (it is UTF-16 or UTF-32: JSON between systems is UTF-8, RFC 8259 section 8.1)"
    return ""


def _msgpack_problem(error: Exception) -> str:
    """What was wrong with a body msgpack refused, in words (some errors carry none)."""
    if isinstance(error, msgpack.StackError):
        return "nested too deep"
    if isinstance(error, msgpack.FormatError):
        return "a byte that starts no msgpack value"
    if isinstance(error, TypeError):  # unhashable: a list or map where a key belongs
        return "a map key that is a list or map"
    if isinstance(error, msgpack.ExtraData):
        return "data after the first value"
    return option(str(error), 80) or type(error).__name__  # "incomplete input", lengths


def _optional_text(raw: object, name: str) -> str | None:
    value = _lenient_text(raw)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string", name)
    return value[:MAX_FIELD_CHARS]


def _mta_hostname(value: str | None) -> str | None:
    """Postfix/Sendmail say ``unknown`` or ``[1.2.3.4]`` when the client has no name."""
    if value is None:
        return None
    value = value.strip()
    if not value or value.lower() == "unknown" or value.startswith("["):
        return None
    return value


# The longest address text there is (45 characters, RFC 4291 section 2.2 with an
# embedded IPv4 address) with brackets, spaces and a short zone around it. Longer
# values are refused before parse_ip's cache sees them: it keys on the raw text.
MAX_IP_CHARS = 64


@memoise(maxsize=16384)  # ~1 us (~5 for IPv6: ipaddress's Python); relays repeat
def parse_ip(text: str) -> IPAddress:
    """The client address in ``text`` (brackets and spaces allowed, and the ``IPv6:`` tag of
    RFC 5321 section 4.1.3's literal, in which Postfix's XCLIENT and some MTAs' macros
    pass an IPv6 client); ValueError if none."""
    bare = text.strip().strip("[]")
    tagged = bare[:5].lower() == "ipv6:"
    ip = ip_address(bare[5:] if tagged else bare)
    if tagged and ip.version != 6:
        raise ValueError(f"{bare!r}: the IPv6: tag on an IPv4 address")
    # ::ffff:192.0.2.1 is an IPv4 client on a dual-stack socket. A zone names an
    # interface of the MTA's host, not the client: dropped, so it never reaches an
    # option, a log line or the reply-cache key as client text.
    return ipv4_compatible_unwrapped(unscoped(unmapped(ip)))


def parse_request(data: dict[str, Any]) -> ParsedRequest:
    """The checked fields of a request map, validated; RequestError names a bad one.

    Memoised: relays and senders come back, and the same four fields always
    validate to the same request (and so to the same reply-cache key).
    """
    get = data.get
    fields = (get("ip"), get("helo"), get("mail_from"), get("hostname"))
    try:
        parsed = _parsed.get(fields)
    except TypeError:  # a list or map where text belongs: unhashable, and refused below
        parsed = None
    if parsed is None:
        parsed = _validate(*fields)
        if memo_sized(fields):
            if len(_parsed) >= MEMO_ENTRIES:
                _parsed.clear()
            _parsed[fields] = parsed
    return parsed


# The memo's bounds: entries, and the longest field kept (scorer.memo: no valid
# HELO, host name or address is longer; odder requests are validated every time).
# Measured with tracemalloc: ~0.8 KB an entry for ordinary names, ~4.7 KB at worst
# (every field 256 four-byte characters), so ~3 MB, and ~20 MB at worst, when full.
MEMO_ENTRIES = 4096
_parsed: dict[tuple[object, ...], ParsedRequest] = {}


def _validate(ip: object, helo: object, mail_from: object, hostname: object) -> ParsedRequest:
    raw_ip = _lenient_text(ip)
    if raw_ip is None:
        raise RequestError("ip is required", "ip")
    if not isinstance(raw_ip, str):
        raise RequestError("ip must be a string", "ip")
    if not raw_ip.strip():
        # An empty macro of the MTA's: "not an address: " ended in nothing to read.
        raise RequestError("ip is empty", "ip")
    try:
        if len(raw_ip) > MAX_IP_CHARS:
            raise ValueError("too long")
        address = parse_ip(raw_ip)
    except ValueError:
        raise RequestError(
            f"ip is not an IPv4 or IPv6 address: {option(raw_ip, 64)}", "ip"
        ) from None
    if address.is_unspecified or address in THIS_NETWORK or is_multicast_or_broadcast(address):
        # No TCP connection comes from these: an integration that sends one has no
        # client address to give (scoring it would be RL_PTR_MISSING, a false 5).
        raise RequestError(
            f"ip {address} is no host's address (unspecified, 0.0.0.0/8, multicast or "
            "broadcast): no SMTP client connects from it",
            "ip",
        )
    request = CheckRequest(
        address,
        _optional_text(helo, "helo"),
        _null_sender_as_empty(_optional_text(mail_from, "mail_from")),
        _mta_hostname(_optional_text(hostname, "hostname")),
    )
    return ParsedRequest(request, reply_key(request))


def _null_sender_as_empty(mail_from: str | None) -> str | None:
    """The null sender in any spelling ("<>", " <> ", qmail's "#@[]") as "", the
    plugins' own: one reply-cache entry, logged as ``<>``, and it counts as not checked
    (RFC 5321 section 4.5.5)."""
    if mail_from and envelope_address(mail_from) in ("", QMAIL_NULL_SENDER):
        return ""
    return mail_from


def parse_labels(data: dict[str, Any]) -> Labels:
    """``queue_id`` and ``user``, for the log; RequestError when one is not text."""
    queue_id, user = data.get("queue_id"), data.get("user")
    if (type(queue_id) is str or queue_id is None) and (type(user) is str or user is None):
        return queue_id and queue_id[:MAX_FIELD_CHARS], user and user[:MAX_FIELD_CHARS]
    return _optional_text(queue_id, "queue_id"), _optional_text(user, "user")


def encode_reply(payload: dict[str, Any], want_msgpack: bool) -> tuple[bytes, str]:
    if want_msgpack:
        return msgpack.packb(payload, use_bin_type=True), "application/msgpack"
    return _JSON.encode(payload).encode(), "application/json"


# The most of an Accept value read, in characters and in media ranges: the plugins send
# one media range, a browser asking for /metrics a handful. Read whole, anyone, token or
# not, could make each request cost the event loop ~80 ms (31 header lines of 4,000
# commas, one empty media range each), and a few connections sending them held every
# check past the plugins' timeout. A msgpack named further on is not seen: JSON.
MAX_ACCEPT_CHARS = 1024
MAX_ACCEPT_RANGES = 32


def wants_msgpack(accept: str) -> bool:
    """Whether ``accept`` asks for msgpack rather than JSON, our default (read up to
    MAX_ACCEPT_CHARS and MAX_ACCEPT_RANGES; see _weighs_msgpack)."""
    return _weighs_msgpack(accept[:MAX_ACCEPT_CHARS])


@memoise(maxsize=64)  # a handful of distinct Accept headers in practice
def _weighs_msgpack(accept: str) -> bool:
    """Whether ``accept`` asks for msgpack rather than JSON, our default.

    RFC 9110 section 12.5.1: msgpack when a msgpack type is named with a weight
    above 0 and at least JSON's (a tie goes to msgpack: naming it is asking for
    it). JSON's weight is that of its most specific range (``application/json``,
    then ``application/*``, then ``*/*``), and 0 when none is named. Media types
    are case-insensitive (section 8.3.1).
    """
    msgpack_weight = 0.0
    json_weights: dict[str, float] = {}
    for media_range in accept.split(",", MAX_ACCEPT_RANGES)[:MAX_ACCEPT_RANGES]:
        name, *parameters = (part.strip() for part in media_range.split(";"))
        name = name.lower()
        weight = _weight(parameters)
        if name in MSGPACK_TYPES:
            msgpack_weight = max(msgpack_weight, weight)
        elif name in JSON_RANGES:
            json_weights[name] = max(json_weights.get(name, 0.0), weight)
    json_weight = next((json_weights[n] for n in JSON_RANGES if n in json_weights), 0.0)
    return msgpack_weight > 0 and msgpack_weight >= json_weight


JSON_RANGES = ("application/json", "application/*", "*/*")  # most specific first
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")  # RFC 9110 section 12.4.2


def _weight(parameters: list[str]) -> float:
    """The ``q`` of a media range: 1 when absent or not a qvalue."""
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else 1.0
    return 1.0
