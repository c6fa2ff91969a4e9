"""Free loopback ports for the servers the tests start."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (DNS needs both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def free_loopback_address(port: int, attempts: int = 50) -> str:
    """A random address in 127.0.0.0/8 (Linux answers on all of it) where ``port`` is free
    for both TCP and UDP: a fixed port (53 for the libc resolver) for this run alone, so
    parallel runs and a resolver on the host's 127.0.0.1:53 stay out of each other's way
    (not in 127.0.0.0/16, where the tests' SMTP clients are).

    RuntimeError, naming why, when no address will do: a port below 1024 without root
    (EACCES, at once), or one bound on every address (a resolver on 0.0.0.0:53 makes
    each bind EADDRINUSE), rather than trying new addresses for ever."""
    error: OSError | None = None
    for _ in range(attempts):
        octets = (random.randint(100, 254), random.randint(0, 255), random.randint(1, 254))
        address = "127.{}.{}.{}".format(*octets)
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind((address, port))
        except PermissionError as denied:
            raise RuntimeError(f"cannot bind port {port} on loopback: {denied}") from None
        except OSError as refused:
            error = refused
            continue
        return address
    raise RuntimeError(
        f"port {port} is taken on every loopback address tried ({attempts}; last: {error}): "
        f"is a server bound to 0.0.0.0:{port}?"
    )


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Until something accepts on 127.0.0.1:``port``. Generous: a service started while a
    loaded box (a full run beside other jobs) takes its time importing once took 15 s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def tcp_listener(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on ``host`` (``port`` 0: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(64)
    return listener
