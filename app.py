"""cxrfail dashboard: `streamlit run app.py` (or `make run`).

The entry point: page config, the shared sidebar (cohort, models, finding, seed) and `st.navigation` over the
thin pages in ``pages/``. Shared helpers live in ``pages/common.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `pages.common` imports from the app folder (AppTest does not add it)
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from pages import common  # noqa: E402

common.ensure_router(entry=True)
st.set_page_config(page_title="cxrfail: where chest X-ray classifiers fail", page_icon="🩻", layout="wide")

PAGES = {
    "Analysis": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/subgroups.py", title="Subgroups", icon=":material/groups:", url_path="subgroups"),
        st.Page("pages/identifiers.py", title="Identifiers", icon=":material/troubleshoot:", url_path="identifiers"),
        st.Page("pages/explain.py", title="Explain", icon=":material/insights:", url_path="explain"),
        st.Page("pages/flip.py", title="Flip", icon=":material/swap_horiz:", url_path="flip"),
        st.Page("pages/cases.py", title="Cases", icon=":material/image_search:", url_path="cases"),
    ],
    "Data": [
        st.Page("pages/inference.py", title="Run inference", icon=":material/memory:", url_path="inference"),
        st.Page("pages/data.py", title="Data", icon=":material/upload_file:", url_path="data"),
        st.Page("pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    ],
}

page = st.navigation(PAGES)
st.session_state["_cxrfail_selection"] = common.sidebar()
page.run()
