"""Browser layout test: every page at 1024×768 and 1440×900 in Debian's chromium, failing on text in a figure
that overlaps other text or is clipped by the figure's edge.

For each plotly figure on a page the test reads, from the DOM, the bounding boxes of the title, the legend, the
axis titles, the tick labels and the annotations (footnotes, side labels, subplot titles), and checks that no
two of them overlap and that each lies inside the figure; heatmap cell text must be at least 11 px. Screenshots
of every page at both widths go to ``test-artifacts/browser-layout/`` (gitignored), with a JSON list of what was
found wrong.
"""

from __future__ import annotations

import json

import pytest
from dashboard_helpers import ROOT, TITLES
from test_browser import CHROMIUM, CHROMIUM_ARGS, assert_no_error, server, settle  # noqa: F401 (server: fixture)

ARTIFACTS = ROOT / "test-artifacts" / "browser-layout"
VIEWPORTS = {"1024": (1024, 768), "1440": (1440, 900)}
MIN_CELL_TEXT_PX = 11
TOLERANCE_PX = 1.5  # anti-aliasing and sub-pixel rounding

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]

#: Collects, per plotly figure, the boxes of its text elements (page coordinates) and its own box.
COLLECT_JS = """
() => [...document.querySelectorAll('.js-plotly-plot')].map((plot, index) => {
  const svg = plot.querySelector('svg.main-svg');
  const frame = svg.getBoundingClientRect();
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const items = [];
  const add = (kind, el, group) => {
    const r = el.getBoundingClientRect();
    const text = (el.textContent || '').trim();
    if (r.width > 0 && r.height > 0 && text) items.push({kind, group, text: text.slice(0, 60), box: box(el)});
  };
  if (!plot.offsetParent) return null;  // hidden (a closed expander): nothing to lay out
  plot.querySelectorAll('.g-gtitle text.gtitle').forEach((el) => add('title', el, 'title'));
  plot.querySelectorAll('g.legend').forEach((el) => add('legend', el, 'legend'));
  plot.querySelectorAll('.infolayer > g[class$="title"]:not(.g-gtitle) text').forEach(
    (el) => add('axis title', el, el.parentNode.getAttribute('class')));
  plot.querySelectorAll('g[class$="tick"] > text').forEach(
    (el) => add('tick', el, el.parentNode.getAttribute('class')));
  plot.querySelectorAll('g.annotation').forEach((el, i) => add('annotation', el, 'annotation' + i));
  const cells = [...plot.querySelectorAll('.heatmaplayer text')].map(
    (el) => parseFloat(getComputedStyle(el).fontSize)).filter((size) => !isNaN(size));
  const title = plot.querySelector('.g-gtitle text.gtitle');
  return {index, title: title ? title.textContent : '', frame: [frame.left, frame.top, frame.right, frame.bottom],
          items, cells};
})
"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return (min(a[2], b[2]) - max(a[0], b[0]) > TOLERANCE_PX) and (min(a[3], b[3]) - max(a[1], b[1]) > TOLERANCE_PX)


def _outside(box: list[float], frame: list[float]) -> bool:
    return (
        box[0] < frame[0] - TOLERANCE_PX
        or box[1] < frame[1] - TOLERANCE_PX
        or box[2] > frame[2] + TOLERANCE_PX
        or box[3] > frame[3] + TOLERANCE_PX
    )


def layout_problems(figures: list[dict]) -> list[str]:
    """Overlapping or clipped text, and heatmap text below `MIN_CELL_TEXT_PX`, in the collected figures."""
    found = []
    for fig in filter(None, figures):
        name = f"figure {fig['index']} ({fig['title'][:50]!r})"
        items = fig["items"]
        for item in items:
            if _outside(item["box"], fig["frame"]):
                found.append(f"{name}: {item['kind']} {item['text']!r} is clipped by the figure's edge")
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if a["kind"] == b["kind"] == "tick" and a["group"] != b["group"]:
                    continue  # ticks of different axes meet at the corner of the plot
                if _overlap(a["box"], b["box"]):
                    found.append(f"{name}: {a['kind']} {a['text']!r} overlaps {b['kind']} {b['text']!r}")
        small = [size for size in fig["cells"] if size < MIN_CELL_TEXT_PX]
        if small:
            found.append(f"{name}: heatmap text at {min(small):.1f} px (< {MIN_CELL_TEXT_PX} px)")
    return found


@pytest.fixture(scope="module")
def browser(server):  # noqa: F811 (the fixture imported above)
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _check(tab, where: str, shot: str) -> list[str]:
    """Layout problems of the page's figures; a screenshot of the window and of each figure."""
    tab.wait_for_timeout(600)  # plotly's automargin settles after the first draw
    tab.screenshot(path=str(ARTIFACTS / f"{shot}.png"))
    plots = tab.locator(".js-plotly-plot")
    for index in range(plots.count()):
        if plots.nth(index).is_visible():  # not those in a closed expander
            plots.nth(index).screenshot(path=str(ARTIFACTS / f"{shot}_figure{index}.png"), timeout=30_000)
    return [f"{where}: {p}" for p in layout_problems(tab.evaluate(COLLECT_JS))]


@pytest.mark.parametrize("width", list(VIEWPORTS))
def test_every_page_lays_out_without_overlap_or_clipping(server, browser, width):  # noqa: F811
    viewport = dict(zip(("width", "height"), VIEWPORTS[width]))
    tab = browser.new_page(viewport=viewport)
    tab.set_default_timeout(180_000)
    problems: list[str] = []
    try:
        for page, title in TITLES.items():
            tab.goto(server if page == "overview" else f"{server}/{page}")
            settle(tab, title)
            assert_no_error(tab, f"{page} at {width} px")
            problems += _check(tab, f"{page} at {width} px", f"{width}_{page}")
            if page == "cases":  # the opened case's figure too
                tab.locator("[data-testid='stMain'] [data-testid^='stBaseButton']").filter(
                    has_text="Open"
                ).first.click()
                tab.get_by_role("heading", name="Image ").first.wait_for()
                settle(tab, title)
                problems += _check(tab, f"cases (a case opened) at {width} px", f"{width}_cases_opened")
    finally:
        (ARTIFACTS / f"problems_{width}.json").write_text(json.dumps(problems, indent=2))
        tab.close()
    assert not problems, "\n".join(problems)
