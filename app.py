"""cxrfail dashboard: `streamlit run app.py` (or `make run`).

The server entry: Streamlit's `st.App` serving the Overview (``overview.py``, Streamlit's main script) and the
other pages (``pages/``, Streamlit's multipage folder), with a start-up hook that preloads the analysis code
and the demo data while the first browser connects (`cxrfail.dashboard.startup`).
"""

import streamlit as st

from cxrfail.dashboard.startup import lifespan

app = st.App("overview.py", lifespan=lifespan)
