"""Open a file of the day folder only if it may be read: inside the folder, a regular file.

Nothing outside the day folder is read through it (an absolute path, `..` or a link that
resolves elsewhere is refused), and nothing that is not a regular file is read (a named pipe,
device, socket or folder is refused at once; opening never waits for a writer). See
docs/hostile-inputs.md.
"""

from __future__ import annotations

import errno
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


def _open_plain(path: Path, inside: Path) -> BinaryIO | None:
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
                return os.fdopen(fd, "rb")
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
