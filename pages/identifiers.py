"""Identifiers: can misclassification be predicted? AUROC of the chosen identifier beside the confidence
baseline, and ROC curves. Oracle feature sets (ground-truth findings as features) are marked."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from cxrfail.analysis.config import FEATURE_SETS, LEARNERS
from cxrfail.analysis.identifiers import is_oracle
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import identifier_choice, set_identifier_choice

sel = widgets.require_selection(frame("Identifiers"))


def _feature_label(name: str) -> str:
    return f"{name}  [ORACLE: uses ground-truth findings]" if is_oracle(name) else name


learner_now, feature_set_now = identifier_choice()
left, right = st.columns(2)
learner = left.selectbox("Learner", LEARNERS, index=LEARNERS.index(learner_now) if learner_now in LEARNERS else 0,
                         key="id_learner")
feature_set = right.selectbox("Feature set", FEATURE_SETS, format_func=_feature_label,
                              index=FEATURE_SETS.index(feature_set_now) if feature_set_now in FEATURE_SETS else 0,
                              key="id_feature_set")
if (learner, feature_set) != (learner_now, feature_set_now):
    set_identifier_choice(learner, feature_set)
    st.rerun()
st.caption("The identifier chosen here is also the one used on Explain and Flip; another choice runs the "
           "analysis with it (cached on disk once done).")
oracle = is_oracle(feature_set)
if oracle:
    st.warning("Oracle feature set: it uses ground-truth labels of other findings, which a deployed system "
               "would not have. Read its AUROC as an upper bound, not as achievable performance.")

result = runs.analysis(sel)
if result is None:
    st.stop()
context = widgets.context(result)
widgets.plot(figures.identifier_heatmaps, result.identifiers, learner, feature_set, context=context,
             key="id_heatmaps")
st.caption(f"Identifier AUROC for predicting whether the model misclassifies each {result.unit}, from "
           "patient-grouped out-of-fold probabilities over the whole cohort, beside the baseline that scores a row by how "
           "close the model's probability is to its threshold. 95% bootstrap CIs in brackets.")

st.subheader(f"ROC curves: {figures.finding_label(sel.finding)}")
model = widgets.model_picker(sel, "id_model", result)
pair = widgets.pair(result, model, sel.finding)
widgets.plot(figures.roc_figure, pair.identifier_scores(learner, feature_set),
             title=f"ROC, predicting misclassification: {figures.pair_label(model, sel.finding)}", oracle=oracle,
             context=context, key="id_roc")
widgets.caveat_lines(result, [sel.finding], oracle=oracle)

st.subheader("How much of it is the prediction itself?")
row = pair.identifier_evaluation(learner, feature_set)
if row is not None:
    cols = st.columns(4)
    cols[0].metric("Identifier AUROC", f"{row['auroc']:.3f}")
    cols[1].metric("0/1 prediction alone", f"{row['prediction_auroc']:.3f}",
                   help="AUROC of the model's own positive/negative call as a misclassification score")
    cols[2].metric("Within predicted positives", f"{row['auroc_predicted_positive']:.3f}")
    cols[3].metric("Within predicted negatives", f"{row['auroc_predicted_negative']:.3f}")
    cols = st.columns(2)
    cols[0].metric("Identifier − confidence baseline", f"{row['delta_vs_baseline']:+.3f}",
                   delta=f"95% CI [{row['delta_vs_baseline_ci_low']:+.3f}, {row['delta_vs_baseline_ci_high']:+.3f}]",
                   delta_color="off", delta_arrow="off",
                   help="Paired difference in AUROC, both scores on the same patient resamples")
    cols[1].metric("Identifier − 0/1 prediction alone", f"{row['delta_vs_prediction']:+.3f}",
                   delta=f"95% CI [{row['delta_vs_prediction_ci_low']:+.3f}, "
                         f"{row['delta_vs_prediction_ci_high']:+.3f}]", delta_color="off", delta_arrow="off",
                   help="Paired difference in AUROC, both scores on the same patient resamples")
    st.caption("For a rare finding most errors are false positives, so 'the model said positive' already "
               "ranks errors well. Within each predicted class the identifier must find errors on its own: "
               "near 0.5 there means it adds little beyond the prediction.")
with st.expander("Identifier table"):
    identifiers = result.identifiers
    st.dataframe(identifiers.loc[(identifiers["learner"] == learner) & (identifiers["feature_set"] == feature_set)],
                 hide_index=True, width="stretch")
