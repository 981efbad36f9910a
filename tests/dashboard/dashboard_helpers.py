"""Constants and helpers of the dashboard tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "overview.py"  # Streamlit's main script (``app.py`` serves it: `streamlit run app.py`)
TEST_MODELS = ("densenet121_jrzech", "densenet121_1epoch")
TEST_FINDINGS = ("Edema", "Cardiomegaly")
TEST_CONFIG = {"n_bootstrap": 200, "shap_max_samples": 100, "n_folds": 3}
PAGES = (
    "overview",
    "subgroups",
    "identifiers",
    "explain",
    "flip",
    "slices",
    "cases",
    "labels",
    "inference",
    "data",
    "export",
)
TITLES = {
    "overview": "Overview",
    "subgroups": "Subgroups",
    "identifiers": "Identifiers",
    "explain": "Explain",
    "flip": "Flip",
    "slices": "Slices",
    "cases": "Cases",
    "labels": "Labels",
    "inference": "Run inference",
    "data": "Data",
    "export": "Export",
}
COLD_RUN_TIMEOUT_S = 900


def new_app(timeout: float = 120):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=timeout)


def page_script(page: str) -> str:
    """The script of a page: ``overview.py`` is the Overview, the others are ``pages/<page>.py``."""
    return "overview.py" if page == "overview" else f"pages/{page}.py"


def goto(app, page: str):
    """Switch the AppTest to ``page`` and run it (the app must have run once)."""
    app.switch_page(page_script(page))
    return app.run()


def problems(app) -> list[str]:
    """Exceptions and error messages on the page, as text."""
    return [f"exception: {e.value}" for e in app.exception] + [f"error: {e.value}" for e in app.error]
