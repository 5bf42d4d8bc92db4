"""Age-group shares, and how far two sets of shares are apart."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from agebatch.config import age_group_labels


def group_of(ages: Iterable[float], bounds: Sequence[int]) -> list[str]:
    """The age-group label of each age, with the pipeline's groups for these bounds."""
    groups = age_group_labels(tuple(bounds))
    edges = np.array([low for _, low, _ in groups[1:]])
    return [groups[int(np.searchsorted(edges, age, side="right"))][0] for age in ages]


def shares(labels: Iterable[str], groups: Sequence[str]) -> np.ndarray:
    """Share of each group among labels, in the order of groups (zeros when labels is empty)."""
    labels = list(labels)
    counts = np.array([labels.count(group) for group in groups], dtype=float)
    return counts / counts.sum() if counts.sum() else counts


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance: half the summed absolute difference of two share vectors."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def group_confusion(age_confusion: Sequence[Sequence[int]], bounds: Sequence[int]) -> np.ndarray:
    """P(predicted group | true group) from [true_year, predicted_year, count] triples.

    Years are whole (floored) ages, so any integer group bounds can be derived from them.
    A true group never seen is taken as always recognised (an identity row): no evidence
    either way, and it must not soak up the other groups' errors.
    """
    labels = [label for label, *_ in age_group_labels(tuple(bounds))]
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    for true_year, predicted_year, count in age_confusion:
        t, p = group_of([true_year, predicted_year], bounds)
        counts[index[t], index[p]] += count
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.eye(len(labels)))


EM_ITERATIONS = 5


def corrected_shares(
    observed: np.ndarray, confusion: np.ndarray, iterations: int = EM_ITERATIONS
) -> np.ndarray:
    """True-share estimate from observed (predicted-group) shares and P(predicted | true);
    observed may also be a 2-D array of independent rows.

    The EM of Saerens et al. (2002) with the confusion matrix as the likelihood: start from
    the observed shares, then repeatedly reweight each true group by how well it explains
    the observed ones. Run to convergence it is the maximum-likelihood estimate, which (like
    inverting the matrix, adjusted classify-and-count) amplifies noise when groups are
    confused as much as 18-24 and 25-34 are; a few iterations keep the estimate stable.
    The count, 5, was chosen on the calibration faces alone (simulated store-days with
    shifted age mixes); see README.
    """
    observed = np.asarray(observed, dtype=float)
    totals = observed.sum(axis=-1, keepdims=True)
    # Each row of a 2-D observed is corrected on its own; a row of zeros stays zeros.
    p = np.divide(observed, totals, out=np.zeros_like(observed), where=totals > 0)
    for _ in range(iterations):
        predicted = np.maximum(p @ confusion, 1e-12)
        p = p * ((observed / predicted) @ confusion.T)
        p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)
    return p


def add_corrected_shares(
    table: pa.Table,
    age_confusion: Sequence[Sequence[int]] | None,
    source: str,
    bounds: Sequence[int],
) -> pa.Table:
    """Add corrected_share and correction to age_group_shares rows (level, store_id, age_group,
    receipts); without a confusion in the model card, corrected_share stays null."""
    rows = table.to_pylist()
    if not age_confusion:
        note = "none: the model card has no age_confusion"
        return table.append_column(
            "corrected_share", pa.nulls(len(rows), pa.float64())
        ).append_column("correction", pa.array([note] * len(rows), pa.string()))
    groups = [label for label, *_ in age_group_labels(tuple(bounds))]
    confusion = group_confusion(age_confusion, bounds)
    corrected: dict[tuple, float] = {}
    merged: set[tuple] = set()
    for scope in {(r["level"], r["store_id"]) for r in rows}:
        counts = {
            r["age_group"]: r["receipts"] for r in rows if (r["level"], r["store_id"]) == scope
        }
        if None in counts.values():  # a withheld group: the estimate would tell its count
            merged.add(scope)
            continue
        estimate = corrected_shares(np.array([counts.get(g, 0) for g in groups], float), confusion)
        corrected.update({(*scope, g): float(v) for g, v in zip(groups, estimate, strict=True)})
    note = (
        f"EM ({EM_ITERATIONS} iterations, Saerens et al. 2002) with the age confusion of {source}"
    )
    unsplit = "none: a group here has fewer than k receipts and is withheld"
    values = [corrected.get((r["level"], r["store_id"], r["age_group"])) for r in rows]
    notes = [unsplit if (r["level"], r["store_id"]) in merged else note for r in rows]
    return table.append_column("corrected_share", pa.array(values, pa.float64())).append_column(
        "correction", pa.array(notes, pa.string())
    )
