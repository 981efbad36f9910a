"""Patient-level (cluster) bootstrap of statistics that depend on patients through a few counts: the change in
F1 from flipping predictions and ratios (shares). AUROC intervals: `cxrfail.analysis.auroc_intervals`; subgroup
misclassification rates: `cxrfail.analysis.subgroups.clustered_rate` (analytic, it covers at small n).

All resample *patients* with replacement (rows of one patient are not independent, so the row is the wrong
unit to resample) and never gather rows per replicate:

* F1 depends only on the confusion counts (tp, fp, fn), a share of rows on two row sums. Each
  patient is summarised by those counts (P x C), and a resample of P patients by the sums of its drawn
  patients' rows. Patients with the same counts are interchangeable, so a resample is a multinomial draw over
  the U distinct count rows (`resample_patterns`): exactly the distribution of a full resample, at O(R U)
  instead of O(R P). F1 before and after flipping (at one tau or at every tau of a curve) are paired: one
  resample scores all of them.
Confidence intervals are percentile intervals of the replicates. Draws come from a numpy ``Generator`` seeded
with ``seed``: the same inputs and seed give the same interval. Work arrays are processed in chunks of
replicates within `MEMORY_BUDGET`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxrfail.analysis.outcomes import f1_from_counts
from cxrfail.analysis.validation import as_binary

#: memory budget (bytes) for the per-chunk work arrays
MEMORY_BUDGET = 64 * 2**20


@dataclass(frozen=True)
class BootstrapInterval:
    """A point estimate with a percentile bootstrap interval.

    Attributes:
        estimate: the statistic on the full data.
        ci_low, ci_high: percentile interval of the replicates (NaN when there are none).
        n_replicates: replicates the interval is based on (those where the statistic is defined).
        replicates: (n_replicates,) the replicate values (not compared, not shown in repr).
        n_dropped: replicates drawn but left out because the statistic is undefined on them (an AUROC of a
            resample with one class, a ratio whose resampled denominator is 0); drawn = n_replicates + n_dropped.
    """

    estimate: float
    ci_low: float
    ci_high: float
    n_replicates: int
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    n_dropped: int = 0

    @property
    def spans_zero(self) -> bool:
        """True when the interval contains 0 (ci_low <= 0 <= ci_high); False when it is NaN."""
        return bool(self.ci_low <= 0.0 <= self.ci_high)


def patient_codes(groups, n: int) -> tuple[np.ndarray, int]:
    values = pd.Series(np.asarray(groups, dtype=object))
    if len(values) != n:
        raise ValueError(f"groups has {len(values)} rows, expected {n}")
    if values.isna().any():
        raise ValueError("groups has missing values; every row needs a patient id")
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), len(uniques)


def chunk_size(values_per_replicate: int, n_replicates: int) -> int:
    """Replicates per chunk so that the work arrays (``values_per_replicate`` 8-byte values per replicate)
    stay within `MEMORY_BUDGET`."""
    return int(max(1, min(n_replicates, MEMORY_BUDGET // (8 * max(values_per_replicate, 1)))))


def patient_weights(n_patients: int, n_replicates: int, rng: np.random.Generator, chunk: int) -> Iterator[np.ndarray]:
    """Yield (chunk, n_patients) int64 multiplicities of bootstrap resamples of patients, each row summing to
    ``n_patients``; ``n_replicates`` rows in all."""
    done = 0
    while done < n_replicates:
        size = min(chunk, n_replicates - done)
        draws = rng.integers(0, n_patients, size=(size, n_patients), dtype=np.int32).astype(np.int64)
        draws += (np.arange(size, dtype=np.int64) * n_patients)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * n_patients).reshape(size, n_patients)
        done += size


#: `resample_patterns` looks for repeated rows only in matrices at most this wide
MAX_PATTERN_COLUMNS = 16


def resample_patterns(per_patient: np.ndarray, n_replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(R, C) column sums of ``per_patient`` (P, C) over R bootstrap resamples of its P rows (patients).

    A statistic that depends on the patients only through these sums does not tell apart two patients with
    the same row of ``per_patient``: a resample of P patients is then a multinomial draw of P over the U
    distinct rows (patterns), each with probability (patients showing it) / P. Drawing those multiplicities
    gives exactly the distribution of the full resample's sums at a cost of O(R U) instead of O(R P); counts
    per patient repeat a lot (U is tens to a few thousands where P is tens of thousands). Where they hardly
    repeat (8 U > P), or rows are too wide to compare cheaply (more than `MAX_PATTERN_COLUMNS`), patients are
    drawn directly (`patient_weights`), the same distribution.

    Args:
        per_patient: (P, C) per-patient values (e.g. counts of misclassified rows and of rows).
        n_replicates: replicates R.
        rng: the Generator the draws come from.

    Returns:
        (R, C) float64 sums of the drawn patients' rows.
    """
    values = np.asarray(per_patient, dtype="float64")
    n_patients = len(values)
    out = np.empty((int(n_replicates), values.shape[1]))
    if values.shape[1] <= MAX_PATTERN_COLUMNS:
        patterns, inverse = _distinct_rows(values)
    if (
        values.shape[1] > MAX_PATTERN_COLUMNS or len(patterns) * 8 > n_patients
    ):  # patterns hardly repeat: drawing patients is cheaper than a multinomial
        done = 0
        chunk = chunk_size(3 * n_patients, int(n_replicates))
        for weights in patient_weights(n_patients, int(n_replicates), rng, chunk):
            out[done : done + len(weights)] = weights.astype(np.float64) @ values
            done += len(weights)
        return out
    share = np.bincount(inverse, minlength=len(patterns)) / n_patients
    chunk = chunk_size(2 * len(patterns), int(n_replicates))
    for start in range(0, int(n_replicates), chunk):
        size = min(chunk, int(n_replicates) - start)
        multiplicity = rng.multinomial(n_patients, share, size=size).astype(np.float64)
        out[start : start + size] = multiplicity @ patterns  # exact: integer sums < 2**53
    return out


def _distinct_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U, C) distinct rows of ``values`` (P, C) and (P,) the index of each row among them, as
    ``np.unique(values, axis=0, return_inverse=True)`` but by one integer key per row (each column's value
    codes in mixed radix) instead of a sort of whole rows; falls back to it when the key would overflow."""
    key = np.zeros(len(values), dtype=np.int64)
    radix = 1
    for column in values.T:
        distinct, codes = np.unique(column, return_inverse=True)
        radix *= len(distinct)
        if radix >= 2**62:
            patterns, inverse = np.unique(values, axis=0, return_inverse=True)
            return patterns, inverse.ravel()
        key = key * len(distinct) + codes
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return values[first], inverse.ravel()


def _percentile(values: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def check_confidence(confidence: float, n_replicates: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if int(n_replicates) < 1:
        raise ValueError(f"n_replicates must be at least 1, got {n_replicates!r}")


def paired_bootstrap_f1_change(
    y_true,
    pred_before,
    pred_after,
    groups,
    *,
    n_replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """F1(after) - F1(before) with a paired, patient-level percentile bootstrap interval.

    Args:
        y_true: (n,) 0/1 ground truth.
        pred_before, pred_after: (n,) 0/1 predictions (e.g. before and after flipping).
        groups: (n,) patient ids; patients are resampled with replacement, the same resample for before and
            after.
        n_replicates: bootstrap replicates R.
        seed: seed of the numpy Generator.
        confidence: coverage of the interval.

    Returns:
        `BootstrapInterval` of the F1 difference (F1 in [0, 1], 0.0 when undefined, as in
        `cxrfail.analysis.outcomes`). ``estimate`` is the difference on the full data.
    """
    (interval,) = paired_bootstrap_f1_changes(
        y_true,
        pred_before,
        np.asarray(pred_after)[None, :],
        groups,
        n_replicates=n_replicates,
        seed=seed,
        confidence=confidence,
    )
    return interval


def paired_bootstrap_f1_changes(
    y_true,
    pred_before,
    preds_after,
    groups,
    *,
    n_replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[BootstrapInterval]:
    """F1(after_t) - F1(before) for several "after" predictions (e.g. flips at each tau of a curve), each with
    a paired patient-level percentile interval; every replicate resamples patients once for all of them.

    F1 depends only on the confusion counts (tp, fp, fn), so each patient is summarised by those counts
    before and after each t, (P, 3 + 3T), and resampled with `resample_patterns`.

    Args:
        y_true: (n,) 0/1 ground truth.
        pred_before: (n,) 0/1 predictions.
        preds_after: (T, n) 0/1 predictions.
        groups: (n,) patient ids.
        n_replicates, seed, confidence: as in `paired_bootstrap_f1_change`.

    Returns:
        T `BootstrapInterval` objects, in the order of ``preds_after``.

    Cost: O(n T) to count per patient, then O(R U (3 + 3T)), U = distinct per-patient count rows.
    """
    y = as_binary(y_true, "y_true")
    n = len(y)
    if n == 0:
        raise ValueError("no rows to bootstrap")
    before = as_binary(pred_before, "pred_before", n)
    after = np.atleast_2d(np.asarray(preds_after))
    if after.ndim != 2 or after.shape[1:] != (n,):
        raise ValueError(f"preds_after must have shape (T, {n}), got {after.shape}")
    if not np.isin(after, (0, 1)).all():
        raise ValueError("preds_after must be 0/1 with no missing values")
    check_confidence(confidence, n_replicates)
    codes, n_patients = patient_codes(groups, n)

    def confusion(truth: np.ndarray, pred: np.ndarray, patient: np.ndarray) -> np.ndarray:
        """(P, 3) per-patient tp, fp, fn."""
        cells = (truth * pred, (1 - truth) * pred, truth * (1 - pred))
        return np.column_stack([np.bincount(patient, weights=cell, minlength=n_patients) for cell in cells])

    counts_before = confusion(y, before, codes)
    # Only rows whose prediction changes in some "after" move a patient's counts away from "before".
    changed = np.flatnonzero((after != before).any(axis=0))
    y_changed, before_changed, patient_changed = y[changed], before[changed], codes[changed]
    offset = confusion(y_changed, before_changed, patient_changed)
    counts = np.column_stack(
        [counts_before]
        + [
            counts_before - offset + confusion(y_changed, row[changed].astype(np.int64), patient_changed)
            for row in after
        ]
    )
    total = counts.sum(axis=0)
    drawn = resample_patterns(counts, int(n_replicates), np.random.default_rng(seed))
    f1_before, replicate_before = f1_from_counts(*total[:3]), f1_from_counts(*drawn[:, :3].T)
    intervals = []
    for t in range(len(after)):
        cols = slice(3 + 3 * t, 6 + 3 * t)
        deltas = f1_from_counts(*drawn[:, cols].T) - replicate_before
        low, high = _percentile(deltas, confidence)
        intervals.append(
            BootstrapInterval(float(f1_from_counts(*total[cols]) - f1_before), low, high, int(n_replicates), deltas)
        )
    return intervals


def percentile_interval(estimate: float, values: np.ndarray, confidence: float) -> BootstrapInterval:
    """The percentile interval of the replicates that are defined (NaN replicates dropped and counted in
    ``n_dropped``)."""
    defined = values[~np.isnan(values)]
    low, high = _percentile(defined, confidence)
    return BootstrapInterval(estimate, low, high, int(len(defined)), defined, n_dropped=int(len(values) - len(defined)))


def bootstrap_ratio(
    numerator,
    denominator,
    groups,
    *,
    n_replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """sum(numerator) / sum(denominator) with a patient-level percentile bootstrap interval.

    A share of a subset of rows (e.g. of the misclassified images, those that are probable label errors) is
    such a ratio: ``numerator`` marks the rows counted, ``denominator`` the rows it is a share of.

    Args:
        numerator, denominator: (n,) non-negative row weights (typically 0/1 indicators).
        groups: (n,) patient ids; patients are resampled with replacement.
        n_replicates: replicates drawn; those whose denominator sum is 0 are dropped.
        seed: seed of the numpy Generator.
        confidence: coverage of the interval.

    Returns:
        `BootstrapInterval` of the ratio (``n_dropped``: replicates whose denominator sum is 0); every field
        NaN (``n_replicates`` 0, nothing drawn) when sum(denominator) is 0.
    """
    return bootstrap_ratios(
        {"ratio": numerator}, denominator, groups, n_replicates=n_replicates, seed=seed, confidence=confidence
    )["ratio"]


def bootstrap_ratios(
    numerators,
    denominator,
    groups,
    *,
    n_replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, BootstrapInterval]:
    """`bootstrap_ratio` of several numerators over one denominator, all from the same patient resamples (so
    shares that partition the denominator, e.g. model errors and label errors of the misclassified rows, get
    complementary intervals).

    Args:
        numerators: name -> (n,) non-negative row weights.
        denominator: (n,) non-negative row weights.
        groups, n_replicates, seed, confidence: as in `bootstrap_ratio`.

    Returns:
        name -> `BootstrapInterval` of that ratio.

    Cost: O(n) to sum per patient, then `resample_patterns` of the (P x (S + 1)) sums: O(R U).
    """
    bottom = np.asarray(denominator, dtype="float64")
    tops = {name: np.asarray(values, dtype="float64") for name, values in numerators.items()}
    for top in tops.values():
        if top.ndim != 1 or top.shape != bottom.shape:
            raise ValueError(
                f"numerator and denominator must be one-dimensional of one length, got {top.shape} and {bottom.shape}"
            )
        if np.isnan(top).any() or np.isnan(bottom).any() or (top < 0).any() or (bottom < 0).any():
            raise ValueError("numerator and denominator must be non-negative with no NaN")
    check_confidence(confidence, n_replicates)
    codes, n_patients = patient_codes(groups, len(bottom))
    if bottom.sum() == 0:
        return {name: BootstrapInterval(float("nan"), float("nan"), float("nan"), 0) for name in tops}
    sums = np.column_stack(
        [np.bincount(codes, weights=values, minlength=n_patients) for values in (bottom, *tops.values())]
    )
    replicate = resample_patterns(sums, int(n_replicates), np.random.default_rng(seed))
    defined = replicate[:, 0] > 0
    out = {}
    for column, name in enumerate(tops, start=1):
        values = replicate[defined, column] / replicate[defined, 0]
        low, high = _percentile(values, confidence)
        out[name] = BootstrapInterval(
            float(sums[:, column].sum() / sums[:, 0].sum()),
            low,
            high,
            int(len(values)),
            values,
            n_dropped=int((~defined).sum()),
        )
    return out
