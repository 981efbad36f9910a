"""Pages never wait blind: while the run a page needs computes (in a background thread), the page shows a panel
that redraws itself (pairs done, time left, Cancel) and returns; once the run is done the page shows its
result. Cancel stops the run after the pair it is on and offers to start it again. Each test runs on an empty
disk cache, so its run computes."""

from __future__ import annotations

import re
import time

import pytest
from dashboard_helpers import goto, problems

RUN_TIMEOUT_S = 600


@pytest.fixture()
def computing(app, monkeypatch, tmp_path):
    """The test's app with pages that do not wait for runs, on an empty disk cache."""
    monkeypatch.setenv("CXRFAIL_INLINE_WAIT_S", "0")
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path))
    return app


def _wait_for_runs() -> None:
    from cxrfail.dashboard import runs

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while runs.running_jobs():
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)


def _panel_caption(app) -> str:
    return next((c.value for c in app.caption if "model × finding pairs done" in c.value), "")


def test_a_page_shows_the_run_progress_then_its_result(computing):
    app = computing
    goto(app, "flip")
    app.sidebar.number_input(key="sel_seed").set_value(11).run()
    assert not problems(app), problems(app)
    assert re.search(r"\d+ of 4 model × finding pairs done in \d+ s", _panel_caption(app))
    assert any(b.label == "Cancel" for b in app.button)
    assert not app.metric  # no numbers from another run meanwhile
    _wait_for_runs()
    app.run()
    assert not problems(app), problems(app)
    assert not _panel_caption(app)
    assert any(m.label == "ΔF1 (95% CI)" for m in app.metric)


def test_the_first_screen_shows_its_finding_while_the_full_run_computes(computing):
    app = computing
    goto(app, "subgroups")
    app.sidebar.number_input(key="sel_seed").set_value(12).run()
    assert not problems(app), problems(app)
    assert app.dataframe, "no subgroup rates from the quick first run"
    assert "runs in the background" in " ".join(m.value for m in app.markdown)
    _wait_for_runs()


def test_cancel_stops_the_run_and_offers_to_start_it_again(computing):
    app = computing
    goto(app, "identifiers")
    app.sidebar.number_input(key="sel_seed").set_value(13).run()
    next(b for b in app.button if b.label == "Cancel").click().run()
    _wait_for_runs()
    app.run()
    assert any("cancelled" in w.value for w in app.warning)
    next(b for b in app.button if b.label == "Start it again").click().run()
    assert _panel_caption(app)
    _wait_for_runs()
    app.run()
    assert not problems(app), problems(app)
    assert not any("cancelled" in w.value for w in app.warning)
