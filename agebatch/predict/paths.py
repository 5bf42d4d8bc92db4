"""A day's photo paths made when asked for, not held: a Path object per photo of a day of
100,000 costs about 40 MiB (its parts and its string), more than the stage itself holds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import overload


class PathsUnder(Sequence[Path]):
    """folder / name for each name, built on each access (the names are the table's own)."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self._folder = Path(folder)
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> list[Path]: ...

    def __getitem__(self, index: int | slice) -> Path | list[Path]:
        if isinstance(index, slice):
            return [self._folder / name for name in self._names[index]]
        return self._folder / self._names[index]
