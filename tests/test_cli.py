"""`cli.py evaluate` as a user runs it: a subprocess, exit codes, stdout/stderr, output files."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from tests.test_ingest import BASE, write_book

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_evaluate_writes_the_domain_json_with_hand_computed_numbers(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    out = tmp_path / "out.json"
    p = cli("evaluate", book, "--json", out)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    m = {r["manager_id"]: r for r in doc["managers"]}
    c = {r["customer_id"]: r for r in doc["customers"]}
    # Account A001, asset, t = 90/360 = 0.25, bal 1,000,000, rate 0.045, ftp 0.025, rw default 1:
    #   margin 1e6*0.02*0.25 = 5,000; tax 0.0672*1e6*0.045*0.25 = 756; unit 300;
    #   balance cost 1e6*0.004*0.25 = 1,000; capital 1e6*1*0.105*0.10*0.25 = 2,625
    #   asset = 5,000 - 756 - 300 - 1,000 - 2,625 = 319; risk = 500 - 2,000 = -1,500
    # Account A002, liability, bal 2,000,000: 2e6*(0.022-0.003)*0.25 = 9,500; unit 20;
    #   cost 2e6*0.002*0.25 = 1,000 -> 8,480
    # Account A003, intermediate: 12,000*(1-0.0672) - 10 = 11,183.6
    assert c["000123"]["contribution"] == pytest.approx(
        {"asset": 319, "liability": 8480, "intermediate": 0, "risk": -1500, "total": 7299})
    assert c["000124"]["contribution"]["total"] == pytest.approx(11183.6)
    # 000123: blank primary 007 + blank secondary 008 -> 0.7 / 0.3 (new customer, no stock factor)
    # 000124: given 0.8 to 008 -> 0.2 * 11,183.6 = 2,236.72 unattributed
    assert c["000123"]["unattributed"] == pytest.approx(0.0, abs=1e-9)
    assert c["000124"]["unattributed"] == pytest.approx(2236.72)
    # 007: 0.7 * (319*0.06 + 8480*0.05 - 1500*0.08) = 0.7 * (19.14 + 424 - 120) = 226.198
    # 008: 0.3 * 323.14 + 0.8 * 11,183.6 * 0.10 = 96.942 + 894.688 = 991.63
    assert m["007"]["pay"] == pytest.approx(226.198)
    assert m["008"]["pay"] == pytest.approx(991.63)
    assert (m["008"]["rank"], m["007"]["rank"]) == (1, 2)
    assert (m["008"]["branch_rank"], m["007"]["branch_rank"]) == (1, 1)      # different branches
    # points: pool 1,000,000 shared 226.198 : 991.63
    assert m["008"]["points_pay"] == pytest.approx(1e6 * 991.63 / 1217.828)
    assert m["007"]["deposit_avg"] == pytest.approx(0.7 * 2e6)
    assert m["007"]["deposit_increase"] == pytest.approx(0.7 * (2e6 - 2.5e6))
    assert m["007"]["loan_avg"] == pytest.approx(0.7 * 1e6)
    t = doc["totals"]
    assert t["contribution"] == pytest.approx(7299 + 11183.6)
    assert t["attributed"] + t["unattributed"] == pytest.approx(t["contribution"])
    assert t["points_pay"] == pytest.approx(1e6)
    assert c["000123"]["tier"] == "mid_size" and c["000124"]["tier"] == "small"   # 3,000,000 and 0 volume
    assert c["000123"]["relationship_level"] == 3 and c["000124"]["relationship_level"] == 2


def test_evaluate_with_scenario_file(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    scen = tmp_path / "s.toml"
    scen.write_text('name = "only fees"\n[pay_factor]\nasset = 0\nliability = 0\nintermediate = 0.5\nrisk = 0\n',
                    encoding="utf-8")
    out = tmp_path / "o.json"
    assert cli("evaluate", book, "--scenario", scen, "--json", out).returncode == 0
    m = {r["manager_id"]: r for r in json.loads(out.read_text())["managers"]}
    assert m["007"]["pay"] == 0.0
    assert m["008"]["pay"] == pytest.approx(0.8 * 11183.6 * 0.5)            # 4,473.44


def test_invalid_extract_names_every_faulty_row_without_traceback(tmp_path):
    sheets = copy.deepcopy(BASE)
    sheets["账户"][1][6] = 3.45            # row 2: bare percent
    sheets["账户"][3][1] = "000999"        # row 4: unknown customer
    sheets["业绩分配"][2][2] = "经理"       # row 3: unknown role
    sheets["客户经理"][2][0] = "007"        # row 3: duplicate id
    p = cli("evaluate", write_book(tmp_path / "bad.xlsx", sheets), "--json", tmp_path / "o.json")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr + p.stdout
    for sheet, row in (("账户", 2), ("账户", 4), ("业绩分配", 3), ("客户经理", 3)):
        assert f"sheet '{sheet}', row {row}," in p.stderr
        assert f"工作表“{sheet}”，第 {row} 行" in p.stderr
    assert "looks like a percent" in p.stderr
    assert not (tmp_path / "o.json").exists()                                # nothing half-written


def test_validation_report_download(tmp_path):
    sheets = copy.deepcopy(BASE)
    sheets["账户"][1][4] = -3
    rep = tmp_path / "report.xlsx"
    assert cli("evaluate", write_book(tmp_path / "bad.xlsx", sheets), "--report", rep).returncode == 1
    ws = openpyxl.load_workbook(rep).active
    header = [c.value for c in ws[1]]
    row = dict(zip(header, [c.value for c in ws[2]]))
    assert (row["sheet"], row["row"], row["column"], row["rule"]) == ("账户", 2, "日均余额", "negative")


@pytest.mark.parametrize("toml, words", [
    ("bogus = 1\n", "unknown key 'bogus'"),
    ("days = 0\n", "days = 0 must be >= 1"),
    ("[pay_factor]\nfees = 0.1\n", "unknown key 'fees' in [pay_factor]"),
    ("stock_factor = 1.5\n", "stock_factor = 1.5 must be <= 1"),
    ("days = \n", "not valid TOML"),
])
def test_bad_scenario_is_a_clear_message(tmp_path, toml, words):
    scen = tmp_path / "s.toml"
    scen.write_text(toml, encoding="utf-8")
    p = cli("evaluate", write_book(tmp_path / "b.xlsx", BASE), "--scenario", scen)
    assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr


def test_missing_input_is_a_clear_message(tmp_path):
    p = cli("evaluate", tmp_path / "nope.xlsx")
    assert p.returncode == 1 and "no such file" in p.stderr and "Traceback" not in p.stderr


def test_xlsx_report_has_chinese_sheets_and_inert_text(tmp_path):
    sheets = copy.deepcopy(BASE)
    sheets["客户经理"][1][1] = "=HYPERLINK(\"http://x\",\"点我\")"
    book = write_book(tmp_path / "b.xlsx", sheets)
    # openpyxl would store that as a formula; store it as a text cell like a hostile export does
    wb = openpyxl.load_workbook(book)
    wb["客户经理"]["B2"].data_type = "s"
    wb.save(book)
    out = tmp_path / "r.xlsx"
    p = cli("evaluate", book, "--xlsx", out)
    assert p.returncode == 0, p.stderr
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["客户经理", "客户", "合计", "方案"]
    header = [c.value for c in wb["客户经理"][1]]
    assert header[:4] == ["排名", "机构内排名", "客户经理编号", "姓名"]
    cells = [c for ws in wb for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    names = [c.value for c in wb["客户经理"]["D"]]
    assert "'=HYPERLINK(\"http://x\",\"点我\")" in names


def test_sample_workbook_runs():
    sample = ROOT / "data" / "sample" / "sample_bank.xlsx"
    if not sample.exists():
        pytest.fail("data/sample/sample_bank.xlsx is missing: run `make sample`")
    p = cli("evaluate", sample)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    # the summary speaks the term table's Chinese by default: headers, grade words, totals in 元
    assert lines[0].split()[:4] == ["名次", "客户经理编号", "姓名", "所属机构"]
    assert lines[1].split()[0] == "1" and lines[1].split()[-1] in ("资深客户经理", "高级客户经理", "客户经理", "客户经理助理")
    assert lines[-2] == "…… 另有 25 名客户经理（完整结果请用 --json 或 --xlsx）"     # 40 managers, 15 shown
    assert lines[-1].startswith("全行综合贡献 ") and "= 已归属 " in lines[-1]
    assert not any(w in p.stdout for w in ("senior", "advanced", "rank", "contribution"))
    en = cli("evaluate", sample, "--lang", "en")
    assert en.stdout.splitlines()[0].split()[:2] == ["rank", "manager"]


def test_accept_valid_rows_computes_the_rest_and_keeps_the_rejected(tmp_path):
    sheets = copy.deepcopy(BASE)
    sheets["客户"][2][2] = None                    # customer 000124 (row 3): branch missing
    book = write_book(tmp_path / "part.xlsx", sheets)
    assert cli("evaluate", book, "--json", tmp_path / "x.json").returncode == 1      # all or nothing by default
    out, q = tmp_path / "o.json", tmp_path / "q.csv"
    p = cli("evaluate", book, "--accept-valid-rows", "--quarantine", q, "--json", out)
    assert p.returncode == 0, p.stderr
    assert "3 row(s) quarantined" in p.stderr
    doc = json.loads(out.read_text())
    assert [c["customer_id"] for c in doc["customers"]] == ["000123"]
    # without 000124 (and its 0.8 share to 008): 008 keeps only 0.3 of 000123
    m = {r["manager_id"]: r for r in doc["managers"]}
    assert m["008"]["pay"] == pytest.approx(0.3 * 323.14)
    text = q.read_bytes().decode("utf-8-sig")
    assert "客户,3," in text and "账户,4," in text and "业绩分配,4," in text


def test_quarantine_workbook_cuts_text_to_an_excel_cell(tmp_path):
    import python_calamine

    sheets = copy.deepcopy(BASE)
    sheets["客户"][2][2] = None                    # customer 000124 (row 3): branch missing
    sheets["客户"][2][1] = "长" * 40_000            # and a name longer than an Excel cell holds
    book = write_book(tmp_path / "long.xlsx", sheets)
    q = tmp_path / "q.xlsx"
    p = cli("evaluate", book, "--accept-valid-rows", "--quarantine", q, "--json", tmp_path / "o.json")
    assert p.returncode == 0, p.stderr
    rows = python_calamine.CalamineWorkbook.from_path(str(q)).get_sheet_by_index(0).to_python()
    cut = [r for r in rows[1:] if r[0] == "客户" and r[1] == 3][0][3]
    assert len(cut) == 32_767 and "长" * 1000 in cut      # Excel's cell limit, the start of the row kept


# --- verify: every publication of a period (or of every period), how each one reproduces ---

@pytest.fixture()
def published_store(tmp_path, monkeypatch):
    """A fresh SQLite store with 2026Q3 published twice and 2026Q4 once (run in-process: the
    subprocess behaviour of the commands is covered above and in tests/test_store.py)."""
    import cli as cli_module

    url = f"sqlite:///{tmp_path / 'verify.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    book = write_book(tmp_path / "b.xlsx", BASE)
    for period in ("2026Q3", "2026Q4"):
        assert cli_module.main(["load", str(book), "--period", period]) == 0
        assert cli_module.main(["publish", "--period", period]) == 0
    assert cli_module.main(["publish", "--period", "2026Q3", "--reason", "second look"]) == 0
    return cli_module, tmp_path / "verify.db"


def _tamper(db: Path, period: str, version: int, *, text=None, result_hash=None):
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS publications_no_update")   # frozen: only a database owner could
        if text is not None:
            conn.execute("UPDATE publications SET result_json = ? WHERE period = ? AND version = ?",
                         (text(conn.execute("SELECT result_json FROM publications WHERE period = ? AND version = ?",
                                            (period, version)).fetchone()[0]), period, version))
        if result_hash is not None:
            conn.execute("UPDATE publications SET result_hash = ? WHERE period = ? AND version = ?",
                         (result_hash, period, version))


def test_verify_checks_every_version_of_the_period_newest_first(published_store, capsys):
    cli_module, _ = published_store
    capsys.readouterr()
    assert cli_module.main(["verify", "--period", "2026Q3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["2026Q3 v2", "2026Q3 v1"]
    assert all("reproduces exactly" in line and "完全一致" in line for line in lines[:2])
    assert "2026Q4" not in "\n".join(lines)
    assert cli_module.main(["verify", "--all"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["2026Q4 v1", "2026Q3 v2", "2026Q3 v1"]
    assert "3 publications checked" in out and "3 same hash" in out and "0 differ" in out


def test_verify_says_how_each_publication_reproduces_and_fails_on_any_difference(published_store, capsys):
    cli_module, db = published_store
    # v1: the same text under another recorded hash -> only the numbers can be compared: they match
    _tamper(db, "2026Q3", 1, result_hash="0" * 64)
    capsys.readouterr()
    assert cli_module.main(["verify", "--period", "2026Q3"]) == 0
    out = capsys.readouterr().out
    v2, v1 = out.splitlines()[:2]
    assert "reproduces exactly" in v2
    assert "number for number" in v1 and "数值一致" in v1 and "reproduces exactly" not in v1
    # 2026Q4: one customer's total moved by 0.01 yuan -> differs; exit 1 even though the others match
    def moved(text):
        doc = json.loads(text)
        doc["customers"][0]["contribution"]["total"] += 0.01
        return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    _tamper(db, "2026Q4", 1, text=moved, result_hash="1" * 64)
    assert cli_module.main(["verify", "--all"]) == 1
    out = capsys.readouterr().out
    q4 = [line for line in out.splitlines() if line.startswith("2026Q4 v1")]
    assert len(q4) == 1 and "DIFFERS" in q4[0] and "不一致" in q4[0]
    assert "1 same hash" in out and "1 same numbers" in out and "1 differ" in out
    assert cli_module.main(["verify", "--period", "2026Q3"]) == 0       # that period still reproduces


def test_verify_accepts_rounding_only_after_a_code_change(published_store, capsys):
    """A publication made by an earlier release that added in another order differs in the last
    bits: after the upgrade it "reproduces to rounding"; with the same code, or off by a fen, it differs."""
    import sqlite3

    cli_module, db = published_store

    def nudged(by):
        def change(text):
            doc = json.loads(text)
            doc["customers"][0]["contribution"]["total"] += by
            return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return change

    _tamper(db, "2026Q4", 1, text=nudged(3e-9), result_hash="2" * 64)       # the last bits, same code
    capsys.readouterr()
    assert cli_module.main(["verify", "--period", "2026Q4"]) == 1
    assert "DIFFERS" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:                                       # ... made by an earlier release
        conn.execute("DROP TRIGGER IF EXISTS publications_no_update")
        conn.execute("UPDATE publications SET code_version = 'earlier' WHERE period = '2026Q4'")
    assert cli_module.main(["verify", "--period", "2026Q4"]) == 0
    out = capsys.readouterr().out
    assert "to rounding" in out and "舍入误差内一致" in out
    _tamper(db, "2026Q4", 1, text=nudged(0.01))                             # a fen is never rounding
    assert cli_module.main(["verify", "--period", "2026Q4"]) == 1
    assert "DIFFERS" in capsys.readouterr().out


def test_verify_fails_when_the_stored_rows_no_longer_match_the_snapshot(published_store, capsys):
    """The results reproduce from the snapshot, but someone changed an account's balance in the
    row tables afterwards: verify says the dataset's two copies disagree and exits 1."""
    import sqlite3

    cli_module, db = published_store
    with sqlite3.connect(db) as conn:
        (ds_id,) = conn.execute("SELECT id FROM datasets WHERE period = '2026Q4'").fetchone()
        conn.execute("UPDATE ds_accounts SET avg_balance = avg_balance + 1000 WHERE dataset_id = ? AND excel_row = "
                     "(SELECT MIN(excel_row) FROM ds_accounts WHERE dataset_id = ?)", (ds_id, ds_id))
    capsys.readouterr()
    assert cli_module.main(["verify", "--period", "2026Q4"]) == 1
    captured = capsys.readouterr()
    assert "reproduces exactly" in captured.out            # the frozen numbers still reproduce ...
    assert "数据集明细与快照不一致" in captured.err and "disagree" in captured.err   # ... but the copies differ
    assert cli_module.main(["verify", "--period", "2026Q3"]) == 0      # the other period's dataset is intact


def test_verify_without_publications_or_period(published_store, capsys):
    cli_module, _ = published_store
    assert cli_module.main(["verify", "--period", "2030Q1"]) == 1
    assert "has no publication" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:       # neither --period nor --all: a usage error
        cli_module.main(["verify"])
    assert e.value.code == 2


def test_evaluate_json_is_the_canonical_document(tmp_path):
    """The streamed file is byte for byte the document a publication freezes and hashes."""
    from calc.output import document_bytes
    from calc.pipeline import run
    from data.ingest import load_extract

    book = write_book(tmp_path / "b.xlsx", BASE)
    out = tmp_path / "o.json"
    assert cli("evaluate", book, "--json", out).returncode == 0
    extract, _ = load_extract(book)
    assert out.read_bytes() == document_bytes(run(extract.frames)[1])


def test_no_database_or_workbook_library_on_the_evaluate_path(tmp_path):
    """evaluate needs neither SQLAlchemy nor openpyxl: importing them cost ~0.3-0.7 s per run."""
    book = write_book(tmp_path / "b.xlsx", BASE)
    code = ("import sys, cli; rc = cli.main(['evaluate', sys.argv[1], '--json', sys.argv[2]]); "
            "print(sorted(m for m in ('sqlalchemy', 'openpyxl', 'streamlit', 'plotly') if m in sys.modules)); "
            "sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, str(book), str(tmp_path / "o.json")], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"
