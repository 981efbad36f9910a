"""Take the README's screenshot of the dashboard: docs/images/dashboard.png.

Starts `streamlit run app.py` on a free port of 127.0.0.1, opens it in Debian's chromium through Playwright,
waits for the Overview to finish drawing (or for ``--page`` to), saves a palette PNG (kept under 300 KB) and
stops the server. Uses the demo data and the usual analysis cache.

Run: .venv/bin/python scripts/screenshot.py [--page Subgroups] [--out docs/images/dashboard.png]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 900}
MAX_BYTES = 300_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_drawn(tab, heading: str, timeout_s: float = 300) -> None:
    """The page's heading, then the script idle with no skeleton placeholders for a second."""
    tab.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=timeout_s * 1000)
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline and quiet < 4:
        state = tab.locator("[data-testid='stApp']").get_attribute("data-test-script-state")
        busy = tab.locator("[data-testid='stSkeleton'], [data-testid='stSpinner']").count()
        quiet = quiet + 1 if state == "notRunning" and not busy else 0
        time.sleep(0.3)
    time.sleep(1.0)  # plotly's transitions


def _small_png(png: bytes) -> bytes:
    """``png`` as a 256-colour palette PNG (screenshots of flat UI lose nothing visible)."""
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshot the dashboard for the README.")
    parser.add_argument("--page", default="Overview", help="heading of the page to shoot (default Overview)")
    parser.add_argument("--path", default="", help="URL path of that page (default: the Overview at /)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    args = parser.parse_args(argv)

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport=VIEWPORT)
            deadline = time.monotonic() + 60
            while True:
                try:
                    tab.goto(f"http://127.0.0.1:{port}/{args.path}")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
            _wait_until_drawn(tab, args.page)
            png = _small_png(tab.screenshot(full_page=False))
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    if len(png) > MAX_BYTES:
        print(f"screenshot is {len(png):,} bytes, over {MAX_BYTES:,}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    print(f"wrote {args.out.relative_to(ROOT)} ({len(png):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
