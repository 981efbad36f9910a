"""Explain figures: SHAP importance (bar), SHAP per image (beeswarm), one image (waterfall)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cxrfail.figures.style import (
    DEFAULT_CONTEXT,
    PALETTE,
    FigureContext,
    apply_layout,
    empty_figure,
    escape,
    fmt_value,
    plural,
    vline,
)


def shap_importance(shap_values: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| per feature (columns feature, mean_abs_shap, n), largest first."""
    if shap_values.empty:
        return pd.DataFrame(columns=["feature", "mean_abs_shap", "n"])
    table = (
        shap_values.assign(_abs=shap_values["shap_value"].abs())
        .groupby("feature", sort=False)
        .agg(mean_abs_shap=("_abs", "mean"), n=("image_id", "nunique"))
        .reset_index()
        .sort_values("mean_abs_shap", ascending=False, kind="stable")
    )
    return table.reset_index(drop=True)


def _sample_notes(
    shap_values: pd.DataFrame, features: Iterable[str], oracle: bool, context: FigureContext
) -> list[str]:
    """Footnotes of a figure over a sample of SHAP rows: its size in the unit of analysis, then the caveats of
    its findings and ``features``."""
    n = int(shap_values["image_id"].nunique())
    return [f"a sample of {n:,} {plural(context.unit)}"] + context.caveats(
        shap_values.get("finding", pd.Series(dtype=str)).unique(), features, oracle=oracle
    )


def shap_bar(
    shap_values: pd.DataFrame,
    *,
    title: str | None = None,
    top: int = 15,
    oracle: bool = False,
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """Mean |SHAP| of the ``top`` features (`shap_importance`) as horizontal bars, largest first."""
    title = title or "Global importance: mean |SHAP|"
    importance = shap_importance(shap_values).head(top)
    if importance.empty:
        return empty_figure(title, "no SHAP values")
    fig = go.Figure(
        go.Bar(
            x=importance["mean_abs_shap"],
            y=[escape(f) for f in importance["feature"]],
            orientation="h",
            marker_color=PALETTE[0],
            hovertemplate="%{y}: mean |SHAP| %{x:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title="mean |SHAP value| (log-odds of misclassification)")
    notes = _sample_notes(shap_values, importance["feature"], oracle, context)
    return apply_layout(fig, title, height=150 + 26 * len(importance), notes=notes)


def shap_beeswarm(
    shap_values: pd.DataFrame,
    *,
    title: str | None = None,
    top: int = 15,
    seed: int = 0,
    oracle: bool = False,
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """SHAP value per image and feature, coloured by the feature's value (scaled within the feature)."""
    title = title or "SHAP values per image"
    importance = shap_importance(shap_values).head(top)
    if importance.empty:
        return empty_figure(title, "no SHAP values")
    features = importance["feature"].tolist()
    rng = np.random.default_rng(seed)
    xs, ys, colors, hover = [], [], [], []
    for position, feature in enumerate(features):
        part = shap_values.loc[shap_values["feature"] == feature]
        values = pd.to_numeric(part["feature_value"], errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(values)
        low, high = (np.nanmin(values), np.nanmax(values)) if finite.any() else (0.0, 1.0)
        scaled = (values - low) / (high - low) if high > low else np.full(len(values), 0.5)
        xs.append(part["shap_value"].to_numpy(dtype=float))
        ys.append(position + rng.uniform(-0.3, 0.3, len(part)))
        colors.append(np.where(finite, scaled, np.nan))
        hover += [f"{feature} = {fmt_value(v)}<br>image {i}" for v, i in zip(part["feature_value"], part["image_id"])]
    fig = go.Figure(
        go.Scattergl(
            x=np.concatenate(xs),
            y=np.concatenate(ys),
            mode="markers",
            marker=dict(
                color=np.concatenate(colors),
                colorscale="RdBu_r",
                cmin=0,
                cmax=1,
                size=5,
                opacity=0.75,
                colorbar=dict(title=dict(text="feature value"), tickvals=[0, 1], ticktext=["low", "high"]),
            ),
            customdata=hover,
            hovertemplate="%{customdata}<br>SHAP %{x:.4f}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_yaxes(
        tickvals=list(range(len(features))),
        ticktext=[escape(f) for f in features],
        autorange="reversed",
        range=[len(features) - 0.5, -0.5],
    )
    vline(fig, 0.0, "#52606d")
    fig.update_xaxes(title="SHAP value (impact on log-odds of misclassification)")
    notes = _sample_notes(shap_values, features, oracle, context)
    return apply_layout(fig, title, height=150 + 30 * len(features), notes=notes)


def shap_waterfall(
    shap_values: pd.DataFrame,
    image_id: str,
    *,
    base_value: float | None = None,
    top: int = 10,
    title: str | None = None,
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """One image's SHAP contributions as a waterfall from the base value (the model's mean output)."""
    title = title or f"Why image {image_id}?"
    rows = shap_values.loc[shap_values["image_id"] == image_id].copy()
    if rows.empty:
        return empty_figure(title, f"no SHAP values for image {image_id}")
    rows = rows.assign(_abs=rows["shap_value"].abs()).sort_values("_abs", ascending=False, kind="stable")
    head, rest = rows.head(top), rows.iloc[top:]
    labels = [f"{escape(f)} = {escape(fmt_value(v))}" for f, v in zip(head["feature"], head["feature_value"])]
    values = head["shap_value"].astype(float).tolist()
    if len(rest):
        labels.append(f"{len(rest)} other features")
        values.append(float(rest["shap_value"].sum()))
    base = 0.0 if base_value is None else float(base_value)
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=["base value", *labels, "output"],
            x=[base, *values, 0.0],
            measure=["absolute", *["relative"] * len(values), "total"],
            increasing=dict(marker=dict(color=PALETTE[1])),
            decreasing=dict(marker=dict(color=PALETTE[0])),
            totals=dict(marker=dict(color="#52606d")),
            connector=dict(line=dict(color="#cbd2d9")),
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title="log-odds")  # short: the plot beside a radiograph is narrow at 1024 px
    notes = [
        "x: log-odds of misclassification"
        + ("" if base_value is not None else ", relative to the base value")
        + "; red: pushes towards 'misclassified', blue: away"
    ] + context.caveats(rows.get("finding", pd.Series(dtype=str)).unique(), rows["feature"])
    return apply_layout(fig, title, height=190 + 28 * (len(labels) + 2), notes=notes)
