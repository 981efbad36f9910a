"""`cxrfail analyze` on the whole CheXpert training CSV that torchxrayvision ships (187,641 studies of 64,540
patients, one of unknown sex) with one simulated model, under each uncertain-label policy: the report is
complete and its manifest is strict JSON."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cxrfail.cli import main
from cxrfail.cohort import chexpert_sample_path, load_chexpert
from cxrfail.simulate import write_simulated_models

FINDING = "Edema"
N_STUDIES, N_PATIENTS = 187641, 64540


@pytest.fixture(scope="module")
def simulated_model(tmp_path_factory):
    cohort = load_chexpert(chexpert_sample_path(), uncertain_policy="zeros")
    [path] = write_simulated_models(cohort, [FINDING], 1, tmp_path_factory.mktemp("models"))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["zeros", "ones", "drop"])
def test_whole_bundled_chexpert_file_gives_a_complete_report(policy, simulated_model, tmp_path):
    out = tmp_path / "report"
    status = main(
        [
            "analyze",
            "--cohort",
            "chexpert",
            "--cohort-file",
            str(chexpert_sample_path()),
            "--uncertain",
            policy,
            "--predictions",
            str(simulated_model),
            "--findings",
            FINDING,
            "--bootstrap",
            "100",
            "--folds",
            "3",
            "--no-figures",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert status == 0

    manifest = json.loads((out / "manifest.json").read_text(), parse_constant=pytest.fail)
    cohort = manifest["cohort"]
    assert (cohort["n_rows"], cohort["n_patients"], cohort["n_analysed"]) == (N_STUDIES, N_PATIENTS, N_STUDIES)
    assert cohort["sex"]["unknown"] == 1 and set(cohort["sex"]) == {"M", "F", "unknown"}
    assert manifest["config"]["findings"] == [FINDING]
    for table in manifest["tables"]:
        assert (out / table).stat().st_size > 0

    raw = pd.read_csv(chexpert_sample_path(), usecols=["Path", FINDING])
    study = raw["Path"].str.extract(r"(patient[^/]+/study[^/]+)/")[0]
    # Under "drop" a study leaves the analysis when every image's label is uncertain (blank counts as 0).
    dropped = (raw[FINDING] == -1).groupby(study).all().sum()
    performance = pd.read_csv(out / "tables" / "performance.csv")
    assert performance["n"].tolist() == [N_STUDIES - dropped if policy == "drop" else N_STUDIES]
    assert 0.7 < performance["auroc"].iloc[0] < 0.95
    identifiers = pd.read_csv(out / "tables" / "identifiers.csv")
    assert identifiers["auroc"].between(0, 1).all()
    flip = pd.read_csv(out / "tables" / "flip.csv")
    assert len(flip) == 1
