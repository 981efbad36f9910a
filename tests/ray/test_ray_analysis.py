"""The analysis grid as Ray tasks on the real two-node cluster (see conftest): the same tables as a local run
with the same seed; `map_on_ray` reruns a task whose worker dies."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.distributed import map_on_ray
from cxrfail.analysis.result import TABLE_NAMES
from cxrfail.analysis.runner import run_analysis
from cxrfail.cli import main

pytestmark = pytest.mark.ray

LIGHT = AnalysisConfig(
    findings=("Edema",),
    learners=("logistic",),
    feature_sets=("own+demographics",),
    n_bootstrap=100,
    shap_max_samples=50,
    n_folds=3,
)


def test_analysis_on_ray_equals_the_local_tables(ray_cluster, demo_cohort, demo_models):
    models = demo_models[:2]
    local = run_analysis(demo_cohort, models, LIGHT, use_cache=False, n_jobs=1)
    on_ray = run_analysis(demo_cohort, models, LIGHT, use_cache=False, ray_address=ray_cluster.address)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(on_ray.table(name), local.table(name), check_exact=True, obj=name)
    assert set(on_ray.performance["model"]) == {model.name for model in models}


def test_map_on_ray_reruns_a_task_whose_worker_died(ray_cluster, tmp_path):
    marker = str(tmp_path / "died-once")

    def _die_on_first_attempt(marker: str, value: int) -> tuple[int, int]:
        """Kill this worker process the first time it runs (``marker`` absent), else return (value², pid).
        Defined here so that Ray ships it by value (the test module does not import on the workers)."""
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return value * value, os.getpid()

    outputs = dict(map_on_ray(_die_on_first_attempt, [(marker, value) for value in range(4)], ray_cluster.address))
    assert sorted(outputs) == [0, 1, 2, 3]
    assert [outputs[i][0] for i in range(4)] == [0, 1, 4, 9]
    assert os.path.exists(marker)


def test_analyze_cli_with_an_unreachable_ray_address_is_exit_2_and_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = main(
        [
            "analyze",
            "--findings",
            "Edema",
            "--no-cache",
            "--no-figures",
            "--out",
            str(tmp_path / "r"),
            "--ray",
            f"127.0.0.1:{port}",
        ]
    )
    assert status == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cxrfail: error:")]
    assert errors == [
        f"cxrfail: error: cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused). "
        "Check the head node's address and port (`ray status` on the head)"
    ]
