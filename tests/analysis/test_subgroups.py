"""Subgroup levels and misclassification rates with Wilson intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from cxrfail.analysis.subgroups import (
    SUBGROUP_RATE_COLUMNS,
    age_bin_labels,
    subgroup_levels,
    subgroup_rates,
    wilson_interval,
)
from cxrfail.errors import CohortError


def test_wilson_known_value_and_statsmodels():
    low, high = wilson_interval(5, 10)
    assert float(low) == pytest.approx(0.2366, abs=5e-5)
    assert float(high) == pytest.approx(0.7634, abs=5e-5)
    k = np.array([0, 1, 7, 30, 100])
    n = np.array([10, 40, 9, 30, 1000])
    low, high = wilson_interval(k, n, confidence=0.9)
    ref_low, ref_high = proportion_confint(k, n, alpha=0.1, method="wilson")
    np.testing.assert_allclose(low, ref_low, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, atol=1e-12)


def test_wilson_empty_n_gives_nan_and_bounds_stay_in_unit_interval():
    low, high = wilson_interval([0, 0, 3], [0, 5, 3])
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert low[1] == 0.0 and high[2] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_age_bins_edges_and_missing():
    ages = pd.Series([0, 39.9, 40, 59.5, 60, 79, 80, 101, np.nan], index=list("abcdefghi"))
    labels = age_bin_labels(ages)
    assert labels.tolist()[:-1] == ["<40", "<40", "40-59", "40-59", "60-79", "60-79", ">=80", ">=80"]
    assert labels.isna().tolist() == [False] * 8 + [True]
    assert list(labels.index) == list("abcdefghi")
    assert age_bin_labels([10, 30, 50], edges=(18, 65)).tolist() == ["<18", "18-64", "18-64"]
    assert age_bin_labels([20.0], edges=(18.5, 40)).tolist() == ["18.5-<40"]


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    index = pd.Index([f"img{i}" for i in range(n)], name="image_id")
    frame = pd.DataFrame({
        "patient_id": [f"p{i // 2}" for i in range(n)],
        "age": rng.uniform(20, 95, n).round(),
        "sex": pd.array(rng.choice(["M", "F"], n), dtype="str"),
        "view": rng.choice(["PA", "AP"], n),
        "Pneumothorax": rng.binomial(1, 0.1, n).astype(float),
        "Support Devices": np.where(np.arange(n) < 50, rng.binomial(1, 0.4, n), np.nan),
        "n_ap": rng.integers(0, 3, n),
        "score": rng.normal(size=n),
    }, index=index)
    frame.loc["img3", "age"] = np.nan
    frame.loc["img4", "sex"] = np.nan
    return frame


def test_subgroup_levels_columns_and_missing(table):
    levels = subgroup_levels(table, extra_columns=("n_ap", "score"))
    assert list(levels.columns) == ["age", "sex", "view", "Pneumothorax", "Support Devices", "n_ap", "score"]
    assert (levels.dtypes == "string").all()
    assert levels.index.equals(table.index)
    assert pd.isna(levels.at["img3", "age"]) and pd.isna(levels.at["img4", "sex"])
    assert set(levels["Pneumothorax"]) == {"present", "absent"}
    assert levels["Support Devices"].notna().sum() == 50
    assert set(levels["n_ap"].dropna()) == {"0", "1", "2"}
    assert levels["score"].nunique() == 4  # quartiles
    assert levels["score"].value_counts().min() == 50
    assert levels["score"].str.match(r"^[\[(]-?\d").all()


def test_finding_subgroups_absent_from_table_are_skipped(table):
    levels = subgroup_levels(table.drop(columns=["Support Devices"]))
    assert "Support Devices" not in levels.columns
    assert "Lung Lesion" not in levels.columns


def test_unknown_extra_column_raises_cohort_error_listing_columns(table):
    with pytest.raises(CohortError, match="'smoker'") as info:
        subgroup_levels(table, extra_columns=("smoker",))
    assert "'view'" in str(info.value)


def test_subgroup_rates_counts_order_and_flags(table):
    levels = subgroup_levels(table)
    wrong = pd.Series(np.random.default_rng(1).binomial(1, 0.3, len(table)), index=table.index)
    rates = subgroup_rates(wrong, levels, min_n=30)
    assert list(rates.columns) == list(SUBGROUP_RATE_COLUMNS)
    assert rates["subgroup"].unique().tolist() == ["age", "sex", "view", "Pneumothorax", "Support Devices"]
    age = rates[rates["subgroup"] == "age"]
    assert age["level"].tolist() == ["<40", "40-59", "60-79", ">=80"]
    assert age["n"].sum() == len(table) - 1  # the missing age is left out of age only
    assert rates.loc[rates["subgroup"] == "sex", "n"].sum() == len(table) - 1
    assert rates.loc[rates["subgroup"] == "view", "n"].sum() == len(table)
    devices = rates[rates["subgroup"] == "Support Devices"]
    assert devices["n"].sum() == 50
    for _, row in rates.iterrows():
        mask = levels[row["subgroup"]] == row["level"]
        assert row["n"] == mask.sum()
        assert row["n_misclassified"] == wrong[mask.fillna(False).to_numpy()].sum()
        assert row["rate"] == pytest.approx(row["n_misclassified"] / row["n"])
        assert row["ci_low"] <= row["rate"] <= row["ci_high"]
        assert row["sufficient"] == (row["n"] >= 30)
    assert not rates["sufficient"].all()  # e.g. Pneumothorax present: shown, flagged


def test_subgroup_rates_on_a_subset_and_degenerate_levels(table):
    levels = subgroup_levels(table)
    test_ids = table.index[:20]
    wrong = pd.Series(0, index=test_ids)  # nobody misclassified: rates 0, finite CIs
    rates = subgroup_rates(wrong, levels, min_n=5)
    assert rates.loc[rates["subgroup"] == "view", "n"].sum() == 20
    assert (rates["rate"] == 0).all() and (rates["ci_low"] == 0).all() and (rates["ci_high"] > 0).all()
    # a level with no rows in the subset does not appear; an empty population gives an empty table
    empty = subgroup_rates(pd.Series([], dtype=int), levels)
    assert empty.empty and list(empty.columns) == list(SUBGROUP_RATE_COLUMNS)
    with pytest.raises(ValueError, match="not in levels"):
        subgroup_rates(pd.Series([1], index=["nope"]), levels)


def test_real_demo_support_devices_count_only_annotated_images():
    from cxrfail.analysis.outcomes import classify
    from cxrfail.analysis.thresholds import choose_threshold
    from cxrfail.demo import demo_prediction_files, load_demo_cohort
    from cxrfail.predictions import load_predictions_csv

    path = next(p for p in demo_prediction_files() if p.stem == "densenet121_jrzech")
    model = load_predictions_csv(path)
    cohort = load_demo_cohort([model])
    table = cohort.table
    y = table["Edema"].astype(int)
    probability = model.probabilities.loc[table.index, "Edema"]
    threshold = choose_threshold(y.to_numpy(), probability.to_numpy()).threshold
    wrong = classify(y, probability, threshold)["misclassified"]
    rates = subgroup_rates(wrong, subgroup_levels(table))
    devices = rates[rates["subgroup"] == "Support Devices"]
    assert devices["level"].tolist() == ["absent", "present"]
    assert devices["n"].sum() == 621
    assert devices.set_index("level").at["present", "n"] == 141
    assert rates.loc[rates["subgroup"] == "view", "n"].sum() == len(table) == 22433
