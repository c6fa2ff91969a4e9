"""The `rdns-scorer` command line in-process: which settings reach `serve`, where `health`
asks, what `check`, `generic`, `symbols` and `config check` print. (The same commands as
processes, against a real service: test_service.py and test_policy.py.)"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import scorer.cli as cli
import scorer.report as report
import scorer.workers
from scorer.cli import build_parser, main
from scorer.config import ENV_LISTEN, Config
from scorer.symbols import SYMBOLS, markdown_table
from scorer.workers import EXIT_LISTEN_LATER
from tests import world
from tests.support.fakedns import FaultyDns, dead_port
from tests.support.service import ScorerProcess
from tests.support.unbound import Unbound

# -- serve -------------------------------------------------------------------------------


@dataclass
class Served:
    """What `serve` handed to scorer.workers.serve, and the side effects it asked for."""

    calls: list[tuple[Config, str, int, int]] = field(default_factory=list)
    loaders: list[Any] = field(default_factory=list)
    logging: list[tuple[object, ...]] = field(default_factory=list)
    deferred: int = 0
    error: Exception | None = None  # raised by serve() instead of serving


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """`serve` without a server: nothing binds, forks, or takes over logging or SIGHUP."""
    record = Served()

    def serve(config: Config, loader: Any, host: str, port: int, workers: int) -> int:
        if record.error is not None:
            raise record.error
        record.calls.append((config, host, port, workers))
        record.loaders.append(loader)
        return 0

    def defer() -> None:
        record.deferred += 1

    monkeypatch.setattr(scorer.workers, "serve", serve)
    monkeypatch.setattr(cli, "configure_logging", lambda *args: record.logging.append(args))
    monkeypatch.setattr(cli, "defer_hangups", defer)
    return record


def test_serve_takes_workers_from_the_flag_else_the_config(tmp_path: Path, served: Served) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\nworkers = 2\nlog_format = "json"\nlog_requests = false\n')
    assert main(["serve", "--config", str(config), "--listen", "127.0.0.1:12001"]) == 0
    assert main(["serve", "--config", str(config), "--workers", "3"]) == 0
    assert main(["serve"]) == 0
    assert [(host, port, workers) for _, host, port, workers in served.calls] == [
        ("127.0.0.1", 12001, 2),
        ("127.0.0.1", 11340, 3),
        ("127.0.0.1", 11340, 1),
    ]
    # The config's logging settings, before anything is served; SIGHUP deferred first.
    assert served.logging[:2] == [("json", False)] * 2
    assert served.logging[2] == ("text", True)
    assert served.deferred == 3


def test_serve_workers_flag_is_what_a_reload_compares(tmp_path: Path, served: Served) -> None:
    # Regression (review): with --workers N the file's workers is not what runs, nor what
    # a restart runs, yet a reload compared the file's value with the file's value at
    # start: workers = 2 edited to 4 under --workers 3 warned "[server] workers 4 applies
    # after a restart; 2 until then", both wrong. The flag stands for both.
    config = tmp_path / "scorer.toml"
    config.write_text("[server]\nworkers = 2\n")
    assert main(["serve", "--config", str(config), "--workers", "3"]) == 0
    assert main(["serve", "--config", str(config)]) == 0
    (flagged, *_), (unflagged, *_) = served.calls
    assert flagged.server.workers == 3
    config.write_text("[server]\nworkers = 4\n")
    assert served.loaders[0]().reload_warnings(flagged.server, flagged) == []
    assert served.loaders[1]().reload_warnings(unflagged.server, unflagged) == [
        "[server] workers 4 applies after a restart; 2 until then"
    ]


def test_serve_takes_up_to_256_workers(capsys: pytest.CaptureFixture[str]) -> None:
    # docs/configuration.md: 1 to 256, here and for serve --workers (mutation review).
    assert build_parser().parse_args(["serve", "--workers", "256"]).workers == 256
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--workers", "257"])
    assert "--workers: expected 1 to 256, got '257'" in capsys.readouterr().err


def test_serve_warns_about_a_token_every_user_can_read(
    tmp_path: Path, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\ntoken = "s3cret"\n')
    config.chmod(0o644)
    assert main(["serve", "--config", str(config)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if f"{config} is world-readable and holds the token" in w]
    assert not [r for r in caplog.records if "s3cret" in r.getMessage()]


def test_serve_logs_an_unexpected_error_whole(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # Only failures to bind are one line and an exit status (75 for one worth a retry);
    # anything else is a bug to see whole: its traceback, through the log (regression,
    # review: Python printed it past the log, unprefixed for journald, so `journalctl -p
    # err` missed the crash, and not as a JSON line in the JSON format).
    served.error = OSError(errno.ENOMEM, "Cannot allocate memory")
    assert main(["serve"]) == 1
    (failed,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert failed.getMessage() == f"rdns-scorer serve failed (pid {os.getpid()})"
    assert failed.exc_info is not None and failed.exc_info[1] is served.error
    caplog.clear()
    served.error = RuntimeError("a bug")
    assert main(["serve"]) == 1
    (failed,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert failed.exc_info is not None and failed.exc_info[1] is served.error
    served.error = OSError(errno.EADDRINUSE, "Address already in use")
    assert main(["serve"]) == EXIT_LISTEN_LATER
    served.error = OSError(errno.EACCES, "Permission denied")
    assert main(["serve"]) == 2


# -- health ------------------------------------------------------------------------------


@dataclass
class Probe:
    """What `health` asked: the handlers of its opener, the URL and the timeout."""

    handlers: list[object] = field(default_factory=list)
    asked: list[tuple[str, float]] = field(default_factory=list)
    failure: OSError | None = None


class _Reply:
    def __enter__(self) -> _Reply:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def read(self) -> bytes:
        return b"ok\n"


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Probe:
    record = Probe()

    class Opener:
        def open(self, url: str, timeout: float) -> _Reply:
            record.asked.append((url, timeout))
            if record.failure is not None:
                raise record.failure
            return _Reply()

    def build_opener(*handlers: object) -> Opener:
        record.handlers.extend(handlers)
        return Opener()

    monkeypatch.setattr(cli.urllib.request, "build_opener", build_opener)
    monkeypatch.delenv(ENV_LISTEN, raising=False)
    return record


def test_health_asks_the_flag_then_the_environment_then_the_file(
    tmp_path: Path, probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:12003"\n')
    monkeypatch.setenv(ENV_LISTEN, "127.0.0.1:12002")
    assert main(["health", "--config", str(config), "--listen", "127.0.0.1:12001"]) == 0
    assert main(["health", "--config", str(config)]) == 0
    monkeypatch.setenv(ENV_LISTEN, "")  # set but empty: serve passes it over too
    assert main(["health", "--config", str(config)]) == 0
    monkeypatch.delenv(ENV_LISTEN)
    assert main(["health", "--config", str(config)]) == 0
    assert main(["health"]) == 0
    assert [url for url, _ in probe.asked] == [
        "http://127.0.0.1:12001/healthz",
        "http://127.0.0.1:12002/healthz",
        "http://127.0.0.1:12003/healthz",
        "http://127.0.0.1:12003/healthz",
        "http://127.0.0.1:11340/healthz",
    ]


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:12001", "http://127.0.0.1:12001/healthz"),
        ("[::]:12001", "http://[::1]:12001/healthz"),
    ],
)
def test_health_asks_a_wildcard_listener_on_its_loopback(
    probe: Probe, listen: str, url: str
) -> None:
    assert main(["health", "--listen", listen]) == 0
    assert [asked for asked, _ in probe.asked] == [url]


def test_health_bypasses_proxies_and_keeps_its_timeout(probe: Probe) -> None:
    assert main(["health"]) == 0
    assert main(["health", "--timeout", "0.25"]) == 0
    assert [timeout for _, timeout in probe.asked] == [2.0, 0.25]
    proxies = [h for h in probe.handlers if isinstance(h, urllib.request.ProxyHandler)]
    assert proxies and all(h.proxies == {} for h in proxies)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seconds", ["3600", "0.001"])
def test_health_timeout_takes_up_to_an_hour(probe: Probe, seconds: str) -> None:
    assert main(["health", "--timeout", seconds]) == 0
    assert probe.asked[0][1] == float(seconds)


def test_health_timeout_above_an_hour_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["health", "--timeout", "3601"])
    assert "expected seconds above 0 (up to 3600), got '3601'" in capsys.readouterr().err


@pytest.mark.parametrize("toml", ['server = "127.0.0.1:12001"\n', "[other]\nlisten = 'x'\n"])
def test_health_reads_only_a_listen_in_a_server_table(
    tmp_path: Path, probe: Probe, toml: str
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text(toml)
    assert main(["health", "--config", str(config)]) == 0
    assert [url for url, _ in probe.asked] == ["http://127.0.0.1:11340/healthz"]


def test_health_names_where_a_listen_it_cannot_use_came_from(
    tmp_path: Path,
    probe: Probe,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression (review): `listen = 12001` was passed over and the default port probed,
    # one the config never named; "bogus" was refused without saying whose it was.
    config = tmp_path / "scorer.toml"
    config.write_text("[server]\nlisten = 12001\n")
    assert main(["health", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"rdns-scorer health: [server] listen ({config}): expected a string, HOST:PORT, got 12001\n"
    )
    monkeypatch.setenv(ENV_LISTEN, "bogus")
    assert main(["health", "--config", str(config)]) == 1
    said = "RDNS_SCORER_LISTEN: expected HOST:PORT, got 'bogus'\n"
    assert capsys.readouterr().err == f"rdns-scorer health: {said}"
    assert main(["health", "--listen", "x"]) == 1
    assert capsys.readouterr().err == "rdns-scorer health: --listen: expected HOST:PORT, got 'x'\n"
    # Regression (review): an empty --listen was passed over, and the file's or the
    # default address probed, where serve and rspamd config refuse it.
    assert main(["health", "--listen", ""]) == 1
    assert capsys.readouterr().err == "rdns-scorer health: --listen: expected HOST:PORT, got ''\n"
    assert probe.asked == []


def test_health_failures_are_one_line_and_exit_1(
    tmp_path: Path, probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    probe.failure = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert main(["health", "--listen", "127.0.0.1:12001"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "rdns-scorer health: http://127.0.0.1:12001/healthz: [Errno 111] Connection refused\n"
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    assert main(["health", "--config", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"rdns-scorer health: {broken}: invalid TOML: "), err
    assert err.count("\n") == 1, err
    # A config that is not there: "PATH: reason", as config check says it (it said
    # "[Errno 2] No such file or directory: 'PATH'").
    missing = tmp_path / "missing.toml"
    assert main(["health", "--config", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"rdns-scorer health: {missing}: No such file or directory\n"
    )
    # `--config "$UNSET"`, as serve and config check say it (it said ": Is a directory",
    # Path("") being the working directory).
    assert main(["health", "--config", ""]) == 1
    assert capsys.readouterr().err == "rdns-scorer health: the config file name is empty\n"
    assert probe.asked == [("http://127.0.0.1:12001/healthz", 2.0)]


def test_health_says_to_give_the_address_when_it_may_not_read_the_config(
    tmp_path: Path,
    probe: Probe,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression (review): a monitoring agent's user may not read the config, which holds
    # the token (0640 root:rdns-scorer, as the README installs it): it was told
    # "Permission denied" and nothing more, and reported a healthy service down. (Made
    # to fail as for another user: the tests run as root, whom no mode stops.)
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\nlisten = "127.0.0.1:12001"\n')

    def read_toml(path: str) -> dict[str, Any]:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(cli, "read_toml", read_toml)
    assert main(["health", "--config", str(config)]) == 1
    assert capsys.readouterr().err == (
        f"rdns-scorer health: {config}: Permission denied: give the service's address "
        "with --listen HOST:PORT (or RDNS_SCORER_LISTEN) instead, which reads no file\n"
    )
    assert main(["health", "--config", str(config), "--listen", "127.0.0.1:12001"]) == 0
    assert [url for url, _ in probe.asked] == ["http://127.0.0.1:12001/healthz"]


def test_health_says_why_urllib_could_not_connect_without_its_wrapper(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): urllib raises a refused connection as URLError, whose text
    # is "<urlopen error [Errno 111] Connection refused>", not the error it carries.
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    probe.failure = urllib.error.URLError(refused)
    assert main(["health", "--listen", "127.0.0.1:12001"]) == 1
    assert capsys.readouterr().err == (
        "rdns-scorer health: http://127.0.0.1:12001/healthz: [Errno 111] Connection refused\n"
    )


# -- check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # Regression (docs walkthrough): "... IPv6 address: " ended in nothing to read.
        (["--ip", ""], "rdns-scorer check: ip is empty\n"),
        (["--ip", " "], "rdns-scorer check: ip is empty\n"),
        (["--ip", "224.0.0.1"], "rdns-scorer check: ip 224.0.0.1 is no host's address"),
    ],
)
def test_check_names_a_bad_field_once(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: "rdns-scorer check: ip: ip is not ...": the message names its field.
    assert main(["check", *args]) == 2
    assert capsys.readouterr().err.startswith(said)


def test_check_json_is_the_reply_body(unbound: Unbound, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--json", "--nameserver", unbound.nameserver, "--ip", world.MISSING_PTR_IP]
    assert main(argv) == 0
    body = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in body["symbols"]] == ["RL_PTR_MISSING"]
    assert body["score"] == SYMBOLS["RL_PTR_MISSING"].weight


def _check_with_config(tmp_path: Path, unbound: Unbound, toml: str) -> tuple[Path, list[str]]:
    """A config file holding ``toml``, and the start of a `check` command that reads it."""
    config = tmp_path / "scorer.toml"
    config.write_text(toml)
    return config, ["check", "--config", str(config), "--nameserver", unbound.nameserver]


def test_check_does_without_the_token_it_cannot_read(
    unbound: Unbound, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): the admin's `check --config /etc/rdns-scorer/scorer.toml`
    # failed on the token file, which is the service user's (0640), though a check run
    # in process authorizes nothing. A missing file fails the same way an unreadable does.
    written, argv = _check_with_config(tmp_path, unbound, '[server]\ntoken_file = "secret/token"\n')
    assert main([*argv, "--ip", world.MISSING_PTR_IP]) == 0
    assert "RL_PTR_MISSING" in capsys.readouterr().out
    assert main(["config", "check", str(written)]) == 2  # the service needs it
    assert "[server] token_file: " in capsys.readouterr().err
    # A name whose stat fails otherwise than "no such file" (EACCES for a user who may not
    # search its directory; here ENAMETOOLONG) is not a world-readable one: no traceback.
    written.write_text(f'[server]\ntoken_file = "{"t" * 300}"\n')
    assert main([*argv, "--ip", world.MISSING_PTR_IP]) == 0


def test_check_leaves_out_what_was_not_given(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --helo, no --from: not checked (and not an empty HELO or a null sender).
    argv = ["check", "--json", "--nameserver", unbound.nameserver, "--ip", world.CONFIRMED_IP]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["symbols"] == []
    assert main([*argv, "--from", ""]) == 0  # '' is the null sender <>
    assert json.loads(capsys.readouterr().out)["symbols"] == []


def test_check_takes_the_mtas_hostname_as_the_api_does(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # The API's hostname field, shown beside our PTR evidence (it had no flag: the
    # verdict on a client as the MTA saw it could not be reproduced).
    argv = ["check", "--json", "--nameserver", unbound.nameserver, "--ip", world.UNVERIFIED_IP]
    assert main([*argv, "--hostname", "mx.the-mta-said.example"]) == 0
    [symbol] = json.loads(capsys.readouterr().out)["symbols"]
    assert symbol["name"] == "RL_PTR_UNVERIFIED"
    assert "MTA hostname: mx.the-mta-said.example" in symbol["options"], symbol


def test_readme_check_report_is_what_check_prints(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's `rdns-scorer check` example, run against the test world, prints the
    report shown there (the time taken apart)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = r"^\$ (?:\.venv/bin/)?rdns-scorer (check [^\n]*)\n(.*?)^```"
    shown = re.search(example, readme, re.DOTALL | re.MULTILINE)
    assert shown is not None
    argv = [*shlex.split(shown.group(1)), "--nameserver", unbound.nameserver]
    assert main(argv) == 0

    def untimed(report: str) -> str:
        return re.sub(r"\(\d+\.\d ms\)", "(N ms)", report)

    assert untimed(capsys.readouterr().out) == untimed(shown.group(2))


def test_check_report_names_the_ptr_it_judged(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", "--nameserver", unbound.nameserver, "--ip", world.UNVERIFIED_IP]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"({world.UNVERIFIED_NAME}) have an A record pointing back" in out, out


def test_check_says_why_an_allowlist_entry_naming_the_client_did_not_apply(
    unbound: Unbound, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (journey review): a `ptr` entry for a partner whose PTR is not
    # forward-confirmed (or a `helo` entry) seemed to do nothing, and neither the reply nor
    # check's report said why: the admin was left to find the condition in the docs.
    toml = (
        "[allowlist]\n"
        f'ptr_suffixes = ["{world.UNVERIFIED_NAME.split(".", 1)[1]}", "{world.CONFIRMED_NAME}"]\n'
        f'helo_names = ["{world.UNVERIFIED_NAME}"]\n'
    )
    _config, argv = _check_with_config(tmp_path, unbound, toml)
    assert main([*argv, "--ip", world.UNVERIFIED_IP, "--helo", world.UNVERIFIED_NAME]) == 0
    out = capsys.readouterr().out
    assert "RL_PTR_UNVERIFIED" in out
    assert (
        f"note: allowlist entry `ptr unverified-sender.net` names the PTR "
        f"{world.UNVERIFIED_NAME}, which is not forward-confirmed (it does not resolve back "
        f"to {world.UNVERIFIED_IP}): not applied; an `ip` entry would be" in out
    ), out
    assert (
        f"note: allowlist entry `helo {world.UNVERIFIED_NAME}` not applied: the HELO is not a "
        f"forward-confirmed PTR name of {world.UNVERIFIED_IP}" in out
    ), out
    # An entry that applies draws where it is written (the next test), one naming other
    # clients no note; nor does --json, which prints the reply body alone.
    assert main([*argv, "--ip", world.CONFIRMED_IP, "--helo", world.UNVERIFIED_NAME]) == 0
    out = capsys.readouterr().out
    assert "RL_ALLOWLISTED" in out and "not applied" not in out, out
    assert main([*argv, "--ip", world.GENERIC_IP]) == 0
    assert "note:" not in capsys.readouterr().out


def test_check_says_where_the_allowlist_entries_that_applied_are_written(
    unbound: Unbound, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An admin undoing an exemption must find every place that grants it: the reply names
    # the entry as the service reads it (an IPv4-mapped network as IPv4, a name in
    # A-labels, lower case), which grep may not find as written, and the entry may be
    # written more than once. The reply itself does not say (rspamd may copy options into
    # a message's headers).
    listed = tmp_path / "partners.txt"
    listed.write_text(
        "# partners\n"
        "ip ::ffff:203.0.113.0/120\n"
        f"ptr {world.CONFIRMED_NAME.upper()}.\n"
        f"from {world.GOOD_DOMAIN}\n"
    )
    toml = (
        "[allowlist]\n"
        f'ptr_suffixes = ["{world.GOOD_DOMAIN}"]\n'
        f'files = ["{listed}"]\n'
        'ips = ["198.51.100.1"]\n'
    )
    _config, argv = _check_with_config(tmp_path, unbound, toml)
    sender = ["--from", f"someone@{world.GOOD_DOMAIN}"]
    assert main([*argv, "--ip", world.CONFIRMED_IP, *sender]) == 0
    out = capsys.readouterr().out
    assert f"note: RL_ALLOWLISTED: entry `ip 203.0.113.0/24` is written at {listed}:2" in out
    # The ip entry covers every check: no lookup, so the others are not reached.
    assert "ptr " not in out.partition("note:")[2] and "RL_ALLOWLISTED_FROM" not in out, out
    assert main([*argv, "--ip", "2001:db8::1", *sender]) == 0
    out = capsys.readouterr().out
    assert "note: RL_ALLOWLISTED_FROM: entry `from good-sender.net` is written at " in out
    assert f"{listed}:4" in out, out
    # An entry in two places names both, the config's by its key.
    toml = toml.replace('ips = ["198.51.100.1"]', f'ptr_suffixes = ["{world.CONFIRMED_NAME}"]')
    toml = toml.replace(f'ptr_suffixes = ["{world.GOOD_DOMAIN}"]\n', "")
    _config, argv = _check_with_config(tmp_path, unbound, toml)
    listed.write_text(f"ptr {world.CONFIRMED_NAME.upper()}.\n")
    assert main([*argv, "--ip", "2001:db8::2"]) == 0  # no entry for it: no note
    assert "note:" not in capsys.readouterr().out
    listed.write_text(f"# again\nptr {world.CONFIRMED_NAME.upper()}.\n")
    assert main([*argv, "--ip", world.CONFIRMED_IP]) == 0
    out = capsys.readouterr().out
    assert (
        f"note: RL_ALLOWLISTED: entry `ptr {world.CONFIRMED_NAME}` is written at "
        f"[allowlist] ptr_suffixes; {listed}:2" in out
    ), out
    # The same in --json is the reply body alone.
    assert main([*argv, "--ip", world.CONFIRMED_IP, "--json"]) == 0
    assert "written at" not in capsys.readouterr().out
    assert main([*argv, "--json", "--ip", world.UNVERIFIED_IP]) == 0
    json.loads(capsys.readouterr().out)


HELO_IN_A_DEAD_ZONE = "host.dead-zone.net"  # world.FORWARD_TEMPFAIL_IP's PTR, in a dead zone


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        (
            world.FORWARD_TEMPFAIL_IP,
            f"the HELO is a PTR name of {world.FORWARD_TEMPFAIL_IP} whose address lookup "
            f"failed (it may resolve back to {world.FORWARD_TEMPFAIL_IP}: check again)",
        ),
        (
            world.PTR_SERVFAIL_IP,
            "whether the HELO is a forward-confirmed PTR name of "
            f"{world.PTR_SERVFAIL_IP} is not known: the PTR lookup failed (servfail); "
            "check again",
        ),
    ],
)
def test_check_does_not_blame_a_helo_entry_on_a_ptr_a_lookup_failed_for(
    unbound: Unbound, tmp_path: Path, capsys: pytest.CaptureFixture[str], ip: str, why: str
) -> None:
    # Regression (journey review): a `helo` entry naming the client's PTR name, whose
    # address lookup timed out (or the client's PTR lookup failed), drew "the HELO is
    # not a forward-confirmed PTR name": a DNS failure told as a verdict, though the
    # entry may well apply at the next check (the `ptr` note said so already).
    helo = HELO_IN_A_DEAD_ZONE
    _config, argv = _check_with_config(tmp_path, unbound, f'[allowlist]\nhelo_names = ["{helo}"]\n')
    assert main([*argv, "--ip", ip, "--helo", helo]) == 3
    out = capsys.readouterr().out
    assert "not a forward-confirmed" not in out, out
    assert f"note: allowlist entry `helo {helo}` not applied: {why}" in out, out


def test_check_says_which_allowlisted_ptr_names_max_ptr_names_left_unchecked(
    unbound: Unbound, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: a `helo` entry whose HELO is none of the client's PTR names drew
    # "whether the HELO is a forward-confirmed PTR name ... is not known: 3 PTR names
    # beyond [dns] max_ptr_names were not looked up": the names beyond the cut are
    # known (only not resolved), and one an entry applies for is resolved first.
    ip, partner = world.SHARED_PTR_IP, world.SHARED_PTR_NAME
    helo = "mx.not-a-ptr-name.net"
    _config, argv = _check_with_config(tmp_path, unbound, f'[allowlist]\nhelo_names = ["{helo}"]\n')
    assert main([*argv, "--ip", ip, "--helo", helo]) == 3  # RL_PTR_TEMPFAIL: 3 unchecked
    out = capsys.readouterr().out
    assert "not known" not in out, out
    assert (
        f"note: allowlist entry `helo {helo}` not applied: the HELO is not a "
        f"forward-confirmed PTR name of {ip}" in out
    ), out
    # More names an entry applies for than max_ptr_names (the twelve under a `ptr` entry,
    # then the HELO's, in sorted order, for one place): each entry's note says which
    # were not looked up, not that they do not resolve back.
    toml = (
        "[dns]\nmax_ptr_names = 1\n[allowlist]\n"
        f'ptr_suffixes = ["shared-host.net"]\nhelo_names = ["{partner}"]\n'
    )
    _config, argv = _check_with_config(tmp_path, unbound, toml)
    assert main([*argv, "--ip", ip, "--helo", partner]) == 3
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: allowlist entry `ptr shared-host.net` names the PTR host00.shared-host.net, "
        f"which is not forward-confirmed (it does not resolve back to {ip}): not applied; "
        "an `ip` entry would be (docs/operations.md, Allowlists)",
        f"note: allowlist entry `ptr shared-host.net` names PTR names of {ip} beyond [dns] "
        f"max_ptr_names, not looked up (11; one may resolve back to {ip}): raise it, or an "
        "`ip` entry would apply (docs/operations.md, Allowlists)",
        f"note: allowlist entry `helo {partner}` not applied: the HELO is a PTR name of {ip} "
        f"beyond [dns] max_ptr_names, not looked up (it may resolve back to {ip}: raise it) "
        "(docs/operations.md, Allowlists)",
    ], out


def test_check_asks_every_nameserver_given(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["check", "--ip", "192.0.2.1", "--nameserver", "127.0.0.1:5301", "--nameserver", "::1"]
    )
    assert cli._config(args).dns.nameservers == ["127.0.0.1:5301", "::1"]


def test_check_does_not_trust_a_resolver_that_denies_the_root(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # As the service does (DnsLayer.check_root): its NXDOMAIN is no missing PTR.
    lying = FaultyDns("nxdomain").start()
    try:
        argv = ["check", "--json", "--nameserver", lying.nameserver, "--ip", world.MISSING_PTR_IP]
        assert main(argv) == cli.EXIT_INCOMPLETE  # a lookup failed: no verdict
    finally:
        lying.stop()
    body = json.loads(capsys.readouterr().out)
    assert "RL_PTR_MISSING" not in [s["name"] for s in body["symbols"]], body
    assert "untrusted: the resolver says the root has no SOA" in json.dumps(body)


@pytest.mark.parametrize(
    ("mode", "warning"),
    [
        (
            "servfail",
            "resolver {} does not answer (the root's SOA: servfail): lookups fail and score "
            "0 (*_TEMPFAIL); the resolver is at fault, not the client's zones",
        ),
        (
            "nxdomain",
            "the resolver says the root has no SOA (nxdomain): its NXDOMAIN/NODATA not "
            "trusted: this check reports them as DNS failures (zero weight)",
        ),
    ],
)
def test_check_words_its_resolver_warning_for_one_check(
    mode: str, warning: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: check warned as the service logs, of every check "until it does" and
    # of /readyz, to someone who ran one check and has no service to ask.
    resolver = FaultyDns(mode).start()
    try:
        argv = ["check", "--nameserver", resolver.nameserver, "--ip", world.MISSING_PTR_IP]
        assert main(argv) == cli.EXIT_INCOMPLETE
    finally:
        resolver.stop()
    assert [r.getMessage() for r in caplog.records] == [warning.format(resolver.nameserver)]


def test_check_names_itself_in_its_warnings() -> None:
    # Regression: nothing set up logging for check, so Python's last resort printed the
    # resolver warning as a bare line on stderr, not saying which program spoke.
    resolver = FaultyDns("servfail").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "scorer", "check", "--nameserver", resolver.nameserver,
             "--ip", world.MISSING_PTR_IP],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        resolver.stop()
    assert result.returncode == cli.EXIT_INCOMPLETE, result.stderr
    assert result.stderr == (
        f"rdns-scorer check: warning: resolver {resolver.nameserver} does not answer (the "
        "root's SOA: servfail): lookups fail and score 0 (*_TEMPFAIL); the resolver is at "
        "fault, not the client's zones\n"
    )


def test_check_exits_3_when_a_lookup_failed(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): exit 0 with every lookup failed, score 0: a script re-scoring
    # clients from logs read "resolver down" as "clean".
    argv = ["check", "--json", "--nameserver", unbound.nameserver, "--ip", world.CONFIRMED_IP]
    assert main([*argv, "--from", f"user@{world.SERVFAIL_DOMAIN}"]) == cli.EXIT_INCOMPLETE
    assert "RL_MAILFROM_TEMPFAIL" in capsys.readouterr().out
    assert main([*argv, "--from", f"user@{world.GOOD_DOMAIN}"]) == 0  # a verdict, if clean
    assert main(["check", "--nameserver", unbound.nameserver, "--ip", world.MISSING_PTR_IP]) == 0


def test_check_hints_an_address_literal_sender_at_its_address_not_at_mx_records(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): RL_MAILFROM_BOGUS_MX for u@[10.0.0.1] told the sender to give
    # '[10.0.0.1]' MX records, which an address literal cannot have.
    argv = ["check", "--nameserver", unbound.nameserver, "--ip", world.CONFIRMED_IP]
    main([*argv, "--from", "u@[10.0.0.1]"])
    (fix,) = [line for line in capsys.readouterr().out.splitlines() if "fix:" in line]
    assert "address literal, [10.0.0.1], which is not a public address" in fix
    assert "MX records" not in fix
    main([*argv, "--from", "u@[IPv6:fd00::1]"])
    (fix,) = [line for line in capsys.readouterr().out.splitlines() if "fix:" in line]
    assert "address literal, [IPv6:fd00::1]," in fix


def test_check_names_the_ipv4_host_behind_the_sites_nat64_prefix(
    unbound: Unbound, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Regression (review): with [policy] nat64_prefixes the checks judged the IPv4 host
    # (evidence "no PTR for 203.0.113.11"), while the fix told the admin to ask the owner
    # of the translated IPv6 address for a PTR, and to make it resolve back to that.
    config = tmp_path / "rdns-scorer.toml"
    config.write_text('[policy]\nnat64_prefixes = ["2001:db8:64::/96"]\n')
    translated = "2001:db8:64::" + world.MISSING_PTR_IP
    argv = ["check", "--config", str(config), "--nameserver", unbound.nameserver]
    main([*argv, "--ip", translated])
    out = capsys.readouterr().out
    assert out.startswith(f"client {world.MISSING_PTR_IP} "), out
    (fix,) = [line for line in out.splitlines() if "fix:" in line]
    assert f"ask the owner of {world.MISSING_PTR_IP} (ISP" in fix
    assert f"resolve back to {world.MISSING_PTR_IP}" in fix


def test_check_blames_a_silent_resolver_not_the_senders_zones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Regression (review): the stderr warning said the resolver was at fault, but every
    # `fix:` line on stdout told the sender to make its zones answer.
    resolver = FaultyDns("servfail").start()
    try:
        argv = ["check", "--nameserver", resolver.nameserver, "--ip", world.MISSING_PTR_IP]
        assert main([*argv, "--helo", "mx.good-sender.net"]) == cli.EXIT_INCOMPLETE
        out = capsys.readouterr().out
        # Only the failures are the resolver's: a HELO judged without DNS keeps its hint.
        assert main([*argv, "--helo", "mail"]) == cli.EXIT_INCOMPLETE
    finally:
        resolver.stop()
    fixes = [line for line in out.splitlines() if "fix:" in line]
    assert len(fixes) == 2 and all(report.SILENT_HINT in line for line in fixes), fixes
    blocks = capsys.readouterr().out.split("\n\n")[1:]
    hints = {block.split()[0]: block.split("fix:")[1].strip() for block in blocks}
    assert hints["RL_PTR_TEMPFAIL"] == report.SILENT_HINT
    assert report.SILENT_HINT not in hints["RL_HELO_NOT_FQDN"], hints


@pytest.mark.parametrize("mode", ["refused", "referral"])
def test_check_blames_a_refusing_resolver_not_the_senders_zones(
    mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): a resolver that answers the root but refuses the lookups, or
    # does not recurse for them (a referral), had the fix line tell the sender to make
    # its zones "answer from reachable, working nameservers": a REFUSED reaching us is
    # our resolver's own (a recursive one turns an authoritative refusal into SERVFAIL).
    resolver = FaultyDns(mode)
    resolver.root_soa = True
    resolver.start()
    try:
        argv = ["check", "--nameserver", resolver.nameserver, "--ip", world.MISSING_PTR_IP]
        assert main(argv) == cli.EXIT_INCOMPLETE
    finally:
        resolver.stop()
    out = capsys.readouterr().out
    (fix,) = [line for line in out.splitlines() if "fix:" in line]
    assert "RL_PTR_TEMPFAIL" in out and "refused" in out, out
    assert fix.split("fix:")[1].strip() == report.REFUSED_HINT, out


def test_check_asks_the_root_beside_the_check_not_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): the root probe ran first, so a silent resolver cost its
    # timeout and then the check's deadline (7.5 s for a check that reported 4 s). In
    # process (an interpreter's start-up made the limit flaky on a busy box): one wait
    # of 1 s, where the two in a row took at least 2 s.
    config = tmp_path / "scorer.toml"
    config.write_text("[dns]\ntimeout = 1.0\nrequest_deadline = 1.0\n")
    resolver = FaultyDns("silent").start()
    try:
        argv = ["check", "--json", "--ip", world.MISSING_PTR_IP, "--config", str(config),
                "--nameserver", resolver.nameserver]  # fmt: skip
        started = time.monotonic()
        assert main(argv) == 3  # the documented status, as a number
        took = time.monotonic() - started
    finally:
        resolver.stop()
    assert json.loads(capsys.readouterr().out)["elapsed_ms"] >= 950
    assert took < 1.8, took


def test_check_asks_again_when_the_root_probe_answers_after_the_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The probe runs beside the check: a resolver that says the root does not exist,
    # slowly, gave the check its NXDOMAINs first. They are asked again once it is found
    # untrusted (found by a mutation review: no test needed the second check).
    lying = FaultyDns("nxdomain")
    lying.root_delay = 0.3
    lying.start()
    try:
        argv = ["check", "--json", "--nameserver", lying.nameserver, "--ip", world.MISSING_PTR_IP]
        assert main(argv) == cli.EXIT_INCOMPLETE
    finally:
        lying.stop()
    names = [s["name"] for s in json.loads(capsys.readouterr().out)["symbols"]]
    assert "RL_PTR_MISSING" not in names and "RL_PTR_TEMPFAIL" in names, names


def test_check_says_what_it_judged_when_nothing_fired(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): "reverse DNS, HELO and MAIL FROM look fine" with no HELO or
    # sender given, or a null sender, none of which was checked.
    argv = ["check", "--nameserver", unbound.nameserver, "--ip", world.CONFIRMED_IP]
    expected = {
        (): "no symbols: reverse DNS looks fine",
        ("--from", ""): "no symbols: reverse DNS looks fine",
        ("--helo", ""): "no symbols: reverse DNS looks fine",  # no HELO: not checked
        ("--helo", world.CONFIRMED_NAME): "no symbols: reverse DNS and HELO look fine",
        ("--helo", world.CONFIRMED_NAME, "--from", f"user@{world.GOOD_DOMAIN}"): (
            "no symbols: reverse DNS, HELO and MAIL FROM look fine"
        ),
    }
    for extra, said in expected.items():
        assert main([*argv, *extra]) == 0
        assert said in capsys.readouterr().out.splitlines()


def test_check_warns_of_what_it_cannot_see_in_its_options(
    unbound: Unbound, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): a 5,000-character HELO was silently judged by its first 1,024
    # characters, and a config warning `config check` prints (a weight on a TEMPFAIL)
    # went unsaid while it scored.
    _, argv = _check_with_config(tmp_path, unbound, "[weights]\nRL_MAILFROM_TEMPFAIL = 1.0\n")
    assert main([*argv, "--ip", world.CONFIRMED_IP, "--helo", "a" * 5_000]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("rdns-scorer check: warning: [weights] RL_MAILFROM_TEMPFAIL = 1:")
    assert err[1] == (
        "rdns-scorer check: warning: --helo is 5,000 characters; judged by its first 1,024, "
        "as the service judges the field"
    )


def test_ctrl_c_and_a_full_disk_end_a_command_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): a KeyboardInterrupt traceback from asyncio.run; an OSError
    # traceback for `> /dev/full`.
    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_symbols", interrupted)
    assert main(["symbols"]) == cli.INTERRUPTED_STATUS
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "scorer", "symbols"], stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=60,
        )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        1,
        "rdns-scorer: cannot write the output: No space left on device\n",
    )


def test_generic_survives_bytes_and_terminals_that_are_not_utf8() -> None:
    # Regression (review): a mail log's byte that is not UTF-8 ended a batch with a
    # UnicodeDecodeError (its later lines lost) under a UTF-8 locale, and a U-label name
    # on an ASCII terminal ended the report with a UnicodeEncodeError.
    batch = subprocess.run(
        [sys.executable, "-m", "scorer", "generic"],
        input=b"192.0.2.1\t\xffbad.example\n5.6.7.8\t5-6-7-8.dyn.isp.net\n",
        capture_output=True, timeout=60, env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
    )  # fmt: skip
    assert batch.returncode == 1, batch.stderr
    lines = batch.stdout.decode().splitlines()
    assert lines[0] == "error\t0.00\tinvalid hostname '\\xffbad.example'"
    assert lines[1].startswith("generic\t")
    single = subprocess.run(
        [sys.executable, "-m", "scorer", "generic", "203.0.113.14", "p203-0-113-14.dyn.bücher.de"],
        capture_output=True, timeout=60, env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    assert b"p203-0-113-14.dyn.b\\xfccher.de" in single.stdout


# -- generic, symbols, config check ------------------------------------------------------


def test_generic_wants_both_arguments_or_neither(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generic", "192.0.2.1"]) == 2
    assert capsys.readouterr().err == (
        "rdns-scorer generic: give both IP and HOSTNAME, or neither\n"
    )


def test_symbols_prints_markdown_by_default_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["symbols"]) == 0
    assert capsys.readouterr().out == markdown_table()
    assert main(["symbols", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"name": s.name, "family": str(s.family), "weight": s.weight, "description": s.description}
        for s in SYMBOLS.values()
    ]


def test_config_check_names_the_file_it_found_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text("")
    assert main(["config", "check", str(config)]) == 0
    assert capsys.readouterr().out == f"{config}: OK\n"


def test_config_check_names_an_odd_file_as_its_errors_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): "FILE: OK" printed the name as it was, a line break and a
    # terminal escape in it too (one line became two, colours changed), and a byte that
    # is no UTF-8 as "\udce9"; the error for the same name escaped them.
    names = {
        "esc\x1b[31m\nx.toml": "esc\\x1b[31m\\x0ax.toml",
        os.fsdecode(b"lat\xe9.toml"): "lat\\xe9.toml",
    }
    for name, shown in names.items():
        config = tmp_path / name
        config.write_text("")
        assert main(["config", "check", str(config)]) == 0
        assert capsys.readouterr().out == f"{tmp_path}/{shown}: OK\n"
        config.unlink()
        assert main(["config", "check", str(config)]) == 2
        assert capsys.readouterr().err == (
            f"rdns-scorer: config error: {tmp_path}/{shown}: No such file or directory\n"
        )


def test_config_commands_take_the_file_as_every_command_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `config check --config FILE` was a usage error (docs walkthrough), though serve,
    # check and health all take --config. FILE or --config, once; two different ones
    # and none (for check) are refused in one line.
    config = tmp_path / "scorer.toml"
    config.write_text("[weights]\nRL_PTR_MISSING = 4.5\n")
    assert main(["config", "check", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"{config}: OK\n"
    assert main(["config", "check", str(config), "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"{config}: OK\n"
    assert main(["config", "show", "--config", str(config)]) == 0
    assert "RL_PTR_MISSING = 4.5" in capsys.readouterr().out
    other = str(tmp_path / "other.toml")
    for action in ("check", "show"):
        assert main(["config", action, str(config), "--config", other]) == 2
        assert capsys.readouterr().err == (
            f"rdns-scorer config {action}: two config files given: {config} and --config {other}\n"
        )
    assert main(["config", "check"]) == 2
    assert capsys.readouterr().err == (
        "rdns-scorer config check: give the config FILE (or --config FILE)\n"
    )


def test_config_check_and_serve_warn_about_a_scoring_tempfail_symbol(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text("[weights]\nRL_MAILFROM_TEMPFAIL = 1.0\n")
    assert main(["config", "check", str(config)]) == 0
    shown = capsys.readouterr()
    assert shown.out == f"{config}: OK\n"
    # On stderr, a warning for journald too (the unit's ExecReload runs config check).
    assert shown.err.startswith(
        "rdns-scorer config check: warning: [weights] RL_MAILFROM_TEMPFAIL = 1: every message"
    )
    assert main(["serve", "--config", str(config)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if w.startswith("[weights] RL_MAILFROM_TEMPFAIL = 1:")]


def test_serve_says_which_config_it_runs_on(
    tmp_path: Path, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # The file a reload reads again, or none: the start line said neither.
    config = tmp_path / "scorer.toml"
    config.write_text("")
    with caplog.at_level(logging.INFO, logger="rdns_scorer"):
        assert main(["serve", "--config", str(config)]) == 0
        assert main(["serve"]) == 0
    started = [r.getMessage() for r in caplog.records if " starting on " in r.getMessage()]
    assert [line.split(", config: ")[1].split(", resolvers: ")[0] for line in started] == [
        str(config),
        "the embedded defaults",
    ]


def test_serve_writes_an_ipv6_listen_address_in_brackets(
    served: Served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): "starting on ::1:12001", "listening on ::1:12001" and "cannot
    # listen on ::1:12001": the port read as part of the address, where the same line's
    # resolvers were written "[::1]:53".
    from scorer.workers import _listening, listen_failure

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)  # _listening tells systemd too
    with caplog.at_level(logging.INFO, logger="rdns_scorer"):
        assert main(["serve", "--listen", "[::1]:12001"]) == 0
        _listening("::1", 12001)  # what the worker says once bound (served: not bound)
    assert " starting on [::1]:12001 (1 worker)" in caplog.text
    assert f"listening on [::1]:12001 (pid {os.getpid()})" in caplog.text
    in_use = OSError(errno.EADDRINUSE, "Address already in use")
    assert (listen_failure(in_use, "::1", 12001) or "").startswith(
        "cannot listen on [::1]:12001: Address already in use;"
    )


@pytest.mark.parametrize("args", [["config", "check", ""], ["serve", "--config", ""]])
def test_an_empty_config_file_name_says_so(
    args: list[str], served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: `--config "$UNSET"` read the working directory, and said
    # "rdns-scorer: config error: : Is a directory", naming no file.
    assert main(args) == 2
    assert capsys.readouterr().err == "rdns-scorer: config error: the config file name is empty\n"
    assert served.calls == []


# -- a reader that leaves early ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["symbols", "--format", "json"],
        ["symbols"],
        ["rspamd", "config"],
        ["spamassassin", "describe"],
    ],
)
def test_a_reader_that_leaves_is_no_error_with_buffered_output(args: list[str]) -> None:
    # Regression: `rdns-scorer symbols --format json | head -c 10` said "Exception
    # ignored ... BrokenPipeError" and exited 120: output smaller than stdout's buffer
    # met the closed pipe only at the interpreter's exit. (test_service.py's test of the
    # same ran with PYTHONUNBUFFERED=1 from the environment, where each write fails at
    # once, inside main().)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [sys.executable, "-m", "scorer", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before it writes a byte
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) == cli.BROKEN_PIPE_STATUS, error
    assert error == ""


@pytest.mark.parametrize(
    "args", [["config", "check", "/dev/null"], ["symbols"], ["generic", "192.0.2.1", "x.example"]]
)
def test_a_command_started_with_stdout_closed_ends_cleanly(args: list[str]) -> None:
    # Regression (review): with fd 1 closed at start (`rdns-scorer ... >&-`, or a
    # supervisor that closes it) sys.stdout is None: the flush after the command, or a
    # command writing to sys.stdout itself, ended it with an AttributeError and exit 1.
    result = subprocess.run(
        [sys.executable, "-m", "scorer", *args],
        stderr=subprocess.PIPE, text=True, timeout=60,
        preexec_fn=lambda: os.close(1),  # fd 1 closed when Python starts
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


# -- the commands the documentation gives -------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "Makefile"]
COMMAND = re.compile(r"rdns-scorer ((?:[a-z]+ ?)+)([^`|\n]*)")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices) if found else {}


def _documented_options() -> list[tuple[str, str, str]]:
    """(file, command, option) for every --option written after `rdns-scorer COMMAND`."""
    found = []
    for doc in DOCUMENTED:
        for match in COMMAND.finditer(doc.read_text()):
            words, rest = match.group(1).split(), match.group(2)
            command = " ".join(words)
            rest = re.split(r" #| && |; ", rest)[0]  # a comment, the next command
            found += [(doc.name, command, o) for o in re.findall(r"(?<!\w)--[a-z-]+", rest)]
    return found


def test_every_option_the_docs_give_exists() -> None:
    """An option written after `rdns-scorer COMMAND [ACTION]` in README.md, docs/ or the
    Makefile is one that command takes (a renamed flag breaks what admins copy)."""
    documented = _documented_options()
    assert ("README.md", "serve", "--nameserver") in documented
    for doc, command, option in documented:
        parser = build_parser()
        for word in command.split():
            parser = _subcommands(parser).get(word, parser)
        assert option in parser._option_string_actions, f"{doc}: rdns-scorer {command} {option}"


def test_health_ready_says_why_a_service_is_not_ready(
    unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # /readyz's reason, for the runbooks (in the Docker stack the image has no curl):
    # plain `health` said "HTTP Error 503: Service Unavailable" at best.
    unready = ScorerProcess(f"127.0.0.1:{dead_port()}").start()
    try:
        assert main(["health", "--ready", "--listen", unready.address]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"rdns-scorer health: {unready.url}/readyz: HTTP 503: resolver ")
        assert "does not answer" in err and err.count("\n") == 1, err
        assert main(["health", "--listen", unready.address]) == 0  # alive all the same
    finally:
        unready.stop()
    ready = ScorerProcess(unbound.nameserver).start()
    try:
        assert main(["health", "--ready", "--listen", ready.address]) == 0
        assert capsys.readouterr().out == "ready\n"
    finally:
        ready.stop()
