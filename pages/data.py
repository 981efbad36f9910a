"""Data: load your own cohort and prediction files (upload or path). A file that fails validation gives a
message saying what to fix; whatever was loaded before stays loaded and selected."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cxrfail import figures
from cxrfail.cohort import parse_column_map
from cxrfail.dashboard import datasets, widgets
from cxrfail.dashboard.settings import base_config
from cxrfail.dashboard.sidebar import frame
from cxrfail.errors import CxrfailInputError

NEW, ADD = "new", "add"  # the form loads a new dataset, or adds models to the one selected
#: Words of the library's hints → the form's own fields (hints name only what this page has).
FORM_WORDS = {
    "pass id_column": "fill in the form's 'Id column'",
    "pass a column map": "fill in the form's 'Column map'",
}
COHORT_KINDS = {
    "nih": "NIH ChestX-ray14 (torchxrayvision's bundled metadata, or a Data_Entry_2017-style CSV)",
    "chexpert": "CheXpert CSV",
    "csv": "Any CSV with a column map",
}

current = frame("Data")
st.markdown(
    "Load a cohort (labels and demographics, one row per image or study) and one prediction file per "
    "model (an id column plus one probability column per finding, NIH or CheXpert names, a `prob_` "
    "prefix is fine). Files can be uploaded or read from a path on the server."
)
flash = st.session_state.pop("data_flash", None)
if flash:
    message, notes = flash
    st.success(message)
    for note in notes:
        st.warning(note)
if current is not None:
    st.info(
        f"Loaded now: **{current.dataset.label}**: {current.dataset.cohort.n_rows:,} "
        f"{figures.plural(current.dataset.cohort.unit)}, models {', '.join(current.dataset.model_names)}."
    )

with st.form("data_form"):
    target = NEW
    if current is not None:
        target = st.radio(
            "Load",
            (ADD, NEW),
            key="data_target",
            horizontal=True,
            format_func=lambda t: (
                (
                    f"models into {current.dataset.label} (its ids; keeps its radiographs, device "
                    "reads and reference labels)"
                )
                if t == ADD
                else "a new dataset (cohort and models)"
            ),
            help="Adding needs prediction files with this dataset's image ids; the cohort fields below are then "
            "not used",
        )
    st.subheader("Predictions")
    uploads = st.file_uploader(
        "Prediction CSV files (one per model)", type=["csv"], accept_multiple_files=True, key="data_pred_upload"
    )
    paths_text = st.text_area("…or paths on the server, one per line", key="data_pred_paths", height=90)
    left, right = st.columns(2)
    names_text = left.text_input(
        "Model names (optional, comma-separated, in the same order; default: file names)", key="data_pred_names"
    )
    id_column_text = right.text_input(
        "Id column (optional; default: image_id, Image Index, Path, …)", key="data_id_column"
    )
    st.subheader("Cohort")
    kind = st.selectbox("Cohort format", list(COHORT_KINDS), format_func=COHORT_KINDS.get, key="data_kind")
    cohort_upload = st.file_uploader(
        "Cohort CSV (not needed for the bundled NIH metadata)", type=["csv", "gz"], key="data_cohort_upload"
    )
    cohort_path_text = st.text_input("…or its path on the server", key="data_cohort_path")
    left, right = st.columns(2)
    images_text = left.text_input("Image folder (optional; for Cases)", key="data_images")
    devices_text = right.text_input("Support-device reads CSV (optional, NIH)", key="data_devices")
    column_map_text = st.text_input(
        "Column map for 'Any CSV' (FIELD=COLUMN, comma-separated; fields: image_id, "
        "patient_id, age, sex, view, image_path, or a finding)",
        key="data_colmap",
    )
    left, right = st.columns(2)
    uncertain = left.selectbox(
        "Uncertain labels (-1)",
        ("zeros", "ones", "drop"),
        key="data_uncertain",
        help="CheXpert / any CSV: how uncertain labels are counted; recorded in the manifest",
    )
    unit = right.selectbox("Unit of analysis (CheXpert)", ("study", "image"), key="data_unit")
    st.subheader("Reference labels (optional)")
    left, right = st.columns(2)
    reference_upload = left.file_uploader(
        "A second, expert label set for some rows (id column + finding columns)",
        type=["csv", "gz"],
        key="data_reference_upload",
    )
    reference_path_text = right.text_input("…or its path on the server", key="data_reference_path")
    reference_map_text = st.text_input(
        "Reference column map (image_id=COLUMN, FINDING=COLUMN; optional)", key="data_reference_colmap"
    )
    label = st.text_input("Name of this dataset", key="data_label", placeholder="my cohort")
    submitted = st.form_submit_button("Load", type="primary")


def request() -> tuple[datasets.DatasetRequest, dict[str, str]]:
    """The form as a `DatasetRequest`, and upload path → upload name (messages name the upload)."""
    inputs: list = []
    shown_names: dict[str, str] = {}
    files: list[Path] = []
    for upload in uploads or []:
        path, record = datasets.save_upload(upload)
        files.append(path)
        inputs.append(record)
        shown_names[str(path)] = upload.name
    for line in paths_text.splitlines():
        if line.strip():
            files.append(datasets.server_path(line))
            inputs.append(files[-1])
    cohort_file = datasets.server_path(cohort_path_text)
    if cohort_upload is not None:
        cohort_file, record = datasets.save_upload(cohort_upload)
        inputs.append(record)
        shown_names[str(cohort_file)] = cohort_upload.name
    reference_file = datasets.server_path(reference_path_text)
    if reference_upload is not None:
        reference_file, record = datasets.save_upload(reference_upload)
        inputs.append(record)
        shown_names[str(reference_file)] = reference_upload.name
    names = tuple(n.strip() for n in names_text.split(",") if n.strip()) or None
    return datasets.DatasetRequest(
        prediction_files=tuple(files),
        model_names=names,
        kind=kind,
        cohort_file=cohort_file,
        column_map=parse_column_map(column_map_text) if kind == "csv" else {},
        uncertain_policy=uncertain,
        unit=unit,
        image_dir=datasets.server_path(images_text),
        devices_csv=datasets.server_path(devices_text),
        label=label.strip(),
        inputs=tuple(inputs),
        reference_file=reference_file,
        reference_column_map=parse_column_map(reference_map_text, "reference column map") or None,
        id_column=id_column_text.strip() or None,
    ), shown_names


def in_form_words(message: str) -> str:
    for library, form in FORM_WORDS.items():
        message = message.replace(library, form)
    return message


def finding_notes(dataset: datasets.Dataset, model_names) -> list[str]:
    """One visible note per model that lacks findings the cohort labels."""
    return [
        f"{name} has no probabilities for {', '.join(lacking)}: with {name} selected, "
        f"{'this finding is' if len(lacking) == 1 else 'these findings are'} not offered (deselect it in the "
        "sidebar to see them)."
        for name, lacking in datasets.missing_findings(dataset, model_names).items()
    ]


if submitted:
    shown_names: dict[str, str] = {}
    try:
        with st.spinner("Reading and validating the files…"):
            wanted, shown_names = request()
            if target == ADD:
                dataset = datasets.add_models(
                    current.dataset,
                    wanted.prediction_files,
                    wanted.model_names,
                    wanted.id_column,
                    base_config().min_overlap,
                    wanted.inputs,
                )
                added = [m for m in dataset.model_names if m not in current.dataset.model_names]
            else:
                dataset = datasets.load_dataset(wanted, base_config().min_overlap)
                added = list(dataset.model_names)
    except CxrfailInputError as exc:
        message = in_form_words(str(exc))
        for path, name in shown_names.items():
            message = message.replace(path, f"uploaded {name}")
        widgets.input_error("Could not load this data", CxrfailInputError(message))
        st.caption("Nothing changed: the data loaded before stays loaded and selected.")
    else:
        unit = dataset.cohort.unit
        if target == ADD:
            datasets.register(dataset, models=[*current.models, *added])
            message = (
                f"Added **{', '.join(added)}** to {current.dataset.label}: its {dataset.cohort.n_rows:,} "
                f"{figures.plural(unit, dataset.cohort.n_rows)}, radiographs, device reads and reference "
                "labels are kept. Selected in the sidebar beside the models chosen before."
            )
        else:
            datasets.register(dataset)
            message = (
                f"Loaded **{dataset.label}**: {dataset.cohort.n_rows:,} "
                f"{figures.plural(unit, dataset.cohort.n_rows)} of {dataset.cohort.n_patients:,} patients; "
                f"models {', '.join(dataset.model_names)}; findings {', '.join(dataset.findings())}. "
                "It is now selected in the sidebar."
            )
        st.session_state["data_flash"] = (message, finding_notes(dataset, added))
        st.rerun()

loaded = st.session_state.get(datasets.LOADED, {})
if loaded:
    st.subheader("Loaded in this session")
    for key, dataset in list(loaded.items()):
        left, right = st.columns([5, 1])
        left.markdown(
            f"**{dataset.label}**: {dataset.cohort.n_rows:,} {figures.plural(dataset.cohort.unit)}, models "
            f"{', '.join(dataset.model_names)}" + ("".join(f"  \n_{n}_" for n in dataset.notes))
        )
        if right.button("Remove", key=f"data_remove_{key}"):
            datasets.remove(key)
            st.rerun()
