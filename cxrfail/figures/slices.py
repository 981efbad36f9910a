"""Slices figures: one pair's searched slices with their test intervals against the pair's overall rate, and
the slices confirmed for several models of one finding."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cxrfail.figures.style import (
    BASELINE_COLOR,
    DEFAULT_CONTEXT,
    INSUFFICIENT_COLOR,
    PALETTE,
    FigureContext,
    apply_layout,
    empty_figure,
    escape,
    fmt_p,
    log_ticks,
    put_legend_under_title,
    vline,
)

CONFIRMED_COLOR = PALETTE[1]
#: How an error kind (`cxrfail.analysis.config.SLICE_ERROR_KINDS`) reads in titles, with its population.
ERROR_KIND_TEXT = {
    "misclassified": "misclassification rate (all rows)",
    "false_negative": "false-negative rate (rows labelled positive)",
    "false_positive": "false-positive rate (rows labelled negative)",
}


def slice_intervals(
    slices: pd.DataFrame, error_kind: str, *, title: str | None = None, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """One pair's slices of one error kind, in the search library's order: the test error rate with its
    patient-bootstrap 95% CI, confirmed slices in red and the others grey ("not confirmed on held-out
    patients"), against the pair's overall test rate (dashed line). ``slices``: the pair's rows of the
    "slices" table."""
    what = ERROR_KIND_TEXT.get(error_kind, error_kind)
    title = title or f"Failure slices: {what}"
    rows = slices.loc[slices["error_kind"] == error_kind] if len(slices) else slices
    if rows.empty:
        return empty_figure(title, "no slice with an error rate above the calibration rate was found")
    rows = rows.sort_values("rank")
    confirmed = rows["confirmed"].astype(bool).to_numpy()
    labels = [_wrapped(f"{int(rank)}. {text}") for rank, text in zip(rows["rank"], rows["slice"])]
    rate, low, high = (rows[c].astype(float).to_numpy() for c in ("rate_test", "ci_low", "ci_high"))
    hover = [
        f"test: {int(e):,} of {int(n):,} {context.unit}s ({int(p):,} patients)<br>"
        f"calibration: {rc:.3f} of {int(nc):,}<br>rate ratio {rr:.2f} [{rl:.2f}, {rh:.2f}], p={fmt_p(pv)}, "
        f"q={fmt_p(q)}"
        for e, n, p, rc, nc, rr, rl, rh, pv, q in zip(
            rows["errors_test"],
            rows["n_test"],
            rows["n_patients_test"],
            rows["rate_calibration"],
            rows["n_calibration"],
            rows["rate_ratio"],
            rows["rr_ci_low"],
            rows["rr_ci_high"],
            rows["p_value"],
            rows["q_value"],
        )
    ]
    fig = go.Figure()
    for flag, name, color in (
        (True, "confirmed on held-out patients", CONFIRMED_COLOR),
        (False, "not confirmed on held-out patients", INSUFFICIENT_COLOR),
    ):
        keep = confirmed == flag
        if not keep.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=rate[keep],
                y=np.asarray(labels, dtype=object)[keep],
                mode="markers",
                name=name,
                marker=dict(color=color, size=10),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=(high - rate)[keep],
                    arrayminus=(rate - low)[keep],
                    color=color,
                    thickness=1.5,
                ),
                customdata=np.asarray(hover, dtype=object)[keep],
                hovertemplate="%{y}<br>%{customdata}<extra></extra>",
            )
        )
    overall = float(rows["overall_rate_test"].iloc[0])
    vline(fig, overall, BASELINE_COLOR, dash="dash", text=f"pair overall {overall:.3f}")
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", categoryarray=labels)
    fig.update_xaxes(title=f"test {what}", rangemode="tozero")
    notes = [
        f"searched on the calibration split, confirmed on the {context.test_split_note}",
        "confirmed: BH q (the pair's candidates) < 0.05 and the rate-ratio 95% CI above 1",
        "bars: 95% CIs resampling patients",
    ]
    fig = apply_layout(fig, title, height=190 + _rows_px(labels), notes=notes)
    return put_legend_under_title(fig, top_bands=1)  # the overall rate's label sits above the plot


def slices_across_models(
    slices: pd.DataFrame, together: pd.DataFrame, *, title: str | None = None, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """Rate ratios (95% CI) of the slices confirmed for two or more models of one finding, one marker per
    model. ``slices``: rows of the "slices" table; ``together``: `AnalysisResult.slices_across_models` rows."""
    title = title or "Slices confirmed for two or more models"
    if together.empty:
        return empty_figure(title, "no slice was confirmed for two or more models of one finding")
    keys = set(zip(together["finding"], together["error_kind"], together["slice"]))
    rows = slices.loc[[key in keys for key in zip(slices["finding"], slices["error_kind"], slices["slice"])]]
    rows = rows.loc[rows["confirmed"].astype(bool)]
    labels = [
        _wrapped(f"{f} · {k.replace('_', ' ')} · {s}")
        for f, k, s in zip(rows["finding"], rows["error_kind"], rows["slice"])
    ]
    fig = go.Figure()
    for index, (model, group) in enumerate(rows.assign(label=labels).groupby("model", sort=False)):
        ratio = group["rate_ratio"].astype(float).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=ratio,
                y=group["label"],
                mode="markers",
                name=escape(model),
                marker=dict(color=PALETTE[index % len(PALETTE)], size=10),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=group["rr_ci_high"].astype(float) - ratio,
                    arrayminus=ratio - group["rr_ci_low"].astype(float),
                    thickness=1.5,
                ),
                hovertemplate="%{y}<br>rate ratio %{x:.2f}<extra>" + escape(model) + "</extra>",
            )
        )
    vline(fig, 1.0, BASELINE_COLOR, dash="dash")
    bounds = pd.concat([rows["rr_ci_low"], rows["rr_ci_high"]]).astype(float)
    bounds = bounds[np.isfinite(bounds) & (bounds > 0)]
    low, high = (min(float(bounds.min()), 1.0), max(float(bounds.max()), 1.0)) if len(bounds) else (0.5, 2.0)
    tickvals, ticktext = log_ticks(low, high)
    fig.update_xaxes(type="log", title="rate ratio (log scale)", tickvals=tickvals, ticktext=ticktext)
    fig.update_yaxes(autorange="reversed", type="category")
    notes = [
        context.test_split_note,
        "rate ratio: the slice's error rate vs the rest of the test population",
        "each slice confirmed on held-out patients for every model shown",
    ]
    fig = apply_layout(fig, title, height=220 + _rows_px(list(dict.fromkeys(labels))), notes=notes)
    return put_legend_under_title(fig)


SLICE_LABEL_WIDTH = 30  # characters per line of a slice's row label (long slices wrap, so 1024 px holds them)


def _wrapped(text: str) -> str:
    return "<br>".join(escape(line) for line in textwrap.wrap(text, width=SLICE_LABEL_WIDTH)) or escape(text)


def _rows_px(labels: list[str]) -> int:
    """Height of the rows of these (wrapped) labels."""
    return sum(16 + 16 * (label.count("<br>") + 1) for label in labels)
