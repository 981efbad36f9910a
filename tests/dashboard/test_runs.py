"""The dashboard's analysis runs: the first screen's core run computes in the server process, and the worker
processes of the other runs lower their CPU priority (they yield to the server and the browser)."""

from __future__ import annotations

import dataclasses
import os

import pytest
from joblib import Parallel, delayed

from cxrfail.analysis.config import CORE_SCOPE, AnalysisConfig
from cxrfail.dashboard import runs
from cxrfail.dashboard.datasets import dataset_from

MODELS = ("densenet121_jrzech", "densenet121_1epoch")


def _niceness(_: int) -> int:
    return os.nice(0)


def test_core_run_computes_in_the_server_process(demo_cohort, demo_models, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(tmp_path))
    dataset = dataset_from(demo_cohort, [m for m in demo_models if m.name in MODELS], "demo subset", key="t")
    config = dataclasses.replace(AnalysisConfig(), findings=("Edema",))
    messages = []
    result = runs.AnalysisJob(dataset, MODELS, config, CORE_SCOPE).result(lambda f, message: messages.append(message))
    assert "on 1 process(es)" in messages[0]
    assert set(result.performance["model"]) == set(MODELS)
    assert result.performance["auroc"].between(0.5, 1.0).all()
    # the Subgroups page's q-values and rates stay put when a run of more findings replaces the first screen's
    wider = runs.AnalysisJob(
        dataset, MODELS, dataclasses.replace(config, findings=("Edema", "Consolidation")), CORE_SCOPE
    ).result(lambda f, message: None)
    for model in MODELS:
        for name in ("regression", "subgroup_rates"):
            first, later = (run.pair(model, "Edema").table(name).reset_index(drop=True) for run in (result, wider))
            assert first.equals(later), (model, name)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no os.nice on this system")
def test_run_workers_lower_their_priority():
    base = os.nice(0)
    with runs._worker_priority():
        inside = Parallel(n_jobs=2)(delayed(_niceness)(i) for i in range(4))
    assert inside == [min(19, base + runs.WORKER_NICENESS)] * 4
    assert os.nice(0) == base  # the server process itself keeps its priority
