"""Allowed roots: the folders the dashboard may read server-side files from.

The dashboard never opens a path a visitor typed unless it resolves (symlinks and ``..`` followed) inside one
of `data_roots`; the command line reads whatever its own user names. Roots come from ``CXRFAIL_DATA_ROOTS``
(folders separated by ``os.pathsep``, ``:`` on Linux); by default they are the demo folder and the project's
``data/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cxrfail.errors import PathNotAllowedError

DATA_ROOTS_VARIABLE = "CXRFAIL_DATA_ROOTS"
MODEL_ROOTS_VARIABLE = "CXRFAIL_MODEL_ROOTS"


def data_roots() -> tuple[Path, ...]:
    """The configured roots, resolved: ``$CXRFAIL_DATA_ROOTS`` entries, else the demo folder
    (``$CXRFAIL_DEMO_DIR`` or ``../shared/data/nih-chexnet``) and ``<project>/data``."""
    from cxrfail.demo import DEMO_SUBDIR, PROJECT_ROOT

    configured = os.environ.get(DATA_ROOTS_VARIABLE, "")
    entries = [entry for entry in configured.split(os.pathsep) if entry.strip()]
    if not entries:
        demo = os.environ.get("CXRFAIL_DEMO_DIR") or PROJECT_ROOT.parent / "shared" / DEMO_SUBDIR
        entries = [str(demo), str(PROJECT_ROOT / "data")]
    return tuple(Path(entry).expanduser().resolve() for entry in entries)


def model_roots() -> tuple[Path, ...]:
    """Folders whose TorchScript files the dashboard may load (TorchScript runs code from the file):
    ``$CXRFAIL_MODEL_ROOTS`` entries, none by default."""
    entries = [e for e in os.environ.get(MODEL_ROOTS_VARIABLE, "").split(os.pathsep) if e.strip()]
    return tuple(Path(entry).expanduser().resolve() for entry in entries)


def is_under(path: str | Path, roots: Sequence[str | Path]) -> bool:
    """True when ``path`` resolves inside one of ``roots``."""
    resolved = Path(os.path.expanduser(str(path))).resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def resolve_under_roots(path: str | Path, roots: Sequence[str | Path] | None = None) -> Path:
    """``path`` resolved (``~``, symlinks, ``..``), when it lies inside one of ``roots`` (default `data_roots`).

    Raises `PathNotAllowedError` otherwise, before anything is opened; the message is the same whether or not
    the path exists, and names the roots so the operator knows what to configure.
    """
    roots = tuple(Path(root).resolve() for root in (data_roots() if roots is None else roots))
    resolved = Path(os.path.expanduser(str(path))).resolve()
    if not is_under(resolved, roots):
        raise PathNotAllowedError(
            "this path is outside the folders the dashboard may read",
            path=path,
            fix=f"Use a file under {', '.join(map(str, roots)) or '(no roots configured)'}, or ask the operator "
                f"to add its folder to {DATA_ROOTS_VARIABLE}",
        )
    return resolved


def resolve_inside(path: str | Path, folder: str | Path) -> Path:
    """``path`` (relative to ``folder`` unless absolute) resolved, when it lies inside ``folder``; else
    `PathNotAllowedError`. Used for image paths from a cohort, which must stay in the cohort's image folder."""
    base = Path(folder).resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise PathNotAllowedError("an image path points outside the image folder", path=path,
                                  fix=f"Image paths must lie inside {folder}")
    return resolved
