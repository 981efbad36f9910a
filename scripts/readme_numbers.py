"""Regenerate the numbers quoted in README.md and docs/*.md from demo runs, so none of them is typed in.

A quoted number lives in a marked block::

    <!-- generated:NAME -->
    ...text this script writes...
    <!-- /generated -->

``python scripts/readme_numbers.py`` rewrites every block of every file in `DOCUMENTS` from `BLOCKS`;
``--check`` rewrites nothing and exits 1 naming each block that differs (``tests/test_docs_numbers.py`` runs
it). The demo runs it needs go through `run_analysis`'s on-disk cache (``$CXRFAIL_CACHE_DIR``, default
``~/.cache/cxrfail``), so a second call takes seconds. A block whose code has not landed yet (the identifier
ladder, slices) says so instead of quoting numbers; once it lands, ``--check`` fails until the files are
regenerated.
"""

from __future__ import annotations

import argparse
import ast
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS: tuple[Path, ...] = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.DOTALL)

#: The findings the demo's expert labels read (Google 2019: Pneumothorax, Nodule or mass -> Lung Lesion).
AUDITED_FINDINGS = ("Pneumothorax", "Lung Lesion")


# --- the demo runs (cached on disk by run_analysis) -----------------------------------------------------
@functools.cache
def _demo():
    """The demo's cohort, predictions and expert labels (`cxrfail.load_demo`)."""
    from cxrfail import load_demo

    return load_demo()


@functools.cache
def core_run():
    """The default configuration on the whole demo, core scope: performance, outcomes, subgroups, regression."""
    from cxrfail import AnalysisConfig, analyze
    from cxrfail.analysis.config import CORE_SCOPE

    return analyze(_demo().cohort, _demo().predictions, AnalysisConfig(), scope=CORE_SCOPE)


@functools.cache
def full_run():
    """The default configuration on the whole demo, every step (what `cxrfail analyze` and the dashboard run)."""
    from cxrfail import AnalysisConfig, analyze

    return analyze(_demo().cohort, _demo().predictions, AnalysisConfig())


@functools.cache
def audit_run():
    """The default configuration on the two findings the demo's expert labels read, with the label audit (the
    same run as the README's Python example, so they share one cache entry)."""
    from cxrfail import AnalysisConfig, analyze

    demo = _demo()
    return analyze(demo.cohort, demo.predictions, AnalysisConfig(findings=AUDITED_FINDINGS), reference=demo.reference)


# --- formatting -----------------------------------------------------------------------------------------
def _int(value) -> str:
    return f"{int(value):,}"


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _ci_pct(low: float, high: float) -> str:
    return f"[{100 * low:.0f}, {100 * high:.0f}]"


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _span(values, digits: int = 2) -> str:
    values = np.asarray(values, dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    return _num(low, digits) if _num(low, digits) == _num(high, digits) else f"{_num(low, digits)}-{_num(high, digits)}"


def _markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


# --- the blocks -----------------------------------------------------------------------------------------
def demo_cohort() -> str:
    """One paragraph on the demo: rows, patients, models, images, expert labels."""
    cohort, models, reference = _demo().cohort, _demo().predictions, _demo().reference
    table = cohort.table
    n_images = table["image_path"].notna().sum() if "image_path" in table else 0
    ref_ids = reference.table.index
    return (
        f"The demo is the NIH ChestX-ray14 test split: **{_int(len(table))} images of "
        f"{_int(table['patient_id'].nunique())} patients** (one row = one {cohort.unit}), with the real "
        f"predictions of {len(models)} DenseNet-121 models ({', '.join(f'`{m.name}`' for m in models)}), "
        f"{_int(n_images)} of the radiographs themselves, and expert labels on {_int(len(ref_ids))} of the "
        f"images ({_int(table.loc[ref_ids, 'patient_id'].nunique())} patients)."
    )


def demo_clusters() -> str:
    """How many rows the demo's patients own: why every interval resamples patients."""
    cohort = _demo().cohort
    per_patient = cohort.table.groupby("patient_id", observed=True).size()
    return (
        f"{_int(len(cohort.table))} rows of {_int(len(per_patient))} patients; a patient owns a median of "
        f"{per_patient.median():.0f} and up to {_int(per_patient.max())} rows, and "
        f"{_pct((per_patient > 1).mean())} of patients own more than one."
    )


def design_effects() -> str:
    """Design effects of the subgroup rates per finding, over every model and non-reference level."""
    rates = core_run().table("subgroup_rates")
    levels = rates.loc[~rates["is_reference"].astype(bool) & np.isfinite(rates["design_effect"].astype(float))]
    rows = []
    for finding, group in levels.groupby("finding", sort=False):
        top = group.loc[group["design_effect"].astype(float).idxmax()]
        clustered = float(top["ci_high"]) - float(top["ci_low"])
        wilson = float(top["wilson_high"]) - float(top["wilson_low"])
        rows.append(
            {
                "finding": finding,
                "levels": len(group),
                "median design effect": _num(group["design_effect"].median(), 1),
                "largest": _num(top["design_effect"], 1),
                "at (model, subgroup = level)": f"{top['model']}, {top['subgroup']} = {top['level']}",
                "clustered / Wilson width there": _num(clustered / wilson, 1) if wilson > 0 else "n/a",
            }
        )
    return (
        _markdown_table(pd.DataFrame(rows)) + "\n\n"
        "Levels: every (model, subgroup level) on the test split of the default run; "
        "`scripts/readme_numbers.py` computes this table."
    )


def _ladder_available() -> bool:
    from cxrfail.analysis import config

    return "probability_only" in getattr(config, "IDENTIFIER_LADDER", getattr(config, "FEATURE_SETS", ()))


def identifier_ladder() -> str:
    """Mean test-split AUROC gain of each rung of the identifier ladder over probability_only."""
    if not _ladder_available():
        return "*(Filled by `scripts/readme_numbers.py` once the identifier ladder (issue 18) has landed.)*"
    table = full_run().table("identifiers")
    rows = []
    for feature_set, group in table.groupby("feature_set", sort=False):
        reference = feature_set == "probability_only"
        above = (group["delta_vs_probability_only_ci_low"] > 0).sum()
        rows.append(
            {
                "feature set": f"`{feature_set}`" + (" (oracle)" if bool(group["oracle"].iloc[0]) else ""),
                "pairs": len(group),
                "test AUROC (range over pairs)": _span(group["auroc"]),
                "mean Δ AUROC vs probability_only": "reference"
                if reference
                else f"{group['delta_vs_probability_only'].mean():+.3f}",
                "pairs whose Δ interval lies above 0": "" if reference else f"{above} of {len(group)}",
                "below 0": "" if reference else f"{(group['delta_vs_probability_only_ci_high'] < 0).sum()}",
            }
        )
    base = table.loc[table["feature_set"] == "probability_only"]
    clinical = table.loc[table["feature_set"] == "own+demographics"]
    above = int((clinical["delta_vs_probability_only_ci_low"] > 0).sum())
    excluding = above + int((clinical["delta_vs_probability_only_ci_high"] < 0).sum())
    plain = (
        f"In plain words: the model's own probability alone already identifies misclassifications with a mean "
        f"test AUROC of {_num(base['auroc'].mean(), 3)} (CheXbreak reported about 0.9 for its identifiers); the "
        f"model's other outputs and the demographics (`own+demographics`, the run's identifier) add "
        f"{clinical['delta_vs_probability_only'].mean():+.3f} on average, with the paired interval excluding 0 "
        f"in {excluding} of {len(clinical)} pairs (above 0 in {above})."
    )
    if abs(clinical["delta_vs_probability_only"].mean()) < 0.01 and excluding <= len(clinical) // 4:
        plain += " On this demo, clinical features add almost nothing beyond the model's own probability."
    return (
        _markdown_table(pd.DataFrame(rows)) + "\n\nOne row per feature set over every (model, finding) pair "
        "of the default run; Δ is paired (the same patient resamples for both identifiers).\n\n" + plain
    )


def slices() -> str:
    """How many of the searched slices were confirmed on test, and two confirmed examples."""
    from cxrfail.analysis.result import TABLE_COLUMNS

    if "slices" not in TABLE_COLUMNS:
        return "*(Filled by `scripts/readme_numbers.py` once the slice search (issue 19) has landed.)*"
    table = full_run().table("slices")
    confirmed = table.loc[table["confirmed"].astype(bool)].sort_values("q_value")
    lines = [
        f"{_int(len(confirmed))} of the {_int(len(table))} top slices searched on calibration were "
        "confirmed on the test split."
    ]
    examples = confirmed.drop_duplicates("finding").head(2)  # two findings: near-copies of one slice say little
    for row in examples.itertuples(index=False):
        lines.append(
            f"- {row.model}, {row.finding} ({row.error_kind}): `{row.slice}`: rate {_pct(row.rate_test)} "
            f"{_ci_pct(row.ci_low, row.ci_high)} on {_int(row.n_test)} rows of "
            f"{_int(row.n_patients_test)} patients, rate ratio {_num(row.rate_ratio)} "
            f"[{_num(row.rr_ci_low)}, {_num(row.rr_ci_high)}], q = {row.q_value:.2g}"
        )
    return "\n".join(lines)


def label_agreement() -> str:
    """The 2 x 2 agreement of the cohort's labels with the experts, per audited finding (model-independent)."""
    agreement = audit_run().table("label_agreement")
    first_model = agreement["model"].iloc[0]
    rows = {"": ["cohort no", "cohort yes", "kappa"]}
    for finding in AUDITED_FINDINGS:
        cells = agreement.loc[(agreement["model"] == first_model) & (agreement["finding"] == finding)]
        count = {(int(r.cohort_label), int(r.reference_label)): int(r.n) for r in cells.itertuples()}
        rows[f"{finding}: expert no"] = [
            _int(count.get((0, 0), 0)),
            _int(count.get((1, 0), 0)),
            _num(cells["kappa"].iloc[0]),
        ]
        rows[f"{finding}: expert yes"] = [_int(count.get((0, 1), 0)), _int(count.get((1, 1), 0)), ""]
    n_rows = int(agreement["n_rows"].iloc[0])
    n_patients = int(agreement["n_patients"].iloc[0])
    return (
        _markdown_table(pd.DataFrame(rows))
        + f"\n\nOn the {_int(n_rows)} images ({_int(n_patients)} patients) with both labels."
    )


def label_errors() -> str:
    """Share of each model's test-split misclassifications that are probable label errors."""
    audit = audit_run().table("label_audit")
    rows = []
    for model, group in audit.groupby("model", sort=False):
        row = {"model": model}
        for finding in AUDITED_FINDINGS:
            r = group.loc[group["finding"] == finding].iloc[0]
            row[f"{finding}: label errors / misclassified"] = f"{int(r.n_label_error)} / {int(r.n_misclassified)}"
            row[f"{finding}: share [95% CI]"] = (
                f"{_pct(r.label_error_share)} {_ci_pct(r.label_error_ci_low, r.label_error_ci_high)}"
            )
        rows.append(row)
    first = audit.iloc[0]
    return (
        _markdown_table(pd.DataFrame(rows))
        + f"\n\nOn the expert-labelled {first['split']}-split images ({_int(first['n_split_rows'])} images, "
        f"{_int(first['n_split_patients'])} patients) at each model's operating threshold (chosen on "
        "calibration), with patient-bootstrap 95% intervals."
    )


#: Width of the command-line help quoted in the docs (argparse wraps to $COLUMNS otherwise).
HELP_COLUMNS = 110


def _command_help(*command: str) -> str:
    """``cxrfail COMMAND --help`` as the command prints it, in a text block."""
    import contextlib
    import io
    import os
    from unittest import mock

    from cxrfail.cli import build_parser

    printed = io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": str(HELP_COLUMNS)}), contextlib.redirect_stdout(printed):
        with contextlib.suppress(SystemExit):  # --help prints, then exits
            build_parser().parse_args([*command, "--help"])
    return "```text\n" + printed.getvalue().rstrip() + "\n```"


def cli_help() -> str:
    return _command_help()


def cli_analyze_help() -> str:
    return _command_help("analyze")


def cli_infer_help() -> str:
    return _command_help("infer")


#: NIH findings that overlap the experts' airspace opacity, and the group of all five.
OPACITY_FINDINGS = ("Consolidation", "Infiltration", "Pneumonia", "Atelectasis", "Edema")


def airspace_opacity() -> str:
    """Why the experts' airspace opacity is not audited on NIH: how it compares with the NIH findings nearest it."""
    from cxrfail.analysis.labels import cohen_kappa

    cohort, reference = _demo().cohort, _demo().reference.table
    expert = reference["Lung Opacity"].dropna().astype(int)
    labels = cohort.table.loc[expert.index, list(OPACITY_FINDINGS)].fillna(0).astype(int)
    columns = {name: labels[name] for name in OPACITY_FINDINGS[:3]}
    columns["any of the five"] = labels.max(axis=1)
    opaque = expert == 1
    parts = []
    for name, nih in columns.items():
        counts = pd.crosstab(nih, expert).reindex(index=[0, 1], columns=[0, 1], fill_value=0).to_numpy()
        parts.append(f"{name} labels {_int(nih[opaque].sum())} of them (kappa {_num(cohen_kappa(counts))})")
    none = int((labels.loc[opaque].max(axis=1) == 0).sum())
    return (
        f"Of the {_int(opaque.sum())} of the {_int(len(expert))} expert-read images that the experts call "
        f"airspace opacity, NIH {'; '.join(parts)}; {_int(none)} carry none of "
        f"{', '.join(OPACITY_FINDINGS)}."
    )


def label_aurocs() -> str:
    """Model and identifier AUROC against each label set, per model and finding."""
    audit = audit_run().table("label_audit")
    rows = []
    for r in audit.itertuples(index=False):
        rows.append(
            {
                "model": r.model,
                "finding": r.finding,
                "model AUROC: cohort labels": _num(r.auroc_cohort),
                "model AUROC: experts": _num(r.auroc_reference),
                "identifier AUROC: cohort-defined errors": _num(r.identifier_auroc_cohort),
                "identifier AUROC: expert-defined errors": _num(r.identifier_auroc_reference),
            }
        )
    return _markdown_table(pd.DataFrame(rows))


#: Where `make bench` keeps each benchmark's output (``NAME.txt``).
BENCH_RESULTS = ROOT / "bench" / "results"
#: The first line `make bench` writes into each output: when, how many cores, the load average.
RECORDED = "# recorded"
#: A benchmark's result lines: ``name: number`` (the ratio or figure it reports), or ``name: median M worst W``
#: / ``name: worst W``, maybe with a note after it, as the scripts print them.
RESULT_LINE = re.compile(r"^([a-z0-9_]+): ((median -?[0-9.]+ )?(worst )?-?[0-9.]+)( \(.*|; .*)?$")


def _summary(script: Path) -> str:
    """The first paragraph of a script's docstring, on one line."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return " ".join(docstring.split("\n\n")[0].split()).replace("|", "\\|")


def benchmarks() -> str:
    """Every benchmark: what it times, the result lines of the output `make bench` kept, when it was recorded."""
    rows = []
    for bench in sorted((ROOT / "bench").glob("*_bench.py")):
        output = BENCH_RESULTS / f"{bench.stem}.txt"
        row = {"benchmark": f"`{bench.name}`", "what": _summary(bench)}
        if not output.is_file():
            rows.append({**row, "result lines": "not recorded yet (run `make bench`)", "recorded": ""})
            continue
        text = output.read_text(encoding="utf-8").splitlines()
        lines = [m.group(0) for m in map(RESULT_LINE.match, text) if m]
        header = [line.removeprefix(RECORDED).strip() for line in text if line.startswith(RECORDED)]
        recorded = header[0] if header else ""
        rows.append({**row, "result lines": "<br>".join(f"`{line}`" for line in lines), "recorded": recorded})
    return _markdown_table(pd.DataFrame(rows))


BLOCKS: dict[str, Callable[[], str]] = {
    "benchmarks": benchmarks,
    "demo_cohort": demo_cohort,
    "demo_clusters": demo_clusters,
    "design_effects": design_effects,
    "identifier_ladder": identifier_ladder,
    "slices": slices,
    "label_agreement": label_agreement,
    "label_errors": label_errors,
    "label_aurocs": label_aurocs,
    "airspace_opacity": airspace_opacity,
    "cli_help": cli_help,
    "cli_analyze_help": cli_analyze_help,
    "cli_infer_help": cli_infer_help,
}


# --- filling the files ----------------------------------------------------------------------------------
def render(text: str, values: dict[str, str]) -> str:
    """``text`` with the body of every generated block replaced by ``values[name]``."""

    def body(match: re.Match) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise KeyError(f"unknown generated block {name!r}; blocks are {', '.join(BLOCKS)}")
        return match.group(1) + values[name].rstrip("\n") + "\n" + match.group(4)

    return BLOCK.sub(body, text)


def block_names(text: str) -> list[str]:
    return [match.group("name") for match in BLOCK.finditer(text)]


@functools.cache
def value(name: str) -> str:
    return BLOCKS[name]()


def regenerate(paths=DOCUMENTS) -> dict[Path, tuple[str, str]]:
    """path -> (current text, regenerated text) for every file with generated blocks."""
    out = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        names = block_names(text)
        if names:
            out[path] = (text, render(text, {name: value(name) for name in names}))
    return out


def stale_blocks(current: str, wanted: str) -> list[str]:
    """Names of the blocks whose bodies differ between two versions of one file."""
    now = {m.group("name"): m.group("body") for m in BLOCK.finditer(current)}
    return [m.group("name") for m in BLOCK.finditer(wanted) if now.get(m.group("name")) != m.group("body")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, (current, wanted) in regenerate().items():
        if current == wanted:
            continue
        if args.check:
            stale += [f"{path.relative_to(ROOT)}: {name}" for name in stale_blocks(current, wanted)]
        else:
            path.write_text(wanted, encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run python scripts/readme_numbers.py): " + "; ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
