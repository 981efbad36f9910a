"""Ray overhead: the local engine against a two-node Ray cluster on the same machine, on the demo images.

Model: the torchxrayvision DenseNet-121 of `inference_bench` (18 outputs, 224 px, seed-0 random weights with
batch norm statistics from eight of the images), loaded through ``xrv:densenet121@<file>``; fp32 on the CPU.
Data: the 621 shared NIH ChestX-ray14 PNGs (512 x 512), or the first --images of them.

- Local: `InferenceEngine.run` (default batch size, decoding workers and streams), no cache.
- Ray: `run_inference_on_ray` on a `ray.cluster_utils.Cluster` of two nodes on 127.0.0.1 (CPUs split between
  them, 80 MB object store each, no dashboard, usage statistics off), no cache; connecting is included, starting
  the cluster is not.
Both share this machine's cores, so the cluster cannot be faster: the ratio is Ray's overhead (scheduling,
object-store copies, per-node model replicas). The local run goes first and again last; its faster time is
the baseline. Also printed: images/s per core of each, the figure the README's scale-out estimate uses.

Run: .venv/bin/python bench/ray_bench.py [--images N]
Last line: ``ray_overhead: <Ray seconds / local seconds>`` (goal <= 1.5).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep every Ray address on 127.0.0.1
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no reports to usage-stats.ray.io (as in tests/ray/conftest.py)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_bench import IMAGES, random_xrv_densenet  # noqa: E402

from cxrfail.inference import InferenceEngine, load_model  # noqa: E402
from cxrfail.inference.ray_backend import run_inference_on_ray  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=621, help="how many of the demo images (default 621)")
    args = parser.parse_args()
    paths = sorted(IMAGES.glob("*.png"))[: args.images]
    cores = os.cpu_count() or 1
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "densenet121-seed0.pt"
        torch.save(random_xrv_densenet(paths[-8:]).state_dict(), weights)
        model = load_model(f"xrv:densenet121@{weights}")

        def local_seconds() -> float:
            started = time.perf_counter()
            InferenceEngine(model).run(paths)
            return time.perf_counter() - started

        first = local_seconds()
        node = {"num_cpus": max(1, cores // 2), "object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
        cluster = Cluster(
            initialize_head=True, shutdown_at_exit=False, head_node_args={**node, "include_dashboard": False}
        )
        try:
            cluster.add_node(**node)
            cluster.wait_for_nodes()
            started = time.perf_counter()
            result = run_inference_on_ray(model, paths, cluster.address)
            ray_seconds = time.perf_counter() - started
        finally:
            cluster.shutdown()
        local = min(first, local_seconds())
    print(f"images: {len(paths)}, cores: {cores}, nodes: {result.images_per_node}")
    print(f"local: {local:.1f} s ({len(paths) / local / cores:.2f} images/s per core)")
    print(f"ray (2 nodes): {ray_seconds:.1f} s ({len(paths) / ray_seconds / cores:.2f} images/s per core)")
    print(f"ray_overhead: {ray_seconds / local:.2f}")


if __name__ == "__main__":
    main()
