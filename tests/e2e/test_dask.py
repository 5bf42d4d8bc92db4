"""The nightly flow with the predict stage in shards on a real Dask cluster (prefect-dask).

One two-worker LocalCluster serves the runs by address (--dask-address), so its workers load
TensorFlow once for all tests; --dask-workers is checked to start its own cluster. Photos are
the brightness model's grey squares, read as crops.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from agebatch import shards
from agebatch.errors import InputError
from agebatch.flows import nightly as flow_module
from agebatch.flows.nightly import nightly
from agebatch.predict.cameras import SAMPLE_SPAN
from agebatch.sample import SampleDay, make_sample_day
from agebatch.schema import ABOUT, TABLES
from agebatch.shards import KILL_ENV, SHARDS
from tests.conftest import DAY
from tests.pictures import SolidFaces

pytestmark = pytest.mark.slow
VERSION = "brightness-test-1"  # the brightness model's card
SHARD_SIZE = 5  # 60 receipts over 6 registers: about 12 shards


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A running two-worker Dask cluster, reached by its scheduler's address."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as running:
        yield running.scheduler_address


@pytest.fixture(scope="module")
def day_source(tmp_path_factory: pytest.TempPathFactory) -> SampleDay:
    return make_sample_day(
        tmp_path_factory.mktemp("day"), DAY, writer=SolidFaces(), receipts=60, seed=17
    )


@pytest.fixture
def sample(day_source: SampleDay, tmp_path: Path) -> SampleDay:
    """A copy of the day (times kept) that a test may change."""
    root = tmp_path / "day"
    shutil.copytree(day_source.photos.parent, root)
    return SampleDay(
        DAY, root / "photos", root / "transactions", root / "catalog.csv", day_source.truth
    )


@pytest.fixture(scope="module")
def local_rows(
    harness: None,
    day_source: SampleDay,
    tmp_path_factory: pytest.TempPathFactory,
    brightness_model_path: Path,
) -> dict[str, pd.DataFrame]:
    """Every table the single-process path publishes for the day."""
    out = tmp_path_factory.mktemp("local")
    nightly(config=day_source.config(out, model=brightness_model_path, photo_kind="crops"), day=DAY)
    return _published(out)


def _run(sample: SampleDay, out: Path, model: Path, **settings: object) -> dict:
    config = sample.config(out, model=model, photo_kind="crops", shard_size=SHARD_SIZE, **settings)
    return nightly(config=config, day=DAY)


def _published(out: Path) -> dict[str, pd.DataFrame]:
    """Each published table's rows, sorted by its key (order-insensitive comparison)."""
    tables = {}
    for name in TABLES:
        glob = str(out / name / "*" / "*.parquet")
        frame = duckdb.sql(
            "select * from read_parquet($glob, hive_partitioning = true, union_by_name = true)",
            params={"glob": glob},
        ).df()
        tables[name] = frame.sort_values(list(ABOUT[name].key)).reset_index(drop=True)
    return tables


def _assert_same_day(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        if name == "runs":
            continue
        pd.testing.assert_frame_equal(got[name], expected[name], obj=name)
    same = ["photos_found", "photos_decoded", "photos_unreadable", "receipts", "receipts_matched"]
    assert got["runs"][same].iloc[-1].to_dict() == expected["runs"][same].iloc[-1].to_dict()


def _failing_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing fails (the disk, say) for the rest of the test, without the task's retries."""

    def publish_day(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device (test)")

    monkeypatch.setattr("agebatch.pipeline.publish_day", publish_day)
    publish = flow_module.TASKS["publish"].with_options(retries=0)
    monkeypatch.setitem(flow_module.TASKS, "publish", publish)


def test_sharded_day_publishes_the_rows_of_the_single_process_path(
    harness: None,
    cluster: str,
    sample: SampleDay,
    local_rows: dict[str, pd.DataFrame],
    tmp_path: Path,
    brightness_model_path: Path,
) -> None:
    result = _run(sample, tmp_path / "out", brightness_model_path, dask_address=cluster)
    got = _published(tmp_path / "out")
    _assert_same_day(got, local_rows)
    assert result["shards_total"] >= 10 and result["shards_reused"] == 0
    assert local_rows["runs"]["shards_total"].isna().all()  # the local path has no shards
    assert not (tmp_path / "out" / SHARDS / DAY.isoformat()).exists()  # discarded once published

    # The model was loaded once per worker process, not once per shard.
    from distributed import Client

    with Client(cluster) as client:
        loads = client.run(lambda: __import__("agebatch.shards").shards._loaded_model.cache_info())
    assert sum(info.misses for info in loads.values()) <= len(loads) == 2
    assert sum(info.hits for info in loads.values()) >= result["shards_total"] - 2


def test_a_sharded_day_under_auto_publishes_the_cameras_of_the_single_process_path(
    harness: None,
    cluster: str,
    sample: SampleDay,
    tmp_path: Path,
    brightness_model_path: Path,
) -> None:
    # Each camera's verdict is staged with its shards and its first shard's is published: the
    # plain run's when shard_size >= SAMPLE_SPAN x auto_sample (agebatch.shards).
    sample_size = SHARD_SIZE // SAMPLE_SPAN
    settings = {"model": brightness_model_path, "photo_kind": "auto", "auto_sample": sample_size}
    nightly(config=sample.config(tmp_path / "local", **settings), day=DAY)
    config = sample.config(
        tmp_path / "out", shard_size=SHARD_SIZE, dask_address=cluster, **settings
    )
    result = nightly(config=config, day=DAY)
    assert result["shards_total"] >= 10
    got = _published(tmp_path / "out")["cameras"]
    pd.testing.assert_frame_equal(got, _published(tmp_path / "local")["cameras"])
    assert len(got) == 6 and set(got["photo_kind"]) == {"auto"}
    # The grey squares are crops in which no face is found: crops, alignment not measured.
    assert set(got["saves"]) == {"aligned crops"} and got["misalignment"].isna().all()
    assert (got["crop_votes"] >= 1).all() and (got["frame_votes"] == 0).all()


def test_a_failed_publish_is_retried_with_every_shard_reused(
    harness: None,
    cluster: str,
    sample: SampleDay,
    local_rows: dict[str, pd.DataFrame],
    tmp_path: Path,
    brightness_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _failing_publish(patch)
        with pytest.raises(OSError, match="No space left"):
            _run(sample, out, brightness_model_path, dask_address=cluster)
    assert not (out / "receipt_ages").exists()  # nothing of the day was published
    staged = list((out / SHARDS / DAY.isoformat()).glob("*/*.parquet"))
    assert len(staged) >= 10
    # Shard keys hash the photos' bytes (issue #27): unchanged photos, every shard reused, none
    # decoded again (a shard is counted reused only when its staged file was read instead).
    result = _run(sample, out, brightness_model_path, dask_address=cluster)
    assert result["shards_reused"] == result["shards_total"] == len(staged)
    assert result["shards_retried"] == 0
    _assert_same_day(_published(out), local_rows)


def test_a_changed_photo_repredicts_only_its_shard(
    harness: None,
    cluster: str,
    sample: SampleDay,
    local_rows: dict[str, pd.DataFrame],
    tmp_path: Path,
    brightness_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        _failing_publish(patch)
        with pytest.raises(OSError):
            _run(sample, out, brightness_model_path, dask_address=cluster)
    matched = sample.truth[sample.truth["status"] == "matched"].iloc[7]
    path = sample.photos / DAY.isoformat() / matched["photo"]
    SolidFaces()(path, 70.0, None)  # the shopper is now 70: new bytes, so a new key

    result = _run(sample, out, brightness_model_path, dask_address=cluster)
    assert result["shards_reused"] == result["shards_total"] - 1
    got = _published(out)["receipt_ages"].set_index("receipt_id")
    expected = local_rows["receipt_ages"].set_index("receipt_id")
    assert got.at[matched["receipt_id"], "predicted_age"] == pytest.approx(70.0, abs=0.2)
    assert got.at[matched["receipt_id"], "age_group"] == "65+"
    others = got.index != matched["receipt_id"]
    pd.testing.assert_frame_equal(got[others], expected[expected.index != matched["receipt_id"]])


def test_a_shard_that_keeps_failing_fails_the_run_and_publishes_nothing(
    harness: None,
    cluster: str,
    sample: SampleDay,
    tmp_path: Path,
    brightness_model_path: Path,
) -> None:
    from agebatch import pipeline

    out = tmp_path / "out"
    config = sample.config(out, model=brightness_model_path, photo_kind="crops")
    config = config.model_copy(update={"shard_size": SHARD_SIZE})
    run = pipeline.Run("planned", DAY, dt.datetime.now(dt.UTC), VERSION, "CPU")
    job, planned = pipeline.plan_shards(config, pipeline.find(config, DAY), run)
    # A folder where one shard's staging file must go: that shard fails on every attempt.
    (job.staging / f"{planned[3].fingerprint}.parquet").mkdir(parents=True)

    with pytest.raises(IsADirectoryError):
        _run(sample, out, brightness_model_path, dask_address=cluster)
    assert not (out / "receipt_ages").exists() and not (out / "runs").exists()
    staged = {p.stem for p in job.staging.glob("*.parquet") if p.is_file()}
    assert staged == {s.fingerprint for s in planned} - {planned[3].fingerprint}


def test_a_worker_killed_mid_shard_is_retried_and_the_day_published_whole(
    harness: None,
    cluster: str,
    sample: SampleDay,
    local_rows: dict[str, pd.DataFrame],
    tmp_path: Path,
    brightness_model_path: Path,
) -> None:
    from distributed import Client

    with Client(cluster) as client:
        first, *_ = sorted(client.scheduler_info()["workers"])
        # That worker kills itself after predicting its first shard, before staging it; the
        # nanny starts a new process in its place, which does not have the variable.
        client.run(lambda: os.environ.__setitem__(KILL_ENV, "1"), workers=[first])
        result = _run(sample, tmp_path / "out", brightness_model_path, dask_address=cluster)
        client.wait_for_workers(2, timeout=120)
        pids = client.run(os.getpid)
    assert result["shards_retried"] >= 1
    assert result["shards_reused"] == 0
    assert len(set(pids.values())) == 2
    _assert_same_day(_published(tmp_path / "out"), local_rows)


def test_dask_workers_starts_a_local_cluster_of_that_many_processes(tmp_path: Path) -> None:
    from agebatch.shards import task_runner

    config = SampleDay(DAY, tmp_path, tmp_path, tmp_path / "c.csv", pd.DataFrame()).config(
        tmp_path / "out", dask_workers=2
    )
    with task_runner(config) as runner:
        workers = runner.client.scheduler_info()["workers"].values()
        assert [w["nthreads"] for w in workers] == [1, 1]
        assert all(w["host"] == "127.0.0.1" for w in workers)


def test_the_gpu_slot_waits_for_the_prefect_limit(harness: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    missing = pytest.raises(InputError, match="prefect gcl create agebatch-test-gpu")
    with missing, shards.gpu_slot("agebatch-test-gpu", device="GPU"):
        pass
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="agebatch-test-gpu", limit=1)
        )
    events: list[tuple[str, float]] = []
    holding = threading.Event()

    def first() -> None:
        with shards.gpu_slot("agebatch-test-gpu", device="GPU"):
            holding.set()
            time.sleep(1.5)
            events.append(("first out", time.monotonic()))

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(30)
    with shards.gpu_slot("agebatch-test-gpu", device="GPU"):
        events.append(("second in", time.monotonic()))
    thread.join()
    assert [name for name, _ in events] == ["first out", "second in"]
    with shards.gpu_slot("agebatch-test-gpu", device="CPU"):  # a CPU takes no slot
        pass


def _descendants(root: int) -> set[int]:
    """The processes under `root` now, from /proc."""
    parents: dict[int, list[int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as file:
                parent = int(file.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(parent, []).append(int(name))
    found, todo = set(), [root]
    while todo:
        for pid in parents.get(todo.pop(), []):
            found.add(pid)
            todo.append(pid)
    return found


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cli(sample: SampleDay, out: Path, model: Path, *extra: str) -> list[str]:
    import sys

    main = "import sys; from agebatch.cli import main; sys.exit(main(sys.argv[1:]))"
    return [
        sys.executable, "-c", main, "run", "--day", str(DAY), "--photos", str(sample.photos),
        "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
        "--out", str(out), "--model", str(model), "--photo-kind", "crops", *extra,
    ]  # fmt: skip


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="the reaper reads /proc")
def test_killing_the_main_process_stops_the_prefect_server_and_the_cluster(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    """Issue #27: SIGKILL to `agebatch run --dask-workers 2` (no PREFECT_API_URL: a temporary
    server) leaves no process behind: the reaper stops the server and the workers."""
    import signal
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    argv = _cli(sample, tmp_path / "out", brightness_model_path, "--dask-workers", "2")
    main = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, seen = time.monotonic() + 240, set()
    while time.monotonic() < deadline and main.poll() is None:
        seen |= _descendants(main.pid)
        commands = " ".join(_command(pid) for pid in seen)
        if "uvicorn" in commands and commands.count("spawn_main") >= 2:  # server, 2 workers
            break
        time.sleep(0.2)
    assert main.poll() is None, main.stderr.read().decode()[-3000:]
    seen |= _descendants(main.pid)
    main.kill()
    main.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in seen):
        time.sleep(0.5)
    left = [pid for pid in seen if _alive(pid)]
    for pid in left:  # never leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"{len(seen)} processes seen, these outlived the main process"


def test_a_clean_dask_run_prints_no_traceback(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    """Issue #27: a successful `agebatch run --dask-workers 2` says what it published and no
    `distributed` shutdown traceback (the heartbeat race itself: tests/test_shards.py)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    argv = _cli(sample, tmp_path / "out", brightness_model_path, "--dask-workers", "2")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Published {DAY} under" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-5000:]
