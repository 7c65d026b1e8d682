"""Accepting the valid rows (issue 12): refused for structural errors on every path, the split
shown and confirmed before storing, one result message, and every stored dataset opens on
every page.

The extracts are the two-manager bank of ``tests/test_ingest.py`` (BASE): managers 007 and 008;
customers 000123 (accounts A001, A002; assigned to 007 and 008) and 000124 (account A003;
assigned to 008 at 0.8). Counts below are worked out from it by hand.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from data.ingest import parse_book, parse_uploads
from data.quarantine import refusals, split_summary, split_valid, structural
from data.readers import read_input
from tests.apptest import ranking_ids, table_with
from tests.test_ingest import BASE, write_book

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app.py"] + sorted(p.replace(str(ROOT) + "/", "") for p in glob.glob(str(ROOT / "pages" / "*.py")))


# ------------------------------------------------------------------ extracts

def sheets_with(mutate=None) -> dict:
    sheets = copy.deepcopy(BASE)
    if mutate is not None:
        mutate(sheets)
    return sheets


def no_manager_branch(sheets):
    """客户经理 without its required 所属机构 column (the case of issue 12)."""
    sheets["客户经理"] = [r[:2] + r[3:] for r in sheets["客户经理"]]


def customer_branch_blank(sheets):
    """Customer 000124 (row 3) without its branch: a row-level error; its account A003 (账户 row 4)
    and its assignment to 008 (业绩分配 row 4) depend on it."""
    sheets["客户"][2][2] = None


def manager_name_blank(sheets):
    """Manager 008 (row 3) without a name: its two assignments (业绩分配 rows 3 and 4) depend on it."""
    sheets["客户经理"][2][1] = None


def book(tmp_path, name, mutate=None) -> Path:
    return write_book(tmp_path / name, sheets_with(mutate))


def csv_folder(tmp_path, name="csv") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for sheet, rows in BASE.items():
        text = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)
        (folder / f"{sheet}.csv").write_text(text + "\n", encoding="utf-8")
    return folder


def parsed(path):
    return parse_book(read_input(path))


# ------------------------------------------------------------------ the rule: structural errors refuse

def test_a_missing_required_column_is_structural_and_split_valid_refuses_it(tmp_path):
    extract, report = parsed(book(tmp_path, "b.xlsx", no_manager_branch))
    assert [(i.rule, i.sheet, i.column) for i in structural(report)] == [("missing_column", "客户经理", "所属机构")]
    assert "managers" not in extract.frames          # the sheet could not be read at all
    why = refusals(extract, report, "zh")
    assert len(why) == 1 and "所属机构" in why[0]
    with pytest.raises(ValueError, match=r"structural.*required column 'branch' \(所属机构\) is missing"):
        split_valid(extract, report)


@pytest.mark.parametrize("mutate, rule", [
    (lambda s: s.pop("业绩分配"), "missing_sheet"),
    (lambda s: s.__setitem__("managers", copy.deepcopy(s["客户经理"])), "duplicate_sheet"),
    (lambda s: [r.append(r[2]) for r in s["客户"]], "duplicate_column"),
], ids=["missing_sheet", "duplicate_sheet", "duplicate_column"])
def test_every_structural_error_refuses_the_valid_rows(tmp_path, mutate, rule):
    extract, report = parsed(book(tmp_path, "b.xlsx", mutate))
    assert rule in [i.rule for i in structural(report)], report.text()
    assert refusals(extract, report)
    with pytest.raises(ValueError):
        split_valid(extract, report)


def test_a_required_sheet_with_a_header_only_is_reported_and_refuses_the_valid_rows(tmp_path):
    # 客户经理 cut to its header row: reported as empty (not a crash), and its three assignments
    # (业绩分配 rows 2-4) name managers that are not there
    extract, report = parsed(book(tmp_path, "b.xlsx", lambda s: s.__setitem__("客户经理", s["客户经理"][:1])))
    rules = [(i.rule, i.sheet, i.row) for i in report.errors]
    assert ("empty_sheet", "客户经理", None) in rules
    assert [r for r in rules if r[0] == "unknown_key"] == [("unknown_key", "业绩分配", n) for n in (2, 3, 4)]
    assert refusals(extract, report)
    with pytest.raises(ValueError):
        split_valid(extract, report)


def test_the_row_rules_are_rules_of_the_report_and_every_other_error_is_structural():
    from data.quarantine import ROW_RULES
    from data.report import RULES, Issue, Report

    assert ROW_RULES <= set(RULES), ROW_RULES - set(RULES)          # no misspelt rule would count as a row's
    report = Report([Issue(rule, row=5) for rule in RULES])           # every rule, as an error with a row
    assert {i.rule for i in structural(report)} == set(RULES) - ROW_RULES
    # reported with a row (the header's, or where the file breaks) and still structural
    assert {"missing_column", "duplicate_column", "csv_quote", "file_unreadable"} <= set(RULES) - ROW_RULES
    assert structural(Report([Issue("required", row=None)])), "a row-level rule without a row is structural"


def test_an_unreadable_file_and_a_wrong_file_type_refuse_the_valid_rows(tmp_path):
    for junk, rule in ((b"PK\x03\x04garbage" * 10, "file_unreadable"), (bytes(range(256)) * 4, "file_type")):
        extract, report = parse_uploads([("bank.xlsx", junk)])
        assert extract is None and [i.rule for i in structural(report)] == [rule]
        assert refusals(extract, report)
    data = book(tmp_path, "b.xlsx").read_bytes()
    extract, report = parse_uploads([("a.xlsx", data), ("b.xlsx", data)])     # two workbooks at once
    assert "file_type" in [i.rule for i in structural(report)]
    assert refusals(extract, report)


def test_row_level_errors_are_not_structural_and_the_split_counts_dependants(tmp_path):
    extract, report = parsed(book(tmp_path, "b.xlsx", customer_branch_blank))
    assert [(i.rule, i.sheet, i.row) for i in report.errors] == [("required", "客户", 3)]
    assert structural(report) == [] and refusals(extract, report) == []
    summary = split_summary(extract, report)
    assert summary.to_dict("records") == [
        {"key": "managers", "sheet": "客户经理", "read": 2, "kept": 2, "quarantined_own_errors": 0,
         "quarantined_cascade": 0},
        {"key": "customers", "sheet": "客户", "read": 2, "kept": 1, "quarantined_own_errors": 1,
         "quarantined_cascade": 0},
        {"key": "accounts", "sheet": "账户", "read": 3, "kept": 2, "quarantined_own_errors": 0,
         "quarantined_cascade": 1},           # A003 of customer 000124
        {"key": "assignments", "sheet": "业绩分配", "read": 3, "kept": 2, "quarantined_own_errors": 0,
         "quarantined_cascade": 1},           # 000124 -> 008
    ]
    valid, quarantine = split_valid(extract, report)
    # the counts shown before are what the split does
    assert {k: len(valid[k]) for k in summary["key"]} == dict(zip(summary["key"], summary["kept"]))
    assert sorted(zip(quarantine["sheet"], quarantine["row"])) == [("业绩分配", 4), ("客户", 3), ("账户", 4)]


def test_a_rejected_manager_takes_its_assignments_along(tmp_path):
    extract, report = parsed(book(tmp_path, "b.xlsx", manager_name_blank))
    assert structural(report) == []
    s = split_summary(extract, report).set_index("key")
    assert s.loc["managers", ["kept", "quarantined_own_errors", "quarantined_cascade"]].tolist() == [1, 1, 0]
    assert s.loc["customers", ["kept", "quarantined_own_errors", "quarantined_cascade"]].tolist() == [2, 0, 0]
    assert s.loc["assignments", ["kept", "quarantined_own_errors", "quarantined_cascade"]].tolist() == [1, 0, 2]
    valid, quarantine = split_valid(extract, report)
    assert list(valid["assignments"]["manager_id"]) == ["007"]
    assert len(quarantine) == 3


def test_quarantining_every_row_of_a_required_sheet_is_refused(tmp_path):
    def both_managers_nameless(sheets):
        sheets["客户经理"][1][1] = sheets["客户经理"][2][1] = None
    extract, report = parsed(book(tmp_path, "b.xlsx", both_managers_nameless))
    assert structural(report) == []                  # row errors only, but nothing of 客户经理 would be left
    assert refusals(extract, report) == ["every one of the 2 rows of sheet '客户经理' would be quarantined",
                                         "every one of the 3 rows of sheet '业绩分配' would be quarantined"]
    with pytest.raises(ValueError, match="客户经理"):
        split_valid(extract, report)


def test_a_row_error_on_a_row_the_extract_does_not_hold_is_refused():
    from data.ingest import Extract
    from data.report import Issue, Report
    from tests.factories import make_frames

    frames = make_frames(managers=[{"manager_id": "M1"}], customers=[{"customer_id": "C1"}],
                         accounts=[{"account_id": "A1", "customer_id": "C1", "line": "liability"}],
                         assignments=[{"customer_id": "C1", "manager_id": "M1"}])
    extract = Extract(frames=frames, sheet_names={k: k for k in frames})
    report = Report([Issue("required", sheet="customers", row=99, column="name")])
    assert structural(report) == []
    why = refusals(extract, report)
    assert len(why) == 1 and "row 99" in why[0] and "cannot hold it" in why[0]


# ------------------------------------------------------------------ the command line

def cli(url, *args):
    env = {**os.environ, "JIXIAO_DATABASE_URL": url}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def test_cli_refuses_accept_valid_rows_for_a_missing_column_and_stores_nothing(tmp_path):
    from data.store import Store

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    bad = book(tmp_path, "nobranch.xlsx", no_manager_branch)
    p = cli(url, "load", bad, "--period", "2031Q1", "--accept-valid-rows")
    assert p.returncode == 2, p.stderr
    assert "--accept-valid-rows refused" in p.stderr
    assert "required column 'branch' (所属机构) is missing" in p.stderr       # the report is printed
    assert Store.open(url).datasets() == []
    p = cli(url, "evaluate", bad, "--accept-valid-rows", "--json", tmp_path / "o.json")
    assert p.returncode == 2 and not (tmp_path / "o.json").exists()
    assert cli(url, "load", bad, "--period", "2031Q1").returncode == 1      # without the option: invalid, as before
    assert Store.open(url).datasets() == []


def test_cli_prints_the_split_and_stores_it(tmp_path):
    from data.store import Store

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    p = cli(url, "load", book(tmp_path, "part.xlsx", customer_branch_blank), "--period", "2031Q1",
            "--accept-valid-rows")
    assert p.returncode == 0, p.stderr
    assert "客户: 2 read, 1 kept, 1 with errors, 0 dependants" in p.stderr
    assert "账户: 3 read, 2 kept, 0 with errors, 1 dependants" in p.stderr
    assert "业绩分配: 3 read, 2 kept, 0 with errors, 1 dependants" in p.stderr
    [info] = Store.open(url).datasets()
    assert info.rejected_rows == 3
    assert {k: v for k, v in info.row_counts.items() if v} == {"managers": 2, "customers": 1, "accounts": 2,
                                                                 "assignments": 2}


# ------------------------------------------------------------------ the Upload page

@pytest.fixture()
def fresh_store(tmp_path, monkeypatch):
    """An empty SQLite store of this test, with one administrator ``boss`` (the pages' store)."""
    from data.auth import Users
    from data.store import Store

    url = f"sqlite:///{tmp_path / 'pages.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    Users(Store.open(url)).create("boss", "boss-password-1", "admin", actor="t", first_admin=True)
    return url


def page(path: str, lang: str = "en", **state) -> AppTest:
    from data.auth import Principal

    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.session_state["lang"] = lang
    at.session_state["_who"] = Principal("boss", "admin")
    at.session_state["_last_seen"] = time.time()
    for k, v in state.items():
        at.session_state[k] = v
    return at


def upload(at: AppTest, path: Path) -> AppTest:
    at.file_uploader(key="extract_upload").set_value((path.name, path.read_bytes(), "application/octet-stream"))
    return at.run()


def keys(elements) -> set:
    return {e.key for e in elements}


def test_the_page_does_not_offer_the_valid_rows_for_a_missing_column_and_says_why(tmp_path, fresh_store):
    from data.store import Store

    at = upload(page("pages/upload.py", "zh").run(), book(tmp_path, "nobranch.xlsx", no_manager_branch))
    assert not at.exception, [e.value for e in at.exception]
    assert "accept_valid_rows" not in keys(at.checkbox) and "accept_dataset" not in keys(at.button)
    [error] = at.error
    assert "存在结构性错误，不能仅采用有效行" in error.value and "所属机构" in error.value
    assert any("隔离区无法补救" in c.value for c in at.caption)
    assert Store.open(fresh_store).datasets() == []


def test_the_page_shows_the_split_asks_then_says_one_thing(tmp_path, fresh_store):
    at = upload(page("pages/upload.py", "en").run(), book(tmp_path, "part.xlsx", customer_branch_blank))
    assert not at.exception, [e.value for e in at.exception]
    split = table_with(at, "Sheet", "Rows read", "Kept", "Quarantined: errors", "Quarantined: dependants")
    assert split.values.tolist() == [["客户经理", 2, 2, 0, 0], ["客户", 2, 1, 1, 0], ["账户", 3, 2, 0, 1],
                                     ["业绩分配", 3, 2, 0, 1]]
    box = at.checkbox(key="accept_valid_rows")
    assert box.label == "I have checked the table: keep 7 rows, quarantine 3 (2 of them as dependants)"
    assert "accept_dataset" not in keys(at.button), "no accept button before the confirmation"
    box.check().run()
    at.text_input(key="upload_period").set_value("2031Q2").run()
    at.button(key="accept_dataset").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.success] == [
        "Stored and now using: 2031Q2 v1 \\(part\\.xlsx\\). 7 rows kept, 3 quarantined (listed below)."]
    assert not at.error, [e.value for e in at.error]
    assert "accept_valid_rows" not in keys(at.checkbox) and "accept_dataset" not in keys(at.button)
    q = table_with(at, "sheet", "row", "reason")
    assert sorted(zip(q["sheet"], q["row"])) == [("业绩分配", 4), ("客户", 3), ("账户", 4)]


def test_the_report_table_speaks_the_users_language(tmp_path, fresh_store):
    at = upload(page("pages/upload.py", "zh").run(), book(tmp_path, "part.xlsx", customer_branch_blank))
    assert table_with(at, "severity", "message_zh")["severity"].tolist() == ["error"]    # codes in the frame ...
    config = json.loads(next(d for d in at.dataframe if "severity" in d.value.columns).proto.columns)
    assert {c: config[c]["label"] for c in ("severity", "sheet", "row", "column", "value", "message_zh")} == {
        "severity": "级别", "sheet": "工作表", "row": "行号", "column": "列", "value": "值", "message_zh": "问题"}
    options = config["severity"]["type_config"]["options"]          # ... words in the browser
    assert {o["value"]: o["label"] for o in options} == {"error": "错误", "warning": "提示"}


# ------------------------------------------------------------------ every way of storing, every page

def test_a_stored_dataset_always_opens_on_every_page(tmp_path, fresh_store):
    """Five datasets, one per way of storing, each opened on every page: no exception, no error,
    and the figures of that dataset (its managers ranked, its metrics, its quarantine)."""
    from data.store import Store

    # 1 clean workbook through the Upload page
    at = upload(page("pages/upload.py").run(), book(tmp_path, "clean.xlsx"))
    at.text_input(key="upload_period").set_value("2031Q1").run()
    at.button(key="accept_dataset").click().run()
    assert not at.exception and [s.value for s in at.success] == ["Stored and now using: 2031Q1 v1 \\(clean\\.xlsx\\)"]
    # 2 row errors, valid rows accepted on the page
    at = upload(page("pages/upload.py").run(), book(tmp_path, "part.xlsx", customer_branch_blank))
    at.checkbox(key="accept_valid_rows").check().run()
    at.text_input(key="upload_period").set_value("2031Q2").run()
    at.button(key="accept_dataset").click().run()
    assert not at.exception and len(at.success) == 1
    # 3 cli.py load; 4 cli.py load --accept-valid-rows; 5 a CSV folder
    assert cli(fresh_store, "load", book(tmp_path, "cli.xlsx"), "--period", "2031Q3").returncode == 0
    p = cli(fresh_store, "load", book(tmp_path, "mgr.xlsx", manager_name_blank), "--period", "2031Q4",
            "--accept-valid-rows")
    assert p.returncode == 0, p.stderr
    assert cli(fresh_store, "load", csv_folder(tmp_path), "--period", "2032Q1").returncode == 0
    # and the broken extract of issue 12 is stored by no path
    bad = book(tmp_path, "nobranch.xlsx", no_manager_branch)
    assert cli(fresh_store, "load", bad, "--period", "2032Q2", "--accept-valid-rows").returncode == 2
    at = upload(page("pages/upload.py").run(), bad)
    assert "accept_valid_rows" not in keys(at.checkbox) and "accept_dataset" not in keys(at.button)

    stored = {d.period: d for d in Store.open(fresh_store).datasets()}
    assert sorted(stored) == ["2031Q1", "2031Q2", "2031Q3", "2031Q4", "2032Q1"]
    # period -> (managers ranked, customers, quarantined rows), by hand from BASE and the mutations
    expected = {"2031Q1": (["007", "008"], 2, 0), "2031Q2": (["007", "008"], 1, 3),
                "2031Q3": (["007", "008"], 2, 0), "2031Q4": (["007"], 2, 3), "2032Q1": (["007", "008"], 2, 0)}
    problems = []
    for period, (managers, customers, quarantined) in expected.items():
        for path in PAGES:
            at = page(path, _dataset_id=stored[period].id).run()
            where = f"{period} {path}"
            if at.exception or at.error:
                problems.append((where, [e.value for e in at.exception] + [e.value for e in at.error]))
                continue
            if path == "pages/rankings.py" and sorted(ranking_ids(at)) != managers:
                problems.append((where, ranking_ids(at)))
            if path in ("app.py", "pages/customers.py", "pages/manager.py", "pages/rankings.py", "pages/scorecard.py") \
                    and not (at.metric and at.dataframe):
                problems.append((where, "no figures"))
            if path in ("pages/scenarios.py", "pages/admin.py") and not at.dataframe:
                problems.append((where, "no table"))
            if path == "pages/history.py" and not at.info:
                problems.append((where, "history says nothing"))
            if path == "pages/upload.py":
                shown = sum(len(d.value) for d in at.dataframe if "reason" in d.value.columns)
                if shown != quarantined:
                    problems.append((where, f"quarantine shows {shown} rows, expected {quarantined}"))
            if path == "app.py":
                shown = [(m.value, m.proto.help) for m in at.metric if m.label == "Managers"]
                if shown != [(str(len(managers)), f"Customers: {customers}")]:
                    problems.append((where, f"managers and customers {shown}, expected {len(managers)}, {customers}"))
            if path == "pages/customers.py" and len(at.get("plotly_chart")) != 4:
                problems.append((where, "the four customer charts are not all drawn"))
    assert not problems, problems
