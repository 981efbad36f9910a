"""The results of an analysis: one `PairResult` per (model, finding), gathered in an `AnalysisResult`.

Modelled on Fairlearn's ``MetricFrame``: one object that answers questions about one disaggregated metric.
A `PairResult` holds everything computed for one model on one finding (outcomes per cohort row, the threshold
choice, subgroup rates, regression, identifier evaluations, the flip run, SHAP values); `AnalysisResult` is
the run's config plus the mapping (model, finding) → `PairResult`, with `pair()` to answer per pair and
`table(name)` for the long tables (every pair stacked, tagged by ``model`` and ``finding``) that the report,
the cache and the export use.

Unit of analysis: one cohort row (``cohort_summary["unit"]``: an image for NIH, a study for CheXpert). Every
rate, F1 and regression is on the held-out test split; thresholds, the flip identifier and tau are chosen on
calibration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxrfail.analysis.config import FULL_SCOPE
from cxrfail.analysis.flip import CURVE_COLUMNS, NEVER_FLIP, FlipEvaluation, evaluate_flip
from cxrfail.analysis.identifiers.evaluation import IDENTIFIER_COLUMNS
from cxrfail.analysis.labels import AGREEMENT_COLUMNS, AUDIT_COLUMNS, CASE_COLUMNS
from cxrfail.analysis.regression import PAIR_REGRESSION_COLUMNS
from cxrfail.analysis.subgroups import SUBGROUP_RATE_COLUMNS
from cxrfail.analysis.subgroups import wilson_interval

# The long tables of a run, in report order, with their columns (the contract of the report CSVs, the cache
# and the dashboard). Per pair, each table holds that pair's rows only.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    # auroc over every row; threshold chosen on calibration; f1/precision/recall and the rate on test
    "performance": ("model", "finding", "n", "n_pos", "auroc", "threshold", "f1", "precision", "recall", "n_test",
                    "misclassification_rate", "threshold_note"),
    # test split; ci_low/ci_high resample patients (Wilson kept as wilson_*); `sufficient` False below the
    # minimum rows or patients (rate still shown); one reference row per subgroup (`is_reference`, level
    # "all known"): the rate over the rows where the subgroup is known (a subset's own rate)
    "subgroup_rates": ("model", "finding", *SUBGROUP_RATE_COLUMNS),
    # test split; SEs clustered by patient; q-values within the family named in q_family (`adjust_regression`)
    "regression": ("model", "finding", *PAIR_REGRESSION_COLUMNS, "q_holm", "q_bh", "q_family"),
    # one row per learner x feature set (the ladder): identifiers cross-fitted on the calibration folds, judged
    # on the test split (n, n_patients, n_misclassified: test rows): auroc with its patient-clustered CI, paired
    # differences to probability_only (what the features add beyond the model's own probability), to the
    # confidence baseline (secondary) and to the 0/1 prediction, all on one set of test-patient resamples
    # (ci_method: "bootstrap", or "analytic" clustered DeLong on large pairs); auroc_pooled (secondary):
    # calibration out-of-fold and test scores pooled, no interval; learner_settings: the learner as fitted
    "identifiers": ("model", "finding", "learner", "feature_set", *IDENTIFIER_COLUMNS),
    # test split at the flip threshold chosen on calibration out-of-fold scores (tau; calibration_flips: the
    # calibration rows it flips); a test row is flipped when its own score (the calibration fold models' mean)
    # is >= tau; the one verdict `improved`; the identifier used
    "flip": ("model", "finding", "tau", "n_flips", "f1_before", "f1_after", "delta_f1", "ci_low", "ci_high",
             "precision_before", "precision_after", "recall_before", "recall_after", "improved", "exploratory",
             "calibration_flips", "learner", "feature_set", "oracle"),
    # test split, a grid of tau plus the chosen one; every row but the chosen tau is exploratory (no verdict)
    "flip_curves": ("model", "finding", *CURVE_COLUMNS),
    # one row per cohort row of the pair; identifier_probability: the run identifier's score the row was compared
    # with tau (calibration out-of-fold, test the calibration fold models' mean); flipped_prediction: the
    # prediction after flipping (inverted exactly when identifier_probability >= tau)
    "outcomes": ("model", "finding", "image_id", "patient_id", "split", "label", "probability", "threshold",
                 "prediction", "misclassified", "identifier_probability", "flipped_prediction"),
    # every identifier's scores of the test rows (the calibration fold models' mean), for ROC curves (the
    # confidence baseline of a row is -|probability - threshold| from outcomes)
    "identifier_scores": ("model", "finding", "learner", "feature_set", "image_id", "misclassified",
                          "identifier_score"),
    # a sample of test rows
    "shap_values": ("model", "finding", "image_id", "feature", "shap_value", "feature_value"),
    # the label audit against reference labels (`cxrfail.analysis.labels`); empty where the reference does not
    # read the pair's finding
    "label_agreement": AGREEMENT_COLUMNS,
    "label_audit": AUDIT_COLUMNS,
    "label_cases": CASE_COLUMNS,
}
LABEL_TABLES = ("label_agreement", "label_audit", "label_cases")
TABLE_NAMES = tuple(TABLE_COLUMNS)
@dataclass(frozen=True)
class PairRefusal:
    """A (model, finding) pair the analysis refused (`cxrfail.analysis.checks`), with its one-line reason."""

    model: str
    finding: str
    reason: str


@dataclass(frozen=True)
class PairResult:
    """Everything computed for one model on one finding. Tables hold only this pair's rows, tagged.

    Attributes:
        model, finding: the pair.
        unit: what one row is ("image" or "study").
        tables: name → frame for every name of `TABLE_NAMES` (columns as `TABLE_COLUMNS`).
        identifier: (learner, feature set) of the identifier used for flipping and SHAP.
        scope: "full", or "core" (performance, outcomes, subgroup rates and regression only; see
            `cxrfail.analysis.runner.run_analysis`).
        warnings: one-line warnings of a pair that runs on small splits (`cxrfail.analysis.checks`).
    """

    model: str
    finding: str
    unit: str
    tables: Mapping[str, pd.DataFrame] = field(repr=False)
    identifier: tuple[str, str] = ("hist_gradient_boosting", "own+demographics")
    scope: str = FULL_SCOPE
    warnings: tuple[str, ...] = ()

    def table(self, name: str) -> pd.DataFrame:
        """This pair's rows of the long table ``name`` (see `TABLE_COLUMNS`)."""
        if name not in self.tables:
            raise KeyError(f"no table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        return self.tables[name]

    # --- the pieces, by their meaning -------------------------------------------------------------------
    @property
    def performance(self) -> dict:
        """AUROC (every row), threshold (calibration), F1, precision, recall and rate (test)."""
        return self.tables["performance"].iloc[0].to_dict()

    @property
    def threshold(self) -> float:
        return float(self.performance["threshold"])

    @property
    def outcomes(self) -> pd.DataFrame:
        """Per row: split, label, probability, prediction, misclassified, identifier probability, flipped."""
        return self.tables["outcomes"]

    def outcomes_in(self, split: str | None) -> pd.DataFrame:
        """`outcomes` of ``"calibration"`` or ``"test"`` rows (all rows for None)."""
        frame = self.outcomes
        return frame if split is None else frame.loc[frame["split"].to_numpy() == split]

    @property
    def subgroup_rates(self) -> pd.DataFrame:
        return self.tables["subgroup_rates"]

    @property
    def regression(self) -> pd.DataFrame:
        return self.tables["regression"]

    @property
    def identifiers(self) -> pd.DataFrame:
        return self.tables["identifiers"]

    def identifier_scores(self, learner: str, feature_set: str) -> pd.DataFrame:
        scores = self.tables["identifier_scores"]
        return scores.loc[(scores["learner"] == learner).to_numpy() & (scores["feature_set"] == feature_set).to_numpy()]

    def identifier_evaluation(self, learner: str, feature_set: str) -> dict | None:
        rows = self.identifiers
        rows = rows.loc[(rows["learner"] == learner).to_numpy() & (rows["feature_set"] == feature_set).to_numpy()]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def flip(self) -> dict | None:
        """The flip result at the tau chosen on calibration (the one verdict), or None when not run."""
        rows = self.tables["flip"]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def chosen_tau(self) -> float | None:
        """The flip threshold chosen on calibration, applied to each test row's own identifier probability; the
        one tau with a verdict."""
        flip = self.flip
        return None if flip is None else float(flip["tau"])

    def flipped(self, image_id: str) -> bool | None:
        """Whether the run's flip rule inverts row ``image_id``'s prediction (its identifier probability >= the
        chosen tau: out-of-fold for a calibration row, the calibration fold models' mean for a test row); None
        when the pair was run without flipping. KeyError for a row not in the pair."""
        if self.flip is None:
            return None
        rows = self.outcomes.loc[self.outcomes["image_id"].to_numpy() == image_id]
        if rows.empty:
            raise KeyError(f"row {image_id!r} is not in the pair ({self.model}, {self.finding})")
        row = rows.iloc[0]
        return bool(int(row["flipped_prediction"]) != int(row["prediction"]))

    @property
    def flips_nothing(self) -> bool:
        """True when no flip threshold helped on calibration, so the chosen setting is to flip nothing."""
        flip = self.flip
        return flip is None or float(flip["tau"]) >= NEVER_FLIP

    @property
    def flip_curve(self) -> pd.DataFrame:
        return self.tables["flip_curves"]

    @property
    def shap_values(self) -> pd.DataFrame:
        return self.tables["shap_values"]

    @property
    def has_label_audit(self) -> bool:
        """True when reference labels read this pair's finding (see `cxrfail.analysis.labels`)."""
        return not self.tables["label_audit"].empty

    @property
    def label_audit(self) -> dict | None:
        """The audit row (model errors vs probable label errors, AUROC/F1/flip against each label set)."""
        rows = self.tables["label_audit"]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def overall(self) -> dict:
        """Misclassification on the test split: n, n_misclassified, rate, Wilson CI, n_fp, n_fn."""
        return _misclassification_summary(self.outcomes_in("test"))

    # --- live operations --------------------------------------------------------------------------------
    def evaluate_flip(self, tau: float, *, n_bootstrap: int = 2000, seed: int = 0) -> FlipEvaluation:
        """Flip each test prediction whose own identifier probability is ≥ ``tau`` (the run's per-case rule);
        F1 change with its paired patient-bootstrap CI. Only the calibration-chosen tau (`chosen_tau`) is a
        verdict: any other tau is a look at test data, exploratory."""
        test = self.outcomes_in("test")
        return evaluate_flip(test["label"].to_numpy(dtype=int), test["prediction"].to_numpy(dtype=int),
                             test["identifier_probability"].to_numpy(dtype=float), test["patient_id"].to_numpy(),
                             float(tau), chosen_tau=self.chosen_tau, n_bootstrap=n_bootstrap, seed=seed)

    def rates_by(self, table: pd.DataFrame, column: str, *, min_n: int, min_patients: int, n_replicates: int,
                 seed: int) -> pd.DataFrame:
        """Misclassification rates on the test split by any cohort column, cut on the fly (findings as
        present/absent, numbers with many values into quartiles, anything else by value); columns as
        ``subgroup_rates`` (patient-clustered intervals, as the run's). ``table`` is the cohort table (indexed by
        row id); the other arguments as the run's config (`min_subgroup_n`, `min_subgroup_patients`,
        `subgroup_bootstrap`, `seed`)."""
        from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates

        test = self.outcomes_in("test")
        rows = table.loc[test["image_id"].to_numpy()]
        levels = subgroup_levels(rows, finding_subgroups=(), extra_columns=[column])[[column]]
        wrong = pd.Series(test["misclassified"].to_numpy(dtype=bool), index=rows.index)
        frame = subgroup_rates(wrong, levels, test["patient_id"].set_axis(rows.index), min_n=min_n,
                               min_patients=min_patients, n_replicates=n_replicates, seed=seed)
        frame.insert(0, "finding", self.finding)
        frame.insert(0, "model", self.model)
        return frame

    def with_table(self, name: str, frame: pd.DataFrame) -> PairResult:
        """A copy with table ``name`` replaced (e.g. regression q-values adjusted across the run)."""
        return dataclasses.replace(self, tables={**self.tables, name: frame})


def _misclassification_summary(rows: pd.DataFrame) -> dict:
    n = len(rows)
    wrong = rows["misclassified"].to_numpy(dtype=bool)
    label = rows["label"].to_numpy()
    k = int(wrong.sum())
    low, high = wilson_interval(k, n) if n else (np.nan, np.nan)
    return {"n": n, "n_misclassified": k, "rate": k / n if n else np.nan, "ci_low": float(low),
            "ci_high": float(high), "n_fp": int((wrong & (label == 0)).sum()), "n_fn": int((wrong & (label == 1)).sum())}


@dataclass
class AnalysisResult:
    """The config of a run plus one `PairResult` per (model, finding), in the order they were run.

    Attributes:
        config: the `AnalysisConfig`.
        cohort_summary: the cohort's counts (unit, rows, patients, age, sex, view) and split sizes.
        models: the analysed model names.
        pairs: (model, finding) → `PairResult`.
        notes: name → text (cohort and model notes, coverage, unit).
        cache_key: hash of every input and parameter.
        refused: (model, finding) → the one-line reason a pair was not analysed.
    """

    config: object
    cohort_summary: dict
    models: tuple[str, ...]
    pairs: Mapping[tuple[str, str], PairResult]
    notes: dict = field(default_factory=dict)
    cache_key: str | None = None
    refused: Mapping[tuple[str, str], str] = field(default_factory=dict)
    _long: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def unit(self) -> str:
        return str(self.cohort_summary.get("unit", "image"))

    @property
    def is_core(self) -> bool:
        """True for a first-screen run (`scope` "core": no identifiers, flipping, SHAP or label audit)."""
        return any(pair.scope != FULL_SCOPE for pair in self.pairs.values())

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(finding for _, finding in self.pairs))

    def pair(self, model: str, finding: str) -> PairResult:
        try:
            return self.pairs[(model, finding)]
        except KeyError:
            reason = self.refused.get((model, finding))
            raise KeyError(f"the run has no pair ({model!r}, {finding!r})"
                           + (f": refused, {reason}" if reason else "")) from None

    def __iter__(self) -> Iterator[PairResult]:
        return iter(self.pairs.values())

    def table(self, name: str) -> pd.DataFrame:
        """The long table ``name``: every pair's rows stacked in run order (built once)."""
        if name not in TABLE_COLUMNS:
            raise KeyError(f"no table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        if name not in self._long:
            frames = [pair.tables[name] for pair in self.pairs.values() if len(pair.tables[name])]
            self._long[name] = (pd.concat(frames, ignore_index=True) if frames
                                else pd.DataFrame(columns=list(TABLE_COLUMNS[name])))
        return self._long[name]

    # The long tables by name, for readers of the report's columns.
    performance = property(lambda self: self.table("performance"))
    subgroup_rates = property(lambda self: self.table("subgroup_rates"))
    regression = property(lambda self: self.table("regression"))
    identifiers = property(lambda self: self.table("identifiers"))
    flip = property(lambda self: self.table("flip"))
    flip_curves = property(lambda self: self.table("flip_curves"))
    outcomes = property(lambda self: self.table("outcomes"))
    identifier_scores = property(lambda self: self.table("identifier_scores"))
    shap_values = property(lambda self: self.table("shap_values"))

    # --- derived tables ---------------------------------------------------------------------------------
    def _derived(self, name: str, build) -> pd.DataFrame:
        """``build()`` once per result (the result never changes after it is made)."""
        key = f"derived:{name}"
        if key not in self._long:
            self._long[key] = build()
        return self._long[key]

    def analysed_ids(self) -> pd.Index:
        """Every row id analysed in at least one pair."""
        return self._derived("ids", lambda: pd.Index(pd.unique(self.table("outcomes")["image_id"])))

    def overall_misclassification(self) -> pd.DataFrame:
        """Per (model, finding): test-split misclassification with a Wilson 95% CI.

        Columns: model, finding, n, n_misclassified, rate, ci_low, ci_high, n_fp, n_fn."""
        return self._derived("overall", self._overall_misclassification)

    def _overall_misclassification(self) -> pd.DataFrame:
        columns = ["model", "finding", "n", "n_misclassified", "rate", "ci_low", "ci_high", "n_fp", "n_fn"]
        rows = [{"model": p.model, "finding": p.finding, **p.overall} for p in self.pairs.values()]
        return pd.DataFrame(rows, columns=columns)

    def effect_summary(self, *, q_column: str = "q_bh", alpha: float = 0.05) -> pd.DataFrame:
        """Where the action is: per (model, finding), how many regression terms are significant after
        correction and the term with the largest |log OR| among them (or overall when none is).

        Columns: model, finding, n_significant, top_term, top_odds_ratio, top_q."""
        return self._derived(f"effects:{q_column}:{alpha}", lambda: self._effect_summary(q_column, alpha))

    def _effect_summary(self, q_column: str, alpha: float) -> pd.DataFrame:
        columns = ["model", "finding", "n_significant", "top_term", "top_odds_ratio", "top_q"]
        rows = []
        for pair in self.pairs.values():
            terms = model_terms(pair.regression)
            if terms.empty:
                continue
            abs_log_or = np.abs(np.log(terms["odds_ratio"].astype(float)))
            significant = terms[q_column].astype(float) < alpha
            finite = np.isfinite(abs_log_or)
            pool = terms.loc[finite & significant] if (finite & significant).any() else terms.loc[finite]
            if pool.empty:
                rows.append((pair.model, pair.finding, 0, None, np.nan, np.nan))
                continue
            top = pool.loc[abs_log_or.loc[pool.index].idxmax()]
            rows.append((pair.model, pair.finding, int((significant & finite).sum()), str(top["term"]),
                         float(top["odds_ratio"]), float(top[q_column])))
        return pd.DataFrame(rows, columns=columns)

    def subgroup_gaps(self) -> pd.DataFrame:
        """Per (model, finding, subgroup): the spread of misclassification rates between sufficient levels.

        Columns: model, finding, subgroup, spread, lowest, min_rate, n_lowest, highest, max_rate, n_highest."""
        return self._derived("gaps", self._subgroup_gaps)

    def _subgroup_gaps(self) -> pd.DataFrame:
        columns = ["model", "finding", "subgroup", "spread", "lowest", "min_rate", "n_lowest", "highest",
                   "max_rate", "n_highest"]
        rows = []
        for pair in self.pairs.values():
            rates = pair.subgroup_rates
            usable = rates.loc[rates["sufficient"].astype(bool) & ~rates["is_reference"].astype(bool)] \
                if len(rates) else rates
            for subgroup, group in usable.groupby("subgroup", sort=False):
                if len(group) < 2:
                    continue
                low, high = group.loc[group["rate"].idxmin()], group.loc[group["rate"].idxmax()]
                rows.append((pair.model, pair.finding, subgroup, float(high["rate"] - low["rate"]), str(low["level"]),
                             float(low["rate"]), int(low["n"]), str(high["level"]), float(high["rate"]),
                             int(high["n"])))
        return pd.DataFrame(rows, columns=columns)

    def regression_terms(self) -> list[str]:
        """Every regression term of the run (no intercept), in first-seen order."""
        return self._derived("terms", lambda: list(dict.fromkeys(model_terms(self.regression)["term"].astype(str))))

    # --- live operations --------------------------------------------------------------------------------
    def evaluate_flip(self, model: str, finding: str, tau: float, *, n_bootstrap: int | None = None
                      ) -> FlipEvaluation:
        """`PairResult.evaluate_flip` with the run's seed and bootstrap size (default)."""
        n = int(self.config.n_bootstrap if n_bootstrap is None else n_bootstrap)
        return self.pair(model, finding).evaluate_flip(tau, n_bootstrap=n, seed=int(self.config.seed))

    def rates_by(self, model: str, finding: str, table: pd.DataFrame, column: str) -> pd.DataFrame:
        """`PairResult.rates_by` with the run's subgroup settings (rows, patients, replicates, seed)."""
        config = self.config
        return self.pair(model, finding).rates_by(
            table, column, min_n=config.min_subgroup_n, min_patients=config.min_subgroup_patients,
            n_replicates=config.subgroup_bootstrap, seed=config.seed)

    def stacked(self) -> AnalysisResult:
        """The same result with every long table built once and each pair's tables slices of it: one copy of
        the per-row tables in memory (at 190k rows x 50 pairs, the outcomes alone are 9 million rows)."""
        result = AnalysisResult.from_tables(self.config, self.cache_key, {name: self.table(name) for name in TABLE_NAMES},
                                            self.meta())
        self._long.clear()
        return result

    # --- cache encoding ---------------------------------------------------------------------------------
    def meta(self) -> dict:
        """Everything but the tables, JSON-ready (for the on-disk cache)."""
        return {"config": dataclasses.asdict(self.config), "cohort_summary": self.cohort_summary,
                "models": list(self.models), "notes": self.notes,
                "pairs": [[p.model, p.finding, list(p.identifier), p.scope, list(p.warnings)]
                          for p in self.pairs.values()],
                "refused": [[model, finding, reason] for (model, finding), reason in self.refused.items()]}

    @classmethod
    def from_tables(cls, config: object, key: str | None, tables: Mapping[str, pd.DataFrame], meta: dict
                    ) -> AnalysisResult:
        """Rebuild a result from its long tables and `meta()` (the inverse of `table` + `meta`)."""
        unit = str(meta["cohort_summary"].get("unit", "image"))
        order = [(entry[0], entry[1], tuple(entry[2]), entry[3], tuple(entry[4])) for entry in meta["pairs"]]
        split = {name: _by_pair(tables.get(name, pd.DataFrame(columns=list(columns))))
                 for name, columns in TABLE_COLUMNS.items()}
        pairs = {}
        for model, finding, identifier, scope, warnings in order:
            pair_tables = {name: split[name].get((model, finding), _empty_like(tables.get(name), name))
                           for name in TABLE_COLUMNS}
            pairs[(model, finding)] = PairResult(model, finding, unit, pair_tables, identifier, scope, warnings)
        result = cls(config=config, cohort_summary=meta["cohort_summary"], models=tuple(meta["models"]),
                     pairs=pairs, notes=meta["notes"], cache_key=key,
                     refused={(m, f): reason for m, f, reason in meta.get("refused", [])})
        result._long.update({name: frame for name, frame in tables.items() if name in TABLE_COLUMNS})
        return result


def model_terms(regression: pd.DataFrame) -> pd.DataFrame:
    """Regression rows of real terms: no intercept, no placeholder row of a fit that estimated nothing."""
    if regression.empty:
        return regression
    terms = regression["term"]
    return regression.loc[terms.notna() & ~terms.astype(str).str.lower().isin(["intercept", "const"])]


def _by_pair(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Each pair's rows of a long table. A pair whose rows are contiguous (as `AnalysisResult.table` stacks
    them) gets a slice, which shares the long table's memory (copy-on-write) instead of copying it."""
    if frame.empty:
        return {}
    out = {}
    for key, positions in frame.groupby(["model", "finding"], sort=False).indices.items():
        first, last = int(positions[0]), int(positions[-1])
        rows = slice(first, last + 1) if last - first + 1 == len(positions) else positions
        out[key] = frame.iloc[rows].reset_index(drop=True)
    return out


def _empty_like(frame: pd.DataFrame | None, name: str) -> pd.DataFrame:
    return frame.iloc[0:0] if frame is not None else pd.DataFrame(columns=list(TABLE_COLUMNS[name]))
