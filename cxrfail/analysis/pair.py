"""One (model, finding) pair of a run, analysed end to end: `analyse_pair(inputs, model, finding, config)`.

Unit of analysis: one row of the cohort (an image for NIH, a study for CheXpert). Every split groups by
patient. The operating threshold, the identifiers and the flip threshold are chosen or fitted on the
calibration split; performance, subgroup rates, regression, identifier AUROCs and the flip verdict are
reported on the held-out test split (the model's AUROC on the whole cohort, as it needs no threshold).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from cxrfail.analysis.checks import check_pair
from cxrfail.analysis.config import CLINICAL_FINDINGS, CORE_SCOPE, FULL_SCOPE, AnalysisConfig
from cxrfail.analysis.explain import shap_attributions, to_long
from cxrfail.analysis.flip import EVALUATION_COLUMNS, run_flipping
from cxrfail.analysis.identifiers import IDENTIFIER_COLUMNS, build_features, evaluate_identifiers
from cxrfail.analysis.labels import audit_pair
from cxrfail.analysis.outcomes import binary_metrics, classify
from cxrfail.analysis.regression import fit_pair_regressions
from cxrfail.analysis.result import LABEL_TABLES, TABLE_COLUMNS, TABLE_NAMES, PairRefusal, PairResult
from cxrfail.analysis.slices import find_slices_with_config
from cxrfail.analysis.splits import CALIBRATION, TEST
from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.findings import derived_from


@dataclass(frozen=True)
class PairInputs:
    """What every pair of a run shares: the analysed cohort rows, each model's probabilities on them, the
    patient split and the subgroup levels (all indexed by the cohort's row id), and the unit of a row."""

    table: pd.DataFrame
    probabilities: Mapping[str, pd.DataFrame]
    split: pd.Series  # "calibration" / "test" per row
    levels: pd.DataFrame  # subgroup -> level per row (`subgroup_levels`)
    unit: str
    reference: pd.DataFrame | None = None  # reference labels per row (1.0 / 0.0 / NaN) by finding, or None
    scope: str = FULL_SCOPE  # `cxrfail.analysis.config.SCOPES`
    non_random_subsets: tuple[str, ...] = ()  # subgroups known on a subset not drawn at random (the cohort says)


def run_levels(table: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """The subgroup level of every row (rows × subgroups: age bins, sex, view, radiographic findings and the
    config's extra columns), as the run slices them."""
    return subgroup_levels(
        table, age_edges=config.age_bins, finding_subgroups=CLINICAL_FINDINGS, extra_columns=config.extra_subgroups
    )


def analyse_pair(inputs: PairInputs, model: str, finding: str, config: AnalysisConfig) -> PairResult | PairRefusal:
    """Every step for one (model, finding) on the rows whose label is known; nothing depends on the other pairs
    of a run (regression q-values are adjusted within each fit of this pair). A pair whose splits cannot support
    the analysis (a split without positives or negatives, too few test patients: `cxrfail.analysis.checks`) is
    refused with its reason."""
    table, probabilities, split, levels = inputs.table, inputs.probabilities, inputs.split, inputs.levels
    known = table[finding].notna().to_numpy()
    rows = table if known.all() else table.loc[known]  # read only: no copy when every label is known
    ids = rows.index
    y = rows[finding].to_numpy(dtype=int)
    probabilities = {name: _aligned_rows(frame, table.index, known, ids) for name, frame in probabilities.items()}
    probability = probabilities[model][finding].to_numpy(dtype=float)
    patients = rows["patient_id"].to_numpy()
    id_column, patient_column = string_array(ids), string_array(rows["patient_id"])  # shared by the per-row tables
    row_split = _aligned_rows(split, table.index, known, ids).to_numpy()
    calibration, test = row_split == "calibration", row_split == "test"
    tag = {"model": model, "finding": finding}
    row_tag = {
        "model": _constant_column(model, tuple(inputs.probabilities), len(ids)),
        "finding": _constant_column(finding, config.findings, len(ids)),
    }
    check = check_pair(y, row_split, patients, min_test_patients=config.min_test_patients)
    if check.refused:
        return PairRefusal(model, finding, check.reason)

    choice = choose_threshold(y[calibration], probability[calibration], config.threshold_method, config.fixed_threshold)
    outcome = classify(y, probability, choice.threshold)
    prediction = outcome["prediction"].to_numpy()
    misclassified = outcome["misclassified"].to_numpy()
    test_metrics = binary_metrics(y[test], prediction[test])
    auroc = roc_auc_score(y, probability) if 0 < y.sum() < len(y) else float("nan")
    performance = pd.DataFrame(
        [
            {
                **tag,
                "n": len(y),
                "n_pos": int(y.sum()),
                "auroc": auroc,
                "threshold": choice.threshold,
                "f1": test_metrics["f1"],
                "precision": test_metrics["precision"],
                "recall": test_metrics["recall"],
                "n_test": test_metrics["n"],
                "misclassification_rate": float(misclassified[test].mean()),
                "threshold_note": choice.note,
            }
        ]
    )

    test_ids = ids[test]
    wrong_test = pd.Series(misclassified[test], index=test_ids)
    excluded = {finding} | derived_from(finding)  # a subgroup that restates the target says nothing
    levels = _aligned_rows(levels, table.index, known, ids)
    pair_levels = levels.loc[test, [c for c in levels.columns if c not in excluded]]
    test_rows = rows.loc[test]
    rates = _tagged(
        subgroup_rates(
            wrong_test,
            pair_levels,
            test_rows["patient_id"],
            min_n=config.min_subgroup_n,
            min_patients=config.min_subgroup_patients,
            min_events=config.min_subgroup_events,
            not_random_samples=inputs.non_random_subsets,
        ),
        tag,
    )
    regression = _tagged(fit_pair_regressions(test_rows, wrong_test, finding, model=model, rows_name="test split"), tag)

    identifier = (config.learners[0], config.identifier_feature_set)
    # the per-row table; the identifier's probability and the flipped prediction come with the flip step
    outcomes_with = functools.partial(
        _outcomes,
        row_tag,
        id_column,
        patient_column,
        row_split,
        y,
        probability,
        choice.threshold,
        prediction,
        misclassified,
    )
    if inputs.scope == CORE_SCOPE:
        outcomes = outcomes_with(np.full(len(y), np.nan), prediction)
        tables = {name: pd.DataFrame(columns=list(TABLE_COLUMNS[name])) for name in TABLE_NAMES}
        tables.update(performance=performance, subgroup_rates=rates, regression=regression, outcomes=outcomes)
        return PairResult(
            model, finding, inputs.unit, tables, identifier=identifier, scope=CORE_SCOPE, warnings=check.warnings
        )

    # Identifiers: every feature set (the ladder) with each learner, cross-fitted on the calibration folds and
    # judged on the test split with one set of patient resamples (paired differences to probability_only).
    features_by_set = {
        feature_set: functools.partial(build_features, rows, probabilities, model, finding, feature_set)
        for feature_set in config.feature_sets
    }  # built one at a time (CheXpert: 100 MB each)
    identifier_rows, score_frames, flip_fit = [], [], None
    test_ids, test_misclassified = id_column[test], misclassified[test].astype(np.int8)
    for learner in config.learners:
        evaluations = evaluate_identifiers(
            features_by_set,
            misclassified,
            patients,
            row_split,
            learner=learner,
            n_folds=config.n_folds,
            seed=config.seed,
            n_bootstrap=config.n_bootstrap,
            probability=probability,
            threshold=choice.threshold,
            auroc_interval=config.auroc_interval,
        )
        for feature_set, evaluation in evaluations.items():
            if (learner, feature_set) == identifier:
                flip_fit = evaluation.split_fit  # the run's identifier: flipping reuses its fits
            identifier_rows.append(
                {
                    **tag,
                    "learner": learner,
                    "feature_set": feature_set,
                    **{column: getattr(evaluation, column) for column in IDENTIFIER_COLUMNS},
                }
            )
            n_test = len(test_ids)
            score_frames.append(
                pd.DataFrame(
                    {
                        "model": _constant_column(model, tuple(inputs.probabilities), n_test),
                        "finding": _constant_column(finding, config.findings, n_test),
                        "learner": _constant_column(learner, config.learners, n_test),
                        "feature_set": _constant_column(feature_set, config.feature_sets, n_test),
                        "image_id": test_ids,
                        "misclassified": test_misclassified,
                        "identifier_score": evaluation.identifier_score[test],
                    }
                )
            )
    tables = {
        "performance": performance,
        "subgroup_rates": rates,
        "regression": regression,
        "identifiers": pd.DataFrame(identifier_rows, columns=list(TABLE_COLUMNS["identifiers"])),
        "identifier_scores": pd.concat(score_frames, ignore_index=True),
    }
    # Flipping and SHAP: the run's identifier (first learner, `identifier_feature_set`: never an oracle).
    flip_features = build_features(rows, probabilities, model, finding, config.identifier_feature_set)
    flip_run = run_flipping(
        flip_features,
        y,
        prediction,
        misclassified,
        patients,
        row_split,
        feature_set=config.identifier_feature_set,
        learner=config.learners[0],
        n_folds=config.n_folds,
        seed=config.seed,
        n_bootstrap=config.n_bootstrap,
        min_calibration_flips=config.min_calibration_flips,
        fitted=flip_fit,
    )
    evaluation = flip_run.test_evaluation
    tables["flip"] = pd.DataFrame(
        [
            {
                **tag,
                "tau": flip_run.tau,
                **{k: getattr(evaluation, k) for k in EVALUATION_COLUMNS},
                "calibration_flips": flip_run.calibration_flips,
                "learner": flip_run.learner,
                "feature_set": flip_run.feature_set,
                "oracle": flip_run.oracle,
            }
        ],
        columns=list(TABLE_COLUMNS["flip"]),
    )
    tables["flip_curves"] = _tagged(flip_run.curve, tag)
    tables["outcomes"] = outcomes_with(flip_run.identifier_probability, flip_run.flipped_prediction)
    attributions = shap_attributions(
        flip_run.fitted.fold_models, flip_features.loc[test], max_samples=config.shap_max_samples, seed=config.seed
    )
    tables["shap_values"] = to_long(attributions, model=model, finding=finding)
    tables.update(_label_audit(tables, inputs.reference, finding, config))

    # Failure slices: searched on calibration, the top K per error kind confirmed on test (`analysis.slices`).
    found = find_slices_with_config(rows, finding, y, prediction, row_split, config)
    tables["slices"] = _tagged(found.table, tag)
    return PairResult(
        model, finding, inputs.unit, tables, identifier=identifier, warnings=check.warnings + found.warnings
    )


def _aligned_rows(frame: pd.DataFrame | pd.Series, index: pd.Index, known: np.ndarray, ids: pd.Index):
    """``frame``'s rows for ``ids`` (the rows of ``index`` where ``known``): by position when ``frame`` is indexed
    like ``index`` (as `PairInputs` are built), by label otherwise (a label lookup of 190k string ids costs
    ~0.1 s, and a pair makes a dozen)."""
    if frame.index is index or frame.index.equals(index):
        return frame if known.all() else frame.loc[known]  # read only: no copy when every label is known
    return frame.loc[ids]


def string_array(values: pd.Index | pd.Series) -> pd.api.extensions.ExtensionArray:
    """``values`` as a ``str`` array: the values' own Arrow-backed array when they are one (frames built from it
    share its buffers instead of copying 190k strings per table), else a converted copy."""
    array = values.array
    return array if array.dtype == "str" else pd.array(np.asarray(values, dtype=object), dtype="str")


def _tagged(frame: pd.DataFrame, tag: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with the pair's ``model`` and ``finding`` as its first columns."""
    return pd.concat(
        [pd.DataFrame({name: [value] * len(frame) for name, value in tag.items()}, index=frame.index), frame], axis=1
    )


def _constant_column(value: str, categories: Sequence[str], n: int) -> pd.Categorical:
    """``value`` on ``n`` rows as a categorical over ``categories`` (the run's models, findings, learners or
    feature sets): one byte a row instead of a string, and the pairs' tables stack without losing the dtype
    (the same categories in every pair)."""
    return pd.Categorical.from_codes(np.full(n, list(categories).index(value), dtype=np.int8), categories=categories)


def _outcomes(
    row_tag,
    ids,
    patients,
    split,
    y,
    probability,
    threshold,
    prediction,
    misclassified,
    identifier_probability,
    flipped_prediction,
) -> pd.DataFrame:
    """The pair's per-row table (columns `TABLE_COLUMNS["outcomes"]`); 0/1 columns as int8, ``split`` and the
    ``row_tag`` columns (model, finding) categorical."""
    binary = {
        name: np.asarray(values).astype(np.int8)
        for name, values in (
            ("label", y),
            ("prediction", prediction),
            ("misclassified", misclassified),
            ("flipped_prediction", flipped_prediction),
        )
    }
    return pd.DataFrame(
        {
            **row_tag,
            "image_id": ids,
            "patient_id": patients,
            "split": pd.Categorical(split, categories=(CALIBRATION, TEST)),
            "label": binary["label"],
            "probability": probability,
            "threshold": threshold,
            "prediction": binary["prediction"],
            "misclassified": binary["misclassified"],
            "identifier_probability": identifier_probability,
            "flipped_prediction": binary["flipped_prediction"],
        }
    )


def _label_audit(
    tables: Mapping[str, pd.DataFrame], reference: pd.DataFrame | None, finding: str, config: AnalysisConfig
) -> dict[str, pd.DataFrame]:
    """The pair's label audit against the reference labels (empty tables when the reference does not read the
    finding on the pair's rows). Misclassification is re-scored with the run's identifier's score of each row
    (``outcomes.identifier_probability``: calibration out-of-fold, test its patient's calibration fold model's)."""
    outcomes = tables["outcomes"]
    labels = None
    if reference is not None and finding in reference.columns:
        labels = reference[finding].reindex(pd.Index(outcomes["image_id"]))
    if labels is None or labels.isna().all():
        return {name: pd.DataFrame(columns=list(TABLE_COLUMNS[name])) for name in LABEL_TABLES}
    audit = audit_pair(
        outcomes,
        labels,
        identifier_score=pd.Series(outcomes["identifier_probability"].to_numpy(), index=pd.Index(outcomes["image_id"])),
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
    )
    return {"label_agreement": audit.agreement, "label_audit": audit.audit, "label_cases": audit.cases}
