"""Analysis runs, live flip evaluations and per-image explanations, shared by every session through
Streamlit's own caches.

- `analysis(sel)`: the run of a selection. `st.cache_resource` holds one `AnalysisJob` per (dataset, models,
  config, scope); each computes once, in a background thread (from the library's disk cache when a previous
  process ran it), never in a page's script: a page waits for it a moment (`settings.inline_wait_s`), then
  shows what is there with a panel that redraws itself (pairs done, time left, Cancel) and reruns the page
  when more of what it shows is ready. The full run computes the sidebar's finding first; as soon as one of
  its pairs is done a page gets a provisional result (the pairs done so far, `AnalysisResult.provisional`)
  under a banner, and reruns as each further pair of its finding arrives and once the run is done. Leaving a
  page therefore never stops a run, and no lock is held while one computes (a page switch during a run costs
  what the page itself costs). The first screen (Overview, Subgroups) needs the sidebar's finding for every
  model: until the full run has them, the quick "core" run of that finding, computed in the server process
  (seconds of work; starting worker processes would cost more than it saves) while the full run proceeds;
  the full run's worker processes lower their CPU priority, so they yield to the server and to the browser
  drawing a page.
- `flip_at`: `PairResult.evaluate_flip` at a slid tau (`st.cache_data`, keyed by run, pair, tau, replicates).
- `explain_image`: SHAP of one row from the pair's refitted identifier (refitted once per pair in a background
  thread; the page waits a moment, then shows a panel that reruns it when the refit is ready).
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
from cxrfail.analysis.result import AnalysisResult, PairRefusal, PairResult
from cxrfail.analysis.runner import RunSoFar, run_analysis
from cxrfail.cache import hash_parts
from cxrfail.dashboard import limits, startup, widgets
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.settings import inline_wait_s
from cxrfail.dashboard.state import Selection
from cxrfail.errors import CxrfailInputError
from cxrfail.figures.style import plural

RUN_CACHE_SIZE = 6
WAIT_POLL_S = 0.25
#: The first screen waits this long (seconds) for its quick run, at least (or `settings.inline_wait_s` when
#: longer, at most `CORE_INLINE_WAIT_S`), then shows the models it has done (~12 s for all at CheXpert scale).
FIRST_SCREEN_WAIT_S = 6.0
CORE_INLINE_WAIT_S = 60.0
PROGRESS_REFRESH_S = 1.0  # the run's panel redraws itself this often (`st.fragment(run_every=...)`)
#: Before the full run's first pair is done, its time left is estimated from the quick first run's seconds per
#: pair times this, and said to be rough: a full pair adds identifiers, flipping, SHAP, slices and the label
#: audit, and its worker processes yield the CPU to the server. `bench/dashboard_bench.py --chexpert` prints
#: the ratio it sees: 21-24x on a 2-core machine at load average 9-17; about 7x on a quiet one (a 168 s full
#: run of 50 pairs on 2 workers against ~1 s a quick pair).
FULL_PAIR_COST_VS_CORE = 10.0
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
    far with the time each finished (seconds since ``started_at``), from which `eta_s` estimates the time left;
    `provisional` the result of the pairs done so far. ``first_finding``: the finding whose pairs the run
    computes first (the sidebar's finding of the page that started it).
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
        self.first_finding: str | None = None
        self._quick: AnalysisJob | None = None  # the quick run of the same data, for a rough time left (`expect_from`)
        self._then: list[Callable[[], None]] = []  # called once this run is finished (`start_after`)
        self._so_far: RunSoFar | None = None  # the pairs done so far (a snapshot per finished pair)
        self._provisional: AnalysisResult | None = None  # built from ``_so_far`` on demand, kept until it grows
        self.started_at: float | None = None
        self.finished_at: float | None = None
        _JOBS.add(self)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (model, finding) pair of the run, in the order the run schedules them (`first_finding` first)."""
        pairs = [(model, finding) for model in self.models for finding in self.config.findings]
        return sorted(pairs, key=lambda pair: pair[1] != self.first_finding)

    def done_of(self, finding: str) -> int:
        """How many pairs of ``finding`` are done (analysed or refused)."""
        return sum(1 for _, f in list(self.pairs_done) if f == finding)

    def provisional(self) -> AnalysisResult | None:
        """The result of the pairs done so far (`AnalysisResult.provisional` while pairs are missing; built
        once per finished pair), or None before the first pair is done."""
        so_far = self._so_far
        if so_far is None:
            return None
        with self._lock:
            kept = self._provisional
            if kept is None or len(kept.pairs) + len(kept.refused) != len(so_far.finished):
                kept = self._provisional = so_far.result()
        return kept

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
        the run does two pairs at a time on two cores, which the mean already reflects); before the first pair
        is done, from `prior_pair_s` (`eta_is_rough`), else None."""
        n_done, n_all = len(self.pairs_done), len(self.pairs)
        if self.done:
            return 0.0
        if n_done:
            return self.elapsed_s() / n_done * (n_all - n_done)
        prior = self._prior_pair_s()
        if prior is None:
            return None
        quick = self._quick
        before = quick.eta_s() or 0.0 if self._thread is None and quick is not None and not quick.done else 0.0
        return before + max(prior * n_all - self.elapsed_s(), prior)

    @property
    def eta_is_rough(self) -> bool:
        """True while `eta_s` comes from the quick first run, not from pairs of this run."""
        return not self.pairs_done and not self.done and self._prior_pair_s() is not None

    def expect_from(self, quick: AnalysisJob) -> None:
        """Until this run's first pair is done, estimate its time left from ``quick``, the quick ("core") run of
        the same data, once that has computed its pairs (`_prior_pair_s`)."""
        if self._quick is None and quick.scope == CORE_SCOPE:
            self._quick = quick

    def _prior_pair_s(self) -> float | None:
        """Rough seconds per pair of this run: the quick run's seconds per pair so far times
        `FULL_PAIR_COST_VS_CORE`, over the run's worker processes; None before the quick run has a pair."""
        quick = self._quick
        if quick is None or quick._error is not None or not quick.pairs_done:
            return None
        workers = max(1, min(os.cpu_count() or 1, len(self.pairs)))
        return quick.elapsed_s() / len(quick.pairs_done) * FULL_PAIR_COST_VS_CORE / workers

    def start_after(self, quick: AnalysisJob, first_finding: str | None = None) -> None:
        """`start` once ``quick`` (the quick run computing in the server process) is finished, now if it is: the
        two would slow each other down, and the quick one is what the first screen shows."""
        session = limits.session_id()
        with quick._lock:
            if not quick.done and quick.running:
                quick._then.append(lambda: self.start(first_finding, session=session))
                return
        self.start(first_finding, session=session)

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

    def start(self, first_finding: str | None = None, *, session: str | None = None) -> None:
        """Compute in a background thread (once), as the calling session (or ``session``; a full run takes a slot
        of `limits.RUNS` for it), ``first_finding``'s pairs first; pages read `progress`, `pairs_done` and
        `provisional` meanwhile. A run the load limits refused is tried again."""
        session = limits.session_id() if session is None else session
        with self._lock:
            if self._thread is None and first_finding in self.config.findings:
                self.first_finding = first_finding
            if isinstance(self._error, limits.LoadLimitError) and not self.running:  # not kept: try again
                self._thread, self._error = None, None
                self._finished.clear()
            if self._thread is not None or self.done:
                return
            self._thread = threading.Thread(
                target=self._compute, kwargs={"session": session}, name="cxrfail-analysis", daemon=True
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
            self._so_far, self._provisional = None, None
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
            progress(fraction, message)
            if self._cancel.is_set():
                raise RunCancelled("cancelled by a visitor")

        def pair_done(pair: PairResult | PairRefusal, so_far: RunSoFar) -> None:
            self._so_far = so_far
            # a new dict, never changed: pages read it from other threads
            self.pairs_done = {**self.pairs_done, (pair.model, pair.finding): self.elapsed_s()}

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
                    on_pair=pair_done,
                    first_finding=self.first_finding,
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
            with self._lock:
                self._finished.set()
                then, self._then = self._then, []
            for start in then:
                start()


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


def analysis(sel: Selection | None, *, first_screen: bool = False, complete: bool = False) -> AnalysisResult | None:
    """The analysis of the selection; while it computes, the pairs done so far, or None (or when it cannot
    run: one message, no traceback). Runs compute in background threads: leaving a page never stops or blocks
    on them.

    While the run computes (its pairs of the sidebar's finding first), a page gets a provisional result
    (`AnalysisResult.provisional`: the pairs done so far, ``missing`` the others) as soon as a pair of the
    sidebar's finding is done, under a panel that says so, updates itself (pairs done, time left, Cancel) and
    reruns the page as each further pair of that finding arrives and when the run is done; before that, None
    and the panel says what the page waits for and the time left.

    ``first_screen``: a page that needs only performance, outcomes, subgroup rates and regression (Overview,
    Subgroups) and every model of the sidebar's finding: until the full run has them, the quick "core" run of
    that finding (seconds; waited for inline). ``complete``: a page that needs every pair (Export) gets the
    full result only (None and the panel until then).
    """
    sel = widgets.require_selection(sel)
    full = _job_of(sel, FULL_SCOPE)
    shown = dataclasses.replace(sel, findings=(sel.finding,))  # the first screen's quick run: the sidebar's finding
    core = _job_of(shown, CORE_SCOPE)
    full.expect_from(core)  # a rough time left from it, if it runs
    try:
        if full.done:
            return full.result()
        early = None if complete else full.provisional()
        if early is not None and _shows(early, sel, every_model=first_screen):
            full.start(sel.finding)
            _progress_panel(full, sel, shown="provisional")
            return early
        if first_screen:
            # the quick run first, before the full run starts: the full run's start (pickling its inputs for the
            # worker processes) holds the server's GIL for seconds at CheXpert scale and would delay these numbers
            core.start()
            wait_s = min(CORE_INLINE_WAIT_S, max(FIRST_SCREEN_WAIT_S, inline_wait_s())) - core.elapsed_s()
            if not core.wait(max(0.0, wait_s), _keep_alive):  # the models done so far; the rest when it ends
                full.start_after(core, sel.finding)
                early = core.provisional()
                _progress_panel(core, shown, shown="provisional" if early is not None else None)
                return early
            full.start(sel.finding)
            if not full.done:
                result = core.result()
                _progress_panel(full, sel, shown="core")
                return result
        full.start_after(core, sel.finding)  # after the quick run, if one is computing
        # a run that just started may be a read from the disk cache (a second or so): worth a short wait; one
        # that has been computing for longer is not waited for (the panel shows where it is)
        if full.wait(max(0.0, inline_wait_s() - full.elapsed_s()), _keep_alive):
            return full.result()
        return _provisional_or_panel(full, sel, first_screen=first_screen, complete=complete)
    except CxrfailInputError as exc:
        log.info("analysis refused: %s", exc)
        st.error(f"**The analysis cannot run on this selection.** {exc}")
        return None
    except RunCancelled:  # the panel says so and offers to start it again, below the pairs done before
        return _provisional_or_panel(full, sel, first_screen=first_screen, complete=complete)


def _provisional_or_panel(
    job: AnalysisJob, sel: Selection, *, first_screen: bool, complete: bool
) -> AnalysisResult | None:
    """The run's provisional result when it already shows what the page needs (its finding's pairs; every model
    of it on a first screen), under the progress panel; else only the panel (None). A page that needs every pair
    (``complete``) always gets the panel."""
    early = None if complete else job.provisional()
    if early is not None and _shows(early, sel, every_model=first_screen):
        _progress_panel(job, sel, shown="provisional")
        return early
    _progress_panel(job, sel, complete=complete)
    return None


def _shows(result: AnalysisResult, sel: Selection, *, every_model: bool) -> bool:
    """Whether a provisional ``result`` has what a page of ``sel`` shows: a pair of the sidebar's finding (its
    model picker offers the models done), or with ``every_model`` every model's."""
    done = [(model, sel.finding) in result.pairs or (model, sel.finding) in result.refused for model in sel.models]
    return all(done) if every_model else any(done)


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


#: What a page does with the run's pairs, by what it shows (`progress_text`, `_progress_panel`).
_PAGE_PLANS = {
    "provisional": "shown now; the page refreshes as more pairs finish",
    "core": "shown from the quick first run; the page shows the full run when it ends",
    "waiting": "the page shows them as soon as the first is done",
    "complete": "this page needs every pair and shows them when the run ends",
    "quick": "the page shows every model when this quick run is done",
}


def progress_text(job: AnalysisJob, finding: str | None = None, shown: str = "waiting") -> str:
    """One line: pairs done of all, time so far, time left (from the pairs done), and the pairs of the
    page's finding done, with what the page does with them (``shown``: a key of `_PAGE_PLANS`)."""
    pairs_done = job.pairs_done
    n_done, n_all = len(pairs_done), len(job.pairs)
    quick = job._quick
    text = f"{n_done} of {n_all} model × finding pairs done"
    if job.started_at is None and quick is not None and quick.running:
        text += f"; the run starts when the quick first run is done ({len(quick.pairs_done)} of {len(quick.pairs)})"
    else:
        text += f" in {_duration(job.elapsed_s())}"
    eta = job.eta_s()
    if eta is None:
        text += "; the time left is estimated once the first pair is done"
    elif job.eta_is_rough:
        text += f"; about {_duration(eta)} left (rough, from the quick first run, until the first pair is done)"
    else:
        text += f"; about {_duration(eta)} left"
    mine = [pair for pair in job.pairs if pair[1] == finding]
    if mine:
        ready = [model for model, _ in mine if (model, finding) in pairs_done]
        text += (
            f". {finding}{' (computed first)' if len(job.config.findings) > 1 else ''}: "
            f"{len(ready)} of {len(mine)} models done"
            + (f" ({', '.join(ready)})" if ready else "")
            + f"; {_PAGE_PLANS[shown]}"
        )
    return text + "."


def _progress_panel(job: AnalysisJob, sel: Selection, *, shown: str | None = None, complete: bool = False) -> None:
    """The run's progress, redrawn every `PROGRESS_REFRESH_S` by itself (a fragment): a bar, pairs done, time
    left, a Cancel button. ``shown``: what the page shows meanwhile: "provisional" (the pairs done so far), "core"
    (the quick first run) or None (nothing yet; ``complete``: the page needs every pair). The page reruns when
    the run is done, and (unless it needs every pair or shows the quick run) as each pair of its finding arrives."""
    plan = shown or ("complete" if complete else "waiting")
    quick = job.scope == CORE_SCOPE  # the first screen's quick run: the page reruns when it is done
    # a new pair of the page's finding changes what it shows
    watch = plan in ("provisional", "waiting") and not quick
    seen = job.done_of(sel.finding)
    if quick:
        what = (
            f"The quick first run of {sel.finding} (performance, subgroup rates, regression): "
            + ("the models done so far are shown, " if plan == "provisional" else "")
            + "the page shows every model when it is done, then the full analysis starts"
        )
    elif plan == "core":
        what = (
            f"Shown: {sel.finding} from a quick first run. The full analysis (every finding; identifiers, "
            "flipping, SHAP, label audit) runs in the background"
        )
    elif plan == "provisional":
        what = "Provisional, from the pairs done so far. The full analysis runs in the background"
    else:
        what = "Running the analysis this page needs"

    @st.fragment(run_every=None if job.cancelled else PROGRESS_REFRESH_S)
    def panel() -> None:
        if (job.done and not job.cancelled) or (watch and job.done_of(sel.finding) > seen):
            st.rerun()  # the whole page, now with its result or its new pairs
        with st.container(border=True):
            if plan == "provisional" and not job.cancelled:
                eta = job.eta_s()
                st.markdown(
                    f"**Provisional: {len(job.pairs_done)} of {len(job.pairs)} pairs done"
                    + (f", about {_duration(eta)} left" if eta is not None else "")
                    + (
                        "; this page refreshes when they are all done.**"
                        if quick
                        else "; this page refreshes as more pairs finish.**"
                    )
                )
            st.markdown(f"**{_status_label(what, sel)}**")
            if job.cancelled:
                st.warning(
                    "The analysis was cancelled."
                    + (" The numbers shown are from the pairs done before." if plan == "provisional" else "")
                )
                if st.button("Start it again", key="run_restart"):
                    job.restart()
                    st.rerun()
                return
            fraction, message = job.progress
            st.progress(float(min(max(fraction, 0.0), 1.0)), text=message)
            st.caption(progress_text(job, sel.finding, "quick" if quick else plan))
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


class _Refit:
    """One pair's identifier refitted for SHAP (`AnalysisResult.refit_identifier`, about a second on the demo) in
    a background thread, started once: the Explain page waits a moment for it (`REFIT_WAIT_SHARE` of the pages'
    inline wait), then shows a panel that reruns the page when it is ready, so a page switch never waits for a
    refit (during a run it competes with the run for the CPU)."""

    def __init__(self, compute: Callable[[], PairIdentifier]) -> None:
        self._compute, self._done = compute, threading.Event()
        self.value: PairIdentifier | None = None
        self.error: Exception | None = None
        threading.Thread(target=self._run, name="cxrfail-refit", daemon=True).start()

    def _run(self) -> None:
        try:
            self.value = self._compute()
        except Exception as exc:  # shown to the page as one line; the traceback goes to the log
            log.exception("refitting the identifier failed")
            self.error = exc
        finally:
            self._done.set()

    def wait(self, timeout_s: float) -> PairIdentifier | None:
        """The refitted identifier, or None when it is not ready within ``timeout_s``; a failure is raised."""
        if not self._done.wait(timeout_s):
            return None
        if self.error is not None:
            raise self.error
        return self.value


#: Share of the pages' inline wait (`inline_wait_s`) the Explain page waits for its identifier's refit.
REFIT_WAIT_SHARE = 0.5


@st.cache_resource(max_entries=16, show_spinner=False)
def _refit(token: str, model: str, finding: str, _result: AnalysisResult, _dataset: Dataset) -> _Refit:
    return _Refit(
        lambda: _result.refit_identifier(model, finding, _dataset.cohort, [_dataset.model(n) for n in _result.models])
    )


def explain_image(token: str, model: str, finding: str, image_id: str, result: AnalysisResult, dataset: Dataset):
    """(long SHAP rows of one image, base value, scale, refit gap) from the pair's refitted identifier; or None
    while the identifier is refitted in the background (a panel then says so and reruns the page when it is
    ready)."""
    refit = _refit(token, model, finding, result, dataset)
    identifier = refit.wait(REFIT_WAIT_SHARE * inline_wait_s())
    if identifier is None:

        @st.fragment(run_every=PROGRESS_REFRESH_S)
        def waiting() -> None:
            if refit.wait(0) is not None:
                st.rerun()
            st.info("Refitting the identifier on the calibration split for SHAP; the explanation appears here.")

        waiting()
        return None
    return _explanation(token, model, finding, image_id, identifier)


@st.cache_data(max_entries=512, show_spinner=False)
def _explanation(token: str, model: str, finding: str, image_id: str, _identifier: PairIdentifier):
    from cxrfail.analysis.explain import to_long

    _, attrs = _identifier.explain(image_id)
    return to_long(attrs, model=model, finding=finding), float(attrs.base_value), attrs.scale, _identifier.refit_gap


@st.cache_data(max_entries=256, show_spinner="Cutting the test split by that column…")
def rates_by(token: str, model: str, finding: str, column: str, _result: AnalysisResult, _table):
    """`AnalysisResult.rates_by` for any cohort column (patient-clustered intervals, as the run's); ``token``
    (`run_token`) identifies the run and its cohort table."""
    return _result.rates_by(model, finding, _table, column)
