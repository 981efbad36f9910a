"""Misclassification identifiers: can a second model tell when the first one is wrong?

CheXbreak (Chen et al., MLHC 2021) trains a classifier on features of each study (the model's own
probabilities, demographics, other models' probabilities, other findings) to predict whether the chest X-ray
model misclassifies it at its operating threshold. Three parts, one job each:

- `features`: the feature matrices of the feature sets (`cxrfail.analysis.config.FEATURE_SETS`);
- `learners`: the classifiers, patient-grouped out-of-fold fits and the cross-fitted calibration identifier;
- `evaluation`: the identifiers' test-split AUROC with patient-clustered intervals and paired differences
  (the ladder of feature sets against the model's own probability alone).
"""

from cxrfail.analysis.identifiers.evaluation import (
    IDENTIFIER_COLUMNS,
    IdentifierEvaluation,
    confidence_baseline,
    evaluate_identifier,
    evaluate_identifiers,
)
from cxrfail.analysis.identifiers.features import (
    DEFAULT_FINDING_FEATURES,
    build_features,
    excluded_labels,
    feature_set_parts,
    is_oracle,
    own_output_columns,
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
    learner_settings,
    make_learner,
    out_of_fold_probabilities,
    predict_identifier,
)

__all__ = [
    "DEFAULT_FINDING_FEATURES",
    "IDENTIFIER_COLUMNS",
    "OPENMP_THREADS",
    "ConstantIdentifier",
    "FillEmptyColumns",
    "IdentifierEvaluation",
    "SplitIdentifier",
    "build_features",
    "confidence_baseline",
    "evaluate_identifier",
    "evaluate_identifiers",
    "excluded_labels",
    "feature_frame",
    "feature_set_parts",
    "fit_identifier",
    "fit_split_identifier",
    "is_oracle",
    "learner_settings",
    "make_learner",
    "out_of_fold_probabilities",
    "own_output_columns",
    "predict_identifier",
    "refuse_oracle_for_flipping",
]
