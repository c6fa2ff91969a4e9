"""``rdns-scorer spamassassin install --config FILE``: where the plugin asks, and its token.

The settings README and docs/spamassassin.md have the admin write by hand into a file of
their own (``rdns_scorer_local.cf``), written from the service's config instead, as
``rdns-scorer rspamd install --config`` writes rspamd's section: the URL of the service's
``listen`` address, a timeout that leaves room for its ``request_deadline``, and its
token, in a file only root and the group SpamAssassin runs as can read.
"""

from __future__ import annotations

import grp
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from scorer.config import Config, local_address
from scorer.integrations import plugin_timeout, replace_file, spamd_reader
from scorer.integrations.spamassassin import (
    LOCAL_EXAMPLE,
    LOCAL_MARK,
    PLUGIN_PACKAGE,
    Step,
    admins_lines_after,
    dist_path,
    is_written_by_install,
)

# The group amavis or a spamd run with -u debian-spamd reads its config as (the package
# creates it), where no spamd tells another (spamd_reader); amavis takes --group.
DEFAULT_GROUP = "debian-spamd"
# The plugin's own limit (RdnsScorer.pm).
MAX_TIMEOUT = 60.0


def local_settings(config: Config) -> str:
    """The file's text for a service running with ``config``. ValueError when its
    ``listen`` names a host: rdns_scorer_url takes an address (RdnsScorer.pm: a name's
    lookup would block every message outside the plugin's deadline)."""
    address = local_address(config.server.listen)
    host = address.rpartition(":")[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"[server] listen {config.server.listen} names a host, and rdns_scorer_url takes "
            f"an IP address: write rdns_scorer_url in {LOCAL_EXAMPLE} by hand"
        ) from None
    # The service answers within its request deadline; give the network a little on top.
    wanted = plugin_timeout(config.dns.request_deadline)
    lines = [
        f"{LOCAL_MARK}: where the plugin asks the",
        "# service and the token it sends. Install rewrites these settings: change the service's",
        "# config, then run install --config again. Lines you add after endif stay.",
        f"ifplugin {PLUGIN_PACKAGE}",
        f"rdns_scorer_url     http://{address}/v1/check",
        f"rdns_scorer_timeout {min(wanted, MAX_TIMEOUT):g}",
    ]
    if config.server.token:
        lines.append(f"rdns_scorer_token   {config.server.token}")
    lines.append("endif")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class LocalFile:
    """What install writes to ``rdns_scorer_local.cf``: its text, mode and group, and a
    warning for the admin (no group spamd could read it as)."""

    content: str
    mode: int
    gid: int | None
    warning: str | None


def group_exists(name: str) -> bool:
    """Whether this host has a group called ``name``."""
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def local_file(config: Config, group: str | None) -> LocalFile:
    """The file for a service running with ``config``: with a token 0640 and of ``group``
    (default: the group of the user spamd reads its config as, nogroup for Debian's spamd
    as shipped; where no spamd reads it, amavis's group if amavis is installed; else
    debian-spamd; 0600 and a warning where there is no such group), else 0644.
    ValueError for a ``listen`` the plugin cannot take, or an unknown ``group``: worked
    out before install writes anything, so that nothing is half installed."""
    content = local_settings(config)
    if not config.server.token:
        return LocalFile(content, 0o644, None, None)
    if group is None:
        # The group of the user spamd reads its config as: Debian's spamd as shipped (root,
        # without -u) reads it as nobody, not as debian-spamd (spamd_reader). Without a
        # spamd, amavis's: debian-spamd locked SpamAssassin in amavis out of the token,
        # and every message failed open. (With both, install warns: one group is no fit.)
        reader = spamd_reader.system_reader() or spamd_reader.amavis_reader()
        group = None if reader is None else spamd_reader.primary_group(reader.user)
        if group is not None and not group_exists(group):
            group = None
    try:
        return LocalFile(content, 0o640, grp.getgrnam(group or DEFAULT_GROUP).gr_gid, None)
    except KeyError:
        if group is not None:
            raise ValueError(f"--group {group}: no such group") from None
    # root alone: spamd run as root reads it, amavis does not
    warning = (
        f"no group {DEFAULT_GROUP}: it is readable by root only; give --group GROUP, "
        "the one spamd or amavis runs as"
    )
    return LocalFile(content, 0o600, None, warning)


def install_local(siteconfigpath: Path, local: LocalFile) -> tuple[Step, str | None]:
    """Write ``siteconfigpath/rdns_scorer_local.cf`` unless a file of the admin's has
    that name; the step, and the file's warning when it was written. Lines the admin
    added after the settings' ``endif`` stay; a file whose settings block the admin
    edited is kept, the new settings written beside it as ``.dist``."""
    target = siteconfigpath / LOCAL_EXAMPLE
    offered = dist_path(target)
    owner = None if local.gid is None else (-1, local.gid)
    if target.exists() and not is_written_by_install(target):
        return Step(target, "kept", "yours: set rdns_scorer_url and rdns_scorer_token in it"), None
    content, note = local.content, ""
    if target.exists():
        current = target.read_text(encoding="utf-8", errors="replace")
        added = admins_lines_after(current)
        if added is None:
            replace_file(offered, local.content, local.mode, owner)
            why = f"its settings edited; this config's are in {offered}: copy them in"
            return Step(target, "kept", why), local.warning
        content += added
        note = "your lines after its endif kept" if added.strip() else ""
        # Offered when the block was edited, and copied in since: a stale copy of the
        # token, which nothing reads.
        offered.unlink(missing_ok=True)
        info = target.stat()
        unchanged = current == content and (
            info.st_mode & 0o777 == local.mode and (local.gid is None or info.st_gid == local.gid)
        )
        if unchanged:
            return Step(target, "unchanged"), local.warning
    action = "updated" if target.exists() else "installed"
    replace_file(target, content, local.mode, owner)
    return Step(target, action, note), local.warning
