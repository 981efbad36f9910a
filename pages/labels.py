"""Labels: model error or label error? Each model's misclassifications against an expert reference standard:
the label agreement, misclassifications split into model errors and probable label errors, and AUROC / F1
against each label set."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from cxrfail import figures
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import synced

sel = widgets.require_selection(frame("Labels"))
reference = sel.dataset.reference
available = sel.dataset.reference_findings
if reference is None or not available:
    st.info(
        "This dataset has no reference labels for its findings. Load a reference label file (an id column "
        "and finding columns) on the Data page; the demo comes with Google's expert labels."
    )
    st.stop()
st.markdown(f"**Reference standard: {reference.name}.** {reference.selection}")
finding = synced(
    st.selectbox,
    "Finding with reference labels",
    key="lb_finding",
    param="label_finding",
    options=list(available),
    default=sel.finding if sel.finding in available else available[0],
    format_func=figures.finding_label,
)
if finding not in sel.findings:
    st.caption(
        f"{figures.finding_label(finding)} is not among the findings analysed in the sidebar: it is "
        "analysed here on its own (once; later visits read it back)."
    )
    sel = dataclasses.replace(sel, findings=(finding,))
sel = dataclasses.replace(sel, finding=finding)  # the pairs this page waits for (the run computes its own first)
result = runs.analysis(sel)
if result is None:
    st.stop()
context = widgets.context(result)
audit = result.rows("label_audit", finding=finding)  # one row per model
if audit.empty:
    st.info("No analysed row of this finding has a reference label.")
    st.stop()
for note in (n for key, n in reference.notes.items() if key == finding):
    st.caption(f"{figures.finding_label(finding)}: {note}")

st.subheader("Do the two label sets agree?")
agreement = result.pair(str(audit["model"].iloc[0]), finding).label_agreement  # the same rows for every model
table = agreement.pivot(index="cohort_label", columns="reference_label", values="n")
table.index = [f"cohort: {'positive' if v else 'negative'}" for v in table.index]
table.columns = [f"reference: {'positive' if v else 'negative'}" for v in table.columns]
left, right = st.columns([2, 1])
left.dataframe(table, width="stretch")
first = agreement.iloc[0]
right.metric("Cohen's kappa", f"{first['kappa']:.2f}")
right.metric(
    f"{figures.plural(result.unit).capitalize()} with both labels",
    f"{int(first['n_rows']):,}",
    help=f"of {int(first['n_patients']):,} patients",
)

st.subheader("Model error or label error?")
widgets.plot(
    figures.label_error_bars,
    audit,
    title=f"Misclassifications of {figures.finding_label(finding)}: model errors and probable label errors",
    context=context,
    key="lb_errors",
)
st.caption(
    "A probable label error: the model's prediction agrees with the reference label and the cohort label "
    "disagrees, so what the analysis counts as a model failure is most likely a label failure. Shares "
    "of the test-split misclassifications with both labels; 95% intervals resample patients."
)

st.subheader("Against which labels?")
widgets.plot(
    figures.label_set_comparison,
    audit,
    title=f"{figures.finding_label(finding)}: AUROC and F1 against each label set",
    context=context,
    key="lb_compare",
)
shown = audit[
    [
        "model",
        "n_misclassified",
        "n_label_error",
        "label_error_share",
        "label_error_ci_low",
        "label_error_ci_high",
        "auroc_cohort",
        "auroc_reference",
        "f1_cohort",
        "f1_reference",
        "identifier_auroc_cohort",
        "identifier_auroc_reference",
        "flip_delta_f1_cohort",
        "flip_delta_f1_reference",
    ]
]
st.dataframe(
    pd.DataFrame(shown),
    hide_index=True,
    width="stretch",
    column_config=widgets.percent_columns(["label_error_share", "label_error_ci_low", "label_error_ci_high"]),
)
st.caption(
    "Identifier AUROC re-scored against misclassification defined by each label set; the flip result "
    "(ΔF1 at the calibration-chosen tau) against each label set. The reference covers a subset that was "
    "not chosen at random: compare these rows with each other, not with the whole cohort."
)
