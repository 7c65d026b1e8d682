"""Spreadsheets and CSV files the app writes: safe to open, headers in Chinese (or English).

Every text cell that starts with ``=``, ``+``, ``-``, ``@``, tab, carriage return or line feed is
prefixed with a single quote (OWASP CSV injection), so neither Excel nor WPS evaluates user text
as a formula. Numbers are written as numbers. Workbooks are written with XlsxWriter
(measured 4.3 s per 100k rows against 8.1 s for openpyxl write-only, MEASURED.md).
"""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
import pandas as pd

from calc.light import Result
from calc.scenario import Scenario
from data.schema import FORMULA_PREFIXES

__all__ = ["safe_text", "write_workbook", "frame_to_csv_bytes", "report_workbook", "LABELS", "labelled"]

DANGEROUS = FORMULA_PREFIXES   # the cell starts a spreadsheet reads as a formula

# Column labels for exports and tables: key -> (Chinese, English)
LABELS: dict[str, tuple[str, str]] = {
    "rank": ("排名", "Rank"), "branch_rank": ("机构内排名", "Branch rank"),
    "manager_id": ("客户经理编号", "Manager ID"), "name": ("姓名", "Name"), "branch": ("所属机构", "Branch"),
    "level": ("职级", "Level"),
    "asset": ("资产业务贡献", "Asset contribution"), "liability": ("负债业务贡献", "Liability contribution"),
    "intermediate": ("中间业务贡献", "Intermediate contribution"), "risk": ("风险控制贡献", "Risk contribution"),
    "total": ("贡献合计", "Total contribution"),
    "deposit_avg": ("存款日均", "Deposit daily avg"), "deposit_increase": ("存款日均新增", "Deposit avg increase"),
    "loan_avg": ("贷款日均", "Loan daily avg"),
    "pay_raw": ("挂钩工资（未封底）", "Pay before floor"), "pay": ("绩效工资", "Pay"),
    "points_pay": ("积分法工资", "Points-method pay"), "score": ("计分卡得分", "Score"), "grade": ("评级", "Grade"),
    "customer_id": ("客户号", "Customer ID"), "type": ("客户类型", "Customer type"), "is_new": ("新增客户", "New customer"),
    "coef_sum": ("关联度系数合计", "Coefficient sum"), "attributed": ("已分配贡献", "Attributed"),
    "unattributed": ("未分配贡献", "Unattributed"), "tier": ("价值层级", "Value tier"),
    "relationship_level": ("产品关系", "Relationship level"), "products": ("产品数", "Products"),
    "volume": ("业务量", "Business volume"), "ltv": ("客户终身价值", "Lifetime value"),
    "ltv_net": ("终身价值减获客成本", "LTV net of acquisition"), "accounts": ("账户数", "Accounts"),
    "item": ("项目", "Item"), "value": ("数值", "Value"), "key": ("参数", "Parameter"),
    "username": ("用户名", "User name"), "oidc_subject": ("统一认证标识", "SSO subject"),
    "active": ("启用", "Active"), "failed_attempts": ("连续失败次数", "Failed attempts"),
    "locked_until": ("锁定至", "Locked until"), "created_at": ("创建时间", "Created"),
    "at": ("时间", "Time"), "actor": ("操作人", "User"), "action": ("操作", "Action"),
    "before": ("变更前", "Before"), "after": ("变更后", "After"),
    "role": ("角色", "Role"), "coefficient_used": ("关联度系数", "Coefficient"),
    "coefficient_source": ("系数来源", "Coefficient source"),
    "kpi": ("指标", "KPI"), "perspective": ("维度", "Perspective"), "kind": ("类型", "Kind"),
    "weight": ("权重", "Weight"), "actual": ("实际值", "Actual"), "target": ("目标值", "Target"),
    "points": ("得分", "Points"),
    # the account level of a manager's chain (inputs as in the template, then every formula term)
    "account_id": ("账号", "Account"), "line": ("业务条线", "Business line"), "product": ("产品", "Product"),
    "avg_balance": ("日均余额", "Average balance"), "base_avg_balance": ("基期日均余额", "Base average balance"),
    "rate": ("客户利率", "Customer rate"), "ftp_rate": ("FTP价格", "FTP rate"),
    "fee_income": ("中间业务收入", "Fee income"), "provision": ("拨备", "Provision"), "recovery": ("不良清收", "Recovery"),
    "classification": ("五级分类", "Classification"), "risk_weight": ("风险权重", "Risk weight"),
    "margin": ("收入（利差或手续费）", "Income (margin or fee)"), "tax": ("税金", "Tax"),
    "unit_cost": ("单位成本", "Unit cost"),
    "balance_cost": ("余额成本", "Balance cost"), "capital_charge": ("经济资本占用成本", "Capital charge"),
    "contribution": ("贡献", "Contribution"),
}


def safe_text(value: str) -> str:
    """Neutralise text a spreadsheet would run as a formula: prefix a single quote."""
    return "'" + value if value.startswith(DANGEROUS) else value


def labelled(frame: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Rename known columns to their Chinese (``zh``) or English (``en``) label."""
    i = 0 if lang == "zh" else 1
    return frame.rename(columns={k: v[i] for k, v in LABELS.items() if k in frame.columns})


def _cell(ws, r: int, c: int, v, fmt_num, fmt_date) -> None:
    if v is None or v is pd.NA or v is pd.NaT:
        return
    if isinstance(v, (bool, np.bool_)):
        ws.write_boolean(r, c, bool(v))
    elif isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
        if math.isfinite(x):
            ws.write_number(r, c, x, fmt_num)
    elif isinstance(v, (dt.date, dt.datetime, pd.Timestamp)):
        ws.write_datetime(r, c, pd.Timestamp(v).to_pydatetime(), fmt_date)
    else:
        ws.write_string(r, c, safe_text(str(v)))


def write_workbook(sheets: dict[str, pd.DataFrame], target=None) -> bytes:
    """Write frames as sheets of one xlsx, every text cell neutralised.

    Parameters
    ----------
    sheets : dict of str to DataFrame
        Sheet name -> frame; headers are the frame's column names.
    target : path-like, optional
        Also write the bytes to this path.

    Returns
    -------
    bytes
        The xlsx file.
    """
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                   "strings_to_numbers": False})
    head = wb.add_format({"bold": True, "bg_color": "#DDE7F0", "border": 1})
    num = wb.add_format({"num_format": "#,##0.00"})
    date = wb.add_format({"num_format": "yyyy-mm-dd"})
    for name, frame in sheets.items():
        ws = wb.add_worksheet(safe_text(str(name))[:31].replace("'", ""))
        for c, col in enumerate(frame.columns):
            ws.write_string(0, c, safe_text(str(col)), head)
            ws.set_column(c, c, max(10, min(40, len(str(col)) * 2 + 2)))
        for r, row in enumerate(frame.itertuples(index=False, name=None), start=1):
            for c, v in enumerate(row):
                _cell(ws, r, c, v, num, date)
        ws.freeze_panes(1, 0)
    wb.close()
    data = buf.getvalue()
    if target is not None:
        with open(target, "wb") as fh:
            fh.write(data)
    return data


def frame_to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV (UTF-8 with BOM so Excel shows Chinese) with every text cell neutralised."""
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(lambda v: safe_text(v) if isinstance(v, str) else v)
    safe.columns = [safe_text(str(c)) for c in safe.columns]
    return safe.to_csv(index=False).encode("utf-8-sig")


_MANAGER_COLS = ["rank", "branch_rank", "manager_id", "name", "branch", "asset", "liability", "intermediate", "risk",
                 "total", "deposit_avg", "deposit_increase", "loan_avg", "pay_raw", "pay", "points_pay", "score", "grade"]
_CUSTOMER_COLS = ["customer_id", "name", "branch", "type", "is_new", "asset", "liability", "intermediate", "risk",
                  "total", "coef_sum", "attributed", "unattributed", "volume", "tier", "products",
                  "relationship_level", "ltv", "ltv_net"]
_TOTAL_LABELS = {
    "contribution": ("客户贡献合计", "Total contribution"), "attributed": ("已分配至客户经理", "Attributed to managers"),
    "unattributed": ("未分配（留存机构）", "Unattributed (kept by branch)"), "pay": ("绩效工资合计", "Total pay"),
    "points_pay": ("积分法工资合计", "Total points-method pay"), "pool": ("积分法工资池", "Points pool"),
    "pool_undistributed": ("工资池未分配", "Pool undistributed"),
}


def report_workbook(result: Result, scenario: Scenario, lang: str = "zh", target=None) -> bytes:
    """The evaluation report: managers, customers, totals and the scenario used.

    Parameters
    ----------
    result : Result
    scenario : Scenario
    lang : str
        ``zh`` (default) or ``en`` for sheet names and headers.
    target : path-like, optional
        Also write to this path.
    """
    zh = lang == "zh"
    m = result.managers.sort_values(["rank", "manager_id"], kind="stable")[_MANAGER_COLS]
    c = result.customers[_CUSTOMER_COLS].copy()
    c["is_new"] = c["is_new"].map({True: "是" if zh else "yes", False: "否" if zh else "no"})
    totals = pd.DataFrame(
        [{"item": _TOTAL_LABELS[k][0 if zh else 1], "value": result.totals[k]} for k in _TOTAL_LABELS])
    params = []
    for key, value in scenario.to_dict().items():
        if key == "kpi":
            for i, k in enumerate(value):
                params.append({"key": f"kpi[{i}]", "value": f"{k['code']} {k['perspective']} {k['weight']:g} {k['kind']} cap {k['cap']:g}"})
        elif isinstance(value, dict):
            params.extend({"key": f"{key}.{k}", "value": v} for k, v in value.items())
        else:
            params.append({"key": key, "value": value})
    names = ("客户经理", "客户", "合计", "方案") if zh else ("managers", "customers", "totals", "scenario")
    sheets = {
        names[0]: labelled(m, lang), names[1]: labelled(c, lang),
        names[2]: labelled(totals, lang), names[3]: labelled(pd.DataFrame(params), lang),
    }
    return write_workbook(sheets, target)


def statement_workbook(chain: dict, scenario: Scenario, lang: str = "zh") -> bytes:
    """One manager's pay statement (绩效工资单): summary, lines, customers, accounts, KPIs.

    Parameters
    ----------
    chain : dict of str to DataFrame
        From :func:`calc.explain.manager_chain`.
    scenario : Scenario
        Named on the summary sheet.
    lang : str
        ``zh`` or ``en`` headers.
    """
    zh = lang == "zh"
    summary = labelled(chain["summary"], lang)
    summary.insert(0, "方案" if zh else "Scenario", scenario.name)
    lines = chain["lines"].rename(columns={"line": "条线" if zh else "Line", "contribution": "贡献" if zh else "Contribution",
                                           "factor": "挂钩系数" if zh else "Factor", "pay": "工资" if zh else "Pay"})
    names = ("工资单", "条线", "客户", "账户", "指标") if zh else ("statement", "lines", "customers", "accounts", "kpi")
    return write_workbook({names[0]: summary, names[1]: lines, names[2]: labelled(chain["customers"], lang),
                           names[3]: chain["accounts"], names[4]: labelled(chain["kpi"], lang)})
