"""Threshold choice: vectorised max-F1 and Youden equal a brute-force search; degenerate inputs fall back."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from cxrfail.analysis.thresholds import THRESHOLD_METHODS, ThresholdChoice, choose_threshold


def _brute_force(y, p, criterion):
    """Best score over every distinct probability (predict positive when p >= t); ties -> highest t."""
    best_t, best = None, -np.inf
    for t in sorted(set(p.tolist()), reverse=True):
        pred = (p >= t).astype(int)
        if criterion == "max_f1":
            score = f1_score(y, pred, zero_division=0)
        else:
            score = pred[y == 1].mean() - pred[y == 0].mean()
        if score > best + 1e-12:
            best_t, best = t, score
    return best_t, best


@pytest.mark.parametrize("method", ["max_f1", "youden"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_on_random_data_with_ties(method, seed):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, size=300)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(2)  # rounding makes ties
    choice = choose_threshold(y, p, method=method)
    expected_t, expected_score = _brute_force(y, p, method)
    assert choice == ThresholdChoice(expected_t, method, None)
    pred = (p >= choice.threshold).astype(int)
    if method == "max_f1":
        assert f1_score(y, pred) == pytest.approx(expected_score, abs=1e-12)


def test_perfectly_separable_data_gets_a_separating_threshold():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    assert choose_threshold(y, p, "max_f1").threshold == 0.7
    assert choose_threshold(y, p, "youden").threshold == 0.7


def test_fixed_method_and_validation():
    assert choose_threshold([0, 1], [0.2, 0.8], "fixed", fixed=0.4) == ThresholdChoice(0.4, "fixed", None)
    assert THRESHOLD_METHODS == ("max_f1", "youden", "fixed")
    with pytest.raises(ValueError, match="unknown threshold method"):
        choose_threshold([0, 1], [0.2, 0.8], "best")
    with pytest.raises(ValueError, match="0/1"):
        choose_threshold([0, 2], [0.2, 0.8])
    with pytest.raises(ValueError, match="rows"):
        choose_threshold([0, 1, 1], [0.2, 0.8])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_threshold([0, 1], [0.2, 1.8])


@pytest.mark.parametrize(
    "y, p, what",
    [
        ([], [], "no rows"),
        ([0, 0, 0], [0.1, 0.5, 0.9], "no positives"),
        ([1, 1], [0.1, 0.5], "no negatives"),
    ],
)
@pytest.mark.parametrize("method", ["max_f1", "youden"])
def test_degenerate_input_falls_back_to_fixed_with_a_note(y, p, what, method):
    choice = choose_threshold(y, p, method=method, fixed=0.3)
    assert choice.threshold == 0.3
    assert choice.method == "fixed"
    assert what in choice.note and method in choice.note
