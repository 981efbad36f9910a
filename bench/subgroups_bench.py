"""Subgroup-rate speed and design effects: patient-clustered `subgroup_rates` on the real demo.

Data: the NIH demo, model densenet121_jrzech, each of Atelectasis, Consolidation and Pleural Effusion;
threshold max-F1 on the calibration half (patient split, seed 0), rates on the test half, the default
subgroups (age, sex, view, Lung Lesion, Pneumothorax, Support Devices); intervals analytic (Wilson at the
effective sample size, `cxrfail.analysis.subgroups.clustered_rate`).

Baseline (same process): the Wilson-only table the dashboard drew before (counts and `wilson_interval`), timed
on the same rows. Also printed: the largest design effects (clustered linearisation variance / binomial variance) and the
ratio of the clustered to the Wilson interval width.

Run: .venv/bin/python bench/subgroups_bench.py
Last line: ``slowdown: <clustered time / Wilson-only time>`` (and the clustered time in ms, the number the
dashboard's live "any cohort column" slicing pays).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates, wilson_interval
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.demo import load_demo_cohort, load_demo_predictions

MODEL = "densenet121_jrzech"
FINDINGS = ("Atelectasis", "Consolidation", "Pleural Effusion")


def wilson_only(wrong: pd.Series, levels: pd.DataFrame) -> pd.DataFrame:
    """The baseline: per-level counts and the Wilson interval (rows treated as independent)."""
    frames = []
    for subgroup in levels.columns:
        counts = wrong.groupby(levels[subgroup].reindex(wrong.index)).agg(["size", "sum"])
        counts["low"], counts["high"] = wilson_interval(counts["sum"], counts["size"])
        frames.append(counts.assign(subgroup=subgroup))
    return pd.concat(frames)


def main() -> None:
    models = load_demo_predictions()
    cohort = load_demo_cohort(models)
    model = next(m for m in models if m.name == MODEL)
    table = cohort.table
    patients = table["patient_id"]
    split = pd.Series(patient_split(patients.to_numpy(dtype=object), 0.5, seed=0), index=table.index)
    levels = subgroup_levels(table)
    clustered_times, wilson_times = [], []
    for finding in FINDINGS:
        rows = table.index[table[finding].notna()]
        calibration, test = rows[split[rows] == "calibration"], rows[split[rows] == "test"]
        y = table[finding].astype(int)
        probability = model.probabilities[finding]
        threshold = choose_threshold(y[calibration].to_numpy(), probability[calibration].to_numpy()).threshold
        wrong = classify(y[test], probability[test], threshold)["misclassified"]
        start = time.perf_counter()
        rates = subgroup_rates(wrong, levels, patients)
        clustered_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        wilson_only(wrong, levels)
        wilson_times.append(time.perf_counter() - start)
        shown = rates[~rates["is_reference"]].sort_values("design_effect", ascending=False).head(3)
        for _, row in shown.iterrows():
            width = (row["ci_high"] - row["ci_low"]) / (row["wilson_high"] - row["wilson_low"])
            print(
                f"{finding:16s} {row['subgroup']:>15s}={row['level']:<8s} n={row['n']:5d} "
                f"patients={row['n_patients']:5d} rate={row['rate']:.3f} design_effect={row['design_effect']:.1f} "
                f"width_vs_wilson={width:.2f}"
            )
    clustered, wilson = np.median(clustered_times), np.median(wilson_times)
    print(
        f"subgroup_rates (patient-clustered, effective-n intervals): median {1000 * clustered:.0f} ms; "
        f"Wilson-only {1000 * wilson:.1f} ms"
    )
    print(f"slowdown: {clustered / wilson:.1f} ({1000 * clustered:.0f} ms)")


if __name__ == "__main__":
    main()
