"""Static figure rendering: PNG and SVG through kaleido 1.x and a Chromium-family browser.

The browser is ``$BROWSER_PATH`` when set, else the first of ``chromium``, ``chromium-browser``,
``google-chrome`` on ``PATH`` (Debian's ``chromium`` package installs ``/usr/bin/chromium``). Without one,
`render_static` raises `StaticExportUnavailable` with what to install.

A long-lived process (the dashboard) may keep one browser open between renders (`keep_browser_open`); that
session is this module's state, closed at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import shutil
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "STATIC_FORMATS",
    "StaticExportUnavailable",
    "find_browser",
    "keep_browser_open",
    "render_static",
    "static_export_status",
]

STATIC_FORMATS = ("png", "svg")
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DEFAULT_WIDTH = 1000
DEFAULT_HEIGHT = 600
PNG_SCALE = 2.0
RENDER_TIMEOUT_S = 120.0
RENDER_TABS = max(1, min(2, os.cpu_count() or 1))  # browser tabs rendering at once
BROWSER_START_TIMEOUT_S = 60.0


class StaticExportUnavailable(RuntimeError):
    """PNG/SVG export needs a Chromium-family browser that kaleido can drive, and none was found."""


# -------------------------------------------------------------------------------------------- browser


def find_browser() -> str | None:
    """Path of the browser kaleido will use: ``$BROWSER_PATH`` if set (even if wrong, so the error names
    it), else the first browser on PATH, else None."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def static_export_status() -> tuple[bool, str]:
    """(available, message): whether PNG/SVG export can run here, and a sentence for the user."""
    browser = find_browser()
    if browser is None:
        return False, (
            "PNG and SVG export need Chromium, which was not found. Install it (Debian: "
            "`apt-get install chromium`) or set BROWSER_PATH to a Chrome/Chromium binary; "
            "HTML and CSV export work without it."
        )
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        return False, (
            f"BROWSER_PATH={browser!r} is not an executable file. Point it at a Chrome/Chromium "
            "binary (Debian: /usr/bin/chromium) or unset it; HTML and CSV export work without it."
        )
    return True, f"PNG and SVG are rendered with {browser}"


def _require_browser() -> str:
    available, message = static_export_status()
    if not available:
        raise StaticExportUnavailable(message)
    return find_browser()  # type: ignore[return-value]


def _run_coroutine(factory) -> object:
    """Run ``factory()``'s coroutine to completion on a fresh event loop in a worker thread, so it works the
    same from a script, a Streamlit session or a notebook with a running loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _image_options(fig: go.Figure, fmt: str, width: int | None, height: int | None, scale: float | None) -> dict:
    layout = fig.layout
    return {
        "format": fmt,
        "width": int(width or layout.width or DEFAULT_WIDTH),
        "height": int(height or layout.height or DEFAULT_HEIGHT),
        "scale": float(scale if scale is not None else (PNG_SCALE if fmt == "png" else 1.0)),
    }


async def _render_all(engine, figures: Mapping[str, go.Figure], fmt: str, width, height, scale) -> dict[str, bytes]:
    names = list(figures)
    images = await asyncio.gather(
        *(  # the engine's tabs render in parallel
            engine.calc_fig(
                figures[name].to_plotly_json(), opts=_image_options(figures[name], fmt, width, height, scale)
            )
            for name in names
        )
    )
    return dict(zip(names, images))


class _BrowserSession:
    """A kaleido engine kept open on its own event-loop thread, so a long-lived process (the dashboard) pays
    Chromium's start-up (~4 s) once instead of on every export. Calls wait with a timeout, never forever."""

    def __init__(self, browser: str) -> None:
        import kaleido

        self.browser = browser
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cxrfail-kaleido", daemon=True)
        self.thread.start()
        self.engine = kaleido.Kaleido(n=RENDER_TABS, timeout=RENDER_TIMEOUT_S, path=browser, mathjax=False)
        try:
            self._call(self.engine.__aenter__(), timeout=BROWSER_START_TIMEOUT_S)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise

    def _call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def render(self, figures: Mapping[str, go.Figure], fmt: str, width, height, scale) -> dict[str, bytes]:
        return self._call(
            _render_all(self.engine, figures, fmt, width, height, scale),
            timeout=RENDER_TIMEOUT_S * max(1, len(figures)),
        )

    def close(self) -> None:
        try:
            self._call(self.engine.__aexit__(None, None, None), timeout=30)
        except Exception:  # already gone: nothing left to close
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


_SESSION_LOCK = threading.Lock()
_SESSION: _BrowserSession | None = None
_KEEP_BROWSER = False


def keep_browser_open(enabled: bool = True) -> None:
    """Keep one browser running between static exports (for long-lived processes such as the dashboard);
    ``False`` closes it. Off by default: a CLI run starts and stops its own browser."""
    global _KEEP_BROWSER, _SESSION
    with _SESSION_LOCK:
        _KEEP_BROWSER = enabled
        if not enabled and _SESSION is not None:
            _SESSION.close()
            _SESSION = None


def _close_session() -> None:
    keep_browser_open(False)


atexit.register(_close_session)


def render_static(
    figures: Mapping[str, go.Figure],
    fmt: str,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float | None = None,
) -> dict[str, bytes]:
    """Render several figures to PNG or SVG in one browser session (starting Chromium takes seconds; see
    `keep_browser_open`)."""
    global _SESSION
    if fmt not in STATIC_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(STATIC_FORMATS)}, not {fmt!r}")
    if not figures:
        return {}
    browser = _require_browser()
    try:
        if _KEEP_BROWSER:
            with _SESSION_LOCK:  # one render at a time on the shared browser
                for attempt in (1, 2):  # a kept browser that died (closed, killed) is replaced once
                    if _SESSION is None or _SESSION.browser != browser:
                        _SESSION = _BrowserSession(browser)
                    try:
                        return _SESSION.render(figures, fmt, width, height, scale)
                    except Exception:
                        _SESSION.close()  # a broken session is not reused
                        _SESSION = None
                        if attempt == 2:
                            raise

        import kaleido

        async def render() -> dict[str, bytes]:
            async with kaleido.Kaleido(
                n=min(RENDER_TABS, len(figures)), timeout=RENDER_TIMEOUT_S, path=browser, mathjax=False
            ) as engine:
                return await _render_all(engine, figures, fmt, width, height, scale)

        return _run_coroutine(render)  # type: ignore[return-value]
    except StaticExportUnavailable:
        raise
    except Exception as exc:  # kaleido/choreographer errors: browser failed to start or to render
        if type(exc).__name__ in ("ChromeNotFoundError", "BrowserFailedError", "BrowserClosedError", "TimeoutError"):
            raise StaticExportUnavailable(
                f"the browser at {browser} could not render ({type(exc).__name__}: {exc}). Check that it starts "
                "headless (Debian: apt-get install chromium); HTML export works without it."
            ) from exc
        raise
