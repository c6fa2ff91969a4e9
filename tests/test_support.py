"""The tests' own helpers, where a mistake would hang or mislead a whole run."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from tests.support.ports import free_loopback_address, free_port
from tests.support.processes import wait_listening


class _Stop(BaseException):
    """Ends a helper that would otherwise keep trying for ever."""


def _refusing_bind(monkeypatch: pytest.MonkeyPatch, code: int) -> list[Any]:
    calls: list[Any] = []

    def bind(self: socket.socket, address: Any) -> None:
        calls.append(address)
        if len(calls) > 1000:
            raise _Stop
        raise OSError(code, "refused")

    monkeypatch.setattr(socket.socket, "bind", bind)
    return calls


def test_free_loopback_address_gives_up_when_the_port_is_taken_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: a resolver bound to 0.0.0.0:53 (dnsmasq's default) makes every
    # 127.x.y.z:53 bind fail; the search then never ended, and the run hung.
    calls = _refusing_bind(monkeypatch, errno.EADDRINUSE)
    with pytest.raises(RuntimeError, match=r"0\.0\.0\.0:53"):
        free_loopback_address(53)
    assert len(calls) == 50


def test_free_loopback_address_without_the_right_to_bind_fails_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Port 53 without root: no other address helps.
    calls = _refusing_bind(monkeypatch, errno.EACCES)
    with pytest.raises(RuntimeError, match="cannot bind port 53"):
        free_loopback_address(53)
    assert len(calls) == 1


def test_a_server_that_never_listens_is_stopped_and_its_log_shown() -> None:
    # tests/support/processes.wait_listening, which Postfix and rspamd's milter share.
    class Server:
        stopped = False

        def log(self) -> str:
            return "" if self.stopped else "fatal: bind: address in use"

        def stop(self) -> None:
            self.stopped = True

    server = Server()
    with pytest.raises(TimeoutError) as raised:
        wait_listening(server, free_port(), 0.2, "postfix did not listen")
    assert str(raised.value) == "postfix did not listen:\nfatal: bind: address in use"
    assert server.stopped
