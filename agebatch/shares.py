"""Age-group shares, and how far two sets of shares are apart."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from agebatch.settings import age_group_labels


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
