"""Label audit: exact verdicts on a synthetic cohort with known flipped labels, and the demo's agreement
with Google's expert labels (the 2 x 2 counts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.labels import (
    AGREEMENT_COLUMNS,
    AUDIT_COLUMNS,
    CASE_COLUMNS,
    CORRECT,
    LABEL_ERROR,
    MODEL_ERROR,
    REFERENCE_ONLY_ERROR,
    LabelAudit,
    agreement_counts,
    audit_pair,
    cohen_kappa,
)
from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.runner import run_analysis
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.demo import load_demo_reference_labels


def _synthetic(n_patients: int = 150, images_per_patient: int = 3, seed: int = 0):
    """Outcomes of one model whose cohort labels are the truth with 30 known flips; the reference is the
    truth. The model is wrong on 25 rows with a correct cohort label and on 6 of the flipped rows."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"p{i}" for i in range(n_patients)], images_per_patient)
    n = len(patients)
    truth = rng.binomial(1, 0.3, n)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, 30, replace=False)] = True
    model_wrong = np.zeros(n, dtype=bool)
    model_wrong[rng.choice(np.flatnonzero(~flipped), 25, replace=False)] = True
    model_wrong[rng.choice(np.flatnonzero(flipped), 6, replace=False)] = True
    label = np.where(flipped, 1 - truth, truth)
    prediction = np.where(model_wrong, 1 - truth, truth)
    probability = np.clip(np.where(prediction == 1, 0.7, 0.3) + rng.normal(0, 0.1, n), 0.0, 1.0)
    probability = np.where(prediction == 1, np.maximum(probability, 0.5), np.minimum(probability, 0.49))
    patient_number = np.repeat(np.arange(n_patients), images_per_patient)
    outcomes = pd.DataFrame(
        {
            "model": "m",
            "finding": "Pneumothorax",
            "image_id": [f"img{i}.png" for i in range(n)],
            "patient_id": patients,
            "split": np.where(patient_number % 2 == 0, "test", "calibration"),
            "label": label,
            "probability": probability,
            "threshold": 0.5,
            "prediction": prediction,
            "misclassified": (prediction != label).astype(int),
        }
    )
    reference = pd.Series(truth.astype(float), index=outcomes["image_id"])
    return outcomes, reference, flipped, model_wrong


def test_kappa_and_agreement_counts_match_sklearn():
    rng = np.random.default_rng(1)
    a = rng.binomial(1, 0.3, 500)
    b = np.where(rng.random(500) < 0.2, 1 - a, a)
    counts = agreement_counts(a, b)
    assert counts.tolist() == pd.crosstab(a, b).to_numpy().tolist()
    assert cohen_kappa(counts) == pytest.approx(cohen_kappa_score(a, b))
    assert np.isnan(cohen_kappa([[10, 0], [0, 0]]))  # everything one label: kappa undefined
    assert cohen_kappa([[5, 0], [0, 7]]) == 1.0


def test_audit_finds_exactly_the_flipped_labels():
    outcomes, reference, flipped, model_wrong = _synthetic()
    audit = audit_pair(outcomes, reference, split=None, n_bootstrap=300)
    verdict = audit.cases.set_index("image_id")["verdict"].reindex(outcomes["image_id"]).to_numpy()
    np.testing.assert_array_equal(verdict == LABEL_ERROR, flipped & ~model_wrong)
    np.testing.assert_array_equal(verdict == REFERENCE_ONLY_ERROR, flipped & model_wrong)
    np.testing.assert_array_equal(verdict == MODEL_ERROR, ~flipped & model_wrong)
    np.testing.assert_array_equal(verdict == CORRECT, ~flipped & ~model_wrong)

    row = audit.audit.iloc[0]
    assert list(audit.audit.columns) == list(AUDIT_COLUMNS) and list(audit.cases.columns) == list(CASE_COLUMNS)
    assert (row["n_label_error"], row["n_model_error"], row["n_reference_only_error"]) == (24, 25, 6)
    assert row["n_misclassified"] == 49 == outcomes["misclassified"].sum()
    assert row["label_error_share"] == pytest.approx(24 / 49)
    assert row["model_error_share"] == pytest.approx(25 / 49)
    assert row["label_error_ci_low"] < 24 / 49 < row["label_error_ci_high"]
    assert row["model_error_ci_low"] == pytest.approx(1 - row["label_error_ci_high"])
    assert row["n_label_error_false_positive"] + row["n_label_error_false_negative"] == 24
    truth = reference.to_numpy().astype(int)
    assert row["f1_reference"] == pytest.approx(f1_score(truth, outcomes["prediction"]))
    assert row["f1_cohort"] == pytest.approx(f1_score(outcomes["label"], outcomes["prediction"]))
    assert np.isnan(row["identifier_auroc_cohort"]) and np.isnan(row["flip_delta_f1_cohort"])  # not given

    agreement = audit.agreement.set_index(["cohort_label", "reference_label"])["n"]
    assert list(audit.agreement.columns) == list(AGREEMENT_COLUMNS)
    assert agreement.sum() == len(outcomes) and agreement[(0, 1)] + agreement[(1, 0)] == 30


def test_dropped_replicates_are_counted_beside_the_intervals():
    outcomes, reference, _, _ = _synthetic(n_patients=20, seed=4)
    # the model errs on one image only, of one test patient of 10
    test_rows = np.flatnonzero((outcomes["split"] == "test").to_numpy())
    prediction = outcomes["label"].to_numpy().copy()
    prediction[test_rows[0]] = 1 - prediction[test_rows[0]]
    outcomes = outcomes.assign(prediction=prediction, misclassified=(prediction != outcomes["label"]).astype(int))
    row = audit_pair(outcomes, reference, n_bootstrap=400).audit.iloc[0]
    assert row["n_bootstrap"] == 400
    for prefix in ("auroc_cohort", "auroc_reference"):
        assert 0 <= row[f"{prefix}_n_dropped"] < 400
    assert np.isnan(row["identifier_auroc_cohort_n_dropped"])  # no identifier score: no interval
    # the error shares: resamples without that patient have no misclassified row, (9/10)^10 = 35% of them
    assert row["n_misclassified"] == 1
    assert row["error_share_n_dropped"] == pytest.approx(400 * 0.9**10, abs=40)


def test_verdicts_use_the_split_and_rows_without_reference_are_left_out():
    outcomes, reference, flipped, model_wrong = _synthetic(seed=2)
    partial = reference.copy()
    partial.iloc[:60] = np.nan
    audit = audit_pair(outcomes, partial, n_bootstrap=100)
    row = audit.audit.iloc[0]
    covered = np.arange(len(outcomes)) >= 60
    test = (outcomes["split"] == "test").to_numpy() & covered
    assert row["n_rows"] == covered.sum() and row["n_split_rows"] == test.sum() and row["split"] == "test"
    assert row["n_label_error"] == np.sum(test & flipped & ~model_wrong)
    assert row["n_model_error"] == np.sum(test & ~flipped & model_wrong)
    assert len(audit.cases) == covered.sum()
    with pytest.raises(ValueError, match="no row"):
        audit_pair(outcomes, pd.Series(np.nan, index=outcomes["image_id"]))
    with pytest.raises(ValueError, match="reference must be 0/1"):
        audit_pair(outcomes, reference.replace(1.0, 2.0))


def test_identifier_and_flip_are_rescored_against_the_reference():
    """An identifier that flags exactly the cohort-label misclassifications is perfect against the cohort's
    labels and not against the reference. Flipping the probable label errors "corrects" them by the cohort's
    labels and breaks the model's correct calls by the reference: F1 rises by one and falls by the other."""
    outcomes, reference, flipped, model_wrong = _synthetic(seed=3)
    wrong = outcomes["misclassified"].to_numpy()
    label_errors = (wrong == 1) & flipped
    outcomes["flipped_prediction"] = np.where(label_errors, 1 - outcomes["prediction"], outcomes["prediction"])
    score = pd.Series(wrong.astype(float), index=outcomes["image_id"])
    row = audit_pair(outcomes, reference, identifier_score=score, split=None, n_bootstrap=200).audit.iloc[0]
    assert row["identifier_auroc_cohort"] == 1.0
    assert row["identifier_auroc_reference"] < 0.9
    assert row["n_flips"] == label_errors.sum() == row["n_label_error"]
    assert row["flip_delta_f1_cohort"] > 0 and row["flip_cohort_ci_low"] > 0
    assert row["flip_delta_f1_reference"] < 0 and row["flip_reference_ci_high"] < 0


def _demo_outcomes(cohort, model, findings):
    """The pipeline's operating point (max F1 on the calibration half of patients, seed 0) on the demo."""
    table = cohort.table
    split = patient_split(table["patient_id"].to_numpy(), 0.5, 0)
    frames = []
    for finding in findings:
        y = table[finding].to_numpy(dtype=int)
        probability = model.probabilities.loc[table.index, finding].to_numpy()
        threshold = choose_threshold(y[split == "calibration"], probability[split == "calibration"]).threshold
        outcome = classify(y, probability, threshold)
        frames.append(
            pd.DataFrame(
                {
                    "model": model.name,
                    "finding": finding,
                    "image_id": table.index.to_numpy(),
                    "patient_id": table["patient_id"].to_numpy(),
                    "split": split,
                    "label": y,
                    "probability": probability,
                    "threshold": threshold,
                    "prediction": outcome["prediction"].to_numpy(),
                    "misclassified": outcome["misclassified"].to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_demo_agreement_with_google_expert_labels(demo_cohort, demo_models):
    """The agreement table: on the 935 demo test images (353 patients) with expert labels, NIH Pneumothorax vs
    expert Pneumothorax and NIH Mass or Nodule vs expert Nodule or mass; findings without expert labels are
    skipped."""
    reference = load_demo_reference_labels(demo_cohort)
    model = next(m for m in demo_models if m.name == "densenet121_nih25")
    outcomes = _demo_outcomes(demo_cohort, model, ("Pneumothorax", "Lung Lesion", "Edema"))
    audits = [
        audit_pair(rows, reference.labels(finding, rows["image_id"]), n_bootstrap=200)
        for finding, rows in outcomes.groupby("finding", sort=False)
        if finding in reference.findings
    ]
    audit = LabelAudit(
        *(pd.concat([getattr(a, name) for a in audits], ignore_index=True) for name in ("agreement", "audit", "cases"))
    )
    cells = audit.agreement.set_index(["finding", "cohort_label", "reference_label"])["n"]
    # (NIH no, expert no), (NIH no, expert yes), (NIH yes, expert no), (both yes)
    assert [cells["Pneumothorax", c, r] for c, r in [(0, 0), (0, 1), (1, 0), (1, 1)]] == [854, 24, 35, 22]
    assert [cells["Lung Lesion", c, r] for c, r in [(0, 0), (0, 1), (1, 0), (1, 1)]] == [773, 65, 35, 62]
    assert set(audit.audit["finding"]) == {"Pneumothorax", "Lung Lesion"}
    for row in audit.audit.itertuples():
        assert (row.n_rows, row.n_patients) == (935, 353)
        assert row.n_model_error + row.n_label_error == row.n_misclassified > 0
        assert 0 < row.label_error_ci_low < row.label_error_share < row.label_error_ci_high < 1
        assert 0.5 < row.auroc_cohort < 1 and 0.5 < row.auroc_reference < 1
    assert 0.3 < audit.audit.set_index("finding").loc["Pneumothorax", "kappa"] < 0.5


def test_audit_of_a_pipeline_run(demo_cohort, demo_models, tmp_path):
    """The label audit inside `run_analysis`: the pair's threshold, its identifier's scores (out-of-fold on
    calibration, the fold models' mean on test) and its flipped predictions, re-scored on the expert-labelled
    images."""
    config = AnalysisConfig(
        findings=("Pneumothorax",),
        learners=("logistic",),
        feature_sets=("own+demographics",),
        n_bootstrap=100,
        shap_max_samples=50,
        n_folds=3,
    )
    model = next(m for m in demo_models if m.name == "densenet121_nih25")
    reference = load_demo_reference_labels(demo_cohort)
    result = run_analysis(demo_cohort, [model], config, reference=reference, cache_dir=tmp_path, n_jobs=1)
    row = result.table("label_audit").iloc[0]
    assert row["threshold"] == result.performance.iloc[0]["threshold"]

    outcomes = result.outcomes.set_index("image_id")
    expert = reference.table["Pneumothorax"]
    rows = outcomes.loc[expert.index]
    scores = rows["identifier_probability"]
    reference_wrong = (rows["prediction"] != expert).astype(int)
    assert row["identifier_auroc_cohort"] == pytest.approx(roc_auc_score(rows["misclassified"], scores))
    assert row["identifier_auroc_reference"] == pytest.approx(roc_auc_score(reference_wrong, scores))
    test = rows["split"] == "test"
    assert row["f1_reference"] == pytest.approx(f1_score(expert[test], rows.loc[test, "prediction"]))
    assert row["n_flips"] == int((rows.loc[test, "flipped_prediction"] != rows.loc[test, "prediction"]).sum())
