"""agebatch owns what it wrote, and nothing else (issue #27): a user's folder, a file in a
table's folder, a day folder agebatch did not write and a link out of OUT survive any sequence
of publishes, retention runs and catalog builds byte for byte; where one stands on a path a day
needs, the publish (and the run, before predicting) stops with one sentence."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agebatch.analytics_db import write_analytics_db
from agebatch.config import RunConfig
from agebatch.errors import OutputError
from agebatch.pipeline import run_day
from agebatch.publish import publish_day
from agebatch.retention import delete_photos, due_days
from agebatch.sample import make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces
from tests.publishing import (
    day_tables,
    day_view,
    publish,
    run_record,
    snapshot,
    user_things,
    whole_day,
)

OTHER = DAY - dt.timedelta(days=1)
BLOCKED = DAY - dt.timedelta(days=2)  # a user's own day=<D> folder sits in receipt_ages


def _user_day_folder(out: Path, day: dt.date) -> Path:
    folder = out / "receipt_ages" / f"day={day}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"row": [0], "run_id": ["theirs"]}), folder / "part-0.parquet")
    return folder


def _in_the_way(out: Path, kind: str) -> str:
    """Put something agebatch did not write where DAY's tables go; the sentence expected."""
    elsewhere = out.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    fix = "move it away (agebatch never changes what it did not write) or choose another --out."
    if kind == "day folder":
        folder = _user_day_folder(out, DAY)
        return f"{folder} is a folder or file that agebatch did not write, where {DAY} of "
    if kind == "day link":
        (out / "runs").mkdir(parents=True, exist_ok=True)
        (out / "runs" / f"day={DAY}").symlink_to(elsewhere)
        return f"{out}/runs/day={DAY} is a link to elsewhere that agebatch did not write, "
    if kind == "table link":
        out.mkdir(parents=True, exist_ok=True)
        (out / "alcohol_checks").symlink_to(elsewhere)
        return f"{out}/alcohol_checks is a link, not the folder of agebatch's table alcohol_checks"
    if kind == "versions link":
        out.mkdir(parents=True, exist_ok=True)
        (out / ".versions").symlink_to(elsewhere)
        return f"{out}/.versions is not a folder agebatch made (a link or a file): {fix}"
    raise AssertionError(kind)


# A table link or a .versions link cannot stand where an earlier publish made agebatch's own
# folder, so those two are tried on a first publish only.
IN_THE_WAY = [
    pytest.param(kind, earlier, id=f"{kind}-{'republish' if earlier else 'first'}")
    for kind in ("day folder", "day link", "table link", "versions link")
    for earlier in (False, True)
    if not (earlier and kind in ("table link", "versions link"))
]


@pytest.mark.parametrize(("kind", "earlier"), IN_THE_WAY)
def test_what_agebatch_did_not_write_stops_the_publish_untouched(
    tmp_path: Path, kind: str, earlier: bool
) -> None:
    out = tmp_path / "out"
    if earlier:
        publish(out, OTHER, "o1")
    expected = _in_the_way(out, kind)
    theirs = user_things(out)
    theirs.roots += [out.parent / "elsewhere", out / "receipt_ages", out / "runs"]
    theirs.before = snapshot(theirs)
    with pytest.raises(OutputError) as refused:
        publish(out, DAY, "r1")
    assert str(refused.value).startswith(expected)
    assert "\n" not in str(refused.value)
    assert snapshot(theirs) == theirs.before
    assert not (out / ".versions" / DAY.isoformat()).exists() or kind == "versions link"
    if earlier:
        assert whole_day(out, OTHER) == "o1"


def test_the_run_stops_before_predicting(tmp_path: Path, brightness_model) -> None:
    """The preflight names the user's folder before a photo is decoded (the progress callback
    is only asked for once predicting starts)."""
    sample = make_sample_day(tmp_path / "data", DAY, receipts=6, writer=SolidFaces(), seed=3)
    out = tmp_path / "out"
    folder = _user_day_folder(out, DAY)
    before = (folder / "part-0.parquet").read_bytes()
    started: list[int] = []
    with pytest.raises(OutputError, match=r"agebatch did not write, where 2026-11-24 of"):
        run_day(sample.config(out), DAY, model=brightness_model, progress=started.append)
    assert started == []
    assert (folder / "part-0.parquet").read_bytes() == before
    assert sorted(os.listdir(folder)) == ["part-0.parquet"]


def _config(out: Path, photos: Path) -> RunConfig:
    return RunConfig.build(
        {"photos": photos, "transactions": photos, "catalog": photos, "out": out}
        | {"retention_days": 1}
    )


_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from([DAY, OTHER, BLOCKED])),
        st.tuples(st.just("split"), st.sampled_from([DAY, OTHER])),
        st.tuples(st.just("retention"), st.just(DAY)),
        st.tuples(st.just("catalog"), st.just(DAY)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25, deadline=None)
@given(operations=_OPERATIONS)
def test_a_users_things_survive_any_sequence_of_runs(operations: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out, private, photos = Path(tmp) / "out", Path(tmp) / "private", Path(tmp) / "photos"
        photos.mkdir()
        theirs = user_things(out)
        blocking = _user_day_folder(out, BLOCKED)
        theirs.roots.append(blocking)
        theirs.before = snapshot(theirs)
        config = _config(out, photos)
        published: dict[dt.date, str] = {}
        for number, (operation, day) in enumerate(operations):
            run_id = f"r{number}"
            if operation in ("publish", "split") and day == BLOCKED:
                with pytest.raises(OutputError, match="agebatch did not write"):
                    publish(out, day, run_id)
            elif operation == "publish":
                publish(out, day, run_id)
                published[day] = run_id
            elif operation == "split":
                publish(out, day, run_id, restricted=private)
                published[day] = run_id
            elif operation == "retention":
                later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
                delete_photos(config, due_days(config, day, later))
            elif published:
                write_analytics_db(out)
            assert snapshot(theirs) == theirs.before, operation
            for day, run_id in published.items():
                assert day_view(out, day)["age_group_shares"] == run_id


def test_a_table_folder_made_by_the_user_keeps_their_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "receipt_ages").mkdir(parents=True)
    (out / "receipt_ages" / "notes.txt").write_text("mine")
    publish_day(out, DAY, day_tables("r1"), lambda: run_record("r1"), "r1")
    publish_day(out, DAY, day_tables("r2"), lambda: run_record("r2"), "r2")
    assert (out / "receipt_ages" / "notes.txt").read_text() == "mine"
    assert whole_day(out, DAY) == "r2"
