"""Simulated model outputs for cohorts that ship without any: probabilities that track the labels with noise.

Used by the scale benchmark and by tests on the bundled CheXpert file (no CheXpert model output ships with
the project). Seeded, so a file written twice is byte-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrfail.cohort import Cohort


def simulated_probabilities(
    cohort: Cohort, findings: Sequence[str], seed: int, *, separation: float = 2.5, noise_sd: float = 1.2
) -> pd.DataFrame:
    """One simulated model's probabilities, shape (cohort rows, len(findings)), index ``image_id``.

    Per row and finding: ``logit = -2 + separation * label + N(0, noise_sd)`` (a label that is not known counts
    as 0), probability = sigmoid(logit), rounded to 6 decimals as an exported file would be. With the defaults
    the AUROC is about 0.9.
    """
    rng = np.random.default_rng(seed)
    table = cohort.table
    columns = {}
    for finding in findings:
        label = table[finding].fillna(0.0).to_numpy(dtype=float)
        logit = -2.0 + separation * label + rng.normal(0.0, noise_sd, len(label))
        columns[finding] = np.round(1.0 / (1.0 + np.exp(-logit)), 6)
    return pd.DataFrame(columns, index=pd.Index(table.index, name="image_id"))


def write_simulated_models(
    cohort: Cohort, findings: Sequence[str], n_models: int, folder: str | Path, *, first_seed: int = 1
) -> list[Path]:
    """Write ``n_models`` prediction CSVs (``sim01.csv`` ...; seeds ``first_seed`` onwards) into ``folder``,
    in the format ``cxrfail analyze --predictions`` reads; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(n_models):
        path = folder / f"sim{number + 1:02d}.csv"
        simulated_probabilities(cohort, findings, first_seed + number).to_csv(path)
        paths.append(path)
    return paths
