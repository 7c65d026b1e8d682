"""Build typed input frames for calc tests from short lists of dicts.

The frames look like what :func:`data.ingest.parse_book` produces for a clean upload:
canonical columns in schema order, ``_row`` (int Excel row, 2, 3, ...) first and ``_error``
(bool, all False) last; ids and text as ``str`` dtype; money, rates and numbers as float with
missing cells 0.0, except ``coefficient`` and ``risk_weight`` (NaN = blank: derived / default)
and the blank-allowed ``target`` and ``value`` (NaN); ``is_new`` as bool (default False);
``date`` as datetime64.

Conveniences: a missing ``name`` defaults to the record's id, a missing ``branch`` to ``"B1"``,
a missing ``role`` to ``"primary"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import sheet_by_key

__all__ = ["make_frame", "make_frames"]

_NAN_WHEN_BLANK = ("coefficient", "risk_weight")
_DEFAULTS = {"branch": "B1", "role": "primary"}


def make_frame(sheet_key: str, rows: list[dict] | None) -> pd.DataFrame:
    """One typed frame for sheet ``sheet_key`` from a list of dicts (unknown keys rejected)."""
    sheet = sheet_by_key(sheet_key)
    rows = list(rows or [])
    keys = {c.key for c in sheet.columns}
    for r in rows:
        extra = set(r) - keys - {"_row", "_error"}
        if extra:
            raise KeyError(f"{sheet_key}: unknown column(s) {sorted(extra)}")
    n = len(rows)
    data: dict[str, object] = {"_row": pd.Series([r.get("_row", i + 2) for i, r in enumerate(rows)], dtype="int64")}
    for c in sheet.columns:
        vals = [r.get(c.key) for r in rows]
        if c.key == "name" and sheet.id_column:
            vals = [v if v is not None else r[sheet.id_column] for v, r in zip(vals, rows)]
        if c.key in _DEFAULTS:
            vals = [v if v is not None else _DEFAULTS[c.key] for v in vals]
        if c.kind in ("id", "text", "enum"):
            data[c.key] = pd.Series([None if v is None else str(v) for v in vals], dtype="str")
        elif c.kind == "bool":
            data[c.key] = pd.Series([bool(v) if v is not None else False for v in vals], dtype=bool)
        elif c.kind == "date":
            data[c.key] = pd.Series(pd.to_datetime([v for v in vals]) if n else [], dtype="datetime64[ns]")
        else:
            blank = np.nan if (c.key in _NAN_WHEN_BLANK or c.allow_blank) else 0.0
            data[c.key] = pd.Series([blank if v is None else float(v) for v in vals], dtype=float)
    data["_error"] = pd.Series([bool(r.get("_error", False)) for r in rows], dtype=bool)
    return pd.DataFrame(data)


def make_frames(managers=(), customers=(), accounts=(), assignments=(), targets=None, kpis=None,
                daily=None) -> dict[str, pd.DataFrame]:
    """All seven frames as ``data.ingest`` would return them (optional sheets empty when None)."""
    return {
        "managers": make_frame("managers", managers),
        "customers": make_frame("customers", customers),
        "accounts": make_frame("accounts", accounts),
        "assignments": make_frame("assignments", assignments),
        "daily_balances": make_frame("daily_balances", daily),
        "targets": make_frame("targets", targets),
        "kpis": make_frame("kpis", kpis),
    }
