"""Explain: SHAP attributions of the chosen identifier (global bar and beeswarm, and one image's waterfall)."""

from __future__ import annotations

import streamlit as st

from cxrfail import figures
from pages import common

common.ensure_router()

st.title("Explain")
sel = common.selection()
run = common.get_run(sel)
if run is None:
    st.stop()
from cxrfail.analysis.identifiers import is_oracle  # noqa: E402

oracle = is_oracle(sel.feature_set)
model = common.model_picker(sel, "ex_model")
label = f"{model} · {figures.finding_label(sel.finding)}"
shap = run.table("shap_values", model=model, finding=sel.finding)
st.caption(f"Identifier: `{sel.learner}` on `{sel.feature_set}`" + (" [ORACLE]" if oracle else "")
           + ", fitted on the calibration split; SHAP values explain its log-odds of 'misclassified' on a sample "
             "of test images.")
if shap.empty:
    st.info("This run has no SHAP values for this model and finding.")
    st.stop()

left, right = st.columns(2)
with left:
    common.plot(run.memo("shap_bar", lambda m, f: figures.shap_bar(shap, title=f"Global importance: {label}",
                                                                     oracle=oracle), model, sel.finding),
                key="ex_bar")
with right:
    common.plot(run.memo("shap_swarm", lambda m, f: figures.shap_beeswarm(shap, title=f"SHAP per image: {label}",
                                                                            seed=sel.seed, oracle=oracle),
                         model, sel.finding), key="ex_swarm")

st.subheader("One image")
outcomes = run.outcomes(model, sel.finding)
test_rows = run.outcomes(model, sel.finding, "test")
paths = sel.dataset.cohort.table["image_path"]


def _choices(model: str, finding: str) -> tuple[list[str], frozenset[str], frozenset[str]]:
    """(test images with a radiograph, then the SHAP sample; ids with a radiograph; every id of the pair)."""
    ids = test_rows["image_id"]
    with_radiograph = ids[paths.reindex(ids.to_numpy()).notna().to_numpy()].tolist()
    options = list(dict.fromkeys(with_radiograph + list(dict.fromkeys(shap["image_id"]))))
    return options, frozenset(with_radiograph), frozenset(outcomes["image_id"])


base_options, with_radiograph, known = run.memo("ex_choices", _choices, model, sel.finding)
picked = st.session_state.get(common.PICKED_IMAGE)
options = [picked] + [i for i in base_options if i != picked] if picked in known else base_options
if st.session_state.get("ex_image") not in options:
    st.session_state["ex_image"] = options[0]
image_id = st.selectbox(
    "Image", options, key="ex_image",
    format_func=lambda i: i + (" (radiograph)" if i in with_radiograph else "")
    + (" (picked)" if i == picked else ""),
    help="Test images with a radiograph and the SHAP sample; pick any image on Cases to bring it here")
st.session_state[common.PICKED_IMAGE] = image_id

row = outcomes.loc[outcomes["image_id"] == image_id]
is_calibration = not row.empty and row.iloc[0]["split"] == "calibration"
left, right = st.columns([2, 1])
with left:
    try:
        with st.spinner("Refitting the identifier on the calibration split to explain this image…"):
            values, base_value, scale, gap = run.explain_image(model, sel.finding, image_id)
    except Exception as exc:  # an identifier that cannot be refitted: fall back to the sampled values
        values, base_value, scale, gap = shap.loc[shap["image_id"] == image_id], None, "log-odds", float("nan")
        st.caption(f"Could not refit the identifier ({exc}); showing the run's sampled values when present.")
    common.plot(run.memo("ex_waterfall_fig", lambda m, f, i: figures.shap_waterfall(
        values, image_id, base_value=base_value, title=f"Why does the identifier score image {image_id}?"),
        model, sel.finding, image_id), key="ex_waterfall")
    st.caption(f"SHAP on the {scale} scale: from the identifier's average output (base value) each bar adds one "
               "feature's contribution; the last bar is the identifier's output for this image."
               + (f" (Refit differs from the run's identifier by up to {gap:.2g} in probability.)"
                  if gap == gap and gap > 1e-6 else "")
               + (" For a calibration image the run's identifier probability is out-of-fold; the waterfall "
                  "explains the identifier fitted on all calibration rows."
                  if is_calibration
                  else ""))
with right:
    path = paths.get(image_id, None)
    if isinstance(path, str):
        st.image(path, caption=image_id, width="stretch")
    else:
        st.caption("No radiograph on disk for this image.")
    if not row.empty:
        r = row.iloc[0]
        st.markdown(f"**Label**: {'positive' if r['label'] == 1 else 'negative'} · **probability** "
                    f"{r['probability']:.3f} (threshold {r['threshold']:.3f}) · "
                    f"**{'misclassified' if r['misclassified'] else 'correct'}** ({r['split']} split)  \n"
                    f"**Identifier probability** {r['identifier_probability']:.3f}")
common.caveat_lines([sel.finding], list(shap["feature"].unique()), oracle=oracle)
