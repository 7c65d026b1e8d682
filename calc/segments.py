"""Customer segmentation (DOMAIN.md section 7): value tiers, relationship levels, whale curve, LTV.

Rules chosen where DOMAIN.md is silent:

- The "top 20 %" of ``n`` customers is the ``ceil(0.2 * n)`` customers with the highest total
  contribution; the "bottom 30 %" the ``ceil(0.3 * n)`` with the lowest (at least one each).
  Shares are of the total contribution of all customers and are NaN when that total is <= 0.
- Lifetime value is annualised with the scenario's day basis and period length.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from calc.scenario import TIERS, Scenario

__all__ = ["TIER_ORDER", "tier_of", "relationship_level", "whale_curve", "whale_shares",
           "segment_columns"]

TIER_ORDER = (*TIERS, "small")


def tier_of(volume, tiers: dict) -> np.ndarray:
    """Value tier per customer from business volume in yuan (asset + liability daily average)."""
    v = np.asarray(volume, dtype=float)
    out = np.full(v.shape, "small", dtype=object)
    for t in reversed(TIER_ORDER[:-1]):
        out[v >= tiers[t]] = t
    return out


def relationship_level(products) -> np.ndarray:
    """``1 + min(4, products)``: 1 potential ... 5 dependent."""
    return 1 + np.minimum(4, np.asarray(products, dtype=np.int64))


def whale_curve(total, points: int = 2000) -> pd.DataFrame:
    """Cumulative profit curve: customers sorted by contribution, best first.

    Parameters
    ----------
    total : array-like
        Contribution per customer (yuan).
    points : int
        At most this many points after the origin (plus the last customer): a bank's 200k
        customers are drawn from evenly spaced points of the exact curve, so the chart stays
        small (a 200k-point line would be ~5 MB per rerun) and its shape is unchanged.

    Returns
    -------
    DataFrame
        ``customer_share`` (0..1, x axis) and ``profit_share`` (cumulative contribution over
        the total, y axis; it rises above 1 before the loss-makers bring it down to 1).
    """
    v = np.sort(np.asarray(total, dtype=float))[::-1]
    n = len(v)
    whole = v.sum()
    cum = np.cumsum(v) / whole if whole != 0 else np.zeros(n)
    x = np.arange(1, n + 1) / n if n else np.zeros(0)
    if n > points:
        keep = np.unique(np.concatenate([np.linspace(0, n - 1, points).astype(np.int64), [np.argmax(cum), n - 1]]))
        x, cum = x[keep], cum[keep]
    return pd.DataFrame({"customer_share": np.concatenate([[0.0], x]), "profit_share": np.concatenate([[0.0], cum])})


def whale_shares(total) -> dict:
    """Share of total contribution made by the top 20 % and by the bottom 30 % of customers."""
    v = np.sort(np.asarray(total, dtype=float))[::-1]
    n = len(v)
    if n == 0:
        return {"n": 0, "top20_n": 0, "bottom30_n": 0, "top20_share": math.nan, "bottom30_share": math.nan}
    top_n = max(1, math.ceil(0.2 * n - 1e-9))
    bottom_n = max(1, math.ceil(0.3 * n - 1e-9))
    whole = float(v.sum())
    ok = whole > 0
    return {
        "n": n,
        "top20_n": top_n,
        "bottom30_n": bottom_n,
        "top20_share": float(v[:top_n].sum()) / whole if ok else math.nan,
        "bottom30_share": float(v[n - bottom_n:].sum()) / whole if ok else math.nan,
        "loss_makers": int((v < 0).sum()),
    }


def segment_columns(customers: pd.DataFrame, scenario: Scenario, days: int, day_basis: int):
    """The segmentation columns of a customer frame, without copying the frame.

    They depend on the heavy stage's figures and on ``tiers``, ``loyalty_years`` and
    ``acquisition_cost`` only (no slider of the light stage), so a caller computes them once per
    :class:`~calc.heavy.Base` and those parameters.

    Parameters
    ----------
    customers : DataFrame
        Needs ``volume`` (yuan), ``products`` (count) and ``total`` (contribution for the
        period, yuan).
    scenario : Scenario
        ``tiers``, ``loyalty_years``, ``acquisition_cost``.
    days, day_basis : int
        Period length and day basis of the contribution (annualisation factor day_basis/days).

    Returns
    -------
    tuple of (DataFrame, dict)
        ``tier``, ``relationship_level``, ``ltv``, ``ltv_net`` (yuan) with ``customers``' index,
        and the whale figures of :func:`whale_shares`.
    """
    total = customers["total"]
    ltv = total * (day_basis / days) * scenario.loyalty_years
    cols = pd.DataFrame({"tier": tier_of(customers["volume"], scenario.tiers),
                         "relationship_level": relationship_level(customers["products"]),
                         "ltv": ltv, "ltv_net": ltv - scenario.acquisition_cost}, index=customers.index)
    return cols, whale_shares(total)

