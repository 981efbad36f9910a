"""`run_analysis` hands each pair over as it finishes (``on_pair``) with a provisional result of the pairs done,
and can compute one finding's pairs first (``first_finding``); neither changes the final result."""

from __future__ import annotations

import pandas as pd
import pytest

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.result import TABLE_NAMES, PairResult
from cxrfail.analysis.runner import run_analysis

MODELS = ("densenet121_jrzech", "densenet121_1epoch")
FINDINGS = ("Edema", "Cardiomegaly")
CONFIG = AnalysisConfig(findings=FINDINGS, n_bootstrap=200, shap_max_samples=100, n_folds=3)


@pytest.fixture(scope="module")
def models(demo_models):
    return [model for model in demo_models if model.name in MODELS]


@pytest.fixture(scope="module")
def plain_run(demo_cohort, models):
    return run_analysis(demo_cohort, models, CONFIG, use_cache=False, n_jobs=1)


@pytest.fixture(scope="module")
def streamed_run(demo_cohort, models):
    """The same run with the last finding first, recording every pair and run-so-far as they arrive."""
    arrived = []
    result = run_analysis(
        demo_cohort,
        models,
        CONFIG,
        use_cache=False,
        n_jobs=1,
        first_finding=FINDINGS[-1],
        on_pair=lambda pair, so_far: arrived.append((pair, so_far)),
    )
    return result, arrived


def test_the_first_finding_is_computed_first_and_each_pair_arrives_once(streamed_run, models):
    _, arrived = streamed_run
    order = [(pair.model, pair.finding) for pair, _ in arrived]
    names = [model.name for model in models]
    assert order == [(m, FINDINGS[-1]) for m in names] + [(m, FINDINGS[0]) for m in names]
    assert [len(so_far.finished) for _, so_far in arrived] == [1, 2, 3, 4]


def test_the_hook_and_the_order_leave_the_result_unchanged(plain_run, streamed_run):
    streamed, _ = streamed_run
    assert list(streamed.pairs) == list(plain_run.pairs)  # run order, whatever the computing order
    assert not streamed.provisional and not plain_run.provisional
    assert streamed.cache_key == plain_run.cache_key
    assert streamed.notes == plain_run.notes and "provisional" not in streamed.notes
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(streamed.table(name), plain_run.table(name), obj=name)


def test_a_provisional_result_has_the_final_numbers_of_the_pairs_done(plain_run, streamed_run):
    _, arrived = streamed_run
    pair, so_far = arrived[0]
    assert isinstance(pair, PairResult)
    early = so_far.result()
    assert early.provisional
    assert list(early.pairs) == [(pair.model, pair.finding)]
    assert set(early.missing) == set(plain_run.pairs) - {(pair.model, pair.finding)}
    assert "1 of 4 model × finding pairs done" in early.notes["provisional"]
    assert early.cohort_summary == plain_run.cohort_summary
    assert early.cache_key not in (None, plain_run.cache_key, arrived[1][1].result().cache_key)
    final_pair = plain_run.pair(pair.model, pair.finding)
    for name in ("performance", "subgroup_rates", "regression", "identifiers", "flip"):
        pd.testing.assert_frame_equal(early.pair(pair.model, pair.finding).table(name), final_pair.table(name))
    # slices: every column but the grid-wide q-value (over the pairs present) is final
    slices = early.pair(pair.model, pair.finding).slices.drop(columns="q_value_grid")
    pd.testing.assert_frame_equal(slices, final_pair.slices.drop(columns="q_value_grid"))
    last = arrived[-1][1].result()
    assert not last.provisional and last.cache_key == plain_run.cache_key
    pd.testing.assert_frame_equal(last.table("slices"), plain_run.table("slices"))
