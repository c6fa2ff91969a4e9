"""Debian's SpamAssassin, hermetic: a site config dir of our own, ``spamassassin -t`` and spamd.

The site config dir holds the stock ``.pre`` files (so the stock plugins load), our
plugin and config as ``rdns-scorer spamassassin install`` puts them, a ``local.cf``
with ``dns_available no`` and headers the tests read, and ``zz_test.cf`` (read after
``rdns_scorer.cf``) with the per-test settings.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from scorer.integrations import spamassassin
from scorer.integrations.spamassassin import install, source_dir
from tests.support.ports import free_port, wait_for_port
from tests.support.processes import stop_process

STOCK_SITE_CONFIG = Path("/etc/spamassassin")
STOCK_RULES = Path("/usr/share/spamassassin")

# Headers carrying the exact scores of every hit and the report with its evidence.
LOCAL_CF = """\
dns_available no
use_bayes 0
bayes_auto_learn 0
report_safe 0
add_header all RL-Scores _TESTSSCORES(,)_
add_header all RL-Report _REPORT_
"""

# Every dir the tests make lives under one root, removed when the test process ends;
# spamd's children (nobody) must be able to traverse it.
_ROOT = Path(tempfile.mkdtemp(prefix="rdns-sa-tests-"))
_ROOT.chmod(0o755)
atexit.register(shutil.rmtree, _ROOT, True)

FIXED_DATE = format_datetime(datetime(2024, 5, 6, 10, 0, tzinfo=UTC))


def spamassassin_missing() -> str | None:
    """Why the SpamAssassin tests cannot run here, or None."""
    for command in ("spamassassin", "spamc"):
        if shutil.which(command) is None:
            return f"{command} is not installed (make test installs it)"
    if spamd_path() is None:
        return "spamd is not installed (make test installs it)"
    if not STOCK_SITE_CONFIG.is_dir():
        return f"{STOCK_SITE_CONFIG} missing"
    return None


def spamd_path() -> str | None:
    return shutil.which("spamd") or (
        "/usr/sbin/spamd" if os.access("/usr/sbin/spamd", os.X_OK) else None
    )


def _world_readable(path: Path) -> None:
    # spamd's children run as nobody: they must read the config and may write the home.
    path.chmod(0o755)
    for child in path.iterdir():
        child.chmod(0o755 if child.is_dir() else 0o644)


def with_stock_pre_files(directory: Path) -> Path:
    """``directory`` (made if missing) with the stock .pre files, the plugins Debian's
    SpamAssassin loads: a site config dir before anything of ours is in it."""
    directory.mkdir(exist_ok=True)
    for pre in STOCK_SITE_CONFIG.glob("*.pre"):
        shutil.copyfile(pre, directory / pre.name)
    return directory


def site_config(settings: str = "", *, overlap: bool = False) -> Path:
    """A fresh site config dir: stock .pre files, our files (the overlap as install
    writes it for the stock rules SpamAssassin reads here), local.cf, zz_test.cf."""
    directory = with_stock_pre_files(Path(tempfile.mkdtemp(prefix="site-", dir=_ROOT)))
    install(directory, source_dir(), overlap=overlap, stock=read_stock())
    (directory / "local.cf").write_text(LOCAL_CF)
    (directory / "zz_test.cf").write_text(settings)
    _world_readable(directory)
    return directory


def received(
    ip: str,
    helo: str,
    rdns: str | None = None,
    by: str = "mx.example.org",
    queue_id: str = "4VbTq12xYz",
) -> str:
    """A Postfix-style Received header (``unknown`` when the MTA had no verified name)."""
    address = f"IPv6:{ip}" if ":" in ip else ip
    return (
        f"Received: from {helo} ({rdns or 'unknown'} [{address}])\n"
        f"\tby {by} (Postfix) with ESMTP id {queue_id}\n"
        f"\tfor <user@example.org>; {FIXED_DATE}\n"
    )


def message(
    ip: str,
    helo: str,
    rdns: str | None = None,
    mail_from: str | None = None,
    *,
    hops: tuple[str, ...] = (),
) -> bytes:
    """A small message as delivered: Return-Path (envelope sender) on top, then Received.

    ``hops`` are further Received headers added by our own relays (newest first).
    """
    lines = []
    if mail_from is not None:
        lines.append(f"Return-Path: <{mail_from}>\n")
    lines += hops
    lines.append(received(ip, helo, rdns))
    sender = mail_from or "someone@good-sender.net"
    lines += [
        f"From: Someone Nice <{sender}>\n",
        "To: User <user@example.org>\n",
        "Subject: quarterly figures\n",
        f"Date: {FIXED_DATE}\n",
        "Message-ID: <20240506100000.abcdef123456@good-sender.net>\n",
        "MIME-Version: 1.0\n",
        "Content-Type: text/plain; charset=us-ascii\n",
        "\n",
        "Hello,\n\nthe figures you asked for are attached to the next mail.\n\nRegards\n",
    ]
    return "".join(lines).encode()


@dataclass
class Scan:
    """What SpamAssassin made of one message."""

    output: str
    elapsed: float
    errors: str = ""  # its stderr: what -D (debug) and warnings print

    def _header(self, name: str) -> str:
        head = self.output.split("\n\n", 1)[0]
        match = re.search(rf"^{re.escape(name)}:(.*(?:\n[ \t].*)*)", head, re.M | re.I)
        return match.group(1) if match else ""

    @property
    def scores(self) -> dict[str, float]:
        """Every rule hit with its exact score."""
        raw = re.sub(r"\s+", "", self._header("X-Spam-RL-Scores"))
        pairs = (item.partition("=") for item in raw.split(",") if "=" in item)
        return {name: float(value) for name, _, value in pairs}

    @property
    def rl(self) -> dict[str, float]:
        """The RL_* hits (our symbols) with their scores."""
        return {k: v for k, v in self.scores.items() if k.startswith("RL_")}

    def section(self, rule: str) -> str:
        """The rule's report entry (description and evidence), whitespace and wrapping undone."""
        text = self._header("X-Spam-RL-Report")
        entries = re.split(r"\n\s*\*\s+(?=-?\d+\.\d\s+[A-Z0-9_]+\s)", "\n" + text)
        for entry in entries:
            if re.match(rf"-?\d+\.\d\s+{re.escape(rule)}\s", entry):
                flat = re.sub(r"\s+", " ", re.sub(r"\n\s*\*?", " ", entry)).strip()
                # SpamAssassin wraps long evidence lines into several [bracketed] pieces.
                return flat.replace("] [", " ")
        return ""


def run_spamassassin(
    directory: Path, raw: bytes, *args: str, user_prefs: str = "", timeout: float = 120
) -> Scan:
    """``spamassassin -t`` with our site config dir and ``user_prefs``; nothing from HOME."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=_ROOT))
    prefs = home / "user_prefs"
    prefs.write_text(user_prefs)
    command = [
        "spamassassin", "-t", "-x", "-p", str(prefs), "--siteconfigpath", str(directory), *args,
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(home)}
    start = time.monotonic()
    result = subprocess.run(
        command, input=raw, capture_output=True, timeout=timeout, env=env, check=False
    )
    elapsed = time.monotonic() - start
    shutil.rmtree(home, ignore_errors=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"spamassassin exited {result.returncode}: {result.stderr!r}")
    return Scan(
        result.stdout.decode(errors="replace"), elapsed, result.stderr.decode(errors="replace")
    )


def lint(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["spamassassin", "--lint", "--siteconfigpath", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Spamd:
    """spamd on a free loopback port with our site config dir; children as nobody if root."""

    def __init__(self, directory: Path, user_prefs: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.user_prefs = user_prefs or {}
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="spamd-", dir=_ROOT))
        self.home.chmod(0o777)
        self.log_path = self.home / "spamd.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Spamd:
        spamd = spamd_path()
        assert spamd is not None
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(
            [
                spamd, "--siteconfigpath", str(self.directory),
                "-i", "127.0.0.1", "-p", str(self.port), "-A", "127.0.0.1",
                "-x", "-H", str(self.home), "-s", "stderr",
                "--min-children", "1", "--max-children", "1",
                "--pidfile", str(self.home / "spamd.pid"),
                *self._virtual_users(),
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "HOME": str(self.home)},
        )  # fmt: skip
        try:
            wait_for_port(self.port, timeout=60)
            # The first scan loads everything; a message with no Received asks nobody.
            self.scan(b"Subject: warm-up\n\nwarm-up\n", timeout=60)
        except Exception:
            self.stop()
            raise RuntimeError(self.log()) from None
        return self

    def _virtual_users(self) -> list[str]:
        """Per-user preferences as spamd reads them for virtual users (needs root for -u)."""
        if not self.user_prefs:
            return []
        for user, prefs in self.user_prefs.items():
            (self.home / "users" / user).mkdir(parents=True)
            (self.home / "users" / user / "user_prefs").write_text(prefs)
        _world_readable(self.home / "users")
        for user in self.user_prefs:
            _world_readable(self.home / "users" / user)
        return ["-u", "nobody", "--virtual-config-dir", str(self.home / "users" / "%u")]

    def scan(self, raw: bytes, timeout: float = 30, user: str | None = None) -> Scan:
        start = time.monotonic()
        command = ["spamc", "-x", "-d", "127.0.0.1", "-p", str(self.port), "-t", str(int(timeout))]
        result = subprocess.run(
            command + (["-u", user] if user else []),
            input=raw,
            capture_output=True,
            timeout=timeout + 5,
            check=False,
        )
        elapsed = time.monotonic() - start
        if result.returncode != 0:
            raise RuntimeError(f"spamc exited {result.returncode}: {result.stderr!r}")
        return Scan(
            result.stdout.decode(errors="replace"), elapsed, result.stderr.decode(errors="replace")
        )

    def stop(self) -> None:
        stop_process(self._process, timeout=15)
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def debian_release() -> str:
    """The Debian release's major version ("12", "13"), which says what stock rules its
    spamassassin package (4.0.1 in both) installs: keyed by it, not by the package's own
    version, a point release of the package (a security fix) is still known."""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_ID":
            return value.strip('"').partition(".")[0]
    raise AssertionError("/etc/os-release names no VERSION_ID")


def read_stock() -> dict[str, tuple[str, str]]:
    """The stock rules SpamAssassin reads here, as install finds them."""
    rules = spamassassin.stock_rules_dir()
    assert rules is not None, "SpamAssassin names no stock rules directory"
    return stock_definitions(rules)


def as_installed(overlap: str) -> str:
    """``overlap`` as install writes it next to the stock rules SpamAssassin reads here."""
    return spamassassin.overlap_for_stock(overlap, read_stock())[0]


def stock_definitions(rules_dir: Path = STOCK_RULES) -> dict[str, tuple[str, str]]:
    """``header``/``meta`` rule definitions of the installed stock rules: name -> (type,
    body), read as `spamassassin check` reads them."""
    return spamassassin.stock_definitions(rules_dir)
