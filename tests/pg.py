"""A throwaway PostgreSQL cluster for the storage tests: initdb + pg_ctl on a temp dir and free port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APP_ROLE = "jixiao_app"


class Cluster:
    """A running cluster; ``url(db)`` gives a SQLAlchemy URL, ``create_database()`` a fresh database."""

    def __init__(self):
        bindir = _bin_dir()
        if bindir is None:
            msg = "PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql"
            if os.environ.get("CI"):
                pytest.fail(msg + " — CI must run the storage tests on PostgreSQL (.ci/run installs it)")
            pytest.skip(msg)
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="jixiao-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.run_as = None
        if os.geteuid() == 0:                       # initdb refuses to run as root
            try:
                pwd.getpwnam("postgres")
                self.run_as = "postgres"
            except KeyError:
                pytest.skip("running as root and no 'postgres' user to run the cluster as")
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "jixiao", "-E", "UTF8", "--locale=C",
                 "--no-sync")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                 f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=50", "start")
        self._n = 0
        from sqlalchemy import create_engine

        engine = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:     # the app connects as an ordinary role, as it must in production
            conn.exec_driver_sql(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE")
        engine.dispose()

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def admin_url(self, db: str = "postgres") -> str:
        """The cluster's superuser (creates roles and databases; bypasses row-level security)."""
        return f"postgresql+psycopg://jixiao@127.0.0.1:{self.port}/{db}"

    def url(self, db: str = "postgres") -> str:
        """The app's ordinary role, owner of the databases made by :meth:`create_database`."""
        return f"postgresql+psycopg://{APP_ROLE}@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        from sqlalchemy import create_engine

        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        engine = create_engine(self.admin_url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
