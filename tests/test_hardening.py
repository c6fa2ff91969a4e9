"""Hostile input and broken DNS: always a clear answer, never a 5xx, never a stuck reply."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import idna
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer import app as app_module
from scorer import names as names_module
from scorer import protocol as protocol_module
from scorer import workers as workers_module
from scorer.checks.helo import HeloKind, parse_helo
from scorer.checks.mailfrom import NOT_NULL_MX_TO_THE_LETTER
from scorer.config import config_from_mapping
from scorer.contentcoding import (
    MAX_CODINGS_CHARS,
    DecodedTooLarge,
    UndecodableBody,
    UnsupportedCoding,
    body_coding,
    decode_content,
)
from scorer.memo import MAX_MEMO_CHARS
from scorer.names import MAX_NAME_OCTETS, ip_address, to_ascii
from scorer.pipeline import Pipeline
from scorer.protocol import (
    LABEL_FIELDS,
    MAX_ACCEPT_CHARS,
    MAX_ACCEPT_RANGES,
    MAX_FIELD_CHARS,
    CheckReply,
    RequestError,
    decode_body,
    parse_labels,
    parse_request,
    wants_msgpack,
)
from scorer.text import (
    MIN_NAME_SHOWN,
    OPTION_MAX_CHARS,
    _head,
    escape,
    escape_option,
    escape_unprintable,
    option,
    option_naming,
    unsafe_reason,
)
from tests import world
from tests.helpers import COMPLETE_ESCAPE, eventually, only_complete_escapes, symbols_for
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.service import ScorerProcess
from tests.support.unbound import Unbound

CONTENT_TYPES = ["application/msgpack", "application/json", "text/plain", ""]


@pytest.fixture(scope="module")
def service(unbound: Unbound) -> Iterator[ScorerProcess]:
    process = ScorerProcess(unbound.nameserver, "[server]\nlog_requests = false\n").start()
    yield process
    process.stop()


class _Connection:
    """One keep-alive connection, reopened if the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        for attempt in (1, 2):
            try:
                self.conn.request("POST", "/v1/check", body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10) | st.binary(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
hostile_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=300
) | st.sampled_from(["\r\nX-Forged: 1", "\x1b[31mred", "a\u202eb", "x" * 5000, "\x00", ""])
fields = st.fixed_dictionaries(
    {
        "ip": st.sampled_from(
            [
                world.MISSING_PTR_IP,
                world.CONFIRMED_IP6,
                "10.1.1.1",
                f"{world.MISSING_PTR_IP6}%\x1b\r\n",
            ]
        )
    },
    optional={
        "helo": hostile_text | values,
        "mail_from": hostile_text | values,
        "hostname": hostile_text,
        "queue_id": hostile_text,
        "user": hostile_text | st.binary(),
    },
)


def _encode(value: Any, content_type: str) -> bytes:
    if content_type == "application/json":
        try:
            return json.dumps(value).encode("utf-8", errors="surrogatepass")
        except (TypeError, ValueError):
            return b"\xff" + repr(value).encode("utf-8", errors="replace")
    try:
        return msgpack.packb(value, use_bin_type=True, unicode_errors="surrogatepass")
    except (OverflowError, TypeError, ValueError):  # ints beyond 64 bits
        return b"\xc1" + repr(value).encode("utf-8", errors="replace")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=3000)
    | st.builds(_encode, values | fields, st.sampled_from(CONTENT_TYPES[:2])),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_fuzzed_bodies_never_get_a_5xx(
    service: ScorerProcess, body: bytes, content_type: str
) -> None:
    status, reply = _Connection(service.port).post(body, content_type)
    assert status < 500, reply
    if status == 200:
        decoded = json.loads(reply)
        for symbol in decoded["symbols"]:
            for option in symbol["options"]:
                assert option.isprintable() and len(option) <= 160


def _raw_exchange(port: int, request: bytes, wait_reply: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        return connection.recv(4096) if wait_reply else b""


def _requests_by_status(service: ScorerProcess, endpoint: str = "/v1/check") -> dict[str, float]:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.findall(
        rf'rdns_scorer_requests_total\{{endpoint="{re.escape(endpoint)}",status="(\d+)"\}} (\S+)',
        text,
    )
    return {status: float(count) for status, count in found}


def test_client_faults_in_http_are_4xx_and_not_logged_as_errors(service: ScorerProcess) -> None:
    # Regression: a gzip body that does not decode got a 500 (the alert's "a bug"),
    # a client leaving mid-body was counted as a 500, and each logged ERROR tracebacks.
    before = _requests_by_status(service)
    log_start = len(service.log())
    head = b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    body = json.dumps({"ip": world.MISSING_PTR_IP}).encode()
    not_gzip = head + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    reply = _raw_exchange(service.port, not_gzip)
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    error = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert error == {
        "error": "body could not be read: gzip: incorrect header check",
        "field": "body",
    }
    # A coding we do not decode is the service's counted JSON 415 (aiohttp answered br
    # itself, in plain text, uncounted, while it decoded the bodies).
    brotli = head + b"Content-Encoding: br\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    reply = _raw_exchange(service.port, brotli)
    assert reply.startswith(b"HTTP/1.1 415 "), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["field"] == "Content-Encoding"
    _raw_exchange(service.port, head + b"Content-Length: 100\r\n\r\n{", wait_reply=False)
    gone = before.get("499", 0) + 1  # counted once the server sees the client left
    after = eventually(lambda: _requests_by_status(service), lambda a: a.get("499", 0) >= gone)
    assert after.get("500", 0) == before.get("500", 0)
    assert after.get("400", 0) == before.get("400", 0) + 1
    assert after.get("415", 0) == before.get("415", 0) + 1
    assert after.get("499", 0) == before.get("499", 0) + 1
    log = service.log()[log_start:]
    assert " ERROR " not in log and "Traceback" not in log, log


# What a port scanner or a TLS client sends to the plain port: no HTTP request line.
TLS_CLIENT_HELLO = bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x13\x01"
NOT_HTTP = [TLS_CLIENT_HELLO, b"SSH-2.0-OpenSSH_9.2p1\r\n", b"\x00" * 16 + b"\r\n\r\n"]


def test_a_connection_that_speaks_no_http_gets_a_400_and_no_error(
    service: ScorerProcess,
) -> None:
    # docs/security.md, "Malformed HTTP": a 4xx and at most one INFO line (with aiohttp
    # 3.11.8 and later none, for the first request of a connection), never an ERROR.
    log_start = len(service.log())
    for probe in NOT_HTTP:
        reply = _raw_exchange(service.port, probe)
        assert reply.split(b"\r\n")[0] == b"HTTP/1.0 400 Bad Request", (probe, reply)
    with urllib.request.urlopen(f"{service.url}/healthz", timeout=5) as answer:
        assert answer.status == 200  # and the service answers as before
    log = service.log()[log_start:]
    assert " ERROR " not in log and " WARNING " not in log and "Traceback" not in log, log
    assert len([line for line in log.splitlines() if " INFO " in line]) <= len(NOT_HTTP), log


def _whole_reply(port: int, request: bytes) -> bytes:
    """What the server sends back to ``request`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
        return reply


def test_a_request_that_cannot_be_parsed_gets_a_short_fixed_400_and_is_counted(
    unbound: Unbound,
) -> None:
    """Regression (review): aiohttp's 400 quoted the bytes its parser stopped at, up to
    the whole read (a request line of 16 KB came back whole; of 128 KB, ~128 KB), in
    plain text, a header line with the token in it too; and no metric counted it, so a
    dashboard watching refusals saw nothing of a flood of them. Now a fixed JSON 400,
    counted under endpoint "malformed" (the series there from the start, at 0). A
    service of its own: the log lines of these reasons are not to be held back from
    the tests that read them (a line a minute per reason)."""
    service = ScorerProcess(unbound.nameserver, "[server]\nlog_requests = false\n").start()
    try:
        _answers_malformed_requests_with_a_fixed_400(service)
    finally:
        service.stop()


def _answers_malformed_requests_with_a_fixed_400(service: ScorerProcess) -> None:
    before = _requests_by_status(service, "malformed")
    assert before == {"400": 0}
    probes = [
        b"GET /\x01" + b"Z" * 16_000 + b" HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sec\x01ret\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"Y" * 5000 + b"\r\n\r\n",
        *NOT_HTTP,
    ]
    for probe in probes:
        head, _, body = _whole_reply(service.port, probe).partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == b"HTTP/1.0 400 Bad Request", (probe[:40], head)
        assert b"Content-Type: application/json" in head.split(b"\r\n")
        assert json.loads(body) == {"error": "malformed HTTP request", "field": "request"}
    assert _requests_by_status(service, "malformed") == {"400": len(probes)}
    with urllib.request.urlopen(f"{service.url}/healthz", timeout=5) as answer:
        assert answer.status == 200  # and the service answers as before


def _compressed(coding: str, data: bytes) -> bytes:
    return gzip.compress(data) if coding == "gzip" else zlib.compress(data)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("late", [False, True], ids=["with-headers", "after-headers"])
def test_a_compressed_body_cut_short_is_a_counted_json_400(
    service: ScorerProcess, coding: str, late: bool
) -> None:
    # Regression (review): a deflate body cut before its Adler-32 was aiohttp's plain-text
    # "400 deflate", uncounted, or, its body sent after the headers, a 408 two seconds
    # later; a gzip body cut before its CRC was a 200, as if whole.
    before = _requests_by_status(service).get("400", 0)
    body = _compressed(coding, json.dumps({"ip": world.MISSING_PTR_IP}).encode())[:-4]
    head = (
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (coding.encode(), len(body))
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as connection:
        if late:
            connection.sendall(head)
            time.sleep(0.3)
            connection.sendall(body)
        else:
            connection.sendall(head + body)
        reply = connection.recv(4096)
    assert time.monotonic() - started < 1.5  # not the body timeout's 408
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {
        "error": f"body could not be read: {coding}: the body ends before its compressed stream",
        "field": "body",
    }
    assert _requests_by_status(service)["400"] == before + 1


def test_a_transfer_coding_before_chunked_is_refused_not_read_as_the_body(
    service: ScorerProcess,
) -> None:
    # Regression (review): aiohttp read "gzip, chunked" as chunked alone, so the gzip
    # bytes were parsed as the body ("not valid JSON"), and "foo, chunked" passed.
    body = gzip.compress(json.dumps({"ip": world.MISSING_PTR_IP}).encode())
    for transfer in (b"gzip, chunked", b"foo, chunked"):
        request = (
            b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: %s\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (transfer, len(body), body)
        )
        reply = _raw_exchange(service.port, request)
        assert reply.startswith(b"HTTP/1.1 400 "), reply
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {
            "error": f"Transfer-Encoding {transfer.decode()} is not supported (use chunked)",
            "field": "Transfer-Encoding",
        }
    # Any case, and empty list elements are none (RFC 9110 section 5.6.1).
    for transfer in (b"Chunked", b", chunked"):
        chunked = (
            b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: %s\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (transfer, len(body), body)
        )
        assert _raw_exchange(service.port, chunked).startswith(b"HTTP/1.1 200 "), transfer


def _verdict(reply: bytes) -> dict[str, Any]:
    """A 200's JSON body without its elapsed time (which differs between two checks)."""
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    verdict: dict[str, Any] = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    del verdict["elapsed_ms"]
    return verdict


def test_a_body_that_arrived_in_pieces_is_read_whole(service: ScorerProcess) -> None:
    # A body that came with the headers is taken from aiohttp's buffer as it is (no
    # request.read(): docs/performance.md, forty-fourth session). Chunks sent at
    # once are buffered as pieces, one per chunk: all of them make the body.
    body = json.dumps({"ip": world.MISSING_PTR_IP, "helo": "mail.example.com"}).encode()
    head = b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    whole = head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    pieces = [body[:5], body[5:17], body[17:]]
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    expected = _verdict(_raw_exchange(service.port, whole))
    assert expected["symbols"]  # a real verdict (RL_PTR_MISSING), not an empty one
    assert _verdict(_raw_exchange(service.port, chunked)) == expected


@pytest.mark.parametrize(
    ("path", "endpoint"), [("/v1/check", "/v1/check"), ("/healthz", "/healthz"), ("/x", "other")]
)
def test_an_unknown_expect_is_a_counted_json_417(
    service: ScorerProcess, path: str, endpoint: str
) -> None:
    # Regression: aiohttp's own answer echoed the header in plain text, a header that
    # is not UTF-8 made it a 500 with an ERROR traceback, and neither was counted.
    before = _requests_by_status(service, endpoint).get("417", 0.0)
    log_start = len(service.log())
    method = b"GET" if path == "/healthz" else b"POST"
    request = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    request += b"Content-Type: application/json\r\nExpect: \xff\xfe<b>\r\nContent-Length: 2\r\n\r\n"
    reply = _raw_exchange(service.port, request)
    assert reply.startswith(b"HTTP/1.1 417 "), reply
    error = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert error["field"] == "Expect" and "<b>" in error["error"]
    assert "\\x" in error["error"], "the bytes that are not text are escaped"
    counted = eventually(
        lambda: _requests_by_status(service, endpoint).get("417", 0.0), lambda n: n > before
    )
    assert counted == before + 1
    log = service.log()[log_start:]
    assert " ERROR " not in log and "Traceback" not in log, log


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer s3cret-token\x01",
        b"Authorization: Bearer s3cret-token" + b"x" * 9000,
    ],
)
def test_a_malformed_header_is_logged_without_its_value(
    service: ScorerProcess, header: bytes
) -> None:
    # Regression: the INFO line for a request aiohttp cannot parse carried its error
    # message, which quotes the offending header line: a bearer token with a stray
    # control character (or in an overlong header) went into the log.
    log_start = len(service.log())
    request = b"POST /v1/check HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
    reply = _raw_exchange(service.port, request)
    assert b" 400 " in reply.split(b"\r\n")[0] or b" 431 " in reply.split(b"\r\n")[0], reply
    log = eventually(lambda: service.log()[log_start:], lambda text: "Error handling" in text)
    assert "Error handling request" in log and " 400 " in log, log
    assert "s3cret" not in log, log


def test_invalid_utf8_inside_a_json_field_is_evidence(service: ScorerProcess) -> None:
    # Regression: the msgpack path kept such bytes as evidence, JSON refused the body.
    body = b'{"ip": "%s", "helo": "mail\xff\xfe.example.org"}' % world.MISSING_PTR_IP.encode()
    status, reply = _Connection(service.port).post(body, "application/json")
    assert status == 200, reply
    symbols = {s["name"]: s["options"] for s in json.loads(reply)["symbols"]}
    assert any("\\xff\\xfe" in option for option in symbols["RL_HELO_INVALID"]), symbols


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=fields)
def test_garbage_inside_fields_is_evidence_not_an_error(
    service: ScorerProcess, request: dict[str, Any]
) -> None:
    body = _encode(request, "application/msgpack")
    status, reply = _Connection(service.port).post(body, "application/msgpack")
    wrong_type = any(
        not isinstance(request.get(k), str | bytes | type(None))
        for k in ("helo", "mail_from", "hostname", "queue_id", "user")
    )
    expected = 413 if len(body) > 16384 else 400 if wrong_type else 200
    assert status == expected, reply
    if status == 200:
        # A verdict, its evidence printable (review: the status alone was asserted).
        verdict = json.loads(reply)
        for symbol in verdict["symbols"]:
            assert symbol["name"].startswith("RL_"), symbol
            assert all(o.isprintable() and len(o) <= OPTION_MAX_CHARS for o in symbol["options"])
        assert verdict["score"] == round(sum(s["score"] for s in verdict["symbols"]), 4)


@pytest.mark.parametrize("zone", ["eth0", "\x1b[31m\r\nX-Forged: 1", "\udcff", "z" * 40])
@pytest.mark.parametrize("accept", ["application/json", "application/msgpack"])
def test_an_ipv6_zone_is_dropped_not_echoed(service: ScorerProcess, zone: str, accept: str) -> None:
    # Regression: "2001:db8::26%<anything>" was accepted with its zone, which reached
    # options and log lines raw (a lone surrogate made msgpack replies a 500), and
    # the reply cache, keyed on the address without it, served those options to
    # genuine requests for the same address.
    body = msgpack.packb({"ip": f"{world.MISSING_PTR_IP6}%{zone}"}, unicode_errors="surrogatepass")
    for request in (body, msgpack.packb({"ip": world.MISSING_PTR_IP6})):
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        headers = {"Content-Type": "application/msgpack", "Accept": accept}
        connection.request("POST", "/v1/check", body=request, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        raw = response.read()
        reply = msgpack.unpackb(raw) if accept == "application/msgpack" else json.loads(raw)
        options = [o for s in reply["symbols"] for o in s["options"]]
        assert any(world.MISSING_PTR_IP6 in o for o in options)
        assert not any("%" in o for o in options), options


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\x81\xa2ip", "Unpack failed: incomplete input"),
        (b"\x91" * 2000 + b"\xc0", "nested too deep"),
        (b"\x81\x91\x01\x02", "a map key that is a list or map"),
        (b"\xc1", "a byte that starts no msgpack value"),
        (b"\x80\x01", "data after the first value"),
    ],
)
def test_a_bad_msgpack_body_is_told_what_is_wrong(body: bytes, problem: str) -> None:
    # Regression: the error named an exception class ("StackError"), or said nothing
    # ("FormatError", "TypeError").
    with pytest.raises(RequestError) as raised:
        decode_body(body, "application/msgpack")
    assert raised.value.message == f"body is not valid msgpack: {problem}"


_AS_JSON = "it looks like JSON: send it as application/json"
_AS_MSGPACK = "it looks like msgpack: send it as application/msgpack"
_WIDE = "it is UTF-16 or UTF-32"
_OBJECT = '{"ip": "192.0.2.1"}'


@pytest.mark.parametrize(
    ("body", "content_type", "hint"),
    [
        (_OBJECT.encode(), "application/msgpack", _AS_JSON),
        (b" [1]", "application/msgpack", _AS_JSON),
        (msgpack.packb({"ip": "192.0.2.1"}), "application/json", _AS_MSGPACK),
        (_OBJECT.encode("utf-16"), "application/json", _WIDE),
        (_OBJECT.encode("utf-16-be"), "application/json", _WIDE),
        (_OBJECT.encode("utf-32-le"), "application/json", _WIDE),
    ],
)
def test_a_body_in_the_other_format_or_encoding_is_named(
    body: bytes, content_type: str, hint: str
) -> None:
    # Regression (review): a JSON body labelled msgpack was refused for "data after the
    # first value" (msgpack reads "{" as the number 123), and UTF-16 JSON for "Expecting
    # value": accurate, and no help to whoever reads the plugin's log.
    with pytest.raises(RequestError) as raised:
        decode_body(body, content_type)
    assert f"({hint}" in raised.value.message
    for plain in (b"\xc1", b"nul"):  # no hint where the body is just broken
        with pytest.raises(RequestError) as raised:
            decode_body(plain, content_type)
        assert "(it " not in raised.value.message


def test_json_nested_past_the_recursion_limit_is_a_bad_body() -> None:
    # json.loads raises RecursionError, no ValueError, for this (within max_body_bytes
    # when it is all brackets: 2 x 20,000 bytes).
    with pytest.raises(RequestError) as raised:
        decode_body(b"[" * 20_000 + b"]" * 20_000, "application/json")
    assert raised.value.message.startswith("body is not valid JSON: ")


def _refusal(data: dict[str, Any]) -> RequestError:
    with pytest.raises(RequestError) as raised:
        parse_request(data)
    return raised.value


def test_the_ip_field_is_read_up_to_max_ip_chars() -> None:
    # A zone pads an address to any length (and is dropped): 64 characters are read
    # (README: "more than 64 characters is a 400"), one more is refused; spaces and
    # brackets around are allowed.
    padded = "fe80::1%" + "e" * (64 - len("fe80::1%"))
    assert str(parse_request({"ip": padded}).request.ip) == "fe80::1"
    assert _refusal({"ip": padded + "e"}).field == "ip"
    assert str(parse_request({"ip": " [192.0.2.7]\n"}).request.ip) == "192.0.2.7"
    missing = _refusal({"hello": "192.0.2.7"})
    assert (missing.message, missing.field) == ("ip is required", "ip")


def _read(parse: Callable[[str], object], text: str) -> object:
    try:
        return parse(text)
    except ValueError:
        return ValueError


_OCTETS = st.sampled_from(["0", "00", "7", "07", "007", "25", "255", "256", "0255", "1000"])


@pytest.mark.parametrize(
    "text",
    ["192.0.2.7", "0.0.0.0", "255.255.255.255", "192.0.2.07", "192.0.2", "192.0.2.7.1",
     "192.0.2.", ".192.0.2.7", "192..2.7", " 192.0.2.7", "192.0.2.7\n", "192.0.2.7/32",
     "192.0.2.7%eth0", "192.0.2.\u0667", "192.0.2.\uff17", "192.0.2.7\x00", "192.0.2.\udc80",
     "+192.0.2.7", "0x7f.0.0.1", "3221225991", "127.1", "::ffff:192.0.2.7", "2001:db8::7", ""],
)  # fmt: skip
def test_addresses_are_read_as_ipaddress_reads_them(text: str) -> None:
    # names.ip_address reads a dotted quad with inet_pton, then leaves the rest to
    # ipaddress: the same address, or a ValueError, for any text.
    assert _read(ip_address, text) == _read(ipaddress.ip_address, text)


@given(
    text=st.lists(_OCTETS, min_size=3, max_size=5).map(".".join)
    | st.text(alphabet=st.sampled_from("0123456789.:%x \n\u0667\x00"), max_size=20)
)
def test_any_text_is_read_as_ipaddress_reads_it(text: str) -> None:
    assert _read(ip_address, text) == _read(ipaddress.ip_address, text)


def test_the_mta_hostname_is_part_of_the_reply_key() -> None:
    # It is shown in the evidence ("MTA hostname: ..."): a reply for one must not be
    # served for another.
    keys = {parse_request({"ip": "192.0.2.7", "hostname": h}).reply_key for h in ("a.net", "b.net")}
    assert len(keys) == 2


@pytest.mark.parametrize(
    ("accept", "msgpack"),
    [("application/msgpack;q=0.5, application/msgpack;q=0", True),  # the highest weight
     ("application/json;q=0.9, application/json;q=0.1, application/msgpack;q=0.5", False),
     ("application/json;q=1.5, application/msgpack", True),  # no qvalue: weight 1
     ("application/msgpack;Q=0", False),  # parameter names are case-insensitive
     ("application/msgpack; q = 0", False),
     # The weight follows the media type's own parameters (section 12.5.1).
     ("application/msgpack; v=5; q=0, application/json", False),
     ("application/json; charset=utf-8; q=0.1, application/msgpack", True)],
)  # fmt: skip
def test_accept_weights(accept: str, msgpack: bool) -> None:
    # RFC 9110 section 12.5.1 (weights), 12.4.2 (qvalue), 5.6.6 (parameters).
    assert wants_msgpack(accept) is msgpack


def test_an_accept_is_read_only_so_far() -> None:
    """Regression (review): every media range of every Accept line was weighed, before
    the token was checked: 31 lines of 4,000 commas (a media range each) cost the event
    loop ~80 ms a request, and 16 connections with no token sending them held a cached
    check 1.2 s, past the plugins' timeout. Read up to MAX_ACCEPT_CHARS and
    MAX_ACCEPT_RANGES now: the longest Accept costs what its start does."""
    assert not wants_msgpack(
        ", ".join(["text/plain"] * MAX_ACCEPT_RANGES + ["application/msgpack"])
    )
    assert not wants_msgpack(" " * MAX_ACCEPT_CHARS + "application/msgpack")
    assert wants_msgpack(
        ", ".join(["text/plain"] * (MAX_ACCEPT_RANGES - 1) + ["application/msgpack"])
    )

    def cost(accept: str) -> float:
        fastest = float("inf")
        for _ in range(5):
            protocol_module._weighs_msgpack.cache_clear()  # weighed afresh, not remembered
            started = time.perf_counter()
            wants_msgpack(accept)
            fastest = min(fastest, time.perf_counter() - started)
        return fastest

    for hostile in ("," * 4000, "a" + ";b" * 2000, "a;q=1," * 666):
        lines = ", ".join(f"{hostile}{n}" for n in range(31))  # as _wants_msgpack joins them
        assert cost(lines) < 10 * cost(lines[:MAX_ACCEPT_CHARS]), hostile[:8]


def test_elapsed_ms_has_three_decimals_in_either_encoding() -> None:
    reply = CheckReply((), 0.0)
    assert reply.to_json(1.23456) == b'{"symbols":[],"score":0.0,"elapsed_ms":1.235}'
    assert reply.to_dict(1.23456)["elapsed_ms"] == 1.235


def test_a_name_too_long_for_its_a_labels_is_not_encoded_label_by_label() -> None:
    """Regression (review): a name of 1,024 characters in one-letter labels that are not
    ASCII ("ü.ü.", as a client may send in its HELO or MAIL FROM, which the memos do not
    keep past 256 characters) had each of its ~500 labels encoded before its length
    refused it: ~3 ms for the HELO and ~6 ms for the sender, on every message. Past
    MAX_NAME_OCTETS once mapped, its A-labels are longer still: refused at once."""
    longest = "ü." * (MAX_NAME_OCTETS // 2) + "ü"  # 253 characters: every label encoded
    assert to_ascii(longest) == ".".join(["xn--tda"] * (MAX_NAME_OCTETS // 2 + 1))
    hostile = ("ü." * 512)[:MAX_FIELD_CHARS]
    assert to_ascii(hostile) is None
    assert parse_helo(hostile).kind is HeloKind.INVALID

    def cost(name: str) -> float:
        fastest = float("inf")
        for _ in range(5):
            names_module._mapped_to_ascii.cache_clear()  # worked out, not remembered
            started = time.perf_counter()
            to_ascii(name)
            fastest = min(fastest, time.perf_counter() - started)
        return fastest

    assert cost(hostile) < cost(longest)  # four times the labels, a fraction of the work


async def test_a_long_name_that_is_not_ascii_is_mapped_once_a_check(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (review): a check mapped a hostile 1,024-character HELO and sender
    domain by UTS46 twice each (the HELO for its check and its allowlist match, the
    domain for its syntax and its tolerated-domain check), ~2.6 ms of the event loop for
    fullwidth letters, since the memos of parse_helo and parse_sender keep nothing of
    text that long. Each distinct text is mapped once (names.NON_ASCII_NAMES_REMEMBERED)."""
    mapped: list[str] = []
    remap = idna.uts46_remap

    def counted(domain: str, std3_rules: bool = True, transitional: bool = False) -> str:
        mapped.append(domain)
        return remap(domain, std3_rules, transitional)

    monkeypatch.setattr(idna, "uts46_remap", counted)
    tag = f"{time.monotonic_ns()}"  # text no other test (nor an earlier run) mapped
    fullwidth = "\uff41" * MAX_FIELD_CHARS  # "a": UTS46 maps each of them to ASCII
    helo = ("mx" + tag + fullwidth)[:MAX_FIELD_CHARS]
    domain = ("x" + tag + fullwidth)[: MAX_FIELD_CHARS - 2]
    data = {"ip": world.MISSING_PTR_IP, "helo": helo, "mail_from": f"a@{domain}"}
    reply = await pipeline.check(parse_request(data).request)
    assert {"RL_HELO_INVALID", "RL_MAILFROM_BAD_SYNTAX"} <= {s.name for s in reply.symbols}
    long = [text for text in mapped if len(text) > MAX_MEMO_CHARS]
    assert set(long) == {helo, domain}
    assert len(long) == 2, f"{len(long)} mappings of the HELO and the sender's domain"


def test_an_overlong_ip_is_refused_before_parsing(service: ScorerProcess) -> None:
    # Regression: parse_ip's cache keyed on the raw text: padded variants of one
    # address (up to max_body_bytes each) grew memory by hundreds of MB.
    body = json.dumps({"ip": " " * 5000 + world.MISSING_PTR_IP}).encode()
    status, reply = _Connection(service.port).post(body, "application/json")
    assert status == 400 and json.loads(reply)["field"] == "ip"


@pytest.mark.parametrize("field", ["helo", "mail_from", "hostname", "queue_id", "user"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bin"])
def test_a_long_field_is_cut_at_max_field_chars_not_refused(field: str, as_bytes: bool) -> None:
    # protocol.MAX_FIELD_CHARS: a value of exactly that length is kept whole, one character
    # more is cut to it (garbage inside a field is evidence, never a 400). A msgpack bin
    # value takes the other path of parse_labels.
    whole = "a" * (MAX_FIELD_CHARS - 1) + "z"
    for value, kept in ((whole, whole), (whole + "b", whole)):
        data = {"ip": "192.0.2.7", field: value.encode() if as_bytes else value}
        if field in LABEL_FIELDS:
            assert parse_labels(data)[LABEL_FIELDS.index(field)] == kept
        else:
            assert getattr(parse_request(data).request, field) == kept


def test_deep_nesting_and_huge_fields(service: ScorerProcess) -> None:
    connection = _Connection(service.port)
    deep_json = b"[" * 100_000 + b"]" * 100_000
    assert connection.post(deep_json, "application/json")[0] in (400, 413)
    deep_msgpack = b"\x91" * 10_000 + b"\xc0"
    assert connection.post(deep_msgpack, "application/msgpack")[0] == 400
    huge = msgpack.packb({"ip": world.MISSING_PTR_IP, "helo": "a" * 15_000})
    status, reply = connection.post(huge, "application/msgpack")
    assert status == 200
    assert "RL_HELO_INVALID" in [s["name"] for s in json.loads(reply)["symbols"]]
    # After all that, the service still answers normal requests.
    status, reply = connection.post(
        json.dumps({"ip": world.MISSING_PTR_IP}).encode(), "application/json"
    )
    assert status == 200 and b"RL_PTR_MISSING" in reply


@pytest.mark.parametrize(
    "mode", ["silent", "servfail", "refused", "truncated", "garbage", "slow", "mismatch"]
)
async def test_dns_faults_give_zero_weight_tempfails_inside_the_deadline(mode: str) -> None:
    server = FaultyDns(mode, delay=1.5).start()
    try:
        config = config_from_mapping(
            {"dns": {"nameservers": [server.nameserver], "timeout": 0.4, "request_deadline": 0.6}}
        )
        started = time.monotonic()
        symbols = await symbols_for(
            Pipeline(config),
            "198.51.100.20",
            helo="mx.faulty-dns.net",
            mail_from="user@faulty-dns.net",
        )
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert elapsed < 0.6 + 0.3
    assert set(symbols) == {"RL_PTR_TEMPFAIL", "RL_HELO_TEMPFAIL", "RL_MAILFROM_TEMPFAIL"}, mode
    assert all(s.score == 0.0 for s in symbols.values())


def test_log_lines_cannot_be_forged(unbound: Unbound) -> None:
    process = ScorerProcess(unbound.nameserver).start()
    try:
        body = json.dumps(
            {"ip": world.MISSING_PTR_IP, "helo": "x\r\n2026-01-01 INFO check ip=1.2.3.4 score=0"}
        ).encode()
        assert _Connection(process.port).post(body, "application/json")[0] == 200
        log = eventually(process.log, lambda text: "check" in text)
        check_lines = [line for line in log.splitlines() if "check" in line]
    finally:
        process.stop()
    assert len(check_lines) == 1, check_lines
    assert "\\x0d\\x0a" in check_lines[0]


def test_json_log_lines_are_one_object_each(unbound: Unbound) -> None:
    process = ScorerProcess(unbound.nameserver, '[server]\nlog_format = "json"\n').start()
    try:
        body = json.dumps(
            {"ip": world.MISSING_PTR_IP, "helo": 'x"\n{"forged": true}', "queue_id": "Q1"}
        ).encode()
        assert _Connection(process.port).post(body, "application/json")[0] == 200
        log = eventually(process.log, lambda text: '"check"' in text)
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    finally:
        process.stop()
    checks = [line for line in lines if line.get("event") == "check"]
    assert len(checks) == 1 and not any("forged" in line for line in lines)
    assert checks[0]["queue_id"] == "Q1"
    assert checks[0]["symbols"] == "RL_PTR_MISSING,RL_HELO_INVALID"
    assert "\\x0a" in checks[0]["helo"]


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    limit=st.integers(8, 60),
)
def test_options_are_capped_without_cutting_an_escape(text: str, limit: int) -> None:
    # Regression: capping cut "\x5c" to "\" at the end of an option.
    shown = option(text, limit)
    assert len(shown) <= limit and shown.isprintable()
    assert only_complete_escapes(shown)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    limit=st.integers(3, 60),
)
def test_an_option_escapes_only_what_it_can_show(text: str, limit: int) -> None:
    # Regression (review): the whole of a 1,024-character hostile HELO was escaped to
    # show 160 of it (~0.5 ms a check). The option is the one the whole text gives.
    safe = escape_option(text)
    whole = safe if len(safe) <= limit else _head(safe, limit - 3) + "..."
    escaped: list[str] = []

    def recorded(piece: str) -> str:
        escaped.append(piece)
        return escape_option(piece)

    with patch("scorer.text.escape_option", recorded):
        assert option(text, limit) == whole
    assert [len(piece) for piece in escaped] == [min(len(text), limit + 1)]


@settings(max_examples=500, deadline=None)
@given(
    name=st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    said=st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40),
    limit=st.integers(8, 80),
)
def test_an_option_naming_keeps_what_it_says_whole(name: str, said: str, limit: int) -> None:
    # Regression (review): a 191-character PTR name pushed "-> 198.51.100.44", why it
    # is unverified, past the cap. The name is shortened in its middle instead, never
    # cutting an escape, and what is said of it is kept whole when it leaves room.
    shown = option_naming(name, said, limit)
    assert len(shown) <= limit and shown.isprintable()
    assert only_complete_escapes(shown)
    safe_name, safe_said = escape_option(name), escape_option(said)
    if len(safe_name) + len(safe_said) <= limit:
        assert shown == safe_name + safe_said
    elif limit - len(safe_said) - 3 >= MIN_NAME_SHOWN:
        assert shown.endswith(safe_said)
        assert "..." in shown[: len(shown) - len(safe_said)]
    else:
        assert shown == option(name + said, limit)


def test_an_option_naming_shortens_the_middle_of_a_long_name() -> None:
    name = "a" * 100 + "\u202e" + "b" * 100
    shown = option_naming(name, " -> 198.51.100.44", 60)
    assert shown == "a" * 20 + "..." + "b" * 20 + " -> 198.51.100.44"
    # At the escape: dropped whole on either side, never cut in two.
    # Exactly at the limit: whole; an odd room gives the head the extra character.
    assert option_naming("a" * 30, "b" * 30, 60) == "a" * 30 + "b" * 30
    shown = option_naming("a" * 50 + "c" * 50, "b" * 16, 60)
    assert shown == "a" * 21 + "..." + "c" * 20 + "b" * 16
    name = "a" * 19 + "\u202e" + "b" * 40 + "\u202e" + "c" * 19
    assert (
        option_naming(name, " -> 198.51.100.44", 60)
        == "a" * 19 + "..." + "c" * 19 + " -> 198.51.100.44"
    )


def _shown_as(text: str) -> str:
    """``text`` as an option shows it, read back: a byte that was not UTF-8 (surrogateescape)
    is the code point of its \\xNN."""
    return "".join(chr(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.characters(codec=None, exclude_categories=())),
    limit=st.integers(3, 60),
)
def test_an_option_reads_back_as_the_start_of_its_text(text: str, limit: int) -> None:
    # Nothing is dropped or changed but at the cut: the escapes read back (each \xNN,
    # \uNNNN, \UNNNNNNNN as its code point) give the text, or its start and "...".
    # And it goes into JSON and a log line as it is: printable, UTF-8, one line.
    shown = option(text, limit)
    json.dumps(shown, ensure_ascii=False).encode("utf-8")
    assert shown.isprintable() and len(shown) <= limit
    cut = len(escape_option(text)) > limit
    body = shown.removesuffix("...") if cut else shown
    read = COMPLETE_ESCAPE.sub(lambda escaped: chr(int(escaped[0][2:], 16)), body)
    assert _shown_as(text).startswith(read) if cut else read == _shown_as(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # A byte that was not UTF-8 (kept by surrogateescape): the byte, as \xNN.
        (b"a\x80b\xffc".decode("utf-8", "surrogateescape"), "a\\x80b\\xffc"),
        # A lone surrogate that is no such byte: a code point like any other.
        ("\udc7f", "\\udc7f"),
        # Below U+0100: \xNN (C0 and C1 controls, DEL, NBSP, soft hyphen).
        ("\x05\r\n\x7f\x85\xa0\xad", "\\x05\\x0d\\x0a\\x7f\\x85\\xa0\\xad"),
        ("a\\b", "a\\x5cb"),  # so that every backslash shown starts one of ours
        # Regression (review): braces end a symbol's options in rspamd's log line, where
        # this HELO forged a symbol of its own.
        ("x},RL_HELO_FORGED_LOCAL(3.00){y", "x\\x7d,RL_HELO_FORGED_LOCAL(3.00)\\x7by"),
        # Below U+10000: \uNNNN (bidi marks and overrides, line separators, nonchars).
        ("\u061c\u202e\u2028\u2029\uffff", "\\u061c\\u202e\\u2028\\u2029\\uffff"),
        # Above: \UNNNNNNNN (a tag, private use); a printable one (an emoji) is kept.
        ("\U000e0001\U000f0000", "\\U000e0001\\U000f0000"),
        ("mx.\U0001f600.example ü", "mx.\U0001f600.example ü"),
        # Regression (review): printable, yet default-ignorable (Unicode's
        # Default_Ignorable_Code_Point), so shown as nothing: CGJ, a Hangul filler, variation
        # selectors (one after an emoji too), a Khmer inherent vowel.
        ("good\u034fsender\u3164", "good\\u034fsender\\u3164"),
        ("\u2764\ufe0f\U000e0100\u17b4", "\u2764\\ufe0f\\U000e0100\\u17b4"),
    ],
)
def test_unsafe_characters_are_escaped_as_bytes_or_code_points(text: str, shown: str) -> None:
    assert escape(text) == shown
    assert option(text) == shown


def test_a_semicolon_in_an_option_is_escaped_as_rspamd_logs_options() -> None:
    # Regression (review): rspamd's per-message log line separates a symbol's options
    # with ";" (SYMBOL(score){option;option;}): this HELO read there as evidence of our
    # own that it resolves to the client. Our own words use none (a null MX's evidence
    # said "names no host; RFC 7505's ..." and read as two options).
    hostile = "x;helo=mx.bank.example resolves to 192.0.2.1"
    assert option(hostile) == "x\\x3bhelo=mx.bank.example resolves to 192.0.2.1"
    assert option_naming(hostile, " -> 1.2.3.4;") == option(hostile) + " -> 1.2.3.4\\x3b"
    assert escape(hostile) == hostile  # a log line quotes it whole: kept there
    assert ";" not in NOT_NULL_MX_TO_THE_LETTER


def test_invisible_characters_are_escaped_where_repr_quotes_values() -> None:
    # Regression (review): escape_unprintable let a variation selector or a Hangul filler
    # through into a terminal or a log line, where it shows as nothing.
    assert escape_unprintable("key\u3164\ufe0f: 'x'") == "key\\u3164\\ufe0f: 'x'"
    assert escape_unprintable("\u2764 {a\\b}") == "\u2764 {a\\b}"  # printable: kept


def test_unsafe_reasons_tell_broken_bytes_from_control_characters() -> None:
    for byte in (b"\x80", b"\xff"):
        assert unsafe_reason(byte.decode("utf-8", "surrogateescape")) == "bytes that are not UTF-8"
    # Regression (review): a no-break space, U+2028, a private-use or unassigned code
    # point were all "control or format characters": each is named for what it is.
    for text, reason in [
        ("\x85", "control characters"),
        ("a\u00adb", "format characters"),
        ("a\u00a0b", "non-ASCII spaces"),
        ("\u2028", "line separators"),
        ("\u2029", "paragraph separators"),
        ("\ue000", "private-use characters"),
        ("\U000e0080", "unassigned code points"),
        ("\udc7f", "lone surrogates"),
        ("\x07\u00a0\u00ad", "control characters, format characters, non-ASCII spaces"),
    ]:
        assert unsafe_reason(text) == reason, text
    # In a name, joiners are IDNA's to judge: not named beside what is unprintable.
    assert unsafe_reason("a\u200db\x07", name=True) == "control characters"


# Each escape form, and the character behind it.
_ESCAPES = [
    (b"\x80".decode("utf-8", "surrogateescape"), "\\x80"),
    ("\x85", "\\x85"),
    ("\\", "\\x5c"),
    ("\u2028", "\\u2028"),
    ("\U000e0001", "\\U000e0001"),
]


@pytest.mark.parametrize(("char", "escaped"), _ESCAPES)
def test_an_option_is_cut_before_an_escape_it_cannot_hold(char: str, escaped: str) -> None:
    # The spec, position by position: an option at the limit is kept whole; a longer one
    # is cut to at most limit - 3 characters, then "...", and a cut never keeps part of
    # an escape (it drops the whole escape).
    limit = 30
    for before in range(limit + 1):
        text = "a" * before + char + "b" * (limit - before)
        shown = option(text, limit)
        keep = limit - 3
        if before >= keep:
            expected = "a" * keep + "..."
        elif before + len(escaped) > keep:
            expected = "a" * before + "..."
        else:
            expected = ("a" * before + escaped + "b" * limit)[:keep] + "..."
        assert shown == expected, (before, shown)


def test_an_option_exactly_at_the_limit_is_kept_whole() -> None:
    assert option("a" * OPTION_MAX_CHARS) == "a" * OPTION_MAX_CHARS
    assert option("a" * (OPTION_MAX_CHARS + 1)) == "a" * (OPTION_MAX_CHARS - 3) + "..."
    # The limit counts what is shown: escapes count with their full length.
    assert option("\x85" * 40) == "\\x85" * 40  # 160 characters
    assert option("a" + "\x85" * 40) == "a" + "\\x85" * 39 + "..."
    assert option("\u2028" * 4, 24) == "\\u2028" * 4  # 24 characters: at the limit
    assert option("\u2028" * 4, 23) == "\\u2028" * 3 + "..."
    # The documented cap (docs/security.md: "Options are capped at 160 characters").
    security = (Path(__file__).parents[1] / "docs" / "security.md").read_text()
    assert f"Options are capped at {OPTION_MAX_CHARS} characters" in security
    assert OPTION_MAX_CHARS == 160


def test_a_client_streaming_past_a_refusal_is_cut_off_soon(service: ScorerProcess) -> None:
    """Regression (review): after a refusal that leaves the body unread (here a 413 on
    its Content-Length), aiohttp read and dropped what the client went on sending for
    10 s before closing: anyone, token or not, kept a connection and the loop busy that
    long (one client streamed 1.2 GB into it). Now UNREAD_BODY_SECONDS."""
    host, port = service.address.rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000000\r\n\r\n"
    )
    assert connection.recv(65536).startswith(b"HTTP/1.1 413 ")
    refused = time.monotonic()
    chunk = b"x" * 65536
    with contextlib.suppress(OSError):  # the server's close resets the sending side
        while time.monotonic() - refused < 15:
            connection.sendall(chunk)
    closed_after = time.monotonic() - refused
    connection.close()
    assert closed_after < app_module.UNREAD_BODY_SECONDS + 2, closed_after
    with urllib.request.urlopen(f"{service.url}/healthz", timeout=5) as serving_on:
        assert serving_on.status == 200


def test_a_408_closes_its_connection_once_answered(service: ScorerProcess) -> None:
    """Regression (review): after the 408 of a body that did not arrive within 2 s, the
    connection stayed open (and counted in rdns_scorer_connections_open and against
    max_connections) UNREAD_BODY_SECONDS more, waiting for the rest of a body from a
    client that had had its time. Now it closes once the 408 is sent."""
    host, port = service.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        assert connection.recv(65536).startswith(b"HTTP/1.1 408 ")
        answered = time.monotonic()
        assert connection.recv(65536) == b""  # closed by the server
        closed_after = time.monotonic() - answered
    assert closed_after < app_module.UNREAD_BODY_SECONDS / 4, closed_after


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_header_lines_a_client_sends_cost_little_memory(unbound: Unbound) -> None:
    """Regression (review): aiohttp's defaults let a request's headers run to 128 lines
    of 8,190 bytes, each kept as bytes and again as text until the headers end (for up
    to 75 s): 40 connections with no token, each sending 127 lines of 4,000 bytes that
    are no UTF-8, grew the service by ~60 MB (~300 MB with lines of 8,190 bytes), which
    it never gave back. Now the 33rd line is refused: ~17 MB."""
    process = ScorerProcess(unbound.nameserver, "[server]\nlog_requests = false\n").start()
    try:
        before = _rss_kib(process.pid)
        line = b"X-Filler: " + b"\xff" * 4000 + b"\r\n"
        connections = []
        for _ in range(40):
            connection = socket.create_connection(("127.0.0.1", process.port), timeout=5)
            with contextlib.suppress(OSError):  # refused and closed mid-way: the fix
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + line * 127)
            connections.append(connection)
        # Served meanwhile: whatever the connections hold was read by then.
        with urllib.request.urlopen(f"{process.url}/healthz", timeout=5) as reply:
            assert reply.status == 200
        grown_mib = (_rss_kib(process.pid) - before) / 1024
        for connection in connections:
            connection.close()
        assert grown_mib < 40, f"{grown_mib:.0f} MiB for 40 connections"
    finally:
        process.stop()


def test_a_request_that_cannot_be_parsed_ends_the_reading(unbound: Unbound) -> None:
    """Regression (review): after a request it could not parse (here a header line past
    MAX_HEADER_LINE_BYTES), aiohttp went on feeding what the client sent to its failed
    parser, and each read made one more queued error quoting that whole read (~0.8 MB
    each, up to 32 a connection): 50 connections with no token streaming one header line
    grew the service by ~360 MB (40 here, 149 MiB), never given back. Now nothing more is
    read once a request could not be parsed (scorer.connections.ParsingHandler)."""
    process = ScorerProcess(unbound.nameserver, "[server]\nlog_requests = false\n").start()
    try:
        before = _rss_kib(process.pid)
        replies: list[bytes] = []

        def stream_a_header_line() -> None:
            connection = socket.create_connection(("127.0.0.1", process.port), timeout=5)
            with connection, contextlib.suppress(OSError):  # refused and reset mid-way
                connection.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nX-Filler: ")
                for _ in range(48):
                    connection.sendall(b"a" * 65536)
                replies.append(connection.recv(65536))

        streams = [threading.Thread(target=stream_a_header_line) for _ in range(40)]
        for stream in streams:
            stream.start()
        for stream in streams:
            stream.join()
        with urllib.request.urlopen(f"{process.url}/healthz", timeout=5) as reply:
            assert reply.status == 200
        grown_mib = (_rss_kib(process.pid) - before) / 1024
        assert all(reply.startswith(b"HTTP/1.0 400 ") for reply in replies if reply)
        assert grown_mib < 40, f"{grown_mib:.0f} MiB for 40 connections"
    finally:
        process.stop()


def _established_to(port: int) -> int:
    """Connections the service (listening on ``port``) holds open, as ``ss`` sees them."""
    shown = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return len(shown.stdout.splitlines())


def test_a_client_that_never_reads_its_replies_is_dropped(service: ScorerProcess) -> None:
    """Regression (review): a client pipelining requests and reading none of the replies
    (its receive window at zero) held its connection, the replies waiting to go out and
    up to 32 parsed requests (~12 MB with long headers, no token needed) for ever, since
    aiohttp's writes have no deadline. The kernel drops it now (TCP_USER_TIMEOUT)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # fills at once
    client.connect(("127.0.0.1", service.port))
    try:
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"  # ~20 KB each reply
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in range(200):
                client.send(request)
        assert _established_to(service.port) == 1
        # Zero-window probes back off from 0.2 s: the first after the deadline at ~12.6 s.
        limit = workers_module.UNREAD_REPLY_SECONDS + 10
        started = time.monotonic()
        assert eventually(lambda: _established_to(service.port), lambda n: n == 0, limit) == 0
        assert time.monotonic() - started >= workers_module.UNREAD_REPLY_SECONDS - 2
        with urllib.request.urlopen(f"{service.url}/healthz", timeout=5) as reply:
            assert reply.status == 200  # and it goes on serving
    finally:
        client.close()


def test_a_request_with_as_many_header_lines_as_taken_is_answered(
    service: ScorerProcess,
) -> None:
    # The limits leave room for what clients send (a browser asking /metrics sends about
    # 20 lines; a line at the limit and the last line taken are fine, one more is not.
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    longest = b"X-Long: " + b"a" * app_module.MAX_HEADER_LINE_BYTES + b"\r\n"
    lines = [b"X-Line-%d: 1\r\n" % n for n in range(app_module.MAX_HEADER_LINES - 3)]
    taken = head + longest + b"".join(lines) + b"Connection: close\r\n\r\n"
    assert _raw_exchange(service.port, taken).startswith(b"HTTP/1.1 200 ")
    one_line_too_many = head + longest + b"".join(lines) + b"X-More: 1\r\nConnection: close\r\n\r\n"
    assert _raw_exchange(service.port, one_line_too_many).startswith(b"HTTP/1.0 400 ")
    too_long = head + longest.replace(b"a", b"aa", 1) + b"Connection: close\r\n\r\n"
    assert _raw_exchange(service.port, too_long).startswith(b"HTTP/1.0 400 ")


def test_a_request_target_past_its_limit_is_refused_unrouted(service: ScorerProcess) -> None:
    """Regression (review): aiohttp's router looks for a path's resource by shortening it
    one segment at a time, each a new string: a path of 8,000 slashes (its default limit
    on the request line, 8,190 bytes) took the event loop ~10 ms, token or not, and 16
    connections sending them held every check ~160 ms. The target is refused past
    MAX_REQUEST_TARGET_BYTES now, before any routing."""
    limit = app_module.MAX_REQUEST_TARGET_BYTES

    def request(target: bytes) -> bytes:
        return b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    routed = _raw_exchange(service.port, request(b"/" * limit))
    assert routed.startswith(b"HTTP/1.1 404 "), routed[:80]  # ours: JSON, counted
    assert b'"field":"path"' in routed
    refused = _raw_exchange(service.port, request(b"/" * (limit + 1)))
    assert refused.startswith(b"HTTP/1.0 400 "), refused[:80]
    with_query = _raw_exchange(service.port, request(b"/metrics?" + b"a" * (limit - 9)))
    assert with_query.startswith(b"HTTP/1.1 200 "), with_query[:80]


def test_the_listen_queue_holds_a_burst_of_new_connections(service: ScorerProcess) -> None:
    # Regression (review): aiohttp's default backlog of 128 overflowed under a burst of
    # new connections while the loop was busy: clients retried the handshake after 1 s,
    # 3 s, past the plugin's timeout, instead of getting max_in_flight's 503 at once.
    # `ss` shows a listening socket's backlog as its Send-Q.
    listing = subprocess.run(
        ["ss", "-Hltn", f"sport = :{service.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listing[0] == "LISTEN", listing
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(listing[2]) == min(4096, somaxconn) > 128


# -- open connections ([server] max_connections: scorer.connections) ------------------


def _open_at_once(port: int, count: int) -> list[socket.socket]:
    """``count`` connections to ``port`` started together (non-blocking connects), so
    that the service accepts them as a burst, in one turn of its event loop."""
    clients = []
    for _ in range(count):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        clients.append(client)
    return clients


def _kept_and_refused(clients: list[socket.socket]) -> tuple[list[socket.socket], list[bytes]]:
    """The clients the service keeps open (nothing to read, no close, within a grace
    time) and what each of the others read before its connection ended."""
    time.sleep(0.5)
    kept, refused = [], []
    for client in clients:
        client.settimeout(0.2)
        received = b""
        try:
            while chunk := client.recv(4096):
                received += chunk
        except TimeoutError:
            kept.append(client)
            continue
        except ConnectionResetError:  # the service closed with the client's bytes unread
            pass
        refused.append(received)
    return kept, refused


def _connection_metrics(monitor: http.client.HTTPConnection) -> dict[str, float]:
    """The service's rdns_scorer_connections_* samples, scraped through ``monitor``, a
    connection kept open (a new one could be refused, or go on counting a moment after
    it closed)."""
    monitor.request("GET", "/metrics")
    reply = monitor.getresponse()
    assert reply.status == 200
    found = re.findall(r"^(rdns_scorer_connections_\w+) (\S+)$", reply.read().decode(), re.M)
    return {name: float(value) for name, value in found}


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_connections_past_max_connections_get_a_503_and_are_closed(
    unbound: Unbound, event_loop: str
) -> None:
    """Regression (review): the open connections were not bounded. Headers are read
    before the token, so anyone reaching the port could make each one hold ~330 KB for
    up to 75 s. A burst, accepted in one turn of the event loop, must not slip past the
    limit either: a handler counts in aiohttp's connections only from the loop's next
    turn."""
    toml = (
        f"[server]\nlog_requests = false\nmax_connections = 4\nmax_in_flight = 4\n"
        f'event_loop = "{event_loop}"\n'
    )
    process = ScorerProcess(unbound.nameserver, toml).start()
    monitor = http.client.HTTPConnection("127.0.0.1", process.port, timeout=5)
    clients: list[socket.socket] = []
    try:
        # Once start()'s probe of the port is gone: the monitor alone.
        eventually(
            lambda: _connection_metrics(monitor)["rdns_scorer_connections_open"], (1.0).__eq__
        )
        clients = _open_at_once(process.port, 40)
        kept, refused = _kept_and_refused(clients)
        assert len(kept) == 3
        assert len(refused) == 37
        # Each read the 503 whole, or was reset before it could (the request it sent
        # was unread: the plugins fail open on either); here nothing was sent.
        whole = [reply for reply in refused if reply]
        assert whole and all(reply.startswith(b"HTTP/1.1 503 ") for reply in whole)
        head, body = whole[0].split(b"\r\n\r\n", 1)
        assert b"\r\nRetry-After: 1\r\n" in head and b"\r\nConnection: close" in head
        assert json.loads(body) == {
            "error": "too many connections, retry later",
            "field": "service",
        }
        # Those kept are served as any other.
        kept[0].setblocking(True)
        kept[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept[0].recv(4096).startswith(b"HTTP/1.1 200 ")
        assert _connection_metrics(monitor) == {
            "rdns_scorer_connections_refused_total": 37,
            "rdns_scorer_connections_open": 4,
        }
        log = eventually(process.log, lambda text: "connection(s) refused" in text)
        assert re.search(
            r"WARNING 1 connection\(s\) refused with 503 since the last such line: "
            r'"4 or more connections were open" \(field service; the latest from 127\.0\.0\.1\); '
            r"\[server\] max_connections were open: see who holds them",
            log,
        ), log
        # A reload applies to the next connection: two more now.
        process.config_path.write_text(toml.replace("max_connections = 4", "max_connections = 6"))
        os.kill(process.pid, signal.SIGHUP)
        eventually(process.log, lambda text: "config reloaded on SIGHUP" in text)
        more, _ = _kept_and_refused(_open_at_once(process.port, 10))
        clients += more
        assert len(more) == 2
    finally:
        monitor.close()
        for client in clients:
            client.close()
        process.stop()


# -- content codings (scorer.contentcoding) ---------------------------------------------


@pytest.mark.parametrize(
    ("lines", "coding"),
    [
        ([], "identity"),
        ([""], "identity"),
        (["identity"], "identity"),
        # Regression (review): empty list elements were a 415 (RFC 9110 section 5.6.1).
        (["identity,"], "identity"),
        ([" , "], "identity"),
        (["GZip"], "gzip"),
        (["x-gzip"], "gzip"),  # RFC 9110 section 8.4.1.3
        (["identity", "deflate"], "deflate"),  # lines make one list
    ],
)
def test_the_body_coding_is_read_from_every_content_encoding_line(
    lines: list[str], coding: str
) -> None:
    assert body_coding(lines) == coding


@pytest.mark.parametrize("lines", [["br"], ["zstd"], ["gzip, deflate"], ["gzip", "gzip"], ["foo"]])
def test_a_coding_or_a_stack_we_do_not_decode_is_refused(lines: list[str]) -> None:
    with pytest.raises(UnsupportedCoding):
        body_coding(lines)


def test_a_long_content_encoding_is_refused_unread() -> None:
    """Regression (review): every element of every Content-Encoding line was split and
    lowered: 31 lines of 4,000 commas cost the event loop ~7 ms a request, and 16
    connections sending them held a cached check ~160 ms. Past MAX_CODINGS_CHARS it is
    a 415 now, whatever it lists: its cost is that of its first characters."""
    assert body_coding(["identity, " * 25 + "gzip"]) == "gzip"  # 254 characters
    with pytest.raises(UnsupportedCoding, match=r"^identity, identity"):
        body_coding(["identity, " * 25 + "gzip", "gzip"])  # 258

    def cost(lines: list[str]) -> float:
        fastest = float("inf")
        for _ in range(20):
            started = time.perf_counter()
            with contextlib.suppress(UnsupportedCoding):
                body_coding(lines)
            fastest = min(fastest, time.perf_counter() - started)
        return fastest

    # As many lines, only just past the limit together (279 characters): as much to do.
    assert cost(["," * 4000 + str(n) for n in range(31)]) < 10 * cost(["," * 8 + "1"] * 31)
    assert MAX_CODINGS_CHARS < 31 * 9


BODY = json.dumps({"ip": world.MISSING_PTR_IP, "helo": "mx.example.net"}).encode()


def _flipped(data: bytes, at: int) -> bytes:
    """``data`` with the lowest bit of its byte ``at`` flipped."""
    changed = bytearray(data)
    changed[at] ^= 1
    return bytes(changed)


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("gzip", gzip.compress(BODY[:20]) + gzip.compress(BODY[20:])),  # RFC 1952 section 2.2
        ("deflate", zlib.compress(BODY)),  # the zlib format, as RFC 9110 says
        ("deflate", zlib.compress(BODY)[2:-4]),  # raw deflate, as some clients send it
        ("identity", BODY),
    ],
)
def test_a_whole_body_decodes(coding: str, encoded: bytes) -> None:
    assert decode_content(encoded, coding, limit=len(BODY)) == BODY


@pytest.mark.parametrize(
    ("coding", "encoded", "why"),
    [
        ("gzip", gzip.compress(BODY)[:-8], "the body ends before its compressed stream"),
        ("gzip", gzip.compress(BODY)[:10], "the body ends before its compressed stream"),
        ("gzip", _flipped(gzip.compress(BODY), -8), "incorrect data check"),  # the CRC
        ("gzip", _flipped(gzip.compress(BODY), -4), "incorrect length check"),
        ("gzip", BODY, "incorrect header check"),
        ("deflate", zlib.compress(BODY)[:-1], "the body ends before its compressed stream"),
        ("deflate", zlib.compress(BODY) + b"x", "data after the end of the compressed stream"),
        ("deflate", _flipped(zlib.compress(BODY), -1), "incorrect data check"),  # Adler-32
    ],
)
def test_a_body_that_does_not_decode_says_why(coding: str, encoded: bytes, why: str) -> None:
    with pytest.raises(UndecodableBody) as error:
        decode_content(encoded, coding, limit=16384)
    assert str(error.value) == f"{coding}: {why}"


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compression_bomb_is_refused_without_decoding_it_all(
    coding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = zlib.decompressobj
    decoded: list[int] = []

    class Counting:
        """zlib's decompressor, counting what each call decodes."""

        def __init__(self, wbits: int) -> None:
            self._real = made(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._real.decompress(data, max_length)
            decoded.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    bomb = _compressed(coding, b"\x00" * 50_000_000)  # ~50 KB that would be 50 MB
    with pytest.raises(DecodedTooLarge):
        decode_content(bomb, coding, limit=16384)
    assert decoded and max(decoded) <= 16385  # one byte past the limit, no more
    exact = _compressed(coding, b"x" * 16384)
    assert len(decode_content(exact, coding, limit=16384)) == 16384  # the limit itself is fine


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_an_empty_coded_body_is_empty(coding: str) -> None:
    # No first byte to tell raw deflate by (an IndexError, a 500, before the guard).
    assert decode_content(b"", coding, limit=16384) == b""


def test_a_gzip_body_of_many_members_is_refused() -> None:
    # Regression (review): each member copied the rest of the body, and empty ones
    # decode to nothing: 1 MiB of them held the loop for seconds.
    members = gzip.compress(b"") * 16
    assert decode_content(members, "gzip", limit=16384) == b""
    with pytest.raises(UndecodableBody, match="gzip: more than 16 members"):
        decode_content(members + gzip.compress(b""), "gzip", limit=16384)


def test_zero_bytes_after_the_last_gzip_member_are_padding() -> None:
    # As Python's gzip module reads them (tape-style writers pad files so).
    assert decode_content(gzip.compress(BODY) + b"\x00" * 7, "gzip", limit=16384) == BODY
    with pytest.raises(UndecodableBody):
        decode_content(gzip.compress(BODY) + b"\x00x", "gzip", limit=16384)


def test_a_body_that_decodes_past_the_limit_is_a_counted_413(service: ScorerProcess) -> None:
    # Under the limit as sent (~60 bytes), far above it decoded: the limit is the decoded
    # size's too (a 400, or no limit at all, would have let a bomb be parsed).
    before = _requests_by_status(service).get("413", 0)
    body = gzip.compress(b" " * 20_000 + json.dumps({"ip": world.MISSING_PTR_IP}).encode())
    request = (
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    reply = _raw_exchange(service.port, request)
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"] == "body larger than 16384 bytes"
    assert _requests_by_status(service)["413"] == before + 1


_CHECKS_IMPORT_NOTHING = """
import asyncio, json, sys
from scorer.app import Service
from scorer.config import config_from_mapping
from scorer.names import load_public_suffixes

load_public_suffixes()  # as a worker builds them at start
dns = {"nameservers": ["127.0.0.1:%d"], "timeout": 0.2, "request_deadline": 0.3}
service = Service(config_from_mapping({"dns": dns}))
loaded = set(sys.modules)
bodies = [
    {"ip": "81.2.69.160", "helo": "mx.bücher.de", "mail_from": "a@bücher.de"},
    {"ip": "2001:db8::1", "helo": "[IPv6:2001:db8::1]", "mail_from": '"quoted"@example.com'},
    {"ip": "81.2.69.161", "helo": "\\uff4dail.example.com", "mail_from": "ü@xn--bcher-kva.de"},
    {"ip": "81.2.69.162", "helo": "mail.i❤.ws", "mail_from": "<@a.example:x@[192.0.2.1]>"},
]


async def main() -> None:
    for body in bodies:
        await service.answer(service.pipeline, json.dumps(body).encode(), "application/json", False)


asyncio.run(main())
print(sorted(set(sys.modules) - loaded))
"""


def test_a_check_reads_no_module_from_disk() -> None:
    # Regression (review): idna imported its UTS46 table on the first non-ASCII HELO,
    # in the middle of a check; in a process out of file descriptors that import failed
    # (EMFILE) and the check was a 500 with a traceback. Everything a check uses is
    # loaded when the service starts.
    script = _CHECKS_IMPORT_NOTHING % dead_port()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
