"""Subgroups: who gets misclassified? Rates by subgroup with CIs and n, the regression's odds ratios, and one
term's odds ratio across every model and finding."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxrfail import figures
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import synced
from cxrfail.errors import CxrfailInputError

sel = frame("Subgroups")
result = runs.analysis(sel, first_screen=True)
if result is None:
    st.stop()
context = widgets.context(result)
min_n = int(result.config.min_subgroup_n)
finding = sel.finding
model = widgets.model_picker(sel, "sg_model", result)
pair = widgets.pair(result, model, finding)
label = figures.pair_label(model, finding)
rates = pair.subgroup_rates
subgroups = list(dict.fromkeys(rates["subgroup"])) if not rates.empty else []

st.subheader(f"Misclassification rate by subgroup: {model} · {figures.finding_label(finding)}")
chosen = synced(
    st.multiselect, "Subgroups", key="sg_subgroups", param="subgroups", options=subgroups, many=True, default=subgroups
)
table = sel.dataset.cohort.table
skip = {"patient_id", "image_path", "image_id"} | set(subgroups)
extra = synced(
    st.selectbox,
    "Add any cohort column",
    key="sg_extra",
    param="column",
    options=["(none)", *[c for c in table.columns if c not in skip]],
    help="Cut on the fly on the test split: findings as present/absent, numbers with many "
    "values into quartiles, anything else by value",
)
shown = rates.loc[rates["subgroup"].isin(chosen)]
if extra != "(none)":
    try:
        shown = pd.concat(
            [shown, runs.rates_by(runs.run_token(sel), model, finding, extra, result, table)], ignore_index=True
        )
    except (CxrfailInputError, ValueError) as exc:  # a column that cannot be cut: say so, keep the page
        widgets.input_error(f"Cannot slice by {extra!r}", exc)

widgets.plot(
    figures.subgroup_rates_figure,
    shown,
    title=f"Misclassification by subgroup: {label}",
    min_n=min_n,
    subgroups=tuple(chosen),
    context=context,
    key="sg_rates",
)
st.dataframe(
    widgets.rate_table(shown, min_n),
    hide_index=True,
    width="stretch",
    column_config=widgets.percent_columns(["rate", "ci_low", "ci_high"]),
)
widgets.scope_caption(
    result,
    f"Rates with patient-clustered 95% intervals (several {figures.plural(result.unit)} of one "
    "patient are not independent: Wilson's interval at the level's effective sample size, "
    "or, with no error, a bound on its patients; the Wilson interval on rows, which "
    f"assumes independence, and the design effect are in the table). Levels with an "
    f"effective n below {min_n}, fewer than {result.config.min_subgroup_patients} patients "
    f"or fewer than {result.config.min_subgroup_events} errors (or correct {figures.plural(result.unit)}) "
    "are shown as insufficient. Each "
    "subgroup's reference row is the rate where it is known: a subset's levels compare "
    "with the subset's own rate.",
)
widgets.caveat_lines(result, [finding], list(shown["subgroup"].unique()))

st.subheader(f"Multivariable logistic regression: {model} · {figures.finding_label(finding)}")
regression = pair.regression
widgets.plot(
    figures.forest_plot,
    regression,
    title=f"Odds ratios of misclassification: {label}",
    context=context,
    key="sg_forest",
)
with st.expander("Regression table (raw p; Holm and Benjamini-Hochberg q within the family in q_family)"):
    st.dataframe(regression, hide_index=True, width="stretch")
for note in [n for n in regression["note"].dropna().unique() if str(n)]:
    st.caption(f"Note: {note}")
st.caption(
    "Odds ratios with 95% CIs (standard errors clustered by patient). q-values adjust the p-values "
    "within one fit of this model and finding (q_family): the fit on every test row, or the fit on the "
    "rows where a sparse covariate is known; they do not depend on the other pairs of the run. "
    "Covariates derived from the target (Lung Lesion for Mass or Nodule) are left out."
)

st.subheader("One term across models and findings")
terms = result.regression_terms()
if terms:
    term = synced(st.selectbox, "Term", key="sg_term", param="term", options=terms, default=terms[0])
    widgets.plot(figures.term_heatmap, result.regression, term, context=context, key="sg_term_heatmap")
else:
    st.info("No regression terms in this run.")
