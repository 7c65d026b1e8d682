"""The account formulas of DOMAIN.md sections 3 to 5, defined once, as portable SQL text.

This module is the single definition of the heavy stage's arithmetic: the account result terms
per line (DOMAIN 3), the risk result of asset accounts, the daily average from daily balances
(DOMAIN 4), and the per-customer sums the light stage reads (``calc.heavy.CUSTOMER_MEASURES``
except ``new``, plus the account count): each account's part of them
(:func:`account_measures_sql`) and their sum per customer (:func:`customer_measures_sql`). It only builds query text; it runs nothing and imports
no engine. :mod:`calc.heavy` runs the text on DuckDB over the pandas/Arrow frames; another engine
runs the same text over its own tables (see "Another engine" below). No formula is written
anywhere else in the project.

The SQL is a small ANSI subset meant to run unchanged on DuckDB, polars and Apache Spark SQL:
``CASE``, ``COALESCE``, ``TRIM``, ``GREATEST``/``LEAST``, ``SUM``, ``COUNT(DISTINCT ...)``,
``LEAD(...) OVER (PARTITION BY ... ORDER BY ...)``, ``WITH``, and no dialect functions (no date
arithmetic: days are integer day numbers). The scenario's parameters are substituted as double
literals in exponent form (``0.25e0``): DuckDB and Spark both read that form as DOUBLE (a bare
``0.25`` would be a DECIMAL there), and ``repr`` makes the literal the exact float.

Input relations (named by the caller; the defaults are these names)
---------------------------------------------------------------------
``accounts``
    ``account_id``, ``customer_id``, ``line`` (``asset``/``liability``/``intermediate``),
    ``product``, ``classification`` (text); ``avg_balance``, ``base_avg_balance``, ``rate``,
    ``ftp_rate``, ``fee_income``, ``provision``, ``recovery``, ``risk_weight`` (DOUBLE; NULL is a
    missing cell: 0, or ``risk_weight_default`` for ``risk_weight``). Extra columns are ignored.
``daily_avg`` (optional)
    ``account_id``, ``avg_balance``: the output of :func:`daily_average_sql`; where an account has
    a row, its ``avg_balance`` replaces the sheet's value.
``daily_balances``
    ``account_id``, ``day_no`` (INTEGER day number, e.g. days since 1970-01-01), ``balance``.

Another engine (the Spark run)
------------------------------
Register the extract's tables as temporary views under the names above (the ``date`` column of
the daily balances turned into a day number, e.g. ``datediff(date, '1970-01-01')``), then::

    spark.sql(daily_average_sql(days)).createOrReplaceTempView("daily_avg")
    spark.sql(customer_measures_sql(scenario, daily="daily_avg"))

returns the same per-customer rows that :func:`calc.heavy.build_base` computes (which adds the
parts of :func:`account_measures_sql` in account row order itself, so that the last bits of a sum
do not depend on thread scheduling; a Spark run that must reproduce published figures bit for bit
does the same: ``account_measures_sql`` with a row position kept, summed in that order).
DuckDB and polars run it here (``build_base(..., engine="polars")`` gives the same numbers);
Spark has not run it yet. Should a dialect difference appear, ``sqlglot.transpile(text,
read="duckdb", write="spark")`` rewrites the text; the formulas stay written once, here.
"""

from __future__ import annotations

from calc.scenario import Scenario

__all__ = ["ACCOUNT_INPUTS", "TERMS", "NPL_CLASSES", "MEASURES", "SUMMED", "literal", "account_terms_sql",
           "account_measures_sql", "customer_measures_sql", "daily_amounts_sql", "daily_average_sql"]

NPL_CLASSES = ("substandard", "doubtful", "loss")

# Columns of the accounts relation the formulas read (text, then DOUBLE).
ACCOUNT_INPUTS = ("account_id", "customer_id", "line", "product", "classification",
                  "avg_balance", "base_avg_balance", "rate", "ftp_rate", "fee_income", "provision",
                  "recovery", "risk_weight")
# Result terms per account, yuan for the period (risk_weight: the weight used, default filled in).
TERMS = ("risk_weight", "margin", "tax", "unit_cost", "balance_cost", "capital_charge", "contribution", "risk")
# Per-customer output of customer_measures_sql, after customer_id (yuan; products and accounts are counts).
MEASURES = ("asset", "liability", "intermediate", "risk", "liability_avg", "liability_increase",
            "asset_avg", "asset_increase", "npl_balance", "products", "accounts")
# The measures that are sums of a part per account (account_measures_sql), yuan.
SUMMED = MEASURES[:9]


def literal(x: float) -> str:
    """A DOUBLE literal that every target engine reads as exactly ``float(x)`` (exponent form).

    Raises
    ------
    ValueError
        When ``x`` is not a finite number.
    """
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"a formula parameter must be a finite number, got {x!r}")
    text = repr(x)
    return text if "e" in text else text + "e0"


def _text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def account_terms_sql(scenario: Scenario, accounts: str = "accounts", daily: str | None = None,
                      keep: tuple[str, ...] = ()) -> str:
    """One row per account: the input columns and every result term of DOMAIN 3.

    Parameters
    ----------
    scenario : Scenario
        Account-level parameters: ``days``, ``day_basis``, ``tax_rate``, ``unit_cost``,
        ``cost_rate``, ``capital_ratio``, ``cost_of_capital``, ``risk_weight_default``.
    accounts : str
        Name of the accounts relation.
    daily : str, optional
        Name of a relation ``(account_id, avg_balance)`` whose balance replaces the sheet's
        ``avg_balance`` (DOMAIN 4); None when there are no daily balances.
    keep : tuple of str
        Further columns of ``accounts`` passed through unchanged (e.g. a row position).

    Returns
    -------
    str
        A SELECT with the columns of :data:`ACCOUNT_INPUTS` (``avg_balance`` after the daily
        average; numbers with missing cells as 0 and ``risk_weight`` with its default),
        ``keep``, then :data:`TERMS`; ``contribution = margin - tax - unit_cost - balance_cost
        - capital_charge`` (the account's own line) and ``risk = recovery - provision`` on asset
        accounts, 0 elsewhere. Money in yuan for the period.
    """
    s = scenario
    t = literal(s.days / s.day_basis)
    zero = literal(0.0)
    tax = literal(s.tax_rate)
    uc = {k: literal(s.unit_cost[k]) for k in ("asset", "liability", "intermediate")}
    cr = {k: literal(s.cost_rate[k]) for k in ("asset", "liability")}
    capital = f"{literal(s.capital_ratio)} * {literal(s.cost_of_capital)}"
    a = "a."
    bal = (f"COALESCE(d.avg_balance, {a}avg_balance, {zero})" if daily else f"COALESCE({a}avg_balance, {zero})")
    num = {c: f"COALESCE({a}{c}, {zero})" for c in ("base_avg_balance", "rate", "ftp_rate", "fee_income",
                                                      "provision", "recovery")}
    extra = "".join(f", {a}{c}" for c in keep)
    join = f" LEFT JOIN {daily} d ON d.account_id = a.account_id" if daily else ""
    inputs = f"""
    SELECT {a}account_id, {a}customer_id, {a}line, {a}product, {a}classification,
           {bal} AS avg_balance, {num['base_avg_balance']} AS base_avg_balance, {num['rate']} AS rate,
           {num['ftp_rate']} AS ftp_rate, {num['fee_income']} AS fee_income,
           {num['provision']} AS provision, {num['recovery']} AS recovery,
           COALESCE({a}risk_weight, {literal(s.risk_weight_default)}) AS risk_weight{extra}
    FROM {accounts} a{join}"""
    keep_out = "".join(f", {c}" for c in keep)
    terms = f"""
    SELECT account_id, customer_id, line, product, classification, avg_balance, base_avg_balance, rate,
           ftp_rate, fee_income, provision, recovery{keep_out}, risk_weight,
           CASE WHEN line = 'asset' THEN avg_balance * (rate - ftp_rate) * {t}
                WHEN line = 'liability' THEN avg_balance * (ftp_rate - rate) * {t}
                WHEN line = 'intermediate' THEN fee_income ELSE {zero} END AS margin,
           CASE WHEN line = 'asset' THEN {tax} * avg_balance * rate * {t}
                WHEN line = 'intermediate' THEN fee_income * {tax} ELSE {zero} END AS tax,
           CASE WHEN line = 'asset' THEN {uc['asset']} WHEN line = 'liability' THEN {uc['liability']}
                WHEN line = 'intermediate' THEN {uc['intermediate']} ELSE {zero} END AS unit_cost,
           CASE WHEN line = 'asset' THEN avg_balance * {cr['asset']} * {t}
                WHEN line = 'liability' THEN avg_balance * {cr['liability']} * {t} ELSE {zero} END AS balance_cost,
           CASE WHEN line = 'asset' THEN avg_balance * risk_weight * {capital} * {t} ELSE {zero} END AS capital_charge,
           CASE WHEN line = 'asset' THEN recovery - provision ELSE {zero} END AS risk
    FROM ({inputs}) i"""
    return f"""
    SELECT account_id, customer_id, line, product, avg_balance, base_avg_balance, rate, ftp_rate, fee_income,
           provision, recovery, classification{keep_out}, risk_weight, margin, tax, unit_cost, balance_cost,
           capital_charge, margin - tax - unit_cost - balance_cost - capital_charge AS contribution, risk
    FROM ({terms}) r"""


def account_measures_sql(scenario: Scenario, accounts: str = "accounts", daily: str | None = None,
                         keep: tuple[str, ...] = ()) -> str:
    """One row per account: the account's part of every per-customer measure.

    A customer's measure is the sum of its accounts' parts (:func:`customer_measures_sql`); an
    engine may also add the parts itself in a fixed order (:mod:`calc.heavy` does, in account row
    order, so that every run gives the same bits).

    Parameters
    ----------
    scenario, accounts, daily
        As in :func:`account_terms_sql`.
    keep : tuple of str
        Further columns of ``accounts`` passed through unchanged (e.g. a row position).

    Returns
    -------
    str
        A SELECT of ``customer_id``, ``keep``, :data:`SUMMED` (yuan: the account's contribution
        in the column of its line, ``risk``, daily average and increase on its line's balance
        columns, ``npl_balance`` for asset accounts classified substandard, doubtful or loss; 0
        in the other columns) and ``held`` (the product, or the line when the product is blank).
    """
    zero, one = literal(0.0), literal(1.0)
    npl = ", ".join(_text(c) for c in NPL_CLASSES)
    keep_out = "".join(f", {c}" for c in keep)

    def flag(condition: str) -> str:          # 1 or 0, computed once per account, then multiplied:
        return f"CASE WHEN {condition} THEN {one} ELSE {zero} END"   # x * 1 = x, x * 0 = 0 exactly

    return f"""
    SELECT customer_id{keep_out},
           is_asset * contribution AS asset,
           is_liability * contribution AS liability,
           is_intermediate * contribution AS intermediate,
           risk,
           is_liability * avg_balance AS liability_avg,
           is_liability * (avg_balance - base_avg_balance) AS liability_increase,
           is_asset * avg_balance AS asset_avg,
           is_asset * (avg_balance - base_avg_balance) AS asset_increase,
           is_npl * avg_balance AS npl_balance,
           held
    FROM (
        SELECT customer_id{keep_out}, contribution, risk, avg_balance, base_avg_balance,
               {flag("line = 'asset'")} AS is_asset,
               {flag("line = 'liability'")} AS is_liability,
               {flag("line = 'intermediate'")} AS is_intermediate,
               {flag(f"line = 'asset' AND classification IN ({npl})")} AS is_npl,
               CASE WHEN product IS NULL OR TRIM(product) = '' THEN line ELSE product END AS held
        FROM ({account_terms_sql(scenario, accounts, daily, keep)}) t
    ) f"""


def customer_measures_sql(scenario: Scenario, accounts: str = "accounts", daily: str | None = None) -> str:
    """One row per customer holding accounts: contribution per line and the balance measures.

    Parameters
    ----------
    scenario, accounts, daily
        As in :func:`account_terms_sql`.

    Returns
    -------
    str
        A SELECT of ``customer_id`` and :data:`MEASURES`: ``asset``, ``liability``,
        ``intermediate`` (sum of the accounts' contribution per line), ``risk`` (yuan for the
        period); ``liability_avg``, ``asset_avg`` (sum of daily averages), ``liability_increase``,
        ``asset_increase`` (sum of ``avg_balance - base_avg_balance``), ``npl_balance`` (asset
        accounts classified substandard, doubtful or loss), in yuan; ``products`` (distinct
        products held, a blank product counting as its line) and ``accounts`` (counts). The sums
        are those of :func:`account_measures_sql`; an engine that adds in parallel may combine
        partial sums in any order (the last bits of a sum can then differ between runs).
    """
    sums = ",\n           ".join(f"SUM({m}) AS {m}" for m in SUMMED)
    return f"""
    SELECT customer_id,
           {sums},
           COUNT(DISTINCT held) AS products,
           COUNT(*) AS accounts
    FROM ({account_measures_sql(scenario, accounts, daily)}) m
    GROUP BY customer_id"""


def daily_amounts_sql(days: int, daily_balances: str = "daily_balances", keep: tuple[str, ...] = ()) -> str:
    """One row per daily-balance row: its balance times the days of the period it stands for.

    The period is the ``days`` calendar days ending on the latest day in the relation. A row
    stands for the days from its own day (or the period's start) to the account's next row (or
    the period's end), so a day with no row carries the last known balance forward (also from
    before the period); days before the account's first row count 0. An account's daily average
    is the sum of its amounts over ``days`` (:func:`daily_average_sql`).

    Parameters
    ----------
    days : int
        Period length D in days (> 0).
    daily_balances : str
        Name of the relation ``(account_id, day_no, balance)``, ``day_no`` an integer day number,
        ``(account_id, day_no)`` unique.
    keep : tuple of str
        Further columns of the relation passed through unchanged (e.g. a row position).

    Returns
    -------
    str
        A SELECT of ``account_id``, ``keep``, ``amount`` (yuan x days), one row per input row.

    Raises
    ------
    ValueError
        When ``days`` is not a positive whole number.
    """
    if int(days) != days or days <= 0:
        raise ValueError(f"days must be a positive whole number of days, got {days!r}")
    d = int(days)
    keep_out = "".join(f", {c}" for c in keep)
    keep_r = "".join(f", r.{c}" for c in keep)
    return f"""
    SELECT r.account_id{keep_r},
           r.balance * GREATEST(LEAST(COALESCE(r.next_day, p.period_end), p.period_end)
                                - GREATEST(r.day_no, p.period_end - {d}), 0) AS amount
    FROM (SELECT account_id, day_no, balance{keep_out},
                 LEAD(day_no) OVER (PARTITION BY account_id ORDER BY day_no) AS next_day
          FROM {daily_balances}) r
    CROSS JOIN (SELECT MAX(day_no) + 1 AS period_end FROM {daily_balances}) p"""


def daily_average_sql(days: int, daily_balances: str = "daily_balances") -> str:
    """Daily average balance per account from daily balances (DOMAIN 4).

    The sum of an account's :func:`daily_amounts_sql` over ``days``: the period is the ``days``
    calendar days ending on the latest day in the relation; a day with no row carries the
    account's last known balance forward (also from before the period); days before the
    account's first row count 0.

    Parameters
    ----------
    days : int
        Period length D in days (> 0).
    daily_balances : str
        As in :func:`daily_amounts_sql`.

    Returns
    -------
    str
        A SELECT of ``account_id``, ``avg_balance`` (yuan), one row per account in the relation.

    Raises
    ------
    ValueError
        When ``days`` is not a positive whole number.
    """
    amounts = daily_amounts_sql(days, daily_balances)
    return f"""
    SELECT account_id, SUM(amount) / {literal(int(days))} AS avg_balance
    FROM ({amounts}) w
    GROUP BY account_id"""
