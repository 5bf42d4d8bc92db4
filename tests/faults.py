"""Faults for tests: runs of agebatch under faults a test cannot make in its own process (a
read-only or full file system: a private mount, `unshare` as an unprivileged user of its own
namespace, so it works for root too, which file permissions do not stop; a file-size limit,
RLIMIT_FSIZE), and `at_each_change`, which stops a process before its N-th change to the file
system (the way tests kill publishing at every point without a hook in agebatch).

`python -m tests.faults publish OUT BIG_ROWS [FSIZE]` publishes a small version of DAY through
pipeline.publish, then (with FSIZE, under that file-size limit) a version with a table of
BIG_ROWS random numbers; it prints one JSON line: the error, and which run readers then see.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 24)


def run_agebatch(
    argv: list[str],
    *,
    tmpfs: tuple[Path, str] | None = None,
    read_only: Path | None = None,
    fsize: int | None = None,
    module: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`agebatch ARGV` (or `python -m MODULE ARGV`) in a new process: with a tmpfs of the given
    size mounted at a folder, a folder made read-only, or a file-size limit in bytes."""
    python = [sys.executable, "-m", module] if module else [sys.executable, "-c", _MAIN]
    command = shlex.join([*python, *argv])
    mounts = []
    if tmpfs is not None:
        mounts.append(f"mount -t tmpfs -o size={tmpfs[1]} none {shlex.quote(str(tmpfs[0]))}")
    if read_only is not None:
        where = shlex.quote(str(read_only))
        mounts += [f"mount --bind {where} {where}", f"mount -o remount,ro,bind {where}"]
    if mounts:
        args = ["unshare", "-rm", "sh", "-c", " && ".join([*mounts, f"exec {command}"])]
    else:
        args = [*python, *argv]

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit
    )


# The calls through which Python changes a file system (pathlib and shutil go through these),
# and pyarrow's Parquet writer, which writes from C++.
CHANGES = ("mkdir", "symlink", "replace", "rename", "unlink", "rmdir", "link", "fsync")
TWO_PATHS = ("symlink", "replace", "rename", "link")  # named by the path they make


@contextmanager
def at_each_change(act: Callable[[int, str], None], root: Path | None = None) -> Iterator[None]:
    """Call act(number, name) before each change this process makes to a file system (numbered
    from 1; name: the call and its path, relative to root where under it) while in the block.

    act may raise, sleep or SIGKILL the process: a kill just before a change, for every change
    in turn, reaches every state a kill can leave (a change is one system call).
    """
    import pyarrow.parquet as pq

    count = 0

    def name(call: str, path: object) -> str:
        if call == "fsync" and isinstance(path, int):
            path = os.readlink(f"/proc/self/fd/{path}") if os.path.isdir("/proc/self/fd") else "?"
        text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        if root is not None and os.path.isabs(text):
            text = os.path.relpath(text, root.resolve() if call == "fsync" else root)
        return f"{call} {text}"

    def wrap(call: str, real: Callable, target_arg: int = 0) -> Callable:
        def changed(*args, **kwargs):
            nonlocal count
            count += 1
            act(count, name(call, args[target_arg] if len(args) > target_arg else "?"))
            return real(*args, **kwargs)

        return changed

    patches = [
        mock.patch.object(os, call, wrap(call, getattr(os, call), 1 if call in TWO_PATHS else 0))
        for call in CHANGES
    ]
    patches.append(mock.patch.object(pq, "write_table", wrap("write_table", pq.write_table, 1)))
    for patch in patches:
        patch.start()
    try:
        yield
    finally:
        for patch in reversed(patches):
            patch.stop()


def kill_before(number: int, slow_s: float = 0.0) -> Callable[[int, str], None]:
    """An act for at_each_change: sleep slow_s before every change, SIGKILL this process before
    change `number` (0: never), saying on stderr where."""

    def act(count: int, name: str) -> None:
        if slow_s:
            time.sleep(slow_s)
        if count == number:
            os.write(2, f"killed at step {count} {name}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

    return act


_MAIN = "import sys; from agebatch.cli import main; sys.exit(main(sys.argv[1:]))"


def bare_record(run_id: str, day: dt.date = DAY, published_at: dt.datetime | None = None):
    """A run record with nothing but its identity (and, if given, when it was published)."""
    from agebatch.pipeline import RunRecord

    counts = {f.name: 0 for f in dataclasses.fields(RunRecord) if f.type in ("int", "float")}
    unknown = {f.name: None for f in dataclasses.fields(RunRecord) if "None" in str(f.type)}
    return RunRecord(
        **counts,
        **{**unknown, "published_at": published_at},
        age_checks_recorded=False,
        day=day,
        run_id=run_id,
        started_at=dt.datetime(2026, 11, 25, 2, 30),
        agebatch_version="test",
        model_version="test",
        device="CPU",
        clocks_off=[],
        coverage_gate="passed",
        coverage_over=[],
        quarantine_gate="passed",
        receipt_key=["receipt_id"],
        photos_deleted_days=[],
    )


def publish_twice(out: Path, big_rows: int, fsize: int | None) -> dict[str, object]:
    """Publish a small version of DAY, then try one with a big table; what readers see after."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agebatch.config import RunConfig
    from agebatch.errors import OutputError
    from agebatch.pipeline import publish

    config = RunConfig.build({"photos": out, "transactions": out, "catalog": out, "out": out})
    small = {"numbers": pa.table({"x": [1.0, 2.0], "run": ["first", "first"]})}
    publish(config, small, bare_record("first"))
    rng = np.random.default_rng(0)
    big = {"numbers": pa.table({"x": rng.random(big_rows), "run": ["second"] * big_rows})}
    if fsize is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    error = None
    try:
        publish(config, big, bare_record("second"))
    except OutputError as failure:
        error = str(failure)
    seen = pq.read_table(out / "numbers" / f"day={DAY}").column("run").to_pylist()
    runs = pq.read_table(out / "runs" / f"day={DAY}").column("run_id").to_pylist()
    versions = sorted(os.listdir(out / ".versions" / DAY.isoformat()))
    return {"error": error, "seen": seen, "runs": runs, "versions": versions}


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        fsize = int(sys.argv[4]) if len(sys.argv) > 4 else None
        print(json.dumps(publish_twice(Path(sys.argv[2]), int(sys.argv[3]), fsize)))
