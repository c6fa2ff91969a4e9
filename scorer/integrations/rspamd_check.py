"""``rdns-scorer rspamd check``: is rspamd wired to a service that answers it?

The ways a working install goes quiet all look alike from the mail side: every scan
gets ``RL_SCORER_FAIL`` (fail-open), or no symbol at all. This asks rspamd itself what
it loads and where it sends checks (``rspamadm configdump``: its view, after every
include, override and priority, not our reading of its files), then asks each of those
services what the plugin would ask, and says for each finding what to do.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scorer.integrations import PLUGIN_TIMEOUT, probe, rspamd
from scorer.integrations.probe import Finding
from scorer.integrations.rspamd import TASK_TIMEOUT

# The plugin's defaults (lua/rdns_scorer.lua's `settings`), for keys its section leaves out.
DEFAULT_SERVERS = "127.0.0.1:11340"
DEFAULT_PATH = "/v1/check"
DEFAULT_PORT = 11340
WIRING = probe.Wiring(
    filter="rspamd",
    address_setting="`servers` in rspamd's section",
    path_setting="`path` in rspamd's section",
    token_fix="run `rdns-scorer rspamd install --config FILE` with the service's config",
    timeout_setting="`timeout` in rspamd's section",
    max_timeout=rspamd.MAX_TIMEOUT,  # below rspamd's task_timeout, as install keeps it
    msgpack_body=True,
)


@dataclass(frozen=True, slots=True)
class Section:
    """The plugin's settings as rspamd reads them: its section, the defaults for keys it
    leaves out."""

    servers: list[str]
    path: str
    token: str | None
    timeout: float  # as the plugin waits: see from_dump
    rotation: str | None = None  # the prefix written before the servers, in lower case

    @classmethod
    def from_dump(cls, section: dict[str, Any], task_timeout: float = TASK_TIMEOUT) -> Section:
        """The section as the plugin reads it; ``task_timeout``: rspamd's shortest
        (shortest_task_timeout), at or above which the plugin waits less."""
        servers = section.get("servers", DEFAULT_SERVERS)
        listed = servers if isinstance(servers, list) else [servers]
        # A list is one text to the plugin, its rotation prefix before the first entry.
        text, rotation = split_rotation(", ".join(str(item) for item in listed))
        # Separated as rspamd separates upstreams (lua/rdns_scorer.lua, server_entries).
        entries = [e for e in re.split(r"[,;\s]+", text) if e]
        path = str(section.get("path", DEFAULT_PATH))
        token = section.get("token")  # a number too, as UCL reads `token = 0`
        path = path if path.startswith("/") else f"/{path}"
        # Unset: the plugin's default. Anything else it refuses, disabling the module
        # (said by the module finding): the default stands for what is asked below.
        timeout = ucl_seconds(section.get("timeout")) or PLUGIN_TIMEOUT
        if timeout >= task_timeout:
            timeout = min(PLUGIN_TIMEOUT, task_timeout / 2)  # the plugin's fallback
        return cls(entries, path, None if token is None else str(token), timeout, rotation)


# rspamd's rotations for an upstream list that the plugin takes, written before the first
# server ("master-slave:10.0.0.5:11340, 10.0.0.6:11340"; lua/rdns_scorer.lua's ROTATIONS),
# and the one it refuses by name: rspamd 3.4 does not know "sequential:".
ROTATIONS = ("round-robin", "master-slave", "random", "hash")
REFUSED_ROTATION = "sequential"
_ROTATION_NAMES = ", ".join(f"{name}:" for name in ROTATIONS)
_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9-]*):")
# rspamd's SRV form of an entry ("service=NAME+DOMAIN"), which the plugin refuses: rspamd
# makes it an upstream with no address, and asking it for one crashed rspamd 3.4 and 3.12
# at load (lua/rdns_scorer.lua).
_SRV = re.compile(r"service=", re.IGNORECASE)


def _is_rotation(name: str) -> bool:
    """Whether ``name`` is read as a rotation, in any case (the plugin's is_rotation)."""
    return name.lower() in (*ROTATIONS, REFUSED_ROTATION)


def split_rotation(servers: str) -> tuple[str, str | None]:
    """``servers`` less a leading rotation prefix, and its name in lower case (None when
    none is written), as the plugin splits them (split_rotation): only a rotation is a
    prefix; "failover:10.0.0.5" stays an entry, which _read_entry refuses."""
    text = servers.lstrip(",; \t\r\n")
    found = _PREFIX.match(text)
    if found and _is_rotation(found.group(1)):
        return text[found.end() :], found.group(1).lower()
    return servers, None


# UCL's time suffixes (libucl's ucl_lex_number), for a time written quoted ("500ms"),
# which configdump prints as written and the plugin reads as UCL reads it unquoted.
_UCL_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "min": 60.0, "h": 3600.0, "d": 86400.0}
_UCL_TIME = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|min|h|d|)\s*", re.IGNORECASE)


def ucl_seconds(value: object) -> float | None:
    """A positive time in seconds as rspamd reads ``value`` (a number, or a quoted time
    such as "500ms"), or None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (found := _UCL_TIME.fullmatch(value)):
        seconds = float(found.group(1)) * _UCL_TIME_UNITS[found.group(2).lower()]
    else:
        return None
    return seconds if seconds > 0 else None


def shortest_task_timeout(options: str, workers: str) -> float:
    """rspamd's task_timeout as the plugin works it out (lua/rdns_scorer.lua): the
    options section's, or a worker's own where shorter; 8 s when none says. From the
    ``configdump -j options`` and ``-j worker`` dumps."""
    found = [merged_sections(options).get("task_timeout")]
    for block in _json_objects(workers):
        found += [w.get("task_timeout") for w in block.values() if isinstance(w, dict)]
    return min(filter(None, map(ucl_seconds, found)), default=TASK_TIMEOUT)


def _host_port(entry: str) -> re.Match[str] | None:
    """host, host:port or host:port:priority (rspamd's), the host an IPv6 address in
    brackets or one without ':' (the plugin's host_port): the host and the port, if any."""
    return re.fullmatch(r"(?:\[([^\[\]]+)\]|([^:\[\]]+))(?::(\d+)(?::\d+)?)?", entry)


def _address(entry: str) -> tuple[str, str] | None:
    """The host and port of a ``servers`` entry written as _host_port reads it (the
    default port when none is written), or None: not that form, or a port no TCP
    service has (0, above 65535: urllib would ask 99999 as 34463)."""
    found = _host_port(entry)
    if found is None:
        return None
    host, port = found.group(1) or found.group(2), found.group(3) or str(DEFAULT_PORT)
    return (host, port) if 0 < int(port) <= 65535 else None


def _read_entry(entry: str, first: bool = False) -> tuple[str, str] | str:
    """The host and port the plugin asks for a ``servers`` entry, or why it cannot ask
    it, from one parse of the entry. ``first``: the first of ``servers``, where a
    rotation prefix goes. Refused: anything but "host", "host:port", "[v6]",
    "[v6]:port", each maybe with rspamd's ":priority" after the port, such as an IPv6
    address without brackets, which rspamd 3.4 reads as port 0 ("::1") or not at all
    ("2001:db8::1"), a port out of range (_address), a URL or path ("http://host:port",
    "host:port/v1/check"), a rotation rspamd does not know ("failover:10.0.0.5") or
    anything else after the port, or rspamd's SRV form ("service=NAME+DOMAIN")."""
    if _SRV.match(entry):
        return (
            "the plugin refuses rspamd's SRV form (service=NAME+DOMAIN), which crashed "
            "rspamd at load: write host:port"
        )
    if "/" not in entry:
        address = _address(entry)
        if address is not None:
            return address
        prefix = _PREFIX.match(entry)
        if prefix and _host_port(entry) is None:
            name = prefix.group(1)
            if _is_rotation(name):
                return f"a rotation ({name}:) goes before the first server only"
            if first:
                return (
                    f"{name}: is no rotation rspamd knows ({_ROTATION_NAMES}), and no "
                    "host:port either"
                )
    return (
        f"write host, host:port (a port from 1 to 65535; no URL, the path goes in `path`), "
        f"or an IPv6 address in brackets ([::1]:{DEFAULT_PORT}; without, rspamd reads "
        f"port 0 or nothing)"
    )


def _url(address: tuple[str, str]) -> str:
    """``http://HOST:PORT`` for a host and port _read_entry gives."""
    host, port = address
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# The settings the plugin reads (lua/rdns_scorer.lua's `settings`, a test keeps them the
# same), and rspamd's own switches; it ignores any other key, with a warning in the log.
KNOWN_SETTINGS = (
    "servers", "path", "timeout", "check_local", "check_authed", "token", "group", "holddown",
    "holddown_after", "keepalive",
)  # fmt: skip
_RSPAMD_SWITCHES = ("enabled", "disabled")


def _unknown_settings_finding(section: dict[str, Any]) -> Finding | None:
    """A problem for keys of the section the plugin ignores: a typo (``server``) leaves
    the setting it meant at its default, which may even answer (a service on the
    default port), so nothing else says so."""
    unknown = [k for k in section if k not in KNOWN_SETTINGS and k not in _RSPAMD_SWITCHES]
    if not unknown:
        return None
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, KNOWN_SETTINGS, n=1)
        named.append(f"`{key}`" + (f" (`{close[0]}`?)" if close else ""))
    return Finding(
        False,
        f"rspamd's section sets {', '.join(named)}, which the plugin does not know and "
        f"ignores, using its default for what was meant: the settings are "
        f"{', '.join(KNOWN_SETTINGS)}",
    )


def _unusable_finding(entry: str, refusal: str) -> Finding:
    """The problem with an entry the plugin refuses, ``refusal`` saying why (_read_entry)."""
    return Finding(False, f"rspamd cannot ask `servers` entry {entry}: {refusal}")


def _sequential_finding() -> Finding:
    return Finding(
        False,
        f"`servers` starts with the rotation {REFUSED_ROTATION}:, which the plugin refuses "
        f"(rspamd 3.4 does not know it either): write {_ROTATION_NAMES} or none (round "
        "robin); master-slave: asks the first server, the others only when it is down",
    )


def _rspamadm(rspamadm: str, confdir: Path, *args: str) -> str:
    """rspamadm's output for ``args`` on the config in ``confdir``; RuntimeError when it fails."""
    command = rspamd.rspamadm_command(confdir, "configdump", rspamadm) + list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        # Its errors only: what it printed may be the section, the token with it.
        said = done.stderr.strip() or f"exit {done.returncode}"
        raise RuntimeError(f"`{' '.join(command)}` failed: {said}")
    return done.stdout


def merged_sections(dumped: str) -> dict[str, Any]:
    """The section as the plugin gets it (``rspamd_config:get_all_opt``) from
    ``configdump -j rdns_scorer``, which prints one JSON object per ``rdns_scorer { }``
    block when the name is defined twice (rspamd.conf.local and an include, say):
    get_all_opt merges them, a later block's keys replacing an earlier one's."""
    merged: dict[str, Any] = {}
    for block in _json_objects(dumped):
        merged.update(block)
    return merged


def _json_objects(dumped: str) -> list[dict[str, Any]]:
    """The JSON objects ``configdump -j`` printed one after another."""
    decoder, objects, at = json.JSONDecoder(), [], 0
    while at < len(dumped):
        if dumped[at].isspace():
            at += 1
            continue
        try:
            block, at = decoder.raw_decode(dumped, at)
        except ValueError as error:
            # Not what it printed: the section's token would be in it.
            raise RuntimeError(f"`rspamadm configdump -j` printed no JSON ({error})") from None
        if isinstance(block, dict):
            objects.append(block)
    return objects


def module_state(modules: str) -> str | None:
    """What ``configdump -m`` says of rdns_scorer: "enabled", "disabled (failed)" and
    so on, or None when rspamd does not know it (no plugin file loaded)."""
    for line in modules.splitlines():
        label, _, names = line.partition(":")
        if "rdns_scorer" in (name.strip() for name in names.split(",")):
            return label.removeprefix("Modules ").strip()
    return None


def _module_finding(state: str | None, confdir: Path, has_section: bool) -> Finding:
    plugin = confdir / "plugins.d" / rspamd.PLUGIN_FILE
    # Install keeps a section installed before; without one it needs the service's
    # config, or the section it writes has no token.
    install = _install_advice(confdir) + ("" if has_section else " --config FILE")
    if state == "enabled":
        return Finding(True, "rspamd loads the rdns_scorer module")
    if state is None:
        return Finding(
            False,
            f"rspamd does not load the plugin ({plugin} is missing or was not read): "
            f"run `{install}`",
        )
    if not has_section:  # the plugin returns at once: rspamd says "disabled (unconfigured)"
        why = (
            f"it has no rdns_scorer section (rspamd.conf.local); run `{install}` with the "
            "service's config"
        )
    elif state == "disabled (explicitly)":
        why = "`enabled = false` in its section"
    else:  # the plugin refused its section: the reason is a line in rspamd's log
        why = (
            "rspamd's log says why (/var/log/rspamd/rspamd.log, or `journalctl -u rspamd`: "
            "grep rdns_scorer), and so does `rspamadm configtest`, which passes all the same"
        )
    return Finding(False, f"rspamd has the rdns_scorer module {state}: {why}")


def _plugin_finding(confdir: Path) -> Finding | None:
    """Whether the installed plugin is this release's (probe.release_finding)."""
    plugin = confdir / "plugins.d" / rspamd.PLUGIN_FILE
    if not plugin.is_file():
        return None  # said by the module finding
    return probe.release_finding(plugin, rspamd.shipped_plugin(), _install_advice(confdir))


def _override_finding(confdir: Path) -> Finding | None:
    """A problem when rspamd.conf.local.override has an rdns_scorer section: rspamd reads
    it at a higher priority, and it replaces install's section whole (the servers and
    token install wrote are never used). The servers asked below are then its, and the
    advice to correct `servers` in "rspamd's section" did not say which one."""
    override = confdir / "rspamd.conf.local.override"
    line = rspamd.section_line(override) if override.is_file() else None
    if line is None:
        return None
    return Finding(
        False,
        f"{override} line {line} has an rdns_scorer section, which replaces the one in "
        "rspamd.conf.local whole (not one of its keys is used): remove it (or comment it "
        f"out) and run `{_install_advice(confdir)} --config FILE`",
    )


def _install_advice(confdir: Path) -> str:
    """The install command that puts the plugin into ``confdir``, as the advice shows it:
    with its ``--confdir`` unless that is /etc/rspamd (the advice was wrong for a copy)."""
    return f"rdns-scorer rspamd install{rspamd.confdir_option(confdir)}"


def check(confdir: Path, rspamadm: str | None = None) -> list[Finding]:
    """Every finding, in the order a reader follows them: module, plugin, services.
    ``rspamadm``: its path (default: found on PATH)."""
    rspamadm = rspamadm or shutil.which("rspamadm")
    if rspamadm is None:
        raise RuntimeError("rspamadm not found (is rspamd installed here?)")
    state = module_state(_rspamadm(rspamadm, confdir, "-m"))
    dumped = _rspamadm(rspamadm, confdir, "-j", "rdns_scorer")
    # Without an rdns_scorer section rspamadm 3.4 says so in words (exit 0), and the
    # plugin asks no server.
    has_section = dumped.strip() != "Section rdns_scorer NOT FOUND"
    findings = [_module_finding(state, confdir, has_section)]
    findings += filter(None, [_plugin_finding(confdir), _override_finding(confdir)])
    findings += [
        Finding(False, rspamd.unread_module_file_text(path))
        for path in rspamd.unread_module_files(confdir)
    ]
    boms = (rspamd.bom_text(confdir / name) for name in rspamd.TOP_LEVEL_LOCAL_FILES)
    findings += [Finding(False, text) for text in boms if text is not None]
    if not has_section:
        return findings
    task_timeout = shortest_task_timeout(
        _rspamadm(rspamadm, confdir, "-j", "options"), _rspamadm(rspamadm, confdir, "-j", "worker")
    )
    merged = merged_sections(dumped)
    section = Section.from_dump(merged, task_timeout)
    findings += filter(None, [_unknown_settings_finding(merged)])
    token_fix = f"run `{_install_advice(confdir)} --config FILE` with the service's config"
    # Under a shorter task_timeout (a worker's), a timeout of 7.5 s would be refused too.
    max_timeout = min(rspamd.MAX_TIMEOUT, rspamd.longest_timeout(task_timeout))
    installed = rspamd.installed_section(confdir / "rspamd.conf.local") is not None
    wiring = replace(
        WIRING,
        token_fix=token_fix,
        max_timeout=max_timeout,
        installed_by=_install_advice(confdir) if installed else "",
    )
    if section.rotation == REFUSED_ROTATION:
        findings.append(_sequential_finding())
    for index, entry in enumerate(section.servers):
        read = _read_entry(entry, index == 0)
        if isinstance(read, str):
            findings.append(_unusable_finding(entry, read))
        else:
            findings += probe.service_findings(
                _url(read), section.path, section.token, wiring, section.timeout
            )
    return findings


def _cmd_check(args: argparse.Namespace) -> int:
    confdir = rspamd.confdir_of(args)
    if confdir is None:
        return 2
    all_well = "rspamd asks rdns-scorer, and it answers"
    return probe.run_check("rspamd check", lambda: check(confdir), all_well)


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
    rspamd.add_confdir_option(parser)
    parser.set_defaults(func=_cmd_check)
