"""The inference subcommands of ``cxrfail``: ``infer``, ``models pull``, ``cache ls``, ``cache clear``.

`add_inference_commands` adds them to the main parser's subparsers; each sets ``handler``, a function that takes the
parsed arguments and returns the exit status. Handlers raise `InferenceError` for anything the user can fix.
Building the parser imports neither torch nor pyarrow: the handlers import what they need.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cxrfail.inference.cards import BACKENDS, PRECISIONS, SPEC_HELP
from cxrfail.inference.errors import InferenceError
from cxrfail.ray_cluster import add_ray_option

if TYPE_CHECKING:
    from cxrfail.inference.engine import InferenceResult

_FAILURES_SHOWN = 20


def add_inference_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``infer``, ``models pull``, ``cache ls`` and ``cache clear`` to ``subparsers``."""
    infer = subparsers.add_parser(
        "infer",
        help="run a model over a folder of images and write a predictions CSV",
        description="Run a model over every PNG, JPEG and DICOM image under --images and write one row of "
        "probabilities per image to --out (the prediction-file format of `cxrfail analyze "
        "--predictions`). Results are cached: a re-run computes only new or changed images.",
    )
    infer.add_argument("--model", required=True, metavar="SPEC", help=SPEC_HELP)
    infer.add_argument("--images", required=True, type=Path, metavar="DIR", help="folder of images (recursive)")
    infer.add_argument("--out", required=True, type=Path, metavar="CSV", help="predictions CSV to write")
    infer.add_argument(
        "--allow-torchscript",
        action="store_true",
        help="allow a TorchScript model (.pt/.ts/.pth): loading one RUNS CODE from the file",
    )
    infer.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    infer.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="images per forward pass (default: 8 on CPU, 64 on CUDA)",
    )
    infer.add_argument(
        "--num-workers",
        type=int,
        default=None,
        metavar="N",
        help="decoding worker processes (default: min(2, CPU cores); 0 decodes in-process)",
    )
    infer.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help="auto: fp32 on CPU, bf16/fp16 autocast on CUDA"
    )
    infer.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: ONNX Runtime on CPU in fp32 when installed (exported once, cached), else torch",
    )
    _add_cache_dir(infer)
    infer.add_argument("--no-cache", action="store_true", help="compute everything and cache nothing")
    add_ray_option(
        infer,
        "run on a Ray cluster (HOST:PORT, auto, ray://HOST:PORT; default $CXRFAIL_RAY_ADDRESS, "
        "which also turns this on): decoding on CPU workers, the model on one GPU per actor "
        "where the cluster has GPUs; images must be at the same path on every node",
    )
    infer.add_argument(
        "--gpus-per-actor",
        type=float,
        default=1.0,
        metavar="N",
        help="with --ray: GPUs each model replica reserves (default 1; 0.5 puts two on a GPU)",
    )
    infer.set_defaults(handler=run_infer)

    models = subparsers.add_parser("models", help="model weights").add_subparsers(dest="models_command", required=True)
    pull = models.add_parser(
        "pull",
        help="download official torchxrayvision weights",
        description="Download the official weights of a torchxrayvision model into "
        "torchxrayvision's cache folder (needs a network).",
    )
    pull.add_argument("name", help="torchxrayvision weights name, e.g. densenet121-res224-all, nih, resnet50")
    pull.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder to store the weights in (default: ~/.torchxrayvision/models_data)",
    )
    pull.add_argument("--url", default=None, help="download from this address instead (a mirror)")
    pull.set_defaults(handler=run_models_pull)

    cache = subparsers.add_parser("cache", help="the on-disk caches (predictions, analysis results)").add_subparsers(
        dest="cache_command", required=True
    )
    listing = cache.add_parser("ls", help="list cached models")
    _add_cache_dir(listing)
    listing.set_defaults(handler=run_cache_ls)
    clear = cache.add_parser(
        "clear",
        help="remove cached predictions, and (without --key) analysis results "
        "and figure packs: in $CXRFAIL_CACHE_DIR, or only in --cache-dir",
    )
    _add_cache_dir(clear)
    clear.add_argument("--key", default=None, help="remove only this model key (see `cxrfail cache ls`)")
    clear.set_defaults(handler=run_cache_clear)


def run_infer(args: argparse.Namespace) -> int:
    """``cxrfail infer``: predict, write the CSV, report failures on stderr."""
    from tqdm import tqdm

    from cxrfail.inference.cache import PredictionCache
    from cxrfail.inference.engine import InferenceEngine
    from cxrfail.inference.models import load_model
    from cxrfail.ray_cluster import resolve_ray_address

    address = resolve_ray_address(args.ray)
    # lazily: with the model's ONNX export cached, the engine never builds the torch network (nor imports
    # torchxrayvision); the Ray backend ships the network itself
    model = load_model(args.model, allow_torchscript=args.allow_torchscript, lazy=address is None)
    cache = None if args.no_cache else PredictionCache(args.cache_dir)
    if address is None:
        engine = InferenceEngine(
            model,
            device=args.device,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            cache=cache,
            precision=args.precision,
            backend=args.backend,
        )
    with tqdm(desc=model.name, unit="img", file=sys.stderr, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        if address is None:
            result = engine.run(args.images, progress=progress)
        else:
            from cxrfail.inference.ray_backend import run_inference_on_ray

            result = run_inference_on_ray(
                model,
                args.images,
                address,
                cache=cache,
                batch_size=args.batch_size,
                precision=args.precision,
                gpus_per_actor=args.gpus_per_actor,
                progress=progress,
            )
    _report_failures(result)
    if result.probabilities.empty:
        first = result.failures[0]
        raise InferenceError(
            f"none of the {len(result.failures)} images could be read; first: {first.path}: {first.reason}",
            path=args.images,
        )
    result.to_csv(args.out)
    print(f"{result.summary()}; wrote {args.out}")
    return 0


def run_models_pull(args: argparse.Namespace) -> int:
    """``cxrfail models pull NAME``: download (or verify) the weights and print where they are."""
    from cxrfail.inference.models import pull_xrv_weights

    print(pull_xrv_weights(args.name, cache_dir=args.dir, url=args.url))
    return 0


def run_cache_ls(args: argparse.Namespace) -> int:
    """``cxrfail cache ls``: one line per cached model."""
    from cxrfail.inference.cache import PredictionCache

    cache = PredictionCache(args.cache_dir)
    entries = cache.entries()
    if not entries:
        print(f"no cached predictions in {cache.root}")
        _print_result_caches()
        return 0
    print(f"{'key':<24}  {'images':>7}  {'MB':>8}  {'modified':<16}  model")
    for entry in entries:
        modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.modified))
        print(
            f"{entry.key:<24}  {entry.n_images:>7}  {entry.n_bytes / 1e6:>8.2f}  {modified:<16}  "
            f"{entry.model_name} ({entry.identity.get('precision', '?')})"
        )
    print(f"{len(entries)} models in {cache.root}")
    _print_result_caches()
    return 0


def _print_result_caches() -> None:
    from cxrfail.cache import default_cache_dir, result_cache_usage

    root = default_cache_dir()
    usage = result_cache_usage(root)
    n_results, results_bytes = usage["analysis"]
    n_packs, packs_bytes = usage["figures"]
    print(
        f"{n_results} analysis results ({results_bytes / 1e6:.1f} MB) and {n_packs} report figure packs "
        f"({packs_bytes / 1e6:.1f} MB) in {root}"
    )


def run_cache_clear(args: argparse.Namespace) -> int:
    """``cxrfail cache clear``: remove all cached predictions, or one model's (``--key``), and without ``--key``
    the analysis results and figure packs. With ``--cache-dir DIR`` only what is in DIR is touched: DIR as a
    prediction cache folder, and DIR as a cache root (``DIR/inference``, ``DIR/analysis``, ``DIR/figures``:
    what ``cxrfail analyze --cache-dir DIR`` writes); the default cache is left alone."""
    from cxrfail.cache import clear_result_caches, default_cache_dir, validate_cache_key
    from cxrfail.inference.cache import PredictionCache

    key = None if args.key is None else validate_cache_key(args.key)
    if args.cache_dir is None:
        prediction_folders, result_root = [PredictionCache().root], default_cache_dir()
    else:
        prediction_folders, result_root = [args.cache_dir, args.cache_dir / "inference"], args.cache_dir
    removed = 0
    for folder in prediction_folders:
        cache = PredictionCache(folder)
        count = cache.clear(key)
        removed += count
        if count:
            print(f"removed {count} cached models from {cache.root}")
    if key is not None and removed == 0:
        raise InferenceError(
            f"no cached model with key {args.key!r}",
            path=prediction_folders[0],
            fix="See `cxrfail cache ls` for the keys",
        )
    if removed == 0:
        print(f"no cached models in {prediction_folders[0]}")
    if key is None:
        print(f"removed {clear_result_caches(result_root)} analysis results and figure packs from {result_root}")
    return 0


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="prediction cache folder (default: $CXRFAIL_CACHE_DIR/inference, or "
        "~/.cache/cxrfail/inference when unset)",
    )


def _report_failures(result: InferenceResult) -> None:
    for failure in result.failures[:_FAILURES_SHOWN]:
        print(f"warning: skipped {failure.path}: {failure.reason}", file=sys.stderr)
    if len(result.failures) > _FAILURES_SHOWN:
        print(f"warning: and {len(result.failures) - _FAILURES_SHOWN} more unreadable images", file=sys.stderr)
