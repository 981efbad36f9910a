"""Patient-grouped splits: no patient on both sides, seed-deterministic, order-independent, balanced folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrfail.analysis.splits import patient_folds, patient_split


@pytest.fixture
def patients() -> np.ndarray:
    rng = np.random.default_rng(7)
    sizes = rng.geometric(0.3, size=400)  # 1 to ~20 rows per patient, like NIH follow-ups
    return np.repeat([f"p{i:04d}" for i in range(len(sizes))], sizes)


def test_split_never_splits_a_patient_and_shares_patients(patients):
    split = patient_split(patients, calibration_fraction=0.3, seed=1)
    assert split.shape == patients.shape
    assert set(split) == {"calibration", "test"}
    per_patient = pd.Series(split).groupby(patients).nunique()
    assert per_patient.max() == 1
    calibration_patients = pd.Series(split == "calibration").groupby(patients).first()
    assert calibration_patients.sum() == round(0.3 * 400)


def test_split_is_seed_deterministic_and_ignores_row_order(patients):
    first = patient_split(patients, seed=3)
    assert np.array_equal(first, patient_split(patients, seed=3))
    assert not np.array_equal(first, patient_split(patients, seed=4))
    order = np.random.default_rng(0).permutation(len(patients))
    shuffled = patient_split(patients[order], seed=3)
    assert np.array_equal(shuffled, first[order])


def test_split_rejects_bad_fraction_and_single_patient():
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="calibration_fraction"):
            patient_split(["a", "b"], calibration_fraction=fraction)
    with pytest.raises(ValueError, match="at least 2"):
        patient_split(["a", "a", "a"])
    with pytest.raises(ValueError, match="missing"):
        patient_split(pd.Series(["a", None, "b"]))


def test_split_keeps_both_sides_non_empty_with_two_patients():
    split = patient_split(["a", "b", "b"], calibration_fraction=0.01)
    assert set(split) == {"calibration", "test"}


def test_folds_group_by_patient_balance_rows_and_are_seeded(patients):
    folds = patient_folds(patients, n_folds=5, seed=2)
    assert folds.dtype == np.int64
    assert set(folds) == set(range(5))
    assert pd.Series(folds).groupby(patients).nunique().max() == 1
    rows_per_fold = np.bincount(folds)
    assert rows_per_fold.max() - rows_per_fold.min() <= np.bincount(pd.factorize(patients)[0]).max()
    assert np.array_equal(folds, patient_folds(patients, n_folds=5, seed=2))
    assert not np.array_equal(folds, patient_folds(patients, n_folds=5, seed=3))


def test_folds_reject_too_many_folds():
    with pytest.raises(ValueError, match="fewer than n_folds"):
        patient_folds(["a", "b", "c"], n_folds=5)
    with pytest.raises(ValueError, match="at least 2"):
        patient_folds(["a", "b", "c"], n_folds=1)
