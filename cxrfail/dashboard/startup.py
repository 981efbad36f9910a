"""What the dashboard server does once, as it starts: `lifespan`, the start-up hook of the `st.App` in
``app.py``.

It preloads, in a background thread, the code every page imports (the analysis: scikit-learn, SciPy; the
figures: plotly) and the demo dataset (`datasets.demo_dataset`, an `st.cache_resource`) while the first browser
connects: Streamlit's documented way to warm shared cached resources before the first session. The server
answers at once; a page that needs the demo before the preload is done waits for it (Streamlit computes a
cached value once), and a demo that cannot be loaded is reported by the page, as without the preload.
"""

from __future__ import annotations

import contextlib
import logging
import threading

log = logging.getLogger("cxrfail.dashboard")
PRELOAD_THREAD = "cxrfail-preload"
#: Streamlit's logger that warns when a cached function runs outside a session (the preload does, by design).
SCRIPT_CONTEXT_LOGGER = "streamlit.runtime.scriptrunner_utils.script_run_context"


@contextlib.asynccontextmanager
async def lifespan(app):
    """Give the server a private temporary folder (`cxrfail.files.use_private_temp_root`: uploads and the
    analysis workers' inputs live there and go with the server, SIGTERM included), start the preload and serve;
    at shutdown stop the worker processes and remove the folder."""
    from cxrfail.files import release_private_temp_root, use_private_temp_root

    use_private_temp_root()
    logging.getLogger(SCRIPT_CONTEXT_LOGGER).addFilter(_not_from_preload)
    threading.Thread(target=preload, name=PRELOAD_THREAD, daemon=True).start()
    try:
        yield
    finally:
        release_private_temp_root()


def preload() -> None:
    """Import what the pages import and load the demo into its cache. Imported here, after Streamlit's runtime
    has started, so the cached functions use the server's caches."""
    from cxrfail import figures  # noqa: F401  (in the order the Overview imports them)
    from cxrfail.dashboard import datasets, runs, sidebar, widgets  # noqa: F401
    from cxrfail.errors import CxrfailInputError

    try:
        datasets.demo_dataset()
    except CxrfailInputError as exc:  # the sidebar says why when a page asks for the demo
        log.info("demo data not preloaded: %s", exc)


def _not_from_preload(record: logging.LogRecord) -> bool:
    return record.threadName != PRELOAD_THREAD
