"""The headless run's JSON document (DOMAIN.md section 10), built from a light-stage Result.

The document is written column by column (polars string expressions over whole columns): no
Python runs per manager or customer, so 200k customers take a fraction of a second. Its text is
the canonical frozen form a publication hashes: compact separators, keys sorted at every level,
non-ASCII kept (``ensure_ascii=False``), floats in the shortest form that reads back as the same
float64 (Python's ``repr``), NaN and infinities as ``null``. It is byte for byte what
``json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`` gives for the same
document, so publications frozen before this module was columnar still verify.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl

from calc.light import Result
from calc.scenario import PAY_LINES

__all__ = ["to_json_dict", "document_text", "document_bytes", "float_text"]

# The document's shape: key -> (kind, column) or key -> nested shape. Kinds: "text" (a JSON
# string, or null), "float" (unrounded yuan or points; null when not finite), "int".
_CONTRIBUTION = {line: ("float", line) for line in (*PAY_LINES, "total")}
MANAGER_FIELDS: dict = {
    "manager_id": ("text", "manager_id"), "name": ("text", "name"), "branch": ("text", "branch"),
    "contribution": _CONTRIBUTION,
    "deposit_avg": ("float", "deposit_avg"), "deposit_increase": ("float", "deposit_increase"),
    "loan_avg": ("float", "loan_avg"),
    "pay": ("float", "pay"), "points_pay": ("float", "points_pay"), "score": ("float", "score"),
    "grade": ("text", "grade"), "rank": ("int", "rank"), "branch_rank": ("int", "branch_rank"),
}
CUSTOMER_FIELDS: dict = {
    "customer_id": ("text", "customer_id"), "contribution": _CONTRIBUTION,
    "unattributed": ("float", "unattributed"), "tier": ("text", "tier"),
    "relationship_level": ("int", "relationship_level"),
}
TOTAL_KEYS = ("contribution", "attributed", "unattributed", "pay", "points_pay")

# Python's repr writes a float in scientific notation when its decimal exponent is below -4 or at
# least 16; polars' shortest form agrees digit for digit elsewhere (checked on 1.3M random
# floats), so only values outside that band are formatted by repr.
_REPR_SMALL = 1e-4
_REPR_LARGE = 1e16
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'   # json.dumps(ensure_ascii=False) escapes exactly these


def float_text(values) -> pl.Series:
    """Shortest round-trip text of float64 values, as Python's ``repr``; null when not finite.

    Parameters
    ----------
    values : array-like of float
        Any numeric column (ints are written as floats, ``5`` -> ``5.0``).

    Returns
    -------
    polars.Series
        String column, same length; ``float(text)`` gives back exactly the same float64.
    """
    x = np.asarray(values, dtype=np.float64)
    out = pl.Series("v", x, dtype=pl.Float64).cast(pl.String)
    finite = np.isfinite(x)
    a = np.abs(x)
    odd = np.flatnonzero(finite & (((a < _REPR_SMALL) & (a != 0)) | (a >= _REPR_LARGE)))
    if odd.size:   # rare in money data: tiny rounding residues, astronomically large sums
        out = out.scatter(odd, [repr(v) for v in x[odd].tolist()])
    if not finite.all():
        out = out.scatter(np.flatnonzero(~finite), None)
    return out


def _text_json(values) -> pl.Series:
    """JSON string literals (``ensure_ascii=False``) of a text column; null stays null."""
    s = values if isinstance(values, pl.Series) else pl.Series("v", values, dtype=pl.String)
    out = ('"' + s + '"').alias("v")
    odd = np.flatnonzero(s.str.contains(_NEEDS_ESCAPE).fill_null(False).to_numpy())
    if odd.size:   # quotes, backslashes or control characters: only these cells go through json
        out = out.scatter(odd, [json.dumps(v, ensure_ascii=False) for v in s.gather(odd).to_list()])
    return out


def _column(frame: pd.DataFrame, kind: str, col: str) -> pl.Series:
    """One value column of the document, as JSON text (null where the value is missing)."""
    if kind == "float":
        return float_text(frame[col].to_numpy(dtype=np.float64, na_value=np.nan))
    if kind == "int":
        v = frame[col]
        if v.isna().any():
            raise ValueError(f"column {col} has missing values; the document needs an integer in every row")
        return pl.Series("v", v.to_numpy(dtype=np.int64)).cast(pl.String)
    if kind == "text":
        v = frame[col].reset_index(drop=True)
        try:
            s = pl.from_pandas(v)
        except (TypeError, ValueError, pl.exceptions.PolarsError):   # text mixed with other types
            s = pl.from_pandas(v.astype(object).where(v.isna(), v.astype(str)).astype("str"))
        return _text_json(s if s.dtype == pl.String else s.cast(pl.String))
    raise ValueError(f"unknown kind {kind!r} for column {col}")


def _object_expr(frame: pd.DataFrame, fields: dict, cols: dict) -> pl.Expr:
    """A concat_str expression building one JSON object per row, keys sorted."""
    parts: list = []
    for i, key in enumerate(sorted(fields)):
        parts.append(pl.lit(("{" if i == 0 else ",") + json.dumps(key, ensure_ascii=False) + ":"))
        spec = fields[key]
        if isinstance(spec, dict):
            parts.append(_object_expr(frame, spec, cols))
        else:
            name = f"_{len(cols)}"
            cols[name] = _column(frame, *spec).fill_null("null")
            parts.append(pl.col(name))
    parts.append(pl.lit("}"))
    return pl.concat_str(parts)


def _array_bytes(frame: pd.DataFrame, fields: dict) -> bytes:
    """``[obj,obj,...]`` (UTF-8) for every row of ``frame`` in its order."""
    if frame.empty:
        return b"[]"
    cols: dict[str, pl.Series] = {}
    expr = _object_expr(frame, fields, cols)
    expr = pl.concat_str([pl.lit("["), expr.str.join(","), pl.lit("]")])
    return pl.DataFrame(cols).select(expr.cast(pl.Binary)).item()


def document_text(result: Result) -> str:
    """The DOMAIN 10 document as canonical JSON text (the form a publication freezes and hashes).

    ``document_bytes(result).decode("utf-8")``; see :func:`document_bytes`.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    str
        The canonical text.
    """
    return document_bytes(result).decode("utf-8")


def document_bytes(result: Result) -> bytes:
    """The DOMAIN 10 document as canonical JSON, UTF-8 encoded (for files and hashes).

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    bytes
        ``{"customers":[...],"managers":[...],"totals":{...}}``: compact separators, keys sorted at
        every level, non-ASCII kept, floats (yuan, points) unrounded in their shortest round-trip
        form, NaN and infinities as ``null``, ``rank``, ``branch_rank`` and ``relationship_level``
        as integers. Managers ordered by rank then manager_id, customers in Result order.

    Raises
    ------
    ValueError
        When a column the document needs is missing, or an integer column has a missing value.
    """
    for name, frame, fields in (("managers", result.managers, MANAGER_FIELDS),
                                ("customers", result.customers, CUSTOMER_FIELDS)):
        need = {spec[1] for v in fields.values() for spec in (v.values() if isinstance(v, dict) else [v])}
        missing = sorted(need - set(frame.columns))
        if missing:
            raise ValueError(f"result.{name} lacks column(s) {', '.join(missing)} needed by the DOMAIN 10 document")
    missing = [k for k in TOTAL_KEYS if k not in result.totals]
    if missing:
        raise ValueError(f"result.totals lacks {', '.join(missing)} needed by the DOMAIN 10 document")
    managers = result.managers.sort_values(["rank", "manager_id"], kind="stable")
    t = float_text([result.totals[k] for k in TOTAL_KEYS]).fill_null("null").to_list()
    totals = dict(zip(TOTAL_KEYS, t))
    totals_text = "{" + ",".join(f'"{k}":{totals[k]}' for k in sorted(totals)) + "}"
    return b"".join((b'{"customers":', _array_bytes(result.customers, CUSTOMER_FIELDS),
                     b',"managers":', _array_bytes(managers, MANAGER_FIELDS),
                     b',"totals":', totals_text.encode("utf-8"), b"}"))


def to_json_dict(result: Result) -> dict:
    """The DOMAIN 10 document as a dict: managers (by rank), customers, totals. Amounts: unrounded yuan.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    dict
        ``{"managers": [...], "customers": [...], "totals": {...}}``, JSON-serialisable; the
        parsed :func:`document_text`.
    """
    return json.loads(document_bytes(result))
