"""`rdns-scorer spamassassin install --config FILE`: the plugin's URL, timeout and token
written from the service's config (scorer/integrations/spamassassin_local.py), against
the real SpamAssassin and a real service."""

from __future__ import annotations

import grp
from collections.abc import Callable
from pathlib import Path

import pytest

from scorer.cli import main
from scorer.integrations.spamassassin import LOCAL_EXAMPLE
from tests.support.service import ScorerProcess
from tests.support.spamassassin import spamassassin_missing, with_stock_pre_files
from tests.support.unbound import Unbound

# No skip: a missing SpamAssassin must fail loudly (`make test` installs it).
assert spamassassin_missing() is None, spamassassin_missing()


def _install(site: Path, config: Path, *options: str) -> int:
    argv = ["spamassassin", "install", "--siteconfigpath", str(site), "--config", str(config)]
    return main([*argv, *options])


def test_install_with_the_service_config_wires_spamassassin_to_it(
    tmp_path: Path, unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    # The step README leaves to the admin, done from the service's own config: check then
    # finds SpamAssassin asking the service with its token, and lint passes.
    site = with_stock_pre_files(tmp_path / "spamassassin")
    service = ScorerProcess(unbound.nameserver)
    service.config_path.write_text(
        f'[server]\nlisten = "{service.address}"\ntoken = "s3cret-T0k"\n'
        "[dns]\nrequest_deadline = 1.5\n"
    )
    service.start()
    try:
        assert _install(site, service.config_path) == 0
        out = capsys.readouterr().out
        local = site / LOCAL_EXAMPLE
        assert f"installed {local}" in out.splitlines()
        assert "s3cret" not in out and "next:" not in out
        assert f"spamassassin --lint --siteconfigpath {site}: OK" in out
        text = local.read_text()
        assert f"rdns_scorer_url     {service.url}/v1/check\n" in text
        assert "rdns_scorer_timeout 1.7\n" in text  # request_deadline + 0.2 s
        assert "rdns_scorer_token   s3cret-T0k\n" in text
        info = local.stat()
        assert info.st_mode & 0o777 == 0o640
        assert info.st_gid == grp.getgrnam("debian-spamd").gr_gid
        assert main(["spamassassin", "check", "--siteconfigpath", str(site)]) == 0
        checked = capsys.readouterr().out
        assert f"ok:        {service.url}/v1/check answers SpamAssassin's checks" in checked
        # Again: unchanged; uninstall takes it away with the rest.
        assert _install(site, service.config_path, "--no-lint") == 0
        assert f"unchanged {local}" in capsys.readouterr().out.splitlines()
    finally:
        service.stop()
    assert main(["spamassassin", "uninstall", "--siteconfigpath", str(site), "--no-lint"]) == 0
    assert f"removed   {site / LOCAL_EXAMPLE}" in capsys.readouterr().out.splitlines()
    assert not (site / LOCAL_EXAMPLE).exists()


def test_a_file_of_the_admins_under_that_name_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    local = site / LOCAL_EXAMPLE
    mine = "rdns_scorer_url http://10.0.0.5:11340/v1/check\n"
    local.write_text(mine)
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\ntoken = "s3cret"\n')
    assert _install(site, config, "--no-lint") == 0
    assert f"kept      {local}  (yours: set rdns_scorer_url and rdns_scorer_token in it)" in (
        capsys.readouterr().out.splitlines()
    )
    assert local.read_text() == mine
    assert main(["spamassassin", "uninstall", "--siteconfigpath", str(site), "--no-lint"]) == 0
    assert local.read_text() == mine  # not install's: never removed


def _installed_with_a_token(tmp_path: Path) -> tuple[Path, Path]:
    """A site dir where install --config wrote its file for a service with a token: the
    site dir and the service's config."""
    site = tmp_path / "site"
    site.mkdir()
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\ntoken = "s3cret"\n')
    assert _install(site, config, "--no-lint") == 0
    return site, config


def _installed_then_edited(tmp_path: Path, edit: Callable[[str], str]) -> tuple[Path, Path, str]:
    """``_installed_with_a_token``, its file edited by ``edit`` and the service's config
    changed since (a new token): the site dir, the service's config, the edit."""
    site, config = _installed_with_a_token(tmp_path)
    local = site / LOCAL_EXAMPLE
    edited = edit(local.read_text())
    local.write_text(edited)
    config.write_text('[server]\ntoken = "n3w-s3cret"\n')
    return site, config, edited


def test_lines_the_admin_adds_after_the_settings_stay_through_install_and_uninstall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): docs/spamassassin.md and rdns_scorer.cf have the admin put
    # "score RL_... n" in rdns_scorer_local.cf, the file install --config owns: the next
    # install --config rewrote it and uninstall deleted it, the lines lost unsaid.
    mine = "\n# mine\nscore RL_PTR_MISSING 3.5\n"
    site, config, _ = _installed_then_edited(tmp_path, lambda text: text + mine)
    local = site / LOCAL_EXAMPLE
    capsys.readouterr()
    assert _install(site, config, "--no-lint") == 0
    assert f"updated   {local}  (your lines after its endif kept)" in capsys.readouterr().out
    text = local.read_text()
    assert "rdns_scorer_token   n3w-s3cret\n" in text and text.endswith("endif\n" + mine)
    assert _install(site, config, "--no-lint") == 0
    assert f"unchanged {local}" in capsys.readouterr().out.splitlines()
    assert main(["spamassassin", "uninstall", "--siteconfigpath", str(site), "--no-lint"]) == 0
    (kept,) = [line for line in capsys.readouterr().out.splitlines() if str(local) in line]
    assert kept.startswith(f"kept      {local}  (holds lines of yours; moved to ")
    assert not local.exists()
    (backup,) = site.glob(f"{LOCAL_EXAMPLE}.rdns-scorer-*.bak")
    assert backup.read_text() == text


def test_settings_the_admin_edited_in_place_are_kept_and_the_new_ones_offered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = "rdns_scorer_timeout_typo 2\n"
    site, config, edited = _installed_then_edited(
        tmp_path, lambda text: text.replace("endif\n", inside + "endif\n")
    )
    local = site / LOCAL_EXAMPLE
    capsys.readouterr()
    assert _install(site, config, "--no-lint") == 0
    dist = site / f"{LOCAL_EXAMPLE}.dist"
    assert (
        f"kept      {local}  (its settings edited; this config's are in {dist}: copy them in)"
        in (capsys.readouterr().out.splitlines())
    )
    assert local.read_text() == edited and "n3w-s3cret" in dist.read_text()
    assert dist.stat().st_mode & 0o777 == 0o640  # it holds the token too
    assert main(["spamassassin", "uninstall", "--siteconfigpath", str(site), "--no-lint"]) == 0
    assert not local.exists() and not dist.exists()
    (backup,) = site.glob(f"{LOCAL_EXAMPLE}.rdns-scorer-*.bak")
    assert backup.read_text() == edited
    # Once the new settings are copied in (the admin's line moved after endif), the
    # .dist, a stale copy of the token, goes at the next install.
    local.write_text(edited)
    assert _install(site, config, "--no-lint") == 0 and dist.exists()
    local.write_text(dist.read_text() + inside)
    assert _install(site, config, "--no-lint") == 0
    assert not dist.exists()


def test_without_a_token_the_file_is_readable_and_sends_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\nlisten = "[::]:11345"\n')  # a wildcard: its loopback
    assert _install(site, config, "--no-lint") == 0
    capsys.readouterr()
    local = site / LOCAL_EXAMPLE
    assert local.stat().st_mode & 0o777 == 0o644
    text = local.read_text()
    assert "rdns_scorer_url     http://[::1]:11345/v1/check\n" in text
    assert "rdns_scorer_timeout 1\n" in text and "rdns_scorer_token" not in text


@pytest.mark.parametrize(
    ("server", "options", "said"),
    [
        # rdns_scorer_url takes an address (a name's lookup would block every message).
        ('listen = "localhost:11340"\n', (), "[server] listen localhost:11340 names a host"),
        ('token = "s3cret"\n', ("--group", "no-such-group"), "--group no-such-group: no such"),
        ("workers = -1\n", (), "[server] workers"),  # a config that does not load
    ],
)
def test_what_install_cannot_write_is_one_error_and_no_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    server: str,
    options: tuple[str, ...],
    said: str,
) -> None:
    """Regression (review): the plugin and its config were installed before the
    service's config was read, so one it could not use left them in place without a
    word: at spamd's next start the plugin asked 127.0.0.1:11340 without the token."""
    site = tmp_path / "site"
    site.mkdir()
    config = tmp_path / "scorer.toml"
    config.write_text("[server]\n" + server)
    assert _install(site, config, "--no-lint", *options) == 1
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert not list(site.iterdir())


def test_without_spamds_group_the_file_is_roots_alone_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never wider than the token allows: 0600 (spamd run as root reads it), and a warning
    # naming --group for the account that must read it.
    from scorer.integrations import spamassassin_local

    monkeypatch.setattr(spamassassin_local, "DEFAULT_GROUP", "no-such-group")
    site, _ = _installed_with_a_token(tmp_path)
    local = site / LOCAL_EXAMPLE
    assert local.stat().st_mode & 0o777 == 0o600
    assert (
        f"warning:  {local}: no group no-such-group: it is readable by root only; give "
        "--group GROUP, the one spamd or amavis runs as"
    ) in capsys.readouterr().out.splitlines()
