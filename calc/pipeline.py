"""Both stages in one call, for the command line, tests and anything that needs no cache."""

from __future__ import annotations

import pandas as pd

from calc.heavy import Base, build_base
from calc.light import Result, evaluate
from calc.scenario import Scenario

__all__ = ["run", "valid_frames"]


def valid_frames(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Drop rows flagged ``_error`` (used when the user accepts the valid rows only)."""
    return {k: (v[~v["_error"]].reset_index(drop=True) if "_error" in v else v) for k, v in frames.items()}


def run(frames: dict[str, pd.DataFrame], scenario: Scenario | None = None) -> tuple[Base, Result]:
    """Heavy then light stage on validated frames.

    Parameters
    ----------
    frames : dict of str to DataFrame
        As in ``Extract.frames`` (see :mod:`data.ingest`).
    scenario : Scenario, optional
        Defaults to ``Scenario()`` (DOMAIN defaults).

    Returns
    -------
    tuple of (Base, Result)
    """
    scenario = scenario or Scenario()
    base = build_base(valid_frames(frames), scenario)
    return base, evaluate(base, scenario)
