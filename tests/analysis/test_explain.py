"""SHAP attributions of identifiers: additivity per learner, sampling, the long table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrfail.analysis.config import LEARNERS
from cxrfail.analysis.explain import LONG_COLUMNS, explained_output, shap_attributions, to_long
from cxrfail.analysis.identifiers import ConstantIdentifier, fit_identifier


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(3)
    n = 1500
    X = pd.DataFrame(
        {
            "p:Edema": rng.uniform(size=n),
            "age": rng.uniform(20, 90, size=n),
            "sex_male": rng.integers(0, 2, size=n).astype(float),
            "noise": rng.normal(size=n),
            "label:Support Devices": np.where(rng.random(n) < 0.7, np.nan, rng.integers(0, 2, size=n)),
            "label:Never Known": np.nan,  # a column with no known value: must not break any learner
        },
        index=pd.Index([f"img{i:04d}" for i in range(n)], name="image_id"),
    )
    X.loc[rng.random(n) < 0.1, "age"] = np.nan
    logit = -2.5 + 3.0 * (X["age"].fillna(50) > 70) + 1.5 * X["p:Edema"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


EXPECTED_SCALE = {"logistic": "log-odds", "random_forest": "probability", "hist_gradient_boosting": "log-odds"}


@pytest.mark.parametrize("learner", LEARNERS)
def test_shap_values_add_up_to_the_model_output(simulated, learner):
    X, y = simulated
    fitted = fit_identifier(X, y, learner, seed=0)
    attrs = shap_attributions(fitted, X, max_samples=200, seed=1)
    assert attrs.scale == EXPECTED_SCALE[learner]
    assert attrs.values.shape == (200, X.shape[1]) and attrs.feature_values.shape == (200, X.shape[1])
    assert list(attrs.values.columns) == list(X.columns)
    output = explained_output(fitted, attrs.feature_values)
    np.testing.assert_allclose(attrs.base_value + attrs.values.sum(axis=1).to_numpy(), output, atol=1e-4)
    # and the explained output is the model's own margin (or P(class 1) for the forest)
    proba = fitted.predict_proba(attrs.feature_values)[:, 1]
    if learner == "random_forest":
        np.testing.assert_allclose(output, proba, atol=1e-12)
    else:
        np.testing.assert_allclose(output, np.log(proba / (1 - proba)), atol=1e-8)
    # the informative feature dominates; the never-known one gets nothing
    assert attrs.mean_abs.index[0] in ("age", "p:Edema")
    assert attrs.mean_abs.is_monotonic_decreasing
    assert attrs.mean_abs["label:Never Known"] == pytest.approx(0.0, abs=1e-9)


def test_sample_is_capped_seeded_and_reports_raw_values(simulated):
    X, y = simulated
    fitted = fit_identifier(X, y, "hist_gradient_boosting", seed=0)
    first = shap_attributions(fitted, X, max_samples=100, seed=5)
    again = shap_attributions(fitted, X, max_samples=100, seed=5)
    other = shap_attributions(fitted, X, max_samples=100, seed=6)
    assert len(first.values) == 100
    assert first.values.index.equals(again.values.index)
    assert not first.values.index.equals(other.values.index)
    assert first.values.index.is_monotonic_increasing  # kept in the order of the features
    # raw values, NaN where unknown: not the imputed matrix
    pd.testing.assert_frame_equal(first.feature_values, X.loc[first.values.index])
    small = shap_attributions(fitted, X.iloc[:50], max_samples=100)
    assert len(small.values) == 50


def test_logistic_attribution_is_per_original_feature(simulated):
    X, y = simulated
    fitted = fit_identifier(X, y, "logistic", seed=0)
    attrs = shap_attributions(fitted, X, max_samples=300, background_size=100)
    # linear model: a feature's attribution is coef * (scaled value - background mean), so it is a linear
    # function of the feature's own (imputed) value and nothing else
    imputed_age = attrs.feature_values["age"].fillna(fitted.named_steps["impute"].statistics_[1])
    slope, intercept = np.polyfit(imputed_age, attrs.values["age"], 1)
    np.testing.assert_allclose(slope * imputed_age + intercept, attrs.values["age"], atol=1e-9)
    coef = fitted.named_steps["model"].coef_[0][1] / fitted.named_steps["scale"].scale_[1]
    assert slope == pytest.approx(coef)


def test_constant_identifier_has_nothing_to_explain(simulated):
    X, _ = simulated
    fitted = fit_identifier(X, np.zeros(len(X), dtype=int), "hist_gradient_boosting")
    assert isinstance(fitted, ConstantIdentifier)
    attrs = shap_attributions(fitted, X, max_samples=20)
    assert (attrs.values.to_numpy() == 0).all()
    assert attrs.base_value == 0.0 and "constant" in attrs.note


def test_features_must_match_the_fitted_columns(simulated):
    X, y = simulated
    fitted = fit_identifier(X, y, "random_forest")
    with pytest.raises(ValueError, match="columns"):
        shap_attributions(fitted, X.drop(columns="noise"))


def test_to_long(simulated):
    X, y = simulated
    fitted = fit_identifier(X, y, "hist_gradient_boosting")
    attrs = shap_attributions(fitted, X, max_samples=30)
    long = to_long(attrs, model="m1", finding="Edema")
    assert tuple(long.columns) == LONG_COLUMNS
    assert len(long) == 30 * X.shape[1]
    assert set(long["model"]) == {"m1"} and set(long["finding"]) == {"Edema"}
    some = long.iloc[7]
    assert some["shap_value"] == attrs.values.loc[some["image_id"], some["feature"]]
    expected = X.loc[some["image_id"], some["feature"]]
    assert some["feature_value"] == expected or (np.isnan(expected) and np.isnan(some["feature_value"]))
    wide = long.pivot(index="image_id", columns="feature", values="shap_value")
    pd.testing.assert_frame_equal(
        wide.loc[attrs.values.index, list(X.columns)],
        attrs.values,
        check_names=False,
        check_index_type=False,
        check_column_type=False,
    )


@pytest.mark.parametrize("learner", ["hist_gradient_boosting", "random_forest"])
def test_fold_models_are_explained_by_their_mean_attribution(simulated, learner):
    """The run's identifier is the mean of its fold models: their attributions are averaged, and add up to the
    mean of their outputs (for the forest, the ensemble's probability itself)."""
    from cxrfail.analysis.identifiers import fit_split_identifier
    from cxrfail.analysis.splits import patient_split

    X, y = simulated
    patients = np.repeat(np.arange(len(X) // 3), 3).astype(str)
    fitted = fit_split_identifier(X, y, patients, patient_split(patients, 0.5, seed=0), learner=learner, n_folds=3)
    attrs = shap_attributions(fitted.fold_models, X, max_samples=100, seed=2)
    parts = [shap_attributions(model, X, max_samples=100, seed=2) for model in fitted.fold_models]
    np.testing.assert_allclose(attrs.values.to_numpy(), np.mean([p.values.to_numpy() for p in parts], axis=0))
    output = explained_output(fitted.fold_models, attrs.feature_values)
    np.testing.assert_allclose(attrs.base_value + attrs.values.sum(axis=1).to_numpy(), output, atol=1e-4)
    if learner == "random_forest":
        from cxrfail.analysis.identifiers import predict_identifier

        mean_probability = np.mean([predict_identifier(m, attrs.feature_values) for m in fitted.fold_models], axis=0)
        np.testing.assert_allclose(output, mean_probability, atol=1e-12)
    assert attrs.method.startswith("mean over 3 fold models")


def test_own_output_share():
    from cxrfail.analysis.explain import own_output_share

    shap = pd.DataFrame(
        {
            "model": ["m1"] * 4 + ["m2"] * 2,
            "finding": ["Edema"] * 6,
            "image_id": ["a", "a", "b", "b", "a", "a"],
            "feature": ["p:Edema", "age", "p:Edema", "age", "p:m2:Edema", "p:m1:Edema"],
            "shap_value": [0.6, -0.2, -0.2, 0.0, 0.3, -0.1],
            "feature_value": [0.1] * 6,
        }
    )
    share = own_output_share(shap).set_index("model")
    assert share.loc["m1", "own_share"] == pytest.approx(0.8 / 1.0)
    assert share.loc["m2", "own_share"] == pytest.approx(0.3 / 0.4)  # m1's output is not m2's own
    assert share.loc["m1", "n_rows"] == 2 and share.loc["m2", "own_features"] == "p:m2:Edema"
    assert own_output_share(shap.iloc[0:0]).empty
