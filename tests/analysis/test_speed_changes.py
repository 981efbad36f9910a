"""Faster per-pair computations changed how some numbers are computed, not what they estimate. These tests
compute the earlier way with the library's own functions and check, on the real demo, that the new
numbers stay within the earlier ones' own 95% CIs (and the model's AUROC exactly):

- identifiers: gradient boosting 40 rounds at learning rate 0.225 instead of 200 at 0.05 (both cross-fitted on
  the calibration split and judged on the test split);
- the flip verdict: the same procedure with the cheaper learner;
- patient bootstraps of rates, shares and F1 changes: a multinomial over distinct per-patient counts, the same
  distribution as drawing patients;
- identifier AUROC intervals: the analytic clustered (DeLong) interval on large pairs instead of the bootstrap.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from cxrfail.analysis.auroc_intervals import bootstrap_auroc_set, clustered_auroc_set
from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.flip import run_flipping
from cxrfail.analysis.identifiers import FillEmptyColumns, build_features, evaluate_identifier
from cxrfail.analysis.outcomes import classify
from cxrfail.analysis.resampling import patient_weights, resample_patterns
from cxrfail.analysis.runner import run_analysis
from cxrfail.analysis.splits import patient_split
from cxrfail.analysis.thresholds import choose_threshold

MODEL, FINDINGS = "densenet121_jrzech", ("Edema", "Consolidation")


def earlier_learner() -> Pipeline:
    """The gradient boosting of the earlier default: 200 rounds at learning rate 0.05."""
    return Pipeline(
        [
            ("fill_empty", FillEmptyColumns()),
            (
                "model",
                HistGradientBoostingClassifier(
                    max_iter=200,
                    learning_rate=0.05,
                    max_leaf_nodes=15,
                    min_samples_leaf=40,
                    l2_regularization=1.0,
                    early_stopping=False,
                    random_state=0,
                ),
            ),
        ]
    )


@pytest.fixture(scope="module")
def demo_run(demo_cohort, demo_models):
    models = [model for model in demo_models if model.name == MODEL]
    config = AnalysisConfig(findings=FINDINGS)
    return run_analysis(demo_cohort, models, config, use_cache=False, n_jobs=1), config


def _pair_inputs(demo_cohort, demo_models, finding: str, threshold: float):
    table = demo_cohort.table
    rows = table.loc[table[finding].notna()]
    probabilities = {m.name: m.probabilities.loc[rows.index] for m in demo_models if m.name == MODEL}
    y = rows[finding].to_numpy(dtype=int)
    probability = probabilities[MODEL][finding].to_numpy()
    patients = rows["patient_id"].to_numpy(dtype=object)
    outcome = classify(y, probability, threshold)
    return dict(
        features=build_features(rows, probabilities, MODEL, finding, "own+demographics"),
        y=y,
        probability=probability,
        patients=patients,
        split=patient_split(patients, 0.5, seed=0),
        prediction=outcome["prediction"].to_numpy(),
        misclassified=outcome["misclassified"].to_numpy(),
    )


@pytest.mark.slow
@pytest.mark.parametrize("finding", FINDINGS)
def test_demo_results_stay_within_the_earlier_intervals(demo_run, demo_cohort, demo_models, finding):
    result, config = demo_run
    pair = result.pair(MODEL, finding)
    d = _pair_inputs(demo_cohort, demo_models, finding, pair.threshold)
    # the model's AUROC and threshold: untouched, exactly
    assert pair.performance["auroc"] == roc_auc_score(d["y"], d["probability"])
    calibration = d["split"] == "calibration"
    assert pair.threshold == choose_threshold(d["y"][calibration], d["probability"][calibration]).threshold

    earlier = evaluate_identifier(
        d["features"],
        d["misclassified"],
        d["patients"],
        d["split"],
        learner=earlier_learner(),
        feature_set="own+demographics",
        n_bootstrap=config.n_bootstrap,
        probability=d["probability"],
        threshold=pair.threshold,
        auroc_interval="bootstrap",
    )
    now = pair.identifier_evaluation(*pair.identifier)
    print(
        f"\n{finding}: identifier AUROC {now['auroc']:.4f} [{now['ci_low']:.4f}, {now['ci_high']:.4f}] "
        f"({now['ci_method']}); earlier {earlier.auroc:.4f} [{earlier.ci_low:.4f}, {earlier.ci_high:.4f}]"
    )
    assert now["ci_method"] == "bootstrap"  # 22k rows: below the analytic threshold
    assert earlier.ci_low <= now["auroc"] <= earlier.ci_high
    assert now["ci_low"] <= earlier.auroc <= now["ci_high"]
    assert earlier.baseline_ci_low <= now["baseline_auroc"] <= earlier.baseline_ci_high
    assert earlier.delta_vs_baseline_ci_low <= now["delta_vs_baseline"] <= earlier.delta_vs_baseline_ci_high

    flip = pair.flip
    earlier_flip = run_flipping(
        d["features"],
        d["y"],
        d["prediction"],
        d["misclassified"],
        d["patients"],
        d["split"],
        feature_set="own+demographics",
        learner=earlier_learner(),
        n_bootstrap=config.n_bootstrap,
        min_calibration_flips=config.min_calibration_flips,
    )
    before = earlier_flip.test_evaluation
    print(
        f"{finding}: flip ΔF1 {flip['delta_f1']:+.4f} [{flip['ci_low']:+.4f}, {flip['ci_high']:+.4f}], "
        f"{flip['n_flips']} flips; earlier {before.delta_f1:+.4f} [{before.ci_low:+.4f}, {before.ci_high:+.4f}], "
        f"{before.n_flips} flips"
    )
    assert before.ci_low - 1e-12 <= flip["delta_f1"] <= before.ci_high + 1e-12
    assert flip["f1_before"] == pytest.approx(before.f1_before, abs=1e-12)


@pytest.mark.slow
def test_demo_analytic_auroc_interval_agrees_with_the_bootstrap(demo_run, demo_cohort, demo_models):
    result, config = demo_run
    pair = result.pair(MODEL, "Edema")
    scores = pair.identifier_scores(*pair.identifier)  # the test rows
    outcomes = pair.outcomes.set_index("image_id").loc[scores["image_id"]]
    y = scores["misclassified"].to_numpy(dtype=int)
    baseline = -np.abs(outcomes["probability"].to_numpy() - outcomes["threshold"].to_numpy())
    values = {"identifier": scores["identifier_score"].to_numpy(), "baseline": baseline}
    patients = outcomes["patient_id"].to_numpy()
    analytic = clustered_auroc_set(y, values, patients)
    bootstrap = bootstrap_auroc_set(y, values, patients, n_replicates=4000, seed=1)
    for which in ("identifier", "baseline"):
        a, b = analytic.interval(which), bootstrap.interval(which)
        assert a.estimate == pytest.approx(b.estimate, abs=1e-12)
        width = b.ci_high - b.ci_low
        assert abs(a.ci_low - b.ci_low) < 0.15 * width and abs(a.ci_high - b.ci_high) < 0.15 * width, (which, a, b)
    a, b = analytic.difference("identifier", "baseline"), bootstrap.difference("identifier", "baseline")
    width = b.ci_high - b.ci_low
    assert abs(a.ci_low - b.ci_low) < 0.15 * width and abs(a.ci_high - b.ci_high) < 0.15 * width


def test_pattern_resampling_has_the_distribution_of_drawing_patients():
    """Sums over resampled patients: a multinomial over distinct per-patient count rows against drawing the
    patients themselves (`patient_weights`): the same mean, variance and quantiles up to Monte Carlo error."""
    rng = np.random.default_rng(5)
    rows = rng.integers(1, 6, size=3000)
    events = rng.binomial(rows, rng.beta(1, 6, size=3000))
    counts = np.column_stack([events, rows]).astype(float)
    patterns = resample_patterns(counts, 20000, np.random.default_rng(1))
    direct = np.vstack([w.astype(float) @ counts for w in patient_weights(3000, 20000, np.random.default_rng(2), 500)])
    for drawn in (patterns, direct):
        assert np.all(drawn[:, 1] > 0)
    ratio_patterns, ratio_direct = patterns[:, 0] / patterns[:, 1], direct[:, 0] / direct[:, 1]
    sd = ratio_direct.std()
    assert abs(ratio_patterns.mean() - ratio_direct.mean()) < 0.05 * sd
    assert ratio_patterns.std() == pytest.approx(sd, rel=0.05)
    np.testing.assert_allclose(
        np.quantile(ratio_patterns, [0.025, 0.975]), np.quantile(ratio_direct, [0.025, 0.975]), atol=0.1 * sd
    )
