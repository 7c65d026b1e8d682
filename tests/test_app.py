"""The Streamlit app through AppTest: pages, the what-if panel, uploads."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from calc.pipeline import run
from calc.scenario import Scenario
from data.ingest import load_extract
from tests.apptest import app, ranking_ids, table_with
from ui.frame import PANEL_FILES
from tests.test_ingest import BASE, write_book

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app.py"] + sorted(p.replace(str(ROOT) + "/", "") for p in glob.glob(str(ROOT / "pages" / "*.py")))
SAMPLE = ROOT / "data" / "sample" / "sample_bank.xlsx"


@pytest.fixture(autouse=True)
def _store(seeded_store):
    return seeded_store


def page_text(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.title] + [e.value for e in at.subheader]
    parts += [e.label for e in at.metric]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def sample_frames():
    extract, _ = load_extract(SAMPLE)
    return extract.frames


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_in_both_languages(page, lang):
    at = app(page, lang).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    title = at.title[0].value
    assert title, "each page has a title"
    is_chinese = any("\u4e00" <= ch <= "\u9fff" for ch in title)
    assert is_chinese == (lang == "zh"), title


def test_panel_has_the_documented_widget_keys():
    at = app().run()
    for key in ("pay_factor_asset", "pay_factor_liability", "pay_factor_intermediate", "pay_factor_risk",
                "role_weight_primary", "role_weight_secondary", "role_weight_support", "stock_factor"):
        assert at.slider(key=key).value == pytest.approx(
            {**{f"pay_factor_{k}": v for k, v in Scenario().pay_factor.items()},
             **{f"role_weight_{k}": v for k, v in Scenario().role_weight.items()}, "stock_factor": 1.0}[key])
    assert at.number_input(key="pool").value == 1_000_000
    assert at.radio(key="pay_method").value == "factor"


def test_moving_intermediate_factor_reorders_the_ranking_as_calc_predicts(sample_frames):
    at = app("pages/rankings.py").run()
    before = ranking_ids(at)
    at.slider(key="pay_factor_intermediate").set_value(0.4).run()
    assert not at.exception
    after = ranking_ids(at)
    _, expected = run(sample_frames, Scenario(pay_factor={**Scenario().pay_factor, "intermediate": 0.4}))
    want = list(expected.managers.sort_values(["rank", "manager_id"])["manager_id"])
    assert after == want
    assert after != before, "the sample bank should reorder when fee income pays 4x more"
    df = table_with(at, "客户经理编号", "绩效工资", "名次变化")
    pay = dict(zip(df["客户经理编号"], df["绩效工资"]))
    exp_pay = dict(zip(expected.managers["manager_id"], expected.managers["pay"]))
    assert all(abs(pay[k] - exp_pay[k]) < 0.01 for k in exp_pay)


FRAGMENT_PAGES = list(PANEL_FILES)         # every page with the what-if panel


def _shown(tree) -> dict:
    """What a user reads on a page: titles, captions, metrics, tables, the number boxes."""
    return {"title": [e.value for e in tree.title], "caption": [e.value for e in tree.caption],
            "metric": [(e.label, e.value, e.delta) for e in tree.metric],
            "tables": [d.value.to_dict("list") for d in tree.dataframe],
            "boxes": {e.key: e.value for e in tree.number_input}}


@pytest.mark.parametrize("page", FRAGMENT_PAGES)
@pytest.mark.parametrize("lever, value", [("pay_factor_intermediate", 0.2), ("role_weight_secondary", 0.5)])
def test_a_lever_move_reruns_only_what_it_changes(page, lever, value):
    """A slider move reruns the page's what-if fragment and the moved pair, not the frame
    (no language switch, navigation, other slider or title is sent again), and what that partial rerun
    shows is what a full rerun of the page shows: nothing outside it depends on the lever."""
    at = app(page).run()
    before = _shown(at)
    at.slider(key=lever).set_value(value).run()
    assert not at.exception
    partial = at.fragment_tree
    assert partial is not None, "the move reran the whole page"
    assert not [r for r in partial.radio if r.key == "lang"] and not [s for s in partial.selectbox if s.key == "dataset_pick"]
    assert [s.key for s in partial.slider] == [lever]                      # the moved pair only ...
    assert {e.key for e in partial.number_input} >= {lever + "_box"}
    assert partial.number_input(key=lever + "_box").value == value        # ... its box shows the new value
    full = _shown(at)                                                      # the page rerun in full (tests.apptest.Page)
    got = _shown(partial)
    assert got["title"] == [] and full["title"] == before["title"]    # a move does not send the title again
    for part in ("metric", "tables"):
        assert got[part] == full[part], part
    timing = [c for c in got["caption"] if "毫秒" in c]                   # "recalculated in N ms" differs by run
    assert len(timing) == 1 and set(got["caption"]) - set(timing) <= set(full["caption"])
    assert got["boxes"][lever + "_box"] == full["boxes"][lever + "_box"] == value
    if page == "pages/rankings.py":                                        # and it is the new what-if, not the old page
        assert got["metric"] != before["metric"]


def _move_with_a_stale_box(at, moved: tuple[str, float], box: tuple[str, float]) -> None:
    """One interaction as the browser sends it while keys are pressed fast: slider ``moved[0]`` at
    ``moved[1]``, and the number box of lever ``box[0]`` still showing ``box[1]``, the value it held
    before the server's last write reached the browser."""
    at.slider(key=moved[0]).set_value(moved[1])
    at.number_input(key=box[0] + "_box").set_value(box[1])
    at.run()
    assert not at.exception


def test_a_slider_move_beats_the_stale_number_box_reported_with_it():
    """Keys held down on a slider: the browser sends the next slider value before the last move's
    box value reached it, so one interaction reports both the slider (new) and its number box
    (an older value). The slider is what the user moved: slider, box and figures take its value."""
    at = app("pages/rankings.py").run()
    at.slider(key="pay_factor_intermediate").set_value(0.12).run()
    _move_with_a_stale_box(at, ("pay_factor_intermediate", 0.2), ("pay_factor_intermediate", 0.105))
    assert at.slider(key="pay_factor_intermediate").value == 0.2
    assert at.number_input(key="pay_factor_intermediate_box").value == 0.2
    at.number_input(key="pay_factor_intermediate_box").set_value(0.15).run()  # the box alone still moves it
    assert at.slider(key="pay_factor_intermediate").value == 0.15


def test_a_box_value_from_before_the_last_write_sent_with_another_lever_is_not_an_edit():
    """Presses alternating between two sliders: the browser sends the first slider's box as it
    showed it before the server's last write reached it, along with the second slider's move. That
    is not an edit: the first lever keeps its value. A box typed afterwards is an edit, even back
    to the value it held before (no echo can follow an edit the browser made)."""
    at = app("pages/rankings.py").run()
    at.slider(key="pay_factor_intermediate").set_value(0.12).run()            # box 0.1 -> 0.12
    _move_with_a_stale_box(at, ("role_weight_secondary", 0.35), ("pay_factor_intermediate", 0.1))
    assert at.slider(key="pay_factor_intermediate").value == 0.12
    assert at.slider(key="role_weight_secondary").value == 0.35
    at.number_input(key="pay_factor_intermediate_box").set_value(0.15).run()  # typed: an edit
    assert at.slider(key="pay_factor_intermediate").value == 0.15
    at.number_input(key="pay_factor_intermediate_box").set_value(0.1).run()   # typed back at once: an edit too
    assert at.slider(key="pay_factor_intermediate").value == 0.1
    assert at.number_input(key="pay_factor_intermediate_box").value == 0.1


def test_a_lever_move_after_the_baseline_changed_reruns_the_whole_page():
    """A baseline published or loaded since the page was drawn (here: loaded by another page of the
    session) is not compared against the old one: the next move reruns the page in full, so the
    panel and every figure start from the new baseline."""
    at = app("pages/rankings.py").run()
    at.slider(key="pay_factor_intermediate").set_value(0.2).run()
    assert at.fragment_tree is not None
    at.session_state["_baseline_toml"] = Scenario(name="loaded", stock_factor=0.9).to_toml()
    at.slider(key="pay_factor_intermediate").set_value(0.25).run()
    assert not at.exception
    assert at.fragment_tree is None                                   # the whole page, not the fragment
    assert any(c.value.startswith("已修改 2 项参数 · ") for c in at.sidebar.caption)   # pay factor and stock factor


def test_reset_returns_to_baseline():
    at = app("pages/rankings.py").run()
    at.slider(key="role_weight_primary").set_value(0.3).run()
    assert at.slider(key="role_weight_primary").value == 0.3
    at.button(key="whatif_reset").click().run()
    assert at.slider(key="role_weight_primary").value == 0.7


def test_reset_also_drops_a_kpi_preset():
    at = app("pages/scorecard.py", "en").run()
    at.radio(key="kpi_preset").set_value("balanced").run()
    assert "_kpi_table" in at.session_state
    at.button(key="whatif_reset").click().run()
    assert not at.exception
    assert "_kpi_table" not in at.session_state and at.radio(key="kpi_preset").value == ""


def test_an_imported_scenario_is_saved_once_not_on_every_rerun(seeded_store):
    import uuid

    name = f"imported-{uuid.uuid4().hex[:8]}"
    at = app("pages/scenarios.py", "en").run()
    toml = Scenario(name=name, stock_factor=0.9).to_toml().encode()
    at.file_uploader(key="scenario_upload").set_value((f"{name}.toml", toml, "application/toml")).run()
    at.slider(key="stock_factor").set_value(0.5).run()                 # the uploader still holds the file
    at.text_input(key="scenario_name").input(name)
    at.button(key="FormSubmitter:save_form-Save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    versions = seeded_store.scenarios().query("name == @name").sort_values("version")
    assert list(versions["version"]) == [1, 2]
    assert seeded_store.load_scenario(int(versions["id"].iloc[-1])).stock_factor == 0.5   # the save stays newest


def test_slider_value_survives_a_page_switch():
    at = app("app.py").run()
    at.slider(key="stock_factor").set_value(0.6).run()
    at.switch_page("pages/customers.py").run()
    assert not at.exception
    assert at.slider(key="stock_factor").value == 0.6
    at.switch_page("pages/rankings.py").run()
    assert at.slider(key="stock_factor").value == 0.6


def test_query_parameters_start_the_what_if():
    at = app("pages/rankings.py")
    at.query_params["pay_factor_risk"] = "0.2"
    at.run()
    assert at.slider(key="pay_factor_risk").value == 0.2


def test_non_finite_query_parameters_are_ignored():
    at = app("pages/rankings.py")
    for key, raw in (("pool", "nan"), ("pay_factor_asset", "inf"), ("stock_factor", "-inf"), ("pay_factor_risk", "0.2")):
        at.query_params[key] = raw
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="pay_factor_risk").value == 0.2                     # the good one still applies
    assert at.slider(key="pay_factor_asset").value == 0.06 and at.slider(key="stock_factor").value == 1.0
    assert at.dataframe


def test_invalid_upload_shows_every_report_row(tmp_path):
    sheets = {k: [list(r) for r in v] for k, v in BASE.items()}
    sheets["账户"][1][6] = 3.45        # row 2
    sheets["业绩分配"][3][2] = "老板"   # row 4
    data = write_book(tmp_path / "bad.xlsx", sheets).read_bytes()
    at = app("pages/upload.py", "en").run()
    at.file_uploader(key="extract_upload").set_value(("bad.xlsx", data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    report = table_with(at, "severity", "message_en")
    errors = report[report["severity"] == "error"]
    assert {(s, r) for s, r in zip(errors["sheet"], errors["row"])} == {("账户", 2), ("业绩分配", 4)}
    assert any("looks like a percent" in m for m in errors["message_en"])
    assert at.error, "the page says the extract was not accepted"


def test_valid_upload_can_be_accepted_and_is_used(tmp_path):
    data = write_book(tmp_path / "ok.xlsx", BASE).read_bytes()
    at = app("app.py", "en").run()
    at.switch_page("pages/upload.py").run()
    at.file_uploader(key="extract_upload").set_value(("ok.xlsx", data, "application/octet-stream")).run()
    at.text_input(key="upload_period").set_value("2020Q1").run()
    at.button(key="accept_dataset").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/rankings.py").run()
    assert not at.exception
    assert sorted(ranking_ids(at)) == ["007", "008"]


def test_accept_valid_rows_quarantines_the_rest(tmp_path):
    sheets = {k: [list(r) for r in v] for k, v in BASE.items()}
    sheets["客户"][2][2] = None          # customer 000124 row 3: branch missing -> rejected
    data = write_book(tmp_path / "part.xlsx", sheets).read_bytes()
    at = app("pages/upload.py", "en").run()
    at.file_uploader(key="extract_upload").set_value(("part.xlsx", data, "application/octet-stream")).run()
    at.checkbox(key="accept_valid_rows").check().run()
    at.text_input(key="upload_period").set_value("2020Q2").run()
    at.button(key="accept_dataset").click().run()
    assert not at.exception
    q = table_with(at, "sheet", "row", "reason")
    # the customer row, its account (row 4) and its assignment (row 4) are all kept in quarantine
    assert {(s, r) for s, r in zip(q["sheet"], q["row"])} == {("客户", 3), ("账户", 4), ("业绩分配", 4)}


def test_displayed_ranking_equals_cli_evaluate(tmp_path):
    import json
    import subprocess
    import sys

    scen = tmp_path / "s.toml"
    scen.write_text("[pay_factor]\nintermediate = 0.25\n", encoding="utf-8")
    out = tmp_path / "o.json"
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), "evaluate", str(SAMPLE), "--scenario", str(scen),
                        "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cli_rows = json.loads(out.read_text(encoding="utf-8"))["managers"]
    at = app("pages/rankings.py").run()
    at.slider(key="pay_factor_intermediate").set_value(0.25).run()
    df = table_with(at, "客户经理编号", "绩效工资", "排名")
    assert list(df["客户经理编号"]) == [r["manager_id"] for r in cli_rows]
    assert list(df["排名"]) == [r["rank"] for r in cli_rows]
    assert all(abs(a - r["pay"]) < 0.01 for a, r in zip(df["绩效工资"], cli_rows))


def test_upload_reports_the_csv_encoding_used(tmp_path):
    files = []
    for name, rows in BASE.items():
        text = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)
        files.append((f"{name}.csv", text.encode("gb18030"), "text/csv"))
    at = app("pages/upload.py", "en").run()
    at.file_uploader(key="extract_upload").set_value(files).run()
    assert any("gb18030" in c.value for c in at.caption)


# ------------------------------------------------------------------ live what-if: where the panel is, paging, charts

PANEL_KEYS = ("pay_factor_asset", "pay_factor_liability", "pay_factor_intermediate", "pay_factor_risk",
              "role_weight_primary", "role_weight_secondary", "role_weight_support", "stock_factor")


@pytest.mark.parametrize("page", ["pages/history.py", "pages/upload.py", "pages/admin.py"])
def test_the_panel_is_absent_where_no_lever_acts(page):
    at = app(page, "en").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.slider, [s.key for s in at.slider]
    assert "pool" not in {w.key for w in at.number_input} and "whatif_reset" not in {b.key for b in at.button}


@pytest.mark.parametrize("page, key", [("app.py", "page_overview"), ("pages/rankings.py", "page_rankings"),
                                       ("pages/customers.py", "page_customers"), ("pages/scorecard.py", "page_scorecard"),
                                       ("pages/manager.py", "page_manager"), ("pages/scenarios.py", "page_scenarios")])
def test_the_panel_and_a_number_box_per_slider_are_on_the_pages_a_lever_changes(page, key):
    from ui.i18n import t

    at = app(page, "en").run()
    assert not at.exception, [e.value for e in at.exception]
    for k in PANEL_KEYS:
        assert at.number_input(key=f"{k}_box").value == at.slider(key=k).value
    assert t(f"levers_{key}", "en") in [c.value for c in at.caption], "the page says what the levers change on it"


def test_customers_page_says_pay_factors_do_not_change_it():
    at = app("pages/customers.py", "en").run()
    assert any("pay-link factors, the pool and the rank basis do not" in c.value for c in at.caption)


def test_a_number_box_sets_the_exact_value_and_the_ranking_follows(sample_frames):
    at = app("pages/rankings.py").run()
    at.number_input(key="pay_factor_intermediate_box").set_value(0.3725).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="pay_factor_intermediate").value == pytest.approx(0.3725)
    _, expected = run(sample_frames, Scenario(pay_factor={**Scenario().pay_factor, "intermediate": 0.3725}))
    assert ranking_ids(at) == list(expected.managers.sort_values(["rank", "manager_id"])["manager_id"])
    df = table_with(at, "客户经理编号", "绩效工资", "机构内排名")
    pay = dict(zip(df["客户经理编号"], df["绩效工资"]))
    assert all(abs(pay[k] - v) < 0.01 for k, v in zip(expected.managers["manager_id"], expected.managers["pay"]))
    assert at.query_params["pay_factor_intermediate"] in ("0.3725", ["0.3725"])     # the link keeps the exact value
    # and the other way round: the slider moves the box
    at.slider(key="pay_factor_intermediate").set_value(0.2).run()
    assert at.number_input(key="pay_factor_intermediate_box").value == pytest.approx(0.2)


def test_rankings_says_who_moved_above_the_table(sample_frames):
    at = app("pages/rankings.py", "en").run()
    assert at.metric[0].value.startswith("0 /")                           # nothing moved yet
    at.slider(key="pay_factor_intermediate").set_value(0.4).run()
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Managers whose rank moved", "Biggest rise", "Biggest fall", "Total pay (against the baseline)"]
    moved = int(at.metric[0].value.split(" /")[0])
    _, before = run(sample_frames, Scenario())
    _, after = run(sample_frames, Scenario(pay_factor={**Scenario().pay_factor, "intermediate": 0.4}))
    ranks = before.managers.set_index("manager_id")["rank"] - after.managers.set_index("manager_id")["rank"]
    assert moved == int((ranks != 0).sum()) > 0
    top = at.dataframe[0].value                                          # the biggest moves come first on the page
    assert list(top.columns[:3]) == ["Manager ID", "Name", "Branch"] and len(top) == min(5, moved)
    assert abs(top["Rank change"].iloc[0]) == ranks.abs().max()
    # the same rows, order and figures as calc.explain.compare over every manager
    from calc.explain import compare

    s2 = Scenario(pay_factor={**Scenario().pay_factor, "intermediate": 0.4})
    want = compare(before, after, Scenario(), s2).head(len(top))
    assert list(top["Manager ID"]) == list(want["manager_id"])
    assert list(top["Rank change"]) == list(want["rank_change"])
    assert all(abs(x - y) < 0.01 for x, y in zip(top["Pay change"], want["pay_delta"]))
    from ui.i18n import t

    assert list(top["Main line"]) == [t(d, "en") if d else "" for d in want["driver"]]


def test_the_panel_survives_a_page_without_it():
    at = app("app.py").run()
    at.switch_page("pages/rankings.py").run()
    at.slider(key="stock_factor").set_value(0.55).run()
    at.switch_page("pages/history.py").run()
    assert not at.exception and not at.slider
    at.switch_page("pages/rankings.py").run()
    assert at.slider(key="stock_factor").value == 0.55 and at.number_input(key="stock_factor_box").value == 0.55


def test_a_long_table_sends_one_page_and_offers_every_row():
    at = app("pages/customers.py", "en").run()
    table = table_with(at, "Customer ID", "Coefficient sum", "Unattributed")
    assert 0 < len(table) <= 50
    assert "unattributed_table_all_rows" in {b.key for b in at.get("download_button")}
    first = list(table["Customer ID"])
    at.number_input(key="unattributed_table_page").set_value(2).run()
    second = list(table_with(at, "Customer ID", "Coefficient sum", "Unattributed")["Customer ID"])
    assert second and not set(first) & set(second)
    at.text_input(key="unattributed_table_search").input(first[0]).run()
    found = table_with(at, "Customer ID", "Coefficient sum", "Unattributed")
    assert list(found["Customer ID"]) == [first[0]]
    assert at.number_input(key="unattributed_table_page").value == 1


def test_store_reads_are_cached_between_reruns(monkeypatch):
    """A slider move asks the store nothing: the gate, the dataset list, the baseline are kept."""
    from data.auth import Users
    from data.store import Store

    at = app("pages/rankings.py").run()
    at.slider(key="pay_factor_risk").set_value(0.1).run()            # warm: everything read once
    calls = []
    for cls, name in ((Store, "datasets"), (Store, "publications"), (Store, "latest_dataset"), (Users, "principal")):
        original = getattr(cls, name)
        monkeypatch.setattr(cls, name, lambda self, *a, _o=original, _n=name, **k: calls.append(_n) or _o(self, *a, **k))
    at.slider(key="pay_factor_risk").set_value(0.12).run()
    at.slider(key="role_weight_support").set_value(0.2).run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == []


def test_an_empty_store_says_so_on_the_panel_pages_and_the_upload_page_works(tmp_path, monkeypatch):
    import time

    from data.auth import Principal, Users
    from data.store import Store

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("JIXIAO_DATABASE_URL", url)
    Users(Store.open(url)).create("boss", "boss-password-1", "admin", actor="t", first_admin=True)
    for page in ("pages/rankings.py", "pages/upload.py"):
        at = AppTest.from_file(str(ROOT / page), default_timeout=60)
        at.session_state["lang"] = "en"
        at.session_state["_who"] = Principal("boss", "admin")
        at.session_state["_last_seen"] = time.time()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.slider
        if page == "pages/rankings.py":
            assert "no dataset" in at.info[0].value
        else:
            assert at.file_uploader


def test_a_scenario_name_is_shown_as_typed_never_as_a_link():
    """A baseline named like a markdown link shows in the sidebar as text (issue 16)."""
    hostile = "[点我](http://evil.example/x) **粗体**"
    at = app("pages/rankings.py", _baseline_toml=Scenario(name=hostile).to_toml())
    at.run()
    assert not at.exception
    shown = [m.value for m in at.sidebar.markdown if "evil" in m.value]
    assert shown, [m.value for m in at.sidebar.markdown]
    # every markdown character of the name is escaped: rendered, it reads exactly as typed
    assert r"\[点我\]\(http\://evil\.example/x\) \*\*粗体\*\*" in shown[0]
    assert "](http" not in shown[0]
