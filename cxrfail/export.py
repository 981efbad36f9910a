"""Export figures and tables: single files (HTML, PNG, SVG, CSV), a figure pack folder or one zip, each with a
``manifest.json`` that says what produced it (inputs with SHA-256 hashes, package versions, seed, config).

HTML needs nothing beyond plotly. PNG and SVG are rendered by `cxrfail.render` (kaleido and a Chromium-family
browser); without a browser, `figure_bytes` raises `StaticExportUnavailable` with what to install, and the
pack writers skip the static formats and say so in the manifest.

The tables of a run are exported one way everywhere (the CLI report, the dashboard's Export page, the zip):
`result_tables` names them and `write_csv` writes each as ``<name>.csv``, formula-inert (`table_bytes` for the
bytes).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cxrfail.files import atomic_write_with, bytes_sha256
from cxrfail.manifest import jsonable, package_versions
from cxrfail.render import STATIC_FORMATS, StaticExportUnavailable, render_static

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from cxrfail.analysis.result import AnalysisResult

__all__ = [
    "FIGURE_FORMATS",
    "MIME_TYPES",
    "PER_ROW_TABLES",
    "FigurePack",
    "StaticExportUnavailable",
    "figure_bytes",
    "figure_html",
    "inert_csv_frame",
    "result_tables",
    "table_bytes",
    "write_csv",
    "write_figure_pack",
    "write_parquet_tables",
    "write_tables",
    "zip_bundle",
]

FIGURE_FORMATS = ("html", "png", "svg")
MIME_TYPES = {
    "html": "text/html",
    "png": "image/png",
    "svg": "image/svg+xml",
    "csv": "text/csv",
    "zip": "application/zip",
    "json": "application/json",
}


def figure_html(fig: go.Figure, *, include_plotlyjs: bool | str = True) -> str:
    """A standalone HTML page (plotly.js embedded by default, so it opens offline)."""
    return fig.to_html(
        include_plotlyjs=include_plotlyjs,
        full_html=True,
        config={"displaylogo": False, "toImageButtonOptions": {"scale": 2}},
    )


def figure_bytes(
    fig: go.Figure, fmt: str, *, width: int | None = None, height: int | None = None, scale: float | None = None
) -> bytes:
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


CSV_CHUNK_ROWS = 200_000  # rows formatted at a time when a table is written as CSV (bounds the text held)


def _inert_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _inert_column(column: pd.Series) -> pd.Series:
    """``column`` with every text cell that starts with a formula prefix quoted (`_inert_cell`); numbers and
    missing cells unchanged. Categories are quoted once each, text columns by one vectorised test."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        renamed = [_inert_cell(category) for category in column.cat.categories]
        if len(set(renamed)) == len(renamed):
            return column.cat.rename_categories(renamed)
        return column.astype(object).map(_inert_cell)
    if not (column.dtype == object or isinstance(column.dtype, pd.StringDtype)):
        return column
    try:
        formula = column.str.startswith(FORMULA_PREFIXES)
    except AttributeError:  # an object column without text
        return column
    formula = formula.fillna(False).astype(bool)
    if not formula.any():
        return column
    return column.astype(object).where(~formula, "'" + column[formula].astype(object))


def inert_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` made safe to open in a spreadsheet: every text cell (and column name) that starts with ``=``,
    ``+``, ``-``, ``@``, tab or carriage return gets a leading apostrophe, so it is shown as text, never run as
    a formula. Numeric columns are untouched (a negative number stays a number); ``frame`` is not changed."""
    inert = frame.copy(deep=False)
    for column in inert.columns:
        inert[column] = _inert_column(inert[column])
    inert.columns = [_inert_cell(column) for column in inert.columns]
    if not isinstance(inert.index, pd.RangeIndex):
        inert.index = inert.index.map(_inert_cell)
    return inert


def write_csv(table: pd.DataFrame, handle, *, index: bool = False) -> None:
    """Write ``table`` as formula-inert CSV (`inert_csv_frame`) to the text ``handle`` (opened with
    ``newline=""``), `CSV_CHUNK_ROWS` rows at a time: the same text as one ``to_csv`` of the whole table,
    without holding it (a CheXpert-scale per-row table is gigabytes of text)."""
    for start in range(0, max(len(table), 1), CSV_CHUNK_ROWS):
        chunk = inert_csv_frame(table.iloc[start : start + CSV_CHUNK_ROWS])
        chunk.to_csv(handle, index=index, header=start == 0)


def table_bytes(table: pd.DataFrame, *, index: bool = False) -> bytes:
    """A table as UTF-8 CSV, formula-inert (see `write_csv`)."""
    buffer = io.BytesIO()
    with io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=True) as text:
        write_csv(table, text, index=index)
        text.flush()
        return buffer.getvalue()


#: Tables with one row per cohort row (or per row and identifier): large, so the dashboard builds their CSV
#: when asked, and the report writes them as Parquet (`write_parquet_tables`; CSV too on request: at CheXpert
#: scale their CSV is gigabytes and takes minutes to write).
PER_ROW_TABLES = ("outcomes", "identifier_scores", "shap_values", "label_cases")


def result_tables(result: AnalysisResult, *, per_row: bool = True) -> dict[str, pd.DataFrame]:
    """The run's tables to export, name → long table (every pair stacked; columns as
    `cxrfail.analysis.result.TABLE_COLUMNS`), in report order; each is written as ``<name>.csv``.

    The label-audit tables are left out when no reference labels read an analysed finding (they would be
    empty); ``per_row=False`` leaves out `PER_ROW_TABLES`."""
    from cxrfail.analysis.result import LABEL_TABLES, TABLE_NAMES

    audited = not result.table("label_audit").empty
    return {
        name: result.table(name)
        for name in TABLE_NAMES
        if (per_row or name not in PER_ROW_TABLES) and (audited or name not in LABEL_TABLES)
    }


def write_tables(tables: Mapping[str, pd.DataFrame], folder: str | Path) -> list[str]:
    """Write each table as ``<folder>/<name>.csv`` (`write_csv`, streamed; each file appears whole or not at
    all); the file names written, sorted."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        atomic_write_with(folder / f"{name}.csv", functools.partial(_write_csv_file, table))
    return sorted(f"{name}.csv" for name in tables)


def write_parquet_tables(tables: Mapping[str, pd.DataFrame], folder: str | Path) -> list[str]:
    """Write each table as ``<folder>/<name>.parquet`` (typed: categories, 0/1 as int8; each file appears whole
    or not at all); the file names written, sorted."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        atomic_write_with(folder / f"{name}.parquet", functools.partial(table.to_parquet, index=False))
    return sorted(f"{name}.parquet" for name in tables)


def _write_csv_file(table: pd.DataFrame, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        write_csv(table, handle)


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
            rendered = {
                name: figure_html(fig, include_plotlyjs="directory").encode("utf-8") for name, fig in figures.items()
            }
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
    final.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    final.setdefault("versions", package_versions())
    final["files"] = [
        {"path": path, "bytes": len(data), "sha256": bytes_sha256(data)} for path, data in sorted(files.items())
    ]
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
