"""Read an uploaded extract into raw sheets: a workbook, one CSV, or a folder of CSVs.

Readers do not interpret headers or values; they return every cell as Python values with the
row numbers Excel shows, so that validation (:mod:`data.ingest`) can point at the exact cell.
Workbooks are read with python-calamine (measured ~5x faster than openpyxl, MEASURED.md).
The file type is decided by content, never by the file name.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from data.report import ExtractError

__all__ = ["RawSheet", "RawBook", "read_input", "read_bytes", "sniff_kind", "decode_text"]

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class RawSheet:
    """One sheet as read: ``rows[i]`` is Excel row ``i + 1``.

    Attributes
    ----------
    name : str
        Sheet name, or the CSV file's name without its extension.
    rows : list of list
        Cell values: ``str``, ``float``, ``int``, ``bool``, ``datetime.date`` or ``''`` for blank.
    source : str
        Where it came from (file name), for messages.
    encoding : str or None
        The text encoding used, for CSV files.
    """

    name: str
    rows: list[list]
    source: str = ""
    encoding: str | None = None


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


def _csv_rows(text: str) -> list[list]:
    sample = text[:20000]
    first = sample.splitlines()[0] if sample else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=counts.get) if max(counts.values()) > 0 else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [list(r) for r in reader]


def read_csv_bytes(name: str, data: bytes) -> RawSheet:
    """Read one CSV file's bytes into a :class:`RawSheet` (all cells text)."""
    kind = sniff_kind(data[:4096])
    if kind == "binary":
        raise ExtractError.of("file_type", sheet=name, detail="binary content, not text")
    try:
        text, enc = decode_text(data)
    except ValueError as e:
        raise ExtractError.of("encoding", sheet=name, detail=str(e)) from None
    stem = Path(name).stem if name else "sheet"
    return RawSheet(name=stem, rows=_csv_rows(text), source=name, encoding=enc)


def _read_workbook(data: bytes, name: str) -> RawBook:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        book = RawBook(kind="workbook")
        for sheet_name in wb.sheet_names:
            sheet = wb.get_sheet_by_name(sheet_name)
            rows = sheet.to_python(skip_empty_area=False)
            book.sheets.append(RawSheet(name=sheet_name, rows=rows, source=name))
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
            data = _read_limited(f)
            sheet = read_csv_bytes(f.name, data)
            book.sheets.append(sheet)
            book.notes.append(f"{f.name}: {sheet.encoding}")
        return book
    if not p.exists():
        raise ExtractError.of("file_unreadable", sheet=str(p), expected="a file or folder", detail="no such file or folder")
    return read_bytes(p.name, _read_limited(p))


def _read_limited(path: Path) -> bytes:
    from data.guards import MAX_UPLOAD_BYTES

    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ExtractError.of("file_too_large", sheet=path.name,
                    detail=f"{size / 2**20:.0f} MB, the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB")
    return path.read_bytes()
