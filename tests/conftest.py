"""Test setup: put the project root on sys.path so tests import ``calc`` and ``data``.

Frame builders for tests live in :mod:`tests.factories` (``from factories import make_frames``).
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_TESTS = Path(__file__).resolve().parent
for p in (str(_ROOT), str(_TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

# Every test session works on its own throwaway store, never on var/jixiao.db. Servers the tests
# start (streamlit, cli.py subprocesses) inherit this variable.
import os
import tempfile

_TMP_STORE = Path(tempfile.mkdtemp(prefix="jixiao-test-store-"))
os.environ["JIXIAO_DATABASE_URL"] = f"sqlite:///{_TMP_STORE / 'jixiao.db'}"

import pytest  # noqa: E402

TEST_USERS = {   # role -> (username, password, branch, manager_id)
    "admin": ("admin1", "admin-pass-123", None, None),
    "analyst": ("ana1", "analyst-pass-123", None, None),
    "branch_head": ("bh_east", "branch-pass-123", "城东支行", None),
    "manager": ("mgr1", "manager-pass-123", "城东支行", "RM2447"),
}


@pytest.fixture(scope="session")
def seeded_store():
    """The test store, seeded with the sample bank and one user per role."""
    from data.auth import Users
    from data.seed import seed
    from data.store import Store

    store = Store.open()
    seed(store, force=True)          # the test store is a configured one: seeded on purpose, as `cli.py seed` does
    users = Users(store)
    if users.count() == 0:
        for role, (name, pw, branch, manager_id) in TEST_USERS.items():
            users.create(name, pw, role, actor="tests", branch=branch, manager_id=manager_id)
    return store


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster for this test session (skipped locally without the binaries)."""
    from pg import Cluster

    cluster = Cluster()
    yield cluster
    cluster.stop()


def release_connections(*urls: str) -> None:
    """Close the pooled connections of the engines of ``urls`` (data.db keeps one engine per URL
    for the process): a session creating many PostgreSQL databases stays under max_connections."""
    from data.db import get_engine

    for url in urls:
        get_engine(url).dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty database on each backend: SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url = request.getfixturevalue("pg_cluster").create_database()
    yield url
    release_connections(url)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright, one per test module (skips or fails via require_browser)."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
