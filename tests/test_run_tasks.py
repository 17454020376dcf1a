"""run_tasks: the planning tools' way to run a batch of tasks, in order, resubmitting work lost with a worker."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from dualpath_twin.planning.executors import run_tasks
from dualpath_twin.planning.types import Outcome


class _Task:
    def __init__(self, key: str) -> None:
        self.key = key


class FlakyExecutor(ThreadPoolExecutor):
    """Loses every task's first attempt (as a killed worker does), runs the retry."""

    def __init__(self, lose: int = 1) -> None:
        super().__init__(max_workers=2)
        self.lose = lose
        self.tries: dict[str, int] = {}

    def submit(self, fn, /, *args, **kwargs) -> Future:  # type: ignore[override]
        key = args[0].key
        self.tries[key] = self.tries.get(key, 0) + 1
        if self.tries[key] <= self.lose:
            f: Future = Future()
            f.set_exception(RuntimeError(f"worker lost running {key}"))
            return f
        return super().submit(fn, *args, **kwargs)


def _ok(t: _Task) -> Outcome:
    return Outcome(key=t.key)


def test_lost_tasks_are_resubmitted_and_results_keep_task_order() -> None:
    tasks = [_Task(f"t{i}") for i in range(5)]
    with FlakyExecutor(lose=1) as ex:
        outs = run_tasks(ex, _ok, tasks)
    assert [o.key for o in outs] == [t.key for t in tasks] and all(not o.error for o in outs)
    assert all(n == 2 for n in ex.tries.values())  # each lost once, run once more


def test_a_task_lost_more_often_than_the_retries_is_an_error_outcome_not_an_exception() -> None:
    tasks = [_Task("a"), _Task("b")]
    with FlakyExecutor(lose=5) as ex:
        outs = run_tasks(ex, _ok, tasks, retries=2)
    assert [o.key for o in outs] == ["a", "b"]
    assert all("worker lost running" in (o.error or "") for o in outs)
    assert ex.tries == {"a": 3, "b": 3}
