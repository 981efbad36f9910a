# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial: one finding, four models, from a notebook
#
# This page is a notebook (`docs/tutorial.py`, jupytext percent format: open it in Jupyter, or run it as a
# script). It is executed on the demo every time the documentation is built, so every output below is real.
# To keep the build short it analyses one finding with fewer bootstrap replicates than the defaults; the
# numbers on the other pages use the defaults.
#
# The public API is five names: `load_demo`, `load_cohort`, `load_predictions`, `AnalysisConfig` and
# `analyze`. `import cxrfail` is light: each name is imported on first use.

# %%
from cxrfail import AnalysisConfig, analyze, load_demo

# %% [markdown]
# ## The demo data
#
# `load_demo()` returns the cohort (one row per image of the NIH ChestX-ray14 test split, with patient, age,
# sex, view and labels), the predictions of four DenseNet-121 models, and Google's expert labels for a
# subset of the images (a *reference standard*, used by the label audit). Your own data load with
# `load_cohort` and `load_predictions` (see the [API reference](reference.md)).

# %%
demo = load_demo()
summary = demo.cohort.summary()
print(f"{summary['n_rows']:,} {summary['unit']}s of {summary['n_patients']:,} patients")
print("models:", ", ".join(demo.models))

# %% [markdown]
# ## Run the analysis
#
# `AnalysisConfig` holds every setting, checked when it is made (a value out of range raises a one-line
# `ConfigError`). Here: Pneumothorax only, with 200 bootstrap replicates instead of 2,000. `analyze` splits
# the patients into a calibration half (where thresholds, identifiers and the flip threshold are chosen) and
# a test half (where everything is reported), analyses every (model, finding) pair, and caches the result
# on disk: a second call with the same inputs returns at once.

# %%
config = AnalysisConfig(findings=("Pneumothorax",), n_bootstrap=200, shap_max_samples=100)
result = analyze(demo.cohort, demo.predictions, config, reference=demo.reference)
pair = result.pair("densenet121_jrzech", "Pneumothorax")
pair

# %% [markdown]
# ## How often is the model wrong?
#
# `pair.overall` is the misclassification of the pair on the test split: rows, errors, the rate with its
# patient-clustered 95% interval (the same rule as every subgroup rate: see
# [Methods](methods.md#subgroup-rates)), false positives and false negatives.

# %%
pair.overall

# %% [markdown]
# ## Who is it wrong for?
#
# `pair.by_group(subgroup)` gives the rate per level, with `n` (rows), `n_patients` and a patient-clustered
# interval; `sufficient` is False for levels too small to compare. `pair.difference(subgroup)` is the
# spread between the lowest and highest sufficient level: a description, not a test (compare the
# intervals).

# %%
pair.by_group("age")[["n", "n_patients", "n_misclassified", "rate", "ci_low", "ci_high", "sufficient"]]

# %%
pair.difference("age")

# %% [markdown]
# ## Can the errors be predicted?
#
# `pair.identifiers` has one row per identifier evaluated: its AUROC for telling the model's errors from
# its correct calls on held-out patients, with the interval, against simpler scores of the same rows (see
# [Methods](methods.md#misclassification-identifiers-the-ladder)). Rows marked `oracle` use ground-truth
# labels as features and are shown for comparison only.

# %%
pair.identifiers.filter(regex=r"^(learner|feature_set|oracle|auroc|ci_low|ci_high|n|n_misclassified|delta_.*)$")

# %% [markdown]
# ## Can they be corrected?
#
# `pair.flip` is the one verdict: the flip threshold tau was chosen on calibration, and the F1 change on
# test comes with a paired interval; `improved` is True only when that interval lies above zero.

# %%
pair.flip

# %% [markdown]
# `pair.evaluate_flip(tau)` applies the same rule at any other tau. That is a look at the test data, so it
# is labelled exploratory and carries no verdict (`improved` is None).

# %%
look = pair.evaluate_flip(0.5, n_bootstrap=200)
print(
    f"tau 0.5: {look.n_flips} flips, ΔF1 {look.delta_f1:+.3f} [{look.ci_low:+.3f}, {look.ci_high:+.3f}], "
    f"exploratory={look.exploratory}, improved={look.improved}"
)

# %% [markdown]
# ## Model error or label error?
#
# Where the reference standard reads the finding, `pair.label_audit` splits the model's test
# misclassifications into model errors and probable label errors (the model agrees with the experts, the
# NIH label does not), with patient-resampled intervals. The expert-read images are not a random sample of
# the cohort. See [Label audit](label-audit.md).

# %%
pair.label_audit[
    [
        "n_rows",
        "n_patients",
        "kappa",
        "n_misclassified",
        "n_model_error",
        "n_label_error",
        "label_error_share",
        "label_error_ci_low",
        "label_error_ci_high",
    ]
]

# %% [markdown]
# ## Every pair at once
#
# `result.table(name)` stacks one table over every pair (the same tables the report writes as CSV), e.g.
# the performance of the four models:

# %%
result.table("performance")[["model", "finding", "auroc", "threshold", "f1", "misclassification_rate"]]

# %% [markdown]
# ## Slices
#
# `pair.slices` lists the failure slices searched on calibration and confirmed (or not) on test, with the
# columns of `slices.csv`; see [Methods](methods.md#slices-search-on-calibration-confirm-on-test) and
# [Failure slices](slices.md). `confirmed` is True only when the slice holds up on the test patients; the
# others stay in the table. The first ten candidates of the default error kind (misclassification):

# %%
pair.slices[["slice", "n_test", "rate_test", "ci_low", "ci_high", "rate_ratio", "q_value", "confirmed"]].head(10)
