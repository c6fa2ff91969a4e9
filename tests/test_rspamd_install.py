"""The rspamd integration's Python side: the plugin's symbol table, `rdns-scorer rspamd config`
and `rdns-scorer rspamd install` (against a copy of the stock Debian /etc/rspamd)."""

from __future__ import annotations

import json
import os
import pwd
import re
import resource
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scorer import __version__
from scorer.cli import build_parser, main
from scorer.config import MAX_NUMBER, config_from_mapping
from scorer.connections import REFUSED_REPLY
from scorer.integrations import CHECKOUT, probe, rspamd_check, spamassassin_check
from scorer.integrations import rspamd as integration
from scorer.protocol import MAX_FIELD_CHARS
from scorer.symbols import SYMBOLS, Family
from tests.support.fakedns import dead_port
from tests.support.ports import tcp_listener
from tests.support.rspamd import DEAD_RESOLV_CONF, dumped_whole, with_private_files
from tests.support.service import ScorerProcess
from tests.support.unbound import Unbound

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "lua" / "rdns_scorer.lua"
EXAMPLE = REPO / "lua" / "rdns_scorer.conf"
STOCK_CONFDIR = Path("/etc/rspamd")


# -- the plugin's copy of the symbol table ---------------------------------------------


def test_plugin_symbol_table_equals_scorer_symbols() -> None:
    embedded = integration.embedded_symbols_block(PLUGIN.read_text())
    assert embedded == integration.lua_symbols_block(), (
        "lua/rdns_scorer.lua's SYMBOLS differ from scorer/symbols.py; run "
        "`rdns-scorer rspamd symbols --write lua/rdns_scorer.lua`"
    )


def test_plugin_symbol_names_parse_back() -> None:
    # Independent of the renderer: read the names and families straight out of the Lua.
    block = integration.embedded_symbols_block(PLUGIN.read_text())
    rows = re.findall(r'^  \{ "([A-Z0-9_]+)", "([a-z]+)", ', block, re.MULTILINE)
    assert rows == [(s.name, str(s.family)) for s in SYMBOLS.values()]
    plugin_side = {name for name, family in rows if family == Family.PLUGIN}
    assert plugin_side == {"RL_SCORER_FAIL", "RL_SCORER_UNKNOWN"}


def test_plugin_cuts_fields_where_the_service_does() -> None:
    found = re.search(r"^local MAX_FIELD_OCTETS = (\d+)$", PLUGIN.read_text(), re.MULTILINE)
    assert found is not None
    assert int(found.group(1)) == MAX_FIELD_CHARS


def test_plugin_bounds_scores_where_the_service_bounds_weights() -> None:
    found = re.search(r"^local MAX_SCORE = (\d+)$", PLUGIN.read_text(), re.MULTILINE)
    assert found, "MAX_SCORE not found in the plugin"
    assert int(found.group(1)) == MAX_NUMBER


def test_lua_strings_are_escaped() -> None:
    assert integration._lua_string('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    # A line break would end the Lua string literal (a syntax error loading the plugin).
    assert integration._lua_string("two\nlines") == '"two\\nlines"'


def test_ucl_strings_are_escaped() -> None:
    assert integration._ucl_string('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


@pytest.mark.parametrize(
    "source",
    [
        f"{integration.SYMBOLS_BEGIN}\nlocal SYMBOLS = {{}}\n",  # no end marker
        f"local SYMBOLS = {{}}\n{integration.SYMBOLS_END}\n",  # no begin marker
    ],
)
def test_a_symbol_table_needs_both_markers(source: str) -> None:
    with pytest.raises(ValueError, match="no symbol table between"):
        integration.embedded_symbols_block(source)


def test_the_symbol_table_ends_at_the_end_marker_after_it() -> None:
    # An end marker mentioned before the table (in a comment) is not the table's end.
    block = integration.lua_symbols_block()
    source = f"-- the table ends at {integration.SYMBOLS_END}\n{block}return SYMBOLS\n"
    assert integration.embedded_symbols_block(source) == block


def test_sync_symbols_rewrites_only_the_block(tmp_path: Path) -> None:
    stale = PLUGIN.read_text().replace('"RL_PTR_MISSING", "ptr"', '"RL_PTR_GONE", "ptr"')
    target = tmp_path / "rdns_scorer.lua"
    target.write_text(stale)
    assert integration.sync_symbols(target) is True
    assert target.read_text() == PLUGIN.read_text()
    assert integration.sync_symbols(target) is False
    # Only the table itself: a copy of the stale block further down (quoted in a
    # comment, say) is the author's text and stays.
    stale_block = integration.embedded_symbols_block(stale)
    target.write_text(stale + "--[[\n" + stale_block + "]]\n")
    assert integration.sync_symbols(target) is True
    assert target.read_text() == PLUGIN.read_text() + "--[[\n" + stale_block + "]]\n"
    # The end marker on the file's last line, without a line break (regression: it
    # said "updated" and changed nothing).
    target.write_text(stale[: stale.index(stale_block)] + stale_block[:-1])
    assert integration.sync_symbols(target) is True
    assert integration.embedded_symbols_block(target.read_text()) == integration.lua_symbols_block()


def test_cli_symbols_prints_or_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rspamd", "symbols"]) == 0
    assert capsys.readouterr().out == integration.lua_symbols_block()
    target = tmp_path / "rdns_scorer.lua"
    target.write_text(PLUGIN.read_text().replace('"RL_PTR_MISSING", "ptr"', '"RL_GONE", "ptr"'))
    assert main(["rspamd", "symbols", "--write", str(target)]) == 0
    assert capsys.readouterr().out == f"{target}: updated\n"
    assert main(["rspamd", "symbols", "--write", str(target)]) == 0
    assert capsys.readouterr().out == f"{target}: already up to date\n"
    assert target.read_text() == PLUGIN.read_text()


def test_sync_symbols_names_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): a missing file or one without the markers was a traceback.
    missing, unmarked = tmp_path / "missing.lua", tmp_path / "unmarked.lua"
    unmarked.write_text("-- no table here\n")
    for path, why in ((missing, "No such file"), (unmarked, "no symbol table between")):
        assert main(["rspamd", "symbols", "--write", str(path)]) == 1
        assert why in capsys.readouterr().err


def test_luacheck_is_clean() -> None:
    if shutil.which("luacheck") is None:
        pytest.fail("luacheck is not installed (`make test` installs it)")
    done = subprocess.run(
        ["luacheck", "--no-color", "-q", "lua"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- locating the plugin ---------------------------------------------------------------


def test_plugin_dir_finds_the_checkout() -> None:
    found = integration.plugin_dir()
    assert (found / "rdns_scorer.lua").read_text() == PLUGIN.read_text()
    assert (found / "rdns_scorer.conf").is_file()


# -- rdns-scorer rspamd config ---------------------------------------------------------


def test_section_defaults() -> None:
    # No check_local/check_authed (regression): in the module section they made rspamd
    # ignore the admin's `options { check_authed = true; }`.
    section = integration.module_section(config_from_mapping({}))
    assert section == (
        'rdns_scorer {\n  servers = "127.0.0.1:11340";\n  path = "/v1/check";\n  timeout = 1s;\n}\n'
    )


@pytest.mark.parametrize(
    ("listen", "servers"),
    [
        ("127.0.0.1:11999", "127.0.0.1:11999"),
        ("0.0.0.0:11340", "127.0.0.1:11340"),
        ("[::]:11340", "[::1]:11340"),
        ("[2001:db8::5]:2525", "[2001:db8::5]:2525"),
        ("10.0.0.5:11340", "10.0.0.5:11340"),
    ],
)
def test_section_servers_follow_listen(listen: str, servers: str) -> None:
    section = integration.module_section(config_from_mapping({"server": {"listen": listen}}))
    assert f'servers = "{servers}";' in section


def test_section_carries_the_token() -> None:
    config = config_from_mapping({"server": {"token": "a+B/9-._~=="}})
    assert 'token = "a+B/9-._~==";' in integration.module_section(config)


def test_section_timeout_stays_above_service_deadline() -> None:
    config = config_from_mapping({"dns": {"request_deadline": 1.5}})
    assert "timeout = 1.7s;" in integration.module_section(config)


def test_section_timeout_is_never_below_the_plugins_default() -> None:
    config = config_from_mapping({"dns": {"request_deadline": 0.3}})
    assert "timeout = 1s;" in integration.module_section(config)


def test_section_timeout_stays_below_rspamds_task_timeout() -> None:
    # Regression (review): request_deadline 8 wrote "timeout = 8.2s;", which the plugin
    # refuses (at or above task_timeout) and replaces by 1 s: slow checks failed open.
    section = integration.module_section(config_from_mapping({"dns": {"request_deadline": 8}}))
    assert "timeout = 7.5s;" in section
    assert "request_deadline 8 s leaves no room below rspamd's task_timeout" in section


def test_cli_config_prints_the_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "scorer.toml"
    conf.write_text('[server]\nlisten = "127.0.0.1:12000"\ntoken = "abc"\n')
    assert main(["rspamd", "config", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rdns_scorer {\n")
    assert 'servers = "127.0.0.1:12000";' in out
    assert 'token = "abc";' in out
    # --listen beats the file's, as it does for `serve`.
    assert main(["rspamd", "config", "--config", str(conf), "--listen", "[::]:12001"]) == 0
    out = capsys.readouterr().out
    assert 'servers = "[::1]:12001";' in out and 'token = "abc";' in out


# -- rdns-scorer rspamd install --------------------------------------------------------


def _backups(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.rdns-scorer-*.bak"))


def test_managed_block_is_replaced_not_duplicated() -> None:
    first = integration.with_managed_block("# mine\nfoo { bar = 1; }\n", "A\n")
    second = integration.with_managed_block(first, "B\n")
    assert second.count(integration.MARK_BEGIN) == 1
    assert "A\n" not in second and "B\n" in second
    assert second.startswith("# mine\nfoo { bar = 1; }\n")


@pytest.mark.parametrize("after", [" (do not edit)", "\r", ""])
def test_the_end_markers_whole_line_is_replaced(after: str) -> None:
    # Regression (review): only the marker's own characters were replaced, so text after
    # it on its line (an admin's note, a CRLF's \r) stayed behind as a line of its own:
    # " (do not edit)" is a UCL syntax error.
    text = f"# mine\n{integration.MARK_BEGIN}\nA\n{integration.MARK_END}{after}\nafter {{}}\n"
    replaced = integration.with_managed_block(text, "B\n")
    assert replaced == f"# mine\n{integration.MARK_BEGIN}\nB\n{integration.MARK_END}\nafter {{}}\n"
    last = f"# mine\n{integration.MARK_BEGIN}\nA\n{integration.MARK_END}{after}"  # no line end
    assert integration.with_managed_block(last, "B\n").endswith(f"{integration.MARK_END}\n")


def test_managed_block_without_end_marker_is_refused() -> None:
    with pytest.raises(ValueError):
        integration.with_managed_block(f"{integration.MARK_BEGIN}\nrdns_scorer {{}}\n", "B\n")


@pytest.mark.parametrize(
    "hand",
    ['rdns_scorer {\n  servers = "10.9.9.9:11340";\n}\n', '"rdns_scorer" = {\n}\n',
     'rdns_scorer: {\n}\n', '"rdns_scorer": {\n}\n', '  \trdns_scorer {\n}\n'],
)  # fmt: skip
def test_a_section_written_by_hand_is_not_doubled(tmp_path: Path, hand: str) -> None:
    # Regression (review): a section written by hand (docs/rspamd.md, "By hand") got
    # our block beside it, configtest OK, and rspamd merged the two: its check_local,
    # token or servers stayed in force, or beat ours, without a word.
    local = tmp_path / "rspamd.conf.local"
    local.write_text(f"# mine\n{hand}")
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert not report.ok
    assert any("line 2 (outside the managed block) has an rdns_scorer section" in line
               for line in report.lines), report.lines  # fmt: skip
    assert local.read_text() == f"# mine\n{hand}"
    assert not (tmp_path / "plugins.d").exists()
    local.write_text(f"# {hand}")  # commented out: fine
    assert integration.install(tmp_path, section, rspamadm=None).ok
    # After ours, with the block's own lines counted.
    text = integration.with_managed_block("", "rdns_scorer {\n}\n") + "\nrdns_scorer {}\n"
    with pytest.raises(ValueError, match=r"^line 6 "):
        integration.with_managed_block(text, "rdns_scorer {\n}\n")


def test_a_section_of_settings_install_never_writes_stays_beside_the_block(
    tmp_path: Path,
) -> None:
    # Regression (journey review): check_authed, holddown and the like had no place once
    # install wrote the section: edits inside the block are lost at the next install, and
    # a section outside it was refused. rspamd merges the two (tested: the plugin logged
    # check_authed=true and checked an authenticated sender), so one setting only keys
    # install never writes may stay; one setting any of install's keys may not.
    local = tmp_path / "rspamd.conf.local"
    mine = "# mine\nrdns_scorer {\n  check_authed = true; # SMTP AUTH too\n  holddown = 30s;\n}\n"
    local.write_text(mine)
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok, report.lines
    assert local.read_text().startswith(mine) and section in local.read_text()
    assert integration.install(tmp_path, section, rspamadm=None).ok  # and again
    local.write_text('rdns_scorer {\n  check_authed = true;\n  token = "x";\n}\n')
    report = integration.install(tmp_path, section, rspamadm=None)
    assert not report.ok
    assert any(
        "line 1 (outside the managed block) has an rdns_scorer section setting token "
        "already" in line
        for line in report.lines
    ), report.lines
    # A macro could set anything: refused too.
    local.write_text('rdns_scorer {\n  .include "/etc/rspamd/mine.conf"\n}\n')
    assert not integration.install(tmp_path, section, rspamadm=None).ok
    # docs/rspamd.md's example of such a section is one.
    (example,) = [b for b in _doc_blocks() if "outside the rdns-scorer markers" in b]
    local.write_text(example)
    assert integration.install(tmp_path, section, rspamadm=None).ok


@pytest.mark.parametrize(
    ("mine", "said"),
    [
        # rspamd 3.4 reads `enabled` in the first rdns_scorer section alone (rspamadm
        # configdump -m: "Modules enabled: ... rdns_scorer" with `enabled = false` in a
        # section after install's block), where the plugin merges them (get_all_opt).
        ("rdns_scorer {\n  enabled = false;\n}\n", "setting enabled already"),
        # The weights' group written inside the section: the plugin refuses a group that
        # is no text, and rspamd disables the module ("disabled (unconfigured)"), while
        # configtest passes.
        (
            'rdns_scorer {\n  check_authed = true;\n  group "rdns_scorer" { max_score = 5; }\n}\n',
            "setting group to a block or list already",
        ),
        ('rdns_scorer {\n  group = ["a", "b"];\n}\n', "setting group to a block or list"),
        # A key twice is a list to rspamd: "holddown must be a time of 0 or more, got {...}".
        ("rdns_scorer {\n  holddown = 5s;\n  holddown = 6s;\n}\n", "setting holddown twice"),
    ],
)
def test_a_section_of_the_admins_that_would_not_work_beside_the_block_is_refused(
    tmp_path: Path, mine: str, said: str
) -> None:
    # Regression (review): each of these was left beside install's block, and rspamd
    # ignored it (enabled) or disabled the module (a list where the plugin takes one
    # value), configtest passing.
    local = tmp_path / "rspamd.conf.local"
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    local.write_text(local.read_text() + mine)
    report = integration.install(tmp_path, section, rspamadm=None)
    assert not report.ok
    assert any(said in line for line in report.lines), report.lines
    # Its weights' group at the top level is no section of the module's, and stays.
    local.write_text(
        local.read_text().replace(mine, 'group "rdns_scorer" {\n  max_score = 5;\n}\n')
    )
    assert integration.install(tmp_path, section, rspamadm=None).ok


def test_check_and_install_name_a_module_file_rspamd_never_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (journey review): local.d/rdns_scorer.conf, where an admin used to
    # rspamd's own modules puts settings (lua/rdns_scorer.conf is named so), is never read
    # for a custom module: its check_authed (or a token) did nothing, and install and check
    # both said all was well.
    (tmp_path / "local.d").mkdir()
    unread = tmp_path / "local.d" / "rdns_scorer.conf"
    unread.write_text("check_authed = true;\n")
    lines = _asked_by_check(
        tmp_path, monkeypatch, "Modules enabled: rdns_scorer", '{"servers": "127.0.0.1:11341"}'
    )
    said = (
        f"{unread} is never read: rspamd reads local.d/ and override.d/ files for its own "
        "modules only"
    )
    assert any(line.startswith(f"problem:   {said}") for line in lines), lines
    # Regression (review): it said to move all of it beside install's markers, where a
    # timeout (or path) is refused: only the keys install leaves to the admin go there.
    (problem,) = [line for line in lines if line.startswith(f"problem:   {said}")]
    assert (
        "move check_local, check_authed, holddown, holddown_after, keepalive, group into" in problem
    )
    assert "timeout come from the service's config" in problem
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok
    assert any(line.startswith(f"note:      {said}") for line in report.lines), report.lines
    unread.unlink()
    lines = _asked_by_check(
        tmp_path, monkeypatch, "Modules enabled: rdns_scorer", '{"servers": "127.0.0.1:11341"}'
    )
    assert not [line for line in lines if line.startswith("problem")], lines


@pytest.mark.parametrize("where", ["local.d", "override.d"])
def test_check_and_install_name_a_group_file_rspamd_never_reads(
    stock_confdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    # Regression (journey review): local.d/rdns_scorer_group.conf, where an admin used to
    # rspamd's local.d/hfilter_group.conf puts our weights, is never read (groups.conf
    # includes *_group.conf for rspamd's own groups only): its weights did nothing, and
    # install and check both said all was well. local.d/groups.conf is read.
    (stock_confdir / where).mkdir(exist_ok=True)
    unread = stock_confdir / where / "rdns_scorer_group.conf"
    unread.write_text('symbols {\n  "RL_PTR_GENERIC" { weight = 0.25; }\n}\n')
    (stock_confdir / "local.d" / "groups.conf").write_text(
        'group "rdns_scorer" {\n  symbols { "RL_PTR_MISSING" { weight = 0.5; } }\n}\n'
    )
    dumped = _configdump(stock_confdir, "group")
    assert "RL_PTR_MISSING" in dumped and "RL_PTR_GENERIC" not in dumped  # rspamd's view
    said = f"{unread} is never read: rspamd's groups.conf includes"
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(stock_confdir, section, rspamadm=None)
    assert report.ok
    assert any(line.startswith(f"note:      {said}") for line in report.lines), report.lines
    lines = _asked_by_check(
        stock_confdir, monkeypatch, "Modules enabled: rdns_scorer", '{"servers": "127.0.0.1:1"}'
    )
    assert any(line.startswith(f"problem:   {said}") for line in lines), lines
    assert not any("groups.conf is never read" in line for line in lines), lines


def test_install_removes_a_byte_order_mark_that_hides_the_admins_section(
    stock_confdir: Path,
) -> None:
    # Regression (review): an editor's UTF-8 BOM before `rdns_scorer {` made rspamd 3.4
    # read the key as "\ufeffrdns_scorer" (configdump shows it so), ignoring the admin's
    # check_authed while configtest passed; install appended its block and said nothing.
    local = stock_confdir / "rspamd.conf.local"
    local.write_bytes(b"\xef\xbb\xbfrdns_scorer {\n  check_authed = true;\n}\n")
    assert "check_authed" not in _configdump(stock_confdir, "rdns_scorer")  # rspamd's view
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(stock_confdir, section, rspamadm=None)
    assert report.ok, report.lines
    assert (
        f"note:      removed the UTF-8 byte-order mark at the start of {local}: rspamd read "
        "it as part of the first key"
    ) in report.lines
    assert local.read_bytes().startswith(b"rdns_scorer {\n  check_authed = true;\n}\n")
    dumped = _configdump(stock_confdir, "-j", "rdns_scorer")
    assert rspamd_check.merged_sections(dumped)["check_authed"] is True
    assert "\ufeff" not in _configdump(stock_confdir)
    # The backup keeps the file as it was, mark and all.
    (backup,) = _backups(stock_confdir)
    assert backup.read_bytes().startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    ("name", "fix"),
    [("rspamd.conf.local", "run install again, which removes it"),
     ("local.d/groups.conf", "remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {path}")],
)  # fmt: skip
def test_check_and_install_name_a_byte_order_mark_that_hides_a_key(
    stock_confdir: Path, monkeypatch: pytest.MonkeyPatch, name: str, fix: str
) -> None:
    # Regression (review): check said all was well (configdump has the section install
    # wrote) while the BOM hid the admin's first key from rspamd: here their weights.
    path = stock_confdir / name
    text = 'group "rdns_scorer" {\n  max_score = 7.25;\n}\n'
    path.write_text(text + path.read_text() if path.exists() else text)
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(stock_confdir, section, rspamadm=None).ok
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert "max_score = 7.25" not in _configdump(stock_confdir, "group")  # rspamd's view
    said = (
        f"{path} starts with a UTF-8 byte-order mark, which rspamd reads as part of the "
        f"first key, so `group` there is ignored (configtest passes); {fix.format(path=path)}"
    )
    lines = _asked_by_check(
        stock_confdir, monkeypatch, "Modules enabled: rdns_scorer", '{"servers": "127.0.0.1:1"}'
    )
    assert f"problem:   {said}" in lines, lines
    report = integration.install(stock_confdir, section, rspamadm=None)
    if name == "rspamd.conf.local":
        assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
        assert "max_score = 7.25" in _configdump(stock_confdir, "group")
    else:
        assert f"note:      {said}" in report.lines, report.lines


def test_a_byte_order_mark_and_a_space_before_a_key_is_named_as_hiding_it(
    stock_confdir: Path,
) -> None:
    # Regression (review): a mark then a space was said to make rspamd refuse the whole
    # config, where it takes it and ignores the key after the space (configdump here).
    groups = stock_confdir / "local.d" / "groups.conf"
    groups.write_bytes(b'\xef\xbb\xbf \tgroup "rdns_scorer" {\n  max_score = 7.25;\n}\n')
    assert "max_score = 7.25" not in _configdump(stock_confdir, "group")
    assert integration.bom_text(groups) == (
        f"{groups} starts with a UTF-8 byte-order mark, which rspamd reads as part of the "
        "first key, so `group` there is ignored (configtest passes); "
        f"remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {groups}"
    )


def test_a_byte_order_mark_before_a_comment_is_named_as_what_rspamd_refuses(
    tmp_path: Path,
) -> None:
    groups = tmp_path / "override.d" / "groups.conf"
    groups.parent.mkdir()
    groups.write_bytes(b"\xef\xbb\xbf# weights\n")
    assert integration.bom_text(groups) == (
        f"{groups} starts with a UTF-8 byte-order mark, which rspamd reads as part of the "
        "first key: rspamd refuses the whole config (configtest: invalid character in a key); "
        f"remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {groups}"
    )
    groups.write_text("# weights\n")
    assert integration.bom_text(groups) is None


@pytest.mark.parametrize(("text", "before"), [("", ""), ("# mine", "# mine\n\n"),
                                             ("# mine\n", "# mine\n\n")])  # fmt: skip
def test_the_managed_block_goes_after_a_blank_line(text: str, before: str) -> None:
    block = f"{integration.MARK_BEGIN}\nA\n{integration.MARK_END}\n"
    assert integration.with_managed_block(text, "A\n") == before + block


def test_install_into_empty_dir_is_idempotent(tmp_path: Path) -> None:
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok
    plugin = tmp_path / "plugins.d" / "rdns_scorer.lua"
    assert plugin.read_text() == PLUGIN.read_text()
    local = (tmp_path / "rspamd.conf.local").read_text()
    assert section in local
    assert any("rspamadm not found" in line for line in report.lines)
    # Regression (review): "systemctl reload rspamd" for a copy of the config the
    # system's rspamd never reads, and again when nothing had changed.
    assert report.lines[-2:] == [
        f"reload the rspamd that reads {tmp_path} to activate",
        f"`rdns-scorer rspamd check --confdir {tmp_path}` says whether rspamd reaches the service",
    ]
    assert f"created:   {plugin}" in report.lines
    assert f"created:   {tmp_path / 'rspamd.conf.local'}" in report.lines

    again = integration.install(tmp_path, section, rspamadm=None)
    assert [line for line in again.lines if line.startswith("unchanged")] == [
        f"unchanged: {plugin}",
        f"unchanged: {tmp_path / 'rspamd.conf.local'}",
    ]
    assert again.lines[-2] == "nothing changed: no reload needed"
    assert _backups(tmp_path) == [] and _backups(tmp_path / "plugins.d") == []


def _rspamd_account() -> integration.RspamdAccount:
    account = integration.rspamd_account()
    assert account is not None, "no _rspamd account (`make test` installs rspamd)"
    return account


def test_the_rspamd_account_is_the_first_packaged_name_this_host_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Debian's package runs rspamd as _rspamd, other packages as rspamd: a name this
    # host lacks is passed over, not taken for "no rspamd here".
    missing = "rdns-scorer-test-no-such-user"
    monkeypatch.setattr(integration, "RSPAMD_ACCOUNTS", (missing, "_rspamd"))
    account = integration.rspamd_account()
    assert account is not None and account.user == "_rspamd"
    assert account.uid == pwd.getpwnam("_rspamd").pw_uid
    monkeypatch.setattr(integration, "RSPAMD_ACCOUNTS", (missing,))
    assert integration.rspamd_account() is None


def test_install_keeps_a_new_token_file_private(tmp_path: Path) -> None:
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    local = (tmp_path / "rspamd.conf.local").stat()
    assert local.st_mode & 0o777 == 0o640
    # ... and readable by rspamd, which runs as _rspamd on Debian (regression: root:root).
    assert local.st_gid == _rspamd_account().gid


def test_install_lets_rspamd_read_what_it_needs(tmp_path: Path) -> None:
    # Regression: a token file root:root 0600 (or plugins.d made 0750 under umask 027)
    # made rspamd refuse its whole config, while a root configtest said OK.
    local = tmp_path / "rspamd.conf.local"
    local.write_text("# mine\n")
    local.chmod(0o600)
    old_umask = os.umask(0o027)
    try:
        section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
        report = integration.install(tmp_path, section, rspamadm=None)
    finally:
        os.umask(old_umask)
    assert report.ok, report.lines
    account = _rspamd_account()
    assert local.stat().st_gid == account.gid and local.stat().st_mode & 0o777 == 0o640
    assert any(line.startswith(f"permissions: {local}") for line in report.lines)
    assert (tmp_path / "plugins.d").stat().st_mode & 0o777 == 0o755
    for path in (tmp_path / "plugins.d", tmp_path / "plugins.d" / "rdns_scorer.lua", local):
        assert integration._readable_by(path, account), path


def test_every_valid_token_reaches_rspamd_unchanged(stock_confdir: Path) -> None:
    # Regression: a token with "$" reached the plugin changed (UCL expands "$VAR" even
    # in quotes), so every scan got a 401. Such tokens are config errors now
    # (test_config.py); every character a valid one may hold survives UCL.
    token = "AZaz09-._~+/=="
    section = integration.module_section(config_from_mapping({"server": {"token": token}}))
    assert integration.install(stock_confdir, section, rspamadm=None).ok
    assert f'token = "{token}";' in _configdump(stock_confdir, "rdns_scorer")


@pytest.mark.parametrize(
    "mine",
    [
        # Regression (review): a Latin-1 comment in rspamd.conf.local (rspamd accepts it)
        # ended the install in a UnicodeDecodeError traceback, after the plugin was copied.
        b"# Konfiguration f\xfcr M\xfcller\n",
        # Regression (review): the file was read with universal newlines, so an install
        # rewrote every CRLF line end of the admin's lines as LF ("the rest is kept").
        b"# mine\r\nfoo {\r\n  bar = 1;\r\n}\r\n",
    ],
)
def test_install_keeps_the_admins_bytes(tmp_path: Path, mine: bytes) -> None:
    local = tmp_path / "rspamd.conf.local"
    local.write_bytes(mine)
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    assert local.read_bytes().startswith(mine)
    assert b"rdns_scorer {" in local.read_bytes()
    assert integration.install(tmp_path, section, rspamadm=None).ok  # and again: unchanged
    assert local.read_bytes().startswith(mine) and len(_backups(tmp_path)) == 1


def test_a_refused_install_writes_nothing(tmp_path: Path) -> None:
    # Regression (review): the plugin was copied before rspamd.conf.local was read.
    (tmp_path / "rspamd.conf.local").write_text(f"{integration.MARK_BEGIN}\nhalf a block\n")
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert not report.ok
    assert not (tmp_path / "plugins.d").exists()


def test_install_hides_a_token_from_other_users_but_not_from_rspamd(tmp_path: Path) -> None:
    # Regression (review): it advised "chmod o-r", which left a root:root file that the
    # _rspamd user cannot read: rspamd then refuses its whole config and scans nothing.
    account = integration.rspamd_account()
    assert account is not None, "the tests install Debian's rspamd"
    local = tmp_path / "rspamd.conf.local"
    local.write_text("# mine\n")
    local.chmod(0o644)
    os.chown(local, 0, 0)
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok
    assert local.stat().st_mode & 0o777 == 0o640 and local.stat().st_gid == account.gid
    assert any(f"now readable by group {account.group}" in line for line in report.lines)
    assert not any(line.startswith("warning:") for line in report.lines), report.lines


def test_install_changes_no_permissions_rspamd_does_not_need_changed(tmp_path: Path) -> None:
    # Files rspamd can read already keep their owner, group and mode; and under a
    # strict umask new files are still 0644 (0640 with the token), not the umask's 0600.
    old_umask = os.umask(0o077)
    try:
        section = integration.module_section(config_from_mapping({}))
        report = integration.install(tmp_path, section, rspamadm=None)
    finally:
        os.umask(old_umask)
    assert report.ok, report.lines
    plugins = tmp_path / "plugins.d"
    for path in (plugins / "rdns_scorer.lua", tmp_path / "rspamd.conf.local"):
        assert (path.stat().st_mode & 0o777, path.stat().st_gid) == (0o644, 0), path
    assert not any(line.startswith("permissions:") for line in report.lines), report.lines
    # A new file holding the token is created private: nothing to hide afterwards.
    (tmp_path / "rspamd.conf.local").unlink()
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok, report.lines
    assert not any("holds the token" in line for line in report.lines), report.lines


def test_install_opens_a_plugins_dir_rspamd_cannot_enter(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins.d"
    plugins.mkdir(mode=0o700)
    plugins.chmod(0o700)
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok, report.lines
    account = _rspamd_account()
    assert plugins.stat().st_gid == account.gid
    assert plugins.stat().st_mode & 0o777 == 0o750  # list and enter: r and x
    assert f"permissions: {plugins} now group {account.group}, so rspamd" in "\n".join(report.lines)


def test_a_file_rspamd_cannot_be_given_fails_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    local = tmp_path / "rspamd.conf.local"
    local.write_text("# mine\n")
    local.chmod(0o600)
    monkeypatch.setattr(integration.os, "chown", refused)
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    account = _rspamd_account()
    assert not report.ok
    assert f"error:     rspamd runs as {account.user} and cannot read {local}: " in "\n".join(
        report.lines
    )
    assert report.lines[-1].startswith("do not reload rspamd")
    # ... even when configtest, run as root, passes (regression: it said OK, then
    # "reload rspamd", and exit 0, over the error).
    (tmp_path / "rspamd.conf").write_text("")
    local.chmod(0o600)
    report = integration.install(tmp_path, section, rspamadm="/bin/true")
    assert "configtest: OK" in report.lines and not report.ok, report.lines
    assert report.lines[-1].startswith("do not reload rspamd"), report.lines


def _account(uid: int, gid: int, *groups: int) -> integration.RspamdAccount:
    return integration.RspamdAccount("mail", uid, "mail", gid, frozenset({gid, *groups}))


@pytest.mark.parametrize(
    ("mode", "account", "readable"),
    [
        # Owned by root:root: the others' bits.
        (0o604, _account(4001, 4001), True),
        (0o640, _account(4001, 4001), False),
        # ... the group's for an account in group 0, if only as a supplementary group.
        (0o640, _account(4001, 4001, 0), True),
        (0o604, _account(4001, 4001, 0), False),
        # ... the owner's for the owner: not the group's nor the others'.
        (0o400, _account(0, 4001), True),
        (0o044, _account(0, 4001), False),
    ],
)
def test_readable_by_reads_the_bits_that_apply(
    tmp_path: Path, mode: int, account: integration.RspamdAccount, readable: bool
) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    os.chown(path, 0, 0)
    path.chmod(mode)
    assert integration._readable_by(path, account) is readable


def test_a_directory_is_readable_when_it_can_be_listed_and_entered(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    os.chown(directory, 0, 0)
    account = _account(4001, 4001)
    for mode, readable in ((0o705, True), (0o704, False), (0o701, False)):
        directory.chmod(mode)
        assert integration._readable_by(directory, account) is readable, oct(mode)


def test_backups_never_overwrite_each_other(tmp_path: Path) -> None:
    path = tmp_path / "rspamd.conf.local"
    names = []
    for n in range(3):
        path.write_text(f"version {n}\n")
        names.append(integration._backup(path, "20260101-000000").name)
    base = "rspamd.conf.local.rdns-scorer-20260101-000000"
    assert names == [f"{base}.bak", f"{base}-1.bak", f"{base}-2.bak"]
    assert [(tmp_path / name).read_text() for name in names] == [f"version {n}\n" for n in range(3)]


def test_a_backup_is_the_file_as_it_was_and_never_shows_the_token(tmp_path: Path) -> None:
    # Regression: a backup was root:root whatever the file's group (restored with mv,
    # rspamd could not read it), and the backup of a world-readable file holding the
    # token (an older install's, with check_local) stayed world-readable beside the
    # file install had just hidden.
    account = _rspamd_account()
    local = tmp_path / "rspamd.conf.local"
    old_section = 'rdns_scorer {\n  check_local = false;\n  token = "t";\n}\n'
    old = integration.with_managed_block("# mine\n", old_section)
    local.write_text(old)
    local.chmod(0o644)
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    [backup] = _backups(tmp_path)
    assert backup.read_text() == old
    for path in (local, backup):
        assert (path.stat().st_mode & 0o777, path.stat().st_gid) == (0o640, account.gid), path
    # A file of another owner and group: its backup has them too.
    os.chown(local, 1, 1)
    local.write_text("# changed\n")
    os.utime(local, ns=(0, 10**18))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    [newest] = set(_backups(tmp_path)) - {backup}
    assert newest.read_text() == "# changed\n"
    assert (newest.stat().st_uid, newest.stat().st_gid, newest.stat().st_mtime_ns) == (1, 1, 10**18)


def test_a_removal_that_fails_leaves_no_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file stays as it was: a copy of it would be a backup of nothing changed,
    # named nowhere (uninstall says what it removed, then the error).
    target = tmp_path / "rspamd.conf.local"
    target.write_text("# mine\n")
    unlink = Path.unlink

    def refused(self: Path, missing_ok: bool = False) -> None:
        if self == target:
            raise PermissionError(1, "Operation not permitted")
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    report = integration.InstallReport()
    with pytest.raises(PermissionError):
        integration._remove(target, "20261202", report)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert report.lines == [] and not report.changed


def _install_under_a_file_size_limit(confdir: Path, limit: int) -> subprocess.CompletedProcess[str]:
    """`rspamd install` in a process that may write no file longer than ``limit``
    bytes: a disk that fills up while it writes."""

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    argv = ["rspamd", "install", "--confdir", str(confdir), "--no-configtest"]
    code = f"import sys; from scorer.cli import main; sys.exit(main({argv!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO, capture_output=True, text=True, preexec_fn=limited, check=False,
    )  # fmt: skip


def test_a_write_cut_short_leaves_the_old_file_whole(tmp_path: Path) -> None:
    # Regression: files were rewritten in place: a disk full halfway left
    # rspamd.conf.local cut inside the managed block, a config rspamd refuses whole.
    local = tmp_path / "rspamd.conf.local"
    mine = "options { x = 1; }\n" * 4000
    local.write_text(mine)
    limit = len(mine) + 50  # the backup fits, the new file does not (nor its block)
    assert PLUGIN.stat().st_size < limit  # the plugin, written first, fits
    done = _install_under_a_file_size_limit(tmp_path, limit)
    assert done.returncode == 1, done.stdout + done.stderr
    assert local.read_text() == mine
    assert (tmp_path / "plugins.d" / PLUGIN.name).read_text() == PLUGIN.read_text()
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    # Nor a backup of the file left as it was (regression: one was left, named nowhere,
    # beside "restore the backups named above").
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith(".bak")]
    # What was changed before the error is said, then the error (regression: the
    # error alone, so the plugin copied and the backup made went unmentioned).
    lines = done.stdout.splitlines()
    assert f"created:   {tmp_path / 'plugins.d' / PLUGIN.name}" in lines, done.stdout
    assert any(line.startswith("error:     ") and "File too large" in line for line in lines)
    assert lines[-1].startswith("do not reload rspamd"), done.stdout


def test_an_update_keeps_the_file_what_it_was(tmp_path: Path) -> None:
    # Written to a new file renamed over the old, the file keeps its mode, owner and
    # group, and a symlink (config management's) stays one: its target is updated.
    account = _rspamd_account()
    real = tmp_path / "managed" / "rspamd.conf.local"
    real.parent.mkdir()
    real.write_text("# mine\n")
    os.chown(real, 0, account.gid)
    real.chmod(0o640)
    (tmp_path / "rspamd.conf.local").symlink_to(real)
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    report = integration.install(tmp_path, section, rspamadm=None)
    assert report.ok, report.lines
    assert (tmp_path / "rspamd.conf.local").is_symlink()
    assert 'token = "t";' in real.read_text()
    assert (real.stat().st_mode & 0o7777, real.stat().st_gid) == (0o640, account.gid)
    assert not any(line.startswith("permissions:") for line in report.lines), report.lines


def test_configtest_of_the_default_confdir_is_the_plain_command() -> None:
    assert integration.configtest_command(Path("/etc/rspamd")) == ["rspamadm", "configtest"]
    assert integration.configtest_command(Path("/etc/../etc/rspamd"), "/x/rspamadm") == [
        "/x/rspamadm",
        "configtest",
    ]


def test_configtest_needs_the_main_config(tmp_path: Path) -> None:
    passed, why = integration.configtest(tmp_path, "/bin/false")
    assert passed is None
    assert why == f"{tmp_path / 'rspamd.conf'} does not exist; configtest skipped"


def _failing_rspamadm(directory: Path) -> str:
    rspamadm = directory / "rspamadm"
    rspamadm.write_text("#!/bin/sh\necho 'syntax error at line 3'\nexit 1\n")
    rspamadm.chmod(0o755)
    return str(rspamadm)


def test_a_failed_configtest_says_do_not_reload_even_when_nothing_changed(
    tmp_path: Path,
) -> None:
    confdir = tmp_path / "rspamd"
    confdir.mkdir()
    (confdir / "rspamd.conf").write_text("")
    rspamadm = _failing_rspamadm(tmp_path)
    section = integration.module_section(config_from_mapping({}))
    integration.install(confdir, section, rspamadm=rspamadm)
    again = integration.install(confdir, section, rspamadm=rspamadm)
    assert not again.ok and not again.changed
    assert "configtest: FAILED" in again.lines
    assert "  rspamadm: syntax error at line 3" in again.lines
    assert again.lines[-1].startswith("do not reload rspamd"), again.lines


def test_install_into_the_default_confdir_asks_for_a_systemd_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # By any path that leads there (a symlink, "..").
    confdir = tmp_path / "etc" / "rspamd"
    confdir.mkdir(parents=True)
    monkeypatch.setattr(integration, "DEFAULT_CONFDIR", confdir)
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(confdir / ".." / "rspamd", section, rspamadm=None)
    assert report.ok
    assert report.lines[-2:] == [
        "reload rspamd to activate: systemctl reload rspamd",
        "`rdns-scorer rspamd check` says whether rspamd reaches the service",
    ]
    assert "run `rspamadm configtest`" in "\n".join(report.lines)


def test_hiding_the_token_keeps_the_owners_bits_and_gives_rspamd_no_write(
    tmp_path: Path,
) -> None:
    # Regression (security review): a 0664 root:root file became 0660 root:_rspamd, so a
    # compromised scanner could rewrite its own config (and a 0770 plugins.d take Lua).
    local = tmp_path / "rspamd.conf.local"
    local.write_text("# mine\n")
    local.chmod(0o664)
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    assert local.stat().st_mode & 0o777 == 0o640
    plugins = tmp_path / "plugins.d"
    plugins.chmod(0o770)
    os.chown(plugins, 0, 0)
    assert integration.install(tmp_path, section, rspamadm=None).ok
    assert plugins.stat().st_mode & 0o777 == 0o750


def test_a_token_install_cannot_hide_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without an rspamd account (or when chown fails) the file stays as it was, and
    # the report says so, with the command: never "now readable by group".
    local = tmp_path / "rspamd.conf.local"
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    monkeypatch.setattr(integration, "rspamd_account", lambda: None)
    local.write_text("# mine\n")
    local.chmod(0o644)
    report = integration.install(tmp_path, section, rspamadm=None)
    fix = f"chgrp RSPAMD_GROUP {local} && chmod 640 {local}"
    assert f"warning:   {local} is world-readable and holds the token: {fix}" in report.lines
    assert local.stat().st_mode & 0o777 == 0o644
    monkeypatch.undo()

    def refused(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(integration.os, "chown", refused)
    local.write_text("# mine again\n")
    report = integration.install(tmp_path, section, rspamadm=None)
    warning = [line for line in report.lines if line.startswith("warning:")]
    assert len(warning) == 1 and "Operation not permitted" in warning[0], report.lines
    assert not any("now readable" in line for line in report.lines), report.lines
    assert local.stat().st_mode & 0o777 == 0o644


def test_a_configtest_that_cannot_run_fails(tmp_path: Path) -> None:
    (tmp_path / "rspamd.conf").write_text("")
    passed, why = integration.configtest(tmp_path, str(tmp_path / "no-rspamadm"))
    assert passed is False and why.startswith("configtest could not run: "), why


def test_the_managed_block_ends_at_the_end_marker_after_it() -> None:
    mine = f"# the block ends at {integration.MARK_END}\n"
    text = integration.with_managed_block(mine, "A\n")
    assert integration.with_managed_block(text, "B\n") == text.replace("A\n", "B\n")


def test_a_skipped_configtest_names_the_command_for_that_confdir(tmp_path: Path) -> None:
    # Regression (review): "run `rspamadm configtest`" tested /etc/rspamd's
    # rspamd.conf.local and plugins.d, not the copy that was installed into.
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(tmp_path, section, rspamadm=None)
    hint = f"rspamadm --var=CONFDIR={tmp_path} --var=LOCAL_CONFDIR={tmp_path} configtest -c"
    assert any(hint in line for line in report.lines), report.lines


def test_install_keeps_user_config_and_backs_up(tmp_path: Path) -> None:
    local = tmp_path / "rspamd.conf.local"
    local.write_text("# my own settings\nsomething { x = 1; }\n")
    local.chmod(0o640)
    (tmp_path / "plugins.d").mkdir()
    (tmp_path / "plugins.d" / "rdns_scorer.lua").write_text("-- an old version\n")

    section = integration.module_section(config_from_mapping({"server": {"token": "t1"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    text = local.read_text()
    assert text.startswith("# my own settings\nsomething { x = 1; }\n")
    assert 'token = "t1";' in text
    assert local.stat().st_mode & 0o777 == 0o640  # a token must not become world-readable
    [local_backup] = _backups(tmp_path)
    assert local_backup.read_text() == "# my own settings\nsomething { x = 1; }\n"
    [plugin_backup] = _backups(tmp_path / "plugins.d")
    assert plugin_backup.read_text() == "-- an old version\n"
    assert not plugin_backup.name.endswith(".lua")  # plugins.d loads every *.lua

    # A new token replaces the managed block in place.
    section = integration.module_section(config_from_mapping({"server": {"token": "t2"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    text = local.read_text()
    assert 'token = "t2";' in text and "t1" not in text
    assert text.count("rdns_scorer {") == 1
    assert len(_backups(tmp_path)) == 2


def _configdump(confdir: Path, *args: str) -> str:
    """rspamd's own view of the config in ``confdir`` (not /etc/rspamd's)."""
    return subprocess.run(
        ["rspamadm", f"--var=CONFDIR={confdir}", f"--var=LOCAL_CONFDIR={confdir}",
         "configdump", "-c", str(confdir / "rspamd.conf"), *args],
        capture_output=True,
        text=True,
    ).stdout  # fmt: skip


@pytest.fixture
def offline_rspamadm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rspamadm the test runs (directly or through `rspamd install`) sees a
    resolv.conf naming a loopback address where nothing listens: rspamadm opens its
    resolver on the host's /etc/resolv.conf whatever the config says (hermetic tests)."""
    rspamadm = shutil.which("rspamadm")
    if rspamadm is None:
        pytest.fail("rspamadm is not installed (`make test` installs rspamd)")
    bin_dir, resolv = tmp_path / "offline-bin", tmp_path / "offline-resolv.conf"
    bin_dir.mkdir()
    resolv.write_text(DEAD_RESOLV_CONF)
    wrapper = bin_dir / "rspamadm"
    offline = with_private_files([rspamadm], {"/etc/resolv.conf": resolv})
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(offline)} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.fixture
def stock_confdir(tmp_path: Path, offline_rspamadm: None) -> Path:
    if not (STOCK_CONFDIR / "rspamd.conf").is_file():
        pytest.fail("no stock rspamd config here (`make test` installs rspamd)")
    confdir = tmp_path / "rspamd"
    shutil.copytree(STOCK_CONFDIR, confdir, symlinks=True)
    # The stock fuzzy_check resolves fuzzy1/2.rspamd.com whenever the config is loaded.
    (confdir / "local.d").mkdir(exist_ok=True)
    (confdir / "local.d" / "fuzzy_check.conf").write_text("enabled = false;\n")
    return confdir


def test_install_into_stock_debian_config(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status = main(["rspamd", "install", "--confdir", str(stock_confdir)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "configtest: OK" in out
    assert (stock_confdir / "plugins.d" / "rdns_scorer.lua").is_file()

    # rspamd itself sees the module enabled with our section.
    dump = _configdump(stock_confdir, "-m")
    enabled = next(line for line in dump.splitlines() if line.startswith("Modules enabled"))
    assert "rdns_scorer" in enabled

    # Twice is the same as once, and a relative --confdir the same as an absolute one
    # (regression: configtest then printed a dozen "invalid map fetching protocol").
    monkeypatch.chdir(stock_confdir.parent)
    assert main(["rspamd", "install", "--confdir", stock_confdir.name]) == 0
    out = capsys.readouterr().out
    assert "unchanged" in out and "configtest: OK" in out
    assert "invalid map" not in out, out
    assert _backups(stock_confdir) == []


def test_install_reports_a_broken_config(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stock_confdir / "rspamd.conf.local").write_text("this is { not ucl\n")
    status = main(["rspamd", "install", "--confdir", str(stock_confdir)])
    out = capsys.readouterr().out
    assert status == 1
    assert "configtest: FAILED" in out
    assert "do not reload rspamd" in out


def test_install_without_write_access_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: as a normal user the README's command ended in a traceback.
    def denied(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "plugins.d"))

    monkeypatch.setattr(integration, "install", denied)
    assert main(["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]) == 1
    err = capsys.readouterr().err
    assert "Permission denied" in err and "run it as root" in err


def test_install_that_fails_otherwise_does_not_blame_permissions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(integration, "install", full)
    assert main(["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "root" not in err


def test_install_without_the_plugin_files_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def nowhere() -> Path:
        raise FileNotFoundError("rdns_scorer.lua not found in any of: /a/lua, /b/lua")

    monkeypatch.setattr(integration, "plugin_dir", nowhere)
    assert main(["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "rdns-scorer rspamd install: rdns_scorer.lua not found in any of: /a/lua, /b/lua\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("directory", ["rspamd.conf.local", "plugins.d/rdns_scorer.lua"])
def test_install_onto_a_directory_names_it_without_pythons_errno(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], directory: str
) -> None:
    # Regression: "[Errno 21] Is a directory: '/etc/rspamd/rspamd.conf.local'", Python's
    # wording, where every other error of the command reads "PATH: reason".
    (tmp_path / directory).mkdir(parents=True)
    command = ["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]
    assert main([*command, "--listen", "127.0.0.1:11340"]) == 1
    out, err = capsys.readouterr()
    assert f"{tmp_path / directory}: Is a directory" in out + err
    assert "Errno" not in out + err


def test_a_failed_upgrade_ends_with_do_not_reload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): an upgrade (no --config: the installed section kept) that failed
    # said "do not reload rspamd", then "kept: the rdns_scorer section installed before".
    command = ["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]
    assert main([*command, "--listen", "127.0.0.1:11340"]) == 0
    plugin = tmp_path / "plugins.d" / "rdns_scorer.lua"
    plugin.unlink()
    plugin.mkdir()
    capsys.readouterr()
    assert main(command) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("do not reload rspamd"), lines
    assert not any(line.startswith("kept:") for line in lines), lines


def test_install_defaults_to_etc_rspamd() -> None:
    assert build_parser().parse_args(["rspamd", "install"]).confdir == "/etc/rspamd"


def test_install_without_config_points_at_the_systemd_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): the README's quick start ran install without --config: no
    # token in the section, and a service requiring one refused every check (401),
    # mail unscored, with nothing said.
    service_config = tmp_path / "scorer.toml"
    service_config.write_text('[server]\ntoken = "t0ken"\n')
    monkeypatch.setattr(integration, "SYSTEMD_CONFIG", service_config)
    confdir = tmp_path / "rspamd"
    confdir.mkdir()
    argv = ["rspamd", "install", "--confdir", str(confdir), "--no-configtest"]
    assert main(argv) == 0
    assert f"add --config {service_config}" in capsys.readouterr().out
    assert main([*argv, "--config", str(service_config)]) == 0
    assert "add --config" not in capsys.readouterr().out
    # `rspamd config` too (journey review), on stderr: stdout is the section to paste.
    assert main(["rspamd", "config"]) == 0
    out, err = capsys.readouterr()
    assert "token" not in out and err == (
        "rdns-scorer rspamd config: note: no --config: the section is for a service on its "
        f"defaults (no token); for the one the systemd unit runs, add --config {service_config}\n"
    )
    assert main(["rspamd", "config", "--config", str(service_config)]) == 0
    assert capsys.readouterr().err == ""


def test_install_without_config_keeps_the_section_installed_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (review): `rspamd check` says to run `rspamd install` for a new plugin
    # release; run as it said (no --config), install wrote the defaults' section over
    # the one from the service's config, its token dropped: every check then a 401.
    service_config = tmp_path / "scorer.toml"
    service_config.write_text('[server]\nlisten = "127.0.0.1:11399"\ntoken = "t0ken"\n')
    confdir = tmp_path / "rspamd"
    confdir.mkdir()
    local = confdir / "rspamd.conf.local"
    argv = ["rspamd", "install", "--confdir", str(confdir), "--no-configtest"]
    assert main([*argv, "--config", str(service_config)]) == 0
    installed = local.read_text()
    assert 'token = "t0ken";' in installed
    capsys.readouterr()
    plugin = confdir / "plugins.d" / "rdns_scorer.lua"
    plugin.write_text("-- an older release\n")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert local.read_text() == installed
    assert plugin.read_bytes() == integration.shipped_plugin()
    assert "kept:      the rdns_scorer section installed before" in out
    # Regression (review): --listen alone wrote the defaults' section, without the
    # token: refused, the file as it was. With --config it is written anew, as asked.
    assert main([*argv, "--listen", "127.0.0.1:11398"]) == 2
    assert "the installed section has a token, which --listen alone would drop" in (
        capsys.readouterr().err
    )
    assert local.read_text() == installed
    assert main([*argv, "--config", str(service_config), "--listen", "127.0.0.1:11398"]) == 0
    assert 'servers = "127.0.0.1:11398";' in local.read_text()
    assert 'token = "t0ken";' in local.read_text()


def test_install_without_config_writes_an_empty_block_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression (mutation review): markers with nothing between them were "kept" (the
    # message said so) while the defaults' section was written, or kept empty.
    local = tmp_path / "rspamd.conf.local"
    local.write_text(f"{integration.MARK_BEGIN}\n\n{integration.MARK_END}\n")
    argv = ["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]
    assert main(argv) == 0
    assert "kept:" not in capsys.readouterr().out
    assert 'servers = "127.0.0.1:11340";' in local.read_text()


def test_install_refuses_missing_confdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rspamd", "install", "--confdir", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def _doc_blocks() -> list[str]:
    """Every fenced code block of docs/rspamd.md."""
    text = (REPO / "docs" / "rspamd.md").read_text()
    return re.findall(r"^```\w*\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def _symbol_weight(dump: str, symbol: str) -> str:
    block = dump[dump.index(f"{symbol} {{") :]
    return block[: block.index("}")]


def test_the_docs_rspamd_config_snippets_do_what_they_say(stock_confdir: Path) -> None:
    """docs/rspamd.md as an admin follows it on a stock Debian rspamd: the section
    written by hand, the rdns_scorer group's weights beside it, and RDNS_NONE and
    HFILTER_HOSTNAME_UNKNOWN zeroed in local.d. Each snippet is taken from the page."""
    blocks = _doc_blocks()
    by_hand = next(b for b in blocks if "tee -a /etc/rspamd/rspamd.conf.local" in b)
    section = re.search(r"<<'EOF'\n(.*?)^EOF$", by_hand, re.DOTALL | re.MULTILINE)
    assert section is not None
    local = [section.group(1)]
    for block in blocks:
        shown = re.match(r"# /etc/rspamd/(\S+)", block)
        if shown and shown.group(1) == "rspamd.conf.local,":  # "next to the rdns_scorer section"
            local.append(block)
        elif shown:
            target = stock_confdir / shown.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block)
    assert len(local) == 2, "the group example of docs/rspamd.md is gone"
    (stock_confdir / "rspamd.conf.local").write_text("\n".join(local))
    (stock_confdir / "plugins.d").mkdir(exist_ok=True)
    shutil.copy(PLUGIN, stock_confdir / "plugins.d" / PLUGIN.name)

    enabled = next(
        line for line in _configdump(stock_confdir, "-m").splitlines()
        if line.startswith("Modules enabled")
    )  # fmt: skip
    assert "rdns_scorer" in enabled.split(": ", 1)[1].split(", ")
    dump = _configdump(stock_confdir, "group")
    weights = {
        "RL_PTR_MISSING": "weight = 0.600000;",
        "RL_HELO_NOT_FQDN": f"weight = {dumped_whole(0)};",
        "RDNS_NONE": f"weight = {dumped_whole(0)};",
        "HFILTER_HOSTNAME_UNKNOWN": f"weight = {dumped_whole(0)};",
    }
    for symbol, weight in weights.items():
        assert weight in _symbol_weight(dump, symbol), symbol
    group = re.search(r"^rdns_scorer \{\n(.*?)^\}", dump, re.DOTALL | re.MULTILINE)
    assert group is not None
    assert f"    max_score = {dumped_whole(8)};" in group.group(1).splitlines()


@pytest.mark.parametrize(
    ("example", "servers"),
    [
        pytest.param(EXAMPLE, "127.0.0.1:11340", id="lua/rdns_scorer.conf"),
        pytest.param(REPO / "docker" / "rspamd" / "rspamd.conf.local", "scorer:11340", id="docker"),
    ],
)
def test_shipped_sections_are_what_rspamd_reads(
    stock_confdir: Path, example: Path, servers: str
) -> None:
    """lua/rdns_scorer.conf used as rspamd.conf.local, as its header says, and the Docker
    stack's rspamd.conf.local enable the module, with the plugin's documented defaults
    for what they leave out (docs/rspamd.md, Settings)."""
    shutil.copy(example, stock_confdir / "rspamd.conf.local")
    (stock_confdir / "plugins.d").mkdir(exist_ok=True)
    shutil.copy(PLUGIN, stock_confdir / "plugins.d" / PLUGIN.name)
    assert "rdns_scorer" in _configdump(stock_confdir, "-m")
    section = _configdump(stock_confdir, "rdns_scorer").splitlines()
    assert f'servers = "{servers}";' in section
    assert f"timeout = {dumped_whole(1)};" in section
    # Each as documented, written or left to the plugin's own default (review: a key
    # left out passed whatever the plugin's default was).
    plugin = PLUGIN.read_text()
    table = plugin.split("\nlocal settings = {\n", 1)[1].split("\n}\n", 1)[0]
    assert "\nlocal N = 'rdns_scorer'\n" in plugin
    defaults = {
        'path = "/v1/check";': "  path = '/v1/check',",
        'group = "rdns_scorer";': "  group = N,",
        f"holddown = {dumped_whole(10)};": "  holddown = 10.0,",
        "holddown_after = 2;": "  holddown_after = 2,",
    }
    for setting, default in defaults.items():
        key = setting.split(" =")[0]
        written = [line for line in section if line.startswith(f"{key} =")]
        assert written == [setting] if written else default in table.splitlines(), setting


def _plugin_settings() -> list[str]:
    """The keys of the plugin's settings table, as the plugin defines them."""
    table = PLUGIN.read_text().split("\nlocal settings = {\n", 1)[1].split("\n}\n", 1)[0]
    return re.findall(r"^  (\w+) = ", table, re.MULTILINE)


_HELP_EXAMPLE = PLUGIN.read_text().split("local EXAMPLE = [[")[1].split("]]")[0]


@pytest.mark.parametrize("example", [EXAMPLE.read_text(), _HELP_EXAMPLE], ids=["conf", "help"])
def test_both_examples_name_every_setting(example: str) -> None:
    # Regression (review): confighelp's example left keepalive out.
    keys = _plugin_settings()
    assert {"servers", "holddown", "keepalive"} <= set(keys), keys  # the table was found
    for key in keys:
        assert re.search(rf"^\s*#?\s*{key} = ", example, re.MULTILINE), key


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(EXAMPLE.read_text(), id="rdns_scorer.conf"),
        pytest.param(_HELP_EXAMPLE, id="help"),
    ],
)
def test_examples_leave_check_local_and_authed_to_options(example: str) -> None:
    # Regression: both examples set them in the module section, where either key makes
    # rspamd ignore the admin's `options { check_authed = true; }`.
    settings = [line for line in example.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in settings if re.search(r"check_(local|authed)\s*=", line)]


def test_confighelp_describes_each_key_by_its_own_comment(
    tmp_path: Path, offline_rspamadm: None
) -> None:
    # Regression: commented-out keys took the comments: confighelp described `path` as
    # a servers list and `group` as check_local/check_authed, and left `token` out.
    shutil.copy(PLUGIN, tmp_path / PLUGIN.name)
    command = ["rspamadm", "confighelp", "-j", "-P", str(tmp_path), "rdns_scorer"]
    shown = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    lines = shown["rdns_scorer"]["example"].splitlines()
    keys = {
        line.split("=")[0].strip(): lines[n - 1].strip()
        for n, line in enumerate(lines)
        if re.match(r"^\s+\w+ = ", line)
    }
    assert set(keys) == set(_plugin_settings()) - {"check_local", "check_authed"}
    for key, comment in keys.items():
        assert comment.startswith("# "), key
        assert shown["rdns_scorer"][key]["data"] == comment, key


def test_no_configtest_says_it_was_skipped_not_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: --no-configtest printed "rspamadm not found" with rspamadm installed.
    monkeypatch.setattr(integration, "rspamd_account", lambda: None)
    assert main(["rspamd", "install", "--confdir", str(tmp_path), "--no-configtest"]) == 0
    out = capsys.readouterr().out
    assert "configtest skipped (--no-configtest)" in out
    assert "not found" not in out


def test_a_section_in_the_local_override_is_refused(stock_confdir: Path) -> None:
    # Regression (review): rspamd.conf.local.override is read at priority 10, and an
    # rdns_scorer section there replaced ours whole (the servers and token install wrote
    # were never used), while install and configtest said OK.
    section = integration.module_section(config_from_mapping({"server": {"token": "t0k"}}))
    override = stock_confdir / "rspamd.conf.local.override"
    override.write_text('# mine\nrdns_scorer {\n  servers = "127.0.0.1:9999";\n}\n')
    report = integration.install(stock_confdir, section, rspamadm=None)
    assert not report.ok
    assert report.lines[0] == (
        f"error:     {override}: line 2 has an rdns_scorer section, which replaces the one "
        "install writes to rspamd.conf.local whole (not one of its keys would be used): "
        "remove it (or comment it out) and run install again"
    )
    assert not (stock_confdir / "plugins.d").exists()
    assert not (stock_confdir / "rspamd.conf.local").exists()  # nothing written
    # What the refusal is about, as rspamd sees it: the override's keys alone.
    override.write_text("")
    assert integration.install(stock_confdir, section, rspamadm=None).ok
    assert 'token = "t0k";' in _configdump(stock_confdir, "rdns_scorer")
    override.write_text('rdns_scorer {\n  servers = "127.0.0.1:9999";\n}\n')
    dump = _configdump(stock_confdir, "rdns_scorer")
    assert "127.0.0.1:9999" in dump and "t0k" not in dump
    override.write_text('# rdns_scorer {\n#  servers = "127.0.0.1:9999";\n# }\n')
    assert integration.install(stock_confdir, section, rspamadm=None).ok


@pytest.mark.parametrize(
    "commented",
    ['/*\nrdns_scorer {\n  servers = "127.0.0.1:9999";\n}\n*/\n',
     '/* old: /* nested */\nrdns_scorer {\n  servers = "127.0.0.1:9999";\n}\n*/\n'],
)  # fmt: skip
def test_a_section_commented_out_as_a_block_is_no_section(
    stock_confdir: Path, commented: str
) -> None:
    # Regression: "remove it (or comment it out)", the refusal says, and UCL comments out
    # a block with /* */, which nest; rspamd then reads no section there, but install
    # still refused it. A section after the comment, or beside a "/*" in a string, counts.
    section = integration.module_section(config_from_mapping({"server": {"token": "t0k"}}))
    override = stock_confdir / "rspamd.conf.local.override"
    override.write_text(commented)
    assert integration.install(stock_confdir, section, rspamadm=None).ok
    assert 'token = "t0k";' in _configdump(stock_confdir, "rdns_scorer")  # as rspamd sees it
    local = stock_confdir / "rspamd.conf.local"
    local.write_text(commented + local.read_text())
    assert integration.install(stock_confdir, section, rspamadm=None).ok
    for text in (commented + "rdns_scorer {\n}\n", 'x = "/*";\nrdns_scorer {\n}\n'):
        override.write_text(text)
        report = integration.install(stock_confdir, section, rspamadm=None)
        line = text.count("\n") - 1
        assert f"line {line} has an rdns_scorer section" in report.lines[0], report.lines


# -- uninstall ---------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a directory or a symlink)."""
    return {
        str(path.relative_to(root)): None
        if path.is_symlink() or path.is_dir()
        else path.read_bytes()
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    "text", ["", "# mine", "# mine\n", "# mine\n\n", "a {}\r\n", "# mine\n\n\n"]
)
def test_without_the_managed_block_is_the_text_before_it(text: str) -> None:
    installed = integration.with_managed_block(text, "rdns_scorer {\n}\n")
    assert integration.without_managed_block(installed) == text + (
        "\n" if text and not text.endswith("\n") else ""
    )
    assert integration.without_managed_block(text) is None
    # A block with the admin's lines after it: those stay, and nothing else goes.
    middle = f"a {{}}\n{integration.MARK_BEGIN}\nx\n{integration.MARK_END} (ours)\nb {{}}\n"
    assert integration.without_managed_block(middle) == "a {}\nb {}\n"
    with pytest.raises(ValueError, match="without"):
        integration.without_managed_block(f"a {{}}\n{integration.MARK_BEGIN}\nx\n")


def test_uninstall_leaves_the_stock_config_as_it_was(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = _tree(stock_confdir)
    config = tmp_path / "scorer.toml"
    config.write_text('[server]\ntoken = "s3cret"\n')
    assert (
        main(["rspamd", "install", "--confdir", str(stock_confdir), "--config", str(config)]) == 0
    )
    assert "rdns_scorer" in _configdump(stock_confdir, "-m")
    capsys.readouterr()
    assert main(["rspamd", "uninstall", "--confdir", str(stock_confdir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"removed:   {stock_confdir / 'rspamd.conf.local'}",
        f"removed:   {stock_confdir / 'plugins.d' / 'rdns_scorer.lua'}",
        f"removed:   {stock_confdir / 'plugins.d'} (empty)",
        "configtest: OK",
        "  rspamadm: syntax OK",
        f"reload the rspamd that reads {stock_confdir} to unload the plugin",
    ], out
    # Nothing left behind, no backup either: the files held only what install wrote.
    assert _tree(stock_confdir) == before
    enabled = next(
        line for line in _configdump(stock_confdir, "-m").splitlines() if "Modules enabled" in line
    )
    assert "rdns_scorer" not in enabled
    assert main(["rspamd", "uninstall", "--confdir", str(stock_confdir)]) == 0
    assert capsys.readouterr().out.splitlines() == ["nothing to remove: no reload needed"]


def test_uninstall_keeps_the_admins_config_and_backs_up_what_it_changes(tmp_path: Path) -> None:
    local = tmp_path / "rspamd.conf.local"
    mine = b"# mine \xe9\r\nfoo { bar = 1; }\r\n"  # Latin-1 and CRLF, as install keeps them
    local.write_bytes(mine)
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    installed = local.read_bytes()
    plugin = tmp_path / "plugins.d" / "rdns_scorer.lua"
    plugin.write_text(PLUGIN.read_text() + "-- my edit\n")
    (tmp_path / "plugins.d" / "other.lua").write_text("-- another plugin\n")
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok and report.changed
    assert local.read_bytes() == mine
    # install's backup (the file before it) and uninstall's (the file as installed)
    backups = {backup.read_bytes(): backup for backup in _backups(tmp_path)}
    assert backups.keys() == {mine, installed}
    local_backup = backups[installed]
    (plugin_backup,) = _backups(tmp_path / "plugins.d")
    assert plugin_backup.read_text().endswith("-- my edit\n")  # an edited plugin is kept
    assert not plugin.exists() and (tmp_path / "plugins.d" / "other.lua").exists()
    assert f"updated:   {local} (backup: {local_backup})" in report.lines
    assert f"removed:   {plugin} (backup: {plugin_backup})" in report.lines


def test_uninstall_with_a_broken_block_removes_nothing(tmp_path: Path) -> None:
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    local = tmp_path / "rspamd.conf.local"
    broken = local.read_text().replace(integration.MARK_END, "# the end")
    local.write_text(broken)
    report = integration.uninstall(tmp_path, rspamadm=None)
    assert not report.ok and not report.changed
    (line,) = report.lines  # as install says it: nothing was changed
    assert line.startswith(f"error:     {local}: found ")
    assert local.read_text() == broken and (tmp_path / "plugins.d" / "rdns_scorer.lua").exists()


def test_uninstall_names_a_section_written_by_hand_and_leaves_it(tmp_path: Path) -> None:
    # docs/rspamd.md "By hand": the plugin goes, the admin's own section is theirs to remove
    # (rspamd reads a section of a module it does not load without complaint).
    hand = 'rdns_scorer {\n  servers = "10.9.9.9:11340";\n}\n'
    (tmp_path / "rspamd.conf.local").write_text("# mine\n" + hand)
    (tmp_path / "rspamd.conf.local.override").write_text(hand)
    plugin_dir = tmp_path / "plugins.d"
    plugin_dir.mkdir()
    shutil.copy(PLUGIN, plugin_dir)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok
    assert (tmp_path / "rspamd.conf.local").read_text() == "# mine\n" + hand
    notes = [line for line in report.lines if "written by hand" in line]
    assert notes == [
        f"note:      {tmp_path / name} line {n} has an rdns_scorer section written by hand "
        "(not install's): remove it yourself"
        for name, n in (("rspamd.conf.local", 2), ("rspamd.conf.local.override", 1))
    ]
    assert not plugin_dir.exists() and _backups(tmp_path) == []


def test_uninstall_names_the_docs_group_of_weights_and_leaves_it(tmp_path: Path) -> None:
    # docs/rspamd.md's group "rdns_scorer" example, put where it says (next to the
    # section in rspamd.conf.local): the admin's weights, named, never removed
    # (regression, docs walkthrough: left behind without a word).
    docs = (REPO / "docs" / "rspamd.md").read_text()
    example = re.search(r"```\n(# /etc/rspamd/rspamd.conf.local, next to .*?)```", docs, re.S)
    assert example is not None
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    local = tmp_path / "rspamd.conf.local"
    local.write_text(local.read_text() + example.group(1))
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok
    assert local.read_text() == example.group(1)
    line = example.group(1).splitlines().index('group "rdns_scorer" {') + 1
    assert _rdns_scorer_notes(report) == [_group_note(local, line)]


@pytest.mark.parametrize("where", ["local.d/groups.conf", "override.d/groups.conf"])
def test_uninstall_names_the_group_of_weights_in_groups_conf(tmp_path: Path, where: str) -> None:
    # Regression (review): docs/rspamd.md says the group "rdns_scorer" block "may go in
    # local.d/groups.conf" (rspamd's groups.conf includes it, and override.d's, at the
    # top level), but uninstall looked for it in rspamd.conf.local alone: the weights
    # were left behind without a word.
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    groups = tmp_path / where
    groups.parent.mkdir()
    written = '# weights\ngroup "rdns_scorer" {\n  max_score = 8.0;\n}\n'
    groups.write_text(written)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok
    assert groups.read_text() == written  # the admin's: named, never removed
    assert _rdns_scorer_notes(report) == [_group_note(groups, 2)]


def _rdns_scorer_notes(report: integration.InstallReport) -> list[str]:
    return [text for text in report.lines if "rdns_scorer" in text and "note:" in text]


def _group_note(path: Path, line: int) -> str:
    return (
        f"note:      {path} line {line} has a block of the rdns_scorer group (your weights "
        "for the plugin's symbols): remove it yourself if you are done with them"
    )


@pytest.mark.parametrize(
    "group",
    ['# mine\ngroup "rdns_scorer" {\n  max_score = 8.0;\n}\n',
     "group {\n  rdns_scorer {\n    max_score = 8.0;\n  }\n}\n",
     'group = {\n  "rdns_scorer": {\n    max_score = 8.0;\n  }\n}\n',
     "# mine\ngroup { rdns_scorer { max_score = 8.0; } }\n"],
)  # fmt: skip
def test_the_group_of_weights_is_no_section_however_it_is_nested(
    tmp_path: Path, group: str
) -> None:
    # Regression: UCL reads `group { rdns_scorer { } }` as `group "rdns_scorer" { }`,
    # but its `rdns_scorer {` was taken for a section written by hand: uninstall told
    # the admin to remove their weights as one, and install refused to run beside them.
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    local = tmp_path / "rspamd.conf.local"
    local.write_text(group + local.read_text())
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok and local.read_text() == group
    assert _rdns_scorer_notes(report) == [_group_note(local, 2)]  # the line rdns_scorer is on
    assert integration.section_line(local) is None  # as `rspamd check` reads a file
    assert integration.install(tmp_path, section, rspamadm=None).ok


def test_uninstall_that_cannot_read_the_override_still_says_what_it_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): the override was read outside the error handling, so a
    # permission error there, after the plugin was gone, left only a traceback's line.
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    override = tmp_path / "rspamd.conf.local.override"
    override.write_text("# not for everyone\n")
    read_kept = integration._read_kept

    def denied(path: Path) -> str:
        if path == override:
            raise PermissionError(13, "Permission denied", str(path))
        return read_kept(path)

    monkeypatch.setattr(integration, "_read_kept", denied)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert not report.ok
    assert report.lines == [
        f"removed:   {tmp_path / 'rspamd.conf.local'}",
        f"removed:   {tmp_path / 'plugins.d' / 'rdns_scorer.lua'}",
        f"removed:   {tmp_path / 'plugins.d'} (empty)",
        f"error:     {override}: Permission denied (run it as root)",
        "do not reload rspamd: fix the error, or restore the backups named above",
    ]


def test_uninstall_refuses_a_missing_confdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rspamd", "uninstall", "--confdir", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == (
        f"rdns-scorer rspamd uninstall: {tmp_path / 'nope'} is not a directory\n"
    )


def test_uninstall_keeps_a_symlinked_local_file_a_symlink(tmp_path: Path) -> None:
    # Regression: with nothing but the block in it, rspamd.conf.local was unlinked: the
    # admin's symlink (config management's; install writes through it) was gone, and
    # the file it points at kept the block, token and all.
    real = tmp_path / "managed" / "rspamd.conf.local"
    real.parent.mkdir()
    real.write_text("")
    local = tmp_path / "rspamd.conf.local"
    local.symlink_to(real)
    section = integration.module_section(config_from_mapping({"server": {"token": "t"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    assert 'token = "t";' in real.read_text()
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok and report.changed, report.lines
    assert local.is_symlink() and real.read_text() == ""
    (backup,) = [x for x in _backups(tmp_path) if 'token = "t";' in x.read_text()]
    assert f"updated:   {local} (backup: {backup})" in report.lines  # as docs/rspamd.md says


def test_uninstall_leaves_a_symlinked_plugins_dir(tmp_path: Path) -> None:
    # Regression: once the plugin was out of a plugins.d that is a symlink (the admin's,
    # not install's), rmdir failed on the link: "Not a directory", exit 1, configtest
    # skipped and "do not reload rspamd" after an uninstall that had done its work.
    real = tmp_path / "shared-plugins"
    real.mkdir()
    confdir = tmp_path / "rspamd"
    confdir.mkdir()
    (confdir / "plugins.d").symlink_to(real)
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(confdir, section, rspamadm=None).ok
    report = integration.uninstall(confdir, rspamadm=None, run_configtest=False)
    assert report.ok, report.lines
    assert (confdir / "plugins.d").is_symlink() and list(real.iterdir()) == []


def test_uninstall_takes_installs_blank_line_also_from_before_lines_added_after(
    tmp_path: Path,
) -> None:
    # Regression: the blank line install puts before the block it appends went only when
    # the block was still last; lines the admin added after it since kept it.
    local = tmp_path / "rspamd.conf.local"
    local.write_text("a {}\n")
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    with local.open("a") as file:
        file.write("b {}\n")
    assert integration.uninstall(tmp_path, rspamadm=None, run_configtest=False).ok
    assert local.read_text() == "a {}\nb {}\n"


def test_uninstall_removes_a_local_file_left_with_blank_lines_alone(tmp_path: Path) -> None:
    # Nothing but blank lines besides the block: the file goes ("when nothing else is
    # left in it"), and no backup of blank lines is left beside install's own.
    local = tmp_path / "rspamd.conf.local"
    local.write_text("\n \n")
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    (install_backup,) = _backups(tmp_path)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok and report.lines[0] == f"removed:   {local}"
    assert not local.exists() and _backups(tmp_path) == [install_backup]


def test_uninstall_backs_up_a_block_the_admin_edited(tmp_path: Path) -> None:
    # Regression (journey review): a file holding nothing but the managed block went
    # without a backup even when the admin had added a line inside the block: their
    # line was lost, where install (which replaces the block) keeps it in a backup.
    local = tmp_path / "rspamd.conf.local"
    section = integration.module_section(config_from_mapping({"server": {"token": "s3cret"}}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    assert integration.block_as_written(local.read_text())
    edited = local.read_text().replace("  path =", "  check_authed = true;  # mine\n  path =")
    local.write_text(edited)
    assert not integration.block_as_written(edited)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    (backup,) = _backups(tmp_path)
    assert report.ok and report.lines[0] == f"removed:   {local} (backup: {backup})"
    assert not local.exists() and backup.read_text() == edited


def test_uninstall_that_changed_nothing_for_an_error_says_do_not_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An error before anything was removed is an error, not "nothing to remove".
    local = tmp_path / "rspamd.conf.local"
    local.write_text("a {}\n")
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok

    def denied(path: Path, *_args: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(integration, "replace_file", denied)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert not report.ok and not report.changed
    assert report.lines == [
        f"error:     {local}: Permission denied (run it as root)",
        "do not reload rspamd: fix the error, or restore the backups named above",
    ]
    assert (tmp_path / "plugins.d" / "rdns_scorer.lua").exists()


def test_cli_uninstall_exit_status_and_no_configtest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    local = tmp_path / "rspamd.conf.local"
    installed = local.read_text()
    uninstall = ["rspamd", "uninstall", "--confdir", str(tmp_path), "--no-configtest"]
    # A block without its end: nothing removed, exit 1 (a script must not reload).
    local.write_text(installed.replace(integration.MARK_END, "# the end"))
    assert main(uninstall) == 1
    assert capsys.readouterr().out.startswith(f"error:     {local}: found ")
    # --no-configtest: not run (this confdir is no rspamd config), named instead.
    local.write_text(installed)
    assert main(uninstall) == 0
    command = shlex.join(integration.configtest_command(tmp_path))
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"note:      configtest skipped (--no-configtest); run `{command}`",
        f"reload the rspamd that reads {tmp_path} to unload the plugin",
    ]


# -- check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "url"),
    [("127.0.0.1:11340", "http://127.0.0.1:11340"), ("localhost", "http://localhost:11340"),
     ("[::1]:11341", "http://[::1]:11341"), ("[::1]", "http://[::1]:11340"),
     ("[::1]:11341:2", "http://[::1]:11341"), ("10.0.0.5:11340:2", "http://10.0.0.5:11340"),
     # rspamd 3.4 reads these as [::1]:0 and as nothing: no URL, a problem (regression:
     # "[::1]" stopped check with exit 2, "::1" was asked on port 11340).
     ("::1", None), ("2001:db8::1", None),
     # No TCP port: not asked elsewhere (urllib asked 99999 as 34463, review).
     ("127.0.0.1:99999", None), ("[::1]:65536", None), ("localhost:0", None),
     ("127.0.0.1:65535", "http://127.0.0.1:65535"),
     # A URL or a path the plugin refuses (regression: the path was taken for rspamd's
     # ":priority" and the server asked, "ok", while every message failed open).
     ("127.0.0.1:11340/v1/check", None), ("http://127.0.0.1:11340", None),
     # A rotation prefix left on an entry (regression: "round-robin:10.0.0.1:11340" was
     # asked as http://round-robin:10), or anything else after the port but a priority.
     ("round-robin:10.0.0.1:11340", None), ("failover:10.0.0.5", None),
     ("127.0.0.1:11340:x", None), ("127.0.0.1:11340.0.0.1:11340", None),
     # rspamd's SRV form, which the plugin refuses (regression: it was asked as the
     # host "service=rdns-scorer+example.com").
     ("service=rdns-scorer+example.com", None), ("SERVICE=a+b:2", None)],
)  # fmt: skip
def test_check_asks_each_server_where_the_plugin_does(entry: str, url: str | None) -> None:
    read = rspamd_check._read_entry(entry)  # what check() asks, or why it refuses
    assert (None if isinstance(read, str) else rspamd_check._url(read)) == url


def test_check_reads_the_section_as_the_plugin_does() -> None:
    defaults = rspamd_check.Section.from_dump({})  # a section that sets none of them
    # Regression (review): `token = 0` reads as the number 0, which the plugin sends as
    # "Bearer 0"; the check sent no token at all.
    assert rspamd_check.Section.from_dump({"token": 0}).token == "0"
    assert defaults == rspamd_check.Section(["127.0.0.1:11340"], "/v1/check", None, 1.0)
    dumped = {
        "servers": ["a:1, b:2", "c:3;d:4"],
        "path": "v2/check",
        "token": "t0k",
        "timeout": 1.5,  # configdump's seconds for `timeout = 1.5s`
    }
    assert rspamd_check.Section.from_dump(dumped) == rspamd_check.Section(
        ["a:1", "b:2", "c:3", "d:4"], "/v2/check", "t0k", 1.5
    )
    # A timeout the plugin refuses disables it (the module finding says so): the default.
    assert rspamd_check.Section.from_dump({"timeout": "soon"}).timeout == 1.0
    # At or above rspamd's task_timeout the plugin waits 1 s instead (review: judged as 9),
    # or half a shorter task_timeout.
    assert rspamd_check.Section.from_dump({"timeout": 9.0}).timeout == 1.0
    assert rspamd_check.Section.from_dump({"timeout": 1.0}, task_timeout=1.0).timeout == 0.5
    # A quoted time reads as UCL reads it unquoted (review: "500ms" was judged as 1 s).
    assert rspamd_check.Section.from_dump({"timeout": "500ms"}).timeout == 0.5


@pytest.mark.parametrize(
    ("servers", "entries", "rotation"),
    [("master-slave:a:1, b:2", ["a:1", "b:2"], "master-slave"),
     # A list's first entry carries it; rspamd reads it without regard to case.
     (["Round-Robin:[::1]:1", "b"], ["[::1]:1", "b"], "round-robin"),
     (" hash:a", ["a"], "hash"), ("random:", [], "random"),
     ("sequential:a:1", ["a:1"], "sequential"),
     # No rotation rspamd knows: an entry (_read_entry refuses it), or a host and port.
     ("failover:a:1", ["failover:a:1"], None), ("hash-1:11340", ["hash-1:11340"], None)],
)  # fmt: skip
def test_check_reads_a_rotation_prefix_as_the_plugin_does(
    servers: object, entries: list[str], rotation: str | None
) -> None:
    section = rspamd_check.Section.from_dump({"servers": servers})
    assert (section.servers, section.rotation) == (entries, rotation)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1.5, 1.5), (2, 2.0), ("1.5s", 1.5), ("500ms", 0.5), (" 2min ", 120.0), ("1H", 3600.0),
     ("3", 3.0), (0, None), ("0s", None), ("soon", None), (True, None), (None, None),
     ([1], None)],
)  # fmt: skip
def test_times_read_as_rspamd_reads_them(value: object, seconds: float | None) -> None:
    assert rspamd_check.ucl_seconds(value) == seconds


def test_the_shortest_task_timeout_is_the_options_or_a_workers() -> None:
    # As lua/rdns_scorer.lua works it out: a worker's own, where shorter, wins.
    options = '{"task_timeout": 8, "dns": {}}'
    workers = '{"normal": {"task_timeout": "2s"}}\n{"controller": {"count": 1}}'
    assert rspamd_check.shortest_task_timeout(options, workers) == 2.0
    assert rspamd_check.shortest_task_timeout("{}", '{"normal": {}}') == 8.0
    # Separators at either end make no entry, as in the plugin (gmatch '[^,;%s]+'): no
    # "cannot ask `servers` entry " problem for a trailing comma.
    assert rspamd_check.Section.from_dump({"servers": ", a:1;\n"}).servers == ["a:1"]


@pytest.mark.parametrize(
    ("modules", "state"),
    [("Modules enabled: dkim, rdns_scorer, spf", "enabled"),
     ("Modules enabled: dkim\nModules disabled (failed): rdns_scorer", "disabled (failed)"),
     # Another module whose name starts or ends with ours is not ours.
     ("Modules enabled: rdns_scorer_extra, my_rdns_scorer", None)],
)  # fmt: skip
def test_check_reads_the_modules_state_as_rspamd_says_it(modules: str, state: str | None) -> None:
    assert rspamd_check.module_state(modules) == state


def _asked_by_check(
    confdir: Path, monkeypatch: pytest.MonkeyPatch, modules: str, dumped: str
) -> list[str]:
    """check's lines for an rspamadm that prints ``modules`` (-m) and ``dumped`` (-j), each
    server it asks answering "ok"."""

    def rspamadm(_rspamadm: str, _confdir: Path, *args: str) -> str:
        return modules if args == ("-m",) else dumped

    def asked(
        base: str, path: str, _token: str | None, _wiring: probe.Wiring, timeout: float
    ) -> list[probe.Finding]:
        return [probe.Finding(True, f"asked {base}{path} ({timeout:g} s)")]

    monkeypatch.setattr(rspamd_check, "_rspamadm", rspamadm)
    monkeypatch.setattr(probe, "service_findings", asked)
    return [finding.line() for finding in rspamd_check.check(confdir, "rspamadm")]


def test_check_caps_the_timeout_it_advises_below_a_workers_task_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review leftover): the advice for a request_deadline no timeout covers
    # capped the timeout at 7.5 s, below rspamd's default task_timeout; under a worker's
    # 2 s the plugin refuses 7.5 s (and waits 1 s), so the advice must stay under 2 s.
    dumps = {
        ("-m",): "Modules enabled: rdns_scorer",
        ("-j", "rdns_scorer"): '{"servers": "127.0.0.1:11341", "timeout": 1}',
        ("-j", "options"): '{"task_timeout": 8}',
        ("-j", "worker"): '{"normal": {"task_timeout": "2s"}}',
    }
    monkeypatch.setattr(rspamd_check, "_rspamadm", lambda _r, _c, *args: dumps[args])
    wirings: list[probe.Wiring] = []

    def asked(
        _base: str, _path: str, _token: str | None, wiring: probe.Wiring, _timeout: float
    ) -> list[probe.Finding]:
        wirings.append(wiring)
        return []

    monkeypatch.setattr(probe, "service_findings", asked)
    rspamd_check.check(tmp_path, "rspamadm")
    assert [wiring.max_timeout for wiring in wirings] == [1.5]
    assert probe._deadline_finding(2.5, 1.0, wirings[0]).text.endswith(
        "lower request_deadline to 1.3 s or less (`timeout` in rspamd's section cannot be "
        "more than 1.5 s)"
    )
    # rspamd's default task_timeout leaves install's cap as it was.
    dumps["-j", "worker"] = '{"normal": {}}'
    rspamd_check.check(tmp_path, "rspamadm")
    assert wirings[-1].max_timeout == integration.MAX_TIMEOUT == 7.5


def test_check_knows_the_settings_the_plugin_reads() -> None:
    # The plugin's `settings` table, as lua/rdns_scorer.lua writes it.
    lua = (CHECKOUT / "lua" / "rdns_scorer.lua").read_text()
    table = re.search(r"^local settings = \{\n(.*?)^\}", lua, re.M | re.S)
    assert table is not None
    keys = re.findall(r"^  (\w+) = ", table.group(1), re.M)
    assert sorted(keys) == sorted(rspamd_check.KNOWN_SETTINGS)


def test_check_names_a_setting_the_plugin_ignores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): `server = ...` (a typo for servers) left the default server,
    # which answered, so check said all was well while the plugin ignored the line.
    dumped = '{"server": "127.0.0.1:11350", "enabled": true, "timout": 2}'
    lines = _asked_by_check(tmp_path, monkeypatch, "Modules enabled: rdns_scorer", dumped)
    assert (
        "problem:   rspamd's section sets `server` (`servers`?), `timout` (`timeout`?), "
        "which the plugin does not know and ignores, using its default for what was meant: "
        "the settings are servers, path, timeout, check_local, check_authed, token, group, "
        "holddown, holddown_after, keepalive"
    ) in lines


def test_check_says_where_rspamd_says_why_it_refused_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (review): it pointed at journalctl alone, where stock Debian rspamd logs
    # to /var/log/rspamd/rspamd.log, and configtest passes such a section all the same.
    modules = "Modules disabled (failed): rdns_scorer"
    lines = _asked_by_check(tmp_path, monkeypatch, modules, '{"servers": "127.0.0.1:11341"}')
    assert lines[0] == (
        "problem:   rspamd has the rdns_scorer module disabled (failed): rspamd's log says "
        "why (/var/log/rspamd/rspamd.log, or `journalctl -u rspamd`: grep rdns_scorer), and "
        "so does `rspamadm configtest`, which passes all the same"
    )


def test_check_asks_every_server_and_names_each_it_cannot_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In the order written; an entry rspamd cannot ask is a problem in its place. No
    # plugin file in confdir (rspamd loads it from elsewhere): nothing said of it.
    dumped = '{"servers": "127.0.0.1:11341, ::1, [::1]:11342"}'
    lines = _asked_by_check(tmp_path, monkeypatch, "Modules enabled: rdns_scorer", dumped)
    assert lines == [
        "ok:        rspamd loads the rdns_scorer module",
        "ok:        asked http://127.0.0.1:11341/v1/check (1 s)",
        "problem:   rspamd cannot ask `servers` entry ::1: write host, host:port (a port "
        "from 1 to 65535; no URL, the path goes in `path`), or an IPv6 address in brackets "
        "([::1]:11340; without, rspamd "
        "reads port 0 or nothing)",
        "ok:        asked http://[::1]:11342/v1/check (1 s)",
    ]


# As the plugin refuses them at load (tests/test_rspamd.py): a rotation rspamd does not
# know, one after the first server, rspamd's SRV form, and sequential:, which rspamd 3.4
# does not read. A rotation the plugin takes is no problem: its servers are asked.
@pytest.mark.parametrize(
    ("servers", "said"),
    [
        (
            '"failover:127.0.0.1:11341, 127.0.0.1:11342, hash:127.0.0.1:11343"',
            [
                "problem:   rspamd cannot ask `servers` entry failover:127.0.0.1:11341: "
                "failover: is no rotation rspamd knows (round-robin:, master-slave:, random:, "
                "hash:), and no host:port either",
                "ok:        asked http://127.0.0.1:11342/v1/check (1 s)",
                "problem:   rspamd cannot ask `servers` entry hash:127.0.0.1:11343: a rotation "
                "(hash:) goes before the first server only",
            ],
        ),
        (
            '["service=rdns-scorer+example.com", "127.0.0.1:11342"]',
            [
                "problem:   rspamd cannot ask `servers` entry service=rdns-scorer+example.com: "
                "the plugin refuses rspamd's SRV form (service=NAME+DOMAIN), which crashed "
                "rspamd at load: write host:port",
                "ok:        asked http://127.0.0.1:11342/v1/check (1 s)",
            ],
        ),
        (
            '["sequential:127.0.0.1:11341", "127.0.0.1:11342"]',
            [
                "problem:   `servers` starts with the rotation sequential:, which the plugin "
                "refuses (rspamd 3.4 does not know it either): write round-robin:, "
                "master-slave:, random:, hash: or none (round robin); master-slave: asks the "
                "first server, the others only when it is down",
                "ok:        asked http://127.0.0.1:11341/v1/check (1 s)",
                "ok:        asked http://127.0.0.1:11342/v1/check (1 s)",
            ],
        ),
        (
            '"master-slave:127.0.0.1:11341, 127.0.0.1:11342"',
            [
                "ok:        asked http://127.0.0.1:11341/v1/check (1 s)",
                "ok:        asked http://127.0.0.1:11342/v1/check (1 s)",
            ],
        ),
    ],
)
def test_check_names_a_rotation_the_plugin_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, servers: str, said: list[str]
) -> None:
    dumped = f'{{"servers": {servers}}}'
    lines = _asked_by_check(tmp_path, monkeypatch, "Modules enabled: rdns_scorer", dumped)
    assert lines == ["ok:        rspamd loads the rdns_scorer module", *said]


def test_check_of_no_plugin_and_no_section_says_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One problem, one command: nothing loaded, nothing asked.
    lines = _asked_by_check(
        tmp_path, monkeypatch, "Modules enabled: dkim", "Section rdns_scorer NOT FOUND\n"
    )
    assert lines == [
        f"problem:   rspamd does not load the plugin ({tmp_path / 'plugins.d' / 'rdns_scorer.lua'}"
        f" is missing or was not read): run `rdns-scorer rspamd install --confdir {tmp_path}"
        " --config FILE`"
    ]


@pytest.mark.parametrize(
    ("reply", "why"),
    [(b"SSH-2.0-OpenSSH_9.2\r\n", "BadStatusLine"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", "IncompleteRead")],
)  # fmt: skip
def test_check_says_when_something_else_answers_on_the_port(reply: bytes, why: str) -> None:
    # Regression: no HTTP (an SSH server on the port), or a reply cut short, raised
    # http.client's exceptions (no OSError) as a traceback.
    listener = tcp_listener()
    port = listener.getsockname()[1]

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:  # the headers
                request += connection.recv(65536) or b"\r\n\r\n"
            head, _, body = request.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            while length and len(body) < int(length.group(1)):  # the whole body
                body += connection.recv(65536) or b" " * int(length.group(1))
            connection.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        findings = probe.service_findings(base, "/v1/check", None, rspamd_check.WIRING)
    finally:
        thread.join(5)
        listener.close()
    assert [finding.line() for finding in findings] == [
        f"problem:   {base} answers, but not as rdns-scorer does ({why}): another service? "
        "correct `servers` in rspamd's section"
    ]


def test_check_tells_a_service_that_takes_the_connection_but_never_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: a hung service (the listen queue takes the connection, nothing reads
    # it) was "nothing answers at ... (timed out): start the service".
    monkeypatch.setattr(probe, "REQUEST_TIMEOUT", 0.3)
    listener = tcp_listener()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        findings = probe.service_findings(base, "/v1/check", None, rspamd_check.WIRING)
    finally:
        listener.close()
    assert [finding.line() for finding in findings] == [
        f"problem:   {base} took the connection but sent no reply within 0.3 s: a hung "
        "service (its log; `systemctl restart rdns-scorer`), or something else on that "
        "port: correct `servers` in rspamd's section"
    ]


def test_check_reads_the_503_of_a_service_at_max_connections() -> None:
    # Regression: at [server] max_connections the service writes its 503 on accept and
    # closes without reading (scorer.connections). check sent the body in a second write,
    # which then failed: "nothing answers at ... ([Errno 32] Broken pipe): start the
    # service", 19 times in 20, of a service that runs. The plugins send one write and
    # read the 503 (RL_SCORER_FAIL "HTTP 503: too many connections, retry later").
    listener = tcp_listener()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    tries = 10

    def refuse() -> None:  # as scorer.connections.Refused: write, close, read nothing
        for _ in range(2 * tries):
            connection, _ = listener.accept()
            connection.sendall(REFUSED_REPLY)
            connection.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    try:
        lines = {
            probe.service_findings(base, "/v1/check", None, wiring)[0].line()
            for wiring in (rspamd_check.WIRING, spamassassin_check.WIRING)
            for _ in range(tries)
        }
    finally:
        thread.join(5)
        listener.close()
    assert lines == {f"problem:   {base}/v1/check answered 503: too many connections, retry later"}


def test_check_sends_a_token_as_the_plugin_does() -> None:
    # Regression: a token http.client cannot write as latin-1 stopped check (exit 2,
    # "'latin-1' codec can't encode"); the plugin sends its UTF-8 bytes, refused (401).
    service = ScorerProcess(f"127.0.0.1:{dead_port()}", '[server]\ntoken = "s3cret"\n').start()
    try:
        findings = probe.service_findings(
            service.url, "/v1/check", "s3cret\u20ac", rspamd_check.WIRING
        )
    finally:
        service.stop()
    assert [finding.line() for finding in findings] == [
        f"problem:   {service.url} refuses rspamd's checks (401): it sends a token the service "
        "does not take; run `rdns-scorer rspamd install --config FILE` with the service's config"
    ]


def _check(confdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["rspamd", "check", "--confdir", str(confdir)])
    return status, capsys.readouterr().out.splitlines()


def test_check_says_rspamd_is_wired_up_and_names_each_way_it_is_not(
    stock_confdir: Path, unbound: Unbound, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = stock_confdir / "plugins.d" / "rdns_scorer.lua"
    # A section without the plugin (its servers where nothing listens: the default port
    # on this machine is not the test's business).
    (stock_confdir / "rspamd.conf.local").write_text(
        f'rdns_scorer {{\n  servers = "127.0.0.1:{dead_port()}";\n}}\n'
    )
    status, out = _check(stock_confdir, capsys)
    assert status == 1
    assert out[0] == (
        # With the copy's --confdir: the advice is a command to run as it is.
        f"problem:   rspamd does not load the plugin ({plugin} is missing or was not read): "
        f"run `rdns-scorer rspamd install --confdir {stock_confdir}`"
    )
    (stock_confdir / "rspamd.conf.local").unlink()
    service = ScorerProcess(unbound.nameserver, '[server]\ntoken = "s3cret"\n').start()
    try:
        url = service.url
        install = ["rspamd", "install", "--confdir", str(stock_confdir), "--no-configtest"]
        assert (
            main([*install, "--config", str(service.config_path), "--listen", service.address]) == 0
        )
        capsys.readouterr()
        assert _check(stock_confdir, capsys) == (
            0,
            [
                "ok:        rspamd loads the rdns_scorer module",
                f"ok:        {plugin} is rdns-scorer {__version__}'s",
                f"ok:        {url}/v1/check answers rspamd's checks",
                f"ok:        {url} is ready (its resolver answers)",
                "rspamd asks rdns-scorer, and it answers",
            ],
        )
        local = stock_confdir / "rspamd.conf.local"
        installed = local.read_text()
        local.write_text(installed.replace("s3cret", "stale"))
        status, out = _check(stock_confdir, capsys)
        assert (status, out[2]) == (
            1,
            f"problem:   {url} refuses rspamd's checks (401): it sends a token the service "
            f"does not take; run `rdns-scorer rspamd install --confdir {stock_confdir} "
            "--config FILE` with the service's config",
        )
        local.write_text(installed.replace('path = "/v1/check"', 'path = "/v0/check"'))
        assert _check(stock_confdir, capsys)[1][2] == (
            f"problem:   {url} has no /v0/check (404): correct `path` in rspamd's section"
        )
        local.write_text(installed.replace("rdns_scorer {", "rdns_scorer {\n  enabled = false;"))
        assert _check(stock_confdir, capsys)[1][0] == (
            "problem:   rspamd has the rdns_scorer module disabled (explicitly): "
            "`enabled = false` in its section"
        )
        local.write_text(installed)
        plugin.write_text(plugin.read_text() + "-- edited\n")
        assert _check(stock_confdir, capsys)[1][1] == (
            f"problem:   {plugin} is not rdns-scorer {__version__}'s (an earlier release, or "
            f"edited): run `rdns-scorer rspamd install --confdir {stock_confdir}` to update it"
        )
    finally:
        service.stop()
    status, out = _check(stock_confdir, capsys)
    assert status == 1 and out[2].startswith(f"problem:   nothing answers at {url} (")
    assert out[-1] == "2 problems (mail still flows: the plugin fails open)"


def test_check_says_when_the_services_resolver_does_not_answer(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = ScorerProcess(f"127.0.0.1:{dead_port()}").start()
    try:
        install = ["rspamd", "install", "--confdir", str(stock_confdir), "--no-configtest"]
        assert main([*install, "--listen", service.address]) == 0
        capsys.readouterr()
        status, out = _check(stock_confdir, capsys)
        assert status == 1
        assert out[2] == f"ok:        {service.url}/v1/check answers rspamd's checks"
        assert out[3].startswith(f"problem:   {service.url} is not ready (resolver ")
    finally:
        service.stop()


def test_check_merges_two_sections_as_rspamd_does(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: with rdns_scorer { } written twice, configdump -j prints two JSON
    # objects and check stopped (exit 2, "Extra data"). The plugin gets them merged,
    # the later one's keys winning: here its servers.
    service = ScorerProcess(f"127.0.0.1:{dead_port()}").start()
    try:
        install = ["rspamd", "install", "--confdir", str(stock_confdir), "--no-configtest"]
        assert main([*install, "--listen", f"127.0.0.1:{dead_port()}"]) == 0
        capsys.readouterr()
        with (stock_confdir / "rspamd.conf.local").open("a") as local:
            local.write(f'rdns_scorer {{\n  servers = "{service.address}";\n}}\n')
        status, out = _check(stock_confdir, capsys)
        assert status == 1
        assert out[2] == f"ok:        {service.url}/v1/check answers rspamd's checks"
        assert out[3].startswith(f"problem:   {service.url} is not ready (resolver ")
        assert len(out) == 5  # that server alone: the first block's is replaced
    finally:
        service.stop()


def test_check_never_shows_what_configdump_printed_when_it_is_no_json() -> None:
    # Regression (review): the error quoted the output, where the section's token is.
    with pytest.raises(RuntimeError) as raised:
        rspamd_check.merged_sections('{"token": "s3cret"} not json')
    assert "printed no JSON" in str(raised.value) and "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("stderr", "said"),
    [("", "exit 1"), ("cannot open /etc/rspamd/x.conf\n", "cannot open /etc/rspamd/x.conf")],
)
def test_check_never_shows_what_a_failed_rspamadm_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, said: str
) -> None:
    # Regression (review): with nothing on stderr, the error quoted stdout: for
    # `configdump -j rdns_scorer` that is the section, token and all. Its errors are
    # what it says on stderr: those are shown.
    def failed(command: list[str], **_options: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, '{"token": "s3cret"}', stderr)

    monkeypatch.setattr(subprocess, "run", failed)
    with pytest.raises(RuntimeError) as raised:
        rspamd_check.check(tmp_path, "rspamadm")
    assert "s3cret" not in str(raised.value) and str(raised.value).endswith(f"failed: {said}")


def test_check_says_when_the_section_is_missing(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the plugin without its section (rspamd.conf.local lost it) was sent to
    # rspamd's log for a reason that is not there, and the plugin's default server was
    # asked, though a plugin without a section asks nothing.
    def ask(*_args: object) -> list[probe.Finding]:
        raise AssertionError("a server asked without a section")

    monkeypatch.setattr(probe, "service_findings", ask)
    install = ["rspamd", "install", "--confdir", str(stock_confdir), "--no-configtest"]
    assert main([*install, "--listen", f"127.0.0.1:{dead_port()}"]) == 0
    capsys.readouterr()
    (stock_confdir / "rspamd.conf.local").unlink()
    plugin = stock_confdir / "plugins.d" / "rdns_scorer.lua"
    assert _check(stock_confdir, capsys) == (
        1,
        [
            "problem:   rspamd has the rdns_scorer module disabled (unconfigured): it has no "
            "rdns_scorer section (rspamd.conf.local); run `rdns-scorer rspamd install "
            f"--confdir {stock_confdir} --config FILE` with the service's config",
            f"ok:        {plugin} is rdns-scorer {__version__}'s",
            "1 problem (mail still flows: the plugin fails open)",
        ],
    )


def test_check_names_an_rdns_scorer_section_in_the_override_file(
    stock_confdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: a section in rspamd.conf.local.override replaces install's whole (its
    # keys alone, so the plugin asks the default server); check only said nothing answers
    # there, "correct `servers` in rspamd's section", without saying which section.
    install = ["rspamd", "install", "--confdir", str(stock_confdir), "--no-configtest"]
    dead = f"127.0.0.1:{dead_port()}"
    assert main([*install, "--listen", f"127.0.0.1:{dead_port()}"]) == 0
    capsys.readouterr()
    override = stock_confdir / "rspamd.conf.local.override"
    override.write_text(f'# ours\nrdns_scorer {{\n  servers = "{dead}";\n}}\n')
    status, out = _check(stock_confdir, capsys)
    assert status == 1
    assert out[2] == (
        f"problem:   {override} line 2 has an rdns_scorer section, which replaces the one "
        "in rspamd.conf.local whole (not one of its keys is used): remove it (or comment it "
        f"out) and run `rdns-scorer rspamd install --confdir {stock_confdir} --config FILE`"
    )
    assert out[3].startswith(f"problem:   nothing answers at http://{dead} (")
    override.write_text(f'# rdns_scorer {{\n#  servers = "{dead}";\n# }}\n')
    assert not any("override" in line for line in _check(stock_confdir, capsys)[1])


def test_check_without_rspamadm_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["rspamd", "check", "--confdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "rdns-scorer rspamd check: rspamadm not found (is rspamd installed here?)\n"
    )


def test_install_names_the_check_with_its_confdir_quoted(tmp_path: Path) -> None:
    # Regression (review): a confdir with a space in it was shown as two arguments.
    confdir = tmp_path / "my rspamd"
    confdir.mkdir()
    section = integration.module_section(config_from_mapping({}))
    report = integration.install(confdir, section, rspamadm=None)
    assert report.ok and report.lines[-1] == (
        f"`rdns-scorer rspamd check --confdir '{confdir}'` says whether rspamd reaches the service"
    )


def test_advice_names_the_confdir_unless_it_is_the_default(tmp_path: Path) -> None:
    # The commands check and install show run on the directory they were given.
    assert integration.confdir_option(Path("/etc/rspamd")) == ""
    assert (
        integration.confdir_option(tmp_path / "my rspamd") == f" --confdir '{tmp_path}/my rspamd'"
    )


def test_uninstall_names_the_stock_rules_the_docs_zero_beside_the_plugin(tmp_path: Path) -> None:
    # docs/rspamd.md's "Do not count a missing PTR three times", done as it says, then
    # uninstall: the zeroed rules stay zero, and a client without a PTR would score
    # nothing (regression, review: uninstall said nothing of them).
    docs = (REPO / "docs" / "rspamd.md").read_text()
    examples = re.findall(r"```\n# /etc/rspamd/(local\.d/\S+)\n(.*?)```", docs, re.S)
    assert [name for name, _ in examples] == [
        "local.d/headers_group.conf",
        "local.d/hfilter_group.conf",
    ]
    section = integration.module_section(config_from_mapping({}))
    assert integration.install(tmp_path, section, rspamadm=None).ok
    (tmp_path / "local.d").mkdir()
    for name, text in examples:
        (tmp_path / name).write_text("# commented out: RDNS_NONE { weight = 0.0; }\n" + text)
    report = integration.uninstall(tmp_path, rspamadm=None, run_configtest=False)
    assert report.ok
    notes = [text for text in report.lines if "set it back" in text]
    assert notes == [
        f"note:      {tmp_path / name} line 3 sets rspamd's {symbol}: if you zeroed it beside "
        "the plugin, set it back, or a client without a PTR scores nothing now"
        for (name, _), symbol in zip(
            examples, ["RDNS_NONE", "HFILTER_HOSTNAME_UNKNOWN"], strict=True
        )
    ]
