"""Export: any figure as PNG, SVG or HTML, any table as CSV, or everything as one zip with a manifest (inputs
with hashes, package versions, seed, config). The figures are listed by name (the report's catalogue) and each
is drawn only when asked for: a preview, a file, or the zip."""

from __future__ import annotations

import json
from datetime import datetime

import streamlit as st

from cxrfail import export, figures, render
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import ATTRIBUTION, frame
from cxrfail.manifest import build_manifest

sel = frame("Export")
result = runs.analysis(sel, complete=True)  # every pair: the export is of the whole run
if result is None:
    st.stop()
static_ok, static_message = render.static_export_status()
render.keep_browser_open(True)  # the first PNG/SVG starts Chromium; later ones reuse it
if not static_ok:
    st.warning(static_message)
unit = result.unit
token = runs.run_token(sel)


@st.cache_data(max_entries=16, show_spinner=False)
def manifest(token: str, finding: str, _result, _dataset) -> dict:
    return build_manifest(
        _dataset.inputs,
        config=_result.config,
        generator="cxrfail dashboard",
        extra={
            "dataset": _dataset.label,
            "models": list(_result.models),
            "finding_shown": finding,
            "cohort": _result.cohort_summary,
            "notes": _result.notes,
            "dataset_notes": list(_dataset.notes),
            "unit_and_split": f"unit of analysis: {_result.unit}; rates, regression and flip results on the "
            "held-out test split",
        },
    )


@st.cache_resource(max_entries=16, show_spinner=False)
def catalogue(token: str, findings: tuple[str, ...] | None, _result) -> dict:
    """The report's figures as name → builder (`figures.report_catalogue`): listing them draws none."""
    return figures.report_catalogue(_result, findings=findings)


@st.cache_resource(max_entries=64, show_spinner=False)
def figure(token: str, name: str, _result):
    """One figure of the catalogue, drawn when first asked for (a preview, a file or the zip)."""
    return catalogue(token, None, _result)[name]()


def scope_findings(scope: str) -> tuple[str, ...] | None:
    return None if scope == "all findings" else (sel.finding,)


stamp = datetime.now().strftime("%Y%m%d-%H%M")

st.subheader("One figure")
scope = st.radio(
    "Figures for",
    ("the finding in the sidebar", "all findings"),
    horizontal=True,
    key="ex_scope",
    help="Overview figures cover every finding either way",
)
left, middle, right = st.columns([3, 1, 1])
name = left.selectbox("Figure", list(catalogue(token, scope_findings(scope), result)), key="ex_figure")
fmt = middle.selectbox(
    "Format",
    export.FIGURE_FORMATS,
    key="ex_format",
    format_func=lambda f: f.upper() + ("" if f == "html" or static_ok else " (needs chromium)"),
)
if right.button("Prepare file", key="ex_prepare"):
    try:
        with st.spinner(f"Drawing and rendering {name}.{fmt}…"):
            st.session_state["ex_file"] = (f"{name}.{fmt}", export.figure_bytes(figure(token, name, result), fmt), fmt)
    except export.StaticExportUnavailable as exc:
        widgets.input_error("Static export is not available", exc)
prepared = st.session_state.get("ex_file")
if prepared:
    file_name, data, prepared_fmt = prepared
    st.download_button(
        f"Download {file_name} ({len(data) / 1024:,.0f} KB)",
        data=data,
        file_name=file_name,
        mime=export.MIME_TYPES[prepared_fmt],
        key="ex_download_figure",
        on_click="ignore",
    )
# each figure is drawn when asked for (a preview, a file, the zip): drawing all of them on every first visit took
# about 2 s of the server, even at a small run
if st.toggle("Preview the figure", key="ex_preview_shown"):
    st.plotly_chart(figure(token, name, result), key="ex_preview", config={"displaylogo": False})

st.subheader("Tables (CSV)")
columns = st.columns(3)
for index, (table_name, table) in enumerate(export.result_tables(result).items()):
    with columns[index % 3]:
        st.download_button(  # the CSV is written when clicked, not on every rerun of the page
            f"{table_name}.csv ({len(table):,} rows)",
            data=lambda t=table: export.table_bytes(t),
            file_name=f"{table_name}.csv",
            mime="text/csv",
            key=f"ex_table_{table_name}",
            on_click="ignore",
        )
st.caption(
    f"Each CSV is written when clicked (the per-{unit} tables: outcomes, identifier scores and SHAP values, are the "
    "large ones)."
)

st.subheader("Everything, as one zip")
left, middle, right = st.columns(3)
bundle_scope = left.radio("Figures", ("the finding in the sidebar", "all findings"), key="ex_bundle_scope")
formats = middle.multiselect(
    "Figure formats", export.FIGURE_FORMATS, default=["html", "png"] if static_ok else ["html"], key="ex_bundle_formats"
)
per_image = right.checkbox(f"Include the per-{unit} tables", value=False, key="ex_bundle_per_image")
if st.button("Build the zip", type="primary", key="ex_build"):
    names = list(catalogue(token, scope_findings(bundle_scope), result))
    tables = export.result_tables(result, per_row=per_image)
    caveats = widgets.context(result).caveats(sel.findings, list(result.subgroup_rates["subgroup"].unique()))
    with st.status(
        f"Building the zip: {len(names)} figures × {len(formats)} formats, {len(tables)} tables", expanded=True
    ) as status:
        bar = st.progress(0.0)
        chosen = {}
        for index, figure_name in enumerate(names):  # the first fifth of the bar: drawing the figures
            bar.progress(0.2 * index / len(names), text=f"Drawing {figure_name}")
            chosen[figure_name] = figure(token, figure_name, result)
        data = export.zip_bundle(
            chosen,
            tables,
            manifest(token, sel.finding, result, sel.dataset),
            formats=formats,
            extra_files={
                "README.txt": (
                    "cxrfail export\n\nmanifest.json: inputs (SHA-256), package versions, seed and config.\n"
                    "figures/: HTML (open offline with plotly.min.js beside them), PNG, SVG.\n"
                    "tables/: CSV, columns as documented in cxrfail.analysis.result.TABLE_COLUMNS.\n\n"
                    f"Unit of analysis: {unit}. Rates, regression and flip results are on the held-out test split.\n"
                    + "\n".join(caveats)
                    + "\n\n"
                    + ATTRIBUTION
                    + "\n"
                ).encode()
            },
            progress=lambda fraction, message: bar.progress(0.2 + 0.8 * min(max(fraction, 0.0), 1.0), text=message),
        )
        status.update(label=f"Zip ready ({len(data) / 1e6:,.1f} MB)", state="complete", expanded=False)
    st.session_state["ex_bundle"] = (f"cxrfail-export-{stamp}.zip", data)
bundle = st.session_state.get("ex_bundle")
if bundle:
    file_name, data = bundle
    st.download_button(
        f"Download {file_name} ({len(data) / 1e6:,.1f} MB)",
        data=data,
        file_name=file_name,
        mime="application/zip",
        key="ex_download_zip",
        on_click="ignore",
    )
with st.expander("Manifest preview"):
    # drawn on request: the browser syntax-highlights the code block even while the expander is closed (0.3-0.7 s
    # of the page's drawing on every visit, bench/load_bench.py)
    if st.toggle("Show the manifest", key="ex_manifest_shown"):
        st.code(
            json.dumps(manifest(token, sel.finding, result, sel.dataset), indent=2, default=str)[:20000],
            language="json",
        )
