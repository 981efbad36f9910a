"""Identifier learners: the three classifiers, patient-grouped out-of-fold fits and the cross-fitted identifier
of the calibration split (its fold models score every other row).

Missing values: HistGradientBoosting handles NaN natively (a column with no known value in the training part
is set to 0: scikit-learn cannot bin it); the logistic and random-forest pipelines impute the median of the
training part (columns that are empty there are kept and filled with 0).
"""

from __future__ import annotations

import hashlib
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

#: Gradient boosting rounds and learning rate (`make_learner`). A pair fits 25 fold models (5 feature sets x 5
#: folds) and scores the test split with each: fitting and scoring cost about rounds x columns x rows, and the
#: test scoring (5 models a feature set, 94k rows at CheXpert scale) took as long as the fitting. 40 rounds at
#: 0.225 instead of the earlier 60 at 0.15 (the same product): on a CheXpert-scale pair the test AUROC moved
#: 0.864 -> 0.863.
ROUNDS, LEARNING_RATE = 40, 0.225
#: On a feature matrix wider than `WIDE_COLUMNS` (the ``all_models`` feature sets: every model's outputs, 57-70
#: columns with 10 models) gradient boosting runs `WIDE_ROUNDS` rounds at `WIDE_LEARNING_RATE` (again the same
#: product): the full rounds would cost 1.1-1.3 s a fit at CheXpert scale.
WIDE_COLUMNS = 24
WIDE_ROUNDS, WIDE_LEARNING_RATE = 20, 0.45
#: A fold model of the cross-fit (`fit_split_identifier`) is fitted on at most this many of its training rows
#: (a seeded sample without replacement; the training part is already patient-disjoint from the scored fold).
#: It binds at CheXpert scale only (94k calibration studies: 75k a fold), where a pair fits 25 fold models
#: (5 feature sets x 5 folds) and every fit costs in proportion to its rows; the demo's folds hold ~9k rows.
MAX_FIT_ROWS = 10_000


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


def make_learner(name: str, seed: int = 0, n_features: int | None = None):
    """An unfitted scikit-learn classifier for `LEARNERS` ``name``, deterministic for ``seed``.

    - ``logistic``: median imputation, standardisation, L2 logistic regression (C=1).
    - ``random_forest``: median imputation, 200 trees of depth <= 10, leaves >= 25 rows, each tree on 30% of
      the rows (fit ~4 s, TreeSHAP on 500 rows ~3 s for 22k x 60 on 2 cores).
    - ``hist_gradient_boosting``: `ROUNDS` rounds at `LEARNING_RATE`, 15 leaves, no early stopping (so no
      random validation split: deterministic); NaN handled natively (~0.5 s for 22k x 60), except columns
      with no known value in the training data (`FillEmptyColumns`). With ``n_features`` above `WIDE_COLUMNS`:
      `WIDE_ROUNDS` rounds at `WIDE_LEARNING_RATE` (`learner_settings` says which).
    """
    seed = int(seed)
    if name == "logistic":
        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("model", LogisticRegression(C=1.0, max_iter=2000)),
            ]
        )
    if name == "random_forest":
        return Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                (
                    "model",
                    RandomForestClassifier(
                        n_estimators=200,
                        max_depth=10,
                        min_samples_leaf=25,
                        max_samples=0.3,
                        n_jobs=2,
                        random_state=seed,
                    ),
                ),
            ]
        )
    if name == "hist_gradient_boosting":
        rounds, rate = _boosting_rounds(n_features)
        return Pipeline(
            [
                ("fill_empty", FillEmptyColumns()),
                (
                    "model",
                    HistGradientBoostingClassifier(
                        max_iter=rounds,
                        learning_rate=rate,
                        max_leaf_nodes=15,
                        min_samples_leaf=40,
                        l2_regularization=1.0,
                        early_stopping=False,
                        random_state=seed,
                    ),
                ),
            ]
        )
    raise ValueError(f"unknown learner {name!r}; use one of {', '.join(LEARNERS)}")


def _boosting_rounds(n_features: int | None) -> tuple[int, float]:
    """(rounds, learning rate) of gradient boosting on ``n_features`` columns (see `WIDE_COLUMNS`)."""
    if n_features is not None and n_features > WIDE_COLUMNS:
        return WIDE_ROUNDS, WIDE_LEARNING_RATE
    return ROUNDS, LEARNING_RATE


def learner_settings(learner, n_features: int, n_fit_rows: int | None = None) -> str:
    """One line naming the learner as `make_learner` builds it for ``n_features`` columns and, when given, the
    most rows a fold model was fitted on (``n_fit_rows``; "sampled" when `MAX_FIT_ROWS` bound). Recorded per
    identifier: gradient boosting on a wide matrix runs fewer rounds, and large folds are sampled."""
    name = learner if isinstance(learner, str) else type(learner).__name__
    text = f"{name}: {n_features} features"
    if learner == "hist_gradient_boosting":
        rounds, rate = _boosting_rounds(n_features)
        text += f", {rounds} rounds at learning rate {rate:g}"
    if n_fit_rows is not None:
        text += f", fold models fitted on {n_fit_rows:,} rows" + (" (sampled)" if n_fit_rows >= MAX_FIT_ROWS else "")
    return text


def _learner(learner, seed: int, n_features: int | None = None):
    if isinstance(learner, str):
        return make_learner(learner, seed, n_features)
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
        return _learner(learner, seed, X.shape[1]).fit(X, y)


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


def out_of_fold_probabilities(
    features, misclassified, fold_of_row, learner="hist_gradient_boosting", seed: int = 0
) -> np.ndarray:
    """(n,) out-of-fold probability of misclassification: each row scored by a model fitted on other folds.

    ``fold_of_row`` must group by patient (`cxrfail.analysis.splits.patient_folds`): then no row is scored by
    a model that saw any row of its patient. A fold whose training part holds one class only gets that
    class's share (0.0 or 1.0) as a constant prediction.
    """
    return _fold_fits(features, misclassified, fold_of_row, learner, seed)[0]


def _fold_fits(
    features, misclassified, fold_of_row, learner, seed: int, max_rows: int | None = None
) -> tuple[np.ndarray, tuple]:
    """(out-of-fold probabilities (n,), the fold models in fold order): `out_of_fold_probabilities` with
    the models kept; with ``max_rows``, each model is fitted on at most that many of its training rows (a
    sample seeded by ``seed`` and the fold)."""
    X = feature_frame(features)
    y = as_binary(misclassified, "misclassified", len(X))
    folds = np.asarray(fold_of_row)
    if folds.shape != (len(X),):
        raise ValueError(f"fold_of_row must have shape ({len(X)},), got {folds.shape}")
    unique = np.unique(folds)
    if unique.size < 2:
        raise ValueError("fold_of_row has a single fold: every row would be scored by a model that saw it")
    out = np.empty(len(X), dtype="float64")
    models = []
    for fold in unique:
        held_out = folds == fold
        training = np.flatnonzero(~held_out)
        if max_rows is not None and len(training) > max_rows:
            sample = np.random.default_rng([int(seed), int(fold)]).choice(len(training), size=max_rows, replace=False)
            training = training[np.sort(sample)]
        fitted = fit_identifier(X.iloc[training], y[training], learner, seed)
        out[held_out] = predict_identifier(fitted, X.loc[held_out])
        models.append(fitted)
    return out, tuple(models)


@dataclass
class SplitIdentifier:
    """A cross-fitted identifier of the calibration split (`fit_split_identifier`): K fold models, each fitted
    on the calibration patients outside its fold. Every calibration row is scored by the one model that did
    not see its patient (out-of-fold); any other row (the test split, a new study) by the one fold model its
    patient id is assigned to (`assigned_fold`: a seeded hash of the id, so every study of a patient meets the
    same model and no other row enters the choice). A score is then that row's alone and has exactly the
    distribution of the out-of-fold scores a flip threshold is chosen on: one model fitted on (K - 1) / K of
    the calibration patients, none of them the scored one. (The mean of the K models, the obvious ensemble,
    has a thinner upper tail than any one of them: a threshold chosen on out-of-fold scores then flipped a
    quarter as many test rows on the demo.) Nothing of the test split reaches a fit. A fold model is fitted on
    at most `MAX_FIT_ROWS` rows.

    Attributes:
        learner: the `LEARNERS` name (or estimator class name).
        calibration: (n,) bool, the calibration rows of the input.
        calibration_probability: (n_calibration,) out-of-fold probabilities of the calibration rows.
        fold_models: the K fitted fold models, in fold order.
        test_probability: (n_test,) `predict` of the test rows: each by its patient's fold model.
        held_out_probability: (n,) per input row: calibration out-of-fold, test from `predict`.
        fold_of_row: (n,) the calibration fold of each calibration row, -1 for test rows.
        n_fit_rows: the most rows a fold model was fitted on.
        seed: the seed of the patient-to-fold-model assignment (`assigned_fold`).
    """

    learner: str
    calibration: np.ndarray = field(repr=False)
    calibration_probability: np.ndarray = field(repr=False)
    fold_models: tuple = field(repr=False)
    test_probability: np.ndarray = field(repr=False)
    held_out_probability: np.ndarray = field(repr=False)
    fold_of_row: np.ndarray = field(repr=False)
    n_fit_rows: int = 0  # the most rows a fold model was fitted on
    seed: int = 0

    def predict(self, features, patient_ids) -> np.ndarray:
        """(n,) identifier probability of each row of ``features`` (columns as fitted), ``patient_ids`` (n,) its
        patient: the probability of the fold model the patient is assigned to (`assigned_fold`). Each row's
        score depends on that row's features and patient id alone."""
        X = feature_frame(features)
        fold = assigned_fold(patient_ids, len(self.fold_models), self.seed)
        if fold.shape != (len(X),):
            raise ValueError(f"patient_ids must have shape ({len(X)},), got {fold.shape}")
        out = np.zeros(len(X), dtype="float64")
        for k, model in enumerate(self.fold_models):
            rows = np.flatnonzero(fold == k)
            if len(rows):
                out[rows] = predict_identifier(model, X.iloc[rows])
        return out


def assigned_fold(patient_ids, n_folds: int, seed: int) -> np.ndarray:
    """(n,) int: the fold model (0 .. n_folds - 1) that scores each row outside the calibration split, from its
    patient id alone: BLAKE2b of the seed and the id's text, modulo ``n_folds``. Stable across runs, machines and
    the other rows; patients spread evenly over the models."""
    ids = np.asarray(patient_ids, dtype=object).ravel()
    codes, distinct = pd.factorize(ids, use_na_sentinel=False)  # hash each patient once, not each row
    key = str(int(seed)).encode() + b"\0"
    folds = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(key + str(i).encode(), digest_size=8).digest(), "little") % n_folds
            for i in distinct
        ),
        dtype=np.int64,
        count=len(distinct),
    )
    return folds[codes]


def fit_split_identifier(
    features,
    misclassified,
    patient_ids,
    split,
    *,
    learner="hist_gradient_boosting",
    n_folds: int = 5,
    seed: int = 0,
    folds: np.ndarray | None = None,
) -> SplitIdentifier:
    """Cross-fit an identifier on the calibration split only: ``n_folds`` patient-grouped folds of the
    calibration patients, one model fitted on the others for each; calibration rows get their out-of-fold
    probability (what a flip threshold is chosen on), test rows that of their patient's fold model
    (`SplitIdentifier.predict`). The evaluation and the flipping share these fits.

    Args:
        features: (n, k) feature matrix (`build_features`).
        misclassified: (n,) 0/1 target.
        patient_ids: (n,) patient of each row (folds group by it).
        split: (n,) ``"calibration"`` / ``"test"`` per row (`cxrfail.analysis.splits.patient_split`).
        learner, n_folds, seed: the learner (`LEARNERS` name), folds within calibration, seed of folds and
            learner.
        folds: (n_calibration,) the folds of the calibration rows when already made (`patient_folds` of the
            calibration patients with ``n_folds`` and ``seed``: several feature sets share them); made here when
            None.
    """
    X = feature_frame(features)
    y = as_binary(misclassified, "misclassified", len(X))
    patients = np.asarray(patient_ids, dtype=object)
    if patients.shape != (len(X),):
        raise ValueError(f"patient_ids must have shape ({len(X)},), got {patients.shape}")
    calibration = calibration_rows(patients, split)
    X_cal, y_cal = X.loc[calibration], y[calibration]
    if folds is None:
        folds = patient_folds(patients[calibration], n_folds=n_folds, seed=seed)
    elif np.shape(folds) != (int(calibration.sum()),):
        raise ValueError(
            f"folds must have one entry per calibration row ({int(calibration.sum())}), got {np.shape(folds)}"
        )
    cal_probability, models = _fold_fits(X_cal, y_cal, folds, learner, seed, max_rows=MAX_FIT_ROWS)
    fold_of_row = np.full(len(X), -1, dtype=np.int64)
    fold_of_row[calibration] = folds
    fitted = SplitIdentifier(
        learner=learner if isinstance(learner, str) else type(learner).__name__,
        calibration=calibration,
        calibration_probability=cal_probability,
        fold_models=models,
        test_probability=np.zeros(0),
        held_out_probability=np.empty(len(X), dtype="float64"),
        fold_of_row=fold_of_row,
        seed=int(seed),
    )
    fitted.test_probability = fitted.predict(X.loc[~calibration], patients[~calibration])
    fitted.held_out_probability[calibration] = cal_probability
    fitted.held_out_probability[~calibration] = fitted.test_probability
    fold_sizes = np.unique(folds, return_counts=True)[1]
    fitted.n_fit_rows = min(MAX_FIT_ROWS, int(len(folds) - fold_sizes.min()))  # the largest training part
    return fitted
