"""Hostile and strange cells (issue 16): crafted workbooks and CSV files, each built here.

Every case ends in a message naming what is wrong and where (sheet, Excel row, column, value
and rule), in Chinese and English, never in a reader's abort, an exception, a gigabyte of
memory or a silently wrong number:

- a value at XFD1048576 or CV1048576 (a stray cell far from the table): refused before any
  reader allocates the used range (the CLI exits 1, not 134 or 3, in bounded memory);
- 1e308, infinity and NaN in number columns; dates such as 9999-12-31, or 2062 typed for 2026
  in the daily balances;
- a formula with no saved value, hidden and very hidden sheets, a damaged shared-string index;
- .ods, .xlsb, a password-protected workbook, UTF-16 and NUL bytes in CSV files;
- names over 200 characters, ids over 64 and text holding NUL, which SQLite would store but
  PostgreSQL would refuse with an SQL error.

The expected values are computed by hand in each test (a bound, the cell reference, the
number of columns and rows).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
import struct
import zipfile
from pathlib import Path

import openpyxl
import pytest

from data.guards import MAX_SHEET_CELLS, MAX_SHEET_COLUMNS
from data.ingest import load_extract, parse_uploads
from data.readers import read_input
from data.report import ExtractError
from data.schema import MAX_AMOUNT, MAX_ID_CHARS, MAX_TEXT_CHARS
from tests.test_hostile import MiB, _xlsxwriter_book, run_cli
from tests.test_ingest import BASE, write_book

# ---------------------------------------------------------------------------------------------
# helpers


def refused(path) -> list:
    """The issues of an extract that must be refused (load_extract raises ExtractError)."""
    with pytest.raises(ExtractError) as e:
        load_extract(path)
    return e.value.report.issues


def issues(path) -> list:
    """Every issue of an extract, refused or not."""
    try:
        return load_extract(path)[1].issues
    except ExtractError as e:
        return e.report.issues


def of_rule(found: list, rule: str) -> list:
    got = [i for i in found if i.rule == rule]
    assert got, f"no {rule!r} issue; got {[i.line() for i in found]}"
    return got


def patch_part(path: Path, part: str, edit) -> Path:
    """Rewrite one part of a zip (``edit(text) -> text``), keeping every other part as it is."""
    src = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == part:
                new = edit(data.decode("utf-8"))
                assert new != data.decode("utf-8"), f"the edit changed nothing in {part}"
                data = new.encode("utf-8")
            zout.writestr(info.filename, data)
    return path


def sheet_part(path: Path, sheet: str) -> str:
    """The part name of a sheet of an openpyxl or XlsxWriter workbook (sheetN.xml in sheet order)."""
    names = openpyxl.load_workbook(path, read_only=True).sheetnames
    return f"xl/worksheets/sheet{names.index(sheet) + 1}.xml"


def book_with(tmp_path, mutate=None, name="book.xlsx") -> Path:
    sheets = copy.deepcopy(BASE)
    if mutate is not None:
        mutate(sheets)
    return write_book(tmp_path / name, sheets)


def cli_refuses(path, *words, limit_s: float = 10, limit_bytes: int = 1024 * MiB) -> str:
    """``cli.py evaluate PATH``: exit 1 (invalid input, not 3 or an abort), the words in the
    message, no traceback, within ``limit_s`` seconds and ``limit_bytes`` of resident memory."""
    code, out, err, wall, peak = run_cli("evaluate", path)
    assert "Traceback" not in out + err and "internal error" not in err.lower(), err
    assert code == 1, f"exit {code}: {err}"
    assert "the extract is invalid" in err, err
    for w in words:
        assert w in err, f"{w!r} not in:\n{err}"
    assert wall < limit_s, f"{wall:.1f} s"
    assert peak < limit_bytes, f"peak RSS {peak / MiB:.0f} MiB"
    return err


# ---------------------------------------------------------------------------------------------
# the used range


@pytest.mark.parametrize("ref, columns", [("XFD1048576", 16_384), ("CV1048576", 100), ("AH1048576", 34)])
def test_a_stray_cell_far_away_is_refused_before_the_reader_allocates_the_range(tmp_path, ref, columns):
    # XFD1048576 made the CLI abort (exit 134, a Rust backtrace); CV1048576 took 4.3 GB.
    # AH is column 34: 34 x 1,048,576 = 35,651,584 cells, above MAX_SHEET_CELLS = 2**25 =
    # 33,554,432 although 34 columns are within MAX_SHEET_COLUMNS = 200.
    assert MAX_SHEET_CELLS == 33_554_432 and MAX_SHEET_COLUMNS == 200
    assert columns * 1_048_576 > MAX_SHEET_CELLS
    path = book_with(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["账户"][ref] = 1
    wb.save(path)
    assert path.stat().st_size < 20_000                        # a small file ...
    err = cli_refuses(path, ref, "账户", f"{columns:,} columns x 1,048,576 rows", "33,554,432",
                      "Ctrl+End")                               # ... refused quickly in bounded memory
    assert "row 1048576" in err and f"column '{ref[:-7]}'" in err    # where: the Excel row and column
    assert "单元格延伸到" in err                                  # and in Chinese
    (issue,) = of_rule(refused(path), "used_range")
    assert (issue.sheet, issue.row, issue.column, issue.value) == ("账户", 1_048_576, ref[:-7], ref)


def test_a_formatted_empty_cell_far_away_is_not_refused(tmp_path):
    # a bold XFD1048576 is a styled cell holding nothing (<c r="XFD1048576" s="1" t="n" />), which no
    # reader counts in the used range: the workbook reads as before
    path = book_with(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["账户"]["XFD1048576"].font = openpyxl.styles.Font(bold=True)
    wb.save(path)
    with zipfile.ZipFile(path) as zf:
        assert re.search(rb'<c r="XFD1048576" s="[0-9]+"[^>]*/>', zf.read(sheet_part(path, "账户")))
    extract, report = load_extract(path)
    assert report.ok and list(extract["accounts"]["account_id"]) == ["A001", "A002", "A003"]


def test_a_stray_row_past_excel_is_refused_naming_the_cell(tmp_path):
    # row 2,000,000 cannot exist in Excel (1,048,576 rows); a hand-written sheet can say it
    path = book_with(tmp_path)
    part = sheet_part(path, "客户经理")
    patch_part(path, part, lambda x: x.replace("</sheetData>", '<row r="2000000"><c r="A2000000"><v>1</v></c></row>'
                                                             "</sheetData>"))
    (issue,) = of_rule(refused(path), "used_range")
    assert (issue.sheet, issue.row, issue.column, issue.value) == ("客户经理", 2_000_000, "A", "A2000000")
    assert "4 columns x 2,000,000 rows" in issue.message("en")        # the sheet's columns A..D


# ---------------------------------------------------------------------------------------------
# numbers


def test_huge_and_non_finite_numbers_are_refused_per_cell(tmp_path):
    # MAX_AMOUNT = 1e15 yuan bounds every money and plain-number column: exactly 1e15 is accepted
    # (base_avg_balance of A002), 1e308 is not (avg_balance of A001, Excel row 2, column E); a
    # cell holding INF or NaN (calamine reads both as floats; NaN was read as a blank, 0) is not
    # a number
    assert MAX_AMOUNT == 1e15
    path = book_with(tmp_path)

    def edit(x):
        x = re.sub(r'(<c r="E2"[^>]*>)<v>1000000</v>', r"\1<v>1e308</v>", x)
        x = re.sub(r'(<c r="F3"[^>]*>)<v>2500000</v>', r"\1<v>1000000000000000</v>", x)
        x = re.sub(r'(<c r="F2"[^>]*>)<v>800000</v>', r"\1<v>INF</v>", x)
        return re.sub(r'(<c r="J2"[^>]*>)<v>2000</v>', r"\1<v>NaN</v>", x)

    patch_part(path, sheet_part(path, "账户"), edit)
    found = refused(path)
    errors = {(i.row, i.column): i for i in found if i.severity == "error"}
    assert set(errors) == {(2, "日均余额"), (2, "基期日均余额"), (2, "拨备")}, [i.line() for i in found]
    big = errors[(2, "日均余额")]
    assert (big.sheet, big.rule, big.value) == ("账户", "too_large", "1e+308")
    assert "±1e+15" in big.message("en") and "超出 ±1e+15" in big.message("zh")
    for col, value in (("基期日均余额", "inf"), ("拨备", "nan")):
        i = errors[(2, col)]
        assert (i.rule, i.value.lower()) == ("not_number", value), i.line()
        assert "is not a number" in i.message("en")


def test_number_bounds_hold_in_csv_targets_and_kpis(tmp_path):
    # the same bound on a plain-number column (targets.target, signed): -2e15 is refused with
    # the bound named, "inf" and "NaN" text are not numbers, 5e14 passes
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, rows in BASE.items():
        (folder / f"{name}.csv").write_text("\n".join(",".join("" if v is None else str(v) for v in r) for r in rows),
                                            encoding="utf-8")
    (folder / "任务指标.csv").write_text("客户经理编号,指标,目标值\n007,deposit_avg,-2e15\n008,deposit_avg,inf\n"
                                      "007,loan_avg,NaN\n008,loan_avg,5e14\n", encoding="utf-8")
    found = refused(folder)
    errors = {i.row: i for i in found if i.severity == "error"}
    assert set(errors) == {2, 3, 4}, [i.line() for i in found]
    assert (errors[2].sheet, errors[2].column, errors[2].rule, errors[2].value) == ("任务指标", "目标值", "too_large", "-2e15")
    assert [(errors[3].rule, errors[3].value), (errors[4].rule, errors[4].value)] == [("not_number", "inf"),
                                                                                      ("not_number", "NaN")]


# ---------------------------------------------------------------------------------------------
# dates


def _daily(rows) -> dict:
    sheets = copy.deepcopy(BASE)
    sheets["每日余额"] = [["账号", "日期", "余额"], *rows]
    return sheets


def test_a_date_in_year_9999_is_a_row_error_not_an_overflow(tmp_path):
    # pandas cannot hold 9999-12-31 (OutOfBoundsDatetime, exit 3 before); it is a row error
    # naming the cell, in a date cell (Excel) and as text (row 3)
    rows = [["A001", dt.datetime(2026, 9, 1), 1000], ["A001", "9999-12-31", 1000],
            ["A002", dt.datetime(9999, 12, 31), 1000], ["A002", dt.datetime(2026, 9, 2), 2000]]
    found = refused(write_book(tmp_path / "b.xlsx", _daily(rows)))
    errors = [i for i in found if i.severity == "error"]
    assert [(i.sheet, i.row, i.column, i.rule) for i in errors] == [
        ("每日余额", 3, "日期", "date_range"), ("每日余额", 4, "日期", "date_range")], [i.line() for i in found]
    # the value as the reader shows it: the text typed, the date cell (the column mixes both)
    assert [i.value for i in errors] == ["9999-12-31", "9999-12-31 00:00:00"]
    assert "outside 1990-01-01..2100-12-31" in errors[0].message("en")
    # the same date in a column of date cells only: shown as a day
    rows = [["A001", dt.datetime(2026, 9, 1), 1000], ["A002", dt.datetime(9999, 12, 31), 1000]]
    (issue,) = [i for i in refused(write_book(tmp_path / "c.xlsx", _daily(rows))) if i.severity == "error"]
    assert (issue.row, issue.column, issue.rule, issue.value) == (3, "日期", "date_range", "9999-12-31")


def test_a_daily_balance_dated_2062_instead_of_2026_is_an_error(tmp_path):
    # 30 days of September 2026 and one row typed 2062-09-15: the period would end in 2062 and
    # every account's average would shrink. Median of the 31 dates: the 16th, 2026-09-16 (the
    # typo is the largest); 2062-09-15 is 13,148 days later (36 years of 365 or 366 days: 9 leap
    # days in 2028..2060 -> 36*365 + 9 = 13,149, less one day), far beyond 366
    rows = [["A001", dt.datetime(2026, 9, d), 1000 + d] for d in range(1, 31)]
    rows.insert(14, ["A001", dt.datetime(2062, 9, 15), 1015])       # Excel row 16 (header + 14 rows above)
    found = refused(write_book(tmp_path / "b.xlsx", _daily(rows)))
    errors = [i for i in found if i.severity == "error"]
    assert [(i.sheet, i.row, i.column, i.rule, i.value) for i in errors] == [
        ("每日余额", 16, "日期", "date_outlier", "2062-09-15")], [i.line() for i in found]
    msg = errors[0].message("en")
    assert "13,148 days" in msg and "(2026-09-16)" in msg and "2062 typed for 2026" in msg


# ---------------------------------------------------------------------------------------------
# silently wrong numbers: formulas, hidden sheets, shared strings


def test_a_formula_with_no_saved_value_is_an_error_naming_the_cell(tmp_path):
    # openpyxl stores formulas without their value (it computes nothing): read as blank, the
    # balance would be 0. Excel row 3 of 账户, column E (日均余额); a formula in the header row
    # and one in a column that is not read are not reported
    path = book_with(tmp_path)
    wb = openpyxl.load_workbook(path)
    ws = wb["账户"]
    ws["E3"] = "=1000000*2"
    ws["P3"] = "=1+1"                                  # column P: not a template column, not read
    wb.save(path)
    with zipfile.ZipFile(path) as zf:                  # really no value saved
        assert re.search(rb'<c r="E3"[^>]*><f>1000000\*2</f><v\s*/?>(</v>)?</c>', zf.read(sheet_part(path, "账户")))
    found = refused(path)
    (issue,) = of_rule(found, "formula_no_value")
    assert (issue.sheet, issue.row, issue.column, issue.value) == ("账户", 3, "日均余额", "=1000000*2")
    assert "E3" in issue.message("en") and "saved by Excel or WPS" in issue.message("en")
    assert "E3" in issue.message("zh")


def test_formulas_with_saved_values_are_read(tmp_path):
    # as Excel or WPS save them: <f> with its <v>; a formula whose saved value is empty text
    # (t="str", <v></v>) in the product column is a blank product, not an error
    path = book_with(tmp_path)

    def edit(x):
        x = re.sub(r'<c r="E3"([^>]*)><v>2000000</v></c>', r'<c r="E3"\1><f>1000000*2</f><v>2000000</v></c>', x)
        return re.sub(r'<c r="D3"[^>]*t="inlineStr"[^>]*><is><t>活期存款</t></is></c>',
                      '<c r="D3" t="str"><f>IF(1,"","")</f><v></v></c>', x)

    patch_part(path, sheet_part(path, "账户"), edit)
    extract, report = load_extract(path)
    assert report.ok, report.text()
    acc = extract["accounts"].set_index("account_id")
    assert acc.loc["A002", "avg_balance"] == 2_000_000.0


def test_hidden_and_very_hidden_sheets_are_read_with_a_warning_naming_them(tmp_path):
    path = book_with(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["业绩分配"].sheet_state = "hidden"
    wb["客户"].sheet_state = "veryHidden"
    wb.save(path)
    extract, report = load_extract(path)
    assert report.ok and len(extract["assignments"]) == 3     # still read, as before
    hidden = {i.sheet: i for i in of_rule(report.issues, "hidden_sheet")}
    assert set(hidden) == {"业绩分配", "客户"} and {i.severity for i in hidden.values()} == {"warning"}
    assert "sheet '客户' is very hidden" in hidden["客户"].message("en")
    assert "sheet '业绩分配' is hidden" in hidden["业绩分配"].message("en")
    assert "被深度隐藏" in hidden["客户"].message("zh")


def _shared_book(path: Path) -> Path:
    """BASE written by XlsxWriter, whose text cells refer to xl/sharedStrings.xml by index."""
    return _xlsxwriter_book(path, BASE)


@pytest.mark.parametrize("index, rule", [("-1", "shared_string"), ("1.0", "shared_string"),
                                         ("999999", "shared_string_past")])
def test_a_damaged_shared_string_index_refuses_the_workbook(tmp_path, index, rule):
    # calamine reads entry 0 for "-1" or "1.0": manager 007's name (B2 of 客户经理) would become
    # the text of another cell ("客户经理编号"); past the table's end it stops without naming the cell
    path = _shared_book(tmp_path / "s.xlsx")
    patch_part(path, "xl/worksheets/sheet1.xml",
               lambda x: re.sub(r'(<c r="B2" t="s"[^>]*>)<v>\d+</v>', rf"\1<v>{index}</v>", x))
    found = refused(path)
    (issue,) = of_rule(found, rule)
    assert (issue.sheet, issue.row, issue.column, issue.value) == ("客户经理", 2, "B", "B2")
    assert index in issue.message("en") and "damaged" in issue.message("en")
    assert "已损坏" in issue.message("zh")
    if rule == "shared_string_past":
        with zipfile.ZipFile(path) as zf:                       # the table's size, counted by hand
            size = len(re.findall(rb"<si>", zf.read("xl/sharedStrings.xml")))
        assert f"holds {size:,} entries" in issue.message("en")


# ---------------------------------------------------------------------------------------------
# file formats


def test_an_ods_file_is_refused_saying_to_save_it_as_xlsx(tmp_path):
    path = tmp_path / "bank.xlsx"                              # the content decides, not the name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", '<?xml version="1.0"?><office:document-content '
                                   'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"/>')
        zf.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><manifest/>')
    cli_refuses(path, "OpenDocument file (.ods)", "save it as .xlsx", limit_s=10)


def test_an_xlsb_file_is_refused_saying_to_save_it_as_xlsx(tmp_path):
    path = tmp_path / "bank.xlsb"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        zf.writestr("xl/workbook.bin", b"\x83\x01\x00")
    (issue,) = refused(path)
    assert issue.rule == "file_type" and "binary workbook (.xlsb)" in issue.message("en")


def _cfb(streams: dict[str, bytes]) -> bytes:
    """A compound file (OLE2, version 3, 512-byte sectors), as Office writes an encrypted
    workbook: streams of 4096 bytes or more, so no mini stream. Layout: header, sector 0 the
    FAT, sector 1 the directory (root + up to 3 streams), then the streams' sectors."""
    free, end, fat_sect, nostream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    assert len(streams) <= 3 and all(len(d) >= 4096 and len(d) % 512 == 0 for d in streams.values())
    fat = [fat_sect, end]
    starts = []
    for data in streams.values():
        first = len(fat)
        n = len(data) // 512
        fat += [first + k + 1 for k in range(n - 1)] + [end]
        starts.append(first)
    assert len(fat) <= 128
    fat += [free] * (128 - len(fat))

    def entry(name, kind, left=nostream, right=nostream, child=nostream, start=end, size=0):
        raw = name.encode("utf-16-le") + b"\x00\x00" if name else b""
        return (raw.ljust(64, b"\x00") + struct.pack("<HBB3L", len(raw), kind, 1, left, right, child)
                + b"\x00" * 16 + struct.pack("<L", 0) + b"\x00" * 16 + struct.pack("<LQ", start, size))

    names = list(streams)                                      # sorted by (length, upper name): a right-leaning chain
    names.sort(key=lambda s: (len(s), s.upper()))
    idx = {n: k + 1 for k, n in enumerate(names)}
    dirs = [entry("Root Entry", 5, child=1)]
    for k, n in enumerate(names):
        right = k + 2 if k + 1 < len(names) else nostream
        dirs.append(entry(n, 2, right=right, start=starts[list(streams).index(n)], size=len(streams[n])))
    dirs += [entry("", 0)] * (4 - len(dirs))
    assert idx and all(len(d) == 128 for d in dirs)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\x00" * 6 + struct.pack("<9L", 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<109L", 0, *[free] * 108))
    assert len(header) == 512
    return header + b"".join(struct.pack("<L", x) for x in fat) + b"".join(dirs) + b"".join(streams.values())


def test_a_password_protected_workbook_is_said_to_be_encrypted(tmp_path):
    # Excel encrypts an xlsx into a compound file holding EncryptionInfo and EncryptedPackage
    info = struct.pack("<HHL", 4, 4, 0x40) + b"\x00" * (4096 - 8)           # "agile" encryption, version 4.4
    package = struct.pack("<Q", 12345) + bytes(range(256)) * 15 + b"\x00" * (4096 - 8 - 3840)
    path = tmp_path / "locked.xlsx"
    path.write_bytes(_cfb({"EncryptionInfo": info, "EncryptedPackage": package}))
    data = path.read_bytes()
    assert data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" and len(data) == 512 * (1 + 2 + 8 + 8)     # header, FAT, directory, two streams
    assert "EncryptedPackage".encode("utf-16-le") in data[1024:1536]         # in the directory sector
    err = cli_refuses(path, "encrypted", "without the password", "已加密", limit_s=10)
    assert "Cannot detect file format" not in err
    # a compound file that is not encrypted (a legacy .xls without its Workbook stream) is not called encrypted
    plain = tmp_path / "plain.xls"
    plain.write_bytes(_cfb({"Other": b"\x00" * 4096}))
    assert all(i.rule != "file_encrypted" for i in refused(plain))


# ---------------------------------------------------------------------------------------------
# CSV: UTF-16 and NUL


def _managers_csv(text: str, encoding: str) -> list[tuple[str, bytes]]:
    files = []
    for name, rows in BASE.items():
        body = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)
        files.append((f"{name}.csv", body.encode("utf-8")))
    files[0] = ("客户经理.csv", text.encode(encoding) if encoding != "utf-16-le-bom" else
                b"\xff\xfe" + text.encode("utf-16-le"))
    return files


MANAGERS = "客户经理编号,姓名,所属机构\n007,王芳,城东支行\n008,李强,城西支行\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le-bom"])
def test_a_utf16_csv_with_a_byte_order_mark_is_decoded(encoding):
    # Excel's "Unicode text" and many exports: UTF-16 with its byte-order mark (FF FE or FE FF)
    files = _managers_csv(MANAGERS, "utf-16-be" if encoding == "utf-16-be" else encoding)
    if encoding == "utf-16-be":
        files[0] = (files[0][0], b"\xfe\xff" + MANAGERS.encode("utf-16-be"))
    extract, report = parse_uploads(files)
    assert report.ok, report.text()
    assert dict(zip(extract["managers"]["manager_id"], extract["managers"]["name"])) == {"007": "王芳", "008": "李强"}
    assert any("utf-16" in n for n in extract.notes), extract.notes


def test_a_utf16_csv_without_a_byte_order_mark_is_named_as_such(tmp_path):
    files = _managers_csv(MANAGERS, "utf-16-le")
    extract, report = parse_uploads(files)
    (issue,) = [i for i in report.issues if i.severity == "error"]
    assert extract is None and issue.rule == "encoding_utf16" and issue.sheet == "客户经理.csv"
    assert "UTF-16" in issue.message("en") and "CSV UTF-8" in issue.message("en")
    folder = tmp_path / "csv"                                    # the same from a local folder (CLI)
    folder.mkdir()
    for name, data in files:
        (folder / name).write_bytes(data)
    cli_refuses(folder, "UTF-16", "byte-order mark")


@pytest.mark.parametrize("where, row", [("early", 3), ("late", 403)])
def test_a_nul_in_a_csv_is_a_row_error_naming_the_cell(tmp_path, where, row):
    # a NUL (byte 0) in manager 008's name: valid UTF-8, but no database text can hold it
    # (PostgreSQL refuses it). "early": within the first 4 KB (the file-type sniff); "late": after
    # 400 more managers (rows 3..402), so manager 008 is on row 403
    head, last = MANAGERS.rsplit("008", 1)
    padding = "" if where == "early" else "".join(f"{9000 + k},名{k},城东支行\n" for k in range(400))
    text = head + padding + "008" + last.replace("李强", "李\x00强")
    assert (text.encode().index(b"\x00") < 4096) == (where == "early")
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, data in _managers_csv(text, "utf-8"):
        (folder / name).write_bytes(data)
    found = refused(folder)
    (issue,) = [i for i in found if i.severity == "error"]
    assert (issue.sheet, issue.row, issue.column, issue.rule) == ("客户经理", row, "姓名", "text_nul")
    assert issue.value == "李␀强" and "NUL" in issue.message("en") and "NUL" in issue.message("zh")
    assert all(i.rule not in ("encoding", "file_type") for i in found)


# ---------------------------------------------------------------------------------------------
# text the store cannot hold on PostgreSQL


def test_text_and_ids_longer_than_the_columns_are_row_errors(tmp_path):
    # db.py: ids String(64), text String(200); SQLite ignores the length, PostgreSQL refuses it,
    # so ingest refuses both on either database. At the limit is fine: a new manager with a
    # 64-character id (row 4), customer 000124's name of exactly 200 characters (row 3)
    assert (MAX_ID_CHARS, MAX_TEXT_CHARS) == (64, 200)
    long_id = "C" * 65
    name_201 = "名" * 201
    name_200 = "客" * 200

    def mutate(s):
        s["客户经理"][1][1] = name_201                           # row 2, 姓名
        s["客户"][2][1] = name_200                               # row 3, 客户名称: at the limit
        s["账户"][3][0] = long_id                                # row 4, 账号
        s["客户经理"].append(["M" * 64, "王五", "城东支行", ""])   # row 4: a 64-character id is fine

    found = refused(book_with(tmp_path, mutate))
    errors = sorted((i.sheet, i.row, i.column, i.rule) for i in found if i.severity == "error")
    assert errors == [("客户经理", 2, "姓名", "text_too_long"), ("账户", 4, "账号", "text_too_long")], \
        [i.line() for i in found]
    by_sheet = {i.sheet: i for i in found if i.rule == "text_too_long"}
    assert "201 characters long" in by_sheet["客户经理"].message("en") and "at most 200" in by_sheet["客户经理"].message("en")
    assert "65 characters long" in by_sheet["账户"].message("en") and "at most 64" in by_sheet["账户"].message("en")
    assert "最多 64 个字符" in by_sheet["账户"].message("zh")


def test_text_that_a_spreadsheet_would_run_as_a_formula_is_a_warning_naming_the_cell(tmp_path):
    # manager names, as text cells (a cell starting with "=" is written as a formula, reported
    # elsewhere): a "+" formula, a lone minus sign, a negative number, a formula character after
    # the first one, a full-width "＝" (not a formula in Excel), an "@" call
    names = ["+A1*2", "-", "-12", "中=", "＝SUM(A1)", "@foo"]

    def mutate(s):
        for k, name in enumerate(names):
            s["客户经理"].append([f"F{k:02d}", name, "城东支行", ""])

    found = issues(book_with(tmp_path, mutate))
    first = len(BASE["客户经理"]) + 1                       # the Excel row of the first appended manager
    warned = sorted((i.row, i.value) for i in found if i.rule == "formula_text")
    assert warned == [(first, "+A1*2"), (first + 5, "@foo")], [i.line() for i in found]
    assert all(i.severity == "warning" and i.sheet == "客户经理" and i.column == "姓名"
               for i in found if i.rule == "formula_text")


def test_an_in_memory_sheet_with_nul_text_is_refused_like_a_file(tmp_path):
    # the same rule whatever the source: a raw sheet built in memory (the app's edits path)
    from data.ingest import parse_book
    from data.readers import RawBook, RawSheet

    rows = copy.deepcopy(BASE)
    rows["客户"][1][2] = "城东\x00支行"
    book = RawBook(kind="workbook", sheets=[RawSheet(name, r) for name, r in rows.items()])
    _, report = parse_book(book)
    (issue,) = [i for i in report.issues if i.severity == "error"]
    assert (issue.sheet, issue.row, issue.column, issue.rule, issue.value) == ("客户", 2, "所属机构", "text_nul", "城东␀支行")


def test_read_input_of_a_refused_sheet_does_not_read_it(tmp_path):
    # the refusal comes from the scan, before fastexcel: reading the workbook's list of sheets
    # works, and the refused sheet raises the same error each time it is asked for
    path = book_with(tmp_path)
    wb = openpyxl.load_workbook(path)
    wb["账户"]["XFD1048576"] = 1
    wb.save(path)
    book = read_input(path)
    sheet = next(s for s in book.sheets if s.name == "账户")
    for _ in range(2):
        with pytest.raises(ExtractError) as e:
            sheet.body(0, [0])
        assert e.value.report.issues[0].rule == "used_range"


def test_cells_without_references_are_placed_as_the_reader_places_them(tmp_path):
    # a <c> without r="..." goes after the previous cell (calamine does the same): 201 of them in
    # one row reach column 201 (GS), beyond MAX_SHEET_COLUMNS = 200, whatever the references say
    path = book_with(tmp_path)
    row = '<row r="5">' + "<c><v>1</v></c>" * 201 + "</row>"
    patch_part(path, sheet_part(path, "客户经理"), lambda x: x.replace("</sheetData>", row + "</sheetData>"))
    (issue,) = of_rule(refused(path), "used_range")
    assert (issue.sheet, issue.row, issue.column, issue.value) == ("客户经理", 5, "GS", "GS5")
    assert "201 columns x 5 rows" in issue.message("en")


def test_megabytes_of_padding_in_a_sheet_are_refused(tmp_path):
    # 10 MB of text between two rows (at least one 4 MB piece holds no tag), spaces with some base64 noise so that the part expands only
    # ~13x (under the zip-bomb ratio of 100): no spreadsheet program writes that; a zip bomb
    # does, to make the reader inflate hundreds of megabytes
    import base64
    import random

    pad = "".join(base64.b64encode(random.Random(k).randbytes(75_000)).decode() + " " * 900_000 for k in range(10))
    path = book_with(tmp_path)
    patch_part(path, sheet_part(path, "客户"), lambda x: x.replace("</row>", "</row>" + pad, 1))
    assert len(pad) == 10_000_000 and path.stat().st_size < 1_500_000
    (issue,) = of_rule(refused(path), "xml_padding")
    assert issue.sheet == "客户" and "4 MB of the sheet's XML hold no tag" in issue.message("en")
    assert "压缩炸弹" in issue.message("zh")
