"""The public Python API as a notebook uses it: load the demo, analyse one pair with a light config, and read
the answers through the `PairResult` accessors, top to bottom. Also: ``import cxrfail`` stays light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import cxrfail


def test_import_cxrfail_imports_no_analysis_stack():
    code = (
        "import sys, cxrfail; heavy = [m for m in ('pandas', 'numpy', 'sklearn', 'torch', 'plotly') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == ""


def test_public_names_are_the_documented_ones():
    assert {"load_demo", "load_cohort", "load_predictions", "AnalysisConfig", "analyze"} <= set(cxrfail.__all__)
    for name in cxrfail.__all__:
        assert getattr(cxrfail, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'run_analysis'"):
        cxrfail.run_analysis  # noqa: B018  (the internal name is not part of the API)


@pytest.fixture(scope="module")
def notebook(shared_demo_dir, tmp_path_factory):
    """The notebook's cells, run once: returns its namespace."""
    from cxrfail import AnalysisConfig, analyze, load_demo

    demo = load_demo(models=["densenet121_nih25"])
    config = AnalysisConfig(
        findings=("Pneumothorax",),
        learners=("logistic",),
        feature_sets=("own+demographics",),
        n_bootstrap=200,
        shap_max_samples=50,
        n_folds=3,
    )
    result = analyze(
        demo.cohort,
        demo.predictions,
        config,
        reference=demo.reference,
        cache_dir=tmp_path_factory.mktemp("cache"),
        n_jobs=1,
    )
    pair = result.pair("densenet121_nih25", "Pneumothorax")
    return {"demo": demo, "config": config, "result": result, "pair": pair}


def test_demo_inputs(notebook):
    demo = notebook["demo"]
    assert demo.models == ("densenet121_nih25",)
    assert len(demo.cohort.table) == 22433 and demo.cohort.unit == "image"
    assert set(demo.reference.table.index) <= set(demo.cohort.table.index)


def test_overall_is_the_test_split_misclassification(notebook):
    pair = notebook["pair"]
    overall = pair.overall
    test = pair.outcomes_in("test")
    assert overall["n"] == len(test) > 0
    assert overall["n_misclassified"] == int((test["prediction"] != test["label"]).sum())
    assert overall["ci_low"] <= overall["rate"] <= overall["ci_high"]
    assert overall["n_fp"] + overall["n_fn"] == overall["n_misclassified"]


def test_by_group_and_difference(notebook):
    pair = notebook["pair"]
    assert "sex" in pair.subgroups
    by_sex = pair.by_group("sex")
    assert set(by_sex.index) == {"F", "M"}
    assert by_sex["n"].sum() == pair.overall["n"]  # every test row has a known sex in the demo
    assert {"rate", "ci_low", "ci_high", "n_patients", "sufficient"} <= set(by_sex.columns)
    assert "model" not in by_sex.columns and "subgroup" not in by_sex.columns
    assert len(pair.by_group("sex", reference=True)) == len(by_sex) + 1
    spread = pair.difference("sex")
    assert spread is not None
    assert spread["spread"] == pytest.approx(by_sex["rate"].max() - by_sex["rate"].min())
    assert {spread["lowest"], spread["highest"]} == {"F", "M"}
    gaps = notebook["result"].subgroup_gaps()
    assert gaps.loc[gaps["subgroup"] == "sex", "spread"].item() == pytest.approx(spread["spread"])
    with pytest.raises(KeyError, match="no subgroup 'shoe size'"):
        pair.by_group("shoe size")


def test_identifiers_and_flip(notebook):
    pair = notebook["pair"]
    identifiers = pair.identifiers
    assert len(identifiers) == 1 and 0.0 <= identifiers["auroc"].item() <= 1.0
    flip = pair.flip
    assert flip is not None and flip["n_flips"] >= 0
    live = pair.evaluate_flip(pair.chosen_tau, n_bootstrap=notebook["config"].n_bootstrap, seed=notebook["config"].seed)
    assert not live.exploratory
    assert live.delta_f1 == pytest.approx(flip["delta_f1"]) and live.n_flips == flip["n_flips"]
    assert pair.evaluate_flip(0.99, n_bootstrap=200).exploratory  # any other tau is a look at test data


def test_label_accessors(notebook):
    pair, result = notebook["pair"], notebook["result"]
    audit = pair.label_audit
    assert audit is not None
    assert audit["n_misclassified"] == audit["n_model_error"] + audit["n_label_error"]
    agreement = pair.label_agreement
    assert agreement["n"].sum() == audit["n_rows"] and set(agreement["cohort_label"]) <= {0, 1}
    cases = pair.label_cases
    assert len(cases) == audit["n_rows"] and "model" not in cases.columns
    pd.testing.assert_frame_equal(result.rows("label_audit", finding="Pneumothorax"), result.table("label_audit"))
    assert result.rows("label_audit", model="absent").empty


def test_every_table_is_reachable(notebook):
    from cxrfail.analysis.result import TABLE_NAMES

    pair = notebook["pair"]
    for name in TABLE_NAMES:
        assert list(pair.table(name).columns)[:2] == ["model", "finding"], name
    if "slices" in TABLE_NAMES:
        assert isinstance(pair.slices, pd.DataFrame)
    assert np.isfinite(pair.threshold)


@pytest.mark.parametrize(
    "module",
    [
        "cxrfail.cohort",
        "cxrfail.io",
        "cxrfail.predictions",
        "cxrfail.reference",
        "cxrfail.demo",
        "cxrfail.analysis.runner",
        "cxrfail.analysis.result",
        "cxrfail.export",
        "cxrfail.render",
        "cxrfail.report",
        "cxrfail.inference.workflow",
    ],
)
def test_public_modules_name_what_they_export(module):
    import importlib

    imported = importlib.import_module(module)
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ names {name}, which it lacks"
