"""SHAP attributions of a fitted misclassification identifier: which features make it call a row "wrong".

Scales (``ShapAttributions.scale``): for HistGradientBoosting and logistic regression the attributions are on
the **log-odds** (margin, ``decision_function``) scale; for a random forest TreeSHAP explains the averaged
tree votes, i.e. the **probability** of the positive class (``predict_proba[:, 1]``). Either way
``base_value + values.sum(axis=1)`` equals `explained_output` (the additivity the tests check).

Explainers:
- tree models (HistGradientBoosting, random forest): ``shap.TreeExplainer`` with path-dependent perturbation
  (no background data; exact and fast: ~0.5 s for HGB and ~3 s for the random forest on 500 rows). For a
  scikit-learn ``Pipeline`` the final estimator is explained on the transformed (imputed) matrix; imputation
  is per feature, so attributions stay per original feature, and ``feature_values`` reports the raw values
  (NaN where the value was unknown and imputed).
- logistic regression: ``shap.LinearExplainer`` on the standardised matrix with an independent masker over
  ``background_size`` rows: value = coef * (z - mean background z), one per original feature.
- anything else: ``shap.PermutationExplainer`` on the model's log-odds with a ``background_size`` background
  (slower; ``method`` says so).

Rows are sampled (``max_samples``, without replacement, seeded) so a 22k-row cohort takes seconds.

The run's identifier is cross-fitted (`cxrfail.analysis.identifiers.SplitIdentifier`): test rows are scored by
the mean of its fold models. Given the fold models, `shap_attributions` averages their attributions (the same
rows, one explainer each): additive to the mean of the fold models' outputs (`explained_output`), which for a
random forest is the ensemble's probability itself and for log-odds learners the mean log-odds.

`own_output_share` says how much of the attribution the analysed model's own outputs carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from cxrfail.analysis.identifiers import OPENMP_THREADS, ConstantIdentifier, feature_frame, own_output_columns

LONG_COLUMNS = ("model", "finding", "image_id", "feature", "shap_value", "feature_value")


@dataclass
class ShapAttributions:
    """SHAP values of a sample of rows.

    Attributes:
        values: (sampled rows x features) SHAP values on ``scale``; index the rows' ids.
        feature_values: same shape: the raw feature values (NaN = unknown, before any imputation).
        base_value: the explainer's expected output (same scale).
        mean_abs: mean |SHAP value| per feature, sorted descending (a global importance).
        scale: ``"log-odds"`` or ``"probability"``.
        method: the explainer used.
        note: caveats (e.g. a constant identifier has nothing to explain).
    """

    values: pd.DataFrame
    feature_values: pd.DataFrame
    base_value: float
    mean_abs: pd.Series
    scale: str
    method: str
    note: str | None = None


def _split_pipeline(fitted):
    """(transform callable, final estimator) of a fitted estimator or Pipeline."""
    if isinstance(fitted, Pipeline):
        head = fitted[:-1]
        return (lambda X: np.asarray(head.transform(X), dtype="float64")), fitted[-1]
    return (lambda X: X.to_numpy(dtype="float64")), fitted


def _kind(estimator) -> str:
    name = type(estimator).__name__
    if name in ("HistGradientBoostingClassifier",):
        return "hgb"
    if name in ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier"):
        return "forest"
    if name in ("LogisticRegression",):
        return "linear"
    return "other"


def _positive_column(classes) -> int:
    classes = list(classes)
    if 1 not in classes:
        raise ValueError(f"the identifier was not fitted with class 1 (classes {classes})")
    return classes.index(1)


def explained_output(fitted, features) -> np.ndarray:
    """(n,) the output the attributions add up to: log-odds for HGB/logistic/other, P(class 1) for forests;
    for a sequence of fold models, the mean of theirs."""
    X = feature_frame(features)
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        if isinstance(fitted, (list, tuple)):
            return np.mean([_explained_output(model, X) for model in fitted], axis=0)
        return _explained_output(fitted, X)


def _explained_output(fitted, X: pd.DataFrame) -> np.ndarray:
    if isinstance(fitted, ConstantIdentifier):
        return fitted.predict_proba(X)[:, 1]
    _, final = _split_pipeline(fitted)
    if _kind(final) == "forest":
        return fitted.predict_proba(X)[:, _positive_column(fitted.classes_)]
    if hasattr(fitted, "decision_function"):
        return np.asarray(fitted.decision_function(X), dtype="float64").ravel()
    p = np.clip(fitted.predict_proba(X)[:, _positive_column(fitted.classes_)], 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def shap_attributions(
    fitted, features, *, max_samples: int = 500, seed: int = 0, background_size: int = 100
) -> ShapAttributions:
    """SHAP attributions of ``fitted`` (from `cxrfail.analysis.identifiers.fit_identifier`) on a row sample.

    Args:
        fitted: the fitted identifier (HGB, a random-forest or logistic Pipeline, or a `ConstantIdentifier`),
            or a sequence of such fold models (`SplitIdentifier.fold_models`): their attributions are averaged.
        features: (n, k) feature DataFrame with the columns the identifier was fitted on.
        max_samples: at most this many rows are explained (a seeded sample without replacement, kept in
            the order of ``features``).
        seed: seed of the row and background samples.
        background_size: rows (sampled from all of ``features``) forming the background of the linear and
            permutation explainers; tree explainers need none.

    Returns:
        `ShapAttributions`; see the module docstring for the scale of each learner.
    """
    if isinstance(fitted, (list, tuple)):
        return _mean_attributions(
            [
                shap_attributions(model, features, max_samples=max_samples, seed=seed, background_size=background_size)
                for model in fitted
            ]
        )
    import shap

    X = feature_frame(features)
    if hasattr(fitted, "feature_names_in_") and list(fitted.feature_names_in_) != list(X.columns):
        raise ValueError(
            "features do not have the columns the identifier was fitted on "
            f"({len(X.columns)} given, {len(fitted.feature_names_in_)} expected)"
        )
    rng = np.random.default_rng(seed)
    if len(X) > max_samples:
        rows = np.sort(rng.choice(len(X), size=int(max_samples), replace=False))
        sample = X.iloc[rows]
    else:
        sample = X
    if len(X) > background_size:
        background_rows = np.sort(rng.choice(len(X), size=int(background_size), replace=False))
    else:
        background_rows = np.arange(len(X))

    note = None
    if isinstance(fitted, ConstantIdentifier):
        values = np.zeros(sample.shape)
        base = float(fitted.probability)
        scale, method = "probability", "constant identifier"
        note = "the identifier was fitted on a single class and predicts a constant: every attribution is 0"
    else:
        transform, final = _split_pipeline(fitted)
        Z = transform(sample)
        if Z.shape[1] != X.shape[1]:
            raise ValueError(
                f"the pipeline's transform changes the number of features ({X.shape[1]} -> "
                f"{Z.shape[1]}); attributions could not be mapped back to features"
            )
        kind = _kind(final)
        if kind in ("hgb", "forest"):
            explainer = shap.TreeExplainer(final)
            raw = np.asarray(explainer.shap_values(Z, check_additivity=True))
            expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype="float64"))
            if raw.ndim == 3:  # (rows, features, classes): forests explain each class's probability
                column = _positive_column(final.classes_)
                values, base = raw[:, :, column], float(expected[column])
            else:
                values, base = raw, float(expected[-1])
            scale = "log-odds" if kind == "hgb" else "probability"
            method = "shap.TreeExplainer (tree_path_dependent)"
        elif kind == "linear":
            background = transform(X.iloc[background_rows])
            masker = shap.maskers.Independent(background, max_samples=len(background))
            explainer = shap.LinearExplainer(final, masker)
            values = np.asarray(explainer.shap_values(Z), dtype="float64")
            base = float(np.atleast_1d(explainer.expected_value)[-1])
            scale, method = "log-odds", "shap.LinearExplainer (independent masker)"
        else:
            background = X.iloc[background_rows].to_numpy(dtype="float64")
            columns = list(X.columns)

            def margin(matrix):
                return explained_output(fitted, pd.DataFrame(matrix, columns=columns))

            explainer = shap.PermutationExplainer(
                margin, shap.maskers.Independent(background, max_samples=len(background)), seed=seed
            )
            explanation = explainer(sample.to_numpy(dtype="float64"))
            values = np.asarray(explanation.values, dtype="float64")
            base = float(np.atleast_1d(explanation.base_values)[0])
            scale, method = "log-odds", "shap.PermutationExplainer (model-agnostic fallback)"
            note = f"no exact explainer for {type(final).__name__}: permutation SHAP on the log-odds"

    frame = pd.DataFrame(np.asarray(values, dtype="float64"), index=sample.index, columns=X.columns)
    mean_abs = frame.abs().mean().sort_values(ascending=False, kind="stable")
    mean_abs.name = "mean_abs_shap"
    return ShapAttributions(
        values=frame,
        feature_values=sample.copy(),
        base_value=base,
        mean_abs=mean_abs,
        scale=scale,
        method=method,
        note=note,
    )


def _mean_attributions(parts: list[ShapAttributions]) -> ShapAttributions:
    """The mean of the fold models' attributions of the same rows (one `ShapAttributions` per model)."""
    if not parts:
        raise ValueError("no fold models to explain")
    values = sum(part.values for part in parts) / len(parts)
    scales = {part.scale for part in parts if part.method != "constant identifier"} or {parts[0].scale}
    notes = [part.note for part in parts if part.note]
    mean_abs = values.abs().mean().sort_values(ascending=False, kind="stable")
    mean_abs.name = "mean_abs_shap"
    return ShapAttributions(
        values=values,
        feature_values=parts[0].feature_values,
        base_value=float(np.mean([p.base_value for p in parts])),
        mean_abs=mean_abs,
        scale="/".join(sorted(scales)),
        method=f"mean over {len(parts)} fold models of " + "; ".join(sorted({part.method for part in parts})),
        note="; ".join(dict.fromkeys(notes)) or None,
    )


def own_output_share(shap_values: pd.DataFrame) -> pd.DataFrame:
    """Per (model, finding): the share of the identifier's SHAP attribution carried by the analysed model's own
    outputs (`cxrfail.analysis.identifiers.own_output_columns`): sum of |SHAP| over those features / sum over
    every feature, on the explained rows.

    Args:
        shap_values: the long SHAP table (columns `LONG_COLUMNS`; one or more pairs).

    Returns:
        columns model, finding, own_share (0-1; NaN when every attribution is 0), n_rows (explained rows),
        own_features (the own-output features, ``;``-joined).
    """
    columns = ["model", "finding", "own_share", "n_rows", "own_features"]
    if shap_values.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (model, finding), part in shap_values.groupby(["model", "finding"], sort=False, observed=True):
        magnitude = part["shap_value"].abs().groupby(part["feature"].astype(str), sort=False).sum()
        own = own_output_columns(magnitude.index, str(model))
        total = float(magnitude.sum())
        rows.append(
            (
                model,
                finding,
                float(magnitude[own].sum()) / total if total > 0 else float("nan"),
                int(part["image_id"].nunique()),
                ";".join(own),
            )
        )
    return pd.DataFrame(rows, columns=columns)


def to_long(attrs: ShapAttributions, *, model: str, finding: str) -> pd.DataFrame:
    """The attributions as a long table: model, finding, image_id, feature, shap_value, feature_value
    (one row per sampled image and feature; image-major order)."""
    values = attrs.values
    n_rows, n_features = values.shape
    ids = values.index.to_numpy(dtype=object) if len(values.index) else np.array([], dtype=object)
    return pd.DataFrame(
        {
            "model": pd.Series([model] * (n_rows * n_features), dtype="string"),
            "finding": pd.Series([finding] * (n_rows * n_features), dtype="string"),
            "image_id": pd.Series(np.repeat(ids, n_features), dtype="string"),
            "feature": pd.Series(np.tile(np.asarray(values.columns, dtype=object), n_rows), dtype="string"),
            "shap_value": values.to_numpy(dtype="float64").ravel(),
            "feature_value": attrs.feature_values.reindex(columns=values.columns).to_numpy(dtype="float64").ravel(),
        }
    )


@dataclass(frozen=True)
class PairIdentifier:
    """A (model, finding) pair's flip identifier refitted as the pipeline fits it: the run's first learner and
    identifier feature set, cross-fitted on the calibration folds of the pair, seeded. It explains any row of
    the pair (the mean of the fold models' attributions), not only the run's SHAP sample.

    Attributes:
        fitted: the fold models.
        features: (rows of the pair × features), indexed by row id.
        calibration: (rows of the pair,) True for calibration rows.
        refit_gap: the largest |refit − run| identifier probability over the test rows (~0: the refit
            reproduces the run).
        seed: the run's seed.
    """

    fitted: tuple = field(repr=False)
    features: pd.DataFrame = field(repr=False)
    calibration: np.ndarray = field(repr=False)
    refit_gap: float
    seed: int

    def explain(self, image_id: str) -> tuple[pd.DataFrame, ShapAttributions]:
        """SHAP of one row: (its attributions, the attributions with base value and scale)."""
        if image_id not in self.features.index:
            raise KeyError(f"row {image_id!r} is not in this pair")
        finals = [_split_pipeline(model)[1] for model in self.fitted]
        if any(isinstance(final, ConstantIdentifier) or _kind(final) not in ("hgb", "forest") for final in finals):
            # linear and permutation SHAP need a background: the test rows, with this row added when absent
            test = self.features.loc[~self.calibration]
            pool = test if image_id in test.index else pd.concat([self.features.loc[[image_id]], test])
            attrs = shap_attributions(self.fitted, pool, max_samples=len(pool), seed=self.seed)
            attrs = ShapAttributions(
                values=attrs.values.loc[[image_id]],
                feature_values=attrs.feature_values.loc[[image_id]],
                base_value=attrs.base_value,
                mean_abs=attrs.mean_abs,
                scale=attrs.scale,
                method=attrs.method,
                note=attrs.note,
            )
        else:  # path-dependent tree SHAP needs no background
            attrs = shap_attributions(self.fitted, self.features.loc[[image_id]], max_samples=1, seed=self.seed)
        return attrs.values, attrs


def refit_pair_identifier(pair, table: pd.DataFrame, probabilities_by_model, config) -> PairIdentifier:
    """Refit ``pair``'s flip identifier (see `PairIdentifier`).

    Args:
        pair: a `cxrfail.analysis.result.PairResult`.
        table: the cohort table (indexed by row id; at least the pair's rows).
        probabilities_by_model: model name → (rows × findings) probabilities of every model of the run.
        config: the run's `AnalysisConfig`.
    """
    from cxrfail.analysis.identifiers import build_features, fit_split_identifier

    rows = pair.outcomes
    ids = pd.Index(rows["image_id"].to_numpy(), name="image_id")
    probabilities = {name: frame.reindex(ids) for name, frame in probabilities_by_model.items()}
    learner, feature_set = pair.identifier
    features = build_features(table.loc[ids], probabilities, pair.model, pair.finding, feature_set)
    split = rows["split"].to_numpy().astype(str)
    fitted = fit_split_identifier(
        features,
        rows["misclassified"].to_numpy(dtype=int),
        rows["patient_id"].to_numpy(),
        split,
        learner=learner,
        n_folds=int(config.n_folds),
        seed=int(config.seed),
    )
    test = ~fitted.calibration
    gap = 0.0
    if test.any():
        gap = float(
            np.max(np.abs(fitted.test_probability - rows["identifier_probability"].to_numpy(dtype=float)[test]))
        )
    return PairIdentifier(
        fitted=fitted.fold_models,
        features=features,
        calibration=fitted.calibration,
        refit_gap=gap,
        seed=int(config.seed),
    )
