"""Multivariable logistic regression of misclassification on patient covariates, and p-value adjustment.

One model per (model, finding): ``logit P(misclassified) = b0 + b . covariates``, fitted by maximum likelihood
(statsmodels ``Logit``, Newton), standard errors clustered by patient (several images per patient are not
independent). Odds ratios with Wald CIs; the intercept is not reported.

The fit never raises on data problems; it reports them:

* rows with a missing covariate are left out (``n`` is the number of rows used);
* a covariate that is constant among the rows used is dropped, and so is one that is collinear with others;
* fewer than ``min_events`` misclassified (or correctly classified) rows: no model, an empty table;
* quasi-complete separation by an indicator (a finding present, a level of a categorical covariate) whose
  rows are all misclassified or all correct: its odds ratio is not estimable (NaN, direction in the note) and
  its rows are left out of the fit of the other terms. That is the limit the full maximum-likelihood fit
  tends to (the separated rows' likelihood goes to 1 as the coefficient diverges), so the other odds ratios
  stay adjusted for it;
* any other sign of separation or instability (statsmodels' warnings, |log OR| > 10, SE > 10, non-finite
  values, no convergence) sets ``converged=False`` and NaN for the affected terms.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from cxrfail.analysis.config import CLINICAL_FINDINGS
from cxrfail.analysis.subgroups import natural_sort
from cxrfail.findings import derived_from, is_finding

REGRESSION_COLUMNS = ("term", "odds_ratio", "ci_low", "ci_high", "p_value")
#: finding covariates of `fit_pair_regressions`, besides age, sex and view
#: a finding covariate known on fewer than this share of rows gets its own fit on those rows
SPARSE_COVARIATE_SHARE = 0.5
#: family of the fit on every row given to `fit_pair_regressions`
ALL_ROWS_FAMILY = "all rows"
PAIR_REGRESSION_COLUMNS = (
    "family",
    "term",
    "odds_ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "n_events",
    "converged",
    "note",
    "q_holm",
    "q_bh",
    "q_family",
)
AGE_COLUMN = "age"
AGE_UNIT_YEARS = 10.0
#: |log odds ratio| and standard error above which an estimate is treated as a sign of separation
MAX_ABS_COEF = 10.0
MAX_SE = 10.0


@dataclass(frozen=True)
class RegressionResult:
    """One fitted misclassification model.

    Attributes:
        table: one row per term (intercept excluded), columns term (str), odds_ratio, ci_low, ci_high (odds
            ratios, Wald CI on the log scale), p_value (Wald, clustered SE); NaN where not estimable.
        n: rows used in the fit.
        n_events: misclassified rows among them.
        converged: the fit converged with finite, stable estimates for every reported term.
        note: what was dropped or could not be estimated, and why; None when nothing was.
    """

    table: pd.DataFrame
    n: int
    n_events: int
    converged: bool
    note: str | None = None


def _empty_table(terms=()) -> pd.DataFrame:
    table = pd.DataFrame({"term": pd.Series(list(terms), dtype="string")})
    for column in REGRESSION_COLUMNS[1:]:
        table[column] = np.full(len(table), np.nan)
    return table


@dataclass
class _Term:
    name: str  # display name, e.g. "sex: M vs F"
    source: str  # covariate column
    values: np.ndarray  # design column over the rows in use
    indicator: bool  # 0/1 column (binary covariate or categorical level)


def _kind(values: pd.Series, name: str) -> str:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if name == AGE_COLUMN:
            return "age"
        observed = pd.to_numeric(values, errors="coerce").dropna()
        return "binary" if observed.isin((0.0, 1.0)).all() else "continuous"
    return "categorical"


def _reference(levels: pd.Series, y: np.ndarray) -> str:
    """The most common level whose rows are not all one outcome (ties: natural order); else the most common."""
    counts = levels.value_counts()
    natural = {level: i for i, level in enumerate(natural_sort(counts.index))}
    order = sorted(counts.index, key=lambda level: (-counts[level], natural[str(level)]))
    by_level = pd.Series(y).groupby(levels.to_numpy()).agg(["min", "max"])
    for level in order:
        if by_level.at[level, "min"] != by_level.at[level, "max"]:
            return str(level)
    return str(order[0])


def _build_terms(frame: pd.DataFrame, kinds: dict[str, str], y: np.ndarray, skip_notes: set[str]):
    """Design terms over the rows of ``frame``; constant covariates are dropped (returned as notes)."""
    terms: list[_Term] = []
    notes: list[str] = []
    for column in frame.columns:
        values = frame[column]
        kind = kinds[column]
        if kind in ("age", "continuous", "binary"):
            numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
            if kind == "binary":
                name = f"{column}: present"
            elif kind == "age":
                name = f"{AGE_COLUMN} (per {AGE_UNIT_YEARS:g} years)"
            else:
                name = f"{column} (per unit)"
            if np.ptp(numeric) == 0:
                if name not in skip_notes:
                    notes.append(f"{column} is constant ({numeric[0]:g}) among the rows used: dropped")
                continue
            scaled = numeric / AGE_UNIT_YEARS if kind == "age" else numeric
            terms.append(_Term(name, column, scaled, kind == "binary"))
        else:
            levels = values.astype("string")
            present = natural_sort(levels.unique())
            if len(present) < 2:
                notes.append(f"{column} has one level ({present[0]}) among the rows used: dropped")
                continue
            reference = _reference(levels, y)
            for level in present:
                if level == reference:
                    continue
                indicator = (levels == level).to_numpy(dtype="float64")
                terms.append(_Term(f"{column}: {level} vs {reference}", column, indicator, True))
    return terms, notes


def _separated(terms: list[_Term], y: np.ndarray) -> list[tuple[_Term, np.ndarray, float]]:
    """Indicator terms whose rows (indicator == 1) all share one outcome: (term, rows, that outcome)."""
    found = []
    for term in terms:
        if not term.indicator:
            continue
        rows = term.values == 1.0
        if rows.any() and (y[rows].min() == y[rows].max()):
            found.append((term, rows, float(y[rows][0])))
    return found


def _independent_columns(matrix: np.ndarray) -> list[int]:
    """Greedy: keep each column (intercept first) that raises the rank of those kept before it."""
    kept: list[int] = []
    for j in range(matrix.shape[1]):
        trial = kept + [j]
        if np.linalg.matrix_rank(matrix[:, trial]) == len(trial):
            kept = trial
    return kept


def fit_misclassification_regression(
    misclassified,
    covariates: pd.DataFrame,
    groups,
    *,
    min_events: int = 10,
    confidence: float = 0.95,
    maxiter: int = 100,
) -> RegressionResult:
    """Logistic regression of misclassification on covariates, SEs clustered by patient.

    Args:
        misclassified: (n,) 0/1 outcome (1 = misclassified).
        covariates: DataFrame with n rows (aligned by position) of raw covariates, already chosen:
            ``age`` (years; enters per 10 years, term "age (per 10 years)"); text/categorical columns such as
            sex, view (treatment coding, reference = most common level among the rows used whose outcomes are
            not all alike; terms "sex: M vs F"); numeric 0/1 columns such as findings (term
            "Pneumothorax: present"); other numeric columns enter linearly ("<name> (per unit)").
        groups: (n,) cluster ids (patient ids) for the cluster-robust covariance.
        min_events: fewer misclassified rows, or fewer correctly classified rows, than this: no model.
        confidence: coverage of the odds-ratio intervals.
        maxiter: Newton iterations.

    Returns:
        `RegressionResult` (see the module docstring for how problems are reported). Never raises on data
        problems; raises ValueError only for misshaped arguments (lengths, non-0/1 outcome).
    """
    y_all = pd.to_numeric(pd.Series(np.asarray(misclassified, dtype="float64")), errors="coerce").to_numpy()
    if not isinstance(covariates, pd.DataFrame):
        raise TypeError("covariates must be a DataFrame")
    group_values = pd.Series(np.asarray(groups, dtype=object))
    if not (len(y_all) == len(covariates) == len(group_values)):
        raise ValueError(
            f"misclassified ({len(y_all)}), covariates ({len(covariates)}) and groups "
            f"({len(group_values)}) must have the same number of rows"
        )
    if not np.isin(y_all[~np.isnan(y_all)], (0.0, 1.0)).all():
        raise ValueError("misclassified must be 0/1")
    notes: list[str] = []

    frame = covariates.reset_index(drop=True)
    usable = ~np.isnan(y_all) & group_values.notna().to_numpy() & frame.notna().all(axis=1).to_numpy()
    n_missing = int((~usable).sum())
    if n_missing:
        notes.append(f"{n_missing} row(s) with a missing value left out")
    kinds = {column: _kind(frame[column], str(column)) for column in frame.columns}

    keep = usable.copy()
    not_estimable: dict[str, str] = {}
    source_of: dict[str, str] = {}
    # Each pass removes the rows of at least one level for good, so this ends.
    while True:
        y = y_all[keep]
        n_events = int(y.sum())
        if min(n_events, len(y) - n_events) < min_events:
            notes.append(
                f"too few events: {n_events} misclassified and {len(y) - n_events} correct of {len(y)} rows "
                f"(need at least {min_events} of each); no model fitted"
            )
            table = _empty_table()
            return RegressionResult(table, int(len(y)), n_events, False, "; ".join(notes))
        terms, constant_notes = _build_terms(frame.loc[keep], kinds, y, set(not_estimable))
        source_of.update({term.name: term.source for term in terms})
        separated = _separated(terms, y)
        if not separated:
            break
        positions = np.flatnonzero(keep)
        for term, rows, outcome in separated:
            what = "misclassified" if outcome == 1.0 else "correctly classified"
            direction = "infinite" if outcome == 1.0 else "zero"
            not_estimable[term.name] = (
                f"{term.name}: all {int(rows.sum())} rows {what} (separation); odds ratio not estimable "
                f"(tends to {direction}), those rows left out of the other terms' fit"
            )
            keep[positions[rows]] = False
    notes.extend(constant_notes)
    notes.extend(not_estimable.values())

    y = y_all[keep]
    n_used, n_events = int(len(y)), int(y.sum())
    cluster_codes = pd.factorize(group_values[keep].astype(str))[0]
    names = [term.name for term in terms]
    design = np.column_stack([np.ones(n_used)] + [term.values for term in terms]) if terms else np.ones((n_used, 1))
    independent = _independent_columns(design)
    if len(independent) < design.shape[1]:
        dropped = [names[j - 1] for j in range(1, design.shape[1]) if j not in independent]
        notes.append(f"collinear with other terms, dropped: {', '.join(dropped)}")
        design = design[:, independent]
        names = [names[j - 1] for j in independent if j > 0]

    estimates = pd.DataFrame({"term": names, "coef": np.nan, "se": np.nan, "p": np.nan})
    converged = True
    if names:
        coef, se, p, converged, fit_note = _fit(y, design, cluster_codes, maxiter)
        if fit_note:
            notes.append(fit_note)
        estimates[["coef", "se", "p"]] = np.column_stack([coef[1:], se[1:], p[1:]])
        unstable = (
            ~np.isfinite(estimates["coef"])
            | ~np.isfinite(estimates["se"])
            | (estimates["coef"].abs() > MAX_ABS_COEF)
            | (estimates["se"] > MAX_SE)
        )
        if converged and unstable.any():
            converged = False
            notes.append(
                "unstable estimates (possible separation), not reported: " + ", ".join(estimates.loc[unstable, "term"])
            )
            estimates.loc[unstable, ["coef", "se", "p"]] = np.nan
    else:
        notes.append("no covariate left to fit")
        converged = False

    z = norm.ppf(0.5 + confidence / 2.0)
    with np.errstate(over="ignore", invalid="ignore"):
        table = pd.DataFrame(
            {
                "term": estimates["term"],
                "odds_ratio": np.exp(estimates["coef"]),
                "ci_low": np.exp(estimates["coef"] - z * estimates["se"]),
                "ci_high": np.exp(estimates["coef"] + z * estimates["se"]),
                "p_value": estimates["p"],
            }
        )
    if not_estimable:
        table = pd.concat([table, _empty_table(not_estimable)], ignore_index=True)
    # rows in covariate order, the levels of one covariate in natural order
    covariate_order = {column: i for i, column in enumerate(frame.columns)}
    natural = {name: i for i, name in enumerate(natural_sort(table["term"]))}
    rank = [(covariate_order[source_of[name]], natural[name]) for name in table["term"]]
    table = table.iloc[sorted(range(len(table)), key=lambda i: rank[i])].reset_index(drop=True)
    table["term"] = table["term"].astype("string")
    return RegressionResult(
        table[list(REGRESSION_COLUMNS)], n_used, n_events, bool(converged), "; ".join(notes) if notes else None
    )


def _fit(y: np.ndarray, design: np.ndarray, clusters: np.ndarray, maxiter: int):
    """(coef, se, p, converged, note) of a Logit fit with cluster-robust SEs; NaN arrays on failure."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

    k = design.shape[1]
    nan = np.full(k, np.nan)
    n_clusters = int(clusters.max()) + 1 if len(clusters) else 0
    if n_clusters >= 2:
        fit_kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": clusters}}
        cov_note = None
    else:
        fit_kwargs = {}
        cov_note = "a single patient: standard errors not clustered"
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        try:
            result = sm.Logit(y, design).fit(method="newton", maxiter=maxiter, disp=False, **fit_kwargs)
        except (PerfectSeparationError, np.linalg.LinAlgError, ValueError, OverflowError) as exc:
            return nan, nan, nan, False, f"fit failed ({type(exc).__name__}: {exc})"
        coef = np.asarray(result.params, dtype="float64")
        se = np.asarray(result.bse, dtype="float64")
        p = np.asarray(result.pvalues, dtype="float64")
    converged = bool(result.mle_retvals.get("converged", False))
    notes = [] if cov_note is None else [cov_note]
    if not converged:
        notes.append(f"did not converge in {maxiter} iterations")
    if any(issubclass(w.category, PerfectSeparationWarning) for w in caught):
        converged = False
        notes.append("statsmodels detected perfect separation")
    if not converged:
        # no maximum-likelihood estimate: none of the terms can be trusted
        notes.append("no term reported")
        return nan, nan, nan, False, "; ".join(notes)
    return coef, se, p, converged, "; ".join(notes) if notes else None


def adjust_p_values(p_values) -> tuple[np.ndarray, np.ndarray]:
    """Holm (family-wise) and Benjamini-Hochberg (false discovery rate) adjusted p-values.

    Args:
        p_values: (m,) p-values; NaN entries are not part of the family and stay NaN.

    Returns:
        (holm, bh): float64 arrays of shape (m,).
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype="float64").ravel()
    holm = np.full(p.shape, np.nan)
    bh = np.full(p.shape, np.nan)
    known = ~np.isnan(p)
    if known.any():
        if ((p[known] < 0) | (p[known] > 1)).any():
            raise ValueError("p-values must be in [0, 1]")
        holm[known] = holm_adjusted(p[known])
        bh[known] = multipletests(p[known], method="fdr_bh")[1]
    return holm, bh


def holm_adjusted(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values of ``p_values`` ((m,), no NaN), in their order: the same numbers as
    statsmodels' ``multipletests(method="holm")``, which runs a full garbage collection on every call (a tenth
    of a second or more in a large process such as the dashboard's server, holding the GIL, once per pair)."""
    p = np.asarray(p_values, dtype="float64")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    return adjusted


def regression_covariates(finding: str, available: pd.Index) -> list[str]:
    """The `CLINICAL_FINDINGS` usable as covariates for ``finding``: present in ``available`` and neither
    the target nor derived from it (`cxrfail.findings.derived_from`: no Lung Lesion for a Mass target)."""
    excluded = {finding} | (derived_from(finding) if is_finding(finding) else set())
    return [covariate for covariate in CLINICAL_FINDINGS if covariate in available and covariate not in excluded]


def fit_pair_regressions(
    rows: pd.DataFrame, misclassified: pd.Series, finding: str, *, model: str = "", rows_name: str = "test split"
) -> pd.DataFrame:
    """Logistic regressions of misclassification for one (model, finding) pair, one per family of terms, with
    Holm and Benjamini-Hochberg q-values within each fit.

    The first fit uses every row (family `ALL_ROWS_FAMILY`): age, sex, view and the finding covariates known
    on at least `SPARSE_COVARIATE_SHARE` of the rows. Each sparser finding covariate (on NIH: support devices,
    read on 621 images) gets its own fit on the rows where it is known (family "rows with <covariate>
    known"), with the same covariates plus itself. Covariates derived from the target are left out
    (`regression_covariates`).

    Each fit is its own family of hypotheses: its terms' p-values are adjusted together (`adjust_p_values`),
    and nothing else is, so a pair's q-values never depend on which other pairs a run holds, and age, which
    appears in both fits, is never counted twice in one family. ``q_family`` names the family in full, e.g.
    "densenet121_jrzech · Edema · test split, all rows".

    Args:
        rows: cohort rows (e.g. the test split), index = row id, with ``patient_id``, ``age`` (years), ``sex``,
            ``view`` and finding columns (1/0/NaN).
        misclassified: 0/1 Series on the same index (a subset of ``rows.index`` is not allowed).
        finding: the target finding.
        model: the model's name, for ``q_family``.
        rows_name: what ``rows`` are, for ``q_family``.

    Returns:
        DataFrame with columns `PAIR_REGRESSION_COLUMNS` (``family`` names the fit; ``n``/``n_events`` are its
        rows and misclassified rows; ``q_holm``/``q_bh`` NaN where ``p_value`` is); a fit with no estimable
        term gives one row with term None and NaNs.
    """
    missing = [column for column in ("patient_id", "age", "sex", "view") if column not in rows.columns]
    if missing:
        raise ValueError(f"rows lack column(s) {missing} needed for the regression")
    if not misclassified.index.equals(rows.index):
        raise ValueError("misclassified must have the same index as rows")
    base = rows[["age", "sex", "view"]].copy()
    dense, sparse = [], []
    for covariate in regression_covariates(finding, rows.columns):
        known_share = rows[covariate].notna().mean()
        if known_share == 0:
            continue
        (dense if known_share >= SPARSE_COVARIATE_SHARE else sparse).append(covariate)
    fits = [(ALL_ROWS_FAMILY, base.join(rows[dense]))]
    for covariate in sparse:
        annotated = rows[covariate].notna()
        fits.append((f"rows with {covariate} known", base.join(rows[dense + [covariate]]).loc[annotated]))
    frames = []
    for family, covariates in fits:
        fit = fit_misclassification_regression(
            misclassified.loc[covariates.index].to_numpy(),
            covariates,
            rows.loc[covariates.index, "patient_id"].to_numpy(),
        )
        frame = fit.table.copy()
        if frame.empty:
            frame = pd.DataFrame(
                [{"term": None, "odds_ratio": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}]
            )
        frame.insert(0, "family", family)
        frame["n"], frame["n_events"], frame["converged"], frame["note"] = fit.n, fit.n_events, fit.converged, fit.note
        frame["q_holm"], frame["q_bh"] = adjust_p_values(frame["p_value"].to_numpy(dtype=float))
        frame["q_family"] = " · ".join(part for part in (model, finding, f"{rows_name}, {family}") if part)
        frames.append(frame[list(PAIR_REGRESSION_COLUMNS)])
    return pd.concat(frames, ignore_index=True)
