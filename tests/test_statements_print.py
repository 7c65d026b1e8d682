"""Issue 13: a branch head downloads every statement of their branch (one workbook) and prints
them (one page each, with signature lines), from the frozen rows of the newest publication."""

from __future__ import annotations

import io

import openpyxl
import pytest

from data.access import Access
from data.auth import Principal
from data.export import branch_statements_workbook, statements_html
from tests.apptest import app


@pytest.fixture
def branch(seeded_store):
    who = Principal("bh_east", "branch_head", "城东支行", None)
    access = Access(seeded_store, who)
    pub = seeded_store.latest_publications().sort_values("period").iloc[-1]
    pid = int(pub["id"])
    ids = list(access.managers(pid)["manager_id"])
    return access, pid, str(pub["period"]), [access.statement(pid, m) for m in ids]


def test_every_statement_of_the_branch_in_one_workbook(branch):
    access, pid, period, chains = branch
    wb = openpyxl.load_workbook(io.BytesIO(branch_statements_workbook(chains, period, "zh")))
    assert wb.sheetnames == ["汇总", "条线", "客户", "指标"]
    summary = list(wb["汇总"].values)
    head, rows = summary[0], summary[1:]
    col = {h: i for i, h in enumerate(head)}
    # one row per manager of 城东支行, nobody from another branch
    assert len(rows) == len(chains) and {r[col["所属机构"]] for r in rows} == {"城东支行"}
    for r in rows:                                  # each pay is the sum of its lines' pay (frozen rows)
        lines = sum(r[col[f"{x}工资"]] for x in ("资产业务", "负债业务", "中间业务", "风险控制"))
        assert r[col["绩效工资"]] == pytest.approx(max(lines, 0.0), abs=0.01)
    lines = list(wb["条线"].values)
    assert len(lines) - 1 == 4 * len(chains)       # four lines per manager, each named by the manager
    assert {r[2] for r in lines[1:]} == {"资产业务", "负债业务", "中间业务", "风险控制"}


def test_printable_statements_have_a_page_each_with_signature_lines(branch):
    access, pid, period, chains = branch
    page = statements_html(chains, period, "城东支行", "zh")
    assert page.count("<section>") == len(chains) and "page-break-after:always" in page
    assert page.count("客户经理签字") == len(chains) and page.count("支行负责人签字") == len(chains)
    for c in chains:
        s = c["summary"].iloc[0]
        assert f"{s['name']}（{s['manager_id']}）" in page and f"{float(s['pay']):,.2f}" in page
    assert f"期间：{period}" in page


def test_printed_text_is_escaped(branch):
    access, pid, period, chains = branch
    chain = dict(chains[0])
    chain["summary"] = chain["summary"].assign(name="<script>alert(1)</script>")
    page = statements_html([chain], period, "<b>x</b>", "zh")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>x</b>" not in page


def test_the_branch_head_sees_the_branch_downloads_and_a_manager_only_their_own(seeded_store):
    at = app("pages/manager.py", "zh", role="branch_head").run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.proto.label for b in at.get("download_button")]
    assert "下载全部工资单（xlsx）" in labels and "下载全部打印版工资单" in labels and "打印版工资单" in labels
    at = app("pages/manager.py", "zh", role="manager").run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert "打印版工资单" in labels and "下载全部工资单（xlsx）" not in labels


def test_why_pay_changed_between_two_published_periods_uses_the_frozen_rows(seeded_store):
    pubs = seeded_store.latest_publications().sort_values("period")
    q2, q3 = int(pubs.iloc[0]["id"]), int(pubs.iloc[1]["id"])
    head = Access(seeded_store, Principal("bh_east", "branch_head", "城东支行", None))
    steps, lines = head.pay_change(q2, q3, "RM2447")
    r = steps.iloc[0]
    frozen = {pid: float(seeded_store.published_managers(pid, manager_id="RM2447")["pay"].iloc[0]) for pid in (q2, q3)}
    # the walk starts at the pay frozen in 2026Q2 and ends at the pay frozen in 2026Q3 ...
    assert r["pay_a"] == pytest.approx(frozen[q2], abs=0.01) and r["pay_b"] == pytest.approx(frozen[q3], abs=0.01)
    # ... and its three effects add up to the difference (the sample's 2026Q2 has the same
    # assignments and factors, so all of it is the contribution effect)
    assert r["contribution_effect"] + r["attribution_effect"] + r["factor_effect"] == pytest.approx(r["change"])
    assert r["contribution_effect"] == pytest.approx(frozen[q3] - frozen[q2], abs=0.01)
    assert set(lines["line"]) == {"asset", "liability", "intermediate", "risk"}
    other = seeded_store.published_managers(q3)
    outsider = other[other["branch"] != "城东支行"]["manager_id"].iloc[0]
    with pytest.raises(PermissionError):
        head.pay_change(q2, q3, outsider)


def test_a_manager_reads_why_their_pay_changed_on_their_statement(seeded_store):
    at = app("pages/manager.py", "zh", role="manager").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "工资为什么变了（与以前发布的期间相比）" in [s.value for s in at.subheader]
    walk = [d.value for d in at.dataframe if "步骤" in d.value.columns]
    assert walk and list(walk[0]["步骤"]) == ["上期工资", "贡献变动", "关联度变动", "挂钩系数变动", "本期工资"]


def test_a_statement_workbook_carries_why_pay_changed(seeded_store):
    from data.export import statement_workbook

    pubs = seeded_store.latest_publications().sort_values("period")
    q2, q3 = int(pubs.iloc[0]["id"]), int(pubs.iloc[1]["id"])
    head = Access(seeded_store, Principal("bh_east", "branch_head", "城东支行", None))
    steps, lines = head.pay_change(q2, q3, "RM2447")
    chain = head.statement(q3, "RM2447")
    wb = openpyxl.load_workbook(io.BytesIO(statement_workbook(chain, chain["scenario"], "zh",
                                                              (steps, lines, "上期工资", "本期工资"))))
    walk = list(wb["工资变动"].values)
    assert [r[0] for r in walk[1:]] == ["上期工资", "贡献变动", "关联度变动", "挂钩系数变动", "本期工资"]
    effects = [r[2] for r in walk[2:5]]
    assert sum(effects) == pytest.approx(walk[5][2]) and walk[5][1] == pytest.approx(float(chain["summary"]["pay"].iloc[0]))
    assert len(list(wb["变动明细"].values)) == 5                           # a header and the four lines
