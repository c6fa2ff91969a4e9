"""``rdns-scorer spamassassin check``: is SpamAssassin wired to a service that answers it?

As ``rdns-scorer rspamd check`` does for rspamd: SpamAssassin itself says what it loads
and where the plugin asks (its own config reader, run in Perl on the site config dir,
not our reading of its files), then each of those services is asked what the plugin
would ask (scorer.integrations.probe).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Any

from scorer.integrations import (
    PLUGIN_TIMEOUT,
    probe,
    spamassassin,
    spamassassin_local,
    spamd_reader,
)
from scorer.integrations.probe import Finding

PACKAGE = spamassassin.PLUGIN_PACKAGE
# The path the plugin asks when rdns_scorer_url has none, or "/" (RdnsScorer.pm, _parse_url).
CHECK_PATH = "/v1/check"
# SpamAssassin's own reading of the site config: the plugins it loads, and the plugin's
# settings (its URLs, token and timeout) after every file (in the order SpamAssassin
# reads them) and conditional.
# User preferences cannot set these (admin settings), so none are read.
VIEW_SCRIPT = r"""
use strict; use warnings;
use Mail::SpamAssassin; use JSON::PP;
my ($site, $package) = @ARGV;
my $sa = Mail::SpamAssassin->new({site_rules_filename => $site,
  userprefs_filename => '/dev/null', dont_copy_prefs => 1});
$sa->init(0);
my $conf = $sa->{conf};
my $loaded = grep { ref($_) eq $package } @{$sa->{plugins}->{plugins}};
# loadplugin's file: where the package's constructor was compiled from, whatever the
# file's name (a loadplugin line may name any).
use B;
my $new = $loaded && $package->can('new');
my $file = $new ? B::svref_2object($new)->FILE : undef;
print JSON::PP->new->canonical->encode({
  loaded => $loaded ? JSON::PP::true : JSON::PP::false,
  file => $file,
  urls => $conf->{rdns_scorer_url} || ($loaded ? [$package->DEFAULT_URL] : []),
  token => $conf->{rdns_scorer_token},
  timeout => $conf->{rdns_scorer_timeout},
  driver_score => $conf->{scores}->{RL_SCORER_CHECK},
  errors => $conf->{errors} || 0,
  # The stock rules it reads (sa-update's, once there are any), as init chose them.
  rules_dir => RULES_DIR,
});
""".replace("RULES_DIR", spamassassin.RULES_DIR_PERL)
WIRING = probe.Wiring(
    filter="SpamAssassin",
    address_setting="`rdns_scorer_url`",
    path_setting="the path of `rdns_scorer_url`",
    token_fix="set `rdns_scorer_token` to the service's `[server] token` "
    "(in rdns_scorer_local.cf: docs/spamassassin.md)",
    timeout_setting="`rdns_scorer_timeout`",
    max_timeout=60.0,  # RdnsScorer.pm refuses more
)


def spamassassin_view(siteconfigpath: Path, perl: str) -> dict[str, Any]:
    """What SpamAssassin reads from ``siteconfigpath``: whether it loads the plugin (and
    from which file), its URLs and token, the driver rule's score. RuntimeError if the
    reading fails."""
    command = [perl, "-e", VIEW_SCRIPT, str(siteconfigpath), PACKAGE]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        # Not its words: SpamAssassin quotes config lines, rdns_scorer_token's among them.
        raise RuntimeError(
            f"SpamAssassin could not read {siteconfigpath} (exit {done.returncode}): "
            f"`{spamassassin.lint_command(siteconfigpath)}` says why"
        )
    view: dict[str, Any] = json.loads(done.stdout)
    return view


# The groups SpamAssassin reads its config as when it is not root: Debian's spamd, amavis.
READER_GROUPS = (spamassassin_local.DEFAULT_GROUP, "amavis")


def _owner(path: Path) -> str:
    try:
        return path.owner()
    except KeyError:  # no such user any more: its number
        return str(path.stat().st_uid)
    except OSError:  # gone since it was read
        return "its owner"


def _install_advice(siteconfigpath: Path) -> str:
    """The install command to advise: with its --siteconfigpath unless that is
    /etc/spamassassin (the advice was wrong for another directory)."""
    return f"rdns-scorer spamassassin install{spamassassin.site_option(siteconfigpath)}"


def _plugin_findings(view: dict[str, Any], siteconfigpath: Path) -> list[Finding]:
    install = _install_advice(siteconfigpath)
    if not view["loaded"]:
        return [
            Finding(
                False,
                f"SpamAssassin does not load {PACKAGE} from {siteconfigpath}: run `{install}`",
            )
        ]
    findings = [Finding(True, f"SpamAssassin loads {PACKAGE}")]
    loaded = Path(view["file"] or "")  # "": not from a file named RdnsScorer.pm
    shipped = (spamassassin.source_dir() / spamassassin.PLUGIN).read_bytes()
    findings.append(probe.release_finding(loaded, shipped, install))
    if view["driver_score"] is None:
        findings.append(
            Finding(
                False,
                f"SpamAssassin has no RL_SCORER_CHECK rule, so the plugin asks nothing "
                f"(rdns_scorer.cf is not read from {siteconfigpath}): run `{install}`",
            )
        )
    elif not view["driver_score"]:
        findings.append(
            Finding(False, "`score RL_SCORER_CHECK 0` switches the plugin off: remove that line")
        )
    # Only where SpamAssassin runs as such a user: without one (spamd reading its config
    # as root), install itself writes the token's file 0600 (spamassassin_local).
    readers = [group for group in READER_GROUPS if spamassassin_local.group_exists(group)]
    reader = spamd_reader.system_reader()
    if reader is not None:
        # The group of the user spamd reads its config as (nogroup for Debian's spamd as
        # shipped: nobody, not debian-spamd), first.
        group = spamd_reader.primary_group(reader.user)
        readers = [group] + [other for other in readers if other != group]
    for path in spamassassin.owner_only_settings_files(siteconfigpath) if readers else []:
        owner = _owner(path)
        findings.append(
            Finding(
                False,
                f"{path} sets the plugin, but only {owner} may read it: SpamAssassin run as "
                f"{' or '.join(readers)} goes on without it, and its checks are refused or go "
                f"elsewhere: chown {owner}:{readers[0]} {path} && chmod 640 {path} (the group "
                "spamd or amavis runs as)",
            )
        )
    # amavis reads it as amavis, whether or not a spamd runs too: a file of group
    # debian-spamd (install's default without a spamd) is skipped there.
    for found in spamd_reader.readers(reader):
        findings += _spamd_reader_findings(siteconfigpath, found)
    findings += _overlap_findings(view.get("rules_dir"), siteconfigpath)
    if view["errors"]:
        # Skipped, and the setting before it (or the default) stands: what is asked below
        # may not be what a line there says. Counted, not quoted (the token's line too).
        lint = spamassassin.lint_command(siteconfigpath)
        findings.append(
            Finding(
                False,
                f"SpamAssassin finds {view['errors']} error(s) in its config for "
                f"{siteconfigpath} (lines it skips, whose settings it does not use, or rules "
                f"it refuses): `{lint}` names them",
            )
        )
    return findings


def _spamd_reader_findings(
    siteconfigpath: Path, reader: spamd_reader.Reader | None
) -> list[Finding]:
    """A file setting the plugin that ``reader``, the user spamd reads its config as,
    cannot read. Debian's spamd, as shipped, runs as root without -u and reads the config
    as nobody (spamd_reader): a 0640 root:debian-spamd file, as install writes it, is
    skipped with nothing but a line in spamd's log, while lint and this check, run as
    root, read it."""
    if reader is None:
        return []
    findings = []
    owner_only = set(spamassassin.owner_only_settings_files(siteconfigpath))
    for path in spamassassin.settings_files(siteconfigpath):
        if path in owner_only or spamd_reader.can_read(path, reader.user) is not False:
            continue
        findings.append(
            Finding(False, f"{path} sets the plugin, but {spamd_reader.advice(path, reader)}")
        )
    return findings


def _overlap_findings(rules_dir: str | None, siteconfigpath: Path) -> list[Finding]:
    """Whether rdns_scorer_overlap.cf's copies of the stock rules are those SpamAssassin
    reads. Debian's spamassassin-maintenance timer runs sa-update daily, and its rules
    (/var/lib/spamassassin/<version>) replace the package's: a copy of an older rule
    goes on overriding the new one, in silence (no lint warning, not even for a meta
    whose sub-rule is gone, which then never fires)."""
    overlap = siteconfigpath / spamassassin.OVERLAP
    if rules_dir is None or not overlap.is_file():
        return []
    stock = spamassassin.stock_definitions(Path(rules_dir))
    text = overlap.read_text(encoding="utf-8")
    findings = []
    # Left out by install, the rules SpamAssassin read then having no such rule: back
    # now, each counts its evidence a second time while the service scores it.
    returned = spamassassin.overlap_returned(text, stock)
    if returned:
        findings.append(
            Finding(
                False,
                f"{overlap} leaves out {', '.join(returned)}, which the stock rules "
                f"SpamAssassin read at install did not have and {rules_dir} has now: each "
                "fires beside the rdns-scorer symbol scoring the same evidence, counted "
                f"twice; `{_install_advice(siteconfigpath)}` again redefines them",
            )
        )
    drifted = spamassassin.overlap_drift(text, stock)
    if drifted:
        record = spamassassin.shipped_record(overlap)  # install's note of it: goes with it
        # A rule gone whole (Debian 13's HELO_LH_HOME after an upgrade): install leaves
        # it out.
        gone = [name for name in drifted if name not in stock]
        again = (
            f"; `{_install_advice(siteconfigpath)}` again leaves out those gone ({', '.join(gone)})"
            if gone
            else ""
        )
        findings.append(
            Finding(
                False,
                f"{overlap} redefines {', '.join(drifted)} from copies of rules {rules_dir} "
                "no longer has (an sa-update changed or dropped them): the copies override "
                "the new rules, and one on a sub-rule that is gone never fires, not even with "
                f"the service down. Remove {overlap} and {record} (then `score RULE 0` in "
                "local.cf for each stock rule you want off for good), or bring those copies "
                f"up to date by hand (docs/spamassassin.md, Overlap){again}",
            )
        )
    return findings or [
        Finding(True, f"{overlap} redefines the stock rules of {rules_dir} as they are")
    ]


def check(siteconfigpath: Path) -> list[Finding]:
    """Every finding, in the order a reader follows them: plugin, then each service."""
    perl = shutil.which("perl")
    if perl is None or shutil.which("spamassassin") is None:
        raise RuntimeError("SpamAssassin not found (is it installed here?)")
    view = spamassassin_view(siteconfigpath, perl)
    findings = _plugin_findings(view, siteconfigpath)
    local = siteconfigpath / spamassassin.LOCAL_EXAMPLE
    installed = local.is_file() and spamassassin.is_written_by_install(local)
    wiring = replace(WIRING, installed_by=_install_advice(siteconfigpath) if installed else "")
    for url in view["urls"]:
        parts = urllib.parse.urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        # As the plugin's _parse_url: all after the address is the path; none, or "/"
        # alone, is the service's check path (the plugin never asks "/").
        path = url[len(base) :]
        findings += probe.service_findings(
            base,
            path if path not in ("", "/") else CHECK_PATH,
            view["token"],
            wiring,
            float(view.get("timeout") or PLUGIN_TIMEOUT),  # unset: the plugin's default
        )
    return findings


def _cmd_check(args: argparse.Namespace) -> int:
    siteconfigpath = spamassassin.site_dir_of(args)
    if siteconfigpath is None:
        return 2
    all_well = "SpamAssassin asks rdns-scorer, and it answers"
    return probe.run_check("spamassassin check", lambda: check(siteconfigpath), all_well)


def add_command(actions: argparse._SubParsersAction) -> None:
    """Register ``rdns-scorer spamassassin check`` with the spamassassin command's actions."""
    parser = actions.add_parser(
        "check",
        help="check that SpamAssassin loads the plugin and reaches a service that answers",
        description="Ask SpamAssassin (its own config reader, on the site config dir) "
        "whether it loads the plugin and where it asks, then send each of those services "
        "a check as the plugin does (a loopback client, which the service skips without "
        "DNS) and ask whether it is ready. Exit 0 when all is well, 1 with problems, 2 "
        "when it cannot tell.",
    )
    spamassassin.add_site_option(parser)
    parser.set_defaults(func=_cmd_check)
