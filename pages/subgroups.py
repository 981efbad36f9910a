"""Subgroups: who gets misclassified? Rates by subgroup with CIs and n, the regression's odds ratios, and one
term's odds ratio across every model and finding."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxrfail import figures
from pages import common

common.ensure_router()

st.title("Subgroups")
sel = common.selection()
run = common.get_run(sel)
if run is None:
    st.stop()
result = run.result
min_n = int(result.config.min_subgroup_n)
finding = sel.finding

model = common.model_picker(sel, "sg_model")
label = f"{model} · {figures.finding_label(finding)}"
rates = run.table("subgroup_rates", model=model, finding=finding)
subgroups = list(dict.fromkeys(rates["subgroup"])) if not rates.empty else []

st.subheader(f"Misclassification rate by subgroup: {label}")
chosen = st.multiselect("Subgroups", subgroups, default=subgroups, key="sg_subgroups")

cohort = sel.dataset.cohort
skip = {"patient_id", "image_path", "image_id"} | set(subgroups)
other_columns = [c for c in cohort.table.columns if c not in skip]
extra = st.selectbox("Add any cohort column", ["(none)", *other_columns], key="sg_extra",
                     help="Cut on the fly on the test split: findings as present/absent, numbers with many "
                          "values into quartiles, anything else by value")
shown = rates.loc[rates["subgroup"].isin(chosen)] if chosen else rates.iloc[0:0]


def _extra_rates(column: str) -> pd.DataFrame:
    from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates

    test = run.outcomes(model, finding, "test")
    table = cohort.table.loc[test["image_id"].to_numpy()]
    levels = subgroup_levels(table, finding_subgroups=(), extra_columns=[column])[[column]]
    wrong = pd.Series(test["misclassified"].to_numpy(dtype=bool), index=table.index)
    frame = subgroup_rates(wrong, levels, min_n=min_n)
    frame.insert(0, "finding", finding)
    frame.insert(0, "model", model)
    return frame


if extra != "(none)":
    try:
        added = run.memo("extra_rates", lambda m, f, c: _extra_rates(c), model, finding, extra)
        shown = pd.concat([shown, added], ignore_index=True)
    except Exception as exc:  # a column that cannot be cut: say so, keep the page
        st.error(f"Cannot slice by {extra!r}: {exc}")

common.plot(run.memo("sg_rates_fig", lambda m, f, c, e: figures.subgroup_rates_figure(
    shown, title=f"Misclassification by subgroup: {label}", min_n=min_n, subgroups=list(c)),
    model, finding, tuple(chosen), extra), key="sg_rates")
st.dataframe(common.rate_table(shown, min_n), hide_index=True, width="stretch",
             column_config=common.percent_columns(["rate", "ci_low", "ci_high"]))
common.scope_caption(run, f"Rates with 95% Wilson CIs; subgroups with n < {min_n} are shown as "
                          f"“{figures.insufficient_label(min_n)}”.")
common.caveat_lines([finding], list(shown["subgroup"].unique()) if not shown.empty else [])

st.subheader(f"Multivariable logistic regression: {label}")
regression = run.table("regression", model=model, finding=finding)
common.plot(run.memo("sg_forest_fig", lambda m, f: figures.forest_plot(
    regression, title=f"Odds ratios of misclassification: {label}"), model, finding), key="sg_forest")
with st.expander("Regression table (raw p, Holm and Benjamini-Hochberg q across the whole grid)"):
    st.dataframe(regression, hide_index=True, width="stretch")
notes = [n for n in regression.get("note", pd.Series(dtype=str)).dropna().unique() if str(n)]
for note in notes:
    st.caption(f"Note: {note}")
st.caption("Odds ratios with 95% CIs (standard errors clustered by patient). q-values adjust the p-values "
           "across every model, finding and term of the run.")

st.subheader("One term across models and findings")
terms = figures.regression_terms(result.regression) if not result.regression.empty else []
if terms:
    if st.session_state.get("sg_term") not in terms:
        st.session_state["sg_term"] = terms[0]
    term = st.selectbox("Term", terms, key="sg_term")
    common.plot(run.memo("term_heatmap", lambda t: figures.term_heatmap(result.regression, t), term),
                key="sg_term_heatmap")
else:
    st.info("No regression terms in this run.")
