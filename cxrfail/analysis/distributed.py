"""The analysis grid on a Ray cluster: any picklable function over argument tuples, as Ray tasks.

`map_on_ray` is the Ray counterpart of joblib's ``Parallel(return_as="generator_unordered")`` in
`cxrfail.analysis.runner`: the same calls, the same outputs, on every node of a cluster. An argument object
shared by several tuples (the cohort table, the probabilities) goes into the object store once, not once per
task. A task whose worker process dies is run again (up to ``max_retries`` times); an exception the function
raises is not retried and propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cxrfail.ray_cluster import ray_session

_INLINE_TYPES = (str, int, float, bool, type(None))


def map_on_ray(
    function: Callable[..., Any],
    argument_tuples: Sequence[tuple],
    address: str,
    *,
    max_retries: int = 3,
    num_cpus: float = 1,
) -> Iterator[tuple[int, Any]]:
    """Run ``function(*arguments)`` for every tuple as a Ray task on the cluster at ``address``; yield
    ``(position of the tuple, output)`` as tasks finish (unordered).

    Args:
        function: a module-level (picklable) function; it must import on the workers (cxrfail installed there).
        argument_tuples: one tuple of positional arguments per task.
        address: the cluster (see `cxrfail.ray_cluster`).
        max_retries: reruns of a task whose worker process or node dies.
        num_cpus: CPU cores reserved per task.
    """
    with ray_session(address) as ray:
        remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(function)
        stored: dict[int, Any] = {}

        def in_store(value: Any) -> Any:
            if isinstance(value, _INLINE_TYPES):
                return value
            if id(value) not in stored:
                stored[id(value)] = ray.put(value)
            return stored[id(value)]

        pending = {
            remote.remote(*map(in_store, arguments)): position for position, arguments in enumerate(argument_tuples)
        }
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for reference in finished:
                    yield pending.pop(reference), ray.get(reference)
        finally:
            for reference in pending:
                ray.cancel(reference, force=True)
