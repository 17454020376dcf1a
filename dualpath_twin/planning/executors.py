"""Executors for planning work: inline, a local process pool (default), Dask (by address) or Ray (optional).

All of them expose ``concurrent.futures.Executor`` (``submit``/``map``), so sweeps, capacity
searches and sizing do not care where the work runs.

Lost workers: ``retries`` (default ``DEFAULT_RETRIES``) bounds how often work lost with a dead
worker process is run again. On Dask the scheduler re-runs a task whose worker died up to
``retries`` times (``allowed_failures`` of the LocalCluster we start; a remote scheduler uses its
own ``distributed.scheduler.allowed-failures``, Dask's default 3), and ``submit_all`` resubmits a
task whose future still fails (``KilledWorker``) up to ``retries`` more times. The local pool
cannot survive a dead worker (``BrokenProcessPool`` fails every unfinished future):
``LocalProcessPool.renew`` starts a fresh pool and ``submit_all`` resubmits the unfinished work.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from dualpath_twin.planning.grid import PlanningError

ExecutorKind = Literal["inline", "local", "dask", "ray"]
T = TypeVar("T")

#: times work lost with a dead worker is run again (per task and per layer, see the module docstring)
DEFAULT_RETRIES = 2

log = logging.getLogger(__name__)


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


class LocalProcessPool(Executor):
    """A local process pool that ``renew`` replaces by a fresh one after a worker process died."""

    def __init__(self, max_workers: int, mp_context: Any = None, initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self._kw: dict[str, Any] = {"max_workers": max_workers, "mp_context": mp_context,
                                    "initializer": initializer, "initargs": initargs}
        self._max_workers = max_workers  # read by sizing to size its waves
        self._pool = ProcessPoolExecutor(**self._kw)
        self.generation = 0  # pools started so far minus one; futures are tagged with it
        self.renewals = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Submit to the current pool."""
        return self._pool.submit(fn, *args, **kwargs)

    def renew(self, generation: int) -> None:
        """Replace the pool of ``generation`` (broken: a worker died) by a fresh one; no-op if already renewed."""
        if generation != self.generation:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(**self._kw)
        self.generation += 1
        self.renewals += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the current pool down."""
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def submit_all(
    executor: Executor | None, fn: Callable[[T], Any], items: Sequence[T], *, retries: int = DEFAULT_RETRIES
) -> Iterator[tuple[T, Any, BaseException | None]]:
    """Run ``fn(item)`` for every item, yielding ``(item, result, None)`` as each finishes, each item exactly once.

    A future that raises (a lost worker: ``KilledWorker`` on Dask, ``BrokenProcessPool`` locally,
    after which a ``LocalProcessPool`` is renewed) is resubmitted up to ``retries`` times, then
    yielded as ``(item, None, error)``. Items already yielded are never run again. An
    ``InlineExecutor`` (or None) runs the items one by one, lazily, in this process.
    """
    if retries < 0:
        raise PlanningError(f"retries must be >= 0, got {retries}")
    if executor is None or isinstance(executor, InlineExecutor):
        for it in items:
            try:
                yield it, fn(it), None
            except Exception as err:  # noqa: BLE001 - reported to the caller like a lost task
                yield it, None, err
        return
    pending: dict[Future, tuple[int, int]] = {}
    attempts = [0] * len(items)

    def submit(i: int) -> BaseException | None:
        try:
            pending[executor.submit(fn, items[i])] = (i, getattr(executor, "generation", 0))
        except Exception as err:  # noqa: BLE001 - e.g. a broken plain ProcessPoolExecutor
            return err
        return None

    failed: list[tuple[int, BaseException]] = []
    for i in range(len(items)):
        err = submit(i)
        if err is not None:
            failed.append((i, err))
    try:
        for i, err in failed:
            yield items[i], None, err
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            lost: list[tuple[int, int, BaseException]] = []
            for f in done:
                i, gen = pending.pop(f)
                try:
                    result = f.result()
                except BaseException as err:  # noqa: BLE001 - CancelledError too
                    if isinstance(err, KeyboardInterrupt):
                        raise
                    lost.append((i, gen, err))
                    continue
                yield items[i], result, None
            for i, gen, err in lost:
                if isinstance(err, BrokenProcessPool) and hasattr(executor, "renew"):
                    executor.renew(gen)  # once per broken pool
                if attempts[i] >= retries:
                    yield items[i], None, err
                    continue
                attempts[i] += 1
                log.warning("task %d lost (%s: %s); retry %d of %d", i, type(err).__name__, err, attempts[i], retries)
                again = submit(i)
                if again is not None:
                    yield items[i], None, again
    finally:
        for f in pending:
            f.cancel()


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
    kind: ExecutorKind | str = "local",
    workers: int | None = None,
    address: str | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
) -> Iterator[Executor]:
    """Open an executor and close it afterwards; ``local`` with one worker runs inline.

    ``retries``: on a Dask LocalCluster started here, how often the scheduler re-runs a task
    whose worker died (``allowed_failures``), and Dask's own ``retries`` for a task that raised.
    """
    kind = str(kind).lower()
    if workers is not None and workers < 1:
        raise PlanningError(f"--workers must be >= 1, got {workers}")
    if retries < 0:
        raise PlanningError(f"retries must be >= 0, got {retries}")
    if kind == "inline" or (kind == "local" and (workers or default_workers()) == 1):
        yield InlineExecutor()
        return
    if kind == "local":
        if address:
            raise PlanningError("--address is only for --executor dask or ray; drop it for the local pool")
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        pool = LocalProcessPool(workers or default_workers(), ctx)
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
            cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                                   scheduler_kwargs={"allowed_failures": retries})
            client = Client(cluster)
        try:
            # pure=False: a resubmitted task gets a fresh key instead of the erred one
            yield client.get_executor(retries=retries, pure=False)
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


def run_tasks(executor: Executor | None, fn: Callable[[Any], Any], tasks: Sequence[Any], *,
              retries: int = DEFAULT_RETRIES, progress: Callable[[int, int], None] | None = None,
              inline_single: bool = True) -> list[Any]:
    """``fn(task)`` for every planning task, results in task order, through ``submit_all``: a task lost with its
    worker is resubmitted (``retries`` times); one still lost comes back as ``error_outcome`` (never raised).
    ``progress(done, total)`` is called as each task finishes. A single task runs in this process unless
    ``inline_single`` is False (callers that run several searches side by side in threads need the workers)."""
    from dualpath_twin.planning.types import error_outcome

    if executor is None or (inline_single and len(tasks) <= 1):
        executor = None  # one task (or none): run it here, as before
    index = {id(t): i for i, t in enumerate(tasks)}
    out: list[Any] = [None] * len(tasks)
    for n, (t, result, err) in enumerate(submit_all(executor, fn, tasks, retries=retries), start=1):
        out[index[id(t)]] = result if err is None else error_outcome(getattr(t, "key", ""), err)
        if progress:
            progress(n, len(tasks))
    return out
