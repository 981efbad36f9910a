"""Analysis runs, live flip evaluations and per-image explanations, shared by every session through
Streamlit's own caches.

- `analysis(sel)`: the run of a selection. `st.cache_resource` holds one `AnalysisJob` per (dataset, models,
  config, scope): the first visitor computes it (from the library's disk cache when a previous process ran it)
  behind a progress bar; later visitors and reruns get the same `AnalysisResult`. The first screen (Overview,
  Subgroups) needs only the quick "core" run and starts the full one in the background. The core run computes
  in the server process (seconds of work; starting worker processes would cost more than it saves); the worker
  processes of the other runs lower their CPU priority, so a run in the background yields to the server and
  to the browser drawing a page.
- `flip_at`: `PairResult.evaluate_flip` at a slid tau (`st.cache_data`, keyed by run, pair, tau, replicates).
- `explain_image`: SHAP of one row from the pair's refitted identifier (`st.cache_resource` per pair).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable

import streamlit as st
from joblib import parallel_config

from cxrfail.analysis.config import CORE_SCOPE, FULL_SCOPE
from cxrfail.analysis.explain import PairIdentifier
from cxrfail.analysis.flip import FlipEvaluation
from cxrfail.analysis.result import AnalysisResult
from cxrfail.analysis.runner import run_analysis
from cxrfail.cache import hash_parts
from cxrfail.dashboard import limits, widgets
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.state import Selection
from cxrfail.errors import CxrfailInputError

RUN_CACHE_SIZE = 6
WAIT_POLL_S = 0.5
WORKER_NICENESS = 10  # the run's worker processes yield the CPU to the server and the browser
log = logging.getLogger("cxrfail.dashboard")


class AnalysisJob:
    """One analysis run, computed once (under a lock) by whichever session asks first, or in the background.

    ``progress`` holds the last (fraction done, message) of the run, for pages that wait on it."""

    def __init__(self, dataset: Dataset, models: tuple[str, ...], config, scope: str) -> None:
        self.dataset, self.models, self.config, self.scope = dataset, models, config, scope
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._result: AnalysisResult | None = None
        self._error: CxrfailInputError | None = None
        self._thread: threading.Thread | None = None
        self.progress: tuple[float, str] = (0.0, "waiting to start")

    @property
    def done(self) -> bool:
        return self._result is not None or self._error is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def result(self, progress: Callable[[float, str], None] = lambda fraction, message: None,
               session: str | None = None) -> AnalysisResult:
        """The result, computed now unless done (the error of a refused run is raised again). A full run takes
        a slot of `limits.RUNS` for ``session`` (default: the calling session): it may wait in the queue (its
        position reported as progress) or be refused (`limits.LoadLimitError`, not kept: a later call tries
        again)."""
        def report(fraction: float, message: str) -> None:
            self.progress = (fraction, message)
            progress(fraction, message)

        session = limits.session_id() if session is None else session
        with self._lock:
            if self._result is None and self._error is None:
                models = [self.dataset.model(name) for name in self.models]
                gate = (contextlib.nullcontext() if self.scope == CORE_SCOPE  # seconds, in the server process
                        else limits.RUNS.slot(session, lambda position: report(0.0, limits.wait_message(position))))
                try:
                    with gate, _worker_priority():
                        self._result = run_analysis(self.dataset.cohort, models, self.config, scope=self.scope,
                                                    reference=self.dataset.reference, progress=report,
                                                    n_jobs=1 if self.scope == CORE_SCOPE else None)
                except limits.LoadLimitError as exc:
                    self.progress = (0.0, f"not started: {exc}")
                    raise
                except CxrfailInputError as exc:
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._result

    def start_background(self) -> None:
        """Compute in a background thread (once); pages read `progress` meanwhile. Never waits for a run in
        progress (its own lock, not the one the computing thread holds)."""
        with self._start_lock:
            if self.done or self.running:
                return
            self._thread = threading.Thread(target=self._run_quietly, args=(limits.session_id(),),
                                            name="cxrfail-analysis", daemon=True)
            self._thread.start()

    def _run_quietly(self, session: str) -> None:
        try:
            self.result(session=session)
        except CxrfailInputError as exc:  # kept: the page that needs the result shows it
            log.info("background analysis refused: %s", exc)


def _worker_priority():
    """joblib setting for a run's worker processes: each lowers its own CPU priority as it starts (``os.nice``,
    where the system has it), so a run in the background yields the CPU to the server and the browser. Results
    do not change."""
    if not hasattr(os, "nice"):
        return contextlib.nullcontext()
    return parallel_config(backend="loky", initializer=os.nice, initargs=(WORKER_NICENESS,))


def run_token(sel: Selection, scope: str = FULL_SCOPE) -> str:
    """Identifies a run: the dataset's content key, the models, every config value and the scope."""
    return hash_parts(sel.dataset.key, list(sel.models), dataclasses.asdict(sel.config), scope)


@st.cache_resource(max_entries=2 * RUN_CACHE_SIZE, show_spinner=False)
def _job(token: str, _dataset: Dataset, _models: tuple[str, ...], _config, _scope: str) -> AnalysisJob:
    return AnalysisJob(_dataset, _models, _config, _scope)


def _job_of(sel: Selection, scope: str) -> AnalysisJob:
    return _job(run_token(sel, scope), sel.dataset, sel.models, sel.config, scope)


def analysis(sel: Selection | None, *, first_screen: bool = False) -> AnalysisResult | None:
    """The analysis of the selection. Input errors are shown as one message (no traceback) and give None.

    ``first_screen``: a page that needs only performance, outcomes, subgroup rates and regression (Overview,
    Subgroups) gets the full result when it is ready, else the quick "core" run of the sidebar's finding
    (seconds), and the full run (every finding; identifiers, flipping, SHAP, label audit) starts in the
    background, its progress shown. Other pages wait
    for the full run, with its progress per (model, finding) pair.
    """
    sel = widgets.require_selection(sel)
    full = _job_of(sel, FULL_SCOPE)
    try:
        if full.done:
            return full.result()
        if first_screen:
            shown = dataclasses.replace(sel, findings=(sel.finding,))  # the sidebar's finding first
            core = _job_of(shown, CORE_SCOPE)
            result = core.result() if core.done else _with_progress(core, shown, "Reading the cohort's numbers")
            full.start_background()
            fraction, message = full.progress
            st.caption(f"First screen: {sel.finding} only, without identifiers. The full analysis ("
                       f"{len(sel.findings)} findings; identifiers, flipping, SHAP, label audit) runs in the "
                       f"background ({fraction:.0%}: {message}); every page shows it once ready.")
            return result
        # In a background thread, the page polling it: a visitor who moves on is not held by the run
        # (a run computed in the script thread would hold every later rerun of the session until it ends).
        full.start_background()
        return _wait(full, sel)
    except CxrfailInputError as exc:
        log.info("analysis refused: %s", exc)
        st.error(f"**The analysis cannot run on this selection.** {exc}")
        return None


def _status_label(what: str, sel: Selection) -> str:
    cohort = sel.dataset.cohort
    return (f"{what}: {len(sel.models)} models × {len(sel.findings)} findings "
            f"({len(sel.models) * len(sel.findings)} pairs) on {cohort.n_rows:,} {cohort.unit}s")


def _with_progress(job: AnalysisJob, sel: Selection, what: str) -> AnalysisResult:
    with st.status(_status_label(what, sel), expanded=True) as status:
        bar = st.progress(0.0, text="starting (a finished run is read from the disk cache)")

        def progress(fraction: float, message: str) -> None:
            try:
                bar.progress(float(min(max(fraction, 0.0), 1.0)), text=message)
            except Exception:  # a worker thread without a script context: skip the update
                pass

        try:
            result = job.result(progress)
        except CxrfailInputError:
            status.update(label="The analysis cannot run on this selection", state="error", expanded=True)
            raise
        status.update(label="Analysis ready", state="complete", expanded=False)
    return result


def _wait(job: AnalysisJob, sel: Selection) -> AnalysisResult:
    """Wait for a job running in the background, showing its progress."""
    with st.status(_status_label("Finishing the analysis started in the background", sel), expanded=True) as status:
        bar = st.progress(0.0)
        while not job.done and job.running:
            fraction, message = job.progress
            bar.progress(float(min(max(fraction, 0.0), 1.0)), text=message)
            time.sleep(WAIT_POLL_S)
        status.update(label="Analysis ready", state="complete", expanded=False)
    return job.result()


@limits.byte_cached(limits.flip_cache_bytes)
def flip_at(token: str, model: str, finding: str, tau: float, n_bootstrap: int, _result: AnalysisResult
            ) -> FlipEvaluation:
    """`AnalysisResult.evaluate_flip` at ``tau`` (test split; exploratory unless tau is the chosen one)."""
    return _result.evaluate_flip(model, finding, tau, n_bootstrap=n_bootstrap)


@st.cache_resource(max_entries=16, show_spinner="Refitting the identifier on the calibration split…")
def _identifier(token: str, model: str, finding: str, _result: AnalysisResult, _dataset: Dataset) -> PairIdentifier:
    return _result.refit_identifier(model, finding, _dataset.cohort, [_dataset.model(name) for name in _result.models])


@st.cache_data(max_entries=512, show_spinner=False)
def explain_image(token: str, model: str, finding: str, image_id: str, _result: AnalysisResult, _dataset: Dataset):
    """(long SHAP rows of one image, base value, scale, refit gap) from the pair's refitted identifier."""
    from cxrfail.analysis.explain import to_long

    identifier = _identifier(token, model, finding, _result, _dataset)
    _, attrs = identifier.explain(image_id)
    return to_long(attrs, model=model, finding=finding), float(attrs.base_value), attrs.scale, identifier.refit_gap


@st.cache_data(max_entries=256, show_spinner="Cutting the test split by that column…")
def rates_by(token: str, model: str, finding: str, column: str, _result: AnalysisResult, _table):
    """`AnalysisResult.rates_by` for any cohort column (patient-clustered intervals, as the run's); ``token``
    (`run_token`) identifies the run and its cohort table."""
    return _result.rates_by(model, finding, _table, column)
