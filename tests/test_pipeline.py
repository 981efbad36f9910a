"""The whole analysis on the real demo data (two models, two findings, a light config), checked against
independent computations: scikit-learn's AUROC, the calibration-only threshold, patient-disjoint splits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.runner import cache_key, run_analysis
from cxrfail.analysis.thresholds import choose_threshold
from cxrfail.errors import CohortError, ConfigError, PredictionsError

LIGHT = AnalysisConfig(
    findings=("Edema", "Consolidation"),
    learners=("logistic",),
    feature_sets=("probability_only", "own+demographics"),
    n_bootstrap=200,
    shap_max_samples=100,
    n_folds=3,
)


@pytest.fixture(scope="module")
def two_models(demo_models):
    return [demo_models[1], demo_models[0]]


@pytest.fixture(scope="module")
def light_result(demo_cohort, two_models, tmp_path_factory):
    messages = []
    result = run_analysis(
        demo_cohort,
        two_models,
        LIGHT,
        cache_dir=tmp_path_factory.mktemp("cache"),
        progress=lambda fraction, message: messages.append((fraction, message)),
    )
    result.progress_messages = messages
    return result


def test_every_table_covers_every_model_and_finding(light_result, two_models):
    pairs = {(m.name, f) for m in two_models for f in LIGHT.findings}
    for name in (
        "performance",
        "subgroup_rates",
        "regression",
        "identifiers",
        "flip",
        "flip_curves",
        "outcomes",
        "identifier_scores",
        "shap_values",
    ):
        table = getattr(light_result, name)
        assert set(zip(table["model"], table["finding"])) == pairs, name
    assert light_result.progress_messages[-1][0] == 1.0
    # bootstrap resamples left out of the identifier intervals (one class) are counted beside them
    identifiers = light_result.identifiers
    assert (identifiers["ci_method"] == "bootstrap").all()
    assert identifiers["n_replicates_dropped"].between(0, LIGHT.n_bootstrap).all()
    fractions = [fraction for fraction, _ in light_result.progress_messages]
    assert fractions == sorted(fractions)


def test_auroc_equals_sklearn_on_every_image(light_result, demo_cohort, two_models):
    for model in two_models:
        for finding in LIGHT.findings:
            row = light_result.performance.query("model == @model.name and finding == @finding").iloc[0]
            expected = roc_auc_score(
                demo_cohort.table[finding], model.probabilities.loc[demo_cohort.table.index, finding]
            )
            assert row["auroc"] == pytest.approx(expected, abs=1e-12)
            assert row["n"] == 22433


def test_threshold_is_chosen_on_calibration_and_f1_reported_on_test(light_result):
    outcomes = light_result.outcomes
    for (model, finding), rows in outcomes.groupby(["model", "finding"]):
        calibration = rows[rows["split"] == "calibration"]
        test = rows[rows["split"] == "test"]
        expected = choose_threshold(calibration["label"].to_numpy(), calibration["probability"].to_numpy()).threshold
        assert rows["threshold"].unique().tolist() == [expected]
        f1 = light_result.rows("performance", model=model, finding=finding)["f1"].item()
        assert f1 == pytest.approx(f1_score(test["label"], test["prediction"]))
        assert (rows["misclassified"] == (rows["prediction"] != rows["label"])).all()


def test_splits_never_share_a_patient(light_result):
    splits_per_patient = light_result.outcomes.groupby("patient_id")["split"].nunique()
    assert splits_per_patient.max() == 1
    assert set(light_result.outcomes["split"]) == {"calibration", "test"}


def test_subgroups_are_on_test_rows_and_devices_only_on_annotated_images(light_result, demo_cohort):
    everything = light_result.subgroup_rates
    outcomes = light_result.outcomes
    for (model, finding), with_reference in everything.groupby(["model", "finding"]):
        reference = with_reference[with_reference["is_reference"]]
        rows = with_reference[~with_reference["is_reference"]]
        n_test = ((outcomes["model"] == model) & (outcomes["finding"] == finding) & (outcomes["split"] == "test")).sum()
        assert rows.query("subgroup == 'sex'")["n"].sum() == n_test
        devices = rows.query("subgroup == 'Support Devices'")
        test_ids = outcomes.query("model == @model and finding == @finding and split == 'test'")["image_id"]
        annotated = demo_cohort.table.loc[test_ids, "Support Devices"].notna().sum()
        assert devices["n"].sum() == annotated < 621
        # the support-device subset carries its own reference row: the subset's rate, marked not random
        own = reference[reference["subgroup"] == "Support Devices"].iloc[0]
        assert own["n"] == annotated and own["is_subset"] and not own["random_sample"]
        assert own["rate"] == pytest.approx(devices["n_misclassified"].sum() / annotated)
        assert (rows["ci_low"] <= rows["rate"]).all() and (rows["rate"] <= rows["ci_high"]).all()
        assert (with_reference["ci_high"] > with_reference["ci_low"]).all()  # no zero-width interval anywhere
        events = np.minimum(rows["n_misclassified"], rows["n"] - rows["n_misclassified"])
        assert (
            rows["sufficient"]
            == (
                (rows["effective_n"] >= LIGHT.min_subgroup_n)
                & (rows["n_patients"] >= LIGHT.min_subgroup_patients)
                & (events >= LIGHT.min_subgroup_events)
            )
        ).all()
        # the oldest patients (74 test images of 28 patients, one with 22) are too few to read a rate from
        oldest = rows.query("subgroup == 'age' and level == '>=80'").iloc[0]
        assert oldest["n_patients"] == 28 and not oldest["sufficient"]
        if finding == "Edema":  # no Edema error among them: the bound on 28 patients, not [0, 0]
            assert oldest["n_misclassified"] == 0 and oldest["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 28))


def test_regression_adjusts_within_each_fit_and_fits_devices_on_annotated_rows(light_result):
    regression = light_result.regression.dropna(subset=["p_value"])
    assert (regression["q_holm"] >= regression["p_value"] - 1e-15).all()
    assert (regression["q_bh"] >= regression["p_value"] - 1e-15).all()
    assert (regression["q_holm"] >= regression["q_bh"] - 1e-15).all()
    devices = light_result.regression[light_result.regression["family"].str.contains("Support Devices")]
    assert not devices.empty and (devices["n"] < 621).all()
    # each family is one fit of one pair, named in full: no term is tested twice within a family
    for name, family in regression.groupby("q_family"):
        assert not family.duplicated(["model", "finding", "term"]).any()
        ((model, finding, fit),) = family[["model", "finding", "family"]].drop_duplicates().itertuples(index=False)
        assert name == f"{model} · {finding} · test split, {fit}"
    assert "age (per 10 years)" in set(light_result.regression["term"])


def test_q_values_of_a_pair_do_not_depend_on_the_rest_of_the_run(light_result, demo_cohort, two_models, tmp_path):
    # the dashboard's first screen runs one finding ("core" scope); its q-values are the full run's
    alone = run_analysis(
        demo_cohort, two_models, replace(LIGHT, findings=("Consolidation",)), scope="core", cache_dir=tmp_path, n_jobs=1
    )
    for model in two_models:
        for name in ("regression", "subgroup_rates"):
            mine, full = (
                run.pair(model.name, "Consolidation").table(name).reset_index(drop=True)
                for run in (alone, light_result)
            )
            pd.testing.assert_frame_equal(mine, full)


def test_flip_outcomes_follow_tau_row_by_row(light_result):
    for (model, finding), rows in light_result.outcomes.groupby(["model", "finding"], observed=True):
        tau = light_result.flip.query("model == @model and finding == @finding")["tau"].item()
        # every row, calibration and test: flipped exactly when its own identifier score >= tau
        flipped_all = rows["identifier_probability"] >= tau
        assert (rows["flipped_prediction"] == np.where(flipped_all, 1 - rows["prediction"], rows["prediction"])).all()
        pair = light_result.pair(model, finding)
        for image_id, expected in zip(rows["image_id"].iloc[::500], flipped_all.iloc[::500]):
            assert pair.flipped(image_id) == bool(expected)
        test = rows[rows["split"] == "test"]
        flipped = test["identifier_probability"] >= tau
        row = light_result.flip.query("model == @model and finding == @finding").iloc[0]
        calibration = rows[rows["split"] == "calibration"]
        assert row["calibration_flips"] == (calibration["identifier_probability"] >= tau).sum()
        assert row["calibration_flips"] == 0 or row["calibration_flips"] >= LIGHT.min_calibration_flips
        curve = light_result.flip_curves.query("model == @model and finding == @finding")
        assert curve.loc[~curve["exploratory"].astype(bool), "tau"].tolist() == [tau]
        assert row["n_flips"] == flipped.sum()
        assert row["delta_f1"] == pytest.approx(
            f1_score(test["label"], test["flipped_prediction"]) - f1_score(test["label"], test["prediction"])
        )
        assert bool(row["improved"]) == (row["ci_low"] > 0) and not row["exploratory"]
        assert row["feature_set"] == "own+demographics" and not row["oracle"]


def test_identifiers_are_a_ladder_judged_on_the_test_split(light_result):
    identifiers = light_result.identifiers
    outcomes = light_result.outcomes
    for (model, finding), rows in identifiers.groupby(["model", "finding"]):  # noqa: B007 (used in queries)
        assert rows["feature_set"].tolist() == ["probability_only", "own+demographics"]
        reference, richer = rows.iloc[0], rows.iloc[1]
        assert reference["delta_vs_probability_only"] == 0.0
        assert richer["delta_vs_probability_only"] == pytest.approx(richer["auroc"] - reference["auroc"])
        assert (
            richer["delta_vs_probability_only_ci_low"]
            <= richer["delta_vs_probability_only"]
            <= richer["delta_vs_probability_only_ci_high"]
        )
        test = outcomes.query("model == @model and finding == @finding and split == 'test'")
        assert (rows["n"] == len(test)).all() and (rows["n_patients"] == test["patient_id"].nunique()).all()
        # the run identifier's AUROC is that of the test rows' scores in outcomes
        assert richer["auroc"] == pytest.approx(roc_auc_score(test["misclassified"], test["identifier_probability"]))
        scores = light_result.identifier_scores.query("model == @model and finding == @finding")
        assert len(scores) == 2 * len(test)


def test_second_run_is_served_from_cache_and_a_changed_parameter_is_not(demo_cohort, two_models, tmp_path):
    config = replace(LIGHT, findings=("Edema",))
    first = run_analysis(demo_cohort, two_models[:1], config, cache_dir=tmp_path)
    messages = []
    second = run_analysis(
        demo_cohort, two_models[:1], config, cache_dir=tmp_path, progress=lambda f, m: messages.append(m)
    )
    assert messages == ["loaded from cache"]
    pd.testing.assert_frame_equal(first.performance, second.performance)
    pd.testing.assert_frame_equal(first.outcomes, second.outcomes)
    assert cache_key(demo_cohort, two_models[:1], config) != cache_key(
        demo_cohort, two_models[:1], replace(config, seed=1)
    )


def test_bad_configs_are_refused_before_work(demo_cohort, two_models):
    with pytest.raises(CohortError, match="no labels for Fracture"):
        run_analysis(demo_cohort, two_models, replace(LIGHT, findings=("Fracture",)), use_cache=False)
    with pytest.raises(ConfigError, match="learners has unknown value 'svm'"):  # refused when the config is made
        replace(LIGHT, learners=("svm",))
    with pytest.raises(PredictionsError, match="model names repeat"):
        run_analysis(demo_cohort, [two_models[0], two_models[0]], LIGHT, use_cache=False)


def test_pair_results_answer_per_pair_and_stack_into_the_long_tables(light_result, two_models):
    from cxrfail.analysis.result import TABLE_NAMES

    assert list(light_result.pairs) == [(m.name, f) for m in two_models for f in LIGHT.findings]
    for name in TABLE_NAMES:
        stacked = pd.concat([pair.table(name) for pair in light_result], ignore_index=True)
        pd.testing.assert_frame_equal(light_result.table(name), stacked)
    pair = light_result.pair(two_models[0].name, "Edema")
    assert set(pair.outcomes_in("test")["split"]) == {"test"}
    overall = pair.overall
    test = pair.outcomes_in("test")
    assert overall["n"] == len(test) and overall["n_misclassified"] == int(test["misclassified"].sum())
    assert overall["n_fp"] + overall["n_fn"] == overall["n_misclassified"]
    # the headline rate carries the patient-clustered interval of every subgroup rate (the view reference row is
    # the same rows), wider than Wilson's on rows
    view = pair.subgroup_rates.query("subgroup == 'view' and is_reference").iloc[0]
    assert view["n"] == overall["n"]
    assert (overall["ci_low"], overall["ci_high"]) == pytest.approx((view["ci_low"], view["ci_high"]), abs=1e-12)
    assert overall["ci_high"] - overall["ci_low"] > view["wilson_high"] - view["wilson_low"]
    assert pair.flip["tau"] == pair.chosen_tau and "test_tau" not in pair.flip
    # the verdict row is the live evaluation at the chosen tau, with the run's seed and bootstrap
    live = light_result.evaluate_flip(pair.model, pair.finding, pair.chosen_tau)
    assert live.delta_f1 == pytest.approx(pair.flip["delta_f1"]) and live.n_flips == pair.flip["n_flips"]
    # every pair's verdict row is the live evaluation at the chosen tau, with the run's seed and bootstrap: a
    # verdict, not exploratory, whether the choice flips rows or nothing
    for each in light_result:
        flip = each.flip
        live = light_result.evaluate_flip(each.model, each.finding, each.chosen_tau)
        assert not live.exploratory and live.improved == flip["improved"]
        assert live.delta_f1 == pytest.approx(flip["delta_f1"]) and live.n_flips == flip["n_flips"]
        assert (live.n_flips == 0) == each.flips_nothing
    with pytest.raises(KeyError, match="no pair"):
        light_result.pair("absent", "Edema")


def test_result_rebuilt_from_its_tables_is_the_same(light_result):
    from cxrfail.analysis.result import TABLE_NAMES, AnalysisResult

    tables = {name: light_result.table(name) for name in TABLE_NAMES}
    rebuilt = AnalysisResult.from_tables(light_result.config, light_result.cache_key, tables, light_result.meta())
    assert list(rebuilt.pairs) == list(light_result.pairs)
    for key, pair in light_result.pairs.items():
        for name in TABLE_NAMES:
            pd.testing.assert_frame_equal(
                rebuilt.pair(*key).table(name).reset_index(drop=True),
                pair.table(name).reset_index(drop=True),
                check_dtype=False,
            )
        assert rebuilt.pair(*key).identifier == pair.identifier


def test_refitted_identifier_reproduces_the_run_and_explains_any_row(light_result, demo_cohort, two_models):
    from cxrfail.analysis.explain import refit_pair_identifier

    pair = light_result.pair(two_models[1].name, "Consolidation")
    probabilities = {m.name: m.probabilities for m in two_models}
    identifier = refit_pair_identifier(pair, demo_cohort.table, probabilities, light_result.config)
    assert identifier.refit_gap < 1e-9
    calibration_row = pair.outcomes_in("calibration")["image_id"].iloc[0]
    values, attrs = identifier.explain(calibration_row)
    assert list(values.index) == [calibration_row]
    features = identifier.features.loc[[calibration_row]]
    from cxrfail.analysis.explain import explained_output

    assert attrs.base_value + values.sum(axis=1).iloc[0] == pytest.approx(
        explained_output(identifier.fitted, features)[0], abs=1e-6
    )


def test_rates_by_any_cohort_column_cover_the_test_rows(light_result, demo_cohort, two_models):
    pair = light_result.pair(two_models[0].name, "Edema")
    everything = light_result.rates_by(pair.model, pair.finding, demo_cohort.table, "age")  # cut into quartiles
    rates = everything[~everything["is_reference"]]
    assert len(rates) == 4 and set(rates["subgroup"]) == {"age"}
    assert everything.loc[everything["is_reference"], "n"].item() == len(pair.outcomes_in("test"))
    assert rates["n"].sum() == len(pair.outcomes_in("test"))
    assert rates["n_misclassified"].sum() == int(pair.outcomes_in("test")["misclassified"].sum())


def _string_buffers(column: pd.Series) -> set[int]:
    """Addresses of the Arrow data buffers behind a string column."""
    return {chunk.buffers()[2].address for chunk in column.array.__arrow_array__().chunks}


def test_pairs_of_one_finding_share_one_copy_of_their_row_ids(light_result, demo_cohort, two_models):
    """The pairs come back from worker processes each with its own copy of the ids; the run keeps one copy per
    finding (at CheXpert scale, ~1 GB over 50 pairs)."""
    for finding in LIGHT.findings:
        first, second = (light_result.pair(model.name, finding) for model in two_models)
        known = demo_cohort.table[finding].notna()
        assert first.outcomes["image_id"].tolist() == demo_cohort.table.index[known].tolist()
        assert first.outcomes["patient_id"].tolist() == demo_cohort.table.loc[known, "patient_id"].tolist()
        for name, column in (("outcomes", "image_id"), ("outcomes", "patient_id"), ("identifier_scores", "image_id")):
            assert _string_buffers(first.table(name)[column]) == _string_buffers(second.table(name)[column])
