"""Native start-up chatter is dropped from stderr unless verbose; everything else is kept."""

from __future__ import annotations

import os

import pytest

from agebatch import quiet

# Lines captured from `agebatch run` on this project's CPU machines (TensorFlow 2.20, LiteRT).
CHATTER = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1795674382.059784   18774 port.cc:153] oneDNN custom operations are on. You"
    b" may see slightly different numerical results due to floating-point round-off errors.\n",
    b"I0000 00:00:1795674382.060702   18774 cudart_stub.cc:31] Could not find cuda drivers on"
    b" your machine, GPU will not be used.\n",
    b"E0000 00:00:1795674386.945283   18774 cuda_platform.cc:52] failed call to cuInit:"
    b" INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
    b"I0000 00:00:1795674401.601362   19595 cpu_feature_guard.cc:227] This TensorFlow binary is"
    b" optimized to use available CPU instructions in performance-critical operations.\n",
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild"
    b" TensorFlow with the appropriate compiler flags.\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
]
KEPT = [
    b"E0000 00:00:1795674386.945283   18774 op_kernel.cc:1800] OP_REQUIRES failed: out of memory\n",
    b"06:26:27 INFO agebatch.transform.join: Joined 400 receipts (386 with an age)\n",
    b"Traceback (most recent call last):\n",
    b"INFO: Created TensorFlow Lite delegate for GPU.\n",
    b"WARNING: the model card is missing\n",
    b"\rpredict:  16%|###   | 64/391 [00:03<00:18, 17.94photo/s]",
]


@pytest.mark.parametrize("line", CHATTER)
def test_known_chatter_is_dropped(line: bytes) -> None:
    assert quiet.drop_chatter(line) == b""


@pytest.mark.parametrize("line", KEPT)
def test_everything_else_is_kept(line: bytes) -> None:
    assert quiet.drop_chatter(line) == line


def test_drop_chatter_keeps_order_of_what_is_left() -> None:
    mixed = CHATTER[0] + KEPT[0] + CHATTER[6] + KEPT[1] + CHATTER[3] + KEPT[2]
    assert quiet.drop_chatter(mixed) == KEPT[0] + KEPT[1] + KEPT[2]


def test_filtered_stderr_drops_chatter_written_to_descriptor_2(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    with quiet.filtered_stderr():
        os.write(2, CHATTER[6] + b"a real error\n" + CHATTER[3])  # as C++ code writes it
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "a real error\nafter\n"


def test_verbose_filters_nothing(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    with quiet.filtered_stderr():
        os.write(2, CHATTER[6] + b"a real error\n")
    assert capfd.readouterr().err == (CHATTER[6] + b"a real error\n").decode()


def test_set_verbose_reaches_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    quiet.set_verbose(True)
    assert os.environ[quiet.VERBOSE_ENV] == "1" and quiet.verbose()
    quiet.set_verbose(False)
    assert quiet.VERBOSE_ENV not in os.environ and not quiet.verbose()


@pytest.mark.parametrize("verbose", [False, True])
def test_dask_logs_from_warning_up_unless_verbose(verbose: bool) -> None:
    """At a cluster's close `distributed` logs a connection closed under a write at INFO, with
    a traceback (seen at the end of a run that went well). The CLI's logging shows Dask's
    lines from WARNING up, so that line and its traceback stay off stderr; --verbose shows it."""
    import subprocess
    import sys

    script = (
        "from agebatch.cli.options import configure_logging\n"
        f"configure_logging({verbose})\n"
        "import logging, distributed\n"
        "from distributed.comm.core import CommClosedError\n"
        "try:\n"
        "    raise CommClosedError()\n"
        "except CommClosedError:\n"
        "    logging.getLogger('distributed.batched').info('Batched Comm Closed', exc_info=True)\n"
        "logging.getLogger('distributed.worker').warning('a worker lost')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "a worker lost" in done.stderr
    assert ("Traceback" in done.stderr) == verbose, done.stderr
    assert ("Batched Comm Closed" in done.stderr) == verbose, done.stderr
