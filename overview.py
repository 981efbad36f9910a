"""The Overview page: the cohort, each model's AUROC and misclassification rate, and where the subgroup effects
are. Streamlit's main script (served by ``app.py``); the other pages are in ``pages/`` (Streamlit's multipage
folder). Every page starts with `frame`, which draws the shared sidebar and returns the selection; the analysis
comes from `runs.analysis`.
"""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame

sel = widgets.require_selection(frame("Overview"))
cohort = sel.dataset.cohort
unit = cohort.unit
summary = widgets.cohort_summary(sel.dataset)

# The cohort first, from the data alone: it shows while the run computes (and the browser loads the charts).
st.subheader(cohort.name)
columns = st.columns(5)
age = {key: float("nan") if summary[key] is None else summary[key] for key in ("age_median", "age_q1", "age_q3")}
columns[1].metric("Patients", f"{summary['n_patients']:,}")
columns[2].metric(
    "Median age",
    f"{age['age_median']:.0f} y",
    help=f"interquartile range {age['age_q1']:.0f}–{age['age_q3']:.0f} years",
)
scope_note = st.empty()  # the unit and split, once the run is there
left, middle, right = st.columns([2, 1, 1])
with left:
    widgets.plot_of(  # the age of every row: cached per dataset, not hashed on every rerun
        f"{sel.dataset.key}:age",
        figures.age_histogram,
        cohort.table["age"],
        title="Age",
        context=figures.FigureContext(unit=unit),
        key="ov_age",
    )
with middle:
    widgets.plot(figures.count_bars, summary["sex"], title="Sex", unit=f"{figures.plural(unit)}", key="ov_sex")
with right:
    widgets.plot(figures.count_bars, summary["view"], title="View", unit=f"{figures.plural(unit)}", key="ov_view")

result = runs.analysis(sel, first_screen=True)
if result is None:
    st.stop()
run_summary = result.cohort_summary
context = widgets.context(result)
columns[0].metric(f"{figures.plural(unit).capitalize()} analysed", f"{run_summary.get('n_analysed', 0):,}")
columns[3].metric("Calibration split", f"{run_summary.get('n_calibration', 0):,}")
columns[4].metric("Held-out test split", f"{run_summary.get('n_test', 0):,}")
with_images = int(cohort.table["image_path"].notna().sum())
scope_note.caption(
    f"Unit of analysis: {unit}; {result.notes.get('unit', '')}. Patients are split (seed {sel.seed}) "
    f"into calibration and test halves. {with_images:,} {figures.plural(unit)} have a radiograph on disk (see Cases)."
)

st.subheader("How well does each model do?")
widgets.plot(figures.auroc_heatmap, result.performance, context=context, key="ov_auroc")
widgets.plot(figures.misclassification_heatmap, result.overall_misclassification(), context=context, key="ov_miscls")
widgets.scope_caption(
    result,
    f"Misclassification at the operating threshold chosen on calibration "
    f"({sel.threshold_method}), with patient-clustered 95% intervals.",
)

st.subheader("Where is the action?")
widgets.plot(figures.effects_heatmap, result.effect_summary(), context=context, key="ov_effects")
gaps = result.subgroup_gaps()
if not gaps.empty:
    st.markdown(
        f"**Largest gaps in misclassification rate between subgroup levels** "
        f"(sufficient levels only: effective n ≥ {result.config.min_subgroup_n}, "
        f"≥ {result.config.min_subgroup_patients} patients, ≥ {result.config.min_subgroup_events} errors)"
    )
    st.dataframe(
        gaps.sort_values("spread", ascending=False).head(10),
        hide_index=True,
        width="stretch",
        column_config=widgets.percent_columns(["min_rate", "max_rate", "spread"]),
    )
widgets.caveat_lines(result, sel.findings, list(result.subgroup_rates["subgroup"].unique()))
if result.refused:
    st.warning(
        "Not analysed: "
        + "; ".join(f"**{m} · {figures.finding_label(f)}**: {reason}" for (m, f), reason in result.refused.items())
    )
with st.expander("Performance table"):
    st.dataframe(result.performance, hide_index=True, width="stretch")
    st.caption(f"AUROC over every {unit}; threshold chosen on calibration; F1, precision, recall on the test split.")
with st.expander("Notes on this run"):
    for name, note in result.notes.items():
        st.markdown(f"- **{name}**: {note}")
