"""Misclassification identifiers: can a second model tell when the first one is wrong?

CheXbreak (Chen et al., MLHC 2021) trains a classifier on features of each study (the model's own
probabilities, demographics, other models' probabilities, other findings) to predict whether the chest X-ray
model misclassifies it at its operating threshold. Three parts, one job each:

- `features`: the feature matrices of the feature sets (`cxrfail.analysis.config.FEATURE_SETS`);
- `learners`: the classifiers, patient-grouped out-of-fold fits and the calibration-only fit;
- `evaluation`: the identifier's held-out AUROC with patient-clustered intervals and paired differences.
"""

from cxrfail.analysis.identifiers.evaluation import (
    IDENTIFIER_INTERVAL_COLUMNS,
    IdentifierEvaluation,
    confidence_baseline,
    evaluate_identifier,
)
from cxrfail.analysis.identifiers.features import (
    DEFAULT_FINDING_FEATURES,
    build_features,
    excluded_labels,
    feature_set_parts,
    is_oracle,
    refuse_oracle_for_flipping,
)
from cxrfail.analysis.identifiers.learners import (
    OPENMP_THREADS,
    ConstantIdentifier,
    FillEmptyColumns,
    SplitIdentifier,
    feature_frame,
    fit_identifier,
    fit_split_identifier,
    make_learner,
    out_of_fold_probabilities,
    predict_identifier,
)

__all__ = [
    "DEFAULT_FINDING_FEATURES", "IDENTIFIER_INTERVAL_COLUMNS", "OPENMP_THREADS", "ConstantIdentifier",
    "FillEmptyColumns", "IdentifierEvaluation", "SplitIdentifier", "build_features", "confidence_baseline",
    "evaluate_identifier", "excluded_labels", "feature_frame", "feature_set_parts", "fit_identifier",
    "fit_split_identifier", "is_oracle", "make_learner", "out_of_fold_probabilities", "predict_identifier",
    "refuse_oracle_for_flipping",
]
