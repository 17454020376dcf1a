"""What every part of the store shares: run statuses, errors, ids, timestamps and the test pause hook."""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUN_STATUSES = ("running", "finished", "truncated", "cancelled", "failed")
FINAL_RESULT_STATUSES = ("finished", "truncated", "cancelled")
DONE_POINT_STATUSES = ("finished", "truncated")
PAUSE_ENV = "DUALPATH_TWIN_STORE_PAUSE_AT"  # test hook: stop at a named point so a test can kill -9 there

_PATH_LOCKS: dict[str, threading.RLock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


class StoreError(RuntimeError):
    """A store operation failed; the message says what and how to fix it."""


class StoreLocked(StoreError):
    """Another process held the database lock for longer than the wait budget."""


def default_db_path() -> Path:
    """Env DUALPATH_TWIN_DB if set, else the repo's data/twin.duckdb (or ./data/twin.duckdb outside a checkout)."""
    env = os.environ.get("DUALPATH_TWIN_DB")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "app.py").is_file():
        return repo / "data" / "twin.duckdb"
    return Path.cwd() / "data" / "twin.duckdb"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_run_id(prefix: str = "") -> str:
    """Short id sortable by creation time (UTC): ``YYMMDD-HHMMSS-mmmxxxx`` (ms + 4 random hex)."""
    now = datetime.now(UTC)
    return f"{prefix}{now:%y%m%d-%H%M%S}-{now.microsecond // 1000:03d}{secrets.token_hex(2)}"


def point_key(point: dict[str, Any] | None) -> str:
    """Canonical key of a sweep point (sorted-key JSON) used by save_run and find_finished_point."""
    return json.dumps(point or {}, sort_keys=True, separators=(",", ":"), default=str)


def _path_lock(path: Path) -> threading.RLock:
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(str(path), threading.RLock())


def _is_lock_error(err: Exception) -> bool:
    msg = str(err).lower()
    return "lock" in msg and ("conflicting" in msg or "could not set" in msg)


def _pause(point: str) -> None:
    """Test hook: block forever at ``point`` when the env var names it (so a test can kill -9 here)."""
    if os.environ.get(PAUSE_ENV) == point:
        sys.stderr.write(f"PAUSED {point}\n")
        sys.stderr.flush()
        time.sleep(3600)


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
