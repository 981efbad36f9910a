"""Load bench: 8 concurrent browser sessions on one dashboard server (issue 21).

Starts ``streamlit run app.py`` on a free port of 127.0.0.1 (a fresh disk cache, nothing else reachable), opens
8 sessions in Debian's chromium through Playwright (one browser, 8 contexts: 8 Streamlit sessions), and drives
them at once for a bounded number of actions each: page switches (Overview, Subgroups, Flip, Cases, Data,
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


#: where the machine's CPU goes during the bench: the server's process tree, then the browser's processes
PROCESS_KINDS = ("server", "renderer", "gpu", "browser", "driver")


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
    by the server's tree (server and analysis workers) and by the bench's other children (the browser):
    ``cpu_s`` maps "server" and "browser" to seconds (each process's last reading, so processes that ended
    during the bench count up to their last sample)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0, threading.Event()
        self._last: dict[int, tuple[str, float]] = {}

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
            server = {self.pid, *child_pids(self.pid)}
            for pid in (self.pid, *child_pids(os.getpid())):
                kind = "server" if pid in server else _browser_kind(pid)
                self._last[pid] = (kind, max(self._last.get(pid, (kind, 0.0))[1], _cpu_seconds(pid)))
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
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print("load bench skipped: Debian's chromium (/usr/bin/chromium) is not installed")
        return 0
    with tempfile.TemporaryDirectory(prefix="cxrfail-load-bench-") as scratch:
        env = {"CXRFAIL_CACHE_DIR": str(Path(scratch) / "cache"), **({} if args.full else SMALL_ENV)}
        server, url = start_server(env, Path(scratch) / "streamlit.log")
        sampler = MemorySampler(server.pid)
        sampler.start()
        started = time.monotonic()
        try:
            labelled, problems, runs, skipped = asyncio.run(
                drive(url, args.sessions, args.actions, args.run_sessions, warm=not args.cold, think_s=args.think_s)
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
    print(
        "CPU seconds used: server and its workers "
        + f"{cpu['server']:.0f}; chromium: renderers {cpu['renderer']:.0f}, gpu {cpu['gpu']:.0f}, other "
        + f"{cpu['browser']:.0f}; Playwright driver {cpu['driver']:.0f} (machine: {os.cpu_count()} cores; load "
        + f"average at the end {os.getloadavg()[0]:.1f})"
    )
    print(f"load_p95_s: {percentile(trips, 0.95):.2f}")
    print(f"load_peak_gb: {sampler.peak / 1e9:.2f}")
    print(f"errors shown: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
    print("runs: " + "; ".join(f"{key}: {value}" for key, value in sorted(runs.items(), key=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
