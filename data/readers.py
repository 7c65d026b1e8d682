"""Read an uploaded extract into raw sheets: a workbook, one CSV, or a folder of CSVs.

Readers do not interpret headers or values. A :class:`RawSheet` gives the top rows as Python
values (to find the header) and then the body as whole columns (Arrow arrays), with the row
numbers Excel shows, so that validation (:mod:`data.ingest`) can point at the exact cell without
holding every cell as a Python object.

- CSV: the bytes are checked as strict UTF-8 (with or without BOM) and else transcoded from
  GB18030; the body is parsed by polars' multi-threaded reader with every cell kept as text
  (blank lines, short and long rows, quoted separators and line breaks as ``csv.reader`` reads them).
- Workbooks (xlsx, xlsm, xlsb, xls, ods) are read with fastexcel (Rust calamine into Arrow;
  measured 1M rows in ~5 s against ~14 s for python-calamine, MEASURED.md), the header found
  first from the streamed top rows so that the sheet is parsed once. When every read column
  holds one cell type (numbers, text, booleans, dates) the types are kept (a numeric id gets its
  warning); when a column mixes types (``4.5%`` among numbers), the sheet's other columns are
  read as text (booleans and dates as fastexcel writes them: ``true``, ``2026-09-30 00:00:00``)
  while its id columns stay typed, so a numeric id is still warned; an id column that itself
  mixes numbers and text is read as text and its first number cell found in the sheet's XML
  (xlsx only: an xls, xlsb or ods id column mixing both gives no warning).
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
    clean = [None if (v is None or v == "") else v for v in values]
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
    if b"\x00" in sample and not (sample.startswith(b"\xff\xfe") or sample.startswith(b"\xfe\xff")):
        return "binary"
    return "text"


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
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf_err:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise ValueError(f"byte {utf_err.start}: {data[utf_err.start:utf_err.start + 4]!r}") from None


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
    try:
        utf8, enc = to_utf8(data)
    except ValueError as e:
        raise ExtractError.of("encoding", sheet=name, detail=str(e)) from None
    head = utf8[:_HEAD_BYTES].decode("utf-8", errors="ignore").removeprefix("\ufeff")
    stem = Path(name).stem if name else "sheet"
    backend = _Csv(utf8, _delimiter(head), path, utf8_file=utf8 is data)
    return RawSheet(name=stem, backend=backend, source=name, encoding=enc)


def _read_workbook(data: bytes, name: str) -> RawBook:
    import fastexcel

    try:
        reader = fastexcel.read_excel(data)
        book = RawBook(kind="workbook")
        heads = _Heads(data, reader.sheet_names)
        for sheet_name in reader.sheet_names:
            book.sheets.append(RawSheet(name=sheet_name, backend=_Workbook(reader, sheet_name, data, heads),
                                        source=name))
        return book
    except Exception as e:  # calamine raises several error types for broken files
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
    """Read a workbook file, one CSV file, or a folder of CSV files.

    Parameters
    ----------
    path : str or path-like
        A file (any name; the content decides) or a folder whose ``*.csv`` files are the sheets.

    Raises
    ------
    ExtractError
        When the path is missing or a file cannot be read.
    """
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
        if shared and table is None:
            continue
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
