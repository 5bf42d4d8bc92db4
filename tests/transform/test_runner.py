"""The declared SQL models and their one runner: every file declared as it reads, ordered by
what each reads, parameters declared exactly (missing or extra: an error)."""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources

import duckdb
import pytest

from agebatch.duck import connect, sql
from agebatch.schema import TABLES
from agebatch.transform.join import PUBLISHED
from agebatch.transform.models import INPUTS, MODELS, Model
from agebatch.transform.runner import ModelError, check_params, in_order, run_models

# sql/ files the transform stage does not run: inputs/transactions.py reads the till lines.
NOT_MODELS = {"lines", "line_faults"}


def _tables_read(text: str) -> set[str]:
    """The tables a statement reads: names after from/join that are not its own CTEs (for this
    test's cross-check only; the runner never reads the SQL text)."""
    code = re.sub(r"--[^\n]*", "", text)
    ctes = set(re.findall(r"(\w+) as \(", code))
    read = set(re.findall(r"\b(?:from|join)\s+([a-z_]+)\b", code))
    return read - ctes - {"unnest", "select"}


def test_every_sql_file_is_a_declared_model_or_an_input_statement() -> None:
    files = {
        path.name.removesuffix(".sql")
        for path in resources.files("agebatch.sql").iterdir()
        if path.name.endswith(".sql")
    }
    assert files == {model.name for model in MODELS} | NOT_MODELS


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.name)
def test_a_model_declares_what_its_file_reads_and_binds(model: Model) -> None:
    text = sql(model.name)
    assert _tables_read(text) == set(model.reads)
    uses = set(re.findall(r"\$([a-z_0-9]+)", re.sub(r"--[^\n]*", "", text)))
    assert uses == set(model.params)


def test_the_declared_inputs_are_what_the_models_read_besides_each_other() -> None:
    names = {model.name for model in MODELS}
    assert {r for model in MODELS for r in model.reads} - names == set(INPUTS)


def test_every_published_table_comes_from_the_file_named_after_it() -> None:
    published = {model.name for model in MODELS if model.published}
    assert published == set(PUBLISHED)
    assert published <= set(TABLES)


def test_models_run_after_what_they_read_in_declared_order_otherwise() -> None:
    models = [
        Model("c", ("b", "x")),
        Model("a", ("x",)),
        Model("b", ("a",)),
        Model("d", ("x",)),
    ]
    assert [m.name for m in in_order(models, ["x"])] == ["a", "b", "c", "d"]
    names = [m.name for m in in_order(MODELS, INPUTS)]
    for model in MODELS:
        assert all(names.index(r) < names.index(model.name) for r in model.reads if r in names)


def test_a_read_of_nothing_or_a_cycle_is_refused() -> None:
    with pytest.raises(ModelError, match=r"Model a reads \['y'\]: no input or model"):
        in_order([Model("a", ("y",))], ["x"])
    with pytest.raises(ModelError, match=r"Models \['a', 'b'\] read each other"):
        in_order([Model("a", ("b",)), Model("b", ("a",))], [])


def test_a_missing_or_extra_parameter_is_an_error() -> None:
    models = [Model("m", (), ("day", "k"))]
    with pytest.raises(ModelError, match=r"missing: \['k'\]; given to no model: \[\]"):
        check_params(models, {"day": 1})
    with pytest.raises(ModelError, match=r"missing: \[\]; given to no model: \['kk'\]"):
        check_params(models, {"day": 1, "k": 2, "kk": 3})
    check_params(models, {"day": 1, "k": 2})


def test_a_statement_using_a_parameter_its_model_does_not_declare_is_refused() -> None:
    # receipt_groups binds $day; declared without it, DuckDB refuses the statement.
    undeclared = Model("receipt_groups", ("lines", "receipt_ages"), ())
    with connect() as con:
        con.execute("create table lines (receipt_id varchar, amount decimal(18, 2))")
        con.execute(
            "create table receipt_ages (receipt_id varchar, store_id varchar, age_group varchar,"
            " age_group_low integer, age_group_high integer)"
        )
        with pytest.raises(duckdb.InvalidInputException, match="day"):
            run_models(con, [undeclared], ["lines", "receipt_ages"], {})
        declared = Model("receipt_groups", undeclared.reads, ("day",))
        run_models(con, [declared], undeclared.reads, {"day": dt.date(2026, 11, 24)})
        assert con.table("receipt_groups").fetchall() == []
