"""Coverage of the subgroup-rate interval (`cxrfail.analysis.subgroups.clustered_rate`) on simulated levels
shaped like the demo's smallest, against the patient percentile bootstrap it replaced.

Levels: the rows per patient of the demo's smallest subgroup levels (fewest patients) on the test split
(NIH demo, patient split seed 0, the run's default subgroups), read from the real data at run time: age >= 80
(28 patients, one of them owning 22 of the 74 rows), Support Devices present (one row per patient) and
Pneumothorax present (158 patients, up to 37 rows each).

Outcome model: each patient i has its own error probability p_i ~ Beta with mean p and intra-patient
correlation rho (rho = 0: rows independent; rho = 1: all rows of a patient share their outcome); its m_i
rows are Binomial(m_i, p_i). True rate p in {0, 2%, 10%}; rho in {0, 0.1, 0.3, 0.6, 0.8}. The demo's own
pairs imply rho = (design effect - 1) / (mean cluster size - 1) on their test splits; the range is printed
(0.07 to 0.75, median 0.43, when this was written), so the grid spans it. The level's interval uses, as
`subgroup_rates` does, the within-patient correlation estimated on the whole population: the level's patients
plus the other patients of the demo's test split (their own row counts), simulated with rate 10% and the same
rho.

Coverage: the share of simulated levels whose interval contains the true p and is not zero-width
(ci_high > ci_low). For p = 0 every row is correct, so that is the share of intervals that contain 0 with a
positive upper bound: a zero-width [0, 0] interval counts as a miss. The minimum is over every (level, p, rho)
of the grid. Not in the minimum (printed as "stress"): a level more clustered than the rest of its split
(level rho 0.6 or 0.3, the split's 0.1 or 0), where the pooled correlation understates the level's; there
the interval rests on the level's own design effect alone.

Baseline (same run, fewer simulations): the 1,000-replicate patient percentile bootstrap of the rate that
`subgroup_rates` used before, on the same simulated levels.

Run: .venv/bin/python bench/subgroup_coverage_bench.py [simulations per scenario, default 4000]
Last line: ``subgroup_coverage_min: <lowest coverage over the grid>`` (the issue asks for >= 0.93).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.pair import run_levels
from cxrfail.analysis.resampling import resample_patterns
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.subgroups import (
    clustered_rate,
    mean_cluster_size,
    within_patient_correlation,
)
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.demo import load_demo_cohort, load_demo_predictions
from cxrfail.predictions import common_ids

N_LEVELS = 3
RATES = (0.0, 0.02, 0.10)
CORRELATIONS = (0.0, 0.1, 0.3, 0.6, 0.8)
#: (level rho, rho of the rest of the split): a level more clustered than its split
STRESS = ((0.6, 0.1), (0.3, 0.0))
REST_RATE = 0.10
BOOTSTRAP_SIMULATIONS = 300
BOOTSTRAP_REPLICATES = 1000


def demo_levels() -> tuple[list[tuple[str, np.ndarray]], np.ndarray, list[float]]:
    """(the `N_LEVELS` smallest test-split levels as (name, rows per patient), rows per patient of the whole
    test split, the within-patient correlation each demo pair implies on its test split)."""
    config = AnalysisConfig()
    models = load_demo_predictions()
    cohort = load_demo_cohort(models)
    ids = common_ids(cohort, models)
    table = cohort.table.loc[ids]
    split = pd.Series(
        patient_split(table["patient_id"].to_numpy(), config.calibration_fraction, config.seed), index=ids
    )
    test = table.loc[split == "test"]
    levels = run_levels(test, config)
    found = []
    for subgroup in levels.columns:
        for level, rows in test.groupby(levels[subgroup], sort=False):
            found.append((f"{subgroup} = {level}", rows.groupby("patient_id").size().to_numpy()))
    found.sort(key=lambda item: len(item[1]))
    correlations = []
    for model in models:
        for finding in config.findings:
            known = table[finding].notna()
            y, probability = table.loc[known, finding].astype(int), model.probabilities.loc[ids][finding][known]
            calibration = (split[known] == "calibration").to_numpy()
            threshold = choose_threshold(
                y[calibration].to_numpy(), probability[calibration].to_numpy(), config.threshold_method
            ).threshold
            wrong = classify(y[~calibration], probability[~calibration], threshold)["misclassified"]
            per_patient = wrong.groupby(table.loc[wrong.index, "patient_id"]).agg(["sum", "size"])
            correlations.append(within_patient_correlation(per_patient["sum"], per_patient["size"]))
    return found[:N_LEVELS], test.groupby("patient_id").size().to_numpy(), correlations


def simulate(sizes: np.ndarray, rate: float, rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, P) events per patient: p_i ~ Beta(mean ``rate``, intra-patient correlation ``rho``), then
    Binomial(m_i, p_i)."""
    if rate == 0.0:
        return np.zeros((n, len(sizes)), dtype=np.int64)
    if rho == 0.0:
        p = np.full((n, len(sizes)), rate)
    else:
        scale = (1.0 - rho) / rho
        p = rng.beta(rate * scale, (1.0 - rate) * scale, size=(n, len(sizes)))
    return rng.binomial(sizes[None, :], p)


def covered(low: float, high: float, rate: float) -> bool:
    return bool(low <= rate <= high and high > low)


def coverage(sizes, rest, rate, rho, rest_rho, n, seed) -> tuple[float, float, float]:
    """(coverage, mean width, bootstrap coverage) of one scenario."""
    rng = np.random.default_rng(seed)
    events = simulate(sizes, rate, rho, n, rng)
    rest_events = simulate(rest, REST_RATE, rest_rho, n, rng)
    population = np.concatenate([sizes, rest])
    hits, widths = 0, 0.0
    for level_events, other in zip(events, rest_events, strict=True):
        correlation = within_patient_correlation(np.concatenate([level_events, other]), population)
        interval = clustered_rate(level_events, sizes, correlation=correlation)
        hits += covered(interval.ci_low, interval.ci_high, rate)
        widths += interval.ci_high - interval.ci_low
    boot_hits = 0
    for level_events in events[:BOOTSTRAP_SIMULATIONS]:
        drawn = resample_patterns(np.column_stack([level_events, sizes]), BOOTSTRAP_REPLICATES, rng)
        low, high = np.quantile(drawn[:, 0] / drawn[:, 1], [0.025, 0.975])
        boot_hits += covered(low, high, rate)
    return hits / n, widths / n, boot_hits / min(n, BOOTSTRAP_SIMULATIONS)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    start = time.perf_counter()
    levels, rest, correlations = demo_levels()
    print(
        f"demo pairs' within-patient correlation on their test splits: {min(correlations):.2f} to "
        f"{max(correlations):.2f} (median {np.median(correlations):.2f}, {len(correlations)} pairs)"
    )
    for name, sizes in levels:
        print(
            f"level {name}: {sizes.sum()} rows, {len(sizes)} patients, largest {sizes.max()} rows, mean cluster "
            f"size {mean_cluster_size(sizes):.1f}"
        )
    print(f"{n} simulated levels per scenario ({BOOTSTRAP_SIMULATIONS} for the bootstrap baseline)")
    worst, seed = 1.0, 0
    for name, sizes in levels:
        for rate in RATES:
            for rho in CORRELATIONS:
                seed += 1
                hit, width, boot = coverage(sizes, rest, rate, rho, rho, n, seed)
                worst = min(worst, hit)
                print(
                    f"{name:26s} p={rate:.2f} rho={rho:.1f}: coverage {hit:.3f} (mean width {width:.3f}); "
                    f"percentile bootstrap {boot:.3f}"
                )
        for rho, rest_rho in STRESS:
            for rate in RATES[1:]:
                seed += 1
                hit, width, boot = coverage(sizes, rest, rate, rho, rest_rho, n, seed)
                print(
                    f"stress {name:19s} p={rate:.2f} rho={rho:.1f}, split rho={rest_rho:.1f}: coverage {hit:.3f} "
                    f"(mean width {width:.3f}); percentile bootstrap {boot:.3f}"
                )
    print(f"time: {time.perf_counter() - start:.0f} s")
    print(f"subgroup_coverage_min: {worst:.3f}")


if __name__ == "__main__":
    main()
