"""Plotly figure builders for the dashboard and the CLI report: tables in, ``go.Figure`` out.

Every builder is pure (no streamlit, no file I/O) and takes the tables of `cxrfail.analysis.pipeline.
AnalysisResult` (or slices of them) with the columns documented there. Figures carry their own caveats as a
footnote, so an exported PNG says what a reader needs: the unit of analysis, the split, approximate findings
(Lung Lesion on NIH = Mass or Nodule), the support-device label's provenance and oracle feature sets.

`report_figures(result)` builds the standard set with stable, file-safe names for the report and the export
bundle.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cxrfail.analysis.subgroups import wilson_interval
from cxrfail.findings import APPROXIMATE_FINDINGS

# ------------------------------------------------------------------------------------------------ constants

PALETTE = ("#1f5f8b", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30638e", "#a05c34")
SUFFICIENT_COLOR = "#1f5f8b"
INSUFFICIENT_COLOR = "#9aa5b1"
BASELINE_COLOR = "#9aa5b1"
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13, color="#1d2731")
GRID = "#e5eaf0"
_TEMPLATE: go.layout.Template | None = None


def template() -> go.layout.Template:
    """A light white template (plotly's "plotly_white" costs ~80 ms per figure to copy; this one ~1 ms)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        axis = dict(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID, automargin=True, title=dict(standoff=12))
        _TEMPLATE = go.layout.Template(layout=dict(
            paper_bgcolor="white", plot_bgcolor="white", colorway=list(PALETTE), font=FONT,
            xaxis=axis, yaxis=axis, hoverlabel=dict(align="left"),
        ))
    return _TEMPLATE

TEST_SPLIT_NOTE = "held-out test split; unit of analysis: image"
DEVICES_CAVEAT = ("Support Devices: read from the images by non-radiologist readers (two readers, kappa 0.92), "
                  "known for the 621 imaged images only")
ORACLE_NOTE = "oracle feature set: uses ground-truth finding labels a deployed system would not have"


def insufficient_label(min_n: int) -> str:
    return f"insufficient (n < {min_n})"


def finding_label(finding: str) -> str:
    """The finding's display name, starred when it only approximates its CheXpert meaning."""
    return f"{finding}*" if finding in APPROXIMATE_FINDINGS else finding


def caveats(findings: Iterable[str] = (), subgroups: Iterable[str] = (), *, oracle: bool = False) -> list[str]:
    """The caveat lines that apply to a figure or table showing these findings and subgroups."""
    lines: list[str] = []
    names = {_plain(name) for name in findings} | {_plain(name) for name in subgroups}
    for finding, reason in APPROXIMATE_FINDINGS.items():
        if any(_plain(finding) in name for name in names):
            lines.append(f"*{finding}: approximate, {reason}")
    if any("support device" in name for name in names):
        lines.append(DEVICES_CAVEAT)
    if oracle:
        lines.append(ORACLE_NOTE)
    return lines


def _plain(name: object) -> str:
    return re.sub(r"[_\s]+", " ", str(name)).lower()


def slug(*parts: object) -> str:
    """A stable, file-safe name: lower case, [a-z0-9_-] only."""
    text = "_".join(str(part) for part in parts if part is not None and str(part) != "")
    text = re.sub(r"[^A-Za-z0-9+\-]+", "_", text).strip("_").lower()
    return text.replace("+", "-") or "figure"


# ------------------------------------------------------------------------------------------------- helpers


NOTE_WIDTH = 100  # characters per footnote line


def _wrap(notes: Sequence[str], width: int = NOTE_WIDTH) -> list[str]:
    lines: list[str] = []
    for note in notes:
        lines += textwrap.wrap(str(note), width=width, subsequent_indent="  ") or [""]
    return lines


def _layout_dict(title: str, *, height: int | None = None, notes: Sequence[str] = ()) -> dict:
    """The shared layout: title, template, margins and the caveat footnotes (wrapped; the figure grows by
    the lines they take)."""
    notes = _wrap(notes)
    bottom = 60 + 16 * len(notes)
    layout = dict(
        title=dict(text=title, x=0.0, xanchor="left", font=dict(size=16)),
        template=template(),
        font=FONT,
        margin=dict(l=70, r=30, t=70, b=bottom),
        height=None if height is None else height + 16 * len(notes),
        hoverlabel=dict(namelength=-1),
    )
    if notes:
        layout["annotations"] = [dict(
            text="<br>".join(notes), xref="paper", yref="paper", x=0.0, y=0.0, yshift=-(bottom - 8),
            xanchor="left", yanchor="bottom", showarrow=False, align="left", font=dict(size=11, color="#52606d"),
        )]
    return layout


def _layout(fig: go.Figure, title: str, *, height: int | None = None, notes: Sequence[str] = ()) -> go.Figure:
    """Apply `_layout_dict` in one update (keeps the figure's own annotations)."""
    layout = _layout_dict(title, height=height, notes=notes)
    extra = layout.pop("annotations", [])
    fig.update_layout(layout)
    for annotation in extra:
        fig.add_annotation(annotation)
    return fig


def _vline(fig: go.Figure, x: float, color: str, *, dash: str = "solid", text: str = "",
           position: str = "top") -> None:
    """A vertical line across the plot with a label (a plain shape: `add_vline` is ~10x slower)."""
    fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper",
                  line=dict(color=color, width=2, dash=dash))
    if text:
        fig.add_annotation(x=x, y=1.0 if position == "top" else 0.0, xref="x", yref="paper", text=text,
                           showarrow=False, xanchor="right" if position == "top" else "left",
                           yanchor="bottom" if position == "top" else "top", font=dict(size=11, color=color))


def _hline(fig: go.Figure, y: float, color: str = "#52606d", dash: str = "dot") -> None:
    fig.add_shape(type="line", x0=0, x1=1, y0=y, y1=y, xref="paper", yref="y",
                  line=dict(color=color, width=1, dash=dash))


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#52606d"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=300)


def _select(table: pd.DataFrame, **where: object) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        if value is not None:
            mask &= (table[column] == value).to_numpy()
    return table.loc[mask]


def _order(values: Iterable[object], preferred: Sequence[object] = ()) -> list:
    present = list(dict.fromkeys(values))
    first = [value for value in preferred if value in present]
    return first + [value for value in present if value not in first]


def _fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_value(value: object) -> str:
    """A feature value for a label: 3 significant digits, 'unknown' for NaN."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "unknown"
    return f"{number:.3g}"


def _stars(q: float, alpha: float = 0.05) -> str:
    if q is None or (isinstance(q, float) and math.isnan(q)):
        return ""
    if q < alpha / 50:
        return "***"
    if q < alpha / 5:
        return "**"
    if q < alpha:
        return "*"
    return ""


# --------------------------------------------------------------------------------------- derived tables


def overall_misclassification(outcomes: pd.DataFrame, split: str | None = "test") -> pd.DataFrame:
    """Misclassification rate per (model, finding) with a Wilson 95% CI.

    Columns: model, finding, n, n_misclassified, rate, ci_low, ci_high, n_fp, n_fn (``split`` rows only, or
    every row when ``split`` is None).
    """
    columns = ["model", "finding", "n", "n_misclassified", "rate", "ci_low", "ci_high", "n_fp", "n_fn"]
    rows = outcomes if split is None else outcomes.loc[outcomes["split"] == split]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    frame = rows[["model", "finding", "misclassified", "label", "prediction"]].copy()
    frame["misclassified"] = frame["misclassified"].astype(bool)
    frame["fp"] = frame["misclassified"] & (frame["label"] == 0)
    frame["fn"] = frame["misclassified"] & (frame["label"] == 1)
    grouped = frame.groupby(["model", "finding"], sort=False)
    table = grouped.agg(n=("misclassified", "size"), n_misclassified=("misclassified", "sum"),
                        n_fp=("fp", "sum"), n_fn=("fn", "sum")).reset_index()
    table["rate"] = table["n_misclassified"] / table["n"]
    table["ci_low"], table["ci_high"] = wilson_interval(table["n_misclassified"], table["n"])
    return table[columns]


def effect_summary(regression: pd.DataFrame, *, q_column: str = "q_bh", alpha: float = 0.05) -> pd.DataFrame:
    """Where the action is: per (model, finding), how many regression terms are significant after
    correction, and the term with the largest effect (|log OR|) among them (or overall when none is).

    Columns: model, finding, n_significant, top_term, top_odds_ratio, top_q.
    """
    columns = ["model", "finding", "n_significant", "top_term", "top_odds_ratio", "top_q"]
    if regression.empty:
        return pd.DataFrame(columns=columns)
    terms = regression.loc[regression["term"].notna()
                           & ~regression["term"].astype(str).str.lower().isin(["intercept", "const"])].copy()
    terms["abs_log_or"] = np.abs(np.log(terms["odds_ratio"].astype(float)))
    terms["significant"] = terms[q_column].astype(float) < alpha
    rows = []
    for (model, finding), group in terms.groupby(["model", "finding"], sort=False):
        group = group.loc[np.isfinite(group["abs_log_or"])]
        pool = group.loc[group["significant"]] if group["significant"].any() else group
        if pool.empty:
            rows.append((model, finding, 0, None, np.nan, np.nan))
            continue
        top = pool.loc[pool["abs_log_or"].idxmax()]
        rows.append((model, finding, int(group["significant"].sum()), str(top["term"]),
                     float(top["odds_ratio"]), float(top[q_column])))
    return pd.DataFrame(rows, columns=columns)


def subgroup_rate_range(subgroup_rates: pd.DataFrame) -> pd.DataFrame:
    """Per (model, finding, subgroup): the spread of misclassification rates between sufficient levels.

    Columns: model, finding, subgroup, spread, lowest, min_rate, n_lowest, highest, max_rate, n_highest.
    """
    columns = ["model", "finding", "subgroup", "spread", "lowest", "min_rate", "n_lowest", "highest", "max_rate",
               "n_highest"]
    usable = subgroup_rates.loc[subgroup_rates["sufficient"].astype(bool)]
    rows = []
    for (model, finding, subgroup), group in usable.groupby(["model", "finding", "subgroup"], sort=False):
        if len(group) < 2:
            continue
        low, high = group.loc[group["rate"].idxmin()], group.loc[group["rate"].idxmax()]
        rows.append((model, finding, subgroup, float(high["rate"] - low["rate"]), str(low["level"]),
                     float(low["rate"]), int(low["n"]), str(high["level"]), float(high["rate"]), int(high["n"])))
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------------------------------ overview


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
) -> go.Figure:
    """A models (rows) × findings (columns) heatmap of ``table[value]``, one row of ``table`` per cell."""
    if table.empty:
        return _empty(title, "no data")
    model_order = _order(table["model"], models)
    finding_order = _order(table["finding"], findings)
    keyed = table.assign(_text=text if text is not None else table[value].map(lambda v: f"{v:.3f}"),
                         _hover=hover if hover is not None else "")
    keyed = keyed.set_index(["model", "finding"])
    z, texts, hovers = [], [], []
    for model in model_order:
        z_row, t_row, h_row = [], [], []
        for finding in finding_order:
            if (model, finding) in keyed.index:
                row = keyed.loc[(model, finding)]
                if isinstance(row, pd.DataFrame):
                    row = row.iloc[0]
                z_row.append(float(row[value]) if pd.notna(row[value]) else None)
                t_row.append(str(row["_text"]))
                h_row.append(str(row["_hover"]))
            else:
                z_row.append(None)
                t_row.append("")
                h_row.append("not run")
        z.append(z_row)
        texts.append(t_row)
        hovers.append(h_row)
    fig = go.Figure(go.Heatmap(
        z=z, x=[finding_label(f) for f in finding_order], y=model_order, text=texts, customdata=hovers,
        texttemplate="%{text}", colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid,
        colorbar=dict(title=dict(text=colorbar_title)), xgap=2, ygap=2,
        hovertemplate="%{y} · %{x}<br>%{text}<br>%{customdata}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    notes = list(notes) + caveats(finding_order)
    return _layout(fig, title, height=max(260, 110 + 60 * len(model_order)), notes=notes)


def auroc_heatmap(performance: pd.DataFrame) -> go.Figure:
    """Each model's AUROC per finding (performance table)."""
    hover = performance.apply(
        lambda r: f"n={int(r['n'])}, positives={int(r['n_pos'])}, threshold={r['threshold']:.3f}, "
                  f"test F1={r['f1']:.3f}", axis=1) if not performance.empty else None
    return model_finding_heatmap(
        performance, "auroc", title="AUROC per model and finding", hover=hover, colorscale="Blues",
        zmin=0.5, zmax=1.0, colorbar_title="AUROC",
        notes=["AUROC over every image of the cohort (needs no threshold)"],
    )


def misclassification_heatmap(overall: pd.DataFrame) -> go.Figure:
    """Misclassification rate per model and finding at the calibration-chosen threshold (from
    `overall_misclassification`)."""
    if overall.empty:
        return _empty("Misclassification rate", "no test rows")
    text = overall.apply(lambda r: f"{r['rate']:.1%}<br>[{r['ci_low']:.1%}, {r['ci_high']:.1%}]", axis=1)
    hover = overall.apply(lambda r: f"{int(r['n_misclassified'])} of {int(r['n'])} images misclassified "
                                    f"({int(r['n_fp'])} FP, {int(r['n_fn'])} FN)", axis=1)
    return model_finding_heatmap(
        overall, "rate", title="Misclassification rate (95% Wilson CI)", text=text, hover=hover,
        colorscale="Reds", zmin=0, colorbar_title="rate", notes=[TEST_SPLIT_NOTE],
    )


def effects_heatmap(summary: pd.DataFrame, *, q_column: str = "q_bh", alpha: float = 0.05) -> go.Figure:
    """Where the action is: number of significant regression terms per model × finding, with the strongest."""
    if summary.empty:
        return _empty("Subgroup effects", "no regression results")
    text = summary.apply(
        lambda r: (f"{int(r['n_significant'])}<br>{r['top_term']}: OR {r['top_odds_ratio']:.2f}"
                   if r["top_term"] is not None and pd.notna(r["top_odds_ratio"]) else str(int(r["n_significant"]))),
        axis=1)
    hover = summary.apply(lambda r: f"strongest term {r['top_term']} (q={_fmt_p(r['top_q'])})", axis=1)
    return model_finding_heatmap(
        summary, "n_significant", title=f"Subgroup effects: terms with {q_column} < {alpha}", text=text,
        hover=hover, colorscale="Oranges", zmin=0, colorbar_title="terms",
        notes=["multivariable logistic regression of misclassification; " + TEST_SPLIT_NOTE],
    )


def age_histogram(ages: pd.Series, *, title: str = "Age") -> go.Figure:
    values = pd.to_numeric(ages, errors="coerce").dropna()
    if values.empty:
        return _empty(title, "age not known")
    fig = go.Figure(go.Histogram(x=values, xbins=dict(size=5), marker_color=PALETTE[0],
                                 hovertemplate="%{x} years: %{y} images<extra></extra>"))
    fig.update_xaxes(title="age (years)")
    fig.update_yaxes(title="images")
    return _layout(fig, f"{title} (n={len(values):,})", height=300)


def count_bars(counts: Mapping[object, int], *, title: str, unit: str = "images") -> go.Figure:
    """Horizontal bars of category counts with their share (sex mix, view mix)."""
    if not counts:
        return _empty(title, "no data")
    labels = ["unknown" if (k is None or (isinstance(k, float) and math.isnan(k)) or k is pd.NA) else str(k)
              for k in counts]
    values = [int(v) for v in counts.values()]
    total = sum(values)
    fig = go.Figure(go.Bar(
        x=values, y=labels, orientation="h", marker_color=PALETTE[0],
        text=[f"{v:,} ({v / total:.0%})" for v in values], textposition="auto",
        hovertemplate="%{y}: %{x} " + unit + "<extra></extra>",
    ))
    fig.update_xaxes(title=unit)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=120 + 40 * len(values))


# ----------------------------------------------------------------------------------------------- subgroups


def subgroup_rates_figure(
    rates: pd.DataFrame, *, title: str | None = None, min_n: int = 30, subgroups: Sequence[str] = ()
) -> go.Figure:
    """Misclassification rate by subgroup level for one model and finding, with 95% CI and n.

    ``rates``: rows of ``subgroup_rates`` (subgroup, level, n, n_misclassified, rate, ci_low, ci_high,
    sufficient). Levels under ``min_n`` (``sufficient`` False) are greyed out and labelled insufficient.
    """
    if rates.empty:
        return _empty(title or "Misclassification by subgroup", "no subgroup rows")
    order = _order(rates["subgroup"], subgroups)
    rows = rates.assign(_order=rates["subgroup"].map({s: i for i, s in enumerate(order)})).sort_values(
        ["_order"], kind="stable")
    labels = [f"{s} = {lvl}" for s, lvl in zip(rows["subgroup"], rows["level"])]
    sufficient = rows["sufficient"].astype(bool).to_numpy()
    text = [f"{r:.1%}  (n={n:,})" if ok else f"{insufficient_label(min_n)}, n={n}"
            for r, n, ok in zip(rows["rate"], rows["n"].astype(int), sufficient)]
    hover = [f"{k:,} of {n:,} misclassified<br>rate {r:.1%} [{lo:.1%}, {hi:.1%}]"
             for k, n, r, lo, hi in zip(rows["n_misclassified"].astype(int), rows["n"].astype(int),
                                        rows["rate"], rows["ci_low"], rows["ci_high"])]
    fig = go.Figure()
    for ok, name, color in ((True, "rate (95% Wilson CI)", SUFFICIENT_COLOR),
                            (False, insufficient_label(min_n), INSUFFICIENT_COLOR)):
        mask = sufficient == ok
        if not mask.any():
            continue
        part = rows.loc[mask]
        fig.add_trace(go.Scatter(
            x=part["rate"], y=np.array(labels)[mask], mode="markers", name=name,
            marker=dict(color=color, size=9, symbol="circle" if ok else "circle-open"),
            error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["rate"],
                         arrayminus=part["rate"] - part["ci_low"], color=color, thickness=1.5),
            customdata=np.array(hover)[mask], hovertemplate="%{y}<br>%{customdata}<extra></extra>",
        ))
    for label, value, ok in zip(labels, text, sufficient):
        fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=label, text=value, showarrow=False, xshift=8,
                           font=dict(size=11, color=SUFFICIENT_COLOR if ok else INSUFFICIENT_COLOR))
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", categoryarray=labels)
    fig.update_xaxes(title="misclassification rate", tickformat=".0%", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    notes = [TEST_SPLIT_NOTE] + caveats(rates.get("finding", pd.Series(dtype=str)).unique(), order)
    fig = _layout(fig, title or "Misclassification by subgroup", height=160 + 28 * len(labels), notes=notes)
    fig.update_layout(margin=dict(r=230))
    return fig


def forest_plot(regression: pd.DataFrame, *, title: str | None = None, alpha: float = 0.05) -> go.Figure:
    """Odds ratios of one model × finding's regression with 95% CIs, raw p and Holm/BH-adjusted q."""
    if regression.empty:
        return _empty(title or "Odds ratios", "no regression terms")
    rows = regression.loc[regression["term"].notna()
                          & ~regression["term"].astype(str).str.lower().isin(["intercept", "const"])]
    rows = rows.loc[np.isfinite(rows["odds_ratio"].astype(float))]
    if rows.empty:
        return _empty(title or "Odds ratios", "no estimable terms")
    significant = (rows["q_bh"].astype(float) < alpha).to_numpy()
    colors = np.where(significant, PALETTE[1], SUFFICIENT_COLOR)
    labels = _term_labels(rows)
    text = [f"{o:.2f} [{lo:.2f}, {hi:.2f}]  p={_fmt_p(p)}  q={_fmt_p(q)}{_stars(q, alpha)}"
            for o, lo, hi, p, q in zip(rows["odds_ratio"], rows["ci_low"], rows["ci_high"], rows["p_value"],
                                       rows["q_bh"])]
    hover = [f"OR {o:.3f} [{lo:.3f}, {hi:.3f}]<br>p={_fmt_p(p)}, q (Holm)={_fmt_p(qh)}, q (BH)={_fmt_p(qb)}"
             for o, lo, hi, p, qh, qb in zip(rows["odds_ratio"], rows["ci_low"], rows["ci_high"], rows["p_value"],
                                             rows["q_holm"], rows["q_bh"])]
    fig = go.Figure(go.Scatter(
        x=rows["odds_ratio"], y=labels, mode="markers", marker=dict(color=colors, size=10, symbol="square"),
        error_x=dict(type="data", symmetric=False, array=rows["ci_high"] - rows["odds_ratio"],
                     arrayminus=rows["odds_ratio"] - rows["ci_low"], color="#52606d", thickness=1.5),
        customdata=hover, hovertemplate="%{y}<br>%{customdata}<extra></extra>", showlegend=False,
    ))
    _vline(fig, 1.0, "#52606d", dash="dash")
    for label, value in zip(labels, text):
        fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=label, text=value, showarrow=False,
                           font=dict(size=11), xshift=8)
    fig.update_xaxes(type="log", title="odds ratio of misclassification (log scale)")
    fig.update_yaxes(autorange="reversed", type="category")
    notes = [f"{TEST_SPLIT_NOTE}; red: q (BH) < {alpha}; * q<{alpha}, ** q<{alpha / 5:g}, *** q<{alpha / 50:g}"]
    for sample, group in (rows.groupby("sample", sort=False) if "sample" in rows else [("", rows)]):
        n = int(group["n"].iloc[0]) if "n" in group and len(group) else 0
        notes.append(f"{sample or 'fit'}: n={n:,} images" + (f", {int(group['n_events'].iloc[0]):,} misclassified"
                                                              if "n_events" in group else ""))
    not_converged = "converged" in rows and not rows["converged"].astype(bool).all()
    if not_converged:
        notes.append("warning: the regression did not converge; treat these estimates with caution")
    notes += caveats(regression.get("finding", pd.Series(dtype=str)).unique(), labels)
    fig = _layout(fig, title or "Odds ratios of misclassification", height=170 + 32 * len(labels),
                  notes=notes)
    fig.update_layout(margin=dict(r=330))
    return fig


MAIN_SAMPLE = "all test rows"


def _term_labels(rows: pd.DataFrame) -> list[str]:
    """Term names, with the fit's sample when a term comes from a fit on a subset (e.g. the rows where
    support devices are known)."""
    if "sample" not in rows:
        return rows["term"].astype(str).tolist()
    return [str(term) if (pd.isna(sample) or sample == MAIN_SAMPLE) else f"{term} ({sample})"
            for term, sample in zip(rows["term"], rows["sample"])]


def regression_terms(regression: pd.DataFrame) -> list[str]:
    """The regression's terms (no intercept), in first-seen order."""
    terms = regression["term"].dropna().astype(str)
    return [t for t in dict.fromkeys(terms) if t.lower() not in ("intercept", "const")]


def term_heatmap(regression: pd.DataFrame, term: str, *, q_column: str = "q_bh", alpha: float = 0.05) -> go.Figure:
    """One regression term's odds ratio across models × findings, with significance marks (from the main fit
    where the term is in it, else from the subset fit that has it)."""
    rows = regression.loc[regression["term"] == term].copy()
    if "sample" in rows and len(rows):
        rows["_main"] = rows["sample"] == MAIN_SAMPLE
        rows = rows.sort_values("_main", ascending=False, kind="stable").drop_duplicates(["model", "finding"])
    title = f"Odds ratio of '{term}' per model and finding"
    if rows.empty:
        return _empty(title, f"the term {term!r} is in no regression")
    rows["log2_or"] = np.log2(rows["odds_ratio"].astype(float))
    text = rows.apply(lambda r: f"{r['odds_ratio']:.2f}{_stars(r[q_column], alpha)}", axis=1)
    hover = rows.apply(lambda r: f"OR {r['odds_ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}], "
                                 f"p={_fmt_p(r['p_value'])}, {q_column}={_fmt_p(r[q_column])}, n={int(r['n']):,}",
                       axis=1)
    bound = float(np.nanmax(np.abs(rows["log2_or"].replace([np.inf, -np.inf], np.nan)))) if len(rows) else 1.0
    bound = bound if np.isfinite(bound) and bound > 0 else 1.0
    return model_finding_heatmap(
        rows, "log2_or", title=title, text=text, hover=hover, colorscale="RdBu_r", zmin=-bound, zmax=bound,
        zmid=0.0, colorbar_title="log2 OR",
        notes=[f"* {q_column} < {alpha}, ** < {alpha / 5:g}, *** < {alpha / 50:g}; {TEST_SPLIT_NOTE}"]
        + caveats((), [term]),
    )


# --------------------------------------------------------------------------------------------- identifiers


def identifier_heatmaps(identifiers: pd.DataFrame, learner: str, feature_set: str) -> go.Figure:
    """Identifier AUROC (predicting misclassification) beside the confidence baseline, models × findings."""
    rows = _select(identifiers, learner=learner, feature_set=feature_set)
    oracle = bool(rows["oracle"].astype(bool).any()) if len(rows) else False
    tag = " [ORACLE]" if oracle else ""
    title = f"Identifier AUROC: {learner} on {feature_set}{tag} vs confidence baseline"
    if rows.empty:
        return _empty(title, "this learner and feature set were not run")
    model_order = _order(rows["model"])
    finding_order = _order(rows["finding"])
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=(f"identifier{tag}", "baseline: model confidence"))
    for col, (value, low, high) in enumerate((("auroc", "ci_low", "ci_high"),
                                               ("baseline_auroc", "baseline_ci_low", "baseline_ci_high")), 1):
        keyed = rows.set_index(["model", "finding"])
        z, text = [], []
        for model in model_order:
            z_row, t_row = [], []
            for finding in finding_order:
                if (model, finding) in keyed.index:
                    r = keyed.loc[(model, finding)]
                    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                    z_row.append(float(r[value]))
                    t_row.append(f"{r[value]:.3f}<br>[{r[low]:.2f}, {r[high]:.2f}]")
                else:
                    z_row.append(None)
                    t_row.append("")
            z.append(z_row)
            text.append(t_row)
        fig.add_trace(go.Heatmap(
            z=z, x=[finding_label(f) for f in finding_order], y=model_order, text=text, texttemplate="%{text}",
            colorscale="Viridis", zmin=0.5, zmax=1.0, showscale=col == 2, xgap=2, ygap=2,
            colorbar=dict(title=dict(text="AUROC")),
            hovertemplate="%{y} · %{x}<br>AUROC %{text}<extra></extra>",
        ), row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    n = int(rows["n"].max())
    notes = [f"patient-grouped out-of-fold probabilities over the whole cohort (n up to {n:,} images); "
             "AUROC for predicting whether the model misclassifies the image; 95% CI in brackets"]
    notes += caveats(finding_order, oracle=oracle)
    return _layout(fig, title, height=max(300, 130 + 60 * len(model_order)), notes=notes)


def _roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    keep = np.isfinite(score)
    y, score = y[keep], score[keep]
    if len(np.unique(y)) < 2:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    fpr, tpr, _ = roc_curve(y, score)
    return fpr, tpr, float(roc_auc_score(y, score))


def roc_figure(scores: pd.DataFrame, *, title: str | None = None, oracle: bool = False) -> go.Figure:
    """ROC curves of the identifier and the confidence baseline for one model × finding × learner × feature
    set (rows of ``identifier_scores``)."""
    title = title or "ROC: predicting misclassification"
    if scores.empty:
        return _empty(title, "no identifier scores")
    y = scores["misclassified"].astype(int).to_numpy()
    fig = go.Figure()
    for column, name, color, dash in (("identifier_score", "identifier" + (" [ORACLE]" if oracle else ""),
                                       PALETTE[1], "solid"),
                                      ("baseline_score", "confidence baseline", BASELINE_COLOR, "dash")):
        fpr, tpr, auc = _roc_points(y, scores[column].astype(float).to_numpy())
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUROC {auc:.3f})",
                                 line=dict(color=color, dash=dash, width=2),
                                 hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", showlegend=False,
                             line=dict(color="#cbd2d9", dash="dot", width=1), hoverinfo="skip"))
    fig.update_xaxes(title="false positive rate", range=[0, 1], constrain="domain")
    fig.update_yaxes(title="true positive rate", range=[0, 1], scaleanchor="x", scaleratio=1)
    fig.update_layout(legend=dict(x=0.98, y=0.02, xanchor="right", yanchor="bottom"))
    notes = [f"n={len(y):,} images ({int(y.sum()):,} misclassified); out-of-fold, patient-grouped"]
    notes += caveats(scores.get("finding", pd.Series(dtype=str)).unique(), oracle=oracle)
    return _layout(fig, title, height=520, notes=notes)


# --------------------------------------------------------------------------------------------------- SHAP


def shap_importance(shap_values: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| per feature (columns feature, mean_abs_shap, n), largest first."""
    if shap_values.empty:
        return pd.DataFrame(columns=["feature", "mean_abs_shap", "n"])
    table = (shap_values.assign(_abs=shap_values["shap_value"].abs())
             .groupby("feature", sort=False).agg(mean_abs_shap=("_abs", "mean"), n=("image_id", "nunique"))
             .reset_index().sort_values("mean_abs_shap", ascending=False, kind="stable"))
    return table.reset_index(drop=True)


def shap_bar(shap_values: pd.DataFrame, *, title: str | None = None, top: int = 15,
             oracle: bool = False) -> go.Figure:
    title = title or "Global importance: mean |SHAP|"
    importance = shap_importance(shap_values).head(top)
    if importance.empty:
        return _empty(title, "no SHAP values")
    fig = go.Figure(go.Bar(x=importance["mean_abs_shap"], y=importance["feature"], orientation="h",
                           marker_color=PALETTE[0],
                           hovertemplate="%{y}: mean |SHAP| %{x:.4f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title="mean |SHAP value| (log-odds of misclassification)")
    n = int(shap_values["image_id"].nunique())
    notes = [f"a sample of {n:,} images"] + caveats(shap_values.get("finding", pd.Series(dtype=str)).unique(),
                                                    importance["feature"], oracle=oracle)
    return _layout(fig, title, height=150 + 26 * len(importance), notes=notes)


def shap_beeswarm(shap_values: pd.DataFrame, *, title: str | None = None, top: int = 15, seed: int = 0,
                  oracle: bool = False) -> go.Figure:
    """SHAP value per image and feature, coloured by the feature's value (scaled within the feature)."""
    title = title or "SHAP values per image"
    importance = shap_importance(shap_values).head(top)
    if importance.empty:
        return _empty(title, "no SHAP values")
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
        hover += [f"{feature} = {_fmt_value(v)}<br>image {i}"
                  for v, i in zip(part["feature_value"], part["image_id"])]
    fig = go.Figure(go.Scattergl(
        x=np.concatenate(xs), y=np.concatenate(ys), mode="markers",
        marker=dict(color=np.concatenate(colors), colorscale="RdBu_r", cmin=0, cmax=1, size=5, opacity=0.75,
                    colorbar=dict(title=dict(text="feature value"), tickvals=[0, 1], ticktext=["low", "high"])),
        customdata=hover, hovertemplate="%{customdata}<br>SHAP %{x:.4f}<extra></extra>", showlegend=False,
    ))
    fig.update_yaxes(tickvals=list(range(len(features))), ticktext=features, autorange="reversed",
                     range=[len(features) - 0.5, -0.5])
    _vline(fig, 0.0, "#52606d")
    fig.update_xaxes(title="SHAP value (impact on log-odds of misclassification)")
    notes = [f"a sample of {int(shap_values['image_id'].nunique()):,} images"] + caveats(
        shap_values.get("finding", pd.Series(dtype=str)).unique(), features, oracle=oracle)
    return _layout(fig, title, height=150 + 30 * len(features), notes=notes)


def shap_waterfall(shap_values: pd.DataFrame, image_id: str, *, base_value: float | None = None,
                   top: int = 10, title: str | None = None) -> go.Figure:
    """One image's SHAP contributions as a waterfall from the base value (the model's mean output)."""
    title = title or f"Why image {image_id}?"
    rows = shap_values.loc[shap_values["image_id"] == image_id].copy()
    if rows.empty:
        return _empty(title, f"no SHAP values for image {image_id}")
    rows = rows.assign(_abs=rows["shap_value"].abs()).sort_values("_abs", ascending=False, kind="stable")
    head, rest = rows.head(top), rows.iloc[top:]
    labels = [f"{f} = {_fmt_value(v)}" for f, v in zip(head["feature"], head["feature_value"])]
    values = head["shap_value"].astype(float).tolist()
    if len(rest):
        labels.append(f"{len(rest)} other features")
        values.append(float(rest["shap_value"].sum()))
    base = 0.0 if base_value is None else float(base_value)
    fig = go.Figure(go.Waterfall(
        orientation="h", y=["base value", *labels, "output"], x=[base, *values, 0.0],
        measure=["absolute", *["relative"] * len(values), "total"],
        increasing=dict(marker=dict(color=PALETTE[1])), decreasing=dict(marker=dict(color=PALETTE[0])),
        totals=dict(marker=dict(color="#52606d")), connector=dict(line=dict(color="#cbd2d9")),
        hovertemplate="%{y}: %{x:.4f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title="log-odds of misclassification" + ("" if base_value is not None
                                                              else " (relative to the base value)"))
    notes = ["red: pushes towards 'misclassified', blue: away"] + caveats(
        rows.get("finding", pd.Series(dtype=str)).unique(), rows["feature"])
    return _layout(fig, title, height=190 + 28 * (len(labels) + 2), notes=notes)


# --------------------------------------------------------------------------------------------------- flip


def _vline_spec(x: float, color: str, *, dash: str = "solid", text: str = "",
               position: str = "top") -> tuple[dict, list[dict]]:
    shape = dict(type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper", line=dict(color=color, width=2,
                                                                                          dash=dash))
    notes = [dict(x=x, y=1.0 if position == "top" else 0.0, xref="x", yref="paper", text=text, showarrow=False,
                  xanchor="right" if position == "top" else "left",
                  yanchor="bottom" if position == "top" else "top", font=dict(size=11, color=color))] if text else []
    return shape, notes


def flip_curve_spec(curve: pd.DataFrame, *, chosen_tau: float | None = None, current_tau: float | None = None,
                    title: str | None = None) -> dict:
    """`flip_curve` as a plain plotly dict (``{"data", "layout"}``): built without plotly's validation, so the
    Flip page can redraw it on every slider move in a few milliseconds."""
    title = title or "Change in F1 from flipping, over the flip threshold"
    if curve.empty:
        return _empty(title, "no flip curve").to_plotly_json()
    curve = curve.sort_values("tau")
    tau = curve["tau"].to_numpy(dtype=float)
    data = [
        dict(type="scatter", x=np.concatenate([tau, tau[::-1]]),
             y=np.concatenate([curve["ci_high"].to_numpy(dtype=float), curve["ci_low"].to_numpy(dtype=float)[::-1]]),
             fill="toself", fillcolor="rgba(31,95,139,0.18)", line=dict(width=0), hoverinfo="skip",
             name="95% CI (paired bootstrap)"),
        dict(type="scatter", x=tau, y=curve["delta_f1"].to_numpy(dtype=float), mode="lines",
             name="ΔF1 (after − before)", line=dict(color=PALETTE[0], width=2),
             customdata=np.stack([curve["n_flips"], curve["f1_before"], curve["f1_after"]], axis=1),
             hovertemplate="tau %{x:.3f}: ΔF1 %{y:+.4f}<br>%{customdata[0]} flips, "
                           "F1 %{customdata[1]:.3f} → %{customdata[2]:.3f}<extra></extra>"),
    ]
    shapes = [dict(type="line", x0=0, x1=1, y0=0, y1=0, xref="paper", yref="y",
                   line=dict(color="#52606d", width=1, dash="dot"))]
    annotations: list[dict] = []
    if chosen_tau is not None and np.isfinite(chosen_tau):
        never = chosen_tau > 1.0  # the flip module's "never flip" threshold
        shape, notes = _vline_spec(min(float(chosen_tau), 1.0), PALETTE[1], dash="dash",
                                   text="chosen on calibration: flip nothing" if never
                                   else f"chosen on calibration: {chosen_tau:.3f}")
        shapes.append(shape)
        annotations += notes
    if current_tau is not None and np.isfinite(current_tau):
        shape, notes = _vline_spec(float(current_tau), PALETTE[2], text=f"tau = {current_tau:.3f}",
                                   position="bottom")
        shapes.append(shape)
        annotations += notes
    notes = ["flip the model's prediction where the identifier's probability ≥ tau; " + TEST_SPLIT_NOTE]
    notes += caveats(curve.get("finding", pd.Series(dtype=str)).unique())
    layout = _layout_dict(title, height=440, notes=notes)
    layout["annotations"] = annotations + layout.get("annotations", [])
    layout.update(
        shapes=shapes, xaxis=dict(title=dict(text="flip threshold tau (identifier probability)")),
        yaxis=dict(title=dict(text="ΔF1"), zeroline=False),
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"),
    )
    return {"data": data, "layout": layout}


def flip_curve(curve: pd.DataFrame, *, chosen_tau: float | None = None, current_tau: float | None = None,
               title: str | None = None) -> go.Figure:
    """Change in F1 from flipping over the flip threshold tau, with its 95% CI band (test split)."""
    return go.Figure(flip_curve_spec(curve, chosen_tau=chosen_tau, current_tau=current_tau, title=title))


def flip_summary_figure(evaluation: Mapping[str, float], *, title: str | None = None) -> go.Figure:
    """F1, precision and recall before and after flipping at one tau (a `FlipEvaluation` or a flip row)."""
    title = title or f"Before and after flipping at tau = {float(evaluation['tau']):.3f}"
    metrics = ["f1", "precision", "recall"]
    fig = go.Figure()
    for when, color in (("before", BASELINE_COLOR), ("after", PALETTE[0])):
        values = [float(evaluation[f"{m}_{when}"]) for m in metrics]
        fig.add_trace(go.Bar(x=metrics, y=values, name=when, marker_color=color,
                             text=[f"{v:.3f}" for v in values], textposition="outside"))
    fig.update_yaxes(range=[0, 1.05], title="value")
    fig.update_layout(barmode="group")
    delta = (f"ΔF1 {float(evaluation['delta_f1']):+.4f} [{float(evaluation['ci_low']):+.4f}, "
             f"{float(evaluation['ci_high']):+.4f}], {int(evaluation['n_flips'])} flips")
    return _layout(fig, title, height=380, notes=[delta, TEST_SPLIT_NOTE])


# --------------------------------------------------------------------------------------------------- cases


def case_probabilities(rows: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """One image: each model's probability against its threshold (rows of ``outcomes`` for one image and
    finding: model, probability, threshold, prediction, label, misclassified)."""
    title = title or "Model probabilities"
    if rows.empty:
        return _empty(title, "no predictions for this image")
    wrong = rows["misclassified"].astype(bool).to_numpy()
    colors = np.where(wrong, PALETTE[1], PALETTE[0])
    fig = go.Figure(go.Bar(
        x=rows["probability"], y=rows["model"], orientation="h", marker_color=colors,
        hovertemplate="%{y}: %{x:.3f}<extra></extra>", showlegend=False,
    ))
    fig.add_trace(go.Scatter(x=rows["threshold"], y=rows["model"], mode="markers", name="threshold",
                             marker=dict(symbol="line-ns-open", size=22, color="#1d2731", line=dict(width=3)),
                             hovertemplate="threshold %{x:.3f}<extra></extra>"))
    for model, p, t, w in zip(rows["model"], rows["probability"], rows["threshold"], wrong):
        fig.add_annotation(x=1.0, xref="paper", xanchor="left", y=model, showarrow=False, xshift=8,
                           text=f"{p:.3f} (threshold {t:.3f}) {'✗ misclassified' if w else '✓ correct'}",
                           font=dict(size=11, color=PALETTE[1] if w else PALETTE[0]))
    fig.update_xaxes(range=[0, 1], title="probability")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    fig = _layout(fig, title, height=160 + 45 * len(rows))
    fig.update_layout(margin=dict(r=250))
    return fig


# ------------------------------------------------------------------------------------------------- report


def report_figures(result, *, max_pairs: int | None = None, findings: Sequence[str] | None = None,
                   models: Sequence[str] | None = None) -> dict[str, go.Figure]:
    """The standard figures of an `AnalysisResult`, keyed by stable, file-safe names.

    Overview (``auroc_heatmap``, ``misclassification_heatmap``, ``subgroup_effects``), one OR heatmap per
    regression term (``or_heatmap_<term>``), the identifier heatmap per learner × feature set
    (``identifier_auroc_<learner>_<feature_set>``) and per model × finding (first ``max_pairs`` pairs, all by
    default): ``subgroups_<model>_<finding>``, ``forest_<model>_<finding>``, ``roc_<model>_<finding>``,
    ``shap_bar_<model>_<finding>``, ``flip_curve_<model>_<finding>``. ``findings`` / ``models`` restrict the
    per-pair figures to those.
    """
    config = result.config
    min_n = int(getattr(config, "min_subgroup_n", 30))
    figures: dict[str, go.Figure] = {
        "auroc_heatmap": auroc_heatmap(result.performance),
        "misclassification_heatmap": misclassification_heatmap(overall_misclassification(result.outcomes)),
        "subgroup_effects": effects_heatmap(effect_summary(result.regression)),
    }
    if not result.regression.empty:
        for term in regression_terms(result.regression):
            figures[slug("or_heatmap", term)] = term_heatmap(result.regression, term)
    if not result.identifiers.empty:
        combos = result.identifiers[["learner", "feature_set"]].drop_duplicates().itertuples(index=False)
        for learner, feature_set in combos:
            figures[slug("identifier_auroc", learner, feature_set)] = identifier_heatmaps(
                result.identifiers, learner, feature_set)
    pairs = result.performance[["model", "finding"]].drop_duplicates().itertuples(index=False)
    primary = (config.learners[0], config.feature_sets[0]) if config.learners and config.feature_sets else (None, None)
    oracle = bool(_select(result.identifiers, learner=primary[0], feature_set=primary[1])["oracle"].astype(bool).any()
                  ) if not result.identifiers.empty else False
    pairs = [(m, f) for m, f in pairs if (findings is None or f in findings) and (models is None or m in models)]
    for index, (model, finding) in enumerate(pairs):
        if max_pairs is not None and index >= max_pairs:
            break
        label = f"{model} · {finding_label(finding)}"
        figures[slug("subgroups", model, finding)] = subgroup_rates_figure(
            _select(result.subgroup_rates, model=model, finding=finding),
            title=f"Misclassification by subgroup: {label}", min_n=min_n)
        figures[slug("forest", model, finding)] = forest_plot(
            _select(result.regression, model=model, finding=finding), title=f"Odds ratios: {label}")
        if not result.identifier_scores.empty:
            figures[slug("roc", model, finding)] = roc_figure(
                _select(result.identifier_scores, model=model, finding=finding, learner=primary[0],
                        feature_set=primary[1]), title=f"ROC, predicting misclassification: {label}", oracle=oracle)
        if not result.shap_values.empty:
            figures[slug("shap_bar", model, finding)] = shap_bar(
                _select(result.shap_values, model=model, finding=finding), title=f"SHAP importance: {label}",
                oracle=oracle)
        if not result.flip_curves.empty:
            chosen = _select(result.flip, model=model, finding=finding)
            figures[slug("flip_curve", model, finding)] = flip_curve(
                _select(result.flip_curves, model=model, finding=finding),
                chosen_tau=float(chosen["tau"].iloc[0]) if len(chosen) else None, title=f"Flipping: {label}")
    return figures
