"""Inference on a real two-node Ray cluster (see conftest) against the local engine: same probabilities, the
cache honoured, a killed actor process retried, an unreachable address refused in one line."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrfail.cli import main
from cxrfail.errors import ClusterError, RayNotInstalledError
from cxrfail.inference import InferenceEngine, PredictionCache
from cxrfail.inference.ray_backend import run_inference_on_ray
from cxrfail.predictions import load_predictions_csv
from cxrfail.ray_cluster import describe_cluster, require_ray
from tests.inference.conftest import write_card_model

pytestmark = pytest.mark.ray

ACTOR_TITLE = "MapBatches(_ModelActor))"  # in the process title of a model actor (fused with decoding or not)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(root: int) -> list[int]:
    """Process ids under ``root`` (children, grandchildren, ...), read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def _model_actor_processes() -> list[int]:
    """This test session's Ray model-actor processes (their title names the actor class)."""
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if ACTOR_TITLE in title:
            pids.append(pid)
    return pids


def test_describe_cluster_counts_both_nodes(ray_cluster):
    assert describe_cluster(ray_cluster.address) == f"2 nodes, 4 CPUs, 0 GPUs at {ray_cluster.address}"


def test_all_621_demo_images_on_two_nodes_equal_the_local_engine_then_come_from_the_cache(
    ray_cluster, demo_image_paths, small_card_model, tmp_path
):
    local = InferenceEngine(small_card_model, num_workers=0).run(demo_image_paths)
    cache = PredictionCache(tmp_path / "cache")
    seen = []
    cold = run_inference_on_ray(
        small_card_model,
        demo_image_paths,
        ray_cluster.address,
        cache=cache,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(demo_image_paths) == 621 and cold.n_computed == 621 and cold.n_cached == 0 and not cold.failures
    assert list(cold.probabilities.index) == list(local.probabilities.index)
    np.testing.assert_allclose(cold.probabilities.to_numpy(), local.probabilities.to_numpy(), rtol=0, atol=1e-5)
    assert len(cold.images_per_node) == 2 and sum(cold.images_per_node.values()) == 621
    assert seen[0] == (0, 621) and seen[-1] == (621, 621)
    # CPU cluster: the driver exported the model once, into the cache, and the actors ran that export.
    assert len(list(cache.root.glob("*/*.onnx"))) == 1
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    warm = run_inference_on_ray(small_card_model, demo_image_paths, ray_cluster.address, cache=cache)
    assert warm.n_cached == 621 and warm.n_computed == 0 and not warm.images_per_node
    np.testing.assert_array_equal(warm.probabilities.to_numpy(), cold.probabilities.to_numpy())
    # The local engine serves the same cache entries: the Ray run wrote under the local engine's key.
    served = InferenceEngine(small_card_model, num_workers=0, cache=cache).run(demo_image_paths[:5])
    assert served.n_cached == 5


def test_a_killed_model_actor_costs_a_retry_not_the_run(ray_cluster, demo_image_paths, small_card_model):
    images = demo_image_paths[:96]
    killed = []

    def kill_an_actor_once(done: int, total: int) -> None:
        if done > 0 and not killed:
            victims = _model_actor_processes()
            assert victims, "no model actor process found"
            os.kill(victims[0], signal.SIGKILL)
            killed.append(victims[0])

    result = run_inference_on_ray(
        small_card_model, images, ray_cluster.address, batch_size=2, progress=kill_an_actor_once
    )
    assert killed and result.n_computed == 96 and not result.failures
    local = InferenceEngine(small_card_model, num_workers=0).run(images)
    np.testing.assert_allclose(result.probabilities.to_numpy(), local.probabilities.to_numpy(), rtol=0, atol=1e-5)


def test_infer_cli_on_the_cluster_writes_the_local_csv(ray_cluster, demo_image_paths, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in demo_image_paths[:6]:
        (folder / path.name).symlink_to(path)
    (folder / "broken.png").write_bytes(demo_image_paths[0].read_bytes()[:500])
    card_path = write_card_model(tmp_path / "card")
    monkeypatch.setenv("CXRFAIL_RAY_ADDRESS", ray_cluster.address)
    common = ["infer", "--model", str(card_path), "--images", str(folder), "--no-cache"]
    assert main([*common, "--out", str(tmp_path / "ray.csv"), "--ray"]) == 0
    captured = capsys.readouterr()
    assert "6 of 7 images predicted" in captured.out and " Ray node" in captured.out
    assert "broken.png: image decoding failed" in captured.err
    monkeypatch.delenv("CXRFAIL_RAY_ADDRESS")
    assert main([*common, "--out", str(tmp_path / "local.csv"), "--num-workers", "0"]) == 0
    on_ray, local = load_predictions_csv(tmp_path / "ray.csv"), load_predictions_csv(tmp_path / "local.csv")
    np.testing.assert_allclose(
        on_ray.probabilities.loc[local.probabilities.index].to_numpy(),
        local.probabilities.to_numpy(),
        rtol=0,
        atol=1e-5,
    )


def test_an_unreachable_address_is_exit_2_and_one_line(tmp_path, demo_image_paths, capsys):
    card_path = write_card_model(tmp_path / "card")
    port = _closed_port()
    status = main(
        [
            "infer",
            "--model",
            str(card_path),
            "--images",
            str(demo_image_paths[0].parent),
            "--out",
            str(tmp_path / "preds.csv"),
            "--ray",
            f"127.0.0.1:{port}",
        ]
    )
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cxrfail: error: cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert not (tmp_path / "preds.csv").exists()
    with pytest.raises(ClusterError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        describe_cluster(f"127.0.0.1:{port}")


def test_a_missing_ray_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when Ray is not installed
    with pytest.raises(RayNotInstalledError, match=r"pip install 'cxrfail\[ray\]'"):
        require_ray()
