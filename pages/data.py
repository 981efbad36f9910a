"""Data: load your own cohort and prediction files (upload or path). A file that fails validation gives a
message saying what to fix; whatever was loaded before stays loaded and selected."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cxrfail.errors import CxrfailInputError, PredictionsError
from pages import common

common.ensure_router()

COHORT_KINDS = {
    "nih_bundled": "NIH ChestX-ray14 (metadata bundled with torchxrayvision)",
    "nih": "NIH-format CSV (Data_Entry_2017 columns)",
    "chexpert": "CheXpert CSV",
    "csv": "Any CSV with a column map",
}

st.title("Data")
st.markdown("Load a cohort (labels and demographics, one row per image or study) and one prediction file per "
            "model (an id column plus one probability column per finding, NIH or CheXpert names, a `prob_` "
            "prefix is fine). Files can be uploaded or read from a path on the server.")

flash = st.session_state.pop("data_flash", None)
if flash:
    st.success(flash)
current = common.selection()
if current is not None:
    st.info(f"Loaded now: **{current.dataset.label}**: {current.dataset.cohort.n_rows:,} "
            f"{current.dataset.cohort.unit}s, models {', '.join(current.dataset.model_names)}.")


def _saved(upload) -> tuple[Path, tuple[str, bytes]]:
    """Write an uploaded file into this session's folder; return its path and (name, bytes) for manifests."""
    data = upload.getvalue()
    folder = common.upload_dir() / common._digest(upload.name, len(data), data[:4096])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(upload.name).name
    path.write_bytes(data)
    names = dict(st.session_state.get("data_uploaded_names", {}))
    names[str(path)] = upload.name  # error messages name the upload, not the temporary path
    st.session_state["data_uploaded_names"] = names
    return path, (upload.name, data)


def _path(text: str, what: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not path.exists():
        raise CxrfailInputError(f"{what} not found", path=path, fix="Check the path (it is read on the server)")
    return path


def _column_map(text: str) -> dict[str, str]:
    mapping = {}
    for part in text.replace("\n", ",").split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise CxrfailInputError(f"column map entry {part.strip()!r} is not FIELD=COLUMN",
                                    fix="e.g. image_id=Image, patient_id=Patient, age=Age")
        mapping[field.strip()] = column.strip()
    return mapping


with st.form("data_form"):
    st.subheader("Predictions")
    uploads = st.file_uploader("Prediction CSV files (one per model)", type=["csv"], accept_multiple_files=True,
                               key="data_pred_upload")
    paths_text = st.text_area("…or paths on the server, one per line", key="data_pred_paths", height=90)
    names_text = st.text_input("Model names (optional, comma-separated, in the same order; default: file names)",
                               key="data_pred_names")
    st.subheader("Cohort")
    kind = st.selectbox("Cohort format", list(COHORT_KINDS), format_func=COHORT_KINDS.get, key="data_kind")
    cohort_upload = st.file_uploader("Cohort CSV (not needed for the bundled NIH metadata)", type=["csv", "gz"],
                                     key="data_cohort_upload")
    cohort_path_text = st.text_input("…or its path on the server", key="data_cohort_path")
    left, right = st.columns(2)
    images_text = left.text_input("Image folder (optional; for Cases)", key="data_images")
    devices_text = right.text_input("Support-device reads CSV (optional, NIH)", key="data_devices")
    column_map_text = st.text_input("Column map for 'Any CSV' (FIELD=COLUMN, comma-separated; fields: image_id, "
                                    "patient_id, age, sex, view, image_path, or a finding)", key="data_colmap")
    left, right = st.columns(2)
    uncertain = left.selectbox("Uncertain labels (-1)", ("zeros", "ones", "drop"), key="data_uncertain",
                               help="CheXpert / any CSV: how uncertain labels are counted; recorded in the manifest")
    unit = right.selectbox("Unit of analysis (CheXpert)", ("study", "image"), key="data_unit")
    label = st.text_input("Name of this dataset", key="data_label", placeholder="my cohort")
    submitted = st.form_submit_button("Load", type="primary")


def load() -> common.Dataset:
    from cxrfail import cohort as cohorts
    from cxrfail.predictions import check_coverage, load_predictions_csv

    inputs: list = []
    prediction_paths: list[Path] = []
    for upload in uploads or []:
        path, record = _saved(upload)
        prediction_paths.append(path)
        inputs.append(record)
    for line in paths_text.splitlines():
        if line.strip():
            path = _path(line, "prediction file")
            prediction_paths.append(path)
            inputs.append(path)
    if not prediction_paths:
        raise PredictionsError("no prediction files given", fix="Upload at least one prediction CSV or give a path")
    names = [n.strip() for n in names_text.split(",") if n.strip()] if names_text.strip() else None
    if names is not None and len(names) != len(prediction_paths):
        raise PredictionsError(f"{len(prediction_paths)} prediction files but {len(names)} model names",
                               fix="Give one name per file, or none")
    models = [load_predictions_csv(path, None if names is None else names[i])
              for i, path in enumerate(prediction_paths)]
    if len({m.name for m in models}) != len(models):
        raise PredictionsError("two prediction files give the same model name", fix="Name the models explicitly")

    cohort_path = None
    if cohort_upload is not None:
        cohort_path, record = _saved(cohort_upload)
        inputs.append(record)
    elif cohort_path_text.strip():
        cohort_path = _path(cohort_path_text, "cohort file")
        inputs.append(cohort_path)
    images = _path(images_text, "image folder") if images_text.strip() else None
    devices = _path(devices_text, "support-device CSV") if devices_text.strip() else None
    if devices is not None:
        inputs.append(devices)
    if kind in ("nih", "chexpert", "csv") and cohort_path is None:
        raise CxrfailInputError(f"the format {COHORT_KINDS[kind]!r} needs a cohort file",
                                fix="Upload the cohort CSV or give its path")
    if kind in ("nih_bundled", "nih"):
        ids = sorted({i for model in models for i in model.probabilities.index})
        cohort = cohorts.load_nih(cohort_path, image_ids=ids, image_dir=images, devices_csv=devices)
        if cohort_path is None:
            inputs.append(cohorts.nih_metadata_path())
    elif kind == "chexpert":
        cohort = cohorts.load_chexpert(cohort_path, uncertain_policy=uncertain, unit=unit, image_root=images)
    else:
        cohort = cohorts.load_generic_csv(cohort_path, _column_map(column_map_text), uncertain_policy=uncertain,
                                          image_dir=images)
    check_coverage(cohort, models, common.base_config().min_overlap)
    dataset = common.dataset_from(cohort, models, label.strip() or f"{cohort.name} ({len(models)} models)", inputs)
    if not dataset.findings():
        raise PredictionsError(
            "no finding has both labels (with a positive) in the cohort and probabilities from every model",
            fix=f"The cohort has {', '.join(cohort.findings)}; the models predict "
                f"{', '.join(sorted({f for m in models for f in m.findings}))}")
    return dataset


if submitted:
    try:
        with st.spinner("Reading and validating the files…"):
            dataset = load()
    except CxrfailInputError as exc:
        message = str(exc)
        for path, name in st.session_state.get("data_uploaded_names", {}).items():
            message = message.replace(path, f"uploaded {name}")
        st.error(f"**Could not load this data.** {message}")
        st.caption("Nothing changed: the data loaded before stays loaded and selected.")
    else:
        common.register_dataset(dataset)
        st.session_state["data_flash"] = (
            f"Loaded **{dataset.label}**: {dataset.cohort.n_rows:,} {dataset.cohort.unit}s of "
            f"{dataset.cohort.n_patients:,} patients; models {', '.join(dataset.model_names)}; findings "
            f"{', '.join(dataset.findings())}. It is now selected in the sidebar.")
        st.rerun()

loaded = st.session_state.get(common.DATASETS, {})
if loaded:
    st.subheader("Loaded in this session")
    for key, dataset in list(loaded.items()):
        left, right = st.columns([5, 1])
        left.markdown(f"**{dataset.label}**: {dataset.cohort.n_rows:,} {dataset.cohort.unit}s, models "
                      f"{', '.join(dataset.model_names)}" + ("".join(f"  \n_{n}_" for n in dataset.notes)))
        if right.button("Remove", key=f"data_remove_{key}"):
            loaded = dict(loaded)
            loaded.pop(key)
            st.session_state[common.DATASETS] = loaded
            st.rerun()
