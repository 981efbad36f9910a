"""cxrfail dashboard: `streamlit run app.py` (or `make run`). This script is the Overview page; the other
pages are in ``pages/`` (Streamlit's multipage folder). Every page starts with `frame`, which draws the shared
sidebar and returns the selection; the analysis comes from `runs.analysis`.

Overview: the cohort, each model's AUROC and misclassification rate, and where the subgroup effects are.
"""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame

sel = frame("Overview")
result = runs.analysis(sel, first_screen=True)
if result is None:
    st.stop()
summary = result.cohort_summary
unit = result.unit
context = widgets.context(result)

st.subheader(summary.get("name", sel.dataset.cohort.name))
columns = st.columns(5)
columns[0].metric(f"{unit.capitalize()}s analysed", f"{summary.get('n_analysed', 0):,}")
columns[1].metric("Patients", f"{summary.get('n_patients', 0):,}")
columns[2].metric("Median age", f"{summary.get('age_median', float('nan')):.0f} y",
                  help=f"interquartile range {summary.get('age_q1', float('nan')):.0f}–"
                       f"{summary.get('age_q3', float('nan')):.0f} years")
columns[3].metric("Calibration split", f"{summary.get('n_calibration', 0):,}")
columns[4].metric("Held-out test split", f"{summary.get('n_test', 0):,}")
with_images = int(sel.dataset.cohort.table["image_path"].notna().sum())
st.caption(f"Unit of analysis: {unit}; {result.notes.get('unit', '')}. Patients are split (seed {sel.seed}) "
           f"into calibration and test halves. {with_images:,} {unit}s have a radiograph on disk (see Cases).")

left, middle, right = st.columns([2, 1, 1])
with left:
    ages = sel.dataset.cohort.table["age"].reindex(result.analysed_ids())
    widgets.plot(figures.age_histogram, ages, title="Age", context=context, key="ov_age")
with middle:
    widgets.plot(figures.count_bars, summary.get("sex", {}), title="Sex", unit=f"{unit}s", key="ov_sex")
with right:
    widgets.plot(figures.count_bars, summary.get("view", {}), title="View", unit=f"{unit}s", key="ov_view")

st.subheader("How well does each model do?")
widgets.plot(figures.auroc_heatmap, result.performance, context=context, key="ov_auroc")
widgets.plot(figures.misclassification_heatmap, result.overall_misclassification(), context=context,
             key="ov_miscls")
widgets.scope_caption(result, f"Misclassification at the operating threshold chosen on calibration "
                              f"({sel.threshold_method}).")

st.subheader("Where is the action?")
widgets.plot(figures.effects_heatmap, result.effect_summary(), context=context, key="ov_effects")
gaps = result.subgroup_gaps()
if not gaps.empty:
    st.markdown(f"**Largest gaps in misclassification rate between subgroup levels** "
                f"(levels with n ≥ {result.config.min_subgroup_n} only)")
    st.dataframe(gaps.sort_values("spread", ascending=False).head(10), hide_index=True, width="stretch",
                 column_config=widgets.percent_columns(["min_rate", "max_rate", "spread"]))
widgets.caveat_lines(result, sel.findings, list(result.subgroup_rates["subgroup"].unique()))
if result.refused:
    st.warning("Not analysed: " + "; ".join(f"**{m} · {figures.finding_label(f)}**: {reason}"
                                              for (m, f), reason in result.refused.items()))
with st.expander("Performance table"):
    st.dataframe(result.performance, hide_index=True, width="stretch")
    st.caption(f"AUROC over every {unit}; threshold chosen on calibration; F1, precision, recall on the test split.")
with st.expander("Notes on this run"):
    for name, note in result.notes.items():
        st.markdown(f"- **{name}**: {note}")
