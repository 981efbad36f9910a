"""Issue 21 items 4 and 5: every cache file is checked (analysis ``meta.json``, the figure pack's ``pack.json``,
the ONNX export keyed by the model's weights digest); a damaged entry is recomputed, never served, never a
KeyError; a cache that cannot be written never fails inference."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrfail.cache import META_FILE, TableStore

_FIXTURES = Path(__file__).resolve().parents[1] / "inference" / "conftest.py"
_spec = importlib.util.spec_from_file_location("inference_fixtures", _FIXTURES)
inference_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inference_fixtures)


def _small_inputs(folder: Path):
    from cxrfail.cohort import load_generic_csv
    from cxrfail.predictions import load_predictions

    (folder / "cohort.csv").write_text("id,pid,Edema\n" + "".join(f"i{n},p{n},{n % 2}\n" for n in range(80)))
    (folder / "m.csv").write_text("image_id,Edema\n" + "".join(f"i{n},{(n % 7) / 7:.3f}\n" for n in range(80)))
    cohort = load_generic_csv(folder / "cohort.csv", {"image_id": "id", "patient_id": "pid"})
    return cohort, load_predictions([folder / "m.csv"], None)


def _run(folder: Path, cohort, models):
    from cxrfail.analysis.config import AnalysisConfig
    from cxrfail.analysis.runner import run_analysis

    config = AnalysisConfig(
        findings=("Edema",),
        feature_sets=("own",),
        identifier_feature_set="own",
        n_bootstrap=100,
        n_folds=2,
        min_subgroup_n=5,
    )
    messages = []
    result = run_analysis(
        cohort,
        models,
        config,
        cache_dir=folder / "cache",
        n_jobs=1,
        progress=lambda fraction, message: messages.append(message),
    )
    return result, "loaded from cache" in messages


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analysis")
    cohort, models = _small_inputs(folder)
    result, from_cache = _run(folder, cohort, models)
    assert not from_cache
    [entry] = list((folder / "cache" / "analysis").iterdir())
    return folder, cohort, models, result, entry


def test_an_edited_meta_json_is_recomputed_not_served(cached_run):
    folder, cohort, models, first, entry = cached_run
    meta = json.loads((entry / META_FILE).read_text())
    meta["cohort_summary"]["n_test"] = 999_999
    (entry / META_FILE).write_text(json.dumps(meta, indent=1))
    result, from_cache = _run(folder, cohort, models)
    assert not from_cache and result.cohort_summary["n_test"] == first.cohort_summary["n_test"]
    assert _run(folder, cohort, models)[1]  # stored again, served again


def test_a_renamed_meta_key_is_recomputed_never_a_key_error(cached_run):
    folder, cohort, models, first, entry = cached_run
    text = (entry / META_FILE).read_text()
    (entry / META_FILE).write_text(text.replace('"cohort_summary"', '"cohort_summery"', 1))
    result, from_cache = _run(folder, cohort, models)
    assert not from_cache and result.cohort_summary == first.cohort_summary


def test_single_bit_flips_in_meta_json_never_serve_other_metadata(tmp_path):
    store = TableStore(tmp_path)
    meta = {
        "cohort_summary": {"n_test": 40, "age_median": 57.5, "unit": "image"},
        "models": ["m"],
        "pairs": [["m", "Edema", [], None, []]],
        "notes": {"coverage": "m: 80 of 80"},
    }
    tables = {"rates": __import__("pandas").DataFrame({"auroc": [0.8125]})}
    folder = store.save("k", tables, meta)
    good = (folder / META_FILE).read_bytes()
    expected = store.load("k")[1]
    generator = random.Random(0)
    served_other = 0
    for _ in range(300):
        position, bit = generator.randrange(len(good)), 1 << generator.randrange(8)
        store.save("k", tables, meta)
        damaged = bytearray(good)
        damaged[position] ^= bit
        (folder / META_FILE).write_bytes(bytes(damaged))
        loaded = store.load("k")
        served_other += loaded is not None and loaded[1] != expected
    assert served_other == 0


def test_an_edited_figure_pack_index_is_dropped(tmp_path):
    from cxrfail.cache import sealed_json
    from cxrfail.report import PACK_INDEX, _verified_pack

    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "a.html").write_text("<html>figure</html>")
    from cxrfail.files import file_sha256

    index = {"files": {"a": ["a.html"]}, "note": None, "sha256": {"a.html": file_sha256(pack / "a.html")}}
    (pack / PACK_INDEX).write_text(sealed_json(index))
    assert _verified_pack(pack) == index
    edited = json.loads((pack / PACK_INDEX).read_text())
    edited["note"] = "figures were not rendered"
    (pack / PACK_INDEX).write_text(json.dumps(edited))
    assert _verified_pack(pack) is None and not pack.exists()


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from cxrfail.inference.models import load_model

    folder = tmp_path_factory.mktemp("models")
    return [load_model(inference_fixtures.write_card_model(folder / f"m{seed}", seed=seed)) for seed in (0, 1)]


@pytest.fixture(scope="module")
def images():
    folder = inference_fixtures.NIH_IMAGES
    if not folder.is_dir():
        pytest.skip("shared images not found")
    return sorted(folder.glob("*.png"))[:2]


def test_another_models_onnx_export_copied_into_place_is_not_served(two_models, images, tmp_path):
    pytest.importorskip("onnxruntime")
    from cxrfail.inference.cache import PredictionCache
    from cxrfail.inference.engine import InferenceEngine

    first = two_models[0]
    cache = PredictionCache(tmp_path / "cache")
    engines = [InferenceEngine(model, device="cpu", num_workers=0, cache=cache) for model in two_models]
    assert [engine.prepare() for engine in engines] == ["onnxruntime", "onnxruntime"]
    [first_export] = (cache.root / engines[0].cache_key).glob("*.onnx")
    [second_export] = (cache.root / engines[1].cache_key).glob("*.onnx")
    shutil.copy(second_export, first_export)
    shutil.copy(
        second_export.with_name(second_export.name + ".sha256"), first_export.with_name(first_export.name + ".sha256")
    )
    served = (
        InferenceEngine(first, device="cpu", num_workers=0, cache=PredictionCache(tmp_path / "other"))
        .run(images)
        .probabilities
    )
    fresh = InferenceEngine(first, device="cpu", num_workers=0, cache=cache)
    fresh.prepare()
    from_copied_place = fresh.run(images).probabilities
    np.testing.assert_allclose(from_copied_place.to_numpy(), served.to_numpy(), atol=1e-4)
    assert first_export.read_bytes() != second_export.read_bytes()  # exported again in place


def test_an_unwritable_cache_never_fails_inference(two_models, images, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from cxrfail.cli import main

    card = inference_fixtures.write_card_model(tmp_path / "model", seed=0)
    folder = tmp_path / "images"
    folder.mkdir()
    for image in images:
        shutil.copy(image, folder / image.name)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache's parent folder should be")
    for cache_dir in (blocked / "cache", Path("/sys/cxrfail-cache")):
        out = tmp_path / "out.csv"
        status = main(
            [
                "infer",
                "--model",
                str(card),
                "--images",
                str(folder),
                "--out",
                str(out),
                "--cache-dir",
                str(cache_dir),
                "--num-workers",
                "0",
            ]
        )
        assert status == 0, capsys.readouterr().err
        assert len(out.read_text().splitlines()) == 1 + len(images)
