"""Publishing a chosen scenario (issue 12): pick it, see what differs from the last publication, confirm.

The tiny bank of :mod:`test_statements`, computed by hand there (default scenario): M1 pays
0.05 x 12,586 = 629.3, M2 0.05 x 5,394 + 0.10 x 4,659 = 735.6, M3 0 (floored); ranks M2, M1, M3.
Contribution 17,980 + 9,318 + (319 - 5,000) = 22,617, of which 12,586 + 10,053 - 4,681 = 17,958 is
attributed and 4,659 (half of C2) is not; the points pool of 1,000,000 is shared whole.

With the intermediate pay-link factor at 0.02, M2 pays 269.7 + 0.02 x 4,659 = 362.88 and falls
below M1 (629.3): M1 rises to rank 1, M2 drops to 2; total pay 629.3 + 362.88 = 992.18
(-372.72); contribution, attribution and the points pool do not move.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from calc.output import document_bytes
from calc.pipeline import run
from calc.scenario import Scenario
from data.access import ACCOUNTS_RECOMPUTED
from data.auth import Principal, Users
from data.store import NOT_FROZEN, Store
from test_statements import tiny_bank
from tests.apptest import table_with
from ui.i18n import t
from ui.publish import Published, document_totals, param_label, publish_diff, refusal, scenario_changes
from ui.published import warning_text

ROOT = Path(__file__).resolve().parents[1]
PERIOD = "2026Q3"
OFFICIAL = "官方方案"                       # the period's first publication (v1), default parameters
NAME = "2026Q4 中间业务加码"
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")
CJK = re.compile(r"[\u4e00-\u9fff]")


# ------------------------------------------------------------------------------- the diff, by hand
def _published(scenario: Scenario, dataset_id: int = 7) -> Published:
    """A publication of the tiny bank under ``scenario``, as the store freezes it: rows and document totals."""
    _, result = run(tiny_bank(), scenario)
    return Published(version=1, dataset_id=dataset_id, scenario=scenario, managers=result.managers,
                     totals=document_totals(document_bytes(result)))


def test_the_frozen_document_totals_are_the_hand_computed_ones():
    totals = _published(Scenario(name=OFFICIAL)).totals
    expected = {"contribution": 22_617, "attributed": 17_958, "unattributed": 4_659, "pay": 1_364.9,
                "points_pay": 1_000_000}
    assert {k: totals[k] for k in expected} == pytest.approx(expected, rel=1e-12)


def test_the_diff_lists_each_changed_parameter_the_totals_and_the_managers_who_move():
    """Intermediate factor 0.10 -> 0.02 and the 'advanced' grade bound 70 -> 71: M1 (score between
    70 and 71) rises to rank 1 and falls to the 'manager' grade; M2 drops to rank 2; M3 stays."""
    last = _published(Scenario(name=OFFICIAL))
    m1_score = float(last.managers.set_index("manager_id").loc["M1", "score"])
    assert 70 <= m1_score < 71, "the grade move below needs M1's score between the two bounds"
    new = Scenario(name=NAME).replace(pay_factor={"intermediate": 0.02}, grades={"advanced": 71.0})
    _, result = run(tiny_bank(), new)
    diff = publish_diff(last, new, result.managers, result.totals, dataset_id=7)

    assert not diff.identical
    assert list(diff.params.itertuples(index=False, name=None)) == [
        ("pay_factor.intermediate", 0.10, 0.02), ("grades.advanced", 70.0, 71.0)]
    totals = diff.totals.set_index("item")
    assert list(totals.index) == ["contribution", "attributed", "unattributed", "pay", "points_pay"]
    assert totals.loc["pay", ["old", "new", "delta"]].tolist() == pytest.approx([1_364.9, 992.18, -372.72], rel=1e-12)
    for item, value in (("contribution", 22_617), ("attributed", 17_958), ("unattributed", 4_659),
                        ("points_pay", 1_000_000)):
        assert totals.loc[item, ["old", "new"]].tolist() == pytest.approx([value, value], rel=1e-12), item
        assert totals.loc[item, "delta"] == pytest.approx(0, abs=1e-6), item

    movers = diff.movers.set_index("manager_id")
    assert sorted(movers.index) == ["M1", "M2"], "M3 keeps rank 3 and its grade"
    assert movers.loc["M1", ["rank_a", "rank_b", "grade_a", "grade_b"]].tolist() == [2, 1, "advanced", "manager"]
    assert movers.loc["M2", ["rank_a", "rank_b", "grade_a", "grade_b"]].tolist() == [1, 2, "manager", "manager"]
    assert movers.loc["M2", ["pay_a", "pay_b"]].tolist() == pytest.approx([735.6, 362.88], rel=1e-12)
    assert movers.loc["M2", "cause"] == "factor" and movers.loc["M2", "driver"] == "intermediate"


def test_the_same_parameters_on_the_same_dataset_are_identical_whatever_the_name():
    last = _published(Scenario(name=OFFICIAL))
    same = Scenario(name="another name")
    _, result = run(tiny_bank(), same)
    diff = publish_diff(last, same, result.managers, result.totals, dataset_id=7)
    assert diff.identical and diff.params.empty and diff.movers.empty
    other_data = publish_diff(last, same, result.managers, result.totals, dataset_id=8)
    assert not other_data.identical
    assert list(other_data.params.itertuples(index=False, name=None)) == [("dataset", 7, 8)]
    made_by = Published(**{**last.__dict__, "code_version": "a" * 64})
    assert publish_diff(made_by, same, result.managers, result.totals, 7, code="a" * 64).identical
    other_code = publish_diff(made_by, same, result.managers, result.totals, 7, code="b" * 64)
    assert not other_code.identical, "the same parameters with changed calculation code may pay otherwise"
    assert list(other_code.params.itertuples(index=False, name=None)) == [("code_version", "a" * 12, "b" * 12)]


def test_kpi_table_changes_are_named_by_code_and_attribute():
    old = Scenario()
    rows = [dict(code=k.code, perspective=k.perspective, weight=k.weight, kind=k.kind, cap=k.cap) for k in old.kpi]
    first = rows[0]["code"]
    reweighted = old.replace(kpi=[{**rows[0], "weight": rows[0]["weight"] + 5}, *rows[1:]])
    assert scenario_changes(old, reweighted) == [(f"kpi.{first}.weight", rows[0]["weight"], rows[0]["weight"] + 5)]
    dropped = old.replace(kpi=rows[1:])
    [(key, was, now)] = scenario_changes(old, dropped)
    assert (key, now) == (f"kpi.{first}", None) and was.startswith(first + " ")
    reordered = old.replace(kpi=[*rows[1:], rows[0]])
    assert scenario_changes(old, reordered) == [("kpi", " ".join(r["code"] for r in rows),
                                                 " ".join(r["code"] for r in [*rows[1:], rows[0]]))]
    assert param_label(f"kpi.{first}.weight", "zh") == "指标 · 存款日均余额 · 权重"          # deposit_avg by its name
    assert param_label("pay_factor.intermediate", "zh") == "绩效工资挂钩系数 · 中间业务"


def test_every_scenario_parameter_has_a_name_in_both_languages():
    """A parameter added to the scenario without a label would show its i18n key instead."""
    keys = []
    for field, value in Scenario().to_dict().items():
        if field not in ("name", "kpi"):
            keys += [f"{field}.{k}" for k in value] if isinstance(value, dict) else [field]
    keys += ["dataset", "code_version", "kpi", "kpi.deposit_avg", "kpi.deposit_avg.weight", "kpi.deposit_avg.cap",
             "edits"]
    for key in keys:
        zh, en = param_label(key, "zh"), param_label(key, "en")
        assert "param_" not in zh + en and "kpi_" not in zh + en, key
        assert all(CJK.search(part) for part in zh.split(" · ") if part != "deposit_avg"), (key, zh)
        assert not CJK.search(en), (key, en)


def test_every_store_refusal_is_said_in_the_users_language(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'refusals.db'}")
    with pytest.raises(ValueError) as no_data:
        store.publish(PERIOD, Scenario(name=OFFICIAL), "", "boss")
    store.save_dataset(PERIOD, "tiny.xlsx", "sha-refusals", tiny_bank(), "boss")
    store.publish(PERIOD, Scenario(name=OFFICIAL), "", "boss")
    with pytest.raises(ValueError) as no_reason:
        store.publish(PERIOD, Scenario(name=NAME, stock_factor=0.5), "  ", "boss")
    key, fields = refusal(no_reason.value)
    assert (key, fields) == ("publish_needs_reason", {"version": "1"})
    assert t(key, "zh", period=PERIOD, **fields) == "2026Q3 已发布过（第 1 版）：重新发布须填写原因。"
    assert refusal(no_data.value)[0] == "publish_no_dataset"
    assert refusal(PermissionError("role analyst may not publish")) == ("publish_not_allowed", {})
    with pytest.raises(ValueError) as too_long:
        store.publish(PERIOD, Scenario(name="名" * 201), "longer name", "boss")
    assert refusal(too_long.value) == ("publish_name_too_long", {"max": "200"})
    assert len(store.publications(PERIOD)) == 1
    key, fields = refusal(ValueError("something new"))
    assert key == "publish_refused" and t(key, "zh", **fields).startswith("发布被拒绝，未保存任何内容。")
    both = ValueError("the result holds a non-finite number: manager M1, column pay is inf; nothing was "
                      "published / 结果含非有限数值：M1 的 pay 为 inf，未发布")     # the store writes some in both
    assert refusal(both, "zh") == ("publish_refused", {"err": "结果含非有限数值：M1 的 pay 为 inf，未发布"})
    assert refusal(both, "en")[1]["err"].startswith("the result holds a non-finite number")
    for key in ("publish_needs_reason", "publish_no_dataset", "publish_not_allowed", "publish_statements_broken",
                "publish_identical", "publish_first"):
        assert not ENGLISH_WORD.search(t(key, "zh", period=PERIOD, version=1)), key


def test_statement_warnings_are_shown_in_one_language():
    for produced, key in ((NOT_FROZEN, "warning_not_frozen"), (ACCOUNTS_RECOMPUTED, "warning_accounts_recomputed")):
        zh, en = warning_text(produced, "zh"), warning_text(produced, "en")
        assert zh == t(key, "zh") and en == t(key, "en")
        assert CJK.search(zh) and not ENGLISH_WORD.search(zh), zh
        assert not CJK.search(en), en
    assert warning_text("an unknown [note](x)", "zh") == r"an unknown \[note\]\(x\)"     # as received, inert


# ------------------------------------------------------------------------------- the page
@pytest.fixture
def flow_store(tmp_path, monkeypatch):
    """A store of its own: the tiny bank as 2026Q3, published once (v1, default parameters), and
    an administrator and a branch head of B1. The page tests publish here, not in the shared store."""
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    store = Store.open(url)
    store.save_dataset(PERIOD, "tiny.xlsx", f"sha-{uuid.uuid4().hex}", tiny_bank(), "boss")
    store.publish(PERIOD, Scenario(name=OFFICIAL), "", "boss")
    users = Users(store)
    users.create("boss", "boss-password-1", "admin", actor="t", first_admin=True)
    users.create("head", "head-password-1", "branch_head", actor="boss", branch="B1")
    yield store


def _page(page: str, lang: str, who: Principal) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.session_state["lang"] = lang
    at.session_state["_who"] = who
    at.session_state["_last_seen"] = time.time()
    return at.run()


def _messages(at: AppTest) -> list[str]:
    return [str(e.value) for kind in (at.error, at.warning, at.info, at.success) for e in kind]


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _publish_button(at: AppTest):
    found = [b for b in at.button if b.key == "publish_go"]
    return found[0] if found else None


def test_publishing_a_saved_scenario_shows_the_differences_asks_and_freezes_that_scenario(flow_store):
    at = _page("pages/scenarios.py", "zh", Principal("boss", "admin"))
    _ok(at)
    at.slider(key="pay_factor_intermediate").set_value(0.02).run()
    at.text_input(key="scenario_name").input(NAME)
    at.button(key="FormSubmitter:save_form-保存").click().run()
    _ok(at)
    at.button(key="whatif_reset").click().run()          # the live sliders go back: the choice is what counts
    assert at.slider(key="pay_factor_intermediate").value == pytest.approx(0.10)
    assert at.radio(key="publish_source").value == "saved"
    at.selectbox(key="publish_pick").select(f"{NAME} v1").run()
    _ok(at)

    params = table_with(at, "参数", "方案文件键", "上次发布", "本次")
    assert params.to_dict("records") == [{"参数": "绩效工资挂钩系数 · 中间业务", "方案文件键": "pay_factor.intermediate",
                                          "上次发布": "0.1", "本次": "0.02"}]
    totals = table_with(at, "项目", "上次发布", "本次", "差额").set_index("项目")
    assert totals.loc["绩效工资合计", ["上次发布", "本次", "差额"]].tolist() == pytest.approx([1364.9, 992.18, -372.72])
    movers = table_with(at, "上次名次", "本次名次").set_index("客户经理编号")
    assert sorted(movers.index) == ["M1", "M2"]
    assert movers.loc["M1", ["上次名次", "本次名次"]].tolist() == [2, 1]
    assert movers.loc["M2", ["上次名次", "本次名次", "本次工资"]].tolist() == pytest.approx([1, 2, 362.88])

    button = _publish_button(at)
    assert button is not None and button.disabled, "nothing is published before the user confirms"
    [confirm] = [c for c in at.checkbox if c.key and c.key.startswith("publish_confirm_")]
    assert f"「{NAME}」" in confirm.label and "第 2 版" in confirm.label
    confirm.check().run()
    _publish_button(at).click().run()                      # a re-publication without a reason
    _ok(at)
    assert "2026Q3 已发布过（第 1 版）：重新发布须填写原因。" in [e.value for e in at.error]
    assert len(flow_store.publications(PERIOD)) == 1
    for message in _messages(at):                          # no store text in English on the zh page
        assert not ENGLISH_WORD.search(message), message

    at.text_input(key="publish_reason").input("四季度中间业务加码").run()
    _publish_button(at).click().run()
    _ok(at)
    assert "已发布：2026Q3 第 2 版" in [e.value for e in at.success]
    pubs = flow_store.publications(PERIOD)
    assert list(pubs["version"]) == [2, 1]
    frozen = flow_store.load_scenario(int(pubs.iloc[0]["scenario_id"]))
    assert frozen.name == NAME and frozen.pay_factor["intermediate"] == 0.02
    assert pubs.iloc[0]["reason"] == "四季度中间业务加码"
    ranks = flow_store.published_managers(int(pubs.iloc[0]["id"])).set_index("manager_id")["rank"]
    assert ranks.to_dict() == {"M1": 1, "M2": 2, "M3": 3}

    at.run()                                               # the same choice again: nothing to publish
    _ok(at)
    assert "与第 2 版相同（数据集和参数都没有变化），无需发布。" in [e.value for e in at.info]
    assert _publish_button(at) is None
    assert len(flow_store.publications(PERIOD)) == 2
    for message in _messages(at):
        assert not ENGLISH_WORD.search(message), message


def test_the_current_what_if_is_saved_under_its_name_then_published(flow_store):
    at = _page("pages/scenarios.py", "en", Principal("boss", "admin"))
    at.slider(key="pay_factor_liability").set_value(0.1).run()
    at.radio(key="publish_source").set_value("new").run()
    _ok(at)
    assert _publish_button(at) is None and any("Name the current what-if" in m for m in _messages(at))
    name = "liability x2"
    at.text_input(key="publish_new_name").input(name).run()
    params = table_with(at, "Parameter", "Last published", "This publication")
    assert params.to_dict("records") == [{"Parameter": "Pay-link factors · Liability",
                                          "Scenario file key": "pay_factor.liability", "Last published": "0.05",
                                          "This publication": "0.1"}]
    [confirm] = [c for c in at.checkbox if c.key and c.key.startswith("publish_confirm_")]
    confirm.check().run()
    at.text_input(key="publish_reason").input("double the liability factor").run()
    assert _publish_button(at).label == "Save and publish"
    _publish_button(at).click().run()
    _ok(at)
    assert "Published: 2026Q3 v2" in [e.value for e in at.success]
    assert name in set(flow_store.scenarios()["name"])
    pub = flow_store.publications(PERIOD).iloc[0]
    frozen = flow_store.load_scenario(int(pub["scenario_id"]))
    assert (frozen.name, frozen.pay_factor["liability"], int(pub["version"])) == (name, 0.1, 2)


def test_a_branch_head_reads_a_statement_warning_in_their_language(flow_store, monkeypatch):
    """The calculation code changed since the publication: the warning Access writes in both
    languages (the account detail is recomputed) is shown in the reader's language only."""
    import data.access

    monkeypatch.setattr(data.access, "code_version", lambda: "f" * 64)
    for lang in ("zh", "en"):
        at = _page("pages/manager.py", lang, Principal("head", "branch_head", "B1"))
        _ok(at)
        assert [w.value for w in at.warning] == [t("warning_accounts_recomputed", lang)]


def test_coefficient_edits_are_a_parameter_of_the_diff():
    edit = {"action": "set", "customer_id": "003884", "manager_id": "RM0432", "coefficient": 0.5}
    rows = scenario_changes(Scenario(), Scenario().replace(edits=[edit]))
    assert rows == [("edits", None, "set 003884/RM0432 0.5")]
    assert scenario_changes(Scenario().replace(edits=[edit]), Scenario()) == [("edits", "set 003884/RM0432 0.5", None)]
