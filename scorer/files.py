"""Reading the files a config names (token_file, allowlist files), as every command does."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from pathlib import Path


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
        text += (
            f" (reading as user {user}: make it readable by that user or its group, e.g. "
            f"`chown root:{group} {path} && chmod 640 {path}`)"
        )
    return text


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
