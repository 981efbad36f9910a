"""Export page, first visit: what the server spends before the page is drawn, against drawing every report
figure eagerly (what the page did before it drew figures on request), measured in the same process on the same
run.

1. ``export_first_visit_s``: server time of the process's first visit to Export (an AppTest switch to it; the
   run already in memory: the Overview ran first in another session and its full run finished).
2. ``eager_figures_s``: `figures.report_figures` for the sidebar's finding (the old first visit's figure set),
   ``eager_all_figures_s`` for all findings; ``catalogue_s``: `figures.report_catalogue` (the names the page now lists).
3. ``first_visit_vs_eager:``: ratio of (1) to (1) + the eager figure set of the sidebar's finding.

    .venv/bin/python bench/export_bench.py [--quick]    # --quick: the test subset (2 models x 2 findings)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK_ENV = {
    "CXRFAIL_DEMO_MODELS": "densenet121_jrzech,densenet121_1epoch",
    "CXRFAIL_DEMO_FINDINGS": "Edema,Cardiomegaly",
    "CXRFAIL_DEMO_CONFIG": json.dumps({"n_bootstrap": 200, "shap_max_samples": 100, "n_folds": 3}),
}


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test subset instead of the full demo")
    args = parser.parse_args()
    if args.quick:
        os.environ.update(QUICK_ENV)
    os.environ.setdefault("CXRFAIL_INLINE_WAIT_S", "1800")  # AppTest has no timers: pages wait for their run
    sys.path.insert(0, str(ROOT))
    from streamlit.testing.v1 import AppTest

    from cxrfail import figures
    from cxrfail.analysis.config import FULL_SCOPE
    from cxrfail.dashboard import runs

    warm = AppTest.from_file(str(ROOT / "overview.py"), default_timeout=1800)
    warm.run()
    for job in runs.running_jobs():  # the complete run the Export page shows, computed or read from the disk cache
        job.wait(1800)
    fresh = AppTest.from_file(str(ROOT / "overview.py"), default_timeout=600)
    fresh.run()
    fresh.switch_page("pages/export.py")
    first_visit = _timed(fresh.run)
    assert not fresh.exception, [e.value for e in fresh.exception]
    listed = fresh.selectbox(key="ex_figure").options  # the page was drawn, not waiting for its run
    finding = fresh.session_state["sel_finding"]
    result = next(job.result() for job in list(runs._JOBS) if job.done and job.scope == FULL_SCOPE)

    catalogue = _timed(lambda: figures.report_catalogue(result, findings=(finding,)))
    shown = len(figures.report_catalogue(result, findings=(finding,)))
    eager = _timed(lambda: figures.report_figures(result, findings=(finding,)))
    every = len(figures.report_catalogue(result))
    eager_all = _timed(lambda: figures.report_figures(result))
    print(f"run: {len(result.models)} models x {len(result.findings)} findings; sidebar finding {finding}")
    print(f"export_first_visit_s: {first_visit:.3f}")
    print(f"catalogue_s: {catalogue:.4f} ({shown} names; the page listed {len(listed)})")
    print(f"eager_figures_s: {eager:.3f} ({shown} figures of the sidebar's finding, the old first visit's set)")
    print(f"eager_all_figures_s: {eager_all:.3f} ({every} figures, all findings: the zip's set)")
    print(f"first_visit_vs_eager: {first_visit / (first_visit + eager):.2f}")


if __name__ == "__main__":
    main()
