"""Write an analysis result as a report folder: tables (CSV + Parquet), figures, manifest.json.

Layout::

    <out>/manifest.json            inputs with SHA-256, package versions, seed, full config, notes
    <out>/tables/<name>.csv        the summary tables under the dashboard export's names
                                   (`cxrfail.export.result_tables`: performance, subgroup_rates, regression,
                                   identifiers, flip, flip_curves, slices, the label audit)
    <out>/tables/<name>.parquet    the per-row tables, typed (`cxrfail.export.PER_ROW_TABLES`: outcomes, one row
                                   per model, finding and cohort row; identifier_scores; shap_values;
                                   label_cases); also as <name>.csv with ``per_row_csv``
    <out>/figures/*.html           every report figure; .png and .svg too where chromium is available

Rendering a few hundred static figures takes minutes, so a figure pack is cached beside the analysis result
(keyed by the result's cache key and the figure code) and copied on a warm run.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import cxrfail
from cxrfail.analysis.result import AnalysisResult
from cxrfail.cache import default_cache_dir, hash_parts, open_sealed, sealed_json, warn_cache_unwritable
from cxrfail.export import PER_ROW_TABLES, result_tables, write_parquet_tables, write_tables
from cxrfail.files import file_sha256, staged_folder
from cxrfail.manifest import build_manifest

log = logging.getLogger(__name__)

__all__ = ["write_report"]

PACK_INDEX = "pack.json"


def write_report(
    result: AnalysisResult,
    out_dir: str | Path,
    inputs: Iterable[str | Path],
    *,
    figures: bool = True,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    per_row_csv: bool = False,
) -> dict[str, object]:
    """Write the report folder and return the manifest written. Existing files of the same names are
    replaced; each table is written whole before the manifest, which is written last. ``per_row_csv`` writes
    the per-row tables as CSV beside their Parquet (gigabytes and minutes at CheXpert scale)."""
    out = Path(out_dir)
    tables_dir = out / "tables"
    tables = result_tables(result)
    per_row = {name: table for name, table in tables.items() if name in PER_ROW_TABLES}
    summary = {name: table for name, table in tables.items() if name not in PER_ROW_TABLES}
    written = write_tables({**summary, **(per_row if per_row_csv else {})}, tables_dir)
    written += write_parquet_tables(per_row, tables_dir)
    figure_files: dict[str, list[str]] = {}
    figure_note = None
    if figures:
        figure_files, figure_note = _figures(result, out / "figures", cache_dir, use_cache)
    manifest = build_manifest(
        inputs,
        config=result.config,
        generator="cxrfail analyze",
        extra={
            "cohort": result.cohort_summary,
            "models": list(result.models),
            "notes": result.notes,
            "refused_pairs": [
                {"model": m, "finding": f, "reason": reason} for (m, f), reason in result.refused.items()
            ],
            "pair_warnings": [
                {"model": p.model, "finding": p.finding, "warning": w} for p in result for w in p.warnings
            ],
            "tables": [f"tables/{name}" for name in written],
            "figures": figure_files,
            "figure_note": figure_note,
        },
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def _figure_code_hash() -> str:
    package = Path(cxrfail.__file__).parent
    sources = sorted((package / "figures").glob("*.py")) + [package / "export.py", package / "render.py"]
    return hash_parts(*(file_sha256(path) for path in sources))


def _render_pack(result: AnalysisResult, folder: Path) -> tuple[dict[str, list[str]], str | None]:
    from cxrfail.export import write_figure_pack
    from cxrfail.figures import report_figures

    pack = write_figure_pack(report_figures(result), folder)
    checksums = {
        path.relative_to(folder).as_posix(): file_sha256(path) for path in sorted(folder.rglob("*")) if path.is_file()
    }
    (folder / PACK_INDEX).write_text(sealed_json({"files": pack.files, "note": pack.note, "sha256": checksums}))
    return pack.files, pack.note


def _verified_pack(folder: Path) -> dict | None:
    """The index of the cached pack in ``folder`` when every file matches its checksum, else None (and the
    damaged pack is removed, logged)."""
    if not (folder / PACK_INDEX).exists():
        return None
    try:
        index = open_sealed((folder / PACK_INDEX).read_text())
        files, note, checksums = index["files"], index["note"], index["sha256"]
        for relative, expected in checksums.items():
            if file_sha256(folder / relative) != expected:
                raise ValueError(f"checksum mismatch in {relative}")
        if not isinstance(files, dict) or not (note is None or isinstance(note, str)):
            raise ValueError("malformed index")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "dropping damaged figure pack %s (%s: %s); it will be rendered again", folder, type(exc).__name__, exc
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return index


def _figures(
    result: AnalysisResult, target: Path, cache_dir: str | Path | None, use_cache: bool
) -> tuple[dict[str, list[str]], str | None]:
    """Write the figure pack to ``target``, rendering it only when no cached pack matches. A damaged cached
    pack is rendered again; a cache that cannot be written leaves a warning and the pack is rendered into
    ``target`` directly."""
    if not use_cache or result.cache_key is None:
        return _render_pack(result, target)
    store = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = store / "figures" / hash_parts(result.cache_key, _figure_code_hash())
    index = _verified_pack(cached)
    if index is None:
        try:
            with staged_folder(cached, replace=False) as staging:
                _render_pack(result, staging)
        except OSError as exc:
            warn_cache_unwritable(cached.parent, exc)
            files, note = _render_pack(result, target)
            (target / PACK_INDEX).unlink(missing_ok=True)
            return files, note
        index = open_sealed((cached / PACK_INDEX).read_text())
    shutil.copytree(cached, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(PACK_INDEX))
    return index["files"], index["note"]
