"""What the dashboard reads from the environment (all optional).

- ``CXRFAIL_DEMO_MODELS``: comma-separated demo model names selected at start (default: all four).
- ``CXRFAIL_DEMO_FINDINGS``: comma-separated findings analysed at start (default: the five competition tasks
  and the findings the dataset's reference labels read; see `sidebar.default_findings`).
- ``CXRFAIL_DEMO_CONFIG``: JSON object of `AnalysisConfig` overrides for every run, e.g.
  ``{"n_bootstrap": 200, "shap_max_samples": 100}`` (tests and quick looks).
- ``CXRFAIL_FLIP_BOOTSTRAP``: bootstrap replicates of the live flip evaluation (default 2000).
- ``CXRFAIL_INLINE_WAIT_S``: seconds a page waits for a run before it shows the run's progress panel instead
  (default 2; the tests set it long, so every AppTest run sees its result).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

from cxrfail.analysis.config import AnalysisConfig
from cxrfail.errors import CxrfailInputError

DEFAULT_FLIP_BOOTSTRAP = 2000
DEFAULT_INLINE_WAIT_S = 2.0


def env_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list (empty when unset)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


@functools.cache
def _overrides(text: str) -> dict:
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CxrfailInputError(
            f"CXRFAIL_DEMO_CONFIG is not JSON ({exc.msg})", fix="Set it to a JSON object of AnalysisConfig fields"
        ) from None
    if not isinstance(overrides, dict):
        raise CxrfailInputError(
            "CXRFAIL_DEMO_CONFIG is not a JSON object", fix="Set it to a JSON object of AnalysisConfig fields"
        )
    fields = {f.name for f in dataclasses.fields(AnalysisConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise CxrfailInputError(
            f"CXRFAIL_DEMO_CONFIG has unknown fields {', '.join(unknown)}",
            fix=f"Use AnalysisConfig fields: {', '.join(sorted(fields))}",
        )
    return {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}


def base_config() -> AnalysisConfig:
    """`AnalysisConfig` defaults with ``CXRFAIL_DEMO_CONFIG`` applied."""
    return dataclasses.replace(AnalysisConfig(), **_overrides(os.environ.get("CXRFAIL_DEMO_CONFIG", "").strip()))


def flip_bootstrap() -> int:
    """Replicates of the live flip evaluation's bootstrap."""
    return int(os.environ.get("CXRFAIL_FLIP_BOOTSTRAP", DEFAULT_FLIP_BOOTSTRAP))


def inline_wait_s() -> float:
    """Seconds a page waits for its run before drawing the self-updating progress panel and returning."""
    return float(os.environ.get("CXRFAIL_INLINE_WAIT_S", DEFAULT_INLINE_WAIT_S))
