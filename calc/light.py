"""Light stage: a :class:`~calc.heavy.Base` plus slider parameters -> managers, customers, totals.

DOMAIN.md sections 1, 4 (manager balances), 5, 6 and 7. Never reads account rows: it works on
customers (one row each) and assignments (one row per customer-manager pair) with numpy, and adds
its columns to the Base's frames in one step each, without copying them. What no slider moves
(role positions, tiers, relationship levels, lifetime value, whale figures, the coefficient source
without overrides) is computed once per Base (``Base.light_cache``). Measured side by side
(November 2026, loaded 2-core machine, 1M accounts / 200k customers / 289k assignments): ~50 ms
per slider move (0.21-0.28 s before), first call ~0.15 s; 5M accounts: 0.2 s per move (1.6 s
before).

Rules chosen where DOMAIN.md is silent (also in docs/RULES.md):

- Ranking compares pay rounded to 0.000001 yuan, so float noise never splits a tie.
- Blank coefficients of a customer whose blank roles all weigh 0 get 0 (all unattributed).
- Computed KPI codes always use the computed value; an uploaded value with the same code is ignored.
- ``npl_ratio`` is attributed NPL balance / attributed loan balance, 0 without loans.
- The points method shares nothing when no manager has positive points; the pool then stays
  undistributed and the totals show it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calc.heavy import CUSTOMER_MEASURES, Base
from calc.scenario import GRADES, PAY_LINES, PERSPECTIVES, ROLES, Scenario
from calc.segments import segment_columns

__all__ = ["Result", "coefficients", "manager_measures", "score_kpis", "grade_of", "rank_desc", "evaluate",
           "COMPUTED_KPIS", "GRADE_ORDER"]

GRADE_ORDER = (*GRADES, "unrated")
COMPUTED_KPIS = ("deposit_avg", "deposit_increase", "loan_avg", "loan_increase", "asset_contribution",
                 "liability_contribution", "intermediate_contribution", "risk_contribution", "total_contribution",
                 "new_customers", "cross_sell", "npl_ratio", "customers")
_M = {m: i for i, m in enumerate(CUSTOMER_MEASURES)}


@dataclass(frozen=True)
class Result:
    """One scenario's results.

    Attributes
    ----------
    managers : DataFrame
        One row per manager: ids, ``asset`` ... ``risk``, ``total`` (attributed contribution,
        yuan), ``deposit_avg``, ``deposit_increase``, ``loan_avg`` (yuan), ``pay_raw``, ``pay``,
        ``points_pay`` (yuan), ``score`` (points), per-perspective scores, ``grade``, ``rank``,
        ``branch_rank``, ``customers`` (sum of coefficients).
    customers : DataFrame
        One row per customer: contribution per line, ``coef_sum``, ``attributed``,
        ``unattributed`` (yuan), ``tier``, ``relationship_level``, ``ltv``, ``ltv_net`` ...
    kpi : DataFrame
        Long: ``manager_id``, ``kpi``, ``perspective``, ``kind``, ``weight``, ``actual``,
        ``target``, ``target_source`` (``targets`` or ``mean``), ``points``.
    assignments : DataFrame
        Assignments with ``coefficient_used`` and ``coefficient_source`` (given / derived).
    totals : dict
        ``contribution``, ``attributed``, ``unattributed``, ``pay``, ``points_pay``, ``pool``,
        ``pool_undistributed`` and per-line ``contribution_<line>`` / ``unattributed_<line>``.
    whale : dict
        Pareto figures: ``top20_share``, ``bottom30_share``, ``n``.
    """

    managers: pd.DataFrame
    customers: pd.DataFrame
    kpi: pd.DataFrame
    assignments: pd.DataFrame
    totals: dict
    whale: dict


def coefficients(base: Base, role_weight: dict, stock_factor: float, overrides: dict | None = None):
    """Coefficient used for every assignment row (DOMAIN 5).

    Parameters
    ----------
    base : Base
    role_weight : dict
        ``primary``, ``secondary``, ``support`` weights (>= 0).
    stock_factor : float
        Multiplies derived coefficients of customers that are not new (0..1).
    overrides : dict, optional
        ``{(customer_id, manager_id): coefficient}``: given coefficients set in the app; they
        replace the uploaded value (given or blank) for that pair.

    Returns
    -------
    tuple of (ndarray, ndarray)
        Coefficients (float, one per assignment row) and a bool array, True where given.
    """
    asg = base.assignments
    given = asg["coefficient"].to_numpy(dtype=float).copy()
    if overrides:                               # a few pairs: found through an index, not a row loop
        keys = list(overrides)
        values = np.array([float(overrides[k]) for k in keys])
        pairs = base.assignment_pairs
        if pairs.is_unique:
            at = pairs.get_indexer(keys)
            given[at[at >= 0]] = values[at >= 0]
        else:
            for k, v in zip(keys, values):
                given[pairs.isin([k])] = v
    is_given = ~np.isnan(given)
    cust = asg["cust_idx"].to_numpy()
    n_cust = len(base.customers)
    weights = np.array([float(role_weight[r]) for r in ROLES])
    role_idx = base.assignment_roles
    w = np.where(is_given, 0.0, weights[role_idx])
    given_sum = np.bincount(cust, weights=np.where(is_given, given, 0.0), minlength=n_cust)
    blank_w = np.bincount(cust, weights=w, minlength=n_cust)
    left = np.clip(1.0 - given_sum, 0.0, None)[cust]
    denom = blank_w[cust]
    share = np.divide(w, denom, out=np.zeros_like(w), where=denom > 0)
    is_new = base.customers["is_new"].to_numpy(dtype=bool)[cust]
    derived = left * share * np.where(is_new, 1.0, stock_factor)
    return np.where(is_given, given, derived), is_given


def manager_measures(base: Base, coef: np.ndarray) -> pd.DataFrame:
    """Attributed contribution and balances per manager: ``sum over customers of c * X``.

    Returns
    -------
    DataFrame
        One row per manager (same order as ``base.managers``) with every computed KPI and the
        four line contributions, in yuan (counts for ``new_customers``, ``cross_sell``).
    """
    n_mgr = len(base.managers)
    mgr = base.assignments["mgr_idx"].to_numpy()
    X = base.assignment_measures

    def attributed(measure: str) -> np.ndarray:
        return np.bincount(mgr, weights=coef * X[:, _M[measure]], minlength=n_mgr) if len(mgr) else np.zeros(n_mgr)

    cols = {line: attributed(line) for line in PAY_LINES}
    cols["total"] = pd.DataFrame({line: cols[line] for line in PAY_LINES}).sum(axis=1).to_numpy()
    c_sum = np.bincount(mgr, weights=coef, minlength=n_mgr) if len(mgr) else np.zeros(n_mgr)
    cols["deposit_avg"] = attributed("liability_avg")
    cols["deposit_increase"] = attributed("liability_increase")
    cols["loan_avg"] = attributed("asset_avg")
    cols["loan_increase"] = attributed("asset_increase")
    npl = attributed("npl_balance")
    prods = attributed("products")
    cols["asset_contribution"] = cols["asset"]
    cols["liability_contribution"] = cols["liability"]
    cols["intermediate_contribution"] = cols["intermediate"]
    cols["risk_contribution"] = cols["risk"]
    cols["total_contribution"] = cols["total"]
    cols["new_customers"] = attributed("new")
    cols["cross_sell"] = np.divide(prods, c_sum, out=np.zeros(n_mgr), where=c_sum > 0)
    loans = cols["loan_avg"]
    cols["npl_ratio"] = np.divide(npl, loans, out=np.zeros(n_mgr), where=loans > 0)
    cols["customers"] = c_sum
    return _with_columns(base.managers, cols)


def _with_columns(frame: pd.DataFrame, cols: dict) -> pd.DataFrame:
    """``frame`` with ``cols`` (name -> array) added after its columns, in one step (adding one
    column at a time copies the column index each time) and without copying ``frame``."""
    if any(c in frame.columns for c in cols):
        return frame.assign(**cols)
    return pd.concat([frame, pd.DataFrame(cols, index=frame.index)], axis=1)


def score_kpis(measures: pd.DataFrame, base: Base, kpis) -> pd.DataFrame:
    """Points per manager and KPI (DOMAIN 6).

    Parameters
    ----------
    measures : DataFrame
        From :func:`manager_measures` (one row per manager).
    base : Base
        For uploaded KPI values and targets.
    kpis : sequence of KpiDef

    Returns
    -------
    DataFrame
        Long table, one row per (manager, KPI): ``actual``, ``target``, ``target_source``,
        ``points``.
    """
    ids = measures["manager_id"]
    n = len(ids)
    parts = {k: [] for k in ("actual", "target", "from_targets", "points")}
    for k in kpis:
        if k.code in COMPUTED_KPIS:
            actual = measures[k.code].to_numpy(dtype=float)
        elif k.code in base.kpis.columns:
            actual = ids.map(base.kpis[k.code]).to_numpy(dtype=float)
            actual = np.nan_to_num(actual, nan=0.0)
        else:
            actual = np.zeros(n)
        if k.code in base.targets.columns:
            given = ids.map(base.targets[k.code]).to_numpy(dtype=float)
        else:
            given = np.full(n, np.nan)
        mean = float(actual.mean()) if len(actual) else 0.0
        target = np.where(np.isnan(given), mean, given)
        w, cap = float(k.weight), float(k.cap)
        if k.kind == "deduction":
            points = -w * actual
        elif k.kind == "ratio":
            ratio = np.divide(actual, target, out=np.zeros_like(actual), where=target > 0)
            points = np.where(target > 0, w * np.clip(ratio, 0.0, cap), np.where(actual >= target, w, 0.0))
        else:  # inverse
            ratio = np.divide(target, actual, out=np.full_like(actual, cap), where=actual > 0)
            scored = np.where(actual <= 0, w * cap, w * np.clip(ratio, 0.0, cap))
            points = np.where(target > 0, scored, np.where(actual <= target, w, 0.0))
        for key, value in (("actual", actual), ("target", target), ("from_targets", ~np.isnan(given)),
                           ("points", points)):
            parts[key].append(value)
    if not kpis:
        return pd.DataFrame(columns=["manager_id", "kpi", "perspective", "kind", "weight", "cap", "actual",
                                     "target", "target_source", "points"])
    kpis = list(kpis)

    def each(values) -> np.ndarray:            # one value per KPI, repeated for its managers
        return np.repeat(np.asarray(values, dtype=object), n)

    return pd.DataFrame({
        "manager_id": np.tile(ids.to_numpy(), len(kpis)),
        "kpi": each([k.code for k in kpis]), "perspective": each([k.perspective for k in kpis]),
        "kind": each([k.kind for k in kpis]),
        "weight": np.repeat([float(k.weight) for k in kpis], n), "cap": np.repeat([float(k.cap) for k in kpis], n),
        "actual": np.concatenate(parts["actual"]), "target": np.concatenate(parts["target"]),
        "target_source": np.where(np.concatenate(parts["from_targets"]), "targets", "mean").astype(object),
        "points": np.concatenate(parts["points"]),
    })


def grade_of(score: np.ndarray, grades: dict) -> np.ndarray:
    """Grade name per score: ``senior`` >= grades['senior'], ..., else ``unrated``."""
    score = np.asarray(score, dtype=float)
    out = np.full(score.shape, "unrated", dtype=object)
    for g in reversed(GRADE_ORDER[:-1]):  # lowest bound first, higher grades overwrite
        out[score >= grades[g]] = g
    return out


def rank_desc(values, groups=None) -> np.ndarray:
    """Rank descending; ties share the lower rank number (1, 2, 2, 4). Compares to 1e-6."""
    s = pd.Series(np.round(np.asarray(values, dtype=float), 6))
    if groups is None:
        return s.rank(method="min", ascending=False).to_numpy(dtype=np.int64)
    return s.groupby(np.asarray(groups)).rank(method="min", ascending=False).to_numpy(dtype=np.int64)


def evaluate(base: Base, scenario: Scenario, overrides: dict | None = None) -> Result:
    """Run the light stage for one scenario.

    Parameters
    ----------
    base : Base
        From :func:`calc.heavy.build_base` with the same account-level parameters.
    scenario : Scenario
    overrides : dict, optional
        Per-pair given coefficients, see :func:`coefficients`.

    Returns
    -------
    Result

    Raises
    ------
    ValueError
        When ``base`` was built with other account-level parameters than ``scenario``'s.
    """
    if base.account_key != scenario.account_key():
        raise ValueError("the heavy stage was computed with other account-level parameters "
                         "(days, day basis, tax, costs, capital); rebuild it for this scenario")
    coef, is_given = coefficients(base, scenario.role_weight, scenario.stock_factor, overrides)
    m = manager_measures(base, coef)

    f = scenario.pay_factor
    extra = {}
    pay_raw = sum(f[line] * m[line] for line in PAY_LINES)
    extra["pay_raw"] = pay_raw
    extra["pay"] = pay_raw.clip(lower=0.0) if scenario.floor_at_zero else pay_raw
    positive = pay_raw.clip(lower=0.0)
    denom = float(positive.sum())
    extra["points_pay"] = scenario.pool * positive / denom if denom > 0 else np.zeros(len(m))

    kpi = score_kpis(m, base, scenario.kpi)
    n = len(m)
    score = np.zeros(n)
    for persp in PERSPECTIVES:
        part = kpi[kpi["perspective"] == persp]
        col = np.zeros(n)
        if len(part):
            per = part.groupby("manager_id", sort=False)["points"].sum()
            col = m["manager_id"].map(per).fillna(0.0).to_numpy(dtype=float)
        extra[f"score_{persp}"] = col
        score += col
    extra["score"] = score
    extra["grade"] = grade_of(score, scenario.grades)
    rank_on = extra["points_pay"] if scenario.pay_method == "points" else extra["pay"]
    extra["rank"] = rank_desc(rank_on)
    extra["branch_rank"] = rank_desc(rank_on, m["branch"])
    m = _with_columns(m, extra)

    c_sum = np.bincount(base.assignments["cust_idx"].to_numpy(), weights=coef, minlength=len(base.customers)) \
        if len(coef) else np.zeros(len(base.customers))
    total = base.customers["total"].to_numpy()
    segments, whale = _segments(base, scenario)
    cust = pd.concat([base.customers, pd.DataFrame({"coef_sum": c_sum, "attributed": c_sum * total,
                                                    "unattributed": (1.0 - c_sum) * total},
                                                   index=base.customers.index), segments], axis=1)

    asg = _with_columns(base.assignments, {"coefficient_used": coef,
                                           "coefficient_source": _coefficient_source(base, is_given, overrides)})

    totals = {
        "contribution": float(cust["total"].sum()),
        "attributed": float(m["total"].sum()),
        "unattributed": float(cust["unattributed"].sum()),
        "pay": float(m["pay"].sum()),
        "points_pay": float(m["points_pay"].sum()),
        "pool": float(scenario.pool),
        "pool_undistributed": float(scenario.pool) - float(m["points_pay"].sum()),
    }
    for line in PAY_LINES:
        totals[f"contribution_{line}"] = float(cust[line].sum())
        totals[f"attributed_{line}"] = float(m[line].sum())
        totals[f"unattributed_{line}"] = float(((1.0 - c_sum) * cust[line]).sum())
    return Result(managers=m, customers=cust, kpi=kpi, assignments=asg, totals=totals, whale=dict(whale))


def _segments(base: Base, scenario: Scenario):
    """Tier, relationship level, lifetime value and whale figures of ``base``'s customers: no
    slider moves them, so they are computed once per Base and segmentation parameters."""
    key = ("segments", tuple(sorted(scenario.tiers.items())), float(scenario.loyalty_years),
           float(scenario.acquisition_cost))
    cache = base.light_cache
    if key not in cache:
        cache[key] = segment_columns(base.customers, scenario, base.days, base.day_basis)
    return cache[key]


def _coefficient_source(base: Base, is_given: np.ndarray, overrides: dict | None):
    """``given`` / ``derived`` per assignment row, as a ``str`` array built by Arrow (the same
    array on every move without overrides)."""
    if overrides:
        return _given_or_derived(is_given)
    cache = base.light_cache
    if "source" not in cache:
        cache["source"] = _given_or_derived(is_given)
    return cache["source"]


def _given_or_derived(is_given: np.ndarray):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pd.array(pc.if_else(pa.array(is_given, type=pa.bool_()), "given", "derived"), dtype="str")
