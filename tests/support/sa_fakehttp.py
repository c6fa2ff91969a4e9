"""Small misbehaving HTTP servers in a thread, standing in for the scorer service.

Each server accepts on a free loopback port and, per connection, reads one request
(headers and Content-Length body), records it, then behaves as ``mode`` says:

- ``reply``: answers ``status`` with ``body`` (JSON), then closes; while ``queued`` holds
  bodies, each request gets the next of them instead (one reply per message);
- ``hang``: reads the request and never answers (until stopped);
- ``trickle``: sends a valid-looking reply one byte every ``interval`` seconds;
- ``garbage``: answers bytes that are not HTTP;
- ``linger``: answers like ``reply`` but keeps the connection open for a while, as a
  server that ignores ``Connection: close`` does;
- ``chunked``: answers like ``reply`` with ``Transfer-Encoding: chunked`` (in two chunks);
- ``short``: answers like ``reply`` with a Content-Length 10 bytes past the body, then
  closes: a reply cut short, whatever the body that came says.

While ``plan`` holds modes, each request takes the next of them instead of ``mode``
(``plan_modes``: a service that hangs for some requests and answers others).

``host`` is the loopback address to listen on: ``::1`` for an IPv6 URL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.ports import tcp_listener


@dataclass
class Received:
    request_line: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeHttp:
    mode: str = "reply"
    status: int = 200
    body: bytes = b'{"symbols":[],"score":0,"elapsed_ms":0}'
    interval: float = 0.2
    requests: list[Received] = field(default_factory=list)
    queued: list[bytes] = field(default_factory=list)
    host: str = "127.0.0.1"
    plan: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = tcp_listener(host=self.host)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1/check"

    def reply_json(self, data: Any, status: int = 200) -> FakeHttp:
        self.mode, self.status, self.body = "reply", status, json.dumps(data).encode()
        return self

    def queue_json(self, *replies: Any) -> FakeHttp:
        """Answer the next requests with these bodies in turn (status 200), then ``body``."""
        self.mode, self.status = "reply", 200
        self.queued[:] = [json.dumps(data).encode() for data in replies]
        return self

    def plan_modes(self, *modes: str) -> FakeHttp:
        """The next requests behave as these modes in turn, then as ``mode``."""
        self.plan[:] = modes
        return self

    def start(self) -> FakeHttp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self._read_request(conn)
                mode = self.plan.pop(0) if self.plan else self.mode
                if mode == "hang":
                    self._stop.wait()
                elif mode == "trickle":
                    reply = self._reply_bytes(b'{"symbols":[{"name":"RL_PTR_MISSING","score":5}]}')
                    for byte in reply:
                        if self._stop.wait(self.interval):
                            return
                        conn.sendall(bytes([byte]))
                elif mode == "garbage":
                    conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n{{{")
                elif mode == "linger":
                    conn.sendall(self._reply_bytes(self.body))
                    self._stop.wait(5)
                elif mode == "chunked":
                    half = len(self.body) // 2
                    head = f"HTTP/1.1 {self.status} X\r\nTransfer-Encoding: chunked\r\n\r\n"
                    chunks = b"".join(
                        b"%x;ext=1\r\n%s\r\n" % (len(part), part)
                        for part in (self.body[:half], self.body[half:])
                    )
                    conn.sendall(head.encode() + chunks + b"0\r\n\r\n")
                elif mode == "short":
                    reply = self._reply_bytes(self.body)
                    conn.sendall(
                        reply.replace(
                            b"Content-Length: %d" % len(self.body),
                            b"Content-Length: %d" % (len(self.body) + 10),
                        )
                    )
                else:
                    body = self.queued.pop(0) if self.queued else self.body
                    conn.sendall(self._reply_bytes(body))
            except OSError:
                return

    def _reply_bytes(self, body: bytes) -> bytes:
        head = (
            f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(4096)
            if not chunk:
                break
            body += chunk
        self.requests.append(Received(lines[0], headers, body))


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    time.sleep(0)
    return port
