"""`make bench`: throughput and latency of the service, hermetic, one JSON object on stdout.

    python bench/run.py [--seconds S] [--repeat R] [--quick]

Starts unbound with the bench world (bench/zones.py) and, for each scenario, a
fresh server process. The server runs on core 1; wrk (bench/post.lua) and
unbound share core 0, so the load generator is off the server's core.

Scenarios: the bare aiohttp ceiling (bench/ceiling.py), warm, warm with request
logging, warm and the ceiling at half the maximum load (latency), cold and, round
for round, cold through issue 7's straightforward dnspython build
(bench/straightforward.py), cold without DNS misses (the same new senders replayed,
the reply cache off), mixed, 1 vs 2 workers. Then the transport micro-benchmark
(bench/transport.py), instructions counted by callgrind (the steady figures on a
noisy box): per check in process (bench/instructions.py) and per warm HTTP request
of the ceiling (as is, and taking its body from aiohttp's buffer as the service
does) and of the service, and in-process per-step costs and cache memory
(bench/hotpath.py). ``--quick`` skips the transport comparison and callgrind (most
of the time taken).
Ceiling and warm run alternately ``--repeat`` times and the best of each is kept:
this box is shared, and a slower round measures the neighbours, not the code. Each
warm round is also set against the ceiling round just before it (by requests/s and by
CPU per request), with the medians of those ratios; so is each cold round against
the straightforward round before it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import hotpath, instructions, zones  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402

LUA = ROOT / "bench" / "post.lua"
SCORER = ("-m", "scorer")  # how start_service runs the service: this tree's
STRAIGHTFORWARD = (str(ROOT / "bench" / "straightforward.py"),)  # the reference build
GENERATOR_CPU = "0"
SERVER_CPU = "1"
HOT = 64
POOL = 2_000
REPLAY = 20_000
TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and kernel CPU seconds of ``pids`` so far."""
    user = kernel = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, kernel = user + int(fields[11]), kernel + int(fields[12])  # utime, stime
    return user / TICK, kernel / TICK


def _memory_mib(pids: list[int], field: str = "VmRSS") -> float:
    """``field`` of /proc/PID/status (VmRSS now, VmHWM the peak), summed over ``pids``."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


# What the service did for the requests of a run, from its own /metrics: proof that a
# scenario is what it says (cold misses the cache, nothing is a shortcut via a DNS failure).
_COUNTED = re.compile(
    r'^rdns_scorer_(dns_queries_total\{rdtype="\w+",result="(\w+)"\}'
    r"|dns_cache_hits_total|dns_cache_misses_total"
    r'|check_outcomes_total\{family="\w+",outcome="tempfail"\}) (\S+)$',
    re.MULTILINE,
)


def _service_counts(server: Server) -> dict[str, float]:
    """The service's DNS and tempfail counters (summed over workers), {} for the ceiling."""
    if not server.is_service:
        return {}
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    counts: dict[str, float] = {}
    for name, result, value in _COUNTED.findall(text):
        if name.startswith("dns_queries_total"):
            key = "dns_failures" if result in ("timeout", "servfail", "other") else "dns_answers"
        elif name.startswith("check_outcomes_total"):
            key = "tempfail_families"
        else:
            key = name.removesuffix("_total")
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    workers: int
    is_service: bool = True  # False: the bare ceiling (no /metrics)

    @property
    def pids(self) -> list[int]:
        if self.workers > 1:
            return _children(self.process.pid)  # the parent only supervises
        return [self.process.pid]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start(
    command: list[str],
    port: int,
    workers: int,
    cpus: str,
    log: Path,
    launcher: Sequence[str] = (),
) -> Server:
    with open(log, "ab") as out:
        process = subprocess.Popen(  # cwd: `-m scorer` is this tree's, whatever the venv
            ["taskset", "-c", cpus, *launcher, *command], stdout=out, stderr=out, cwd=ROOT
        )
    try:
        wait_for_port(port, timeout=180 if launcher else 20)  # valgrind starts slowly
    except TimeoutError:
        process.kill()
        raise RuntimeError(log.read_text()[-2000:]) from None
    if workers > 1:
        deadline = time.monotonic() + 10
        while len(_children(process.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # every worker bound and serving
    return Server(process, port, workers)


def start_service(
    nameserver: str,
    workdir: Path,
    cpus: str = SERVER_CPU,
    workers: int = 1,
    launcher: Sequence[str] = (),
    dns: dict[str, Any] | None = None,
    entry: Sequence[str] = SCORER,
    **server: Any,
) -> Server:
    port = free_port()
    settings = {"log_requests": False, "max_in_flight": 1024, **server}
    toml = "[server]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    toml += "[dns]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in (dns or {}).items())
    config = workdir / f"scorer-{port}.toml"
    config.write_text(toml)
    command = [
        sys.executable, *entry, "serve", "--config", str(config),
        "--listen", f"127.0.0.1:{port}", "--nameserver", nameserver, "--workers", str(workers),
    ]  # fmt: skip
    return _start(command, port, workers, cpus, workdir / f"service-{port}.log", launcher)


def start_ceiling(workdir: Path, launcher: Sequence[str] = (), body: str = "read") -> Server:
    """The bare ceiling; ``body="buffered"`` takes a body that came with the headers
    from aiohttp's buffer, as the service does (bench/ceiling.py)."""
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "ceiling.py"), str(port), "uvloop", body]
    server = _start(command, port, 1, SERVER_CPU, workdir / f"ceiling-{port}.log", launcher)
    server.is_service = False
    return server


CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")


def instructions_per_request(start: Callable[[Sequence[str]], Server], log_dir: Path) -> int:
    """User-space instructions per warm HTTP request of a server run under callgrind.

    Two runs of different lengths; the difference cancels start-up and the first,
    uncached pass over the senders (the same in both runs).
    """
    points = []
    for seconds in (6, 18):
        server = start(CALLGRIND)
        try:
            warming = wrk(server, "warm", 15, connections=4)
            measured = wrk(server, "warm", seconds, connections=4)
        finally:
            server.process.send_signal(signal.SIGINT)
            server.process.wait(timeout=120)
        log = next(log_dir.glob(f"*-{server.port}.log")).read_text()
        total = int(re.findall(r"Collected : (\d+)", log)[-1])
        points.append((warming["requests"] + measured["requests"], total))
    (short_requests, short_total), (long_requests, long_total) = points
    return round((long_total - short_total) / (long_requests - short_requests))


def wrk(
    server: Server,
    mode: str,
    seconds: float,
    connections: int = 32,
    delay_ms: int = 0,
    hot: int = HOT,
    threads: int = 1,
    cpus: str = GENERATOR_CPU,
    salt: str | None = None,
) -> dict[str, Any]:
    """One wrk run; the result with the server's CPU use and RSS over it, wrk's own CPU
    use, and what the service's counters say about the run's DNS."""
    pids = server.pids
    counted_before = _service_counts(server)
    generator_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    (user_before, kernel_before), started = _cpu_seconds(pids), time.monotonic()
    command = [
        "taskset", "-c", cpus, "wrk", f"-t{threads}", f"-c{connections}",
        f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(LUA),
        f"http://127.0.0.1:{server.port}/v1/check",
        "--", mode, str(hot), str(delay_ms), salt or secrets.token_hex(3), str(threads),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    user, kernel = _cpu_seconds(pids)
    user, kernel = user - user_before, kernel - kernel_before
    cpu = user + kernel
    generator = resource.getrusage(resource.RUSAGE_CHILDREN)
    generator_cpu = (generator.ru_utime + generator.ru_stime) - (
        generator_before.ru_utime + generator_before.ru_stime
    )
    raw = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    duration = raw["duration_us"] / 1e6
    requests = raw["requests"]
    counted = _service_counts(server)
    per_request = {
        f"{key}_per_request": round((value - counted_before.get(key, 0.0)) / max(requests, 1), 3)
        for key, value in sorted(counted.items())
    }
    return {
        "requests_per_s": round(requests / duration),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": sum(raw["errors"].values()),
        "requests": requests,
        "server_cpu_percent": round(cpu / elapsed * 100, 1),
        "server_cpu_us_per_request": round(cpu / max(requests, 1) * 1e6, 1),
        # Syscalls (sockets, epoll) are a large share on this VM; see docs/performance.md.
        "server_cpu_kernel_percent": round(kernel / cpu * 100, 1) if cpu else 0.0,
        "server_rss_mib": _memory_mib(pids),
        "server_peak_rss_mib": _memory_mib(pids, "VmHWM"),
        # wrk shares its core(s) with unbound (and, unpinned, with the workers): what it
        # takes is what the server could not have.
        "generator_cpu_percent": round(generator_cpu / elapsed * 100, 1),
        "connections": connections,
        **per_request,
    }


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(max(runs, key=lambda r: r["requests_per_s"]))
    best["runs_requests_per_s"] = [r["requests_per_s"] for r in runs]
    return best


def _ratios_by_round(
    reference_runs: list[dict[str, Any]], runs: list[dict[str, Any]], reference: str = "ceiling"
) -> dict[str, Any]:
    """Each round against the ``reference`` round run just before it, and their medians.

    The best of each can come from different moments, so a neighbour that was busy
    during the reference's best chance and quiet during ours (or the reverse) sets the
    ratio; a round and the one before it mostly share their neighbours. By requests/s,
    and by server CPU per request (which moves less with them).
    """
    pairs = list(zip(reference_runs, runs, strict=True))
    by_rate = [r["requests_per_s"] / ref["requests_per_s"] for ref, r in pairs]
    by_cpu = [ref["server_cpu_us_per_request"] / r["server_cpu_us_per_request"] for ref, r in pairs]
    return {
        f"ratio_to_{reference}_by_round": [round(x, 3) for x in by_rate],
        f"median_ratio_to_{reference}_by_round": round(statistics.median(by_rate), 3),
        f"cpu_ratio_to_{reference}_by_round": [round(x, 3) for x in by_cpu],
        f"median_cpu_ratio_to_{reference}_by_round": round(statistics.median(by_cpu), 3),
    }


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    seconds, repeat = args.seconds, args.repeat
    result: dict[str, Any] = {"machine": machine(), "seconds_per_run": seconds}
    workdir = Path(tempfile.mkdtemp(prefix="rdns-bench-"))
    unbound = zones.start()
    assert unbound._process is not None
    os.sched_setaffinity(unbound._process.pid, {int(GENERATOR_CPU)})
    ns = unbound.nameserver
    try:
        # 1. ceiling vs warm, alternately
        ceiling_runs, warm_runs = [], []
        for _ in range(repeat):
            server = start_ceiling(workdir)
            try:
                wrk(server, "warm", 1)
                ceiling_runs.append(wrk(server, "warm", seconds))
            finally:
                server.stop()
            server = start_service(ns, workdir)
            try:
                wrk(server, "warm", 1)
                warm_runs.append(wrk(server, "warm", seconds))
            finally:
                server.stop()
        ceiling, warm = _best(ceiling_runs), _best(warm_runs)
        warm["ratio_to_ceiling"] = round(warm["requests_per_s"] / ceiling["requests_per_s"], 3)
        warm.update(_ratios_by_round(ceiling_runs, warm_runs))
        result["ceiling"], result["warm"] = ceiling, warm

        # 2. the cost of request logging (one line per check, to a file)
        server = start_service(ns, workdir, log_requests=True)
        try:
            wrk(server, "warm", 1)
            logged = _best([wrk(server, "warm", seconds) for _ in range(repeat)])
        finally:
            server.stop()
        logged["cpu_us_per_request_added_by_logging"] = round(
            logged["server_cpu_us_per_request"] - warm["server_cpu_us_per_request"], 1
        )
        result["warm_log_requests"] = logged

        # 3. latency at half the maximum warm load (paced: each connection pauses), and
        #    the ceiling paced the same way: the tail this box gives a bare endpoint
        target = warm["requests_per_s"] / 2
        delay_ms = 10
        for name, start in (
            ("warm_half_load", lambda: start_service(ns, workdir)),
            ("ceiling_half_load", lambda: start_ceiling(workdir)),
        ):
            server = start()
            try:
                # Connections x pause sets the pace, but each request takes its own time
                # too: a first run at that count (which also warms) calibrates it.
                connections = max(1, round(target * delay_ms / 1000))
                probe = wrk(server, "warm", 2, connections=connections, delay_ms=delay_ms)
                connections = max(1, round(connections * target / max(probe["requests_per_s"], 1)))
                half = wrk(server, "warm", seconds, connections=connections, delay_ms=delay_ms)
            finally:
                server.stop()
            half["target_requests_per_s"] = round(target)
            half["fraction_of_best_warm"] = round(
                half["requests_per_s"] / warm["requests_per_s"], 3
            )
            result[name] = half

        # 4. cold: every request a new client and a new sender domain; and, alternately,
        #    the same service with issue 7's "straightforward dnspython resolver" in
        #    place of our transport (bench/straightforward.py): the 5,000 cold
        #    checks/s are 5x that build's ~1,000 on its box, a ratio any box can measure.
        cold_runs: list[dict[str, Any]] = []
        straightforward_runs: list[dict[str, Any]] = []
        for _ in range(repeat):
            for runs, entry in ((straightforward_runs, STRAIGHTFORWARD), (cold_runs, SCORER)):
                server = start_service(ns, workdir, entry=entry)
                try:
                    wrk(server, "warm", 1)
                    runs.append(wrk(server, "cold", seconds, connections=64))
                finally:
                    server.stop()
        result["cold"] = _best(cold_runs)
        result["cold"]["ratio_to_straightforward"] = round(
            result["cold"]["requests_per_s"] / _best(straightforward_runs)["requests_per_s"], 3
        )
        result["cold"].update(_ratios_by_round(straightforward_runs, cold_runs, "straightforward"))
        result["cold_straightforward"] = _best(straightforward_runs)

        # 4b. cold without DNS misses: what no DNS transport can take away. The same
        #     REPLAY new senders twice, the reply cache off: the first pass caches their
        #     DNS answers, the second measures. REPLAY is above the parsing memos' sizes
        #     (at most 16,384, least recently used first), so a cycle over it misses them all.
        server = start_service(ns, workdir, dns={"reply_cache_max_entries": 0})
        salt = secrets.token_hex(3)
        try:
            filling = math.ceil(REPLAY * 1.3 / max(result["cold"]["requests_per_s"], 1))
            wrk(server, "replay", filling, connections=64, hot=REPLAY, salt=salt)
            floor = wrk(server, "replay", seconds, connections=64, hot=REPLAY, salt=salt)
        finally:
            server.stop()
        floor["ratio_to_ceiling"] = round(floor["requests_per_s"] / ceiling["requests_per_s"], 3)
        result["cold_dns_cached"] = floor

        # 5. mixed: 80% repeat senders from a warmed pool of 2,000
        server = start_service(ns, workdir)
        try:
            # Long enough to walk the pool once at the cold rate, whatever the box.
            pooling = max(3, math.ceil(POOL * 1.3 / max(result["cold"]["requests_per_s"], 1)))
            wrk(server, "pool", pooling, connections=16, hot=POOL)
            result["mixed"] = wrk(server, "mixed", seconds, connections=64, hot=POOL)
        finally:
            server.stop()

        # 6. 1 vs 2 workers, neither pinned (wrk shares the two cores with them)
        scaling: dict[str, Any] = {}
        for workers in (1, 2):
            server = start_service(ns, workdir, cpus="0,1", workers=workers)
            try:
                wrk(server, "warm", 1, cpus="0,1", connections=64)
                runs = [
                    wrk(server, "warm", seconds, cpus="0,1", connections=64) for _ in range(repeat)
                ]
            finally:
                server.stop()
            scaling[f"workers_{workers}"] = _best(runs)
        one, two = scaling["workers_1"], scaling["workers_2"]
        scaling["ratio"] = round(two["requests_per_s"] / one["requests_per_s"], 3)
        # wrk takes a share of the same two cores (generator_cpu_percent): the rate two
        # workers would reach with both cores to themselves, from their CPU per request
        # (one worker cannot use more than one core whatever wrk leaves).
        scaling["ratio_if_servers_had_both_cores"] = round(
            2 * one["server_cpu_us_per_request"] / two["server_cpu_us_per_request"], 3
        )
        result["workers"] = scaling

        # 7. transport micro-benchmark and in-process costs
        if not args.quick:
            transport = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "transport.py"), "--nameserver", ns],
                capture_output=True,
                text=True,
                check=True,
            )
            result["transport_queries"] = json.loads(transport.stdout)
            result["instructions"] = instructions.measure(ns)
            ceiling_count = instructions_per_request(
                lambda launcher: start_ceiling(workdir, launcher), workdir
            )
            # The same bare endpoint taking its body as the service does: the service's
            # buffered read is a saving any aiohttp handler could make, so the ratio to
            # the plain ceiling alone would flatter it (docs/performance.md).
            buffered_count = instructions_per_request(
                lambda launcher: start_ceiling(workdir, launcher, body="buffered"), workdir
            )
            service_count = instructions_per_request(
                lambda launcher: start_service(ns, workdir, launcher=launcher), workdir
            )
            result["instructions"]["http_warm_per_request"] = {
                "ceiling": ceiling_count,
                "ceiling_buffered": buffered_count,
                "service": service_count,
                "ratio_to_ceiling": round(ceiling_count / service_count, 3),
                "ratio_to_buffered_ceiling": round(buffered_count / service_count, 3),
            }
        os.sched_setaffinity(0, {int(SERVER_CPU)})
        result["in_process"] = hotpath.measure(ns)
    finally:
        unbound.stop()
    result["targets"] = {
        "warm_ge_0.8_ceiling": result["warm"]["ratio_to_ceiling"] >= 0.8,
        "cold_ge_5000_per_s": result["cold"]["requests_per_s"] >= 5000,
        # The same target set against its reference build, measured in this run.
        "cold_ge_5x_straightforward": result["cold"]["median_ratio_to_straightforward_by_round"]
        >= 5,
        "p99_le_5ms_at_half_load": result["warm_half_load"]["p99_ms"] <= 5.0,
        "dns_cache_le_500_bytes_per_answer": result["in_process"]["memory"][
            "dns_cache_bytes_per_positive_answer"
        ]
        <= 500,
        "two_workers_ge_1.7x": result["workers"]["ratio"] >= 1.7,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (best kept)")
    parser.add_argument(
        "--quick", action="store_true", help="skip the transport comparison and callgrind counts"
    )
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench/run.py needs 2 cores: one for the server, one for wrk and unbound")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
