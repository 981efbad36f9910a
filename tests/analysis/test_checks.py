"""Pair checks on degenerate cohorts (one class in a split, too few test patients): refused with a reason;
small but valid ones warn."""

from __future__ import annotations

import numpy as np
import pytest

from cxrfail.analysis.checks import check_pair
from cxrfail.analysis.splits import patient_split


def _cohort(n_patients: int = 400, rows_per_patient: int = 2, prevalence: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rows_per_patient).astype(str)
    y = rng.binomial(1, prevalence, len(patients))
    return y, patient_split(patients, 0.5, seed=seed), patients


def test_a_healthy_cohort_runs_without_warnings():
    y, split, patients = _cohort()
    check = check_pair(y, split, patients)
    assert not check.refused and check.reason is None and check.warnings == ()
    assert check.counts["test"]["patients"] + check.counts["calibration"]["patients"] == 400
    assert check.counts["test"]["positives"] == y[split == "test"].sum()


@pytest.mark.parametrize("prevalence, word", [(0.0, "no positives"), (1.0, "no negatives")])
def test_a_cohort_with_one_class_is_refused(prevalence, word):
    y, split, patients = _cohort(prevalence=prevalence)
    check = check_pair(y, split, patients)
    assert check.refused and word in check.reason and "calibration" in check.reason
    assert "\n" not in check.reason


def test_one_class_in_the_test_split_only_is_refused():
    y, split, patients = _cohort()
    y[split == "test"] = 0
    assert check_pair(y, split, patients).reason.startswith("refused: no positives in the test split")


def test_many_test_rows_of_few_patients_are_refused_for_the_patients():
    """One patient owns 390 of 400 rows (11 patients in all): where that patient is in the test split, the
    split has hundreds of rows but far fewer patients than the minimum, and the count that refuses it is the
    patients', not the rows'."""
    rng = np.random.default_rng(1)
    patients = np.r_[np.repeat("big", 390), [f"p{i}" for i in range(10)]].astype(object)
    y = rng.binomial(1, 0.3, 400)
    y[:2], y[2:4] = 1, 0  # both classes on the big patient's side
    checked_with_big_in_test = 0
    for seed in range(10):  # the big patient is in the test split at seeds 5, 6 and 9
        split = patient_split(patients, 0.5, seed=seed)
        y_seed = y.copy()
        test = np.flatnonzero(split == "test")
        calibration = np.flatnonzero(split == "calibration")
        y_seed[test[:1]], y_seed[test[-1:]] = 1, 0  # so the reason is the patients, not a missing class
        y_seed[calibration[:1]], y_seed[calibration[-1:]] = 1, 0
        check = check_pair(y_seed, split, patients)
        assert check.refused and "patient(s) in the test split, fewer than the minimum 30" in check.reason
        if split[0] == "test":
            assert check.counts["test"]["rows"] >= 390 and check.counts["test"]["patients"] <= 11
            checked_with_big_in_test += 1
    assert checked_with_big_in_test > 0


def test_small_but_valid_splits_run_with_warnings():
    y, split, patients = _cohort(n_patients=80, prevalence=0.05, seed=2)
    y[np.flatnonzero(split == "test")[:1]] = 1
    y[np.flatnonzero(split == "calibration")[:1]] = 1
    check = check_pair(y, split, patients)
    assert not check.refused
    assert any("positives in the test split" in text for text in check.warnings)
    assert any("patients in the test split" in text for text in check.warnings)
    owner = np.r_[np.repeat("big", 60), np.arange(300).astype(str)].astype(object)
    y2 = np.random.default_rng(3).binomial(1, 0.3, len(owner))
    split2 = np.where(np.isin(owner, ["big"] + [str(i) for i in range(150)]), "test", "calibration")
    warned = check_pair(y2, split2, owner)
    assert not warned.refused and any("one patient owns 60 of 210 test rows" in text for text in warned.warnings)


def test_bad_arguments():
    y, split, patients = _cohort(n_patients=10)
    with pytest.raises(ValueError, match="split has values"):
        check_pair(y, np.where(split == "test", "val", split), patients)
    with pytest.raises(ValueError, match="rows like y"):
        check_pair(y, split[:-1], patients)
