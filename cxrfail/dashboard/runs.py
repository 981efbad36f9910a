"""Analysis runs, live flip evaluations and per-image explanations, shared by every session through
Streamlit's own caches.

- `analysis(sel)`: the run of a selection. `st.cache_resource` holds one `AnalysisJob` per (dataset, models,
  config): the first visitor computes it (from the library's disk cache when a previous process ran it) behind
  a progress bar; later visitors and reruns get the same `AnalysisResult`.
- `flip_at`: `PairResult.evaluate_flip` at a slid tau (`st.cache_data`, keyed by run, pair, tau, replicates).
- `explain_image`: SHAP of one row from the pair's refitted identifier (`st.cache_resource` per pair).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import streamlit as st

from cxrfail.analysis.explain import PairIdentifier, refit_pair_identifier
from cxrfail.analysis.flip import FlipEvaluation
from cxrfail.analysis.pipeline import run_analysis
from cxrfail.analysis.result import AnalysisResult
from cxrfail.cache import hash_parts
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.state import Selection
from cxrfail.errors import CxrfailInputError

RUN_CACHE_SIZE = 6
log = logging.getLogger("cxrfail.dashboard")


class AnalysisJob:
    """One analysis run, computed once (under a lock) by whichever session asks first."""

    def __init__(self, dataset: Dataset, models: tuple[str, ...], config) -> None:
        self.dataset, self.models, self.config = dataset, models, config
        self._lock = threading.Lock()
        self._result: AnalysisResult | None = None

    @property
    def done(self) -> bool:
        return self._result is not None

    def result(self, progress: Callable[[float, str], None]) -> AnalysisResult:
        with self._lock:
            if self._result is None:
                models = [self.dataset.model(name) for name in self.models]
                self._result = run_analysis(self.dataset.cohort, models, self.config,
                                            reference=self.dataset.reference, progress=progress)
            return self._result


def run_token(sel: Selection) -> str:
    """Identifies a run: the dataset's content key, the models and every config value."""
    return hash_parts(sel.dataset.key, list(sel.models), dataclasses.asdict(sel.config))


@st.cache_resource(max_entries=RUN_CACHE_SIZE, show_spinner=False)
def _job(token: str, _dataset: Dataset, _models: tuple[str, ...], _config) -> AnalysisJob:
    return AnalysisJob(_dataset, _models, _config)


def analysis(sel: Selection | None) -> AnalysisResult | None:
    """The analysis of the selection, computed with a progress bar when no session has run it yet. Input
    errors are shown as one message (no traceback) and give None."""
    if sel is None:
        st.info("Choose a cohort and models in the sidebar (or load data on the Data page).")
        return None
    job = _job(run_token(sel), sel.dataset, sel.models, sel.config)
    if job.done:
        return job.result(lambda fraction, message: None)
    n_pairs = len(sel.models) * len(sel.findings)
    cohort = sel.dataset.cohort
    with st.status(f"Running the analysis: {len(sel.models)} models × {len(sel.findings)} findings "
                   f"({n_pairs} pairs) on {cohort.n_rows:,} {cohort.unit}s", expanded=True) as status:
        bar = st.progress(0.0, text="starting (a finished run is read from the disk cache)")

        def progress(fraction: float, message: str) -> None:
            try:
                bar.progress(float(min(max(fraction, 0.0), 1.0)), text=message)
            except Exception:  # a worker thread without a script context: skip the update
                pass

        try:
            result = job.result(progress)
        except CxrfailInputError as exc:
            log.info("analysis refused: %s", exc)
            status.update(label="The analysis cannot run on this selection", state="error", expanded=True)
            st.error(str(exc))
            return None
        status.update(label="Analysis ready", state="complete", expanded=False)
    return result


@st.cache_data(max_entries=2048, show_spinner=False)
def flip_at(token: str, model: str, finding: str, tau: float, n_bootstrap: int, _result: AnalysisResult
            ) -> FlipEvaluation:
    """`AnalysisResult.evaluate_flip` at ``tau`` (test split; exploratory unless tau is the chosen one)."""
    return _result.evaluate_flip(model, finding, tau, n_bootstrap=n_bootstrap)


@st.cache_resource(max_entries=16, show_spinner="Refitting the identifier on the calibration split…")
def _identifier(token: str, model: str, finding: str, _result: AnalysisResult, _dataset: Dataset) -> PairIdentifier:
    probabilities = {name: _dataset.model(name).probabilities for name in _result.models}
    return refit_pair_identifier(_result.pair(model, finding), _dataset.cohort.table, probabilities, _result.config)


@st.cache_data(max_entries=512, show_spinner=False)
def explain_image(token: str, model: str, finding: str, image_id: str, _result: AnalysisResult, _dataset: Dataset):
    """(long SHAP rows of one image, base value, scale, refit gap) from the pair's refitted identifier."""
    from cxrfail.analysis.explain import to_long

    identifier = _identifier(token, model, finding, _result, _dataset)
    _, attrs = identifier.explain(image_id)
    return to_long(attrs, model=model, finding=finding), float(attrs.base_value), attrs.scale, identifier.refit_gap
