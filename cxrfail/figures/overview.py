"""Overview figures: models × findings heatmaps (AUROC, misclassification, subgroup effects) and the cohort mix."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from cxrfail.figures.style import (
    CELL_FONT,
    DEFAULT_CONTEXT,
    HOVER_NOTE,
    PALETTE,
    FigureContext,
    apply_layout,
    empty_figure,
    escape,
    finding_label,
    fmt_p,
    model_finding_grid,
    ordered,
    plural,
)


def model_finding_heatmap(
    table: pd.DataFrame,
    value: str,
    *,
    title: str,
    text: pd.Series | None = None,
    hover: pd.Series | None = None,
    colorscale: str | list = "Blues",
    zmin: float | None = None,
    zmax: float | None = None,
    zmid: float | None = None,
    colorbar_title: str = "",
    notes: Sequence[str] = (),
    models: Sequence[str] = (),
    findings: Sequence[str] = (),
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """A models (rows) × findings (columns) heatmap of ``table[value]``, one row of ``table`` per cell."""
    if table.empty:
        return empty_figure(title, "no data")
    model_order = ordered(table["model"], models)
    finding_order = ordered(table["finding"], findings)
    labelled = table.assign(
        _text=text if text is not None else table[value].map(lambda v: f"{v:.3f}"),
        _hover=hover if hover is not None else "",
    )
    z, texts, hovers = model_finding_grid(
        labelled,
        model_order,
        finding_order,
        lambda row: (float(row[value]) if pd.notna(row[value]) else None, str(row["_text"]), str(row["_hover"])),
    )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[escape(finding_label(f)) for f in finding_order],
            y=[escape(m) for m in model_order],
            text=texts,
            customdata=hovers,
            textfont=CELL_FONT,
            texttemplate="%{text}",
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            zmid=zmid,
            colorbar=dict(title=dict(text=colorbar_title)),
            xgap=2,
            ygap=2,
            hovertemplate="%{y} · %{x}<br>%{text}<br>%{customdata}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=0 if len(finding_order) <= 4 else -30)
    notes = list(notes) + context.caveats(finding_order)
    return apply_layout(fig, title, height=max(260, 130 + 50 * len(model_order)), notes=notes)


def auroc_heatmap(performance: pd.DataFrame, *, context: FigureContext = DEFAULT_CONTEXT) -> go.Figure:
    """Each model's AUROC per finding (performance table)."""
    hover = (
        performance.apply(
            lambda r: (
                f"n={int(r['n'])}, positives={int(r['n_pos'])}, threshold={r['threshold']:.3f}, test F1={r['f1']:.3f}"
            ),
            axis=1,
        )
        if not performance.empty
        else None
    )
    return model_finding_heatmap(
        performance,
        "auroc",
        title="AUROC per model and finding",
        hover=hover,
        colorscale="Blues",
        zmin=0.5,
        zmax=1.0,
        colorbar_title="AUROC",
        notes=[f"AUROC over every {context.unit} of the cohort (needs no threshold)"],
        context=context,
    )


def misclassification_heatmap(overall: pd.DataFrame, *, context: FigureContext = DEFAULT_CONTEXT) -> go.Figure:
    """Misclassification rate per model and finding at the calibration-chosen threshold (from
    `overall_misclassification`)."""
    if overall.empty:
        return empty_figure("Misclassification rate", "no test rows")
    text = overall.apply(lambda r: f"{r['rate']:.1%}", axis=1)
    hover = overall.apply(
        lambda r: (
            f"95% CI [{r['ci_low']:.1%}, {r['ci_high']:.1%}] (patients clustered)<br>"
            f"{int(r['n_misclassified'])} of {int(r['n'])} {plural(context.unit)} "
            f"misclassified ({int(r['n_fp'])} FP, {int(r['n_fn'])} FN)"
        ),
        axis=1,
    )
    return model_finding_heatmap(
        overall,
        "rate",
        title="Misclassification rate",
        text=text,
        hover=hover,
        colorscale="Reds",
        zmin=0,
        colorbar_title="rate",
        notes=[context.test_split_note, f"95% CIs (patients clustered) and counts: {HOVER_NOTE}"],
        context=context,
    )


def effects_heatmap(
    summary: pd.DataFrame, *, q_column: str = "q_bh", alpha: float = 0.05, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """Where the action is: number of significant regression terms per model × finding, with the strongest."""
    if summary.empty:
        return empty_figure("Subgroup effects", "no regression results")
    # Term names carry cohort values (subgroup levels such as a View value): escaped, never rendered as HTML.
    text = summary["n_significant"].astype(int).astype(str)
    hover = summary.apply(
        lambda r: (
            f"strongest term {escape(r['top_term'])}: OR {r['top_odds_ratio']:.2f} (q={fmt_p(r['top_q'])})"
            if r["top_term"] is not None and pd.notna(r["top_odds_ratio"])
            else "no term"
        ),
        axis=1,
    )
    return model_finding_heatmap(
        summary,
        "n_significant",
        title=f"Subgroup effects: terms with {q_column} < {alpha}",
        text=text,
        hover=hover,
        colorscale="Oranges",
        zmin=0,
        colorbar_title="terms",
        notes=[
            "multivariable logistic regression of misclassification; " + context.test_split_note,
            f"each cell: how many terms; the strongest term and its odds ratio: {HOVER_NOTE} (Subgroups page)",
        ],
        context=context,
    )


def age_histogram(ages: pd.Series, *, title: str = "Age", context: FigureContext = DEFAULT_CONTEXT) -> go.Figure:
    """Histogram of age in 5-year bins, one count per row (image or study)."""
    values = pd.to_numeric(ages, errors="coerce").dropna()
    if values.empty:
        return empty_figure(title, "age not known")
    fig = go.Figure(
        go.Histogram(
            x=values,
            xbins=dict(size=5),
            marker_color=PALETTE[0],
            hovertemplate="%{x} years: %{y} " + context.unit + "s<extra></extra>",
        )
    )
    fig.update_xaxes(title="age (years)")
    fig.update_yaxes(title=f"{plural(context.unit)}")
    return apply_layout(fig, f"{title} (n={len(values):,})", height=300)


def count_bars(counts: Mapping[object, int], *, title: str, unit: str = "images") -> go.Figure:
    """Horizontal bars of category counts with their share (sex mix, view mix)."""
    if not counts:
        return empty_figure(title, "no data")
    labels = [
        "unknown" if (k is None or (isinstance(k, float) and math.isnan(k)) or k is pd.NA) else str(k) for k in counts
    ]
    values = [int(v) for v in counts.values()]
    total = sum(values)
    fig = go.Figure(
        go.Bar(
            x=values,
            y=[escape(label) for label in labels],
            orientation="h",
            marker_color=PALETTE[0],
            text=[f"{v:,} ({v / total:.0%})" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x} " + unit + "<extra></extra>",
        )
    )
    fig.update_xaxes(title=unit, range=[0, max(values) * 1.6], nticks=4)  # room for the count beside the bar
    fig.update_yaxes(autorange="reversed")
    return apply_layout(fig, title, height=120 + 40 * len(values))
