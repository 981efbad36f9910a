"""Identifiers: can misclassification be predicted, and what do clinical features add beyond the model's own
probability? The ladder of feature sets with paired intervals first; the confidence heuristic, ROC curves and
the prediction check after. Everything on the held-out test split; oracle feature sets are marked."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from cxrfail.analysis.config import FEATURE_SETS, LEARNERS, PROBABILITY_ONLY
from cxrfail.analysis.identifiers import is_oracle
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import identifier_choice, set_identifier_choice

sel = widgets.require_selection(frame("Identifiers"))


def _feature_label(name: str) -> str:
    return f"{name}  [ORACLE: uses ground-truth findings]" if is_oracle(name) else name


learner_now, feature_set_now = identifier_choice()
left, right = st.columns(2)
learner = left.selectbox(
    "Learner", LEARNERS, index=LEARNERS.index(learner_now) if learner_now in LEARNERS else 0, key="id_learner"
)
feature_set = right.selectbox(
    "Feature set (details below; the run's identifier unless an oracle)",
    FEATURE_SETS,
    format_func=_feature_label,
    index=FEATURE_SETS.index(feature_set_now) if feature_set_now in FEATURE_SETS else 0,
    key="id_feature_set",
)
if (learner, feature_set) != (learner_now, feature_set_now):
    set_identifier_choice(learner, feature_set)
    st.rerun()
oracle = is_oracle(feature_set)

result = runs.analysis(sel)
if result is None:
    st.stop()
context = widgets.context(result)
identifiers = result.identifiers

st.subheader("What clinical features add beyond the model's own probability")
widgets.plot(figures.identifier_ladder, identifiers, learner, sel.finding, context=context, key="id_ladder")
st.caption(
    f"Each rung is the same learner ({learner}) cross-fitted on the same calibration folds; its AUROC for "
    f"predicting whether the model misclassifies a {result.unit} is measured on the held-out test split "
    f"(test patients only), 95% CIs resampling test patients. Right: the paired difference to "
    f"`{PROBABILITY_ONLY}` (the same learner on the model's probability for {figures.finding_label(sel.finding)} "
    "alone), every rung scored on the same resamples; an interval that covers 0 means the extra features "
    "add nothing measurable. Oracle rungs use ground-truth labels a deployed system would not have."
)
st.subheader(f"ROC curves: {figures.finding_label(sel.finding)}")
model = widgets.model_picker(sel, "id_model", result)
pair = widgets.pair(result, model, sel.finding)
ladder = pair.identifiers.loc[pair.identifiers["learner"] == learner]
if not ladder.empty:
    st.dataframe(
        ladder[
            [
                "feature_set",
                "oracle",
                "auroc",
                "ci_low",
                "ci_high",
                "delta_vs_probability_only",
                "delta_vs_probability_only_ci_low",
                "delta_vs_probability_only_ci_high",
                "baseline_auroc",
                "n",
                "n_patients",
                "n_misclassified",
                "learner_settings",
            ]
        ],
        hide_index=True,
        width="stretch",
    )

st.subheader("Beside the confidence heuristic (secondary)")
if oracle:
    st.warning(
        "Oracle feature set: it uses ground-truth labels of other findings, which a deployed system "
        "would not have. Read its AUROC as an upper bound, not as achievable performance."
    )
widgets.plot(figures.identifier_heatmaps, identifiers, learner, feature_set, context=context, key="id_heatmaps")
st.caption(
    f"Test-split AUROC of `{feature_set}` beside the heuristic that scores a {result.unit} by how close the "
    "model's probability is to its threshold. The heuristic cannot learn where a model errs (often far "
    f"above the threshold as well as just below it), so the fair reference is `{PROBABILITY_ONLY}` above."
)

st.subheader(f"ROC curves on the test split: {figures.pair_label(model, sel.finding)}")
scores = result.identifier_scores
scores = scores.loc[
    (scores["model"] == model).to_numpy()
    & (scores["finding"] == sel.finding).to_numpy()
    & (scores["learner"] == learner).to_numpy()
]
widgets.plot(
    figures.roc_figure,
    scores,
    outcomes=pair.outcomes,
    title=f"ROC, predicting misclassification: {figures.pair_label(model, sel.finding)}",
    context=context,
    key="id_roc",
)
widgets.caveat_lines(result, [sel.finding], oracle=bool(ladder["oracle"].astype(bool).any()) if len(ladder) else oracle)

st.subheader("How much of it is the prediction itself?")
row = pair.identifier_evaluation(learner, feature_set)
if row is not None:
    cols = st.columns(4)
    cols[0].metric(
        "Identifier AUROC",
        f"{row['auroc']:.3f}",
        help=f"{feature_set}, test split, 95% CI [{row['ci_low']:.3f}, {row['ci_high']:.3f}]",
    )
    cols[1].metric(
        "0/1 prediction alone",
        f"{row['prediction_auroc']:.3f}",
        help="AUROC of the model's own positive/negative call as a misclassification score",
    )
    cols[2].metric("Within predicted positives", f"{row['auroc_predicted_positive']:.3f}")
    cols[3].metric("Within predicted negatives", f"{row['auroc_predicted_negative']:.3f}")
    cols = st.columns(2)
    cols[0].metric(
        "Identifier − confidence baseline",
        f"{row['delta_vs_baseline']:+.3f}",
        delta=f"95% CI [{row['delta_vs_baseline_ci_low']:+.3f}, {row['delta_vs_baseline_ci_high']:+.3f}]",
        delta_color="off",
        delta_arrow="off",
        help="Paired difference in AUROC, both scores on the same test-patient resamples",
    )
    cols[1].metric(
        "Identifier − 0/1 prediction alone",
        f"{row['delta_vs_prediction']:+.3f}",
        delta=f"95% CI [{row['delta_vs_prediction_ci_low']:+.3f}, {row['delta_vs_prediction_ci_high']:+.3f}]",
        delta_color="off",
        delta_arrow="off",
        help="Paired difference in AUROC, both scores on the same test-patient resamples",
    )
    st.caption(
        "For a rare finding most errors are false positives, so 'the model said positive' already "
        "ranks errors well. Within each predicted class the identifier must find errors on its own: "
        "near 0.5 there means it adds little beyond the prediction."
    )
with st.expander("Identifier table"):
    st.dataframe(identifiers.loc[identifiers["learner"] == learner], hide_index=True, width="stretch")
