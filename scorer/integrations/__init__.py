"""Installers and config generators for the mail filters we plug into."""

from __future__ import annotations

import site
import sys
import sysconfig
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
