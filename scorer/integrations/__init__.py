"""Installers and config generators for the mail filters we plug into."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The repository root when this package runs from a checkout (editable installs, make).
CHECKOUT = Path(__file__).resolve().parents[2]


def install_roots() -> list[Path]:
    """Where ``pip install`` may have put our data files (pyproject.toml ``data-files``).

    The running prefix (a venv, pipx), the default scheme's data path (Debian's
    system Python installs to /usr/local while ``sys.prefix`` is /usr), and the
    user base (``pip install --user``).
    """
    bases = [sys.prefix, sysconfig.get_path("data"), site.USER_BASE or ""]
    return [Path(base) / "share" / "rdns-scorer" for base in dict.fromkeys(bases) if base]


def shipped_dir(subdir: str, filename: str, roots: Sequence[Path] | None = None) -> Path:
    """The directory holding ``subdir/filename`` (``lua`` or ``spamassassin``): the
    checkout's own copy first, then each install root. FileNotFoundError names where
    it looked."""
    searched = [CHECKOUT, *(install_roots() if roots is None else roots)]
    candidates = [root / subdir for root in searched]
    for candidate in candidates:
        if (candidate / filename).is_file():
            return candidate
    raise FileNotFoundError(
        f"{filename} not found in any of: {', '.join(str(c) for c in candidates)}"
    )


# What one symbol adds to a verdict at most, either way: both plugins cap the score a
# reply gives it (SCORE_LIMIT in lua/rdns_scorer.lua and RdnsScorer.pm), so a forged
# reply cannot weigh more; a weight beyond it is warned about (Config.warnings).
SCORE_LIMIT = 20.0

# The plugins' own default timeout (lua/rdns_scorer.lua, spamassassin/rdns_scorer.cf).
PLUGIN_TIMEOUT = 1.0


def plugin_timeout(request_deadline: float) -> float:
    """The timeout an installer writes for a service answering within its
    ``request_deadline``: that and a little for the network, never below the plugins'
    default (each filter caps it at its own limit)."""
    return max(PLUGIN_TIMEOUT, round(request_deadline + 0.2, 3))


def longest_deadline(max_timeout: float, request_deadline: float) -> float:
    """The longest request_deadline a plugin timeout of ``max_timeout`` covers, where
    ``request_deadline`` wants a longer one: the network's share of ``plugin_timeout``
    taken off."""
    return round(max_timeout - (plugin_timeout(request_deadline) - request_deadline), 3)


def replace_file(path: Path, content: str, mode: int, owner: tuple[int, int] | None) -> None:
    """Put ``content`` at ``path`` all at once: written to a file beside it, then renamed
    over it. Written in place, a full disk or a crash left the filter a config cut short,
    which it refuses whole. The new file is private until it has ``mode`` (and
    ``owner``'s uid and gid, -1 keeping one), so a token is never in a file more open
    than that."""
    target = path.resolve()  # a symlink stays one: what it points at is what is read
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write(content)
            file.flush()
            if owner is not None:
                os.fchown(file.fileno(), *owner)
            os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise
