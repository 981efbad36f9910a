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
from cxrfail.analysis.flip import CURVE_COLUMNS, EVALUATION_COLUMNS, NEVER_FLIP, FlipEvaluation, evaluate_flip
from cxrfail.analysis.identifiers.evaluation import IDENTIFIER_COLUMNS
from cxrfail.analysis.labels import AGREEMENT_COLUMNS, AUDIT_COLUMNS, CASE_COLUMNS
from cxrfail.analysis.regression import PAIR_REGRESSION_COLUMNS
from cxrfail.analysis.slices import SLICE_COLUMNS, across_models
from cxrfail.analysis.subgroups import SUBGROUP_RATE_COLUMNS, clustered_rate, within_patient_correlation

__all__ = ["TABLE_COLUMNS", "TABLE_NAMES", "AnalysisResult", "PairResult", "PairRefusal"]

# The long tables of a run, in report order, with their columns (the contract of the report CSVs, the cache
# and the dashboard). Per pair, each table holds that pair's rows only.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    # auroc over every row; threshold chosen on calibration; f1/precision/recall and the rate on test
    "performance": (
        "model",
        "finding",
        "n",
        "n_pos",
        "auroc",
        "threshold",
        "f1",
        "precision",
        "recall",
        "n_test",
        "misclassification_rate",
        "threshold_note",
    ),
    # test split; ci_low/ci_high patient-clustered (Wilson at effective_n, or Clopper-Pearson on patients at a
    # rate of 0 or 1: ci_method; row-level Wilson kept as wilson_*); `sufficient` False below the minimum
    # effective rows, patients or events (rate still shown); one reference row per subgroup (`is_reference`,
    # level "all known"): the rate over the rows where the subgroup is known (a subset's own rate)
    "subgroup_rates": ("model", "finding", *SUBGROUP_RATE_COLUMNS),
    # test split; SEs clustered by patient; q-values within one fit of one pair, the family named in q_family
    # (`cxrfail.analysis.regression.fit_pair_regressions`)
    "regression": ("model", "finding", *PAIR_REGRESSION_COLUMNS),
    # one row per learner x feature set (the ladder): identifiers cross-fitted on the calibration folds, judged
    # on the test split (n, n_patients, n_misclassified: test rows): auroc with its patient-clustered CI, paired
    # differences to probability_only (what the features add beyond the model's own probability), to the
    # confidence baseline (secondary) and to the 0/1 prediction, all on one set of test-patient resamples
    # (ci_method: "bootstrap", or "analytic" clustered DeLong on large pairs); auroc_pooled (secondary):
    # calibration out-of-fold and test scores pooled, no interval; learner_settings: the learner as fitted
    "identifiers": ("model", "finding", "learner", "feature_set", *IDENTIFIER_COLUMNS),
    # test split at the flip threshold chosen on calibration out-of-fold scores (tau; calibration_flips: the
    # calibration rows it flips); a test row is flipped when its own score (its patient's calibration fold model's)
    # is >= tau; the one verdict `improved`; the identifier used
    "flip": (
        "model",
        "finding",
        "tau",
        *EVALUATION_COLUMNS,
        "calibration_flips",
        "learner",
        "feature_set",
        "oracle",
    ),
    # test split, a grid of tau plus the chosen one; every row but the chosen tau is exploratory (no verdict)
    "flip_curves": ("model", "finding", *CURVE_COLUMNS),
    # one row per cohort row of the pair; identifier_probability: the run identifier's score the row was compared
    # with tau (calibration out-of-fold, test its patient's calibration fold model's); flipped_prediction: the
    # prediction after flipping (inverted exactly when identifier_probability >= tau)
    "outcomes": (
        "model",
        "finding",
        "image_id",
        "patient_id",
        "split",
        "label",
        "probability",
        "threshold",
        "prediction",
        "misclassified",
        "identifier_probability",
        "flipped_prediction",
    ),
    # every identifier's scores of the test rows (each by its patient's calibration fold model), for ROC curves (the
    # confidence baseline of a row is -|probability - threshold| from outcomes)
    "identifier_scores": (
        "model",
        "finding",
        "learner",
        "feature_set",
        "image_id",
        "misclassified",
        "identifier_score",
    ),
    # a sample of test rows
    "shap_values": ("model", "finding", "image_id", "feature", "shap_value", "feature_value"),
    # the label audit against reference labels (`cxrfail.analysis.labels`); empty where the reference does not
    # read the pair's finding
    "label_agreement": AGREEMENT_COLUMNS,
    "label_audit": AUDIT_COLUMNS,
    "label_cases": CASE_COLUMNS,
    # failure slices (`cxrfail.analysis.slices`): searched on calibration (n_/rate_calibration), the top K per
    # error kind confirmed on test (rate with a patient-bootstrap CI, rate ratio vs the rest of the test
    # population with its CI, clustered p; q_value: BH over the pair's candidates, q_value_grid: over the run)
    "slices": ("model", "finding", *SLICE_COLUMNS),
}
LABEL_TABLES = ("label_agreement", "label_audit", "label_cases")
TABLE_NAMES = tuple(TABLE_COLUMNS)
#: Columns that say which pair (and which subgroup) a row belongs to: dropped by the per-pair views.
_PAIR_COLUMNS = ("model", "finding")


@dataclass(frozen=True)
class PairRefusal:
    """A (model, finding) pair the analysis refused (`cxrfail.analysis.checks`), with its one-line reason."""

    model: str
    finding: str
    reason: str


@dataclass(frozen=True)
class PairResult:
    """Everything computed for one model on one finding. Tables hold only this pair's rows, tagged.

    Modelled on Fairlearn's ``MetricFrame``: the metric is misclassification (a row whose thresholded
    prediction disagrees with its label), on the held-out test split, with one row per unit (`unit`).

    - `overall`: the misclassification rate of the pair with its n and 95% interval.
    - `by_group` (subgroup): the rate per level of a subgroup (age bin, sex, view, ...), with n, patients and
      patient-clustered intervals; `difference` (subgroup): the spread between its lowest and highest level.
    - `identifiers`: how well each identifier predicts misclassification (held-out AUROC with intervals).
    - `flip`: the flip run at the tau chosen on calibration (the one verdict); `evaluate_flip` (tau): the same
      rule at any tau, live (exploratory unless tau is the chosen one).
    - `label_audit`, `label_agreement`, `label_cases`: model errors against probable label errors, where
      reference labels read the finding.
    - `slices`: the error slices searched on calibration and confirmed on test.
    - `table` (name): any of this pair's long tables (`TABLE_COLUMNS`).

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
        """One row per (learner, feature set) evaluated: how well it predicts which test rows the model gets
        wrong. Columns as `TABLE_COLUMNS["identifiers"]`: ``auroc`` (held-out AUROC, in [0, 1], 0.5 = chance)
        with its 95% interval (patients resampled, or clustered DeLong: ``ci_method``), the confidence
        baseline and the paired differences to it, ``n`` and ``n_misclassified`` (rows), ``oracle`` (True when
        the features include ground-truth labels: never used for flipping)."""
        return self.tables["identifiers"]

    def identifier_scores(self, learner: str, feature_set: str) -> pd.DataFrame:
        scores = self.tables["identifier_scores"]
        return scores.loc[(scores["learner"] == learner).to_numpy() & (scores["feature_set"] == feature_set).to_numpy()]

    def identifier_evaluation(self, learner: str, feature_set: str) -> dict | None:
        rows = self.identifiers
        rows = rows.loc[(rows["learner"] == learner).to_numpy() & (rows["feature_set"] == feature_set).to_numpy()]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def flip(self) -> pd.Series | None:
        """The flip result on the test split at the tau chosen on calibration (the one verdict), or None when
        flipping was not run (a "core" run). A Series over `TABLE_COLUMNS["flip"]`: ``tau`` (identifier
        probability, calibration scale), ``test_tau`` (the same flip fraction on the test scale),
        ``n_flips`` (rows), ``f1_before``/``f1_after``/``delta_f1`` (F1 in [0, 1] and its change) with the
        paired 95% interval ``ci_low``/``ci_high`` (patients resampled), ``improved`` (the verdict), the
        identifier used (``learner``, ``feature_set``)."""
        rows = self.tables["flip"]
        return None if rows.empty else rows.iloc[0].rename("flip")

    @property
    def chosen_tau(self) -> float | None:
        """The flip threshold chosen on calibration, applied to each test row's own identifier probability; the
        one tau with a verdict."""
        flip = self.flip
        return None if flip is None else float(flip["tau"])

    def flipped(self, image_id: str) -> bool | None:
        """Whether the run's flip rule inverts row ``image_id``'s prediction (its identifier probability >= the
        chosen tau: out-of-fold for a calibration row, its patient's calibration fold model's for a test row); None
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
    def slices(self) -> pd.DataFrame:
        """Failure slices searched on calibration and confirmed on test (columns ``TABLE_COLUMNS["slices"]``;
        ``confirmed`` False rows are "not confirmed on held-out patients")."""
        return self.tables["slices"]

    @property
    def has_label_audit(self) -> bool:
        """True when reference labels read this pair's finding (see `cxrfail.analysis.labels`)."""
        return not self.tables["label_audit"].empty

    @property
    def label_audit(self) -> pd.Series | None:
        """The label audit on the rows that reference labels read, or None when none read this finding. A
        Series over `TABLE_COLUMNS["label_audit"]`: ``n_rows``/``n_patients`` with both labels, Cohen's
        ``kappa``, test misclassifications split into ``n_model_error`` and ``n_label_error`` (rows) with their
        shares (proportions) and 95% intervals (patients resampled), AUROC, F1 and the flip's ΔF1 against each
        label set (``*_cohort``, ``*_reference``). The reference rows are not a random sample of the cohort."""
        rows = self.tables["label_audit"]
        return None if rows.empty else rows.iloc[0].rename("label_audit")

    @property
    def label_agreement(self) -> pd.DataFrame:
        """The 2 x 2 table of cohort label by reference label on the rows with both: one row per cell
        (``cohort_label``, ``reference_label`` in {0, 1}; ``n`` rows, ``share`` of ``n_rows``), with
        ``n_rows``, ``n_patients`` and Cohen's ``kappa`` of the whole table on every row. Empty without an
        audit."""
        return self.tables["label_agreement"].drop(columns=list(_PAIR_COLUMNS))

    @property
    def label_cases(self) -> pd.DataFrame:
        """One row per row with both labels (every split: filter on ``split``): ``image_id``, ``patient_id``,
        the cohort ``label``, the ``reference_label``, the ``prediction`` and the ``verdict`` (model error,
        probable label error, ...; `cxrfail.analysis.labels.VERDICTS`). Empty without an audit."""
        return self.tables["label_cases"].drop(columns=list(_PAIR_COLUMNS))

    @property
    def overall(self) -> pd.Series:
        """Misclassification over the pair's test rows (Fairlearn's ``MetricFrame.overall``).

        A Series: ``n`` (test rows, the pair's unit), ``n_misclassified`` (rows), ``rate`` (proportion in
        [0, 1]), ``ci_low``/``ci_high`` (its patient-clustered 95% interval, proportions: `cxrfail.analysis.
        subgroups.clustered_rate`, as every subgroup rate), ``n_fp``/``n_fn`` (false positives and false
        negatives, rows)."""
        return pd.Series(_misclassification_summary(self.outcomes_in("test")), name="overall")

    def by_group(self, subgroup: str, *, reference: bool = False) -> pd.DataFrame:
        """Misclassification rates of the test split by the levels of ``subgroup`` (a name of `subgroups`).

        One row per level (index ``level``, in natural order: age bins by age), columns as the
        ``subgroup_rates`` table without model, finding and subgroup: ``n`` and ``n_patients`` (rows and
        patients of the level), ``n_misclassified``, ``rate`` (proportion), ``ci_low``/``ci_high`` (95%,
        patient-clustered), ``sufficient`` (False below the run's minimum rows or patients: shown, not to be
        compared), and the subset columns. ``reference=True`` keeps the subgroup's reference row (level
        "all known": the rate over the rows whose level is known, the overall rate of a subset)."""
        rates = self.subgroup_rates
        rows = rates.loc[rates["subgroup"].to_numpy() == subgroup]
        if rows.empty:
            raise KeyError(
                f"no subgroup {subgroup!r} for {self.model} · {self.finding}; subgroups are "
                f"{', '.join(self.subgroups) or 'none'}"
            )
        if not reference:
            rows = rows.loc[~rows["is_reference"].astype(bool).to_numpy()]
        return rows.drop(columns=[*_PAIR_COLUMNS, "subgroup"]).set_index("level")

    @property
    def subgroups(self) -> tuple[str, ...]:
        """The subgroups with rates (age bin, sex, view, the clinical findings, extra columns), in run order."""
        return tuple(dict.fromkeys(self.subgroup_rates["subgroup"].astype(str)))

    def difference(self, subgroup: str) -> pd.Series | None:
        """The spread of misclassification between the lowest and the highest sufficient level of
        ``subgroup`` (Fairlearn's ``MetricFrame.difference``); None when fewer than two levels are sufficient.

        A Series: ``spread`` (highest rate minus lowest rate, proportion points), ``lowest``/``highest`` (the
        levels), ``min_rate``/``max_rate`` (proportions), ``n_lowest``/``n_highest`` (their test rows). A
        description, not a test: compare the levels' own intervals in `by_group`."""
        levels = self.by_group(subgroup)
        usable = levels.loc[levels["sufficient"].astype(bool).to_numpy()]
        if len(usable) < 2:
            return None
        low, high = usable["rate"].idxmin(), usable["rate"].idxmax()
        return pd.Series(
            {
                "spread": float(usable.at[high, "rate"] - usable.at[low, "rate"]),
                "lowest": str(low),
                "min_rate": float(usable.at[low, "rate"]),
                "n_lowest": int(usable.at[low, "n"]),
                "highest": str(high),
                "max_rate": float(usable.at[high, "rate"]),
                "n_highest": int(usable.at[high, "n"]),
            },
            name=subgroup,
        )

    # --- live operations --------------------------------------------------------------------------------
    def evaluate_flip(self, tau: float, *, n_bootstrap: int = 2000, seed: int = 0) -> FlipEvaluation:
        """Flip each test prediction whose own identifier probability is ≥ ``tau`` (the run's per-case rule);
        F1 change with its paired patient-bootstrap CI. Only the calibration-chosen tau (`chosen_tau`) is a
        verdict: any other tau is a look at test data, exploratory."""
        test = self.outcomes_in("test")
        return evaluate_flip(
            test["label"].to_numpy(dtype=int),
            test["prediction"].to_numpy(dtype=int),
            test["identifier_probability"].to_numpy(dtype=float),
            test["patient_id"].to_numpy(),
            float(tau),
            chosen_tau=self.chosen_tau,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )

    def rates_by(
        self, table: pd.DataFrame, column: str, *, min_n: int, min_patients: int, min_events: int
    ) -> pd.DataFrame:
        """Misclassification rates on the test split by any cohort column, cut on the fly (findings as
        present/absent, numbers with many values into quartiles, anything else by value); columns as
        ``subgroup_rates`` (patient-clustered intervals, as the run's). ``table`` is the cohort table (indexed by
        row id); the other arguments as the run's config (`min_subgroup_n`, `min_subgroup_patients`,
        `min_subgroup_events`)."""
        from cxrfail.analysis.subgroups import subgroup_levels, subgroup_rates

        test = self.outcomes_in("test")
        rows = table.loc[test["image_id"].to_numpy()]
        levels = subgroup_levels(rows, finding_subgroups=(), extra_columns=[column])[[column]]
        wrong = pd.Series(test["misclassified"].to_numpy(dtype=bool), index=rows.index)
        frame = subgroup_rates(
            wrong,
            levels,
            test["patient_id"].set_axis(rows.index),
            min_n=min_n,
            min_patients=min_patients,
            min_events=min_events,
        )
        frame.insert(0, "finding", self.finding)
        frame.insert(0, "model", self.model)
        return frame

    def with_table(self, name: str, frame: pd.DataFrame) -> PairResult:
        """A copy with table ``name`` replaced (e.g. its row ids swapped for arrays shared across pairs)."""
        return dataclasses.replace(self, tables={**self.tables, name: frame})


def _misclassification_summary(rows: pd.DataFrame) -> dict:
    n = len(rows)
    wrong = rows["misclassified"].to_numpy(dtype=bool)
    label = rows["label"].to_numpy()
    k = int(wrong.sum())
    low = high = np.nan
    if n:
        per_patient = (
            pd.DataFrame({"patient": rows["patient_id"].to_numpy(), "wrong": wrong})
            .groupby("patient", sort=False)["wrong"]
            .agg(["sum", "size"])
        )
        events, sizes = per_patient["sum"].to_numpy(), per_patient["size"].to_numpy()
        rate = clustered_rate(events, sizes, correlation=within_patient_correlation(events, sizes))
        low, high = rate.ci_low, rate.ci_high
    return {
        "n": n,
        "n_misclassified": k,
        "rate": k / n if n else np.nan,
        "ci_low": float(low),
        "ci_high": float(high),
        "n_fp": int((wrong & (label == 0)).sum()),
        "n_fn": int((wrong & (label == 1)).sum()),
    }


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
        missing: the pairs of a run still computing (a provisional result,
            `cxrfail.analysis.runner.RunSoFar.result`); empty for a finished run.
    """

    config: object
    cohort_summary: dict
    models: tuple[str, ...]
    pairs: Mapping[tuple[str, str], PairResult]
    notes: dict = field(default_factory=dict)
    cache_key: str | None = None
    refused: Mapping[tuple[str, str], str] = field(default_factory=dict)
    missing: tuple[tuple[str, str], ...] = ()
    _long: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def unit(self) -> str:
        return str(self.cohort_summary.get("unit", "image"))

    @property
    def provisional(self) -> bool:
        """True while pairs of the run are still computing (``missing``): each pair present has its final
        numbers, grid-wide ones (``q_value_grid`` of the slices) cover the pairs present only."""
        return bool(self.missing)

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(finding for _, finding in self.pairs))

    def pair(self, model: str, finding: str) -> PairResult:
        try:
            return self.pairs[(model, finding)]
        except KeyError:
            reason = self.refused.get((model, finding))
            raise KeyError(
                f"the run has no pair ({model!r}, {finding!r})" + (f": refused, {reason}" if reason else "")
            ) from None

    def __iter__(self) -> Iterator[PairResult]:
        return iter(self.pairs.values())

    def table(self, name: str) -> pd.DataFrame:
        """The long table ``name``: every pair's rows stacked in run order (built once)."""
        if name not in TABLE_COLUMNS:
            raise KeyError(f"no table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        if name not in self._long:
            frames = [pair.tables[name] for pair in self.pairs.values() if len(pair.tables[name])]
            self._long[name] = (
                pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(TABLE_COLUMNS[name]))
            )
        return self._long[name]

    def rows(self, name: str, *, model: str | None = None, finding: str | None = None) -> pd.DataFrame:
        """The rows of the long table ``name`` of one model and/or one finding (every pair's when both are
        None), e.g. ``rows("label_audit", finding="Pneumothorax")``: one audit row per model."""
        frame = self.table(name)
        keep = np.ones(len(frame), dtype=bool)
        for column, value in (("model", model), ("finding", finding)):
            if value is not None:
                keep &= frame[column].to_numpy() == value
        return frame.loc[keep]

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
    slices = property(lambda self: self.table("slices"))

    # --- derived tables ---------------------------------------------------------------------------------
    def _derived(self, name: str, build) -> pd.DataFrame:
        """``build()`` once per result (the result never changes after it is made)."""
        key = f"derived:{name}"
        if key not in self._long:
            self._long[key] = build()
        return self._long[key]

    def overall_misclassification(self) -> pd.DataFrame:
        """Per (model, finding): test-split misclassification with its patient-clustered 95% CI (`PairResult.overall`).

        Columns: model, finding, n, n_misclassified, rate, ci_low, ci_high, n_fp, n_fn."""
        return self._derived("overall", self._overall_misclassification)

    def _overall_misclassification(self) -> pd.DataFrame:
        columns = ["model", "finding", "n", "n_misclassified", "rate", "ci_low", "ci_high", "n_fp", "n_fn"]
        rows = [{"model": p.model, "finding": p.finding, **p.overall.to_dict()} for p in self.pairs.values()]
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
            rows.append(
                (
                    pair.model,
                    pair.finding,
                    int((significant & finite).sum()),
                    str(top["term"]),
                    float(top["odds_ratio"]),
                    float(top[q_column]),
                )
            )
        return pd.DataFrame(rows, columns=columns)

    def subgroup_gaps(self) -> pd.DataFrame:
        """Per (model, finding, subgroup): the spread of misclassification rates between sufficient levels.

        Columns: model, finding, subgroup, spread, lowest, min_rate, n_lowest, highest, max_rate, n_highest."""
        return self._derived("gaps", self._subgroup_gaps)

    def _subgroup_gaps(self) -> pd.DataFrame:
        columns = [
            "model",
            "finding",
            "subgroup",
            "spread",
            "lowest",
            "min_rate",
            "n_lowest",
            "highest",
            "max_rate",
            "n_highest",
        ]
        rows = [
            {"model": pair.model, "finding": pair.finding, "subgroup": subgroup, **gap.to_dict()}
            for pair in self.pairs.values()
            for subgroup in pair.subgroups
            if (gap := pair.difference(subgroup)) is not None
        ]
        return pd.DataFrame(rows, columns=columns)

    def slices_across_models(self) -> pd.DataFrame:
        """Slices confirmed for two or more models of the same finding and error kind
        (`cxrfail.analysis.slices.across_models`)."""
        return self._derived("slices_across", lambda: across_models(self.table("slices")))

    def regression_terms(self) -> list[str]:
        """Every regression term of the run (no intercept), in first-seen order."""
        return self._derived("terms", lambda: list(dict.fromkeys(model_terms(self.regression)["term"].astype(str))))

    # --- live operations --------------------------------------------------------------------------------
    def evaluate_flip(self, model: str, finding: str, tau: float, *, n_bootstrap: int | None = None) -> FlipEvaluation:
        """`PairResult.evaluate_flip` with the run's seed and bootstrap size (default)."""
        n = int(self.config.n_bootstrap if n_bootstrap is None else n_bootstrap)
        return self.pair(model, finding).evaluate_flip(tau, n_bootstrap=n, seed=int(self.config.seed))

    def rates_by(self, model: str, finding: str, table: pd.DataFrame, column: str) -> pd.DataFrame:
        """`PairResult.rates_by` with the run's subgroup settings (effective rows, patients, events)."""
        config = self.config
        return self.pair(model, finding).rates_by(
            table,
            column,
            min_n=config.min_subgroup_n,
            min_patients=config.min_subgroup_patients,
            min_events=config.min_subgroup_events,
        )

    def refit_identifier(self, model: str, finding: str, cohort, predictions):
        """The flip identifier of (model, finding) fitted again on its calibration rows, for SHAP of any row
        (`cxrfail.analysis.explain.PairIdentifier`). ``cohort`` and ``predictions`` (every model of the run,
        `ModelPredictions`) are the run's inputs."""
        from cxrfail.analysis.explain import refit_pair_identifier

        probabilities = {p.name: p.probabilities for p in predictions if p.name in self.models}
        return refit_pair_identifier(self.pair(model, finding), cohort.table, probabilities, self.config)

    def stacked(self) -> AnalysisResult:
        """The same result with every long table built once and each pair's tables slices of it: one copy of
        the per-row tables in memory (at 190k rows x 50 pairs, the outcomes alone are 9 million rows)."""
        result = AnalysisResult.from_tables(
            self.config, self.cache_key, {name: self.table(name) for name in TABLE_NAMES}, self.meta()
        )
        result.missing = self.missing
        self._long.clear()
        return result

    # --- cache encoding ---------------------------------------------------------------------------------
    def meta(self) -> dict:
        """Everything but the tables, JSON-ready (for the on-disk cache)."""
        return {
            "config": dataclasses.asdict(self.config),
            "cohort_summary": self.cohort_summary,
            "models": list(self.models),
            "notes": self.notes,
            "pairs": [[p.model, p.finding, list(p.identifier), p.scope, list(p.warnings)] for p in self.pairs.values()],
            "refused": [[model, finding, reason] for (model, finding), reason in self.refused.items()],
        }

    @classmethod
    def from_tables(
        cls, config: object, key: str | None, tables: Mapping[str, pd.DataFrame], meta: dict
    ) -> AnalysisResult:
        """Rebuild a result from its long tables and `meta()` (the inverse of `table` + `meta`)."""
        unit = str(meta["cohort_summary"].get("unit", "image"))
        order = [(entry[0], entry[1], tuple(entry[2]), entry[3], tuple(entry[4])) for entry in meta["pairs"]]
        split = {
            name: _by_pair(tables.get(name, pd.DataFrame(columns=list(columns))))
            for name, columns in TABLE_COLUMNS.items()
        }
        pairs = {}
        for model, finding, identifier, scope, warnings in order:
            pair_tables = {
                name: split[name].get((model, finding), _empty_like(tables.get(name), name)) for name in TABLE_COLUMNS
            }
            pairs[(model, finding)] = PairResult(model, finding, unit, pair_tables, identifier, scope, warnings)
        result = cls(
            config=config,
            cohort_summary=meta["cohort_summary"],
            models=tuple(meta["models"]),
            pairs=pairs,
            notes=meta["notes"],
            cache_key=key,
            refused={(m, f): reason for m, f, reason in meta.get("refused", [])},
        )
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
