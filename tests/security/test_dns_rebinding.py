"""Issue 21 item 1: loopback is a boundary. A real dashboard server (``streamlit run app.py`` on a free loopback
port) refuses the WebSocket that drives a session when the browser reached it under another host name (a web
page that rebound ``evil.example`` to 127.0.0.1), and accepts it under its own names."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_port(tmp_path_factory):
    port = _free_port()
    streamlit = Path(sys.executable).parent / "streamlit"
    env = {**os.environ, "CXRFAIL_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "PYTHONPATH": str(PROJECT)}
    server = subprocess.Popen(
        [str(streamlit), "run", "app.py", "--server.port", str(port)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start listening")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _upgrade_status(port: int, host: str) -> int:
    """HTTP status of a WebSocket upgrade to /_stcore/stream sent to 127.0.0.1:port with ``Host: host:port`` and
    the matching Origin (what a browser sends on a page served under that name)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: http://{host}:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request.encode())
        response = b""
        while b"\r\n" not in response:
            chunk = connection.recv(4096)
            if not chunk:
                break
            response += chunk
    status_line = response.split(b"\r\n", 1)[0].decode(errors="replace")
    assert status_line.startswith("HTTP/1.1 "), status_line
    return int(status_line.split()[1])


def test_a_rebound_host_name_cannot_open_a_session(server_port):
    assert _upgrade_status(server_port, "evil.example") != 101


def test_the_dashboards_own_names_open_a_session(server_port):
    assert _upgrade_status(server_port, "127.0.0.1") == 101
    assert _upgrade_status(server_port, "localhost") == 101
