"""Failure slices nobody named: searched on the calibration split, confirmed on held-out test patients.

A *slice* is a conjunction of up to ``slice_max_predicates`` predicates over the cohort's metadata and other
findings, e.g. ``age >= 70 & view = AP & Support Devices = positive``. For one (model, finding) pair and one
error kind the search runs on the calibration split only, with SliceLine (Sagadeeva & Boehm, SIGMOD 2021; the
``sliceline`` package): a lattice search over one-hot predicates that scores each slice by its error rate
relative to the population's and its size, pruning with upper bounds. The library's top slices are then
confirmed on the test split, whose patients the search never saw: the slice's error rate with a
patient-bootstrap 95% interval, the rate ratio against the rest of the test population with its 95% interval
and p-value from a Wald test of the log rate ratio clustered by patient (`confirm_slice`), and Benjamini-Hochberg
q-values across the pair's candidates (``q_value``) and across the whole run (``q_value_grid``,
`adjust_slices_grid`). A slice is *confirmed* only when ``q_value < 0.05`` and the rate-ratio interval lies
above 1; the others stay in the table, marked "not confirmed on held-out patients".

Error kinds (`cxrfail.analysis.config.SLICE_ERROR_KINDS`) and their populations (unit: one cohort row):

``misclassified``   every row with a known label; error = prediction differs from the label
``false_negative``  rows labelled positive; error = predicted negative (the rate is the miss rate)
``false_positive``  rows labelled negative; error = predicted positive (the false-positive rate)

Searched columns: ``age``, ``sex``, ``view``, ``followup`` (NIH), ``n_ap``, ``n_pa``, ``lateral`` (CheXpert
studies) where the cohort has them, the labels of every *other* finding (never the target, No Finding or a
label derived from or into the target: `cxrfail.analysis.identifiers.features.excluded_labels`), and the
config's ``extra_subgroups``. Numeric columns with more than `MAX_CATEGORY_LEVELS` values are searched as
ranges: each cut point ``t`` (distinct calibration quantiles, `RANGE_QUANTILES`) is a yes/no column
``col >= t``, so a slice can hold ``age >= 70`` or, with two cuts, ``50 <= age < 70``. Another finding's label
is searched as "positive" only (its "negative" would pair with almost every slice). A row whose value of a
column is unknown is in no slice that constrains that column (support devices: the rows read for devices).
The library sees a patient sample of at most ``slice_search_rows`` calibration rows (its cost grows with rows
times candidate slices); the support, rates and merging of what it returns use every calibration row.
Slices whose calibration rows are identical (a slice and a sub-slice with the same rows, or the same range
written two ways) are merged into the shortest description; the others are listed in ``same_rows_as``.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pandas as pd
from scipy.stats import norm

from cxrfail.analysis.config import SLICE_ERROR_KINDS
from cxrfail.analysis.identifiers.features import (
    DEMOGRAPHIC_COUNT_COLUMNS,
    excluded_labels,
)
from cxrfail.analysis.resampling import patient_codes
from cxrfail.analysis.subgroups import clustered_rate, within_patient_correlation
from cxrfail.findings import is_finding

#: Cohort metadata columns searched when present (besides other findings' labels and the extra subgroups).
METADATA_COLUMNS: tuple[str, ...] = ("age", "sex", "view", "followup", *DEMOGRAPHIC_COUNT_COLUMNS)
#: Quantiles of a numeric column's calibration values that become its range cut points.
RANGE_QUANTILES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
#: A numeric column with at most this many distinct values is searched by value, not by range.
MAX_CATEGORY_LEVELS = 6
#: SliceLine's weight of the error term against the size term (0 < alpha <= 1). Its default, 0.6, scores
#: every slice under about a fifth of the rows below zero (pruned); 0.95 keeps slices of a few percent whose
#: error rate is several times the overall one, and the minimum support keeps out tiny ones.
SLICELINE_ALPHA = 0.95
#: The library is asked for this many times K slices, as merging slices with the same rows and dropping those
#: under the minimum patients shrink the list.
OVERSAMPLE = 2
#: Candidate slices SliceLine evaluates at a time (`_blockwise_finder`): bounds the row-by-slice match matrix.
SLICE_EVAL_BLOCK = 512
#: Held while the library's one-hot encoder is swapped for one that knows the searchable values (`search_slices`).
_ENCODER_LOCK = threading.Lock()
#: Significance level of the confirmation rule and coverage of the intervals.
ALPHA_CONFIRM = 0.05
NOT_CONFIRMED = "not confirmed on held-out patients"
CONFIRMED = "confirmed on held-out patients"

#: Columns of the "slices" table after model and finding (see `cxrfail.analysis.result.TABLE_COLUMNS`).
SLICE_COLUMNS: tuple[str, ...] = (
    "error_kind",
    "rank",
    "slice",
    "predicates",
    "n_predicates",
    "same_rows_as",
    "n_calibration",
    "n_patients_calibration",
    "errors_calibration",
    "rate_calibration",
    "sliceline_score",
    "n_test",
    "n_patients_test",
    "errors_test",
    "rate_test",
    "ci_low",
    "ci_high",
    "rest_rate_test",
    "overall_rate_test",
    "rate_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "p_value",
    "q_value",
    "q_value_grid",
    "confirmed",
    "status",
)

_MISSING = -1  # code of an unknown value in the search matrix


@dataclass(frozen=True)
class Predicate:
    """One condition on a cohort column: ``column operator value``; operator one of ``>=``, ``<``, ``==``."""

    column: str
    operator: str
    value: object

    def text(self) -> str:
        value = self.value
        if is_finding(self.column) and self.operator == "==" and value in (0, 1, 0.0, 1.0):
            return f"{self.column} = {'positive' if float(value) == 1.0 else 'negative'}"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"{self.column} {'=' if self.operator == '==' else self.operator} {value}"

    def mask(self, values: pd.Series) -> np.ndarray:
        """(n,) bool: rows of ``values`` (the column) that satisfy the predicate; unknown values never do."""
        if self.operator == "==":
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                return numeric == float(self.value)
            return (values.astype("string") == str(self.value)).fillna(False).to_numpy(dtype=bool)
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return numeric >= float(self.value) if self.operator == ">=" else numeric < float(self.value)


def describe(predicates: Sequence[Predicate]) -> str:
    """Readable slice, e.g. ``age >= 70 & view = AP``; a range on one column reads ``50 <= age < 70``."""
    parts, done = [], set()
    for predicate in predicates:
        if predicate.column in done:
            continue
        same = [p for p in predicates if p.column == predicate.column]
        low = next((p for p in same if p.operator == ">="), None)
        high = next((p for p in same if p.operator == "<"), None)
        if low is not None and high is not None:
            parts.append(f"{_number(low.value)} <= {predicate.column} < {_number(high.value)}")
        else:
            parts.extend(p.text() for p in same)
        done.add(predicate.column)
    return " & ".join(parts)


def predicates_json(predicates: Sequence[Predicate]) -> str:
    """The ``predicates`` column: a JSON list of {"column", "operator", "value"}."""
    return json.dumps([{"column": p.column, "operator": p.operator, "value": _plain(p.value)} for p in predicates])


def parse_predicates(text: str) -> list[Predicate]:
    """`Predicate` objects from the JSON of the ``predicates`` column; ``ValueError`` on anything else."""
    try:
        entries = json.loads(text)
        return [
            Predicate(str(e["column"]), str(e["operator"]), e["value"])
            for e in entries
            if e["operator"] in (">=", "<", "==")
        ]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"not a slice's predicates: {text[:80]!r}") from exc


def slice_mask(table: pd.DataFrame, predicates: Sequence[Predicate]) -> np.ndarray:
    """(n,) bool: the rows of the cohort ``table`` in the slice (every predicate holds, none on an unknown
    value). A column the table lacks puts no row in the slice."""
    mask = np.ones(len(table), dtype=bool)
    for predicate in predicates:
        if predicate.column not in table.columns:
            return np.zeros(len(table), dtype=bool)
        mask &= predicate.mask(table[predicate.column])
    return mask


def _number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# --- the search matrix ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """The searched columns as integer codes: ``codes`` (n, C) int64 (``_MISSING`` unknown) and, per column,
    the `Predicate` each code stands for."""

    codes: np.ndarray
    names: tuple[str, ...]
    meaning: tuple[dict[int, Predicate], ...]


def slice_columns(table: pd.DataFrame, finding: str, extra_columns: Sequence[str] = ()) -> list[str]:
    """The cohort columns searched for ``finding``: metadata present in ``table``, other findings' labels and
    ``extra_columns``, minus the target and every label excluded for it (`excluded_labels`)."""
    excluded = excluded_labels(finding)
    findings = [c for c in table.columns if is_finding(c) and c not in METADATA_COLUMNS]
    wanted = [c for c in METADATA_COLUMNS if c in table.columns] + findings + list(extra_columns)
    return [c for c in dict.fromkeys(wanted) if c not in excluded and c in table.columns]


def build_search_space(rows: pd.DataFrame, columns: Sequence[str]) -> SearchSpace:
    """Codes of ``columns`` of ``rows`` (the rows searched: calibration). Numeric columns with more than
    `MAX_CATEGORY_LEVELS` distinct values become one yes/no column per cut point (`RANGE_QUANTILES`);
    anything else is searched by value. Columns with a single known value are left out."""
    codes, names, meaning = [], [], []
    for column in columns:
        values = rows[column]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        known = values.notna().to_numpy()
        if numeric:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            distinct = np.unique(numbers[~np.isnan(numbers)])
            if len(distinct) > MAX_CATEGORY_LEVELS:
                cuts = np.unique(np.round(np.quantile(numbers[~np.isnan(numbers)], RANGE_QUANTILES), 0))
                for cut in cuts[cuts > distinct[0]]:
                    code = np.where(np.isnan(numbers), _MISSING, (numbers >= cut).astype(np.int64))
                    codes.append(code)
                    names.append(f"{column} >= {_number(cut)}")
                    meaning.append({1: Predicate(column, ">=", float(cut)), 0: Predicate(column, "<", float(cut))})
                continue
            levels = distinct
            code = np.full(len(values), _MISSING, dtype=np.int64)
            code[~np.isnan(numbers)] = np.searchsorted(levels, numbers[~np.isnan(numbers)])
            level_values = [float(level) for level in levels]
        else:
            text = values.astype("string")
            levels = sorted(text.dropna().unique().tolist())
            lookup = {level: i for i, level in enumerate(levels)}
            code = (
                np.array([_MISSING if pd.isna(v) else lookup[v] for v in text], dtype=np.int64)
                if len(levels)
                else np.full(len(values), _MISSING, dtype=np.int64)
            )
            level_values = list(levels)
        if len(level_values) < 2 or not known.any():
            continue
        codes.append(code)
        names.append(column)
        if is_finding(column) and level_values == [0.0, 1.0]:  # a label: searched as "positive" only
            meaning.append({1: Predicate(column, "==", 1.0)})
        else:
            meaning.append({i: Predicate(column, "==", value) for i, value in enumerate(level_values)})
    matrix = np.column_stack(codes) if codes else np.empty((len(rows), 0), dtype=np.int64)
    return SearchSpace(matrix, tuple(names), tuple(meaning))


# --- search ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A slice the search returned, described on the calibration rows."""

    predicates: tuple[Predicate, ...]
    score: float  # SliceLine's score
    same_rows_as: tuple[str, ...] = ()


def _simplify(predicates: Sequence[Predicate]) -> tuple[Predicate, ...] | None:
    """The tightest form of a conjunction: per column the largest lower and smallest upper bound; None when a
    column's range is empty."""
    out: list[Predicate] = []
    for column in dict.fromkeys(p.column for p in predicates):
        same = [p for p in predicates if p.column == column]
        equal = [p for p in same if p.operator == "=="]
        if equal:
            out.append(equal[0])
            continue
        lows = [float(p.value) for p in same if p.operator == ">="]
        highs = [float(p.value) for p in same if p.operator == "<"]
        if lows and highs and max(lows) >= min(highs):
            return None
        if lows:
            out.append(Predicate(column, ">=", max(lows)))
        if highs:
            out.append(Predicate(column, "<", min(highs)))
    return tuple(out)


def search_slices(
    space: SearchSpace, errors: np.ndarray, *, top_k: int, min_support: int, max_predicates: int
) -> list[tuple[tuple[Predicate, ...], float]]:
    """SliceLine's top slices of the searched rows (``space``; ``errors``: (n,) 0/1), best first, as
    (simplified predicates, SliceLine score); at most ``OVERSAMPLE * top_k`` of them, each of at least
    ``min_support`` searched rows.

    The library one-hot encodes every column; its encoder is given the searchable values of each column
    (``space.meaning``), so an unknown value, and a label's "negative", is never a predicate."""
    from sklearn.preprocessing import OneHotEncoder
    from sliceline import slicefinder

    errors = np.asarray(errors, dtype="float64")
    if space.codes.shape[1] == 0 or errors.sum() == 0 or len(errors) < min_support:
        return []
    categories = [np.array(sorted(meaning), dtype=np.int64) for meaning in space.meaning]
    encoder = functools.partial(OneHotEncoder, categories=categories, handle_unknown="ignore")
    finder = _blockwise_finder(slicefinder.Slicefinder)(
        alpha=SLICELINE_ALPHA, k=top_k * OVERSAMPLE, max_l=max_predicates, min_sup=min_support, verbose=False
    )
    with _ENCODER_LOCK, mock.patch.object(slicefinder, "OneHotEncoder", encoder), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "numba not available": the numpy path gives the same slices
        finder.fit(space.codes, errors)
    found = []
    for row, stats in zip(finder.top_slices_, finder.top_slices_statistics_):
        chosen = [(j, int(v)) for j, v in enumerate(row) if v is not None and not _is_nan(v)]
        predicates = _simplify([space.meaning[j][v] for j, v in chosen]) if chosen else None
        if predicates:
            found.append((predicates, float(stats["slice_score"])))
    return found


@functools.cache
def _blockwise_finder(base: type) -> type:
    """SliceLine's ``Slicefinder`` (``base``) evaluating its candidate slices `SLICE_EVAL_BLOCK` at a time. Each
    candidate's statistics (size, errors, largest error, score) come from its own column of the row-by-slice
    match matrix, so the results are the library's own; the match matrix of all candidates of a level at once
    (searched rows x candidates, tens of millions of entries at three predicates) was the analysis' largest
    transient allocation, ~400 MB a pair at CheXpert scale."""

    class BlockwiseSlicefinder(base):
        def _eval_slice(self, x_encoded, errors, slices, level):
            if slices.shape[0] <= SLICE_EVAL_BLOCK:
                return super()._eval_slice(x_encoded, errors, slices, level)
            return np.vstack(
                [
                    super(BlockwiseSlicefinder, self)._eval_slice(
                        x_encoded, errors, slices[start : start + SLICE_EVAL_BLOCK], level
                    )
                    for start in range(0, slices.shape[0], SLICE_EVAL_BLOCK)
                ]
            )

    return BlockwiseSlicefinder


def distinct_candidates(
    found: Sequence[tuple[tuple[Predicate, ...], float]],
    rows: pd.DataFrame,
    patients: np.ndarray,
    *,
    top_k: int,
    min_rows: int,
    min_patients: int,
) -> list[Candidate]:
    """The first ``top_k`` slices of ``found`` (best first) with at least ``min_rows`` of ``rows`` (the whole
    calibration population) from ``min_patients`` patients, slices with the same rows merged into the shortest
    description (the others listed in ``same_rows_as``)."""
    kept: list[Candidate] = []
    seen: dict[bytes, int] = {}
    for predicates, score in found:
        mask = slice_mask(rows, predicates)
        if mask.sum() < min_rows or pd.unique(patients[mask]).size < min_patients:
            continue
        key = np.packbits(mask).tobytes()
        text = describe(predicates)
        if key in seen:  # same rows: keep the shorter description, remember the other
            index = seen[key]
            first = kept[index]
            if len(predicates) < len(first.predicates):
                kept[index] = Candidate(predicates, first.score, first.same_rows_as + (describe(first.predicates),))
            elif text != describe(first.predicates) and text not in first.same_rows_as:
                kept[index] = Candidate(first.predicates, first.score, first.same_rows_as + (text,))
            continue
        seen[key] = len(kept)
        kept.append(Candidate(predicates, score))
    return kept[:top_k]


def search_sample(patients: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """(n,) bool: every row when there are at most ``max_rows``, else the rows of a seeded random sample of
    whole patients holding at most ``max_rows`` rows."""
    n = len(patients)
    if n <= max_rows:
        return np.ones(n, dtype=bool)
    codes, uniques = pd.factorize(pd.Series(patients))
    order = np.random.default_rng(seed).permutation(len(uniques))
    sizes = np.bincount(codes, minlength=len(uniques))[order]
    taken = order[np.cumsum(sizes) <= max_rows]
    chosen = np.zeros(len(uniques), dtype=bool)
    chosen[taken] = True
    return chosen[codes]


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


# --- confirmation -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    """A slice on the test population: rates, rate ratio against the rest with intervals, p-value."""

    n: int
    n_patients: int
    errors: int
    rate: float
    ci_low: float
    ci_high: float
    rest_rate: float
    rate_ratio: float
    rr_ci_low: float
    rr_ci_high: float
    p_value: float


def confirm_slice(in_slice: np.ndarray, errors: np.ndarray, patient_code: np.ndarray, n_patients: int) -> Confirmation:
    """The slice on the test population (``in_slice``, ``errors``: (n,) bool; ``patient_code``: (n,) int
    patient index < ``n_patients``).

    Its error rate has the patient-clustered 95% interval of every subgroup rate
    (`cxrfail.analysis.subgroups.clustered_rate` over the slice's patients, with the within-patient
    correlation of the whole population).
    The rate ratio against the rest of the population, its 95% interval and the two-sided p-value of
    log(rate ratio) = 0 come from one Wald statistic whose variance is clustered by patient: each rate is a
    ratio estimator, linearised, and the influences are summed per patient (a patient may have rows on both
    sides), so the interval lies above 1 exactly when the p-value is below 0.05 and the ratio above 1."""
    inside = in_slice.astype("float64")
    wrong = errors.astype("float64")
    per_patient = np.column_stack(
        [
            np.bincount(patient_code, weights=w, minlength=n_patients)
            for w in (wrong * inside, inside, wrong * (1 - inside), 1 - inside)
        ]
    )
    e_s, n_s, e_r, n_r = per_patient.sum(axis=0)
    in_patients = per_patient[:, 1] > 0
    nan = float("nan")
    rate = e_s / n_s if n_s else nan
    rest = e_r / n_r if n_r else nan
    if n_s == 0 or n_r == 0:
        return Confirmation(int(n_s), int(in_patients.sum()), int(e_s), rate, nan, nan, rest, nan, nan, nan, nan)
    correlation = within_patient_correlation(
        per_patient[:, 0] + per_patient[:, 2], per_patient[:, 1] + per_patient[:, 3]
    )
    interval = clustered_rate(
        per_patient[in_patients, 0], per_patient[in_patients, 1], correlation=correlation, confidence=1 - ALPHA_CONFIRM
    )
    ratio, low, high = (rate / rest if rest > 0 else nan), nan, nan
    p_value = 1.0 if e_s == 0 else nan  # no error in the slice: no evidence of a higher rate
    if e_s > 0 and e_r > 0:
        influence = (per_patient[:, 0] - rate * per_patient[:, 1]) / e_s - (
            per_patient[:, 2] - rest * per_patient[:, 3]
        ) / e_r
        used = (per_patient[:, 1] + per_patient[:, 3]) > 0
        k = int(used.sum())
        se = math.sqrt(k / (k - 1) * float(np.sum(influence[used] ** 2))) if k > 1 else 0.0
        if se > 0:
            z = norm.ppf(1 - ALPHA_CONFIRM / 2)
            low, high = ratio * math.exp(-z * se), ratio * math.exp(z * se)
            p_value = float(2 * norm.sf(abs(math.log(ratio)) / se))
    return Confirmation(
        int(n_s),
        int(in_patients.sum()),
        int(e_s),
        float(rate),
        interval.ci_low,
        interval.ci_high,
        float(rest),
        float(ratio),
        low,
        high,
        p_value,
    )


def error_population(kind: str, label: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the population, error per row) for an error kind (`SLICE_ERROR_KINDS`), both (n,) bool."""
    label, prediction = np.asarray(label), np.asarray(prediction)
    if kind == "misclassified":
        return np.ones(len(label), dtype=bool), label != prediction
    if kind == "false_negative":
        return label == 1, prediction == 0
    if kind == "false_positive":
        return label == 0, prediction == 1
    raise ValueError(f"unknown error kind {kind!r}; kinds are {', '.join(SLICE_ERROR_KINDS)}")


@dataclass(frozen=True)
class PairSlices:
    """A pair's slices table (columns `SLICE_COLUMNS`, without model and finding) and one-line warnings."""

    table: pd.DataFrame
    warnings: tuple[str, ...]


def find_pair_slices(
    rows: pd.DataFrame,
    finding: str,
    label: np.ndarray,
    prediction: np.ndarray,
    split: np.ndarray,
    *,
    error_kinds: Sequence[str],
    top_k: int,
    min_rows: int,
    min_patients: int,
    max_predicates: int,
    max_search_rows: int,
    extra_columns: Sequence[str] = (),
    seed: int = 0,
) -> PairSlices:
    """Search (calibration) and confirm (test) the slices of one (model, finding) pair.

    Args:
        rows: the pair's cohort rows (label known), with ``patient_id`` and the searched columns.
        finding: the target (its label and labels tied to it are never searched).
        label, prediction: (n,) 0/1 per row; split: (n,) "calibration" / "test".
        error_kinds: `SLICE_ERROR_KINDS` to search; top_k: slices confirmed per error kind.
        min_rows, min_patients: the fewest calibration rows and patients of a slice.
        max_predicates: the most predicates in a slice.
        max_search_rows: the library searches a patient sample of at most this many calibration rows
            (`search_sample`; the support it asks for scaled to the sample); support, rates and merging use
            every calibration row.
        extra_columns: the user's further cohort columns.
        seed: seed of the patient sample the search sees (`search_sample`).

    Returns:
        `PairSlices`: candidates ranked by the library within each error kind; ``q_value`` is the
        Benjamini-Hochberg adjustment over every candidate of the pair; ``q_value_grid`` is left NaN for
        `adjust_slices_grid`. A kind with too few calibration rows for any slice gives a warning, no rows.
    """
    columns = slice_columns(rows, finding, extra_columns)
    calibration, test = split == "calibration", split == "test"
    patients = rows["patient_id"].to_numpy()
    records, notes = [], []
    for kind in error_kinds:
        population, errors = error_population(kind, label, prediction)
        cal = population & calibration
        if cal.sum() < min_rows:
            notes.append(
                f"slices ({kind.replace('_', ' ')}): {int(cal.sum())} calibration rows, fewer than the "
                f"minimum slice support of {min_rows}; no slice searched"
            )
            continue
        cal_rows, cal_patients, cal_errors = rows.loc[cal], patients[cal], errors[cal]
        searched = search_sample(cal_patients, max_search_rows, seed)
        share = searched.sum() / len(searched)
        space = build_search_space(cal_rows.loc[searched], columns)
        found = search_slices(
            space,
            cal_errors[searched],
            top_k=top_k,
            max_predicates=max_predicates,
            min_support=max(1, math.floor(min_rows * share)),
        )
        candidates = distinct_candidates(
            found, cal_rows, cal_patients, top_k=top_k, min_rows=min_rows, min_patients=min_patients
        )
        if not candidates:  # nothing worse than the population: no rows for this kind
            continue
        test_population = population & test
        test_rows = rows.loc[test_population]
        test_errors = errors[test_population]
        codes, n_patients = patient_codes(patients[test_population], int(test_population.sum()))
        overall = float(test_errors.mean()) if len(test_errors) else np.nan
        for rank, candidate in enumerate(candidates, start=1):
            in_cal = slice_mask(cal_rows, candidate.predicates)
            confirmation = confirm_slice(slice_mask(test_rows, candidate.predicates), test_errors, codes, n_patients)
            records.append(
                {
                    "error_kind": kind,
                    "rank": rank,
                    "slice": describe(candidate.predicates),
                    "predicates": predicates_json(candidate.predicates),
                    "n_predicates": len(candidate.predicates),
                    "same_rows_as": "; ".join(candidate.same_rows_as),
                    "n_calibration": int(in_cal.sum()),
                    "n_patients_calibration": int(pd.unique(cal_patients[in_cal]).size),
                    "errors_calibration": int(cal_errors[in_cal].sum()),
                    "rate_calibration": float(cal_errors[in_cal].mean()),
                    "sliceline_score": candidate.score,
                    "n_test": confirmation.n,
                    "n_patients_test": confirmation.n_patients,
                    "errors_test": confirmation.errors,
                    "rate_test": confirmation.rate,
                    "ci_low": confirmation.ci_low,
                    "ci_high": confirmation.ci_high,
                    "rest_rate_test": confirmation.rest_rate,
                    "overall_rate_test": overall,
                    "rate_ratio": confirmation.rate_ratio,
                    "rr_ci_low": confirmation.rr_ci_low,
                    "rr_ci_high": confirmation.rr_ci_high,
                    "p_value": confirmation.p_value,
                }
            )
    table = pd.DataFrame(records, columns=[c for c in SLICE_COLUMNS])
    if len(table):
        table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy(dtype=float))
        table["q_value_grid"] = np.nan
        table = _with_verdict(table)
    return PairSlices(table, tuple(notes))


def find_slices_with_config(
    rows: pd.DataFrame, finding: str, label: np.ndarray, prediction: np.ndarray, split: np.ndarray, config
) -> PairSlices:
    """`find_pair_slices` with the settings of an `cxrfail.analysis.config.AnalysisConfig` (the slice settings,
    ``extra_subgroups`` and ``seed``): how a run calls it."""
    return find_pair_slices(
        rows,
        finding,
        label,
        prediction,
        split,
        error_kinds=config.slice_error_kinds,
        top_k=config.slice_top_k,
        min_rows=config.slice_min_rows,
        min_patients=config.slice_min_patients,
        max_predicates=config.slice_max_predicates,
        max_search_rows=config.slice_search_rows,
        extra_columns=config.extra_subgroups,
        seed=config.seed,
    )


def _with_verdict(table: pd.DataFrame) -> pd.DataFrame:
    """``confirmed`` (q_value < 0.05 and the rate-ratio interval above 1) and its ``status`` text."""
    q = table["q_value"].to_numpy(dtype=float)
    low = table["rr_ci_low"].to_numpy(dtype=float)
    confirmed = (q < ALPHA_CONFIRM) & (low > 1.0)
    return table.assign(confirmed=confirmed, status=np.where(confirmed, CONFIRMED, NOT_CONFIRMED))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """(m,) Benjamini-Hochberg q-values of (m,) p-values (statsmodels' ``fdrcorrection``); NaN stays NaN and
    is not part of the family."""
    from statsmodels.stats.multitest import fdrcorrection

    p = np.asarray(p_values, dtype="float64")
    q = np.full(p.shape, np.nan)
    known = ~np.isnan(p)
    if known.any():
        q[known] = fdrcorrection(p[known])[1]
    return q


def adjust_slices_grid(frames: Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    """``q_value_grid``: Benjamini-Hochberg over every slice candidate of the run (every pair and error kind),
    for readers who treat the whole grid as one family. The per-pair ``q_value`` (and ``confirmed``) are
    unchanged. Returns the frames in order, each with the column filled."""
    sizes = [len(frame) for frame in frames]
    if not sum(sizes):
        return list(frames)
    p = np.concatenate([frame["p_value"].to_numpy(dtype=float) for frame in frames if len(frame)])
    q = benjamini_hochberg(p)
    out, start = [], 0
    for frame, size in zip(frames, sizes):
        if size:
            frame = frame.assign(q_value_grid=q[start : start + size])
        out.append(frame)
        start += size
    return out


def across_models(slices: pd.DataFrame) -> pd.DataFrame:
    """Slices confirmed for two or more models of the same finding and error kind (the same description):
    one row per (finding, error kind, slice) with the models, their count and each model's rate ratio.

    Columns: finding, error_kind, slice, predicates, n_models, models, rate_ratios, rr_ci_lows, rr_ci_highs."""
    columns = [
        "finding",
        "error_kind",
        "slice",
        "predicates",
        "n_models",
        "models",
        "rate_ratios",
        "rr_ci_lows",
        "rr_ci_highs",
    ]
    if slices.empty:
        return pd.DataFrame(columns=columns)
    confirmed = slices.loc[slices["confirmed"].astype(bool)]
    rows = []
    for (finding, kind, text), group in confirmed.groupby(["finding", "error_kind", "slice"], sort=False):
        models = list(dict.fromkeys(group["model"].astype(str)))
        if len(models) < 2:
            continue
        rows.append(
            {
                "finding": finding,
                "error_kind": kind,
                "slice": text,
                "predicates": group["predicates"].iloc[0],
                "n_models": len(models),
                "models": ", ".join(models),
                "rate_ratios": ", ".join(f"{v:.2f}" for v in group["rate_ratio"]),
                "rr_ci_lows": ", ".join(f"{v:.2f}" for v in group["rr_ci_low"]),
                "rr_ci_highs": ", ".join(f"{v:.2f}" for v in group["rr_ci_high"]),
            }
        )
    return (
        pd.DataFrame(rows, columns=columns)
        .sort_values("n_models", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def slice_table_mask(table: pd.DataFrame, predicates_text: str) -> np.ndarray:
    """(n,) bool: rows of the cohort ``table`` in the slice whose ``predicates`` column is ``predicates_text``."""
    return slice_mask(table, parse_predicates(predicates_text))
