"""Corrective flipping: tau on calibration, paired bootstrap on test, the sweep, and the demo end to end."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from cxrfail.analysis.flip import (
    CURVE_COLUMNS,
    MIN_CALIBRATION_FLIPS,
    NEVER_FLIP,
    choose_flip_threshold,
    evaluate_flip,
    flip_curve,
    flip_f1_by_tau,
    flip_predictions,
    run_flipping,
)
from cxrfail.analysis.identifiers import build_features, evaluate_identifier
from cxrfail.analysis.identifiers.learners import assigned_fold
from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.thresholds import choose_threshold


def _simulated(n_patients=600, rows_per_patient=3, seed=0):
    """Labels, predictions of a mediocre model, patients."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rows_per_patient).astype(str)
    n = len(patients)
    y = (rng.random(n) < 0.2).astype(int)
    prediction = np.where(rng.random(n) < 0.25, 1 - y, y)  # 25% wrong
    return y, prediction, patients, rng


def test_flip_predictions():
    flipped = flip_predictions([0, 1, 1, 0], [0.9, 0.2, 0.6, 0.5], 0.5)
    np.testing.assert_array_equal(flipped, [1, 1, 0, 1])
    np.testing.assert_array_equal(flip_predictions([0, 1], [1.0, 1.0], NEVER_FLIP), [0, 1])


def test_flip_f1_by_tau_matches_brute_force():
    y, prediction, _, rng = _simulated(100)
    p = np.round(rng.random(len(y)), 2)  # ties on purpose
    taus = np.r_[0.0, np.sort(rng.random(20)), 0.5, 1.0, NEVER_FLIP]
    n_flips, f1 = flip_f1_by_tau(y, prediction, p, taus)
    for tau, k, value in zip(taus, n_flips, f1):
        after = flip_predictions(prediction, p, tau)
        assert k == np.sum(p >= tau)
        assert value == pytest.approx(f1_score(y, after, zero_division=0.0), abs=1e-12)


def test_oracle_identifier_corrects_every_error():
    y, prediction, patients, _ = _simulated()
    misclassified = (prediction != y).astype(float)
    calibration = np.arange(len(y)) < len(y) // 2
    tau = choose_flip_threshold(misclassified[calibration], y[calibration], prediction[calibration])
    assert 0.0 < tau <= 1.0
    test = ~calibration
    evaluation = evaluate_flip(y[test], prediction[test], misclassified[test], patients[test], tau, chosen_tau=tau)
    assert not evaluation.exploratory
    assert evaluation.f1_after == 1.0 and evaluation.precision_after == 1.0 and evaluation.recall_after == 1.0
    assert evaluation.n_flips == misclassified[test].sum()
    assert evaluation.ci_low > 0 and evaluation.improved
    assert evaluation.delta_f1 == pytest.approx(1.0 - evaluation.f1_before)


def test_random_identifier_is_not_an_improvement():
    for seed in range(3):
        y, prediction, patients, rng = _simulated(seed=seed)
        noise = rng.random(len(y))
        calibration = rng.random(len(y)) < 0.5  # row-level here is fine: the identifier is pure noise
        tau = choose_flip_threshold(noise[calibration], y[calibration], prediction[calibration])
        evaluation = evaluate_flip(
            y[~calibration], prediction[~calibration], noise[~calibration], patients[~calibration], tau, chosen_tau=tau
        )
        assert tau == NEVER_FLIP or evaluation.ci_low <= 0.0 <= evaluation.ci_high or evaluation.ci_high < 0
        assert not evaluation.improved


def test_flipping_that_only_hurts_is_never_chosen():
    y, prediction, _, _ = _simulated()
    correct = (prediction == y).astype(float)  # an identifier pointing at the *correct* rows
    assert choose_flip_threshold(correct, y, prediction) == NEVER_FLIP
    # ties in F1 go to the highest tau: no row reaches 0.5 or 0.9, so all three candidates flip nothing
    assert choose_flip_threshold(np.zeros(len(y)), y, prediction, grid=[0.5, 0.9]) == NEVER_FLIP


def test_evaluate_flip_matches_sklearn():
    y, prediction, patients, rng = _simulated(seed=4)
    p = rng.random(len(y))
    evaluation = evaluate_flip(y, prediction, p, patients, 0.8, n_bootstrap=500, seed=1)
    after = np.where(p >= 0.8, 1 - prediction, prediction)
    assert evaluation.n_flips == np.sum(p >= 0.8)
    assert evaluation.f1_before == pytest.approx(f1_score(y, prediction))
    assert evaluation.f1_after == pytest.approx(f1_score(y, after))
    assert evaluation.delta_f1 == pytest.approx(f1_score(y, after) - f1_score(y, prediction))
    assert evaluation.precision_after == pytest.approx(precision_score(y, after))
    assert evaluation.recall_before == pytest.approx(recall_score(y, prediction))
    assert evaluation.ci_low <= evaluation.delta_f1 <= evaluation.ci_high
    # 0.8 was not chosen on other data: numbers, but no verdict
    assert evaluation.exploratory and evaluation.improved is None
    assert evaluate_flip(y, prediction, p, patients, 0.8, chosen_tau=0.7, n_bootstrap=50).improved is None
    judged = evaluate_flip(y, prediction, p, patients, 0.8, chosen_tau=0.8, n_bootstrap=500, seed=1)
    assert not judged.exploratory and judged.improved == (judged.ci_low > 0)
    assert judged.delta_f1 == evaluation.delta_f1 and judged.ci_low == evaluation.ci_low


def test_few_calibration_flips_do_not_count_as_a_choice():
    y, prediction, _, _ = _simulated()
    wrong = (prediction != y).astype(float)
    # the identifier is sure about 5 errors only: flipping them gains F1, but 5 < min_flips
    score = np.zeros(len(y))
    score[np.flatnonzero(wrong)[:5]] = 1.0
    assert choose_flip_threshold(score, y, prediction) == 1.0
    assert choose_flip_threshold(score, y, prediction, min_flips=20) == NEVER_FLIP
    assert choose_flip_threshold(score, y, prediction, min_flips=5) == 1.0


def test_tau_search_reaches_the_minimum_number_of_flips():
    """Every distinct calibration score is a candidate, so the minimum number of flips is what binds: here the
    best choice flips exactly 20 rows (a 201-point quantile grid over 9000 rows moves 45 rows a step)."""
    n = 9000
    y = np.zeros(n, dtype=int)
    prediction = np.zeros(n, dtype=int)
    y[:300] = 1
    prediction[:150] = 1  # 150 true positives, rows 150-299 false negatives
    prediction[300:450] = 1  # 150 false positives; F1 before 0.5
    score = np.random.default_rng(0).random(n) * 0.5
    score[150:160] = 0.99 - np.arange(10) / 1000  # 10 false negatives: flipping them helps
    score[1000:1030] = 0.9 - np.arange(30) / 1000  # then true negatives: each flip beyond them hurts
    tau = choose_flip_threshold(score, y, prediction, min_flips=20)
    assert np.sum(score >= tau) == 20
    assert choose_flip_threshold(score, y, prediction, min_flips=5) == score[159]  # the 10 errors alone


def test_flip_curve_is_monotone_in_flips():
    y, prediction, patients, rng = _simulated(seed=2)
    p = np.clip((prediction != y) * 0.4 + rng.random(len(y)) * 0.6, 0, 1)
    curve = flip_curve(y, prediction, p, patients, n_bootstrap=100)
    assert tuple(curve.columns) == CURVE_COLUMNS
    assert curve["tau"].is_monotonic_increasing
    assert curve["n_flips"].is_monotonic_decreasing
    assert curve["n_flips"].iloc[-1] == 0 and curve["delta_f1"].iloc[-1] == 0.0
    assert curve["n_flips"].iloc[0] >= (prediction != y).sum()  # reaches beyond the number of errors
    assert 30 <= len(curve) <= 51
    assert curve["exploratory"].all()  # no chosen tau given: every point is a look at these rows
    fixed = flip_curve(y, prediction, p, patients, taus=[0.9, 0.5, 0.7], n_bootstrap=50)
    assert fixed["tau"].tolist() == [0.5, 0.7, 0.9]
    chosen = flip_curve(y, prediction, p, patients, taus=[0.9, 0.5, 0.7], chosen_tau=0.65, n_bootstrap=50)
    assert chosen["tau"].tolist() == [0.5, 0.65, 0.7, 0.9]
    assert chosen["exploratory"].tolist() == [True, False, True, True]


def _simulated_features(seed=0):
    y, prediction, patients, rng = _simulated(seed=seed)
    misclassified = (prediction != y).astype(int)
    features = pd.DataFrame(
        {"signal": misclassified + rng.normal(scale=0.7, size=len(y)), "noise": rng.normal(size=len(y))}
    )
    split = patient_split(patients, 0.5, seed=seed)
    return features, y, prediction, misclassified, patients, split


def test_run_flipping_bundles_calibration_and_test_rows():
    features, y, prediction, misclassified, patients, split = _simulated_features()
    run = run_flipping(
        features,
        y,
        prediction,
        misclassified,
        patients,
        split,
        feature_set="own+demographics",
        learner="logistic",
        n_bootstrap=300,
        curve_bootstrap=50,
    )
    calibration, test = split == "calibration", split == "test"
    np.testing.assert_array_equal(run.identifier_probability[calibration], run.calibration_probability)
    np.testing.assert_array_equal(run.identifier_probability[test], run.test_probability)
    # one rule for every row: flipped exactly when its own score >= tau
    np.testing.assert_array_equal(
        run.flipped_prediction, flip_predictions(prediction, run.identifier_probability, run.tau)
    )
    assert run.calibration_flips == np.sum(run.calibration_probability >= run.tau) >= MIN_CALIBRATION_FLIPS
    assert (run.learner, run.feature_set, run.oracle) == ("logistic", "own+demographics", False)
    # test rows: each by the calibration fold model its patient is assigned to, the out-of-fold scores' scale
    fold = assigned_fold(patients[test], len(run.fitted.fold_models), 0)
    every = np.stack([model.predict_proba(features.loc[test])[:, 1] for model in run.fitted.fold_models])
    np.testing.assert_allclose(run.test_probability, every[fold, np.arange(len(fold))])
    assert run.tau == choose_flip_threshold(
        run.calibration_probability, y[calibration], prediction[calibration], min_flips=MIN_CALIBRATION_FLIPS
    )
    assert run.test_evaluation.n == test.sum() and run.test_evaluation.tau == run.tau
    assert not run.test_evaluation.exploratory
    assert run.test_evaluation.improved  # a strong identifier: flipping helps on test too
    assert list(run.curve.columns) == list(CURVE_COLUMNS)
    assert run.curve.loc[~run.curve["exploratory"], "tau"].tolist() == [run.tau]


def test_a_test_rows_flip_does_not_depend_on_the_other_test_rows():
    """The flip decision of a test row is unchanged when every other test row is removed."""
    features, y, prediction, misclassified, patients, split = _simulated_features(seed=1)
    options = dict(
        feature_set="own+demographics", learner="hist_gradient_boosting", n_bootstrap=100, curve_bootstrap=20
    )
    run = run_flipping(features, y, prediction, misclassified, patients, split, **options)
    test_rows = np.flatnonzero(split == "test")
    flipped_rows = test_rows[run.flipped_prediction[test_rows] != prediction[test_rows]]
    assert 0 < len(flipped_rows) < len(test_rows)  # both kinds of decision are checked
    kept_rows = [flipped_rows[0], test_rows[run.flipped_prediction[test_rows] == prediction[test_rows]][0]]
    for row in kept_rows:
        keep = (split == "calibration") | (np.arange(len(y)) == row)
        alone = run_flipping(
            features.loc[keep], y[keep], prediction[keep], misclassified[keep], patients[keep], split[keep], **options
        )
        assert alone.tau == run.tau
        position = int(np.flatnonzero(np.flatnonzero(keep) == row)[0])
        assert alone.identifier_probability[position] == run.identifier_probability[row]
        assert alone.flipped_prediction[position] == run.flipped_prediction[row]


def test_run_flipping_refuses_an_oracle_feature_set():
    from cxrfail.errors import CxrfailInputError, OracleFeatureSetError

    features, y, prediction, misclassified, patients, split = _simulated_features()
    with pytest.raises(OracleFeatureSetError, match="deployed system would not have them") as info:
        run_flipping(
            features,
            y,
            prediction,
            misclassified,
            patients,
            split,
            feature_set="all_models+demographics+findings",
            learner="logistic",
        )
    assert isinstance(info.value, CxrfailInputError)
    with pytest.raises(OracleFeatureSetError):
        run_flipping(
            features, y, prediction, misclassified, patients, split, feature_set="own+findings", learner="logistic"
        )


def test_run_flipping_refuses_bad_splits():
    features, y, prediction, misclassified, patients, split = _simulated_features()
    first = np.flatnonzero(split == "calibration")[0]  # the first row of a calibration patient (3 rows each)
    assert patients[first] == patients[first + 1]
    leaky = split.copy()
    leaky[first + 1] = "test"  # one row of that calibration patient moves to test
    with pytest.raises(ValueError, match="both splits"):
        run_flipping(features, y, prediction, misclassified, patients, leaky, feature_set="own", learner="logistic")
    with pytest.raises(ValueError, match="misclassified must equal"):
        run_flipping(features, y, prediction, 1 - misclassified, patients, split, feature_set="own", learner="logistic")
    with pytest.raises(ValueError, match="split has values"):
        run_flipping(
            features,
            y,
            prediction,
            misclassified,
            patients,
            np.where(split == "test", "val", split),
            feature_set="own",
            learner="logistic",
        )


# ------------------------------------------------------------------------------------------- real demo data


@pytest.fixture(scope="module")
def demo_edema(demo_models, demo_cohort):
    """densenet121_jrzech on Edema: threshold on calibration, outcomes, own+demographics features."""
    model, finding = "densenet121_jrzech", "Edema"
    table = demo_cohort.table
    rows = table.loc[table[finding].notna()]
    probabilities = {m.name: m.probabilities.loc[rows.index] for m in demo_models}
    y = rows[finding].to_numpy(dtype=int)
    probability = probabilities[model][finding].to_numpy()
    patients = rows["patient_id"].to_numpy(dtype=object)
    split = patient_split(patients, 0.5, seed=0)
    calibration = split == "calibration"
    threshold = choose_threshold(y[calibration], probability[calibration]).threshold
    outcome = classify(y, probability, threshold)
    features = build_features(rows, probabilities, model, finding, "own+demographics")
    return dict(
        features=features,
        y=y,
        probability=probability,
        threshold=threshold,
        patients=patients,
        split=split,
        prediction=outcome["prediction"].to_numpy(),
        misclassified=outcome["misclassified"].to_numpy(),
    )


@pytest.mark.slow
def test_demo_identifier_beats_chance_and_baseline(demo_edema):
    d = demo_edema
    evaluation = evaluate_identifier(
        d["features"],
        d["misclassified"],
        d["patients"],
        d["split"],
        learner="hist_gradient_boosting",
        feature_set="own+demographics",
        n_bootstrap=300,
        probability=d["probability"],
        threshold=d["threshold"],
    )
    print(
        f"\nEdema identifier AUROC {evaluation.auroc:.3f} [{evaluation.ci_low:.3f}, {evaluation.ci_high:.3f}]"
        f" vs baseline {evaluation.baseline_auroc:.3f}; prediction alone {evaluation.prediction_auroc:.3f}; "
        f"within predicted +/-: {evaluation.auroc_predicted_positive:.3f} / "
        f"{evaluation.auroc_predicted_negative:.3f}; vs baseline {evaluation.delta_vs_baseline:+.3f} "
        f"[{evaluation.delta_vs_baseline_ci_low:+.3f}, {evaluation.delta_vs_baseline_ci_high:+.3f}], vs "
        f"prediction {evaluation.delta_vs_prediction:+.3f} [{evaluation.delta_vs_prediction_ci_low:+.3f}, "
        f"{evaluation.delta_vs_prediction_ci_high:+.3f}]"
    )
    assert evaluation.auroc > 0.6
    assert evaluation.ci_low > evaluation.baseline_ci_high
    assert evaluation.delta_vs_baseline_ci_low > 0


@pytest.mark.slow
def test_demo_flipping_chooses_tau_on_calibration_only(demo_edema):
    d = demo_edema
    args = (d["features"], d["y"], d["prediction"], d["misclassified"], d["patients"], d["split"])
    run = run_flipping(
        *args, feature_set="own+demographics", learner="hist_gradient_boosting", n_bootstrap=2000, curve_bootstrap=100
    )
    e = run.test_evaluation
    print(
        f"\nEdema flip tau {run.tau:.4f}: {e.n_flips} flips, F1 {e.f1_before:.4f} -> {e.f1_after:.4f}, "
        f"delta {e.delta_f1:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]"
    )
    assert e.improved == (e.ci_low > 0) and not e.exploratory
    # scramble the test labels (and so the test errors): nothing chosen on calibration may move
    test = d["split"] == "test"
    y = d["y"].copy()
    y[test] = np.random.default_rng(0).permutation(y[test])
    wrong = (d["prediction"] != y).astype(int)
    again = run_flipping(
        d["features"],
        y,
        d["prediction"],
        wrong,
        d["patients"],
        d["split"],
        feature_set="own+demographics",
        learner="hist_gradient_boosting",
        n_bootstrap=200,
        curve_bootstrap=20,
    )
    assert again.tau == run.tau
    np.testing.assert_array_equal(again.calibration_probability, run.calibration_probability)
    np.testing.assert_array_equal(again.test_probability, run.test_probability)
    assert again.test_evaluation.f1_before != e.f1_before  # the test labels did change

    # the dashboard's slider calls evaluate_flip live on the ~11k test rows
    timings = []
    for tau in (0.3, 0.5, 0.7, 0.9, run.tau):
        start = time.perf_counter()
        evaluate_flip(
            d["y"][test], d["prediction"][test], run.test_probability, d["patients"][test], tau, n_bootstrap=2000
        )
        timings.append(time.perf_counter() - start)
    print(f"evaluate_flip on {test.sum()} rows, 2000 replicates: median {1000 * np.median(timings):.0f} ms")
    assert np.median(timings) < 0.5  # target < 0.1 s; generous for a shared 2-core machine
