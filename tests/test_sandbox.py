"""The bounded child that parses uploads for the app: its result, its progress and its bounds."""

from __future__ import annotations

import io

import pandas as pd

from data import sandbox
from data.ingest import parse_uploads

MANAGERS = "客户经理编号,姓名,所属机构\nM1,王一,城东支行\nM2,李二,城西支行\n"
CUSTOMERS = "客户号,客户名称,所属机构\nC1,甲公司,城东支行\nC2,乙公司,城西支行\n"
ACCOUNTS = "账号,客户号,业务条线,日均余额,客户利率,FTP价格\nA1,C1,负债,1000000,0.01,0.025\nA2,C2,资产,2000000,0.05,0.03\n"
ASSIGNMENTS = "客户号,客户经理编号,角色\nC1,M1,主办\nC2,M2,主办\n"
FILES = [("managers.csv", MANAGERS.encode()), ("customers.csv", CUSTOMERS.encode()),
         ("accounts.csv", ACCOUNTS.encode()), ("assignments.csv", ASSIGNMENTS.encode())]


def test_progress_goes_from_reading_to_checking_and_ends_complete():
    seen = []
    extract, report = parse_uploads(FILES, progress=lambda phase, f: seen.append((phase, f)))
    assert report.ok and len(extract.frames["accounts"]) == 2
    phases = [p for p, _ in seen]
    assert set(phases) == {"read", "check"}
    assert phases.index("check") > max(i for i, p in enumerate(phases) if p == "read")   # reading first
    for phase in ("read", "check"):
        fractions = [f for p, f in seen if p == phase]
        assert fractions == sorted(fractions) and all(0.0 <= f <= 1.0 for f in fractions)
    assert seen[-1] == ("check", 1.0)


def test_child_result_equals_the_in_process_parse_and_reports_complete_progress():
    seen = []
    extract, report = sandbox.parse_isolated(FILES, progress=lambda phase, f: seen.append((phase, f)))
    local, local_report = parse_uploads(FILES)
    assert report.ok and local_report.ok
    for key, frame in local.frames.items():
        pd.testing.assert_frame_equal(extract.frames[key], frame)
    assert seen and seen[-1] == ("check", 1.0)


def test_status_file_passes_each_change_once(tmp_path):
    status = tmp_path / "progress"
    write = sandbox._writer(str(status))
    got = []
    last = sandbox._report_progress(status, None, lambda *a: got.append(a))     # nothing written yet
    write("read", 0.5)
    last = sandbox._report_progress(status, last, lambda *a: got.append(a))
    last = sandbox._report_progress(status, last, lambda *a: got.append(a))     # unchanged: not passed again
    write("check", 2.0)                                                          # clipped to 1
    sandbox._report_progress(status, last, lambda *a: got.append(a))
    assert got == [("read", 0.5), ("check", 1.0)]


def test_a_parse_over_the_memory_bound_is_refused_with_a_message():
    big = io.StringIO()
    big.write("账号,客户号,业务条线,日均余额\n")
    big.write("".join(f"A{i},C1,负债,{i}\n" for i in range(300_000)))
    files = FILES[:2] + [("accounts.csv", big.getvalue().encode())] + FILES[3:]
    extract, report = sandbox.parse_isolated(files, memory_bytes=8 * 2**20)
    assert extract is None and not report.ok
    message = report.errors[0].message("en")
    assert "memory" in message or "GB" in message, message
