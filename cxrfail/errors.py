"""Input errors that name the file, the column and the rows at fault, and say what to do.

Every error the user can cause by handing cxrfail a bad file derives from `CxrfailInputError`; the CLI turns
it into exit status 2 with one line on stderr, the dashboard into an `st.error` box. Anything else is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_HEADER_NAME = re.compile(r"[\w .()/%+-]{1,40}")


class CxrfailInputError(ValueError):
    """A problem with user input: message says which file, column and rows, and what to do."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        column: str | None = None,
        rows: Iterable[object] | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.column = column
        self.rows = [] if rows is None else list(rows)
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}:")
        if self.column is not None:
            parts.append(f"column {self.column!r}:")
        parts.append(self.problem)
        text = " ".join(parts)
        if self.rows:
            shown = ", ".join(str(row) for row in self.rows[:5])
            more = f" and {len(self.rows) - 5} more" if len(self.rows) > 5 else ""
            text += f" (first offending rows: {shown}{more})"
        if self.fix:
            text += f". {self.fix}"
        return text


class CohortError(CxrfailInputError):
    """A cohort file (labels, demographics) cannot be used as given."""


class PredictionsError(CxrfailInputError):
    """A prediction file cannot be used as given."""


class PathNotAllowedError(CxrfailInputError):
    """A server-side path lies outside the configured data roots. The message never says whether the path
    exists, and never shows anything read from it."""


class FileTooLargeError(CxrfailInputError):
    """A file is larger than the limit for its kind (an image, an upload); nothing of it was decoded."""


class ConfigError(CxrfailInputError):
    """An analysis or serving setting is outside its allowed range; the message names the setting and range."""


class CacheKeyError(CxrfailInputError):
    """A cache key given by the user is not a key (it could name a path outside the cache)."""


class ReportWriteError(CxrfailInputError):
    """The report folder could not be written completely (full disk, no permission); nothing was left half
    written."""


class OracleFeatureSetError(CxrfailInputError):
    """A feature set built from ground-truth labels was chosen where only deployable inputs may be used."""


def first_rows(mask, index) -> list[object]:
    """Row labels where the boolean ``mask`` holds, for error messages (1-based file lines when ``index`` is
    a RangeIndex over the data rows: header is line 1, so data row i is line i + 2)."""
    import numpy as np
    import pandas as pd

    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    if isinstance(index, pd.RangeIndex):
        return [f"line {int(p) + 2}" for p in positions]
    return [index[p] for p in positions]


def refuse_rows(
    mask, index, problem: str, *, path: str | Path, column: str, fix: str, error: type[CxrfailInputError] = CohortError
) -> None:
    """Raise ``error`` naming ``path``, ``column`` and the first rows (`first_rows` of ``index``) where the
    boolean ``mask`` holds; nothing when it holds for no row."""
    if mask.any():
        raise error(problem, path=path, column=column, rows=first_rows(mask, index), fix=fix)


def header_names(columns: Iterable[object]) -> str:
    """The column names of a file for an error message, quoted, when they look like a CSV header (short
    names of letters, digits, spaces and ``._()/%+-``); otherwise only their number. A file that is not a
    table (a shell profile, a key file) must never have its lines echoed into a message."""
    names = [str(column) for column in columns]
    if names and all(_HEADER_NAME.fullmatch(name) for name in names):
        return ", ".join(map(repr, names[:30])) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    return f"{len(names)} column(s) whose names do not look like a table header"


class ClusterError(CxrfailInputError):
    """A Ray cluster address cannot be used: unreachable, malformed, or no cluster runs there."""


class RayNotInstalledError(CxrfailInputError):
    """Ray is needed (``--ray``, ``CXRFAIL_RAY_ADDRESS``) but not installed."""
