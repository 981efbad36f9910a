"""The demo's identifier and flipping numbers, as the README quotes them: every model x the five competition
findings with the default `AnalysisConfig` (the identifier ladder, hist_gradient_boosting, the run's identifier
own+demographics).

Prints, per pair, the ladder's test-split AUROCs with their patient-clustered 95% CIs and the paired
differences to ``probability_only``; then summary lines ``name: value`` (what a docs generator reads):

- ``ladder_auroc_mean:<feature set>``: mean test AUROC over the pairs, per rung;
- ``delta_own_demographics_vs_probability_only_mean``: mean paired difference of own+demographics to
  probability_only; ``..._excluding_zero``: how many of the pairs' 95% intervals exclude 0 (above / below);
- the same for ``all_models+demographics`` and the oracle rung;
- ``baseline_auroc_mean`` (the confidence heuristic, secondary) and ``own_output_shap_share_mean``;
- ``flip_improved``: pairs whose flip verdict is "improved" (CI of the F1 change above 0) of those analysed, and
  one line per pair with tau, calibration flips, test flips and the F1 change with its CI;
  ``flip_rows_calibration_vs_test``: rows flipped on each split over the pairs whose tau flips anything.

Run: PYTHONPATH=. .venv/bin/python scripts/identifier_numbers.py [--jobs 2]
"""

from __future__ import annotations

import argparse

import numpy as np

from cxrfail.analysis.config import IDENTIFIER_LADDER, PROBABILITY_ONLY, AnalysisConfig
from cxrfail.analysis.explain import own_output_share
from cxrfail.analysis.runner import run_analysis
from cxrfail.demo import load_demo_cohort, load_demo_predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default %(default)s)")
    args = parser.parse_args()
    models = load_demo_predictions()
    cohort = load_demo_cohort(models)
    config = AnalysisConfig()
    result = run_analysis(cohort, models, config, use_cache=False, n_jobs=args.jobs)
    identifiers = result.identifiers.loc[result.identifiers["learner"] == config.learners[0]]
    pairs = identifiers[["model", "finding"]].drop_duplicates()
    print(
        f"demo: {len(pairs)} pairs, learner {config.learners[0]}, unit {result.unit}; AUROCs on the test split "
        "(95% CIs resample test patients; differences paired on the same resamples)"
    )
    for (model, finding), rows in identifiers.groupby(["model", "finding"], sort=False):
        rows = rows.set_index("feature_set")
        parts = [
            f"{fs} {r['auroc']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            + (
                ""
                if fs == PROBABILITY_ONLY
                else f" d={r['delta_vs_probability_only']:+.3f} "
                f"[{r['delta_vs_probability_only_ci_low']:+.3f}, {r['delta_vs_probability_only_ci_high']:+.3f}]"
            )
            for fs, r in rows.iterrows()
        ]
        print(
            f"{model} / {finding} (n={int(rows['n'].iloc[0]):,}, patients={int(rows['n_patients'].iloc[0]):,}): "
            + "; ".join(parts)
        )
    for feature_set in IDENTIFIER_LADDER:
        rows = identifiers.loc[identifiers["feature_set"] == feature_set]
        if len(rows):
            print(f"ladder_auroc_mean:{feature_set}: {rows['auroc'].mean():.3f}")
    for feature_set in IDENTIFIER_LADDER[1:]:
        rows = identifiers.loc[identifiers["feature_set"] == feature_set]
        if rows.empty:
            continue
        name = "delta_" + feature_set.replace("+", "_") + "_vs_probability_only"
        above = int((rows["delta_vs_probability_only_ci_low"] > 0).sum())
        below = int((rows["delta_vs_probability_only_ci_high"] < 0).sum())
        print(f"{name}_mean: {rows['delta_vs_probability_only'].mean():+.4f}")
        print(f"{name}_excluding_zero: {above + below} of {len(rows)} ({above} above, {below} below)")
    run_identifier = identifiers.loc[identifiers["feature_set"] == config.identifier_feature_set]
    print(f"baseline_auroc_mean: {run_identifier['baseline_auroc'].mean():.3f}")
    print(f"delta_vs_baseline_mean: {run_identifier['delta_vs_baseline'].mean():+.3f}")
    shares = own_output_share(result.shap_values)
    print(
        f"own_output_shap_share_mean: {shares['own_share'].mean():.3f} (min {shares['own_share'].min():.3f}, "
        f"max {shares['own_share'].max():.3f})"
    )
    flip = result.flip
    for _, row in flip.iterrows():
        tau = "never" if row["tau"] > 1 else f"{row['tau']:.4f}"
        print(
            f"flip {row['model']} / {row['finding']}: tau {tau}, {int(row['calibration_flips'])} calibration flips, "
            f"{int(row['n_flips'])} test flips, dF1 {row['delta_f1']:+.4f} [{row['ci_low']:+.4f}, "
            f"{row['ci_high']:+.4f}], improved {bool(row['improved'])}"
        )
    print(f"flip_improved: {int(flip['improved'].astype(bool).sum())} of {len(flip)}")
    print(f"flip_flips_nothing: {int((flip['tau'] > 1).sum())} of {len(flip)}")
    print(f"flip_test_flips_median: {float(np.median(flip['n_flips'])):.0f}")
    flipping = flip.loc[flip["tau"] <= 1]
    # the two splits hold about as many rows: on a shared scale tau would flip about as many test rows as
    # calibration rows; the fold models' mean has a thinner upper tail than one fold model's score
    print(
        f"flip_rows_calibration_vs_test: {int(flipping['calibration_flips'].sum())} calibration, "
        f"{int(flipping['n_flips'].sum())} test, over the {len(flipping)} pairs that flip"
    )


if __name__ == "__main__":
    main()
