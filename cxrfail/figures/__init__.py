"""Plotly figure builders, one module per dashboard page, plus the shared style and the report catalogue.

- `style`: palette, template, layout with caveat footnotes, `FigureContext` (unit, subsets, cohort notes).
- `overview`, `subgroups`, `identifiers`, `explain`, `flip`, `cases`, `labels`, `slices`: the figures of that page.
- `catalogue`: `report_catalogue(result)` (name → builder, drawn on request) and `report_figures(result)` (all
  built), the standard set with file-safe names for the report and export.

Every builder is pure (no streamlit, no file I/O): tables of a `cxrfail.analysis.result.PairResult` or
`AnalysisResult` in, a ``go.Figure`` out. The names below are the package's public surface.
"""

from cxrfail.figures.cases import case_probabilities
from cxrfail.figures.catalogue import pair_label, report_catalogue, report_figures
from cxrfail.figures.explain import shap_bar, shap_beeswarm, shap_importance, shap_waterfall
from cxrfail.figures.flip import flip_curve, flip_curve_spec, flip_summary_figure
from cxrfail.figures.identifiers import identifier_heatmaps, identifier_ladder, roc_figure
from cxrfail.figures.labels import label_error_bars, label_set_comparison
from cxrfail.figures.overview import (
    age_histogram,
    auroc_heatmap,
    count_bars,
    effects_heatmap,
    misclassification_heatmap,
    model_finding_heatmap,
)
from cxrfail.figures.slices import slice_intervals, slices_across_models
from cxrfail.figures.style import (
    DEFAULT_CONTEXT,
    FigureContext,
    escape,
    finding_label,
    insufficient_label,
    plural,
    slug,
)
from cxrfail.figures.subgroups import forest_plot, subgroup_rates_figure, term_heatmap

__all__ = [
    "DEFAULT_CONTEXT",
    "FigureContext",
    "age_histogram",
    "auroc_heatmap",
    "case_probabilities",
    "count_bars",
    "effects_heatmap",
    "escape",
    "finding_label",
    "flip_curve",
    "flip_curve_spec",
    "flip_summary_figure",
    "forest_plot",
    "identifier_heatmaps",
    "identifier_ladder",
    "insufficient_label",
    "label_error_bars",
    "label_set_comparison",
    "misclassification_heatmap",
    "model_finding_heatmap",
    "pair_label",
    "plural",
    "report_catalogue",
    "report_figures",
    "roc_figure",
    "shap_bar",
    "shap_beeswarm",
    "shap_importance",
    "shap_waterfall",
    "slice_intervals",
    "slices_across_models",
    "slug",
    "subgroup_rates_figure",
    "term_heatmap",
]
