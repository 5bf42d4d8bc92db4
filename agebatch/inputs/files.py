"""Open a file of the day folder only if it may be read: inside the folder, a regular file.

Nothing outside the day folder is read through it (an absolute path, `..` or a link that
resolves elsewhere is refused), and nothing that is not a regular file is read (a named pipe,
device, socket or folder is refused at once; opening never waits for a writer). See
docs/hostile-inputs.md.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO


class Refusal(Exception):
    """A file that is not opened (or a photo not decoded); the message says why, in words."""


# O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer;
# O_NOFOLLOW: a link swapped in for the checked file is not followed.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def shown(name: str) -> str:
    """A file name as text a log line or a table holds: bytes that are not UTF-8 as \\xNN,
    control characters (a newline that would forge a log line) escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def open_inside(path: Path, inside: Path | None = None) -> BinaryIO:
    """Open a file for reading without ever blocking, or raise Refusal saying why not.

    With `inside` (a real path), the file's real path must lie in it (a link out of it, `..`
    or an absolute path elsewhere is refused) and that real path is opened without following a
    link; the opened file is checked again through /proc where there is one (a folder swapped
    for a link in between is caught). Only a regular file is returned.
    """
    if inside is not None and (opened := _open_plain(path, inside)) is not None:
        return opened
    target, flags = path, _OPEN_FLAGS
    if inside is not None:
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(inside):
            what = "a link" if path.is_symlink() else "a path"
            raise Refusal(f"{what} that resolves outside the day folder")
        target, flags = real, flags | _NO_FOLLOW
    try:
        # Not even opened unless it is a regular file (opening a device can act on it).
        _check_regular(os.stat(target, follow_symlinks=inside is None).st_mode)
        fd = os.open(target, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:  # the checked file became a link
            raise Refusal("a link that appeared after it was checked") from None
        raise
    try:
        _check_regular(os.fstat(fd).st_mode)  # what was opened, if it changed since
        if inside is not None and not _opened_path(fd, real).is_relative_to(inside):
            raise Refusal("a path that resolves outside the day folder once opened")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_inside(path: Path, inside: Path | None, most: int) -> bytes:
    """The first `most` bytes of the file open_inside(path, inside) opens (Refusal as it).

    The common case (a regular file, no link, inside) is read straight from its descriptor, in
    the quick open's system calls and one read (no file object: 5 us of a 10 kB crop's 10 us,
    measured); anything else goes through open_inside.
    """
    if inside is not None:
        fd = _plain_fd(path, inside)
        if fd is not None:
            try:
                return _read_fd(fd, most)
            finally:
                os.close(fd)
    with open_inside(path, inside) as file:
        return read_bounded(file, most)


def read_bounded(file: BinaryIO, most: int) -> bytes:
    """file.read(most), without first allocating `most` bytes for a file known to be smaller
    (a 16 MiB buffer for a 10 kB crop costs more than reading it): the file's size, then the
    rest up to `most` should it have grown since."""
    try:
        left = os.fstat(file.fileno()).st_size - file.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):  # no file size: read as asked
        return file.read(most)
    data = file.read(max(0, min(most, left + 1)))
    if len(data) == left + 1 < most:  # it grew since its size was read
        data += file.read(most - len(data))
    return data


def _read_fd(fd: int, most: int) -> bytes:
    """read_bounded of an open regular file's descriptor, at its start: one read(2) of its size
    and a byte more (a shorter answer is its end), more only should it have grown since."""
    asked = max(0, min(most, os.fstat(fd).st_size + 1))
    data = os.read(fd, asked)
    if len(data) < asked or len(data) >= most:
        return data
    chunks, got = [data], len(data)
    while got < most and (more := os.read(fd, most - got)):
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def _open_plain(path: Path, inside: Path) -> BinaryIO | None:
    """The common case in a few system calls (_plain_fd), as a file; None for anything else."""
    fd = _plain_fd(path, inside)
    return None if fd is None else os.fdopen(fd, "rb")


def _plain_fd(path: Path, inside: Path) -> int | None:
    """The common case in a few system calls: a name that is itself a regular file (no link),
    opened without following one, whose opened file the kernel places inside `inside`. None for
    anything else (a link, a pipe, a path out, no /proc), which open_inside then checks step by
    step and refuses in words; nothing but a regular file is ever opened here."""
    prefix = os.path.join(inside, "")  # before anything is opened: nothing to leak if it fails
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = os.open(path, _OPEN_FLAGS | _NO_FOLLOW)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # the name was not swapped since the lstat
            real = os.readlink(f"/proc/self/fd/{fd}")
            if real.startswith(prefix):
                return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _check_regular(mode: int) -> None:
    """Refuse a file that is not a regular file, saying what it is."""
    if not stat.S_ISREG(mode):
        raise Refusal(f"not a regular file (a {_kind(mode)})")


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = {
        stat.S_ISFIFO: "named pipe",
        stat.S_ISCHR: "character device",
        stat.S_ISBLK: "block device",
        stat.S_ISSOCK: "socket",
        stat.S_ISDIR: "folder",
        stat.S_ISLNK: "link",  # where the checked name became one
    }
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def _opened_path(fd: int, expected: Path) -> Path:
    """The path the kernel says an open file has (Linux /proc); `expected` where unknown."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return expected
