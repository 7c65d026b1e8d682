"""Spreadsheets and CSV files as Excel, WPS and the ingest readers take them: Excel's own limits
(cell length, the 1900 date system, sheet names, ZIP64 only where needed), any date a bank uses
(9999-12-31 "no end"), zone-aware times, missing and empty cells, and text that looks like Excel's
``_xHHHH_`` escapes round-tripping."""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import xml.etree.ElementTree as ET
import zipfile

import fastexcel
import numpy as np
import openpyxl
import pandas as pd
import pytest
import python_calamine

from data.export import MAX_CELL_CHARS, frame_to_csv_bytes, write_workbook


def _calamine(data: bytes, sheet: int = 0) -> list[list]:
    return python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(sheet).to_python()


def _sheet_xml(data: bytes, i: int = 1) -> str:
    return zipfile.ZipFile(io.BytesIO(data)).read(f"xl/worksheets/sheet{i}.xml").decode("utf-8")


def _values(data: bytes) -> dict[str, str]:
    """Cell reference -> the raw ``<v>`` text of every number, date or boolean cell of sheet 1."""
    return dict(re.findall(r'<c r="([A-Z]+\d+)"[^>]*><v>([^<]*)</v></c>', _sheet_xml(data)))


# --- 1. Excel's cell limit ---

def test_text_longer_than_an_excel_cell_is_cut_to_32767_characters():
    long, formula = "x" * 40_000, "=" + "y" * 40_000
    frame = pd.DataFrame({"t": pd.Series([long, formula, "short", "中" * 40_000], dtype="str"),
                          "mixed": [long, 3, "z", None]})
    back = _calamine(write_workbook({"s": frame}))
    assert [len(r[0]) for r in back[1:]] == [MAX_CELL_CHARS, MAX_CELL_CHARS, 5, MAX_CELL_CHARS]
    assert back[1][0] == "x" * MAX_CELL_CHARS
    assert back[2][0] == "'=" + "y" * (MAX_CELL_CHARS - 2)          # quoted first, then cut
    assert back[4][0] == "中" * MAX_CELL_CHARS
    assert back[1][1] == "x" * MAX_CELL_CHARS and back[2][1] == 3


def test_cut_happens_before_escaping_so_escapes_are_not_counted():
    text = "\x01" * 40_000      # each written as the 7-character escape _x0001_
    back = _calamine(write_workbook({"s": pd.DataFrame({"t": pd.Series([text], dtype="str")})}))
    assert back[1][0] == "\x01" * MAX_CELL_CHARS


# --- 2. and 5. dates as Excel serials ---

def test_dates_outside_the_nanosecond_range_are_written():
    no_end = dt.date(9999, 12, 31)          # the "no end date" of many bank systems: Excel serial 2958465
    cases = [
        (pd.DataFrame({"d": [no_end, dt.date(2026, 9, 30), None]}), {"A2": "2958465.0", "A3": "46295.0"}),
        (pd.DataFrame({"d": pd.Series([np.datetime64("9999-12-31T12:00:00")], dtype="datetime64[s]")}),
         {"A2": "2958465.5"}),
        (pd.DataFrame({"d": ["x", no_end, dt.datetime(9999, 12, 31, 18)]}), {"A3": "2958465.0", "A4": "2958465.75"}),
    ]
    for frame, want in cases:
        data = write_workbook({"s": frame})
        assert _values(data) == want
        ws = openpyxl.load_workbook(io.BytesIO(data)).active
        assert all(ws[ref].value.date() == no_end for ref, v in want.items() if v.startswith("2958465"))
        assert ws[next(iter(want))].number_format == "yyyy-mm-dd"


@pytest.mark.parametrize("kind", ["datetime64[ns]", "datetime64[s]", "date", "object"])
def test_serials_follow_excels_1900_date_system(kind):
    stamps = ["1900-01-01", "1900-02-28", "1900-02-28 12:00", "1900-03-01", "1970-01-01", "2026-09-30 06:00"]
    want = ["1.0", "59.0", "59.5", "61.0", "25569.0", "46295.25"]     # XlsxWriter's serials
    s = pd.Series(pd.to_datetime(stamps, format="ISO8601"))
    if kind == "date":
        s, want = pd.Series([t.date() for t in s]), [w.split(".")[0] + ".0" for w in want]
        want[2] = "59.0"
    elif kind == "object":
        s = pd.Series(["text"] + [t.to_pydatetime() for t in s][1:], dtype=object)
        want = want[1:]
    else:
        s = s.astype(kind)
    data = write_workbook({"s": pd.DataFrame({"d": s})})
    got = [v for ref, v in sorted(_values(data).items(), key=lambda kv: int(kv[0][1:]))]
    assert got == want
    if kind != "object":   # openpyxl applies Excel's 1900 rule when reading: the dates come back
        wb = openpyxl.load_workbook(io.BytesIO(data))
        assert [c.value.date() for c in wb.active["A"][1:]] == [t.date() for t in pd.to_datetime(stamps, format="ISO8601")]


def test_zone_aware_times_are_the_beijing_wall_clock_in_workbook_and_csv():
    utc = pd.to_datetime(["2024-01-01 01:00", "2024-06-30 17:30", None]).tz_localize("UTC")
    frames = [
        pd.DataFrame({"t": utc}),
        pd.DataFrame({"t": utc.tz_convert("Asia/Shanghai")}),
        pd.DataFrame({"t": utc.tz_convert("America/New_York")}),
        pd.DataFrame({"t": pd.Series(list(utc[:2].to_pydatetime()) + [None], dtype=object)}),
    ]
    want = [dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 7, 1, 1, 30), None]
    for frame in frames:
        wb = openpyxl.load_workbook(io.BytesIO(write_workbook({"s": frame})))
        assert [c.value for c in wb.active["A"][1:]] + [None] * (3 - len(wb.active["A"][1:])) == want
        assert frame_to_csv_bytes(frame).decode("utf-8-sig").splitlines() == [
            "t", "2024-01-01 09:00:00", "2024-07-01 01:30:00", "\"\""]   # a lone empty cell, as pandas writes it
    mixed = pd.DataFrame({"t": ["x", utc[0].to_pydatetime(), pd.Timestamp("2024-01-01 02:00")]})
    assert _calamine(write_workbook({"s": mixed}))[2][0] == dt.datetime(2024, 1, 1, 9)
    assert frame_to_csv_bytes(mixed).decode("utf-8-sig").splitlines()[2] == "2024-01-01 09:00:00"


# --- 3. missing values in CSV ---

def test_missing_boolean_is_an_empty_csv_cell():
    frame = pd.DataFrame({"b": pd.array([True, None, False], dtype="boolean"), "n": [1, 2, 3]})
    assert frame_to_csv_bytes(frame) == frame.to_csv(index=False).encode("utf-8-sig")
    assert frame_to_csv_bytes(frame).decode("utf-8-sig").splitlines() == ["b,n", "True,1", ",2", "False,3"]
    alone = frame[["b"]]
    assert frame_to_csv_bytes(alone) == alone.to_csv(index=False).encode("utf-8-sig")   # 'True', '""', 'False'
    assert len(pd.read_csv(io.BytesIO(frame_to_csv_bytes(alone)))) == 3                 # no row lost


def test_empty_text_is_an_empty_csv_cell_as_pandas_writes_it():
    frame = pd.DataFrame({"s": pd.Series(["", None, "x"], dtype="str"), "o": ["", 1, None]})
    assert frame_to_csv_bytes(frame) == frame.to_csv(index=False).encode("utf-8-sig")
    alone = frame[["s"]]
    assert frame_to_csv_bytes(alone) == alone.to_csv(index=False).encode("utf-8-sig")


# --- 4. Excel's _xHHHH_ escapes ---

TRICKY = ["_x005F_x0041_", "_x0041_x0042_", "__x0041_", "_x005f_", "_x0041__x0042_", "a_x00411_", "_x004_",
          "_x0041", "\x01_x0041_", "_\x01x0041_", "_x005F_x005F_x0041_"]


def test_text_that_looks_like_excel_escapes_round_trips():
    frame = pd.DataFrame({"t": pd.Series(TRICKY, dtype="str"), "mixed": TRICKY[:-1] + [7]})
    data = write_workbook({"s": frame}, None)
    assert [r[0] for r in _calamine(data)[1:]] == TRICKY
    assert [r[1] for r in _calamine(data)[1:]] == TRICKY[:-1] + [7]
    back = fastexcel.read_excel(data).load_sheet(0, dtypes={"t": "string"}).to_pandas()
    assert list(back["t"]) == TRICKY
    # headers are escaped the same way
    head = write_workbook({"s": pd.DataFrame(columns=["_x005F_x0041_", "b"])})
    assert _calamine(head)[0] == ["_x005F_x0041_", "b"]


# --- 6. sheet names ---

@pytest.mark.parametrize("name", ["a\x01", "\x1fb", "tab\there", "nl\n", "a\x00", "x\ufffe"])
def test_sheet_name_with_a_control_character_is_refused(name):
    with pytest.raises(ValueError, match="sheet name .* control character"):
        write_workbook({name: pd.DataFrame({"x": [1]})})


def test_allowed_sheet_names_give_a_well_formed_workbook():
    data = write_workbook({"客户 & <经理> \"引号\"": pd.DataFrame({"x": [1]}), "b'c": pd.DataFrame({"x": [2]})})
    ET.fromstring(zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml"))
    assert openpyxl.load_workbook(io.BytesIO(data)).sheetnames == ["客户 & <经理> \"引号\"", "bc"]


# --- 7. ZIP64 only where the sizes need it ---

def _zip64_entries(data: bytes) -> set[str]:
    """Entries carrying a ZIP64 extra field (id 0x0001) in their local or central header."""
    def has_zip64(extra: bytes) -> bool:
        i = 0
        while i + 4 <= len(extra):
            kind, size = struct.unpack_from("<HH", extra, i)
            if kind == 1:
                return True
            i += 4 + size
        return False

    out = set()
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        n, e = struct.unpack_from("<HH", data, info.header_offset + 26)
        local = data[info.header_offset + 30 + n: info.header_offset + 30 + n + e]
        if has_zip64(local) or has_zip64(info.extra):
            out.add(info.filename)
    return out


def test_zip64_is_decided_by_the_sheet_size(monkeypatch):
    small = pd.DataFrame({"x": np.arange(10)})
    big = pd.DataFrame({"t": pd.Series([f"row {i} " + "z" * 40 for i in range(5_000)], dtype="str")})
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100_000)     # a sheet of ~300 kB of XML passes it
    data = write_workbook({"small": small, "big": big, "after": small})
    assert _zip64_entries(data) == {"xl/worksheets/sheet2.xml"}
    monkeypatch.undo()
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None and len(z.namelist()) == 8
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["small", "big", "after"]
    assert [c.value for c in wb["big"]["A"][1:]] == list(big["t"])
    assert [c.value for c in wb["after"]["A"][1:]] == list(range(10))
    assert _calamine(data, 1)[1:] == [[t] for t in big["t"]]


def test_a_workbook_of_ordinary_size_has_no_zip64_fields():
    frame = pd.DataFrame({f"c{i}": np.arange(50_000, dtype=float) for i in range(8)})
    assert _zip64_entries(write_workbook({"a": frame, "b": frame.iloc[:10]})) == set()


# --- 8. empty text ---

def test_empty_text_writes_no_cell():
    frame = pd.DataFrame({"s": pd.Series(["", "x", None], dtype="str"), "mixed": ["", 1, "y"], "n": [1, 2, 3]})
    xml = _sheet_xml(write_workbook({"s": frame}))
    cells = re.findall(r'<c r="([A-Z]+\d+)"', xml)
    assert cells == ["A1", "B1", "C1", "C2", "A3", "B3", "C3", "B4", "C4"]
    ws = openpyxl.load_workbook(io.BytesIO(write_workbook({"s": frame}))).active
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=2)] == [[None, None, 1], ["x", 1, 2], [None, "y", 3]]
    header = _sheet_xml(write_workbook({"s": pd.DataFrame({"": [1], "b": [2]})}))
    assert '<c r="A1" s="1"/>' in header and "<t" not in header.split("</row>")[0].split('<c r="A1"')[1][:20]
