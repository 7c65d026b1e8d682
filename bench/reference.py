"""Reference engines a bank could pick instead of Jixiao, written from ``../shared/DOMAIN.md`` only.

Nothing here imports ``calc`` or ``data``: the formulas are written again, independently, so that
a benchmark can compare Jixiao's numbers and times with a plain implementation.

- :func:`duckdb_evaluate`: a plain DuckDB SQL evaluation of a CSV folder written by
  :mod:`bench.gen` (its exact Chinese headers and values): DOMAIN 3 to 7 with the default
  scenario, written as the DOMAIN 10 JSON document. Read, compute and write all happen in DuckDB.
- :func:`duckdb_heavy` and :func:`polars_heavy`: the heavy stage alone (accounts -> customer x
  line contribution and measures, and the per-(customer, manager) assignment rows carrying the
  customer's measures) on already-typed frames (canonical English columns and values, as
  ``data.ingest`` returns them), for timing beside ``calc.heavy.build_base``.
- :func:`compare`: the largest absolute difference (yuan) between two DOMAIN 10 documents per
  manager, customer and total field, and the rank / grade / tier mismatches.

Usage::

    python -m bench.reference duckdb FOLDER OUT.json
    python -m bench.reference compare A.json B.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

__all__ = ["DEFAULTS", "KPI_TABLE", "duckdb_evaluate", "duckdb_heavy", "polars_heavy", "compare", "main"]

# DOMAIN 3, 5, 6, 7 and 9 defaults.
DEFAULTS = {
    "days": 90, "day_basis": 360, "tax_rate": 0.0672, "capital_ratio": 0.105, "cost_of_capital": 0.10,
    "risk_weight_default": 1.0, "stock_factor": 1.0, "pool": 1_000_000.0,
    "unit_cost": {"asset": 300.0, "liability": 20.0, "intermediate": 10.0},
    "cost_rate": {"asset": 0.004, "liability": 0.002, "intermediate": 0.0},
    "role_weight": {"primary": 0.7, "secondary": 0.3, "support": 0.1},
    "pay_factor": {"asset": 0.06, "liability": 0.05, "intermediate": 0.10, "risk": 0.08},
    "grades": {"senior": 85.0, "advanced": 70.0, "manager": 50.0, "assistant": 20.0},
    "tiers": {"world_class": 30_000_000.0, "blue_chip": 10_000_000.0, "mid_size": 1_000_000.0},
}
# DOMAIN 6 default scheme: code, weight, kind, cap
KPI_TABLE = (("deposit_avg", 30, "ratio"), ("deposit_increase", 20, "ratio"), ("loan_avg", 15, "ratio"),
             ("asset_contribution", 15, "ratio"), ("intermediate_contribution", 10, "ratio"),
             ("new_customers", 5, "ratio"), ("cross_sell", 5, "ratio"), ("compliance_points", 5, "deduction"))
KPI_CAP = 1.2

_LINES = ("asset", "liability", "intermediate", "risk")
# Per-customer measures of the heavy stage (yuan; products is a count).
MEASURES = ("asset", "liability", "intermediate", "risk", "liability_avg", "liability_increase",
            "asset_avg", "asset_increase", "npl_balance", "products")

# bench.gen's files: file -> {Chinese header: (canonical name, DuckDB type)}
_CSV = {
    "managers": {"客户经理编号": ("manager_id", "VARCHAR"), "姓名": ("name", "VARCHAR"),
                 "所属机构": ("branch", "VARCHAR"), "职级": ("level", "VARCHAR")},
    "customers": {"客户号": ("customer_id", "VARCHAR"), "客户名称": ("name", "VARCHAR"),
                  "所属机构": ("branch", "VARCHAR"), "客户类型": ("type", "VARCHAR"), "新增客户": ("is_new", "VARCHAR")},
    "accounts": {"账号": ("account_id", "VARCHAR"), "客户号": ("customer_id", "VARCHAR"), "业务条线": ("line", "VARCHAR"),
                 "产品": ("product", "VARCHAR"), "日均余额": ("avg_balance", "DOUBLE"),
                 "基期日均余额": ("base_avg_balance", "DOUBLE"), "客户利率": ("rate", "DOUBLE"),
                 "FTP价格": ("ftp_rate", "DOUBLE"), "中间业务收入": ("fee_income", "DOUBLE"), "拨备": ("provision", "DOUBLE"),
                 "不良清收": ("recovery", "DOUBLE"), "风险权重": ("risk_weight", "DOUBLE"),
                 "五级分类": ("classification", "VARCHAR")},
    "assignments": {"客户号": ("customer_id", "VARCHAR"), "客户经理编号": ("manager_id", "VARCHAR"),
                    "角色": ("role", "VARCHAR"), "关联度系数": ("coefficient", "DOUBLE")},
    "targets": {"客户经理编号": ("manager_id", "VARCHAR"), "指标": ("kpi", "VARCHAR"), "目标值": ("target", "DOUBLE")},
    "kpis": {"客户经理编号": ("manager_id", "VARCHAR"), "指标": ("kpi", "VARCHAR"), "数值": ("value", "DOUBLE")},
}
_ZH = {"资产": "asset", "负债": "liability", "中间业务": "intermediate", "主办": "primary", "协办": "secondary",
       "支持": "support", "正常": "normal", "关注": "special", "次级": "substandard", "可疑": "doubtful", "损失": "loss",
       "是": "yes", "否": "no", "对公": "corporate", "对私": "retail"}


def _d(x: float) -> str:
    """A DOUBLE literal (exponent form, so DuckDB does not read it as a DECIMAL)."""
    t = repr(float(x))
    return t if "e" in t else t + "e0"


def _case_zh(col: str) -> str:
    return "CASE " + col + " " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _ZH.items()) + f" ELSE {col} END"


def _sql_str(path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _read_csv(folder: Path, name: str) -> str:
    cols = _CSV[name]
    types = "{" + ", ".join(f"'{zh}': '{ty}'" for zh, (_, ty) in cols.items()) + "}"
    select = ", ".join(
        (f'{_case_zh(chr(34) + zh + chr(34))} AS {key}' if key in ("line", "role", "classification", "is_new")
         else f'"{zh}" AS {key}')
        for zh, (key, _) in cols.items())
    return (f"SELECT {select} FROM read_csv({_sql_str(folder / (name + '.csv'))}, header = true, "
            f"types = {types})")


# --------------------------------------------------------------------------------------------
# DOMAIN 3 and 4: account results -> per-customer measures (one SQL text, shared by both uses)

def _customer_measures_sql(p: dict, accounts: str = "accounts") -> str:
    t = p["days"] / p["day_basis"]
    uc, cr = p["unit_cost"], p["cost_rate"]
    rw = f"COALESCE(CASE WHEN isnan(risk_weight) THEN NULL ELSE risk_weight END, {_d(p['risk_weight_default'])})"

    def z(c):
        return f"COALESCE(CASE WHEN isnan({c}) THEN NULL ELSE {c} END, 0e0)"

    bal, base, rate, ftp = z("avg_balance"), z("base_avg_balance"), z("rate"), z("ftp_rate")
    asset = (f"{bal}*({rate}-{ftp})*{_d(t)} - {_d(p['tax_rate'])}*{bal}*{rate}*{_d(t)} - {_d(uc['asset'])}"
             f" - {bal}*{_d(cr['asset'])}*{_d(t)} - {bal}*{rw}*{_d(p['capital_ratio'])}*{_d(p['cost_of_capital'])}*{_d(t)}")
    liability = f"{bal}*({ftp}-{rate})*{_d(t)} - {_d(uc['liability'])} - {bal}*{_d(cr['liability'])}*{_d(t)}"
    fee = f"{z('fee_income')}*(1e0-{_d(p['tax_rate'])}) - {_d(uc['intermediate'])}"
    risk = f"{z('recovery')} - {z('provision')}"
    return f"""
        SELECT customer_id,
          SUM(CASE WHEN line = 'asset' THEN {asset} ELSE 0e0 END) AS asset,
          SUM(CASE WHEN line = 'liability' THEN {liability} ELSE 0e0 END) AS liability,
          SUM(CASE WHEN line = 'intermediate' THEN {fee} ELSE 0e0 END) AS intermediate,
          SUM(CASE WHEN line = 'asset' THEN {risk} ELSE 0e0 END) AS risk,
          SUM(CASE WHEN line = 'liability' THEN {bal} ELSE 0e0 END) AS liability_avg,
          SUM(CASE WHEN line = 'liability' THEN {bal} - {base} ELSE 0e0 END) AS liability_increase,
          SUM(CASE WHEN line = 'asset' THEN {bal} ELSE 0e0 END) AS asset_avg,
          SUM(CASE WHEN line = 'asset' THEN {bal} - {base} ELSE 0e0 END) AS asset_increase,
          SUM(CASE WHEN line = 'asset' AND classification IN ('substandard', 'doubtful', 'loss')
                   THEN {bal} ELSE 0e0 END) AS npl_balance,
          COUNT(DISTINCT COALESCE(NULLIF(TRIM(product), ''), '#' || line)) AS products
        FROM {accounts} GROUP BY customer_id"""


def _coefficients_sql(p: dict, assignments: str = "assignments", customers: str = "customers") -> str:
    """DOMAIN 5: one row per assignment with the coefficient used ``c``."""
    rw = p["role_weight"]
    w = (f"CASE role WHEN 'primary' THEN {_d(rw['primary'])} WHEN 'secondary' THEN {_d(rw['secondary'])} "
         f"WHEN 'support' THEN {_d(rw['support'])} ELSE 0e0 END")
    return f"""
        WITH a AS (
          SELECT a.customer_id, a.manager_id, a.role,
                 CASE WHEN isnan(a.coefficient) THEN NULL ELSE a.coefficient END AS given,
                 {w} AS w, c.is_new
          FROM {assignments} a JOIN {customers} c USING (customer_id)),
        s AS (
          SELECT *, SUM(COALESCE(given, 0e0)) OVER (PARTITION BY customer_id) AS given_sum,
                    SUM(CASE WHEN given IS NULL THEN w ELSE 0e0 END) OVER (PARTITION BY customer_id) AS w_sum
          FROM a)
        SELECT customer_id, manager_id, role,
               CASE WHEN given IS NOT NULL THEN given
                    WHEN w_sum > 0 THEN GREATEST(1e0 - given_sum, 0e0) * w / w_sum
                         * (CASE WHEN is_new THEN 1e0 ELSE {_d(p['stock_factor'])} END)
                    ELSE 0e0 END AS c
        FROM s"""


# --------------------------------------------------------------------------------------------
# (a) the whole evaluation in DuckDB SQL

def duckdb_evaluate(folder, out_json, params: dict | None = None, threads: int | None = None) -> dict:
    """Evaluate a :mod:`bench.gen` CSV folder with plain DuckDB SQL and write the DOMAIN 10 JSON.

    Parameters
    ----------
    folder : path-like
        Folder with ``managers.csv``, ``customers.csv``, ``accounts.csv``, ``assignments.csv``
        and optional ``targets.csv``, ``kpis.csv`` with :mod:`bench.gen`'s Chinese headers.
    out_json : path-like
        The document to write (managers by rank, customers, totals; unrounded yuan).
    params : dict, optional
        Overrides of :data:`DEFAULTS` (whole keys).
    threads : int, optional
        DuckDB threads (default: DuckDB's own).

    Returns
    -------
    dict
        ``seconds`` per phase (``read``, ``compute``, ``write``) and row counts.

    Raises
    ------
    ValueError
        When a required CSV file is missing.
    """
    import duckdb

    folder = Path(folder)
    p = {**DEFAULTS, **(params or {})}
    for name in ("managers", "customers", "accounts", "assignments"):
        if not (folder / f"{name}.csv").is_file():
            raise ValueError(f"{folder}: {name}.csv is missing (a bench.gen folder is expected)")
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    t0 = time.perf_counter()
    for name in _CSV:
        if (folder / f"{name}.csv").is_file():
            con.execute(f"CREATE TEMP TABLE {name}_raw AS {_read_csv(folder, name)}")
        else:
            cols = ", ".join(f"NULL::{ty} AS {key}" for key, ty in _CSV[name].values())
            con.execute(f"CREATE TEMP TABLE {name}_raw AS SELECT {cols} WHERE false")
    con.execute("CREATE TEMP VIEW customers AS SELECT * REPLACE (is_new = 'yes' AS is_new) FROM customers_raw")
    t1 = time.perf_counter()

    con.execute(f"CREATE TEMP TABLE cm AS {_customer_measures_sql(p, 'accounts_raw')}")
    con.execute(f"""CREATE TEMP TABLE cust AS
        SELECT c.customer_id, c.is_new, {', '.join(f'COALESCE(m.{k}, 0) AS {k}' for k in MEASURES)},
               COALESCE(m.asset, 0) + COALESCE(m.liability, 0) + COALESCE(m.intermediate, 0)
                 + COALESCE(m.risk, 0) AS total
        FROM customers c LEFT JOIN cm m USING (customer_id)""")
    con.execute(f"CREATE TEMP TABLE coef AS {_coefficients_sql(p, 'assignments_raw', 'customers')}")
    f = p["pay_factor"]
    con.execute(f"""CREATE TEMP TABLE mc AS
        WITH x AS (
          SELECT k.manager_id,
                 SUM(k.c * u.asset) AS asset, SUM(k.c * u.liability) AS liability,
                 SUM(k.c * u.intermediate) AS intermediate, SUM(k.c * u.risk) AS risk,
                 SUM(k.c * u.liability_avg) AS deposit_avg, SUM(k.c * u.liability_increase) AS deposit_increase,
                 SUM(k.c * u.asset_avg) AS loan_avg,
                 SUM(CASE WHEN u.is_new THEN k.c ELSE 0e0 END) AS new_customers,
                 SUM(k.c * u.products) AS c_products, SUM(k.c) AS c_sum
          FROM coef k JOIN cust u USING (customer_id) GROUP BY k.manager_id)
        SELECT m.manager_id, m.name, m.branch,
               {', '.join(f'COALESCE(x.{k}, 0e0) AS {k}' for k in (*_LINES, 'deposit_avg', 'deposit_increase', 'loan_avg', 'new_customers'))},
               CASE WHEN COALESCE(x.c_sum, 0) > 0 THEN x.c_products / x.c_sum ELSE 0e0 END AS cross_sell,
               {' + '.join(f'{_d(f[k])} * COALESCE(x.{k}, 0e0)' for k in _LINES)} AS pay_raw
        FROM managers_raw m LEFT JOIN x USING (manager_id)""")
    # DOMAIN 6: the scorecard over a long (manager, kpi) table
    kpi_rows = ", ".join(f"('{c}', {_d(w)}, '{k}', {_d(KPI_CAP)})" for c, w, k in KPI_TABLE)
    computed = ("deposit_avg", "deposit_increase", "loan_avg", "new_customers", "cross_sell")
    actual = "CASE t.code " + " ".join(f"WHEN '{c}' THEN m.{c}" for c in computed) + \
        " WHEN 'asset_contribution' THEN m.asset WHEN 'intermediate_contribution' THEN m.intermediate" \
        " ELSE COALESCE(v.value, 0e0) END"
    g, tr = p["grades"], p["tiers"]
    con.execute(f"""CREATE TEMP TABLE score AS
        WITH kt(code, weight, kind, cap) AS (VALUES {kpi_rows}),
        tg AS (SELECT manager_id, kpi, MAX(target) AS target FROM targets_raw
               WHERE target IS NOT NULL GROUP BY manager_id, kpi),
        vals AS (SELECT manager_id, kpi, MAX(value) AS value FROM kpis_raw GROUP BY manager_id, kpi),
        lng AS (SELECT m.manager_id, t.code, t.weight, t.kind, t.cap, {actual} AS actual, g.target AS given
                FROM mc m CROSS JOIN kt t
                LEFT JOIN vals v ON v.manager_id = m.manager_id AND v.kpi = t.code
                LEFT JOIN tg g ON g.manager_id = m.manager_id AND g.kpi = t.code),
        tgt AS (SELECT *, COALESCE(given, AVG(actual) OVER (PARTITION BY code)) AS target FROM lng)
        SELECT manager_id, SUM(CASE
            WHEN kind = 'deduction' THEN -weight * actual
            WHEN kind = 'ratio' AND target > 0 THEN weight * LEAST(GREATEST(actual / target, 0e0), cap)
            WHEN kind = 'ratio' THEN CASE WHEN actual >= target THEN weight ELSE 0e0 END
            WHEN kind = 'inverse' AND target > 0 THEN
                 CASE WHEN actual <= 0 THEN weight * cap ELSE weight * LEAST(GREATEST(target / actual, 0e0), cap) END
            ELSE CASE WHEN actual <= target THEN weight ELSE 0e0 END END) AS score
        FROM tgt GROUP BY manager_id""")
    con.execute(f"""CREATE TEMP TABLE mres AS
        WITH r AS (
          SELECT m.*, s.score,
                 {'GREATEST(pay_raw, 0e0)'} AS pay,
                 GREATEST(pay_raw, 0e0) AS pos
          FROM mc m JOIN score s USING (manager_id)),
        q AS (SELECT *, SUM(pos) OVER () AS pos_sum FROM r)
        SELECT *, CASE WHEN pos_sum > 0 THEN {_d(p['pool'])} * pos / pos_sum ELSE 0e0 END AS points_pay,
               CASE WHEN score >= {_d(g['senior'])} THEN 'senior' WHEN score >= {_d(g['advanced'])} THEN 'advanced'
                    WHEN score >= {_d(g['manager'])} THEN 'manager' WHEN score >= {_d(g['assistant'])} THEN 'assistant'
                    ELSE 'unrated' END AS grade,
               RANK() OVER (ORDER BY ROUND(pay, 6) DESC) AS rank,
               RANK() OVER (PARTITION BY branch ORDER BY ROUND(pay, 6) DESC) AS branch_rank
        FROM q""")
    con.execute(f"""CREATE TEMP TABLE cres AS
        WITH s AS (SELECT customer_id, SUM(c) AS c_sum FROM coef GROUP BY customer_id)
        SELECT u.*, (1e0 - COALESCE(s.c_sum, 0e0)) * u.total AS unattributed,
               CASE WHEN u.asset_avg + u.liability_avg >= {_d(tr['world_class'])} THEN 'world_class'
                    WHEN u.asset_avg + u.liability_avg >= {_d(tr['blue_chip'])} THEN 'blue_chip'
                    WHEN u.asset_avg + u.liability_avg >= {_d(tr['mid_size'])} THEN 'mid_size'
                    ELSE 'small' END AS tier,
               1 + LEAST(4, u.products) AS relationship_level
        FROM cust u LEFT JOIN s USING (customer_id)""")
    t2 = time.perf_counter()

    # DOMAIN 10 document: DuckDB writes the two long arrays (streamed, not one giant row); the
    # three pieces are then joined byte-wise
    contribution = "{" + ", ".join(f"'{k}': {k}" for k in _LINES) + ", 'total': asset + liability + intermediate + risk}"
    mgr = (f"manager_id, name, branch, {contribution} AS contribution, deposit_avg, deposit_increase, loan_avg, "
           "pay, points_pay, score, grade, rank, branch_rank")
    cus = f"customer_id, {contribution} AS contribution, unattributed, tier, relationship_level"
    out_json = Path(out_json)
    m_part, c_part = out_json.with_suffix(".managers.part"), out_json.with_suffix(".customers.part")
    con.execute(f"COPY (SELECT {mgr} FROM mres ORDER BY rank, manager_id) TO {_sql_str(m_part)} (FORMAT json, ARRAY true)")
    con.execute(f"COPY (SELECT {cus} FROM cres ORDER BY customer_id) TO {_sql_str(c_part)} (FORMAT json, ARRAY true)")
    totals = con.execute("""
        SELECT (SELECT SUM(total) FROM cres), (SELECT SUM(asset + liability + intermediate + risk) FROM mres),
               (SELECT SUM(unattributed) FROM cres), (SELECT SUM(pay) FROM mres), (SELECT SUM(points_pay) FROM mres)
        """).fetchone()
    keys = ("contribution", "attributed", "unattributed", "pay", "points_pay")
    with open(out_json, "wb") as out:
        out.write(b'{"managers":')
        for part, label in ((m_part, b',"customers":'), (c_part, b',"totals":')):
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
            part.unlink()
            out.write(label)
        out.write(json.dumps({k: float(v or 0.0) for k, v in zip(keys, totals)}).encode() + b"}")
    t3 = time.perf_counter()
    counts = {n: con.execute(f"SELECT COUNT(*) FROM {n}_raw").fetchone()[0] for n in ("managers", "customers", "accounts", "assignments")}
    con.close()
    return {"seconds": {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2, "total": t3 - t0}, "rows": counts}


# --------------------------------------------------------------------------------------------
# (b) the heavy stage alone, on typed frames

def _arrow(frame):
    import pyarrow as pa

    if isinstance(frame, pa.Table):
        return frame
    return pa.Table.from_pandas(frame, preserve_index=False)


def duckdb_heavy(accounts, customers, assignments, params: dict | None = None):
    """The heavy stage in plain DuckDB SQL on typed frames.

    Parameters
    ----------
    accounts, customers, assignments : pandas.DataFrame or pyarrow.Table
        Canonical columns (``customer_id``, ``line`` as ``asset``/``liability``/``intermediate``,
        money in yuan, rates as fractions; blank numbers NaN or null; ``is_new`` bool).
    params : dict, optional
        Overrides of :data:`DEFAULTS`.

    Returns
    -------
    tuple of pyarrow.Table
        Per customer (every customer of ``customers``; :data:`MEASURES` and ``total``, yuan) and
        per assignment row (``customer_id``, ``manager_id``, ``role``, ``coefficient`` and the
        customer's measures plus ``new``).
    """
    import duckdb

    p = {**DEFAULTS, **(params or {})}
    con = duckdb.connect()
    con.register("accounts", _arrow(accounts))
    con.register("customers_in", _arrow(customers))
    con.register("assignments", _arrow(assignments))
    measures = ", ".join(f"COALESCE(m.{k}, 0) AS {k}" for k in MEASURES)
    cust = con.sql(f"""
        WITH cm AS ({_customer_measures_sql(p, 'accounts')})
        SELECT c.customer_id, {measures},
               COALESCE(m.asset, 0) + COALESCE(m.liability, 0) + COALESCE(m.intermediate, 0) + COALESCE(m.risk, 0) AS total,
               CAST(c.is_new AS DOUBLE) AS new
        FROM customers_in c LEFT JOIN cm m USING (customer_id)""").to_arrow_table()
    con.register("cust", cust)
    asg = con.sql("""
        SELECT a.customer_id, a.manager_id, a.role, a.coefficient, c.* EXCLUDE (customer_id)
        FROM assignments a JOIN cust c USING (customer_id)""").to_arrow_table()
    con.close()
    return cust, asg


def polars_heavy(accounts, customers, assignments, params: dict | None = None):
    """The heavy stage in polars lazy on typed frames: same inputs and outputs as :func:`duckdb_heavy`
    (polars DataFrames instead of Arrow tables)."""
    import polars as pl

    p = {**DEFAULTS, **(params or {})}
    t = p["days"] / p["day_basis"]
    uc, cr = p["unit_cost"], p["cost_rate"]

    def lazy(x):
        if isinstance(x, pl.DataFrame):
            return x.lazy()
        if isinstance(x, pl.LazyFrame):
            return x
        return pl.from_arrow(_arrow(x)).lazy()

    def z(c):
        return pl.col(c).cast(pl.Float64).fill_nan(None).fill_null(0.0)

    bal, base, rate, ftp = z("avg_balance"), z("base_avg_balance"), z("rate"), z("ftp_rate")
    rw = pl.col("risk_weight").cast(pl.Float64).fill_nan(None).fill_null(p["risk_weight_default"])
    line = pl.col("line")
    is_a, is_l, is_i = line == "asset", line == "liability", line == "intermediate"
    asset = (bal * (rate - ftp) * t - p["tax_rate"] * bal * rate * t - uc["asset"] - bal * cr["asset"] * t
             - bal * rw * p["capital_ratio"] * p["cost_of_capital"] * t)
    liability = bal * (ftp - rate) * t - uc["liability"] - bal * cr["liability"] * t
    fee = z("fee_income") * (1 - p["tax_rate"]) - uc["intermediate"]
    risk = z("recovery") - z("provision")
    zero = pl.lit(0.0)
    product = pl.coalesce(pl.col("product").str.strip_chars().replace("", None), pl.lit("#") + line)
    cm = (lazy(accounts)
          .group_by("customer_id")
          .agg(pl.when(is_a).then(asset).otherwise(zero).sum().alias("asset"),
               pl.when(is_l).then(liability).otherwise(zero).sum().alias("liability"),
               pl.when(is_i).then(fee).otherwise(zero).sum().alias("intermediate"),
               pl.when(is_a).then(risk).otherwise(zero).sum().alias("risk"),
               pl.when(is_l).then(bal).otherwise(zero).sum().alias("liability_avg"),
               pl.when(is_l).then(bal - base).otherwise(zero).sum().alias("liability_increase"),
               pl.when(is_a).then(bal).otherwise(zero).sum().alias("asset_avg"),
               pl.when(is_a).then(bal - base).otherwise(zero).sum().alias("asset_increase"),
               pl.when(is_a & pl.col("classification").is_in(["substandard", "doubtful", "loss"]))
                 .then(bal).otherwise(zero).sum().alias("npl_balance"),
               product.n_unique().cast(pl.Int64).alias("products")))
    cust = (lazy(customers).select("customer_id", pl.col("is_new").cast(pl.Float64).alias("new"))
            .join(cm, on="customer_id", how="left")
            .with_columns(*(pl.col(k).fill_null(0) for k in MEASURES))
            .with_columns(total=pl.col("asset") + pl.col("liability") + pl.col("intermediate") + pl.col("risk"))
            .select("customer_id", *MEASURES, "total", "new")
            .collect())
    asg = (lazy(assignments).select("customer_id", "manager_id", "role", "coefficient")
           .join(cust.lazy(), on="customer_id", how="inner", maintain_order="left")
           .collect())
    return cust, asg


# --------------------------------------------------------------------------------------------
# comparing two DOMAIN 10 documents

def _parts(doc) -> dict:
    """A DOMAIN 10 document (dict or JSON file) as flat polars frames: managers, customers, totals."""
    import io

    import polars as pl

    if isinstance(doc, dict):
        src = io.BytesIO(json.dumps(doc).encode())
    else:
        src = Path(doc)
    raw = pl.read_json(src, infer_schema_length=None)
    out = {}
    for part in ("managers", "customers"):
        if part not in raw.columns:
            out[part] = pl.DataFrame()
            continue
        frame = raw.select(pl.col(part).explode()).unnest(part)
        if "contribution" in frame.columns:
            frame = frame.with_columns(pl.col("contribution").struct.rename_fields(
                [f"contribution.{f.name}" for f in frame.schema["contribution"].fields])).unnest("contribution")
        out[part] = frame
    out["totals"] = raw.select(pl.col("totals")).unnest("totals").row(0, named=True) if "totals" in raw.columns else {}
    return out


def compare(a, b) -> dict:
    """Compare two DOMAIN 10 documents (dicts or JSON file paths), column-wise.

    Returns
    -------
    dict
        ``managers``, ``customers``, ``totals``: field -> largest absolute difference (yuan;
        points for ``score``); ``mismatch``: field -> number of rows whose value differs
        (``rank``, ``branch_rank``, ``grade``, ``tier``, ``relationship_level``, ``name``,
        ``branch``); ``missing``: ids present in only one document; ``max_yuan``: the largest
        money difference of all; ``ok``: every money field within 0.01 yuan, score within 1e-6
        points, no mismatch and no missing id.
    """
    import polars as pl

    pa_, pb_ = _parts(a), _parts(b)
    out: dict = {"managers": {}, "customers": {}, "totals": {}, "mismatch": {}, "missing": {}}
    exact = ("rank", "branch_rank", "relationship_level")
    for part, key in (("managers", "manager_id"), ("customers", "customer_id")):
        fa, fb = pa_[part], pb_[part]
        if key not in fa.columns or key not in fb.columns:
            out["missing"][part] = max(fa.height, fb.height)
            continue
        out["missing"][part] = fa.height + fb.height - 2 * fa.join(fb.select(key), on=key, how="semi").height
        common = fa.join(fb, on=key, how="inner", suffix="__b")
        for col in fa.columns:
            if col == key:
                continue
            if col not in fb.columns:
                out["mismatch"][f"{part}.{col} (absent)"] = common.height
                continue
            x, y = common[col], common[col + "__b"]
            if x.dtype.is_numeric() and y.dtype.is_numeric() and col not in exact:
                d = (x.cast(pl.Float64) - y.cast(pl.Float64)).abs()
                out[part][col] = float(d.max() or 0.0) if common.height else 0.0
            else:
                out["mismatch"][f"{part}.{col}"] = int((x.cast(pl.String) != y.cast(pl.String)).fill_null(True).sum())
    ta, tb = pa_["totals"], pb_["totals"]
    for k in ta:
        if k in tb and ta[k] is not None and tb[k] is not None:
            out["totals"][k] = abs(float(ta[k]) - float(tb[k]))
    money = [v for part in ("managers", "customers") for k, v in out[part].items() if k != "score"]
    out["max_yuan"] = max(money, default=0.0)
    out["max_total_yuan"] = max(out["totals"].values(), default=0.0)
    out["ok"] = (out["max_yuan"] <= 0.01 and out["managers"].get("score", 0.0) <= 1e-6
                 and not any(out["mismatch"].values()) and not any(out["missing"].values()))
    return out


def summary(result: dict) -> str:
    """One line for a :func:`compare` result."""
    worst = max(((f"{p}.{k}", v) for p in ("managers", "customers") for k, v in result[p].items() if k != "score"),
                key=lambda kv: kv[1], default=("-", 0.0))
    bad = {k: v for k, v in result["mismatch"].items() if v}
    miss = {k: v for k, v in result["missing"].items() if v}
    return (f"max diff {result['max_yuan']:.2g} yuan ({worst[0]}), score {result['managers'].get('score', 0.0):.2g} pts,"
            f" totals {result['max_total_yuan']:.2g} yuan; mismatches {bad or 'none'}; missing ids {miss or 'none'}")


def main(argv=None) -> int:
    """Command line: ``duckdb FOLDER OUT.json`` or ``compare A.json B.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.reference")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("duckdb", help="evaluate a bench.gen CSV folder with plain DuckDB SQL")
    d.add_argument("folder")
    d.add_argument("out")
    c = sub.add_parser("compare", help="compare two DOMAIN 10 JSON documents")
    c.add_argument("a")
    c.add_argument("b")
    args = parser.parse_args(argv)
    if args.cmd == "duckdb":
        info = duckdb_evaluate(args.folder, args.out)
        s = info["seconds"]
        print(f"wrote {args.out}: read {s['read']:.2f} s, compute {s['compute']:.2f} s, write {s['write']:.2f} s, "
              f"total {s['total']:.2f} s; rows {info['rows']}")
        return 0
    result = compare(args.a, args.b)
    print(summary(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
