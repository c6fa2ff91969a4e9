"""SpamAssassin integration: ``rdns-scorer spamassassin install``, ``... uninstall``
and ``... describe`` (``... check`` in :mod:`scorer.integrations.spamassassin_check`).

The plugin (``RdnsScorer.pm``) and its config (``rdns_scorer.cf``, optional
``rdns_scorer_overlap.cf``) live in the repository's ``spamassassin/`` directory;
``install`` copies them into SpamAssassin's site config dir, ``uninstall`` takes them
out again. The ``describe`` lines
in ``rdns_scorer.cf`` are generated from ``scorer/symbols.py`` by ``describe`` (a
test checks that the shipped file carries exactly that block).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from scorer.files import os_error_text
from scorer.integrations import replace_file, shipped_dir, spamd_reader
from scorer.symbols import SYMBOLS

PLUGIN = "RdnsScorer.pm"
CONFIG = "rdns_scorer.cf"
OVERLAP = "rdns_scorer_overlap.cf"
PLUGIN_PACKAGE = "Mail::SpamAssassin::Plugin::RdnsScorer"
# Where rdns_scorer.cf points the plugin, and the admin's own file README names.
DEFAULT_URL = "http://127.0.0.1:11340/v1/check"
LOCAL_EXAMPLE = "rdns_scorer_local.cf"
# The first line of a LOCAL_EXAMPLE that install --config wrote (spamassassin_local):
# install rewrites and uninstall removes only such a file, never one of the admin's.
LOCAL_MARK = "# Written by `rdns-scorer spamassassin install --config`"


def is_written_by_install(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as text:
        return text.readline().startswith(LOCAL_MARK)


# The settings install --config writes between its ifplugin and endif.
_LOCAL_SETTINGS = ("rdns_scorer_url ", "rdns_scorer_timeout ", "rdns_scorer_token ")


def admins_lines_after(text: str) -> str | None:
    """What the admin added to a LOCAL_EXAMPLE install --config wrote: its text after the
    block's ``endif`` (``score RL_... n``, RL_SCORER_CHECK, as docs/spamassassin.md
    suggests), which install keeps; None when the block itself was edited (a line install
    never writes inside it, or no ``endif``), which install does not rewrite."""
    head, endif, tail = text.partition("\nendif\n")
    if not endif:
        return None
    ours = ("#", f"ifplugin {PLUGIN_PACKAGE}", *_LOCAL_SETTINGS)
    if any(line.strip() and not line.strip().startswith(ours) for line in head.splitlines()):
        return None
    return tail


DEFAULT_SITECONFIGPATH = Path("/etc/spamassassin")


def source_dir() -> Path:
    """Where the shipped plugin files are: ``spamassassin/`` in the checkout, or where
    ``pip install`` put them. FileNotFoundError names where it looked."""
    return shipped_dir("spamassassin", PLUGIN)


def describe_lines() -> str:
    """SpamAssassin ``describe`` lines for every symbol, from the single symbol table."""
    # '#' starts a comment in SpamAssassin config files unless escaped.
    return "".join(
        f"describe {s.name} {s.description.replace('#', chr(92) + '#')}\n" for s in SYMBOLS.values()
    )


# A stock rule's definition line: "header NAME ..." or "meta NAME ...".
_DEFINITION = re.compile(r"^\s*(header|meta)\s+([A-Z0-9_]+)\s+(.*?)\s*$", re.M)
# rdns_scorer_overlap.cf's redefinitions: a stock meta as "meta NAME (EXPR) && !__RL_..._OK",
# a stock header rule copied to "header __RL_STOCK_NAME ..." under such a meta.
_OVERLAP_META = re.compile(
    r"^meta\s+([A-Z0-9_]+)\s+(.*?)\s+&&\s+!__RL_SCORER_(?:PTR|HELO)_OK\s*$", re.M
)
_OVERLAP_COPY = re.compile(r"^header\s+__RL_STOCK_([A-Z0-9_]+)\s+(.*?)\s*$", re.M)


def stock_definitions(rules_dir: Path) -> dict[str, tuple[str, str]]:
    """The ``header`` and ``meta`` rules of the stock rules in ``rules_dir`` (the one
    SpamAssassin reads: sa-update's ``/var/lib/spamassassin/<version>``, whose channel
    files sit in a directory below it, or ``/usr/share/spamassassin``): name -> (type,
    definition), a later file's winning as in SpamAssassin."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(rules_dir.rglob("*.cf")):
        for kind, name, body in _DEFINITION.findall(path.read_text(encoding="latin-1")):
            found[name] = (kind, body)
    return found


def overlap_drift(overlap: str, stock: dict[str, tuple[str, str]]) -> list[str]:
    """The stock rules ``overlap`` (rdns_scorer_overlap.cf's text) redefines from copies
    that ``stock`` (stock_definitions) no longer has: changed by an sa-update, or gone.
    Such a copy overrides the rule's fixes, and one on a sub-rule that is gone never
    fires, not even as the fallback with the service down."""
    copies = dict(_OVERLAP_COPY.findall(overlap))
    drifted = []
    for name, expression in _OVERLAP_META.findall(overlap):
        kind, body = stock.get(name, ("", ""))
        if expression == f"__RL_STOCK_{name}":
            same = kind == "header" and copies.get(name) == body
        else:
            collapsed = re.sub(r"\s+", " ", body)
            same = kind == "meta" and expression == f"({collapsed})"
        if not same:
            drifted.append(name)
    return drifted


# The comment overlap_for_stock puts in place of a redefinition it leaves out.
_LEFT_OUT = "left out by install, not among the stock rules SpamAssassin reads"
_LEFT_OUT_LINE = re.compile(rf"^# ([A-Z0-9_]+): {re.escape(_LEFT_OUT)}\s*$", re.M)


def overlap_for_stock(overlap: str, stock: Mapping[str, tuple[str, str]]) -> tuple[str, list[str]]:
    """``overlap`` (rdns_scorer_overlap.cf's text) without its redefinitions of the rules
    ``stock`` (stock_definitions) does not define, and their names. Debian 13's
    SpamAssassin 4.0.1 has no HELO_LH_HOME or CK_HELO_GENERIC (an sa-update may drop
    others): redefined from our copies, each would be a rule of its own again, firing
    where SpamAssassin fires nothing (HELO_LH_HOME at the score its stock score line
    still gives it, CK_HELO_GENERIC at the default 1.0), the service down or not."""
    gone = [name for name, _ in _OVERLAP_META.findall(overlap) if name not in stock]
    for name in gone:
        overlap = re.sub(rf"^header\s+__RL_STOCK_{name}\s.*\n", "", overlap, flags=re.M)
        overlap = re.sub(rf"^meta\s+{name}\s.*$", f"# {name}: {_LEFT_OUT}", overlap, flags=re.M)
    return overlap, gone


def overlap_returned(overlap: str, stock: Mapping[str, tuple[str, str]]) -> list[str]:
    """The rules install left out of ``overlap`` (overlap_for_stock) that ``stock``
    (stock_definitions) has now: SpamAssassin reads other rules than at install (another
    rules directory, such as its package's where sa-update's is gone, or an sa-update
    that brings one back), and each fires beside the symbol that scores the
    same evidence, as if there were no overlap file."""
    return [name for name in _LEFT_OUT_LINE.findall(overlap) if name in stock]


# Perl, with a Mail::SpamAssassin in $sa: the stock rules directory it reads, as its init
# chooses it (spamassassin_check's view prints it too).
RULES_DIR_PERL = "scalar $sa->first_existing_path(@Mail::SpamAssassin::default_rules_path)"


class StockRulesUnknown(Exception):
    """Why the stock rules SpamAssassin reads could not be found (stock_rules_dir)."""


def stock_rules_dir() -> Path:
    """The stock rules SpamAssassin reads (sa-update's ``/var/lib/spamassassin/<version>``
    once there are any, else ``/usr/share/spamassassin``), as its init chooses them.

    Raises StockRulesUnknown, saying why, where Perl or SpamAssassin is not installed,
    fails or names no directory: install then cannot tell which redefinitions of the
    overlap file the stock rules lack, and says so rather than go on in silence."""
    perl = shutil.which("perl")
    if perl is None:
        raise StockRulesUnknown("perl is not installed")
    script = (
        "use Mail::SpamAssassin; my $sa = Mail::SpamAssassin->new({"
        "userprefs_filename => '/dev/null', dont_copy_prefs => 1});"
        f"print {RULES_DIR_PERL};"
    )
    try:
        result = subprocess.run(
            [perl, "-e", script], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as error:
        raise StockRulesUnknown(f"perl: {os_error_text(error)}") from None
    except subprocess.TimeoutExpired:
        raise StockRulesUnknown("perl gave no answer within 60 s") from None
    if result.returncode != 0:
        # Perl's first line says it: "Can't locate Mail/SpamAssassin.pm in @INC ...".
        said = next(iter(result.stderr.strip().splitlines()), "")[:200]
        exited = f"perl exited {result.returncode}"
        raise StockRulesUnknown(f"{exited}: {said}" if said else exited)
    named = result.stdout.strip()
    if not named:
        raise StockRulesUnknown("SpamAssassin names no stock rules directory")
    found = Path(named)
    if not found.is_dir():
        raise StockRulesUnknown(f"{found}, which SpamAssassin names, is no directory")
    return found


@dataclass(frozen=True, slots=True)
class Step:
    path: Path
    action: str  # "installed", "updated", "unchanged", "kept"; uninstall: "removed", "kept"
    note: str = ""


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def shipped_record(target: Path) -> Path:
    """Where install notes the digest of the release's version of ``target``, the one
    it last wrote there or offered beside it as ``.dist`` (a dotfile: SpamAssassin
    reads only *.cf and *.pre)."""
    return target.with_name(f".{target.name}.rdns-scorer-shipped")


def dist_path(target: Path) -> Path:
    """Where install offers the release's version of a config file the admin edited,
    the way dpkg leaves a .dpkg-dist (SpamAssassin reads only *.cf and *.pre)."""
    return target.with_name(target.name + ".dist")


def _unedited(target: Path) -> bool:
    """Whether ``target`` holds the release's version install last noted for it: if
    not, the admin changed it (or wrote it without install), and it is theirs."""
    record = shipped_record(target)
    return record.exists() and record.read_text().strip() == _digest(target.read_bytes())


def _install_file(content: bytes, target: Path, *, config: bool, force: bool) -> Step:
    """Put the release's ``content`` of a file at ``target`` (or, for a ``config`` the
    admin edited, beside it unless ``force``)."""
    step = _copy_unless_edited(content, target, preserve_edits=config and not force)
    if config:
        # dpkg's conffile rule: a target that holds this release's version is ours, and
        # the next upgrade may replace it. Also when kept: one the admin replaces with
        # the .dist (taking our version) is unedited, not edited for good.
        shipped_record(target).write_text(_digest(content) + "\n")
    return step


def _put(content: bytes, target: Path) -> None:
    """``content`` at ``target`` all at once, readable by spamd and amavis (which do not
    run as root): copied in place, a spamd starting meanwhile loaded the plugin cut
    short, and a full disk left it so."""
    replace_file(target, content.decode("utf-8", errors="surrogateescape"), 0o644, None)


def _holds(path: Path, content: bytes) -> bool:
    return path.is_file() and path.read_bytes() == content


def _copy_unless_edited(content: bytes, target: Path, *, preserve_edits: bool) -> Step:
    if not target.exists():
        _put(content, target)
        return Step(target, "installed")
    if _holds(target, content):
        return Step(target, "unchanged")
    if preserve_edits and not _unedited(target):
        # The admin edited the config (e.g. the URL): keep it, offer ours beside it.
        dist = dist_path(target)
        if not _holds(dist, content):
            _put(content, dist)
        return Step(target, "kept", f"locally modified; the shipped version is in {dist}")
    _put(content, target)
    return Step(target, "updated")


def refuse_what_is_in_the_way(targets: list[Path]) -> None:
    """ValueError naming each of ``targets`` that is there and no regular file (a
    directory): before install writes anything. A directory read as a config the admin
    edited: "kept", ours put beside it as .dist, and install reported success with no
    plugin config in use."""
    in_the_way = [str(path) for path in targets if path.exists() and not path.is_file()]
    if in_the_way:
        raise ValueError(f"not a regular file: {', '.join(in_the_way)}: move it away first")


def install(
    siteconfigpath: Path,
    source: Path,
    *,
    overlap: bool = False,
    force: bool = False,
    stock: Mapping[str, tuple[str, str]] | None = None,
) -> list[Step]:
    """Copy the plugin and its config(s) into ``siteconfigpath``; safe to run again.

    The plugin is always brought up to date; a config file the admin changed is kept
    (the shipped one goes beside it as ``.dist``) unless ``force``. The overlap file is
    installed with ``overlap``, and updated whenever ``siteconfigpath`` has one already;
    given the ``stock`` rules SpamAssassin reads (stock_definitions), without the
    redefinitions of rules they do not have (overlap_for_stock), as the release's version.
    """
    # An overlap file from an earlier --overlap stays in use whatever this run's flags:
    # left behind, it would go on overriding the stock rules with an old release's
    # copies of them, in silence (the admin deletes it to stop using it).
    earlier_overlap = not overlap and (siteconfigpath / OVERLAP).is_file()
    names = [PLUGIN, CONFIG] + ([OVERLAP] if overlap or earlier_overlap else [])
    missing = [name for name in names if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: missing {', '.join(missing)}")
    refuse_what_is_in_the_way([siteconfigpath / name for name in names])
    siteconfigpath.mkdir(parents=True, exist_ok=True)
    steps = []
    for name in names:
        content = (source / name).read_bytes()
        gone: list[str] = []
        if name == OVERLAP and stock is not None:
            text, gone = overlap_for_stock(content.decode("utf-8"), stock)
            if gone:
                content = text.encode("utf-8")
        step = _install_file(content, siteconfigpath / name, config=name != PLUGIN, force=force)
        left_out = ""
        if gone:
            # A file kept as the admin edited it still has whatever it redefines: only
            # the release's version, offered beside it, leaves them out.
            what = "the shipped version leaves" if step.action == "kept" else "left"
            left_out = (
                f"{what} out {', '.join(gone)}: not among the stock rules SpamAssassin "
                "reads (redefined, each would fire where SpamAssassin fires nothing)"
            )
        why = ""
        if name == OVERLAP and earlier_overlap:
            why = "installed earlier with --overlap, kept up to date: delete it to stop using it"
        step = replace(step, note="; ".join(filter(None, (why, left_out, step.note))))
        steps.append(step)
    return steps


def uninstall(siteconfigpath: Path, *, now: datetime | None = None) -> Iterator[Step]:
    """Take out of ``siteconfigpath`` what ``install`` put there: the plugin, its config
    files (install --config's rdns_scorer_local.cf too), their ``.dist`` copies and
    digest records.

    A config file the admin edited (by install's rule: its digest is not the one noted)
    is moved to a backup SpamAssassin does not read rather than lost; the backups of
    one run are stamped with ``now`` (default: when it starts). Each step is
    yielded once done, so a caller can say what was done before an error stopped it.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    # The plugin last: stopped half-way, what is left never has a loadplugin line (in
    # rdns_scorer.cf) naming a file already gone, nor rules on a plugin not loaded.
    local = siteconfigpath / LOCAL_EXAMPLE
    if local.is_file() and is_written_by_install(local):
        # install --config's, from the service's config: written again by the next one;
        # with lines of the admin's in it, kept in a backup as an edited config file is.
        added = admins_lines_after(local.read_text(encoding="utf-8", errors="replace"))
        if added is None or added.strip():
            backup = _back_up(local, stamp)
            yield Step(local, "kept", f"holds lines of yours; moved to {backup}")
        else:
            local.unlink()
            yield Step(local, "removed")
    offered = dist_path(local)
    if offered.exists():
        offered.unlink()
        yield Step(offered, "removed")
    for name in (OVERLAP, CONFIG, PLUGIN):
        target = siteconfigpath / name
        if target.exists():
            # The plugin is never the admin's: install replaces an edited one.
            if name == PLUGIN or _unedited(target):
                target.unlink()
                yield Step(target, "removed")
            else:
                backup = _back_up(target, stamp)
                yield Step(target, "kept", f"locally modified; moved to {backup}")
        # After the file: its record is what tells an edited file from ours.
        for leftover in (dist_path(target), shipped_record(target)):
            if leftover.exists():
                leftover.unlink()
                yield Step(leftover, "removed")


def _back_up(target: Path, stamp: str) -> Path:
    """Move ``target`` to ``NAME.rdns-scorer-STAMP.bak`` beside it (``-1``, ``-2``, ...
    when taken), a name SpamAssassin does not read (only *.cf and *.pre). A hard link
    fails rather than replace an earlier backup, and keeps the owner and mode of a file
    that may hold the token."""
    number = 0
    while True:
        suffix = f"-{number}" if number else ""
        backup = target.with_name(f"{target.name}.rdns-scorer-{stamp}{suffix}.bak")
        try:
            os.link(target, backup)
        except FileExistsError:
            number += 1
            continue
        try:
            target.unlink()
        except BaseException:
            backup.unlink()  # the file stays: a second name for it is no backup of a change
            raise
        return backup


def _lint_argv(siteconfigpath: Path, spamassassin: str = "spamassassin") -> list[str]:
    return [spamassassin, "--lint", "--siteconfigpath", str(siteconfigpath)]


def lint_command(siteconfigpath: Path) -> str:
    """The lint that names what SpamAssassin cannot read, as a command to run: quoted, so
    a directory with a space in it is one argument."""
    return shlex.join(_lint_argv(siteconfigpath))


def lint(siteconfigpath: Path, spamassassin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _lint_argv(siteconfigpath, spamassassin),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _words(line: str) -> list[str]:
    """A config line's words, as SpamAssassin reads them: up to an unescaped ``#``."""
    return re.sub(r"(?<!\\)#.*", "", line).split()


def _setting(line: str) -> str:
    """The setting a config line names, as SpamAssassin reads it: after leading blanks,
    in lower case, dashes as underscores (``RDNS-SCORER-TOKEN`` is ``rdns_scorer_token``)."""
    words = _words(line)
    return words[0].lower().replace("-", "_") if words else ""


def _config_files(siteconfigpath: Path) -> Iterator[tuple[Path, int, list[str]]]:
    """Each ``*.cf`` file in ``siteconfigpath`` (the config SpamAssassin reads there
    besides the ``*.pre`` files), in name order, with its mode and lines; one that
    cannot be read (a dangling link, a directory) is left out."""
    for path in sorted(siteconfigpath.glob("*.cf")):
        try:
            mode = path.stat().st_mode
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        yield path, mode, lines


def world_readable_token_files(siteconfigpath: Path) -> list[Path]:
    """The ``*.cf`` files in ``siteconfigpath`` that set ``rdns_scorer_token`` and that
    every local user can read (the token also authorises ``POST /v1/reload``)."""
    return [
        path
        for path, mode, lines in _config_files(siteconfigpath)
        if mode & 0o004 and any(_setting(line) == "rdns_scorer_token" for line in lines)
    ]


def owner_only_settings_files(siteconfigpath: Path) -> list[Path]:
    """The ``*.cf`` files in ``siteconfigpath`` that set the plugin (``rdns_scorer_*``)
    and that only their owner may read: SpamAssassin run as another user (Debian's spamd
    as debian-spamd, amavis) skips such a file with a lint warning, and its plugin asks
    the default URL without the token, every check refused."""
    return [
        path
        for path, mode, lines in _config_files(siteconfigpath)
        if not mode & 0o044 and any(_setting(line).startswith("rdns_scorer_") for line in lines)
    ]


def _warn_unreadable_by_spamd(path: Path) -> None:
    """Install's file with the token, which the user spamd reads its config as, or
    amavis's, cannot read: Debian's spamd as shipped reads it as nobody (spamd_reader),
    not as debian-spamd, and amavis as amavis; either would go on without it, lint
    passing."""
    for reader in spamd_reader.readers(spamd_reader.system_reader()):
        if spamd_reader.can_read(path, reader.user) is False:
            print(f"warning:  {spamd_reader.advice(path, reader)}")


def settings_files(siteconfigpath: Path) -> list[Path]:
    """The ``*.cf`` files in ``siteconfigpath`` that set the plugin (``rdns_scorer_*``)."""
    return [
        path
        for path, _, lines in _config_files(siteconfigpath)
        if any(_setting(line).startswith("rdns_scorer_") for line in lines)
    ]


def _without_the_plugin(condition: str) -> bool | None:
    """The value of an ``if`` condition (its words joined) when the plugin is not loaded,
    for one that is about it alone: ``plugin(...)`` of it, in parentheses or negated with
    ``!`` as SpamAssassin's own rules write theirs; None for any other condition."""
    negated = False
    while condition.startswith(("!", "(")):
        if condition.startswith("!"):
            negated, condition = not negated, condition[1:]
        elif condition.endswith(")"):
            condition = condition[1:-1]
        else:
            return None
    return negated if condition == f"plugin({PLUGIN_PACKAGE})" else None


def _parsed_without_the_plugin(lines: list[str]) -> Iterator[str]:
    """The settings of ``lines`` SpamAssassin parses when the plugin is not loaded: all
    but those in the branch of an ``if`` or ``ifplugin`` that is false without it
    (``ifplugin Mail::SpamAssassin::Plugin::RdnsScorer`` up to its ``else`` or
    ``endif``, the ``else`` branch of ``if !plugin(...)``), which it then skips."""
    skipped: list[bool] = []  # per open if/ifplugin: is this branch skipped without us?
    about_us: list[bool] = []  # per open if/ifplugin: is its condition the plugin's?
    for line in lines:
        setting = _setting(line)
        condition = "".join(_words(line)[1:])
        if setting in ("if", "ifplugin"):
            value = _without_the_plugin(
                f"plugin({condition})" if setting == "ifplugin" else condition
            )
            skipped.append(value is False)
            about_us.append(value is not None)
        elif setting == "else" and skipped:
            # The other branch of ours; parsed (or as before) for another condition.
            skipped[-1] = about_us[-1] and not skipped[-1]
        elif setting == "endif" and skipped:
            skipped.pop()
            about_us.pop()
        elif not any(skipped):
            yield setting


def own_url_set(siteconfigpath: Path) -> bool:
    """Whether a ``*.cf`` file in ``siteconfigpath`` besides the shipped ones (the
    admin's, or install --config's) sets ``rdns_scorer_url``, where the service is."""
    return any(
        _setting(line) == "rdns_scorer_url"
        for path, _mode, lines in _config_files(siteconfigpath)
        if path.name not in (CONFIG, OVERLAP)
        for line in lines
    )


def plugin_settings_left(siteconfigpath: Path) -> dict[Path, list[str]]:
    """The ``*.cf`` files in ``siteconfigpath`` that set ``rdns_scorer_*`` settings
    outside ``ifplugin Mail::SpamAssassin::Plugin::RdnsScorer``, each with those
    settings: without the plugin, SpamAssassin knows no such setting."""
    found = {}
    for path, _mode, lines in _config_files(siteconfigpath):
        settings = [s for s in _parsed_without_the_plugin(lines) if s.startswith("rdns_scorer_")]
        if settings:
            found[path] = list(dict.fromkeys(settings))
    return found


def _error(args: argparse.Namespace, message: str | Exception) -> None:
    """One line on stderr, naming the command it comes from."""
    if isinstance(message, OSError):
        message = os_error_text(message)
    print(f"rdns-scorer spamassassin {args.spamassassin_command}: {message}", file=sys.stderr)


def site_option(siteconfigpath: Path) -> str:
    """`` --siteconfigpath DIR`` for a command shown to run on ``siteconfigpath``, or ""
    for the default (/etc/spamassassin). Absolute and quoted: a command to run from
    anywhere, a space in it one argument."""
    if siteconfigpath == DEFAULT_SITECONFIGPATH:
        return ""
    return f" --siteconfigpath {shlex.quote(str(siteconfigpath.absolute()))}"


def site_dir_of(args: argparse.Namespace) -> Path | None:
    """``--siteconfigpath``, or None once its error is printed: it must be a directory
    (a typo must not become a new directory we install into and lint)."""
    siteconfigpath = Path(args.siteconfigpath)
    if siteconfigpath.is_dir():
        return siteconfigpath
    _error(
        args,
        f"{siteconfigpath} is not a directory "
        f"(SpamAssassin's site config dir, usually {DEFAULT_SITECONFIGPATH})",
    )
    return None


def _print_step(step: Step) -> None:
    print(f"{step.action:<9} {step.path}" + (f"  ({step.note})" if step.note else ""))


# A setting's name as SpamAssassin reads it (any case, dashes for underscores), and the
# rest of its line: a quoted config line, the name followed by blanks and its value. Not
# the name in the plugin's own words (`invalid 'rdns_scorer_token' value in FILE (line
# N)`, which names no value and says where to look).
_TOKEN_SETTING = re.compile(r"(?i)\b(rdns[_-]scorer[_-]token)(?:[ \t].*|$)", re.MULTILINE)


def without_token(text: str) -> str:
    """``text`` (SpamAssassin's words) with the value of every rdns_scorer_token line it
    quotes left out: lint quotes each line it cannot parse, and a token set while the
    plugin is not loaded is one."""
    return _TOKEN_SETTING.sub(r"\1 (not shown)", text)


def _lint_passes(siteconfigpath: Path, args: argparse.Namespace, changed: bool) -> bool:
    """Run ``spamassassin --lint`` on ``siteconfigpath`` (unless ``--no-lint``, or it is
    not installed) and say how it went; False, with its output on stderr, if it failed."""
    if args.no_lint:
        # As rspamd's install says of --no-configtest: skipped on purpose, still worth
        # running, when something changed.
        if changed:
            print(f"note:     lint skipped (--no-lint); run `{lint_command(siteconfigpath)}`")
        return True
    spamassassin = shutil.which("spamassassin")
    if spamassassin is None:
        print("spamassassin not found: skipped 'spamassassin --lint'")
        return True
    result = lint(siteconfigpath, spamassassin)
    if result.returncode != 0:
        sys.stderr.write(without_token(result.stdout + result.stderr))
        print(f"spamassassin --lint --siteconfigpath {siteconfigpath}: FAILED", file=sys.stderr)
        return False
    print(f"spamassassin --lint --siteconfigpath {siteconfigpath}: OK")
    return True


def _restart_advice(changed: bool, why: str) -> None:
    # Ask for a restart only when spamd would read something else (a request made on
    # every run is one admins learn to ignore).
    print(f"restart spamd (or amavis) {why}" if changed else "nothing changed: no restart needed")


def _install_command(args: argparse.Namespace) -> int:
    siteconfigpath = site_dir_of(args)
    if siteconfigpath is None:
        return 2
    try:
        local = None
        if args.config is not None:  # read first: a config that fails installs nothing
            from scorer.config import load_config  # late: install alone reads no config
            from scorer.integrations.spamassassin_local import install_local, local_file

            local = local_file(load_config(args.config), args.group)
            # Checked with install's own files: found by install_local, it stopped the
            # command after the plugin and its config were in (asking with no token).
            refuse_what_is_in_the_way([siteconfigpath / LOCAL_EXAMPLE])
        source = Path(args.source) if args.source else source_dir()
        stock, unknown = None, None
        if args.overlap or (siteconfigpath / OVERLAP).is_file():
            try:
                stock = stock_definitions(stock_rules_dir())
            except StockRulesUnknown as error:
                unknown = str(error)
        steps = install(siteconfigpath, source, overlap=args.overlap, force=args.force, stock=stock)
        warning = None
        if local is not None:
            written, warning = install_local(siteconfigpath, local)
            steps.append(written)
    except (OSError, ValueError) as error:
        _error(args, error)
        return 1
    for step in steps:
        _print_step(step)
    if unknown is not None:
        # The overlap file then goes in with every redefinition it ships: one of a rule
        # the stock rules lack is a rule of its own (Debian 13's HELO_LH_HOME).
        print(
            f"warning:  the stock rules SpamAssassin reads were not found ({unknown}): "
            f"{OVERLAP} keeps its redefinition of each rule it overlaps, and one the stock "
            "rules do not have would fire where SpamAssassin fires nothing; install again "
            "once SpamAssassin runs (docs/spamassassin.md, Overlap)"
        )
    if warning is not None:
        print(f"warning:  {siteconfigpath / LOCAL_EXAMPLE}: {warning}")
    if local is not None:
        _warn_unreadable_by_spamd(siteconfigpath / LOCAL_EXAMPLE)
    for path in world_readable_token_files(siteconfigpath):
        # Not a bare "chmod o-r": on a root:root file that locks spamd (or amavis) out,
        # and SpamAssassin then goes on without the file, unscored, lint still passing.
        print(
            f"warning:  {path} is world-readable and holds rdns_scorer_token: "
            f"chown root:GROUP {path} && chmod 640 {path}, GROUP being the one spamd or "
            "amavis reads its config as (nogroup for Debian's spamd as shipped, which runs "
            "as root without -u and reads it as nobody; the -u user's group; amavis)"
        )
    # A kept file is as it was, and its .dist is never read.
    changed = [step.path.name for step in steps if step.action in ("installed", "updated")]
    if not _lint_passes(siteconfigpath, args, bool(changed)):
        return 1
    # The plugin only when its file is new: a changed config is read, the plugin loaded.
    _restart_advice(
        bool(changed), "to load the plugin" if PLUGIN in changed else "to read the new config"
    )
    if not own_url_set(siteconfigpath):
        # The step install leaves to the admin (README, docs/spamassassin.md): unsaid, a
        # service on another address or with a token gets nothing but refused checks.
        print(
            f"next:     the plugin asks {DEFAULT_URL} with no token; for a service "
            "elsewhere or with a token, set rdns_scorer_url and rdns_scorer_token "
            f"in a file of your own, {siteconfigpath / LOCAL_EXAMPLE}, or run install with "
            "--config FILE, the service's config (docs/spamassassin.md)"
        )
    where = site_option(siteconfigpath)
    print(f"`rdns-scorer spamassassin check{where}` says whether SpamAssassin reaches the service")
    return 0


def _uninstall_command(args: argparse.Namespace) -> int:
    siteconfigpath = site_dir_of(args)
    if siteconfigpath is None:
        return 2
    steps = []
    try:
        for step in uninstall(siteconfigpath):
            _print_step(step)  # as it goes: an error below then says what was done
            steps.append(step)
    except OSError as error:
        _error(args, error)
        return 1
    if not steps:
        print("nothing to remove")
    for path, settings in plugin_settings_left(siteconfigpath).items():
        # As SpamAssassin 4.0.1 does (a test runs the real lint on such a file): lint
        # counts an unknown setting as an error; spamd logs it at info level, goes on.
        print(
            f"warning:  {path} sets {', '.join(settings)}, unknown to SpamAssassin "
            "without the plugin: 'spamassassin --lint' fails on them ('failed to parse "
            "line'), spamd skips them and logs it; delete them (or the file), or put them "
            f"between 'ifplugin {PLUGIN_PACKAGE}' and 'endif'"
        )
    # A .dist or a digest record is never read: only these change what spamd loads.
    changed = any(step.path.name in (PLUGIN, CONFIG, OVERLAP) for step in steps)
    if not _lint_passes(siteconfigpath, args, changed):
        return 1
    _restart_advice(changed, "to unload the plugin")
    return 0


def _describe_command(_args: argparse.Namespace) -> int:
    sys.stdout.write(describe_lines())
    return 0


def add_site_option(parser: argparse.ArgumentParser) -> None:
    """``--siteconfigpath``, which every action on a site config dir takes (``site_dir_of``)."""
    parser.add_argument(
        "--siteconfigpath",
        metavar="DIR",
        default=os.fspath(DEFAULT_SITECONFIGPATH),
        help=f"SpamAssassin site config dir (default {DEFAULT_SITECONFIGPATH})",
    )


def _add_site_options(parser: argparse.ArgumentParser) -> None:
    """The options install and uninstall share: where, and whether to lint."""
    add_site_option(parser)
    parser.add_argument("--no-lint", action="store_true", help="do not run 'spamassassin --lint'")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``rdns-scorer spamassassin ...`` with the main parser's subcommands."""
    spamassassin = commands.add_parser(
        "spamassassin",
        help="install, check or remove the SpamAssassin plugin",
        description="Install, check or remove the SpamAssassin plugin (RdnsScorer.pm, "
        "rdns_scorer.cf) shipped with rdns-scorer.",
    )
    actions = spamassassin.add_subparsers(
        dest="spamassassin_command", required=True, metavar="ACTION"
    )

    install_parser = actions.add_parser(
        "install",
        help="copy the plugin and its config into the site config dir, then lint",
        description="Copy RdnsScorer.pm and rdns_scorer.cf (and with --overlap, or when "
        "it is there already, rdns_scorer_overlap.cf) into SpamAssassin's site config "
        "dir, then run 'spamassassin --lint' when it is installed. Safe to run again: a config "
        "file you edited is kept and the shipped one is written beside it as .dist.",
    )
    _add_site_options(install_parser)
    install_parser.add_argument(
        "--overlap",
        action="store_true",
        help=f"also install {OVERLAP}: stock rules on the same evidence apply only "
        "when the service did not answer (one already installed is always updated)",
    )
    install_parser.add_argument(
        "--force", action="store_true", help="overwrite config files you changed"
    )
    install_parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"the service's TOML config: write its address, timeout and token to "
        f"{LOCAL_EXAMPLE} (0640, readable by --group)",
    )
    install_parser.add_argument(
        "--group",
        metavar="GROUP",
        help="with --config and a token: the group spamd or amavis reads config as "
        "(default: that of the user spamd reads it as, nogroup for Debian's spamd run "
        "as root without -u; else debian-spamd)",
    )
    install_parser.add_argument(
        "--source",
        metavar="DIR",
        help="where the plugin files are (default: the ones shipped with rdns-scorer)",
    )
    install_parser.set_defaults(func=_install_command)

    uninstall_parser = actions.add_parser(
        "uninstall",
        help="remove what install put into the site config dir, then lint",
        description=f"Remove {PLUGIN}, {CONFIG} and {OVERLAP}, their .dist copies and "
        "install's digest records from SpamAssassin's site config dir, then run "
        "'spamassassin --lint' when it is installed. A config file you edited is moved to "
        "NAME.rdns-scorer-YYYYmmdd-HHMMSS.bak, which SpamAssassin does not read. Warns "
        "about your own .cf files that still set rdns_scorer_* settings.",
    )
    _add_site_options(uninstall_parser)
    uninstall_parser.set_defaults(func=_uninstall_command)

    # Here, not at the top: spamassassin_check builds on this module.
    from scorer.integrations import spamassassin_check

    spamassassin_check.add_command(actions)

    describe = actions.add_parser(
        "describe", help="print the 'describe' lines for rdns_scorer.cf from the symbol table"
    )
    describe.set_defaults(func=_describe_command)
