"""The wire protocol of ``POST /v1/check``: request decoding/validation, reply encoding.

Requests are msgpack or JSON maps. Only a body that cannot be parsed, a field of
the wrong type, or a missing/invalid ``ip`` is a client error. Garbage *inside*
HELO or MAIL FROM is evidence for the checks, not a reason to refuse: a 4xx
there would let a spammer switch our checks off, because the plugins fail open.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from typing import Any, NamedTuple

import msgpack

from scorer.text import option

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MSGPACK_TYPES = frozenset(
    {"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"}
)
JSON_TYPES = frozenset({"application/json"})
ACCEPTED_TYPES = MSGPACK_TYPES | JSON_TYPES
STRING_FIELDS = ("helo", "mail_from", "hostname", "queue_id", "user")
# Longer values are cut before any check sees them: no valid HELO (255) or
# address (RFC 5321 section 4.5.3.1: 256) is anywhere near this, so a cut
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
    ip: IPAddress
    helo: str | None = None
    mail_from: str | None = None  # "" is the null sender <>
    hostname: str | None = None  # None when the MTA had no name ("unknown", "[1.2.3.4]")
    queue_id: str | None = None
    user: str | None = None


class SymbolResult(NamedTuple):
    name: str
    score: float
    options: tuple[str, ...]
    # A shadowed symbol (score 0): what it would have scored. Sent, so a client
    # whose admin set a score of its own (SpamAssassin's "score RL_X n") still
    # knows not to apply it; 0.0 (not sent) for every other symbol.
    shadow_score: float = 0.0


class CheckReply(NamedTuple):
    symbols: tuple[SymbolResult, ...]
    score: float
    elapsed_ms: float
    shadowed: tuple[tuple[str, float], ...] = ()  # for metrics only, never sent
    # The JSON body up to "elapsed_ms", rendered once per distinct reply: a reply
    # served again from the reply cache only formats its new elapsed time.
    json_head: bytes = b""

    def with_elapsed(self, elapsed_ms: float) -> CheckReply:
        # Positional, not _replace(): this runs on every reply-cache hit.
        head = self.json_head or self.rendered_head()
        return CheckReply(self.symbols, self.score, elapsed_ms, self.shadowed, head)

    def rendered_head(self) -> bytes:
        """Render the JSON head (callers use ``json_head`` when it is already there)."""
        body = self.to_dict()
        del body["elapsed_ms"]
        return json.dumps(body, separators=(",", ":")).encode()[:-1] + b',"elapsed_ms":'

    def to_json(self) -> bytes:
        head = self.json_head or self.rendered_head()
        return head + repr(float(self.elapsed_ms)).encode() + b"}"

    def to_dict(self) -> dict[str, Any]:
        # Floats only, never nil or bin: rspamd 3.4's libucl garbles negative
        # fixints and crashes on bin (see docs/rspamd.md).
        return {
            "symbols": [
                {"name": s.name, "score": float(s.score), "options": list(s.options)}
                | ({"shadow_score": float(s.shadow_score)} if s.shadow_score else {})
                for s in self.symbols
            ],
            "score": float(self.score),
            "elapsed_ms": float(self.elapsed_ms),
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
            raise RequestError(f"body is not valid msgpack: {type(error).__name__}") from None
        if isinstance(data, dict) and not set(map(type, data)) <= {str}:
            # Keys sent as msgpack bin: read them as text too (rare, so not on the fast path).
            data = {_lenient_text(key): value for key, value in data.items()}
    else:
        try:
            # As for msgpack: invalid UTF-8 inside a HELO is evidence, not a bad
            # body. RFC 8259 section 8.1: JSON between systems is UTF-8.
            data = json.loads(body.decode("utf-8", errors="surrogateescape"))
        except (ValueError, RecursionError) as error:
            raise RequestError(f"body is not valid JSON: {option(str(error), 80)}") from None
    if not isinstance(data, dict):
        raise RequestError("body must be a map/object")
    return data


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = _lenient_text(data.get(name))
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


@functools.lru_cache(maxsize=16384)  # ~5 us of ipaddress work per call; relays repeat
def parse_ip(text: str) -> IPAddress:
    """The client address in ``text`` (brackets and spaces allowed); ValueError if none."""
    ip = ipaddress.ip_address(text.strip().strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped  # ::ffff:192.0.2.1 is an IPv4 client on a dual-stack socket
        if ip.scope_id is not None:
            # A zone ("fe80::1%eth0", RFC 4007 section 11) names an interface of the
            # MTA's host, not the client: drop it, so it never reaches an option, a
            # log line or the reply-cache key as client-supplied text.
            return ipaddress.IPv6Address(int(ip))
    return ip


def parse_request(data: dict[str, Any]) -> CheckRequest:
    raw_ip = _lenient_text(data.get("ip"))
    if raw_ip is None:
        raise RequestError("ip is required", "ip")
    if not isinstance(raw_ip, str):
        raise RequestError("ip must be a string", "ip")
    try:
        if len(raw_ip) > MAX_IP_CHARS:
            raise ValueError("too long")
        ip = parse_ip(raw_ip)
    except ValueError:
        raise RequestError(
            f"ip is not an IPv4 or IPv6 address: {option(raw_ip, 64)}", "ip"
        ) from None
    texts: list[str | None] = []
    for name in STRING_FIELDS:
        value = data.get(name)
        if type(value) is str:  # the common cases inline: this runs for every message
            texts.append(value[:MAX_FIELD_CHARS])
        elif value is None:
            texts.append(None)
        else:
            texts.append(_optional_text(data, name))  # bin, or the wrong type
    helo, mail_from, hostname, queue_id, user = texts
    return CheckRequest(ip, helo, mail_from, _mta_hostname(hostname), queue_id, user)


def encode_check_reply(reply: CheckReply, want_msgpack: bool) -> tuple[bytes, str]:
    if want_msgpack:
        return encode_reply(reply.to_dict(), want_msgpack)
    return reply.to_json(), "application/json"


def encode_reply(payload: dict[str, Any], want_msgpack: bool) -> tuple[bytes, str]:
    if want_msgpack:
        return msgpack.packb(payload, use_bin_type=True), "application/msgpack"
    return json.dumps(payload, separators=(",", ":")).encode(), "application/json"


@functools.lru_cache(maxsize=64)  # a handful of distinct Accept headers in practice
def wants_msgpack(accept: str) -> bool:
    # Media types are case-insensitive (RFC 9110 section 8.3.1).
    return any(t.split(";")[0].strip().lower() in MSGPACK_TYPES for t in accept.split(","))
