"""All or nothing, or the valid rows only: split an extract and keep what was rejected.

When the user explicitly accepts the valid rows, every row with an error is moved to the
quarantine, and so is every row that depends on a rejected one (an account of a rejected
customer, an assignment of a rejected manager ...). Nothing disappears: the quarantine lists
each rejected row with its sheet, Excel row, reasons and original values.
"""

from __future__ import annotations

import json

import pandas as pd

from data.ingest import Extract
from data.report import Report
from data.schema import SHEETS, sheet_by_key

__all__ = ["split_valid"]


def split_valid(extract: Extract, report: Report, lang: str = "en") -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Valid frames and the quarantine.

    Parameters
    ----------
    extract : Extract
        Parsed extract whose frames carry ``_error``.
    report : Report
        Its report (for the reasons).
    lang : str
        Language of the reasons (``en`` or ``zh``).

    Returns
    -------
    tuple of (dict of str to DataFrame, DataFrame)
        Frames without rejected rows (``_error`` all False), and the quarantine with columns
        ``sheet``, ``row``, ``reason``, ``values`` (JSON of the row as read).
    """
    reasons: dict[tuple[str, int], list[str]] = {}
    for issue in report.errors:
        if issue.row is not None:
            reasons.setdefault((issue.sheet, issue.row), []).append(f"{issue.column}: {issue.message(lang)}")
    frames = extract.frames                 # read only: kept rows are new frames below
    rejected = {k: v["_error"].to_numpy(dtype=bool).copy() if len(v) else None for k, v in frames.items()}
    # cascade in schema order (parents come first)
    for sheet in SHEETS:
        df = frames.get(sheet.key)
        if df is None or not len(df):
            continue
        for col, target in sheet.foreign_keys.items():
            parent = frames.get(target)
            if parent is None or not len(parent):
                continue
            id_col = sheet_by_key(target).id_column
            dropped = set(parent.loc[rejected[target], id_col])
            if not dropped:
                continue
            hit = df[col].isin(dropped).to_numpy() & ~rejected[sheet.key]
            name = extract.sheet_names.get(sheet.key, sheet.key)
            for r in df.loc[hit, "_row"]:
                reasons.setdefault((name, int(r)), []).append(
                    f"{col}: depends on a rejected row of '{extract.sheet_names.get(target, target)}'"
                    if lang == "en" else f"{col}：所引用的“{extract.sheet_names.get(target, target)}”行已被拒绝")
            rejected[sheet.key] |= hit
    quarantine = []
    valid = {}
    for key, df in frames.items():
        if not len(df):
            valid[key] = df.copy()
            continue
        mask = rejected[key]
        name = extract.sheet_names.get(key, key)
        if mask.any():                      # only the rejected rows are visited, one JSON text each
            bad = df.loc[mask]
            cols = [c for c in bad.columns if not c.startswith("_")]
            texts = {c: bad[c].astype(object).where(bad[c].notna(), None).to_numpy() for c in cols}
            for k, r in enumerate(bad["_row"].to_numpy()):
                values = {c: (None if texts[c][k] is None else str(texts[c][k])) for c in cols}
                quarantine.append({"sheet": name, "row": int(r),
                                   "reason": "; ".join(reasons.get((name, int(r)), ["rejected"])),
                                   "values": json.dumps(values, ensure_ascii=False)})
        kept = df[~mask].reset_index(drop=True)
        kept["_error"] = False
        valid[key] = kept
    q = pd.DataFrame(quarantine, columns=["sheet", "row", "reason", "values"])
    return valid, q
