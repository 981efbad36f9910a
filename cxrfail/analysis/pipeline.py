"""Run the whole analysis for several models and findings: the tables the CLI report and the dashboard show.

Unit of analysis: one row of the cohort (an image for NIH, a study for CheXpert). Every split groups by
patient. The operating threshold, the identifier used for flipping and the flip threshold are chosen on the
calibration split; performance, subgroup rates and regression are reported on the held-out test split (AUROC
on the whole cohort, as it needs no threshold); identifier AUROC comes from patient-grouped out-of-fold
probabilities over the whole cohort.
"""

from __future__ import annotations

import functools
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from cxrfail.analysis.bootstrap import AUROC_INTERVAL_METHODS
from cxrfail.analysis.explain import shap_attributions, to_long
from cxrfail.analysis.flip import run_flipping
from cxrfail.analysis.identifiers import FEATURE_SETS, LEARNERS, build_features, evaluate_identifier, is_oracle
from cxrfail.analysis.outcomes import binary_metrics, classify
from cxrfail.analysis.checks import check_pair
from cxrfail.analysis.regression import REGRESSION_FINDINGS, adjust_within_families, fit_pair_regressions
from cxrfail.analysis.labels import audit_pair
from cxrfail.analysis.result import (
    LABEL_TABLES,
    TABLE_COLUMNS,
    TABLE_NAMES,
    AnalysisResult,
    PairRefusal,
    PairResult,
)
from cxrfail.analysis.splits import CALIBRATION, TEST, patient_split
from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates
from cxrfail.analysis.thresholds import THRESHOLD_METHODS, choose_threshold
from cxrfail.cache import TableStore, hash_frame, hash_parts
from cxrfail.cohort import Cohort
from cxrfail.errors import CohortError, ConfigError, PredictionsError
from cxrfail.config_ranges import check_config_ranges
from cxrfail.findings import COMPETITION_FINDINGS, derived_from
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
    auroc_interval: str = "auto"  # identifier AUROC CIs: "bootstrap", "analytic" or "auto" (analytic > 50k rows)
    shap_max_samples: int = 500
    min_overlap: float = 0.9
    min_subgroup_patients: int = 10  # a subgroup level with fewer patients is flagged insufficient
    subgroup_bootstrap: int = 1000  # patient-bootstrap replicates per subgroup level
    min_calibration_flips: int = 20  # fewest calibration flips for a flip threshold to count as a choice
    min_test_patients: int = 30  # a pair with fewer test patients is refused

    def __post_init__(self) -> None:
        """Refuse settings outside their ranges with `ConfigError` naming the field and the range."""
        check_config_ranges(self)


# Radiographic findings sliced as subgroups (the regression's finding covariates, `cxrfail.analysis.regression`).
SUBGROUP_FINDINGS = REGRESSION_FINDINGS
SCOPES = ("full", "core")
CORE_SCOPE = "core"
CACHE_VERSION = 6  # bump when a change alters results for unchanged inputs

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
    keep_workers: bool = True,
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
        keep_workers: False stops the worker processes once the pairs are done, so that their memory (each
            holds the run's inputs) is free before the tables are stacked and saved: for one-shot runs (the
            CLI). True keeps them warm for the next run (the dashboard).
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
    result = _compute(cohort, models, config, reference, scope, progress, n_jobs, ray_address, keep_workers)
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
    if config.auroc_interval not in AUROC_INTERVAL_METHODS:
        raise ConfigError(f"unknown AUROC interval method {config.auroc_interval!r}",
                          fix=f"Use one of {', '.join(AUROC_INTERVAL_METHODS)}")
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
    keep_workers: bool = True,
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
                        reference=None if reference is None else reference.table.reindex(ids), scope=scope,
                        non_random_subsets=cohort.non_random_subsets)
    by_index: dict[int, PairResult] = {}
    with ExitStack() as scratch:
        if ray_address is not None:
            from cxrfail.analysis.distributed import map_on_ray

            arguments = [(i, inputs, m, f, config) for i, (m, f) in enumerate(tasks)]
            outputs = (output for _, output in map_on_ray(_analyse_pair_at, arguments, ray_address))
        elif n_jobs > 1:
            # Pairs are independent and seeded, so results do not depend on n_jobs. Worker processes (not
            # threads): the learners' OpenMP threads slow down many-fold when several fits share 2 cores. The
            # shared inputs are pickled once into a private file that each worker reads once
            # (`_inputs_from_file`), not once per pair (~1.5 s per pair at 190k rows).
            folder = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="cxrfail-pairs-")))
            inputs_file = folder / "inputs.pickle"
            with inputs_file.open("wb") as handle:  # streamed: no second in-memory copy of the inputs
                pickle.dump(inputs, handle, protocol=pickle.HIGHEST_PROTOCOL)
            jobs = (delayed(_analyse_pair_from_file)(i, str(inputs_file), m, f, config)
                    for i, (m, f) in enumerate(tasks))
            outputs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
            if not keep_workers:
                scratch.callback(lambda: get_reusable_executor().shutdown(wait=True))
        else:
            outputs = (_analyse_pair_at(i, inputs, m, f, config) for i, (m, f) in enumerate(tasks))
        shared_ids: dict[str, tuple[pd.api.extensions.ExtensionArray, ...]] = {}
        for index, pair in outputs:
            by_index[index] = _share_row_ids(pair, table, shared_ids)
            model, finding = tasks[index]
            progress(len(by_index) / len(tasks), f"{model} · {finding} done")
    done = [by_index[index] for index in range(len(tasks))]
    refused = {(r.model, r.finding): r.reason for r in done if isinstance(r, PairRefusal)}
    pairs = adjust_regression([pair for pair in done if not isinstance(pair, PairRefusal)])

    notes = {**dict(cohort.notes), **{f"{m.name}: {k}": v for m in models for k, v in m.notes.items()}}
    notes["coverage"] = "; ".join(
        f"{c.model}: {c.n_matched} of {c.n_predictions} predicted images in the cohort" for c in coverage
    )
    if reference is not None:
        notes["reference labels"] = f"{reference.name}: {reference.selection}"
        notes.update({f"reference: {finding}": note for finding, note in reference.notes.items()})
    notes["unit"] = f"one row = one {cohort.unit}; {len(ids)} {cohort.unit}s of {table['patient_id'].nunique()} patients"
    return AnalysisResult(  # stacked: one copy of the per-row tables (`AnalysisResult.stacked`)
        config=config,
        cohort_summary={**cohort.summary(), "name": cohort.name, "n_analysed": len(ids),
                        "n_calibration": int((split == "calibration").sum()), "n_test": int((split == "test").sum())},
        models=tuple(model.name for model in models),
        pairs={(pair.model, pair.finding): pair for pair in pairs},
        notes=notes,
        refused=refused,
    ).stacked()


def adjust_regression(pairs: Sequence[PairResult]) -> list[PairResult]:
    """Holm and Benjamini-Hochberg q-values within each family of fits across the run: every pair's fit on all
    its test rows is one family, every fit on the rows where a sparse covariate is known another, so no term
    is tested twice in one family (`cxrfail.analysis.regression.adjust_within_families`).

    Returns the pairs with ``q_holm``, ``q_bh`` and ``q_family`` added to their regression tables."""
    frames = [pair.regression for pair in pairs]
    if not frames:
        return []
    adjusted = adjust_within_families(pd.concat(frames, ignore_index=True), ("family",))
    out, start = [], 0
    for pair, frame in zip(pairs, frames):
        stop = start + len(frame)
        out.append(pair.with_table("regression", adjusted.iloc[start:stop].reset_index(drop=True)))
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
    non_random_subsets: tuple[str, ...] = ()  # subgroups known on a subset not drawn at random (the cohort says)


@functools.lru_cache(maxsize=1)
def _inputs_from_file(path: str, stamp: tuple[int, int]) -> PairInputs:
    """The run's `PairInputs`, read once per worker process (``stamp``: the file's size and mtime, so a new
    file at a reused path is read again)."""
    return pickle.loads(Path(path).read_bytes())


def _analyse_pair_from_file(index: int, inputs_file: str, *args) -> tuple[int, PairResult]:
    """`_analyse_pair_at` with the shared inputs read from the run's private inputs file."""
    stat = os.stat(inputs_file)
    return _analyse_pair_at(index, _inputs_from_file(inputs_file, (stat.st_size, stat.st_mtime_ns)), *args)


def _analyse_pair_at(index: int, *args) -> tuple[int, PairResult]:
    """`analyse_pair` tagged with the task's position, for out-of-order completion."""
    with threadpool_limits(limits=1):
        return index, analyse_pair(*args)


def analyse_pair(inputs: PairInputs, model: str, finding: str, config: AnalysisConfig) -> PairResult | PairRefusal:
    """Every step for one (model, finding) on the rows whose label is known; regression q-values are added
    across the run by `adjust_regression`. A pair whose splits cannot support the analysis (a split without
    positives or negatives, too few test patients: `cxrfail.analysis.checks`) is refused with its reason."""
    table, probabilities, split, levels = inputs.table, inputs.probabilities, inputs.split, inputs.levels
    known = table[finding].notna().to_numpy()
    rows = table.loc[known]
    ids = rows.index
    y = rows[finding].to_numpy(dtype=int)
    probabilities = {name: _aligned_rows(frame, table.index, known, ids) for name, frame in probabilities.items()}
    probability = probabilities[model][finding].to_numpy(dtype=float)
    patients = rows["patient_id"].to_numpy()
    id_column, patient_column = _strings(ids), _strings(rows["patient_id"])  # shared by the per-row tables
    row_split = _aligned_rows(split, table.index, known, ids).to_numpy()
    calibration, test = row_split == "calibration", row_split == "test"
    tag = {"model": model, "finding": finding}
    row_tag = {"model": _constant_column(model, tuple(inputs.probabilities), len(ids)),
               "finding": _constant_column(finding, config.findings, len(ids))}
    check = check_pair(y, row_split, patients, min_test_patients=config.min_test_patients)
    if check.refused:
        return PairRefusal(model, finding, check.reason)

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
    excluded = {finding} | derived_from(finding)  # a subgroup that restates the target says nothing
    levels = _aligned_rows(levels, table.index, known, ids)
    pair_levels = levels.loc[test, [c for c in levels.columns if c not in excluded]]
    test_rows = rows.loc[test]
    rates = _tagged(subgroup_rates(
        wrong_test, pair_levels, test_rows["patient_id"], min_n=config.min_subgroup_n,
        min_patients=config.min_subgroup_patients, n_replicates=config.subgroup_bootstrap, seed=config.seed,
        not_random_samples=inputs.non_random_subsets), tag)
    regression = _tagged(fit_pair_regressions(test_rows, wrong_test, finding), tag)

    flip_set = next((fs for fs in config.feature_sets if not is_oracle(fs)), None)
    identifier = (config.learners[0], flip_set or config.feature_sets[0])
    if inputs.scope == CORE_SCOPE:
        outcomes = _outcomes(row_tag, id_column, patient_column, row_split, y, probability, choice.threshold, prediction,
                             misclassified, np.full(len(y), np.nan), prediction)
        tables = {name: pd.DataFrame(columns=list(TABLE_COLUMNS[name])) for name in TABLE_NAMES}
        tables.update(performance=performance, subgroup_rates=rates, regression=regression, outcomes=outcomes)
        return PairResult(model, finding, inputs.unit, tables, identifier=identifier, scope=CORE_SCOPE,
                          warnings=check.warnings)

    identifier_rows, score_frames, flip_features, flip_fit = [], [], None, None
    for feature_set in config.feature_sets:
        features = build_features(rows, probabilities, model, finding,
                                  feature_set)
        if feature_set == flip_set:
            flip_features = features
        for learner in config.learners:
            evaluation = evaluate_identifier(
                features, misclassified, patients, split=row_split, learner=learner, feature_set=feature_set,
                n_folds=config.n_folds, seed=config.seed, n_bootstrap=config.n_bootstrap,
                probability=probability, threshold=choice.threshold, auroc_interval=config.auroc_interval,
            )
            if (learner, feature_set) == identifier:
                flip_fit = evaluation.split_fit  # the run's identifier: flipping reuses its fits
            identifier_rows.append({**tag, "learner": learner, "feature_set": feature_set,
                                    **{column: getattr(evaluation, column) for column in IDENTIFIER_COLUMNS}})
            score_frames.append(pd.DataFrame({
                **row_tag, "learner": _constant_column(learner, config.learners, len(ids)),
                "feature_set": _constant_column(feature_set, config.feature_sets, len(ids)),
                "image_id": id_column, "misclassified": misclassified.astype(np.int8),
                "identifier_score": evaluation.oof_probability,
                "baseline_score": evaluation.baseline_score,
            }))
    tables = {
        "performance": performance, "subgroup_rates": rates, "regression": regression,
        "identifiers": pd.DataFrame(identifier_rows), "identifier_scores": pd.concat(score_frames, ignore_index=True),
    }
    if flip_features is None:  # only oracle feature sets: a deployed system could not flip with them
        tables.update({name: pd.DataFrame(columns=list(TABLE_COLUMNS[name]))
                       for name in ("flip", "flip_curves", "shap_values")})
        tables["outcomes"] = _outcomes(row_tag, id_column, patient_column, row_split, y, probability, choice.threshold,
                                       prediction, misclassified, np.full(len(y), np.nan), prediction)
    else:
        # Flipping and SHAP use the first learner and the first non-oracle feature set: the run's identifier.
        flip_run = run_flipping(flip_features, y, prediction, misclassified, patients, row_split,
                                feature_set=flip_set, learner=config.learners[0], n_folds=config.n_folds,
                                seed=config.seed, n_bootstrap=config.n_bootstrap,
                                min_calibration_flips=config.min_calibration_flips, fitted=flip_fit)
        evaluation = flip_run.test_evaluation
        tables["flip"] = pd.DataFrame([{
            **tag, "tau": flip_run.tau, **{k: getattr(evaluation, k) for k in FLIP_COLUMNS},
            "test_tau": flip_run.test_tau, "flip_fraction": flip_run.flip_fraction, "learner": flip_run.learner,
            "feature_set": flip_run.feature_set, "oracle": flip_run.oracle}])
        tables["flip_curves"] = _tagged(flip_run.curve, tag)
        tables["outcomes"] = _outcomes(row_tag, id_column, patient_column, row_split, y, probability, choice.threshold,
                                       prediction, misclassified, flip_run.identifier_probability,
                                       flip_run.flipped_prediction)
        attributions = shap_attributions(flip_run.identifier, flip_features.loc[test],
                                         max_samples=config.shap_max_samples, seed=config.seed)
        tables["shap_values"] = to_long(attributions, model=model, finding=finding)
    tables.update(_label_audit(tables, inputs.reference, finding, config))
    return PairResult(model, finding, inputs.unit, tables, identifier=identifier, warnings=check.warnings)


def _aligned_rows(frame: pd.DataFrame | pd.Series, index: pd.Index, known: np.ndarray, ids: pd.Index):
    """``frame``'s rows for ``ids`` (the rows of ``index`` where ``known``): by position when ``frame`` is indexed
    like ``index`` (as `PairInputs` are built), by label otherwise (a label lookup of 190k string ids costs
    ~0.1 s, and a pair makes a dozen)."""
    if frame.index is index or frame.index.equals(index):
        return frame.loc[known]
    return frame.loc[ids]


def _strings(values: pd.Index | pd.Series) -> pd.api.extensions.ExtensionArray:
    """``values`` as a ``str`` array: the values' own Arrow-backed array when they are one (frames built from it
    share its buffers instead of copying 190k strings per table), else a converted copy."""
    array = values.array
    return array if array.dtype == "str" else pd.array(np.asarray(values, dtype=object), dtype="str")


def _share_row_ids(pair: PairResult | PairRefusal, table: pd.DataFrame,
                   shared: dict[str, tuple[pd.api.extensions.ExtensionArray, ...]]) -> PairResult | PairRefusal:
    """``pair`` with the ``image_id`` and ``patient_id`` columns of its per-row tables (outcomes, identifier
    scores) replaced by arrays shared by every pair of the same finding (``shared``: finding -> (ids, patients)
    of the rows whose label is known, filled on first use), when they hold exactly those rows in that order, as
    `analyse_pair` builds them.

    A pair that comes back from a worker process has its own unpickled copy of these strings (at 190k rows,
    ~20 MB a pair, 1 GB over 50 pairs); sharing keeps one copy per finding in the collecting process."""
    if isinstance(pair, PairRefusal):
        return pair
    if pair.finding not in shared:
        known = table[pair.finding].notna().to_numpy()
        shared[pair.finding] = (_strings(table.index[known]), _strings(table["patient_id"].loc[known]))
    ids, patients = shared[pair.finding]
    for name, columns in (("outcomes", {"image_id": ids, "patient_id": patients}),
                          ("identifier_scores", {"image_id": ids})):
        frame = pair.table(name)
        repeats = len(frame) // len(ids) if len(ids) else 0
        if not repeats or len(frame) != repeats * len(ids):
            continue
        replaced = {column: pd.concat([pd.Series(values)] * repeats, ignore_index=True).array  # chunks, not copies
                    for column, values in columns.items()}
        if all(frame[column].array.equals(values) for column, values in replaced.items()):
            pair = pair.with_table(name, frame.assign(**replaced))
    return pair


def _tagged(frame: pd.DataFrame, tag: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with the pair's ``model`` and ``finding`` as its first columns."""
    return pd.concat([pd.DataFrame({name: [value] * len(frame) for name, value in tag.items()}, index=frame.index),
                      frame], axis=1)


def _constant_column(value: str, categories: Sequence[str], n: int) -> pd.Categorical:
    """``value`` on ``n`` rows as a categorical over ``categories`` (the run's models, findings, learners or
    feature sets): one byte a row instead of a string, and the pairs' tables stack without losing the dtype
    (the same categories in every pair)."""
    return pd.Categorical.from_codes(np.full(n, list(categories).index(value), dtype=np.int8), categories=categories)


def _outcomes(row_tag, ids, patients, split, y, probability, threshold, prediction, misclassified,
              identifier_probability, flipped_prediction) -> pd.DataFrame:
    """The pair's per-row table (columns `TABLE_COLUMNS["outcomes"]`); 0/1 columns as int8, ``split`` and the
    ``row_tag`` columns (model, finding) categorical."""
    binary = {name: np.asarray(values).astype(np.int8) for name, values in
              (("label", y), ("prediction", prediction), ("misclassified", misclassified),
               ("flipped_prediction", flipped_prediction))}
    return pd.DataFrame({
        **row_tag, "image_id": ids, "patient_id": patients,
        "split": pd.Categorical(split, categories=(CALIBRATION, TEST)), "label": binary["label"],
        "probability": probability, "threshold": threshold, "prediction": binary["prediction"],
        "misclassified": binary["misclassified"], "identifier_probability": identifier_probability,
        "flipped_prediction": binary["flipped_prediction"],
    })


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


FLIP_COLUMNS = ("n_flips", "f1_before", "f1_after", "delta_f1", "ci_low", "ci_high", "precision_before",
                "precision_after", "recall_before", "recall_after", "improved", "exploratory")
IDENTIFIER_COLUMNS = (
    "oracle", "auroc", "ci_low", "ci_high", "baseline_auroc", "baseline_ci_low", "baseline_ci_high", "n",
    "n_misclassified",
    # How much of the AUROC is the 0/1 prediction itself, and the identifier within each predicted class:
    "prediction_auroc", "auroc_predicted_positive", "auroc_predicted_negative",
    # The comparisons, with paired patient-bootstrap CIs:
    "delta_vs_baseline", "delta_vs_baseline_ci_low", "delta_vs_baseline_ci_high",
    "delta_vs_prediction", "delta_vs_prediction_ci_low", "delta_vs_prediction_ci_high",
    "ci_method",  # "bootstrap" (patient resamples) or "analytic" (clustered DeLong, large pairs)
)


