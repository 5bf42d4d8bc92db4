"""Age-group shares: the EM correction, confusion matrices, and the published table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from agebatch.config import default_age_bounds
from agebatch.transform.shares import (
    add_corrected_shares,
    corrected_shares,
    group_confusion,
    group_of,
    shares,
    total_variation,
)

CONFUSION = np.array([[0.7, 0.3, 0.0], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]])


def test_group_of_uses_half_open_groups() -> None:
    assert group_of([0, 17.99, 18, 24.99, 25, 64.99, 65, 110], default_age_bounds()) == [
        "<18",
        "<18",
        "18-24",
        "18-24",
        "25-34",
        "55-64",
        "65+",
        "65+",
    ]


def test_total_variation() -> None:
    assert total_variation(np.array([0.5, 0.5, 0]), np.array([0.25, 0.25, 0.5])) == 0.5


def test_em_converges_to_the_true_shares_and_a_few_steps_move_towards_them() -> None:
    true = np.array([0.1, 0.3, 0.6])
    observed = true @ CONFUSION  # what the model would report without sampling noise
    np.testing.assert_allclose(
        corrected_shares(observed, CONFUSION, iterations=5000), true, atol=1e-3
    )
    five = corrected_shares(observed, CONFUSION)
    assert total_variation(five, true) < total_variation(observed, true) / 2
    assert five.sum() == pytest.approx(1.0) and (five >= 0).all()


def test_empty_day_has_no_shares() -> None:
    assert corrected_shares(np.zeros(3), CONFUSION).tolist() == [0, 0, 0]


def test_group_confusion_from_year_triples() -> None:
    # true 16 -> predicted 16 (3), 16 -> 20 (1); true 30 -> 30 (2); others unseen.
    confusion = group_confusion([[16, 16, 3], [16, 20, 1], [30, 30, 2]], (18, 25))
    np.testing.assert_allclose(confusion, [[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _raw_table() -> pa.Table:
    groups = ["<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
    counts = [5, 30, 40, 10, 5, 5, 5]
    return pa.table(
        {
            "level": ["chain"] * 7,
            "store_id": pa.nulls(7, pa.string()),
            "age_group": groups,
            "receipts": counts,
            "share": [c / 100 for c in counts],
        }
    )


def test_corrected_column_per_scope() -> None:
    triples = [[20, 30, 40], [20, 20, 60], [30, 30, 90], [30, 20, 10], [10, 10, 5], [70, 70, 5]]
    table = add_corrected_shares(_raw_table(), triples, "m1 on calibration", default_age_bounds())
    rows = table.to_pylist()
    corrected = {row["age_group"]: row["corrected_share"] for row in rows}
    assert sum(corrected.values()) == pytest.approx(1.0)
    # 18-24 is often read as 25-34: the correction moves share back to 18-24.
    assert corrected["18-24"] > 0.30 and corrected["25-34"] < 0.40
    assert table["correction"][0].as_py().startswith("EM (5 iterations")


def test_without_confusion_the_correction_says_none() -> None:
    table = add_corrected_shares(_raw_table(), None, "", default_age_bounds())
    assert table["corrected_share"].null_count == 7
    assert table["correction"][0].as_py().startswith("none")


def test_shares_order_follows_groups() -> None:
    assert shares(["b", "a", "b", "b"], ["a", "b", "c"]).tolist() == [0.25, 0.75, 0.0]
