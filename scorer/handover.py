"""A reload's config, read once and handed to every process of ``serve --workers N``.

Each worker read the config file (and its allowlist files) on its own after the
supervisor had: a file changed between those reads (an editor saving, a script
appending to an allowlist, a deploy) left workers serving different configs, the
supervisor keeping yet another for the workers it starts, each reporting success;
and a worker that met the file half-written rejected a reload the others applied.
So one process reads (the supervisor on SIGHUP, the worker that answers a
``POST /v1/reload``) and publishes the outcome here, and the others take it.

The outcome is pickled to a file in the service's private directory (mode 0700, the
workers' metrics beside it: scorer.workermetrics), which only this service's user,
the one that reads the config and its token anyway, can read or write: a pickle is
code to whoever writes it. The directory is checked to be that before each use (it may
have been removed, and one of the same name made by someone else), and made again when
gone. Written whole and renamed into place, so a reader never meets half of one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

from scorer.config import Config, ConfigError

FILE_NAME = "config.pickle"


class HandoverError(ConfigError):
    """A reload's outcome that its reader could not hand on: the others find none, so
    only the reader can say why (Supervisor._reload logs it)."""


class Handover:
    """The latest config one process of the service read (or why it was rejected)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def publish(self, outcome: Config | ConfigError) -> None:
        """Hand ``outcome`` on: a config that loaded, or the error that rejected one.
        HandoverError when it cannot be written (a full /dev/shm): the file is removed
        then, so that the others reject this reload too rather than take an older one."""
        # With who read it: the supervisor reloads every other worker (Supervisor._reload).
        data = (os.getpid(), outcome if isinstance(outcome, Config) else str(outcome))
        partial = f".{FILE_NAME}.{os.getpid()}"
        try:
            directory = self._open_directory(make=True)
        except (OSError, ConfigError) as error:
            raise HandoverError(f"cannot hand the config to the workers: {error}") from None
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            with open(os.open(partial, flags, 0o600, dir_fd=directory), "wb") as file:
                file.write(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(partial, FILE_NAME, src_dir_fd=directory, dst_dir_fd=directory)
        except Exception as error:  # OSError; or a config that does not pickle (a bug)
            for name in (partial, FILE_NAME):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=directory)
            raise HandoverError(f"cannot hand the config to the workers: {error}") from None
        finally:
            os.close(directory)

    def take(self) -> Config:
        """The config published last; ConfigError with the message of a rejected one."""
        outcome, _reader = self.latest()
        if isinstance(outcome, ConfigError):
            raise outcome
        return outcome

    def latest(self) -> tuple[Config | ConfigError, int]:
        """The outcome published last (a config, or the error that rejected one) and the
        pid of the process that read it; ConfigError when there is none at hand."""
        try:
            directory = self._open_directory(make=False)
            try:
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                with open(os.open(FILE_NAME, flags, dir_fd=directory), "rb") as file:
                    data = pickle.load(file)
            finally:
                os.close(directory)
        except FileNotFoundError:
            # Removed by a publish that failed (HandoverError), which its reader logged.
            raise ConfigError(
                "the config read for this reload was not handed on (the log of the process "
                "that read it says why)"
            ) from None
        except (OSError, pickle.UnpicklingError, EOFError) as error:
            raise ConfigError(f"the config read for this reload is not at hand: {error}") from None
        reader, outcome = data
        return (outcome if isinstance(outcome, Config) else ConfigError(outcome)), reader

    def _open_directory(self, make: bool) -> int:
        """The directory, opened once it is known to be this user's alone (files are then
        opened in it by descriptor: what was checked is what is used). ``make``: make it
        again (private) when it is gone: logind's RemoveIPC (logind.conf(5)) removes a
        user's files in /dev/shm when the user's last session ends, or an admin cleans up
        by hand; every reload was rejected then, until a restart. ConfigError when it is
        not private: a directory of that name made by another user after ours was
        removed (/dev/shm is everyone's), where a pickle they put would run as us."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            directory = os.open(self._directory, flags)
        except FileNotFoundError:
            if not make:
                raise
            with contextlib.suppress(FileExistsError):  # made meanwhile: checked below
                os.mkdir(self._directory, 0o700)
            directory = os.open(self._directory, flags)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise ConfigError(f"{self._directory} is not this user's alone: a symlink") from None
        status = os.fstat(directory)
        if status.st_uid != os.geteuid() or stat.S_IMODE(status.st_mode) & 0o077:
            os.close(directory)
            raise ConfigError(
                f"{self._directory} is not this user's alone (owner {status.st_uid}, mode "
                f"{stat.S_IMODE(status.st_mode):o})"
            )
        return directory


def unexpected_error(error: Exception) -> ConfigError:
    """What a reload reports of a bug of ours while reading the config."""
    return ConfigError(f"unexpected error reading the config: {error!r}")


def read_and_hand_over(loader: Callable[[], Config], handover: Handover) -> Config:
    """``loader()``'s config, published to the other processes; its error too, before
    it is raised (a bug's as the ConfigError the app makes of it), so that they reject
    the reload as this process does. HandoverError, whatever the reading, when nothing
    could be handed on: only this process can then say why."""
    try:
        config = loader()
    except Exception as error:
        rejected = error if isinstance(error, ConfigError) else None
        try:
            handover.publish(rejected or unexpected_error(error))
        except HandoverError as unsent:  # the others reject it too, not knowing why
            if rejected is not None:  # (a bug's traceback is logged anyway)
                raise HandoverError(f"{rejected} ({unsent})") from None
        raise
    handover.publish(config)
    return config
