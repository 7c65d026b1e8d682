"""Database connection and schema: SQLite by default, PostgreSQL given a URL; migrations as code.

The URL comes from the environment variable ``JIXIAO_DATABASE_URL``, then ``database_url`` in
``.streamlit/secrets.toml``, then the embedded default ``sqlite:///var/jixiao.db`` under the
project. The same tables and SQL run on both (SQLAlchemy Core, no dialect-specific SQL except the
append-only triggers of the audit log, written once per dialect).

SQLite is opened with WAL, foreign keys and a busy timeout; every write transaction starts with
``BEGIN IMMEDIATE`` and writers in one process are serialised by a lock, so concurrent uploads
and publishes wait their turn instead of failing with "database is locked".

On PostgreSQL the published result rows (``pub_managers``, ``pub_customers``) also carry
row-level security as a second wall behind :mod:`data.access`: inside :func:`scoped` every read
transaction sets ``jixiao.branch`` / ``jixiao.manager`` and the database itself returns only the
rows of that branch or manager, even to a query that forgot its ``WHERE``. The policy binds only
roles without ``SUPERUSER`` or ``BYPASSRLS``, so the app must connect as an ordinary role that
owns its schema (see the README).
"""

from __future__ import annotations

import os
import threading
import time
import tomllib
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import (Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text, UniqueConstraint, create_engine, event, select, text)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from calc.scenario import PAY_LINES
from data.schema import SHEETS

__all__ = ["ROOT", "database_url", "get_engine", "metadata", "T", "migrate", "write_tx", "run_write", "read_tx",
           "DATASET_TABLES", "scoped", "row_security_enforced", "SNAPSHOT_PART_BYTES"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = f"sqlite:///{ROOT / 'var' / 'jixiao.db'}"

metadata = MetaData()
_TYPES = {"id": String(64), "text": String(200), "enum": String(20), "bool": Boolean, "date": Date,
          "money": Float, "rate": Float, "number": Float}


def _dataset_table(sheet) -> Table:
    """The table ``ds_<sheet>`` of a sheet's stored rows: ``dataset_id``, ``excel_row``, its columns.

    Why ``dataset_id`` has no foreign key to ``datasets`` (on PostgreSQL; SQLite stores created
    before migration 4 keep theirs, since SQLite cannot drop one without copying the table):
    PostgreSQL checks a foreign key by a trigger fired for every inserted row, which took ~60%
    of a 1M-row ``COPY`` (6 s -> 2 s without it), and a bank stores millions of rows a period.

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
    UniqueConstraint("period", "version", name="uq_publications_period_version"),
)

# Float columns of the frozen result rows may be NULL: a NaN of the result (a figure with no
# value) is stored as NULL on both databases and read back as NaN (migration 5 relaxes the
# NOT NULL of stores created before).
_LINES = (*PAY_LINES, "total")
pub_managers = Table(
    "pub_managers", metadata,
    Column("publication_id", Integer, ForeignKey("publications.id"), primary_key=True),
    Column("manager_id", String(64), primary_key=True),
    Column("name", String(200)), Column("branch", String(200), index=True),
    *[Column(x, Float) for x in _LINES],
    *[Column(x, Float) for x in ("deposit_avg", "deposit_increase", "loan_avg", "pay", "points_pay", "score")],
    Column("grade", String(20), nullable=False),
    Column("rank", Integer, nullable=False), Column("branch_rank", Integer, nullable=False),
)
pub_customers = Table(
    "pub_customers", metadata,
    Column("publication_id", Integer, ForeignKey("publications.id"), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("name", String(200)), Column("branch", String(200), index=True),
    *[Column(x, Float) for x in _LINES],
    Column("unattributed", Float),
    Column("tier", String(20), nullable=False), Column("relationship_level", Integer, nullable=False),
)

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
    secrets = ROOT / ".streamlit" / "secrets.toml"
    if secrets.is_file():
        try:
            data = tomllib.loads(secrets.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f".streamlit/secrets.toml is not valid TOML: {e}") from None
        if data.get("database_url"):
            return str(data["database_url"])
    return DEFAULT_URL


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_write_locks: dict[str, threading.Lock] = {}


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
        else:
            engine = create_engine(url_used, pool_pre_ping=True)
        _engines[url] = engine
        return engine


def _sqlite_setup(engine: Engine) -> None:
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
        immediate = conn.get_execution_options().get("jixiao_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_tx(engine: Engine):
    """A write transaction: all or nothing; serialised per process and ``BEGIN IMMEDIATE`` on SQLite.

    Yields a connection inside a transaction; an exception rolls everything back.
    """
    key = str(engine.url)
    with _engines_lock:
        lock = _write_locks.setdefault(key, threading.Lock())
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        lock.acquire()
    try:
        with engine.connect().execution_options(jixiao_write=True) as conn:
            with conn.begin():
                yield conn
    finally:
        if sqlite:
            lock.release()


def run_write(engine: Engine, fn, retries: int = 5):
    """Run ``fn(conn)`` in :func:`write_tx`, retrying the whole transaction when the database is busy."""
    for attempt in range(retries):
        try:
            with write_tx(engine) as conn:
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
# migrations: each is (version, description, function(conn, dialect)); applied in order, once

def _m1_initial(conn, dialect: str) -> None:
    metadata.create_all(conn)
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
_POLICIES = {
    "pub_managers": f"{_UNSCOPED} OR branch = current_setting('jixiao.branch', true) "
                    "OR manager_id = current_setting('jixiao.manager', true)",
    "pub_customers": f"{_UNSCOPED} OR branch = current_setting('jixiao.branch', true)",   # a manager: none
}


def _m2_row_security(conn, dialect: str) -> None:
    if dialect != "postgresql":
        return
    for table, using in _POLICIES.items():
        conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")      # the owner too
        conn.exec_driver_sql(f"DROP POLICY IF EXISTS jixiao_scope ON {table}")
        conn.exec_driver_sql(f"CREATE POLICY jixiao_scope ON {table} USING ({using})")


def _m3_snapshots(conn, dialect: str) -> None:
    # A store created before this release has no ds_snapshots (a fresh one got it from migration
    # 1's create_all); its datasets load from their rows until stored again.
    snapshots.create(conn, checkfirst=True)


def _m4_bulk_friendly_dataset_rows(conn, dialect: str) -> None:
    # Releases up to migration 3 indexed (dataset_id, id column) of managers, customers and
    # accounts and gave every dataset row a foreign key to datasets; only the customers' index is
    # read (by the reconciliation), the bulk insert paid for the rest on every row. SQLite cannot
    # drop a foreign key without rebuilding the table (a copy of every stored row), so an older
    # SQLite store keeps its keys (a per-row B-tree probe there, ~10% of an insert).
    from sqlalchemy import inspect

    for sheet in SHEETS:
        if sheet.id_column and sheet.key not in _INDEXED:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_ds_{sheet.key}_id")
    if dialect != "postgresql":
        return
    insp = inspect(conn)
    for sheet in SHEETS:
        for fk in insp.get_foreign_keys(f"ds_{sheet.key}"):
            if fk.get("name"):
                conn.exec_driver_sql(f'ALTER TABLE "ds_{sheet.key}" DROP CONSTRAINT "{fk["name"]}"')
    # Snapshot parts are Parquet already: stored out of line without TOAST's pglz pass (~2 s for
    # the 57 MB of 1M accounts, on write and again on read).
    conn.exec_driver_sql("ALTER TABLE ds_snapshots ALTER COLUMN data SET STORAGE EXTERNAL")


def _m5_nullable_result_floats(conn, dialect: str) -> None:
    # The float columns of pub_managers / pub_customers were NOT NULL, so a NaN in a result failed
    # the publish on SQLite (NULL) and was stored as a float NaN on PostgreSQL (COPY reads "nan").
    # PostgreSQL drops the constraint in place; SQLite cannot, so its two tables are rebuilt
    # (one copy of the published rows, once) with the same columns, index names and row order.
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateIndex, CreateTable

    for table in (pub_managers, pub_customers):
        floats = [c.name for c in table.columns if isinstance(c.type, Float)]
        if all(col["nullable"] for col in inspect(conn).get_columns(table.name) if col["name"] in floats):
            continue                                   # created by this release's migration 1
        if dialect == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE {table.name} "
                                 + ", ".join(f'ALTER COLUMN "{c}" DROP NOT NULL' for c in floats))
            continue
        scratch = MetaData()
        publications.to_metadata(scratch)              # what the foreign key names
        new = table.to_metadata(scratch, name=f"_new_{table.name}")
        for ix in list(new.indexes):
            new.indexes.discard(ix)
        conn.execute(CreateTable(new))
        cols = ", ".join(f'"{c.name}"' for c in table.columns)
        conn.exec_driver_sql(f'INSERT INTO "{new.name}" ({cols}) SELECT {cols} FROM "{table.name}"')
        conn.exec_driver_sql(f'DROP TABLE "{table.name}"')
        conn.exec_driver_sql(f'ALTER TABLE "{new.name}" RENAME TO "{table.name}"')
        for ix in table.indexes:
            conn.execute(CreateIndex(ix))


MIGRATIONS = [(1, "initial schema", _m1_initial), (2, "row-level security on published rows", _m2_row_security),
              (3, "columnar snapshots of stored datasets", _m3_snapshots),
              (4, "dataset rows without per-row index and key upkeep", _m4_bulk_friendly_dataset_rows),
              (5, "NULL (not NaN) for missing result floats", _m5_nullable_result_floats)]


def migrate(engine: Engine) -> list[int]:
    """Apply pending migrations; return the versions applied."""
    import datetime as dt

    applied = []
    with write_tx(engine) as conn:
        migrations.create(conn, checkfirst=True)
        done = {r[0] for r in conn.execute(select(migrations.c.version))}
        for version, _desc, fn in MIGRATIONS:
            if version in done:
                continue
            fn(conn, engine.dialect.name)
            conn.execute(migrations.insert().values(version=version, applied_at=dt.datetime.now(dt.timezone.utc)))
            applied.append(version)
    return applied


