"""File helpers used everywhere cxrfail writes or fingerprints a file: one atomic write, one staged folder, one
file hash, and the clean-up of stale dashboard uploads.

- `atomic_write_bytes` / `atomic_write_with`: a file is written under a temporary name in its own folder and
  renamed into place, so a reader sees the old file or the whole new one, never half of it.
- `staged_folder`: a folder is built under a temporary sibling name and renamed into place only when the
  block finishes without error; on any error the staging folder is removed and the target is untouched.
- `file_sha256`: SHA-256 (hex) of a file's bytes, read in 1 MiB chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Name prefix of the per-session upload folders the dashboard creates in the system temporary folder.
UPLOAD_PREFIX = "cxrfail-upload-"


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
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:24]}-staging-", dir=target.parent))
    try:
        yield staging
        _move_into_place(staging, target, replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
