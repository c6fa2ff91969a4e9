"""rspamd integration: ``rdns-scorer rspamd config|install|uninstall|check|symbols``
(``check`` in :mod:`scorer.integrations.rspamd_check`).

The plugin itself is ``lua/rdns_scorer.lua`` (with ``lua/rdns_scorer.conf`` as a commented
example). Those files are the source of truth; :func:`plugin_dir` finds them in the checkout
or where ``pip install`` put them (:func:`scorer.integrations.shipped_dir`).

The Lua module keeps a literal copy of the symbol table (it is a single file dropped into
``plugins.d/``, so it cannot import anything of ours). :func:`lua_symbols_block` renders
that copy from :data:`scorer.symbols.SYMBOLS`; a test fails when the two differ and
``rdns-scorer rspamd symbols --write lua/rdns_scorer.lua`` updates it.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from scorer.config import Config, load_config, local_address, with_overrides
from scorer.files import os_error_text
from scorer.integrations import plugin_timeout, replace_file, shipped_dir
from scorer.symbols import SYMBOLS

MODULE = "rdns_scorer"
PLUGIN_FILE = f"{MODULE}.lua"
MARK_BEGIN = "# >>> rdns-scorer: managed by `rdns-scorer rspamd install`; edits inside are lost"
MARK_END = "# <<< rdns-scorer"
SYMBOLS_BEGIN = "-- symbols:begin"
SYMBOLS_END = "-- symbols:end"
DEFAULT_CONFDIR = Path("/etc/rspamd")
# The config of the systemd install (contrib/rdns-scorer.service).
SYSTEMD_CONFIG = Path("/etc/rdns-scorer/scorer.toml")
TASK_TIMEOUT = 8.0  # rspamd's default task_timeout: the whole scan's


def longest_timeout(task_timeout: float) -> float:
    """The longest plugin timeout that leaves the rest of a scan room under rspamd's
    ``task_timeout``: half a second, or half of a task_timeout under a second (the
    plugin refuses a timeout at or above it and waits much less)."""
    return max(task_timeout - 0.5, task_timeout / 2)


MAX_TIMEOUT = longest_timeout(TASK_TIMEOUT)  # 7.5 s, what install writes at most
# The accounts the Debian (``_rspamd``) and upstream (``rspamd``) packages run rspamd as:
# the whole daemon, so it must be able to read every file install writes.
RSPAMD_ACCOUNTS = ("_rspamd", "rspamd")


def plugin_dir() -> Path:
    """The directory holding ``rdns_scorer.lua``; FileNotFoundError names where it looked."""
    return shipped_dir("lua", PLUGIN_FILE)


# -- the symbol table copy inside the Lua module ------------------------------------------


def _lua_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def lua_symbols_block() -> str:
    """The Lua ``SYMBOLS`` table, exactly as it sits between the markers in the plugin."""
    lines = [SYMBOLS_BEGIN, "local SYMBOLS = {"]
    for symbol in SYMBOLS.values():
        fields = ", ".join(
            _lua_string(value) for value in (symbol.name, str(symbol.family), symbol.description)
        )
        lines.append(f"  {{ {fields} }},")
    lines += ["}", SYMBOLS_END]
    return "\n".join(lines) + "\n"


def embedded_symbols_block(lua_source: str) -> str:
    """The block between the symbol markers in a plugin's source (markers included)."""
    start = lua_source.find(SYMBOLS_BEGIN)
    end = lua_source.find(SYMBOLS_END, start)
    if start == -1 or end == -1:
        raise ValueError(f"no symbol table between {SYMBOLS_BEGIN!r} and {SYMBOLS_END!r}")
    return lua_source[start : end + len(SYMBOLS_END)] + "\n"


def sync_symbols(path: Path) -> bool:
    """Rewrite the symbol block in the plugin at ``path``; True if it changed."""
    source = path.read_text()
    current = embedded_symbols_block(source)
    wanted = lua_symbols_block()
    if current == wanted:
        return False
    # Without the line break after the end marker, which the file's last line may lack.
    path.write_text(source.replace(current[:-1], wanted[:-1], 1))
    return True


# -- the module section --------------------------------------------------------------------


def _ucl_string(text: str) -> str:
    # No "$" ever gets here (UCL would expand "$VAR" even inside quotes, and "$$" only
    # sometimes): the token is RFC 6750 syntax (scorer.config.BEARER_TOKEN).
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def module_section(config: Config) -> str:
    """The top-level ``rdns_scorer { ... }`` section for a service running with ``config``."""
    # The service answers within its request deadline; give the network a little on top,
    # but stay below rspamd's task_timeout, at or above which the plugin uses 1 s.
    wanted = plugin_timeout(config.dns.request_deadline)
    timeout = min(wanted, MAX_TIMEOUT)
    lines = [
        f"{MODULE} {{",
        f"  servers = {_ucl_string(local_address(config.server.listen))};",
        '  path = "/v1/check";',
        f"  timeout = {timeout:g}s;",
        # No check_local/check_authed: the plugin's defaults are false, and a key in the
        # module section would make rspamd ignore the admin's `options` ones.
    ]
    if timeout < wanted:
        lines.append(
            f"  # [dns] request_deadline {config.dns.request_deadline:g} s leaves no room below "
            f"rspamd's task_timeout ({TASK_TIMEOUT:g} s by default): checks slower than "
            f"{timeout:g} s fail open. Lower request_deadline."
        )
    if config.server.token:
        lines.append(f"  token = {_ucl_string(config.server.token)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- install -------------------------------------------------------------------------------


@dataclass
class InstallReport:
    lines: list[str] = field(default_factory=list)
    ok: bool = True
    changed: bool = False  # a file was created or updated: rspamd must reload to see it

    def say(self, line: str) -> None:
        self.lines.append(line)


def _backup(path: Path, stamp: str) -> Path:
    """Copy ``path`` to ``path.rdns-scorer-<stamp>.bak`` (never ending in .lua: plugins.d
    loads every *.lua file)."""
    info = path.stat()
    backup = path.with_name(f"{path.name}.rdns-scorer-{stamp}.bak")
    n = 1
    while True:
        try:  # created here or not at all: never over another backup
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            backup = path.with_name(f"{path.name}.rdns-scorer-{stamp}-{n}.bak")
            n += 1
    # The file as it was, mode, owner, group and times too: restored with mv, a backup
    # that root owned alone would lock rspamd out (and one holding the token is private
    # from its first byte, as the file is).
    with os.fdopen(fd, "wb") as copy:
        copy.write(path.read_bytes())
        copy.flush()  # before utime: a write after it would set the time again
        os.fchown(copy.fileno(), info.st_uid, info.st_gid)
        os.fchmod(copy.fileno(), info.st_mode & 0o7777)
        os.utime(copy.fileno(), ns=(info.st_atime_ns, info.st_mtime_ns))
    return backup


@contextlib.contextmanager
def _backed_up(path: Path, stamp: str | None) -> Iterator[Path | None]:
    """A backup of ``path`` (none when ``stamp`` is None) for the change made inside the
    block. A change that fails leaves the file as it was (rewrites are atomic), and its
    copy would be an unnamed backup of nothing changed beside "restore the backups named
    above": it goes again."""
    backup = None if stamp is None else _backup(path, stamp)
    try:
        yield backup
    except BaseException:
        if backup is not None:
            backup.unlink(missing_ok=True)
        raise


def _write_if_changed(
    path: Path, content: str, stamp: str, report: InstallReport, new_mode: int = 0o644
) -> None:
    """Write ``content`` unless it is already there; an existing file keeps its mode,
    owner and group."""
    if path.exists():
        if _read_kept(path) == content:
            report.say(f"unchanged: {path}")
            return
        with _backed_up(path, stamp) as backup:
            info = path.stat()
            replace_file(path, content, info.st_mode & 0o7777, (info.st_uid, info.st_gid))
        report.say(f"updated:   {path} (backup: {backup})")
    else:
        replace_file(path, content, new_mode, None)
        report.say(f"created:   {path}")
    report.changed = True


def _read_kept(path: Path) -> str:
    """An admin's file as text whose bytes are all written back as they were: rspamd
    does not require UTF-8, and a Latin-1 comment must survive our edit."""
    # Decoded from the bytes: read_text's universal newlines would turn the file's CRLF
    # line ends into LF, the admin's lines included.
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


# A UTF-8 byte-order mark, as _read_kept decodes it. An editor may start a file with one;
# rspamd 3.4's UCL parser does not skip it but reads it as part of the first key
# (`rspamadm configdump` shows "\ufeffrdns_scorer {"): a section that starts the file is
# silently ignored, configtest passing, and a comment or blank line there is a syntax
# error ("invalid character in a key").
BOM = "\ufeff"


def bom_text(path: Path) -> str | None:
    """What to say of ``path`` (one of ``TOP_LEVEL_LOCAL_FILES``) when it starts with a
    byte-order mark, or None (none, or no such file)."""
    try:
        text = _read_kept(path) if path.is_file() else ""
    except OSError:
        return None  # said where the file is read in earnest
    if not text.startswith(BOM):
        return None
    # Spaces and tabs after the mark end that key: the next token is its value (a
    # section, `group { ... }`, nested under it and ignored as it is).
    first = _UCL_TOKEN.match(text, len(text) - len(text[1:].lstrip(" \t")))
    key = first.group() if first else ""
    if not key or key[0] in _UCL_ENDS or key[0] in "#/":
        what = ": rspamd refuses the whole config (configtest: invalid character in a key)"
    else:
        what = f", so `{key.strip(chr(34) + chr(39))}` there is ignored (configtest passes)"
    fix = (
        "run install again, which removes it"
        if path.name == "rspamd.conf.local"
        else f"remove it: sed -i '1s/^\\xEF\\xBB\\xBF//' {path}"
    )
    return (
        f"{path} starts with a UTF-8 byte-order mark, which rspamd reads as part of the "
        f"first key{what}; {fix}"
    )


# An rdns_scorer section, and the weights of our symbols an admin sets in rspamd
# (docs/rspamd.md, "Settings"), by their keys from the top of the file (_blocks): the
# group's `rdns_scorer {` inside `group {` is no section.
_OUR_SECTION = (MODULE,)
_OUR_GROUP = ("group", MODULE)
# rspamd's own rules docs/rspamd.md ("Do not count a missing PTR three times") has the
# admin zero beside the plugin: without it, a client with no PTR would score nothing.
_ZEROED_BESIDE_THE_PLUGIN = ("RDNS_NONE", "HFILTER_HOSTNAME_UNKNOWN")

# UCL as _blocks reads it: a quoted string, one of `{}[]`, what ends a statement (`;`,
# `,`, a line end: UCL wants a block's keys on the line of its `{`), a key's `=` or `:`
# (JSON's), or any other run of characters (a key, a value, a macro).
_UCL_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}\[\];,\n=:]|[^\s{}\[\];,=:"\']+'
)
_UCL_ENDS = frozenset("{}[];,\n")


class _Block(NamedTuple):
    """A ``{`` block of UCL: its keys from the top of the file down, its line, the keys
    set directly in it (a macro, ``.include``, is one too), and those of them set to a
    block or a list (``nested``), filled in as the walk passes them."""

    path: tuple[str, ...]
    line: int
    keys: list[str]
    nested: list[str]


def _blocks(text: str) -> Iterator[_Block]:
    """Each ``{`` block after keys in the UCL ``text`` (comments blanked). A key of two
    words is a nested one to UCL: ``group "rdns_scorer" {``, ``group { rdns_scorer {``
    and ``"rdns_scorer": {`` in ``group = {`` are all ``("group", "rdns_scorer")``. A
    block's ``keys`` are whole once the walk is past its end (``list(_blocks(...))``)."""
    enclosing: list[tuple[str, ...]] = [()]
    opened: list[_Block | None] = [None]  # the block each level is in (None: a list)
    keys: list[str] = []
    for token in _UCL_TOKEN.finditer(text):
        word = token.group()
        if word in ("{", "["):
            if keys and opened[-1] is not None:
                opened[-1].nested.append(keys[0])
            enclosing.append(enclosing[-1] + tuple(keys))
            block = None
            if word == "{" and keys:
                line = text.count("\n", 0, token.start()) + 1
                block = _Block(enclosing[-1], line, [], [])
                yield block
            opened.append(block)
        elif word in ("}", "]") and len(enclosing) > 1:  # a stray one: rspamd says so
            enclosing.pop()
            opened.pop()
        if word in _UCL_ENDS:
            keys = []
        elif word not in ("=", ":"):
            key = word[1:-1] if word[0] in "\"'" else word
            if not keys and opened[-1] is not None:
                opened[-1].keys.append(key)
            keys.append(key)


def _section_line(text: str, path: tuple[str, ...] = _OUR_SECTION) -> int | None:
    """The line number of an rdns_scorer section (or another block, by its ``path``) in
    ``text``, or None. One commented out is none, with ``#`` or inside ``/* */`` (UCL's
    two kinds of comment)."""
    blocks = _blocks(_comments_blanked(text))
    return next((block.line for block in blocks if block.path == path), None)


def _comments_blanked(text: str) -> str:
    """``text`` with every UCL comment's characters but its line ends turned to spaces,
    so lines keep their numbers: ``#`` to the end of the line, and ``/* */``, which
    nest. A ``#`` or ``/*`` inside a quoted string is no comment."""
    out = list(text)
    index, depth, quote = 0, 0, ""
    while index < len(text):
        pair = text[index : index + 2]
        if depth:
            if pair in ("/*", "*/"):
                depth += 1 if pair == "/*" else -1
                out[index] = out[index + 1] = " "
                index += 2
                continue
            if text[index] != "\n":
                out[index] = " "
        elif quote:
            if text[index] == "\\":
                index += 1  # the escaped character is no closing quote
            elif text[index] == quote:
                quote = ""
        elif text[index] in "\"'":
            quote = text[index]
        elif text[index] == "#":
            end = text.find("\n", index)
            end = len(text) if end < 0 else end
            out[index:end] = " " * (end - index)
            index = end
            continue
        elif pair == "/*":
            depth = 1
            out[index] = out[index + 1] = " "
            index += 2
            continue
        index += 1
    return "".join(out)


#: The keys of the module's section that install never writes (module_section): an
#: admin's own section beside the managed block may set these, and only these, each to
#: one value. rspamd merges the two sections, so they add to install's, and an upgrade
#: keeps them. Not ``enabled``: rspamd 3.4 reads it in the first rdns_scorer section
#: alone (``enabled = false`` after install's block left the module enabled; rspamadm
#: configdump -m), where the plugin reads the sections merged (get_all_opt).
ADMIN_KEYS = ("check_local", "check_authed", "holddown", "holddown_after", "keepalive", "group")


def _refuse_a_second_section(outside: str) -> None:
    """rspamd merges two rdns_scorer sections, the later key winning: a section written
    by hand (docs/rspamd.md, "By hand") beside ours would silently keep its own
    servers, path, timeout or token, or override ours. The admin decides which stays.
    A section of the admin's own that sets only what install never writes
    (``ADMIN_KEYS``: check_authed, holddown ...), each to one value, is left beside
    ours: without it such a setting had no place once install wrote the section (edits
    inside the block are lost at the next install, and a section outside was refused).
    A block or a list there (``group "rdns_scorer" { max_score }``, the weights' group
    written inside it) would make the plugin refuse the merged section, disabling the
    module while configtest passes, and so would a key set twice in it (rspamd makes
    the two values a list)."""
    blocks = list(_blocks(_comments_blanked(outside)))  # whole: each block's keys read
    for block in (block for block in blocks if block.path == _OUR_SECTION):
        keys, nested = block.keys, list(dict.fromkeys(block.nested))
        twice = [key for key in dict.fromkeys(keys) if keys.count(key) > 1]
        if keys and all(key in ADMIN_KEYS for key in keys) and not nested and not twice:
            continue
        others = [key for key in dict.fromkeys(keys) if key not in ADMIN_KEYS]
        sets = f" setting {', '.join(others)}" if others else ""
        if not others and nested:
            sets = f" setting {', '.join(nested)} to a block or list"
        elif not others and twice:
            sets = f" setting {', '.join(twice)} twice"
        enabled = (
            "; `enabled` counts in install's section only: to turn the module off, run "
            "`rdns-scorer rspamd uninstall`"
            if "enabled" in others
            else ""
        )
        raise ValueError(
            f"line {block.line} (outside the managed block) has an rdns_scorer section{sets} "
            "already; rspamd would merge it with ours, its keys beating or adding to ours: "
            "remove it (or comment it out) and run install again (a section of your own "
            f"beside the block may set {', '.join(ADMIN_KEYS)}, each to one value: install "
            f"writes the rest{enabled})"
        )


def section_line(path: Path) -> int | None:
    """The line number of an rdns_scorer section in the file ``path`` (not commented
    out), or None: for ``rdns-scorer rspamd check``, as install reads it."""
    return _section_line(_read_kept(path))


def _refuse_an_overriding_section(override: Path) -> None:
    """rspamd reads rspamd.conf.local.override at priority 10, and a section there
    replaces ours whole (rspamadm configdump shows its keys alone): the servers and
    token install writes would never be used, and configtest passes all the same."""
    line = _section_line(_read_kept(override)) if override.exists() else None
    if line is not None:
        raise ValueError(
            f"line {line} has an rdns_scorer section, which replaces the one install writes "
            "to rspamd.conf.local whole (not one of its keys would be used): remove it (or "
            "comment it out) and run install again"
        )


def _managed_span(text: str) -> tuple[int, int] | None:
    """Where our block is in ``text`` (start, end: markers and their lines included), or
    None; ValueError for a begin marker without an end."""
    start = text.find(MARK_BEGIN)
    if start == -1:
        return None
    end = text.find(MARK_END, start)
    if end == -1:
        raise ValueError(f"found {MARK_BEGIN!r} without {MARK_END!r}; fix the file by hand")
    # To the end of the marker's line: all of that comment is ours. Text an admin
    # added after the marker ("# <<< rdns-scorer (do not edit)") would otherwise stay
    # behind as a line of its own, not a comment: a UCL syntax error.
    end = text.find("\n", end)
    return start, len(text) if end == -1 else end + 1


def _outside_block(text: str, span: tuple[int, int]) -> str:
    """``text`` with the block's lines blanked, so a line number is still the file's."""
    start, end = span
    return text[:start] + "\n" * text.count("\n", start, end) + text[end:]


def with_managed_block(text: str, section: str) -> str:
    """``text`` with our section between the markers: replaced if present, else appended."""
    block = f"{MARK_BEGIN}\n{section}{MARK_END}\n"
    span = _managed_span(text)
    if span is not None:
        _refuse_a_second_section(_outside_block(text, span))
        return text[: span[0]] + block + text[span[1] :]
    _refuse_a_second_section(text)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text else "") + block


def installed_section(local: Path) -> str | None:
    """The section between our markers in ``local`` (rspamd.conf.local), or None when it
    has no whole block (install then says what is wrong with the file)."""
    try:
        text = _read_kept(local)
        span = _managed_span(text)
    except (OSError, ValueError):
        return None
    if span is None:
        return None
    block = text[span[0] : span[1]]
    section = block[block.index("\n") + 1 : block.rindex(MARK_END)]
    # Markers with nothing (or blank lines) between them keep nothing: the section is
    # written anew, not "kept" empty, which would leave the plugin unconfigured.
    return section if section.strip() else None


def has_token(section: str | None) -> bool:
    """Whether a section ``module_section`` wrote (or ``installed_section`` read) sends a
    token."""
    return section is not None and "\n  token = " in section


# A section exactly as module_section writes it (any servers, timeout and token): one
# the admin edited inside the markers is theirs too, and uninstall backs it up.
_QUOTED = r'"(?:[^"\\\n]|\\.)*"'
_SECTION_AS_WRITTEN = re.compile(
    rf"{MODULE} {{\n  servers = {_QUOTED};\n  path = \"/v1/check\";\n"
    r"  timeout = [0-9.e+-]+s;\n(?:  # \[dns\] request_deadline [^\n]*\n)?"
    rf"(?:  token = {_QUOTED};\n)?}}\n"
)


def block_as_written(text: str) -> bool:
    """Whether the managed block in ``text`` holds a section exactly as install writes it
    (False for one edited by hand, or no block)."""
    try:
        span = _managed_span(text)
    except ValueError:
        return False
    if span is None:
        return False
    block = text[span[0] : span[1]]
    section = block[block.index("\n") + 1 : block.rindex(MARK_END)]
    return _SECTION_AS_WRITTEN.fullmatch(section) is not None


def without_managed_block(text: str) -> str | None:
    """``text`` without our block, or None when it has none: the reverse of
    ``with_managed_block``, the blank line it put before an appended block included
    (also when the admin has added lines after the block since)."""
    span = _managed_span(text)
    if span is None:
        return None
    before, after = text[: span[0]], text[span[1] :]
    if before.endswith("\n\n"):
        before = before[:-1]
    return before + after


@dataclass(frozen=True)
class RspamdAccount:
    user: str
    uid: int
    group: str  # its primary group, which install gives read access to
    gid: int
    gids: frozenset[int]  # every group it is in


def rspamd_account() -> RspamdAccount | None:
    """The account rspamd runs as on this host, if one of the packaged ones exists."""
    for user in RSPAMD_ACCOUNTS:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        group = grp.getgrgid(entry.pw_gid).gr_name
        gids = frozenset(os.getgrouplist(user, entry.pw_gid))
        return RspamdAccount(user, entry.pw_uid, group, entry.pw_gid, gids)
    return None


def _readable_by(path: Path, account: RspamdAccount) -> bool:
    """Whether ``account`` may read ``path`` (a directory: list and enter it) by its mode."""
    info = path.stat()
    wanted = 0o5 if path.is_dir() else 0o4
    if info.st_uid == account.uid:
        shift = 6
    elif info.st_gid in account.gids:
        shift = 3
    else:
        shift = 0
    return (info.st_mode >> shift) & wanted == wanted


def _rspamd_group_mode(mode: int) -> int:
    """``mode`` for a file or directory handed to rspamd's group: read, never write. A
    0664 root:root rspamd.conf.local (or a 0770 plugins.d) became writable by group
    _rspamd, so a compromised scanner could rewrite its own config or drop Lua into
    plugins.d, kept across restarts."""
    return mode & ~0o020


def _let_rspamd_read(path: Path, account: RspamdAccount | None, report: InstallReport) -> None:
    """Give rspamd's group read access to ``path`` when its mode keeps rspamd out.

    rspamd refuses its whole config when one included file cannot be opened, and
    our configtest runs as root, so it would not notice.
    """
    if account is None or _readable_by(path, account):
        return
    group_bits = 0o050 if path.is_dir() else 0o040
    try:
        os.chown(path, -1, account.gid)
        path.chmod(_rspamd_group_mode(path.stat().st_mode & 0o7777) | group_bits)
    except OSError as error:
        report.say(f"error:     rspamd runs as {account.user} and cannot read {path}: {error}")
        report.ok = False
        return
    report.say(
        f"permissions: {path} now group {account.group}, so rspamd ({account.user}) can read it"
    )


def _hide_from_others(path: Path, account: RspamdAccount | None, report: InstallReport) -> None:
    """``path`` holds the token and every local user may read it: rspamd's group keeps
    read access, the others lose it. (A bare ``chmod o-r``, what this once advised,
    locks rspamd out when the file's group is not rspamd's: rspamd then refuses its
    whole config and scans nothing.)"""
    fix = f"chgrp {account.group if account else 'RSPAMD_GROUP'} {path} && chmod 640 {path}"
    if account is None:
        report.say(f"warning:   {path} is world-readable and holds the token: {fix}")
        return
    try:
        os.chown(path, -1, account.gid)
        path.chmod(_rspamd_group_mode(path.stat().st_mode & 0o7770) | 0o040)
    except OSError as error:
        report.say(f"warning:   {path} is world-readable and holds the token ({error}): {fix}")
        return
    report.say(
        f"permissions: {path} holds the token: now readable by group {account.group} "
        "(rspamd), no longer by every user"
    )


def rspamadm_command(confdir: Path, action: str, rspamadm: str = "rspamadm") -> list[str]:
    """``rspamadm ACTION`` (configtest, configdump) on the config in ``confdir``. CONFDIR
    and LOCAL_CONFDIR are compiled-in paths: pointed at confdir, so a copy of the config
    (or a non-default location) is read with its own rspamd.conf.local and plugins.d,
    not /etc/rspamd's."""
    if confdir.resolve() == DEFAULT_CONFDIR:
        return [rspamadm, action]
    return [
        rspamadm,
        f"--var=CONFDIR={confdir}",
        f"--var=LOCAL_CONFDIR={confdir}",
        action,
        "-c",
        str(confdir / "rspamd.conf"),
    ]


def configtest_command(confdir: Path, rspamadm: str = "rspamadm") -> list[str]:
    """``rspamadm configtest`` of the config in ``confdir``."""
    return rspamadm_command(confdir, "configtest", rspamadm)


def configtest(confdir: Path, rspamadm: str | None) -> tuple[bool | None, str]:
    """``rspamadm configtest`` on ``confdir``; (None, why) when it cannot run."""
    if rspamadm is None:
        return None, f"rspamadm not found; run `{shlex.join(configtest_command(confdir))}`"
    main_conf = confdir / "rspamd.conf"
    if not main_conf.is_file():
        return None, f"{main_conf} does not exist; configtest skipped"
    command = configtest_command(confdir, rspamadm)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"configtest could not run: {error}"
    output = (done.stdout + done.stderr).strip()
    return done.returncode == 0, output


def install(
    confdir: Path,
    section: str,
    rspamadm: str | None = None,
    source_dir: Path | None = None,
    run_configtest: bool = True,
) -> InstallReport:
    """Copy the plugin into ``confdir/plugins.d`` and put ``section`` into
    ``confdir/rspamd.conf.local`` between marker comments. Idempotent; every file it
    changes is first copied to a timestamped backup. Then ``rspamadm configtest``
    (``rspamadm`` is its path, None when not installed), unless ``run_configtest``
    is false."""
    report = InstallReport()
    account = rspamd_account()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    source = (source_dir or plugin_dir()) / PLUGIN_FILE
    plugins = confdir / "plugins.d"
    local = confdir / "rspamd.conf.local"
    current = _read_kept(local) if local.exists() else ""
    # Written without a byte-order mark (bom_text): ours is appended after whatever key
    # it hides, and a section of the admin's there (ADMIN_KEYS) counts once it is gone.
    unmarked = current.startswith(BOM)
    current = current.removeprefix(BOM)
    checked = confdir / "rspamd.conf.local.override"  # the file an error is about
    try:  # before anything is written: an error leaves no half-done install
        _refuse_an_overriding_section(checked)
        checked = local
        wanted = with_managed_block(current, section)
    except ValueError as error:
        report.say(f"error:     {checked}: {error}")
        report.ok = False
        return report
    try:
        if not plugins.exists():
            plugins.mkdir(parents=True)
            plugins.chmod(0o755)  # not the umask's choice: rspamd must list it
        _write_if_changed(plugins / PLUGIN_FILE, source.read_text(), stamp, report)

        secret = has_token(section)
        # A file holding the token is not for every local user: rspamd reads it through
        # its group (below). An existing one is hidden before it is backed up and
        # rewritten, which keep its mode: neither copy is ever world-readable.
        if secret and local.exists() and local.stat().st_mode & 0o004:
            _hide_from_others(local, account, report)
        _write_if_changed(local, wanted, stamp, report, new_mode=0o640 if secret else 0o644)
        for path in (plugins, plugins / PLUGIN_FILE, local):
            _let_rspamd_read(path, account, report)
    except OSError as error:
        # Said here, after what was already changed (and its backups), not instead of it.
        report.say(f"error:     {os_error_text(error)}{_as_root_hint(error)}")
        report.ok = False
    else:
        _say_configtest(confdir, rspamadm, run_configtest, report)
    if unmarked and report.ok:
        report.say(
            f"note:      removed the UTF-8 byte-order mark at the start of {local}: rspamd "
            "read it as part of the first key"
        )
    for name in TOP_LEVEL_LOCAL_FILES[1:]:
        if (bom := bom_text(confdir / name)) is not None:
            report.say(f"note:      {bom}")
    for unread in unread_module_files(confdir):
        report.say(f"note:      {unread_module_file_text(unread)}")
    if report.ok and not report.changed:
        report.say("nothing changed: no reload needed")
    elif report.ok and confdir.resolve() == DEFAULT_CONFDIR:
        report.say("reload rspamd to activate: systemctl reload rspamd")
    elif report.ok:
        report.say(f"reload the rspamd that reads {confdir} to activate")
    else:
        report.say("do not reload rspamd: fix the error, or restore the backups named above")
    if report.ok:
        # Where it is found (README, docs) only by those who already know it exists.
        where = confdir_option(confdir)
        report.say(f"`rdns-scorer rspamd check{where}` says whether rspamd reaches the service")
    return report


def uninstall(
    confdir: Path,
    rspamadm: str | None = None,
    source_dir: Path | None = None,
    run_configtest: bool = True,
) -> InstallReport:
    """Undo ``install``: our block out of ``confdir/rspamd.conf.local`` (the file goes
    when nothing else is left in it) and the plugin out of ``plugins.d`` (which goes
    when empty), each first copied to a backup unless it was only ours: the block alone,
    the plugin exactly as shipped (``source_dir``). Then configtest. A section written
    by hand is the admin's: named, never removed."""
    report = InstallReport()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    local = confdir / "rspamd.conf.local"
    plugin = confdir / "plugins.d" / PLUGIN_FILE
    try:  # before anything is removed: an error leaves the install whole
        current = _read_kept(local) if local.exists() else ""
        kept = without_managed_block(current)
    except ValueError as error:
        report.say(f"error:     {local}: {error}")
        report.ok = False
        return report
    try:
        if kept is not None and (kept.strip() or local.is_symlink()):
            # A symlink (config management's) is the admin's, and stays one as install
            # keeps it: what it points at loses the block, even if nothing is left.
            _write_if_changed(local, kept, stamp, report)
        elif kept is not None:
            # Nothing but our block (install created the file, or the admin left nothing
            # else in it): install would write it again, so no backup to clutter the dir,
            # unless the admin edited the block (their lines went with it, unsaved).
            _remove(local, None if block_as_written(current) else stamp, report)
        if plugin.exists():
            as_shipped = plugin.read_bytes() == shipped_plugin(source_dir)
            _remove(plugin, None if as_shipped else stamp, report)
            # rspamd ships no plugins.d: install made it (not a symlink: the admin's).
            if not plugin.parent.is_symlink() and not any(plugin.parent.iterdir()):
                plugin.parent.rmdir()
                report.say(f"removed:   {plugin.parent} (empty)")
        for path in (local, *(confdir / name for name in TOP_LEVEL_LOCAL_FILES[1:])):
            text = _read_kept(path) if path.is_file() else ""
            line = _section_line(text)
            if line is not None:
                report.say(
                    f"note:      {path} line {line} has an rdns_scorer section written by "
                    "hand (not install's): remove it yourself"
                )
            line = _section_line(text, _OUR_GROUP)
            if line is not None:
                report.say(
                    f"note:      {path} line {line} has a block of the rdns_scorer group "
                    "(your weights for the plugin's symbols): remove it yourself if you are "
                    "done with them"
                )
        _name_stock_rules_set_beside(confdir, report)
    except OSError as error:
        # Said after what was already removed (and its backups), not instead of it.
        report.say(f"error:     {os_error_text(error)}{_as_root_hint(error)}")
        report.ok = False
    if report.ok and report.changed:
        _say_configtest(confdir, rspamadm, run_configtest, report)
    if not report.ok:
        report.say("do not reload rspamd: fix the error, or restore the backups named above")
    elif not report.changed:
        report.say("nothing to remove: no reload needed")
    elif confdir.resolve() == DEFAULT_CONFDIR:
        report.say("reload rspamd to unload the plugin: systemctl reload rspamd")
    else:
        report.say(f"reload the rspamd that reads {confdir} to unload the plugin")
    return report


#: The admin's files rspamd reads at the top level of its config, where a section or a
#: `group "rdns_scorer"` of weights (docs/rspamd.md, "How scores map") may be: rspamd's
#: groups.conf includes local.d/groups.conf and override.d/groups.conf at its top level.
TOP_LEVEL_LOCAL_FILES = (
    "rspamd.conf.local",
    "rspamd.conf.local.override",
    "local.d/groups.conf",
    "override.d/groups.conf",
)


#: Where an admin used to rspamd's own modules puts a module's settings, and where
#: rspamd reads none for a custom one: only modules.d/NAME.conf, which rspamd ships for
#: its own modules, includes local.d/NAME.conf and override.d/NAME.conf. Likewise the
#: weights' local.d/NAME_group.conf: groups.conf includes it for rspamd's own groups only.
UNREAD_MODULE_FILES = (f"local.d/{MODULE}.conf", f"override.d/{MODULE}.conf")
UNREAD_GROUP_FILES = (f"local.d/{MODULE}_group.conf", f"override.d/{MODULE}_group.conf")


def unread_module_files(confdir: Path) -> list[Path]:
    """The files in ``confdir`` that look like the module's settings but that rspamd never
    reads (``UNREAD_MODULE_FILES``): what is set there (a timeout, check_authed, a token)
    silently does nothing, and configtest passes."""
    names = (*UNREAD_MODULE_FILES, *UNREAD_GROUP_FILES)
    return [confdir / name for name in names if (confdir / name).is_file()]


def unread_module_file_text(path: Path) -> str:
    """What to say of ``path`` (``unread_module_files``), for install and check alike."""
    if path.name == f"{MODULE}_group.conf":
        return (
            f"{path} is never read: rspamd's groups.conf includes local.d/ and override.d/ "
            f"*_group.conf files for its own groups only, so the weights set there do "
            f'nothing; put them in a `group "{MODULE}" {{ ... }}` block in rspamd.conf.local '
            "(or local.d/groups.conf) and delete the file"
        )
    return (
        f"{path} is never read: rspamd reads local.d/ and override.d/ files for its own "
        f"modules only, and this plugin's settings from the {MODULE} section in "
        f"rspamd.conf.local; move {', '.join(ADMIN_KEYS)} into a section of yours beside "
        "install's markers (servers, token and timeout come from the service's config: "
        "[server] listen and token, [dns] request_deadline, then install again) and "
        "delete the file"
    )


def _name_stock_rules_set_beside(confdir: Path, report: InstallReport) -> None:
    """Name each block of ``_ZEROED_BESIDE_THE_PLUGIN`` in the admin's rspamd config
    (``local.d``, ``override.d``, ``rspamd.conf.local``): uninstall leaves it, and a rule
    zeroed while the plugin scored in its place would stay zero once the plugin is gone."""
    files = [*sorted(confdir.glob("local.d/*.conf")), *sorted(confdir.glob("override.d/*.conf"))]
    files += [confdir / "rspamd.conf.local", confdir / "rspamd.conf.local.override"]
    for path in files:
        if not path.is_file():
            continue
        for block in _blocks(_comments_blanked(_read_kept(path))):
            rule = block.path[-1]
            if rule in _ZEROED_BESIDE_THE_PLUGIN:
                report.say(
                    f"note:      {path} line {block.line} sets rspamd's {rule}: if you zeroed "
                    "it beside the plugin, set it back, or a client without a PTR scores "
                    "nothing now"
                )


def shipped_plugin(source_dir: Path | None = None) -> bytes | None:
    """The plugin this release ships, or None where its files cannot be found (then an
    installed one is backed up before it goes: it may be an edited copy)."""
    try:
        return ((source_dir or plugin_dir()) / PLUGIN_FILE).read_bytes()
    except FileNotFoundError:
        return None


def _remove(path: Path, stamp: str | None, report: InstallReport) -> None:
    """Delete ``path``, first copied to a backup unless ``stamp`` is None."""
    with _backed_up(path, stamp) as backup:
        path.unlink()
    report.say(f"removed:   {path}" + ("" if backup is None else f" (backup: {backup})"))
    report.changed = True


def _as_root_hint(error: OSError) -> str:
    """Only a permission error is about who runs install (a full disk is not)."""
    return " (run it as root)" if isinstance(error, PermissionError) else ""


def _say_configtest(
    confdir: Path, rspamadm: str | None, run_configtest: bool, report: InstallReport
) -> None:
    """Run configtest (or say how to) and put its verdict in ``report``."""
    if run_configtest:
        passed, output = configtest(confdir, rspamadm)
    else:
        command = shlex.join(configtest_command(confdir))
        passed, output = None, f"configtest skipped (--no-configtest); run `{command}`"
    if passed is None:
        report.say(f"note:      {output}")
    else:
        report.say(f"configtest: {'OK' if passed else 'FAILED'}")
        if output:
            # Labelled as rspamadm's: a stock module's own complaint ("cannot read servers
            # definition", fuzzy_check without DNS) read as a word on our section.
            report.lines += [f"  rspamadm: {line}" for line in output.splitlines()]
        # A pass does not undo an error above: configtest runs as root, and rspamd not.
        report.ok = report.ok and passed


# -- command line --------------------------------------------------------------------------


def _service_config(args: argparse.Namespace) -> Config:
    return with_overrides(load_config(args.config), listen=args.listen)


def _cmd_config(args: argparse.Namespace) -> int:
    sys.stdout.write(module_section(_service_config(args)))
    if (note := _no_config_note(args)) is not None:  # on stderr: stdout is the section
        print(f"rdns-scorer rspamd config: note: {note}", file=sys.stderr)
    return 0


def confdir_option(confdir: Path) -> str:
    """`` --confdir DIR`` for a command shown to run on ``confdir``, or "" for the default
    (/etc/rspamd). Quoted: a confdir with a space in it made two arguments of the command."""
    if confdir.resolve() == DEFAULT_CONFDIR:
        return ""
    return f" --confdir {shlex.quote(str(confdir))}"


def add_confdir_option(parser: argparse.ArgumentParser) -> None:
    """``--confdir``, which every action on an rspamd config dir takes (``confdir_of``)."""
    parser.add_argument(
        "--confdir", default=str(DEFAULT_CONFDIR), help="rspamd config dir (default /etc/rspamd)"
    )


def confdir_of(args: argparse.Namespace) -> Path | None:
    """``--confdir``, absolute (configtest's --var=CONFDIR must not depend on rspamadm's
    own directory); None, said, when it is no directory."""
    confdir = Path(args.confdir).resolve()
    if confdir.is_dir():
        return confdir
    print(
        f"rdns-scorer rspamd {args.rspamd_command}: {confdir} is not a directory", file=sys.stderr
    )
    return None


def _cmd_install(args: argparse.Namespace) -> int:
    confdir = confdir_of(args)
    if confdir is None:
        return 2
    try:
        source_dir = plugin_dir()
    except FileNotFoundError as error:
        print(f"rdns-scorer rspamd install: {error}", file=sys.stderr)
        return 2
    # Without --config or --listen, an installed section stays as it is: an upgrade
    # (`rspamd check` says to run install for a new plugin) must not write the defaults'
    # section over the one install wrote from the service's config, its token dropped
    # and every check then refused (401), mail unscored.
    given = args.config is not None or args.listen is not None
    installed = installed_section(confdir / "rspamd.conf.local")
    if args.config is None and args.listen is not None and has_token(installed):
        # --listen alone builds the section from the defaults, which have no token: the
        # installed one's would be dropped, and every check then refused (401).
        print(
            "rdns-scorer rspamd install: the installed section has a token, which --listen "
            "alone would drop (every check then refused): give --config FILE, the "
            "service's config, with it",
            file=sys.stderr,
        )
        return 2
    kept = None if given else installed
    try:
        section = kept if kept is not None else module_section(_service_config(args))
        report = install(
            confdir, section, shutil.which("rspamadm"), source_dir, not args.no_configtest
        )
    except OSError as error:
        print(
            f"rdns-scorer rspamd install: {os_error_text(error)}{_as_root_hint(error)}",
            file=sys.stderr,
        )
        return 1
    print("\n".join(report.lines))
    if kept is not None and report.ok:  # after an error, "do not reload" is the last word
        print(
            "kept:      the rdns_scorer section installed before (its servers and token); "
            "give --config FILE (the service's config) to write it anew"
        )
    elif (note := _no_config_note(args)) is not None:
        print(f"note:      {note}")
    return 0 if report.ok else 1


def _no_config_note(args: argparse.Namespace) -> str | None:
    """What to say of a section built from the defaults where the unit's config exists.
    The README's first install may come before the habit of --config: without it the
    section has no token, and a service that requires one refuses every check."""
    if args.config is not None or not SYSTEMD_CONFIG.exists():
        return None
    return (
        "no --config: the section is for a service on its defaults (no token); for the "
        f"one the systemd unit runs, add --config {SYSTEMD_CONFIG}"
    )


def _cmd_uninstall(args: argparse.Namespace) -> int:
    confdir = confdir_of(args)
    if confdir is None:
        return 2
    try:
        report = uninstall(confdir, shutil.which("rspamadm"), None, not args.no_configtest)
    except OSError as error:
        print(
            f"rdns-scorer rspamd uninstall: {os_error_text(error)}{_as_root_hint(error)}",
            file=sys.stderr,
        )
        return 1
    print("\n".join(report.lines))
    return 0 if report.ok else 1


def _cmd_symbols(args: argparse.Namespace) -> int:
    if args.write:
        try:
            changed = sync_symbols(Path(args.write))
        except (OSError, ValueError) as error:  # no such file; no symbol block in it
            print(f"rdns-scorer rspamd symbols: {args.write}: {error}", file=sys.stderr)
            return 1
        print(f"{args.write}: {'updated' if changed else 'already up to date'}")
    else:
        sys.stdout.write(lua_symbols_block())
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``rdns-scorer rspamd ...``."""
    rspamd = commands.add_parser("rspamd", help="set up, check or remove the rspamd plugin")
    actions = rspamd.add_subparsers(dest="rspamd_command", required=True, metavar="ACTION")

    def service_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", metavar="FILE", help="the service's TOML config")
        parser.add_argument(
            "--listen", metavar="HOST:PORT", help="the service's address (default: config)"
        )

    config = actions.add_parser(
        "config",
        help="print the rdns_scorer { } section for the current service settings",
    )
    service_options(config)
    config.set_defaults(func=_cmd_config)

    install_cmd = actions.add_parser(
        "install",
        help="install the plugin into an rspamd config dir",
        description="Copy rdns_scorer.lua into CONFDIR/plugins.d/, add the module section to "
        "CONFDIR/rspamd.conf.local between marker comments (idempotent; changed files are "
        "backed up first) and run `rspamadm configtest`. Without --config or --listen, a "
        "section installed before is kept as it is (an upgrade of the plugin).",
    )
    uninstall_cmd = actions.add_parser(
        "uninstall",
        help="remove the plugin and its section from an rspamd config dir",
        description="Remove the managed block from CONFDIR/rspamd.conf.local (the file too "
        "when nothing else is in it) and rdns_scorer.lua from CONFDIR/plugins.d/ (changed "
        "files are backed up first), then run `rspamadm configtest`.",
    )
    for parser in (install_cmd, uninstall_cmd):
        add_confdir_option(parser)
        parser.add_argument(
            "--no-configtest", action="store_true", help="do not run rspamadm configtest"
        )
    service_options(install_cmd)
    install_cmd.set_defaults(func=_cmd_install)
    uninstall_cmd.set_defaults(func=_cmd_uninstall)

    # Here, not at the top: rspamd_check builds on this module.
    from scorer.integrations import rspamd_check

    rspamd_check.add_command(actions)

    symbols = actions.add_parser(
        "symbols", help="print the Lua symbol table the plugin embeds (for maintainers)"
    )
    symbols.add_argument("--write", metavar="LUA_FILE", help="update the table in this file")
    symbols.set_defaults(func=_cmd_symbols)
