"""While the full run computes, a page shows its pair's numbers as soon as that pair is done (a provisional result
under a banner), and the final ones once the run ends; the run computes the sidebar's finding first. Each test
runs on an empty disk cache, so its run computes."""

from __future__ import annotations

import re
import time

import pytest
from dashboard_helpers import goto, problems

RUN_TIMEOUT_S = 600
FINDINGS = ["Edema", "Cardiomegaly", "Atelectasis", "Pleural Effusion"]  # 8 pairs: time to look at the first ones


@pytest.fixture()
def computing(app, monkeypatch, tmp_path):
    """The test's app with pages that do not wait for runs, on an empty disk cache."""
    monkeypatch.setenv("CXRFAIL_INLINE_WAIT_S", "0")
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path))
    return app


def _full_job(seed: int):
    """The full run of the test's seed computing now (waited for, should it start after the quick run)."""
    from cxrfail.analysis.config import FULL_SCOPE
    from cxrfail.dashboard import runs

    def mine():
        return [job for job in runs.running_jobs() if job.scope == FULL_SCOPE and job.config.seed == seed]

    _wait(lambda: mine(), "the full run did not start")
    jobs = mine()
    assert len(jobs) == 1, [(job.config.findings, job.first_finding) for job in jobs]
    return jobs[0]


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _texts(app) -> str:
    return " ".join([m.value for m in app.markdown] + [c.value for c in app.caption] + [i.value for i in app.info])


def _delta_f1(app) -> str:
    return next(m.value for m in app.metric if m.label == "ΔF1 (95% CI)")


def test_a_page_shows_its_pair_before_the_run_ends_then_the_final_numbers(computing):
    app = computing
    goto(app, "flip")
    app.sidebar.multiselect(key="sel_findings").set_value(FINDINGS)
    app.sidebar.number_input(key="sel_seed").set_value(21).run()
    assert not problems(app), problems(app)
    first = app.sidebar.selectbox(key="sel_finding").value  # the sidebar's finding: computed first
    job = _full_job(21)
    assert job.first_finding == first
    if not job.pairs_done:  # nothing of its finding yet: the panel says what the page waits for
        assert f"{first} (computed first): 0 of 2 models done; the page shows them as soon as the first is done" in (
            _texts(app)
        )
        assert not app.metric

    _wait(lambda: job.done_of(first) >= 1 or job.done, "no pair finished")
    assert not job.done, "the run ended before the test could look at a provisional page (8 pairs)"
    assert [finding for _, finding in job.pairs[:2]] == [first, first]  # scheduled first, so done first
    assert next(iter(job.pairs_done))[1] == first, "the sidebar's finding is not first"
    app.run()
    assert not problems(app), problems(app)
    texts = _texts(app)
    banner = re.search(r"Provisional: (\d+) of 8 pairs done, about [\d a-z]+ left; this page refreshes", texts)
    assert banner, texts
    assert int(banner.group(1)) < 8
    model = app.selectbox(key="fl_model").value
    assert (model, first) in job.pairs_done  # the picker starts on a model whose pair is done
    provisional = _delta_f1(app)
    waiting_for = [m for m in app.selectbox(key="fl_model").options if m.endswith("(computing)")]

    _wait(lambda: job.done, "the run did not finish")
    app.run()
    assert not problems(app), problems(app)
    assert "Provisional:" not in _texts(app)
    assert app.selectbox(key="fl_model").value == model
    assert not any(m.endswith("(computing)") for m in app.selectbox(key="fl_model").options)
    assert _delta_f1(app) == provisional  # pairs are seeded: the provisional numbers are the final ones
    if waiting_for:  # a model that was computing now shows its numbers
        app.selectbox(key="fl_model").set_value(waiting_for[0].removesuffix(" (computing)")).run()
        assert not problems(app), problems(app)
        assert _delta_f1(app)


def test_a_page_that_needs_every_pair_waits_for_the_run(computing):
    app = computing
    goto(app, "export")
    app.sidebar.number_input(key="sel_seed").set_value(22).run()
    job = _full_job(22)
    _wait(lambda: len(job.pairs_done) >= 1 or job.done, "no pair finished")
    app.run()
    assert not problems(app), problems(app)
    if not job.done:
        assert "this page needs every pair and shows them when the run ends" in _texts(app)
        assert "Provisional:" not in _texts(app)
    _wait(lambda: job.done, "the run did not finish")
