"""The fast readers keep what the per-cell reader told the user.

- A workbook sheet whose columns mix cell types is read as text, yet a numeric id still gets its
  ``id_number`` warning (on the row of the first number cell), whether the id column holds only
  numbers or mixes numbers and text itself.
- A file a reader cannot parse (a CSV quote never closed, a broken sheet) becomes one issue
  naming the file, the sheet and, for the quote, the row where it opens; never the reader's own
  exception.
- The counted shared-string lookup agrees with the XML parser, and the piecewise UTF-8 check
  gives the verdict (and message) of :func:`data.readers.decode_text`, whatever the piece size.
"""

from __future__ import annotations

import copy
import io
import zipfile

import pytest

from data import readers
from data.ingest import load_extract, parse_book, parse_uploads
from data.readers import RawBook, RawSheet, decode_text, read_bytes, read_input
from data.report import ExtractError
from tests.test_hostile import _xlsxwriter_book
from tests.test_ingest import BASE, write_book


def _warnings(report, rule="id_number"):
    return [(i.sheet, i.row, i.column, i.value) for i in report.issues if i.rule == rule]


def _csv_bytes(rows) -> bytes:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow(["" if v is None else str(v) for v in r])
    return buf.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------
# 1. id_number warnings on sheets read as text


def test_numeric_account_ids_warned_when_a_rate_column_mixes_text_and_numbers(tmp_path):
    sheets = copy.deepcopy(BASE)
    for i, r in enumerate(sheets["账户"][1:], 1):
        r[0] = 1000 + i                       # 账号 as Excel numbers; 客户利率 holds "4.5%" and 0.003
    _, report = parse_book(read_input(write_book(tmp_path / "b.xlsx", sheets)))
    assert report.ok
    assert _warnings(report) == [("账户", 2, "账号", "1001")]
    line = next(i for i in report.issues if i.rule == "id_number")
    assert "1001" in line.message("en") and "1001" in line.message("zh")


def test_numeric_manager_ids_warned_when_the_level_column_holds_a_number(tmp_path):
    sheets = copy.deepcopy(BASE)
    sheets["客户经理"][1][0], sheets["客户经理"][2][0] = 7, 8
    sheets["客户经理"][2][3] = 3              # a number among the text levels
    _, report = parse_book(read_input(write_book(tmp_path / "b.xlsx", sheets)))
    assert ("客户经理", 2, "客户经理编号", "7") in _warnings(report)


@pytest.mark.parametrize("writer", ["openpyxl", "xlsxwriter"])
def test_an_id_column_mixing_text_and_numbers_warns_on_its_first_number(tmp_path, writer):
    sheets = copy.deepcopy(BASE)
    sheets["账户"][2][0] = 1002               # row 3: a number among text account ids
    sheets["账户"][3][1] = "000124"           # 客户号 stays text everywhere (digits, leading zeros)
    path = tmp_path / "b.xlsx"
    if writer == "openpyxl":                  # writes t="n" and inline strings
        write_book(path, sheets)
    else:                                     # writes no t attribute and shared strings
        _xlsxwriter_book(path, sheets)
    extract, report = parse_book(read_input(path))
    assert report.ok
    assert _warnings(report) == [("账户", 3, "账号", "1002")]
    assert list(extract.frames["accounts"]["account_id"]) == ["A001", "1002", "A003"]


def test_text_ids_that_look_like_numbers_are_not_warned_on_a_mixed_sheet(tmp_path):
    sheets = copy.deepcopy(BASE)
    sheets["账户"][1][0] = "1001"             # text that reads as a number: no warning
    sheets["账户"][2][0] = "1002"
    _, report = parse_book(read_input(write_book(tmp_path / "b.xlsx", sheets)))
    assert _warnings(report) == []


def test_sheets_built_in_memory_warn_numeric_ids_and_start_below_the_header():
    book = RawBook(kind="workbook")
    for name, rows in copy.deepcopy(BASE).items():
        if name == "账户":
            rows[2][0] = 1002                 # a mixed id column
        book.sheets.append(RawSheet(name, rows))
    extract, report = parse_book(book)
    assert report.ok, report.text()
    assert _warnings(report) == [("账户", 3, "账号", "1002")]
    assert list(extract.frames["accounts"]["_row"]) == [2, 3, 4]


# --------------------------------------------------------------------------------------------
# 2. a reader's failure becomes an issue


def _quote_folder(tmp_path, where: int):
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, rows in BASE.items():
        data = _csv_bytes(rows)
        if name == "账户":
            lines = data.decode().split("\n")
            lines[where] = lines[where].replace("A00", '"A00', 1)     # a quote that never closes
            data = "\n".join(lines).encode()
        (folder / f"{name}.csv").write_bytes(data)
    return folder


@pytest.mark.parametrize("where", [1, 3])
def test_an_unterminated_csv_quote_is_an_issue_on_the_row_it_opens(tmp_path, where):
    folder = _quote_folder(tmp_path, where)
    with pytest.raises(ExtractError) as err:
        load_extract(folder)
    issues = [i for i in err.value.report.issues if i.rule == "csv_quote"]
    assert [(i.sheet, i.row, i.severity) for i in issues] == [("账户", where + 1, "error")]
    assert "账户.csv" in issues[0].message("en") and "账户.csv" in issues[0].message("zh")
    assert "never closed" in issues[0].message("en") and "引号" in issues[0].message("zh")
    # the upload path says the same and still checks the other sheets
    files = [(f.name, f.read_bytes()) for f in sorted(folder.iterdir())]
    _, report = parse_uploads(files)
    assert [(i.rule, i.sheet, i.row) for i in report.errors] == [("csv_quote", "账户", where + 1)]


def test_a_broken_sheet_is_an_issue_naming_the_file_and_sheet(tmp_path):
    good = zipfile.ZipFile(write_book(tmp_path / "good.xlsx", copy.deepcopy(BASE)))
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(bad, "w") as z:
        for n in good.namelist():
            data = good.read(n)
            if n == "xl/worksheets/sheet3.xml":          # 账户: a number cell that is not a number
                data = data.replace(b"<v>2000000</v>", b"<v>abc</v>")
            z.writestr(n, data)
    with pytest.raises(ExtractError) as err:
        load_extract(bad)
    issue = err.value.report.errors[0]
    assert (issue.rule, issue.sheet) == ("file_unreadable", "账户")
    assert "bad.xlsx" in issue.message("en") and "工作簿" in issue.message("zh")
    _, report = parse_uploads([("bad.xlsx", bad.read_bytes())])
    assert [(i.rule, i.sheet) for i in report.errors] == [("file_unreadable", "账户")]


# --------------------------------------------------------------------------------------------
# 3. the first round's fast paths agree with the plain ones

_ENTRIES = [
    "<si><t>plain</t></si>",
    "<si/>",
    "<si><t></t></si>",
    '<si><t xml:space="preserve"> lead &amp; trail </t></si>',
    "<si><r><rPr><b/><sz val=\"11\"/></rPr><t>rich</t></r><r><t xml:space=\"preserve\"> text</t></r></si>",
    "<si><t>&lt;si&gt; is not a tag &#x4E2D;&#25991; &quot;q&quot;</t></si>",
    '<si><t>中文客户名称</t><rPh sb="0" eb="2"><t>ちゅうぶん</t></rPh><phoneticPr fontId="1"/></si>',
    "<si><t>" + "长" * 40 + "</t></si>",
    "<si><r><t>a</t></r><r><rPr><i/></rPr><t/></r><r><t>b</t></r></si>",
    "<si><t>last</t></si>",
]


def _sst(decl: bool) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' if decl else ""
    body = "".join(_ENTRIES)
    return (f'{head}<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            f'count="{len(_ENTRIES)}" uniqueCount="{len(_ENTRIES)}">{body}</sst>').encode()


def _zip_of(sst: bytes) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/sharedStrings.xml", sst)
    return zipfile.ZipFile(buf)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 29, 64, 2**20])
@pytest.mark.parametrize("decl", [False, True])
def test_counted_shared_strings_agree_with_the_parsed_ones(monkeypatch, chunk, decl):
    monkeypatch.setattr(readers, "_SST_CHUNK", chunk)
    sst = _sst(decl)
    zf = _zip_of(sst)
    n = len(_ENTRIES)
    expected = readers._shared_strings_parsed(zf, list(range(n)))
    assert expected[4] == "rich text" and expected[6] == "中文客户名称" and expected[1] == ""
    for wanted in (list(range(n)), [0], [n - 1], [1, 2, 7], [3, 4, 5, 8]):
        counted = readers._shared_strings_counted(io.BytesIO(sst), wanted)
        # a plain table is always counted (with or without an XML declaration), whatever piece
        # boundary cuts an entry: a fall-back to the parser would not pass unnoticed
        assert counted is not None, (chunk, wanted)
        assert counted == {i: expected[i] for i in wanted}, (chunk, wanted)
        assert readers._shared_strings(zf, wanted) == {i: expected[i] for i in wanted}


def test_counted_shared_strings_decline_what_they_cannot_count():
    prefixed = (b'<x:sst xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
                b"<x:si><x:t>a</x:t></x:si><x:si><x:t>b</x:t></x:si></x:sst>")
    commented = _sst(False).replace(b"<si/>", b"<!-- <si><t>no</t></si> --><si/>")
    for sst in (prefixed, commented):
        assert readers._shared_strings_counted(io.BytesIO(sst), [0, 1]) is None
        assert readers._shared_strings(_zip_of(sst), [0, 1]) == readers._shared_strings_parsed(_zip_of(sst), [0, 1])
    assert readers._shared_strings_counted(io.BytesIO(_sst(False)), [len(_ENTRIES)]) is None   # past the end


_TEXT = "账号,客户号,产品\nA001,000123,\"流动,资金\"\nA002,000124,理财😀代销\n"
_FILES = {
    "utf8": _TEXT.encode("utf-8"),
    "utf8_bom": b"\xef\xbb\xbf" + _TEXT.encode("utf-8"),
    "utf8_no_quote": _TEXT.replace('"', "").encode("utf-8"),
    "gb18030": _TEXT.replace("😀", "").encode("gb18030"),
    "utf8_cut_at_end": _TEXT.encode("utf-8") + "中".encode("utf-8")[:2],
    "utf8_bad_middle": _TEXT.encode("utf-8")[:20] + b"\xff" + _TEXT.encode("utf-8")[20:],
    "surrogate": _TEXT.encode("utf-8") + b"\xed\xa0\x80\n",
    "neither": _TEXT.encode("utf-8") + b"\x80",
}


@pytest.mark.parametrize("piece", [1, 2, 3, 4, 5, 7, 64 * 2**20])
@pytest.mark.parametrize("label", list(_FILES))
def test_piecewise_utf8_check_agrees_with_decode_text(tmp_path, monkeypatch, piece, label):
    monkeypatch.setattr(readers, "_SCAN_BYTES", piece)
    data = _FILES[label]
    path = tmp_path / "账户.csv"
    path.write_bytes(data)
    try:
        _, enc = decode_text(data)
        want_error = None
    except ValueError as e:
        enc, want_error = None, str(e)
    utf8, quoted = readers._scan_utf8(path)
    assert utf8 == (enc in ("utf-8", "utf-8-sig"))
    if utf8:
        assert quoted == (b'"' in data)
    if want_error is None:                    # the local file and the upload find the same encoding
        assert read_input(path).sheets[0].encoding == enc
        assert read_bytes(path.name, data).sheets[0].encoding == enc
    else:                                     # ... or refuse it with the same message
        with pytest.raises(ExtractError) as local:
            read_input(path)
        with pytest.raises(ExtractError) as upload:
            read_bytes(path.name, data)
        assert local.value.report.issues[0].message("en") == upload.value.report.issues[0].message("en")
        assert want_error in local.value.report.issues[0].message("en")
