"""The real `cxrfail` command in a subprocess: a report on real data, and clean exits on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cxrfail.manifest import file_sha256


def run_cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "cxrfail.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
    )


def assert_clean_input_error(completed, *fragments):
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("cxrfail: error: ")
    assert "Traceback" not in completed.stderr
    for fragment in fragments:
        assert fragment in lines[-1]


def test_report_on_real_predictions(tmp_path, shared_demo_dir):
    predictions = shared_demo_dir / "predictions" / "densenet121_nih25.csv"
    out = tmp_path / "report"
    # a light analysis of one model and finding; the second run below shares its cache
    analyze = ["analyze", "--predictions", predictions, "--findings", "Edema", "--learners", "logistic"]
    analyze += ["--feature-sets", "own", "--bootstrap", "100", "--folds", "3", "--cache-dir", tmp_path / "cache"]
    completed = run_cli(*analyze, "--out", out)
    assert completed.returncode == 0, completed.stderr
    performance = pd.read_csv(out / "tables" / "performance.csv")
    assert list(performance.columns[:7]) == ["model", "finding", "n", "n_pos", "auroc", "threshold", "f1"]
    assert performance[["model", "finding"]].values.tolist() == [["densenet121_nih25", "Edema"]]
    for name in ("subgroup_rates", "regression", "identifiers", "flip"):
        assert len(pd.read_csv(out / "tables" / f"{name}.csv")) > 0
    for name in ("identifier_scores", "shap_values"):  # per-row tables: Parquet (CSV with --per-row-csv)
        assert len(pd.read_parquet(out / "tables" / f"{name}.parquet")) > 0
        assert not (out / "tables" / f"{name}.csv").exists()
    outcomes = pd.read_parquet(out / "tables" / "outcomes.parquet")
    assert len(outcomes) == 22433
    assert {
        "model",
        "finding",
        "image_id",
        "patient_id",
        "split",
        "label",
        "probability",
        "threshold",
        "prediction",
        "misclassified",
        "identifier_probability",
        "flipped_prediction",
    } <= set(outcomes.columns)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0] == {
        "path": str(predictions),
        "bytes": predictions.stat().st_size,
        "sha256": file_sha256(predictions),
    }
    assert manifest["config"]["findings"] == ["Edema"] and manifest["seed"] == 0
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert any(name.endswith(".html") for name in figures)

    # A warm run (same cache) serves the analysis and the rendered figure pack instead of recomputing them.
    again = tmp_path / "again"
    completed = run_cli(*analyze, "--out", again, "--per-row-csv")
    assert completed.returncode == 0, completed.stderr
    assert "loaded from cache" in completed.stderr
    assert sorted(p.name for p in (again / "figures").iterdir()) == figures
    pd.testing.assert_frame_equal(pd.read_parquet(again / "tables" / "outcomes.parquet"), outcomes)
    as_csv = pd.read_csv(again / "tables" / "outcomes.csv")  # --per-row-csv: the same rows as CSV too
    assert as_csv["image_id"].tolist() == outcomes["image_id"].tolist()
    assert np.allclose(as_csv["probability"], outcomes["probability"], rtol=0, atol=0)
    assert "tables/outcomes.csv" in json.loads((again / "manifest.json").read_text())["tables"]

    # `cache ls` / `cache clear` see the analysis result and the figure pack.
    env = {**os.environ, "CXRFAIL_CACHE_DIR": str(tmp_path / "cache")}
    listing = run_cli("cache", "ls", env=env)
    assert (
        listing.returncode == 0 and "1 analysis results" in listing.stdout and "1 report figure packs" in listing.stdout
    )
    cleared = run_cli("cache", "clear", env=env)
    assert cleared.returncode == 0 and "removed 2 analysis results and figure packs" in cleared.stdout
    assert "0 analysis results" in run_cli("cache", "ls", env=env).stdout


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("image_id,Edema\n00000010_000.png,1.7\n", ["bad.csv", "column 'Edema'", "outside [0, 1]", "line 2"]),
        ("image_id,Edema\n00000010_000.png,0.5\nfoo.png,0.2\n", ["bad.csv", "only 1 of 2 predicted ids"]),
    ],
)
def test_bad_prediction_file_exits_2_with_one_line(tmp_path, body, fragments):
    bad = tmp_path / "bad.csv"
    bad.write_text(body)
    completed = run_cli("analyze", "--predictions", bad, "--findings", "Edema", "--out", tmp_path / "o", "--no-cache")
    assert_clean_input_error(completed, *fragments)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_missing_findings_are_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,Edema\n00000010_000.png,0.5\n")
    assert_clean_input_error(
        run_cli("analyze", "--predictions", bad, "--no-cache"), "model 'bad' has no probabilities for Atelectasis"
    )


def test_other_input_errors_exit_2(tmp_path):
    assert_clean_input_error(run_cli("analyze", "--cohort", "chexpert"), "--cohort chexpert needs --cohort-file")
    assert_clean_input_error(
        run_cli("analyze", "--findings", "Unicorn", "--no-cache"), "unknown finding name 'Unicorn'"
    )
    missing = tmp_path / "nope.csv"
    assert_clean_input_error(run_cli("analyze", "--predictions", missing), str(missing), "file not found")


def test_demo_pneumothorax_report_carries_the_label_audit(tmp_path, shared_demo_dir):
    """On the demo, Google's expert labels are the reference by default: analysing Pneumothorax audits it."""
    predictions = shared_demo_dir / "predictions" / "densenet121_jrzech.csv"
    out = tmp_path / "report"
    completed = run_cli(
        "analyze",
        "--predictions",
        predictions,
        "--findings",
        "Pneumothorax",
        "--learners",
        "logistic",
        "--feature-sets",
        "own",
        "--bootstrap",
        "100",
        "--folds",
        "3",
        "--no-figures",
        "--out",
        out,
        "--no-cache",
    )
    assert completed.returncode == 0, completed.stderr
    assert "reference labels: " in completed.stderr and "not a random sample" in completed.stderr
    agreement = pd.read_csv(out / "tables" / "label_agreement.csv")
    cells = {(int(r.cohort_label), int(r.reference_label)): int(r.n) for r in agreement.itertuples()}
    assert cells == {(0, 0): 854, (0, 1): 24, (1, 0): 35, (1, 1): 22}  # the demo's 935 expert-read images
    audit = pd.read_csv(out / "tables" / "label_audit.csv").iloc[0]
    assert audit["n_misclassified"] == audit["n_model_error"] + audit["n_label_error"]
    assert audit["label_error_ci_low"] <= audit["label_error_share"] <= audit["label_error_ci_high"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"tables/label_agreement.csv", "tables/label_audit.csv"} <= set(manifest["tables"])
    assert any("google2019" in entry["path"] for entry in manifest["inputs"])
    assert "reference labels" in manifest["notes"]


def _synthetic_cohort(folder, *, n_rows=400, n_patients=200, owner_rows=0, seed=0):
    """A generic-CSV cohort and one prediction file: Edema is learnable, Cardiomegaly has no positive at all.
    ``owner_rows`` rows belong to one patient (the rest spread over the others)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = [f"i{i:04d}.png" for i in range(n_rows)]
    patients = ["p0"] * owner_rows + [f"p{1 + i % (n_patients - 1)}" for i in range(n_rows - owner_rows)]
    edema = rng.integers(0, 2, n_rows)
    cohort = pd.DataFrame(
        {
            "Image": ids,
            "Patient": patients,
            "Age": rng.integers(20, 90, n_rows),
            "Sex": rng.choice(["M", "F"], n_rows),
            "View": rng.choice(["PA", "AP"], n_rows),
            "Edema": edema,
            "Cardiomegaly": 0,
        }
    )
    predictions = pd.DataFrame(
        {
            "image_id": ids,
            "Edema": np.clip(0.3 + 0.4 * edema + rng.normal(0, 0.2, n_rows), 0, 1),
            "Cardiomegaly": rng.uniform(0, 0.3, n_rows),
        }
    )
    cohort.to_csv(folder / "cohort.csv", index=False)
    predictions.to_csv(folder / "model.csv", index=False)
    return [
        "--cohort",
        "csv",
        "--cohort-file",
        folder / "cohort.csv",
        "--column-map",
        "image_id=Image",
        "patient_id=Patient",
        "age=Age",
        "sex=Sex",
        "view=View",
        "Edema=Edema",
        "Cardiomegaly=Cardiomegaly",
        "--predictions",
        folder / "model.csv",
        "--findings",
        "Edema",
        "Cardiomegaly",
        "--learners",
        "logistic",
        "--feature-sets",
        "own",
        "--bootstrap",
        "100",
        "--folds",
        "3",
        "--no-figures",
        "--no-cache",
    ]


def test_degenerate_pairs_are_refused_with_a_reason_and_the_rest_runs(tmp_path):
    out = tmp_path / "report"
    completed = run_cli("analyze", *_synthetic_cohort(tmp_path), "--out", out)
    assert completed.returncode == 0, completed.stderr
    refused = [line for line in completed.stderr.splitlines() if " refused: " in line]
    assert len(refused) == 1 and refused[0].startswith("cxrfail: model · Cardiomegaly refused: no positives")
    performance = pd.read_csv(out / "tables" / "performance.csv")
    assert performance["finding"].tolist() == ["Edema"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(r["model"], r["finding"]) for r in manifest["refused_pairs"]] == [("model", "Cardiomegaly")]


def test_one_patient_owning_most_images_is_refused_not_reported(tmp_path):
    completed = run_cli(
        "analyze", *_synthetic_cohort(tmp_path, n_rows=400, n_patients=11, owner_rows=390), "--out", tmp_path / "report"
    )
    assert_clean_input_error(completed, "every model × finding pair was refused")
    assert (
        "cxrfail: model · Edema refused: 5 patient(s) in the test split, fewer than the minimum 30"
        in completed.stderr.splitlines()
    )


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (["--slice-top-k", "0"], ["setting slice_top_k is 0", "from 1 to 1000"]),
        (["--slice-min-rows", "5000"], ["setting slice_min_rows is 5000", "calibration split's"]),
        (["--slice-min-patients", "5000"], ["setting slice_min_patients is 5000", "calibration split's"]),
        (["--subgroups", "Scanner"], ["Scanner"]),
    ],
)
def test_bad_slice_settings_exit_2_with_one_line(tmp_path, flags, fragments):
    completed = run_cli("analyze", *_synthetic_cohort(tmp_path), *flags, "--out", tmp_path / "report")
    assert_clean_input_error(completed, *fragments)
    assert not (tmp_path / "report").exists()


def test_a_pair_too_small_for_slices_says_so_and_the_run_goes_on(tmp_path):
    out = tmp_path / "report"
    completed = run_cli(
        "analyze",
        *_synthetic_cohort(tmp_path),
        "--slice-min-rows",
        "150",
        "--slice-error-kinds",
        "misclassified",
        "false_negative",
        "false_positive",
        "--out",
        out,
    )
    assert completed.returncode == 0, completed.stderr
    said = [line for line in completed.stderr.splitlines() if "slices (false negative)" in line]
    assert said and "fewer than the minimum slice support of 150" in said[0]
    slices = pd.read_csv(out / "tables" / "slices.csv")
    assert {
        "model",
        "finding",
        "error_kind",
        "slice",
        "predicates",
        "n_calibration",
        "rate_calibration",
        "n_test",
        "n_patients_test",
        "rate_test",
        "ci_low",
        "ci_high",
        "rate_ratio",
        "rr_ci_low",
        "rr_ci_high",
        "p_value",
        "q_value",
        "q_value_grid",
        "confirmed",
    } <= set(slices.columns)
    assert "false_negative" not in set(slices["error_kind"])
