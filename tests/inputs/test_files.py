"""Opening a file of the day folder: only a regular file inside it, and never a wait."""

from __future__ import annotations

import io
import os
import socket
import threading
from pathlib import Path

import pytest

from agebatch.inputs import files
from agebatch.inputs.files import Refusal, open_inside


@pytest.fixture
def day(tmp_path: Path) -> Path:
    """A day folder with one photo, and a face outside it (another folder of the same disk)."""
    folder = tmp_path / "photos" / "2026-11-24"
    (folder / "S1" / "R1").mkdir(parents=True)
    (folder / "S1" / "R1" / "a.jpg").write_bytes(b"inside")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "face.jpg").write_bytes(b"outside")
    return folder


def _read(path: Path, inside: Path | None) -> bytes:
    with open_inside(path, inside) as file:
        return file.read()


def test_a_photo_inside_and_a_link_that_stays_inside_are_read(day: Path) -> None:
    (day / "S1" / "R1" / "again.jpg").symlink_to(day / "S1" / "R1" / "a.jpg")
    assert _read(day / "S1" / "R1" / "a.jpg", day) == b"inside"
    assert _read(day / "S1" / "R1" / "again.jpg", day) == b"inside"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("S1/R1/link.jpg", "a link that resolves outside the day folder"),
        ("S1/R1/../../../../elsewhere/face.jpg", "a path that resolves outside the day folder"),
        ("linked/face.jpg", "a path that resolves outside the day folder"),  # a linked folder
    ],
)
def test_nothing_outside_the_day_folder_is_opened(day: Path, name: str, reason: str) -> None:
    (day / "S1" / "R1" / "link.jpg").symlink_to(day.parent.parent / "elsewhere" / "face.jpg")
    (day / "linked").symlink_to(day.parent.parent / "elsewhere")
    with pytest.raises(Refusal, match=reason):
        _read(day / name, day)
    # Without a folder to stay in (loose images the user names), links are followed.
    assert _read(day / name, None) == b"outside"


def test_an_absolute_path_elsewhere_is_refused(day: Path) -> None:
    with pytest.raises(Refusal, match="resolves outside the day folder"):
        _read(day.parent.parent / "elsewhere" / "face.jpg", day)


def test_a_named_pipe_is_refused_at_once_not_waited_on(day: Path) -> None:
    pipe = day / "S1" / "R1" / "pipe.jpg"
    os.mkfifo(pipe)
    outcome: list[BaseException | bytes] = []

    def attempt() -> None:
        try:
            outcome.append(_read(pipe, day))
        except BaseException as error:  # the outcome is checked below
            outcome.append(error)

    reader = threading.Thread(target=attempt, daemon=True)  # a blocked open must not hang pytest
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "opening a named pipe waited for a writer"
    assert isinstance(outcome[0], Refusal)
    assert str(outcome[0]) == "not a regular file (a named pipe)"


def _pretend(monkeypatch: pytest.MonkeyPatch, path: Path, seen: os.stat_result) -> None:
    """Make the look before opening `path` see `seen` (as if the file changed just after)."""
    stat = os.stat

    def look(target: object, *args: object, **kwargs: object) -> os.stat_result:
        return seen if str(target) == str(path) else stat(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files.os, "stat", look)


def test_a_pipe_swapped_in_after_the_look_is_not_waited_on(
    day: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The look before opening saw a regular file; by the open, the name is a named pipe.
    pipe = day / "S1" / "R1" / "pipe.jpg"
    os.mkfifo(pipe)
    _pretend(monkeypatch, pipe, os.stat(day / "S1" / "R1" / "a.jpg"))
    outcome: list[BaseException | bytes] = []

    def attempt() -> None:
        try:
            outcome.append(_read(pipe, day))
        except BaseException as error:  # the outcome is checked below
            outcome.append(error)

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "opening a named pipe waited for a writer"
    assert isinstance(outcome[0], Refusal)
    assert str(outcome[0]) == "not a regular file (a named pipe)"


def test_sockets_devices_and_folders_are_refused(day: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(day / "sock.jpg"))
        with pytest.raises(Refusal, match=r"\(a socket\)"):
            _read(day / "sock.jpg", day)
    finally:
        server.close()
    with pytest.raises(Refusal, match=r"\(a character device\)"):
        _read(Path("/dev/null"), None)
    (day / "folder.jpg").mkdir()
    with pytest.raises(Refusal, match=r"\(a folder\)"):
        _read(day / "folder.jpg", day)


def test_a_link_swapped_in_after_the_check_is_not_followed(
    day: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name resolved to itself when checked; by the time it is looked at, it is a link out.
    photo = day / "S1" / "R1" / "swapped.jpg"
    photo.symlink_to(day.parent.parent / "elsewhere" / "face.jpg")
    monkeypatch.setattr(files.os.path, "realpath", lambda path: str(path))
    with pytest.raises(Refusal, match=r"not a regular file \(a link\)"):
        _read(photo, day)
    # ... and if it becomes a link between that look and the open, the open does not follow it.
    _pretend(monkeypatch, photo, os.stat(photo))
    with pytest.raises(Refusal, match="a link that appeared after it was checked"):
        _read(photo, day)


def test_a_folder_swapped_for_a_link_after_the_check_is_caught_once_opened(
    day: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check resolved S1/R2/face.jpg inside; then S1/R2 became a link to another folder.
    (day / "S1" / "R2").symlink_to(day.parent.parent / "elsewhere")
    monkeypatch.setattr(files.os.path, "realpath", lambda path: str(path))
    with pytest.raises(Refusal, match="resolves outside the day folder once opened"):
        _read(day / "S1" / "R2" / "face.jpg", day)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_quick_open_hands_out_only_a_plain_file_inside(day: Path) -> None:
    # The common case is opened in a few system calls (no walk of the path's parts) ...
    with files._open_plain(day / "S1" / "R1" / "a.jpg", day) as file:
        assert file.read() == b"inside"
    # ... and anything else is left to the careful path, with nothing left open.
    (day / "S1" / "R1" / "again.jpg").symlink_to(day / "S1" / "R1" / "a.jpg")
    (day / "linked").symlink_to(day.parent.parent / "elsewhere")
    os.mkfifo(day / "S1" / "R1" / "pipe.jpg")
    before = _open_fds()
    for name in ("S1/R1/again.jpg", "linked/face.jpg", "S1/R1/pipe.jpg", "S1/R1/gone.jpg"):
        assert files._open_plain(day / name, day) is None, name
    assert files._open_plain(day.parent.parent / "elsewhere" / "face.jpg", day) is None
    with pytest.raises(TypeError):  # a folder of the wrong type fails before anything is open
        files._open_plain(day / "S1" / "R1" / "a.jpg", os.fsencode(day))  # type: ignore[arg-type]
    assert _open_fds() == before


def test_a_pipe_swapped_in_after_the_quick_look_is_not_waited_on(
    day: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The quick path's lstat saw a regular file; by its open, the name is a named pipe.
    pipe = day / "S1" / "R1" / "pipe.jpg"
    os.mkfifo(pipe)
    regular = os.lstat(day / "S1" / "R1" / "a.jpg")
    lstat = os.lstat
    monkeypatch.setattr(
        files.os, "lstat", lambda path: regular if str(path) == str(pipe) else lstat(path)
    )
    before = _open_fds()
    reader = threading.Thread(target=lambda: files._open_plain(pipe, day), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "opening a named pipe waited for a writer"
    assert files._open_plain(pipe, day) is None and _open_fds() == before
    with pytest.raises(Refusal, match=r"\(a named pipe\)"):
        _read(pipe, day)


@pytest.mark.parametrize("quick", [True, False])
def test_a_file_that_grows_after_its_size_is_read_is_read_to_the_bound(
    tmp_path: Path, quick: bool
) -> None:
    """read_inside reads at most `most` bytes, on past the size it was told, by its quick path
    (a descriptor) and by open_inside's file alike."""
    path = tmp_path / "growing.jpg"
    path.write_bytes(bytes(range(256)) * 4)  # 1,024 bytes
    inside = tmp_path if quick else None
    stale = os.stat_result((0o100644, 0, 0, 1, 0, 0, 100, 0, 0, 0))  # its size: 100 bytes
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files.os, "fstat", lambda fd: stale)
        assert files.read_inside(path, inside, 500) == path.read_bytes()[:500]  # to the bound
    assert files.read_inside(path, inside, 5000) == path.read_bytes()  # whole
    assert files.read_inside(path, inside, 100) == path.read_bytes()[:100]
    assert files.read_inside(path, inside, 0) == b""
    with path.open("rb") as file:
        file.read(24)
        assert files.read_bounded(file, 5000) == path.read_bytes()[24:]  # the rest, whole
    assert files.read_bounded(io.BytesIO(b"abc"), 2) == b"ab"  # no file size: as asked


def test_read_inside_refuses_what_open_inside_refuses(day: Path) -> None:
    """The quick read hands out only a plain file's bytes; the rest is refused in words, with
    nothing left open."""
    (day / "S1" / "R1" / "again.jpg").symlink_to(day / "S1" / "R1" / "a.jpg")
    (day / "linked").symlink_to(day.parent.parent / "elsewhere")
    os.mkfifo(day / "S1" / "R1" / "pipe.jpg")
    before = _open_fds()
    assert files.read_inside(day / "S1" / "R1" / "a.jpg", day, 100) == b"inside"
    assert files.read_inside(day / "S1" / "R1" / "again.jpg", day, 100) == b"inside"  # inside
    with pytest.raises(Refusal, match="outside the day folder"):
        files.read_inside(day / "linked" / "face.jpg", day, 100)
    with pytest.raises(Refusal, match=r"\(a named pipe\)"):
        files.read_inside(day / "S1" / "R1" / "pipe.jpg", day, 100)
    with pytest.raises(FileNotFoundError):
        files.read_inside(day / "S1" / "R1" / "gone.jpg", day, 100)
    assert _open_fds() == before
