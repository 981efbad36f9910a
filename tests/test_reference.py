"""Reference labels: reading and validating a second label set, Google's expert labels on the demo, and the
CLI's clean exit on a malformed reference file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cxrfail.cohort import load_generic_csv
from cxrfail.demo import load_demo_reference_labels
from cxrfail.errors import CohortError
from cxrfail.reference import findings_with_reference, load_reference_labels, match_reference


def _write(path, text: str):
    path.write_text(text)
    return path


@pytest.fixture()
def small_cohort(tmp_path):
    csv = _write(
        tmp_path / "cohort.csv",
        "Image,Patient,Pneumothorax,Edema\n"
        + "".join(f"i{i}.png,p{i // 2},{i % 3 == 0:d},{i % 2:d}\n" for i in range(40)),
    )
    return load_generic_csv(csv, {"image_id": "Image", "patient_id": "Patient"})


def test_reads_words_numbers_and_blanks_with_a_column_map(tmp_path):
    path = _write(
        tmp_path / "expert.csv",
        "Image,Nodule or mass,Pneumothorax,Reader\na.png,YES,no,r1\nb.png,0,True,r2\nc.png,, 1 ,r1\n",
    )
    reference = load_reference_labels(
        path,
        column_map={"image_id": "Image", "lung lesion": "Nodule or mass"},
        selection="three images read by two radiologists",
    )
    assert reference.findings == ("Lung Lesion", "Pneumothorax")  # "Reader" is not a finding: ignored
    assert reference.table.index.tolist() == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(reference.table["Lung Lesion"], [1.0, 0.0, np.nan])  # blank: not read
    np.testing.assert_array_equal(reference.table["Pneumothorax"], [0.0, 1.0, 1.0])
    assert reference.selection == "three images read by two radiologists"
    assert reference.labels("Pneumothorax", ["c.png", "zzz.png"]).tolist()[0] == 1.0
    assert np.isnan(reference.labels("Edema", ["a.png"]).iloc[0])


@pytest.mark.parametrize(
    ("text", "column_map", "fragments"),
    [
        (
            "image_id,Pneumothorax\na.png,YES\nb.png,maybe\n",
            None,
            ["column 'Pneumothorax'", "unknown label values ['maybe']", "line 3"],
        ),
        ("image_id,Pneumothorax\na.png,1\na.png,0\n", None, ["duplicate ids", "line 2"]),
        ("image_id,Pneumothorax\n,1\n", None, ["empty ids", "line 2"]),
        ("Image,Pneumothorax\na.png,1\n", None, ["missing column(s) 'image_id'"]),
        ("image_id,Reader\na.png,r1\n", None, ["no finding columns"]),
        ("image_id,Nodule or mass\na.png,1\n", {"Lesion-ish": "Nodule or mass"}, ["'Lesion-ish' is neither"]),
        ("image_id,Pneumothorax\n", None, ["header but no rows"]),
    ],
)
def test_malformed_files_name_file_column_and_rows(tmp_path, text, column_map, fragments):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(CohortError) as caught:
        load_reference_labels(path, column_map=column_map)
    message = str(caught.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_match_reference_states_the_coverage_and_refuses_a_foreign_file(tmp_path, small_cohort):
    path = _write(
        tmp_path / "expert.csv",
        "image_id,Pneumothorax,Fracture\ni0.png,1,0\ni1.png,0,0\ni3.png,1,\nelsewhere.png,1,1\n",
    )
    reference = match_reference(load_reference_labels(path, selection="enriched, not random"), small_cohort)
    assert reference.table.index.tolist() == ["i0.png", "i1.png", "i3.png"]
    assert reference.selection == "3 of the cohort's 40 images (2 of 20 patients): enriched, not random"
    assert findings_with_reference(small_cohort, reference) == ("Pneumothorax",)  # the cohort has no Fracture

    foreign = _write(tmp_path / "foreign.csv", "image_id,Pneumothorax\nx.png,1\n")
    with pytest.raises(CohortError, match="none of the 1 reference ids"):
        match_reference(load_reference_labels(foreign), small_cohort)


def test_demo_loads_google_expert_labels(demo_cohort):
    reference = load_demo_reference_labels(demo_cohort)
    assert len(reference.table) == 935
    assert reference.selection.startswith("935 of the cohort's 22,433 images (353 of 6,187 patients)")
    assert "enriched" in reference.selection and "not a random sample" in reference.selection
    assert "Mass-or-Nodule approximation" in reference.notes["Lung Lesion"]
    assert findings_with_reference(demo_cohort, reference) == ("Pneumothorax", "Lung Lesion")
    assert set(reference.findings) == {"Pneumothorax", "Lung Lesion", "Fracture", "Lung Opacity"}
    assert reference.table.notna().all().all()


def test_cli_exits_2_with_one_line_on_a_malformed_reference_file(tmp_path):
    cohort = _write(
        tmp_path / "cohort.csv", "Image,Patient,Pneumothorax\n" + "".join(f"i{i}.png,p{i},{i % 2}\n" for i in range(20))
    )
    predictions = _write(
        tmp_path / "model.csv", "image_id,Pneumothorax\n" + "".join(f"i{i}.png,{i / 20:.2f}\n" for i in range(20))
    )
    reference = _write(tmp_path / "expert.csv", "Image,Nodule or mass\ni1.png,YES\ni2.png,perhaps\n")
    analyze = [sys.executable, "-m", "cxrfail.cli", "analyze", "--cohort", "csv", "--cohort-file", str(cohort)]
    analyze += ["--column-map", "image_id=Image", "patient_id=Patient", "--predictions", str(predictions)]
    completed = subprocess.run(
        [
            *analyze,
            "--findings",
            "Pneumothorax",
            "--reference-labels",
            str(reference),
            "--reference-column-map",
            "image_id=Image",
            "Lung Lesion=Nodule or mass",
            "--out",
            str(tmp_path / "report"),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("cxrfail: error:")]
    assert errors == [completed.stderr.strip().splitlines()[-1]]
    assert "Traceback" not in completed.stderr
    assert str(reference) in errors[0] and "column 'Nodule or mass'" in errors[0] and "line 3" in errors[0]
    assert not (tmp_path / "report").exists()

    bad_map = subprocess.run(
        [
            *analyze,
            "--reference-labels",
            str(reference),
            "--reference-column-map",
            "image_id",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad_map.returncode == 2 and "--reference-column-map entry 'image_id' is not FIELD=COLUMN" in bad_map.stderr
