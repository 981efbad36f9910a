"""Run the whole analysis for several models and findings: the tables the CLI report and the dashboard show.

`run_analysis` checks the inputs, serves an unchanged run from the on-disk cache, and otherwise analyses every
(model, finding) pair (`cxrfail.analysis.pair.analyse_pair`) in local worker processes, in this process, or
as Ray tasks (`cxrfail.analysis.distributed`): the same results in every case.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_limits

from cxrfail.analysis.config import FULL_SCOPE, SCOPES, AnalysisConfig
from cxrfail.analysis.pair import PairInputs, analyse_pair, run_levels, string_array
from cxrfail.analysis.result import TABLE_NAMES, AnalysisResult, PairRefusal, PairResult
from cxrfail.analysis.slices import adjust_slices_grid
from cxrfail.analysis.splits import TEST, patient_split
from cxrfail.cache import TableStore, hash_frame, hash_parts
from cxrfail.cohort import Cohort
from cxrfail.errors import CohortError, ConfigError, PredictionsError
from cxrfail.predictions import ModelPredictions, check_coverage, common_ids
from cxrfail.reference import ReferenceLabels

__all__ = [
    "analyze",
    "run_analysis",
    "cache_key",
    "adjust_slices",
    "CACHE_VERSION",
    "ProgressCallback",
    "PairCallback",
    "RunSoFar",
]

CACHE_VERSION = 9  # bump when a change alters results for unchanged inputs

ProgressCallback = Callable[[float, str], None]
#: Called in the collecting process as each pair finishes: (the pair or its refusal, the run so far).
PairCallback = Callable[["PairResult | PairRefusal", "RunSoFar"], None]


@dataclass(frozen=True)
class RunSoFar:
    """The pairs of a computing run finished so far (a snapshot: a new one per finished pair, never changed).

    Attributes:
        config: the run's `AnalysisConfig`.
        cache_key: the key of the whole run (`cache_key`).
        cohort_summary, notes, models: as the final `AnalysisResult` has them.
        planned: every (model, finding) of the run, in the final result's order.
        finished: (model, finding) → `PairResult` or `PairRefusal`, in the order they finished.
    """

    config: AnalysisConfig
    cache_key: str | None
    cohort_summary: dict
    notes: dict
    models: tuple[str, ...]
    planned: tuple[tuple[str, str], ...]
    finished: Mapping[tuple[str, str], PairResult | PairRefusal] = field(default_factory=dict)

    @property
    def missing(self) -> tuple[tuple[str, str], ...]:
        """The planned pairs not finished yet, in run order."""
        return tuple(key for key in self.planned if key not in self.finished)

    def result(self) -> AnalysisResult:
        """An `AnalysisResult` of the pairs finished so far: per pair the final numbers (pairs are seeded), the
        grid-wide slice q-values (``q_value_grid``) over these pairs only. ``missing`` names the pairs still
        computing (``provisional`` is True until none is); a note says so. The complete run's result when
        every pair is finished."""
        return _assemble(self, self.finished)


def _no_progress(fraction: float, message: str) -> None:
    return None


def cache_key(
    cohort: Cohort, models: Sequence[ModelPredictions], config: AnalysisConfig, reference: ReferenceLabels | None = None
) -> str:
    """Hash of the cohort table, every model's probabilities and name, the config, the reference labels (when
    given) and the code version."""
    parts = [
        CACHE_VERSION,
        hash_frame(cohort.table),
        cohort.unit,
        [(model.name, hash_frame(model.probabilities)) for model in models],
        asdict(config),
    ]
    if reference is not None:
        parts.append(["reference", reference.name, hash_frame(reference.table)])
    return hash_parts(*parts)


def run_analysis(
    cohort: Cohort,
    models: Sequence[ModelPredictions],
    config: AnalysisConfig = AnalysisConfig(),
    *,
    reference: ReferenceLabels | None = None,
    scope: str = FULL_SCOPE,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
    on_pair: PairCallback | None = None,
    first_finding: str | None = None,
    n_jobs: int | None = None,
    ray_address: str | None = None,
    keep_workers: bool = True,
) -> AnalysisResult:
    """Run every step for every (model, finding); serve from the on-disk cache when inputs are unchanged.

    Args:
        cohort: the study table; rows predicted by every model are analysed.
        models: one `ModelPredictions` per model (distinct names), or one.
        config: all parameters (findings, threshold rule, split, learners, ...).
        scope: "full" (every step), or "core": performance, outcomes, subgroup rates and regression only (seconds
            instead of minutes; the same numbers as the full run, without identifiers, flipping, SHAP and the
            label audit), for a first screen.
        reference: a second (expert) label set; each pair whose finding it reads gets the label audit
            (`cxrfail.analysis.labels`: tables ``label_agreement``, ``label_audit``, ``label_cases``).
        cache_dir: root of the on-disk cache (default ``$CXRFAIL_CACHE_DIR`` or ``~/.cache/cxrfail``).
        use_cache: False to neither read nor write the cache.
        progress: called with (fraction done in [0, 1], message) as steps finish.
        on_pair: called in this process as each pair finishes (in the order they finish), with the pair (or
            its `PairRefusal`) and the `RunSoFar`, whose ``result()`` is a provisional `AnalysisResult` of the
            pairs done. Not called when the run is read from the cache.
        first_finding: the pairs of this finding (every model) are computed first, the others after them in
            run order; for a dashboard page that waits for one finding. Results do not depend on the order
            (every pair is seeded), and the result lists the pairs in run order either way.
        n_jobs: worker processes for the (model, finding) pairs (default: one per CPU core); results are the
            same for any value.
        ray_address: run the pairs as tasks on this Ray cluster instead (`cxrfail.analysis.distributed`);
            the same results.
        keep_workers: False stops the worker processes once the pairs are done, so that their memory (each
            holds the run's inputs) is free before the tables are stacked and saved: for one-shot runs (the
            CLI). True keeps them warm for the next run (the dashboard).
    """
    progress = progress or _no_progress
    if isinstance(models, ModelPredictions):
        models = [models]
    _check_inputs(cohort, models, config)
    store = TableStore(cache_dir)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    key = (
        cache_key(cohort, models, config, reference)
        if scope == FULL_SCOPE
        else hash_parts(cache_key(cohort, models, config, reference), scope)
    )
    if use_cache:
        cached = store.load(key)
        if cached is not None:
            progress(1.0, "loaded from cache")
            return AnalysisResult.from_tables(config, key, *cached)
    if first_finding is not None and first_finding not in config.findings:
        raise ValueError(f"first_finding {first_finding!r} is not among the run's findings {config.findings}")
    result = _compute(
        cohort,
        models,
        config,
        reference,
        scope,
        progress,
        n_jobs,
        ray_address,
        keep_workers,
        key=key,
        on_pair=on_pair,
        first_finding=first_finding,
    )
    if use_cache:
        store.save(key, {name: result.table(name) for name in TABLE_NAMES}, result.meta())
    return result


#: The public name (``from cxrfail import analyze``).
analyze = run_analysis


def _check_inputs(cohort: Cohort, models: Sequence[ModelPredictions], config: AnalysisConfig) -> None:
    """Refuse inputs that do not fit together: no models, repeated model names, findings the cohort or a model
    lacks (the config's own ranges are checked when it is made: `cxrfail.analysis.config.check_config`)."""
    if not models:
        raise PredictionsError("no prediction files given", fix="Pass at least one model's predictions")
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise PredictionsError(f"model names repeat: {', '.join(names)}", fix="Give each model its own name")
    missing_labels = [finding for finding in config.findings if finding not in cohort.table.columns]
    if missing_labels:
        raise CohortError(
            f"the cohort has no labels for {', '.join(missing_labels)}",
            path=", ".join(cohort.sources) or None,
            fix=f"Choose among the cohort's findings: {', '.join(cohort.findings)}",
        )
    for model in models:
        absent = [finding for finding in config.findings if finding not in model.probabilities.columns]
        if absent:
            raise PredictionsError(
                f"model {model.name!r} has no probabilities for {', '.join(absent)}",
                path=model.source or model.name,
                fix="Choose findings that every model predicts",
            )


def _check_slice_support(config: AnalysisConfig, split: pd.Series, patients: pd.Series) -> None:
    """Refuse a minimum slice support (rows or patients) that was set above the calibration split it is searched
    on. A default the split is too small for is no mistake of the user's: each pair then says it has too few
    rows for any slice, and the rest of the run goes on."""
    calibration = (split == "calibration").to_numpy()
    n_rows, n_patients = int(calibration.sum()), int(patients[calibration].nunique())
    defaults = AnalysisConfig()
    for name, value, available, what in (
        ("slice_min_rows", config.slice_min_rows, n_rows, "rows"),
        ("slice_min_patients", config.slice_min_patients, n_patients, "patients"),
    ):
        if value > available and value != getattr(defaults, name):
            raise ConfigError(
                f"setting {name} is {value}, more than the calibration split's {available} {what}",
                fix=f"Choose {name} of at most {available}",
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
    *,
    key: str | None = None,
    on_pair: PairCallback | None = None,
    first_finding: str | None = None,
) -> AnalysisResult:
    coverage = check_coverage(cohort, models, config.min_overlap)
    ids = common_ids(cohort, models)
    table = _rows(cohort.table, ids)
    probabilities = {model.name: _rows(model.probabilities, ids) for model in models}
    patients = table["patient_id"].to_numpy()
    split = pd.Series(patient_split(patients, config.calibration_fraction, config.seed), index=ids)
    levels = run_levels(table, config)
    if scope == FULL_SCOPE:
        _check_slice_support(config, split, table["patient_id"])

    tasks = [(model.name, finding) for model in models for finding in config.findings]
    # the order the pairs are computed in: the first finding's pairs first (the result keeps the run order)
    schedule = sorted(range(len(tasks)), key=lambda index: tasks[index][1] != first_finding)
    so_far = RunSoFar(
        config=config,
        cache_key=key,
        cohort_summary={
            **cohort.summary(),
            "name": cohort.name,
            "n_analysed": len(ids),
            "n_calibration": int((split == "calibration").sum()),
            "n_test": int((split == "test").sum()),
        },
        notes=_run_notes(cohort, models, reference, coverage, table),
        models=tuple(model.name for model in models),
        planned=tuple(tasks),
    )
    n_jobs = max(1, min(n_jobs or os.cpu_count() or 1, len(tasks)))
    progress(0.0, f"analysing {len(tasks)} model × finding pairs on {n_jobs} process(es)")
    inputs = PairInputs(
        table=table,
        probabilities=probabilities,
        split=split,
        levels=levels,
        unit=cohort.unit,
        reference=None if reference is None else reference.table.reindex(ids),
        scope=scope,
        non_random_subsets=cohort.non_random_subsets,
    )
    finished: dict[tuple[str, str], PairResult | PairRefusal] = {}
    with ExitStack() as scratch:
        if ray_address is not None:
            from cxrfail.analysis.distributed import map_on_ray

            arguments = [(i, inputs, *tasks[i], config) for i in schedule]
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
            _return_free_memory()  # the pickler's buffers
            jobs = (delayed(_analyse_pair_from_file)(i, str(inputs_file), *tasks[i], config) for i in schedule)
            outputs = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
            if not keep_workers:
                scratch.callback(lambda: get_reusable_executor().shutdown(wait=True))
        else:
            outputs = (_analyse_pair_at(i, inputs, *tasks[i], config) for i in schedule)
        shared_ids: dict[str, tuple[pd.api.extensions.ExtensionArray, ...]] = {}
        for index, pair in outputs:
            pair = _share_row_ids(pair, table, shared_ids)
            _return_free_memory()  # the worker's copy of the row ids, just replaced by the shared ones
            finished[tasks[index]] = pair
            model, finding = tasks[index]
            if on_pair is not None:
                on_pair(pair, dataclasses.replace(so_far, finished=dict(finished)))
            progress(len(finished) / len(tasks), f"{model} · {finding} done")
    return _assemble(so_far, finished).stacked()  # stacked: one copy of the per-row tables


def _run_notes(
    cohort: Cohort,
    models: Sequence[ModelPredictions],
    reference: ReferenceLabels | None,
    coverage,
    table: pd.DataFrame,
) -> dict[str, str]:
    """The run's notes: cohort and model notes, coverage, reference labels, unit."""
    notes = {**dict(cohort.notes), **{f"{m.name}: {k}": v for m in models for k, v in m.notes.items()}}
    notes["coverage"] = "; ".join(
        f"{c.model}: {c.n_matched} of {c.n_predictions} predicted images in the cohort" for c in coverage
    )
    if reference is not None:
        notes["reference labels"] = f"{reference.name}: {reference.selection}"
        notes.update({f"reference: {finding}": note for finding, note in reference.notes.items()})
    notes["unit"] = (
        f"one row = one {cohort.unit}; {len(table)} {cohort.unit}s of {table['patient_id'].nunique()} patients"
    )
    return notes


def _assemble(so_far: RunSoFar, finished: Mapping[tuple[str, str], PairResult | PairRefusal]) -> AnalysisResult:
    """The `AnalysisResult` of the ``finished`` pairs of a run, in run order; provisional (``missing`` and a
    note) while some planned pair is not among them."""
    done = [finished[key] for key in so_far.planned if key in finished]
    missing = tuple(key for key in so_far.planned if key not in finished)
    notes = dict(so_far.notes)
    if missing:
        notes["provisional"] = (
            f"{len(done)} of {len(so_far.planned)} model × finding pairs done; the grid-wide slice q-values "
            "(q_value_grid) are over these pairs only"
        )
    return AnalysisResult(
        config=so_far.config,
        cohort_summary=so_far.cohort_summary,
        models=so_far.models,
        pairs={(p.model, p.finding): p for p in adjust_slices([p for p in done if not isinstance(p, PairRefusal)])},
        notes=notes,
        cache_key=so_far.cache_key if not missing else hash_parts(so_far.cache_key, "provisional", sorted(finished)),
        refused={(r.model, r.finding): r.reason for r in done if isinstance(r, PairRefusal)},
        missing=missing,
    )


def adjust_slices(pairs: Sequence[PairResult]) -> list[PairResult]:
    """Grid-wide Benjamini-Hochberg q-values of the slice candidates (``q_value_grid``: every candidate of every
    pair and error kind is one family; `cxrfail.analysis.slices.adjust_slices_grid`). Each pair's own
    ``q_value`` and verdict are unchanged."""
    frames = adjust_slices_grid([pair.slices for pair in pairs])
    return [pair.with_table("slices", frame) for pair, frame in zip(pairs, frames)]


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
    """`analyse_pair` tagged with the task's position, for out-of-order completion; the memory the pair freed
    is handed back to the system before the next one (`_return_free_memory`)."""
    with threadpool_limits(limits=1):
        output = index, analyse_pair(*args)
    _return_free_memory()
    return output


def _rows(frame: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """``frame``'s rows for ``ids``, in that order: ``frame`` itself when it already holds exactly those rows (the
    usual case: every model predicts every cohort row), not a copy (at CheXpert scale ~100 MB per run)."""
    return frame if frame.index.equals(ids) else frame.loc[ids]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _return_free_memory() -> None:
    """Hand the heap memory Python has freed back to the system (glibc's ``malloc_trim``; nothing elsewhere): a
    worker process then holds its inputs and not the high-water mark of the largest pair it has analysed, while
    the other worker reaches its own (together they bound a run's peak memory)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _share_row_ids(
    pair: PairResult | PairRefusal, table: pd.DataFrame, shared: dict[str, tuple[pd.api.extensions.ExtensionArray, ...]]
) -> PairResult | PairRefusal:
    """``pair`` with the ``image_id`` and ``patient_id`` columns of its per-row tables (outcomes, identifier
    scores) replaced by arrays shared by every pair of the same finding (``shared``: finding -> (ids, patients,
    test ids) of the rows whose label is known, filled on first use; the identifier scores hold the test rows),
    when they hold exactly those rows in that order, as `analyse_pair` builds them.

    A pair that comes back from a worker process has its own unpickled copy of these strings (at 190k rows,
    ~20 MB a pair, 1 GB over 50 pairs); sharing keeps one copy per finding in the collecting process."""
    if isinstance(pair, PairRefusal):
        return pair
    if pair.finding not in shared:
        known = table[pair.finding].notna().to_numpy()
        test = pair.outcomes["split"].to_numpy() == TEST  # the outcomes hold the known rows in table order
        shared[pair.finding] = (
            string_array(table.index[known]),
            string_array(table["patient_id"].loc[known]),
            string_array(table.index[known][test]),
        )
    ids, patients, test_ids = shared[pair.finding]
    for name, columns in (
        ("outcomes", {"image_id": ids, "patient_id": patients}),
        ("identifier_scores", {"image_id": test_ids}),
    ):
        frame = pair.table(name)
        rows = len(next(iter(columns.values())))
        repeats = len(frame) // rows if rows else 0
        if not repeats or len(frame) != repeats * rows:
            continue
        replaced = {
            column: pd.concat([pd.Series(values)] * repeats, ignore_index=True).array  # chunks, not copies
            for column, values in columns.items()
        }
        if all(frame[column].array.equals(values) for column, values in replaced.items()):
            pair = pair.with_table(name, frame.assign(**replaced))
    return pair
