"""AppTest of the Slices page: slices with their intervals per pair, the across-models view, and a slice opened
in Cases (the Cases grid filtered to the slice's rows)."""

from __future__ import annotations

import json

from dashboard_helpers import TEST_FINDINGS, goto, problems

from cxrfail import demo
from cxrfail.analysis.slices import NOT_CONFIRMED, slice_table_mask
from cxrfail.dashboard.state import SLICE_FILTER


def test_slices_page_shows_intervals_and_opens_a_slice_in_cases(app):
    goto(app, "slices")
    assert not problems(app), problems(app)
    assert [t.value for t in app.title] == ["Slices"]
    charts = list(app.get("plotly_chart"))
    assert len(charts) == 2  # the pair's slices, the across-models view
    figure = json.loads(charts[0].proto.spec)
    assert "Failure slices" in figure["layout"]["title"]["text"]
    summary = " ".join(m.value for m in app.markdown)
    assert "slices the search returned were confirmed on held-out patients" in summary
    table = app.dataframe[0].value
    assert {"slice", "status", "rate (test)", "CI low", "CI high", "rate ratio", "q (pair)"} <= set(table.columns)
    assert set(table["status"]) <= {"confirmed on held-out patients", NOT_CONFIRMED}

    app.selectbox(key="sl_pick").set_value(int(table["rank"].iloc[0]))
    app.button(key="sl_open").click().run()
    assert not problems(app), problems(app)
    assert [t.value for t in app.title] == ["Cases"]
    opened = app.session_state[SLICE_FILTER]
    assert opened["slice"] == table["slice"].iloc[0] and opened["finding"] == TEST_FINDINGS[0]
    assert any(opened["slice"] in info.value for info in app.info)
    goto(app, "cases")  # AppTest reruns the page it was pointed at; the session (and the slice) carry over
    app.checkbox(key="cs_with_image").uncheck().run()  # every row of the slice, radiograph on disk or not
    assert not problems(app), problems(app)
    assert any(opened["slice"] in info.value for info in app.info)
    header = next(m.value for m in app.markdown if " match (" in m.value)
    shown = int(header.split("**")[1].split()[0].replace(",", ""))
    cohort = demo.load_demo_cohort()  # the grid holds only rows of the slice
    assert 0 < shown <= int(slice_table_mask(cohort.table, opened["predicates"]).sum())
    app.button(key="cs_clear_slice").click().run()
    assert SLICE_FILTER not in app.session_state
