"""Where the app gets its data and results: datasets, the cached heavy stage, the light stage.

The heavy stage (:func:`calc.heavy.build_base`) is cached per (dataset id, account-level
parameters) with ``st.cache_resource`` and shared by every session; a slider move only runs
the light stage (:func:`calc.light.evaluate`) on that cached :class:`~calc.heavy.Base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from calc.heavy import Base, build_base
from calc.light import Result, evaluate
from calc.pipeline import require_valid
from calc.scenario import Scenario
from data.store import DatasetInfo, Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = ROOT / "data" / "sample" / "sample_bank.xlsx"
TEMPLATE_PATH = ROOT / "data" / "sample" / "template.xlsx"

__all__ = ["Dataset", "store", "datasets", "active_dataset", "set_active_dataset", "base_for", "light", "SAMPLE_PATH",
           "TEMPLATE_PATH", "warm", "baseline_scenario", "set_baseline", "saved_scenarios", "save_scenario"]


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
    from data.seed import seed

    s = Store.open(url)
    seed(s)
    return s


def store() -> Store:
    """The configured store (created, migrated and seeded with the sample bank on first use)."""
    from data.db import database_url

    return _store_for(database_url())


def _stored(dataset_id: int) -> Dataset:
    return _stored_in(store().engine.url.render_as_string(hide_password=False), dataset_id)


@st.cache_resource(show_spinner=False, max_entries=8)
def _stored_in(url: str, dataset_id: int) -> Dataset:
    s = store()
    info = s.dataset(dataset_id)
    q = s.load_quarantine(dataset_id)
    return Dataset(id=f"db-{dataset_id}-{info.sha256[:12]}", label=info.label, frames=require_valid(s.load_frames(dataset_id)),
                   quarantine=q if len(q) else None, period=info.period, db_id=dataset_id)


def datasets() -> list[DatasetInfo]:
    """Stored dataset versions, newest first."""
    return store().datasets()


def active_dataset() -> Dataset:
    """This session's dataset: the one chosen (or just uploaded), else the newest stored version."""
    chosen = st.session_state.get("_dataset_id")
    if chosen is None:
        latest = store().latest_dataset()
        if latest is None:
            raise RuntimeError("the store holds no dataset; upload one or run `make run` to seed the sample")
        chosen = latest.id
    return _stored(int(chosen))


def warm(dataset_id: int) -> Base:
    """Load a just-stored dataset and run its heavy stage into the shared caches (the upload's
    last phase), under the baseline its pages will start from (:func:`baseline_scenario`: the
    period's published scenario, else the defaults), so the first page that shows it does not wait.
    Call it after :func:`set_active_dataset`, which drops this session's earlier baseline."""
    ds = _stored(int(dataset_id))
    return base_for(ds, baseline_scenario(ds))


def set_active_dataset(dataset_id: int) -> None:
    """Make the stored dataset ``dataset_id`` this session's dataset (the baseline follows its period)."""
    st.session_state["_dataset_id"] = int(dataset_id)
    st.session_state.pop("_baseline_toml", None)


@st.cache_resource(show_spinner=False, max_entries=16)
def _base(dataset_id: str, account_key: tuple, _frames: dict, _scenario: Scenario) -> Base:
    return build_base(_frames, _scenario)


def base_for(ds: Dataset, scenario: Scenario) -> Base:
    """The heavy stage for ``ds`` under ``scenario``'s account-level parameters (cached)."""
    return _base(ds.id, scenario.account_key(), ds.frames, scenario)


@st.cache_resource(show_spinner=False, max_entries=32)
def _light_cached(dataset_id: str, scenario_toml: str, _base: Base, _scenario: Scenario) -> Result:
    return evaluate(_base, _scenario)


def light(ds: Dataset, scenario: Scenario, cache: bool = False) -> Result:
    """The light stage for ``scenario``; ``cache=True`` for fixed scenarios (baselines, saved ones)."""
    base = base_for(ds, scenario)
    if cache:
        return _light_cached(ds.id, scenario.to_toml(), base, scenario)
    return evaluate(base, scenario)


def baseline_scenario(dataset: Dataset | None = None) -> Scenario:
    """The scenario the what-if starts from: one loaded in this session, else the period's
    published scenario, else the defaults."""
    toml = st.session_state.get("_baseline_toml")
    if toml:
        return Scenario.from_toml(toml)
    if dataset is not None and dataset.period:
        pubs = store().publications(dataset.period)
        if len(pubs):
            return _scenario_by_id(int(pubs.iloc[0]["scenario_id"]))
    return Scenario(name="default")


@st.cache_resource(show_spinner=False, max_entries=64)
def _scenario_by_id(scenario_id: int) -> Scenario:
    return store().load_scenario(scenario_id)


def set_baseline(scenario: Scenario) -> None:
    """Make ``scenario`` the baseline (the what-if panel resets to it)."""
    st.session_state["_baseline_toml"] = scenario.to_toml()


def saved_scenarios() -> dict[str, Scenario]:
    """Saved scenarios, newest version of each name: label -> Scenario."""
    table = store().scenarios()
    latest = table.sort_values("version", ascending=False).drop_duplicates("name")
    return {f"{r['name']} v{r['version']}": _scenario_by_id(int(r["id"])) for _, r in latest.iterrows()}


def save_scenario(scenario: Scenario, author: str) -> tuple[int, int]:
    """Save ``scenario`` under its name as a new version; returns (id, version)."""
    return store().save_scenario(scenario, author)
