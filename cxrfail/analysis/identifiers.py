"""Misclassification identifiers: can a second model tell when the first one is wrong?

CheXbreak (Chen et al., MLHC 2021) trains a classifier on features of each study (the model's own
probabilities, demographics, other models' probabilities, other findings) to predict whether the chest X-ray
model misclassifies it at its operating threshold. This module builds those feature matrices, the three
learners, patient-grouped out-of-fold probabilities, and the AUROC of the identifier (with a patient
bootstrap CI) against a confidence baseline: how close the model's probability is to its threshold.

Feature sets (`FEATURE_SETS`) are ``+``-joined parts:

``own``           the analysed model's probabilities for every finding it predicts: ``p:<finding>``
``all_models``    every model's probabilities for every finding: ``p:<model>:<finding>``
``demographics``  ``age`` (years), ``sex_male`` (1 male, 0 female, NaN unknown), one-hot view
                  (``view_AP``, ``view_PA``, ...; NaN in every view column when the view is unknown) and, for
                  CheXpert studies, ``n_ap``, ``n_pa``, ``lateral``
``findings``      ground-truth labels of other findings: ``label:<finding>`` (1/0/NaN; NaN kept). This is
                  an *oracle* feature set (`is_oracle`): a deployed system would not have the
                  labels, so every result that uses it carries ``oracle=True``.

The target finding's own label is never a feature: misclassified = (prediction != label), so with the model's
probability (hence its prediction) among the features the label would give the answer away. For the same
reason ``No Finding`` (1 exactly when no finding, the target included, is present) and labels derived from
the target or that it is derived from (on NIH, Lung Lesion = Mass or Nodule) are left out too.

Missing values: HistGradientBoosting handles NaN natively (a column with no known value in the training part
is set to 0: scikit-learn cannot bin it); the logistic and random-forest pipelines impute the median of the
training part (columns that are empty there are kept and filled with 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from cxrfail.analysis.auroc_intervals import AurocReplicates, auroc_set
from cxrfail.analysis.config import CLINICAL_FINDINGS, FEATURE_PARTS, FEATURE_SETS, LEARNERS, ORACLE_PART
from cxrfail.analysis.splits import calibration_rows, patient_folds
from cxrfail.analysis.validation import as_binary
from cxrfail.errors import OracleFeatureSetError
from cxrfail.findings import ALL_FINDINGS, derived_from, is_finding

#: Default label features of the ``findings`` part, in this order; those absent from the cohort are skipped.
#: Lung Lesion, Pneumothorax and Support Devices first: the clinical features CheXbreak found informative.
DEFAULT_FINDING_FEATURES: tuple[str, ...] = CLINICAL_FINDINGS + tuple(
    finding for finding in ALL_FINDINGS if finding not in CLINICAL_FINDINGS + ("No Finding",)
)

#: Labels that are never features for a target: "No Finding" is a function of every label, the target's too.
ALWAYS_EXCLUDED_LABELS: frozenset[str] = frozenset({"No Finding"})

DEMOGRAPHIC_COUNT_COLUMNS: tuple[str, ...] = ("n_ap", "n_pa", "lateral")

#: OpenMP threads for fitting and predicting (HistGradientBoosting is OpenMP-parallel). One thread: on a busy
#: 2-core machine a 17k-row HGB fit took 1.4 s with one thread and 13-24 s with two or the default (the
#: threads spin-wait for each other when the cores are shared); unloaded, two threads gain < 2x.
OPENMP_THREADS = 1


# ------------------------------------------------------------------------------------------------- features


def feature_set_parts(feature_set: str) -> tuple[str, ...]:
    """The parts of a ``+``-joined feature set name; raises ``ValueError`` naming an unknown part."""
    if not isinstance(feature_set, str) or not feature_set:
        raise ValueError(f"feature_set must be a non-empty string such as {FEATURE_SETS[1]!r}, got {feature_set!r}")
    parts = tuple(part.strip() for part in feature_set.split("+"))
    unknown = [part for part in parts if part not in FEATURE_PARTS]
    if unknown:
        raise ValueError(
            f"feature_set {feature_set!r} has unknown part(s) {', '.join(map(repr, unknown))}; parts are "
            f"{', '.join(FEATURE_PARTS)} (e.g. {', '.join(FEATURE_SETS)})"
        )
    if "own" in parts and "all_models" in parts:
        raise ValueError(f"feature_set {feature_set!r}: 'all_models' already contains the model's own probabilities")
    return parts


def is_oracle(feature_set: str) -> bool:
    """True when the feature set uses ground-truth labels of other findings (not available when deployed).

    The one oracle rule: the UI marks, the reports label and `refuse_oracle_for_flipping` refuses by it.
    """
    return ORACLE_PART in feature_set_parts(feature_set)


def refuse_oracle_for_flipping(feature_set: str) -> None:
    """Raise `OracleFeatureSetError` when ``feature_set`` is an oracle one (`is_oracle`): flipping acts on
    predictions as a deployed system would, and such a system has no ground-truth labels."""
    if is_oracle(feature_set):
        raise OracleFeatureSetError(
            f"feature set {feature_set!r} uses ground-truth finding labels (an oracle): a deployed system "
            "would not have them, so it cannot be used for flipping",
            fix=f"Flip with a feature set without 'findings', e.g. {FEATURE_SETS[2]!r}",
        )


def excluded_labels(finding: str) -> frozenset[str]:
    """Labels never used as features when ``finding`` is the target: itself, No Finding, linked labels."""
    linked = derived_from(finding) if is_finding(finding) else set()
    return frozenset({finding}) | ALWAYS_EXCLUDED_LABELS | frozenset(linked)


def _aligned_probabilities(probabilities: pd.DataFrame, index: pd.Index, name: str) -> pd.DataFrame:
    if not isinstance(probabilities, pd.DataFrame):
        raise TypeError(f"probabilities_by_model[{name!r}] must be a DataFrame indexed by image_id")
    return probabilities.reindex(index).astype("float64")


def _demographics(table: pd.DataFrame) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    if "age" in table.columns:
        columns["age"] = pd.to_numeric(table["age"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if "sex" in table.columns:
        sex = table["sex"].astype("string").str.upper()
        male = np.where(sex.eq("M").fillna(False).to_numpy(dtype=bool), 1.0, 0.0)
        male[~sex.isin(["M", "F"]).fillna(False).to_numpy(dtype=bool)] = np.nan
        columns["sex_male"] = male
    if "view" in table.columns:
        view = table["view"].astype("string")
        known = view.notna().to_numpy(dtype=bool)
        for level in sorted(view.dropna().unique().tolist()):
            values = np.where(view.eq(level).fillna(False).to_numpy(dtype=bool), 1.0, 0.0)
            values[~known] = np.nan
            columns[f"view_{level}"] = values
    for column in DEMOGRAPHIC_COUNT_COLUMNS:
        if column in table.columns:
            columns[column] = pd.to_numeric(table[column].astype("float64"), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
    return columns


def build_features(
    table: pd.DataFrame,
    probabilities_by_model: Mapping[str, pd.DataFrame],
    model: str,
    finding: str,
    feature_set: str,
    *,
    finding_features: Iterable[str] = DEFAULT_FINDING_FEATURES,
) -> pd.DataFrame:
    """The numeric feature matrix of one (model, finding) identifier.

    Args:
        table: the cohort table (rows to describe; index ``image_id``), with ``age``, ``sex``, ``view`` and
            label columns; ``n_ap``, ``n_pa``, ``lateral`` are used when present.
        probabilities_by_model: model name -> probabilities (index ``image_id``, one column per finding).
            Rows missing from a model's frame become NaN.
        model: the analysed model (its probabilities are the ``own`` part).
        finding: the target finding; its label (and labels that determine it) are never features.
        feature_set: one of `FEATURE_SETS` (or another ``+``-joined combination of `FEATURE_PARTS`).
        finding_features: candidate label features of the ``findings`` part; those not in ``table`` and those
            of `excluded_labels` (finding) are skipped.

    Returns:
        float64 DataFrame, index ``table.index``, columns in the order own/all_models, demographics, findings
        (names in the module docstring). NaN marks an unknown value.
    """
    parts = feature_set_parts(feature_set)
    if model not in probabilities_by_model:
        raise ValueError(f"model {model!r} is not in probabilities_by_model ({', '.join(probabilities_by_model)})")
    index = table.index
    columns: dict[str, np.ndarray] = {}
    if "own" in parts:
        own = _aligned_probabilities(probabilities_by_model[model], index, model)
        for column in own.columns:
            columns[f"p:{column}"] = own[column].to_numpy(dtype="float64")
    if "all_models" in parts:
        for name, probabilities in probabilities_by_model.items():
            aligned = _aligned_probabilities(probabilities, index, name)
            for column in aligned.columns:
                columns[f"p:{name}:{column}"] = aligned[column].to_numpy(dtype="float64")
    if "demographics" in parts:
        columns.update(_demographics(table))
    if ORACLE_PART in parts:
        skip = excluded_labels(finding)
        seen = set()
        for label in finding_features:
            if label in skip or label in seen or label not in table.columns:
                continue
            seen.add(label)
            columns[f"label:{label}"] = pd.to_numeric(table[label], errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
    if not columns:
        raise ValueError(f"feature_set {feature_set!r} gives no feature columns for this table")
    return pd.DataFrame(columns, index=index, dtype="float64")


# -------------------------------------------------------------------------------------------------- learners


class ConstantIdentifier(ClassifierMixin, BaseEstimator):
    """The identifier fitted on a single class: predicts that class's share (0 or 1) for every row."""

    def __init__(self, probability: float = 0.0):
        self.probability = probability

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.shape(X)[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def predict_proba(self, X):
        n = np.shape(X)[0]
        p = float(self.probability)
        return np.column_stack([np.full(n, 1.0 - p), np.full(n, p)])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


class FillEmptyColumns(TransformerMixin, BaseEstimator):
    """Fill the columns that had no known value in the training data with 0; leave every other NaN alone.

    HistGradientBoosting handles NaN natively but scikit-learn 1.9 fails to bin a column that is entirely NaN
    ("window shape cannot be larger than input array shape"); such a column (e.g. a label known for few
    images, absent from a fold) carries no information, so a constant stands in for it.
    """

    def fit(self, X, y=None):
        values = np.asarray(X, dtype="float64")
        self.n_features_in_ = values.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.empty_ = np.isnan(values).all(axis=0)
        return self

    def transform(self, X):
        values = np.array(X, dtype="float64", copy=True)
        values[:, self.empty_] = 0.0
        return values


def make_learner(name: str, seed: int = 0):
    """An unfitted scikit-learn classifier for `LEARNERS` ``name``, deterministic for ``seed``.

    - ``logistic``: median imputation, standardisation, L2 logistic regression (C=1).
    - ``random_forest``: median imputation, 200 trees of depth <= 10, leaves >= 25 rows, each tree on 30% of
      the rows (fit ~4 s, TreeSHAP on 500 rows ~3 s for 22k x 60 on 2 cores).
    - ``hist_gradient_boosting``: 60 rounds at learning rate 0.15, 15 leaves, no early stopping (so no
      random validation split: deterministic); NaN handled natively (~0.5 s for 22k x 60), except columns
      with no known value in the training data (`FillEmptyColumns`).
    """
    seed = int(seed)
    if name == "logistic":
        return Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=1.0, max_iter=2000)),
        ])
    if name == "random_forest":
        return Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("model", RandomForestClassifier(
                n_estimators=200, max_depth=10, min_samples_leaf=25, max_samples=0.3, n_jobs=2,
                random_state=seed)),
        ])
    if name == "hist_gradient_boosting":
        return Pipeline([
            ("fill_empty", FillEmptyColumns()),
            ("model", HistGradientBoostingClassifier(
                max_iter=60, learning_rate=0.15, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0,
                early_stopping=False, random_state=seed)),
        ])
    raise ValueError(f"unknown learner {name!r}; use one of {', '.join(LEARNERS)}")


def _learner(learner, seed: int):
    if isinstance(learner, str):
        return make_learner(learner, seed)
    return clone(learner)


def feature_frame(features, name: str = "features") -> pd.DataFrame:
    if isinstance(features, pd.DataFrame):
        frame = features
    else:
        array = np.asarray(features, dtype="float64")
        if array.ndim != 2:
            raise ValueError(f"{name} must be two-dimensional, got shape {array.shape}")
        frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
    try:
        frame = frame.astype("float64")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric ({exc})") from None
    if np.isinf(frame.to_numpy()).any():
        raise ValueError(f"{name} has infinite values; use NaN for unknown values")
    return frame


def fit_identifier(features, misclassified, learner="hist_gradient_boosting", seed: int = 0):
    """Fit an identifier of misclassification on every given row.

    Args:
        features: (n, k) feature matrix (DataFrame from `build_features`).
        misclassified: (n,) 0/1 target.
        learner: a `LEARNERS` name or an unfitted scikit-learn classifier (cloned).
        seed: the learner's seed.

    Returns:
        The fitted estimator (fitted on a DataFrame, so ``feature_names_in_`` holds the feature names). When
        ``misclassified`` has a single class, a `ConstantIdentifier` predicting that class.
    """
    X = feature_frame(features)
    y = as_binary(misclassified, "misclassified", len(X))
    if len(y) == 0:
        raise ValueError("no rows to fit the identifier on")
    if np.unique(y).size < 2:
        return ConstantIdentifier(float(y[0])).fit(X, y)
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        return _learner(learner, seed).fit(X, y)


def predict_identifier(fitted, features) -> np.ndarray:
    """(n,) probability of misclassification from a fitted identifier (the column of class 1)."""
    X = feature_frame(features)
    if len(X) == 0:
        return np.zeros(0, dtype="float64")
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        proba = fitted.predict_proba(X)
    classes = list(fitted.classes_)
    if 1 in classes:
        return np.asarray(proba[:, classes.index(1)], dtype="float64")
    return np.zeros(len(X), dtype="float64")


def out_of_fold_probabilities(features, misclassified, fold_of_row, learner="hist_gradient_boosting",
                              seed: int = 0) -> np.ndarray:
    """(n,) out-of-fold probability of misclassification: each row scored by a model fitted on other folds.

    ``fold_of_row`` must group by patient (`cxrfail.analysis.splits.patient_folds`): then no row is scored by
    a model that saw any row of its patient. A fold whose training part holds one class only gets that
    class's share (0.0 or 1.0) as a constant prediction.
    """
    X = feature_frame(features)
    y = as_binary(misclassified, "misclassified", len(X))
    folds = np.asarray(fold_of_row)
    if folds.shape != (len(X),):
        raise ValueError(f"fold_of_row must have shape ({len(X)},), got {folds.shape}")
    unique = np.unique(folds)
    if unique.size < 2:
        raise ValueError("fold_of_row has a single fold: every row would be scored by a model that saw it")
    out = np.empty(len(X), dtype="float64")
    for fold in unique:
        held_out = folds == fold
        fitted = fit_identifier(X.loc[~held_out], y[~held_out], learner, seed)
        out[held_out] = predict_identifier(fitted, X.loc[held_out])
    return out


@dataclass
class SplitIdentifier:
    """An identifier fitted with a patient split (`fit_split_identifier`), so that every row gets a held-out
    score and nothing learnt from the test split reaches the calibration side.

    Attributes:
        learner: the `LEARNERS` name (or estimator class name).
        calibration: (n,) bool, the calibration rows of the input.
        calibration_probability: (n_calibration,) out-of-fold probabilities of the calibration rows (folds of
            calibration patients, each scored by a model fitted on the other calibration folds).
        identifier: the identifier fitted on every calibration row.
        test_probability: (n_test,) probabilities of the test rows from ``identifier``.
        held_out_probability: (n,) per input row: calibration out-of-fold, test from ``identifier``.
        fold_of_row: (n,) the calibration fold of each calibration row, -1 for test rows.
    """

    learner: str
    calibration: np.ndarray = field(repr=False)
    calibration_probability: np.ndarray = field(repr=False)
    identifier: object = field(repr=False)
    test_probability: np.ndarray = field(repr=False)
    held_out_probability: np.ndarray = field(repr=False)
    fold_of_row: np.ndarray = field(repr=False)


def fit_split_identifier(features, misclassified, patient_ids, split, *, learner="hist_gradient_boosting",
                         n_folds: int = 5, seed: int = 0) -> SplitIdentifier:
    """Fit an identifier on the calibration split only: ``n_folds`` patient-grouped out-of-fold fits within
    calibration (the probabilities a flip threshold is chosen on), then one fit on all of calibration that
    scores the test rows. Each fit sees 4/5 or all of calibration, half the rows of a K-fold over the whole
    cohort, and the evaluation and the flipping share the same fits.

    Args:
        features: (n, k) feature matrix (`build_features`).
        misclassified: (n,) 0/1 target.
        patient_ids: (n,) patient of each row (folds group by it).
        split: (n,) ``"calibration"`` / ``"test"`` per row (`cxrfail.analysis.splits.patient_split`).
        learner, n_folds, seed: the learner (`LEARNERS` name), folds within calibration, seed of folds and
            learner.
    """
    X = feature_frame(features)
    y = as_binary(misclassified, "misclassified", len(X))
    patients = np.asarray(patient_ids, dtype=object)
    if patients.shape != (len(X),):
        raise ValueError(f"patient_ids must have shape ({len(X)},), got {patients.shape}")
    calibration = calibration_rows(patients, split)
    X_cal, y_cal = X.loc[calibration], y[calibration]
    folds = patient_folds(patients[calibration], n_folds=n_folds, seed=seed)
    cal_probability = out_of_fold_probabilities(X_cal, y_cal, folds, learner, seed)
    identifier = fit_identifier(X_cal, y_cal, learner, seed)
    test_probability = predict_identifier(identifier, X.loc[~calibration])
    held_out = np.empty(len(X), dtype="float64")
    held_out[calibration], held_out[~calibration] = cal_probability, test_probability
    fold_of_row = np.full(len(X), -1, dtype=np.int64)
    fold_of_row[calibration] = folds
    return SplitIdentifier(
        learner=learner if isinstance(learner, str) else type(learner).__name__, calibration=calibration,
        calibration_probability=cal_probability, identifier=identifier, test_probability=test_probability,
        held_out_probability=held_out, fold_of_row=fold_of_row)


def confidence_baseline(probability, threshold: float) -> np.ndarray:
    """-|probability - threshold|: higher means closer to the threshold, i.e. less confident, more often wrong."""
    p = np.asarray(probability, dtype="float64")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return -np.abs(p - float(threshold))


# ------------------------------------------------------------------------------------------------ evaluation


@dataclass
class IdentifierEvaluation:
    """Held-out performance of one identifier (learner x feature set) for one (model, finding).

    ``auroc`` is the AUROC of the held-out probabilities (``oof_probability``: out-of-fold within calibration
    and, on test, from the fit on calibration, when `evaluate_identifier` was given the split; else
    patient-grouped K-fold over every row) for the misclassified rows, with a patient-bootstrap CI; ``baseline_*`` the same for `confidence_baseline`. NaN where undefined
    (a single class of misclassified; no probability/threshold for the baseline), with ``note`` saying why.

    A check on what the identifier learned (point estimates, given probability and threshold): for a rare
    finding at a max-F1 threshold most errors are false positives, so "the model predicted positive" alone
    separates wrong from right rows well. ``prediction_auroc`` is the AUROC of the 0/1 prediction itself as
    the score; ``auroc_predicted_positive`` / ``auroc_predicted_negative`` are the identifier's AUROC within
    the rows predicted positive / negative (NaN when a stratum has one class). An identifier that only
    rediscovers the prediction has ``auroc`` near ``prediction_auroc`` and stratum AUROCs near 0.5.

    The comparison itself: ``delta_vs_baseline`` = auroc - baseline_auroc and ``delta_vs_prediction`` =
    auroc - prediction_auroc, each with a paired patient-bootstrap 95% CI (``*_ci_low``, ``*_ci_high``): one
    resample of patients scores both AUROCs; on large pairs the analytic clustered interval does the same
    with per-patient influences: ``ci_method``). An identifier beats the
    baseline when the difference's CI lies above zero, which two overlapping marginal CIs cannot show.
    """

    learner: str
    feature_set: str
    oracle: bool
    auroc: float
    ci_low: float
    ci_high: float
    baseline_auroc: float
    baseline_ci_low: float
    baseline_ci_high: float
    n: int
    n_misclassified: int
    oof_probability: np.ndarray = field(repr=False)
    baseline_score: np.ndarray = field(repr=False)
    fold_of_row: np.ndarray = field(repr=False, default=None)  # -1: scored by the fit on calibration
    note: str | None = None
    prediction_auroc: float = float("nan")
    auroc_predicted_positive: float = float("nan")
    auroc_predicted_negative: float = float("nan")
    delta_vs_baseline: float = float("nan")
    delta_vs_baseline_ci_low: float = float("nan")
    delta_vs_baseline_ci_high: float = float("nan")
    delta_vs_prediction: float = float("nan")
    delta_vs_prediction_ci_low: float = float("nan")
    delta_vs_prediction_ci_high: float = float("nan")
    split_fit: SplitIdentifier | None = field(repr=False, default=None)
    ci_method: str | None = None  # "bootstrap" or "analytic" (clustered DeLong); None when AUROC is undefined


def evaluate_identifier(
    features,
    misclassified,
    patient_ids: Sequence[object] | np.ndarray,
    *,
    split=None,
    learner: str = "hist_gradient_boosting",
    feature_set: str = "own+demographics",
    n_folds: int = 5,
    seed: int = 0,
    n_bootstrap: int = 1000,
    probability=None,
    threshold: float | None = None,
    auroc_interval: str = "auto",
) -> IdentifierEvaluation:
    """Held-out evaluation of a misclassification identifier against the confidence baseline.

    Args:
        features: (n, k) feature matrix from `build_features`.
        misclassified: (n,) 0/1, whether the model misclassified the row at its threshold.
        patient_ids: (n,) patient of each row: folds and bootstrap resample patients.
        split: (n,) ``"calibration"`` / ``"test"`` per row, or None. With a split the scores come from
            `fit_split_identifier` (calibration rows out-of-fold within calibration, test rows from the fit on
            all of calibration; kept as ``split_fit`` for flipping); without, from ``n_folds`` patient-grouped
            folds over every row.
        learner: a `LEARNERS` name.
        feature_set: the feature set's name (recorded; decides ``oracle``).
        n_folds, seed: folds (`patient_folds`) and the learner's seed.
        n_bootstrap: replicates of the patient bootstrap of the AUROCs (one set of resamples scores the
            identifier, the baseline and the prediction alike: `cxrfail.analysis.auroc_intervals.auroc_set`).
        auroc_interval: "bootstrap", "analytic" (clustered DeLong) or "auto" (analytic on large pairs;
            `cxrfail.analysis.auroc_intervals.auroc_set`); the method used is recorded as ``ci_method``.
        probability, threshold: the model's probabilities and threshold, for the confidence baseline
            (baseline NaN when not given).
    """
    X = feature_frame(features)
    y = as_binary(misclassified, "misclassified", len(X))
    patients = np.asarray(patient_ids)
    if patients.shape != (len(X),):
        raise ValueError(f"patient_ids must have shape ({len(X)},), got {patients.shape}")
    oracle = is_oracle(feature_set)
    notes = []
    split_fit = None
    if split is None:
        folds = patient_folds(patients, n_folds=n_folds, seed=seed)
        oof = out_of_fold_probabilities(X, y, folds, learner, seed)
    else:
        split_fit = fit_split_identifier(X, y, patients, split, learner=learner, n_folds=n_folds, seed=seed)
        oof, folds = split_fit.held_out_probability, split_fit.fold_of_row
    nan = float("nan")
    two_classes = 0 < int(y.sum()) < len(y)
    if not two_classes:
        notes.append(f"misclassified has a single class ({'all' if y.all() else 'none'} misclassified): "
                     "AUROC undefined")
    if probability is not None and threshold is not None:
        p = np.asarray(probability, dtype="float64")
        if p.shape != (len(X),):
            raise ValueError(f"probability must have shape ({len(X)},), got {p.shape}")
        baseline = confidence_baseline(p, threshold)
    else:
        baseline = np.full(len(X), nan)
        notes.append("no probability/threshold given: no confidence baseline")
    columns = {name: nan for name in IDENTIFIER_INTERVAL_COLUMNS}
    ci_method = None
    if two_classes:
        scores = {"identifier": oof}
        if np.isfinite(baseline).all():
            predicted = p >= float(threshold)
            scores.update(baseline=baseline, prediction=predicted.astype(float))
            columns["auroc_predicted_positive"] = _auroc(y[predicted], oof[predicted])
            columns["auroc_predicted_negative"] = _auroc(y[~predicted], oof[~predicted])
        replicates = auroc_set(y, scores, patients, method=auroc_interval, n_replicates=n_bootstrap, seed=seed)
        ci_method = "bootstrap" if isinstance(replicates, AurocReplicates) else "analytic"
        auroc = replicates.interval("identifier")
        columns.update(auroc=auroc.estimate, ci_low=auroc.ci_low, ci_high=auroc.ci_high)
        if "baseline" in scores:
            base = replicates.interval("baseline")
            columns.update(baseline_auroc=base.estimate, baseline_ci_low=base.ci_low, baseline_ci_high=base.ci_high,
                           prediction_auroc=replicates.estimates["prediction"])
            for name, reference in (("delta_vs_baseline", "baseline"), ("delta_vs_prediction", "prediction")):
                difference = replicates.difference("identifier", reference)
                columns.update({name: difference.estimate, f"{name}_ci_low": difference.ci_low,
                                f"{name}_ci_high": difference.ci_high})
    return IdentifierEvaluation(
        learner=learner if isinstance(learner, str) else type(learner).__name__,
        feature_set=feature_set, oracle=oracle, n=len(y), n_misclassified=int(y.sum()), oof_probability=oof,
        baseline_score=baseline, fold_of_row=folds, note="; ".join(notes) or None, split_fit=split_fit,
        ci_method=ci_method,
        **columns,
    )


#: The fields of `IdentifierEvaluation` that `evaluate_identifier` fills from the bootstrap (NaN when undefined).
IDENTIFIER_INTERVAL_COLUMNS = (
    "auroc", "ci_low", "ci_high", "baseline_auroc", "baseline_ci_low", "baseline_ci_high", "prediction_auroc",
    "auroc_predicted_positive", "auroc_predicted_negative", "delta_vs_baseline", "delta_vs_baseline_ci_low",
    "delta_vs_baseline_ci_high", "delta_vs_prediction", "delta_vs_prediction_ci_low", "delta_vs_prediction_ci_high",
)


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC, NaN with fewer than two classes."""
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))
