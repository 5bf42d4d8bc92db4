"""What `agebatch` writes to stderr on a machine without a GPU, in a real subprocess: its own
log lines and a one-line progress bar, no TensorFlow/CUDA/LiteRT start-up chatter unless -v."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from agebatch.quiet import VERBOSE_ENV
from agebatch.sample import SampleDay, make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces

pytestmark = pytest.mark.slow

# Pieces of the lines TensorFlow, CUDA and LiteRT print from C++ on a CPU machine (written out
# here, not taken from agebatch.quiet, so that a wrong filter there cannot pass this test).
CHATTER = ("absl::", "oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard", "XNNPACK")
AGEBATCH = [str(Path(sys.executable).with_name("agebatch"))]  # the installed command


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleDay:
    root = tmp_path_factory.mktemp("day")
    return make_sample_day(root, DAY, receipts=40, writer=SolidFaces(), seed=5)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != VERBOSE_ENV}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as on a user's machine: agebatch sets what it needs
    return env


def _run_args(sample: SampleDay, out: Path) -> list[str]:
    # frames: the face detector (LiteRT, which prints the XNNPACK line) runs on every photo;
    # batches of 16: the bar moves several times before the stage logs its summary
    return [
        "run", "--day", DAY.isoformat(), "--photos", str(sample.photos),
        "--transactions", str(sample.transactions), "--catalog", str(sample.catalog),
        "--out", str(out), "--photo-kind", "frames", "--batch-size", "16",
    ]  # fmt: skip


def _run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (120 columns), so tqdm draws its bar; return the
    exit status and everything written to the terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower, env=_env()
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_run_on_a_terminal_shows_log_lines_and_a_one_line_bar_only(
    sample: SampleDay, tmp_path: Path
) -> None:
    status, terminal = _run_on_a_terminal([*AGEBATCH, *_run_args(sample, tmp_path / "out")])
    assert status == 0, terminal
    assert [piece for piece in CHATTER if piece in terminal] == [], terminal
    assert "INFO agebatch.transform.join: Joined 40 receipts" in terminal
    # The bar redraws itself with \r; from its first drawing to its 100% it never breaks line.
    start = terminal.index("\rpredict:")
    bar = terminal[start : terminal.index("\n", start)]
    assert re.search(r"100%\|.*\| (\d+)/\1 ", bar), bar
    assert "DEBUG" not in terminal


def test_verbose_shows_debug_lines_and_the_native_chatter(
    sample: SampleDay, tmp_path: Path
) -> None:
    done = subprocess.run(
        [*AGEBATCH, "-v", *_run_args(sample, tmp_path / "out")],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "DEBUG agebatch.predict.images: Unreadable photo" in done.stderr
    # The chatter the quiet run hides is really printed here (so the test above can fail).
    assert "Created TensorFlow Lite XNNPACK delegate for CPU." in done.stderr


def test_predict_writes_no_native_chatter(sample: SampleDay, tmp_path: Path) -> None:
    photos = sample.photos / DAY.isoformat()
    done = subprocess.run(
        [*AGEBATCH, "predict", str(photos), "--out", str(tmp_path / "ages.csv"),
         "--photo-kind", "frames"],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [piece for piece in CHATTER if piece in done.stderr] == [], done.stderr
    assert (tmp_path / "ages.csv").read_text().count("\n") > 1
