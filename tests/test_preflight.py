"""An output folder that cannot take the day is one sentence, before any photo is predicted;
a write that fails while publishing is one sentence too, and leaves the day as it was (#12).

The findings: a full disk, a file-size limit and a read-only output folder gave tracebacks,
the last only after the whole predict stage had run. Here each is real: a read-only bind mount
or a small tmpfs in a private mount namespace, or RLIMIT_FSIZE, in a process of its own.
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import pytest

from agebatch.errors import OutputError
from agebatch.preflight import check_outputs, estimate_bytes, write_failure
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.faults import run_agebatch
from tests.pictures import SolidFaces

pytestmark = pytest.mark.slow


@pytest.fixture
def sample(tmp_path: Path) -> SampleDay:
    return make_sample_day(tmp_path / "data", DAY, receipts=30, writer=SolidFaces())


def _run(sample: SampleDay, out: Path, model: Path) -> list[str]:
    return [
        "run", "--day", str(DAY), "--photos", str(sample.photos),
        "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
        "--out", str(out), "--model", str(model),
    ]  # fmt: skip


def _refused_before_predicting(done, message: str) -> str:
    """The run's last line is the one sentence; the photos were found, never predicted."""
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr
    assert last.startswith("agebatch: error: ") and message in last, last
    assert re.search(r"Found \d+ photos", done.stderr) and "Predicted" not in done.stderr
    assert "Traceback" not in done.stderr
    return last


def test_a_read_only_output_folder_is_refused_before_predicting(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = run_agebatch(_run(sample, out, brightness_model_path), read_only=out)
    last = _refused_before_predicting(done, f"Output folder {out} cannot be written")
    assert "(Read-only file system)" in last


def test_a_full_disk_is_refused_before_predicting(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = run_agebatch(_run(sample, out, brightness_model_path), tmpfs=(out, "256k"))
    last = _refused_before_predicting(done, f"Output folder {out} has 262.1 kB free")
    assert f"the day needs about {estimate_bytes(30) / 1e6:.1f} MB (30 receipts)" in last


def test_a_file_size_limit_below_the_day_is_refused_before_predicting(
    sample: SampleDay, tmp_path: Path, brightness_model_path: Path
) -> None:
    done = run_agebatch(_run(sample, tmp_path / "out", brightness_model_path), fsize=500_000)
    last = _refused_before_predicting(
        done, "file-size limit of this process (ulimit -f) is 500.0 kB"
    )
    assert "raise the limit (ulimit -f unlimited)" in last
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("full", "the disk is full (No space left on device)"),
        ("fsize", "a file went over the file-size limit (ulimit -f) (File too large)"),
    ],
)
def test_a_write_that_fails_while_publishing_leaves_the_day_as_it_was(
    tmp_path: Path, fault: str, reason: str
) -> None:
    """The preflight estimate cannot foresee everything (another job filling the disk):
    publishing a second version fails in one sentence and readers keep the first, whole."""
    out = tmp_path / "out"
    out.mkdir()
    # 400,000 random doubles are 3.2 MB of Parquet: more than the tmpfs or the limit allows.
    if fault == "full":
        done = run_agebatch(
            ["publish", str(out), "400000"], tmpfs=(out, "2m"), module="tests.faults"
        )
    else:
        done = run_agebatch(["publish", str(out), "400000", "1000000"], module="tests.faults")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"].startswith(f"Could not publish {DAY} to {out}: {reason}")
    assert "previous version, if any, is still the one published" in result["error"]
    assert result["seen"] == ["first", "first"] and result["runs"] == ["first"]
    assert result["versions"] == ["first"]  # the failed version was removed


def test_write_failures_are_named_from_real_errors(tmp_path: Path) -> None:
    """ENOSPC as /dev/full gives it; errors that are no write failure are not renamed."""
    with pytest.raises(OSError) as full, open("/dev/full", "wb") as handle:
        handle.write(b"x")
        handle.flush()
    failure = write_failure(full.value, DAY, [tmp_path, tmp_path])
    assert isinstance(failure, OutputError)
    assert str(failure).startswith(f"Could not publish {DAY} to {tmp_path}: the disk is full")
    assert write_failure(OSError(errno.ENOENT, "gone"), DAY, [tmp_path]) is None


def test_the_estimate_and_a_writable_root(tmp_path: Path) -> None:
    from agebatch.config import RunConfig

    config = RunConfig.build(
        {"photos": "p", "transactions": "t", "catalog": "c", "out": tmp_path / "out",
         "restricted_out": tmp_path / "private"}
    )  # fmt: skip
    room = check_outputs(config, 1000)
    assert room.needed == estimate_bytes(1000) and set(room.free) == {
        config.out,
        tmp_path / "private",
    }
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700  # made owner-only
    assert not list((tmp_path / "out").iterdir())  # the probe is gone
