"""Subgroup levels and misclassification rates with patient-clustered intervals that cover at small n (checked
by a small simulation), and the row-level Wilson interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from cxrfail.analysis.subgroups import (
    EFFECTIVE_N_WILSON,
    PATIENT_CLOPPER_PEARSON,
    REFERENCE_LEVEL,
    SUBGROUP_RATE_COLUMNS,
    age_bin_labels,
    clustered_rate,
    own_design_effect,
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
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "age": rng.uniform(20, 95, n).round(),
            "sex": pd.array(rng.choice(["M", "F"], n), dtype="str"),
            "view": rng.choice(["PA", "AP"], n),
            "Pneumothorax": rng.binomial(1, 0.1, n).astype(float),
            "Support Devices": np.where(np.arange(n) < 50, rng.binomial(1, 0.4, n), np.nan),
            "n_ap": rng.integers(0, 3, n),
            "score": rng.normal(size=n),
        },
        index=index,
    )
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
        assert row["ci_high"] > row["ci_low"] and row["effective_n"] <= row["n"]
        events = min(row["n_misclassified"], row["n"] - row["n_misclassified"])
        assert row["sufficient"] == (row["effective_n"] >= 30 and events >= 5)
    assert not rates["sufficient"].all()  # e.g. Pneumothorax present: shown, flagged


def test_subgroup_rates_on_a_subset_and_degenerate_levels(table):
    levels = subgroup_levels(table)
    test_ids = table.index[:20]
    wrong = pd.Series(0, index=test_ids)  # nobody misclassified: rates 0, finite CIs
    patients = table["patient_id"]
    rates = subgroup_rates(wrong, levels, patients, min_n=5)
    assert rates.loc[(rates["subgroup"] == "view") & ~rates["is_reference"], "n"].sum() == 20
    # no misclassification: rate 0; the interval is the Clopper-Pearson bound on the level's patients, never [0, 0]
    assert (rates["rate"] == 0).all() and (rates["ci_low"] == 0).all() and (rates["wilson_high"] > 0).all()
    expected = 1 - 0.025 ** (1 / rates["n_patients"])
    np.testing.assert_allclose(rates["ci_high"], expected)
    assert (rates["ci_method"] == PATIENT_CLOPPER_PEARSON).all() and not rates["sufficient"].any()
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


def test_design_effect_matches_a_naive_patient_loop_and_widens_the_interval():
    # 300 patients with 8 rows each; all rows of a patient share the outcome: design effect = 8 exactly
    # (in expectation), and the Wilson interval on rows is sqrt(8) = 2.8 times too narrow
    rng = np.random.default_rng(3)
    n_patients, per_patient = 300, 8
    outcome = rng.binomial(1, 0.3, n_patients)
    patient = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    y = np.repeat(outcome, per_patient)
    index = pd.Index([f"img{i}" for i in range(len(y))])
    levels = pd.DataFrame({"everyone": pd.array(["all"] * len(y), dtype="string")}, index=index)
    rates = subgroup_rates(pd.Series(y, index=index), levels, pd.Series(patient, index=index))
    row = rates[~rates["is_reference"]].iloc[0]
    naive = _naive_patient_bootstrap(y, patient, 2000, seed=2)
    rate = y.mean()
    assert row["design_effect"] == pytest.approx(np.var(naive) / (rate * (1 - rate) / len(y)), rel=0.15)
    assert row["design_effect"] == pytest.approx(per_patient, rel=0.01)
    assert row["effective_n"] == pytest.approx(len(y) / row["design_effect"])
    # with this many patients the effective-n interval and the patient bootstrap agree
    low, high = np.quantile(naive, [0.025, 0.975])
    assert row["ci_low"] == pytest.approx(low, abs=0.01) and row["ci_high"] == pytest.approx(high, abs=0.01)
    width_ratio = (row["ci_high"] - row["ci_low"]) / (row["wilson_high"] - row["wilson_low"])
    assert width_ratio == pytest.approx(np.sqrt(per_patient), rel=0.05)
    assert row["n"] == len(y) and row["n_patients"] == n_patients and row["ci_method"] == EFFECTIVE_N_WILSON


def test_one_row_per_patient_gives_design_effect_near_one_and_wilson_like_interval():
    rng = np.random.default_rng(4)
    y = rng.binomial(1, 0.2, 2000)
    index = pd.RangeIndex(len(y))
    levels = pd.DataFrame({"g": pd.array(["x"] * len(y), dtype="string")}, index=index)
    row = subgroup_rates(pd.Series(y, index=index), levels, pd.Series(index, index=index)).iloc[1]
    assert row["design_effect"] == pytest.approx(1.0, abs=0.01)
    assert row["ci_low"] == pytest.approx(row["wilson_low"], abs=0.002)
    assert row["ci_high"] == pytest.approx(row["wilson_high"], abs=0.002)


#: rows per patient of the demo's age >= 80 level on the test split: 28 patients, one owning 22 of 74 rows
OLDEST = np.array([22, 13, 7, 3, 2, 2, 2, 2, 2] + [1] * 19)


def _beta_binomial(sizes: np.ndarray, rate: float, rho: float, n: int, rng) -> np.ndarray:
    """(n, P) events per patient: p_i ~ Beta(mean rate, intra-patient correlation rho), Binomial(m_i, p_i)."""
    scale = (1 - rho) / rho
    return rng.binomial(sizes[None, :], rng.beta(rate * scale, (1 - rate) * scale, size=(n, len(sizes))))


def test_interval_covers_a_small_clustered_level_in_simulation():
    # levels shaped like the demo's age >= 80, rows correlated within patients (rho 0.3: the demo's pairs imply
    # 0.07-0.75): the interval at the population's correlation covers; the level's own design effect alone,
    # noisy on 28 patients, does not
    rng = np.random.default_rng(11)
    for rate in (0.02, 0.10):
        events = _beta_binomial(OLDEST, rate, 0.3, 600, rng)
        pooled = [clustered_rate(e, OLDEST, correlation=0.3) for e in events]
        alone = [clustered_rate(e, OLDEST) for e in events]
        covered = np.mean([r.ci_low <= rate <= r.ci_high and r.ci_high > r.ci_low for r in pooled])
        assert covered >= 0.93, (rate, covered)
        if rate == 0.10:
            assert np.mean([r.ci_low <= rate <= r.ci_high for r in alone]) < 0.91
    # a true rate of 0: every level has no event; its interval contains 0 and is never zero-width
    zero = clustered_rate(np.zeros(len(OLDEST)), OLDEST, correlation=0.3)
    assert zero.ci_low == 0.0 and zero.ci_high == pytest.approx(1 - 0.025 ** (1 / 28))
    assert zero.method == PATIENT_CLOPPER_PEARSON
    # a rate of 1 mirrors it
    full = clustered_rate(OLDEST, OLDEST)
    assert full.ci_high == 1.0 and full.ci_low == pytest.approx(0.025 ** (1 / 28))


def test_zero_event_bound_holds_whatever_the_correlation():
    # all-or-nothing patients (rho ~ 1) at a true rate of 10%: no event happens in 0.9**28 = 5% of levels; the
    # patient bound (12.3%) still covers 10% there, a bound on rows (1 - 0.025**(1/74) = 4.9%) would not
    rng = np.random.default_rng(12)
    events = _beta_binomial(OLDEST, 0.10, 0.999, 4000, rng)
    none = events.sum(axis=1) == 0
    assert none.mean() == pytest.approx(0.9**28, abs=0.015)
    assert all(clustered_rate(e, OLDEST).ci_high >= 0.10 for e in events[none][:50])


def test_own_design_effect_is_the_linearised_variance_ratio():
    events, rows = np.array([0, 1, 3, 0, 2]), np.array([1, 2, 4, 1, 3])
    rate = events.sum() / rows.sum()
    variance = 5 / 4 * np.sum((events - rate * rows) ** 2) / rows.sum() ** 2
    assert own_design_effect(events, rows) == pytest.approx(variance / (rate * (1 - rate) / rows.sum()))
    assert np.isnan(own_design_effect([0, 0], [1, 2])) and np.isnan(own_design_effect([1], [3]))
    with pytest.raises(ValueError, match="events <= rows"):
        clustered_rate([3], [2])
    with pytest.raises(ValueError, match="correlation"):
        clustered_rate([1], [2], correlation=1.5)


def test_insufficient_counts_effective_rows_patients_and_events():
    # the demo's age >= 80 shape: 74 rows from 28 patients, one of them owning 22 rows
    index = pd.RangeIndex(74)
    levels = pd.DataFrame({"age": pd.array([">=80"] * 74, dtype="string")}, index=index)
    patients = pd.Series(np.repeat(np.arange(28), OLDEST), index=index)
    nobody = pd.Series(0, index=index)
    row = subgroup_rates(nobody, levels, patients, min_n=30, min_patients=10).iloc[1]
    assert row["n"] == 74 and row["n_patients"] == 28 and not row["sufficient"]  # no events
    spread = pd.Series((np.arange(74) % 4 == 0).astype(int), index=index)  # 19 errors, spread over patients
    row = subgroup_rates(spread, levels, patients, min_n=30, min_patients=10).iloc[1]
    assert row["sufficient"] and row["effective_n"] >= 30
    assert not subgroup_rates(spread, levels, patients, min_n=30, min_patients=30).iloc[1]["sufficient"]
    assert not subgroup_rates(spread, levels, patients, min_n=30, min_events=20).iloc[1]["sufficient"]
    # the errors of the patient with 22 rows: a design effect far above 1, too few effective rows
    big = pd.Series((patients == 0).astype(int), index=index)
    row = subgroup_rates(big, levels, patients, min_n=30, min_patients=10).iloc[1]
    assert row["design_effect"] > 5 and row["effective_n"] < 30 and not row["sufficient"]


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
    everything = subgroup_rates(
        wrong, subgroup_levels(table), table["patient_id"], not_random_samples=("Support Devices",)
    )
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
