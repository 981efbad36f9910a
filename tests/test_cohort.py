"""Cohort loaders on the real NIH metadata and CheXpert CSV that torchxrayvision ships, and every
validation rule on small files the tests write."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from cxrfail.cohort import (
    chexpert_sample_path,
    load_chexpert,
    load_generic_csv,
    load_nih,
    nih_metadata_path,
)
from cxrfail.errors import CohortError
from cxrfail.findings import CHEXPERT_FINDINGS


def test_demo_cohort_is_the_test_split_with_images_and_devices(demo_cohort, shared_demo_dir):
    table = demo_cohort.table
    assert len(table) == 22433
    assert table.index.is_unique
    assert demo_cohort.unit == "image"
    assert table["image_path"].notna().sum() == 621
    annotated = table["Support Devices"].notna()
    assert annotated.sum() == 621
    devices = pd.read_csv(shared_demo_dir / "devices.csv").set_index("Image Index")["support_devices"]
    assert (table.loc[annotated, "Support Devices"] == devices.reindex(table.index[annotated])).all()
    assert int(table["Support Devices"].sum()) == 141
    # Several images per patient: splits must be by patient.
    assert demo_cohort.n_patients < len(table)
    assert set(table["sex"].dropna()) == {"M", "F"}
    assert set(table["view"]) == {"PA", "AP"}


def test_nih_labels_match_the_finding_labels_text(demo_cohort):
    raw = pd.read_csv(nih_metadata_path()).set_index("Image Index")
    table = demo_cohort.table
    sample = table.index[:2000]
    text = raw.loc[sample, "Finding Labels"]
    assert (table.loc[sample, "Pleural Effusion"] == text.str.contains("Effusion").astype(float)).all()
    assert (table.loc[sample, "Edema"] == text.str.contains("Edema").astype(float)).all()
    lesion = text.str.contains("Mass") | text.str.contains("Nodule")
    assert (table.loc[sample, "Lung Lesion"] == lesion.astype(float)).all()
    assert "Lung Lesion" in demo_cohort.notes


def test_chexpert_bundled_csv_loads_whole_at_study_level():
    raw = pd.read_csv(chexpert_sample_path(), usecols=["Path", "Frontal/Lateral", "AP/PA"])
    assert len(raw) == 223414
    cohort = load_chexpert(chexpert_sample_path(), uncertain_policy="zeros")
    studies = raw["Path"].str.extract(r"(patient[^/]+/study[^/]+)/")[0]
    assert len(cohort.table) == studies.nunique()
    frontal = raw["Frontal/Lateral"] == "Frontal"
    assert cohort.table["n_ap"].sum() == ((raw["AP/PA"] == "AP") & frontal).sum()
    assert cohort.table["n_pa"].sum() == ((raw["AP/PA"] == "PA") & frontal).sum()
    assert (
        cohort.table["lateral"].sum()
        == raw.loc[~frontal, "Path"].str.extract(r"(patient[^/]+/study[^/]+)/")[0].nunique()
    )
    for finding in CHEXPERT_FINDINGS:
        assert set(np.unique(cohort.table[finding].dropna())) <= {0.0, 1.0}


def test_summary_counts_missing_sex_and_age_as_unknown(tmp_path):
    frame = _chexpert_frame({})
    frame["Sex"] = ["Male", "Male", "Unknown"]
    frame["Age"] = [60, 60, None]
    frame.to_csv(tmp_path / "c.csv", index=False)
    summary = load_chexpert(tmp_path / "c.csv").summary()
    assert summary["sex"] == {"M": 1, "unknown": 1}
    assert summary["n_age_unknown"] == 1 and summary["age_median"] == 60.0
    assert summary["view"] == {"AP": 1, "PA": 1}
    json.dumps(summary, allow_nan=False)


def _chexpert_frame(labels: dict[str, list]) -> pd.DataFrame:
    rows = {
        "Path": [
            "d/train/patient1/study1/view1_frontal.jpg",
            "d/train/patient1/study1/view2_lateral.jpg",
            "d/train/patient2/study1/view1_frontal.jpg",
        ],
        "Sex": ["Male", "Male", "Female"],
        "Age": [60, 60, 45],
        "Frontal/Lateral": ["Frontal", "Lateral", "Frontal"],
        "AP/PA": ["AP", "", "PA"],
    }
    for finding in CHEXPERT_FINDINGS:
        rows[finding] = labels.get(finding, ["", "", ""])
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("policy", "expected"), [("zeros", 0.0), ("ones", 1.0), ("drop", np.nan)])
def test_uncertain_policy_is_applied_and_recorded(tmp_path, policy, expected):
    path = tmp_path / "chexpert.csv"
    _chexpert_frame({"Edema": [-1, -1, 1]}).to_csv(path, index=False)
    cohort = load_chexpert(path, uncertain_policy=policy)
    study = cohort.table.loc["patient1/study1"]
    np.testing.assert_equal(study["Edema"], expected)
    assert cohort.table.loc["patient2/study1", "Edema"] == 1.0
    assert cohort.uncertain_policy == policy
    assert study["n_ap"] == 1 and study["n_pa"] == 0 and bool(study["lateral"])
    assert cohort.table.loc["patient1/study1", "Cardiomegaly"] == 0.0  # blank = unmentioned = negative


def test_chexpert_image_unit_keeps_one_row_per_image(tmp_path):
    path = tmp_path / "chexpert.csv"
    _chexpert_frame({}).to_csv(path, index=False)
    cohort = load_chexpert(path, unit="image")
    assert len(cohort.table) == 3
    assert list(cohort.table["view"]) == ["AP", "lateral", "PA"]


def _write(tmp_path, name, frame):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_generic_csv_with_a_column_map(tmp_path):
    frame = pd.DataFrame(
        {
            "img": ["a.png", "b.png", "c.png"],
            "pid": ["p1", "p1", "p2"],
            "years": [30, 31, 70],
            "gender": ["F", "F", "M"],
            "proj": ["pa", "pa", "ap"],
            "edema_label": [1, 0, ""],
            "Cardiomegaly": [0, 1, 1],
        }
    )
    path = _write(tmp_path, "mine.csv", frame)
    cohort = load_generic_csv(
        path,
        {
            "image_id": "img",
            "patient_id": "pid",
            "age": "years",
            "sex": "gender",
            "view": "proj",
            "Edema": "edema_label",
        },
    )
    assert cohort.findings == ("Edema", "Cardiomegaly")
    assert list(cohort.table["Edema"]) == [1.0, 0.0, 0.0]
    assert list(cohort.table["view"]) == ["PA", "PA", "AP"]
    assert cohort.n_patients == 2


def _generic(tmp_path, frame):
    path = _write(tmp_path, "bad.csv", frame)
    return lambda: load_generic_csv(path, {"image_id": "img", "patient_id": "pid", "age": "age"})


def _valid():
    return pd.DataFrame({"img": ["a", "b", "c"], "pid": ["1", "2", "3"], "age": [40, 50, 60], "Edema": [0, 1, 0]})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.assign(img=["a", "a", "c"]), r"duplicate ids .*line 2, line 3"),
        (lambda f: f.assign(age=[40, 250, 60]), r"column 'age': impossible ages .*line 3"),
        (lambda f: f.assign(age=[40, "old", 60]), r"column 'age': ages that are not numbers .*line 3"),
        (lambda f: f.assign(Edema=[0, 2, 0]), r"column 'Edema': unknown label values.*line 3"),
        (lambda f: f.assign(Edema=[0, -1, 0]), r"unknown label values.*Labels must be 1, 0 or blank"),
        (lambda f: f.drop(columns="pid"), r"missing column\(s\) 'pid'"),
    ],
)
def test_validation_names_file_column_and_rows(tmp_path, mutate, message):
    load = _generic(tmp_path, mutate(_valid()))
    with pytest.raises(CohortError, match=message) as info:
        load()
    assert "bad.csv" in str(info.value)


def test_empty_and_header_only_files_are_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CohortError, match="empty.csv: the file is empty"):
        load_generic_csv(empty, {"image_id": "a", "patient_id": "b"})
    header = tmp_path / "header.csv"
    header.write_text("img,pid,Edema\n")
    with pytest.raises(CohortError, match="header but no rows"):
        load_generic_csv(header, {"image_id": "img", "patient_id": "pid"})


def test_nih_metadata_validation(tmp_path):
    with gzip.open(nih_metadata_path(), "rt") as handle:
        head = pd.read_csv(handle, nrows=5)
    bad = head.copy()
    bad.loc[2, "Finding Labels"] = "Effusion|Unicorn"
    path = _write(tmp_path, "nih.csv", bad)
    with pytest.raises(CohortError, match=r"Finding Labels.*unknown finding names.*line 4"):
        load_nih(path)
    with pytest.raises(CohortError, match="requested image ids are not in the metadata"):
        load_nih(_write(tmp_path, "ok.csv", head), image_ids=["nope.png"])
    with pytest.raises(CohortError, match="unknown uncertain-label policy"):
        load_chexpert(path, uncertain_policy="maybe")
