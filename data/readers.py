"""Read an uploaded extract into raw sheets: a workbook, one CSV, or a folder of CSVs.

Readers do not interpret headers or values. A :class:`RawSheet` gives the top rows as Python
values (to find the header) and then the body as whole columns (Arrow arrays), with the row
numbers Excel shows, so that validation (:mod:`data.ingest`) can point at the exact cell without
holding every cell as a Python object.

- CSV: the bytes are checked as strict UTF-8 (with or without BOM) and else transcoded from
  UTF-16 (with its byte-order mark; without one it is refused, naming UTF-16) or GB18030; a
  NUL byte inside the text is kept for validation to report on its row and column. The body is
  parsed by polars' multi-threaded reader with every cell kept as text (blank lines, short and
  long rows, quoted separators and line breaks as ``csv.reader`` reads them).
- Workbooks (xlsx, xlsm, xls; .ods and .xlsb are refused by :mod:`data.guards`) are read with
  fastexcel (Rust calamine into Arrow; measured 1M rows in ~5 s against ~14 s for python-calamine, MEASURED.md), the header found
  first from the streamed top rows so that the sheet is parsed once. When every read column
  holds one cell type (numbers, text, booleans, dates) the types are kept (a numeric id gets its
  warning); when a column mixes types (``4.5%`` among numbers), the sheet's other columns are
  read as text (booleans and dates as fastexcel writes them: ``true``, ``2026-09-30 00:00:00``)
  while its id columns stay typed, so a numeric id is still warned; an id column that itself
  mixes numbers and text is read as text and its first number cell found in the sheet's XML
  (xlsx only: an xls id column mixing both gives no warning).
- Before fastexcel loads an xlsx sheet, :func:`scan_xlsx_sheet` bounds its used range (a stray
  value at XFD1048576 would make calamine allocate 17 billion cells), refuses a damaged
  shared-string index, and lists formula cells saved without their value.
- A file a reader cannot parse (a CSV quote never closed, a damaged sheet) raises
  :class:`~data.report.ExtractError` with one issue naming the file and sheet (and, for the
  quote, the row where it opens), never the reader's own exception.

The file type is decided by content, never by the file name.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from data.report import ExtractError, Issue, Report
from data.schema import column_letters

__all__ = ["RawSheet", "RawBook", "read_input", "read_bytes", "sniff_kind", "decode_text", "to_utf8"]

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEAD_BYTES = 1 * 2**20          # bytes of a CSV decoded with the standard library to find its header


class _Rows:
    """Backend of a sheet given as Python rows (small sheets built in memory)."""

    def __init__(self, rows: list[list]):
        self.rows = rows

    def head(self, n: int | None) -> list[list]:
        return [list(r) for r in (self.rows if n is None else self.rows[:n])]

    def body(self, start: int, columns: list[int], numeric=(), ids=()) -> tuple[int, list[pa.Array]]:
        body = self.rows[start + 1:]
        out = []
        self.numbers = {}
        for j in columns:
            values = [r[j] if j < len(r) else None for r in body]
            arr = _python_column(values)
            if j in set(ids) and pa.types.is_large_string(arr.type):    # a mixed id column: its first number
                first = next((i for i, v in enumerate(values) if type(v) in (float, int)), None)
                if first is not None:
                    self.numbers[j] = first
            out.append(arr)
        return len(body), out


def _python_column(values: list) -> pa.Array:
    """Python cells of one column to one Arrow array (text when the types are mixed)."""
    clean = [None if (v is None or v == "" or (isinstance(v, float) and v != v)) else v for v in values]
    kinds = {type(v) for v in clean if v is not None}
    if kinds <= {float, int} and kinds and bool not in kinds:
        return pa.array([None if v is None else float(v) for v in clean], pa.float64())
    try:
        if len(kinds) == 1:
            return pa.array(clean)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    return pa.array([None if v is None else str(v) for v in clean], pa.large_string())


class _Csv:
    """Backend of one CSV file: UTF-8 bytes and the delimiter."""

    def __init__(self, data: bytes, delimiter: str, path: Path | None = None, utf8_file: bool = False,
                 size: int | None = None, quoted: bool | None = None):
        self.delimiter = delimiter
        self.path = path               # a file on disk: its bytes are dropped once the body is read
        # a UTF-8 file on disk is not held in memory at all: the body streams from the file
        # (``data`` may then be its first bytes only, with ``size`` and ``quoted`` given)
        self._data = None if (path is not None and utf8_file) else data
        self._head = data[:_HEAD_BYTES]
        self._size = len(data) if size is None else size
        self._quoted = (b'"' in data) if quoted is None else quoted

    @property
    def size(self) -> int:
        """Bytes of the file (UTF-8)."""
        return self._size

    @property
    def data(self) -> bytes:
        if self._data is None:         # read again (a second parse of the same book)
            self._data = to_utf8(self.path.read_bytes())[0]
        return self._data

    def _done(self) -> None:
        if self.path is not None:
            self._data = None

    def _head_text(self) -> tuple[str, bool]:
        cut = self._size > _HEAD_BYTES
        text = self._head.decode("utf-8", errors="ignore" if cut else "strict")
        return text.removeprefix("\ufeff"), cut

    def head(self, n: int | None) -> list[list]:
        if n is None:                                     # every row (small files, diagnostics)
            text = self.data.decode("utf-8").removeprefix("\ufeff")
            return [list(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)]
        text, cut = self._head_text()
        rows = []
        for r in csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter):
            rows.append(list(r))
            if len(rows) > n:
                break
        if cut and len(rows) <= n:                        # the last record may be cut at the byte limit
            rows = rows[:-1]
        return rows[:n]

    def body(self, start: int, columns: list[int], numeric=(), ids=()) -> tuple[int, list[pa.Array]]:
        """Rows ``start + 1`` onwards (row ``start`` is the header, which fixes the width).

        pyarrow's reader (lean: text with 32-bit offsets) reads a well-formed file; a file with
        short or long rows, or quotes above the header, is read by polars, which pads and cuts
        rows as ``csv.reader`` numbers them.
        """
        width = len(self.head(start + 1)[start]) if start >= 0 else 0
        body = self._pyarrow_body(start, width, columns) or self._polars_body(start, columns)
        self._done()
        return body

    def _pyarrow_body(self, start: int, width: int, columns: list[int]) -> tuple[int, list[pa.Array]] | None:
        import pyarrow.csv as pcsv

        text, _ = self._head_text()
        lines = re.split(r"\r\n|\n|\r", text, maxsplit=start + 1)[:start + 1]
        if width == 0 or any(line.count('"') % 2 for line in lines):    # a quoted line break above the
            return None                                   # body: pyarrow skips lines, not records
        invalid = []

        def on_invalid(row) -> str:
            invalid.append(row)
            return "skip"

        names = [f"c{j}" for j in range(width)]
        try:
            source = str(self.path) if self._data is None else pa.BufferReader(pa.py_buffer(self._data))
            table = pcsv.read_csv(
                source,
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=start + 1, block_size=16 * 2**20),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=self._quoted,
                                                ignore_empty_lines=False, invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                    include_columns=[names[j] for j in dict.fromkeys(columns)],
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid:
            return None
        if invalid:
            return None
        n = table.num_rows
        out = {}
        for j in dict.fromkeys(columns):
            out[j] = table.column(names[j]).combine_chunks()
            table = table.drop_columns([names[j]])
        return n, [out[j] for j in columns]

    def broken_record(self) -> tuple[int | None, str]:
        """Where the CSV stops being readable, for a message: (row as a spreadsheet numbers it,
        ``"quote"`` for a quote never closed, else the reason), or (None, "") when it reads.

        Called only after a reader failed (an error path): the file is read by ``csv.reader``
        in strict mode, record by record.
        """
        try:
            text = self.data.decode("utf-8").removeprefix("\ufeff")
        except (UnicodeDecodeError, ValueError, OSError) as e:
            return None, str(e)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        n = 0
        try:
            for n, _ in enumerate(reader, 1):
                pass
        except csv.Error as e:
            if "unexpected end of data" in str(e):     # the record open at the end of the file
                return n + 1, "quote"                  # is the one whose quote never closes
            return n + 1, str(e)
        finally:
            del text
        return None, ""

    def _polars_body(self, start: int, columns: list[int]) -> tuple[int, list[pa.Array]]:
        import polars as pl

        try:
            frame = pl.read_csv(self.data, has_header=False, skip_rows=start, separator=self.delimiter,
                                quote_char='"', infer_schema=False, truncate_ragged_lines=True,
                                columns=columns, encoding="utf8")
        except pl.exceptions.NoDataError:
            return 0, [pa.array([], pa.large_string()) for _ in columns]
        frame = frame.slice(1)
        n = frame.height
        series = frame.get_columns()
        del frame
        out = []
        for i in range(len(series)):
            out.append(series[i].to_arrow().cast(pa.large_string()))
            series[i] = None
        return n, out


class _Workbook:
    """Backend of one workbook sheet: fastexcel for the body, a streaming look at the top rows.

    fastexcel parses the whole sheet on every load, so the header is found first from the top
    rows alone (:func:`xlsx_heads` streams them in milliseconds; for xls, xlsb and ods fastexcel
    reads them) and the body is then loaded once, typed.
    """

    def __init__(self, reader, sheet: str, data: bytes, heads: "_Heads | None" = None):
        self.reader = reader
        self.sheet = sheet
        self.data = data
        self.heads = heads or _Heads(data, [sheet])
        self.absolute = False          # head() cell indices count from column A (else from the range)

    @property
    def size(self) -> int:
        """Bytes of the sheet's XML (0 when unknown), to parse the largest sheet first."""
        return self.heads.size(self.sheet)

    def head(self, n: int | None) -> list[list]:
        if n is not None:
            with self.heads.lock:
                rows = self.heads.rows(self.sheet, n)
            if rows is not None:
                self.absolute = True
                return rows
        self.absolute = False
        scan = self.heads.scan(self.sheet)     # fastexcel allocates the whole used range even for a few rows
        if scan is not None and scan.columns == 0:
            return []                  # no cell holds anything (fastexcel would still inflate it all)
        with self.heads.lock:          # one fastexcel reader serves one call at a time
            batch = self.reader.load_sheet(self.sheet, header_row=None, skip_rows=0, n_rows=n, dtypes="string",
                                           eager=True)
        cols = [c.to_pylist() for c in batch.columns]
        return [["" if c[i] is None else c[i] for c in cols] for i in range(batch.num_rows)]

    def body(self, start: int, columns: list[int], numeric=(), ids=()) -> tuple[int, list[pa.Array]]:
        self.exact = {}
        self.numbers = {}
        if not columns:
            return 0, []
        wanted = sorted(set(columns))
        use = ",".join(column_letters(j) for j in wanted) if self.absolute else wanted
        load = self._load
        try:                           # every column of one cell type (numbers, text, booleans, dates) keeps it
            batch = load(start, use, schema_sample_rows=None, dtype_coercion="strict")
        except Exception as e:         # a column mixes types: read the cells as text (coercion could turn
            if not _mixed_types(e):    # TRUE into 1.0 and hide an error)
                raise
            idc = [j for j in wanted if j in set(ids)]
            batch = None
            if idc:                    # the id columns typed when each holds one cell type (numeric ids warned)
                try:
                    batch = load(start, use, schema_sample_rows=None, dtype_coercion="strict",
                                 dtypes={j: "string" for j in wanted if j not in idc})
                except Exception as e2:
                    if not _mixed_types(e2):
                        raise
            if batch is None:          # an id column mixes numbers and text itself: all text, and the
                batch = load(start, use, dtypes="string")             # first number of each found in the XML
                self.numbers = self._first_numbers(start, idc, wanted, batch)
            self.exact = self._exact_numbers(start, wanted, numeric)
        n = batch.num_rows
        by_index = dict(zip(wanted, batch.columns)) if batch.num_columns == len(wanted) else {}
        return n, [by_index.get(j, pa.nulls(n, pa.large_string())) for j in columns]

    def _load(self, start: int, use, **kw):
        self.heads.scan(self.sheet)    # its used range is bounded before fastexcel allocates it
        with self.heads.lock:          # one fastexcel reader serves one call at a time
            return self.reader.load_sheet(self.sheet, header_row=None, skip_rows=start + 1, use_columns=use,
                                          eager=True, **kw)

    def _first_numbers(self, start: int, idc: list[int], wanted: list[int], batch) -> dict[int, int]:
        """{id column -> body index of its first number cell} for id columns read as text.

        The sheet's XML is searched (a regular expression over the decompressed bytes, stopping
        once every column has its first number), so only an xlsx whose top rows were streamed
        (cell indices from column A) is looked into; other formats give no warning here.
        """
        if not idc or not self.absolute:
            return {}
        texts = dict(zip(wanted, batch.columns)) if batch.num_columns == len(wanted) else {}
        try:
            return _xlsx_first_numbers(self.data, self.sheet, idc, start + 2, texts)
        except Exception:              # an unusual sheet: no warning rather than a failed read
            return {}

    def _exact_numbers(self, start: int, wanted: list[int], numeric) -> dict[int, pa.Array]:
        """The number columns of a mixed sheet read again as floats: a number cell written as text
        by fastexcel keeps only 15 digits, so validation takes the value from here."""
        cols = [j for j in wanted if j in set(numeric)]
        if not cols:
            return {}
        use = ",".join(column_letters(j) for j in cols) if self.absolute else cols
        batch = self._load(start, use, dtypes="float")
        return dict(zip(cols, batch.columns)) if batch.num_columns == len(cols) else {}



def _mixed_types(e: Exception) -> bool:
    """fastexcel's refusal of a column that mixes cell types under strict coercion."""
    return "strict" in str(e) or "combination" in str(e)


def _xlsx_first_numbers(data: bytes, sheet: str, columns: list[int], first_row: int,
                        texts: dict[int, pa.Array]) -> dict[int, int]:
    """{column index -> body index} of the first number cell at or below Excel row ``first_row``
    in each of ``columns`` (counted from A) of an xlsx sheet.

    A number cell is a ``<c>`` with no ``t`` attribute (or ``t="n"``) holding a ``<v>``; the text
    fastexcel read for it must parse as a number (a date-styled cell reads as a date and is passed
    over). The search runs in C over 4 MB pieces of the decompressed XML.
    """
    import zipfile

    zf = zipfile.ZipFile(io.BytesIO(data))
    part = _sheet_part(zf, sheet)
    if part is None or part not in zf.namelist():
        return {}
    letters = {column_letters(j).encode(): j for j in columns}
    cell = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?c(?=\s)(?![^>]*\st="(?!n")[^"]*")[^>]*?\sr="('
                      + b"|".join(letters) + rb')(\d+)"[^>]*(?<!/)>\s*'
                      rb'(?:<(?:[A-Za-z_][\w.-]*:)?f\b[^>]*/>\s*|<(?:[A-Za-z_][\w.-]*:)?f\b[^>]*>[^<]*</(?:[A-Za-z_][\w.-]*:)?f>\s*)?'
                      rb'<(?:[A-Za-z_][\w.-]*:)?v>')
    out: dict[int, int] = {}
    buf = b""
    with zf.open(part) as fh:
        while len(out) < len(letters):
            chunk = fh.read(4 * 2**20)
            buf += chunk
            end = len(buf) if not chunk else buf.rfind(b"<c")     # a cell cut at the piece's end waits
            end = max(end, 0)
            for m in cell.finditer(buf, 0, end):
                j = letters[m.group(1)]
                i = int(m.group(2)) - first_row
                if j in out or i < 0:
                    continue
                text = texts.get(j)
                shown = None if text is None or i >= len(text) else text[i].as_py()
                try:
                    float(shown)
                except (TypeError, ValueError):
                    continue
                out[j] = i
                if len(out) == len(letters):
                    break
            if not chunk:
                break
            buf = buf[end:]
    return out


class _Heads:
    """The top rows of every sheet of one workbook, streamed together on the first request
    (:func:`xlsx_heads`: one pass over the shared-string table for all sheets)."""

    def __init__(self, data: bytes, sheets: list[str]):
        self.data = data
        self.sheets = list(sheets)
        self.cache: dict[tuple[str, int], list[list] | None] = {}
        self.lock = threading.RLock()   # sheets are parsed in threads; the reader is not shared
        self._sizes: dict[str, int] | None = None
        self._scan_lock = threading.Lock()
        self._sheet_locks: dict[str, threading.Lock] = {}
        self._scans: dict[str, object] = {}

    def scan(self, sheet: str) -> "SheetScan | None":
        """The checks of :func:`scan_xlsx_sheet` on ``sheet``, once (``None`` for a workbook that
        is not an xlsx: its format bounds its sheets). Called before any fastexcel load of the
        sheet; sheets are scanned in parallel (zlib and RE2 release the GIL), each only once.

        Raises
        ------
        ExtractError
            When the sheet is refused (every later call raises it again).
        """
        with self._scan_lock:
            lock = self._sheet_locks.setdefault(sheet, threading.Lock())
        with lock:
            if sheet not in self._scans:
                try:
                    self._scans[sheet] = self._scan(sheet)
                except ExtractError as e:
                    self._scans[sheet] = e
        got = self._scans[sheet]
        if isinstance(got, ExtractError):
            raise got
        return got

    def prefetch(self) -> None:
        """Start scanning every sheet in a background thread, the largest first, so that the checks
        overlap with opening the workbook and reading the other sheets (a caller that needs a
        sheet's scan first takes it over: each sheet is scanned once, by whoever comes first)."""
        order = sorted(self.sheets, key=lambda s: -self.size(s))

        def run():
            for s in order:
                try:
                    self.scan(s)
                except Exception:      # reported (again) to the parser that asks for this sheet
                    pass

        threading.Thread(target=run, name="xlsx-scan", daemon=True).start()

    def _scan(self, sheet: str) -> "SheetScan | None":
        import zipfile

        try:
            zf = zipfile.ZipFile(io.BytesIO(self.data))
        except zipfile.BadZipFile:
            return None                 # xls: at most 65,536 rows x 256 columns by its format
        if "xl/workbook.xml" not in zf.namelist():
            return None
        part = _sheet_part(zf, sheet)
        if part is None or part not in zf.namelist():
            raise ExtractError(Report([Issue("file_unreadable", sheet=sheet, params={
                "expected": "a workbook", "detail": "the sheet's part is missing from the file"})]))
        return scan_xlsx_sheet(self.data, zf, part, sheet)

    def size(self, sheet: str) -> int:
        if self._sizes is None:
            self._sizes = {}
            try:
                import zipfile

                zf = zipfile.ZipFile(io.BytesIO(self.data))
                for s in self.sheets:
                    part = _sheet_part(zf, s)
                    if part is not None and part in zf.namelist():
                        self._sizes[s] = zf.getinfo(part).file_size
            except Exception:       # not an xlsx (xls, ods): no hint
                pass
        return self._sizes.get(sheet, 0)

    def rows(self, sheet: str, n: int) -> list[list] | None:
        if (sheet, n) not in self.cache:
            todo = [s for s in dict.fromkeys([sheet, *self.sheets]) if (s, n) not in self.cache]
            self.cache.update({(s, n): r for s, r in xlsx_heads(self.data, todo, n).items()})
        rows = self.cache[(sheet, n)]
        return None if rows is None else [list(r) for r in rows]


@dataclass
class RawSheet:
    """One sheet as read. Row index ``i`` is Excel row ``i + 1``.

    Attributes
    ----------
    name : str
        Sheet name, or the CSV file's name without its extension.
    source : str
        Where it came from (file name), for messages.
    encoding : str or None
        The text encoding used, for CSV files.
    backend : object
        The reader behind :meth:`head` and :meth:`body`; a list of rows is accepted too
        (``RawSheet("accounts", rows)``) for sheets built in memory.
    """

    name: str
    backend: object = None
    source: str = ""
    encoding: str | None = None
    hidden: str | None = None       # ``hidden`` or ``veryHidden`` for a workbook sheet hidden in Excel

    def __post_init__(self):
        if isinstance(self.backend, list) or self.backend is None:
            self.backend = _Rows(self.backend or [])

    def head(self, n: int | None = 20) -> list[list]:
        """The first ``n`` rows (all when ``None``) as Python values: ``str``, ``float``,
        ``bool``, dates, or ``''`` for blank (workbook cells as text).

        Raises
        ------
        ExtractError
            When the file cannot be parsed (one issue naming this sheet; see :meth:`body`).
        """
        try:
            return self.backend.head(n)
        except (ExtractError, MemoryError):
            raise
        except Exception as e:
            raise self._failure(e) from None

    def _failure(self, e: Exception) -> ExtractError:
        """A reader's own exception (polars, pyarrow, fastexcel, a decode error) as one issue."""
        detail = " ".join(str(e).split("\n")[0].split())[:200] or type(e).__name__
        if isinstance(self.backend, _Csv):
            row, why = self.backend.broken_record()
            if why == "quote":
                return ExtractError(Report([Issue("csv_quote", sheet=self.name, row=row,
                                                  params={"file": self.source or self.name})]))
            if row is not None:
                detail = f"row {row}: {why}"
            return ExtractError(Report([Issue("file_unreadable", sheet=self.name, row=row, params={
                "expected": "a CSV file", "detail": f"{self.source or self.name}: {detail}"})]))
        if isinstance(self.backend, _Workbook) and "shared strings" in detail:
            try:
                import zipfile

                zf = zipfile.ZipFile(io.BytesIO(self.backend.data))
                found = find_past_string(self.backend.data, zf, _sheet_part(zf, self.backend.sheet), self.name)
            except Exception:
                found = None
            if found is not None:
                return found
        return ExtractError(Report([Issue("file_unreadable", sheet=self.name, params={
            "expected": "a workbook", "detail": f"{self.source or self.name}: {detail}"})]))

    def body(self, start: int, columns: list[int], numeric=(), ids=()) -> tuple[int, list[pa.Array]]:
        """The rows below row index ``start`` (the header) as whole columns.

        Parameters
        ----------
        start : int
            Row index (0-based) of the header; the body starts at Excel row ``start + 2``.
        columns : list of int
            Cell indices of the columns wanted.
        numeric : collection of int
            Those of them that hold numbers (see :meth:`exact_numbers`).
        ids : collection of int
            Those of them that hold ids (see :meth:`first_numbers`).

        Returns
        -------
        tuple of (int, list of pyarrow.Array)
            The number of body rows (blank rows included) and one array per column: text
            (null for an empty cell) or, for a workbook column of one cell type, that type.

        Raises
        ------
        ExtractError
            When the file cannot be parsed: a CSV quote never closed (rule ``csv_quote``, on the
            row where it opens) or any other reader failure (``file_unreadable``, naming the file
            and sheet); never the reader's own exception.
        """
        try:
            return self.backend.body(start, columns, numeric, ids)
        except (ExtractError, MemoryError):
            raise
        except Exception as e:
            raise self._failure(e) from None

    def first_numbers(self) -> dict[int, int]:
        """After :meth:`body`: {cell index -> body row index} of the first number cell of each
        ``ids`` column that was read as text because it mixes numbers and text (a numeric id
        column read typed shows its numbers itself)."""
        return getattr(self.backend, "numbers", {}) or {}

    def exact_numbers(self) -> dict[int, pa.Array]:
        """After :meth:`body` on a workbook sheet whose columns mix cell types (so were read as
        text): {cell index -> float64 column} for the ``numeric`` columns, exact where a cell
        was a number (text cells give null or their parse)."""
        return getattr(self.backend, "exact", {}) or {}

    def formula_cells(self) -> tuple[list[tuple[int, int, str]], int]:
        """After :meth:`body` on an xlsx sheet: its formula cells with no saved value, as
        ``([(row index, column index from A, formula text), ...], how many in all)``; the list
        holds the first ones only. ``([], 0)`` for other formats."""
        if not isinstance(self.backend, _Workbook):
            return [], 0
        got = self.backend.heads.scan(self.backend.sheet)
        return ([], 0) if got is None else (got.formulas, got.formula_count)

    def has_content(self) -> bool:
        """True when any cell is not blank (or the sheet cannot be read: it is then shown)."""
        try:
            return self._has_content()
        except MemoryError:
            raise
        except Exception:
            return True

    def _has_content(self) -> bool:
        if isinstance(self.backend, _Workbook):
            scan = self.backend.heads.scan(self.backend.sheet)   # raises (shown as content) for a refused sheet
            if scan is not None and scan.columns == 0:
                return False
            batch = self.backend.reader.load_sheet(self.backend.sheet, header_row=None, skip_rows=0,
                                                   dtypes="string", eager=True)
            import pyarrow.compute as pc

            return any(pc.any(pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(c)), 0), False)).as_py()
                       for c in batch.columns)
        if isinstance(self.backend, _Csv):
            return bool(self.backend.data.strip(b"\xef\xbb\xbf \t\r\n" + self.backend.delimiter.encode()))
        return any(any(not _is_blank(c) for c in r) for r in self.backend.rows)


def _is_blank(v) -> bool:
    """A Python cell that holds nothing: ``None``, NaN, or text of spaces only."""
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and v != v)


@dataclass
class RawBook:
    """All sheets of one upload plus what the reader noticed."""

    sheets: list[RawSheet] = field(default_factory=list)
    kind: str = ""
    notes: list[str] = field(default_factory=list)


def sniff_kind(head: bytes) -> str:
    """Decide a file's type from its first bytes.

    Parameters
    ----------
    head : bytes
        At least the first 8 bytes of the file.

    Returns
    -------
    str
        ``zip`` (xlsx, xlsm, xlsb, ods), ``ole`` (legacy xls), ``empty``, ``text`` or ``binary``.
    """
    if not head:
        return "empty"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(OLE_MAGIC):
        return "ole"
    sample = head[:4096]
    if b"\x00" in sample and not (sample.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16_order(sample)
                                  or _text_with_nul(sample)):
        return "binary"
    return "text"


def utf16_order(sample: bytes) -> str | None:
    """``le`` or ``be`` when ``sample`` (a file's first bytes, no byte-order mark) looks like
    UTF-16 text: a CSV's separators, digits and line breaks are ASCII, so every other byte is 0
    (a quarter of them at least, and almost none of the others); else None."""
    n = len(sample) // 2 * 2
    if n < 16:
        return None
    even, odd = sample[0:n:2].count(0) / (n / 2), sample[1:n:2].count(0) / (n / 2)
    if odd >= 0.25 and even <= 0.02:
        return "le"
    if even >= 0.25 and odd <= 0.02:
        return "be"
    return None


_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0b\x0e-\x19\x1b-\x1f\x7f]")


def _text_with_nul(sample: bytes) -> bool:
    """Text that holds a few NUL bytes (a NUL typed into a cell): without them it decodes as
    UTF-8 or GB18030 and has no other control character. Such a file is read, and each NUL is
    reported on its row and column (``text_nul``) instead of the file being called binary."""
    if sample.count(0) > max(8, len(sample) // 100):
        return False
    text = sample.replace(b"\x00", b"")
    if _CONTROL_BYTES.search(text):
        return False
    import codecs

    for enc in ("utf-8", "gb18030"):
        try:                           # a character cut at the sample's end is not an error
            codecs.getincrementaldecoder(enc)().decode(text, final=False)
            return True
        except UnicodeDecodeError:
            continue
    return False


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode CSV bytes: strict UTF-8 (with or without BOM) first, then GB18030.

    The order matters: GB18030 accepts almost any byte string, so trying it first would turn
    UTF-8 Chinese into mojibake without an error.

    Returns
    -------
    tuple of (str, str)
        The text and the encoding used (``utf-8-sig``, ``utf-8`` or ``gb18030``).

    Raises
    ------
    ValueError
        When neither encoding decodes the bytes.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _utf16(data), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf_err:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise ValueError(f"byte {utf_err.start}: {data[utf_err.start:utf_err.start + 4]!r}") from None


def _utf16(data: bytes) -> str:
    """UTF-16 text with its byte-order mark (Excel's "Unicode text"), decoded."""
    try:
        return data.decode("utf-16")
    except UnicodeDecodeError as e:
        raise ValueError(f"UTF-16 (byte-order mark {data[:2].hex(' ').upper()}) that does not decode at byte "
                         f"{e.start}") from None


def _refuse_utf16(name: str, order: str) -> ExtractError:
    """``encoding_utf16``: a UTF-16 file without a byte-order mark (which could be read wrongly)."""
    return ExtractError.of("encoding_utf16", sheet=name, detail=f"UTF-16{order.upper()} without a byte-order mark")


def _text_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A text array's UTF-8 bytes without copying: ``(data, starts, lengths)``, each cell's bytes
    being ``data[starts[i]:starts[i] + lengths[i]]`` (length 0 for a null cell)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    wide = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    _, offsets, data = arr.buffers()
    offs = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(offs)
    if arr.null_count:
        lengths = np.where(np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool), lengths, 0)
    return data, offs[:-1].astype(np.int64), lengths


def _is_utf8(data: bytes) -> bool:
    """Strict UTF-8 check of a whole buffer without building a Python string (Arrow's SIMD check)."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    blob = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def to_utf8(data: bytes) -> tuple[bytes, str]:
    """CSV bytes as UTF-8 bytes, by the rules of :func:`decode_text` (same order, same errors).

    UTF-8 input is returned as it is (no copy; a BOM stays and the CSV reader skips it); GB18030
    input is transcoded.

    Returns
    -------
    tuple of (bytes, str)
        UTF-8 bytes and the encoding found (``utf-8-sig``, ``utf-8`` or ``gb18030``).

    Raises
    ------
    ValueError
        When neither encoding decodes the bytes.
    """
    if _is_utf8(data):
        return data, "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _utf16(data).encode("utf-8"), "utf-16"
    text, enc = decode_text(data)            # raises with the byte position when neither fits
    return text.encode("utf-8"), enc


def _delimiter(head_text: str) -> str:
    sample = head_text[:20000]
    first = sample.splitlines()[0] if sample else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=counts.get) if max(counts.values()) > 0 else ","


def read_csv_bytes(name: str, data: bytes, path: Path | None = None) -> RawSheet:
    """Read one CSV file's bytes into a :class:`RawSheet` (all cells text).

    ``path``, when the bytes came from a file, lets the sheet drop them once its body is read
    (and read the file again if asked twice)."""
    kind = sniff_kind(data[:4096])
    if kind == "binary":
        raise ExtractError.of("file_type", sheet=name, detail="binary content, not text")
    order = None if data.startswith((b"\xff\xfe", b"\xfe\xff")) else utf16_order(data[:4096])
    if order is not None:
        raise _refuse_utf16(name, order)
    try:
        utf8, enc = to_utf8(data)
    except ValueError as e:
        if str(e).startswith("UTF-16"):
            raise ExtractError.of("encoding_utf16", sheet=name, detail=str(e)) from None
        raise ExtractError.of("encoding", sheet=name, detail=str(e)) from None
    head = utf8[:_HEAD_BYTES].decode("utf-8", errors="ignore").removeprefix("\ufeff")
    stem = Path(name).stem if name else "sheet"
    backend = _Csv(utf8, _delimiter(head), path, utf8_file=utf8 is data)
    return RawSheet(name=stem, backend=backend, source=name, encoding=enc)


def _read_workbook(data: bytes, name: str) -> RawBook:
    import fastexcel

    states = sheet_states(data)
    heads = None
    if states is not None:          # an xlsx: its sheets are checked while fastexcel opens the workbook
        heads = _Heads(data, list(states))
        heads.prefetch()
    try:
        reader = fastexcel.read_excel(data)
        book = RawBook(kind="workbook")
        if heads is None:
            heads = _Heads(data, reader.sheet_names)
        heads.sheets = list(reader.sheet_names)
        states = states or {}
        for sheet_name in reader.sheet_names:
            book.sheets.append(RawSheet(name=sheet_name, backend=_Workbook(reader, sheet_name, data, heads),
                                        source=name, hidden=states.get(sheet_name)))
        return book
    except Exception as e:  # calamine raises several error types for broken files
        if re.search("password|encrypt", str(e), re.IGNORECASE):      # a legacy .xls with a password to open
            raise ExtractError.of("file_encrypted", sheet=name) from None
        raise ExtractError.of("file_unreadable", sheet=name, expected="a workbook", detail=str(e)[:200]) from None


def read_bytes(name: str, data: bytes) -> RawBook:
    """Read one uploaded file, deciding its type from its content.

    Parameters
    ----------
    name : str
        The file name as uploaded (used for messages and CSV sheet names only).
    data : bytes
        The file content.

    Raises
    ------
    ExtractError
        For an empty, unreadable or unsupported file, with a one-issue report.
    """
    kind = sniff_kind(data[:4096])
    if kind == "empty":
        raise ExtractError.of("file_unreadable", sheet=name, expected="a spreadsheet", detail="the file is empty")
    if kind in ("zip", "ole"):
        from data.guards import check_workbook_bytes

        check_workbook_bytes(name, data, kind)
        return _read_workbook(data, name)
    if kind == "binary":
        raise ExtractError.of("file_type", sheet=name, detail="binary content that is neither xlsx, xls nor CSV")
    book = RawBook(kind="csv")
    sheet = read_csv_bytes(name, data)
    book.sheets.append(sheet)
    book.notes.append(f"{name}: {sheet.encoding}")
    return book


def read_input(path: str | os.PathLike) -> RawBook:
    """Read a workbook file, one CSV file, a folder of CSV files, or a Spark database's tables.

    Parameters
    ----------
    path : str or path-like
        A file (any name; the content decides), a folder whose ``*.csv`` files are the sheets,
        or ``spark:DB``: the tables of a warehouse database (:mod:`data.warehouse`).

    Raises
    ------
    ExtractError
        When the path is missing or a file cannot be read.
    """
    from data.warehouse import is_warehouse, read_warehouse

    if is_warehouse(path):
        return read_warehouse(path)
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in (".csv", ".txt"))
        if not files:
            raise ExtractError.of("file_unreadable", sheet=str(p), expected="a folder of CSV files",
                        detail="no .csv file in the folder")
        book = RawBook(kind="csv")
        for f in files:
            sheet = _read_csv_file(f)
            book.sheets.append(sheet)
            book.notes.append(f"{f.name}: {sheet.encoding}")
        return book
    if not p.exists():
        raise ExtractError.of("file_unreadable", sheet=str(p), expected="a file or folder", detail="no such file or folder")
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if sniff_kind(head) == "text":
        book = RawBook(kind="csv")
        sheet = _read_csv_file(p)
        book.sheets.append(sheet)
        book.notes.append(f"{p.name}: {sheet.encoding}")
        return book
    return read_bytes(p.name, _read_limited(p))


def _check_size(path: Path, limit: int) -> int:
    """A file's size in bytes; refused (``file_too_large``) above ``limit``."""
    size = path.stat().st_size
    if size > limit:
        raise ExtractError.of("file_too_large", sheet=path.name,
                              detail=f"{size / 2**20:.0f} MB, the limit is {limit / 2**20:.0f} MB")
    return size


def _read_limited(path: Path, limit: int | None = None) -> bytes:
    """A file's bytes, refused above ``limit`` (default: the upload limit, which workbooks keep)."""
    from data.guards import MAX_UPLOAD_BYTES

    _check_size(path, MAX_UPLOAD_BYTES if limit is None else limit)
    return path.read_bytes()


_SCAN_BYTES = 64 * 2**20          # piece of a local CSV file checked as UTF-8 at a time


def _utf8_cut(buf: bytes) -> int:
    """Length of ``buf`` without a UTF-8 sequence cut at its end (to carry to the next piece)."""
    i = len(buf)
    j = i - 1
    while j >= 0 and j > i - 4 and (buf[j] & 0xC0) == 0x80:
        j -= 1
    if j < 0:
        return i
    lead = buf[j]
    need = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4 if lead >> 3 == 30 else 1
    return j if j + need > i else i


def _scan_utf8(path: Path) -> tuple[bool, bool]:
    """(the file is strict UTF-8, it holds a double quote), read in pieces of 64 MB."""
    carry = b""
    quoted = False
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_SCAN_BYTES)
            if not chunk:
                break
            buf = carry + chunk if carry else chunk
            del chunk
            cut = _utf8_cut(buf)
            if not _is_utf8(buf[:cut] if cut < len(buf) else buf):
                return False, quoted
            quoted = quoted or b'"' in buf
            carry = buf[cut:]
    return (not carry or _is_utf8(carry)), quoted


def _read_csv_file(f: Path) -> RawSheet:
    """One local CSV file: a UTF-8 one is checked in pieces and its body parsed from the disk
    (never held whole in memory); anything else is read and decoded as an upload is."""
    from data.guards import MAX_LOCAL_BYTES

    size = _check_size(f, MAX_LOCAL_BYTES)
    with open(f, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if sniff_kind(head[:4096]) == "text":
        order = None if head.startswith((b"\xff\xfe", b"\xfe\xff")) else utf16_order(head[:4096])
        if order is not None:                             # ASCII in UTF-16 is valid UTF-8: say it first
            raise _refuse_utf16(f.name, order)
        utf8, quoted = _scan_utf8(f)
        if utf8:
            text = head.decode("utf-8", errors="ignore").removeprefix("\ufeff")
            enc = "utf-8-sig" if head.startswith(b"\xef\xbb\xbf") else "utf-8"
            backend = _Csv(head, _delimiter(text), f, utf8_file=True, size=size, quoted=quoted)
            return RawSheet(name=f.stem if f.name else "sheet", backend=backend, source=f.name, encoding=enc)
    data = f.read_bytes()                                 # its size was checked above
    sheet = read_csv_bytes(f.name, data, f)
    del data
    return sheet


# --------------------------------------------------------------------------------------------
# the top rows of an xlsx sheet, streamed (fastexcel parses a whole sheet on every load)

_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_HEAD_XML_BYTES = 8 * 2**20          # bytes of sheet XML read at most to find the top rows
_HEAD_COLUMNS = 16_384               # a top-row cell beyond Excel's last column (XFD) is not streamed


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _cell_index(ref: str) -> tuple[int, int]:
    """``"C12"`` -> (row index 11, column index 2)."""
    col = 0
    k = 0
    while k < len(ref) and ref[k].isalpha():
        col = col * 26 + (ord(ref[k].upper()) - 64)
        k += 1
    return int(ref[k:]) - 1, col - 1


def _sheet_part(zf, sheet: str) -> str | None:
    import posixpath
    import xml.etree.ElementTree as ET

    wb = ET.fromstring(zf.read("xl/workbook.xml"))
    rid = next((s.get(f"{_NS_REL}id") for s in wb.iter() if _local(s.tag) == "sheet" and s.get("name") == sheet), None)
    rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    target = next((r.get("Target") for r in rels if r.get("Id") == rid), None)
    if target is None:
        return None
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))


def _shared_strings(zf, wanted) -> dict[int, str] | None:
    """The shared strings of the indices ``wanted`` ({index -> text}), in one streamed pass.

    The table is counted, not parsed: ``<si>`` openings are counted per decompressed chunk
    (a byte search) and only the chunks holding a wanted entry are looked into, so the cost is
    that of decompressing the table up to the last index wanted (~0.3 s for 2.8M strings, where
    an XML parse of every entry took ~30 s). A table this cannot count safely (a namespace
    prefix, ``<si>`` with attributes, comments, CDATA or processing instructions after the
    root) is parsed entry by entry instead. ``None`` when the table is damaged.
    """
    wanted = sorted({int(k) for k in wanted if int(k) >= 0})
    if not wanted or "xl/sharedStrings.xml" not in zf.namelist():
        return {}
    with zf.open("xl/sharedStrings.xml") as part:
        out = _shared_strings_counted(part, wanted)
    if out is None:
        out = _shared_strings_parsed(zf, wanted)
    return out


_SST_CHUNK = 1 * 2**20
_ROOT_TAG = re.compile(rb"<([A-Za-z_][^\s>/]*)")


def _shared_strings_counted(part, wanted: list[int]) -> dict[int, str] | None:
    """:func:`_shared_strings` by counting ``<si>`` openings; ``None``: use the XML parser."""
    import xml.etree.ElementTree as ET

    import numpy as np

    out: dict[int, str] = {}
    k = 0                          # next position in ``wanted``
    seen = 0                       # <si> openings before ``buf``
    buf = b""
    root = False
    while k < len(wanted):
        chunk = part.read(_SST_CHUNK)
        eof = not chunk
        buf += chunk
        if not root:
            m = _ROOT_TAG.search(buf)          # the first element (declarations start "<?" or "<!")
            if m is not None and m.end() == len(buf) and not eof:
                continue           # its name may go on in the next piece
            if m is None or m.group(1) != b"sst":
                if eof or m is not None or len(buf) > max(_SST_CHUNK, 2**16):
                    return None    # a prefixed or unexpected root: parse it
                continue
            buf = buf[m.end():]
            root = True
        # every tag that starts before the last "<" is complete: count up to there
        cut = len(buf) if eof else buf.rfind(b"<")
        if cut <= 0:
            if eof:
                return None
            continue
        region, buf = buf[:cut], buf[cut:]
        if b"<!" in region or b"<?" in region:
            return None            # a comment or CDATA could hide "<si>" text
        n = region.count(b"<si")
        if n != region.count(b"<si>") + region.count(b"<si/>"):
            return None            # <si ...> with attributes or another tag named si...
        if wanted[k] >= seen + n:
            seen += n
            if eof:
                return None        # an index past the end of the table
            continue
        a = np.frombuffer(region, dtype=np.uint8)
        starts = np.flatnonzero((a[:-2] == 60) & (a[1:-1] == 115) & (a[2:] == 105)) if len(a) > 2 else []
        carry = None
        while k < len(wanted) and wanted[k] < seen + n:
            p = int(starts[wanted[k] - seen])
            if region.startswith(b"<si/>", p):
                out[wanted[k]] = ""
                k += 1
                continue
            e = region.find(b"</si>", p)
            if e < 0:              # the entry runs past this chunk: read on from its start
                if eof:
                    return None
                carry = p
                break
            out[wanted[k]] = "".join(_si_text(ET.fromstring(region[p:e + 5])))
            k += 1
        if carry is not None:
            seen = wanted[k]
            buf = region[carry:] + buf
        else:
            seen += n
            if eof:
                break
    return out if k == len(wanted) else None


def _shared_strings_parsed(zf, wanted: list[int]) -> dict[int, str]:
    """:func:`_shared_strings` by parsing every entry up to the last wanted (any valid table)."""
    import xml.etree.ElementTree as ET

    table: list[str] = []
    last = wanted[-1]
    parser = ET.XMLPullParser(("end",))
    with zf.open("xl/sharedStrings.xml") as part:
        while len(table) <= last:
            chunk = part.read(65536)
            if not chunk:
                break
            parser.feed(chunk)
            for _, el in parser.read_events():
                if _local(el.tag) == "si":
                    table.append("".join(_si_text(el)))
                    el.clear()
    return {i: table[i] for i in wanted if i < len(table)}


def _si_text(si) -> list[str]:
    """Text runs of one shared string (plain or rich text; phonetic hints left out)."""
    parts = []
    for child in si:
        tag = _local(child.tag)
        if tag == "t":
            parts.append(child.text or "")
        elif tag == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return parts


def xlsx_heads(data: bytes, sheets: list[str], n: int) -> dict[str, list[list] | None]:
    """The first ``n`` rows of several xlsx sheets as Python values (text, float, bool; ``''``
    blank), with one pass over the shared-string table.

    Streams each sheet's XML and only as much of the shared-string table as those rows use, so
    it costs milliseconds on a sheet of a million rows. The table is shared by every sheet and
    written in the order strings first appear, so a later sheet's header sits deep in it (2.8M
    entries in a 1M-account workbook); one counted pass (:func:`_shared_strings`) serves all
    the sheets.

    Parameters
    ----------
    data : bytes
        The whole workbook file.
    sheets : list of str
        Names of the sheets wanted.
    n : int
        Rows wanted per sheet.

    Returns
    -------
    dict of str to list of rows or None
        Per sheet, its top rows (cell ``[i][j]`` is Excel row ``i + 1``, column ``j`` counted
        from A), or ``None`` when the file is not an xlsx this can stream (the caller then
        reads the rows another way).
    """
    import zipfile

    out: dict[str, list[list] | None] = {s: None for s in sheets}
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        parts = {s: _head_cells(zf, s, n) for s in sheets}
        wanted = {k for p in parts.values() if p is not None for k in p[1].values()}
        table = _shared_strings(zf, wanted) if wanted else {}
    except Exception:                               # anything unexpected: the full reader decides
        return out
    for s, p in parts.items():
        if p is None:
            continue
        cells, shared = p
        if shared and (table is None or any(k not in table for k in shared.values())):
            continue                                # a damaged index: the full reader reports it
        for key, k in shared.items():
            cells[key] = table.get(k, "")
        if not cells:
            out[s] = []
            continue
        height = max(i for i, _ in cells) + 1
        width = max(j for _, j in cells) + 1
        rows = [[""] * width for _ in range(height)]
        for (i, j), v in cells.items():
            rows[i][j] = v
        out[s] = rows
    return out


def _head_cells(zf, sheet: str, n: int) -> tuple[dict, dict] | None:
    """The cells of a sheet's first ``n`` rows: ({(row, col) -> value}, {(row, col) -> shared
    string index}), or ``None`` when the sheet cannot be streamed."""
    import xml.etree.ElementTree as ET

    try:
        path = _sheet_part(zf, sheet)
        if path is None or path not in zf.namelist():
            return None
        cells: dict[tuple[int, int], object] = {}
        shared: dict[tuple[int, int], int] = {}
        parser = ET.XMLPullParser(("end",))
        done = False
        with zf.open(path) as part:
            while not done:
                chunk = part.read(65536)
                if not chunk:
                    break
                if part.tell() > _HEAD_XML_BYTES:
                    return None                     # no row end in megabytes of XML: not a plain sheet
                parser.feed(chunk)
                for _, el in parser.read_events():
                    tag = _local(el.tag)
                    if tag == "c":
                        ref = el.get("r")
                        if ref is None:
                            return None             # cells without references: let the full reader place them
                        i, j = _cell_index(ref)
                        if j >= _HEAD_COLUMNS:
                            return None             # far to the right: the full reader (after its scan) decides
                        if i >= n:
                            done = True
                            break
                        t = el.get("t", "n")
                        v = next((c.text for c in el if _local(c.tag) == "v"), None)
                        if t == "s" and v is not None:
                            shared[(i, j)] = int(v)
                        elif t == "inlineStr":
                            cells[(i, j)] = "".join(x.text or "" for x in el.iter() if _local(x.tag) == "t")
                        elif t == "b" and v is not None:
                            cells[(i, j)] = v.strip() == "1"
                        elif t in ("str", "e", "d") and v is not None:
                            cells[(i, j)] = v
                        elif v is not None:
                            cells[(i, j)] = float(v)
                        el.clear()
                    elif tag == "row":
                        r = el.get("r")
                        if r is not None and int(r) >= n:
                            done = True
                            break
                        el.clear()
    except Exception:
        return None
    return cells, shared


# --------------------------------------------------------------------------------------------
# the used range of an xlsx sheet, checked before fastexcel allocates it

_SCAN_CHUNK = 4 * 2**20           # bytes of sheet XML searched at a time
_CELL_MAX = 2**20                 # a cell's XML is far smaller (Excel: 32,767 characters of text)
_FORMULA_CELLS = 1000             # formula cells with no saved value listed per sheet (the rest counted)
_WS = "[ \t\r\n]"
_PFX = "(?:[A-Za-z_][-.0-9A-Za-z_]*:)?"      # a namespace prefix (<x:c ...>), as calamine allows
_C = f"<{_PFX}c{_WS}+"                       # a cell's start tag, up to its first attribute
_REF = f'{_C}r="[A-Z]+[0-9]+"'               # ... when that attribute is its reference
_OPEN = "(?:[^>]*[^/>])?>"                   # the rest of a start tag that is not self-closing
# the attributes after r="..." when they do not hold t="str" (a formula whose saved value is the
# empty text writes <v></v> with t="str"; any other formula with an empty or no <v> has no value)
_NO_STR = '(?:[^>t]|t(?:[^=>]|=(?:[^">]|"(?:[^s>]|s(?:[^t>]|t(?:[^r>]|r[^">]))))))*'
_FORMULA = (f"{_REF}{_NO_STR}>{_WS}*<{_PFX}f(?:{_WS}[^>]*)?(?:/>|>[^<]*</{_PFX}f>){_WS}*"
            f"(?:</{_PFX}c>|<{_PFX}v{_WS}*/>|<{_PFX}v>{_WS}*</{_PFX}v>)")


def _gt_number(n: int) -> str:
    """A regular expression (Python ``re`` and RE2 alike) for a decimal number above ``n >= 0``
    written without leading zeros; the caller anchors its end."""
    s = str(n)
    alts = [f"[1-9][0-9]{{{len(s)},}}"]
    for i, d in enumerate(s):
        if d != "9":
            rest = len(s) - i - 1
            alts.append(s[:i] + f"[{int(d) + 1}-9]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return "(?:" + "|".join(alts) + ")"


def _gt_letters(m: int) -> str:
    """A regular expression for the column letters of a column beyond the ``m``-th (``m >= 0``):
    letters compare by length, then alphabetically (Z < AA)."""
    if m <= 0:
        return "[A-Z]+"
    s = column_letters(m - 1)
    alts = [f"[A-Z]{{{len(s) + 1},}}"]
    for i, c in enumerate(s):
        if c != "Z":
            rest = len(s) - i - 1
            alts.append(s[:i] + f"[{chr(ord(c) + 1)}-Z]" + (f"[A-Z]{{{rest}}}" if rest else ""))
    return "(?:" + "|".join(alts) + ")"


def _scan_pattern(cols: int, rows: int, formulas: bool) -> str:
    """What the scan looks for, as named alternatives: a cell holding something beyond column
    ``cols`` or row ``rows``; a shared-string index that is not a plain number (calamine would
    read entry 0 for ``-1``, ``1.0`` or ``abc``: another cell's text); a cell the scan cannot
    place (no ``r`` as its first attribute, a reference in another form, single quotes: the exact
    scan decides); and, while fewer than ``_FORMULA_CELLS`` were listed, a formula cell with no
    saved value."""
    alts = [
        f'(?P<col>{_C}r="{_gt_letters(cols)}[0-9]+"{_OPEN})',
        f'(?P<row>{_C}r="[A-Z]+{_gt_number(rows)}"{_OPEN})',
        f'(?P<sst>{_REF}[^>]*{_WS}t="s"[^>]*>{_WS}*<{_PFX}v>(?:[^0-9]|[0-9]+[^0-9<]))',
        f'(?P<odd><{_PFX}c(?:[>/]|{_WS}+(?:[^r \t\r\n]|r[^=]|r=[^"]))'
        f'|{_C}r="(?:[^A-Z]|[A-Z]+(?:[^A-Z0-9]|0)|[A-Z]+[1-9][0-9]*[^0-9"])|{_C}r="[^"]*"[^>]*\')',
    ]
    if formulas:
        alts.append(f"(?P<f>{_FORMULA})")
    return "|".join(alts)


@dataclass
class SheetScan:
    """What the scan of one xlsx sheet found (it raised for a sheet it refuses).

    ``columns`` and ``rows``: the used range from A1 (the farthest column, the last row);
    ``formulas``: the first formula cells with no saved value, as (row index, column index,
    formula text), and ``formula_count`` all of them."""

    columns: int = 0
    rows: int = 0
    formulas: list = field(default_factory=list)
    formula_count: int = 0


def _ref_at(buf: bytes, p: int) -> tuple[str, int, int]:
    """The reference of the cell whose start tag begins at ``buf[p]``: (text, row index, column index)."""
    a = buf.index(b'r="', p) + 3
    ref = bytes(buf[a:buf.index(b'"', a)]).decode("ascii", "replace")
    i, j = _cell_index(ref)
    return ref, i, j


def _last_row(buf: bytes, end: int) -> int:
    """The row number of the last ``r="..."`` (a cell's or a row's) in ``buf[:end]``; 0 when none."""
    p = buf.rfind(b' r="', max(0, end - _CELL_MAX), end)
    m = re.match(rb' r="[A-Z]*([0-9]{1,9})"', buf[p:p + 30]) if p >= 0 else None
    return int(m.group(1)) if m else 0


def _refuse_range(sheet: str, ref: str, columns: int, rows: int) -> ExtractError:
    """``used_range``: cell ``ref`` takes the sheet's used range to ``columns`` x ``rows`` (from A1)."""
    from data.guards import MAX_SHEET_CELLS, MAX_SHEET_COLUMNS, MAX_SHEET_ROWS

    i, j = _cell_index(ref)
    return ExtractError(Report([Issue("used_range", sheet=sheet, row=i + 1, column=column_letters(j), value=ref,
                                      params={"columns": f"{columns:,}", "rows": f"{rows:,}",
                                              "max_columns": f"{MAX_SHEET_COLUMNS:,}",
                                              "max_rows": f"{MAX_SHEET_ROWS:,}", "max_cells": f"{MAX_SHEET_CELLS:,}"})]))


def _refuse_padding(sheet: str) -> ExtractError:
    """``xml_padding``: megabytes of sheet XML without a tag. A cell holds at most 32,767
    characters, so no spreadsheet program writes this; it is padding (a zip bomb's way to make
    a reader inflate hundreds of megabytes), refused at the first such stretch."""
    return ExtractError(Report([Issue("xml_padding", sheet=sheet, params={"size": _SCAN_CHUNK // 2**20})]))


def _refuse_string(sheet: str, ref: str, index: str, size: int | None = None) -> ExtractError:
    """``shared_string``: the cell ``ref`` refers to shared text ``index``, which is not a number
    (``size`` None), or ``shared_string_past``: not below ``size``, the table's entries."""
    i, j = _cell_index(ref)
    params = {"index": index[:20] or "(empty)"} if size is None else {"index": index, "size": f"{size:,}"}
    return ExtractError(Report([Issue("shared_string" if size is None else "shared_string_past", sheet=sheet,
                                      row=i + 1, column=column_letters(j), value=ref, params=params)]))


def _row_bound(columns: int) -> int:
    """The last row allowed when the sheet reaches ``columns`` columns."""
    from data.guards import MAX_SHEET_CELLS, MAX_SHEET_ROWS

    return min(MAX_SHEET_ROWS, MAX_SHEET_CELLS // max(columns, 1))


def _formula_text(buf: bytes, m) -> str:
    """The formula of a matched formula cell, as ``=...`` (60 characters at most)."""
    import html

    body = bytes(buf[m.start():m.end()])
    f = re.search(rb"<(?:[A-Za-z_][-.\w]*:)?f\b[^>]*?(/?)>", body)
    text = "" if f.group(1) else html.unescape(body[f.end():body.find(b"<", f.end())].decode("utf-8", "replace"))
    return ("=" + text)[:60] if text else "(shared formula)"


def _inflated(data: bytes, zf, part: str):
    """A workbook part's decompressed bytes in pieces of about ``_SCAN_CHUNK``. The part is
    inflated straight from ``data`` (the whole file, in memory) with no CRC (fastexcel checks
    it; the CRC costs as much again as the inflating); through ``zipfile`` when the part is not
    plainly stored or deflated."""
    import struct
    import zipfile
    import zlib

    info = zf.getinfo(part)
    h = info.header_offset
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1 \
            or data[h:h + 4] != b"PK\x03\x04":
        with zf.open(part) as fh:
            while chunk := fh.read(_SCAN_CHUNK):
                yield chunk
        return
    n, m = struct.unpack_from("<HH", data, h + 26)
    raw = memoryview(data)[h + 30 + n + m:h + 30 + n + m + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        for i in range(0, len(raw), _SCAN_CHUNK):
            yield bytes(raw[i:i + _SCAN_CHUNK])
        return
    d = zlib.decompressobj(-15)
    parts, size = [], 0
    for i in range(0, len(raw), 2**18):
        piece = raw[i:i + 2**18]
        while piece:
            out = d.decompress(piece, _SCAN_CHUNK)
            piece = d.unconsumed_tail
            parts.append(out)
            size += len(out)
            if size >= _SCAN_CHUNK:
                yield b"".join(parts)
                parts, size = [], 0
        if d.eof:
            break
    parts.append(d.flush())
    if any(parts):
        yield b"".join(parts)


def _pieces(data: bytes, zf, part: str):
    """A sheet part's decompressed XML as ``(buffer, end)`` pieces of about ``_SCAN_CHUNK`` bytes:
    ``buffer[:end]`` is searched and the rest goes in front of the next piece. The cut is before
    the last cell's start tag within the last ``_CELL_MAX`` bytes (so a cell is seen whole), else
    before the last tag still open, else at the end: what is carried stays small whatever the
    XML (a sheet of blanks included)."""
    carry = b""
    for chunk in _inflated(data, zf, part):
        buf = carry + chunk if carry else chunk
        lo = max(0, len(buf) - _CELL_MAX)
        cell = max(buf.rfind(b"<c ", lo), buf.rfind(b"<c>", lo))
        colon = buf.rfind(b":c ", lo)               # a prefixed cell, <x:c r="A1">
        if colon > 0:
            cell = max(cell, buf.rfind(b"<", lo, colon))
        lt = buf.rfind(b"<")
        end = len(buf)
        if cell > 0:
            end = cell
        elif lt > 0 and buf.find(b">", lt) < 0:
            end = lt
        carry = buf[end:]
        yield buf, end
    if carry:
        yield carry, len(carry)


def _arrow_blob(buf: bytes, start: int, end: int) -> pa.Array:
    """``buf[start:end]`` as a one-element Arrow binary array (no copy)."""
    offsets = pa.array([start, end], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(buf)])


def _re2_finds(buf: bytes, start: int, end: int, pattern: str) -> bool:
    """Whether RE2 finds ``pattern`` in ``buf[start:end]`` (C speed, the GIL released)."""
    import pyarrow.compute as pc

    return bool(pc.match_substring_regex(_arrow_blob(buf, start, end), pattern=pattern)[0].as_py())


def _re2_count(buf: bytes, start: int, end: int, pattern: str) -> int:
    """How many times RE2 finds ``pattern`` in ``buf[start:end]`` (matches do not overlap)."""
    import pyarrow.compute as pc

    return pc.count_substring_regex(_arrow_blob(buf, start, end), pattern=pattern)[0].as_py()


_COMPILED: dict[str, re.Pattern] = {}


def _rx(pattern: str) -> re.Pattern:
    got = _COMPILED.get(pattern)
    if got is None:
        got = _COMPILED[pattern] = re.compile(pattern.encode())
    return got


def scan_xlsx_sheet(data: bytes, zf, part: str, sheet: str) -> SheetScan:
    """Check one xlsx sheet's XML before a reader allocates its used range.

    calamine (behind fastexcel) allocates a sheet's whole used range, ~32 bytes a cell, whatever
    columns are asked for: one value at XFD1048576 beside A1 is 17 billion cells (the process
    aborts). So every cell that holds something is compared with ``MAX_SHEET_COLUMNS`` and with
    the row bound ``min(MAX_SHEET_ROWS, MAX_SHEET_CELLS // columns)`` of :mod:`data.guards`; the
    ``<dimension>`` tag is not read (it may lie either way). Shared-string indices must be plain
    numbers, and formula cells with no saved value are collected.

    The search runs in C (RE2 through pyarrow, no Python object per cell) over 4 MB pieces of
    the decompressed XML; Python looks only where it finds something (the header row, which
    sets the farthest column, and anything refused). About 1.2 s of CPU for a 1M-row, 13-column
    sheet (300 MB of XML): half of it inflating (zlib, no CRC), half RE2 (~500 MB/s). It runs
    in a background thread started when the workbook is opened (:meth:`_Heads.prefetch`), while
    the top rows and shared strings are read, so the first load seldom waits for it. A sheet
    with cells the search cannot place (cells without a reference) is read by
    :func:`_scan_exact` (expat) instead; 4 MB of XML without a tag (padding) is refused at once.

    Parameters
    ----------
    data : bytes
        The workbook file.
    zf : zipfile.ZipFile
        The same, opened.
    part : str
        The sheet's part name (``xl/worksheets/sheet1.xml``).
    sheet : str
        The sheet's name, for messages.

    Returns
    -------
    SheetScan

    Raises
    ------
    ExtractError
        ``used_range`` for a sheet beyond the bounds, ``shared_string`` for an index that is
        not a plain number (both name the sheet and the cell), ``xml_padding`` for padding.
    """
    from data.guards import MAX_SHEET_COLUMNS

    out = SheetScan()
    cols = 0                        # farthest column so far (count from A)
    top = 0                         # last row seen (for messages; the bound is the row pattern's)
    rows = _row_bound(0)            # row bound in force
    loose = False                   # an earlier piece was searched under a looser row bound
    pos = last_tag = 0              # where the piece starts, and the last "<" so far, in the whole XML
    for k, (buf, end) in enumerate(_pieces(data, zf, part)):
        first = buf.find(b"<", 0, end)
        if (end if first < 0 else first) + pos - last_tag >= _SCAN_CHUNK:
            raise _refuse_padding(sheet)
        if first >= 0:
            last_tag = pos + buf.rfind(b"<", 0, end)
        pos += end
        top = max(top, _last_row(buf, end))
        start = 0
        counted = None              # where formula cells past the listed ones are counted from
        while True:
            pat = _scan_pattern(cols, rows, out.formula_count < _FORMULA_CELLS)
            if not _re2_finds(buf, start, end, pat):
                break
            m = _rx(pat).search(memoryview(buf)[:end], start)
            if m is None:           # RE2 and re read these patterns alike; never loop on a disagreement
                break
            kind = m.lastgroup
            if kind == "odd":
                return _scan_exact(data, zf, part, sheet)
            ref, i, j = _ref_at(buf, m.start())
            if kind == "col":
                cols = j + 1
                if cols > MAX_SHEET_COLUMNS:
                    raise _refuse_range(sheet, ref, cols, max(top, i + 1))
                if _row_bound(cols) < rows:
                    rows = _row_bound(cols)
                    loose = loose or k > 0
                    start = 0       # this piece again under the tighter row bound
                else:
                    start = m.start()   # the same cell again, for the other checks
            elif kind == "row":
                raise _refuse_range(sheet, ref, max(cols, j + 1), max(top, i + 1))
            elif kind == "sst":
                v = bytes(buf[m.start():m.end() + 20])
                v = v[re.search(rb"<(?:[A-Za-z_][-.\w]*:)?v>", v).end():]
                raise _refuse_string(sheet, ref, v.split(b"<")[0].decode("utf-8", "replace").strip())
            else:                   # a formula cell with no saved value
                out.formulas.append((i, j, _formula_text(buf, m)))
                out.formula_count += 1
                start = m.end()
                if out.formula_count == _FORMULA_CELLS:
                    counted = start
        if out.formula_count >= _FORMULA_CELLS:       # past the listed ones: only counted
            out.formula_count += _re2_count(buf, 0 if counted is None else counted, end, _FORMULA)
    if loose:                       # pieces searched before the farthest column was known: their rows again
        pat = f'{_C}r="[A-Z]+{_gt_number(rows)}"{_OPEN}'
        for buf, end in _pieces(data, zf, part):
            if _re2_finds(buf, 0, end, pat):
                ref, i, _ = _ref_at(buf, _rx(pat).search(memoryview(buf)[:end]).start())
                raise _refuse_range(sheet, ref, cols, max(top, i + 1))
    out.columns, out.rows = cols, top
    return out


def _scan_exact(data: bytes, zf, part: str, sheet: str) -> SheetScan:
    """:func:`scan_xlsx_sheet` for any sheet XML, read with expat (slow: ~1 µs per element): a
    cell without a reference goes after the previous one and a row without one after the
    previous row, as calamine places them; a cell counts when it holds a value or inline text."""
    import xml.parsers.expat

    from data.guards import MAX_SHEET_CELLS, MAX_SHEET_COLUMNS, MAX_SHEET_ROWS

    out = SheetScan()
    st = {"row": -1, "col": -1, "cell": None, "text": None}
    far = [0, 0]                    # columns, rows

    def start(name, attrs):
        tag = _local(name)
        if tag == "row":
            r = attrs.get("r", "").strip()
            st["row"] = int(r) - 1 if r.isdigit() and len(r) < 12 else st["row"] + 1
            st["col"] = -1
        elif tag == "c":
            m = re.fullmatch(r"([A-Za-z]{1,7})([0-9]{1,12})", attrs.get("r", "").strip())
            i, j = _cell_index(m.group(0)) if m else (max(st["row"], 0), st["col"] + 1)
            st["row"], st["col"] = i, j
            st["cell"] = {"i": i, "j": j, "t": attrs.get("t", "n"), "v": None, "f": None, "is": False}
        elif st["cell"] is not None and tag in ("v", "f"):
            st["cell"][tag] = ""
            st["text"] = tag
        elif st["cell"] is not None and tag == "is":
            st["cell"]["is"] = True

    def text(data):
        if st["text"] is not None and st["cell"] is not None:
            st["cell"][st["text"]] += data

    def end(name):
        tag = _local(name)
        if tag in ("v", "f"):
            st["text"] = None
        elif tag == "c" and st["cell"] is not None:
            c, st["cell"] = st["cell"], None
            i, j, v = c["i"], c["j"], c["v"]
            ref = column_letters(min(j, 10**6)) + str(i + 1)
            if c["is"] or (v is not None and (v.strip() or c["t"] in ("str", "inlineStr"))):
                far[0], far[1] = max(far[0], j + 1), max(far[1], i + 1)
                if far[0] > MAX_SHEET_COLUMNS or far[1] > MAX_SHEET_ROWS or far[0] * far[1] > MAX_SHEET_CELLS:
                    raise _refuse_range(sheet, ref, far[0], far[1])
            if c["t"] == "s" and v is not None and not v.strip().isdigit():
                raise _refuse_string(sheet, ref, v.strip())
            if c["f"] is not None and (v is None or (not v.strip() and c["t"] != "str")):
                if out.formula_count < _FORMULA_CELLS:
                    out.formulas.append((i, j, ("=" + c["f"])[:60] if c["f"] else "(shared formula)"))
                out.formula_count += 1

    p = xml.parsers.expat.ParserCreate(namespace_separator="}")
    p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = start, end, text
    try:
        for chunk in _inflated(data, zf, part):
            if len(chunk) >= _SCAN_CHUNK and b"<" not in chunk:
                raise _refuse_padding(sheet)
            p.Parse(chunk, False)
        p.Parse(b"", True)
    except xml.parsers.expat.ExpatError as e:
        raise ExtractError(Report([Issue("file_unreadable", sheet=sheet, params={
            "expected": "a workbook", "detail": f"damaged sheet XML ({e})"})])) from None
    out.columns, out.rows = far
    return out


def find_past_string(data: bytes, zf, part: str, sheet: str) -> ExtractError | None:
    """After calamine refused a sheet for a shared-string index past the table's end: the first
    such cell, as the ``shared_string_past`` error to report (None when not found). An error
    path: the table's entries are counted and the sheet searched in Python."""
    size = 0
    if "xl/sharedStrings.xml" in zf.namelist():
        table = zf.read("xl/sharedStrings.xml")
        size = _re2_count(table, 0, len(table), f"<{_PFX}si[ \t\r\n/>]")
        del table
    bad = "[0-9]+" if size <= 0 else "0*" + _gt_number(size - 1)
    rx = _rx(f'{_REF}[^>]*{_WS}t="s"[^>]*>{_WS}*<{_PFX}v>{_WS}*({bad}){_WS}*<')
    for buf, end in _pieces(data, zf, part):
        m = rx.search(memoryview(buf)[:end])
        if m is not None:
            return _refuse_string(sheet, _ref_at(buf, m.start())[0], str(int(m.group(1))), size)
    return None


def sheet_states(data: bytes) -> dict[str, str | None] | None:
    """{sheet name -> ``hidden``, ``veryHidden`` or None (visible)} of an xlsx workbook, in its
    order; None when the file is not an xlsx."""
    import xml.etree.ElementTree as ET
    import zipfile

    try:
        wb = ET.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml"))
    except Exception:
        return None
    return {s.get("name"): (s.get("state") if s.get("state") in ("hidden", "veryHidden") else None)
            for s in wb.iter() if _local(s.tag) == "sheet" and s.get("name") is not None}
