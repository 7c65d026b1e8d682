"""Create the store on first run and seed it with the sample bank (`make run` calls this).

An empty store gets the sample bank as period 2026Q3 and the same bank one quarter earlier
as 2026Q2, both published with the default scenario, so every screen has something real to
show. A store that already holds a dataset is left alone.
"""

from __future__ import annotations

import hashlib
import sys

from calc.scenario import Scenario
from data.db import database_url
from data.ingest import load_extract
from data.sample.generate import previous_period
from data.store import Store, sha256_path

SAMPLE = "data/sample/sample_bank.xlsx"
SEED_USER = "system"


def seed(store: Store) -> bool:
    """Seed ``store`` when it has no dataset; return True when it did."""
    if store.datasets():
        return False
    from data.db import ROOT

    path = ROOT / SAMPLE
    extract, _ = load_extract(path)
    sha = sha256_path(path)
    official = Scenario(name="默认方案 default")
    q2_sha = hashlib.sha256(("2026Q2 derived from " + sha).encode()).hexdigest()
    store.save_dataset("2026Q2", "sample_bank.xlsx (2026Q2, derived)", q2_sha, previous_period(extract.frames),
                       SEED_USER)
    store.save_dataset("2026Q3", "sample_bank.xlsx", sha, extract.frames, SEED_USER)
    store.publish("2026Q2", official, "sample data", SEED_USER)
    store.publish("2026Q3", official, "sample data", SEED_USER)
    return True


def main() -> int:
    """Open (and migrate) the configured store; seed it when empty."""
    store = Store.open()
    url = database_url()
    shown = url.split("@")[-1] if "@" in url else url
    if seed(store):
        print(f"seeded the sample bank (2026Q2, 2026Q3 published) into {shown}")
    else:
        print(f"store ready: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
