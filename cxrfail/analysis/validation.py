"""Argument checks shared by the analysis steps (programming errors, not user-file errors: ValueError)."""

from __future__ import annotations

import numpy as np


def as_binary(values, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as an (n,) int64 array of 0/1; raises ValueError naming ``name`` and the first bad row for
    anything else (NaN included), a wrong shape, or a length other than ``n``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ValueError(f"{name} has {len(array)} rows, expected {n}")
    as_float = array.astype("float64")
    bad = ~np.isin(as_float, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"{name} must be 0/1 with no missing values, found {array[bad][:3].tolist()} "
            f"(e.g. at row {int(np.flatnonzero(bad)[0])})"
        )
    return as_float.astype(np.int64)


def as_probability(values, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as an (n,) float64 array in [0, 1] with no NaN; ValueError otherwise."""
    array = np.asarray(values, dtype="float64")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise ValueError(f"{name} has {len(array)} rows, expected {n}")
    if np.isnan(array).any() or (array < 0).any() or (array > 1).any():
        raise ValueError(f"{name} must be in [0, 1] with no NaN")
    return array
