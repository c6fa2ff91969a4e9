"""`rdns-scorer spamassassin uninstall`: the reverse of install, checked with Debian's real
`spamassassin --lint` on a site config dir of the stock .pre files."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from scorer.cli import build_parser, main
from scorer.integrations import spamassassin
from scorer.integrations.spamassassin import (
    CONFIG,
    OVERLAP,
    PLUGIN,
    Step,
    install,
    plugin_settings_left,
    source_dir,
    uninstall,
)
from tests.support.spamassassin import spamassassin_missing, with_stock_pre_files

# No skip: a missing SpamAssassin must fail loudly (`make test` installs it).
assert spamassassin_missing() is None, spamassassin_missing()

LOCAL_SETTINGS = "rdns_scorer_url http://127.0.0.1:11341/v1/check\nrdns_scorer_token s3cret\n"


def _site(tmp_path: Path) -> Path:
    """A site config dir as a mail admin has one: the stock .pre files and a local.cf."""
    site = with_stock_pre_files(tmp_path / "spamassassin")
    (site / "local.cf").write_text("required_score 5.0\n")
    return site


def _contents(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory``, dotfiles too, with its bytes."""
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def _uninstall(site: Path, *args: str) -> int:
    return main(["spamassassin", "uninstall", "--siteconfigpath", str(site), *args])


@pytest.mark.parametrize("overlap", [False, True], ids=["plain", "overlap"])
def test_uninstall_leaves_the_dir_as_it_was_before_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overlap: bool
) -> None:
    site = _site(tmp_path)
    before = _contents(site)
    argv = ["spamassassin", "install", "--siteconfigpath", str(site)]
    assert main(argv + (["--overlap"] if overlap else [])) == 0
    # An upgrade that keeps nothing edited still leaves dotfiles: those go too.
    assert (site / f".{CONFIG}.rdns-scorer-shipped").exists()
    assert (site / OVERLAP).exists() is overlap
    capsys.readouterr()
    assert _uninstall(site) == 0  # with the real spamassassin --lint
    out = capsys.readouterr().out
    assert _contents(site) == before
    names = [OVERLAP, f".{OVERLAP}.rdns-scorer-shipped"] if overlap else []
    names += [CONFIG, f".{CONFIG}.rdns-scorer-shipped", PLUGIN]  # the plugin last
    assert out == "".join(f"removed   {site / name}\n" for name in names) + (
        f"spamassassin --lint --siteconfigpath {site}: OK\n"
        "restart spamd (or amavis) to unload the plugin\n"
    )


def test_an_edited_config_is_backed_up_not_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path)
    before = _contents(site)
    install(site, source_dir(), overlap=True)
    edited = (site / CONFIG).read_bytes().replace(b"11340", b"11341")
    (site / CONFIG).write_bytes(edited)
    (site / CONFIG).chmod(0o640)  # it may hold the token: the backup keeps the mode
    assert {step.path.name: step.action for step in install(site, source_dir())} == {
        PLUGIN: "unchanged",
        CONFIG: "kept",
        OVERLAP: "unchanged",
    }
    assert (site / f"{CONFIG}.dist").exists()  # the shipped one, offered beside it
    assert _uninstall(site, "--no-lint") == 0
    out = capsys.readouterr().out
    [backup] = site.glob(f"{CONFIG}.rdns-scorer-*.bak")
    assert re.fullmatch(rf"{re.escape(CONFIG)}\.rdns-scorer-\d{{8}}-\d{{6}}\.bak", backup.name)
    assert backup.read_bytes() == edited and backup.stat().st_mode & 0o777 == 0o640
    assert f"kept      {site / CONFIG}  (locally modified; moved to {backup})\n" in out
    for name in (PLUGIN, OVERLAP, f"{CONFIG}.dist", f".{CONFIG}.rdns-scorer-shipped"):
        assert f"removed   {site / name}\n" in out, name  # the unedited overlap file too
    assert "restart spamd (or amavis) to unload the plugin" in out
    assert sorted(_contents(site)) == sorted([*before, backup.name])


def test_a_backup_never_replaces_an_earlier_one(tmp_path: Path) -> None:
    site = _site(tmp_path)
    now = datetime(2026, 1, 2, 3, 4, 5)
    backups = []
    for edit in (b"# first edit\n", b"# second edit\n"):
        install(site, source_dir())
        (site / CONFIG).write_bytes(edit)
        [step] = [step for step in uninstall(site, now=now) if step.action == "kept"]
        backups.append(step.note.removeprefix("locally modified; moved to "))
    assert backups == [
        str(site / f"{CONFIG}.rdns-scorer-20260102-030405.bak"),
        str(site / f"{CONFIG}.rdns-scorer-20260102-030405-1.bak"),
    ]
    assert [Path(backup).read_bytes() for backup in backups] == [
        b"# first edit\n",
        b"# second edit\n",
    ]


def test_an_edited_config_that_cannot_be_moved_keeps_no_second_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The backup is a hard link, then the config's name goes: when that fails, the config
    # stays where SpamAssassin reads it, and no .bak names it a second time (a backup of
    # nothing moved, which the error line would not mention).
    site = _site(tmp_path)
    install(site, source_dir())
    config = site / CONFIG
    config.write_bytes(b"# edited\n")
    unlink = Path.unlink

    def refused(self: Path, missing_ok: bool = False) -> None:
        if self == config:
            raise PermissionError(1, "Operation not permitted")
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(PermissionError):
        list(uninstall(site))
    assert config.read_bytes() == b"# edited\n"
    assert not [path.name for path in site.iterdir() if path.name.endswith(".bak")]


def test_uninstall_twice_has_nothing_to_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path)
    install(site, source_dir(), overlap=True)
    assert _uninstall(site, "--no-lint") == 0
    capsys.readouterr()
    assert _uninstall(site, "--no-lint") == 0
    assert capsys.readouterr().out == "nothing to remove\nnothing changed: no restart needed\n"
    assert list(uninstall(site)) == []


def test_only_leftovers_ask_for_no_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A .dist and a digest record are never read: removing them changes nothing loaded.
    site = _site(tmp_path)
    (site / f"{CONFIG}.dist").write_text("# shipped\n")
    (site / f".{CONFIG}.rdns-scorer-shipped").write_text("0" * 64 + "\n")
    assert _uninstall(site, "--no-lint") == 0
    assert capsys.readouterr().out == (
        f"removed   {site / (CONFIG + '.dist')}\n"
        f"removed   {site / ('.' + CONFIG + '.rdns-scorer-shipped')}\n"
        "nothing changed: no restart needed\n"
    )


def test_settings_left_in_a_local_file_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _site(tmp_path)
    install(site, source_dir())
    local = site / "rdns_scorer_local.cf"  # where README and docs/spamassassin.md say
    local.write_text(LOCAL_SETTINGS + "score RL_PTR_MISSING 3.5\n")
    capsys.readouterr()
    # What the warning says, from the real SpamAssassin: lint fails on each setting,
    # and the uninstall with it (score lines for rules that are gone are no issue).
    assert _uninstall(site) == 1
    out, err = capsys.readouterr()
    assert (
        f"warning:  {local} sets rdns_scorer_url, rdns_scorer_token, unknown to "
        "SpamAssassin without the plugin: 'spamassassin --lint' fails on them ('failed to "
        "parse line'), spamd skips them and logs it; delete them (or the file), or put them "
        "between 'ifplugin Mail::SpamAssassin::Plugin::RdnsScorer' and 'endif'\n"
    ) in out
    assert f"failed to parse line in {local} (line 1): rdns_scorer_url" in err
    assert f"failed to parse line in {local} (line 2): rdns_scorer_token" in err
    assert "lint: 2 issues detected" in err
    assert err.endswith(f"spamassassin --lint --siteconfigpath {site}: FAILED\n")
    assert "restart spamd" not in out
    # Wrapped as the warning says, they pass lint and go unwarned.
    local.write_text(
        "ifplugin Mail::SpamAssassin::Plugin::RdnsScorer\n" + LOCAL_SETTINGS + "endif\n"
    )
    assert _uninstall(site) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and f"--siteconfigpath {site}: OK" in out


def test_the_readme_local_file_lints_with_and_without_the_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's rdns_scorer_local.cf, as shown, passes lint beside the plugin and lets
    uninstall pass lint after it: a new admin who follows it gets no exit 1 there."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = re.search(
        r"^```\n# /etc/spamassassin/(rdns_scorer_local\.cf)\n(.*?)^```",
        readme,
        re.DOTALL | re.MULTILINE,
    )
    assert shown is not None, "README shows no /etc/spamassassin/rdns_scorer_local.cf"
    site = _site(tmp_path)
    argv = ["spamassassin", "install", "--siteconfigpath", str(site)]
    assert main(argv) == 0
    local = site / shown.group(1)
    local.write_text(shown.group(2))
    local.chmod(0o640)
    assert main(argv) == 0  # lints with the plugin: the settings are read
    assert "warning" not in capsys.readouterr().out
    assert _uninstall(site) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and f"--siteconfigpath {site}: OK" in out


def test_settings_left_are_read_as_spamassassin_reads_them(tmp_path: Path) -> None:
    (tmp_path / "a.cf").write_text(
        "# rdns_scorer_url in a comment\n"
        "  RDNS-Scorer-Timeout\t2  # a dash, upper case, after blanks\n"
        "if plugin (Mail::SpamAssassin::Plugin::RdnsScorer)\n"
        "  rdns_scorer_url http://127.0.0.1:11340/v1/check\n"
        "  ifplugin Mail::SpamAssassin::Plugin::DKIM\n"
        "    rdns_scorer_token inside-ours-and-another\n"
        "  endif\n"
        "else\n"
        "  rdns_scorer_holddown 0  # parsed exactly when the plugin is not loaded\n"
        "endif # Mail::SpamAssassin::Plugin::RdnsScorer\n"
        "ifplugin Mail::SpamAssassin::Plugin::DKIM\n"
        "  rdns_scorer_token inside-another-only\n"
        "endif\n"
        "rdns_scorer_timeout 3\n"
    )
    (tmp_path / "b.cf").write_text(
        "ifplugin Mail::SpamAssassin::Plugin::RdnsScorer  # ours\n"
        "rdns_scorer_url http://127.0.0.1:11340/v1/check\n"
        "endif\n"
    )
    (tmp_path / "c.cf.bak").write_text("rdns_scorer_url http://127.0.0.1:11340/v1/check\n")
    assert plugin_settings_left(tmp_path) == {
        tmp_path / "a.cf": ["rdns_scorer_timeout", "rdns_scorer_holddown", "rdns_scorer_token"]
    }


def test_uninstall_refuses_a_missing_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "spamasassin"
    assert _uninstall(missing) == 2
    assert capsys.readouterr().err == (
        f"rdns-scorer spamassassin uninstall: {missing} is not a directory "
        "(SpamAssassin's site config dir, usually /etc/spamassassin)\n"
    )
    assert not missing.exists()


def test_an_error_is_one_line_after_what_was_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _site(tmp_path)
    install(site, source_dir())
    denied = site / PLUGIN
    unlink = Path.unlink

    def refuse(path: Path, missing_ok: bool = False) -> None:
        if path == denied:  # as for a user other than root, or a read-only /etc
            raise PermissionError(13, "Permission denied", str(path))
        unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert _uninstall(site) == 1
    out, err = capsys.readouterr()
    record = site / f".{CONFIG}.rdns-scorer-shipped"
    assert out == f"removed   {site / CONFIG}\nremoved   {record}\n"
    assert err == f"rdns-scorer spamassassin uninstall: {denied}: Permission denied\n"
    # Stopped half-way, the plugin is left without the loadplugin line that named it,
    # never a loadplugin line naming a plugin already gone.
    assert denied.exists() and not (site / CONFIG).exists()


def test_uninstall_defaults_to_etc_spamassassin() -> None:
    args = build_parser().parse_args(["spamassassin", "uninstall"])
    assert args.siteconfigpath == "/etc/spamassassin" and not args.no_lint


def test_a_config_without_a_digest_record_counts_as_edited(tmp_path: Path) -> None:
    # Install's rule: only a file holding the release's version it noted is ours. One
    # copied by hand (docs: "By hand it is the same") is kept as the admin's.
    site = tmp_path / "site"
    site.mkdir()
    for name in (PLUGIN, CONFIG):
        shutil.copyfile(source_dir() / name, site / name)
    steps = list(uninstall(site, now=datetime(2026, 1, 2, 3, 4, 5)))
    backup = site / f"{CONFIG}.rdns-scorer-20260102-030405.bak"
    assert steps == [
        Step(site / CONFIG, "kept", f"locally modified; moved to {backup}"),
        Step(site / PLUGIN, "removed"),
    ]
    assert backup.read_bytes() == (source_dir() / CONFIG).read_bytes()


def test_a_condition_on_the_plugin_in_parentheses_or_negated_is_read_as_spamassassin_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: `if (plugin(...))` (the parentheses of SpamAssassin's own `if (version
    # >= ...)`) and the else branch of `if !plugin(...)` were read as parsed without the
    # plugin: a warning that lint fails on settings the real lint skips, and passes.
    site = _site(tmp_path)
    ours = "Mail::SpamAssassin::Plugin::RdnsScorer"
    (site / "rdns_scorer_local.cf").write_text(
        f"if (plugin({ours}))\nrdns_scorer_url http://127.0.0.1:11341/v1/check\nendif\n"
        f"if !plugin({ours})\nscore RL_PTR_MISSING 0\nelse\nrdns_scorer_timeout 2\nendif\n"
    )
    assert plugin_settings_left(site) == {}
    assert _uninstall(site) == 0  # the real spamassassin --lint agrees
    assert "warning" not in capsys.readouterr().out
    (site / "more.cf").write_text(f"if !plugin({ours})\nrdns_scorer_timeout 2\nendif\n")
    assert plugin_settings_left(site) == {site / "more.cf": ["rdns_scorer_timeout"]}


def test_lint_output_never_shows_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): a token set while the plugin is not loaded is a line lint cannot
    # parse, and lint quotes such lines: uninstall (which leaves just that) printed it.
    site = _site(tmp_path)
    install(site, source_dir())
    (site / "rdns_scorer_local.cf").write_text("RDNS-SCORER-TOKEN s3cretTOK\n")
    assert _uninstall(site) == 1  # the real lint fails on the setting left
    err = capsys.readouterr().err
    assert "s3cretTOK" not in err
    assert "RDNS-SCORER-TOKEN (not shown)" in err


def test_settings_left_in_another_conditions_branches_or_after_a_stray_endif_are_warned_about(
    tmp_path: Path,
) -> None:
    # Either branch of a condition not about the plugin may be parsed without it (the
    # else of `ifplugin ...DKIM` is, when DKIM is not loaded); an endif that closes
    # nothing (lint's to complain about) is no reason to stop reading, nor to crash.
    (tmp_path / "a.cf").write_text(
        "ifplugin Mail::SpamAssassin::Plugin::DKIM\nscore DKIM_VALID 0\nelse\n"
        "rdns_scorer_timeout 2\nendif\n"
    )
    (tmp_path / "b.cf").write_text("endif\nrdns_scorer_url http://127.0.0.1:11340/v1/check\n")
    assert plugin_settings_left(tmp_path) == {
        tmp_path / "a.cf": ["rdns_scorer_timeout"],
        tmp_path / "b.cf": ["rdns_scorer_url"],
    }


def test_settings_left_skip_a_cf_name_that_is_no_readable_file(tmp_path: Path) -> None:
    # A dangling link or a directory named *.cf: not read, the others still are.
    (tmp_path / "gone.cf").symlink_to(tmp_path / "nowhere.cf")
    (tmp_path / "dir.cf").mkdir()
    (tmp_path / "x.cf").write_text("rdns_scorer_token s3cret\n")
    assert plugin_settings_left(tmp_path) == {tmp_path / "x.cf": ["rdns_scorer_token"]}


def test_lint_output_is_all_shown_but_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What lint prints on either stream, each token line's value left out whole (a
    # value written in two words is the secret too).
    def failed(site: Path, _spamassassin: str) -> subprocess.CompletedProcess[str]:
        out = "lint: on stdout\n"
        err = (
            "config: failed to parse line in x.cf (line 1): rdns_scorer_token s3cret more\n"
            "config: failed to parse line in y.cf (line 2): rdns_scorer_token\ts3cret\n"
            "config: invalid 'rdns_scorer_token' value in z.cf (line 3): visible ASCII "
            "without spaces only (the value is not shown)\n"
        )
        return subprocess.CompletedProcess(["spamassassin", "--lint"], 1, out, err)

    monkeypatch.setattr(spamassassin, "lint", failed)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    site = _site(tmp_path)
    assert _uninstall(site) == 1
    err = capsys.readouterr().err
    assert "lint: on stdout\n" in err
    assert "(line 1): rdns_scorer_token (not shown)\n" in err
    assert "(line 2): rdns_scorer_token (not shown)\n" in err
    assert "s3cret" not in err and "more" not in err
    # The plugin's own error quotes no value: shown whole, where to look included.
    assert "invalid 'rdns_scorer_token' value in z.cf (line 3): visible ASCII" in err
