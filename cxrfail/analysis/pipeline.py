"""Run the whole analysis for several models and findings: the tables the CLI report and the dashboard show.

Unit of analysis: one row of the cohort (an image for NIH, a study for CheXpert). Every split groups by
patient. The operating threshold, the identifier used for flipping and the flip threshold are chosen on the
calibration split; performance, subgroup rates and regression are reported on the held-out test split (AUROC
on the whole cohort, as it needs no threshold); identifier AUROC comes from patient-grouped out-of-fold
probabilities over the whole cohort.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from cxrfail.analysis.explain import shap_attributions, to_long
from cxrfail.analysis.flip import run_flipping
from cxrfail.analysis.identifiers import FEATURE_SETS, LEARNERS, build_features, evaluate_identifier
from cxrfail.analysis.outcomes import binary_metrics, classify
from cxrfail.analysis.regression import adjust_p_values, fit_misclassification_regression
from cxrfail.analysis.labels import audit_pair
from cxrfail.analysis.result import LABEL_TABLES, TABLE_COLUMNS, TABLE_NAMES, AnalysisResult, PairResult
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates
from cxrfail.analysis.thresholds import THRESHOLD_METHODS, choose_threshold
from cxrfail.cache import TableStore, hash_frame, hash_parts
from cxrfail.cohort import Cohort
from cxrfail.errors import CohortError, ConfigError, PredictionsError
from cxrfail.config_ranges import check_config_ranges
from cxrfail.findings import COMPETITION_FINDINGS
from cxrfail.predictions import ModelPredictions, check_coverage, common_ids
from cxrfail.reference import ReferenceLabels


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
    feature_sets: tuple[str, ...] = ("own+demographics",)  # all_models: same AUROC on the demo, 2x the time
    n_folds: int = 5
    n_bootstrap: int = 2000
    shap_max_samples: int = 500
    min_overlap: float = 0.9

    def __post_init__(self) -> None:
        """Refuse settings outside their ranges with `ConfigError` naming the field and the range."""
        check_config_ranges(self)


# Covariates of the misclassification regression besides age, sex and view: radiographic findings. A finding
# known for fewer than half of the rows (support devices in the demo: 621 of 22,433 images) gets its own fit
# on the rows where it is known, instead of shrinking the main fit to those rows.
REGRESSION_FINDINGS = ("Lung Lesion", "Pneumothorax", "Support Devices")
SUBGROUP_FINDINGS = REGRESSION_FINDINGS
SPARSE_COVARIATE_SHARE = 0.5
SCOPES = ("full", "core")
CORE_SCOPE = "core"
CACHE_VERSION = 4  # bump when a change alters results for unchanged inputs

ProgressCallback = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    return None


def cache_key(cohort: Cohort, models: Sequence[ModelPredictions], config: AnalysisConfig,
              reference: ReferenceLabels | None = None) -> str:
    """Hash of the cohort table, every model's probabilities and name, the config, the reference labels (when
    given) and the code version."""
    parts = [CACHE_VERSION, hash_frame(cohort.table), cohort.unit,
             [(model.name, hash_frame(model.probabilities)) for model in models], asdict(config)]
    if reference is not None:
        parts.append(["reference", reference.name, hash_frame(reference.table)])
    return hash_parts(*parts)


def run_levels(table: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """The subgroup level of every row (rows × subgroups: age bins, sex, view, radiographic findings and the
    config's extra columns), as the run slices them."""
    return subgroup_levels(table, age_edges=config.age_bins, finding_subgroups=SUBGROUP_FINDINGS,
                           extra_columns=config.extra_subgroups)


def run_analysis(
    cohort: Cohort,
    models: Sequence[ModelPredictions],
    config: AnalysisConfig = AnalysisConfig(),
    *,
    reference: ReferenceLabels | None = None,
    scope: str = "full",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
    n_jobs: int | None = None,
    ray_address: str | None = None,
) -> AnalysisResult:
    """Run every step for every (model, finding); serve from the on-disk cache when inputs are unchanged.

    Args:
        cohort: the study table; rows predicted by every model are analysed.
        models: one `ModelPredictions` per model (distinct names).
        config: all parameters (findings, threshold rule, split, learners, ...).
        scope: "full" (every step), or "core": performance, outcomes, subgroup rates and regression only (seconds
            instead of minutes; the same numbers as the full run, without identifiers, flipping, SHAP and the
            label audit), for a first screen.
        reference: a second (expert) label set; each pair whose finding it reads gets the label audit
            (`cxrfail.analysis.labels`: tables ``label_agreement``, ``label_audit``, ``label_cases``).
        cache_dir: root of the on-disk cache (default ``$CXRFAIL_CACHE_DIR`` or ``~/.cache/cxrfail``).
        use_cache: False to neither read nor write the cache.
        progress: called with (fraction done in [0, 1], message) as steps finish.
        n_jobs: worker processes for the (model, finding) pairs (default: one per CPU core); results are the
            same for any value.
        ray_address: run the pairs as tasks on this Ray cluster instead (`cxrfail.analysis.distributed`);
            the same results.
    """
    progress = progress or _no_progress
    _validate_config(cohort, models, config)
    store = TableStore(cache_dir)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    key = cache_key(cohort, models, config, reference) if scope == "full" else hash_parts(
        cache_key(cohort, models, config, reference), scope)
    if use_cache:
        cached = store.load(key)
        if cached is not None:
            progress(1.0, "loaded from cache")
            return AnalysisResult.from_tables(config, key, *cached)
    result = _compute(cohort, models, config, reference, scope, progress, n_jobs, ray_address)
    result.cache_key = key
    if use_cache:
        store.save(key, {name: result.table(name) for name in TABLE_NAMES}, result.meta())
    return result


def _validate_config(cohort: Cohort, models: Sequence[ModelPredictions], config: AnalysisConfig) -> None:
    if not models:
        raise PredictionsError("no prediction files given", fix="Pass at least one model's predictions")
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise PredictionsError(f"model names repeat: {', '.join(names)}", fix="Give each model its own name")
    if config.threshold_method not in THRESHOLD_METHODS:
        raise ConfigError(f"unknown threshold method {config.threshold_method!r}",
                          fix=f"Use one of {', '.join(THRESHOLD_METHODS)}")
    for learner in config.learners:
        if learner not in LEARNERS:
            raise ConfigError(f"unknown learner {learner!r}", fix=f"Use one of {', '.join(LEARNERS)}")
    for feature_set in config.feature_sets:
        if feature_set not in FEATURE_SETS:
            raise ConfigError(f"unknown feature set {feature_set!r}", fix=f"Use one of {', '.join(FEATURE_SETS)}")
    if not config.learners or not config.feature_sets:
        raise ConfigError("at least one learner and one feature set are needed")
    missing_labels = [finding for finding in config.findings if finding not in cohort.table.columns]
    if missing_labels:
        raise CohortError(
            f"the cohort has no labels for {', '.join(missing_labels)}", path=", ".join(cohort.sources) or None,
            fix=f"Choose among the cohort's findings: {', '.join(cohort.findings)}",
        )
    for model in models:
        absent = [finding for finding in config.findings if finding not in model.probabilities.columns]
        if absent:
            raise PredictionsError(
                f"model {model.name!r} has no probabilities for {', '.join(absent)}",
                path=model.source or model.name, fix="Choose findings that every model predicts",
            )


def _compute(
    cohort: Cohort,
    models: Sequence[ModelPredictions],
    config: AnalysisConfig,
    reference: ReferenceLabels | None,
    scope: str,
    progress: ProgressCallback,
    n_jobs: int | None,
    ray_address: str | None = None,
) -> AnalysisResult:
    coverage = check_coverage(cohort, models, config.min_overlap)
    ids = common_ids(cohort, models)
    table = cohort.table.loc[ids]
    probabilities = {model.name: model.probabilities.loc[ids] for model in models}
    patients = table["patient_id"].to_numpy()
    split = pd.Series(patient_split(patients, config.calibration_fraction, config.seed), index=ids)
    levels = run_levels(table, config)

    tasks = [(model.name, finding) for model in models for finding in config.findings]
    n_jobs = max(1, min(n_jobs or os.cpu_count() or 1, len(tasks)))
    progress(0.0, f"analysing {len(tasks)} model × finding pairs on {n_jobs} process(es)")
    inputs = PairInputs(table=table, probabilities=probabilities, split=split, levels=levels, unit=cohort.unit,
                        reference=None if reference is None else reference.table.reindex(ids), scope=scope)
    # Pairs are independent and seeded, so results do not depend on n_jobs. Worker processes (not threads):
    # the learners' OpenMP threads slow down many-fold when several fits share 2 cores.
    jobs = (delayed(_analyse_pair_at)(index, inputs, model, finding, config)
            for index, (model, finding) in enumerate(tasks))
    by_index: dict[int, PairResult] = {}
    if ray_address is not None:
        from cxrfail.analysis.distributed import map_on_ray

        arguments = [(i, inputs, m, f, config) for i, (m, f) in enumerate(tasks)]
        outputs = (output for _, output in map_on_ray(_analyse_pair_at, arguments, ray_address))
    else:
        outputs = (Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs) if n_jobs > 1
                   else (_analyse_pair_at(i, inputs, m, f, config) for i, (m, f) in enumerate(tasks)))
    for index, pair in outputs:
        by_index[index] = pair
        model, finding = tasks[index]
        progress(len(by_index) / len(tasks), f"{model} · {finding} done")
    pairs = adjust_regression([by_index[index] for index in range(len(tasks))])

    notes = {**dict(cohort.notes), **{f"{m.name}: {k}": v for m in models for k, v in m.notes.items()}}
    notes["coverage"] = "; ".join(
        f"{c.model}: {c.n_matched} of {c.n_predictions} predicted images in the cohort" for c in coverage
    )
    if reference is not None:
        notes["reference labels"] = f"{reference.name}: {reference.selection}"
        notes.update({f"reference: {finding}": note for finding, note in reference.notes.items()})
    notes["unit"] = f"one row = one {cohort.unit}; {len(ids)} {cohort.unit}s of {table['patient_id'].nunique()} patients"
    return AnalysisResult(
        config=config,
        cohort_summary={**cohort.summary(), "name": cohort.name, "n_analysed": len(ids),
                        "n_calibration": int((split == "calibration").sum()), "n_test": int((split == "test").sum())},
        models=tuple(model.name for model in models),
        pairs={(pair.model, pair.finding): pair for pair in pairs},
        notes=notes,
    )


def adjust_regression(pairs: Sequence[PairResult]) -> list[PairResult]:
    """Holm and Benjamini-Hochberg q-values over every regression p-value of the run (one family: the grid).

    Returns the pairs with ``q_holm`` and ``q_bh`` added to their regression tables."""
    frames = [pair.regression for pair in pairs]
    if not frames:
        return []
    p_values = np.concatenate([frame["p_value"].to_numpy(dtype=float) for frame in frames])
    q_holm, q_bh = adjust_p_values(p_values)
    out, start = [], 0
    for pair, frame in zip(pairs, frames):
        stop = start + len(frame)
        adjusted = frame.assign(q_holm=q_holm[start:stop], q_bh=q_bh[start:stop])
        out.append(pair.with_table("regression", adjusted))
        start = stop
    return out


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
    scope: str = "full"  # `SCOPES`


def _analyse_pair_at(index: int, *args) -> tuple[int, PairResult]:
    """`analyse_pair` tagged with the task's position, for out-of-order completion."""
    with threadpool_limits(limits=1):
        return index, analyse_pair(*args)


def analyse_pair(inputs: PairInputs, model: str, finding: str, config: AnalysisConfig) -> PairResult:
    """Every step for one (model, finding) on the rows whose label is known; regression q-values are added
    across the run by `adjust_regression`."""
    table, probabilities, split, levels = inputs.table, inputs.probabilities, inputs.split, inputs.levels
    known = table[finding].notna().to_numpy()
    rows = table.loc[known]
    ids = rows.index
    y = rows[finding].to_numpy(dtype=int)
    probability = probabilities[model].loc[ids, finding].to_numpy(dtype=float)
    patients = rows["patient_id"].to_numpy()
    row_split = split.loc[ids].to_numpy()
    calibration, test = row_split == "calibration", row_split == "test"
    tag = {"model": model, "finding": finding}

    choice = choose_threshold(y[calibration], probability[calibration], config.threshold_method,
                              config.fixed_threshold)
    outcome = classify(y, probability, choice.threshold)
    prediction = outcome["prediction"].to_numpy()
    misclassified = outcome["misclassified"].to_numpy()
    test_metrics = binary_metrics(y[test], prediction[test])
    auroc = roc_auc_score(y, probability) if 0 < y.sum() < len(y) else float("nan")
    performance = pd.DataFrame([{
        **tag, "n": len(y), "n_pos": int(y.sum()), "auroc": auroc, "threshold": choice.threshold,
        "f1": test_metrics["f1"], "precision": test_metrics["precision"], "recall": test_metrics["recall"],
        "n_test": test_metrics["n"], "misclassification_rate": float(misclassified[test].mean()),
        "threshold_note": choice.note,
    }])

    test_ids = ids[test]
    wrong_test = pd.Series(misclassified[test], index=test_ids)
    rates = subgroup_rates(wrong_test, levels.loc[test_ids], min_n=config.min_subgroup_n)
    rates.insert(0, "finding", finding)
    rates.insert(0, "model", model)

    regression = _regressions(rows.loc[test_ids], wrong_test, finding, tag)
    if inputs.scope == CORE_SCOPE:
        outcomes = pd.DataFrame({
            **tag, "image_id": ids.to_numpy(), "patient_id": patients, "split": row_split, "label": y,
            "probability": probability, "threshold": choice.threshold, "prediction": prediction,
            "misclassified": misclassified, "identifier_probability": np.nan, "flipped_prediction": prediction,
        })
        tables = {name: pd.DataFrame(columns=list(TABLE_COLUMNS[name])) for name in TABLE_NAMES}
        tables.update(performance=performance, subgroup_rates=rates, regression=regression, outcomes=outcomes)
        return PairResult(model, finding, inputs.unit, tables, identifier=(config.learners[0], config.feature_sets[0]),
                          scope=CORE_SCOPE)

    identifier_rows, score_frames, flip_features = [], [], None
    for feature_set in config.feature_sets:
        features = build_features(rows, {m: p.loc[ids] for m, p in probabilities.items()}, model, finding,
                                  feature_set)
        flip_features = features if flip_features is None else flip_features
        for learner in config.learners:
            evaluation = evaluate_identifier(
                features, misclassified, patients, learner=learner, feature_set=feature_set,
                n_folds=config.n_folds, seed=config.seed, n_bootstrap=config.n_bootstrap,
                probability=probability, threshold=choice.threshold,
            )
            identifier_rows.append({
                **tag, "learner": learner, "feature_set": feature_set, "oracle": evaluation.oracle,
                "auroc": evaluation.auroc, "ci_low": evaluation.ci_low, "ci_high": evaluation.ci_high,
                "baseline_auroc": evaluation.baseline_auroc, "baseline_ci_low": evaluation.baseline_ci_low,
                "baseline_ci_high": evaluation.baseline_ci_high, "n": evaluation.n,
                "n_misclassified": evaluation.n_misclassified,
                # How much of the AUROC is the 0/1 prediction itself, and the identifier within each side:
                "prediction_auroc": evaluation.prediction_auroc,
                "auroc_predicted_positive": evaluation.auroc_predicted_positive,
                "auroc_predicted_negative": evaluation.auroc_predicted_negative,
            })
            score_frames.append(pd.DataFrame({
                **tag, "learner": learner, "feature_set": feature_set, "image_id": ids.to_numpy(),
                "misclassified": misclassified, "identifier_score": evaluation.oof_probability,
                "baseline_score": evaluation.baseline_score,
            }))

    # Flipping and SHAP use the first learner and feature set: the run's chosen identifier.
    flip_run = run_flipping(flip_features, y, prediction, misclassified, patients, row_split,
                            learner=config.learners[0], n_folds=config.n_folds, seed=config.seed,
                            n_bootstrap=config.n_bootstrap)
    evaluation = flip_run.test_evaluation
    flip = pd.DataFrame([{**tag, **{k: getattr(evaluation, k) for k in FLIP_COLUMNS}}])
    curve = flip_run.curve.copy()
    curve.insert(0, "finding", finding)
    curve.insert(0, "model", model)

    outcomes = pd.DataFrame({
        **tag, "image_id": ids.to_numpy(), "patient_id": patients, "split": row_split, "label": y,
        "probability": probability, "threshold": choice.threshold, "prediction": prediction,
        "misclassified": misclassified, "identifier_probability": flip_run.identifier_probability,
        "flipped_prediction": flip_run.flipped_prediction,
    })
    attributions = shap_attributions(flip_run.identifier, flip_features.loc[test_ids],
                                     max_samples=config.shap_max_samples, seed=config.seed)
    tables = {
        "performance": performance, "subgroup_rates": rates, "regression": regression,
        "identifiers": pd.DataFrame(identifier_rows), "identifier_scores": pd.concat(score_frames, ignore_index=True),
        "flip": flip, "flip_curves": curve, "outcomes": outcomes,
        "shap_values": to_long(attributions, model=model, finding=finding),
    }
    tables.update(_label_audit(tables, inputs.reference, finding, config))
    return PairResult(model, finding, inputs.unit, tables, identifier=(config.learners[0], config.feature_sets[0]))


def _label_audit(tables: Mapping[str, pd.DataFrame], reference: pd.DataFrame | None, finding: str,
                 config: AnalysisConfig) -> dict[str, pd.DataFrame]:
    """The pair's label audit against the reference labels (empty tables when the reference does not read the
    finding on the pair's rows). Misclassification is re-scored with the out-of-fold scores of the run's first
    identifier, the ones its AUROC is reported on."""
    outcomes = tables["outcomes"]
    labels = None
    if reference is not None and finding in reference.columns:
        labels = reference[finding].reindex(pd.Index(outcomes["image_id"]))
    if labels is None or labels.isna().all():
        return {name: pd.DataFrame(columns=list(TABLE_COLUMNS[name])) for name in LABEL_TABLES}
    scores = tables["identifier_scores"]
    first = scores.loc[(scores["learner"] == config.learners[0]) & (scores["feature_set"] == config.feature_sets[0])]
    audit = audit_pair(outcomes, labels, identifier_score=pd.Series(first["identifier_score"].to_numpy(),
                                                                     index=pd.Index(first["image_id"])),
                       n_bootstrap=config.n_bootstrap, seed=config.seed)
    return {"label_agreement": audit.agreement, "label_audit": audit.audit, "label_cases": audit.cases}


FLIP_COLUMNS = ("tau", "n_flips", "f1_before", "f1_after", "delta_f1", "ci_low", "ci_high", "precision_before",
                "precision_after", "recall_before", "recall_after", "improved")


def _regressions(rows: pd.DataFrame, misclassified: pd.Series, finding: str, tag: dict) -> pd.DataFrame:
    """Logistic regression of misclassification on the test rows; sparse finding covariates get own fits."""
    base = rows[["age", "sex", "view"]].copy()
    dense, sparse = [], []
    for covariate in REGRESSION_FINDINGS:
        if covariate == finding or covariate not in rows.columns or rows[covariate].notna().sum() == 0:
            continue
        (dense if rows[covariate].notna().mean() >= SPARSE_COVARIATE_SHARE else sparse).append(covariate)
    fits = [("all test rows", base.join(rows[dense]))]
    for covariate in sparse:
        annotated = rows[covariate].notna()
        fits.append((f"rows with {covariate} known", base.join(rows[dense + [covariate]]).loc[annotated]))
    frames = []
    for sample, covariates in fits:
        fit = fit_misclassification_regression(
            misclassified.loc[covariates.index].to_numpy(), covariates, rows.loc[covariates.index, "patient_id"].to_numpy()
        )
        frame = fit.table.copy()
        frame.insert(0, "sample", sample)
        frame.insert(0, "finding", tag["finding"])
        frame.insert(0, "model", tag["model"])
        frame["n"], frame["n_events"], frame["converged"], frame["note"] = fit.n, fit.n_events, fit.converged, fit.note
        if frame.empty:
            frame = pd.DataFrame([{**tag, "sample": sample, "term": None, "odds_ratio": np.nan, "ci_low": np.nan,
                                   "ci_high": np.nan, "p_value": np.nan, "n": fit.n, "n_events": fit.n_events,
                                   "converged": fit.converged, "note": fit.note}])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
