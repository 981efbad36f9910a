"""Failure slices: a planted 3-predicate slice is found and confirmed on held-out patients; errors independent
of every column give (almost) no confirmed slice; the parts behave as documented."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrfail.analysis.config import SLICE_ERROR_KINDS, AnalysisConfig
from cxrfail.analysis.slices import (
    NOT_CONFIRMED,
    Predicate,
    across_models,
    adjust_slices_grid,
    build_search_space,
    describe,
    distinct_candidates,
    error_population,
    find_pair_slices,
    parse_predicates,
    predicates_json,
    search_sample,
    slice_columns,
    slice_mask,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slice_cohorts import TARGET, iou, synthetic_cohort

DEFAULTS = AnalysisConfig()
SETTINGS = dict(
    top_k=DEFAULTS.slice_top_k,
    min_rows=DEFAULTS.slice_min_rows,
    min_patients=DEFAULTS.slice_min_patients,
    max_predicates=DEFAULTS.slice_max_predicates,
    max_search_rows=DEFAULTS.slice_search_rows,
)


def _slices(table: pd.DataFrame, seed: int, kinds=("misclassified",)):
    return find_pair_slices(
        table,
        TARGET,
        table[TARGET].to_numpy(dtype=int),
        table["prediction"].to_numpy(),
        table["split"].to_numpy(),
        error_kinds=kinds,
        seed=seed,
        **SETTINGS,
    )


def test_planted_slice_is_found_and_confirmed_in_at_least_9_of_10_seeds():
    found = []
    for seed in range(10):
        table = synthetic_cohort(seed)
        slices = _slices(table, seed).table
        confirmed = slices.loc[slices["confirmed"]]
        best = max(
            (iou(slice_mask(table, parse_predicates(p)), table["planted"].to_numpy()) for p in confirmed["predicates"]),
            default=0.0,
        )
        found.append(best >= 0.7)
        assert not slices.empty and set(slices["error_kind"]) == {"misclassified"}
    print(f"planted slice confirmed with IoU >= 0.7 in {sum(found)} of 10 seeds")
    assert sum(found) >= 9


def test_null_cohort_confirms_slices_in_at_most_2_of_20_seeds():
    with_confirmed = []
    for seed in range(20):
        table = synthetic_cohort(100 + seed, planted=False)
        slices = _slices(table, seed, kinds=SLICE_ERROR_KINDS).table
        if len(slices) and slices["confirmed"].any():
            with_confirmed.append(seed)
        assert (slices["status"] == NOT_CONFIRMED).sum() == (~slices["confirmed"].astype(bool)).sum()
    print(f"null cohort: confirmed slices in {len(with_confirmed)} of 20 seeds {with_confirmed}")
    assert len(with_confirmed) <= 2


def test_search_never_uses_the_target_or_labels_tied_to_it():
    table = synthetic_cohort(0, n_patients=300).assign(Mass=0.0, Nodule=1.0, **{"No Finding": 0.0})
    columns = slice_columns(table, "Lung Lesion", extra_columns=["split"])
    assert "Lung Lesion" not in columns and "Mass" not in columns and "Nodule" not in columns
    assert "No Finding" not in columns and "split" in columns
    assert {"age", "sex", "view", "Edema", "Support Devices"} <= set(columns)
    assert TARGET not in slice_columns(table, TARGET)


def test_ranges_unknown_values_and_labels_in_the_search_space():
    table = synthetic_cohort(1, n_patients=300)
    space = build_search_space(table, ["age", "sex", "Support Devices"])
    age_columns = [name for name in space.names if name.startswith("age >= ")]
    assert len(age_columns) >= 3  # ranges at cut points, not fixed bins
    devices = space.meaning[space.names.index("Support Devices")]
    assert list(devices.values()) == [Predicate("Support Devices", "==", 1.0)]  # a label: "positive" only
    unknown = table["Support Devices"].isna().to_numpy()
    assert (space.codes[unknown, space.names.index("Support Devices")] == -1).all()
    assert not slice_mask(table, [Predicate("Support Devices", "==", 1.0)])[unknown].any()


def test_descriptions_and_json_round_trip():
    predicates = [
        Predicate("age", ">=", 50.0),
        Predicate("age", "<", 70.0),
        Predicate("view", "==", "AP"),
        Predicate("Edema", "==", 1.0),
    ]
    assert describe(predicates) == "50 <= age < 70 & view = AP & Edema = positive"
    text = predicates_json(predicates)
    assert json.loads(text)[0] == {"column": "age", "operator": ">=", "value": 50}
    assert describe(parse_predicates(text)) == describe(predicates)
    with pytest.raises(ValueError):
        parse_predicates("not json")


def test_slices_with_the_same_rows_are_merged_into_the_shortest():
    table = synthetic_cohort(2, n_patients=500)
    patients = table["patient_id"].to_numpy()
    older = (Predicate("age", ">=", 60.0),)
    same = (Predicate("age", ">=", 60.0), Predicate("age", ">=", 20.0))  # every age is >= 20: the same rows
    kept = distinct_candidates(
        [(same, 2.0), (older, 1.0), ((Predicate("view", "==", "AP"),), 0.5)],
        table,
        patients,
        top_k=5,
        min_rows=10,
        min_patients=5,
    )
    assert [describe(c.predicates) for c in kept] == ["age >= 60", "view = AP"]
    assert kept[0].same_rows_as  # the longer description of the same rows is kept as an alias


def test_error_populations():
    label, prediction = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])
    assert error_population("false_negative", label, prediction)[0].tolist() == [True, True, False, False]
    assert (error_population("false_negative", label, prediction)[1] & (label == 1)).tolist() == [
        False,
        True,
        False,
        False,
    ]
    assert error_population("misclassified", label, prediction)[1].tolist() == [False, True, True, False]


def test_search_sample_keeps_whole_patients():
    patients = np.repeat(np.arange(1000), 3)
    chosen = search_sample(patients, 900, seed=0)
    assert chosen.sum() <= 900 and chosen.sum() % 3 == 0
    assert pd.Series(chosen).groupby(patients).nunique().max() == 1


def test_grid_q_values_and_models_listed_together():
    table = synthetic_cohort(3)
    first = _slices(table, 0).table.assign(model="a", finding=TARGET)
    second = _slices(table, 0).table.assign(model="b", finding=TARGET)
    adjusted = adjust_slices_grid([first, second])
    assert (adjusted[0]["q_value_grid"] >= adjusted[0]["q_value"] - 1e-12).all()
    together = across_models(pd.concat(adjusted, ignore_index=True))
    assert not together.empty and (together["n_models"] == 2).all()
    assert together["models"].iloc[0] == "a, b"


def test_figures_show_confirmed_and_unconfirmed_against_the_overall_rate():
    from cxrfail.figures import slice_intervals, slices_across_models

    table = synthetic_cohort(4)
    slices = _slices(table, 0).table.assign(model="a", finding=TARGET)
    figure = slice_intervals(slices, "misclassified", title="t")
    names = {trace.name for trace in figure.data}
    assert "confirmed on held-out patients" in names
    assert sum(len(trace.x) for trace in figure.data) == len(slices)
    assert any("pair overall" in (a.text or "") for a in figure.layout.annotations)
    assert "no slice" in slice_intervals(slices.iloc[0:0], "misclassified").layout.annotations[0].text
    both = pd.concat([slices, slices.assign(model="b")], ignore_index=True)
    shared = slices_across_models(both, across_models(both))
    assert {trace.name for trace in shared.data} == {"a", "b"}
