"""Misclassification rates by subgroup (age bin, sex, view, findings, extra cohort columns) with
patient-clustered CIs that cover at small n and zero events (and the row-level Wilson interval as an extra).

`subgroup_levels` turns a cohort table into one string column per subgroup; `subgroup_rates` counts
misclassified rows per level. A row whose level is unknown (<NA>) is left out of that subgroup only: support
devices, for instance, count only the images that were read for devices.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from cxrfail.analysis.config import CLINICAL_FINDINGS
from cxrfail.errors import CohortError
from cxrfail.findings import canonical_finding, derived_from, is_finding

PRESENT = "present"
ABSENT = "absent"
SUBGROUP_RATE_COLUMNS = (
    "subgroup",
    "level",
    "n",
    "n_patients",
    "n_misclassified",
    "rate",
    "ci_low",
    "ci_high",
    "design_effect",
    "wilson_low",
    "wilson_high",
    "sufficient",
    "is_reference",
    "subset_n",
    "population_n",
    "is_subset",
    "random_sample",
    "effective_n",
    "ci_method",
)
#: ``ci_method`` of a rate with events and non-events: Wilson's interval at the effective sample size
EFFECTIVE_N_WILSON = "wilson_effective_n"
#: ``ci_method`` of a rate of 0 (or 1): Clopper-Pearson on the patients, none (or all) of whom had an event
PATIENT_CLOPPER_PEARSON = "patients_clopper_pearson"
#: the level of each subgroup's reference row: the rate over the rows whose level is known
REFERENCE_LEVEL = "all known"
#: numeric extra columns with more distinct values than this are cut into quartiles
MAX_DISCRETE_LEVELS = 10


def wilson_interval(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion k / n.

    Args:
        k: successes (scalar or array), 0 <= k <= n.
        n: trials, same shape as ``k`` (or broadcastable).
        confidence: two-sided coverage, in (0, 1).

    Returns:
        (low, high) float64 arrays of the broadcast shape, proportions in [0, 1]; NaN where n == 0.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    k = np.asarray(k, dtype="float64")
    n = np.asarray(n, dtype="float64")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("wilson_interval needs 0 <= k <= n")
    z = norm.ppf(0.5 + confidence / 2.0)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        phat = k / n
        denominator = 1.0 + z2 / n
        centre = (phat + z2 / (2.0 * n)) / denominator
        half = z * np.sqrt(phat * (1.0 - phat) / n + z2 / (4.0 * n * n)) / denominator
    empty = n <= 0
    # exact bounds at k = 0 and k = n (the formula leaves rounding noise there)
    low = np.where(empty, np.nan, np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0)))
    high = np.where(empty, np.nan, np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0)))
    return low, high


@dataclass(frozen=True)
class ClusteredRate:
    """A proportion of rows (events / rows) whose rows are grouped in patients, with a 95% interval that covers
    at small n, few events and skewed cluster sizes (`clustered_rate`).

    Attributes:
        estimate: events / rows (proportion in [0, 1]).
        ci_low, ci_high: the interval (proportions); never zero-width.
        design_effect: the rate's own design effect, its patient-clustered (linearisation) variance over the
            binomial variance rate (1 - rate) / n; NaN when the rate is 0 or 1 or there is one patient.
        effective_n: n / the design effect the interval uses (see `clustered_rate`), rows.
        n, n_events, n_patients: rows, events and patients.
        method: `EFFECTIVE_N_WILSON` or `PATIENT_CLOPPER_PEARSON`.
    """

    estimate: float
    ci_low: float
    ci_high: float
    design_effect: float
    effective_n: float
    n: int
    n_events: int
    n_patients: int
    method: str


def _checked_counts(events_per_patient, rows_per_patient) -> tuple[np.ndarray, np.ndarray]:
    events = np.asarray(events_per_patient, dtype="float64")
    rows = np.asarray(rows_per_patient, dtype="float64")
    if events.shape != rows.shape or events.ndim != 1 or len(rows) == 0:
        raise ValueError("events_per_patient and rows_per_patient must be (P,) arrays with P >= 1")
    if np.any(rows < 1) or np.any(events < 0) or np.any(events > rows):
        raise ValueError("each patient needs rows >= 1 and 0 <= events <= rows")
    return events, rows


def own_design_effect(events_per_patient, rows_per_patient) -> float:
    """Design effect of the rate sum(events) / sum(rows) from its own rows: the patient-clustered
    (Taylor-linearisation) variance of a ratio, P / (P - 1) * sum_i (e_i - r m_i)^2 / n^2, over the binomial
    variance r (1 - r) / n. About 1 when every patient has one row; NaN when r is 0 or 1 or P < 2.

    Args:
        events_per_patient: (P,) events per patient (e_i), 0 <= e_i <= m_i.
        rows_per_patient: (P,) rows per patient (m_i >= 1).
    """
    events, rows = _checked_counts(events_per_patient, rows_per_patient)
    n_patients, n = len(rows), rows.sum()
    rate = events.sum() / n
    if n_patients < 2 or rate in (0.0, 1.0):
        return float("nan")
    variance = n_patients / (n_patients - 1) * np.sum((events - rate * rows) ** 2) / n**2
    return float(variance / (rate * (1.0 - rate) / n))


def mean_cluster_size(rows_per_patient) -> float:
    """Row-weighted mean rows per patient, sum(m_i^2) / sum(m_i): the design effect when every row of a
    patient shares its outcome (1 when every patient has one row)."""
    rows = np.asarray(rows_per_patient, dtype="float64")
    return float(np.sum(rows**2) / np.sum(rows))


def within_patient_correlation(events_per_patient, rows_per_patient) -> float:
    """The correlation of two rows of one patient that the rate's own design effect implies, in [0, 1]:
    (design effect - 1) / (mean cluster size - 1), from design effect = 1 + (mean cluster size - 1) rho
    (`mean_cluster_size`). 0 when it cannot be estimated (every patient one row, rate 0 or 1, one patient).

    Estimated on a large population (a pair's whole test split) it is stable where a small level's own design
    effect is not; `clustered_rate` applies it to each level's own cluster sizes."""
    design_effect = own_design_effect(events_per_patient, rows_per_patient)
    size = mean_cluster_size(rows_per_patient)
    if not np.isfinite(design_effect) or size <= 1.0:
        return 0.0
    return float(min(max((design_effect - 1.0) / (size - 1.0), 0.0), 1.0))


def clustered_rate(
    events_per_patient, rows_per_patient, *, correlation: float = 0.0, confidence: float = 0.95
) -> ClusteredRate:
    """A misclassification rate (events / rows) with an interval that allows for rows clustered in patients
    and still covers at small n and zero events.

    * With events and non-events: Wilson's interval at the effective sample size n / D (Korn and Graubard's
      effective-n idea), D = max(own design effect, 1 + (mean cluster size - 1) * ``correlation``, 1). The
      level's own design effect (`own_design_effect`) is noisy when it rests on few patients or events and
      then usually too small (events by chance in small patients); the second term is the design effect that
      the population's within-patient correlation (`within_patient_correlation`, estimated on the pair's whole
      test split) implies for this level's own cluster sizes, which a few rows cannot talk down.
    * No events (or only events): Clopper-Pearson on the P patients, none of whom had an event: [0, 1 -
      (alpha / 2)^(1 / P)] (mirrored for a rate of 1). A patient's chance of any event is at least its rate,
      so the bound holds whatever the correlation within patients (patients drawn alike, their error rate not
      tied to their number of rows).

    `bench/subgroup_coverage_bench.py` measures the coverage on levels shaped like the demo's smallest: at
    least 95% for true rates 0, 2% and 10% and within-patient correlations 0 to 0.8 when the level shares its
    split's correlation. Its limit: a level much more clustered than the rest of its split, with few events,
    rests on its own noisy design effect (coverage 0.89-0.94 in the bench's stress scenarios).

    Args:
        events_per_patient: (P,) events per patient (e.g. misclassified rows), 0 <= e_i <= m_i.
        rows_per_patient: (P,) rows per patient, >= 1.
        correlation: within-patient correlation of the population the rows come from, in [0, 1].
        confidence: two-sided coverage, in (0, 1).

    Returns:
        `ClusteredRate`.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [0, 1], got {correlation!r}")
    events, rows = _checked_counts(events_per_patient, rows_per_patient)
    n, k, n_patients = rows.sum(), events.sum(), len(rows)
    rate = k / n
    own = own_design_effect(events, rows)
    implied = 1.0 + (mean_cluster_size(rows) - 1.0) * correlation
    design_effect_used = max(own if np.isfinite(own) else 1.0, implied, 1.0)
    effective_n = n / design_effect_used
    if k in (0.0, n):
        bound = float(((1.0 - confidence) / 2.0) ** (1.0 / n_patients))
        low, high = (0.0, 1.0 - bound) if k == 0 else (bound, 1.0)
        method = PATIENT_CLOPPER_PEARSON
    else:
        low, high = (float(v) for v in wilson_interval(rate * effective_n, effective_n, confidence))
        method = EFFECTIVE_N_WILSON
    return ClusteredRate(float(rate), low, high, own, float(effective_n), int(n), int(k), n_patients, method)


def _number(value: float) -> str:
    return f"{value:g}"


def age_bin_labels(age_years, edges: Sequence[float] = (40, 60, 80)) -> pd.Series:
    """Label ages (years) by bins with the given ascending ``edges``: ``<e0``, ``e0-(e1-1)``, ..., ``>=ek``.

    Bins are left-closed: with edges (40, 60, 80) an age of 59.5 is "40-59" and 60 is "60-79". When two
    neighbouring edges are not both whole numbers the middle label reads ``a-<b`` instead.

    Args:
        age_years: (n,) ages in years (array or Series; NaN for unknown).
        edges: ascending bin edges in years, at least one.

    Returns:
        Series of dtype ``string`` (index of ``age_years`` if a Series), <NA> where the age is NaN.
    """
    edges = [float(edge) for edge in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"age edges must be a non-empty ascending sequence, got {edges!r}")
    index = age_years.index if isinstance(age_years, pd.Series) else None
    ages = pd.to_numeric(pd.Series(np.asarray(age_years, dtype="float64"), index=index), errors="coerce")
    labels = [f"<{_number(edges[0])}"]
    for a, b in zip(edges, edges[1:]):
        whole = a.is_integer() and b.is_integer()
        labels.append(f"{_number(a)}-{_number(b - 1)}" if whole else f"{_number(a)}-<{_number(b)}")
    labels.append(f">={_number(edges[-1])}")
    positions = np.searchsorted(np.asarray(edges), ages.to_numpy(), side="right")
    out = pd.Series(
        np.asarray(labels, dtype=object)[np.minimum(positions, len(labels) - 1)], index=ages.index, dtype="string"
    )
    return out.mask(ages.isna())


def _natural_key(label: str) -> tuple:
    """Sort key: labels with a number sort by their first number ("<40" just before "40-59", ">=80" after
    "60-79"; interval labels "[1, 3]" by their lower end); other labels alphabetically, after numeric ones."""
    text = str(label)
    match = re.search(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", text)
    if match is None:
        return (1, 0.0, 0, text)
    value = float(match.group())
    before = text[: match.start()].strip()
    rank = -1 if before in ("<", "(-inf,") else (1 if before in (">", ">=") else 0)
    if before == "(":
        rank = 1  # an interval open on the left starts just after its lower end
    return (0, value, rank, text)


def natural_sort(levels) -> list[str]:
    """Levels in natural order (see `_natural_key`)."""
    return sorted((str(level) for level in levels), key=_natural_key)


def _quartile_labels(values: pd.Series) -> pd.Series:
    """Cut a numeric column into (up to) quartiles with readable interval labels, e.g. "[0, 2]", "(2, 5]"."""
    codes, bins = pd.qcut(values, 4, labels=False, retbins=True, duplicates="drop")
    names = []
    for i, (a, b) in enumerate(zip(bins[:-1], bins[1:])):
        names.append(f"[{a:.4g}, {b:.4g}]" if i == 0 else f"({a:.4g}, {b:.4g}]")
    labels = pd.Series(pd.NA, index=values.index, dtype="string")
    known = codes.notna()
    labels[known] = np.asarray(names, dtype=object)[codes[known].astype(int).to_numpy()]
    return labels


def _text_levels(values: pd.Series) -> pd.Series:
    """A column as string levels; whole-number floats print without ".0"; missing stays <NA>."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("string")
    if pd.api.types.is_numeric_dtype(values):
        numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        text = numeric.map(lambda v: pd.NA if pd.isna(v) else _number(v))
        return text.astype("string")
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _finding_levels(values: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    out[numeric == 1.0] = PRESENT
    out[numeric == 0.0] = ABSENT
    return out


def subgroup_levels(
    table: pd.DataFrame,
    *,
    age_edges: Sequence[float] = (40, 60, 80),
    finding_subgroups: Sequence[str] = CLINICAL_FINDINGS,
    extra_columns: Sequence[str] = (),
    target: str | None = None,
) -> pd.DataFrame:
    """One string column per subgroup, from a cohort table (see `cxrfail.cohort`).

    With a ``target`` finding, the target itself and the labels linked to it by derivation
    (`cxrfail.findings.derived_from`: Lung Lesion for a Mass or Nodule target) are not subgroups: slicing a
    finding's errors by a label that restates it says nothing about who is misclassified.

    Columns, in this order: ``age`` (bins by ``age_edges``, years), ``sex``, ``view``, each finding of
    ``finding_subgroups`` that is a column of ``table`` (levels "present"/"absent", <NA> where the label is
    NaN), then each of ``extra_columns``: finding columns as present/absent, numeric columns with more than
    10 distinct values cut into quartiles (labels like "[18, 42]", "(42, 57]"), anything else as text.
    A column already produced is not repeated. Missing values are <NA>.

    Returns:
        DataFrame, index of ``table``, dtype ``string`` throughout.

    Raises:
        CohortError: an extra column that is not in the table (the message lists the available columns).
    """
    unknown = [column for column in extra_columns if column not in table.columns]
    if unknown:
        raise CohortError(
            f"unknown subgroup column(s) {', '.join(map(repr, unknown))}; the cohort has "
            f"{', '.join(map(repr, table.columns))}",
            column=unknown[0],
            fix="Pick subgroup columns from the cohort table",
        )
    excluded = set() if target is None else {canonical_finding(target)} | derived_from(target)
    out: dict[str, pd.Series] = {}
    if "age" in table.columns:
        out["age"] = age_bin_labels(table["age"], age_edges)
    for column in ("sex", "view"):
        if column in table.columns:
            out[column] = _text_levels(table[column])
    for finding in finding_subgroups:
        if finding in table.columns and finding not in excluded:
            out[finding] = _finding_levels(table[finding])
    for column in extra_columns:
        if column in out or column in excluded:
            continue
        values = table[column]
        if is_finding(column) and pd.api.types.is_numeric_dtype(values):
            out[column] = _finding_levels(values)
        elif (
            pd.api.types.is_numeric_dtype(values)
            and not pd.api.types.is_bool_dtype(values)
            and values.nunique(dropna=True) > MAX_DISCRETE_LEVELS
        ):
            out[column] = _quartile_labels(pd.to_numeric(values, errors="coerce").astype("float64"))
        else:
            out[column] = _text_levels(values)
    return pd.DataFrame(out, index=table.index)


def subgroup_rates(
    misclassified: pd.Series,
    levels: pd.DataFrame,
    patients: pd.Series,
    *,
    min_n: int = 30,
    min_patients: int = 10,
    min_events: int = 5,
    confidence: float = 0.95,
    not_random_samples: Collection[str] = (),
) -> pd.DataFrame:
    """Misclassification rate per subgroup level, with patient-clustered intervals that cover at small n.

    Rows of one patient are not independent. ``ci_low``/``ci_high`` come from `clustered_rate`: Wilson's
    interval at the level's effective sample size ``effective_n`` = n / D, D the larger of the level's own
    design effect and the one the population's within-patient correlation implies for the level's cluster
    sizes (the correlation is estimated once, on every row of ``misclassified``: a pair's whole test split);
    a level with no misclassified row (or only misclassified rows) gets the Clopper-Pearson bound on its
    patients. ``ci_method`` names which. ``design_effect`` is the level's own (linearisation) design effect:
    about 1 when every patient has one row, NaN when the rate is 0 or 1. The Wilson interval on rows, which
    treats rows as independent, is kept as ``wilson_low``/``wilson_high``.

    A level is ``sufficient`` when ``effective_n`` >= ``min_n`` (so n >= min_n too), it has at least
    ``min_patients`` patients and at least ``min_events`` misclassified and as many correctly classified rows;
    insufficient levels are reported, flagged.

    Each subgroup also gets one reference row (``is_reference=True``, level `REFERENCE_LEVEL`): the rate over
    the rows whose level for that subgroup is known. For a subgroup known on every row it is the overall rate;
    for a subgroup known on a subset only (e.g. support devices, read on some images) it is the subset's own
    rate, and the subset's levels must be compared with it, not with the overall rate. ``subset_n`` is the
    rows with a known level and ``population_n`` all rows; ``is_subset`` = subset_n < population_n;
    ``random_sample`` is False for the subgroups the caller names in ``not_random_samples`` (the cohort knows
    whether a subset was drawn at random; this function cannot).

    Args:
        misclassified: 0/1 Series, index = row ids (image ids). Its rows define the population (e.g. the test
            split); ``levels`` and ``patients`` may hold more rows and are aligned on the index.
        levels: the output of `subgroup_levels` (string columns; <NA> = unknown level).
        patients: patient id per row id (no missing values for the population's rows).
        min_n: levels with a smaller effective sample size (rows) are flagged ``sufficient=False``.
        min_patients: levels with fewer patients are flagged ``sufficient=False`` too.
        min_events: levels with fewer misclassified, or fewer correctly classified, rows are flagged too.
        confidence: coverage of both intervals.
        not_random_samples: subgroup names whose known rows are not a random sample of the population.

    Returns:
        DataFrame with columns `SUBGROUP_RATE_COLUMNS`: subgroup, level (str), n, n_patients,
        n_misclassified (int64), rate, ci_low, ci_high (clustered), design_effect, wilson_low, wilson_high
        (float, proportions), sufficient, is_reference (bool), subset_n, population_n (int64), is_subset,
        random_sample (bool), effective_n (float, rows), ci_method (str). Per subgroup (columns of ``levels``
        in order): the reference row, then one row per level with n > 0 in natural order (age bins by age);
        rows with an <NA> level are left out of that subgroup only. The table is a deterministic function of
        its inputs (no resampling).

    Raises:
        ValueError: row ids missing from ``levels`` or ``patients``, a missing patient id, or a non-0/1 value.
    """
    if not isinstance(misclassified, pd.Series):
        raise TypeError("misclassified must be a pandas Series indexed by row id")
    for name, frame in (("levels", levels), ("patients", patients)):
        if frame.index.equals(misclassified.index):
            continue
        missing = ~misclassified.index.isin(frame.index)
        if missing.any():
            raise ValueError(
                f"{int(missing.sum())} misclassified row id(s) are not in {name}, e.g. "
                f"{misclassified.index[missing][0]!r}"
            )
    values = pd.to_numeric(misclassified, errors="coerce").astype("float64")
    if values.isna().any() or not values.isin((0.0, 1.0)).all():
        raise ValueError("misclassified must be 0/1 with no missing values")
    patient_ids = patients.reindex(misclassified.index)
    if patient_ids.isna().any():
        raise ValueError("patients has missing ids for some misclassified rows; every row needs a patient id")
    unknown = set(not_random_samples) - set(levels.columns)
    if unknown:
        raise ValueError(f"not_random_samples names subgroup(s) not in levels: {sorted(unknown)}")
    aligned = levels.reindex(misclassified.index)
    population_n = len(values)
    y = values.to_numpy(dtype="int64")
    patient_codes = pd.factorize(patient_ids.to_numpy())[0]
    correlation = within_patient_correlation(*_per_patient(y, patient_codes)) if population_n else 0.0
    rows = []
    for subgroup in aligned.columns:
        level_of_row = aligned[subgroup].astype("string")
        known = level_of_row.notna().to_numpy(dtype=bool)
        if not known.any():
            continue
        context = {
            "subset_n": int(known.sum()),
            "population_n": population_n,
            "random_sample": subgroup not in not_random_samples,
        }
        rows.append(
            _rate_row(
                subgroup,
                REFERENCE_LEVEL,
                y[known],
                patient_codes[known],
                correlation,
                confidence,
                is_reference=True,
                **context,
            )
        )
        level_codes, names = pd.factorize(level_of_row[known].to_numpy())
        for code in sorted(range(len(names)), key=lambda c: _natural_key(names[c])):
            in_level = level_codes == code
            rows.append(
                _rate_row(
                    subgroup,
                    str(names[code]),
                    y[known][in_level],
                    patient_codes[known][in_level],
                    correlation,
                    confidence,
                    is_reference=False,
                    **context,
                )
            )
    table = pd.DataFrame(rows, columns=[c for c in SUBGROUP_RATE_COLUMNS if c not in ("sufficient", "is_subset")])
    for column in ("n", "n_patients", "n_misclassified", "subset_n", "population_n"):
        table[column] = table[column].astype("int64")
    for column in ("rate", "ci_low", "ci_high", "design_effect", "wilson_low", "wilson_high", "effective_n"):
        table[column] = table[column].astype("float64")
    table["wilson_low"], table["wilson_high"] = wilson_interval(
        table["n_misclassified"].to_numpy(), table["n"].to_numpy(), confidence
    )
    events = np.minimum(table["n_misclassified"], table["n"] - table["n_misclassified"])
    table["sufficient"] = (
        (table["effective_n"] >= min_n) & (table["n_patients"] >= min_patients) & (events >= min_events)
    ).astype(bool)
    table["is_subset"] = (table["subset_n"] < table["population_n"]).astype(bool)
    table["is_reference"] = table["is_reference"].astype(bool)
    table["random_sample"] = table["random_sample"].astype(bool)
    for column in ("subgroup", "level", "ci_method"):
        table[column] = table[column].astype("string")
    return table[list(SUBGROUP_RATE_COLUMNS)]


def _per_patient(y: np.ndarray, patient_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(events, rows) per patient present, each (P,), from (m,) 0/1 ``y`` and (m,) integer patient codes."""
    rows_per_patient = np.bincount(patient_codes)
    events_per_patient = np.bincount(patient_codes, weights=y, minlength=len(rows_per_patient))
    present = rows_per_patient > 0
    return events_per_patient[present], rows_per_patient[present]


def _rate_row(
    subgroup: str,
    level: str,
    y: np.ndarray,
    patient_codes: np.ndarray,
    correlation: float,
    confidence: float,
    **context,
) -> dict:
    """One row of `subgroup_rates` from the rows of one level: ``y`` (m,) 0/1 misclassified, ``patient_codes``
    (m,) integer patient of each row; ``correlation`` the population's within-patient correlation."""
    rate = clustered_rate(*_per_patient(y, patient_codes), correlation=correlation, confidence=confidence)
    return {
        "subgroup": subgroup,
        "level": level,
        "n": rate.n,
        "n_patients": rate.n_patients,
        "n_misclassified": rate.n_events,
        "rate": rate.estimate,
        "ci_low": rate.ci_low,
        "ci_high": rate.ci_high,
        "design_effect": rate.design_effect,
        "wilson_low": np.nan,
        "wilson_high": np.nan,
        "effective_n": rate.effective_n,
        "ci_method": rate.method,
        **context,
    }
