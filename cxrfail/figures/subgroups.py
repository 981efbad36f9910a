"""Subgroups figures: misclassification by subgroup level, the regression forest plot, one term across the grid."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cxrfail.analysis.regression import ALL_ROWS_FAMILY
from cxrfail.figures.overview import model_finding_heatmap
from cxrfail.figures.style import (
    BASELINE_COLOR,
    DEFAULT_CONTEXT,
    INSUFFICIENT_COLOR,
    PALETTE,
    SUFFICIENT_COLOR,
    FigureContext,
    apply_layout,
    empty_figure,
    escape,
    fmt_p,
    insufficient_label,
    log_ticks,
    ordered,
    plural,
    put_legend_under_title,
    right_margin_label,
    stars,
    vline,
)

TERM_LABEL_WIDTH = 28  # characters per line of a forest plot's row label (long subset names wrap)


def subgroup_rates_figure(
    rates: pd.DataFrame,
    *,
    title: str | None = None,
    min_n: int = 30,
    subgroups: Sequence[str] = (),
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """Misclassification rate by subgroup level for one model and finding, with patient-clustered 95% CIs and n.

    ``rates``: rows of ``subgroup_rates``. Each subgroup's block starts with its reference row (the rate over
    the rows where the subgroup is known: for a subset, the subset's own rate, the one its levels compare
    with), drawn as a grey diamond and labelled with the subset's size. Levels flagged insufficient (too few
    effective rows, patients or events) are greyed out.
    """
    if rates.empty:
        return empty_figure(title or "Misclassification by subgroup", "no subgroup rows")
    order = ordered(rates["subgroup"], subgroups)
    rows = rates.assign(
        _order=rates["subgroup"].map({s: i for i, s in enumerate(order)}), _level=~rates["is_reference"].astype(bool)
    ).sort_values(["_order", "_level"], kind="stable")
    reference = rows["is_reference"].astype(bool).to_numpy()
    labels = [
        f"{escape(s)}: reference" if ref else f"{escape(s)} = {escape(lvl)}"
        for s, lvl, ref in zip(rows["subgroup"], rows["level"], reference)
    ]
    sufficient = rows["sufficient"].astype(bool).to_numpy()
    text = []
    for r, n, ok, ref, row in zip(rows["rate"], rows["n"].astype(int), sufficient, reference, rows.itertuples()):
        if ref:  # the subset's size and sampling are in the footnotes (`FigureContext.subsets`)
            text.append(f"{r:.1%} (n={int(row.subset_n):,})" if row.is_subset else f"{r:.1%} (all)")
        else:
            text.append(f"{r:.1%} (n={n:,})" if ok else f"n={n}: too few")
    hover = [
        f"{k:,} of {n:,} misclassified ({p:,} patients)<br>rate {r:.1%} [{lo:.1%}, {hi:.1%}] (patients "
        f"clustered)<br>Wilson on rows [{wl:.1%}, {wh:.1%}], design effect {d:.1f}"
        for k, n, p, r, lo, hi, wl, wh, d in zip(
            rows["n_misclassified"].astype(int),
            rows["n"].astype(int),
            rows["n_patients"].astype(int),
            rows["rate"],
            rows["ci_low"],
            rows["ci_high"],
            rows["wilson_low"],
            rows["wilson_high"],
            rows["design_effect"].astype(float),
        )
    ]
    fig = go.Figure()
    kinds = (
        (reference, "reference: rate where the subgroup is known", BASELINE_COLOR, "diamond"),
        (~reference & sufficient, "rate (95% CI, patients clustered)", SUFFICIENT_COLOR, "circle"),
        (
            ~reference & ~sufficient,
            "insufficient (too few effective rows, patients or events)",
            INSUFFICIENT_COLOR,
            "circle-open",
        ),
    )
    for mask, name, color, symbol in kinds:
        if not mask.any():
            continue
        part = rows.loc[mask]
        fig.add_trace(
            go.Scatter(
                x=part["rate"],
                y=np.array(labels)[mask],
                mode="markers",
                name=name,
                marker=dict(color=color, size=9, symbol=symbol),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=part["ci_high"] - part["rate"],
                    arrayminus=part["rate"] - part["ci_low"],
                    color=color,
                    thickness=1.5,
                ),
                customdata=np.array(hover)[mask],
                hovertemplate="%{y}<br>%{customdata}<extra></extra>",
            )
        )
    for label, value, ok in zip(labels, text, sufficient):
        right_margin_label(fig, label, value, color=SUFFICIENT_COLOR if ok else INSUFFICIENT_COLOR)
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", categoryarray=labels)
    fig.update_xaxes(title="misclassification rate", tickformat=".0%", rangemode="tozero")
    notes = [
        context.test_split_note,
        "each level compares with its subgroup's reference row; right: rate (n); "
        f"{insufficient_label(min_n)} or too few patients: grey; patients and CIs: hover, or the table",
    ]
    notes += context.caveats(rates.get("finding", pd.Series(dtype=str)).unique(), order)
    fig = apply_layout(fig, title or "Misclassification by subgroup", height=180 + 28 * len(labels), notes=notes)
    fig.update_layout(margin=dict(r=130))
    return put_legend_under_title(fig)


def forest_plot(
    regression: pd.DataFrame, *, title: str | None = None, alpha: float = 0.05, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """Odds ratios of one model × finding's regression with 95% CIs, raw p and Holm/BH-adjusted q."""
    if regression.empty:
        return empty_figure(title or "Odds ratios", "no regression terms")
    rows = regression.loc[
        regression["term"].notna() & ~regression["term"].astype(str).str.lower().isin(["intercept", "const"])
    ]
    rows = rows.loc[np.isfinite(rows["odds_ratio"].astype(float))]
    if rows.empty:
        return empty_figure(title or "Odds ratios", "no estimable terms")
    significant = (rows["q_bh"].astype(float) < alpha).to_numpy()
    colors = np.where(significant, PALETTE[1], SUFFICIENT_COLOR)
    terms = _term_labels(rows)
    labels = ["<br>".join(escape(line) for line in textwrap.wrap(term, width=TERM_LABEL_WIDTH)) for term in terms]
    text = [
        f"{o:.2f} [{lo:.2f}, {hi:.2f}]{stars(q, alpha)}"
        for o, lo, hi, q in zip(rows["odds_ratio"], rows["ci_low"], rows["ci_high"], rows["q_bh"])
    ]
    hover = [
        f"OR {o:.3f} [{lo:.3f}, {hi:.3f}]<br>p={fmt_p(p)}, q (Holm)={fmt_p(qh)}, q (BH)={fmt_p(qb)}"
        for o, lo, hi, p, qh, qb in zip(
            rows["odds_ratio"], rows["ci_low"], rows["ci_high"], rows["p_value"], rows["q_holm"], rows["q_bh"]
        )
    ]
    fig = go.Figure(
        go.Scatter(
            x=rows["odds_ratio"],
            y=labels,
            mode="markers",
            marker=dict(color=colors, size=10, symbol="square"),
            error_x=dict(
                type="data",
                symmetric=False,
                array=rows["ci_high"] - rows["odds_ratio"],
                arrayminus=rows["odds_ratio"] - rows["ci_low"],
                color="#52606d",
                thickness=1.5,
            ),
            customdata=hover,
            hovertemplate="%{y}<br>%{customdata}<extra></extra>",
            showlegend=False,
        )
    )
    vline(fig, 1.0, "#52606d", dash="dash")
    for label, value in zip(labels, text):
        right_margin_label(fig, label, value)
    bounds = pd.concat([rows["ci_low"], rows["ci_high"], rows["odds_ratio"]]).astype(float)
    bounds = bounds[np.isfinite(bounds) & (bounds > 0)]
    low, high = min(float(bounds.min()), 1.0), max(float(bounds.max()), 1.0)
    tickvals, ticktext = log_ticks(low, high)
    fig.update_xaxes(
        type="log",
        title="odds ratio of misclassification (log scale)",
        tickvals=tickvals,
        ticktext=ticktext,
        range=[np.log10(min(low, tickvals[0])) - 0.05, np.log10(max(high, tickvals[-1])) + 0.05],
    )
    fig.update_yaxes(autorange="reversed", type="category")
    notes = [
        f"{context.test_split_note}; right: OR [95% CI]; red: q (BH) < {alpha}; * q<{alpha}, "
        f"** q<{alpha / 5:g}, *** q<{alpha / 50:g}; p and q of each term: hover, or the regression table"
    ]
    for sample, group in rows.groupby("family", sort=False) if "family" in rows else [("", rows)]:
        n = int(group["n"].iloc[0]) if "n" in group and len(group) else 0
        notes.append(
            f"{sample or 'fit'}: n={n:,} {plural(context.unit)}"
            + (f", {int(group['n_events'].iloc[0]):,} misclassified" if "n_events" in group else "")
        )
    not_converged = "converged" in rows and not rows["converged"].astype(bool).all()
    if not_converged:
        notes.append("warning: the regression did not converge; treat these estimates with caution")
    notes += context.caveats(regression.get("finding", pd.Series(dtype=str)).unique(), terms)
    row_px = sum(16 + 16 * (label.count("<br>") + 1) for label in labels)  # wrapped labels take more lines
    fig = apply_layout(fig, title or "Odds ratios of misclassification", height=170 + row_px, notes=notes)
    fig.update_layout(margin=dict(r=150))
    return fig


def _term_labels(rows: pd.DataFrame) -> list[str]:
    """Term names, with the fit's sample when a term comes from a fit on a subset (e.g. the rows where
    support devices are known)."""
    if "family" not in rows:
        return rows["term"].astype(str).tolist()
    return [
        str(term) if (pd.isna(sample) or sample == ALL_ROWS_FAMILY) else f"{term} ({sample})"
        for term, sample in zip(rows["term"], rows["family"])
    ]


def term_heatmap(
    regression: pd.DataFrame,
    term: str,
    *,
    q_column: str = "q_bh",
    alpha: float = 0.05,
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """One regression term's odds ratio across models × findings, with significance marks (from the main fit
    where the term is in it, else from the subset fit that has it)."""
    rows = regression.loc[regression["term"] == term].copy()
    if "family" in rows and len(rows):
        rows["_main"] = rows["family"] == ALL_ROWS_FAMILY
        rows = rows.sort_values("_main", ascending=False, kind="stable").drop_duplicates(["model", "finding"])
    title = f"Odds ratio of '{escape(term)}' per model and finding"
    if rows.empty:
        return empty_figure(title, f"the term {term!r} is in no regression")
    rows["log2_or"] = np.log2(rows["odds_ratio"].astype(float))
    text = rows.apply(lambda r: f"{r['odds_ratio']:.2f}{stars(r[q_column], alpha)}", axis=1)
    hover = rows.apply(
        lambda r: (
            f"OR {r['odds_ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}], "
            f"p={fmt_p(r['p_value'])}, {q_column}={fmt_p(r[q_column])}, n={int(r['n']):,}"
        ),
        axis=1,
    )
    bound = float(np.nanmax(np.abs(rows["log2_or"].replace([np.inf, -np.inf], np.nan)))) if len(rows) else 1.0
    bound = bound if np.isfinite(bound) and bound > 0 else 1.0
    return model_finding_heatmap(
        rows,
        "log2_or",
        title=title,
        text=text,
        hover=hover,
        colorscale="RdBu_r",
        zmin=-bound,
        zmax=bound,
        zmid=0.0,
        colorbar_title="log2 OR",
        notes=[f"* {q_column} < {alpha}, ** < {alpha / 5:g}, *** < {alpha / 50:g}; {context.test_split_note}"]
        + context.caveats((), [term]),
        context=context,
    )
