"""The input extract's schema: sheets, columns, types and their Chinese/English aliases.

This module is the single source of truth for what an upload may contain (DOMAIN.md section 2).
Readers, validation, the blank template and the README's template table are all derived from it.

Header matching is forgiving in the way bank staff expect: case, surrounding spaces, full-width
characters, underscores, hyphens and a trailing unit in brackets (``日均余额（元）``) are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "FORMULA_PREFIXES",
    "FORMULA_START",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_AMOUNT",
    "DATE_MIN",
    "DATE_MAX",
    "DATE_SPREAD_DAYS",
    "Column",
    "Sheet",
    "SHEETS",
    "ENUMS",
    "normalize_label",
    "column_letters",
    "sheet_by_key",
]

_BRACKETED_SUFFIX = re.compile(r"[\(\[（【].*?[\)\]）】]\s*$")
_SEPARATORS = re.compile(r"[\s_\-\./:：、]+")


# A cell starting with one of these is run as a formula by spreadsheets: flagged on the way in
# (data/ingest.py) and neutralised on the way out (data/export.py).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
# A regular expression matching text that starts with one of them, each written as \xNN so that
# Python's re, RE2 (pyarrow) and Rust's regex (polars) all read it the same way.
FORMULA_START = "^[" + "".join(f"\\x{ord(c):02x}" for c in FORMULA_PREFIXES) + "]"


# Text that the store can hold on both databases. The limits are the column types of data/db.py
# (``_TYPES`` and the ``ds_*`` tables: id String(64), text String(200)): SQLite ignores a VARCHAR
# length but PostgreSQL refuses a longer value (and any text holding a NUL character), so ingest
# checks both here, the same for either database.
# Lengths are in characters (PostgreSQL counts characters, not bytes). Change them with db.py.
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 200

# The largest magnitude of a money or plain number cell, in yuan (or the KPI's unit): 1e15 is
# ten times a large bank's whole balance sheet, so anything above is a typo or an overflow (a
# 1e308 balance would otherwise be published as pay = Infinity). Rates (0..1), risk weights
# (0..12.5) and coefficients (0..1] keep their own tighter ranges.
MAX_AMOUNT = 1e15

# Dates (the daily balances' day): outside DATE_MIN..DATE_MAX a date is a typo (9999-12-31, a
# serial number read as a date), and a date more than DATE_SPREAD_DAYS from its column's median
# would move the period (it ends on the latest date, DOMAIN 4): 2062 typed for 2026 shifts every
# account's average, so it is an error too.
DATE_MIN = "1990-01-01"
DATE_MAX = "2100-12-31"
DATE_SPREAD_DAYS = 366


def normalize_label(text: object) -> str:
    """Fold a header, sheet name or enumerated value to its matching key.

    Parameters
    ----------
    text : object
        The raw cell text, e.g. ``" Manager ID "``, ``"日均余额（元）"`` or ``"ＦＴＰ价格"``.

    Returns
    -------
    str
        NFKC-folded, lower-case text with spaces, underscores, hyphens, dots and a trailing
        bracketed unit removed: ``"managerid"``, ``"日均余额"``, ``"ftp价格"``.
    """
    s = unicodedata.normalize("NFKC", str(text)).strip().lower()
    s = _BRACKETED_SUFFIX.sub("", s).strip() or s
    return _SEPARATORS.sub("", s)


def column_letters(j: int) -> str:
    """Excel column letters of the 0-based column index ``j`` (0 -> A, 26 -> AA), for readers
    and the workbook writer alike."""
    s = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        s = chr(65 + r) + s
    return s


@dataclass(frozen=True)
class Column:
    """One column of a sheet.

    Attributes
    ----------
    key : str
        Canonical English name used everywhere in the code (``avg_balance``).
    zh : str
        The Chinese header written in templates and reports (``日均余额``).
    kind : str
        ``id`` (text, leading zeros kept), ``text``, ``money`` (yuan, >= 0 unless ``signed``),
        ``rate`` (decimal fraction per year, 0..1), ``number``, ``enum``, ``bool``, ``date``.
    required : bool
        The column must exist and every row must have a value.
    aliases : tuple of str
        Further accepted headers (English or Chinese); ``key`` and ``zh`` are always accepted.
    enum : str or None
        For ``enum`` columns, the key into :data:`ENUMS`.
    signed : bool
        For ``money`` and ``number`` columns: negative values allowed.
    max_value : float or None
        Upper bound for ``number`` columns (inclusive).
    allow_blank : bool
        For required columns: the header must exist but a cell may be blank (no value).
    """

    key: str
    zh: str
    kind: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    enum: str | None = None
    signed: bool = False
    max_value: float | None = None
    allow_blank: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        """All accepted header spellings, canonical ones first."""
        return (self.key, self.zh, *self.aliases)


@dataclass(frozen=True)
class Sheet:
    """One sheet (or one CSV file) of the extract."""

    key: str
    zh: str
    columns: tuple[Column, ...]
    required: bool = True
    aliases: tuple[str, ...] = ()
    id_column: str | None = None
    unique_together: tuple[str, ...] = ()
    foreign_keys: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        """All accepted sheet / file names."""
        return (self.key, self.zh, *self.aliases)

    def column(self, key: str) -> Column:
        """Return the column called ``key``."""
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(key)


# Enumerated values: canonical value -> (Chinese label, accepted spellings).
ENUMS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "line": {
        "asset": ("资产", ("资产业务", "资产类", "贷款", "loan", "loans", "assets")),
        "liability": ("负债", ("负债业务", "负债类", "存款", "deposit", "deposits", "liabilities")),
        "intermediate": ("中间业务", ("中间", "中收", "中间业务收入", "fee", "fees", "intermediary")),
    },
    "role": {
        "primary": ("主办", ("主办客户经理", "主管", "main", "lead", "主")),
        "secondary": ("协办", ("协办客户经理", "co", "协")),
        "support": ("支持", ("辅助", "支持人员", "assist", "support staff")),
    },
    "customer_type": {
        "corporate": ("对公", ("公司", "企业", "公司客户", "对公客户", "company", "business")),
        "retail": ("对私", ("个人", "零售", "个人客户", "对私客户", "personal", "individual")),
    },
    "classification": {
        "normal": ("正常", ("正常类", "pass")),
        "special": ("关注", ("关注类", "special mention", "specialmention", "watch")),
        "substandard": ("次级", ("次级类",)),
        "doubtful": ("可疑", ("可疑类",)),
        "loss": ("损失", ("损失类",)),
    },
    "bool": {
        "yes": ("是", ("y", "true", "1", "新增", "新", "new", "t")),
        "no": ("否", ("n", "false", "0", "存量", "老", "stock", "existing", "f")),
    },
}

_ENUM_LOOKUP: dict[str, dict[str, str]] = {
    name: {
        normalize_label(spelling): value
        for value, (zh, aliases) in values.items()
        for spelling in (value, zh, *aliases)
    }
    for name, values in ENUMS.items()
}


def enum_value(enum: str, raw: object) -> str | None:
    """Map a raw cell to its canonical enumerated value, or ``None`` when unknown."""
    return _ENUM_LOOKUP[enum].get(normalize_label(raw))


def enum_choices(enum: str) -> str:
    """Human list of accepted values, e.g. ``asset/资产, liability/负债``."""
    return ", ".join(f"{v}/{zh}" for v, (zh, _) in ENUMS[enum].items())


_BRANCH = ("机构", "支行", "所属机构", "所属支行", "网点", "分行", "机构名称", "所属网点", "org", "organization")
_MANAGER_ID = ("客户经理编号", "客户经理号", "客户经理工号", "经理编号", "工号", "员工号", "员工编号",
               "managerid", "manager", "managercode", "rmid", "rm")
_CUSTOMER_ID = ("客户号", "客户编号", "客户代码", "客户id", "custid", "customer", "customerno", "clientid")

SHEETS: tuple[Sheet, ...] = (
    Sheet(
        key="managers",
        zh="客户经理",
        aliases=("客户经理表", "客户经理信息", "manager", "rm", "rms"),
        id_column="manager_id",
        columns=(
            Column("manager_id", "客户经理编号", "id", True, _MANAGER_ID),
            Column("name", "姓名", "text", True, ("客户经理姓名", "客户经理", "员工姓名", "managername")),
            Column("branch", "所属机构", "text", True, _BRANCH),
            Column("level", "职级", "text", False, ("级别", "岗位级别", "grade")),
        ),
    ),
    Sheet(
        key="customers",
        zh="客户",
        aliases=("客户表", "客户信息", "customer", "clients"),
        id_column="customer_id",
        columns=(
            Column("customer_id", "客户号", "id", True, _CUSTOMER_ID),
            Column("name", "客户名称", "text", True, ("客户名", "名称", "户名", "customername")),
            Column("branch", "所属机构", "text", True, _BRANCH),
            Column("type", "客户类型", "enum", False, ("类型", "客户类别", "customertype"), enum="customer_type"),
            Column("is_new", "新增客户", "bool", False, ("是否新增", "是否新增客户", "新客户", "新增", "new", "newcustomer"),
                   enum="bool"),
        ),
    ),
    Sheet(
        key="accounts",
        zh="账户",
        aliases=("账户表", "账户信息", "account", "账户明细"),
        id_column="account_id",
        foreign_keys={"customer_id": "customers"},
        columns=(
            Column("account_id", "账号", "id", True, ("账户号", "账户编号", "账户", "帐号", "accountno", "account", "acctid")),
            Column("customer_id", "客户号", "id", True, _CUSTOMER_ID),
            Column("line", "业务条线", "enum", True, ("条线", "业务线", "业务类型", "businessline"), enum="line"),
            Column("product", "产品", "text", False, ("产品名称", "产品类型", "产品代码")),
            Column("avg_balance", "日均余额", "money", False, ("日均", "期间日均余额", "本期日均余额", "averagebalance", "avgbal")),
            Column("base_avg_balance", "基期日均余额", "money", False, ("基期日均", "上期日均余额", "基数日均余额", "baseavgbalance", "baseaveragebalance")),
            Column("rate", "客户利率", "rate", False, ("利率", "执行利率", "客户执行利率", "customerrate", "interestrate")),
            Column("ftp_rate", "FTP价格", "rate", False, ("ftp", "ftp利率", "ftp价格(年化)", "内部资金转移价格", "ftprate")),
            Column("fee_income", "中间业务收入", "money", False, ("手续费收入", "中收", "手续费及佣金收入", "fee", "fees", "feeincome"), signed=True),
            Column("provision", "拨备", "money", False, ("风险成本", "拨备/风险成本", "减值准备", "贷款损失准备", "provisions"), signed=True),
            Column("recovery", "不良清收", "money", False, ("清收", "不良贷款清收", "清收金额", "recoveries"), signed=True),
            Column("risk_weight", "风险权重", "number", False, ("风险权重系数", "rw", "riskweight"), max_value=12.5),
            Column("classification", "五级分类", "enum", False, ("贷款五级分类", "风险分类", "分类", "loanclass"), enum="classification"),
        ),
    ),
    Sheet(
        key="assignments",
        zh="业绩分配",
        aliases=("分配", "业绩分配表", "客户分配", "管户关系", "assignment", "allocation", "allocations"),
        unique_together=("customer_id", "manager_id"),
        foreign_keys={"customer_id": "customers", "manager_id": "managers"},
        columns=(
            Column("customer_id", "客户号", "id", True, _CUSTOMER_ID),
            Column("manager_id", "客户经理编号", "id", True, _MANAGER_ID),
            Column("role", "角色", "enum", True, ("分配角色", "管户角色", "岗位", "roles"), enum="role"),
            Column("coefficient", "关联度系数", "number", False,
                   ("系数", "关联系数", "业绩关联度系数", "分配系数", "客户经理个人业绩关联度系数", "coef", "share"),
                   max_value=1.0),
        ),
    ),
    Sheet(
        key="daily_balances",
        zh="每日余额",
        required=False,
        aliases=("日余额", "每日余额表", "余额明细", "dailybalance", "balances"),
        unique_together=("account_id", "date"),
        foreign_keys={"account_id": "accounts"},
        columns=(
            Column("account_id", "账号", "id", True, ("账户号", "账户编号", "账户", "帐号", "accountno", "account")),
            Column("date", "日期", "date", True, ("余额日期", "数据日期", "day")),
            Column("balance", "余额", "money", True, ("当日余额", "时点余额", "bal")),
        ),
    ),
    Sheet(
        key="targets",
        zh="任务指标",
        required=False,
        aliases=("目标", "任务", "指标目标", "target"),
        unique_together=("manager_id", "kpi"),
        foreign_keys={"manager_id": "managers"},
        columns=(
            Column("manager_id", "客户经理编号", "id", True, _MANAGER_ID),
            Column("kpi", "指标", "text", True, ("指标代码", "指标名称", "kpicode", "code")),
            Column("target", "目标值", "number", True, ("目标", "任务值", "任务"), signed=True, allow_blank=True),
        ),
    ),
    Sheet(
        key="kpis",
        zh="非财务指标",
        required=False,
        aliases=("指标", "非财务", "指标值", "kpi", "measures"),
        unique_together=("manager_id", "kpi"),
        foreign_keys={"manager_id": "managers"},
        columns=(
            Column("manager_id", "客户经理编号", "id", True, _MANAGER_ID),
            Column("kpi", "指标", "text", True, ("指标代码", "指标名称", "kpicode", "code")),
            Column("value", "数值", "number", True, ("值", "实际值", "完成值", "指标值", "actual"), signed=True,
                   allow_blank=True),
        ),
    ),
)


def sheet_by_key(key: str) -> Sheet:
    """Return the sheet definition called ``key`` (``"accounts"``)."""
    for s in SHEETS:
        if s.key == key:
            return s
    raise KeyError(key)


def _lookup(items) -> dict[str, str]:
    table: dict[str, str] = {}
    for item_key, labels in items:
        for label in labels:
            table.setdefault(normalize_label(label), item_key)
    return table


SHEET_LOOKUP: dict[str, str] = _lookup((s.key, s.labels) for s in SHEETS)
COLUMN_LOOKUP: dict[str, dict[str, str]] = {
    s.key: _lookup((c.key, c.labels) for c in s.columns) for s in SHEETS
}
