"""Heavy stage: accounts -> per-account result terms -> per-customer, per-line contribution.

DOMAIN.md sections 3 and 4. This is the only code that reads account rows. It runs once per
upload or per change of an account-level parameter (``Scenario.account_key()``); its result,
a :class:`Base`, is everything the light stage (sliders) needs.

The formulas are defined once, as SQL text, in :mod:`calc.formulas`; this module runs that text
on DuckDB (embedded, columnar) over the pandas frames. DuckDB streams each account's part of the
customer measures (:func:`calc.formulas.account_measures_sql`) in row order, and the parts are
added per customer here, one account after the other in row order (``np.add.at``), so the same
frames give the same bits on every run and for any Arrow chunking (a parallel SQL ``SUM``
combines partial sums in whichever order its threads finish: at 5M accounts two runs differed in
the last bits, and a publication is verified by recomputing its hash). Measured at 5M accounts
(loaded 2-core machine, side by side): the earlier single GROUP BY query 4.5 s and +0.6-0.9 GB,
not reproducible; this 3.5-5.5 s and +0.3-0.5 GB (the parts are never held whole), reproducible.
The per-account terms are computed only when asked. DuckDB was chosen by measurement over polars
(same SQL: 4.1-4.5 s but +1.6 GB at 5M) and the former pandas code (11-13 s, +1.9 GB). The same
text runs on polars (``engine="polars"``, and for small selections) and is written to run on Spark.

Money is in yuan for the period; rates are decimal fractions per year; ``t = days / day_basis``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from calc.formulas import (ACCOUNT_INPUTS, NPL_CLASSES, SUMMED, account_measures_sql, account_terms_sql,
                           daily_amounts_sql)
from calc.engines import iter_batches, run_queries, run_sql, to_arrow
from calc.rules import check_coefficients
from calc.scenario import ROLES, Scenario

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
        Sum of every account's line result and risk result (yuan), added over the account rows
        independently of the customer sums (in fixed row blocks, see :func:`_customer_sums`):
        the "accounts in" figure the money reconciliation compares with customers and managers.
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
    account_customers : ndarray
        The customer position of each account row (int64), found by the heavy stage.
    engine : str
        The engine that ran the formulas (:mod:`calc.engines`), also used for the lazy terms.
    edits : tuple
        ``Scenario.edits_key()`` of the coefficient edits applied to ``assignments``
        (:func:`calc.whatif.edited`); empty for the assignments as uploaded.
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
    account_customers: np.ndarray = field(repr=False)
    engine: str = "duckdb"
    edits: tuple = ()

    @functools.cached_property
    def accounts(self) -> pd.DataFrame:
        """Every account's result terms (:func:`account_results` after the daily average), in input order."""
        engine = "duckdb" if self.engine == "spark" else self.engine   # the rows are here: no round trip
        return _terms(self.account_rows, self.daily_avg, self.scenario, engine).reset_index(drop=True)

    @functools.cached_property
    def _customer_index(self) -> pd.Index:
        return pd.Index(self.customers["customer_id"])

    @functools.cached_property
    def _accounts_by_customer(self) -> tuple[np.ndarray, np.ndarray]:
        """Account row positions grouped by customer index: customer ``i``'s accounts are
        ``order[starts[i]:starts[i + 1]]`` (built once per Base)."""
        idx = self.account_customers
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
            terms = _terms(part, self.daily_avg, self.scenario, SELECTION_ENGINE)
            while len(cache) >= 32:                             # sessions share a Base: evict safely
                try:
                    cache.pop(next(iter(cache)), None)
                except (StopIteration, RuntimeError):          # emptied or resized by another session
                    break
            cache[key] = terms
        return cache[key].copy()

    @functools.cached_property
    def _terms_cache(self) -> dict:
        """The last account terms :meth:`accounts_of` computed, by row set (at most 32)."""
        return {}

    @functools.cached_property
    def assignment_roles(self) -> np.ndarray:
        """Position of each assignment's role in :data:`calc.scenario.ROLES` (int8; -1 for another
        role), built once per Base."""
        return pd.Categorical(self.assignments["role"], categories=ROLES).codes

    @functools.cached_property
    def assignment_pairs(self) -> pd.MultiIndex:
        """``(customer_id, manager_id)`` of each assignment row, to find the rows of given
        coefficients set in the app (built once per Base)."""
        return pd.MultiIndex.from_arrays([self.assignments["customer_id"], self.assignments["manager_id"]])

    @functools.cached_property
    def light_cache(self) -> dict:
        """What the light stage computes once per Base (segments per segmentation parameters, the
        coefficient source without overrides); owned by :mod:`calc.light`."""
        return {}

    @functools.cached_property
    def assignment_measures(self) -> np.ndarray:
        """The customer measures of each assignment row, ``(n_assignments, len(CUSTOMER_MEASURES))``
        (yuan, counts): built once per Base, read by every slider move."""
        c = self.customers
        cust = self.assignments["cust_idx"].to_numpy()
        # column-major: the light stage reads one measure (a column) at a time
        out = np.empty((len(cust), len(CUSTOMER_MEASURES)), order="F")
        for j, m in enumerate(CUSTOMER_MEASURES):
            out[:, j] = c["is_new" if m == "new" else m].to_numpy(dtype=float)[cust]
        return out


def _day_numbers(dates: pd.Series) -> np.ndarray:
    """Whole days since 1970-01-01 (int64) of a datetime64 column: the ``day_no`` of the SQL."""
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def _daily_source(daily: pd.DataFrame | None) -> pd.DataFrame | None:
    """The ``daily_balances`` relation of :func:`calc.formulas.daily_average_sql`, None without rows."""
    if daily is None or not len(daily):
        return None
    return pd.DataFrame({"account_id": daily["account_id"], "day_no": _day_numbers(daily["date"]),
                         "balance": daily["balance"].to_numpy(dtype=float)})


def _in_row_order(positions: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` put back in input row order: ``values[i]`` belongs to input row ``positions[i]``
    (a permutation of ``0 .. n-1``, as an engine returns it after a join or a window)."""
    if len(positions) and np.array_equal(positions, np.arange(len(positions))):
        return values
    out = np.empty_like(values)
    out[positions] = values
    return out


def _row_order_sums(groups: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` per group ``0 .. n-1``, added one row after the other in row order.

    A parallel engine combines partial sums in whichever order its threads finish, so the last
    bits of a float sum can change from one run to the next; this order is fixed by the rows, so
    the same frames give the same bits on every run (a publication is verified by recomputing it).
    """
    return np.bincount(groups, weights=values, minlength=n) if len(groups) else np.zeros(n)


def _codes(values: pa.Array, known: dict) -> np.ndarray:
    """Integer code per value (int32; -1 for NULL), the same code for the same text in every call
    sharing ``known`` (text -> code, extended here with the values first seen)."""
    enc = pc.dictionary_encode(values)
    lookup = np.array([known.setdefault(v, len(known)) for v in enc.dictionary.to_pylist()] + [-1], dtype=np.int32)
    return lookup[enc.indices.fill_null(-1).to_numpy()]


# Account rows per block of the accounts total (_customer_sums): each block is added row after row,
# then the blocks exactly (math.fsum). On 5M simulated account results (~1e4-1e5 yuan each) one
# running sum was 0.01-0.02 yuan off the exact sum, as large as the money reconciliation's
# tolerance; the blocks gave the exact sum.
TOTAL_BLOCK_ROWS = 4096


def _customer_sums(batches, account_customers: np.ndarray,
                   n: int) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """Per customer, the sum of each :data:`calc.formulas.SUMMED` part over its accounts, added
    in account row order; the code of each account's ``held`` product; and the sum over every
    account of its ``asset + liability + intermediate + risk`` parts (yuan).

    ``batches`` carry ``_pos`` (the account row), the parts and ``held``. Batches that arrive in
    row order are added as they come (DuckDB streams a projection in order, so the parts of 5M
    accounts are never held at once); the rest are put in row order, then added. The total is
    added over the account rows themselves, not from the customer sums, so the money
    reconciliation compares two independent sums: row after row in row order within blocks of
    :data:`TOTAL_BLOCK_ROWS` rows (fixed by row position), then the blocks with ``math.fsum``, so
    it too comes out bit for bit the same for any chunking.

    Raises
    ------
    ValueError
        When the rows in ``batches`` are not exactly the account rows ``0 .. len(account_customers) - 1``.
    """
    sums = {c: np.zeros(n) for c in SUMMED}
    blocks = np.zeros(-(-len(account_customers) // TOTAL_BLOCK_ROWS))
    held = np.full(len(account_customers), -1, dtype=np.int32)
    known: dict = {}
    late = []
    done = 0

    def add(rows: np.ndarray, cust: np.ndarray, part) -> None:   # part(c): column c of ``rows`` (ascending)
        for c in SUMMED:
            np.add.at(sums[c], cust, part(c))                         # one row after the other
        line = part("asset") + part("liability") + part("intermediate") + part("risk")
        np.add.at(blocks, rows // TOTAL_BLOCK_ROWS, line)            # likewise, over the accounts

    for batch in batches:
        rows = batch.column("_pos").to_numpy()
        k = len(rows)
        if late or not np.array_equal(rows, np.arange(done, done + k)):
            late.append(batch)
            continue
        add(rows, account_customers[done:done + k], lambda c: batch.column(c).to_numpy())
        held[done:done + k] = _codes(batch.column("held"), known)
        done += k
    rest = pa.Table.from_batches(late) if late else None
    rows = rest.column("_pos").to_numpy() if late else np.zeros(0, dtype=np.int64)
    if not np.array_equal(np.sort(rows), np.arange(done, len(account_customers))):
        raise ValueError(f"the engine returned {done + len(rows):,} account rows for "
                         f"{len(account_customers):,} accounts; the heavy stage cannot sum them")
    if late:                                    # rows done.. in any order: sort them, then add
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        add(rows, account_customers[rows], lambda c: rest.column(c).to_numpy()[order])
        held[rows] = _codes(rest.column("held").combine_chunks(), known)[order]
    return sums, held, math.fsum(blocks.tolist())


def _spark_sums(customers: pd.DataFrame, out) -> None:
    """Put the per-customer measures Spark brought back (:class:`calc.spark.SparkAggregates`, one
    row per customer holding accounts) in ``customers``' rows (0 for a customer without accounts):
    the :data:`calc.formulas.SUMMED` sums (yuan) and ``products`` (count)."""
    got = out.customers
    at = pd.Index(customers["customer_id"]).get_indexer(got.column("customer_id").to_pandas())
    if (at < 0).any():      # the accounts were checked against the customers before Spark ran
        raise ValueError("Spark returned a customer that is not in the extract")
    for col in SUMMED:
        values = np.zeros(len(customers))
        values[at] = got.column(col).fill_null(0.0).to_numpy()
        customers[col] = values
    products = np.zeros(len(customers), dtype=np.int64)
    products[at] = got.column("products").to_numpy()
    customers["products"] = products


def _distinct_per_group(groups: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct codes >= 0 per group ``0 .. n-1`` (int64): ``COUNT(DISTINCT ...)``."""
    valid = codes >= 0
    width = int(codes.max()) + 1 if valid.any() else 1
    keys = groups[valid].astype(np.int64) * width + codes[valid]
    if n * width <= 64_000_000:                 # a flag per (group, code): linear
        seen = np.zeros(n * width, dtype=bool)
        seen[keys] = True
        return seen.reshape(n, width).sum(axis=1, dtype=np.int64)
    return np.bincount(np.unique(keys) // width, minlength=n).astype(np.int64)


def _daily_avg_frame(daily: pd.DataFrame | None, days: int, engine: str = "duckdb") -> pd.DataFrame | None:
    """``account_id``, ``avg_balance`` per account with daily rows (DOMAIN 4), None without rows.

    The amounts per row are :func:`calc.formulas.daily_amounts_sql`; their sum per account is
    :func:`calc.formulas.daily_average_sql`'s, added in row order (:func:`_row_order_sums`)."""
    source = _daily_source(daily)
    if source is None:
        return None
    source["_pos"] = np.arange(len(source), dtype=np.int64)
    out = run_sql(daily_amounts_sql(days, keep=("_pos",)), {"daily_balances": source}, engine)
    amount = _in_row_order(out.column("_pos").to_numpy(), out.column("amount").to_numpy())
    codes, ids = pd.factorize(source["account_id"], sort=False)
    avg = _row_order_sums(codes, amount, len(ids)) / float(int(days))
    return pd.DataFrame({"account_id": pd.Series(ids, dtype=source["account_id"].dtype), "avg_balance": avg})


def _terms(accounts: pd.DataFrame, daily_avg: pd.DataFrame | None, scenario: Scenario,
           engine: str = "duckdb") -> pd.DataFrame:
    """The account terms of :func:`calc.formulas.account_terms_sql` for ``accounts``, in row order
    and with ``accounts``' index."""
    tables = {"accounts": accounts[list(ACCOUNT_INPUTS)].assign(_pos=np.arange(len(accounts), dtype=np.int64))}
    if daily_avg is not None:
        tables["daily_avg"] = daily_avg
    table = run_sql(account_terms_sql(scenario, daily="daily_avg" if daily_avg is not None else None, keep=("_pos",)),
                    tables, engine)
    order = _in_row_order(table.column("_pos").to_numpy(), np.arange(len(table), dtype=np.int64))
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

    The account formulas (:mod:`calc.formulas`) run on DuckDB over the frames (registered, not
    copied): one hash join finds each account's customer, and each account's part of the customer
    measures streams back in batches and is added in account row order (bit for bit the same on
    every run). The per-account terms are computed later, only when asked (:attr:`Base.accounts`,
    :meth:`Base.accounts_of`).

    Parameters
    ----------
    frames : dict of str to DataFrame
        ``managers``, ``customers``, ``accounts``, ``assignments`` and optional
        ``daily_balances``, ``targets``, ``kpis`` as produced by :mod:`data.ingest` (rows with
        errors already removed).
    scenario : Scenario
        Only the account-level parameters are read.
    engine : {"duckdb", "polars", "spark"}
        The engine that runs the formulas (:mod:`calc.engines`); DuckDB unless comparing or
        configured otherwise. On ``"spark"`` (:mod:`calc.spark`) the same SQL text runs on the
        session's Spark master and only the per-customer measures, the daily averages and the
        accounts total come back; the id lookups (which customer each account and assignment
        names) stay embedded, and so do the per-account terms of a drill-down. Spark adds in
        parallel: its sums agree with the embedded engine's to far below 0.01 yuan, not bit for bit.

    Returns
    -------
    Base

    Raises
    ------
    ValueError
        When an account or an assignment names a customer or manager that is not in the extract.
    calc.rules.CoefficientError
        (a ValueError) When given coefficients break DOMAIN 5 (one outside (0, 1], or a
        customer's sum above 1), naming the customer and the sum.
    """
    accounts = frames["accounts"][list(ACCOUNT_INPUTS)]          # a lazy (copy-on-write) selection
    customers = frames["customers"][["customer_id", "name", "branch", "type", "is_new"]].reset_index(drop=True).copy()
    n = len(customers)
    if engine == "spark":        # the formulas on Spark; the key lookups below stay embedded
        from calc.spark import heavy_aggregates

        spark_out = heavy_aggregates(accounts, _daily_source(frames.get("daily_balances")), scenario)
        daily_avg, keys_engine = spark_out.daily_avg, "duckdb"
    else:
        spark_out, keys_engine = None, engine
        daily_avg = _daily_avg_frame(frames.get("daily_balances"), scenario.days, engine)

    managers = frames["managers"][["manager_id", "name", "branch", "level"]].reset_index(drop=True).copy()
    asg = frames["assignments"][["customer_id", "manager_id", "role", "coefficient", "_row"]].reset_index(drop=True).copy()
    check_coefficients(asg["customer_id"], asg["manager_id"],
                       asg["coefficient"].to_numpy(dtype=float), "assignments")   # DOMAIN 5, any source
    n_accounts = len(accounts)
    tables = {
        "accounts": to_arrow(accounts.assign(_pos=np.arange(n_accounts, dtype=np.int64))),   # converted once
        "customer_positions": pd.DataFrame({"customer_id": customers["customer_id"], "pos": np.arange(n, dtype=np.int64)}),
        "manager_positions": pd.DataFrame({"manager_id": managers["manager_id"],
                                           "pos": np.arange(len(managers), dtype=np.int64)}),
        "assignment_keys": pd.DataFrame({"customer_id": asg["customer_id"], "manager_id": asg["manager_id"],
                                         "a_pos": np.arange(len(asg), dtype=np.int64)}),
    }
    # hash joins on the ids: linear in the rows on both sides
    queries = {
        "account_customers": ("SELECT a._pos, c.pos FROM accounts a "
                              "LEFT JOIN customer_positions c ON c.customer_id = a.customer_id"),
        "keys": ("SELECT a.a_pos, c.pos AS cust_idx, g.pos AS mgr_idx FROM assignment_keys a "
                 "LEFT JOIN customer_positions c ON c.customer_id = a.customer_id "
                 "LEFT JOIN manager_positions g ON g.manager_id = a.manager_id"),
    }
    out = run_queries(queries, tables, keys_engine)
    found = out.pop("account_customers")
    at, pos = found.column("_pos").to_numpy(), found.column("pos")
    if pos.null_count:
        unknown = _in_row_order(at, pos.is_null().to_numpy(zero_copy_only=False))
        ids = np.sort(accounts["customer_id"].to_numpy()[unknown].astype(str))
        _require_known("accounts", "customer_id", pd.Series(ids), np.ones(len(ids), dtype=bool))
    account_customers = _in_row_order(at, pos.to_numpy())
    del found, at, pos

    if spark_out is not None:
        _spark_sums(customers, spark_out)
        accounts_total = spark_out.accounts_total
    else:
        parts_tables = {"accounts": tables["accounts"]}
        daily = None
        if daily_avg is not None:
            parts_tables["daily_avg"] = daily_avg
            daily = "daily_avg"
        parts = account_measures_sql(scenario, daily=daily, keep=("_pos",))
        sums, held, accounts_total = _customer_sums(
            iter_batches(f"SELECT _pos, {', '.join(SUMMED)}, held FROM ({parts}) m", parts_tables, engine),
            account_customers, n)
        for col in SUMMED:
            customers[col] = sums[col]
        customers["products"] = _distinct_per_group(account_customers, held, n)
    customers["accounts"] = np.bincount(account_customers, minlength=n).astype(np.int64)
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
        accounts_total=accounts_total,
        account_key=scenario.account_key(),
        days=scenario.days,
        day_basis=scenario.day_basis,
        account_rows=accounts,
        daily_avg=daily_avg,
        scenario=scenario,
        engine=engine,
        account_customers=account_customers,
    )
