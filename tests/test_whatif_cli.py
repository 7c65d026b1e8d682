"""DOMAIN 11.5 headless: `cli.py evaluate --edits`, `--budget [--lock]` and `cli.py compare`, run as a
user runs them (a subprocess on a Chinese-header workbook).

Hand figures of the workbook (tests.test_ingest.BASE, derivations in tests/test_cli.py):
customer 000123 (new) contributes asset 319, liability 8,480, risk -1,500 (shared blank by 007
primary and 008 secondary: 0.7 / 0.3); customer 000124 (stock) contributes intermediate 11,183.6,
given 0.8 to 008. Default factors 0.06 / 0.05 / 0.10 / 0.08: 000123 pays 19.14 + 424 - 120 =
323.14 per unit of coefficient. Pay: 007 0.7 x 323.14 = 226.198; 008 0.3 x 323.14 + 0.8 x 1,118.36
= 96.942 + 894.688 = 991.63; total 1,217.828.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.test_cli import cli
from tests.test_ingest import BASE, write_book

approx = pytest.approx


def _pays(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {m["manager_id"]: m["pay"] for m in doc["managers"]}, doc


def _edits(tmp_path, rows, header=("操作", "客户号", "客户经理编号", "角色", "关联度系数")):
    p = tmp_path / "edits.csv"
    p.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")
    return p


def test_evaluate_with_coefficient_edits(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    edits = _edits(tmp_path, [("设置", "000124", "008", "", "0.5"), ("新增", "000124", "007", "主办", "")])
    out = tmp_path / "o.json"
    p = cli("evaluate", book, "--edits", edits, "--json", out)
    assert p.returncode == 0, p.stderr
    pay, _ = _pays(out)
    # 008 given 0.5 on 000124: 96.942 + 0.5 x 1,118.36 = 656.122; 007 blank primary on 000124
    # takes what is left, 0.5 (stock factor 1): 226.198 + 559.18 = 785.378
    assert pay["008"] == approx(656.122)
    assert pay["007"] == approx(785.378)


def test_edits_under_a_non_default_scenario(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    scen = tmp_path / "s.toml"
    scen.write_text("stock_factor = 0.5\n", encoding="utf-8")
    edits = _edits(tmp_path, [("set", "000124", "008", "", "0.5"), ("add", "000124", "007", "primary", "")],
                   header=("action", "customer_id", "manager_id", "role", "coefficient"))
    out = tmp_path / "o.json"
    assert cli("evaluate", book, "--scenario", scen, "--edits", edits, "--json", out).returncode == 0
    pay, _ = _pays(out)
    # 000124 is a stock customer: 007's derived 0.5 x 0.5 = 0.25 -> 0.25 x 1,118.36 = 279.59;
    # 000123 is new: its split is unchanged, 226.198
    assert pay["007"] == approx(226.198 + 279.59)


def test_an_edit_set_breaking_the_sum_is_refused_naming_the_customer(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    edits = _edits(tmp_path, [("设置", "000123", "007", "", "0.8"), ("设置", "000123", "008", "", "0.4")])
    out = tmp_path / "o.json"
    p = cli("evaluate", book, "--edits", edits, "--json", out)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "customer 000123" in p.stderr and "1.2" in p.stderr and "客户 000123" in p.stderr
    assert "row 2" in p.stderr
    assert not out.exists()


def test_a_bad_edits_file_is_reported_by_row_and_column(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    edits = _edits(tmp_path, [("设置", "000124", "008", "", "0.5"), ("move", "000124", "007", "", ""),
                              ("设置", "000124", "008", "", "1.5"), ("删除", "000999", "007", "", "")])
    p = cli("evaluate", book, "--edits", edits)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "row 3, column '操作'" in p.stderr and "'move'" in p.stderr
    assert "row 4, column '关联度系数'" in p.stderr and "1.5" in p.stderr
    # unknown ids are found against the dataset once the cells are right: fix rows 3 and 4 first
    edits = _edits(tmp_path, [("设置", "000124", "008", "", "0.5"), ("删除", "000999", "007", "", "")])
    p = cli("evaluate", book, "--edits", edits)
    assert p.returncode == 1 and "row 3" in p.stderr and "customer 000999 is not in this dataset" in p.stderr


def test_budget_scaling_without_and_with_a_lock(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    out = tmp_path / "o.json"
    # no lock: k = 2,435.656 / 1,217.828 = 2 exactly
    p = cli("evaluate", book, "--budget", "2435.656", "--json", out)
    assert p.returncode == 0, p.stderr
    pay, doc = _pays(out)
    assert doc["scaled"]["k"] == approx(2.0)
    assert doc["scaled"]["pay_factor"] == approx({"asset": 0.12, "liability": 0.10, "intermediate": 0.2, "risk": 0.16})
    assert pay == approx({"007": 452.396, "008": 1983.26})
    assert sum(pay.values()) == approx(2435.656, abs=1.0)
    # intermediate locked: 894.688 stays; 894.688 + k x (226.198 + 96.942) = 1,540.968 -> k = 2
    p = cli("evaluate", book, "--budget", "1540.968", "--lock", "intermediate", "--json", out)
    assert p.returncode == 0, p.stderr
    pay, doc = _pays(out)
    assert doc["scaled"]["k"] == approx(2.0, abs=1e-3)
    assert doc["scaled"]["pay_factor"]["intermediate"] == 0.10
    assert pay["007"] == approx(452.396, abs=0.5) and pay["008"] == approx(1088.572, abs=0.5)


def test_a_budget_the_locked_lines_already_exceed_is_refused_with_the_nearest_total(tmp_path):
    book = write_book(tmp_path / "b.xlsx", BASE)
    out = tmp_path / "o.json"
    p = cli("evaluate", book, "--budget", "500", "--lock", "intermediate", "--json", out)
    # the locked intermediate line alone pays 894.688 > 500
    assert p.returncode == 1 and "cannot be met" in p.stderr and "894.69" in p.stderr
    assert not out.exists()


def test_compare_two_periods_by_chain_substitution(tmp_path):
    a = write_book(tmp_path / "a.xlsx", BASE)
    sheets = copy.deepcopy(BASE)
    sheets["账户"][3][8] = 24000                       # A003's fee doubles in period B
    b = write_book(tmp_path / "b.xlsx", sheets)
    scen = tmp_path / "s.toml"
    scen.write_text("[pay_factor]\nintermediate = 0.5\n", encoding="utf-8")
    out = tmp_path / "c.json"
    p = cli("compare", a, b, "--scenario-b", scen, "--json", out)
    assert p.returncode == 0, p.stderr
    rows = {r["manager_id"]: r for r in json.loads(out.read_text(encoding="utf-8"))["managers"]}
    assert set(rows) == {"007", "008"}
    r = rows["008"]
    # contribution of 000124 in B: 24,000 x (1 - 0.0672) - 10 = 22,377.2
    # step 1: 0.8 x 0.10 x (22,377.2 - 11,183.6) = 895.488; step 2: no coefficient change, 0;
    # step 3: 0.8 x 22,377.2 x (0.5 - 0.10) = 7,160.704. pay B = 96.942 + 0.8 x 0.5 x 22,377.2 = 9,047.822
    assert r["pay_a"] == approx(991.63)
    assert r["contribution_effect"] == approx(895.488)
    assert r["attribution_effect"] == approx(0.0, abs=1e-9)
    assert r["factor_effect"] == approx(7160.704)
    assert r["pay_b"] == approx(9047.822)
    assert rows["007"]["pay_a"] == rows["007"]["pay_b"] == approx(226.198)
