"""What to offer each age group: lift, its interval, the correction, the ranking and the window,
through the real SQL in DuckDB on generated days."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agebatch.config import age_group_labels, default_age_bounds
from agebatch.predict.card import ModelCard
from agebatch.predict.model import bundled_model_path
from agebatch.publish import publish_day
from agebatch.sample import DEMO_PREFERENCES, NoPhotos, confused_ages, make_sample_day
from agebatch.schema import conform
from agebatch.transform.affinity import (
    DAILY,
    REPORT,
    AffinityInputs,
    add_affinity,
    affinity_history,
    affinity_of,
    design_effect,
    offer_ranks,
    wilson,
)
from agebatch.transform.shares import corrected_shares, group_confusion, group_of
from tests.conftest import DAY

BOUNDS = default_age_bounds()
GROUPS = tuple(label for label, *_ in age_group_labels(BOUNDS))
CARD_CONFUSION = group_confusion(ModelCard.read(bundled_model_path()).age_confusion.counts, BOUNDS)
CATALOG = pd.DataFrame(
    {
        "sku": ["P1", "P2", "P3", "F1", "F2", "X1", "Z1"],
        "category": ["pantry", "pantry", "pantry", "fresh", "fresh", "extra", "other"],
        "age_restricted": [False] * 7,
    }
)


def _inputs(**changes: object) -> AffinityInputs:
    return dataclasses.replace(AffinityInputs(groups=GROUPS), **changes)


def _day(counts: dict[str, dict[str, int]], receipts: int = 100, store: str = "S1"):
    """A noise-free day: `receipts` receipts per age group at one store; the first k receipts
    of group g buy sku s, k = counts[g][s] (groups and skus not named: the base of 10, F2 0);
    a receipt that buys none of them buys Z1. Returns (lines, receipt_ages)."""
    base = {"P1": 10, "P2": 10, "P3": 10, "F1": 10, "F2": 0, "X1": 10}
    lines, ages = [], []
    for group in GROUPS:
        wanted = {**base, **counts.get(group, {})}
        for j in range(receipts):
            receipt = f"{store}-{group}-{j}"
            ages.append((receipt, store, group, "matched"))
            skus = [sku for sku, k in wanted.items() if j < k] or ["Z1"]
            lines.extend((receipt, sku, 1.0) for sku in skus)
    lines_df = pd.DataFrame(lines, columns=["receipt_id", "sku", "quantity"])
    ages_df = pd.DataFrame(ages, columns=["receipt_id", "store_id", "age_group", "status"])
    return lines_df, ages_df


def _with_unseen(lines: pd.DataFrame, ages: pd.DataFrame):
    """Add a receipt without an age that buys P1 a lot, and an 18-24 receipt that only returns
    X1: neither may count as buying anything."""
    extra_lines = pd.DataFrame(
        [("nophoto", "P1", 5.0), ("return", "X1", -1.0)], columns=lines.columns
    )
    extra_ages = pd.DataFrame(
        [("nophoto", "S1", None, "no_photo"), ("return", "S1", "18-24", "matched")],
        columns=ages.columns,
    )
    return pd.concat([lines, extra_lines]), pd.concat([ages, extra_ages])


def _offers(table: pa.Table, level: str = "store") -> dict[tuple[str, str], list[str]]:
    """The ranked items of each (group, kind) list of one level, best first."""
    frame = table.to_pandas()
    frame = frame[(frame["level"] == level) & frame["offer_rank"].notna()]
    frame = frame.sort_values(["age_group", "item_kind", "offer_rank"])
    return {key: list(rows["item"]) for key, rows in frame.groupby(["age_group", "item_kind"])}


PLANTED = {
    "18-24": {"P1": 40, "P2": 30, "F1": 25},
    "65+": {"X1": 35},
    "45-54": {"F2": 19},  # bought by no one else: a lift of 7, but under the 20 receipts
}


def test_noise_free_day_ranks_exactly_the_planted_items() -> None:
    lines, ages = _with_unseen(*_day(PLANTED))
    tables = affinity_of(lines, CATALOG, ages, DAY, _inputs())
    daily = conform(DAILY, tables[DAILY], GROUPS).to_pandas().set_index(["age_group", "item"])
    assert daily.loc[("18-24", "all"), "receipts"] == 101  # the returns-only receipt has an age
    assert daily.loc[("18-24", "X1"), "receipts"] == 10  # … but bought no X1
    assert daily.loc[("18-24", "pantry"), "receipts"] == 40  # receipts, not lines
    assert daily.loc[("18-24", "P1"), "receipts"] == 40  # the no_photo receipt is not there

    table = conform(REPORT, tables[REPORT], GROUPS)
    assert (
        _offers(table)
        == _offers(table, "chain")
        == {
            ("18-24", "category"): ["pantry", "fresh"],
            ("18-24", "sku"): ["P1", "P2", "F1"],
            ("65+", "category"): ["extra"],
            ("65+", "sku"): ["X1"],
        }
    )
    rows = table.to_pandas().set_index(["level", "age_group", "item"]).loc["store"]
    # lift = (the group's receipts / all buyers) / (the group's receipts / all receipts)
    p1 = rows.loc[("18-24", "P1")]
    assert (p1["receipts"], p1["buyer_receipts"], p1["group_receipts"]) == (40, 100, 101)
    assert p1["all_receipts"] == 701
    assert p1["lift"] == pytest.approx((40 / 100) / (101 / 701))
    low, high = wilson(np.array([40.0]), np.array([100.0]), 0.95)
    assert p1["lift_low"] == pytest.approx(low[0] / (101 / 701))
    assert p1["lift_high"] == pytest.approx(high[0] / (101 / 701))
    f2 = rows.loc[("45-54", "F2")]
    assert f2["lift"] == pytest.approx(701 / 100) and f2["lift_low"] > 1
    assert pd.isna(f2["offer_rank"])  # 19 receipts: never ranked
    assert (rows["days_covered"] == 1).all() and (rows["window_days"] == 28).all()
    assert rows["method"].iloc[0] == (
        "Wilson 95% interval of the group's share of buyers; offers need >= 20 receipts; "
        "correction: none"
    )


def test_the_chain_sums_its_stores() -> None:
    one, two = _day(PLANTED, store="S1"), _day({"25-34": {"P2": 60}}, receipts=50, store="S2")
    lines, ages = (pd.concat(parts) for parts in zip(one, two, strict=True))
    table = affinity_of(lines, CATALOG, ages, DAY, _inputs())[REPORT].to_pandas()
    stores, chain = (table[table["level"] == level] for level in ("store", "chain"))
    key = ["age_group", "item_kind", "item"]
    summed = stores.groupby(key)["receipts"].sum()
    assert chain.set_index(key)["receipts"].sort_index().equals(summed.sort_index())
    per_store = stores.drop_duplicates(["store_id", "age_group"])
    group_totals = per_store.groupby("age_group")["group_receipts"].sum()
    assert chain.groupby("age_group")["group_receipts"].max().equals(group_totals)
    assert (chain["all_receipts"] == 700 + 350).all()
    # 25-34 bought P2 on 10 of 100 receipts at S1 and 50 of 50 at S2; 200 receipts bought it.
    p2 = table[(table["level"] == "chain") & (table["item"] == "P2")].set_index("age_group")
    assert p2.loc["25-34", ["receipts", "buyer_receipts", "group_receipts"]].tolist() == [
        60,
        200,
        150,
    ]
    assert p2.loc["25-34", "lift"] == pytest.approx((60 / 200) / (150 / 1050))


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson(np.array([5.0, 0.0, 10.0]), np.array([10.0, 10.0, 10.0]), 0.95)
    np.testing.assert_allclose(low, [0.2366, 0.0, 0.7225], atol=1e-4)
    np.testing.assert_allclose(high, [0.7634, 0.2775, 1.0], atol=1e-4)


def test_the_2d_em_corrects_each_row_as_the_1d_one_does() -> None:
    rows = np.array([[5.0, 30, 40, 10, 5, 5, 5], [0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 9]])
    batched = corrected_shares(rows, CARD_CONFUSION)
    for row, corrected in zip(rows, batched, strict=True):
        np.testing.assert_allclose(corrected, corrected_shares(row, CARD_CONFUSION), atol=1e-12)


def test_design_effect_is_one_without_confusion_and_grows_with_it() -> None:
    counts = np.array([[10.0, 40, 30, 20, 10, 5, 5]])
    shares, effect = design_effect(counts, np.eye(7))
    np.testing.assert_allclose(shares, counts / counts.sum())
    np.testing.assert_allclose(effect, 1.0, atol=1e-4)
    shares, effect = design_effect(counts * 10, CARD_CONFUSION)
    assert effect[0, 1] > 1.5  # 18-24, read as 25-34 more often than not: a noisier share
    # The delta method agrees with the spread of the corrected shares of simulated counts.
    draws = np.random.default_rng(1).multinomial(1300, counts[0] / counts.sum(), size=4000)
    spread = corrected_shares(draws, CARD_CONFUSION).var(axis=0)
    binomial = shares[0] * (1 - shares[0]) / 1300
    np.testing.assert_allclose(effect[0, :6], spread[:6] / binomial[:6], rtol=0.2)


def _null_counts(rng: np.random.Generator, confusion: np.ndarray, stores: int = 400) -> pa.Table:
    """The window's counts of stores where buying has nothing to do with age: 4 items per store
    bought by 8-30% of 1,500 shoppers whatever their age, whose (true) groups are read through
    the confusion."""
    true_mix = np.array([0.08, 0.2, 0.25, 0.17, 0.12, 0.1, 0.08])
    rows = []
    for store in range(stores):
        true = rng.choice(7, size=1500, p=true_mix)
        read = np.array([rng.choice(7, p=confusion[t]) for t in true])
        shoppers = np.bincount(read, minlength=7)
        for item in range(4):
            bought = rng.random(1500) < rng.uniform(0.08, 0.3)
            buyers = np.bincount(read[bought], minlength=7)
            for g in np.flatnonzero(buyers):
                rows.append(
                    {
                        "day": DAY,
                        "level": "store",
                        "store_id": f"S{store}",
                        "age_group": GROUPS[g],
                        "item_kind": "sku",
                        "item": f"I{item}",
                        "category": "c",
                        "receipts": int(buyers[g]),
                        "group_receipts": int(shoppers[g]),
                        "buyer_receipts": int(buyers.sum()),
                        "all_receipts": 1500,
                        "days_covered": 1,
                        "window_days": 1,
                    }
                )
    return pa.Table.from_pylist(rows)


@pytest.mark.parametrize("corrected", [False, True], ids=["raw", "corrected"])
def test_intervals_cover_a_lift_of_one_where_age_tells_nothing(corrected: bool) -> None:
    rng = np.random.default_rng(0)
    counts = _null_counts(rng, CARD_CONFUSION)
    inputs = _inputs(confusion=CARD_CONFUSION if corrected else None, min_receipts=20)
    table = add_affinity(counts, inputs).to_pandas()
    weighed = table[table["receipts"] >= 20]
    covered = ((weighed["lift_low"] <= 1) & (weighed["lift_high"] >= 1)).mean()
    false_offers = weighed["offer_rank"].notna().mean()
    assert len(weighed) > 5000
    assert covered >= 0.94, covered
    assert false_offers <= 0.035, false_offers  # one-sided: 2.5% is the nominal rate


# Small generated days of receipts: (store, group, skus bought); every example goes through
# the SQL and the Python, with and without the correction.
receipts_strategy = st.lists(
    st.tuples(
        st.sampled_from(["S1", "S2"]),
        st.sampled_from(GROUPS),
        st.sets(st.sampled_from(list(CATALOG["sku"])), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=150,
)


def _from_receipts(receipts: list[tuple[str, str, set[str]]]):
    lines = [(f"r{i}", sku, 1.0) for i, (_, _, skus) in enumerate(receipts) for sku in sorted(skus)]
    ages = [(f"r{i}", store, group, "matched") for i, (store, group, _) in enumerate(receipts)]
    return (
        pd.DataFrame(lines, columns=["receipt_id", "sku", "quantity"]),
        pd.DataFrame(ages, columns=["receipt_id", "store_id", "age_group", "status"]),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    receipts=receipts_strategy,
    min_receipts=st.integers(1, 12),
    corrected=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_offers_obey_their_rules_whatever_the_day(
    receipts: list, min_receipts: int, corrected: bool, order
) -> None:
    lines, ages = _from_receipts(receipts)
    inputs = _inputs(min_receipts=min_receipts, confusion=CARD_CONFUSION if corrected else None)
    counts_table = affinity_of(lines, CATALOG, ages, DAY, dataclasses.replace(inputs))
    table = conform(REPORT, counts_table[REPORT], GROUPS).to_pandas()
    # the interval holds the estimate; lift is the ratio of the two shares
    assert (table["lift_low"] <= table["lift"] + 1e-9).all()
    assert (table["lift"] <= table["lift_high"] + 1e-9).all()
    np.testing.assert_allclose(table["lift"], table["buyer_share"] / table["shopper_share"])
    if not corrected:
        np.testing.assert_allclose(
            table["buyer_share"], table["receipts"] / table["buyer_receipts"]
        )
    # nothing is ranked under the minimum, or with an interval reaching 1; ranks are 1..k
    ranked = table[table["offer_rank"].notna()]
    assert (ranked["receipts"] >= min_receipts).all() and (ranked["lift_low"] > 1).all()
    keys = ["level", ranked["store_id"].fillna("-"), "age_group", "item_kind"]
    for _, one_list in ranked.groupby(keys):
        assert sorted(one_list["offer_rank"]) == list(range(1, len(one_list) + 1))
        best_first = one_list.sort_values("offer_rank")["lift_low"].to_numpy()
        assert (np.diff(best_first) <= 1e-12).all()

    # the same counts in another row order give the same table
    counts = _counts_of(lines, ages, inputs)
    shuffled = counts.take(order.sample(range(counts.num_rows), counts.num_rows))
    key = ["level", "store_id", "age_group", "item_kind", "item"]
    again = add_affinity(shuffled, inputs).to_pandas()
    first = add_affinity(counts, inputs).to_pandas()
    pd.testing.assert_frame_equal(_sorted(again, key), _sorted(first, key))


def test_a_small_sample_with_a_high_lift_ranks_below_a_sure_one() -> None:
    frame = pd.DataFrame(
        {
            "level": "store",
            "store_id": "S1",
            "age_group": "18-24",
            "item_kind": "sku",
            "item": ["small", "sure", "tied", "thin"],
            "receipts": [21, 400, 400, 19],
            "lift": [4.0, 2.5, 2.6, 9.0],
            "lift_low": [1.2, 2.2, 2.2, 5.0],
        }
    )
    assert offer_ranks(frame, 20).tolist() == [3, 2, 1, pd.NA]


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["S1", "S2", None]),
            st.sampled_from(GROUPS[:3]),
            st.sampled_from(["category", "sku"]),
            st.floats(0.2, 5),
            st.floats(0, 2),
            st.integers(0, 60),
        ),
        max_size=40,
    ),
    min_receipts=st.integers(1, 40),
    order=st.randoms(use_true_random=False),
)
def test_ranks_are_the_order_of_the_lower_ends_whatever_the_row_order(
    rows: list, min_receipts: int, order
) -> None:
    frame = pd.DataFrame(
        [
            {
                "level": "chain" if store is None else "store",
                "store_id": store,
                "age_group": group,
                "item_kind": kind,
                "item": f"i{i}",
                "receipts": receipts,
                "lift": lift,
                "lift_low": lift * share,
            }
            for i, (store, group, kind, lift, share, receipts) in enumerate(rows)
        ],
        columns=[
            "level",
            "store_id",
            "age_group",
            "item_kind",
            "item",
            "receipts",
            "lift",
            "lift_low",
        ],
    )
    ranks = offer_ranks(frame, min_receipts)
    eligible = (frame["receipts"] >= min_receipts) & (frame["lift_low"] > 1)
    assert ranks.notna().equals(eligible)
    keys = [frame["level"], frame["store_id"].fillna("-"), frame["age_group"], frame["item_kind"]]
    for _, one in frame[eligible].groupby([k[eligible] for k in keys]):
        expected = one.sort_values(["lift_low", "lift", "item"], ascending=[False, False, True])
        assert ranks[expected.index].tolist() == list(range(1, len(one) + 1))
    shuffled = frame.sample(frac=1, random_state=order.randint(0, 2**31))
    assert offer_ranks(shuffled, min_receipts).reindex(frame.index).equals(ranks)


def _counts_of(lines: pd.DataFrame, ages: pd.DataFrame, inputs: AffinityInputs) -> pa.Table:
    """The window's counts before add_affinity, from the SQL."""
    from agebatch.duck import connect
    from agebatch.transform.models import MODELS
    from agebatch.transform.runner import run_models

    groups = pa.table({"label": list(inputs.groups), "low_years": range(len(inputs.groups))})
    tables = {"lines": lines, "catalog": CATALOG, "receipt_ages": ages, "age_groups": groups}
    with connect() as con:
        for name, table in (*tables.items(), ("affinity_history", inputs.history)):
            con.register(name, table)
        models = [m for m in MODELS if m.name in ("small_cells", DAILY, REPORT)]
        params = {"day": DAY, "k": 1, "affinity_days": 28, "days_covered": 1}
        run_models(con, models, [*tables, "affinity_history"], params)
        return con.table(REPORT).fetch_arrow_table()


def _sorted(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return (
        frame.assign(store_id=frame["store_id"].fillna("-")).sort_values(key).reset_index(drop=True)
    )


def test_identity_confusion_changes_nothing() -> None:
    lines, ages = _day(PLANTED)
    raw = affinity_of(lines, CATALOG, ages, DAY, _inputs())[REPORT].to_pandas()
    same = affinity_of(lines, CATALOG, ages, DAY, _inputs(confusion=np.eye(7)))[REPORT]
    same = same.to_pandas()
    for column in ("buyer_share", "shopper_share", "lift", "lift_low", "lift_high"):
        np.testing.assert_allclose(same[column], raw[column], rtol=1e-5)
    assert same["offer_rank"].equals(raw["offer_rank"])


def _publish_counts(out: Path, day: dt.date, counts: dict, groups=GROUPS) -> None:
    lines, ages = _day(counts)
    daily = affinity_of(lines, CATALOG, ages, day, _inputs(groups=groups))[DAILY]
    publish_day(out, day, {DAILY: daily}, lambda: pa.table({"run_id": ["r"]}), f"r{day:%m%d}")


def test_window_sums_only_published_days_and_says_how_many(tmp_path: Path) -> None:
    for back in (1, 3, 27):  # inside the 28-day window; day - 2 was never published
        _publish_counts(tmp_path, DAY - dt.timedelta(days=back), PLANTED)
    _publish_counts(tmp_path, DAY - dt.timedelta(days=28), {"65+": {"P1": 90}})  # too old
    _publish_counts(tmp_path, DAY + dt.timedelta(days=1), {"65+": {"P1": 90}})  # later
    history, covered = affinity_history(tmp_path, DAY, 28, GROUPS)
    assert covered == 4  # three published days and the run's own
    assert sorted(set(history.column("day").to_pylist())) == [
        DAY - dt.timedelta(days=back) for back in (27, 3, 1)
    ]
    lines, ages = _day(PLANTED)
    inputs = _inputs(history=history, days_covered=covered)
    table = affinity_of(lines, CATALOG, ages, DAY, inputs)[REPORT].to_pandas()
    rows = table[table["level"] == "store"].set_index(["age_group", "item"])
    assert rows.loc[("18-24", "P1"), "receipts"] == 4 * 40
    assert rows.loc[("65+", "P1"), "receipts"] == 4 * 10  # not the 90 of the days outside
    assert rows.loc[("65+", "P1"), "group_receipts"] == 4 * 100
    assert (table["days_covered"] == 4).all()

    # The SQL keeps to the window too, whatever days it is handed.
    everything, _ = affinity_history(tmp_path, DAY + dt.timedelta(days=2), 40, GROUPS)
    handed = set(everything.column("day").to_pylist())
    assert {DAY - dt.timedelta(days=28), DAY + dt.timedelta(days=1)} <= handed
    inputs = _inputs(history=everything, days_covered=covered)
    again = affinity_of(lines, CATALOG, ages, DAY, inputs)[REPORT].to_pandas()
    pd.testing.assert_frame_equal(again, table)

    # A shorter window leaves the days before it out.
    history, covered = affinity_history(tmp_path, DAY, 7, GROUPS)
    assert covered == 3 and set(history.column("day").to_pylist()) == {
        DAY - dt.timedelta(days=1),
        DAY - dt.timedelta(days=3),
    }


def test_a_day_published_with_other_age_groups_is_left_out(tmp_path: Path) -> None:
    other = ("<21", "21+")
    lines, ages = _day({})
    ages["age_group"] = np.where(ages["age_group"].isin(["<18", "18-24"]), "<21", "21+")
    daily = affinity_of(lines, CATALOG, ages, DAY, _inputs(groups=other))[DAILY]
    earlier = DAY - dt.timedelta(days=1)
    publish_day(tmp_path, earlier, {DAILY: daily}, lambda: pa.table({"run_id": ["r"]}), "r1")
    history, covered = affinity_history(tmp_path, DAY, 28, GROUPS)
    assert history.num_rows == 0 and covered == 1


def _realistic_ranks(root: Path, seed: int, preferences: tuple) -> dict[str, dict[str, float]]:
    """Rank of each demo plant's item in its group's list, per store and for the chain (99: not
    an offer), on a generated day of 3,000 receipts at 3 stores whose ages are read through the
    bundled card's confusion (true year -> a predicted year, as the model read real faces), with
    the run's default settings (the correction included)."""
    sample = make_sample_day(
        root / str(seed), DAY, receipts=3000, seed=seed, writer=NoPhotos(), preferences=preferences
    )
    truth = sample.truth
    read = confused_ages(
        truth["true_age"].to_numpy(float),
        ModelCard.read(bundled_model_path()).age_confusion.counts,
        np.random.default_rng(seed),
    )
    ages = pd.DataFrame(
        {
            "receipt_id": truth["receipt_id"],
            "store_id": truth["store_id"],
            "age_group": group_of(read, BOUNDS),
            "status": truth["status"],
        }
    )
    lines = pd.read_parquet(sample.transactions / f"{DAY}.parquet")
    inputs = _inputs(confusion=CARD_CONFUSION)
    frame = affinity_of(lines, pd.read_csv(sample.catalog), ages, DAY, inputs)[REPORT].to_pandas()
    ranks: dict[str, dict[str, float]] = {}
    for preference in DEMO_PREFERENCES:
        group = group_of([preference.low], BOUNDS)[0]
        rows = frame[(frame["item"] == preference.item) & (frame["age_group"] == group)]
        where = rows["store_id"].fillna("chain")
        ranks[f"{group} {preference.item}"] = dict(
            zip(where, rows["offer_rank"].astype("Float64").fillna(99), strict=True)
        )
    return ranks


@pytest.mark.slow
def test_a_realistic_day_puts_the_planted_items_in_their_groups_top_3(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("realistic")
    planted = [_realistic_ranks(root / "planted", seed, DEMO_PREFERENCES) for seed in range(10)]
    control = [_realistic_ranks(root / "control", seed, ()) for seed in range(10)]

    def top3(runs: list, item: str, where: str) -> int:
        return sum(run[item].get(where, 99) <= 3 for run in runs)

    # 65+ are read best of the adult groups: found at every store and for the chain.
    for where in ("S01", "S02", "S03", "chain"):
        assert top3(planted, "65+ BAK002", where) >= 9, where
        assert top3(control, "65+ BAK002", where) <= 2, where  # without the plant: rarely
    # 35-44 are read as 25-34 half the time: found for the chain, where the receipts are.
    assert top3(planted, "35-44 HOU001", "chain") >= 9
    assert top3(control, "35-44 HOU001", "chain") <= 2


def test_a_day_withheld_in_the_window_withholds_the_window_sums() -> None:
    """k = 5 over two days: yesterday every count is published; today 65+ has 2 receipts
    (withheld, with a second group). Today's window may not give today's 65+ counts back as
    window minus yesterday: its sums are null, and so are the item's buyers and the scope's
    receipts; a group published both days keeps its exact window count and no lift is made
    from a withheld figure."""
    yesterday = DAY - dt.timedelta(days=1)
    lines, ages = _day({}, receipts=20)
    first = affinity_of(lines, CATALOG, ages, yesterday, _inputs(), k=5)[DAILY]
    assert not any(first["withheld"].to_pylist())
    keep = ~(
        (ages["age_group"] == "65+")
        & (ages["receipt_id"].str.rsplit("-", n=1).str[1].astype(int) >= 2)
    )
    ages2 = ages[keep]
    lines2 = lines[lines["receipt_id"].isin(ages2["receipt_id"])]
    tables = affinity_of(lines2, CATALOG, ages2, DAY, _inputs(history=first, days_covered=2), k=5)
    daily = tables[DAILY].to_pandas()
    held = daily[daily["withheld"]]
    assert "65+" in set(held["age_group"]) and held["receipts"].isna().all()
    assert len(set(held.loc[held["item_kind"] == "all", "age_group"])) >= 2  # a second group
    window = tables[REPORT].to_pandas()
    store = window[window["level"] == "store"]
    old = store[store["age_group"] == "65+"]
    assert old["receipts"].isna().all() and old["group_receipts"].isna().all()
    assert store["all_receipts"].isna().all() and store["buyer_receipts"].isna().all()
    assert store["offer_rank"].isna().all() and store["lift"].isna().all()
    both = store[(store["age_group"] == "25-34") & (store["item"] == "P1")]
    assert both["receipts"].tolist() == [20]  # 10 a day, both days published
