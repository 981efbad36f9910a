"""File helpers used everywhere cxrfail writes or fingerprints a file: one atomic write, one staged folder, one
file hash, and the clean-up of stale dashboard uploads.

- `atomic_write_bytes` / `atomic_write_with`: a file is written under a temporary name in its own folder and
  renamed into place, so a reader sees the old file or the whole new one, never half of it.
- `staged_folder`: a folder is built under a temporary sibling name and renamed into place only when the
  block finishes without error; on any error the staging folder is removed and the target is untouched.
- `file_sha256`: SHA-256 (hex) of a file's bytes, read in 1 MiB chunks.
- `use_private_temp_root`: this process's temporary files (uploads, the analysis workers' inputs file, ONNX
  scratch exports: patient-level data) go to one private folder, removed on every exit path the process sees
  (normal exit, an exception, Ctrl-C, SIGTERM), with the worker processes it started; a folder left by a
  process that was killed outright (SIGKILL, power loss) is removed by the next process that starts.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Name prefix of the per-session upload folders the dashboard creates in the system temporary folder.
UPLOAD_PREFIX = "cxrfail-upload-"
#: Name prefix of a process's private temporary folder: ``cxrfail-<pid>-<random>`` in the system's.
PRIVATE_PREFIX = "cxrfail-proc-"
_STAGING_MARK = "-staging-"
_private_lock = threading.Lock()
_private_root: Path | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str, prefix: str) -> int | None:
    """The process id in a name ``<prefix><pid>-...``, or None."""
    head = name[len(prefix) :].split("-", 1)[0] if name.startswith(prefix) else ""
    return int(head) if head.isdigit() else None


def use_private_temp_root() -> Path:
    """Make a private (mode 0700) folder this process's temporary folder (``tempfile.tempdir``) and return it;
    the same folder on later calls.

    It is removed, after the worker processes this process started are stopped, at interpreter exit and on
    SIGTERM (turned into ``SystemExit`` in the main thread, so every ``finally`` runs, unless a handler is
    installed already: then ours runs first and calls it). Folders of earlier processes that no longer run are
    removed now. Child processes keep the system's temporary folder (``TMPDIR`` is not changed)."""
    global _private_root
    with _private_lock:
        if _private_root is not None and _private_root.is_dir():
            return _private_root
        system = Path(tempfile.gettempdir() if _private_root is None else _private_root.parent)
        remove_orphaned_temp_folders(system)
        _private_root = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-", dir=system))
        tempfile.tempdir = str(_private_root)
        atexit.register(release_private_temp_root)
        if threading.current_thread() is threading.main_thread():
            _chain_sigterm()
        return _private_root


def remove_orphaned_temp_folders(folder: str | Path | None = None) -> int:
    """Remove the private folders (`PRIVATE_PREFIX`) in ``folder`` (default: the system temporary folder) whose
    process no longer runs; returns how many were removed."""
    root = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    removed = 0
    for entry in root.glob(f"{PRIVATE_PREFIX}*"):
        pid = _owner_pid(entry.name, PRIVATE_PREFIX)
        if pid is not None and not _pid_alive(pid) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def release_private_temp_root() -> None:
    """Stop this process's worker processes and remove its private temporary folder (idempotent)."""
    stop_child_processes()
    root = _private_root
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
        if tempfile.tempdir == str(root):
            tempfile.tempdir = None


def _chain_sigterm() -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(number, frame):
        release_private_temp_root()
        if callable(previous):
            previous(number, frame)
        else:
            raise SystemExit(128 + number)

    signal.signal(signal.SIGTERM, on_sigterm)


def child_pids(pid: int | None = None) -> list[int]:
    """Process ids of every descendant of ``pid`` (default: this process), from ``/proc`` (Linux; empty
    elsewhere)."""
    pid = os.getpid() if pid is None else pid
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_child_processes(grace_s: float = 3.0) -> int:
    """Terminate every descendant process (the analysis workers, decoding workers), then kill those still
    running after ``grace_s`` seconds; returns how many there were."""
    children = child_pids()
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_pid_alive(pid) and not _zombie(pid) for pid in children):
        time.sleep(0.05)
    for pid in children:
        if _pid_alive(pid) and not _zombie(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return len(children)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def file_sha256(path: str | Path) -> str:
    """SHA-256 (64 hex characters) of the file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def bytes_sha256(data: bytes) -> str:
    """SHA-256 (64 hex characters) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def atomic_write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` to write the file, then rename it to ``path`` (same folder, so the rename
    is atomic). The temporary file is removed when ``write`` or the rename fails; the error propagates."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see `atomic_write_with`)."""
    return atomic_write_with(path, lambda temporary: temporary.write_bytes(data))


@contextlib.contextmanager
def staged_folder(target: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; when the block ends without error it becomes ``target``.

    With ``replace`` an existing ``target`` is replaced as a whole (moved aside, then removed); without it an
    existing ``target`` is kept and the staging folder discarded (another writer stored the same content
    first). On any error, the staging folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphaned_staging(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:24]}{_STAGING_MARK}{os.getpid()}-", dir=target.parent))
    try:
        yield staging
        _move_into_place(staging, target, replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_orphaned_staging(folder: str | Path) -> int:
    """Remove staging folders (of `staged_folder`) in ``folder`` whose writing process no longer runs (killed
    mid-write); returns how many were removed."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in Path(folder).iterdir():
            name = entry.name
            if not name.startswith(".") or _STAGING_MARK not in name:
                continue
            pid = _owner_pid(name.split(_STAGING_MARK, 1)[1], "")
            if pid is not None and not _pid_alive(pid) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed


def _move_into_place(staging: Path, target: Path, replace: bool) -> None:
    if not target.exists():
        try:
            os.rename(staging, target)
            return
        except OSError:
            if not target.exists():
                raise
    if not replace:
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name[:24]}-old-", dir=target.parent))
    os.rename(target, retired / "old")
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(retired / "old", target)
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


def new_upload_folder() -> Path:
    """A fresh, private (mode 0700) folder for one dashboard session's uploaded files, named
    ``<tmp>/cxrfail-upload-*`` so `cleanup_stale_uploads` finds it."""
    return Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX))


def cleanup_stale_uploads(folder_root: str | Path | None = None, older_than_s: float = 0.0) -> int:
    """Remove upload folders (``cxrfail-upload-*``) in ``folder_root`` (default: the system temporary folder)
    last modified more than ``older_than_s`` seconds ago; returns how many were removed.

    The dashboard calls it at start (``older_than_s=0``: no session survives a restart) and may call it
    periodically with a session lifetime, e.g. ``older_than_s=24 * 3600``.
    """
    root = Path(folder_root) if folder_root is not None else Path(tempfile.gettempdir())
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in root.iterdir():
        if not entry.name.startswith(UPLOAD_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        if entry.stat().st_mtime <= cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
