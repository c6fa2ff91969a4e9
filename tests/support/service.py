"""The real scorer service as a separate process, for tests that drive it through rspamd/SA."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.ports import free_port, wait_for_port
from tests.support.processes import stop_process

BUG_INJECTION = Path(__file__).parent / "bug_injection"
CHECKOUT = Path(__file__).parents[2]  # the tree whose scorer/ the tests test
BUG_MARKER = "injected-bug.invalid"  # in a check to a ScorerProcess(with_bug=True): a 500


class ScorerProcess:
    """``python -m scorer serve`` on a free loopback port, resolving via ``nameserver``
    (several, asked in order, when a list).

    ``config_toml`` is written to a temp file and passed with ``--config``. With
    ``with_bug``, a check whose body holds ``BUG_MARKER`` is a bug (a 500). ``wrapper``
    is a command the service runs under (``sh -c '...; exec "$@"'``, as a sandbox).
    """

    def __init__(
        self,
        nameserver: str | list[str],
        config_toml: str = "",
        with_bug: bool = False,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.with_bug = with_bug
        self.wrapper = wrapper
        self.port = free_port()
        self.nameservers = [nameserver] if isinstance(nameserver, str) else nameserver
        self._dir = Path(tempfile.mkdtemp(prefix="rdns-scorer-"))
        self.config_path = self._dir / "scorer.toml"
        self.config_path.write_text(config_toml)
        self.log_path = self._dir / "scorer.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The service's process: with ``[server] workers`` above 1, their supervisor."""
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self) -> ScorerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable, "-m", "scorer", "serve",
                "--config", str(self.config_path),
                "--listen", self.address,
                *(f"--nameserver={nameserver}" for nameserver in self.nameservers),
            ],
            stdout=log,
            stderr=log,
            env=(
                {
                    **os.environ,
                    # The checkout under test next: sitecustomize imports scorer before
                    # `-m` puts the working directory on sys.path, and the installed
                    # package may be another checkout's (an editable install).
                    "PYTHONPATH": os.pathsep.join(
                        filter(
                            None,
                            [str(BUG_INJECTION), str(CHECKOUT), os.environ.get("PYTHONPATH")],
                        )
                    ),
                    "INJECTED_BUG_MARKER": BUG_MARKER,
                }
                if self.with_bug
                else None
            ),
        )  # fmt: skip
        try:
            wait_for_port(self.port)
        except TimeoutError:
            output = self.log()
            self.stop()
            raise RuntimeError(output) from None
        return self

    def restart(self) -> None:
        """Stop the process and start another on the same port and config, as systemd
        restarts a crashed service; the log goes on."""
        stop_process(self._process)
        self.start()

    def stop(self) -> None:
        """Stop the service and remove its directory (config and log): read the log first."""
        stop_process(self._process)
        self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
