"""Heavy stage: accounts -> per-account result terms -> per-customer, per-line contribution.

DOMAIN.md sections 3 and 4. This is the only code that reads account rows. It runs once per
upload or per change of an account-level parameter (``Scenario.account_key()``); its result,
a :class:`Base`, is everything the light stage (sliders) needs.

Money is in yuan for the period; rates are decimal fractions per year; ``t = days / day_basis``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from calc.scenario import Scenario

__all__ = ["Base", "account_results", "daily_average", "with_daily_average", "build_base", "CUSTOMER_MEASURES", "NPL_CLASSES"]

NPL_CLASSES = ("substandard", "doubtful", "loss")
CUSTOMER_MEASURES = ("asset", "liability", "intermediate", "risk", "liability_avg", "liability_increase",
                     "asset_avg", "asset_increase", "npl_balance", "products", "new")


@dataclass(frozen=True)
class Base:
    """What the light stage needs, computed once per dataset and account-level parameters.

    Attributes
    ----------
    customers : DataFrame
        One row per customer (position = customer index): ``customer_id``, ``name``, ``branch``,
        ``type``, ``is_new``, contribution per line ``asset``, ``liability``, ``intermediate``,
        ``risk`` and ``total`` (yuan), ``liability_avg``, ``liability_increase``, ``asset_avg``,
        ``asset_increase``, ``npl_balance`` (yuan, daily averages), ``products`` (count),
        ``volume`` (asset + liability daily average, yuan), ``accounts`` (count).
    managers : DataFrame
        One row per manager (position = manager index): ``manager_id``, ``name``, ``branch``, ``level``.
    assignments : DataFrame
        ``customer_id``, ``manager_id``, ``role``, ``coefficient`` (given, NaN when blank),
        ``cust_idx``, ``mgr_idx``, ``_row``.
    targets : DataFrame
        Wide: index ``manager_id``, one column per KPI code (NaN when not given).
    kpis : DataFrame
        Wide: index ``manager_id``, one column per uploaded KPI code (NaN when not given).
    accounts : DataFrame
        Per-account result terms (see :func:`account_results`), for statements and drill-down only.
    accounts_total : float
        Sum of every account's line result and risk result (yuan): the "accounts in" figure the
        money reconciliation compares with customers and managers.
    account_key : tuple
        ``Scenario.account_key()`` of the parameters used.
    days, day_basis : int
        Period length and day basis used.
    """

    customers: pd.DataFrame
    managers: pd.DataFrame
    assignments: pd.DataFrame
    targets: pd.DataFrame
    kpis: pd.DataFrame
    accounts: pd.DataFrame
    accounts_total: float
    account_key: tuple
    days: int
    day_basis: int

    @functools.cached_property
    def _customer_index(self) -> pd.Index:
        return pd.Index(self.customers["customer_id"])

    @functools.cached_property
    def _accounts_by_customer(self) -> tuple[np.ndarray, np.ndarray]:
        """Account row positions grouped by customer index: customer ``i``'s accounts are
        ``order[starts[i]:starts[i + 1]]`` (built once per Base)."""
        idx = self._customer_index.get_indexer(self.accounts["customer_id"])
        order = np.argsort(idx, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=len(self.customers)))])
        return order, starts

    def accounts_of(self, customer_ids) -> pd.DataFrame:
        """The account rows of ``customer_ids``, in account order, without scanning every account."""
        order, starts = self._accounts_by_customer
        cust = self._customer_index.get_indexer(pd.Index(customer_ids).unique())
        cust = cust[cust >= 0]
        parts = [order[starts[i]:starts[i + 1]] for i in cust]
        rows = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        return self.accounts.iloc[rows]

    @functools.cached_property
    def assignment_measures(self) -> np.ndarray:
        """The customer measures of each assignment row, ``(n_assignments, len(CUSTOMER_MEASURES))``
        (yuan, counts): built once per Base, read by every slider move."""
        c = self.customers
        cols = [c[m].to_numpy(dtype=float) if m != "new" else c["is_new"].to_numpy(dtype=float)
                for m in CUSTOMER_MEASURES]
        matrix = np.column_stack(cols) if len(c) else np.zeros((0, len(CUSTOMER_MEASURES)))
        return matrix[self.assignments["cust_idx"].to_numpy()]


def with_daily_average(accounts: pd.DataFrame, daily: pd.DataFrame | None, days: int) -> pd.DataFrame:
    """``accounts`` with ``avg_balance`` (yuan) replaced by the daily average where the account has
    daily rows (DOMAIN 4); other accounts keep the sheet's value. Returns a new frame when it changes."""
    if daily is None or not len(daily):
        return accounts
    avg = daily_average(daily, days)
    out = accounts.copy()
    has_daily = out["account_id"].isin(avg.index)
    out.loc[has_daily, "avg_balance"] = out.loc[has_daily, "account_id"].map(avg).to_numpy(dtype=float)
    return out


def daily_average(daily: pd.DataFrame, days: int) -> pd.Series:
    """Daily average balance per account from daily balances (DOMAIN 4).

    The period is the ``days`` calendar days ending on the latest date in ``daily``. A day with
    no row carries the account's last known balance forward (also from before the period);
    days before the account's first row count 0.

    Parameters
    ----------
    daily : DataFrame
        ``account_id``, ``date`` (datetime64), ``balance`` (yuan).
    days : int
        Period length D in days.

    Returns
    -------
    Series
        Average balance in yuan, indexed by ``account_id``.
    """
    if daily.empty:
        return pd.Series(dtype=float, name="avg_balance")
    d = daily[["account_id", "date", "balance"]].sort_values(["account_id", "date"], kind="stable")
    end = d["date"].max() + pd.Timedelta(days=1)          # exclusive end
    start = end - pd.Timedelta(days=days)
    nxt = d.groupby("account_id", sort=False)["date"].shift(-1).fillna(end)
    seg_start = d["date"].where(d["date"] > start, start)
    seg_end = nxt.where(nxt < end, end)
    span = (seg_end - seg_start).dt.days.clip(lower=0)
    weighted = d["balance"].to_numpy(dtype=float) * span.to_numpy(dtype=float)
    total = pd.Series(weighted, index=d.index).groupby(d["account_id"], sort=False).sum()
    return (total / days).rename("avg_balance")


def account_results(accounts: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Every formula term of DOMAIN 3 for each account, in yuan for the period.

    Parameters
    ----------
    accounts : DataFrame
        Typed accounts (``line``, ``avg_balance``, ``rate``, ``ftp_rate``, ``fee_income``,
        ``provision``, ``recovery``, ``risk_weight`` (NaN = default) ...).
    scenario : Scenario
        Account-level parameters: days, day_basis, tax_rate, unit_cost, cost_rate,
        capital_ratio, cost_of_capital, risk_weight_default.

    Returns
    -------
    DataFrame
        The input's id columns plus ``margin`` (interest margin, or fee income on intermediate
        accounts), ``tax``, ``unit_cost``, ``balance_cost``, ``capital_charge``, ``contribution``
        (the account's own line), ``risk`` (recovery - provision, asset accounts only).
        ``contribution = margin - tax - unit_cost - balance_cost - capital_charge``.
    """
    s = scenario
    t = s.days / s.day_basis
    line = accounts["line"].to_numpy(dtype=object)
    bal = accounts["avg_balance"].to_numpy(dtype=float)
    rate = accounts["rate"].to_numpy(dtype=float)
    ftp = accounts["ftp_rate"].to_numpy(dtype=float)
    fee = accounts["fee_income"].to_numpy(dtype=float)
    rw = accounts["risk_weight"].to_numpy(dtype=float)
    rw = np.where(np.isnan(rw), s.risk_weight_default, rw)
    is_a, is_l, is_i = (line == "asset"), (line == "liability"), (line == "intermediate")

    margin = np.select([is_a, is_l, is_i], [bal * (rate - ftp) * t, bal * (ftp - rate) * t, fee], 0.0)
    tax = np.select([is_a, is_i], [s.tax_rate * bal * rate * t, fee * s.tax_rate], 0.0)
    unit = np.select([is_a, is_l, is_i], [s.unit_cost["asset"], s.unit_cost["liability"], s.unit_cost["intermediate"]], 0.0)
    balance_cost = np.select([is_a, is_l], [bal * s.cost_rate["asset"] * t, bal * s.cost_rate["liability"] * t], 0.0)
    capital = np.where(is_a, bal * rw * s.capital_ratio * s.cost_of_capital * t, 0.0)
    risk = np.where(is_a, accounts["recovery"].to_numpy(dtype=float) - accounts["provision"].to_numpy(dtype=float), 0.0)
    out = accounts[["account_id", "customer_id", "line", "product", "avg_balance", "base_avg_balance", "rate",
                    "ftp_rate", "fee_income", "provision", "recovery", "classification"]].copy()
    out["risk_weight"] = rw
    out["margin"] = margin
    out["tax"] = tax
    out["unit_cost"] = unit
    out["balance_cost"] = balance_cost
    out["capital_charge"] = capital
    out["contribution"] = margin - tax - unit - balance_cost - capital
    out["risk"] = risk
    return out.reset_index(drop=True)


def _customer_products(acc: pd.DataFrame) -> pd.Series:
    """Distinct products held per customer; a blank product counts as its line."""
    product = acc["product"].where(acc["product"].notna() & (acc["product"].astype("str").str.strip() != ""), acc["line"])
    return pd.DataFrame({"customer_id": acc["customer_id"], "p": product}).drop_duplicates().groupby("customer_id").size()


def _wide(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(index=pd.Index([], name="manager_id", dtype="str"))
    return frame.pivot_table(index="manager_id", columns="kpi", values=value, aggfunc="last")


def _require_known(sheet: str, column: str, values: pd.Series, unknown) -> None:
    unknown = np.asarray(unknown, dtype=bool)
    if unknown.any():
        sample = ", ".join(map(str, values[unknown].unique()[:5]))
        raise ValueError(f"{sheet}.{column} refers to ids that are not in the extract ({sample}); "
                         "validate the extract (data.ingest) before the heavy stage")


def build_base(frames: dict[str, pd.DataFrame], scenario: Scenario) -> Base:
    """Run the heavy stage on validated frames.

    Parameters
    ----------
    frames : dict of str to DataFrame
        ``managers``, ``customers``, ``accounts``, ``assignments`` and optional
        ``daily_balances``, ``targets``, ``kpis`` as produced by :mod:`data.ingest` (rows with
        errors already removed).
    scenario : Scenario
        Only the account-level parameters are read.

    Returns
    -------
    Base
    """
    accounts = frames["accounts"]
    known = pd.Index(frames["customers"]["customer_id"])
    _require_known("accounts", "customer_id", accounts["customer_id"],
                   known.get_indexer(accounts["customer_id"]) < 0)     # get_indexer: ~3x faster than isin on str
    accounts = with_daily_average(accounts, frames.get("daily_balances"), scenario.days)
    acc = account_results(accounts, scenario)

    customers = frames["customers"][["customer_id", "name", "branch", "type", "is_new"]].reset_index(drop=True).copy()
    line = acc["line"]
    bal = acc["avg_balance"].to_numpy(dtype=float)
    base_bal = acc["base_avg_balance"].to_numpy(dtype=float)
    is_a = (line == "asset").to_numpy()
    is_l = (line == "liability").to_numpy()
    per_account = pd.DataFrame({
        "customer_id": acc["customer_id"],
        "asset": np.where(is_a, acc["contribution"], 0.0),
        "liability": np.where(is_l, acc["contribution"], 0.0),
        "intermediate": np.where((line == "intermediate").to_numpy(), acc["contribution"], 0.0),
        "risk": acc["risk"].to_numpy(dtype=float),
        "liability_avg": np.where(is_l, bal, 0.0),
        "liability_increase": np.where(is_l, bal - base_bal, 0.0),
        "asset_avg": np.where(is_a, bal, 0.0),
        "asset_increase": np.where(is_a, bal - base_bal, 0.0),
        "npl_balance": np.where(is_a & acc["classification"].isin(NPL_CLASSES).to_numpy(), bal, 0.0),
        "accounts": 1.0,
    })
    sums = per_account.groupby("customer_id", sort=False).sum()
    sums["products"] = _customer_products(acc)
    sums = sums.reindex(customers["customer_id"]).fillna(0.0)
    for col in sums.columns:
        customers[col] = sums[col].to_numpy(dtype=float)
    customers["accounts"] = customers["accounts"].astype(np.int64)
    customers["products"] = customers["products"].astype(np.int64)
    customers["total"] = customers[["asset", "liability", "intermediate", "risk"]].sum(axis=1)
    customers["volume"] = customers["asset_avg"] + customers["liability_avg"]

    managers = frames["managers"][["manager_id", "name", "branch", "level"]].reset_index(drop=True).copy()
    asg = frames["assignments"][["customer_id", "manager_id", "role", "coefficient", "_row"]].reset_index(drop=True).copy()
    cust_idx = pd.Index(customers["customer_id"]).get_indexer(asg["customer_id"])
    mgr_idx = pd.Index(managers["manager_id"]).get_indexer(asg["manager_id"])
    _require_known("assignments", "customer_id", asg["customer_id"], cust_idx < 0)
    _require_known("assignments", "manager_id", asg["manager_id"], mgr_idx < 0)
    asg["cust_idx"] = cust_idx.astype(np.int64)
    asg["mgr_idx"] = mgr_idx.astype(np.int64)

    empty = pd.DataFrame(columns=["manager_id", "kpi", "target", "value"])
    return Base(
        customers=customers,
        managers=managers,
        assignments=asg,
        targets=_wide(frames.get("targets", empty), "target"),
        kpis=_wide(frames.get("kpis", empty), "value"),
        accounts=acc,
        accounts_total=float(acc["contribution"].sum() + acc["risk"].sum()),
        account_key=scenario.account_key(),
        days=scenario.days,
        day_basis=scenario.day_basis,
    )
