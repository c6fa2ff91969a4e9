"""SpamAssassin integration: ``rdns-scorer spamassassin install`` and ``... describe``.

The plugin (``RdnsScorer.pm``) and its config (``rdns_scorer.cf``, optional
``rdns_scorer_overlap.cf``) live in the repository's ``spamassassin/`` directory;
``install`` copies them into SpamAssassin's site config dir. The ``describe`` lines
in ``rdns_scorer.cf`` are generated from ``scorer/symbols.py`` by ``describe`` (a
test checks that the shipped file carries exactly that block).
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from scorer.integrations import shipped_dir
from scorer.symbols import SYMBOLS

PLUGIN = "RdnsScorer.pm"
CONFIG = "rdns_scorer.cf"
OVERLAP = "rdns_scorer_overlap.cf"
DEFAULT_SITECONFIGPATH = Path("/etc/spamassassin")
DESCRIBE_BEGIN = "# BEGIN rdns-scorer describe"
DESCRIBE_END = "# END rdns-scorer describe"


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


def describe_block(config_text: str) -> str:
    """The text between the describe markers of a shipped ``rdns_scorer.cf``."""
    start = config_text.index(DESCRIBE_BEGIN + "\n") + len(DESCRIBE_BEGIN) + 1
    return config_text[start : config_text.index(DESCRIBE_END, start)]


@dataclass(frozen=True, slots=True)
class Step:
    path: Path
    action: str  # "installed", "updated", "unchanged", "kept"
    note: str = ""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shipped_record(target: Path) -> Path:
    """Where install notes the digest of the release's version of ``target``, the one
    it last wrote there or offered beside it as ``.dist`` (a dotfile: SpamAssassin
    reads only *.cf and *.pre)."""
    return target.with_name(f".{target.name}.rdns-scorer-shipped")


def _install_file(source: Path, target: Path, *, config: bool, force: bool) -> Step:
    step = _copy_unless_edited(source, target, preserve_edits=config and not force)
    if config:
        # dpkg's conffile rule: a target that holds this release's version is ours, and
        # the next upgrade may replace it. Also when kept: one the admin replaces with
        # the .dist (taking our version) is unedited, not edited for good.
        _shipped_record(target).write_text(_digest(source) + "\n")
    return step


def _copy_unless_edited(source: Path, target: Path, *, preserve_edits: bool) -> Step:
    if not target.exists():
        shutil.copyfile(source, target)
        target.chmod(0o644)
        return Step(target, "installed")
    if filecmp.cmp(source, target, shallow=False):
        return Step(target, "unchanged")
    record = _shipped_record(target)
    unedited = record.exists() and record.read_text().strip() == _digest(target)
    if preserve_edits and not unedited:
        # The admin edited the config (e.g. the URL): keep it, offer ours beside it,
        # the way dpkg leaves a .dpkg-dist. SpamAssassin reads only *.cf and *.pre.
        dist = target.with_name(target.name + ".dist")
        if not (dist.exists() and filecmp.cmp(source, dist, shallow=False)):
            shutil.copyfile(source, dist)
            dist.chmod(0o644)
        return Step(target, "kept", f"locally modified; the shipped version is in {dist}")
    shutil.copyfile(source, target)
    target.chmod(0o644)
    return Step(target, "updated")


def install(
    siteconfigpath: Path, source: Path, *, overlap: bool = False, force: bool = False
) -> list[Step]:
    """Copy the plugin and its config(s) into ``siteconfigpath``; safe to run again.

    The plugin is always brought up to date; a config file the admin changed is kept
    (the shipped one goes beside it as ``.dist``) unless ``force``. The overlap file is
    installed with ``overlap``, and updated whenever ``siteconfigpath`` has one already.
    """
    # An overlap file from an earlier --overlap stays in use whatever this run's flags:
    # left behind, it would go on overriding the stock rules with an old release's
    # copies of them, in silence (the admin deletes it to stop using it).
    earlier_overlap = not overlap and (siteconfigpath / OVERLAP).is_file()
    names = [PLUGIN, CONFIG] + ([OVERLAP] if overlap or earlier_overlap else [])
    missing = [name for name in names if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: missing {', '.join(missing)}")
    siteconfigpath.mkdir(parents=True, exist_ok=True)
    steps = []
    for name in names:
        step = _install_file(
            source / name, siteconfigpath / name, config=name != PLUGIN, force=force
        )
        if name == OVERLAP and earlier_overlap:
            why = "installed earlier with --overlap, kept up to date: delete it to stop using it"
            step = replace(step, note="; ".join(filter(None, (why, step.note))))
        steps.append(step)
    return steps


def lint(siteconfigpath: Path, spamassassin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [spamassassin, "--lint", "--siteconfigpath", str(siteconfigpath)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _setting(line: str) -> str:
    """The setting a config line names, as SpamAssassin reads it: after leading blanks,
    in lower case, dashes as underscores (``RDNS-SCORER-TOKEN`` is ``rdns_scorer_token``)."""
    words = line.split(None, 1)
    return words[0].lower().replace("-", "_") if words else ""


def world_readable_token_files(siteconfigpath: Path) -> list[Path]:
    """The ``*.cf`` files in ``siteconfigpath`` that set ``rdns_scorer_token`` and that
    every local user can read (the token also authorises ``POST /v1/reload``)."""
    found = []
    for path in sorted(siteconfigpath.glob("*.cf")):
        try:
            if not path.stat().st_mode & 0o004:
                continue
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if any(_setting(line) == "rdns_scorer_token" for line in lines):
            found.append(path)
    return found


def _install_command(args: argparse.Namespace) -> int:
    siteconfigpath = Path(args.siteconfigpath)
    if not siteconfigpath.is_dir():  # a typo must not become a new directory we lint
        print(
            f"rdns-scorer spamassassin install: {siteconfigpath} is not a directory "
            f"(SpamAssassin's site config dir, usually {DEFAULT_SITECONFIGPATH})",
            file=sys.stderr,
        )
        return 2
    try:
        source = Path(args.source) if args.source else source_dir()
        steps = install(siteconfigpath, source, overlap=args.overlap, force=args.force)
    except OSError as error:
        print(f"rdns-scorer spamassassin install: {error}", file=sys.stderr)
        return 1
    for step in steps:
        print(f"{step.action:<9} {step.path}" + (f"  ({step.note})" if step.note else ""))
    for path in world_readable_token_files(siteconfigpath):
        # Not a bare "chmod o-r": on a root:root file that locks spamd (or amavis) out,
        # and SpamAssassin then goes on without the file, unscored, lint still passing.
        print(
            f"warning:  {path} is world-readable and holds rdns_scorer_token: "
            f"chown root:GROUP {path} && chmod 640 {path}, GROUP being the one spamd or "
            "amavis runs as (debian-spamd, amavis)"
        )
    spamassassin = None if args.no_lint else shutil.which("spamassassin")
    if spamassassin is None:
        if not args.no_lint:
            print("spamassassin not found: skipped 'spamassassin --lint'")
    else:
        result = lint(siteconfigpath, spamassassin)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            print(f"spamassassin --lint --siteconfigpath {siteconfigpath}: FAILED", file=sys.stderr)
            return 1
        print(f"spamassassin --lint --siteconfigpath {siteconfigpath}: OK")
    # Ask for a restart only when spamd would read something new (a request made on
    # every run is one admins learn to ignore). A kept file is as it was, and its .dist
    # is never read.
    if any(step.action in ("installed", "updated") for step in steps):
        print("restart spamd (or amavis) to load the plugin")
    else:
        print("nothing changed: no restart needed")
    return 0


def _describe_command(_args: argparse.Namespace) -> int:
    sys.stdout.write(describe_lines())
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``rdns-scorer spamassassin ...`` with the main parser's subcommands."""
    spamassassin = commands.add_parser(
        "spamassassin",
        help="install the SpamAssassin plugin",
        description="Install the SpamAssassin plugin (RdnsScorer.pm, rdns_scorer.cf) "
        "shipped with rdns-scorer.",
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
    install_parser.add_argument(
        "--siteconfigpath",
        metavar="DIR",
        default=os.fspath(DEFAULT_SITECONFIGPATH),
        help=f"SpamAssassin site config dir (default {DEFAULT_SITECONFIGPATH})",
    )
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
        "--source",
        metavar="DIR",
        help="where the plugin files are (default: the ones shipped with rdns-scorer)",
    )
    install_parser.add_argument(
        "--no-lint", action="store_true", help="do not run 'spamassassin --lint'"
    )
    install_parser.set_defaults(func=_install_command)

    describe = actions.add_parser(
        "describe", help="print the 'describe' lines for rdns_scorer.cf from the symbol table"
    )
    describe.set_defaults(func=_describe_command)
