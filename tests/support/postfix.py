"""A private Postfix (Debian 12's 3.7) on loopback: its smtpd hands each session to a milter.

It runs from its own config, queue and data directories (``master -c DIR``), never
touching the system instance or /etc/postfix. Nothing delivers: master.cf has no
qmgr, so an accepted message stays in the incoming queue, where ``postcat`` reads it
back with the headers the milter added. Postfix resolves the client's name with the
libc resolver, which only asks port 53 of the resolv.conf nameserver: it runs in a
private mount namespace (``with_private_files``) whose /etc/resolv.conf names the
tests' unbound there, and whose /etc/hosts knows no client.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import stop_process, wait_listening
from tests.support.rspamd import with_private_files

DAEMON_DIRECTORY = Path("/usr/lib/postfix/sbin")

# Only the services an SMTP session up to "queued" needs (cleanup then warns that it
# cannot wake the missing qmgr: harmless); chroot off (column 5), as a chroot would need
# copies of resolv.conf, hosts and libraries inside the queue dir.
MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
rewrite unix - - n - - trivial-rewrite
anvil unix - - n - 1 anvil
postlog unix-dgram n - n - 1 postlogd
"""

QUEUED = re.compile(r"queued as ([0-9A-Za-z]+)")


def postfix_available() -> bool:
    return (DAEMON_DIRECTORY / "master").exists() and shutil.which("postcat") is not None


class Postfix:
    """Postfix's smtpd on ``127.0.0.1:port`` with ``milter`` ("host:port") as its milter.

    ``nameserver``: the address (port 53) of the resolver its resolv.conf names.
    ``domain``: the one local domain; any recipient there is accepted.
    ``main_extra`` and ``master_extra``: lines appended to main.cf and master.cf (a
    second smtpd, a content filter's services).
    """

    def __init__(
        self,
        milter: str,
        nameserver: str,
        domain: str = "example.com",
        main_extra: str = "",
        master_extra: str = "",
    ) -> None:
        self.milter = milter
        self.nameserver = nameserver
        self.domain = domain
        self.main_extra = main_extra
        self.master_extra = master_extra
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rdns-postfix-"))
        # The daemons run as user postfix and must reach the queue below it.
        self.dir.chmod(0o755)
        self.config_dir = self.dir / "etc"
        self.log_path = self.dir / "maillog"
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        d = self.dir
        self.config_dir.mkdir()
        (d / "queue").mkdir()
        # maillog_file: Postfix's own log in a file (postlogd), no syslog needed.
        # local_recipient_maps empty: every recipient at the domain exists.
        # milter_default_action accept: a milter that fails leaves the message without
        # rspamd's header, which the tests then see (rather than a tempfail).
        (self.config_dir / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {self.log_path}
maillog_file_prefixes = {d}
myhostname = mx.{self.domain}
mydomain = {self.domain}
mydestination = {self.domain}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtpd_milters = inet:{self.milter}
milter_default_action = accept
{self.main_extra}""")
        listen = f"127.0.0.1:{self.port}"
        master = MASTER_CF.format(listen=listen) + self.master_extra
        (self.config_dir / "master.cf").write_text(master)
        resolv = f"nameserver {self.nameserver}\noptions timeout:1 attempts:2\n"
        (d / "resolv.conf").write_text(resolv)
        (d / "hosts").write_text("127.0.0.1 localhost\n")

    def start(self, timeout: float = 15.0) -> Postfix:
        self._write_config()
        # `postfix check` creates the queue's subdirectories with their owners and modes.
        checked = subprocess.run(
            ["postfix", "-c", str(self.config_dir), "check"], capture_output=True, text=True
        )
        if checked.returncode != 0:
            raise RuntimeError(f"postfix check: {checked.stderr}{self.log()}")
        files = {"/etc/resolv.conf": self.dir / "resolv.conf", "/etc/hosts": self.dir / "hosts"}
        # master in the foreground (-d), leading its own session: stop() ends it (it
        # stops its daemons), then kills whatever of its process group is left.
        command = [str(DAEMON_DIRECTORY / "master"), "-c", str(self.config_dir), "-d"]
        with open(self.dir / "master.err", "wb") as errors:
            self._process = subprocess.Popen(
                with_private_files(command, files),
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        wait_listening(self, self.port, timeout, "postfix did not listen")
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process)
        # master SIGTERMs its process group as it exits; a daemon still on its way out
        # must not outlive the test (nor keep the queue busy for cleanup()).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        logs = (self.log_path, self.dir / "master.err")
        return "".join(path.read_text(errors="replace") for path in logs if path.exists())

    def queued_headers(self, queue_id: str) -> str:
        """The header section of the queued message ``queue_id``, as Postfix stored it."""
        shown = subprocess.run(
            ["postcat", "-c", str(self.config_dir), "-h", "-q", queue_id],
            capture_output=True,
            text=True,
            check=True,
        )
        return shown.stdout
