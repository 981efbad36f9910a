"""Cases: browse rows by subgroup, outcome and identifier score; open one to see the radiograph, every model's
probability, the label and the identifier's verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from cxrfail import figures
from cxrfail.analysis.pair import run_levels
from cxrfail.analysis.slices import slice_table_mask
from cxrfail.dashboard import runs, widgets
from cxrfail.dashboard.sidebar import frame
from cxrfail.dashboard.state import PICKED_IMAGE, SLICE_FILTER, remember, restore, synced

PAGE_SIZE = 12
OUTCOMES = ("all", "misclassified", "false positive", "false negative", "correct")
SPLITS = ("test", "calibration", "all")
LABEL_ERROR = "probable label error"  # needs reference labels (`cxrfail.analysis.labels`)

sel = frame("Cases")
result = runs.analysis(sel)
if result is None:
    st.stop()
finding = sel.finding
table = sel.dataset.cohort.table
unit = result.unit


@st.cache_resource(max_entries=8, show_spinner=False)  # read only here: shared, not copied on every rerun
def _levels(token: str, _table: pd.DataFrame, _config) -> pd.DataFrame:
    return run_levels(_table, _config)


levels = _levels(runs.run_token(sel), table, result.config)

top = st.columns([1, 1, 1, 1])
with top[0]:
    model = widgets.model_picker(sel, "cs_model", result)
pair = widgets.pair(result, model, finding)
cases = pair.table("label_cases")
outcome = synced(
    top[1].selectbox,
    "Outcome",
    key="cs_outcome",
    param="outcome",
    options=list(OUTCOMES + ((LABEL_ERROR,) if pair.has_label_audit else ())),
    help="Probable label error: the model agrees with the reference labels and the cohort label "
    "disagrees (rows with reference labels only)",
)
split = synced(
    top[2].selectbox,
    "Split",
    key="cs_split",
    param="split",
    options=list(SPLITS),
    help="Thresholds and the identifier were chosen on calibration",
)
with_image = synced(
    top[3].checkbox,
    "Only rows with a radiograph",
    key="cs_with_image",
    param="with_image",
    default=True,
    parse=lambda text: text == "True",
    allowed=[True, False],
)
row2 = st.columns([1, 1, 2])
subgroup = synced(
    row2[0].selectbox, "Subgroup", key="cs_subgroup", param="subgroup", options=["(any)", *levels.columns]
)
level = None
if subgroup != "(any)":
    options = sorted(levels[subgroup].dropna().unique().tolist())
    by_text = {str(option): option for option in options}
    level = synced(
        row2[1].selectbox,
        "Level",
        key="cs_level",
        param="level",
        options=options,
        parse=lambda text: by_text.get(text, text),
    )
else:
    remember("level", None)
score_range = synced(
    row2[2].slider,
    "Identifier probability of misclassification",
    0.0,
    1.0,
    key="cs_score",
    param="score",
    many=True,
    parse=float,
    default=(0.0, 1.0),
    step=0.01,
)

rows = pair.outcomes_in(None if split == "all" else split)
wrong = rows["misclassified"].to_numpy(dtype=bool)
positive = rows["label"].to_numpy() == 1
label_errors = set(cases.loc[cases["verdict"] == LABEL_ERROR, "image_id"])
mask = {
    "all": np.ones(len(rows), dtype=bool),
    "misclassified": wrong,
    "false positive": wrong & ~positive,
    "false negative": wrong & positive,
    "correct": ~wrong,
    LABEL_ERROR: rows["image_id"].isin(label_errors).to_numpy(),
}[outcome].copy()
score = rows["identifier_probability"].to_numpy(dtype=float)
mask &= (score >= score_range[0]) & (score <= score_range[1])
ids = rows["image_id"].to_numpy()
paths = table["image_path"].reindex(ids)
if with_image:
    mask &= paths.notna().to_numpy()
if level is not None:
    mask &= (levels[subgroup].reindex(ids) == level).fillna(False).to_numpy(dtype=bool)
opened = st.session_state.get(SLICE_FILTER)  # a slice opened from the Slices page
if opened is not None and opened["finding"] == finding:
    note, clear = st.columns([5, 1])
    note.info(f"Slice: **{opened['slice']}** (opened from Slices; {opened['model']}, {opened['error_kind']})")
    if clear.button("Clear slice", key="cs_clear_slice"):
        st.session_state.pop(SLICE_FILTER, None)
        st.rerun()
    mask &= slice_table_mask(table.reindex(ids), opened["predicates"])
found = rows.loc[mask]

n_pages = max(1, math.ceil(len(found) / PAGE_SIZE))
header = st.columns([3, 1])
header[0].markdown(
    f"**{len(found):,} {figures.plural(unit, len(found))}** match ({model} · "
    f"{figures.finding_label(finding)}, {split} split; unit: {unit})."
)
page = synced(
    header[1].number_input,
    f"Page (of {n_pages})",
    key="cs_page",
    param="page",
    default=1,
    parse=int,
    allowed=range(1, n_pages + 1),
    min_value=1,
    max_value=n_pages,
    step=1,
)
restore(PICKED_IMAGE, "case")
if st.session_state.get(PICKED_IMAGE) is not None and st.session_state[PICKED_IMAGE] not in set(found["image_id"]):
    st.session_state.pop(PICKED_IMAGE)  # the opened row no longer matches the filters
    st.caption(f"The opened {unit} does not match these filters and was closed.")


def _verdict(prediction: int, flipped_prediction: int) -> str:
    """The library's flip decision for the row (`outcomes.flipped_prediction`), in words."""
    return "flagged: likely misclassified" if int(flipped_prediction) != int(prediction) else "not flagged"


def _detail(picked: str) -> None:
    """The opened row: radiograph, demographics, every model's probability, label, identifier verdicts."""
    info = table.loc[picked]
    head, close = st.columns([5, 1])
    head.subheader(f"{unit.capitalize()} {picked}")
    if close.button("Close", key="cs_close"):
        st.session_state.pop(PICKED_IMAGE, None)
        st.rerun()
    left, right = st.columns([1, 2])
    with left:
        widgets.radiograph(info["image_path"], sel.dataset, max_side=1024, caption=picked)
        st.markdown(f"Patient `{info['patient_id']}` · age {info['age']:.0f} · sex {info['sex']} · view {info['view']}")
        devices = info.get("Support Devices", np.nan)
        if not pd.isna(devices):
            st.caption(f"Support devices: {'yes' if devices == 1 else 'no'}")
            widgets.caveat_lines(result, (), ["Support Devices"])
    with right:
        every = pd.concat(
            [
                result.pair(m, finding).outcomes.loc[lambda f: f["image_id"] == picked]
                for m in sel.models
                if (m, finding) in result.pairs
            ],
            ignore_index=True,
        )
        if every.empty:
            st.info(f"This {unit} is not in the analysis for this finding.")
        else:
            first = every.iloc[0]
            st.markdown(
                f"**{figures.finding_label(finding)} label: "
                f"{'positive' if first['label'] == 1 else 'negative'}** ({first['split']} split)"
            )
            read = cases.loc[cases["image_id"] == picked]
            if not read.empty:
                expert = read.iloc[0]
                st.markdown(
                    f"**Reference label: {'positive' if expert['reference_label'] == 1 else 'negative'}** "
                    f"({sel.dataset.reference.name}) · {model}: {expert['verdict']}"
                )
            widgets.plot(
                figures.case_probabilities,
                every,
                title=f"Every model's probability of {figures.finding_label(finding)}",
                key="cs_probs",
            )
            verdicts = every[
                [
                    "model",
                    "probability",
                    "threshold",
                    "misclassified",
                    "identifier_probability",
                    "prediction",
                    "flipped_prediction",
                ]
            ].copy()
            verdicts.insert(
                4,
                "identifier verdict",
                [_verdict(p, f) for p, f in zip(verdicts["prediction"], verdicts["flipped_prediction"])],
            )
            st.dataframe(verdicts, hide_index=True, width="stretch")
            st.caption(
                "Flagged: the run's flip rule inverts this prediction (the identifier's score of this row "
                "is at or above the flip threshold chosen on calibration; out-of-fold on a calibration row)."
            )
        if st.button(f"Explain this {unit}", key="cs_explain"):
            st.switch_page("pages/explain.py")
    st.divider()


shown = found.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
detail = st.container()  # the opened row, above the grid (filled once the grid's buttons are read)
grid = st.columns(4)
for index, (_, r) in enumerate(shown.iterrows()):
    with grid[index % 4]:
        with st.container(border=True):
            path = table["image_path"].get(r["image_id"], pd.NA)
            if isinstance(path, str):
                widgets.radiograph(path, sel.dataset)
            status = "✗ misclassified" if r["misclassified"] else "✓ correct"
            st.markdown(
                f"`{r['image_id']}`  \nlabel {'positive' if r['label'] == 1 else 'negative'} · "
                f"p={r['probability']:.3f} · {status}  \nidentifier {r['identifier_probability']:.3f} "
                f"({_verdict(r['prediction'], r['flipped_prediction'])})"
            )
            if st.button("Open", key=f"cs_open_{r['image_id']}"):
                st.session_state[PICKED_IMAGE] = r["image_id"]

picked = st.session_state.get(PICKED_IMAGE)
remember("case", picked)
if picked is not None and picked in table.index:
    with detail:
        _detail(picked)
widgets.caveat_lines(result, [finding], list(levels.columns))
