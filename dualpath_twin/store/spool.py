"""The spool: run artefacts written to plain files before they reach DuckDB.

Layout of ``<db>.spool/`` (see docs/store.md):

- ``<run_id>.running.json``  marker of a run in progress: pid, host, process start tick and
  the run's identity (scenario, policy, seed, sweep point). Written first.
- ``<run_id>.data/``          ``rounds.parquet`` and ``timeseries.parquet``.
- ``<run_id>.done.json``      the manifest, written last by an atomic rename: its presence is
  the commit point of the artefact. ``kind`` is ``finish`` (with the summary) or ``mark``
  (failed / cancelled with an error).
- ``<search_id>.capacity.json`` a whole capacity search (spec, scenario, per-policy results),
  written in one atomic rename, waiting to be ingested.

Only the process holding the DuckDB write lock ingests and deletes spool entries, so the
DuckDB file lock also serialises spool clean-up across processes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNNING_SUFFIX = ".running.json"
DONE_SUFFIX = ".done.json"
DATA_SUFFIX = ".data"
CAPACITY_SUFFIX = ".capacity.json"


def host_name() -> str:
    """This machine's host name (pids are only meaningful on their own host)."""
    return socket.gethostname()


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux /proc), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """True if ``pid`` runs on this host and is the same process (not a zombie, not reused)."""
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            stat = proc.read_text()
        except OSError:
            return False
        state = stat[stat.rfind(")") + 2 :].split()[0]
        if state in ("Z", "X"):
            return False
        if start_ticks is not None:
            now_ticks = process_start_ticks(pid)
            if now_ticks is not None and now_ticks != start_ticks:
                return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` via a temporary file, fsync and rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """Read a spool JSON file, None if it vanished or is unreadable (half-written files never exist)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Spool:
    """Paths and listings of one spool directory."""

    root: Path

    def ensure(self) -> None:
        """Create the spool directory."""
        self.root.mkdir(parents=True, exist_ok=True)

    def running_path(self, run_id: str) -> Path:
        """Marker of a run in progress."""
        return self.root / f"{run_id}{RUNNING_SUFFIX}"

    def done_path(self, run_id: str) -> Path:
        """Manifest of a finished or marked run."""
        return self.root / f"{run_id}{DONE_SUFFIX}"

    def data_dir(self, run_id: str) -> Path:
        """Folder with the run's Parquet files."""
        return self.root / f"{run_id}{DATA_SUFFIX}"

    def _ids(self, suffix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(suffix)] for p in self.root.iterdir() if p.name.endswith(suffix))

    def running_ids(self) -> list[str]:
        """Run ids with a running marker."""
        return self._ids(RUNNING_SUFFIX)

    def done_ids(self) -> list[str]:
        """Run ids with a manifest waiting to be ingested."""
        return self._ids(DONE_SUFFIX)

    def capacity_path(self, search_id: str) -> Path:
        """A capacity search waiting to be ingested."""
        return self.root / f"{search_id}{CAPACITY_SUFFIX}"

    def capacity_ids(self) -> list[str]:
        """Search ids of capacity searches waiting to be ingested."""
        return self._ids(CAPACITY_SUFFIX)

    def data_ids(self) -> list[str]:
        """Run ids with a data folder."""
        return self._ids(DATA_SUFFIX)

    def has_pending(self) -> bool:
        """True if any manifest or capacity search waits for ingest or any marker belongs to a dead process."""
        if self.done_ids() or self.capacity_ids():
            return True
        me = host_name()
        for rid in self.running_ids():
            m = read_json(self.running_path(rid))
            if m is None:
                continue
            if m.get("host") == me and not pid_alive(int(m.get("pid", 0)), m.get("pid_start")):
                return True
        return False

    def remove(self, run_id: str) -> None:
        """Delete every spool file of a run."""
        for p in (self.done_path(run_id), self.running_path(run_id)):
            p.unlink(missing_ok=True)
        d = self.data_dir(run_id)
        if d.is_dir():
            for f in d.iterdir():
                f.unlink(missing_ok=True)
            try:
                d.rmdir()
            except OSError:
                pass

    def stale_tmp_files(self, older_than_s: float = 3600.0) -> list[Path]:
        """Temporary files left by killed writers."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_s
        return [p for p in self.root.glob(".*.tmp") if p.stat().st_mtime < cutoff]
