"""Datasets the dashboard can analyse: a cohort with the models predicted on it. The demo is shared by every
session (`st.cache_resource`); what a visitor loads or infers lives in their session."""

from __future__ import annotations

import dataclasses
import shutil
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import streamlit as st

from cxrfail.cache import hash_frame, hash_parts
from cxrfail.cohort import Cohort, load_cohort
from cxrfail.dashboard import limits
from cxrfail.errors import CxrfailInputError, PredictionsError
from cxrfail.files import bytes_sha256, cleanup_stale_uploads, file_sha256, new_upload_folder
from cxrfail.predictions import ModelPredictions, check_coverage, load_predictions
from cxrfail.reference import ReferenceLabels, findings_with_reference, load_reference_labels, match_reference
from cxrfail.roots import data_roots, read_under_roots, resolve_under_roots

DEMO_KEY = "demo"
LOADED = "cxrfail_datasets"  # session_state: dict key -> Dataset loaded in this session
PENDING = "cxrfail_pending_dataset"  # session_state: (dataset key, model names) to select on the next run
UPLOAD_DIR = "cxrfail_upload_dir"  # session_state: this session's folder of uploaded files (a `_SessionFolder`)
ORIGINS = "cxrfail_file_origins"  # session_state: private copy path -> (server path it was read from, shown name)
DEMO_ERROR = "cxrfail_demo_error"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A cohort with the models predicted on it; immutable, identified by a content hash (``key``).

    ``inputs``: files it was read from, as manifest records (``{"path", "bytes", "sha256"}``, `input_record`):
    names the browser may see (``upload:<name>``, ``server:<path under its root>``), never a server path.
    ``reference``: a second (expert) label set for some of its rows, or None (see `cxrfail.reference`).
    ``image_root``: the folder every ``image_path`` of the cohort lies in (images are shown from there only).
    """

    key: str
    label: str
    cohort: Cohort
    models: tuple[ModelPredictions, ...]
    inputs: tuple = ()
    notes: tuple[str, ...] = ()
    reference: ReferenceLabels | None = None
    image_root: Path | None = None

    @property
    def reference_findings(self) -> tuple[str, ...]:
        """Findings the label audit can run on (labels in the cohort and the reference)."""
        return () if self.reference is None else findings_with_reference(self.cohort, self.reference)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(model.name for model in self.models)

    def model(self, name: str) -> ModelPredictions:
        return next(model for model in self.models if model.name == name)

    @cached_property
    def _labelled(self) -> tuple[str, ...]:
        table = self.cohort.table
        return tuple(
            f for f in self.cohort.findings if f != "No Finding" and f in table.columns and (table[f] == 1).any()
        )

    def findings(self, model_names: Sequence[str] | None = None) -> tuple[str, ...]:
        """Findings with labels in the cohort (some positive) and probabilities from every chosen model."""
        chosen = [m for m in self.models if model_names is None or m.name in model_names]
        return tuple(f for f in self._labelled if all(f in m.probabilities.columns for m in chosen))

    def with_model(self, model: ModelPredictions, note: str | None = None) -> Dataset:
        """A new dataset with ``model`` added (or replacing a model of the same name)."""
        models = tuple(m for m in self.models if m.name != model.name) + (model,)
        return Dataset(
            key=hash_parts(self.key, model.name, hash_frame(model.probabilities))[:16],
            label=f"{self.label} + {model.name}",
            cohort=self.cohort,
            models=models,
            inputs=self.inputs,
            notes=self.notes + ((note,) if note else ()),
            reference=self.reference,
            image_root=self.image_root,
        )


def dataset_from(
    cohort: Cohort,
    models: Sequence[ModelPredictions],
    label: str,
    inputs: Sequence = (),
    key: str | None = None,
    reference: ReferenceLabels | None = None,
    image_root: Path | None = None,
) -> Dataset:
    key = (
        key
        or hash_parts(
            hash_frame(cohort.table),
            cohort.unit,
            [(m.name, hash_frame(m.probabilities)) for m in models],
            None if reference is None else hash_frame(reference.table),
        )[:16]
    )
    inputs = [item if isinstance(item, dict) else input_record(item) for item in inputs]
    # The image folder as accepted now (resolved once): images are opened only if they really lie inside it,
    # so a folder swapped for a symlink later is refused (`cxrfail.inference.images.read_cohort_image`).
    return Dataset(
        key=key,
        label=label,
        cohort=cohort,
        models=tuple(models),
        inputs=tuple(inputs),
        reference=reference,
        image_root=None if image_root is None else Path(image_root).resolve(),
    )


@st.cache_resource(show_spinner="Loading the demo data (NIH ChestX-ray14 test split)…")
def demo_dataset() -> Dataset:
    """The demo: NIH test split, every shared prediction file, the 621 radiographs and device reads, and Google's
    expert labels as the reference standard."""
    from cxrfail import demo
    from cxrfail.cohort import nih_metadata_path

    data = demo.load_demo()
    inputs = (
        nih_metadata_path(),
        *demo.demo_prediction_files(),
        demo.demo_dir() / "devices.csv",
        *data.reference.sources,
    )
    return dataset_from(
        data.cohort,
        list(data.predictions),
        "NIH ChestX-ray14 demo",
        inputs,
        key=DEMO_KEY,
        reference=data.reference,
        image_root=demo.demo_dir() / "images",
    )


def available() -> dict[str, Dataset]:
    """Every dataset this session can choose: the demo (when its files are present) and what it loaded."""
    out: dict[str, Dataset] = {}
    try:
        out[DEMO_KEY] = demo_dataset()
    except CxrfailInputError as exc:
        st.session_state[DEMO_ERROR] = str(exc)
    out.update(st.session_state.get(LOADED, {}))
    return out


def register(dataset: Dataset, *, models: Sequence[str] | None = None) -> None:
    """Keep ``dataset`` in this session and select it, with ``models`` (default: all), on the next run."""
    st.session_state[LOADED] = {**st.session_state.get(LOADED, {}), dataset.key: dataset}
    st.session_state[PENDING] = (dataset.key, list(models) if models is not None else list(dataset.model_names))


def remove(key: str) -> None:
    loaded = dict(st.session_state.get(LOADED, {}))
    loaded.pop(key, None)
    st.session_state[LOADED] = loaded


@st.cache_resource(show_spinner=False)
def clear_stale_uploads() -> int:
    """Once per server process: remove the upload folders earlier processes left (no session outlives a
    restart). Returns how many were removed."""
    return cleanup_stale_uploads(older_than_s=0)


class _SessionFolder:
    """A session's private folder; removed when the session's state is dropped (the session ended), and with
    the server's private temporary folder at the latest (`cxrfail.files.use_private_temp_root`)."""

    def __init__(self) -> None:
        self.path = new_upload_folder()
        weakref.finalize(self, shutil.rmtree, self.path, True)

    def usage(self) -> tuple[int, int]:
        """(files, bytes) this session holds."""
        files = [f for f in self.path.rglob("*") if f.is_file()]
        return len(files), sum(f.stat().st_size for f in files)


def _session_folder() -> _SessionFolder:
    if not isinstance(st.session_state.get(UPLOAD_DIR), _SessionFolder):
        st.session_state[UPLOAD_DIR] = _SessionFolder()
    return st.session_state[UPLOAD_DIR]


def upload_dir() -> Path:
    """A private folder for this session's uploaded files (loaders read paths); it goes with the session."""
    return _session_folder().path


def _keep(name: str, data: bytes) -> Path:
    """Write ``data`` as ``name`` into this session's folder, within the session's upload bounds
    (`limits.check_upload`); the path of the copy."""
    folder = _session_folder()
    limits.check_upload(*folder.usage(), len(data))
    target = folder.path / hash_parts(name, len(data), bytes_sha256(data))[:16]
    target.mkdir(parents=True, exist_ok=True)
    path = target / Path(name).name
    path.write_bytes(data)
    return path


def save_upload(upload) -> tuple[Path, dict]:
    """Write an uploaded file into this session's folder; return its path and its manifest record."""
    data = upload.getvalue()
    return _keep(upload.name, data), {"path": f"upload:{upload.name}", "bytes": len(data), "sha256": bytes_sha256(data)}


def _shown_name(path: Path) -> str:
    """How a server file is named to the browser: relative to the data root it lies under, else its name."""
    for root in data_roots():
        if path.is_relative_to(root):
            return f"{root.name}/{path.relative_to(root).as_posix()}"
    return path.name


def input_record(item) -> dict:
    """A manifest record for an input: a server path (named by `_shown_name`; this session's private copies by
    the file they copy) or ``(name, bytes)`` of an upload."""
    if isinstance(item, tuple):
        name, data = item
        return {"path": f"upload:{name}", "bytes": len(data), "sha256": bytes_sha256(data)}
    path = Path(item)
    origins = _origins() if _in_session() else {}
    shown = origins[str(path)][1] if str(path) in origins else _shown_name(path.resolve())
    try:
        return {"path": f"server:{shown}", "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    except OSError:
        return {"path": f"server:{shown}", "bytes": None, "sha256": None}


def _in_session() -> bool:
    return limits.session_id() != "server"


def _origins() -> dict[str, tuple[Path, str]]:
    return st.session_state.setdefault(ORIGINS, {})


def missing_findings(dataset: Dataset, model_names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Model → findings the cohort labels that the model has no probabilities for (with that model selected,
    those findings are not offered)."""
    out = {}
    for name in model_names:
        lacking = tuple(f for f in dataset._labelled if f not in dataset.model(name).probabilities.columns)
        if lacking:
            out[name] = lacking
    return out


def add_models(
    dataset: Dataset,
    files: Sequence[Path],
    names: Sequence[str] | None,
    id_column: str | None,
    min_overlap: float,
    inputs: Sequence = (),
) -> Dataset:
    """``dataset`` with the models of these prediction files added (its cohort, images, device reads and
    reference labels kept). Refused, with the reason, when a name is taken or too few ids are in its cohort."""
    if not files:
        raise PredictionsError("no prediction files given", fix="Upload at least one prediction CSV or give a path")
    models = load_predictions(list(files), names, id_column)
    taken = [m.name for m in models if m.name in dataset.model_names]
    if taken:
        raise PredictionsError(
            f"{dataset.label} already has a model named {', '.join(map(repr, taken))}",
            fix="Give the new model another name in 'Model names'",
        )
    coverage = {c.model: c for c in check_coverage(dataset.cohort, models, min_overlap)}
    for model in models:
        c = coverage[model.name]
        dataset = dataset.with_model(
            model, note=f"{model.name}: {c.n_matched:,} of {c.n_predictions:,} predicted ids are in the cohort"
        )
    return dataclasses.replace(dataset, inputs=(*dataset.inputs, *inputs))


@dataclass(frozen=True)
class DatasetRequest:
    """What the Data page's form asks to load: prediction files (paths), cohort kind and file, options."""

    prediction_files: tuple[Path, ...]
    model_names: tuple[str, ...] | None
    kind: str
    cohort_file: Path | None
    column_map: dict
    uncertain_policy: str
    unit: str
    image_dir: Path | None
    devices_csv: Path | None
    label: str
    inputs: tuple = ()
    reference_file: Path | None = None
    reference_column_map: dict | None = None
    id_column: str | None = None


def load_dataset(request: DatasetRequest, min_overlap: float) -> Dataset:
    """Read and validate the requested files with the library's loaders (the same as the CLI's). Paths typed on
    the server must already be resolved under the data roots (`server_path`)."""
    if not request.prediction_files:
        raise PredictionsError("no prediction files given", fix="Upload at least one prediction CSV or give a path")
    try:
        return _load_dataset(request, min_overlap)
    except CxrfailInputError as exc:  # name typed files' private copies as typed (the page names uploads)
        text = str(exc)
        for copy, (_, shown) in _origins().items():
            text = text.replace(copy, shown)
        if text == str(exc):
            raise
        raise type(exc)(text) from None


def _load_dataset(request: DatasetRequest, min_overlap: float) -> Dataset:
    origins = _origins()
    models = load_predictions(request.prediction_files, request.model_names, request.id_column)
    cohort = load_cohort(
        request.kind,
        request.cohort_file,
        column_map=request.column_map,
        uncertain_policy=request.uncertain_policy,
        unit=request.unit,
        image_dir=request.image_dir,
        devices_csv=request.devices_csv,
        prediction_ids=sorted({i for model in models for i in model.probabilities.index}),
    )
    check_coverage(cohort, models, min_overlap)
    reference = None
    if request.reference_file is not None:
        reference = match_reference(
            load_reference_labels(request.reference_file, column_map=request.reference_column_map), cohort
        )
    inputs = [item if isinstance(item, dict) else input_record(item) for item in request.inputs]
    private = upload_dir()
    sources = [
        source
        for source in cohort.sources  # an upload is recorded already, by its upload name
        if source in origins or not Path(source).is_relative_to(private)
    ]
    inputs += [record for record in map(input_record, sources) if record not in inputs]
    cohort_origin = origins.get(str(request.cohort_file), (request.cohort_file, None))[0]
    image_root = request.image_dir or (cohort_origin.parent if cohort_origin is not None else None)
    dataset = dataset_from(
        cohort,
        models,
        request.label or f"{cohort.name} ({len(models)} models)",
        inputs,
        reference=reference,
        image_root=image_root,
    )
    if not dataset.findings():
        raise PredictionsError(
            "no finding has both labels (with a positive) in the cohort and probabilities from every model",
            fix=f"The cohort has {', '.join(cohort.findings)}; the models predict "
            f"{', '.join(sorted({f for m in models for f in m.findings}))}",
        )
    return dataset


def server_path(text: str) -> Path | None:
    """A path typed in the dashboard; it must lie under the data roots (`cxrfail.roots`), else
    `PathNotAllowedError` before anything is opened. None for an empty field.

    A folder is returned resolved (the files in it are checked again when opened). A file is read once, through
    a descriptor checked against the roots (`cxrfail.roots.read_under_roots`), into this session's private
    folder, and that copy is returned: the loaders read exactly the bytes that were checked, so a folder
    swapped for a symlink after the check cannot redirect the read."""
    if not text.strip():
        return None
    resolved = resolve_under_roots(text.strip())
    if resolved.is_dir():
        return resolved
    try:
        data = read_under_roots(resolved, data_roots(), max_bytes=limits.max_upload_bytes())
    except (FileNotFoundError, NotADirectoryError):
        raise CxrfailInputError(
            "file not found", path=text.strip(), fix="Check the path (it is read on the server)"
        ) from None
    except OSError as exc:
        raise CxrfailInputError(
            f"cannot read the file ({exc.strerror or type(exc).__name__})", path=text.strip()
        ) from None
    copy = _keep(resolved.name, data)
    _origins()[str(copy)] = (resolved, _shown_name(resolved))
    return copy
