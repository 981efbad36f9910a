"""Batch inference on a Ray cluster with Ray Data: the local engine's preprocessing, model and cache, on every
node.

The driver (this process) lists and hashes the images and serves what the prediction cache holds, exactly as
`InferenceEngine.run` does. The rest flows through a streaming Ray Data pipeline:

1. a dataset of (position, path) rows, in blocks of a few batches;
2. ``map_batches(decode)`` in CPU tasks: each file read, hashed, decoded and preprocessed with
   `read_model_input` (the local engine's function), failures kept as rows with a reason;
3. ``map_batches(_ModelActor)`` in a pool of actors, one GPU each where the cluster has GPUs (CPU otherwise),
   spread over the nodes; each actor builds one `InferenceEngine` and calls its `predict_batch`. The model is put
   in the object store once per run and fetched once per actor, never per batch. On CPU clusters that is the
   ONNX export the driver prepared as a local run would (taken from or kept in the cache), not the torch module:
   the actors neither export again nor import the network's package;
4. the driver consumes the stream batch by batch: progress after each, new results written to the cache
   every `CACHE_FLUSH_IMAGES` images (each write is an atomic new part, so a cache folder on storage shared by
   several drivers is safe, see `cxrfail.inference.cache`).

A worker or actor process that dies is restarted and its batch rerun (Ray Data's defaults: actors restart
without limit and rerun their tasks, decoding tasks are retried by Ray); the run completes. Ray Data spreads the
actors over the nodes. Every node needs cxrfail and the same Python packages installed, and the images
at the same path (shared storage).
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from cxrfail.inference.cache import PredictionCache, model_cache_key
from cxrfail.inference.cards import Preprocessing
from cxrfail.inference.engine import (
    CACHE_FLUSH_IMAGES,
    ImageFailure,
    InferenceEngine,
    InferenceResult,
    ProgressCallback,
    assemble_result,
    cached_results,
    collect_images,
    default_batch_size,
    model_identity,
    read_model_input,
    resolve_precision,
    store_results,
)
from cxrfail.inference.errors import InferenceError
from cxrfail.inference.models import LoadedModel, load_model
from cxrfail.ray_cluster import cluster_summary, ray_session


def run_inference_on_ray(
    model: LoadedModel | str | Path,
    images: str | Path | Sequence[str | Path],
    address: str,
    *,
    root: str | Path | None = None,
    cache: PredictionCache | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    num_actors: int | None = None,
    gpus_per_actor: float = 1.0,
    progress: ProgressCallback | None = None,
) -> InferenceResult:
    """Predict every image on the Ray cluster at ``address``; the same result as `InferenceEngine.run` (outputs
    within float32 rounding of a local run), with ``images_per_node`` saying where the images were computed.

    Args:
        model: a loaded model or a model SPEC (see `cxrfail.inference.models`).
        images: a folder (searched recursively) or a list of image files, at the same path on every node.
        address: the cluster (``HOST:PORT``, ``auto`` or ``ray://HOST:PORT``).
        root: for a list, the folder image ids are relative to (default: ids are the file names).
        cache: looked up by the driver before the run and filled as results stream in; None computes all.
        batch_size: images per forward pass; default 64 on a GPU cluster, 8 on CPUs.
        precision: ``auto`` (bf16 autocast on GPUs, fp32 on CPUs), ``fp32``, ``bf16`` or ``fp16``.
        num_actors: model replicas; default one per GPU (``gpus_per_actor`` each), or one per node on CPUs.
        gpus_per_actor: GPUs each replica reserves where the cluster has GPUs (fractions share a GPU).
        progress: called with (images done, total) after the cache lookup and after every batch.
    """
    started = time.perf_counter()
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    paths, ids = collect_images(images, root)
    with ray_session(address) as ray:
        plan = _plan(ray, loaded, batch_size, precision, num_actors, gpus_per_actor)
        identity = model_identity(loaded, plan.precision)
        cache_key = model_cache_key(identity)
        results, todo, failures = cached_results(loaded, cache, cache_key, paths)
        n_cached = len(results)
        done, total = n_cached + len(failures), len(paths)
        if progress is not None:
            progress(done, total)
        per_node: Counter[str] = Counter()
        pending_digests: list[str] = []
        pending_rows: list[np.ndarray] = []
        try:
            for batch in _stream(ray, loaded, [(i, paths[i]) for i in todo], plan, cache):
                for position, digest, reason, row, node in zip(
                    batch["position"], batch["digest"], batch["failure"], batch["probabilities"], batch["node"]
                ):
                    if reason:
                        failures.append(ImageFailure(paths[position], str(reason)))
                        continue
                    results[int(position)] = row
                    pending_digests.append(str(digest))
                    pending_rows.append(row)
                    per_node[str(node)] += 1
                done += len(batch["position"])
                if progress is not None:
                    progress(done, total)
                if len(pending_digests) >= CACHE_FLUSH_IMAGES:
                    store_results(cache, cache_key, loaded, identity, pending_digests, pending_rows)
        finally:
            store_results(cache, cache_key, loaded, identity, pending_digests, pending_rows)
    return assemble_result(loaded, paths, ids, results, failures, n_cached, started, dict(per_node))


def describe_ray_plan(address: str, gpus_per_actor: float = 1.0) -> str:
    """Where a `run_inference_on_ray` with default settings would run, in one line for the dashboard, e.g.
    ``Ray: 2 nodes, 4 CPUs, 0 GPUs at 127.0.0.1:6379; 2 CPU model replicas``."""
    with ray_session(address) as ray:
        gpus = ray.cluster_resources().get("GPU", 0)
        replicas = (
            f"{int(gpus // gpus_per_actor)} GPU model replicas"
            if gpus
            else f"{len(_alive_nodes(ray))} CPU model replicas"
        )
        return f"Ray: {cluster_summary(ray)}; {replicas}"


class _Plan(NamedTuple):
    """How a run uses the cluster: device type, precision, batch size, replicas and what each reserves."""

    device: str
    precision: str
    batch_size: int
    num_actors: int
    num_gpus: float
    num_cpus: float


def _plan(
    ray, model: LoadedModel, batch_size: int | None, precision: str, num_actors: int | None, gpus_per_actor: float
) -> _Plan:
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0)
    nodes = _alive_nodes(ray)
    if gpus:
        if gpus_per_actor <= 0:
            raise InferenceError(f"GPUs per actor must be positive, got {gpus_per_actor}")
        device = torch.device("cuda")
        actors = num_actors or max(1, int(gpus // gpus_per_actor))
        num_gpus, num_cpus = gpus_per_actor, 1.0
        # The driver may have no GPU: the cache key needs the precision the actors will use.
        chosen = "bf16" if precision == "auto" else resolve_precision(precision, torch.device("cpu"))
    else:
        device = torch.device("cpu")
        actors = num_actors or len(nodes)
        num_gpus = 0.0
        num_cpus = max(1.0, min(node["Resources"].get("CPU", 1) for node in nodes) // 2)
        chosen = resolve_precision(precision, device)
    if actors < 1:
        raise InferenceError(f"number of actors must be at least 1, got {actors}")
    size = default_batch_size(device) if batch_size is None else batch_size
    if size < 1:
        raise InferenceError(f"batch size must be at least 1, got {size}")
    return _Plan(device.type, chosen, size, actors, num_gpus, num_cpus)


def _alive_nodes(ray) -> list[dict]:
    return [node for node in ray.nodes() if node.get("Alive")]


def _stream(ray, model: LoadedModel, items: list[tuple[int, Path]], plan: _Plan, cache: PredictionCache | None):
    """Yield numpy batches {position, digest, failure, probabilities (n, findings) float32, node} for ``items``
    ((position, path) pairs) as the cluster finishes them. ``cache`` holds the model's ONNX export (see
    `_pack`)."""
    if not items:
        return
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-run execution plans on the console
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller reports progress
    # Blocks of a few batches each (streamed), and at least one per actor so that every replica gets work.
    blocks = min(len(items), max(plan.num_actors, min(len(items) // plan.batch_size, 32 * plan.num_actors)))
    dataset = ray.data.from_items([{"position": p, "path": str(path)} for p, path in items], override_num_blocks=blocks)
    dataset = dataset.map_batches(
        _decode_batch, fn_kwargs={"preprocessing": model.card.preprocessing}, batch_size=plan.batch_size, num_cpus=1
    )
    shipped = ray.put(_pack(model, plan, cache))
    dataset = dataset.map_batches(
        _ModelActor,
        fn_constructor_kwargs={
            "shipped": [shipped],
            "device": plan.device,
            "precision": plan.precision,
            "batch_size": plan.batch_size,
        },
        batch_size=plan.batch_size,
        compute=ray.data.ActorPoolStrategy(size=plan.num_actors),
        num_gpus=plan.num_gpus,
        num_cpus=plan.num_cpus,
    )
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


def _decode_batch(batch: dict[str, np.ndarray], preprocessing: Preprocessing) -> dict[str, np.ndarray]:
    """Ray Data stage: {position, path} -> {position, digest, failure, inputs (n, C, H, W) float32}; an unreadable
    image gets an all-zero input and a non-empty failure reason."""
    shape = (preprocessing.channels, preprocessing.input_size, preprocessing.input_size)
    digests, failures, inputs = [], [], []
    for path in batch["path"]:
        digest, tensor, reason = read_model_input(Path(str(path)), preprocessing)
        digests.append(digest or "")
        failures.append(reason or "")
        inputs.append(np.zeros(shape, np.float32) if tensor is None else tensor.numpy())
    return {
        "position": np.asarray(batch["position"], dtype=np.int64),
        "digest": np.asarray(digests),
        "failure": np.asarray(failures),
        "inputs": np.stack(inputs),
    }


class _ModelActor:
    """Ray Data stage: one model replica. {position, digest, failure, inputs} -> {position, digest, failure,
    probabilities (n, findings) float32 (NaN for failed rows), node}."""

    def __init__(self, shipped: list, device: str, precision: str, batch_size: int) -> None:
        import ray

        model, onnx_export = _unpack(ray.get(shipped[0]))
        # No export of their own: the driver's export, or torch where the driver found none faithful (or GPUs).
        self.engine = InferenceEngine(
            model,
            device=device,
            precision=precision,
            batch_size=batch_size,
            num_workers=0,
            streams=1,
            onnx_export=onnx_export,
            backend="onnxruntime" if onnx_export is not None else "torch",
        )
        self.engine.prepare()  # intra-op threads: the actor's CPUs (Ray sets OMP_NUM_THREADS, torch follows)
        context = ray.get_runtime_context()
        self.node = f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        usable = batch["failure"] == ""
        probabilities = np.full((len(usable), len(self.engine.model.findings)), np.nan, np.float32)
        if usable.any():
            probabilities[usable] = self.engine.predict_batch(torch.from_numpy(batch["inputs"][usable]))
        return {
            "position": batch["position"],
            "digest": batch["digest"],
            "failure": batch["failure"],
            "probabilities": probabilities,
            "node": np.full(len(usable), self.node),
        }


class _Packed(NamedTuple):
    """The model as the object store holds it (put once per run, fetched once per actor)."""

    model: LoadedModel  # module None when it travels in ``script`` or is not needed (``onnx_export``)
    script: bytes | None  # a TorchScript module as ``torch.jit.save`` writes it (they do not pickle)
    onnx_export: bytes | None  # the driver's checked ONNX export, run by ONNX Runtime on CPU nodes


def _pack(model: LoadedModel, plan: _Plan, cache: PredictionCache | None) -> _Packed:
    """Pack ``model`` for the actors. On CPU clusters the driver prepares the backend a local run would use (the
    same `InferenceEngine.prepare`, so the export is taken from or kept in ``cache``) and ships ONNX Runtime's
    model instead of the torch module: no actor exports again or loads the network's Python package."""
    if plan.device == "cpu":
        engine = InferenceEngine(model, device="cpu", precision=plan.precision, cache=cache, num_workers=0, streams=1)
        engine.prepare()
        onnx_export = engine.onnx_export()
        if onnx_export is not None:
            return _Packed(replace(model, module=None), None, onnx_export)
    if isinstance(model.module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(model.module, buffer)
        return _Packed(replace(model, module=None), buffer.getvalue(), None)
    return _Packed(model, None, None)


def _unpack(packed: _Packed) -> tuple[LoadedModel, bytes | None]:
    """The model (with its module unless ONNX Runtime runs it) and the ONNX export, if any."""
    if packed.script is None:
        return packed.model, packed.onnx_export
    return replace(packed.model, module=torch.jit.load(io.BytesIO(packed.script), map_location="cpu")), None
