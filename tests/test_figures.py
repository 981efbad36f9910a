"""Unit tests of the plotly figure builders on small tables built here (no pipeline run)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cxrfail import figures
from cxrfail.analysis.config import AnalysisConfig
from cxrfail.analysis.result import AnalysisResult
from cxrfail.analysis.subgroups import wilson_interval

MODELS = ("model_a", "model_b")
FINDINGS = ("Edema", "Lung Lesion")


def fake_result(n: int = 200, seed: int = 0) -> AnalysisResult:
    """An `AnalysisResult` rebuilt from long tables with its columns, filled with plausible random numbers."""
    rng = np.random.default_rng(seed)
    ids = [f"img{i:04d}.png" for i in range(n)]
    patients = [f"p{i // 2}" for i in range(n)]
    split = np.where(np.arange(n) % 4 < 2, "calibration", "test")
    outcomes, performance, rates, regression, identifiers, flip, curves, scores, shap = ([] for _ in range(9))
    for model in MODELS:
        for finding in FINDINGS:
            label = rng.integers(0, 2, n)
            probability = np.clip(label * 0.3 + rng.uniform(0, 0.7, n), 0, 1)
            prediction = (probability >= 0.5).astype(int)
            misclassified = prediction != label
            identifier = np.clip(misclassified * 0.3 + rng.uniform(0, 0.7, n), 0, 1)
            outcomes.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "finding": finding,
                        "image_id": ids,
                        "patient_id": patients,
                        "split": split,
                        "label": label.astype(float),
                        "probability": probability,
                        "threshold": 0.5,
                        "prediction": prediction,
                        "misclassified": misclassified,
                        "identifier_probability": identifier,
                        "flipped_prediction": np.where(identifier >= 0.6, 1 - prediction, prediction),
                    }
                )
            )
            performance.append((model, finding, n, int(label.sum()), rng.uniform(0.7, 0.9), 0.5, rng.uniform(0.4, 0.6)))
            for subgroup, levels in (
                ("sex", ("F", "M")),
                ("age_bin", ("<40", "40-59", "60-79", ">=80")),
                ("Support Devices", ("0", "1")),
            ):
                for level in levels:
                    count = int(rng.integers(10, 80))
                    k = int(rng.integers(0, count))
                    low, high = wilson_interval(k, count)
                    rates.append(
                        (model, finding, subgroup, level, count, k, k / count, float(low), float(high), count >= 30)
                    )
            for term in ("Intercept", "age", "sex[M]", "view[AP]", "lung_lesion"):
                odds = float(np.exp(rng.normal(0, 0.5)))
                p = float(rng.uniform(0, 0.1))
                regression.append(
                    (
                        model,
                        finding,
                        term,
                        odds,
                        odds / 1.5,
                        odds * 1.5,
                        p,
                        min(1, p * 4),
                        min(1, p * 2),
                        n // 2,
                        True,
                        "",
                    )
                )
            for feature_set, oracle in (("all_models+demographics", False), ("oracle_findings", True)):
                identifiers.append(
                    (model, finding, "hist_gradient_boosting", feature_set, oracle, 0.7, 0.65, 0.75, 0.6, 0.55, 0.65, n)
                )
            flip.append((model, finding, 0.6, 12, 0.5, 0.52, 0.02, -0.01, 0.05, 0.4, 0.45, 0.6, 0.62, True))
            for tau in np.linspace(0.5, 0.95, 10):
                curves.append(
                    (
                        model,
                        finding,
                        tau,
                        int(50 * (1 - tau)),
                        0.5,
                        0.5 + (0.9 - tau) / 10,
                        (0.9 - tau) / 10,
                        (0.9 - tau) / 10 - 0.02,
                        (0.9 - tau) / 10 + 0.02,
                    )
                )
            scores.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "finding": finding,
                        "learner": "hist_gradient_boosting",
                        "feature_set": "all_models+demographics",
                        "image_id": ids,
                        "misclassified": misclassified,
                        "identifier_score": identifier,
                    }
                )
            )
            for image_id in ids[:20]:
                for feature in ("age", "sex", "model_a:Edema", "Lung Lesion", "Support Devices"):
                    shap.append(
                        (model, finding, image_id, feature, float(rng.normal(0, 0.2)), float(rng.uniform(0, 90)))
                    )
    tables = {
        "performance": pd.DataFrame(
            performance, columns=["model", "finding", "n", "n_pos", "auroc", "threshold", "f1"]
        ).assign(n_test=n // 2),
        "subgroup_rates": _with_reference_rows(
            pd.DataFrame(
                rates,
                columns=[
                    "model",
                    "finding",
                    "subgroup",
                    "level",
                    "n",
                    "n_misclassified",
                    "rate",
                    "ci_low",
                    "ci_high",
                    "sufficient",
                ],
            ),
            population_n=n // 2,
        ),
        "regression": pd.DataFrame(
            regression,
            columns=[
                "model",
                "finding",
                "term",
                "odds_ratio",
                "ci_low",
                "ci_high",
                "p_value",
                "q_holm",
                "q_bh",
                "n",
                "converged",
                "note",
            ],
        ).assign(family="all rows", q_family="all rows"),
        "identifiers": pd.DataFrame(
            identifiers,
            columns=[
                "model",
                "finding",
                "learner",
                "feature_set",
                "oracle",
                "auroc",
                "ci_low",
                "ci_high",
                "baseline_auroc",
                "baseline_ci_low",
                "baseline_ci_high",
                "n",
            ],
        ).assign(
            delta_vs_probability_only=0.01,
            delta_vs_probability_only_ci_low=-0.01,
            delta_vs_probability_only_ci_high=0.03,
            n_patients=n // 4,
        ),
        "flip": pd.DataFrame(
            flip,
            columns=[
                "model",
                "finding",
                "tau",
                "n_flips",
                "f1_before",
                "f1_after",
                "delta_f1",
                "ci_low",
                "ci_high",
                "precision_before",
                "precision_after",
                "recall_before",
                "recall_after",
                "improved",
            ],
        ).assign(calibration_flips=25, exploratory=False),
        "flip_curves": pd.DataFrame(
            curves,
            columns=["model", "finding", "tau", "n_flips", "f1_before", "f1_after", "delta_f1", "ci_low", "ci_high"],
        ),
        "outcomes": pd.concat(outcomes, ignore_index=True),
        "identifier_scores": pd.concat(scores, ignore_index=True),
        "shap_values": pd.DataFrame(
            shap, columns=["model", "finding", "image_id", "feature", "shap_value", "feature_value"]
        ),
    }
    config = AnalysisConfig(
        findings=FINDINGS, feature_sets=("all_models+demographics",), identifier_feature_set="all_models+demographics"
    )
    meta = {
        "cohort_summary": {"unit": "image"},
        "models": list(MODELS),
        "notes": {"Support Devices": DEVICES_NOTE},
        "pairs": [
            [m, f, ["hist_gradient_boosting", "all_models+demographics"], "full", []] for m in MODELS for f in FINDINGS
        ],
    }
    return AnalysisResult.from_tables(config, None, tables, meta)


DEVICES_NOTE = "read from the images by non-radiologist readers"


def _with_reference_rows(rates: pd.DataFrame, population_n: int) -> pd.DataFrame:
    """The level rows with the columns `subgroup_rates` adds (patients, Wilson, design effect), plus one
    reference row per subgroup: sex and age cover every test row, support devices a non-random subset."""
    rates = rates.assign(
        n_patients=rates["n"] // 2 + 1,
        wilson_low=rates["ci_low"],
        wilson_high=rates["ci_high"],
        design_effect=1.0,
        is_reference=False,
    )
    references = []
    for (model, finding, subgroup), group in rates.groupby(["model", "finding", "subgroup"], sort=False):
        k, count = int(group["n_misclassified"].sum()), int(group["n"].sum())
        subset = subgroup == "Support Devices"
        references.append(
            {
                "model": model,
                "finding": finding,
                "subgroup": subgroup,
                "level": "all known",
                "n": count,
                "n_misclassified": k,
                "rate": k / count,
                "ci_low": k / count * 0.8,
                "ci_high": min(1.0, k / count * 1.2),
                "sufficient": True,
                "n_patients": count // 2,
                "wilson_low": k / count * 0.9,
                "wilson_high": k / count * 1.1,
                "design_effect": 1.5,
                "is_reference": True,
                "subset_n": count,
                "population_n": population_n if subset else count,
                "is_subset": subset,
                "random_sample": not subset,
            }
        )
    rates = rates.assign(subset_n=0, population_n=0, is_subset=False, random_sample=True)
    for key, group in rates.groupby(["model", "finding", "subgroup"], sort=False):
        reference = next(r for r in references if (r["model"], r["finding"], r["subgroup"]) == key)
        rates.loc[group.index, ["subset_n", "population_n", "is_subset", "random_sample"]] = [
            reference["subset_n"],
            reference["population_n"],
            reference["is_subset"],
            reference["random_sample"],
        ]
    return pd.concat([pd.DataFrame(references), rates], ignore_index=True)


@pytest.fixture(scope="module")
def result():
    return fake_result()


def _text(fig: go.Figure) -> str:
    """Everything a reader sees: title, annotations, trace text and names (wrapped footnotes joined)."""
    return re.sub(r"<br>\s*", " ", json.dumps(fig.to_plotly_json(), default=str))


def test_overall_misclassification_counts_test_rows_only(result):
    table = result.overall_misclassification()
    assert list(table.columns) == [
        "model",
        "finding",
        "n",
        "n_misclassified",
        "rate",
        "ci_low",
        "ci_high",
        "n_fp",
        "n_fn",
    ]
    assert len(table) == len(MODELS) * len(FINDINGS)
    test = result.outcomes[
        (result.outcomes["split"] == "test")
        & (result.outcomes["model"] == "model_a")
        & (result.outcomes["finding"] == "Edema")
    ]
    row = table[(table["model"] == "model_a") & (table["finding"] == "Edema")].iloc[0]
    assert row["n"] == len(test)
    assert row["n_misclassified"] == test["misclassified"].sum() == row["n_fp"] + row["n_fn"]
    assert row["ci_low"] <= row["rate"] <= row["ci_high"]


def test_effect_summary_ignores_intercept_and_counts_significant(result):
    summary = result.effect_summary()
    assert len(summary) == 4
    assert "Intercept" not in set(summary["top_term"])
    expected = result.regression[(result.regression["term"] != "Intercept") & (result.regression["q_bh"] < 0.05)]
    assert summary["n_significant"].sum() == len(expected)


def test_subgroup_rate_range_uses_sufficient_levels(result):
    spread = result.subgroup_gaps()
    assert (spread["spread"] >= 0).all()
    assert set(spread["subgroup"]) <= {"sex", "age_bin", "Support Devices"}


def test_heatmaps_have_one_cell_per_model_and_finding_and_star_lung_lesion(result):
    fig = figures.auroc_heatmap(result.performance)
    heat = fig.data[0]
    assert np.array(heat.z).shape == (len(MODELS), len(FINDINGS))
    assert "Lung Lesion*" in heat.x
    assert "Mass or Nodule" in _text(fig)
    fig = figures.misclassification_heatmap(result.overall_misclassification())
    assert "test split" in _text(fig) and "unit of analysis: image" in _text(fig)
    studies = figures.misclassification_heatmap(
        result.overall_misclassification(), context=figures.FigureContext(unit="study")
    )
    assert "unit of analysis: study" in _text(studies) and "unit of analysis: image" not in _text(studies)


def test_subgroup_figure_marks_insufficient_levels_and_device_caveat(result):
    rows = result.subgroup_rates[
        (result.subgroup_rates["model"] == "model_a") & (result.subgroup_rates["finding"] == "Edema")
    ]
    fig = figures.subgroup_rates_figure(rows, min_n=30, context=figures.FigureContext.from_result(result))
    text = _text(fig)
    n_levels = len(rows)
    assert sum(len(trace.y) for trace in fig.data) == n_levels
    if (~rows["sufficient"]).any():
        assert "insufficient (effective n < 30" in text
    assert DEVICES_NOTE in text  # the cohort note on how the subgroup was read
    assert "non-radiologist" not in _text(figures.subgroup_rates_figure(rows, min_n=30))  # no demo constants
    assert re.search(r"n=\d", text)


def test_forest_plot_shows_or_ci_p_and_q_without_intercept(result):
    rows = result.regression[(result.regression["model"] == "model_b") & (result.regression["finding"] == "Edema")]
    fig = figures.forest_plot(rows)
    assert "Intercept" not in list(fig.data[0].y)
    assert len(fig.data[0].y) == 4
    assert fig.layout.xaxis.type == "log"
    hover = " ".join(fig.data[0].customdata)  # p and q per term: in the hover (and the page's table)
    assert "p=" in hover and "q (BH)=" in hover and "Holm" in hover
    assert "p and q of each term: hover" in _text(fig)


def test_forest_plot_log_axis_ticks_read_as_decimals(result):
    rows = result.regression[(result.regression["model"] == "model_b") & (result.regression["finding"] == "Edema")]
    rows = rows.loc[rows["term"] != "Intercept"].head(2).copy()
    rows[["odds_ratio", "ci_low", "ci_high"]] = [[0.4, 0.25, 0.7], [1.5, 0.9, 1.9]]
    axis = figures.forest_plot(rows).layout.xaxis
    assert list(axis.ticktext) == ["0.2", "0.5", "1", "2"]
    assert list(axis.tickvals) == [0.2, 0.5, 1.0, 2.0]


def test_heatmap_cell_text_is_at_least_11_px(result):
    for fig in (
        figures.auroc_heatmap(result.performance),
        figures.misclassification_heatmap(result.overall_misclassification()),
        figures.effects_heatmap(result.effect_summary()),
        figures.identifier_heatmaps(result.identifiers, "hist_gradient_boosting", "all_models+demographics"),
    ):
        for trace in fig.data:
            assert trace.textfont.size >= 11, fig.layout.title.text
            assert not any("<br>" in str(t) for row in trace.text for t in row)  # one short value per cell
        if "AUROC per model" not in fig.layout.title.text:  # the rest (CIs, terms) is in the hover, said so
            assert "hover a cell" in _text(fig)


def test_legends_sit_under_the_title_and_above_the_plot(result):
    rows = result.subgroup_rates[
        (result.subgroup_rates["model"] == "model_a") & (result.subgroup_rates["finding"] == "Edema")
    ]
    fig = figures.subgroup_rates_figure(rows, min_n=30)
    legend, margin, title = fig.layout.legend, fig.layout.margin, fig.layout.title
    assert title.yref == "container" and title.y > 0.95 and title.yanchor == "top"  # in the top band
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    legend_top_px = (1 - legend.y) * fig.layout.height
    assert legend.orientation == "v" and legend_top_px >= figures.style.TITLE_PX - 0.5
    assert margin.t >= legend_top_px + entries * figures.style.LEGEND_ROW_PX


def test_term_heatmap_and_missing_term(result):
    fig = figures.term_heatmap(result.regression, "view[AP]")
    assert np.array(fig.data[0].z).shape == (2, 2)
    empty = figures.term_heatmap(result.regression, "nope")
    assert "nope" in _text(empty)


def test_identifier_heatmaps_mark_oracle(result):
    plain = figures.identifier_heatmaps(result.identifiers, "hist_gradient_boosting", "all_models+demographics")
    oracle = figures.identifier_heatmaps(result.identifiers, "hist_gradient_boosting", "oracle_findings")
    assert len(plain.data) == 2
    assert "ORACLE" not in plain.layout.title.text
    assert "ORACLE" in oracle.layout.title.text
    assert "ground-truth" in _text(oracle)


def test_roc_figure_reports_auroc(result):
    scores = result.identifier_scores[
        (result.identifier_scores["model"] == "model_a") & (result.identifier_scores["finding"] == "Edema")
    ]
    fig = figures.roc_figure(scores, outcomes=result.pair("model_a", "Edema").outcomes)
    names = [trace.name for trace in fig.data if trace.showlegend is not False]
    assert any("all_models+demographics (AUROC 0." in name for name in names)
    assert any("confidence baseline (AUROC 0." in name for name in names)
    assert "test split" in _text(fig)


def test_identifier_ladder_shows_paired_differences_and_marks_the_oracle():
    rows = []
    for model in ("model_a", "model_b"):
        for feature_set, auroc in (
            ("all_models+demographics+findings", 0.8),
            ("probability_only", 0.7),
            ("own+demographics", 0.71),
        ):
            rows.append(
                {
                    "model": model,
                    "finding": "Edema",
                    "learner": "hist_gradient_boosting",
                    "feature_set": feature_set,
                    "oracle": "findings" in feature_set,
                    "auroc": auroc,
                    "ci_low": auroc - 0.02,
                    "ci_high": auroc + 0.02,
                    "delta_vs_probability_only": auroc - 0.7,
                    "delta_vs_probability_only_ci_low": auroc - 0.71,
                    "delta_vs_probability_only_ci_high": auroc - 0.69,
                    "n": 1000,
                    "n_patients": 400,
                }
            )
    fig = figures.identifier_ladder(pd.DataFrame(rows), "hist_gradient_boosting", "Edema")
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks == ["probability_only", "own+demographics", "all_models+demographics+findings [ORACLE]"]
    assert len(fig.data) == 4  # two models x (AUROC, difference)
    np.testing.assert_allclose(fig.data[1].x, [0.0, 0.01, 0.1])
    assert "test split" in _text(fig) and "same resamples" in _text(fig)
    assert "no identifiers" in _text(figures.identifier_ladder(pd.DataFrame(rows), "logistic", "Edema"))


def test_shap_figures(result):
    rows = result.shap_values[(result.shap_values["model"] == "model_a") & (result.shap_values["finding"] == "Edema")]
    importance = figures.shap_importance(rows)
    assert importance["mean_abs_shap"].is_monotonic_decreasing
    bar = figures.shap_bar(rows, top=3)
    assert len(bar.data[0].y) == 3
    swarm = figures.shap_beeswarm(rows)
    assert len(swarm.data[0].x) == len(rows)
    waterfall = figures.shap_waterfall(rows, "img0003.png", base_value=-1.0, top=3)
    trace = waterfall.data[0]
    assert trace.y[0] == "base value" and trace.y[-1] == "output"
    image = rows.loc[rows["image_id"] == "img0003.png"]
    largest = image.loc[image["shap_value"].abs().idxmax()]
    assert trace.y[1].startswith(f"{largest['feature']} = ")  # the largest contribution comes first
    assert len(trace.y) == 3 + 1 + 2  # top 3, "other features", base and output
    assert "no SHAP values for image" in _text(figures.shap_waterfall(rows, "absent.png"))


def test_flip_figures(result):
    curve = result.flip_curves[(result.flip_curves["model"] == "model_a") & (result.flip_curves["finding"] == "Edema")]
    fig = figures.flip_curve(curve, chosen_tau=0.6, current_tau=0.7)
    text = _text(fig)
    assert "chosen on calibration" in text and "95% CI" in text
    summary = figures.flip_summary_figure(result.pair("model_a", "Edema").flip)
    assert [trace.name for trace in summary.data] == ["before", "after"]


def test_case_probabilities_one_bar_per_model(result):
    rows = result.outcomes[(result.outcomes["image_id"] == "img0001.png") & (result.outcomes["finding"] == "Edema")]
    fig = figures.case_probabilities(rows)
    assert list(fig.data[0].y) == list(MODELS)


def test_empty_inputs_give_a_message_not_an_error():
    empty = pd.DataFrame(columns=["model", "finding", "auroc", "n", "n_pos", "threshold", "f1"])
    assert "no data" in _text(figures.auroc_heatmap(empty))
    assert "no flip curve" in _text(figures.flip_curve(pd.DataFrame(columns=["tau"])))


def test_caveats_and_slug(result):
    context = figures.FigureContext.from_result(result)
    assert context.caveats(["Lung Lesion"])[0].startswith("*Lung Lesion")
    lines = context.caveats([], ["support_devices"])
    assert lines[0] == f"Support Devices: {DEVICES_NOTE}"
    assert all("Support Devices" in line for line in lines)
    assert figures.DEFAULT_CONTEXT.caveats([], ["support_devices"]) == []
    assert context.caveats([], [], oracle=True) == [figures.style.ORACLE_NOTE]
    name = figures.slug("forest", "densenet121 nih25", "Pleural Effusion")
    assert name == "forest_densenet121_nih25_pleural_effusion"
    assert figures.slug("or_heatmap", "view[AP]") == "or_heatmap_view_ap"
    assert re.fullmatch(r"[a-z0-9_-]+", figures.slug("identifier", "hgb", "all_models+demographics"))


def test_report_figures_names_are_stable_and_file_safe(result):
    built = figures.report_figures(result)
    assert {"auroc_heatmap", "misclassification_heatmap", "subgroup_effects"} <= set(built)
    assert "forest_model_a_lung_lesion" in built and "flip_curve_model_b_edema" in built
    assert "identifier_auroc_hist_gradient_boosting_oracle_findings" in built
    assert "identifier_ladder_hist_gradient_boosting_edema" in built
    assert all(re.fullmatch(r"[a-z0-9_-]+", name) for name in built)
    assert all(isinstance(fig, go.Figure) for fig in built.values())
    assert len(figures.report_figures(result, max_pairs=1)) < len(built)
    edema = figures.report_figures(result, findings=["Edema"], models=["model_a"])
    assert "forest_model_a_edema" in edema and "forest_model_b_edema" not in edema
    assert not any("lung_lesion" in name for name in edema if name.startswith(("forest", "roc", "flip")))


def test_report_catalogue_lists_the_report_figures_and_builds_each_on_request(result):
    catalogue = figures.report_catalogue(result)
    built = figures.report_figures(result)
    assert list(catalogue) == list(built)  # same names, same order
    for name, build in catalogue.items():
        fig = build()
        assert isinstance(fig, go.Figure), name
        assert fig.to_json() == built[name].to_json(), name
    assert catalogue["auroc_heatmap"]() is not catalogue["auroc_heatmap"]()  # drawn per call, not kept
    edema = figures.report_catalogue(result, findings=["Edema"], models=["model_a"], max_pairs=1)
    assert list(edema) == list(figures.report_figures(result, findings=["Edema"], models=["model_a"], max_pairs=1))
