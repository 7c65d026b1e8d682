"""Explaining and steering a what-if (DOMAIN 11): coefficient edits and reassignment, chain
substitution (连环替代法), budget-neutral scaling and rank sensitivity.

Pure numpy/pandas on the heavy stage's :class:`~calc.heavy.Base` and the light stage's
:class:`~calc.light.Result`; nothing here reads account rows or changes a published number.

Rules chosen where DOMAIN 11 is silent (also in docs/RULES.md):

- Edits apply in the order given; an ``add`` of a pair that exists, or a ``set``, ``derive`` or
  ``remove`` of a pair that does not (after the earlier edits), is refused naming the edit.
- The chain's floor (``floor_at_zero``) belongs to the pay rule, so it changes with the factor
  step: steps 0 to 2 use state A's rule, step 3 state B's.
- The per-line arithmetic of the chain is before the floor; where the floor cuts a step, the
  manager's ``floored`` flag says so and the per-line effects add up to the unfloored change.
- Budget scaling keeps every pay-link factor within the scenario's range (at most 1): when the
  budget needs more, it says so and gives the nearest total (factors at their cap).
- Rank sensitivity moves a lever by +/-10% of its value and clips to its range (stock factor at
  most 1; a role weight or factor at most 1); the value tried is reported.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from calc.heavy import Base
from calc.light import Result, evaluate, live
from calc.rules import check_coefficients
from calc.scenario import EDIT_ACTIONS, PAY_LINES, ROLES, Scenario

__all__ = ["ACTIONS", "Edit", "EditError", "apply_edits", "edited", "edits_of", "reassign", "chain", "chain_states",
           "frozen_state", "chain_lines", "scale_to_budget",
           "Budget", "sensitivity", "FACTOR_CAP"]

ACTIONS = EDIT_ACTIONS
FACTOR_CAP = 1.0            # the largest pay-link factor a scenario accepts (calc.scenario limits)
BUDGET_TOLERANCE = 1.0      # yuan: a scaled total within this of the budget meets it


@dataclass(frozen=True)
class Edit:
    """One coefficient edit (DOMAIN 11.1).

    Attributes
    ----------
    action : str
        ``set`` (give the pair a coefficient), ``derive`` (make it blank: role-derived), ``add``
        (a new pair with ``role``, optionally a coefficient), ``remove`` (delete the pair).
    customer_id, manager_id : str
    role : str, optional
        For ``add``: ``primary``, ``secondary`` or ``support``.
    coefficient : float, optional
        For ``set`` (required) and ``add`` (optional): ``0 < c <= 1``.
    """

    action: str
    customer_id: str
    manager_id: str
    role: str | None = None
    coefficient: float | None = None


class EditError(ValueError):
    """An edit set that cannot apply.

    Attributes
    ----------
    index : int or None
        0-based position of the edit at fault; None when the whole set breaks the sum rule.
    field : str
        The edit's field at fault (``action``, ``customer_id``, ``manager_id``, ``role``,
        ``coefficient``).
    rule : str
        ``action``, ``required``, ``coefficient``, ``set_needs_coefficient``, ``role``,
        ``unknown_customer``, ``unknown_manager``, ``pair_exists``, ``pair_missing``, ``sum``:
        what a report translates (:mod:`data.edits`), with ``params``.
    customer_id : str or None
    """

    def __init__(self, message: str, index: int | None = None, field: str = "", customer_id: str | None = None,
                 rule: str = "", **params):
        super().__init__(message)
        self.index, self.field, self.customer_id, self.rule, self.params = index, field, customer_id, rule, params


def _check_edit(i: int, e: Edit) -> None:
    """Field checks of one edit (before it meets the data)."""
    where = f"edit {i + 1}"
    if e.action not in ACTIONS:
        raise EditError(f"{where}: action {e.action!r} must be one of {', '.join(ACTIONS)}", i, "action",
                        rule="action", value=e.action)
    for name in ("customer_id", "manager_id"):
        v = getattr(e, name)
        if not isinstance(v, str) or not v.strip():
            raise EditError(f"{where}: {name} is required", i, name, rule="required")
    c = e.coefficient
    if c is not None and (not isinstance(c, (int, float)) or not math.isfinite(c) or not 0.0 < c <= 1.0):
        raise EditError(f"{where}: coefficient {c!r} must be a number with 0 < c <= 1", i, "coefficient",
                        rule="coefficient", value=c)
    if e.action == "set" and c is None:
        raise EditError(f"{where}: set needs a coefficient (0 < c <= 1)", i, "coefficient",
                        rule="set_needs_coefficient")
    if e.action == "add" and e.role not in ROLES:
        raise EditError(f"{where}: add needs a role, one of {', '.join(ROLES)} (got {e.role!r})", i, "role",
                        rule="role", value=e.role)


def edits_of(scenario: Scenario) -> list[Edit]:
    """The scenario's coefficient edits (``Scenario.edits``) as :class:`Edit` objects."""
    return [Edit(e["action"], e["customer_id"], e["manager_id"], role=e.get("role"), coefficient=e.get("coefficient"))
            for e in scenario.edits]


def edited(base: Base, scenario: Scenario) -> Base:
    """``base`` with ``scenario``'s coefficient edits applied (``base`` itself without edits); the
    last few edited Bases are kept with ``base``, so a slider move under the same edits reuses
    one (and its incremental light stage).

    Raises
    ------
    EditError
        As :func:`apply_edits`.
    """
    key = scenario.edits_key()
    if key == base.edits:
        return base
    if base.edits:
        raise ValueError("coefficient edits apply to the Base as uploaded, not to an edited one")
    cache = base.light_cache.setdefault("edited", {})
    hit = cache.get(key)
    if hit is None:
        hit = apply_edits(base, edits_of(scenario))
        hit = dataclasses.replace(hit, edits=key)
        while len(cache) >= 4:
            cache.pop(next(iter(cache)), None)
        cache[key] = hit
    return hit


def apply_edits(base: Base, edits) -> Base:
    """The Base with ``edits`` applied to its assignments (DOMAIN 11.1).

    Parameters
    ----------
    base : Base
    edits : sequence of Edit
        Applied in order.

    Returns
    -------
    Base
        A new Base sharing everything with ``base`` but the assignments (the light stage then
        applies DOMAIN 5 unchanged); ``base`` itself when ``edits`` is empty.

    Raises
    ------
    EditError
        An edit naming an unknown customer or manager, a pair that (after the earlier edits)
        does not exist for ``set``/``derive``/``remove`` or exists for ``add``, a bad action,
        role or coefficient; or (``index`` None) an edit set after which a customer's given
        coefficients sum above 1, naming the customer and the sum. Refused as a whole.
    """
    edits = list(edits)
    if not edits:
        return base
    for i, e in enumerate(edits):
        _check_edit(i, e)
    asg = base.assignments
    customers = pd.Index(base.customers["customer_id"])
    managers = pd.Index(base.managers["manager_id"])
    cust_ids = [e.customer_id.strip() for e in edits]
    mgr_ids = [e.manager_id.strip() for e in edits]
    c_at = customers.get_indexer(cust_ids)
    m_at = managers.get_indexer(mgr_ids)
    for i, e in enumerate(edits):
        if c_at[i] < 0:
            raise EditError(f"edit {i + 1}: customer {cust_ids[i]!r} is not in this dataset", i, "customer_id",
                            cust_ids[i], rule="unknown_customer", value=cust_ids[i])
        if m_at[i] < 0:
            raise EditError(f"edit {i + 1}: manager {mgr_ids[i]!r} is not in this dataset", i, "manager_id",
                            cust_ids[i], rule="unknown_manager", value=mgr_ids[i])
    # the pairs the edits touch, as they are now: {pair: (row or None, role, coefficient)}
    touched_customers = sorted(set(cust_ids))
    rows = np.flatnonzero(asg["customer_id"].isin(touched_customers).to_numpy())
    state: dict[tuple, dict] = {}
    order: list[tuple] = []
    for r in rows:
        key = (asg["customer_id"].iat[r], asg["manager_id"].iat[r])
        state.setdefault(key, {"role": asg["role"].iat[r], "coefficient": asg["coefficient"].iat[r], "row": r})
        order.append(key)
    for i, e in enumerate(edits):
        key = (cust_ids[i], mgr_ids[i])
        have = key in state
        if e.action == "add":
            if have:
                raise EditError(f"edit {i + 1}: customer {key[0]} already has manager {key[1]}; use set or remove",
                                i, "manager_id", key[0], rule="pair_exists", value=key[1])
            state[key] = {"role": e.role, "coefficient": np.nan if e.coefficient is None else float(e.coefficient),
                          "row": None}
            order.append(key)
        elif not have:
            raise EditError(f"edit {i + 1}: customer {key[0]} has no manager {key[1]} to {e.action}", i,
                            "manager_id", key[0], rule="pair_missing", value=key[1], action=e.action)
        elif e.action == "set":
            state[key]["coefficient"] = float(e.coefficient)
        elif e.action == "derive":
            state[key]["coefficient"] = np.nan
        else:                                                    # remove
            del state[key]
            order.remove(key)
    # the touched customers' rows after the edits, checked by the one rule (calc.rules)
    kept = [k for k in dict.fromkeys(order) if k in state]
    new = pd.DataFrame({"customer_id": [k[0] for k in kept], "manager_id": [k[1] for k in kept],
                        "role": [state[k]["role"] for k in kept],
                        "coefficient": np.array([state[k]["coefficient"] for k in kept], dtype=float)})
    try:
        check_coefficients(new["customer_id"].to_numpy(dtype=object), new["manager_id"].to_numpy(dtype=object),
                           new["coefficient"].to_numpy(), "coefficient edits")
    except ValueError as err:
        first = getattr(err, "problems", None)
        cid = None if first is None or not len(first) else first["customer_id"].iloc[0]
        total = None if first is None or not len(first) else float(first["value"].iloc[0])
        raise EditError(str(err), None, "coefficient", cid, rule="sum", value=total) from None
    old_rows = [state[k]["row"] for k in kept]
    new["cust_idx"] = customers.get_indexer(new["customer_id"])
    new["mgr_idx"] = managers.get_indexer(new["manager_id"])
    new["_row"] = [asg["_row"].iat[r] if r is not None else -1 for r in old_rows]
    keep = np.ones(len(asg), dtype=bool)
    keep[rows] = False
    out = pd.concat([asg.iloc[np.flatnonzero(keep)], new.astype({c: asg[c].dtype for c in new.columns
                                                                  if c in asg.columns and c != "_row"})],
                    ignore_index=True)
    out = out[list(asg.columns)]
    if "_row" in asg.columns:
        out["_row"] = out["_row"].astype(asg["_row"].dtype, errors="ignore")
    return dataclasses.replace(base, assignments=out)


def reassign(base: Base, customer_id: str, from_manager: str, to_manager: str) -> list[Edit]:
    """The edits that move ``customer_id`` from ``from_manager`` to ``to_manager`` (DOMAIN 11.1):
    ``remove`` the first pair, ``add`` the second with its role and given coefficient.

    Raises
    ------
    EditError
        When the customer has no ``from_manager``.
    """
    asg = base.assignments
    hit = asg[(asg["customer_id"] == customer_id) & (asg["manager_id"] == from_manager)]
    if hit.empty:
        raise EditError(f"customer {customer_id} has no manager {from_manager} to move", 0, "manager_id", customer_id,
                        rule="pair_missing", value=from_manager, action="move")
    role = str(hit["role"].iloc[0])
    c = float(hit["coefficient"].iloc[0])
    return [Edit("remove", customer_id, from_manager),
            Edit("add", customer_id, to_manager, role=role, coefficient=None if math.isnan(c) else c)]


# ---- 11.2 chain substitution ------------------------------------------------------------

def _state(base: Base, result: Result, scenario: Scenario, only=None) -> dict:
    """What the chain reads of one state: every customer's contribution per line (by id), every
    pair's coefficient (of the managers ``only``, when given), the factors and the floor."""
    asg = result.assignments
    managers = base.managers[["manager_id", "name", "branch"]]
    pair_manager = asg["manager_id"].to_numpy(dtype=object)
    keep = slice(None)
    if only is not None:
        keep = np.flatnonzero(asg["manager_id"].isin(list(only)).to_numpy())
        managers = managers[managers["manager_id"].isin(list(only))]
    return {"customers": pd.Index(base.customers["customer_id"]),
            "C": np.column_stack([base.customers[x].to_numpy(dtype=float) for x in PAY_LINES]),
            "pair_customer": asg["customer_id"].to_numpy(dtype=object)[keep],
            "pair_manager": pair_manager[keep],
            "c": asg["coefficient_used"].to_numpy(dtype=float)[keep],
            "f": np.array([scenario.pay_factor[x] for x in PAY_LINES], dtype=float),
            "floor": bool(scenario.floor_at_zero),
            "managers": managers}


def _line_sums(pairs_of: dict, contributions_of: dict, managers: pd.Index) -> np.ndarray:
    """``sum over the pairs of one state of c * C[line]`` per manager (rows: ``managers``),
    with ``C`` taken from another (or the same) state; a customer absent there has ``C = 0``."""
    at = contributions_of["customers"].get_indexer(pairs_of["pair_customer"])
    C = np.where((at >= 0)[:, None], contributions_of["C"][np.maximum(at, 0)], 0.0) if len(at) \
        else np.zeros((0, len(PAY_LINES)))
    m = managers.get_indexer(pairs_of["pair_manager"])
    out = np.zeros((len(managers), len(PAY_LINES)))
    for j in range(len(PAY_LINES)):
        out[:, j] = np.bincount(m, weights=pairs_of["c"] * C[:, j], minlength=len(managers)) if len(m) else 0.0
    return out


def _pay(S: np.ndarray, f: np.ndarray, floor: bool) -> tuple[np.ndarray, np.ndarray]:
    raw = S @ f
    return (np.clip(raw, 0.0, None) if floor else raw), raw


def chain(a: tuple[Base, Result, Scenario], b: tuple[Base, Result, Scenario],
          managers=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chain substitution (连环替代法, DOMAIN 11.2) of every manager's pay from state A to B.

    Parameters
    ----------
    a, b : tuple of (Base, Result, Scenario)
        The two states: two scenarios on one dataset, or two periods.
    managers : iterable of str, optional
        Only these managers (a page explaining one manager reads its pairs only).

    Returns
    -------
    tuple of (DataFrame, DataFrame)
        ``managers``: one row per manager present in either state (A's order, then B's new
        ones): ``manager_id``, ``name``, ``branch``, ``pay_a``, ``step1``, ``step2``, ``pay_b``,
        ``contribution_effect``, ``attribution_effect``, ``factor_effect``, ``change`` (yuan;
        the three effects sum to ``change`` = ``pay_b - pay_a``), ``floored`` (the floor cut a
        step). ``lines``: per manager and line the arithmetic, ``manager_id``, ``line``,
        ``ca_Ca`` (A's coefficients on A's contribution, yuan), ``ca_Cb``, ``cb_Cb``, ``f_a``,
        ``f_b`` and the line's effects before the floor.
    """
    return chain_states(_state(*a, only=managers), _state(*b, only=managers))


def frozen_state(customers: pd.DataFrame, pairs: pd.DataFrame, pay_factor: dict, floor_at_zero: bool,
                 managers: pd.DataFrame) -> dict:
    """A chain state (DOMAIN 11.2) from published rows instead of a Base and a Result.

    Parameters
    ----------
    customers : DataFrame
        ``customer_id`` and the contribution per line (``asset`` ... ``risk``, yuan) of every
        customer the pairs name (a publication's frozen customer rows).
    pairs : DataFrame
        ``customer_id``, ``manager_id``, ``coefficient_used`` (a statement's frozen customers).
    pay_factor : dict
        The published scenario's factors.
    floor_at_zero : bool
    managers : DataFrame
        ``manager_id``, ``name``, ``branch``.
    """
    return {"customers": pd.Index(customers["customer_id"]),
            "C": np.column_stack([customers[x].to_numpy(dtype=float) for x in PAY_LINES]) if len(customers)
            else np.zeros((0, len(PAY_LINES))),
            "pair_customer": pairs["customer_id"].to_numpy(dtype=object),
            "pair_manager": pairs["manager_id"].to_numpy(dtype=object),
            "c": pairs["coefficient_used"].to_numpy(dtype=float),
            "f": np.array([pay_factor[x] for x in PAY_LINES], dtype=float),
            "floor": bool(floor_at_zero),
            "managers": managers[["manager_id", "name", "branch"]]}


def chain_states(A: dict, B: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`chain` on two states (from :func:`_state` or :func:`frozen_state`)."""
    ids = pd.Index(pd.unique(np.concatenate([A["managers"]["manager_id"].to_numpy(dtype=object),
                                             B["managers"]["manager_id"].to_numpy(dtype=object)])))
    S0 = _line_sums(A, A, ids)            # c_A on C_A
    S1 = _line_sums(A, B, ids)            # c_A on C_B
    S2 = _line_sums(B, B, ids)            # c_B on C_B
    p0, r0 = _pay(S0, A["f"], A["floor"])
    p1, r1 = _pay(S1, A["f"], A["floor"])
    p2, r2 = _pay(S2, A["f"], A["floor"])
    p3, r3 = _pay(S2, B["f"], B["floor"])
    names = pd.concat([A["managers"], B["managers"]]).drop_duplicates("manager_id").set_index("manager_id")
    managers = pd.DataFrame({
        "manager_id": ids.to_numpy(dtype=object),
        "name": names["name"].reindex(ids).to_numpy(dtype=object),
        "branch": names["branch"].reindex(ids).to_numpy(dtype=object),
        "pay_a": p0, "step1": p1, "step2": p2, "pay_b": p3,
        "contribution_effect": p1 - p0, "attribution_effect": p2 - p1, "factor_effect": p3 - p2,
        "change": p3 - p0,
        "floored": (p0 != r0) | (p1 != r1) | (p2 != r2) | (p3 != r3),
    })
    n, k = len(ids), len(PAY_LINES)
    lines = pd.DataFrame({
        "manager_id": np.repeat(ids.to_numpy(dtype=object), k),
        "line": np.tile(np.asarray(PAY_LINES, dtype=object), n),
        "ca_Ca": S0.reshape(-1), "ca_Cb": S1.reshape(-1), "cb_Cb": S2.reshape(-1),
        "f_a": np.tile(A["f"], n), "f_b": np.tile(B["f"], n),
    })
    lines["contribution_effect"] = lines["f_a"] * (lines["ca_Cb"] - lines["ca_Ca"])
    lines["attribution_effect"] = lines["f_a"] * (lines["cb_Cb"] - lines["ca_Cb"])
    lines["factor_effect"] = (lines["f_b"] - lines["f_a"]) * lines["cb_Cb"]
    return managers, lines


def chain_lines(lines: pd.DataFrame, manager_id: str) -> pd.DataFrame:
    """One manager's rows of :func:`chain`'s ``lines``, in line order."""
    return lines[lines["manager_id"] == manager_id].reset_index(drop=True)


# ---- 11.3 budget-neutral scaling --------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """What :func:`scale_to_budget` found.

    Attributes
    ----------
    k : float
        The multiplier of the unlocked lines' factors (1 when nothing moved).
    pay_factor : dict
        The scaled pay-link factors.
    total : float
        Total factor pay (sum of ``pay``, yuan) with them.
    budget : float
    reached : bool
        ``abs(total - budget) <= 1`` yuan.
    reason : str
        Empty when reached; else ``locked_exceed`` (the locked lines alone pay more than the
        budget at k = 0), ``nothing_to_scale`` (every line locked, or the unlocked lines pay
        nothing), ``factor_cap`` (the budget needs a factor above 1).
    """

    k: float
    pay_factor: dict
    total: float
    budget: float
    reached: bool
    reason: str = ""


def scale_to_budget(result: Result, scenario: Scenario, budget: float, locked=(), cap: float = FACTOR_CAP) -> Budget:
    """One ``k >= 0`` multiplying the unlocked lines' pay-link factors so that total factor pay
    equals ``budget`` within 1 yuan (DOMAIN 11.3).

    Parameters
    ----------
    result : Result
        The what-if's result under ``scenario`` (its managers' attributed contribution per line
        is what the factors multiply; scaling does not move it).
    scenario : Scenario
    budget : float
        Yuan, >= 0.
    locked : iterable of str
        Lines whose factor stays (``asset``, ``liability``, ``intermediate``, ``risk``).
    cap : float
        The largest factor allowed (default 1, the scenario's limit; the app passes its
        slider's upper end).

    Returns
    -------
    Budget

    Raises
    ------
    ValueError
        A negative or non-finite budget, or an unknown line.
    """
    if not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget < 0:
        raise ValueError(f"budget {budget!r} must be a number of yuan >= 0")
    locked = tuple(locked)
    for line in locked:
        if line not in PAY_LINES:
            raise ValueError(f"locked line {line!r} must be one of {', '.join(PAY_LINES)}")
    m = result.managers
    S = np.column_stack([m[x].to_numpy(dtype=float) for x in PAY_LINES]) if len(m) else np.zeros((0, len(PAY_LINES)))
    f = np.array([scenario.pay_factor[x] for x in PAY_LINES], dtype=float)
    free = np.array([x not in locked for x in PAY_LINES])
    fixed = S @ np.where(free, 0.0, f)               # per manager: the locked lines' pay before the floor
    scaled = S @ np.where(free, f, 0.0)              # ... and the unlocked lines' at k = 1
    floor = bool(scenario.floor_at_zero)

    def total(k: float) -> float:
        raw = fixed + k * scaled
        return float((np.clip(raw, 0.0, None) if floor else raw).sum())

    def answer(k: float, reason: str = "") -> Budget:
        factors = {x: (float(f[i] * k) if free[i] else float(f[i])) for i, x in enumerate(PAY_LINES)}
        t = total(k)
        return Budget(k, factors, t, float(budget), abs(t - budget) <= BUDGET_TOLERANCE and not reason, reason)

    positive = f[free] > 0
    k_cap = float(np.min(cap / f[free][positive])) if positive.any() else math.inf
    at_zero = total(0.0)
    if not positive.any() or total(1.0) == at_zero:
        return answer(1.0, "" if abs(total(1.0) - budget) <= BUDGET_TOLERANCE else "nothing_to_scale")
    if at_zero > budget + BUDGET_TOLERANCE:
        return answer(0.0, "locked_exceed")
    t1 = total(1.0)
    if not locked and t1 > 0:                        # total(k) = k * total(1): exact
        k = budget / t1
        return answer(k) if k <= k_cap else answer(k_cap, "factor_cap")
    if total(k_cap) < budget - BUDGET_TOLERANCE:
        return answer(k_cap, "factor_cap")
    lo, hi = 0.0, k_cap                              # total is non-decreasing in k (DOMAIN 11.3)
    for _ in range(200):
        mid = (lo + hi) / 2
        if total(mid) < budget:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(hi, 1.0):     # to the last bit: pay then matches an exact k to a fen
            break
    k = hi if abs(total(hi) - budget) <= abs(total(lo) - budget) else lo
    return answer(k)


# ---- 11.4 rank sensitivity --------------------------------------------------------------

def _levers(scenario: Scenario) -> list[tuple[str, str, float]]:
    """(lever, key, value) for every lever DOMAIN 11.4 moves."""
    out = [("pay_factor", x, float(scenario.pay_factor[x])) for x in PAY_LINES]
    out += [("role_weight", r, float(scenario.role_weight[r])) for r in ROLES]
    out.append(("stock_factor", "", float(scenario.stock_factor)))
    return out


def _moved(scenario: Scenario, lever: str, key: str, value: float) -> Scenario:
    if lever == "stock_factor":
        return scenario.replace(stock_factor=value)
    return scenario.replace(**{lever: {key: value}})


def sensitivity(base: Base, scenario: Scenario, result: Result | None = None, step: float = 0.10,
                incremental: bool = True) -> pd.DataFrame:
    """Rank sensitivity (DOMAIN 11.4): each lever moved by -``step`` and +``step`` of its value.

    Parameters
    ----------
    base : Base
    scenario : Scenario
        The what-if (its ranks are the reference).
    result : Result, optional
        Its result (computed when not given).
    step : float
        Relative move (0.10 = 10 %).
    incremental : bool
        Use the incremental light stage (:func:`calc.light.live`), else the reference one.

    Returns
    -------
    DataFrame
        One row per lever and direction: ``lever`` (``pay_factor``, ``role_weight``,
        ``stock_factor``), ``key`` (the line or role; empty for the stock factor), ``direction``
        (-1 or +1), ``value`` and ``tried`` (the lever before and as tried, clipped to its range
        0..1), ``managers_moved`` (managers whose rank changes), ``largest_move`` (largest
        absolute rank change), ``pay_change`` (total pay change, yuan). Sorted by
        ``managers_moved``, then ``largest_move``, largest first.
    """
    base = edited(base, scenario)
    run = live(base).evaluate if incremental else (lambda s: evaluate(base, s))
    ref = result if result is not None else run(scenario)
    rank0 = ref.managers["rank"].to_numpy()
    pay0 = float(ref.managers["pay"].sum())
    rows = []
    for lever, key, value in _levers(scenario):
        for direction in (-1, 1):
            tried = min(max(value * (1 + direction * step), 0.0), 1.0)
            if tried == value:
                moved, largest, change = 0, 0, 0.0
            else:
                r = run(_moved(scenario, lever, key, tried))
                d = np.abs(r.managers["rank"].to_numpy() - rank0)
                moved, largest = int((d > 0).sum()), int(d.max()) if len(d) else 0
                change = float(r.managers["pay"].sum()) - pay0
            rows.append({"lever": lever, "key": key, "direction": direction, "value": value, "tried": tried,
                         "managers_moved": moved, "largest_move": largest, "pay_change": change})
    out = pd.DataFrame(rows)
    return out.sort_values(["managers_moved", "largest_move"], ascending=False, kind="stable").reset_index(drop=True)

