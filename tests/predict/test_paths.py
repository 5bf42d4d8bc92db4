"""PathsUnder: a day's photo paths built when read, equal to the list they replace."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agebatch.predict.paths import PathsUnder

NAMES = st.lists(st.from_regex(r"S\d{3}/R\d/2026112[0-9]T\d{6}_\d{1,6}\.jpg", fullmatch=True))


@given(NAMES, st.integers(-5, 5), st.integers(-5, 5))
def test_paths_under_a_folder_are_the_list_they_replace(names: list[str], i: int, j: int) -> None:
    folder = Path("/photos/2026-11-24")
    listed = [folder / name for name in names]
    lazy = PathsUnder(folder, names)
    assert len(lazy) == len(listed) and list(lazy) == listed
    assert lazy[i:j] == listed[i:j] and lazy[::2] == listed[::2]
    if names:
        assert lazy[i % len(names)] == listed[i % len(names)] and lazy[-1] == listed[-1]
