"""Identifiers figures: identifier AUROC against the confidence baseline, ROC curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cxrfail.figures.style import (
    BASELINE_COLOR,
    CELL_FONT,
    DEFAULT_CONTEXT,
    HOVER_NOTE,
    PALETTE,
    TOP_LABEL_PX,
    FigureContext,
    apply_layout,
    empty_figure,
    escape,
    finding_label,
    ordered,
    plural,
    title_band_px,
)


def identifier_heatmaps(identifiers: pd.DataFrame, learner: str, feature_set: str, *, context: FigureContext = DEFAULT_CONTEXT) -> go.Figure:
    """Identifier AUROC (predicting misclassification) beside the confidence baseline, models × findings."""
    rows = identifiers.loc[(identifiers["learner"] == learner).to_numpy()
                           & (identifiers["feature_set"] == feature_set).to_numpy()]
    oracle = bool(rows["oracle"].astype(bool).any()) if len(rows) else False
    tag = " [ORACLE]" if oracle else ""
    title = f"Identifier AUROC: {learner} on {feature_set}{tag} vs confidence baseline"
    if rows.empty:
        return empty_figure(title, "this learner and feature set were not run")
    model_order = ordered(rows["model"])
    finding_order = ordered(rows["finding"])
    # stacked, not side by side: each panel gets the full width, so cells keep 12 px text at 1024 px
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.14, shared_xaxes=True,
                        subplot_titles=(f"identifier{tag}", "baseline: model confidence"))
    for col, (value, low, high) in enumerate((("auroc", "ci_low", "ci_high"),
                                               ("baseline_auroc", "baseline_ci_low", "baseline_ci_high")), 1):
        keyed = rows.set_index(["model", "finding"])
        z, text, hover = [], [], []
        for model in model_order:
            z_row, t_row, h_row = [], [], []
            for finding in finding_order:
                if (model, finding) in keyed.index:
                    r = keyed.loc[(model, finding)]
                    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                    z_row.append(float(r[value]))
                    t_row.append(f"{r[value]:.3f}")
                    h_row.append(f"[{r[low]:.3f}, {r[high]:.3f}]")
                else:
                    z_row.append(None)
                    t_row.append("")
                    h_row.append("not run")
            z.append(z_row)
            text.append(t_row)
            hover.append(h_row)
        fig.add_trace(go.Heatmap(
            z=z, x=[escape(finding_label(f)) for f in finding_order], y=[escape(m) for m in model_order], text=text,
            texttemplate="%{text}", textfont=CELL_FONT, customdata=hover,
            colorscale="Viridis", zmin=0.5, zmax=1.0, showscale=col == 1, xgap=2, ygap=2,
            colorbar=dict(title=dict(text="AUROC")),
            hovertemplate="%{y} · %{x}<br>AUROC %{text} (95% CI %{customdata})<extra></extra>",
        ), row=col, col=1)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=0 if len(finding_order) <= 4 else -30)
    n = int(rows["n"].max())
    notes = [f"patient-grouped out-of-fold probabilities over the whole cohort (n up to {n:,} {plural(context.unit)}); "
             f"AUROC for predicting whether the model misclassifies the {context.unit}; 95% CIs: {HOVER_NOTE}, "
             "or the identifier table"]
    notes += context.caveats(finding_order, oracle=oracle)
    fig = apply_layout(fig, title, height=max(420, 200 + 2 * 50 * len(model_order)), notes=notes)
    fig.update_layout(margin=dict(t=title_band_px(fig.layout.title.text) + 16 + TOP_LABEL_PX))  # 1st panel's title
    return fig


def _roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    keep = np.isfinite(score)
    y, score = y[keep], score[keep]
    if len(np.unique(y)) < 2:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    fpr, tpr, _ = roc_curve(y, score)
    return fpr, tpr, float(roc_auc_score(y, score))


def roc_figure(scores: pd.DataFrame, *, title: str | None = None, oracle: bool = False, context: FigureContext = DEFAULT_CONTEXT) -> go.Figure:
    """ROC curves of the identifier and the confidence baseline for one model × finding × learner × feature
    set (rows of ``identifier_scores``)."""
    title = title or "ROC: predicting misclassification"
    if scores.empty:
        return empty_figure(title, "no identifier scores")
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
    notes = [f"n={len(y):,} {plural(context.unit)} ({int(y.sum()):,} misclassified); out-of-fold, patient-grouped"]
    notes += context.caveats(scores.get("finding", pd.Series(dtype=str)).unique(), oracle=oracle)
    return apply_layout(fig, title, height=520, notes=notes)
