"""Identifier features: the numeric matrix a misclassification identifier is trained on.

CheXbreak (Chen et al., MLHC 2021) trains a classifier on features of each study (the model's own
probabilities, demographics, other models' probabilities, other findings) to predict whether the chest X-ray
model misclassifies it at its operating threshold. This module builds those feature matrices, the three
learners, patient-grouped out-of-fold probabilities, and the AUROC of the identifier (with a patient
bootstrap CI) against a confidence baseline: how close the model's probability is to its threshold.

Feature sets (`FEATURE_SETS`) are ``+``-joined parts (``probability_only`` is the part ``probability`` alone):

``probability``   the analysed model's probability for the target finding only: ``p:<finding>``
``own``           the analysed model's probabilities for every finding it predicts: ``p:<finding>``
``all_models``    every model's probabilities for every finding: ``p:<model>:<finding>``
``demographics``  ``age`` (years), ``sex_male`` (1 male, 0 female, NaN unknown), one-hot view
                  (``view_AP``, ``view_PA``, ...; NaN in every view column when the view is unknown) and, for
                  CheXpert studies, ``n_ap``, ``n_pa``, ``lateral``
``findings``      ground-truth labels of other findings: ``label:<finding>`` (1/0/NaN; NaN kept). This is
                  an *oracle* feature set (`is_oracle`): a deployed system would not have the
                  labels, so every result that uses it carries ``oracle=True``.

The target finding's own label is never a feature: misclassified = (prediction != label), so with the model's
probability (hence its prediction) among the features the label would give the answer away. For the same
reason ``No Finding`` (1 exactly when no finding, the target included, is present) and labels derived from
the target or that it is derived from (on NIH, Lung Lesion = Mass or Nodule) are left out too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from cxrfail.analysis.config import CLINICAL_FINDINGS, FEATURE_PARTS, FEATURE_SETS, ORACLE_PART, PROBABILITY_ONLY
from cxrfail.errors import OracleFeatureSetError
from cxrfail.findings import ALL_FINDINGS, derived_from, is_finding

#: Default label features of the ``findings`` part, in this order; those absent from the cohort are skipped.
#: Lung Lesion, Pneumothorax and Support Devices first: the clinical features CheXbreak found informative.
DEFAULT_FINDING_FEATURES: tuple[str, ...] = CLINICAL_FINDINGS + tuple(
    finding for finding in ALL_FINDINGS if finding not in CLINICAL_FINDINGS + ("No Finding",)
)

#: Labels that are never features for a target: "No Finding" is a function of every label, the target's too.
ALWAYS_EXCLUDED_LABELS: frozenset[str] = frozenset({"No Finding"})

DEMOGRAPHIC_COUNT_COLUMNS: tuple[str, ...] = ("n_ap", "n_pa", "lateral")


def feature_set_parts(feature_set: str) -> tuple[str, ...]:
    """The parts of a ``+``-joined feature set name; raises ``ValueError`` naming an unknown part."""
    if not isinstance(feature_set, str) or not feature_set:
        raise ValueError(f"feature_set must be a non-empty string such as {FEATURE_SETS[1]!r}, got {feature_set!r}")
    if feature_set == PROBABILITY_ONLY:
        return ("probability",)
    parts = tuple(part.strip() for part in feature_set.split("+"))
    unknown = [part for part in parts if part not in FEATURE_PARTS]
    if unknown:
        raise ValueError(
            f"feature_set {feature_set!r} has unknown part(s) {', '.join(map(repr, unknown))}; parts are "
            f"{', '.join(FEATURE_PARTS)} (e.g. {', '.join(FEATURE_SETS)})"
        )
    if "probability" in parts and ("own" in parts or "all_models" in parts):
        raise ValueError(
            f"feature_set {feature_set!r}: 'own' and 'all_models' already contain the target's probability"
        )
    if "own" in parts and "all_models" in parts:
        raise ValueError(f"feature_set {feature_set!r}: 'all_models' already contains the model's own probabilities")
    return parts


def is_oracle(feature_set: str) -> bool:
    """True when the feature set uses ground-truth labels of other findings (not available when deployed).

    The one oracle rule: the UI marks, the reports label and `refuse_oracle_for_flipping` refuses by it.
    """
    return ORACLE_PART in feature_set_parts(feature_set)


def refuse_oracle_for_flipping(feature_set: str) -> None:
    """Raise `OracleFeatureSetError` when ``feature_set`` is an oracle one (`is_oracle`): flipping acts on
    predictions as a deployed system would, and such a system has no ground-truth labels."""
    if is_oracle(feature_set):
        raise OracleFeatureSetError(
            f"feature set {feature_set!r} uses ground-truth finding labels (an oracle): a deployed system "
            "would not have them, so it cannot be used for flipping",
            fix=f"Flip with a feature set without 'findings', e.g. {FEATURE_SETS[2]!r}",
        )


def excluded_labels(finding: str) -> frozenset[str]:
    """Labels never used as features when ``finding`` is the target: itself, No Finding, linked labels."""
    linked = derived_from(finding) if is_finding(finding) else set()
    return frozenset({finding}) | ALWAYS_EXCLUDED_LABELS | frozenset(linked)


def _aligned_probabilities(probabilities: pd.DataFrame, index: pd.Index, name: str) -> pd.DataFrame:
    if not isinstance(probabilities, pd.DataFrame):
        raise TypeError(f"probabilities_by_model[{name!r}] must be a DataFrame indexed by image_id")
    return probabilities.reindex(index).astype("float64")


def _demographics(table: pd.DataFrame) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    if "age" in table.columns:
        columns["age"] = pd.to_numeric(table["age"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if "sex" in table.columns:
        sex = table["sex"].astype("string").str.upper()
        male = np.where(sex.eq("M").fillna(False).to_numpy(dtype=bool), 1.0, 0.0)
        male[~sex.isin(["M", "F"]).fillna(False).to_numpy(dtype=bool)] = np.nan
        columns["sex_male"] = male
    if "view" in table.columns:
        view = table["view"].astype("string")
        known = view.notna().to_numpy(dtype=bool)
        for level in sorted(view.dropna().unique().tolist()):
            values = np.where(view.eq(level).fillna(False).to_numpy(dtype=bool), 1.0, 0.0)
            values[~known] = np.nan
            columns[f"view_{level}"] = values
    for column in DEMOGRAPHIC_COUNT_COLUMNS:
        if column in table.columns:
            columns[column] = pd.to_numeric(table[column].astype("float64"), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
    return columns


def build_features(
    table: pd.DataFrame,
    probabilities_by_model: Mapping[str, pd.DataFrame],
    model: str,
    finding: str,
    feature_set: str,
    *,
    finding_features: Iterable[str] = DEFAULT_FINDING_FEATURES,
) -> pd.DataFrame:
    """The numeric feature matrix of one (model, finding) identifier.

    Args:
        table: the cohort table (rows to describe; index ``image_id``), with ``age``, ``sex``, ``view`` and
            label columns; ``n_ap``, ``n_pa``, ``lateral`` are used when present.
        probabilities_by_model: model name -> probabilities (index ``image_id``, one column per finding).
            Rows missing from a model's frame become NaN.
        model: the analysed model (its probabilities are the ``own`` part, its target's the ``probability`` part).
        finding: the target finding; its label (and labels that determine it) are never features.
        feature_set: one of `FEATURE_SETS` (or another ``+``-joined combination of `FEATURE_PARTS`).
        finding_features: candidate label features of the ``findings`` part; those not in ``table`` and those
            of `excluded_labels` (finding) are skipped.

    Returns:
        float64 DataFrame, index ``table.index``, columns in the order probability/own/all_models, demographics,
        findings (names in the module docstring). NaN marks an unknown value.
    """
    parts = feature_set_parts(feature_set)
    if model not in probabilities_by_model:
        raise ValueError(f"model {model!r} is not in probabilities_by_model ({', '.join(probabilities_by_model)})")
    index = table.index
    columns: dict[str, np.ndarray] = {}
    if "probability" in parts:
        own = _aligned_probabilities(probabilities_by_model[model], index, model)
        if finding not in own.columns:
            raise ValueError(f"model {model!r} has no probability for {finding!r}")
        columns[f"p:{finding}"] = own[finding].to_numpy(dtype="float64")
    if "own" in parts:
        own = _aligned_probabilities(probabilities_by_model[model], index, model)
        for column in own.columns:
            columns[f"p:{column}"] = own[column].to_numpy(dtype="float64")
    if "all_models" in parts:
        for name, probabilities in probabilities_by_model.items():
            aligned = _aligned_probabilities(probabilities, index, name)
            for column in aligned.columns:
                columns[f"p:{name}:{column}"] = aligned[column].to_numpy(dtype="float64")
    if "demographics" in parts:
        columns.update(_demographics(table))
    if ORACLE_PART in parts:
        skip = excluded_labels(finding)
        seen = set()
        for label in finding_features:
            if label in skip or label in seen or label not in table.columns:
                continue
            seen.add(label)
            columns[f"label:{label}"] = pd.to_numeric(table[label], errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
    if not columns:
        raise ValueError(f"feature_set {feature_set!r} gives no feature columns for this table")
    return pd.DataFrame(columns, index=index, dtype="float64")


def own_output_columns(columns: Iterable[str], model: str) -> list[str]:
    """The feature columns that are the analysed ``model``'s own outputs: ``p:<finding>`` (parts
    ``probability`` and ``own``) and ``p:<model>:<finding>`` (its columns of the ``all_models`` part)."""
    own = []
    for column in columns:
        column = str(column)
        if not column.startswith("p:"):
            continue
        rest = column[2:]
        if ":" not in rest or rest.startswith(f"{model}:"):
            own.append(column)
    return own
