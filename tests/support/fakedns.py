"""A tiny DNS responder for faults the real unbound cannot produce on demand."""

from __future__ import annotations

import socket
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset

from tests.support.ports import free_port


class FaultyDns:
    """Answers every UDP query according to ``mode``:

    ``servfail``/``refused``: that rcode; ``silent``: never answers;
    ``garbage``: bytes that are not a DNS message; ``truncated``: TC bit, no answer
    (and no TCP listener to retry on); ``late-truncated``: the same after ``delay``
    seconds; ``slow``: a valid NXDOMAIN after ``delay``
    seconds; ``mismatch``: an answer whose records are of another type and name;
    ``referral``: no answer, NS records in authority and no SOA (a server that does
    not recurse); any other mode names the rcode to answer (``formerr``, ``notimp``,
    ``nxdomain``). With ``root_soa`` set, the root's SOA is answered whatever the mode.
    """

    def __init__(self, mode: str, delay: float = 2.0, port: int | None = None) -> None:
        self.mode = mode
        self.delay = delay
        self.root_soa = False  # read per query: a test may change it while serving
        self.port = free_port() if port is None else port
        self.queries = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultyDns:
        self._thread.start()
        return self

    def _reply(self, data: bytes) -> bytes | None:
        if self.mode == "silent":
            return None
        if self.mode == "garbage":
            return data[:2] + b"\x81\x80\xff\xff\xff"
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        if self.root_soa and question.name == dns.name.root and question.rdtype == 6:
            response.answer.append(
                dns.rrset.from_text(".", 60, "IN", "SOA", ". . 1 1800 900 604800 3600")
            )
            return response.to_wire()
        if self.mode in ("truncated", "late-truncated"):
            if self.mode == "late-truncated":
                time.sleep(self.delay)
            response.flags |= dns.flags.TC
        elif self.mode == "slow":
            time.sleep(self.delay)
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.mode == "mismatch":
            response.answer.append(
                dns.rrset.from_text("other.example.", 60, "IN", "TXT", '"not what you asked"')
            )
        elif self.mode == "referral":
            response.authority.append(
                dns.rrset.from_text("example.", 60, "IN", "NS", "ns.example.")
            )
        else:
            response.set_rcode(dns.rcode.from_text(self.mode.upper()))
        return response.to_wire()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self._sock.recvfrom(4096)
            except OSError:
                return  # closed
            self.queries += 1
            reply = self._reply(data)
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    return  # closed while we were slow

    def stop(self) -> None:
        self._sock.close()


def dead_port() -> int:
    """A loopback port where nothing answers: queries to it time out."""
    return free_port()
