"""What the dashboard server does once, as it starts: `lifespan`, the start-up hook of the `st.App` in
``app.py``.

It preloads, in a background thread, the code every page imports (the analysis: scikit-learn, SciPy; the
figures: plotly) and the demo dataset (`datasets.demo_dataset`, an `st.cache_resource`) while the first browser
connects: Streamlit's documented way to warm shared cached resources before the first session. Once the first
page has its analysis result, a second thread imports the image decoder of the Cases page (torch). The server
answers at once; a page that needs the demo before the preload is done waits for it (Streamlit computes a
cached value once), and a demo that cannot be loaded is reported by the page, as without the preload.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

log = logging.getLogger("cxrfail.dashboard")
PRELOAD_THREAD = "cxrfail-preload"
DECODER_THREAD = "cxrfail-preload-images"
#: set the first time a page has an analysis result (`cxrfail.dashboard.runs.AnalysisJob.result`)
FIRST_RESULT = threading.Event()
#: the image decoder is imported this long after the first result (its page draws first) ...
DECODER_DELAY_S = 5.0
#: ... or this long after start when no page has asked for a result by then
DECODER_WAIT_S = 120.0
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
    threading.Thread(target=preload_image_decoder, name=DECODER_THREAD, daemon=True).start()
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


def preload_image_decoder() -> None:
    """Import the image decoder of the Cases and Explain pages (`cxrfail.inference.images`, which imports
    torch: ~2 s with the GIL held) once the first page has its result, not at start: at start it delayed the
    first screen (cold start 9 s -> 12 s, bench/dashboard_bench.py --cold), and on the first visit of Cases it
    held up every other session's page (bench/load_bench.py)."""
    FIRST_RESULT.wait(DECODER_WAIT_S)
    time.sleep(DECODER_DELAY_S)
    from cxrfail.inference import images  # noqa: F401


def _not_from_preload(record: logging.LogRecord) -> bool:
    return record.threadName not in (PRELOAD_THREAD, DECODER_THREAD)
