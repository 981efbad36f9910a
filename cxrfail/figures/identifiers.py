"""Identifiers figures: the ladder (what features add beyond the model's own probability, paired intervals),
identifier AUROC against the confidence baseline, ROC curves. Every number is on the test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cxrfail.analysis.config import IDENTIFIER_LADDER, PROBABILITY_ONLY
from cxrfail.analysis.identifiers.features import is_oracle
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
    model_finding_grid,
    ordered,
    plural,
    title_band_px,
)


def _ladder_order(feature_sets) -> list[str]:
    """Feature sets in ladder order (`IDENTIFIER_LADDER`), others after them in first-seen order."""
    seen = list(dict.fromkeys(str(f) for f in feature_sets))
    return [f for f in IDENTIFIER_LADDER if f in seen] + [f for f in seen if f not in IDENTIFIER_LADDER]


def _named_oracle(feature_set: str) -> bool:
    """`is_oracle` for a feature set name, False for a name that is not one."""
    try:
        return is_oracle(feature_set)
    except ValueError:
        return False


def identifier_ladder(
    identifiers: pd.DataFrame, learner: str, finding: str, *, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """What clinical features add beyond the model's own probability, for one finding: per model and feature set
    of the ladder, the test-split identifier AUROC (95% patient-clustered CI, left) and its paired difference to
    ``probability_only`` (the same learner on the model's probability for the target alone; 95% CI from the
    same test-patient resamples, right). Oracle feature sets are marked."""
    rows = identifiers.loc[
        (identifiers["learner"] == learner).to_numpy() & (identifiers["finding"] == finding).to_numpy()
    ]
    title = f"What features add beyond the model's own probability: {finding_label(finding)}"
    if rows.empty:
        return empty_figure(title, "no identifiers for this learner and finding")
    order = _ladder_order(rows["feature_set"])
    labels = {
        fs: fs + (" [ORACLE]" if bool(rows.loc[rows["feature_set"] == fs, "oracle"].astype(bool).any()) else "")
        for fs in order
    }
    # one panel under the other: side by side, each is too narrow for its ticks and title at 1024 px
    fig = make_subplots(
        rows=2,
        cols=1,
        vertical_spacing=0.22,
        subplot_titles=("identifier AUROC (test split)", f"difference to {PROBABILITY_ONLY} (paired)"),
    )
    models = ordered(rows["model"])
    spread = np.linspace(-0.25, 0.25, len(models)) if len(models) > 1 else np.zeros(1)
    for offset, (position, model) in zip(spread, enumerate(models)):
        part = rows.loc[rows["model"] == model].set_index("feature_set").reindex(order)
        y = np.arange(len(order)) + offset
        color = PALETTE[position % len(PALETTE)]
        for panel, (value, low, high) in enumerate(
            (
                ("auroc", "ci_low", "ci_high"),
                ("delta_vs_probability_only", "delta_vs_probability_only_ci_low", "delta_vs_probability_only_ci_high"),
            ),
            1,
        ):
            v = part[value].astype(float).to_numpy()
            lo, hi = part[low].astype(float).to_numpy(), part[high].astype(float).to_numpy()
            text = [
                f"{escape(model)} · {escape(labels[fs])}<br>{a:.3f} [{b:.3f}, {c:.3f}]"
                for fs, a, b, c in zip(order, v, lo, hi)
            ]
            fig.add_trace(
                go.Scatter(
                    x=v,
                    y=y,
                    mode="markers",
                    name=escape(model),
                    legendgroup=model,
                    showlegend=panel == 1,
                    marker=dict(color=color, size=8),
                    error_x=dict(type="data", symmetric=False, array=hi - v, arrayminus=v - lo, color=color, width=3),
                    customdata=text,
                    hovertemplate="%{customdata}<extra></extra>",
                ),
                row=panel,
                col=1,
            )
    fig.add_vline(x=0.0, line=dict(color="#52606d", dash="dot", width=1), row=2, col=1)
    for panel in (1, 2):
        fig.update_yaxes(
            tickvals=list(range(len(order))),
            ticktext=[escape(labels[fs]) for fs in order],
            autorange="reversed",
            row=panel,
            col=1,
        )
    fig.update_xaxes(title="AUROC for misclassification", nticks=8, row=1, col=1)
    fig.update_xaxes(title="Δ AUROC (feature set − probability_only)", nticks=8, row=2, col=1)
    n, n_patients = int(rows["n"].max()), int(rows["n_patients"].max()) if "n_patients" in rows else 0
    notes = [
        f"{learner} cross-fitted on the calibration split (the same folds for every feature set); AUROC on the "
        f"test split (n up to {n:,} {plural(context.unit)} of {n_patients:,} patients); 95% CIs patient-clustered, "
        "the differences on the same resamples as both AUROCs"
    ]
    notes += context.caveats([finding], oracle=bool(rows["oracle"].astype(bool).any()))
    return apply_layout(fig, title, height=max(520, 230 + 2 * (60 + 40 * len(order))), notes=notes)


def identifier_heatmaps(
    identifiers: pd.DataFrame, learner: str, feature_set: str, *, context: FigureContext = DEFAULT_CONTEXT
) -> go.Figure:
    """Identifier AUROC (predicting misclassification) beside the confidence baseline, models × findings."""
    rows = identifiers.loc[
        (identifiers["learner"] == learner).to_numpy() & (identifiers["feature_set"] == feature_set).to_numpy()
    ]
    oracle = bool(rows["oracle"].astype(bool).any()) if len(rows) else False
    tag = " [ORACLE]" if oracle else ""
    title = f"Identifier AUROC: {learner} on {feature_set}{tag} vs confidence baseline"
    if rows.empty:
        return empty_figure(title, "this learner and feature set were not run")
    model_order = ordered(rows["model"])
    finding_order = ordered(rows["finding"])
    # stacked, not side by side: each panel gets the full width, so cells keep 12 px text at 1024 px
    fig = make_subplots(
        rows=2,
        cols=1,
        vertical_spacing=0.14,
        shared_xaxes=True,
        subplot_titles=(f"identifier{tag}", "baseline: model confidence"),
    )
    for col, (value, low, high) in enumerate(
        (("auroc", "ci_low", "ci_high"), ("baseline_auroc", "baseline_ci_low", "baseline_ci_high")), 1
    ):
        z, text, hover = model_finding_grid(
            rows,
            model_order,
            finding_order,
            lambda r, value=value, low=low, high=high: (
                float(r[value]),
                f"{r[value]:.3f}",
                f"[{r[low]:.3f}, {r[high]:.3f}]",
            ),
        )
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[escape(finding_label(f)) for f in finding_order],
                y=[escape(m) for m in model_order],
                text=text,
                texttemplate="%{text}",
                textfont=CELL_FONT,
                customdata=hover,
                colorscale="Viridis",
                zmin=0.5,
                zmax=1.0,
                showscale=col == 1,
                xgap=2,
                ygap=2,
                colorbar=dict(title=dict(text="AUROC")),
                hovertemplate="%{y} · %{x}<br>AUROC %{text} (95% CI %{customdata})<extra></extra>",
            ),
            row=col,
            col=1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=0 if len(finding_order) <= 4 else -30)
    n = int(rows["n"].max())
    notes = [
        f"test split (n up to {n:,} {plural(context.unit)}), identifier cross-fitted on the calibration split; "
        f"AUROC for predicting whether the model misclassifies the {context.unit}; 95% patient-clustered CIs: "
        f"{HOVER_NOTE}, or the identifier table"
    ]
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


def _roc_trace(misclassified: np.ndarray, score: np.ndarray, name: str, line: dict) -> go.Scatter:
    """The ROC curve of ``score`` (n,) for predicting ``misclassified`` (n,) 0/1, labelled with its AUROC."""
    fpr, tpr, auc = _roc_points(misclassified, score)
    return go.Scatter(
        x=fpr,
        y=tpr,
        mode="lines",
        name=f"{name} (AUROC {auc:.3f})",
        line=line,
        hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}<extra></extra>",
    )


def roc_figure(
    scores: pd.DataFrame,
    *,
    outcomes: pd.DataFrame | None = None,
    title: str | None = None,
    oracle: bool = False,
    context: FigureContext = DEFAULT_CONTEXT,
) -> go.Figure:
    """ROC curves on the test split of one model × finding × learner: one curve per feature set in ``scores``
    (rows of ``identifier_scores``, ladder order) and, given the pair's ``outcomes``, the confidence baseline
    -|probability - threshold| of the same test rows."""
    title = title or "ROC: predicting misclassification"
    if scores.empty:
        return empty_figure(title, "no identifier scores")
    fig = go.Figure()
    order = _ladder_order(scores["feature_set"]) if "feature_set" in scores else [None]
    for position, feature_set in enumerate(order):
        part = scores if feature_set is None else scores.loc[scores["feature_set"] == feature_set]
        y = part["misclassified"].astype(int).to_numpy()
        name = "identifier" if feature_set is None else str(feature_set)
        if (oracle and feature_set is None) or (feature_set is not None and _named_oracle(str(feature_set))):
            name += " [ORACLE]"
        line = dict(color=PALETTE[(position + 1) % len(PALETTE)], width=2)
        fig.add_trace(_roc_trace(y, part["identifier_score"].astype(float).to_numpy(), escape(name), line))
    n = len(y)
    if outcomes is not None and not outcomes.empty:
        test = outcomes.loc[outcomes["split"].astype(str).to_numpy() == "test"]
        baseline = -np.abs(test["probability"].astype(float).to_numpy() - test["threshold"].astype(float).to_numpy())
        line = dict(color=BASELINE_COLOR, dash="dash", width=2)
        fig.add_trace(_roc_trace(test["misclassified"].astype(int).to_numpy(), baseline, "confidence baseline", line))
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="chance",
            showlegend=False,
            line=dict(color="#cbd2d9", dash="dot", width=1),
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(title="false positive rate", range=[0, 1], constrain="domain")
    fig.update_yaxes(title="true positive rate", range=[0, 1], scaleanchor="x", scaleratio=1)
    fig.update_layout(legend=dict(x=0.98, y=0.02, xanchor="right", yanchor="bottom"))
    notes = [
        f"test split: n={n:,} {plural(context.unit)} ({int(y.sum()):,} misclassified); identifiers "
        "cross-fitted on the calibration split"
    ]
    notes += context.caveats(scores.get("finding", pd.Series(dtype=str)).unique(), oracle=oracle)
    return apply_layout(fig, title, height=520, notes=notes)
