"""The report's figure catalogue: the standard figures of an `AnalysisResult`, keyed by stable, file-safe
names (used by the CLI report and the dashboard's export)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from cxrfail.figures.explain import shap_bar
from cxrfail.figures.flip import flip_curve
from cxrfail.figures.identifiers import identifier_heatmaps, identifier_ladder, roc_figure
from cxrfail.figures.overview import auroc_heatmap, effects_heatmap, misclassification_heatmap
from cxrfail.figures.slices import slice_intervals, slices_across_models
from cxrfail.figures.style import FigureContext, escape, finding_label, slug
from cxrfail.figures.subgroups import forest_plot, subgroup_rates_figure, term_heatmap


def pair_label(model: str, finding: str) -> str:
    """How a (model, finding) pair is named in titles: ``model · finding`` (escaped for plotly)."""
    return f"{escape(model)} · {escape(finding_label(finding))}"


def report_figures(
    result, *, max_pairs: int | None = None, findings: Sequence[str] | None = None, models: Sequence[str] | None = None
) -> dict[str, go.Figure]:
    """The standard figures of an `AnalysisResult`, keyed by stable, file-safe names.

    Overview (``auroc_heatmap``, ``misclassification_heatmap``, ``subgroup_effects``), one OR heatmap per
    regression term (``or_heatmap_<term>``), the identifier heatmap per learner × feature set
    (``identifier_auroc_<learner>_<feature_set>``) and per model × finding (first ``max_pairs`` pairs, all by
    default): ``subgroups_<model>_<finding>``, ``forest_<model>_<finding>``, ``roc_<model>_<finding>``,
    ``shap_bar_<model>_<finding>``, ``flip_curve_<model>_<finding>``, ``slices_<model>_<finding>_<error kind>``;
    and ``slices_across_models`` when a slice is confirmed for several models. ``findings`` / ``models``
    restrict the per-pair figures to those.
    """
    context = FigureContext.from_result(result)
    min_n = int(result.config.min_subgroup_n)
    figures: dict[str, go.Figure] = {
        "auroc_heatmap": auroc_heatmap(result.performance, context=context),
        "misclassification_heatmap": misclassification_heatmap(result.overall_misclassification(), context=context),
        "subgroup_effects": effects_heatmap(result.effect_summary(), context=context),
    }
    for term in result.regression_terms():
        figures[slug("or_heatmap", term)] = term_heatmap(result.regression, term, context=context)
    identifiers = result.identifiers
    if not identifiers.empty:
        for learner, feature_set in identifiers[["learner", "feature_set"]].drop_duplicates().itertuples(index=False):
            figures[slug("identifier_auroc", learner, feature_set)] = identifier_heatmaps(
                identifiers, learner, feature_set, context=context
            )
        for learner, finding in identifiers[["learner", "finding"]].drop_duplicates().itertuples(index=False):
            figures[slug("identifier_ladder", learner, finding)] = identifier_ladder(
                identifiers, learner, finding, context=context
            )
    together = result.slices_across_models()
    if not together.empty:
        figures["slices_across_models"] = slices_across_models(result.slices, together, context=context)
    chosen = [
        pair
        for pair in result
        if (findings is None or pair.finding in findings) and (models is None or pair.model in models)
    ]
    for pair in chosen[:max_pairs]:
        label = pair_label(pair.model, pair.finding)
        learner, feature_set = pair.identifier
        evaluation = pair.identifier_evaluation(learner, feature_set)
        oracle = bool(evaluation and evaluation["oracle"])
        figures[slug("subgroups", pair.model, pair.finding)] = subgroup_rates_figure(
            pair.subgroup_rates, title=f"Misclassification by subgroup: {label}", min_n=min_n, context=context
        )
        figures[slug("forest", pair.model, pair.finding)] = forest_plot(
            pair.regression, title=f"Odds ratios: {label}", context=context
        )
        scores = pair.table("identifier_scores")
        scores = scores.loc[(scores["learner"] == learner).to_numpy()]  # every feature set of the ladder
        if not scores.empty:
            figures[slug("roc", pair.model, pair.finding)] = roc_figure(
                scores, outcomes=pair.outcomes, title=f"ROC, predicting misclassification: {label}", context=context
            )
        if not pair.shap_values.empty:
            figures[slug("shap_bar", pair.model, pair.finding)] = shap_bar(
                pair.shap_values, title=f"SHAP importance: {label}", oracle=oracle, context=context
            )
        for kind in dict.fromkeys(pair.slices["error_kind"]):
            figures[slug("slices", pair.model, pair.finding, kind)] = slice_intervals(
                pair.slices, kind, title=f"Failure slices ({kind.replace('_', ' ')}): {label}", context=context
            )
        if not pair.flip_curve.empty:
            figures[slug("flip_curve", pair.model, pair.finding)] = flip_curve(
                pair.flip_curve, chosen_tau=pair.chosen_tau, title=f"Flipping: {label}", context=context
            )
    return figures
