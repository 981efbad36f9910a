"""Labels figures: each model's misclassifications split into model errors and probable label errors, and each
model's AUROC and F1 against the cohort's labels and the reference labels (rows of ``label_audit``)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cxrfail.figures.style import (
    BASELINE_COLOR,
    DEFAULT_CONTEXT,
    PALETTE,
    FigureContext,
    apply_layout,
    empty_figure,
    escape,
    plural,
    put_legend_under_title,
    right_margin_label,
)


def label_error_bars(
    audit: pd.DataFrame, *, title: str | None = None, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """Per model (rows of ``label_audit`` for one finding): misclassifications by the cohort label, split into
    model errors (wrong by both labels) and probable label errors (the model agrees with the reference), with
    the label-error share and its patient-clustered 95% CI."""
    title = title or "Model error or label error?"
    if audit.empty:
        return empty_figure(title, "no reference labels for this finding")
    models = [escape(m) for m in audit["model"]]
    fig = go.Figure()
    for column, name, color in (
        ("n_model_error", "model error (wrong by both labels)", PALETTE[1]),
        ("n_label_error", "probable label error (model agrees with the reference)", BASELINE_COLOR),
    ):
        fig.add_trace(
            go.Bar(
                x=audit[column].astype(int),
                y=models,
                orientation="h",
                name=name,
                marker_color=color,
                hovertemplate="%{y}: %{x} " + name + "<extra></extra>",
            )
        )
    for model, row in zip(models, audit.itertuples()):
        right_margin_label(
            fig,
            model,
            f"{row.label_error_share:.0%} [{row.label_error_ci_low:.0%}, "
            f"{row.label_error_ci_high:.0%}] of {int(row.n_misclassified)}",
        )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title=f"misclassified {plural(context.unit)} (cohort label)", nticks=5)
    first = audit.iloc[0]
    notes = [
        f"{int(first['n_split_rows']):,} test {plural(context.unit)} of {int(first['n_split_patients']):,} patients "
        "have both labels; right: share of probable label errors [95% CI, patients resampled] of the "
        "misclassified"
    ] + context.caveats(audit["finding"].unique())
    fig = apply_layout(fig, title, height=200 + 50 * len(models), notes=notes)
    fig.update_layout(margin=dict(r=150))
    return put_legend_under_title(fig)


def label_set_comparison(
    audit: pd.DataFrame, *, title: str | None = None, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """Each model's AUROC (with 95% CI) and F1 against the cohort labels and against the reference labels, on the
    same rows (AUROC: every row with both labels; F1: test rows at the operating threshold)."""
    title = title or "Against which labels?"
    if audit.empty:
        return empty_figure(title, "no reference labels for this finding")
    from plotly.subplots import make_subplots

    models = [escape(m) for m in audit["model"]]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("AUROC (95% CI)", "F1 at the threshold"),
        horizontal_spacing=0.06,
        shared_yaxes=True,
    )
    for labels, color in (("cohort", BASELINE_COLOR), ("reference", PALETTE[0])):
        name = "cohort labels" if labels == "cohort" else "reference labels"
        auroc = audit[f"auroc_{labels}"]
        fig.add_trace(
            go.Bar(
                y=models,
                x=auroc,
                name=name,
                marker_color=color,
                legendgroup=labels,
                orientation="h",
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=audit[f"auroc_{labels}_ci_high"] - auroc,
                    arrayminus=auroc - audit[f"auroc_{labels}_ci_low"],
                ),
                hovertemplate="%{y}: AUROC %{x:.3f}<extra>" + name + "</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                y=models,
                x=audit[f"f1_{labels}"],
                name=name,
                marker_color=color,
                legendgroup=labels,
                orientation="h",
                showlegend=False,
                hovertemplate="%{y}: F1 %{x:.3f}<extra>" + name + "</extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(range=[0, 1.05])
    fig.update_yaxes(autorange="reversed", type="category")
    first = audit.iloc[0]
    notes = [
        f"AUROC on the {int(first['n_rows']):,} {plural(context.unit)} with both labels (both splits; it needs no "
        f"threshold); F1 on the {int(first['n_split_rows']):,} test {plural(context.unit)} among them"
    ]
    notes += context.caveats(audit["finding"].unique())
    fig = apply_layout(fig, title, height=220 + 70 * len(models), notes=notes)
    return put_legend_under_title(fig, top_bands=1)  # the panel titles sit between the legend and the bars
