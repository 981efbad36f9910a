"""Prediction import on the four real (and differently formatted) shared files, and every validation rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrfail.errors import PredictionsError
from cxrfail.predictions import (
    check_coverage,
    common_ids,
    load_predictions,
    load_predictions_csv,
)


def test_shared_files_load_under_canonical_names_whatever_their_header(demo_models, shared_demo_dir):
    assert [m.name for m in demo_models] == [
        "densenet121_1epoch",
        "densenet121_jrzech",
        "densenet121_nih25",
        "densenet121_nih25_lrdecay033",
    ]
    reference = set(demo_models[0].probabilities.columns)
    for model in demo_models:
        assert set(model.probabilities.columns) == reference
        assert model.probabilities.shape == (22433, 15)
        assert "Pleural Effusion" in model.probabilities and "Lung Lesion" in model.probabilities
    # nih25 has no prob_ prefix and another column order: values must land under the right finding.
    raw = pd.read_csv(shared_demo_dir / "predictions" / "densenet121_nih25.csv").set_index("Image Index")
    nih25 = demo_models[2].probabilities
    np.testing.assert_allclose(nih25.loc[raw.index, "Pleural Effusion"], raw["Effusion"])
    np.testing.assert_allclose(nih25.loc[raw.index, "Pleural Thickening"], raw["Pleural_Thickening"])
    np.testing.assert_allclose(nih25["Lung Lesion"], np.maximum(nih25["Mass"], nih25["Nodule"]))
    assert "Lung Lesion" in demo_models[2].notes


def test_every_shared_model_covers_the_demo_cohort(demo_models, demo_cohort):
    coverage = check_coverage(demo_cohort, demo_models)
    assert all(c.n_matched == 22433 and c.n_not_in_cohort == 0 for c in coverage)
    assert len(common_ids(demo_cohort, demo_models)) == 22433


def _write(tmp_path, text, name="model.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("image_id,Edema\na,0.2\nb,1.5\n", r"column 'Edema': probabilities outside \[0, 1\].*line 3.*logits"),
        ("image_id,Edema\na,0.2\nb,\n", r"column 'Edema': missing \(NaN or empty\) probabilities.*line 3"),
        ("image_id,Edema\na,0.2\nb,NaN\n", r"column 'Edema': missing \(NaN or empty\) probabilities.*line 3"),
        ("image_id,Edema\na,0.2\nb,high\n", r"column 'Edema': cells that are not numbers.*line 3"),
        ("image_id,Edema\na,0.2\na,0.3\n", r"column 'image_id': duplicate ids.*line 2, line 3"),
        ("image_id,Edema,notes\na,0.2,x\n", r"columns that are not finding names: 'notes'"),
        ("image_id,Effusion,Pleural Effusion\na,0.2,0.3\n", r"same finding: Pleural Effusion"),
        ("name,Edema\na,0.2\n", r"no id column"),
        ("image_id,Edema\n", r"header but no rows"),
        ("", r"the file is empty"),
    ],
)
def test_bad_prediction_files_are_refused_with_specifics(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(PredictionsError, match=message) as info:
        load_predictions_csv(path)
    assert str(path) in str(info.value)


def test_overlap_below_the_minimum_is_refused_with_counts(tmp_path, demo_cohort):
    ids = list(demo_cohort.table.index[:5]) + [f"other_{i}.png" for i in range(5)]
    path = _write(tmp_path, "image_id,Edema\n" + "".join(f"{i},0.5\n" for i in ids))
    model = load_predictions_csv(path)
    with pytest.raises(PredictionsError, match=r"only 5 of 10 predicted ids \(50%\).*other_0.png"):
        check_coverage(demo_cohort, [model], min_overlap=0.9)
    (report,) = check_coverage(demo_cohort, [model], min_overlap=0.5)
    assert (report.n_matched, report.n_not_in_cohort) == (5, 5)


def test_model_names_must_be_distinct(tmp_path):
    a = _write(tmp_path, "image_id,Edema\nx,0.1\n", "a.csv")
    (tmp_path / "sub").mkdir()
    b = _write(tmp_path / "sub", "image_id,Edema\nx,0.1\n", "a.csv")
    with pytest.raises(PredictionsError, match="model name 'a'"):
        load_predictions([a, b])
    assert [m.name for m in load_predictions([a, b], ["one", "two"])] == ["one", "two"]
