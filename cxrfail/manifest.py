"""Provenance of a report or export bundle: input file hashes, package versions, seed and full config.

One builder (`build_manifest`) serves the CLI report and the dashboard's export; `jsonable` is the one
conversion of results, configs and summaries to JSON (numpy scalars, dataclasses, paths, missing keys).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import platform
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from cxrfail.files import bytes_sha256, file_sha256

REPORTED_PACKAGES = (
    "cxrfail",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "statsmodels",
    "shap",
    "plotly",
    "kaleido",
    "streamlit",
    "torch",
    "torchvision",
    "torchxrayvision",
)
UNKNOWN_KEY = "unknown"  # the JSON key of a missing value (a missing sex or view in a cohort summary)


def package_versions(names: Iterable[str] = REPORTED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when not installed), plus Python's."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return True
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return isinstance(value, float) and not math.isfinite(value)  # NaN and ±inf: not strict JSON


def _key(value: object) -> str:
    return UNKNOWN_KEY if _is_missing(value) else str(value.item() if hasattr(value, "item") else value)


def jsonable(value: object) -> object:
    """``value`` as plain JSON types: dataclasses and mappings as dicts (missing keys as ``"unknown"``),
    sequences and arrays as lists, numpy scalars as numbers, paths as strings, missing and non-finite values
    as None, so that a strict ``json.dumps(..., allow_nan=False)`` always succeeds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "ndim") and value.ndim > 0:  # numpy arrays
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if _is_missing(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def build_manifest(
    inputs: Iterable[str | Path | tuple[str, bytes]] = (),
    *,
    config: object | None = None,
    seed: int | None = None,
    generator: str = "cxrfail",
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """A JSON-ready manifest: each input with its size and SHA-256, versions, seed, config, time, generator.

    Args:
        inputs: file paths, ``(name, bytes)`` of an uploaded file (recorded as ``upload:<name>``), or records
            already made (mappings with ``path``, ``bytes``, ``sha256``: the dashboard's, which name no server path).
        config: a dataclass or mapping (e.g. `AnalysisConfig`); ``seed`` defaults to its ``seed``.
        generator: what wrote it ("cxrfail analyze", "cxrfail dashboard").
        extra: further JSON-ready entries.
    """
    config_json = jsonable(config) if config is not None else {}
    if not isinstance(config_json, dict):
        raise TypeError(f"config must be a dataclass or a mapping, not {type(config).__name__}")
    if seed is None:
        seed = config_json.get("seed")
    files = []
    for item in inputs:
        if isinstance(item, Mapping):
            files.append({"path": str(item["path"]), "bytes": item.get("bytes"), "sha256": item.get("sha256")})
            continue
        if isinstance(item, tuple):
            name, data = item
            files.append({"path": f"upload:{name}", "bytes": len(data), "sha256": bytes_sha256(data)})
            continue
        path = Path(item)
        if path.is_file():
            files.append({"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)})
        else:
            files.append({"path": str(path), "bytes": None, "sha256": None})
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "generator": generator,
        "inputs": files,
        "versions": package_versions(),
        "seed": seed,
        "config": config_json,
    }
    manifest.update(extra or {})
    return jsonable(manifest)
