"""The `agebatch-nightly` flow: find → preflight → predict → join → gate → publish, one day
per run.

Two parameters: `day` (default: yesterday in the chain's time zone) and `config`, the one run
configuration (agebatch.config.RunConfig; a form in the Prefect UI, fixed by the deployment).
Each task calls one stage of agebatch.pipeline and returns what it made.
"""

# No `from __future__ import annotations` here: Prefect validates the flow's parameters from
# their real annotations (RunConfig, dt.date) when a deployment starts a run.
import datetime as dt
import time

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from agebatch import pipeline, shards
from agebatch.config import RunConfig
from agebatch.errors import InputError
from agebatch.predict.model import AgeModel, load_model
from agebatch.preflight import check_settings
from agebatch.reports.html import ReportPages, report_markdown
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


@task(cache_policy=NO_CACHE)
def load(config: RunConfig) -> AgeModel:
    """Load the age model and its card."""
    return load_model(config.model)


@task(cache_policy=NO_CACHE, **_IO)
def find(config: RunConfig, day: dt.date) -> pipeline.Found:
    """Find the day's photos and read its transactions and catalog."""
    return pipeline.find(config, day)


@task(cache_policy=NO_CACHE, **_IO)
def preflight(config: RunConfig, found: pipeline.Found) -> None:
    """Check the output folders can take the day before any photo is decoded."""
    pipeline.preflight(config, found)


@task(cache_policy=NO_CACHE)
def predict(config: RunConfig, found: pipeline.Found, model: AgeModel) -> pipeline.Predicted:
    """Predict an age for every photo, logging progress lines."""
    progress = _progress_lines(len(found.captures.table))
    with shards.gpu_slot(config.gpu_limit):
        return pipeline.predict(config, found, model, progress)


@task(cache_policy=NO_CACHE)
def predict_shard(
    config: RunConfig, job: shards.ShardJob, shard: shards.Shard
) -> shards.ShardOutcome:
    """On a Dask worker: predict one shard and stage its ages, or reuse those staged before."""
    with to_run_log():  # the worker's lines in this task run's log
        return shards.run_shard(config, job, shard)


def predict_in_shards(
    config: RunConfig, found: pipeline.Found, run: pipeline.Run
) -> pipeline.Predicted:
    """Predict the day's shards on the Dask cluster; goes on only once every shard succeeded."""
    started = time.perf_counter()
    job, day_shards = pipeline.plan_shards(config, found, run)
    with shards.task_runner(config) as runner:
        futures = [
            runner.submit(predict_shard, {"config": config, "job": job, "shard": shard})
            for shard in day_shards
        ]
        for future in futures:  # every shard finishes (and stages) before a failure is raised
            future.wait()
        outcomes = [future.result() for future in futures]
    return pipeline.from_shards(found, job, day_shards, outcomes, time.perf_counter() - started)


@task(cache_policy=NO_CACHE)
def join(
    config: RunConfig,
    day: dt.date,
    found: pipeline.Found,
    predicted: pipeline.Predicted,
    model: AgeModel,
) -> pipeline.Joined:
    """Match receipts to ages, sum purchases per age group, list restricted sales, in DuckDB."""
    return pipeline.join(config, day, found, predicted, model)


@task(cache_policy=NO_CACHE, **_IO)
def gate(
    config: RunConfig, day: dt.date, predicted: pipeline.Predicted, joined: pipeline.Joined
) -> pipeline.Gated:
    """Refuse the day when a store's photos or matches collapsed (the coverage gate)."""
    return pipeline.gate(config, day, predicted, joined)


@task(cache_policy=NO_CACHE, **_IO)
def publish(
    config: RunConfig, tables: dict[str, pa.Table], record: pipeline.RunRecord
) -> pipeline.Published:
    """Write the day's Parquet and its run record to the output folder, whole or not at all."""
    return pipeline.publish(config, tables, record)


@task(cache_policy=NO_CACHE, **_IO)
def analytics_db(config: RunConfig) -> str:
    """Refresh the DuckDB file analysts' tools open (one view per dataset over the output)."""
    return str(pipeline.refresh_analytics_db(config))


@task(cache_policy=NO_CACHE, **_IO)
def report(config: RunConfig, day: dt.date, model: AgeModel) -> ReportPages:
    """Write the day's HTML report: the chain's page and one page per store."""
    return pipeline.write_report(config, day, model)


@flow(name="agebatch-nightly", log_prints=False)
def nightly(config: RunConfig, day: dt.date | None = None) -> dict[str, object]:
    """Turn one day's checkout photos and transactions into published age analytics."""
    with to_run_log():  # agebatch's own lines (counts, where it published) in this run's log
        return _nightly(config, day or config.yesterday())


def _nightly(config: RunConfig, day: dt.date) -> dict[str, object]:
    """The flow's body: load → find → predict → join → publish, then the run's artifacts."""
    check_settings(config, day)  # inputs, settings files and the card, before the model loads
    model = load(config)
    run = pipeline.start(model, day)
    found = find(config, day)
    preflight(config, found)
    if config.sharded:
        predicted = predict_in_shards(config, found, run)
    else:
        predicted = predict(config, found, model)
    joined = join(config, day, found, predicted, model)
    gated = gate(config, day, predicted, joined)
    record = pipeline.run_record(run, found, predicted, joined, gated)
    published = publish(config, gated.tables, record)
    analytics_db(config)
    pages = report(config, day, model)
    rows = summary_rows(published.record)
    create_table_artifact(
        table=rows,
        key=f"agebatch-summary-{day.isoformat()}",
        description=f"agebatch nightly run for {day}: counts, timings, model",
    )
    create_table_artifact(
        table=top_cashiers(joined.tables["cashier_compliance"]),
        key=f"agebatch-cashiers-{day.isoformat()}",
        description=f"Cashiers with the highest share of missed ID checks (where the tills "
        f"record checks), else of flagged alcohol sales, on {day} (a list to review, not a "
        "verdict)",
    )
    create_table_artifact(
        table=offer_rows(joined.tables["age_group_affinity"]),
        key=f"agebatch-offers-{day.isoformat()}",
        description=f"What each age group buys more often than the shoppers as a whole, up to "
        f"{day} (age_group_affinity's first offers; ages are estimates, lifts correlations)",
    )
    create_markdown_artifact(
        markdown=report_markdown(pages, day),
        key=f"agebatch-report-{day.isoformat()}",
        description=f"The HTML report of {day}: headline figures and where the pages are",
    )
    return {**{row["measure"]: row["value"] for row in rows}, "report": str(pages.chain)}


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
