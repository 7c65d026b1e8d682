"""Statements frozen at publish: what was published is what a statement shows, whatever the code does later.

A tiny bank, computed by hand (default scenario: t = 90/360 = 0.25):

- C1 (branch B1, new): liability account, 4,000,000 at 1% against FTP 3%:
  4e6 * 0.02 * 0.25 = 20,000 - unit cost 20 - 4e6 * 0.002 * 0.25 = 2,000 -> 17,980.
- C2 (branch B2, stock): fees 10,000: 10,000 * (1 - 0.0672) - 10 = 9,318.
- C3 (branch B1, new): a 1,000,000 loan at 4.5% against 2.5%: 5,000 margin - 756 tax - 300 unit
  - 1,000 balance cost - 2,625 capital = 319; provision 5,000 -> risk -5,000.

Assignments: C1 to M1 (primary) and M2 (secondary), blank -> 0.7 / 0.3; C2 to M2 given 0.5 (half
unattributed); C3 to M3 (primary) -> 1.

- M1 (B1): liability 0.7 * 17,980 = 12,586 -> pay 0.05 * 12,586 = 629.3.
- M2 (B2): liability 0.3 * 17,980 = 5,394 -> 269.7; intermediate 0.5 * 9,318 = 4,659 -> 465.9;
  pay 735.6. Its customer C1 is booked at B1: a cross-branch credit.
- M3 (B1): asset 319 -> 19.14; risk -5,000 -> -400; the lines add to -380.86, pay 0 (floored).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, select

from calc.scenario import Scenario
from data.access import Access
from data.auth import Principal
from data.db import T, scoped
from data.export import statement_document, statement_workbook
from data.store import Store
from factories import make_frames
from tests.test_store import unfreeze

PERIOD = "2026Q3"
ADMIN = Principal("boss", "admin")


def tiny_bank() -> dict:
    return make_frames(
        managers=[{"manager_id": "M1", "branch": "B1"}, {"manager_id": "M2", "branch": "B2"},
                  {"manager_id": "M3", "branch": "B1"}],
        customers=[{"customer_id": "C1", "branch": "B1", "is_new": True},
                   {"customer_id": "C2", "branch": "B2", "is_new": False},
                   {"customer_id": "C3", "branch": "B1", "is_new": True}],
        accounts=[{"account_id": "A1", "customer_id": "C1", "line": "liability", "avg_balance": 4_000_000,
                   "rate": 0.01, "ftp_rate": 0.03},
                  {"account_id": "A2", "customer_id": "C2", "line": "intermediate", "fee_income": 10_000},
                  {"account_id": "A3", "customer_id": "C3", "line": "asset", "avg_balance": 1_000_000,
                   "rate": 0.045, "ftp_rate": 0.025, "provision": 5_000}],
        assignments=[{"customer_id": "C1", "manager_id": "M1", "role": "primary"},
                     {"customer_id": "C1", "manager_id": "M2", "role": "secondary"},
                     {"customer_id": "C2", "manager_id": "M2", "role": "primary", "coefficient": 0.5},
                     {"customer_id": "C3", "manager_id": "M3", "role": "primary"}],
    )


# M2's statement, by hand (see the module docstring)
M2 = {"manager_id": "M2", "period": PERIOD, "pay": 735.6,
      "lines": {"asset": {"contribution": 0.0, "factor": 0.06, "pay": 0.0},
                "liability": {"contribution": 5394.0, "factor": 0.05, "pay": 269.7},
                "intermediate": {"contribution": 4659.0, "factor": 0.10, "pay": 465.9},
                "risk": {"contribution": 0.0, "factor": 0.08, "pay": 0.0}},
      "customers": [{"customer_id": "C1", "coefficient": 0.3, "asset": 0.0, "liability": 5394.0, "intermediate": 0.0,
                     "risk": 0.0, "total": 5394.0},
                    {"customer_id": "C2", "coefficient": 0.5, "asset": 0.0, "liability": 0.0, "intermediate": 4659.0,
                     "risk": 0.0, "total": 4659.0}]}


def approx_doc(doc: dict):
    """``doc`` with every float compared to 1e-9 relative (hand arithmetic vs float64)."""
    return json.loads(json.dumps(doc), parse_float=lambda v: pytest.approx(float(v), rel=1e-9, abs=1e-9))


@pytest.fixture
def published(store_url):
    store = Store.open(store_url)
    store.save_dataset(PERIOD, "tiny.xlsx", "sha-tiny", tiny_bank(), "alice")
    pub = store.publish(PERIOD, Scenario(name="official"), "", "alice")
    return store_url, pub["id"]


def _cli(monkeypatch, url, *args) -> int:
    import cli

    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    return cli.main(list(args))


def _cli_statement(monkeypatch, tmp_path, url, manager: str) -> dict:
    out = tmp_path / f"statement_{manager}.json"
    assert _cli(monkeypatch, url, "statement", "--period", PERIOD, "--manager", manager, "--json", str(out)) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def reconciles(chain: dict, floor: bool = True) -> None:
    """A statement adds up: line pay = factor x contribution; the pay is the lines' sum (floored at 0);
    the customers' attributed amounts add up to each line's contribution and to the total."""
    lines, customers = chain["lines"], chain["customers"]
    summary = chain["summary"].iloc[0]
    assert list(lines["line"]) == ["asset", "liability", "intermediate", "risk"]
    np.testing.assert_allclose(lines["pay"], lines["factor"] * lines["contribution"], rtol=1e-12, atol=1e-9)
    total = float(lines["pay"].sum())
    assert float(summary["pay_raw"]) == pytest.approx(total, rel=1e-12, abs=1e-9)
    assert float(summary["pay"]) == pytest.approx(max(total, 0.0) if floor else total, rel=1e-12, abs=1e-9)
    for line in ("asset", "liability", "intermediate", "risk"):
        contribution = float(lines.loc[lines["line"] == line, "contribution"].iloc[0])
        assert float(customers[line].sum()) == pytest.approx(contribution, rel=1e-12, abs=1e-9), line
    np.testing.assert_allclose(customers[["asset", "liability", "intermediate", "risk"]].sum(axis=1),
                               customers["attributed"], rtol=1e-12, atol=1e-9)
    assert float(summary["total"]) == pytest.approx(float(lines["contribution"].sum()), rel=1e-12, abs=1e-9)


def test_the_frozen_statement_is_the_hand_computed_one(published, monkeypatch, tmp_path):
    url, pub_id = published
    assert _cli_statement(monkeypatch, tmp_path, url, "M2") == approx_doc(M2)
    chain = Access(Store.open(url), ADMIN).statement(pub_id, "M2")
    assert chain["frozen"] and chain["warnings"] == []
    reconciles(chain)
    c = chain["customers"]
    assert list(c["customer_id"]) == ["C1", "C2"]                       # largest credit first
    assert list(c["coefficient_source"]) == ["derived", "given"] and list(c["role"]) == ["secondary", "primary"]
    assert list(c["branch"]) == ["B1", "B2"]                            # C1 is booked at another branch
    m3 = Access(Store.open(url), ADMIN).statement(pub_id, "M3")
    reconciles(m3)
    assert float(m3["summary"]["pay_raw"].iloc[0]) == pytest.approx(-380.86)
    assert float(m3["summary"]["pay"].iloc[0]) == 0.0                   # floored
    assert m3["customers"]["attributed"].tolist() == [pytest.approx(319 - 5000)]
    kpi = chain["kpi"]
    assert list(kpi["kpi"]) == [k.code for k in Scenario().kpi]         # the scenario's order
    assert float(kpi["points"].sum()) == pytest.approx(float(chain["summary"]["score"].iloc[0]))


def test_the_json_has_exactly_the_documented_shape(published, monkeypatch, tmp_path):
    url, _ = published
    doc = _cli_statement(monkeypatch, tmp_path, url, "M1")
    assert set(doc) == {"manager_id", "period", "pay", "lines", "customers"}
    assert set(doc["lines"]) == {"asset", "liability", "intermediate", "risk"}
    assert all(set(v) == {"contribution", "factor", "pay"} for v in doc["lines"].values())
    assert [set(c) for c in doc["customers"]] == [{"customer_id", "coefficient", "asset", "liability", "intermediate",
                                                   "risk", "total"}]
    assert doc["pay"] == pytest.approx(629.3) and doc["customers"][0]["total"] == pytest.approx(12586.0)


@pytest.mark.parametrize("change", ["pay_factor", "tax_rate"])
def test_a_code_change_after_publish_changes_no_statement_and_verify_says_which_code(
        published, monkeypatch, tmp_path, capsys, change):
    """After publishing, the calculation changes (a release that reads the liability pay-link factor
    as 0.07 instead of the scenario's 0.05, or the tax rate as 0.10 instead of 0.0672; and the code
    hash moves): the statements, in the app and from the command line, are still the frozen ones
    and still add up to the frozen pay; verify says what differs and which code, and exits 1."""
    import calc.pipeline
    import data.access
    import data.store

    url, pub_id = published
    before_json = _cli_statement(monkeypatch, tmp_path, url, "M2")
    before = Access(Store.open(url), ADMIN).statement(pub_id, "M2")
    published_code = Store.open(url).publication(pub_id)["code_version"]

    real_evaluate, real_build = calc.pipeline.evaluate, calc.pipeline.build_base
    wrong = {"pay_factor": {"pay_factor": {"liability": 0.07}}, "tax_rate": {"tax_rate": 0.10}}[change]
    monkeypatch.setattr(calc.pipeline, "build_base",
                        lambda frames, scenario, **kw: real_build(frames, scenario.replace(**wrong), **kw))
    monkeypatch.setattr(calc.pipeline, "evaluate",
                        lambda base, scenario: real_evaluate(base, scenario.replace(**wrong)))
    monkeypatch.setattr(data.store, "code_version", lambda: "f" * 64)
    monkeypatch.setattr(data.access, "code_version", lambda: "f" * 64)

    store = Store.open(url)                          # nothing cached from before the change
    assert store.recompute(pub_id)[2].managers.set_index("manager_id").loc["M2", "pay"] != pytest.approx(735.6)
    after = Access(store, ADMIN).statement(pub_id, "M2")
    for part in ("summary", "lines", "customers", "kpi"):
        pd.testing.assert_frame_equal(after[part], before[part])
    reconciles(after)
    assert after["warnings"] and "account detail is recomputed" in after["warnings"][0]
    assert _cli_statement(monkeypatch, tmp_path, url, "M2") == before_json == approx_doc(M2)

    check = store.verify(pub_id)
    assert (check["same"], check["how"], check["code_changed"]) == (False, None, True)
    assert check["code_version"] == published_code and check["code_now"] == "f" * 64
    assert any(p.startswith("managers: ") and "differ in pay" in p for p in check["problems"]), check["problems"]
    if change == "tax_rate":      # the attributed contributions moved too: so do the frozen statements
        assert check["statements"] == "differ"
        assert any("statement customers" in p and "intermediate" in p for p in check["statement_problems"])
    else:                         # the statements are f x M of the scenario's factors: they still reproduce
        assert check["statements"] == "same" and check["statement_problems"] == []
    capsys.readouterr()
    assert _cli(monkeypatch, url, "verify", "--period", PERIOD) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and f"published with code {published_code[:12]}, now {'f' * 12}" in out
    assert re.search(r"managers: [123] of 3 rows differ in pay \(first: manager_id M\d: [\d.]+ frozen, "
                     r"[\d.]+ now\)", out)


def test_a_calculation_whose_pay_the_lines_do_not_explain_is_not_published(store_url, monkeypatch):
    """The frozen lines are f x M with the scenario's factors: a result whose pay is not their sum
    (here a pay stage that reads another factor) is refused, and nothing is stored."""
    import calc.pipeline

    store = Store.open(store_url)
    store.save_dataset(PERIOD, "tiny.xlsx", "sha-tiny", tiny_bank(), "alice")
    real = calc.pipeline.evaluate
    monkeypatch.setattr(calc.pipeline, "evaluate",
                        lambda base, scenario: real(base, scenario.replace(pay_factor={"intermediate": 0.2})))
    with pytest.raises(ValueError, match=r"do not explain the pay .* M2: the line pays add up to 735\.6"):
        store.publish(PERIOD, Scenario(name="official"), "", "alice")
    assert store.publications().empty
    for table in (T.pub_managers, T.pub_statement_lines, T.pub_statement_customers):
        assert store._frame(select(table)).empty


def test_verify_catches_a_changed_frozen_statement_row(published, monkeypatch, capsys):
    """Same code, same document, but a frozen statement row was altered: verify fails and names it."""
    url, pub_id = published
    store = Store.open(url)
    assert store.verify(pub_id)["statements"] == "same"
    t = T.pub_statement_customers
    with store.engine.begin() as conn:
        unfreeze(conn, t.name)                      # frozen: only a database owner could change it
        conn.execute(t.update().where((t.c.publication_id == pub_id) & (t.c.manager_id == "M2")
                                      & (t.c.customer_id == "C2")).values(intermediate=4660.0))
    check = Store.open(url).verify(pub_id)
    assert check["how"] == "hash" and not check["same"] and check["statements"] == "differ"
    assert check["statement_problems"] == [
        "statement customers: 1 of 4 rows differ in intermediate (first: manager_id M2, customer_id C2: "
        "4660.0 frozen, 4659.0 now)"]
    capsys.readouterr()
    assert _cli(monkeypatch, url, "verify", "--period", PERIOD) == 1
    out = capsys.readouterr().out
    assert "reproduces exactly" in out and "the stored rows were changed" in out


def test_a_publication_from_before_frozen_statements_is_recomputed_with_a_warning(
        published, monkeypatch, tmp_path, capsys):
    url, pub_id = published
    store = Store.open(url)
    frozen = Access(store, ADMIN).statement(pub_id, "M2")
    with store.engine.begin() as conn:              # as a publication made before migration 7 has them
        for table in (T.pub_statement_lines, T.pub_statement_customers, T.pub_statement_kpis):
            unfreeze(conn, table.name)
            conn.execute(delete(table).where(table.c.publication_id == pub_id))
        unfreeze(conn, "publications")              # ... and, made before migration 8, no hash of its rows
        conn.execute(T.publications.update().where(T.publications.c.id == pub_id).values(rows_hash=None))
    chain = Access(Store.open(url), ADMIN).statement(pub_id, "M2")
    assert not chain["frozen"] and "published before statements were frozen" in chain["warnings"][0]
    for part in ("summary", "lines", "customers", "kpi"):          # the same numbers, recomputed
        pd.testing.assert_frame_equal(chain[part], frozen[part])
    capsys.readouterr()
    doc = _cli_statement(monkeypatch, tmp_path, url, "M2")
    assert "published before statements were frozen" in capsys.readouterr().err
    assert "published before statements were frozen" in doc.pop("warning")
    assert doc == approx_doc(M2)
    check = Store.open(url).verify(pub_id)
    assert (check["same"], check["statements"]) == (True, "absent")
    assert _cli(monkeypatch, url, "verify", "--period", PERIOD) == 0
    assert "statements were not frozen" in capsys.readouterr().out
    book = statement_workbook(chain, chain["scenario"], "en")      # the warning goes into the workbook
    import openpyxl
    import io

    wb = openpyxl.load_workbook(io.BytesIO(book))
    assert "notes" in wb.sheetnames and "published before" in wb["notes"]["A2"].value


def test_statements_are_scoped_like_the_published_rows(published):
    """A branch head reads the statements of their branch's managers, with every customer credited
    (cross-branch ones too), and no other; a manager only their own. On PostgreSQL the database
    itself returns only the scope's statement rows."""
    url, pub_id = published
    store = Store.open(url)
    b2 = Access(store, Principal("bh2", "branch_head", "B2"))
    chain = b2.statement(pub_id, "M2")
    assert list(chain["customers"]["customer_id"]) == ["C1", "C2"]     # C1 is booked at B1
    with pytest.raises(PermissionError):
        b2.statement(pub_id, "M1")
    me = Access(store, Principal("m3", "manager", "B1", "M3"))
    assert me.statement(pub_id, "M3")["summary"]["manager_id"].tolist() == ["M3"]
    with pytest.raises(PermissionError):
        me.statement(pub_id, "M1")
    if store.engine.dialect.name != "postgresql":
        return
    t = T.pub_statement_customers
    everyone = store._frame(select(t.c.manager_id, t.c.customer_id).where(t.c.publication_id == pub_id))
    assert len(everyone) == 4
    with scoped(branch="B2"):
        rows = store._frame(select(t.c.manager_id, t.c.customer_id))
        lines = store._frame(select(T.pub_statement_lines.c.manager_id))
    assert sorted(map(tuple, rows.to_numpy())) == [("M2", "C1"), ("M2", "C2")]
    assert set(lines["manager_id"]) == {"M2"}
    with scoped(manager_id="M3"):
        assert store._frame(select(t.c.manager_id, t.c.customer_id)).to_numpy().tolist() == [["M3", "C3"]]
    with scoped(branch="B9"):
        assert store._frame(select(T.pub_statement_kpis.c.kpi)).empty


def test_the_account_detail_is_recomputed_when_read_and_reconciles(published):
    url, pub_id = published
    chain = Access(Store.open(url), ADMIN).statement(pub_id, "M2")
    assert "accounts" not in chain                       # not computed until read
    accounts = chain["accounts"]
    assert sorted(accounts["account_id"]) == ["A1", "A2"]
    per_customer = accounts.groupby("customer_id")["attributed"].sum()
    customers = chain["customers"].set_index("customer_id")["attributed"]
    pd.testing.assert_series_equal(per_customer.sort_index(), customers.sort_index(), check_names=False,
                                   check_index_type=False)


def test_statement_document_of_a_frozen_chain_is_what_the_cli_writes(published, monkeypatch, tmp_path):
    url, pub_id = published
    chain = Store.open(url).statement(pub_id, "M3")
    assert statement_document(chain, PERIOD) == _cli_statement(monkeypatch, tmp_path, url, "M3")


def test_cli_statement_refuses_unknown_periods_and_managers(published, monkeypatch, capsys):
    url, _ = published
    assert _cli(monkeypatch, url, "statement", "--period", "2030Q1", "--manager", "M1") == 1
    assert "has no publication" in capsys.readouterr().err
    assert _cli(monkeypatch, url, "statement", "--period", PERIOD, "--manager", "M9") == 1
    assert "M9 is not in publication" in capsys.readouterr().err
    assert _cli(monkeypatch, url, "statement", "--period", PERIOD, "--manager", "M1") == 0
    assert "pay 629.30" in capsys.readouterr().out


def test_publish_writes_every_statement_row_in_bulk(published):
    """One lines row per manager and pay line, one customers row per assignment, one KPI row per
    manager and KPI, each carrying its manager's branch."""
    url, pub_id = published
    store = Store.open(url)
    counts = {}
    for table in (T.pub_statement_lines, T.pub_statement_customers, T.pub_statement_kpis):
        rows = store._frame(select(table).where(table.c.publication_id == pub_id))
        counts[table.name] = len(rows)
        assert dict(zip(rows["manager_id"], rows["manager_branch"])) == {"M1": "B1", "M2": "B2", "M3": "B1"}
    assert counts == {"pub_statement_lines": 12, "pub_statement_customers": 4,
                      "pub_statement_kpis": 3 * len(Scenario().kpi)}


def test_the_statement_workbook_of_a_frozen_statement(published):
    import io

    import openpyxl

    url, pub_id = published
    chain = Access(Store.open(url), ADMIN).statement(pub_id, "M2")
    wb = openpyxl.load_workbook(io.BytesIO(statement_workbook(chain, chain["scenario"], "zh")))
    assert wb.sheetnames == ["工资单", "条线", "客户", "账户", "指标"]          # no notes: nothing to warn about
    header = [c.value for c in wb["客户"][1]]
    assert header[:6] == ["客户号", "姓名", "所属机构", "角色", "关联度系数", "系数来源"]
    rows = {r[0]: r for r in wb["客户"].iter_rows(min_row=2, values_only=True)}
    assert rows["C2"][header.index("中间业务贡献")] == pytest.approx(4659.0)
    lines = {r[0]: r for r in wb["条线"].iter_rows(min_row=2, values_only=True)}
    assert lines["intermediate"][3] == pytest.approx(465.9)
