"""The ONNX Runtime CPU backend on real radiographs: equal to the torch engine within 1e-4, its export reused from
the cache, a damaged export replaced, an unfaithful export refused in favour of torch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cxrfail.inference.cache import PredictionCache
from cxrfail.inference.engine import InferenceEngine, resolve_backend
from cxrfail.inference.errors import InferenceError
from cxrfail.inference.models import load_model

pytest.importorskip("onnxruntime")


def onnx_exports(cache: PredictionCache) -> list:
    return sorted(cache.root.glob("*/*.onnx"))


@pytest.fixture(scope="module")
def xrv_model(xrv_densenet_weights):
    return load_model(f"xrv:densenet121@{xrv_densenet_weights}")


def test_onnxruntime_engine_equals_torch_engine_on_real_images(xrv_model, nih_images, tmp_path):
    onnx_engine = InferenceEngine(xrv_model, device="cpu", cache=PredictionCache(tmp_path / "cache"))
    assert onnx_engine.backend == "onnxruntime"  # chosen automatically on CPU when installed
    torch_engine = InferenceEngine(xrv_model, device="cpu", backend="torch")
    from_onnx = onnx_engine.run(nih_images[:6])
    from_torch = torch_engine.run(nih_images[:6])
    assert onnx_engine.backend == "onnxruntime"  # the export passed its check
    assert from_onnx.probabilities.index.equals(from_torch.probabilities.index)
    np.testing.assert_allclose(
        from_onnx.probabilities.to_numpy(), from_torch.probabilities.to_numpy(), rtol=0, atol=1e-4
    )
    [export] = onnx_exports(onnx_engine.cache)
    assert export.name.startswith("xrv_densenet121-") and export.name.endswith("-1x224x224.onnx")


def test_export_is_reused_from_the_cache(loaded_card_model, tmp_path):
    cache = PredictionCache(tmp_path / "cache")
    assert InferenceEngine(loaded_card_model, device="cpu", cache=cache).prepare() == "onnxruntime"
    [export] = onnx_exports(cache)
    written = export.stat().st_mtime_ns, export.stat().st_ino
    assert InferenceEngine(loaded_card_model, device="cpu", cache=cache).prepare() == "onnxruntime"
    assert (export.stat().st_mtime_ns, export.stat().st_ino) == written


@pytest.mark.parametrize("damage", ["truncated", "garbage with a matching checksum"])
def test_damaged_export_is_exported_again(loaded_card_model, nih_images, tmp_path, damage):
    cache = PredictionCache(tmp_path / "cache")
    InferenceEngine(loaded_card_model, device="cpu", cache=cache).prepare()
    [export] = onnx_exports(cache)
    good = export.read_bytes()
    if damage == "truncated":
        export.write_bytes(good[: len(good) // 2])
    else:
        import hashlib

        export.write_bytes(b"not an onnx model")
        export.with_name(export.name + ".sha256").write_text(hashlib.sha256(b"not an onnx model").hexdigest())
    engine = InferenceEngine(loaded_card_model, device="cpu", cache=cache)
    result = engine.run(nih_images[:2])
    assert engine.backend == "onnxruntime" and export.read_bytes() == good
    expected = InferenceEngine(loaded_card_model, device="cpu", backend="torch").run(nih_images[:2])
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected.probabilities.to_numpy(), atol=1e-4)


def test_an_engine_given_another_engines_export_runs_it_without_the_module(loaded_card_model, nih_images, tmp_path):
    exporter = InferenceEngine(loaded_card_model, device="cpu", num_workers=0)
    assert exporter.onnx_export() is None  # nothing exported before prepare
    exporter.prepare()
    export = exporter.onnx_export()
    assert export
    cache = PredictionCache(tmp_path / "cache")
    shipped = dataclasses.replace(loaded_card_model, module=None)  # what a Ray model actor receives
    engine = InferenceEngine(shipped, device="cpu", num_workers=0, cache=cache, onnx_export=export)
    assert engine.prepare() == "onnxruntime" and engine.onnx_export() == export
    result = engine.run(nih_images[:4])
    assert onnx_exports(cache) == []  # run as given, not exported again
    expected = exporter.run(nih_images[:4])
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected.probabilities.to_numpy(), rtol=0, atol=1e-6)
    with pytest.raises(InferenceError, match="CPU in fp32 only"):
        InferenceEngine(shipped, device="cpu", precision="bf16", onnx_export=export)


class _RoundTripsThroughNumpy(torch.nn.Module):
    """A module that the ONNX tracer cannot follow: the numpy detour becomes a constant of the trace."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.from_numpy(x.numpy().copy()))


def test_unfaithful_export_falls_back_to_torch(loaded_card_model, nih_images, tmp_path):
    # eval, as a loaded model is: the export restores the wrapper's mode on the shared network it wraps
    model = dataclasses.replace(loaded_card_model, module=_RoundTripsThroughNumpy(loaded_card_model.module).eval())
    cache = PredictionCache(tmp_path / "cache")
    engine = InferenceEngine(model, device="cpu", cache=cache)
    result = engine.run(nih_images[:2])
    assert engine.backend == "torch" and onnx_exports(cache) == []
    expected = InferenceEngine(loaded_card_model, device="cpu", backend="torch").run(nih_images[:2])
    np.testing.assert_allclose(result.probabilities.to_numpy(), expected.probabilities.to_numpy(), atol=1e-6)


def test_backend_choice():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu, "fp32") == "onnxruntime"
    assert resolve_backend("auto", cpu, "bf16") == "torch"
    assert resolve_backend("auto", torch.device("cuda"), "bf16") == "torch"  # GPU paths stay on torch
    assert resolve_backend("torch", cpu, "fp32") == "torch"
    with pytest.raises(InferenceError, match="CPU in fp32 only"):
        resolve_backend("onnxruntime", torch.device("cuda"), "fp16")
    with pytest.raises(InferenceError, match="unknown backend"):
        resolve_backend("tensorrt", cpu, "fp32")
