"""Load bench: 8 concurrent sessions on one dashboard server, speaking Streamlit's protocol or in chromium (issue 21).

Starts ``streamlit run app.py`` on a free port of 127.0.0.1 (a fresh disk cache, nothing else reachable), opens
8 sessions (websocket clients by default, see below; with ``--browser`` one chromium through Playwright, 8
contexts: 8 Streamlit sessions), and drives them at once for a bounded number of actions each: page switches (Overview, Subgroups, Flip, Cases, Data,
Export) and Flip slider moves. Two of the sessions first set a new seed in the sidebar and open Identifiers,
which starts full analysis runs: they run, wait in the queue (the page says so) or are refused with a message
(`cxrfail.dashboard.limits`).

Before the sessions start, one untimed session opens Identifiers and waits for the default selection's full run
(the demo's run is then on the server's disk cache, as on a dashboard that has served before; ``--cold`` skips
this, so the bench also computes that run). A page round trip is the time from the click (or key press) until the
page answered: its heading is shown and Streamlit's script run is over, or the page shows a run's progress (a
run that takes minutes is not counted as a slow page; its outcome is reported below). A slider move is made only
when Flip shows its slider (not while it shows a run's progress); skipped moves are counted. The server's memory
is its process tree's resident set (server plus analysis workers), sampled every 0.5 s, and the CPU seconds of
the server's tree, of chromium's renderer, GPU and other processes and of Playwright's driver are printed: the
browser runs on the same 2 cores as the server here.

Prints ``load_p95_s:`` (95th percentile of page round trips, all sessions), ``load_peak_gb:``, the number of
round trips, the errors shown (other than load refusals, which are counted apart) and what became of each run.

The default mode measures the server without browsers: each session is a websocket client speaking
Streamlit's own protocol to ``/_stcore/stream`` (`ProtocolSession`: ``BackMsg.rerun_script`` with a ``ClientState``
holding the page's script hash, the URL's query string and the widget values set, and the ``ForwardMsg`` stream read
back), doing the same tour: a page switch is a rerun of another page's script, a slider move a rerun of the slider's
fragment with the new value, a new seed a rerun with the sidebar's Seed widget set (the widget ids are read from
the page's deltas). A round trip ends by the same rule: the run it started is over (``script_finished``), or the
page's heading and a run's progress bar were sent. The progress panel's self-redraws (``auto_rerun``) are answered
as the browser does. ``--browser`` drives the sessions in chromium instead (the drawing included; about three
quarters of the 2 cores then go to chromium and Playwright, not to the server); the output's first line says which
mode ran, and the CPU line splits the server's own process, its analysis workers
and the clients.

By default the dashboard runs the small configuration the dashboard tests use (2 models x 2 findings, 200
bootstrap replicates) so that the bench ends in a few minutes on 2 cores; ``--full`` uses the dashboard's
defaults (4 models x 5 findings, 2,000 replicates). ``--sessions``, ``--actions`` and ``--run-sessions`` (how
many sessions start full runs; 0 measures the browsing load alone) and ``--think-s`` (a pause after each page
answered; default 0, back to back) change the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrfail.dashboard.limits import process_tree_bytes  # noqa: E402 - after the path insert

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SMALL_ENV = {
    "CXRFAIL_DEMO_MODELS": "densenet121_jrzech,densenet121_1epoch",
    "CXRFAIL_DEMO_FINDINGS": "Edema,Cardiomegaly",
    "CXRFAIL_DEMO_CONFIG": json.dumps({"n_bootstrap": 200, "shap_max_samples": 100, "n_folds": 3}),
    "CXRFAIL_FLIP_BOOTSTRAP": "500",
}
TOUR = ("Subgroups", "Flip", "slider", "Overview", "Cases", "Flip", "slider", "Data", "Export", "Overview")
NEW_SEEDS = (4242, 777, 31337, 2024, 99, 5, 6, 7)
PAGE_TIMEOUT_S = 300
REFUSAL_MARKERS = ("already has an analysis", "near its memory limit")
SAMPLE_S = 0.5
POLL_MS = 50
WARM_TIMEOUT_S = 1800


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
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
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
        if process.poll() is not None:
            break
    process.terminate()
    raise RuntimeError(f"streamlit did not start; see {log_path}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (``/proc/<pid>/stat``; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: where the machine's CPU goes during the bench: the server's own process, its analysis workers, this bench's
#: process (the protocol mode's clients; Playwright's asyncio side in the browser mode), the browser's processes
PROCESS_KINDS = ("server", "workers", "bench", "renderer", "gpu", "browser", "driver")


def _browser_kind(pid: int) -> str:
    """The kind of a bench process: "renderer" (the pages' JavaScript and layout), "gpu" (compositing and
    rasterising, in software here), "browser" (chromium's main and other helper processes) or "driver"
    (Playwright's own process, which the bench talks to)."""
    try:  # chromium rewrites its helpers' command lines into one string: searched as a whole
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "browser"
    if b"chromium" not in command.split(b"\0")[0].split(b" ")[0]:
        return "driver"
    for kind in ("renderer", "gpu"):
        if b"--type=" + kind.encode() in command:
            return kind
    return "browser"


class MemorySampler(threading.Thread):
    """Samples the server's process-tree RSS every `SAMPLE_S` seconds (``peak``, bytes), and the CPU seconds used
    by the server's process, its descendants (analysis workers), this bench's process and the bench's other
    children (the browser): ``cpu_s`` maps each of `PROCESS_KINDS` to seconds (each process's last reading, so
    processes that ended during the bench count up to their last sample; the bench's own process counts from
    the sampler's start)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0, threading.Event()
        self._last: dict[int, tuple[str, float]] = {}
        self._bench_start = _cpu_seconds(os.getpid())

    @property
    def cpu_s(self) -> dict[str, float]:
        totals = dict.fromkeys(PROCESS_KINDS, 0.0)
        for kind, seconds in self._last.values():
            totals[kind] += seconds
        return totals

    def run(self) -> None:
        from cxrfail.files import child_pids

        while not self._halt.is_set():
            self.peak = max(self.peak, process_tree_bytes(self.pid))
            workers = set(child_pids(self.pid))
            for pid in (self.pid, *child_pids(os.getpid())):
                kind = "server" if pid == self.pid else "workers" if pid in workers else _browser_kind(pid)
                self._last[pid] = (kind, max(self._last.get(pid, (kind, 0.0))[1], _cpu_seconds(pid)))
            self._last[os.getpid()] = ("bench", _cpu_seconds(os.getpid()) - self._bench_start)
            self._halt.wait(SAMPLE_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


#: true once the page shows the heading (the argument) and its script run is over with no skeleton left, or the page
#: shows the heading and a run's progress (or queue place)
ANSWERED_JS = """(heading) => {
    const headings = document.querySelectorAll("h1, h2, h3, h4, h5, h6");
    if (![...headings].some((h) => h.textContent.trim() === heading)) return false;
    if (document.querySelector("[data-testid='stProgress']")) return true;
    const app = document.querySelector("[data-testid='stApp']");
    return app !== null && app.getAttribute("data-test-script-state") === "notRunning"
        && document.querySelector("[data-testid='stSkeleton']") === null;
}"""


async def answered(tab, heading: str) -> None:
    """Wait until the page shows ``heading`` and its script run is over, or it shows a run's progress. The wait
    polls inside the page every `POLL_MS` with plain selectors: polling from the bench (a round trip to the
    browser per check) or with Playwright's role selectors (accessible names of the whole page on every
    animation frame) costs the 2 cores about as much CPU as the sessions it measures."""
    try:
        await tab.wait_for_function(ANSWERED_JS, arg=heading, polling=POLL_MS, timeout=PAGE_TIMEOUT_S * 1000)
    except Exception as exc:  # Playwright's TimeoutError: said in the bench's words
        raise TimeoutError(f"{heading} did not answer within {PAGE_TIMEOUT_S} s") from exc


async def shown_problems(tab) -> list[str]:
    texts = []
    for selector in ("[data-testid='stException']", "[data-testid='stAlertContentError']"):
        boxes = tab.locator(selector)
        texts += [await boxes.nth(i).inner_text() for i in range(await boxes.count())]
    return texts


async def session(
    number: int,
    browser,
    url: str,
    actions: int,
    trips: list,
    problems: list,
    runs: dict,
    run_sessions: int,
    skipped: list,
    think_s: float = 0.0,
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 1400})
    tab = await context.new_page()
    tab.set_default_timeout(PAGE_TIMEOUT_S * 1000)
    await tab.goto(url)
    await answered(tab, "Overview")
    current = "Overview"
    if number < run_sessions:  # a new seed: a full run nobody has computed
        seed = tab.locator("[data-testid='stSidebar'] input[aria-label='Seed']")
        await seed.fill(str(NEW_SEEDS[number]))
        await seed.press("Enter")
        await answered(tab, current)
        await tab.locator("[data-testid='stSidebar']").get_by_role("link", name="Identifiers", exact=True).click()
        started = time.monotonic()
        await answered(tab, "Identifiers")
        trips.append((time.monotonic() - started, f"session {number}: Identifiers, new seed"))
        current = "Identifiers"
        runs[number] = "started"
    for step in range(actions):
        if step and think_s:  # a visitor reading the page before the next action (0: back to back)
            await asyncio.sleep(think_s)
        action = TOUR[(step + number) % len(TOUR)]
        started = time.monotonic()
        if action == "slider":
            if current != "Flip":
                continue
            if not await tab.get_by_role("slider").count():  # Flip shows its run's progress: nothing to slide
                skipped.append(f"session {number}")
                continue
            slider = tab.get_by_role("slider").first
            await slider.focus()
            await slider.press("PageUp" if step % 2 else "PageDown")
            await asyncio.sleep(0.05)
        else:
            await tab.locator("[data-testid='stSidebar']").get_by_role("link", name=action, exact=True).click()
            current = action
        await answered(tab, current)
        trips.append((time.monotonic() - started, f"session {number}: {action}"))
        for text in await shown_problems(tab):
            if any(marker in text for marker in REFUSAL_MARKERS):
                runs.setdefault(f"refused:{number}", text.splitlines()[0][:120])
            else:
                problems.append(f"session {number} on {current}: {text.splitlines()[0][:200]}")
    if number < run_sessions:  # what became of this session's run: wait for it (bounded), on Identifiers
        await tab.locator("[data-testid='stSidebar']").get_by_role("link", name="Identifiers", exact=True).click()
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        outcome = "still running at the end of the bench"
        while time.monotonic() < deadline:
            state = await tab.locator("[data-testid='stApp']").get_attribute("data-test-script-state")
            text = await tab.locator("[data-testid='stMain']").inner_text()
            if any(marker in text for marker in REFUSAL_MARKERS):
                outcome = "refused with a message"
                break
            if (
                state == "notRunning"
                and "Identifiers" in text
                and not await tab.locator("[data-testid='stProgress']").count()
            ):
                outcome = "finished"
                break
            await asyncio.sleep(1.0)
        runs[number] = outcome
    await context.close()


async def warm_default_run(browser, url: str) -> float:
    """Open Identifiers (it needs the full run of the default selection) in one session and wait until the run
    is done: the demo's default run is then on the server's disk cache and in its memory, as on a dashboard
    that has served before. Returns the seconds it took."""
    started = time.monotonic()
    context = await browser.new_context(viewport={"width": 1280, "height": 1400})
    tab = await context.new_page()
    tab.set_default_timeout(WARM_TIMEOUT_S * 1000)
    await tab.goto(f"{url}/identifiers")
    await tab.get_by_role("heading", name="Identifiers", exact=True).first.wait_for()
    while time.monotonic() - started < WARM_TIMEOUT_S:
        state = await tab.locator("[data-testid='stApp']").get_attribute("data-test-script-state")
        if state == "notRunning" and not await tab.locator("[data-testid='stProgress']").count():
            break
        await asyncio.sleep(1.0)
    await context.close()
    return time.monotonic() - started


async def drive(
    url: str, sessions: int, actions: int, run_sessions: int, warm: bool, think_s: float = 0.0
) -> tuple[list, list[str], dict, list[str]]:
    from playwright.async_api import async_playwright

    trips: list[tuple[float, str]] = []
    problems: list[str] = []
    runs: dict = {}
    skipped: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            if warm:
                await warm_default_run(browser, url)
            await asyncio.gather(
                *(
                    session(n, browser, url, actions, trips, problems, runs, run_sessions, skipped, think_s)
                    for n in range(sessions)
                )
            )
        finally:
            await browser.close()
    return trips, problems, runs, skipped


# --- protocol mode: each session is a websocket client speaking Streamlit's own protocol (no browser) ---------------

#: Streamlit's websocket route (``streamlit/web/server/starlette/starlette_websocket.py``)
STREAM_ROUTE = "/_stcore/stream"
#: the first index of a delta path in the sidebar (0: the main area)
SIDEBAR_CONTAINER = 1
#: how far one slider move goes: a tenth of the slider's range, as the browser's PageUp/PageDown
SLIDER_STEP_FRACTION = 0.1


class RunView:
    """What one script run showed: the headings, whether a run's progress bar is shown, the error texts (error
    alerts and exceptions: what the browser mode counts as errors), every text (markdown, alerts, the progress
    bar's: where the browser mode reads a refusal), the widgets drawn (label -> (element kind, widget id, fragment
    id, proto)), those in the sidebar (``sidebar_widget_ids``) and whether the run is over. ``fragment`` is true
    for a fragment run (a slider move or a progress panel's redraw)."""

    def __init__(self, run_id: str, fragment: bool) -> None:
        self.run_id, self.fragment, self.finished = run_id, fragment, False
        self.headings: list[str] = []
        self.progress = False
        self.problems: list[str] = []
        self.texts: list[str] = []
        self.widgets: dict[str, tuple[str, str, str, object]] = {}
        self.sidebar_widget_ids: set[str] = set()


class ProtocolSession:
    """One dashboard session as Streamlit's frontend holds it, without a browser: a websocket to
    ``/_stcore/stream`` (tornado's client, in the venv with Streamlit) that sends ``BackMsg.rerun_script`` with a
    ``ClientState`` (the page's script hash, the URL's query string, the widget values it set) and reads the
    ``ForwardMsg`` stream: each script run starts with ``new_session`` and ends with ``script_finished``, both
    tagged with the run's id and fragment ids. It answers fragment auto-reruns (``ForwardMsg.auto_rerun``: a run's
    progress panel redraws itself) as the frontend does, while no request of its own is pending. Page switches
    clear the query string, as the frontend's page links do."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pages: dict[str, str] = {}  # page name as in the URL ("flip"; "overview" for the main page) -> hash
        self.page_hash = ""
        self.query_string = ""
        self.widget_values: dict[str, object] = {}  # widget id -> WidgetState this session set
        self.latest = RunView("", fragment=False)  # the run started last
        self.started_runs = 0
        self.auto_reruns: dict[str, float] = {}  # fragment id -> interval, s
        self.closed = False
        self._views: dict[str, RunView] = {}
        self._pending = False
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def open(self, page: str = "overview", heading: str = "Overview") -> RunView:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        request = HTTPRequest(self.url.replace("http", "ws", 1) + STREAM_ROUTE, headers={"Origin": self.url})
        self.connection = await websocket_connect(request, subprotocols=["streamlit"])
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._auto_rerun())]
        return await self.request(page_name="" if page == "overview" else page, heading=heading)

    async def close(self) -> None:
        self.connection.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _send(self, fragment_id: str = "", page_name: str = "", auto: bool = False) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = BackMsg()
        state = message.rerun_script
        state.query_string, state.page_script_hash, state.page_name = self.query_string, self.page_hash, page_name
        state.fragment_id, state.is_auto_rerun = fragment_id, auto
        for widget in self.widget_values.values():
            state.widget_states.widgets.add().CopyFrom(widget)
        self.connection.write_message(message.SerializeToString(), binary=True)

    async def request(
        self, page: str | None = None, page_name: str = "", widget=None, fragment_id: str = "", heading: str = ""
    ) -> RunView:
        """Send one rerun (a page switch to ``page``, a widget value, or the page ``page_name`` on connecting)
        and wait until it answered: the script run it started (a fragment run for ``fragment_id``) is over, or it
        shows ``heading`` and a run's progress (the browser mode's rule). ``widget`` is a ``WidgetState``."""
        if page is not None and self.pages.get(page) != self.page_hash:
            self.page_hash, self.query_string = self.pages[page], ""
            sidebar = self.latest.sidebar_widget_ids  # still shown: the frontend sends their values, drops the rest
            self.widget_values = {key: value for key, value in self.widget_values.items() if key in sidebar}
        if widget is not None:
            self.widget_values[widget.id] = widget
        if not fragment_id:
            self.auto_reruns.clear()  # the new run announces the fragments that still redraw themselves
        self._pending, before = True, self.started_runs
        self._send(fragment_id, page_name)
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        try:
            while True:
                view = self.latest
                if self.closed:
                    view.problems.append("the server closed the connection")
                    return view
                if self.started_runs > before and view.fragment == bool(fragment_id):
                    if view.finished or (view.progress and (not heading or heading in view.headings)):
                        return view
                self._changed.clear()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{page or page_name or 'the page'} did not answer within {PAGE_TIMEOUT_S} s")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    continue
        finally:
            self._pending = False

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        while True:
            data = await self.connection.read_message()
            if data is None:  # the server closed the websocket
                self.closed = True
                self._changed.set()
                return
            message = ForwardMsg()
            message.ParseFromString(data)
            kind = message.WhichOneof("type")
            if kind == "navigation":
                self.pages = {
                    page.url_pathname or "overview": page.page_script_hash for page in message.navigation.app_pages
                }
            elif kind == "new_session":
                run = message.metadata.run
                self.latest = self._views[run.script_run_id] = RunView(run.script_run_id, bool(run.fragment_ids))
                self.started_runs += 1
                self.page_hash = message.new_session.page_script_hash or self.page_hash
            elif kind == "page_info_changed":
                self.query_string = message.page_info_changed.query_string
            elif kind == "auto_rerun":
                self.auto_reruns[message.auto_rerun.fragment_id] = message.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                self.auto_reruns.clear()
            elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                in_sidebar = message.metadata.delta_path[:1] == [SIDEBAR_CONTAINER]
                self._note(self.latest, message.delta.new_element, message.delta.fragment_id, in_sidebar)
            elif kind == "script_finished":
                view = self._views.pop(message.metadata.run.script_run_id, None)
                if view is not None and message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    view.finished = True
            self._changed.set()

    @staticmethod
    def _note(view: RunView, element, fragment_id: str, in_sidebar: bool) -> None:
        from streamlit.proto.Alert_pb2 import Alert

        kind = element.WhichOneof("type")
        if kind == "heading":
            view.headings.append(element.heading.body)
        elif kind == "progress":
            view.progress = True
            view.texts.append(element.progress.text)
        elif kind == "markdown":
            view.texts.append(element.markdown.body)
        elif kind == "alert":
            view.texts.append(element.alert.body)
            if element.alert.format == Alert.ERROR:
                view.problems.append(element.alert.body)
        elif kind == "exception":
            view.problems.append(f"{element.exception.type}: {element.exception.message}")
        elif kind in ("slider", "number_input"):
            widget = getattr(element, kind)
            view.widgets[widget.label] = (kind, widget.id, fragment_id, widget)
            if in_sidebar:
                view.sidebar_widget_ids.add(widget.id)

    async def _auto_rerun(self) -> None:
        """Redraw the self-redrawing fragments (a run's progress panel) every interval, as the frontend does,
        while no request of this session is pending."""
        while True:
            await asyncio.sleep(min(self.auto_reruns.values(), default=1.0))
            if not self._pending:
                for fragment_id in list(self.auto_reruns):
                    self._send(fragment_id, auto=True)


def _slider_moved(view: RunView, up: bool):
    """The ``WidgetState`` of the page's slider moved by a tenth of its range, and the slider's fragment id;
    None when the page shows no slider (its run's progress instead)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    found = next((found for found in view.widgets.values() if found[0] == "slider"), None)
    if found is None:
        return None
    _, widget_id, fragment_id, slider = found
    value = (list(slider.value) or list(slider.default))[0]
    change = (slider.max - slider.min) * SLIDER_STEP_FRACTION
    moved = min(slider.max, max(slider.min, value + (change if up else -change)))
    if moved == value:  # at an end of the range: the other way
        moved = min(slider.max, max(slider.min, value + (-change if up else change)))
    state = WidgetState(id=widget_id)
    state.double_array_value.data.append(moved)
    del slider.value[:]
    slider.value.append(moved)  # the next move starts here
    return state, fragment_id


async def protocol_session(
    number: int,
    url: str,
    actions: int,
    trips: list,
    problems: list,
    runs: dict,
    run_sessions: int,
    skipped: list,
    think_s: float = 0.0,
) -> None:
    """The browser mode's `session` over Streamlit's protocol: the same tour, seeds and outcome rule."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    client = ProtocolSession(url)
    view = await client.open()
    current, flip_view = "Overview", None
    try:
        if number < run_sessions:  # a new seed: a full run nobody has computed
            seed_id = view.widgets["Seed"][1]
            await client.request(widget=WidgetState(id=seed_id, int_value=NEW_SEEDS[number]), heading=current)
            started = time.monotonic()
            view = await client.request(page="identifiers", heading="Identifiers")
            trips.append((time.monotonic() - started, f"session {number}: Identifiers, new seed"))
            current = "Identifiers"
            runs[number] = "started"
        for step in range(actions):
            if step and think_s:
                await asyncio.sleep(think_s)
            action = TOUR[(step + number) % len(TOUR)]
            started = time.monotonic()
            if action == "slider":
                if current != "Flip":
                    continue
                moved = _slider_moved(flip_view, up=bool(step % 2)) if flip_view is not None else None
                if moved is None:  # Flip shows its run's progress: nothing to slide
                    skipped.append(f"session {number}")
                    continue
                view = await client.request(widget=moved[0], fragment_id=moved[1])
            else:
                view = await client.request(page=action.lower(), heading=action)
                current = action
                flip_view = view if action == "Flip" else None
            trips.append((time.monotonic() - started, f"session {number}: {action}"))
            for text in view.problems:
                if any(marker in text for marker in REFUSAL_MARKERS):
                    runs.setdefault(f"refused:{number}", text.splitlines()[0][:120])
                else:
                    problems.append(f"session {number} on {current}: {text.splitlines()[0][:200]}")
        if number < run_sessions:  # what became of this session's run
            runs[number] = await wait_for_outcome(client)
    finally:
        await client.close()


async def wait_for_outcome(client: ProtocolSession, timeout_s: float = PAGE_TIMEOUT_S) -> str:
    """Open Identifiers and wait (bounded) until its run finished (a whole run of the page with no progress bar),
    or the page says the run was refused. The progress panel redraws itself meanwhile (auto-reruns)."""
    await client.request(page="identifiers", heading="Identifiers")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not client.closed:
        view = client.latest  # the latest run: a redraw of the progress panel, or the page it reran when done
        if any(marker in text for text in view.texts + view.problems for marker in REFUSAL_MARKERS):
            return "refused with a message"
        if view.finished and not view.fragment and not view.progress and "Identifiers" in view.headings:
            return "finished"
        await asyncio.sleep(1.0)
    return "still running at the end of the bench"


async def drive_protocol(
    url: str, sessions: int, actions: int, run_sessions: int, warm: bool, think_s: float = 0.0
) -> tuple[list, list[str], dict, list[str]]:
    """`drive` with `protocol_session` clients instead of browser contexts."""
    trips: list[tuple[float, str]] = []
    problems: list[str] = []
    runs: dict = {}
    skipped: list[str] = []
    if warm:
        client = ProtocolSession(url)
        await client.open()
        await wait_for_outcome(client, WARM_TIMEOUT_S)
        await client.close()
    await asyncio.gather(
        *(
            protocol_session(n, url, actions, trips, problems, runs, run_sessions, skipped, think_s)
            for n in range(sessions)
        )
    )
    return trips, problems, runs, skipped


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--actions", type=int, default=6, help="page switches and slider moves per session")
    parser.add_argument("--run-sessions", type=int, default=2, help="sessions that start full runs (new seeds)")
    parser.add_argument("--full", action="store_true", help="the dashboard's default configuration")
    parser.add_argument(
        "--think-s",
        type=float,
        default=0.0,
        help="seconds each session waits after a page answered before its next action (default 0: back to back, "
        "the heaviest load; a visitor reads a page for longer)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up: the default selection's run is also computed during the bench (by default one "
        "session computes it first, untimed, as on a server that has served the demo before)",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="each session is a chromium page driven by Playwright (the page drawn too, but 8 browsers and their "
        "driver then take most of the 2 cores); by default each session is a websocket client speaking "
        "Streamlit's protocol: the server's round trip",
    )
    args = parser.parse_args()
    args.protocol = not args.browser
    if not args.protocol and not CHROMIUM.exists():
        print("load bench skipped: Debian's chromium (/usr/bin/chromium) is not installed")
        return 0
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cxrfail-load-bench-") as scratch:
        env = {"CXRFAIL_CACHE_DIR": str(Path(scratch) / "cache"), **({} if args.full else SMALL_ENV)}
        server, url = start_server(env, Path(scratch) / "streamlit.log")
        sampler = MemorySampler(server.pid)
        sampler.start()
        started = time.monotonic()
        try:
            labelled, problems, runs, skipped = asyncio.run(
                (drive_protocol if args.protocol else drive)(
                    url, args.sessions, args.actions, args.run_sessions, warm=not args.cold, think_s=args.think_s
                )
            )
        finally:
            server.terminate()  # first: nothing below may leave the server running
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            sampler.stop()
    configuration = "dashboard defaults" if args.full else "small (2 models x 2 findings, 200 replicates)"
    mode = "protocol (websocket clients, no browser)" if args.protocol else "browser (chromium via Playwright)"
    print(f"mode: {mode}; load average at the start {load_at_start:.1f}")
    print(
        f"sessions: {args.sessions} ({args.run_sessions} starting full runs with new seeds); configuration: "
        f"{configuration}; default selection's run {'computed during the bench' if args.cold else 'warmed first'}; "
        f"{args.think_s:g} s between a session's actions; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    trips = [seconds for seconds, _ in labelled]
    slowest = sorted(labelled, reverse=True)[:3]
    print(
        f"page round trips: {len(trips)}; median {percentile(trips, 0.5):.2f} s; slowest: "
        + ", ".join(f"{label} {seconds:.1f} s" for seconds, label in slowest)
    )
    by_action: dict[str, list[float]] = {}
    for seconds, label in labelled:
        by_action.setdefault(label.split(": ", 1)[1], []).append(seconds)
    print(
        "median by action: "
        + ", ".join(f"{action} {percentile(times, 0.5):.2f} s (n={len(times)})" for action, times in by_action.items())
    )
    if skipped:
        print(f"slider moves skipped (Flip showed its run's progress, no slider): {len(skipped)}")
    cpu = sampler.cpu_s
    clients = (
        f"the bench's protocol clients {cpu['bench']:.0f}"
        if args.protocol
        else f"chromium: renderers {cpu['renderer']:.0f}, gpu {cpu['gpu']:.0f}, other {cpu['browser']:.0f}; "
        f"Playwright driver {cpu['driver']:.0f}, the bench's process {cpu['bench']:.0f}"
    )
    print(
        f"CPU seconds used: server process {cpu['server']:.0f}, its analysis workers {cpu['workers']:.0f}; "
        + f"{clients} (machine: {os.cpu_count()} cores; load average at the end {os.getloadavg()[0]:.1f})"
    )
    print(f"load_p95_s: {percentile(trips, 0.95):.2f}")
    print(f"load_peak_gb: {sampler.peak / 1e9:.2f}")
    print(f"errors shown: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
    print("runs: " + "; ".join(f"{key}: {value}" for key, value in sorted(runs.items(), key=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
