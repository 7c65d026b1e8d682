"""Database connection and schema: SQLite by default, PostgreSQL given a URL; migrations as code.

The URL comes from the environment variable ``JIXIAO_DATABASE_URL``, then ``database_url`` in
``.streamlit/secrets.toml``, then the embedded default ``sqlite:///var/jixiao.db`` under the
project. The same tables and SQL run on both (SQLAlchemy Core, no dialect-specific SQL except the
append-only triggers of the audit log, written once per dialect).

Concurrent work (docs/RULES.md, "Concurrent work"): readers never wait on a writer (SQLite in
WAL mode; PostgreSQL's snapshots), and opening a store takes no write lock unless a migration is
pending. Writers wait their turn, saying so once on standard error (:func:`set_wait_notice`):
on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time, threads
of one process first queue on a lock); on PostgreSQL a write that reads before it writes takes a
transaction-scoped advisory lock first (:data:`LOCKS`: the store's content, the accounts, the
migrations), so two loads or publishes of a period become consecutive versions, two
first-administrator forms one administrator, three processes starting on an empty database one
migration. A writer that waited longer than ``JIXIAO_WRITE_WAIT_SECONDS`` (default 3600) gives
up with :class:`StoreBusy`, having written nothing. PostgreSQL sessions end an idle transaction
after 10 minutes and notice a vanished client within seconds (``client_connection_check_interval``
on PostgreSQL 14 and later, TCP keepalives), so a killed process never holds a lock for long.

On PostgreSQL the published result rows (``pub_managers``, ``pub_customers`` and the frozen
statements ``pub_statement_*``) also carry row-level security as a second wall behind
:mod:`data.access`: inside :func:`scoped` every read transaction sets ``jixiao.branch`` /
``jixiao.manager`` and the database itself returns only the rows of that branch or manager, even
to a query that forgot its ``WHERE``. The policy binds only
roles without ``SUPERUSER`` or ``BYPASSRLS``, so the app must connect as an ordinary role that
owns its schema (see the README).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import (Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text, UniqueConstraint, create_engine, event, select, text)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from calc.columns import (COLUMNS as RESULT_COLUMNS, CUSTOMER_PUBLISHED, MANAGER_PUBLISHED, STATEMENT_CUSTOMER,
                          STATEMENT_KPI, STATEMENT_LINE)
from data.schema import SHEETS

__all__ = ["ROOT", "DEFAULT_URL", "database_url", "is_default_store", "get_engine", "metadata", "T", "migrate",
           "MIGRATIONS", "write_tx", "run_write", "read_tx", "DATASET_TABLES", "scoped", "row_security_enforced",
           "ROW_SECURITY_TABLES", "SNAPSHOT_PART_BYTES", "StoreBusy", "LOCKS", "set_wait_notice", "FROZEN_TABLES",
           "pending_migrations"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = f"sqlite:///{ROOT / 'var' / 'jixiao.db'}"

metadata = MetaData()
_TYPES = {"id": String(64), "text": String(200), "enum": String(20), "bool": Boolean, "date": Date,
          "money": Float, "rate": Float, "number": Float}


def _dataset_table(sheet) -> Table:
    """The table ``ds_<sheet>`` of a sheet's stored rows: ``dataset_id``, ``excel_row``, its columns.

    Why ``dataset_id`` has no foreign key to ``datasets`` (dropped by migration 4 on PostgreSQL
    and by migration 6 on SQLite, which must copy the table to drop one): PostgreSQL checks a
    foreign key by a trigger fired for every inserted row, which took ~60% of a 1M-row ``COPY``
    (6 s -> 2 s without it), SQLite probes a B-tree per row (~10% of an insert), and a bank
    stores millions of rows a period.

    What guards the same integrity instead (no dataset row without its ``datasets`` row, none
    left behind by a failed upload):

    - Only :meth:`data.store.Store.save_dataset` writes these tables, in the one transaction
      that inserts the ``datasets`` row and takes ``dataset_id`` from that insert; any failure
      rolls back the rows with it (all or nothing).
    - Before that transaction commits, its reconciliation counts the rows stored under the new
      id per table and compares their per-branch and per-line balances with the file's; a
      difference rolls the upload back (:class:`data.store.ReconciliationError`).
    - Datasets are never updated or deleted by the application; the parent side is held by the
      database too: ``ds_snapshots`` (written for every dataset in the same transaction),
      ``ds_quarantine`` and ``publications`` keep their foreign keys to ``datasets``, so the
      ``datasets`` row of any stored dataset cannot be deleted (RESTRICT) while they exist.
    - ``cli.py verify`` (:meth:`data.store.Store.check_dataset`) reruns the reconciliation on a
      stored dataset: its rows against its snapshots and its recorded row counts.
    - The primary key (``dataset_id``, ``excel_row``) keeps every row unique within its dataset.
    """
    cols = [Column("dataset_id", Integer, primary_key=True),
            Column("excel_row", Integer, primary_key=True)]
    for c in sheet.columns:
        cols.append(Column(c.key, _TYPES[c.kind], nullable=not (c.required and not c.allow_blank)))
    table = Table(f"ds_{sheet.key}", metadata, *cols)
    # One secondary index only: customers by id, which the reconciliation's join probes (without
    # it PostgreSQL may plan a scan of the customers per aggregated account: quadratic). Ids are
    # unique by validation and nothing else looks rows up by id; the index on random account
    # numbers made storing 1M accounts on SQLite ~2x slower (migration 4 drops it).
    if sheet.key in _INDEXED:
        Index(f"ix_ds_{sheet.key}_id", table.c.dataset_id, table.c[sheet.id_column])
    return table


_INDEXED = ("customers",)


datasets = Table(
    "datasets", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("period", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("file_name", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploader", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("row_counts", Text, nullable=False),          # JSON {sheet: rows stored}
    Column("rejected_rows", Integer, nullable=False, default=0),
    UniqueConstraint("period", "version", name="uq_datasets_period_version"),
    UniqueConstraint("period", "sha256", name="uq_datasets_period_sha"),
)

DATASET_TABLES: dict[str, Table] = {s.key: _dataset_table(s) for s in SHEETS}

quarantine = Table(
    "ds_quarantine", metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("sheet", String(100), nullable=False),
    Column("excel_row", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("row_values", Text, nullable=False),
)

# A columnar copy of each stored sheet, written in the upload's transaction: the typed frame as
# Parquet, cut into parts of at most SNAPSHOT_PART_BYTES (a SQLite BLOB holds at most 1e9 bytes,
# a PostgreSQL bytea 1 GiB). ``rows`` and ``sha256`` describe the whole sheet (every part repeats
# them). Loading a dataset back reads these instead of the rows (1M accounts: ~0.5 s instead of
# ~25 s); the ds_* rows stay the relational record that reconciliation compares with.
SNAPSHOT_PART_BYTES = 64 * 1024 * 1024
snapshots = Table(
    "ds_snapshots", metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="RESTRICT"), primary_key=True),
    Column("sheet", String(40), primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),     # of the sheet's whole Parquet file (all parts joined)
    Column("data", LargeBinary, nullable=False),
)

scenarios = Table(
    "scenarios", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("author", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("toml", Text, nullable=False),
    UniqueConstraint("name", "version", name="uq_scenarios_name_version"),
)

publications = Table(
    "publications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("period", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("scenario_id", Integer, ForeignKey("scenarios.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("published_by", String(100), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("inputs_hash", String(64), nullable=False),    # dataset sha + scenario TOML + code version
    Column("code_version", String(64), nullable=False),
    Column("result_hash", String(64), nullable=False),    # sha256 of result_json
    Column("result_json", Text, nullable=False),          # DOMAIN 10 document, frozen
    # sha256 of the frozen rows (pub_managers, pub_customers, pub_statement_*; migration 8):
    # data.store._frozen_rows_hash. NULL for publications made before migration 8.
    Column("rows_hash", String(64)),
    UniqueConstraint("period", "version", name="uq_publications_period_version"),
)

# The frozen result rows. Their columns are declared once in calc.columns (name and kind); a
# column's kind gives its type here: id String(64), text String(200) (may be NULL), code String(20)
# and int Integer (never NULL), float Float. Float columns may be NULL: a NaN of the result (a
# figure with no value) is stored as NULL on both databases and read back as NaN (migration 5
# relaxed the NOT NULL of stores created before). Changing a declaration changes these tables,
# and so needs a migration below (tests/test_migrations.py compares the two).
_KIND_TYPES = {"id": lambda: String(64), "text": lambda: String(200), "code": lambda: String(20), "float": Float,
               "int": Integer, "bool": Boolean}


def _result_column(name: str, *, primary_key: bool = False, index: bool = False) -> Column:
    """The stored column of a result column declared in :data:`calc.columns.COLUMNS`."""
    kind = RESULT_COLUMNS[name].kind
    return Column(name, _KIND_TYPES[kind](), primary_key=primary_key, index=index,
                  nullable=not primary_key and kind in ("text", "float", "bool"))


def _result_columns(names, key: str, indexed: tuple[str, ...] = ()) -> list[Column]:
    return [_result_column(n, primary_key=n == key, index=n in indexed) for n in names]


pub_managers = Table(
    "pub_managers", metadata,
    Column("publication_id", Integer, ForeignKey("publications.id"), primary_key=True),
    *_result_columns(MANAGER_PUBLISHED, "manager_id", indexed=("branch",)),
)
pub_customers = Table(
    "pub_customers", metadata,
    Column("publication_id", Integer, ForeignKey("publications.id"), primary_key=True),
    *_result_columns(CUSTOMER_PUBLISHED, "customer_id", indexed=("branch",)),
)

# A manager's statement frozen at publish (migration 7): one row per pay line, one per customer
# credited to the manager (the attributed amounts c x C per line), one per KPI of the scorecard.
# ``manager_branch`` is the manager's branch: the scope a branch head reads them by (row-level
# security on PostgreSQL; data.access everywhere). Account terms are not frozen (docs/RULES.md).
# No foreign key to publications, as the dataset rows have none: PostgreSQL checks one by a
# trigger per row, which doubled the insert of the ~290k customer rows of a 1M-account bank
# (+1.2 s). The rows are written only by Store.publish, in the transaction that inserts their
# publication row and takes publication_id from it, and publications are never updated or deleted.
def _statement_table(name: str, key: str, names: tuple[str, ...]) -> Table:
    return Table(
        name, metadata,
        Column("publication_id", Integer, primary_key=True),
        Column("manager_id", String(64), primary_key=True),
        _result_column(key, primary_key=True),
        Column("manager_branch", String(200)),
        *[_result_column(n) for n in names if n != key],
    )


pub_statement_lines = _statement_table("pub_statement_lines", "line", STATEMENT_LINE)
pub_statement_customers = _statement_table("pub_statement_customers", "customer_id", STATEMENT_CUSTOMER)
pub_statement_kpis = _statement_table("pub_statement_kpis", "kpi", STATEMENT_KPI)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("target", String(300), nullable=False),
    Column("before", Text), Column("after", Text),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(300)),               # None for single-sign-on-only users
    Column("role", String(20), nullable=False),
    Column("branch", String(200)),
    Column("manager_id", String(64)),
    Column("oidc_subject", String(300), unique=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

migrations = Table(
    "jixiao_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


class T:
    """Short names for the tables."""

    datasets = datasets
    quarantine = quarantine
    snapshots = snapshots
    scenarios = scenarios
    publications = publications
    pub_managers = pub_managers
    pub_customers = pub_customers
    pub_statement_lines = pub_statement_lines
    pub_statement_customers = pub_statement_customers
    pub_statement_kpis = pub_statement_kpis
    audit_log = audit_log
    users = users
    migrations = migrations
    ds = DATASET_TABLES


# ---------------------------------------------------------------------------------------------
# engine

def database_url() -> str:
    """The configured database URL (environment, then secrets.toml, then the SQLite default)."""
    url = os.environ.get("JIXIAO_DATABASE_URL")
    if url:
        return url
    from data.settings import secret

    return str(secret("database_url") or DEFAULT_URL)


def is_default_store(url) -> bool:
    """True when ``url`` (text or a SQLAlchemy URL) names the embedded default store
    (``var/jixiao.db`` under the project), the only one ``make run`` seeds with the sample bank."""
    from sqlalchemy.engine import make_url

    try:
        given = make_url(url) if isinstance(url, str) else url
    except Exception:  # noqa: BLE001 - not a URL at all: not the default either
        return False
    return given.render_as_string(hide_password=False) == make_url(DEFAULT_URL).render_as_string(hide_password=False)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_write_locks: dict[str, threading.Lock] = {}


class StoreBusy(RuntimeError):
    """Another process kept the store's write lock longer than this writer may wait
    (``JIXIAO_WRITE_WAIT_SECONDS``, default 3600); nothing was written. The message is safe to show."""


# What a PostgreSQL write serialises on: pg_advisory_xact_lock(_LOCK_CLASS, id), held until the
# transaction ends. ``content``: datasets, scenarios and publications (every load, scenario save
# and publish); ``users``: accounts (first administrator, lockout counts, changes); ``migrate``:
# the schema. SQLite has one writer at a time anyway (BEGIN IMMEDIATE).
LOCKS = {"content": 1, "users": 2, "migrate": 3}
_LOCK_CLASS = 0x4A58            # "JX"
_WAITING = {None: "another write to the store", "content": "another load or publish",
            "users": "another change to the user accounts", "migrate": "another process upgrading the database"}
_WAITING_ZH = {None: "另一个写入", "content": "另一个入库或发布", "users": "另一个账户变更", "migrate": "另一个进程升级数据库"}
_POLL_SECONDS = 0.2


def _stderr_notice(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


_notice = [_stderr_notice]


def set_wait_notice(fn) -> None:
    """Where a writer that must wait says so (once per wait): ``fn(message)``; standard error by default."""
    _notice[0] = fn or _stderr_notice


def _wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("JIXIAO_WRITE_WAIT_SECONDS", "3600")))
    except ValueError:
        return 3600.0


def _wait_turn(try_once, lock: str | None) -> None:
    """Call ``try_once()`` until it returns True, telling the user once that we wait.

    Raises
    ------
    StoreBusy
        When the wait exceeds ``JIXIAO_WRITE_WAIT_SECONDS``.
    """
    if try_once():
        return
    what, what_zh = _WAITING.get(lock, _WAITING[None]), _WAITING_ZH.get(lock, _WAITING_ZH[None])
    _notice[0](f"waiting for {what} to finish… / 正在等待{what_zh}完成…")
    limit = _wait_seconds()
    deadline = time.monotonic() + limit
    while not try_once():
        if time.monotonic() >= deadline:
            raise StoreBusy(f"{what} is still running after {limit:.0f} s; nothing was written, try again later / "
                            f"{what_zh}仍在进行（已等待 {limit:.0f} 秒），未写入任何内容，请稍后重试")
        time.sleep(_POLL_SECONDS)


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (creating the SQLite file's folder when needed)."""
    url = url or database_url()
    with _engines_lock:
        if url in _engines:
            return _engines[url]
        if url.startswith("postgresql://"):
            url_used = "postgresql+psycopg://" + url[len("postgresql://"):]
        else:
            url_used = url
        if url_used.startswith("sqlite:///") and url_used != "sqlite:///:memory:":
            Path(url_used[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url_used, connect_args={"timeout": 60, "check_same_thread": False})
            _sqlite_setup(engine)
        elif url_used.startswith("postgresql"):
            # Client-side TCP keepalives: a server that vanished is noticed within ~1 min.
            engine = create_engine(url_used, pool_pre_ping=True, connect_args={
                "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3})
            _postgresql_setup(engine)
        else:
            engine = create_engine(url_used, pool_pre_ping=True)
        _engines[url] = engine
        return engine


# Session settings of every PostgreSQL connection: a transaction left idle (a client stuck or
# gone between statements) is ended after 10 minutes, a vanished client host is noticed by
# server-side TCP keepalives, and (PostgreSQL 14+) a statement still running for a client that
# was killed is cancelled within 2 seconds instead of holding its locks until it ends.
_PG_SETTINGS = (("idle_in_transaction_session_timeout", "600000"), ("tcp_keepalives_idle", "30"),
                ("tcp_keepalives_interval", "10"), ("tcp_keepalives_count", "3"))
_PG14_SETTINGS = (("client_connection_check_interval", "2000"),)


def _postgresql_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        settings = _PG_SETTINGS
        if getattr(getattr(dbapi_conn, "info", None), "server_version", 0) >= 140000:
            settings += _PG14_SETTINGS
        with dbapi_conn.cursor() as cur:
            for name, value in settings:
                cur.execute("SELECT set_config(%s, %s, false)", (name, value))
        dbapi_conn.commit()


STAGE_FILES = "jixiao_stage_files"    # connection info key: staging files attached (data.store)


def _drop_stages(dbapi_conn, record) -> None:
    """Detach the staging files a bulk write attached (``data.store._staged_insert``) and delete
    those it wrote in the transaction (a file written before it, ``data.store.Prestaged``, is
    deleted by its writer); run when the connection goes back to the pool, after the transaction."""
    stages = record.info.pop(STAGE_FILES, None) if record is not None else None
    for alias, path in stages or ():
        if dbapi_conn is not None:
            try:
                dbapi_conn.execute(f"DETACH DATABASE {alias}")
            except sqlite3.Error:
                pass                           # never attached (the staging write failed first)
        for p in (path, path + "-journal") if path else ():    # None: its writer deletes it
            try:
                os.unlink(p)
            except OSError:
                pass


def _sqlite_setup(engine: Engine) -> None:
    event.listen(engine, "checkin", _drop_stages)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None          # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        if not conn.get_execution_options().get("jixiao_write", False):
            conn.exec_driver_sql("BEGIN")
            return
        raw = conn.connection.dbapi_connection

        def try_once() -> bool:
            # A short busy wait per attempt, so that the wait loop can tell the user and give up.
            raw.execute(f"PRAGMA busy_timeout={int(_POLL_SECONDS * 1000)}")
            try:
                raw.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as e:
                if "locked" in str(e).lower() or "busy" in str(e).lower():
                    return False
                raise
            finally:
                raw.execute("PRAGMA busy_timeout=60000")

        _wait_turn(try_once, conn.get_execution_options().get("jixiao_lock"))


@contextmanager
def write_tx(engine: Engine, lock: str | None = None):
    """A write transaction: all or nothing, and this writer's turn.

    SQLite: threads of this process queue on a lock, then ``BEGIN IMMEDIATE`` waits for any other
    process's write. PostgreSQL: with ``lock`` (a key of :data:`LOCKS`) the transaction first takes
    that advisory lock (released when it ends), so writers that read before they write (next
    version numbers, counts) see each other's commits. Either way a wait is announced once
    (:func:`set_wait_notice`) and given up after ``JIXIAO_WRITE_WAIT_SECONDS``.

    Yields a connection inside a transaction; an exception rolls everything back.

    Raises
    ------
    StoreBusy
        The wait for the lock took too long; nothing was written.
    """
    key = str(engine.url)
    with _engines_lock:
        thread_lock = _write_locks.setdefault(key, threading.Lock())
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        _wait_turn(lambda: thread_lock.acquire(timeout=_POLL_SECONDS), lock)
    try:
        with engine.connect().execution_options(jixiao_write=True, jixiao_lock=lock) as conn:
            with conn.begin():
                if lock is not None and engine.dialect.name == "postgresql":
                    take = text("SELECT pg_try_advisory_xact_lock(:c, :o)").bindparams(c=_LOCK_CLASS, o=LOCKS[lock])
                    _wait_turn(lambda: bool(conn.execute(take).scalar()), lock)
                yield conn
    finally:
        if sqlite:
            thread_lock.release()


def run_write(engine: Engine, fn, retries: int = 5, lock: str | None = None):
    """Run ``fn(conn)`` in :func:`write_tx` (holding ``lock``), retrying the whole transaction
    when the database reports a transient conflict (busy, serialisation failure, deadlock)."""
    for attempt in range(retries):
        try:
            with write_tx(engine, lock) as conn:
                return fn(conn)
        except OperationalError as e:
            busy = any(w in str(e).lower() for w in ("locked", "busy", "could not serialize", "deadlock"))
            if not busy or attempt == retries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


_SCOPE: ContextVar[tuple[str, str] | None] = ContextVar("jixiao_scope", default=None)


@contextmanager
def scoped(branch: str | None = None, manager_id: str | None = None):
    """Reads inside this block are limited by the database to one branch or one manager (PostgreSQL).

    With neither given (admins, analysts) nothing is limited. On SQLite this is a no-op: the
    filter in :mod:`data.access` is then the only wall.
    """
    if branch is None and manager_id is None:
        yield
        return
    token = _SCOPE.set((branch or "", manager_id or ""))
    try:
        yield
    finally:
        _SCOPE.reset(token)


@contextmanager
def read_tx(engine: Engine):
    """A read-only transaction (a consistent snapshot), limited to the current :func:`scoped` scope."""
    with engine.connect() as conn:
        with conn.begin():
            scope = _SCOPE.get()
            if scope is not None and engine.dialect.name == "postgresql":
                conn.execute(text("SELECT set_config('jixiao.branch', :b, true), set_config('jixiao.manager', :m, true)"),
                             {"b": scope[0], "m": scope[1]})
            yield conn


def row_security_enforced(engine: Engine) -> bool:
    """True on PostgreSQL when the connected role is bound by the row-level security policies."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        su, bypass = conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        forced = conn.execute(text("SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class "
                                   f"WHERE relname IN ({', '.join(repr(t) for t in _POLICIES)})")).scalar()
    return bool(forced) and not su and not bypass


# ---------------------------------------------------------------------------------------------
# migrations: each is (version, description, function(conn, dialect)); applied in order, once.
#
# Every migration is a frozen description of its own change: it names its tables and columns
# explicitly and never reads the current ``metadata`` above (which follows the code), so a table
# changed in a later release reaches existing and fresh databases alike through the migration
# that changes it. A fresh database runs them all, in order. Never edit a migration that has
# shipped; add the next one. tests/test_migrations.py checks that the migrations build exactly
# the tables of ``metadata`` and that a store upgraded from any earlier version ends the same.

def _v1_dataset_tables(meta: MetaData, foreign_keys: bool = True) -> dict[str, Table]:
    """The dataset tables ``ds_<sheet>`` as migration 1 created them (frozen)."""

    def ds(key: str, *cols: Column, indexed: str | None = None) -> Table:
        dataset_id = (Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="RESTRICT"), primary_key=True)
                      if foreign_keys else Column("dataset_id", Integer, primary_key=True))
        table = Table(f"ds_{key}", meta, dataset_id, Column("excel_row", Integer, primary_key=True), *cols)
        if indexed:
            Index(f"ix_ds_{key}_id", table.c.dataset_id, table.c[indexed])
        return table

    def money(*names: str, nullable: bool = True) -> list[Column]:
        return [Column(n, Float, nullable=nullable) for n in names]

    return {t.name: t for t in (
        ds("managers", Column("manager_id", String(64), nullable=False), Column("name", String(200), nullable=False),
           Column("branch", String(200), nullable=False), Column("level", String(200)), indexed="manager_id"),
        ds("customers", Column("customer_id", String(64), nullable=False), Column("name", String(200), nullable=False),
           Column("branch", String(200), nullable=False), Column("type", String(20)), Column("is_new", Boolean),
           indexed="customer_id"),
        ds("accounts", Column("account_id", String(64), nullable=False),
           Column("customer_id", String(64), nullable=False),
           Column("line", String(20), nullable=False), Column("product", String(200)),
           *money("avg_balance", "base_avg_balance", "rate", "ftp_rate", "fee_income", "provision", "recovery",
                  "risk_weight"),
           Column("classification", String(20)), indexed="account_id"),
        ds("assignments", Column("customer_id", String(64), nullable=False),
           Column("manager_id", String(64), nullable=False),
           Column("role", String(20), nullable=False), Column("coefficient", Float)),
        ds("daily_balances", Column("account_id", String(64), nullable=False), Column("date", Date, nullable=False),
           Column("balance", Float, nullable=False)),
        ds("targets", Column("manager_id", String(64), nullable=False), Column("kpi", String(200), nullable=False),
           Column("target", Float)),
        ds("kpis", Column("manager_id", String(64), nullable=False), Column("kpi", String(200), nullable=False),
           Column("value", Float)),
    )}


_V1_DATASET_TABLES = ("ds_managers", "ds_customers", "ds_accounts", "ds_assignments", "ds_daily_balances",
                      "ds_targets", "ds_kpis")
_V1_LINES = ("asset", "liability", "intermediate", "risk", "total")


def _v1_result_tables(meta: MetaData, nullable_floats: bool = False) -> dict[str, Table]:
    """``pub_managers`` and ``pub_customers`` as migration 1 created them (frozen); with
    ``nullable_floats`` as migration 5 left them."""
    def floats(*names: str) -> list[Column]:
        return [Column(x, Float, nullable=nullable_floats) for x in names]

    managers = Table(
        "pub_managers", meta,
        Column("publication_id", Integer, ForeignKey("publications.id"), primary_key=True),
        Column("manager_id", String(64), primary_key=True),
        Column("name", String(200)), Column("branch", String(200), index=True),
        *floats(*_V1_LINES, "deposit_avg", "deposit_increase", "loan_avg", "pay", "points_pay", "score"),
        Column("grade", String(20), nullable=False),
        Column("rank", Integer, nullable=False), Column("branch_rank", Integer, nullable=False),
    )
    customers = Table(
        "pub_customers", meta,
        Column("publication_id", Integer, ForeignKey("publications.id"), primary_key=True),
        Column("customer_id", String(64), primary_key=True),
        Column("name", String(200)), Column("branch", String(200), index=True),
        *floats(*_V1_LINES, "unattributed"),
        Column("tier", String(20), nullable=False), Column("relationship_level", Integer, nullable=False),
    )
    return {"pub_managers": managers, "pub_customers": customers}


def _v1_tables(meta: MetaData) -> None:
    """Every table of migration 1 (the first release), frozen."""
    Table("datasets", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("period", String(20), nullable=False),
          Column("version", Integer, nullable=False),
          Column("file_name", String(500), nullable=False),
          Column("sha256", String(64), nullable=False),
          Column("uploader", String(100), nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False),
          Column("row_counts", Text, nullable=False),
          Column("rejected_rows", Integer, nullable=False),
          UniqueConstraint("period", "version", name="uq_datasets_period_version"),
          UniqueConstraint("period", "sha256", name="uq_datasets_period_sha"))
    _v1_dataset_tables(meta)
    Table("ds_quarantine", meta,
          Column("dataset_id", Integer, ForeignKey("datasets.id"), primary_key=True),
          Column("seq", Integer, primary_key=True),
          Column("sheet", String(100), nullable=False),
          Column("excel_row", Integer, nullable=False),
          Column("reason", Text, nullable=False),
          Column("row_values", Text, nullable=False))
    Table("scenarios", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("name", String(200), nullable=False),
          Column("version", Integer, nullable=False),
          Column("author", String(100), nullable=False),
          Column("created_at", DateTime(timezone=True), nullable=False),
          Column("toml", Text, nullable=False),
          UniqueConstraint("name", "version", name="uq_scenarios_name_version"))
    Table("publications", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("period", String(20), nullable=False),
          Column("version", Integer, nullable=False),
          Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
          Column("scenario_id", Integer, ForeignKey("scenarios.id"), nullable=False),
          Column("reason", Text, nullable=False),
          Column("published_by", String(100), nullable=False),
          Column("published_at", DateTime(timezone=True), nullable=False),
          Column("inputs_hash", String(64), nullable=False),
          Column("code_version", String(64), nullable=False),
          Column("result_hash", String(64), nullable=False),
          Column("result_json", Text, nullable=False),
          UniqueConstraint("period", "version", name="uq_publications_period_version"))
    _v1_result_tables(meta)
    Table("audit_log", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("at", DateTime(timezone=True), nullable=False),
          Column("actor", String(100), nullable=False),
          Column("action", String(50), nullable=False),
          Column("target", String(300), nullable=False),
          Column("before", Text), Column("after", Text))
    Table("users", meta,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("username", String(100), nullable=False, unique=True),
          Column("password_hash", String(300)),
          Column("role", String(20), nullable=False),
          Column("branch", String(200)),
          Column("manager_id", String(64)),
          Column("oidc_subject", String(300), unique=True),
          Column("active", Boolean, nullable=False),
          Column("failed_attempts", Integer, nullable=False),
          Column("locked_until", DateTime(timezone=True)),
          Column("created_at", DateTime(timezone=True), nullable=False))


def _m1_initial(conn, dialect: str) -> None:
    meta = MetaData()
    _v1_tables(meta)
    meta.create_all(conn)
    if dialect == "sqlite":
        conn.exec_driver_sql("CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
                             "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")
        conn.exec_driver_sql("CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
                             "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")
    elif dialect == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION jixiao_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$")
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        conn.exec_driver_sql("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                             "FOR EACH ROW EXECUTE FUNCTION jixiao_append_only()")


# Unset or empty settings mean "not scoped" (admins, analysts, the publisher writing rows).
_UNSCOPED = ("coalesce(current_setting('jixiao.branch', true), '') = '' "
             "AND coalesce(current_setting('jixiao.manager', true), '') = ''")
_M2_POLICIES = {
    "pub_managers": f"{_UNSCOPED} OR branch = current_setting('jixiao.branch', true) "
                    "OR manager_id = current_setting('jixiao.manager', true)",
    "pub_customers": f"{_UNSCOPED} OR branch = current_setting('jixiao.branch', true)",   # a manager: none
}
# A statement's rows: a branch head reads those of their branch's managers (their customers may
# be booked elsewhere), a manager their own.
_M7_POLICY = (f"{_UNSCOPED} OR manager_branch = current_setting('jixiao.branch', true) "
              "OR manager_id = current_setting('jixiao.manager', true)")
_M7_TABLES = ("pub_statement_lines", "pub_statement_customers", "pub_statement_kpis")
_POLICIES = {**_M2_POLICIES, **dict.fromkeys(_M7_TABLES, _M7_POLICY)}
ROW_SECURITY_TABLES = tuple(_POLICIES)


def _row_security(conn, policies: dict) -> None:
    for table, using in policies.items():
        conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")      # the owner too
        conn.exec_driver_sql(f"DROP POLICY IF EXISTS jixiao_scope ON {table}")
        conn.exec_driver_sql(f"CREATE POLICY jixiao_scope ON {table} USING ({using})")


def _m2_row_security(conn, dialect: str) -> None:
    if dialect == "postgresql":
        _row_security(conn, _M2_POLICIES)


def _m3_snapshots(conn, dialect: str) -> None:
    meta = MetaData()
    Table("datasets", meta, Column("id", Integer, primary_key=True))      # what the foreign key names
    snapshots_v3 = Table(
        "ds_snapshots", meta,
        Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="RESTRICT"), primary_key=True),
        Column("sheet", String(40), primary_key=True),
        Column("part", Integer, primary_key=True),
        Column("rows", Integer, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("data", LargeBinary, nullable=False),
    )
    # A store created by the releases whose migration 1 was metadata.create_all may have it already.
    snapshots_v3.create(conn, checkfirst=True)


def _m4_bulk_friendly_dataset_rows(conn, dialect: str) -> None:
    # Releases up to migration 3 indexed (dataset_id, id column) of managers, customers and
    # accounts and gave every dataset row a foreign key to datasets; only the customers' index is
    # read (by the reconciliation), the bulk insert paid for the rest on every row. SQLite cannot
    # drop a foreign key without rebuilding the table: migration 6 does that.
    from sqlalchemy import inspect

    for key in ("managers", "accounts"):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_ds_{key}_id")
    if dialect != "postgresql":
        return
    insp = inspect(conn)
    for table in _V1_DATASET_TABLES:
        for fk in insp.get_foreign_keys(table):
            if fk.get("name"):
                conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{fk["name"]}"')
    # Snapshot parts are Parquet already: stored out of line without TOAST's pglz pass (~2 s for
    # the 57 MB of 1M accounts, on write and again on read).
    conn.exec_driver_sql("ALTER TABLE ds_snapshots ALTER COLUMN data SET STORAGE EXTERNAL")


def _sqlite_rebuild(conn, new: Table) -> None:
    """Replace the SQLite table named ``new.name`` by ``new`` (the same columns), copying its rows
    in their order, then create ``new``'s indexes (SQLite alters neither keys nor NOT NULL in place)."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    scratch = MetaData()
    for fk in new.foreign_keys:                        # what the keys name
        if fk.column.table.key not in scratch.tables:
            fk.column.table.to_metadata(scratch)
    staged = new.to_metadata(scratch, name=f"_new_{new.name}")
    for ix in list(staged.indexes):
        staged.indexes.discard(ix)
    conn.execute(CreateTable(staged))
    cols = ", ".join(f'"{c.name}"' for c in new.columns)
    conn.exec_driver_sql(f'INSERT INTO "{staged.name}" ({cols}) SELECT {cols} FROM "{new.name}"')
    conn.exec_driver_sql(f'DROP TABLE "{new.name}"')
    conn.exec_driver_sql(f'ALTER TABLE "{staged.name}" RENAME TO "{new.name}"')
    for ix in new.indexes:
        conn.execute(CreateIndex(ix))


def _m5_nullable_result_floats(conn, dialect: str) -> None:
    # The float columns of pub_managers / pub_customers were NOT NULL, so a NaN in a result failed
    # the publish on SQLite (NULL) and was stored as a float NaN on PostgreSQL (COPY reads "nan").
    # PostgreSQL drops the constraint in place; SQLite cannot, so its two tables are rebuilt
    # (one copy of the published rows, once) with the same columns, index names and row order.
    from sqlalchemy import inspect

    meta = MetaData()
    Table("publications", meta, Column("id", Integer, primary_key=True))   # what the foreign keys name
    for name, table in _v1_result_tables(meta, nullable_floats=True).items():
        floats = [c.name for c in table.columns if isinstance(c.type, Float)]
        if all(col["nullable"] for col in inspect(conn).get_columns(name) if col["name"] in floats):
            continue                                   # created by a release whose migration 1 had them nullable
        if dialect == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE {name} "
                                 + ", ".join(f'ALTER COLUMN "{c}" DROP NOT NULL' for c in floats))
        else:
            _sqlite_rebuild(conn, table)


def _m6_dataset_rows_without_keys_on_sqlite(conn, dialect: str) -> None:
    # Migration 4 on SQLite: the dataset tables lose the per-row foreign key to datasets (a B-tree
    # probe per inserted row, ~10% of a bulk insert), which SQLite can drop only by rebuilding the
    # table: each one that still has it is copied once (a fresh database: empty tables).
    if dialect != "sqlite":
        return
    from sqlalchemy import inspect

    insp = inspect(conn)
    meta = MetaData()
    for name, table in _v1_dataset_tables(meta, foreign_keys=False).items():
        if not insp.get_foreign_keys(name):
            continue
        for ix in list(table.indexes):
            if ix.name != "ix_ds_customers_id":          # migration 4 dropped the others
                table.indexes.discard(ix)
        _sqlite_rebuild(conn, table)


def _m7_frozen_statements(conn, dialect: str) -> None:
    # Each manager's statement frozen at publish: per pay line the attributed contribution, the
    # pay-link factor and the pay; per customer credited the coefficient used, its source and the
    # attributed amounts; per KPI the scorecard row. Publications made before have none (their
    # statements are recomputed, with a warning).
    meta = MetaData()

    def statement(name: str, key: Column, *cols: Column) -> Table:
        return Table(name, meta,
                     Column("publication_id", Integer, primary_key=True),        # no per-row key check
                     Column("manager_id", String(64), primary_key=True), key,
                     Column("manager_branch", String(200)), *cols)

    tables = [
        statement("pub_statement_lines", Column("line", String(20), primary_key=True),
                  Column("contribution", Float), Column("factor", Float), Column("pay", Float)),
        statement("pub_statement_customers", Column("customer_id", String(64), primary_key=True),
                  Column("name", String(200)), Column("branch", String(200)),
                  Column("role", String(20), nullable=False), Column("coefficient_used", Float),
                  Column("coefficient_source", String(20), nullable=False),
                  *[Column(x, Float) for x in ("asset", "liability", "intermediate", "risk", "attributed")]),
        statement("pub_statement_kpis", Column("kpi", String(64), primary_key=True),
                  Column("perspective", String(20), nullable=False), Column("kind", String(20), nullable=False),
                  *[Column(x, Float) for x in ("weight", "cap", "actual", "target")],
                  Column("target_source", String(20), nullable=False), Column("points", Float)),
    ]
    for table in tables:
        table.create(conn)
    if dialect == "postgresql":
        _row_security(conn, dict.fromkeys(_M7_TABLES, _M7_POLICY))


# The frozen tables (migration 8): written once by the publish transaction, never updated or
# deleted; triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), as for the audit log.
# A later migration that rebuilds one of them (SQLite's copy-and-rename) must create its triggers again.
FROZEN_TABLES = ("publications", "pub_managers", "pub_customers", "pub_statement_lines", "pub_statement_customers",
                 "pub_statement_kpis")


def _m8_frozen_rows_hash_and_append_only(conn, dialect: str) -> None:
    # publications.rows_hash: the SHA-256 of the publication's frozen rows, written at publish and
    # checked by verify (NULL for earlier publications: their rows are checked against the
    # recomputed document). Frozen tables become append-only, as the audit log is.
    conn.exec_driver_sql("ALTER TABLE publications ADD COLUMN rows_hash VARCHAR(64)")
    if dialect == "sqlite":
        for table in FROZEN_TABLES:
            for event_, verb in (("UPDATE", "update"), ("DELETE", "delete")):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {event_} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only (frozen at publish)'); END")
    elif dialect == "postgresql":
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION jixiao_frozen() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '%% is append-only (frozen at publish)', TG_TABLE_NAME; END $$")
        for table in FROZEN_TABLES:
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION jixiao_frozen()")
            conn.exec_driver_sql(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION jixiao_frozen()")


MIGRATIONS = [(1, "initial schema", _m1_initial), (2, "row-level security on published rows", _m2_row_security),
              (3, "columnar snapshots of stored datasets", _m3_snapshots),
              (4, "dataset rows without per-row index and key upkeep", _m4_bulk_friendly_dataset_rows),
              (5, "NULL (not NaN) for missing result floats", _m5_nullable_result_floats),
              (6, "dataset rows without per-row foreign key on SQLite", _m6_dataset_rows_without_keys_on_sqlite),
              (7, "statements frozen at publish", _m7_frozen_statements),
              (8, "hash of the frozen rows; frozen tables append-only", _m8_frozen_rows_hash_and_append_only)]


def pending_migrations(engine: Engine, upto: int | None = None) -> list[int]:
    """The migration versions not yet applied (up to ``upto``), read without taking a write lock."""
    from sqlalchemy import inspect

    with read_tx(engine) as conn:
        if not inspect(conn).has_table(migrations.name):
            done = set()
        else:
            done = {r[0] for r in conn.execute(select(migrations.c.version))}
    return [v for v, _d, _f in MIGRATIONS if v not in done and (upto is None or v <= upto)]


def migrate(engine: Engine, upto: int | None = None) -> list[int]:
    """Apply pending migrations (all, or those up to version ``upto``); return the versions applied.

    A store that is up to date is only read (no write lock: opening a store while a load runs
    does not wait). Otherwise all pending migrations run in one transaction, holding the
    ``migrate`` lock (PostgreSQL) or the write lock (SQLite): a failure leaves the database as it
    was, and processes starting together on an empty database migrate it once; the others wait,
    then find nothing to do.
    """
    import datetime as dt

    if not pending_migrations(engine, upto):
        return []
    applied = []
    with write_tx(engine, lock="migrate") as conn:
        migrations.create(conn, checkfirst=True)
        done = {r[0] for r in conn.execute(select(migrations.c.version))}
        for version, _desc, fn in MIGRATIONS:
            if version in done or (upto is not None and version > upto):
                continue
            fn(conn, engine.dialect.name)
            conn.execute(migrations.insert().values(version=version, applied_at=dt.datetime.now(dt.timezone.utc)))
            applied.append(version)
    return applied
