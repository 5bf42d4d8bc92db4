"""The one runner of the declared SQL models: orders them by what they read, checks their
parameters, and creates each model's table from its sql/ file in one DuckDB connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence

import duckdb

from agebatch.duck import sql
from agebatch.transform.models import Model

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A declared model list that cannot run: a read of nothing, a cycle, a parameter missing
    or given to no model (a programming error, not a user's)."""


def in_order(models: Sequence[Model], inputs: Iterable[str]) -> list[Model]:
    """The models in an order in which each runs after every model it reads (declaration
    order where that leaves a choice); every read must be an input or a model."""
    inputs = set(inputs)
    names = {model.name for model in models}
    for model in models:
        unknown = set(model.reads) - names - inputs
        if unknown:
            raise ModelError(f"Model {model.name} reads {sorted(unknown)}: no input or model.")
    done: set[str] = set()
    ordered: list[Model] = []
    waiting = list(models)
    while waiting:
        ready = [m for m in waiting if all(r in done or r in inputs for r in m.reads)]
        if not ready:
            raise ModelError(f"Models {sorted(m.name for m in waiting)} read each other.")
        ordered.append(ready[0])
        done.add(ready[0].name)
        waiting.remove(ready[0])
    return ordered


def check_params(models: Sequence[Model], params: Mapping[str, object]) -> None:
    """Every parameter a model declares is given, and every one given is declared."""
    declared = {name for model in models for name in model.params}
    missing, extra = declared - set(params), set(params) - declared
    if missing or extra:
        raise ModelError(
            f"Parameters missing: {sorted(missing)}; given to no model: {sorted(extra)}."
        )


def run_models(
    con: duckdb.DuckDBPyConnection,
    models: Sequence[Model],
    inputs: Iterable[str],
    params: Mapping[str, object],
) -> None:
    """Create every model's table in con, in dependency order, each bound with exactly the
    parameters it declares (DuckDB refuses a statement that uses another)."""
    check_params(models, params)
    for model in in_order(models, inputs):
        bound = {name: params[name] for name in model.params}
        started = time.perf_counter()
        con.execute(f"create or replace table {model.name} as {sql(model.name)}", bound)
        log.debug("Built %s in %.3f s", model.name, time.perf_counter() - started)
