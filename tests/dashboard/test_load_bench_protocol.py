"""The load bench's protocol client (`bench/load_bench.py`'s default mode) speaks Streamlit's protocol to the real
dashboard: against ``streamlit run app.py`` it opens the Overview (the page's title and the sidebar's Seed widget
arrive in the deltas), learns the pages from the navigation message and switches to another page."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load_bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("load_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_protocol_client_opens_and_switches_pages_of_the_real_app(dashboard_env, tmp_path):
    bench = _load_bench()
    env = {key: value for key, value in dashboard_env.items() if key != "CXRFAIL_INLINE_WAIT_S"}
    server, url = bench.start_server(env, tmp_path / "streamlit.log")

    async def tour() -> tuple:
        client = bench.ProtocolSession(url)
        try:
            overview = await client.open()
            data = await client.request(page="data", heading="Data")
            return overview, data, dict(client.pages)
        finally:
            await client.close()

    try:
        overview, data, pages = asyncio.run(tour())
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert overview.headings[0] == "Overview"
    assert overview.widgets["Seed"][0] == "number_input"
    assert {"overview", "flip", "data", "identifiers"} <= set(pages)
    assert data.headings[0] == "Data" and data.finished
    assert not overview.problems and not data.problems
