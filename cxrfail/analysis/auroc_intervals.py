"""AUROC with patient-clustered intervals: a patient bootstrap for small pairs, the analytic clustered DeLong
(Obuchowski) interval for large ones, and paired differences of several scores of the same rows.

AUROC is the Mann-Whitney statistic with ties counted one half: sum_k W+_k (W-_below_k + W-_tied_k / 2) /
(W+ W-) over the K distinct positive scores u_k. It depends only on how much negative weight lies below or
ties with each u_k, so each patient is summarised once as counts in 3K + 1 bins (sparse, P x (3K + 1)). A
replicate is a vector of patient multiplicities (``integers(0, P, size=(chunk, P))`` and a bincount), and a
chunk of replicates is one sparse product followed by a cumulative sum over the bins. Cost O(R (P + n)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from cxrfail.analysis.config import ANALYTIC_AUROC_MIN_ROWS, AUROC_INTERVAL_METHODS
from cxrfail.analysis.resampling import (
    BootstrapInterval,
    check_confidence,
    chunk_size,
    patient_codes,
    patient_weights,
    percentile_interval,
)
from cxrfail.analysis.validation import as_binary


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
    positive = aggregates[:, 2 * k + 1 :]
    cumulative = np.cumsum(negative_bins, axis=1)
    below = cumulative[:, 0 : 2 * k : 2]  # negative weight strictly below u_k: bins 0 .. 2k
    tied = negative_bins[:, 1 : 2 * k : 2]
    numerator = np.einsum("rk,rk->r", positive, below + 0.5 * tied)
    denominator = positive.sum(axis=1) * cumulative[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


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

    @property
    def n_dropped(self) -> int:
        """Replicates left out of every interval: resamples with one class, where no AUROC is defined (the same
        resamples for every score, as all share the draws)."""
        first = next(iter(self.replicates.values()), np.empty(0))
        return int(np.isnan(first).sum())

    def interval(self, which: str, confidence: float = 0.95) -> BootstrapInterval:
        """The percentile interval of score ``which``'s AUROC (``n_dropped``: resamples with one class)."""
        return percentile_interval(self.estimates[which], self.replicates[which], confidence)

    def difference(self, which: str, reference: str, confidence: float = 0.95) -> BootstrapInterval:
        """AUROC(score ``which``) - AUROC(score ``reference``), paired: each replicate scores both on one
        resample, so the interval is that of the difference, not of two independent estimates."""
        return percentile_interval(
            self.estimates[which] - self.estimates[reference],
            self.replicates[which] - self.replicates[reference],
            confidence,
        )


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
    check_confidence(0.95, n_replicates)
    codes, n_patients = patient_codes(groups, len(y))
    if y.sum() in (0, len(y)):
        return None
    estimates = {name: float(roc_auc_score(y, values)) for name, values in checked.items()}
    replicates = _replicate_aurocs(
        [_auroc_design(y, values, codes, n_patients) for values in checked.values()], n_patients, n_replicates, seed
    )
    return AurocReplicates(estimates, dict(zip(checked, replicates)))


#: Pairs with more rows than this get the analytic clustered AUROC interval under ``method="auto"``
#: (`auroc_set`): there the normal approximation is close (tests compare both on the demo) and the bootstrap
#: costs seconds per score.


@dataclass(frozen=True)
class AnalyticInterval:
    """A point estimate with a normal interval (estimate +- z SE) from per-patient influences: no resampling.

    Attributes:
        estimate: the statistic on the full data.
        ci_low, ci_high: the interval, clipped to the statistic's range.
        standard_error: the clustered standard error the interval is built from.
    """

    estimate: float
    ci_low: float
    ci_high: float
    standard_error: float


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

    def interval(self, which: str, confidence: float = 0.95) -> AnalyticInterval:
        """The normal interval of score ``which``'s AUROC."""
        return _normal_interval(self.estimates[which], self.influence[which], confidence, low_bound=0.0)

    def difference(self, which: str, reference: str, confidence: float = 0.95) -> AnalyticInterval:
        """AUROC(``which``) - AUROC(``reference``) with its paired normal interval."""
        return _normal_interval(
            self.estimates[which] - self.estimates[reference],
            self.influence[which] - self.influence[reference],
            confidence,
            low_bound=-1.0,
        )


def _normal_interval(
    estimate: float, influence: np.ndarray, confidence: float, *, low_bound: float
) -> AnalyticInterval:
    """estimate +- z SE, SE from per-patient influences (P / (P - 1) sum u^2), clipped to [low_bound, 1]."""
    from scipy.stats import norm

    n_patients = len(influence)
    se = float(np.sqrt(n_patients / max(n_patients - 1, 1) * np.sum(influence**2)))
    z = float(norm.ppf(0.5 + confidence / 2.0))
    return AnalyticInterval(estimate, max(estimate - z * se, low_bound), min(estimate + z * se, 1.0), se)


def clustered_auroc_set(y_true, scores, groups) -> ClusteredAurocs | None:
    """`ClusteredAurocs` of each score (name -> (n,) values, no NaN) for 0/1 ``y_true``, patients ``groups``;
    None with one class only. Cost: one sort per score, O(n log n)."""
    y = as_binary(y_true, "y_true")
    checked = {name: _checked_score(values, name, y) for name, values in scores.items()}
    codes, n_patients = patient_codes(groups, len(y))
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
            positives, score[~positive], side="left"
        )
        v01 = (above + 0.5 * tied) / n_pos  # per negative row
        auroc = float(v10.mean())
        v10_k = np.bincount(codes[positive], weights=v10, minlength=n_patients)
        v01_k = np.bincount(codes[~positive], weights=v01, minlength=n_patients)
        estimates[name] = auroc
        influence[name] = (v10_k - m_k * auroc) / n_pos + (v01_k - n_k * auroc) / n_neg
    return ClusteredAurocs(estimates, influence)


def auroc_set(
    y_true, scores, groups, *, method: str = "auto", n_replicates: int = 1000, seed: int = 0
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
    chunk = chunk_size(3 * n_patients + 4 * sum(3 * k + 1 for _, k in designs), n_replicates)
    out = [np.empty(int(n_replicates)) for _ in designs]
    done = 0
    for weights in patient_weights(n_patients, int(n_replicates), np.random.default_rng(seed), chunk):
        drawn = weights.astype(np.float64)
        for values, (counts, k) in zip(out, designs):
            values[done : done + len(weights)] = _auroc_from_aggregates(np.asarray(drawn @ counts), k)
        done += len(weights)
    return out


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
        the replicates kept, ``n_dropped`` those left out (one class). With one class only, every field is NaN
        (``n_replicates`` 0, nothing drawn).

    Cost: one sort, then per chunk of replicates an (R x P) @ (P x (3K + 1)) sparse product with at most n
    non-zeros (K = distinct positive scores): O(R (P + n)).
    """
    check_confidence(confidence, n_replicates)
    replicates = bootstrap_auroc_set(y_true, {"score": score}, groups, n_replicates=n_replicates, seed=seed)
    if replicates is None:
        return BootstrapInterval(float("nan"), float("nan"), float("nan"), 0)
    return replicates.interval("score", confidence)
