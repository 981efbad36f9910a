"""Patient-level (cluster) bootstrap: the change in F1 from flipping predictions, AUROC, and ratios (shares).

All resample *patients* with replacement (rows of one patient are not independent, so the row is the wrong
unit to resample) and never gather rows per replicate:

* F1 depends only on the confusion counts (tp, fp, fn), a rate or a share of rows on two row sums. Each
  patient is summarised by those counts (P x C), and a resample of P patients by the sums of its drawn
  patients' rows. Patients with the same counts are interchangeable, so a resample is a multinomial draw over
  the U distinct count rows (`resample_patterns`): exactly the distribution of a full resample, at O(R U)
  instead of O(R P). F1 before and after flipping (at one tau or at every tau of a curve) are paired: one
  resample scores all of them.
* AUROC is the Mann-Whitney statistic with ties counted one half: sum_k W+_k (W-_below_k + W-_tied_k / 2) /
  (W+ W-) over the K distinct positive scores u_k. It depends only on how much negative weight lies below or
  ties with each u_k, so each patient is summarised once as counts in 3K + 1 bins (sparse, P x (3K + 1)). A
  replicate is a vector of patient multiplicities (``integers(0, P, size=(chunk, P))`` and a bincount), and a
  chunk of replicates is one sparse product followed by a cumulative sum over the bins. Cost O(R (P + n)).

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

from cxrfail.analysis.config import ANALYTIC_AUROC_MIN_ROWS, AUROC_INTERVAL_METHODS
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
    if values.shape[1] > MAX_PATTERN_COLUMNS or len(patterns) * 8 > n_patients:  # patterns hardly repeat: drawing patients is cheaper than a multinomial
        done = 0
        chunk = _chunk_size(3 * n_patients, int(n_replicates))
        for weights in patient_weights(n_patients, int(n_replicates), rng, chunk):
            out[done: done + len(weights)] = weights.astype(np.float64) @ values
            done += len(weights)
        return out
    share = np.bincount(inverse, minlength=len(patterns)) / n_patients
    chunk = _chunk_size(2 * len(patterns), int(n_replicates))
    for start in range(0, int(n_replicates), chunk):
        size = min(chunk, int(n_replicates) - start)
        multiplicity = rng.multinomial(n_patients, share, size=size).astype(np.float64)
        out[start: start + size] = multiplicity @ patterns  # exact: integer sums < 2**53
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
    """
    (interval,) = paired_bootstrap_f1_changes(y_true, pred_before, np.asarray(pred_after)[None, :], groups,
                                              n_replicates=n_replicates, seed=seed, confidence=confidence)
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
    _check_confidence(confidence, n_replicates)
    codes, n_patients = _patient_codes(groups, n)

    def confusion(truth: np.ndarray, pred: np.ndarray, patient: np.ndarray) -> np.ndarray:
        """(P, 3) per-patient tp, fp, fn."""
        cells = (truth * pred, (1 - truth) * pred, truth * (1 - pred))
        return np.column_stack([np.bincount(patient, weights=cell, minlength=n_patients) for cell in cells])

    counts_before = confusion(y, before, codes)
    # Only rows whose prediction changes in some "after" move a patient's counts away from "before".
    changed = np.flatnonzero((after != before).any(axis=0))
    y_changed, before_changed, patient_changed = y[changed], before[changed], codes[changed]
    offset = confusion(y_changed, before_changed, patient_changed)
    counts = np.column_stack([counts_before] + [
        counts_before - offset + confusion(y_changed, row[changed].astype(np.int64), patient_changed)
        for row in after])
    total = counts.sum(axis=0)
    drawn = resample_patterns(counts, int(n_replicates), np.random.default_rng(seed))
    f1_before, replicate_before = f1_from_counts(*total[:3]), f1_from_counts(*drawn[:, :3].T)
    intervals = []
    for t in range(len(after)):
        cols = slice(3 + 3 * t, 6 + 3 * t)
        deltas = f1_from_counts(*drawn[:, cols].T) - replicate_before
        low, high = _percentile(deltas, confidence)
        intervals.append(BootstrapInterval(float(f1_from_counts(*total[cols]) - f1_before), low, high,
                                           int(n_replicates), deltas))
    return intervals


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


@dataclass(frozen=True)
class AurocReplicates:
    """AUROCs of several scores of the same rows, each scored on the same patient resamples.

    Attributes:
        estimates: score name -> AUROC on the full data (scikit-learn's ``roc_auc_score``).
        replicates: score name -> (R,) AUROC on each resample (NaN in a resample without both classes); the
            r-th value of every score comes from the same resample.
    """

    estimates: dict[str, float]
    replicates: dict[str, np.ndarray] = field(repr=False)

    def interval(self, which: str, confidence: float = 0.95) -> BootstrapInterval:
        """The percentile interval of score ``which``'s AUROC."""
        return _interval(self.estimates[which], self.replicates[which], confidence)

    def difference(self, which: str, reference: str, confidence: float = 0.95) -> BootstrapInterval:
        """AUROC(score ``which``) - AUROC(score ``reference``), paired: each replicate scores both on one
        resample, so the interval is that of the difference, not of two independent estimates."""
        return _interval(self.estimates[which] - self.estimates[reference],
                         self.replicates[which] - self.replicates[reference], confidence)


def bootstrap_auroc_set(y_true, scores, groups, *, n_replicates: int = 1000, seed: int = 0) -> AurocReplicates | None:
    """Patient-bootstrap replicates of the AUROC of each of several scores of the same rows, from one set of
    draws (R resamples of patients scored once per score).

    Args:
        y_true: (n,) 0/1 ground truth.
        scores: name -> (n,) real-valued score, no NaN (S scores).
        groups: (n,) patient ids; patients are resampled with replacement.
        n_replicates: replicates R.
        seed: seed of the numpy Generator.

    Returns:
        `AurocReplicates`, or None with one class only (AUROC undefined).

    Cost: one draw of (R x P) multiplicities, then per score an (R x P) @ (P x (3K + 1)) sparse product
    (K = distinct positive scores): O(R (P + S n)).
    """
    y = as_binary(y_true, "y_true")
    checked = {name: _checked_score(values, name, y) for name, values in scores.items()}
    _check_confidence(0.95, n_replicates)
    codes, n_patients = _patient_codes(groups, len(y))
    if y.sum() in (0, len(y)):
        return None
    estimates = {name: float(roc_auc_score(y, values)) for name, values in checked.items()}
    replicates = _replicate_aurocs([_auroc_design(y, values, codes, n_patients) for values in checked.values()],
                                   n_patients, n_replicates, seed)
    return AurocReplicates(estimates, dict(zip(checked, replicates)))


#: Pairs with more rows than this get the analytic clustered AUROC interval under ``method="auto"``
#: (`auroc_set`): there the normal approximation is close (tests compare both on the demo) and the bootstrap
#: costs seconds per score.


@dataclass(frozen=True)
class ClusteredAurocs:
    """AUROCs of several scores of the same rows with the analytic clustered (Obuchowski 1997) covariance.

    The clustered generalisation of DeLong's method: each patient k contributes the influence
    u_k = (V10_k - m_k A) / N + (V01_k - n_k A) / M of the AUROC A, where V10_k sums the placement values of
    its positive rows (share of negatives each one outranks, ties one half), V01_k those of its negative rows,
    m_k and n_k count them, N and M are the totals. var(A) = P / (P - 1) sum_k u_k^2 over the P patients, and a
    difference of two scores uses u_k(first) - u_k(second): paired, as the bootstrap. Intervals are normal
    (estimate +- z SE), clipped to [0, 1] (to [-1, 1] for differences).

    Attributes:
        estimates: score name -> AUROC (equal to scikit-learn's ``roc_auc_score``).
        influence: score name -> (P,) per-patient influence u_k.
    """

    estimates: dict[str, float]
    influence: dict[str, np.ndarray] = field(repr=False)

    def interval(self, which: str, confidence: float = 0.95) -> BootstrapInterval:
        """The normal interval of score ``which``'s AUROC (``n_replicates`` 0: no resampling)."""
        return _normal_interval(self.estimates[which], self.influence[which], confidence, low_bound=0.0)

    def difference(self, which: str, reference: str, confidence: float = 0.95) -> BootstrapInterval:
        """AUROC(``which``) - AUROC(``reference``) with its paired normal interval."""
        return _normal_interval(self.estimates[which] - self.estimates[reference],
                                self.influence[which] - self.influence[reference], confidence, low_bound=-1.0)


def _normal_interval(estimate: float, influence: np.ndarray, confidence: float, *, low_bound: float
                     ) -> BootstrapInterval:
    """estimate +- z SE, SE from per-patient influences (P / (P - 1) sum u^2), clipped to [low_bound, 1]."""
    from scipy.stats import norm

    n_patients = len(influence)
    se = float(np.sqrt(n_patients / max(n_patients - 1, 1) * np.sum(influence ** 2)))
    z = float(norm.ppf(0.5 + confidence / 2.0))
    return BootstrapInterval(estimate, max(estimate - z * se, low_bound), min(estimate + z * se, 1.0), 0)


def clustered_auroc_set(y_true, scores, groups) -> ClusteredAurocs | None:
    """`ClusteredAurocs` of each score (name -> (n,) values, no NaN) for 0/1 ``y_true``, patients ``groups``;
    None with one class only. Cost: one sort per score, O(n log n)."""
    y = as_binary(y_true, "y_true")
    checked = {name: _checked_score(values, name, y) for name, values in scores.items()}
    codes, n_patients = _patient_codes(groups, len(y))
    positive = y == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    m_k = np.bincount(codes[positive], minlength=n_patients)
    n_k = np.bincount(codes[~positive], minlength=n_patients)
    estimates, influence = {}, {}
    for name, score in checked.items():
        negatives, positives = np.sort(score[~positive]), np.sort(score[positive])
        below = np.searchsorted(negatives, score[positive], side="left")
        tied = np.searchsorted(negatives, score[positive], side="right") - below
        v10 = (below + 0.5 * tied) / n_neg  # per positive row
        above = n_pos - np.searchsorted(positives, score[~positive], side="right")
        tied = np.searchsorted(positives, score[~positive], side="right") - np.searchsorted(
            positives, score[~positive], side="left")
        v01 = (above + 0.5 * tied) / n_pos  # per negative row
        auroc = float(v10.mean())
        v10_k = np.bincount(codes[positive], weights=v10, minlength=n_patients)
        v01_k = np.bincount(codes[~positive], weights=v01, minlength=n_patients)
        estimates[name] = auroc
        influence[name] = (v10_k - m_k * auroc) / n_pos + (v01_k - n_k * auroc) / n_neg
    return ClusteredAurocs(estimates, influence)


def auroc_set(y_true, scores, groups, *, method: str = "auto", n_replicates: int = 1000, seed: int = 0
              ) -> AurocReplicates | ClusteredAurocs | None:
    """AUROCs of several scores of the same rows with patient-clustered intervals and paired differences
    (``.estimates``, ``.interval(name)``, ``.difference(name, reference)``).

    ``method``: "bootstrap" (`bootstrap_auroc_set`, ``n_replicates`` resamples), "analytic"
    (`clustered_auroc_set`) or "auto": analytic above `ANALYTIC_AUROC_MIN_ROWS` rows, bootstrap below.
    None with one class only.
    """
    if method not in AUROC_INTERVAL_METHODS:
        raise ValueError(f"method must be one of {AUROC_INTERVAL_METHODS}, got {method!r}")
    if method == "analytic" or (method == "auto" and len(np.asarray(y_true)) > ANALYTIC_AUROC_MIN_ROWS):
        return clustered_auroc_set(y_true, scores, groups)
    return bootstrap_auroc_set(y_true, scores, groups, n_replicates=n_replicates, seed=seed)


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
    """AUROC(score) - AUROC(reference_score) on the same rows, with a paired patient-level bootstrap interval
    (`bootstrap_auroc_set` of the two scores).

    Args:
        y_true: (n,) 0/1 ground truth.
        score, reference_score: (n,) real-valued scores, no NaN (e.g. the identifier's out-of-fold probability
            and the confidence baseline).
        groups: (n,) patient ids.
        n_replicates: replicates drawn; those without both classes are dropped.
        seed, confidence: as in `bootstrap_auroc`.

    Returns:
        `BootstrapInterval` of the difference (in [-1, 1]); every field NaN with one class only.
    """
    _check_confidence(confidence, n_replicates)
    replicates = bootstrap_auroc_set(y_true, {"score": score, "reference_score": reference_score}, groups,
                                     n_replicates=n_replicates, seed=seed)
    if replicates is None:
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    return replicates.difference("score", "reference_score", confidence)


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
    (P,) per-patient counts are used, and patients with the same (events, rows) are interchangeable
    (`resample_patterns`). Cost O(R U), U = distinct (events, rows) pairs.

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
    _check_confidence(confidence, n_replicates)
    drawn = resample_patterns(np.column_stack([events, rows]), int(n_replicates), rng)
    values = drawn[:, 0] / drawn[:, 1]
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
    _check_confidence(confidence, n_replicates)
    replicates = bootstrap_auroc_set(y_true, {"score": score}, groups, n_replicates=n_replicates, seed=seed)
    if replicates is None:
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    return replicates.interval("score", confidence)


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
    """
    return bootstrap_ratios({"ratio": numerator}, denominator, groups, n_replicates=n_replicates, seed=seed,
                            confidence=confidence)["ratio"]


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
            raise ValueError(f"numerator and denominator must be one-dimensional of one length, got {top.shape} "
                             f"and {bottom.shape}")
        if np.isnan(top).any() or np.isnan(bottom).any() or (top < 0).any() or (bottom < 0).any():
            raise ValueError("numerator and denominator must be non-negative with no NaN")
    _check_confidence(confidence, n_replicates)
    codes, n_patients = _patient_codes(groups, len(bottom))
    if bottom.sum() == 0:
        return {name: BootstrapInterval(float("nan"), float("nan"), float("nan"), 0) for name in tops}
    sums = np.column_stack([np.bincount(codes, weights=values, minlength=n_patients)
                            for values in (bottom, *tops.values())])
    replicate = resample_patterns(sums, int(n_replicates), np.random.default_rng(seed))
    defined = replicate[:, 0] > 0
    out = {}
    for column, name in enumerate(tops, start=1):
        values = replicate[defined, column] / replicate[defined, 0]
        low, high = _percentile(values, confidence)
        out[name] = BootstrapInterval(float(sums[:, column].sum() / sums[:, 0].sum()), low, high, int(len(values)),
                                      values)
    return out
