"""Issue 21 items 10 and 11 through the real pages (AppTest): no server path reaches the browser (refusals,
Run inference, the export manifest); typed files count toward a session's bounds; a run refused at the memory
ceiling is one message, and the server keeps serving."""

from __future__ import annotations

from dashboard_helpers import goto, problems

from cxrfail.dashboard import datasets
from cxrfail.manifest import build_manifest


def test_typed_files_count_toward_the_sessions_bound(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRFAIL_DATA_ROOTS", str(tmp_path))
    monkeypatch.setenv("CXRFAIL_MAX_UPLOADS", "1")
    goto(app, "data")
    paths = []
    for name in ("a.csv", "b.csv"):
        paths.append(tmp_path / name)
        paths[-1].write_text("image_id,Edema\n00000001_000.png,0.2\n")
    app.text_area(key="data_pred_paths").input("\n".join(map(str, paths)))
    app.button[0].click().run()
    assert not app.exception
    assert app.error and "the most one session may hold" in app.error[0].value
    assert app.sidebar.selectbox(key="sel_dataset").value == "demo"


def test_a_refused_path_names_no_server_folder(app, tmp_path, monkeypatch):
    allowed = tmp_path / "a-configured-root"
    allowed.mkdir()
    monkeypatch.setenv("CXRFAIL_DATA_ROOTS", str(allowed))
    goto(app, "data")
    app.text_area(key="data_pred_paths").input("/etc/passwd")
    app.button[0].click().run()
    assert not app.exception and app.error
    assert str(allowed) not in app.error[0].value and "outside the folders" in app.error[0].value


def test_run_inference_prefills_no_server_folder(app, shared_demo_dir):
    goto(app, "inference")
    assert not problems(app), problems(app)
    assert app.text_input(key="inf_folder").value == ""
    shown = [str(e.value) for e in (*app.markdown, *app.caption, *app.info)]
    assert not any(str(shared_demo_dir) in text for text in shown)


def test_the_export_manifest_names_no_server_path(shared_demo_dir):
    manifest = build_manifest(datasets.demo_dataset().inputs)
    paths = [entry["path"] for entry in manifest["inputs"]]
    assert paths and all(entry["sha256"] for entry in manifest["inputs"])
    assert not any(path.startswith("/") or str(shared_demo_dir) in path for path in paths)
    assert "server:nih-chexnet/predictions/densenet121_jrzech.csv" in paths


def test_a_new_run_at_the_memory_ceiling_is_refused_with_one_message(app, monkeypatch):
    goto(app, "identifiers")  # the session's own run (the demo's, read back from the disk cache) is over
    assert not problems(app), problems(app)
    monkeypatch.setenv("CXRFAIL_MEMORY_CEILING_GB", "0.001")
    app.sidebar.number_input(key="sel_seed").set_value(12345).run()
    goto(app, "identifiers")  # needs the full run of the new seed
    assert not app.exception
    assert any("near its memory limit" in e.value and "Try again" in e.value for e in app.error), [
        e.value for e in app.error
    ]
    monkeypatch.delenv("CXRFAIL_MEMORY_CEILING_GB")
    app.sidebar.number_input(key="sel_seed").set_value(0).run()
    goto(app, "overview")
    assert not problems(app), problems(app)
