"""Shared fixtures: the real demo data from ../shared, loaded once per session.

With ``CXRFAIL_STRICT_SKIPS=1`` (set by ``.ci/run``) a test skipped for want of a pinned dependency, the demo
data or chromium fails instead, so that CI cannot go green having run none of those tests. Skips for the
platform (no ``os.nice``, no ``ss``) stay skips.
"""

from __future__ import annotations

import os
import re
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


#: Skip reasons that name something CI must have: a pinned package (``pytest.importorskip``: "could not import";
#: "... is not installed"), the demo data or its images, pydicom-data's files, chromium.
STRICT_SKIP_REASONS = re.compile(
    r"could not import|not installed|demo data|shared images|pydicom-data|chromium", re.IGNORECASE
)


def _strict_skips() -> bool:
    return os.environ.get("CXRFAIL_STRICT_SKIPS", "") not in ("", "0")


def _fail_strict_skip(report) -> None:
    """Turn ``report`` (a skip) into a failure when strict skips are on and its reason is one of
    `STRICT_SKIP_REASONS`."""
    if not (_strict_skips() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if STRICT_SKIP_REASONS.search(reason):
        report.outcome = "failed"
        report.longrepr = f"CXRFAIL_STRICT_SKIPS=1 and this test was skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_strict_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_strict_skip(outcome.get_result())
