"""The workload layer's one error type: bad traces and bad dataset parameters."""

from __future__ import annotations


class WorkloadError(ValueError):
    """A trace or dataset could not be turned into a Workload; the message names file, line and fix."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
