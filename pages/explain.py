"""Explain: SHAP attributions of the chosen identifier (global bar and beeswarm, and one image's waterfall)."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from cxrfail.analysis.explain import own_output_share
from cxrfail.analysis.identifiers import is_oracle
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import PICKED_IMAGE, synced

sel = frame("Explain")
result = runs.analysis(sel)
if result is None:
    st.stop()
context = widgets.context(result)
model = widgets.model_picker(sel, "ex_model", result)
pair = widgets.pair(result, model, sel.finding)
learner, feature_set = pair.identifier  # the run's flip identifier: never an oracle feature set
oracle = is_oracle(feature_set)
label = figures.pair_label(model, sel.finding)
shap = pair.shap_values
st.caption(
    f"Identifier: `{learner}` on `{feature_set}`"
    + (" [ORACLE]" if oracle else "")
    + f", cross-fitted on the calibration split (a test {result.unit} is scored by the fold model its patient "
    f"is assigned to); SHAP values, averaged over the fold models, explain their joint log-odds of "
    f"'misclassified' on a sample of test {figures.plural(result.unit)}."
)
if shap.empty:
    st.info("This run has no SHAP values for this model and finding.")
    st.stop()

share = own_output_share(shap).iloc[0]
st.metric(
    "Share of the attribution carried by the model's own outputs",
    f"{share['own_share']:.0%}",
    help=f"Sum of |SHAP| over the model's own probabilities ({share['own_features'].count(';') + 1} "
    f"features) / sum over every feature, on {int(share['n_rows']):,} test {figures.plural(result.unit)}. Near 100%: the "
    "identifier mostly re-reads the model's own confidence; the Identifiers page measures what the other "
    "features add to its AUROC.",
)

# one under the other: side by side, each would be too narrow for its labels in a 1024 px window
widgets.plot(figures.shap_bar, shap, title=f"Global importance: {label}", oracle=oracle, context=context, key="ex_bar")
widgets.plot(
    figures.shap_beeswarm,
    shap,
    title=f"SHAP per {result.unit}: {label}",
    seed=sel.seed,
    oracle=oracle,
    context=context,
    key="ex_swarm",
)

st.subheader(f"One {result.unit}")
outcomes = pair.outcomes
paths = sel.dataset.cohort.table["image_path"]
test_ids = pair.outcomes_in("test")["image_id"]
with_radiograph = test_ids[paths.reindex(test_ids.to_numpy()).notna().to_numpy()].tolist()
options = list(dict.fromkeys(with_radiograph + list(dict.fromkeys(shap["image_id"]))))
picked = st.session_state.get(PICKED_IMAGE)
if picked is not None and picked in set(outcomes["image_id"]) and picked not in options[:1]:
    options = [picked] + [i for i in options if i != picked]
radiographs = set(with_radiograph)
image_id = synced(
    st.selectbox,
    "Image",
    key="ex_image",
    param="image",
    options=options,
    default=options[0],
    format_func=lambda i: i + (" (radiograph)" if i in radiographs else "") + (" (picked)" if i == picked else ""),
    help="Test rows with a radiograph and the SHAP sample; pick any image on Cases to bring it here",
)
st.session_state[PICKED_IMAGE] = image_id

row = outcomes.loc[outcomes["image_id"] == image_id]
left, right = st.columns([2, 1])
with left:
    explained = runs.explain_image(runs.run_token(sel), model, sel.finding, image_id, result, sel.dataset)
if explained is not None:
    values, base_value, scale, gap = explained
    with left:
        widgets.plot(
            figures.shap_waterfall,
            values,
            image_id,
            base_value=base_value,
            title=f"Why does the identifier score {figures.escape(image_id)}?",
            context=context,
            key="ex_waterfall",
        )
        st.caption(
            f"SHAP on the {scale} scale: from the identifier's average output (base value) each bar adds one "
            "feature's contribution; the last bar is the identifier's output for this row."
            + (
                f" (Refit differs from the run's identifier by up to {gap:.2g} in probability.)"
                if gap == gap and gap > 1e-6
                else ""
            )
            + " The run's identifier probability of a row is one fold model's (out-of-fold for a calibration row, "
            "its patient's model for a test row); the waterfall explains the mean of the fold models."
        )
with right:
    widgets.radiograph(paths.get(image_id, None), sel.dataset, max_side=1024, caption=image_id)
    if not row.empty:
        r = row.iloc[0]
        st.markdown(
            f"**Label**: {'positive' if r['label'] == 1 else 'negative'} · **probability** "
            f"{r['probability']:.3f} (threshold {r['threshold']:.3f}) · "
            f"**{'misclassified' if r['misclassified'] else 'correct'}** ({r['split']} split)  \n"
            f"**Identifier probability** {r['identifier_probability']:.3f}"
        )
widgets.caveat_lines(result, [sel.finding], list(shap["feature"].unique()), oracle=oracle)
