"""Shared fixtures: the real demo data from ../shared, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrfail import demo


@pytest.fixture(scope="session")
def shared_demo_dir() -> Path:
    return demo.demo_dir()


@pytest.fixture(scope="session")
def demo_models():
    return demo.load_demo_predictions()


@pytest.fixture(scope="session")
def demo_cohort(demo_models):
    return demo.load_demo_cohort(demo_models)
