"""Identifier evaluation: the held-out (test-split) AUROC of misclassification identifiers, with
patient-clustered intervals and paired differences to simpler scores of the same test rows.

Every identifier is cross-fitted on the calibration split (`fit_split_identifier`) and judged on the test
split only: each test row is scored by its patient's calibration fold model (`SplitIdentifier.predict`). The feature sets of one call
(`evaluate_identifiers`, e.g. the ladder `cxrfail.analysis.config.IDENTIFIER_LADDER`) share the learner, the
calibration folds and the patient resamples of the test split, so their differences are paired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from cxrfail.analysis.auroc_intervals import AurocReplicates, auroc_set
from cxrfail.analysis.config import PROBABILITY_ONLY
from cxrfail.analysis.identifiers.features import is_oracle
from cxrfail.analysis.identifiers.learners import (
    SplitIdentifier,
    feature_frame,
    fit_split_identifier,
    learner_settings,
)
from cxrfail.analysis.splits import calibration_rows, patient_folds
from cxrfail.analysis.validation import as_binary


def confidence_baseline(probability, threshold: float) -> np.ndarray:
    """-|probability - threshold|: higher means closer to the threshold, i.e. less confident, more often wrong."""
    p = np.asarray(probability, dtype="float64")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return -np.abs(p - float(threshold))


@dataclass
class IdentifierEvaluation:
    """Test-split performance of one identifier (learner x feature set) for one (model, finding).

    Unit: one cohort row of the test split; intervals resample test patients. ``auroc`` (``ci_low``,
    ``ci_high``) is the AUROC, for the test rows' misclassification, of their identifier scores (each by the
    calibration fold model its patient is assigned to: nothing of the test split reached a fit). ``auroc_pooled`` (secondary, no
    interval) pools the calibration out-of-fold scores with the test scores. ``baseline_*``: the same for
    `confidence_baseline`. NaN where undefined (one class of misclassified on test; no probability/threshold
    for the baseline), with ``note`` saying why. ``n``, ``n_patients``, ``n_misclassified``: the test split's.

    A check on what the identifier learned (point estimates): ``prediction_auroc`` is the AUROC of the 0/1
    prediction itself as the score; ``auroc_predicted_positive`` / ``auroc_predicted_negative`` are the
    identifier's AUROC within the test rows predicted positive / negative (NaN when a stratum has one class).

    The comparisons, each paired (one resample of test patients scores both AUROCs; on large pairs the
    analytic clustered interval does the same with per-patient influences: ``ci_method``), 95% CIs in
    ``*_ci_low`` / ``*_ci_high``: ``delta_vs_probability_only`` = auroc - AUROC of the same learner on the
    model's probability for the target alone (what the other features add; NaN when that feature set was not
    evaluated in the same call), ``delta_vs_baseline`` = auroc - baseline_auroc, ``delta_vs_prediction`` =
    auroc - prediction_auroc. A difference is shown when its CI excludes zero.
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
    n_patients: int
    n_misclassified: int
    identifier_score: np.ndarray = field(
        repr=False
    )  # (n_rows,) calibration out-of-fold, test by the patient's fold model
    baseline_score: np.ndarray = field(repr=False)
    fold_of_row: np.ndarray = field(repr=False)  # -1: a test row
    split_fit: SplitIdentifier = field(repr=False)
    learner_settings: str = ""
    note: str | None = None
    auroc_pooled: float = float("nan")
    prediction_auroc: float = float("nan")
    auroc_predicted_positive: float = float("nan")
    auroc_predicted_negative: float = float("nan")
    delta_vs_probability_only: float = float("nan")
    delta_vs_probability_only_ci_low: float = float("nan")
    delta_vs_probability_only_ci_high: float = float("nan")
    delta_vs_baseline: float = float("nan")
    delta_vs_baseline_ci_low: float = float("nan")
    delta_vs_baseline_ci_high: float = float("nan")
    delta_vs_prediction: float = float("nan")
    delta_vs_prediction_ci_low: float = float("nan")
    delta_vs_prediction_ci_high: float = float("nan")
    ci_method: str | None = None  # "bootstrap" or "analytic" (clustered DeLong); None when AUROC is undefined
    # bootstrap resamples with one class, left out of every interval (the same draws for all scores); NaN when
    # nothing was resampled (analytic interval, undefined AUROC)
    n_replicates_dropped: float = float("nan")


def evaluate_identifiers(
    features_by_set: Mapping[str, object],
    misclassified,
    patient_ids: Sequence[object] | np.ndarray,
    split,
    *,
    learner: str = "hist_gradient_boosting",
    n_folds: int = 5,
    seed: int = 0,
    n_bootstrap: int = 1000,
    probability=None,
    threshold: float | None = None,
    auroc_interval: str = "auto",
) -> dict[str, IdentifierEvaluation]:
    """Cross-fit one identifier per feature set on the calibration split and judge them all on the test split
    against each other, `PROBABILITY_ONLY` (when among them), the confidence baseline and the prediction.

    Args:
        features_by_set: feature set name -> (n, k) feature matrix of the same rows (`build_features`), or a
            callable returning it (built when its turn comes, so only one matrix is held at a time).
        misclassified: (n,) 0/1, whether the model misclassified the row at its threshold.
        patient_ids: (n,) patient of each row: folds and resamples group by it.
        split: (n,) ``"calibration"`` / ``"test"`` per row; no patient in both.
        learner: a `LEARNERS` name (the same for every feature set).
        n_folds, seed: calibration folds (`patient_folds`, the same for every feature set) and the learner's seed.
        n_bootstrap: replicates of the patient bootstrap of the test AUROCs; one set of resamples scores every
            feature set, the baseline and the prediction (`cxrfail.analysis.auroc_intervals.auroc_set`).
        probability, threshold: the model's probabilities and threshold, for the confidence baseline and the
            prediction (NaN when not given).
        auroc_interval: "bootstrap", "analytic" (clustered DeLong) or "auto" (analytic on large test splits);
            the method used is recorded as ``ci_method``.

    Returns:
        feature set name -> `IdentifierEvaluation`, in the order given.
    """
    if not features_by_set:
        raise ValueError("features_by_set is empty: give at least one feature set")
    patients = np.asarray(patient_ids, dtype=object)
    n = len(patients)
    y = as_binary(misclassified, "misclassified", n)
    calibration = calibration_rows(patients, split)
    test = ~calibration
    folds = patient_folds(patients[calibration], n_folds=n_folds, seed=seed)  # the same for every feature set
    fits, widths = {}, {}
    for name, features in features_by_set.items():  # one matrix at a time: a built one is dropped once fitted
        frame = feature_frame(features() if callable(features) else features, f"features of {name!r}")
        if len(frame) != n:
            raise ValueError(f"features of {name!r} have {len(frame)} rows, patient_ids {n}")
        fits[name] = fit_split_identifier(
            frame, y, patients, split, learner=learner, n_folds=n_folds, seed=seed, folds=folds
        )
        widths[name] = frame.shape[1]
        del frame

    nan = float("nan")
    notes = []
    y_test, patients_test = y[test], patients[test]
    two_classes = 0 < int(y_test.sum()) < len(y_test)
    if not two_classes:
        notes.append(
            f"misclassified has a single class on the test split ({'all' if y_test.all() else 'none'} "
            "misclassified): AUROC undefined"
        )
    if probability is not None and threshold is not None:
        p = np.asarray(probability, dtype="float64")
        if p.shape != (n,):
            raise ValueError(f"probability must have shape ({n},), got {p.shape}")
        baseline = confidence_baseline(p, threshold)
    else:
        baseline = np.full(n, nan)
        notes.append("no probability/threshold given: no confidence baseline")
    has_baseline = bool(np.isfinite(baseline).all())
    if PROBABILITY_ONLY not in fits and len(fits) > 0:
        notes.append(f"{PROBABILITY_ONLY!r} not evaluated: no difference to it")

    columns = {name: {} for name in fits}
    ci_method = None
    if two_classes:
        scores = {("set", name): fit.test_probability for name, fit in fits.items()}
        if has_baseline:
            predicted = p[test] >= float(threshold)
            scores.update({("baseline",): baseline[test], ("prediction",): predicted.astype(float)})
        keys = list(scores)
        replicates = auroc_set(
            y_test,
            {str(i): scores[key] for i, key in enumerate(keys)},
            patients_test,
            method=auroc_interval,
            n_replicates=n_bootstrap,
            seed=seed,
        )
        ci_method = "bootstrap" if isinstance(replicates, AurocReplicates) else "analytic"
        label = {key: str(i) for i, key in enumerate(keys)}
        for name, fit in fits.items():
            own = label[("set", name)]
            auroc = replicates.interval(own)
            row = columns[name]
            row.update(
                auroc=auroc.estimate,
                ci_low=auroc.ci_low,
                ci_high=auroc.ci_high,
                auroc_pooled=_auroc(y, fit.held_out_probability),
            )
            if isinstance(replicates, AurocReplicates):
                row["n_replicates_dropped"] = float(replicates.n_dropped)
            references = [("delta_vs_probability_only", ("set", PROBABILITY_ONLY))] if PROBABILITY_ONLY in fits else []
            if has_baseline:
                base = replicates.interval(label[("baseline",)])
                row.update(
                    baseline_auroc=base.estimate,
                    baseline_ci_low=base.ci_low,
                    baseline_ci_high=base.ci_high,
                    prediction_auroc=replicates.estimates[label[("prediction",)]],
                    auroc_predicted_positive=_auroc(y_test[predicted], fit.test_probability[predicted]),
                    auroc_predicted_negative=_auroc(y_test[~predicted], fit.test_probability[~predicted]),
                )
                references += [("delta_vs_baseline", ("baseline",)), ("delta_vs_prediction", ("prediction",))]
            for column, reference in references:
                difference = replicates.difference(own, label[reference])
                row.update(
                    {
                        column: difference.estimate,
                        f"{column}_ci_low": difference.ci_low,
                        f"{column}_ci_high": difference.ci_high,
                    }
                )
    learner_name = learner if isinstance(learner, str) else type(learner).__name__
    out = {}
    for name, fit in fits.items():
        row = {
            column: nan
            for column in ("auroc", "ci_low", "ci_high", "baseline_auroc", "baseline_ci_low", "baseline_ci_high")
        }
        row.update(columns[name])
        out[name] = IdentifierEvaluation(
            learner=learner_name,
            feature_set=name,
            oracle=is_oracle(name),
            n=int(test.sum()),
            n_patients=len(set(patients_test)),
            n_misclassified=int(y_test.sum()),
            identifier_score=fit.held_out_probability,
            baseline_score=baseline,
            fold_of_row=fit.fold_of_row,
            split_fit=fit,
            learner_settings=learner_settings(learner, widths[name], fit.n_fit_rows),
            note="; ".join(notes) or None,
            ci_method=ci_method,
            **row,
        )
    return out


def evaluate_identifier(
    features, misclassified, patient_ids, split, *, feature_set: str = "own+demographics", **options
) -> IdentifierEvaluation:
    """`evaluate_identifiers` of one feature set (``options`` as there): its test AUROC against the confidence
    baseline and the prediction (no difference to `PROBABILITY_ONLY`)."""
    return evaluate_identifiers({feature_set: features}, misclassified, patient_ids, split, **options)[feature_set]


#: The columns of the "identifiers" table that come from an `IdentifierEvaluation`, in table order.
IDENTIFIER_COLUMNS = (
    "oracle",
    "auroc",
    "ci_low",
    "ci_high",
    # what the features add beyond the model's own probability (paired, the same test resamples)
    "delta_vs_probability_only",
    "delta_vs_probability_only_ci_low",
    "delta_vs_probability_only_ci_high",
    # secondary: the heuristic confidence baseline, and the paired difference to it
    "baseline_auroc",
    "baseline_ci_low",
    "baseline_ci_high",
    "delta_vs_baseline",
    "delta_vs_baseline_ci_low",
    "delta_vs_baseline_ci_high",
    # how much of the AUROC is the 0/1 prediction itself, and the identifier within each predicted class
    "prediction_auroc",
    "auroc_predicted_positive",
    "auroc_predicted_negative",
    "delta_vs_prediction",
    "delta_vs_prediction_ci_low",
    "delta_vs_prediction_ci_high",
    "auroc_pooled",
    "n",
    "n_patients",
    "n_misclassified",
    "ci_method",  # "bootstrap" (patient resamples) or "analytic" (clustered DeLong, large pairs)
    "learner_settings",
    "n_replicates_dropped",  # bootstrap resamples with one class, left out of the intervals (NaN: analytic)
)


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC, NaN with fewer than two classes."""
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))
