"""Safety checks run on an uploaded workbook's bytes before any parser sees them.

An xlsx is a zip of XML parts. A hostile one can claim gigabytes of uncompressed XML (a zip
bomb) or define nested XML entities (billion laughs). These checks read only the zip's central
directory and the first bytes of each XML part, so they cost milliseconds and bounded memory.
"""

from __future__ import annotations

import io
import re
import zipfile

from data.report import ExtractError

__all__ = ["MAX_UPLOAD_BYTES", "MAX_LOCAL_BYTES", "MAX_UNCOMPRESSED_BYTES", "MAX_ENTRIES", "MAX_RATIO",
           "MAX_SHEET_COLUMNS", "MAX_SHEET_ROWS", "MAX_SHEET_CELLS", "check_workbook_bytes"]

# bytes per file; matches server.maxUploadSize (MB) in .streamlit/config.toml. Sized for a bank:
# the 5M-account CSV set's accounts.csv is 433 MB (1M accounts: 87 MB); a 1M-account workbook
# is ~65 MB zipped. Every file is still checked (encoding, zip guards) before a parser runs.
MAX_UPLOAD_BYTES = 1024 * 2**20
# bytes per CSV file read from the local disk by the command line (data.readers.read_input): a
# bank's own extract, not an upload, so the upload limit does not apply. A 20M-account
# accounts.csv is ~1.7 GB; a UTF-8 file is checked in 64 MB pieces and parsed from the disk
# (never held whole in memory), a GB18030 one is transcoded in memory. Workbooks read from
# the disk keep MAX_UPLOAD_BYTES and every zip and XML guard below.
MAX_LOCAL_BYTES = 16 * 2**30
# bytes of XML in all parts together. A 1M-account workbook (accounts sheet of 1M rows x 13
# columns, the most Excel's 1,048,576 rows allow, plus customers and assignments) is ~490 MiB;
# reading 744 MiB of hostile XML (tests/test_hostile.py) stays under 1 GB and 10 s with the
# streamed header look-up and fastexcel. Larger extracts belong in CSV files.
MAX_UNCOMPRESSED_BYTES = 768 * 2**20
MAX_ENTRIES = 10_000                    # zip entries
MAX_RATIO = 100                         # uncompressed / compressed, per entry larger than 1 MB
# The used range of one xlsx sheet (from A1 to the farthest cell that holds something). fastexcel
# (calamine) allocates a sheet's whole used range, ~32 bytes a cell, before any column is chosen,
# so one value typed at XFD1048576 asks for 17 billion cells (the process aborts) and one at
# CV1048576 for 3.5 GB. data.readers checks every sheet's cell references against these bounds
# before the reader sees the sheet (the <dimension> tag is not trusted: it may lie either way).
MAX_SHEET_COLUMNS = 200                 # the template's widest sheet (accounts) has 13 columns
MAX_SHEET_ROWS = 1_048_576              # Excel's own sheet height (data.export.MAX_ROWS)
MAX_SHEET_CELLS = 2**25                 # 33.5M cells (~1.1 GB in the reader): 32 columns at Excel's full
                                        # height; a 1M-account accounts sheet is 13.6M (13 columns)
MAX_PROLOG = 1 * 2**20                  # bytes of XML before the root element (declarations, comments)
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_]")


def _refuse(name: str, detail: str) -> ExtractError:
    return ExtractError.of("file_unsafe", sheet=name, detail=detail)


# directory names (UTF-16, NUL-terminated) of the streams of an encrypted Office document
_ENCRYPTED_STREAMS = tuple(n.encode("utf-16-le") + b"\x00\x00" for n in ("EncryptedPackage", "EncryptionInfo"))


def _encrypted(data: bytes) -> bool:
    """Whether a compound file (OLE2) is an encrypted Office document: Excel and WPS encrypt an
    xlsx with a password to open into a compound file whose directory names the streams
    ``EncryptionInfo`` and ``EncryptedPackage``. A directory entry starts on a 128-byte boundary
    with its UTF-16 name, so text that merely contains the words elsewhere does not count."""
    for name in _ENCRYPTED_STREAMS:
        p = data.find(name)
        while p >= 0:
            if p % 128 == 0:
                return True
            p = data.find(name, p + 1)
    return False


def check_workbook_bytes(name: str, data: bytes, kind: str) -> None:
    """Refuse a workbook that is a zip bomb, declares XML entities, is encrypted or is not a
    workbook this reads (.ods and .xlsb are refused, saying to save the file as .xlsx).

    Parameters
    ----------
    name : str
        File name, for the message.
    data : bytes
        The whole file.
    kind : str
        ``zip`` or ``ole`` as found by :func:`data.readers.sniff_kind`.

    Raises
    ------
    ExtractError
        With a one-issue report saying which limit was broken (``file_unsafe``), that the file
        is encrypted (``file_encrypted``) or which format it is (``file_type``).
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise _refuse(name, f"{len(data) / 2**20:.0f} MB, above the {MAX_UPLOAD_BYTES / 2**20:.0f} MB limit")
    if kind == "ole":
        if _encrypted(data):
            raise ExtractError.of("file_encrypted", sheet=name)
        return
    if kind != "zip":
        return
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ExtractError.of("file_unreadable", sheet=name, expected="a workbook", detail=f"damaged zip ({e})") from None
    if len(infos) > MAX_ENTRIES:
        raise _refuse(name, f"{len(infos)} parts inside the zip, above {MAX_ENTRIES}")
    names = {i.filename for i in infos}
    if "[Content_Types].xml" not in names:
        if "mimetype" in names and zf.getinfo("mimetype").file_size < 200 and \
                zf.read("mimetype").startswith(b"application/vnd.oasis.opendocument"):
            # not read on purpose: an .ods repeats cells by attribute (number-columns-repeated), so
            # a few bytes can stand for millions of cells, and no bound here could see them
            raise ExtractError.of("file_type", sheet=name, detail="an OpenDocument file (.ods), which is not read; "
                                                                  "save it as .xlsx (LibreOffice or WPS: Save As)")
        raise ExtractError.of("file_type", sheet=name, detail="a zip file that is not an Office workbook")
    if "xl/workbook.bin" in names:      # not read: its used range cannot be bounded before calamine
        raise ExtractError.of("file_type", sheet=name, detail="a binary workbook (.xlsb), which is not read; "
                                                              "save it as .xlsx (Excel or WPS: Save As)")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise _refuse(name, f"{total / 2**30:.1f} GB uncompressed, above {MAX_UNCOMPRESSED_BYTES / 2**30:.0f} GB")
    for info in infos:
        if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise _refuse(name, f"part {info.filename} expands {info.file_size / max(info.compress_size, 1):.0f}x, "
                                f"above {MAX_RATIO}x (zip bomb)")
        if info.filename.lower().endswith((".xml", ".rels")):
            _check_prolog(name, zf, info)


def _check_prolog(name: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse a DOCTYPE or ENTITY anywhere before the root element (however long the comments)."""
    seen = b""
    with zf.open(info) as part:
        while True:
            chunk = part.read(65536)
            if not chunk:
                return
            seen = seen[-16:] + chunk
            root = _ROOT_START.search(seen)
            prolog = seen[:root.start()] if root else seen
            if _DOCTYPE.search(prolog):
                raise _refuse(name, f"part {info.filename} declares a DOCTYPE or XML entities")
            if root:
                return
            if part.tell() > MAX_PROLOG:
                raise _refuse(name, f"part {info.filename} has more than {MAX_PROLOG // 2**20} MB before its root element")


def check_xml_safety() -> None:
    """Fail at start when the XML defences are missing.

    openpyxl (used for templates and in tests) parses workbook XML with the standard library
    unless defusedxml is installed; fastexcel (calamine) does not expand entities, the streamed
    header look-up (:func:`data.readers.xlsx_heads`) reads at most a few MB with expat, and
    :func:`check_workbook_bytes` refuses any DOCTYPE before a parser runs.

    openpyxl is not imported for the check when the process has not loaded it (the command line
    never parses XML with it, and the import costs 0.15-0.35 s): it would use defusedxml exactly
    when defusedxml is importable and ``OPENPYXL_DEFUSEDXML`` is unset or ``True``, which is how
    ``openpyxl.xml`` decides.

    Raises
    ------
    RuntimeError
        When defusedxml is not importable or openpyxl does not (or would not) use it.
    """
    import os
    import sys

    try:
        import defusedxml  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"defusedxml is required to read workbooks safely: {e}") from None
    if "openpyxl" in sys.modules:
        from openpyxl.xml import DEFUSEDXML
    else:
        DEFUSEDXML = os.environ.get("OPENPYXL_DEFUSEDXML", "True") == "True"
    if not DEFUSEDXML:
        raise RuntimeError("openpyxl is not using defusedxml; reinstall requirements.txt")
