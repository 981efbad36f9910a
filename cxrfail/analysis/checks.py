"""Refuse (model, finding) pairs whose splits cannot support the analysis; warn about small ones.

A pair whose calibration or test split lacks positives or negatives has no threshold to choose or no F1,
AUROC or misclassification pattern to judge; a test split with very few patients gives intervals that
resample a handful of clusters. Such a pair gets a one-line refusal reason instead of confident numbers
(the pipeline records it on stderr, in ``manifest.json`` and on the pages, and runs the other pairs). A split
that is valid but small runs with warnings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrfail.analysis.config import MIN_TEST_PATIENTS
from cxrfail.analysis.splits import CALIBRATION, TEST
from cxrfail.analysis.validation import as_binary

#: default: fewer positives or negatives than this in a split gives a warning
MIN_CLASS_ROWS = 10
#: default: a test split with fewer patients than this gives a warning
SMALL_TEST_PATIENTS = 200
#: default: one patient owning more than this share of the test rows gives a warning
MAX_PATIENT_SHARE = 0.1


@dataclass(frozen=True)
class PairCheck:
    """Whether a (model, finding) pair can be analysed.

    Attributes:
        reason: one line saying why the pair is refused; None when it may run.
        warnings: one-line warnings for a pair that runs on small splits (empty when all is well).
        counts: rows, positives, negatives and patients per split, e.g. ``counts["test"]["patients"]``.
    """

    reason: str | None
    warnings: tuple[str, ...]
    counts: dict[str, dict[str, int]]

    @property
    def refused(self) -> bool:
        """True when the pair must not be analysed (``reason`` says why)."""
        return self.reason is not None


def check_pair(
    y,
    split,
    patients,
    *,
    min_test_patients: int = MIN_TEST_PATIENTS,
    min_class_rows: int = MIN_CLASS_ROWS,
    small_test_patients: int = SMALL_TEST_PATIENTS,
    max_patient_share: float = MAX_PATIENT_SHARE,
) -> PairCheck:
    """Check one pair's labels across its patient splits.

    Args:
        y: (n,) 0/1 labels of the finding (rows with a usable label only).
        split: (n,) ``"calibration"`` / ``"test"`` per row.
        patients: (n,) patient ids.
        min_test_patients: fewer distinct test patients than this refuses the pair.
        min_class_rows: fewer positives or negatives than this in a split warns.
        small_test_patients: fewer test patients than this (but at least ``min_test_patients``) warns.
        max_patient_share: one patient owning more than this share of the test rows warns.

    Returns:
        `PairCheck`. Refused when a split has no rows, no positives or no negatives, or the test split has
        fewer than ``min_test_patients`` patients; the first problem found is the reason.
    """
    labels = as_binary(y, "y")
    n = len(labels)
    parts = np.asarray(split, dtype=object)
    ids = pd.Series(np.asarray(patients, dtype=object))
    if parts.shape != (n,) or len(ids) != n:
        raise ValueError(f"split and patients must have {n} rows like y, got {parts.shape[0]} and {len(ids)}")
    unknown = set(pd.unique(parts)) - {CALIBRATION, TEST}
    if unknown:
        raise ValueError(f"split has values {sorted(map(str, unknown))}; use {CALIBRATION!r} and {TEST!r}")
    counts = {}
    for name in (CALIBRATION, TEST):
        member = parts == name
        positives = int(labels[member].sum())
        counts[name] = {
            "rows": int(member.sum()),
            "positives": positives,
            "negatives": int(member.sum()) - positives,
            "patients": int(ids[member].nunique()),
        }
    reason = _refusal(counts, min_test_patients)
    warnings: list[str] = []
    if reason is None:
        for name in (CALIBRATION, TEST):
            for kind in ("positives", "negatives"):
                if counts[name][kind] < min_class_rows:
                    warnings.append(f"only {counts[name][kind]} {kind} in the {name} split: its estimates are unstable")
        if counts[TEST]["patients"] < small_test_patients:
            warnings.append(f"only {counts[TEST]['patients']} patients in the test split: wide intervals")
        largest = int(ids[parts == TEST].value_counts().iloc[0])
        if largest > max_patient_share * counts[TEST]["rows"]:
            warnings.append(
                f"one patient owns {largest} of {counts[TEST]['rows']} test rows: the patient-level "
                "intervals rest on few independent units"
            )
    return PairCheck(reason, tuple(warnings), counts)


def _refusal(counts: dict[str, dict[str, int]], min_test_patients: int) -> str | None:
    """The first reason the splits cannot be analysed, as one line; None when they can."""
    for name in (CALIBRATION, TEST):
        part = counts[name]
        if part["rows"] == 0:
            return f"refused: the {name} split has no rows"
        if part["positives"] == 0:
            return f"refused: no positives in the {name} split ({part['rows']} rows)"
        if part["negatives"] == 0:
            return f"refused: no negatives in the {name} split (all {part['rows']} rows positive)"
    if counts[TEST]["patients"] < min_test_patients:
        return (
            f"refused: {counts[TEST]['patients']} patient(s) in the test split, fewer than the minimum "
            f"{min_test_patients}"
        )
    return None
