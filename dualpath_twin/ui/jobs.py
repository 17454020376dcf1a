"""Background simulation jobs: runs go off the script thread, pages poll their progress.

One process-wide registry (module singleton, shared by every browser tab) holds the jobs. A job's
daemon thread runs its policies one after another through ``api.simulate`` with a progress
callback and a cancel event, then records each result in the store. Only one job simulates at a
time (the machine has few cores); later jobs wait as "queued".

Runner modes: ``process`` (default) simulates in a child process (forkserver) so the simulation
never competes with the Streamlit server for the GIL and the page stays responsive; progress
(downsampled) and results come back over a queue and the parent writes the store. ``thread``
simulates in the job thread itself (tests substitute the core in-process; set
DUALPATH_TWIN_UI_RUNNER=thread to force it).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from dualpath_twin.results import Progress, RunResult
from dualpath_twin.scenario import Scenario
from dualpath_twin.ui import backend

ACTIVE = ("queued", "running")
MAX_KEPT_JOBS = 20
CHILD_PROGRESS_EVERY_S = 1.0  # how often the child process forwards progress
CHILD_MAX_POINTS = 600  # time samples per series forwarded with live progress
PRELOAD = ["dualpath_twin.api", "dualpath_twin.store", "polars", "numpy", "simpy"]


@dataclass
class PolicyRun:
    """One policy's simulation inside a job."""

    policy: str
    status: str = "queued"  # queued | running | finished | truncated | cancelled | failed
    progress: Progress | None = None
    result: RunResult | None = None
    run_id: str | None = None
    error: str = ""
    wall_start_s: float | None = None
    wall_end_s: float | None = None
    # (simulated time s, SLO attainment of the rounds finished so far), one point per progress report
    slo_history: list[tuple[float, float]] = field(default_factory=list)

    def record_progress(self, p: Progress) -> None:
        """Keep the latest progress and its SLO attainment point for the live plot."""
        self.progress = p
        if p.slo_attainment is not None:
            self.slo_history.append((p.sim_time_s, p.slo_attainment))

    @property
    def fraction_done(self) -> float:
        """Rounds done over rounds total, 0-1 (1 once finished)."""
        if self.status in ("finished", "truncated"):
            return 1.0
        p = self.progress
        if p is None or p.rounds_total <= 0:
            return 0.0
        return max(0.0, min(1.0, p.rounds_done / p.rounds_total))


@dataclass
class Job:
    """A run or comparison started from the dashboard."""

    job_id: str
    scenario: Scenario
    policies: list[str]
    runs: dict[str, PolicyRun]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    created: datetime = field(default_factory=datetime.now)
    store_error: str = ""
    thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        """Overall state: queued, running, cancelled, failed or finished."""
        states = [r.status for r in self.runs.values()]
        if any(s == "running" for s in states):
            return "running"
        if all(s == "queued" for s in states):
            return "queued"
        if any(s == "queued" for s in states):
            return "running"
        if any(s == "cancelled" for s in states):
            return "cancelled"
        if any(s == "failed" for s in states):
            return "failed"
        return "finished"

    @property
    def active(self) -> bool:
        """True while any policy is queued or running."""
        return self.status in ACTIVE

    def results(self) -> list[RunResult]:
        """Results of the policies that produced one, in the requested order."""
        return [r.result for r in self.runs.values() if r.result is not None]

    def label(self) -> str:
        """Human label: scenario, policies, start time."""
        return f"{self.scenario.name}: {' vs '.join(self.policies)} ({self.created:%H:%M:%S})"


class JobRegistry:
    """Process-wide set of jobs; thread-safe; one job simulates at a time."""

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode or os.environ.get("DUALPATH_TWIN_UI_RUNNER", "process")
        self._lock = threading.Lock()
        self._sim_slot = threading.Semaphore(1)
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._warm = False

    def start(self, scenario: Scenario, policies: list[str], *, force: bool = False) -> Job:
        """Queue a job that simulates ``scenario`` under each policy in turn; returns immediately.

        Raises ``guard.RunTooLarge`` (problems naming the field and the fix) when the run's
        estimated memory or wall time exceeds the limits, unless ``force``.
        """
        if not policies:
            raise ValueError("choose at least one policy to run")
        from dualpath_twin import guard

        guard.guard_run(scenario, list(policies), workers=1, force=force)
        job_id = f"job{next(self._ids)}-{int(time.time())}"
        job = Job(job_id, scenario, list(policies), {p: PolicyRun(p) for p in policies})
        job.thread = threading.Thread(target=self._work, args=(job,), name=f"dualpath-{job_id}", daemon=True)
        with self._lock:
            self._jobs[job_id] = job
            self._trim()
        job.thread.start()
        return job

    def warm_up(self) -> None:
        """Start the forkserver (importing the simulator once) in the background so the first run starts fast."""
        if self.mode != "process" or self._warm or mp.parent_process() is not None:
            return  # never from inside a child process (it would start a process while bootstrapping)
        self._warm = True

        def start() -> None:
            try:
                ctx = _context()
                child = ctx.Process(target=_noop, daemon=True)
                child.start()
                child.join(timeout=120)
            except Exception:  # noqa: BLE001 - warming is an optimisation only
                traceback.print_exc()

        threading.Thread(target=start, name="dualpath-warmup", daemon=True).start()

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, or None."""
        if job_id is None:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """All kept jobs, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop; the running simulation sees the event and returns a cancelled result."""
        job = self.get(job_id)
        if job is not None:
            job.cancel_event.set()

    def clear(self) -> None:
        """Cancel and forget every job (tests)."""
        for job in self.jobs():
            job.cancel_event.set()
        for job in self.jobs():
            if job.thread is not None:
                job.thread.join(timeout=30)
        with self._lock:
            self._jobs.clear()

    def _trim(self) -> None:
        done = [j for j in sorted(self._jobs.values(), key=lambda j: j.created) if not j.active]
        while len(self._jobs) > MAX_KEPT_JOBS and done:
            self._jobs.pop(done.pop(0).job_id, None)

    # ------------------------------------------------------------ worker thread

    def _work(self, job: Job) -> None:
        with self._sim_slot:
            if self.mode == "process":
                self._work_in_child(job)
                return
            workload = self._load_workload(job)
            for policy in job.policies:
                run = job.runs[policy]
                if job.cancel_event.is_set():
                    run.status = "cancelled"
                    run.error = "cancelled before it started"
                    self._mark(job, self._begin(job, policy), "cancelled", run.error)
                    continue
                self._run_one(job, run, workload)

    def _work_in_child(self, job: Job) -> None:
        """Simulate the job's policies in a child process; mirror its reports into the job."""
        ctx = _context()
        reports = ctx.Queue()
        cancel = ctx.Event()
        from dualpath_twin import guard

        budget = guard.memory_budget_bytes()  # read here: the forkserver child keeps the env it started with
        child = ctx.Process(target=_child_main, args=(job.scenario.to_toml(), job.policies, reports, cancel, budget),
                            name=f"dualpath-{job.job_id}", daemon=True)
        child.start()
        pending = list(job.policies)
        while pending:
            if job.cancel_event.is_set():
                cancel.set()
            try:
                kind, policy, payload = reports.get(timeout=0.2)
            except queue_mod.Empty:
                if not child.is_alive():
                    self._child_died(job, pending, child.exitcode)
                    break
                continue
            run = job.runs[policy]
            if kind == "start":
                run.run_id = self._begin(job, policy)
                run.status = "running"
                run.wall_start_s = time.monotonic()
            elif kind == "progress":
                run.record_progress(payload)
            elif kind == "result":
                self._record_result(job, run, payload)
                pending.remove(policy)
            elif kind in ("error", "skipped"):
                run.status = "failed" if kind == "error" else "cancelled"
                run.error = payload
                run.wall_end_s = time.monotonic()
                if run.run_id is None:
                    run.run_id = self._begin(job, policy)
                self._mark(job, run.run_id, run.status, run.error)
                pending.remove(policy)
        child.join(timeout=10)
        if child.is_alive():
            child.kill()

    def _child_died(self, job: Job, pending: list[str], exitcode: int | None) -> None:
        for policy in pending:
            run = job.runs[policy]
            run.status = "failed"
            run.error = f"the simulation process exited unexpectedly (exit code {exitcode})"
            if run.run_id is None:
                run.run_id = self._begin(job, policy)
            self._mark(job, run.run_id, "failed", run.error)

    def _record_result(self, job: Job, run: PolicyRun, result: RunResult) -> None:
        status = result.summary.status or "finished"
        if job.cancel_event.is_set() and status == "finished":
            status = "cancelled"
            result.summary.status = "cancelled"
            result.summary.status_reason = result.summary.status_reason or "cancelled from the dashboard"
        run.result = result
        run.wall_end_s = time.monotonic()
        self._finish(job, run.run_id, result)
        run.status = status if status in ("finished", "truncated", "cancelled") else "finished"

    def _load_workload(self, job: Job) -> object | None:
        """Build the workload once for all the job's policies (same trajectories for each design)."""
        from dualpath_twin import api

        loader = getattr(api, "load_workload", None)
        if loader is None:
            return None
        try:
            return loader(job.scenario)
        except Exception:  # noqa: BLE001 - simulate() reports the same problem per policy
            return None

    def _run_one(self, job: Job, run: PolicyRun, workload: object | None = None) -> None:
        from dualpath_twin import api  # looked up per run so tests can substitute the core

        def on_progress(p: Progress) -> None:
            run.record_progress(p)

        run.status = "running"
        run.wall_start_s = time.monotonic()
        run.run_id = self._begin(job, run.policy)
        try:
            extra = {"workload": workload} if workload is not None else {}
            result = api.simulate(job.scenario, run.policy, progress=on_progress, cancel=job.cancel_event, **extra)
        except Exception as err:  # noqa: BLE001 - shown to the user, the thread must not die silently
            run.status = "failed"
            run.error = f"{type(err).__name__}: {err}"
            run.wall_end_s = time.monotonic()
            traceback.print_exc()
            self._mark(job, run.run_id, "failed", run.error)
            return
        self._record_result(job, run, result)

    def _begin(self, job: Job, policy: str) -> str | None:
        if not backend.store_available():
            job.store_error = "results are not saved: the store is not available yet"
            return None
        sc = job.scenario
        try:
            return str(backend.store().begin_run(
                backend.apply_overrides(sc, {"policy.name": policy}).to_toml(), sc.name, policy, sc.run.seed
            ))
        except Exception as err:  # noqa: BLE001
            job.store_error = f"could not record the run in {backend.db_path()}: {err}"
            traceback.print_exc()
            return None

    def _finish(self, job: Job, run_id: str | None, result: RunResult) -> None:
        if run_id is None:
            return
        try:
            backend.store().finish_run(run_id, result)
        except Exception as err:  # noqa: BLE001
            job.store_error = f"could not save run {run_id} to {backend.db_path()}: {err}"
            traceback.print_exc()

    def _mark(self, job: Job, run_id: str | None, status: str, error: str) -> None:
        if run_id is None:
            return
        try:
            backend.store().mark_run(run_id, status, error)
        except Exception as err:  # noqa: BLE001
            job.store_error = f"could not mark run {run_id} as {status}: {err}"


def _context() -> mp.context.BaseContext:
    """The forkserver context, preloading the simulator (fork from a threaded server is unsafe)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _noop() -> None:
    """Child that does nothing (starts the forkserver)."""


def _child_main(scenario_toml: str, policies: list[str], reports: object, cancel: object,
                budget_bytes: float | None = None) -> None:
    """Child process: simulate each policy, forwarding throttled, downsampled progress and the results.

    A guard.MemoryWatchdog holds the process to ``budget_bytes`` (default: the guard's memory
    limit): a run over it stops and is reported as failed with the reason; past 1.25x (e.g. while
    building a huge workload, which cannot be cancelled) every pending policy is reported failed
    and the process exits.
    """
    from dualpath_twin import api, guard
    from dualpath_twin.scenario import from_toml
    from dualpath_twin.store import downsample_frame

    sc = from_toml(scenario_toml, check_catalog=False)
    budget = budget_bytes if budget_bytes is not None else guard.memory_budget_bytes()

    def die(reason: str, todo: list[str]) -> None:
        """Over 1.25x the memory budget in uncancellable work: report every pending policy failed and exit."""
        for p in todo:
            reports.put(("error", p, reason))
        time.sleep(0.5)  # let the queue's feeder thread flush
        os._exit(3)

    loader = getattr(api, "load_workload", None)
    try:
        with guard.MemoryWatchdog(budget, on_hard=lambda r: die(r, list(policies))):
            extra = {"workload": loader(sc)} if loader is not None else {}
    except Exception:  # noqa: BLE001 - simulate() reports the same problem per policy
        extra = {}
    for i, policy in enumerate(policies):
        if cancel.is_set():
            reports.put(("skipped", policy, "cancelled before it started"))
            continue
        reports.put(("start", policy, None))
        last = [0.0]

        def on_progress(p: Progress, policy: str = policy, last: list[float] = last) -> None:
            now = time.monotonic()
            if now - last[0] < CHILD_PROGRESS_EVERY_S:
                return
            last[0] = now
            ts = p.timeseries
            if ts is not None and ts.height and ts["t_s"].n_unique() > CHILD_MAX_POINTS:
                ts = downsample_frame(ts, CHILD_MAX_POINTS)
            reports.put(("progress", policy, Progress(p.sim_time_s, p.rounds_done, p.rounds_total, p.wall_s, ts, p.slo_attainment)))

        try:
            with guard.MemoryWatchdog(budget, on_hard=lambda r, todo=list(policies[i:]): die(r, todo)) as dog:
                result = api.simulate(sc, policy, progress=on_progress, cancel=guard.EitherEvent(cancel, dog.event), **extra)
        except Exception as err:  # noqa: BLE001 - reported to the dashboard
            traceback.print_exc()
            reports.put(("error", policy, f"{type(err).__name__}: {err}"))
            continue
        if dog.exceeded:  # stopped by the memory budget: a failure, not a user's cancel
            reports.put(("error", policy, dog.exceeded))
            continue
        reports.put(("result", policy, result))


REGISTRY = JobRegistry()
