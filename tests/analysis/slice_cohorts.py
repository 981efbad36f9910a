"""Synthetic cohorts for the slice tests and the library comparison: seeded, several thousand patients with
several rows each, and errors either planted in a 3-predicate slice or independent of every column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrfail.analysis.splits import patient_split

#: the planted slice: a numeric range, a category and another finding's label
PLANTED_AGE, PLANTED_VIEW, PLANTED_FINDING = 65.0, "AP", "Edema"
TARGET = "Atelectasis"
BASE_ERROR, PLANTED_FACTOR = 0.1, 3.0
OTHER_FINDINGS = {
    "Edema": 0.2,
    "Cardiomegaly": 0.15,
    "Pleural Effusion": 0.2,
    "Pneumothorax": 0.05,
    "Lung Lesion": 0.05,
    "Support Devices": 0.3,
}


def synthetic_cohort(seed: int, *, n_patients: int = 3000, planted: bool = True) -> pd.DataFrame:
    """Rows (index image_id) with patient_id, age, sex, view, finding labels (Support Devices known on half
    the rows), label/prediction of the target, ``planted`` (in the planted slice) and ``split``."""
    rng = np.random.default_rng(seed)
    per_patient = rng.integers(2, 7, size=n_patients)
    patient = np.repeat(np.arange(n_patients), per_patient)
    n = len(patient)
    age = np.repeat(rng.uniform(20, 90, size=n_patients), per_patient) + rng.uniform(0, 2, size=n)
    sex = np.repeat(rng.choice(["M", "F"], size=n_patients), per_patient)
    table = pd.DataFrame(
        {
            "patient_id": [f"p{i:05d}" for i in patient],
            "age": np.round(age, 1),
            "sex": sex,
            "view": rng.choice(["AP", "PA"], size=n, p=[0.4, 0.6]),
        },
        index=pd.Index([f"img{i:06d}" for i in range(n)], name="image_id"),
    )
    for name, prevalence in OTHER_FINDINGS.items():
        table[name] = (rng.random(n) < prevalence).astype(float)
    table.loc[rng.random(n) < 0.5, "Support Devices"] = np.nan
    table[TARGET] = (rng.random(n) < 0.25).astype(float)
    in_slice = (
        (table["age"] >= PLANTED_AGE) & (table["view"] == PLANTED_VIEW) & (table[PLANTED_FINDING] == 1)
    ).to_numpy()
    error_rate = np.where(in_slice & planted, BASE_ERROR * PLANTED_FACTOR, BASE_ERROR)
    wrong = rng.random(n) < error_rate
    label = table[TARGET].to_numpy(dtype=int)
    table["prediction"] = np.where(wrong, 1 - label, label)
    table["planted"] = in_slice
    table["split"] = patient_split(table["patient_id"].to_numpy(), 0.5, seed)
    return table


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0
