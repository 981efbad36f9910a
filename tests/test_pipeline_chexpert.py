"""The pipeline on a CheXpert-format cohort at study level: the paper's clinical features (number of AP and
PA views, lateral present) reach the identifier, and uncertain labels dropped by policy leave the analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.runner import run_analysis
from cxrfail.cohort import chexpert_sample_path, load_chexpert
from cxrfail.predictions import parse_predictions

FINDINGS = ("Edema", "Pleural Effusion")


@pytest.fixture(scope="module")
def chexpert_cohort(tmp_path_factory):
    rows = pd.read_csv(chexpert_sample_path(), nrows=9000)
    path = tmp_path_factory.mktemp("chexpert") / "train_head.csv"
    rows.to_csv(path, index=False)
    return load_chexpert(path, uncertain_policy="drop")


def _simulated_model(cohort, seed: int):
    """A model whose probability tracks the label with noise (a fixture: no CheXpert model output ships)."""
    rng = np.random.default_rng(seed)
    table = cohort.table
    frame = pd.DataFrame({"study_id": table.index.astype(str)})
    for finding in FINDINGS:
        label = table[finding].fillna(0).to_numpy()
        logit = -2.0 + 2.5 * label + rng.normal(0, 1.2, len(label)) + 0.8 * (table["n_ap"].to_numpy() > 0)
        frame[finding] = (1 / (1 + np.exp(-logit))).round(6).astype(str)
    return parse_predictions(frame, name=f"sim{seed}")


def test_study_level_analysis_uses_clinical_features(chexpert_cohort, tmp_path):
    assert chexpert_cohort.unit == "study"
    models = [_simulated_model(chexpert_cohort, 1), _simulated_model(chexpert_cohort, 2)]
    config = AnalysisConfig(findings=FINDINGS, learners=("logistic",), n_bootstrap=100, shap_max_samples=50, n_folds=3)
    result = run_analysis(chexpert_cohort, models, config, cache_dir=tmp_path)
    dropped = chexpert_cohort.table["Edema"].isna().sum()
    assert dropped > 0  # uncertain Edema labels were dropped by policy
    edema = result.performance.query("finding == 'Edema'")
    assert (edema["n"] == len(chexpert_cohort.table) - dropped).all()
    features = set(result.shap_values["feature"])
    assert {"n_ap", "n_pa", "lateral"} <= features
    views = set(result.subgroup_rates.query("subgroup == 'view' and not is_reference")["level"])
    assert views <= {"AP", "PA", "AP+PA", "lateral"} and "AP" in views
    assert result.outcomes.groupby("patient_id")["split"].nunique().max() == 1
    assert result.regression["converged"].any()
