"""Patient-level bootstrap of the F1 change, of AUROC and of ratios: exact estimates, paired and clustered
resampling, agreement with a slow row-gathering reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from cxrfail.analysis import resampling
from cxrfail.analysis.auroc_intervals import bootstrap_auroc, bootstrap_auroc_set
from cxrfail.analysis.resampling import (
    BootstrapInterval,
    bootstrap_ratio,
    paired_bootstrap_f1_change,
)


def paired_auroc_difference(y, score, other, groups, **kwargs):
    """AUROC(score) - AUROC(other) from one set of patient draws (NaN interval with one class)."""
    replicates = bootstrap_auroc_set(y, {"score": score, "other": other}, groups, **kwargs)
    if replicates is None:
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    return replicates.difference("score", "other")


def _data(n_patients: int, seed: int, prevalence: float = 0.2):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_patients)
    groups = np.repeat(np.arange(n_patients), sizes)
    n = len(groups)
    y = rng.binomial(1, prevalence, n)
    score = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1).round(2)  # ties
    before = (score >= 0.5).astype(int)
    after = before.copy()
    flip = rng.random(n) < 0.1
    after[flip] = 1 - after[flip]
    return y, score, before, after, groups


def test_f1_change_estimate_is_the_direct_difference_of_sklearn_f1():
    y, _, before, after, groups = _data(300, seed=0)
    result = paired_bootstrap_f1_change(y, before, after, groups, n_replicates=500, seed=1)
    assert isinstance(result, BootstrapInterval)
    assert result.estimate == pytest.approx(f1_score(y, after) - f1_score(y, before), abs=1e-15)
    assert result.ci_low <= result.estimate <= result.ci_high
    assert result.n_replicates == 500 and result.replicates.shape == (500,)


def test_identical_predictions_give_a_zero_interval():
    y, _, before, _, groups = _data(100, seed=2)
    result = paired_bootstrap_f1_change(y, before, before, groups, n_replicates=300)
    assert (result.estimate, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.spans_zero


def test_seeded_and_paired():
    y, _, before, after, groups = _data(200, seed=3)
    first = paired_bootstrap_f1_change(y, before, after, groups, n_replicates=400, seed=7)
    assert np.array_equal(
        first.replicates, paired_bootstrap_f1_change(y, before, after, groups, n_replicates=400, seed=7).replicates
    )
    assert not np.array_equal(
        first.replicates, paired_bootstrap_f1_change(y, before, after, groups, n_replicates=400, seed=8).replicates
    )
    # one patient: every resample is the whole data set, so the interval collapses on the estimate
    single = paired_bootstrap_f1_change(y, before, after, np.zeros(len(y)), n_replicates=50)
    assert single.ci_low == single.ci_high == pytest.approx(single.estimate)


def test_a_model_that_predicts_one_class_gives_zero_f1_not_an_error():
    y, _, _, after, groups = _data(80, seed=4)
    result = paired_bootstrap_f1_change(y, np.zeros(len(y)), after, groups, n_replicates=200)
    assert result.estimate == pytest.approx(f1_score(y, after))
    none = paired_bootstrap_f1_change(np.zeros(10), np.zeros(10), np.zeros(10), np.arange(10), n_replicates=20)
    assert (none.estimate, none.ci_low, none.ci_high) == (0.0, 0.0, 0.0)


def _row_f1(y, pred):
    tp, fp, fn = np.sum((y == 1) & (pred == 1)), np.sum((y == 0) & (pred == 1)), np.sum((y == 1) & (pred == 0))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def _slow_reference(y, before, after, groups, n_replicates, seed):
    """Resample patients, gather their rows, F1 before and after from the gathered rows: the definition.
    (F1 from row-level confusion counts, checked against sklearn on the first replicates; sklearn on all of
    them would take ~30 s.)"""
    rng = np.random.default_rng(seed)
    patients = np.unique(groups)
    rows_of = {patient: np.flatnonzero(groups == patient) for patient in patients}
    deltas = np.empty(n_replicates)
    for r in range(n_replicates):
        rows = np.concatenate([rows_of[p] for p in rng.choice(patients, size=len(patients), replace=True)])
        deltas[r] = _row_f1(y[rows], after[rows]) - _row_f1(y[rows], before[rows])
        if r < 20:
            assert deltas[r] == pytest.approx(
                f1_score(y[rows], after[rows], zero_division=0) - f1_score(y[rows], before[rows], zero_division=0),
                abs=1e-12,
            )
    return deltas


def test_fast_replicate_distribution_matches_the_slow_reference():
    # many true-negative-only patients, so the fast path's "draw only relevant patients" shortcut is exercised
    y, _, before, after, groups = _data(60, seed=5, prevalence=0.1)
    fast = paired_bootstrap_f1_change(y, before, after, groups, n_replicates=20000, seed=0).replicates
    slow = _slow_reference(y, before, after, groups, n_replicates=2000, seed=1)
    assert abs(fast.mean() - slow.mean()) < 4 * slow.std() / np.sqrt(len(slow))
    assert fast.std() == pytest.approx(slow.std(), rel=0.08)
    np.testing.assert_allclose(
        np.quantile(fast, [0.025, 0.5, 0.975]), np.quantile(slow, [0.025, 0.5, 0.975]), atol=0.25 * slow.std()
    )


def test_resampling_is_by_patient_not_by_row():
    y, _, before, after, groups = _data(400, seed=6)
    repeat = np.repeat(np.arange(len(y)), 4)  # every row four times within its patient
    clustered = paired_bootstrap_f1_change(
        y[repeat], before[repeat], after[repeat], groups[repeat], n_replicates=3000, seed=0
    )
    by_row = paired_bootstrap_f1_change(
        y[repeat], before[repeat], after[repeat], np.arange(len(repeat)), n_replicates=3000, seed=0
    )
    assert clustered.replicates.std() / by_row.replicates.std() > 1.6  # ~2 (sqrt 4) for identical copies


def test_small_memory_budget_still_works(monkeypatch):
    y, score, before, after, groups = _data(150, seed=9)
    full = paired_bootstrap_f1_change(y, before, after, groups, n_replicates=1000, seed=0)
    auroc_full = bootstrap_auroc(y, score, groups, n_replicates=300, seed=0)
    monkeypatch.setattr(resampling, "MEMORY_BUDGET", 20_000)  # a few replicates per chunk
    small = paired_bootstrap_f1_change(y, before, after, groups, n_replicates=1000, seed=0)
    assert small.estimate == full.estimate
    assert small.replicates.std() == pytest.approx(full.replicates.std(), rel=0.15)
    auroc_small = bootstrap_auroc(y, score, groups, n_replicates=300, seed=0)
    np.testing.assert_array_equal(auroc_small.replicates, auroc_full.replicates)  # draws do not depend on chunks


def test_bootstrap_auroc_replicates_equal_the_auroc_of_the_resampled_rows():
    """The replicate from patient multiplicities equals sklearn on the gathered rows of the same draw."""
    y, score, _, _, groups = _data(40, seed=12)
    result = bootstrap_auroc(y, score, groups, n_replicates=5, seed=3)
    rng = np.random.default_rng(3)
    draws = rng.integers(0, 40, size=(5, 40), dtype=np.int32)
    codes = np.unique(groups, return_inverse=True)[1]  # groups are 0..39 already, first-seen order = sorted
    rows_of = [np.flatnonzero(codes == p) for p in range(40)]
    expected = [
        roc_auc_score(y[rows], score[rows]) for rows in (np.concatenate([rows_of[p] for p in draw]) for draw in draws)
    ]
    np.testing.assert_allclose(result.replicates, expected, atol=1e-12)


def test_paired_auroc_difference_replicates_use_one_draw_for_both_scores():
    """Each replicate equals sklearn's AUROC(a) - AUROC(b) on the rows of one patient resample."""
    y, score, _, _, groups = _data(40, seed=13)
    other = np.clip(score + np.random.default_rng(0).normal(0, 0.2, len(y)), 0, 1).round(2)
    result = paired_auroc_difference(y, score, other, groups, n_replicates=5, seed=4)
    assert result.estimate == pytest.approx(roc_auc_score(y, score) - roc_auc_score(y, other))
    draws = np.random.default_rng(4).integers(0, 40, size=(5, 40), dtype=np.int32)
    rows_of = [np.flatnonzero(groups == p) for p in range(40)]
    expected = []
    for draw in draws:
        rows = np.concatenate([rows_of[p] for p in draw])
        expected.append(roc_auc_score(y[rows], score[rows]) - roc_auc_score(y[rows], other[rows]))
    np.testing.assert_allclose(result.replicates, expected, atol=1e-12)
    same = paired_auroc_difference(y, score, score, groups, n_replicates=50)
    assert same.estimate == same.ci_low == same.ci_high == 0.0
    assert np.isnan(paired_auroc_difference(np.zeros(5), score[:5], other[:5], groups[:5]).estimate)


def test_bootstrap_auroc_estimate_interval_and_degenerate_cases():
    y, score, _, _, groups = _data(300, seed=11)
    result = bootstrap_auroc(y, score, groups, n_replicates=500, seed=0)
    assert abs(result.estimate - roc_auc_score(y, score)) < 1e-12
    assert result.ci_low < result.estimate < result.ci_high
    assert result.n_replicates == 500
    one_class = bootstrap_auroc(np.zeros(20), np.linspace(0, 1, 20), np.arange(20))
    assert np.isnan([one_class.estimate, one_class.ci_low, one_class.ci_high]).all()
    assert one_class.n_replicates == 0 and not one_class.spans_zero
    # one positive patient among ten: replicates that miss it are dropped, not counted
    y_rare = np.r_[1, np.zeros(9)]
    rare = bootstrap_auroc(y_rare, np.linspace(1, 0, 10), np.arange(10), n_replicates=400, seed=0)
    assert 0 < rare.n_replicates < 400
    assert rare.n_replicates == pytest.approx(400 * (1 - 0.9**10), abs=60)
    assert rare.n_replicates + rare.n_dropped == 400  # the one-class resamples are counted, not lost
    assert (rare.replicates == 1.0).all()


def test_argument_validation():
    with pytest.raises(ValueError, match="0/1"):
        paired_bootstrap_f1_change([0, 2], [0, 1], [0, 1], [1, 2])
    with pytest.raises(ValueError, match="rows"):
        paired_bootstrap_f1_change([0, 1], [0, 1, 1], [0, 1], [1, 2])
    with pytest.raises(ValueError, match="groups"):
        bootstrap_auroc([0, 1], [0.1, 0.2], [1])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_auroc([0, 1], [0.1, np.nan], [1, 2])


def test_bootstrap_ratio_replicates_equal_the_ratio_of_the_resampled_rows():
    """Share of the errors that are of one kind: replicates equal the ratio on the gathered rows of the same
    patient draws; a denominator of 0 gives NaN, not an error."""
    y, _, before, _, groups = _data(40, seed=5)
    wrong = (before != y).astype(int)
    kind = wrong * y  # the false negatives among the errors
    result = bootstrap_ratio(kind, wrong, groups, n_replicates=5, seed=3)
    assert result.estimate == pytest.approx(kind.sum() / wrong.sum())
    rng = np.random.default_rng(3)
    draws = rng.integers(0, 40, size=(5, 40), dtype=np.int32)
    rows_of = [np.flatnonzero(groups == p) for p in range(40)]
    gathered = [np.concatenate([rows_of[p] for p in draw]) for draw in draws]
    np.testing.assert_allclose(result.replicates, [kind[rows].sum() / wrong[rows].sum() for rows in gathered])

    nothing = bootstrap_ratio(np.zeros(len(y)), np.zeros(len(y)), groups, n_replicates=5)
    assert np.isnan(nothing.estimate) and nothing.n_replicates == 0
    with pytest.raises(ValueError, match="non-negative"):
        bootstrap_ratio(-np.ones(len(y)), wrong, groups)


def test_bootstrap_ratio_interval_is_wider_when_patients_cluster():
    """Rows of a patient that share the outcome carry less information than independent rows: resampling
    patients (not rows) gives a wider interval."""
    rng = np.random.default_rng(0)
    per_patient = rng.binomial(1, 0.4, 200)
    clustered_groups = np.repeat(np.arange(200), 5)
    numerator = np.repeat(per_patient, 5)
    denominator = np.ones_like(numerator)
    clustered = bootstrap_ratio(numerator, denominator, clustered_groups, n_replicates=2000, seed=1)
    independent = bootstrap_ratio(numerator, denominator, np.arange(1000), n_replicates=2000, seed=1)
    assert clustered.estimate == independent.estimate
    assert clustered.ci_low <= clustered.estimate <= clustered.ci_high
    assert (clustered.ci_high - clustered.ci_low) > 1.8 * (independent.ci_high - independent.ci_low)


def test_ratio_replicates_with_a_zero_denominator_are_counted():
    # one patient of 12 has the only denominator rows: (11/12)^12 = 35% of resamples leave it out
    groups = np.repeat(np.arange(12), 3)
    denominator = (groups == 0).astype(float)
    numerator = denominator * np.array([1, 0, 1] * 12)
    result = bootstrap_ratio(numerator, denominator, groups, n_replicates=2000, seed=5)
    assert result.n_replicates + result.n_dropped == 2000
    assert result.n_dropped == pytest.approx(2000 * (11 / 12) ** 12, rel=0.1)
    assert bootstrap_ratio(np.ones(36), np.ones(36), groups, n_replicates=50).n_dropped == 0
