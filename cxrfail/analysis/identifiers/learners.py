"""Identifier learners: the three classifiers, patient-grouped out-of-fold fits and the calibration-only fit.

Missing values: HistGradientBoosting handles NaN natively (a column with no known value in the training part
is set to 0: scikit-learn cannot bin it); the logistic and random-forest pipelines impute the median of the
training part (columns that are empty there are kept and filled with 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from cxrfail.analysis.config import LEARNERS
from cxrfail.analysis.splits import calibration_rows, patient_folds
from cxrfail.analysis.validation import as_binary

#: OpenMP threads for fitting and predicting (HistGradientBoosting is OpenMP-parallel). One thread: on a busy
#: 2-core machine a 17k-row HGB fit took 1.4 s with one thread and 13-24 s with two or the default (the
#: threads spin-wait for each other when the cores are shared); unloaded, two threads gain < 2x.
OPENMP_THREADS = 1



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
