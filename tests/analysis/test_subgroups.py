"""Subgroup levels and misclassification rates with patient-clustered and Wilson intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from cxrfail.analysis.subgroups import (
    REFERENCE_LEVEL,
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
    rates = subgroup_rates(wrong, levels, table["patient_id"], min_n=30, min_patients=1)
    assert list(rates.columns) == list(SUBGROUP_RATE_COLUMNS)
    references = rates[rates["is_reference"]]
    assert references["level"].eq(REFERENCE_LEVEL).all() and len(references) == 5
    rates = rates[~rates["is_reference"]]
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
        assert row["wilson_low"] <= row["rate"] <= row["wilson_high"]
        assert row["n_patients"] == table.loc[mask.fillna(False).to_numpy(), "patient_id"].nunique()
        assert row["sufficient"] == (row["n"] >= 30)
    assert not rates["sufficient"].all()  # e.g. Pneumothorax present: shown, flagged


def test_subgroup_rates_on_a_subset_and_degenerate_levels(table):
    levels = subgroup_levels(table)
    test_ids = table.index[:20]
    wrong = pd.Series(0, index=test_ids)  # nobody misclassified: rates 0, finite CIs
    patients = table["patient_id"]
    rates = subgroup_rates(wrong, levels, patients, min_n=5)
    assert rates.loc[(rates["subgroup"] == "view") & ~rates["is_reference"], "n"].sum() == 20
    # no misclassification: rate 0; the bootstrap interval collapses to 0, Wilson's stays open above
    assert (rates["rate"] == 0).all() and (rates["ci_high"] == 0).all() and (rates["wilson_high"] > 0).all()
    assert rates["design_effect"].isna().all()
    # a level with no rows in the subset does not appear; an empty population gives an empty table
    empty = subgroup_rates(pd.Series([], dtype=int), levels, patients)
    assert empty.empty and list(empty.columns) == list(SUBGROUP_RATE_COLUMNS)
    with pytest.raises(ValueError, match="not in levels"):
        subgroup_rates(pd.Series([1], index=["nope"]), levels, patients)
    with pytest.raises(ValueError, match="not in patients"):
        subgroup_rates(wrong, levels, patients.iloc[:3])


def _naive_patient_bootstrap(y: np.ndarray, patient: np.ndarray, n_replicates: int, seed: int):
    """Reference: resample patients in a Python loop, gather their rows, take the rate."""
    rng = np.random.default_rng(seed)
    ids = np.unique(patient)
    rows_of = {p: np.flatnonzero(patient == p) for p in ids}
    rates = []
    for _ in range(n_replicates):
        drawn = rng.choice(ids, size=len(ids), replace=True)
        rows = np.concatenate([rows_of[p] for p in drawn])
        rates.append(y[rows].mean())
    return np.asarray(rates)


def test_clustered_interval_matches_a_naive_patient_loop_with_known_design_effect():
    # 300 patients with 8 rows each; all rows of a patient share the outcome: design effect = 8 exactly
    # (in expectation), and the Wilson interval is sqrt(8) = 2.8 times too narrow
    rng = np.random.default_rng(3)
    n_patients, per_patient = 300, 8
    outcome = rng.binomial(1, 0.3, n_patients)
    patient = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    y = np.repeat(outcome, per_patient)
    index = pd.Index([f"img{i}" for i in range(len(y))])
    levels = pd.DataFrame({"everyone": pd.array(["all"] * len(y), dtype="string")}, index=index)
    rates = subgroup_rates(pd.Series(y, index=index), levels, pd.Series(patient, index=index),
                           n_replicates=4000, seed=1)
    row = rates[~rates["is_reference"]].iloc[0]
    naive = _naive_patient_bootstrap(y, patient, 2000, seed=2)
    low, high = np.quantile(naive, [0.025, 0.975])
    assert row["ci_low"] == pytest.approx(low, abs=0.01)
    assert row["ci_high"] == pytest.approx(high, abs=0.01)
    rate = y.mean()
    assert row["design_effect"] == pytest.approx(np.var(naive) / (rate * (1 - rate) / len(y)), rel=0.15)
    assert row["design_effect"] == pytest.approx(per_patient, rel=0.15)
    width_ratio = (row["ci_high"] - row["ci_low"]) / (row["wilson_high"] - row["wilson_low"])
    assert width_ratio == pytest.approx(np.sqrt(per_patient), rel=0.1)
    assert row["n"] == len(y) and row["n_patients"] == n_patients


def test_one_row_per_patient_gives_design_effect_near_one_and_wilson_like_interval():
    rng = np.random.default_rng(4)
    y = rng.binomial(1, 0.2, 2000)
    index = pd.RangeIndex(len(y))
    levels = pd.DataFrame({"g": pd.array(["x"] * len(y), dtype="string")}, index=index)
    row = subgroup_rates(pd.Series(y, index=index), levels, pd.Series(index, index=index)).iloc[1]
    assert row["design_effect"] == pytest.approx(1.0, abs=0.15)
    assert row["ci_low"] == pytest.approx(row["wilson_low"], abs=0.005)
    assert row["ci_high"] == pytest.approx(row["wilson_high"], abs=0.005)


def test_insufficient_counts_patients_as_well_as_rows():
    # 74 rows from 28 patients (the NIH >=80 age group): enough rows, too few patients
    index = pd.RangeIndex(74)
    levels = pd.DataFrame({"age": pd.array([">=80"] * 74, dtype="string")}, index=index)
    patients = pd.Series(np.arange(74) % 28, index=index)
    wrong = pd.Series(np.arange(74) % 3 == 0, index=index).astype(int)
    row = subgroup_rates(wrong, levels, patients, min_n=30, min_patients=30).iloc[1]
    assert row["n"] == 74 and row["n_patients"] == 28 and not row["sufficient"]
    assert subgroup_rates(wrong, levels, patients, min_n=30, min_patients=20).iloc[1]["sufficient"]


def test_subset_reference_row_is_the_subsets_own_rate(table):
    levels = subgroup_levels(table)
    wrong = pd.Series(np.random.default_rng(5).binomial(1, 0.3, len(table)), index=table.index)
    rates = subgroup_rates(wrong, levels, table["patient_id"], not_random_samples=("Support Devices",))
    devices = rates[rates["subgroup"] == "Support Devices"]
    reference = devices[devices["is_reference"]].iloc[0]
    annotated = table["Support Devices"].notna().to_numpy()
    assert reference["rate"] == pytest.approx(wrong[annotated].mean())
    assert reference["n"] == reference["subset_n"] == 50 and reference["population_n"] == len(table)
    assert devices["is_subset"].all() and not devices["random_sample"].any()
    view = rates[rates["subgroup"] == "view"]
    assert view[view["is_reference"]].iloc[0]["rate"] == pytest.approx(wrong.mean())
    assert not view["is_subset"].any() and view["random_sample"].all()
    with pytest.raises(ValueError, match="not_random_samples"):
        subgroup_rates(wrong, levels, table["patient_id"], not_random_samples=("Smoker",))


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
    everything = subgroup_rates(wrong, subgroup_levels(table), table["patient_id"], n_replicates=200,
                                not_random_samples=("Support Devices",))
    reference = everything[everything["is_reference"]].set_index("subgroup")
    annotated = table["Support Devices"].notna()
    assert reference.at["Support Devices", "rate"] == pytest.approx(wrong[annotated].mean())
    assert reference.at["Support Devices", "rate"] != pytest.approx(wrong.mean(), abs=1e-3)
    assert not reference.at["Support Devices", "random_sample"] and reference.at["Support Devices", "is_subset"]
    assert reference.at["view", "rate"] == pytest.approx(wrong.mean()) and not reference.at["view", "is_subset"]
    rates = everything[~everything["is_reference"]]
    devices = rates[rates["subgroup"] == "Support Devices"]
    assert devices["level"].tolist() == ["absent", "present"]
    assert devices["n"].sum() == 621
    assert devices.set_index("level").at["present", "n"] == 141
    assert rates.loc[rates["subgroup"] == "view", "n"].sum() == len(table) == 22433


def test_target_and_labels_derived_from_it_are_not_subgroups(table):
    table = table.assign(**{"Lung Lesion": table["Pneumothorax"], "Mass": table["Pneumothorax"]})
    levels = subgroup_levels(table, extra_columns=("Mass",), target="Mass")
    assert "Lung Lesion" not in levels.columns and "Mass" not in levels.columns
    assert "Pneumothorax" in levels.columns
    assert "Lung Lesion" in subgroup_levels(table, target="Edema").columns
