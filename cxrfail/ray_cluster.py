"""Connecting to a Ray cluster: the address, a checked connection, and a one-line description of the cluster.

Ray is optional: it is imported only here and in the Ray back ends (`cxrfail.inference.ray_backend`,
`cxrfail.analysis.distributed`), and a missing Ray raises `RayNotInstalledError` naming the extra to install.

An ADDRESS is what ``ray.init(address=...)`` takes: ``HOST:PORT`` of a running cluster's head (``ray start
--head`` prints it), ``auto`` (the cluster last started on this machine) or ``ray://HOST:PORT`` (Ray Client).
``CXRFAIL_RAY_ADDRESS`` supplies it where no address is given.

A connection never hangs: Ray retries an address that answers but is not (or not reachably) a cluster for
minutes, so `ray_session` gives up after ``CXRFAIL_RAY_CONNECT_TIMEOUT_S`` seconds (default 60) with a
`ClusterError` (one line, exit status 2 on the command line). For a loopback address (``127.0.0.1``,
``localhost``) the driver stays on loopback too: Ray would otherwise swap it for the machine's network address,
where a cluster started with ``--node-ip-address=127.0.0.1`` does not listen.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from types import ModuleType

from cxrfail.errors import ClusterError, RayNotInstalledError

RAY_ADDRESS_ENV = "CXRFAIL_RAY_ADDRESS"
RAY_EXTRA_HINT = "Install the Ray extra: pip install 'cxrfail[ray]' (or ray[data]==2.60.0)"
_CONNECT_TIMEOUT_S = 5.0
CONNECT_DEADLINE_VARIABLE = "CXRFAIL_RAY_CONNECT_TIMEOUT_S"
DEFAULT_CONNECT_DEADLINE_S = 60.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Ray's switch that keeps a driver's own address on loopback (read by `ray._private.services`).
_RAY_LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK_HINT = (
    "For a cluster on this machine only, start its head with `ray start --head "
    "--node-ip-address=127.0.0.1` and pass --ray 127.0.0.1:PORT (the port `ray start` printed)"
)


def require_ray() -> ModuleType:
    """The ``ray`` module, or `RayNotInstalledError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError("Ray is not installed", fix=RAY_EXTRA_HINT) from None
    return ray


def add_ray_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str) -> None:
    """``--ray [ADDRESS]`` on a command: absent None, bare ``""``, else the address (read by
    `resolve_ray_address`)."""
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help=help_text)


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
    loopback = is_loopback(address)
    if loopback:
        os.environ.setdefault(_RAY_LOOPBACK_VARIABLE, "0")  # read when ray is first imported
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address)
    if loopback:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # ray imported before: the same switch, set directly
    _init_within_deadline(ray, address)
    try:
        yield ray
    finally:
        ray.shutdown()


def is_loopback(address: str) -> bool:
    """Whether a HOST:PORT (or ray://HOST:PORT) address names this machine's loopback interface."""
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host in _LOOPBACK_HOSTS


def connect_deadline_s() -> float:
    """Seconds `ray_session` waits for ``ray.init`` (``CXRFAIL_RAY_CONNECT_TIMEOUT_S``, default 60)."""
    text = os.environ.get(CONNECT_DEADLINE_VARIABLE, "").strip()
    try:
        value = float(text) if text else DEFAULT_CONNECT_DEADLINE_S
    except ValueError:
        raise ClusterError(f"{CONNECT_DEADLINE_VARIABLE} must be a number of seconds, got {text!r}") from None
    return max(value, 1.0)


def _init_within_deadline(ray: ModuleType, address: str) -> None:
    """``ray.init(address)`` in a daemon thread; `ClusterError` when it fails or has not connected within
    `connect_deadline_s` (the thread is left to Ray's own retries; it does not keep the process alive)."""
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="cxrfail-ray-connect", daemon=True)
    thread.start()
    deadline = connect_deadline_s()
    thread.join(deadline)
    if "error" not in outcome:
        error = ClusterError(
            f"the Ray cluster at {address} did not accept a connection within {deadline:.0f} s",
            fix=LOOPBACK_HINT
            if is_loopback(address)
            else "Check that a Ray head runs there (`ray status` on the head) and that this machine "
            f"can reach its address; {CONNECT_DEADLINE_VARIABLE} sets the wait",
        )
        error.connection_left_hanging = True  # Ray keeps retrying in its thread: the CLI ends the process
        raise error
    exc = outcome["error"]
    if exc is not None:
        raise ClusterError(
            f"cannot connect to the Ray cluster at {address!r} ({_first_line(exc)})",
            fix="Start one with `ray start --head` or pass the head's HOST:PORT",
        ) from None


def describe_cluster(address: str) -> str:
    """One line on the cluster at ``address``, e.g. ``2 nodes, 4 CPUs, 0 GPUs at 127.0.0.1:6379``."""
    with ray_session(address) as ray:
        return cluster_summary(ray)


def cluster_summary(ray: ModuleType) -> str:
    """One line on the cluster the connected ``ray`` module talks to (see `describe_cluster`)."""
    alive = [node for node in ray.nodes() if node.get("Alive")]
    resources = ray.cluster_resources()
    gcs = ray.get_runtime_context().gcs_address
    return f"{len(alive)} nodes, {int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs at {gcs}"


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
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})",
            fix="Check the head node's address and port (`ray status` on the head)",
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
