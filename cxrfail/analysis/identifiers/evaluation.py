"""Identifier evaluation: held-out AUROC of a misclassification identifier, with patient-clustered intervals
and paired differences to simpler scores of the same rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from cxrfail.analysis.auroc_intervals import AurocReplicates, auroc_set
from cxrfail.analysis.identifiers.features import is_oracle
from cxrfail.analysis.identifiers.learners import (
    SplitIdentifier,
    feature_frame,
    fit_split_identifier,
    out_of_fold_probabilities,
)
from cxrfail.analysis.splits import patient_folds
from cxrfail.analysis.validation import as_binary


def confidence_baseline(probability, threshold: float) -> np.ndarray:
    """-|probability - threshold|: higher means closer to the threshold, i.e. less confident, more often wrong."""
    p = np.asarray(probability, dtype="float64")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return -np.abs(p - float(threshold))



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
    # bootstrap resamples with one class, left out of every interval (the same draws for all scores); NaN when
    # nothing was resampled (analytic interval, undefined AUROC)
    n_replicates_dropped: float = float("nan")


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
        if isinstance(replicates, AurocReplicates):
            columns["n_replicates_dropped"] = float(replicates.n_dropped)
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
    "n_replicates_dropped",
)


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC, NaN with fewer than two classes."""
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))
