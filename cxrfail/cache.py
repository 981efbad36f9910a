"""On-disk cache of analysis results, keyed by a hash of every input and parameter.

A cached result is a folder of Parquet tables plus ``meta.json``, written to a temporary folder and renamed
into place, so a reader never sees half a result; a folder that fails to read is treated as a miss and
rewritten. The location is ``$CXRFAIL_CACHE_DIR`` or ``~/.cache/cxrfail``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

META_FILE = "meta.json"
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


def json_ready(value: object) -> object:
    """``value`` as plain JSON types: mapping keys as str, tuples as lists, numpy scalars as Python numbers,
    paths as str, and missing values (None, NaN, pandas NA/NaT) as None, so that ``json.dumps`` (strict, no
    NaN) always succeeds."""
    if isinstance(value, Mapping):
        return {_json_key(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is not None and not isinstance(value, str | int | float | bool) and pd.isna(value):
        return None
    return value


def _json_key(key: object) -> str:
    if key is None or (not isinstance(key, str) and pd.isna(key)):
        return "unknown"
    return str(key)


class TableStore:
    """A folder of cached results: ``<root>/<namespace>/<key>/{<table>.parquet, meta.json}``."""

    def __init__(self, root: str | Path | None = None, namespace: str = "analysis") -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.folder = self.root / namespace

    def path(self, key: str) -> Path:
        return self.folder / key

    def load(self, key: str) -> tuple[dict[str, pd.DataFrame], dict] | None:
        """The tables and metadata stored under ``key``, or None when absent or unreadable (then removed)."""
        folder = self.path(key)
        if not (folder / META_FILE).exists():
            return None
        try:
            meta = json.loads((folder / META_FILE).read_text())
            tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in meta["tables"]}
        except (OSError, ValueError, KeyError):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return tables, meta

    def save(self, key: str, tables: Mapping[str, pd.DataFrame], meta: Mapping[str, object]) -> Path:
        """Write atomically: into a temporary sibling folder, then rename it to ``key``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.folder))
        try:
            for name, table in tables.items():
                table.to_parquet(staging / f"{name}.parquet")
            payload = {**json_ready(dict(meta)), "tables": list(tables)}
            (staging / META_FILE).write_text(json.dumps(payload, indent=1, default=str))
            target = self.path(key)
            try:
                os.rename(staging, target)
            except OSError:
                # Another process stored the same key first: its result is equally valid.
                shutil.rmtree(staging, ignore_errors=True)
            return target
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

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
