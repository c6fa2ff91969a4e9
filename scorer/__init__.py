"""rdns-scorer: reverse-DNS, HELO and MAIL FROM scoring for rspamd and SpamAssassin."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``__version__``, looked up at first use (PEP 562): importlib.metadata takes ~30 ms,
    and every ``rdns-scorer serve`` imports this package before it can defer SIGHUP
    and stop on SIGTERM (scorer.launch), a window a reload or stop could land in."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("rdns-scorer")
    except PackageNotFoundError:  # running from a source tree that was not installed
        found = "0.0.0+source"
    globals()["__version__"] = found
    return found
