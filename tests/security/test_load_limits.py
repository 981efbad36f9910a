"""Issue 21 item 11: load is bounded. Runs per session and in total (with a queue position), upload count and
bytes per session, byte-sized memory caches, and a server-wide memory ceiling that refuses new work with a
clear message; exercised with real threads and the real process tree."""

from __future__ import annotations

import threading
import time

import pytest

from cxrfail.dashboard import limits
from cxrfail.dashboard.limits import ByteCache, LoadLimitError, RunGate


def test_a_sessions_next_runs_wait_behind_its_own_and_beyond_its_share_are_refused(monkeypatch):
    monkeypatch.setenv("CXRFAIL_MAX_RUNS_PER_SESSION", "1")
    monkeypatch.setenv("CXRFAIL_MAX_QUEUED_PER_SESSION", "1")
    gate = RunGate()
    second_started = threading.Event()

    def second_run() -> None:
        with gate.slot("session-a"):
            second_started.set()

    with gate.slot("session-a"):
        waiting = threading.Thread(target=second_run)
        waiting.start()
        deadline = time.monotonic() + 10
        while gate.queued < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.6)  # a queue poll: the session's second run does not start beside its first
        assert gate.queued == 1 and not second_started.is_set()
        with pytest.raises(LoadLimitError, match="already has an analysis running or queued"), gate.slot("session-a"):
            pass
        with gate.slot("session-b"):  # another session passes the waiting run: its session is at its share
            assert gate.running == 2
    waiting.join(10)
    assert second_started.is_set() and gate.running == 0 and gate.queued == 0


def test_runs_beyond_the_total_wait_in_a_queue_that_reports_their_position(monkeypatch):
    monkeypatch.setenv("CXRFAIL_MAX_RUNS", "1")
    gate = RunGate()
    release = threading.Event()
    started, positions = [], {"b": [], "c": []}

    def run(session: str) -> None:
        with gate.slot(session, on_wait=positions.setdefault(session, []).append):
            started.append(session)
            if session == "a":
                release.wait(10)

    threads = [threading.Thread(target=run, args=(s,)) for s in "a"]
    threads[0].start()
    deadline = time.monotonic() + 10
    while gate.running < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    for session in "bc":
        threads.append(threading.Thread(target=run, args=(session,)))
        threads[-1].start()
        while gate.queued < "abc".index(session) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(1.2)  # a few queue polls
    assert started == ["a"] and gate.running == 1 and gate.queued == 2
    release.set()
    for thread in threads:
        thread.join(10)
    assert started == ["a", "b", "c"]  # first come, first served, one at a time
    assert positions["b"] and set(positions["b"]) == {1}
    assert 2 in positions["c"]
    assert limits.wait_message(2).startswith("queued: 1 run(s) ahead")


def test_the_memory_ceiling_refuses_new_work_with_a_clear_message(monkeypatch):
    assert limits.process_tree_bytes() > 10_000_000  # this process, measured from /proc
    monkeypatch.setenv("CXRFAIL_MEMORY_CEILING_GB", "0.001")
    with (
        pytest.raises(LoadLimitError, match="near its memory limit .* GB in use of 0.0 GB.*Try again"),
        RunGate().slot("s"),
    ):
        pass
    with pytest.raises(LoadLimitError, match="memory limit"):
        limits.check_upload(0, 0, 10)
    monkeypatch.setenv("CXRFAIL_MEMORY_CEILING_GB", "1000")
    with RunGate().slot("s"):
        pass


def test_upload_count_and_bytes_per_session(monkeypatch):
    monkeypatch.setenv("CXRFAIL_MAX_UPLOADS", "3")
    monkeypatch.setenv("CXRFAIL_MAX_UPLOAD_MB", "100")
    limits.check_upload(2, 10_000_000, 60_000_000)
    with pytest.raises(LoadLimitError, match="already holds 3 files"):
        limits.check_upload(3, 10_000_000, 1)
    with pytest.raises(LoadLimitError, match="above the limit of 100 MB"):
        limits.check_upload(1, 60_000_000, 60_000_000)


def test_memory_caches_are_bounded_in_bytes():
    cache = ByteCache(lambda: 1_000)
    for key in range(10):
        assert cache.get(key, lambda: bytes(300)) == bytes(300)
    assert cache.bytes <= 1_000 and len(cache) == 3
    assert cache.get(9, lambda: b"recomputed") == bytes(300)  # the newest stay
    assert cache.get(0, lambda: b"recomputed") == b"recomputed"  # the oldest went
    assert cache.get("huge", lambda: bytes(5_000)) == bytes(5_000) and "huge" not in cache._entries

    calls = []

    @limits.byte_cached(lambda: 10_000)
    def square(token: str, value: int, _unhashed: object) -> list[int]:
        calls.append(value)
        return [value * value]

    assert square("t", 3, object()) == [9] and square("t", 3, object()) == [9] and calls == [3]
