"""Queries over persistent UDP sockets on the event loop, TCP when a reply is truncated.

dnspython's async resolver opens, binds and registers a new socket for every
query; at the rates a busy mail site needs that setup costs more than the DNS
work itself. This transport keeps a few connected, non-blocking UDP sockets
per nameserver (kernel-chosen random source ports), registered once with the
loop, and matches replies by random query id *and* the echoed question. A
reply that does not match (late, spoofed, garbage) is dropped and the query
keeps waiting, as dnspython does (an error reply with our id and no question
section is that error: ``wire.classify``).

The queries started in one turn of the event loop are sent together at its end
(``UdpTransport._flush``): back to back, they wake the resolver once.

Retries: a query goes to the first nameserver; if no reply arrives within
``timeout / attempts`` it is sent again to the next one (or the same one when
there is only one), until ``timeout`` has passed. A nameserver that stayed silent
while a later one answered is asked last for ``DEMOTE_SECONDS``: a hung first
resolver (it takes packets, answers none) would otherwise add ``timeout /
attempts`` to every query, and a check whose lookups follow each other pays that
at each step. A definite failure (SERVFAIL,
REFUSED, a referral, a reply that cannot be read, ICMP unreachable, a nameserver we
cannot open a socket to)
moves on to the next nameserver at once (RFC 1034 section 5.3.3); when every
nameserver has been tried and none can still answer, the last failure is the
outcome. A truncated reply is asked again over TCP, of the nameserver that truncated
it; a definite failure there moves on to the next nameserver too.

EDNS (RFC 6891 section 7): a FORMERR (or NOTIMP, wire._NO_EDNS_SIGNS) without an OPT
record, to a query with one, is no failure yet: the nameserver may not take EDNS (an old
resolver, a middlebox), so the same question goes to it again at once without the OPT
record, within the same timeout and without using up a retry, and its later queries go
without for ``NO_EDNS_SECONDS`` (then with EDNS again: it may have been upgraded). One
with an OPT record, or to a query without one, is a definite failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from scorer.dns.outcomes import FailureKind, Outcome, TempFail, network_failure
from scorer.dns.wire import (
    TryNext,
    Verdict,
    classify,
    make_query,
    question,
)

if TYPE_CHECKING:
    from scorer.dns.layer import Nameserver

SOCKETS_PER_SERVER = 4
# A nameserver whose sockets could not be opened (an IPv6 resolver on a host without
# IPv6, no network yet at boot) is tried again after this long, not on every query.
REOPEN_SECONDS = 5.0
# A nameserver that did not answer while the next one did is asked last for this long.
DEMOTE_SECONDS = 5.0
# Queries one UDP socket sends before a new socket, on a new kernel-chosen source port,
# takes its place (as c-ares' udp_max_queries does): RFC 5452 section 9.2 makes the
# source port half of what a forged reply must guess, and a port kept for the life of
# the service is one an off-path spoofer has to find once. The old socket still takes
# the replies to its queries in flight, and is closed once they have all ended.
QUERIES_PER_SOCKET = 1024
# A nameserver that answered FORMERR (or NOTIMP) without an OPT record to a query with one
# is asked without EDNS for this long (RFC 6891 section 7), then with it again.
NO_EDNS_SECONDS = 600.0
_LENGTH = struct.Struct("!H")
log = logging.getLogger(__name__)


class _Socket:
    """One connected UDP socket and the queries waiting on it, by id."""

    __slots__ = ("pending", "queries", "server", "sock")

    def __init__(self, sock: socket.socket, server: int) -> None:
        self.sock = sock
        self.server = server
        self.pending: dict[int, _Pending] = {}
        self.queries = 0  # sent on it so far (QUERIES_PER_SOCKET)


OutcomeCallback = Callable[[Outcome], None]


class Transport(Protocol):
    """What the DNS layer asks of its transport (DnsLayer._transport): UdpTransport's
    interface, which the dnspython transport bench/straightforward.py puts in its place
    must have too (checked by mypy in the tests that do so)."""

    def send(self, name_wire: bytes, rdtype: int, on_done: OutcomeCallback) -> None: ...

    def set_timeout(self, timeout: float) -> None: ...

    @property
    def silent(self) -> list[Nameserver]: ...


class _Pending:
    """One query in flight: its question, where it was sent, and whom to tell."""

    __slots__ = (
        "asked", "attempts", "done", "expires", "failure", "on_done", "plain", "question",
        "rdtype", "registrations", "sent", "timer",
    )  # fmt: skip

    def __init__(
        self, on_done: OutcomeCallback, question: bytes, rdtype: int, expires: float
    ) -> None:
        self.on_done = on_done
        self.done = False
        self.question = question
        self.rdtype = rdtype
        self.expires = expires  # loop time by which the query ends, TCP fallback included
        self.attempts = 0
        self.asked: set[int] = set()  # the nameservers sent this query so far
        self.registrations: list[tuple[_Socket, int]] = []
        self.plain: tuple[tuple[_Socket, int], ...] = ()  # those sent without EDNS
        self.timer: asyncio.TimerHandle | None = None
        self.sent: float | None = None  # when the last attempt left (_flush); None: queued
        self.failure: TempFail | None = None  # the last definite failure (SERVFAIL...)


def _random_ids() -> Iterator[int]:
    while True:
        yield from array("H", os.urandom(8192))


def _on_readable(transport_ref: weakref.ref[UdpTransport], sock: _Socket) -> None:
    transport = transport_ref()
    if transport is None:
        return
    transport._readable(sock)


def _release(loop: asyncio.AbstractEventLoop | None, sockets: list[list[_Socket]]) -> None:
    """Unregister and close ``sockets`` (from ``loop``, unless it is gone already)."""
    for entry in (entry for per_server in sockets for entry in per_server):
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                loop.remove_reader(entry.sock.fileno())
        entry.sock.close()


class UdpTransport:
    """Send one question, get one outcome (or a TempFail) by callback."""

    def __init__(self, nameservers: Sequence[Nameserver], timeout: float, negative_ttl: int):
        self._servers = list(nameservers)
        self._timeout = timeout
        self._negative_ttl = negative_ttl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: list[list[_Socket]] = []  # per nameserver; [] when it failed to open
        # Replaced after QUERIES_PER_SOCKET queries, with queries still in flight on them.
        self._retiring: list[_Socket] = []
        self._open_failures: list[TempFail | None] = []
        self._usable: list[int] = []  # the nameservers with sockets, in order
        self._order: list[int] = []  # the same, those demoted for silence last
        self._demoted_until: dict[int, float] = {}
        self._promote_at: float | None = None  # when the next demotion ends
        # Those whose silence was logged, until they answer: a nameserver that stays
        # dead is asked first again after each demotion, and demoted again, but said once.
        self._said_silent: set[int] = set()
        # Those that answered FORMERR or NOTIMP without an OPT record to a query with one: asked
        # without EDNS until then (RFC 6891 section 7); logged when first found.
        self._no_edns_until: dict[int, float] = {}
        # At least one retransmission: a lost datagram must not cost a whole timeout.
        self._attempts = 2
        self._reopen_at: float | None = None  # when to try the failed ones again
        self._next_socket = 0
        self._ids = _random_ids()
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        # Queries of this turn of the loop, sent together at its end (_flush).
        self._outbox: list[tuple[_Socket, int, _Pending, bytes]] = []

    def set_timeout(self, timeout: float) -> None:
        """Give the queries sent from now on ``timeout`` (a reload that changed it)."""
        self._timeout = timeout

    @property
    def silent(self) -> list[Nameserver]:
        """The nameservers that stayed silent while a later one answered, and have not
        answered since (each logged once, "did not answer within"): mail is still scored,
        through the next one, so only the metrics show how long this lasts."""
        return [self._servers[index] for index in sorted(self._said_silent)]

    def __del__(self) -> None:
        self._close()

    def _close(self) -> None:
        _release(self._loop, [*self._sockets, self._retiring])
        self._sockets = []
        self._retiring = []
        self._loop = None
        # The datagrams queued for those sockets can go nowhere, and their _flush is due
        # on the loop we leave, which may never run it (closed after the turn that queued
        # them). Left here, the next loop's queries were queued behind them, and only the
        # first of a turn schedules a flush: none was ever sent again.
        self._outbox = []

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the sockets of every nameserver that has none yet, each on its own: one
        that fails keeps its failure for its turns, and the others serve (RFC 1034
        section 5.3.3: a server that cannot be reached is skipped, not fatal)."""
        if loop is not self._loop:
            self._close()
            self._loop = loop
            self._sockets = [[] for _ in self._servers]
            self._open_failures = [None] * len(self._servers)
        self._reopen_at = None
        for index, server in enumerate(self._servers):
            if self._sockets[index]:
                continue
            sockets: list[_Socket] = []
            try:
                for _ in range(SOCKETS_PER_SERVER):
                    sockets.append(self._connected(loop, index))
            except OSError as error:
                _release(loop, [sockets])
                # Bracketed as the config writes it (an IPv6 address, then a colon).
                self._open_failures[index] = network_failure(error, f"nameserver {server}: ")
                self._reopen_at = loop.time() + REOPEN_SECONDS
            else:
                self._sockets[index] = sockets
                self._open_failures[index] = None
        # A nameserver we cannot open a socket to is left out of the turns (tried
        # again at the next reopen), so the others keep their retransmissions.
        self._usable = [index for index, sockets in enumerate(self._sockets) if sockets]
        self._attempts = max(2, len(self._usable))
        self._reorder(loop.time())

    def _connected(self, loop: asyncio.AbstractEventLoop, index: int) -> _Socket:
        """A new non-blocking UDP socket connected to nameserver ``index`` (replies from
        elsewhere are dropped by the kernel) and watched by ``loop``; OSError if not."""
        server = self._servers[index]
        family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect((server.host, server.port))
            entry = _Socket(sock, index)
            loop.add_reader(sock.fileno(), _on_readable, weakref.ref(self), entry)
        except BaseException:
            sock.close()
            raise
        return entry

    def _renew(self, old: _Socket, slot: int) -> _Socket:
        """A new socket in ``old``'s place (QUERIES_PER_SOCKET), or ``old`` again for
        another round when none can be opened (out of descriptors: its port is better
        than no query). ``old`` keeps its queries in flight until they end, and is
        closed then (_left)."""
        assert self._loop is not None
        try:
            new = self._connected(self._loop, old.server)
        except OSError as error:
            server = self._servers[old.server]
            log.warning(
                "cannot open a new socket to nameserver %s (%s): its socket serves %d "
                "queries more",
                server, error, QUERIES_PER_SOCKET,
            )  # fmt: skip
            old.queries = 0
            return old
        self._sockets[old.server][slot] = new
        self._retiring.append(old)
        self._left(old)
        return new

    def _left(self, sock: _Socket) -> None:
        """A query left ``sock``: a retired socket whose last query has ended is closed,
        in a callback of its own. Not here: this may run while its own replies are read
        (a reply whose query goes on to another socket, which a renewal retires), and
        _readable, reading on from a socket closed under it, got EBADF for ever: the
        event loop spun and nothing else ran again."""
        if not sock.pending and sock in self._retiring:
            assert self._loop is not None
            self._loop.call_soon(self._close_retired, sock)

    def _close_retired(self, sock: _Socket) -> None:
        if sock in self._retiring:  # not closed meanwhile (_close, or an earlier call)
            self._retiring.remove(sock)
            _release(self._loop, [[sock]])

    def _reorder(self, now: float) -> None:
        """Usable nameservers in their configured order, those still demoted last."""
        demoted = self._demoted_until
        for index in [i for i, until in demoted.items() if until <= now]:
            del demoted[index]
        self._order = [i for i in self._usable if i not in demoted] + [
            i for i in self._usable if i in demoted
        ]
        self._promote_at = min(demoted.values(), default=None)

    def _demote_silent(self, pending: _Pending, answered: tuple[_Socket, int]) -> None:
        """Demote each nameserver asked before the one that answered and still silent."""
        assert self._loop is not None
        responder = answered[0].server
        for sock, query_id in pending.registrations:
            if (sock, query_id) == answered:
                return
            index = sock.server
            if index != responder and sock.pending.get(query_id) is pending:
                first = index not in self._demoted_until and self._order[0] == index
                if first and index not in self._said_silent:
                    self._said_silent.add(index)
                    silent, other = self._servers[index], self._servers[responder]
                    log.warning(
                        "nameserver %s did not answer within %gs while %s did: "
                        "asking it last for %gs",
                        silent, self._timeout / self._attempts, other, DEMOTE_SECONDS,
                    )  # fmt: skip
                self._demoted_until[index] = self._loop.time() + DEMOTE_SECONDS
                self._reorder(self._loop.time())

    def send(self, name_wire: bytes, rdtype: int, on_done: OutcomeCallback) -> None:
        """Start a query; ``on_done(outcome)`` runs once, within ``timeout`` (maybe before
        this returns, when no nameserver's sockets can be opened; a send that fails
        reports at the end of the turn, _flush). No task, no future: the cache layer
        settles its own waiters from the callback. Call on the event loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or (
            self._reopen_at is not None and loop.time() >= self._reopen_at
        ):
            self._open(loop)
        elif self._promote_at is not None and loop.time() >= self._promote_at:
            self._reorder(loop.time())
        if not self._usable:
            failure = next((f for f in self._open_failures if f is not None), None)
            on_done(failure or TempFail(FailureKind.NETWORK, "no nameserver configured"))
            return
        expires = loop.time() + self._timeout
        self._attempt(_Pending(on_done, question(name_wire, rdtype), rdtype, expires))

    def _forget(self, pending: _Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        for sock, query_id in pending.registrations:
            if sock.pending.get(query_id) is pending:
                del sock.pending[query_id]
            self._left(sock)
        pending.registrations.clear()

    def _finish(self, pending: _Pending, outcome: Outcome) -> None:
        self._forget(pending)
        if not pending.done:
            pending.done = True
            pending.on_done(outcome)

    def _attempt(self, pending: _Pending) -> None:
        """Send (again), to the next nameserver in turn, and arm the retry timer.

        Never raises: it also runs from a timer, where an exception would leave the
        query (and every lookup sharing it) waiting for good.
        """
        try:
            self._send_attempt(pending)
        except Exception as error:
            self._finish(pending, network_failure(error))

    def _send_attempt(self, pending: _Pending) -> None:
        assert self._loop is not None
        attempt = pending.attempts
        pending.attempts += 1
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.attempts >= self._attempts:
            pending.timer = self._loop.call_at(pending.expires, self._timed_out, pending)
        else:
            # Never past the query's timeout, however late this attempt comes (a
            # definite failure handing over late, a TCP retry that failed): a lookup
            # whose deadline is beyond the timeout has no timer of its own.
            due = min(self._loop.time() + self._timeout / self._attempts, pending.expires)
            pending.timer = self._loop.call_at(due, self._retry, pending)
        order = self._order
        server = order[0]
        if pending.asked:
            # The first nameserver in the current order not asked yet: the order may
            # have changed since the last attempt (a demotion), and a retry must not
            # go back to the silent one while the working one is never asked.
            server = next((i for i in order if i not in pending.asked), order[attempt % len(order)])
        pending.asked.add(server)
        until = self._no_edns_until.get(server)
        self._queue(pending, server, until is None or self._loop.time() >= until)

    def _queue(self, pending: _Pending, server: int, edns: bool) -> None:
        """Register ``pending`` under a new id on one of ``server``'s sockets, its query
        to leave at the end of this turn (_flush), with an OPT record or without."""
        assert self._loop is not None
        sockets = self._sockets[server]
        self._next_socket += 1
        slot = self._next_socket % len(sockets)
        sock = sockets[slot]
        sock.queries += 1
        if sock.queries > QUERIES_PER_SOCKET:
            sock = self._renew(sock, slot)
            sock.queries += 1
        query_id = next(self._ids)
        while query_id in sock.pending:
            query_id = next(self._ids)
        sock.pending[query_id] = pending
        pending.registrations.append((sock, query_id))
        if not edns:
            pending.plain += ((sock, query_id),)
        pending.sent = None
        self._outbox.append((sock, query_id, pending, make_query(query_id, pending.question, edns)))
        if len(self._outbox) == 1:
            self._loop.call_soon(self._flush)

    def _without_edns(self, pending: _Pending, server: int, rcode: str) -> None:
        """RFC 6891 section 7: ``server`` answered ``rcode`` (FORMERR, NOTIMP) without an
        OPT record to ``pending``'s query with one. Asked again without it, at once: no definite
        failure, no attempt used up (the retry timer counts from when this one leaves),
        the same timeout; and without EDNS for NO_EDNS_SECONDS. Never raises, as
        _attempt."""
        assert self._loop is not None
        if server not in self._no_edns_until:
            name = self._servers[server]
            log.warning(
                "nameserver %s does not take EDNS (%s without an OPT record): "
                "asking it without, and with EDNS again every %gs",
                name, rcode, NO_EDNS_SECONDS,
            )  # fmt: skip
        self._no_edns_until[server] = self._loop.time() + NO_EDNS_SECONDS
        try:
            self._queue(pending, server, edns=False)
        except Exception as error:
            self._finish(pending, network_failure(error))

    def _flush(self) -> None:
        """Send the queries of this turn of the loop, back to back.

        A datagram that finds the resolver asleep pays for waking it on its own CPU
        (26-30 us of our CPU per send on the slow bench box); one sent while it still
        works through the previous ones, 5.5 (docs/performance.md). The checks of a busy
        loop start their lookups between long stretches of Python, so sent at once each
        query woke the resolver; collected for the turn, one wakes it for all.
        Never raises: a query left unsent would wait for good.
        """
        assert self._loop is not None
        now = self._loop.time()
        outbox, self._outbox = self._outbox, []
        for sock, query_id, pending, wire in outbox:
            if sock.pending.get(query_id) is not pending:
                continue  # finished before its turn came (a reply to an earlier send)
            try:
                sock.sock.send(wire)
                pending.sent = now
            except OSError as error:
                # Not sent, so nothing can answer it: the next nameserver, or done now
                # (not when the timer ends a wait for a reply that cannot come).
                del sock.pending[query_id]
                pending.registrations.remove((sock, query_id))
                self._left(sock)
                self._network_error(pending, error)
            except Exception as error:
                self._finish(pending, network_failure(error))

    def _retry(self, pending: _Pending) -> None:
        """The retry timer: no reply ``timeout / attempts`` after the datagram left.

        Armed when the query is queued, it counts from when the datagram left, at the end
        of the turn: after a turn longer than that (a stall, a loop busy with many checks)
        it was due as the datagram had only just left, and every query of that turn was
        asked of the next nameserver too, which could answer first and have the first, a
        working one, demoted for silence. One still queued (uvloop runs the timers due
        before the turn's callbacks) leaves in this turn: counted from now. Never past
        the query's timeout: a lookup whose deadline is beyond it has no timer of its own.
        Never raises, as _attempt: a query whose timer is not armed again would wait for
        good, and every lookup sharing it with it.
        """
        assert self._loop is not None
        now = self._loop.time()
        if now >= pending.expires:
            # Its time is up: another attempt would wait a timeout/attempts of its own
            # past it, each nameserver left adding one (0.5 s became 0.84 with eight).
            self._timed_out(pending)
            return
        sent = now if pending.sent is None else pending.sent
        due = min(sent + self._timeout / self._attempts, pending.expires)
        if due <= now:
            self._attempt(pending)
            return
        try:
            pending.timer = self._loop.call_at(due, self._retry, pending)
        except Exception as error:
            self._finish(pending, network_failure(error))

    def _timed_out(self, pending: _Pending) -> None:
        timeout = TempFail(FailureKind.TIMEOUT, f"no answer within {self._timeout:g}s")
        self._finish(pending, pending.failure or timeout)

    def _rearm(self, sock: _Socket) -> None:
        """Register ``sock`` with the loop again, soon. uvloop (libuv) stops watching a
        socket whose poll reported an error, such as the ICMP unreachable a restarting
        resolver sends: without this, every later reply to it went unread and each
        query on it timed out until the service restarted."""
        loop = self._loop
        assert loop is not None

        def rearm() -> None:
            if loop is not self._loop or sock not in self._sockets[sock.server]:
                return  # closed or replaced meanwhile
            loop.remove_reader(sock.sock.fileno())
            loop.add_reader(sock.sock.fileno(), _on_readable, weakref.ref(self), sock)

        loop.call_soon(rearm)

    def _network_error(self, pending: _Pending, error: OSError) -> None:
        pending.failure = network_failure(error)
        self._next_or_fail(pending)

    def _next_or_fail(self, pending: _Pending) -> None:
        """After a definite failure: the next nameserver if one is left untried; else
        done, unless an earlier one may still answer (the query's timer then ends it,
        with this failure if none does)."""
        assert pending.failure is not None
        if pending.attempts < len(self._usable):
            self._attempt(pending)
        elif not any(sock.pending.get(qid) is pending for sock, qid in pending.registrations):
            self._finish(pending, pending.failure)

    def _readable(self, sock: _Socket) -> None:
        receive = sock.sock.recv
        while True:
            try:
                data = receive(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                # ICMP unreachable on the connected socket: the server is not there.
                stranded = list(sock.pending.values())
                sock.pending.clear()
                for waiting in stranded:
                    self._network_error(waiting, error)
                self._rearm(sock)
                continue
            if len(data) < 12:
                continue
            query_id = (data[0] << 8) | data[1]
            pending = sock.pending.get(query_id)
            if pending is None or pending.done:
                continue
            verdict = classify(data, query_id, pending.question, pending.rdtype, self._negative_ttl)
            if verdict is Verdict.NOT_OURS:
                continue
            if sock.server in self._said_silent:
                self._said_silent.discard(sock.server)
                server = self._servers[sock.server]
                log.info("nameserver %s answers again", server)  # [IPv6]:PORT
            if verdict is Verdict.TRUNCATED:
                edns = (sock, query_id) not in pending.plain
                self._forget(pending)
                server = self._servers[sock.server]
                task = asyncio.ensure_future(self._over_tcp(pending, server, edns))
                self._tcp_tasks.add(task)
                task.add_done_callback(self._tcp_tasks.discard)
            elif isinstance(verdict, TryNext):
                del sock.pending[query_id]
                if verdict.without_opt and (sock, query_id) not in pending.plain:
                    self._without_edns(pending, sock.server, verdict.failure.detail)
                else:
                    pending.failure = verdict.failure
                    self._next_or_fail(pending)
            else:
                if pending.attempts > 1:  # asked more than one nameserver, maybe
                    self._demote_silent(pending, (sock, query_id))
                self._finish(pending, verdict)

    async def _over_tcp(self, pending: _Pending, server: Nameserver, edns: bool) -> None:
        """Ask again over TCP (RFC 7766 section 5) the nameserver whose reply was
        truncated, with EDNS as the truncated query was. A definite failure there
        (refused, cut short, SERVFAIL, any FORMERR, a reply that is not to our query or
        is truncated again...) is the next nameserver's turn, as over UDP (RFC 1034
        section 5.3.3)."""
        query_id = next(self._ids)
        try:
            # The query's own budget, not a new one: a lookup never outlasts ``timeout``.
            async with asyncio.timeout_at(pending.expires):
                reader, writer = await asyncio.open_connection(server.host, server.port)
                try:
                    query = make_query(query_id, pending.question, edns)
                    writer.write(_LENGTH.pack(len(query)) + query)
                    (length,) = _LENGTH.unpack(await reader.readexactly(2))
                    data = await reader.readexactly(length)
                finally:
                    writer.close()
            verdict = classify(data, query_id, pending.question, pending.rdtype, self._negative_ttl)
        except TimeoutError:
            timeout = TempFail(FailureKind.TIMEOUT, f"no TCP answer within {self._timeout:g}s")
            self._finish(pending, timeout)
            return
        except (OSError, asyncio.IncompleteReadError, struct.error) as error:
            verdict = TryNext(network_failure(error, "TCP: "))
        if isinstance(verdict, Verdict):
            # Not to our query (another id or question, unparsable) or truncated again.
            # Over UDP the real reply may still come; on this connection, which carries
            # our one query, no other will: the nameserver (or whatever intercepts its
            # TCP) is broken, and the next one may answer whole.
            failure = TempFail(FailureKind.MALFORMED, f"TCP reply: {verdict.value}")
            verdict = TryNext(failure)
        if isinstance(verdict, TryNext):
            pending.failure = verdict.failure
            self._next_or_fail(pending)
        else:
            self._finish(pending, verdict)
