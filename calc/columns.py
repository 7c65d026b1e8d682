"""The result columns, declared once: name, kind, Chinese and English label.

Pure declarations (no pandas, no storage): the frozen publication tables (:mod:`data.db`), the
DOMAIN 10 document (:mod:`calc.output`), the report and statement workbooks and the tables' labels
(:mod:`data.export`) all read their column lists from here, so a column is added or renamed in
one place. The tuples below say which columns each of them carries, in the order they show them.

Kinds
-----
``id``
    An identifier (text, at most 64 characters).
``text``
    Free text (at most 200 characters), may be missing.
``code``
    One of a small set of codes (``senior``, ``given`` ...; at most 20 characters), never missing.
``float``
    An amount in yuan, points or a ratio; NaN where the result has no value.
``int``
    A whole number (a rank, a level), never missing.
``bool``
    True or false.
"""

from __future__ import annotations

from dataclasses import dataclass

from calc.scenario import PAY_LINES

__all__ = ["Col", "COLUMNS", "LINE_TOTALS", "MANAGER_PUBLISHED", "MANAGER_REPORT", "MANAGER_MEASURES",
           "CUSTOMER_PUBLISHED", "CUSTOMER_DOCUMENT", "CUSTOMER_REPORT", "STATEMENT_SUMMARY", "STATEMENT_LINE",
           "STATEMENT_CUSTOMER", "STATEMENT_KPI", "label"]

KINDS = ("id", "text", "code", "float", "int", "bool")


@dataclass(frozen=True)
class Col:
    """One result column.

    Attributes
    ----------
    name : str
        The column's key in result frames, stored rows and documents.
    kind : str
        One of :data:`KINDS`.
    zh, en : str
        Its label in Chinese and English (headers of tables and workbooks).
    """

    name: str
    kind: str
    zh: str
    en: str


def _cols(*rows: tuple[str, str, str, str]) -> dict[str, Col]:
    out = {}
    for name, kind, zh, en in rows:
        if kind not in KINDS or name in out:
            raise ValueError(f"column {name!r}: bad kind {kind!r} or declared twice")
        out[name] = Col(name, kind, zh, en)
    return out


COLUMNS: dict[str, Col] = _cols(
    # managers
    ("manager_id", "id", "客户经理编号", "Manager ID"),
    ("name", "text", "姓名", "Name"),
    ("branch", "text", "所属机构", "Branch"),
    ("level", "text", "职级", "Level"),
    ("asset", "float", "资产业务贡献", "Asset contribution"),
    ("liability", "float", "负债业务贡献", "Liability contribution"),
    ("intermediate", "float", "中间业务贡献", "Intermediate contribution"),
    ("risk", "float", "风险控制贡献", "Risk contribution"),
    ("total", "float", "贡献合计", "Total contribution"),
    ("deposit_avg", "float", "存款日均", "Deposit daily avg"),
    ("deposit_increase", "float", "存款日均新增", "Deposit avg increase"),
    ("loan_avg", "float", "贷款日均", "Loan daily avg"),
    ("pay_raw", "float", "挂钩工资（未封底）", "Pay before floor"),
    ("pay", "float", "绩效工资", "Pay"),
    ("points_pay", "float", "积分法工资", "Points-method pay"),
    ("score", "float", "计分卡得分", "Score"),
    ("grade", "code", "评级", "Grade"),
    ("rank", "int", "排名", "Rank"),
    ("branch_rank", "int", "机构内排名", "Branch rank"),
    # customers
    ("customer_id", "id", "客户号", "Customer ID"),
    ("type", "text", "客户类型", "Customer type"),
    ("is_new", "bool", "新增客户", "New customer"),
    ("coef_sum", "float", "关联度系数合计", "Coefficient sum"),
    ("attributed", "float", "已分配贡献", "Attributed"),
    ("unattributed", "float", "未分配贡献", "Unattributed"),
    ("volume", "float", "业务量", "Business volume"),
    ("tier", "code", "价值层级", "Value tier"),
    ("products", "int", "产品数", "Products"),
    ("relationship_level", "int", "产品关系", "Relationship level"),
    ("ltv", "float", "客户终身价值", "Lifetime value"),
    ("ltv_net", "float", "终身价值减获客成本", "LTV net of acquisition"),
    # a manager's statement
    ("role", "code", "角色", "Role"),
    ("coefficient_used", "float", "关联度系数", "Coefficient"),
    ("coefficient_source", "code", "系数来源", "Coefficient source"),
    ("line", "code", "业务条线", "Business line"),
    ("contribution", "float", "贡献", "Contribution"),
    ("factor", "float", "挂钩系数", "Factor"),
    ("kpi", "id", "指标", "KPI"),
    ("perspective", "code", "维度", "Perspective"),
    ("kind", "code", "类型", "Kind"),
    ("weight", "float", "权重", "Weight"),
    ("cap", "float", "上限", "Cap"),
    ("actual", "float", "实际值", "Actual"),
    ("target", "float", "目标值", "Target"),
    ("target_source", "code", "目标来源", "Target source"),
    ("points", "float", "得分", "Points"),
)

LINE_TOTALS = (*PAY_LINES, "total")

# A manager's frozen row (``pub_managers``) and their object in the DOMAIN 10 document (where the
# line amounts sit under "contribution").
MANAGER_PUBLISHED = ("manager_id", "name", "branch", *LINE_TOTALS, "deposit_avg", "deposit_increase", "loan_avg",
                     "pay", "points_pay", "score", "grade", "rank", "branch_rank")
# The managers sheet of the report workbook, in its order.
MANAGER_REPORT = ("rank", "branch_rank", "manager_id", "name", "branch", *LINE_TOTALS, "deposit_avg",
                  "deposit_increase", "loan_avg", "pay_raw", "pay", "points_pay", "score", "grade")
# The attributed balances of a manager: result column -> the customer measure it sums (c x measure).
MANAGER_MEASURES = {"deposit_avg": "liability_avg", "deposit_increase": "liability_increase",
                    "loan_avg": "asset_avg", "loan_increase": "asset_increase"}

# A customer's frozen row (``pub_customers``); the document's customer object is the same without
# name and branch.
CUSTOMER_PUBLISHED = ("customer_id", "name", "branch", *LINE_TOTALS, "unattributed", "tier", "relationship_level")
CUSTOMER_DOCUMENT = tuple(c for c in CUSTOMER_PUBLISHED if c not in ("name", "branch"))
CUSTOMER_REPORT = ("customer_id", "name", "branch", "type", "is_new", *LINE_TOTALS, "coef_sum", "attributed",
                   "unattributed", "volume", "tier", "products", "relationship_level", "ltv", "ltv_net")

# A manager's frozen statement (``pub_statement_*``): the summary row, one row per pay line, one
# per customer credited to the manager (the amounts are the attributed ones, c x the customer's
# contribution), one per KPI of the scorecard.
STATEMENT_SUMMARY = ("manager_id", "name", "branch", "total", "pay_raw", "pay", "points_pay", "score", "grade",
                     "rank", "branch_rank")
STATEMENT_LINE = ("line", "contribution", "factor", "pay")
STATEMENT_CUSTOMER = ("customer_id", "name", "branch", "role", "coefficient_used", "coefficient_source", *PAY_LINES,
                      "attributed")
STATEMENT_KPI = ("kpi", "perspective", "kind", "weight", "cap", "actual", "target", "target_source", "points")


def label(name: str, lang: str = "zh") -> str:
    """The Chinese (``zh``) or English label of a declared column (the name itself if undeclared)."""
    col = COLUMNS.get(name)
    if col is None:
        return name
    return col.zh if lang == "zh" else col.en
