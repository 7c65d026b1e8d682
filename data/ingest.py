"""Turn raw sheets into typed, validated frames, collecting every problem in one pass.

The result is an :class:`Extract` (one pandas frame per sheet, canonical column names, ids as
text, money as float yuan, rates as decimal fractions) and a :class:`~data.report.Report`.
Every frame keeps ``_row``, the Excel row each record came from, so later checks and the
quarantine can point back at the cell.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import ThreadPoolExecutor, as_completed
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from calc.rules import SUM_TOLERANCE, coefficient_problems
from data.readers import RawBook, RawSheet, _is_blank, _text_bytes, read_bytes, read_input
from data.report import ExtractError, Issue, Report
from data.schema import (DATE_MAX, DATE_MIN, DATE_SPREAD_DAYS, FORMULA_PREFIXES, FORMULA_START, COLUMN_LOOKUP,
                         MAX_AMOUNT, MAX_ID_CHARS, MAX_TEXT_CHARS, SHEET_LOOKUP, SHEETS, Column,
                         Sheet, column_letters, enum_choices, enum_value, normalize_label, sheet_by_key)

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
# cell helpers (Python values: the few offending cells, the header rows, distinct values)

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


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: str) -> str:
    """A cell's text for a message: control characters (a NUL, which no report file could hold)
    shown as ␀ or U+FFFD, and at most 200 characters."""
    text = str(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: "␀" if m.group() == "\x00" else "\ufffd", text)
    return text if len(text) <= 200 else text[:199] + "…"


def _parse_number(v) -> float | None:
    """Parse a cell to float yuan; ``None`` when it is not a number."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None      # inf / NaN: never a number
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


_EPOCH = dt.date(1970, 1, 1)


def _parse_date(v) -> dt.date | None:
    """A cell to its day (the time of day dropped); ``None`` when it is not a date."""
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if 19000101 <= v <= 29991231 and float(v).is_integer():
            v = str(int(v))
        else:
            return None
    s = unicodedata.normalize("NFKC", str(v)).strip()
    s = s.replace("年", "-").replace("月", "-").replace("日", "").replace("/", "-").replace(".", "-")
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# whole-column helpers (Arrow arrays in, numpy / Arrow out; no Python object per cell)

_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)     # pandas' "str"
_NUM_JUNK_RE2 = r"(?i)[,\s\p{Z}¥￥元]|rmb|cny"                  # _NUM_JUNK for Arrow (RE2); NFKC applied first


def _is_text(arr: pa.Array) -> bool:
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type)


def _is_numeric(arr: pa.Array) -> bool:
    return pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)


def _np_bool(arr) -> np.ndarray:
    """A boolean Arrow array (nulls as False) as numpy."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _floats(arr: pa.Array) -> np.ndarray:
    """A numeric Arrow array as float64 numpy (null -> NaN)."""
    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


# the first bytes of the characters Unicode (and pyarrow's utf8_is_space, and str.isspace) call
# space: \t \n \v \f \r, U+001C..U+0020, U+0085 and U+00A0 (0xC2), U+1680 (0xE1),
# U+2000..U+205F (0xE2), U+3000 (0xE3)
_SPACE_LEAD_BYTES = np.array([9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0xC2, 0xE1, 0xE2, 0xE3], dtype=np.uint8)


def _blank_of(arr: pa.Array) -> np.ndarray:
    """:func:`data.readers._is_blank` for a whole column: null or text of spaces only (a NaN
    number cell, which a reader gives only for a cell holding NaN, is not a number, as inf is)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string_view(arr.type):
        empty = pc.or_kleene(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))
        return _np_bool(pc.fill_null(empty, True))
    if _is_text(arr):
        # a cell of spaces only starts with a space, whose first byte is one of a few (UTF-8):
        # only the cells that start so are tested character by character
        first, lengths = _first_bytes(arr)
        blank = lengths == 0                      # null or empty
        cand = np.flatnonzero(np.isin(first, _SPACE_LEAD_BYTES) & ~blank)
        if len(cand):
            blank[cand] = _np_bool(pc.utf8_is_space(arr.take(pa.array(cand))))
        return blank
    if pa.types.is_floating(arr.type):        # an empty cell is null; a NaN cell is a value (not finite)
        return ~_np_bool(pc.is_valid(arr))
    if pa.types.is_null(arr.type):
        return np.ones(len(arr), dtype=bool)
    return ~_np_bool(pc.is_valid(arr))


def _str_series_values(arr) -> pd.api.extensions.ExtensionArray:
    """An Arrow text array (null = missing) as pandas' ``str`` array, without Python strings."""
    arr = pc.cast(arr, pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pd.arrays.ArrowStringArray(pa.chunked_array([arr]), dtype=_STR_DTYPE)


def _distinct(arr: pa.Array, mask: np.ndarray) -> tuple[list, np.ndarray]:
    """Distinct values of the cells where ``mask`` is True, as Python values, and for every cell
    the index of its value in that list (-1 where ``mask`` is False)."""
    uniq = pc.unique(arr.filter(pa.array(mask)))
    codes = pc.index_in(arr, value_set=uniq)
    codes = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    codes[~mask] = -1
    return uniq.to_pylist(), codes


def _first_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each text cell's first UTF-8 byte (0 for an empty or null cell) and its length in bytes."""
    data, starts, lengths = _text_bytes(arr)
    first = np.zeros(len(starts), dtype=np.uint8)
    has = lengths > 0
    first[has] = data[starts[has]]
    return first, lengths


_FORMULA_BYTES = np.array([ord(c) for c in FORMULA_PREFIXES], dtype=np.uint8)   # ASCII: a first byte is the first character


def _formula_like(out: pa.Array) -> np.ndarray:
    """Positions of the cells that start with a formula character and hold more than it (the
    :data:`FORMULA_START` rule), from each cell's first byte: no regular expression per cell."""
    first, lengths = _first_bytes(out)
    cand = np.flatnonzero(np.isin(first, _FORMULA_BYTES) & (lengths > 0))
    if not len(cand):
        return cand
    sub = out.take(pa.array(cand))
    return cand[_np_bool(pc.and_(pc.match_substring_regex(sub, pattern=FORMULA_START), pc.greater(pc.utf8_length(sub), 1)))]


def _values_at(arr: pa.Array, idx: np.ndarray) -> list:
    """Python values of a few cells (the offending ones)."""
    return arr.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist() if len(idx) else []


def _as_text(arr: pa.Array, blank: np.ndarray) -> pa.Array:
    """Cells as the text :func:`_text` gives (strings stripped), null where blank."""
    if _is_text(arr):
        out = pc.utf8_trim_whitespace(pc.cast(arr, pa.large_string()))
    elif _is_numeric(arr):
        x = _floats(arr)
        whole = np.isfinite(x) & (np.floor(x) == x) & (np.abs(x) < 1e15)
        texts = pc.cast(pa.array(np.where(whole, x, 0).astype(np.int64)), pa.large_string()).to_numpy(
            zero_copy_only=False).astype(object)
        for i in np.flatnonzero(~whole & ~blank):          # fractional ids or text: rare, exact str()
            texts[i] = _text(float(x[i]))
        out = pa.array(texts, pa.large_string())
    else:
        values, codes = _distinct(arr, ~blank)
        table = pa.array([_text(v) for v in values], pa.large_string())
        out = table.take(pa.array(np.where(codes < 0, 0, codes))) if len(values) else pa.nulls(len(arr), pa.large_string())
    if not blank.any() and out.null_count == 0:
        return out
    return pc.if_else(pa.array(blank), pa.scalar(None, pa.large_string()), out)


def _cast_floats(arr: pa.Array) -> np.ndarray:
    """Text cells as float64 (NaN where a cell is not a plain number), one pass when it can.

    Arrow's cast (no copy of the text, nothing kept by another allocator) reads a column of
    plain numbers and blanks; a column with any other cell is cast by polars, which leaves
    NaN where a cell is not a number (the two accept the same spellings: digits, sign, point,
    exponent, ``inf``, ``nan``).
    """
    try:
        empty = pc.equal(pc.binary_length(arr), 0)
        src = pc.if_else(empty, pa.scalar(None, arr.type), arr) if pc.any(empty).as_py() else arr
        x = pc.cast(src, pa.float64()).to_numpy(zero_copy_only=False)
        return x if x.flags.writeable else x.copy()        # callers write into it
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.array(pl.Series(arr).cast(pl.Float64, strict=False).to_numpy(), dtype=float)


def _parse_numbers(arr: pa.Array, percent_ok: bool, blank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text cells parsed as :func:`_parse_number` does, for the whole column.

    Plain numbers are read in one multi-threaded cast; only the non-blank cells it leaves
    (separators, currency, brackets, percent, junk) go through the text clean-up, still
    column-wise.

    Parameters
    ----------
    arr : pyarrow.Array
        The column's text cells.
    percent_ok : bool
        Whether a cell may end in ``%`` (rates and numbers).
    blank : numpy.ndarray of bool
        The blank cells (:func:`_blank_of`), left unparsed.

    Returns
    -------
    tuple of numpy arrays
        ``x`` (float, NaN where not parsed), ``parsed`` (a finite number was read) and
        ``percent`` (the cell ended in ``%``; ``x`` is already divided by 100).
    """
    x = _cast_floats(arr)
    parsed = np.isfinite(x)
    pct = np.zeros(len(x), dtype=bool)
    rest = np.flatnonzero(~parsed & ~blank)
    if not len(rest):
        return x, parsed, pct
    s = pc.cast(arr.take(pa.array(rest)), pa.large_string())
    if not pc.all(pc.fill_null(pc.string_is_ascii(s), True)).as_py():
        s = pc.utf8_normalize(s, form="NFKC")
    s = pc.utf8_trim_whitespace(s)
    if percent_ok:
        sub_pct = _np_bool(pc.ends_with(s, "%"))
        if sub_pct.any():
            s = pc.if_else(pa.array(sub_pct), pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(s, 0, -1)), s)
    else:
        sub_pct = np.zeros(len(s), dtype=bool)
    neg = _np_bool(pc.and_(pc.starts_with(s, "("), pc.ends_with(s, ")")))
    if neg.any():
        s = pc.if_else(pa.array(neg), pc.utf8_slice_codeunits(s, 1, -1), s)
    s = pc.replace_substring_regex(s, pattern=_NUM_JUNK_RE2, replacement="")
    y = np.array(pl.Series(s).cast(pl.Float64, strict=False).to_numpy(), dtype=float)
    ok = np.isfinite(y)
    y = np.where(neg, -y, y)
    y = np.where(sub_pct, y / 100.0, y)
    x[rest] = y
    parsed[rest] = ok
    pct[rest] = sub_pct
    return x, parsed, pct


# --------------------------------------------------------------------------------------------
# sheet and header mapping

def _map_sheets(book: RawBook, report: Report) -> dict[str, RawSheet]:
    mapped: dict[str, RawSheet] = {}
    for raw in book.sheets:
        key = SHEET_LOOKUP.get(normalize_label(raw.name))
        if key is None:
            if raw.has_content():
                report.add(Issue("unknown_sheet", "warning", sheet=raw.name, params={"found": raw.name}))
            continue
        if key in mapped:
            sheet = sheet_by_key(key)
            report.add(Issue("duplicate_sheet", sheet=raw.name,
                             params={"sheet": key, "sheet_zh": sheet.zh, "found": f"{mapped[key].name}, {raw.name}"}))
            continue
        mapped[key] = raw
        if raw.hidden:                 # read like any other sheet, but never silently (docs/RULES.md)
            report.add(Issue("hidden_sheet", "warning", sheet=raw.name, params={
                "found": raw.name, "state": "very hidden" if raw.hidden == "veryHidden" else "hidden",
                "state_zh": "被深度隐藏（veryHidden）" if raw.hidden == "veryHidden" else "被隐藏"}))
    found = ", ".join(s.name for s in book.sheets) or "(none)"
    for sheet in SHEETS:
        if sheet.required and sheet.key not in mapped:
            report.add(Issue("missing_sheet", sheet=sheet.zh, params={"sheet": sheet.key, "sheet_zh": sheet.zh, "found": found}))
    return mapped


def _find_header(sheet: Sheet, rows: list[list], raw: RawSheet | None = None) -> tuple[int, dict[int, str]]:
    """Return (row index of the header, {cell index -> column key}).

    The header is the first of the top rows that names every required column; failing that,
    the one naming the most columns (bank exports often put a title above the table).
    ``rows`` are the top rows; ``raw`` is read further only when none of them names a column.
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
    first = next((i for i, r in enumerate(rows) if any(not _is_blank(c) for c in r)), None)
    if first is None and raw is not None and len(rows) >= _HEADER_SCAN_ROWS:   # no header: an error path
        first = next((i for i, r in enumerate(raw.head(None)) if any(not _is_blank(c) for c in r)), None)
    return first or 0, {}


# --------------------------------------------------------------------------------------------
# per-column coercion

_COLUMN_WORKERS = 2               # columns of one large sheet checked at a time
_COLUMNWISE_ROWS = 100_000        # below this a sheet's columns are checked one after another


def _columnwise(fn, items: list, rows: int) -> list:
    """``[fn(x) for x in items]``, two at a time for a sheet of ``rows`` rows or more.

    Each call is whole-column work in Arrow and numpy, which release the GIL: the largest
    sheet (accounts) would otherwise keep one core busy while the other has finished the
    smaller sheets. Results come back in the order of ``items``.
    """
    if rows < _COLUMNWISE_ROWS or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=_COLUMN_WORKERS) as pool:
        return list(pool.map(fn, items))


class _SheetParser:
    def __init__(self, sheet: Sheet, raw: RawSheet, report: Report):
        self.sheet = sheet
        self.raw = raw
        self.report = report
        self.headers: dict[str, str] = {}
        self.error_rows: set[int] = set()

    def issue(self, rule: str, row: int | None, column: str = "", value: str = "", severity: str = "error", **params):
        self.report.add(Issue(rule, severity, sheet=self.raw.name, row=row, column=column, value=_printable(value),
                              params=params))
        if severity == "error" and row is not None:
            self.error_rows.add(row)

    def parse(self) -> pd.DataFrame | None:
        sheet = self.sheet
        rows = self.raw.head(_HEADER_SCAN_ROWS)
        header_idx, mapping = _find_header(sheet, rows, self.raw)
        header_row = rows[header_idx] if header_idx < len(rows) else []
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

        keys = list(seen)
        numeric = [seen[k] for k in keys if sheet.column(k).kind in ("money", "rate", "number")]
        ids = [seen[k] for k in keys if sheet.column(k).kind == "id"]
        n, arrays = self.raw.body(header_idx, [seen[k] for k in keys], numeric, ids)
        self._formula_cells(header_idx, seen)
        columns = dict(zip(keys, arrays))
        del arrays                     # ``columns`` holds the only reference: each is freed once coerced
        exact = {k: a for k in keys if (a := self.raw.exact_numbers().get(seen[k])) is not None}
        first_number = {k: i for k in keys if (i := self.raw.first_numbers().get(seen[k])) is not None}
        blanks = dict(zip(columns, _columnwise(_blank_of, list(columns.values()), n)))
        filled = ~np.logical_and.reduce(list(blanks.values())) if blanks else np.zeros(n, dtype=bool)
        keep = np.flatnonzero(filled)                     # rows with something in a known column
        if not len(keep):
            self.issue("empty_sheet", None, severity="error" if sheet.required else "warning")
            return pd.DataFrame({**{k: pd.Series(dtype=object) for k in seen}, "_row": pd.Series(dtype="int64")})

        excel_rows = (keep + header_idx + 2).astype(np.int64)
        take = None if len(keep) == n else pa.array(keep)
        frame = {"_row": excel_rows}

        def coerce(key: str):          # each raw column is released once coerced
            raw = columns.pop(key)
            values = raw if take is None else raw.take(take)
            del raw
            if key in exact:           # a number column of a mixed sheet: exact floats beside its text
                x = exact.pop(key)
                values = (values, x if take is None else x.take(take))
            at = None                  # an id column read as text: where its first number cell is
            if key in first_number:
                k = int(np.searchsorted(keep, first_number[key]))
                at = k if k < len(keep) and keep[k] == first_number[key] else None
            part = self._part()        # its own issues, joined in column order below
            return part, part.coerce(sheet.column(key), values, excel_rows, blanks.pop(key)[keep], at)

        for key, (part, out) in zip(list(seen), _columnwise(coerce, list(seen), n)):
            self.report.extend(part.report.issues)
            self.error_rows |= part.error_rows
            frame[key] = out
        for c in sheet.columns:  # optional columns not uploaded: typed blanks
            if c.key not in frame:
                frame[c.key] = self.coerce(c, pa.nulls(len(excel_rows), pa.large_string()), excel_rows,
                                           np.ones(len(excel_rows), dtype=bool))
        cols = ["_row"] + [c.key for c in sheet.columns]
        return pd.DataFrame({k: frame[k] for k in cols}, copy=False)   # no second copy of every column

    def _part(self) -> "_SheetParser":
        """A parser of the same sheet and headers with its own report and error rows (one
        column's issues, collected while another column is parsed)."""
        part = _SheetParser(self.sheet, self.raw, Report())
        part.headers = self.headers
        return part

    def _formula_cells(self, header_idx: int, seen: dict[str, int]) -> None:
        """Formula cells with no saved value (an xlsx written by a program that does not compute
        formulas): they would read as blank, so each one in a column that is read is an error
        naming the cell; formulas in other columns change nothing and are not reported."""
        cells, count = self.raw.formula_cells()
        if not count:
            return
        absolute = getattr(self.raw.backend, "absolute", False)
        by_cell = {j: k for k, j in seen.items()}
        errors = 0
        for i, j, text in cells:
            if i <= header_idx or (absolute and j not in by_cell):
                continue
            header = self.headers.get(by_cell[j], column_letters(j)) if absolute else column_letters(j)
            self.issue("formula_no_value", i + 1, header, text, cell=f"{column_letters(j)}{i + 1}")
            errors += 1
        if count > len(cells):         # past the first _FORMULA_CELLS (data.readers), only counted
            self.issue("formula_no_value_more", None, severity="error" if errors else "warning",
                       count=f"{count - len(cells):,}", cell=f"{column_letters(cells[0][1])}{cells[0][0] + 1}")

    def coerce(self, col: Column, values: pa.Array, rows: np.ndarray, blank: np.ndarray,
               first_number: int | None = None):
        """One column's cells (an Arrow array) to their typed array, reporting every bad cell.

        Every rule is a whole-column expression; only the offending cells become issues (and
        are shown as Python values), and enumerations and dates are parsed once per distinct value.
        ``first_number`` is, for an id column read as text, the index of its first number cell.
        """
        header = self.headers.get(col.key, col.zh)
        if col.required and not col.allow_blank:
            for r in rows[blank]:
                self.issue("required", int(r), header, "")
        kind = col.kind
        if kind in ("id", "text"):
            out = _as_text(values, blank)
            if kind == "id":
                first = None
                if _is_numeric(values) and not blank.all():
                    first = int(np.flatnonzero(~blank)[0])
                elif first_number is not None and not blank[first_number]:
                    first = first_number
                if first is not None:
                    self.issue("id_number", int(rows[first]), header, _show(_values_at(values, [first])[0]),
                               severity="warning")
            else:
                cand = _formula_like(out)
                for i, v in zip(cand, _values_at(out, cand)):
                    if not _looks_numeric(v):
                        self.issue("formula_text", int(rows[i]), header, v[:40], severity="warning")
            self._check_text(out, rows, header, MAX_ID_CHARS if kind == "id" else MAX_TEXT_CHARS)
            return _str_series_values(out)
        if kind == "enum" or kind == "bool":
            distinct, codes = _distinct(values, ~blank)
            mapped = [_enum_cell(col, v) for v in distinct]
            unknown = np.array([m is None for m in mapped] + [False], dtype=bool)[codes] & ~blank
            for i in np.flatnonzero(unknown):
                self.issue("unknown_value", int(rows[i]), header, _show(distinct[codes[i]]),
                           choices=enum_choices(col.enum))
            table = pa.array(mapped + [None], pa.large_string())
            out = table.take(pa.array(np.where(codes < 0, len(mapped), codes)))
            if kind == "bool":
                yes = np.array([m == "yes" for m in mapped] + [False], dtype=bool)
                return yes[codes]           # blank (-1) reads the last entry: "no"
            return _str_series_values(out)
        if kind == "date":
            return self._coerce_date(values, rows, blank, header)
        return self._coerce_number(col, values, rows, blank, header)

    def _check_text(self, out: pa.Array, rows: np.ndarray, header: str, limit: int) -> None:
        """Text the store cannot hold on PostgreSQL (SQLite would take it): longer than ``limit``
        characters, or holding a NUL character. Whole-column; only offending cells become issues."""
        data, starts, lengths = _text_bytes(out)
        n = len(lengths)
        # whole-column on the bytes: a cell is checked cell by cell only when the column holds a
        # NUL byte somewhere, or more bytes than ``limit`` characters could take
        nul = _np_bool(pc.match_substring(out, "\x00")) if data.size and not data.all() else np.zeros(n, dtype=bool)
        long = np.zeros(n, dtype=bool)
        over = np.flatnonzero(lengths > limit)            # UTF-8: at least one byte per character
        if len(over):
            long[over] = _np_bool(pc.greater(pc.utf8_length(out.take(pa.array(over))), limit))
        bad = np.flatnonzero(nul | long)
        for i, v in zip(bad, _values_at(out, bad)):
            if nul[i]:
                self.issue("text_nul", int(rows[i]), header, v[:60])
            else:
                self.issue("text_too_long", int(rows[i]), header, v[:40] + "…", length=len(v), limit=limit)

    def _coerce_date(self, values: pa.Array, rows: np.ndarray, blank: np.ndarray, header: str) -> np.ndarray:
        """A date column to datetime64[ns] (midnight), as day numbers first: a date cell (typed by
        the reader) is converted whole-column, text is parsed once per distinct value. Dates
        outside DATE_MIN..DATE_MAX and dates more than DATE_SPREAD_DAYS from the column's median
        are errors (docs/RULES.md); never an overflow into another century."""
        n = len(values)
        days = np.zeros(n, dtype=np.int64)
        ok = ~blank
        t = values.type
        if pa.types.is_date(t) or pa.types.is_timestamp(t):     # date cells: their day, whole-column
            day = values if pa.types.is_date32(t) else pc.cast(values, pa.date32(), safe=False)
            days = pc.fill_null(day.cast(pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
            ok &= _np_bool(pc.is_valid(values))

            def shown(i: int) -> str:
                return str(np.datetime64(int(days[i]), "D"))
        else:
            distinct, codes = _distinct(values, ~blank)
            parsed = [_parse_date(v) for v in distinct]
            for i in np.flatnonzero(~blank):
                if parsed[codes[i]] is None:
                    self.issue("not_date", int(rows[i]), header, _show(distinct[codes[i]]))
            table = np.array([0 if d is None else (d - _EPOCH).days for d in parsed] + [0], dtype=np.int64)
            good = np.array([d is not None for d in parsed] + [False], dtype=bool)
            days = table[codes]
            ok &= good[codes]

            def shown(i: int) -> str:
                return _show(distinct[codes[i]])
        lo = (dt.date.fromisoformat(DATE_MIN) - _EPOCH).days
        hi = (dt.date.fromisoformat(DATE_MAX) - _EPOCH).days
        outside = ok & ((days < lo) | (days > hi))
        for i in np.flatnonzero(outside):
            self.issue("date_range", int(rows[i]), header, shown(i), low=DATE_MIN, high=DATE_MAX)
        ok &= ~outside
        if ok.any():                   # the median day, from a count per day (dates are within 1990..2100)
            counts = np.bincount(days[ok] - lo)
            median = lo + int(np.searchsorted(np.cumsum(counts), (int(ok.sum()) + 1) // 2))
            far = ok & (np.abs(days - median) > DATE_SPREAD_DAYS)
            for i in np.flatnonzero(far):
                self.issue("date_outlier", int(rows[i]), header, shown(i), days=f"{abs(int(days[i]) - median):,}",
                           median=str(np.datetime64(median, "D")), limit=DATE_SPREAD_DAYS)
        out = np.full(n, np.datetime64("NaT", "ns"), dtype="datetime64[ns]")
        out[ok] = days[ok].astype("datetime64[D]").astype("datetime64[ns]")
        return out

    def _coerce_number(self, col: Column, values: pa.Array, rows: np.ndarray, blank: np.ndarray, header: str):
        kind = col.kind
        exact = None
        if isinstance(values, tuple):                      # (cells as text, the same cells as floats)
            values, exact = values
        n = len(values)
        out = np.zeros(n, dtype=float)
        out[blank] = np.nan if col.key in ("coefficient", "risk_weight") or col.allow_blank else 0.0
        pct = np.zeros(n, dtype=bool)
        y = None
        if _is_numeric(values):
            x = _floats(values)
            ok = ~blank & np.isfinite(x)
        elif _is_text(values):
            x, ok, pct = _parse_numbers(values, kind in ("rate", "number"), blank)
            ok &= ~blank
            if exact is not None:                          # a number cell's full precision
                y = _floats(exact)
                with np.errstate(invalid="ignore"):
                    same = ok & ~pct & np.isfinite(y) & (np.abs(y - x) <= 1e-9 * np.maximum(np.abs(x), 1.0))
                x[same] = y[same]
        else:                                              # booleans, dates: never a number
            x = np.full(n, np.nan)
            ok = np.zeros(n, dtype=bool)
        out[ok] = x[ok]
        x = np.where(ok, x, 0.0)
        if kind == "rate":                                 # out of range (percent cells as fractions)
            bad = ok & ((x > 1.0) | (x < 0.0))
        elif kind == "money":
            bad = ok & ((np.abs(x) > MAX_AMOUNT) | ((x < 0) if not col.signed else False))
        elif col.key == "coefficient":
            bad = ok & ~((x > 0.0) & (x <= 1.0))
        elif kind == "number" and col.max_value is not None and not col.signed:
            bad = ok & ~((x >= 0) & (x <= col.max_value))
        else:                                              # plain numbers (targets, KPI values)
            bad = ok & (np.abs(x) > MAX_AMOUNT)
        junk = ~blank & ~ok                                # not a number (or a bool / date cell)
        offending = np.flatnonzero(bad | junk)
        for i, v in zip(offending, _values_at(values, offending)):
            r = int(rows[i])
            if y is not None and np.isfinite(y[i]) and abs(y[i]) >= 1e15:
                v = float(y[i])                            # a huge number cell: 1e+308, not fastexcel's 309 digits
            if junk[i]:
                self._number_cell(col, v, r, header)       # the exact per-cell rules and message
            elif pct[i]:                                   # as parsed column-wise (not parsed again)
                self._check_percent(col, float(x[i]), r, header, _show(v))
            else:
                self._check_value(col, float(x[i]), r, header, _show(v))
        return out

    def _number_cell(self, col: Column, v, row: int, header: str) -> float | None:
        """One cell that is not a plain number: percent text, separators, currency, or junk."""
        if col.kind in ("rate", "number") and isinstance(v, str) and unicodedata.normalize("NFKC", v).strip().endswith("%"):
            x = _parse_number(unicodedata.normalize("NFKC", v).strip()[:-1])
            if x is None:
                self.issue("not_number", row, header, _show(v))
                return None
            x = x / 100.0
            self._check_percent(col, x, row, header, _show(v))
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
        elif col.kind == "money" and abs(x) > MAX_AMOUNT:
            self.issue("too_large", row, header, shown, limit=f"{MAX_AMOUNT:g}")
        elif col.kind == "money" and not col.signed and x < 0:
            self.issue("negative", row, header, shown)
        elif col.kind == "number":
            self._check_number(col, x, row, header, shown)

    def _check_percent(self, col: Column, x: float, row: int, header: str, shown: str) -> None:
        """The range rules of a percent cell of a rate or number column (``x`` already / 100)."""
        if col.kind == "rate":
            if not 0.0 <= x <= 1.0:
                self.issue("rate_range", row, header, shown)
        else:
            self._check_number(col, x, row, header, shown)

    def _check_number(self, col: Column, x: float, row: int, header: str, shown: str) -> None:
        if col.key == "coefficient":
            if not 0.0 < x <= 1.0:
                self.issue("coefficient_range", row, header, shown)
        elif col.max_value is not None and not col.signed and not 0 <= x <= col.max_value:
            self.issue("out_of_range", row, header, shown, low=0, high=f"{col.max_value:g}")
        elif col.max_value is None and abs(x) > MAX_AMOUNT:
            self.issue("too_large", row, header, shown, limit=f"{MAX_AMOUNT:g}")


def _looks_numeric(s: str) -> bool:
    return _parse_number(s) is not None


# --------------------------------------------------------------------------------------------
# cross-row and cross-sheet rules

def _arrow_of(series: pd.Series) -> pa.Array:
    """A frame column as one Arrow array (zero-copy for ``str`` columns)."""
    arr = pa.array(series.array) if isinstance(series.dtype, pd.StringDtype) else pa.array(series.to_numpy(), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _check_duplicates(p: _SheetParser, df: pd.DataFrame, cols: tuple[str, ...]) -> None:
    if df.empty or any(c not in df for c in cols):
        return
    arrays = [_arrow_of(df[c]) for c in cols]
    valid = np.logical_and.reduce([_np_bool(pc.is_valid(a)) for a in arrays])
    # candidates first: rows whose key hashes (64 bits) equal another row's; a 5M-id column
    # costs ~0.2 GB and a sort of integers this way (a dictionary of every id cost ~0.7 GB)
    h = pl.DataFrame({f"k{i}": pl.Series(a) for i, a in enumerate(arrays)}).hash_rows(seed=0).to_numpy()
    hv = np.sort(h[valid])
    twice = hv[1:][hv[1:] == hv[:-1]]
    del hv
    cand = np.flatnonzero(valid & np.isin(h, twice)) if len(twice) else np.zeros(0, dtype=np.int64)
    del h
    dup = np.zeros(len(df), dtype=bool)
    if not len(cand):
        return
    take = pa.array(cand)                          # the exact test, on the candidates only
    key = np.zeros(len(cand), dtype=np.int64)      # each row's key as one integer (dictionary codes)
    for a in arrays:
        enc = pc.dictionary_encode(a.take(take))
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        key = key * max(len(enc.dictionary), 1) + codes
        del enc, codes
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    dup[cand] = counts[inverse.reshape(-1)] > 1
    if not dup.any():                              # hash collisions only
        return
    d = df.iloc[np.flatnonzero(dup)][[*cols, "_row"]]
    first = d.groupby(list(cols), sort=False)["_row"].transform("min").to_numpy()
    rows = d["_row"].to_numpy()
    later = rows != first
    values = [d[c].to_numpy(dtype=object)[later] for c in cols]
    for k, (row, first_row) in enumerate(zip(rows[later], first[later])):
        if len(cols) == 1:
            col = cols[0]
            p.issue("duplicate_id", int(row), p.headers.get(col, col), str(values[0][k]),
                    first_row=int(first_row), column_zh=p.headers.get(col, col))
        else:
            value = " / ".join(str(v[k]) for v in values)
            p.issue("duplicate_pair", int(row), ", ".join(p.headers.get(c, c) for c in cols), value,
                    first_row=int(first_row))


def _check_foreign_keys(p: _SheetParser, df: pd.DataFrame, frames: dict, names: dict) -> None:
    for col, target in p.sheet.foreign_keys.items():
        if target not in frames or df.empty:
            continue
        target_ids = _arrow_of(frames[target][sheet_by_key(target).id_column]).drop_null()
        values = _arrow_of(df[col])
        if pa.types.is_null(target_ids.type):        # an empty parent sheet reads as a column of nulls
            target_ids = target_ids.cast(values.type)
        known = pc.is_in(values, value_set=target_ids)
        bad = np.flatnonzero(_np_bool(pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(known, False)))))
        if not len(bad):
            continue
        header = p.headers.get(col, col)
        for r, v in zip(df["_row"].to_numpy()[bad], _values_at(values, bad)):
            p.issue("unknown_key", int(r), header, str(v), target=names.get(target, target),
                    target_zh=names.get(target, sheet_by_key(target).zh), column_zh=header)


def _check_coefficients(p: _SheetParser, df: pd.DataFrame) -> None:
    if df.empty:
        return
    given = df[df["coefficient"].notna()]
    header = p.headers.get("coefficient", "coefficient")
    # the sums above 1 as calc's rule finds them (calc.rules); each cell's range was reported
    # when the column was read
    problems = coefficient_problems(given["customer_id"], given["manager_id"],
                                    given["coefficient"].to_numpy(dtype=float))
    over = problems[problems["rule"] == "sum"].set_index("customer_id")["value"]
    if len(over):
        hit = given[given["customer_id"].isin(over.index)]
        hit = hit.assign(_total=hit["customer_id"].map(over)).sort_values(["customer_id", "_row"], kind="stable")
        for r, cust, total in zip(hit["_row"], hit["customer_id"], hit["_total"]):
            p.issue("coefficient_sum", int(r), header, f"{total:g}", key=cust)
    # blank coefficients of customers whose given ones already sum to 1: per customer code
    # (a sum and a count per customer, in row order as calc.rules sums), no set of ids
    codes, uniques = df["customer_id"].factorize()          # a blank id: -1, never a customer
    c = df["coefficient"].to_numpy(dtype=float)
    has = ~np.isnan(c)
    ok = codes >= 0
    sums = np.bincount(codes[ok], weights=np.where(has, c, 0.0)[ok], minlength=len(uniques))
    counted = np.bincount(codes[ok], weights=has[ok].astype(float), minlength=len(uniques)) > 0
    full = counted & (sums >= 1.0 - SUM_TOLERANCE) & (sums <= 1.0 + SUM_TOLERANCE)
    left = np.flatnonzero(~has & ok & full[np.where(ok, codes, 0)])
    if len(left):
        for r, cust in zip(df["_row"].to_numpy()[left], df["customer_id"].to_numpy(dtype=object)[left]):
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


_WORKERS = 2                      # sheets parsed at a time (the machine this is sized for has 2 cores)


def _size_hint(raw: RawSheet) -> int:
    """Bytes behind a sheet, to start the largest first (0 when unknown)."""
    return int(getattr(raw.backend, "size", 0) or 0)


def _parse_one(p: "_SheetParser") -> pd.DataFrame | None:
    try:
        df = p.parse()
    except ExtractError as e:          # the file cannot be parsed (a CSV quote never closed, a broken
        p.report.extend(e.report.issues)   # sheet): its issue, and no frame for the sheet
        return None
    pa.default_memory_pool().release_unused()      # the raw text columns are gone: give the pages back
    return df


def _cross_checks(p: "_SheetParser", df: pd.DataFrame, frames: dict, names: dict) -> None:
    """The cross-row and cross-sheet rules of one sheet (issues into that sheet's parser)."""
    if p.sheet.id_column:
        _check_duplicates(p, df, (p.sheet.id_column,))
    if p.sheet.unique_together:
        _check_duplicates(p, df, p.sheet.unique_together)
    _check_foreign_keys(p, df, frames, names)
    if p.sheet.key == "assignments":
        _check_coefficients(p, df)
    if p.sheet.key == "accounts":
        _check_account_lines(p, df)


def parse_book(book: RawBook, progress=None) -> tuple[Extract, Report]:
    """Map, type and validate every sheet of a raw book.

    Parameters
    ----------
    book : RawBook
        As returned by :func:`data.readers.read_input`.
    progress : callable, optional
        ``progress("check", fraction)`` is called as the sheets are validated (fraction 0..1).

    Returns
    -------
    tuple of (Extract, Report)
        The typed frames (rows with errors included, flagged in ``Extract.frames[...]``'s
        ``_error`` column) and the report of every issue found.
    """
    report = Report()
    mapped = _map_sheets(book, report)
    names = {k: v.name for k, v in mapped.items()}
    # each sheet is parsed by its own parser into its own report, two at a time (Arrow, numpy
    # and polars release the GIL), the largest file first; the reports are joined in sheet
    # order, so the issues come in the same order as a one-by-one run
    parsers = {s.key: _SheetParser(s, mapped[s.key], Report()) for s in SHEETS if s.key in mapped}
    order = sorted(parsers, key=lambda k: -_size_hint(mapped[k]))
    results: dict[str, pd.DataFrame | None] = {}
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        todo = {pool.submit(_parse_one, parsers[k]): k for k in order}
        for done, fut in enumerate(as_completed(todo)):
            if progress is not None:
                progress("check", done / (len(SHEETS) + 1))
            results[todo[fut]] = fut.result()
        frames: dict[str, pd.DataFrame] = {k: results[k] for k in parsers if results[k] is not None}
        parsed = {k: len(p.report.issues) for k, p in parsers.items()}
        for fut in [pool.submit(_cross_checks, parsers[k], frames[k], frames, names)
                    for k in sorted(frames, key=lambda k: -len(frames[k]))]:
            fut.result()
    for k, p in parsers.items():                  # sheet by sheet: reading and typing ...
        report.extend(p.report.issues[:parsed[k]])
    for k in frames:                              # ... then the cross-row and cross-sheet rules
        report.extend(parsers[k].report.issues[parsed[k]:])
    for key, df in frames.items():             # a sorted search, not a hash table of every row
        bad = np.fromiter(parsers[key].error_rows, dtype=np.int64, count=len(parsers[key].error_rows))
        df["_error"] = np.isin(df["_row"].to_numpy(dtype=np.int64), bad) if len(bad) else np.zeros(len(df), dtype=bool)
    for sheet in SHEETS:  # optional sheets absent: empty frames with the right columns
        if sheet.key not in frames and not sheet.required:
            frames[sheet.key] = _empty_frame(sheet)
    if progress is not None:
        progress("check", 1.0)
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


def parse_uploads(files: list[tuple[str, bytes]], progress=None) -> tuple[Extract | None, Report]:
    """Read and validate uploaded files: one workbook, or one CSV file per sheet.

    Parameters
    ----------
    files : list of (str, bytes)
        File names and contents as uploaded.
    progress : callable, optional
        ``progress(phase, fraction)``: phase ``read`` per file read, then ``check`` per sheet
        validated (fraction 0..1), for a progress bar.

    Returns
    -------
    tuple of (Extract or None, Report)
        ``None`` when the files could not be read at all (the report says why).
    """

    book = RawBook()
    report = Report()
    for done, (name, data) in enumerate(files):
        if progress is not None:
            progress("read", done / max(len(files), 1))
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
    if progress is not None:
        progress("read", 1.0)
    if not report.ok:
        return None, report
    extract, parsed = parse_book(book, progress)
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
