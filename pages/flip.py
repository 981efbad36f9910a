"""Flip: flip the predictions the identifier flags (identifier probability ≥ tau) and see what happens to F1 on
the held-out test split, live, with the paired bootstrap CI of the change."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from cxrfail import figures
from pages import common

common.ensure_router()

st.title("Flip")
sel = common.selection()
run = common.get_run(sel)
if run is None:
    st.stop()
finding = sel.finding
model = common.model_picker(sel, "fl_model")
label = f"{model} · {figures.finding_label(finding)}"
test = run.outcomes(model, finding, "test")
chosen = run.chosen_flip(model, finding)
if test.empty or chosen is None:
    st.info("No flip result for this model and finding.")
    st.stop()
chosen_tau = float(chosen["tau"])
n_bootstrap = common.flip_bootstrap()
top = run.memo("flip_top", lambda m, f: float(np.nanmax(test["identifier_probability"].to_numpy(dtype=float))),
               model, finding)
slider_max = max(0.01, math.ceil(max(top, chosen_tau if chosen_tau <= 1 else 0.0) * 100) / 100)
default_tau = min(round(chosen_tau, 3), slider_max)

st.caption(f"{label}. The identifier (`{sel.learner}` on `{sel.feature_set}`) and the flip threshold were chosen "
           f"on the calibration split; everything below is on the held-out test split ({len(test):,} images, "
           f"unit: image). ΔF1 CI: paired bootstrap over patients ({n_bootstrap:,} replicates).")
if chosen_tau > 1:
    st.caption("On calibration, no flip threshold improved F1: the chosen setting is to flip nothing.")


@st.fragment
def live() -> None:
    tau = st.slider("Flip threshold tau (flip where the identifier's probability ≥ tau)", min_value=0.0,
                    max_value=float(slider_max), value=float(default_tau), step=0.001, format="%.3f",
                    key=f"fl_tau::{model}::{finding}")
    evaluation = run.evaluate_flip(model, finding, tau, n_bootstrap)
    columns = st.columns(5)
    columns[0].metric("F1 before", f"{evaluation.f1_before:.3f}")
    columns[1].metric("F1 after", f"{evaluation.f1_after:.3f}", delta=f"{evaluation.delta_f1:+.4f}")
    columns[2].metric("ΔF1 (95% CI)", f"{evaluation.delta_f1:+.4f}",
                      help=f"[{evaluation.ci_low:+.4f}, {evaluation.ci_high:+.4f}]", delta_color="off",
                      delta=f"95% CI [{evaluation.ci_low:+.4f}, {evaluation.ci_high:+.4f}]", delta_arrow="off")
    columns[3].metric("Flips", f"{evaluation.n_flips:,}", help=f"of {evaluation.n:,} test images")
    columns[4].metric("Improved?", "yes" if evaluation.improved else "no",
                      help="Yes only when the whole CI of the change lies above zero")
    st.markdown(
        f"Precision {evaluation.precision_before:.3f} → **{evaluation.precision_after:.3f}** · "
        f"recall {evaluation.recall_before:.3f} → **{evaluation.recall_after:.3f}** · "
        f"tau chosen on calibration: **{chosen_tau:.3f}**"
        + (" (flip nothing)" if chosen_tau > 1 else ""))
    st.session_state["fl_last"] = {"tau": tau, "delta_f1": evaluation.delta_f1, "n_flips": evaluation.n_flips}
    curve = run.table("flip_curves", model=model, finding=finding)
    figure = figures.flip_curve(curve, chosen_tau=chosen_tau, current_tau=tau,
                                title=f"Change in F1 over tau: {label}")
    common.plot(figure, key="fl_curve")


live()
with st.expander("Result at the calibration-chosen tau"):
    st.dataframe(run.table("flip", model=model, finding=finding), hide_index=True, width="stretch")
common.caveat_lines([finding])
