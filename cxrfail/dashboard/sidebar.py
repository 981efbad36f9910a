"""`frame(title)`: the one call every page makes first. Page config, the navigation, the shared sidebar
(cohort, models, finding, seed, analysis settings) and the page title; returns the sidebar's `Selection`.

The page scripts live in Streamlit's native multipage folder (``pages/``, beside ``overview.py``, the Overview
and Streamlit's main script, which ``app.py`` serves). Streamlit's own page list is switched off
(``client.showSidebarNavigation = false``) and this module draws the navigation with `st.page_link`, so pages
have readable names and sections, and a deep link (``/flip``) runs the page, which draws the same sidebar.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from cxrfail.analysis.config import FEATURE_SETS, LEARNERS, THRESHOLD_METHODS
from cxrfail.analysis.identifiers import is_oracle
from cxrfail.dashboard import datasets as data
from cxrfail.dashboard.settings import base_config, env_list
from cxrfail.dashboard.state import IDENTIFIER, Selection, identifier_choice, remember, restore
from cxrfail.figures import finding_label
from cxrfail.findings import APPROXIMATE_FINDINGS

ATTRIBUTION = (
    "Radiographs and labels: NIH Clinical Center, ChestX-ray14 (Wang et al., “ChestX-ray8”, CVPR 2017). "
    "Predictions: reproduce-chexnet (J. Zech) and its fork reproduce-chexnet-nih-chexphoto, BSD-3-Clause. "
    "Method: CheXbreak (Chen et al., MLHC 2021). A research tool, not for clinical use."
)

#: section → (script, label, icon); the script paths are relative to the folder of ``overview.py``.
NAVIGATION = {
    "Analysis": (
        ("overview.py", "Overview", ":material/dashboard:"),
        ("pages/subgroups.py", "Subgroups", ":material/groups:"),
        ("pages/identifiers.py", "Identifiers", ":material/troubleshoot:"),
        ("pages/explain.py", "Explain", ":material/insights:"),
        ("pages/flip.py", "Flip", ":material/swap_horiz:"),
        ("pages/slices.py", "Slices", ":material/filter_alt:"),
        ("pages/cases.py", "Cases", ":material/image_search:"),
        ("pages/labels.py", "Labels", ":material/fact_check:"),
    ),
    "Data": (
        ("pages/inference.py", "Run inference", ":material/memory:"),
        ("pages/data.py", "Data", ":material/upload_file:"),
        ("pages/export.py", "Export", ":material/download:"),
    ),
}
#: The sidebar's widget keys. Streamlit drops a widget's value when a page without that widget runs; each page
#: draws the same sidebar, and re-assigning these keys first (Streamlit's documented way to keep widget values
#: across pages) carries the choice from page to page.
SIDEBAR_KEYS = ("sel_dataset", "sel_models", "sel_findings", "sel_finding", "sel_seed", "sel_threshold")


def frame(title: str) -> Selection | None:
    """Set up the page and draw the shared sidebar; returns the selection (None when nothing is loaded)."""
    st.set_page_config(page_title=f"{title} · cxrfail", page_icon="🩻", layout="wide")
    data.clear_stale_uploads()
    with st.sidebar:
        for section, pages in NAVIGATION.items():
            st.caption(section)
            for script, label, icon in pages:
                st.page_link(script, label=label, icon=icon)
        st.divider()
        selection = _selection()
        st.divider()
        st.caption(ATTRIBUTION)
    st.title(title)
    return selection


def default_findings(dataset: data.Dataset, model_names: Sequence[str]) -> list[str]:
    """The findings analysed at start: ``CXRFAIL_DEMO_FINDINGS`` when set, else the configuration's findings
    (the five competition tasks) and every finding the dataset's reference labels read (on the demo
    Pneumothorax and Lung Lesion: the label audit and the "probable label error" filter need them), among
    those the chosen models predict."""
    available = dataset.findings(model_names)
    wanted = env_list("CXRFAIL_DEMO_FINDINGS") or [*base_config().findings, *dataset.reference_findings]
    return list(dict.fromkeys(f for f in wanted if f in available)) or list(available[:5])


def default_models(dataset: data.Dataset) -> list[str]:
    """All the dataset's models; for the demo, those of ``CXRFAIL_DEMO_MODELS`` when set."""
    if dataset.key != data.DEMO_KEY:
        return list(dataset.model_names)
    wanted = [m for m in env_list("CXRFAIL_DEMO_MODELS") if m in dataset.model_names]
    return wanted or list(dataset.model_names)


def _reset_models() -> None:
    for key in ("sel_models", "sel_findings", "sel_finding"):
        st.session_state.pop(key, None)


def _selection() -> Selection | None:
    """The sidebar's widgets (inside ``st.sidebar``)."""
    for key in SIDEBAR_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    choices = data.available()
    pending = st.session_state.pop(data.PENDING, None)
    if pending is not None and pending[0] in choices:
        key, models = pending
        st.session_state["sel_dataset"] = key
        _reset_models()
        st.session_state["sel_models"] = [m for m in models if m in choices[key].model_names]
    _restore_from_url()
    # a cohort that is gone (or a URL naming none that exists) takes its models and findings with it; no cohort
    # chosen yet (a URL without ``cohort=``) means the first one, and keeps what the URL restored for it
    if "sel_dataset" in st.session_state and st.session_state["sel_dataset"] not in choices:
        st.session_state.pop("sel_dataset")
        _reset_models()
    if not choices:
        st.warning(
            "No data loaded. "
            + st.session_state.get(data.DEMO_ERROR, "")
            + " Load a cohort and prediction files on the Data page."
        )
        return None
    key = st.selectbox(
        "Cohort",
        list(choices),
        format_func=lambda k: choices[k].label,
        key="sel_dataset",
        on_change=_reset_models,
        help="Add your own on the Data page",
    )
    dataset = choices[key]
    names = list(dataset.model_names)
    if not st.session_state.get("sel_models") or not set(st.session_state["sel_models"]) <= set(names):
        st.session_state["sel_models"] = default_models(dataset)
    models = st.multiselect(
        "Models", names, key="sel_models", help="The analysis runs on the images every chosen model has predicted"
    )
    if not models:
        st.info("Choose at least one model.")
        return None
    findings_available = list(dataset.findings(models))
    if "sel_findings" not in st.session_state or not set(st.session_state["sel_findings"]) <= set(findings_available):
        st.session_state["sel_findings"] = default_findings(dataset, models)
    findings_chosen = st.session_state["sel_findings"] or default_findings(dataset, models)
    if st.session_state.get("sel_finding") not in findings_available:
        st.session_state["sel_finding"] = findings_chosen[0]
    # every finding the cohort and the chosen models share, one click away: one not analysed yet is added to
    # the analysed findings (Analysis settings), which starts its run
    finding = st.selectbox(
        "Finding",
        findings_available,
        key="sel_finding",
        format_func=lambda f: finding_label(f) + ("" if f in findings_chosen else " (adds it)"),
        help="A finding marked 'adds it' is added to the findings analysed",
    )
    if finding not in findings_chosen:
        findings_chosen = st.session_state["sel_findings"] = [*findings_chosen, finding]
    st.session_state.setdefault("sel_seed", int(base_config().seed))
    st.session_state.setdefault("sel_threshold", base_config().threshold_method)
    seed = st.number_input(
        "Seed",
        min_value=0,
        max_value=2**31 - 1,
        step=1,
        key="sel_seed",
        help="Seeds the patient split, the cross-validation folds and the bootstrap",
    )
    with st.expander("Analysis settings"):
        findings = st.multiselect(
            "Findings analysed",
            findings_available,
            key="sel_findings",
            format_func=finding_label,
            help="Every page can show these; changing them reruns the analysis",
        )
        threshold = st.selectbox(
            "Operating threshold",
            THRESHOLD_METHODS,
            key="sel_threshold",
            help="Chosen per model and finding on the calibration split",
        )
    learner, feature_set = identifier_choice()
    oracle_tag = " **[oracle]**" if is_oracle(feature_set) else ""
    st.caption(f"Identifier: `{learner}` on `{feature_set}`{oracle_tag} (change it on Identifiers)")
    if finding in APPROXIMATE_FINDINGS:
        st.caption(f"*{finding}: {APPROXIMATE_FINDINGS[finding]}")
    findings = findings or findings_chosen
    if finding not in findings:
        finding = findings[0]
    for param, value in (
        ("cohort", key),
        ("models", models),
        ("finding", finding),
        ("findings", findings),
        ("seed", int(seed)),
        ("threshold", threshold),
        ("learner", learner),
        ("features", feature_set),
    ):
        remember(param, value)
    return Selection(
        dataset=dataset,
        models=tuple(models),
        findings=tuple(findings),
        finding=finding,
        seed=int(seed),
        learner=learner,
        feature_set=feature_set,
        threshold_method=threshold,
    )


def _restore_from_url() -> None:
    """A new session (a reload, a shared link) takes the sidebar's selection from the URL; what is not a
    valid choice is replaced by the defaults below."""
    restore("sel_dataset", "cohort")
    restore("sel_models", "models", many=True)
    restore("sel_findings", "findings", many=True)
    restore("sel_finding", "finding")
    restore("sel_seed", "seed", parse=int, valid=lambda seed: 0 <= seed < 2**31)
    restore("sel_threshold", "threshold", valid=lambda method: method in THRESHOLD_METHODS)
    learner, feature_set = st.query_params.get("learner"), st.query_params.get("features")
    if IDENTIFIER not in st.session_state and learner in LEARNERS and feature_set in FEATURE_SETS:
        st.session_state[IDENTIFIER] = (learner, feature_set)
