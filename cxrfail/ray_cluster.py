"""Connecting to a Ray cluster: the address, a checked connection, and a one-line description of the cluster.

Ray is optional: it is imported only here and in the Ray back ends (`cxrfail.inference.ray_backend`,
`cxrfail.analysis.distributed`), and a missing Ray raises `RayNotInstalledError` naming the extra to install.

An ADDRESS is what ``ray.init(address=...)`` takes: ``HOST:PORT`` of a running cluster's head (``ray start
--head`` prints it), ``auto`` (the cluster last started on this machine) or ``ray://HOST:PORT`` (Ray Client).
``CXRFAIL_RAY_ADDRESS`` supplies it where no address is given.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from types import ModuleType

from cxrfail.errors import ClusterError, RayNotInstalledError

RAY_ADDRESS_ENV = "CXRFAIL_RAY_ADDRESS"
RAY_EXTRA_HINT = "Install the Ray extra: pip install 'cxrfail[ray]' (or ray[data]==2.60.0)"
_CONNECT_TIMEOUT_S = 5.0


def require_ray() -> ModuleType:
    """The ``ray`` module, or `RayNotInstalledError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError("Ray is not installed", fix=RAY_EXTRA_HINT) from None
    return ray


def resolve_ray_address(requested: str | None) -> str | None:
    """The cluster to use: ``requested`` (``--ray ADDRESS``), else ``$CXRFAIL_RAY_ADDRESS``, else None (run
    locally). ``--ray`` without an address passes ``""``: the environment's address, or ``auto``."""
    configured = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if requested is None:
        return configured or None
    return requested.strip() or configured or "auto"


@contextlib.contextmanager
def ray_session(address: str) -> Iterator[ModuleType]:
    """Connect this process to the cluster at ``address`` for the block (reusing a connection already open) and
    yield the ``ray`` module. An unreachable address raises `ClusterError` within about 5 s."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address!r} ({_first_line(exc)})",
                           fix="Start one with `ray start --head` or pass the head's HOST:PORT") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def describe_cluster(address: str) -> str:
    """One line on the cluster at ``address``, e.g. ``2 nodes, 4 CPUs, 0 GPUs at 127.0.0.1:6379``."""
    with ray_session(address) as ray:
        return cluster_summary(ray)


def cluster_summary(ray: ModuleType) -> str:
    """One line on the cluster the connected ``ray`` module talks to (see `describe_cluster`)."""
    alive = [node for node in ray.nodes() if node.get("Alive")]
    resources = ray.cluster_resources()
    gcs = ray.get_runtime_context().gcs_address
    return (f"{len(alive)} nodes, {int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs "
            f"at {gcs}")


def _check_reachable(address: str) -> None:
    """Fail fast (`ClusterError`) when a HOST:PORT address refuses TCP connections; Ray itself retries for
    minutes."""
    target = address.removeprefix("ray://")
    host, separator, port = target.rpartition(":")
    if not separator or address == "auto":
        return
    if not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not HOST:PORT", fix="e.g. --ray 10.0.0.5:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})",
                           fix="Check the head node's address and port (`ray status` on the head)") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
