"""Misclassification rates by subgroup (age bin, sex, view, findings, extra cohort columns) with
patient-clustered bootstrap CIs (and the Wilson interval as an extra).

`subgroup_levels` turns a cohort table into one string column per subgroup; `subgroup_rates` counts
misclassified rows per level. A row whose level is unknown (<NA>) is left out of that subgroup only: support
devices, for instance, count only the images that were read for devices.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from cxrfail.analysis.resampling import bootstrap_clustered_rate
from cxrfail.analysis.config import CLINICAL_FINDINGS
from cxrfail.errors import CohortError
from cxrfail.findings import canonical_finding, derived_from, is_finding

PRESENT = "present"
ABSENT = "absent"
SUBGROUP_RATE_COLUMNS = ("subgroup", "level", "n", "n_patients", "n_misclassified", "rate", "ci_low", "ci_high",
                         "design_effect", "wilson_low", "wilson_high", "sufficient", "is_reference", "subset_n",
                         "population_n", "is_subset", "random_sample")
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
    out = pd.Series(np.asarray(labels, dtype=object)[np.minimum(positions, len(labels) - 1)], index=ages.index,
                    dtype="string")
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
            column=unknown[0], fix="Pick subgroup columns from the cohort table",
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
        elif (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
              and values.nunique(dropna=True) > MAX_DISCRETE_LEVELS):
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
    confidence: float = 0.95,
    n_replicates: int = 1000,
    seed: int = 0,
    not_random_samples: Collection[str] = (),
) -> pd.DataFrame:
    """Misclassification rate per subgroup level, with patient-clustered bootstrap intervals.

    Rows of one patient are not independent, so ``ci_low``/``ci_high`` come from a patient-level bootstrap
    (`cxrfail.analysis.resampling.bootstrap_clustered_rate`): within each level the patients with a row in
    that level are resampled with replacement. ``design_effect`` is the bootstrap variance over the binomial
    variance rate (1 - rate) / n (about 1 when every patient has one row; NaN when the rate is 0 or 1). The
    Wilson interval, which treats rows as independent, is kept as ``wilson_low``/``wilson_high``.

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
        min_n: levels with fewer rows are flagged ``sufficient=False`` (their rate is still reported).
        min_patients: levels with fewer patients are flagged ``sufficient=False`` too.
        confidence: coverage of both intervals.
        n_replicates: bootstrap replicates per level.
        seed: seed of the bootstrap draws (the same inputs and seed give the same table).
        not_random_samples: subgroup names whose known rows are not a random sample of the population.

    Returns:
        DataFrame with columns `SUBGROUP_RATE_COLUMNS`: subgroup, level (str), n, n_patients,
        n_misclassified (int64), rate, ci_low, ci_high (clustered), design_effect, wilson_low, wilson_high
        (float, proportions), sufficient, is_reference (bool), subset_n, population_n (int64), is_subset,
        random_sample (bool). Per subgroup (columns of ``levels`` in order): the reference row, then one row
        per level with n > 0 in natural order (age bins by age); rows with an <NA> level are left out of that
        subgroup only.

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
            raise ValueError(f"{int(missing.sum())} misclassified row id(s) are not in {name}, e.g. "
                             f"{misclassified.index[missing][0]!r}")
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
    rng = np.random.default_rng(seed)
    population_n = len(values)
    y = values.to_numpy(dtype="int64")
    patient_codes = pd.factorize(patient_ids.to_numpy())[0]
    rows = []
    for subgroup in aligned.columns:
        level_of_row = aligned[subgroup].astype("string")
        known = level_of_row.notna().to_numpy(dtype=bool)
        if not known.any():
            continue
        context = {"subset_n": int(known.sum()), "population_n": population_n,
                   "random_sample": subgroup not in not_random_samples}
        rows.append(_rate_row(subgroup, REFERENCE_LEVEL, y[known], patient_codes[known], rng, n_replicates,
                              confidence, is_reference=True, **context))
        level_codes, names = pd.factorize(level_of_row[known].to_numpy())
        for code in sorted(range(len(names)), key=lambda c: _natural_key(names[c])):
            in_level = level_codes == code
            rows.append(_rate_row(subgroup, str(names[code]), y[known][in_level], patient_codes[known][in_level],
                                  rng, n_replicates, confidence, is_reference=False, **context))
    table = pd.DataFrame(rows, columns=[c for c in SUBGROUP_RATE_COLUMNS if c not in ("sufficient", "is_subset")])
    for column in ("n", "n_patients", "n_misclassified", "subset_n", "population_n"):
        table[column] = table[column].astype("int64")
    for column in ("rate", "ci_low", "ci_high", "design_effect", "wilson_low", "wilson_high"):
        table[column] = table[column].astype("float64")
    table["wilson_low"], table["wilson_high"] = wilson_interval(table["n_misclassified"].to_numpy(),
                                                                table["n"].to_numpy(), confidence)
    table["sufficient"] = ((table["n"] >= min_n) & (table["n_patients"] >= min_patients)).astype(bool)
    table["is_subset"] = (table["subset_n"] < table["population_n"]).astype(bool)
    table["is_reference"] = table["is_reference"].astype(bool)
    table["random_sample"] = table["random_sample"].astype(bool)
    table["subgroup"] = table["subgroup"].astype("string")
    table["level"] = table["level"].astype("string")
    return table[list(SUBGROUP_RATE_COLUMNS)]


def _rate_row(subgroup: str, level: str, y: np.ndarray, patient_codes: np.ndarray, rng: np.random.Generator,
              n_replicates: int, confidence: float, **context) -> dict:
    """One row of `subgroup_rates` from the rows of one level: ``y`` (m,) 0/1 misclassified, ``patient_codes``
    (m,) integer patient of each row."""
    rows_per_patient = np.bincount(patient_codes)
    events_per_patient = np.bincount(patient_codes, weights=y, minlength=len(rows_per_patient))
    present = rows_per_patient > 0
    interval = bootstrap_clustered_rate(events_per_patient[present].astype("int64"), rows_per_patient[present],
                                        n_replicates=n_replicates, rng=rng, confidence=confidence)
    n = len(y)
    rate = interval.estimate
    binomial_variance = rate * (1.0 - rate) / n
    design_effect = float(np.var(interval.replicates) / binomial_variance) if binomial_variance > 0 else np.nan
    return {"subgroup": subgroup, "level": level, "n": n, "n_patients": int(present.sum()),
            "n_misclassified": int(y.sum()), "rate": rate, "ci_low": interval.ci_low,
            "ci_high": interval.ci_high, "design_effect": design_effect, "wilson_low": np.nan,
            "wilson_high": np.nan, **context}
