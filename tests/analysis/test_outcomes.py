"""Outcomes at a threshold and count-based F1 agree with scikit-learn (zero_division=0)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from cxrfail.analysis.outcomes import binary_metrics, classify, f1_from_counts


def test_classify_columns_values_and_index():
    y = pd.Series([1, 0, 1, 0], index=["a", "b", "c", "d"])
    p = np.array([0.9, 0.6, 0.2, 0.5])
    out = classify(y, p, threshold=0.6)
    assert list(out.columns) == ["prediction", "misclassified", "false_positive", "false_negative"]
    assert list(out.index) == ["a", "b", "c", "d"]
    assert out["prediction"].tolist() == [1, 1, 0, 0]  # 0.6 >= 0.6 is positive
    assert out["misclassified"].tolist() == [0, 1, 1, 0]
    assert out["false_positive"].tolist() == [0, 1, 0, 0]
    assert out["false_negative"].tolist() == [0, 0, 1, 0]
    assert (out.dtypes == np.int64).all()
    assert isinstance(classify([1, 0], [0.4, 0.3], 0.5).index, pd.RangeIndex)


@pytest.mark.parametrize("seed", range(4))
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.2, 200)
    pred = rng.binomial(1, 0.3, 200)
    metrics = binary_metrics(y, pred)
    assert metrics["f1"] == pytest.approx(f1_score(y, pred), abs=1e-15)
    assert metrics["precision"] == pytest.approx(precision_score(y, pred), abs=1e-15)
    assert metrics["recall"] == pytest.approx(recall_score(y, pred), abs=1e-15)
    assert metrics["tp"] + metrics["fp"] + metrics["fn"] + metrics["tn"] == metrics["n"] == 200
    assert metrics["n_pos"] == y.sum()


def test_a_model_predicting_one_class_gets_zero_not_an_error():
    y = np.array([1, 0, 1, 0])
    none = binary_metrics(y, np.zeros(4, dtype=int))
    assert none["f1"] == none["precision"] == none["recall"] == 0.0
    assert none["f1"] == f1_score(y, np.zeros(4, dtype=int), zero_division=0)
    no_positives = binary_metrics(np.zeros(3, dtype=int), np.zeros(3, dtype=int))
    assert no_positives["f1"] == 0.0 and no_positives["tn"] == 3


def test_f1_from_counts_is_vectorised_and_zero_on_empty_denominator():
    tp = np.array([[3, 0], [5, 0]])
    fp = np.array([[1, 0], [0, 2]])
    fn = np.array([[2, 0], [5, 1]])
    f1 = f1_from_counts(tp, fp, fn)
    assert f1.shape == (2, 2)
    np.testing.assert_allclose(f1, [[6 / 9, 0.0], [10 / 15, 0.0]])
    assert float(f1_from_counts(2.5, 0.5, 1.0)) == pytest.approx(5 / 6.5)  # weighted counts are fine
