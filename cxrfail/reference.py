"""Reference labels: a second, expert label set for (some of) a cohort's rows, to audit its labels against.

A cohort's labels are what a misclassification is measured against; NIH ChestX-ray14's were mined from
reports by NLP and many are wrong. A `ReferenceLabels` holds an independent label set (e.g. radiologist-
adjudicated reads) for a subset of the cohort, so that `cxrfail.analysis.labels` can tell model errors from
probable label errors.

Table contract (``ReferenceLabels.table``): index ``image_id`` (str, unique; the cohort's row ids), one
float64 column per canonical finding (`cxrfail.findings`): 1.0, 0.0 or NaN (not read for this row).

Reference files are CSVs with an id column and finding columns; cells are 1/0, YES/NO or TRUE/FALSE (any
case) or blank (not read). Unlike a cohort file, a blank is *unknown*, never negative: an expert set that did
not read a finding says nothing about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cxrfail.cohort import Cohort, xrv_data_file
from cxrfail.errors import CohortError, refuse_rows
from cxrfail.findings import canonical_finding, is_finding
from cxrfail.io import read_input_csv, require_columns, validate_ids

__all__ = [
    "ReferenceLabels",
    "load_reference_labels",
    "load_google2019_labels",
    "match_reference",
    "findings_with_reference",
    "google2019_labels_path",
    "ID_FIELD",
]

#: Field of a reference column map that names the id column (every other key is a finding).
ID_FIELD = "image_id"
_TRUE_WORDS = ("1", "1.0", "yes", "true", "y")
_FALSE_WORDS = ("0", "0.0", "no", "false", "n")

GOOGLE2019_FILE = "google2019_nih-chest-xray-labels.csv.gz"
#: Google's four findings -> canonical names. Airspace opacity is CheXpert's Lung Opacity (torchxrayvision
#: maps it the same way); NIH has no such label, so on NIH cohorts it is kept but never audited.
GOOGLE2019_COLUMN_MAP: dict[str, str] = {
    ID_FIELD: "Image Index",
    "Pneumothorax": "Pneumothorax",
    "Lung Lesion": "Nodule or mass",
    "Fracture": "Fracture",
    "Lung Opacity": "Airspace opacity",
}
GOOGLE2019_NAME = "Google 2019 expert labels (Majkowska et al., Radiology 2020)"
GOOGLE2019_SELECTION = (
    "the NIH images Google's radiologists re-read (Majkowska et al., Radiology 2020): an adjudicated panel read "
    "of four findings on a set Google selected for its study, enriched for those findings, not a random sample "
    "of the cohort; rates on it are not the cohort's rates"
)
GOOGLE2019_NOTES: dict[str, str] = {
    "Pneumothorax": "adjudicated read of Pneumothorax",
    "Lung Lesion": "adjudicated read of 'Nodule or mass', compared with NIH Mass or Nodule: the Mass-or-Nodule "
    "approximation of Lung Lesion on both sides",
    "Fracture": "adjudicated read of Fracture (NIH has no Fracture label: not audited on NIH cohorts)",
    "Lung Opacity": "adjudicated read of 'Airspace opacity' = CheXpert Lung Opacity; not mapped onto an NIH "
    "finding (it is broader than NIH Consolidation or Infiltration), so not audited on NIH cohorts",
}


@dataclass(frozen=True)
class ReferenceLabels:
    """A second label set for a subset of a cohort's rows.

    Attributes:
        table: index ``image_id`` (the cohort's ids), one float64 column per canonical finding, 1.0 / 0.0 / NaN.
        name: a short human name ("Google 2019 expert labels").
        sources: the files it was read from.
        selection: which subset it covers and how that subset was chosen (e.g. "enriched, not random"); after
            `match_reference` it also says how many of the cohort's rows and patients it covers.
        notes: caveats per finding (how the reference finding maps onto the canonical one).
    """

    table: pd.DataFrame
    name: str
    sources: tuple[str, ...] = ()
    selection: str = "a subset of the cohort; how it was chosen is not stated"
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(self.table.columns)

    def labels(self, finding: str, index) -> pd.Series:
        """The reference label of ``finding`` for each id of ``index`` (float64 1.0 / 0.0, NaN where not read or
        not covered), indexed by ``index``."""
        if finding not in self.table.columns:
            return pd.Series(np.nan, index=pd.Index(index), dtype="float64", name=finding)
        return self.table[finding].reindex(pd.Index(index)).astype("float64")


def _parse_reference_cells(values: pd.Series, path: str | Path, column: str) -> pd.Series:
    """Cells -> 1.0 / 0.0 / NaN: 1/0, yes/no, true/false in any case, blank unknown; anything else an error."""
    text = values.astype("string").str.strip().str.lower()
    blank = text.isna() | (text == "")
    positive, negative = text.isin(_TRUE_WORDS), text.isin(_FALSE_WORDS)
    bad = (~blank & ~positive & ~negative).to_numpy()
    shown = sorted(values[bad].astype(str).unique().tolist())[:5]
    refuse_rows(
        bad,
        values.index,
        f"unknown label values {shown}",
        path=path,
        column=column,
        fix="Reference labels must be 1/0, YES/NO, TRUE/FALSE or blank (not read)",
    )
    return pd.Series(
        np.select([positive.to_numpy(dtype=bool), negative.to_numpy(dtype=bool)], [1.0, 0.0], np.nan),
        index=values.index,
        dtype="float64",
    )


def load_reference_labels(
    path: str | Path,
    *,
    column_map: Mapping[str, str] | None = None,
    name: str | None = None,
    selection: str | None = None,
    notes: Mapping[str, str] | None = None,
) -> ReferenceLabels:
    """Read and validate a reference label file.

    Args:
        path: CSV (optionally gzip-compressed) with an id column and finding columns.
        column_map: ``{"image_id": id column, finding: column}``; finding keys in any spelling
            `canonical_finding` accepts. Without a map (or without ``"image_id"`` in it) the id column is
            ``image_id``; columns the map does not name whose header is a finding name are labels too; other
            columns are ignored.
        name: display name (default: the file name).
        selection: which subset the file covers and how it was chosen (shown beside every result).
        notes: caveats per canonical finding.

    Raises:
        CohortError: naming the file, column and first rows: missing file or columns, unknown finding names
            in the map, empty or duplicate ids, cells other than 1/0, yes/no, true/false or blank, no finding
            columns.
    """
    path = Path(path)
    raw = read_input_csv(path, dtype=str, keep_default_na=False)
    column_map = dict(column_map or {})
    id_column = column_map.pop(ID_FIELD, ID_FIELD)
    finding_columns: dict[str, str] = {}
    for key, column in column_map.items():
        if not is_finding(key):
            raise CohortError(
                f"column map key {key!r} is neither {ID_FIELD!r} nor a finding name",
                path=path,
                fix="Map image_id=COLUMN and FINDING=COLUMN, e.g. 'Lung Lesion=Nodule or mass'",
            )
        finding_columns[canonical_finding(key)] = column
    for column in raw.columns:
        if column != id_column and column not in finding_columns.values() and is_finding(column):
            finding_columns.setdefault(canonical_finding(column), column)
    require_columns(raw, [id_column, *finding_columns.values()], path)
    if not finding_columns:
        raise CohortError(
            "no finding columns found",
            path=path,
            fix="Name label columns after findings or map them, e.g. 'Lung Lesion=Nodule or mass'",
        )
    ids = raw[id_column].astype("string").str.strip()
    validate_ids(ids, path, id_column)
    table = pd.DataFrame(
        {
            finding: _parse_reference_cells(raw[column], path, column).to_numpy()
            for finding, column in finding_columns.items()
        },
        index=pd.Index(ids.to_numpy(), dtype="string", name="image_id"),
    )
    return ReferenceLabels(
        table=table,
        name=name or path.name,
        sources=(str(path),),
        selection=selection or ReferenceLabels.selection,
        notes=dict(notes or {}),
    )


def google2019_labels_path() -> Path:
    """torchxrayvision's bundled copy of Google's 2019 adjudicated NIH labels (4,376 images, four findings)."""
    return xrv_data_file(GOOGLE2019_FILE)


def load_google2019_labels(path: str | Path | None = None) -> ReferenceLabels:
    """Google's 2019 radiologist-adjudicated labels of NIH ChestX-ray14 images (Pneumothorax, Nodule or mass
    as Lung Lesion, Fracture, Airspace opacity as Lung Opacity: see `GOOGLE2019_NOTES`)."""
    return load_reference_labels(
        path or google2019_labels_path(),
        column_map=GOOGLE2019_COLUMN_MAP,
        name=GOOGLE2019_NAME,
        selection=GOOGLE2019_SELECTION,
        notes=GOOGLE2019_NOTES,
    )


def match_reference(reference: ReferenceLabels, cohort: Cohort) -> ReferenceLabels:
    """The reference restricted to the cohort's rows, its ``selection`` stating how many rows and patients of
    the cohort it covers.

    Raises:
        CohortError when none of the reference ids is a cohort row (wrong file or wrong id column).
    """
    covered = reference.table.index.intersection(cohort.table.index)
    where = ", ".join(reference.sources) or reference.name
    if len(covered) == 0:
        raise CohortError(
            f"none of the {len(reference.table)} reference ids is a row of the cohort {cohort.name!r} "
            f"(e.g. {', '.join(map(str, reference.table.index[:3]))})",
            path=where,
            fix="Check that the reference labels belong to this cohort and that the id column is mapped",
        )
    n_patients = cohort.table.loc[covered, "patient_id"].nunique()
    coverage = (
        f"{len(covered):,} of the cohort's {cohort.n_rows:,} {cohort.unit}s ({n_patients:,} of "
        f"{cohort.n_patients:,} patients)"
    )
    return replace(reference, table=reference.table.loc[covered], selection=f"{coverage}: {reference.selection}")


def findings_with_reference(cohort: Cohort, reference: ReferenceLabels) -> tuple[str, ...]:
    """Findings the label audit can run on: the cohort has the label column and the reference reads it on at
    least one cohort row (cohort order)."""
    table = reference.table
    return tuple(
        finding
        for finding in cohort.findings
        if finding in table.columns and table[finding].reindex(cohort.table.index).notna().any()
    )
