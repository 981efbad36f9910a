"""Flip: flip the predictions the identifier flags (a row's own identifier probability ≥ tau) and see what happens
to F1 on the held-out test split, live, with the paired bootstrap CI of the change."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from cxrfail import figures
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.settings import flip_bootstrap
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import synced

sel = frame("Flip")
result = runs.analysis(sel)
if result is None:
    st.stop()
finding = sel.finding
model = widgets.model_picker(sel, "fl_model", result)
pair = widgets.pair(result, model, finding)
test = pair.outcomes_in("test")
chosen = pair.flip
if test.empty or chosen is None:
    st.info("No flip result for this model and finding.")
    st.stop()
context = widgets.context(result)
chosen_tau = pair.chosen_tau  # chosen on calibration out-of-fold scores; applied to each test row's own score
n_bootstrap = flip_bootstrap()
token = runs.run_token(sel)
top = float(np.nanmax(test["identifier_probability"].to_numpy(dtype=float)))
slider_max = max(0.01, math.ceil(max(top, 0.0 if pair.flips_nothing else chosen_tau) * 100) / 100)
default_tau = min(round(chosen_tau, 3), slider_max)
learner, feature_set = pair.identifier
label = f"{model} · {figures.finding_label(finding)}"

st.caption(
    f"{label}. The identifier (`{learner}` on `{feature_set}`, not an oracle: oracle feature sets are never "
    "used for flipping) and the flip threshold were chosen "
    f"on the calibration split; everything below is on the held-out test split ({len(test):,} "
    f"{figures.plural(result.unit)}, unit: {result.unit}). ΔF1 CI: paired bootstrap over patients ({n_bootstrap:,} "
    "replicates)."
)
if pair.flips_nothing:
    st.caption(
        f"On calibration, no flip threshold improved F1 with at least {result.config.min_calibration_flips} "
        "flips: the chosen setting is to flip nothing."
    )
else:
    st.caption(
        f"tau = {chosen_tau:.3f} was chosen over every distinct out-of-fold identifier score of the "
        f"calibration split (it flips {int(chosen['calibration_flips']):,} calibration {result.unit}s, at least "
        f"{result.config.min_calibration_flips}). Each test {result.unit} is flipped when its own score, the "
        "score of the calibration fold model its patient is assigned to (the scale tau was chosen on), is ≥ tau: a "
        "rule that needs no other case. It is the one tau "
        "with a verdict."
    )


class _Range:
    """``value in _Range(low, high)``: low ≤ value ≤ high (valid taus from the URL)."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __contains__(self, value: object) -> bool:
        return isinstance(value, float) and self.low <= value <= self.high


@st.fragment
def live() -> None:
    tau = synced(
        st.slider,
        "Flip threshold tau (flip where the identifier's probability ≥ tau)",
        key=f"fl_tau::{model}::{finding}",
        param="tau",
        parse=float,
        default=float(default_tau),
        allowed=_Range(0.0, float(slider_max)),
        min_value=0.0,
        max_value=float(slider_max),
        step=0.001,
        format="%.3f",
    )
    at_choice = abs(float(tau) - default_tau) < 5e-4  # the slider's resting place is the calibration choice
    evaluation = runs.flip_at(
        token, model, finding, chosen_tau if at_choice else round(float(tau), 6), n_bootstrap, result
    )
    columns = st.columns(5)
    columns[0].metric("F1 before", f"{evaluation.f1_before:.3f}")
    columns[1].metric("F1 after", f"{evaluation.f1_after:.3f}", delta=f"{evaluation.delta_f1:+.4f}")
    columns[2].metric(
        "ΔF1 (95% CI)",
        f"{evaluation.delta_f1:+.4f}",
        help=f"[{evaluation.ci_low:+.4f}, {evaluation.ci_high:+.4f}]",
        delta_color="off",
        delta=f"95% CI [{evaluation.ci_low:+.4f}, {evaluation.ci_high:+.4f}]",
        delta_arrow="off",
    )
    columns[3].metric(
        "Flips", f"{evaluation.n_flips:,}", help=f"of {evaluation.n:,} test {figures.plural(result.unit)}"
    )
    if evaluation.exploratory:
        columns[4].metric(
            "Improved?",
            "no verdict",
            help="Only the flip threshold chosen on calibration gets a "
            "verdict; any other tau is chosen after seeing test data",
        )
        st.warning(
            "Exploratory: tau chosen after seeing test data. These numbers describe the test split at this "
            "tau; they are not an estimate of what flipping achieves, and carry no verdict."
        )
    else:
        columns[4].metric(
            "Improved?",
            "yes" if evaluation.improved else "no",
            help="The verdict at the tau chosen on calibration: yes only when the whole CI of the "
            "change lies above zero",
        )
    st.markdown(
        f"Precision {evaluation.precision_before:.3f} → **{evaluation.precision_after:.3f}** · "
        f"recall {evaluation.recall_before:.3f} → **{evaluation.recall_after:.3f}** · "
        f"tau chosen on calibration: **{chosen_tau:.3f}**" + (" (flip nothing)" if pair.flips_nothing else "")
    )
    st.session_state["fl_last"] = {"tau": tau, "delta_f1": evaluation.delta_f1, "n_flips": evaluation.n_flips}
    spec = figures.flip_curve_spec(
        pair.flip_curve,
        chosen_tau=chosen_tau,
        current_tau=tau,
        title=f"Change in F1 over tau: {figures.pair_label(model, finding)}",
        context=context,
    )
    st.plotly_chart(spec, key="fl_curve", config={"displaylogo": False})


live()
with st.expander("Result at the calibration-chosen tau"):
    st.dataframe(pair.table("flip"), hide_index=True, width="stretch")
widgets.caveat_lines(result, [finding])
