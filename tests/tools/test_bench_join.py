"""tools/bench_join.py runs: a small generated day through join_day, every model timed."""

from __future__ import annotations

from agebatch.transform.models import MODELS
from tools.bench_join import main


def test_the_bench_times_the_whole_join_and_every_model(capsys) -> None:
    seconds = main(["--receipts", "2000", "--stores", "4", "--registers", "2"])
    assert list(seconds) == ["join_day", *(model.name for model in MODELS)]
    assert all(value >= 0 for value in seconds.values())
    out = capsys.readouterr().out
    assert "generated 2,000 receipts" in out and "at 8 registers" in out
    assert " matched, " in out and "  receipt_captures " in out
