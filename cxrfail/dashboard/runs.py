"""Analysis runs, live flip evaluations and per-image explanations, shared by every session through
Streamlit's own caches.

- `analysis(sel)`: the run of a selection. `st.cache_resource` holds one `AnalysisJob` per (dataset, models,
  config, scope); each computes once, in a background thread (from the library's disk cache when a previous
  process ran it), never in a page's script: a page waits for it a moment (`settings.inline_wait_s`), then
  shows a panel that redraws itself (pairs done, time left, Cancel) and reruns the page when the run is done.
  Leaving a page therefore never stops a run, and no lock is held while one computes (a page switch during
  a run costs what the page itself costs). The first screen (Overview, Subgroups) needs only the quick "core"
  run of the sidebar's finding, computed in the server process (seconds of work; starting worker processes
  would cost more than it saves) while the full run proceeds; the full run's worker processes lower their
  CPU priority, so they yield to the server and to the browser drawing a page.
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
import weakref
from collections.abc import Callable

import streamlit as st
from joblib import parallel_config

from cxrfail.analysis.config import CORE_SCOPE, FULL_SCOPE
from cxrfail.analysis.explain import PairIdentifier
from cxrfail.analysis.flip import FlipEvaluation
from cxrfail.analysis.result import AnalysisResult
from cxrfail.analysis.runner import run_analysis
from cxrfail.cache import hash_parts
from cxrfail.dashboard import limits, startup, widgets
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.settings import inline_wait_s
from cxrfail.dashboard.state import Selection
from cxrfail.errors import CxrfailInputError
from cxrfail.figures.style import plural

RUN_CACHE_SIZE = 6
WAIT_POLL_S = 0.25
CORE_INLINE_WAIT_S = 60.0  # the first screen's quick run (seconds; ~12 s at CheXpert scale) is waited for
PROGRESS_REFRESH_S = 1.0  # the waiting panel redraws itself this often (`st.fragment(run_every=...)`)
#: the run's progress message as each pair finishes: "{model} · {finding} done" (`cxrfail.analysis.runner.run_analysis`)
PAIR_DONE_SUFFIX = " done"
WORKER_NICENESS = 10  # the run's worker processes yield the CPU to the server and the browser
log = logging.getLogger("cxrfail.dashboard")


_JOBS: weakref.WeakSet = weakref.WeakSet()  # every AnalysisJob of this process (see `running_jobs`)


class RunCancelled(Exception):
    """Raised inside a run's progress callback when a visitor pressed Cancel: the run stops after the pair it
    is on (pairs not started are dropped)."""


class AnalysisJob:
    """One analysis run, computed once, always in a background thread (`start`), never in a page's script: a
    page waits by polling (`wait`), so leaving the page never stops the run or blocks on it.

    ``progress`` holds the last (fraction done, message); ``pairs_done`` the (model, finding) pairs finished so
    far with the time each finished (seconds since ``started_at``), from which `eta_s` estimates the time left.
    """

    def __init__(self, dataset: Dataset, models: tuple[str, ...], config, scope: str) -> None:
        self.dataset, self.models, self.config, self.scope = dataset, models, config, scope
        self._lock = threading.Lock()  # guards starting, never held while computing
        self._finished = threading.Event()
        self._result: AnalysisResult | None = None
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self.progress: tuple[float, str] = (0.0, "waiting to start")
        self.pairs_done: dict[tuple[str, str], float] = {}
        self.started_at: float | None = None
        self.finished_at: float | None = None
        _JOBS.add(self)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (model, finding) pair of the run, in the order the run schedules them."""
        return [(model, finding) for model in self.models for finding in self.config.findings]

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return isinstance(self._error, RunCancelled)

    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def eta_s(self) -> float | None:
        """Seconds left, estimated from the pairs done so far (their mean time per pair, for the pairs left;
        the run does two pairs at a time on two cores, which the mean already reflects). None before the
        first pair is done."""
        n_done, n_all = len(self.pairs_done), len(self.pairs)
        if not n_done or self.done:
            return None if not self.done else 0.0
        return self.elapsed_s() / n_done * (n_all - n_done)

    def result(self, progress: Callable[[float, str], None] = lambda fraction, message: None) -> AnalysisResult:
        """The result: computed now in the calling thread unless another thread computes it (then waited for)
        or it is done. The error of a refused run is raised again."""
        with self._lock:
            mine = self._thread is None and not self.done
            if mine:
                self._thread = threading.current_thread()
        if mine:
            self._compute(progress)
        self._finished.wait()
        if self._error is not None:
            raise self._error
        startup.FIRST_RESULT.set()  # the image decoder may be imported now (`startup.preload_image_decoder`)
        return self._result

    def start(self) -> None:
        """Compute in a background thread (once), as the calling session (a full run takes a slot of
        `limits.RUNS` for it); pages read `progress` and `pairs_done` meanwhile. A run the load limits refused
        is tried again."""
        with self._lock:
            if isinstance(self._error, limits.LoadLimitError) and not self.running:  # not kept: try again
                self._thread, self._error = None, None
                self._finished.clear()
            if self._thread is not None or self.done:
                return
            self._thread = threading.Thread(
                target=self._compute, kwargs={"session": limits.session_id()}, name="cxrfail-analysis", daemon=True
            )
            self._thread.start()

    def cancel(self) -> None:
        """Stop the run after the pair it is on; pages then offer to start it again (`restart`)."""
        self._cancel.set()

    def restart(self) -> None:
        """Forget a cancelled or failed run and start it again."""
        with self._lock:
            if self.running:
                return
            self._thread, self._error, self._result = None, None, None
            self._cancel.clear()
            self._finished.clear()
            self.pairs_done, self.progress = {}, (0.0, "waiting to start")
        self.start()

    def wait(self, timeout_s: float, tick: Callable[[], None] = lambda: None) -> bool:
        """Wait up to ``timeout_s`` for the run, calling ``tick`` every `WAIT_POLL_S` (a page draws its progress
        there, which also lets Streamlit stop the script when the visitor leaves). True when done."""
        deadline = time.monotonic() + timeout_s
        while not self._finished.wait(min(WAIT_POLL_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
            tick()
        return True

    def _compute(
        self, progress: Callable[[float, str], None] = lambda fraction, message: None, session: str | None = None
    ) -> None:
        self.started_at = time.monotonic()
        session = limits.session_id() if session is None else session

        def report(fraction: float, message: str) -> None:
            self.progress = (fraction, message)
            if message.endswith(PAIR_DONE_SUFFIX):
                model, _, finding = message.removesuffix(PAIR_DONE_SUFFIX).partition(" · ")
                self.pairs_done[(model, finding)] = self.elapsed_s()
            progress(fraction, message)
            if self._cancel.is_set():
                raise RunCancelled("cancelled by a visitor")

        models = [self.dataset.model(name) for name in self.models]
        gate = (
            contextlib.nullcontext()
            if self.scope == CORE_SCOPE  # seconds, in the server process
            else limits.RUNS.slot(session, lambda position: report(0.0, limits.wait_message(position)))
        )
        try:
            with gate, _worker_priority():
                self._result = run_analysis(
                    self.dataset.cohort,
                    models,
                    self.config,
                    scope=self.scope,
                    reference=self.dataset.reference,
                    progress=report,
                    n_jobs=1 if self.scope == CORE_SCOPE else None,
                )
        except limits.LoadLimitError as exc:  # refused by the load limits: shown, and tried again (`start`)
            self.progress = (0.0, f"not started: {exc}")
            self._error = exc
        except (CxrfailInputError, RunCancelled) as exc:  # kept: the page that needs the result shows it
            log.info("analysis not finished: %s", exc)
            self._error = exc
        except Exception as exc:  # a bug: logged with its traceback, shown to the page as one line
            log.exception("analysis failed")
            self._error = exc
        finally:
            self.finished_at = time.monotonic()
            self._finished.set()


def running_jobs() -> list[AnalysisJob]:
    """The runs of this server process computing now (for benchmarks and tests that wait for them)."""
    return [job for job in list(_JOBS) if job.running]


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
    """The analysis of the selection, or None while it computes (the page then shows a panel that updates
    itself: pairs done, time left, a Cancel button, and reruns the page once the run is done) or when it
    cannot run (one message, no traceback). Runs compute in background threads: leaving a page never stops
    or blocks on them.

    ``first_screen``: a page that needs only performance, outcomes, subgroup rates and regression (Overview,
    Subgroups) gets the full result when it is ready, else the quick "core" run of the sidebar's finding
    (seconds; waited for inline), with the full run's progress below it.
    """
    sel = widgets.require_selection(sel)
    full = _job_of(sel, FULL_SCOPE)
    try:
        if full.done:
            return full.result()
        if first_screen:
            # the quick run first, before the full run starts: the full run's start (pickling its inputs for the
            # worker processes) holds the server's GIL for seconds at CheXpert scale and would delay these numbers
            shown = dataclasses.replace(sel, findings=(sel.finding,))  # the sidebar's finding first
            core = _job_of(shown, CORE_SCOPE)
            core.start()
            finished = core.wait(CORE_INLINE_WAIT_S, _keep_alive)
            full.start()
            if finished and not full.done:
                result = core.result()
                _progress_panel(full, sel, first_screen=True)
                return result
        full.start()
        # a run that just started may be a read from the disk cache (a second or so): worth a short wait; one
        # that has been computing for longer is not waited for (the panel shows where it is)
        if full.wait(max(0.0, inline_wait_s() - full.elapsed_s()), _keep_alive):
            return full.result()
        _progress_panel(full, sel)
        return None
    except CxrfailInputError as exc:
        log.info("analysis refused: %s", exc)
        st.error(f"**The analysis cannot run on this selection.** {exc}")
        return None
    except RunCancelled:
        _progress_panel(full, sel)  # says so and offers to start it again
        return None


def _keep_alive() -> None:
    """Called while a page waits inline: reading the session state lets Streamlit stop the script when the
    visitor leaves (it handles stop and rerun requests on each session-state access)."""
    "run_cancel" in st.session_state  # noqa: B015  (the access is the point)


def _status_label(what: str, sel: Selection) -> str:
    cohort = sel.dataset.cohort
    return (
        f"{what}: {len(sel.models)} models × {len(sel.findings)} findings "
        f"({len(sel.models) * len(sel.findings)} pairs) on {cohort.n_rows:,} {plural(cohort.unit)}"
    )


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_text(job: AnalysisJob, finding: str | None = None) -> str:
    """One line: pairs done of all, time so far, time left (from the pairs done), and the pairs of the
    page's finding done."""
    n_done, n_all = len(job.pairs_done), len(job.pairs)
    text = f"{n_done} of {n_all} model × finding pairs done in {_duration(job.elapsed_s())}"
    eta = job.eta_s()
    text += (
        f"; about {_duration(eta)} left"
        if eta is not None
        else "; the time left is estimated once the first pair is done"
    )
    mine = [pair for pair in job.pairs if pair[1] == finding]
    if mine:
        ready = [model for model, _ in mine if (model, finding) in job.pairs_done]
        text += (
            f". {finding}: {len(ready)} of {len(mine)} models done"
            + (f" ({', '.join(ready)})" if ready else "")
            + "; the page shows them when the run ends"
        )
    return text + "."


def _progress_panel(job: AnalysisJob, sel: Selection, *, first_screen: bool = False) -> None:
    """The run's progress, redrawn every `PROGRESS_REFRESH_S` by itself (a fragment): a bar, pairs done, time
    left, a Cancel button; the page reruns once the run is done."""
    what = (
        f"Shown: {sel.finding} from a quick first run. The full analysis (every finding; identifiers, "
        "flipping, SHAP, label audit) runs in the background"
        if first_screen
        else "Running the analysis this page needs"
    )

    @st.fragment(run_every=None if job.cancelled else PROGRESS_REFRESH_S)
    def panel() -> None:
        if job.done and not job.cancelled:
            st.rerun()  # the whole page, now with its result
        with st.container(border=True):
            st.markdown(f"**{_status_label(what, sel)}**")
            if job.cancelled:
                st.warning("The analysis was cancelled.")
                if st.button("Start it again", key="run_restart"):
                    job.restart()
                    st.rerun()
                return
            fraction, message = job.progress
            st.progress(float(min(max(fraction, 0.0), 1.0)), text=message)
            st.caption(progress_text(job, sel.finding))
            if st.button(
                "Cancel",
                key="run_cancel",
                help="Stops the run after the pair it is on (for every visitor of this selection: runs are shared)",
            ):
                job.cancel()

    panel()


@st.cache_data(max_entries=2048, show_spinner=False)
def flip_at(
    token: str, model: str, finding: str, tau: float, n_bootstrap: int, _result: AnalysisResult
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
