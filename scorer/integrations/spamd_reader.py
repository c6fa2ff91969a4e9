"""Which user spamd reads the site config as, and whether that user can read a file.

spamd started as root without ``-u`` (Debian's spamd.service with /etc/default/spamd as
shipped: ``--create-prefs --max-children 5 --helper-home-dir``) does not read its config
as root: it sets its effective user to ``--default-user`` (``nobody``, with nobody's
groups) before it preloads the config (spamd's ``seteuid_to_user`` ahead of
``preload_modules_with_tmp_homedir``), and its children get that parsed config. A file
of mode 0640 ``root:debian-spamd`` is then skipped (``config: cannot open ...:
Permission denied`` in spamd's log, nowhere else: lint, run as root, passes), and the
plugin asks its default URL without the token. With ``-u USER`` spamd reads it as USER.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

SPAMD_DEFAULTS = Path("/etc/default/spamd")
SPAMD_PIDFILE = Path("/run/spamd.pid")  # spamd.service's --pidfile
PROC = Path("/proc")
SYSTEMD = Path("/etc/systemd/system")
DEFAULT_USER = "nobody"  # spamd's --default-user
# Debian's amavisd-new runs SpamAssassin as a library in its own processes, which read
# the site config as this user (group amavis).
AMAVIS_USER = "amavis"


def spamd_installed(systemd: Path = SYSTEMD) -> bool:
    """Whether a spamd reads this config: spamd is installed and its service enabled
    (amavis alone, with the spamd package installed but not enabled, is not asked
    about), or the system's spamd runs (started otherwise)."""
    if shutil.which("spamd") is None and not Path("/usr/sbin/spamd").is_file():
        return False
    enabled = any(systemd.glob("*.wants/spamd.service"))
    return enabled or _running_spamd_uid(SPAMD_PIDFILE, PROC) is not None


@dataclass(frozen=True, slots=True)
class Reader:
    """The user spamd reads its config as, and how that was found (for the message)."""

    user: str
    how: str


def _options(text: str) -> list[str]:
    """The words of ``OPTIONS="..."`` in /etc/default/spamd (the last such line)."""
    words: list[str] = []
    for line in text.splitlines():
        match = re.match(r"\s*OPTIONS=(.*)$", line)
        if match:
            try:
                words = shlex.split(match.group(1), comments=True)
            except ValueError:
                continue
            words = " ".join(words).split()
    return words


def _option(words: list[str], short: str, long: str) -> str | None:
    """The value of ``-u X``, ``-uX``, ``--username X`` or ``--username=X`` (the last)."""
    value = None
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        if word in (short, long):
            value = following
        elif word.startswith(long + "="):
            value = word[len(long) + 1 :]
        elif word.startswith(short) and not word.startswith("--") and len(word) > len(short):
            value = word[len(short) :]
    return value


def _running_spamd_uid(pidfile: Path, proc: Path) -> int | None:
    """The real uid of the system's running spamd: the one spamd.service starts with
    ``--pidfile=/run/spamd.pid`` (a spamd started by hand elsewhere is not the one
    Postfix or amavis asks)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        entry = proc / str(pid)
        if "spamd" not in (entry / "comm").read_text():
            return None
        status = (entry / "status").read_text()
    except (OSError, ValueError, IndexError):
        return None
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
    return int(uid.group(1)) if uid else None


def spamd_reader(
    spamd_installed: bool,
    proc: Path = PROC,
    defaults: Path = SPAMD_DEFAULTS,
    pidfile: Path = SPAMD_PIDFILE,
) -> Reader | None:
    """The user spamd reads the site config as: a running spamd's (root: its default
    user), else the one /etc/default/spamd's OPTIONS give it; None without spamd."""
    if not spamd_installed:
        return None
    try:
        words = _options(defaults.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        words = []
    default_user = _option(words, "-U", "--default-user") or DEFAULT_USER
    uid = _running_spamd_uid(pidfile, proc)
    if uid is not None:
        if uid != 0:
            try:
                return Reader(pwd.getpwuid(uid).pw_name, "the running spamd's user")
            except KeyError:
                return None
        return Reader(default_user, "the running spamd is root without -u: its default user")
    user = _option(words, "-u", "--username")
    if user:
        return Reader(user, f"-u {user} in {defaults}")
    return Reader(default_user, f"spamd as root without -u ({defaults}): its default user")


def system_reader() -> Reader | None:
    """The user this host's spamd reads its config as, or None where no spamd reads it:
    what install and check ask."""
    return spamd_reader(spamd_installed())


def amavis_reader() -> Reader | None:
    """amavisd-new's user where amavis is installed (the user exists), or None: amavis
    reads the site config as it, whether or not a spamd runs too."""
    try:
        pwd.getpwnam(AMAVIS_USER)
    except KeyError:
        return None
    return Reader(AMAVIS_USER, "amavisd-new runs SpamAssassin as it")


def readers(system: Reader | None) -> list[Reader]:
    """Every user SpamAssassin on this host reads its config as, besides root, each once:
    ``system``, spamd's (what system_reader found), and amavis's (amavis_reader), which
    reads it whether or not a spamd runs too."""
    found = [] if system is None else [system]
    amavis = amavis_reader()
    if amavis is not None and amavis.user not in {reader.user for reader in found}:
        found.append(amavis)
    return found


def primary_group(user: str) -> str:
    """``user``'s primary group by name (``nogroup`` for Debian's nobody), or its number."""
    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        return "GROUP"
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def advice(path: Path, reader: Reader) -> str:
    """Why spamd goes on without ``path`` and what fixes it, for check and install."""
    group = primary_group(reader.user)
    if reader.user == AMAVIS_USER:
        return (
            f"amavis reads its config as {reader.user} ({reader.how}), who may not read "
            f"{path}: SpamAssassin in amavis goes on without it (lint, run as root, passes), "
            f"and its checks are refused or go elsewhere: run install --config again with "
            f"--group {group} (or chgrp {group} {path}), then restart amavis"
        )
    return (
        f"spamd reads its config as {reader.user} ({reader.how}), who may not read {path}: "
        f'spamd goes on without it (its log says `config: cannot open "{path}": Permission '
        f"denied`; lint, run as root, passes), and its checks are refused or go elsewhere: "
        f"run install --config again with --group {group} (or chgrp {group} {path}), or "
        "run spamd with -u USER and give install --group that user's group"
    )


def can_read(path: Path, user: str) -> bool | None:
    """Whether ``user`` (with its groups) may read ``path`` by its mode; None when
    there is no such user or no such file."""
    try:
        account = pwd.getpwnam(user)
        info = path.stat()
    except (KeyError, OSError):
        return None
    if account.pw_uid == 0:
        return True
    if info.st_uid == account.pw_uid:
        return bool(info.st_mode & 0o400)
    if info.st_gid in os.getgrouplist(user, account.pw_gid):
        return bool(info.st_mode & 0o040)
    return bool(info.st_mode & 0o004)
