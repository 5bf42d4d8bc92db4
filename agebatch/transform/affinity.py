"""What to offer each age group: how much more often a group buys a category or product than
the store's shoppers as a whole (the lift), with an interval, over a rolling window of days.

The day's counts (age_group_item_receipts, published) are summed with the earlier published
days of the window in SQL (sql/age_group_affinity.sql, read through
agebatch.transform.history); here the shares, the lift, its
interval, the optional correction for the model's confusion and the ranking are added.
See docs/offers.md for the choices and their measured effect.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from agebatch.config import AffinityCorrection, RunConfig, age_group_labels
from agebatch.duck import connect
from agebatch.predict.card import ModelCard
from agebatch.schema import schema
from agebatch.transform.history import read_history
from agebatch.transform.models import MODELS
from agebatch.transform.runner import run_models
from agebatch.transform.shares import EM_ITERATIONS, corrected_shares, group_confusion

log = logging.getLogger(__name__)

DAILY = "age_group_item_receipts"
REPORT = "age_group_affinity"
HISTORY_SCHEMA = schema(DAILY)
SCOPE = ["level", "store_id"]
ITEM = ["item_kind", "item"]
# An offer is ranked within its scope, age group and kind of item.
RANKED_WITHIN = [*SCOPE, "age_group", "item_kind"]


def _default(name: str) -> object:
    """A setting's default, from its one place: the run config."""
    return RunConfig.model_fields[name].default


@dataclass(frozen=True)
class AffinityInputs:
    """What the affinity needs besides the day: the window's earlier days and the settings."""

    groups: tuple[str, ...]  # the run's age-group labels, in order
    affinity_days: int = field(default_factory=lambda: _default("affinity_days"))
    min_receipts: int = field(default_factory=lambda: _default("min_receipts"))
    confidence: float = field(default_factory=lambda: _default("affinity_confidence"))
    confusion: np.ndarray | None = None  # P(predicted group | true group); None: no correction
    correction: str = "none"  # how the groups were corrected, said for people
    history: pa.Table = field(default_factory=HISTORY_SCHEMA.empty_table)
    days_covered: int = 1  # published days of the window, this one included

    @property
    def method(self) -> str:
        """The method column: interval, minimum receipts and correction."""
        widened = "" if self.confusion is None else ", widened by the correction's design effect"
        return (
            f"Wilson {self.confidence:.0%} interval of the group's share of buyers{widened}; "
            f"offers need >= {self.min_receipts} receipts; correction: {self.correction}"
        )


def affinity_inputs(config: RunConfig, card: ModelCard, day: dt.date) -> AffinityInputs:
    """The run's affinity settings, the card's group confusion (when asked for and there) and
    the published earlier days of the window under config.out."""
    groups = tuple(label for label, *_ in age_group_labels(config.age_groups))
    confusion, correction = None, "none (--affinity-correction none)"
    if config.affinity_correction is AffinityCorrection.CONFUSION:
        if card.age_confusion:
            confusion = group_confusion(card.age_confusion.counts, config.age_groups)
            correction = (
                f"EM ({EM_ITERATIONS} iterations) with the age confusion of {card.version} on "
                f"{card.age_confusion.split}"
            )
        else:
            correction = "none: the model card has no age_confusion"
    history, covered = affinity_history(config.out, day, config.affinity_days, groups)
    return AffinityInputs(
        groups=groups,
        affinity_days=config.affinity_days,
        min_receipts=config.min_receipts,
        confidence=config.affinity_confidence,
        confusion=confusion,
        correction=correction,
        history=history,
        days_covered=covered,
    )


def affinity_history(
    out: Path, day: dt.date, days: int, groups: Sequence[str]
) -> tuple[pa.Table, int]:
    """The daily counts of the window's earlier days as published under out, and how many days
    the window covers (this one included). A day published with other age groups is left out:
    its groups cannot be added to these."""
    first, last = day - dt.timedelta(days=days - 1), day - dt.timedelta(days=1)
    history = read_history([out], DAILY, first, last, HISTORY_SCHEMA.names[1:])
    foreign = pc.invert(pc.is_in(history["age_group"], pa.array(groups, pa.string())))
    left_out = sorted(set(history.filter(foreign)["day"].to_pylist()))
    for earlier in left_out:
        rows = history.filter(pc.equal(history["day"], earlier))
        log.warning(
            "Affinity window: %s left out, its age groups %s are not this run's",
            earlier,
            sorted(set(rows["age_group"].to_pylist()) - set(groups)),
        )
    history = history.filter(pc.invert(pc.is_in(history["day"], pa.array(left_out, pa.date32()))))
    return history, 1 + len(set(history["day"].to_pylist()))


def affinity_of(
    lines: pa.Table | pd.DataFrame,
    catalog: pa.Table | pd.DataFrame,
    receipt_ages: pa.Table | pd.DataFrame,
    day: dt.date,
    inputs: AffinityInputs,
    k: int = 1,
) -> dict[str, pa.Table]:
    """The affinity tables from a day's lines, catalog and receipt_ages (receipt_id, store_id,
    age_group, status) outside a run: for measurements and tests on generated days (the
    declared models small_cells, age_group_item_receipts and age_group_affinity alone; k is
    the small-cell minimum, 1 by default: nothing withheld)."""
    groups = pa.table({"label": list(inputs.groups), "low_years": range(len(inputs.groups))})
    tables = {
        "lines": lines,
        "catalog": catalog,
        "receipt_ages": receipt_ages,
        "age_groups": groups,
    }
    models = [model for model in MODELS if model.name in ("small_cells", DAILY, REPORT)]
    params = {
        "day": day,
        "k": k,
        "affinity_days": inputs.affinity_days,
        "days_covered": inputs.days_covered,
    }
    with connect() as con:
        for name, table in (*tables.items(), ("affinity_history", inputs.history)):
            con.register(name, table)
        run_models(con, models, [*tables, "affinity_history"], params)
        counts = con.table(REPORT).fetch_arrow_table()
        return {DAILY: con.table(DAILY).fetch_arrow_table(), REPORT: add_affinity(counts, inputs)}


def wilson(successes: np.ndarray, trials: np.ndarray, confidence: float) -> tuple[np.ndarray, ...]:
    """The Wilson score interval (low, high) of a binomial share; successes may be fractional."""
    x, n = np.asarray(successes, float), np.asarray(trials, float)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = x / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def add_affinity(counts: pa.Table, inputs: AffinityInputs) -> pa.Table:
    """Add the shares, lift, interval, offer rank and method to the window's counts.

    buyer_share = the group's share of the item's buyers, shopper_share = its share of all the
    scope's matched receipts; lift = buyer_share / shopper_share, which equals the group's
    buying rate over the scope's. The interval is the Wilson interval of buyer_share divided
    by shopper_share (held fixed, as conditioning on the margins does; see docs/offers.md).
    With a confusion, both shares are first corrected with the card's confusion (EM), and the
    interval is widened by the correction's design effect on buyer_share.
    """
    frame = counts.to_pandas()
    buyer_share = frame["receipts"] / frame["buyer_receipts"]
    shopper_share = frame["group_receipts"] / frame["all_receipts"]
    trials = frame["buyer_receipts"].astype(float)
    if inputs.confusion is not None and len(frame):
        buyer_share, shopper_share, effect = _corrected(frame, inputs.groups, inputs.confusion)
        trials = trials / effect
    low, high = wilson(buyer_share * trials, trials, inputs.confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(shopper_share > 0, buyer_share / shopper_share, np.nan)
        lift_low = np.where(shopper_share > 0, low / shopper_share, np.nan)
        lift_high = np.where(shopper_share > 0, high / shopper_share, np.nan)
    frame = frame.assign(
        buyer_share=np.asarray(buyer_share, float),
        shopper_share=np.asarray(shopper_share, float),
        lift=lift,
        lift_low=lift_low,
        lift_high=lift_high,
    )
    frame["offer_rank"] = offer_ranks(frame, inputs.min_receipts)
    frame["method"] = inputs.method
    target = schema(REPORT)
    frame = frame[target.names]
    return pa.Table.from_pandas(frame, schema=target, preserve_index=False)


def _corrected(
    frame: pd.DataFrame, groups: Sequence[str], confusion: np.ndarray
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Buyer and shopper shares of each row after correcting, per scope, the group counts of
    the item's buyers and of all shoppers with the confusion (EM, as corrected shares do), and
    the design effect of the correction on each buyer share."""
    index = {group: i for i, group in enumerate(groups)}
    column = frame["age_group"].map(index).to_numpy()
    scope = pd.MultiIndex.from_frame(frame[SCOPE].fillna(""))
    item = pd.MultiIndex.from_frame(frame[[*SCOPE, *ITEM]].fillna(""))
    # One row of counts over the groups per item (its buyers) and per scope (its shoppers).
    item_codes, items = pd.factorize(item)
    buyers = np.zeros((len(items), len(groups)))
    buyers[item_codes, column] = frame["receipts"].to_numpy()
    scope_codes, scopes = pd.factorize(scope)
    shoppers = np.zeros((len(scopes), len(groups)))
    shoppers[scope_codes, column] = frame["group_receipts"].to_numpy()
    corrected, effect = design_effect(buyers, confusion)
    # A group whose receipts bought nothing (returns only) has no rows but is among all_receipts.
    seen = shoppers.sum(axis=1)[scope_codes] / frame["all_receipts"].to_numpy()
    shopper_share = corrected_shares(shoppers, confusion)[scope_codes, column] * seen
    return (
        pd.Series(corrected[item_codes, column], frame.index),
        pd.Series(shopper_share, frame.index),
        pd.Series(effect[item_codes, column], frame.index),
    )


def design_effect(counts: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corrected shares of each row of group counts, and how many times the binomial variance
    of each share the correction's variance is (delta method, at least 1).

    The correction moves receipts between neighbouring groups, and with them their noise: its
    variance is J' S J, with J the derivative of the EM map (by finite differences) and S the
    multinomial covariance of the observed shares. Dividing the receipts by this design effect
    gives the Wilson interval the corrected share's real spread (Kish's effective sample size).
    """
    rows, size = counts.shape
    totals = counts.sum(axis=1, keepdims=True)
    observed = counts / np.maximum(totals, 1)
    corrected = corrected_shares(observed, confusion)
    step = 1e-6
    nudged = observed[:, None, :] + step * np.eye(size)[None]
    moved = corrected_shares(nudged.reshape(-1, size), confusion).reshape(rows, size, size)
    jacobian = (moved - corrected[:, None, :]) / step  # [row, input group, output group]
    covariance = (
        np.einsum("ri,ij->rij", observed, np.eye(size)) - observed[:, :, None] * observed[:, None]
    ) / np.maximum(totals, 1)[:, :, None]
    variance = np.einsum("rig,rij,rjg->rg", jacobian, covariance, jacobian)
    binomial = corrected * (1 - corrected) / np.maximum(totals, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where(binomial > 0, variance / binomial, 1.0)
    return corrected, np.maximum(effect, 1.0)


def offer_ranks(frame: pd.DataFrame, min_receipts: int) -> pd.Series:
    """Rank of each row among its group's offers (lift_low > 1 and at least min_receipts
    receipts), 1 first: by the interval's lower end, then the lift, then the item's name."""
    offers = frame[(frame["receipts"] >= min_receipts) & (frame["lift_low"] > 1)]
    ordered = offers.assign(store_key=offers["store_id"].fillna("")).sort_values(
        ["lift_low", "lift", "item"], ascending=[False, False, True], kind="stable"
    )
    keys = [column if column != "store_id" else "store_key" for column in RANKED_WITHIN]
    ranks = ordered.groupby(keys, sort=False).cumcount() + 1
    return ranks.reindex(frame.index).astype("Int32")
