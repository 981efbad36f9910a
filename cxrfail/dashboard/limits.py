"""Load bounds of the dashboard server: how much work visitors can start, and how much memory it may hold.

Every bound is read from the environment when it is checked (so an operator's change needs no code), with a
default sized for a 2-core, 8 GB workstation:

- ``CXRFAIL_MAX_RUNS`` (default 2): analysis runs computing at once, server-wide. Further runs wait in a
  first-come queue; the page shows their position.
- ``CXRFAIL_MAX_RUNS_PER_SESSION`` (default 1): runs one browser session may have computing at once; its next
  runs (a changed setting while a run computes) wait behind it in the queue.
- ``CXRFAIL_MAX_QUEUED_PER_SESSION`` (default 2): runs one session may have waiting besides; another is refused
  with a message until one finishes (a new seed starts minutes of CPU).
- ``CXRFAIL_MAX_UPLOADS`` (default 12) and ``CXRFAIL_MAX_UPLOAD_MB`` (default 256): files and megabytes one
  session may upload (or copy from the server's folders) in all.
- ``CXRFAIL_MEMORY_CEILING_GB`` (default: 60 % of the machine's memory): when the server's process tree (the
  server and its worker processes) holds more, or the machine has less than ``CXRFAIL_MEMORY_RESERVE_GB``
  (default 1) available, new runs and uploads are refused with a clear message, before the machine swaps.
- ``CXRFAIL_IMAGE_CACHE_MB`` (default 256) and ``CXRFAIL_FLIP_CACHE_MB`` (default 128): the in-memory caches of
  decoded radiographs and live flip evaluations are bounded in bytes (`ByteCache`), not in entries.

This module imports no analysis code; `cxrfail.dashboard.runs` and `cxrfail.dashboard.datasets` call it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from cxrfail.errors import CxrfailInputError

_GB = 1_000_000_000
_MB = 1_000_000
QUEUE_POLL_S = 0.5


class LoadLimitError(CxrfailInputError):
    """New work refused because a load bound is reached; the message says which and what to do."""


def _number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise CxrfailInputError(f"{name} must be a number, got {text!r}") from None
    if value < 0:
        raise CxrfailInputError(f"{name} must be 0 or more, got {value}")
    return value


def max_runs() -> int:
    """Analysis runs computing at once, server-wide (``CXRFAIL_MAX_RUNS``, at least 1)."""
    return max(1, int(_number("CXRFAIL_MAX_RUNS", 2)))


def max_runs_per_session() -> int:
    """Runs one session may have computing or queued (``CXRFAIL_MAX_RUNS_PER_SESSION``, at least 1)."""
    return max(1, int(_number("CXRFAIL_MAX_RUNS_PER_SESSION", 1)))


def max_queued_per_session() -> int:
    """Runs one session may have waiting besides those computing (``CXRFAIL_MAX_QUEUED_PER_SESSION``, >= 0)."""
    return max(0, int(_number("CXRFAIL_MAX_QUEUED_PER_SESSION", 2)))


def max_uploads() -> int:
    """Files one session may upload or copy in all (``CXRFAIL_MAX_UPLOADS``)."""
    return int(_number("CXRFAIL_MAX_UPLOADS", 12))


def max_upload_bytes() -> int:
    """Bytes one session may upload or copy in all (``CXRFAIL_MAX_UPLOAD_MB`` megabytes)."""
    return int(_number("CXRFAIL_MAX_UPLOAD_MB", 256) * _MB)


def machine_memory_bytes() -> int:
    """Total memory of the machine (``MemTotal``), bytes; 8 GB when unknown."""
    return _meminfo().get("MemTotal", 8 * _GB)


def memory_ceiling_bytes() -> int:
    """Most memory the server's process tree may hold before new work is refused (``CXRFAIL_MEMORY_CEILING_GB``,
    default 60 % of the machine's memory)."""
    return int(_number("CXRFAIL_MEMORY_CEILING_GB", 0.6 * machine_memory_bytes() / _GB) * _GB)


def memory_reserve_bytes() -> int:
    """Memory the machine must keep available (``CXRFAIL_MEMORY_RESERVE_GB``, default 1)."""
    return int(_number("CXRFAIL_MEMORY_RESERVE_GB", 1) * _GB)


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes (empty where there is none)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[name] = int(parts[0]) * 1024
    return values


def process_tree_bytes(pid: int | None = None) -> int:
    """Resident memory (RSS) of ``pid`` (default: this process) and all its descendants, bytes."""
    from cxrfail.files import child_pids

    pid = os.getpid() if pid is None else pid
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for member in (pid, *child_pids(pid)):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * page
    return total


def check_memory(what: str) -> None:
    """Refuse (`LoadLimitError`) to start ``what`` when the server holds more than its ceiling or the machine
    has less than the reserve available."""
    used, ceiling = process_tree_bytes(), memory_ceiling_bytes()
    available = _meminfo().get("MemAvailable")
    if used > ceiling or (available is not None and available < memory_reserve_bytes()):
        raise LoadLimitError(
            f"the server is near its memory limit ({used / _GB:.1f} GB in use of {ceiling / _GB:.1f} GB"
            + (f"; {available / _GB:.1f} GB left on the machine" if available is not None else "")
            + f"), so it cannot start {what} now",
            fix="Try again in a few minutes, when runs of other visitors have finished; the operator can raise "
            "CXRFAIL_MEMORY_CEILING_GB",
        )


# ------------------------------------------------------------------------------------------ runs


class RunGate:
    """Admits analysis runs: at most `max_runs` computing at once, server-wide, and `max_runs_per_session` per
    session, the others waiting in a first-come queue (a run whose session is at its share lets the runs of
    other sessions behind it pass); at most `max_queued_per_session` waiting per session besides."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()
        self._running: set[object] = set()
        self._per_session: collections.Counter[str] = collections.Counter()  # computing or queued
        self._computing: collections.Counter[str] = collections.Counter()
        self._session_of: dict[object, str] = {}

    @property
    def running(self) -> int:
        with self._condition:
            return len(self._running)

    @property
    def queued(self) -> int:
        with self._condition:
            return len(self._queue)

    @contextlib.contextmanager
    def slot(self, session: str, on_wait: Callable[[int], None] = lambda position: None) -> Iterator[None]:
        """Hold a run slot for the block. Refuses (`LoadLimitError`) when ``session`` already has its share of
        runs computing and waiting, or the server is at its memory ceiling; otherwise waits in the queue,
        calling ``on_wait(position)`` (1 = next) every `QUEUE_POLL_S` seconds while waiting."""
        ticket = object()
        with self._condition:
            if self._per_session[session] >= max_runs_per_session() + max_queued_per_session():
                raise LoadLimitError(
                    "this session already has an analysis running or queued",
                    fix="Wait for it to finish (its progress is shown on the pages), then change the settings",
                )
            check_memory("another analysis")
            self._per_session[session] += 1
            self._session_of[ticket] = session
            self._queue.append(ticket)
        try:
            with self._condition:
                while not self._may_start(ticket):
                    position = list(self._queue).index(ticket) + 1
                    self._condition.release()
                    try:
                        on_wait(position)
                    finally:
                        self._condition.acquire()
                    self._condition.wait(QUEUE_POLL_S)
                self._queue.remove(ticket)
                self._running.add(ticket)
                self._computing[session] += 1
                self._condition.notify_all()
            yield
        finally:
            with self._condition:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                if ticket in self._running:
                    self._running.discard(ticket)
                    self._computing[session] -= 1
                del self._session_of[ticket]
                self._per_session[session] -= 1
                if self._per_session[session] <= 0:
                    del self._per_session[session]
                self._condition.notify_all()

    def _may_start(self, ticket: object) -> bool:
        """Whether ``ticket`` may start now (the condition held): the free server slots go, in queue order, to
        the waiting runs whose session is below its share of computing runs."""
        free = max_runs() - len(self._running)
        share = max_runs_per_session()
        for waiting in self._queue:
            if free <= 0:
                return False
            if self._computing[self._session_of[waiting]] < share:
                if waiting is ticket:
                    return True
                free -= 1
        return False


#: The server's one gate (module-level: shared by every session of this process).
RUNS = RunGate()


def session_id() -> str:
    """The current Streamlit session's id ("server" outside a session: a background or start-up thread)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx(suppress_warning=True)
    return context.session_id if context is not None else "server"


# ------------------------------------------------------------------------------------------ uploads


def check_upload(n_files_held: int, bytes_held: int, new_bytes: int) -> None:
    """Refuse (`LoadLimitError`) a new file of ``new_bytes`` for a session that holds ``n_files_held`` files of
    ``bytes_held`` bytes in all, when it would pass the per-session bounds or the memory ceiling."""
    if n_files_held + 1 > max_uploads():
        raise LoadLimitError(
            f"this session already holds {n_files_held} files, the most one session may hold",
            fix="Remove a loaded dataset on the Data page, or open a new session",
        )
    if bytes_held + new_bytes > max_upload_bytes():
        raise LoadLimitError(
            f"this file ({new_bytes / _MB:.1f} MB) would bring this session's files to "
            f"{(bytes_held + new_bytes) / _MB:.1f} MB, above the limit of {max_upload_bytes() / _MB:.0f} MB",
            fix="Remove a loaded dataset on the Data page, or use smaller files",
        )
    check_memory("reading another file")


# ------------------------------------------------------------------------------------------ memory caches


class ByteCache:
    """A thread-safe least-recently-used cache bounded by the bytes of its values (``size_of``: ``len`` of
    bytes, else the pickled size), shared by every session of the process."""

    def __init__(self, max_bytes: Callable[[], int]) -> None:
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[object, tuple[object, int]] = collections.OrderedDict()
        self.bytes = 0

    def get(self, key: object, compute: Callable[[], object]) -> object:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = compute()
        size = size_of(value)
        with self._lock:
            if key not in self._entries and size <= self._max_bytes():
                self._entries[key] = (value, size)
                self.bytes += size
            while self.bytes > self._max_bytes() and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


def size_of(value: object) -> int:
    """Bytes a cached value holds: ``len`` of bytes, else the size of its pickle (an estimate)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - an unpicklable value counts as large: it is not kept
        return 1 << 62


def byte_cached(max_bytes: Callable[[], int]) -> Callable[[Callable], Callable]:
    """Decorator: memoise a function in a `ByteCache`, keyed (like Streamlit's caches) by its arguments except
    those whose parameter name starts with ``_`` (unhashed: the other arguments identify them)."""

    def decorate(function: Callable) -> Callable:
        cache = ByteCache(max_bytes)
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            key = tuple((name, value) for name, value in bound.arguments.items() if not name.startswith("_"))
            return cache.get(key, lambda: function(*args, **kwargs))

        wrapper.cache = cache
        return wrapper

    return decorate


def image_cache_bytes() -> int:
    return int(_number("CXRFAIL_IMAGE_CACHE_MB", 256) * _MB)


def flip_cache_bytes() -> int:
    return int(_number("CXRFAIL_FLIP_CACHE_MB", 128) * _MB)


def wait_message(position: int) -> str:
    """What a queued run's progress line says."""
    return (
        f"queued: {position - 1} run(s) ahead of this one" if position > 1 else "queued: next to start"
    ) + f" (the server computes {max_runs()} at a time)"
