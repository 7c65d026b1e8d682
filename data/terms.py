"""The words of coded values, in Chinese and English: one table for the app's tables, the exports
and the command line (codes stay codes in the data; people read these words).

:mod:`ui.i18n` re-exports it beside the interface strings.
"""

from __future__ import annotations

__all__ = ["KPI_NAMES", "VALUE_WORDS", "CLI_WORDS", "value_word", "cli_word"]


# column key -> {code: (Chinese, English)}. Codes stay codes in the data; a table shows these.
KPI_NAMES: dict[str, tuple[str, str]] = {
    "deposit_avg": ("存款日均余额", "Deposit average balance"),
    "deposit_increase": ("存款日均增量", "Deposit increase"),
    "loan_avg": ("贷款日均余额", "Loan average balance"),
    "loan_increase": ("贷款日均增量", "Loan increase"),
    "asset_contribution": ("资产业务贡献", "Asset contribution"),
    "liability_contribution": ("负债业务贡献", "Liability contribution"),
    "intermediate_contribution": ("中间业务贡献", "Intermediate contribution"),
    "risk_contribution": ("风险控制贡献", "Risk contribution"),
    "total_contribution": ("综合贡献", "Total contribution"),
    "new_customers": ("新增客户数", "New customers"),
    "cross_sell": ("交叉销售（户均产品数）", "Cross-selling (products per customer)"),
    "npl_ratio": ("不良贷款率", "NPL ratio"),
    "customers": ("管户客户数", "Customers served"),
    "compliance_points": ("合规扣分", "Compliance deductions"),
    "complaints": ("客户投诉", "Complaints"),
    "training_hours": ("培训学时", "Training hours"),
    "certifications": ("专业资格证书", "Certifications"),
}
VALUE_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    "line": {"asset": ("资产业务", "Asset"), "liability": ("负债业务", "Liability"),
             "intermediate": ("中间业务", "Intermediate"), "risk": ("风险控制", "Risk")},
    "role": {"primary": ("主办", "Primary"), "secondary": ("协办", "Secondary"), "support": ("支持", "Support")},
    "type": {"corporate": ("对公", "Corporate"), "retail": ("对私", "Retail")},
    "classification": {"normal": ("正常", "Normal"), "special": ("关注", "Special mention"),
                       "substandard": ("次级", "Substandard"), "doubtful": ("可疑", "Doubtful"), "loss": ("损失", "Loss")},
    "coefficient_source": {"given": ("给定", "given"), "derived": ("按角色推导", "derived")},
    "perspective": {"financial": ("财务", "Financial"), "customer": ("客户", "Customer"),
                    "internal": ("内部流程", "Internal process"), "learning": ("学习与成长", "Learning & growth")},
    "kind": {"ratio": ("比率（越高越好）", "ratio (higher is better)"), "inverse": ("反向（越低越好）", "inverse (lower is better)"),
             "deduction": ("扣分", "deduction")},
    "target_source": {"targets": ("目标表", "targets sheet"), "mean": ("全行平均", "bank average")},
    "kpi": KPI_NAMES,
    "action": {"login": ("登录", "log-in"), "login_failed": ("登录失败", "failed log-in"), "lockout": ("账户锁定", "lock-out"),
               "user_add": ("新增用户", "user added"), "user_change": ("修改用户", "user changed"),
               "upload": ("上传数据", "upload"), "publish": ("发布", "publication"),
               "scenario_save": ("保存方案", "scenario saved"), "system": ("系统", "system"),
               "logout": ("退出登录", "log-out"), "idle_timeout": ("超时自动退出", "idle time-out")},
    # why a log-in was refused (the audit log's details)
    "reason": {"unknown": ("用户不存在", "unknown user"), "password": ("密码错误", "wrong password"),
               "locked": ("账户已锁定", "account locked"), "inactive": ("账户已停用", "account deactivated"),
               "control character in user name": ("用户名含控制字符", "control character in user name"),
               "password changed meanwhile": ("期间密码已修改", "password changed meanwhile"),
               "expired token": ("统一认证凭据已过期", "expired token"),
               "control character or over-long identity": ("统一认证身份含控制字符或过长",
                                                           "control character or over-long identity")},
    "severity": {"error": ("错误", "error"), "warning": ("提示", "warning")},
    "grade": {"senior": ("资深客户经理", "Senior"), "advanced": ("高级客户经理", "Advanced"),
              "manager": ("客户经理", "Manager"), "assistant": ("客户经理助理", "Assistant"),
              "unrated": ("未定级", "Unrated")},
    "is_new": {"True": ("新增", "new"), "False": ("存量", "existing")},
}


def value_word(column: str, code, lang: str = "zh") -> str:
    """The word for a coded value of ``column`` (its code when not in :data:`VALUE_WORDS`)."""
    pair = VALUE_WORDS.get(column, {}).get(str(code))
    return str(code) if pair is None else pair[0 if lang == "zh" else 1]


# The command line's summary table (cli.py evaluate without --json): key -> (Chinese, English).
CLI_WORDS: dict[str, tuple[str, str]] = {
    "rank": ("名次", "rank"),
    "manager": ("客户经理编号", "manager"),
    "name": ("姓名", "name"),
    "branch": ("所属机构", "branch"),
    "contribution": ("综合贡献（元）", "contribution (yuan)"),
    "pay": ("绩效工资（元）", "pay (yuan)"),
    "score": ("得分", "score"),
    "grade": ("等级", "grade"),
    "more": ("…… 另有 {n} 名客户经理（完整结果请用 --json 或 --xlsx）",
             "... {n} more managers (use --json or --xlsx for all)"),
    "totals": ("全行综合贡献 {contribution} 元 = 已归属 {attributed} 元 + 未归属 {unattributed} 元；"
               "挂钩法绩效工资 {pay} 元；积分法绩效工资 {points_pay} 元",
               "contribution {contribution} yuan = attributed {attributed} + unattributed {unattributed}; "
               "pay {pay}; points pay {points_pay}"),
}


def cli_word(key: str, lang: str = "zh", **fmt) -> str:
    """A word of the command line's summary in ``lang`` (``zh`` or ``en``), formatted with ``fmt``."""
    zh, en = CLI_WORDS[key]
    text = zh if lang == "zh" else en
    return text.format(**fmt) if fmt else text

