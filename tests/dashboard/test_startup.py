"""The server's start-up hook (`cxrfail.dashboard.startup`): the preload fills the demo's shared cache, and a
demo that cannot be loaded does not stop the server (the page that asks for it says why)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

from cxrfail.dashboard import datasets, startup


def test_preload_fills_the_demo_cache():
    datasets.demo_dataset.clear()
    startup.preload()
    first = datasets.demo_dataset()
    assert datasets.demo_dataset() is first  # served from the cache the preload filled
    assert first.key == datasets.DEMO_KEY and first.cohort.n_rows == 22_433


def test_preload_without_the_demo_logs_and_returns(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CXRFAIL_DEMO_DIR", str(tmp_path))  # no predictions folder there
    datasets.demo_dataset.clear()
    with caplog.at_level(logging.INFO, logger="cxrfail.dashboard"):
        startup.preload()
    assert any("demo data not preloaded" in r.getMessage() for r in caplog.records)
    datasets.demo_dataset.clear()


def test_lifespan_serves_at_once_and_preloads_in_the_background(monkeypatch):
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()
    ran_in = []

    def slow_preload():
        ran_in.append(threading.current_thread().name)
        started.set()
        release.wait(10)
        finished.set()

    monkeypatch.setattr(startup, "preload", slow_preload)

    async def enter_and_leave():
        async with startup.lifespan(None):
            # the hook has returned while the preload still runs (a synchronous preload would have finished)
            return started.wait(10), finished.is_set()

    began, done_before_serving = asyncio.run(enter_and_leave())
    release.set()
    assert began and not done_before_serving
    assert finished.wait(10) and ran_in == [startup.PRELOAD_THREAD]


def test_image_decoder_is_imported_once_a_page_has_its_result(monkeypatch):
    monkeypatch.setattr(startup, "DECODER_DELAY_S", 0.0)
    monkeypatch.setattr(startup, "FIRST_RESULT", threading.Event())
    thread = threading.Thread(target=startup.preload_image_decoder, daemon=True)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # no page has a result yet: the first screen is not slowed by torch's import
    startup.FIRST_RESULT.set()
    thread.join(120)
    assert not thread.is_alive() and "cxrfail.inference.images" in sys.modules
