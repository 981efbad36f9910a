"""The two candidate slice-search libraries side by side: SliceLine (``sliceline``, the one cxrfail uses) and
Microsoft's Error Analysis error tree (``erroranalysis``), on the planted-slice cohorts of the tests and on
the bundled CheXpert file at study level (one pair, misclassification).

``erroranalysis`` 0.5.5 pins numpy<2 and pandas<2, so it cannot live in cxrfail's environment (numpy 2.4,
pandas 3.1): it runs in a separate interpreter (``--erroranalysis-python``, a virtual environment with
``pip install erroranalysis==0.5.5``), fed a CSV of the searched rows (numeric columns: age, sex_male, view_AP,
the other findings' labels) and returning each tree node's rows as JSON. Its tree is grown with depth 3 (up to
3 predicates) and its default 31 leaves, min_child_samples = the minimum slice rows.

Measured per library: in how many of the 10 planted seeds a searched slice (SliceLine's top K; every error-tree
node) overlaps the planted rows of the calibration split with IoU >= 0.7, search seconds, and at CheXpert scale
the search seconds of one pair (SliceLine with cxrfail's search sample; the error tree on every calibration row).

Run: .venv/bin/python bench/slices_library_compare.py --erroranalysis-python /tmp/eavenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analysis"))
from slice_cohorts import TARGET, iou, synthetic_cohort

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.slices import (
    build_search_space,
    search_sample,
    search_slices,
    slice_columns,
    slice_mask,
)

WORKER = r"""
import json, sys, time
import numpy as np, pandas as pd
from erroranalysis.analyzer import PredictionsAnalyzer
from erroranalysis._internal.surrogate_error_tree import compute_error_tree
frame = pd.read_csv(sys.argv[1])
features = [c for c in frame.columns if c not in ("true_y", "pred_y")]
started = time.perf_counter()
analyzer = PredictionsAnalyzer(frame["pred_y"].to_numpy(), frame[features], frame["true_y"].to_numpy(), features, [])
tree = compute_error_tree(analyzer, features, [], [], max_depth=3, min_child_samples=int(sys.argv[2]))
seconds = time.perf_counter() - started
masks, nodes = {}, []
for node in sorted(tree, key=lambda n: n["id"]):
    parent = masks.get(node["parentId"], np.ones(len(frame), dtype=bool))
    mask = parent & frame.eval(node["condition"]).to_numpy(dtype=bool) if node["condition"] else parent
    masks[node["id"]] = mask
    nodes.append({"rows": np.flatnonzero(mask).tolist(), "condition": node["condition"]})
print(json.dumps({"seconds": seconds, "nodes": nodes}))
"""


def numeric_frame(rows: pd.DataFrame, errors_from: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The searched columns as numbers (sex as male 0/1, view as AP 0/1), with true_y / pred_y."""
    out = pd.DataFrame(index=rows.index)
    for column in columns:
        if column == "sex":
            out["sex_male"] = (rows["sex"] == "M").astype(float).where(rows["sex"].notna())
        elif column == "view":
            out["view_AP"] = (rows["view"] == "AP").astype(float).where(rows["view"].notna())
        else:
            out[column.replace(" ", "_")] = pd.to_numeric(rows[column], errors="coerce").astype(float)
    out["true_y"] = errors_from["label"].to_numpy()
    out["pred_y"] = errors_from["prediction"].to_numpy()
    return out


def error_tree(python: str, frame: pd.DataFrame, min_rows: int, folder: Path) -> tuple[float, list[np.ndarray]]:
    path = folder / "rows.csv"
    frame.to_csv(path, index=False)
    completed = subprocess.run([python, "-c", WORKER, str(path), str(min_rows)], capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"erroranalysis failed:\n{completed.stderr[-3000:]}")
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    masks = []
    for node in answer["nodes"]:
        mask = np.zeros(len(frame), dtype=bool)
        mask[node["rows"]] = True
        masks.append(mask)
    return answer["seconds"], masks


def planted(python: str | None, config: AnalysisConfig, folder: Path) -> None:
    hits = {"sliceline": 0, "erroranalysis": 0}
    seconds = {"sliceline": 0.0, "erroranalysis": 0.0}
    for seed in range(10):
        table = synthetic_cohort(seed)
        cal = table.loc[table["split"] == "calibration"]
        errors = (cal[TARGET].to_numpy(dtype=int) != cal["prediction"].to_numpy()).astype(float)
        target = cal["planted"].to_numpy()
        columns = slice_columns(cal, TARGET)
        started = time.perf_counter()
        found = search_slices(
            build_search_space(cal, columns),
            errors,
            top_k=config.slice_top_k,
            min_support=config.slice_min_rows,
            max_predicates=config.slice_max_predicates,
        )
        seconds["sliceline"] += time.perf_counter() - started
        hits["sliceline"] += max((iou(slice_mask(cal, p), target) for p, _ in found), default=0) >= 0.7
        if python:
            frame = numeric_frame(
                cal, pd.DataFrame({"label": cal[TARGET].astype(int), "prediction": cal["prediction"]}), columns
            )
            spent, masks = error_tree(python, frame, config.slice_min_rows, folder)
            seconds["erroranalysis"] += spent
            hits["erroranalysis"] += max((iou(mask, target) for mask in masks), default=0) >= 0.7
    for name in ("sliceline",) + (("erroranalysis",) if python else ()):
        print(
            f"planted: {name} found a slice with IoU >= 0.7 in {hits[name]} of 10 seeds "
            f"(search {seconds[name] / 10:.2f} s per seed)"
        )


def chexpert(python: str | None, config: AnalysisConfig, folder: Path) -> None:
    from cxrfail.analysis.outcomes import classify
    from cxrfail.analysis.splits import patient_split
    from cxrfail.analysis.thresholds import choose_threshold
    from cxrfail.cohort import chexpert_sample_path, load_chexpert
    from cxrfail.simulate import simulated_probabilities

    finding = "Edema"
    cohort = load_chexpert(chexpert_sample_path(), uncertain_policy="zeros")
    rows = cohort.table.loc[cohort.table[finding].notna()]
    probability = simulated_probabilities(cohort, [finding], 1)[finding].loc[rows.index].to_numpy()
    label = rows[finding].to_numpy(dtype=int)
    split = patient_split(rows["patient_id"].to_numpy(), config.calibration_fraction, config.seed)
    cal = split == "calibration"
    threshold = choose_threshold(
        label[cal], probability[cal], config.threshold_method, config.fixed_threshold
    ).threshold
    prediction = classify(label, probability, threshold)["prediction"].to_numpy()
    cal_rows = rows.loc[cal]
    errors = (label[cal] != prediction[cal]).astype(float)
    columns = slice_columns(cal_rows, finding)
    started = time.perf_counter()
    sample = search_sample(cal_rows["patient_id"].to_numpy(), config.slice_search_rows, config.seed)
    search_slices(
        build_search_space(cal_rows.loc[sample], columns),
        errors[sample],
        top_k=config.slice_top_k,
        min_support=max(1, int(config.slice_min_rows * sample.mean())),
        max_predicates=config.slice_max_predicates,
    )
    print(
        f"chexpert ({int(cal.sum())} calibration studies, {finding}, misclassified): sliceline search "
        f"{time.perf_counter() - started:.1f} s on a {int(sample.sum())}-row patient sample"
    )
    if python:
        frame = numeric_frame(cal_rows, pd.DataFrame({"label": label[cal], "prediction": prediction[cal]}), columns)
        spent, masks = error_tree(python, frame, config.slice_min_rows, folder)
        print(f"chexpert: erroranalysis error tree {spent:.1f} s on all {len(frame)} rows ({len(masks)} nodes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--erroranalysis-python", help="an interpreter with erroranalysis 0.5.5 installed")
    parser.add_argument("--skip-chexpert", action="store_true")
    args = parser.parse_args()
    config = AnalysisConfig()
    with tempfile.TemporaryDirectory(prefix="cxrfail-slices-") as scratch:
        planted(args.erroranalysis_python, config, Path(scratch))
        if not args.skip_chexpert:
            chexpert(args.erroranalysis_python, config, Path(scratch))


if __name__ == "__main__":
    main()
