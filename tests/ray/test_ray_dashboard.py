"""The dashboard's Run inference page with ``CXRFAIL_RAY_ADDRESS`` set: it says the work runs on the cluster
(nodes, CPUs, replicas), read from the real two-node cluster of conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
APP = Path(__file__).resolve().parents[2] / "overview.py"


def test_run_inference_page_says_it_runs_on_the_cluster(ray_cluster, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CXRFAIL_RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path))
    app = AppTest.from_file(str(APP), default_timeout=300)
    app.switch_page("pages/inference.py").run()
    assert not app.exception, [e.value for e in app.exception]
    plans = [i.value for i in app.info if "Ray cluster" in i.value]
    assert plans and "2 nodes" in plans[0] and ray_cluster.address in plans[0]


def test_run_inference_page_runs_locally_without_an_address(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("CXRFAIL_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path))
    app = AppTest.from_file(str(APP), default_timeout=300)
    app.switch_page("pages/inference.py").run()
    assert not app.exception
    assert any("Runs on this machine" in c.value for c in app.caption)
