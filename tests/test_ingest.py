"""Ingest: sheet/header aliases, value parsing, encodings and one test per validation rule.

Each rule test builds a small real workbook (openpyxl) or CSV folder, breaks one cell, and
asserts the sheet, the Excel row number, the column and the message a user would read.
"""

from __future__ import annotations

import copy
import datetime as dt

import openpyxl
import pytest

from data.ingest import load_extract, parse_book
from data.readers import read_input
from data.report import ExtractError

# A minimal valid extract in Chinese: sheet -> rows (first row = headers).
BASE = {
    "客户经理": [["客户经理编号", "姓名", "所属机构", "职级"],
              ["007", "王芳", "城东支行", "高级"],
              ["008", "李强", "城西支行", ""]],
    "客户": [["客户号", "客户名称", "所属机构", "客户类型", "新增客户"],
           ["000123", "甲公司", "城东支行", "对公", "是"],
           ["000124", "乙先生", "城西支行", "对私", "否"]],
    "账户": [["账号", "客户号", "业务条线", "产品", "日均余额", "基期日均余额", "客户利率", "FTP价格",
            "中间业务收入", "拨备", "不良清收", "风险权重", "五级分类"],
           ["A001", "000123", "资产", "流动资金贷款", 1000000, 800000, "4.5%", 0.025, None, 2000, 500, None, "正常"],
           ["A002", "000123", "负债", "活期存款", 2000000, 2500000, 0.003, 0.022, None, None, None, None, None],
           ["A003", "000124", "中间业务", "理财代销", None, None, None, None, 12000, None, None, None, None]],
    "业绩分配": [["客户号", "客户经理编号", "角色", "关联度系数"],
             ["000123", "007", "主办", None],
             ["000123", "008", "协办", None],
             ["000124", "008", "主办", 0.8]],
}


def write_book(path, sheets):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def issues_of(tmp_path, mutate):
    sheets = copy.deepcopy(BASE)
    mutate(sheets)
    path = write_book(tmp_path / "book.xlsx", sheets)
    _, report = parse_book(read_input(path))
    return report


def only(report, rule):
    found = [i for i in report.issues if i.rule == rule]
    assert found, f"no {rule!r} issue; got {[i.line() for i in report.issues]}"
    return found


# ------------------------------------------------------------------ happy path and aliases

def test_chinese_workbook_reads_ids_rates_and_enums(tmp_path):
    extract, report = load_extract(write_book(tmp_path / "b.xlsx", BASE))
    assert report.ok and not report.warnings, report.text()
    m, c, a, s = (extract[k] for k in ("managers", "customers", "accounts", "assignments"))
    assert list(m["manager_id"]) == ["007", "008"]                      # leading zeros kept
    assert list(c["customer_id"]) == ["000123", "000124"]
    assert list(c["type"]) == ["corporate", "retail"] and list(c["is_new"]) == [True, False]
    assert list(a["line"]) == ["asset", "liability", "intermediate"]
    assert a.loc[0, "rate"] == pytest.approx(0.045)                     # "4.5%" -> 0.045
    assert a.loc[2, "avg_balance"] == 0.0                               # blank numeric = 0
    assert list(s["role"]) == ["primary", "secondary", "primary"]
    assert s["coefficient"].isna().tolist() == [True, True, False]      # blank = derive
    assert list(a["_row"]) == [2, 3, 4]                                 # Excel rows


def test_english_headers_with_variants_and_title_rows(tmp_path):
    sheets = {
        "Managers": [["Q3 extract from core system"], [],
                     [" Manager ID ", "NAME", "Branch", "level"], ["m1", "Ann", "North", ""]],
        "customers": [["customer_id", "Name", "branch", "Type", "is_new"], ["c1", "Acme", "North", "corporate", "yes"]],
        "ACCOUNTS": [["Account_ID", "customer id", "Line", "avg balance", "Rate", "FTP rate", "日均余额（元）"],
                     ["a1", "c1", "Asset", 100, 0.05, 0.02, None]],
        "assignments": [["customer_id", "manager_id", "role"], ["c1", "m1", "Primary"]],
    }
    # the duplicate avg-balance header is an error, so drop it for the happy case
    sheets["ACCOUNTS"] = [r[:6] for r in sheets["ACCOUNTS"]]
    extract, report = load_extract(write_book(tmp_path / "b.xlsx", sheets))
    assert extract["managers"].loc[0, "_row"] == 4                      # header found on row 3
    assert extract["accounts"].loc[0, "rate"] == 0.05
    assert extract["accounts"].loc[0, "line"] == "asset"


def test_csv_folder_gb18030_and_bom(tmp_path):
    for enc in ("gb18030", "utf-8-sig"):
        folder = tmp_path / enc
        folder.mkdir()
        for name, rows in BASE.items():
            text = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)
            (folder / f"{name}.csv").write_bytes(text.encode(enc))
        extract, report = load_extract(folder)
        assert list(extract["customers"]["customer_id"]) == ["000123", "000124"]
        assert extract["accounts"].loc[0, "rate"] == pytest.approx(0.045)
        assert any(enc in n for n in extract.notes)                    # the encoding used is reported


def test_csv_thousands_separators_and_semicolons(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, rows in BASE.items():
        lines = []
        for r in rows:
            cells = ["" if v is None else str(v) for v in r]
            if name == "账户" and r[0] == "A001":
                cells[4] = '"1,000,000.00"'
            lines.append(";".join(cells))
        (folder / f"{name}.csv").write_text("\n".join(lines), encoding="utf-8")
    extract, _ = load_extract(folder)
    assert extract["accounts"].loc[0, "avg_balance"] == 1_000_000.0


# ------------------------------------------------------------------ one test per rule

def test_missing_sheet(tmp_path):
    r = issues_of(tmp_path, lambda s: s.pop("业绩分配"))
    (i,) = only(r, "missing_sheet")
    assert "业绩分配" in i.message("zh") and "assignments" in i.message("en")


def test_missing_required_column(tmp_path):
    def drop_role(s):
        s["业绩分配"] = [r[:2] + r[3:] for r in s["业绩分配"]]
    (i,) = only(issues_of(tmp_path, drop_role), "missing_column")
    assert i.sheet == "业绩分配" and i.row == 1 and "role" in i.message("en") and "角色" in i.message("zh")


def test_two_headers_for_one_column(tmp_path):
    def twice(s):
        s["客户"] = [r + [v] for r, v in zip(s["客户"], ["name", "甲", "乙"])]    # 客户名称 and its alias "name"
    (i,) = only(issues_of(tmp_path, twice), "duplicate_column")
    assert (i.sheet, i.row, i.column) == ("客户", 1, "name")
    assert "客户名称, name" in i.message("en") and "客户名称" in i.message("zh")


def test_required_value_blank(tmp_path):
    def blank_name(s):
        s["客户"][2][1] = None
    (i,) = only(issues_of(tmp_path, blank_name), "required")
    assert (i.sheet, i.row, i.column) == ("客户", 3, "客户名称")


def test_not_a_number(tmp_path):
    def text_balance(s):
        s["账户"][2][4] = "两百万"
    (i,) = only(issues_of(tmp_path, text_balance), "not_number")
    assert (i.sheet, i.row, i.column, i.value) == ("账户", 3, "日均余额", "两百万")


def test_infinite_or_overflowing_text_is_not_a_number(tmp_path):
    def inf(s):
        s["账户"][1][6] = "inf"         # a rate
        s["账户"][2][4] = "1e400"       # a balance that overflows to infinity
    found = {(i.row, i.column, i.value) for i in only(issues_of(tmp_path, inf), "not_number")}
    assert found == {(2, "客户利率", "inf"), (3, "日均余额", "1e400")}


def test_negative_balance(tmp_path):
    def neg(s):
        s["账户"][1][5] = -5
    (i,) = only(issues_of(tmp_path, neg), "negative")
    assert (i.row, i.column, i.value) == (2, "基期日均余额", "-5")


def test_bare_rate_above_one_gets_percent_hint(tmp_path):
    def pct(s):
        s["账户"][1][6] = 3.45
    (i,) = only(issues_of(tmp_path, pct), "rate_percent")
    assert (i.row, i.column) == (2, "客户利率")
    assert "0.0345" in i.message("en") and "3.45%" in i.message("en")


def test_percent_rate_out_of_range(tmp_path):
    def pct(s):
        s["账户"][1][7] = "150%"
    (i,) = only(issues_of(tmp_path, pct), "rate_range")
    assert (i.row, i.column, i.value) == (2, "FTP价格", "150%")


def test_risk_weight_out_of_range(tmp_path):
    def rw(s):
        s["账户"][1][11] = 20
    (i,) = only(issues_of(tmp_path, rw), "out_of_range")
    assert (i.row, i.column) == (2, "风险权重")


def test_coefficient_out_of_range(tmp_path):
    def c(s):
        s["业绩分配"][3][3] = 1.5
    (i,) = only(issues_of(tmp_path, c), "coefficient_range")
    assert (i.sheet, i.row) == ("业绩分配", 4)


def test_coefficient_sum_above_one_reports_every_row(tmp_path):
    def c(s):
        s["业绩分配"][1][3] = 0.7
        s["业绩分配"][2][3] = 0.5
    found = only(issues_of(tmp_path, c), "coefficient_sum")
    assert sorted(i.row for i in found) == [2, 3]
    assert "000123" in found[0].message("en") and "1.2" in found[0].message("en")


def test_unknown_enumerated_value(tmp_path):
    def bad(s):
        s["账户"][3][2] = "保险"
    (i,) = only(issues_of(tmp_path, bad), "unknown_value")
    assert (i.row, i.column, i.value) == (4, "业务条线", "保险")
    assert "资产" in i.message("zh")


def test_duplicate_id(tmp_path):
    def dup(s):
        s["客户经理"][2][0] = "007"
    (i,) = only(issues_of(tmp_path, dup), "duplicate_id")
    assert (i.sheet, i.row, i.value) == ("客户经理", 3, "007") and "row 2" in i.message("en")


def test_duplicate_customer_manager_pair(tmp_path):
    def dup(s):
        s["业绩分配"].append(["000123", "007", "支持", None])
    (i,) = only(issues_of(tmp_path, dup), "duplicate_pair")
    assert (i.sheet, i.row) == ("业绩分配", 5)


def test_unknown_foreign_keys(tmp_path):
    def fk(s):
        s["账户"][2][1] = "999999"
        s["业绩分配"][3][1] = "404"
    found = only(issues_of(tmp_path, fk), "unknown_key")
    assert {(i.sheet, i.row, i.value) for i in found} == {("账户", 3, "999999"), ("业绩分配", 4, "404")}


def test_unknown_date_in_daily_balances(tmp_path):
    def daily(s):
        s["每日余额"] = [["账号", "日期", "余额"], ["A002", dt.date(2026, 9, 30), 1], ["A002", "昨天", 2]]
    (i,) = only(issues_of(tmp_path, daily), "not_date")
    assert (i.sheet, i.row, i.value) == ("每日余额", 3, "昨天")


def test_misplaced_values_are_reported_not_silently_ignored(tmp_path):
    def fee_on_loan(s):
        s["账户"][1][8] = 500
    report = issues_of(tmp_path, fee_on_loan)
    (i,) = only(report, "ignored_value")
    assert i.severity == "warning" and i.row == 2 and report.ok


def test_unknown_sheet_and_column_are_warnings(tmp_path):
    def extra(s):
        s["备注"] = [["说明"], ["内部"]]
        s["客户"][0].append("联系电话")
        s["客户"][1].append("138")
    report = issues_of(tmp_path, extra)
    assert {i.rule for i in report.warnings} >= {"unknown_sheet", "unknown_column"}
    assert report.ok


def test_every_problem_collected_in_one_pass(tmp_path):
    def many(s):
        s["客户"][1][1] = None                   # required
        s["账户"][1][6] = 4.5                    # percent hint
        s["账户"][2][4] = -1                     # negative
        s["业绩分配"][3][2] = "老板"              # unknown role
    report = issues_of(tmp_path, many)
    assert {(i.sheet, i.row, i.rule) for i in report.errors} == {
        ("客户", 2, "required"), ("账户", 2, "rate_percent"), ("账户", 3, "negative"), ("业绩分配", 4, "unknown_value")}
    with pytest.raises(ExtractError) as e:
        load_extract(write_book(tmp_path / "many.xlsx", {**BASE, "客户": [BASE["客户"][0], [None, "x", "y", "", ""]]}))
    assert e.value.report.errors


def test_report_frame_is_downloadable_with_both_languages(tmp_path):
    def bad(s):
        s["账户"][1][6] = 4.5
    frame = issues_of(tmp_path, bad).to_frame()
    assert list(frame.columns) == ["severity", "sheet", "row", "column", "value", "rule", "message_en", "message_zh"]
    assert frame.loc[0, "row"] == 2 and "百分数" in frame.loc[0, "message_zh"]


# ------------------------------------------------------------------ a sheet large enough to be checked two columns at a time

def _large_accounts_folder(folder, n: int):
    """BASE as CSV with an accounts sheet of ``n`` rows (account i at Excel row i + 2) and a few
    planted problems; returns the hand-computed issues as (rule, Excel row, column)."""
    folder.mkdir()
    for name, rows in BASE.items():
        if name != "账户":
            text = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)
            (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    header = BASE["账户"][0]
    lines = [",".join(header)]
    for i in range(n):
        lines.append(f"B{i:06d},{'000123' if i % 2 else '000124'},负债,活期存款,{1000 + i},900,0.003,0.022,,,,,")
    lines[5_000 + 1] = "B005000,000124,负债,活期存款,abc,900,0.003,0.022,,,,,"          # not a number
    lines[60_000 + 1] = "B060000,000123,负债,活期存款,1000,900,150%,0.022,,,,,"        # rate over 100%
    lines[100_000 + 1] = "B100000,000123,未知条线,活期存款,1000,900,0.003,0.022,,,,,"   # no such line
    lines[110_000 + 1] = "B110000,\u3000\u3000,负债,活期存款,1000,900,0.003,0.022,,,,,"  # ideographic spaces: blank
    lines[111_000 + 1] = ",".join(["\u00a0 \t", "  "] * 6 + ["\u2003"])                 # a row of spaces: skipped
    lines[112_000 + 1] = "\u3000B112000,000123,负债,活期存款,1000,900,0.003,0.022,,,,,"  # text after a space: an id
    (folder / "账户.csv").write_text("\n".join(lines), encoding="utf-8")
    return [("not_number", 5_002, "日均余额"), ("rate_range", 60_002, "客户利率"),
            ("unknown_value", 100_002, "业务条线"), ("required", 110_002, "客户号")]


def test_a_large_sheet_checked_two_columns_at_a_time_reports_what_one_at_a_time_does(tmp_path, monkeypatch):
    import data.ingest as ingest

    n = 120_000
    assert n >= ingest._COLUMNWISE_ROWS         # this sheet takes the two-at-a-time path
    expected = _large_accounts_folder(tmp_path / "big", n)
    extract, report = parse_book(read_input(tmp_path / "big"))
    got = [(i.rule, i.row, i.column) for i in report.issues if i.sheet == "账户"]
    assert sorted(got, key=lambda t: t[1]) == expected
    accounts = extract.frames["accounts"]
    assert len(accounts) == n - 1                   # the row of spaces only is not a row
    assert 111_002 not in set(accounts["_row"])
    assert accounts.loc[accounts["_row"] == 112_002, "account_id"].item() == "B112000"   # stripped, kept
    assert accounts.loc[accounts["_error"], "_row"].tolist() == [5_002, 60_002, 100_002, 110_002]

    monkeypatch.setattr(ingest, "_COLUMNWISE_ROWS", 10**9)        # one column after another
    extract_1, report_1 = parse_book(read_input(tmp_path / "big"))
    assert [i.line("zh") for i in report_1.issues] == [i.line("zh") for i in report.issues]
    for key, frame in extract.frames.items():
        assert frame.equals(extract_1.frames[key]), key
