"""On-disk prediction cache: model outputs per image, keyed by what determines them.

Layout: ``<root>/<model key>/`` holds ``model.json`` (what the key stands for: model name, weights digest,
preprocessing, labels, precision) and Parquet parts ``part-*.parquet``, each with a column ``image_sha256``
(SHA-256 hex of the image file's bytes) and one float32 column per finding (the model's probabilities).

- The model key hashes the weights digest, architecture, labels, activation, preprocessing, numeric precision
  and decoder version: any change gives a new key, so a stale result is never served.
- Every file is written to a temporary name and renamed into place (atomic). Each write adds its own part, so
  two processes writing at once lose nothing. Parts are written with page checksums and verified on read; a
  truncated or corrupt part is deleted and its images are recomputed.
- When a model has `COMPACT_AT` parts or more, a writer merges them into one, under a lock file (a writer that
  finds the lock taken skips merging).

The default root is ``$CXRFAIL_CACHE_DIR/inference`` (``~/.cache/cxrfail/inference`` when unset).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from cxrfail.cache import default_cache_dir, hash_parts, warn_cache_unwritable
from cxrfail.files import atomic_write_bytes, atomic_write_with

log = logging.getLogger(__name__)

HASH_COLUMN = "image_sha256"
MODEL_FILE = "model.json"
LOCK_FILE = ".compact.lock"
COMPACT_AT = 8
_READ_ATTEMPTS = 3


def default_inference_cache_dir() -> Path:
    """``$CXRFAIL_CACHE_DIR/inference``, or ``~/.cache/cxrfail/inference``."""
    return default_cache_dir() / "inference"


def model_cache_key(identity: Mapping[str, object]) -> str:
    """A short hex key for a model identity (a JSON-serialisable mapping)."""
    return hash_parts(dict(identity))[:24]


@dataclass(frozen=True)
class CacheEntry:
    """One cached model: its key, what the key stands for, how many images and bytes it holds."""

    key: str
    identity: dict
    n_images: int
    n_bytes: int
    modified: float  # seconds since the epoch

    @property
    def model_name(self) -> str:
        return str(self.identity.get("model", "?"))


class PredictionCache:
    """Cached model probabilities per image content hash, in a folder of Parquet parts per model key."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_inference_cache_dir()

    def lookup(self, key: str, findings: Sequence[str], image_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached probabilities for those of ``image_hashes`` the cache holds: hash -> float32 array with one value
        per finding, in the order of ``findings``."""
        table = self._read(key, findings)
        if table is None:
            return {}
        wanted = set(image_hashes)
        hashes = table.column(HASH_COLUMN).to_pylist()
        values = np.column_stack([table.column(f).to_numpy() for f in findings]).astype(np.float32, copy=False)
        return {digest: values[row] for row, digest in enumerate(hashes) if digest in wanted}

    def store(
        self,
        key: str,
        identity: Mapping[str, object],
        findings: Sequence[str],
        image_hashes: Sequence[str],
        probabilities: np.ndarray,
    ) -> None:
        """Add probabilities (float, shape (len(image_hashes), len(findings))) as a new part, atomically. A cache
        folder that cannot be written (full, read-only) logs one warning; the caller's run goes on."""
        if not image_hashes:
            return
        folder = self.root / key
        columns = {HASH_COLUMN: pa.array(list(image_hashes), pa.string())}
        probabilities = np.asarray(probabilities, dtype=np.float32)
        for position, finding in enumerate(findings):
            columns[finding] = pa.array(probabilities[:, position])
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / MODEL_FILE).exists():
                atomic_write_bytes(folder / MODEL_FILE, json.dumps(dict(identity), indent=1, sort_keys=True).encode())
            _write_part(folder, pa.table(columns))
            if len(_parts(folder)) >= COMPACT_AT:
                self._compact(key, findings)
        except OSError as exc:
            warn_cache_unwritable(folder, exc)

    def entries(self) -> list[CacheEntry]:
        """Every cached model, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or not (folder / MODEL_FILE).is_file():
                continue
            try:
                identity = json.loads((folder / MODEL_FILE).read_text())
            except (OSError, ValueError):
                identity = {}
            parts = _parts(folder)
            n_images = 0
            for part in parts:
                try:
                    n_images += pq.read_metadata(part).num_rows
                except (OSError, pa.ArrowException):
                    continue
            stats = [stat for stat in map(_stat_or_none, folder.iterdir()) if stat is not None]
            found.append(
                CacheEntry(
                    folder.name,
                    identity,
                    n_images,
                    sum(stat.st_size for stat in stats),
                    max((stat.st_mtime for stat in stats), default=0.0),
                )
            )
        return sorted(found, key=lambda entry: entry.modified, reverse=True)

    def clear(self, key: str | None = None) -> int:
        """Remove one model's cached results (``key``) or all; returns how many models were removed."""
        if key is not None:
            folder = self.root / key
            if not (folder / MODEL_FILE).is_file():
                return 0
            shutil.rmtree(folder, ignore_errors=True)
            return 1
        entries = self.entries()
        for entry in entries:
            shutil.rmtree(self.root / entry.key, ignore_errors=True)
        return len(entries)

    def _read(self, key: str, findings: Sequence[str]) -> pa.Table | None:
        """All valid rows for ``key`` (duplicates by hash removed), or None when nothing is cached."""
        folder = self.root / key
        for _ in range(_READ_ATTEMPTS):
            tables, vanished = [], False
            for part in _parts(folder):
                try:
                    tables.append(_read_part(part, findings))
                except FileNotFoundError:
                    vanished = True  # merged away by a concurrent compaction: read the listing again
                except (OSError, pa.ArrowException, ValueError) as exc:
                    log.warning("discarding corrupt prediction cache part %s (%s)", part, exc)
                    with contextlib.suppress(OSError):  # a read-only cache keeps it; it is never served
                        part.unlink(missing_ok=True)
            if not vanished:
                break
        if not tables:
            return None
        return pa.concat_tables(tables)

    def _compact(self, key: str, findings: Sequence[str]) -> None:
        folder = self.root / key
        try:
            with FileLock(folder / LOCK_FILE, timeout=0):
                parts = _parts(folder)
                tables = []
                for part in parts:
                    try:
                        tables.append(_read_part(part, findings))
                    except (OSError, pa.ArrowException, ValueError):
                        continue
                if not tables:
                    return
                merged = pa.concat_tables(tables)
                _, first_rows = np.unique(
                    np.asarray(merged.column(HASH_COLUMN).to_pylist(), dtype=object), return_index=True
                )
                _write_part(folder, merged.take(np.sort(first_rows)))
                for part in parts:
                    part.unlink(missing_ok=True)
        except Timeout:
            return


def _parts(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(folder.glob("part-*.parquet"))


def _stat_or_none(path: Path) -> os.stat_result | None:
    """The file's stat, or None for a folder or a file removed meanwhile (by a concurrent writer)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat if path.is_file() else None


def _read_part(path: Path, findings: Sequence[str]) -> pa.Table:
    table = pq.read_table(path, page_checksum_verification=True)
    expected = [HASH_COLUMN, *findings]
    if table.column_names != expected:
        raise ValueError(f"columns {table.column_names} differ from {expected}")
    if any(table.column(name).null_count for name in expected):
        raise ValueError("missing values")
    return table


def _write_part(folder: Path, table: pa.Table) -> None:
    name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
    atomic_write_with(folder / name, lambda temporary: pq.write_table(table, temporary, write_page_checksum=True))
