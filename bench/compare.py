"""One served scenario, this tree against an earlier commit, round for round.

    python bench/compare.py BASE [--scenario cold] [--rounds 7] [--seconds 8]

A change to the hot path moves a figure by a few percent, and this shared box moves
from one minute to the next by tens. So both trees serve the same scenario in turns
(BASE first in every round), each a fresh `rdns-scorer serve` pinned as in
bench/run.py, and each round of this tree is set against the BASE round just before
it: by requests/s and by server CPU per check, with the medians (a ratio above 1
means this tree does better). BASE is checked out in a temporary git worktree,
removed afterwards. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import zones  # noqa: E402
from bench.run import _ratios_by_round, machine, start_service, wrk  # noqa: E402

KEPT = ("requests_per_s", "server_cpu_us_per_request", "server_cpu_kernel_percent", "p99_ms")


def _entry(tree: Path) -> tuple[str, ...]:
    """How start_service runs the service of ``tree`` (it runs from this tree's folder)."""
    return (
        "-c",
        f"import sys; sys.path.insert(0, {str(tree)!r}); "
        "from scorer.cli import main; sys.exit(main())",
    )


def _round(nameserver: str, workdir: Path, tree: Path, scenario: str, seconds: float) -> Any:
    server = start_service(nameserver, workdir, entry=_entry(tree))
    try:
        wrk(server, "warm", 1)
        return wrk(server, scenario, seconds, connections=64)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the commit to compare with (any git revision)")
    parser.add_argument("--scenario", default="cold", help="a bench/post.lua mode (cold, warm)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rdns-compare-") as temporary:
        base_tree = Path(temporary) / "base"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", "-q", str(base_tree), args.base], check=True)
        unbound = zones.start()
        try:
            base_runs: list[dict[str, Any]] = []
            runs: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                for tree, kept in ((base_tree, base_runs), (ROOT, runs)):
                    result = _round(
                        unbound.nameserver, Path(temporary), tree, args.scenario, args.seconds
                    )
                    kept.append({key: result[key] for key in KEPT})
        finally:
            unbound.stop()
            subprocess.run([*git, "remove", "--force", str(base_tree)], check=False)
    report = {
        "machine": machine(),
        "base": args.base,
        "scenario": args.scenario,
        "base_runs": base_runs,
        "runs": runs,
        **_ratios_by_round(base_runs, runs, reference="base"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
