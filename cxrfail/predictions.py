"""Predictions: model probabilities per image and finding, imported from wide CSV files and validated.

A prediction file is a CSV with an id column (``image_id``, ``Image Index``, ``Path``, ``study_id`` or ``id``)
and one probability column per finding, in any order, with or without a ``prob_`` prefix, under NIH or
CheXpert names. `ModelPredictions.probabilities` holds them under canonical names (`cxrfail.findings`); when
the file has Mass and Nodule but no Lung Lesion, Lung Lesion is derived as their maximum (approximate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrfail.cohort import Cohort
from cxrfail.errors import PredictionsError, first_rows, header_names
from cxrfail.findings import APPROXIMATE_FINDINGS, canonical_finding, is_finding
from cxrfail.io import in_unique_index, read_input_csv, validate_ids

__all__ = [
    "ModelPredictions",
    "load_predictions",
    "load_predictions_csv",
    "parse_predictions",
    "Coverage",
    "check_coverage",
    "common_ids",
    "ID_COLUMNS",
    "DEFAULT_MIN_OVERLAP",
]

ID_COLUMNS = ("image_id", "Image Index", "Path", "study_id", "id")
DEFAULT_MIN_OVERLAP = 0.9
MISSING_MARKERS = ("", "nan", "na", "n/a", "null", "none")


@dataclass(frozen=True)
class ModelPredictions:
    """One model's probabilities.

    Attributes:
        name: the model's display name (the file stem unless named explicitly).
        probabilities: index ``image_id`` (str, unique), one float64 column per canonical finding, in [0, 1].
        source: the file it was read from, if any.
        notes: caveats per finding (e.g. Lung Lesion derived from Mass and Nodule).
    """

    name: str
    probabilities: pd.DataFrame
    source: str | None = None
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(self.probabilities.columns)


BAD_ROWS_NAMED = 3  # rows named per bad column when several columns have bad cells


def parse_predictions(
    frame: pd.DataFrame, *, name: str, source: str | Path | None = None, id_column: str | None = None
) -> ModelPredictions:
    """Validate a wide prediction table (as read from CSV, all columns as text) into `ModelPredictions`."""
    where = source if source is not None else name
    if frame.empty:
        raise PredictionsError("the file has no rows", path=where, fix="Check that the export is complete")
    if id_column is None:
        id_column = next((column for column in ID_COLUMNS if column in frame.columns), None)
    if id_column is None or id_column not in frame.columns:
        raise PredictionsError(
            f"no id column; expected one of {', '.join(ID_COLUMNS)}, found {header_names(frame.columns)}",
            path=where,
            fix="Name the image id column image_id (or pass id_column)",
        )
    ids = frame[id_column].astype("string").str.strip()
    validate_ids(ids, where, id_column, error=PredictionsError)
    value_columns = [column for column in frame.columns if column != id_column]
    unknown = [column for column in value_columns if not is_finding(column)]
    if unknown:
        raise PredictionsError(
            f"columns that are not finding names: {header_names(unknown)}",
            path=where,
            fix="Rename them to NIH or CheXpert finding names (a prob_ prefix is fine) or remove them",
        )
    if not value_columns:
        raise PredictionsError("no probability columns", path=where, fix="Add one column per finding")
    canonical = [canonical_finding(column) for column in value_columns]
    repeated = sorted({finding for finding in canonical if canonical.count(finding) > 1})
    if repeated:
        raise PredictionsError(
            f"several columns map onto the same finding: {', '.join(repeated)}",
            path=where,
            fix="Keep one probability column per finding",
        )

    probabilities = pd.DataFrame(index=pd.Index(ids.to_numpy(), name="image_id", dtype="string"))
    bad: list[tuple[str, str, list, str]] = []  # (column, problem, first rows, fix): every column's, named at once
    for column, finding in zip(value_columns, canonical):
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce")
        missing = raw.isna() | raw.astype("string").str.strip().str.lower().isin(MISSING_MARKERS)
        not_numeric = values.isna() & ~missing
        outside = ~values.isna() & ((values < 0) | (values > 1) | ~np.isfinite(values))
        example = f", e.g. {values[outside].iloc[0]:g}" if outside.any() else ""
        checks = (
            (missing, "missing (NaN or empty) probabilities", "every image needs a probability"),
            (not_numeric, "cells that are not numbers", "probabilities must be numbers"),
            (outside, f"probabilities outside [0, 1]{example}", "export probabilities after the sigmoid, not logits"),
        )
        bad += [(column, problem, first_rows(rows, frame.index), fix) for rows, problem, fix in checks if rows.any()]
        if not bad:
            probabilities[finding] = values.to_numpy(dtype="float64")
    if len(bad) == 1:
        column, problem, rows, fix = bad[0]
        raise PredictionsError(problem, path=where, column=column, rows=rows, fix=fix[0].upper() + fix[1:])
    if bad:
        raise PredictionsError(
            "bad cells in several columns: "
            + "; ".join(
                f"column {column!r}: {problem} (first rows: {', '.join(map(str, rows[:BAD_ROWS_NAMED]))}"
                + (f" and {len(rows) - BAD_ROWS_NAMED} more" if len(rows) > BAD_ROWS_NAMED else "")
                + ")"
                for column, problem, rows, _ in bad
            ),
            path=where,
            fix="; ".join(dict.fromkeys(fix for *_, fix in bad)).capitalize(),
        )
    notes = {}
    if "Lung Lesion" not in probabilities and {"Mass", "Nodule"} <= set(probabilities):
        probabilities["Lung Lesion"] = np.maximum(probabilities["Mass"], probabilities["Nodule"])
        notes["Lung Lesion"] = APPROXIMATE_FINDINGS["Lung Lesion"]
    return ModelPredictions(
        name=name, probabilities=probabilities, source=None if source is None else str(source), notes=notes
    )


def load_predictions_csv(path: str | Path, name: str | None = None, id_column: str | None = None) -> ModelPredictions:
    """Read one prediction CSV; the model is named after the file stem unless ``name`` is given."""
    path = Path(path)
    frame = read_input_csv(path, error=PredictionsError, dtype=str, keep_default_na=False, na_values=[])
    return parse_predictions(frame, name=name or path.stem, source=path, id_column=id_column)


def load_predictions(
    paths: str | Path | Sequence[str | Path], names: Sequence[str] | None = None, id_column: str | None = None
) -> list[ModelPredictions]:
    """Read prediction files, one model each: a path or a list of paths; each model is named after its file
    stem unless ``names`` (one per file) are given; ids in ``id_column`` (default: a usual id column). Model
    names must be distinct.

    Each `ModelPredictions` holds probabilities in [0, 1] per image id (rows) and canonical finding (columns).
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if names is not None and len(names) != len(paths):
        raise PredictionsError(
            f"{len(paths)} prediction files but {len(names)} names", fix="Give one name per file, or none"
        )
    models = [
        load_predictions_csv(path, None if names is None else names[i], id_column) for i, path in enumerate(paths)
    ]
    seen: dict[str, str | None] = {}
    for model in models:
        if model.name in seen:
            raise PredictionsError(
                f"two prediction files give the model name {model.name!r} ({seen[model.name]} and {model.source})",
                fix="Name the models explicitly",
            )
        seen[model.name] = model.source
    return models


@dataclass(frozen=True)
class Coverage:
    """How a model's prediction ids meet a cohort: counts of images."""

    model: str
    n_predictions: int
    n_matched: int
    n_not_in_cohort: int
    n_cohort_without_prediction: int

    @property
    def overlap(self) -> float:
        """Share of the model's predicted images that are in the cohort."""
        return self.n_matched / self.n_predictions if self.n_predictions else 0.0


def check_coverage(
    cohort: Cohort, models: Sequence[ModelPredictions], min_overlap: float = DEFAULT_MIN_OVERLAP
) -> list[Coverage]:
    """Count matched ids per model and refuse a model whose overlap with the cohort is below ``min_overlap``."""
    reports = []
    for model in models:
        predicted = model.probabilities.index
        in_cohort = in_unique_index(predicted, cohort.table.index)
        matched = int(in_cohort.sum())
        report = Coverage(
            model.name,
            len(predicted),
            matched,
            len(predicted) - matched,
            int((~in_unique_index(cohort.table.index, predicted)).sum()),
        )
        if report.overlap < min_overlap:
            example = predicted[~in_cohort][:3].tolist()
            raise PredictionsError(
                f"only {matched} of {len(predicted)} predicted ids ({report.overlap:.0%}) are in the cohort "
                f"{cohort.name!r} (minimum {min_overlap:.0%}); ids not found include {', '.join(example)}",
                path=model.source or model.name,
                fix="Check that the predictions and the cohort use the same image ids",
            )
        reports.append(report)
    return reports


def common_ids(cohort: Cohort, models: Sequence[ModelPredictions]) -> pd.Index:
    """Cohort ids (in cohort order) that every model has a prediction for."""
    keep = np.ones(len(cohort.table), dtype=bool)
    for model in models:
        keep &= in_unique_index(cohort.table.index, model.probabilities.index)
    return cohort.table.index[keep]
