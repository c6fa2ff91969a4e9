"""``rdns-scorer rspamd check``: is rspamd wired to a service that answers it?

The ways a working install goes quiet all look alike from the mail side: every scan
gets ``RL_SCORER_FAIL`` (fail-open), or no symbol at all. This asks rspamd itself what
it loads and where it sends checks (``rspamadm configdump``: its view, after every
include, override and priority, not our reading of its files), then asks each of those
services what the plugin would ask, and says for each finding what to do.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorer import __version__
from scorer.integrations import rspamd

# The plugin's defaults (lua/rdns_scorer.lua's `settings`), for keys its section leaves out.
DEFAULT_SERVERS = "127.0.0.1:11340"
DEFAULT_PATH = "/v1/check"
DEFAULT_PORT = 11340
REQUEST_TIMEOUT = 3.0
# A loopback client: the service skips it ([policy] skip_networks) with no DNS lookup, so
# the answer says whether the service takes rspamd's request, not how DNS is doing.
PROBE = {"ip": "127.0.0.1", "helo": "rdns-scorer-check", "mail_from": ""}
# rspamd sends a check as msgpack; the service answers JSON to the same request too.
# A reply from something else (another service on the port) has no such keys.
REPLY_KEYS = {"symbols", "score"}


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'ok:' if self.ok else 'problem:':<10} {self.text}"


@dataclass(frozen=True, slots=True)
class Section:
    """The plugin's settings as rspamd reads them: its section, or the defaults."""

    servers: list[str]
    path: str
    token: str | None

    @classmethod
    def from_dump(cls, dumped: Any) -> Section:
        section = dumped if isinstance(dumped, dict) else {}
        servers = section.get("servers", DEFAULT_SERVERS)
        listed = servers if isinstance(servers, list) else [servers]
        # Separated as rspamd separates upstreams (lua/rdns_scorer.lua, server_entries).
        entries = [e for item in listed for e in re.split(r"[,;\s]+", str(item)) if e]
        path = str(section.get("path", DEFAULT_PATH))
        token = section.get("token")
        return cls(entries, path if path.startswith("/") else f"/{path}", token and str(token))


def server_url(entry: str) -> str:
    """``http://HOST:PORT`` for a ``servers`` entry ("host", "host:port", "[v6]:port",
    each maybe with rspamd's ":priority" after the port)."""
    found = re.fullmatch(r"\[(.+)\]:(\d+).*", entry) or re.fullmatch(r"([^:]+):(\d+).*", entry)
    host, port = (found.group(1), found.group(2)) if found else (entry, str(DEFAULT_PORT))
    if ":" in host:  # an IPv6 address written without brackets and port
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _rspamadm(rspamadm: str, confdir: Path, *args: str) -> str:
    """rspamadm's output for ``args`` on the config in ``confdir``; RuntimeError when it fails."""
    command = rspamd.rspamadm_command(confdir, "configdump", rspamadm) + list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def module_state(modules: str) -> str | None:
    """What ``configdump -m`` says of rdns_scorer: "enabled", "disabled (failed)" and
    so on, or None when rspamd does not know it (no plugin file loaded)."""
    for line in modules.splitlines():
        label, _, names = line.partition(":")
        if "rdns_scorer" in (name.strip() for name in names.split(",")):
            return label.removeprefix("Modules ").strip()
    return None


def _module_finding(state: str | None, confdir: Path) -> Finding:
    plugin = confdir / "plugins.d" / rspamd.PLUGIN_FILE
    if state == "enabled":
        return Finding(True, "rspamd loads the rdns_scorer module")
    if state is None:
        return Finding(
            False,
            f"rspamd does not load the plugin ({plugin} is missing or was not read): "
            "run `rdns-scorer rspamd install`",
        )
    if state == "disabled (explicitly)":
        why = "`enabled = false` in its section"
    else:  # "disabled (failed)": the plugin refused its config (a line in rspamd's log)
        why = "see rspamd's log for the reason (`journalctl -u rspamd | grep rdns_scorer`)"
    return Finding(False, f"rspamd has the rdns_scorer module {state}: {why}")


def _plugin_finding(confdir: Path) -> Finding | None:
    """Whether the installed plugin is the one this release ships (an older one reports
    symbols a newer service added as RL_SCORER_UNKNOWN, never scored)."""
    plugin = confdir / "plugins.d" / rspamd.PLUGIN_FILE
    if not plugin.is_file():
        return None  # said by the module finding
    if plugin.read_bytes() == rspamd.shipped_plugin():
        return Finding(True, f"{plugin} is rdns-scorer {__version__}'s")
    return Finding(
        False,
        f"{plugin} is not rdns-scorer {__version__}'s (an earlier release, or edited): "
        "run `rdns-scorer rspamd install` to update it",
    )


def _ask(request: urllib.request.Request) -> tuple[int, bytes]:
    """The status and body of ``request``, an HTTP error's too; OSError when nothing answered."""
    # Straight to the service: an http_proxy in the environment must not carry it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _error_text(body: bytes) -> str:
    try:
        reply = json.loads(body)
    except ValueError:
        return body[:120].decode("utf-8", "replace")
    if isinstance(reply, dict):  # {"error": ...} of a refusal, {"status": ...} of /readyz
        return str(reply.get("error") or reply.get("status") or reply)
    return str(reply)


def _answer_finding(url: str, section: Section, status: int, body: bytes) -> Finding:
    """What the service's answer to rspamd's check says."""
    where = f"{url}{section.path}"
    if status == 401:
        has = "a token the service does not take" if section.token else "no token"
        return Finding(
            False,
            f"{url} refuses rspamd's checks (401): rspamd's section has {has}; run "
            "`rdns-scorer rspamd install --config FILE` with the service's config",
        )
    if status == 404:
        return Finding(False, f"{url} has no {section.path} (404): correct `path` in the section")
    if status != 200:
        return Finding(False, f"{where} answered {status}: {_error_text(body)}")
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    if isinstance(reply, dict) and reply.keys() >= REPLY_KEYS:
        return Finding(True, f"{where} answers rspamd's checks")
    return Finding(False, f"{where} answers, but not as rdns-scorer does: is it another service?")


def server_findings(entry: str, section: Section) -> list[Finding]:
    """Ask the service at ``entry`` what the plugin asks (with the section's path and
    token); when it answers, whether it is ready (its resolver)."""
    url = server_url(entry)
    headers = {"Content-Type": "application/json"}
    if section.token:
        headers["Authorization"] = f"Bearer {section.token}"
    probe = json.dumps(PROBE).encode()
    try:
        answer = _answer_finding(
            url,
            section,
            *_ask(urllib.request.Request(url + section.path, probe, headers, method="POST")),
        )
        if not answer.ok:
            return [answer]
        status, body = _ask(urllib.request.Request(url + "/readyz"))
    except OSError as error:
        return [
            Finding(
                False,
                f"nothing answers at {url} ({getattr(error, 'reason', error)}): start the "
                "service (`systemctl status rdns-scorer`), or correct `servers` in rspamd's "
                "section",
            )
        ]
    if status == 200:
        return [answer, Finding(True, f"{url} is ready (its resolver answers)")]
    return [
        answer,
        Finding(
            False,
            f"{url} is not ready ({_error_text(body)}): every check is a zero-weight "
            "TEMPFAIL until its resolver answers (docs/monitoring.md)",
        ),
    ]


def check(confdir: Path, rspamadm: str) -> list[Finding]:
    """Every finding, in the order a reader follows them: module, plugin, services."""
    findings = [_module_finding(module_state(_rspamadm(rspamadm, confdir, "-m")), confdir)]
    findings += filter(None, [_plugin_finding(confdir)])
    dumped = _rspamadm(rspamadm, confdir, "-j", "rdns_scorer")
    # Without an rdns_scorer section rspamadm 3.4 says so in words (exit 0), and the
    # plugin's defaults apply.
    absent = dumped.strip() == "Section rdns_scorer NOT FOUND"
    section = Section.from_dump(None if absent else json.loads(dumped))
    for entry in section.servers:
        findings += server_findings(entry, section)
    return findings


def _cmd_check(args: argparse.Namespace) -> int:
    confdir = rspamd.confdir_of(args)
    if confdir is None:
        return 2
    rspamadm = shutil.which("rspamadm")
    if rspamadm is None:
        print("rdns-scorer rspamd check: rspamadm not found (is rspamd installed here?)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        findings = check(confdir, rspamadm)
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        print(f"rdns-scorer rspamd check: {error}", file=sys.stderr)
        return 2
    print("\n".join(finding.line() for finding in findings))
    problems = sum(not finding.ok for finding in findings)
    if problems:
        print(f"{problems} problem{'s' if problems > 1 else ''} (mail still flows: the "
              "plugin fails open)")  # fmt: skip
        return 1
    print("rspamd asks rdns-scorer, and it answers")
    return 0


def add_command(actions: argparse._SubParsersAction) -> None:
    """Register ``rdns-scorer rspamd check`` with the rspamd command's actions."""
    parser = actions.add_parser(
        "check",
        help="check that rspamd loads the plugin and reaches a service that answers",
        description="Ask rspamd (rspamadm configdump) whether it loads the rdns_scorer "
        "module and where it sends checks, then send each of those services a check as "
        "the plugin does (a loopback client, which the service skips without DNS) and "
        "ask whether it is ready. Exit 0 when all is well, 1 with problems, 2 when it "
        "cannot tell.",
    )
    parser.add_argument(
        "--confdir",
        default=str(rspamd.DEFAULT_CONFDIR),
        help="rspamd config dir (default /etc/rspamd)",
    )
    parser.set_defaults(func=_cmd_check)
