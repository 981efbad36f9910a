"""The report's figure catalogue: the standard figures of an `AnalysisResult`, keyed by stable, file-safe
names (used by the CLI report and the dashboard's export): `report_catalogue` lists them as builders (drawn
on request), `report_figures` builds them all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, partial

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


#: Builds one figure of the catalogue when called (no arguments).
FigureBuilder = Callable[[], go.Figure]


def report_catalogue(
    result, *, max_pairs: int | None = None, findings: Sequence[str] | None = None, models: Sequence[str] | None = None
) -> dict[str, FigureBuilder]:
    """The standard figures of an `AnalysisResult` as builders, keyed by stable, file-safe names, in report order:
    listing them reads only the result's tables; a figure is drawn when its builder is called (the dashboard's
    Export page builds the one asked for).

    Overview (``auroc_heatmap``, ``misclassification_heatmap``, ``subgroup_effects``), one OR heatmap per
    regression term (``or_heatmap_<term>``), the identifier heatmap per learner × feature set
    (``identifier_auroc_<learner>_<feature_set>``), the identifier ladder per learner × finding
    (``identifier_ladder_<learner>_<finding>``), ``slices_across_models`` when a slice is confirmed for several
    models, and per model × finding (first ``max_pairs`` pairs, all by default): ``subgroups_<model>_<finding>``,
    ``forest_<model>_<finding>``, ``roc_<model>_<finding>``, ``shap_bar_<model>_<finding>``,
    ``slices_<model>_<finding>_<error kind>``, ``flip_curve_<model>_<finding>``. ``findings`` / ``models``
    restrict the per-pair figures to those.
    """
    context_of = cache(lambda: FigureContext.from_result(result))  # shared by the builders, made on first use
    min_n = int(result.config.min_subgroup_n)
    builders: dict[str, FigureBuilder] = {
        "auroc_heatmap": lambda: auroc_heatmap(result.performance, context=context_of()),
        "misclassification_heatmap": lambda: misclassification_heatmap(
            result.overall_misclassification(), context=context_of()
        ),
        "subgroup_effects": lambda: effects_heatmap(result.effect_summary(), context=context_of()),
    }
    for term in result.regression_terms():
        builders[slug("or_heatmap", term)] = partial(_context_call, term_heatmap, context_of, result.regression, term)
    identifiers = result.identifiers
    if not identifiers.empty:
        for learner, feature_set in identifiers[["learner", "feature_set"]].drop_duplicates().itertuples(index=False):
            builders[slug("identifier_auroc", learner, feature_set)] = partial(
                _context_call, identifier_heatmaps, context_of, identifiers, learner, feature_set
            )
        for learner, finding in identifiers[["learner", "finding"]].drop_duplicates().itertuples(index=False):
            builders[slug("identifier_ladder", learner, finding)] = partial(
                _context_call, identifier_ladder, context_of, identifiers, learner, finding
            )
    together = result.slices_across_models()
    if not together.empty:
        builders["slices_across_models"] = partial(
            _context_call, slices_across_models, context_of, result.slices, together
        )
    chosen = [
        pair
        for pair in result
        if (findings is None or pair.finding in findings) and (models is None or pair.model in models)
    ]
    for pair in chosen[:max_pairs]:
        builders.update(_pair_builders(pair, context_of, min_n))
    return builders


def report_figures(
    result, *, max_pairs: int | None = None, findings: Sequence[str] | None = None, models: Sequence[str] | None = None
) -> dict[str, go.Figure]:
    """Every figure of `report_catalogue` (same arguments, names and order), built."""
    catalogue = report_catalogue(result, max_pairs=max_pairs, findings=findings, models=models)
    return {name: build() for name, build in catalogue.items()}


def _context_call(builder: Callable[..., go.Figure], context_of: Callable[[], FigureContext], *args) -> go.Figure:
    return builder(*args, context=context_of())


def _pair_builders(pair, context_of: Callable[[], FigureContext], min_n: int) -> dict[str, FigureBuilder]:
    """The per-pair figures of `report_catalogue` for one `PairResult`."""
    label = pair_label(pair.model, pair.finding)
    learner, feature_set = pair.identifier

    def subgroups() -> go.Figure:
        return subgroup_rates_figure(
            pair.subgroup_rates, title=f"Misclassification by subgroup: {label}", min_n=min_n, context=context_of()
        )

    def forest() -> go.Figure:
        return forest_plot(pair.regression, title=f"Odds ratios: {label}", context=context_of())

    def roc() -> go.Figure:
        scores = pair.table("identifier_scores")
        scores = scores.loc[(scores["learner"] == learner).to_numpy()]  # every feature set of the ladder
        return roc_figure(
            scores, outcomes=pair.outcomes, title=f"ROC, predicting misclassification: {label}", context=context_of()
        )

    def shap() -> go.Figure:
        evaluation = pair.identifier_evaluation(learner, feature_set)
        oracle = bool(evaluation and evaluation["oracle"])
        return shap_bar(pair.shap_values, title=f"SHAP importance: {label}", oracle=oracle, context=context_of())

    def slices(kind: str) -> go.Figure:
        return slice_intervals(
            pair.slices, kind, title=f"Failure slices ({kind.replace('_', ' ')}): {label}", context=context_of()
        )

    def flip() -> go.Figure:
        return flip_curve(pair.flip_curve, chosen_tau=pair.chosen_tau, title=f"Flipping: {label}", context=context_of())

    builders: dict[str, FigureBuilder] = {
        slug("subgroups", pair.model, pair.finding): subgroups,
        slug("forest", pair.model, pair.finding): forest,
    }
    if (pair.table("identifier_scores")["learner"] == learner).any():
        builders[slug("roc", pair.model, pair.finding)] = roc
    if not pair.shap_values.empty:
        builders[slug("shap_bar", pair.model, pair.finding)] = shap
    for kind in dict.fromkeys(pair.slices["error_kind"]):
        builders[slug("slices", pair.model, pair.finding, kind)] = partial(slices, kind)
    if not pair.flip_curve.empty:
        builders[slug("flip_curve", pair.model, pair.finding)] = flip
    return builders
