"""`rdns-scorer spamassassin check`: SpamAssassin's own reading of a site config dir
(Debian's real SpamAssassin 4.0), then the real service asked as the plugin asks."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import msgpack
import pytest

from scorer import __version__
from scorer.cli import main
from scorer.integrations import probe, rspamd_check, spamassassin_check
from scorer.integrations import rspamd as rspamd_integration
from scorer.integrations import spamassassin as spamassassin_integration
from scorer.integrations.spamassassin import install, source_dir
from scorer.integrations.spamassassin_check import spamassassin_view
from tests.support.fakedns import dead_port
from tests.support.service import ScorerProcess
from tests.support.spamassassin import (
    STOCK_RULES,
    debian_release,
    read_stock,
    spamassassin_missing,
    with_stock_pre_files,
)
from tests.support.unbound import Unbound

# No skip: a missing SpamAssassin must fail loudly (`make test` installs it).
assert spamassassin_missing() is None, spamassassin_missing()

PACKAGE = "Mail::SpamAssassin::Plugin::RdnsScorer"


def _site(tmp_path: Path) -> Path:
    """A site config dir with the stock .pre files, nothing of ours yet."""
    return with_stock_pre_files(tmp_path / "spamassassin")


def _check(site: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["spamassassin", "check", "--siteconfigpath", str(site)])
    return status, capsys.readouterr().out.splitlines()


def test_check_says_spamassassin_is_wired_up_and_names_each_way_it_is_not(
    tmp_path: Path, unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path)
    assert _check(site, capsys) == (
        1,
        [
            # With the directory's option: the advice is a command to run as it is.
            f"problem:   SpamAssassin does not load {PACKAGE} from {site}: run "
            f"`rdns-scorer spamassassin install --siteconfigpath {site}`",
            "1 problem (mail still flows: the plugin fails open)",
        ],
    )
    install(site, source_dir())
    local = site / "rdns_scorer_local.cf"  # where README and docs/spamassassin.md say
    service = ScorerProcess(unbound.nameserver, '[server]\ntoken = "s3cret"\n').start()
    url, plugin = service.url, site / "RdnsScorer.pm"
    settings = f"rdns_scorer_url {url}/v1/check\nrdns_scorer_token s3cret\n"
    try:
        local.write_text(settings)
        assert _check(site, capsys) == (
            0,
            [
                f"ok:        SpamAssassin loads {PACKAGE}",
                f"ok:        {plugin} is rdns-scorer {__version__}'s",
                f"ok:        {url}/v1/check answers SpamAssassin's checks",
                f"ok:        {url} is ready (its resolver answers)",
                "SpamAssassin asks rdns-scorer, and it answers",
            ],
        )
        local.write_text(settings.replace("s3cret", "stale"))
        status, out = _check(site, capsys)
        assert (status, out[2]) == (
            1,
            f"problem:   {url} refuses SpamAssassin's checks (401): it sends a token the "
            "service does not take; set `rdns_scorer_token` to the service's `[server] "
            "token` (in rdns_scorer_local.cf: docs/spamassassin.md)",
        )
        local.write_text(settings + "score RL_SCORER_CHECK 0\n")
        assert _check(site, capsys)[1][2] == (
            "problem:   `score RL_SCORER_CHECK 0` switches the plugin off: remove that line"
        )
        local.write_text(settings)
        plugin.write_text(plugin.read_text() + "# edited\n")
        assert _check(site, capsys)[1][1] == (
            f"problem:   {plugin} is not rdns-scorer {__version__}'s (an earlier release, or "
            f"edited): run `rdns-scorer spamassassin install --siteconfigpath {site}` to "
            "update it"
        )
    finally:
        service.stop()
    status, out = _check(site, capsys)
    assert status == 1 and out[2].startswith(f"problem:   nothing answers at {url} (")
    assert out[2].endswith("or correct `rdns_scorer_url`")


def test_check_reads_the_plugins_default_url_and_loaded_file_from_spamassassin(
    tmp_path: Path,
) -> None:
    # No rdns_scorer_url: the plugin's DEFAULT_URL, as SpamAssassin's own reading says
    # (read, not asked: nothing on this machine's port 11340 is the test's business).
    site = _site(tmp_path)
    install(site, source_dir())
    perl = shutil.which("perl")
    assert perl is not None
    view = spamassassin_view(site, perl)
    assert view["loaded"] is True and view["file"] == str(site / "RdnsScorer.pm")
    assert view["urls"] == ["http://127.0.0.1:11340/v1/check"]
    assert not view["token"]  # the plugin's default: none sent
    assert view["timeout"] == 1  # rdns_scorer.cf's
    (site / "zz_local.cf").write_text("rdns_scorer_timeout 2.5\n")
    assert spamassassin_view(site, perl)["timeout"] == 2.5
    # As SpamAssassin reads its own durations: a unit is taken, an invalid value
    # leaves the setting as it was (rdns_scorer.cf's 1 s, not 0 or the text).
    for written, seconds in (("1.5s", 1.5), ("1m", 60), ("2m", 1), ("1.5x", 1)):
        (site / "zz_local.cf").write_text(f"rdns_scorer_timeout {written}\n")
        assert spamassassin_view(site, perl)["timeout"] == seconds, written


# Where SpamAssassin reads its stock rules on a fresh install, by the Debian release.
RULES_DIR = {
    "12": "/usr/share/spamassassin",  # Debian 12
    "13": "/var/lib/spamassassin/4.000001",  # Debian 13
}


def test_check_says_when_the_overlap_copies_are_not_the_stock_rules_spamassassin_reads(
    tmp_path: Path,
) -> None:
    # Regression: nothing told the admin when an sa-update (Debian runs it daily) changed
    # or dropped a stock rule rdns_scorer_overlap.cf redefines: its old copy went on
    # overriding the new rule without a word from lint, and a meta on a sub-rule that is
    # gone never fired, not even with the service down.
    site = _site(tmp_path)
    install(site, source_dir(), overlap=True, stock=read_stock())  # as install does
    overlap = site / "rdns_scorer_overlap.cf"
    perl = shutil.which("perl")
    assert perl is not None
    view = spamassassin_view(site, perl)
    # No sa-update on this machine. Debian 13's package, installed anew, puts its own
    # rules where sa-update's go (Debian bug #739489), which SpamAssassin then reads.
    version = debian_release()
    assert version in RULES_DIR, f"Debian {version}: add where its rules are read"
    assert view["rules_dir"] == RULES_DIR[version]
    assert view["rules_dir"] == str(spamassassin_integration.stock_rules_dir())  # install's
    assert spamassassin_check._overlap_findings(view["rules_dir"], site) == [
        probe.Finding(
            True, f"{overlap} redefines the stock rules of {view['rules_dir']} as they are"
        )
    ]
    # sa-update's rules, its channel's files in a directory of their own: one rule the
    # overlap copies changed, one dropped. From the package's (Debian 13's rules_dir has
    # them in that directory already).
    updated = tmp_path / "4.000001"
    shutil.copytree(STOCK_RULES, updated / "updates_spamassassin_org")
    for path in (updated / "updates_spamassassin_org").glob("*.cf"):
        text = path.read_text(encoding="latin-1")
        text = text.replace("helo=localhost /i", "helo=localhost(?:\\.localdomain)? /i")
        text = re.sub(r"^header\s+HELO_DYNAMIC_HEXIP\s.*$", "", text, flags=re.M)
        path.write_text(text, encoding="latin-1")
    (problem,) = spamassassin_check._overlap_findings(str(updated), site)
    assert not problem.ok
    assert problem.text.startswith(
        f"{overlap} redefines HELO_LOCALHOST, HELO_DYNAMIC_HEXIP from copies of rules {updated} "
        "no longer has"
    ), problem.text
    assert f"Remove {overlap} and {site / '.rdns_scorer_overlap.cf.rdns-scorer-shipped'}" in (
        problem.text
    )
    # The rule gone whole, install again leaves out (the one changed it cannot fix).
    install_again = f"rdns-scorer spamassassin install --siteconfigpath {site}"
    assert problem.text.endswith(
        f"; `{install_again}` again leaves out those gone (HELO_DYNAMIC_HEXIP)"
    ), problem.text
    install(site, source_dir(), stock=spamassassin_integration.stock_definitions(updated))
    assert (
        "HELO_DYNAMIC_HEXIP" not in spamassassin_check._overlap_findings(str(updated), site)[0].text
    )
    # Without the overlap file there is nothing to compare.
    overlap.unlink()
    assert spamassassin_check._overlap_findings(str(updated), site) == []


def test_check_says_when_a_rule_install_left_out_is_among_the_stock_rules_again(
    tmp_path: Path,
) -> None:
    # Regression (review): install leaves out the redefinition of a rule the stock rules
    # SpamAssassin reads do not have (Debian 13's HELO_LH_HOME), and check then said the
    # overlap was as the stock rules are even once SpamAssassin read a set with the rule
    # again (another rules directory, such as the package's where sa-update's is
    # gone, or an sa-update bringing it back): the rule fired beside
    # RL_HELO_NOT_FQDN, the evidence counted twice, with nothing said.
    without = tmp_path / "without"
    shutil.copytree(STOCK_RULES, without)
    for path in without.rglob("*.cf"):
        text = path.read_text(encoding="latin-1")
        text = re.sub(r"^(header|meta)\s+HELO_LH_HOME\s.*$", "", text, flags=re.M)
        path.write_text(text, encoding="latin-1")
    again = tmp_path / "again"
    shutil.copytree(without, again)
    shipped = (source_dir() / "rdns_scorer_overlap.cf").read_text()
    copy = re.search(r"^header\s+__RL_STOCK_HELO_LH_HOME\s+(.*)$", shipped, re.M)
    assert copy is not None
    (again / "99_back.cf").write_text(f"header HELO_LH_HOME {copy.group(1)}\n")
    site = _site(tmp_path)
    install(
        site, source_dir(), overlap=True, stock=spamassassin_integration.stock_definitions(without)
    )
    overlap = site / "rdns_scorer_overlap.cf"
    as_they_are = [
        probe.Finding(True, f"{overlap} redefines the stock rules of {without} as they are")
    ]
    assert spamassassin_check._overlap_findings(str(without), site) == as_they_are
    install_again = f"rdns-scorer spamassassin install --siteconfigpath {site}"
    assert spamassassin_check._overlap_findings(str(again), site) == [
        probe.Finding(
            False,
            f"{overlap} leaves out HELO_LH_HOME, which the stock rules SpamAssassin read at "
            f"install did not have and {again} has now: each fires beside the rdns-scorer "
            f"symbol scoring the same evidence, counted twice; `{install_again}` again "
            "redefines them",
        )
    ]
    # As it says: install again with those rules redefines it, and all is well.
    install(site, source_dir(), stock=spamassassin_integration.stock_definitions(again))
    assert re.search(r"^meta\s+HELO_LH_HOME\s", overlap.read_text(), re.M)
    assert spamassassin_check._overlap_findings(str(again), site)[0].ok


def test_check_says_spamassassin_finds_errors_in_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (docs walkthrough): a local file whose rdns_scorer_url line SpamAssassin
    # could not read failed lint, while check asked the URL of the line before it and
    # said all was well. Counted, not quoted: such a line may hold the token.
    site = _site(tmp_path)
    install(site, source_dir())
    port = dead_port()
    (site / "zz_local.cf").write_text(
        f"rdns_scorer_url http://127.0.0.1:{port}/v1/check\n"
        "rdns_scorer_url http://mail host:11340/v1/check\n"  # no URL SpamAssassin reads
        "rdns_scorer_token s3cret wrong\n"
    )
    status, out = _check(site, capsys)
    assert status == 1
    skipped = [line for line in out if "error(s) in its config" in line]
    assert len(skipped) == 1 and skipped[0].startswith(
        f"problem:   SpamAssassin finds 2 error(s) in its config for {site} (lines it skips, "
    ), out
    assert "s3cret" not in "\n".join(out)


def test_check_says_a_settings_file_only_its_owner_may_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): a 0600 root:root file with the token was "all well" to a check
    # run as root, while SpamAssassin run as debian-spamd or amavis skipped it: every
    # check without the token, refused.
    site = _site(tmp_path)
    install(site, source_dir())
    local = site / "zz_local.cf"
    local.write_text(
        "ifplugin Mail::SpamAssassin::Plugin::RdnsScorer\nrdns_scorer_token s3cret\nendif\n"
    )
    local.chmod(0o600)
    owner = local.owner()
    _, out = _check(site, capsys)
    assert (
        f"problem:   {local} sets the plugin, but only {owner} may read it: SpamAssassin run "
        "as debian-spamd goes on without it, and its checks are refused or go elsewhere: "
        f"chown {owner}:debian-spamd {local} && chmod 640 {local} (the group spamd or amavis "
        "runs as)"
    ) in out
    local.chmod(0o640)  # as install writes it, for spamd's group
    assert not [line for line in _check(site, capsys)[1] if str(local) in line]
    # Where SpamAssassin has no such group (spamd reads its config as root), install
    # itself writes the file 0600: no problem then (review: check contradicted install).
    local.chmod(0o600)
    monkeypatch.setattr(spamassassin_check, "READER_GROUPS", ("no-such-group-here",))
    assert not [line for line in _check(site, capsys)[1] if str(local) in line]


def test_check_names_a_lint_command_that_runs_for_a_spaced_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): the lint command named for skipped lines was not quoted, so
    # "--siteconfigpath /srv/my site" ran lint on /srv/my and a file "site".
    site = with_stock_pre_files(tmp_path / "my site")
    install(site, source_dir())
    (site / "zz_local.cf").write_text(
        f"rdns_scorer_url http://127.0.0.1:{dead_port()}/v1/check\nno_such_setting 1\n"
    )
    status, out = _check(site, capsys)
    assert status == 1
    skipped = [line for line in out if "error(s) in its config" in line]
    assert len(skipped) == 1, out
    assert skipped[0].endswith(f"`spamassassin --lint --siteconfigpath '{site}'` names them")


def test_check_asks_the_check_path_of_a_url_without_one_and_says_when_not_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: the plugin asks /v1/check for "http://IP:PORT" and "http://IP:PORT/"
    # (_parse_url); check asked "/" and said 404, correct the path. The service's resolver
    # does not answer: each URL is then ok, and not ready.
    site = _site(tmp_path)
    install(site, source_dir())
    service = ScorerProcess(f"127.0.0.1:{dead_port()}").start()
    try:
        url = service.url
        (site / "rdns_scorer_local.cf").write_text(f"rdns_scorer_url {url} {url}/\n")
        status, out = _check(site, capsys)
        assert status == 1
        assert out[2] == out[4] == f"ok:        {url}/v1/check answers SpamAssassin's checks"
        assert out[3] == out[5]
        assert out[3].startswith(f"problem:   {url} is not ready (resolver ")
    finally:
        service.stop()


def test_check_names_a_plugin_loaded_from_elsewhere_and_no_driver_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: a loadplugin naming a file not called RdnsScorer.pm was reported as
    # ". is not rdns-scorer's", and no RL_SCORER_CHECK rule at all (no rdns_scorer.cf)
    # as "`score RL_SCORER_CHECK 0` switches the plugin off: remove that line".
    site = _site(tmp_path)
    elsewhere = tmp_path / "lib" / "rdns_scorer_plugin.pm"
    elsewhere.parent.mkdir()
    shutil.copyfile(source_dir() / "RdnsScorer.pm", elsewhere)
    (site / "zz_local.cf").write_text(
        f"loadplugin {PACKAGE} {elsewhere}\nrdns_scorer_url http://127.0.0.1:{dead_port()}\n"
    )
    status, out = _check(site, capsys)
    assert status == 1
    assert out[1:3] == [
        f"ok:        {elsewhere} is rdns-scorer {__version__}'s",
        "problem:   SpamAssassin has no RL_SCORER_CHECK rule, so the plugin asks nothing "
        f"(rdns_scorer.cf is not read from {site}): run `rdns-scorer spamassassin install "
        f"--siteconfigpath {site}`",
    ]


def test_check_of_no_directory_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spamassassin", "check", "--siteconfigpath", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_check_without_spamassassin_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Perl alone (no spamassassin package): said so, not "could not read" the site dir.
    perl = shutil.which("perl")
    assert perl is not None
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "perl").symlink_to(perl)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["spamassassin", "check", "--siteconfigpath", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "rdns-scorer spamassassin check: SpamAssassin not found (is it installed here?)\n"
    )


def test_check_asks_each_url_the_path_the_plugin_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As RdnsScorer.pm's _parse_url: all after the address is the path, a query too;
    # none, or "/" alone, is /v1/check.
    urls = ["http://127.0.0.1:11341/v1/check?from=sa", "http://[::1]:11342", "http://10.0.0.5/"]
    view = {"loaded": True, "file": str(source_dir() / "RdnsScorer.pm"), "urls": urls,
            "token": "t0k", "timeout": 2.5, "driver_score": 0.001, "errors": 0}  # fmt: skip
    monkeypatch.setattr(spamassassin_check, "spamassassin_view", lambda *_args: view)
    asked = []

    def ask(
        base: str, path: str, token: str | None, _wiring: probe.Wiring, timeout: float
    ) -> list[probe.Finding]:
        asked.append((base, path, token, timeout))
        return []

    monkeypatch.setattr(probe, "service_findings", ask)
    spamassassin_check.check(tmp_path)
    assert asked == [
        ("http://127.0.0.1:11341", "/v1/check?from=sa", "t0k", 2.5),
        ("http://[::1]:11342", "/v1/check", "t0k", 2.5),
        ("http://10.0.0.5", "/v1/check", "t0k", 2.5),
    ]
    view["timeout"] = None  # rdns_scorer_timeout unset: the plugin's default
    asked.clear()
    spamassassin_check.check(tmp_path)
    assert {timeout for *_, timeout in asked} == {1.0}


@pytest.mark.parametrize(
    ("wiring", "content_type", "decode"),
    [(rspamd_check.WIRING, "application/msgpack", msgpack.unpackb),
     (spamassassin_check.WIRING, "application/json", json.loads)],
    ids=["rspamd", "spamassassin"],
)  # fmt: skip
def test_the_probe_is_the_request_each_plugin_sends(
    wiring: probe.Wiring, content_type: str, decode: Callable[[bytes], object]
) -> None:
    # rspamd's plugin posts msgpack (lua/rdns_scorer.lua), SpamAssassin's JSON; both ask for
    # a JSON reply: a service, or a proxy in front of it, that took one and not the other
    # was reported ok (the probe sent JSON for both).
    request = probe.plugin_request("http://127.0.0.1:1/v1/check", "t0k", wiring)
    assert request.get_method() == "POST"
    assert request.get_header("Content-type") == content_type
    assert request.get_header("Accept") == "application/json"
    assert request.get_header("Authorization") == "Bearer t0k"
    assert isinstance(request.data, bytes) and decode(request.data) == probe.PROBE


def test_install_names_the_check_for_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found in README and docs only by those who know it exists: install says it.
    site = _site(tmp_path)
    assert main(["spamassassin", "install", "--siteconfigpath", str(site), "--no-lint"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"`rdns-scorer spamassassin check --siteconfigpath {site}` says whether SpamAssassin "
        "reaches the service"
    )


@pytest.mark.parametrize("status", [25, -9], ids=["failed", "killed"])
def test_a_site_spamassassin_cannot_read_is_told_without_its_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    # Regression (review): the error quoted SpamAssassin's stderr, whose config errors
    # quote the lines they are about, rdns_scorer_token's too. Perl killed by a signal
    # (-9) read nothing either: said so, not its half-printed output's JSON error.
    said = "config: failed to parse line in zz.cf (line 1): rdns_scorer_token s3cret\n"

    def failed(command: list[str], **_options: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, status, '{"loaded": ', said)

    monkeypatch.setattr(subprocess, "run", failed)
    with pytest.raises(RuntimeError) as raised:
        spamassassin_view(tmp_path, "perl")
    assert str(raised.value) == (
        f"SpamAssassin could not read {tmp_path} (exit {status}): "
        f"`spamassassin --lint --siteconfigpath {tmp_path}` says why"
    )


def test_install_names_a_check_that_runs_from_anywhere_for_a_relative_spaced_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): "--siteconfigpath my site" was shown as two arguments, and a
    # relative directory only ran from where install was run.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my site").mkdir()
    assert main(["spamassassin", "install", "--siteconfigpath", "my site", "--no-lint"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"`rdns-scorer spamassassin check --siteconfigpath '{tmp_path / 'my site'}'` says "
        "whether SpamAssassin reaches the service"
    )


class _OlderService(http.server.BaseHTTPRequestHandler):
    """Answers as rdns-scorer 0.0.9 would: checks, readiness, and its version in /metrics."""

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(b'{"symbols": [], "score": 0}', "application/json")

    def do_GET(self) -> None:
        if self.path == "/metrics":
            # As prometheus_client writes it: the version's line is not the first.
            info = (
                "# HELP rdns_scorer_build_info rdns-scorer build\n"
                "# TYPE rdns_scorer_build_info gauge\n"
                'rdns_scorer_build_info{python="3.11.7",version="0.0.9"} 1.0\n'
            )
            self._send(info.encode(), "text/plain")
        else:
            self._send(b'{"status": "ready"}', "application/json")

    def log_message(self, *_args: object) -> None:
        pass


def _asked(
    handler: type[http.server.BaseHTTPRequestHandler],
    token: str | None = None,
    timeout: float = 1.0,
) -> list[str]:
    """What SpamAssassin's check says of a service that answers as ``handler`` does, each
    line with the service's base URL written BASE."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        wiring = spamassassin_check.WIRING
        findings = probe.service_findings(base, "/v1/check", token, wiring, timeout)
    finally:
        server.shutdown()
        server.server_close()
    return [finding.line().replace(base, "BASE") for finding in findings]


def test_check_says_when_the_service_runs_another_release() -> None:
    # An older or newer service than this command (and the plugin it installs): a newer
    # one's symbols reach an older plugin as RL_SCORER_UNKNOWN, never scored.
    assert _asked(_OlderService) == [
        "ok:        BASE/v1/check answers SpamAssassin's checks",
        f"problem:   BASE runs rdns-scorer 0.0.9, this command is {__version__}: upgrade "
        "the older one, then install the plugin again (docs/operations.md, Upgrading)",
        "ok:        BASE is ready (its resolver answers)",
    ]


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers each path with the status and body in ``answers`` (a 404 for any other),
    as another service, a proxy or a half-working rdns-scorer may."""

    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def _send(self) -> None:
        status, body = self.answers.get(self.path, (404, b"404: Not Found"))
        if status == HANG_UP:
            return  # no answer: the connection closes
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send()

    do_GET = _send

    def log_message(self, *_args: object) -> None:
        pass


HANG_UP = 0  # a status for _Answers: close the connection without a word
CHECK_REPLY = b'{"symbols": [], "score": 0}'
READY = b'{"status": "ready"}'


def _findings(
    answers: dict[str, tuple[int, bytes]], token: str | None = None, timeout: float = 1.0
) -> list[str]:
    """What check says of a service that answers ``answers``, as SpamAssassin's check."""
    return _asked(type("Handler", (_Answers,), {"answers": answers}), token, timeout)


def test_check_says_when_the_plugin_gives_up_before_the_service_may_answer() -> None:
    # Regression (review): `rdns_scorer_timeout 0.3` beside a service whose checks may
    # take its request_deadline was "all well"; each slow-DNS check then failed open.
    ready = b'{"status": "ready", "request_deadline": 0.8}'
    assert _findings({"/v1/check": (200, CHECK_REPLY), "/readyz": (200, ready)}, timeout=0.3) == [
        "ok:        BASE/v1/check answers SpamAssassin's checks",
        "problem:   SpamAssassin gives up after 0.3 s (`rdns_scorer_timeout`), but the "
        "service may take 0.8 s ([dns] request_deadline) to answer a check whose DNS is "
        "slow, and the network some more: those checks fail open; set "
        "`rdns_scorer_timeout` to 1 s, or lower request_deadline",
        "ok:        BASE is ready (its resolver answers)",
    ]
    # A deadline no timeout rspamd's plugin takes covers (install caps it below rspamd's
    # task_timeout): the advice is to lower the deadline, not an 8.2 s timeout.
    finding = probe._deadline_finding(8.0, 7.5, rspamd_check.WIRING)
    assert finding.text.endswith(
        "those checks fail open; lower request_deadline to 7.3 s or less (`timeout` in "
        "rspamd's section cannot be more than 7.5 s)"
    )
    # The installer's own timeout (request_deadline + 0.2 s, 1 s at least) is enough.
    slow = b'{"status": "ready", "request_deadline": 2.5}'
    assert (
        len(_findings({"/v1/check": (200, CHECK_REPLY), "/readyz": (200, slow)}, timeout=2.7)) == 2
    )


def test_a_timeout_install_wrote_is_fixed_by_running_install_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (journey review): after the service's request_deadline was raised, check
    # told the admin to set `timeout` in rspamd's section (or rdns_scorer_timeout) by hand,
    # inside the block install writes from the service's config and writes over at its
    # next run ("edits inside are lost"): the fix is to run install again.
    installed = replace(rspamd_check.WIRING, installed_by="rdns-scorer rspamd install")
    assert probe._deadline_finding(1.5, 1.0, installed).text.endswith(
        "those checks fail open; run `rdns-scorer rspamd install --config FILE` with the "
        "service's config, which writes 1.7 s there, or lower request_deadline"
    )
    # As rspamd check builds it: a section between install's markers, or one by hand.
    local = tmp_path / "rspamd.conf.local"
    dumps = {
        ("-m",): "Modules enabled: rdns_scorer",
        ("-j", "rdns_scorer"): '{"servers": "127.0.0.1:11341", "timeout": 1}',
        ("-j", "options"): "{}",
        ("-j", "worker"): '{"normal": {}}',
    }
    monkeypatch.setattr(rspamd_check, "_rspamadm", lambda _r, _c, *args: dumps[args])
    wirings: list[probe.Wiring] = []

    def asked(*args: object) -> list[probe.Finding]:
        wirings.append(args[3])  # type: ignore[arg-type]
        return []

    monkeypatch.setattr(probe, "service_findings", asked)
    local.write_text(
        rspamd_integration.with_managed_block("", "rdns_scorer {\n  timeout = 1s;\n}\n")
    )
    rspamd_check.check(tmp_path, "rspamadm")
    local.write_text("rdns_scorer {\n  timeout = 1s;\n}\n")
    rspamd_check.check(tmp_path, "rspamadm")
    assert [w.installed_by for w in wirings] == [
        f"rdns-scorer rspamd install --confdir {tmp_path}",
        "",
    ]


class _SlowService(_Answers):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {
        "/v1/check": (200, CHECK_REPLY),
        "/readyz": (200, READY),
    }

    def do_POST(self) -> None:
        time.sleep(0.4)
        super().do_POST()


def test_check_says_when_the_service_answers_later_than_the_plugin_waits() -> None:
    # Regression (review): a service answering after 2 s was "answers SpamAssassin's
    # checks ... is ready", while every scan got RL_SCORER_FAIL at the plugin's 1 s.
    lines = _asked(_SlowService, timeout=0.2)
    assert lines[0] == "ok:        BASE/v1/check answers SpamAssassin's checks"
    assert re.fullmatch(
        r"problem:   BASE took 0\.\d\d s to answer a check that needs no DNS, and "
        r"SpamAssassin gives up after 0\.2 s \(`rdns_scorer_timeout`\): its checks fail "
        r"open \(RL_SCORER_FAIL\); an overloaded or stalled service, or a slow network\? "
        r"read its log",
        lines[1],
    ), lines[1]
    assert lines[2:] == ["ok:        BASE is ready (its resolver answers)"]


LONG_PAGE = b"<html><body>" + b"bad gateway " * 40 + b"</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [(400, b'{"error": "ip: not an IP address", "field": "ip"}',
      "BASE/v1/check answered 400: ip: not an IP address"),
     (415, b"Content-Type must be application/json",
      "BASE/v1/check answered 415: Content-Type must be application/json"),
     (502, LONG_PAGE, f"BASE/v1/check answered 502: {LONG_PAGE[:120].decode()}"),
     (503, b'"overloaded"', "BASE/v1/check answered 503: overloaded"),
     (200, b'{"score": 0}', "BASE/v1/check answers, but not as rdns-scorer does: another service?"),
     (200, b'["symbols", "score"]',
      "BASE/v1/check answers, but not as rdns-scorer does: another service?"),
     (401, b'{"error": "missing or wrong bearer token"}',
      "BASE refuses SpamAssassin's checks (401): it sends no token; set `rdns_scorer_token` "
      "to the service's `[server] token` (in rdns_scorer_local.cf: docs/spamassassin.md)")],
    ids=["400", "415", "long-page", "json-no-object", "some-keys", "a-list", "401-no-token"],
)  # fmt: skip
def test_check_says_what_a_check_answered_that_is_not_rdns_scorers(
    status: int, body: bytes, said: str
) -> None:
    # Each is one problem (nothing more is asked), in the service's own words, the
    # first 120 characters of them: a reply that is not a check's is not "ok".
    assert _findings({"/v1/check": (status, body), "/readyz": (200, READY)}) == [
        f"problem:   {said}"
    ]


def test_check_says_a_service_whose_readiness_cannot_be_read_is_not_ready() -> None:
    # Only a 200 from /readyz is ready (a proxy that passes /v1/check alone, say).
    assert _findings({"/v1/check": (200, CHECK_REPLY)}) == [
        "ok:        BASE/v1/check answers SpamAssassin's checks",
        "problem:   BASE is not ready (404: Not Found): every check is a zero-weight "
        "TEMPFAIL until its resolver answers (docs/monitoring.md)",
    ]


@pytest.mark.parametrize("path", ["/metrics", "/readyz"])
def test_check_of_a_service_that_took_the_check_then_hung_up_says_it_answered(
    path: str,
) -> None:
    # Regression (review): a service that answered the check and then not /metrics or
    # /readyz (overloaded, stopping) was "nothing answers ... start the service".
    answers = {"/v1/check": (200, CHECK_REPLY), "/metrics": (200, b""), "/readyz": (200, READY)}
    answers[path] = (HANG_UP, b"")
    assert _findings(answers) == [
        "ok:        BASE/v1/check answers SpamAssassin's checks",
        "problem:   BASE answered the check, then not /metrics or /readyz "
        "(RemoteDisconnected): overloaded, stopping, or /readyz waiting on a slow resolver? "
        "read its log",
    ]


def test_check_goes_straight_to_the_service_past_an_http_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As the plugins do: an http_proxy in the environment (nothing listens there) is not
    # asked, and a service that answers is found ok.
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{dead_port()}")
    assert _findings({"/v1/check": (200, CHECK_REPLY), "/readyz": (200, READY)}) == [
        "ok:        BASE/v1/check answers SpamAssassin's checks",
        "ok:        BASE is ready (its resolver answers)",
    ]


def test_check_says_why_nothing_answers() -> None:
    base = f"http://127.0.0.1:{dead_port()}"
    findings = probe.service_findings(base, "/v1/check", None, spamassassin_check.WIRING)
    assert [finding.line() for finding in findings] == [
        f"problem:   nothing answers at {base} ([Errno 111] Connection refused): start the "
        "service (`systemctl status rdns-scorer`), or correct `rdns_scorer_url`"
    ]


@pytest.mark.parametrize("token", [None, ""])
def test_the_probe_sends_no_empty_token(token: str | None) -> None:
    # An empty token is none (both plugins send no Authorization then), not "Bearer ".
    for wiring in (rspamd_check.WIRING, spamassassin_check.WIRING):
        request = probe.plugin_request("http://127.0.0.1:1/v1/check", token, wiring)
        assert request.get_header("Authorization") is None


def test_a_plugin_file_that_is_gone_is_not_this_releases(tmp_path: Path) -> None:
    finding = probe.release_finding(tmp_path / "RdnsScorer.pm", b"shipped", "install it")
    assert not finding.ok and finding.text.endswith("run `install it` to update it")


@pytest.mark.parametrize(
    "error",
    [subprocess.TimeoutExpired(["perl"], 120), ValueError("Expecting value: line 1")],
    ids=["timeout", "no-json"],
)
def test_a_check_that_cannot_tell_says_it_in_one_line(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    # A filter's reader that hangs or prints no JSON: exit 2, one line, no traceback.
    def gather() -> list[probe.Finding]:
        raise error

    assert probe.run_check("spamassassin check", gather, "all well") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"rdns-scorer spamassassin check: {error}\n"
