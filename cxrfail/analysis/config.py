"""Every analysis setting, its default and its allowed range: the one home of the run's parameters.

`AnalysisConfig` is checked when it is made, so the CLI, the dashboard and library callers all get the same
`ConfigError` naming the field and its range. The names that settings take (threshold methods, learners,
feature sets, interval methods, run scopes) are declared here once and imported by the modules that use them.
This module imports nothing heavy: building a config (or a command-line parser) loads no analysis code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cxrfail.errors import ConfigError
from cxrfail.findings import COMPETITION_FINDINGS

#: How the operating threshold is chosen on the calibration split (`cxrfail.analysis.thresholds`).
THRESHOLD_METHODS: tuple[str, ...] = ("max_f1", "youden", "fixed")

#: Identifier learners (`cxrfail.analysis.identifiers.make_learner`).
LEARNERS: tuple[str, ...] = ("logistic", "random_forest", "hist_gradient_boosting")

#: The identifier feature set of the model's own probability for the target finding alone (the part
#: "probability"): the reference every other feature set is compared with (what do the others add?).
PROBABILITY_ONLY = "probability_only"
#: The identifier ladder, each rung adding features to the one before: the model's probability for the target
#: alone, all of its outputs, + demographics, every model's outputs + demographics, + other findings' ground
#: truth (an oracle). The default `AnalysisConfig.feature_sets`, evaluated with one learner on the same folds.
IDENTIFIER_LADDER: tuple[str, ...] = (
    PROBABILITY_ONLY,
    "own",
    "own+demographics",
    "all_models+demographics",
    "all_models+demographics+findings",
)
#: Identifier feature sets: `PROBABILITY_ONLY` or ``+``-joined parts (`FEATURE_PARTS`); see
#: `cxrfail.analysis.identifiers`.
FEATURE_SETS: tuple[str, ...] = IDENTIFIER_LADDER
FEATURE_PARTS: tuple[str, ...] = ("probability", "own", "all_models", "demographics", "findings")
#: The part built from ground-truth labels: a feature set with it is an oracle.
ORACLE_PART = "findings"

#: Identifier AUROC interval methods: patient bootstrap, clustered DeLong, or "auto" (analytic above
#: `ANALYTIC_AUROC_MIN_ROWS` rows).
AUROC_INTERVAL_METHODS: tuple[str, ...] = ("auto", "bootstrap", "analytic")
ANALYTIC_AUROC_MIN_ROWS = 50_000

#: Run scopes: "full" (every step) or "core" (performance, outcomes, subgroup rates and regression only).
FULL_SCOPE, CORE_SCOPE = "full", "core"
SCOPES: tuple[str, ...] = (FULL_SCOPE, CORE_SCOPE)

#: Radiographic findings sliced as subgroups and used as regression covariates (CheXbreak's clinical findings).
CLINICAL_FINDINGS: tuple[str, ...] = ("Lung Lesion", "Pneumothorax", "Support Devices")

#: Cohort formats `cxrfail.cohort.load_cohort` reads (CLI ``--cohort``, the dashboard's Data page), with a line
#: each; `FILE_COHORT_KINDS` need the cohort's CSV file.
COHORT_KINDS: dict[str, str] = {
    "demo": "the NIH demo: the test split of the shared prediction files, with their radiographs",
    "nih": "NIH ChestX-ray14 metadata (torchxrayvision's bundled copy unless a file is given)",
    "chexpert": "a CheXpert-format CSV",
    "csv": "any CSV with a column map",
}
FILE_COHORT_KINDS: tuple[str, ...] = ("chexpert", "csv")
#: What CheXpert's -1 (uncertain) labels become: 0, 1, or dropped (NaN; the row leaves that finding only).
UNCERTAIN_POLICIES: tuple[str, ...] = ("zeros", "ones", "drop")
#: Error kinds a slice search looks for (`cxrfail.analysis.slices`): every row misclassified, positives missed,
#: negatives called positive.
SLICE_ERROR_KINDS: tuple[str, ...] = ("misclassified", "false_negative", "false_positive")

#: Default fewest distinct test patients of a pair (fewer: the pair is refused).
MIN_TEST_PATIENTS = 30
#: Default fewest calibration rows a flip threshold must flip to count as a choice (fewer: "flip nothing").
MIN_CALIBRATION_FLIPS = 20


@dataclass(frozen=True)
class AnalysisConfig:
    """Every parameter of an analysis run; hashed (with the input files) into the on-disk cache key."""

    findings: tuple[str, ...] = COMPETITION_FINDINGS
    threshold_method: str = "max_f1"  # one of THRESHOLD_METHODS
    fixed_threshold: float = 0.5  # probability, used when threshold_method is "fixed"
    calibration_fraction: float = 0.5  # share of patients in the calibration split
    seed: int = 0
    age_bins: tuple[float, ...] = (40.0, 60.0, 80.0)  # edges in years: <40, 40-59, 60-79, >=80
    min_subgroup_n: int = 30  # effective rows (n / design effect): a subgroup level with fewer is flagged insufficient
    extra_subgroups: tuple[str, ...] = ()  # further cohort columns to slice by
    learners: tuple[str, ...] = ("hist_gradient_boosting",)  # LEARNERS names; the first is the run's identifier
    feature_sets: tuple[str, ...] = IDENTIFIER_LADDER  # FEATURE_SETS evaluated (the ladder)
    n_folds: int = 5  # identifier folds within calibration
    n_bootstrap: int = 2000  # patient-bootstrap replicates of AUROC and F1-change intervals
    auroc_interval: str = "auto"  # one of AUROC_INTERVAL_METHODS
    shap_max_samples: int = 500  # test rows explained per pair
    min_overlap: float = 0.9  # share of a model's predicted ids that must be in the cohort
    min_subgroup_patients: int = 10  # a subgroup level with fewer patients is flagged insufficient
    min_calibration_flips: int = MIN_CALIBRATION_FLIPS
    min_test_patients: int = MIN_TEST_PATIENTS
    min_subgroup_events: int = 5  # a subgroup level with fewer misclassified (or correct) rows is flagged insufficient
    # Failure slices (`cxrfail.analysis.slices`): searched on calibration, the top K confirmed on test.
    slice_top_k: int = 20  # candidates confirmed per pair and error kind
    slice_min_rows: int = 50  # fewest calibration rows of a slice (at most the calibration split's rows)
    slice_min_patients: int = 20  # fewest calibration patients of a slice
    # SLICE_ERROR_KINDS searched; misclassification by default (the measure of every other step), each kind
    # adds a search (about 1 s of CPU per pair at CheXpert scale): false_negative / false_positive on request
    slice_error_kinds: tuple[str, ...] = ("misclassified",)
    slice_max_predicates: int = 3  # most predicates in a slice
    slice_search_rows: int = 5_000  # calibration rows the search library sees (a patient sample beyond)
    # the run's identifier (flipping, SHAP, label audit): non-oracle and one of feature_sets
    identifier_feature_set: str = "own+demographics"

    def __post_init__(self) -> None:
        """Refuse settings outside their ranges or names outside their lists with `ConfigError` naming the field."""
        check_config(self)


#: numeric field -> (lowest, highest, whether the bounds themselves are allowed, integer only).
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "fixed_threshold": (0.0, 1.0, True, False),
    "calibration_fraction": (0.0, 1.0, False, False),
    "seed": (0, 2**32 - 1, True, True),
    "min_subgroup_n": (1, math.inf, True, True),
    "n_folds": (2, 100, True, True),
    "n_bootstrap": (100, 1_000_000, True, True),
    "shap_max_samples": (1, 1_000_000, True, True),
    "min_overlap": (0.0, 1.0, True, False),
    "min_subgroup_patients": (1, math.inf, True, True),
    "min_calibration_flips": (1, math.inf, True, True),
    "min_test_patients": (2, math.inf, True, True),
    "min_subgroup_events": (0, math.inf, True, True),
    "slice_top_k": (1, 1000, True, True),
    "slice_min_rows": (1, math.inf, True, True),
    "slice_min_patients": (1, math.inf, True, True),
    "slice_max_predicates": (1, 4, True, True),
    "slice_search_rows": (100, math.inf, True, True),
}

#: field -> the names it may take (every entry, for tuple fields).
CHOICES: dict[str, tuple[str, ...]] = {
    "threshold_method": THRESHOLD_METHODS,
    "auroc_interval": AUROC_INTERVAL_METHODS,
    "learners": LEARNERS,
    "feature_sets": FEATURE_SETS,
    "slice_error_kinds": SLICE_ERROR_KINDS,
    "identifier_feature_set": FEATURE_SETS,
}


def _range_text(low: float, high: float, inclusive: bool) -> str:
    if high == math.inf:
        return f"at least {low:g}"
    return f"from {low:g} to {high:g}" if inclusive else f"between {low:g} and {high:g}, exclusive"


def check_config(config: AnalysisConfig) -> None:
    """Raise `ConfigError` for the first field of ``config`` outside `RANGES` or `CHOICES`, for a non-number,
    for an empty list, and for age bins that do not increase."""
    for name, (low, high, inclusive, integer) in RANGES.items():
        value = getattr(config, name)
        wrong_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
        if wrong_type or not math.isfinite(value):
            raise ConfigError(f"setting {name} must be {'an integer' if integer else 'a number'}, not {value!r}")
        inside = low <= value <= high if inclusive else low < value < high
        if not inside:
            raise ConfigError(
                f"setting {name} is {value!r}; it must be {_range_text(low, high, inclusive)}",
                fix=f"Choose {name} in range",
            )
    for name, allowed in CHOICES.items():
        value = getattr(config, name)
        for entry in (value,) if isinstance(value, str) else tuple(value):
            if entry not in allowed:
                raise ConfigError(f"setting {name} has unknown value {entry!r}", fix=f"Use one of {', '.join(allowed)}")
        if not value:
            raise ConfigError(f"setting {name} is empty", fix=f"Give at least one of {', '.join(allowed)}")
    if ORACLE_PART in config.identifier_feature_set.split("+"):
        raise ConfigError(
            f"setting identifier_feature_set is {config.identifier_feature_set!r}, an oracle (it uses "
            "ground-truth labels a deployed system would not have)",
            fix="Choose a feature set without 'findings', e.g. own+demographics",
        )
    if config.identifier_feature_set not in config.feature_sets:
        raise ConfigError(
            f"setting identifier_feature_set {config.identifier_feature_set!r} is not in feature_sets "
            f"({', '.join(config.feature_sets)})",
            fix="Add it to feature_sets",
        )
    bins = list(config.age_bins)
    if any(later <= earlier for earlier, later in zip(bins, bins[1:])):
        raise ConfigError(f"setting age_bins {bins} must increase", fix="List the bin edges in years, ascending")
    if not config.findings:
        raise ConfigError("setting findings is empty", fix="Analyse at least one finding")
