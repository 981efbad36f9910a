"""Run inference: run a local model file or a torchxrayvision model over an image folder with the batched
engine (cached per image content), and add its predictions to the session as another model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from cxrfail.dashboard import datasets, widgets
from cxrfail.dashboard.settings import base_config
from cxrfail.dashboard.sidebar import frame
from cxrfail.errors import CxrfailInputError
from cxrfail.inference.ray_backend import describe_ray_plan
from cxrfail.ray_cluster import resolve_ray_address
from cxrfail.roots import data_roots, model_roots, resolve_under_roots

sel = frame("Run inference")
flash = st.session_state.pop("inf_flash", None)
if flash:
    st.success(flash)
sel = widgets.require_selection(sel, "The predictions are added to the loaded cohort as a new model.")


XRV, LOCAL = "torchxrayvision model", "local model file"


@st.cache_data(ttl=60, show_spinner="Looking for installed torchxrayvision weights…")
def _xrv_weights() -> tuple[dict[str, bool], str]:
    """torchxrayvision weights name → whether its file is installed, and the folder looked in (empty mapping
    when torchxrayvision is not installed)."""
    try:
        import torchxrayvision as xrv

        from cxrfail.inference.models import xrv_weight_names, xrv_weights_path
    except ImportError:
        return {}, ""
    return (
        {name: xrv_weights_path(name).is_file() for name in xrv_weight_names()},
        str(Path(xrv.utils.get_cache_dir()).expanduser()),
    )


installed, weights_folder = _xrv_weights()
ready = [name for name, present in installed.items() if present]
if "inf_source" not in st.session_state:  # open on a choice that can run with what this server has
    st.session_state["inf_source"] = XRV if ready else LOCAL
source = st.radio(
    "Model",
    (XRV, LOCAL),
    horizontal=True,
    key="inf_source",
    help="A local file is TorchScript (with an embedded card) or a model card (JSON/YAML) naming "
    "the architecture, labels, preprocessing and weights",
)
missing = ""  # what the chosen model lacks, said before running
if source == XRV:
    if not installed:
        missing = (
            "torchxrayvision is not installed on this server, so its models cannot run here. Choose "
            "'local model file' and give a model card or TorchScript file."
        )
        xrv_name, model_file = None, ""
    else:
        names = ready + [name for name in installed if name not in ready]
        left, right = st.columns(2)
        xrv_name = left.selectbox(
            "torchxrayvision weights",
            names,
            key="inf_xrv",
            format_func=lambda n: n + ("" if installed[n] else " (weights not installed)"),
        )
        weights = right.text_input(
            "Weights file (optional; default: torchxrayvision's cache folder)", key="inf_weights"
        )
        model_file = weights.strip()
        if not installed[xrv_name] and not model_file:
            missing = (
                f"The weights of {xrv_name} are not installed on this server (looked in {weights_folder}). "
                "Type the path of a downloaded weights file in 'Weights file' above"
                + (
                    f", or pick one marked installed ({', '.join(ready)})"
                    if ready
                    else ", or choose 'local model file'"
                )
                + "."
            )
else:
    model_file = st.text_input("Model file path (TorchScript .pt/.ts, or a card .json/.yaml)", key="inf_path").strip()
    xrv_name = None
    if not model_file:
        missing = (
            "Give a model file: a model card (JSON/YAML naming the architecture, labels, preprocessing and "
            "weights) or a TorchScript file from the folders the operator allowed (CXRFAIL_MODEL_ROOTS)"
            + (f"; or choose 'torchxrayvision model' (installed: {', '.join(ready)})" if ready else "")
            + "."
        )
folder = st.text_input(
    "Image folder (PNG, JPEG or DICOM, searched recursively)",
    key="inf_folder",
    placeholder="empty: the dataset's image folder" if sel.dataset.image_root else "",
)
left, middle, right = st.columns(3)
name = left.text_input("Model name in the dashboard (default: the model's)", key="inf_name")
device = middle.selectbox("Device", ("auto", "cpu", "cuda"), key="inf_device")
batch_size = right.number_input("Batch size", min_value=1, max_value=256, value=16, key="inf_batch")
st.caption(
    "Paths are read on the server, under the folders the operator allowed (CXRFAIL_DATA_ROOTS); a "
    "TorchScript file runs code when loaded, so it loads only from CXRFAIL_MODEL_ROOTS. "
    "Image ids are the file paths relative to the folder; they must match the cohort's ids "
    f"(e.g. `{sel.dataset.cohort.table.index[0]}`). Results are cached per image content, so a second run "
    "of the same model on the same images is read back, not recomputed."
)

cluster = resolve_ray_address(None)  # CXRFAIL_RAY_ADDRESS: run on that Ray cluster instead of this machine
if cluster is not None:
    try:
        st.info(f"Runs on the Ray cluster: {describe_ray_plan(cluster)}")
    except CxrfailInputError as exc:
        widgets.input_error("The configured Ray cluster cannot be used", exc)
        cluster = None
else:
    st.caption("Runs on this machine (set CXRFAIL_RAY_ADDRESS to use a Ray cluster).")

if missing:
    st.warning(missing)
if st.button("Run", type="primary", key="inf_run", disabled=bool(missing)):
    try:
        # One rule for every file the model names (the card, its weights, TorchScript): inside the data or model
        # roots when opened; TorchScript only from CXRFAIL_MODEL_ROOTS (it runs code from the file).
        model_file_roots = (*data_roots(), *model_roots())
        resolved = resolve_under_roots(model_file, model_file_roots) if model_file else None
        if xrv_name is None and resolved is None:
            raise CxrfailInputError("no model given", fix="Pick a torchxrayvision model or give a model file path")
        spec = f"xrv:{xrv_name}" + (f"@{resolved}" if resolved else "") if xrv_name is not None else str(resolved)
        image_folder = datasets.server_path(folder) if folder.strip() else sel.dataset.image_root
        if image_folder is None or not image_folder.is_dir():
            raise CxrfailInputError("no image folder", fix="Give a folder of images under the allowed roots")
        with st.status(
            f"Running {Path(spec).name if xrv_name is None else 'xrv:' + xrv_name} on the image folder", expanded=True
        ) as status:
            st.write("Loading the model…")
            from cxrfail.inference.workflow import predict_cohort

            bar = st.progress(0.0, text="hashing images and reading the cache…")

            def progress(done: int, total: int) -> None:
                try:
                    bar.progress(done / total if total else 1.0, text=f"{done:,} of {total:,} images")
                except Exception:  # a worker thread without a script context: skip the update
                    pass

            # TorchScript runs code from the file: only from a folder the operator allowed (CXRFAIL_MODEL_ROOTS),
            # checked where each file the model names is opened.
            added = predict_cohort(
                spec,
                image_folder,
                sel.dataset.cohort,
                name=name.strip() or None,
                taken_names=sel.dataset.model_names,
                allow_torchscript=True,
                model_roots=model_file_roots,
                torchscript_roots=model_roots(),
                device=device,
                batch_size=int(batch_size),
                ray_address=cluster,
                min_overlap=base_config().min_overlap,
                progress=progress,
                on_start=st.write,
            )
            status.update(label=added.result.summary(), state="complete", expanded=False)
        if added.result.failures:
            st.warning(f"{len(added.result.failures)} images could not be used:")
            st.dataframe(
                pd.DataFrame(
                    [(Path(f.path).name, f.reason) for f in added.result.failures], columns=["file", "reason"]
                ),
                hide_index=True,
            )
        predictions, n_common = added.predictions, added.n_common
        datasets.register(sel.dataset.with_model(predictions, note=added.note), models=[*sel.models, predictions.name])
        st.session_state["inf_flash"] = (
            f"Added **{predictions.name}** ({n_common:,} of the cohort's {sel.dataset.cohort.n_rows:,} images). "
            "The analysis uses the images every selected model has predicted, so selecting it restricts the "
            f"analysis to those {n_common:,} images; deselect it in the sidebar to go back."
        )
        st.rerun()
    except CxrfailInputError as exc:
        widgets.input_error("Inference could not run", exc)
