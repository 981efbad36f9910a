"""Browser test: `streamlit run` on a free local port, driven by Debian's chromium through Playwright.

Open the app, visit every page (no error text anywhere), go to Flip and move the slider (the reported change in
F1 follows), go to Cases and open an image; reload a page's URL (and open it in a new tab) and find the same
sidebar finding. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dashboard_helpers import ROOT, TEST_FINDINGS, TITLES

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NAV = tuple(TITLES.values())  # sidebar link text = page heading
SIDEBAR_WIDGETS = ("Cohort", "Models", "Finding")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(warm_app, dashboard_env):
    """`streamlit run app.py` on a free port, with the test environment and the warm disk cache."""
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env={**os.environ, **dashboard_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() - started > 90:
                raise RuntimeError(f"streamlit did not start; see {ARTIFACTS / 'streamlit.log'}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1440, "height": 1800})
        tab.set_default_timeout(120_000)
        tab.goto(server)
        yield tab
        browser.close()


def settle(tab, heading: str) -> None:
    """Wait for the page's heading, then for the script run and lazy elements to finish."""
    tab.get_by_role("heading", name=heading, exact=True).first.wait_for()
    deadline = time.monotonic() + 180
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        state = tab.locator("[data-testid='stApp']").get_attribute("data-test-script-state")
        skeletons = tab.locator("[data-testid='stSkeleton']").count()
        quiet = quiet + 1 if state == "notRunning" and not skeletons else 0
        time.sleep(0.3)


def assert_no_error(tab, where: str) -> None:
    exceptions = tab.locator("[data-testid='stException']")
    errors = tab.locator("[data-testid='stAlertContentError']")
    texts = [exceptions.nth(i).inner_text() for i in range(exceptions.count())]
    texts += [errors.nth(i).inner_text() for i in range(errors.count())]
    body = tab.locator("[data-testid='stMain']").inner_text()
    assert not texts, f"{where}: {texts}"
    assert "Traceback" not in body, where


def shot(tab, name: str) -> None:
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def visit(tab, title: str) -> None:
    tab.locator("[data-testid='stSidebar']").get_by_role("link", name=title, exact=True).click()
    settle(tab, title)


def delta_f1(tab) -> str:
    metric = tab.locator("[data-testid='stMetric']").filter(has_text="ΔF1 (95% CI)")
    return metric.locator("[data-testid='stMetricValue']").inner_text()


def test_browser_walkthrough(page):
    tab = page
    settle(tab, "Overview")
    assert tab.locator(".js-plotly-plot").count() >= 3
    assert_no_error(tab, "Overview")
    shot(tab, "01_overview")

    for index, title in enumerate(NAV[1:], start=2):
        visit(tab, title)
        assert_no_error(tab, title)
        shot(tab, f"{index:02d}_{title.lower().replace(' ', '_')}")

    visit(tab, "Flip")
    before = delta_f1(tab)
    slider = tab.get_by_role("slider").first
    slider.focus()
    slider.press("Home")  # tau = 0: flip every prediction
    deadline = time.monotonic() + 60
    while delta_f1(tab) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    after = delta_f1(tab)
    assert after != before, "moving the slider did not change the reported change in F1"
    assert float(after) < 0  # flipping everything makes F1 worse
    for _ in range(5):
        slider.press("PageUp")
    time.sleep(1.0)
    settle(tab, "Flip")
    assert_no_error(tab, "Flip after moving the slider")
    shot(tab, "10_flip_slider_moved")

    visit(tab, "Cases")
    open_buttons = tab.locator("[data-testid='stMain'] [data-testid^='stBaseButton']").filter(has_text="Open")
    assert open_buttons.count() >= 4
    open_buttons.first.click()
    tab.get_by_role("heading", name="Image ").first.wait_for()
    settle(tab, "Cases")
    picked = tab.get_by_role("heading", name="Image ").first.inner_text().removeprefix("Image ").strip()
    assert picked.endswith(".png")
    detail_images = tab.locator("[data-testid='stImage'] img")
    assert detail_images.count() >= 2  # thumbnails and the opened radiograph
    assert_no_error(tab, "Cases after opening an image")
    shot(tab, "11_cases_image_opened")


@pytest.mark.parametrize("path, title", [("flip", "Flip"), ("subgroups", "Subgroups"), ("export", "Export")])
def test_deep_link_shows_the_page_with_the_shared_sidebar(server, page, path, title):
    """A URL such as /flip on a fresh tab runs that page, with the sidebar every page draws."""
    tab = page.context.browser.new_page(viewport={"width": 1440, "height": 1200})
    try:
        tab.set_default_timeout(120_000)
        tab.goto(f"{server}/{path}")
        settle(tab, title)
        assert_no_error(tab, f"/{path}")
        sidebar = tab.locator("[data-testid='stSidebar']")
        for label in SIDEBAR_WIDGETS:
            assert sidebar.get_by_text(label, exact=True).count() >= 1, f"/{path}: no {label} in the sidebar"
        assert sidebar.get_by_role("link", name="Overview", exact=True).count() == 1
    finally:
        tab.close()


def sidebar_finding(tab) -> str:
    """The sidebar's Finding picker: its text, and the value and accessible name of its input."""
    box = finding_picker(tab)
    field = box.locator("input").first
    return " | ".join((box.inner_text(), field.input_value(), field.get_attribute("aria-label") or ""))


def finding_picker(tab):
    label = tab.locator("[data-testid='stWidgetLabel']").filter(has_text=re.compile(r"^Finding$"))
    return tab.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has=label)


def wait_for_url(tab, fragment: str) -> str:
    """The tab's address once it holds ``fragment`` (read from the page: Playwright's ``tab.url`` follows
    history changes only while it handles events)."""
    deadline = time.monotonic() + 30
    while fragment not in (address := tab.evaluate("location.href")) and time.monotonic() < deadline:
        tab.wait_for_timeout(200)
    assert fragment in address, address
    return address


def test_reloading_a_page_url_restores_the_sidebar_finding(server, page):
    """Pick a finding on Subgroups; the URL carries it; a reload, the same URL in a new tab, and a link without
    ``cohort=`` all show that finding in the sidebar and on the page."""
    shown, other = TEST_FINDINGS
    tab = page.context.browser.new_page(viewport={"width": 1440, "height": 1200})
    try:
        tab.set_default_timeout(120_000)
        tab.goto(f"{server}/subgroups")
        settle(tab, "Subgroups")
        assert shown in sidebar_finding(tab)
        finding_picker(tab).click()
        tab.get_by_role("option", name=other, exact=True).click()
        url = wait_for_url(tab, f"finding={other}")
        settle(tab, "Subgroups")

        tab.reload()
        settle(tab, "Subgroups")
        assert_no_error(tab, "Subgroups after a reload")
        assert other in sidebar_finding(tab), "the reload lost the finding"
        assert tab.get_by_role("heading").filter(has_text=f"· {other}").count() >= 1
        shot(tab, "12_subgroups_reloaded")

        tab.goto("about:blank")
        tab.goto(url)  # the link, opened afresh (a colleague's tab)
        settle(tab, "Subgroups")
        assert other in sidebar_finding(tab), "the shared link lost the finding"

        tab.goto(f"{server}/flip?finding={other}")  # a link that names no cohort: the first one
        settle(tab, "Flip")
        assert_no_error(tab, "/flip?finding=")
        assert other in sidebar_finding(tab), "a link without cohort= lost the finding"
    finally:
        tab.close()
