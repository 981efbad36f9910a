"""Patient-bootstrap speed: `paired_bootstrap_f1_change` against a plain loop, on the real demo.

Data: the 22,433-image NIH test split, model densenet121_jrzech, finding Edema (label from the cohort). Before =
probability >= the max-F1 threshold; after = the 1% of images whose probability is closest to the threshold
flipped (a plausible flip). Groups = patients.

Baseline (same process): for each replicate, draw patients with replacement, gather their rows
(np.concatenate of per-patient row indices) and compute F1 before and after with scikit-learn's f1_score.
The loop is timed on a few replicates and scaled linearly to 2,000 (stated in the output); it runs all 2,000
only when that is projected to take under a minute, or with --full.

Also shown, for information: `bootstrap_auroc` against the same loop with roc_auc_score.

Run: .venv/bin/python bench/bootstrap_bench.py [--full]
Last line: ``speedup: <loop time per replicate / fast time per replicate>`` (target >= 50).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from cxrfail.analysis.auroc_intervals import bootstrap_auroc
from cxrfail.analysis.resampling import paired_bootstrap_f1_change
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.demo import load_demo_cohort, load_demo_predictions

MODEL = "densenet121_jrzech"
FINDING = "Edema"
N_REPLICATES = 2000
LOOP_REPLICATES = 100
FLIP_SHARE = 0.01


def loop_f1_change(y, before, after, rows_of, n_replicates, seed):
    """The plain reference: resample patients, gather rows, sklearn F1 before and after."""
    rng = np.random.default_rng(seed)
    n_patients = len(rows_of)
    deltas = np.empty(n_replicates)
    for r in range(n_replicates):
        rows = np.concatenate([rows_of[p] for p in rng.integers(0, n_patients, n_patients)])
        deltas[r] = f1_score(y[rows], after[rows], zero_division=0) - f1_score(y[rows], before[rows], zero_division=0)
    return deltas


def loop_auroc(y, score, rows_of, n_replicates, seed):
    rng = np.random.default_rng(seed)
    n_patients = len(rows_of)
    values = []
    for _ in range(n_replicates):
        rows = np.concatenate([rows_of[p] for p in rng.integers(0, n_patients, n_patients)])
        if 0 < y[rows].sum() < len(rows):
            values.append(roc_auc_score(y[rows], score[rows]))
    return np.asarray(values)


def best_of(function, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run the loop for all 2,000 replicates")
    args = parser.parse_args()

    models = load_demo_predictions()
    model = next(m for m in models if m.name == MODEL)
    cohort = load_demo_cohort(models)
    table = cohort.table
    y = table[FINDING].to_numpy(dtype=int)
    probability = model.probabilities.loc[table.index, FINDING].to_numpy(dtype=float)
    threshold = choose_threshold(y, probability, "max_f1").threshold
    before = (probability >= threshold).astype(int)
    after = before.copy()
    n_flip = int(round(FLIP_SHARE * len(y)))
    closest = np.argsort(np.abs(probability - threshold), kind="stable")[:n_flip]
    after[closest] = 1 - after[closest]
    groups = table["patient_id"].to_numpy()
    codes = np.unique(groups.astype(str), return_inverse=True)[1].ravel()
    n_patients = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")
    rows_of = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)  # setup, not timed
    print(
        f"data: {len(y)} images, {n_patients} patients, {y.sum()} {FINDING} positives, threshold "
        f"{threshold:.4f}, {n_flip} predictions flipped; F1 before {f1_score(y, before):.4f}, "
        f"after {f1_score(y, after):.4f}"
    )

    # ---- F1 change
    paired_bootstrap_f1_change(y, before, after, groups, n_replicates=50, seed=0)  # warm-up
    fast_time, fast = best_of(
        lambda: paired_bootstrap_f1_change(y, before, after, groups, n_replicates=N_REPLICATES, seed=0)
    )
    start = time.perf_counter()
    loop_sample = loop_f1_change(y, before, after, rows_of, LOOP_REPLICATES, seed=1)
    loop_per_replicate = (time.perf_counter() - start) / LOOP_REPLICATES
    projected = loop_per_replicate * N_REPLICATES
    fast_per_replicate = fast_time / N_REPLICATES
    print(
        f"fast paired_bootstrap_f1_change: {N_REPLICATES} replicates in {fast_time:.3f} s "
        f"({N_REPLICATES / fast_time:,.0f} replicates/s; best of 3)"
    )
    print(
        f"plain loop (sklearn f1_score): {LOOP_REPLICATES} replicates in "
        f"{loop_per_replicate * LOOP_REPLICATES:.2f} s "
        f"({1 / loop_per_replicate:,.1f} replicates/s) -> {projected:.1f} s for {N_REPLICATES}, "
        f"scaled linearly from {LOOP_REPLICATES}"
    )
    print(f"F1 change estimate {fast.estimate:+.5f}, fast 95% CI [{fast.ci_low:+.5f}, {fast.ci_high:+.5f}]")
    sd = fast.replicates.std()
    if args.full or projected < 60:
        start = time.perf_counter()
        loop_all = loop_f1_change(y, before, after, rows_of, N_REPLICATES, seed=1)
        loop_time = time.perf_counter() - start
        low, high = np.quantile(loop_all, [0.025, 0.975])
        loop_per_replicate = loop_time / N_REPLICATES
        agree = max(abs(low - fast.ci_low), abs(high - fast.ci_high)) < 0.25 * sd
        print(
            f"plain loop, all {N_REPLICATES} replicates: {loop_time:.1f} s; loop 95% CI [{low:+.5f}, {high:+.5f}]; "
            f"CIs {'agree' if agree else 'DIFFER'} (ends within 0.25 bootstrap SD = {0.25 * sd:.5f}; "
            "different random draws)"
        )
    else:
        se = loop_sample.std(ddof=1) / np.sqrt(len(loop_sample))
        agree = abs(loop_sample.mean() - fast.replicates.mean()) < 4 * se
        print(
            f"delta distribution: fast mean {fast.replicates.mean():+.5f} sd {sd:.5f}; loop ({LOOP_REPLICATES} "
            f"replicates) mean {loop_sample.mean():+.5f} sd {loop_sample.std(ddof=1):.5f}; means "
            f"{'agree' if agree else 'DIFFER'} (within 4 SE of the loop mean = {4 * se:.5f}); the loop's full "
            f"{N_REPLICATES} skipped (projected {projected:.0f} s; --full runs it)"
        )

    # ---- AUROC, for information
    bootstrap_auroc(y, probability, groups, n_replicates=20, seed=0)
    auroc_time, auroc = best_of(lambda: bootstrap_auroc(y, probability, groups, n_replicates=1000, seed=0))
    start = time.perf_counter()
    auroc_loop = loop_auroc(y, probability, rows_of, 20, seed=1)
    auroc_loop_per = (time.perf_counter() - start) / 20
    print(
        f"bootstrap_auroc: 1000 replicates in {auroc_time:.2f} s (best of 3); loop (roc_auc_score) "
        f"{auroc_loop_per * 1000:.1f} s for 1000, scaled from 20 ({auroc_loop_per * 1000 / auroc_time:.0f}x); "
        f"AUROC {auroc.estimate:.4f} "
        f"[{auroc.ci_low:.4f}, {auroc.ci_high:.4f}], loop replicate mean {auroc_loop.mean():.4f}"
    )

    print(f"speedup: {loop_per_replicate / fast_per_replicate:.0f}")


if __name__ == "__main__":
    main()
