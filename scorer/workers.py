"""Running the service: one process, or N worker processes sharing the port.

With ``workers > 1`` the parent forks N workers, each binding ``listen`` with
``SO_REUSEPORT`` so the kernel spreads connections over them. The parent only
supervises: it restarts a worker that dies, passes ``SIGHUP`` (reload) and
``SIGTERM``/``SIGINT`` (shutdown) on to every worker, and when one worker was
reloaded through ``POST /v1/reload`` (it sends the parent ``SIGUSR1``) reloads
the others. It keeps the last config that loaded, for the workers it starts to
fall back on, and kills a worker whose event loop stopped (``_watch``). Each
worker has its own caches; ``/metrics`` shows all workers together
(scorer.workermetrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from scorer.config import Config, ConfigError, ServerConfig
from scorer.connections import CappedSite, ConnectionCap
from scorer.handover import Handover, HandoverError, read_and_hand_over
from scorer.hangup import defer_hangups, take_deferred_hangup
from scorer.metrics import worker_restarts
from scorer.names import decimal_in, host_port
from scorer.requestlog import configure_logging
from scorer.workermetrics import (
    WorkerMetrics,
    make_directory,
    remove_directory,
    retire,
    snapshot_name,
    write_supervisor_snapshot,
)

log = logging.getLogger("rdns_scorer")

ConfigLoader = Callable[[], Config]
SUPERVISED = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1}
# A worker that dies sooner than this after starting counts as failing to start;
# after MAX_QUICK_DEATHS of those in a row the parent gives up instead of looping.
QUICK_DEATH_SECONDS = 2.0
MAX_QUICK_DEATHS = 5
STOP_GRACE_SECONDS = 10.0
# A stopping process answers its checks in flight (_finish_checks: within [dns]
# request_deadline, at most MAX_REQUEST_DEADLINE), then gives any other request still
# running this long before it cuts it off: a /readyz or POST /v1/reload that asked a
# silent resolver for the root waits up to [dns] timeout (60 s at most), which a service
# on its way out need not answer. aiohttp's own default, 60 s (twice: once for the
# handler, once more after cancelling it), outlasted the unit's TimeoutStopSec=15s, and
# systemd SIGKILLed one process (serve --workers 1) stopping during such a request.
STOP_OTHER_REQUESTS_SECONDS = 0.5
# Past the deadline: the reply still has to be written once the verdict is in.
CHECK_REPLY_SECONDS = 0.5
# The supervisor reads a SIGHUP's config in a thread (_read_in_a_thread), so that a file
# on a hung network file system does not hold its loop: the stop (past the unit's
# TimeoutStopSec, into systemd's SIGKILL of every worker), the watchdog's pings, the
# replacement of dead workers. A reading done within this is applied at once, as before.
READING_WAIT_SECONDS = 0.5
FORK_FAILURE_LOG_SECONDS = 60.0
ROUND_FAILURE_LOG_SECONDS = 60.0  # a bug in the supervisor's round, logged once a minute
PR_SET_PDEATHSIG = 1  # linux/prctl.h
HEARTBEAT_SECONDS = 1.0  # how often a worker tells the parent's watchdog it runs
# A gap this long between two rounds of the supervisor's own loop (one every 0.5 s at
# most) means it did not run either: the whole service was frozen (docker pause,
# systemctl freeze, SIGSTOP to the process group). Heartbeats could not be read then.
SUPERVISOR_PAUSE_SECONDS = 3 * HEARTBEAT_SECONDS
# A client that stops reading its replies (its receive window at zero) would hold its
# connection, the replies waiting to be sent and up to 32 requests aiohttp parsed
# behind them (~12 MB with long headers) for ever: aiohttp's writes have no deadline.
# The kernel drops such a peer after this long without progress (TCP_USER_TIMEOUT,
# RFC 5482), as it does one whose acks stop coming. The plugins and Prometheus read a
# reply at once; a connection idle between requests is not affected (nothing unsent).
UNREAD_REPLY_SECONDS = 10.0


# serve's exit status when the listen address is not on the host yet, or still taken,
# or its name does not resolve yet (EX_TEMPFAIL, sysexits.h): a boot race (an IPv6
# address in duplicate address detection, a VIP not yet moved here, a restart before the
# old process let go) that the unit's Restart= retries. A config error, and a port it may
# not bind (EACCES), exit 2, which RestartPreventExitStatus=2 does not retry.
EXIT_LISTEN_LATER = 75


def listen_exit_status(error: OSError) -> int:
    """serve's exit status for ``error``, one ``listen_failure`` describes."""
    transient = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)
    return (
        EXIT_LISTEN_LATER if isinstance(error, socket.gaierror) or error.errno in transient else 2
    )


def _stopped_by_someone(status: int) -> bool:
    """Whether a worker that ended with ``status`` (waitpid's) exited 0: a worker ends
    cleanly only on SIGTERM/SIGINT (run_worker's graceful stop), which, while the
    supervisor is not stopping, someone else sent: no bug of ours."""
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def listen_failure(error: OSError, host: str, port: int) -> str | None:
    """One line saying why ``host:port`` cannot be bound, or None for another OSError."""
    if isinstance(error, socket.gaierror):  # a host name that does not resolve (now)
        why = error.strerror or str(error)
    elif error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES, errno.EAFNOSUPPORT):
        why = os.strerror(error.errno)
    else:
        return None
    return (
        f"cannot listen on {host_port(host, port)}: {why}; choose another address with "
        "--listen, RDNS_SCORER_LISTEN or [server] listen"
    )


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """uvloop (``"uvloop"``, or ``"auto"`` when it is installed) or asyncio's own loop."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("[server] event_loop: uvloop is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def ensure_port_free(host: str, port: int) -> None:
    """Raise OSError (EADDRINUSE) when something listens on ``host:port`` already.

    Workers bind with SO_REUSEPORT, which lets any process of the same user join a
    port: a second ``serve --workers N`` (or the orphaned workers of a killed one)
    would silently share it. A bind without SO_REUSEPORT fails while any listener
    is there, so one is tried, and closed, before the workers start.
    """
    for probe in _bound_sockets(host, port, reuse_port=False):
        probe.close()


def listening_sockets(host: str, port: int, reuse_port: bool) -> list[socket.socket]:
    """The sockets to serve ``host:port`` on, bound (aiohttp listens on them), each
    dropping a connection whose replies go unread for UNREAD_REPLY_SECONDS."""
    sockets = _bound_sockets(host, port, reuse_port)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
        milliseconds = int(UNREAD_REPLY_SECONDS * 1000)
        for sock in sockets:
            # Set on the listening socket: each accepted connection inherits it.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)
    return sockets


def _bound_sockets(host: str, port: int, reuse_port: bool) -> list[socket.socket]:
    """A socket bound to each address ``host`` names (every one for ""), as aiohttp
    would bind them itself (asyncio's create_server): SO_REUSEADDR, IPv6 only on an
    IPv6 socket (the IPv4 addresses have their own), SO_REUSEPORT when asked."""
    sockets: list[socket.socket] = []
    addresses = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    unsupported: OSError | None = None
    try:
        for family, kind, proto, _name, address in dict.fromkeys(addresses):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as error:
                if error.errno != errno.EAFNOSUPPORT:
                    raise
                # A family the kernel has not (IPv6 off, ipv6.disable=1): passed over, as
                # create_server does. "localhost", ::1 too in Debian's /etc/hosts, ended
                # serve in a traceback there (review).
                unsupported = unsupported or error
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets and unsupported is not None:
        raise unsupported  # every address of a family this kernel has not
    return sockets


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG), so a
    killed supervisor leaves no workers serving unsupervised on the port."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def notify_systemd(state: str) -> None:
    """Tell systemd ``state`` (``READY=1``) when it runs us as a ``Type=notify`` unit
    (sd_notify(3): one datagram to $NOTIFY_SOCKET; "@" names an abstract socket).
    Without the variable, or when the socket is gone, nothing happens."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())


def systemd_watchdog() -> float | None:
    """How often to ping systemd's watchdog (WATCHDOG=1) when it watches this process
    (sd_watchdog_enabled(3)), else None: every second, or every half of a shorter
    WatchdogSec= ($WATCHDOG_USEC); $WATCHDOG_PID, when set, names the process it
    watches (the main one)."""
    usec = decimal_in(os.environ.get("WATCHDOG_USEC", ""), 1, 2**63 - 1)
    watched = os.environ.get("WATCHDOG_PID")
    if usec is None or watched not in (None, str(os.getpid())):
        return None
    return min(HEARTBEAT_SECONDS, usec / 2e6)


def _ping_systemd() -> None:
    notify_systemd("WATCHDOG=1")


def _listening(host: str, port: int) -> None:
    """The socket is bound: say so, in the log and to systemd (the unit is started
    only now, so a ``systemctl reload`` cannot reach a process still starting)."""
    log.info("listening on %s (pid %d)", host_port(host, port), os.getpid())
    notify_systemd("READY=1")


def exit_description(status: int) -> str:
    """``waitpid``'s raw status in words: "exit code 1", "killed by SIGKILL"."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:  # a real-time signal (SIGRTMIN+n): Python names only the ends
        return f"killed by signal {-code}"


# Connections the kernel queues while the loop is busy. aiohttp's default, 128, let a
# burst of new connections (the plugins open one per message) overflow the queue under
# load: the kernel drops the handshake's last packet and the client tries again after
# 1 s, then 3 s, past the plugin's timeout, instead of getting the 503 of max_in_flight
# at once. The kernel caps it at net.core.somaxconn (4096 on current kernels).
LISTEN_BACKLOG = 4096


def run_worker(
    config: Config,
    loader: ConfigLoader,
    host: str,
    port: int,
    reuse_port: bool = False,
    peer_reload: Callable[[], None] | None = None,
    stale_config: bool = False,
    shared_metrics: WorkerMetrics | None = None,
    heartbeat_fd: int | None = None,
    started: ServerConfig | None = None,
    api_loader: ConfigLoader | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, in this process. ``stale_config``: the config file
    failed to load and ``config`` is the last good one (reported as a failed reload).
    ``started``: the server settings the service started with, for a worker that
    replaces one: what a reload does not change (the event loop, the body limit: see
    Config.reload_warnings) stays as the others run it; by default ``config``'s.
    ``api_loader``: POST /v1/reload's, when not ``loader`` (create_app)."""
    started = started or config.server
    # Late: `check` needs no server code.
    from scorer.app import IDLE_CONNECTION_SECONDS, SERVICE_KEY, UNREAD_BODY_SECONDS, create_app
    from scorer.gctuning import tune_garbage_collection
    from scorer.names import load_public_suffixes

    loop = new_event_loop(started.event_loop)
    app = create_app(
        config,
        loader,
        peer_reload=peer_reload,
        shared_metrics=shared_metrics,
        body_cap=started.max_body_bytes,
        api_loader=api_loader,
    )
    # First of the start-up hooks (insert, not append): the app's own start-up waits up
    # to [dns] timeout for the resolver's root (scorer.app._check_the_root), and meanwhile
    # the watchdog must hear beats and SIGTERM must stop gracefully.
    if heartbeat_fd is not None:
        app.on_startup.insert(0, _beating(functools.partial(_beat, heartbeat_fd)))
    elif (interval := systemd_watchdog()) is not None:
        # One process (a supervisor pings for its workers, which it watches itself): a
        # stuck event loop stops the pings, and systemd restarts the service.
        app.on_startup.insert(0, _beating(_ping_systemd, interval))
    # One process tells systemd it stops (STOPPING=1); a worker leaves that to its
    # supervisor: one stopped by someone else is replaced, the service runs on.
    app.on_startup.insert(
        0, functools.partial(_stop_on_first_signal, tell_systemd=heartbeat_fd is None)
    )
    # Before aiohttp's own wait for the requests in flight (STOP_OTHER_REQUESTS_SECONDS).
    app.on_shutdown.append(_finish_checks)
    if stale_config:
        app[SERVICE_KEY].metrics.record_reload(success=False)
    load_public_suffixes()
    tune_garbage_collection()
    _serve(
        loop,
        app,
        listening_sockets(host, port, reuse_port),
        functools.partial(_listening, host, port),
        access_log=None,
        keepalive_timeout=IDLE_CONNECTION_SECONDS,
        lingering_time=UNREAD_BODY_SECONDS,
    )
    log.info("stopped (pid %d)", os.getpid())


def _serve(
    loop: asyncio.AbstractEventLoop,
    app: web.Application,
    sockets: list[socket.socket],
    listening: Callable[[], None],
    **handler_options: Any,
) -> None:
    """Serve ``app`` on ``sockets`` until SIGTERM/SIGINT (_stop_on_first_signal), then
    stop gracefully: what ``web.run_app`` does, but with every connection through one
    ConnectionCap ([server] max_connections), which run_app's own sites cannot take.
    ``listening`` is called once the sockets listen; ``handler_options`` go to aiohttp's
    request handlers (web.AppRunner)."""
    from scorer.app import SERVICE_KEY  # late, as in run_worker

    async def serve() -> None:
        runner = web.AppRunner(app, shutdown_timeout=STOP_OTHER_REQUESTS_SECONDS, **handler_options)
        await runner.setup()  # the app's start-up hooks
        try:
            assert runner.server is not None  # set up
            service = app[SERVICE_KEY]
            cap = ConnectionCap(
                runner.server,
                service.connection_limit,
                service.refuse_connection,
                service.refuse_unparsable,
            )
            service.metrics.connections_open.set_function(lambda: cap.open)
            for sock in sockets:
                await CappedSite(runner, sock, cap, LISTEN_BACKLOG).start()
            listening()
            await loop.create_future()  # until a signal's GracefulExit stops the loop
        finally:
            # Stops listening, closes idle connections and waits for the checks in flight.
            await runner.cleanup()

    main = loop.create_task(serve())
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        main.cancel()  # the graceful stop, in serve's cleanup
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
    finally:
        # As run_app ended: the tasks left cancelled (their errors logged), async
        # generators shut down, the loop closed. Not asyncio.Runner's close, which also
        # waits for the default executor's threads with no time limit: a reload still
        # reading the config (asyncio.to_thread) held up a stopping worker, which exits
        # with os._exit and never needed them, into the supervisor's SIGKILL.
        _cancel_left_tasks(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _cancel_left_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on ``loop`` and wait for them; report their errors."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


async def _stop_on_first_signal(app: web.Application, tell_systemd: bool = True) -> None:
    """An on_startup hook: SIGTERM or SIGINT starts aiohttp's graceful stop, once.

    aiohttp's own handlers raise GracefulExit on every one, and a second one during
    the graceful stop aborts it, dropping the checks in flight: systemd signals the
    parent and every worker (and the parent forwards its own), Ctrl-C reaches the
    whole process group. Later ones are ignored; the parent's SIGKILL after
    STOP_GRACE_SECONDS remains the hard stop. ``tell_systemd``: say STOPPING=1 (the
    service is going, not one worker).
    """
    from scorer.app import SERVICE_KEY  # late, as in run_worker

    loop = asyncio.get_running_loop()
    service = app[SERVICE_KEY]

    def stop(signum: int) -> None:
        # Said, so a log that ends here reads as a stop, not as a crash or a hang.
        pid = os.getpid()
        name = signal.Signals(signum).name
        log.info("stopping on %s (pid %d): finishing the checks in flight", name, pid)
        if tell_systemd:
            notify_systemd("STOPPING=1")
        service.stopping = True
        for other in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(other, lambda: None)
        raise web.GracefulExit()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)


async def _finish_checks(app: web.Application) -> None:
    """An on_shutdown hook: wait, once the sockets stopped listening, until the checks
    in flight are answered, for at most the request deadline of the config serving now
    (each of them began before the stop, so is due by then) and the time to send its
    reply. What runs after that is no check (see STOP_OTHER_REQUESTS_SECONDS)."""
    from scorer.app import SERVICE_KEY  # late, as in run_worker

    service = app[SERVICE_KEY]
    loop = asyncio.get_running_loop()
    due = loop.time() + service.config.dns.request_deadline + CHECK_REPLY_SECONDS
    while service.in_flight and loop.time() < due:
        await asyncio.sleep(0.01)


def _beating(
    beat: Callable[[], None], interval: float = HEARTBEAT_SECONDS
) -> Callable[[web.Application], Awaitable[None]]:
    """An on_startup hook: call ``beat`` every ``interval`` seconds from this event loop,
    for as long as the loop runs: the beats stop when the loop is stuck."""

    async def start(_app: web.Application) -> None:
        loop = asyncio.get_running_loop()

        def again() -> None:
            beat()
            loop.call_later(interval, again)

        again()

    return start


def _beat(fd: int) -> None:
    """A byte on the parent's watchdog pipe."""
    with contextlib.suppress(OSError):  # a full pipe: the parent lags, not us
        os.write(fd, b".")


def _ask_parent_to_reload_peers(parent: int) -> None:
    """SIGUSR1 to the supervisor, ``parent``, while it is still ours: once it has died
    (our SIGTERM on its way, _die_with_parent), getppid() names PID 1 or a subreaper,
    which SIGUSR1 could kill."""
    if os.getppid() == parent:
        with contextlib.suppress(OSError):
            os.kill(parent, signal.SIGUSR1)


def _read_in_a_thread(read: Callable[[], Config]) -> Future[Config]:
    """A SIGHUP's reading of the config, in a thread of its own: a daemon one, which the
    supervisor's exit does not wait for (the single process's: _leave_reloads_still_reading).
    Not an executor's: the interpreter's exit joins its threads, with no time limit."""
    reading: Future[Config] = Future()

    def run() -> None:
        try:
            reading.set_result(read())
        except Exception as error:  # raised where the outcome is taken (result)
            reading.set_exception(error)
        finally:
            if not reading.done():
                # A BaseException (SystemExit from a library) ends the thread: left unset,
                # the reading would stay "in progress" and every later SIGHUP wait for it.
                reading.set_exception(RuntimeError("the config reading ended without a config"))

    threading.Thread(target=run, name="config reload", daemon=True).start()
    return reading


@dataclass(slots=True)
class _Worker:
    """What the parent keeps of one worker process."""

    started: float  # monotonic
    snapshot: str  # the name of its metrics snapshot (scorer.workermetrics)
    beat_fd: int  # the read end of its heartbeat pipe
    last_beat: float  # monotonic time of its last heartbeat (inf once it was killed)


class Supervisor:
    """The parent of ``workers`` worker processes (see the module docstring)."""

    def __init__(
        self, config: Config, loader: ConfigLoader, host: str, port: int, workers: int
    ) -> None:
        self._config = config
        # What a reload cannot change (reload_warnings), the body limit among it: every
        # worker keeps the one it started with, replacements too.
        self._started = config.server
        self._reload_failed = False  # the latest reload was rejected: _config is older
        self._loader = loader
        self._host, self._port = host, port
        self._workers = workers
        self._children: dict[int, _Worker] = {}  # by pid
        self._stopping = False
        self._stop_deadline = 0.0  # when workers still running get SIGKILL; 0: none
        self._killed_at_stop = False  # some checks in flight went unanswered
        self._watched_at = time.monotonic()  # the latest round of _watch
        self._fork_quiet_until = 0.0  # a failed fork is logged again from then on
        self._bug_quiet_until = 0.0  # a failed round is logged again from then on
        self._quick_deaths = 0
        self._exit_status = 0  # what run() returns, unless checks went unanswered (1)
        self._metrics_directory: Path | None = None
        self._handover: Handover | None = None  # in the metrics directory (scorer.handover)
        self._reading: Future[Config] | None = None  # a SIGHUP's, still being read
        self._read_again = False  # a SIGHUP came during that reading
        # The workers replaced, for /metrics: a crash loop or a stuck worker that the
        # watchdog killed shows there, not only in the log (RdnsScorerWorkerRestarted).
        self._metrics = CollectorRegistry()
        self._restarts = worker_restarts(self._metrics)

    def _spawn(self) -> None:
        parent = os.getpid()
        name = snapshot_name()
        beat_read, beat_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(beat_read)  # tried again every round: a leak would exhaust the fds
            os.close(beat_write)
            raise
        if pid == 0:  # the worker
            code = 1
            try:
                for fd in [beat_read, *(w.beat_fd for w in self._children.values())]:
                    os.close(fd)  # the parent's ends
                os.set_blocking(beat_write, False)
                # A reload forwarded while we start must not kill us, nor get lost: the
                # app runs it once it takes SIGHUP over. Deferred before the signals are
                # unblocked (one may be pending since the fork), whatever the parent's
                # own SIGHUP action (serve() need not come through scorer.launch). The
                # flag is not cleared: the parent forks with it clear (_supervise takes
                # it with SIGHUP blocked), so it is set only by a reload forwarded to
                # this worker since the fork (importing ctypes below alone takes ~6 ms,
                # a reload in the parent ~1). The stop signals' actions too, before the
                # unblock: a SIGINT pending since the fork (Ctrl-C reaches the process
                # group) met the parent's KeyboardInterrupt, a "worker failed" traceback.
                defer_hangups()
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISED)
                _die_with_parent(parent)
                # The config the others serve: the last one that loaded (not the file
                # as it is now, edited but never reloaded), and whether a reload failed
                # since, so this worker's metrics say so as theirs do.
                config, stale = self._config, self._reload_failed
                configure_logging(*config.server.logging_settings)
                handover = self._handover
                run_worker(
                    config,
                    # On SIGHUP, the config the supervisor read (or the worker that
                    # answered a POST /v1/reload), not the file as it is by then; that
                    # POST reads the file here and hands it on (scorer.handover).
                    handover.take if handover is not None else self._loader,
                    self._host,
                    self._port,
                    reuse_port=True,
                    peer_reload=functools.partial(_ask_parent_to_reload_peers, parent),
                    stale_config=stale,
                    shared_metrics=(
                        WorkerMetrics(self._metrics_directory, name)
                        if self._metrics_directory is not None
                        else None
                    ),
                    heartbeat_fd=beat_write,
                    started=self._started,
                    api_loader=(
                        functools.partial(read_and_hand_over, self._loader, handover)
                        if handover is not None
                        else None
                    ),
                )
                code = 0
            except OSError as error:
                failure = listen_failure(error, self._host, self._port)
                if failure is None:
                    log.exception("worker %d failed", os.getpid())
                else:
                    log.error("worker: %s", failure)
                    # As serve's own at start (75: try again later), for the supervisor
                    # to end with if it gives up (_give_up).
                    code = listen_exit_status(error)
            except BaseException:
                # Through logging, so a JSON log keeps the traceback in one line.
                log.exception("worker %d failed", os.getpid())
            finally:
                # Nothing may stop the exit: an exception here (no sys.stderr when fd 2
                # was closed at start, a broken log pipe) went on up the supervisor's
                # stack, and this process ran on as a second supervisor, serving nothing.
                try:
                    if sys.stderr is not None:
                        sys.stderr.flush()
                finally:
                    os._exit(code)
        os.close(beat_write)
        os.set_blocking(beat_read, False)
        now = time.monotonic()
        self._children[pid] = _Worker(started=now, snapshot=name, beat_fd=beat_read, last_beat=now)

    def _watch(self) -> None:
        """Kill a worker whose event loop stopped beating (no byte on its heartbeat pipe
        for ``watchdog_seconds``; it writes one a second): a stuck worker would hold
        every message sent to it until the plugin's timeout. The reaper replaces it."""
        limit = self._config.server.watchdog_seconds
        now = time.monotonic()
        paused = now - self._watched_at > SUPERVISOR_PAUSE_SECONDS
        self._watched_at = now
        for pid, worker in self._children.items():
            if paused and worker.last_beat != float("inf"):
                # Silence nobody watched is no sign of a stuck loop: after a freeze of
                # every process, each worker's beats are counted from the thaw, or the
                # healthy ones were killed at once (a pause longer than the limit).
                worker.last_beat = now
            try:
                beats = os.read(worker.beat_fd, 4096)
            except BlockingIOError:
                beats = None
            if beats:
                worker.last_beat = now
            elif beats is None and limit and not self._stopping and now - worker.last_beat > limit:
                log.error(
                    "worker %d sent no heartbeat for %g s (its event loop is stuck): killing it",
                    pid, limit,
                )  # fmt: skip
                worker.last_beat = float("inf")  # killed once
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _release(self, worker: _Worker) -> None:
        """What a dead worker leaves: its heartbeat pipe, its metrics snapshot."""
        os.close(worker.beat_fd)
        if self._metrics_directory is not None:
            retire(self._metrics_directory, worker.snapshot)

    def _read(self) -> Config:
        """The config read for a SIGHUP, handed on to the workers (scorer.handover)."""
        if self._handover is None:  # no private directory: each worker reads the file too
            return self._loader()
        return read_and_hand_over(self._loader, self._handover)

    def _read_for_reload(self) -> None:
        """Read the config for a SIGHUP's reload in a thread (READING_WAIT_SECONDS): applied,
        and the workers told, at once when done by then, else by a later round
        (_finish_reading). One at a time: a SIGHUP meanwhile reads again once it is done,
        for the file may have changed after that reading began."""
        if self._reading is not None:
            self._read_again = True
            return
        self._reading = _read_in_a_thread(self._read)
        self._finish_reading(READING_WAIT_SECONDS)

    def _finish_reading(self, wait: float = 0.0) -> None:
        reading = self._reading
        if reading is None or self._stopping or not wait_for([reading], wait).done:
            return
        self._reading = None
        self._reload(read=reading.result)
        self._signal_all(signal.SIGHUP)
        if self._read_again:
            self._read_again = False
            self._read_for_reload()

    def _reload(
        self,
        before_the_workers: bool = False,
        asked_by: int = 0,
        read: Callable[[], Config] | None = None,
    ) -> int:
        """Read the config and hand it to the workers (they take it on the SIGHUP that
        follows), or, ``asked_by`` a worker (the SIGUSR1 of its POST /v1/reload), take
        the one handed on; keep the last good one for the workers started from now on
        (one that replaces a dead worker starts with it), and whether this reload was
        rejected. ``before_the_workers``: a SIGHUP of the start-up, which no worker
        reloads for (they start with the outcome), so this process says what became of
        it. Returns the worker that has the outcome already, which the SIGHUP passes
        over: the one that read what was handed on, not always the one that asked (two
        workers' SIGUSR1 sent close together are one, naming the first sender: a standard
        signal is pending only once, signal(7); the handover holds the second's reading).
        ``read``: the config's reading (by default _read, here)."""
        handover = self._handover
        has_it = asked_by
        try:
            if asked_by and handover is not None:
                outcome, has_it = handover.latest()
                if isinstance(outcome, ConfigError):
                    raise outcome
                config = outcome
            else:
                config = (read or self._read)()
        except ConfigError as error:  # the workers log and count the failure...
            self._reload_failed = True
            if before_the_workers:  # ... but none was there to
                log.error(
                    "config reload on SIGHUP (during start-up) failed, keeping the old "
                    "config: %s", error,
                )  # fmt: skip
            elif isinstance(error, HandoverError):  # ... but cannot know why: none was handed on
                log.error(
                    "config reload on SIGHUP failed (pid %d), keeping the old config: %s",
                    os.getpid(), error,
                )  # fmt: skip
            return has_it
        except Exception:
            # A bug of ours reading some config: rejected too (the workers, handed the
            # error, count it), never the end of the supervisor and every worker.
            log.exception("config reload failed, keeping the old config")
            self._reload_failed = True
            return has_it
        self._reload_failed = False
        previous, self._config = self._config, config
        if config.server.logging_settings != previous.server.logging_settings:
            # This process logs too (a worker that died, one restarted): in the format
            # the workers now use, not the one it started with.
            configure_logging(*config.server.logging_settings)
        for warning in config.reload_warnings(self._started, previous):
            log.warning("%s", warning)  # once here, for every worker (Service.reload)
        if before_the_workers:
            log.info("config reloaded on SIGHUP (during start-up)")
        return has_it

    def _signal_all(self, signum: int, skip: int = 0) -> None:
        for pid in list(self._children):
            if pid != skip:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                for worker in self._children.values():
                    self._release(worker)
                self._children.clear()
                return
            if pid == 0:
                return
            dead = self._children.pop(pid, None)
            if dead is None:
                continue
            self._release(dead)
            if self._stopping:
                continue
            description = exit_description(status)
            if _stopped_by_someone(status):
                description += ": stopped by a SIGTERM or SIGINT not of the supervisor's"
            log.error("worker %d exited (%s); starting a new one", pid, description)
            self._count_restart(dead, status)
            if time.monotonic() - dead.started < QUICK_DEATH_SECONDS:
                self._quick_deaths += 1
                time.sleep(min(self._quick_deaths, 5) * 0.2)
            else:
                self._quick_deaths = 0
            if self._quick_deaths >= MAX_QUICK_DEATHS:
                self._give_up(os.waitstatus_to_exitcode(status))
                return

    def _give_up(self, last_code: int) -> None:
        """Stop, the workers dying at every start. When the last one could not listen
        (its exit code one of listen_exit_status's), the supervisor's exit status says
        so as serve's does for a port it finds taken at start (75: systemd's Restart=
        tries again), not 1: the address was free at the start's check (ensure_port_free),
        so another process took it since (a single-process serve, another server), or it
        left this host, and a later start may well find it free or back."""
        if last_code in (EXIT_LISTEN_LATER, 2):
            # 75: taken or gone (EADDRINUSE, EADDRNOTAVAIL); 2: refused (EACCES,
            # EAFNOSUPPORT), which the worker's own line above names.
            why = (
                ": it was free when the service started, and taken or gone since"
                if last_code == EXIT_LISTEN_LATER
                else ""
            )
            log.error(
                "workers cannot listen on %s (above)%s; giving up",
                host_port(self._host, self._port),
                why,
            )
            self._exit_status = last_code
        else:
            log.error("workers keep dying at start; giving up")
            self._exit_status = 1
        self._begin_stop()

    def _count_restart(self, dead: _Worker, status: int) -> None:
        if dead.last_beat == float("inf"):
            reason = "watchdog"
        elif os.WIFSIGNALED(status) or _stopped_by_someone(status):
            reason = "signal"
        else:
            reason = "exit"
        self._restarts.labels(reason).inc()
        if self._metrics_directory is not None:
            write_supervisor_snapshot(self._metrics_directory, self._metrics)

    def _look_after_workers(self) -> None:
        """Reap the dead, start their replacements, kill the stuck. A bug in that
        bookkeeping is logged (once a minute at most) and the round ends: the
        supervisor going down takes every worker with it (their parent-death signal)."""
        try:
            self._reap()
            self._top_up()
            self._watch()
        except Exception:
            now = time.monotonic()
            if now >= self._bug_quiet_until:
                log.exception("the supervisor failed at a round (a bug; please report it)")
                self._bug_quiet_until = now + ROUND_FAILURE_LOG_SECONDS

    def _begin_stop(self) -> None:
        """Ask every worker to stop; those still running after STOP_GRACE_SECONDS are
        killed (one stuck worker must not keep the supervisor, and the port, for ever)."""
        self._stopping = True
        # systemd shows the unit deactivating, not active, for up to STOP_GRACE_SECONDS,
        # whoever began the stop (a kill by hand, workers that keep dying at start).
        notify_systemd("STOPPING=1")
        self._stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        self._signal_all(signal.SIGTERM)

    def _top_up(self) -> None:
        """Start workers in place of dead ones. A fork that fails (out of memory, out of
        processes or file descriptors) is tried again on the next round, not the end of
        the workers still serving."""
        while not self._stopping and len(self._children) < self._workers:
            try:
                self._spawn()
            except OSError as error:
                now = time.monotonic()
                if now >= self._fork_quiet_until:  # tried every round, said once a minute
                    log.error("cannot start a worker (%s); trying again", error)
                    self._fork_quiet_until = now + FORK_FAILURE_LOG_SECONDS
                return
        self._fork_quiet_until = 0.0

    def run(self) -> int:
        ensure_port_free(self._host, self._port)
        self._metrics_directory = make_directory()
        if self._metrics_directory is None:
            log.error(
                "no directory for the workers' metrics and reloads: each /metrics shows "
                "one worker, and each worker reads the config file itself on a reload"
            )
        else:
            handover = Handover(self._metrics_directory)
            try:
                # Taken by a worker that meets a reload before any was handed on (one
                # forwarded while it starts): the config it was started with.
                handover.publish(self._config)
            except ConfigError as error:
                log.error("%s: each worker reads the config file itself on a reload", error)
            else:
                self._handover = handover
        try:
            return self._supervise()
        finally:
            if self._metrics_directory is not None:
                with contextlib.suppress(OSError):
                    remove_directory(self._metrics_directory)

    def _supervise(self) -> int:
        # An ignored SIGCHLD survives exec: whatever started us with it so (a daemon
        # that sets it to reap its children) would have the kernel reap our workers
        # and send no signal, so a dead worker went unnoticed: never replaced, and its
        # pid, which another process may get, still signalled on every reload.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISED)
        # A SIGHUP since start-up (deferred: scorer.hangup) asked for a config newer than
        # the one loaded: the workers must start with that, not lose the reload.
        if take_deferred_hangup():
            self._reload(before_the_workers=True)
        self._top_up()  # a fork that fails here too is tried again, not the end of all
        ping = systemd_watchdog()
        pinged = 0.0
        while self._children or not self._stopping:
            if ping is not None and time.monotonic() - pinged >= ping:
                _ping_systemd()  # the workers are watched here (_watch)
                pinged = time.monotonic()
            # Shorter while a reading runs: its end is seen here, not signalled.
            wait = min(0.5, ping or 0.5, 0.05 if self._reading else 0.5)
            info = signal.sigtimedwait(SUPERVISED, wait)
            if info is not None:
                signum = info.si_signo
                if signum == signal.SIGHUP:
                    self._read_for_reload()
                elif signum == signal.SIGUSR1 and info.si_pid in self._children:
                    self._signal_all(signal.SIGHUP, skip=self._reload(asked_by=info.si_pid))
                elif signum in (signal.SIGTERM, signal.SIGINT) and not self._stopping:
                    log.info(
                        "stopping on %s (pid %d): %d worker(s) finish their checks in flight",
                        signal.Signals(signum).name, os.getpid(), len(self._children),
                    )  # fmt: skip
                    self._begin_stop()
            self._finish_reading()
            self._look_after_workers()
            if self._stop_deadline and time.monotonic() > self._stop_deadline:
                log.error(
                    "worker(s) %s still running %g s after the stop: killing them (their "
                    "checks in flight go unanswered)",
                    ", ".join(map(str, self._children)), STOP_GRACE_SECONDS,
                )  # fmt: skip
                self._signal_all(signal.SIGKILL)
                self._stop_deadline = 0.0
                self._killed_at_stop = True
        log.info("stopped (pid %d)", os.getpid())
        if self._reading is not None and not self._reading.done():
            log.warning("not waiting for the config reload still reading (pid %d)", os.getpid())
        # Not a clean stop when workers kept dying (_give_up) or checks were dropped:
        # systemd and scripts see the failure the log tells.
        return 1 if self._killed_at_stop else self._exit_status


# The most open files serve asks for: systemd's unit sets this too (LimitNOFILE).
OPEN_FILES_WANTED = 65536


def raise_open_files_limit() -> None:
    """Raise the soft limit of open files towards the hard one, as far as
    OPEN_FILES_WANTED: every connection is a file descriptor, and a shell's soft 1024
    (``make run``, a container) runs out under many rspamd workers' pooled
    connections, where new ones wait unaccepted past the plugin's timeout. The loop is
    epoll, which has no FD_SETSIZE limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _leave_reloads_still_reading(before: set[threading.Thread]) -> None:
    """End one process (serve --workers 1) that stopped, without waiting more than
    STOP_OTHER_REQUESTS_SECONDS for a reload still reading the config in a thread the
    service started (asyncio.to_thread; ``before``: the threads there were already):
    the interpreter's exit joins such threads with no time limit, and one reading a
    file on a hung network file system held a stop until systemd's SIGKILL. Nothing of
    it is wanted any more; a worker of several ends so anyway (os._exit, _spawn)."""
    due = time.monotonic() + STOP_OTHER_REQUESTS_SECONDS
    for thread in threading.enumerate():
        if thread in before or thread.daemon:
            continue
        thread.join(max(0.0, due - time.monotonic()))  # an idle one ends at once
        if thread.is_alive():
            log.warning("not waiting for the config reload still reading (pid %d)", os.getpid())
            if sys.stderr is not None:
                sys.stderr.flush()
            os._exit(0)  # the stop itself was clean: "stopped" is logged


def serve(config: Config, loader: ConfigLoader, host: str, port: int, workers: int) -> int:
    raise_open_files_limit()
    if workers <= 1:
        threads = set(threading.enumerate())
        run_worker(config, loader, host, port)
        _leave_reloads_still_reading(threads)
        return 0
    return Supervisor(config, loader, host, port, workers).run()
