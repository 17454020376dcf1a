"""The store's handle and its connections: short-lived, retried with backoff, readers let writers in first.

DuckDB lets one process hold a file read-write and then refuses every other process, so a
``Store`` never keeps a connection open between calls (docs/store.md). ``_housekeep`` runs under a
brief write connection: migrate the schema, ingest the spool (store/ingest.py), fail orphan runs.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import duckdb

from dualpath_twin.store.common import StoreError, StoreLocked, _is_lock_error, _path_lock
from dualpath_twin.store.schema import SCHEMA_VERSION, current_version, migrate
from dualpath_twin.store.spool import Spool, pid_alive


class StoreBase:
    """The base of ``Store``: path, spool and lock of one database; short-lived connections and housekeeping."""

    def __init__(self, path: str | Path, read_only: bool = False, lock_timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s
        self.spool = Spool(self.path.with_name(self.path.stem + ".spool"))
        self._lock = _path_lock(self.path)
        self._closed = False
        self._schema_checked = False
        if self.path.exists() and self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory; give the path of a .duckdb file (e.g. data/twin.duckdb)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not read_only:
            self.spool.ensure()
        try:
            self._housekeep(
                budget_s=lock_timeout_s if not self.path.exists() else min(2.0, lock_timeout_s), full=True
            )
        except StoreLocked:
            if not self.path.exists():
                raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the handle (there is no open connection to close; further calls raise)."""
        self._closed = True

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, read_only={self.read_only})"

    def _check_open(self, write: bool = False) -> None:
        if self._closed:
            raise StoreError("this store was closed; open it again with open_store()")
        if write and self.read_only:
            raise StoreError(
                f"store {self.path} was opened read-only; open it with read_only=False to write runs"
            )

    @contextmanager
    def _connect(self, write: bool, budget_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits with backoff while another process holds the file."""
        budget = self.lock_timeout_s if budget_s is None else budget_s
        with self._lock:
            deadline = time.monotonic() + budget
            delay = 0.01
            last: Exception | None = None
            intent: Path | None = None
            if not write:
                self._yield_to_writers()
            while True:
                try:
                    ro = not write and self.path.exists()
                    con = duckdb.connect(str(self.path), read_only=ro)
                    break
                except (duckdb.IOException, duckdb.ConnectionException) as err:
                    if not _is_lock_error(err):
                        raise StoreError(f"cannot open the result database {self.path}: {err}") from None
                    last = err
                    if write and intent is None and self.spool.root.is_dir():
                        intent = self.spool.root / f".want-write.{os.getpid()}.{threading.get_ident()}"
                        intent.touch()
                    if time.monotonic() + delay > deadline:
                        if intent is not None:
                            intent.unlink(missing_ok=True)
                        raise StoreLocked(
                            f"the result database {self.path} stayed locked by another process for {budget:.1f} s"
                            f" ({last}); close the other program or retry; written runs wait safely in"
                            f" {self.spool.root}"
                        ) from None
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.2 if write else 0.5)
            if intent is not None:
                intent.unlink(missing_ok=True)
            try:
                yield con
            finally:
                con.close()

    def _yield_to_writers(self, max_wait_s: float = 1.0) -> None:
        """Let a waiting writer in first: readers pause (bounded) while a fresh write-intent file exists."""
        if not self.spool.root.is_dir():
            return
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            now = time.time()
            waiting = False
            for p in self.spool.root.glob(".want-write.*"):
                try:
                    fresh = now - p.stat().st_mtime < 5.0
                except OSError:
                    continue
                if fresh and pid_alive(int(p.name.split(".")[2])):
                    waiting = True
                    break
                if not fresh:
                    p.unlink(missing_ok=True)
            if not waiting:
                return
            time.sleep(0.02)

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Connection for a query: ingest pending spool entries first if the lock is free."""
        self._check_open()
        if self.spool.has_pending():
            try:
                self._housekeep(budget_s=0.5)
            except StoreLocked:
                pass
        with self._connect(write=False) as con:
            if not self._schema_checked:
                v = current_version(con)
                if v < SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {v}, this code needs {SCHEMA_VERSION}; it is migrated"
                        " automatically when a process opens it while no other process holds it: close other"
                        " programs using it and open it again"
                    )
                if v > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {v}, newer than this code's {SCHEMA_VERSION};"
                        " upgrade dualpath-twin"
                    )
                self._schema_checked = True
            yield con

    def _housekeep(self, budget_s: float, full: bool = False) -> list[tuple[str, str]]:
        """Under the write lock: migrate, ingest manifests, fail runs whose writer died."""
        with self._connect(write=True, budget_s=budget_s) as con:
            v = current_version(con)
            if v > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {v}, newer than this code's {SCHEMA_VERSION}; upgrade dualpath-twin"
                )
            migrate(con)
            rejected = self._ingest_all(con)
            if full:
                self._fail_orphans(con)
        return rejected
