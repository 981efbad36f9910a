"""Slice search + confirmation for one (model, finding) pair on the bundled CheXpert training CSV at study level
(187,641 studies of 64,540 patients), one core.

The model is simulated (`cxrfail.simulate.simulated_probabilities`, seed 1, AUROC about 0.9); the threshold is
chosen on the calibration split as a run chooses it (max F1). Timed: the threshold, the outcomes and
`cxrfail.analysis.slices.find_slices_with_config` with the default settings (misclassification, K = 20, up to 3
predicates, a 5,000-row search sample; ``--all-kinds`` adds false negatives and false positives), on one
thread. Baseline in the same run: the pair's core analysis (`analyse_pair` in the "core" scope: threshold, outcomes, subgroup rates, regression), so the
ratio says what slices add to a pair.

Run: .venv/bin/python bench/slices_bench.py [--finding Edema] [--rows N] [--all-kinds]
Goal: at most 10 s. Last line: ``slices_pair_s:``, the CPU seconds of that one thread (on a shared machine the
wall time, also printed, grows with the load).
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
from threadpoolctl import threadpool_limits

from cxrfail.analysis.config import CORE_SCOPE, SLICE_ERROR_KINDS, AnalysisConfig
from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.pair import PairInputs, analyse_pair, run_levels
from cxrfail.analysis.slices import find_slices_with_config
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.cohort import chexpert_sample_path, load_chexpert
from cxrfail.findings import COMPETITION_FINDINGS
from cxrfail.simulate import simulated_probabilities

MODEL = "sim01"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finding", default="Edema", choices=COMPETITION_FINDINGS)
    parser.add_argument("--rows", type=int, default=None, help="keep the first N studies (default: all)")
    parser.add_argument("--all-kinds", action="store_true", help="search every error kind")
    args = parser.parse_args()
    config = AnalysisConfig(slice_error_kinds=SLICE_ERROR_KINDS) if args.all_kinds else AnalysisConfig()
    cohort = load_chexpert(chexpert_sample_path(), uncertain_policy="zeros")
    table = cohort.table if args.rows is None else cohort.table.iloc[: args.rows]
    probabilities = simulated_probabilities(cohort, COMPETITION_FINDINGS, 1).loc[table.index]
    split = pd.Series(
        patient_split(table["patient_id"].to_numpy(), config.calibration_fraction, config.seed), index=table.index
    )
    print(
        f"cohort: {len(table)} rows (unit: {cohort.unit}) of {table['patient_id'].nunique()} patients; finding "
        f"{args.finding}; model {MODEL} (simulated)"
    )
    with threadpool_limits(limits=1):
        inputs = PairInputs(
            table=table,
            probabilities={MODEL: probabilities},
            split=split,
            levels=run_levels(table, config),
            unit=cohort.unit,
            scope=CORE_SCOPE,
        )
        started = time.perf_counter()
        analyse_pair(inputs, MODEL, args.finding, config)
        core_s = time.perf_counter() - started

        started, cpu = time.perf_counter(), time.process_time()
        known = table[args.finding].notna().to_numpy()
        rows = table.loc[known]
        label = rows[args.finding].to_numpy(dtype=int)
        probability = probabilities.loc[known, args.finding].to_numpy(dtype=float)
        row_split = split.loc[known].to_numpy()
        calibration = row_split == "calibration"
        threshold = choose_threshold(
            label[calibration], probability[calibration], config.threshold_method, config.fixed_threshold
        ).threshold
        prediction = classify(label, probability, threshold)["prediction"].to_numpy()
        found = find_slices_with_config(rows, args.finding, label, prediction, row_split, config)
        slices_s, slices_cpu = time.perf_counter() - started, time.process_time() - cpu
    table_out = found.table
    for kind, group in table_out.groupby("error_kind", sort=False):
        print(f"{kind}: {len(group)} candidates, {int(group['confirmed'].sum())} confirmed on test")
    for warning in found.warnings:
        print(f"warning: {warning}")
    print(
        f"core pair (baseline, same run): {core_s:.1f} s wall; slices: {slices_s:.1f} s wall, {slices_cpu:.1f} s "
        f"CPU ({slices_s / core_s:.2f}x the core pair's wall time; load average {os.getloadavg()[0]:.1f})"
    )
    print(f"slices_pair_s: {slices_cpu:.1f}")


if __name__ == "__main__":
    main()
