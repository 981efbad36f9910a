"""The engine on real images: equality with a plain per-image forward pass, the cache (hit, miss, invalidation,
corruption, concurrent writers), unreadable images, and the predictions-table contract."""

from __future__ import annotations

import json
import multiprocessing
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from cxrfail.inference.cache import PredictionCache
from cxrfail.inference.engine import InferenceEngine, resolve_device
from cxrfail.inference.errors import InferenceError
from cxrfail.inference.images import preprocess, read_image
from cxrfail.inference.models import LoadedModel, load_model


def plain_forward(model: LoadedModel, paths) -> np.ndarray:
    """What a notebook would do: decode, preprocess and forward one image at a time."""
    rows = []
    with torch.no_grad():
        for path in paths:
            x = preprocess(read_image(path), model.card.preprocessing)[None]
            rows.append(torch.sigmoid(model.module(x))[0, list(model.output_indices)].numpy())
    return np.stack(rows)


@pytest.fixture
def image_dir(tmp_path, nih_images, chest_dicom_uncompressed):
    """Five real PNGs and the real DICOM chest radiograph (uncompressed: faster to decode) in a subfolder."""
    folder = tmp_path / "images"
    (folder / "dicom").mkdir(parents=True)
    for path in nih_images[:5]:
        shutil.copy(path, folder / path.name)
    shutil.copy(chest_dicom_uncompressed, folder / "dicom" / chest_dicom_uncompressed.name)
    return folder


def test_engine_equals_plain_forward_for_a_224px_xrv_densenet(nih_images, xrv_densenet_weights):
    spec = f"xrv:densenet121@{xrv_densenet_weights}"
    threads = torch.get_num_threads()
    engine = InferenceEngine(load_model(spec), device="cpu", batch_size=2, num_workers=2, streams=2)
    result = engine.run(nih_images[:3])
    assert torch.get_num_threads() == threads  # divided among the streams during the run only
    assert list(result.probabilities.index) == [p.name for p in nih_images[:3]]
    assert result.probabilities.columns[7] == "Pleural Effusion"
    expected = plain_forward(load_model(spec), nih_images[:3])
    assert 0.01 < expected.mean() < 0.99 and expected.std() > 0.01  # real probabilities, not saturated ones
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected, rtol=0, atol=1e-5)


def test_engine_on_a_folder_with_jpeg2000_dicom_equals_plain_forward(image_dir, chest_dicom, loaded_card_model):
    (image_dir / "dicom" / "RG1_UNCI.dcm").unlink()
    shutil.copy(chest_dicom, image_dir / "dicom" / chest_dicom.name)
    engine = InferenceEngine(loaded_card_model, batch_size=4, num_workers=0, streams=1)
    result = engine.run(image_dir)
    ids = list(result.probabilities.index)
    assert ids == sorted(p.name for p in image_dir.glob("*.png")) + ["dicom/RG1_J2KI.dcm"]
    assert list(result.probabilities.columns) == [
        "Atelectasis",
        "Cardiomegaly",
        "Pleural Effusion",
        "Pleural Thickening",
    ]
    assert result.probabilities.dtypes.eq("float64").all()
    expected = plain_forward(loaded_card_model, [image_dir / i for i in ids])
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected, rtol=0, atol=1e-5)
    assert result.failures == [] and result.n_computed == 6 and result.n_cached == 0


def test_cache_hit_miss_and_invalidation(tmp_path, image_dir, nih_images, make_card_model):
    cache = PredictionCache(tmp_path / "cache")
    card = make_card_model(tmp_path / "model", seed=0)

    def run(card_path):
        return InferenceEngine(load_model(card_path), num_workers=0, batch_size=4, cache=cache).run(image_dir)

    first = run(card)
    assert (first.n_cached, first.n_computed) == (0, 6)
    engine = InferenceEngine(load_model(card), num_workers=0, batch_size=4, cache=cache)  # a fresh process would
    second = engine.run(image_dir)  # load it again
    assert (second.n_cached, second.n_computed) == (6, 0)
    pd.testing.assert_frame_equal(second.probabilities, first.probabilities)

    shutil.copy(nih_images[5], image_dir / "new.png")  # a new image: only it is computed
    third = engine.run(image_dir)
    assert (third.n_cached, third.n_computed) == (6, 1)

    changed = sorted(image_dir.glob("0*.png"))[0]
    shutil.copy(nih_images[6], changed)  # same name, other content: never served stale
    fourth = engine.run(image_dir)
    assert (fourth.n_cached, fourth.n_computed) == (6, 1)
    assert not np.allclose(fourth.probabilities.loc[changed.name], first.probabilities.loc[changed.name])
    np.testing.assert_allclose(
        fourth.probabilities.loc[changed.name], plain_forward(engine.model, [changed])[0], rtol=0, atol=1e-5
    )

    raw = json.loads(card.read_text())
    card.write_text(json.dumps({**raw, "input_size": 56}))  # other preprocessing: a new cache key
    assert run(card).n_computed == 7
    reseeded = make_card_model(tmp_path / "other-weights", seed=1)  # other weights: a new cache key
    assert run(reseeded).n_computed == 7
    assert len(cache.entries()) == 3


def test_unreadable_images_are_recorded_and_the_run_goes_on(tmp_path, image_dir, loaded_card_model, nih_images):
    (image_dir / "empty.png").write_bytes(b"")
    (image_dir / "truncated.png").write_bytes(nih_images[0].read_bytes()[:2000])
    (image_dir / "notes.jpg").write_text("not an image")
    cache = PredictionCache(tmp_path / "cache")
    engine = InferenceEngine(loaded_card_model, num_workers=2, batch_size=3, cache=cache)
    result = engine.run(image_dir)
    assert len(result.probabilities) == 6
    assert [(f.path.name, f.reason.split(":")[0]) for f in result.failures] == [
        ("empty.png", "empty file"),
        ("notes.jpg", "image decoding failed"),
        ("truncated.png", "image decoding failed"),
    ]
    assert "3 failed" in result.summary()
    again = engine.run(image_dir)  # failures are not cached: they are tried again
    assert (again.n_cached, again.n_computed, len(again.failures)) == (6, 0, 3)


@pytest.mark.parametrize("damage", ["truncate", "flip bytes", "foreign columns"])
def test_corrupt_cache_part_is_detected_and_recomputed(tmp_path, image_dir, loaded_card_model, damage):
    cache = PredictionCache(tmp_path / "cache")
    engine = InferenceEngine(loaded_card_model, num_workers=0, batch_size=6, cache=cache)
    first = engine.run(image_dir)
    (part,) = (cache.root / engine.cache_key).glob("part-*.parquet")
    data = part.read_bytes()
    if damage == "truncate":
        part.write_bytes(data[: len(data) // 2])
    elif damage == "flip bytes":
        middle = len(data) // 3
        part.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :])
    else:
        pd.DataFrame({"image_sha256": ["x"], "Edema": [0.5]}).to_parquet(part)
    second = engine.run(image_dir)
    assert (second.n_cached, second.n_computed) == (0, 6)
    pd.testing.assert_frame_equal(second.probabilities, first.probabilities)
    assert engine.run(image_dir).n_cached == 6


def _store_many(root, key, worker, n_writes, findings):
    cache = PredictionCache(root)
    for write in range(n_writes):
        hashes = [f"{worker}-{write}-{i}" for i in range(5)]
        values = np.full((5, len(findings)), (worker * 100 + write) / 1000, dtype=np.float32)
        cache.store(key, {"model": "concurrency"}, findings, hashes, values)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    findings = ["Edema", "Cardiomegaly"]
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_store_many, args=(tmp_path, "k", worker, 25, findings)) for worker in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    wanted = [f"{worker}-{write}-{i}" for worker in (1, 2) for write in range(25) for i in range(5)]
    found = PredictionCache(tmp_path).lookup("k", findings, wanted)
    assert set(found) == set(wanted)
    assert found["2-24-4"][0] == np.float32(224 / 1000)
    assert len(list((tmp_path / "k").glob("part-*.parquet"))) < 8 + 2  # compaction kept the parts few


def test_progress_reaches_the_total(image_dir, loaded_card_model):
    calls = []
    InferenceEngine(loaded_card_model, num_workers=0, batch_size=4).run(
        image_dir, progress=lambda done, total: calls.append((done, total))
    )
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_result_is_a_predictions_table_the_importer_reads(tmp_path, image_dir, loaded_card_model):
    from cxrfail.predictions import load_predictions_csv

    result = InferenceEngine(loaded_card_model, num_workers=0).run(image_dir)
    path = result.to_csv(tmp_path / "out" / "preds.csv")
    assert path.read_text().splitlines()[0] == "image_id,Atelectasis,Cardiomegaly,Pleural Effusion,Pleural Thickening"
    imported = load_predictions_csv(path)
    direct = result.to_predictions("densenet121-test")
    assert imported.name == "preds" and direct.name == "densenet121-test"
    pd.testing.assert_frame_equal(imported.probabilities, direct.probabilities, atol=1e-8, rtol=0)
    assert list(imported.probabilities.index) == list(result.probabilities.index)


def test_devices_and_precision(loaded_card_model):
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InferenceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="device 'cuda' is not available"):
            resolve_device("cuda")
    model = loaded_card_model
    fp32 = InferenceEngine(model, device="cpu")
    bf16 = InferenceEngine(model, device="cpu", precision="bf16")
    assert fp32.precision == "fp32" and fp32.cache_key != bf16.cache_key
    with pytest.raises(InferenceError, match="batch size must be at least 1"):
        InferenceEngine(model, batch_size=0)
