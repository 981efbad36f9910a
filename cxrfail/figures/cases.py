"""Cases figures: every model's probability for one image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cxrfail.figures.style import (
    PALETTE,
    apply_layout,
    empty_figure,
    escape,
    put_legend_under_title,
    right_margin_label,
)


def case_probabilities(rows: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """One image: each model's probability against its threshold (rows of ``outcomes`` for one image and
    finding: model, probability, threshold, prediction, label, misclassified)."""
    title = title or "Model probabilities"
    if rows.empty:
        return empty_figure(title, "no predictions for this image")
    wrong = rows["misclassified"].astype(bool).to_numpy()
    colors = np.where(wrong, PALETTE[1], PALETTE[0])
    fig = go.Figure(
        go.Bar(
            x=rows["probability"],
            y=[escape(m) for m in rows["model"]],
            orientation="h",
            marker_color=colors,
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rows["threshold"],
            y=[escape(m) for m in rows["model"]],
            mode="markers",
            name="threshold",
            marker=dict(symbol="line-ns-open", size=22, color="#1d2731", line=dict(width=3)),
            hovertemplate="threshold %{x:.3f}<extra></extra>",
        )
    )
    for model, p, w in zip(rows["model"], rows["probability"], wrong):
        right_margin_label(fig, escape(model), f"{p:.3f} {'✗' if w else '✓'}", color=PALETTE[1] if w else PALETTE[0])
    fig.update_xaxes(range=[0, 1], title="probability")
    fig.update_yaxes(autorange="reversed", type="category")
    fig = apply_layout(
        fig,
        title,
        height=160 + 45 * len(rows),
        notes=["right: probability, ✗ misclassified, ✓ correct; each threshold: hover its mark"],
    )
    fig.update_layout(margin=dict(r=70))
    return put_legend_under_title(fig)
