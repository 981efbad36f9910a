"""The batched inference engine: images in, a predictions table out, each image computed once per model.

`InferenceEngine.run` hashes every image file, serves the images the cache already holds, decodes and
preprocesses the others in DataLoader worker processes, runs them through the model in batches, applies the
model's activation and stores the new results in the cache. Unreadable images are recorded in
``InferenceResult.failures`` and the run goes on.

Backends: on CPU in fp32, ONNX Runtime when it is installed (the torch module exported once and cached, see
`cxrfail.inference.onnx_backend`; outputs equal torch's within 1e-4), else torch. Torch runs under
``torch.inference_mode`` in channels-last memory format (on CUDA also pinned memory, non-blocking copies and
bf16/fp16 autocast); GPU paths always use torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from cxrfail.files import atomic_write_with, bytes_sha256, file_sha256
from cxrfail.inference.cache import PredictionCache, model_cache_key
from cxrfail.inference.cards import BACKENDS, PRECISIONS, Preprocessing
from cxrfail.inference.errors import InferenceError
from cxrfail.inference.images import DECODER_VERSION, ImageDecodeError, decode_image, image_id, list_images, preprocess
from cxrfail.inference.models import LoadedModel
from cxrfail.inference.onnx_backend import (
    OnnxExportError,
    OnnxRunner,
    export_file_name,
    load_or_export,
    onnxruntime_installed,
)

if TYPE_CHECKING:
    from cxrfail.predictions import ModelPredictions

#: Called with (images done, images in the run) after the cache lookup and after every batch.
ProgressCallback = Callable[[int, int], None]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
log = logging.getLogger(__name__)
#: New results are written to the cache (one part) at least every this many images.
CACHE_FLUSH_IMAGES = 1024


class ImageFailure(NamedTuple):
    """An image that could not be used: its path and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class InferenceResult:
    """One model's predictions for a set of images.

    Attributes:
        model_name: the model's display name.
        probabilities: index ``image_id`` (str: the path relative to the image folder, forward slashes), one
            float64 column per canonical finding (model output order), probabilities in [0, 1].
        failures: images that could not be read or decoded, with the reason; absent from ``probabilities``.
        n_cached: images served from the cache.
        n_computed: images run through the model.
        seconds: wall-clock duration of the run, seconds.
        images_per_node: for a run on a Ray cluster, images computed on each node (node IP and short node id);
            empty for a local run.
    """

    model_name: str
    probabilities: pd.DataFrame
    failures: list[ImageFailure]
    n_cached: int
    n_computed: int
    seconds: float
    images_per_node: dict[str, int] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The prediction table as written to CSV: ``image_id`` first, then one column per finding."""
        return self.probabilities.reset_index()

    def to_csv(self, path: str | Path) -> Path:
        """Write the prediction table (see `to_frame`) atomically; probabilities with 9 significant digits.
        Formula-inert (`cxrfail.export.inert_csv_frame`): an image id that a spreadsheet would run as a formula
        (``=HYPERLINK(...).png``) gets a leading apostrophe."""
        from cxrfail.export import inert_csv_frame

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_with(
            path, lambda temporary: inert_csv_frame(self.to_frame()).to_csv(temporary, index=False, float_format="%.9g")
        )

    def to_predictions(self, name: str | None = None) -> ModelPredictions:
        """The same `ModelPredictions` that importing the CSV from `to_csv` gives (validated the same way)."""
        from cxrfail.predictions import parse_predictions

        return parse_predictions(self.to_frame(), name=name or self.model_name)

    def summary(self) -> str:
        """One line: counts of images predicted, from cache, computed, failed, and the duration."""
        total = len(self.probabilities) + len(self.failures)
        rate = self.n_computed / self.seconds if self.seconds > 0 else 0.0
        where = ""
        if self.images_per_node:
            nodes = len(self.images_per_node)
            where = (
                f" on {nodes} Ray node{'s' if nodes > 1 else ''} ("
                + ", ".join(f"{node}: {count}" for node, count in sorted(self.images_per_node.items()))
                + ")"
            )
        return (
            f"{self.model_name}: {len(self.probabilities)} of {total} images predicted "
            f"({self.n_cached} from cache, {self.n_computed} computed{where} at {rate:.1f} images/s), "
            f"{len(self.failures)} failed, {self.seconds:.1f} s"
        )


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; or a forced device (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise InferenceError(f"unknown device {device!r}", fix="Use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(chosen.type, False):
        raise InferenceError(
            f"device {device!r} is not available on this machine",
            fix="Use --device auto (CUDA when present, else CPU) or cpu",
        )
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise InferenceError(f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    return chosen


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 autocast on CUDA when supported, else fp16 on CUDA, else fp32; or a forced one."""
    if precision not in PRECISIONS:
        raise InferenceError(f"unknown precision {precision!r}", fix=f"Use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def resolve_backend(backend: str, device: torch.device, precision: str) -> str:
    """``auto``: ``onnxruntime`` on CPU in fp32 when the package is installed, else ``torch``; or a forced one
    (``onnxruntime`` only on CPU in fp32)."""
    if backend not in BACKENDS:
        raise InferenceError(f"unknown backend {backend!r}", fix=f"Use one of {', '.join(BACKENDS)}")
    cpu_fp32 = device.type == "cpu" and precision == "fp32"
    if backend == "auto":
        return "onnxruntime" if cpu_fp32 and onnxruntime_installed() else "torch"
    if backend == "onnxruntime" and not cpu_fp32:
        raise InferenceError(
            "the onnxruntime backend runs on the CPU in fp32 only", fix="Use --device cpu, or the torch backend"
        )
    if backend == "onnxruntime" and not onnxruntime_installed():
        raise InferenceError("the onnxruntime package is not installed", fix="Run make test or make run to install")
    return backend


def model_identity(model: LoadedModel, precision: str) -> dict[str, object]:
    """Everything that determines a model's outputs for given image bytes (the prediction cache key hashes it):
    architecture, weights digest, labels, activation, preprocessing, resolved precision, decoder version."""
    card = model.card
    return {
        "architecture": card.architecture,
        "weights_sha256": model.weights_digest,
        "labels": list(card.labels),
        "findings": list(model.findings),
        "activation": card.activation,
        "preprocessing": card.preprocessing.as_dict(),
        "precision": precision,
        "decoder_version": DECODER_VERSION,
    }


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass: 64 on CUDA; 8 on CPU, where larger batches of DenseNet-121 at 224 px run slower
    per image (cache pressure)."""
    return 64 if device.type == "cuda" else 8


def default_streams(device: torch.device) -> int:
    """Batches in flight at once, each run by its own thread. On CPU, one per intra-op thread (at most 8), so that
    each forward pass runs on about one core without OpenMP synchronisation between cores (faster on few cores,
    steadier on a busy machine); elsewhere two, so that one batch's copies overlap the other's compute."""
    return min(8, torch.get_num_threads()) if device.type == "cpu" else 2


def default_num_workers() -> int:
    """Decoding worker processes: two, or one per CPU core when there are fewer."""
    return min(2, os.cpu_count() or 1)


class InferenceEngine:
    """Runs one model over images, batched, with the prediction cache. One `run` at a time per engine.

    Args:
        model: the loaded model; its module is moved to ``device``.
        device: ``auto`` (CUDA when present), or a forced device (see `resolve_device`).
        batch_size: images per forward pass; default `default_batch_size`.
        num_workers: DataLoader worker processes for decoding (0: decode in this process); default
            `default_num_workers`.
        cache: where results are kept and looked up; None computes everything and keeps nothing.
        precision: ``auto`` (fp32 on CPU, bf16 or fp16 autocast on CUDA), ``fp32``, ``bf16`` or ``fp16``.
        streams: batches in flight at once; default `default_streams`. On CPU, while `run` computes, torch's
            intra-op thread count is divided among the streams (process-wide), and restored afterwards.
        backend: ``auto``, ``torch`` or ``onnxruntime`` (see `resolve_backend`). The ONNX export is made on the
            first `run` (or `prepare`) and kept in ``cache`` (in a temporary folder for the engine's lifetime
            when ``cache`` is None); if the model cannot be exported faithfully the engine uses torch.
        onnx_export: the bytes of this model's checked ONNX export (`onnx_export` of an engine that prepared it),
            run by ONNX Runtime instead of exporting again; the backend is then ``onnxruntime`` and the model's
            module is not used (it may be None). How a Ray run's model actors get the driver's export.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        num_workers: int | None = None,
        cache: PredictionCache | None = None,
        precision: str = "auto",
        streams: int | None = None,
        backend: str = "auto",
        onnx_export: bytes | None = None,
    ) -> None:
        self.device = resolve_device(device)
        batch_size = default_batch_size(self.device) if batch_size is None else batch_size
        if batch_size < 1:
            raise InferenceError(f"batch size must be at least 1, got {batch_size}")
        num_workers = default_num_workers() if num_workers is None else num_workers
        if num_workers < 0:
            raise InferenceError(f"number of workers must be 0 or more, got {num_workers}")
        streams = default_streams(self.device) if streams is None else streams
        if streams < 1:
            raise InferenceError(f"streams must be at least 1, got {streams}")
        self.model = model
        self.streams = streams
        self.precision = resolve_precision(precision, self.device)
        if onnx_export is not None and backend == "torch":
            raise InferenceError("an ONNX export runs on the onnxruntime backend", fix="Use backend auto")
        self.backend = resolve_backend(
            "onnxruntime" if onnx_export is not None else backend, self.device, self.precision
        )
        self._onnx_export = onnx_export
        self._onnx_runner: OnnxRunner | None = None
        self._export_scratch: tempfile.TemporaryDirectory | None = None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache = cache
        self.channels_last = self.device.type in ("cpu", "cuda")  # oneDNN and cuDNN convolutions run faster
        # the torch network on the device: built only for the torch backend (a cached ONNX export needs none)
        self.module = self._device_module() if self.backend == "torch" else None
        self.identity = model_identity(model, self.precision)
        self.cache_key = model_cache_key(self.identity)

    def prepare(self) -> str:
        """Make the backend ready (for ``onnxruntime``: load the cached export, or export and check the model)
        and return the backend in use: ``onnxruntime``, or ``torch`` when the export failed (logged)."""
        if self.backend != "onnxruntime" or self._onnx_runner is not None:
            return self.backend
        threads = self._threads_per_stream() or torch.get_num_threads()
        if self._onnx_export is not None:
            self._onnx_runner = OnnxRunner(self._onnx_export, threads)
            return self.backend
        preprocessing = self.model.card.preprocessing
        shape = (preprocessing.channels, preprocessing.input_size, preprocessing.input_size)
        name = export_file_name(self.model.card.architecture, self.model.weights_digest, shape)
        if self.cache is not None:
            folder = self.cache.root / self.cache_key
        else:
            self._export_scratch = tempfile.TemporaryDirectory(prefix="cxrfail-onnx-")
            folder = Path(self._export_scratch.name)
        try:
            self._onnx_runner = load_or_export(
                self.model.torch_module, folder / name, shape, threads, self.model.weights_digest
            )
        except OnnxExportError as exc:
            log.warning("model %r runs on torch: %s", self.model.name, exc)
            self.backend = "torch"
            self.module = self._device_module()
        return self.backend

    def onnx_export(self) -> bytes | None:
        """The ONNX model this engine runs (after `prepare`), as bytes for `InferenceEngine(onnx_export=...)`;
        None when the engine runs torch."""
        return None if self._onnx_runner is None else self._onnx_runner.model_bytes()

    def run(
        self,
        images: str | Path | Sequence[str | Path],
        root: str | Path | None = None,
        progress: ProgressCallback | None = None,
    ) -> InferenceResult:
        """Predict every image.

        Args:
            images: a folder (searched recursively for PNG, JPEG and DICOM files) or a list of image files.
            root: for a list, the folder image ids are relative to (default: ids are the file names).
            progress: called with (images done, total) as the run advances.
        """
        started = time.perf_counter()
        paths, ids = collect_images(images, root)
        results, todo, failures = cached_results(self.model, self.cache, self.cache_key, paths)
        n_cached = len(results)
        total = len(paths)
        done = n_cached + len(failures)
        if progress is not None:
            progress(done, total)
        for position, probabilities in self._compute([paths[i] for i in todo], failures, progress, done, total):
            results[todo[position]] = probabilities
        return assemble_result(self.model, paths, ids, results, failures, n_cached, started)

    def _compute(
        self, paths: list[Path], failures: list[ImageFailure], progress: ProgressCallback | None, done: int, total: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode, preprocess and run ``paths``: yield (position in ``paths``, probabilities per finding) for each
        decodable image, append the others to ``failures``, store new results in the cache. ``done`` of
        ``total`` images of the run were settled before."""
        if not paths:
            return
        self.prepare()
        loader = DataLoader(
            _DecodedImages(paths, self.model.card.preprocessing),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        pending_digests: list[str] = []
        pending_rows: list[np.ndarray] = []
        in_flight: deque[tuple[_Batch, Future | None]] = deque()

        def settle_oldest() -> Iterator[tuple[int, np.ndarray]]:
            nonlocal done
            batch, future = in_flight.popleft()
            if future is not None:
                for position, digest, row in zip(batch.positions, batch.digests, future.result()):
                    pending_digests.append(digest)
                    pending_rows.append(row)
                    yield position, row
            done += len(batch.positions) + len(batch.failures)
            if progress is not None:
                progress(done, total)
            if len(pending_digests) >= CACHE_FLUSH_IMAGES:
                self._store(pending_digests, pending_rows)

        try:
            with self.stream_threads(), ThreadPoolExecutor(self.streams, thread_name_prefix="cxrfail-forward") as pool:
                for batch in loader:
                    failures.extend(ImageFailure(paths[position], reason) for position, reason in batch.failures)
                    future = None if batch.inputs is None else pool.submit(self.predict_batch, batch.inputs)
                    in_flight.append((batch, future))
                    while len(in_flight) >= self.streams:
                        yield from settle_oldest()
                while in_flight:
                    yield from settle_oldest()
        finally:
            self._store(pending_digests, pending_rows)

    def stream_threads(self) -> contextlib.AbstractContextManager[None]:
        """Torch's intra-op threads divided among the CPU streams (process-wide), as while `run` computes;
        restored on exit. A no-op off the CPU or with one stream."""
        return _intra_op_threads(self._threads_per_stream())

    def _device_module(self) -> torch.nn.Module:
        """The model's network on the engine's device (channels-last where convolutions run faster so)."""
        module = self.model.torch_module().to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def _threads_per_stream(self) -> int | None:
        """Intra-op threads for each CPU stream while running, or None to leave torch's setting alone."""
        if self.device.type != "cpu" or self.streams == 1:
            return None
        return max(1, torch.get_num_threads() // self.streams)

    def predict_batch(self, inputs: torch.Tensor) -> np.ndarray:
        """Probabilities (batch, findings) float32 for one preprocessed batch (batch, C, H, W) float32. Safe to call
        from any thread: inference mode and autocast are entered here, since both are per thread."""
        if self._onnx_runner is not None:
            return self._probabilities(torch.from_numpy(self._onnx_runner(inputs.numpy())))
        autocast = (
            torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES[self.precision])
            if self.precision in _AUTOCAST_DTYPES
            else contextlib.nullcontext()
        )
        with torch.inference_mode():
            inputs = inputs.to(self.device, non_blocking=True)
            if self.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with autocast:
                outputs = self.module(inputs)
            return self._probabilities(outputs)

    def _probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        """The model's activation on raw outputs (batch, labels), keeping the labelled outputs: (batch, findings)."""
        labels = self.model.card.labels
        if outputs.ndim != 2 or outputs.shape[1] != len(labels):
            raise InferenceError(
                f"model {self.model.name!r} outputs shape {tuple(outputs.shape)} for a batch, "
                f"but its card lists {len(labels)} labels",
                fix="Give one label per model output",
            )
        outputs = outputs.float()
        activation = self.model.card.activation
        if activation == "sigmoid":
            outputs = torch.sigmoid(outputs)
        elif activation == "softmax":
            outputs = torch.softmax(outputs, dim=1)
        probabilities = outputs[:, list(self.model.output_indices)].cpu().numpy()
        if not (np.isfinite(probabilities).all() and (probabilities >= 0).all() and (probabilities <= 1).all()):
            raise InferenceError(
                f"model {self.model.name!r} gives values outside [0, 1] after its activation ({activation})",
                fix="Set the card's activation to sigmoid or softmax when the model outputs logits",
            )
        return probabilities

    def _store(self, digests: list[str], rows: list[np.ndarray]) -> None:
        store_results(self.cache, self.cache_key, self.model, self.identity, digests, rows)


def cached_results(
    model: LoadedModel, cache: PredictionCache | None, cache_key: str, paths: list[Path]
) -> tuple[dict[int, np.ndarray], list[int], list[ImageFailure]]:
    """Hash every file and look it up: (position -> cached probabilities (findings,) float32, positions still to
    compute, unreadable files)."""
    digests, failures = hash_files(paths)
    cached = {}
    if cache is not None:
        cached = cache.lookup(cache_key, list(model.findings), [d for d in digests if d is not None])
    results: dict[int, np.ndarray] = {}
    todo = []
    for index, digest in enumerate(digests):
        if digest is None:
            continue
        if digest in cached:
            results[index] = cached[digest]
        else:
            todo.append(index)
    return results, todo, failures


def store_results(
    cache: PredictionCache | None,
    cache_key: str,
    model: LoadedModel,
    identity: dict[str, object],
    digests: list[str],
    rows: list[np.ndarray],
) -> None:
    """Add new results (image SHA-256 hex, probabilities (findings,)) to the cache as one part, then empty both
    lists. No-op without a cache."""
    if cache is not None and digests:
        cache.store(cache_key, {"model": model.name, **identity}, model.findings, digests, np.stack(rows))
    digests.clear()
    rows.clear()


def assemble_result(
    model: LoadedModel,
    paths: list[Path],
    ids: list[str],
    results: dict[int, np.ndarray],
    failures: list[ImageFailure],
    n_cached: int,
    started: float,
    images_per_node: dict[str, int] | None = None,
) -> InferenceResult:
    """The `InferenceResult` of a run: ``results`` maps positions in ``paths`` / ``ids`` to probabilities
    (findings,); rows and failures in run order; ``started`` is the run's `time.perf_counter` start."""
    order = sorted(results)
    table = pd.DataFrame(
        np.stack([results[i] for i in order]).astype(np.float64) if order else np.empty((0, len(model.findings))),
        index=pd.Index([ids[i] for i in order], name="image_id", dtype="string"),
        columns=list(model.findings),
    )
    run_order = {path: index for index, path in enumerate(paths)}
    failures.sort(key=lambda failure: run_order[failure.path])
    return InferenceResult(
        model.name,
        table,
        failures,
        n_cached,
        len(results) - n_cached,
        time.perf_counter() - started,
        dict(images_per_node or {}),
    )


class _Batch(NamedTuple):
    positions: list[int]  # positions in the decoded list of the images in ``inputs``
    digests: list[str]  # SHA-256 hex of each decoded file's bytes
    inputs: torch.Tensor | None  # (n, C, H, W) float32, None when every image of the batch failed
    failures: list[tuple[int, str]]  # (position, reason)


class _DecodedImages(Dataset):
    """Item i: (i, SHA-256 of the bytes, preprocessed (C, H, W) tensor or None, failure reason or None)."""

    def __init__(self, paths: list[Path], preprocessing: Preprocessing) -> None:
        self.paths = paths
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[int, str | None, torch.Tensor | None, str | None]:
        return position, *read_model_input(self.paths[position], self.preprocessing)


def read_model_input(path: Path, preprocessing: Preprocessing) -> tuple[str | None, torch.Tensor | None, str | None]:
    """Read, decode and preprocess one image file: (SHA-256 hex of the bytes read, model input (C, H, W) float32,
    None), or (None, None, why it failed)."""
    try:
        data = path.read_bytes()
        tensor = preprocess(decode_image(data, path.suffix), preprocessing)
    except OSError as exc:
        return None, None, f"cannot read file: {exc.strerror or exc}"
    except ImageDecodeError as exc:
        return None, None, str(exc)
    return bytes_sha256(data), tensor, None


@contextlib.contextmanager
def _intra_op_threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count (process-wide; threads started meanwhile keep it) and restore it."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _collate(items: list[tuple[int, str | None, torch.Tensor | None, str | None]]) -> _Batch:
    good = [item for item in items if item[2] is not None]
    return _Batch(
        positions=[item[0] for item in good],
        digests=[item[1] for item in good],
        inputs=torch.stack([item[2] for item in good]) if good else None,
        failures=[(item[0], item[3]) for item in items if item[2] is None],
    )


def collect_images(images: str | Path | Sequence[str | Path], root: str | Path | None) -> tuple[list[Path], list[str]]:
    """The image paths of a run and their ids."""
    if isinstance(images, str | Path):
        folder = Path(images)
        if not folder.is_dir():
            raise InferenceError("image folder not found", path=folder)
        found = list_images(folder)
        if not found:
            raise InferenceError("no PNG, JPEG or DICOM images in the folder", path=folder)
        return [path for _, path in found], [identifier for identifier, _ in found]
    paths = [Path(p) for p in images]
    if root is None:
        ids = [path.name for path in paths]
    else:
        try:
            ids = [image_id(path, Path(root)) for path in paths]
        except ValueError:
            raise InferenceError("an image lies outside the root folder", path=root) from None
    seen: dict[str, Path] = {}
    for path, identifier in zip(paths, ids):
        if identifier in seen:
            raise InferenceError(
                f"two images share the id {identifier!r}: {seen[identifier]} and {path}",
                fix="Pass root= so ids are relative paths",
            )
        seen[identifier] = path
    return paths, ids


def hash_files(paths: list[Path]) -> tuple[list[str | None], list[ImageFailure]]:
    """SHA-256 hex of each file's bytes (None where unreadable) and the unreadable files as failures."""

    def digest(path: Path) -> str | ImageFailure:
        try:
            return file_sha256(path)
        except OSError as exc:
            return ImageFailure(path, f"cannot read file: {exc.strerror or exc}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(digest, paths))
    failures = [outcome for outcome in outcomes if isinstance(outcome, ImageFailure)]
    return [None if isinstance(outcome, ImageFailure) else outcome for outcome in outcomes], failures
