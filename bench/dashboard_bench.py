"""Dashboard speed with warm caches.

1. Server time of an AppTest rerun after moving the Flip slider to a new tau (each move a tau not seen before,
   so the live flip evaluation is computed, not served from memory), against a baseline measured in the same
   process: the rerun of a one-slider script (Streamlit's own floor).
2. Server time of switching pages (AppTest switch_page + run), per page.
3. Time from `streamlit run` to the first rendered Overview in headless chromium, with an empty disk cache
   (``cold_first_screen_s:``) and a warm one (skipped when /usr/bin/chromium or playwright is missing).
4. ``--during-run``: server time of page switches while a full run computes in the background (a seed no
   run has used), against the same switches once it is done: ``switch_during_run_s: median M worst W``.
5. The Flip slider's round trip in the browser: key press on the slider → the figure redrawn at the new tau
   (with its new ΔF1 and metrics), per move
   (``slider_browser_ms: <median>``; skipped without chromium).
6. ``--chexpert``: the bundled CheXpert CSV at study level with 10 simulated models, loaded through the Data
   page; then every page is opened while the full 10 x 5 run computes: seconds from opening until each shows
   useful content, its numbers (final, provisional, or the first screen's quick run) or the run's panel with
   the time left (pages rerun every second meanwhile, as their panel does): ``chexpert_page_s: worst W``
   (goal: 15 s), with the load average beside each page (the machine may be shared).

The first AppTest run warms the caches: with a cold disk cache it runs the analysis (minutes on the full demo).
The full demo (the app's defaults: 4 models × the five competition findings and the two with reference labels) is
measured unless ``--quick`` picks the test subset
(2 models, 2 findings, fewer replicates); ``CXRFAIL_CACHE_DIR`` is honoured. Last line: ``slider_ms: <median>``.

    .venv/bin/python bench/dashboard_bench.py [--quick] [--moves 15] [--no-browser]
    .venv/bin/python bench/dashboard_bench.py --cold 5    # only the cold first screen, 5 times; last line its median
    .venv/bin/python bench/dashboard_bench.py --quick --during-run   # page switches during a full run
    .venv/bin/python bench/dashboard_bench.py --quick --slider-browser   # the slider's round trip in chromium
    .venv/bin/python bench/dashboard_bench.py --chexpert   # CheXpert scale: every page during the full run
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"  # what `streamlit run` starts (the server entry)
OVERVIEW = ROOT / "overview.py"  # Streamlit's main script, for AppTest
CHEXPERT_GIVE_UP_S = 300  # --chexpert: a page still waiting blind after this long is reported as such
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUICK_ENV = {
    "CXRFAIL_DEMO_MODELS": "densenet121_jrzech,densenet121_1epoch",
    "CXRFAIL_DEMO_FINDINGS": "Edema,Cardiomegaly",
    "CXRFAIL_DEMO_CONFIG": json.dumps({"n_bootstrap": 200, "shap_max_samples": 100, "n_folds": 3}),
}
PAGES = ("overview", "subgroups", "identifiers", "explain", "flip", "cases", "data", "export")
BASELINE_SCRIPT = """
import streamlit as st
value = st.slider("x", 0.0, 1.0, 0.5, step=0.001)
st.metric("value", f"{value:.3f}")
"""


def _script(page: str) -> str:
    """``overview.py`` is the Overview; the other pages are ``pages/<page>.py``."""
    return "overview.py" if page == "overview" else f"pages/{page}.py"


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _check(app, where: str) -> None:
    problems = [e.value for e in app.exception] + [e.value for e in app.error]
    if problems:
        raise SystemExit(f"{where}: {problems[:2]}")


def apptest_bench(moves: int) -> dict[str, object]:
    from streamlit.testing.v1 import AppTest

    os.environ["CXRFAIL_INLINE_WAIT_S"] = "3600"  # every page waits for its run: steady-state timings
    start = time.perf_counter()
    app = AppTest.from_file(str(OVERVIEW), default_timeout=3600).run()
    _check(app, "first run")
    warm_s = time.perf_counter() - start
    print(f"first run (warms the caches): {warm_s:.1f} s", file=sys.stderr)

    baseline = AppTest.from_string(BASELINE_SCRIPT, default_timeout=30).run()
    baseline_times = []
    for index in range(moves):
        baseline.slider[0].set_value(round(0.1 + 0.8 * index / max(1, moves - 1), 3))
        baseline_times.append(_timed(baseline.run))

    app.switch_page("pages/flip.py").run()
    _check(app, "flip")
    app.run()  # steady state on the page
    slider_times = []
    for index in range(moves):
        tau = round(0.02 + 0.9 * index / max(1, moves - 1), 3) + 0.0005 * (index % 2)  # new taus each move
        app.slider[0].set_value(tau)
        slider_times.append(_timed(app.run))
        _check(app, f"slider move to {tau}")
    revisit_times = []
    for index in range(min(5, moves)):  # back to taus already seen: served from the run's memo
        app.slider[0].set_value(round(0.02 + 0.9 * index / max(1, moves - 1), 3))
        revisit_times.append(_timed(app.run))

    page_times: dict[str, list[float]] = {page: [] for page in PAGES}
    for _ in range(3):
        for page in PAGES:
            app.switch_page(_script(page))
            page_times[page].append(_timed(app.run))
            _check(app, page)
    return {
        "warm_s": warm_s,
        "baseline_ms": _ms(_median(baseline_times)),
        "slider_ms": _ms(_median(slider_times)),
        "slider_max_ms": _ms(max(slider_times)),
        "slider_revisit_ms": _ms(_median(revisit_times)),
        # the first visit of a page builds and memoises its figures; later visits reuse them
        "pages_first_ms": {page: _ms(times[0]) for page, times in page_times.items()},
        "pages_ms": {page: _ms(_median(times[1:])) for page, times in page_times.items()},
    }


def _wait_for_runs(timeout_s: float = 3600) -> None:
    from cxrfail.dashboard import runs

    deadline = time.monotonic() + timeout_s
    while runs.running_jobs() and time.monotonic() < deadline:
        time.sleep(0.2)


def during_run_bench(min_switches: int = 12) -> int:
    """Page switches while a full run computes (a fresh seed: nothing cached), then the same switches with
    the run done (the baseline). Every switch is an AppTest rerun on the page: the server time to draw it."""
    from streamlit.testing.v1 import AppTest

    from cxrfail.dashboard import runs

    os.environ.pop("CXRFAIL_INLINE_WAIT_S", None)  # the dashboard's own short wait, as a visitor has it
    app = AppTest.from_file(str(OVERVIEW), default_timeout=3600).run()
    _wait_for_runs()
    app.run()
    _check(app, "first run")
    # what the server's lifespan imports a few seconds after the first result (`startup.preload_image_decoder`;
    # AppTest has no lifespan): the image decoder of Cases and Explain, which imports torch
    from cxrfail.inference import images  # noqa: F401

    seed = 100_000 + int(time.time()) % 1_000_000  # a seed no run has used: the full run computes
    start = time.perf_counter()
    app.sidebar.number_input(key="sel_seed").set_value(seed)
    first = _timed(app.run)  # the Overview: the quick first run of one finding, then the full run's panel
    _check(app, "seed change")
    if not runs.running_jobs():
        raise SystemExit("the full run is not computing after the seed change (was this seed cached?)")
    during: list[tuple[str, float]] = []
    while runs.running_jobs() or len(during) < min_switches:
        if not runs.running_jobs():
            break
        page = PAGES[len(during) % len(PAGES)]
        app.switch_page(_script(page))
        during.append((page, _timed(app.run)))
        _check(app, f"{page} during the run")
    _wait_for_runs()
    run_s = time.perf_counter() - start
    after = []
    for page, _ in during:
        app.switch_page(_script(page))
        after.append(_timed(app.run))
        _check(app, f"{page} after the run")
    times = [t for _, t in during]
    worst_page, worst = max(during, key=lambda item: item[1])
    print(
        f"page switches during a full run (seed {seed}; the run took {run_s:.1f} s; Overview after the seed "
        f"change {first:.1f} s), AppTest server time per switch"
    )
    for page in PAGES:
        mine = [t for p, t in during if p == page]
        if mine:
            print(f"  {page:<12} during: median {_median(mine):.2f} s over {len(mine)}")
    print(f"same switches after the run: median {_median(after):.2f} s, worst {max(after):.2f} s")
    print(
        f"worst during the run: {worst_page} {worst:.2f} s; ratio of medians during/after "
        f"{_median(times) / max(_median(after), 1e-9):.1f}x"
    )
    print(f"switch_during_run_s: median {_median(times):.2f} worst {worst:.2f}")
    return 0


def chexpert_bench(n_models: int = 10) -> int:
    """`_chexpert_pages` in a private temporary folder (the simulated models and the run's cache, derived from
    the CheXpert sample's patients), removed when the bench ends."""
    with tempfile.TemporaryDirectory(prefix="cxrfail-dash-chexpert-") as scratch:
        return _chexpert_pages(Path(scratch), n_models)


def _chexpert_pages(scratch: Path, n_models: int) -> int:
    """The Data page loads the CheXpert CSV (study level) and ``n_models`` simulated models; then each page is
    opened while the full run computes (no demo: its run would compete for the 2 cores)."""
    from streamlit.testing.v1 import AppTest

    from cxrfail.cohort import chexpert_sample_path, load_chexpert
    from cxrfail.dashboard import runs
    from cxrfail.findings import COMPETITION_FINDINGS
    from cxrfail.simulate import write_simulated_models

    csv = chexpert_sample_path()
    models = write_simulated_models(load_chexpert(csv), COMPETITION_FINDINGS, n_models, scratch / "models")
    os.environ.update(
        {
            "CXRFAIL_DATA_ROOTS": os.pathsep.join([str(scratch), str(csv.parent)]),
            "CXRFAIL_DEMO_DIR": str(scratch / "no-demo"),
            "CXRFAIL_CACHE_DIR": str(scratch / "cache"),
        }
    )
    os.environ.pop("CXRFAIL_INLINE_WAIT_S", None)
    app = AppTest.from_file(str(OVERVIEW), default_timeout=3600).run()
    app.switch_page("pages/data.py").run()
    app.text_area(key="data_pred_paths").input("\n".join(map(str, models)))
    app.selectbox(key="data_kind").set_value("chexpert")
    app.text_input(key="data_cohort_path").input(str(csv))
    app.selectbox(key="data_unit").set_value("study")
    load_s = _timed(app.button[0].click().run)
    _check(app, "loading the CheXpert data")
    print(
        f"Data page: {len(models)} models on the CheXpert CSV loaded in {load_s:.1f} s; "
        + next((s.value for s in app.success), "")[:160],
        flush=True,
    )
    times, useful = {}, {}
    for page in ("overview", "subgroups", "identifiers", "explain", "flip", "cases", "labels", "export"):
        opened = time.perf_counter()
        app.switch_page(_script(page))
        times[page] = _timed(app.run)
        _check(app, page)
        # a page that shows neither its numbers nor the time left reruns itself (its panel's fragment) until it
        # does: rerun it every second as the browser would, and time it from opening
        while (shown := _chexpert_shown(app))[0] == "waiting" and time.perf_counter() - opened < CHEXPERT_GIVE_UP_S:
            time.sleep(1.0)
            app.run()
            _check(app, page)
        useful[page] = time.perf_counter() - opened
        kind, panel = shown
        print(
            f"  {page:<12} drawn {times[page]:5.1f} s, useful content {useful[page]:5.1f} s: {kind}"
            + (f" [{panel}]" if panel else "")
            + f" (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    _full_vs_core_cost(runs)
    jobs = runs.running_jobs()
    for job in jobs:  # not waited for: the pages' times are the measure; stopped after the pair it is on
        job.cancel()
    for job in jobs:
        job.wait(CHEXPERT_GIVE_UP_S)
    print(
        f"chexpert_page_s: worst {max(useful.values()):.1f} (Overview {useful['overview']:.1f}); "
        f"first draw worst {max(times.values()):.1f}"
    )
    return 0


def _full_vs_core_cost(runs, n_pairs: int = 4, timeout_s: float = 300) -> None:
    """The full run's seconds per pair against the quick run's, once ``n_pairs`` pairs are done: the ratio
    behind the rough time left shown before the first pair (`runs.FULL_PAIR_COST_VS_CORE`)."""
    from cxrfail.analysis.config import CORE_SCOPE, FULL_SCOPE

    jobs = list(runs._JOBS)
    core = next((job for job in jobs if job.scope == CORE_SCOPE and job.pairs_done), None)
    full = next((job for job in jobs if job.scope == FULL_SCOPE and job.running), None)
    if core is None or full is None:
        return
    deadline = time.monotonic() + timeout_s
    while len(full.pairs_done) < n_pairs and full.running and time.monotonic() < deadline:
        time.sleep(0.5)
    if len(full.pairs_done) < n_pairs:
        return
    workers = max(1, min(os.cpu_count() or 1, len(full.pairs)))
    core_s = core.elapsed_s() / len(core.pairs_done)
    full_s = sorted(full.pairs_done.values())[n_pairs - 1] * workers / n_pairs
    print(
        f"full run: {n_pairs} pairs after {full_s * n_pairs / workers:.1f} s ({full_s:.1f} s a pair on each of "
        f"{workers} workers); quick run {core_s:.2f} s a pair: full/quick {full_s / core_s:.1f}x "
        f"(runs.FULL_PAIR_COST_VS_CORE = {runs.FULL_PAIR_COST_VS_CORE:g}; load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )


def _chexpert_shown(app) -> tuple[str, str]:
    """What a page shows while the run computes: ("provisional" | "first screen" | "waiting, time left" |
    "waiting" | "numbers", the run panel's line). "waiting": its panel without a time left yet."""
    panel = next((c.value for c in app.caption if "model × finding pairs done" in c.value), "")
    text = " ".join(m.value for m in app.markdown)
    if "Provisional:" in text:
        return "provisional", panel
    if "quick first run" in text:
        return "first screen", panel
    if panel:
        return ("waiting" if "estimated once the first pair" in panel else "waiting, time left"), panel
    return "numbers", ""


def slider_browser_bench(moves: int = 12) -> int:
    """The Flip slider's round trip in chromium: a key press on the slider (a new tau) until the Flip figure's
    current-tau label shows the new tau (the fragment reran and the browser drew it), per move."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = Path("/nonexistent")
    if not chromium.exists():
        print("slider_browser_ms: skipped (needs /usr/bin/chromium and playwright)")
        return 1
    process, url = _start_server({"CXRFAIL_INLINE_WAIT_S": "3600"})
    try:
        if not _healthy(process, url, time.perf_counter()):
            raise SystemExit("streamlit did not start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(1_800_000)
            page.goto(f"{url}/flip")
            # the figure's current-tau label: redrawn with the new numbers on every move (ΔF1 itself may not
            # change between neighbouring taus)
            label = page.locator(".js-plotly-plot .annotation-text").filter(has_text="tau = ")
            label.first.wait_for()
            slider = page.get_by_role("slider").first
            slider.focus()

            def move(key: str) -> float:
                before = label.first.text_content()
                start = time.perf_counter()
                slider.press(key)
                while label.first.text_content() == before and time.perf_counter() - start < 30:
                    time.sleep(0.002)
                return time.perf_counter() - start

            for _ in range(3):  # warm the page's caches
                move("ArrowLeft")
            times = [move("ArrowLeft" if index % 4 else "PageDown") for index in range(moves)]
            browser.close()
    finally:
        _stop_server(process)
    print(
        f"Flip slider in chromium, key press -> figure redrawn at the new tau, {moves} moves: "
        + ", ".join(f"{_ms(t):.0f}" for t in times)
        + " ms"
    )
    print(f"slider_browser_ms: {_ms(_median(times)):.0f}")
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_bench(cache_dir: str | None = None) -> float | None:
    """Seconds from `streamlit run` to the Overview with its figures drawn, or None when it cannot run.

    ``cache_dir``: the server's ``CXRFAIL_CACHE_DIR`` (an empty folder measures a cold start)."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.exists():
        return None
    start = time.perf_counter()
    process, url = _start_server({"CXRFAIL_CACHE_DIR": cache_dir} if cache_dir else {})
    try:
        if not _healthy(process, url, start):
            return None
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.set_default_timeout(600_000)
            page.goto(url)
            page.get_by_role("heading", name="Where is the action?").wait_for()
            while (
                page.locator(".js-plotly-plot").count() < 6
                or page.locator("[data-testid='stApp']").get_attribute("data-test-script-state") != "notRunning"
            ):
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            browser.close()
        return elapsed
    finally:
        _stop_server(process)


def _start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on a free port of 127.0.0.1 with ``env`` added, in its own process group (its
    output to a temporary file); (the process, its URL)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
        + ["--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT,
        stdout=tempfile.TemporaryFile(),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _healthy(process: subprocess.Popen, url: str, started: float, limit_s: float = 120) -> bool:
    """Wait until the server at ``url`` answers its health check: True, or False when it died or did not answer
    within ``limit_s`` of ``started`` (``time.perf_counter``)."""
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
        if process.poll() is not None or time.perf_counter() - started > limit_s:
            return False


def _stop_server(process: subprocess.Popen) -> None:
    """Terminate the server, then kill what is left of its process group."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    _kill_group(process.pid)


def _kill_group(group: int) -> None:
    """Stop what the server left running in its process group: the worker processes of the analysis it started in
    the background outlive it and would slow every later measurement."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cold_only(times: int) -> int:
    """`browser_bench` on a fresh empty cache ``times`` times; every time, then the median."""
    seconds = []
    for attempt in range(times):
        with tempfile.TemporaryDirectory(prefix="cxrfail-cold-cache-") as empty:
            elapsed = browser_bench(empty)
        if elapsed is None:
            print("streamlit run -> Overview with numbers: skipped (needs /usr/bin/chromium and playwright)")
            return 1
        seconds.append(elapsed)
        print(f"cold run {attempt + 1}: {elapsed:.1f} s (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"cold_first_screen_s: {_median(seconds):.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test subset instead of the full demo")
    parser.add_argument("--moves", type=int, default=15, help="slider moves to time (default %(default)s)")
    parser.add_argument("--no-browser", action="store_true", help="skip the streamlit-run-to-Overview timing")
    parser.add_argument(
        "--cold",
        type=int,
        metavar="N",
        help="only the cold first screen, N times (each on its own "
        "empty cache); prints every time and their median as cold_first_screen_s",
    )
    parser.add_argument(
        "--during-run", action="store_true", help="only page switches while a full run computes (switch_during_run_s)"
    )
    parser.add_argument(
        "--chexpert",
        action="store_true",
        help="only the CheXpert-scale pages while the full run computes (chexpert_page_s)",
    )
    parser.add_argument(
        "--slider-browser",
        action="store_true",
        help="only the Flip slider's round trip in chromium (slider_browser_ms)",
    )
    args = parser.parse_args()
    if args.quick:
        os.environ.update(QUICK_ENV)
    sys.path.insert(0, str(ROOT))
    if args.cold:
        return cold_only(args.cold)
    if args.during_run:
        return during_run_bench()
    if args.slider_browser:
        return slider_browser_bench(args.moves)
    if args.chexpert:
        return chexpert_bench()

    cold = None
    if not args.no_browser:
        with tempfile.TemporaryDirectory(prefix="cxrfail-cold-cache-") as empty:
            cold = browser_bench(empty)
    results = apptest_bench(args.moves)
    startup = None if args.no_browser else browser_bench()
    scope = "test subset (2 models x 2 findings)" if args.quick else "full demo (app defaults)"
    print(f"dashboard bench, {scope}, warm caches; AppTest server time per rerun")
    print(f"baseline (one-slider script) rerun: {results['baseline_ms']:.1f} ms")
    print(
        f"Flip slider move, new tau: median {results['slider_ms']:.1f} ms, max {results['slider_max_ms']:.1f} ms "
        f"({results['slider_ms'] / results['baseline_ms']:.1f}x baseline)"
    )
    print(f"Flip slider move, tau seen before: median {results['slider_revisit_ms']:.1f} ms")
    for page in PAGES:
        steady = results["pages_ms"][page]
        print(
            f"switch to {page:<12} first {results['pages_first_ms'][page]:7.1f} ms, then median "
            f"{steady:7.1f} ms ({steady / results['baseline_ms']:.1f}x baseline)"
        )
    if startup is None:
        print("streamlit run -> Overview rendered: skipped (needs /usr/bin/chromium and playwright)")
    else:
        print(f"streamlit run -> Overview rendered (warm disk cache): {startup:.1f} s")
    if cold is not None:
        print(
            "streamlit run -> Overview with numbers, empty disk cache (the first screen's quick run; "
            "identifiers, flipping and SHAP continue in the background)"
        )
        print(f"cold_first_screen_s: {cold:.1f}")
    print(f"slider_ms: {results['slider_ms']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
