"""Slices: failure slices nobody named, searched on the calibration split and confirmed (or not) on held-out
test patients; the slices confirmed for several models; open a slice's cases."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import SLICE_FILTER
from cxrfail.figures.slices import ERROR_KIND_TEXT

SHOWN = {
    "rank": "rank",
    "slice": "slice",
    "status": "status",
    "n_calibration": "n (calibration)",
    "rate_calibration": "rate (calibration)",
    "n_test": "n (test)",
    "n_patients_test": "patients (test)",
    "rate_test": "rate (test)",
    "ci_low": "CI low",
    "ci_high": "CI high",
    "rate_ratio": "rate ratio",
    "rr_ci_low": "RR CI low",
    "rr_ci_high": "RR CI high",
    "p_value": "p",
    "q_value": "q (pair)",
    "q_value_grid": "q (whole grid)",
    "same_rows_as": "same rows as",
}

sel = frame("Slices")
if sel is None:
    st.info("Choose a cohort and models in the sidebar.")
    st.stop()
result = runs.analysis(sel)
if result is None:
    st.stop()
context = widgets.context(result)
finding = sel.finding

top = st.columns(2)
with top[0]:
    model = widgets.model_picker(sel, "sl_model", result)
kinds = list(result.config.slice_error_kinds)
kind = top[1].selectbox("Error kind", kinds, format_func=lambda k: ERROR_KIND_TEXT.get(k, k), key="sl_kind")
pair = widgets.pair(result, model, finding)
rows = pair.slices.loc[pair.slices["error_kind"] == kind] if len(pair.slices) else pair.slices

widgets.plot(
    figures.slice_intervals,
    pair.slices,
    kind,
    title=f"Failure slices: {figures.pair_label(model, finding)}",
    context=context,
    key="sl_intervals",
)
st.markdown(
    f"**{int(rows['confirmed'].astype(bool).sum()) if len(rows) else 0} of {len(rows)}** slices the "
    f"search returned were confirmed on held-out patients ({ERROR_KIND_TEXT.get(kind, kind)}; unit: "
    f"{result.unit})."
)
st.caption(
    "Searched with SliceLine on the calibration split only: conjunctions of up to "
    f"{result.config.slice_max_predicates} conditions on age ranges, sex, view, study columns and other "
    "findings' labels. Each candidate is then measured on the test split, whose patients the search never "
    "saw. Confirmed: Benjamini-Hochberg q over the pair's candidates below 0.05 and the rate ratio's 95% CI "
    'above 1. The rest are shown as "not confirmed on held-out patients": the search\'s best-looking '
    "slices are partly chance (the winner's curse)."
)
if len(rows):
    st.dataframe(rows[list(SHOWN)].rename(columns=SHOWN), hide_index=True, width="stretch")
    pick, go_to = st.columns([4, 1], vertical_alignment="bottom")
    labels = {int(r["rank"]): f"{int(r['rank'])}. {r['slice']} ({r['status']})" for _, r in rows.iterrows()}
    chosen = pick.selectbox("A slice's cases", list(labels), format_func=labels.get, key="sl_pick")
    if go_to.button("Open in Cases", key="sl_open"):
        row = rows.loc[rows["rank"] == chosen].iloc[0]
        st.session_state[SLICE_FILTER] = {
            "model": model,
            "finding": finding,
            "error_kind": kind,
            "slice": row["slice"],
            "predicates": row["predicates"],
        }
        st.session_state["cs_model"] = model
        st.session_state["cs_outcome"] = kind.replace("_", " ")
        st.session_state["cs_split"] = "test"
        st.switch_page("pages/cases.py")

st.subheader(f"Across models: {figures.finding_label(finding)}")
together = result.slices_across_models()
together = together.loc[together["finding"] == finding]
widgets.plot(figures.slices_across_models, result.slices, together, context=context, key="sl_across")
if len(together):
    st.dataframe(together, hide_index=True, width="stretch")
st.caption(
    "Slices confirmed on held-out patients for two or more models of this finding (the same conditions "
    "and error kind): failures shared across models, not one model's quirk."
)
widgets.caveat_lines(result, [finding])
