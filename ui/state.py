"""Where the app gets its data and results: datasets, the cached heavy stage, the light stage.

The heavy stage (:func:`calc.heavy.build_base`) is cached per (dataset id, account-level
parameters) with ``st.cache_resource`` and shared by every session; a slider move only runs
the light stage (:func:`calc.light.evaluate`) on that cached :class:`~calc.heavy.Base`.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from calc.heavy import Base, build_base
from calc.light import Result, live
from calc.pipeline import require_valid
from calc.scenario import Scenario
from calc.whatif import edited
from data.store import DatasetInfo, Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = ROOT / "data" / "sample" / "sample_bank.xlsx"
TEMPLATE_PATH = ROOT / "data" / "sample" / "template.xlsx"

__all__ = ["Dataset", "store", "datasets", "active_dataset", "set_active_dataset", "base_for", "light", "SAMPLE_PATH",
           "TEMPLATE_PATH", "warm", "baseline", "Baseline", "baseline_scenario", "set_baseline", "saved_scenarios",
           "save_scenario", "changed", "generation", "STORE_TTL", "WhatIf", "whatif", "kept", "publications"]


@dataclass(frozen=True)
class Dataset:
    """A validated extract the app computes on.

    Attributes
    ----------
    id : str
        SHA-256 of the uploaded bytes (the cache key).
    label : str
        What the user sees: file name or period and version.
    frames : dict of str to DataFrame
        Valid rows only (see :func:`data.quarantine.split_valid`).
    quarantine : DataFrame or None
        Rows rejected when the user accepted the valid rows only.
    period : str
        Period label (``2026Q3``); empty for a dataset not stored.
    db_id : int or None
        Row id in the store.
    """

    id: str
    label: str
    frames: dict
    quarantine: pd.DataFrame | None = None
    period: str = ""
    db_id: int | None = None


@st.cache_resource(show_spinner=False)
def _store_for(url: str) -> Store:
    return Store.open(url)      # never seeded here: `make run` or `cli.py seed` loads the sample on purpose


_stores: dict[str, Store] = {}


def store() -> Store:
    """The configured store (created and migrated on first use; the app never seeds it)."""
    from data.db import database_url

    url = database_url()
    found = _stores.get(url)
    if found is None:
        found = _stores[url] = _store_for(url)
    return found


def _stored(dataset_id: int) -> Dataset:
    return _stored_in(store().engine.url.render_as_string(hide_password=False), dataset_id)


@st.cache_resource(show_spinner=False, max_entries=8)
def _stored_in(url: str, dataset_id: int) -> Dataset:
    s = store()
    info = s.dataset(dataset_id)
    q = s.load_quarantine(dataset_id)
    return Dataset(id=f"db-{dataset_id}-{info.sha256[:12]}", label=info.label, frames=require_valid(s.load_frames(dataset_id)),
                   quarantine=q if len(q) else None, period=info.period, db_id=dataset_id)


# -- what the store says, cached between reruns ---------------------------------------------
# A slider move must not query the store: the dataset list, the newest dataset and the period's
# published scenario are read once and kept (process-wide, per store URL) until this process
# changes the store (:func:`changed`: upload, publish, scenario saved, user changed) or for at
# most STORE_TTL seconds, so a change made elsewhere (the command line, another server) shows too.

STORE_TTL = 30.0
_memo_lock = threading.Lock()
_memo: dict = {}
_generation = 0


def changed() -> None:
    """Say this process changed the store: every cached read is read again on the next rerun."""
    global _generation
    with _memo_lock:
        _generation += 1
        _memo.clear()


def generation() -> int:
    """A number that changes whenever :func:`changed` is called (for caches kept elsewhere)."""
    return _generation


def _store_read(name, compute):
    """``compute()`` (a store query), kept for STORE_TTL seconds or until :func:`changed`."""
    from data.db import database_url

    key = (database_url(), name)
    now = time.monotonic()
    hit = _memo.get(key)
    if hit is not None and hit[0] == _generation and now - hit[1] < STORE_TTL:
        return hit[2]
    gen = _generation
    value = compute()
    with _memo_lock:
        if gen == _generation:
            _memo[key] = (gen, now, value)
    return value


def datasets() -> list[DatasetInfo]:
    """Stored dataset versions, newest first (cached, see :func:`changed`)."""
    return _store_read("datasets", lambda: store().datasets())


def active_dataset() -> Dataset | None:
    """This session's dataset: the one chosen (or just uploaded), else the newest stored version;
    None while the store holds no dataset."""
    chosen = st.session_state.get("_dataset_id")
    if chosen is None:
        infos = datasets()
        if not infos:
            return None
        chosen = infos[0].id
    held = st.session_state.get("_dataset")
    if held is not None and held.db_id == int(chosen):
        return held
    ds = _stored(int(chosen))
    st.session_state["_dataset"] = ds
    return ds


def warm(dataset_id: int) -> Base:
    """Load a just-stored dataset and run its heavy stage into the shared caches (the upload's
    last phase), under the baseline its pages will start from (:func:`baseline_scenario`: the
    period's published scenario, else the defaults), so the first page that shows it does not wait.
    Call it after :func:`set_active_dataset`, which drops this session's earlier baseline."""
    ds = _stored(int(dataset_id))
    base = base_for(ds, baseline_scenario(ds))
    live(base)
    return base


def set_active_dataset(dataset_id: int) -> None:
    """Make the stored dataset ``dataset_id`` this session's dataset (the baseline follows its period)."""
    st.session_state["_dataset_id"] = int(dataset_id)
    st.session_state.pop("_baseline_toml", None)
    st.session_state.pop("_baseline", None)


@st.cache_resource(show_spinner=False, max_entries=16)
def _base(dataset_id: str, account_key: tuple, _frames: dict, _scenario: Scenario) -> Base:
    # the heavy stage on the configured engine (Spark for a warehouse deployment); sliders stay local
    from data.settings import heavy_engine

    return build_base(_frames, _scenario, engine=heavy_engine())


_bases: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()   # the cached Bases, found without hashing


def base_for(ds: Dataset, scenario: Scenario) -> Base:
    """The heavy stage for ``ds`` under ``scenario``'s account-level parameters (cached), with the
    scenario's coefficient edits applied (:func:`calc.whatif.edited`, kept with the Base).

    Raises
    ------
    calc.whatif.EditError
        When the scenario's edits do not apply to this dataset.
    """
    key = (ds.id, scenario.account_key())
    found = _bases.get(key)
    if found is None:
        found = _bases[key] = _base(ds.id, key[1], ds.frames, scenario)
    return edited(found, scenario) if scenario.edits else found


class _Results:
    """The last results computed in this process, by key (shared by sessions: a Result is never
    changed after it is made, and its lazy parts are built once under its own lock)."""

    def __init__(self, size: int):
        self.size = size
        self.items: dict = {}
        self.lock = threading.Lock()

    def get(self, key, compute):
        hit = self.items.get(key)
        if hit is not None:
            return hit
        value = compute()
        with self.lock:
            self.items.pop(key, None)
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.pop(next(iter(self.items)))
        return value


_results = _Results(16)      # what-ifs and fixed scenarios' results
_kept = _Results(24)         # what pages derive from them (tables, figures), see :func:`kept`


def kept(key: tuple, compute):
    """``compute()`` once per ``key`` in this process (the last few kept). ``key`` must name
    everything the value depends on: dataset, baseline, the levers it moves with, language."""
    return _kept.get(key, compute)


def light(ds: Dataset, scenario: Scenario, cache: bool = False, key=None) -> Result:
    """The light stage for ``scenario`` on the what-if's incremental model (:func:`calc.light.live`).

    ``cache=True`` keeps the result (baselines, saved scenarios) under ``key``, or else under the
    scenario's TOML text; ``key`` must name the scenario exactly (the caller knows it cheaply).
    """
    base = base_for(ds, scenario)
    if not cache:
        return live(base).evaluate(scenario)
    return _results.get((ds.id, key if key is not None else scenario.to_toml()),
                        lambda: live(base).evaluate(scenario))


class WhatIf:
    """One what-if: its scenario, its result, and what pages derive from them (see :meth:`memo`)."""

    __slots__ = ("scenario", "result", "_derived")

    def __init__(self, scenario: Scenario, result: Result):
        self.scenario = scenario
        self.result = result
        self._derived: dict = {}

    def memo(self, name, compute):
        """``compute()`` once for this what-if (two sessions racing may both compute it; either is right)."""
        try:
            return self._derived[name]
        except KeyError:
            value = self._derived[name] = compute()
            return value


def whatif(ds: Dataset, held: "Baseline", panel_key: tuple, make_scenario) -> WhatIf:
    """The what-if of the panel values ``panel_key`` on ``held``'s baseline: computed once, then kept
    (process-wide, the last few), so a rerun that does not move the panel computes nothing.
    ``make_scenario()`` builds the scenario when it is not kept."""
    def compute() -> WhatIf:
        scenario = make_scenario()
        return WhatIf(scenario, live(base_for(ds, scenario)).evaluate(scenario))

    return _results.get(("whatif", ds.id, held.key, panel_key), compute)


@dataclass
class Baseline:
    """The what-if's starting point: the scenario, a cheap key naming it, and its result."""

    scenario: Scenario
    key: tuple


def baseline(dataset: Dataset) -> Baseline:
    """This session's baseline for ``dataset`` (see :func:`baseline_scenario`), kept in the session
    until the dataset, the loaded baseline or the period's publications change."""
    toml = st.session_state.get("_baseline_toml")
    if toml:
        source = ("toml", toml)
    elif dataset.period:
        source = ("published", _published_scenario_id(dataset.period))
    else:
        source = ("default",)
    key = (dataset.id, source)
    held = st.session_state.get("_baseline")
    if held is not None and held.key == key:
        return held
    if source[0] == "toml":
        scenario = Scenario.from_toml(toml)
    elif source[0] == "published" and source[1] is not None:
        scenario = _scenario_by_id(source[1])
    else:
        scenario = Scenario(name="default")
    held = Baseline(scenario, key)
    st.session_state["_baseline"] = held
    return held


def _published_scenario_id(period: str) -> int | None:
    pubs = publications(period)
    return int(pubs.iloc[0]["scenario_id"]) if len(pubs) else None


def baseline_scenario(dataset: Dataset | None = None) -> Scenario:
    """The scenario the what-if starts from: one loaded in this session, else the period's
    published scenario, else the defaults."""
    if dataset is None:
        toml = st.session_state.get("_baseline_toml")
        return Scenario.from_toml(toml) if toml else Scenario(name="default")
    return baseline(dataset).scenario


def _scenario_by_id(scenario_id: int) -> Scenario:
    """A stored scenario (cached per store and id: ids of two stores in one process never mix)."""
    from data.db import database_url

    return _scenario_in(database_url(), scenario_id)


@st.cache_resource(show_spinner=False, max_entries=64)
def _scenario_in(url: str, scenario_id: int) -> Scenario:
    return store().load_scenario(scenario_id)


def set_baseline(scenario: Scenario) -> None:
    """Make ``scenario`` the baseline (the what-if panel resets to it)."""
    st.session_state["_baseline_toml"] = scenario.to_toml()
    st.session_state.pop("_baseline", None)


def saved_scenarios() -> dict[str, Scenario]:
    """Saved scenarios, newest version of each name: label -> Scenario (cached, see :func:`changed`)."""
    def read():
        table = store().scenarios()
        latest = table.sort_values("version", ascending=False).drop_duplicates("name")
        return {f"{r['name']} v{r['version']}": _scenario_by_id(int(r["id"])) for _, r in latest.iterrows()}

    return _store_read("saved_scenarios", read)


def publications(period: str):
    """The period's publications, newest first (cached, see :func:`changed`)."""
    return _store_read(("publications", period), lambda: store().publications(period))


def save_scenario(scenario: Scenario, author: str) -> tuple[int, int]:
    """Save ``scenario`` under its name as a new version; returns (id, version)."""
    saved = store().save_scenario(scenario, author)
    changed()
    return saved
