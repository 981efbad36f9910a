"""The shared look of every figure: palette, template, layout with caveat footnotes, small formatters, and
`FigureContext`, which carries what a figure must say about its data (unit of analysis, subsets, cohort
notes) from the cohort and the result, never from constants about one dataset.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from cxrfail.findings import APPROXIMATE_FINDINGS

PALETTE = ("#1f5f8b", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30638e", "#a05c34")
SUFFICIENT_COLOR = "#1f5f8b"
INSUFFICIENT_COLOR = "#9aa5b1"
BASELINE_COLOR = "#9aa5b1"
FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=13, color="#1d2731")
GRID = "#e5eaf0"
ORACLE_NOTE = "oracle feature set: uses ground-truth finding labels a deployed system would not have"
_TEMPLATE: go.layout.Template | None = None


def template() -> go.layout.Template:
    """A light white template (plotly's "plotly_white" costs ~80 ms per figure to copy; this one ~1 ms)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        axis = dict(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID, automargin=True, title=dict(standoff=12))
        _TEMPLATE = go.layout.Template(
            layout=dict(
                paper_bgcolor="white",
                plot_bgcolor="white",
                colorway=list(PALETTE),
                font=FONT,
                xaxis=axis,
                yaxis=axis,
                hoverlabel=dict(align="left"),
            )
        )
    return _TEMPLATE


@dataclass(frozen=True)
class FigureContext:
    """What figures say about the data they show, taken from the cohort and the result.

    Attributes:
        unit: what one row is ("image" or "study").
        notes: finding or subgroup name → caveat text (the cohort's notes, e.g. how support devices were read).
        subsets: subgroup name → "known for k of n test images": subgroups computed on a subset of rows.
    """

    unit: str = "image"
    notes: Mapping[str, str] = field(default_factory=dict)
    subsets: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_result(cls, result) -> FigureContext:
        """The context of an `AnalysisResult`: its unit, its cohort's notes, and the subgroups whose levels cover
        fewer test rows than the pair has (a subset, e.g. rows where a sparse finding was read)."""
        unit = result.unit
        names = set(result.subgroup_rates["subgroup"].unique()) if len(result.subgroup_rates) else set()
        names |= set(result.findings)
        notes = {name: str(text) for name, text in result.notes.items() if name in names}
        subsets: dict[str, str] = {}
        for pair in result:
            rates = pair.subgroup_rates
            if rates.empty:
                continue
            for row in rates.loc[rates["is_reference"].astype(bool) & rates["is_subset"].astype(bool)].itertuples():
                if row.subgroup not in subsets:
                    subsets[row.subgroup] = (
                        f"{row.subgroup}: known for {int(row.subset_n):,} of {int(row.population_n):,} test "
                        f"{plural(unit)} (a subset"
                        + ("" if row.random_sample else ", not a random sample")
                        + "; its levels compare with the subset's own rate)"
                    )
        return cls(unit=unit, notes=notes, subsets=subsets)

    @property
    def test_split_note(self) -> str:
        return f"held-out test split; unit of analysis: {self.unit}"

    def caveats(
        self, findings: Iterable[str] = (), subgroups: Iterable[str] = (), *, oracle: bool = False
    ) -> list[str]:
        """The caveat lines that apply to a figure or table showing these findings and subgroups."""
        lines: list[str] = []
        names = {plain(name) for name in findings} | {plain(name) for name in subgroups}

        def named(key: str) -> bool:
            return any(plain(key) in name for name in names)

        for finding, reason in APPROXIMATE_FINDINGS.items():
            if named(finding):
                lines.append(f"*{finding}: approximate, {reason}")
        for key, note in self.notes.items():
            if key not in APPROXIMATE_FINDINGS and named(key):
                lines.append(f"{key}: {note}")
        lines += [text for key, text in self.subsets.items() if named(key)]
        if oracle:
            lines.append(ORACLE_NOTE)
        return lines


DEFAULT_CONTEXT = FigureContext()


def insufficient_label(min_n: int) -> str:
    """The flag of a subgroup level below the sufficiency rule (`cxrfail.analysis.subgroups.subgroup_rates`)."""
    return f"insufficient (effective n < {min_n}, or too few patients or events)"


def plural(unit: str, n: int | None = None) -> str:
    """``unit`` for a count of ``n`` (None: several): "image"/"images", "study"/"studies"."""
    if n == 1:
        return unit
    return unit[:-1] + "ies" if unit.endswith("y") and unit[-2:-1] not in "aeiou" else unit + "s"


def finding_label(finding: str) -> str:
    """The finding's display name, starred when it only approximates its CheXpert meaning."""
    return f"{finding}*" if finding in APPROXIMATE_FINDINGS else finding


def plain(name: object) -> str:
    return re.sub(r"[_\s]+", " ", str(name)).lower()


def escape(text: object) -> str:
    """``text`` with HTML special characters escaped (``<``, ``>``, ``&``, quotes), for titles, axis labels,
    legend entries and hover text: plotly renders a subset of HTML in them, so a model name such as
    ``<a href=...>`` would otherwise become a live link."""
    return html.escape(str(text), quote=True)


def slug(*parts: object) -> str:
    """A stable, file-safe name: lower case, [a-z0-9_-] only."""
    text = "_".join(str(part) for part in parts if part is not None and str(part) != "")
    text = re.sub(r"[^A-Za-z0-9+\-]+", "_", text).strip("_").lower()
    return text.replace("+", "-") or "figure"


NOTE_WIDTH = 50  # characters per footnote line (~310 px at 11 px: fits a third of 1440 px or 1024's main column)
TITLE_WIDTH = 52  # characters per title line (16 px)
HOVER_NOTE = "hover a cell"  # where values that do not fit a cell at 1024 px are
CELL_FONT = dict(size=12)  # heatmap cell text: fixed (plotly shrinks fitted text to ~6 px in small cells)
TITLE_LINE_PX = 22  # one line of the title
TITLE_PX = 22 + TITLE_LINE_PX  # the title band of a one-line title (the title sits in it, never below)
LEGEND_ROW_PX = 21  # one entry of a vertical legend
TOP_LABEL_PX = 22  # a band for labels drawn just above the plot (subplot titles, vertical-line labels)
TICK_CHAR_PX = 7.2  # width of one character of a 13 px tick label, for the left margin
LEFT_MARGIN_PX = 70


def wrap_notes(notes: Sequence[str], width: int = NOTE_WIDTH) -> list[str]:
    lines: list[str] = []
    for note in notes:
        lines += textwrap.wrap(str(note), width=width, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return lines


def wrap_title(title: str, width: int = TITLE_WIDTH) -> str:
    """The title in lines of at most ``width`` characters (joined by ``<br>``), so it fits a 1024 px window."""
    return "<br>".join(textwrap.wrap(title, width=width, break_long_words=False, break_on_hyphens=False)) or title


def title_band_px(title_text: str | None) -> int:
    """Height of the band the (wrapped) title takes at the top of the figure."""
    return TITLE_PX + TITLE_LINE_PX * str(title_text or "").count("<br>")


def layout_dict(
    title: str, *, height: int | None = None, notes: Sequence[str] = (), left: int = LEFT_MARGIN_PX
) -> dict:
    """The shared layout: title wrapped and pinned to the top band (`title_band_px`), template, margins and the
    caveat footnotes (wrapped; the figure grows by the lines they take). ``left``: the left margin in px (the
    footnotes start at the figure's left edge, that far left of the plot)."""
    notes = wrap_notes(notes)
    title = wrap_title(title)
    band = title_band_px(title)
    bottom = 80 + 16 * len(notes)
    layout = dict(
        # 10 px below the top; plotly lifts a multi-line title by half of each extra line: lower it by as much
        title=dict(
            text=title,
            x=0.0,
            xanchor="left",
            xref="container",
            y=1.0 - (10 + (band - TITLE_PX) / 2) / (height or 450),
            yanchor="top",
            yref="container",
            pad=dict(l=10),
            font=dict(size=16),
        ),
        template=template(),
        font=FONT,
        margin=dict(l=left, r=30, t=band + 16, b=bottom),
        height=None if height is None else height + 16 * len(notes) + (band - TITLE_PX),
        hoverlabel=dict(namelength=-1),
    )
    if notes:
        layout["annotations"] = [
            dict(
                text="<br>".join(notes),
                xref="paper",
                yref="paper",
                x=0.0,
                y=0.0,
                yshift=-(bottom - 8),
                xshift=-(left - 8),
                xanchor="left",
                yanchor="bottom",
                showarrow=False,
                align="left",
                font=dict(size=11, color="#52606d"),
            )
        ]
    return layout


def left_margin_px(fig: go.Figure) -> int:
    """A left margin that holds the figure's category labels on the y axis (its longest line), so plotly's
    automargin need not grow it and the footnotes can start at the figure's left edge."""
    longest = 0
    for trace in fig.data:
        values = getattr(trace, "y", None)
        for value in values if values is not None else ():
            if isinstance(value, str):
                longest = max(longest, *(len(line) for line in value.split("<br>")))
    return max(LEFT_MARGIN_PX, int(longest * TICK_CHAR_PX) + 30)


def legend_under_title(
    height: float, n_entries: int, *, title_px: int = TITLE_PX, top_bands: int = 0
) -> tuple[dict, int]:
    """(legend, top margin) for a legend listed under the title, above the plot: one entry a line, so it takes
    the same room at any width and never reaches the title or the plot. ``height``: the figure's height in
    px; ``title_px``: the title's band (`title_band_px`); ``top_bands``: bands of `TOP_LABEL_PX` left for
    labels drawn just above the plot."""
    # x on the plot's left edge (paper): a legend placed by the container would push plotly's left margin
    legend = dict(
        orientation="v",
        xref="paper",
        x=0.0,
        xanchor="left",
        yref="container",
        y=1.0 - title_px / height,
        yanchor="top",
        bgcolor="rgba(255,255,255,0)",
    )
    return legend, title_px + LEGEND_ROW_PX * n_entries + 20 + TOP_LABEL_PX * top_bands


def put_legend_under_title(fig: go.Figure, *, top_bands: int = 0) -> go.Figure:
    """`legend_under_title` for a figure laid out by `apply_layout` (its height set)."""
    entries = sum(1 for trace in fig.data if trace.showlegend is not False and trace.name)
    legend, top = legend_under_title(
        fig.layout.height or 450, entries, title_px=title_band_px(fig.layout.title.text), top_bands=top_bands
    )
    fig.update_layout(legend=legend, margin=dict(t=top))
    return fig


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Tick values and their labels for a log axis covering [low, high] (both > 0): 1-2-5 steps from the
    step at or below ``low`` to the step at or above ``high``, written as decimals (0.2, 0.5, 1, 2, 5), never
    plotly's abbreviated "2", "5" below 1. Beyond five steps, powers of ten only (0.1, 1, 10)."""
    values = [round(m * 10.0**e, 6) for e in range(-4, 5) for m in (1, 2, 5)]
    first = max([v for v in values if v <= low] or values[:1])
    last = min([v for v in values if v >= high] or values[-1:])
    shown = [v for v in values if first <= v <= last]
    if len(shown) > 5:  # a wide span in a narrow plot: powers of ten only
        shown = [v for v in shown if f"{v:g}".lstrip("0.").startswith("1") and f"{v:g}".strip("0.") == "1"]
    return shown, [f"{v:g}" for v in shown]


def apply_layout(fig: go.Figure, title: str, *, height: int | None = None, notes: Sequence[str] = ()) -> go.Figure:
    """Apply `layout_dict` in one update (keeps the figure's own annotations), with a left margin that holds
    the y axis's category labels (`left_margin_px`)."""
    layout = layout_dict(title, height=height, notes=notes, left=left_margin_px(fig))
    extra = layout.pop("annotations", [])
    fig.update_layout(layout)
    for annotation in extra:
        fig.add_annotation(annotation)
    return fig


def vline(fig: go.Figure, x: float, color: str, *, dash: str = "solid", text: str = "", position: str = "top") -> None:
    """A vertical line across the plot with a label (a plain shape: `add_vline` is ~10x slower)."""
    fig.add_shape(
        type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper", line=dict(color=color, width=2, dash=dash)
    )
    if text:
        fig.add_annotation(
            x=x,
            y=1.0 if position == "top" else 0.0,
            xref="x",
            yref="paper",
            text=text,
            showarrow=False,
            xanchor="right" if position == "top" else "left",
            yanchor="bottom" if position == "top" else "top",
            font=dict(size=11, color=color),
        )


def empty_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14, color="#52606d")
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return apply_layout(fig, title, height=300)


def right_margin_label(fig: go.Figure, y: object, text: str, *, color: str | None = None) -> None:
    """A small label just right of the plot, level with the category ``y`` (a row's value or n)."""
    fig.add_annotation(
        x=1.0,
        xref="paper",
        xanchor="left",
        y=y,
        text=text,
        showarrow=False,
        xshift=8,
        font=dict(size=11) if color is None else dict(size=11, color=color),
    )


def ordered(values: Iterable[object], preferred: Sequence[object] = ()) -> list:
    present = list(dict.fromkeys(values))
    first = [value for value in preferred if value in present]
    return first + [value for value in present if value not in first]


NOT_RUN_CELL = (None, "", "not run")  # (z, text, hover) of a models × findings cell without a row


def model_finding_grid(
    table: pd.DataFrame,
    model_order: Sequence[str],
    finding_order: Sequence[str],
    cell: Callable[[pd.Series], tuple[float | None, str, str]],
) -> tuple[list[list], list[list[str]], list[list[str]]]:
    """The (z, text, hover) grids of a models (rows) × findings (columns) heatmap: ``cell(row)`` of the table's
    row for each (model, finding) (the first one where several), `NOT_RUN_CELL` where it has none."""
    keyed = table.set_index(["model", "finding"])
    z, texts, hovers = [], [], []
    for model in model_order:
        z_row, t_row, h_row = [], [], []
        for finding in finding_order:
            if (model, finding) in keyed.index:
                row = keyed.loc[(model, finding)]
                if isinstance(row, pd.DataFrame):
                    row = row.iloc[0]
                value, text, hover = cell(row)
            else:
                value, text, hover = NOT_RUN_CELL
            z_row.append(value)
            t_row.append(text)
            h_row.append(hover)
        z.append(z_row)
        texts.append(t_row)
        hovers.append(h_row)
    return z, texts, hovers


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_value(value: object) -> str:
    """A feature value for a label: 3 significant digits, 'unknown' for NaN."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "unknown"
    return f"{number:.3g}"


def stars(q: float, alpha: float = 0.05) -> str:
    if q is None or (isinstance(q, float) and math.isnan(q)):
        return ""
    if q < alpha / 50:
        return "***"
    if q < alpha / 5:
        return "**"
    if q < alpha:
        return "*"
    return ""
