"""Misclassification identifiers: feature sets, learners, patient-grouped out-of-fold probabilities, the
cross-fitted calibration identifier judged on the test split, and the ladder's paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from cxrfail.analysis.config import FEATURE_SETS, IDENTIFIER_LADDER, LEARNERS, PROBABILITY_ONLY
from cxrfail.analysis.identifiers import (
    DEFAULT_FINDING_FEATURES,
    ConstantIdentifier,
    build_features,
    confidence_baseline,
    evaluate_identifier,
    evaluate_identifiers,
    fit_identifier,
    fit_split_identifier,
    is_oracle,
    learner_settings,
    make_learner,
    out_of_fold_probabilities,
    own_output_columns,
    predict_identifier,
)
from cxrfail.analysis.identifiers.learners import assigned_fold
from cxrfail.analysis.splits import patient_folds, patient_split

FINDINGS = ["Edema", "Consolidation", "Lung Lesion"]


@pytest.fixture
def small_table() -> pd.DataFrame:
    index = pd.Index([f"img{i}" for i in range(6)], name="image_id", dtype="string")
    return pd.DataFrame(
        {
            "patient_id": pd.array(["a", "a", "b", "c", "c", "d"], dtype="string"),
            "age": [60.0, 61.0, np.nan, 30.0, 31.0, 80.0],
            "sex": pd.array(["M", "M", pd.NA, "F", "F", "M"], dtype="string"),
            "view": pd.array(["PA", "AP", "PA", pd.NA, "AP", "PA"], dtype="string"),
            "Edema": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            "Consolidation": [0.0, 1.0, 0.0, 0.0, np.nan, 0.0],
            "Lung Lesion": [0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
            "Mass": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            "Nodule": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            "Pneumothorax": [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            "Support Devices": [np.nan, 1.0, np.nan, 0.0, np.nan, np.nan],
            "No Finding": [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        },
        index=index,
    )


@pytest.fixture
def small_probabilities(small_table) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    ids = small_table.index
    first = pd.DataFrame(rng.random((6, 3)), index=ids, columns=FINDINGS)
    # the second model misses one image and predicts only two findings
    second = pd.DataFrame(rng.random((5, 2)), index=ids[:5], columns=["Edema", "Consolidation"])
    return {"m1": first, "m2": second}


def test_feature_set_names():
    assert FEATURE_SETS == IDENTIFIER_LADDER and IDENTIFIER_LADDER[0] == PROBABILITY_ONLY
    assert [is_oracle(name) for name in FEATURE_SETS] == [False, False, False, False, True]
    assert is_oracle("own+findings") and not is_oracle("own+demographics")
    assert LEARNERS == ("logistic", "random_forest", "hist_gradient_boosting")


def test_own_features_are_the_models_probabilities(small_table, small_probabilities):
    features = build_features(small_table, small_probabilities, "m1", "Edema", "own")
    assert list(features.columns) == ["p:Edema", "p:Consolidation", "p:Lung Lesion"]
    assert features.index.equals(small_table.index)
    np.testing.assert_array_equal(features["p:Consolidation"], small_probabilities["m1"]["Consolidation"])
    assert (features.dtypes == "float64").all()


def test_probability_only_is_the_targets_probability_alone(small_table, small_probabilities):
    features = build_features(small_table, small_probabilities, "m1", "Consolidation", PROBABILITY_ONLY)
    assert list(features.columns) == ["p:Consolidation"]
    np.testing.assert_array_equal(features["p:Consolidation"], small_probabilities["m1"]["Consolidation"])
    with_demographics = build_features(small_table, small_probabilities, "m1", "Edema", "probability+demographics")
    assert list(with_demographics.columns)[:2] == ["p:Edema", "age"]
    with pytest.raises(ValueError, match="already contain the target's probability"):
        build_features(small_table, small_probabilities, "m1", "Edema", "probability+own")


def test_own_output_columns():
    columns = ["p:Edema", "p:m1:Edema", "p:m2:Edema", "p:m10:Edema", "age", "label:Pneumothorax"]
    assert own_output_columns(columns, "m1") == ["p:Edema", "p:m1:Edema"]


def test_demographic_features(small_table, small_probabilities):
    features = build_features(small_table, small_probabilities, "m2", "Edema", "own+demographics")
    assert list(features.columns) == ["p:Edema", "p:Consolidation", "age", "sex_male", "view_AP", "view_PA"]
    np.testing.assert_array_equal(features["sex_male"], [1, 1, np.nan, 0, 0, 1])
    np.testing.assert_array_equal(features["view_AP"], [0, 1, 0, np.nan, 1, 0])
    np.testing.assert_array_equal(features["view_PA"], [1, 0, 1, np.nan, 0, 1])
    np.testing.assert_array_equal(features["age"], small_table["age"])
    # m2 has no prediction for the last image: NaN, not a made-up value
    assert features.loc["img5", ["p:Edema", "p:Consolidation"]].isna().all()


def test_chexpert_study_columns_are_demographics(small_table, small_probabilities):
    table = small_table.assign(
        n_ap=[0, 1, 0, 2, 1, 0], n_pa=[1, 0, 1, 0, 0, 1], lateral=[True, False, True, False, False, True]
    )
    features = build_features(table, small_probabilities, "m1", "Edema", "own+demographics")
    assert list(features.columns)[-3:] == ["n_ap", "n_pa", "lateral"]
    np.testing.assert_array_equal(features["lateral"], [1, 0, 1, 0, 0, 1])


def test_all_models_features(small_table, small_probabilities):
    features = build_features(small_table, small_probabilities, "m1", "Edema", "all_models+demographics")
    expected = [
        "p:m1:Edema",
        "p:m1:Consolidation",
        "p:m1:Lung Lesion",
        "p:m2:Edema",
        "p:m2:Consolidation",
        "age",
        "sex_male",
        "view_AP",
        "view_PA",
    ]
    assert list(features.columns) == expected


@pytest.mark.parametrize("target", ["Edema", "Consolidation", "Lung Lesion", "Mass"])
def test_oracle_findings_never_include_the_target(small_table, small_probabilities, target):
    features = build_features(small_table, small_probabilities, "m1", target, "all_models+demographics+findings")
    labels = [column for column in features.columns if column.startswith("label:")]
    present = [f for f in DEFAULT_FINDING_FEATURES if f in small_table.columns]
    linked = {"Lung Lesion": {"Mass", "Nodule"}, "Mass": {"Lung Lesion"}}.get(target, set())
    assert labels == [f"label:{f}" for f in present if f != target and f not in linked]
    assert f"label:{target}" not in features.columns
    assert "label:No Finding" not in features.columns  # a function of every label, the target's included
    # labels are copied as they are, NaN kept
    if "label:Support Devices" in features.columns:
        np.testing.assert_array_equal(features["label:Support Devices"], small_table["Support Devices"])


def test_explicit_finding_features_still_exclude_the_target(small_table, small_probabilities):
    features = build_features(
        small_table,
        small_probabilities,
        "m1",
        "Edema",
        "own+findings",
        finding_features=("Edema", "Pneumothorax", "No Finding", "Not A Column"),
    )
    assert list(features.columns) == ["p:Edema", "p:Consolidation", "p:Lung Lesion", "label:Pneumothorax"]


def test_unknown_feature_set_and_model(small_table, small_probabilities):
    with pytest.raises(ValueError, match="unknown part"):
        build_features(small_table, small_probabilities, "m1", "Edema", "own+vibes")
    with pytest.raises(ValueError, match="not in probabilities_by_model"):
        build_features(small_table, small_probabilities, "m9", "Edema", "own")


@pytest.mark.parametrize("name", LEARNERS)
def test_learners_fit_with_missing_values_and_are_deterministic(name):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    X.loc[rng.random(300) < 0.2, "b"] = np.nan
    X["empty"] = np.nan  # a column with no known value at all
    y = (X["a"] + rng.normal(size=300) > 0.5).astype(int).to_numpy()
    first = predict_identifier(fit_identifier(X, y, name, seed=3), X)
    second = predict_identifier(fit_identifier(X, y, name, seed=3), X)
    np.testing.assert_allclose(first, second, rtol=1e-12)  # forests sum trees in thread order: 1e-16 noise
    assert roc_auc_score(y, first) > 0.8
    with pytest.raises(ValueError, match="unknown learner"):
        make_learner("svm", 0)


def test_single_class_training_part_gives_the_constant_prevalence():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=40)})
    folds = np.repeat([0, 1], 20)
    y = np.zeros(40, dtype=int)
    y[:5] = 1  # every misclassified row is in fold 0: fold 1's model trains on fold 0 (mixed), fold 0's on fold 1
    oof = out_of_fold_probabilities(X, y, folds, "hist_gradient_boosting", seed=0)
    np.testing.assert_array_equal(oof[:20], 0.0)  # trained on fold 1 alone: no misclassified row, prevalence 0
    assert isinstance(fit_identifier(X.iloc[20:], y[20:], "logistic"), ConstantIdentifier)


def test_confidence_baseline():
    np.testing.assert_allclose(confidence_baseline([0.1, 0.5, 0.9, 0.45], 0.5), [-0.4, 0.0, -0.4, -0.05])


def _duplicated_patients(n_patients=150, rows_per_patient=6, seed=0):
    """Every patient's rows are identical with one random label: nothing generalises across patients."""
    rng = np.random.default_rng(seed)
    patient_features = rng.normal(size=(n_patients, 5))
    patient_label = rng.integers(0, 2, size=n_patients)
    patients = np.repeat(np.arange(n_patients), rows_per_patient)
    X = pd.DataFrame(patient_features[patients], columns=[f"f{i}" for i in range(5)])
    return X, patient_label[patients], patients.astype(str)


def test_out_of_fold_probabilities_do_not_leak_patients():
    X, y, patients = _duplicated_patients()
    memoriser = KNeighborsClassifier(n_neighbors=1)  # scores a row by its nearest training row
    grouped = out_of_fold_probabilities(X, y, patient_folds(patients, 5, seed=0), memoriser)
    row_folds = np.random.default_rng(0).integers(0, 5, size=len(y))  # rows, not patients
    leaky = out_of_fold_probabilities(X, y, row_folds, memoriser)
    assert roc_auc_score(y, leaky) > 0.95  # a leak would show: the row's twin is in the training part
    assert abs(roc_auc_score(y, grouped) - 0.5) < 0.12
    # the same through evaluate_identifier with the default learner: nothing generalises to test patients
    split = patient_split(patients, 0.5, seed=0)
    evaluation = evaluate_identifier(
        X, y, patients, split, learner="hist_gradient_boosting", feature_set="own", n_bootstrap=200
    )
    assert abs(evaluation.auroc - 0.5) < 0.15
    calibration = split == "calibration"
    assert (evaluation.fold_of_row[~calibration] == -1).all()
    for fold in np.unique(evaluation.fold_of_row[calibration]):
        held_out = evaluation.fold_of_row == fold
        assert not set(patients[held_out]) & set(patients[~held_out])


def test_identifier_beats_the_confidence_baseline_when_errors_depend_on_a_feature():
    rng = np.random.default_rng(7)
    n_patients = 800
    patients = np.repeat(np.arange(n_patients), 3)
    n = len(patients)
    age = rng.uniform(20, 90, size=n_patients)[patients]
    probability = rng.uniform(size=n)
    threshold = 0.5
    # errors concentrate in the old, whatever the model's confidence
    misclassified = (rng.random(n) < np.where(age > 70, 0.6, 0.05)).astype(int)
    X = pd.DataFrame({"p:Edema": probability, "age": age})
    split = patient_split(patients.astype(str), 0.5, seed=0)
    test = split == "test"
    for learner in ("logistic", "hist_gradient_boosting"):
        evaluation = evaluate_identifier(
            X,
            misclassified,
            patients.astype(str),
            split,
            learner=learner,
            feature_set="own+demographics",
            n_bootstrap=300,
            probability=probability,
            threshold=threshold,
        )
        assert evaluation.auroc > 0.75
        assert abs(evaluation.baseline_auroc - 0.5) < 0.08
        assert evaluation.ci_low > evaluation.baseline_ci_high
        assert evaluation.ci_low <= evaluation.auroc <= evaluation.ci_high
        assert not evaluation.oracle
        # judged on the test split only
        assert evaluation.n == test.sum() and evaluation.n_misclassified == misclassified[test].sum()
        assert evaluation.n_patients == len(set(patients[test]))
        np.testing.assert_allclose(evaluation.baseline_score, -np.abs(probability - threshold))
        assert roc_auc_score(misclassified[test], evaluation.identifier_score[test]) == pytest.approx(evaluation.auroc)
        assert roc_auc_score(misclassified, evaluation.identifier_score) == pytest.approx(evaluation.auroc_pooled)
        assert np.isnan(evaluation.delta_vs_probability_only)  # probability_only not evaluated alongside
        # the prediction says nothing here; the identifier separates errors within each predicted class too
        assert abs(evaluation.prediction_auroc - 0.5) < 0.05
        assert evaluation.auroc_predicted_positive > 0.75 and evaluation.auroc_predicted_negative > 0.75
        # the comparison: paired differences, their CIs above zero
        assert evaluation.delta_vs_baseline == pytest.approx(evaluation.auroc - evaluation.baseline_auroc)
        assert evaluation.delta_vs_prediction == pytest.approx(evaluation.auroc - evaluation.prediction_auroc)
        assert 0 < evaluation.delta_vs_baseline_ci_low <= evaluation.delta_vs_baseline_ci_high
        assert 0 < evaluation.delta_vs_prediction_ci_low <= evaluation.delta_vs_prediction_ci_high


def test_an_identifier_that_only_learns_the_prediction_is_exposed():
    rng = np.random.default_rng(2)
    patients = np.arange(3000).astype(str)
    probability = rng.uniform(size=3000)
    predicted = probability >= 0.8
    # most predicted positives are wrong, few predicted negatives, at random within each: nothing to learn
    misclassified = (rng.random(3000) < np.where(predicted, 0.7, 0.03)).astype(int)
    X = pd.DataFrame({"p:Edema": probability, "noise": rng.normal(size=3000)})
    evaluation = evaluate_identifier(
        X,
        misclassified,
        patients,
        patient_split(patients, 0.5, seed=0),
        learner="logistic",
        feature_set="own",
        n_bootstrap=100,
        probability=probability,
        threshold=0.8,
    )
    assert evaluation.auroc > 0.8 and evaluation.prediction_auroc > 0.8
    assert abs(evaluation.auroc_predicted_positive - 0.5) < 0.1
    assert abs(evaluation.auroc_predicted_negative - 0.5) < 0.1
    # the paired difference to the prediction alone is small and its CI is narrow: nothing gained
    low, high = evaluation.delta_vs_prediction_ci_low, evaluation.delta_vs_prediction_ci_high
    assert low <= evaluation.delta_vs_prediction <= high
    assert abs(evaluation.delta_vs_prediction) < 0.05
    assert high - low < 0.1


def test_single_class_misclassified_gives_nan_auroc_without_crashing():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=100)})
    patients = np.repeat(np.arange(25), 4).astype(str)
    evaluation = evaluate_identifier(
        X,
        np.zeros(100, dtype=int),
        patients,
        patient_split(patients, 0.5, seed=0),
        learner="random_forest",
        feature_set="all_models+demographics+findings",
        probability=rng.random(100),
        threshold=0.5,
    )
    assert np.isnan(evaluation.auroc) and np.isnan(evaluation.ci_low) and np.isnan(evaluation.baseline_auroc)
    assert "single class" in evaluation.note
    assert evaluation.oracle
    np.testing.assert_array_equal(evaluation.identifier_score, 0.0)


def test_misclassified_must_be_binary():
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="misclassified must be 0/1"):
        fit_identifier(X, [0, 1, np.nan])


def _ladder_data(age_matters: bool, seed: int = 3):
    """Patients with 3 rows; errors depend on the model's probability (and on age when ``age_matters``)."""
    rng = np.random.default_rng(seed)
    n_patients = 1500
    patients = np.repeat(np.arange(n_patients), 3).astype(str)
    n = len(patients)
    age = rng.uniform(20, 90, size=n_patients)[np.repeat(np.arange(n_patients), 3)]
    probability = rng.uniform(size=n)
    risk = 0.05 + 0.4 * (probability > 0.8)  # the model is often wrong when very confident: not near 0.5
    if age_matters:
        risk = risk + np.where(age > 70, 0.35, 0.0)
    misclassified = (rng.random(n) < risk).astype(int)
    by_set = {
        PROBABILITY_ONLY: pd.DataFrame({"p:Edema": probability}),
        "own+demographics": pd.DataFrame({"p:Edema": probability, "age": age}),
    }
    return by_set, misclassified, patients, probability, patient_split(patients, 0.5, seed=seed)


@pytest.mark.parametrize("age_matters", [True, False])
def test_ladder_differences_to_probability_only_are_paired(age_matters):
    by_set, misclassified, patients, probability, split = _ladder_data(age_matters)
    test = split == "test"
    evaluations = evaluate_identifiers(
        by_set,
        misclassified,
        patients,
        split,
        learner="hist_gradient_boosting",
        n_bootstrap=400,
        probability=probability,
        threshold=0.5,
    )
    assert list(evaluations) == [PROBABILITY_ONLY, "own+demographics"]
    reference, richer = evaluations[PROBABILITY_ONLY], evaluations["own+demographics"]
    # the learner sees the shape of errors in the probability: the heuristic baseline cannot
    assert reference.auroc > reference.baseline_auroc + 0.1
    assert richer.delta_vs_probability_only == pytest.approx(richer.auroc - reference.auroc)
    assert reference.delta_vs_probability_only == 0.0
    # the same folds for every feature set
    np.testing.assert_array_equal(reference.fold_of_row, richer.fold_of_row)
    low, high = richer.delta_vs_probability_only_ci_low, richer.delta_vs_probability_only_ci_high
    assert low <= richer.delta_vs_probability_only <= high
    if age_matters:
        assert low > 0.03  # age adds what the probability cannot say
    else:
        assert low < 0 < high  # nothing to add: the interval covers zero
        assert high - low < 0.04  # paired resamples: much narrower than either AUROC's own interval
        assert high - low < 0.6 * (richer.ci_high - richer.ci_low)
    # every AUROC is the test split's, each test row scored by the fold model its patient is assigned to
    fold = assigned_fold(patients[test], 5, 0)
    assert set(fold) == set(range(5))  # every fold model scores some test patients
    for evaluation in evaluations.values():
        models = evaluation.split_fit.fold_models
        features = by_set[evaluation.feature_set].loc[test]
        own_model = np.array([predict_identifier(models[k], features.iloc[[i]])[0] for i, k in enumerate(fold)])
        np.testing.assert_allclose(evaluation.identifier_score[test], own_model)
        assert evaluation.auroc == pytest.approx(roc_auc_score(misclassified[test], own_model))


def test_test_scores_have_the_scale_of_the_out_of_fold_scores():
    """The per-case test score is one fold model's, like an out-of-fold score: on data without signal both
    splits' scores have the same upper tail, so a tau chosen on calibration flips a like share of test rows
    (the mean of the fold models would shrink that tail)."""
    rng = np.random.default_rng(3)
    n_patients = 3000
    patients = np.repeat(np.arange(n_patients), 2).astype(str)
    features = pd.DataFrame({"x": rng.normal(size=2 * n_patients), "z": rng.normal(size=2 * n_patients)})
    wrong = (rng.random(2 * n_patients) < 0.2).astype(int)
    split = np.where(np.arange(2 * n_patients) < n_patients, "calibration", "test")
    fitted = fit_split_identifier(features, wrong, patients, split, learner="hist_gradient_boosting")
    tau = np.quantile(fitted.calibration_probability, 0.95)
    calibration_share = np.mean(fitted.calibration_probability >= tau)
    test_share = np.mean(fitted.test_probability >= tau)
    assert test_share == pytest.approx(calibration_share, abs=0.02)
    mean_of_models = np.mean([predict_identifier(m, features.loc[split == "test"]) for m in fitted.fold_models], axis=0)
    assert np.mean(mean_of_models >= tau) < 0.75 * calibration_share  # what the mean would have done


def test_test_labels_never_reach_the_identifier():
    by_set, misclassified, patients, probability, split = _ladder_data(True)
    test = split == "test"
    scrambled = misclassified.copy()
    scrambled[test] = np.random.default_rng(0).permutation(scrambled[test])
    first = fit_split_identifier(by_set["own+demographics"], misclassified, patients, split, learner="logistic")
    second = fit_split_identifier(by_set["own+demographics"], scrambled, patients, split, learner="logistic")
    np.testing.assert_array_equal(first.held_out_probability, second.held_out_probability)
    # a test row's score is its own: scoring it alone gives the same number
    one = np.flatnonzero(test)[:3]
    np.testing.assert_allclose(
        first.predict(by_set["own+demographics"].iloc[one], patients[one]), first.held_out_probability[one]
    )


def test_wide_feature_sets_run_fewer_boosting_rounds():
    assert learner_settings("hist_gradient_boosting", 12) == (
        "hist_gradient_boosting: 12 features, 40 rounds at learning rate 0.225"
    )
    assert learner_settings("hist_gradient_boosting", 57, 20_000) == (
        "hist_gradient_boosting: 57 features, 20 rounds at learning rate 0.45, fold models fitted on 20,000 rows "
        "(sampled)"
    )
    assert make_learner("hist_gradient_boosting", 0, 57)[-1].max_iter == 20
    assert make_learner("hist_gradient_boosting", 0, 12)[-1].max_iter == 40
