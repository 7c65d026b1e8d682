"""Heavy stage: accounts -> per-account result terms -> per-customer, per-line contribution.

DOMAIN.md sections 3 and 4. This is the only code that reads account rows. It runs once per
upload or per change of an account-level parameter (``Scenario.account_key()``); its result,
a :class:`Base`, is everything the light stage (sliders) needs.

The formulas are defined once, as SQL text, in :mod:`calc.formulas`; this module runs that text
on DuckDB (embedded, columnar) over the pandas frames and brings back one row per customer; the
per-account terms are computed only when asked. DuckDB was chosen by measurement (November 2026,
2 loaded cores, the generated 5M-account bank): DuckDB 5.3-5.5 s and +0.8 GB during the call,
polars running the same SQL 4.1-4.5 s and +1.6 GB, the former pandas code 11-13 s and +1.9 GB;
the memory decides, as a 5M-account run must stay under 2.5 GB. The same text runs on polars
(``engine="polars"``, and for small selections) and is written to run on Spark.

Money is in yuan for the period; rates are decimal fractions per year; ``t = days / day_basis``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calc.formulas import (ACCOUNT_INPUTS, MEASURES, NPL_CLASSES, account_terms_sql, customer_measures_sql,
                           daily_average_sql)
from calc.engines import run_queries, run_sql
from calc.scenario import Scenario

__all__ = ["Base", "account_results", "daily_average", "with_daily_average", "build_base", "CUSTOMER_MEASURES", "NPL_CLASSES"]

# The engine for the few account rows of a statement or drill-down (same SQL text): polars
# answers a manager's ~1,000 rows in ~8-15 ms, DuckDB in ~30-60 ms (mostly opening a database).
SELECTION_ENGINE = "polars"

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
        Per-account result terms (see :func:`account_results`), for statements and drill-down
        only: computed on first access (a property, not stored by the heavy stage; at 5M accounts
        it is ~1 GB). :meth:`accounts_of` computes the rows of a few customers only.
    accounts_total : float
        Sum of every account's line result and risk result (yuan): the "accounts in" figure the
        money reconciliation compares with customers and managers.
    account_key : tuple
        ``Scenario.account_key()`` of the parameters used.
    days, day_basis : int
        Period length and day basis used.
    account_rows : DataFrame
        The typed input accounts (a copy-on-write selection of :data:`calc.formulas.ACCOUNT_INPUTS`),
        from which :attr:`accounts` and :meth:`accounts_of` compute terms.
    daily_avg : DataFrame or None
        ``account_id``, ``avg_balance`` (yuan) per account with daily balances (DOMAIN 4).
    scenario : Scenario
        The scenario whose account-level parameters were used.
    engine : str
        The engine that ran the formulas (:mod:`calc.engines`), also used for the lazy terms.
    """

    customers: pd.DataFrame
    managers: pd.DataFrame
    assignments: pd.DataFrame
    targets: pd.DataFrame
    kpis: pd.DataFrame
    accounts_total: float
    account_key: tuple
    days: int
    day_basis: int
    account_rows: pd.DataFrame = field(repr=False)
    daily_avg: pd.DataFrame | None = field(repr=False)
    scenario: Scenario = field(repr=False)
    engine: str = "duckdb"

    @functools.cached_property
    def accounts(self) -> pd.DataFrame:
        """Every account's result terms (:func:`account_results` after the daily average), in input order."""
        return _terms(self.account_rows, self.daily_avg, self.scenario, self.engine).reset_index(drop=True)

    @functools.cached_property
    def _customer_index(self) -> pd.Index:
        return pd.Index(self.customers["customer_id"])

    @functools.cached_property
    def _accounts_by_customer(self) -> tuple[np.ndarray, np.ndarray]:
        """Account row positions grouped by customer index: customer ``i``'s accounts are
        ``order[starts[i]:starts[i + 1]]`` (built once per Base)."""
        idx = self._customer_index.get_indexer(self.account_rows["customer_id"])
        order = np.argsort(idx, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=len(self.customers)))])
        return order, starts

    def accounts_of(self, customer_ids) -> pd.DataFrame:
        """The result terms of the accounts of ``customer_ids``, in account order (index: account
        position), computed for those rows only (on :data:`SELECTION_ENGINE`), without scanning
        every account; the last 32 answers are kept."""
        order, starts = self._accounts_by_customer
        cust = self._customer_index.get_indexer(pd.Index(customer_ids).unique())
        cust = cust[cust >= 0]
        parts = [order[starts[i]:starts[i + 1]] for i in cust]
        rows = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        if "accounts" in self.__dict__:                       # already computed for every account
            return self.accounts.iloc[rows]
        key = rows.tobytes()
        cache = self._terms_cache
        if key not in cache:                                   # a slider move asks again for the same rows
            part = self.account_rows.iloc[rows]
            part.index = rows
            if len(cache) >= 32:
                cache.pop(next(iter(cache)))
            cache[key] = _terms(part, self.daily_avg, self.scenario, SELECTION_ENGINE)
        return cache[key].copy()

    @functools.cached_property
    def _terms_cache(self) -> dict:
        """The last account terms :meth:`accounts_of` computed, by row set (at most 32)."""
        return {}

    @functools.cached_property
    def assignment_measures(self) -> np.ndarray:
        """The customer measures of each assignment row, ``(n_assignments, len(CUSTOMER_MEASURES))``
        (yuan, counts): built once per Base, read by every slider move."""
        c = self.customers
        cols = [c[m].to_numpy(dtype=float) if m != "new" else c["is_new"].to_numpy(dtype=float)
                for m in CUSTOMER_MEASURES]
        matrix = np.column_stack(cols) if len(c) else np.zeros((0, len(CUSTOMER_MEASURES)))
        return matrix[self.assignments["cust_idx"].to_numpy()]


def _day_numbers(dates: pd.Series) -> np.ndarray:
    """Whole days since 1970-01-01 (int64) of a datetime64 column: the ``day_no`` of the SQL."""
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def _daily_source(daily: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ``daily_balances`` relation of :func:`calc.formulas.daily_average_sql`, None without rows."""
    if daily is None or not len(daily):
        return None
    return pd.DataFrame({"account_id": daily["account_id"], "day_no": _day_numbers(daily["date"]),
                         "balance": daily["balance"].to_numpy(dtype=float)})


def _daily_avg_frame(daily: pd.DataFrame | None, days: int, engine: str = "duckdb") -> pd.DataFrame | None:
    """``account_id``, ``avg_balance`` per account with daily rows (DOMAIN 4), None without rows."""
    source = _daily_source(daily)
    if source is None:
        return None
    return run_sql(daily_average_sql(days), {"daily_balances": source}, engine).to_pandas()


def _terms(accounts: pd.DataFrame, daily_avg: pd.DataFrame | None, scenario: Scenario,
           engine: str = "duckdb") -> pd.DataFrame:
    """The account terms of :func:`calc.formulas.account_terms_sql` for ``accounts``, in row order
    and with ``accounts``' index."""
    tables = {"accounts": accounts[list(ACCOUNT_INPUTS)].assign(_pos=np.arange(len(accounts), dtype=np.int64))}
    if daily_avg is not None:
        tables["daily_avg"] = daily_avg
    table = run_sql(account_terms_sql(scenario, daily="daily_avg" if daily_avg is not None else None, keep=("_pos",)),
                    tables, engine)
    order = np.empty(len(table), dtype=np.int64)              # row i of the result is input row _pos[i]
    order[table.column("_pos").to_numpy()] = np.arange(len(table), dtype=np.int64)
    out = table.drop_columns(["_pos"]).take(order).to_pandas()
    out.index = accounts.index
    return out


def with_daily_average(accounts: pd.DataFrame, daily: pd.DataFrame | None, days: int) -> pd.DataFrame:
    """``accounts`` with ``avg_balance`` (yuan) replaced by the daily average where the account has
    daily rows (DOMAIN 4); other accounts keep the sheet's value. Returns a new frame when it changes."""
    avg = _daily_avg_frame(daily, days)
    if avg is None:
        return accounts
    pos = pd.Index(avg["account_id"]).get_indexer(accounts["account_id"])
    out = accounts.copy()
    has = pos >= 0
    values = out["avg_balance"].to_numpy(dtype=float, copy=True)
    values[has] = avg["avg_balance"].to_numpy(dtype=float)[pos[has]]
    out["avg_balance"] = values
    return out


def daily_average(daily: pd.DataFrame, days: int) -> pd.Series:
    """Daily average balance per account from daily balances (DOMAIN 4).

    The period is the ``days`` calendar days ending on the latest date in ``daily``. A day with
    no row carries the account's last known balance forward (also from before the period);
    days before the account's first row count 0. The formula is :func:`calc.formulas.daily_average_sql`.

    Parameters
    ----------
    daily : DataFrame
        ``account_id``, ``date`` (datetime64), ``balance`` (yuan); ``(account_id, date)`` unique.
    days : int
        Period length D in days.

    Returns
    -------
    Series
        Average balance in yuan, indexed by ``account_id``.
    """
    avg = _daily_avg_frame(daily, days)
    if avg is None:
        return pd.Series(dtype=float, name="avg_balance")
    return pd.Series(avg["avg_balance"].to_numpy(dtype=float), index=pd.Index(avg["account_id"], name="account_id"),
                     name="avg_balance")


def account_results(accounts: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """Every formula term of DOMAIN 3 for each account, in yuan for the period.

    The formulas are :func:`calc.formulas.account_terms_sql`, run on DuckDB.

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
        ``contribution = margin - tax - unit_cost - balance_cost - capital_charge``. Missing
        numbers count 0; ``risk_weight`` is the weight used (the default where blank).
    """
    return _terms(accounts, None, scenario).reset_index(drop=True)


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


def build_base(frames: dict[str, pd.DataFrame], scenario: Scenario, *, engine: str = "duckdb") -> Base:
    """Run the heavy stage on validated frames.

    The account formulas (:mod:`calc.formulas`) run as one SQL query on DuckDB over the frames
    (registered, not copied); only the per-customer sums come back. The per-account terms are
    computed later, only when asked (:attr:`Base.accounts`, :meth:`Base.accounts_of`).

    Parameters
    ----------
    frames : dict of str to DataFrame
        ``managers``, ``customers``, ``accounts``, ``assignments`` and optional
        ``daily_balances``, ``targets``, ``kpis`` as produced by :mod:`data.ingest` (rows with
        errors already removed).
    scenario : Scenario
        Only the account-level parameters are read.
    engine : {"duckdb", "polars"}
        The engine that runs the formulas (:mod:`calc.engines`); DuckDB unless comparing.

    Returns
    -------
    Base

    Raises
    ------
    ValueError
        When an account or an assignment names a customer or manager that is not in the extract.
    """
    accounts = frames["accounts"][list(ACCOUNT_INPUTS)]          # a lazy (copy-on-write) selection
    customers = frames["customers"][["customer_id", "name", "branch", "type", "is_new"]].reset_index(drop=True).copy()
    n = len(customers)
    daily = _daily_source(frames.get("daily_balances"))

    managers = frames["managers"][["manager_id", "name", "branch", "level"]].reset_index(drop=True).copy()
    asg = frames["assignments"][["customer_id", "manager_id", "role", "coefficient", "_row"]].reset_index(drop=True).copy()
    tables = {
        "accounts": accounts,
        "customer_positions": pd.DataFrame({"customer_id": customers["customer_id"], "pos": np.arange(n, dtype=np.int64)}),
        "manager_positions": pd.DataFrame({"manager_id": managers["manager_id"],
                                           "pos": np.arange(len(managers), dtype=np.int64)}),
        "assignment_keys": pd.DataFrame({"customer_id": asg["customer_id"], "manager_id": asg["manager_id"],
                                         "a_pos": np.arange(len(asg), dtype=np.int64)}),
    }
    queries = {}
    if daily is not None:
        tables["daily_balances"] = daily
        queries["daily_avg"] = daily_average_sql(scenario.days)
    measures = customer_measures_sql(scenario, daily="daily_avg" if daily is not None else None)
    # hash joins on the ids: linear in the rows on both sides
    queries["sums"] = f"SELECT c.pos, m.* FROM ({measures}) m LEFT JOIN customer_positions c ON c.customer_id = m.customer_id"
    queries["keys"] = ("SELECT a.a_pos, c.pos AS cust_idx, g.pos AS mgr_idx FROM assignment_keys a "
                       "LEFT JOIN customer_positions c ON c.customer_id = a.customer_id "
                       "LEFT JOIN manager_positions g ON g.manager_id = a.manager_id")
    out = run_queries(queries, tables, engine)
    daily_avg = out["daily_avg"].to_pandas() if daily is not None else None
    sums = out["sums"]

    pos = sums.column("pos")
    orphan = pos.is_null().to_numpy(zero_copy_only=False)
    if orphan.any():
        ids = sums.column("customer_id").to_numpy(zero_copy_only=False)[orphan]
        _require_known("accounts", "customer_id", pd.Series(np.sort(ids)), np.ones(len(ids), dtype=bool))
    pos = pos.to_numpy()
    for col in (*MEASURES[:9], "accounts", "products"):            # the column order of earlier versions
        values = np.zeros(n, dtype=np.int64 if col in ("accounts", "products") else np.float64)
        values[pos] = sums.column(col).to_numpy()
        customers[col] = values
    customers["total"] = customers["asset"] + customers["liability"] + customers["intermediate"] + customers["risk"]
    customers["volume"] = customers["asset_avg"] + customers["liability_avg"]

    keys = out["keys"]
    at = keys.column("a_pos").to_numpy()
    for col, sheet_key in (("cust_idx", "customer_id"), ("mgr_idx", "manager_id")):
        idx = np.full(len(asg), -1, dtype=np.int64)
        idx[at] = keys.column(col).fill_null(-1).to_numpy()
        _require_known("assignments", sheet_key, asg[sheet_key], idx < 0)
        asg[col] = idx

    empty = pd.DataFrame(columns=["manager_id", "kpi", "target", "value"])
    return Base(
        customers=customers,
        managers=managers,
        assignments=asg,
        targets=_wide(frames.get("targets", empty), "target"),
        kpis=_wide(frames.get("kpis", empty), "value"),
        accounts_total=float(sum(customers[c].sum() for c in ("asset", "liability", "intermediate", "risk"))),
        account_key=scenario.account_key(),
        days=scenario.days,
        day_basis=scenario.day_basis,
        account_rows=accounts,
        daily_avg=daily_avg,
        scenario=scenario,
        engine=engine,
    )
