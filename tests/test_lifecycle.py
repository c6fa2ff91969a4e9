"""The serve process's life: started without standard fds, a worker's exit that cannot flush,
the stop's wait for the requests in flight, Ctrl-C during the start."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scorer.config import Config, ConfigError, config_from_mapping
from scorer.handover import FILE_NAME, Handover, HandoverError, read_and_hand_over
from scorer.launch import INTERRUPTED_STATUS
from scorer.workermetrics import PREFIX, SHARED_MEMORY
from scorer.workers import EXIT_LISTEN_LATER, STOP_OTHER_REQUESTS_SECONDS, Supervisor
from tests.helpers import eventually
from tests.support.fakedns import FaultyDns
from tests.support.ports import free_port, wait_for_port
from tests.support.processes import children

CHECKOUT = Path(__file__).parents[1]


@pytest.fixture
def resolver() -> Iterator[FaultyDns]:
    dns = FaultyDns("nxdomain")
    dns.root_soa = True
    dns.start()
    yield dns
    dns.stop()


def _stop(process: subprocess.Popen[Any]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("closed", ["<&-", "2>&-"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_started_without_a_standard_fd_stops_cleanly(
    resolver: FaultyDns, closed: str, workers: str
) -> None:
    # The event loop's epoll fd took the free number 0 or 2, and uvloop (libuv's
    # uv__close asserts fd > 2) aborted at every stop: exit status -6 (SIGABRT).
    port = free_port()
    command = (
        f"exec {sys.executable} -m scorer serve --listen 127.0.0.1:{port} "
        f"--nameserver={resolver.nameserver} --workers {workers} {closed}"
    )
    process = subprocess.Popen(
        ["sh", "-c", command], cwd=CHECKOUT, stdout=subprocess.DEVNULL,
        stderr=None if "2>" in closed else subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        workers_before = children(process.pid)
    finally:
        status = _stop(process)
    assert status == 0
    for worker in workers_before:
        assert not Path(f"/proc/{worker}").exists()


def test_a_worker_whose_last_flush_fails_still_exits(tmp_path: Path, resolver: FaultyDns) -> None:
    # A stderr whose flush raises (None when fd 2 was closed, a log pipe gone): the
    # exception left the worker's `finally` before os._exit, and the worker ran on as
    # a second supervisor, serving nothing, never replaced; at the stop it signalled
    # its siblings and was SIGKILLed 10 s later (exit status 1).
    port = free_port()
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\nevent_loop = "asyncio"\n')
    script = textwrap.dedent(
        f"""
        import io, os, sys
        SUPERVISOR = os.getpid()
        class Unflushable(io.TextIOWrapper):
            def flush(self):  # in the workers, which the supervisor forks
                if os.getpid() != SUPERVISOR:
                    raise BrokenPipeError(32, "Broken pipe")
        sys.stderr = Unflushable(open(2, "wb", closefd=False), write_through=True)
        sys.argv = ["rdns-scorer", "serve", "--config", {str(config)!r},
                    "--listen", "127.0.0.1:{port}", "--nameserver={resolver.nameserver}",
                    "--workers", "2"]
        from scorer.launch import main
        sys.exit(main())
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=CHECKOUT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        workers = eventually(lambda: children(process.pid), lambda pids: len(pids) == 2)
        # The first worker from the start, the second from a round of the supervisor:
        # the exception went up a different stack from each.
        first = workers[0]
        os.kill(first, signal.SIGTERM)
        alive = eventually(
            lambda: children(process.pid), lambda pids: first not in pids and len(pids) == 2
        )
        (replacement,) = set(alive) - set(workers)
        os.kill(replacement, signal.SIGTERM)
        alive = eventually(
            lambda: children(process.pid),
            lambda pids: replacement not in pids and len(pids) == 2,
        )
        assert first not in alive and replacement not in alive
        assert len(alive) == 2
        started = time.monotonic()
    finally:
        status = _stop(process)
        time.sleep(0.5)
        try:  # nothing of it may stay behind, still serving the port
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            left = True
        except OSError:
            left = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session: clones included
    assert status == 0
    assert time.monotonic() - started < 5
    assert not left


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_as_pid_1_stops_on_a_sigterm_during_its_start(
    resolver: FaultyDns, workers: str
) -> None:
    # Regression (review): the kernel gives PID 1 (a container without an init) no
    # default action for SIGTERM, and nothing handled it before the app did: a `docker
    # stop` in the half second a start takes was lost, the service came up anyway and
    # Docker killed it 10 s later.
    port = free_port()
    process = subprocess.Popen(
        [
            "unshare", "--pid", "--fork", "--kill-child",
            sys.executable, "-m", "scorer", "serve", "--listen", f"127.0.0.1:{port}",
            f"--nameserver={resolver.nameserver}", "--workers", workers,
        ],
        cwd=CHECKOUT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # Sent once the process takes SIGTERM (scorer.launch, first thing), and long
        # before the app does (importing the command line takes ~0.5 s). Before that no
        # process of ours can: PID 1 ignores it until Python has started (only an init
        # helps there, docker run --init), so a fixed sleep made the test the box's speed.
        deadline = time.monotonic() + 10
        while not _takes_sigterm(children(process.pid)):
            assert time.monotonic() < deadline, "it never took SIGTERM"
            time.sleep(0.002)
        (pid_1,) = children(process.pid)
        os.kill(pid_1, signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Ended by that handler during the start (SystemExit(128 + SIGTERM)), not by the
    # app's graceful stop, which would mean it had got as far as listening.
    assert process.returncode == 128 + signal.SIGTERM, err
    assert b"Traceback" not in err, err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 0.5).close()


def _takes_sigterm(pids: list[int]) -> bool:
    """Whether the one process in ``pids``, running our command, has a SIGTERM handler
    (its SigCgt mask in /proc: unshare's own fork, before the exec, is no process of ours)."""
    if len(pids) != 1:
        return False
    try:
        if b"scorer" not in Path(f"/proc/{pids[0]}/cmdline").read_bytes():
            return False
    except OSError:
        return False
    return _catches(pids[0], signal.SIGTERM)


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(status.split("SigCgt:")[1].split()[0], 16)
    return bool(caught & (1 << (signum - 1)))


def test_ctrl_c_while_serve_still_imports_ends_it_without_a_traceback(
    resolver: FaultyDns,
) -> None:
    """Regression (review): a SIGINT in the half second serve takes to import the command
    line, before cli.main, met Python's default handler: a KeyboardInterrupt traceback
    of whichever import it cut, and an exit by SIGINT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", "serve", "--listen", f"127.0.0.1:{free_port()}",
         f"--nameserver={resolver.nameserver}"],
        cwd=CHECKOUT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # scorer.launch defers SIGHUP first thing, then imports the command line.
        deadline = time.monotonic() + 10
        while not _catches(process.pid, signal.SIGHUP):
            assert time.monotonic() < deadline, "it never deferred SIGHUP"
            time.sleep(0.002)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert b"Traceback" not in err, err
    assert process.returncode == INTERRUPTED_STATUS, err
    assert b"listening on" not in err  # it was still starting: no stop of a service


def test_a_worker_stops_without_waiting_for_the_default_executor(tmp_path: Path) -> None:
    """Regression (review): the worker's own runner closed its loop through
    asyncio.Runner, which waits for the default executor's threads with no time limit
    (run_app did not): a reload reading its files (asyncio.to_thread) held up a stopping
    worker, past the supervisor's grace into its SIGKILL."""
    script = textwrap.dedent(
        """
        import asyncio, os, signal, sys, time
        import scorer.app
        from scorer import workers
        from scorer.config import config_from_mapping

        config = config_from_mapping(
            {"dns": {"nameservers": ["127.0.0.1:1"], "timeout": 0.1, "request_deadline": 0.2}}
        )
        create_app = scorer.app.create_app

        def with_a_busy_thread(*args, **kwargs):
            app = create_app(*args, **kwargs)

            async def start(_app):
                loop = asyncio.get_running_loop()
                loop.run_in_executor(None, time.sleep, 30)  # a reload reading for long
                loop.call_later(0.3, os.kill, os.getpid(), signal.SIGTERM)

            app.on_startup.append(start)
            return app

        scorer.app.create_app = with_a_busy_thread
        started = time.monotonic()
        workers.run_worker(config, lambda: config, "127.0.0.1", 0)
        print(f"stopped after {time.monotonic() - started:.1f}", flush=True)
        os._exit(0)  # as a supervised worker exits (the thread is not joined)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
    )
    assert done.returncode == 0, done.stderr
    elapsed = float(done.stdout.split()[-1])
    assert elapsed < 5, (done.stdout, done.stderr)


def _serve_after(prelude: str, *argv: str) -> list[str]:
    """The command that runs ``prelude`` (Python patching the service: a fault to inject),
    then ``rdns-scorer serve ARGV`` as the installed command runs it (scorer.launch)."""
    launch = f"sys.argv = ['rdns-scorer', 'serve', *{list(argv)!r}]\n"
    launch += "from scorer.launch import main\nsys.exit(main())\n"
    return [sys.executable, "-c", "import sys\n" + textwrap.dedent(prelude) + launch]


def _post(url: str, body: bytes, token: str = "") -> Callable[[], int | str]:
    """Start POSTing ``body`` to ``url`` in a thread; the returned call waits for its
    outcome: the status, or the error's text."""
    outcome: list[int | str] = []

    def post() -> None:
        request = urllib.request.Request(
            url, body, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                outcome.append(reply.status)
        except urllib.error.HTTPError as error:
            outcome.append(error.code)
        except OSError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=post, daemon=True)
    thread.start()

    def result() -> int | str:
        thread.join(60)
        return outcome[0]

    return result


def test_a_stop_does_not_wait_for_a_reload_asking_a_silent_resolver(
    tmp_path: Path, resolver: FaultyDns
) -> None:
    """Regression (review): one process (--workers 1) stopping while a POST /v1/reload
    asked a new resolver that does not answer for the root waited for it: up to [dns]
    timeout (60 s at most), aiohttp's own limit 60 s, past systemd's TimeoutStopSec."""
    silent = FaultyDns("silent").start()
    port = free_port()
    token = "t" * 32
    config = tmp_path / "scorer.toml"
    settings = '[server]\ntoken = "{}"\n[dns]\nnameservers = ["{}"]\ntimeout = 20\n'
    config.write_text(settings.format(token, resolver.nameserver))
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", "serve", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=CHECKOUT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        config.write_text(settings.format(token, silent.nameserver))
        reload = _post(f"http://127.0.0.1:{port}/v1/reload", b"", token)
        # The new resolver was asked for the root: the reload waits for its answer.
        assert eventually(lambda: silent.queries, bool), "the reload never asked"
        started = time.monotonic()
        status = _stop(process)
        took = time.monotonic() - started
    finally:
        silent.stop()
        if process.poll() is None:
            process.kill()
    assert status == 0
    assert took < 2 * STOP_OTHER_REQUESTS_SECONDS + 2, took
    assert isinstance(reload(), str)  # cut off, unanswered: the service was going


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stop_does_not_wait_for_a_reload_still_reading(resolver: FaultyDns, workers: str) -> None:
    """Regression (review): a SIGHUP's reload reads the config in a thread, which the
    interpreter's exit joined with no time limit: one process (--workers 1) whose reload
    was reading a file on a hung network file system logged "stopped" and then hung on
    until systemd's SIGKILL. With --workers N the supervisor read it in its own loop,
    which held the stop as long (and the watchdog's pings, the replacement of dead
    workers). Here the reading takes 20 s."""
    port = free_port()
    script = textwrap.dedent(
        """
        import sys, time
        from scorer import cli

        read = cli._served_config
        readings = []

        def slow(args):
            readings.append(1)
            if len(readings) > 1:  # the reload's, not the start's
                print("reading", file=sys.stderr, flush=True)
                time.sleep(20)
            return read(args)

        cli._served_config = slow
        """
    )
    served = ("--listen", f"127.0.0.1:{port}", f"--nameserver={resolver.nameserver}")
    process = subprocess.Popen(
        _serve_after(script, *served, "--workers", workers), cwd=CHECKOUT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port)
        process.send_signal(signal.SIGHUP)
        assert process.stderr is not None
        while "reading" not in process.stderr.readline():
            pass
        started = time.monotonic()
        status = _stop(process)
        took = time.monotonic() - started
        said = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert status == 0
    assert f"not waiting for the config reload still reading (pid {process.pid})" in said
    assert took < STOP_OTHER_REQUESTS_SECONDS + 3, took


def test_a_stop_answers_the_checks_in_flight_first(tmp_path: Path) -> None:
    """While checks run (here for their whole deadline, 3 s: their resolver is silent), a
    stop waits for their answers; only what else runs is cut off after a moment."""
    dns = FaultyDns("silent")
    dns.root_soa = True  # the root answers, the client's lookups do not
    dns.start()
    port = free_port()
    config = tmp_path / "scorer.toml"
    config.write_text("[dns]\ntimeout = 2.5\nrequest_deadline = 3\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", "serve", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", f"--nameserver={dns.nameserver}", "--workers", "1"],
        cwd=CHECKOUT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        asked = dns.queries
        check = _post(f"http://127.0.0.1:{port}/v1/check", b'{"ip": "192.0.2.1"}')
        assert eventually(lambda: dns.queries, lambda n: n > asked), "the check never asked"
        status = _stop(process)
    finally:
        dns.stop()
        if process.poll() is None:
            process.kill()
    assert status == 0
    assert check() == 200  # answered (its lookups failed), not cut off after a second


def test_workers_that_find_the_port_taken_after_the_start_check_exit_75(
    resolver: FaultyDns,
) -> None:
    """Regression (review): another server bound the port between the supervisor's check
    (ensure_port_free) and the workers' binds; the workers died at every start, and the
    supervisor gave up with exit status 1, which reads as a bug, where a port found taken
    at start exits 75 (the unit's Restart= tries again)."""
    port = free_port()
    script = textwrap.dedent(
        """
        import socket, sys
        from scorer import workers

        check = workers.ensure_port_free
        taken = []

        def then_taken(host, port):
            check(host, port)  # free: then another server binds it
            server = socket.socket()
            server.bind((host, port))
            server.listen()
            taken.append(server)

        workers.ensure_port_free = then_taken
        """
    )
    served = ("--listen", f"127.0.0.1:{port}", f"--nameserver={resolver.nameserver}")
    command = _serve_after(script, *served, "--workers", "2")
    done = subprocess.run(command, cwd=CHECKOUT, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_LISTEN_LATER, done.stderr
    assert f"worker: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert f"workers cannot listen on 127.0.0.1:{port} (above)" in done.stderr
    assert "keep dying" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("last_code", "status", "said"),
    [
        (EXIT_LISTEN_LATER, EXIT_LISTEN_LATER, "workers cannot listen on 127.0.0.1:1 (above): "
         "it was free when the service started, and taken or gone since; giving up"),
        # Refused (EACCES, EAFNOSUPPORT): nothing took it, so no "taken or gone".
        (2, 2, "workers cannot listen on 127.0.0.1:1 (above); giving up"),
        (1, 1, "workers keep dying at start; giving up"),
    ],
)  # fmt: skip
def test_giving_up_on_workers_says_why_and_exits_so(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    last_code: int,
    status: int,
    said: str,
) -> None:
    # Regression (review): a worker refused the address (exit 2) was said to have found
    # it "taken or gone since".
    config = config_from_mapping({})
    supervisor = Supervisor(config, lambda: config, "127.0.0.1", 1, 2)
    monkeypatch.setattr(supervisor, "_begin_stop", lambda: None)
    with caplog.at_level(logging.ERROR, logger="rdns_scorer"):
        supervisor._give_up(last_code)
    assert [record.getMessage() for record in caplog.records] == [said]
    assert supervisor._exit_status == status


@pytest.mark.parametrize("trigger", ["SIGHUP", "POST /v1/reload"])
def test_every_worker_takes_the_config_one_process_read_for_a_reload(
    tmp_path: Path, resolver: FaultyDns, trigger: str
) -> None:
    """Regression (review): on a reload the supervisor and then each worker read the
    config file on their own, so an edit landing between those reads (an editor saving,
    a script appending to an allowlist) left the workers serving different configs,
    each reporting success. One process reads it now (the supervisor on SIGHUP, the
    worker that answers POST /v1/reload) and hands it to the others. Here the file is
    edited right after that first reading."""
    port = free_port()
    token = "t" * 32
    config = tmp_path / "scorer.toml"
    settings = '[server]\ntoken = "{}"\n[weights]\nRL_PTR_MISSING = {}\n'
    config.write_text(settings.format(token, 5))
    edited = tmp_path / "edited"
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from scorer import cli

        read = cli._served_config

        def then_edited(args):
            served = read(args)
            path = Path(args.config)
            if path.read_text().endswith("= 2\\n"):  # the reload's first reading
                try:
                    os.close(os.open({str(edited)!r}, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    path.write_text(path.read_text().replace("= 2\\n", "= 3\\n"))
            return served

        cli._served_config = then_edited
        """
    )
    served = ("--listen", f"127.0.0.1:{port}", f"--nameserver={resolver.nameserver}")
    command = _serve_after(script, "--config", str(config), *served, "--workers", "2")
    log = tmp_path / "log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=CHECKOUT, stdout=output, stderr=output)
    try:
        eventually(log.read_text, lambda text: text.count("listening on") == 2)
        config.write_text(settings.format(token, 2))
        if trigger == "SIGHUP":
            process.send_signal(signal.SIGHUP)
        else:
            assert _post(f"http://127.0.0.1:{port}/v1/reload", b"", token)() == 200
        text = eventually(log.read_text, lambda text: text.count("config reloaded on") == 2)
    finally:
        status = _stop(process)
    assert edited.exists()  # the file did change between the readings
    reloads = [line for line in text.splitlines() if "config reloaded on" in line]
    assert len(reloads) == 2, text
    assert all("RL_PTR_MISSING 5 -> 2" in line for line in reloads), text
    assert status == 0


def test_a_config_that_cannot_be_handed_on_is_rejected_everywhere(tmp_path: Path) -> None:
    """A handover that cannot be written (a full /dev/shm) leaves no older one behind for
    the workers to take as new: they reject the reload, as its reader does."""
    handover = Handover(tmp_path)
    config = config_from_mapping({"weights": {"RL_PTR_MISSING": 2.0}})
    handover.publish(config)
    assert handover.take() == config
    handover.publish(ConfigError("scorer.toml:2: [weights] RL_BOGUS: no such symbol"))
    with pytest.raises(ConfigError, match="RL_BOGUS: no such symbol"):
        handover.take()
    handover.publish(config)
    (tmp_path / f".{FILE_NAME}.{os.getpid()}").mkdir()  # where it writes: not a file
    with pytest.raises(ConfigError, match="cannot hand the config to the workers"):
        handover.publish(config)
    with pytest.raises(ConfigError, match="not handed on"):
        handover.take()


TOKEN = "t" * 32


@contextlib.contextmanager
def _two_workers(
    tmp_path: Path, resolver: FaultyDns
) -> Iterator[tuple[subprocess.Popen[bytes], Callable[[float], None], Path, int]]:
    """``serve --workers 2`` with a config whose RL_PTR_MISSING weight (5 at start) the
    yielded call rewrites; also its log file and port. Stopped (exit status 0) after."""
    port = free_port()
    config = tmp_path / "scorer.toml"

    def write(weight: float) -> None:
        config.write_text(f'[server]\ntoken = "{TOKEN}"\n[weights]\nRL_PTR_MISSING = {weight}\n')

    write(5)
    log = tmp_path / "log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "scorer", "serve", "--config", str(config),
             "--listen", f"127.0.0.1:{port}", f"--nameserver={resolver.nameserver}",
             "--workers", "2"],
            cwd=CHECKOUT, stdout=output, stderr=output,
        )  # fmt: skip
    try:
        eventually(log.read_text, lambda text: text.count("listening on") == 2)
        yield process, write, log, port
    finally:
        status = _stop(process)
    assert status == 0, log.read_text()


def _weights_served(log: str) -> dict[str, str]:
    """Each worker's RL_PTR_MISSING weight by its pid, as its log lines tell."""
    served = {pid: "5" for pid in re.findall(r"listening on \S+ \(pid (\d+)\)", log)}
    for pid, weight in re.findall(
        r"reloaded on .* \(pid (\d+)\): .*RL_PTR_MISSING \S+ -> (\S+)", log
    ):
        served[pid] = weight.rstrip(";")
    return served


def test_reloads_through_two_workers_at_once_leave_every_worker_on_one_config(
    tmp_path: Path, resolver: FaultyDns
) -> None:
    """Regression (review): two POST /v1/reload answered by two workers while the supervisor
    was busy: their SIGUSR1s merged into one (a standard signal is pending only once),
    which names the first sender. The supervisor took the handover, the second worker's
    reading, published last, and reloaded every worker but the first, which kept its own
    older reading for good. Here the supervisor is stopped meanwhile, the file edited
    between the two reloads."""
    with _two_workers(tmp_path, resolver) as (process, write, log, port):
        os.kill(process.pid, signal.SIGSTOP)
        try:
            answered: list[str] = []
            weight = 10
            while len(set(answered)) < 2:  # the kernel picks the worker of a connection
                weight += 1
                assert weight < 60, "one worker answered every reload"
                write(weight)
                assert _post(f"http://127.0.0.1:{port}/v1/reload", b"", TOKEN)() == 200
                answered = re.findall(r"on POST /v1/reload \(pid (\d+)\)", log.read_text())
        finally:
            os.kill(process.pid, signal.SIGCONT)
        served = eventually(
            lambda: _weights_served(log.read_text()),
            lambda served: set(served.values()) == {str(weight)},
            timeout=5,
        )
    assert len(served) == 2 and set(served.values()) == {str(weight)}, log.read_text()


def _handover_directory(supervisor: int) -> Path:
    (directory,) = SHARED_MEMORY.glob(f"{PREFIX}{supervisor}-*")
    return directory


def test_a_reload_the_supervisor_cannot_hand_on_says_why(
    tmp_path: Path, resolver: FaultyDns
) -> None:
    """Regression (review): a SIGHUP's config the supervisor could not write for the
    workers (a full /dev/shm) was rejected everywhere, but no line said why: the
    supervisor logged nothing, the workers "No such file or directory"."""
    with _two_workers(tmp_path, resolver) as (process, write, log, _port):
        # Where the supervisor writes it first: not a file (as ENOSPC, a write that fails).
        blocked = _handover_directory(process.pid) / f".{FILE_NAME}.{process.pid}"
        blocked.mkdir()
        write(2)
        process.send_signal(signal.SIGHUP)
        text = eventually(log.read_text, lambda text: text.count("reload on SIGHUP failed") == 3)
        blocked.rmdir()  # else the directory stays in /dev/shm after the stop
    (supervisor,) = [line for line in text.splitlines() if f"[{process.pid}] ERROR" in line]
    assert "cannot hand the config to the workers" in supervisor, text
    assert "Is a directory" in supervisor, text
    assert text.count("was not handed on (the log of the process that read it says why)") == 2


def test_a_reload_after_the_private_directory_was_removed_still_applies(
    tmp_path: Path, resolver: FaultyDns
) -> None:
    """Regression (review): once the private directory was gone (logind's RemoveIPC at
    the logout of the user running the service, a clean-up of /dev/shm by hand), every
    reload was rejected until a restart: the config could not be handed on. It is made
    again, private as before."""
    with _two_workers(tmp_path, resolver) as (process, write, log, _port):
        directory = _handover_directory(process.pid)
        shutil.rmtree(directory)
        write(2)
        process.send_signal(signal.SIGHUP)
        eventually(log.read_text, lambda text: text.count("config reloaded on SIGHUP") == 2)
        mode = stat.S_IMODE(directory.stat().st_mode)
    assert set(_weights_served(log.read_text()).values()) == {"2"}
    assert mode == 0o700


@pytest.mark.parametrize("planted", ["open to others", "a symlink"])
def test_no_handover_is_read_or_written_where_others_could_write(
    tmp_path: Path, planted: str
) -> None:
    """A handover is a pickle, code to whoever wrote it: in a directory that is not this
    user's alone (one of the same name made by someone else after the service's was
    removed: /dev/shm is everyone's), none is taken, none written."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    directory = tmp_path / "private"
    if planted == "a symlink":
        directory.symlink_to(elsewhere)
    else:
        directory.mkdir()
        directory.chmod(0o733)  # others may add files, as in a sticky /dev/shm
    target = directory.resolve()
    (target / FILE_NAME).write_bytes(pickle.dumps(config_from_mapping({})))
    handover = Handover(directory)
    with pytest.raises(ConfigError, match="not this user's alone"):
        handover.take()
    with pytest.raises(ConfigError, match="not this user's alone"):
        handover.publish(config_from_mapping({}))
    assert sorted(path.name for path in target.iterdir()) == [FILE_NAME]


def test_a_rejected_config_that_cannot_be_handed_on_says_both(tmp_path: Path) -> None:
    """Its reader is the only one that can tell why the reload failed: the others find
    nothing handed on."""
    handover = Handover(tmp_path)
    (tmp_path / f".{FILE_NAME}.{os.getpid()}").mkdir()  # where it writes: not a file

    def rejected() -> Config:
        raise ConfigError("scorer.toml:2: [weights] RL_BOGUS: no such symbol")

    with pytest.raises(HandoverError, match=r"RL_BOGUS: no such symbol \(cannot hand the config"):
        read_and_hand_over(rejected, handover)
    with pytest.raises(ConfigError, match="was not handed on"):
        handover.take()


def test_a_sighup_during_a_slow_reading_reads_the_config_again_after_it() -> None:
    """The file may have changed after that reading began: the second SIGHUP's reload
    must not be lost, nor run beside the first (an older reading applied last)."""
    first_may_end = threading.Event()
    readings: list[Config] = []

    def loader() -> Config:
        if not readings:
            first_may_end.wait(10)
        readings.append(config_from_mapping({"weights": {"RL_PTR_MISSING": len(readings) + 1}}))
        return readings[-1]

    supervisor = Supervisor(config_from_mapping({}), loader, "127.0.0.1", 1, 2)
    told: list[int] = []
    supervisor._signal_all = lambda signum, skip=0: told.append(signum)  # type: ignore[method-assign]
    supervisor._read_for_reload()  # still reading after READING_WAIT_SECONDS
    supervisor._read_for_reload()
    assert (readings, told) == ([], [])
    first_may_end.set()

    def finished() -> list[int]:
        supervisor._finish_reading(0.1)
        return told

    eventually(finished, lambda told: len(told) == 2)
    assert len(readings) == 2 and supervisor._config is readings[1]


# The SystemExit leaves the thread as it would in the service (threading.excepthook).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_reading_ended_by_a_base_exception_is_rejected_and_later_sighups_read_again() -> None:
    """A library's SystemExit in the reading thread: the reload is rejected, not left
    "still reading" for ever, which would make every later SIGHUP wait for it."""
    readings: list[Config] = []

    def loader() -> Config:
        if not readings:
            readings.append(config_from_mapping({}))
            raise SystemExit(3)
        readings.append(config_from_mapping({"weights": {"RL_PTR_MISSING": 2}}))
        return readings[-1]

    supervisor = Supervisor(config_from_mapping({}), loader, "127.0.0.1", 1, 2)
    told: list[int] = []
    supervisor._signal_all = lambda signum, skip=0: told.append(signum)  # type: ignore[method-assign]
    supervisor._read_for_reload()
    eventually(lambda: supervisor._reading, lambda reading: reading is None)
    assert supervisor._reload_failed and supervisor._config is not readings[0]
    supervisor._read_for_reload()
    eventually(lambda: supervisor._reading, lambda reading: reading is None)
    assert len(readings) == 2 and supervisor._config is readings[1]
    assert not supervisor._reload_failed
