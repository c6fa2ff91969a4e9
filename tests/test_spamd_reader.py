"""Which user spamd reads the site config as (Debian's spamd as shipped: nobody)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from pathlib import Path

import pytest

from scorer.integrations import spamassassin, spamd_reader
from scorer.integrations.spamassassin_local import group_exists
from scorer.integrations.spamd_reader import Reader, can_read
from scorer.integrations.spamd_reader import spamd_reader as host_free_reader


def reader_of(installed: bool, proc: Path, defaults: Path, pidfile: Path) -> Reader:
    """spamd_reader's answer where a spamd reads the config (never None then): the
    function itself, bound before tests/conftest.py stubs the module's for every test."""
    reader = host_free_reader(installed, proc, defaults, pidfile)
    assert reader is not None
    return reader


def _proc(tmp_path: Path, processes: dict[int, tuple[str, int, int]]) -> Path:
    """A fake /proc: pid -> (comm, ppid, uid)."""
    proc = tmp_path / "proc"
    proc.mkdir(parents=True)
    (proc / "self").mkdir()
    for pid, (comm, ppid, uid) in processes.items():
        entry = proc / str(pid)
        entry.mkdir()
        (entry / "comm").write_text(comm + "\n")
        (entry / "status").write_text(
            f"Name:\t{comm}\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        )
    return proc


def test_debian_spamd_as_shipped_reads_its_config_as_nobody(tmp_path: Path) -> None:
    # Regression (review): install --config wrote the token's file 0640 root:debian-spamd
    # for "Debian's spamd", but spamd run as root without -u (spamd.service and
    # /etc/default/spamd as shipped) reads the site config as nobody: it skipped the file
    # (only its log said so), and the plugin asked the default URL without the token.
    defaults = tmp_path / "spamd"
    defaults.write_text('# Options\nOPTIONS="--create-prefs --max-children 5 --helper-home-dir"\n')
    empty = _proc(tmp_path, {})
    pidfile = tmp_path / "spamd.pid"
    assert reader_of(True, empty, defaults, pidfile).user == "nobody"
    assert host_free_reader(False, empty, defaults, pidfile) is None
    # The system's running spamd (its pidfile) as root, whatever its children run as.
    running = _proc(tmp_path / "r", {100: ("spamd", 1, 0), 101: ("spamd", 100, 65534)})
    pidfile.write_text("100\n")
    assert reader_of(True, running, defaults, pidfile) == Reader(
        "nobody", "the running spamd is root without -u: its default user"
    )
    pidfile.write_text("999\n")  # stale: /etc/default/spamd says
    assert reader_of(True, running, defaults, pidfile).how.startswith("spamd as root")


@pytest.mark.parametrize(
    "options", ['"-u debian-spamd -d"', '"--username=debian-spamd"', "'-udebian-spamd'"]
)
def test_spamd_with_u_reads_its_config_as_that_user(tmp_path: Path, options: str) -> None:
    defaults = tmp_path / "spamd"
    defaults.write_text(f"OPTIONS={options}\n")
    pidfile = tmp_path / "spamd.pid"
    assert reader_of(True, _proc(tmp_path, {}), defaults, pidfile).user == "debian-spamd"
    # A running spamd as another user (-u): that user.
    nobody = pwd.getpwnam("nobody")
    running = _proc(tmp_path / "r", {7: ("spamd", 1, nobody.pw_uid)})
    pidfile.write_text("7\n")
    assert reader_of(True, running, defaults, pidfile).user == "nobody"


def test_can_read_follows_the_mode_owner_and_groups(tmp_path: Path) -> None:
    path = tmp_path / "rdns_scorer_local.cf"
    path.write_text("rdns_scorer_token x\n")
    nobody = pwd.getpwnam("nobody")
    path.chmod(0o640)
    if os.getuid() == 0:
        os.chown(path, 0, 0)
        assert can_read(path, "nobody") is False
        os.chown(path, 0, nobody.pw_gid)
        assert can_read(path, "nobody") is True
        assert spamd_reader.primary_group("nobody") == grp.getgrgid(nobody.pw_gid).gr_name
    path.chmod(0o644)
    assert can_read(path, "nobody") is True
    assert can_read(path, "no-such-user-here") is None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown")
def test_install_and_check_say_spamd_cannot_read_the_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    local = site / "rdns_scorer_local.cf"
    local.write_text(
        "ifplugin Mail::SpamAssassin::Plugin::RdnsScorer\nrdns_scorer_token x\nendif\n"
    )
    os.chown(local, 0, 0)
    local.chmod(0o640)
    nobody = Reader("nobody", "spamd as root without -u: its default user")
    monkeypatch.setattr(spamd_reader, "spamd_reader", lambda installed: nobody)
    spamassassin._warn_unreadable_by_spamd(local)
    out = capsys.readouterr().out
    group = spamd_reader.primary_group("nobody")
    assert out.startswith(f"warning:  spamd reads its config as nobody ({nobody.how}), who may")
    assert f"--group {group}" in out
    from scorer.integrations import spamassassin_check

    findings = spamassassin_check._spamd_reader_findings(site, nobody)
    assert [f.ok for f in findings] == [False]
    assert f"{local} sets the plugin, but spamd reads its config as nobody" in findings[0].text
    os.chown(local, 0, pwd.getpwnam("nobody").pw_gid)  # the fix it names
    assert spamassassin_check._spamd_reader_findings(site, nobody) == []
    spamassassin._warn_unreadable_by_spamd(local)
    assert capsys.readouterr().out == ""


def test_install_config_defaults_to_the_group_spamd_reads_its_config_as(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scorer.config import config_from_mapping
    from scorer.integrations.spamassassin_local import local_file

    config = config_from_mapping({"server": {"token": "s3cret-T0k"}})
    nobody = Reader("nobody", "spamd as root without -u: its default user")
    monkeypatch.setattr(spamd_reader, "spamd_reader", lambda installed: nobody)
    nogroup = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_gid
    assert local_file(config, None).gid == nogroup
    amavis = local_file(config, "root")  # --group wins
    assert amavis.gid == 0
    monkeypatch.setattr(spamd_reader, "spamd_reader", lambda installed: None)  # no spamd
    expected = grp.getgrnam("debian-spamd").gr_gid if group_exists("debian-spamd") else None
    assert local_file(config, None).gid == expected


def test_check_names_the_group_spamd_reads_as_for_an_owner_only_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): the fix named for a 0600 file was chown ...:debian-spamd, which
    # Debian's spamd as shipped (reading its config as nobody) cannot read either.
    from scorer.integrations import spamassassin_check

    site = tmp_path / "site"
    site.mkdir()
    local = site / "zz_local.cf"
    local.write_text("rdns_scorer_token s3cret\n")
    local.chmod(0o600)
    nobody = Reader("nobody", "spamd as root without -u: its default user")
    monkeypatch.setattr(spamd_reader, "spamd_reader", lambda installed: nobody)
    monkeypatch.setattr(spamassassin_check, "_overlap_findings", lambda *args: [])
    view = {"loaded": True, "file": "", "driver_score": 0.001, "errors": 0}
    monkeypatch.setattr(spamassassin_check.probe, "release_finding", lambda *a: None)
    findings = [f for f in spamassassin_check._plugin_findings(view, site) if f is not None]
    group = spamd_reader.primary_group("nobody")
    texts = [f.text for f in findings if not f.ok]
    assert len(texts) == 1, texts
    assert f"chown {local.owner()}:{group} {local} && chmod 640 {local}" in texts[0]


def test_spamd_installed_but_not_enabled_is_not_asked_about(tmp_path: Path) -> None:
    # amavis users may have the spamd package without running it: no spamd reads the
    # config then, and a 0640 root:amavis file is no problem.
    if shutil.which("spamd") is None and not Path("/usr/sbin/spamd").is_file():
        pytest.skip("spamd is not installed")
    systemd = tmp_path / "system"
    systemd.mkdir()
    running = spamd_reader._running_spamd_uid(spamd_reader.SPAMD_PIDFILE, spamd_reader.PROC)
    assert spamd_reader.spamd_installed(systemd) is (running is not None)
    (systemd / "multi-user.target.wants").mkdir()
    (systemd / "multi-user.target.wants" / "spamd.service").symlink_to("/dev/null")
    assert spamd_reader.spamd_installed(systemd)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to chown")
def test_install_and_check_say_amavis_cannot_read_the_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): on an amavis host without spamd, install --config wrote the
    # token's file root:debian-spamd 0640, which SpamAssassin in amavis (user amavis)
    # cannot read: it went on without the file, asked the default URL with no token and
    # failed open on every message, while install and check (run as root, reading the
    # token) said all was well. "daemon" stands in for amavis: a user that is not root
    # and in neither debian-spamd nor nogroup.
    from scorer.config import config_from_mapping
    from scorer.integrations import spamassassin_check
    from scorer.integrations.spamassassin_local import install_local, local_file

    stand_in = "daemon"
    monkeypatch.setattr(spamd_reader, "AMAVIS_USER", stand_in)
    monkeypatch.setattr(
        spamd_reader,
        "amavis_reader",
        lambda: Reader(stand_in, "amavisd-new runs SpamAssassin as it"),
    )
    site = tmp_path / "site"
    site.mkdir()
    config = config_from_mapping({"server": {"token": "s3cret-T0k"}})
    local = site / "rdns_scorer_local.cf"
    group = spamd_reader.primary_group(stand_in)
    # Without a spamd, the default is amavis's group (the next test); a group given that
    # amavis is not in is what is warned about.
    install_local(site, local_file(config, "nogroup"))
    assert can_read(local, stand_in) is False
    spamassassin._warn_unreadable_by_spamd(local)
    out = capsys.readouterr().out
    assert out.startswith(f"warning:  amavis reads its config as {stand_in} (amavisd-new"), out
    assert f"--group {group}" in out
    findings = spamassassin_check._spamd_reader_findings(site, spamd_reader.amavis_reader())
    assert [f.ok for f in findings] == [False]
    assert f"{local} sets the plugin, but amavis reads its config as {stand_in}" in findings[0].text
    monkeypatch.setattr(spamassassin_check, "_overlap_findings", lambda *args: [])
    monkeypatch.setattr(spamassassin_check.probe, "release_finding", lambda *a: None)
    view = {"loaded": True, "file": "", "driver_score": 0.001, "errors": 0}
    texts = [f.text for f in spamassassin_check._plugin_findings(view, site) if f and not f.ok]
    assert any("amavis reads its config as" in text for text in texts), texts
    install_local(site, local_file(config, group))  # the fix it names: --group amavis
    assert spamassassin_check._spamd_reader_findings(site, spamd_reader.amavis_reader()) == []
    spamassassin._warn_unreadable_by_spamd(local)
    assert capsys.readouterr().out == ""


def test_the_token_file_is_amavis_s_by_default_where_no_spamd_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): on an amavis host without spamd, install --config gave the
    # token's file to debian-spamd, which SpamAssassin in amavis cannot read: every
    # message failed open. Where a spamd reads the config, its user's group wins.
    from scorer.config import config_from_mapping
    from scorer.integrations.spamassassin_local import install_local, local_file

    stand_in = "daemon"  # a user that is not root and in neither debian-spamd nor nogroup
    monkeypatch.setattr(spamd_reader, "amavis_reader", lambda: Reader(stand_in, "amavis"))
    config = config_from_mapping({"server": {"token": "s3cret-T0k"}})
    site = tmp_path / "site"
    site.mkdir()
    install_local(site, local_file(config, None))
    local = site / "rdns_scorer_local.cf"
    assert grp.getgrgid(local.stat().st_gid).gr_name == spamd_reader.primary_group(stand_in)
    assert can_read(local, stand_in) is True
    monkeypatch.setattr(spamd_reader, "system_reader", lambda: Reader("nobody", "spamd"))
    assert local_file(config, None).gid == grp.getgrnam(spamd_reader.primary_group("nobody")).gr_gid
