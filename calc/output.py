"""The headless run's JSON document (DOMAIN.md section 10), built from a light-stage Result."""

from __future__ import annotations

import math

from calc.light import Result
from calc.scenario import PAY_LINES

__all__ = ["to_json_dict"]


def _num(x) -> float:
    x = float(x)
    return x if math.isfinite(x) else None


def _contribution(row) -> dict:
    out = {line: _num(row[line]) for line in PAY_LINES}
    out["total"] = _num(row["total"])
    return out


def to_json_dict(result: Result) -> dict:
    """The DOMAIN 10 document: managers (by rank), customers, totals. Amounts: unrounded yuan.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    dict
        ``{"managers": [...], "customers": [...], "totals": {...}}``, JSON-serialisable.
    """
    m = result.managers.sort_values(["rank", "manager_id"], kind="stable")
    managers = [
        {
            "manager_id": r["manager_id"], "name": r["name"], "branch": r["branch"],
            "contribution": _contribution(r),
            "deposit_avg": _num(r["deposit_avg"]), "deposit_increase": _num(r["deposit_increase"]),
            "loan_avg": _num(r["loan_avg"]),
            "pay": _num(r["pay"]), "points_pay": _num(r["points_pay"]), "score": _num(r["score"]),
            "grade": r["grade"], "rank": int(r["rank"]), "branch_rank": int(r["branch_rank"]),
        }
        for _, r in m.iterrows()
    ]
    customers = [
        {
            "customer_id": r["customer_id"], "contribution": _contribution(r),
            "unattributed": _num(r["unattributed"]), "tier": r["tier"],
            "relationship_level": int(r["relationship_level"]),
        }
        for _, r in result.customers.iterrows()
    ]
    t = result.totals
    totals = {k: _num(t[k]) for k in ("contribution", "attributed", "unattributed", "pay", "points_pay")}
    return {"managers": managers, "customers": customers, "totals": totals}
