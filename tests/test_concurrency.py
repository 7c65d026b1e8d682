"""Several real processes on one store, SQLite and PostgreSQL (issue 16, "Concurrency and faults").

What a user relies on when people and jobs work at the same time: loads and publishes of one
period become consecutive versions (or the late one is told the same publication exists); a
command that only reads runs while another process writes; a writer waits its turn and says so;
a killed writer does not hold the store; parallel wrong passwords lock the account after exactly
five; two first-administrator forms make one administrator; two processes seeding store one
sample; three processes starting on an empty database migrate it once; verify finds a changed
frozen row; frozen tables refuse UPDATE and DELETE; a NUL in a login name is refused and audited.

Processes are ``cli.py`` subprocesses (the commands users run) or forks of this one started
together at a barrier (store calls, cheaper to start). Timeouts here bound liveness only.
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from calc.scenario import Scenario
from data.auth import AuthError, Users
from data.db import FROZEN_TABLES, MIGRATIONS, T, get_engine
from data.ingest import load_extract
from data.store import Store
from tests.test_ingest import BASE, write_book
from tests.test_store import unfreeze

ROOT = Path(__file__).resolve().parents[1]
PERIOD = "2026Q3"
LIVENESS = 120          # seconds a process may take before the test calls it hung


def book(tmp_path: Path, i: int) -> Path:
    """A valid extract, different bytes and numbers for each ``i``."""
    sheets = copy.deepcopy(BASE)
    sheets["账户"][1][4] = 1_000_000 + 1_000 * i
    return write_book(tmp_path / f"b{i}.xlsx", sheets)


def env(url: str, **extra: str) -> dict:
    return {**os.environ, "JIXIAO_DATABASE_URL": url, **extra}


def cli(url: str, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          env=env(url, **kw), timeout=LIVENESS)


def spawn(url: str, *args, stderr=subprocess.PIPE, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "cli.py", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, env=env(url, **kw))


def finish(procs) -> list[tuple[int, str, str]]:
    """Each process's exit code, standard output and error, once it ended."""
    done = []
    for p in procs:
        out, err = p.communicate(timeout=LIVENESS)
        done.append((p.returncode, out, err))
    return done


def together(target, args_list: list[tuple]) -> list:
    """Run ``target(*args)`` in one process forked from this one per item, released together at a
    barrier; return each one's result (or the exception text ``"!Type: message"``), in order.

    Only for work that does not run the calculation (whose thread pools, once started in this
    process, must not be inherited by a fork): :func:`apart` runs that.
    """
    for engine in list(_engines().values()):    # no pooled connection may cross the fork
        engine.dispose()
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(len(args_list)), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(i, barrier, out, target, a)) for i, a in enumerate(args_list)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=LIVENESS) for _ in procs)
    for p in procs:
        p.join(LIVENESS)
    return [results[i] for i in range(len(args_list))]


def _engines() -> dict:
    from data import db

    return db._engines


def _child(i, barrier, out, target, args) -> None:
    _engines().clear()                          # fresh engines and connections in this process
    try:
        barrier.wait(LIVENESS)
        value = target(*args)
    except Exception as e:  # noqa: BLE001 - reported to the parent as text
        value = f"!{type(e).__name__}: {e}"
    out.put((i, value))
    out.close()
    out.join_thread()                           # flushed before this process ends without clean-up
    os._exit(0)


RUNNER = """
import json, sys, time
from pathlib import Path
import tests.test_concurrency as t
print("ready", flush=True)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
try:
    value = getattr(t, sys.argv[2])(*json.loads(sys.argv[3]))
except Exception as e:
    value = f"!{type(e).__name__}: {e}"
print(json.dumps(value), flush=True)
"""


def apart(target, args_list: list[tuple], tmp_path: Path) -> list:
    """Run ``target(*args)`` (a function of this module) in one fresh Python process per item,
    started together once all are ready; return each one's result as JSON gives it back (or the
    exception text ``"!Type: message"``), in order."""
    go = tmp_path / f"go-{target.__name__}-{time.monotonic_ns()}"
    procs = [subprocess.Popen([sys.executable, "-c", RUNNER, str(go), target.__name__, json.dumps(list(a))],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env(a[0])) for a in args_list]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    go.touch()
    done = [p.communicate(timeout=LIVENESS) for p in procs]
    return [json.loads(out.strip().splitlines()[-1]) if out.strip() else f"!exit {p.returncode}: {err[-2000:]}"
            for p, (out, err) in zip(procs, done)]


HOLDER = """
import sys
from data.db import write_tx
from data.store import Store
store = Store.open(sys.argv[1])
with write_tx(store.engine, lock="content") as conn:
    Store._audit(conn, "holder", "test_hold", "the write lock")
    print("holding", flush=True)
    if sys.argv[2] == "sleep":
        conn.exec_driver_sql("SELECT pg_sleep(600)")
    else:
        sys.stdin.readline()
print("released", flush=True)
"""


def hold_write_lock(url: str, mode: str = "stdin") -> subprocess.Popen:
    """A process inside a write transaction holding the store's write lock (until a line on its
    stdin, or in a 10-minute statement with ``mode="sleep"``)."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, url, mode], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(url))
    assert p.stdout.readline().strip() == "holding", p.stderr.read()
    return p


def wait_for_text(path: Path, text: str, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + LIVENESS
    while time.monotonic() < deadline:
        seen = path.read_text(encoding="utf-8") if path.exists() else ""
        if text in seen or proc.poll() is not None:
            return seen
        time.sleep(0.1)
    return path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ loads

def _publish(url: str, stock_factor: float, reason: str) -> tuple:
    pub = Store(get_engine(url)).publish(PERIOD, Scenario(name="s", stock_factor=stock_factor), reason, "tests")
    return pub["version"], pub["created"]


def test_concurrent_loads_and_publishes_of_one_period_become_consecutive_versions(store_url, tmp_path):
    loads = finish([spawn(store_url, "load", book(tmp_path, i), "--period", PERIOD) for i in range(3)])
    assert [code for code, _o, _e in loads] == [0, 0, 0], loads
    assert all("internal error" not in err for _c, _o, err in loads)
    store = Store.open(store_url)
    assert sorted(d.version for d in store.datasets(PERIOD)) == [1, 2, 3]
    assert len({d.sha256 for d in store.datasets(PERIOD)}) == 3
    made = apart(_publish, [(store_url, 0.5 + i / 10, f"run {i}") for i in range(3)], tmp_path)
    assert sorted(made) == [[1, True], [2, True], [3, True]], made
    # the same publish twice at once: one new version; the other gets it back, "created" False
    made = apart(_publish, [(store_url, 0.95, "same twice")] * 2, tmp_path)
    assert sorted(made) == [[4, False], [4, True]], made
    assert sorted(int(v) for v in store.publications(PERIOD)["version"]) == [1, 2, 3, 4]


# ------------------------------------------------------------------------------- readers, waits

def test_readers_run_while_a_writer_holds_the_lock_and_writers_wait_their_turn(store_url, tmp_path):
    store = Store.open(store_url)
    store.save_dataset(PERIOD, "b0.xlsx", "sha-0", load_extract(book(tmp_path, 0))[0].frames, "tests")
    store.publish(PERIOD, Scenario(), "", "tests")
    for engine in _engines().values():
        engine.dispose()
    holder = hold_write_lock(store_url)
    try:
        for args in (("verify", "--period", PERIOD), ("user", "list"), ("statement", "--period", PERIOD,
                                                                         "--manager", "007")):
            p = cli(store_url, *args)                 # never waits on the writer
            assert p.returncode == 0, (args, p.stderr)
        # a writer that may wait only a second gives up with a clear message, having written nothing
        p = cli(store_url, "load", book(tmp_path, 1), "--period", PERIOD, JIXIAO_WRITE_WAIT_SECONDS="1")
        assert p.returncode == 2, p.stderr
        assert "waiting for another" in p.stderr and "nothing was written" in p.stderr
        assert "internal error" not in p.stderr and "Traceback" not in p.stderr
        # a writer waits its turn, says so, and goes ahead when the lock is released
        log = tmp_path / "publish.err"
        with open(log, "w", encoding="utf-8") as err:
            (tmp_path / "s.toml").write_text("stock_factor = 0.6\n", encoding="utf-8")
            waiting = spawn(store_url, "publish", "--period", PERIOD, "--scenario", tmp_path / "s.toml",
                            "--reason", "second", stderr=err)
            seen = wait_for_text(log, "waiting for another", waiting)
            assert "waiting for another load or publish to finish" in seen, seen
            assert waiting.poll() is None                   # still waiting, not failed
            holder.stdin.write("\n")
            holder.stdin.flush()
            out, _ = waiting.communicate(timeout=LIVENESS)
        assert waiting.returncode == 0 and f"published {PERIOD} v2" in out, log.read_text(encoding="utf-8")
    finally:
        holder.kill()
        holder.wait()
    assert [d.version for d in Store.open(store_url).datasets(PERIOD)] == [1]


def test_a_killed_writer_does_not_hold_the_postgresql_store(pg_cluster, tmp_path):
    """kill -9 of a process whose transaction is in a long statement: the server ends that
    transaction within seconds, and the next load goes ahead."""
    url = pg_cluster.create_database()
    holder = hold_write_lock(url, mode="sleep")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    p = cli(url, "load", book(tmp_path, 0), "--period", PERIOD)
    assert p.returncode == 0 and f"stored {PERIOD} v1" in p.stdout, p.stderr


# ---------------------------------------------------------------------------------------- users

def _wrong_password(url: str) -> str:
    try:
        Users(Store(get_engine(url))).authenticate("victim", "not-the-password")
    except AuthError as e:
        return e.reason
    return "logged in"


def test_parallel_wrong_passwords_lock_the_account_after_exactly_five(store_url):
    store = Store.open(store_url)
    users = Users(store)
    users.create("victim", "right-password-1", "analyst", actor="tests")
    n = 10
    reasons = together(_wrong_password, [(store_url,)] * n)
    assert sorted(reasons) == sorted(["password"] * 4 + ["locked"] * (n - 4)), reasons
    log = store.audit_log()
    failed = [json.loads(a)["reason"] for a in log[log["action"] == "login_failed"]["after"]]
    assert failed.count("password") == 5 and failed.count("locked") == n - 5
    assert (log["action"] == "lockout").sum() == 1
    with pytest.raises(AuthError) as refused:
        users.authenticate("victim", "right-password-1")
    assert refused.value.reason == "locked"


def _first_admin(url: str, name: str) -> str:
    Users(Store(get_engine(url))).create(name, "first-admin-pass", "admin", actor=name, first_admin=True)
    return "created"


def test_two_first_administrator_forms_make_one_administrator(store_url):
    Store.open(store_url)
    outcomes = together(_first_admin, [(store_url, "alice"), (store_url, "bob"), (store_url, "carol")])
    assert outcomes.count("created") == 1, outcomes
    assert all("already exists" in o for o in outcomes if o != "created"), outcomes
    assert len(Users(Store.open(store_url)).list()) == 1


def test_a_nul_in_a_login_name_is_refused_and_audited(store_url):
    store = Store.open(store_url)
    users = Users(store)
    with pytest.raises(AuthError, match="wrong user name or password"):
        users.authenticate("adm\x00in", "whatever-password")
    row = store.audit_log().iloc[0]
    assert row["action"] == "login_failed" and "\x00" not in row["actor"]
    assert json.loads(row["after"])["reason"] == "control character in user name"
    with pytest.raises(ValueError, match="control characters"):
        users.create("ev\x00il", "some-password-1", "admin", actor="tests")
    assert users.principal("adm\x00in") is None


# ------------------------------------------------------------------------- seeding, migrations

def _seed(url: str) -> bool:
    from data.seed import seed

    return seed(Store.open(url), force=True)


def test_two_processes_seeding_an_empty_store_store_one_sample(store_url, tmp_path):
    Store.open(store_url)
    outcomes = apart(_seed, [(store_url,), (store_url,)], tmp_path)
    assert all(o in (True, False) for o in outcomes), outcomes
    store = Store.open(store_url)
    pubs = store.publications()
    assert sorted(pubs["period"]) == ["2026Q2", "2026Q3"] and set(pubs["version"]) == {1}
    assert sorted(d.period for d in store.datasets()) == ["2026Q2", "2026Q3"]


def _migrate(url: str) -> list:
    from data.db import migrate

    return migrate(get_engine(url))


def test_three_processes_starting_on_an_empty_database_migrate_it_once(store_url):
    applied = together(_migrate, [(store_url,)] * 3)
    assert sorted(map(str, applied)) == sorted(["[]", "[]", str([v for v, _d, _f in MIGRATIONS])]), applied
    with get_engine(store_url).connect() as conn:
        versions = conn.execute(select(T.migrations.c.version)).scalars().all()
    assert sorted(versions) == [v for v, _d, _f in MIGRATIONS]


# ------------------------------------------------------------------------ frozen publications

@pytest.fixture
def published(store_url, tmp_path):
    store = Store.open(store_url)
    store.save_dataset(PERIOD, "b.xlsx", "sha-b", load_extract(book(tmp_path, 0))[0].frames, "alice")
    return store, store.publish(PERIOD, Scenario(name="official"), "", "alice")


def test_every_frozen_table_refuses_update_and_delete(published):
    store, pub = published
    for table in FROZEN_TABLES:
        for sql in (f"UPDATE {table} SET publication_id = publication_id" if table != "publications"
                    else "UPDATE publications SET reason = 'rewritten'", f"DELETE FROM {table}"):
            with pytest.raises(Exception, match="append-only"):
                with store.engine.begin() as conn:
                    conn.exec_driver_sql(sql)
    assert store.verify(pub["id"])["same"]


def _cli_main(monkeypatch, url, *args) -> int:
    import cli as cli_module

    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    return cli_module.main(list(args))


def test_verify_finds_a_branch_s_frozen_pay_doubled(published, store_url, monkeypatch, capsys):
    store, pub = published
    assert _cli_main(monkeypatch, store_url, "verify", "--period", PERIOD) == 0
    capsys.readouterr()
    with store.engine.begin() as conn:
        unfreeze(conn, "pub_managers")
        conn.execute(T.pub_managers.update().where(T.pub_managers.c.branch == "城东支行")
                     .values(pay=T.pub_managers.c.pay * 2))
    check = Store.open(store_url).verify(pub["id"])
    assert not check["same"] and check["how"] == "hash" and check["rows"] == "differ"
    assert check["rows_hash"] == "differ"
    assert check["row_problems"][0].startswith("managers: 1 of 2 rows differ in pay (first: manager_id 007:")
    assert _cli_main(monkeypatch, store_url, "verify", "--period", PERIOD) == 1
    out = capsys.readouterr().out
    assert f"{PERIOD} v1: the document reproduces exactly (same SHA-256) / 完全一致（哈希相同）, but its frozen rows " \
           "DIFFER" in out
    assert "frozen result rows DIFFER" in out and "the stored rows were changed" in out
    assert "do not match the hash stored at publish" in out


def test_a_publication_without_a_row_hash_is_checked_against_its_document(published, store_url, monkeypatch,
                                                                          capsys):
    store, pub = published
    with store.engine.begin() as conn:           # as published before migration 8
        unfreeze(conn, "publications")
        conn.execute(T.publications.update().values(rows_hash=None))
    capsys.readouterr()
    assert _cli_main(monkeypatch, store_url, "verify", "--period", PERIOD) == 0
    out = capsys.readouterr().out
    assert "reproduces exactly" in out and "no stored row hash" in out
    with store.engine.begin() as conn:
        unfreeze(conn, "pub_managers")
        conn.execute(T.pub_managers.update().values(pay=T.pub_managers.c.pay + 0.01))
    assert _cli_main(monkeypatch, store_url, "verify", "--period", PERIOD) == 1
    assert "frozen result rows DIFFER" in capsys.readouterr().out
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(T.publications)).scalar() == 1
