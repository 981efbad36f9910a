"""Cohorts: the validated table of studies (or images) that every analysis runs on.

A `Cohort` holds one row per unit of analysis (an image for NIH, a study for CheXpert by default) with the
patient, demographics, view and ground-truth labels. Loaders read NIH ChestX-ray14 metadata, CheXpert CSVs
and any CSV with a column map; each validates its input and raises `CohortError` naming the file, the column
and the first offending rows.

Table contract (``Cohort.table``), index ``image_id`` (str, unique; a study id when ``unit == "study"``):

========================  ==========================================================================
column                    meaning
========================  ==========================================================================
``patient_id``            str; every split groups by it
``age``                   float, years (NaN when unknown)
``sex``                   "M", "F" or <NA>
``view``                  str: "PA", "AP", ... (for a CheXpert study: "PA", "AP", "AP+PA" or "lateral")
``image_path``            str path to the image file, or <NA> when the image is not on disk
finding columns           one per canonical finding (`cxrfail.findings`), float64: 1.0, 0.0 or NaN
                          (NaN: not known for this row, e.g. an uncertain label dropped, or support
                          devices outside the annotated images). Excluded per finding, never guessed.
``followup``              (NIH) Int64 follow-up number
``n_ap``, ``n_pa``,       (CheXpert studies) number of AP and PA frontal images, whether a lateral
``lateral``               view is present: the paper's clinical features
========================  ==========================================================================
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrfail.analysis.config import COHORT_KINDS, FILE_COHORT_KINDS, UNCERTAIN_POLICIES
from cxrfail.errors import CohortError, refuse_rows
from cxrfail.findings import (
    APPROXIMATE_FINDINGS,
    CHEXPERT_FINDINGS,
    NIH_TO_CANONICAL,
    canonical_finding,
    is_finding,
)
from cxrfail.io import in_unique_index, read_input_csv, require_columns, validate_ids

__all__ = [
    "Cohort",
    "load_cohort",
    "load_nih",
    "load_chexpert",
    "load_generic_csv",
    "parse_column_map",
    "nih_metadata_path",
    "chexpert_sample_path",
    "COHORT_KINDS",
    "UNCERTAIN_POLICIES",
    "GENERIC_FIELDS",
    "DEVICES_NOTE",
    "UNKNOWN_LEVEL",
]

MAX_PLAUSIBLE_AGE = 120.0
DEVICES_NOTE = (
    "support devices read from the images by two non-expert readers (kappa 0.92), known for the imaged studies only"
)


@dataclass(frozen=True)
class Cohort:
    """A validated table of studies or images; see the module docstring for the table's columns.

    Attributes:
        table: one row per unit of analysis, index ``image_id``.
        name: a short human name ("NIH ChestX-ray14 test split").
        unit: "image" or "study": what one row is.
        findings: the finding columns present, canonical names.
        uncertain_policy: how CheXpert's -1 labels were mapped ("zeros", "ones", "drop"), None if the source
            has no uncertain labels.
        sources: the files the cohort was read from.
        notes: caveats per column (approximate findings, how a label was obtained), shown beside results.
        non_random_subsets: columns known on a subset of rows that was not drawn at random (e.g. support
            devices read only on the imaged studies, chosen enriched for disease); results on them say so.
    """

    table: pd.DataFrame
    name: str
    unit: str
    findings: tuple[str, ...]
    uncertain_policy: str | None = None
    sources: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)
    non_random_subsets: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.table)

    @property
    def n_patients(self) -> int:
        return int(self.table["patient_id"].nunique())

    def summary(self) -> dict[str, object]:
        """Counts for an overview, every value plain JSON: rows, patients, age quartiles in years (None when no
        age is known) and the number of rows of unknown age, and the sex and view mix as {level: n rows} with
        missing values counted under "unknown"."""
        table = self.table
        ages = table["age"].dropna()

        def quantile(q: float) -> float | None:
            return float(ages.quantile(q)) if len(ages) else None

        return {
            "unit": self.unit,
            "n_rows": self.n_rows,
            "n_patients": self.n_patients,
            "age_median": quantile(0.5),
            "age_q1": quantile(0.25),
            "age_q3": quantile(0.75),
            "n_age_unknown": int(table["age"].isna().sum()),
            "sex": _level_counts(table["sex"]),
            "view": _level_counts(table["view"]),
        }


UNKNOWN_LEVEL = "unknown"


def _level_counts(values: pd.Series) -> dict[str, int]:
    """{level: number of rows}, most frequent first, missing values under `UNKNOWN_LEVEL`."""
    counts = values.astype("string").fillna(UNKNOWN_LEVEL).value_counts()
    return {str(level): int(n) for level, n in counts.items()}


def _parse_age(values: pd.Series, path: str | Path, column: str) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    not_numeric = numeric.isna() & values.notna() & (values.astype("string").str.strip() != "")
    refuse_rows(
        not_numeric,
        values.index,
        "ages that are not numbers",
        path=path,
        column=column,
        fix="Ages must be numbers of years",
    )
    impossible = (numeric < 0) | (numeric > MAX_PLAUSIBLE_AGE)
    example = f", e.g. {numeric[impossible].iloc[0]:g}" if impossible.any() else ""
    refuse_rows(
        impossible,
        values.index,
        f"impossible ages (outside 0-{MAX_PLAUSIBLE_AGE:g} years){example}",
        path=path,
        column=column,
        fix="Fix or blank these ages; ages must be in years",
    )
    return numeric.astype("float64")


_SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F", "unknown": pd.NA, "u": pd.NA, "": pd.NA}


def _parse_sex(values: pd.Series, path: str | Path, column: str) -> pd.Series:
    lowered = values.astype("string").str.strip().str.lower()
    unknown = lowered.notna() & ~lowered.isin(list(_SEX_CODES))
    refuse_rows(
        unknown, values.index, "unknown sex values", path=path, column=column, fix="Use M/F (or Male/Female, Unknown)"
    )
    return lowered.map(lambda code: pd.NA if pd.isna(code) else _SEX_CODES[code]).astype("string")


def _parse_labels(
    values: pd.Series, path: str | Path, column: str, uncertain_policy: str | None, blank_as: float
) -> pd.Series:
    """Map label cells onto 1.0 / 0.0 / NaN. Allowed: 1, 0, blank and (with an uncertain policy) -1."""
    numeric = pd.to_numeric(values, errors="coerce")
    text_blank = values.isna() | (values.astype("string").str.strip() == "")
    allowed = {1.0, 0.0} | ({-1.0} if uncertain_policy else set())
    bad = ~text_blank & ~numeric.isin(list(allowed))
    expect = "1, 0, -1 (uncertain) or blank" if uncertain_policy else "1, 0 or blank"
    refuse_rows(bad, values.index, "unknown label values", path=path, column=column, fix=f"Labels must be {expect}")
    labels = numeric.where(~text_blank, blank_as).astype("float64")
    if uncertain_policy:
        replacement = {"zeros": 0.0, "ones": 1.0, "drop": np.nan}[uncertain_policy]
        labels = labels.mask(labels == -1.0, replacement)
    return labels


def _check_policy(uncertain_policy: str) -> None:
    if uncertain_policy not in UNCERTAIN_POLICIES:
        raise CohortError(
            f"unknown uncertain-label policy {uncertain_policy!r}", fix=f"Use one of {', '.join(UNCERTAIN_POLICIES)}"
        )


def _image_paths(ids: pd.Index, image_dir: str | Path | None) -> pd.Series:
    if image_dir is None:
        return pd.Series(pd.NA, index=ids, dtype="string")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise CohortError("image folder not found", path=image_dir, fix="Pass an existing folder of images")
    present = set(os.listdir(image_dir))
    paths = [str(image_dir / image_id) if image_id in present else pd.NA for image_id in ids]
    return pd.Series(paths, index=ids, dtype="string")


def _contained_paths(paths: pd.Series, base: Path, csv: str | Path, column: str) -> pd.Series:
    """``paths`` (relative to ``base``) resolved; `CohortError` naming the rows whose path leaves ``base``."""
    root = base.resolve()
    resolved = paths.map(lambda p: pd.NA if pd.isna(p) else str((root / p).resolve()))
    outside = resolved.map(lambda p: not pd.isna(p) and not Path(p).is_relative_to(root)).astype(bool)
    refuse_rows(
        outside,
        paths.index,
        "image paths that lead outside the image folder",
        path=csv,
        column=column,
        fix=f"Image paths must be relative paths inside {base}",
    )
    return resolved.astype("string")


# ------------------------------------------------------------------------------------------------------ NIH


def xrv_data_file(name: str) -> Path:
    """A data file bundled with torchxrayvision, located without importing it (importing loads torch)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise CohortError("the torchxrayvision package is not installed", fix="Run make test or make run to install")
    return Path(spec.submodule_search_locations[0]) / "data" / name


def nih_metadata_path() -> Path:
    """torchxrayvision's bundled NIH ChestX-ray14 metadata (all 112,120 images)."""
    return xrv_data_file("Data_Entry_2017_v2020.csv.gz")


def load_nih(
    metadata_csv: str | Path | None = None,
    *,
    image_ids: Sequence[str] | None = None,
    image_dir: str | Path | None = None,
    devices_csv: str | Path | None = None,
    name: str = "NIH ChestX-ray14",
) -> Cohort:
    """Load an NIH ChestX-ray14 cohort, one row per image.

    Args:
        metadata_csv: a ``Data_Entry_2017``-style CSV; default torchxrayvision's bundled copy.
        image_ids: keep only these ``Image Index`` values (all must be in the metadata).
        image_dir: folder of ``<Image Index>`` files; rows whose file is present get ``image_path``.
        devices_csv: support-device reads (``Image Index``, ``support_devices`` 0/1); joined where present, the
            ``Support Devices`` column is NaN elsewhere.
    """
    path = Path(metadata_csv) if metadata_csv is not None else nih_metadata_path()
    raw = read_input_csv(path)
    require_columns(
        raw, ["Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position"], path
    )
    validate_ids(raw["Image Index"], path, "Image Index")
    if image_ids is not None:
        wanted = pd.Index(pd.Series(list(image_ids), dtype="string").unique())
        missing = wanted.difference(pd.Index(raw["Image Index"].astype("string")))
        if len(missing):
            raise CohortError(
                f"{len(missing)} requested image ids are not in the metadata, e.g. {', '.join(missing[:3])}",
                path=path,
                column="Image Index",
                fix="Check that the predictions belong to NIH ChestX-ray14",
            )
        raw = raw[in_unique_index(pd.Index(raw["Image Index"].astype("string")), wanted)].reset_index(drop=True)

    table = pd.DataFrame(index=pd.Index(raw["Image Index"].astype("string"), name="image_id"))
    table["patient_id"] = raw["Patient ID"].astype("string").to_numpy()
    table["age"] = _parse_age(raw["Patient Age"], path, "Patient Age").to_numpy()
    table["sex"] = _parse_sex(raw["Patient Gender"], path, "Patient Gender").to_numpy()
    table["view"] = raw["View Position"].astype("string").str.strip().to_numpy()
    if "Follow-up #" in raw.columns:
        table["followup"] = pd.to_numeric(raw["Follow-up #"], errors="coerce").astype("Int64").to_numpy()
    table["image_path"] = _image_paths(table.index, image_dir)

    labels = raw["Finding Labels"].astype("string").fillna("No Finding").str.split("|")
    known = set(NIH_TO_CANONICAL) | {"No Finding"}
    unknown = labels.map(lambda names: bool(set(names) - known))
    refuse_rows(
        unknown,
        raw.index,
        "unknown finding names",
        path=path,
        column="Finding Labels",
        fix=f"Use NIH names: {', '.join(sorted(known))}",
    )
    exploded = labels.explode()  # index: the row's position (raw has a default index)
    names = sorted(known)
    counts = np.zeros((len(raw), len(names)), dtype="int64")
    np.add.at(counts, (exploded.index.to_numpy(), pd.Categorical(exploded, categories=names).codes), 1)
    indicator = pd.DataFrame(counts, columns=names)
    for nih_name, canonical in NIH_TO_CANONICAL.items():
        table[canonical] = indicator[nih_name].to_numpy(dtype="float64")
    table["No Finding"] = indicator["No Finding"].to_numpy(dtype="float64")
    table["Lung Lesion"] = np.maximum(table["Mass"], table["Nodule"])
    findings = ["No Finding", *NIH_TO_CANONICAL.values(), "Lung Lesion"]
    notes = {"Lung Lesion": APPROXIMATE_FINDINGS["Lung Lesion"]}
    sources = [str(path)]

    if devices_csv is not None:
        devices = read_input_csv(devices_csv)
        require_columns(devices, ["Image Index", "support_devices"], devices_csv)
        validate_ids(devices["Image Index"], devices_csv, "Image Index")
        reads = _parse_labels(devices["support_devices"], devices_csv, "support_devices", None, np.nan)
        reads.index = pd.Index(devices["Image Index"].astype("string"))
        table["Support Devices"] = reads.reindex(table.index).to_numpy(dtype="float64")
        findings.append("Support Devices")
        notes["Support Devices"] = DEVICES_NOTE
        sources.append(str(devices_csv))

    return Cohort(
        table=table,
        name=name,
        unit="image",
        findings=tuple(findings),
        sources=tuple(sources),
        notes=notes,
        non_random_subsets=("Support Devices",) if devices_csv is not None else (),
    )


# ------------------------------------------------------------------------------------------------- CheXpert

CHEXPERT_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")


def chexpert_sample_path() -> Path:
    """torchxrayvision's bundled CheXpert training CSV (223,414 images)."""
    return xrv_data_file("chexpert_train.csv.gz")


def load_chexpert(
    csv: str | Path,
    *,
    uncertain_policy: str = "zeros",
    unit: str = "study",
    image_root: str | Path | None = None,
    name: str = "CheXpert",
) -> Cohort:
    """Load a CheXpert-format CSV (Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 labels).

    Labels: 1 positive, 0 negative, blank unmentioned (counted negative), -1 uncertain, mapped by
    ``uncertain_policy`` ("zeros", "ones" or "drop": NaN, so the row leaves that finding's analysis).

    With ``unit="study"`` (default) images are grouped into studies (``.../patientN/studyM/``): age and sex of
    the first image, ``lateral`` whether any lateral view exists, ``n_ap`` / ``n_pa`` the frontal counts, and a
    label positive when any image's label is. With ``unit="image"`` each row is one image.
    ``image_root`` is the folder that ``Path`` values are relative to (image paths are set when it is given).
    """
    _check_policy(uncertain_policy)
    if unit not in ("study", "image"):
        raise CohortError(f"unknown unit {unit!r}", fix="Use 'study' or 'image'")
    raw = read_input_csv(csv, dtype={"Path": "string", "Sex": "string", "Frontal/Lateral": "string", "AP/PA": "string"})
    require_columns(raw, [*CHEXPERT_COLUMNS, *CHEXPERT_FINDINGS], csv)
    validate_ids(raw["Path"], csv, "Path")
    parts = raw["Path"].str.extract(r"(?P<patient>patient[^/]+)/(?P<study>study[^/]+)/")
    unparsed = parts["patient"].isna()
    refuse_rows(
        unparsed,
        raw.index,
        "paths without a patientN/studyM/ part",
        path=csv,
        column="Path",
        fix="Keep CheXpert's folder layout in Path",
    )

    frame = pd.DataFrame(
        {
            "patient_id": parts["patient"],
            "study_id": parts["patient"] + "/" + parts["study"],
            "age": _parse_age(raw["Age"], csv, "Age"),
            "sex": _parse_sex(raw["Sex"], csv, "Sex"),
            "frontal": raw["Frontal/Lateral"].str.strip().str.lower() == "frontal",
            "projection": raw["AP/PA"].astype("string").str.strip().str.upper(),
            "path": raw["Path"],
        }
    )
    for finding in CHEXPERT_FINDINGS:
        frame[finding] = _parse_labels(raw[finding], csv, finding, uncertain_policy, 0.0)
    root = None if image_root is None else Path(image_root)

    if unit == "image":
        table = frame.rename(columns={"path": "image_id"}).set_index("image_id")
        table["view"] = table["projection"].where(table["frontal"], "lateral")
        table["image_path"] = (
            pd.Series(pd.NA, index=table.index, dtype="string")
            if root is None
            else _contained_paths(pd.Series(table.index, index=table.index), root, csv, "Path")
        )
        table = table[["patient_id", "age", "sex", "view", "image_path", *CHEXPERT_FINDINGS]]
    else:
        frame["is_ap"] = frame["frontal"] & (frame["projection"] == "AP")
        frame["is_pa"] = frame["frontal"] & (frame["projection"] == "PA")
        frame["is_lateral"] = ~frame["frontal"]
        frame["frontal_path"] = frame["path"].where(frame["frontal"])
        grouped = frame.groupby("study_id", sort=False)
        table = grouped.agg(
            patient_id=("patient_id", "first"),
            age=("age", "first"),
            sex=("sex", "first"),
            n_ap=("is_ap", "sum"),
            n_pa=("is_pa", "sum"),
            lateral=("is_lateral", "any"),
            frontal_path=("frontal_path", "first"),
        )
        labels = grouped[list(CHEXPERT_FINDINGS)].max()
        table.index.name = "image_id"
        n_ap, n_pa = table["n_ap"].astype(int), table["n_pa"].astype(int)
        view = np.select([(n_ap > 0) & (n_pa > 0), n_ap > 0, n_pa > 0], ["AP+PA", "AP", "PA"], "lateral")
        table["view"] = pd.Series(view, index=table.index, dtype="string")
        table["image_path"] = (
            pd.Series(pd.NA, index=table.index, dtype="string")
            if root is None
            else _contained_paths(table["frontal_path"].astype("string"), root, csv, "Path")
        )
        table = pd.concat(
            [table[["patient_id", "age", "sex", "view", "image_path", "n_ap", "n_pa", "lateral"]], labels], axis=1
        )
        table["n_ap"] = table["n_ap"].astype(int)
        table["n_pa"] = table["n_pa"].astype(int)
    table.index = table.index.astype("string")
    table["patient_id"] = table["patient_id"].astype("string")
    return Cohort(
        table=table,
        name=name,
        unit=unit,
        findings=CHEXPERT_FINDINGS,
        uncertain_policy=uncertain_policy,
        sources=(str(csv),),
        notes={"uncertain": f"CheXpert uncertain labels (-1) mapped by policy {uncertain_policy!r}"},
    )


# -------------------------------------------------------------------------------------------- generic CSV

#: The cohort fields a column map can name. ``image_id`` and ``patient_id`` are required.
GENERIC_FIELDS = ("image_id", "patient_id", "age", "sex", "view", "image_path")


def load_generic_csv(
    csv: str | Path,
    column_map: Mapping[str, str],
    *,
    unit: str = "image",
    uncertain_policy: str | None = None,
    image_dir: str | Path | None = None,
    name: str | None = None,
) -> Cohort:
    """Load any CSV given a map from cohort field or finding to the file's column name.

    ``column_map`` keys are fields of `GENERIC_FIELDS` or finding names (any spelling `canonical_finding`
    accepts); values are column names in the file. Columns the map does not name but whose header is a finding
    name are taken as labels too. Labels are 1, 0, blank (negative) and, when ``uncertain_policy`` is given,
    -1. ``image_path`` values are relative to ``image_dir`` (default: the CSV's folder) and must resolve inside it:
    a row whose path leaves it (``..``, an absolute path, a symlink out) is a `CohortError`.
    """
    if uncertain_policy is not None:
        _check_policy(uncertain_policy)
    raw = read_input_csv(csv)
    fields = {key: value for key, value in column_map.items() if key in GENERIC_FIELDS}
    finding_columns = {}
    for key, value in column_map.items():
        if key in GENERIC_FIELDS:
            continue
        try:
            finding_columns[canonical_finding(key)] = value
        except KeyError:
            raise CohortError(
                f"column map entry {key}={value}: {key!r} is neither a cohort field nor a finding",
                path=csv,
                fix=f"Map one of {', '.join(GENERIC_FIELDS)} or a finding name",
            ) from None
    for column in raw.columns:
        if column not in finding_columns.values() and column not in fields.values() and is_finding(column):
            finding_columns.setdefault(canonical_finding(column), column)
    if "image_id" not in fields or "patient_id" not in fields:
        raise CohortError(
            "the column map must name 'image_id' and 'patient_id'",
            path=csv,
            fix="Map the id columns, e.g. image_id=Path and patient_id=Patient",
        )
    require_columns(raw, [*fields.values(), *finding_columns.values()], csv)
    if not finding_columns:
        raise CohortError(
            "no label columns found", path=csv, fix="Name label columns after findings or map them in the column map"
        )
    validate_ids(raw[fields["image_id"]], csv, fields["image_id"])

    table = pd.DataFrame(index=pd.Index(raw[fields["image_id"]].astype("string"), name="image_id"))
    table["patient_id"] = raw[fields["patient_id"]].astype("string").to_numpy()
    table["age"] = _parse_age(raw[fields["age"]], csv, fields["age"]).to_numpy() if "age" in fields else np.nan
    table["sex"] = (
        _parse_sex(raw[fields["sex"]], csv, fields["sex"]).to_numpy()
        if "sex" in fields
        else pd.Series(pd.NA, index=table.index, dtype="string")
    )
    table["view"] = (
        raw[fields["view"]].astype("string").str.strip().str.upper().to_numpy()
        if "view" in fields
        else pd.Series(pd.NA, index=table.index, dtype="string")
    )
    if "image_path" in fields:
        base = Path(image_dir) if image_dir is not None else Path(csv).parent
        paths = raw[fields["image_path"]].astype("string")
        table["image_path"] = _contained_paths(paths, base, csv, fields["image_path"]).to_numpy()
    else:
        table["image_path"] = _image_paths(table.index, image_dir)
    table["image_path"] = table["image_path"].astype("string")
    for finding, column in finding_columns.items():
        table[finding] = _parse_labels(raw[column], csv, column, uncertain_policy, 0.0).to_numpy()
    notes = {finding: APPROXIMATE_FINDINGS[finding] for finding in finding_columns if finding in APPROXIMATE_FINDINGS}
    return Cohort(
        table=table,
        name=name or Path(csv).stem,
        unit=unit,
        findings=tuple(finding_columns),
        uncertain_policy=uncertain_policy,
        sources=(str(csv),),
        notes=notes,
    )


def parse_column_map(entries: str | Sequence[str], what: str = "column map") -> dict[str, str]:
    """``FIELD=COLUMN`` entries (a sequence, or one text separated by commas or new lines) as a dict.

    Fields are `GENERIC_FIELDS` or finding names; they are checked against the file by `load_generic_csv`.
    ``what`` names the option in messages (e.g. ``--column-map``)."""
    parts = entries.replace("\n", ",").split(",") if isinstance(entries, str) else list(entries)
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise CohortError(
                f"{what} entry {part!r} is not FIELD=COLUMN", fix="e.g. image_id=Image patient_id=Patient age=Age"
            )
        mapping[field.strip()] = column.strip()
    return mapping


def load_cohort(
    kind: str,
    path: str | Path | None = None,
    *,
    column_map: Mapping[str, str] | None = None,
    uncertain_policy: str = "zeros",
    unit: str = "study",
    image_dir: str | Path | None = None,
    devices_csv: str | Path | None = None,
    prediction_ids: Sequence[str] | None = None,
    name: str | None = None,
) -> Cohort:
    """The one cohort loader (CLI and dashboard): ``kind`` is a key of `COHORT_KINDS`.

    Args:
        kind: "demo", "nih", "chexpert" or "csv".
        path: the cohort file (needed for chexpert and csv; optional for nih; ignored for demo).
        column_map: for csv: field or finding → column (see `parse_column_map`).
        uncertain_policy: CheXpert / csv -1 labels: "zeros", "ones" or "drop".
        unit: CheXpert unit of analysis, "study" or "image".
        image_dir: the image folder (image paths resolve inside it).
        devices_csv: NIH support-device reads.
        prediction_ids: for nih: keep the rows the predictions cover.
        name: display name (default: the loader's).
    """
    named = {} if name is None else {"name": name}
    if kind not in COHORT_KINDS:
        raise CohortError(f"unknown cohort kind {kind!r}", fix=f"Use one of {', '.join(COHORT_KINDS)}")
    if kind in FILE_COHORT_KINDS and path is None:
        raise CohortError(f"a {kind} cohort needs its CSV file", fix="Give the cohort file")
    if kind == "demo":
        from cxrfail import demo

        return demo.load_demo_cohort()
    if kind == "nih":
        return load_nih(path, image_ids=prediction_ids, image_dir=image_dir, devices_csv=devices_csv, **named)
    if kind == "chexpert":
        return load_chexpert(path, uncertain_policy=uncertain_policy, unit=unit, image_root=image_dir, **named)
    return load_generic_csv(path, column_map or {}, uncertain_policy=uncertain_policy, image_dir=image_dir, **named)
