"""Small rendering helpers shared by the pages: cached figures, captions, tables, thumbnails, errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cxrfail import figures
from cxrfail.analysis.result import AnalysisResult
from cxrfail.dashboard import limits
from cxrfail.dashboard.datasets import Dataset
from cxrfail.dashboard.state import Selection, synced
from cxrfail.errors import PathNotAllowedError

log = logging.getLogger("cxrfail.dashboard")
THUMBNAIL_PX = 256


@st.cache_resource(max_entries=2048, show_spinner=False)
def _figure(builder: str, args: tuple, kwargs: tuple) -> go.Figure | dict:
    return getattr(figures, builder)(*args, **dict(kwargs))


#: What every page says when nothing is selected (no cohort or no models loaded).
NO_SELECTION = "Choose a cohort and models in the sidebar (or load data on the Data page)."


def require_selection(sel: Selection | None, why: str = "") -> Selection:
    """The selection; when there is none, the one "nothing selected" message (with ``why`` after it) and the
    page stops."""
    if sel is None:
        st.info(f"{NO_SELECTION} {why}".strip())
        st.stop()
    return sel


def plot(builder, *args, key: str | None = None, **kwargs) -> None:
    """Draw ``builder(*args, **kwargs)``, a public builder of `cxrfail.figures`; the figure is cached per
    arguments (Streamlit hashes every argument, tables by content)."""
    name = builder.__name__
    if getattr(figures, name, None) is not builder:
        raise ValueError(f"{name} is not a public builder of cxrfail.figures")
    fig = _figure(name, args, tuple(sorted(kwargs.items())))
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def plot_of(identity: str, builder, *args, key: str | None = None, **kwargs) -> None:
    """`plot` for arguments that are costly to hash (a cohort column of every row): the figure is cached per
    ``identity``, a string that determines every argument (e.g. the dataset's content key and what is drawn),
    and the arguments are not hashed."""
    name = builder.__name__
    if getattr(figures, name, None) is not builder:
        raise ValueError(f"{name} is not a public builder of cxrfail.figures")
    fig = _figure_of(identity, name, args, tuple(sorted(kwargs.items())))
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


@st.cache_resource(max_entries=256, show_spinner=False)
def _figure_of(identity: str, builder: str, _args: tuple, _kwargs: tuple) -> go.Figure | dict:
    return getattr(figures, builder)(*_args, **dict(_kwargs))


def cohort_summary(dataset: Dataset) -> dict[str, object]:
    """`Cohort.summary` of the dataset, computed once per dataset (its content ``key``)."""
    return _cohort_summary(dataset.key, dataset)


@st.cache_resource(max_entries=16, show_spinner=False)
def _cohort_summary(key: str, _dataset: Dataset) -> dict[str, object]:
    return _dataset.cohort.summary()


def context(result: AnalysisResult) -> figures.FigureContext:
    return _context(result.cache_key or "", result)


@st.cache_resource(max_entries=64, show_spinner=False)
def _context(key: str, _result: AnalysisResult) -> figures.FigureContext:
    return figures.FigureContext.from_result(_result)


def caveat_lines(
    result: AnalysisResult, findings: Sequence[str] = (), subgroups: Sequence[str] = (), *, oracle: bool = False
) -> None:
    for line in context(result).caveats(findings, subgroups, oracle=oracle):
        st.caption(line)


def scope_caption(result: AnalysisResult, what: str = "") -> None:
    """Unit of analysis and split sizes, after ``what``."""
    summary = result.cohort_summary
    unit = result.unit
    text = (
        f"Unit of analysis: {unit}. Results on the held-out test split "
        f"({summary.get('n_test', 0):,} {figures.plural(unit)}; thresholds, identifier and flip threshold chosen on the "
        f"calibration split of {summary.get('n_calibration', 0):,})."
    )
    st.caption((what + " " if what else "") + text)


def best_model(result: AnalysisResult | None, models: Sequence[str], finding: str) -> tuple[str, float | None]:
    """The model of ``models`` with the highest AUROC for ``finding`` in the run (the first model and None
    when the run has no AUROC for it)."""
    if result is not None and not result.performance.empty:
        perf = result.performance
        rows = perf.loc[(perf["finding"] == finding) & perf["model"].isin(models)].dropna(subset=["auroc"])
        if not rows.empty:
            best = rows.loc[rows["auroc"].idxmax()]
            return str(best["model"]), float(best["auroc"])
    return models[0], None


def model_picker(sel: Selection, key: str, result: AnalysisResult | None = None, label: str = "Model") -> str:
    """A page-local model choice among the sidebar's models, kept in the URL (``model``); it starts on the
    model with the best AUROC for the sidebar's finding, and says so."""
    best, auroc = best_model(result, sel.models, sel.finding)
    help_text = (
        f"Starts on {best}, the best AUROC for {figures.finding_label(sel.finding)} ({auroc:.3f})"
        if auroc is not None
        else None
    )
    computing = set(result.missing) if result is not None else set()  # a provisional run's pairs to come
    chosen = synced(
        st.selectbox,
        label,
        key=key,
        param="model",
        options=list(sel.models),
        default=best,
        help=help_text,
        format_func=lambda model: f"{model} (computing)" if (model, sel.finding) in computing else model,
    )
    if auroc is not None and chosen == best:
        st.caption(f"{best}: the best AUROC for {figures.finding_label(sel.finding)} ({auroc:.3f})")
    return chosen


def rate_table(frame: pd.DataFrame, min_n: int) -> pd.DataFrame:
    """Subgroup rates for display: n and patients, misclassified, rate with its patient-clustered CI, the
    Wilson CI on rows, design effect and effective n; reference rows, subsets and insufficient levels marked."""
    shown = frame[
        [
            "subgroup",
            "level",
            "n",
            "n_patients",
            "n_misclassified",
            "rate",
            "ci_low",
            "ci_high",
            "wilson_low",
            "wilson_high",
            "design_effect",
            "effective_n",
        ]
    ].copy()
    status = np.where(frame["sufficient"].astype(bool), "", figures.insufficient_label(min_n))
    reference = frame["is_reference"].astype(bool).to_numpy()
    subset = [
        f"reference (subset {int(k):,} of {int(n):,}" + ("" if random else ", not a random sample") + ")"
        if is_subset
        else "reference (all rows)"
        for k, n, random, is_subset in zip(
            frame["subset_n"], frame["population_n"], frame["random_sample"], frame["is_subset"].astype(bool)
        )
    ]
    shown["status"] = np.where(reference, subset, status)
    return shown


def percent_columns(columns: Sequence[str]) -> dict:
    return {c: st.column_config.NumberColumn(c, format="percent") for c in columns}


@limits.byte_cached(limits.image_cache_bytes)  # bounded in bytes, not entries
def _png(path: str, image_root: str, max_side: int) -> bytes:
    from cxrfail.inference.images import display_png  # imports torch: only once an image is shown

    return display_png(path, image_root, max_side=max_side)


def radiograph(path: object, dataset: Dataset, *, max_side: int = THUMBNAIL_PX, caption: str | None = None) -> None:
    """Show a cohort image, decoded on the server (the browser gets pixels, never a path). It must lie inside
    the dataset's image folder; an image that cannot be shown says why in one line."""
    from cxrfail.inference.images import ImageDecodeError

    if not isinstance(path, str) or dataset.image_root is None:
        st.caption("No radiograph on disk for this row.")
        return
    try:
        # output_format="PNG": the bytes are sent as they are; Streamlit's "auto" re-encodes a PNG without alpha
        # as JPEG on every rerun (12 thumbnails per Cases rerun, per session)
        st.image(_png(path, str(dataset.image_root), max_side), caption=caption, width="stretch", output_format="PNG")
    except (PathNotAllowedError, ImageDecodeError) as exc:
        log.info("image not shown: %s", exc)  # the message without the image's server path
        st.caption(f"This radiograph cannot be shown: {getattr(exc, 'problem', exc)}")


def input_error(what: str, exc: Exception) -> None:
    """One message for a refused input (the full exception goes to the server log only)."""
    log.info("%s: %s", what, exc, exc_info=exc)
    st.error(f"**{what}.** {exc}")


def pair(result: AnalysisResult, model: str, finding: str):
    """The `PairResult` of (model, finding); a refused pair shows its reason and stops the page; a pair's
    warnings (small splits) are shown above its results."""
    reason = result.refused.get((model, finding))
    if reason is not None:
        st.warning(
            f"**{model} · {figures.finding_label(finding)} was not analysed:** {reason.removeprefix('refused: ')}"
        )
        st.stop()
    if (model, finding) in result.missing:  # a provisional result: the run's panel reruns the page when it is done
        st.info(
            f"**{model} · {figures.finding_label(finding)}** is still computing; this page shows it when it is done."
        )
        st.stop()
    found = result.pair(model, finding)
    for warning in found.warnings:
        st.caption(f"⚠ {warning}")
    return found
