"""Export figures and tables: single files (HTML, PNG, SVG, CSV), a figure pack folder or one zip, each with a
``manifest.json`` that says what produced it (inputs with SHA-256 hashes, package versions, seed, config).

HTML needs nothing beyond plotly. PNG and SVG are rendered by kaleido 1.x, which drives a Chromium-family
browser: ``$BROWSER_PATH`` when set, else the first of ``chromium``, ``chromium-browser``, ``google-chrome``
on ``PATH`` (Debian's ``chromium`` package installs ``/usr/bin/chromium``). Without one, `figure_bytes`
raises `StaticExportUnavailable` with what to install, and the pack writers skip the static formats and say
so in the manifest.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import io
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from cxrfail.files import bytes_sha256
from cxrfail.manifest import jsonable, package_versions

FIGURE_FORMATS = ("html", "png", "svg")
STATIC_FORMATS = ("png", "svg")
MIME_TYPES = {
    "html": "text/html",
    "png": "image/png",
    "svg": "image/svg+xml",
    "csv": "text/csv",
    "zip": "application/zip",
    "json": "application/json",
}
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
        return False, ("PNG and SVG export need Chromium, which was not found. Install it (Debian: "
                       "`apt-get install chromium`) or set BROWSER_PATH to a Chrome/Chromium binary; "
                       "HTML and CSV export work without it.")
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        return False, (f"BROWSER_PATH={browser!r} is not an executable file. Point it at a Chrome/Chromium "
                       "binary (Debian: /usr/bin/chromium) or unset it; HTML and CSV export work without it.")
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
    images = await asyncio.gather(*(  # the engine's tabs render in parallel
        engine.calc_fig(figures[name].to_plotly_json(), opts=_image_options(figures[name], fmt, width, height, scale))
        for name in names))
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
        return self._call(_render_all(self.engine, figures, fmt, width, height, scale),
                          timeout=RENDER_TIMEOUT_S * max(1, len(figures)))

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
    figures: Mapping[str, go.Figure], fmt: str, *, width: int | None = None, height: int | None = None,
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
                if _SESSION is None or _SESSION.browser != browser:
                    _SESSION = _BrowserSession(browser)
                try:
                    return _SESSION.render(figures, fmt, width, height, scale)
                except BaseException:
                    _SESSION.close()  # a broken session is not reused
                    _SESSION = None
                    raise

        import kaleido

        async def render() -> dict[str, bytes]:
            async with kaleido.Kaleido(n=min(RENDER_TABS, len(figures)), timeout=RENDER_TIMEOUT_S, path=browser,
                                       mathjax=False) as engine:
                return await _render_all(engine, figures, fmt, width, height, scale)

        return _run_coroutine(render)  # type: ignore[return-value]
    except StaticExportUnavailable:
        raise
    except Exception as exc:  # kaleido/choreographer errors: browser failed to start or to render
        if type(exc).__name__ in ("ChromeNotFoundError", "BrowserFailedError", "BrowserClosedError", "TimeoutError"):
            raise StaticExportUnavailable(
                f"the browser at {browser} could not render ({type(exc).__name__}: {exc}). Check that it starts "
                "headless (Debian: apt-get install chromium); HTML export works without it.") from exc
        raise


def figure_html(fig: go.Figure, *, include_plotlyjs: bool | str = True) -> str:
    """A standalone HTML page (plotly.js embedded by default, so it opens offline)."""
    return fig.to_html(include_plotlyjs=include_plotlyjs, full_html=True,
                       config={"displaylogo": False, "toImageButtonOptions": {"scale": 2}})


def figure_bytes(fig: go.Figure, fmt: str, *, width: int | None = None, height: int | None = None,
                 scale: float | None = None) -> bytes:
    """One figure as ``html`` (self-contained), ``png`` or ``svg`` bytes.

    Raises `StaticExportUnavailable` for png/svg when no browser is available.
    """
    fmt = fmt.lower()
    if fmt == "html":
        return figure_html(fig).encode("utf-8")
    if fmt in STATIC_FORMATS:
        return render_static({"figure": fig}, fmt, width=width, height=height, scale=scale)["figure"]
    raise ValueError(f"unknown figure format {fmt!r}; use one of {', '.join(FIGURE_FORMATS)}")


#: First characters that make a spreadsheet read a cell as a formula (or hide one behind a control character).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _inert_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def inert_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` safe to open in a spreadsheet: every text cell (and column name) that starts with
    ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading apostrophe, so it is shown as text, never
    run as a formula. Numeric columns are untouched (a negative number stays a number)."""
    inert = frame.copy()
    for column in inert.columns:
        if inert[column].dtype == object or isinstance(inert[column].dtype, pd.StringDtype | pd.CategoricalDtype):
            inert[column] = inert[column].astype(object).map(_inert_cell)
    inert.columns = [_inert_cell(column) for column in inert.columns]
    if not isinstance(inert.index, pd.RangeIndex):
        inert.index = inert.index.map(_inert_cell)
    return inert


def table_bytes(table: pd.DataFrame, *, index: bool = False) -> bytes:
    """A table as UTF-8 CSV, formula-inert (see `inert_csv_frame`)."""
    return inert_csv_frame(table).to_csv(index=index).encode("utf-8")


# ------------------------------------------------------------------------------------------ pack / zip


@dataclasses.dataclass
class FigurePack:
    """What `write_figure_pack` wrote.

    Attributes:
        files: figure name -> the files written for it, relative to the pack folder (``name.html``, ...).
        note: why a format was skipped (no browser for PNG/SVG), or None.
        support_files: shared files the HTML figures need (``plotly.min.js``).
        manifest: the manifest written (None when none was asked for).
    """

    files: dict[str, list[str]]
    note: str | None = None
    support_files: list[str] = dataclasses.field(default_factory=list)
    manifest: dict[str, object] | None = None


def _figure_files(
    figures: Mapping[str, go.Figure], formats: Sequence[str], progress=None
) -> tuple[dict[str, bytes], dict[str, list[str]], list[str], list[str]]:
    """(relative path -> bytes, figure name -> its paths, support paths, notes) for every figure and format."""
    formats = list(dict.fromkeys(fmt.lower() for fmt in formats))
    unknown = [fmt for fmt in formats if fmt not in FIGURE_FORMATS]
    if unknown:
        raise ValueError(f"unknown figure format(s) {unknown}; use {', '.join(FIGURE_FORMATS)}")
    files: dict[str, bytes] = {}
    by_figure: dict[str, list[str]] = {name: [] for name in figures}
    support: list[str] = []
    notes: list[str] = []
    if not figures:
        return files, by_figure, support, notes
    for step, fmt in enumerate(formats):
        if progress is not None:
            progress(step / len(formats), f"{len(figures)} figures as {fmt.upper()}")
        if fmt == "html":
            import plotly.offline

            files["plotly.min.js"] = plotly.offline.get_plotlyjs().encode("utf-8")
            support.append("plotly.min.js")
            rendered = {name: figure_html(fig, include_plotlyjs="directory").encode("utf-8")
                        for name, fig in figures.items()}
        else:
            try:
                rendered = render_static(figures, fmt)
            except StaticExportUnavailable as exc:
                notes.append(f"{fmt.upper()} figures skipped: {exc}")
                continue
        for name, data in rendered.items():
            files[f"{name}.{fmt}"] = data
            by_figure[name].append(f"{name}.{fmt}")
    return files, by_figure, support, notes


def _manifest_bytes(manifest: Mapping[str, object] | None, files: Mapping[str, bytes], notes: list[str]) -> bytes:
    final = dict(manifest or {})
    final.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    final.setdefault("versions", package_versions())
    final["files"] = [{"path": path, "bytes": len(data), "sha256": bytes_sha256(data)}
                      for path, data in sorted(files.items())]
    if notes:
        final["warnings"] = list(final.get("warnings", [])) + notes  # type: ignore[arg-type]
    return json.dumps(jsonable(final), indent=2).encode("utf-8")


def write_figure_pack(
    figures: Mapping[str, go.Figure],
    out_dir: str | Path,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    manifest: Mapping[str, object] | None = None,
    formats: Sequence[str] = FIGURE_FORMATS,
    progress=None,
) -> FigurePack:
    """Write every figure as ``<out_dir>/<name>.<fmt>`` (html, png, svg), each table as ``<name>.csv`` and,
    when ``manifest`` is given, ``manifest.json`` with every written file's size and SHA-256.

    HTML figures share one ``plotly.min.js`` beside them (they open offline without embedding 4 MB each).
    PNG/SVG are skipped when no browser is available: `FigurePack.note` (and the manifest's ``warnings``)
    say why. ``progress`` is an optional ``(fraction, message)`` callable.
    """
    files, by_figure, support, notes = _figure_files(figures, formats, progress)
    for name, table in (tables or {}).items():
        files[f"{name}.csv"] = table_bytes(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for relative, data in files.items():
        (out / relative).write_bytes(data)
    written = None
    if manifest is not None:
        manifest_bytes = _manifest_bytes(manifest, files, notes)
        (out / "manifest.json").write_bytes(manifest_bytes)
        written = json.loads(manifest_bytes)
    if progress is not None:
        progress(1.0, "done")
    return FigurePack(files=by_figure, note="; ".join(notes) or None, support_files=support, manifest=written)


def zip_bundle(
    figures: Mapping[str, go.Figure],
    tables: Mapping[str, pd.DataFrame],
    manifest: Mapping[str, object] | None = None,
    *,
    formats: Sequence[str] = FIGURE_FORMATS,
    extra_files: Mapping[str, bytes] | None = None,
    progress=None,
) -> bytes:
    """One zip: ``manifest.json`` (with every file's SHA-256), ``figures/<name>.<fmt>`` (+ ``plotly.min.js``),
    ``tables/<name>.csv`` and any ``extra_files`` (relative path -> bytes)."""
    figure_files, _, _, notes = _figure_files(figures, formats, progress)
    files = {f"figures/{path}": data for path, data in figure_files.items()}
    files.update({f"tables/{name}.csv": table_bytes(table) for name, table in tables.items()})
    files.update(extra_files or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", _manifest_bytes(manifest, files, notes))
        for relative, data in sorted(files.items()):
            archive.writestr(relative, data)
    if progress is not None:
        progress(1.0, "done")
    return buffer.getvalue()
