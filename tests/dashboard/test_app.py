"""AppTest: every page renders on the demo, the sidebar drives the pages, Flip's slider is live, bad data is
refused without losing the loaded data, Export and Run inference produce what they promise."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from dashboard_helpers import PAGES, TEST_FINDINGS, TEST_MODELS, TITLES, goto, problems

from cxrfail.cohort import DEVICES_NOTE

CHARTED = {"overview", "subgroups", "identifiers", "explain", "flip"}  # Export draws a figure on request


def charts(app) -> list:
    return list(app.get("plotly_chart"))


def text_of(app) -> str:
    parts = [m.value for m in app.markdown] + [c.value for c in app.caption] + [i.value for i in app.info]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(app, page):
    goto(app, page)
    assert not problems(app), problems(app)
    assert [t.value for t in app.title] == [TITLES[page]]
    if page in CHARTED:
        assert charts(app), f"no figure on {page}"
    sidebar = app.sidebar
    assert sidebar.selectbox(key="sel_dataset").value == "demo"
    assert sidebar.multiselect(key="sel_models").value == list(TEST_MODELS)
    assert any("NIH Clinical Center" in c.value for c in sidebar.caption)


def test_overview_says_unit_split_and_caveats(app):
    caption = text_of(app)
    assert "Unit of analysis: image" in caption and "held-out test split" in caption
    assert DEVICES_NOTE in caption  # the cohort's note on the support-device reads
    assert re.search(r"Support Devices: known for [\d,]+ of [\d,]+ test images \(a subset", caption)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Images analysed"] == "22,433"


def test_sidebar_finding_changes_the_pages(app):
    goto(app, "subgroups")
    first = app.session_state["sel_finding"]
    assert first == TEST_FINDINGS[0]
    rates_before = app.dataframe[0].value.copy()
    app.sidebar.selectbox(key="sel_finding").set_value(TEST_FINDINGS[1]).run()
    assert not problems(app)
    assert any(TEST_FINDINGS[1] in h.value for h in app.subheader)
    rates_after = app.dataframe[0].value
    assert not rates_before[["n_misclassified"]].equals(rates_after[["n_misclassified"]])
    goto(app, "flip")  # the choice holds on the next page
    assert any(TEST_FINDINGS[1] in c.value for c in app.caption)


def test_every_shared_finding_is_one_click_away(app):
    box = app.sidebar.selectbox(key="sel_finding")
    assert "Pneumothorax (adds it)" in box.options  # offered though not analysed yet
    box.set_value("Pneumothorax").run(timeout=900)
    assert not problems(app), problems(app)
    assert app.session_state["sel_findings"] == [*TEST_FINDINGS, "Pneumothorax"]
    assert app.sidebar.selectbox(key="sel_finding").value == "Pneumothorax"


def test_page_model_choice_changes_results(app):
    goto(app, "subgroups")
    before = app.dataframe[0].value.copy()
    other = next(m for m in TEST_MODELS if m != app.selectbox(key="sg_model").value)
    app.selectbox(key="sg_model").set_value(other).run()
    assert not problems(app)
    assert not before[["n_misclassified"]].equals(app.dataframe[0].value[["n_misclassified"]])


def test_moving_the_flip_slider_changes_the_change_in_f1(app):
    goto(app, "flip")
    resting = {m.label: m.value for m in app.metric}
    assert resting["Improved?"] in ("yes", "no")  # the one verdict: at the tau chosen on calibration
    assert not any("Exploratory" in w.value for w in app.warning)
    slider = app.slider[0]
    start = app.session_state["fl_last"]
    values = {}
    for tau in (0.05, 0.3, 0.6):
        slider.set_value(tau).run()
        assert not problems(app)
        last = app.session_state["fl_last"]
        assert last["tau"] == pytest.approx(tau)
        values[tau] = (last["delta_f1"], last["n_flips"])
        metrics = {m.label: m.value for m in app.metric}
        assert metrics["ΔF1 (95% CI)"] == f"{last['delta_f1']:+.4f}"
        assert metrics["Improved?"] == "no verdict"  # a slid tau is chosen after seeing test data
        assert any("Exploratory" in w.value for w in app.warning)
        slider = app.slider[0]
    assert values[0.05][1] > values[0.3][1] > values[0.6][1]  # lower tau flips more
    assert len({round(v[0], 6) for v in values.values()} | {round(start["delta_f1"], 6)}) > 1


def test_bad_upload_shows_an_error_and_keeps_the_data(app):
    goto(app, "data")
    bad = b"image_id,Edema,Cardiomegaly\n00000001_000.png,1.7,0.2\n00000002_000.png,0.1,0.3\n"
    app.file_uploader(key="data_pred_upload").set_value([("bad_model.csv", bad, "text/csv")])
    app.button[0].click().run()  # the form's Load button
    errors = [e.value for e in app.error]
    assert errors and "outside [0, 1]" in errors[0] and "bad_model.csv" in errors[0]
    assert "sigmoid" in errors[0]  # says what to do
    assert not app.exception
    assert any("stays loaded" in c.value for c in app.caption)
    assert app.sidebar.selectbox(key="sel_dataset").value == "demo"
    assert app.sidebar.selectbox(key="sel_dataset").options == ["NIH ChestX-ray14 demo"]  # nothing was added
    goto(app, "overview")  # the previous data still works
    assert not problems(app)
    assert {m.label: m.value for m in app.metric}["Images analysed"] == "22,433"


def test_good_upload_is_loaded_and_selected(app, shared_demo_dir):
    goto(app, "data")
    source = (shared_demo_dir / "predictions" / "densenet121_jrzech.csv").read_text().splitlines()
    small = "\n".join(source[:3001]).encode()
    app.file_uploader(key="data_pred_upload").set_value([("my_model.csv", small, "text/csv")])
    app.radio(key="data_target").set_value("new")  # a new dataset (the NIH metadata as its cohort)
    app.button[0].click().run()
    assert not problems(app), problems(app)
    assert any("Loaded" in s.value for s in app.success)
    key = app.sidebar.selectbox(key="sel_dataset").value
    assert key != "demo"
    assert app.sidebar.multiselect(key="sel_models").value == ["my_model"]
    # every analysis page works on the small uploaded cohort (one model, 3,000 images: sparse subgroups)
    for page in ("overview", "subgroups", "identifiers", "explain", "flip", "cases", "export"):
        goto(app, page)
        assert not problems(app), (page, problems(app))
    goto(app, "overview")
    assert {m.label: m.value for m in app.metric}["Images analysed"] == "3,000"


def test_predictions_added_to_the_demo_keep_its_images_and_reference_labels(app, shared_demo_dir):
    goto(app, "data")
    source = (shared_demo_dir / "predictions" / "densenet121_jrzech.csv").read_text().splitlines()
    header = source[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "prob_Pneumothorax"]  # a finding left out
    rows = [",".join(cell for i, cell in enumerate(line.split(",")) if i in keep) for line in source[:6001]]
    app.file_uploader(key="data_pred_upload").set_value([("their_model.csv", "\n".join(rows).encode(), "text/csv")])
    assert app.radio(key="data_target").value == "add"  # the default while a dataset is loaded
    app.button[0].click().run()
    assert not problems(app), problems(app)
    assert any("Added **their_model**" in s.value and "reference labels are kept" in s.value for s in app.success)
    assert any("their_model has no probabilities for Pneumothorax" in w.value for w in app.warning)
    assert app.sidebar.multiselect(key="sel_models").value == [*TEST_MODELS, "their_model"]
    dataset = app.sidebar.selectbox(key="sel_dataset")
    assert dataset.value != "demo" and "their_model" in dataset.format_func(dataset.value)
    goto(app, "cases")  # the demo's radiographs are still there
    assert not problems(app), problems(app)
    assert len(app.image) >= 1


def test_predictions_with_other_ids_are_not_added_and_say_why(app):
    goto(app, "data")
    other = b"image_id,Edema\nx1.png,0.2\nx2.png,0.4\n"
    app.file_uploader(key="data_pred_upload").set_value([("elsewhere.csv", other, "text/csv")])
    app.button[0].click().run()
    errors = [e.value for e in app.error]
    assert errors and "0 of 2 predicted ids" in errors[0] and "same image ids" in errors[0]
    assert app.sidebar.selectbox(key="sel_dataset").value == "demo"


def test_every_bad_column_is_named_and_hints_name_the_form(app):
    goto(app, "data")
    bad = b"image_id,Edema,Cardiomegaly\n00000001_000.png,1.7,0.2\n00000002_000.png,0.1,high\n"
    app.file_uploader(key="data_pred_upload").set_value([("two_bad.csv", bad, "text/csv")])
    app.button[0].click().run()
    error = app.error[0].value
    assert "'Edema'" in error and "'Cardiomegaly'" in error and "outside [0, 1]" in error and "not numbers" in error
    no_id = b"name,Edema\n00000001_000.png,0.2\n"
    app.file_uploader(key="data_pred_upload").set_value([("no_id.csv", no_id, "text/csv")])
    app.button[0].click().run()
    error = app.error[0].value
    assert "no id column" in error and "Id column" in error and "id_column" not in error
    app.text_input(key="data_id_column").input("name")
    app.button[0].click().run()
    assert not any("no id column" in e.value for e in app.error)  # the ids are read (and then matched)


def test_export_lists_the_figures_and_draws_one_only_when_asked(app):
    goto(app, "export")
    assert not problems(app), problems(app)
    assert not charts(app)  # the first visit lists the figures and draws none
    picker = app.selectbox(key="ex_figure")
    forest = f"forest_{TEST_MODELS[0]}_{TEST_FINDINGS[0].lower()}"
    assert picker.options[:3] == ["auroc_heatmap", "misclassification_heatmap", "subgroup_effects"]
    other_forests = [o for o in picker.options if o.startswith("forest_") and TEST_FINDINGS[1].lower() in o]
    assert forest in picker.options and not other_forests  # per-pair figures: the sidebar's finding
    picker.set_value(forest)
    app.toggle(key="ex_preview_shown").set_value(True).run()
    assert not problems(app), problems(app)
    [chart] = charts(app)
    assert json.loads(chart.proto.spec)["layout"]["title"]["text"].startswith("Odds ratios")
    app.radio(key="ex_scope").set_value("all findings").run()
    options = app.selectbox(key="ex_figure").options
    assert any(o.startswith("forest_") and TEST_FINDINGS[1].lower() in o for o in options)


def test_export_builds_a_zip_with_manifest_and_files(app):
    goto(app, "export")
    app.multiselect(key="ex_bundle_formats").set_value(["html"]).run()
    app.button(key="ex_build").click().run()
    assert not problems(app), problems(app)
    name, data = app.session_state["ex_bundle"]
    assert name.endswith(".zip")
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["seed"] == 0 and manifest["config"]["findings"] == list(TEST_FINDINGS)
    assert manifest["models"] == list(TEST_MODELS)
    assert any(entry["path"].endswith("densenet121_jrzech.csv") and entry["sha256"] for entry in manifest["inputs"])
    assert manifest["versions"]["streamlit"]
    names = archive.namelist()
    assert "tables/performance.csv" in names and "figures/auroc_heatmap.html" in names
    assert f"figures/forest_{TEST_MODELS[0]}_{TEST_FINDINGS[0].lower()}.html" in names  # drawn on the click
    assert all(archive.getinfo(n).file_size > 0 for n in names)
    assert any(b.label.startswith("Download cxrfail-export") for b in app.get("download_button"))

    app.selectbox(key="ex_figure").set_value("auroc_heatmap")
    app.selectbox(key="ex_format").set_value("html")
    app.button(key="ex_prepare").click().run()
    file_name, content, _ = app.session_state["ex_file"]
    assert file_name == "auroc_heatmap.html" and b"AUROC" in content
    if Path("/usr/bin/chromium").exists():
        app.selectbox(key="ex_format").set_value("png")
        app.button(key="ex_prepare").click().run(timeout=120)
        assert not problems(app), problems(app)
        file_name, content, _ = app.session_state["ex_file"]
        assert file_name == "auroc_heatmap.png" and content.startswith(b"\x89PNG")


def test_cases_open_an_image_shows_it_with_every_model(app):
    goto(app, "cases")
    assert len(app.image) >= 4  # thumbnails of the demo radiographs
    open_buttons = [b for b in app.button if b.label == "Open"]
    assert open_buttons
    open_buttons[0].click().run()
    assert not problems(app)
    picked = app.session_state["cxrfail_picked_image"]
    assert any(picked in h.value for h in app.subheader)
    verdicts = app.dataframe[-1].value
    assert list(verdicts["model"]) == list(TEST_MODELS)
    assert "identifier verdict" in verdicts.columns
    # the flag is the library's flip decision for that row (outcomes.flipped_prediction), on either split
    flagged = verdicts["identifier verdict"] != "not flagged"
    assert (flagged == (verdicts["flipped_prediction"] != verdicts["prediction"])).all()
    goto(app, "explain")  # the picked image is offered there
    assert app.selectbox(key="ex_image").value == picked
    assert not problems(app)


def test_identifier_choice_marks_oracle_feature_sets(app):
    goto(app, "identifiers")
    options = app.selectbox(key="id_feature_set").options
    assert any("ORACLE" in option for option in options)
    assert not any("ORACLE" in option for option in options if option.startswith("own"))


def test_identifier_page_leads_with_the_ladder(app):
    goto(app, "identifiers")
    assert not problems(app)
    assert app.subheader[0].value == "What clinical features add beyond the model's own probability"
    ladder = app.dataframe[0].value
    assert ladder["feature_set"].iloc[0] == "probability_only" and len(ladder) == 5
    assert {"delta_vs_probability_only", "delta_vs_probability_only_ci_low", "n_patients"} <= set(ladder.columns)
    assert "held-out test split" in text_of(app)


def test_explain_shows_the_share_carried_by_the_models_own_outputs(app):
    goto(app, "explain")
    assert not problems(app)
    share = [m for m in app.metric if m.label == "Share of the attribution carried by the model's own outputs"]
    assert share and share[0].value.endswith("%") and 0 <= int(share[0].value.rstrip("%")) <= 100


def test_identifier_page_sets_auroc_against_the_prediction_alone(app):
    goto(app, "identifiers")
    metrics = {m.label: float(m.value) for m in app.metric}
    aurocs = {"Identifier AUROC", "0/1 prediction alone", "Within predicted positives", "Within predicted negatives"}
    assert set(metrics) == aurocs | {"Identifier − confidence baseline", "Identifier − 0/1 prediction alone"}
    assert all(0.0 <= metrics[name] <= 1.0 for name in aurocs)
    # the paired differences are the differences of the AUROCs shown
    assert metrics["Identifier − 0/1 prediction alone"] == pytest.approx(
        metrics["Identifier AUROC"] - metrics["0/1 prediction alone"], abs=2e-3
    )
    assert not problems(app)


def test_inference_adds_a_model(app, tmp_path, shared_demo_dir, monkeypatch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from cxrfail.inference.models import EMBEDDED_CARD

    torch.manual_seed(0)
    module = torchvision.models.mobilenet_v3_small(weights=None, num_classes=2).eval()
    card = {
        "name": "tiny",
        "labels": ["Edema", "Cardiomegaly"],
        "input_size": 64,
        "channels": 3,
        "normalization": "imagenet",
    }
    model_path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(module), str(model_path), _extra_files={EMBEDDED_CARD: json.dumps(card)})
    images = tmp_path / "images"
    images.mkdir()
    for source in sorted((shared_demo_dir / "images").glob("*.png"))[:4]:
        shutil.copy(source, images / source.name)

    monkeypatch.setenv("CXRFAIL_DATA_ROOTS", str(tmp_path))
    goto(app, "inference")
    app.radio(key="inf_source").set_value("local model file").run()
    app.text_input(key="inf_path").input(str(tmp_path / "missing.pt"))
    app.text_input(key="inf_folder").input(str(images)).run()  # a model file is given: Run is enabled
    app.button(key="inf_run").click().run()
    assert app.error and "model file not found" in app.error[0].value
    assert not app.exception

    app.text_input(key="inf_path").input(str(model_path))
    app.selectbox(key="inf_device").set_value("cpu")
    app.button(key="inf_run").click().run(timeout=300)
    assert app.error and "TorchScript runs code from the file" in app.error[0].value  # not from any folder
    monkeypatch.setenv("CXRFAIL_MODEL_ROOTS", str(tmp_path))
    app.button(key="inf_run").click().run(timeout=300)
    assert not problems(app), problems(app)
    assert any("Added **tiny**" in s.value for s in app.success)
    assert "tiny" in app.sidebar.multiselect(key="sel_models").options


def test_inference_opens_on_a_choice_that_can_run_or_says_what_is_missing(app):
    goto(app, "inference")
    assert not problems(app), problems(app)
    installed = []
    try:
        from cxrfail.inference.models import xrv_weight_names, xrv_weights_path

        installed = [name for name in xrv_weight_names() if xrv_weights_path(name).is_file()]
    except ImportError:
        pass
    source = app.radio(key="inf_source").value
    if installed:
        assert source == "torchxrayvision model" and app.selectbox(key="inf_xrv").value in installed
        assert not app.button(key="inf_run").disabled
    else:  # nothing installed: it opens on a local file and says, before running, what to give
        assert source == "local model file"
        assert app.button(key="inf_run").disabled
        assert any("Give a model file" in w.value for w in app.warning)
        app.radio(key="inf_source").set_value("torchxrayvision model").run()
        if app.selectbox(key="inf_xrv") is not None:
            assert any("not installed on this server" in w.value and "'Weights file'" in w.value for w in app.warning)
        assert app.button(key="inf_run").disabled


def chart_titles(app) -> list[str]:
    """Chart titles as read (wrapped lines joined)."""
    return [
        json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "").replace("<br>", " ")
        for chart in charts(app)
    ]


@pytest.mark.parametrize("page", ["subgroups", "identifiers", "explain", "flip"])
def test_figures_follow_the_sidebar_finding(app, page):
    goto(app, page)
    first, second = TEST_FINDINGS
    assert any(first in title for title in chart_titles(app))
    app.sidebar.selectbox(key="sel_finding").set_value(second).run()
    assert not problems(app)
    titles = chart_titles(app)
    assert any(second in title for title in titles), titles
    assert not any(first in title for title in titles), titles


def test_generic_csv_cohort_needs_a_column_map(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRFAIL_DATA_ROOTS", str(tmp_path))  # the prediction path is typed: it must be allowed
    goto(app, "data")
    predictions = tmp_path / "m.csv"
    predictions.write_text("image_id,Edema\na.png,0.2\nb.png,0.7\n")
    app.text_area(key="data_pred_paths").input(str(predictions))
    app.selectbox(key="data_kind").set_value("csv")
    app.file_uploader(key="data_cohort_upload").set_value(
        ("cohort.csv", b"Image,Patient,Edema\na.png,p1,0\nb.png,p2,1\n", "text/csv")
    )
    app.radio(key="data_target").set_value("new")
    app.button[0].click().run()
    errors = [e.value for e in app.error]
    assert errors and "column map must name 'image_id' and 'patient_id'" in errors[0]
    assert "uploaded cohort.csv" in errors[0] and "cxrfail-upload" not in errors[0]
    app.text_input(key="data_colmap").input("image_id=Image, patient_id")
    app.button[0].click().run()
    assert "is not FIELD=COLUMN" in app.error[0].value
    app.text_input(key="data_colmap").input("image_id=Image, patient_id=Patient")
    app.button[0].click().run()
    assert not problems(app), problems(app)
    assert any("Loaded" in s.value for s in app.success)


def test_labels_page_audits_pneumothorax_against_the_expert_labels(app):
    """Pneumothorax is not analysed in the sidebar: the Labels page analyses it on demand and shows the
    agreement with Google's expert labels, the model-error / label-error split and both label sets' AUROC."""
    goto(app, "labels")
    app.run(timeout=900)
    assert not problems(app), problems(app)
    assert app.selectbox(key="lb_finding").value == "Pneumothorax"
    assert any("not a random sample" in m.value for m in app.markdown)
    agreement = app.dataframe[0].value
    assert agreement.loc["cohort: negative", "reference: positive"] == 24
    assert agreement.loc["cohort: positive", "reference: negative"] == 35
    assert agreement.to_numpy().sum() == 935
    titles = chart_titles(app)
    assert any("model errors and probable label errors" in t for t in titles)
    assert any("AUROC and F1 against each label set" in t for t in titles)
    audit = app.dataframe[1].value
    assert list(audit["model"]) == list(TEST_MODELS)
    assert (audit["n_label_error"] <= audit["n_misclassified"]).all()


def test_server_paths_outside_the_data_roots_are_refused_alike(app, tmp_path, monkeypatch):
    """A path outside CXRFAIL_DATA_ROOTS is refused before it is opened, with the same message whether or not
    it exists, and the file's contents never appear."""
    secret = tmp_path / "secret.csv"
    secret.write_text("image_id,Edema\ntop-secret-value,0.5\n")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("CXRFAIL_DATA_ROOTS", str(allowed))
    goto(app, "data")
    messages = []
    for path in (secret, tmp_path / "absent.csv"):
        app.text_area(key="data_pred_paths").input(str(path))
        app.button[0].click().run()
        assert not app.exception
        messages.append(app.error[0].value.replace(str(path), "PATH"))
        assert "top-secret-value" not in app.error[0].value
        assert "outside the folders the dashboard may read" in app.error[0].value
    assert messages[0] == messages[1]
    assert app.sidebar.selectbox(key="sel_dataset").value == "demo"


def test_explain_refits_the_identifier_in_the_background_then_draws_the_waterfall(app, monkeypatch):
    """A page switch never waits for the identifier's refit: with no inline wait the Explain page shows that it
    is refitting, and once the refit (a background thread) is done the same page draws the waterfall."""
    goto(app, "explain")  # the run is done (the session fixture computed it) and one pair's refit is cached
    assert not problems(app)
    monkeypatch.setenv("CXRFAIL_INLINE_WAIT_S", "0")
    picker = app.selectbox(key="ex_model")
    other = next(option for option in picker.options if option != picker.value)
    picker.set_value(other).run()  # a pair whose identifier was not refitted yet
    assert not problems(app), problems(app)
    if not any("ex_waterfall" in (chart.proto.id or "") for chart in app.get("plotly_chart")):
        assert any("Refitting the identifier" in info.value for info in app.info)
    deadline = time.monotonic() + 120
    while not any("ex_waterfall" in (chart.proto.id or "") for chart in app.get("plotly_chart")):
        assert time.monotonic() < deadline, "the waterfall never appeared after the refit"
        time.sleep(0.5)
        app.run()
        assert not problems(app), problems(app)
    assert not any("Refitting the identifier" in info.value for info in app.info)
