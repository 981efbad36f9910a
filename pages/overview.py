"""Overview: the cohort, each model's AUROC, misclassification rates, and where the subgroup effects are."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from pages import common

common.ensure_router()

st.title("Overview")
sel = common.selection()
run = common.get_run(sel)
if run is None:
    st.stop()
result = run.result
summary = result.cohort_summary
cohort = sel.dataset.cohort
unit = summary.get("unit", cohort.unit)

st.subheader(summary.get("name", cohort.name))
columns = st.columns(5)
columns[0].metric(f"{unit.capitalize()}s analysed", f"{summary.get('n_analysed', cohort.n_rows):,}")
columns[1].metric("Patients", f"{summary.get('n_patients', cohort.n_patients):,}")
columns[2].metric("Median age", f"{summary.get('age_median', float('nan')):.0f} y",
                  help=f"interquartile range {summary.get('age_q1', float('nan')):.0f}–"
                       f"{summary.get('age_q3', float('nan')):.0f} years")
columns[3].metric("Calibration split", f"{summary.get('n_calibration', 0):,}")
columns[4].metric("Held-out test split", f"{summary.get('n_test', 0):,}")
with_images = int(cohort.table["image_path"].notna().sum())
st.caption(f"Unit of analysis: {unit}; {result.notes.get('unit', '')}. Patients are split (seed {sel.seed}) "
           f"into calibration and test halves. {with_images:,} {unit}s have a radiograph on disk (see Cases).")

left, middle, right = st.columns([2, 1, 1])
with left:
    common.plot(run.memo("age", lambda: figures.age_histogram(cohort.table.loc[
        cohort.table.index.isin(result.outcomes["image_id"].unique()), "age"], title="Age")), key="ov_age")
with middle:
    common.plot(run.memo("sex", lambda: figures.count_bars(summary.get("sex", {}), title="Sex", unit=f"{unit}s")),
                key="ov_sex")
with right:
    common.plot(run.memo("view", lambda: figures.count_bars(summary.get("view", {}), title="View",
                                                           unit=f"{unit}s")), key="ov_view")

st.subheader("How well does each model do?")
common.plot(run.memo("auroc", lambda: figures.auroc_heatmap(result.performance)), key="ov_auroc")
common.plot(run.memo("miscls", lambda: figures.misclassification_heatmap(run.overall())), key="ov_miscls")
common.scope_caption(run, "Misclassification at the operating threshold chosen on calibration "
                          f"({sel.threshold_method}).")

st.subheader("Where is the action?")
effects = run.memo("effects", lambda: figures.effect_summary(result.regression))
common.plot(run.memo("effects_fig", lambda: figures.effects_heatmap(effects)), key="ov_effects")
spread = run.memo("spread", lambda: figures.subgroup_rate_range(result.subgroup_rates))
if not spread.empty:
    st.markdown("**Largest gaps in misclassification rate between subgroup levels** "
                "(levels with n ≥ {} only)".format(result.config.min_subgroup_n))
    top = spread.sort_values("spread", ascending=False).head(10)
    st.dataframe(top, hide_index=True, width="stretch",
                 column_config=common.percent_columns(["min_rate", "max_rate", "spread"]))
common.caveat_lines(sel.findings, list(result.subgroup_rates["subgroup"].unique())
                    if not result.subgroup_rates.empty else [])
with st.expander("Performance table"):
    st.dataframe(result.performance, hide_index=True, width="stretch")
    st.caption("AUROC over every image; threshold chosen on calibration; F1, precision, recall on the test split.")
with st.expander("Notes on this run"):
    for name, note in result.notes.items():
        st.markdown(f"- **{name}**: {note}")
