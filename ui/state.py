"""Where the app gets its data and results: datasets, the cached heavy stage, the light stage.

The heavy stage (:func:`calc.heavy.build_base`) is cached per (dataset id, account-level
parameters) with ``st.cache_resource`` and shared by every session; a slider move only runs
the light stage (:func:`calc.light.evaluate`) on that cached :class:`~calc.heavy.Base`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from calc.heavy import Base, build_base
from calc.light import Result, evaluate
from calc.pipeline import require_valid
from calc.scenario import Scenario
from data.ingest import load_extract

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = ROOT / "data" / "sample" / "sample_bank.xlsx"
TEMPLATE_PATH = ROOT / "data" / "sample" / "template.xlsx"

__all__ = ["Dataset", "sample_dataset", "active_dataset", "set_active_dataset", "base_for", "light", "SAMPLE_PATH",
           "TEMPLATE_PATH", "baseline_scenario", "set_baseline", "saved_scenarios", "save_scenario"]


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
    """

    id: str
    label: str
    frames: dict
    quarantine: pd.DataFrame | None = None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@st.cache_resource(show_spinner=False)
def sample_dataset() -> Dataset:
    """The committed sample bank, read and validated once per server."""
    extract, _ = load_extract(SAMPLE_PATH)
    return Dataset(id="sample-" + _sha(SAMPLE_PATH.read_bytes())[:16], label="sample_bank.xlsx",
                   frames=require_valid(extract.frames))


def active_dataset() -> Dataset:
    """The dataset this session works on: the one accepted on the Upload page, else the sample."""
    return st.session_state.get("_dataset") or sample_dataset()


def set_active_dataset(ds: Dataset) -> None:
    """Make ``ds`` this session's dataset."""
    st.session_state["_dataset"] = ds


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


def baseline_scenario() -> Scenario:
    """The scenario the what-if starts from and compares against (the defaults until one is loaded)."""
    toml = st.session_state.get("_baseline_toml")
    return Scenario.from_toml(toml) if toml else Scenario(name="default")


def set_baseline(scenario: Scenario) -> None:
    """Make ``scenario`` the baseline (the what-if panel resets to it)."""
    st.session_state["_baseline_toml"] = scenario.to_toml()


def saved_scenarios() -> dict[str, str]:
    """Scenarios saved in this session: name -> TOML text."""
    return st.session_state.setdefault("_scenarios", {})


def save_scenario(scenario: Scenario) -> None:
    """Save ``scenario`` under its name (replacing one of the same name)."""
    saved_scenarios()[scenario.name] = scenario.to_toml()
