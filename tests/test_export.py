"""Export: single figures, figure packs and zip bundles with a manifest."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile

import pandas as pd
import plotly.graph_objects as go
import pytest

from cxrfail import export, render
from cxrfail.files import bytes_sha256, file_sha256
from cxrfail.manifest import build_manifest

HAS_CHROMIUM = os.path.exists("/usr/bin/chromium") or render.find_browser() is not None
needs_browser = pytest.mark.skipif(
    not HAS_CHROMIUM, reason="PNG/SVG export needs Chromium (Debian: apt-get install chromium); not installed here"
)


@dataclasses.dataclass(frozen=True)
class Config:
    findings: tuple[str, ...] = ("Edema",)
    seed: int = 7


@pytest.fixture()
def fig() -> go.Figure:
    figure = go.Figure(go.Bar(x=["a", "b"], y=[1, 3]))
    figure.update_layout(title="test figure", width=500, height=300)
    return figure


@pytest.fixture()
def tables() -> dict[str, pd.DataFrame]:
    return {"performance": pd.DataFrame({"model": ["m"], "finding": ["Edema"], "auroc": [0.81]})}


def test_figure_html_is_standalone(fig):
    html = export.figure_bytes(fig, "html").decode()
    assert "<html>" in html[:100] and "test figure" in html
    assert "plotly.js" in html or "Plotly" in html
    assert '<script src="https://cdn.plot.ly' not in html  # opens offline


def test_unknown_format_is_rejected(fig):
    with pytest.raises(ValueError, match="unknown figure format"):
        export.figure_bytes(fig, "gif")


@needs_browser
def test_png_and_svg_render_with_chromium(fig):
    images = render.render_static({"one": fig, "two": fig}, "png")
    assert set(images) == {"one", "two"}
    assert images["one"].startswith(b"\x89PNG")
    svg = export.figure_bytes(fig, "svg")
    assert b"<svg" in svg[:500]


@needs_browser
def test_a_kept_browser_that_died_is_replaced(fig):
    """The dashboard keeps one browser open for exports; if it dies (closed, killed), the next export starts a
    new one instead of failing."""
    render.keep_browser_open(True)
    try:
        render.render_static({"one": fig}, "png")
        render._SESSION.close()  # the kept browser dies behind the module's back
        images = render.render_static({"one": fig}, "svg")
        assert b"<svg" in images["one"][:500]
    finally:
        render.keep_browser_open(False)


def test_missing_browser_gives_a_clear_error(fig, monkeypatch, tmp_path):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    available, message = render.static_export_status()
    assert not available and "BROWSER_PATH" in message
    with pytest.raises(render.StaticExportUnavailable, match="HTML and CSV export work without it"):
        export.figure_bytes(fig, "png")
    pack = export.write_figure_pack({"bar": fig}, tmp_path / "pack", manifest={"seed": 1})
    assert (tmp_path / "pack" / "bar.html").exists()
    assert not (tmp_path / "pack" / "bar.png").exists()
    assert pack.files == {"bar": ["bar.html"]}
    assert "PNG figures skipped" in pack.note and "SVG figures skipped" in pack.note
    assert any("PNG figures skipped" in warning for warning in pack.manifest["warnings"])


def test_no_browser_on_path(monkeypatch):
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    available, message = render.static_export_status()
    assert not available and "apt-get install chromium" in message


def test_build_manifest_hashes_inputs_and_records_config(tmp_path):
    data = tmp_path / "predictions.csv"
    data.write_text("image_id,Edema\na.png,0.5\n")
    manifest = build_manifest(
        [data, ("upload.csv", b"x,y\n")], config=Config(), generator="cxrfail dashboard", extra={"models": ("m1", "m2")}
    )
    assert manifest["seed"] == 7
    assert manifest["config"] == {"findings": ["Edema"], "seed": 7}
    assert manifest["inputs"][0]["sha256"] == file_sha256(data)
    assert manifest["inputs"][1] == {"path": "upload:upload.csv", "bytes": 4, "sha256": bytes_sha256(b"x,y\n")}
    assert manifest["versions"]["plotly"] and manifest["versions"]["python"]
    assert manifest["models"] == ["m1", "m2"]
    assert manifest["generator"] == "cxrfail dashboard"
    json.dumps(manifest)


def test_write_figure_pack_html_only(fig, tables, tmp_path):
    pack = export.write_figure_pack(
        {"bar_chart": fig}, tmp_path, tables=tables, manifest=build_manifest(seed=3), formats=("html",)
    )
    assert pack.files == {"bar_chart": ["bar_chart.html"]} and pack.note is None
    assert pack.support_files == ["plotly.min.js"]
    assert (tmp_path / "bar_chart.html").stat().st_size > 0
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert 'src="plotly.min.js"' in (tmp_path / "bar_chart.html").read_text()
    assert pd.read_csv(tmp_path / "performance.csv")["auroc"].iloc[0] == 0.81
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written == pack.manifest
    assert {entry["path"] for entry in written["files"]} == {"bar_chart.html", "plotly.min.js", "performance.csv"}
    assert written["seed"] == 3


def test_write_figure_pack_without_manifest_writes_only_figures(fig, tmp_path):
    pack = export.write_figure_pack({"a": fig}, tmp_path / "figures", formats=["html"])
    assert pack.manifest is None
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["a.html", "plotly.min.js"]


@needs_browser
def test_write_figure_pack_all_formats(fig, tmp_path):
    pack = export.write_figure_pack({"a": fig, "b": fig}, tmp_path)
    assert pack.files == {"a": ["a.html", "a.png", "a.svg"], "b": ["b.html", "b.png", "b.svg"]}
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")


@needs_browser
def test_zip_bundle_has_every_format_and_a_manifest(fig, tables):
    steps = []
    data = export.zip_bundle(
        {"bar": fig},
        tables,
        build_manifest(seed=1),
        progress=lambda fraction, message: steps.append((fraction, message)),
    )
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {
        "manifest.json",
        "figures/bar.html",
        "figures/bar.png",
        "figures/bar.svg",
        "tables/performance.csv",
    } <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert "warnings" not in manifest
    for entry in manifest["files"]:
        assert bytes_sha256(archive.read(entry["path"])) == entry["sha256"]
    assert all(archive.getinfo(name).file_size > 0 for name in names)
    assert steps[-1][1] == "done" and all(0 <= f <= 1 for f, _ in steps)


@needs_browser
def test_kept_browser_renders_later_exports_without_restarting(fig):
    import time

    render.keep_browser_open(True)
    try:
        first = export.figure_bytes(fig, "png")
        started = time.perf_counter()
        again = render.render_static({"a": fig, "b": fig}, "svg")
        elapsed = time.perf_counter() - started
        assert first.startswith(b"\x89PNG") and b"<svg" in again["b"][:500]
        assert elapsed < 4.0  # no browser start-up (that alone takes ~4 s here)
    finally:
        render.keep_browser_open(False)
    assert render._SESSION is None


def test_streamed_csv_is_the_text_of_one_to_csv_of_the_whole_table(tmp_path, monkeypatch):
    """`write_tables` formats a table a chunk at a time (categories and text columns made inert without a
    Python call per cell); the file must be byte for byte what one ``to_csv`` of the whole cell-by-cell inert
    table writes, across chunk borders, for categorical, Arrow-string, object, float, int and missing cells."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 2_503
    frame = pd.DataFrame(
        {
            "model": pd.Categorical(rng.choice(["m1", "=m2", "-m3"], n)),
            "image_id": pd.array(
                [f"{'+' if i % 97 == 0 else ''}img{i}.png" for i in range(n)], dtype="string[pyarrow]"
            ),
            "note": pd.Series([None if i % 5 == 0 else ("@x" if i % 7 == 0 else "y") for i in range(n)], dtype=object),
            "score": rng.normal(size=n),
            "flag": rng.integers(0, 2, n).astype("int8"),
            "maybe": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
        }
    )
    reference = frame.copy()
    for column in ("model", "image_id", "note"):
        reference[column] = (
            reference[column]
            .astype(object)
            .map(lambda v: "'" + v if isinstance(v, str) and v.startswith(export.FORMULA_PREFIXES) else v)
        )
    expected = reference.to_csv(index=False).encode("utf-8")
    monkeypatch.setattr(export, "CSV_CHUNK_ROWS", 1_000)  # three chunks, the last one short
    assert export.table_bytes(frame) == expected
    export.write_tables({"t": frame, "empty": frame.iloc[:0]}, tmp_path)
    assert (tmp_path / "t.csv").read_bytes() == expected
    assert (tmp_path / "empty.csv").read_bytes() == reference.iloc[:0].to_csv(index=False).encode()
    assert frame["model"].cat.categories.tolist() == ["-m3", "=m2", "m1"]  # the input is not changed
