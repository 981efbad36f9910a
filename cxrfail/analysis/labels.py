"""Label audit: is a misclassification a model error or a label error? Judged against a reference standard.

A misclassification is measured against the cohort's labels; when a second, expert label set exists for some
rows (`cxrfail.reference.ReferenceLabels`), each misclassified row with both labels is one of:

* **model error**: the prediction disagrees with the cohort label *and* the reference (they agree);
* **probable label error**: the cohort label disagrees with the reference and the prediction agrees with the
  reference (with 0/1 labels, a misclassified row whose two labels differ is always this case).

Rows the cohort label calls correct but the reference calls wrong are **errors by reference only**: errors the
cohort's labels hide. `audit_pair` works on ONE (model, finding): its rows of the pipeline's ``outcomes``
table and the reference labels of that finding. Rows used (the reference covers a subset; every number is on
rows with both labels):

* label agreement, Cohen's kappa, model AUROC and identifier AUROC: every row with both labels (none of them
  uses a threshold chosen on the data, as in the pipeline);
* misclassification verdicts, F1 at the operating threshold and the flip result: the rows of ``split``
  (default the test split: the threshold and the flip threshold were chosen on calibration).

Intervals resample patients (`cxrfail.analysis.bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrfail.analysis.auroc_intervals import bootstrap_auroc
from cxrfail.analysis.outcomes import binary_metrics
from cxrfail.analysis.resampling import bootstrap_ratios, paired_bootstrap_f1_change
from cxrfail.analysis.validation import as_binary

CORRECT = "correct by both labels"
MODEL_ERROR = "model error"
LABEL_ERROR = "probable label error"
REFERENCE_ONLY_ERROR = "error by reference only"
#: every verdict of `classify_against_reference`, in display order
VERDICTS = (MODEL_ERROR, LABEL_ERROR, REFERENCE_ONLY_ERROR, CORRECT)

OUTCOME_COLUMNS = ("model", "finding", "image_id", "patient_id", "split", "label", "probability", "prediction")

AGREEMENT_COLUMNS = (
    "model",
    "finding",
    "cohort_label",
    "reference_label",
    "n",
    "share",
    "n_rows",
    "n_patients",
    "kappa",
)
"""Columns of `LabelAudit.agreement` (``label_agreement.csv``): one row per cell of the 2 x 2 table of cohort label
(0/1) by reference label (0/1) on the rows with both labels; ``n`` rows in the cell, ``share`` = n / n_rows;
``n_rows``, ``n_patients`` and Cohen's ``kappa`` of the whole table (repeated on its four rows)."""

AUDIT_COLUMNS = (
    "model",
    "finding",
    "n_rows",
    "n_patients",
    "kappa",
    "n_cohort_positive",
    "n_reference_positive",
    "auroc_cohort",
    "auroc_cohort_ci_low",
    "auroc_cohort_ci_high",
    "auroc_reference",
    "auroc_reference_ci_low",
    "auroc_reference_ci_high",
    "identifier_auroc_cohort",
    "identifier_auroc_cohort_ci_low",
    "identifier_auroc_cohort_ci_high",
    "identifier_auroc_reference",
    "identifier_auroc_reference_ci_low",
    "identifier_auroc_reference_ci_high",
    "split",
    "n_split_rows",
    "n_split_patients",
    "threshold",
    "f1_cohort",
    "f1_reference",
    "n_misclassified",
    "n_model_error",
    "model_error_share",
    "model_error_ci_low",
    "model_error_ci_high",
    "n_label_error",
    "label_error_share",
    "label_error_ci_low",
    "label_error_ci_high",
    "n_label_error_false_positive",
    "n_label_error_false_negative",
    "n_reference_only_error",
    "n_flips",
    "flip_delta_f1_cohort",
    "flip_cohort_ci_low",
    "flip_cohort_ci_high",
    "flip_delta_f1_reference",
    "flip_reference_ci_low",
    "flip_reference_ci_high",
    "n_bootstrap",
    "auroc_cohort_n_dropped",
    "auroc_reference_n_dropped",
    "identifier_auroc_cohort_n_dropped",
    "identifier_auroc_reference_n_dropped",
    "error_share_n_dropped",
)
"""Columns of `LabelAudit.audit` (``label_audit.csv``), one row per (model, finding).

On every row with both labels: ``n_rows``, ``n_patients``, ``kappa`` (cohort vs reference label), positives by
each label; ``auroc_cohort`` / ``auroc_reference``: the model's AUROC against each label set, with patient-
bootstrap 95% CIs; ``identifier_auroc_cohort`` / ``identifier_auroc_reference``: the identifier score's AUROC
for misclassification defined by the cohort label and by the reference label (NaN without an identifier
score).

On the rows of ``split`` with both labels (``n_split_rows``, ``n_split_patients``): ``threshold`` (the pair's
operating threshold, a probability), ``f1_cohort`` / ``f1_reference`` (F1 of the predictions against each
label set); ``n_misclassified`` (by the cohort label) = ``n_model_error`` + ``n_label_error``, their shares of
``n_misclassified`` with patient-bootstrap 95% CIs (model_error_share = 1 - label_error_share);
``n_label_error_false_positive`` (the cohort says negative, the model and the reference positive) and
``..._false_negative``; ``n_reference_only_error`` (wrong by the reference, right by the cohort label);
``n_flips``, ``flip_delta_f1_cohort`` and ``flip_delta_f1_reference``: F1 after minus before flipping, against
each label set, with paired patient-bootstrap 95% CIs (NaN without flipped predictions).

Resampling: every interval draws ``n_bootstrap`` patient resamples. Those on which the statistic is undefined
are left out of its interval and counted: ``<auroc>_n_dropped`` for each AUROC (resamples with one class),
``error_share_n_dropped`` for the two error shares (resamples without a misclassified row; one count, as both
shares come from the same resamples). The F1 changes are defined on every resample (F1 = 0 when undefined).
NaN where the interval is not computed.
"""

CASE_COLUMNS = (
    "model",
    "finding",
    "image_id",
    "patient_id",
    "split",
    "label",
    "reference_label",
    "prediction",
    "misclassified",
    "reference_misclassified",
    "verdict",
)
"""Columns of `LabelAudit.cases`: one row per (model, finding, image) with both labels; ``label`` the cohort's,
``reference_label`` the reference's, ``verdict`` one of `VERDICTS` (every split: filter on ``split``)."""


@dataclass(frozen=True)
class LabelAudit:
    """The label audit of one or more (model, finding) pairs: long tables (see `AGREEMENT_COLUMNS`,
    `AUDIT_COLUMNS`, `CASE_COLUMNS`) that become ``label_agreement.csv`` and ``label_audit.csv``."""

    agreement: pd.DataFrame
    audit: pd.DataFrame
    cases: pd.DataFrame


def cohen_kappa(counts) -> float:
    """Cohen's kappa of a 2 x 2 table of counts (rows: one rater's 0/1, columns: the other's); NaN when the
    chance agreement is 1 (both raters gave one and the same label to every row) or the table is empty."""
    table = np.asarray(counts, dtype="float64")
    n = table.sum()
    if n == 0:
        return float("nan")
    observed = np.trace(table) / n
    chance = float(table.sum(axis=1) @ table.sum(axis=0)) / n**2
    return float("nan") if chance == 1.0 else float((observed - chance) / (1.0 - chance))


def agreement_counts(cohort_label, reference_label) -> np.ndarray:
    """(2, 2) int64 counts: [cohort label 0/1, reference label 0/1] over rows where both are 0/1."""
    cohort = as_binary(cohort_label, "cohort_label")
    reference = as_binary(reference_label, "reference_label", len(cohort))
    return np.bincount(2 * cohort + reference, minlength=4).reshape(2, 2).astype(np.int64)


def classify_against_reference(label, reference_label, prediction) -> np.ndarray:
    """(n,) verdict per row (one of `VERDICTS`) from (n,) 0/1 cohort labels, reference labels and predictions."""
    y = as_binary(label, "label")
    reference = as_binary(reference_label, "reference_label", len(y))
    pred = as_binary(prediction, "prediction", len(y))
    wrong, reference_wrong = pred != y, pred != reference
    return np.select(
        [wrong & reference_wrong, wrong, reference_wrong], [MODEL_ERROR, LABEL_ERROR, REFERENCE_ONLY_ERROR], CORRECT
    )


def _interval_columns(result, prefix: str) -> dict[str, float]:
    """``{prefix, prefix_ci_low, prefix_ci_high}`` of a `BootstrapInterval` (NaN for None)."""
    if result is None:
        return {prefix: np.nan, f"{prefix}_ci_low": np.nan, f"{prefix}_ci_high": np.nan}
    return {prefix: result.estimate, f"{prefix}_ci_low": result.ci_low, f"{prefix}_ci_high": result.ci_high}


def _dropped(result) -> float:
    """Replicates a `BootstrapInterval` left out (NaN for None, the interval not computed)."""
    return np.nan if result is None else float(result.n_dropped)


def _single_value(outcomes: pd.DataFrame, column: str) -> str:
    values = pd.unique(outcomes[column])
    if len(values) != 1:
        raise ValueError(f"outcomes must hold one (model, finding) pair; column {column!r} has {len(values)} values")
    return values[0]


def _identifier_score(rows: pd.DataFrame, identifier_score: pd.Series | None) -> np.ndarray | None:
    """(n_rows,) identifier score of ``rows``: ``identifier_score`` by image id, else the rows'
    ``identifier_probability`` column, else None."""
    if identifier_score is None:
        if "identifier_probability" not in rows.columns:
            return None
        return rows["identifier_probability"].to_numpy(dtype="float64")
    score = pd.Series(identifier_score, dtype="float64").reindex(pd.Index(rows["image_id"].astype("string")))
    if score.isna().any():
        raise ValueError("identifier_score has no value for some rows with both labels")
    return score.to_numpy()


def _flip_columns(flipped, prediction, truths: dict[str, np.ndarray], patients, bootstrap: dict) -> dict:
    """``n_flips`` and, per label set of ``truths``, ``flip_delta_f1_<set>`` with its paired patient-bootstrap
    CI (``flip_<set>_ci_low/high``); NaN when ``flipped`` is None."""
    columns: dict[str, float] = {"n_flips": np.nan if flipped is None else int(np.sum(flipped != prediction))}
    for label_set, truth in truths.items():
        change = (
            None if flipped is None else paired_bootstrap_f1_change(truth, prediction, flipped, patients, **bootstrap)
        )
        interval = _interval_columns(change, f"flip_{label_set}")
        columns.update({f"flip_delta_f1_{label_set}": interval.pop(f"flip_{label_set}"), **interval})
    return columns


def audit_pair(
    outcomes: pd.DataFrame,
    reference: pd.Series,
    *,
    identifier_score: pd.Series | None = None,
    split: str | None = "test",
    n_bootstrap: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> LabelAudit:
    """The label audit of one (model, finding) pair.

    Args:
        outcomes: the pair's rows of the pipeline's ``outcomes`` table: `OUTCOME_COLUMNS` (one model and one
            finding; ``label`` the cohort's 0/1 label, ``prediction`` 0/1 at ``threshold``), optionally
            ``threshold``, ``identifier_probability`` (the identifier score by default) and
            ``flipped_prediction`` (0/1 after corrective flipping).
        reference: reference label per image (1.0 / 0.0 / NaN), indexed by image id; rows without one (or
            absent) are left out.
        identifier_score: score of misclassification per image id (e.g. the out-of-fold identifier scores the
            identifier AUROC is reported on); default the ``identifier_probability`` column, if any.
        split: the split whose rows the verdicts, F1 and flip result use (``None``: every row).
        n_bootstrap, seed, confidence: of every patient bootstrap.

    Returns:
        `LabelAudit` with one pair's agreement (4 rows), audit (1 row) and cases.

    Raises:
        ValueError when ``outcomes`` lacks a column, holds several pairs, or no row has a reference label.
    """
    missing = [column for column in OUTCOME_COLUMNS if column not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lacks column(s) {', '.join(missing)}")
    tag = {"model": _single_value(outcomes, "model"), "finding": _single_value(outcomes, "finding")}
    ids = pd.Index(outcomes["image_id"].astype("string"))
    reference_label = pd.Series(reference, dtype="float64").reindex(ids).to_numpy()
    both = ~np.isnan(reference_label)
    if not both.any():
        raise ValueError(f"no row of {tag['model']} · {tag['finding']} has a reference label")
    rows = outcomes.loc[both]
    y = as_binary(rows["label"], "label")
    reference_y = as_binary(reference_label[both], "reference")
    pred = as_binary(rows["prediction"], "prediction", len(y))
    patients = rows["patient_id"].to_numpy(dtype=object)
    probability = rows["probability"].to_numpy(dtype="float64")
    verdict = classify_against_reference(y, reference_y, pred)

    counts = agreement_counts(y, reference_y)
    kappa = cohen_kappa(counts)
    n_patients = int(pd.unique(patients).size)
    agreement = pd.DataFrame(
        [
            {
                **tag,
                "cohort_label": c,
                "reference_label": r,
                "n": int(counts[c, r]),
                "share": counts[c, r] / len(y),
                "n_rows": len(y),
                "n_patients": n_patients,
                "kappa": kappa,
            }
            for c in (0, 1)
            for r in (0, 1)
        ],
        columns=list(AGREEMENT_COLUMNS),
    )

    score = _identifier_score(rows, identifier_score)
    in_split = np.ones(len(y), dtype=bool) if split is None else rows["split"].to_numpy() == split
    y_s, ref_s, pred_s, patients_s = y[in_split], reference_y[in_split], pred[in_split], patients[in_split]
    verdict_s = verdict[in_split]
    wrong_s = (pred_s != y_s).astype(np.int64)
    label_error_s = (verdict_s == LABEL_ERROR).astype(np.int64)
    model_error_s = (verdict_s == MODEL_ERROR).astype(np.int64)
    bootstrap = dict(n_replicates=n_bootstrap, seed=seed, confidence=confidence)
    has_split_rows = bool(in_split.any())
    model_share = label_share = None
    if has_split_rows:  # one set of resamples for both shares of the misclassified rows
        shares = bootstrap_ratios({"model": model_error_s, "label": label_error_s}, wrong_s, patients_s, **bootstrap)
        model_share, label_share = shares["model"], shares["label"]
    flipped = None
    if "flipped_prediction" in rows.columns and has_split_rows:
        flipped = as_binary(rows["flipped_prediction"].to_numpy()[in_split], "flipped_prediction", len(y_s))
    flip_columns = _flip_columns(flipped, pred_s, {"cohort": y_s, "reference": ref_s}, patients_s, bootstrap)

    def auroc(truth, values, prefix: str) -> dict[str, float]:
        result = None if values is None else bootstrap_auroc(truth, values, patients, **bootstrap)
        return {**_interval_columns(result, prefix), f"{prefix}_n_dropped": _dropped(result)}

    def share(result, prefix: str) -> dict[str, float]:
        columns = _interval_columns(result, prefix)
        return {f"{prefix}_share": columns.pop(prefix), **columns}

    thresholds = pd.unique(rows["threshold"]) if "threshold" in rows.columns else []
    audit = pd.DataFrame(
        [
            {
                **tag,
                "n_rows": len(y),
                "n_patients": n_patients,
                "kappa": kappa,
                "n_cohort_positive": int(y.sum()),
                "n_reference_positive": int(reference_y.sum()),
                **auroc(y, probability, "auroc_cohort"),
                **auroc(reference_y, probability, "auroc_reference"),
                **auroc((pred != y).astype(np.int64), score, "identifier_auroc_cohort"),
                **auroc((pred != reference_y).astype(np.int64), score, "identifier_auroc_reference"),
                "split": split if split is not None else "all",
                "n_split_rows": int(in_split.sum()),
                "n_split_patients": int(pd.unique(patients_s).size),
                "threshold": float(thresholds[0]) if len(thresholds) == 1 else np.nan,
                "f1_cohort": binary_metrics(y_s, pred_s)["f1"] if has_split_rows else np.nan,
                "f1_reference": binary_metrics(ref_s, pred_s)["f1"] if has_split_rows else np.nan,
                "n_misclassified": int(wrong_s.sum()),
                "n_model_error": int(model_error_s.sum()),
                **share(model_share, "model_error"),
                "n_label_error": int(label_error_s.sum()),
                **share(label_share, "label_error"),
                "n_label_error_false_positive": int(np.sum((label_error_s == 1) & (pred_s == 1))),
                "n_label_error_false_negative": int(np.sum((label_error_s == 1) & (pred_s == 0))),
                "n_reference_only_error": int(np.sum(verdict_s == REFERENCE_ONLY_ERROR)),
                **flip_columns,
                "n_bootstrap": int(n_bootstrap),
                "error_share_n_dropped": _dropped(model_share),
            }
        ],
        columns=list(AUDIT_COLUMNS),
    )

    cases = pd.DataFrame(
        {
            **tag,
            "image_id": ids[both].to_numpy(),
            "patient_id": patients,
            "split": rows["split"].to_numpy(),
            "label": y,
            "reference_label": reference_y,
            "prediction": pred,
            "misclassified": (pred != y).astype(int),
            "reference_misclassified": (pred != reference_y).astype(int),
            "verdict": verdict,
        },
        columns=list(CASE_COLUMNS),
    )
    return LabelAudit(agreement=agreement, audit=audit, cases=cases)
