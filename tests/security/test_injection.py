"""Issue 21 item 6: cohort values never become markup or formulas: the effects heatmap (Overview, and
``subgroup_effects.html`` in reports) escapes subgroup level names; Streamlit's own table CSV download is off
(the Export page's CSVs are formula-inert); ``cxrfail infer --out`` writes formula-inert image ids."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from cxrfail.figures.overview import effects_heatmap

PROJECT = Path(__file__).resolve().parents[2]
LINK = '<a href="https://evil.example/x">PA</a>'


def test_effects_heatmap_escapes_level_names():
    summary = pd.DataFrame(
        {
            "model": ["m"],
            "finding": ["Edema"],
            "n_significant": [1],
            "top_term": [f"view[T.{LINK}]"],
            "top_odds_ratio": [2.5],
            "top_q": [0.01],
        }
    )
    figure = effects_heatmap(summary)
    rendered = figure.to_json() + figure.to_html(include_plotlyjs=False)
    assert "<a href" not in rendered and 'href=\\"https://evil' not in rendered
    assert "&lt;a href=" in figure.to_json()


def test_streamlit_table_csv_download_is_off():
    from streamlit import config

    settings = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["disableDataExport"] is True
    assert "client.disableDataExport" in config._config_options_template  # a real Streamlit option


def test_infer_out_writes_formula_inert_ids(tmp_path):
    from cxrfail.inference.engine import InferenceResult

    frame = pd.DataFrame(
        {"Edema": [0.25, -0.5]}, index=pd.Index(['=HYPERLINK("http://evil.example").png', "ok.png"], name="image_id")
    )
    result = InferenceResult(model_name="m", probabilities=frame, failures=[], n_cached=0, n_computed=2, seconds=0.1)
    text = result.to_csv(tmp_path / "out.csv").read_text()
    assert "\n=" not in text and ",=" not in text and "'=HYPERLINK" in text and "-0.5" in text
