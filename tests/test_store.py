"""The store on SQLite and on a real PostgreSQL: versions, all-or-nothing, frozen publications, audit."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import and_, func, select, text

from calc.scenario import Scenario
from data.db import MIGRATIONS, T, migrate
from data.ingest import load_extract
from data.store import ReconciliationError, Store
from tests.test_ingest import BASE, write_book

SAMPLE = "data/sample/sample_bank.xlsx"


@pytest.fixture(scope="module")
def sample_frames():
    return load_extract(SAMPLE)[0].frames


@pytest.fixture
def small_frames(tmp_path):
    return load_extract(write_book(tmp_path / "b.xlsx", BASE))[0].frames


def count(store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_round_trip_is_exact(store_url, sample_frames):
    store = Store.open(store_url)
    info = store.save_dataset("2026Q3", "sample_bank.xlsx", "sha-1", sample_frames, "alice")
    loaded = store.load_frames(info.id)
    for key, frame in sample_frames.items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True)[loaded[key].columns], loaded[key],
                                      check_dtype=False)
    assert info.row_counts["accounts"] == 6000 and info.version == 1


def test_identical_bytes_are_a_no_op_and_new_files_are_new_versions(store_url, small_frames, sample_frames):
    store = Store.open(store_url)
    v1 = store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    again = store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "bob")
    assert (again.id, again.created) == (v1.id, False)
    v2 = store.save_dataset("2026Q3", "b.xlsx", "sha-b", sample_frames, "bob")
    assert (v2.version, v2.created) == (2, True)
    other = store.save_dataset("2026Q4", "a.xlsx", "sha-a", small_frames, "alice")
    assert other.version == 1                                  # versions count per period
    assert list(store.load_frames(v1.id)["managers"]["manager_id"]) == ["007", "008"]   # old one still readable
    assert [d.version for d in store.datasets("2026Q3")] == [2, 1]
    uploads = store.audit_log()
    assert (uploads["action"] == "upload").sum() == 3          # the no-op wrote nothing


def test_upload_is_all_or_nothing(store_url, small_frames, monkeypatch):
    store = Store.open(store_url)

    def broken(*args, **kwargs):
        raise ReconciliationError("simulated: stored rows differ")

    monkeypatch.setattr(Store, "_reconcile", staticmethod(broken))
    with pytest.raises(ReconciliationError):
        store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    assert count(store, T.datasets) == 0
    assert all(count(store, t) == 0 for t in T.ds.values())
    assert count(store, T.audit_log) == 0


def test_reconciliation_catches_a_lost_row(store_url, small_frames, monkeypatch):
    import data.store as store_module

    store = Store.open(store_url)
    real = store_module._rows
    monkeypatch.setattr(store_module, "_rows", lambda frame, key: real(frame, key).slice(0, len(frame) - 1))
    with pytest.raises(ReconciliationError, match="rows read but"):
        store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    assert count(store, T.datasets) == 0


def test_reconciliation_compares_branch_balances(store_url, small_frames, monkeypatch):
    import data.store as store_module

    store = Store.open(store_url)
    real = store_module._rows

    def skew(frame, key):
        rows = real(frame, key)
        if key == "accounts":
            i = rows.column_names.index("avg_balance")
            balance = rows.column(i).to_numpy().copy()
            balance[0] += 1.0                                  # one yuan off in one branch
            rows = rows.set_column(i, "avg_balance", pa.array(balance))
        return rows

    monkeypatch.setattr(store_module, "_rows", skew)
    with pytest.raises(ReconciliationError, match="balances"):
        store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    assert count(store, T.datasets) == 0


def test_published_results_never_change(store_url, sample_frames, small_frames):
    store = Store.open(store_url)
    store.save_dataset("2026Q3", "sample.xlsx", "sha-s", sample_frames, "alice")
    official = Scenario(name="official")
    pub = store.publish("2026Q3", official, "", "alice")
    doc = store.published_document(pub["id"])
    rows = store.published_managers(pub["id"])
    # later: the scenario is edited and a new dataset version arrives
    store.save_scenario(official.replace(pay_factor={"intermediate": 0.3}), "bob")
    store.save_dataset("2026Q3", "fix.xlsx", "sha-f", small_frames, "bob")
    assert store.published_document(pub["id"]) == doc
    pd.testing.assert_frame_equal(store.published_managers(pub["id"]), rows)
    assert store.verify(pub["id"])["same"]
    assert json.loads(doc)["totals"]["points_pay"] == pytest.approx(official.pool)
    # re-publishing needs a reason and makes a new version on the new dataset
    with pytest.raises(ValueError, match="needs a reason"):
        store.publish("2026Q3", official, "  ", "alice")
    pub2 = store.publish("2026Q3", official, "corrected extract", "alice")
    assert pub2["version"] == 2 and pub2["dataset_id"] != pub["dataset_id"]
    assert store.published_document(pub["id"]) == doc


def test_audit_log_records_uploads_saves_publishes_and_is_append_only(store_url, small_frames):
    store = Store.open(store_url)
    store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    store.save_scenario(Scenario(name="what-if", stock_factor=0.8), "bob")
    store.publish("2026Q3", Scenario(name="official"), "", "carol")
    log = store.audit_log()
    assert {(a, act) for a, act in zip(log["actor"], log["action"])} >= {
        ("alice", "upload"), ("bob", "scenario_save"), ("carol", "scenario_save"), ("carol", "publish")}
    saved = log[log["action"] == "scenario_save"].iloc[-1]
    assert "stock_factor = 0.8" in json.loads(saved["after"])["toml"]
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(statement))
    assert count(store, T.audit_log) == len(log)


def test_migrations_apply_once(store_url):
    store = Store.open(store_url)
    assert migrate(store.engine) == []
    with store.engine.connect() as conn:
        assert conn.execute(select(T.migrations.c.version)).scalars().all() == [v for v, _d, _f in MIGRATIONS]


def test_a_store_from_before_migration_4_loses_its_dataset_id_indexes(store_url, small_frames):
    """Migration 4 drops the (dataset_id, id) indexes the bulk insert paid for and no query used
    (the customers' one stays: the reconciliation probes it) and, on PostgreSQL, the per-row
    foreign keys of the dataset rows (migration 6 on SQLite); the store reads and writes as before."""
    from sqlalchemy import inspect

    from data.db import get_engine

    engine = get_engine(store_url)
    migrate(engine, upto=3)                               # the indexes and keys as migration 1 made them
    assert any(ix["name"] == "ix_ds_accounts_id" for ix in inspect(engine).get_indexes("ds_accounts"))
    assert all(inspect(engine).get_foreign_keys(f"ds_{key}") for key in T.ds)
    store = Store.open(store_url)
    for key in T.ds:
        names = [ix["name"] for ix in inspect(engine).get_indexes(f"ds_{key}")]
        assert names == (["ix_ds_customers_id"] if key == "customers" else []), key
        assert inspect(engine).get_foreign_keys(f"ds_{key}") == [], key     # SQLite too, since migration 6
    info = store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    assert list(store.load_frames(info.id)["managers"]["manager_id"]) == ["007", "008"]


def test_a_store_from_before_row_security_is_upgraded_on_open(store_url):
    """A database at migration 1 (as the previous release left it) gets migration 2 when opened."""
    from data.db import get_engine, row_security_enforced

    engine = get_engine(store_url)
    assert migrate(engine, upto=1) == [1]
    assert not row_security_enforced(engine)
    Store.open(store_url)
    assert row_security_enforced(engine) == (engine.dialect.name == "postgresql")


def test_concurrent_uploads_and_publishes_on_sqlite(tmp_path, small_frames, sample_frames):
    store = Store.open(f"sqlite:///{tmp_path / 'busy.db'}")
    errors, done = [], []

    def work(i: int):
        try:
            period = f"2026M{i % 12 + 1:02d}"
            frames = sample_frames if i % 2 else small_frames
            store.save_dataset(period, f"f{i}.xlsx", f"sha-{i}", frames, f"user{i}")
            store.save_dataset(period, f"f{i}.xlsx", f"sha-{i}", frames, f"user{i}")     # no-op under load
            store.publish(period, Scenario(name=f"s{i % 3}"), "", f"user{i}")
            done.append(i)
        except Exception as e:  # noqa: BLE001 - collected and reported
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(done) == list(range(8))
    assert count(store, T.datasets) == 8 and count(store, T.publications) == 8
    # nothing half-written: every dataset has exactly its rows
    for info in store.datasets():
        frames = store.load_frames(info.id)
        assert {k: len(v) for k, v in frames.items()} == info.row_counts


def test_cli_load_and_publish(tmp_path):
    import subprocess
    import sys

    env_url = f"sqlite:///{tmp_path / 'cli.db'}"
    book = write_book(tmp_path / "b.xlsx", BASE)

    def cli(*args, stdin=""):
        import os

        return subprocess.run([sys.executable, "cli.py", *map(str, args)], capture_output=True, text=True,
                              input=stdin, env={**os.environ, "JIXIAO_DATABASE_URL": env_url}, timeout=120)

    p = cli("load", book, "--period", "2026Q3")
    assert p.returncode == 0 and "stored 2026Q3 v1" in p.stdout
    assert "unchanged" in cli("load", book, "--period", "2026Q3").stdout
    assert cli("publish", "--period", "2026Q3").returncode == 0
    p = cli("publish", "--period", "2026Q3")                 # the same again: nothing new, said so
    assert p.returncode == 0 and "unchanged: 2026Q3 v1 is already published" in p.stdout
    (tmp_path / "other.toml").write_text("stock_factor = 0.5\n", encoding="utf-8")
    p = cli("publish", "--period", "2026Q3", "--scenario", tmp_path / "other.toml")
    assert p.returncode == 1 and "needs a reason" in p.stderr and "Traceback" not in p.stderr
    assert "v2" in cli("publish", "--period", "2026Q3", "--reason", "rates fixed").stdout
    assert "reproduces exactly" in cli("verify", "--period", "2026Q3").stdout
    p = cli("publish", "--period", "2027Q1")
    assert p.returncode == 1 and "no dataset stored for period 2027Q1" in p.stderr


def _bank(n_customers: int) -> dict:
    """A valid bank of ``n_customers`` customers with 5 accounts each, 4 branches, 10 managers."""
    from factories import make_frames

    managers = [{"manager_id": f"M{i:03d}", "branch": f"B{i % 4}"} for i in range(10)]
    customers = [{"customer_id": f"C{i:06d}", "branch": f"B{i % 4}"} for i in range(n_customers)]
    lines = ("asset", "liability", "intermediate")
    accounts = [{"account_id": f"A{i:08d}", "customer_id": f"C{(i * 7919) % n_customers:06d}", "line": lines[i % 3],
                 "avg_balance": float(1000 + (i * 37) % 5000)} for i in range(5 * n_customers)]
    assignments = [{"customer_id": f"C{i:06d}", "manager_id": f"M{i % 10:03d}"} for i in range(0, n_customers, 2)]
    return make_frames(managers, customers, accounts, assignments)


def _reconcile_work(store, ds_id: int, frames: dict) -> int:
    """Rows (PostgreSQL: plan nodes' actual rows x loops) or SQLite VM steps the reconciliation takes."""
    from data.store import _branch_balances

    counts = {k: len(v) for k, v in frames.items()}
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            steps = [0]

            def tick():
                steps[0] += 1
                return 0

            raw = conn.connection.driver_connection
            raw.set_progress_handler(tick, 100)
            try:
                Store._reconcile(conn, ds_id, frames, counts, 0)
            finally:
                raw.set_progress_handler(None, 0)
            return steps[0]
        Store._reconcile(conn, ds_id, frames, counts, 0)
        sql = str(_branch_balances(ds_id).compile(store.engine, compile_kwargs={"literal_binds": True}))
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).scalar()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        touched, nodes = 0, [plan[0]["Plan"]]
        while nodes:
            node = nodes.pop()
            touched += node["Actual Rows"] * node["Actual Loops"]
            nodes.extend(node.get("Plans", []))
        return touched


def test_reconciliation_is_linear_in_the_rows(store_url):
    """Four times the bank costs about four times the work, not sixteen (a nested scan of the
    accounts per customer, as SQLite planned the plain join, would): counted, not timed."""
    store = Store.open(store_url)
    work = {}
    for n in (300, 1200):
        frames = _bank(n)
        info = store.save_dataset("2026Q3", f"{n}.xlsx", f"sha-{n}", frames, "alice")
        assert info.created and info.row_counts["accounts"] == 5 * n
        work[n] = _reconcile_work(store, info.id, frames)
    assert work[300] > 0
    assert work[1200] / work[300] < 6, work
    if store.engine.dialect.name == "sqlite":           # and the plan never scans accounts per customer
        from data.store import _branch_balances

        sql = str(_branch_balances(1).compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as conn:
            plan = [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        assert sum("ds_accounts" in step for step in plan) == 1, plan


def test_a_dataset_without_snapshot_loads_from_its_rows(store_url, sample_frames):
    """Datasets stored before snapshots existed (or with a damaged one) load from their rows, the same."""
    store = Store.open(store_url)
    info = store.save_dataset("2026Q3", "sample_bank.xlsx", "sha-1", sample_frames, "alice")
    from_snapshot = store.load_frames(info.id)
    with store.engine.begin() as conn:
        conn.execute(T.snapshots.update().where(T.snapshots.c.sheet == "accounts").values(data=b"damaged"))
        conn.execute(T.snapshots.delete().where(T.snapshots.c.sheet == "customers"))
    from_rows = store.load_frames(info.id)
    for key, frame in from_snapshot.items():
        pd.testing.assert_frame_equal(from_rows[key], frame)
        pd.testing.assert_frame_equal(sample_frames[key].reset_index(drop=True)[frame.columns], frame,
                                      check_dtype=False)


def test_a_store_from_before_snapshots_is_upgraded_on_open(store_url, small_frames):
    """A database at migration 2 (no ds_snapshots) gets migration 3; its schema ends as a fresh one's."""
    from sqlalchemy import inspect

    from data.db import get_engine

    engine = get_engine(store_url)
    migrate(engine, upto=2)
    assert "ds_snapshots" not in inspect(engine).get_table_names()
    store = Store.open(store_url)
    assert "ds_snapshots" in inspect(engine).get_table_names()
    cols = {c["name"] for c in inspect(engine).get_columns("ds_snapshots")}
    assert cols == {c.name for c in T.snapshots.columns}
    info = store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    assert list(store.load_frames(info.id)["managers"]["manager_id"]) == ["007", "008"]


def _publish_small(store_url, small_frames):
    store = Store.open(store_url)
    info = store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    return store, info, store.publish("2026Q3", Scenario(name="official"), "", "alice")


def unfreeze(conn, *tables: str) -> None:
    """What only a database owner can do, and tests that play one: drop the append-only triggers of
    frozen tables (migration 8) so that their rows can be tampered with."""
    for table in tables or ("publications",):
        if conn.dialect.name == "sqlite":
            for verb in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")


def _rewrite(store, pub, doc) -> None:
    """Freeze ``doc`` as an older release would have written it (another layout, its own hash)."""
    import hashlib

    text = json.dumps(doc, indent=2)
    with store.engine.begin() as conn:
        unfreeze(conn)
        conn.execute(T.publications.update().where(T.publications.c.id == pub["id"])
                     .values(result_json=text, result_hash=hashlib.sha256(text.encode()).hexdigest()))


def test_verify_accepts_a_document_written_differently_with_the_same_numbers(store_url, small_frames):
    """A frozen document whose floats are only written differently still verifies, by number; a
    changed amount does not."""
    store, _, pub = _publish_small(store_url, small_frames)
    check = store.verify(pub["id"])
    assert (check["how"], check["dataset_consistent"], check["dataset_problems"]) == ("hash", True, [])
    doc = json.loads(store.published_document(pub["id"]))
    _rewrite(store, pub, doc)                            # another text layout, the same numbers
    check = store.verify(pub["id"])
    assert (check["same"], check["how"]) == (True, "numbers") and check["recomputed_hash"] != check["stored_hash"]
    doc["managers"][0]["pay"] += 0.01                    # one fen more: differs
    _rewrite(store, pub, doc)
    check = store.verify(pub["id"])
    assert (check["same"], check["how"], check["code_changed"]) == (False, None, False)


def test_verify_by_numbers_is_exact_to_the_last_bit(store_url, small_frames):
    """The number-for-number comparison is float64 equality: a float one ulp away differs, and so
    does an integer written as another integer or a boolean; 5.0 written as 5 is the same."""
    import numpy as np

    store, _, pub = _publish_small(store_url, small_frames)
    original = json.loads(store.published_document(pub["id"]))
    doc = json.loads(store.published_document(pub["id"]))
    pay = doc["managers"][0]["pay"]
    assert isinstance(pay, float) and pay != 0
    doc["managers"][0]["pay"] = float(np.nextafter(pay, np.inf))          # the last bit only
    _rewrite(store, pub, doc)
    assert (store.verify(pub["id"])["same"], store.verify(pub["id"])["how"]) == (False, None)
    doc = json.loads(json.dumps(original))
    doc["managers"][0]["rank"] = True if doc["managers"][0]["rank"] == 1 else doc["managers"][0]["rank"] + 1
    _rewrite(store, pub, doc)
    assert store.verify(pub["id"])["how"] is None
    doc = json.loads(json.dumps(original))
    manager = doc["managers"][0]
    whole = [k for k, v in manager.items() if isinstance(v, float) and v.is_integer()]
    assert whole
    for k in whole:                                      # a float with an integral value, written as an integer
        manager[k] = int(manager[k])
    _rewrite(store, pub, doc)
    assert store.verify(pub["id"])["how"] == "numbers"


def test_verify_reports_when_the_stored_rows_and_the_snapshot_disagree(store_url, small_frames):
    """verify reruns the linear reconciliation of the dataset's rows against its snapshot: a row
    lost or a balance changed in the rows is reported, though the publication reproduces (it is
    computed from the snapshot)."""
    store, info, pub = _publish_small(store_url, small_frames)
    assert store.check_dataset(info.id) == {"consistent": True, "problems": [], "snapshot_fallback": [],
                                            "snapshots": True}
    acc = T.ds["accounts"]
    with store.engine.begin() as conn:
        first = conn.execute(select(func.min(acc.c.excel_row)).where(acc.c.dataset_id == info.id)).scalar()
        conn.execute(acc.update().where(and_(acc.c.dataset_id == info.id, acc.c.excel_row == first))
                     .values(avg_balance=acc.c.avg_balance + 1.0))
    check = store.verify(pub["id"])
    assert check["same"] and not check["dataset_consistent"]
    assert len(check["dataset_problems"]) == 1 and "balances" in check["dataset_problems"][0]
    assert "in the snapshot" in check["dataset_problems"][0]
    with store.engine.begin() as conn:
        conn.execute(acc.delete().where(and_(acc.c.dataset_id == info.id, acc.c.excel_row == first)))
    problems = store.verify(pub["id"])["dataset_problems"]
    n = info.row_counts["accounts"]
    assert f"accounts: {n} rows in the snapshot but {n - 1} stored" in problems


def test_a_snapshot_that_fails_its_check_is_audited_once_and_verify_reports_it(store_url, small_frames):
    store, info, pub = _publish_small(store_url, small_frames)
    with store.engine.begin() as conn:
        conn.execute(T.snapshots.update().where(and_(T.snapshots.c.dataset_id == info.id,
                                                     T.snapshots.c.sheet == "managers")).values(data=b"damaged"))
    frames = store.load_frames(info.id)                  # falls back to the rows, the same frame
    assert list(frames["managers"]["manager_id"]) == ["007", "008"]
    store.load_frames(info.id)
    Store.open(store_url).load_frames(info.id)           # another process: still once
    check = store.verify(pub["id"])
    assert check["same"] and not check["dataset_consistent"] and check["snapshot_fallback"] == ["managers"]
    assert any("managers" in p and "SHA-256" in p for p in check["dataset_problems"])
    log = store.audit_log()
    fallback = log[log["action"] == "snapshot_fallback"]
    assert len(fallback) == 1 and "managers" in fallback.iloc[0]["target"]
    assert json.loads(fallback.iloc[0]["after"])["dataset_id"] == info.id


def test_a_missing_result_float_is_stored_as_null_and_read_back_as_nan(store_url, small_frames, monkeypatch):
    """A NaN in a result's float column is NULL in the database on both SQLite and PostgreSQL
    (PostgreSQL's COPY would read the CSV "nan" as a float NaN) and NaN when read back."""
    import numpy as np

    import data.store as store_module

    real = store_module.run

    def with_nan(frames, scenario):
        base, result = real(frames, scenario)
        result.managers.loc[result.managers.index[0], "score"] = np.nan
        result.customers.loc[result.customers.index[0], "unattributed"] = np.nan
        return base, result

    monkeypatch.setattr(store_module, "run", with_nan)
    store = Store.open(store_url)
    store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    pub = store.publish("2026Q3", Scenario(name="official"), "", "alice")
    with store.engine.connect() as conn:
        for table, col in ((T.pub_managers, "score"), (T.pub_customers, "unattributed")):
            nulls = conn.execute(select(func.count()).select_from(table).where(table.c[col].is_(None))).scalar()
            assert nulls == 1, (table.name, col)
            if store.engine.dialect.name == "postgresql":
                nans = conn.exec_driver_sql(f"SELECT count(*) FROM {table.name} WHERE {col} = 'NaN'").scalar()
                assert nans == 0
    managers, customers = store.published_managers(pub["id"]), store.published_customers(pub["id"])
    assert managers["score"].dtype == np.float64 and managers["score"].isna().sum() == 1
    assert customers["unattributed"].dtype == np.float64 and customers["unattributed"].isna().sum() == 1
    assert [m["score"] for m in json.loads(store.published_document(pub["id"]))["managers"]].count(None) == 1


def test_a_store_from_before_migration_5_accepts_missing_result_floats(store_url, small_frames):
    """Migration 5 lifts NOT NULL from the published float columns; published rows, the branch
    index and the row-level security stay."""
    from sqlalchemy import inspect

    from data.db import get_engine

    engine = get_engine(store_url)
    migrate(engine, upto=4)
    assert not any(c["nullable"] for c in inspect(engine).get_columns("pub_managers") if c["name"] == "score")
    store = Store.open(store_url)
    store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    pub = store.publish("2026Q3", Scenario(name="official"), "", "alice")
    assert store.verify(pub["id"])["how"] == "hash"
    assert all(c["nullable"] for c in inspect(engine).get_columns("pub_customers") if c["name"] == "unattributed")
    for t in ("pub_managers", "pub_customers"):
        assert [ix["name"] for ix in inspect(engine).get_indexes(t)] == [f"ix_{t}_branch"]
    from data.db import row_security_enforced

    assert row_security_enforced(engine) == (engine.dialect.name == "postgresql")


def test_publish_stores_the_canonical_bytes_hashed_once_and_frees_the_inputs(store_url, small_frames, monkeypatch):
    """The stored document is calc.output's canonical text, its hash taken while it was written,
    and the frames and the Base are released before the document is written."""
    import gc
    import hashlib
    import weakref

    import data.store as store_module
    from calc.output import document_bytes

    real_run, real_write = store_module.run, store_module.write_document
    refs, alive = {}, {}

    def run(frames, scenario):
        base, result = real_run(frames, scenario)
        refs["base"], refs["accounts"] = weakref.ref(base), weakref.ref(frames["accounts"])
        refs["result"] = result
        return base, result

    def write(result, fh, *args):
        gc.collect()
        alive.update({k: refs[k]() is not None for k in ("base", "accounts")})
        return real_write(result, fh, *args)

    monkeypatch.setattr(store_module, "run", run)
    monkeypatch.setattr(store_module, "write_document", write)
    store = Store.open(store_url)
    store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    pub = store.publish("2026Q3", Scenario(name="official"), "", "alice")
    assert alive == {"base": False, "accounts": False}
    expected = document_bytes(refs["result"])
    stored = store.published_document(pub["id"])
    assert isinstance(stored, str) and stored.encode("utf-8") == expected
    assert pub["result_hash"] == hashlib.sha256(expected).hexdigest()


# --- the sample bank: only the embedded default store is seeded, or any store on purpose ---

def test_a_configured_store_stays_empty_until_someone_uploads(store_url, monkeypatch, capsys):
    """seed() without force and `make run`'s `python -m data.seed` leave a configured database (SQLite
    or PostgreSQL) empty; the embedded default store (here: this one, named the default) is seeded."""
    import data.db
    import data.seed

    monkeypatch.setenv("JIXIAO_DATABASE_URL", store_url)
    store = Store.open(store_url)
    assert data.seed.seed(store) is False
    assert data.seed.main() == 0
    assert "left empty" in capsys.readouterr().out
    assert store.datasets() == [] and store.publications().empty and count(store, T.audit_log) == 0
    if store.engine.dialect.name != "sqlite":
        return
    monkeypatch.setattr(data.db, "DEFAULT_URL", store_url)         # as if this were var/jixiao.db
    assert data.seed.main() == 0
    assert "seeded the sample bank" in capsys.readouterr().out
    assert sorted(d.period for d in store.datasets()) == ["2026Q2", "2026Q3"]
    assert sorted(store.latest_publications()["period"]) == ["2026Q2", "2026Q3"]
    assert data.seed.main() == 0 and "store ready" in capsys.readouterr().out    # seeded once
    assert len(store.datasets()) == 2


def test_cli_seed_loads_the_sample_into_the_configured_store_only_when_empty(tmp_path, monkeypatch, capsys):
    import cli

    url = f"sqlite:///{tmp_path / 'seed.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    assert cli.main(["seed"]) == 0
    assert "seeded the sample bank" in capsys.readouterr().out
    store = Store.open(url)
    assert len(store.datasets()) == 2 and len(store.publications()) == 2
    assert cli.main(["seed"]) == 1
    assert "already holds a dataset" in capsys.readouterr().err
    assert len(store.datasets()) == 2


def test_publishing_the_same_again_returns_the_publication_with_created_false(store_url, small_frames):
    """The same dataset and scenario parameters (another name aside) again, without a reason or
    with the same one: nothing new, the publication back with "created" False; a new reason or
    another parameter makes the next version."""
    store, info, first = _publish_small(store_url, small_frames)
    assert first["created"] is True and first["version"] == 1
    again = store.publish("2026Q3", Scenario(name="renamed"), "", "bob")
    assert again == {**first, "created": False}
    assert len(store.publications()) == 1 and (store.audit_log()["action"] == "publish").sum() == 1
    on_purpose = store.publish("2026Q3", Scenario(name="official"), "checked again", "alice")
    assert (on_purpose["version"], on_purpose["created"]) == (2, True)
    assert store.publish("2026Q3", Scenario(name="official"), "checked again", "alice")["created"] is False
    other = store.publish("2026Q3", Scenario(name="official", stock_factor=0.5), "stock at half", "alice")
    assert (other["version"], other["created"]) == (3, True)


@pytest.mark.parametrize("column, value", [("pay", float("inf")), ("total", float("-inf")), ("pay", float("nan"))])
def test_a_non_finite_result_is_never_published(store_url, small_frames, monkeypatch, column, value):
    import data.store as store_module

    real = store_module.run

    def broken(frames, scenario):
        base, result = real(frames, scenario)
        result.managers.loc[result.managers.index[-1], column] = value
        return base, result

    monkeypatch.setattr(store_module, "run", broken)
    store = Store.open(store_url)
    store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    with pytest.raises(ValueError, match=rf"non-finite number: manager 008, column {column} is {value!r}"):
        store.publish("2026Q3", Scenario(name="official"), "", "alice")
    assert store.publications().empty and count(store, T.pub_managers) == 0


def test_text_the_databases_would_store_differently_is_refused_on_both(store_url, small_frames):
    store = Store.open(store_url)
    with pytest.raises(ValueError, match="the file name holds a NUL character"):
        store.save_dataset("2026Q3", "a\x00.xlsx", "sha-a", small_frames, "alice")
    with pytest.raises(ValueError, match="the file name has 501 characters; at most 500"):
        store.save_dataset("2026Q3", "a" * 501, "sha-a", small_frames, "alice")
    store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    with pytest.raises(ValueError, match="the reason holds a NUL character"):
        store.publish("2026Q3", Scenario(name="official"), "why\x00", "alice")
    assert store.publications().empty


def test_a_dataset_that_could_not_open_is_never_stored(store_url, small_frames):
    """The last gate behind data.quarantine: a required sheet without rows, or without a required
    column, is refused by the store itself and nothing is written."""
    store = Store.open(store_url)
    before = count(store, T.datasets)
    no_branch = {**small_frames, "managers": small_frames["managers"].drop(columns=["branch"])}
    with pytest.raises(ValueError, match=r"managers \(客户经理\) lacks the required column\(s\) branch"):
        store.save_dataset("2026Q3", "b.xlsx", "sha-no-branch", no_branch, "t")
    no_customers = {**small_frames, "customers": small_frames["customers"].iloc[0:0]}
    with pytest.raises(ValueError, match=r"required sheet customers \(客户\) has no rows"):
        store.save_dataset("2026Q3", "b.xlsx", "sha-no-customers", no_customers, "t")
    assert count(store, T.datasets) == before


# ------------------------------------------------------------------ SQLite: large tables through a staging file

def _table_rows(url: str) -> dict[str, list]:
    """Every stored row of every dataset and publication table, with SQLite's type of each value."""
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                        "(name LIKE 'ds\\_%' ESCAPE '\\' OR name LIKE 'pub\\_%' ESCAPE '\\') "
                                        "AND name != 'ds_snapshots' ORDER BY name")]
    out = {}
    for name in names:
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
        shown = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
        out[name] = conn.execute(f'SELECT {shown} FROM "{name}" ORDER BY {", ".join(f"{c!r}" for c in cols)}').fetchall()
    conn.close()
    return out


def test_large_tables_staged_through_a_file_store_what_executemany_stores(tmp_path, sample_frames, monkeypatch):
    import data.store as store_module

    def upload_and_publish(url: str):
        store = Store.open(url)
        info = store.save_dataset("2026Q3", "sample.xlsx", "sha-s", sample_frames, "alice")
        pub = store.publish("2026Q3", Scenario(name="official"), "", "carol")
        return store, info, pub

    monkeypatch.setattr(store_module, "_STAGE_ROWS", 10**12)          # every table bound row by row
    bound = f"sqlite:///{tmp_path / 'bound.db'}"
    upload_and_publish(bound)

    staged_tables = []
    real = store_module._copy_stage

    def spy(conn, table, *args):
        staged_tables.append(table.name)
        return real(conn, table, *args)

    monkeypatch.setattr(store_module, "_STAGE_ROWS", 1)               # every table through a staging file
    monkeypatch.setattr(store_module, "_copy_stage", spy)
    (tmp_path / "staged").mkdir()
    staged = f"sqlite:///{tmp_path / 'staged' / 'store.db'}"
    store, info, pub = upload_and_publish(staged)
    assert {"ds_accounts", "ds_customers", "ds_assignments", "ds_managers",       # all staged before
            "pub_managers", "pub_customers", "pub_statement_lines",              # their transaction
            "pub_statement_customers", "pub_statement_kpis"} <= set(staged_tables)
    assert _table_rows(staged) == _table_rows(bound)                   # same values, same SQLite types
    loaded = store.load_frames(info.id)
    for key, frame in sample_frames.items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True)[loaded[key].columns], loaded[key],
                                      check_dtype=False)
    assert store.verify(pub["id"])["same"]
    assert sorted(p.name for p in (tmp_path / "staged").iterdir() if ".stage-" in p.name) == []   # nothing left


def test_a_staged_upload_that_fails_stores_nothing_and_leaves_no_file(tmp_path, small_frames, monkeypatch):
    import data.store as store_module

    monkeypatch.setattr(store_module, "_STAGE_ROWS", 1)

    def broken(*args, **kwargs):
        raise ReconciliationError("simulated: stored rows differ")

    monkeypatch.setattr(Store, "_reconcile", staticmethod(broken))
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(ReconciliationError):
        store.save_dataset("2026Q3", "a.xlsx", "sha-a", small_frames, "alice")
    assert count(store, T.datasets) == 0
    assert all(count(store, t) == 0 for t in T.ds.values())
    assert [p.name for p in tmp_path.iterdir() if ".stage-" in p.name] == []


def test_an_upload_staged_before_its_transaction_survives_a_retry_and_the_same_file_stages_nothing(
        tmp_path, sample_frames, monkeypatch):
    """The dataset's rows are staged before the write transaction, without its id: a transaction
    retried after a busy store copies the same files under the id it then gets, and uploading
    the same bytes again writes no staging file at all."""
    import data.store as store_module
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(store_module, "_STAGE_ROWS", 1)
    written = []
    real_write = store_module._write_stage
    monkeypatch.setattr(store_module, "_write_stage", lambda path, data: written.append(path) or real_write(path, data))
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    real_audit, calls = Store._audit, []

    def busy_once(conn, actor, action, *args, **kwargs):       # after every row was copied
        calls.append(action)
        if calls.count("upload") == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real_audit(conn, actor, action, *args, **kwargs)

    monkeypatch.setattr(Store, "_audit", staticmethod(busy_once))
    info = store.save_dataset("2026Q3", "sample.xlsx", "sha-s", sample_frames, "alice")
    assert calls == ["upload", "upload"] and info.created and info.version == 1
    assert len(written) == len([f for f in sample_frames.values() if len(f)])     # one file a sheet, once
    with store.engine.connect() as conn:
        ids = {t.name: conn.execute(select(T.ds[k].c.dataset_id).distinct()).scalars().all() for k, t in T.ds.items()}
    assert all(v == [info.id] for k, v in ids.items() if len(sample_frames.get(k.removeprefix("ds_"), ())))
    loaded = store.load_frames(info.id)
    for key, frame in sample_frames.items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True)[loaded[key].columns], loaded[key],
                                      check_dtype=False)
    assert store.check_dataset(info.id)["consistent"]
    written.clear()
    again = store.save_dataset("2026Q3", "sample.xlsx", "sha-s", sample_frames, "alice")
    assert (again.created, again.id, written) == (False, info.id, [])
    assert [p.name for p in tmp_path.iterdir() if ".stage-" in p.name] == []


def test_a_publish_staged_before_its_transaction_survives_a_retry_and_a_refusal_leaves_no_file(
        tmp_path, sample_frames, monkeypatch):
    """The publication's rows are staged before the write transaction: a transaction retried
    after a busy store copies them again, and a refused publish stores nothing and leaves no file."""
    import data.store as store_module
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(store_module, "_STAGE_ROWS", 1)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.save_dataset("2026Q3", "sample.xlsx", "sha-s", sample_frames, "alice")
    real_audit, calls = Store._audit, []

    def busy_once(conn, actor, action, *args, **kwargs):       # after every row was copied
        calls.append(action)
        if calls.count("publish") == 1 and action == "publish":
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real_audit(conn, actor, action, *args, **kwargs)

    monkeypatch.setattr(Store, "_audit", staticmethod(busy_once))
    pub = store.publish("2026Q3", Scenario(name="official"), "", "carol")
    assert calls.count("publish") == 2                           # the second attempt committed
    assert count(store, T.pub_managers) == len(sample_frames["managers"])
    assert count(store, T.pub_customers) == len(sample_frames["customers"])
    assert store.verify(pub["id"])["same"]
    with pytest.raises(ValueError, match="re-publishing needs a reason"):
        store.publish("2026Q3", Scenario(name="official", stock_factor=0.5), "", "carol")
    assert len(store.publications("2026Q3")) == 1
    assert count(store, T.pub_managers) == len(sample_frames["managers"])
    assert [p.name for p in tmp_path.iterdir() if ".stage-" in p.name] == []


# ------------------------------------------------------------------ the frozen rows' hash, built over whole columns

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.none() | st.text(), max_size=30), st.sampled_from([pa.string(), pa.large_string()]))
def test_a_text_column_hashes_as_the_json_of_its_values(values, kind):
    """The rows hash stored at publish reads text columns as json.dumps would write them (verify
    recomputes it from the rows read back, and publications made before hash the same way)."""
    from data.store import _json_list

    assert _json_list(pa.array(values, kind)) == json.dumps(values, ensure_ascii=False).encode()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.none() | st.integers(min_value=-2**63, max_value=2**63 - 1), max_size=30))
def test_an_integer_column_hashes_as_the_json_of_its_values(values):
    from data.store import _json_list

    assert _json_list(pa.array(values, pa.int64())) == json.dumps(values).encode()


def test_frozen_rows_read_back_exactly_on_the_fast_path(tmp_path, monkeypatch):
    """verify reads a publication's frozen rows as one range of row ids, copied into a file the
    ADBC driver reads: a column missing in its first 3,000 rows (past the driver's default batch
    of 1,024) reads back exactly, rows of another publication inside the range are left out, and
    the file is gone afterwards."""
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine

    import data.store as store_module

    meta = MetaData()
    probe = Table("frozen_probe", meta, Column("publication_id", Integer), Column("name", String(20)),
                  Column("amount", Float), Column("rank", Integer))
    engine = create_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    meta.create_all(engine)
    blank = {"publication_id": 1, "name": None, "amount": None, "rank": None}
    with engine.begin() as conn:
        conn.execute(probe.insert(), [blank] * 3000 + [{"publication_id": 2, "name": "x", "amount": 9.0, "rank": 1}]
                     + [{"publication_id": 1, "name": "王五", "amount": 1.5, "rank": 7}])
    used, real = [], store_module._exported_rows
    monkeypatch.setattr(store_module, "_exported_rows", lambda *a: used.append(r := real(*a)) or r)
    with engine.connect() as conn:
        got = store_module._read_frozen(conn, probe, 1)
    assert used[0] is not None                                      # the fast path, not the tuples
    assert got.schema.names == ["name", "amount", "rank"]
    assert got.column("name").to_pylist() == [None] * 3000 + ["王五"]
    assert got.column("amount").to_pylist() == [None] * 3000 + [1.5]
    assert got.column("rank").to_pylist() == [None] * 3000 + [7]
    assert [p.name for p in tmp_path.iterdir() if ".stage-" in p.name] == []
