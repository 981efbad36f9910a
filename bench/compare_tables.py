"""Byte-for-byte comparison of the report an earlier revision writes with the one this checkout writes.

Checks the earlier revision out into a temporary git worktree, runs its `cxrfail analyze` and this checkout's
on the demo data with the same settings and seed (small: two models, two findings, few replicates), and
compares every file under the two report folders' tables/ (and figures/ with --figures). For each file it
prints one line: identical, differs (for a CSV: rows and columns added or removed, the columns that differ and
the first differing cell; for a figure's HTML: whether its traces or only its layout differ, since the div id
plotly writes is a fresh uuid every time), or only on one side. A file the later revision writes under a new
name is compared with its old one (RENAMED).

Run from the checkout root:
    .venv/bin/python bench/compare_tables.py                  # against 29df1bf, tables only
    .venv/bin/python bench/compare_tables.py --rev REV --figures
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REVISION = "29df1bf"  # the last commit before the work on issues 18-22
DEMO_DIR = REPO.parent / "shared" / "data" / "nih-chexnet"
# The same settings for both revisions, spelled the way both command lines accept them.
# Pneumothorax has reference labels (the label audit); own+demographics first: the flip identifier of both
# revisions (the earlier takes the first non-oracle feature set, the later own+demographics when analysed).
SMALL_RUN = [
    "--findings", "Cardiomegaly", "Pneumothorax",
    "--learners", "logistic",
    "--feature-sets", "own+demographics", "own",
    "--bootstrap", "100",
    "--seed", "0",
]  # fmt: skip
MODELS = ["densenet121_jrzech", "densenet121_nih25"]
# Tables the later revision writes under the dashboard export's names (issue 22: one table writer).
RENAMED = {"tables/model_performance.csv": "tables/performance.csv"}


def run_analyze(tree: Path, out: Path, demo_dir: Path, figures: bool) -> float:
    """Run `cxrfail analyze` of the code in `tree` into `out`; returns its wall time in seconds."""
    predictions = [str(demo_dir / "predictions" / f"{model}.csv") for model in MODELS]
    argv = ["analyze", *SMALL_RUN, "--predictions", *predictions, "--model-names", *MODELS,
            "--out", str(out), "--no-cache"]  # fmt: skip
    if not figures:
        argv.append("--no-figures")
    env = {**os.environ, "PYTHONPATH": str(tree), "CXRFAIL_DEMO_DIR": str(demo_dir)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cxrfail.cli", *argv], cwd=tree, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"compare_tables: `cxrfail analyze` in {tree} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def report_files(report: Path, figures: bool) -> set[str]:
    """Paths (relative to the report folder) of the files to compare."""
    folders = ["tables", "figures"] if figures else ["tables"]
    return {str(p.relative_to(report)) for folder in folders for p in (report / folder).rglob("*") if p.is_file()}


def describe_csv_difference(old: Path, new: Path) -> str:
    """Rows and columns added or removed, and the first differing cell of the shared part."""
    a = pd.read_csv(old, dtype=str, keep_default_na=False)
    b = pd.read_csv(new, dtype=str, keep_default_na=False)
    parts = [f"rows {len(a)} -> {len(b)}"]
    removed = [c for c in a.columns if c not in b.columns]
    added = [c for c in b.columns if c not in a.columns]
    if removed:
        parts.append(f"columns removed {removed}")
    if added:
        parts.append(f"columns added {added}")
    shared = [c for c in a.columns if c in b.columns]
    if shared != [c for c in b.columns if c in a.columns]:
        parts.append("shared columns reordered")
    n = min(len(a), len(b))
    left, right = a[shared].iloc[:n].reset_index(drop=True), b[shared].iloc[:n].reset_index(drop=True)
    unequal = (left != right).to_numpy()
    if unequal.any():
        row, col = divmod(int(unequal.argmax()), unequal.shape[1])
        cells = int(unequal.sum())
        columns = [name for name, differs in zip(shared, unequal.any(axis=0)) if differs]
        parts.append(f"{cells} of {unequal.size} shared cells differ, in columns {columns}; first: row {row} "
                     f"column {shared[col]!r}: {left.iat[row, col]!r} -> {right.iat[row, col]!r}")  # fmt: skip
    elif len(a) == len(b) and not removed and not added:
        parts.append("same cells, different bytes (quoting, order or line ends)")
    return "; ".join(parts)


def describe_parquet_difference(old: Path, new: Path) -> str:
    a, b = pd.read_parquet(old), pd.read_parquet(new)
    if a.equals(b):
        return "same frame, different bytes (metadata)"
    removed = [c for c in a.columns if c not in b.columns]
    added = [c for c in b.columns if c not in a.columns]
    shared = [c for c in a.columns if c in b.columns]
    n = min(len(a), len(b))
    differing = [
        c for c in shared if not a[c].iloc[:n].reset_index(drop=True).equals(b[c].iloc[:n].reset_index(drop=True))
    ]
    return (f"rows {len(a)} -> {len(b)}; columns removed {removed}; columns added {added}; "
            f"shared columns that differ {differing}")  # fmt: skip


def plotly_figure(html_file: Path) -> tuple[list, dict]:
    """(traces, layout) of the figure a plotly HTML file draws (the arguments of its ``Plotly.newPlot``)."""
    text = html_file.read_text()
    start = text.index("Plotly.newPlot(")
    start = text.index(",", start) + 1  # after the div id, a fresh uuid on every write
    decoder = json.JSONDecoder()
    traces, end = decoder.raw_decode(text, start + len(text[start:]) - len(text[start:].lstrip()))
    end = text.index(",", end) + 1
    layout, _ = decoder.raw_decode(text, end + len(text[end:]) - len(text[end:].lstrip()))
    return traces, layout


def changed_keys(old: dict, new: dict) -> list[str]:
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


# Verdicts of files whose bytes differ only by the random ids plotly writes (the figure itself is the same).
EQUIVALENT = (
    "differs: same figure (only the div id differs)",
    "differs: same drawing (only plotly's random SVG id differs)",
    "differs: figure list identical; checksums follow",
)


def describe_figure_difference(old: Path, new: Path) -> str:
    """What differs between two plotly HTML files: the traces (the data drawn) or only the layout."""
    try:
        (old_traces, old_layout), (new_traces, new_layout) = plotly_figure(old), plotly_figure(new)
    except ValueError:
        return "not a plotly figure file"
    layout = changed_keys(old_layout, new_layout)
    if old_traces == new_traces:
        data = "traces identical"
    elif len(old_traces) != len(new_traces):
        data = f"traces differ ({len(old_traces)} -> {len(new_traces)} traces)"
    else:
        first = next(i for i, (a, b) in enumerate(zip(old_traces, new_traces)) if a != b)
        data = f"traces differ (first: trace {first}, keys {changed_keys(old_traces[first], new_traces[first])})"
    if not layout and old_traces == new_traces:
        return "same figure (only the div id differs)"
    return f"{data}; layout keys that differ {layout}"


def svg_without_uid(svg_file: Path) -> str:
    """The SVG text with plotly's random ids blanked: the export's (``defs-<hex>``, also in its clip-path ids)
    and each trace's (``trace<hex>`` classes, ``cb<hex>`` colour bars)."""
    text = svg_file.read_text()
    uid = re.search(r'id="defs-([0-9a-f]+)"', text)
    if uid is not None:
        text = text.replace(uid.group(1), "UID")
    text = re.sub(r"(class=\"trace [\w-]+ trace)[0-9a-f]+", r"\1UID", text)
    return re.sub(r"cb[0-9a-f]{6}(?![0-9a-f])", "cbUID", text)


def describe_pack_difference(old: Path, new: Path) -> str:
    """The figure pack's index: its figure list and note, and checksums of the files (which follow their bytes)."""
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    same_list = a.get("files") == b.get("files") and a.get("note") == b.get("note")
    return "figure list " + ("identical" if same_list else "differs") + "; checksums follow the figure files' bytes"


def compare(old_report: Path, new_report: Path, figures: bool) -> list[tuple[str, str]]:
    """(file, verdict) for every file of either report."""
    old_files, new_files = report_files(old_report, figures), report_files(new_report, figures)
    verdicts = []
    for old_name in sorted(old_files):
        new_name = RENAMED.get(old_name, old_name)
        label = old_name if new_name == old_name else f"{old_name} (now {new_name})"
        if new_name not in new_files:
            verdicts.append((label, "only in the earlier revision"))
            continue
        old_path, new_path = old_report / old_name, new_report / new_name
        if old_path.read_bytes() == new_path.read_bytes():
            verdicts.append((label, "identical"))
        elif old_name.endswith(".csv"):
            verdicts.append((label, "differs: " + describe_csv_difference(old_path, new_path)))
        elif old_name.endswith(".parquet"):
            verdicts.append((label, "differs: " + describe_parquet_difference(old_path, new_path)))
        elif old_name.endswith(".html"):
            verdicts.append((label, "differs: " + describe_figure_difference(old_path, new_path)))
        elif old_name.endswith(".svg") and svg_without_uid(old_path) == svg_without_uid(new_path):
            verdicts.append((label, "differs: same drawing (only plotly's random SVG id differs)"))
        elif old_name.endswith("pack.json"):
            verdicts.append((label, "differs: " + describe_pack_difference(old_path, new_path)))
        else:
            size_old, size_new = old_path.stat().st_size, new_path.stat().st_size
            rendering = " (a rendering of the .html figure)" if old_path.suffix in (".png", ".svg") else ""
            verdicts.append((label, f"differs: {size_old} -> {size_new} bytes{rendering}"))
    renamed_targets = {RENAMED.get(name, name) for name in old_files}
    verdicts += [(name, "only in this checkout") for name in sorted(new_files - renamed_targets)]
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default=DEFAULT_REVISION, help=f"earlier revision (default {DEFAULT_REVISION})")
    parser.add_argument("--figures", action="store_true", help="also render and compare the figures (slow)")
    parser.add_argument("--demo-dir", type=Path, default=Path(os.environ.get("CXRFAIL_DEMO_DIR") or DEMO_DIR))
    parser.add_argument("--keep", type=Path, help="write both reports under this folder and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxrfail-compare-") as scratch:
        scratch = Path(scratch)
        reports = args.keep or scratch
        tree = scratch / "earlier"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree), args.rev],
                       check=True)  # fmt: skip
        try:
            old_seconds = run_analyze(tree, reports / "earlier", args.demo_dir, args.figures)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)
        new_seconds = run_analyze(REPO, reports / "this", args.demo_dir, args.figures)
        verdicts = compare(reports / "earlier", reports / "this", args.figures)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    print(f"{args.rev} ({old_seconds:.0f} s) vs this checkout at {head} ({new_seconds:.0f} s); "
          f"models {MODELS}; settings {' '.join(SMALL_RUN)}")  # fmt: skip
    width = max(len(name) for name, _ in verdicts)
    for name, verdict in verdicts:
        print(f"{name:<{width}}  {verdict}")
    same = sum(verdict == "identical" for _, verdict in verdicts)
    equivalent = sum(verdict.startswith(EQUIVALENT) for _, verdict in verdicts)
    print(f"{same} of {len(verdicts)} files identical, {equivalent} more differ only by plotly's random ids")


if __name__ == "__main__":
    main()
