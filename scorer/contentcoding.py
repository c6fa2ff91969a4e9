"""A request body's content coding (RFC 9110 section 8.4): which one, and decoding it.

The plugins send plain bodies; anything else that posts a check may compress it.
aiohttp would decode gzip and deflate itself, but not safely enough for this API: a
deflate body cut short fails inside its HTTP parser (a plain-text 400 that no handler
sees and no metric counts, or, when the body came after the headers, a 408 two
seconds later), and a gzip body cut before its CRC reads as whole. The service
therefore reads bodies as sent (``auto_decompress=False``) and decodes them here:
bounded, and whole or refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

# RFC 9110 section 8.4.1.3: "x-gzip" is to be read as "gzip".
_ALIASES = {"x-gzip": "gzip"}
DECODED = ("gzip", "deflate")  # and identity, which is no coding at all
# Each member costs a copy of the rest of the body, and empty ones decode to nothing, so
# the decoded-size limit never ends a body of thousands (seconds of the loop's time at
# 1 MiB): a client writes one member, `cat` of a few files a few.
MAX_GZIP_MEMBERS = 16
# The most of Content-Encoding taken, its lines together: a client names one coding
# ("gzip"), or "identity". Split whole, 31 lines of 4,000 commas cost the event loop
# ~7 ms a request: 16 connections sending them held a cached check ~160 ms.
MAX_CODINGS_CHARS = 256


class UnsupportedCoding(ValueError):
    """A coding (or a stack of codings) this service does not decode: a 415."""


class UndecodableBody(ValueError):
    """A body that does not decode as its coding says (corrupt, cut short): a 400."""


class DecodedTooLarge(ValueError):
    """A body that decodes to more than the limit (a compression bomb): a 413."""


def body_coding(field_values: Sequence[str]) -> str:
    """The coding of a body from its ``Content-Encoding`` field lines: "identity",
    "gzip" or "deflate"; UnsupportedCoding for anything else.

    All lines make one list (RFC 9110 section 5.3), whose empty elements are no
    codings (section 5.6.1: "identity," is identity), nor is "identity" (section
    8.4.1). Codings are case-insensitive (section 8.4.1). A stack of two (each line
    one, "gzip, deflate") is refused: no client of ours sends one; so is a list longer
    than MAX_CODINGS_CHARS, unread.
    """
    if sum(map(len, field_values)) > MAX_CODINGS_CHARS:
        shown = ", ".join(value[:MAX_CODINGS_CHARS] for value in field_values)
        raise UnsupportedCoding(shown[:MAX_CODINGS_CHARS])
    listed = [c for value in field_values for c in codings_listed(value)]
    codings = [_ALIASES.get(c, c) for c in listed if c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in DECODED:
        return codings[0]
    raise UnsupportedCoding(", ".join(codings))


def codings_listed(field_value: str) -> list[str]:
    """The codings a ``Content-Encoding`` or ``Transfer-Encoding`` field value lists, in
    lower case, without the empty elements a list may have (RFC 9110 section 5.6.1)."""
    return [c for c in (c.strip(" \t").lower() for c in field_value.split(",")) if c]


def decode_content(body: bytes, coding: str, limit: int) -> bytes:
    """``body`` decoded from ``coding``, at most ``limit`` bytes of it.

    gzip is RFC 1952, whose members may follow one another (section 2.2), maybe padded
    with zero bytes after the last; deflate is
    the zlib format (RFC 1950), or, as some clients send it, raw deflate (RFC 1951),
    told apart by the first byte as aiohttp does. An empty body stays empty.
    """
    if coding == "identity" or not body:
        return body
    decoded = bytearray()
    rest = body
    for _member in range(MAX_GZIP_MEMBERS):
        decompressor = zlib.decompressobj(_window_bits(coding, rest))
        try:
            # One byte more than the limit tells "too large" from "exactly the limit",
            # and nothing beyond it is ever decompressed.
            decoded += decompressor.decompress(rest, limit + 1 - len(decoded))
        except zlib.error as error:
            raise UndecodableBody(f"{coding}: {_zlib_reason(error)}") from None
        if len(decoded) > limit:
            raise DecodedTooLarge(f"{coding} body decodes to more than {limit} bytes")
        if not decompressor.eof:
            raise UndecodableBody(f"{coding}: the body ends before its compressed stream")
        rest = decompressor.unused_data
        if coding == "gzip":
            # Zero bytes may pad a gzip file after its members (tape-style writers), as
            # Python's gzip module reads it.
            rest = rest.lstrip(b"\x00")
        if not rest:
            return bytes(decoded)
        if coding != "gzip":
            raise UndecodableBody(f"{coding}: data after the end of the compressed stream")
    raise UndecodableBody(f"{coding}: more than {MAX_GZIP_MEMBERS} members")


def _window_bits(coding: str, data: bytes) -> int:
    if coding == "gzip":
        return 16 + zlib.MAX_WBITS  # the gzip wrapper, header and CRC checked
    # RFC 1950 section 2.2: a zlib stream's first byte has CM = 8 (deflate) in its low
    # nibble; anything else is taken for raw deflate.
    return zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS


def _zlib_reason(error: zlib.error) -> str:
    # "Error -3 while decompressing data: incorrect header check": the reason alone.
    return str(error).rpartition(": ")[2] or "does not decode"
