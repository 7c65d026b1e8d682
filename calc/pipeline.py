"""Both stages in one call, for the command line, tests and anything that needs no cache."""

from __future__ import annotations

import pandas as pd

from calc.heavy import Base, build_base
from calc.light import Result, evaluate
from calc.scenario import Scenario

__all__ = ["run", "require_valid"]


def require_valid(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Return ``frames`` when no row is flagged ``_error``; raise otherwise.

    Rows with errors are never dropped here: dropping one customer must also drop its accounts
    and assignments, and the user must see them. :func:`data.quarantine.split_valid` does both.

    Raises
    ------
    ValueError
        Naming the sheets that still hold rejected rows.
    """
    flagged = [k for k, v in frames.items() if "_error" in v and bool(v["_error"].any())]
    if flagged:
        raise ValueError(f"sheets {', '.join(flagged)} hold rows with errors; split them off with "
                         "data.quarantine.split_valid (accept the valid rows) before calculating")
    return frames


def run(frames: dict[str, pd.DataFrame], scenario: Scenario | None = None, *,
        engine: str = "duckdb") -> tuple[Base, Result]:
    """Heavy then light stage on validated frames.

    Parameters
    ----------
    frames : dict of str to DataFrame
        As in ``Extract.frames`` (see :mod:`data.ingest`), without rows flagged ``_error``.
    scenario : Scenario, optional
        Defaults to ``Scenario()`` (DOMAIN defaults).
    engine : {"duckdb", "polars", "spark"}
        The engine of the heavy stage (:func:`calc.heavy.build_base`).

    Returns
    -------
    tuple of (Base, Result)
        The Base carries the scenario's coefficient edits, if any.

    Raises
    ------
    calc.whatif.EditError
        When the scenario's edits do not apply to these frames.
    """
    scenario = scenario or Scenario()
    base = build_base(require_valid(frames), scenario, engine=engine)
    if scenario.edits:                  # coefficient edits (DOMAIN 11.1) apply after the heavy stage
        from calc.whatif import edited

        base = edited(base, scenario)
    return base, evaluate(base, scenario)
