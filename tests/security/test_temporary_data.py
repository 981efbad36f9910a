"""Issue 21 item 9: temporary patient data lives in a private folder removed on every exit path, SIGTERM
included, and the worker processes go with it: a real ``cxrfail analyze`` stopped with SIGTERM while its
workers analyse pairs, and a real dashboard server stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cxrfail.files import child_pids, staged_folder

PROJECT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _wait_for(condition, timeout_s: float = TIMEOUT_S, poll_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return False


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if "cxrfail" in p.name or p.name == "inputs.pickle"]


def test_sigterm_during_an_analysis_removes_its_inputs_file_and_stops_its_workers(tmp_path, shared_demo_dir):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(scratch),
        "PYTHONPATH": str(PROJECT),
        "CXRFAIL_CACHE_DIR": str(tmp_path / "cache"),
        "CXRFAIL_DEMO_DIR": str(shared_demo_dir),
    }
    command = [
        sys.executable,
        "-m",
        "cxrfail.cli",
        "analyze",
        "--findings",
        "Edema",
        "Cardiomegaly",
        "--no-cache",
        "--no-figures",
        "--out",
        str(tmp_path / "report"),
    ]
    run = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: any(scratch.rglob("inputs.pickle")) or run.poll() is not None)
        assert run.poll() is None, run.stderr.read().decode()[-2000:]
        workers = child_pids(run.pid)
        assert workers
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert _leftovers(scratch) == []
    assert _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), timeout_s=20)
    assert not (tmp_path / "report").exists()
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


def test_sigterm_stops_the_dashboard_and_removes_its_private_folder(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(PROJECT), "CXRFAIL_CACHE_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.port", str(port)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert _wait_for(lambda: any(scratch.glob("cxrfail-proc-*")), timeout_s=120)
        private = next(scratch.glob("cxrfail-proc-*"))
        assert private.stat().st_mode & 0o077 == 0
        (private / "cxrfail-upload-x").mkdir()
        (private / "cxrfail-upload-x" / "cohort.csv").write_text("patient data")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert list(scratch.iterdir()) == []


def test_a_staging_folder_left_by_a_killed_writer_is_removed_by_the_next(tmp_path):
    code = (
        "import os, sys\nfrom cxrfail.files import staged_folder\n"
        f"with staged_folder({str(tmp_path / 'report')!r}) as staging:\n"
        "    (staging / 'table.csv').write_text('partial')\n    os._exit(9)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)}, check=False
    )
    assert [p for p in tmp_path.iterdir() if "staging" in p.name]
    with staged_folder(tmp_path / "report") as staging:
        (staging / "table.csv").write_text("complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
