"""Streamlit-side helpers shared by ``app.py`` and every page: the data registry, the shared sidebar selection,
cached analysis runs and small rendering helpers. Pages stay thin: read `selection()`, call `get_run()`,
render with `cxrfail.figures`.

Caching, three layers:
- the library's on-disk cache (``$CXRFAIL_CACHE_DIR``, default ``~/.cache/cxrfail``): a restart or a second
  visitor never recomputes an analysis run with the same inputs and config;
- `st.cache_resource`: the demo data and a process-wide store of analysis runs (`RunStore`), shared by every
  session, so a rerun (a widget move) costs a dictionary lookup; each `Run` memoises its derived tables,
  figures and live flip evaluations;
- `st.session_state`: what one visitor loaded or computed (uploaded data, inference results).

Environment variables (all optional):
- ``CXRFAIL_DEMO_MODELS``: comma-separated demo model names selected at start (default: all four).
- ``CXRFAIL_DEMO_FINDINGS``: comma-separated findings analysed at start (default: the five competition tasks).
- ``CXRFAIL_DEMO_CONFIG``: JSON object of `AnalysisConfig` overrides for every run, e.g.
  ``{"n_bootstrap": 200, "shap_max_samples": 100}`` (tests and quick looks).
- ``CXRFAIL_FLIP_BOOTSTRAP``: bootstrap replicates of the live flip evaluation (default 2000).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from cxrfail import figures
from cxrfail.cache import hash_frame
from cxrfail.cohort import Cohort
from cxrfail.errors import CxrfailInputError
from cxrfail.findings import APPROXIMATE_FINDINGS
from cxrfail.predictions import ModelPredictions

ROOT = Path(__file__).resolve().parents[1]
DEMO_KEY = "demo"
RUN_STORE_SIZE = 6
DEFAULT_FLIP_BOOTSTRAP = 2000

# session_state keys (non-widget keys keep their value across pages)
DATASETS = "cxrfail_datasets"  # dict key -> Dataset loaded in this session
PENDING_DATASET = "cxrfail_pending_dataset"  # select this dataset on the next run
PENDING_MODELS = "cxrfail_pending_models"  # ... with these models
PICKED_IMAGE = "cxrfail_picked_image"  # image chosen on Cases (or Explain)
IDENTIFIER = "cxrfail_identifier"  # (learner, feature_set) chosen on Identifiers
UPLOAD_DIR = "cxrfail_upload_dir"

ATTRIBUTION = (
    "Radiographs and labels: NIH Clinical Center, ChestX-ray14 (Wang et al., “ChestX-ray8”, CVPR 2017). "
    "Predictions: reproduce-chexnet (J. Zech) and its fork reproduce-chexnet-nih-chexphoto, BSD-3-Clause. "
    "Method: CheXbreak (Chen et al., MLHC 2021). A research tool, not for clinical use."
)


# ------------------------------------------------------------------------------------------------ router


def ensure_router(*, entry: bool = False) -> None:
    """Make sure ``app.py`` (sidebar + `st.navigation`) frames every page.

    Because the pages live in a folder named ``pages/``, Streamlit starts in its legacy multipage mode, in
    which a URL such as ``/flip`` runs ``pages/flip.py`` alone, without ``app.py``, until some run has called
    `st.navigation` (and `AppTest` starts every run in that mode). ``app.py`` calls this with ``entry=True``:
    it switches the process to `st.navigation` routing. A page calls it first thing: run in legacy mode, it
    switches too, runs ``app.py`` in place (which frames and runs the requested page) and stops, so the same
    run (with its widget events, e.g. a button click) is served through ``app.py``.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    if entry:
        return
    import runpy

    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
    st.stop()


# ------------------------------------------------------------------------------------------------- data


_FINDINGS_MEMO: dict[tuple, tuple[str, ...]] = {}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A cohort with the models predicted on it; immutable, identified by a content hash (``key``).

    ``inputs``: files it was read from (paths, or (name, bytes) of uploads) for export manifests.
    """

    key: str
    label: str
    cohort: Cohort
    models: tuple[ModelPredictions, ...]
    inputs: tuple = ()
    notes: tuple[str, ...] = ()

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(model.name for model in self.models)

    def model(self, name: str) -> ModelPredictions:
        return next(model for model in self.models if model.name == name)

    def findings(self, model_names: Sequence[str] | None = None) -> tuple[str, ...]:
        """Findings with labels in the cohort (some positive) and probabilities from every chosen model."""
        token = (self.key, None if model_names is None else tuple(model_names))
        if token not in _FINDINGS_MEMO:
            _FINDINGS_MEMO[token] = self._findings(model_names)
        return _FINDINGS_MEMO[token]

    def _findings(self, model_names: Sequence[str] | None) -> tuple[str, ...]:
        chosen = [m for m in self.models if model_names is None or m.name in model_names]
        table = self.cohort.table
        out = []
        for finding in self.cohort.findings:
            if finding == "No Finding" or finding not in table.columns:
                continue
            if all(finding in m.probabilities.columns for m in chosen) and (table[finding] == 1).any():
                out.append(finding)
        return tuple(out)

    def with_model(self, model: ModelPredictions, note: str | None = None) -> Dataset:
        """A new dataset with ``model`` added (or replacing a model of the same name)."""
        models = tuple(m for m in self.models if m.name != model.name) + (model,)
        key = _digest(self.key, model.name, hash_frame(model.probabilities))
        label = f"{self.label} + {model.name}"
        return Dataset(key=key, label=label, cohort=self.cohort, models=models, inputs=self.inputs,
                       notes=self.notes + ((note,) if note else ()))


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def dataset_from(cohort: Cohort, models: Sequence[ModelPredictions], label: str, inputs: Sequence = (),
                 key: str | None = None) -> Dataset:
    key = key or _digest(hash_frame(cohort.table), cohort.unit,
                         *[(m.name, hash_frame(m.probabilities)) for m in models])
    return Dataset(key=key, label=label, cohort=cohort, models=tuple(models), inputs=tuple(inputs))


@st.cache_resource(show_spinner="Loading the demo data (NIH ChestX-ray14 test split)…")
def demo_dataset() -> Dataset:
    """The demo: NIH test split, every shared prediction file, the 621 radiographs and device reads."""
    from cxrfail import demo
    from cxrfail.cohort import nih_metadata_path

    models = demo.load_demo_predictions()
    cohort = demo.load_demo_cohort(models)
    folder = demo.demo_dir()
    inputs = (nih_metadata_path(), *demo.demo_prediction_files(), folder / "devices.csv")
    return dataset_from(cohort, models, "NIH ChestX-ray14 demo", inputs, key=DEMO_KEY)


def datasets() -> dict[str, Dataset]:
    """Every dataset this session can choose: the demo (when its files are present) and what it loaded."""
    out: dict[str, Dataset] = {}
    try:
        out[DEMO_KEY] = demo_dataset()
    except CxrfailInputError as exc:
        st.session_state["cxrfail_demo_error"] = str(exc)
    out.update(st.session_state.get(DATASETS, {}))
    return out


def register_dataset(dataset: Dataset, *, select: bool = True, models: Sequence[str] | None = None) -> None:
    """Keep ``dataset`` in this session and (by default) select it, with ``models`` (default: all), on the
    next run."""
    loaded = dict(st.session_state.get(DATASETS, {}))
    loaded[dataset.key] = dataset
    st.session_state[DATASETS] = loaded
    if select:
        st.session_state[PENDING_DATASET] = dataset.key
        st.session_state[PENDING_MODELS] = list(models) if models is not None else list(dataset.model_names)


def upload_dir() -> Path:
    """A folder for this session's uploaded files (loaders read paths)."""
    if UPLOAD_DIR not in st.session_state:
        st.session_state[UPLOAD_DIR] = tempfile.mkdtemp(prefix="cxrfail-upload-")
    return Path(st.session_state[UPLOAD_DIR])


# ---------------------------------------------------------------------------------------------- config


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _config_overrides() -> dict:
    return _parse_overrides(os.environ.get("CXRFAIL_DEMO_CONFIG", "").strip())


@functools.cache
def _parse_overrides(text: str) -> dict:
    if not text:
        return {}
    overrides = json.loads(text)
    if not isinstance(overrides, dict):
        raise ValueError("CXRFAIL_DEMO_CONFIG must be a JSON object of AnalysisConfig fields")
    return {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}


def base_config():
    """`AnalysisConfig` defaults with ``CXRFAIL_DEMO_CONFIG`` applied."""
    from cxrfail.analysis.pipeline import AnalysisConfig

    return dataclasses.replace(AnalysisConfig(), **_config_overrides())


def default_findings(dataset: Dataset, model_names: Sequence[str]) -> list[str]:
    available = dataset.findings(model_names)
    wanted = _env_list("CXRFAIL_DEMO_FINDINGS") or list(base_config().findings)
    chosen = [f for f in wanted if f in available]
    return chosen or list(available[:5])


def default_models(dataset: Dataset) -> list[str]:
    """All the dataset's models; for the demo, those of ``CXRFAIL_DEMO_MODELS`` when set."""
    if dataset.key != DEMO_KEY:
        return list(dataset.model_names)
    wanted = [m for m in _env_list("CXRFAIL_DEMO_MODELS") if m in dataset.model_names]
    return wanted or list(dataset.model_names)


def flip_bootstrap() -> int:
    return int(os.environ.get("CXRFAIL_FLIP_BOOTSTRAP", DEFAULT_FLIP_BOOTSTRAP))


# ------------------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose; every page reads it."""

    dataset: Dataset
    models: tuple[str, ...]
    findings: tuple[str, ...]  # analysed
    finding: str  # shown
    seed: int
    learner: str
    feature_set: str
    threshold_method: str

    @property
    def config(self):
        return dataclasses.replace(
            base_config(), findings=self.findings, seed=self.seed, learners=(self.learner,),
            feature_sets=(self.feature_set,), threshold_method=self.threshold_method,
        )

    @property
    def model_objects(self) -> tuple[ModelPredictions, ...]:
        return tuple(self.dataset.model(name) for name in self.models)

    @property
    def run_key(self) -> tuple:
        return (self.dataset.key, self.models, self.config)


def identifier_choice() -> tuple[str, str]:
    config = base_config()
    return st.session_state.get(IDENTIFIER, (config.learners[0], config.feature_sets[0]))


def set_identifier_choice(learner: str, feature_set: str) -> None:
    st.session_state[IDENTIFIER] = (learner, feature_set)


def _reset_models() -> None:
    for key in ("sel_models", "sel_findings", "sel_finding"):
        st.session_state.pop(key, None)


def sidebar() -> Selection | None:
    """The shared sidebar: cohort, models, finding, seed (+ analysis settings). Returns None without data."""
    available = datasets()
    pending = st.session_state.pop(PENDING_DATASET, None)
    pending_models = st.session_state.pop(PENDING_MODELS, None)
    if pending in available:
        st.session_state["sel_dataset"] = pending
        _reset_models()
        if pending_models:
            st.session_state["sel_models"] = [m for m in pending_models if m in available[pending].model_names]
    if st.session_state.get("sel_dataset") not in available:
        st.session_state.pop("sel_dataset", None)
        _reset_models()
    with st.sidebar:
        if not available:
            st.warning("No data loaded. " + st.session_state.get("cxrfail_demo_error", "")
                       + " Load a cohort and prediction files on the Data page.")
            _footer()
            return None
        key = st.selectbox("Cohort", list(available), format_func=lambda k: available[k].label, key="sel_dataset",
                           on_change=_reset_models, help="Add your own on the Data page")
        dataset = available[key]
        names = list(dataset.model_names)
        if "sel_models" not in st.session_state or not set(st.session_state["sel_models"]) <= set(names):
            st.session_state["sel_models"] = default_models(dataset)
        models = st.multiselect("Models", names, key="sel_models",
                                help="The analysis runs on the images every chosen model has predicted")
        if not models:
            st.info("Choose at least one model.")
            _footer()
            return None
        findings_available = list(dataset.findings(models))
        if ("sel_findings" not in st.session_state
                or not set(st.session_state["sel_findings"]) <= set(findings_available)):
            st.session_state["sel_findings"] = default_findings(dataset, models)
        findings_chosen = st.session_state["sel_findings"] or default_findings(dataset, models)
        if st.session_state.get("sel_finding") not in findings_chosen:
            st.session_state["sel_finding"] = findings_chosen[0]
        finding = st.selectbox("Finding", findings_chosen, key="sel_finding",
                               format_func=figures.finding_label)
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="sel_seed",
                               value=int(base_config().seed),
                               help="Seeds the patient split, the cross-validation folds and the bootstrap")
        with st.expander("Analysis settings"):
            findings = st.multiselect("Findings analysed", findings_available, key="sel_findings",
                                      format_func=figures.finding_label,
                                      help="Every page can show these; changing them reruns the analysis")
            threshold = st.selectbox("Operating threshold", ("max_f1", "youden", "fixed"), key="sel_threshold",
                                     index=("max_f1", "youden", "fixed").index(base_config().threshold_method),
                                     help="Chosen per model and finding on the calibration split")
        learner, feature_set = identifier_choice()
        oracle_tag = " **[oracle]**" if _is_oracle(feature_set) else ""
        st.caption(f"Identifier: `{learner}` on `{feature_set}`{oracle_tag} (change it on Identifiers)")
        notes = [APPROXIMATE_FINDINGS[f] for f in [finding] if f in APPROXIMATE_FINDINGS]
        for note in notes:
            st.caption(f"*{finding}: {note}")
        _footer()
    if not findings:
        findings = findings_chosen
    if finding not in findings:
        finding = findings[0]
    return Selection(dataset=dataset, models=tuple(models), findings=tuple(findings), finding=finding,
                     seed=int(seed), learner=learner, feature_set=feature_set, threshold_method=threshold)


def _footer() -> None:
    st.divider()
    st.caption(ATTRIBUTION)


def _is_oracle(feature_set: str) -> bool:
    try:
        from cxrfail.analysis.identifiers import is_oracle

        return bool(is_oracle(feature_set))
    except (ImportError, ValueError):
        return "findings" in feature_set


def selection() -> Selection | None:
    """The selection the sidebar made in this run (app.py stores it before running the page)."""
    return st.session_state.get("_cxrfail_selection")


# ------------------------------------------------------------------------------------------------ runs


class Run:
    """One analysis result plus memoised views of it (shared by every session; never mutated after build)."""

    def __init__(self, key: tuple, result, selection: Selection) -> None:
        self.key = key
        self.result = result
        self.dataset = selection.dataset
        self.config = result.config
        self._memo: dict = {}
        self._lock = threading.Lock()
        self._flip_cache: OrderedDict = OrderedDict()

    def memo(self, name: str, build: Callable, *args):
        """``build(*args)`` computed once per (name, args) for this run."""
        token = (name, *args)
        if token not in self._memo:
            value = build(*args)
            with self._lock:
                self._memo.setdefault(token, value)
        return self._memo[token]

    # tables ----------------------------------------------------------------------------------------------
    def _pairs(self) -> dict:
        outcomes = self.result.outcomes
        return {key: frame for key, frame in outcomes.groupby(["model", "finding"], sort=False)}

    def outcomes(self, model: str, finding: str, split: str | None = None) -> pd.DataFrame:
        frame = self.memo("pairs", self._pairs).get((model, finding))
        if frame is None:
            return self.result.outcomes.iloc[0:0]
        if split is None:
            return frame
        return self.memo("split", lambda m, f, s: frame.loc[frame["split"] == s], model, finding, split)

    def table(self, name: str, **where) -> pd.DataFrame:
        def build(name, items):
            frame = getattr(self.result, name)
            mask = np.ones(len(frame), dtype=bool)
            for column, value in items:
                mask &= (frame[column] == value).to_numpy()
            return frame.loc[mask]

        return self.memo("table", build, name, tuple(sorted(where.items())))

    def overall(self) -> pd.DataFrame:
        return self.memo("overall", lambda: figures.overall_misclassification(self.result.outcomes))

    def chosen_flip(self, model: str, finding: str) -> dict | None:
        rows = self.table("flip", model=model, finding=finding)
        return None if rows.empty else rows.iloc[0].to_dict()

    def evaluate_flip(self, model: str, finding: str, tau: float, n_bootstrap: int):
        """`cxrfail.analysis.flip.evaluate_flip` on the test rows at ``tau`` (memoised, last 256 taus)."""
        token = (model, finding, round(float(tau), 6), int(n_bootstrap))
        cached = self._flip_cache.get(token)
        if cached is not None:
            return cached
        from cxrfail.analysis.flip import evaluate_flip

        rows = self.outcomes(model, finding, "test")
        arrays = self.memo("flip_arrays", lambda m, f: (
            rows["label"].to_numpy(dtype=int), rows["prediction"].to_numpy(dtype=int),
            rows["identifier_probability"].to_numpy(dtype=float), rows["patient_id"].to_numpy()), model, finding)
        evaluation = evaluate_flip(*arrays, float(tau), n_bootstrap=n_bootstrap, seed=int(self.config.seed))
        with self._lock:
            self._flip_cache[token] = evaluation
            while len(self._flip_cache) > 256:
                self._flip_cache.popitem(last=False)
        return evaluation


    # per-image explanations ---------------------------------------------------------------------------------
    def _identifier(self, model: str, finding: str):
        """Refit the run's flip identifier exactly as the pipeline does (first learner and feature set, fitted on
        every calibration row of the pair, seeded), so any image can be explained, not only the SHAP sample.

        Returns (fitted, features of every row of the pair, calibration mask, largest difference between the
        refit's test probabilities and the run's; ~0 when the refit reproduces the run)."""
        from cxrfail.analysis.identifiers import build_features, fit_identifier, predict_identifier

        rows = self.outcomes(model, finding)
        ids = pd.Index(rows["image_id"].to_numpy(), name="image_id")
        table = self.dataset.cohort.table.loc[ids]
        probabilities = {name: self.dataset.model(name).probabilities.reindex(ids) for name in self.result.models}
        features = build_features(table, probabilities, model, finding, self.config.feature_sets[0])
        calibration = rows["split"].to_numpy() == "calibration"
        fitted = fit_identifier(features.loc[calibration], rows["misclassified"].to_numpy(dtype=int)[calibration],
                                self.config.learners[0], int(self.config.seed))
        refit = predict_identifier(fitted, features.loc[~calibration])
        gap = float(np.max(np.abs(refit - rows["identifier_probability"].to_numpy(dtype=float)[~calibration]))) \
            if (~calibration).any() else 0.0
        return fitted, features, calibration, gap

    def explain_image(self, model: str, finding: str, image_id: str):
        """(long SHAP table of one image, base value, scale, refit gap) for any image of the pair."""
        def build(model, finding, image_id):
            from cxrfail.analysis.explain import shap_attributions, to_long

            fitted, features, calibration, gap = self.memo("identifier", self._identifier, model, finding)
            if self.config.learners[0] == "logistic":  # linear SHAP needs the test rows as background
                test = features.loc[~calibration]
                pool = test if image_id in test.index else pd.concat([features.loc[[image_id]], test])
                attrs = shap_attributions(fitted, pool, max_samples=len(pool), seed=int(self.config.seed))
                attrs.values = attrs.values.loc[[image_id]]
                attrs.feature_values = attrs.feature_values.loc[[image_id]]
            else:  # tree SHAP (path-dependent) needs no background
                attrs = shap_attributions(fitted, features.loc[[image_id]], max_samples=1,
                                          seed=int(self.config.seed))
            return to_long(attrs, model=model, finding=finding), float(attrs.base_value), attrs.scale, gap

        return self.memo("explain_image", build, model, finding, image_id)


class RunStore:
    """Process-wide LRU of analysis runs with a lock per key (a second visitor waits for the first run)."""

    def __init__(self, size: int = RUN_STORE_SIZE) -> None:
        self.size = size
        self._runs: OrderedDict[tuple, Run] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: tuple) -> Run | None:
        with self._guard:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
            return run

    def lock(self, key: tuple) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def put(self, key: tuple, run: Run) -> None:
        with self._guard:
            self._runs[key] = run
            self._runs.move_to_end(key)
            while len(self._runs) > self.size:
                old, _ = self._runs.popitem(last=False)
                self._locks.pop(old, None)


@st.cache_resource(show_spinner=False)
def run_store() -> RunStore:
    return RunStore()


def get_run(sel: Selection | None = None) -> Run | None:
    """The analysis of the selection: from memory, else the disk cache, else computed with a progress bar.
    Input errors are shown with `st.error` (no traceback) and give None."""
    sel = sel or selection()
    if sel is None:
        st.info("Choose a cohort and models in the sidebar (or load data on the Data page).")
        return None
    store = run_store()
    key = sel.run_key
    run = store.get(key)
    if run is not None:
        return run
    from cxrfail.analysis.pipeline import run_analysis

    with store.lock(key):
        run = store.get(key)
        if run is not None:
            return run
        n_pairs = len(sel.models) * len(sel.findings)
        with st.status(f"Running the analysis: {len(sel.models)} models × {len(sel.findings)} findings "
                       f"({n_pairs} pairs) on {sel.dataset.cohort.n_rows:,} {sel.dataset.cohort.unit}s",
                       expanded=True) as status:
            bar = st.progress(0.0, text="starting (a finished run is read from the disk cache)")

            def progress(fraction: float, message: str) -> None:
                try:
                    bar.progress(float(min(max(fraction, 0.0), 1.0)), text=message)
                except Exception:  # called from a worker thread without a script context: skip the update
                    pass

            try:
                result = run_analysis(sel.dataset.cohort, list(sel.model_objects), sel.config, progress=progress)
            except CxrfailInputError as exc:
                status.update(label="The analysis cannot run on this selection", state="error", expanded=True)
                st.error(f"{exc}")
                return None
            status.update(label="Analysis ready", state="complete", expanded=False)
        run = Run(key, result, sel)
        store.put(key, run)
    return run


# ------------------------------------------------------------------------------------------- rendering


@st.cache_data(max_entries=4096, show_spinner=False)
def thumbnail(path: str, size: int = 256) -> bytes:
    """A small PNG of a radiograph for grids (the originals are 512 px; a page of them is megabytes)."""
    from io import BytesIO

    from PIL import Image

    with Image.open(path) as image:
        image.thumbnail((size, size))
        out = BytesIO()
        image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def plot(fig, key: str | None = None) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def caveat_lines(findings: Sequence[str] = (), subgroups: Sequence[str] = (), *, oracle: bool = False) -> None:
    for line in figures.caveats(findings, subgroups, oracle=oracle):
        st.caption(line)


def scope_caption(run: Run, what: str = "") -> None:
    summary = run.result.cohort_summary
    unit = summary.get("unit", "image")
    text = (f"Unit of analysis: {unit}. Results on the held-out test split "
            f"({summary.get('n_test', '?'):,} {unit}s; thresholds, identifier and flip threshold chosen on the "
            f"calibration split of {summary.get('n_calibration', '?'):,}).")
    st.caption((what + " " if what else "") + text)


def model_picker(sel: Selection, key: str, label: str = "Model") -> str:
    """A page-local model choice among the sidebar's models."""
    if st.session_state.get(key) not in sel.models:
        st.session_state[key] = sel.models[0]
    return st.selectbox(label, sel.models, key=key)


def rate_table(frame: pd.DataFrame, min_n: int) -> pd.DataFrame:
    """Subgroup rates formatted for display: n, misclassified, rate and CI, insufficient marked."""
    shown = frame[["subgroup", "level", "n", "n_misclassified", "rate", "ci_low", "ci_high", "sufficient"]].copy()
    shown["status"] = np.where(shown["sufficient"].astype(bool), "", figures.insufficient_label(min_n))
    return shown.drop(columns=["sufficient"])


def percent_columns(columns: Sequence[str]) -> dict:
    return {c: st.column_config.NumberColumn(c, format="percent") for c in columns}
