"""Outcomes at an operating point: prediction, misclassified, false positive, false negative; F1 and friends.

Convention (matches scikit-learn with ``zero_division=0``): precision, recall and F1 are 0.0 when their
denominator is 0 (no positive predictions, no positives, or neither).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrfail.analysis.validation import as_binary, as_probability


def classify(y_true, probability, threshold: float) -> pd.DataFrame:
    """Per-row outcomes at ``threshold`` (predict positive when ``probability >= threshold``).

    Args:
        y_true: (n,) 0/1 ground truth (array or Series).
        probability: (n,) probabilities in [0, 1].
        threshold: the operating threshold, a probability.

    Returns:
        DataFrame with n rows and int64 0/1 columns ``prediction``, ``misclassified``, ``false_positive``,
        ``false_negative``. Index: that of ``y_true`` (or ``probability``) when it is a Series, else a
        RangeIndex.
    """
    index = next((obj.index for obj in (y_true, probability) if isinstance(obj, pd.Series)), None)
    y = as_binary(y_true, "y_true")
    p = as_probability(probability, "probability", len(y))
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    prediction = (p >= threshold).astype(np.int64)
    return pd.DataFrame(
        {
            "prediction": prediction,
            "misclassified": (prediction != y).astype(np.int64),
            "false_positive": ((prediction == 1) & (y == 0)).astype(np.int64),
            "false_negative": ((prediction == 0) & (y == 1)).astype(np.int64),
        },
        index=index if index is not None else pd.RangeIndex(len(y)),
    )


def _ratio(numerator, denominator) -> np.ndarray:
    numerator = np.asarray(numerator, dtype="float64")
    denominator = np.asarray(denominator, dtype="float64")
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def f1_from_counts(tp, fp, fn) -> np.ndarray:
    """F1 = 2 tp / (2 tp + fp + fn), elementwise over arrays of counts (any matching shape; counts may be
    weighted, i.e. non-integer). 0.0 where the denominator is 0. Returns float64 of the broadcast shape."""
    tp = np.asarray(tp, dtype="float64")
    return _ratio(2.0 * tp, 2.0 * tp + np.asarray(fp, dtype="float64") + np.asarray(fn, dtype="float64"))


def binary_metrics(y_true, y_pred) -> dict:
    """Confusion counts and F1, precision, recall of 0/1 predictions.

    Args:
        y_true: (n,) 0/1 ground truth.
        y_pred: (n,) 0/1 predictions.

    Returns:
        dict with int ``n``, ``n_pos``, ``tp``, ``fp``, ``fn``, ``tn`` and float ``f1``, ``precision``,
        ``recall`` (each 0.0 when its denominator is 0, like scikit-learn's ``zero_division=0``).
    """
    y = as_binary(y_true, "y_true")
    pred = as_binary(y_pred, "y_pred", len(y))
    y = y.astype(bool)
    pred = pred.astype(bool)
    tp = int(np.sum(y & pred))
    fp = int(np.sum(~y & pred))
    fn = int(np.sum(y & ~pred))
    tn = int(np.sum(~y & ~pred))
    return {
        "n": int(len(y)),
        "n_pos": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "f1": float(f1_from_counts(tp, fp, fn)),
        "precision": float(_ratio(tp, tp + fp)),
        "recall": float(_ratio(tp, tp + fn)),
    }
