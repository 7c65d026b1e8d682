"""Numbered migrations: the tables the code uses are exactly what the migrations build, and a store
upgraded from any earlier version ends with the schema of a fresh one (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, text

from calc.scenario import Scenario
from data.db import FROZEN_TABLES, MIGRATIONS, ROW_SECURITY_TABLES, T, get_engine, metadata, migrate, row_security_enforced
from data.store import Store

LATEST = MIGRATIONS[-1][0]


def schema(engine) -> dict:
    """Everything SQLAlchemy's inspector says about every table, plus triggers and row-level security."""
    insp = inspect(engine)
    out = {}
    for t in sorted(insp.get_table_names()):
        out[t] = {
            "columns": [(c["name"], c["type"].compile(engine.dialect), c["nullable"]) for c in insp.get_columns(t)],
            "primary_key": insp.get_pk_constraint(t)["constrained_columns"],
            "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                                    tuple(sorted((f.get("options") or {}).items()))) for f in insp.get_foreign_keys(t)),
            "indexes": sorted((x["name"], tuple(x["column_names"]), bool(x["unique"])) for x in insp.get_indexes(t)),
            "unique": sorted(tuple(x["column_names"]) for x in insp.get_unique_constraints(t)),
        }
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            out["_triggers"] = sorted(r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            out["_triggers"] = sorted(r[0] for r in conn.exec_driver_sql(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
            out["_policies"] = sorted(tuple(r) for r in conn.exec_driver_sql(
                "SELECT tablename, policyname, qual FROM pg_policies"))
            out["_row_security"] = sorted(tuple(r) for r in conn.exec_driver_sql(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relrowsecurity"))
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request, tmp_path):
    """A factory of fresh, empty databases on one backend (their pooled connections closed after the test)."""
    from conftest import release_connections

    made = []
    if request.param == "sqlite":
        def new() -> str:
            made.append(f"sqlite:///{tmp_path / f'db{len(made)}.db'}")
            return made[-1]
    else:
        cluster = request.getfixturevalue("pg_cluster")

        def new() -> str:
            made.append(cluster.create_database())
            return made[-1]
    yield new
    release_connections(*made)


def tables_only(s: dict) -> dict:
    return {k: v for k, v in s.items() if not k.startswith("_")}


def test_the_migrations_build_exactly_the_tables_the_code_uses(new_url):
    """metadata (what the code reads and writes, the result columns from calc.columns) and the
    migrations (frozen descriptions of each change) agree: a table or column changed in the code
    without a migration fails here."""
    migrated = get_engine(new_url())
    assert migrate(migrated) == [v for v, _d, _f in MIGRATIONS]
    declared = get_engine(new_url())
    metadata.create_all(declared)
    assert tables_only(schema(migrated)) == tables_only(schema(declared))
    s = schema(migrated)
    if migrated.dialect.name == "postgresql":
        assert {p[0] for p in s["_policies"]} == set(ROW_SECURITY_TABLES)
        assert {r[0] for r in s["_row_security"] if r[1] and r[2]} == set(ROW_SECURITY_TABLES)
        assert row_security_enforced(migrated)
        assert s["_triggers"] == sorted(["audit_log_append_only", *[f"{t}_append_only" for t in FROZEN_TABLES],
                                         *[f"{t}_no_truncate" for t in FROZEN_TABLES]])
    else:
        assert s["_triggers"] == sorted(f"{t}_no_{verb}" for t in ("audit_log", *FROZEN_TABLES)
                                        for verb in ("delete", "update"))


def _rows_of_the_first_release(engine) -> None:
    """A dataset (with rows in every dataset table), a scenario, a publication with its frozen
    rows, a user and an audit row, written with the columns of migration 1 only."""
    now = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    sql = [
        ("INSERT INTO datasets (id, period, version, file_name, sha256, uploader, created_at, row_counts, rejected_rows) "
         "VALUES (1, '2026Q1', 1, 'old.xlsx', 'sha-old', 'alice', :now, '{}', 1)", {}),
        ("INSERT INTO ds_managers (dataset_id, excel_row, manager_id, name, branch, level) "
         "VALUES (1, 2, 'M1', 'Wang', 'B1', NULL)", {}),
        ("INSERT INTO ds_customers (dataset_id, excel_row, customer_id, name, branch, type, is_new) "
         "VALUES (1, 2, 'C1', 'Li', 'B1', 'corporate', :yes)", {"yes": True}),
        ("INSERT INTO ds_accounts (dataset_id, excel_row, account_id, customer_id, line, avg_balance) "
         "VALUES (1, 2, 'A1', 'C1', 'liability', 1000000.0)", {}),
        ("INSERT INTO ds_assignments (dataset_id, excel_row, customer_id, manager_id, role, coefficient) "
         "VALUES (1, 2, 'C1', 'M1', 'primary', NULL)", {}),
        ("INSERT INTO ds_daily_balances (dataset_id, excel_row, account_id, date, balance) "
         "VALUES (1, 2, 'A1', :day, 5.0)", {"day": dt.date(2026, 1, 1)}),
        ("INSERT INTO ds_targets (dataset_id, excel_row, manager_id, kpi, target) VALUES (1, 2, 'M1', 'deposit_avg', 1.0)",
         {}),
        ("INSERT INTO ds_kpis (dataset_id, excel_row, manager_id, kpi, value) VALUES (1, 2, 'M1', 'complaints', 2.0)", {}),
        ("INSERT INTO ds_quarantine (dataset_id, seq, sheet, excel_row, reason, row_values) "
         "VALUES (1, 0, 'accounts', 3, 'negative', '{}')", {}),
        ("INSERT INTO scenarios (id, name, version, author, created_at, toml) VALUES (1, 'old', 1, 'alice', :now, :toml)",
         {"toml": Scenario(name="old").to_toml()}),
        ("INSERT INTO publications (id, period, version, dataset_id, scenario_id, reason, published_by, published_at, "
         "inputs_hash, code_version, result_hash, result_json) VALUES (1, '2026Q1', 1, 1, 1, 'first publication', "
         "'alice', :now, 'i', 'old-code', 'h', '{}')", {}),
        ("INSERT INTO pub_managers (publication_id, manager_id, name, branch, asset, liability, intermediate, risk, total, "
         "deposit_avg, deposit_increase, loan_avg, pay, points_pay, score, grade, rank, branch_rank) VALUES "
         "(1, 'M1', 'Wang', 'B1', 0, 1, 0, 0, 1, 2, 3, 0, 0.05, 9, 50, 'manager', 1, 1)", {}),
        ("INSERT INTO pub_customers (publication_id, customer_id, name, branch, asset, liability, intermediate, risk, "
         "total, unattributed, tier, relationship_level) VALUES (1, 'C1', 'Li', 'B1', 0, 1, 0, 0, 1, 0, 'small', 2)", {}),
        ("INSERT INTO users (id, username, password_hash, role, active, failed_attempts, created_at) "
         "VALUES (1, 'boss', 'x', 'admin', :yes, 0, :now)", {"yes": True}),
        ("INSERT INTO audit_log (at, actor, action, target) VALUES (:now, 'alice', 'upload', 'dataset 2026Q1 v1')", {}),
    ]
    with engine.begin() as conn:
        for statement, params in sql:
            conn.execute(text(statement), {"now": now, **params})
        if engine.dialect.name == "postgresql":            # explicit ids: move the sequences on
            for table in ("datasets", "scenarios", "publications", "users"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)")


@pytest.mark.parametrize("start", [v for v, _d, _f in MIGRATIONS])
def test_a_store_upgraded_from_any_version_has_the_schema_of_a_fresh_one(new_url, start, tmp_path):
    """A database left at migration ``start`` (by then, a release as it shipped), holding rows of
    every table, upgrades in one step to exactly the schema a fresh database gets, keeps its rows,
    and works: an upload, a publication with frozen statements, verify."""
    old = get_engine(new_url())
    assert migrate(old, upto=start) == list(range(1, start + 1))
    _rows_of_the_first_release(old)
    assert migrate(old) == list(range(start + 1, LATEST + 1))
    fresh = get_engine(new_url())
    migrate(fresh)
    assert schema(old) == schema(fresh)
    with old.connect() as conn:
        for table in ("datasets", *(f"ds_{k}" for k in T.ds), "ds_quarantine", "publications", "pub_managers",
                      "pub_customers", "users", "audit_log"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 1, table
        assert conn.exec_driver_sql("SELECT liability FROM pub_managers").scalar() == 1.0
    if start > 1:
        return                                   # the store's own round trip once per backend is enough
    from factories import make_frames

    store = Store.open(str(old.url.render_as_string(hide_password=False)))
    frames = make_frames(managers=[{"manager_id": "M1"}], customers=[{"customer_id": "C1"}],
                         accounts=[{"account_id": "A1", "customer_id": "C1", "line": "intermediate",
                                    "fee_income": 1000.0}],
                         assignments=[{"customer_id": "C1", "manager_id": "M1"}])
    store.save_dataset("2026Q2", "new.xlsx", "sha-new", frames, "bob")
    pub = store.publish("2026Q2", Scenario(name="official"), "", "bob")
    assert store.statement(pub["id"], "M1")["frozen"]
    assert store.verify(pub["id"])["same"]


def test_migrations_apply_once_and_in_order(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'once.db'}")
    assert migrate(engine, upto=3) == [1, 2, 3]
    assert migrate(engine, upto=3) == []
    assert migrate(engine) == list(range(4, LATEST + 1))
    assert migrate(engine) == []
    assert [v for v, _d, _f in MIGRATIONS] == list(range(1, LATEST + 1))


def test_no_migration_reads_the_current_schema():
    """A migration names its own tables: the code's current ``metadata`` (which follows the code)
    must not reach an old store through a migration that ran before the change."""
    import ast
    import inspect as pyinspect

    import data.db as db

    current = {"metadata", "T", "DATASET_TABLES", "RESULT_COLUMNS", *[n for n in vars(db) if isinstance(getattr(db, n), type(db.datasets))]}
    for version, _d, fn in MIGRATIONS:
        tree = ast.parse(pyinspect.getsource(fn).lstrip())
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} & current
        assert not used, f"migration {version} reads the current schema: {sorted(used)}"


# ---------------------------------------------------------------------------------------------
# one declaration per concept: the result columns (calc.columns) and the account-level parameters
# (Scenario fields marked account_level)

def test_the_result_columns_are_declared_once():
    """The frozen tables, the DOMAIN 10 document and the report workbook take their columns and
    labels from calc.columns."""
    from calc import columns
    from calc.output import CUSTOMER_FIELDS, MANAGER_FIELDS
    from data import export

    def leaves(shape):
        for spec in shape.values():
            yield from (leaves(spec) if isinstance(spec, dict) else [spec[1]])

    assert [c.name for c in T.pub_managers.columns][1:] == list(columns.MANAGER_PUBLISHED)
    assert [c.name for c in T.pub_customers.columns][1:] == list(columns.CUSTOMER_PUBLISHED)
    assert list(leaves(MANAGER_FIELDS)) == list(columns.MANAGER_PUBLISHED)
    assert list(leaves(CUSTOMER_FIELDS)) == list(columns.CUSTOMER_DOCUMENT)
    assert export._MANAGER_COLS == list(columns.MANAGER_REPORT)
    assert export._CUSTOMER_COLS == list(columns.CUSTOMER_REPORT)
    for name, col in columns.COLUMNS.items():
        assert export.LABELS[name] == (col.zh, col.en), name
    for table, names in ((T.pub_statement_lines, columns.STATEMENT_LINE),
                         (T.pub_statement_customers, columns.STATEMENT_CUSTOMER),
                         (T.pub_statement_kpis, columns.STATEMENT_KPI)):
        assert [c.name for c in table.columns] == ["publication_id", "manager_id", names[0] if names[0] != "customer_id"
                                                   else "customer_id", "manager_branch",
                                                   *[n for n in names if n not in (names[0],)]], table.name


def _changed(value, name: str = ""):
    if name == "edits":                           # coefficient edits: one set
        return [{"action": "set", "customer_id": "C1", "manager_id": "M1", "coefficient": 0.5}]
    if isinstance(value, dict):                   # the last key: grade and tier bounds must go down
        k = list(value)[-1]
        return {k: value[k] / 2 + 0.0001}
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return "points" if value == "factor" else value + " x"
    if isinstance(value, tuple):                  # the KPI table
        from calc.scenario import balanced_kpis

        return [dict(code=k.code, perspective=k.perspective, weight=k.weight, kind=k.kind, cap=k.cap)
                for k in balanced_kpis()]
    return value / 2 + 1 if isinstance(value, int) else value / 2 + 0.0001


def test_the_account_key_is_made_of_the_account_level_fields_only():
    """Changing any field marked account_level changes the key; changing any other leaves it."""
    from dataclasses import fields

    base = Scenario()
    account = set(Scenario.account_fields())
    assert account == {"days", "day_basis", "tax_rate", "capital_ratio", "cost_of_capital", "risk_weight_default",
                       "unit_cost", "cost_rate"}
    for f in fields(Scenario):
        other = base.replace(**{f.name: _changed(getattr(base, f.name), f.name)})
        assert getattr(other, f.name) != getattr(base, f.name), f.name
        assert (other.account_key() != base.account_key()) == (f.name in account), f.name


def test_the_heavy_stage_reads_no_scenario_field_outside_the_account_key():
    """Every scenario field the heavy stage reads (building the Base, and an account's terms when a
    statement asks for them) is an account-level one, so a Base is never reused for a scenario it
    was not computed for."""
    from dataclasses import fields

    from calc.heavy import build_base
    from factories import make_frames

    names = {f.name for f in fields(Scenario)}
    reads: set[str] = set()

    class Recording(Scenario):
        def __getattribute__(self, name):
            if name in names:
                reads.add(name)
            return super().__getattribute__(name)

    scenario = Recording()
    reads.clear()                                  # construction validates every field
    frames = make_frames(
        managers=[{"manager_id": "M1"}], customers=[{"customer_id": "C1"}],
        accounts=[{"account_id": "A1", "customer_id": "C1", "line": "asset", "avg_balance": 1e6, "rate": 0.05,
                   "ftp_rate": 0.03, "provision": 10.0},
                  {"account_id": "A2", "customer_id": "C1", "line": "liability", "avg_balance": 2e6},
                  {"account_id": "A3", "customer_id": "C1", "line": "intermediate", "fee_income": 100.0}],
        assignments=[{"customer_id": "C1", "manager_id": "M1"}],
        daily=[{"account_id": "A2", "date": "2026-03-31", "balance": 5.0}])
    base = build_base(frames, scenario)
    base.accounts_of(["C1"])
    assert reads, "the recording scenario saw no read"
    assert reads <= set(Scenario.account_fields()), sorted(reads - set(Scenario.account_fields()))
