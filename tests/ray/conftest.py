"""A real two-node Ray cluster on this machine, for the session: loopback only, 80 MB object store per node, no
dashboard. Started by the first test that needs it and stopped (every process it started) at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.inference.conftest import NIH_IMAGES, write_card_model

# Ray replaces a loopback address with the machine's network address when a driver connects (so that remote
# nodes could reach it); this keeps every address of the test cluster, and of the tests' drivers, on 127.0.0.1.
# Read when ray is first imported, so set before any test imports it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Ray's usage statistics: otherwise the head reports to usage-stats.ray.io every minute, and the first Ray Data run
# starts a usage-collection actor. Read by the cluster's processes, which inherit this environment.
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

NODE_ARGS = {"num_cpus": 2, "object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="session")
def ray_cluster():
    """The `ray.cluster_utils.Cluster` (head plus one worker node); ``.address`` is its HOST:PORT."""
    pytest.importorskip("ray", reason="the Ray extra is not installed")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, shutdown_at_exit=False, head_node_args={**NODE_ARGS, "include_dashboard": False}
    )
    try:
        cluster.add_node(**NODE_ARGS)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def demo_image_paths() -> list[Path]:
    """The 621 shared NIH ChestX-ray14 PNGs (512 x 512, 8-bit grayscale), sorted by name."""
    if not NIH_IMAGES.is_dir():
        pytest.skip(f"shared images not found at {NIH_IMAGES}")
    return sorted(NIH_IMAGES.glob("*.png"))


@pytest.fixture(scope="session")
def small_card_model(tmp_path_factory):
    """A DenseNet-121 model card at 64 px (5 outputs, seeded random weights), loaded: small enough on 2 cores
    for all 621 demo images several times over."""
    from cxrfail.inference.models import load_model

    return load_model(write_card_model(tmp_path_factory.mktemp("ray-model")))
