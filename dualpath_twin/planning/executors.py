"""Executors for planning work: inline, a local process pool (default), Dask (by address) or Ray (optional).

All of them expose ``concurrent.futures.Executor`` (``submit``/``map``), so sweeps, capacity
searches and sizing do not care where the work runs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal

from dualpath_twin.planning.grid import PlanningError

ExecutorKind = Literal["inline", "local", "dask", "ray"]


class InlineExecutor(Executor):
    """Runs each task immediately in the calling process (workers=1, tests, debugging)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn`` now and return a completed future."""
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001
            fut.set_exception(err)
        return fut


class _RayExecutor(Executor):
    """Minimal Executor over Ray tasks (optional; ray is not a project dependency)."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address or None, num_cpus=None if address else workers, ignore_reinit_error=True)
        self._remote: dict[Any, Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Submit ``fn`` as a Ray task; the ObjectRef's future is returned."""
        rf = self._remote.get(fn)
        if rf is None:
            rf = self._remote[fn] = self._ray.remote(fn)
        return rf.remote(*args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Leave the Ray cluster."""
        self._ray.shutdown()


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def open_executor(
    kind: ExecutorKind | str = "local", workers: int | None = None, address: str | None = None
) -> Iterator[Executor]:
    """Open an executor and close it afterwards; ``local`` with one worker runs inline."""
    kind = str(kind).lower()
    if workers is not None and workers < 1:
        raise PlanningError(f"--workers must be >= 1, got {workers}")
    if kind == "inline" or (kind == "local" and (workers or default_workers()) == 1):
        yield InlineExecutor()
        return
    if kind == "local":
        if address:
            raise PlanningError("--address is only for --executor dask or ray; drop it for the local pool")
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(max_workers=workers or default_workers(), mp_context=ctx)
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    if kind == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:  # pragma: no cover
            raise PlanningError("--executor dask needs dask.distributed: pip install 'dask[distributed]'") from err
        cluster = None
        if address:
            client = Client(address)
        else:
            cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True)
            client = Client(cluster)
        try:
            yield client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if kind == "ray":
        try:
            ex = _RayExecutor(address, workers)
        except ImportError as err:
            raise PlanningError("--executor ray needs ray, which is optional: pip install ray (or use --executor dask)") from err
        try:
            yield ex
        finally:
            ex.shutdown()
        return
    raise PlanningError(f"--executor {kind!r}: unknown; use local, dask or ray (or inline)")
