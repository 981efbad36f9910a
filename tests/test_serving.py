"""`make run` serves on loopback only: start `streamlit run app.py` with the command line the Makefile builds
(the venv's streamlit, a free port) and read the listening sockets of that port with ``ss``."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on ``port`` (e.g. ``127.0.0.1``, ``[::]``, ``*``)."""
    listing = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return [line.split()[3].rsplit(":", 1)[0] for line in listing.stdout.splitlines() if line.strip()]


def test_config_binds_to_loopback():
    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert 1 <= config["server"]["maxUploadSize"] <= 100


@pytest.mark.skipif(shutil.which("ss") is None or shutil.which("make") is None, reason="needs ss and make")
def test_make_run_listens_on_loopback_only(tmp_path):
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    dry_run = subprocess.run(
        ["make", "-s", "-n", "run", "STAMP=", f"BIN={bin_dir}", f"PORT={port}"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    command = shlex.split(dry_run.stdout.strip().splitlines()[-1])
    assert command[:3] == [str(bin_dir / "streamlit"), "run", "app.py"]
    env = {**os.environ, "CXRFAIL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(PROJECT)}
    server = subprocess.Popen(
        command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        addresses: list[str] = []
        while not addresses and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.5)
            addresses = _listening_addresses(port)
        assert addresses, "streamlit did not start listening"
        time.sleep(1.0)  # a second (IPv6) socket would appear right after the first
        assert set(_listening_addresses(port)) == {"127.0.0.1"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
