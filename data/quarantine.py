"""All or nothing, or the valid rows only: split an extract and keep what was rejected.

When the user explicitly accepts the valid rows, every row with an error is moved to the
quarantine, and so is every row that depends on a rejected one (an account of a rejected
customer, an assignment of a rejected manager ...). Nothing disappears: the quarantine lists
each rejected row with its sheet, Excel row, reasons and original values.

Only row-level errors can be quarantined. A structural error (a missing sheet or required
column, an unreadable file, a wrong file type, two sheets for one table, any error not tied to
one data row) leaves nothing sound to keep, so accepting the valid rows is refused for it
(:func:`refusals`; :func:`split_valid` raises). Every path that stores or computes on valid
rows (the Upload page, ``cli.py load`` and ``cli.py evaluate`` with ``--accept-valid-rows``)
goes through :func:`split_valid`, so none of them can store a dataset that does not open.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from data.ingest import Extract
from data.report import Issue, Report
from data.schema import SHEETS, sheet_by_key

__all__ = ["ROW_RULES", "structural", "refusals", "split_summary", "split_valid"]

# Error rules that judge the cells of one data row and flag that row (``_error``), so the row
# can be set aside alone. Every other error rule is structural (data/report.py, RULES).
ROW_RULES = frozenset({
    "required", "not_number", "not_date", "negative", "rate_percent", "rate_range", "out_of_range",
    "coefficient_range", "coefficient_sum", "unknown_value", "duplicate_id", "duplicate_pair", "unknown_key",
    "too_large", "date_range", "date_outlier", "text_too_long", "text_nul", "formula_no_value",
})


def structural(report: Report) -> list[Issue]:
    """The errors of ``report`` that are not row-level: a rule outside :data:`ROW_RULES`, or an
    error without a row. Accepting the valid rows is refused when there is any."""
    return [i for i in report.errors if i.rule not in ROW_RULES or i.row is None]


def refusals(extract: Extract | None, report: Report, lang: str = "en") -> list[str]:
    """Why the valid rows of this extract cannot be accepted (empty: they can), in ``lang``.

    Besides :func:`structural` errors: a file that could not be read at all, a required sheet
    without a frame, a row-level error on a row the extract does not hold (so the quarantine
    could not hold it), and a required sheet every row of which would be quarantined.
    """
    zh = lang == "zh"
    out = [i.line(lang) for i in structural(report)]
    if out:
        return out
    if extract is None:                    # the safety nets below: a report that misses a problem
        return ["无法读取文件" if zh else "the files could not be read"]
    names = extract.sheet_names
    key_of = {v: k for k, v in names.items()}
    for sheet in SHEETS:
        if sheet.required and sheet.key not in extract.frames:
            out.append(f"缺少工作表“{sheet.zh}”" if zh else f"sheet '{sheet.key}' ({sheet.zh}) was not read")
    flagged: dict[str, set] = {}
    for i in report.errors:
        if i.rule not in ROW_RULES or i.row is None:
            continue
        key = key_of.get(i.sheet)
        df = extract.frames.get(key) if key is not None else None
        if key not in flagged:
            flagged[key] = (set() if df is None or not len(df) else
                            set(df.loc[df["_error"].to_numpy(dtype=bool), "_row"].tolist()))
        if i.row not in flagged[key]:
            out.append(i.line(lang) + ("（该行未被读入，隔离区无法保存它）" if zh else
                                       " (that row was not read, so the quarantine cannot hold it)"))
    if not out:
        summary = split_summary(extract, report)
        for r in summary.itertuples(index=False):
            sheet = sheet_by_key(r.key)
            if sheet.required and r.read and not r.kept:
                out.append(f"工作表“{r.sheet}”的 {r.read:,} 行将全部被隔离，没有可用的数据" if zh else
                           f"every one of the {r.read:,} rows of sheet '{r.sheet}' would be quarantined")
    return out


def _rejected(extract: Extract):
    """Rows set aside per sheet: ``own`` (rows with errors), ``rejected`` (own and cascade) and
    the cascade steps ``(sheet key, column, parent key, hit mask)`` in schema order."""
    frames = extract.frames
    own = {k: (v["_error"].to_numpy(dtype=bool).copy() if len(v) else np.zeros(0, dtype=bool))
           for k, v in frames.items()}
    rejected = {k: m.copy() for k, m in own.items()}
    steps = []
    for sheet in SHEETS:                   # in schema order: parents come first
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
            if hit.any():
                steps.append((sheet.key, col, target, hit))
                rejected[sheet.key] |= hit
    return own, rejected, steps


def split_summary(extract: Extract, report: Report | None = None) -> pd.DataFrame:
    """Per sheet read, what accepting the valid rows keeps and quarantines.

    Returns
    -------
    DataFrame
        One row per sheet with rows, in schema order: ``key`` (canonical sheet), ``sheet`` (as the
        user named it), ``read``, ``kept``, ``quarantined_own_errors`` (rows with an error) and
        ``quarantined_cascade`` (valid rows that depend on a rejected one: an account of a
        rejected customer ...). ``read = kept + quarantined_own_errors + quarantined_cascade``.
        ``report`` is not needed (the rows carry ``_error``); it is accepted for symmetry.
    """
    own, rejected, _ = _rejected(extract)
    rows = []
    for sheet in SHEETS:
        df = extract.frames.get(sheet.key)
        if df is None or not len(df):
            continue
        n_own, n_all = int(own[sheet.key].sum()), int(rejected[sheet.key].sum())
        rows.append({"key": sheet.key, "sheet": extract.sheet_names.get(sheet.key, sheet.key), "read": len(df),
                     "kept": len(df) - n_all, "quarantined_own_errors": n_own, "quarantined_cascade": n_all - n_own})
    cols = ["key", "sheet", "read", "kept", "quarantined_own_errors", "quarantined_cascade"]
    return pd.DataFrame(rows, columns=cols).astype({c: "int64" for c in cols[2:]})


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

    Raises
    ------
    ValueError
        When the valid rows cannot be accepted (:func:`refusals`): the message names every
        structural problem.
    """
    refused = refusals(extract, report, lang)
    if refused:
        head = ("存在结构性错误，不能仅采用有效行：" if lang == "zh" else
                "the valid rows cannot be accepted because of structural errors: ")
        raise ValueError(head + ("；" if lang == "zh" else "; ").join(refused))
    reasons: dict[tuple[str, int], list[str]] = {}
    for issue in report.errors:
        if issue.row is not None:
            reasons.setdefault((issue.sheet, issue.row), []).append(f"{issue.column}: {issue.message(lang)}")
    frames = extract.frames                 # read only: kept rows are new frames below
    _, rejected, steps = _rejected(extract)
    for key, col, target, hit in steps:
        df = frames[key]
        name = extract.sheet_names.get(key, key)
        parent = extract.sheet_names.get(target, target)
        text = (f"{col}: depends on a rejected row of '{parent}'" if lang != "zh"
                else f"{col}：所引用的“{parent}”行已被拒绝")
        for r in df.loc[hit, "_row"]:
            reasons.setdefault((name, int(r)), []).append(text)
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
