"""Misclassification regression: recovers known odds ratios, clusters by patient, never crashes; p adjustment."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from cxrfail.analysis.regression import (
    ALL_ROWS_FAMILY,
    PAIR_REGRESSION_COLUMNS,
    REGRESSION_COLUMNS,
    RegressionResult,
    adjust_p_values,
    fit_misclassification_regression,
    fit_pair_regressions,
)


def _simulate(n: int, seed: int, rows_per_patient: int = 1):
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 90, n).round()
    sex = rng.choice(["M", "F"], n, p=[0.6, 0.4])
    view = rng.choice(["PA", "AP"], n, p=[0.55, 0.45])
    finding = rng.binomial(1, 0.2, n).astype(float)
    logit = -1.2 + np.log(2.0) * finding + np.log(1.3) * (age - 50) / 10 + np.log(1.5) * (view == "AP")
    y = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    covariates = pd.DataFrame({"age": age, "sex": pd.array(sex, dtype="str"), "view": view, "Pneumothorax": finding})
    groups = np.arange(n) // rows_per_patient
    return y, covariates, groups


def _se(table: pd.DataFrame, term: str) -> float:
    row = table.set_index("term").loc[term]
    return float(np.log(row["ci_high"] / row["ci_low"]) / (2 * norm.ppf(0.975)))


def test_recovers_known_odds_ratios_with_term_names():
    y, covariates, groups = _simulate(5000, seed=11)
    result = fit_misclassification_regression(y, covariates, groups)
    assert isinstance(result, RegressionResult)
    assert list(result.table.columns) == list(REGRESSION_COLUMNS)
    assert result.table["term"].tolist() == [
        "age (per 10 years)",
        "sex: F vs M",
        "view: AP vs PA",
        "Pneumothorax: present",
    ]
    table = result.table.set_index("term")
    assert table.at["Pneumothorax: present", "ci_low"] < 2.0 < table.at["Pneumothorax: present", "ci_high"]
    assert table.at["age (per 10 years)", "ci_low"] < 1.3 < table.at["age (per 10 years)", "ci_high"]
    assert table.at["view: AP vs PA", "ci_low"] < 1.5 < table.at["view: AP vs PA", "ci_high"]
    assert table.at["sex: F vs M", "ci_low"] < 1.0 < table.at["sex: F vs M", "ci_high"]
    assert result.n == 5000 and result.n_events == y.sum()
    assert result.converged and result.note is None


def test_matches_a_direct_statsmodels_fit():
    y, covariates, groups = _simulate(2000, seed=3, rows_per_patient=2)
    design = sm.add_constant(
        np.column_stack(
            [
                covariates["age"] / 10,
                covariates["sex"] == "F",
                covariates["view"] == "AP",
                covariates["Pneumothorax"],
            ]
        ).astype(float)
    )
    direct = sm.Logit(y, design).fit(disp=False, cov_type="cluster", cov_kwds={"groups": groups})
    result = fit_misclassification_regression(y, covariates, groups)
    np.testing.assert_allclose(result.table["odds_ratio"], np.exp(direct.params[1:]), rtol=1e-8)
    np.testing.assert_allclose(result.table["p_value"], direct.pvalues[1:], rtol=1e-6)


def test_clustered_standard_errors_are_wider_when_rows_repeat_within_patients():
    y, covariates, _ = _simulate(1500, seed=5)
    repeat = np.repeat(np.arange(1500), 3)  # every patient imaged three times, identical rows
    y3, covariates3 = y[repeat], covariates.iloc[repeat].reset_index(drop=True)
    by_patient = fit_misclassification_regression(y3, covariates3, repeat)
    by_row = fit_misclassification_regression(y3, covariates3, np.arange(len(repeat)))
    ratio = _se(by_patient.table, "Pneumothorax: present") / _se(by_row.table, "Pneumothorax: present")
    assert ratio == pytest.approx(np.sqrt(3), rel=0.05)
    np.testing.assert_allclose(by_patient.table["odds_ratio"], by_row.table["odds_ratio"])


def test_missing_rows_dropped_and_constant_covariate_noted():
    y, covariates, groups = _simulate(1000, seed=2)
    covariates = covariates.assign(Edema=0.0)
    covariates.loc[[3, 7], "age"] = np.nan
    covariates.loc[9, "sex"] = np.nan
    result = fit_misclassification_regression(y, covariates, groups)
    assert result.n == 997
    assert "3 row(s) with a missing value" in result.note
    assert "Edema is constant" in result.note
    assert "Edema: present" not in set(result.table["term"])
    assert result.converged


def test_too_few_events_gives_an_empty_table_with_a_note():
    y, covariates, groups = _simulate(300, seed=1)
    y = np.zeros_like(y)
    y[:4] = 1
    result = fit_misclassification_regression(y, covariates, groups, min_events=10)
    assert result.table.empty and list(result.table.columns) == list(REGRESSION_COLUMNS)
    assert not result.converged and "too few events" in result.note
    assert result.n_events == 4


def test_quasi_separation_by_a_finding_is_flagged_not_crashed():
    y, covariates, groups = _simulate(3000, seed=8)
    y = y.copy()
    y[covariates["Pneumothorax"] == 1] = 0  # every image with the finding correctly classified
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_misclassification_regression(y, covariates, groups)
    assert not caught, [str(w.message) for w in caught]
    table = result.table.set_index("term")
    assert table.loc["Pneumothorax: present"].drop("term", errors="ignore").isna().all()
    assert "Pneumothorax: present" in result.note and "separation" in result.note
    assert "tends to zero" in result.note
    # the other terms are the limit of the full fit: the fit on the rows without the finding
    without = covariates["Pneumothorax"] == 0
    reference = fit_misclassification_regression(
        y[without], covariates.loc[without].drop(columns="Pneumothorax"), groups[without]
    )
    np.testing.assert_allclose(table.loc[reference.table["term"], "odds_ratio"], reference.table["odds_ratio"])
    assert result.n == int(without.sum())


def test_separated_categorical_level_and_complete_separation_do_not_crash():
    y, covariates, groups = _simulate(1500, seed=4)
    covariates = covariates.assign(view=np.where(np.arange(1500) % 10 == 0, "LL", covariates["view"]))
    y = y.copy()
    y[covariates["view"] == "LL"] = 1
    result = fit_misclassification_regression(y, covariates, groups)
    assert np.isnan(result.table.set_index("term").at["view: LL vs PA", "odds_ratio"])
    assert "tends to infinite" in result.note
    assert result.table.set_index("term")["odds_ratio"].notna().sum() == 4

    complete = (covariates["age"] > 55).astype(int).to_numpy()  # age alone predicts the outcome
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_misclassification_regression(complete, covariates, groups)
    assert not caught
    assert not result.converged and result.note
    assert result.table["odds_ratio"].isna().all()


def test_collinear_covariate_is_dropped_with_a_note():
    y, covariates, groups = _simulate(800, seed=6)
    result = fit_misclassification_regression(y, covariates.assign(Copy=covariates["Pneumothorax"]), groups)
    assert "collinear" in result.note and "Copy: present" in result.note
    assert "Copy: present" not in set(result.table["term"])
    assert result.converged


def test_adjust_p_values_hand_computed_and_statsmodels_with_nans():
    holm, bh = adjust_p_values([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(holm, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(bh, [0.02, 0.04, 0.04, 0.02])
    p = np.array([0.2, np.nan, 0.001, 0.049, np.nan, 0.7, 0.0101])
    holm, bh = adjust_p_values(p)
    known = ~np.isnan(p)
    assert np.isnan(holm[~known]).all() and np.isnan(bh[~known]).all()
    np.testing.assert_allclose(holm[known], multipletests(p[known], method="holm")[1])
    np.testing.assert_allclose(bh[known], multipletests(p[known], method="fdr_bh")[1])
    empty_holm, empty_bh = adjust_p_values([np.nan, np.nan])
    assert np.isnan(empty_holm).all() and np.isnan(empty_bh).all()


def _pair_rows(seed: int = 0, n: int = 1200):
    y, covariates, groups = _simulate(n, seed, rows_per_patient=2)
    rng = np.random.default_rng(seed + 100)
    rows = covariates.rename(columns={"Pneumothorax": "Pneumothorax"}).assign(
        patient_id=groups.astype(str),
        **{
            "Lung Lesion": rng.binomial(1, 0.1, n).astype(float),
            "Mass": rng.binomial(1, 0.05, n).astype(float),
            "Support Devices": np.where(np.arange(n) < 400, rng.binomial(1, 0.4, n), np.nan),
        },
    )
    rows.index = pd.Index([f"img{i}" for i in range(n)])
    return rows, pd.Series(y, index=rows.index)


def test_pair_regressions_one_family_per_fit_and_sparse_covariate_on_its_rows():
    rows, wrong = _pair_rows()
    table = fit_pair_regressions(rows, wrong, "Edema")
    assert list(table.columns) == list(PAIR_REGRESSION_COLUMNS)
    assert table["family"].unique().tolist() == [ALL_ROWS_FAMILY, "rows with Support Devices known"]
    devices = table[table["family"] == "rows with Support Devices known"]
    assert (devices["n"] == 400).all() and devices["term"].str.startswith("Support Devices").any()
    assert not table.loc[table["family"] == ALL_ROWS_FAMILY, "term"].str.startswith("Support Devices").any()
    # the all-rows fit equals a direct fit with the same covariates
    direct = fit_misclassification_regression(
        wrong.to_numpy(), rows[["age", "sex", "view", "Lung Lesion", "Pneumothorax"]], rows["patient_id"].to_numpy()
    )
    mine = table[table["family"] == ALL_ROWS_FAMILY].set_index("term")
    np.testing.assert_allclose(mine.loc[direct.table["term"], "odds_ratio"], direct.table["odds_ratio"])


def test_covariates_derived_from_the_target_are_absent():
    rows, wrong = _pair_rows(seed=1)
    for target in ("Mass", "Nodule", "Lung Lesion"):
        terms = fit_pair_regressions(rows, wrong, target)["term"].dropna()
        assert not terms.str.startswith("Lung Lesion").any(), target
        assert terms.str.startswith("Pneumothorax").any()
    assert fit_pair_regressions(rows, wrong, "Edema")["term"].dropna().str.startswith("Lung Lesion").any()


def test_q_values_are_adjusted_within_each_fit_and_name_it():
    rows, wrong = _pair_rows(seed=2)
    table = fit_pair_regressions(rows, wrong, "Edema", model="m", rows_name="test split")
    for family, members in table.groupby("family"):
        holm, bh = adjust_p_values(members["p_value"].to_numpy(dtype=float))
        np.testing.assert_allclose(members["q_holm"], holm)
        np.testing.assert_allclose(members["q_bh"], bh)
        assert (members["q_family"] == f"m · Edema · test split, {family}").all()
    # the age term appears in both fits, but once per family; q >= p, Holm >= BH
    age = table[table["term"] == "age (per 10 years)"]
    assert len(age) == 2 and age["q_family"].nunique() == 2
    known = table.dropna(subset=["p_value"])
    assert (known["q_holm"] >= known["q_bh"] - 1e-15).all() and (known["q_bh"] >= known["p_value"] - 1e-15).all()
    # a fit's q-values depend on its own p-values only: the same rows give the same q-values
    again = fit_pair_regressions(rows, wrong, "Edema", model="m", rows_name="test split")
    pd.testing.assert_frame_equal(table, again)


def test_holm_adjusted_matches_statsmodels_with_ties_and_ones():
    from cxrfail.analysis.regression import holm_adjusted

    rng = np.random.default_rng(3)
    for p in (rng.uniform(size=40), np.array([0.01, 0.04, 0.04, 0.5, 1.0, 0.001, 0.04]), np.array([0.2])):
        np.testing.assert_allclose(holm_adjusted(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)
