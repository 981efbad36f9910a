"""Patient-grouped splits: a calibration/test split and cross-validation folds.

Every split in cxrfail groups by patient (DESIGN.md, "Domain conventions"): all rows (images or studies) of
one patient land on the same side. Both functions are deterministic for a given ``seed`` and do not depend on
the order of the rows: patients are sorted by id before they are shuffled, so the same patient gets the same
assignment however the cohort table is ordered.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import pandas as pd

CALIBRATION = "calibration"
TEST = "test"


def _patient_codes(patient_ids: Sequence[object] | np.ndarray | pd.Series, name: str = "patient_ids"):
    """(codes per row, number of patients): codes index the patients sorted by id (as text)."""
    values = pd.Series(
        np.asarray(patient_ids, dtype=object)
        if not isinstance(patient_ids, pd.Series)
        else patient_ids.to_numpy(dtype=object)
    )
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    missing = values.isna()
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"{name} has {int(missing.sum())} missing value(s), e.g. at row {first}; every row needs a patient id"
        )
    unique, codes = np.unique(values.astype(str).to_numpy(dtype=str), return_inverse=True)
    return codes.ravel(), len(unique)


def patient_split(
    patient_ids: Sequence[object] | np.ndarray | pd.Series,
    calibration_fraction: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Split rows into a calibration and a test part, by patient.

    Args:
        patient_ids: (n,) one patient id per row (any hashable; compared as text). No missing values.
        calibration_fraction: share of *patients* (not rows) in the calibration part, strictly between 0 and 1.
            The number of calibration patients is ``round(fraction * n_patients)``, kept within
            ``[1, n_patients - 1]`` so that both parts are non-empty.
        seed: seed of the shuffle of patients.

    Returns:
        (n,) object array of ``"calibration"`` / ``"test"``, aligned with ``patient_ids``.

    Raises:
        ValueError: fraction outside (0, 1), fewer than 2 patients, or missing patient ids.
    """
    fraction = float(calibration_fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"calibration_fraction must be strictly between 0 and 1, got {calibration_fraction!r}")
    codes, n_patients = _patient_codes(patient_ids)
    if n_patients < 2:
        raise ValueError(f"patient_ids has {n_patients} distinct patient(s); a split needs at least 2")
    n_calibration = min(max(int(round(fraction * n_patients)), 1), n_patients - 1)
    order = np.random.default_rng(seed).permutation(n_patients)
    is_calibration = np.zeros(n_patients, dtype=bool)
    is_calibration[order[:n_calibration]] = True
    return np.where(is_calibration[codes], CALIBRATION, TEST).astype(object)


def patient_folds(
    patient_ids: Sequence[object] | np.ndarray | pd.Series,
    n_folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Assign rows to ``n_folds`` cross-validation folds, by patient, balanced in rows.

    Patients are shuffled by ``seed``, then placed largest first (by number of rows; ties in shuffled order)
    into the fold with the fewest rows so far. (scikit-learn's ``GroupKFold(shuffle=True)`` balances the number
    of patients per fold, not rows; without shuffle it is not seeded. This is its greedy rule, seeded.)

    Args:
        patient_ids: (n,) one patient id per row; no missing values.
        n_folds: number of folds, at least 2 and at most the number of patients.
        seed: seed of the shuffle of patients.

    Returns:
        (n,) int64 array of fold indices in ``0 .. n_folds - 1``.
    """
    n_folds = int(n_folds)
    codes, n_patients = _patient_codes(patient_ids)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if n_patients < n_folds:
        raise ValueError(f"patient_ids has {n_patients} distinct patient(s), fewer than n_folds={n_folds}")
    sizes = np.bincount(codes, minlength=n_patients)
    shuffled = np.random.default_rng(seed).permutation(n_patients)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    fold_of_patient = np.empty(n_patients, dtype=np.int64)
    # A heap of (rows so far, fold): the lightest fold first, the lowest-numbered among equally light ones.
    lightest = [(0, fold) for fold in range(n_folds)]
    for patient, size in zip(order.tolist(), sizes[order].tolist()):
        load, fold = heapq.heappop(lightest)
        fold_of_patient[patient] = fold
        heapq.heappush(lightest, (load + size, fold))
    return fold_of_patient[codes]


def calibration_rows(patient_ids, split) -> np.ndarray:
    """(n,) bool, True on calibration rows, after checking that ``split`` is a patient split.

    Args:
        patient_ids: (n,) patient of each row.
        split: (n,) `CALIBRATION` / `TEST` per row.

    Raises:
        ValueError: another value in ``split``, a split without calibration or test rows, a patient in both, or
            shapes that differ.
    """
    patients = np.asarray(patient_ids, dtype=object)
    parts = np.asarray(split, dtype=object)
    if parts.shape != patients.shape or parts.ndim != 1:
        raise ValueError(f"split must have shape {patients.shape} (one value per row), got {parts.shape}")
    unknown = set(pd.unique(parts)) - {CALIBRATION, TEST}
    if unknown:
        raise ValueError(f"split has values {sorted(map(str, unknown))}; use {CALIBRATION!r} and {TEST!r}")
    calibration = parts == CALIBRATION
    if not calibration.any() or calibration.all():
        raise ValueError("split needs both calibration and test rows")
    shared = set(pd.unique(patients[calibration])) & set(pd.unique(patients[~calibration]))
    if shared:
        raise ValueError(
            f"{len(shared)} patient(s) are in both splits, e.g. {sorted(map(str, shared))[:3]}; split by patient"
        )
    return calibration
