"""ONNX Runtime backend for CPU inference: the loaded torch model exported once to ONNX, cached, and run by
ONNX Runtime's CPU execution provider (its fused, layout-optimised convolutions, one thread per stream, run
DenseNet-121 at about 64 ms an image a core, 2.1-2.5x a per-image eager torch loop on 2 cores).

The export is stored beside the prediction cache, in the model's cache folder, as
``<architecture>-<weights SHA-256 prefix>-<C>x<H>x<W>.onnx`` with a ``.sha256`` file holding a digest keyed by
the model's full weights digest (`export_digest`: SHA-256 over the weights digest and the ONNX file's bytes), so
another model's export copied into place with its own ``.sha256`` does not match. A file whose keyed digest
does not match, or that ONNX Runtime cannot load, is exported again. A cached export whose keyed digest
matches runs without building the torch network (seconds saved per process). Every fresh export is checked
against the torch module on a fixed input before use: outputs must agree within `EXPORT_TOLERANCE`, otherwise
the engine stays on torch. A cache folder that cannot be written (read-only, full) does not stop inference: the export is made in memory.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cxrfail.cache import warn_cache_unwritable
from cxrfail.files import atomic_write_bytes, bytes_sha256

log = logging.getLogger(__name__)

ONNX_OPSET = 17
#: Largest allowed |ONNX Runtime - torch| on a raw model output (logit) in the export check.
EXPORT_TOLERANCE = 1e-4
_INPUT, _OUTPUT = "images", "scores"
_CHECK_BATCH = 2


class OnnxExportError(RuntimeError):
    """The model could not be exported to ONNX, or the export does not reproduce the torch outputs."""


def onnxruntime_installed() -> bool:
    """Whether the ``onnxruntime`` package can be imported (the backend is optional)."""
    return importlib.util.find_spec("onnxruntime") is not None


def export_file_name(architecture: str, weights_digest: str, input_shape: tuple[int, int, int]) -> str:
    """File name of a model's ONNX export: architecture, weights digest prefix and input (C, H, W)."""
    channels, height, width = input_shape
    safe_architecture = "".join(c if c.isalnum() or c in "-_" else "_" for c in architecture)
    return f"{safe_architecture}-{weights_digest[:16]}-{channels}x{height}x{width}.onnx"


class OnnxRunner:
    """Raw model outputs from ONNX Runtime: call with float32 inputs (N, C, H, W), get float32 (N, outputs).
    Safe to call from several threads at once.

    Args:
        model: an ONNX file, or the bytes of one.
        threads: ONNX Runtime's intra-op threads for each call.
    """

    def __init__(self, model: Path | bytes, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.model = model
        self.session = onnxruntime.InferenceSession(
            model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"]
        )

    def model_bytes(self) -> bytes:
        """The ONNX model this runner runs, as bytes."""
        return self.model if isinstance(self.model, bytes) else self.model.read_bytes()

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.session.run([_OUTPUT], {_INPUT: np.ascontiguousarray(inputs, dtype=np.float32)})[0]


def export_digest(weights_digest: str, onnx_bytes: bytes) -> str:
    """The keyed digest stored beside an export: SHA-256 over the model's weights digest and the ONNX bytes."""
    return bytes_sha256(weights_digest.encode() + b"\0" + onnx_bytes)


def load_or_export(
    build_module: Callable[[], torch.nn.Module],
    path: Path,
    input_shape: tuple[int, int, int],
    threads: int,
    weights_digest: str,
) -> OnnxRunner:
    """An `OnnxRunner` for the model whose weights have SHA-256 ``weights_digest``: from the export at ``path``
    when its keyed digest matches (no network is built: a cached export needs none), else the network
    ``build_module()`` returns (eval mode, CPU) is exported, checked against torch and written there. When
    ``path``'s folder cannot be written, the export is made and run in memory. Raises `OnnxExportError` when
    the module cannot be exported faithfully."""
    cached = _read_if_keyed(path, weights_digest)
    if cached is not None:
        try:
            return OnnxRunner(cached, threads)
        except Exception as exc:  # noqa: BLE001 - any load failure means: export again
            log.warning("re-exporting unloadable ONNX model %s (%s)", path, exc)
    elif path.exists():
        log.warning("re-exporting ONNX model %s: it is not this model's export", path)
    module = build_module()
    onnx_bytes = _export(module, input_shape)
    try:
        runner = OnnxRunner(onnx_bytes, threads)
        _check_against_torch(module, runner, input_shape)
    except OnnxExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - an export ONNX Runtime cannot run as traced is not used
        raise OnnxExportError(f"ONNX Runtime cannot run the export: {exc}") from exc
    try:
        _remove(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, onnx_bytes)
        atomic_write_bytes(_digest_path(path), export_digest(weights_digest, onnx_bytes).encode())
    except OSError as exc:
        warn_cache_unwritable(path.parent, exc)  # the export runs from memory this time
    return runner


def _read_if_keyed(path: Path, weights_digest: str) -> bytes | None:
    """The export's bytes when its keyed digest file matches them and ``weights_digest``; else None."""
    try:
        data = path.read_bytes()
        expected = _digest_path(path).read_text().strip()
    except OSError:
        return None
    return data if export_digest(weights_digest, data) == expected else None


def _export(module: torch.nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    """Trace ``module`` (eval, CPU, fp32) to ONNX with a dynamic batch axis; the ONNX file's bytes."""
    example = torch.zeros((_CHECK_BATCH, *input_shape), dtype=torch.float32)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notices are not for users
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=[_INPUT],
                output_names=[_OUTPUT],
                dynamic_axes={_INPUT: {0: "batch"}, _OUTPUT: {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; the caller falls back to torch
        raise OnnxExportError(f"cannot export to ONNX: {exc}") from exc
    return buffer.getvalue()


def _check_against_torch(module: torch.nn.Module, runner: OnnxRunner, input_shape: tuple[int, int, int]) -> None:
    """Raise `OnnxExportError` when ONNX Runtime's outputs on a fixed pseudo-random
    input differ from the torch module's by more than `EXPORT_TOLERANCE`."""
    generator = torch.Generator().manual_seed(0)
    example = torch.rand((_CHECK_BATCH, *input_shape), generator=generator) * 2 - 1
    with torch.no_grad():
        expected = module(example).float().numpy()
    got = runner(example.numpy())
    difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not difference <= EXPORT_TOLERANCE:
        raise OnnxExportError(f"ONNX Runtime outputs differ from torch by {difference:.2e}")


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _digest_path(path).unlink(missing_ok=True)
