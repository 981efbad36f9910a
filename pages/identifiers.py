"""Identifiers: can misclassification be predicted? AUROC of the chosen identifier beside the confidence
baseline, and ROC curves. Oracle feature sets (ground-truth findings as features) are marked."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from pages import common

common.ensure_router()

st.title("Identifiers")
sel = common.selection()
if sel is None:
    st.info("Choose a cohort and models in the sidebar.")
    st.stop()

from cxrfail.analysis.identifiers import FEATURE_SETS, LEARNERS, is_oracle  # noqa: E402


def _feature_label(name: str) -> str:
    return f"{name}  [ORACLE: uses ground-truth findings]" if is_oracle(name) else name


learner_now, feature_set_now = common.identifier_choice()
left, right = st.columns(2)
learner = left.selectbox("Learner", LEARNERS, index=LEARNERS.index(learner_now) if learner_now in LEARNERS else 0,
                         key="id_learner")
feature_set = right.selectbox("Feature set", FEATURE_SETS, format_func=_feature_label,
                              index=FEATURE_SETS.index(feature_set_now) if feature_set_now in FEATURE_SETS else 0,
                              key="id_feature_set")
if (learner, feature_set) != (learner_now, feature_set_now):
    common.set_identifier_choice(learner, feature_set)
    st.rerun()
st.caption("The identifier chosen here is also the one used on Explain and Flip; another choice runs the "
           "analysis with it (cached on disk once done).")
oracle = is_oracle(feature_set)
if oracle:
    st.warning("Oracle feature set: it uses ground-truth labels of other findings, which a deployed system "
               "would not have. Read its AUROC as an upper bound, not as achievable performance.")

run = common.get_run(sel)
if run is None:
    st.stop()
result = run.result
common.plot(run.memo("id_heatmaps", lambda: figures.identifier_heatmaps(result.identifiers, learner, feature_set)),
            key="id_heatmaps")
st.caption("Identifier AUROC for predicting whether the model misclassifies an image, from patient-grouped "
           "out-of-fold probabilities over the whole cohort, beside the baseline that scores an image by how "
           "close the model's probability is to its threshold. 95% bootstrap CIs in brackets.")

st.subheader(f"ROC curves: {figures.finding_label(sel.finding)}")
model = common.model_picker(sel, "id_model")
scores = run.table("identifier_scores", model=model, finding=sel.finding, learner=learner, feature_set=feature_set)
common.plot(run.memo("roc", lambda m, f: figures.roc_figure(
    scores, title=f"ROC, predicting misclassification: {m} · {figures.finding_label(f)}", oracle=oracle),
    model, sel.finding), key="id_roc")
common.caveat_lines([sel.finding], oracle=oracle)

st.subheader("How much of it is the prediction itself?")
row = run.table("identifiers", model=model, finding=sel.finding, learner=learner, feature_set=feature_set)
if not row.empty:
    row = row.iloc[0]
    cols = st.columns(4)
    cols[0].metric("Identifier AUROC", f"{row['auroc']:.3f}")
    cols[1].metric("0/1 prediction alone", f"{row['prediction_auroc']:.3f}",
                   help="AUROC of the model's own positive/negative call as a misclassification score")
    cols[2].metric("Within predicted positives", f"{row['auroc_predicted_positive']:.3f}")
    cols[3].metric("Within predicted negatives", f"{row['auroc_predicted_negative']:.3f}")
    st.caption("For a rare finding most errors are false positives, so 'the model said positive' already "
               "ranks errors well. Within each predicted class the identifier must find errors on its own: "
               "near 0.5 there means it adds little beyond the prediction.")
with st.expander("Identifier table"):
    st.dataframe(run.table("identifiers", learner=learner, feature_set=feature_set), hide_index=True,
                 width="stretch")
