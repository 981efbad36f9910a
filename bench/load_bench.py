"""Load bench: 8 concurrent browser sessions on one dashboard server (issue 21).

Starts ``streamlit run app.py`` on a free port of 127.0.0.1 (a fresh disk cache, nothing else reachable), opens
8 sessions in Debian's chromium through Playwright (one browser, 8 contexts: 8 Streamlit sessions), and drives
them at once for a bounded number of actions each: page switches (Overview, Subgroups, Flip, Cases, Data,
Export) and Flip slider moves. Two of the sessions first set a new seed in the sidebar and open Identifiers,
which starts full analysis runs: they run, wait in the queue (the page says so) or are refused with a message
(`cxrfail.dashboard.limits`).

A page round trip is the time from the click (or key press) until the page answered: its heading is shown and
Streamlit's script run is over, or the page shows a run's progress (a run that takes minutes is not counted as
a slow page; its outcome is reported below). The server's memory is its process tree's resident set (server
plus analysis workers), sampled every 0.5 s.

Prints ``load_p95_s:`` (95th percentile of page round trips, all sessions), ``load_peak_gb:``, the number of
round trips, the errors shown (other than load refusals, which are counted apart) and what became of each run.

By default the dashboard runs the small configuration the dashboard tests use (2 models x 2 findings, 200
bootstrap replicates) so that the bench ends in a few minutes on 2 cores; ``--full`` uses the dashboard's
defaults (4 models x 5 findings, 2,000 replicates). ``--sessions``, ``--actions`` and ``--run-sessions`` (how
many sessions start full runs; 0 measures the browsing load alone) change the load.
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


class MemorySampler(threading.Thread):
    """Samples the server's process-tree RSS every `SAMPLE_S` seconds; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._halt = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, process_tree_bytes(self.pid))
            self._halt.wait(SAMPLE_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


async def answered(tab, heading: str) -> None:
    """Wait until the page shows ``heading`` and its script run is over, or it shows a run's progress."""
    await tab.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        state = await tab.locator("[data-testid='stApp']").get_attribute("data-test-script-state")
        if state == "notRunning" and not await tab.locator("[data-testid='stSkeleton']").count():
            return
        if await tab.locator("[data-testid='stProgress']").count():  # a run's progress (or queue place) shown
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{heading} did not answer within {PAGE_TIMEOUT_S} s")


async def shown_problems(tab) -> list[str]:
    texts = []
    for selector in ("[data-testid='stException']", "[data-testid='stAlertContentError']"):
        boxes = tab.locator(selector)
        texts += [await boxes.nth(i).inner_text() for i in range(await boxes.count())]
    return texts


async def session(
    number: int, browser, url: str, actions: int, trips: list, problems: list, runs: dict, run_sessions: int
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
        action = TOUR[(step + number) % len(TOUR)]
        started = time.monotonic()
        if action == "slider":
            if current != "Flip":
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


async def drive(url: str, sessions: int, actions: int, run_sessions: int) -> tuple[list, list[str], dict]:
    from playwright.async_api import async_playwright

    trips: list[tuple[float, str]] = []
    problems: list[str] = []
    runs: dict = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            await asyncio.gather(
                *(session(n, browser, url, actions, trips, problems, runs, run_sessions) for n in range(sessions))
            )
        finally:
            await browser.close()
    return trips, problems, runs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--actions", type=int, default=6, help="page switches and slider moves per session")
    parser.add_argument("--run-sessions", type=int, default=2, help="sessions that start full runs (new seeds)")
    parser.add_argument("--full", action="store_true", help="the dashboard's default configuration")
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
            labelled, problems, runs = asyncio.run(drive(url, args.sessions, args.actions, args.run_sessions))
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
        f"{configuration}; {time.monotonic() - started:.0f} s in all"
    )
    trips = [seconds for seconds, _ in labelled]
    slowest = sorted(labelled, reverse=True)[:3]
    print(
        f"page round trips: {len(trips)}; median {percentile(trips, 0.5):.2f} s; slowest: "
        + ", ".join(f"{label} {seconds:.1f} s" for seconds, label in slowest)
    )
    print(f"load_p95_s: {percentile(trips, 0.95):.2f}")
    print(f"load_peak_gb: {sampler.peak / 1e9:.2f}")
    print(f"errors shown: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
    print("runs: " + "; ".join(f"{key}: {value}" for key, value in sorted(runs.items(), key=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
