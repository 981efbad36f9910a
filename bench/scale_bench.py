"""CheXpert at scale: a cold `cxrfail analyze` of the bundled CheXpert training CSV at study level (187,641
studies of 64,540 patients) with 10 simulated models x the 5 competition findings (50 pairs).

Models: `cxrfail.simulate.write_simulated_models` (probabilities that track the labels with noise, seeded 1-10,
AUROC about 0.9), written to a temporary folder. Cohort: torchxrayvision's ``chexpert_train.csv.gz``, uncertain
labels as zeros (``--uncertain`` to change); ``--rows N`` keeps the images of the first N studies for a quick
run. The command runs in a subprocess with an empty cache (``--cache-dir`` in the temporary folder), default
analysis settings and ``--no-figures`` (``--figures`` to render them too). Peak memory is the largest sum of the
resident set sizes of the command and all its descendants (the worker processes), sampled every 0.2 s.

``--pairs``: instead, time `analyse_pair` in this process on one thread for each competition finding of one
model (after a warm-up pair), printing CPU and wall seconds per pair and ``pair_cpu_s:`` (the largest).

Run: .venv/bin/python bench/scale_bench.py [--rows 20000] [--models 10] [--figures] [--pairs]
Goal on the 2-core machine, full size: at most 5 minutes and 4 GB. Last lines: ``scale_minutes:`` and
``peak_gb:``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from cxrfail.cohort import chexpert_sample_path, load_chexpert
from cxrfail.findings import COMPETITION_FINDINGS
from cxrfail.simulate import write_simulated_models

SAMPLE_SECONDS = 0.2


def cohort_file(rows: int | None, folder: Path) -> Path:
    """The bundled CSV, or a copy holding the images of its first ``rows`` studies."""
    source = chexpert_sample_path()
    if rows is None:
        return source
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    study = raw["Path"].str.extract(r"(patient[^/]+/study[^/]+)/")[0]
    kept = study.isin(study.drop_duplicates().iloc[:rows])
    path = folder / f"chexpert_first_{rows}_studies.csv"
    raw[kept].to_csv(path, index=False)
    return path


def tree_rss_bytes(root_pid: int) -> int:
    """Resident set size of ``root_pid`` and all its descendants, bytes (read from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as handle:
                rss[int(entry)] = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_with_peak_memory(command: list[str]) -> tuple[float, int]:
    """Run ``command``; return (wall seconds, peak resident bytes of its process tree)."""
    peak = 0
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"cxrfail analyze failed (exit {process.returncode}):\n{stderr[-4000:]}")
    return seconds, peak


def time_pairs(cohort, predictions: list[Path]) -> None:
    """CPU and wall seconds of `analyse_pair` per competition finding of the second model, one thread."""
    from threadpoolctl import threadpool_limits

    from cxrfail.analysis.config import AnalysisConfig
    from cxrfail.analysis.pair import PairInputs, analyse_pair, run_levels
    from cxrfail.analysis.splits import patient_split
    from cxrfail.predictions import load_predictions

    config = AnalysisConfig()
    models = load_predictions(predictions)
    table = cohort.table
    split = pd.Series(
        patient_split(table["patient_id"].to_numpy(), config.calibration_fraction, config.seed), index=table.index
    )
    inputs = PairInputs(
        table=table,
        probabilities={m.name: m.probabilities.loc[table.index] for m in models},
        split=split,
        levels=run_levels(table, config),
        unit=cohort.unit,
    )
    cpu_seconds = []
    with threadpool_limits(limits=1):
        analyse_pair(inputs, models[0].name, COMPETITION_FINDINGS[0], config)  # warm-up: imports, first calls
        for finding in COMPETITION_FINDINGS:
            wall, cpu = time.perf_counter(), time.process_time()
            analyse_pair(inputs, models[1].name, finding, config)
            cpu_seconds.append(time.process_time() - cpu)
            print(
                f"{finding}: {cpu_seconds[-1]:.1f} s CPU, {time.perf_counter() - wall:.1f} s wall "
                f"(load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    print(f"pair_cpu_s: {max(cpu_seconds):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="keep the first N studies (default: all)")
    parser.add_argument("--models", type=int, default=10, help="simulated models (default %(default)s)")
    parser.add_argument("--uncertain", default="zeros", choices=["zeros", "ones", "drop"])
    parser.add_argument("--figures", action="store_true", help="render the report figures too")
    parser.add_argument("--pairs", action="store_true", help="time single pairs in-process instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxrfail-scale-") as scratch:
        scratch = Path(scratch)
        csv = cohort_file(args.rows, scratch)
        cohort = load_chexpert(csv, uncertain_policy=args.uncertain)
        predictions = write_simulated_models(cohort, COMPETITION_FINDINGS, args.models, scratch / "models")
        if args.pairs:
            time_pairs(cohort, predictions)
            return
        command = [
            sys.executable,
            "-m",
            "cxrfail.cli",
            "analyze",
            "--cohort",
            "chexpert",
            "--cohort-file",
            str(csv),
            "--uncertain",
            args.uncertain,
            "--predictions",
            *map(str, predictions),
            "--cache-dir",
            str(scratch / "cache"),
            "--out",
            str(scratch / "report"),
        ]
        if not args.figures:
            command.append("--no-figures")
        pairs = args.models * len(COMPETITION_FINDINGS)
        print(
            f"cohort: {cohort.n_rows} studies of {cohort.n_patients} patients ({csv.name}, uncertain as "
            f"{args.uncertain}); {args.models} simulated models x {len(COMPETITION_FINDINGS)} findings = "
            f"{pairs} pairs; {os.cpu_count()} cores; figures {'on' if args.figures else 'off'}"
        )
        seconds, peak = run_with_peak_memory(command)
    print(f"cold analyze: {seconds:.1f} s ({seconds / pairs:.1f} s per pair)")
    print(f"scale_minutes: {seconds / 60:.2f}")
    print(f"peak_gb: {peak / 1e9:.2f}")


if __name__ == "__main__":
    main()
