"""Run the whole analysis for several models and findings: the tables the CLI report and the dashboard show.

Unit of analysis: one row of the cohort (an image for NIH, a study for CheXpert). Every split groups by
patient. The operating threshold, the identifier used for flipping and the flip threshold are chosen on the
calibration split; performance, subgroup rates and regression are reported on the held-out test split (AUROC
on the whole cohort, as it needs no threshold); identifier AUROC comes from patient-grouped out-of-fold
probabilities over the whole cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cxrfail.findings import COMPETITION_FINDINGS


@dataclass(frozen=True)
class AnalysisConfig:
    """Every parameter of an analysis run; hashed (with the input files) into the on-disk cache key."""

    findings: tuple[str, ...] = COMPETITION_FINDINGS
    threshold_method: str = "max_f1"  # "max_f1", "youden" or "fixed"
    fixed_threshold: float = 0.5
    calibration_fraction: float = 0.5  # share of patients in the calibration split
    seed: int = 0
    age_bins: tuple[float, ...] = (40.0, 60.0, 80.0)  # edges in years: <40, 40-59, 60-79, >=80
    min_subgroup_n: int = 30
    extra_subgroups: tuple[str, ...] = ()  # further cohort columns to slice by
    learners: tuple[str, ...] = ("hist_gradient_boosting",)
    feature_sets: tuple[str, ...] = ("all_models+demographics",)
    n_folds: int = 5
    n_bootstrap: int = 2000
    shap_max_samples: int = 500
    min_overlap: float = 0.9


@dataclass
class AnalysisResult:
    """The tables of one run. Column lists are the contract of the report CSVs and the dashboard.

    performance: model, finding, n, n_pos, auroc, threshold, f1 (f1 on the test split at the threshold chosen
        on calibration; auroc over every image).
    subgroup_rates: model, finding, subgroup, level, n, n_misclassified, rate, ci_low, ci_high, sufficient
        (test split; ``sufficient`` False below ``min_subgroup_n``, rate still shown).
    regression: model, finding, term, odds_ratio, ci_low, ci_high, p_value, q_holm, q_bh, n, converged, note.
    identifiers: model, finding, learner, feature_set, oracle, auroc, ci_low, ci_high, baseline_auroc,
        baseline_ci_low, baseline_ci_high, n.
    flip: model, finding, tau, n_flips, f1_before, f1_after, delta_f1, ci_low, ci_high, precision_before,
        precision_after, recall_before, recall_after, improved (test split; tau chosen on calibration).
    flip_curves: model, finding, tau, n_flips, f1_before, f1_after, delta_f1, ci_low, ci_high (test split,
        a grid of tau).
    outcomes: model, finding, image_id, patient_id, split, label, probability, threshold, prediction,
        misclassified, identifier_probability, flipped_prediction.
    identifier_scores: model, finding, learner, feature_set, image_id, misclassified, identifier_score,
        baseline_score (out-of-fold, whole cohort: for ROC curves).
    shap_values: model, finding, image_id, feature, shap_value, feature_value (a sample of images).
    """

    config: AnalysisConfig
    cohort_summary: dict
    models: tuple[str, ...]
    performance: pd.DataFrame
    subgroup_rates: pd.DataFrame
    regression: pd.DataFrame
    identifiers: pd.DataFrame
    flip: pd.DataFrame
    flip_curves: pd.DataFrame
    outcomes: pd.DataFrame
    identifier_scores: pd.DataFrame
    shap_values: pd.DataFrame
    notes: dict = field(default_factory=dict)
