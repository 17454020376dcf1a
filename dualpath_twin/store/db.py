"""The DuckDB result store: spool-first writes, short-lived connections, queries to Polars.

Design (docs/store.md): DuckDB lets one process hold a file read-write and then refuses every
other process, even read-only ones. So a ``Store`` never keeps a connection open between
calls. Writers first write each run as files into the spool (``<db>.spool/``: Parquet plus a
JSON manifest renamed into place last), then ingest pending spool entries under a brief
write connection, retrying with backoff while another process holds the lock. Readers open a
read-only connection per query and, when they can get the write lock, ingest what is pending
and mark runs whose writer died as failed. A run's rows and its final status land in one
transaction, so nobody ever sees half a run as finished.

``Store`` is assembled from one part per concern, each in its own module:

- ``store/connection.py`` ``StoreBase``: the handle, connections, lock waits, housekeeping;
- ``store/ingest.py`` ``IngestMixin``: spool entries into the database, one transaction each;
- ``store/writes.py`` ``WritesMixin``: save/begin/finish/mark runs, sweeps, gc;
- ``store/queries.py`` ``QueriesMixin``: run ids, lists, summaries, rounds, time series, sweeps;
- ``store/capacity.py`` ``CapacityMixin``: the planning tables (capacity searches);
- ``store/schema.py``: tables and migrations; ``store/spool.py``: the spool's files;
- ``store/common.py``: statuses, errors, ids and timestamps they all use.

Every name this module used to define is still importable from here.
"""

from __future__ import annotations

from dualpath_twin.store.capacity import CapacityMixin
from dualpath_twin.store.common import (  # noqa: F401 - re-exported: store.db.X keeps working
    _PATH_LOCKS,
    _PATH_LOCKS_GUARD,
    DONE_POINT_STATUSES,
    FINAL_RESULT_STATUSES,
    PAUSE_ENV,
    RUN_STATUSES,
    StoreError,
    StoreLocked,
    _is_lock_error,
    _path_lock,
    _pause,
    _ts,
    _utcnow,
    default_db_path,
    new_run_id,
    point_key,
)
from dualpath_twin.store.connection import StoreBase
from dualpath_twin.store.ingest import IngestMixin
from dualpath_twin.store.queries import _LIST_COLUMNS, QueriesMixin, _downsample, downsample_frame  # noqa: F401
from dualpath_twin.store.writes import WritesMixin


class Store(QueriesMixin, CapacityMixin, WritesMixin, IngestMixin, StoreBase):
    """Handle on one result database; holds no DuckDB connection between calls (safe to keep open)."""
