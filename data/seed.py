"""The sample bank, loaded into a store only when asked: `make run` (the embedded default store) or
`cli.py seed` (any store, explicitly).

An empty store gets the sample bank as period 2026Q3 and the same bank one quarter earlier
as 2026Q2, both published with the default scenario, so every screen has something real to
show. A store that already holds a dataset is left alone.

Which stores are seeded is decided here, once: :func:`seed` fills only the embedded default
store (``var/jixiao.db``, :func:`data.db.is_default_store`) unless called with ``force=True``
(``cli.py seed``, the test fixtures). A configured database (``JIXIAO_DATABASE_URL`` or
``database_url`` in ``.streamlit/secrets.toml``, e.g. a bank's PostgreSQL) stays empty until
someone uploads: the sample bank never mixes with a bank's own periods. The app does not seed.
"""

from __future__ import annotations

import hashlib
import sys

from calc.scenario import Scenario
from data.db import database_url, is_default_store
from data.ingest import load_extract
from data.sample.generate import previous_period
from data.store import Store, sha256_path

__all__ = ["seed", "main", "SAMPLE", "SEED_USER"]

SAMPLE = "data/sample/sample_bank.xlsx"
SEED_USER = "system"


def seed(store: Store, force: bool = False) -> bool:
    """Load the sample bank into ``store`` when it holds no dataset; return True when it did.

    Parameters
    ----------
    store : Store
    force : bool
        Seed a configured database too. Without it only the embedded default store is seeded:
        on any other this does nothing and returns False.

    Returns
    -------
    bool
        True when the sample was stored and published now; False when the store held a dataset,
        or another process seeding at the same time stored the same datasets and publications first.
    """
    if not force and not is_default_store(store.engine.url):
        return False
    if store.datasets(limit=1):
        return False
    from data.db import ROOT

    path = ROOT / SAMPLE
    extract, _ = load_extract(path)
    sha = sha256_path(path)
    official = Scenario(name="默认方案 default")
    q2_sha = hashlib.sha256(("2026Q2 derived from " + sha).encode()).hexdigest()
    # Two processes seeding at once (two `make run`, two `cli.py seed`) store one set: the same
    # bytes again are a no-op dataset, and the same dataset, parameters and reason again a no-op
    # publication (Store.publish, "created": False); only the one that stored something says so.
    q2 = store.save_dataset("2026Q2", "sample_bank.xlsx（2026Q2 由 2026Q3 推算）", q2_sha, previous_period(extract.frames),
                            SEED_USER)
    q3 = store.save_dataset("2026Q3", "sample_bank.xlsx", sha, extract.frames, SEED_USER)
    p2 = store.publish("2026Q2", official, "样例数据 sample data", SEED_USER, dataset_id=q2.id)
    p3 = store.publish("2026Q3", official, "样例数据 sample data", SEED_USER, dataset_id=q3.id)
    return q2.created or q3.created or p2["created"] or p3["created"]


def shown_url(url: str) -> str:
    """A database URL without its credentials, for messages."""
    return url.split("@")[-1] if "@" in url else url


def main() -> int:
    """`make run`: open (and migrate) the configured store; seed it when it is the embedded default and empty."""
    store = Store.open()
    url = database_url()
    if seed(store):
        print(f"seeded the sample bank (2026Q2, 2026Q3 published) into {shown_url(url)}")
    elif not is_default_store(store.engine.url) and not store.datasets(limit=1):
        print(f"store ready: {shown_url(url)} (a configured database: left empty; upload an extract, or load the "
              "sample bank with `python cli.py seed`)")
    else:
        print(f"store ready: {shown_url(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
