"""Issue 21 items 7 and 12: ``--ray`` against an address that answers but never becomes a cluster gives up
after a deadline with one line (exit 2) that says how to reach a loopback cluster; ``cache clear --cache-dir X``
clears X only, never the default cache."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cxrfail.cache import TableStore
from cxrfail.cli import main

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_port():
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a port that "answers")."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    server.close()


def test_ray_against_a_port_that_never_becomes_a_cluster_exits_2_with_one_line(silent_port, tmp_path):
    pytest.importorskip("ray")
    from tests.inference.conftest import NIH_IMAGES, write_card_model

    card = write_card_model(tmp_path / "model")
    (tmp_path / "images").mkdir()
    for image in sorted(NIH_IMAGES.glob("*.png"))[:2]:
        (tmp_path / "images" / image.name).write_bytes(image.read_bytes())
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT),
        "CXRFAIL_RAY_CONNECT_TIMEOUT_S": "8",
        "RAY_USAGE_STATS_ENABLED": "0",
        "CXRFAIL_CACHE_DIR": str(tmp_path / "cache"),
    }
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxrfail.cli",
            "infer",
            "--model",
            str(card),
            "--images",
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / "out.csv"),
            "--ray",
            f"127.0.0.1:{silent_port}",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    elapsed = time.monotonic() - started
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr[-3000:]
    assert lines[-1].startswith("cxrfail: error: ") and "did not accept a connection within 8 s" in lines[-1]
    assert "--node-ip-address=127.0.0.1" in lines[-1]
    assert "Traceback" not in run.stderr
    assert elapsed < 200


def test_cache_clear_with_a_cache_dir_leaves_the_default_cache(tmp_path, monkeypatch, capsys):
    import pandas as pd

    default = tmp_path / "default"
    monkeypatch.setenv("CXRFAIL_CACHE_DIR", str(default))
    TableStore(default).save("kept", {"t": pd.DataFrame({"x": [1]})}, {})
    other = tmp_path / "other"
    TableStore(other).save("gone", {"t": pd.DataFrame({"x": [1]})}, {})
    (other / "inference" / "m").mkdir(parents=True)
    (other / "inference" / "m" / "model.json").write_text("{}")
    assert main(["cache", "clear", "--cache-dir", str(other / "inference")]) == 0
    assert TableStore(default).load("kept") is not None
    assert not (other / "inference" / "m").exists()
    assert main(["cache", "clear", "--cache-dir", str(other)]) == 0
    assert TableStore(other).load("gone") is None and TableStore(default).load("kept") is not None
    assert main(["cache", "clear"]) == 0
    assert TableStore(default).load("kept") is None
