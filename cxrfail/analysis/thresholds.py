"""Operating points: the probability threshold of a (model, finding), chosen on the calibration split.

A row is predicted positive when ``probability >= threshold``. Candidate thresholds are the distinct
probabilities themselves, so the chosen threshold is always one of the observed calibration probabilities
(``fixed`` excepted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrfail.analysis.config import THRESHOLD_METHODS
from cxrfail.analysis.validation import as_binary, as_probability


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold (probability, in [0, 1]), how it was chosen, and why it fell back, if it did."""

    threshold: float
    method: str
    note: str | None = None


def _validate_binary(y_true, probability, *, y_name: str = "y_true", p_name: str = "probability"):
    """Check (n,) 0/1 labels and (n,) probabilities in [0, 1]; return them as int8 and float64 arrays."""
    y = as_binary(y_true, y_name)
    return y.astype(np.int8), as_probability(probability, p_name, len(y))


def _cut_point_counts(y: np.ndarray, p: np.ndarray):
    """For each distinct probability t (descending): (t, true positives, false positives) of ``p >= t``."""
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    y_sorted = y[order].astype(np.int64)
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    # the last row of each run of equal probabilities: predicting >= t includes every tie of t
    last_of_run = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    return p_sorted[last_of_run], tp[last_of_run], fp[last_of_run]


def choose_threshold(
    y_true,
    probability,
    method: str = "max_f1",
    fixed: float = 0.5,
) -> ThresholdChoice:
    """Choose the operating threshold on (calibration) data.

    Args:
        y_true: (n,) 0/1 ground truth.
        probability: (n,) model probabilities in [0, 1].
        method: ``"max_f1"`` (the threshold maximising F1), ``"youden"`` (maximising TPR - FPR) or ``"fixed"``.
        fixed: the threshold of ``"fixed"``, and the fallback when data cannot choose one.

    Returns:
        `ThresholdChoice`. Ties between cut points are broken towards the *highest* threshold (fewest
        positive predictions). With no rows, or with only one class present, neither criterion is defined:
        the result is ``fixed`` with ``method="fixed"`` and a ``note`` saying why.

    The search covers every distinct probability as a cut point, computed from cumulative counts after one
    sort (O(n log n)).
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {', '.join(THRESHOLD_METHODS)}")
    if not 0.0 <= float(fixed) <= 1.0:
        raise ValueError(f"fixed threshold must be in [0, 1], got {fixed!r}")
    y, p = _validate_binary(y_true, probability)
    if method == "fixed":
        return ThresholdChoice(float(fixed), "fixed")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if len(y) == 0 or n_pos == 0 or n_neg == 0:
        what = "no rows" if len(y) == 0 else ("no positives" if n_pos == 0 else "no negatives")
        return ThresholdChoice(
            float(fixed),
            "fixed",
            note=f"{method} undefined ({what}); fell back to the fixed threshold {float(fixed):g}",
        )
    cuts, tp, fp = _cut_point_counts(y, p)
    if method == "max_f1":
        score = 2.0 * tp / (2.0 * tp + fp + (n_pos - tp))  # denominator >= n_pos > 0
    else:
        score = tp / n_pos - fp / n_neg
    # cuts are descending, so argmax (first maximum) is the highest threshold among ties
    best = int(np.argmax(score))
    return ThresholdChoice(float(cuts[best]), method)
