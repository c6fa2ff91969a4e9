"""A tiny DNS responder for faults the real unbound cannot produce on demand."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from scorer.names import REVERSE_TREES
from tests.support.ports import free_port


class FaultyDns:
    """Answers every UDP query according to ``mode``:

    ``servfail``/``refused``: that rcode; ``silent``: never answers;
    ``garbage``: bytes that are not a DNS message; ``truncated``: TC bit, no answer
    (and no TCP listener to retry on, unless ``tcp`` names one); ``late-truncated``:
    the same after ``delay`` seconds; ``slow``: a valid NXDOMAIN after ``delay``
    seconds; ``mismatch``: an answer whose records are of another type and name;
    ``referral``: no answer, NS records in authority and no SOA (a server that does
    not recurse); ``cut-short``: ``address``'s reply without its last three bytes and
    no TC (a middlebox cutting it); ``stray-bytes``: an NXDOMAIN with two bytes after
    its last record; ``decoy``: an empty and a one-byte datagram, a reply with the query's
    id to another question and one to the question under another id, then the
    NXDOMAIN; ``address``: the A record
    192.0.2.53 for any name; any other mode names the rcode to answer (``formerr``,
    ``notimp``, ``nxdomain``, ``noerror``: NODATA without an SOA). With ``root_soa``
    set, the root's SOA (and in-addr.arpa's and ip6.arpa's, which the DNS layer probes
    beside it) is answered whatever the mode. With ``root_delay``, the answer to
    such an SOA question goes out that many seconds late, while other questions are
    answered at once; ``others_delay`` the other way round. With ``edns`` false, a
    server that does not take EDNS: a query with an OPT record gets FORMERR (or the
    rcode ``no_edns_rcode`` names) without one, whatever the mode (over TCP too);
    ``edns_queries`` counts those with one.

    ``tcp``: also listen on TCP, same port, and answer each query there as that mode
    does over UDP (``close``: read the query, then close without a reply).
    ``host``: the loopback address to serve on (``::1`` for IPv6).
    """

    def __init__(
        self,
        mode: str,
        delay: float = 2.0,
        port: int | None = None,
        tcp: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.mode = mode
        self.delay = delay
        self.root_soa = False  # read per query: a test may change it while serving
        self.root_delay = 0.0
        self.others_delay = 0.0
        self.edns = True  # read per query, as root_soa
        self.no_edns_rcode = "formerr"
        self.edns_queries = 0
        self.host = host
        self.queries = 0
        self.tcp_queries = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if port is None and family == socket.AF_INET:
            port = free_port()
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind((host, port or 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.tcp = tcp
        self._listener: socket.socket | None = None
        if tcp is not None:
            self._listener = socket.socket(family, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, self.port))
            self._listener.listen(16)

    @property
    def nameserver(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> FaultyDns:
        self._thread.start()
        if self._listener is not None:
            threading.Thread(target=self._serve_tcp, daemon=True).start()
        return self

    def _reply(self, data: bytes, mode: str | None = None) -> bytes | None:
        mode = mode or self.mode
        if mode == "silent":
            return None
        if mode == "garbage":
            return data[:2] + b"\x81\x80\xff\xff\xff"
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        if query.edns >= 0:
            self.edns_queries += 1
            if not self.edns:
                response.use_edns(False)
                response.set_rcode(dns.rcode.from_text(self.no_edns_rcode.upper()))
                return response.to_wire()
        if self.root_soa and _asks_the_root(data):
            response.answer.append(
                dns.rrset.from_text(question.name, 60, "IN", "SOA", ". . 1 1800 900 604800 3600")
            )
            return response.to_wire()
        if mode in ("truncated", "late-truncated"):
            if mode == "late-truncated":
                time.sleep(self.delay)
            response.flags |= dns.flags.TC
        elif mode == "slow":
            time.sleep(self.delay)
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif mode == "mismatch":
            response.answer.append(
                dns.rrset.from_text("other.example.", 60, "IN", "TXT", '"not what you asked"')
            )
        elif mode == "referral":
            response.authority.append(
                dns.rrset.from_text("example.", 60, "IN", "NS", "ns.example.")
            )
        elif mode in ("address", "cut-short"):
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.53"))
            if mode == "cut-short":
                return response.to_wire()[:-3]
        elif mode == "stray-bytes":
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire() + b"xx"
        elif mode == "decoy":
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            response.set_rcode(dns.rcode.from_text(mode.upper()))
        return response.to_wire()

    def _decoys(self, data: bytes) -> list[bytes]:
        """What ``decoy`` sends before its reply: no DNS message, then one with the
        query's id that answers another question, and an answer to the question under
        an id no query has (late, spoofed)."""
        query = dns.message.from_wire(data)
        other = dns.message.make_query("decoy.example.", "A")
        other.id = query.id
        wrong = dns.message.make_response(other)
        wrong.set_rcode(dns.rcode.NXDOMAIN)
        stray = dns.message.make_response(query)
        stray.id = query.id ^ 1
        stray.answer.append(
            dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.66")
        )
        return [b"", b"\x00", wrong.to_wire(), stray.to_wire()]

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self._sock.recvfrom(4096)
            except OSError:
                return  # closed
            self.queries += 1
            reply = self._reply(data)
            late = self.root_delay if _asks_the_root(data) else self.others_delay
            if reply is not None and late:
                threading.Timer(late, self._send_late, (reply, peer)).start()
            elif reply is not None:
                try:
                    if self.mode == "decoy":
                        for decoy in self._decoys(data):
                            self._sock.sendto(decoy, peer)
                    self._sock.sendto(reply, peer)
                except OSError:
                    return  # closed while we were slow

    def _send_late(self, reply: bytes, peer: Any) -> None:
        with contextlib.suppress(OSError):  # closed meanwhile
            self._sock.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with connection:
                try:
                    (length,) = struct.unpack("!H", connection.recv(2, socket.MSG_WAITALL))
                    data = connection.recv(length, socket.MSG_WAITALL)
                    self.tcp_queries += 1
                    reply = None if self.tcp == "close" else self._reply(data, self.tcp)
                    if reply is not None:
                        connection.sendall(struct.pack("!H", len(reply)) + reply)
                except (OSError, struct.error):
                    continue

    def stop(self) -> None:
        self._sock.close()
        if self._listener is not None:
            self._listener.close()


# The SOAs the DNS layer probes (DnsLayer.check_root): the root's and the reverse trees'.
PROBED_SOAS = frozenset(dns.name.from_text(zone) for zone in (".", *REVERSE_TREES))


def _asks_the_root(data: bytes) -> bool:
    """Whether ``data`` asks for one of the SOAs any working resolver has (PROBED_SOAS)."""
    question = dns.message.from_wire(data).question[0]
    return question.name in PROBED_SOAS and question.rdtype == dns.rdatatype.SOA


def dead_port() -> int:
    """A loopback port where nothing answers: queries to it time out."""
    return free_port()
