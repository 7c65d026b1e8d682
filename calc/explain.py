"""Comparing scenarios and explaining one manager's pay: who moves, and why.

Pure pandas/numpy on light-stage :class:`~calc.light.Result` objects and the heavy
:class:`~calc.heavy.Base` (account terms are read only for one manager's statement).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from calc.heavy import Base
from calc.light import GRADE_ORDER, Result
from calc.scenario import PAY_LINES, PERSPECTIVES, Scenario

__all__ = ["COMPARED_COLUMNS", "compare", "manager_chain", "perspective_scores", "branch_perspective_average"]


COMPARED_COLUMNS = ("manager_id", "name", "branch", "rank", "pay", "points_pay", "score", "grade", *PAY_LINES)
"""The managers' columns :func:`compare` reads (a frame of only these is enough)."""


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
    cols = list(COMPARED_COLUMNS)
    own = cols[3:]                          # each side's own figures: all but the ids, names and branches
    text = {"manager_id", "name", "branch", "grade", "grade_a", "grade_b"}   # kept as their arrays: taken
    ma, mb = a.managers, b.managers                                       # in order, never converted

    def values(frame, c):
        return frame[c].array if c in text else frame[c].to_numpy()

    if len(ma) == len(mb) and np.array_equal(ma["manager_id"].to_numpy(), mb["manager_id"].to_numpy()):
        # the same managers in the same order (two scenarios on one dataset): no join needed
        data = {c: values(ma, c) for c in ("manager_id", "name", "branch")}
        data.update({f"{c}_a": values(ma, c) for c in own})
        data.update({f"{c}_b": values(mb, c) for c in own})
    else:
        m = ma[cols].merge(mb[["manager_id", *own]], on="manager_id", suffixes=("_a", "_b"))
        data = {c: values(m, c) for c in m.columns}
    n = len(data["manager_id"])
    data["rank_change"] = data["rank_a"] - data["rank_b"]
    data["pay_delta"] = data["pay_b"] - data["pay_a"]
    data["score_delta"] = data["score_b"] - data["score_a"]
    crossed = data["grade_a"] != data["grade_b"]
    data["grade_crossed"] = (crossed.to_numpy(dtype=bool, na_value=True) if hasattr(crossed, "to_numpy")
                             else np.asarray(crossed, dtype=bool))
    grades = pd.Index(GRADE_ORDER)
    data["grade_move"] = grades.get_indexer(data["grade_a"]) - grades.get_indexer(data["grade_b"])   # + = better grade
    deltas = []
    for line in PAY_LINES:
        d = sb.pay_factor[line] * data[f"{line}_b"] - sa.pay_factor[line] * data[f"{line}_a"]
        data[f"delta_{line}"] = d
        deltas.append(np.asarray(d, dtype=float))
    d = np.abs(np.column_stack(deltas)) if n else np.zeros((0, len(PAY_LINES)))
    idx = d.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    moved = d[np.arange(n), idx] > 1e-9
    data["driver"] = np.where(moved, np.asarray(PAY_LINES, dtype=object)[idx], "").astype(object)
    # the driver line's cause: its factor changed, its attributed contribution changed, or both
    factor = np.array([sa.pay_factor[x] != sb.pay_factor[x] for x in PAY_LINES])[idx]
    contrib_a = np.column_stack([np.asarray(data[f"{x}_a"], dtype=float) for x in PAY_LINES]) if n else d
    contrib_b = np.column_stack([np.asarray(data[f"{x}_b"], dtype=float) for x in PAY_LINES]) if n else d
    contrib = np.abs(contrib_b[np.arange(n), idx] - contrib_a[np.arange(n), idx]) > 1e-6
    cause = np.where(factor & contrib, "both", np.where(factor, "factor", np.where(contrib, "coefficients", "none")))
    data["cause"] = np.where(moved, cause, "none").astype(object)
    order = np.lexsort((data["rank_b"], -np.abs(data["rank_change"])))   # largest move first, then by rank
    return pd.DataFrame({k: v.take(order) if isinstance(v, ExtensionArray) else v[order] for k, v in data.items()})


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


class _Managers:
    """A managers table in the place of a :class:`~calc.light.Result` (``compare`` reads ``managers`` only)."""

    __slots__ = ("managers",)

    def __init__(self, managers: pd.DataFrame):
        self.managers = managers


def compare_managers(a: pd.DataFrame, b: pd.DataFrame, sa: Scenario, sb: Scenario,
                     moved_only: bool = False) -> pd.DataFrame:
    """:func:`compare` on two managers tables, e.g. a publication's frozen rows (A) against a result's (B).

    Parameters
    ----------
    a, b : DataFrame
        ``manager_id``, ``name``, ``branch``, ``rank``, ``pay``, ``points_pay``, ``score``,
        ``grade`` and the attributed contribution per pay line (the frozen ``pub_managers`` rows
        have them, and so has ``Result.managers``). Managers in one table only are left out.
    sa, sb : Scenario
        Their scenarios.
    moved_only : bool
        Keep only the managers whose rank or grade differs between A and B.

    Returns
    -------
    DataFrame
        As :func:`compare`, in its order (largest rank move first, then the B rank).
    """
    out = compare(_Managers(a), _Managers(b), sa, sb)
    if moved_only:
        out = out[(out["rank_change"] != 0) | out["grade_crossed"].astype(bool)].reset_index(drop=True)
    return out
