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

import threading

import numpy as np
import pandas as pd

from calc.columns import MANAGER_MEASURES
from calc.heavy import CUSTOMER_MEASURES, Base
from calc.rules import check_coefficients
from calc.scenario import GRADES, PAY_LINES, PERSPECTIVES, ROLES, Scenario
from calc.segments import segment_columns

__all__ = ["Result", "coefficients", "manager_measures", "score_kpis", "grade_of", "rank_desc", "evaluate",
           "COMPUTED_KPIS", "GRADE_ORDER"]

GRADE_ORDER = (*GRADES, "unrated")
COMPUTED_KPIS = ("deposit_avg", "deposit_increase", "loan_avg", "loan_increase", "asset_contribution",
                 "liability_contribution", "intermediate_contribution", "risk_contribution", "total_contribution",
                 "new_customers", "cross_sell", "npl_ratio", "customers")
_M = {m: i for i, m in enumerate(CUSTOMER_MEASURES)}


class Result:
    """One scenario's results.

    ``managers``, ``totals`` and ``whale`` are computed by the light stage; ``customers``,
    ``kpi`` and ``assignments`` (hundreds of thousands of rows at a bank's scale) may be given
    as functions that compute them on first access, so a slider move builds only what the page
    reads.

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

    _LAZY = ("customers", "kpi", "assignments")
    __slots__ = ("managers", "totals", "whale", "_parts", "_lock")

    def __init__(self, managers: pd.DataFrame, customers, kpi, assignments, totals: dict, whale: dict):
        self.managers = managers
        self.totals = totals
        self.whale = whale
        self._parts = {"customers": customers, "kpi": kpi, "assignments": assignments}
        self._lock = threading.Lock()

    def _part(self, name: str) -> pd.DataFrame:
        value = self._parts[name]
        if callable(value):
            with self._lock:                     # sessions may share a result: compute it once
                value = self._parts[name]
                if callable(value):
                    value = value()
                    self._parts[name] = value
        return value

    @property
    def customers(self) -> pd.DataFrame:
        return self._part("customers")

    @property
    def kpi(self) -> pd.DataFrame:
        return self._part("kpi")

    @property
    def assignments(self) -> pd.DataFrame:
        return self._part("assignments")

    def replace(self, **changes) -> "Result":
        """A copy with some of the six parts replaced (the others shared, lazy ones still lazy)."""
        parts = {"managers": self.managers, "totals": self.totals, "whale": self.whale, **self._parts}
        unknown = set(changes) - set(parts)
        if unknown:
            raise ValueError(f"Result has no part {sorted(unknown)}")
        return Result(**{**parts, **changes})

    def __repr__(self) -> str:
        return f"Result(managers={len(self.managers)} rows, totals={self.totals!r})"


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

    Raises
    ------
    calc.rules.CoefficientError
        When the overrides break DOMAIN 5 (a coefficient outside (0, 1], a customer's given
        coefficients summing above 1), naming the customer and the sum.
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
        check_coefficients(asg["customer_id"].to_numpy(), asg["manager_id"].to_numpy(), given, "coefficient edits")
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
    for name, measure in MANAGER_MEASURES.items():      # deposit_avg = sum c x liability avg ...
        cols[name] = attributed(measure)
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
    scored = []
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
        scored.append(kpi_points(k, actual, given))
    return kpi_table(ids.to_numpy(), list(kpis), scored)


def kpi_points(k, actual: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One KPI's points for every manager (DOMAIN 6).

    Parameters
    ----------
    k : KpiDef
    actual : ndarray
        The KPI's value per manager (yuan, counts or ratios; 0 where an uploaded value is missing).
    given : ndarray
        The ``targets`` sheet's value per manager, NaN where none is given (the mean of
        ``actual`` is then the target).

    Returns
    -------
    tuple of ndarray
        ``actual``, ``target``, ``from_targets`` (bool), ``points``.
    """
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
    return actual, target, ~np.isnan(given), points


def kpi_table(ids: np.ndarray, kpis: list, scored: list) -> pd.DataFrame:
    """The long KPI table from :func:`kpi_points` of each KPI (same order as ``kpis``)."""
    if not kpis:
        return pd.DataFrame(columns=["manager_id", "kpi", "perspective", "kind", "weight", "cap", "actual",
                                     "target", "target_source", "points"])
    n = len(ids)

    def each(values) -> np.ndarray:            # one value per KPI, repeated for its managers
        return np.repeat(np.asarray(values, dtype=object), n)

    actual, target, from_targets, points = (np.concatenate([x[i] for x in scored]) for i in range(4))
    return pd.DataFrame({
        "manager_id": np.tile(ids, len(kpis)),
        "kpi": each([k.code for k in kpis]), "perspective": each([k.perspective for k in kpis]),
        "kind": each([k.kind for k in kpis]),
        "weight": np.repeat([float(k.weight) for k in kpis], n), "cap": np.repeat([float(k.cap) for k in kpis], n),
        "actual": actual, "target": target,
        "target_source": np.where(from_targets, "targets", "mean").astype(object),
        "points": points,
    })


def grade_of(score: np.ndarray, grades: dict) -> np.ndarray:
    """Grade name per score: ``senior`` >= grades['senior'], ..., else ``unrated``.

    The highest grade whose bound the score reaches (also when bounds are out of order).
    """
    return _GRADE_NAMES[_grade_codes(score, grades)]


def _grade_codes(score: np.ndarray, grades: dict) -> np.ndarray:
    """Position in :data:`GRADE_ORDER` of each score's grade."""
    score = np.asarray(score, dtype=float)
    return np.select([score >= grades[g] for g in GRADE_ORDER[:-1]], range(len(GRADE_ORDER) - 1),
                     len(GRADE_ORDER) - 1)


_GRADE_NAMES = np.array(GRADE_ORDER, dtype=object)
_GRADE_STR = pd.array(GRADE_ORDER, dtype="str")


def rank_desc(values, groups=None) -> np.ndarray:
    """Rank descending; ties share the lower rank number (1, 2, 2, 4). Compares to 1e-6.

    ``groups`` (optional, one label per value): rank within each group instead. Sorting, not
    a pandas group-by: a few thousand managers rank in well under a millisecond.
    """
    return ranks_desc(values, groups)[0 if groups is None else 1]


def ranks_desc(values, groups=None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`rank_desc` of ``values`` overall and, given ``groups``, within each group (else
    None), from one sort of the values: a move ranks the managers and ranks them per branch."""
    v = np.round(np.asarray(values, dtype=float), 6)
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=np.int64), None if groups is None else np.zeros(0, dtype=np.int64)
    # from high to low; equal values share a rank, so their order among themselves does not matter
    # and an unstable sort (3x faster) gives the same ranks, except for NaN, which never ties
    order = np.argsort(-v, kind="stable" if np.isnan(v).any() else None)
    overall = _runs_ranked(v, order, np.zeros(n, dtype=np.int64))
    if groups is None:
        return overall, None
    g = np.asarray(groups)                       # ... within each group (a stable sort keeps the order)
    if g.dtype.kind not in "iu":
        g = pd.factorize(g, use_na_sentinel=False)[0]
    key = g[order]
    if key.min() >= 0 and key.max() < 2**15:     # a 16-bit key sorts by radix: linear, 5x faster
        key = key.astype(np.int16)
    return overall, _runs_ranked(v, order[np.argsort(key, kind="stable")], g)


def _runs_ranked(v: np.ndarray, order: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Ranks from ``order`` (by group, then from high to low): 1 + the position in the group of
    the first value of each run of equal values."""
    n = len(v)
    gs, vs = g[order], v[order]
    pos = np.arange(n)
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    new_group[1:] = gs[1:] != gs[:-1]
    new_run = new_group.copy()
    new_run[1:] |= vs[1:] != vs[:-1]             # a tie (same rounded value) continues the run
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
    out = np.empty(n, dtype=np.int64)
    out[order] = run_start - group_start + 1
    return out


def evaluate(base: Base, scenario: Scenario, overrides: dict | None = None) -> Result:
    """Run the light stage for one scenario, every step over every assignment row.

    The reference: the command line, publications and their verification use it (its sums run
    in a fixed row order, so a publication recomputes to the same bits). The app's what-if uses
    :func:`live`, which gives the same numbers (to float rounding) from per-manager aggregates.

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
        When ``base`` was built with other account-level parameters than ``scenario``'s, or
        carries other coefficient edits (:func:`calc.whatif.edited`).
    """
    if base.account_key != scenario.account_key():
        raise ValueError("the heavy stage was computed with other account-level parameters "
                         "(days, day basis, tax, costs, capital); rebuild it for this scenario")
    if base.edits != scenario.edits_key():
        raise ValueError("the heavy stage carries other coefficient edits than this scenario's; "
                         "apply them with calc.whatif.edited(base, scenario)")
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
    extra["rank"], extra["branch_rank"] = ranks_desc(rank_on, m["branch"])
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


# --------------------------------------------------------------------------------------------
# The live what-if: the same light stage from per-manager aggregates (DOMAIN 5 by pattern)

_ONES = len(CUSTOMER_MEASURES)          # the extra column of ones in the aggregates: sum of coefficients
_N_ROLES = len(ROLES)


class _Aggregates:
    """What no lever changes, per Base, for :class:`Live` (built once, ~0.1-0.3 s at 1M accounts).

    A derived coefficient is ``left(c) * w[role] / (w . n(c)) * s(c)``: ``left(c)`` is what the
    given coefficients of customer ``c`` leave, ``n(c)`` the count of its blank coefficients per
    role (its *pattern*; a bank has a handful), ``s(c)`` 1 for a new customer, else the stock
    factor. So ``sum over a manager's blank rows of coefficient * X`` is a sum over the groups
    (manager, role, pattern, new) of ``w[role] / (w . n(pattern)) * s(new)`` times the group's
    fixed ``sum of left(c) * X``: a move costs O(groups), not O(assignments).
    """

    def __init__(self, base: Base):
        asg = base.assignments
        self.n_mgr, self.n_cust = len(base.managers), len(base.customers)
        cust = asg["cust_idx"].to_numpy().astype(np.int64)
        mgr = asg["mgr_idx"].to_numpy().astype(np.int64)
        given = asg["coefficient"].to_numpy(dtype=float)
        is_given = ~np.isnan(given)
        role = np.asarray(base.assignment_roles, dtype=np.int64) % _N_ROLES   # as weights[role] reads -1
        X = np.empty((len(cust), _ONES + 1))
        X[:, :_ONES] = base.assignment_measures
        X[:, _ONES] = 1.0
        self.cust, self.mgr, self.role, self.given, self.is_given, self.X = cust, mgr, role, given, is_given, X
        self.is_new = base.customers["is_new"].to_numpy(dtype=bool)
        nc, nm = self.n_cust, self.n_mgr

        # the given coefficients' part of every manager sum (fixed without overrides)
        self.G = _sums_by(mgr[is_given], given[is_given, None] * X[is_given], nm)
        # per customer: the given sum, what it leaves, its pattern of blank roles
        self.given_sum = np.bincount(cust, weights=np.where(is_given, given, 0.0), minlength=nc)
        self.left = np.clip(1.0 - self.given_sum, 0.0, None)
        blank = ~is_given
        counts = np.stack([np.bincount(cust[blank & (role == r)], minlength=nc) for r in range(_N_ROLES)], axis=1) \
            if nc else np.zeros((0, _N_ROLES), dtype=np.int64)
        k = int(counts.max()) + 1 if counts.size else 1
        code = (counts[:, 0] * k + counts[:, 1]) * k + counts[:, 2]
        codes, self.pattern = np.unique(code, return_inverse=True)
        self.patterns = np.stack([codes // (k * k), codes // k % k, codes % k], axis=1).astype(float)
        # the blank rows grouped by (manager, role, pattern, new): fixed sums of left * X
        b = np.flatnonzero(blank)
        cb = cust[b]
        n_pat = len(codes)
        # new customers' groups and stock customers' groups apart: a stock-factor move only
        # rescales the second part (see Live._blank_parts)
        self.parts = []
        for new in (True, False):
            b_part = b[self.is_new[cb] == new]
            cp = cust[b_part]
            key = (mgr[b_part] * _N_ROLES + role[b_part]) * n_pat + self.pattern[cp]
            gkeys, gid = np.unique(key, return_inverse=True)
            A = _sums_by(gid, self.left[cp, None] * X[b_part], len(gkeys))
            g_pat, g_role, g_mgr = gkeys % n_pat, gkeys // n_pat % _N_ROLES, gkeys // (n_pat * _N_ROLES)
            # by class (pattern, role) a dense managers x columns block, when that is no bigger
            # than a few times the groups: a move is then one matrix-vector product over the
            # classes used (a bank has a handful), else a sum per manager over its groups
            classes, k = np.unique(g_pat * _N_ROLES + g_role, return_inverse=True)
            if len(classes) * nm <= _DENSE_CLASSES * max(len(gkeys), 1):
                T = np.zeros((len(classes), nm, A.shape[1]))
                T[k, g_mgr] = A
                self.parts.append(("dense", T.reshape(len(classes), nm * A.shape[1]), classes // _N_ROLES, classes % _N_ROLES))
            else:
                g_managers, g_starts = np.unique(g_mgr, return_index=True)  # keys sorted
                self.parts.append(("groups", np.asfortranarray(A), g_pat, g_role, g_managers, g_starts))
        # per customer: the measures the totals add up (contribution per line and total)
        c = base.customers
        self.C = np.column_stack([c[x].to_numpy(dtype=float) for x in (*PAY_LINES, "total")]) \
            if nc else np.zeros((0, len(PAY_LINES) + 1))
        self.contribution = {x: float(c[x].sum()) for x in (*PAY_LINES, "total")}
        # ... and their coefficient-weighted sums by class (pattern, new): the unattributed
        # totals of a move in O(classes); each customer's coefficient sum only when read
        self.cls = self.pattern * 2 + self.is_new
        self.GC = self.given_sum @ self.C if nc else np.zeros(self.C.shape[1])
        self.LC = _sums_by(self.cls, self.left[:, None] * self.C, 2 * n_pat)
        self.SC = self.C.sum(axis=0)
        # where each customer's rows are, for overrides (a few customers)
        self.by_cust = np.argsort(cust, kind="stable")
        self.cust_starts = np.concatenate([[0], np.cumsum(np.bincount(cust, minlength=nc))])
        self.branch = pd.factorize(base.managers["branch"].to_numpy(), use_na_sentinel=False)[0]
        ids = base.managers["manager_id"]
        self.kpi_actual = {code: np.nan_to_num(ids.map(base.kpis[code]).to_numpy(dtype=float), nan=0.0)
                           for code in base.kpis.columns if code not in COMPUTED_KPIS}
        self.no_target = np.full(self.n_mgr, np.nan)
        self.no_target.flags.writeable = False
        self.kpi_target = {code: ids.map(base.targets[code]).to_numpy(dtype=float) for code in base.targets.columns}

    def shares(self, w: np.ndarray) -> np.ndarray:
        """``w[role] / (w . n(pattern))`` per (pattern, role); 0 where the pattern's blank roles weigh 0."""
        wn = self.patterns @ w               # only a role the pattern has: then w[role] <= w . n
        return np.divide(np.broadcast_to(w, self.patterns.shape), wn[:, None], out=np.zeros(self.patterns.shape),
                         where=(wn[:, None] > 0) & (self.patterns > 0))

    def rows_of(self, customers: np.ndarray) -> np.ndarray:
        """Assignment rows of the given customer positions (sorted)."""
        parts = [self.by_cust[self.cust_starts[c]:self.cust_starts[c + 1]] for c in customers]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


_DENSE_CLASSES = 4     # dense per-class manager sums when classes x managers <= 4 x the groups


def _sums_by(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Column sums of ``values`` (rows x columns) per group ``0 .. n-1``."""
    out = np.zeros((n, values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(groups, weights=values[:, j], minlength=n) if len(groups) else 0.0
    return out


def _row_coefficients(agg: _Aggregates, rows: np.ndarray, given: np.ndarray, w: np.ndarray,
                      stock_factor: float) -> np.ndarray:
    """DOMAIN 5 for the assignment ``rows`` (every row of their customers) with the given
    coefficients ``given`` (NaN = blank): the same rule as :func:`coefficients`, on a few rows."""
    cust = agg.cust[rows]
    local, inverse = np.unique(cust, return_inverse=True)
    is_given = ~np.isnan(given)
    wr = np.where(is_given, 0.0, w[agg.role[rows]])
    given_sum = np.bincount(inverse, weights=np.where(is_given, given, 0.0), minlength=len(local))
    blank_w = np.bincount(inverse, weights=wr, minlength=len(local))
    left = np.clip(1.0 - given_sum, 0.0, None)[inverse]
    denom = blank_w[inverse]
    share = np.divide(wr, denom, out=np.zeros_like(wr), where=denom > 0)
    derived = left * share * np.where(agg.is_new[cust], 1.0, stock_factor)
    return np.where(is_given, given, derived)


class Live:
    """The light stage for slider moves on one Base: :meth:`evaluate` gives what
    :func:`evaluate` gives (to float rounding), recomputing only what the moved levers change.

    - role weights, stock factor, overrides -> the manager sums (O(managers x patterns)) and
      each customer's coefficient sum (O(customers), closed form);
    - pay-link factors, floor, pool, pay method -> pay, points pay, ranks (O(managers));
    - KPI table, grade bounds -> scores and grades (O(managers x KPIs));
    - tiers, lifetime value, whale figures: once per segmentation parameters.

    The last few results of each step are kept, so moving one lever back and forth reuses the
    others. Customers, assignments and the KPI table are built only when read (see :class:`Result`).
    Sessions share a Live (one per Base); it holds no per-session state.
    """

    KEEP = 8            # results kept per step

    def __init__(self, base: Base):
        self.base = base
        self.agg = _Aggregates(base)
        self._memo: dict[str, dict] = {"blank": {}, "coef": {}, "measures": {}, "pay": {}, "score": {}}
        self._lock = threading.Lock()

    def _remember(self, step: str, key, compute):
        memo = self._memo[step]
        hit = memo.get(key)
        if hit is not None:
            return hit
        value = compute()
        with self._lock:
            if len(memo) >= self.KEEP:
                memo.pop(next(iter(memo)))
            memo[key] = value
        return value

    # -- the steps --------------------------------------------------------------------------

    def _blank_parts(self, role_weight: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Manager sums of the derived coefficients' part, for new customers and for stock
        customers (before the stock factor): managers x (measures + ones) each."""
        agg = self.agg
        share = agg.shares(np.asarray(role_weight, dtype=float))
        out = []
        for kind, *part in agg.parts:
            if kind == "dense":
                T, k_pat, k_role = part
                # einsum's own loop, not BLAS: a multi-threaded BLAS call stalls on a busy 2-core server
                out.append(np.einsum("k,kn->n", share[k_pat, k_role], T).reshape(agg.G.shape) if len(T)
                           else np.zeros_like(agg.G))
                continue
            A, g_pat, g_role, g_managers, g_starts = part
            M = np.zeros_like(agg.G)
            if len(A):
                M[g_managers] = np.add.reduceat(A * share[g_pat, g_role][:, None], g_starts, axis=0)
            out.append(M)
        return out[0], out[1]

    def _coef_step(self, role_weight: tuple, stock_factor: float, overrides: tuple):
        """Manager sums ``M`` (managers x measures + ones), what each class of customers passes
        on (for the coefficient sums), the coefficient-weighted customer sums, the override rows."""
        agg = self.agg
        w = np.asarray(role_weight, dtype=float)
        new, stock = self._remember("blank", role_weight, lambda: self._blank_parts(role_weight))
        M = agg.G + new + stock_factor * stock
        wn = agg.patterns @ w
        # what each class (pattern, new) of customers passes on of what its given coefficients leave
        passed = np.stack([(wn > 0) * stock_factor, (wn > 0) * 1.0], axis=1).reshape(-1)
        attributed = agg.GC + passed @ agg.LC            # coefficient-weighted customer sums
        c_sum = None                                     # per customer: built when read
        touched = None
        if overrides:
            rows, given = self._override_rows(dict(overrides))
            if len(rows):
                before = _row_coefficients(agg, rows, agg.given[rows], w, stock_factor)
                after = _row_coefficients(agg, rows, given, w, stock_factor)
                M += _sums_by(agg.mgr[rows], (after - before)[:, None] * agg.X[rows], agg.n_mgr)
                cust = agg.cust[rows]
                attributed = attributed + (after - before) @ agg.C[cust]
                touched = (rows, given)
        return M, attributed, passed, touched

    def _coef_sums(self, passed: np.ndarray, touched, w: np.ndarray, stock_factor: float) -> np.ndarray:
        """Each customer's coefficient sum (when the customers are read)."""
        agg = self.agg
        c_sum = agg.given_sum + agg.left * passed[agg.cls]
        if touched is not None:
            rows, given = touched
            cust = agg.cust[rows]
            c_sum[np.unique(cust)] = 0.0
            np.add.at(c_sum, cust, _row_coefficients(agg, rows, given, w, stock_factor))
        return c_sum

    def _override_rows(self, overrides: dict) -> tuple[np.ndarray, np.ndarray]:
        """Every assignment row of the customers an override touches, and their given
        coefficients after the overrides (as :func:`coefficients` sets them)."""
        agg = self.agg
        given = agg.given.copy()
        keys = list(overrides)
        values = np.array([float(overrides[k]) for k in keys])
        pairs = self.base.assignment_pairs
        if pairs.is_unique:
            at = pairs.get_indexer(keys)
            hit = at[at >= 0]
            given[hit] = values[at >= 0]
        else:
            hit = []
            for k, v in zip(keys, values):
                mask = pairs.isin([k])
                given[mask] = v
                hit.extend(np.flatnonzero(mask))
            hit = np.asarray(hit, dtype=np.int64)
        rows = agg.rows_of(np.unique(agg.cust[hit]))
        asg = self.base.assignments                  # the touched customers only: DOMAIN 5 holds
        check_coefficients(asg["customer_id"].to_numpy()[rows], asg["manager_id"].to_numpy()[rows], given[rows],
                           "coefficient edits")
        return rows, given[rows]

    def _pay_step(self, M: np.ndarray, pay_factor: tuple, floor_at_zero: bool, pool: float, pay_method: str):
        lines = [M[:, _M[line]] for line in PAY_LINES]
        pay_raw = 0
        for factor, x in zip(pay_factor, lines):
            pay_raw = pay_raw + factor * x
        pay_raw = np.asarray(pay_raw, dtype=float) + 0.0
        pay = np.clip(pay_raw, 0.0, None) if floor_at_zero else pay_raw
        positive = np.clip(pay_raw, 0.0, None)
        denom = float(positive.sum())
        points_pay = pool * positive / denom if denom > 0 else np.zeros(len(M))
        rank_on = points_pay if pay_method == "points" else pay
        rank, branch_rank = ranks_desc(rank_on, self.agg.branch)
        return {"pay_raw": pay_raw, "pay": pay, "points_pay": points_pay, "rank": rank, "branch_rank": branch_rank}

    def _score_step(self, measures: dict, kpis: tuple, grades: tuple):
        agg, n = self.agg, self.agg.n_mgr
        scored = []
        for k in kpis:
            if k.code in COMPUTED_KPIS:
                actual = measures[k.code]
            else:
                actual = agg.kpi_actual.get(k.code, np.zeros(n))
            given = agg.kpi_target.get(k.code)
            scored.append(kpi_points(k, actual, agg.no_target if given is None else given))
        cols, score = {}, np.zeros(n)
        for persp in PERSPECTIVES:
            col = np.zeros(n)
            for k, x in zip(kpis, scored):
                if k.perspective == persp:
                    col = col + x[3]
            cols[f"score_{persp}"] = col
            score = score + col
        cols["score"] = score
        cols["grade"] = _GRADE_STR.take(_grade_codes(score, dict(grades)))   # text without Python strings
        return cols, scored

    # -- one move ---------------------------------------------------------------------------

    def evaluate(self, scenario: Scenario, overrides: dict | None = None) -> Result:
        """The light stage for ``scenario`` (and per-pair ``overrides``, see :func:`coefficients`).

        Raises
        ------
        ValueError
            When the Base was built with other account-level parameters than ``scenario``'s.
        """
        base, agg = self.base, self.agg
        if base.account_key != scenario.account_key():
            raise ValueError("the heavy stage was computed with other account-level parameters "
                             "(days, day basis, tax, costs, capital); rebuild it for this scenario")
        if base.edits != scenario.edits_key():
            raise ValueError("the heavy stage carries other coefficient edits than this scenario's; "
                             "apply them with calc.whatif.edited(base, scenario)")
        role_weight = tuple(float(scenario.role_weight[r]) for r in ROLES)
        over = tuple(sorted((k, float(v)) for k, v in overrides.items())) if overrides else ()
        coef_key = (role_weight, float(scenario.stock_factor), over)
        M, attributed, passed, touched = self._remember("coef", coef_key, lambda: self._coef_step(*coef_key))
        measures = self._remember("measures", coef_key, lambda: _measures_of(M))
        pay_key = (coef_key, tuple(float(scenario.pay_factor[x]) for x in PAY_LINES), bool(scenario.floor_at_zero),
                   float(scenario.pool), scenario.pay_method)
        pay = self._remember("pay", pay_key, lambda: self._pay_step(M, *pay_key[1:]))
        kpis = tuple(scenario.kpi)
        score_key = (coef_key, kpis, tuple(sorted(scenario.grades.items())))
        scores, scored = self._remember("score", score_key, lambda: self._score_step(measures, kpis, score_key[2]))

        cols = dict(measures)
        cols["pay_raw"], cols["pay"], cols["points_pay"] = pay["pay_raw"], pay["pay"], pay["points_pay"]
        cols.update(scores)
        cols["rank"], cols["branch_rank"] = pay["rank"], pay["branch_rank"]
        m = pd.DataFrame({**{c: base.managers[c].array for c in base.managers.columns}, **cols},
                         index=base.managers.index)       # one step (as _with_columns, without a concat)

        unattributed = agg.SC - attributed
        totals = {
            "contribution": agg.contribution["total"],
            "attributed": float(measures["total"].sum()),
            "unattributed": float(unattributed[-1]),
            "pay": float(pay["pay"].sum()),
            "points_pay": float(pay["points_pay"].sum()),
            "pool": float(scenario.pool),
            "pool_undistributed": float(scenario.pool) - float(pay["points_pay"].sum()),
        }
        for j, line in enumerate(PAY_LINES):
            totals[f"contribution_{line}"] = agg.contribution[line]
            totals[f"attributed_{line}"] = float(measures[line].sum())
            totals[f"unattributed_{line}"] = float(unattributed[j])
        segments, whale = _segments(base, scenario)

        def customers() -> pd.DataFrame:
            c_sum = self._coef_sums(passed, touched, np.asarray(role_weight), float(scenario.stock_factor))
            total = base.customers["total"].to_numpy()
            return pd.concat([base.customers, pd.DataFrame({"coef_sum": c_sum, "attributed": c_sum * total,
                                                            "unattributed": (1.0 - c_sum) * total},
                                                           index=base.customers.index), segments], axis=1)

        def assignments() -> pd.DataFrame:
            coef, is_given = self._row_coefficients(role_weight, float(scenario.stock_factor), touched)
            source = _given_or_derived(is_given) if touched is not None else _coefficient_source(base, is_given, None)
            return _with_columns(base.assignments, {"coefficient_used": coef, "coefficient_source": source})

        def kpi() -> pd.DataFrame:
            return kpi_table(base.managers["manager_id"].to_numpy(), list(kpis), scored)

        return Result(managers=m, customers=customers, kpi=kpi, assignments=assignments, totals=totals,
                      whale=dict(whale))

    def _row_coefficients(self, role_weight: tuple, stock_factor: float, touched) -> tuple[np.ndarray, np.ndarray]:
        """The coefficient of every assignment row (when a page reads the assignments)."""
        agg = self.agg
        w = np.asarray(role_weight, dtype=float)
        s = np.where(agg.is_new, 1.0, stock_factor)[agg.cust]
        derived = agg.left[agg.cust] * agg.shares(w)[agg.pattern[agg.cust], agg.role] * s
        coef = np.where(agg.is_given, agg.given, derived)
        is_given = agg.is_given
        if touched is not None:
            rows, given = touched
            coef = coef.copy()
            coef[rows] = _row_coefficients(agg, rows, given, w, stock_factor)
            is_given = is_given.copy()
            is_given[rows] = ~np.isnan(given)
        return coef, is_given


def _measures_of(M: np.ndarray) -> dict:
    """The manager columns of :func:`manager_measures` from the manager sums ``M``."""
    col = {x: M[:, _M[x]] for x in CUSTOMER_MEASURES}
    c_sum = M[:, _ONES]
    n = len(M)
    cols = {line: col[line] for line in PAY_LINES}
    cols["total"] = col["asset"] + col["liability"] + col["intermediate"] + col["risk"]
    for name, measure in MANAGER_MEASURES.items():
        cols[name] = col[measure]
    cols["asset_contribution"] = cols["asset"]
    cols["liability_contribution"] = cols["liability"]
    cols["intermediate_contribution"] = cols["intermediate"]
    cols["risk_contribution"] = cols["risk"]
    cols["total_contribution"] = cols["total"]
    cols["new_customers"] = col["new"]
    cols["cross_sell"] = np.divide(col["products"], c_sum, out=np.zeros(n), where=c_sum > 0)
    loans = cols["loan_avg"]
    cols["npl_ratio"] = np.divide(col["npl_balance"], loans, out=np.zeros(n), where=loans > 0)
    cols["customers"] = c_sum
    return cols


def live(base: Base) -> Live:
    """The :class:`Live` what-if of ``base`` (built on first use, then kept with the Base)."""
    cache = base.light_cache
    model = cache.get("live")
    if model is None:
        model = cache.setdefault("live", Live(base))
    return model
