"""Failure slices on the demo (NIH ChestX-ray14 test split, the shared CheXNet models, the five competition
findings), as a run finds them: how many of the search library's raw top slices were confirmed on held-out
patients, the slices confirmed for two or more models, and two confirmed examples with their numbers.

Only the slice step runs (threshold on calibration as the run picks it, then search and confirmation with the
default settings and every error kind: misclassified, false negative, false positive); the numbers equal those
of `cxrfail analyze --slice-error-kinds misclassified false_negative false_positive` on the demo's slices
table.

Run: .venv/bin/python scripts/slices_demo.py   (CXRFAIL_DEMO_DIR if the demo is not at ../shared)
Lines of the form ``name: value`` are the numbers the docs quote.
"""

from __future__ import annotations

import pandas as pd

from cxrfail import demo
from cxrfail.analysis.config import SLICE_ERROR_KINDS, AnalysisConfig
from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.slices import (
    across_models,
    adjust_slices_grid,
    find_slices_with_config,
)
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.predictions import common_ids


def main() -> None:
    config = AnalysisConfig(slice_error_kinds=SLICE_ERROR_KINDS)
    models = demo.load_demo_predictions()
    cohort = demo.load_demo_cohort(models)
    ids = common_ids(cohort, models)
    table = cohort.table.loc[ids]
    split = patient_split(table["patient_id"].to_numpy(), config.calibration_fraction, config.seed)
    frames = []
    for model in models:
        for finding in config.findings:
            known = table[finding].notna().to_numpy()
            rows, row_split = table.loc[known], split[known]
            label = rows[finding].to_numpy(dtype=int)
            probability = model.probabilities.loc[rows.index, finding].to_numpy(dtype=float)
            calibration = row_split == "calibration"
            threshold = choose_threshold(
                label[calibration], probability[calibration], config.threshold_method, config.fixed_threshold
            ).threshold
            prediction = classify(label, probability, threshold)["prediction"].to_numpy()
            found = find_slices_with_config(rows, finding, label, prediction, row_split, config)
            frames.append(found.table.assign(model=model.name, finding=finding))
    slices = pd.concat(adjust_slices_grid(frames), ignore_index=True)
    confirmed = slices.loc[slices["confirmed"].astype(bool)]
    print(
        f"cohort: {len(table):,} {cohort.unit}s of {table['patient_id'].nunique():,} patients; "
        f"{len(models)} models x {len(config.findings)} findings"
    )
    for kind, group in slices.groupby("error_kind", sort=False):
        print(f"{kind}: {int(group['confirmed'].sum())} of {len(group)} raw top slices confirmed")
    print(f"slices_raw_top: {len(slices)}")
    print(f"slices_confirmed: {len(confirmed)}")
    print(f"slices_confirmed_grid_q: {int((confirmed['q_value_grid'] < 0.05).sum())}")
    together = across_models(slices)
    print(f"slices_confirmed_for_2plus_models: {len(together)}")
    for row in together.head(5).itertuples():
        print(f"  shared: {row.finding} · {row.error_kind} · {row.slice} ({row.models}; rate ratios {row.rate_ratios})")
    examples = confirmed.sort_values("q_value").drop_duplicates("finding").head(2)
    for number, row in enumerate(examples.itertuples(), start=1):
        print(
            f"example_{number}: {row.model} · {row.finding} · {row.error_kind.replace('_', ' ')}: {row.slice}: "
            f"test rate {row.rate_test:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}] in {row.n_test:,} "
            f"{cohort.unit}s of {row.n_patients_test:,} patients vs {row.rest_rate_test:.3f} in the rest; "
            f"rate ratio {row.rate_ratio:.2f} [{row.rr_ci_low:.2f}, {row.rr_ci_high:.2f}], q {row.q_value:.2g} "
            f"(calibration: {row.rate_calibration:.3f} in {row.n_calibration:,})"
        )


if __name__ == "__main__":
    main()
