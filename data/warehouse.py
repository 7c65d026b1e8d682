"""Warehouse tables as an extract: a Spark database read like a workbook (``spark:DB``).

A bank that keeps the period's extract in its Spark or Hive warehouse names the database instead
of a file: one table per sheet, named by the schema's English sheet keys (``managers``,
``customers``, ``accounts``, ``assignments`` and optional ``daily_balances``, ``targets``,
``kpis``) or their Chinese names, with the schema's column names (English or Chinese). The
tables become a :class:`data.readers.RawBook`, so :func:`data.ingest.parse_book` validates them
by the one set of rules and reports offending rows as for a file: the table as the sheet and
the row's position + 1 after the header, in the order Spark read the table.

The rows are brought to the driver as Arrow for validation, so an extract read this way must fit
the driver's memory; the heavy stage then runs on Spark (``--engine spark``).
"""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = ["PREFIX", "is_warehouse", "read_warehouse", "read_and_check"]

PREFIX = "spark:"


def is_warehouse(source) -> bool:
    """True when ``source`` names a Spark database (``spark:DB``) rather than a file."""
    return isinstance(source, str) and source.startswith(PREFIX)


class _ArrowSheet:
    """:class:`data.readers.RawSheet` backend over an Arrow table: the column names are the header
    row (row index 0), row ``i`` of the table is row index ``i + 1``."""

    def __init__(self, table: pa.Table):
        self.table = table

    def head(self, n: int | None) -> list[list]:
        rows = self.table if n is None else self.table.slice(0, max(n - 1, 0))
        body = [["" if v is None else v for v in r.values()] for r in rows.to_pylist()]
        return [list(self.table.column_names)] + body

    def body(self, start: int, columns: list[int], numeric=(), ids=()) -> tuple[int, list[pa.Array]]:
        part = self.table.slice(start)
        numeric = set(numeric)
        out = []
        for j in columns:
            col = part.column(j).combine_chunks()
            if pa.types.is_string(col.type):
                col = col.cast(pa.large_string())
            elif pa.types.is_integer(col.type) or pa.types.is_decimal(col.type) or pa.types.is_floating(col.type):
                col = col.cast(pa.float64()) if j in numeric else col.cast(pa.large_string())
            out.append(col)
        return part.num_rows, out


def read_warehouse(source: str, spark=None):
    """The tables of a Spark database as an extract to validate (one table per sheet).

    Parameters
    ----------
    source : str
        ``spark:DB`` or ``DB``: a database (schema) in the session's catalog, e.g.
        ``spark:bank_2026q3``.
    spark : SparkSession, optional
        Default: :func:`calc.spark.session` (master from ``JIXIAO_SPARK_MASTER``).

    Returns
    -------
    data.readers.RawBook

    Raises
    ------
    data.report.ExtractError
        (``file_unreadable``) When the name is not a database name, the database does not exist
        or holds no table, or Spark cannot run here (the reason named).
    """
    from calc.spark import master, session, to_arrow
    from data.readers import RawBook, RawSheet
    from data.report import ExtractError

    database = source[len(PREFIX):] if is_warehouse(source) else source

    def refuse(detail: str):
        return ExtractError.of("file_unreadable", sheet=f"{PREFIX}{database}",
                               expected="a Spark database with one table per sheet", detail=detail)

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database or ""):
        raise refuse("a database name has letters, digits and _ only (spark:DB)")
    try:
        spark = spark or session()
    except RuntimeError as e:
        raise refuse(str(e)) from None
    if not spark.catalog.databaseExists(database):
        raise refuse(f"the Spark catalog (master {master()}) has no database {database!r}")
    tables = [t.name for t in spark.catalog.listTables(database) if not t.isTemporary]
    if not tables:
        raise refuse("the database holds no table: one table per sheet is expected (managers, customers, "
                     "accounts, assignments; optional daily_balances, targets, kpis)")
    sheets = [RawSheet(name, _ArrowSheet(to_arrow(spark.table(f"`{database}`.`{name}`"))),
                       source=f"{PREFIX}{database}.{name}") for name in sorted(tables)]
    return RawBook(sheets=sheets, kind="warehouse", notes=[])


def read_and_check(database: str) -> tuple:
    """Read and validate a warehouse database as an upload: ``(digest, extract or None, report,
    label)``.

    The digest is a SHA-256 over the tables' rows (each table's Arrow IPC stream, in the order
    read), so reading an unchanged database again stores nothing new; ``label`` is ``spark:DB``.
    """
    import hashlib

    from data.ingest import parse_book
    from data.report import ExtractError

    label = f"{PREFIX}{database}"
    try:
        book = read_warehouse(label)
    except ExtractError as e:
        return hashlib.sha256(label.encode()).hexdigest(), None, e.report, label
    h = hashlib.sha256()
    for sheet in book.sheets:
        table = sheet.backend.table
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        h.update(sheet.name.encode() + b"\0" + hashlib.sha256(sink.getvalue()).digest())
    try:
        extract, report = parse_book(book)
    except ExtractError as e:
        extract, report = None, e.report
    return h.hexdigest(), extract, report, label

