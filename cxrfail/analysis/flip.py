"""Corrective flipping (CheXbreak): invert the predictions an identifier flags as likely wrong.

The rule is per case: a row's prediction is flipped (prediction := 1 - prediction) exactly when its own
identifier score is >= tau; no other row enters the decision. Procedure of `run_flipping`, which keeps every
choice away from the data it is judged on:

1. calibration split: the identifier is cross-fitted (`cxrfail.analysis.identifiers.fit_split_identifier`:
   patient-grouped folds, one model fitted on the others for each); each calibration row gets its out-of-fold
   score. tau = the value maximising F1 after flipping on calibration (`choose_flip_threshold`), searched over
   every distinct out-of-fold score, among the taus that flip at least ``min_calibration_flips`` calibration
   rows. "Never flip" (`NEVER_FLIP`, just above 1.0) is always a candidate, so flipping is only chosen when it
   helped there on enough rows.
2. test split: each row is scored by the one calibration fold model its patient id is assigned to (a seeded
   hash: `cxrfail.analysis.identifiers.learners.assigned_fold`), a score of that row alone with exactly the
   distribution of the out-of-fold scores tau was chosen on, and flipped when that score is >= tau. F1, precision and recall before and after, the number of flips and a paired
   patient-bootstrap 95% CI of the F1 change (`cxrfail.analysis.resampling.paired_bootstrap_f1_change`). A
   change whose CI reaches zero is not an improvement: ``improved = ci_low > 0``. This verdict exists only at
   the tau chosen on calibration: `evaluate_flip` at any other tau is *exploratory* (tau chosen after seeing
   test data) and its ``improved`` is None.

Oracle feature sets (ground-truth labels as features) are refused for flipping
(`cxrfail.analysis.identifiers.refuse_oracle_for_flipping`): a deployed system would not have them.

`evaluate_flip` is cheap (count-based bootstrap), so a dashboard slider can call it live.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxrfail.analysis.config import MIN_CALIBRATION_FLIPS
from cxrfail.analysis.identifiers import (
    SplitIdentifier,
    feature_frame,
    fit_split_identifier,
    refuse_oracle_for_flipping,
)
from cxrfail.analysis.outcomes import binary_metrics, f1_from_counts
from cxrfail.analysis.resampling import paired_bootstrap_f1_change, paired_bootstrap_f1_changes
from cxrfail.analysis.splits import calibration_rows
from cxrfail.analysis.validation import as_binary

#: tau that never flips: every probability is <= 1.0 < NEVER_FLIP.
NEVER_FLIP: float = float(np.nextafter(1.0, 2.0))
#: Columns of `flip_curve`; ``exploratory`` is False only at the tau chosen on calibration.
CURVE_COLUMNS = ("tau", "n_flips", "f1_before", "f1_after", "delta_f1", "ci_low", "ci_high", "exploratory")


def _probability(values, name: str, n: int) -> np.ndarray:
    p = np.asarray(values, dtype="float64")
    if p.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {p.shape}")
    if np.isnan(p).any():
        raise ValueError(f"{name} has NaN values")
    return p


def _inputs(y_true, prediction, identifier_probability):
    y = as_binary(y_true, "y_true")
    pred = as_binary(prediction, "prediction", len(y))
    p = _probability(identifier_probability, "identifier_probability", len(y))
    return y, pred, p


def flip_predictions(prediction, identifier_probability, tau: float) -> np.ndarray:
    """(n,) int64 predictions with rows whose identifier probability is >= ``tau`` inverted."""
    pred = as_binary(prediction, "prediction")
    p = _probability(identifier_probability, "identifier_probability", len(pred))
    return np.where(p >= float(tau), 1 - pred, pred).astype(np.int64)


def flip_f1_by_tau(y_true, prediction, identifier_probability, taus) -> tuple[np.ndarray, np.ndarray]:
    """(n_flips, F1 after flipping) for each tau in ``taus``, from cumulative counts after one sort.

    Flipping a true positive makes it a false negative and vice versa; flipping a false positive makes it a
    true negative and vice versa. So the counts after flipping the k rows of highest identifier probability
    are the counts before plus cumulative sums of those changes.
    """
    y, pred, p = _inputs(y_true, prediction, identifier_probability)
    taus = np.asarray(taus, dtype="float64")
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], pred[order]
    d_tp = np.where(ys == 1, np.where(ps == 1, -1, 1), 0)  # TP -> FN (-1), FN -> TP (+1)
    d_fp = np.where(ys == 0, np.where(ps == 1, -1, 1), 0)  # FP -> TN (-1), TN -> FP (+1)
    cum_tp = np.r_[0, np.cumsum(d_tp)]
    cum_fp = np.r_[0, np.cumsum(d_fp)]
    tp = int(np.sum((y == 1) & (pred == 1)))
    fp = int(np.sum((y == 0) & (pred == 1)))
    fn = int(np.sum((y == 1) & (pred == 0)))
    n_flips = len(p) - np.searchsorted(np.sort(p), taus, side="left")  # rows with p >= tau
    f1 = f1_from_counts(tp + cum_tp[n_flips], fp + cum_fp[n_flips], fn - cum_tp[n_flips])
    return n_flips.astype(np.int64), np.asarray(f1, dtype="float64")


def default_tau_grid(identifier_probability) -> np.ndarray:
    """Candidate taus: every distinct identifier probability, plus `NEVER_FLIP`; ascending. Each candidate
    flips a different set of rows and every such set is a candidate, so a minimum number of flips is met
    exactly (up to ties at the smallest tau that meets it)."""
    p = np.asarray(identifier_probability, dtype="float64")
    return np.unique(np.r_[p, NEVER_FLIP])


def choose_flip_threshold(identifier_probability, y_true, prediction, *, grid=None, min_flips: int = 0) -> float:
    """The tau maximising F1 after flipping (use calibration out-of-fold identifier probabilities).

    Args:
        identifier_probability: (n,) identifier probabilities (out-of-fold on calibration rows).
        y_true: (n,) 0/1 ground truth.
        prediction: (n,) 0/1 model predictions at the operating threshold.
        grid: candidate taus; default `default_tau_grid`. `NEVER_FLIP` is always added.
        min_flips: candidates flipping fewer rows than this (but at least one) are not considered.

    Returns:
        tau (float). Ties are broken towards the highest tau (fewest flips), so without a strict gain in F1
        the answer is `NEVER_FLIP`.
    """
    y, pred, p = _inputs(y_true, prediction, identifier_probability)
    candidates = default_tau_grid(p) if grid is None else np.unique(np.r_[np.asarray(grid, float), NEVER_FLIP])
    if np.isnan(candidates).any():
        raise ValueError("grid has NaN values")
    if int(min_flips) < 0:
        raise ValueError(f"min_flips must be >= 0, got {min_flips!r}")
    n_flips, _ = flip_f1_by_tau(y, pred, p, candidates)
    candidates = candidates[(n_flips == 0) | (n_flips >= int(min_flips))]
    _, f1 = flip_f1_by_tau(y, pred, p, candidates)
    best = f1.max()
    # highest tau among those within float noise of the best F1
    return float(candidates[np.flatnonzero(f1 >= best - 1e-12)[-1]])


#: The `FlipEvaluation` fields of the run's "flip" table, in table order.
EVALUATION_COLUMNS = (
    "n_flips",
    "f1_before",
    "f1_after",
    "delta_f1",
    "ci_low",
    "ci_high",
    "precision_before",
    "precision_after",
    "recall_before",
    "recall_after",
    "improved",
    "exploratory",
)


@dataclass(frozen=True)
class FlipEvaluation:
    """Effect of flipping at ``tau`` on one set of rows (the test split). ``delta_f1`` = f1_after - f1_before,
    with a paired patient-bootstrap CI.

    ``exploratory`` is True unless ``tau`` is the one chosen before looking at these rows (on calibration);
    ``improved`` (True only when the CI lies above zero) is the verdict at that chosen tau and None when
    exploratory: a tau picked after seeing test data gets numbers, never a verdict.
    """

    tau: float
    n: int
    n_flips: int
    f1_before: float
    f1_after: float
    delta_f1: float
    ci_low: float
    ci_high: float
    precision_before: float
    precision_after: float
    recall_before: float
    recall_after: float
    improved: bool | None
    n_bootstrap: int
    exploratory: bool


def evaluate_flip(
    y_true,
    prediction,
    identifier_probability,
    patient_ids,
    tau: float,
    *,
    chosen_tau: float | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> FlipEvaluation:
    """F1, precision, recall before and after flipping at ``tau``, and the paired bootstrap CI of the change.

    Args:
        y_true, prediction: (n,) 0/1 ground truth and model predictions.
        identifier_probability: (n,) identifier probability of misclassification.
        patient_ids: (n,) patients (the bootstrap resamples them).
        tau: flip rows with identifier probability >= tau.
        chosen_tau: the tau chosen without these rows (`FlipRun.tau`); only when ``tau`` equals it does
            the result carry a verdict (``improved``); otherwise (or when None) it is exploratory.
        n_bootstrap, seed, confidence: of `paired_bootstrap_f1_change`.
    """
    y, pred, p = _inputs(y_true, prediction, identifier_probability)
    exploratory = chosen_tau is None or float(tau) != float(chosen_tau)
    after = np.where(p >= float(tau), 1 - pred, pred)
    before_metrics, after_metrics = binary_metrics(y, pred), binary_metrics(y, after)
    interval = paired_bootstrap_f1_change(
        y, pred, after, patient_ids, n_replicates=n_bootstrap, seed=seed, confidence=confidence
    )
    return FlipEvaluation(
        tau=float(tau),
        n=len(y),
        n_flips=int(np.sum(p >= float(tau))),
        f1_before=before_metrics["f1"],
        f1_after=after_metrics["f1"],
        delta_f1=after_metrics["f1"] - before_metrics["f1"],
        ci_low=interval.ci_low,
        ci_high=interval.ci_high,
        precision_before=before_metrics["precision"],
        precision_after=after_metrics["precision"],
        recall_before=before_metrics["recall"],
        recall_after=after_metrics["recall"],
        improved=None if exploratory else bool(interval.ci_low > 0.0),
        n_bootstrap=int(n_bootstrap),
        exploratory=exploratory,
    )


def default_curve_taus(identifier_probability, misclassified=None, n_points: int = 50) -> np.ndarray:
    """About ``n_points`` taus spanning 0 flips to about twice the number of misclassified rows (at least 20):
    quantiles of the identifier probability at evenly spaced flip counts, plus `NEVER_FLIP`; ascending.

    (A fixed grid on [0.5, 1] would be mostly empty: when errors are rare, identifier probabilities rarely
    exceed 0.5.)
    """
    p = np.asarray(identifier_probability, dtype="float64")
    n = len(p)
    if n == 0:
        return np.array([NEVER_FLIP])
    n_wrong = n if misclassified is None else int(np.sum(misclassified))
    max_flips = min(n, max(20, 2 * n_wrong))
    levels = 1.0 - np.linspace(0.0, max_flips / n, n_points)
    return np.unique(np.r_[np.quantile(p, np.clip(levels, 0.0, 1.0), method="higher"), NEVER_FLIP])


def flip_curve(
    y_true,
    prediction,
    identifier_probability,
    patient_ids,
    *,
    taus=None,
    chosen_tau: float | None = None,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """The numbers of `evaluate_flip` over a grid of tau (default `default_curve_taus`, plus ``chosen_tau``):
    columns `CURVE_COLUMNS`, ascending tau (so ``n_flips`` is non-increasing). The CIs of all taus come from
    one set of patient resamples (`paired_bootstrap_f1_changes`). Every point but ``chosen_tau`` (the tau
    chosen on calibration, when given) is ``exploratory``: a look at test data, no verdict."""
    y, pred, p = _inputs(y_true, prediction, identifier_probability)
    grid = default_curve_taus(p, pred != y) if taus is None else np.asarray(taus, dtype="float64")
    if chosen_tau is not None:
        grid = np.r_[grid, float(chosen_tau)]
    grid = np.unique(grid)
    flipped = np.where(p[None, :] >= grid[:, None], 1 - pred[None, :], pred[None, :]).astype(np.int8)  # (taus, rows)
    intervals = paired_bootstrap_f1_changes(y, pred, flipped, patient_ids, n_replicates=n_bootstrap, seed=seed)
    f1_before = binary_metrics(y, pred)["f1"]
    f1_after = np.array([binary_metrics(y, row)["f1"] for row in flipped])
    curve = pd.DataFrame(
        {
            "tau": grid,
            "n_flips": (p[None, :] >= grid[:, None]).sum(axis=1).astype("int64"),
            "f1_before": f1_before,
            "f1_after": f1_after,
            "delta_f1": f1_after - f1_before,
            "ci_low": [interval.ci_low for interval in intervals],
            "ci_high": [interval.ci_high for interval in intervals],
            "exploratory": grid != (np.nan if chosen_tau is None else float(chosen_tau)),
        },
        columns=list(CURVE_COLUMNS),
    )
    return curve


@dataclass
class FlipRun:
    """Everything `run_flipping` produced.

    Attributes:
        tau: the flip threshold chosen on calibration out-of-fold scores (`NEVER_FLIP` when no flipping of at
            least ``min_calibration_flips`` rows helped there); test rows are flipped when their own score
            (its patient's fold model's) is >= tau.
        calibration_flips: calibration rows tau flips (0 for `NEVER_FLIP`, else >= ``min_calibration_flips``).
        learner, feature_set: the identifier used for flipping; ``oracle`` is always False (refused).
        calibration_probability: (n_calibration,) out-of-fold identifier scores of the calibration rows.
        test_probability: (n_test,) scores of the test rows, each by its patient's calibration fold model.
        test_evaluation: `FlipEvaluation` on the test split at ``tau``: the one verdict.
        curve: `flip_curve` on the test split (every point but ``tau`` exploratory).
        identifier_probability: (n,) the score each input row was compared with tau: calibration out-of-fold,
            test its patient's fold model's.
        flipped_prediction: (n,) predictions with the rows whose score is >= tau inverted.
        fitted: the cross-fitted identifier (its fold models score any new row: `SplitIdentifier.predict`).
        calibration_f1_before, calibration_f1_after: F1 on calibration (out-of-fold) at ``tau``: the choice's
            own, optimistic, view.
    """

    tau: float
    calibration_flips: int
    learner: str
    feature_set: str
    calibration_probability: np.ndarray = field(repr=False)
    test_probability: np.ndarray = field(repr=False)
    test_evaluation: FlipEvaluation
    curve: pd.DataFrame = field(repr=False)
    identifier_probability: np.ndarray = field(repr=False)
    flipped_prediction: np.ndarray = field(repr=False)
    fitted: SplitIdentifier = field(repr=False)
    calibration_f1_before: float = float("nan")
    calibration_f1_after: float = float("nan")
    oracle: bool = False


def run_flipping(
    features,
    y_true,
    prediction,
    misclassified,
    patient_ids,
    split,
    *,
    feature_set: str,
    learner: str = "hist_gradient_boosting",
    n_folds: int = 5,
    seed: int = 0,
    n_bootstrap: int = 2000,
    curve_bootstrap: int = 500,
    min_calibration_flips: int = MIN_CALIBRATION_FLIPS,
    fitted: SplitIdentifier | None = None,
) -> FlipRun:
    """Corrective flipping end to end: identifier and tau from calibration, judged once on test.

    Args:
        features: (n, k) identifier features (`cxrfail.analysis.identifiers.build_features`).
        y_true, prediction: (n,) 0/1 labels and model predictions at the operating threshold.
        misclassified: (n,) 0/1, must equal ``prediction != y_true``.
        patient_ids: (n,) patients; no patient may be in both splits.
        split: (n,) ``"calibration"`` / ``"test"`` per row.
        feature_set: name of the feature set ``features`` was built from (recorded; an oracle one is refused).
        learner: a `LEARNERS` name.
        n_folds: patient-grouped folds within calibration (the cross-fit).
        seed: folds, learner and bootstrap seed.
        n_bootstrap: replicates of the test CI; ``curve_bootstrap`` those of each point of the curve.
        min_calibration_flips: a tau must flip at least this many calibration rows to be chosen.
        fitted: the identifier already cross-fitted on this split with this learner (`fit_split_identifier`,
            e.g. the one `cxrfail.analysis.identifiers.evaluate_identifiers` evaluated); fitted here when None.

    Raises:
        OracleFeatureSetError: ``feature_set`` uses ground-truth labels.
    """
    refuse_oracle_for_flipping(feature_set)
    X = feature_frame(features)
    n = len(X)
    y = as_binary(y_true, "y_true", n)
    pred = as_binary(prediction, "prediction", n)
    wrong = as_binary(misclassified, "misclassified", n)
    if not np.array_equal(wrong, (pred != y).astype(np.int64)):
        raise ValueError("misclassified must equal (prediction != y_true) row by row")
    patients = np.asarray(patient_ids, dtype=object)
    if patients.shape != (n,):
        raise ValueError(f"patient_ids must have shape ({n},), got {patients.shape}")
    calibration = calibration_rows(patients, split)
    test = ~calibration
    if fitted is None:
        fitted = fit_split_identifier(X, wrong, patients, split, learner=learner, n_folds=n_folds, seed=seed)
    elif not np.array_equal(fitted.calibration, calibration) or fitted.learner != learner:
        raise ValueError("fitted is not this split's identifier (its calibration rows or learner differ)")
    cal_probability, test_probability = fitted.calibration_probability, fitted.test_probability
    tau = choose_flip_threshold(cal_probability, y[calibration], pred[calibration], min_flips=min_calibration_flips)

    evaluation = evaluate_flip(
        y[test], pred[test], test_probability, patients[test], tau, chosen_tau=tau, n_bootstrap=n_bootstrap, seed=seed
    )
    curve = flip_curve(
        y[test], pred[test], test_probability, patients[test], chosen_tau=tau, n_bootstrap=curve_bootstrap, seed=seed
    )
    score = fitted.held_out_probability
    flipped = flip_predictions(pred, score, tau)
    return FlipRun(
        tau=tau,
        calibration_flips=int(np.sum(cal_probability >= tau)),
        learner=learner if isinstance(learner, str) else type(learner).__name__,
        feature_set=feature_set,
        calibration_probability=cal_probability,
        test_probability=test_probability,
        test_evaluation=evaluation,
        curve=curve,
        identifier_probability=score,
        flipped_prediction=flipped,
        fitted=fitted,
        calibration_f1_before=binary_metrics(y[calibration], pred[calibration])["f1"],
        calibration_f1_after=binary_metrics(y[calibration], flipped[calibration])["f1"],
    )
