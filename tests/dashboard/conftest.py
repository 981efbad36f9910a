"""Fixtures for the dashboard tests (AppTest and the browser test).

The dashboard's default run (4 models × 5 findings, 2,000 bootstrap replicates) is too slow for a test, so the
tests limit it through the environment variables the app documents (`cxrfail/dashboard/settings.py`): two demo models, two
findings, fewer bootstrap replicates, folds and SHAP rows. The analysis then runs once per test session into
a fresh on-disk cache (``CXRFAIL_CACHE_DIR``), which every later AppTest and the browser test's
``streamlit run`` read back. Set ``CXRFAIL_TEST_CACHE_DIR`` to keep that cache between sessions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_helpers import COLD_RUN_TIMEOUT_S, TEST_CONFIG, TEST_FINDINGS, TEST_MODELS, new_app  # noqa: E402


def _demo_available() -> bool:
    try:
        from cxrfail import demo

        demo.demo_dir()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def dashboard_env(tmp_path_factory) -> dict[str, str]:
    """Environment of the dashboard tests (applied per test by `_apply_env`, passed on to subprocesses)."""
    if not _demo_available():
        pytest.skip("the demo data (../shared/data/nih-chexnet or $CXRFAIL_DEMO_DIR) is not present")
    cache = os.environ.get("CXRFAIL_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("cxrfail-cache"))
    return {
        "CXRFAIL_CACHE_DIR": cache,
        "CXRFAIL_DEMO_MODELS": ",".join(TEST_MODELS),
        "CXRFAIL_DEMO_FINDINGS": ",".join(TEST_FINDINGS),
        "CXRFAIL_DEMO_CONFIG": json.dumps(TEST_CONFIG),
        "CXRFAIL_FLIP_BOOTSTRAP": "500",
        "CXRFAIL_INLINE_WAIT_S": str(COLD_RUN_TIMEOUT_S),  # pages wait for their run (AppTest has no timers)
    }


@pytest.fixture(autouse=True)
def _apply_env(dashboard_env, monkeypatch):
    """Every test in this folder sees the dashboard environment; tests elsewhere do not."""
    for key, value in dashboard_env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def warm_app(dashboard_env):
    """Run the app once: the analysis is computed (or read from the disk cache) and kept in this process."""
    with mock.patch.dict(os.environ, dashboard_env):
        app = new_app(COLD_RUN_TIMEOUT_S)
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture()
def app(warm_app):
    """A fresh session (its own session state) on the warm process caches, run once (on Overview)."""
    fresh = new_app()
    fresh.run()
    return fresh
