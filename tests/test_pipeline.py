"""One list of stages: run_day and the Prefect flow run pipeline.STAGES, in order, each once."""

from __future__ import annotations

import dataclasses
import datetime as dt

from agebatch import pipeline
from agebatch.flows import nightly

NIGHT = ("find", "preflight", "predict", "transform", "gate", "publish", "analytics_db", "report")


def _night() -> pipeline.Night:
    run = pipeline.Run(
        "r1", dt.date(2026, 11, 24), dt.datetime(2026, 11, 25, tzinfo=dt.UTC), "m", "CPU"
    )
    return pipeline.Night(config=None, model=None, run=run)  # type: ignore[arg-type]


def test_the_night_runs_every_stage_once_in_order() -> None:
    assert tuple(stage.name for stage in pipeline.STAGES) == NIGHT
    seen: list[str] = []

    def run(stage: pipeline.Stage, night: pipeline.Night) -> pipeline.Night:
        seen.append(stage.name)
        return dataclasses.replace(night, progress=None)

    assert pipeline.run_stages(_night(), run).day == dt.date(2026, 11, 24)
    assert tuple(seen) == NIGHT


def test_the_flow_runs_the_same_steps_as_tasks_retrying_io_only() -> None:
    assert tuple(nightly.TASKS) == NIGHT
    for stage in pipeline.STAGES:
        task = nightly.TASKS[stage.name]
        assert task.fn is stage.step and task.name == stage.name
        assert task.retries == (2 if stage.io else 0), stage.name
    assert {s.name for s in pipeline.STAGES if not s.io} == {"predict", "transform"}
