"""A real rspamd 3.4 on loopback, from a minimal self-contained config that loads our plugin.

See /work/shared/reference/rspamd-3.4.md: all C modules off, only ``lua/rdns_scorer.lua``
loaded from a private plugins dir, DNS pointed at the tests' unbound, a tiny TLD list
(instead of compiling the real one for ~10 s) and a shared hyperscan cache dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port
from tests.support.processes import stop_process, wait_for_http, wait_listening

# A resolv.conf naming a loopback address where no resolver listens: a name missing
# from /etc/hosts fails at once instead of asking the host's resolver (hermetic tests).
DEAD_RESOLV_CONF = "nameserver 127.0.0.9\noptions timeout:1 attempts:1\n"


def with_private_files(command: list[str], files: dict[str, Path]) -> list[str]:
    """``command`` in a private mount namespace (needs root) where each path of ``files``
    (/etc/hosts, /etc/resolv.conf) shows the file it maps to; the host's stay untouched."""
    binds = [f'mount --bind "${n}" {target}' for n, target in enumerate(files, 1)]
    script = " && ".join([*binds, f"shift {len(files)}", 'exec "$@"'])
    sources = [str(source) for source in files.values()]
    return ["unshare", "--mount", "sh", "-c", script, "sh", *sources, *command]


REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "lua" / "rdns_scorer.lua"
# rspamd's own plugins, for tests that load one next to ours (extra_plugins).
STOCK_PLUGINS = Path("/usr/share/rspamd/plugins")
RSPAMD_USER = "_rspamd"


def rspamd_available() -> bool:
    return shutil.which("rspamd") is not None


def rspamd_version() -> tuple[int, int]:
    """The installed rspamd's major and minor version: (3, 4) on Debian 12, (3, 12) on
    Debian 13."""
    out = subprocess.run(["rspamd", "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"version (\d+)\.(\d+)", out)
    assert found is not None, out
    return int(found.group(1)), int(found.group(2))


# How `rspamadm configdump` writes a number with a whole value read as a float (a time,
# a weight, a max_score), by rspamd version: 3.4's libucl drops the fraction, 3.12's
# keeps one digit of it. Others keep "%f" (0.600000) in both.
_WHOLE_FLOAT_SUFFIX = {(3, 4): "", (3, 12): ".0"}


def dumped_whole(value: int) -> str:
    """``value``, a whole number rspamd holds as a float, as configdump writes it."""
    version = rspamd_version()
    assert version in _WHOLE_FLOAT_SUFFIX, f"rspamd {version}: add how configdump writes 1.0"
    return f"{value}{_WHOLE_FLOAT_SUFFIX[version]}"


@dataclass
class ScanResult:
    """The parts of rspamd's /checkv2 reply the tests look at."""

    raw: dict[str, Any]
    elapsed: float

    @property
    def symbols(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw.get("symbols", {}))

    def ours(self) -> dict[str, dict[str, Any]]:
        """Only our symbols (RL_*)."""
        return {k: v for k, v in self.symbols.items() if k.startswith("RL_")}

    def score(self, name: str) -> float:
        return float(self.symbols[name]["score"])

    def options(self, name: str) -> list[str]:
        return list(self.symbols[name].get("options", []))

    @property
    def total(self) -> float:
        return float(self.raw["score"])


class Rspamd:
    """``rspamd -f`` with one normal worker; ``module_conf`` is the body of ``rdns_scorer {}``.

    ``extra_conf`` is appended at top level (groups, symbol weights, ...).
    ``cache_dir`` is shared between instances so hyperscan compiles once per session.
    ``hosts`` replaces /etc/hosts for this rspamd alone (a private mount namespace;
    needs root): how it resolves the names in ``servers``, without touching the host.
    Its /etc/resolv.conf then names a loopback address where no resolver listens, so a
    name missing from ``hosts`` fails at once instead of asking the host's resolver.
    ``extra_plugins``: more Lua plugins loaded next to ours (each needs its section in
    ``extra_conf``). ``milter``: also a proxy worker in milter mode on ``milter_port``,
    scanning itself, as an MTA's milter (Postfix ``smtpd_milters``) talks to it.
    """

    def __init__(
        self,
        nameserver: str,
        module_conf: str,
        cache_dir: Path,
        extra_conf: str = "",
        plugin: Path = PLUGIN,
        hosts: str | None = None,
        options_conf: str = "",
        task_timeout: str | None = "8s",
        extra_plugins: tuple[Path, ...] = (),
        milter: bool = False,
    ) -> None:
        self.nameserver = nameserver
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rdns-rspamd-"))
        self.cache_dir = cache_dir
        self.module_conf = module_conf
        self.extra_conf = extra_conf
        self.options_conf = options_conf  # more lines for the options section
        self.task_timeout = task_timeout  # the normal worker's; None: not set there
        self.plugin = plugin
        self.hosts = hosts
        self.extra_plugins = extra_plugins
        self.milter_port = free_port() if milter else None
        self.log_path = self.dir / "rspamd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        for sub in ("db", "run", "plugins"):
            (self.dir / sub).mkdir(exist_ok=True)
        shutil.copy(self.plugin, self.dir / "plugins" / "rdns_scorer.lua")
        for plugin in self.extra_plugins:
            shutil.copy(plugin, self.dir / "plugins" / plugin.name)
        milter_worker = (
            ""
            if self.milter_port is None
            else f"""
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{self.milter_port}";
  milter = yes;
  count = 1;
  upstream "local" {{
    default = yes;
    self_scan = yes;
  }}
}}"""
        )
        (self.dir / "tld.dat").write_text("com\nnet\norg\nde\n")
        host, port = self.nameserver.rsplit(":", 1)
        d = self.dir
        conf = f"""
options {{
  pidfile = "{d}/run/rspamd.pid";
  filters = "";
  explicit_modules = [];
  url_tld = "{d}/tld.dat";
  cache_file = "{d}/db/symbols.cache";
  hs_cache_dir = "{self.cache_dir}";
  stats_file = "{d}/db/stats.ucl";
  dynamic_conf = "{d}/db/dynamic.conf";
  history_file = "{d}/db/history.zst";
  control_socket = "{d}/run/control.sock mode=0600";
  local_addrs = ["127.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16", "::1"];
  {self.options_conf}
  dns {{
    nameserver = ["{host}:{port}"];
    timeout = 1s;
    retransmits = 2;
  }}
}}
logging {{
  type = "console";
  level = "info";
  debug_modules = ["rdns_scorer"];
}}
worker "normal" {{
  bind_socket = "127.0.0.1:{self.port}";
  count = 1;
  {"" if self.task_timeout is None else f"task_timeout = {self.task_timeout};"}
}}{milter_worker}
actions {{
  reject = 15;
  add_header = 6;
  greylist = 4;
}}
modules {{
  path = "{d}/plugins/";
}}
rdns_scorer {{
{self.module_conf}
}}
{self.extra_conf}
"""
        path = d / "rspamd.conf"
        path.write_text(conf)
        return path

    def start(self, timeout: float = 30.0) -> Rspamd:
        conf = self._write_config()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.dir, self.dir / "db", self.dir / "run", self.cache_dir):
                shutil.chown(path, RSPAMD_USER, RSPAMD_USER)
            command = ["rspamd", "-f", "-u", RSPAMD_USER, "-g", RSPAMD_USER, "-c", str(conf)]
        else:
            command = ["rspamd", "-f", "-c", str(conf)]
        if self.hosts is not None:
            hosts, resolv = self.dir / "hosts", self.dir / "resolv.conf"
            hosts.write_text(self.hosts)
            resolv.write_text(DEAD_RESOLV_CONF)
            for path in (hosts, resolv):
                path.chmod(0o644)
            files = {"/etc/hosts": hosts, "/etc/resolv.conf": resolv}
            command = with_private_files(command, files)
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as rspamd
        self._process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        ping = f"{self.url}/ping"
        wait_for_http(self._process, ping, lambda body: body.strip() == b"pong", timeout, self.log)
        if self.milter_port is not None:
            wait_listening(self, self.milter_port, timeout, "rspamd's milter port is not ready")
        return self

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lua_errors(self) -> list[str]:
        """Log lines where Lua code failed at run time or a module failed to load."""
        markers = (
            "callback call failed",
            "lua_metric_symbol_callback: call to",
            "call to lua function failed",
            "attempt to ",
            "stack traceback",
            "bad argument",
            "cannot init lua module",
            "cannot load lua",
        )
        return [line for line in self.log().splitlines() if any(m in line for m in markers)]

    def scan(
        self,
        ip: str,
        helo: str | None = None,
        mail_from: str | None = None,
        hostname: str | None = None,
        user: str | None = None,
        queue_id: str | None = None,
        timeout: float = 10.0,
        port: int | None = None,
    ) -> ScanResult:
        """POST a small message to /checkv2 with the SMTP session in headers, to this
        rspamd's worker or to another normal worker's ``port`` (one in ``extra_conf``)."""
        headers = {"IP": ip}
        for name, value in (
            ("Helo", helo),
            ("From", mail_from),
            ("Hostname", hostname),
            ("User", user),
            ("Queue-Id", queue_id),
        ):
            if value is not None:
                headers[name] = value
        message = (
            b"From: Sender <sender@good-sender.net>\r\n"
            b"To: rcpt@example.com\r\n"
            b"Subject: rdns-scorer test\r\n"
            b"Message-ID: <test@good-sender.net>\r\n"
            b"Date: Thu, 30 Nov 2023 12:00:00 +0000\r\n"
            b"\r\n"
            b"Hello.\r\n"
        )
        url = self.url if port is None else f"http://127.0.0.1:{port}"
        request = urllib.request.Request(
            f"{url}/checkv2", data=message, headers=headers, method="POST"
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            raw = json.loads(reply.read())
        return ScanResult(raw, time.monotonic() - started)


def checked_run(rspamd: Rspamd, warm_up: bool = False) -> Iterator[Rspamd]:
    """A fixture's rspamd: started, and once its tests are done stopped, its log read for
    Lua errors (which fail the test), and its directory removed. ``warm_up`` scans once
    first: a fresh worker's first task pays for lazy set-up, kept out of timings."""
    rspamd.start()
    try:
        if warm_up:
            rspamd.scan("10.0.0.1")
        yield rspamd
    finally:
        rspamd.stop()
    errors = rspamd.lua_errors()
    rspamd.cleanup()
    assert not errors, "\n".join(errors)
