"""Command-line helper for the generic-PTR classifier (the lead wires it into argparse).

Two modes:

* one address: ``run_generic(("100.12.35.33", "33-35-12-100.example-isp.net"), ...)`` prints
  a human-readable verdict;
* batch: with no pair (None), reads ``IP<TAB>HOSTNAME`` lines from ``stdin`` and writes
  ``generic|legit|error<TAB>confidence<TAB>evidence; evidence`` per line, so admins can run
  it over addresses and names pulled from mail logs.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TextIO

from scorer.generic.classifier import classify
from scorer.generic.hostparts import normalize_hostname
from scorer.generic.verdict import GenericVerdict

#: Exit status for usage errors (argparse uses the same).
EXIT_USAGE = 2
#: Exit status of a batch with malformed lines: scripts can tell (grep's "trouble" is 2).
EXIT_BAD_LINES = 1
ERROR_LABEL = "error\t"


def run_generic(
    pair: tuple[str, str] | None, confirmed: bool, stdin: TextIO, stdout: TextIO
) -> int:
    """Classify one ``(ip, hostname)`` pair, or every line of ``stdin`` if it is None.

    ``confirmed`` states that the names are forward-confirmed (applies to every batch line).
    Returns the process exit status: 0 on success, 2 on an invalid single-mode argument
    (the message goes to standard error), 1 when a batch had malformed lines (each still
    gets its ``error`` line, and the others their verdicts).
    """
    if pair is None:
        return EXIT_BAD_LINES if _run_batch(stdin, stdout, confirmed) else 0
    ip, hostname = pair
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        print(f"error: invalid IP address: {ip!r}", file=sys.stderr)
        return EXIT_USAGE
    verdict = classify(address, hostname, confirmed)
    _print_report(address, hostname, confirmed, verdict, stdout)
    return 0


def _print_report(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    hostname: str,
    confirmed: bool,
    verdict: GenericVerdict,
    stdout: TextIO,
) -> None:
    """Write the verdict of one pair for a person to read."""
    state = "forward-confirmed" if confirmed else "not forward-confirmed"
    stdout.write(f"{address}  {hostname}  ({state})\n")
    stdout.write(f"verdict:    {'generic' if verdict.generic else 'legit'}\n")
    stdout.write(f"confidence: {verdict.confidence:.2f}\n")
    lines = verdict.describe() or ["(no evidence)"]
    stdout.write("evidence:\n")
    for line in lines:
        stdout.write(f"  - {line}\n")


def _run_batch(stdin: TextIO, stdout: TextIO, confirmed: bool) -> int:
    """Classify ``IP<TAB>HOSTNAME`` lines (blank lines and ``#`` comments are skipped);
    the number of malformed ones."""
    malformed = 0
    for raw in stdin:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        output = _batch_line(line, confirmed)
        malformed += output.startswith(ERROR_LABEL)
        stdout.write(output + "\n")
    return malformed


def _batch_line(line: str, confirmed: bool) -> str:
    """The output line for one input line (an ``error`` line for malformed input)."""
    fields = line.split("\t")
    if len(fields) < 2:
        return _error("expected IP<TAB>HOSTNAME")
    try:
        address = ipaddress.ip_address(fields[0].strip())
    except ValueError:
        return _error(f"invalid IP address {fields[0].strip()!r}")
    hostname = fields[1].strip()
    if normalize_hostname(hostname) is None:
        return _error(f"invalid hostname {hostname!r}")
    verdict = classify(address, hostname, confirmed)
    label = "generic" if verdict.generic else "legit"
    return f"{label}\t{verdict.confidence:.2f}\t{'; '.join(verdict.describe())}"


def _error(reason: str) -> str:
    """An ``error`` output line; tabs and newlines in the reason would break the format."""
    clean = reason.replace("\t", " ").replace("\n", " ")
    return f"{ERROR_LABEL}0.00\t{clean}"
