"""Flip figures: the change in F1 over the flip threshold, before/after at one tau."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cxrfail.analysis.flip import NEVER_FLIP
from cxrfail.figures.style import (
    BASELINE_COLOR,
    DEFAULT_CONTEXT,
    PALETTE,
    TOP_LABEL_PX,
    FigureContext,
    apply_layout,
    empty_figure,
    layout_dict,
    legend_under_title,
    put_legend_under_title,
    title_band_px,
)


def _vline_spec(
    x: float, color: str, *, dash: str = "solid", text: str = "", band: int = 0, right_half: bool = False
) -> tuple[dict, list[dict]]:
    """A vertical line with its label above the plot, in label band ``band`` (0: just above the plot; each
    band one `TOP_LABEL_PX` higher, so two labels never meet), reaching towards the middle of the plot
    (``right_half``: the line is right of it)."""
    shape = dict(
        type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper", line=dict(color=color, width=2, dash=dash)
    )
    notes = (
        [
            dict(
                x=x,
                y=1.0,
                xref="x",
                yref="paper",
                text=text,
                showarrow=False,
                yshift=band * TOP_LABEL_PX,
                xanchor="right" if right_half else "left",
                yanchor="bottom",
                font=dict(size=11, color=color),
            )
        ]
        if text
        else []
    )
    return shape, notes


def flip_curve_spec(
    curve: pd.DataFrame,
    *,
    chosen_tau: float | None = None,
    current_tau: float | None = None,
    title: str | None = None,
    context: FigureContext = DEFAULT_CONTEXT,
) -> dict:
    """`flip_curve` as a plain plotly dict (``{"data", "layout"}``): built without plotly's validation, so the
    Flip page can redraw it on every slider move in a few milliseconds."""
    title = title or "Change in F1 from flipping, over the flip threshold"
    if curve.empty:
        return empty_figure(title, "no flip curve").to_plotly_json()
    curve = curve.sort_values("tau")
    tau = curve["tau"].to_numpy(dtype=float)
    data = [
        dict(
            type="scatter",
            x=np.concatenate([tau, tau[::-1]]),
            y=np.concatenate([curve["ci_high"].to_numpy(dtype=float), curve["ci_low"].to_numpy(dtype=float)[::-1]]),
            fill="toself",
            fillcolor="rgba(31,95,139,0.18)",
            line=dict(width=0),
            hoverinfo="skip",
            name="95% CI (paired bootstrap)",
        ),
        dict(
            type="scatter",
            x=tau,
            y=curve["delta_f1"].to_numpy(dtype=float),
            mode="lines",
            name="ΔF1 (after − before)",
            line=dict(color=PALETTE[0], width=2),
            customdata=np.stack([curve["n_flips"], curve["f1_before"], curve["f1_after"]], axis=1),
            hovertemplate="tau %{x:.3f}: ΔF1 %{y:+.4f}<br>%{customdata[0]} flips, "
            "F1 %{customdata[1]:.3f} → %{customdata[2]:.3f}<extra></extra>",
        ),
    ]
    shapes = [
        dict(
            type="line", x0=0, x1=1, y0=0, y1=0, xref="paper", yref="y", line=dict(color="#52606d", width=1, dash="dot")
        )
    ]
    annotations: list[dict] = []
    middle = (float(np.nanmin(tau)) + float(np.nanmax(tau))) / 2
    if chosen_tau is not None and np.isfinite(chosen_tau):
        never = chosen_tau >= NEVER_FLIP
        x = min(float(chosen_tau), 1.0)
        shape, notes = _vline_spec(
            x,
            PALETTE[1],
            dash="dash",
            right_half=x > middle,
            text="chosen on calibration: flip nothing" if never else f"chosen on calibration: {chosen_tau:.3f}",
        )
        shapes.append(shape)
        annotations += notes
    if current_tau is not None and np.isfinite(current_tau):
        x = float(current_tau)
        shape, notes = _vline_spec(x, PALETTE[2], text=f"tau = {current_tau:.3f}", band=1, right_half=x > middle)
        shapes.append(shape)
        annotations += notes
    notes = [
        "flip the model's prediction where the row's own identifier probability ≥ tau; every tau but the one "
        "chosen on calibration is exploratory; " + context.test_split_note
    ]
    notes += context.caveats(curve.get("finding", pd.Series(dtype=str)).unique())
    layout = layout_dict(title, height=440, notes=notes)
    layout["annotations"] = annotations + layout.get("annotations", [])
    legend, top = legend_under_title(
        layout["height"], len(data), title_px=title_band_px(layout["title"]["text"]), top_bands=2
    )  # the two tau labels
    layout["margin"] = {**layout["margin"], "t": top}
    layout.update(
        shapes=shapes,
        xaxis=dict(title=dict(text="flip threshold tau (identifier probability)")),
        yaxis=dict(title=dict(text="ΔF1"), zeroline=False),
        legend=legend,
    )
    return {"data": data, "layout": layout}


def flip_curve(
    curve: pd.DataFrame,
    *,
    chosen_tau: float | None = None,
    current_tau: float | None = None,
    title: str | None = None,
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """Change in F1 from flipping over the flip threshold tau, with its 95% CI band (test split)."""
    return go.Figure(
        flip_curve_spec(curve, chosen_tau=chosen_tau, current_tau=current_tau, title=title, context=context)
    )


def flip_summary_figure(
    evaluation: Mapping[str, float], *, title: str | None = None, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """F1, precision and recall before and after flipping at one tau (a `FlipEvaluation` or a flip row)."""
    title = title or f"Before and after flipping at tau = {float(evaluation['tau']):.3f}"
    metrics = ["f1", "precision", "recall"]
    fig = go.Figure()
    for when, color in (("before", BASELINE_COLOR), ("after", PALETTE[0])):
        values = [float(evaluation[f"{m}_{when}"]) for m in metrics]
        fig.add_trace(
            go.Bar(
                x=metrics,
                y=values,
                name=when,
                marker_color=color,
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
            )
        )
    fig.update_yaxes(range=[0, 1.05], title="value")
    fig.update_layout(barmode="group")
    delta = (
        f"ΔF1 {float(evaluation['delta_f1']):+.4f} [{float(evaluation['ci_low']):+.4f}, "
        f"{float(evaluation['ci_high']):+.4f}], {int(evaluation['n_flips'])} flips"
    )
    fig = apply_layout(fig, title, height=380, notes=[delta, context.test_split_note])
    return put_legend_under_title(fig)
