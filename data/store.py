"""The store: periods, dataset versions, scenarios, published results and the audit log.

Every write is one transaction (all or nothing) and writes its audit row in the same
transaction. Published results are frozen rows plus the exact DOMAIN 10 document, and every
manager's statement (pay lines, customers credited, KPIs) frozen beside them; they are only ever
read back, never recomputed, so later changes to the calc code, the scenario or the dataset
cannot change what was paid out. Only a statement's account detail is recomputed (too large to
freeze at a bank's scale); :meth:`Store.verify` proves everything reproduces.

Volume goes through one columnar bulk path (:func:`_bulk_insert`): rows are built column by
column as Arrow tables, then, inside the one write transaction, copied on SQLite from a staging
file the ADBC driver wrote from Arrow (large tables; small ones are bound with ``executemany``),
or streamed as CSV through ``COPY ... FROM STDIN`` on PostgreSQL. A stored
dataset also keeps a Parquet snapshot of each typed frame (``ds_snapshots``), which is what
:meth:`Store.load_frames` reads; the rows are reconciled against the frames in linear time
(counts per table, balances per branch and line with the accounts aggregated per customer first),
before the upload commits and again whenever a publication is verified (:meth:`Store.check_dataset`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import Float, Integer, LargeBinary, Text, and_, bindparam, cast, func, literal, select
from sqlalchemy.engine import Engine

from calc.columns import STATEMENT_CUSTOMER, STATEMENT_KPI, STATEMENT_LINE, STATEMENT_SUMMARY
from calc.output import document_bytes, document_sha256, write_document
from calc.pipeline import run
from calc.scenario import PAY_LINES, Scenario
from data.db import (ROOT, ROW_SECURITY_TABLES, SNAPSHOT_PART_BYTES, STAGE_FILES, T, get_engine, migrate, read_tx,
                     run_write)
from data.readers import _text_bytes
from data.schema import SHEETS, sheet_by_key

__all__ = ["Store", "ReconciliationError", "DatasetInfo", "code_version", "PERIOD_RE"]

PERIOD_RE = r"^\d{4}(Q[1-4]|M(0[1-9]|1[0-2])|H[12]|Y)$"


class ReconciliationError(ValueError):
    """What was stored differs from what was read; the upload was rolled back."""


@dataclass(frozen=True)
class DatasetInfo:
    """One stored dataset version."""

    id: int
    period: str
    version: int
    file_name: str
    sha256: str
    uploader: str
    created_at: dt.datetime
    row_counts: dict
    rejected_rows: int
    created: bool = True         # False when the upload was a byte-identical no-op

    @property
    def label(self) -> str:
        """``2026Q3 v2 (file.xlsx)``."""
        return f"{self.period} v{self.version} ({self.file_name})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def code_version() -> str:
    """SHA-256 of the calculation code (``calc/*.py``), stored with every publication."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "calc").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


_ARROW = {"id": pa.large_string(), "text": pa.large_string(), "enum": pa.large_string(), "bool": pa.bool_(),
          "date": pa.timestamp("ns"), "money": pa.float64(), "rate": pa.float64(), "number": pa.float64()}


def _typed_arrow(frame: pd.DataFrame, key: str) -> pa.Table:
    """A sheet's typed frame as Arrow: ``_row`` then the schema's columns (no ``_error``).

    Ids, text and enumerated values become strings, missing values nulls (NaN included).
    """
    sheet = sheet_by_key(key)
    arrays = [pa.array(np.asarray(frame["_row"], dtype=np.int64), pa.int64())]
    names = ["_row"]
    for c in sheet.columns:
        col = frame[c.key] if c.key in frame else pd.Series([None] * len(frame), dtype=object)
        arrays.append(pa.array(col, type=_ARROW[c.kind], from_pandas=True))
        names.append(c.key)
    return pa.Table.from_arrays(arrays, names=names)


def _rows(typed: pa.Table, key: str) -> pa.Table:
    """The rows of sheet ``key`` as stored, without their ``dataset_id``: ``excel_row`` then its
    columns (dates as dates).

    ``typed`` is the sheet's :func:`_typed_arrow` table; built over whole columns (no Python per
    row). :func:`_bulk_insert` writes the result with ``fixed={"dataset_id": ...}``, so that it
    can be staged before the upload's transaction knows the dataset's id.
    """
    arrays = [typed.column("_row")]
    names = ["excel_row"]
    for c in sheet_by_key(key).columns:
        col = typed.column(c.key)
        arrays.append(col.cast(pa.date32()) if pa.types.is_timestamp(col.type) else col)
        names.append(c.key)
    return pa.Table.from_arrays(arrays, names=names)


def _python_column(col: pa.ChunkedArray | pa.Array) -> list:
    """One Arrow column as Python values for the DBAPI: ``None`` for nulls, dates as ISO text."""
    if pa.types.is_date(col.type):          # SQLAlchemy's SQLite Date stores 'YYYY-MM-DD'
        values = np.datetime_as_string(col.to_numpy(zero_copy_only=False).astype("datetime64[D]"), unit="D")
        out = values.astype(object)
    elif pa.types.is_floating(col.type):
        values = col.to_numpy(zero_copy_only=False)     # nulls -> NaN
        out = values.astype(object)
        out[np.isnan(values)] = None
        return out.tolist()
    elif col.null_count == 0 and (pa.types.is_integer(col.type) or pa.types.is_boolean(col.type)):
        return col.to_numpy(zero_copy_only=False).tolist()
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.to_numpy(zero_copy_only=False).tolist()     # nulls -> None
    else:
        return col.to_pylist()
    if col.null_count:
        out[np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = None
    return out.tolist()


_BATCH = 100_000


def _bulk_insert(conn, table, data: pa.Table, fixed: dict | None = None, staged: str | None = None) -> int:
    """Write ``data`` (columns named as ``table``'s) into ``table`` inside the connection's transaction.

    ``fixed`` gives columns with one value for every row (a publication's id), written before
    ``data``'s; ``staged`` is a file :class:`Prestaged` wrote ``data`` into before the
    transaction (SQLite), which is then only attached and copied.

    SQLite: a table of ``_STAGE_ROWS`` rows or more goes through a staging file
    (:func:`_staged_insert`, ~2.5 us a 15-column row, in C); a smaller one, or one this path
    cannot stage, through the raw DBAPI ``executemany`` on column-built tuples (~3.6 us a
    15-column row: the binding and the B-tree append; multi-row VALUES, JSON through
    ``json_each`` and a converting thread were measured no faster); :func:`_write_cache` is held
    while either runs. PostgreSQL:
    ``COPY ... FROM STDIN`` fed with CSV written by Arrow; a table under row-level security
    (``COPY FROM`` is refused there) is copied into a temporary table and inserted from it.

    Returns
    -------
    int
        Rows written.
    """
    n = data.num_rows
    if not n:
        return 0
    if staged and conn.dialect.name == "sqlite":
        with _write_cache(conn, big=n > 10_000):
            if (alias := _stage_alias(conn, staged, delete=False)) is not None:
                conn.connection.driver_connection.execute(f"ATTACH DATABASE ? AS {alias}", (staged,))
                _copy_stage(conn, table, alias, data.column_names, fixed)
                return n
    for i, (name, value) in enumerate((fixed or {}).items()):
        data = data.add_column(i, name, pa.array(np.full(n, value, dtype=np.int64)))
    names = data.column_names
    quoted = ", ".join(f'"{c}"' for c in names)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        target = table.name
        if table.name in _RLS_TABLES:
            target = f"_bulk_{table.name}"
            conn.exec_driver_sql(f'CREATE TEMPORARY TABLE "{target}" (LIKE "{table.name}") ON COMMIT DROP')
        with raw.cursor() as cur:
            with cur.copy(f'COPY "{target}" ({quoted}) FROM STDIN (FORMAT csv)') as copy:
                for batch in data.to_batches(max_chunksize=_BATCH):
                    buf = io.BytesIO()
                    pa_csv.write_csv(batch, buf, pa_csv.WriteOptions(include_header=False))
                    copy.write(buf.getbuffer())
        if target != table.name:
            conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{target}"')
            conn.exec_driver_sql(f'DROP TABLE "{target}"')
        return n
    sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
    with _write_cache(conn, big=n > 10_000):
        if n >= _STAGE_ROWS and _staged_insert(conn, table, data):
            return n
        cur = raw.cursor()
        try:
            for batch in data.to_batches(max_chunksize=_BATCH):
                cur.executemany(sql, zip(*[_python_column(c) for c in batch.columns]))
        finally:
            cur.close()
    return n


_STAGE_ROWS = 50_000          # SQLite: a table of this many rows or more is staged (below: executemany)
_STAGE_ALIAS = "jixiao_stage"
_MAX_ATTACHED = 8             # SQLite attaches at most 10 databases; main and temp count too


def _stage_columns(data: pa.Table) -> pa.Table | None:
    """``data`` with the values the sqlite3 module would bind (booleans 0/1, dates as ISO text,
    NaN as NULL), or None when a column has a type this path does not write."""
    arrays = []
    for col in data.columns:
        t = col.type
        if pa.types.is_date32(t):
            col = pc.strftime(col, format="%Y-%m-%d")
        elif pa.types.is_boolean(t):
            col = col.cast(pa.int64())
        elif pa.types.is_floating(t):
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col.cast(pa.float64()))
        elif pa.types.is_integer(t):
            col = col.cast(pa.int64())
        elif not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            return None
        arrays.append(col)
    return pa.Table.from_arrays(arrays, names=data.column_names)


def _stage_path(db: str | None) -> str | None:
    """A new staging file's path beside the SQLite store file ``db`` (None: no file store)."""
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    import uuid

    return f"{db}.stage-{uuid.uuid4().hex}.db"


def _write_stage(path: str, data: pa.Table) -> bool:
    """Write ``data`` as the table ``rows`` of a new SQLite file at ``path``, in C (the ADBC
    SQLite driver binds the Arrow columns; the GIL is released while it writes).

    Returns
    -------
    bool
        False when this path does not apply (no ADBC driver, a column type it does not write);
        nothing is written then.
    """
    try:
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:
        return False
    staged = _stage_columns(data)
    if staged is None:
        return False
    with adbc.connect(path) as stage:
        with stage.cursor() as cur:
            cur.adbc_ingest("rows", staged, mode="create")
        stage.commit()
    return True


def _unlink_stage(path: str) -> None:
    for p in (path, path + "-journal"):
        try:
            os.unlink(p)
        except OSError:
            pass


def _stage_alias(conn, path: str, delete: bool) -> str | None:
    """Register the staging file ``path`` on the connection and return the alias to attach it
    as (None: too many files attached already). It is detached when the connection goes back
    to the pool, and deleted then when ``delete`` (``data.db``)."""
    raw = conn.connection.driver_connection
    if len(raw.execute("PRAGMA database_list").fetchall()) >= _MAX_ATTACHED:
        return None
    stages = conn.connection.info.setdefault(STAGE_FILES, [])
    alias = f"{_STAGE_ALIAS}{len(stages)}"
    stages.append((alias, path if delete else None))
    return alias


def _copy_stage(conn, table, alias: str, columns: list[str], fixed: dict | None = None) -> None:
    """``INSERT ... SELECT`` the staged rows into ``table``, with the ``fixed`` columns' values
    bound once for every row."""
    fixed = fixed or {}
    quoted = ", ".join(f'"{c}"' for c in [*fixed, *columns])
    picked = ", ".join(["?"] * len(fixed) + [f'"{c}"' for c in columns])
    conn.connection.driver_connection.execute(
        f'INSERT INTO main."{table.name}" ({quoted}) SELECT {picked} FROM {alias}."rows"', tuple(fixed.values()))


def _staged_insert(conn, table, data: pa.Table) -> bool:
    """SQLite: write ``data`` into ``table`` through a staging database file, in C throughout.

    The rows are written by the ADBC SQLite driver (:func:`_write_stage`) into a new file beside
    the store, which the store's connection attaches and copies from with one
    ``INSERT ... SELECT`` inside its own transaction: the copy commits or rolls back with
    everything else, so all or nothing holds as on the ``executemany`` path. The staging file
    is detached and deleted when the connection goes back to the pool (``data.db``).
    1M accounts: ~2.5 s instead of ~5.2 s.

    Returns
    -------
    bool
        False when this path does not apply (no ADBC driver, an in-memory store, a column type
        it does not write, too many attached files): the caller binds the rows itself.
    """
    path = _stage_path(conn.engine.url.database)
    if path is None or (alias := _stage_alias(conn, path, delete=True)) is None:
        return False
    if not _write_stage(path, data):
        return False
    conn.connection.driver_connection.execute(f"ATTACH DATABASE ? AS {alias}", (path,))
    _copy_stage(conn, table, alias, data.column_names)
    return True


class Prestaged:
    """Large tables written to staging files before a write transaction opens (SQLite), so
    that the transaction only copies them (:func:`_bulk_insert` with ``staged=``).

    Writing them can then overlap other work (the ADBC driver writes without the GIL), and the
    store's write lock is held for the copy only. The caller deletes the files with
    :meth:`close` when the transaction ended, whatever happened (a transaction retried after a
    busy store attaches them again).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The store; on anything but a SQLite file store nothing is staged.
    """

    def __init__(self, engine):
        self._db = engine.url.database if engine.dialect.name == "sqlite" else None
        self._paths: dict[str, str] = {}

    def stage(self, key: str, data: pa.Table) -> None:
        """Write ``data`` into a staging file under ``key`` when it has ``_STAGE_ROWS`` rows or more."""
        if data.num_rows < _STAGE_ROWS or (path := _stage_path(self._db)) is None:
            return
        self._paths[key] = path                   # registered first: deleted even if the write fails
        if not _write_stage(path, data):
            del self._paths[key]
            _unlink_stage(path)

    def get(self, key: str) -> str | None:
        """The staging file written under ``key`` (None: not staged)."""
        return self._paths.get(key)

    def close(self) -> None:
        """Delete the staging files."""
        for path in self._paths.values():
            _unlink_stage(path)
        self._paths.clear()


_WRITE_CACHE_KIB = 262_144


@contextmanager
def _write_cache(conn, big: bool = True):
    """On SQLite, a 256 MiB page cache for the rest of a bulk write transaction (no-op elsewhere).

    The default 2 MB cache spills a large transaction's dirty pages to the WAL while it is
    written and then reads them back from there for the reconciliation; shrinking the cache
    again inside the transaction would force that spill too, so the outermost user restores it
    (:meth:`Store.save_dataset` holds it around its whole write).
    """
    if conn.dialect.name != "sqlite" or not big:
        yield
        return
    raw = conn.connection.driver_connection
    cache = raw.execute("PRAGMA cache_size").fetchone()[0]
    if cache < 0 and -cache >= _WRITE_CACHE_KIB:
        yield
        return
    raw.execute(f"PRAGMA cache_size=-{_WRITE_CACHE_KIB}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size={int(cache)}")


_RLS_TABLES = ROW_SECURITY_TABLES


def _snapshot(typed: pa.Table) -> tuple[bytes, int]:
    """Parquet bytes of a sheet's :func:`_typed_arrow` table (uncompressed: the fastest to read
    back) and its row count."""
    buf = io.BytesIO()
    pq.write_table(typed, buf, compression="none")
    return buf.getvalue(), typed.num_rows


def _snapshot_rows(ds_id: int, key: str, data: bytes, n: int) -> list[dict]:
    digest = hashlib.sha256(data).hexdigest()
    parts = [data[i:i + SNAPSHOT_PART_BYTES] for i in range(0, len(data), SNAPSHOT_PART_BYTES)] or [b""]
    return [{"dataset_id": ds_id, "sheet": key, "part": i, "rows": n, "sha256": digest, "data": p}
            for i, p in enumerate(parts)]


def _insert_snapshot(conn, parts: list[dict]) -> None:
    """Insert snapshot parts; on PostgreSQL as binary parameters (SQLAlchemy's text-format bytea
    doubles 65 MB into hex and makes the server decode it)."""
    if conn.dialect.name != "postgresql":
        conn.execute(T.snapshots.insert(), parts)
        return
    names = [c.name for c in T.snapshots.columns]
    marks = ", ".join("%b" if n == "data" else "%s" for n in names)
    with conn.connection.driver_connection.cursor() as cur:
        cur.executemany(f'INSERT INTO ds_snapshots ({", ".join(names)}) VALUES ({marks})',
                        [tuple(p[n] for n in names) for p in parts])


def _insert_publication(conn, document, values: dict) -> int:
    """Insert a publication row whose ``result_json`` is ``document``, canonical UTF-8 bytes; return its id.

    The bytes go to the database as a binary parameter and become the text column there
    (SQLite: ``CAST(? AS TEXT)`` in the database's UTF-8; PostgreSQL: ``convert_from(.., 'UTF8')``,
    which also refuses invalid UTF-8), so no Python ``str`` of the document is built (at 5M
    accounts ~225 MB as bytes, and twice that as a str holding any CJK character).

    Parameters
    ----------
    conn : Connection
        Inside the publish transaction.
    document : bytes-like
        The canonical document (:func:`calc.output.write_document`).
    values : dict
        The other columns (all but ``id`` and ``result_json``).

    Returns
    -------
    int
        The new publication's id.
    """
    if conn.dialect.name != "postgresql":
        return conn.execute(T.publications.insert().values(
            **values, result_json=cast(bindparam("document", document, type_=LargeBinary), Text))
        ).inserted_primary_key[0]
    names = list(values)
    marks = ", ".join(["%s"] * len(names))
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(f'INSERT INTO publications ({", ".join(names)}, result_json) '
                    f"VALUES ({marks}, convert_from(%b, 'UTF8')) RETURNING id", [*values.values(), document])
        return cur.fetchone()[0]


def _snapshot_parts(conn, dataset_id: int) -> dict[str, tuple[int, str, list]]:
    """A dataset's snapshots by sheet: ``(rows, sha256, parts)``, the parts' bytes in order
    (PostgreSQL: read binary). Empty when the dataset has no snapshots."""
    s = T.snapshots
    if conn.dialect.name != "postgresql":
        found = conn.execute(select(s.c.sheet, s.c.part, s.c.rows, s.c.sha256, s.c.data)
                             .where(s.c.dataset_id == dataset_id).order_by(s.c.sheet, s.c.part)).all()
    else:
        with conn.connection.driver_connection.cursor(binary=True) as cur:
            cur.execute("SELECT sheet, part, rows, sha256, data FROM ds_snapshots WHERE dataset_id = %s "
                        "ORDER BY sheet, part", (dataset_id,))
            found = cur.fetchall()
    grouped: dict[str, tuple[int, str, list]] = {}
    for key, _part, rows, digest, data in found:
        grouped.setdefault(key, (rows, digest, []))[2].append(data)
    return grouped


def _snapshot_table(parts: list, rows: int, digest: str, columns: list[str] | None = None) -> pa.Table | None:
    """A snapshot's Parquet as Arrow (only ``columns`` when given), or None when its bytes do not
    match their hash or its row count the recorded one."""
    data = bytes(parts[0]) if len(parts) == 1 else b"".join(bytes(p) for p in parts)
    if hashlib.sha256(data).hexdigest() != digest:
        return None
    table = pq.read_table(pa.BufferReader(data), columns=columns)
    if table.num_rows != rows:
        return None
    return table


def _read_snapshot(key: str, parts: list, rows: int, digest: str) -> pd.DataFrame | None:
    """The typed frame of a snapshot, or None when its bytes do not match their hash or row count."""
    table = _snapshot_table(parts, rows, digest)
    if table is None:
        return None
    frame = table.to_pandas()
    del table
    for c in sheet_by_key(key).columns:
        if c.kind in _DTYPES and frame[c.key].dtype != "str":
            frame[c.key] = frame[c.key].astype("str")
    frame["_error"] = False
    return frame


def _empty_frame() -> pd.DataFrame:
    """A sheet with no rows (an optional sheet that was not uploaded)."""
    return pd.DataFrame({"_row": pd.Series([], dtype="int64")})


def _quarantine_rows(q: pd.DataFrame, dataset_id: int) -> pa.Table:
    """Rejected rows as stored in ``ds_quarantine`` (built over whole columns)."""
    n = len(q)

    def text(col) -> pa.Array:
        return pa.array(q[col].astype(object).map(str).to_numpy(dtype=object), pa.large_string())

    return pa.Table.from_arrays(
        [pa.array(np.full(n, dataset_id, dtype=np.int64)), pa.array(np.arange(n, dtype=np.int64)), text("sheet"),
         pa.array(np.asarray(q["row"], dtype=np.int64)), text("reason"), text("values")],
        names=["dataset_id", "seq", "sheet", "excel_row", "reason", "row_values"])


def _pub_rows(table, frame: pd.DataFrame, publication_id: int | None) -> pa.Table:
    """A result frame as the rows of a frozen publication table (its columns, in table order;
    without ``publication_id`` when it is None: the rows as hashed and staged before publishing).

    A NaN in a float column becomes a null, so that both databases store NULL (SQLite would
    anyway; PostgreSQL's COPY would otherwise read the CSV's ``nan`` as a float NaN), and
    :func:`_pub_frame` reads it back as NaN.
    """
    arrays, names = [], []
    for c in table.columns:
        if c.name == "publication_id":
            if publication_id is None:
                continue
            arr = pa.array(np.full(len(frame), publication_id, dtype=np.int64))
        elif isinstance(c.type, Float):          # NaN is stored as NULL on both databases
            values = np.asarray(frame[c.name], dtype=np.float64)
            missing = np.isnan(values)
            arr = pa.array(values, mask=missing) if missing.any() else pa.array(values)
        elif isinstance(c.type, Integer):
            arr = pa.array(np.asarray(frame[c.name], dtype=np.int64))
        else:
            arr = pa.array(frame[c.name], pa.large_string(), from_pandas=True)
        arrays.append(arr)
        names.append(c.name)
    return pa.Table.from_arrays(arrays, names=names)


def _pub_frame(frame: pd.DataFrame, table) -> pd.DataFrame:
    """Frozen publication rows as read: the float columns as float64, NULL as NaN."""
    for c in table.columns:
        if isinstance(c.type, Float) and frame[c.name].dtype != np.float64:
            frame[c.name] = frame[c.name].astype(np.float64)
    return frame


# The frozen statement tables, their key columns (besides publication_id) and the frame each one
# is built from (:func:`_statement_frames`).
_STATEMENT_TABLES = {"lines": (T.pub_statement_lines, ("manager_id", "line")),
                     "customers": (T.pub_statement_customers, ("manager_id", "customer_id")),
                     "kpi": (T.pub_statement_kpis, ("manager_id", "kpi"))}
NOT_FROZEN = ("published before statements were frozen: its lines, customers and KPIs are recomputed from "
              "the frozen dataset and scenario with the current calculation code, and may differ from what "
              "was published / 该发布早于工资单冻结功能：条线、客户与指标明细按当前计算代码重新计算，可能与发布时不同")


def _text(values) -> pa.Array:
    """A text column (pandas, numpy or Arrow) as an Arrow large string array (missing: null)."""
    arr = pa.array(values, from_pandas=True) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def _floats(values) -> pa.Array:
    """A float64 column as Arrow, NaN as null (stored as NULL on both databases)."""
    x = np.asarray(values, dtype=np.float64)
    missing = np.isnan(x)
    return pa.array(x, mask=missing) if missing.any() else pa.array(x)


def _statement_frames(result, scenario: Scenario) -> dict[str, pa.Table]:
    """Every manager's statement rows of a result, as frozen at publish (the tables' columns but
    ``publication_id``, in their order).

    Built over whole columns as Arrow (no Python per manager or customer): ``lines`` (manager x
    pay line: the attributed contribution M, the pay-link factor f and the pay f x M, yuan),
    ``customers`` (one row per assignment: the coefficient used and its source, and the
    attributed amounts c x C of each pay line and of the customer's total, yuan), ``kpi`` (the
    scorecard rows). Each row carries its manager's branch (``manager_branch``), the scope a branch
    head reads it by.

    Parameters
    ----------
    result : Result
        Of :func:`calc.pipeline.run`; its managers in the Base's order (``mgr_idx`` positions).
    scenario : Scenario
        The pay-link factors.

    Returns
    -------
    dict of str to pyarrow.Table
        ``lines``, ``customers``, ``kpi``.
    """
    m = result.managers
    n, k = len(m), len(PAY_LINES)
    ids, branch = _text(m["manager_id"]), _text(m["branch"])
    per_line = pa.array(np.repeat(np.arange(n, dtype=np.int64), k))
    contribution = np.column_stack([m[x].to_numpy(dtype=np.float64) for x in PAY_LINES]) if n else np.zeros((0, k))
    factor = np.array([float(scenario.pay_factor[x]) for x in PAY_LINES], dtype=np.float64)
    lines = {"manager_id": ids.take(per_line), "line": _text(np.tile(np.array(PAY_LINES, dtype=object), n)),
             "manager_branch": branch.take(per_line), "contribution": _floats(contribution.ravel()),
             "factor": _floats(np.tile(factor, n)), "pay": _floats((factor * contribution).ravel())}
    asg, cust = result.assignments, result.customers
    ci = pa.array(asg["cust_idx"].to_numpy(dtype=np.int64))
    cix = asg["cust_idx"].to_numpy(dtype=np.int64)
    coef = asg["coefficient_used"].to_numpy(dtype=np.float64)
    customers = {"manager_id": _text(asg["manager_id"]), "customer_id": _text(asg["customer_id"]),
                 "manager_branch": branch.take(pa.array(asg["mgr_idx"].to_numpy(dtype=np.int64))),
                 "name": _text(cust["name"]).take(ci), "branch": _text(cust["branch"]).take(ci),
                 "role": _text(asg["role"]), "coefficient_used": _floats(coef),
                 "coefficient_source": _text(asg["coefficient_source"])}
    for x in PAY_LINES:
        customers[x] = _floats(coef * cust[x].to_numpy(dtype=np.float64)[cix])
    customers["attributed"] = _floats(coef * cust["total"].to_numpy(dtype=np.float64)[cix])
    kpi = result.kpi
    where = pd.Index(m["manager_id"]).get_indexer(kpi["manager_id"])
    kpis = {"manager_id": _text(kpi["manager_id"]), "kpi": _text(kpi["kpi"]),
            "manager_branch": branch.take(pa.array(where, pa.int64()))}
    for c in STATEMENT_KPI[1:]:
        kpis[c] = _floats(kpi[c]) if isinstance(_STATEMENT_TABLES["kpi"][0].c[c].type, Float) else _text(kpi[c])
    out = {}
    for kind, data in (("lines", lines), ("customers", customers), ("kpi", kpis)):
        names = [c.name for c in _STATEMENT_TABLES[kind][0].columns if c.name != "publication_id"]
        out[kind] = pa.Table.from_arrays([data[c] for c in names], names=names)
    return out


def _check_statements_add_up(result, scenario: Scenario, lines: pa.Table) -> None:
    """Refuse to publish statements that do not explain the pay: every manager's line pays
    (f x M, from the scenario's factors) must add up to the result's ``pay_raw``, and ``pay`` must be
    ``pay_raw`` floored at 0 when the scenario floors (within 1e-6 yuan or 1e-12 relative).

    Raises
    ------
    ValueError
        Naming the first manager whose pay the lines do not explain.
    """
    m = result.managers
    by_line = lines.column("pay").to_numpy().astype(np.float64).reshape(len(m), len(PAY_LINES))
    summed = 0.0
    for j in range(len(PAY_LINES)):
        summed = summed + by_line[:, j]
    pay_raw = m["pay_raw"].to_numpy(dtype=np.float64)
    pay = m["pay"].to_numpy(dtype=np.float64)
    floored = np.maximum(pay_raw, 0.0) if scenario.floor_at_zero else pay_raw

    def off(x, y):
        return ~((x == y) | (np.abs(x - y) <= np.maximum(1e-6, 1e-12 * np.maximum(np.abs(x), np.abs(y)))))

    for bad, what in ((off(summed, pay_raw), "the line pays add up to {a!r}, the pay before floor is {b!r}"),
                      (off(floored, pay), "the pay is {b!r}, the pay before floor floored is {a!r}")):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            a, b = (summed[i], pay_raw[i]) if what.startswith("the line") else (floored[i], pay[i])
            raise ValueError(f"the statements do not explain the pay of {int(bad.sum())} manager(s), e.g. "
                             f"{m['manager_id'].iloc[i]}: {what.format(a=float(a), b=float(b))}; "
                             "nothing was published (a calculation error)")


def _statement_of(tables: dict[str, pa.Table], manager_id: str) -> dict[str, pd.DataFrame]:
    """One manager's part of :func:`_statement_frames`, as frames."""
    return {k: t.filter(pc.equal(t.column("manager_id"), manager_id)).to_pandas() for k, t in tables.items()}


def _typed_statement(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Statement rows as read or built: float columns as float64 (NULL as NaN), text as text."""
    return _typed_rows(_STATEMENT_TABLES[kind][0], frame)


def _typed_rows(table, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a frozen table as read or built: its float columns as float64 (NULL as NaN), the
    others as Python objects (missing as None), only the table's columns."""
    out = {}
    for c in table.columns:
        if c.name not in frame:
            continue
        v = frame[c.name]
        if isinstance(c.type, Float):
            out[c.name] = pd.to_numeric(v, errors="coerce").astype(np.float64)
        else:
            out[c.name] = v.astype(object).where(v.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def _arrow_type(column) -> pa.DataType:
    """The Arrow type a frozen column is compared as: float64, int64 or text."""
    if isinstance(column.type, Float):
        return pa.float64()
    if isinstance(column.type, Integer):
        return pa.int64()
    return pa.large_string()


def _read_frozen(conn, table, publication_id: int) -> pa.Table:
    """A publication's rows of a frozen table (all columns but ``publication_id``), read column-wise.

    PostgreSQL: ``COPY (SELECT ...) TO STDOUT`` as CSV parsed by Arrow (NULL unquoted and empty,
    an empty text quoted; row-level security applies to the query as to any read). SQLite:
    copied into a file the ADBC driver reads (:func:`_exported_rows`), else the sqlite3 module's
    tuples turned into typed Arrow columns; the rows are found as one range of row ids (one
    publication's rows are written by one insert, so they lie together), not one primary-key
    lookup per row. In no particular order: every reader sorts them by their key.
    """
    cols = [c for c in table.columns if c.name != "publication_id"]
    schema = pa.schema([(c.name, _arrow_type(c)) for c in cols])
    quoted = ", ".join(f'"{c.name}"' for c in cols)
    sql = f'SELECT {quoted} FROM "{table.name}" WHERE publication_id = {int(publication_id)}'
    raw = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        pub = f'SELECT {{}}(rowid) FROM "{table.name}" WHERE publication_id = {int(publication_id)}'
        sql = (f'SELECT {quoted} FROM "{table.name}" WHERE +publication_id = {int(publication_id)} '   # +: not by the index
               f"AND rowid BETWEEN ({pub.format('min')}) AND ({pub.format('max')})")
    if conn.dialect.name == "postgresql":
        buf = io.BytesIO()
        with raw.cursor() as cur:
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
                for block in copy:
                    buf.write(block)
        if not buf.tell():
            return schema.empty_table()
        buf.seek(0)
        return pa_csv.read_csv(buf, read_options=pa_csv.ReadOptions(column_names=schema.names),
                               convert_options=pa_csv.ConvertOptions(
                                   column_types=schema, null_values=[""], strings_can_be_null=True,
                                   quoted_strings_can_be_null=False))
    exported = _exported_rows(conn.engine.url.database, sql, schema)
    if exported is not None:
        return exported
    cur = raw.cursor()
    try:
        rows = cur.execute(sql).fetchall()
    finally:
        cur.close()
    columns = list(zip(*rows)) if rows else [()] * len(cols)
    return pa.Table.from_arrays([pa.array(list(v), f.type) for v, f in zip(columns, schema)], schema=schema)


_ONE_BATCH = 100_000_000      # rows the ADBC SQLite driver reads (and types) as one batch


def _exported_rows(db: str | None, sql: str, schema: pa.Schema) -> pa.Table | None:
    """The rows of ``sql`` on the SQLite store file ``db`` as an Arrow table of ``schema``, through
    a file: a connection of the store's own SQLite copies them into a new file beside the store
    (in C) and closes it, then the ADBC SQLite driver reads that file. ~3x faster than the sqlite3
    module's tuples (290k statement rows ~0.9 s instead of ~2.6 s). None when this path does not
    apply (no driver, an in-memory store, any failure): the caller reads the tuples.

    Only for rows that never change once committed (a publication's frozen rows): the copy is
    read by its own connection, outside the caller's transaction. The driver never opens the
    store file itself: it links its own copy of SQLite, and two SQLite libraries with one file
    open in one process break that file's locks (docs/RULES.md). It reads the whole result as
    one batch, so a column whose first thousands of values are missing is typed by the rest.
    """
    path = _stage_path(db)
    if path is None:
        return None
    try:
        import adbc_driver_sqlite
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:
        return None
    import sqlite3

    try:
        source = sqlite3.connect(db, timeout=60, isolation_level=None)     # autocommit: the copy commits
        try:
            source.execute("ATTACH DATABASE ? AS export", (path,))
            source.execute(f"CREATE TABLE export.rows AS {sql}")
            source.execute("DETACH DATABASE export")
        finally:
            source.close()                                  # closed before the driver opens the file
        with adbc.connect(path) as c:
            with c.cursor() as cur:
                cur.adbc_statement.set_options(**{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(_ONE_BATCH)})
                cur.execute('SELECT * FROM "rows"')
                got = cur.fetch_arrow_table()
        if got.column_names != schema.names:
            return None
        return got.cast(schema) if got.num_rows else schema.empty_table()
    except Exception:                   # noqa: BLE001 - the tuple path reads any value the store holds
        return None
    finally:
        _unlink_stage(path)


def _comparable(table, data: pa.Table) -> pa.Table:
    """``data``'s columns of ``table`` (all but ``publication_id``), cast to :func:`_arrow_type`."""
    cols = [c for c in table.columns if c.name != "publication_id"]
    return pa.Table.from_arrays([data.column(c.name).cast(_arrow_type(c)) for c in cols], names=[c.name for c in cols])


def _compare_rows(table, frozen: pa.Table, now: pa.Table, keys: tuple[str, ...], kind: str,
                  tolerance: bool) -> list[str]:
    """Differences between the frozen rows of ``table`` and recomputed ones (empty when they agree).

    Over whole columns (Arrow): both sides sorted by their keys; text and integers compared for
    equality (missing equals missing), floats as float64 exactly (NaN and missing equal each
    other), or with ``tolerance`` within :data:`ROUNDING_YUAN` / :data:`ROUNDING_REL` (the code
    changed since publication). One message per differing column, naming the first row.
    """
    order = [(k, "ascending") for k in keys]
    a, b = _comparable(table, frozen), _comparable(table, now)
    a = a.take(pc.sort_indices(a, sort_keys=order))
    b = b.take(pc.sort_indices(b, sort_keys=order))
    if a.num_rows != b.num_rows or not all(a.column(k).equals(b.column(k)) for k in keys):
        ka = set(zip(*[a.column(k).to_pylist() for k in keys]))
        kb = set(zip(*[b.column(k).to_pylist() for k in keys]))
        return [f"{kind}: {a.num_rows:,} rows frozen, {b.num_rows:,} recomputed ({len(kb - ka):,} missing, "
                f"{len(ka - kb):,} not recomputed)"]
    problems = []
    for name in a.column_names:
        if name in keys:
            continue
        x, y = a.column(name), b.column(name)
        if pa.types.is_floating(x.type):
            xv, yv = x.to_numpy(), y.to_numpy()            # missing -> NaN
            both_nan = np.isnan(xv) & np.isnan(yv)
            if tolerance:
                close = np.abs(xv - yv) <= np.maximum(ROUNDING_YUAN, ROUNDING_REL * np.maximum(np.abs(xv), np.abs(yv)))
            else:
                close = xv == yv
            bad = ~(both_nan | close)
        else:
            same = pc.fill_null(pc.or_kleene(pc.equal(x, y), pc.and_(pc.is_null(x), pc.is_null(y))), False)
            bad = ~same.to_numpy(zero_copy_only=False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = ", ".join(f"{k} {a.column(k)[i].as_py()}" for k in keys)
            problems.append(f"{kind}: {int(bad.sum()):,} of {a.num_rows:,} rows differ in {name} "
                            f"(first: {where}: {x[i].as_py()!r} frozen, {y[i].as_py()!r} now)")
    return problems


def _branch_balances(dataset_id: int):
    """SELECT branch, line, sum(avg_balance) of a stored dataset, planned in linear time.

    The accounts are aggregated per (customer_id, line) first (one pass over the dataset's
    primary-key range and a sort or hash), and only those aggregates meet the customers, by the
    customers' (dataset_id, customer_id) index on SQLite or a hash join on PostgreSQL. A plain
    accounts-join-customers was planned by SQLite as a scan of the dataset's accounts for each
    customer: O(accounts x customers).
    """
    acc, cus = T.ds["accounts"], T.ds["customers"]
    per = (select(acc.c.customer_id, acc.c.line, func.sum(acc.c.avg_balance).label("balance"))
           .where(acc.c.dataset_id == dataset_id).group_by(acc.c.customer_id, acc.c.line)
           .subquery("per_customer"))
    return (select(cus.c.branch, per.c.line, func.sum(per.c.balance))
            .select_from(per.join(cus, and_(cus.c.dataset_id == literal(dataset_id),
                                            cus.c.customer_id == per.c.customer_id)))
            .group_by(cus.c.branch, per.c.line))


def _file_branch_balances(accounts: pd.DataFrame | pa.Table, customers: pd.DataFrame | pa.Table) -> dict:
    """{(branch, line): sum of avg_balance} of the frames (accounts of unknown customers left out).

    ``accounts`` needs ``customer_id``, ``line`` and ``avg_balance`` (yuan), ``customers``
    ``customer_id`` and ``branch``, as DataFrames or Arrow tables. One hash join and one
    group-by in polars (linear, no per-row Python, and without the GIL: an upload runs it on a
    side thread while its main thread writes). A missing balance counts as nothing, as SQL's
    ``SUM`` skips NULL; a customer id given twice (which validation refuses) counts once.
    """
    import polars as pl

    def frame(data, names):
        if isinstance(data, pa.Table):
            return pl.from_arrow(data.select(names))
        return pl.from_arrow(pa.table({n: pa.array(data[n], from_pandas=True) for n in names}))

    acc = frame(accounts, ["customer_id", "line", "avg_balance"]).with_columns(
        pl.col("avg_balance").cast(pl.Float64).fill_nan(None))
    cus = frame(customers, ["customer_id", "branch"]).unique("customer_id", keep="first", maintain_order=True)
    sums = (acc.join(cus, on="customer_id", how="inner").group_by("branch", "line")
            .agg(pl.col("avg_balance").sum()))
    return {(b, ln): float(v) for b, ln, v in sums.iter_rows()}


def _balance_tolerance(total: float) -> float:
    """How far a stored branch-line balance (yuan) may be from the file's: half a fen plus float rounding.

    Both sides sum the same float64 values in a different order; the database's plain running
    sum drifts by about sqrt(rows) half-ulps of the total (1M accounts: under a fen). 1e-12 of
    the total covers that with a wide margin and still catches one yuan off at 1e11 yuan.
    """
    return 0.005 + abs(total) * 1e-12


def _reconcile_problems(conn, ds_id: int, frames: dict, counts: dict, rejected: int,
                        snapshot_bytes: dict | None = None, where: str = "read",
                        file_totals: dict | None = None) -> list[str]:
    """Differences between a stored dataset's rows and its frames (empty when they agree).

    Linear in the rows: a count per table (a range of the primary key) against ``counts``, the
    quarantined rows against ``rejected``, the snapshot sizes (when ``snapshot_bytes`` is
    given), and the avg_balance per branch and line on each side (:func:`_branch_balances`, where
    the database aggregates the accounts per customer and line before it joins the customers;
    :func:`_file_branch_balances` over the frames' columns). Balances are compared only when
    ``frames`` holds both ``accounts`` and ``customers``, unless ``where`` is ``"read"`` (an
    upload, whose frames are complete).

    Parameters
    ----------
    conn : Connection
        Inside the transaction that stored the rows, or a read transaction.
    ds_id : int
    frames : dict of str to DataFrame
        At least ``customer_id``, ``line``, ``avg_balance`` of accounts and ``customer_id``,
        ``branch`` of customers (yuan).
    counts : dict of str to int
        Rows expected per sheet.
    rejected : int
        Rows expected in ``ds_quarantine``.
    snapshot_bytes : dict of str to int, optional
        Bytes of each sheet's snapshot as written.
    where : str
        How a message names the frames' side: ``"read"`` (an upload) or ``"in the snapshot"``.
    file_totals : dict, optional
        :func:`_file_branch_balances` of ``frames``, when the caller computed it already.

    Returns
    -------
    list of str
        One message per difference, in English.
    """
    problems = []
    for key, n in counts.items():
        stored = conn.execute(select(func.count()).select_from(T.ds[key]).where(T.ds[key].c.dataset_id == ds_id)).scalar()
        if stored != n:
            problems.append(f"{key}: {n} rows {where} but {stored} stored")
    stored_q = conn.execute(select(func.count()).select_from(T.quarantine)
                            .where(T.quarantine.c.dataset_id == ds_id)).scalar()
    if stored_q != rejected:
        problems.append(f"quarantine: {rejected} rows rejected but {stored_q} stored")
    if snapshot_bytes is not None:
        s = T.snapshots
        got = {k: (int(r or 0), int(b or 0)) for k, r, b in conn.execute(
            select(s.c.sheet, func.max(s.c.rows), func.sum(func.length(s.c.data)))
            .where(s.c.dataset_id == ds_id).group_by(s.c.sheet))}
        for key, size in snapshot_bytes.items():
            if got.get(key) != (counts[key], size):
                problems.append(f"{key}: snapshot of {counts[key]} rows, {size} bytes written but {got.get(key)} stored")
    accounts, customers = frames.get("accounts"), frames.get("customers")
    if where != "read" and (accounts is None or customers is None):
        return problems                     # a copy to compare with is missing (reported by the caller)
    db = {(b, ln): float(v or 0.0) for b, ln, v in conn.execute(_branch_balances(ds_id))}
    if accounts is None or not len(accounts) or customers is None:
        if db:
            problems.append(f"accounts: none {where} but balances stored")
        return problems
    label = "in the file" if where == "read" else where
    if file_totals is None:
        file_totals = _file_branch_balances(accounts, customers)
    for (b, ln) in sorted(set(file_totals) | set(db)):
        v, got_v = file_totals.get((b, ln), 0.0), db.get((b, ln), 0.0)
        if abs(got_v - v) > _balance_tolerance(v):
            problems.append(f"branch {b} {ln} balances: {v:,.2f} {label} but {got_v:,.2f} stored")
    return problems


def _check_period(period: str) -> str:
    import re

    period = (period or "").strip().upper()
    if not re.match(PERIOD_RE, period):
        raise ValueError(f"period {period!r} must look like 2026Q3, 2026M09, 2026H2 or 2026Y")
    return period


def printable(value) -> str:
    """``value`` as text without NUL characters (PostgreSQL cannot store them; shown as U+FFFD)."""
    return str(value).replace("\x00", "\ufffd")


def check_text(value, what: str, max_length: int | None) -> None:
    """Refuse text the two databases would store differently: a NUL character (PostgreSQL cannot
    store one) or more characters than its column holds (PostgreSQL refuses, SQLite would keep them).

    Raises
    ------
    ValueError
        Naming ``what`` and the problem.
    """
    if value is None:
        return
    value = str(value)
    if "\x00" in value:
        raise ValueError(f"{what} holds a NUL character (\\x00), which cannot be stored")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{what} has {len(value)} characters; at most {max_length} can be stored")


def _scenario_parameters(toml: str) -> str | None:
    """A scenario's parameters without its name, as canonical TOML (None when it no longer parses)."""
    try:
        return Scenario.from_toml(toml).replace(name="-").to_toml()
    except ValueError:
        return None


def _same_publication(conn, period: str, dataset_id: int, scenario: Scenario, code: str,
                      reason: str) -> dict | None:
    """The period's newest publication when publishing again would repeat it, as
    :meth:`Store.publish` returns it with ``created`` False; else None.

    It repeats it when it was made from ``dataset_id`` with ``scenario``'s parameters (the
    scenario's name aside) by the same calculation code ``code``, and ``reason`` is empty or the
    reason it was published with (a double click, two sessions, two processes seeding). A new,
    different reason publishes the same inputs again on purpose, as a new version.
    """
    p, sc = T.publications, T.scenarios
    last = conn.execute(select(p.c.id, p.c.period, p.c.version, p.c.dataset_id, p.c.scenario_id, p.c.result_hash,
                               p.c.inputs_hash, p.c.rows_hash, p.c.code_version, p.c.reason, sc.c.toml)
                        .select_from(p.join(sc, sc.c.id == p.c.scenario_id))
                        .where(p.c.period == period).order_by(p.c.version.desc()).limit(1)).mappings().first()
    if last is None or last["dataset_id"] != dataset_id or last["code_version"] != code:
        return None
    if reason and reason != last["reason"]:
        return None
    if _scenario_parameters(last["toml"]) != scenario.replace(name="-").to_toml():
        return None
    out = {k: last[k] for k in ("id", "period", "version", "dataset_id", "scenario_id", "result_hash", "inputs_hash",
                                "rows_hash")}
    return {**out, "created": False}


# Result columns that must hold a number (a NaN there is not "no figure" but a calculation fault).
_REQUIRED_FIGURES = {"managers": ("asset", "liability", "intermediate", "risk", "total", "pay", "points_pay"),
                     "customers": ("asset", "liability", "intermediate", "risk", "total")}


def _check_finite(result) -> None:
    """Refuse to publish a result holding an infinite number anywhere, or a NaN in a figure that
    must exist (pay, points pay, the line contributions) or in the bank totals.

    Raises
    ------
    ValueError
        Naming the first manager or customer and the column (and how many values are affected).
    """
    for kind, frame, key in (("manager", result.managers, "manager_id"), ("customer", result.customers, "customer_id"),
                             ("KPI row of manager", result.kpi, "manager_id")):
        required = _REQUIRED_FIGURES.get(kind + "s", ())
        for col in frame.columns:
            if col == key or not pd.api.types.is_float_dtype(frame[col].dtype):
                continue
            x = frame[col].to_numpy(dtype=np.float64)
            bad = np.isinf(x) | (np.isnan(x) if col in required else False)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"the result holds a non-finite number: {kind} {frame[key].iloc[i]}, column {col} "
                                 f"is {float(x[i])!r} ({int(bad.sum())} value(s) in that column); nothing was "
                                 "published (check the input's amounts and the scenario's parameters) / "
                                 f"结果含非有限数值：{frame[key].iloc[i]} 的 {col} 为 {float(x[i])!r}，未发布")
    for name, value in result.totals.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise ValueError(f"the result holds a non-finite number: the bank total {name} is {value!r}; "
                             f"nothing was published / 结果含非有限数值：合计 {name} 为 {value!r}，未发布")


# The frozen tables a publication's rows hash covers, in hashing order, with their keys.
# "lines", "customers" and "kpi" are the statement tables (:data:`_STATEMENT_TABLES`).
_FROZEN_ROWS = {"result_managers": (T.pub_managers, ("manager_id",)),
                "result_customers": (T.pub_customers, ("customer_id",)), **_STATEMENT_TABLES}


def _frozen_rows_hash(data: dict[str, pa.Table]) -> str:
    """SHA-256 of a publication's frozen rows, the same whether built at publish or read back.

    Per table of :data:`_FROZEN_ROWS` (name, row count and columns first): the rows sorted by
    their key, then column by column the values as compared by verify (:func:`_comparable`):
    floats as little-endian float64 bytes (missing as one NaN, -0.0 as 0.0), integers as int64,
    text as a JSON list.

    Parameters
    ----------
    data : dict of str to pyarrow.Table
        By the keys of :data:`_FROZEN_ROWS`: the table's columns except ``publication_id``.
    """
    h = hashlib.sha256()
    for kind, (table, keys) in _FROZEN_ROWS.items():
        rows = _comparable(table, data[kind])
        rows = rows.take(pc.sort_indices(rows, sort_keys=[(k, "ascending") for k in keys]))
        h.update(f"{table.name}\n{rows.num_rows}\n{','.join(rows.column_names)}\n".encode())
        for name in rows.column_names:
            col = rows.column(name)
            if pa.types.is_floating(col.type):
                v = col.to_numpy(zero_copy_only=False).astype(np.float64) + 0.0
                v[np.isnan(v)] = np.nan
                h.update(v.astype("<f8").tobytes())
            else:
                h.update(_json_list(col))
            h.update(b"\n")
    return h.hexdigest()


def _json_escapes(text: pa.Array) -> bool:
    """Whether a text array's bytes hold one json.dumps writes as an escape (with
    ``ensure_ascii=False``: a double quote, a backslash, a control character below 0x20)."""
    data, starts, lengths = _text_bytes(text)
    b = data[starts[0]:starts[-1] + lengths[-1]] if len(starts) else data[:0]
    return bool((b < 0x20).any() or (b == 0x22).any() or (b == 0x5C).any())


def _json_list(col: pa.ChunkedArray | pa.Array) -> bytes:
    """``json.dumps(col.to_pylist(), ensure_ascii=False).encode()`` of an integer or text column,
    built over the whole column (no Python value per row): each value as JSON writes it (an
    integer's digits, text in double quotes, ``null``), joined with ``", "`` in brackets.

    Text holding a character JSON escapes (a double quote, a backslash, a control character)
    is rare in a bank's ids and names; such a column is written by ``json.dumps`` itself.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not len(col):
        return b"[]"
    if pa.types.is_integer(col.type):
        items = pc.cast(col, pa.large_string())
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = col.cast(pa.large_string())
        if _json_escapes(text):
            return json.dumps(col.to_pylist(), ensure_ascii=False).encode()
        quote, none = pa.scalar('"', pa.large_string()), pa.scalar("", pa.large_string())
        items = pc.binary_join_element_wise(quote, text, quote, none)
    else:
        return json.dumps(col.to_pylist(), ensure_ascii=False).encode()
    items = pc.fill_null(items, pa.scalar("null", pa.large_string()))
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array([0, len(items)], pa.int64()), items),
                            pa.scalar(", ", pa.large_string()))
    return b"[" + joined[0].as_buffer().to_pybytes() + b"]"


class Store:
    """Repository over one database (see :mod:`data.db` for the URL rules)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._recomputed: dict[int, tuple] = {}
        self._recomputed_lock = threading.Lock()
        self._fallbacks_noted: set[tuple[int, str]] = set()

    @classmethod
    def open(cls, url: str | None = None) -> "Store":
        """Connect and apply pending migrations."""
        engine = get_engine(url)
        migrate(engine)
        return cls(engine)

    # ------------------------------------------------------------------ audit
    @staticmethod
    def _audit(conn, actor: str, action: str, target: str, before=None, after=None) -> None:
        # Cut to the columns' sizes (user text may be longer) and without NUL characters, which
        # PostgreSQL cannot store in text: a refusal of such a name is audited like any other.
        conn.execute(T.audit_log.insert().values(
            at=_now(), actor=printable(actor)[:_AUDIT_ACTOR], action=action,
            target=printable(target)[:_AUDIT_TARGET],
            before=None if before is None else json.dumps(before, ensure_ascii=False, default=str),
            after=None if after is None else json.dumps(after, ensure_ascii=False, default=str)))

    def audit(self, actor: str, action: str, target: str, before=None, after=None) -> None:
        """Append one audit row (its own transaction)."""
        run_write(self.engine, lambda conn: self._audit(conn, actor, action, target, before, after))

    def _frame(self, q) -> pd.DataFrame:
        """The rows of a select as a frame whose columns are the select's (also when empty)."""
        with read_tx(self.engine) as conn:
            return pd.DataFrame.from_records(conn.execute(q).all(), columns=list(q.selected_columns.keys()))

    def audit_log(self, limit: int = 500) -> pd.DataFrame:
        """The newest audit rows first."""
        q = select(T.audit_log).order_by(T.audit_log.c.id.desc()).limit(limit)
        return self._frame(q)

    # ------------------------------------------------------------------ datasets
    def save_dataset(self, period: str, file_name: str, sha256: str, frames: dict[str, pd.DataFrame],
                     uploader: str, quarantine: pd.DataFrame | None = None) -> DatasetInfo:
        """Store validated frames as the period's next version (or do nothing for identical bytes).

        Parameters
        ----------
        period : str
            ``2026Q3``, ``2026M09``, ``2026H2`` or ``2026Y``.
        file_name, sha256 : str
            What was uploaded (the hash of the uploaded bytes decides "identical").
        frames : dict of str to DataFrame
            Valid rows only (``_error`` all False).
        uploader : str
            User name, for the record and the audit log.
        quarantine : DataFrame, optional
            Rejected rows (:func:`data.quarantine.split_valid`), stored beside the dataset.

        Returns
        -------
        DatasetInfo
            ``created`` is False when the same bytes were already stored for this period.

        Raises
        ------
        ValueError
            Bad period, or frames holding rows with errors.
        ReconciliationError
            When the rows or per-branch balances read back differ from the frames.
        """
        period = _check_period(period)
        check_text(file_name, "the file name", T.datasets.c.file_name.type.length)
        check_text(uploader, "the uploader", T.datasets.c.uploader.type.length)
        bad = [k for k, v in frames.items() if "_error" in v and bool(v["_error"].any())]
        if bad:
            raise ValueError(f"sheets {', '.join(bad)} hold rows with errors; split them off first")
        # the last gate (data.quarantine refuses these first): a dataset that cannot open is never stored
        for sheet in SHEETS:
            frame = frames.get(sheet.key)
            if sheet.required and (frame is None or not len(frame)):
                raise ValueError(f"the required sheet {sheet.key} ({sheet.zh}) has no rows; nothing was stored")
            if frame is not None:
                missing = [c.key for c in sheet.columns if c.required and c.key not in frame.columns]
                if missing:
                    raise ValueError(f"sheet {sheet.key} ({sheet.zh}) lacks the required column(s) "
                                     f"{', '.join(missing)}; nothing was stored")
        q = quarantine if quarantine is not None else pd.DataFrame(columns=["sheet", "row", "reason", "values"])
        counts = {s.key: int(len(frames.get(s.key, ()))) for s in SHEETS}

        def stored_already(conn):
            row = conn.execute(select(T.datasets).where(and_(T.datasets.c.period == period,
                                                             T.datasets.c.sha256 == sha256))).mappings().first()
            return None if row is None else self._info(row, created=False)

        with read_tx(self.engine) as conn:        # nothing to prepare when the same bytes are stored
            existing = stored_already(conn)
        if existing is not None:
            return existing
        typed = {s.key: _typed_arrow(_empty_frame() if frames.get(s.key) is None else frames[s.key], s.key)
                 for s in SHEETS}
        rows = {key: _rows(t, key) for key, t in typed.items()}
        staged = Prestaged(self.engine)
        try:
            # Before the write transaction, on two side threads without the GIL (the ADBC driver,
            # Arrow's Parquet writer, polars): the large sheets' staging files (the largest alone
            # on one thread), each sheet's Parquet snapshot and the file's side of the
            # reconciliation. The transaction then only copies, and holds the store's write lock
            # for that alone.
            with ThreadPoolExecutor(max_workers=2) as side:
                order = sorted(rows, key=lambda k: -rows[k].num_rows)
                staging = [side.submit(staged.stage, order[0], rows[order[0]]),
                           side.submit(lambda: [staged.stage(k, rows[k]) for k in order[1:]])]
                snapshots = {key: side.submit(_snapshot, t) for key, t in typed.items()}
                accounts, customers = typed["accounts"], typed["customers"]
                file_totals = (side.submit(_file_branch_balances, accounts, customers)
                               if accounts.num_rows and customers.num_rows else None)
                snapshots = {key: f.result() for key, f in snapshots.items()}     # (bytes, rows)
                file_totals = file_totals.result() if file_totals is not None else None
                for f in staging:
                    f.result()
            del typed, accounts, customers

            def write(conn):
                existing = stored_already(conn)          # stored meanwhile by another upload
                if existing is not None:
                    return existing
                with _write_cache(conn, big=sum(counts.values()) > 10_000):
                    return store(conn)

            def store(conn):
                version = (conn.execute(select(func.max(T.datasets.c.version)).where(T.datasets.c.period == period))
                           .scalar() or 0) + 1
                ds_id = conn.execute(T.datasets.insert().values(
                    period=period, version=version, file_name=file_name, sha256=sha256, uploader=uploader,
                    created_at=_now(), row_counts=json.dumps(counts), rejected_rows=len(q))).inserted_primary_key[0]
                for sheet in SHEETS:
                    _bulk_insert(conn, T.ds[sheet.key], rows[sheet.key], fixed={"dataset_id": ds_id},
                                 staged=staged.get(sheet.key))
                    _insert_snapshot(conn, _snapshot_rows(ds_id, sheet.key, *snapshots[sheet.key]))
                if len(q):
                    _bulk_insert(conn, T.quarantine, _quarantine_rows(q, ds_id))
                self._reconcile(conn, ds_id, frames, counts, len(q),
                                {key: len(data) for key, (data, _) in snapshots.items()}, file_totals=file_totals)
                self._audit(conn, uploader, "upload", f"dataset {period} v{version}",
                            after={"file": file_name, "sha256": sha256, "rows": counts, "rejected": len(q)})
                row = conn.execute(select(T.datasets).where(T.datasets.c.id == ds_id)).mappings().one()
                return self._info(row)

            return run_write(self.engine, write, lock="content")
        finally:
            staged.close()

    @staticmethod
    def _reconcile(conn, ds_id: int, frames: dict, counts: dict, rejected: int,
                   snapshot_bytes: dict | None = None, file_totals: dict | None = None) -> None:
        """Compare what the transaction stored with the frames; raise before it commits when they differ.

        Linear in the rows (:func:`_reconcile_problems`); on PostgreSQL the new rows are analysed
        first so that the balance query is planned for their real size.

        Raises
        ------
        ReconciliationError
            Naming the first difference found.
        """
        if conn.dialect.name == "postgresql":
            # Statistics for the rows just copied (a fixed-size sample, ~0.3 s at 1M accounts):
            # without them the planner takes the new dataset for a few hundred rows and runs the
            # aggregation in 21 spilled batches (1M accounts: 1.6 s instead of 0.8 s).
            conn.exec_driver_sql("ANALYZE ds_accounts, ds_customers")
        problems = _reconcile_problems(conn, ds_id, frames, counts, rejected, snapshot_bytes, file_totals=file_totals)
        if problems:
            raise ReconciliationError(f"{problems[0]}; nothing was saved")

    @staticmethod
    def _info(row, created: bool = True) -> DatasetInfo:
        return DatasetInfo(id=row["id"], period=row["period"], version=row["version"], file_name=row["file_name"],
                           sha256=row["sha256"], uploader=row["uploader"], created_at=row["created_at"],
                           row_counts=json.loads(row["row_counts"]), rejected_rows=row["rejected_rows"],
                           created=created)

    def datasets(self, period: str | None = None, limit: int | None = None) -> list[DatasetInfo]:
        """Stored dataset versions, newest period and version first (at most ``limit``)."""
        q = select(T.datasets).order_by(T.datasets.c.period.desc(), T.datasets.c.version.desc()).limit(limit)
        if period:
            q = q.where(T.datasets.c.period == period)
        with read_tx(self.engine) as conn:
            return [self._info(r) for r in conn.execute(q).mappings()]

    def dataset(self, dataset_id: int) -> DatasetInfo:
        """One dataset version by id."""
        with read_tx(self.engine) as conn:
            row = conn.execute(select(T.datasets).where(T.datasets.c.id == dataset_id)).mappings().first()
        if row is None:
            raise ValueError(f"no dataset with id {dataset_id}")
        return self._info(row)

    def latest_dataset(self, period: str | None = None) -> DatasetInfo | None:
        """The newest version of ``period`` (default: the latest period)."""
        found = self.datasets(period, limit=1)
        return found[0] if found else None

    def load_frames(self, dataset_id: int) -> dict[str, pd.DataFrame]:
        """A stored dataset as typed frames, exactly as :mod:`data.ingest` produced them.

        Read from the dataset's Parquet snapshots (checked against their SHA-256 and row count);
        a sheet without a snapshot (a dataset stored before snapshots existed) is read from its
        rows, and so is a sheet whose snapshot fails its check, which is also written to the
        audit log once (action ``snapshot_fallback``, :meth:`check_dataset`).
        """
        frames, failed = {}, []
        with read_tx(self.engine) as conn:
            found = _snapshot_parts(conn, dataset_id)
            for sheet in SHEETS:
                frame = None
                if sheet.key in found:
                    rows, digest, parts = found.pop(sheet.key)
                    frame = _read_snapshot(sheet.key, parts, rows, digest)
                    del parts
                    if frame is None:
                        failed.append(sheet.key)
                if frame is None:
                    frame = _rows_frame(conn, dataset_id, sheet.key)
                frames[sheet.key] = frame
        if failed:
            self._note_fallback(dataset_id, failed)
        return frames

    def _note_fallback(self, dataset_id: int, sheets: list[str]) -> None:
        """Audit (once per dataset and sheet, actor ``system``) snapshots that failed their check."""
        with self._recomputed_lock:
            sheets = [k for k in sheets if (dataset_id, k) not in self._fallbacks_noted]
        if not sheets:
            return
        a = T.audit_log

        def write(conn):
            for key in sheets:
                target = f"dataset #{dataset_id} sheet {key}"
                seen = conn.execute(select(func.count()).select_from(a).where(
                    and_(a.c.action == _FALLBACK, a.c.target == target))).scalar()
                if not seen:
                    self._audit(conn, "system", _FALLBACK, target,
                                after={"dataset_id": dataset_id, "sheet": key,
                                       "problem": "snapshot fails its SHA-256 or row count; read from the rows"})

        run_write(self.engine, write, lock="content")
        with self._recomputed_lock:
            self._fallbacks_noted.update((dataset_id, k) for k in sheets)

    def check_dataset(self, dataset_id: int) -> dict:
        """Check that a stored dataset's two copies (rows and Parquet snapshots) still agree.

        Every snapshot is checked against its SHA-256 and row count (a failing one is audited
        once, as on :meth:`load_frames`); then the reconciliation an upload runs before it
        commits is run again, linear in the rows: the rows per table and the quarantined rows
        against the counts recorded with the dataset, and the avg_balance per branch and line
        of the stored rows against the snapshots' (yuan). Only the snapshot columns the
        balances need are decoded.

        Parameters
        ----------
        dataset_id : int

        Returns
        -------
        dict
            ``consistent`` (bool), ``problems`` (list of str, English), ``snapshot_fallback``
            (sheets whose snapshot failed its check and load from the rows), ``snapshots``
            (bool: the dataset has snapshots at all; stored before they existed otherwise).

        Raises
        ------
        ValueError
            No dataset with this id.
        """
        info = self.dataset(dataset_id)
        problems, failed, frames = [], [], {}
        counts = {s.key: int(info.row_counts.get(s.key, 0)) for s in SHEETS}
        with read_tx(self.engine) as conn:
            found = _snapshot_parts(conn, dataset_id)
            has_snapshots = bool(found)
            for sheet in SHEETS:
                if sheet.key not in found:
                    if has_snapshots:
                        problems.append(f"{sheet.key}: no snapshot stored")
                    continue
                rows, digest, parts = found.pop(sheet.key)
                table = _snapshot_table(parts, rows, digest, _CHECK_COLUMNS.get(sheet.key, []))
                del parts
                if table is None:
                    failed.append(sheet.key)
                    problems.append(f"{sheet.key}: the snapshot fails its SHA-256 or row count; "
                                    "the dataset loads from its rows")
                    continue
                expected = counts[sheet.key]
                if rows != expected:
                    problems.append(f"{sheet.key}: {expected} rows recorded but {rows} in the snapshot")
                if sheet.key in _CHECK_COLUMNS:
                    frames[sheet.key] = table.to_pandas()
                del table
            # without snapshots (frames is empty) only one copy: its rows against the recorded counts
            problems += _reconcile_problems(conn, dataset_id, frames, counts, info.rejected_rows,
                                            where="in the snapshot" if has_snapshots else "recorded")
        del frames
        if failed:
            self._note_fallback(dataset_id, failed)
        return {"consistent": not problems, "problems": problems, "snapshot_fallback": failed,
                "snapshots": has_snapshots}

    def load_quarantine(self, dataset_id: int) -> pd.DataFrame:
        """Rows rejected when the dataset was accepted with its valid rows only."""
        t = T.quarantine
        q = (select(t.c.sheet, t.c.excel_row.label("row"), t.c.reason, t.c.row_values.label("values"))
             .where(t.c.dataset_id == dataset_id).order_by(t.c.seq))
        return self._frame(q)

    # ------------------------------------------------------------------ scenarios
    def save_scenario(self, scenario: Scenario, author: str) -> tuple[int, int]:
        """Save under its name as a new version (or reuse the latest when unchanged).

        Returns
        -------
        tuple of (int, int)
            Scenario row id and version.
        """
        check_text(scenario.name, "the scenario name", T.scenarios.c.name.type.length)
        return run_write(self.engine, lambda conn: self._save_scenario(conn, scenario, author), lock="content")

    def _save_scenario(self, conn, scenario: Scenario, author: str) -> tuple[int, int]:
        toml = scenario.to_toml()
        latest = conn.execute(select(T.scenarios).where(T.scenarios.c.name == scenario.name)
                              .order_by(T.scenarios.c.version.desc()).limit(1)).mappings().first()
        if latest and latest["toml"] == toml:
            return latest["id"], latest["version"]
        version = (latest["version"] if latest else 0) + 1
        sid = conn.execute(T.scenarios.insert().values(name=scenario.name, version=version, author=author,
                                                       created_at=_now(), toml=toml)).inserted_primary_key[0]
        self._audit(conn, author, "scenario_save", f"scenario {scenario.name} v{version}",
                    before={"toml": latest["toml"]} if latest else None, after={"toml": toml})
        return sid, version

    def scenarios(self) -> pd.DataFrame:
        """Every saved scenario version: id, name, version, author, created_at."""
        q = select(T.scenarios.c.id, T.scenarios.c.name, T.scenarios.c.version, T.scenarios.c.author,
                   T.scenarios.c.created_at).order_by(T.scenarios.c.name, T.scenarios.c.version.desc())
        return self._frame(q)

    def load_scenario(self, scenario_id: int) -> Scenario:
        """A saved scenario version by id."""
        with read_tx(self.engine) as conn:
            toml = conn.execute(select(T.scenarios.c.toml).where(T.scenarios.c.id == scenario_id)).scalar()
        if toml is None:
            raise ValueError(f"no scenario with id {scenario_id}")
        return Scenario.from_toml(toml)

    # ------------------------------------------------------------------ publishing
    def publish(self, period: str, scenario: Scenario, reason: str, user: str,
                dataset_id: int | None = None) -> dict:
        """Freeze the period's results under ``scenario`` as its next published version.

        Frozen in one transaction: the DOMAIN 10 document, the managers' and customers' rows and
        every manager's statement (:func:`_statement_frames`), all bulk-written, with the SHA-256
        of those rows (``rows_hash``, :func:`_frozen_rows_hash`). A result whose pay its statement
        lines do not explain is refused (:func:`_check_statements_add_up`), and so is one holding
        an infinite number, or a NaN where a figure is required (:func:`_check_finite`).

        Publishing what the period's newest publication already is (the same dataset, the same
        scenario parameters, the scenario's name aside, and the same calculation code), without a
        reason or with the reason it was published with, stores nothing and returns that
        publication with ``created`` False, so two identical publishes (a double click, two
        sessions, two processes seeding) give one version (:func:`_same_publication`). Concurrent publishes of one period are serialised (the
        ``content`` lock): each becomes the next version.

        Parameters
        ----------
        period : str
        scenario : Scenario
            Saved (as a new version when changed) and referenced by the publication.
        reason : str
            Required when the period was published before.
        user : str
        dataset_id : int, optional
            Default: the period's newest dataset version.

        Returns
        -------
        dict
            The publication row (without the JSON document): ``id``, ``period``, ``version``,
            ``dataset_id``, ``scenario_id``, ``result_hash``, ``inputs_hash``, ``rows_hash`` and
            ``created`` (True for a new publication, False when it already existed).

        Raises
        ------
        ValueError
            No dataset for the period, a re-publication without a reason, statements that do
            not explain the pay, or a non-finite number in the result (naming the manager or
            customer and the column).
        data.db.StoreBusy
            Another write kept the store busy longer than a writer waits.
        """
        period = _check_period(period)
        check_text(scenario.name, "the scenario name", T.scenarios.c.name.type.length)
        check_text(user, "the user name", T.publications.c.published_by.type.length)
        reason = (reason or "").strip()
        check_text(reason, "the reason", None)
        ds = self.dataset(dataset_id) if dataset_id else self.latest_dataset(period)
        if ds is None or ds.period != period:
            raise ValueError(f"no dataset stored for period {period}; load one first")
        code = code_version()
        with read_tx(self.engine) as conn:          # nothing to compute when it is published already
            same = _same_publication(conn, period, ds.id, scenario, code, reason)
        if same is not None:
            return same
        frames = self.load_frames(ds.id)
        result = run(frames, scenario)[1]     # the Base and the frames are not kept past the run
        del frames
        _check_finite(result)
        # The canonical UTF-8 bytes, hashed while written (calc.output.write_document), are the
        # one copy of the document: stored as they are, never decoded or re-encoded here (at 5M
        # accounts the document is ~225 MB).
        doc = io.BytesIO()
        staged = Prestaged(self.engine)
        try:
            # Two side threads, both without the GIL: one writes the document (polars), the
            # other stages the large tables (SQLite, in C) while this one hashes the rows; the
            # write transaction then only copies them.
            with ThreadPoolExecutor(max_workers=2) as side:
                writing = side.submit(write_document, result, doc)
                statements = _statement_frames(result, scenario)
                _check_statements_add_up(result, scenario, statements["lines"])
                rows = {"result_managers": _pub_rows(T.pub_managers, result.managers, None),
                        "result_customers": _pub_rows(T.pub_customers, result.customers, None), **statements}
                staging = side.submit(lambda: [staged.stage(k, v) for k, v in rows.items()])
                rows_hash = _frozen_rows_hash(rows)
                result_hash = writing.result()[1]
                staging.result()
            inputs_hash = hashlib.sha256("\n".join([ds.sha256, scenario.to_toml(), code]).encode()).hexdigest()
            tables = {"result_managers": T.pub_managers, "result_customers": T.pub_customers,
                      **{kind: table for kind, (table, _) in _STATEMENT_TABLES.items()}}

            def write(conn):
                same = _same_publication(conn, period, ds.id, scenario, code, reason)     # published meanwhile
                if same is not None:
                    return same
                previous = conn.execute(select(func.max(T.publications.c.version))
                                        .where(T.publications.c.period == period)).scalar() or 0
                if previous and not reason:
                    raise ValueError(f"period {period} was published before (v{previous}); re-publishing needs a reason")
                scenario_id, scenario_version = self._save_scenario(conn, scenario, user)
                with doc.getbuffer() as document:
                    pub_id = _insert_publication(conn, document, dict(
                        period=period, version=previous + 1, dataset_id=ds.id, scenario_id=scenario_id,
                        reason=reason or "first publication", published_by=user, published_at=_now(),
                        inputs_hash=inputs_hash, code_version=code, result_hash=result_hash, rows_hash=rows_hash))
                for kind, data in rows.items():          # the result rows and every manager's statement
                    _bulk_insert(conn, tables[kind], data, fixed={"publication_id": pub_id}, staged=staged.get(kind))
                self._audit(conn, user, "publish", f"period {period} v{previous + 1}",
                            before={"version": previous} if previous else None,
                            after={"dataset": ds.label, "scenario": f"{scenario.name} v{scenario_version}",
                                   "reason": reason or "first publication", "result_hash": result_hash,
                                   "pay_total": result.totals["pay"]})
                return {"id": pub_id, "period": period, "version": previous + 1, "dataset_id": ds.id,
                        "scenario_id": scenario_id, "result_hash": result_hash, "inputs_hash": inputs_hash,
                        "rows_hash": rows_hash, "created": True}

            return run_write(self.engine, write, lock="content")
        finally:
            staged.close()
            doc.close()

    def publications(self, period: str | None = None, publication_id: int | None = None) -> pd.DataFrame:
        """Published versions (newest first), without the documents; optionally one period or one id."""
        p = T.publications
        q = select(*[c for c in p.columns if c.name != "result_json"]).order_by(p.c.period.desc(), p.c.version.desc())
        if period:
            q = q.where(p.c.period == period)
        if publication_id is not None:
            q = q.where(p.c.id == publication_id)
        return self._frame(q)

    def published_document(self, publication_id: int) -> str:
        """The frozen DOMAIN 10 document of a publication, as stored (text)."""
        with read_tx(self.engine) as conn:
            doc = conn.execute(select(T.publications.c.result_json)
                               .where(T.publications.c.id == publication_id)).scalar()
        if doc is None:
            raise ValueError(f"no publication with id {publication_id}")
        return doc

    def published_managers(self, publication_id: int, branch: str | None = None,
                           manager_id: str | None = None) -> pd.DataFrame:
        """Frozen manager rows of a publication (optionally one branch or one manager)."""
        t = T.pub_managers
        q = select(t).where(t.c.publication_id == publication_id).order_by(t.c.rank, t.c.manager_id)
        if branch is not None:
            q = q.where(t.c.branch == branch)
        if manager_id is not None:
            q = q.where(t.c.manager_id == manager_id)
        return _pub_frame(self._frame(q), t)

    def published_customers(self, publication_id: int, branch: str | None = None) -> pd.DataFrame:
        """Frozen customer rows of a publication (optionally one branch)."""
        t = T.pub_customers
        q = select(t).where(t.c.publication_id == publication_id).order_by(t.c.customer_id)
        if branch is not None:
            q = q.where(t.c.branch == branch)
        return _pub_frame(self._frame(q), t)

    def published_customer_lines(self, publication_id: int, customer_ids) -> pd.DataFrame:
        """The frozen contribution per line (yuan) of the customers ``customer_ids`` in a
        publication: ``customer_id``, ``asset`` ... ``risk``. Not limited by a scope: callers
        (:meth:`data.access.Access.pay_change`) ask only for customers their principal may see."""
        t = T.pub_customers
        ids = sorted({str(c) for c in customer_ids})
        cols = [t.c.customer_id, *[t.c[x] for x in PAY_LINES]]
        frames = []
        for start in range(0, len(ids), 500):            # a bound list per query, whatever the count
            q = select(*cols).where(and_(t.c.publication_id == publication_id,
                                         t.c.customer_id.in_(ids[start:start + 500])))
            frames.append(self._frame(q))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=float if c in PAY_LINES else object)
                                 for c in ["customer_id", *PAY_LINES]})
        return pd.concat(frames, ignore_index=True)

    def latest_publications(self) -> pd.DataFrame:
        """The newest published version of every period, oldest period first."""
        pubs = self.publications()
        if pubs.empty:
            return pubs
        return pubs.sort_values(["period", "version"]).groupby("period").tail(1).reset_index(drop=True)

    def history(self, manager_id: str | None = None, branch: str | None = None) -> pd.DataFrame:
        """Frozen manager rows across the newest publication of every period."""
        latest = self.latest_publications()
        frames = []
        for _, p in latest.iterrows():
            rows = self.published_managers(int(p["id"]), branch=branch, manager_id=manager_id)
            rows.insert(0, "period", p["period"])
            frames.append(rows)
        if not frames:
            return pd.DataFrame(columns=["period", *[c.name for c in T.pub_managers.columns]])
        return pd.concat(frames, ignore_index=True)

    def publication(self, publication_id: int) -> pd.Series:
        """One publication's row (without the document)."""
        row = self.publications(publication_id=publication_id)
        if row.empty:
            raise ValueError(f"no publication with id {publication_id}")
        return row.iloc[0]

    def recompute(self, publication_id: int) -> tuple:
        """Both stages on a publication's frozen dataset and scenario versions.

        Publications never change, so the last few results are kept in memory; statements of
        published periods then cost no recomputation on each rerun.

        Returns
        -------
        tuple of (Scenario, Base, Result)
        """
        with self._recomputed_lock:
            hit = self._recomputed.get(publication_id)
        if hit is not None:
            return hit
        row = self.publication(publication_id)
        scenario = self.load_scenario(int(row["scenario_id"]))
        base, result = run(self.load_frames(int(row["dataset_id"])), scenario)
        with self._recomputed_lock:
            while len(self._recomputed) >= 4:
                self._recomputed.pop(next(iter(self._recomputed)))
            self._recomputed[publication_id] = (scenario, base, result)
        return scenario, base, result

    def statement(self, publication_id: int, manager_id: str) -> dict:
        """One manager's statement as published: read from the rows frozen at publish.

        Read inside the caller's :func:`data.db.scoped` scope (row-level security on
        PostgreSQL); :class:`data.access.Access` checks who may read which manager first. A
        publication made before statements were frozen has no such rows: its statement is then
        recomputed from the frozen dataset and scenario with the current code, and says so in
        ``warnings`` (``frozen`` False).

        Parameters
        ----------
        publication_id : int
        manager_id : str

        Returns
        -------
        dict
            ``summary`` (one row: :data:`calc.columns.STATEMENT_SUMMARY`; ``pay_raw`` is the sum
            of the line pays, ``pay`` the frozen pay, i.e. ``pay_raw`` floored at 0 when the
            scenario floors), ``lines`` (line, contribution, factor, pay; yuan), ``customers``
            (:data:`calc.columns.STATEMENT_CUSTOMER`: the coefficient used and its source, the
            attributed amounts c x C per line and ``attributed`` = c x the customer's total,
            largest first), ``kpi`` (:data:`calc.columns.STATEMENT_KPI`, in the scenario's
            order), ``scenario`` (the publication's), ``period``, ``version``, ``frozen`` (bool),
            ``warnings`` (list of str).

        Raises
        ------
        ValueError
            No such publication, or the manager is not in it (or outside the reader's scope).
        """
        pub = self.publication(publication_id)
        scenario = self.load_scenario(int(pub["scenario_id"]))
        row = self.published_managers(publication_id, manager_id=manager_id)
        if row.empty:
            raise ValueError(f"manager {manager_id} is not in publication {pub['period']} v{int(pub['version'])}")
        parts = {}
        with read_tx(self.engine) as conn:
            for kind, (table, _keys) in _STATEMENT_TABLES.items():
                q = select(*[c for c in table.columns if c.name != "publication_id"]).where(and_(
                    table.c.publication_id == publication_id, table.c.manager_id == manager_id))
                parts[kind] = pd.DataFrame.from_records(conn.execute(q).all(), columns=list(q.selected_columns.keys()))
        frozen = len(parts["lines"]) > 0
        warnings = []
        if not frozen:
            _, _, result = self.recompute(publication_id)
            parts = _statement_of(_statement_frames(result, scenario), manager_id)
            warnings.append(NOT_FROZEN)
        parts = {k: _typed_statement(k, v) for k, v in parts.items()}
        lines = parts["lines"]
        lines = lines.assign(_o=lines["line"].map({x: i for i, x in enumerate(PAY_LINES)})).sort_values("_o")
        lines = lines[list(STATEMENT_LINE)].reset_index(drop=True)
        customers = parts["customers"].sort_values(["attributed", "customer_id"], ascending=[False, True],
                                                   kind="stable", na_position="last")
        customers = customers[list(STATEMENT_CUSTOMER)].reset_index(drop=True)
        order = {k.code: i for i, k in enumerate(scenario.kpi)}
        kpi = parts["kpi"]
        kpi = kpi.assign(_o=kpi["kpi"].map(order)).sort_values(["_o", "kpi"], kind="stable")
        kpi = kpi[["manager_id", *STATEMENT_KPI]].reset_index(drop=True)
        summary = row.drop(columns=["publication_id"]).reset_index(drop=True)
        pay_raw = 0
        for x in lines["pay"].to_numpy(dtype=np.float64):      # as the light stage adds them: line by line
            pay_raw = pay_raw + x
        summary["pay_raw"] = float(pay_raw)
        return {"summary": summary[list(STATEMENT_SUMMARY)], "lines": lines, "customers": customers, "kpi": kpi,
                "scenario": scenario, "period": pub["period"], "version": int(pub["version"]), "frozen": frozen,
                "warnings": warnings}

    def verify(self, publication_id: int, checked: dict | None = None) -> dict:
        """Recompute a publication from its stored dataset and scenario and compare with everything frozen.

        The document: the same when the recomputed canonical text has the stored hash, or else
        when both documents, parsed, are equal value for value: the same keys, text and integers
        equal, and every float equal as a float64, exactly (:func:`_same_numbers`). The second way
        exists only so that a release that writes floats differently does not make an old
        publication "differ"; a float off in its last bit differs. The stored text is also hashed
        again (``document_intact``: it still has the hash recorded at publish).

        The frozen rows: their SHA-256 against the one stored at publish (``rows_hash``:
        ``"same"``, ``"differ"``, or ``"absent"`` for a publication made before migration 8), and
        the manager and customer rows column by column against the recomputed result (exactly,
        or within rounding when the code changed), so a changed row is named even when the
        document reproduces. ``same`` also needs the frozen statement rows to equal those of the
        recomputed result (:meth:`_verify_statements`).

        The dataset's two stored copies are checked as well (:meth:`check_dataset`): its rows
        reconciled against its snapshots, and any snapshot that fails its hash or row count.

        Parameters
        ----------
        publication_id : int
        checked : dict, optional
            A cache of :meth:`check_dataset` results by dataset id, shared across calls (as when
            verifying every publication of a period, several of one dataset): a dataset found in
            it is not checked again, and one checked now is added to it.

        Returns
        -------
        dict
            ``stored_hash``, ``recomputed_hash``, ``same`` (bool), ``how`` (``"rounding"`` when the
            code changed since publication and every amount is within rounding, see
            :func:`_within_rounding`; else ``"hash"``, ``"numbers"`` or None when the document
            differs), ``document_intact`` (bool: the stored text has its stored hash),
            ``problems`` (when the document differs: which column of the frozen manager /
            customer rows differs, in how many rows, the first one), ``rows`` (``"same"``,
            ``"rounding"`` or ``"differ"``: the frozen manager and customer rows against the
            recomputation), ``row_problems``, ``rows_hash`` (``"same"``, ``"differ"`` or
            ``"absent"``), ``code_changed`` (bool), ``code_version`` (stored at publish) and
            ``code_now``, ``statements`` (``"same"``, ``"rounding"``, ``"differ"`` or ``"absent"``
            for a publication from before statements were frozen) and ``statement_problems``,
            ``dataset_consistent`` (bool), ``dataset_problems`` (list of str),
            ``snapshot_fallback`` (sheets loaded from their rows because their snapshot failed).
        """
        row = self.publication(publication_id)
        dataset_id = int(row["dataset_id"])
        dataset = None if checked is None else checked.get(dataset_id)
        if dataset is None:
            dataset = self.check_dataset(dataset_id)
            if checked is not None:
                checked[dataset_id] = dataset
        scenario, _, result = self.recompute(publication_id)
        h = document_sha256(result)
        how = "hash" if h == row["result_hash"] else None
        code_now = code_version()
        code_changed = row["code_version"] != code_now
        stored_text = self.published_document(publication_id)
        document_intact = hashlib.sha256(stored_text.encode("utf-8")).hexdigest() == row["result_hash"]
        if how is None:
            stored, now = json.loads(stored_text), json.loads(document_bytes(result))
            if _same_numbers(stored, now):
                how = "numbers"
            elif code_changed and _within_rounding(stored, now):
                how = "rounding"
        del stored_text
        with read_tx(self.engine) as conn:
            frozen = {kind: _read_frozen(conn, table, publication_id) for kind, (table, _k) in _FROZEN_ROWS.items()}
        stored_rows_hash = row.get("rows_hash")
        if stored_rows_hash is None or (isinstance(stored_rows_hash, float) and np.isnan(stored_rows_hash)):
            rows_hash = "absent"
        else:
            rows_hash = "same" if _frozen_rows_hash(frozen) == stored_rows_hash else "differ"
        rows, row_problems = "differ", []
        for exact in (True, False):             # within rounding only when the code changed since
            if not exact and not code_changed:
                break
            row_problems = [p for kind, table, key, frame in (
                ("managers", T.pub_managers, "manager_id", result.managers),
                ("customers", T.pub_customers, "customer_id", result.customers))
                for p in _compare_rows(table, frozen[f"result_{kind}"], _pub_rows(table, frame, publication_id),
                                       (key,), kind, tolerance=not exact)]
            if not row_problems:
                rows = "same" if exact else "rounding"
                break
        statements, statement_problems = self._verify_statements(publication_id, result, scenario, code_changed,
                                                                 frozen)
        problems = []
        if how is None:
            problems = row_problems or ["the stored document differs from the recomputed one, though its frozen "
                                        "manager and customer rows do not (the document was changed after "
                                        "publication)"]
        return {"stored_hash": row["result_hash"], "recomputed_hash": h,
                "same": (how is not None and statements != "differ" and rows != "differ" and rows_hash != "differ"),
                "how": how, "problems": problems, "document_intact": document_intact,
                "rows": rows, "row_problems": row_problems, "rows_hash": rows_hash,
                "code_changed": code_changed, "code_version": row["code_version"], "code_now": code_now,
                "statements": statements, "statement_problems": statement_problems,
                "dataset_consistent": dataset["consistent"], "dataset_problems": dataset["problems"],
                "snapshot_fallback": dataset["snapshot_fallback"]}

    def _verify_statements(self, publication_id: int, result, scenario: Scenario,
                           code_changed: bool, frozen: dict | None = None) -> tuple[str, list[str]]:
        """Compare a publication's frozen statement rows with those of its recomputed result.

        Parameters
        ----------
        frozen : dict, optional
            The frozen rows already read (by kind); read here otherwise.

        Returns
        -------
        tuple of (str, list of str)
            ``"same"`` (every value equal as float64), ``"rounding"`` (the code changed since
            publication and every amount is within rounding), ``"differ"`` or ``"absent"``
            (published before statements were frozen), and the differences found.
        """
        now = _statement_frames(result, scenario)
        if frozen is None:
            with read_tx(self.engine) as conn:
                frozen = {kind: _read_frozen(conn, table, publication_id)
                          for kind, (table, _keys) in _STATEMENT_TABLES.items()}
        if not frozen["lines"].num_rows and len(result.managers):
            return "absent", []
        for exact in (True, False):
            if not exact and not code_changed:
                break
            problems = [p for kind, (table, keys) in _STATEMENT_TABLES.items()
                        for p in _compare_rows(table, frozen[kind], now[kind], keys, f"statement {kind}",
                                               tolerance=not exact)]
            if not problems:
                return ("same" if exact else "rounding"), []
        return "differ", problems


_AUDIT_ACTOR = T.audit_log.c.actor.type.length       # audit texts are cut to their columns' sizes
_AUDIT_TARGET = T.audit_log.c.target.type.length


def _same_numbers(a, b) -> bool:
    """Parsed JSON documents equal value for value (see :meth:`Store.verify`).

    The same keys and list lengths, text, booleans, nulls and integers equal (of the same type),
    and numbers where either side is a float equal as float64, exactly: ``5`` and ``5.0`` are
    the same number written two ways, ``0.1`` and the float after it are not.
    """
    return a == b and _within_rounding(a, b, 0.0, 0.0)   # == at C speed; then True == 1 is refused


ROUNDING_YUAN = 1e-6        # absolute, yuan (or points): a hundredth of a fen
ROUNDING_REL = 1e-13        # relative, for bank-wide totals in the hundreds of billions


def _within_rounding(a, b, yuan: float = ROUNDING_YUAN, rel: float = ROUNDING_REL) -> bool:
    """Parsed documents equal but for float summation order: the same keys, list lengths, text,
    booleans and integers (ranks, grades, tiers), and every float within ``yuan`` or ``rel`` of
    the other. Only accepted when the calculation code changed since the publication (a release
    that adds in another order); with the same code, verify demands the bits. With both
    tolerances 0 every float must equal the other as a float64 (:func:`_same_numbers`).

    Parameters
    ----------
    a, b
        Parsed JSON documents.
    yuan : float, default ROUNDING_YUAN
        Absolute tolerance of a float (yuan, or points).
    rel : float, default ROUNDING_REL
        Relative tolerance of a float, of the larger magnitude of the two.

    Returns
    -------
    bool
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict):
            if not isinstance(y, dict) or x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if not isinstance(y, list) or len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, float) or isinstance(y, float):
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (x, y)):
                return False
            x, y = float(x), float(y)
            if abs(x - y) > max(yuan, rel * max(abs(x), abs(y))):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


_DTYPES = {"id": "str", "text": "str", "enum": "str"}

# The audit action of a snapshot that failed its check, and the snapshot columns the
# reconciliation of a stored dataset reads (:meth:`Store.check_dataset`).
_FALLBACK = "snapshot_fallback"
_CHECK_COLUMNS = {"accounts": ["customer_id", "line", "avg_balance"], "customers": ["customer_id", "branch"]}


def _rows_frame(conn, dataset_id: int, key: str) -> pd.DataFrame:
    """A stored sheet read from its rows (datasets without a snapshot), typed as ingest types it."""
    sheet = sheet_by_key(key)
    table = T.ds[key]
    cols = [c.key for c in sheet.columns]
    rows = conn.execute(select(table.c.excel_row, *[table.c[c] for c in cols])
                        .where(table.c.dataset_id == dataset_id).order_by(table.c.excel_row)).all()
    df = pd.DataFrame.from_records(rows, columns=["excel_row", *cols])
    out = pd.DataFrame({"_row": df["excel_row"].astype("int64")})
    for c in sheet.columns:
        s = df[c.key]
        if c.kind in _DTYPES:
            out[c.key] = pd.Series(s.to_numpy(dtype=object), dtype="str")
        elif c.kind == "bool":
            out[c.key] = s.fillna(False).astype(bool)
        elif c.kind == "date":
            out[c.key] = pd.to_datetime(s).astype("datetime64[ns]")
        else:
            out[c.key] = pd.to_numeric(s, errors="coerce").astype(float)
    out["_error"] = False
    return out


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of uploaded bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_path(path) -> str:
    """Hex SHA-256 of a file, or of a folder's files (names and contents, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.is_file():
                h.update(f.name.encode())
                h.update(f.read_bytes())
    else:
        h.update(p.read_bytes())
    return h.hexdigest()
