"""Allowed roots: the folders the dashboard may read server-side files from, and the one confinement rule.

The dashboard never opens a path a visitor typed (or a model card names, or a cohort's ``image_path`` holds)
unless it resolves (symlinks and ``..`` followed) inside one of its roots, checked twice: on the typed text
before anything is opened (`resolve_under_roots`, the same message whether or not the path exists), and on
the file actually opened, by its file descriptor (`open_under_roots`): a folder swapped for a symlink between
the check and the use cannot redirect the read. The command line reads whatever its own user names.

Roots come from ``CXRFAIL_DATA_ROOTS`` (folders separated by ``os.pathsep``, ``:`` on Linux); by default they
are the demo folder and the project's ``data/``. Error messages name no server path beyond what the visitor
typed.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cxrfail.errors import FileTooLargeError, PathNotAllowedError

DATA_ROOTS_VARIABLE = "CXRFAIL_DATA_ROOTS"
MODEL_ROOTS_VARIABLE = "CXRFAIL_MODEL_ROOTS"
#: Shown when a path is refused: says what to do without listing the server's folders.
OUTSIDE_ROOTS_FIX = (
    f"Use a file under the folders the operator allowed ({DATA_ROOTS_VARIABLE}; TorchScript: "
    f"{MODEL_ROOTS_VARIABLE}), or ask the operator to add its folder"
)


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
    resolved = _resolve(path)
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def _resolve(path: str | Path) -> Path:
    """``path`` with ``~`` expanded, resolved; a path the OS cannot name (a NUL byte) is refused like any other
    path outside the roots."""
    text = os.path.expanduser(os.fspath(path))
    if "\0" in text:
        raise PathNotAllowedError(
            "this path is outside the folders the dashboard may read",
            path=text.replace("\0", "\\0"),
            fix=OUTSIDE_ROOTS_FIX,
        )
    return Path(text).resolve()


def resolve_under_roots(path: str | Path, roots: Sequence[str | Path] | None = None) -> Path:
    """``path`` resolved (``~``, symlinks, ``..``), when it lies inside one of ``roots`` (default `data_roots`).

    Raises `PathNotAllowedError` otherwise, before anything is opened; the message is the same whether or not
    the path exists, and names neither the roots nor anything else on the server.
    """
    roots = tuple(Path(root).resolve() for root in (data_roots() if roots is None else roots))
    resolved = _resolve(path)
    if not is_under(resolved, roots):
        raise PathNotAllowedError(
            "this path is outside the folders the dashboard may read", path=path, fix=OUTSIDE_ROOTS_FIX
        )
    return resolved


def opened_path(handle: io.IOBase | int) -> Path:
    """The real path of the file an open handle (or file descriptor) refers to, from the kernel
    (``/proc/self/fd``): what was actually opened, whatever the path looked like when it was checked."""
    fd = handle if isinstance(handle, int) else handle.fileno()
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


def open_under_roots(path: str | Path, roots: Sequence[str | Path], *, folder: bool = False) -> io.BufferedReader:
    """Open ``path`` for reading (binary) when it resolves inside one of ``roots``, checked before opening
    (`resolve_under_roots`) and again on the open file descriptor: the file actually opened must lie inside a
    root, so a parent folder swapped for a symlink after the first check is refused, not followed.

    ``roots`` are taken as given (absolute, not re-resolved at each call): pass the folders resolved when they
    were accepted, so that a root swapped later does not move the boundary. Raises `PathNotAllowedError`;
    ``OSError`` when the file cannot be opened. The caller closes the handle.
    """
    bounds = tuple(Path(os.path.abspath(root)) for root in roots)
    resolved = resolve_under_roots(path, bounds)
    handle = open(resolved, "rb")  # noqa: SIM115 - returned to the caller
    try:
        real = opened_path(handle)
        mode = os.fstat(handle.fileno()).st_mode
        if not any(real.is_relative_to(root) for root in bounds) or stat.S_ISDIR(mode) != folder:
            raise PathNotAllowedError(
                "this path is outside the folders the dashboard may read", path=path, fix=OUTSIDE_ROOTS_FIX
            )
    except BaseException:
        handle.close()
        raise
    return handle


def read_under_roots(path: str | Path, roots: Sequence[str | Path], max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, opened with `open_under_roots`; with ``max_bytes``, a file larger than that raises
    `FileTooLargeError` before it is read."""
    with open_under_roots(path, roots) as handle:
        size = os.fstat(handle.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise FileTooLargeError(
                f"the file is {size / 1e6:.1f} MB, above the limit of {max_bytes / 1e6:.1f} MB",
                path=path,
                fix="Use a smaller file, or ask the operator to raise the limit",
            )
        data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLargeError(
            f"the file is above the limit of {max_bytes / 1e6:.1f} MB",
            path=path,
            fix="Use a smaller file, or ask the operator to raise the limit",
        )
    return data


def resolve_inside(path: str | Path, folder: str | Path) -> Path:
    """``path`` (relative to ``folder`` unless absolute) resolved, when it lies inside ``folder``; else
    `PathNotAllowedError`. Used for image paths from a cohort, which must stay in the cohort's image folder.
    ``folder`` is taken as given (made absolute, not re-resolved): a folder replaced by a symlink after it was
    accepted does not move the boundary. Opening goes through `open_under_roots`, which checks again."""
    base = Path(os.path.abspath(folder))
    resolved = _resolve(base / path)
    if not resolved.is_relative_to(base):
        raise PathNotAllowedError(
            "an image path points outside the image folder",
            path=path,
            fix="Image paths must lie inside the cohort's image folder",
        )
    return resolved
