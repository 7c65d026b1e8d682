"""The heavy stage on Apache Spark: the SQL text of :mod:`calc.formulas`, run where the data is.

Spark runs the very text DuckDB and polars run (no formula is written here): the input tables are
registered as temporary views under the names the text reads (``accounts``, ``daily_balances``),
:func:`calc.formulas.daily_average_sql` becomes the view ``daily_avg``, and
:func:`calc.formulas.customer_measures_sql` sums each customer's accounts inside Spark. Only the
aggregates come back to the driver, as Arrow: one row per customer holding accounts, one per
account with daily balances (DOMAIN 4, which the drill-down reads) and the accounts total of the
money reconciliation. Spark adds in parallel, so the last bits of a sum may differ from the
embedded engine's row-order sums (and between runs): the numbers agree to far below 0.01 yuan,
not bit for bit.

The session
-----------
One SparkSession per process (:func:`session`), on the master in the environment variable
``JIXIAO_SPARK_MASTER`` (default ``local[2]``: two worker threads in this process's JVM). For
a ``local`` master the shuffle has :data:`LOCAL_SHUFFLE_PARTITIONS` partitions (Spark's default of
200 is meant for a cluster; on two threads it costs seconds in task overhead) and the driver gets
``JIXIAO_SPARK_DRIVER_MEMORY`` (default 4g): local mode computes in the driver's JVM. On a
cluster the cluster's own settings apply; ``spark-submit`` options and ``SPARK_CONF_DIR`` work as
usual. Spark needs Java (17 or later) and pyspark (``requirements-dev.txt``).

Warehouse tables
----------------
:mod:`data.warehouse` reads a Spark database's tables as an extract (``spark:DB`` as the input
of ``cli.py evaluate`` or ``load``), validated by the same rules as a file. The session sees a
cluster's Hive metastore when ``JIXIAO_SPARK_HIVE=1`` (with the cluster's ``hive-site.xml`` in
``SPARK_CONF_DIR``); otherwise its catalog is Spark's in-memory one (tables registered in this
process).
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd
import pyarrow as pa

__all__ = ["MASTER_ENV", "DEFAULT_MASTER", "LOCAL_SHUFFLE_PARTITIONS", "unavailable", "master", "session",
           "run_queries", "SparkAggregates", "heavy_aggregates", "to_arrow"]

MASTER_ENV = "JIXIAO_SPARK_MASTER"
DEFAULT_MASTER = "local[2]"
DRIVER_MEMORY_ENV = "JIXIAO_SPARK_DRIVER_MEMORY"
HIVE_ENV = "JIXIAO_SPARK_HIVE"
LOCAL_SHUFFLE_PARTITIONS = 4

_lock = threading.Lock()
_session = None


def unavailable() -> str | None:
    """Why Spark cannot run here (pyspark or Java missing), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -r requirements-dev.txt)"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "Java is not installed (Spark needs a JRE 17 or later: apt-get install default-jre-headless)"
    return None


def master() -> str:
    """The Spark master URL: ``JIXIAO_SPARK_MASTER``, default ``local[2]``."""
    return os.environ.get(MASTER_ENV, "").strip() or DEFAULT_MASTER


def session():
    """The process's SparkSession on :func:`master` (created on first use, ~5-10 s, then reused).

    Raises
    ------
    RuntimeError
        When pyspark or Java is missing (the reason named).
    """
    global _session
    with _lock:
        if _session is not None and _session._jsc is not None:      # not stopped
            return _session
        why = unavailable()
        if why:
            raise RuntimeError(f"the Spark engine cannot run: {why}")
        from pyspark.sql import SparkSession

        url = master()
        builder = (SparkSession.builder.master(url).appName("jixiao-heavy-stage")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")      # no progress bars on stderr
                   .config("spark.log.level", "ERROR")
                   .config("spark.driver.extraJavaOptions",
                           f"-Dlog4j.configurationFile={Path(__file__).with_name('spark_log4j2.properties')}")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.sql.session.timeZone", "UTC"))
        if url.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")        # a local master talks to itself only
            builder = (builder.config("spark.sql.shuffle.partitions", str(LOCAL_SHUFFLE_PARTITIONS))
                       .config("spark.default.parallelism", str(LOCAL_SHUFFLE_PARTITIONS))
                       .config("spark.driver.memory", os.environ.get(DRIVER_MEMORY_ENV, "4g"))
                       .config("spark.driver.bindAddress", "127.0.0.1")
                       .config("spark.sql.warehouse.dir", str(Path(__file__).resolve().parents[1] / "var" / "spark-warehouse")))
        if os.environ.get(HIVE_ENV, "").strip() in ("1", "true", "yes"):
            builder = builder.enableHiveSupport()      # the cluster's metastore (hive-site.xml in SPARK_CONF_DIR)
        with warnings.catch_warnings():        # pyspark warns that it does not yet fully support pandas 3
            warnings.simplefilter("ignore", FutureWarning)
            _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
        return _session


def _to_spark(spark, frame: pd.DataFrame | pa.Table):
    """A Spark DataFrame of ``frame`` (NaN in float columns becomes NULL, as on the other engines)."""
    from calc.engines import to_arrow

    table = to_arrow(frame)
    # Spark reads Arrow's 32-bit offset strings; large_string (pandas 3's str) is cast, not copied per value
    schema = pa.schema([pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
                        for f in table.schema])
    table = table.replace_schema_metadata(None)
    if schema != table.schema:
        table = table.cast(schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return spark.createDataFrame(table)


def to_arrow(df) -> pa.Table:
    """A Spark DataFrame's rows, brought to the driver as an Arrow table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return df.toArrow()


def run_queries(queries: Mapping[str, str], tables: Mapping[str, pd.DataFrame | pa.Table]) -> dict[str, pa.Table]:
    """Execute several SELECTs in order on Spark over named tables; each result comes back as
    Arrow and is also a view for the later queries (the contract of :func:`calc.engines.run_queries`).

    The views live in the process's session and are dropped at the end; each result is cached
    while the call runs (a later query reads it without computing it again).
    """
    spark = session()
    names, cached = [], []
    try:
        for name, frame in tables.items():
            _to_spark(spark, frame).createOrReplaceTempView(name)
            names.append(name)
        out = {}
        for name, sql in queries.items():
            df = spark.sql(sql).cache()       # computed once: brought back, then read by later queries
            cached.append(df)
            out[name] = to_arrow(df)
            df.createOrReplaceTempView(name)
            names.append(name)
        return out
    finally:
        for name in names:
            spark.catalog.dropTempView(name)
        for df in cached:                     # this call's results only: other sessions' caches stay
            df.unpersist()


@dataclass(frozen=True)
class SparkAggregates:
    """What the heavy stage brings back from Spark (everything else stays there).

    Attributes
    ----------
    customers : pyarrow.Table
        ``customer_id`` and :data:`calc.formulas.MEASURES`, one row per customer holding accounts.
    daily_avg : DataFrame or None
        ``account_id``, ``avg_balance`` (yuan) per account with daily balances; None without any.
    accounts_total : float
        Sum over every account of its asset, liability, intermediate and risk parts (yuan), summed
        over the account rows, independently of the per-customer sums.
    """

    customers: pa.Table
    daily_avg: pd.DataFrame | None
    accounts_total: float


def heavy_aggregates(accounts: pd.DataFrame | pa.Table, daily: pd.DataFrame | pa.Table | None,
                     scenario) -> SparkAggregates:
    """Run the heavy stage's formulas on Spark and bring back only the aggregates.

    Parameters
    ----------
    accounts : DataFrame or Arrow table
        The accounts relation of :mod:`calc.formulas` (typed columns of
        :data:`calc.formulas.ACCOUNT_INPUTS`).
    daily : DataFrame, Arrow table or None
        The ``daily_balances`` relation ``(account_id, day_no, balance)`` with at least one row,
        or None without daily balances.
    scenario : calc.scenario.Scenario
        The account-level parameters.

    Returns
    -------
    SparkAggregates
    """
    from calc.formulas import SUMMED, account_measures_sql, customer_measures_sql, daily_average_sql

    tables = {"accounts": accounts}
    queries = {}
    if daily is not None:
        tables["daily_balances"] = daily
        queries["daily_avg"] = daily_average_sql(scenario.days)
    name = "daily_avg" if daily is not None else None
    line = " + ".join(SUMMED[:4])     # asset + liability + intermediate + risk: each account's line result
    queries["customers"] = customer_measures_sql(scenario, daily=name)
    queries["total"] = f"SELECT SUM({line}) AS total FROM ({account_measures_sql(scenario, daily=name)}) m"
    out = run_queries(queries, tables)
    total = out["total"].column("total")[0].as_py()
    return SparkAggregates(customers=out["customers"],
                           daily_avg=out["daily_avg"].to_pandas() if daily is not None else None,
                           accounts_total=float(total) if total is not None else 0.0)
