"""The numbers the README quotes about subgroup design effects and the label audit, computed from a demo run.

Nothing here is typed in: every number comes from `run_analysis` on the NIH demo (four models, patient split
seed 0, the default `AnalysisConfig` but for the findings) and the demo's expert labels. Two runs, both cached
on disk (a second call of this script reads them back):

* subgroups: the five competition findings, scope "core" (performance, outcomes, subgroup rates, regression);
* label audit: Pneumothorax and Lung Lesion with the expert labels, scope "full" (the audit re-scores the
  run's identifier).

Each ``*_table`` function takes a result and returns a DataFrame, so a docs build can call it; ``main`` prints
them as Markdown.

Run: PYTHONPATH=. .venv/bin/python scripts/demo_numbers.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse

import pandas as pd

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.labels import LABEL_ERROR, audit_pair
from cxrfail.analysis.result import AnalysisResult
from cxrfail.analysis.runner import run_analysis
from cxrfail.demo import (
    load_demo_cohort,
    load_demo_predictions,
    load_demo_reference_labels,
)

AUDITED = ("Pneumothorax", "Lung Lesion")


def design_effect_table(result: AnalysisResult) -> pd.DataFrame:
    """Per finding, over every model and subgroup level (reference rows left out): the smallest, median and
    largest own design effect (`cxrfail.analysis.subgroups.own_design_effect`), the level of the largest and how
    much wider its clustered interval is than the Wilson interval on rows there."""
    rates = result.subgroup_rates
    levels = rates.loc[~rates["is_reference"].astype(bool) & rates["design_effect"].notna()]
    rows = []
    for finding, group in levels.groupby("finding", sort=False):
        top = group.loc[group["design_effect"].idxmax()]
        rows.append(
            {
                "finding": finding,
                "design_effect_min": group["design_effect"].min(),
                "design_effect_median": group["design_effect"].median(),
                "design_effect_max": top["design_effect"],
                "largest_at": f"{top['model']}, {top['subgroup']} {top['level']}",
                "width_vs_wilson_there": (top["ci_high"] - top["ci_low"]) / (top["wilson_high"] - top["wilson_low"]),
            }
        )
    return pd.DataFrame(rows)


def oldest_level_table(result: AnalysisResult) -> pd.DataFrame:
    """The age >= 80 level of every pair: rows, patients, errors, the rate with its interval, effective n and
    whether the sufficiency rule marks it."""
    rates = result.subgroup_rates
    oldest = rates.loc[(rates["subgroup"] == "age") & (rates["level"] == ">=80")]
    return oldest[
        [
            "model",
            "finding",
            "n",
            "n_patients",
            "n_misclassified",
            "rate",
            "ci_low",
            "ci_high",
            "design_effect",
            "effective_n",
            "ci_method",
            "sufficient",
        ]
    ].reset_index(drop=True)


def label_error_table(result: AnalysisResult) -> pd.DataFrame:
    """Per model and audited finding, on the expert-labelled test-split images: probable label errors of the
    misclassified images, their share with its patient-bootstrap 95% CI, and the resamples dropped."""
    audit = result.table("label_audit")
    return audit[
        [
            "model",
            "finding",
            "n_split_rows",
            "n_split_patients",
            "n_label_error",
            "n_misclassified",
            "label_error_share",
            "label_error_ci_low",
            "label_error_ci_high",
            "error_share_n_dropped",
            "n_bootstrap",
        ]
    ].reset_index(drop=True)


def all_reference_rows_table(result: AnalysisResult, reference: pd.DataFrame) -> pd.DataFrame:
    """Exploratory (half of the images lie in the calibration split the threshold was chosen on): the share of
    probable label errors among the misclassified images over every expert-labelled image."""
    rows = []
    for pair in result:
        if pair.finding not in reference.columns or not pair.has_label_audit:
            continue
        labels = reference[pair.finding].reindex(pd.Index(pair.outcomes["image_id"]))
        cases = audit_pair(
            pair.outcomes, labels, split=None, n_bootstrap=int(result.config.n_bootstrap), seed=int(result.config.seed)
        ).cases
        wrong = cases["misclassified"] == 1
        rows.append(
            {
                "model": pair.model,
                "finding": pair.finding,
                "n_rows": len(cases),
                "n_misclassified": int(wrong.sum()),
                "label_error_share": float((cases.loc[wrong, "verdict"] == LABEL_ERROR).mean()),
            }
        )
    return pd.DataFrame(rows)


def agreement_table(result: AnalysisResult) -> pd.DataFrame:
    """Cohort label by expert label counts and kappa per audited finding (the same for every model)."""
    agreement = result.table("label_agreement")
    first = agreement.loc[agreement["model"] == agreement["model"].iloc[0]]
    return first[["finding", "cohort_label", "reference_label", "n", "n_rows", "n_patients", "kappa"]]


def auroc_by_label_set_table(result: AnalysisResult) -> pd.DataFrame:
    """Per model and audited finding: the model's AUROC and the identifier's AUROC for misclassification, each
    against the cohort's labels and against the experts' (every expert-labelled image; patient-bootstrap CIs),
    and whether the identifier scores higher against the experts."""
    audit = result.table("label_audit")
    columns = ["model", "finding"]
    for prefix in ("auroc_cohort", "auroc_reference", "identifier_auroc_cohort", "identifier_auroc_reference"):
        columns += [prefix, f"{prefix}_ci_low", f"{prefix}_ci_high"]
    table = audit[columns].reset_index(drop=True)
    table["identifier_higher_against_experts"] = table["identifier_auroc_reference"] > table["identifier_auroc_cohort"]
    return table


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """``frame`` as a Markdown table, floats with ``digits`` decimals."""

    def cell(value) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _interval(value: float, low: float, high: float, percent: bool = False) -> str:
    if percent:
        return f"{value:.0%} [{100 * low:.0f}, {100 * high:.0f}]"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help="on-disk cache of the two runs (default: cxrfail's)")
    args = parser.parse_args()
    models = load_demo_predictions()
    cohort = load_demo_cohort(models)
    reference = load_demo_reference_labels(cohort)
    subgroups = run_analysis(cohort, models, AnalysisConfig(), scope="core", cache_dir=args.cache_dir)
    audited = run_analysis(
        cohort,
        models,
        AnalysisConfig(findings=AUDITED),
        reference=reference,
        cache_dir=args.cache_dir,
        keep_workers=False,
    )

    print("## Subgroup design effects (test split, every model and level)\n")
    print(markdown(design_effect_table(subgroups), 1))
    print("\n## The age >= 80 level (sufficiency)\n")
    print(markdown(oldest_level_table(subgroups)))

    print("\n## Agreement of the cohort labels with the experts\n")
    print(markdown(agreement_table(audited), 2))
    print("\n## Probable label errors of the misclassified test-split images (share [95% CI])\n")
    errors = label_error_table(audited)
    wide = []
    for model, group in errors.groupby("model", sort=False):
        row = {"model": model}
        for _, r in group.iterrows():
            counts = f"{int(r['n_label_error'])} / {int(r['n_misclassified'])}"
            row[f"{r['finding']}: label errors / misclassified"] = counts
            row[f"{r['finding']}: share [95% CI]"] = _interval(
                r["label_error_share"], r["label_error_ci_low"], r["label_error_ci_high"], percent=True
            )
        wide.append(row)
    print(markdown(pd.DataFrame(wide)))
    first = errors.iloc[0]
    print(
        f"\n(on {int(first['n_split_rows'])} images of {int(first['n_split_patients'])} patients for "
        f"{first['finding']}; {int(first['n_bootstrap'])} replicates; resamples dropped for no misclassified "
        f"image: {int(errors['error_share_n_dropped'].max())} at most)"
    )
    print("\n## Exploratory: the same share over every expert-labelled image\n")
    every = all_reference_rows_table(audited, reference.table)
    for finding, group in every.groupby("finding", sort=False):
        print(
            f"- {finding}: {group['label_error_share'].min():.0%}-{group['label_error_share'].max():.0%} "
            f"(on {group['n_rows'].iloc[0]} images)"
        )
    print("\n## AUROC against each label set (every expert-labelled image)\n")
    aurocs = auroc_by_label_set_table(audited)
    shown = pd.DataFrame(
        {
            "model": aurocs["model"],
            "finding": aurocs["finding"],
            **{
                name: [
                    _interval(*values)
                    for values in aurocs[[prefix, f"{prefix}_ci_low", f"{prefix}_ci_high"]].itertuples(index=False)
                ]
                for name, prefix in (
                    ("model vs cohort", "auroc_cohort"),
                    ("model vs experts", "auroc_reference"),
                    ("identifier vs cohort", "identifier_auroc_cohort"),
                    ("identifier vs experts", "identifier_auroc_reference"),
                )
            },
            "identifier higher vs experts": aurocs["identifier_higher_against_experts"],
        }
    )
    print(markdown(shown))
    for finding, group in aurocs.groupby("finding", sort=False):
        higher = int(group["identifier_higher_against_experts"].sum())
        print(
            f"- {finding}: model AUROC {group['auroc_cohort'].min():.2f}-{group['auroc_cohort'].max():.2f} "
            f"against the cohort labels, {group['auroc_reference'].min():.2f}-{group['auroc_reference'].max():.2f}"
            f" against the experts; the identifier scores higher against the experts for {higher} of "
            f"{len(group)} models"
        )


if __name__ == "__main__":
    main()
