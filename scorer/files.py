"""Reading the files a config names (token_file, allowlist files), as every command does."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from pathlib import Path, PurePath


def read_regular_file(path: str) -> bytes | None:
    """The bytes of the regular file at ``path``; None for anything else. Reading a FIFO
    or a terminal (/dev/stdin) waits for a writer that never comes, and reloads run one
    at a time, so every later one would wait behind it: checked before opening, which
    blocks on a FIFO too. OSError as os.stat and open raise it; ValueError for a NUL in
    the name, in our words (the interpreter's changed: "embedded null byte" in 3.11,
    "stat: embedded null character in path" in 3.13)."""
    try:
        mode = os.stat(path).st_mode
    except ValueError:
        raise ValueError("a NUL character in the file name") from None
    if not stat.S_ISREG(mode):
        return None
    return Path(path).read_bytes()


def file_error(path: object, error: OSError) -> str:
    """A file that could not be read, as every command words it: ``PATH: reason``
    (``str(error)`` is ``[Errno 2] No such file or directory: 'PATH'``)."""
    return f"{path}: {error.strerror or error}"


def read_error(path: object, error: OSError) -> str:
    """``file_error`` for a file a config names, or the config itself, and, when it may
    not be read, whose read failed: the service's user under systemd (a file created
    with umask 077, a token file of root's), where "Permission denied" alone left the
    admin, who reads it as root, to guess which user needs it."""
    text = file_error(path, error)
    if isinstance(error, PermissionError):
        user, group = running_user()
        closed = closed_directory(path)
        if closed is None:
            text += (
                f" (reading as user {user}: make it readable by that user or its group, "
                f"e.g. `chown root:{group} {path} && chmod 640 {path}`)"
            )
        else:
            # The file's own mode is no matter then: chmod 640 on it, the advice above,
            # changed nothing for a list file in an admin's home (walked through under
            # systemd, whose unit hides /home, /root and /run/user: ProtectHome=yes).
            text += f" (reading as user {user}, who may not enter {closed}: "
            # Only the directory itself: one below it (a 0700 /home/admin) was reached
            # through it, so the unit did not hide it and the reason is its own mode.
            if closed in _HOME_DIRECTORIES:
                text += (
                    "the systemd unit hides /home, /root and /run/user from the service "
                    "whatever their modes, ProtectHome=yes; keep the file elsewhere, e.g. "
                    "beside the config in /etc/rdns-scorer)"
                )
            else:
                text += "keep the file where that user may reach it, e.g. beside the config)"
    return text


_HOME_DIRECTORIES = ("/home", "/root", "/run/user")


def may_enter(directory: str) -> bool:
    """Whether this process may pass through ``directory`` (search permission)."""
    return os.access(directory, os.X_OK)


def closed_directory(path: object) -> str | None:
    """The first directory on the way to ``path`` (from ``/``) this process may not
    enter, or None: a file there cannot be read whatever its own mode. The way the
    kernel walks it: through symlinks (an allowlist in /etc/rdns-scorer linked to one in
    /home is kept out by /home) and ``..`` after them, as far as they can be read."""
    try:
        absolute = PurePath(os.path.realpath(str(path)))
    except OSError:  # a relative name in a working directory since removed
        return None
    for directory in reversed(absolute.parents):
        if not may_enter(str(directory)):
            return str(directory)
    return None


def running_user() -> tuple[str, str]:
    """The names of this process's user and group (``uid N``, ``gid N`` without one)."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return user, group


def os_error_text(error: OSError) -> str:
    """An OSError as the commands word one: ``PATH: reason`` when it names a file, not
    Python's ``[Errno 21] Is a directory: 'PATH'``."""
    return file_error(error.filename, error) if error.filename else str(error)


# A line ends as an editor ends it: CRLF, LF, or a lone CR (old Mac files), as Python
# reads text files. Not str.splitlines, which breaks at a form feed or U+2028 too.
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_CR_LINE_END = re.compile(r"\r\n?")


def read_text_file(path: str) -> str:
    """The text of the regular file at ``path`` (``utf8_text``), as a config reads the
    files it names; ValueError saying what is wrong, the path first: ``PATH: reason``,
    ``PATH: not a regular file``, ``'PATH': a NUL ...`` or ``PATH:LINE: not UTF-8 ...``."""
    try:
        data = read_regular_file(path)
    except OSError as error:  # the reason alone: str(error) names the path again
        raise ValueError(read_error(path, error)) from None
    except ValueError as error:  # a NUL in the name
        raise ValueError(f"{path!r}: {error}") from None
    if data is None:
        raise ValueError(f"{path}: not a regular file")
    return utf8_text(path, data)


def utf8_text(path: object, data: bytes) -> str:
    """``data`` as text, each line ending in "\\n" (whatever ended it in the file), and
    without the byte-order mark an editor (Notepad) may start a UTF-8 file with;
    ValueError ``PATH:LINE: not UTF-8 (byte 0xNN at column C)`` for the first byte that
    is not, as every file a config names is told apart."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return _CR_LINE_END.sub("\n", data.decode("utf-8"))
    except UnicodeDecodeError as error:
        start = error.start
        breaks = list(_LINE_BREAK.finditer(data, 0, start))
        column = start - (breaks[-1].end() if breaks else 0) + 1
        raise ValueError(
            f"{path}:{len(breaks) + 1}: not UTF-8 (byte {data[start]:#04x} at column {column})"
        ) from None
