"""The HTTP service: wire formats, error statuses, health endpoints, CLI agreement."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dns.rdatatype
import msgpack
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST
from yarl import URL

from scorer import app as app_module
from scorer.app import SERVICE_KEY, create_app
from scorer.checks.ptr import PtrFacts, check_ptr
from scorer.config import Config, config_from_mapping
from scorer.dns import layer as layer_module
from scorer.dns.layer import DnsLayer, Nameserver
from scorer.dns.outcomes import Answer, FailureKind, NotFound, NotFoundKind, TempFail
from scorer.dns.wire import reverse_name
from scorer.pipeline import Pipeline
from scorer.protocol import CheckReply, RequestError, SymbolResult, parse_request
from scorer.report import REFUSED_HINT, UNTRUSTED_HINT, render_report
from scorer.symbols import SYMBOLS
from tests import world
from tests.helpers import KnownAnswers, symbols_for
from tests.support.fakedns import FaultyDns
from tests.support.service import ScorerProcess
from tests.support.unbound import Unbound

MSGPACK = {"Content-Type": "application/msgpack"}
Client = TestClient[Any, Any]


async def test_json_request_json_reply(client: Client) -> None:
    response = await client.post("/v1/check", json={"ip": world.MISSING_PTR_IP, "extra": 1})
    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"symbols", "score", "elapsed_ms"}
    assert [s["name"] for s in body["symbols"]] == ["RL_PTR_MISSING"]
    assert isinstance(body["score"], float) and body["score"] > 0
    assert all(isinstance(o, str) for o in body["symbols"][0]["options"])


@pytest.mark.parametrize("accept", ["Application/MsgPack", "text/html, application/x-msgpack"])
async def test_accept_is_read_case_insensitively(client: Client, accept: str) -> None:
    # Regression: "Application/MsgPack" got a JSON reply.
    response = await client.post(
        "/v1/check", json={"ip": world.MISSING_PTR_IP}, headers={"Accept": accept}
    )
    assert response.content_type == "application/msgpack"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/msgpack;q=0, application/json", "application/json"),
        ("application/msgpack; q=0", "application/json"),
        ("application/msgpack;q=0.5, application/json", "application/json"),
        ("application/json;q=0.5, application/msgpack;q=0.9", "application/msgpack"),
        ("application/msgpack, application/json", "application/msgpack"),
        ("application/msgpack;q=0.5, */*;q=0.1", "application/msgpack"),
        ("application/msgpack;q=0.5, application/*;q=0.1, */*", "application/msgpack"),
        ("application/msgpack;q=nonsense", "application/msgpack"),
        ("application/msgpack;q=1e-3, application/json;q=0.5", "application/msgpack"),
        ("application/msgpack;q=0.5", "application/msgpack"),  # JSON not named: weight 0
        ("application/x-msgpack;q=0.9, text/plain", "application/msgpack"),
        ("application/json;q=0, application/json, application/msgpack;q=0.5", "application/json"),
        ("*/*", "application/json"),
        ("text/plain", "application/json"),
    ],
)
async def test_accept_weights_are_honoured(client: Client, accept: str, expected: str) -> None:
    # Regression: "application/msgpack;q=0" (not acceptable, RFC 9110 section 12.4.2)
    # got msgpack, as did a msgpack the client weighted below JSON.
    response = await client.post(
        "/v1/check", json={"ip": world.MISSING_PTR_IP}, headers={"Accept": accept}
    )
    assert response.content_type == expected


@pytest.mark.parametrize("path", ["/v1/check", "/v1/nowhere"])
async def test_accept_over_several_lines_is_read_as_one_list(client: Client, path: str) -> None:
    # Regression (fuzzing): only the first Accept line was read, so "application/json"
    # then "application/msgpack" got JSON, where the same two on one line get msgpack (a
    # tie goes to msgpack). RFC 9110 section 5.3: a field's lines make one list.
    lines = CIMultiDict([("Accept", "application/json"), ("Accept", "application/msgpack")])
    response = await client.post(path, json={"ip": world.MISSING_PTR_IP}, headers=lines)
    assert response.content_type == "application/msgpack"


async def test_msgpack_request_msgpack_reply_uses_floats_only(client: Client) -> None:
    request = msgpack.packb({"ip": world.CONFIRMED_IP, "helo": "[IPv6:2001:db8::99]"})
    response = await client.post(
        "/v1/check", data=request, headers={**MSGPACK, "Accept": "application/msgpack"}
    )
    assert response.status == 200
    assert response.content_type == "application/msgpack"
    body = msgpack.unpackb(await response.read())

    def walk(value: object) -> None:
        # rspamd 3.4's libucl garbles negative ints and crashes on bin; nil is truthy there.
        assert value is not None and not isinstance(value, bytes | bool)
        assert not isinstance(value, int), f"integer {value} in a msgpack reply"
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        if isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    assert body["symbols"][0]["name"] == "RL_HELO_LITERAL_MISMATCH"


async def test_invalid_utf8_in_a_msgpack_str_is_evidence_not_an_error(client: Client) -> None:
    helo = b"mx\xff\xfe.example.net"  # a msgpack str (as rspamd sends) holding invalid UTF-8
    request = (
        b"\x82\xa2ip"
        + msgpack.packb(world.CONFIRMED_IP)
        + b"\xa4helo"
        + bytes([0xA0 + len(helo)])
        + helo
    )
    response = await client.post("/v1/check", data=request, headers=MSGPACK)
    assert response.status == 200
    body = await response.json()
    assert [s["name"] for s in body["symbols"]] == ["RL_HELO_INVALID"]
    assert "helo=mx\\xff\\xfe.example.net" in body["symbols"][0]["options"], "the bytes, escaped"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/check", msgpack.packb({"ip": world.CONFIRMED_IP})),
        ("POST", "/v1/check", msgpack.packb({"ip": "not an address"})),  # a 400 that read it all
        ("GET", "/healthz", b""),
        ("GET", "/no/such/path", b""),
    ],
    ids=["check", "refused-check", "healthz", "not-found"],
)
async def test_replies_say_the_connection_is_kept_alive(
    client: Client, method: str, path: str, body: bytes
) -> None:
    """Regression: rspamd pools a connection only when the reply says "Connection:
    keep-alive", which aiohttp leaves out of HTTP/1.1 replies (keep-alive is the
    default there): every scan opened a new connection to the service."""
    response = await client.request(method, path, data=body, headers=MSGPACK)
    assert response.headers["Connection"] == "keep-alive"


async def test_a_connection_that_ends_says_so(client: Client) -> None:
    """Neither a client's "Connection: close" nor a reply after which we close (a body
    that cannot be read) is answered with "keep-alive"."""
    asked_to_close = await client.post(
        "/v1/check",
        data=msgpack.packb({"ip": world.CONFIRMED_IP}),
        headers={**MSGPACK, "Connection": "close"},
    )
    assert asked_to_close.status == 200
    assert asked_to_close.headers["Connection"] == "close"
    unreadable = await client.post(
        "/v1/check", data=b"not gzip", headers={**MSGPACK, "Content-Encoding": "gzip"}
    )
    assert unreadable.status == 400
    assert unreadable.headers["Connection"] == "close"


async def test_msgpack_bin_keys_and_values_are_read_as_text(client: Client) -> None:
    request = msgpack.packb(
        {b"ip": world.CONFIRMED_IP.encode(), b"helo": b"mx\xff\xfe.example.net"}
    )
    response = await client.post("/v1/check", data=request, headers=MSGPACK)
    assert response.status == 200
    body = await response.json()
    assert [s["name"] for s in body["symbols"]] == ["RL_HELO_INVALID"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        # No body (Content-Length: 0): aiohttp's empty stream, read as b"" like any other.
        (b"", "body"),
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"{}", "ip"),
        (b'{"ip": 17}', "ip"),
        (b'{"ip": "300.1.1.1"}', "ip"),
        # Regression: no client connects from these; they scored RL_PTR_MISSING (5).
        (b'{"ip": "0.0.0.0"}', "ip"),
        # Regression (review): nor from the rest of 0.0.0.0/8 (RFC 1122 section 3.2.1.3).
        (b'{"ip": "0.1.2.3"}', "ip"),
        (b'{"ip": "0.255.255.255"}', "ip"),
        (b'{"ip": "::ffff:0.0.0.9"}', "ip"),
        (b'{"ip": "::ffff:0.200.0.1"}', "ip"),
        (b'{"ip": "::"}', "ip"),
        (b'{"ip": "255.255.255.255"}', "ip"),
        (b'{"ip": "224.0.0.1"}', "ip"),
        (b'{"ip": "ff02::1"}', "ip"),
        (b'{"ip": "192.0.2.1", "helo": ["x"]}', "helo"),
        (b'{"ip": "192.0.2.1", "mail_from": 5}', "mail_from"),
    ],
)
async def test_bad_json_bodies_are_400_naming_the_field(
    client: Client, body: bytes, field: str
) -> None:
    response = await client.post(
        "/v1/check", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    reply = await response.json()
    assert reply["field"] == field
    assert reply["error"]


def test_the_first_client_address_past_0_0_0_0_8_is_one() -> None:
    # 0.0.0.0/8 and nothing more: 1.0.0.0/8 is APNIC's, real clients' (mutation review).
    assert str(parse_request({"ip": "1.0.0.1"}).request.ip) == "1.0.0.1"


async def test_a_json_body_may_start_with_a_byte_order_mark(client: Client) -> None:
    # RFC 8259 section 8.1 lets a parser ignore one; it was a 400 in json's words
    # ("Unexpected UTF-8 BOM (decode using utf-8-sig)").
    body = b"\xef\xbb\xbf" + json.dumps({"ip": world.MISSING_PTR_IP}).encode()
    response = await client.post(
        "/v1/check", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 200
    assert [s["name"] for s in (await response.json())["symbols"]] == ["RL_PTR_MISSING"]


async def test_bad_msgpack_is_400(client: Client) -> None:
    for body in (b"\xc1", b"\x92\x01", msgpack.packb(["ip"]), b"\x81\xa2ip"):
        response = await client.post("/v1/check", data=body, headers=MSGPACK)
        assert response.status == 400, body


async def test_body_over_the_limit_is_413(client: Client) -> None:
    body = json.dumps({"ip": world.CONFIRMED_IP, "helo": "x" * 20000}).encode()
    response = await client.post(
        "/v1/check", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert (await response.json())["field"] == "body"


async def test_chunked_body_over_the_limit_is_413(client: Client) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b" " * 1024

    response = await client.post(
        "/v1/check", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    # aiohttp's own refusal (client_max_size) is told as ours: JSON, naming the limit.
    assert await response.json() == {"error": "body larger than 16384 bytes", "field": "body"}


async def test_other_content_types_are_415(client: Client) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        response = await client.post(
            "/v1/check", data=b'{"ip": "192.0.2.1"}', headers={"Content-Type": content_type}
        )
        assert response.status == 415, content_type
        # Regression (docs walkthrough): it named the body, not the header at fault.
        assert (await response.json())["field"] == "Content-Type"


@pytest.mark.parametrize(
    ("content_type", "media_type"),
    [("application/json; charset=utf-8", "application/json"),
     ("Application/MsgPack", "application/msgpack"),
     (" application/json\t;x", "application/json"),
     ("application/json (c)", "application/json (c)"),  # as aiohttp reads it: no comments
     ("application / json", "application / json"),
     ("", "")],
)  # fmt: skip
def test_the_media_type_is_what_comes_before_the_parameters(
    content_type: str, media_type: str
) -> None:
    assert app_module.media_type(content_type) == media_type


async def test_a_long_content_type_costs_what_a_short_one_does(client: Client) -> None:
    """Regression (review): a Content-Type that was not one of ours exactly went to
    aiohttp's request.content_type, which reads it with the email package's header
    parser (remembering 56): one line of 4,000 semicolons, a new one each time, held
    the event loop ~200 ms, anyone's, token or not (none here), and every check waited
    behind it."""
    sent = itertools.count()

    async def cost(content_type: str) -> float:
        fastest = float("inf")
        for _ in range(3):
            started = asyncio.get_running_loop().time()
            headers = {"Content-Type": f"{content_type}{next(sent)}"}  # never seen before
            response = await client.post("/v1/check", data=b"{}", headers=headers)
            assert response.status == 415
            fastest = min(fastest, asyncio.get_running_loop().time() - started)
        return fastest

    assert await cost("a" + ";" * 4000) < 10 * await cost("a;")


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/json ;charset=UTF-8"],
)
async def test_a_content_type_with_parameters_or_in_another_case_is_read(
    client: Client, content_type: str
) -> None:
    # Media types are case-insensitive and may carry parameters (RFC 9110 section 8.3.1).
    response = await client.post(
        "/v1/check", data=b'{"ip": "10.1.1.1"}', headers={"Content-Type": content_type}
    )
    assert response.status == 200, await response.text()
    # The body was read: its client is the one judged (review: the status alone).
    [skipped] = (await response.json())["symbols"]
    assert skipped["name"] == "RL_SKIPPED_LOCAL" and skipped["options"][0].startswith("10.1.1.1")


@pytest.mark.parametrize(
    "hostname",
    ["unknown", "Unknown", "UNKNOWN", " unknown ", "[192.0.2.1]", "[IPv6:2001:db8::1]", "", " "],
)
def test_an_mta_hostname_naming_no_host_is_no_hostname(hostname: str) -> None:
    # protocol._mta_hostname: Postfix says "unknown" (Sendmail, others "Unknown"), or the
    # bracketed address, when the client has no name: read as none (None), so it shares
    # the reply-cache key of a request without a hostname and is never shown as evidence.
    parsed = parse_request({"ip": "192.0.2.1", "hostname": hostname})
    assert parsed.request.hostname is None
    assert parsed.reply_key == parse_request({"ip": "192.0.2.1"}).reply_key


def test_an_mta_hostname_is_kept_without_its_spaces() -> None:
    for hostname in ("mx.example.net", " mx.example.net ", "unknown.example.net"):
        parsed = parse_request({"ip": "192.0.2.1", "hostname": hostname})
        assert parsed.request.hostname == hostname.strip()


@pytest.mark.parametrize(
    "tagged", ["IPv6:{}", "ipv6:{}", "[IPv6:{}]", " [IPV6:{}] ", "IPv6:{}%eth0"]
)
def test_a_client_address_with_the_ipv6_tag_is_that_address(tagged: str) -> None:
    # Regression (review): "IPv6:2001:db8::26", the address literal of RFC 5321 section
    # 4.1.3 in which Postfix's XCLIENT passes an IPv6 client, was a 400: the plugin failed
    # open and the message went unscored.
    plain = parse_request({"ip": world.MISSING_PTR_IP6})
    tagged_request = parse_request({"ip": tagged.format(world.MISSING_PTR_IP6)})
    assert tagged_request.request == plain.request and tagged_request.reply_key == plain.reply_key
    # The tag says IPv6: on an IPv4 address it is a mistake, not a client to guess at.
    with pytest.raises(RequestError, match="ip is not an IPv4 or IPv6 address"):
        parse_request({"ip": f"IPv6:{world.CONFIRMED_IP}"})


@pytest.mark.parametrize("mapped", ["::ffff:{}", "::FFFF:{}", "[::ffff:{}]"])
async def test_an_ipv4_mapped_client_shares_the_ipv4_reply(pipeline: Pipeline, mapped: str) -> None:
    # protocol.parse_ip unmaps ::ffff:a.b.c.d (an IPv4 client on a dual-stack socket): the
    # reply-cache key is the IPv4 request's, and the reply cached for one serves the other.
    fields = {"helo": world.CONFIRMED_NAME, "mail_from": f"a@{world.GOOD_DOMAIN}"}
    plain = parse_request({"ip": world.CONFIRMED_IP, **fields})
    other = parse_request({"ip": mapped.format(world.CONFIRMED_IP), **fields})
    assert other.request == plain.request and other.reply_key == plain.reply_key
    assert plain.reply_key[0] == ipaddress.IPv4Address(world.CONFIRMED_IP).packed
    first = await pipeline.check(plain.request)
    assert await pipeline.check(other.request) is first
    assert (pipeline.replies.misses, pipeline.replies.hits) == (1, 1)


async def test_an_ipv4_compatible_client_is_the_ipv4_host_it_carries(pipeline: Pipeline) -> None:
    # Decision (review): ::a.b.c.d, RFC 4291 section 2.5.5.1's deprecated form, was scored
    # as IPv6: RL_PTR_MISSING on an ip6.arpa name no one delegates, +5 for a client whose
    # PTR is fine. No IPv6 peer connects from ::/96; it names the IPv4 host.
    compatible = parse_request({"ip": f"::{world.CONFIRMED_IP}"})
    assert compatible == parse_request({"ip": world.CONFIRMED_IP})
    assert await pipeline.check(compatible.request) == await pipeline.check(
        parse_request({"ip": world.CONFIRMED_IP}).request
    )
    assert (await pipeline.check(compatible.request)).symbols == ()
    # ::1 is loopback and ::5 no IPv4 host's (0.0.0.0/8): both stay what they are.
    for ip in ("::1", "::5", "[IPv6:::5]"):
        assert parse_request({"ip": ip}).request.ip.version == 6


async def test_healthz_and_readyz(client: Client, unbound_config: Config) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    # The deadline the plugins' `check` commands compare their timeout with.
    deadline = unbound_config.dns.request_deadline
    assert await ready.json() == {
        "status": "ready",
        "request_deadline": deadline,
        "pid": os.getpid(),
    }


async def test_healthz_names_the_worker_that_answered(client: Client) -> None:
    # The pid tells which of several workers sharing the port answered.
    response = await client.get("/healthz")
    assert await response.json() == {"status": "ok", "pid": os.getpid()}


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_head_is_answered_wherever_get_is(client: Client, path: str) -> None:
    # Regression: HEAD (which uptime monitors and load balancers probe with) got a 405
    # "takes GET", though every general-purpose server must support it beside GET
    # (RFC 9110 section 9.1): the GET answer's status and headers, without the content.
    get = await client.get(path)
    head = await client.head(path)
    assert head.status == get.status == 200
    assert head.content_type == get.content_type
    assert await head.read() == b""
    assert client.app is not None
    assert client.app[SERVICE_KEY].metrics.request_series(path)[200].value == 2
    # A method neither takes is told both.
    response = await client.post(path)
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert await response.json() == {"error": f"{path} takes GET, HEAD", "field": "method"}


async def test_metrics_are_served_in_the_prometheus_text_format(client: Client) -> None:
    response = await client.get("/metrics")
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert "rdns_scorer_requests_total" in await response.text()


async def test_an_unknown_path_is_told_the_endpoints_there_are(client: Client) -> None:
    response = await client.post("/v1/chek", json={"ip": world.CONFIRMED_IP})
    assert response.status == 404
    assert await response.json() == {
        "error": "no such endpoint (there are /v1/check, /v1/reload, /healthz, /readyz, /metrics)",
        "field": "path",
    }


@pytest.mark.parametrize("path", ["/a%0Ab", "/v1/check%0A", "/%0A"])
async def test_a_path_with_a_newline_is_a_counted_json_404(client: Client, path: str) -> None:
    # Regression: the catch-all route's ".*" stops at a newline, so a path with an
    # encoded one got aiohttp's plain-text 404, counted nowhere.
    response = await client.get(URL(path, encoded=True))
    assert response.status == 404
    assert (await response.json())["field"] == "path"
    assert client.app is not None
    assert client.app[SERVICE_KEY].metrics.request_series("other")[404].value == 1


async def test_a_wrong_path_or_method_answers_in_the_format_accepted(client: Client) -> None:
    # Like every other error: msgpack for a client that asks for it (the plugins do).
    accept = {"Accept": "application/msgpack"}
    for response, status in (
        (await client.get("/v1/check", headers=accept), 405),
        (await client.get("/v1/chek", headers=accept), 404),
    ):
        assert (response.status, response.content_type) == (status, "application/msgpack")
        assert set(msgpack.unpackb(await response.read())) == {"error", "field"}


def test_every_status_a_check_answers_with_is_counted_from_the_start(
    unbound_config: Config,
) -> None:
    # The error-share panels and alerts divide these series: each exists at 0 before
    # the first such answer (417 included: a client that sends Expect wrongly).
    service = create_app(unbound_config)[SERVICE_KEY]
    series = service.metrics.request_series("/v1/check")
    assert sorted(series) == [200, 400, 401, 408, 413, 415, 417, 499, 500, 503]
    assert all(counter.value == 0 for counter in series.values())


async def test_a_bug_in_a_check_is_a_counted_500(
    aiohttp_client: Any,
    unbound_config: Config,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: object) -> tuple[bytes, str]:
        raise RuntimeError("a bug")

    app = create_app(unbound_config)
    monkeypatch.setattr(app[SERVICE_KEY], "answer_at_once", broken)
    client = await aiohttp_client(app)
    response = await client.post("/v1/check", json={"ip": world.CONFIRMED_IP, "helo": "x\x1b"})
    assert response.status == 500
    assert await response.json() == {"error": "internal error", "field": "body"}
    series = app[SERVICE_KEY].metrics.request_series("/v1/check")
    assert series[500].value == 1 and series[200].value == 0
    # Regression (review): the log had aiohttp's "Error handling request from 127.0.0.1"
    # alone, though the runbook asks to report the bug with the request that triggers it.
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    said = record.getMessage()
    assert said.startswith('a check failed (a bug; please report it with this request): {"ip"')
    assert world.CONFIRMED_IP in said and said.isprintable() and record.exc_info is not None


async def test_elapsed_ms_is_the_time_to_the_verdict_in_milliseconds(
    unbound_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Service.answer times decoding, validation and the check (perf_counter, twice).
    readings = iter([100.0, 100.25])
    monkeypatch.setattr(app_module, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    service = app_module.Service(unbound_config)
    body = b'{"ip": "10.1.1.1"}'  # an internal client: no lookup
    payload, content_type = await service.answer(service.pipeline, body, "application/json", False)
    assert content_type == "application/json"
    assert json.loads(payload)["elapsed_ms"] == 250.0


async def test_readyz_fails_when_the_resolver_does_not_answer(aiohttp_client: Any) -> None:
    from tests.support.fakedns import dead_port

    port = dead_port()
    config = config_from_mapping({"dns": {"nameservers": [f"127.0.0.1:{port}"], "timeout": 0.2}})
    client = await aiohttp_client(create_app(config))
    response = await client.get("/readyz")
    assert response.status == 503
    # Which resolver, and why (regression, docs walkthrough: "resolver does not answer:
    # network", naming neither).
    status = (await response.json())["status"]
    assert status.startswith(f"resolver 127.0.0.1:{port} does not answer: network: "), status
    assert "Connection refused" in status, status
    assert (await client.get("/healthz")).status == 200


@pytest.mark.parametrize("mode", ["nxdomain", "noerror"])
async def test_readyz_fails_when_the_resolver_says_the_root_has_no_soa(
    aiohttp_client: Any, mode: str
) -> None:
    # Regression (review): an NXDOMAIN or NODATA for the root's SOA passed: a resolver
    # serving only its own data (or rewriting answers) was "ready" while every client
    # got RL_PTR_MISSING.
    server = FaultyDns(mode).start()
    try:
        client = await aiohttp_client(
            create_app(config_from_mapping({"dns": {"nameservers": [server.nameserver]}}))
        )
        reply = await client.get("/readyz")
        assert reply.status == 503
        assert "the root has no SOA" in (await reply.json())["status"]
        # ... and no check scores such a resolver's "no" (regression, review: every
        # message got RL_PTR_MISSING + RL_MAILFROM_NXDOMAIN, 9.5, with nothing logged).
        body = {"ip": "192.0.2.55", "mail_from": "a@sender.net"}
        reply = await client.post("/v1/check", json=body)
        symbols = {s["name"]: s for s in (await reply.json())["symbols"]}
        assert set(symbols) == {"RL_PTR_TEMPFAIL", "RL_MAILFROM_TEMPFAIL"}, symbols
        assert all(s["score"] == 0 for s in symbols.values())
        assert any("root has no SOA" in o for o in symbols["RL_PTR_TEMPFAIL"]["options"])
    finally:
        server.stop()


async def test_a_resolver_that_starts_lying_takes_the_cached_replies_with_it(
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    sane_resolver: FaultyDns,
) -> None:
    # Regression (review): the replies cached in the seconds before the service saw
    # that the resolver answers NXDOMAIN for everything kept their verdicts for their TTL.
    monkeypatch.setattr(app_module, "ROOT_CHECK_SECONDS", 0.05)
    config = config_from_mapping({"dns": {"nameservers": [sane_resolver.nameserver]}})
    client = await aiohttp_client(create_app(config))
    body = {"ip": "192.0.2.55"}

    async def names() -> set[str]:
        reply = await (await client.post("/v1/check", json=body)).json()
        return {symbol["name"] for symbol in reply["symbols"]}

    assert await names() == {"RL_PTR_MISSING"}
    sane_resolver.root_soa = False  # it now says the root does not exist either
    deadline = asyncio.get_running_loop().time() + 5
    while (seen := await names()) != {"RL_PTR_TEMPFAIL"}:
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.05)


async def test_the_first_checks_wait_for_the_resolvers_first_judgement(
    aiohttp_client: Any,
    lying_resolver: FaultyDns,
) -> None:
    # Regression: the root was first asked beside serving, so the first requests took
    # the NXDOMAIN of a resolver that says the root does not exist at its word
    # (RL_PTR_MISSING) until its answer to the root came. It is asked before listening.
    lying_resolver.root_delay = 0.3  # its other answers come at once
    config = config_from_mapping({"dns": {"nameservers": [lying_resolver.nameserver]}})
    client = await aiohttp_client(create_app(config))
    reply = await (await client.post("/v1/check", json={"ip": "192.0.2.55"})).json()
    assert [symbol["name"] for symbol in reply["symbols"]] == ["RL_PTR_TEMPFAIL"], reply


@pytest.fixture
def sane_resolver() -> Iterator[FaultyDns]:
    """A started resolver that answers NXDOMAIN and the root's SOA: its "no" counts until
    a test sets ``root_soa = False`` (it then says the root does not exist: a lie)."""
    resolver = FaultyDns("nxdomain")
    resolver.root_soa = True
    yield resolver.start()
    resolver.stop()


@pytest.fixture
def lying_resolver() -> Iterator[FaultyDns]:
    """A started resolver that answers NXDOMAIN for everything, the root too: a lie."""
    resolver = FaultyDns("nxdomain").start()
    yield resolver
    resolver.stop()


def _service_reloading_new_dns(nameserver: str) -> app_module.Service:
    """A Service on ``nameserver`` whose reload brings new [dns] settings (the same
    resolver with a 0.4 s timeout, and a cache_max_ttl, which the cached outcomes
    depend on): a new DNS layer."""
    settings = {"nameservers": [nameserver]}
    reloaded = {**settings, "timeout": 0.4, "cache_max_ttl": 600}
    return app_module.Service(
        config_from_mapping({"dns": settings}),
        loader=lambda: config_from_mapping({"dns": reloaded}),
    )


async def _names_for_a_missing_ptr(service: app_module.Service, pipeline: Pipeline) -> set[str]:
    """The symbols ``service`` answers through ``pipeline`` for a client without a PTR."""
    body = b'{"ip": "192.0.2.55"}'
    payload, _type = await service.answer(pipeline, body, "application/json", False)
    return {symbol["name"] for symbol in json.loads(payload)["symbols"]}


async def _answered_from_the_reply_cache(service: app_module.Service, body: bytes) -> bool:
    """Whether ``service`` answers the check ``body`` (JSON) from its reply cache."""
    replies = service.pipeline.replies
    hits = replies.hits
    await service.answer(service.pipeline, body, "application/json", False)
    return replies.hits > hits


async def test_a_reload_onto_a_resolver_that_still_lies_takes_the_replies_it_trusted(
    lying_resolver: FaultyDns,
) -> None:
    # Regression: the root check kept one judgement across DNS layers. A reload with
    # new [dns] settings brings a new layer; when the check found the resolver still
    # lying, the judgement had not changed (it lied before the reload too), so replies
    # built before it asked kept their RL_PTR_MISSING for their TTL. A reload judges the
    # new layer before it serves (below), so that takes a root query that timed out then.
    service = _service_reloading_new_dns(lying_resolver.nameserver)
    await service.pipeline.dns.check_root()
    assert service.pipeline.dns.untrusted is not None
    lying_resolver.root_delay = 1.0  # past the new timeout: the reload's root query fails
    await service.reload("test")
    # The new layer could not judge it yet: taken at its word.
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_MISSING"}
    lying_resolver.root_delay = 0.0
    await service.pipeline.dns.check_root()
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_TEMPFAIL"}


async def test_a_reload_during_a_root_query_loses_the_replies_it_trusted_too(
    lying_resolver: FaultyDns,
) -> None:
    # Regression (review): the root check emptied the reply cache of the pipeline it
    # started with. A reload that keeps the [dns] settings (the same layer, a new reply cache)
    # while the root query was out kept replies judged on the lying resolver's word.
    lying_resolver.root_delay = 1.5  # room for a reload and a check meanwhile, even on a busy box
    settings: dict[str, Any] = {"dns": {"nameservers": [lying_resolver.nameserver], "timeout": 3}}
    reweighted = {**settings, "weights": {"RL_PTR_MISSING": 4.0}}
    service = app_module.Service(
        config_from_mapping(settings), loader=lambda: config_from_mapping(reweighted)
    )

    old = service.pipeline
    # Not judged yet: taken at its word.
    assert await _names_for_a_missing_ptr(service, old) == {"RL_PTR_MISSING"}
    tick = asyncio.ensure_future(service.pipeline.dns.check_root())
    await asyncio.sleep(0.05)  # the root query is out
    await service.reload("test")
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_MISSING"}
    await tick
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_TEMPFAIL"}
    # The pipeline the tick started with loses its replies too: a check that took it
    # before the reload (its body still coming) must not find the lie there either.
    assert await _names_for_a_missing_ptr(service, old) == {"RL_PTR_TEMPFAIL"}


async def test_a_reply_built_across_a_change_of_trust_is_not_cached(
    monkeypatch: pytest.MonkeyPatch,
    sane_resolver: FaultyDns,
) -> None:
    # Regression (review): a check in flight when the resolver was caught lying stored
    # its reply after the root check had emptied the reply cache: RL_PTR_MISSING, built on
    # the NXDOMAIN taken at its word a moment before, was served for its TTL.
    pipeline = Pipeline(config_from_mapping({"dns": {"nameservers": [sane_resolver.nameserver]}}))
    evaluate = pipeline.evaluate

    async def caught_lying_meanwhile(request: Any) -> Any:
        found = await evaluate(request)
        sane_resolver.root_soa = False
        await pipeline.dns.check_root()  # the periodic check ends during this one
        return found

    monkeypatch.setattr(pipeline, "evaluate", caught_lying_meanwhile)
    assert set(await symbols_for(pipeline, "192.0.2.55")) == {"RL_PTR_MISSING"}
    assert len(pipeline.replies) == 0
    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    assert set(await symbols_for(pipeline, "192.0.2.55")) == {"RL_PTR_TEMPFAIL"}


async def test_a_reload_judges_a_new_resolver_before_it_serves(lying_resolver: FaultyDns) -> None:
    # Regression: a reload with new [dns] settings served from the new DNS layer before
    # it asked the root: a resolver that says the root does not exist had its NXDOMAIN
    # scored (RL_PTR_MISSING) until the next root check, up to ROOT_CHECK_SECONDS later.
    service = _service_reloading_new_dns(lying_resolver.nameserver)
    await service.reload("test")
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_TEMPFAIL"}


async def test_a_reload_from_a_silent_resolver_to_one_that_answers_says_so(
    unbound: Unbound, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression: the old layer had logged "resolver X does not answer"; a reload onto a
    # resolver that answers built a new layer, which had no silence to end, so the log's
    # last word on the resolver stayed that warning while checks were judged again.
    silent = FaultyDns("servfail").start()
    try:
        service = app_module.Service(
            config_from_mapping({"dns": {"nameservers": [silent.nameserver], "timeout": 0.3}}),
            loader=lambda: config_from_mapping({"dns": {"nameservers": [unbound.nameserver]}}),
        )
        with caplog.at_level(logging.INFO):
            await service.pipeline.dns.check_root()
            assert service.pipeline.dns.silent
            await service.reload("test")
    finally:
        silent.stop()
    said = [r.getMessage() for r in caplog.records]
    assert (
        f"resolver {unbound.nameserver} answers; {silent.nameserver}, asked until this "
        "reload, did not"
    ) in said, said


async def test_a_reload_asks_the_resolver_resolv_conf_names_now(
    unbound: Unbound, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): without [dns] nameservers the DNS layer was kept whenever the
    # [dns] table was unchanged, so a resolver installed and named in /etc/resolv.conf
    # (the README's way) was not asked until a restart, with nothing in the log.
    dead, local = Nameserver("127.0.0.1", 9), Nameserver("127.0.0.1", unbound.port)
    system = [dead]
    monkeypatch.setattr(layer_module, "system_nameservers", lambda: list(system))
    service = app_module.Service(config_from_mapping({}), loader=lambda: config_from_mapping({}))
    kept = service.pipeline.dns
    await service.reload("test")
    assert service.pipeline.dns is kept, "resolv.conf unchanged: the layer and its cache stay"
    system[:] = [local]
    with caplog.at_level(logging.INFO):
        await service.reload("test")
    assert service.pipeline.dns.nameservers == [local]
    assert f"resolvers now {local} (were {dead})" in [r.getMessage() for r in caplog.records]
    reply = await service.pipeline.check(parse_request({"ip": world.MISSING_PTR_IP}).request)
    assert [s.name for s in reply.symbols] == ["RL_PTR_MISSING"], "asked the new resolver"


async def test_a_reloaded_resolver_judged_lying_keeps_its_replies_at_the_next_root_check(
    lying_resolver: FaultyDns,
) -> None:
    # A new layer's judgement counts as it stands when it serves (Service.reload judged
    # it): when the next root check finds the resolver still lying, nothing changed,
    # and the replies the new layer built since (an internal client's) stay.
    service = _service_reloading_new_dns(lying_resolver.nameserver)
    await service.pipeline.dns.check_root()
    await service.reload("test")  # a new DNS layer, judged lying before it serves
    assert service.pipeline.dns.untrusted is not None
    internal = b'{"ip": "10.1.1.1"}'
    assert not await _answered_from_the_reply_cache(service, internal)
    await service.pipeline.dns.check_root()
    assert await _answered_from_the_reply_cache(service, internal)


async def test_the_root_is_asked_once_at_start_and_never_after_the_app_stops(
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    sane_resolver: FaultyDns,
) -> None:
    # Once before listening, then every ROOT_CHECK_SECONDS (not again at once), and the
    # periodic check ends with the app.
    calls = []
    check_root = DnsLayer.check_root

    async def counted(layer: DnsLayer) -> None:
        calls.append(layer)
        await check_root(layer)

    monkeypatch.setattr(DnsLayer, "check_root", counted)
    monkeypatch.setattr(app_module, "ROOT_CHECK_SECONDS", 3600.0)
    config = config_from_mapping({"dns": {"nameservers": [sane_resolver.nameserver]}})
    client = await aiohttp_client(create_app(config))
    await asyncio.sleep(0.05)  # the periodic task has started
    assert len(calls) == 1
    await client.close()
    monkeypatch.setattr(app_module, "ROOT_CHECK_SECONDS", 0.01)
    client = await aiohttp_client(create_app(config))
    while len(calls) < 4:  # it asks again and again
        await asyncio.sleep(0.01)
    await client.close()
    asked = len(calls)
    await asyncio.sleep(0.1)
    assert len(calls) == asked, "the root check outlived the app"


async def test_a_lie_readyz_caught_and_saw_end_between_root_checks_takes_the_replies(
    sane_resolver: FaultyDns,
) -> None:
    # Regression: the root check compared the judgement with the one it last saw. /readyz
    # judges too; when its probes caught the resolver lying and then saw it answer the
    # root again between two root checks, the check found the judgement as it was and
    # kept the replies cached on the resolver's word before the lie was caught
    # (Kubernetes asks /readyz every few seconds: as often as the root checks come).
    # Then such a change only counted at the next root check; now at once.
    service = app_module.Service(
        config_from_mapping({"dns": {"nameservers": [sane_resolver.nameserver]}})
    )
    await service.pipeline.dns.check_root()
    missing = b'{"ip": "192.0.2.55"}'
    assert not await _answered_from_the_reply_cache(service, missing)
    assert await _answered_from_the_reply_cache(service, missing)  # cached, on its word
    sane_resolver.root_soa = False
    assert await service.pipeline.dns.unready_reason() is not None  # /readyz: a lie
    sane_resolver.root_soa = True
    assert await service.pipeline.dns.unready_reason() is None  # and it ended
    assert not await _answered_from_the_reply_cache(service, missing)


async def test_a_lie_readyz_caught_on_a_reloaded_resolver_takes_its_replies_at_once(
    sane_resolver: FaultyDns,
) -> None:
    # Regression: the root check took a new DNS layer's judgement as it found it at its
    # next run. When /readyz caught the reloaded resolver lying before that, the check
    # found the lie already judged, saw no change, and kept the replies the new layer
    # had cached on the resolver's word since the reload. Now the change counts at once.
    service = _service_reloading_new_dns(sane_resolver.nameserver)
    await service.pipeline.dns.check_root()
    await service.reload("test")  # a new DNS layer, judged sane before it serves
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_MISSING"}
    assert len(service.pipeline.replies) == 1  # cached, on its word
    sane_resolver.root_soa = False
    assert await service.pipeline.dns.unready_reason() is not None  # /readyz: a lie
    assert await _names_for_a_missing_ptr(service, service.pipeline) == {"RL_PTR_TEMPFAIL"}


async def test_a_judgement_that_holds_keeps_the_cached_replies(lying_resolver: FaultyDns) -> None:
    # The reply cache empties when the judgement changes, not at every root check while
    # the resolver keeps saying the root does not exist (replies built on its answers,
    # such as an internal client's, stay).
    service = app_module.Service(
        config_from_mapping({"dns": {"nameservers": [lying_resolver.nameserver]}})
    )
    await service.pipeline.dns.check_root()
    assert service.pipeline.dns.untrusted is not None
    internal = b'{"ip": "10.1.1.1"}'
    assert not await _answered_from_the_reply_cache(service, internal)
    await service.pipeline.dns.check_root()
    assert await _answered_from_the_reply_cache(service, internal)


class _SharedMetrics:
    """Stands in for WorkerMetrics: counts the snapshots this worker takes."""

    def __init__(self) -> None:
        self.snapshots = 0

    def snapshot(self, _registry: object) -> None:
        self.snapshots += 1

    def render(self, _registry: object) -> bytes:
        return b"# every worker's\n"


async def test_a_worker_keeps_its_metrics_snapshot_fresh_and_leaves_a_last_one(
    aiohttp_client: Any, unbound_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With several workers, each writes a snapshot every SNAPSHOT_SECONDS for the others'
    # scrapes, and one last when it stops (what it counted last); /metrics renders all.
    monkeypatch.setattr(app_module, "SNAPSHOT_SECONDS", 0.01)
    shared = _SharedMetrics()
    app = create_app(unbound_config, shared_metrics=shared)  # type: ignore[arg-type]
    client = await aiohttp_client(app)
    assert await (await client.get("/metrics")).read() == b"# every worker's\n"
    deadline = asyncio.get_running_loop().time() + 10
    while shared.snapshots < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert shared.snapshots >= 3
    monkeypatch.setattr(app_module, "SNAPSHOT_SECONDS", 3600)  # from the next one on
    await asyncio.sleep(0.05)
    running = shared.snapshots
    await client.close()
    assert shared.snapshots == running + 1


async def test_request_deadline_fires_and_reply_is_sent(aiohttp_client: Any) -> None:
    # A resolver that never answers, a per-query timeout longer than the deadline:
    # only the request deadline can end these lookups.
    silent = FaultyDns("silent").start()
    try:
        config = config_from_mapping(
            {"dns": {"nameservers": [silent.nameserver], "timeout": 2.0, "request_deadline": 0.3}}
        )
        client = await aiohttp_client(create_app(config))
        response = await client.post(
            "/v1/check", json={"ip": "198.51.100.7", "mail_from": "a@silent-dns.net"}
        )
        body = await response.json()
    finally:
        silent.stop()
    assert response.status == 200
    assert body["elapsed_ms"] < 1000
    names = {s["name"]: s for s in body["symbols"]}
    assert set(names) == {"RL_PTR_TEMPFAIL", "RL_MAILFROM_TEMPFAIL"}
    assert any("deadline" in o for o in names["RL_PTR_TEMPFAIL"]["options"])
    assert body["score"] == 0.0


async def test_every_lookup_of_a_check_gets_the_request_deadline() -> None:
    """Pipeline.evaluate: the PTR, HELO and MAIL FROM lookups (and those that follow
    them) all run under one deadline, [dns] request_deadline from the check's start."""
    client = ipaddress.ip_address("81.2.70.71")
    host = ipaddress.ip_address("81.2.69.160")
    layer = KnownAnswers(
        {
            (reverse_name(client), dns.rdatatype.PTR): Answer(("mail.deadline.net",), 300),
            ("mail.deadline.net", dns.rdatatype.A): Answer((client,), 300),
            ("deadline.net", dns.rdatatype.MX): NotFound(NotFoundKind.NODATA, 300),
            ("deadline.net", dns.rdatatype.A): Answer((host,), 300),
        }
    )
    config = config_from_mapping({"dns": {"nameservers": ["127.0.0.1:9"], "request_deadline": 0.5}})
    request = parse_request(
        {"ip": str(client), "helo": "mail.deadline.net", "mail_from": "a@deadline.net"}
    ).request
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await Pipeline(config, layer).check(request)
    ended = loop.time()
    assert reply.symbols == ()
    assert len(layer.deadlines) == len(layer.asked) == 5, layer.asked
    assert all(started + 0.5 <= d <= ended + 0.5 for d in layer.deadlines), layer.deadlines
    assert len(set(layer.deadlines)) == 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scorer", *args], capture_output=True, text=True, timeout=60
    )


def test_health_probes_where_serve_listens(unbound: Unbound) -> None:
    # Regression: the image's healthcheck asked 127.0.0.1 at RDNS_SCORER_LISTEN's port
    # whatever the host, and never read the config file: a service on [::] only (or on
    # a port set in scorer.toml) was reported unhealthy and restarted in a loop.
    service = ScorerProcess(unbound.nameserver).start()
    try:
        wildcard = {**os.environ, "RDNS_SCORER_LISTEN": f"0.0.0.0:{service.port}"}
        probe = subprocess.run(
            [sys.executable, "-m", "scorer", "health"], capture_output=True, text=True,
            timeout=30, env=wildcard,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        config = service.config_path.parent / "listen.toml"
        config.write_text(f'[server]\nlisten = "127.0.0.1:{service.port}"\n')
        assert _cli("health", "--config", str(config)).returncode == 0
        # Regression (review): a byte-order mark, which config check reads past, made
        # health exit 1 ("Invalid statement").
        config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
        assert _cli("health", "--config", str(config)).returncode == 0
        config.write_text(f'[server]\nlisten = "127.0.0.1:{service.port}"\n')
        # Regression (review): health loaded the whole config, so an allowlist edited
        # but not reloaded (the service serving its last good one) made it exit 2 and
        # the container be restarted into a service that would not start.
        (config.parent / "allow.txt").write_text("ip 192.0.2.0/33\n")
        config.write_text(
            f'[server]\nlisten = "127.0.0.1:{service.port}"\n[allowlist]\nfiles = ["allow.txt"]\n'
        )
        assert _cli("health", "--config", str(config)).returncode == 0
        # ... and an http_proxy in the environment does not carry the loopback probe.
        proxied = {
            **wildcard,
            "http_proxy": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
        }
        probe = subprocess.run(
            [sys.executable, "-m", "scorer", "health"], capture_output=True, text=True,
            timeout=30, env=proxied,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
    finally:
        service.stop()
    # Regression: a stopped ScorerProcess left its directory behind (~200 per test run).
    assert not service.config_path.parent.exists()
    down = _cli("health", "--listen", f"127.0.0.1:{service.port}", "--timeout", "1")
    assert down.returncode == 1
    assert f"rdns-scorer health: http://127.0.0.1:{service.port}/healthz" in down.stderr


@pytest.mark.parametrize(
    "fields",
    [
        {"ip": world.MISSING_PTR_IP, "helo": "localhost", "mail_from": f"a@{world.NULL_MX_DOMAIN}"},
        {"ip": world.UNVERIFIED_IP, "helo": world.HELO_NO_ADDRESS},
        {"ip": world.CONFIRMED_IP6, "mail_from": ""},
    ],
)
async def test_check_json_agrees_with_the_service(
    client: Client, unbound: Unbound, fields: dict[str, str]
) -> None:
    args = ["check", "--json", "--nameserver", unbound.nameserver, "--ip", fields["ip"]]
    if "helo" in fields:
        args += ["--helo", fields["helo"]]
    if "mail_from" in fields:
        args += ["--from", fields["mail_from"]]
    result = _cli(*args)
    assert result.returncode == 0, result.stderr
    from_cli = json.loads(result.stdout)
    from_http = await (await client.post("/v1/check", json=fields)).json()
    assert from_cli.keys() == from_http.keys()
    assert from_cli["symbols"] == from_http["symbols"]
    assert from_cli["score"] == from_http["score"]


def test_check_report_explains_and_hints(unbound: Unbound) -> None:
    result = _cli("check", "--nameserver", unbound.nameserver, "--ip", world.MISSING_PTR_IP)
    assert result.returncode == 0, result.stderr
    assert "RL_PTR_MISSING" in result.stdout
    assert "evidence: no PTR for 203.0.113.11" in result.stdout
    assert f"fix:      ask the owner of {world.MISSING_PTR_IP}" in result.stdout


@pytest.mark.parametrize(
    "mail_from",
    [
        f"<jörg@{world.IDN_DOMAIN.upper()}>",
        f"a@{world.IDN_DOMAIN_ASCII}",
        f"A@{world.IDN_DOMAIN_ASCII.upper()}",
    ],
)
def test_check_report_hints_name_the_a_label_domain(mail_from: str) -> None:
    request = parse_request({"ip": world.MISSING_PTR_IP, "mail_from": mail_from}).request
    symbol = SYMBOLS["RL_MAILFROM_NO_MAIL_HOST"]
    reply = CheckReply(
        (SymbolResult(symbol.name, symbol.weight, (f"domain={world.IDN_DOMAIN_ASCII}",)),),
        symbol.weight,
    )
    report = render_report(request, reply, 1.0, None)
    assert f"fix:      {symbol.hint.format(domain=world.IDN_DOMAIN_ASCII)}" in report


@pytest.mark.parametrize(("ip", "record"), [("203.0.113.12", "A"), ("2001:db8::12", "AAAA")])
def test_check_report_hints_name_the_record_that_confirms(ip: str, record: str) -> None:
    # Regression (review): "have an A/AAAA record" for a name that had the other one.
    request = parse_request({"ip": ip}).request
    symbol = SYMBOLS["RL_PTR_UNVERIFIED"]
    reply = CheckReply((SymbolResult(symbol.name, symbol.weight, ("x",)),), symbol.weight)
    report = render_report(request, reply, 1.0, "mail.example.net")
    assert f"(mail.example.net) have an {record} record pointing back to {ip}" in report


def test_check_report_hints_read_whole_without_a_ptr_name() -> None:
    # Regression (review): with no PTR name (the PTR lookup itself failed) the
    # RL_PTR_TEMPFAIL hint read "...or the zone of its PTR name its PTR name)".
    request = parse_request({"ip": "198.51.100.7"}).request
    symbol = SYMBOLS["RL_PTR_TEMPFAIL"]
    reply = CheckReply((SymbolResult(symbol.name, 0.0, ("x",)),), 0.0)
    report = render_report(request, reply, 1.0, None)
    hint = next(line for line in report.splitlines() if line.startswith("  fix:"))
    assert "its PTR name" not in hint and "198.51.100.7" in hint, hint


@pytest.mark.parametrize("symbol", ["RL_PTR_TEMPFAIL", "RL_HELO_TEMPFAIL", "RL_MAILFROM_TEMPFAIL"])
def test_check_report_hints_say_a_cname_loop_is_the_zones_records(symbol: str) -> None:
    # Regression (review): evidence "malformed: CNAME loop" (or a chain too long) got
    # only "answer from reachable, working nameservers": they work; the records loop.
    request = parse_request(
        {"ip": "192.0.2.7", "helo": "mx.example.net", "mail_from": "a@example.net"}
    ).request
    evidence = "mx.example.net A: malformed: CNAME loop"
    reply = CheckReply((SymbolResult(symbol, 0.0, (evidence,)),), 0.0)
    report = render_report(request, reply, 1.0, None)
    (hint,) = [line for line in report.splitlines() if line.startswith("  fix:")]
    assert "a CNAME loop, or a chain too long: correct those records" in hint, hint


async def test_check_report_blames_our_resolver_when_it_is_not_trusted(
    lying_resolver: FaultyDns,
) -> None:
    # Regression (review): with the evidence "untrusted: the resolver says the root has
    # no SOA", the fix line still sent the admin after the sender's reverse zone.
    pipeline = Pipeline(config_from_mapping({"dns": {"nameservers": [lying_resolver.nameserver]}}))
    await pipeline.dns.check_root()
    request = parse_request({"ip": world.MISSING_PTR_IP}).request
    _facts, reply = await pipeline.check_with_facts(request)
    report = render_report(request, reply, 1.0, None)
    assert "untrusted: the resolver says the root has no SOA" in report
    fixes = [line for line in report.splitlines() if line.startswith("  fix:")]
    assert fixes and all("this host's resolver says the root has no SOA" in f for f in fixes)
    # One untrusted answer among a symbol's evidence is enough: the other items (a
    # timeout) are not the sender's to fix while our resolver denies the root.
    mixed = tuple(
        result._replace(options=("timeout asking for mx.example.net A", *result.options))
        for result in reply.symbols
    )
    report = render_report(request, reply._replace(symbols=mixed), 1.0, None)
    fixes = [line for line in report.splitlines() if line.startswith("  fix:")]
    assert fixes and all("this host's resolver says the root has no SOA" in f for f in fixes)


async def test_check_report_blames_our_resolver_only_for_failed_lookups(
    pipeline: Pipeline,
) -> None:
    # Regression: any evidence holding "untrusted: " sent the admin after our resolver,
    # and an RL_HELO_INVALID's evidence quotes the HELO as sent: "untrusted: ..." made
    # its fix line say this host's resolver was broken. Only a failed lookup (the
    # *_TEMPFAIL symbols) is judged through the resolver.
    helo = "untrusted: the resolver says the root has no SOA"
    request = parse_request({"ip": world.MISSING_PTR_IP, "helo": helo}).request
    _facts, reply = await pipeline.check_with_facts(request)
    assert [s.name for s in reply.symbols] == ["RL_PTR_MISSING", "RL_HELO_INVALID"]
    report = render_report(request, reply, 1.0, None)
    fixes = [line for line in report.splitlines() if line.startswith("  fix:")]
    assert fixes == [
        f"  fix:      {SYMBOLS['RL_PTR_MISSING'].hint.format(ip=world.MISSING_PTR_IP)}",
        f"  fix:      {SYMBOLS['RL_HELO_INVALID'].hint.format(ip=world.MISSING_PTR_IP)}",
    ]


def test_check_report_blames_our_resolver_for_its_failure_not_for_a_name() -> None:
    # What marks a lookup judged through our untrusted resolver is the failure kind
    # with its detail ("untrusted: ..."): a sender's domain or MX host named
    # "untrusted..." in a failed lookup's evidence is the sender's zone to fix.
    domain = "untrusted-relay.example"
    request = parse_request({"ip": world.MISSING_PTR_IP, "mail_from": f"a@{domain}"}).request
    symbol = SYMBOLS["RL_MAILFROM_TEMPFAIL"]
    evidence = (f"domain={domain}", f"MX mx.{domain} A: timeout: no answer within 0.5s")
    reply = CheckReply((SymbolResult(symbol.name, 0.0, evidence),), 0.0)
    report = render_report(request, reply, 1.0, None)
    fixes = [line for line in report.splitlines() if line.startswith("  fix:")]
    assert fixes == [f"  fix:      {symbol.hint.format(domain=domain)}"]


def test_an_mta_hostname_reading_like_a_lookup_is_no_lookup() -> None:
    # Regression (review): the refused-lookup hint matched any evidence reading
    # ": refused", the request's own MTA hostname too: a PTR lookup that timed out beside
    # "MTA hostname: x: refused" blamed our resolver's refusal, not the reverse zone (and
    # "untrusted: ..." there would have blamed an untrusted resolver).
    ip = ipaddress.ip_address("192.0.2.7")
    timeout = TempFail(FailureKind.TIMEOUT, "no answer within 2s")
    for hostname in ("x: refused", "x: refused: y", "untrusted: x"):
        (hit,) = check_ptr(PtrFacts(ip, timeout, mta_hostname=hostname))
        reply = CheckReply((SymbolResult(hit.symbol, 0.0, hit.options),), 0.0)
        request = parse_request({"ip": str(ip), "hostname": hostname}).request
        report = render_report(request, reply, 1.0, None)
        assert REFUSED_HINT not in report and UNTRUSTED_HINT not in report, report
        assert "make that zone (the reverse zone of 192.0.2.7" in report, report
    (hit,) = check_ptr(PtrFacts(ip, TempFail(FailureKind.REFUSED, "REFUSED"), mta_hostname="mx"))
    reply = CheckReply((SymbolResult(hit.symbol, 0.0, hit.options),), 0.0)
    assert REFUSED_HINT in render_report(parse_request({"ip": str(ip)}).request, reply, 1.0, None)


def test_check_report_escapes_what_the_client_sent() -> None:
    # Regression: `rdns-scorer check` printed --helo/--from raw: terminal escapes ran.
    hostile = "\x1b]0;owned\x07\x1b[31mred\r\nforged"
    request = parse_request(
        {"ip": world.MISSING_PTR_IP, "helo": hostile, "mail_from": hostile}
    ).request
    # Each of the fields a hint or the client line shows: the HELO, the sender, the PTR name.
    hinted = [
        SYMBOLS["RL_HELO_INVALID"],
        SYMBOLS["RL_MAILFROM_BAD_SYNTAX"],
        SYMBOLS["RL_PTR_GENERIC"],
    ]
    reply = CheckReply(tuple(SymbolResult(s.name, s.weight, ("x",)) for s in hinted), 1.0)
    report = render_report(request, reply, 1.0, "ptr\x1b.example")
    assert all(line.isprintable() for line in report.splitlines()), report
    assert "\\x1b]0\\x3bowned" in report
    assert "the generic PTR ptr\\x1b.example with" in report


def test_check_report_lays_out_each_symbol_with_its_evidence_and_fix() -> None:
    # The whole report, line by line: the client line ("-" for no HELO, "<>" for the null
    # sender), the signed total with the time, then per symbol a blank line, its name
    # padded to 28 with its signed score, what it means, every evidence item and the fix.
    # A symbol the table does not know (a newer service's) shows name and evidence only.
    request = parse_request({"ip": "203.0.113.12", "mail_from": ""}).request
    unverified = SYMBOLS["RL_PTR_UNVERIFIED"]
    reply = CheckReply(
        (
            SymbolResult(unverified.name, 3.0, ("ptr=mail.example.net", "no A for it")),
            SymbolResult("RL_NOT_IN_THE_TABLE", -0.5, ("x",)),
        ),
        2.5,
    )
    report = render_report(request, reply, 1.54, "mail.example.net")
    assert (
        report
        == "\n".join(
            [
                "client 203.0.113.12  helo=-  from=<>",
                "total score +2.50  (1.5 ms)",
                "",
                "RL_PTR_UNVERIFIED            +3.00",
                f"  what:     {unverified.description}",
                "  evidence: ptr=mail.example.net",
                "  evidence: no A for it",
                "  fix:      make the PTR name of 203.0.113.12 (mail.example.net) have an A record "
                "pointing back to 203.0.113.12",
                "",
                "RL_NOT_IN_THE_TABLE          -0.50",
                "  evidence: x",
            ]
        )
        + "\n"
    )


def test_check_report_without_symbols_says_all_looks_fine() -> None:
    # No MAIL FROM at all is "-" (not "<>", the null sender's); the HELO is shown as sent,
    # and only what was given is said to look fine (test_cli has the other cases).
    request = parse_request({"ip": world.CONFIRMED_IP, "helo": world.CONFIRMED_NAME}).request
    report = render_report(request, CheckReply((), 0.0), 0.31, world.CONFIRMED_NAME)
    assert report.splitlines() == [
        f"client {world.CONFIRMED_IP}  helo={world.CONFIRMED_NAME}  from=-",
        "total score +0.00  (0.3 ms)",
        "no symbols: reverse DNS and HELO look fine",
    ]


def test_check_report_hints_without_a_ptr_name_say_its_ptr_name() -> None:
    # The hints that name the PTR say "its PTR name" when the report has none to show.
    request = parse_request({"ip": "203.0.113.14"}).request
    symbol = SYMBOLS["RL_PTR_GENERIC"]
    reply = CheckReply((SymbolResult(symbol.name, 2.5, ("x",)),), 2.5)
    report = render_report(request, reply, 1.0, None)
    assert "replace the generic PTR its PTR name with a name of your own" in report


def test_check_rejects_a_bad_ip() -> None:
    result = _cli("check", "--ip", "not-an-ip")
    assert result.returncode == 2
    assert "ip" in result.stderr


@pytest.mark.parametrize(
    "args", [[], ["serve"], ["check"], ["generic"], ["config"], ["config", "check"]]
)
def test_help_at_every_level(args: list[str]) -> None:
    result = _cli(*args, "--help")
    assert result.returncode == 0
    assert "usage: rdns-scorer" in result.stdout


def test_a_reader_that_leaves_early_is_no_traceback() -> None:
    # Regression (review): `rdns-scorer symbols --format json | head` ended in a
    # BrokenPipeError traceback.
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", "symbols", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before it writes a byte
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, error
    assert "Traceback" not in error


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon"])
def test_health_timeout_must_be_positive_seconds(timeout: str) -> None:
    # Regression (review): 0 failed with "Operation now in progress", -1 with "Timeout
    # value out of range", nan waited for ever.
    result = _cli("health", "--listen", "127.0.0.1:9", "--timeout", timeout)
    assert result.returncode == 2
    assert "--timeout: expected seconds above 0" in result.stderr


async def test_bearer_token_is_required_when_configured(
    aiohttp_client: Any, unbound: Unbound, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_from_mapping(
        {"dns": {"nameservers": [unbound.nameserver]}, "server": {"token": "s3cret"}}
    )
    client = await aiohttp_client(create_app(config))
    body = {"ip": world.CONFIRMED_IP}
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            response = await client.post("/v1/check", json=body, headers=headers)
            assert response.status == 401, headers
    # Regression (review): refused checks were only a metric; the log said nothing while
    # the plugin failed open on every message. Once at once, then once a minute at most.
    refusals = [r.getMessage() for r in caplog.records if "bearer token" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].startswith("1 request(s) refused"), refusals
    assert "s3cret" not in caplog.text  # no token, presented or configured, is logged
    # The scheme is case-insensitive (RFC 9110 section 11.1); spaces and tabs around the
    # token are not part of it.
    for presented in ("Bearer s3cret", "bearer s3cret", "BEARER s3cret", "Bearer  s3cret\t"):
        response = await client.post("/v1/check", json=body, headers={"Authorization": presented})
        assert response.status == 200, presented


async def test_previous_tokens_are_taken_counted_and_their_clients_named_once(
    aiohttp_client: Any, unbound: Unbound, caplog: pytest.LogCaptureFixture
) -> None:
    # A rotation: the hosts change to the new token one by one, and those that have not
    # yet must not fail open meanwhile. The admin learns which still send an old one,
    # and when none does.
    server = {"token": "n3w", "previous_tokens": ["0ld", "older"]}
    config = config_from_mapping({"dns": {"nameservers": [unbound.nameserver]}, "server": server})
    reloads: list[str] = []
    app = create_app(config, lambda: config, lambda: reloads.append(""))
    client = await aiohttp_client(app)
    metrics = app[SERVICE_KEY].metrics
    body = {"ip": world.CONFIRMED_IP}

    async def status(token: str, path: str = "/v1/check") -> int:
        response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        return response.status

    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        assert [await status(t) for t in ("0ld", "older", "n3w", "wrong", "0ld")] == [
            200, 200, 200, 401, 200,
        ]  # fmt: skip
        # Not for a reload, an admin action: a rotation may be for a token that leaked.
        assert await status("older", "/v1/reload") == 401
    assert metrics.previous_token.value == 3  # not the current token's, not the refused one
    named = [r.getMessage() for r in caplog.records if "previous token" in r.getMessage()]
    assert named == [
        "127.0.0.1 sent a previous token ([server] previous_tokens), still taken: give its "
        "plugin [server] token (`rdns-scorer rspamd install --config FILE`, or "
        "SpamAssassin's rdns_scorer_token), then drop previous_tokens once "
        "rdns_scorer_previous_token_requests_total stays flat (docs/security.md, "
        "Rotating the token)"
    ], named  # once for the client, however often it sends one
    assert not any(t in caplog.text for t in ("n3w", "0ld", "older"))
    assert reloads == []
    # The rotation is over: previous tokens dropped, the old one refused.
    config = config_from_mapping(
        {"dns": {"nameservers": [unbound.nameserver]}, "server": {"token": "n3w"}}
    )
    app[SERVICE_KEY]._loader = lambda: config
    assert await status("n3w", "/v1/reload") == 200
    assert [await status(t) for t in ("0ld", "n3w")] == [401, 200]


async def test_refused_checks_are_logged_with_their_reason(
    aiohttp_client: Any, unbound: Unbound, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): only a 401 was logged; a 400, 413, 415 or 417 left the log
    # silent, though the runbook of the client-errors alert sends admins there. Each
    # status at once, then once a minute at most, with the latest reason.
    config = config_from_mapping({"dns": {"nameservers": [unbound.nameserver]}})
    client = await aiohttp_client(create_app(config))
    bodies = [b'{"ip": "224.0.0.1"}', b'{"ip": "not an address\\n"}', b"[1]"]
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        for body in bodies:
            response = await client.post(
                "/v1/check", data=body, headers={"Content-Type": "application/json"}
            )
            assert response.status == 400
        response = await client.post("/v1/check", data=b"{}", headers={"Content-Type": "text/x"})
        assert response.status == 415
        response = await client.post("/metrics", headers={"Expect": "magic"})
        assert response.status == 417
        assert await response.json() == {
            "error": "unsupported Expect: magic (only 100-continue)",
            "field": "Expect",
        }
    lines = [r.getMessage() for r in caplog.records if "refused with" in r.getMessage()]
    assert len(lines) == 3, lines  # one per status
    assert lines[0] == (
        '1 request(s) refused with 400 since the last such line: "'
        "ip 224.0.0.1 is no host's address (unspecified, 0.0.0.0/8, multicast or broadcast): "
        # Regression (review): who sent them was not said (another rspamd host?).
        'no SMTP client connects from it" (field ip; the latest from 127.0.0.1)'
    )
    assert "refused with 415" in lines[1] and "Content-Type must be" in lines[1]
    assert "refused with 417" in lines[2] and "unsupported Expect: magic" in lines[2]
    assert all(line.isprintable() for line in lines)


async def test_a_refusal_line_quotes_the_words_a_request_put_in_it(
    aiohttp_client: Any, unbound: Unbound, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): a bad ``ip`` is repeated in the reply's message, and the line
    # printed it bare, so a request could write a "latest from" address of its choosing
    # ahead of the real one, which the runbook sends admins to find the sender by.
    config = config_from_mapping({"dns": {"nameservers": [unbound.nameserver]}})
    client = await aiohttp_client(create_app(config))
    forged = 'x" (field ip; the latest from 192.0.2.25); ok'
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        response = await client.post("/v1/check", json={"ip": forged})
        assert response.status == 400
    (line,) = [r.getMessage() for r in caplog.records if "refused with" in r.getMessage()]
    quoted_message = line.removeprefix("1 request(s) refused with 400 since the last such line: ")
    assert quoted_message.startswith('"') and quoted_message.endswith(
        '" (field ip; the latest from 127.0.0.1)'
    ), line
    inside = quoted_message[1 : -len('" (field ip; the latest from 127.0.0.1)')]
    assert '"' not in inside
    assert "x\\x22 (field ip\\x3b the latest from 192.0.2.25)\\x3b ok" in inside


async def test_refusals_held_back_are_logged_when_the_quiet_time_is_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (review): the refusals of the quiet minute were told only with the next
    # refusal, so a burst followed by silence was never logged in full.
    from scorer import refusals

    monkeypatch.setattr(refusals, "REFUSAL_LOG_SECONDS", 0.1)
    log = refusals.RefusalLog()
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        for reason in ("first", "second", "third"):
            log.note(400, reason, "ip")
        await asyncio.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        '1 request(s) refused with 400 since the last such line: "first" (field ip)',
        '2 request(s) refused with 400 since the last such line: "third" (field ip)',
    ]


class _Clock:
    """time.monotonic for scorer.refusals: the quiet time runs when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def refusal_clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from scorer import refusals

    clock = _Clock()
    monkeypatch.setattr(refusals, "time", clock)
    return clock


async def test_each_refusal_line_counts_what_it_held_back_and_advises_by_status(
    refusal_clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    from scorer.refusals import REFUSAL_LOG_SECONDS, RefusalLog

    log = RefusalLog()
    since = 'request(s) refused with {} since the last such line: "{}" (field {})'
    token = (
        "; the plugin's token must be [server] token: `rdns-scorer rspamd install --config "
        "FILE` writes it for rspamd; SpamAssassin takes it as rdns_scorer_token"
    )
    overload = "; max_in_flight checks were running: see docs/operations.md, Overload"
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        log.note(401, "missing bearer token", "authorization")
        log.note(503, "overloaded, retry later", "body")
        log.note(400, "no ip", "ip")
        for _ in range(4):  # held back: told when the quiet time is up
            log.note(503, "overloaded, retry later", "body")
        refusal_clock.now += REFUSAL_LOG_SECONDS - 0.05
        log.note(401, "wrong bearer token", "authorization")
        refusal_clock.now += 0.05
        # The quiet time is up: this one is logged at once, with the five held back.
        log.note(503, "overloaded, retry later", "body")
        lines = [r.getMessage() for r in caplog.records]
        assert lines[-1] == "5 " + since.format(503, "overloaded, retry later", "body") + overload
        await asyncio.sleep(0.1)  # 401's line comes when its quiet time is up
    assert [r.getMessage() for r in caplog.records] == [
        "1 " + since.format(401, "missing bearer token", "authorization") + token,
        "1 " + since.format(503, "overloaded, retry later", "body") + overload,
        "1 " + since.format(400, "no ip", "ip"),  # no advice: the reason says it all
        "5 " + since.format(503, "overloaded, retry later", "body") + overload,
        "1 " + since.format(401, "wrong bearer token", "authorization") + token,
    ]
    # The advice points at what exists.
    operations = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    assert "\n## Overload\n" in operations


async def test_a_flood_of_refusals_held_back_costs_one_timer(
    refusal_clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scorer.refusals import RefusalLog

    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []

    def call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timers.append(asyncio.TimerHandle(loop.time() + delay, callback, args, loop))
        return timers[-1]

    monkeypatch.setattr(loop, "call_later", call_later)
    log = RefusalLog()
    for _ in range(1000):
        log.note(400, "no ip", "ip")
    assert len(timers) == 1  # the line a minute, not a timer per bad request


async def test_a_refusal_line_is_never_logged_for_none(
    refusal_clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # A line was scheduled for a refusal held back, then the quiet time ended and the
    # next refusal was logged at once with it: the scheduled line has nothing to tell.
    # And the next quiet time holds back and tells again.
    from scorer.refusals import REFUSAL_LOG_SECONDS, RefusalLog

    log = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        log.note(400, "first", "ip")
        refusal_clock.now += REFUSAL_LOG_SECONDS - 0.05
        log.note(400, "held back", "ip")  # a line due in 0.05 s
        refusal_clock.now += 0.05
        log.note(400, "at once", "ip")
        await asyncio.sleep(0.1)
        refusal_clock.now += REFUSAL_LOG_SECONDS - 0.05
        log.note(400, "held back again", "ip")
        refusal_clock.now += 0.05  # the time its line is due, as for the timer
        await asyncio.sleep(0.1)
    assert [r.getMessage().partition(":")[0] for r in caplog.records] == [
        "1 request(s) refused with 400 since the last such line",
        "2 request(s) refused with 400 since the last such line",
        "1 request(s) refused with 400 since the last such line",
    ]
    assert caplog.records[-1].getMessage().endswith(': "held back again" (field ip)')


async def test_a_refusal_line_due_just_after_one_told_at_once_waits_its_minute(
    refusal_clock: _Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression (mutation review): under a flood, the refusals a loop iteration runs
    # before a due line's timer are logged at once (the quiet time is up), and those
    # after them in the same iteration were then told by that timer, a second line
    # within the millisecond. They wait for the minute since the line told at once.
    from scorer.refusals import REFUSAL_LOG_SECONDS, RefusalLog

    loop = asyncio.get_running_loop()
    timers: list[tuple[float, Any, tuple[Any, ...]]] = []

    def call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timers.append((delay, callback, args))
        return asyncio.TimerHandle(loop.time() + delay, callback, args, loop)

    def fire_the_timer() -> float:
        delay, callback, args = timers.pop()
        callback(*args)
        return delay

    monkeypatch.setattr(loop, "call_later", call_later)
    log = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        log.note(400, "first", "ip")
        refusal_clock.now += REFUSAL_LOG_SECONDS - 0.5
        log.note(400, "held back", "ip")  # its line due in 0.5 s
        refusal_clock.now += 0.5
        log.note(400, "at once", "ip")  # run before that line's timer: told at once
        log.note(400, "after it", "ip")  # the same iteration: held back
        assert fire_the_timer() == 0.5  # the line of "held back", told with "at once"
        assert len(caplog.records) == 2
        refusal_clock.now += REFUSAL_LOG_SECONDS
        assert fire_the_timer() == REFUSAL_LOG_SECONDS  # a minute after "at once"
        assert not timers
    assert [r.getMessage() for r in caplog.records] == [
        '1 request(s) refused with 400 since the last such line: "first" (field ip)',
        '2 request(s) refused with 400 since the last such line: "at once" (field ip)',
        '1 request(s) refused with 400 since the last such line: "after it" (field ip)',
    ]


async def test_refusal_lines_of_a_status_are_at_least_a_minute_apart(
    refusal_clock: _Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # docs/operations.md, monitoring.md and security.md: at once, then at most a line a
    # minute per status. The tests above count in REFUSAL_LOG_SECONDS, whatever it is.
    from scorer.refusals import RefusalLog

    loop = asyncio.get_running_loop()
    delays: list[float] = []

    def call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        delays.append(delay)
        return asyncio.TimerHandle(loop.time() + delay, callback, args, loop)

    monkeypatch.setattr(loop, "call_later", call_later)
    log = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="rdns_scorer"):
        log.note(400, "first", "ip")
        refusal_clock.now += 1.0
        log.note(400, "second", "ip")
        assert delays == [59.0]  # its line is due a minute after the first
        refusal_clock.now += 58.5
        log.note(400, "third", "ip")  # still within the minute: held back
        assert len(caplog.records) == 1
        refusal_clock.now += 0.5
        log.note(400, "fourth", "ip")
    assert [r.getMessage() for r in caplog.records] == [
        '1 request(s) refused with 400 since the last such line: "first" (field ip)',
        '3 request(s) refused with 400 since the last such line: "fourth" (field ip)',
    ]


async def test_readme_example_reply_is_what_the_service_answers(unbound: Unbound) -> None:
    # The README showed a reply the request could never get (one symbol of three).
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    sent = re.search(r"-d '(\{.*?\})'", readme)
    shown_text = re.search(r"the reply is:\n\n```json\n(.*?)\n```", readme)
    assert sent is not None and shown_text is not None
    shown = json.loads(shown_text.group(1))
    config = config_from_mapping({"dns": {"nameservers": [unbound.nameserver]}})
    reply = await Pipeline(config).check(parse_request(json.loads(sent.group(1))).request)
    actual = json.loads(reply.to_json(1.0))
    del shown["elapsed_ms"], actual["elapsed_ms"]
    assert actual == shown


@pytest.mark.parametrize(
    ("ptr", "forward", "symbol"),
    [
        (NotFound(NotFoundKind.NXDOMAIN, 300), {}, "RL_PTR_MISSING"),
        (
            Answer(("mail.elsewhere.net",), 300),
            {"mail.elsewhere.net": Answer((ipaddress.ip_address("81.2.69.99"),), 300)},
            "RL_PTR_UNVERIFIED",
        ),
        (
            Answer(("81-2-69-42.dyn.some-isp.net",), 300),
            {"81-2-69-42.dyn.some-isp.net": Answer((ipaddress.ip_address("81.2.69.42"),), 300)},
            "RL_PTR_GENERIC",
        ),
    ],
)
def test_check_report_ptr_fix_names_the_helo_that_resolves_to_the_client(
    ptr: Any, forward: Any, symbol: str
) -> None:
    # Regression (review): the evidence said "helo=mail.small-biz.net resolves to
    # 81.2.69.42", the name the PTR should hold, while the fix line asked for "a name of
    # your own mail server" (or an A record for a name in someone else's zone), as if
    # the sender had none: the one PTR record that would be confirmed went unsaid.
    from scorer.checks.ptr import PtrFacts, check_ptr

    ip = ipaddress.ip_address("81.2.69.42")
    facts = PtrFacts(ip, ptr, forward)

    def fixes(helo: str) -> list[str]:
        hits = [h for h in check_ptr(facts, helo) if h.symbol == symbol]
        assert hits, check_ptr(facts, helo)
        reply = CheckReply(tuple(SymbolResult(h.symbol, 1.0, h.options) for h in hits), 1.0)
        request = parse_request({"ip": str(ip), "helo": helo}).request
        report = render_report(request, reply, 1.0, None)
        return [line for line in report.splitlines() if line.startswith("  fix:")]

    (fix,) = fixes("mail.small-biz.net")
    assert fix.endswith(
        "; its HELO name mail.small-biz.net already resolves to 81.2.69.42: "
        "a PTR of 81.2.69.42 naming it would be confirmed"
    ), fix
    # A generic HELO is no name to ask for: a PTR naming it would be RL_PTR_GENERIC.
    (fix,) = fixes("81-2-69-42.pool.other-isp.net")
    assert "HELO name" not in fix, fix


@pytest.mark.parametrize(
    ("symbol", "evidence", "key"),
    [
        (
            "RL_PTR_TEMPFAIL",
            (
                "PTR 81.2.69.42 not confirmed",
                "n0.many.example A: nxdomain",
                "5 more PTR names not checked (max_ptr_names)",
            ),
            "max_ptr_names",
        ),
        (
            "RL_MAILFROM_TEMPFAIL",
            (
                "domain=many.example",
                "MX mx0.many.example: only non-public addresses 10.0.0.1",
                "2 more MX targets not checked (max_mx_hosts)",
            ),
            "max_mx_hosts",
        ),
    ],
)
def test_check_report_tempfail_of_the_bound_says_nothing_failed(
    symbol: str, evidence: tuple[str, ...], key: str
) -> None:
    # Regression (review): a TEMPFAIL only because names were left beyond the bound
    # (every lookup answered) told the admin to "make the zone of the failed lookup the
    # evidence names answer from reachable, working nameservers", a zone that works, and
    # named no lever of the receiving side, whose [dns] setting made the names unchecked.
    request = parse_request({"ip": "81.2.69.42", "mail_from": "u@many.example"}).request
    reply = CheckReply((SymbolResult(symbol, 0.0, evidence),), 0.0)
    report = render_report(request, reply, 1.0, None)
    (fix,) = [line for line in report.splitlines() if line.startswith("  fix:")]
    assert f"not checked ({key}), nothing failed" in fix, fix
    assert f"[dns] {key}" in fix and "raise it here" in fix, fix


def test_check_report_localhost_fix_does_not_send_the_sender_to_a_missing_ptr() -> None:
    # Regression (review): beside RL_PTR_MISSING ("no PTR for ...") the RL_HELO_LOCALHOST
    # fix said "greet with its fully-qualified name, e.g. the PTR name of" the client,
    # a name there is none of; beside RL_PTR_GENERIC it pointed at the generic name the
    # report's other fix line says to replace (and which greeting with scores
    # RL_HELO_GENERIC).
    request = parse_request({"ip": world.MISSING_PTR_IP, "helo": "localhost"}).request
    missing = SymbolResult("RL_PTR_MISSING", 5.0, ("no PTR for " + world.MISSING_PTR_IP,))
    localhost = SymbolResult("RL_HELO_LOCALHOST", 1.0, ("helo=localhost",))
    report = render_report(request, CheckReply((missing, localhost), 6.0), 1.0, None)
    fix = [line for line in report.splitlines() if line.startswith("  fix:")][1]
    assert "the PTR name of" not in fix, fix
    assert f"resolves to {world.MISSING_PTR_IP}" in fix, fix
