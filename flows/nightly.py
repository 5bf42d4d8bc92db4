"""The `agebatch-nightly` flow: the stages of agebatch.pipeline.STAGES (find → preflight →
predict → transform → gate → publish → analytics_db → report), one day per run.

Two parameters: `day` (default: yesterday in the chain's time zone) and `config`, the one run
configuration (agebatch.config.RunConfig; a form in the Prefect UI, fixed by the deployment).
Each stage runs as a task of its name that takes the night so far and returns it with what the
stage made; predict may run in shards on Dask instead.
"""

# No `from __future__ import annotations` here: Prefect validates the flow's parameters from
# their real annotations (RunConfig, dt.date) when a deployment starts a run.
import dataclasses
import datetime as dt
import time

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agebatch import pipeline, shards
from agebatch.config import RunConfig
from agebatch.errors import InputError
from agebatch.predict.model import AgeModel, load_model
from agebatch.preflight import check_settings
from agebatch.reports.html import report_markdown
from agebatch.reports.offers import offer_rows
from agebatch.reports.summary import summary_rows, top_cashiers
from agebatch.runlog import to_run_log


def _not_input_error(task, task_run, state) -> bool:
    """Retry I/O hiccups, never a bad input (retrying cannot fix a missing column)."""
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return False


# Retries on I/O only (reading inputs, writing outputs); never around the model or SQL.
_IO = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _not_input_error}


def _task(stage: pipeline.Stage):
    """A pipeline stage as a Prefect task of its name; one that reads or writes files is
    retried on an I/O hiccup."""
    return task(stage.step, name=stage.name, cache_policy=NO_CACHE, **(_IO if stage.io else {}))


TASKS = {stage.name: _task(stage) for stage in pipeline.STAGES}


@task(cache_policy=NO_CACHE)
def load(config: RunConfig) -> AgeModel:
    """Load the age model and its card."""
    return load_model(config.model)


@task(cache_policy=NO_CACHE)
def predict_shard(
    config: RunConfig, job: shards.ShardJob, shard: shards.Shard
) -> shards.ShardOutcome:
    """On a Dask worker: predict one shard and stage its ages, or reuse those staged before."""
    with to_run_log():  # the worker's lines in this task run's log
        return shards.run_shard(config, job, shard)


def predict_in_shards(night: pipeline.Night) -> pipeline.Night:
    """The predict stage on the Dask cluster; goes on only once every shard succeeded."""
    started = time.perf_counter()
    config, found = night.config, night.found
    job, day_shards = pipeline.plan_shards(config, found, night.run)
    with shards.task_runner(config) as runner:
        futures = [
            runner.submit(predict_shard, {"config": config, "job": job, "shard": shard})
            for shard in day_shards
        ]
        for future in futures:  # every shard finishes (and stages) before a failure is raised
            future.wait()
        outcomes = [future.result() for future in futures]
    seconds = time.perf_counter() - started
    predicted = pipeline.from_shards(found, job, day_shards, outcomes, seconds)
    return dataclasses.replace(night, predicted=predicted)


def run_stage(stage: pipeline.Stage, night: pipeline.Night) -> pipeline.Night:
    """One stage as its task; predict holds a GPU slot, or runs in shards on Dask."""
    if stage.name != "predict":
        return TASKS[stage.name](night)
    if night.config.sharded:
        return predict_in_shards(night)
    with shards.gpu_slot(night.config.gpu_limit):
        return TASKS[stage.name](night)


@flow(name="agebatch-nightly", log_prints=False)
def nightly(config: RunConfig, day: dt.date | None = None) -> dict[str, object]:
    """Turn one day's checkout photos and transactions into published age analytics."""
    with to_run_log():  # agebatch's own lines (counts, where it published) in this run's log
        return _nightly(config, day or config.yesterday())


def _nightly(config: RunConfig, day: dt.date) -> dict[str, object]:
    """The flow's body: load, then the pipeline's stages, then the run's artifacts."""
    check_settings(config, day)  # inputs, settings files and the card, before the model loads
    model = load(config)
    night = pipeline.run_stages(pipeline.begin(config, day, model, _progress_lines), run_stage)
    rows = summary_rows(night.published.record)
    create_table_artifact(
        table=rows,
        key=f"agebatch-summary-{day.isoformat()}",
        description=f"agebatch nightly run for {day}: counts, timings, model",
    )
    create_table_artifact(
        table=top_cashiers(night.joined.tables["cashier_compliance"]),
        key=f"agebatch-cashiers-{day.isoformat()}",
        description=f"Cashiers with the highest share of missed ID checks (where the tills "
        f"record checks), else of flagged alcohol sales, on {day} (a list to review, not a "
        "verdict)",
    )
    create_table_artifact(
        table=offer_rows(night.joined.tables["age_group_affinity"]),
        key=f"agebatch-offers-{day.isoformat()}",
        description=f"What each age group buys more often than the shoppers as a whole, up to "
        f"{day} (age_group_affinity's first offers; ages are estimates, lifts correlations)",
    )
    create_markdown_artifact(
        markdown=report_markdown(night.pages, day),
        key=f"agebatch-report-{day.isoformat()}",
        description=f"The HTML report of {day}: headline figures and where the pages are",
    )
    return {**{row["measure"]: row["value"] for row in rows}, "report": str(night.pages.chain)}


def _progress_lines(total: int, every_s: float = 10.0):
    """A progress callback that logs a line at most every `every_s` seconds, and at the end."""
    logger = get_run_logger()
    state = {"done": 0, "last": time.monotonic()}

    def update(n: int) -> None:
        state["done"] += n
        now = time.monotonic()
        if now - state["last"] >= every_s or state["done"] == total:
            state["last"] = now
            logger.info(
                "predict: %d/%d photos (%.0f%%)",
                state["done"],
                total,
                100 * state["done"] / max(total, 1),
            )

    return update
