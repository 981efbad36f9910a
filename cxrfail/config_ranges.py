"""Allowed ranges of the analysis settings, checked when an `AnalysisConfig` is made (so the CLI, the dashboard
and library callers all get the same `ConfigError` naming the field and its range)."""

from __future__ import annotations

import math

from cxrfail.errors import ConfigError

#: field -> (lowest, highest, whether the bounds themselves are allowed, integer only).
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "fixed_threshold": (0.0, 1.0, True, False),
    "calibration_fraction": (0.0, 1.0, False, False),
    "min_subgroup_n": (1, math.inf, True, True),
    "n_folds": (2, 100, True, True),
    "n_bootstrap": (100, 1_000_000, True, True),
    "shap_max_samples": (1, 1_000_000, True, True),
    "min_overlap": (0.0, 1.0, True, False),
}


def _range_text(low: float, high: float, inclusive: bool) -> str:
    if high == math.inf:
        return f"at least {low:g}"
    return f"from {low:g} to {high:g}" if inclusive else f"between {low:g} and {high:g}, exclusive"


def check_config_ranges(config: object) -> None:
    """Raise `ConfigError` for the first field of ``config`` (an `AnalysisConfig`) outside `RANGES`, for a
    non-number, and for age bins that do not increase."""
    for name, (low, high, inclusive, integer) in RANGES.items():
        value = getattr(config, name)
        wrong_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
        if wrong_type or not math.isfinite(value):
            raise ConfigError(f"setting {name} must be {'an integer' if integer else 'a number'}, not {value!r}")
        inside = low <= value <= high if inclusive else low < value < high
        if not inside:
            raise ConfigError(f"setting {name} is {value!r}; it must be {_range_text(low, high, inclusive)}",
                              fix=f"Choose {name} in range")
    bins = list(getattr(config, "age_bins"))
    if any(later <= earlier for earlier, later in zip(bins, bins[1:])):
        raise ConfigError(f"setting age_bins {bins} must increase", fix="List the bin edges in years, ascending")
    if not getattr(config, "findings"):
        raise ConfigError("setting findings is empty", fix="Analyse at least one finding")
