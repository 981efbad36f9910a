"""On-disk cache of analysis results, keyed by a hash of every input and parameter.

A cached result is a folder of Parquet tables plus ``meta.json`` (with each table's SHA-256, and a SHA-256 of
its own content: `sealed_json`), written to a temporary folder and renamed into place, so a reader never sees
half a result; a folder with any file that fails to read or to match its checksum (metadata included) is
dropped and recomputed, never served. The location is ``$CXRFAIL_CACHE_DIR`` or ``~/.cache/cxrfail``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from pyarrow import ArrowException

from cxrfail.errors import CacheKeyError
from cxrfail.files import bytes_sha256, staged_folder
from cxrfail.manifest import jsonable

log = logging.getLogger(__name__)

META_FILE = "meta.json"
CHECKSUMS_KEY = "sha256"
#: Key of a sealed JSON file's own checksum (`sealed_json`).
SEAL_KEY = "content_sha256"
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
_WARNED: set[tuple[str, str]] = set()
#: Sub-folders of the cache root holding analysis results and rendered report figure packs.
RESULT_FOLDERS = ("analysis", "figures")


def default_cache_dir() -> Path:
    """``$CXRFAIL_CACHE_DIR`` when set, else ``~/.cache/cxrfail``."""
    return Path(os.environ.get("CXRFAIL_CACHE_DIR") or Path.home() / ".cache" / "cxrfail")


def hash_frame(frame: pd.DataFrame) -> str:
    """Content hash of a DataFrame: index, column names, dtypes and every value."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(json.dumps([str(t) for t in frame.dtypes]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def hash_parts(*parts: object) -> str:
    """Hash of JSON-serialisable parts (strings, numbers, lists, dicts) in order."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def validate_cache_key(key: str) -> str:
    """``key`` when it is a cache key (letters, digits, _ and -, at most 128), else `CacheKeyError`: a key never names a path
    outside the cache (no ``/``, ``..`` or absolute paths)."""
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise CacheKeyError(
            f"{key!r} is not a cache key (letters, digits, _ and - only)", fix="Copy a key from `cxrfail cache ls`"
        )
    return key


def sealed_json(payload: Mapping[str, object]) -> str:
    """``payload`` (a JSON-ready mapping) as JSON text with `SEAL_KEY`: the SHA-256 of its canonical form, so
    that any change to the file (a flipped bit, an edited value, a renamed key) is detected by `open_sealed`."""
    body = dict(payload)
    body.pop(SEAL_KEY, None)
    return json.dumps({**body, SEAL_KEY: _canonical_sha256(body)}, indent=1, default=str)


def open_sealed(text: str) -> dict:
    """The mapping in a `sealed_json` text, without its seal; `ValueError` when it is not valid JSON, not a
    mapping, unsealed, or its content does not match the seal."""
    payload = json.loads(text)
    if not isinstance(payload, dict) or not isinstance(payload.get(SEAL_KEY), str):
        raise ValueError("not a sealed index")
    seal = payload.pop(SEAL_KEY)
    if _canonical_sha256(payload) != seal:
        raise ValueError("the index does not match its checksum")
    return payload


def _canonical_sha256(body: Mapping[str, object]) -> str:
    return bytes_sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode())


def warn_cache_unwritable(folder: Path, exc: OSError) -> None:
    """Log (once per folder and reason) that the cache cannot be written; the run goes on without it."""
    reason = exc.strerror or type(exc).__name__
    if (str(folder), reason) in _WARNED:
        return
    _WARNED.add((str(folder), reason))
    log.warning("cache folder %s cannot be written (%s); results are not cached this time", folder, reason)


class TableStore:
    """A folder of cached results: ``<root>/<namespace>/<key>/{<table>.parquet, meta.json}``.

    ``meta.json`` lists every table with the SHA-256 of its file; `load` checks each one, so a damaged entry
    (a flipped bit, a truncated file, a missing key) is dropped and recomputed, never served. A cache that
    cannot be written (full disk, read-only folder, no permission) only logs a warning: caching is an
    optimisation, never a reason for a run to fail.
    """

    def __init__(self, root: str | Path | None = None, namespace: str = "analysis") -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.folder = self.root / namespace

    def path(self, key: str) -> Path:
        return self.folder / validate_cache_key(key)

    def load(self, key: str) -> tuple[dict[str, pd.DataFrame], dict] | None:
        """The tables and metadata stored under ``key``, or None when absent or damaged (then removed)."""
        folder = self.path(key)
        if not (folder / META_FILE).exists():
            return None
        try:
            meta = open_sealed((folder / META_FILE).read_text())
            checksums = meta[CHECKSUMS_KEY]
            tables = {}
            for name in meta["tables"]:
                data = (folder / f"{name}.parquet").read_bytes()
                if bytes_sha256(data) != checksums[name]:
                    raise ValueError(f"checksum mismatch in {name}.parquet")
                tables[name] = pd.read_parquet(io.BytesIO(data))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ArrowException) as exc:
            self.drop(key, f"{type(exc).__name__}: {exc}")
            return None
        return tables, meta

    def drop(self, key: str, reason: str) -> None:
        """Remove the entry under ``key`` (damaged, or unusable by its reader), logged with ``reason``; a cache
        that cannot be written keeps it (the next reader finds it damaged again and recomputes)."""
        folder = self.path(key)
        log.warning("dropping damaged cache entry %s (%s); it will be recomputed", folder, reason)
        shutil.rmtree(folder, ignore_errors=True)

    def save(self, key: str, tables: Mapping[str, pd.DataFrame], meta: Mapping[str, object]) -> Path | None:
        """Write atomically (a staging folder renamed to ``key``); returns the entry's folder, or None when the
        cache cannot be written (logged as a warning)."""
        target = self.path(key)
        try:
            with staged_folder(target, replace=False) as staging:
                checksums = {}
                for name, table in tables.items():
                    buffer = io.BytesIO()
                    table.to_parquet(buffer)
                    data = buffer.getvalue()
                    (staging / f"{name}.parquet").write_bytes(data)
                    checksums[name] = bytes_sha256(data)
                payload = {**jsonable(dict(meta)), "tables": list(tables), CHECKSUMS_KEY: checksums}
                (staging / META_FILE).write_text(sealed_json(payload))
        except OSError as exc:
            warn_cache_unwritable(self.folder, exc)
            return None
        return target

    def clear(self) -> int:
        """Remove every stored result; returns how many were removed."""
        if not self.folder.exists():
            return 0
        entries = [p for p in self.folder.iterdir() if p.is_dir()]
        for entry in entries:
            shutil.rmtree(entry, ignore_errors=True)
        return len(entries)


def result_cache_usage(root: str | Path | None = None) -> dict[str, tuple[int, int]]:
    """Per `RESULT_FOLDERS` entry: (number of cached entries, bytes on disk)."""
    root = Path(root) if root is not None else default_cache_dir()
    usage = {}
    for name in RESULT_FOLDERS:
        entries = [p for p in (root / name).iterdir() if p.is_dir()] if (root / name).is_dir() else []
        size = sum(f.stat().st_size for entry in entries for f in entry.rglob("*") if f.is_file())
        usage[name] = (len(entries), size)
    return usage


def clear_result_caches(root: str | Path | None = None) -> int:
    """Remove every cached analysis result and figure pack; returns how many entries were removed."""
    root = Path(root) if root is not None else default_cache_dir()
    removed = TableStore(root).clear()
    figures = root / "figures"
    if figures.is_dir():
        packs = [p for p in figures.iterdir() if p.is_dir()]
        for pack in packs:
            shutil.rmtree(pack, ignore_errors=True)
        removed += len(packs)
    return removed
