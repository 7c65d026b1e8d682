"""Turn raw sheets into typed, validated frames, collecting every problem in one pass.

The result is an :class:`Extract` (one pandas frame per sheet, canonical column names, ids as
text, money as float yuan, rates as decimal fractions) and a :class:`~data.report.Report`.
Every frame keeps ``_row``, the Excel row each record came from, so later checks and the
quarantine can point back at the cell.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data.readers import RawBook, RawSheet, read_bytes, read_input
from data.report import ExtractError, Issue, Report
from data.schema import FORMULA_PREFIXES, COLUMN_LOOKUP, SHEET_LOOKUP, SHEETS, Column, Sheet, enum_choices, enum_value, normalize_label, sheet_by_key

__all__ = ["Extract", "parse_book", "parse_uploads", "load_extract", "FORMULA_PREFIXES"]

_HEADER_SCAN_ROWS = 20
_NUM_JUNK = re.compile(r"[,\s¥￥元]|rmb|cny", re.IGNORECASE)


@dataclass
class Extract:
    """A parsed extract: one frame per sheet, canonical columns plus ``_row``.

    Attributes
    ----------
    frames : dict of str to DataFrame
        ``managers``, ``customers``, ``accounts``, ``assignments`` always; ``daily_balances``,
        ``targets`` and ``kpis`` when uploaded (else empty frames with the right columns).
    sheet_names : dict of str to str
        Canonical sheet key -> the name the user gave it.
    headers : dict of str to dict
        Canonical sheet key -> {column key -> header as the user wrote it}.
    notes : list of str
        What the reader noticed (CSV encodings used).
    """

    frames: dict[str, pd.DataFrame]
    sheet_names: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> pd.DataFrame:
        return self.frames[key]

    def row_counts(self) -> dict[str, int]:
        """Rows per sheet."""
        return {k: len(v) for k, v in self.frames.items()}


# --------------------------------------------------------------------------------------------
# cell helpers

def _is_blank(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _column(body: list[list], j: int) -> np.ndarray:
    """Column ``j`` of the data rows as an object array ("" where a row is short)."""
    out = np.empty(len(body), dtype=object)
    out[:] = [r[j] if j < len(r) else "" for r in body]
    return out


def _blank_mask(values: np.ndarray) -> np.ndarray:
    """:func:`_is_blank` for a whole column: None, NaN, or text of spaces only."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":      # all text (every CSV column)
        return np.fromiter((not v.strip() for v in values), bool, len(values))
    blank = pd.isna(pd.Series(values, dtype=object)).to_numpy(dtype=bool, copy=True)
    is_str = np.fromiter((type(v) is str for v in values), bool, len(values))
    if is_str.any():
        idx = np.flatnonzero(is_str)
        blank[idx] = np.fromiter((not values[i].strip() for i in idx), bool, len(idx))
    return blank


def _enum_cell(col: Column, v) -> str | None:
    """A non-blank cell of an enumerated or yes/no column to its canonical value (None: unknown)."""
    if col.kind == "bool" and isinstance(v, (bool, int, float)) and v in (0, 1):
        return "yes" if v else "no"
    return enum_value(col.enum, v)


def _show(v) -> str:
    """A cell as the user would recognise it in a message."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return str(v)


def _text(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v).strip()


def _parse_number(v) -> float | None:
    """Parse a cell to float yuan; ``None`` when it is not a number."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    s = unicodedata.normalize("NFKC", str(v)).strip()
    negative = s.startswith("(") and s.endswith(")")
    if negative:
        s = s[1:-1]
    s = _NUM_JUNK.sub("", s)
    try:
        x = float(s)
    except ValueError:
        return None
    if not math.isfinite(x):
        return None
    return -x if negative else x


def _parse_date(v) -> pd.Timestamp | None:
    if isinstance(v, dt.datetime):
        return pd.Timestamp(v).normalize()
    if isinstance(v, dt.date):
        return pd.Timestamp(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if 19000101 <= v <= 29991231 and float(v).is_integer():
            v = str(int(v))
        else:
            return None
    s = unicodedata.normalize("NFKC", str(v)).strip()
    s = s.replace("年", "-").replace("月", "-").replace("日", "").replace("/", "-").replace(".", "-")
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S"):
        try:
            return pd.Timestamp(dt.datetime.strptime(s, fmt)).normalize()
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# sheet and header mapping

def _map_sheets(book: RawBook, report: Report) -> dict[str, RawSheet]:
    mapped: dict[str, RawSheet] = {}
    for raw in book.sheets:
        key = SHEET_LOOKUP.get(normalize_label(raw.name))
        if key is None:
            if any(any(not _is_blank(c) for c in r) for r in raw.rows):
                report.add(Issue("unknown_sheet", "warning", sheet=raw.name, params={"found": raw.name}))
            continue
        if key in mapped:
            sheet = sheet_by_key(key)
            report.add(Issue("duplicate_sheet", sheet=raw.name,
                             params={"sheet": key, "sheet_zh": sheet.zh, "found": f"{mapped[key].name}, {raw.name}"}))
            continue
        mapped[key] = raw
    found = ", ".join(s.name for s in book.sheets) or "(none)"
    for sheet in SHEETS:
        if sheet.required and sheet.key not in mapped:
            report.add(Issue("missing_sheet", sheet=sheet.zh, params={"sheet": sheet.key, "sheet_zh": sheet.zh, "found": found}))
    return mapped


def _find_header(sheet: Sheet, rows: list[list]) -> tuple[int, dict[int, str]]:
    """Return (row index of the header, {cell index -> column key}).

    The header is the first of the top rows that names every required column; failing that,
    the one naming the most columns (bank exports often put a title above the table).
    """
    lookup = COLUMN_LOOKUP[sheet.key]
    required = {c.key for c in sheet.columns if c.required}
    best = (-1, 0, {})
    for i, row in enumerate(rows[:_HEADER_SCAN_ROWS]):
        found: dict[int, str] = {}
        for j, cell in enumerate(row):
            if _is_blank(cell):
                continue
            key = lookup.get(normalize_label(cell))
            if key is not None:
                found[j] = key
        keys = set(found.values())
        if required <= keys and found:
            return i, found
        if len(keys) > best[1]:
            best = (i, len(keys), found)
    if best[0] >= 0:
        return best[0], best[2]
    first = next((i for i, r in enumerate(rows) if any(not _is_blank(c) for c in r)), 0)
    return first, {}


# --------------------------------------------------------------------------------------------
# per-column coercion

class _SheetParser:
    def __init__(self, sheet: Sheet, raw: RawSheet, report: Report):
        self.sheet = sheet
        self.raw = raw
        self.report = report
        self.headers: dict[str, str] = {}
        self.error_rows: set[int] = set()

    def issue(self, rule: str, row: int | None, column: str = "", value: str = "", severity: str = "error", **params):
        self.report.add(Issue(rule, severity, sheet=self.raw.name, row=row, column=column, value=value, params=params))
        if severity == "error" and row is not None:
            self.error_rows.add(row)

    def parse(self) -> pd.DataFrame | None:
        sheet, rows = self.sheet, self.raw.rows
        header_idx, mapping = _find_header(sheet, rows)
        header_row = rows[header_idx] if rows else []
        header_texts = [_text(c) for c in header_row]
        found = ", ".join(h for h in header_texts if h) or "(none)"
        seen: dict[str, int] = {}
        for j, key in sorted(mapping.items()):
            if key in seen:
                self.issue("duplicate_column", header_idx + 1, header_texts[j], severity="error",
                           found=f"{header_texts[seen[key]]}, {header_texts[j]}", column_zh=sheet.column(key).zh)
                continue
            seen[key] = j
            self.headers[key] = header_texts[j]
        for j, h in enumerate(header_texts):
            if h and j not in mapping:
                self.issue("unknown_column", header_idx + 1, h, severity="warning", found=h)
        missing = [c for c in sheet.columns if c.required and c.key not in seen]
        for c in missing:
            self.issue("missing_column", header_idx + 1, c.zh, col_key=c.key, column_zh=c.zh, found=found)
        if missing:
            return None

        body = rows[header_idx + 1:]
        columns = {key: _column(body, j) for key, j in seen.items()}
        blanks = {key: _blank_mask(values) for key, values in columns.items()}
        filled = ~np.logical_and.reduce(list(blanks.values())) if blanks else np.zeros(len(body), dtype=bool)
        keep = np.flatnonzero(filled)                     # rows with something in a known column
        if not len(keep):
            self.issue("empty_sheet", None, severity="error" if sheet.required else "warning")
            return pd.DataFrame({**{k: pd.Series(dtype=object) for k in seen}, "_row": pd.Series(dtype="int64")})

        excel_rows = (keep + header_idx + 2).astype(np.int64)
        frame = {"_row": excel_rows}
        for key in seen:
            frame[key] = self.coerce(sheet.column(key), columns[key][keep], excel_rows, blanks[key][keep])
        for c in sheet.columns:  # optional columns not uploaded: typed blanks
            if c.key not in frame:
                empty = np.full(len(excel_rows), "", dtype=object)
                frame[c.key] = self.coerce(c, empty, excel_rows, np.ones(len(excel_rows), dtype=bool))
        cols = ["_row"] + [c.key for c in sheet.columns]
        return pd.DataFrame(frame)[cols]

    def coerce(self, col: Column, values: np.ndarray, rows: np.ndarray, blank: np.ndarray):
        """One column's cells (object array) to their typed array, reporting every bad cell.

        Whole-column operations do the common case; only the cells that need a closer look
        (text in a number column, an unusual date, an unknown value) go through the per-cell
        rules, and repeated values (dates, enumerations) are parsed once.
        """
        header = self.headers.get(col.key, col.zh)
        if col.required and not col.allow_blank:
            for r in rows[blank]:
                self.issue("required", int(r), header, "")
        kind = col.kind
        if kind in ("id", "text"):
            out = [None if b else (v.strip() if type(v) is str else _text(v)) for v, b in zip(values, blank)]
            if kind == "id":
                numeric = np.flatnonzero(~blank & np.fromiter((isinstance(v, float) for v in values), bool,
                                                              len(values)))
                if len(numeric):
                    self.issue("id_number", int(rows[numeric[0]]), header, _show(values[numeric[0]]),
                               severity="warning")
            else:
                for v, r in zip(out, rows):
                    if v is not None and v.startswith(FORMULA_PREFIXES) and len(v) > 1 and not _looks_numeric(v):
                        self.issue("formula_text", int(r), header, v[:40], severity="warning")
            return pd.array(out, dtype="str")
        if kind == "enum" or kind == "bool":
            seen_values: dict = {}
            out = []
            for v, b, r in zip(values, blank, rows):
                if b:
                    out.append("no" if kind == "bool" else None)
                    continue
                key = (type(v), v)
                if key not in seen_values:
                    seen_values[key] = _enum_cell(col, v)
                val = seen_values[key]
                if val is None:
                    self.issue("unknown_value", int(r), header, _show(v), choices=enum_choices(col.enum))
                out.append(val)
            if kind == "bool":
                return np.array([x == "yes" for x in out], dtype=bool)
            return pd.array(out, dtype="str")
        if kind == "date":
            seen_dates: dict = {}
            out = []
            for v, b, r in zip(values, blank, rows):
                if b:
                    out.append(pd.NaT)
                    continue
                key = (type(v), v)
                if key not in seen_dates:
                    seen_dates[key] = _parse_date(v)
                d = seen_dates[key]
                if d is None:
                    self.issue("not_date", int(r), header, _show(v))
                out.append(d if d is not None else pd.NaT)
            return pd.to_datetime(pd.Series(out, dtype="datetime64[ns]")).to_numpy()
        # numeric kinds: plain numbers (and text pandas reads as one) in one pass
        n = len(values)
        fast = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
        is_bool = np.fromiter((isinstance(v, (bool, np.bool_)) for v in values), bool, n)
        ok = ~blank & ~is_bool & np.isfinite(fast)
        out = np.zeros(n, dtype=float)
        out[blank] = np.nan if col.key in ("coefficient", "risk_weight") or col.allow_blank else 0.0
        out[ok] = fast[ok]
        for i in np.flatnonzero(~blank & ~ok):           # text with separators, percent, or not a number
            x = self._number_cell(col, values[i], int(rows[i]), header)
            if x is not None:
                out[i] = x
        x = np.where(ok, fast, 0.0)
        if kind == "rate":
            bad = ok & ((x > 1.0) | (x < 0.0))
        elif kind == "money":
            bad = ok & (x < 0) if not col.signed else np.zeros(n, dtype=bool)
        elif col.key == "coefficient":
            bad = ok & ~((x > 0.0) & (x <= 1.0))
        elif kind == "number" and col.max_value is not None and not col.signed:
            bad = ok & ~((x >= 0) & (x <= col.max_value))
        else:
            bad = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(bad):
            self._check_value(col, float(x[i]), int(rows[i]), header, _show(values[i]))
        return out

    def _number_cell(self, col: Column, v, row: int, header: str) -> float | None:
        """One cell that is not a plain number: percent text, separators, currency, or junk."""
        if col.kind in ("rate", "number") and isinstance(v, str) and unicodedata.normalize("NFKC", v).strip().endswith("%"):
            x = _parse_number(unicodedata.normalize("NFKC", v).strip()[:-1])
            if x is None:
                self.issue("not_number", row, header, _show(v))
                return None
            x = x / 100.0
            if col.kind == "rate" and not 0.0 <= x <= 1.0:
                self.issue("rate_range", row, header, _show(v))
            elif col.kind == "number":
                self._check_number(col, x, row, header, _show(v))
            return x
        x = _parse_number(v)
        if x is None:
            self.issue("not_number", row, header, _show(v))
            return None
        self._check_value(col, x, row, header, _show(v))
        return x

    def _check_value(self, col: Column, x: float, row: int, header: str, shown: str) -> None:
        """The range rules of a parsed number (rates as fractions, money signs, ratios)."""
        if col.kind == "rate":
            if x > 1.0:
                self.issue("rate_percent", row, header, shown, hint=f"{x / 100:g}")
            elif x < 0.0:
                self.issue("rate_range", row, header, shown)
        elif col.kind == "money" and not col.signed and x < 0:
            self.issue("negative", row, header, shown)
        elif col.kind == "number":
            self._check_number(col, x, row, header, shown)

    def _check_number(self, col: Column, x: float, row: int, header: str, shown: str) -> None:
        if col.key == "coefficient":
            if not 0.0 < x <= 1.0:
                self.issue("coefficient_range", row, header, shown)
        elif col.max_value is not None and not col.signed and not 0 <= x <= col.max_value:
            self.issue("out_of_range", row, header, shown, low=0, high=f"{col.max_value:g}")


def _looks_numeric(s: str) -> bool:
    return _parse_number(s) is not None


# --------------------------------------------------------------------------------------------
# cross-row and cross-sheet rules

def _check_duplicates(p: _SheetParser, df: pd.DataFrame, cols: tuple[str, ...]) -> None:
    if df.empty or any(c not in df for c in cols):
        return
    keyed = df[[*cols, "_row"]].dropna(subset=list(cols))
    dup = keyed.duplicated(subset=list(cols), keep=False)
    if not dup.any():
        return
    first = keyed[dup].groupby(list(cols), sort=False)["_row"].transform("min")
    for (idx, row), first_row in zip(keyed[dup].iterrows(), first):
        if row["_row"] == first_row:
            continue
        if len(cols) == 1:
            col = cols[0]
            p.issue("duplicate_id", int(row["_row"]), p.headers.get(col, col), str(row[col]),
                    first_row=int(first_row), column_zh=p.headers.get(col, col))
        else:
            value = " / ".join(str(row[c]) for c in cols)
            p.issue("duplicate_pair", int(row["_row"]), ", ".join(p.headers.get(c, c) for c in cols), value,
                    first_row=int(first_row))


def _check_foreign_keys(p: _SheetParser, df: pd.DataFrame, frames: dict, names: dict) -> None:
    for col, target in p.sheet.foreign_keys.items():
        if target not in frames or df.empty:
            continue
        target_ids = pd.Index(frames[target][sheet_by_key(target).id_column].dropna().unique())
        values = df[col]
        bad = values.notna() & (target_ids.get_indexer(values) < 0)
        for r, v in zip(df.loc[bad, "_row"], values[bad]):
            header = p.headers.get(col, col)
            p.issue("unknown_key", int(r), header, str(v), target=names.get(target, target),
                    target_zh=names.get(target, sheet_by_key(target).zh), column_zh=header)


def _check_coefficients(p: _SheetParser, df: pd.DataFrame) -> None:
    if df.empty:
        return
    given = df[df["coefficient"].notna()]
    sums = given.groupby("customer_id")["coefficient"].sum()
    over = sums[sums > 1.0 + 1e-9]
    header = p.headers.get("coefficient", "coefficient")
    for cust, total in over.items():
        for r in given.loc[given["customer_id"] == cust, "_row"]:
            p.issue("coefficient_sum", int(r), header, f"{total:g}", key=cust)
    full = sums[(sums >= 1.0 - 1e-9) & (sums <= 1.0 + 1e-9)]
    if len(full):
        blanks = df[df["coefficient"].isna() & df["customer_id"].isin(full.index)]
        for r, cust in zip(blanks["_row"], blanks["customer_id"]):
            p.issue("coefficient_zero_left", int(r), header, "", severity="warning", key=cust)


_LINE_ONLY = {"provision": "asset", "recovery": "asset", "fee_income": "intermediate"}


def _check_account_lines(p: _SheetParser, df: pd.DataFrame) -> None:
    if df.empty:
        return
    for col, line in _LINE_ONLY.items():
        if col not in p.headers:
            continue
        misplaced = (df[col] != 0) & df["line"].notna() & (df["line"] != line)
        for r, v, ln in zip(df.loc[misplaced, "_row"], df.loc[misplaced, col], df.loc[misplaced, "line"]):
            p.issue("ignored_value", int(r), p.headers[col], _show(float(v)), severity="warning", line=ln,
                    column_zh=p.headers[col])


def parse_book(book: RawBook) -> tuple[Extract, Report]:
    """Map, type and validate every sheet of a raw book.

    Parameters
    ----------
    book : RawBook
        As returned by :func:`data.readers.read_input`.

    Returns
    -------
    tuple of (Extract, Report)
        The typed frames (rows with errors included, flagged in ``Extract.frames[...]``'s
        ``_error`` column) and the report of every issue found.
    """
    report = Report()
    mapped = _map_sheets(book, report)
    frames: dict[str, pd.DataFrame] = {}
    parsers: dict[str, _SheetParser] = {}
    names = {k: v.name for k, v in mapped.items()}
    for sheet in SHEETS:
        raw = mapped.get(sheet.key)
        if raw is None:
            continue
        p = _SheetParser(sheet, raw, report)
        df = p.parse()
        parsers[sheet.key] = p
        if df is not None:
            frames[sheet.key] = df
    for key, df in frames.items():
        p = parsers[key]
        if p.sheet.id_column:
            _check_duplicates(p, df, (p.sheet.id_column,))
        if p.sheet.unique_together:
            _check_duplicates(p, df, p.sheet.unique_together)
        _check_foreign_keys(p, df, frames, names)
        if key == "assignments":
            _check_coefficients(p, df)
        if key == "accounts":
            _check_account_lines(p, df)
    for key, df in frames.items():
        df["_error"] = df["_row"].isin(parsers[key].error_rows) if len(df) else pd.Series(dtype=bool)
    for sheet in SHEETS:  # optional sheets absent: empty frames with the right columns
        if sheet.key not in frames and not sheet.required:
            frames[sheet.key] = _empty_frame(sheet)
    extract = Extract(frames=frames, sheet_names=names, headers={k: p.headers for k, p in parsers.items()},
                      notes=list(book.notes))
    return extract, report


def _empty_frame(sheet: Sheet) -> pd.DataFrame:
    dtypes = {"id": "str", "text": "str", "enum": "str", "bool": bool, "date": "datetime64[ns]"}
    cols = {"_row": pd.Series(dtype="int64")}
    for c in sheet.columns:
        cols[c.key] = pd.Series(dtype=dtypes.get(c.kind, float))
    cols["_error"] = pd.Series(dtype=bool)
    return pd.DataFrame(cols)


def parse_uploads(files: list[tuple[str, bytes]]) -> tuple[Extract | None, Report]:
    """Read and validate uploaded files: one workbook, or one CSV file per sheet.

    Parameters
    ----------
    files : list of (str, bytes)
        File names and contents as uploaded.

    Returns
    -------
    tuple of (Extract or None, Report)
        ``None`` when the files could not be read at all (the report says why).
    """

    book = RawBook()
    report = Report()
    for name, data in files:
        try:
            part = read_bytes(name, data)
        except ExtractError as e:
            report.extend(e.report.issues)
            continue
        if part.kind == "workbook" and len(files) > 1:
            report.add(Issue("file_type", sheet=name, params={"detail": "upload one workbook, or CSV files only"}))
            continue
        book.sheets.extend(part.sheets)
        book.notes.extend(part.notes)
        book.kind = book.kind or part.kind
    if not report.ok:
        return None, report
    extract, parsed = parse_book(book)
    report.extend(parsed.issues)
    return extract, report


def load_extract(path) -> tuple[Extract, Report]:
    """Read and validate an extract; raise when it has errors.

    Parameters
    ----------
    path : str or path-like
        A workbook, a CSV file or a folder of CSV files.

    Returns
    -------
    tuple of (Extract, Report)
        The valid extract and its report (warnings only).

    Raises
    ------
    ExtractError
        When any error was found; ``.report`` lists every problem.
    """
    book = read_input(path)
    extract, report = parse_book(book)
    if not report.ok:
        raise ExtractError(report)
    return extract, report
