"""Provenance of a report or export bundle: input file hashes, package versions, seed and full config."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from cxrfail.files import file_sha256

REPORTED_PACKAGES = ("cxrfail", "numpy", "pandas", "scipy", "scikit-learn", "statsmodels", "shap", "plotly",
                     "kaleido", "streamlit", "torch", "torchvision", "torchxrayvision")


def package_versions(names: Iterable[str] = REPORTED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when not installed), plus Python's."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(
    inputs: Iterable[str | Path], *, config: Mapping[str, object], seed: int, extra: Mapping[str, object] = {}
) -> dict[str, object]:
    """A JSON-ready manifest: each input file with its size and SHA-256, versions, seed, config, time."""
    files = []
    for path in inputs:
        path = Path(path)
        if path.is_file():
            files.append({"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)})
        else:
            files.append({"path": str(path), "bytes": None, "sha256": None})
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": files,
        "versions": package_versions(),
        "seed": seed,
        "config": dict(config),
        **dict(extra),
    }
