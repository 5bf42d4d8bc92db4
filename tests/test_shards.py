"""Shards: the plan and its fingerprints (property tests), staging written whole and reused, the
model loaded once per process (the GPU slot's test is in tests/e2e/test_dask.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from agebatch import shards
from agebatch.config import WHOLE_FRAME, RunConfig
from agebatch.errors import InputError
from agebatch.predict.card import ModelCard
from agebatch.shards import Shard, ShardJob, plan, read_staged, run_shard, worker_model
from tests.conftest import DAY

VERSION = "brightness-test-1"


def _config(out: Path, **settings: object) -> RunConfig:
    paths = {"photos": out, "transactions": out, "catalog": out / "c.csv", "out": out}
    return RunConfig.build({**paths, "photo_kind": "crops", "workers": 1, **settings})


def _write_day(folder: Path, registers: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Grey photos (age = 20 + i) under store/register/, and their captures."""
    rows = []
    for (store, register), count in registers.items():
        (folder / store / register).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            photo = f"{store}/{register}/20261124T{8 + i // 60:02d}{i % 60:02d}00.png"
            Image.new("RGB", (32, 32), (round((20 + i) * 2.55),) * 3).save(folder / photo)
            rows.append((photo, store, register))
    return pd.DataFrame(rows, columns=["photo", "store_id", "register_id"])


def _plan(folder: Path, captures: pd.DataFrame, **settings: object) -> list[Shard]:
    version = str(settings.pop("model_version", VERSION))
    config = _config(folder, **settings)
    regions = [WHOLE_FRAME] * len(captures)
    planned = plan(config, captures, folder, regions, DAY.isoformat(), version, "run1")[1]
    shards.release_staging(config.restricted_root(), DAY.isoformat(), "run1")
    return planned


registers_st = st.dictionaries(
    st.tuples(st.sampled_from(["S01", "S02"]), st.sampled_from(["R1", "R2", "R3"])),
    st.integers(1, 12),
    min_size=1,
)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registers=registers_st, size=st.integers(1, 6), data=st.data())
def test_touching_a_photo_changes_exactly_its_shard(
    registers: dict[tuple[str, str], int], size: int, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        captures = _write_day(folder, registers)
        before = _plan(folder, captures, shard_size=size)
        # Every photo in exactly one shard of its own register, at most `size` a shard, in order.
        assert sorted(p for s in before for p in s.photos) == sorted(captures["photo"])
        for shard in before:
            assert 1 <= len(shard.photos) <= size and list(shard.photos) == sorted(shard.photos)
            assert {p.rsplit("/", 1)[0] for p in shard.photos} == {
                f"{shard.store_id}/{shard.register_id}"
            }
        touched = data.draw(st.sampled_from(list(captures["photo"])))
        # Another photo under the same name, size and modification time (issue #27).
        stat = (folder / touched).stat()
        content = bytearray((folder / touched).read_bytes())
        content[len(content) // 2] ^= 0xFF
        (folder / touched).write_bytes(bytes(content))
        os.utime(folder / touched, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert (folder / touched).stat().st_size == stat.st_size
        after = _plan(folder, captures, shard_size=size)
        changed = [b.label for b, a in zip(before, after, strict=True) if b != a]
        assert changed == [next(s.label for s in before if touched in s.photos)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registers=registers_st, size=st.integers(1, 6), data=st.data())
def test_adding_a_photo_changes_only_its_registers_shards_from_its_place_on(
    registers: dict[tuple[str, str], int], size: int, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        captures = _write_day(folder, registers)
        before = {s.label: s.fingerprint for s in _plan(folder, captures, shard_size=size)}
        store, register = data.draw(st.sampled_from(sorted(registers)))
        second = data.draw(st.integers(0, 59))
        photo = f"{store}/{register}/20261124T0800{second:02d}_9.png"  # between two others
        Image.new("RGB", (32, 32), (99, 99, 99)).save(folder / photo)
        added = pd.concat(
            [captures, pd.DataFrame([(photo, store, register)], columns=captures.columns)]
        )
        after = {s.label: s.fingerprint for s in _plan(folder, added, shard_size=size)}
        place = sorted(
            added.loc[added["register_id"].eq(register) & added["store_id"].eq(store), "photo"]
        ).index(photo)
        for label, key in before.items():
            s, rest = label.split("/")
            r, index = rest.split("#")
            if (s, r) != (store, register) or int(index) < place // size:
                assert after[label] == key, label
            else:
                assert after[label] != key, label


def test_settings_that_change_ages_change_every_key_and_others_none(scratch: Path) -> None:
    captures = _write_day(scratch, {("S01", "R1"): 4, ("S01", "R2"): 3})
    base = [s.fingerprint for s in _plan(scratch, captures)]
    changes = ({"photo_kind": "frames"}, {"model_version": "other-2"}, {"auto_sample": 3})
    for change in (*changes, {"max_pixels": 1000}):
        changed = [s.fingerprint for s in _plan(scratch, captures, **change)]
        assert not set(changed) & set(base), change
    for change in ({"batch_size": 3}, {"workers": 2}, {"decode_processes": True}):
        assert [s.fingerprint for s in _plan(scratch, captures, **change)] == base, change
    with pytest.MonkeyPatch.context() as patch:  # a reading that moves ages (images.py)
        patch.setattr(shards, "DECODE_VERSION", shards.DECODE_VERSION + 1)
        assert not {s.fingerprint for s in _plan(scratch, captures)} & set(base)
    regions = [(0.0, 0.0, 0.5, 1.0)] + [WHOLE_FRAME] * (len(captures) - 1)
    moved = plan(_config(scratch), captures, scratch, regions, DAY.isoformat(), VERSION, "r")[1]
    assert sum(a.fingerprint != b for a, b in zip(moved, base, strict=True)) == 1


def _job(scratch: Path, run_id: str = "run1") -> ShardJob:
    staging = shards.staging_folder(scratch / "out", DAY.isoformat(), VERSION)
    return ShardJob(DAY.isoformat(), scratch, staging, VERSION, run_id)


def test_a_shard_is_staged_whole_then_reused_without_decoding(
    scratch: Path, brightness_model_path: Path
) -> None:
    captures = _write_day(scratch, {("S01", "R1"): 4})
    (shard,) = _plan(scratch, captures)
    config = _config(scratch / "out", model=brightness_model_path)
    first = run_shard(config, _job(scratch), shard)
    assert (first.reused, first.decoded_now, first.photos) == (False, 4, 4)
    staged = pq.read_table(_job(scratch).staging / f"{shard.fingerprint}.parquet")
    assert staged.column("photo").to_pylist() == list(shard.photos)
    assert staged.column("predicted_age").to_pylist() == pytest.approx([20, 21, 22, 23], abs=0.2)
    assert [p.name for p in _job(scratch).staging.iterdir() if p.name.startswith(".")] == []

    for photo in shard.photos:  # were a photo decoded again, it would be unreadable
        (scratch / photo).write_bytes(b"")
    again = run_shard(config, _job(scratch, "run2"), shard)
    assert (again.reused, again.decoded_now) == (True, 0)

    ages, counts, _ = shards.collect(_job(scratch, "run2"), [shard], [again])
    assert ages["predicted_age"].tolist() == pytest.approx([20, 21, 22, 23], abs=0.2)
    assert (counts.total, counts.reused, counts.retried) == (1, 1, 0)


def test_a_torn_or_foreign_staged_file_is_not_reused(
    scratch: Path, brightness_model_path: Path
) -> None:
    captures = _write_day(scratch, {("S01", "R1"): 3})
    (shard,) = _plan(scratch, captures)
    target = _job(scratch).staging / f"{shard.fingerprint}.parquet"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PAR1 torn")
    assert read_staged(target, shard) is None
    other = pa.table(
        {
            "photo": ["x.png"],
            "predicted_age": [1.0],
            "status": ["ok"],
            "quality_score": [None],
            "quality_part": [None],
        },
        schema=shards.STAGED,
    )
    shards.write_atomically(other, target, shard.fingerprint)
    assert read_staged(target, shard) is None  # right key, other photos
    config = _config(scratch / "out", model=brightness_model_path)
    assert run_shard(config, _job(scratch), shard).reused is False
    assert read_staged(target, shard) is not None


def test_staging_is_never_half_written(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captures = _write_day(scratch, {("S01", "R1"): 2})
    (shard,) = _plan(scratch, captures)
    target = _job(scratch).staging / f"{shard.fingerprint}.parquet"
    table = pa.table(
        {
            "photo": list(shard.photos),
            "predicted_age": [1.0, 2.0],
            "status": ["ok", "ok"],
            "quality_score": [1.5, 2.0],
            "quality_part": ["contrast", "exposure"],
        },
        schema=shards.STAGED,
    )

    def dies_half_way(data: pa.Table, where: Path) -> None:
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("killed while writing")

    monkeypatch.setattr(shards.pq, "write_table", dies_half_way)
    with pytest.raises(OSError):
        shards.write_atomically(table, target, shard.fingerprint)
    assert list(target.parent.iterdir()) == []


def test_retried_shards_are_counted_from_their_starts(scratch: Path) -> None:
    captures = _write_day(scratch, {("S01", "R1"): 2, ("S01", "R2"): 2})
    one, two = _plan(scratch, captures)
    job = _job(scratch)
    for shard in (one, two, one):  # shard one started twice: its first worker was lost
        shards._mark_attempt(job, shard)
    for shard in (one, two):
        table = pa.table(
            {
                "photo": list(shard.photos),
                "predicted_age": [1.0, 2.0],
                "status": ["ok"] * 2,
                "quality_score": [1.5, 2.0],
                "quality_part": ["contrast"] * 2,
            },
            schema=shards.STAGED,
        )
        shards.write_atomically(
            table, job.staging / f"{shard.fingerprint}.parquet", shard.fingerprint
        )
    outcomes = [
        shards.ShardOutcome(s.fingerprint, s.label, 2, False, 2, False, 1, 0.0) for s in (one, two)
    ]
    assert shards.collect(job, [one, two], outcomes)[1] == shards.ShardCounts(2, 0, 1)
    with pytest.raises(RuntimeError, match="no outcome"):
        shards.collect(job, [one, two], outcomes[:1])


def test_the_model_is_loaded_once_per_process(brightness_model_path: Path) -> None:
    shards._loaded_model.cache_clear()
    model, loaded = worker_model(brightness_model_path)
    again, loaded_again = worker_model(brightness_model_path)
    assert (loaded, loaded_again) == (True, False) and again is model
    os.utime(brightness_model_path)  # a replaced file at the same path is loaded again
    assert worker_model(brightness_model_path)[1] is True


def test_a_card_written_again_is_a_new_model_and_a_worker_with_another_card_is_refused(
    tmp_path: Path, brightness_model_path: Path, scratch: Path
) -> None:
    """The card's version stays when a measured field (here face.realigned) is written again:
    the worker loads the new card, and a worker whose card is not the plan's refuses the shard
    rather than stage ages under the plan's fingerprint."""
    model_path = tmp_path / "m.keras"
    model_path.write_bytes(brightness_model_path.read_bytes())
    card_path = tmp_path / "m.card.json"
    card = json.loads(brightness_model_path.with_name("brightness.card.json").read_text())
    card_path.write_text(json.dumps(card))
    first, _ = worker_model(model_path)
    planned = dataclasses.replace(_job(scratch), card=first.card.digest())
    card["face"] = {"realigned": {"offset": 1.5}}
    card_path.write_text(json.dumps(card))
    again, loaded = worker_model(model_path)
    assert loaded and again.card.realigned_offset == 1.5 and again.version == first.version
    shard = Shard("S01", "R1", 0, ("a.jpg",), (WHOLE_FRAME,), "f" * 16)
    config = _config(scratch / "out", model=model_path)
    with pytest.raises(InputError, match="differs from the one the run was planned with"):
        run_shard(config, planned, shard)


@pytest.mark.parametrize("kind", ["crops", "auto"])
def test_a_shard_opens_photos_only_inside_the_day_folder(
    scratch: Path, brightness_model_path: Path, kind: str
) -> None:
    day = scratch / "day"
    captures = _write_day(day, {("S01", "R1"): 4})
    linked = day / captures["photo"][1]
    outside = scratch / "outside.png"
    linked.rename(outside)
    linked.symlink_to(outside)  # read, it would be aged 21 like the photo it was
    (shard,) = _plan(day, captures, photo_kind=kind)
    job = ShardJob(DAY.isoformat(), day, scratch / "staging", VERSION, "run1")
    config = _config(scratch / "out", model=brightness_model_path, photo_kind=kind)
    run_shard(config, job, shard)
    ages, _, _ = shards.collect(job, [shard], [run_shard(config, job, shard)])
    assert ages["status"].tolist() == ["ok", "refused", "ok", "ok"]
    assert ages["predicted_age"].tolist()[::2] == pytest.approx([20, 22], abs=0.2)
    aged = shards.add_ages(captures, ages)
    stats = shards.stats_of(aged, 1.0)
    assert (stats.decoded, stats.unreadable, stats.refused) == (3, 0, 1)


def test_the_predict_code_and_the_card_are_in_every_key(
    scratch: Path, brightness_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #27: a change to agebatch/predict/*.py or to the model's card is a new key."""
    import agebatch.predict

    captures = _write_day(scratch / "day", {("S01", "R1"): 3, ("S01", "R2"): 2})
    base = {s.fingerprint for s in _plan(scratch / "day", captures, model=brightness_model_path)}
    code = scratch / "code" / "predict"
    shutil.copytree(Path(agebatch.predict.__file__).parent, code)
    monkeypatch.setattr(agebatch.predict, "__file__", str(code / "__init__.py"))
    shards.predict_code_version.cache_clear()
    same = {s.fingerprint for s in _plan(scratch / "day", captures, model=brightness_model_path)}
    assert same == base  # the same sources: the same keys
    (code / "stage.py").write_text((code / "stage.py").read_text() + "\n# changed\n")
    shards.predict_code_version.cache_clear()
    edited = {s.fingerprint for s in _plan(scratch / "day", captures, model=brightness_model_path)}
    assert not edited & base
    monkeypatch.undo()
    shards.predict_code_version.cache_clear()

    model = scratch / "model" / brightness_model_path.name
    model.parent.mkdir()
    shutil.copy(brightness_model_path, model)
    card = json.loads(ModelCard.path_for(brightness_model_path).read_text())
    card["notes"] = "re-measured"  # the same version, another card
    ModelCard.path_for(model).write_text(json.dumps(card))
    recarded = {s.fingerprint for s in _plan(scratch / "day", captures, model=model)}
    assert not recarded & base


def test_a_plain_run_never_deletes_the_shards_of_a_run_in_flight(
    scratch: Path, brightness_model_path: Path
) -> None:
    """Issue #27: staging holds the day's staging lock from plan to collect; a publish of the
    same day meanwhile (discard) leaves the staged ages, and removes them after."""
    captures = _write_day(scratch, {("S01", "R1"): 3})
    out = scratch / "out"
    config = _config(out, model=brightness_model_path)
    regions = [WHOLE_FRAME] * len(captures)
    job, (shard,) = plan(config, captures, scratch, regions, DAY.isoformat(), VERSION, "dask1")
    outcome = run_shard(config, job, shard)
    staged = job.staging / f"{shard.fingerprint}.parquet"
    shards.discard(out, DAY.isoformat())  # a plain run of the day publishes now
    assert staged.is_file()
    ages, _, _ = shards.collect(job, [shard], [outcome])  # the Dask run reads its ages back
    assert ages["predicted_age"].tolist() == pytest.approx([20, 21, 22], abs=0.2)
    shards.discard(out, DAY.isoformat())
    assert not (out / ".shards" / DAY.isoformat()).exists()


@pytest.mark.parametrize("closing", [True, False])
def test_a_closing_worker_logs_no_failed_heartbeat_and_a_running_one_does(
    closing: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #27: at a cluster's close, a heartbeat already sent can meet the scheduler closing
    the worker's connection. A real worker with what the run's own cluster preloads sends one to
    an address where nothing listens: closing, nothing is logged; running, the failure still is."""
    import asyncio

    import dask
    from distributed import Scheduler, Worker
    from distributed.core import Status, rpc

    runner = shards.task_runner(_config(Path("."), dask_workers=2))
    preload = runner.cluster_kwargs.get("preload", [])  # what the run's own cluster preloads

    async def heartbeat_to_nowhere() -> None:
        async with (
            Scheduler(host="127.0.0.1", dashboard_address=None) as scheduler,
            Worker(scheduler.address, preload=preload) as worker,
        ):
            worker.periodic_callbacks["heartbeat"].stop()
            reachable = worker.scheduler
            worker.scheduler = rpc("tcp://127.0.0.1:9")  # the discard port: refused
            if closing:
                worker.status = Status.closing_gracefully
            try:
                await worker.heartbeat()
            finally:
                worker.scheduler = reachable
                worker.status = Status.running

    quick_refusal = dask.config.set({"distributed.comm.timeouts.connect": "1s"})
    with quick_refusal, caplog.at_level("ERROR", logger="distributed.worker"):
        asyncio.run(heartbeat_to_nowhere())
    failed = [r for r in caplog.records if r.getMessage() == shards.HEARTBEAT_FAILED]
    assert len(failed) == (0 if closing else 1)
