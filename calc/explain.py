"""Comparing scenarios and explaining one manager's pay: who moves, and why.

Pure pandas/numpy on light-stage :class:`~calc.light.Result` objects and the heavy
:class:`~calc.heavy.Base` (account terms are read only for one manager's statement).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calc.heavy import Base
from calc.light import GRADE_ORDER, Result
from calc.scenario import PAY_LINES, PERSPECTIVES, Scenario

__all__ = ["compare", "manager_chain", "perspective_scores", "branch_perspective_average"]


def compare(a: Result, b: Result, sa: Scenario, sb: Scenario) -> pd.DataFrame:
    """Per manager: rank, pay and grade in A and B, and what drove the pay change.

    Parameters
    ----------
    a, b : Result
        Results of two scenarios on the same dataset (A = baseline, B = what-if).
    sa, sb : Scenario
        Their scenarios (pay-link factors explain the change).

    Returns
    -------
    DataFrame
        ``manager_id``, ``name``, ``branch``, ``rank_a``, ``rank_b``, ``rank_change``
        (positive = moved up), ``pay_a``, ``pay_b``, ``pay_delta`` (yuan), ``grade_a``,
        ``grade_b``, ``grade_crossed`` (bool), ``delta_<line>`` (pay change per line, yuan),
        ``driver`` (line with the largest absolute change) and ``cause`` (``factor`` when the
        line's pay-link factor changed, ``coefficients`` when the attributed contribution
        changed, ``both``, or ``none``), sorted by absolute rank change, largest first.
    """
    cols = ["manager_id", "name", "branch", "rank", "pay", "points_pay", "score", "grade", *PAY_LINES]
    m = a.managers[cols].merge(b.managers[["manager_id", "rank", "pay", "points_pay", "score", "grade", *PAY_LINES]],
                               on="manager_id", suffixes=("_a", "_b"))
    m["rank_change"] = m["rank_a"] - m["rank_b"]
    m["pay_delta"] = m["pay_b"] - m["pay_a"]
    m["score_delta"] = m["score_b"] - m["score_a"]
    m["grade_crossed"] = m["grade_a"] != m["grade_b"]
    order = {g: i for i, g in enumerate(GRADE_ORDER)}
    m["grade_move"] = [order[x] - order[y] for x, y in zip(m["grade_a"], m["grade_b"])]   # + = better grade
    deltas = []
    for line in PAY_LINES:
        d = sb.pay_factor[line] * m[f"{line}_b"] - sa.pay_factor[line] * m[f"{line}_a"]
        m[f"delta_{line}"] = d
        deltas.append(d.to_numpy())
    d = np.abs(np.column_stack(deltas)) if len(m) else np.zeros((0, len(PAY_LINES)))
    idx = d.argmax(axis=1) if len(m) else np.zeros(0, dtype=int)
    m["driver"] = [PAY_LINES[i] if d[r, i] > 1e-9 else "" for r, i in enumerate(idx)]
    causes = []
    for r, line in zip(m.itertuples(index=False), m["driver"]):
        if not line:
            causes.append("none")
            continue
        factor = sa.pay_factor[line] != sb.pay_factor[line]
        contrib = abs(getattr(r, f"{line}_b") - getattr(r, f"{line}_a")) > 1e-6
        causes.append("both" if factor and contrib else "factor" if factor else "coefficients" if contrib else "none")
    m["cause"] = causes
    m["abs_move"] = m["rank_change"].abs()
    return m.sort_values(["abs_move", "rank_b"], ascending=[False, True]).drop(columns="abs_move").reset_index(drop=True)


def manager_chain(base: Base, result: Result, scenario: Scenario, manager_id: str) -> dict[str, pd.DataFrame]:
    """One manager's chain: pay <- lines <- customers (coefficient, role) <- accounts.

    Returns
    -------
    dict of str to DataFrame
        ``summary`` (one row: ids, pay, points pay, score, grade, ranks), ``lines`` (line,
        attributed contribution, factor, pay in yuan), ``customers`` (customer, role,
        coefficient and its source, the customer's contribution per line and the attributed
        share), ``accounts`` (every formula term of each account of those customers, with the
        manager's coefficient), ``kpi`` (actual, target, points).

    Raises
    ------
    ValueError
        When ``manager_id`` is not in the result.
    """
    m = result.managers
    row = m[m["manager_id"] == manager_id]
    if row.empty:
        raise ValueError(f"manager {manager_id!r} is not in this dataset")
    r = row.iloc[0]
    summary = row[["manager_id", "name", "branch", "level", "total", "pay_raw", "pay", "points_pay", "score", "grade",
                   "rank", "branch_rank"]].reset_index(drop=True)
    asg = result.assignments[result.assignments["manager_id"] == manager_id]
    cust = result.customers.set_index("customer_id")
    cols = ["name", "branch", "is_new", *PAY_LINES, "total"]
    customers = asg[["customer_id", "role", "coefficient_used", "coefficient_source"]].join(
        cust[cols], on="customer_id")
    customers["attributed"] = customers["coefficient_used"] * customers["total"]
    customers = customers.sort_values("attributed", ascending=False).reset_index(drop=True)
    accounts = base.accounts_of(customers["customer_id"]).merge(
        customers[["customer_id", "coefficient_used"]], on="customer_id")
    accounts["attributed"] = accounts["coefficient_used"] * (accounts["contribution"] + accounts["risk"])
    return {
        "summary": summary,
        "lines": pd.DataFrame({"line": list(PAY_LINES), "contribution": [float(r[x]) for x in PAY_LINES],
                               "factor": [scenario.pay_factor[x] for x in PAY_LINES],
                               "pay": [scenario.pay_factor[x] * float(r[x]) for x in PAY_LINES]}),
        "customers": customers,
        "accounts": accounts.reset_index(drop=True),
        "kpi": result.kpi[result.kpi["manager_id"] == manager_id].reset_index(drop=True),
    }


def perspective_scores(result: Result, manager_id: str) -> dict:
    """Points per balanced-scorecard perspective for one manager."""
    r = result.managers.loc[result.managers["manager_id"] == manager_id].iloc[0]
    return {p: float(r[f"score_{p}"]) for p in PERSPECTIVES}


def branch_perspective_average(result: Result, branch: str) -> dict:
    """Mean points per perspective over the managers of ``branch``."""
    part = result.managers[result.managers["branch"] == branch]
    return {p: float(part[f"score_{p}"].mean()) if len(part) else 0.0 for p in PERSPECTIVES}


def reconciliation(base: Base, result: Result, tolerance: float = 0.01) -> dict:
    """Money check: accounts in = customers = attributed + unattributed (yuan).

    Returns
    -------
    dict
        ``accounts`` (sum of every account's line result and risk), ``customers``,
        ``attributed``, ``unattributed``, and ``ok`` when all agree within ``tolerance`` yuan.
    """
    accounts = base.accounts_total          # summed once in the heavy stage, not on every slider move
    t = result.totals
    ok = (abs(accounts - t["contribution"]) <= tolerance
          and abs(t["contribution"] - t["attributed"] - t["unattributed"]) <= tolerance)
    return {"accounts": accounts, "customers": t["contribution"], "attributed": t["attributed"],
            "unattributed": t["unattributed"], "ok": ok}
