"""Patient-level (cluster) bootstrap: the change in F1 from flipping predictions, AUROC, and ratios (shares).

All resample *patients* with replacement (rows of one patient are not independent, so the row is the wrong
unit to resample) and never gather rows per replicate:

* F1 depends only on the confusion counts (tp, fp, fn). Per-patient counts before and after (P x 6) are summed
  over each replicate's drawn patients, the same draws for before and after (paired). Patients with no
  tp/fp/fn (only true negatives) add nothing, so only the draws that land on the K other patients are made:
  their number is Binomial(P, K/P) and they are uniform over the K, which is exactly the distribution of a
  full resample's counts. Cost O(R K).
* AUROC is the Mann-Whitney statistic with ties counted one half: sum_k W+_k (W-_below_k + W-_tied_k / 2) /
  (W+ W-) over the K distinct positive scores u_k. It depends only on how much negative weight lies below or
  ties with each u_k, so each patient is summarised once as counts in 3K + 1 bins (sparse, P x (3K + 1)). A
  replicate is a vector of patient multiplicities (``integers(0, P, size=(chunk, P))`` and a bincount), and a
  chunk of replicates is one sparse product followed by a cumulative sum over the bins. Cost O(R (P + n)).
* A ratio of row sums (a share of a subset of rows) depends only on each patient's two sums; a replicate is
  a vector of patient multiplicities times the (P x 2) sums. Cost O(R P).

Confidence intervals are percentile intervals of the replicates. Draws come from a numpy ``Generator`` seeded
with ``seed``: the same inputs and seed give the same interval. Work arrays are processed in chunks of
replicates within `MEMORY_BUDGET`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from cxrfail.analysis.outcomes import f1_from_counts
from cxrfail.analysis.validation import as_binary

#: memory budget (bytes) for the per-chunk work arrays
MEMORY_BUDGET = 200 * 2**20


@dataclass(frozen=True)
class BootstrapInterval:
    """A point estimate with a percentile bootstrap interval.

    Attributes:
        estimate: the statistic on the full data.
        ci_low, ci_high: percentile interval of the replicates (NaN when there are none).
        n_replicates: replicates the interval is based on (those where the statistic is defined).
        replicates: (n_replicates,) the replicate values (not compared, not shown in repr).
    """

    estimate: float
    ci_low: float
    ci_high: float
    n_replicates: int
    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    @property
    def spans_zero(self) -> bool:
        """True when the interval contains 0 (ci_low <= 0 <= ci_high); False when it is NaN."""
        return bool(self.ci_low <= 0.0 <= self.ci_high)


def _patient_codes(groups, n: int) -> tuple[np.ndarray, int]:
    values = pd.Series(np.asarray(groups, dtype=object))
    if len(values) != n:
        raise ValueError(f"groups has {len(values)} rows, expected {n}")
    if values.isna().any():
        raise ValueError("groups has missing values; every row needs a patient id")
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), len(uniques)


def _chunk_size(values_per_replicate: int, n_replicates: int) -> int:
    """Replicates per chunk so that the work arrays (``values_per_replicate`` 8-byte values per replicate)
    stay within `MEMORY_BUDGET`."""
    return int(max(1, min(n_replicates, MEMORY_BUDGET // (8 * max(values_per_replicate, 1)))))


def patient_weights(
    n_patients: int, n_replicates: int, rng: np.random.Generator, chunk: int
) -> Iterator[np.ndarray]:
    """Yield (chunk, n_patients) int64 multiplicities of bootstrap resamples of patients, each row summing to
    ``n_patients``; ``n_replicates`` rows in all."""
    done = 0
    while done < n_replicates:
        size = min(chunk, n_replicates - done)
        draws = rng.integers(0, n_patients, size=(size, n_patients), dtype=np.int32).astype(np.int64)
        draws += (np.arange(size, dtype=np.int64) * n_patients)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * n_patients).reshape(size, n_patients)
        done += size


def _percentile(values: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _check_confidence(confidence: float, n_replicates: int) -> None:
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

    Cost: O(n) to aggregate per patient, then O(R K) draws and sums, K = patients with any tp, fp or fn.
    """
    y = as_binary(y_true, "y_true")
    n = len(y)
    if n == 0:
        raise ValueError("no rows to bootstrap")
    before = as_binary(pred_before, "pred_before", n)
    after = as_binary(pred_after, "pred_after", n)
    _check_confidence(confidence, n_replicates)
    codes, n_patients = _patient_codes(groups, n)
    cells = np.column_stack([
        y * before, (1 - y) * before, y * (1 - before),  # tp, fp, fn before
        y * after, (1 - y) * after, y * (1 - after),  # tp, fp, fn after
    ])
    counts = np.column_stack([np.bincount(codes, weights=cells[:, j], minlength=n_patients) for j in range(6)])
    total = counts.sum(axis=0)
    estimate = float(f1_from_counts(*total[3:]) - f1_from_counts(*total[:3]))

    deltas = _f1_change_replicates(counts, int(n_replicates), np.random.default_rng(seed))
    low, high = _percentile(deltas, confidence)
    return BootstrapInterval(estimate, low, high, int(n_replicates), deltas)


def _f1_change_replicates(counts: np.ndarray, n_replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(R,) F1(after) - F1(before) of patient resamples, from (P, 6) per-patient counts.

    Only patients with a non-zero count matter (true negatives add nothing to F1). A resample draws P patients
    uniformly; the number of draws landing on the K relevant patients is Binomial(P, K/P), and given that
    number they are uniform over the K. Drawing just those (about K per replicate instead of P) gives exactly
    the distribution of the full resample's counts, at a cost of O(R K) rather than O(R P).
    """
    n_patients = len(counts)
    relevant = counts[counts.any(axis=1)]
    k = len(relevant)
    deltas = np.empty(n_replicates)
    if k == 0:
        deltas[:] = 0.0
        return deltas
    chunk = _chunk_size(5 * k, n_replicates)  # draws, their offsets, (chunk, k) multiplicities and a float copy
    done = 0
    while done < n_replicates:
        size = min(chunk, n_replicates - done)
        n_drawn = rng.binomial(n_patients, k / n_patients, size=size)
        drawn = rng.integers(0, k, size=int(n_drawn.sum()), dtype=np.int32 if k < 2**31 else np.int64)
        offsets = np.repeat(np.arange(size, dtype=np.int64) * k, n_drawn)
        multiplicity = np.bincount(offsets + drawn, minlength=size * k).reshape(size, k)
        replicate = multiplicity.astype(np.float64) @ relevant  # (size, 6), exact: integer sums < 2**53
        deltas[done: done + size] = f1_from_counts(*replicate[:, 3:].T) - f1_from_counts(*replicate[:, :3].T)
        done += size
    return deltas


def _auroc_design(y: np.ndarray, score: np.ndarray, codes: np.ndarray, n_groups: int):
    """Per-group counts that determine the Mann-Whitney AUROC under any group weights.

    With K distinct positive scores u_0 < ... < u_{K-1}, each negative row falls in one of 2K + 1 bins: the
    gap below u_k (bin 2k), a tie with u_k (bin 2k + 1) or above all of them (bin 2K); each positive row in
    column 2K + 1 + k of its score u_k. Returns the sparse (n_groups, 3K + 1) count matrix and K.
    """
    from scipy import sparse

    positive = y == 1
    unique_positive = np.unique(score[positive])
    k = len(unique_positive)
    position = np.searchsorted(unique_positive, score)  # distinct positive scores strictly below
    tied = (position < k) & (unique_positive[np.minimum(position, k - 1)] == score)
    column = np.where(positive, 2 * k + 1 + position, 2 * position + tied)
    counts = sparse.csr_matrix((np.ones(len(y)), (codes, column)), shape=(n_groups, 3 * k + 1))
    counts.sum_duplicates()
    return counts, k


def _auroc_from_aggregates(aggregates: np.ndarray, k: int) -> np.ndarray:
    """(R,) AUROC from (R, 3K + 1) weighted bin counts (see `_auroc_design`); NaN without both classes."""
    negative_bins = aggregates[:, : 2 * k + 1]
    positive = aggregates[:, 2 * k + 1:]
    cumulative = np.cumsum(negative_bins, axis=1)
    below = cumulative[:, 0: 2 * k: 2]  # negative weight strictly below u_k: bins 0 .. 2k
    tied = negative_bins[:, 1: 2 * k: 2]
    numerator = np.einsum("rk,rk->r", positive, below + 0.5 * tied)
    denominator = positive.sum(axis=1) * cumulative[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def weighted_auroc(y_true, score, row_weights) -> np.ndarray:
    """AUROC (Mann-Whitney, ties count one half) under several weightings of the same rows.

    Args:
        y_true: (n,) 0/1 labels.
        score: (n,) scores.
        row_weights: (R, n) non-negative weights, one weighting per row of the matrix.

    Returns:
        (R,) AUROC per weighting (equal to scikit-learn's ``roc_auc_score`` with ``sample_weight``); NaN where
        the positive or the negative weight is 0.
    """
    y = as_binary(y_true, "y_true")
    s = np.asarray(score, dtype="float64")
    weights = np.atleast_2d(np.asarray(row_weights, dtype="float64"))
    if y.sum() == 0 or y.sum() == len(y):
        return np.full(len(weights), np.nan)
    counts, k = _auroc_design(y, s, np.arange(len(y)), len(y))
    return _auroc_from_aggregates(np.asarray(weights @ counts), k)


def paired_bootstrap_auroc_difference(
    y_true,
    score,
    reference_score,
    groups,
    *,
    n_replicates: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """AUROC(score) - AUROC(reference_score) on the same rows, with a paired patient-level bootstrap interval.

    Each replicate draws one resample of patients and computes both AUROCs on it (the same multiplicities for
    both scores), so the interval is that of the difference, not of two independent estimates.

    Args:
        y_true: (n,) 0/1 ground truth.
        score, reference_score: (n,) real-valued scores, no NaN (e.g. the identifier's out-of-fold probability
            and the confidence baseline).
        groups: (n,) patient ids.
        n_replicates: replicates drawn; those without both classes are dropped.
        seed, confidence: as in `bootstrap_auroc`.

    Returns:
        `BootstrapInterval` of the difference (in [-1, 1]); every field NaN with one class only.

    Cost: as two `bootstrap_auroc` runs sharing their draws, O(R (P + n)).
    """
    y = as_binary(y_true, "y_true")
    scores = [_checked_score(values, name, y) for values, name in ((score, "score"),
                                                                   (reference_score, "reference_score"))]
    _check_confidence(confidence, n_replicates)
    codes, n_patients = _patient_codes(groups, len(y))
    if y.sum() in (0, len(y)):
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    estimate = float(roc_auc_score(y, scores[0]) - roc_auc_score(y, scores[1]))
    first, second = _replicate_aurocs([_auroc_design(y, values, codes, n_patients) for values in scores],
                                      n_patients, n_replicates, seed)
    return _interval(estimate, first - second, confidence)


def _checked_score(values, name: str, y: np.ndarray) -> np.ndarray:
    """``values`` as float64 with the shape of ``y`` and no NaN, else ValueError naming ``name``."""
    score = np.asarray(values, dtype="float64")
    if score.shape != y.shape:
        raise ValueError(f"{name} has shape {score.shape}, y_true {y.shape}")
    if np.isnan(score).any():
        raise ValueError(f"{name} has NaN values")
    return score


def _replicate_aurocs(designs, n_patients: int, n_replicates: int, seed: int) -> list[np.ndarray]:
    """AUROC replicates (n_replicates,) of each `_auroc_design`, all scored on the same patient draws."""
    # draws and multiplicities (int64), their float copy, and ~4 arrays of the 3K + 1 aggregates per design
    chunk = _chunk_size(3 * n_patients + 4 * sum(3 * k + 1 for _, k in designs), n_replicates)
    out = [np.empty(int(n_replicates)) for _ in designs]
    done = 0
    for weights in patient_weights(n_patients, int(n_replicates), np.random.default_rng(seed), chunk):
        drawn = weights.astype(np.float64)
        for values, (counts, k) in zip(out, designs):
            values[done: done + len(weights)] = _auroc_from_aggregates(np.asarray(drawn @ counts), k)
        done += len(weights)
    return out


def _interval(estimate: float, values: np.ndarray, confidence: float) -> BootstrapInterval:
    """The percentile interval of the replicates that are defined (NaN replicates dropped)."""
    values = values[~np.isnan(values)]
    low, high = _percentile(values, confidence)
    return BootstrapInterval(estimate, low, high, int(len(values)), values)


def bootstrap_clustered_rate(
    events_per_patient,
    rows_per_patient,
    *,
    n_replicates: int = 1000,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """A proportion (sum of events / sum of rows) with a patient-level percentile bootstrap interval.

    Each patient is a cluster: a replicate draws P patients with replacement and takes the ratio of the drawn
    events to the drawn rows (a ratio estimator, so patients with many rows weigh as many rows). Only the
    (P,) per-patient counts are used, packed into one int64 per patient (events in the high 32 bits, rows in
    the low): a chunk of replicates is one gather of the (chunk, P) drawn patients and one sum. Cost O(R P).

    Args:
        events_per_patient: (P,) events (e.g. misclassified rows) per patient, >= 0.
        rows_per_patient: (P,) rows per patient, >= 1.
        n_replicates: bootstrap replicates R.
        rng: numpy Generator the draws come from (the caller seeds it).
        confidence: coverage of the interval.

    Returns:
        `BootstrapInterval` of the proportion (in [0, 1]); every replicate has rows, so ``n_replicates`` = R.
    """
    events = np.asarray(events_per_patient, dtype="int64")
    rows = np.asarray(rows_per_patient, dtype="int64")
    if events.shape != rows.shape or events.ndim != 1 or len(rows) == 0:
        raise ValueError("events_per_patient and rows_per_patient must be (P,) arrays with P >= 1")
    if np.any(rows < 1) or np.any(events < 0) or np.any(events > rows):
        raise ValueError("each patient needs rows >= 1 and 0 <= events <= rows")
    n_patients = len(rows)
    if n_patients * int(rows.max()) >= 2**31:
        raise ValueError("too many rows to pack the drawn counts into 32 bits")
    _check_confidence(confidence, n_replicates)
    packed = (events << 32) | rows
    values = np.empty(int(n_replicates))
    chunk = _chunk_size(3 * n_patients, n_replicates)  # int32 draws, their int64 gather, the sum
    done = 0
    while done < n_replicates:
        size = min(chunk, int(n_replicates) - done)
        drawn = packed[rng.integers(0, n_patients, size=(size, n_patients), dtype=np.int32)].sum(axis=1)
        values[done: done + size] = (drawn >> 32) / (drawn & 0xFFFFFFFF)
        done += size
    low, high = _percentile(values, confidence)
    return BootstrapInterval(float(events.sum() / rows.sum()), low, high, int(n_replicates), values)


def bootstrap_auroc(
    y_true,
    score,
    groups,
    *,
    n_replicates: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """AUROC with a patient-level percentile bootstrap interval.

    Args:
        y_true: (n,) 0/1 ground truth.
        score: (n,) real-valued scores (higher = more likely positive); no NaN.
        groups: (n,) patient ids; patients are resampled with replacement.
        n_replicates: bootstrap replicates drawn; those without both classes are dropped.
        seed: seed of the numpy Generator.
        confidence: coverage of the interval.

    Returns:
        `BootstrapInterval`: ``estimate`` = scikit-learn's ``roc_auc_score`` on the full data; ``n_replicates``
        the replicates kept. With one class only, every field is NaN (and ``n_replicates`` 0).

    Cost: one sort, then per chunk of replicates an (R x P) @ (P x (3K + 1)) sparse product with at most n
    non-zeros (K = distinct positive scores): O(R (P + n)).
    """
    y = as_binary(y_true, "y_true")
    score = _checked_score(score, "score", y)
    _check_confidence(confidence, n_replicates)
    codes, n_patients = _patient_codes(groups, len(y))
    if y.sum() in (0, len(y)):
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    estimate = float(roc_auc_score(y, score))
    (values,) = _replicate_aurocs([_auroc_design(y, score, codes, n_patients)], n_patients, n_replicates, seed)
    return _interval(estimate, values, confidence)


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
        `BootstrapInterval` of the ratio; every field NaN (``n_replicates`` 0) when sum(denominator) is 0.

    Cost: O(n) to sum per patient, then O(R P) draws and a (R x P) @ (P x 2) product per chunk.
    """
    top = np.asarray(numerator, dtype="float64")
    bottom = np.asarray(denominator, dtype="float64")
    if top.ndim != 1 or top.shape != bottom.shape:
        raise ValueError(f"numerator and denominator must be one-dimensional of one length, got {top.shape} "
                         f"and {bottom.shape}")
    if np.isnan(top).any() or np.isnan(bottom).any() or (top < 0).any() or (bottom < 0).any():
        raise ValueError("numerator and denominator must be non-negative with no NaN")
    _check_confidence(confidence, n_replicates)
    codes, n_patients = _patient_codes(groups, len(top))
    if bottom.sum() == 0:
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    sums = np.column_stack([np.bincount(codes, weights=top, minlength=n_patients),
                            np.bincount(codes, weights=bottom, minlength=n_patients)])
    estimate = float(sums[:, 0].sum() / sums[:, 1].sum())
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_replicates))
    done = 0
    for weights in patient_weights(n_patients, int(n_replicates), rng, _chunk_size(3 * n_patients, n_replicates)):
        replicate = weights.astype(np.float64) @ sums
        with np.errstate(divide="ignore", invalid="ignore"):
            values[done: done + len(weights)] = np.where(replicate[:, 1] > 0, replicate[:, 0] / replicate[:, 1],
                                                         np.nan)
        done += len(weights)
    values = values[~np.isnan(values)]
    low, high = _percentile(values, confidence)
    return BootstrapInterval(estimate, low, high, int(len(values)), values)
