"""Write an analysis result as a report folder: tables (CSV + Parquet), figures, manifest.json.

Layout::

    <out>/manifest.json            inputs with SHA-256, package versions, seed, full config, notes
    <out>/tables/*.csv             model_performance, subgroup_rates, regression, identifiers, flip, flip_curves
    <out>/tables/outcomes.parquet  one row per model, finding and image
    <out>/figures/*.html           every report figure; .png and .svg too where chromium is available
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from cxrfail.analysis.pipeline import AnalysisResult
from cxrfail.manifest import build_manifest

#: CSV file name -> AnalysisResult attribute.
CSV_TABLES = {
    "model_performance": "performance",
    "subgroup_rates": "subgroup_rates",
    "regression": "regression",
    "identifiers": "identifiers",
    "flip": "flip",
    "flip_curves": "flip_curves",
}


def write_report(
    result: AnalysisResult,
    out_dir: str | Path,
    inputs: Iterable[str | Path],
    *,
    figures: bool = True,
) -> dict[str, object]:
    """Write the report folder and return the manifest written. Existing files of the same names are
    replaced; each table is written whole before the manifest, which is written last."""
    out = Path(out_dir)
    tables_dir = out / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    for file_name, attribute in CSV_TABLES.items():
        getattr(result, attribute).to_csv(tables_dir / f"{file_name}.csv", index=False)
    result.outcomes.to_parquet(tables_dir / "outcomes.parquet", index=False)
    figure_files: dict[str, list[str]] = {}
    figure_note = None
    if figures:
        from cxrfail.export import write_figure_pack
        from cxrfail.figures import report_figures

        pack = write_figure_pack(report_figures(result), out / "figures")
        figure_files, figure_note = pack.files, pack.note
    manifest = build_manifest(
        inputs,
        config=asdict(result.config),
        seed=result.config.seed,
        extra={"cohort": result.cohort_summary, "models": list(result.models), "notes": result.notes,
               "tables": sorted(f"tables/{name}.csv" for name in CSV_TABLES) + ["tables/outcomes.parquet"],
               "figures": figure_files, "figure_note": figure_note},
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest
