"""runs.model_card says which card aged a day: model_version names the weights and stays when a
card's measured fields are written again (agebatch evaluate --write-...), the card's digest
does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from agebatch.pipeline import run_day
from agebatch.predict.card import SHORT_DIGEST, ModelCard
from agebatch.predict.model import load_model
from agebatch.sample import make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces


def test_each_run_records_the_digest_of_the_card_that_aged_it(
    tmp_path: Path, brightness_model_path: Path
) -> None:
    model_path = tmp_path / "model" / brightness_model_path.name
    model_path.parent.mkdir()
    shutil.copy(brightness_model_path, model_path)
    shutil.copy(ModelCard.path_for(brightness_model_path), ModelCard.path_for(model_path))
    sample = make_sample_day(tmp_path / "data", DAY, receipts=30, writer=SolidFaces(), seed=7)
    config = sample.config(tmp_path / "out")
    before = ModelCard.read(model_path)
    first = run_day(config, DAY, model=load_model(model_path))
    # The same version, a field measured again: another card.
    after = before.updated(training={"measured_again": "2026-12-07"})
    after.write(model_path)
    second = run_day(config, DAY, model=load_model(model_path))

    runs = pd.read_parquet(tmp_path / "out" / "runs" / f"day={DAY}").set_index("run_id")
    assert runs.loc[first.record.run_id, "model_card"] == before.digest()[:SHORT_DIGEST]
    assert runs.loc[second.record.run_id, "model_card"] == after.digest()[:SHORT_DIGEST]
    assert before.digest() != after.digest() and before.version == after.version
    assert runs["model_version"].nunique() == 1 and runs["model_card"].nunique() == 2
    assert len(before.digest()[:SHORT_DIGEST]) == SHORT_DIGEST == 12
