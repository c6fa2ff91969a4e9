"""The ``rdns-scorer`` entry point.

``serve`` defers SIGHUP before anything else is imported (scorer.hangup): the
command line pulls in aiohttp, dnspython and the rest, which takes long enough
for a ``systemctl reload`` right after a start to land in it.
"""

from __future__ import annotations

import sys

from scorer.hangup import defer_hangups


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        defer_hangups()
    from scorer.cli import main as cli_main

    return cli_main()
