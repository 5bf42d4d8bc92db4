"""A day published across two roots (--restricted-out) stays whole under kills (issue #12).

publish_split writes the restricted tables' version first without switching to it, commits by
renaming the analysts' root's pointer, then points the restricted root at the same version. A
real publishing process (forked by `tests.publishing --serve`) is SIGKILLed before each of its
changes to the file system in turn; after each kill both roots must show each table's day from
one run, the analysts' root
the previous run or the killed one once it passed its switch, and the restricted root never a
run the analysts' root has not committed. The next publish of any day brings the restricted
root back in line.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from agebatch.config import RunConfig
from agebatch.errors import InputError
from agebatch.publish import publish_day, realign_days
from agebatch.schema import RESTRICTED
from tests.conftest import DAY
from tests.publishing import (
    KILL_AT,
    RESTRICTED_ROOT,
    TABLES,
    day_tables,
    day_view,
    publish,
    read_tables,
    run_record,
)
from tests.test_publish_kill import Publisher

pytestmark = pytest.mark.slow
OTHER = DAY - dt.timedelta(days=1)
OPEN = [name for name in TABLES if name not in RESTRICTED]  # the analysts' tables


@pytest.fixture(scope="module")
def publisher() -> Publisher:
    server = Publisher()
    yield server
    server.close()


def _views(out: Path, private: Path, day: dt.date) -> tuple[str | None, str | None, list[str]]:
    """(analysts' run, restricted run, the analysts' `runs` of the day); each root's tables
    of the day come from one run, and each table only from its own root."""
    seen_out, seen_private = read_tables(out), read_tables(private)
    analysts, confined = day_view(out, day, seen_out), day_view(private, day, seen_private)
    assert all(analysts[name] is None for name in RESTRICTED), analysts
    assert all(confined[name] is None for name in OPEN), confined
    (a,) = {analysts[name] for name in OPEN}
    (r,) = {confined[name] for name in RESTRICTED}
    return a, r, seen_out.get(("runs", day), [])


def _template(root: Path, first: bool) -> tuple[Path, Path]:
    out, private = root / "out", root / "private"
    publish(out, OTHER, "o1", restricted=private)
    if not first:
        publish(out, DAY, "r1", restricted=private)
        publish(out, DAY, "r2", restricted=private)
    return out, private


@pytest.mark.parametrize("first", [False, True], ids=["republish", "first"])
def test_a_split_publish_killed_at_every_step(
    publisher: Publisher, tmp_path: Path, first: bool
) -> None:
    _template(tmp_path / "template", first)
    before = None if first else "r2"
    history = [] if first else ["r1", "r2"]
    steps = []
    for number in range(1, 200):
        root = tmp_path / f"kill-{number}"
        shutil.copytree(tmp_path / "template", root, symlinks=True)
        o, p = root / "out", root / "private"
        run_id = f"k{number:03d}"
        publisher.start(o, run_id, **{KILL_AT: str(number), RESTRICTED_ROOT: str(p)})
        code = publisher.wait()
        stderr = (root / f"{run_id}.stderr").read_text()
        analysts, confined, runs = _views(o, p, DAY)
        if code == 0:
            assert (analysts, confined) == (run_id, run_id)
            break
        assert code == -signal.SIGKILL, stderr
        name = stderr.split(f"killed at step {number} ", 1)[1].strip().replace(run_id, "NEW")
        committed = analysts == run_id
        steps.append((name, committed, confined == run_id))
        assert analysts in (before, run_id)
        assert confined in (before, analysts)  # never a run the analysts' root did not commit
        assert sorted(runs) == sorted([*history, run_id] if committed else history)
        assert _views(o, p, OTHER)[:2] == ("o1", "o1")
        # The next publish, of another day, realigns this one; then this day publishes whole.
        publish(o, OTHER, f"p{number:03d}", restricted=p)
        assert _views(o, p, DAY)[:2] == (analysts, analysts)
        publish(o, DAY, f"s{number:03d}", restricted=p)
        assert _views(o, p, DAY)[:2] == (f"s{number:03d}",) * 2
        assert not list((o / ".days").glob("*.tmp-*")) and not list((p / ".days").glob("*.tmp-*"))
        shutil.rmtree(root)
    else:
        raise AssertionError("the publish never got through")
    names = [name for name, _, _ in steps]
    # Killed before the n-th change: committed once the change before it was the rename.
    switch = names.index(f"replace .days/{DAY}") + 1
    follow = names.index(f"replace ../private/.days/{DAY}") + 1
    assert names.index("fsync ../private/.versions") < switch < follow
    assert [c for _, c, _ in steps] == [False] * switch + [True] * (len(steps) - switch)
    assert [r for _, _, r in steps] == [False] * follow + [True] * (len(steps) - follow)


def test_a_restricted_root_left_behind_by_a_plain_publish_is_realigned(tmp_path: Path) -> None:
    """Published with the restricted root, then once without it: the restricted root's day
    is not that run's, so the next split publish takes it away there."""
    out, private = tmp_path / "out", tmp_path / "private"
    publish(out, DAY, "r1", restricted=private)
    publish_day(out, DAY, day_tables("r2"), lambda: run_record("r2"), "r2")
    assert day_view(private, DAY)["receipt_ages"] == "r1"
    realign_days(out, private)
    assert day_view(private, DAY)["receipt_ages"] is None
    assert day_view(out, DAY)["receipt_ages"] == "r2"  # the plain run's, in the analysts' root
    assert os.listdir(private / ".versions" / DAY.isoformat()) == ["r1"]  # collected later


def test_switching_a_day_to_a_restricted_root_removes_its_restricted_tables_from_out(
    tmp_path: Path,
) -> None:
    """Issue #27: after a day moves to --restricted-out, no earlier version under OUT (the one
    kept for open readers included) still holds receipt_ages, alcohol_checks or
    cashier_compliance."""
    out, private = tmp_path / "out", tmp_path / "private"
    publish(out, DAY, "r1")  # everything under out
    publish(out, DAY, "r2")
    publish(out, OTHER, "o1")
    publish(out, DAY, "r3", restricted=private)
    leftovers = [
        str(path.relative_to(out))
        for path in sorted(out.rglob("*"))
        if any(part in RESTRICTED for part in path.relative_to(out).parts)
        and DAY.isoformat() in str(path)
    ]
    assert leftovers == []
    assert sorted(os.listdir(out / ".versions" / DAY.isoformat())) == ["r2", "r3"]
    assert sorted(os.listdir(out / ".versions" / DAY.isoformat() / "r2")) == sorted([*OPEN, "runs"])
    assert _views(out, private, DAY)[:2] == ("r3", "r3")
    assert day_view(out, OTHER)["receipt_ages"] == "o1"  # another day is that day's own switch


def _settings(tmp_path: Path, **changes: object) -> dict[str, object]:
    paths = {name: tmp_path for name in ("photos", "transactions", "catalog")}
    return {**paths, "out": tmp_path / "out", **changes}


@pytest.mark.parametrize("where", ["out", "out/private", "out/./x/.."])
def test_a_restricted_root_inside_out_is_refused(tmp_path: Path, where: str) -> None:
    with pytest.raises(InputError) as refused:
        RunConfig.build(_settings(tmp_path, restricted_out=tmp_path / where))
    assert str(refused.value) == (
        f"Setting config: restricted_out {tmp_path / where} is inside out {tmp_path / 'out'}, "
        "where analysts read: give a folder outside out, or leave restricted_out unset."
    )
    assert RunConfig.build(_settings(tmp_path, restricted_out=tmp_path / "private"))


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"min_cell_receipts": 1}, "min_cell_receipts (k) is 1, under 5"),
        ({"min_cell_receipts": 4}, "min_cell_receipts (k) is 4, under 5"),
        ({"min_receipts": 1}, "min_receipts is 1, under k = 5 (min_cell_receipts)"),
        ({"min_cell_receipts": 9, "min_receipts": 8}, "min_receipts is 8, under k = 9"),
    ],
)
def test_no_setting_can_name_a_single_shopper(tmp_path: Path, changes: dict, sentence: str) -> None:
    with pytest.raises(InputError, match=re.escape(sentence)):
        RunConfig.build(_settings(tmp_path, **changes))
    assert RunConfig.build(_settings(tmp_path, min_cell_receipts=5, min_receipts=5))
