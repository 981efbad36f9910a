"""The selection lives in the URL: every page writes its choices into the query string, and a new session
(a reload, a shared link) opened with that query string shows the same selection. Values that are not valid
choices are ignored. Model pickers start on the best model by AUROC for the finding."""

from __future__ import annotations

from dashboard_helpers import PAGES, TEST_FINDINGS, TEST_MODELS, goto, new_app, page_script, problems


def reopen(query: dict, page: str):
    """A new session opened with ``query`` in the URL, on ``page`` (the browser's reload of that URL)."""
    fresh = new_app()
    fresh.query_params = dict(query)
    fresh.run()
    fresh.switch_page(page_script(page))
    fresh.run()
    assert not problems(fresh), problems(fresh)
    return fresh


def open_at(query: dict, page: str):
    """A new session whose first run is ``page`` with ``query`` in the URL (the browser's reload of a page's URL,
    or a link to it)."""
    fresh = new_app()
    fresh.query_params = dict(query)
    fresh.switch_page(page_script(page))
    fresh.run()
    assert not problems(fresh), (page, problems(fresh))
    return fresh


def sidebar_choice(app) -> dict:
    """The sidebar's models, findings analysed, finding shown and seed, as its widgets hold them."""
    return {
        "models": app.sidebar.multiselect(key="sel_models").value,
        "findings": app.sidebar.multiselect(key="sel_findings").value,
        "finding": app.sidebar.selectbox(key="sel_finding").value,
        "seed": app.sidebar.number_input(key="sel_seed").value,
    }


def test_sidebar_and_page_pickers_survive_a_reload(app):
    goto(app, "subgroups")
    app.sidebar.selectbox(key="sel_finding").set_value(TEST_FINDINGS[1]).run()
    other = next(m for m in TEST_MODELS if m != app.selectbox(key="sg_model").value)
    app.selectbox(key="sg_model").set_value(other).run()
    first_subgroup = app.multiselect(key="sg_subgroups").value[0]
    app.multiselect(key="sg_subgroups").set_value([first_subgroup]).run()
    assert not problems(app), problems(app)
    query = dict(app.query_params)
    assert query["finding"] == TEST_FINDINGS[1]
    assert query["model"] == other
    assert query["cohort"] == "demo" and query["subgroups"] == first_subgroup

    again = reopen(query, "subgroups")
    assert again.session_state["sel_finding"] == TEST_FINDINGS[1]
    assert again.selectbox(key="sg_model").value == other
    assert again.multiselect(key="sg_subgroups").value == [first_subgroup]
    assert any(TEST_FINDINGS[1] in h.value and other in h.value for h in again.subheader)


def test_cases_filters_and_opened_case_survive_a_reload(app):
    goto(app, "cases")
    app.selectbox(key="cs_outcome").set_value("misclassified").run()
    app.selectbox(key="cs_split").set_value("all").run()
    open_buttons = [b for b in app.button if b.key and b.key.startswith("cs_open_")]
    open_buttons[0].click().run()
    picked = app.session_state["cxrfail_picked_image"]
    query = dict(app.query_params)
    assert query["outcome"] == "misclassified" and query["split"] == "all" and query["case"] == picked

    again = reopen(query, "cases")
    assert again.selectbox(key="cs_outcome").value == "misclassified"
    assert again.selectbox(key="cs_split").value == "all"
    assert any(h.value == f"Image {picked}" for h in again.subheader)


def test_an_opened_case_that_no_longer_matches_the_filters_is_closed(app):
    goto(app, "cases")
    app.selectbox(key="cs_outcome").set_value("misclassified").run()
    [b for b in app.button if b.key and b.key.startswith("cs_open_")][0].click().run()
    picked = app.session_state["cxrfail_picked_image"]
    assert any(h.value == f"Image {picked}" for h in app.subheader)
    app.selectbox(key="cs_outcome").set_value("correct").run()
    assert not problems(app), problems(app)
    assert not any(h.value == f"Image {picked}" for h in app.subheader)
    assert "cxrfail_picked_image" not in app.session_state
    assert any("does not match these filters and was closed" in c.value for c in app.caption)
    assert "case" not in app.query_params


def test_flip_tau_survives_a_reload(app):
    goto(app, "flip")
    slider = app.slider[0]
    slider.set_value(0.2).run()
    assert app.query_params["tau"] == "0.2"
    again = reopen(dict(app.query_params), "flip")
    assert again.slider[0].value == 0.2
    assert any("Exploratory" in w.value for w in again.warning)  # 0.2 is not the calibration choice


def test_invalid_url_values_fall_back_to_the_defaults(app):
    query = {
        "cohort": "nope",
        "models": ["not-a-model"],
        "finding": "Nonsense",
        "seed": "abc",
        "threshold": "guess",
        "model": "xyz",
        "outcome": "everything",
        "page": "999",
        "tau": "7",
    }
    for page in ("subgroups", "cases", "flip"):
        again = reopen(query, page)
        assert again.sidebar.selectbox(key="sel_dataset").value == "demo"
        assert again.sidebar.multiselect(key="sel_models").value == list(TEST_MODELS)
        assert again.session_state["sel_finding"] == TEST_FINDINGS[0]


def test_model_pickers_start_on_the_best_model_by_auroc_and_say_so(app):
    for page, key in (("subgroups", "sg_model"), ("flip", "fl_model"), ("cases", "cs_model")):
        goto(app, page)
        finding = app.session_state["sel_finding"]
        best = app.selectbox(key=key).value
        assert any(f"{best}: the best AUROC for {finding}" in c.value for c in app.caption), page
    goto(app, "overview")
    # the Overview's performance table holds the AUROCs the pickers chose by
    performance = next(d.value for d in app.dataframe if "auroc" in d.value.columns)
    rows = performance.loc[performance["finding"] == finding]
    assert best == rows.loc[rows["auroc"].idxmax(), "model"]


def test_the_sidebar_selection_in_the_url_is_restored_on_every_page(app):
    # a link without ``cohort=`` (the first cohort) used to reset the restored models, findings and finding
    query = {"models": [TEST_MODELS[1]], "findings": list(TEST_FINDINGS), "finding": TEST_FINDINGS[1], "seed": "7"}
    wanted = {"models": [TEST_MODELS[1]], "findings": list(TEST_FINDINGS), "finding": TEST_FINDINGS[1], "seed": 7}
    for page in PAGES:
        again = open_at(query, page)
        assert sidebar_choice(again) == wanted, page
        assert again.query_params["finding"] == TEST_FINDINGS[1] and again.query_params["seed"] == "7", page
        assert again.query_params["models"] == TEST_MODELS[1], page
        if page == "subgroups":  # the page's run is the restored one
            assert any(f"{TEST_MODELS[1]} · {TEST_FINDINGS[1]}" in h.value for h in again.subheader)
    with_cohort = open_at({**query, "cohort": "demo"}, "flip")
    assert sidebar_choice(with_cohort) == wanted


def test_a_sidebar_change_reaches_the_next_pages_run(app):
    again = open_at({"finding": TEST_FINDINGS[1]}, "overview")
    assert again.sidebar.selectbox(key="sel_finding").value == TEST_FINDINGS[1]
    # changed, then a page switch before the change's own rerun (AppTest sends both at once)
    again.sidebar.selectbox(key="sel_finding").set_value(TEST_FINDINGS[0])
    goto(again, "subgroups")
    assert not problems(again), problems(again)
    assert again.query_params["finding"] == TEST_FINDINGS[0]
    assert any(f"· {TEST_FINDINGS[0]}" in h.value for h in again.subheader)
    again.sidebar.multiselect(key="sel_models").set_value([TEST_MODELS[0]])
    goto(again, "flip")
    assert not problems(again), problems(again)
    assert again.query_params["models"] == TEST_MODELS[0]
    assert any(f"{TEST_MODELS[0]}: the best AUROC for {TEST_FINDINGS[0]}" in c.value for c in again.caption)
