"""Inference speed: the engine against a naive per-image loop, then a warm re-run served from the cache.

Model: a torchxrayvision DenseNet-121 (18 outputs, 224 px, 1 channel) with seed-0 random weights and batch norm
statistics from eight of the images (so that its probabilities are not saturated), saved to a temporary file and
loaded through ``xrv:densenet121@<file>`` (no chest X-ray weights are available offline; the weight values do
not change the speed). fp32 on the CPU unless --device says otherwise.
Data: the 621 shared NIH ChestX-ray14 PNGs (512 x 512).

- Naive (same process): for each image, `read_image`, `preprocess`, then ``model(x[None])`` under
  ``torch.no_grad`` and a sigmoid, one image at a time, as a notebook would. Half of the images run before the
  engine and half after, so that a change in machine load affects both sides alike.
- Engine, cold: `InferenceEngine.run` over the folder (default batch size, workers and backend: ONNX Runtime on
  CPU when installed) with an empty prediction cache. The backend is prepared first (``engine.prepare()``: the
  one-off ONNX export and its check against torch, cached beside the predictions, like model loading a cost
  paid once per model) and timed on its own line; the line before the last gives the speedup with it included.
- Engine, warm: the same run again, served from the cache (every image is still hashed).
- Forward passes alone: the engine's `predict_batch` on `FORWARD_IMAGES` images decoded beforehand, its streams
  in parallel: the ceiling of a cold run on this machine (decoding and hashing then run beside it on the same cores).
- Whole process (``--process``, or alone with ``--process-only``): ``cxrfail infer`` over `PROCESS_IMAGES` images
  as a command, the model's ONNX export already cached (one earlier ``cxrfail infer`` on other images made it),
  against a plain per-image torch loop as its own Python process (import torch and torchxrayvision, load the
  same weights, decode, preprocess, forward one image at a time, write a CSV). Both wall times include start-up,
  imports and model loading: what a user waits for. Best of `PROCESS_REPEATS` runs each, alternating. On a busy
  machine the plain loop's default threads (one per core) lose far more to contention than the engine's
  one-thread streams; ``--plain-threads 1`` gives the comparison with a plain loop that does not contend.
Model loading is timed separately and is in neither. The engine's probabilities are checked against the naive
ones, and written to ``bench/out/inference_predictions.csv`` (loadable by ``cxrfail analyze --predictions``).

Run: .venv/bin/python bench/inference_bench.py [--device cuda] [--backend torch] [--naive-images N] [--process]
     .venv/bin/python bench/inference_bench.py --process-only      (the whole-process line alone)
Last line: ``speedup: <engine cold images/s / naive images/s>`` (target >= 2.5 on 2 CPU cores); the lines
before give the warm re-run against the cold run (target >= 50) and the speedup counting the export.
With --process, a line ``process_speedup: <plain loop process s / cxrfail infer process s>`` (target >= 1.8).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cxrfail.demo import demo_location
from cxrfail.inference import InferenceEngine, PredictionCache, list_images, load_model, preprocess, read_image
from cxrfail.inference.cards import Preprocessing, range_normalization

IMAGES = demo_location() / "images"
OUT = Path(__file__).resolve().parent / "out"
#: Images decoded beforehand for the forward-passes-alone rate.
FORWARD_IMAGES = 64
#: Images of the whole-process comparison, and how many runs of each process (the best counts).
PROCESS_IMAGES = 160
PROCESS_REPEATS = 3
#: The plain per-image loop as a script: argv = weights file, image folder, output CSV.
PLAIN_LOOP = """
import sys
from pathlib import Path

import numpy as np
import torch
import torchxrayvision as xrv
from PIL import Image

weights, folder, out = sys.argv[1:4]
module = xrv.models.DenseNet(weights=None, num_classes=18)
module.load_state_dict(torch.load(weights, weights_only=True))
module.eval()
rows = []
with torch.no_grad():
    for path in sorted(Path(folder).glob("*.png")):
        pixels = np.asarray(Image.open(path).convert("L").resize((224, 224), Image.BILINEAR), dtype=np.float32)
        x = torch.from_numpy(pixels / 255.0 * 2048.0 - 1024.0)[None, None]
        rows.append((path.name, *torch.sigmoid(module(x))[0].tolist()))
with open(out, "w") as handle:
    handle.writelines(",".join(map(str, row)) + "\\n" for row in rows)
"""


def naive_loop(model, paths: list[Path], device: torch.device) -> np.ndarray:
    """Probabilities (images, findings): decode, preprocess and forward one image at a time."""
    rows = []
    with torch.no_grad():
        for path in paths:
            x = preprocess(read_image(path), model.card.preprocessing)[None].to(device)
            rows.append(torch.sigmoid(model.module(x))[0, list(model.output_indices)].cpu().numpy())
    return np.stack(rows)


def forward_rate(engine: InferenceEngine, inputs: torch.Tensor) -> float:
    """Images/s of the engine's forward passes alone over ``inputs`` (N, C, H, W), batches of the engine's batch
    size run by as many threads as it has streams (after one warm-up batch), with the engine's threads per
    stream."""
    batches = list(torch.split(inputs, engine.batch_size))
    engine.predict_batch(batches[0])
    with engine.stream_threads(), ThreadPoolExecutor(engine.streams) as pool:
        started = time.perf_counter()
        list(pool.map(engine.predict_batch, batches))
        return len(inputs) / (time.perf_counter() - started)


def random_xrv_densenet(calibration_images: list[Path]) -> torch.nn.Module:
    """A seed-0 torchxrayvision DenseNet-121 whose batch norm statistics are those of ``calibration_images``."""
    import torchxrayvision as xrv

    torch.manual_seed(0)
    module = xrv.models.DenseNet(weights=None, num_classes=18)
    xrv_input = Preprocessing(224, 224, 1, *range_normalization(-1024, 1024, channels=1))
    sample = torch.stack([preprocess(read_image(path), xrv_input) for path in calibration_images])
    for layer in module.modules():  # batch norm statistics of the sample: unsaturated outputs on radiographs
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average: after one batch, exactly its statistics
    module.train()
    with torch.no_grad():
        module(sample)
    return module.eval()


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``command`` as a fresh process (its output discarded; a failure stops the bench)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return time.perf_counter() - started


def process_comparison(
    paths: list[Path],
    weights: Path,
    scratch: Path,
    device: str,
    backend: str,
    repeats: int = PROCESS_REPEATS,
    plain_threads: int | None = None,
) -> float:
    """``cxrfail infer`` over `PROCESS_IMAGES` images (the ONNX export cached, the predictions not) against the
    plain loop, each a whole process; prints both and returns plain seconds / infer seconds. ``plain_threads``:
    the plain loop's torch threads (OMP_NUM_THREADS; default torch's own choice, one per core)."""
    chosen, warmup, warm_cache = scratch / "process-images", scratch / "process-warmup", scratch / "process-cache"
    for folder, part in ((chosen, paths[:PROCESS_IMAGES]), (warmup, paths[-8:])):
        folder.mkdir()
        for path in part:
            shutil.copy(path, folder / path.name)
    cli = [
        sys.executable,
        "-m",
        "cxrfail.cli",
        "infer",
        "--model",
        f"xrv:densenet121@{weights}",
        "--device",
        device,
        "--backend",
        backend,
    ]
    # an earlier run on other images: the export is made and cached; the timed runs start from a copy of that cache
    _timed([*cli, "--cache-dir", str(warm_cache), "--images", str(warmup), "--out", str(scratch / "warmup.csv")])
    infer_s, plain_s = [], []
    plain_env = None if plain_threads is None else {**os.environ, "OMP_NUM_THREADS": str(plain_threads)}
    for repeat in range(repeats):
        cache = scratch / f"process-cache-{repeat}"
        shutil.copytree(warm_cache, cache)
        infer_s.append(
            _timed([*cli, "--cache-dir", str(cache), "--images", str(chosen), "--out", str(scratch / "infer.csv")])
        )
        plain_s.append(
            _timed([sys.executable, "-c", PLAIN_LOOP, str(weights), str(chosen), str(scratch / "plain.csv")], plain_env)
        )
    infer, plain = min(infer_s), min(plain_s)
    print(
        f"whole process, {PROCESS_IMAGES} images: cxrfail infer {infer:.2f} s (runs "
        f"{', '.join(f'{s:.2f}' for s in infer_s)}; ONNX export cached, predictions not); plain per-image torch "
        f"loop {plain:.2f} s (runs {', '.join(f'{s:.2f}' for s in plain_s)}; torch threads: "
        f"{plain_threads or 'default'})"
    )
    return plain / infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--backend", default="auto", help="auto, torch or onnxruntime")
    parser.add_argument(
        "--naive-images", type=int, default=None, help="run the naive loop on this many images only (default: all)"
    )
    parser.add_argument(
        "--process", action="store_true", help="also time cxrfail infer against a plain loop as whole processes"
    )
    parser.add_argument("--process-only", action="store_true", help="only the whole-process comparison")
    parser.add_argument(
        "--process-repeats",
        type=int,
        default=PROCESS_REPEATS,
        help="runs of each process (the best counts; default %(default)s)",
    )
    parser.add_argument(
        "--plain-threads",
        type=int,
        default=None,
        help="torch threads of the plain loop process (default: torch's, one per core)",
    )
    args = parser.parse_args()
    paths = [path for _, path in list_images(IMAGES)]
    naive_paths = paths if args.naive_images is None else paths[: args.naive_images]
    with tempfile.TemporaryDirectory(prefix="cxrfail-bench-") as scratch:
        weights = Path(scratch) / "densenet121-seed0.pt"
        torch.save(random_xrv_densenet(paths[-8:]).state_dict(), weights)
        if args.process or args.process_only:
            process_speedup = process_comparison(
                paths, weights, Path(scratch), args.device, args.backend, args.process_repeats, args.plain_threads
            )
            if args.process_only:
                print(f"process_speedup: {process_speedup:.2f}")
                return
        started = time.perf_counter()
        model = load_model(f"xrv:densenet121@{weights}")
        load_s = time.perf_counter() - started
        engine = InferenceEngine(
            model, device=args.device, cache=PredictionCache(Path(scratch) / "cache"), backend=args.backend
        )
        started = time.perf_counter()
        backend = engine.prepare()
        prepare_s = time.perf_counter() - started
        naive_model = load_model(f"xrv:densenet121@{weights}")
        naive_model.module.to(engine.device)
        print(f"images: {len(paths)} from {IMAGES}")
        print(
            f"device: {engine.device} ({torch.get_num_threads()} threads, {os.cpu_count()} cores), precision "
            f"{engine.precision}, batch size {engine.batch_size}, {engine.streams} streams, "
            f"{engine.num_workers} decoding workers, backend {backend}"
        )
        print(f"model load: {load_s:.2f} s; backend prepare (one-off ONNX export and check): {prepare_s:.2f} s")

        half = len(naive_paths) // 2
        started = time.perf_counter()
        naive_first = naive_loop(naive_model, naive_paths[:half], engine.device)
        naive_s = time.perf_counter() - started
        started = time.perf_counter()
        cold = engine.run(IMAGES)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        naive_second = naive_loop(naive_model, naive_paths[half:], engine.device)
        naive_s += time.perf_counter() - started
        started = time.perf_counter()
        warm = engine.run(IMAGES)
        warm_s = time.perf_counter() - started
        inputs = torch.stack(
            [preprocess(read_image(path), model.card.preprocessing) for path in paths[:FORWARD_IMAGES]]
        )
        forward_only = forward_rate(engine, inputs)

    naive = np.concatenate([naive_first, naive_second])
    engine_rows = cold.probabilities.loc[[p.relative_to(IMAGES).as_posix() for p in naive_paths]].to_numpy()
    assert warm.n_cached == len(paths) and warm.n_computed == 0
    assert warm.probabilities.equals(cold.probabilities)
    OUT.mkdir(exist_ok=True)
    cold.to_csv(OUT / "inference_predictions.csv")
    naive_rate, cold_rate, warm_rate = len(naive_paths) / naive_s, len(paths) / cold_s, len(paths) / warm_s
    print(f"naive loop:  {naive_rate:8.2f} images/s ({len(naive_paths)} images, {naive_s:.1f} s)")
    print(f"engine cold: {cold_rate:8.2f} images/s ({len(paths)} images, {cold_s:.1f} s, {len(cold.failures)} failed)")
    print(f"engine warm: {warm_rate:8.2f} images/s ({len(paths)} images from the cache, {warm_s:.3f} s)")
    print(
        f"forward passes alone: {forward_only:8.2f} images/s ({FORWARD_IMAGES} decoded images; the cold run "
        f"reaches {cold_rate / forward_only:.0%} of it)"
    )
    print(f"max |engine - naive| probability: {np.abs(engine_rows - naive).max():.2e}")
    print(f"predictions written to {OUT / 'inference_predictions.csv'}")
    print(f"cache speedup (warm vs cold run): {cold_s / warm_s:.1f}")
    print(f"speedup including the backend prepare: {len(paths) / (cold_s + prepare_s) / naive_rate:.2f}")
    if args.process:
        print(f"process_speedup: {process_speedup:.2f}")
    print(f"speedup: {cold_rate / naive_rate:.2f}")


if __name__ == "__main__":
    main()
