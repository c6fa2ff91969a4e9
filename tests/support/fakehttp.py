"""A tiny HTTP/1.1 server on plain sockets, for faults a real service cannot produce on demand.

One thread per connection, keep-alive honoured (rspamd's client reuses connections),
and the behaviour switchable at run time through ``mode``:

- ``json``: 200 with ``reply`` (a JSON-able object) as the body;
- ``raw``: 200 with ``body`` (bytes) as it is, labelled application/json;
- ``status``: ``status`` code with a small JSON error body, ``error`` its words;
- ``garbage``: 200 with a body that is not JSON;
- ``wire``: ``body`` as the whole answer, status line and headers included;
- ``hang``: read the request, never answer (the connection stays open until the peer leaves);
- ``close``: read the request and close the connection without a word.

``delay`` (seconds) holds every answer back that long: a slow service.
Every request is recorded (method, path, lower-cased headers, body, and ``at``: when
it was read, time.monotonic()).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

from tests.support.ports import free_port, tcp_listener


class _Listening:
    """An accept loop in a daemon thread, until ``_listener`` is closed; subclasses
    define ``port``, ``_listener`` and what becomes of each connection (``_accepted``)."""

    port: int
    _listener: socket.socket
    host = "127.0.0.1"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._accepted(client)

    def _accepted(self, client: socket.socket) -> None:
        raise NotImplementedError


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeHttp(_Listening):
    mode: str = "json"
    status: int = 500
    reply: Any = field(default_factory=lambda: {"symbols": [], "score": 0.0, "elapsed_ms": 0.1})
    body: bytes = b""
    delay: float = 0.0
    error: str = "fake"
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"  # where it listens (an IPv6 address too: "::1")
    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = tcp_listener(self.port, self.host)
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()

    def set(self, mode: str, **values: Any) -> None:
        self.mode = mode
        for key, value in values.items():
            setattr(self, key, value)

    def _accepted(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._clients.append(client)
        threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        with client:
            while True:
                request, buffer = _read_request(client, buffer)
                if request is None:
                    return
                self.requests.append(request)
                response = self._response(request)
                if response is None:
                    return  # "hang" waits for the peer to leave; "close" leaves now
                try:
                    client.sendall(response)
                except OSError:
                    return

    def _response(self, request: Recorded) -> bytes | None:
        mode = self.mode
        if self.delay:
            time.sleep(self.delay)
        if mode == "hang":
            self._stopped.wait()
            return None
        if mode == "close":
            return None
        if mode == "json":
            return _http(200, json.dumps(self.reply).encode())
        if mode == "raw":
            return _http(200, self.body)
        if mode == "wire":
            return self.body
        if mode == "garbage":
            return _http(200, b"<html>this is not json", "text/html")
        if mode == "status":
            return _http(self.status, json.dumps({"error": self.error, "field": "-"}).encode())
        raise ValueError(f"unknown mode {mode!r}")


def _http(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} Fake\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _recv(client: socket.socket) -> bytes:
    """The next bytes from ``client``; b"" when it closed or failed."""
    try:
        return client.recv(65536)
    except OSError:
        return b""


def _read_request(client: socket.socket, buffer: bytes) -> tuple[Recorded | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = _recv(client)
        if not chunk:
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = _recv(client)
        if not chunk:
            return None, b""
        rest += chunk
    return Recorded(method, path, headers, rest[:length]), rest[length:]


class HungSocket(_Listening):
    """Accepts connections and never reads or answers: the service is hung."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener = tcp_listener(self.port)
        self._held: list[socket.socket] = []
        self.accepted = 0

    def _accepted(self, client: socket.socket) -> None:
        self.accepted += 1
        self._held.append(client)  # kept open, never read

    def stop(self) -> None:
        self._listener.close()
        for client in self._held:
            client.close()


class FullBacklog:
    """A host that never completes a TCP handshake, as one dropping connection attempts
    does: a listener with no room in its accept queue (filled by one connection nobody
    accepts), so the kernel drops every later SYN and connect() stays pending."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._filler.close()
        self._listener.close()


class CountingRelay(_Listening):
    """Passes each connection on to ``target`` (host:port) byte for byte, counting the
    connections it accepts: how many a client opened to a real service."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self.port = free_port()
        self._listener = tcp_listener(self.port)
        self.connections = 0

    def _accepted(self, client: socket.socket) -> None:
        self.connections += 1
        upstream = socket.create_connection(self._target)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def stop(self) -> None:
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copies until either side is done, then ends the other's half too."""
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
