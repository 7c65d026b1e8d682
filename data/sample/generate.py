"""A seeded sample bank: one quarter's extract of a Chinese city commercial bank's branches.

``generate()`` returns one frame per sheet (canonical English column names of
:mod:`data.schema`, enumerated values as canonical keys, ids as text with leading zeros);
``write_workbook()`` writes them as an xlsx with Chinese (or English) sheet names, headers and
enumerated values; ``write_template()`` writes the blank upload template (headers only).

The sample exercises every part of the calculation (DOMAIN.md):

- 3 to 5 branches (城东支行, 城西支行, 高新支行, 开发区支行, 滨江支行), managers of four levels;
- corporate (对公) and retail (对私) customers, about 20 % new, log-normal sizes, so a few
  world-class (>= 30,000,000 business volume) customers and a long tail of small ones;
- asset (loans), liability (deposits) and intermediate (fee) accounts with Chinese product
  names, some products blank, some rates written as text percent (``"3.45%"``), some risk
  weights blank, the five loan classes with provisions and recoveries on the bad ones;
- loss-making customers (deposits priced above FTP, large provisions, small balances that do
  not cover the unit cost) and negative as well as positive deposit increases;
- every assignment pattern: primary only, primary + secondary, primary + secondary + support
  (blank coefficients derived from role weights), given + blank, given summing below 1
  (unattributed remainder), given summing to 1, and customers with no manager at all;
- daily balances for some deposit accounts (90 days to 2026-09-30 with gaps carried forward),
  their ``avg_balance`` equal to :func:`calc.heavy.daily_average` of them;
- targets for ``deposit_avg`` and ``loan_avg`` for most managers, and non-financial KPIs.

The same seed gives identical frames (all randomness comes from one ``numpy`` generator).

Usage::

    python -m data.sample.generate --out data/sample/sample_bank.xlsx --template data/sample/template.xlsx
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from calc.heavy import with_daily_average
from calc.scenario import Scenario
from data.schema import ENUMS, SHEETS, sheet_by_key

__all__ = ["generate", "write_workbook", "write_template", "main", "PERIOD_END", "PERIOD_DAYS"]

PERIOD_END = pd.Timestamp("2026-09-30")
PERIOD_DAYS = 90

BRANCHES = ("城东支行", "城西支行", "高新支行", "开发区支行", "滨江支行")

# level, share of managers, capacity (how much business they carry)
LEVELS = (
    ("资深客户经理", 0.125, 3.2),
    ("高级客户经理", 0.25, 2.0),
    ("客户经理", 0.415, 1.1),
    ("客户经理助理", 0.15, 0.4),
    ("见习客户经理", 0.06, 0.06),
)

SURNAMES = tuple("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任"
                 "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤")
GIVEN = tuple("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚辉鹏华建国志文海宇浩俊欣怡佳雨婷晨思嘉博晓宏春玉新亮"
              "斌峰琳颖倩雪梅兰凤婧瑶涵轩泽睿晗子一德振兴成龙飞云凯阳永庆立红英秀珍丹慧")
FIRM_WORDS = ("恒达", "华信", "鑫源", "宏远", "金泰", "瑞丰", "中联", "天成", "永兴", "新元", "博雅", "康华", "润泽",
              "盛世", "东方", "海川", "嘉禾", "聚力", "远航", "明德", "华宇", "正泰", "协和", "汇通", "长城", "银河",
              "兴业", "联创", "德润", "晨光", "同舟", "九州", "万象", "金桥", "启明", "蓝海", "青松", "卓越", "安泰",
              "信达", "弘毅", "丰华", "众诚", "美家", "宝丰", "凯旋", "长江", "北辰", "恒信", "利民")
FIRM_TRADES = ("机械制造", "建筑工程", "商贸", "物流", "科技", "电子", "食品", "医药", "纺织", "化工", "新材料",
               "房地产开发", "餐饮管理", "农业发展", "汽车销售", "信息技术", "环保科技", "建材", "服饰", "印务",
               "能源", "智能装备", "供应链管理", "文化传媒", "精密仪器")
FIRM_FORMS = (("有限公司", 0.72), ("股份有限公司", 0.12), ("有限责任公司", 0.10), ("集团有限公司", 0.06))
CITY = "江城"

# (product, weight, rate low, rate high, ftp low, ftp high, risk weight)
PRODUCTS = {
    ("liability", "corporate"): (
        ("单位活期存款", 0.42, 0.0020, 0.0035, 0.0185, 0.0210, None),
        ("单位定期存款", 0.24, 0.0130, 0.0210, 0.0225, 0.0260, None),
        ("协定存款", 0.16, 0.0090, 0.0130, 0.0200, 0.0225, None),
        ("单位通知存款", 0.10, 0.0060, 0.0110, 0.0190, 0.0215, None),
        ("结构性存款", 0.08, 0.0200, 0.0250, 0.0205, 0.0235, None),
    ),
    ("liability", "retail"): (
        ("个人活期存款", 0.45, 0.0020, 0.0030, 0.0180, 0.0205, None),
        ("整存整取定期存款", 0.30, 0.0120, 0.0200, 0.0220, 0.0260, None),
        ("大额存单", 0.15, 0.0190, 0.0250, 0.0210, 0.0240, None),
        ("个人通知存款", 0.10, 0.0055, 0.0100, 0.0190, 0.0215, None),
    ),
    ("asset", "corporate"): (
        ("流动资金贷款", 0.45, 0.0340, 0.0520, 0.0220, 0.0260, 1.0),
        ("固定资产贷款", 0.18, 0.0360, 0.0550, 0.0240, 0.0280, 1.0),
        ("银行承兑汇票贴现", 0.14, 0.0300, 0.0360, 0.0220, 0.0240, 0.5),
        ("贸易融资", 0.13, 0.0350, 0.0480, 0.0225, 0.0250, 0.8),
        ("项目贷款", 0.10, 0.0420, 0.0600, 0.0250, 0.0280, 1.5),
    ),
    ("asset", "retail"): (
        ("个人住房贷款", 0.45, 0.0320, 0.0400, 0.0230, 0.0260, 0.5),
        ("个人经营性贷款", 0.25, 0.0400, 0.0600, 0.0230, 0.0260, 0.75),
        ("个人消费贷款", 0.20, 0.0380, 0.0600, 0.0220, 0.0250, 0.75),
        ("个人汽车贷款", 0.10, 0.0340, 0.0480, 0.0220, 0.0250, 0.75),
    ),
    ("intermediate", "corporate"): (
        ("结算手续费", 0.32, 0, 0, 0, 0, None),
        ("国际结算", 0.14, 0, 0, 0, 0, None),
        ("票据承兑手续费", 0.16, 0, 0, 0, 0, None),
        ("现金管理", 0.14, 0, 0, 0, 0, None),
        ("财务顾问费", 0.10, 0, 0, 0, 0, None),
        ("代发工资", 0.14, 0, 0, 0, 0, None),
    ),
    ("intermediate", "retail"): (
        ("理财代销", 0.34, 0, 0, 0, 0, None),
        ("代理保险", 0.20, 0, 0, 0, 0, None),
        ("基金代销", 0.20, 0, 0, 0, 0, None),
        ("银行卡手续费", 0.16, 0, 0, 0, 0, None),
        ("贵金属代销", 0.10, 0, 0, 0, 0, None),
    ),
}

# five-class probabilities and the provision charged this quarter (share of balance)
CLASSES = ("normal", "special", "substandard", "doubtful", "loss")
CLASS_P = (0.957, 0.030, 0.007, 0.004, 0.002)
PROVISION = {"special": (0.003, 0.01), "substandard": (0.03, 0.10), "doubtful": (0.08, 0.20), "loss": (0.15, 0.35)}

# assignment patterns and their shares of customers
PATTERNS = (
    ("none", 0.05),             # no manager: all unattributed
    ("p", 0.47),                # primary, blank coefficient -> 1
    ("ps", 0.20),               # primary + secondary, blank -> 0.7 / 0.3
    ("pss", 0.10),              # primary + secondary + support, blank -> 0.636 / 0.273 / 0.091
    ("p_given_s_blank", 0.07),  # 0.6 given + blank secondary -> 0.4
    ("given_below", 0.06),      # all given, summing below 1 -> unattributed remainder
    ("given_full", 0.03),       # all given, summing to 1
    ("p_given_only", 0.02),     # primary given 0.8 alone -> 0.2 unattributed
)

SHEET_ORDER = ("managers", "customers", "accounts", "assignments", "daily_balances", "targets", "kpis")


# --------------------------------------------------------------------------------------------
# helpers

def _pick(rng: np.random.Generator, items, weights) -> int:
    w = np.asarray(weights, dtype=float)
    return int(rng.choice(len(items), p=w / w.sum()))


def _person_name(rng: np.random.Generator) -> str:
    name = SURNAMES[int(rng.integers(len(SURNAMES)))]
    for _ in range(1 if rng.random() < 0.35 else 2):
        name += GIVEN[int(rng.integers(len(GIVEN)))]
    return name


def _firm_name(rng: np.random.Generator) -> str:
    word = FIRM_WORDS[int(rng.integers(len(FIRM_WORDS)))]
    trade = FIRM_TRADES[int(rng.integers(len(FIRM_TRADES)))]
    form = FIRM_FORMS[_pick(rng, FIRM_FORMS, [f[1] for f in FIRM_FORMS])][0]
    prefix = CITY + ("市" if rng.random() < 0.5 else "") if rng.random() < 0.6 else ""
    return f"{prefix}{word}{trade}{form}"


def _unique(rng: np.random.Generator, make, n: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        s = make(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _rate_cell(rng: np.random.Generator, x: float, text_share: float = 0.06):
    """A rate as a decimal number, or now and then as the text percent bank exports use."""
    x = round(float(x), 4)
    if rng.random() < text_share:
        return f"{x * 100:.2f}%"
    return x


def _money(x: float) -> float:
    return round(float(x), 2)


def line_scales(rng: np.random.Generator, is_corp: np.ndarray, size: np.ndarray):
    """Per-customer scale of each line (yuan, daily average): deposits, loans and fee income, from
    the customer's type and size factor (also used by ``bench.gen`` for banks of any size)."""
    n = len(is_corp)
    dep_scale = np.where(is_corp, np.exp(np.log(1.6e6) + 1.55 * size), np.exp(np.log(9.0e4) + 1.25 * size))
    loan_noise = rng.standard_normal(n)
    loan_scale = np.where(is_corp, np.exp(np.log(2.0e6) + 1.2 * size + 0.6 * loan_noise),
                          np.exp(np.log(4.5e5) + 0.3 * size + 0.6 * loan_noise))
    fee_scale = dep_scale * np.where(is_corp, rng.lognormal(np.log(0.0009), 0.8, n),
                                     rng.lognormal(np.log(0.0020), 0.8, n))
    return dep_scale, loan_scale, fee_scale


def derived_coefficients(assignments: pd.DataFrame) -> np.ndarray:
    """Coefficient used per assignment row under the default rules (DOMAIN 5, stock factor 1)."""
    role_weight = Scenario().role_weight
    coef = assignments["coefficient"].to_numpy(dtype=float)
    given = ~np.isnan(coef)
    w = np.array([0.0 if g else role_weight[r] for r, g in zip(assignments["role"], given)])
    cust = assignments["customer_id"].to_numpy(dtype=object)
    frame = pd.DataFrame({"c": cust, "given": np.where(given, coef, 0.0), "w": w})
    given_sum = frame.groupby("c", sort=False)["given"].transform("sum").to_numpy()
    w_sum = frame.groupby("c", sort=False)["w"].transform("sum").to_numpy()
    left = np.clip(1.0 - given_sum, 0.0, None)
    share = np.divide(w, w_sum, out=np.zeros_like(w), where=w_sum > 0)
    return np.where(given, coef, left * share)


# --------------------------------------------------------------------------------------------
# the generator

def generate(seed: int = 2026, n_branches: int = 4, n_managers: int = 40, n_customers: int = 2000,
             n_accounts: int = 6000, daily_accounts: int = 60) -> dict[str, pd.DataFrame]:
    """Generate one quarter's extract of a sample bank.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives identical frames.
    n_branches : int
        Number of branches (1 to 5).
    n_managers : int
        Client managers (at least ``n_branches``).
    n_customers : int
        Customers.
    n_accounts : int
        Accounts (at least ``n_customers``: every customer holds one).
    daily_accounts : int
        Deposit accounts that also get 90 days of daily balances.

    Returns
    -------
    dict of str to DataFrame
        ``managers``, ``customers``, ``accounts``, ``assignments``, ``daily_balances``,
        ``targets``, ``kpis`` with the canonical column names of :mod:`data.schema`.
        Enumerated values are canonical keys (``asset``, ``primary``, ``corporate``,
        ``normal``); ``is_new`` is bool; blank cells are ``None``/NaN; a few rate cells are
        text percent strings.
    """
    if not 1 <= n_branches <= len(BRANCHES):
        raise ValueError(f"n_branches must be 1..{len(BRANCHES)}")
    if n_managers < n_branches:
        raise ValueError("n_managers must be at least n_branches")
    if n_accounts < n_customers:
        raise ValueError("n_accounts must be at least n_customers")
    rng = np.random.default_rng(seed)
    branches = BRANCHES[:n_branches]

    # ---- managers
    counts = [max(1, round(share * n_managers)) for _, share, _ in LEVELS]
    counts[2] += n_managers - sum(counts)                  # the rest are plain 客户经理
    level_idx = np.repeat(np.arange(len(LEVELS)), counts)
    rng.shuffle(level_idx)
    m_branch = np.array([i % n_branches for i in range(n_managers)])
    rng.shuffle(m_branch)
    capacity = np.array([LEVELS[i][2] for i in level_idx]) * rng.lognormal(0.0, 0.35, n_managers)
    m_ids = [f"RM{i:04d}" for i in np.sort(rng.choice(np.arange(1, 3000), n_managers, replace=False))]
    managers = pd.DataFrame({
        "manager_id": m_ids,
        "name": _unique(rng, _person_name, n_managers),
        "branch": [branches[b] for b in m_branch],
        "level": [LEVELS[i][0] for i in level_idx],
    })

    # ---- customers
    is_corp = rng.random(n_customers) < 0.30
    is_new = rng.random(n_customers) < 0.20
    c_branch = rng.choice(n_branches, n_customers, p=np.linspace(1.3, 0.8, n_branches) / np.linspace(1.3, 0.8, n_branches).sum())
    size = rng.standard_normal(n_customers)
    size = np.where(is_new, size - 0.35, size)           # new customers start smaller
    c_ids = [f"{i:06d}" for i in np.sort(rng.choice(np.arange(1, 400_000), n_customers, replace=False))]
    corp_names = _unique(rng, _firm_name, int(is_corp.sum()))
    retail_names = [_person_name(rng) for _ in range(int((~is_corp).sum()))]
    ci, ri = iter(corp_names), iter(retail_names)
    customers = pd.DataFrame({
        "customer_id": c_ids,
        "name": [next(ci) if c else next(ri) for c in is_corp],
        "branch": [branches[b] for b in c_branch],
        "type": np.where(is_corp, "corporate", "retail"),
        "is_new": is_new,
    })

    dep_scale, loan_scale, fee_scale = line_scales(rng, is_corp, size)

    # ---- accounts: every customer holds one, bigger customers hold more
    weight = np.where(is_corp, 2.2, 1.0) * np.exp(0.35 * np.clip(size, -2, 3))
    extra = rng.multinomial(n_accounts - n_customers, weight / weight.sum())
    per_cust = 1 + extra
    acc_cust = np.repeat(np.arange(n_customers), per_cust)
    first = np.r_[True, acc_cust[1:] != acc_cust[:-1]]
    lines = np.empty(n_accounts, dtype=object)
    for k in range(n_accounts):
        corp = bool(is_corp[acc_cust[k]])
        if first[k]:
            p = (0.95, 0.04, 0.01) if corp else (0.88, 0.09, 0.03)
        else:
            p = (0.42, 0.36, 0.22) if corp else (0.40, 0.22, 0.38)
        lines[k] = ("liability", "asset", "intermediate")[_pick(rng, range(3), p)]

    # balance shares within a customer's line
    share = rng.gamma(1.2, 1.0, n_accounts)
    key = pd.Series(acc_cust.astype(np.int64) * 3 + pd.Series(lines).map({"liability": 0, "asset": 1, "intermediate": 2}).to_numpy())
    share = share / key.map(pd.Series(share).groupby(key).sum()).to_numpy()

    prefix = {("liability", True): "0101", ("liability", False): "6222", ("asset", True): "0201",
              ("asset", False): "6288", ("intermediate", True): "0301", ("intermediate", False): "6299"}
    serial = np.cumsum(rng.integers(1, 10**12 // (n_accounts + 1), n_accounts))[rng.permutation(n_accounts)]
    rows = []
    for k in range(n_accounts):
        c = int(acc_cust[k])
        corp = bool(is_corp[c])
        line = lines[k]
        products = PRODUCTS[(line, "corporate" if corp else "retail")]
        name, _, r_lo, r_hi, f_lo, f_hi, rw = products[_pick(rng, products, [p[1] for p in products])]
        row = {"account_id": f"{prefix[(line, corp)]}{serial[k]:012d}", "customer_id": c_ids[c], "line": line,
               "product": None if rng.random() < 0.03 else name,
               "avg_balance": None, "base_avg_balance": None, "rate": None, "ftp_rate": None, "fee_income": None,
               "provision": None, "recovery": None, "risk_weight": None, "classification": None}
        if line == "intermediate":
            row["fee_income"] = _money(fee_scale[c] * share[k] * rng.lognormal(0.0, 0.3))
        else:
            scale = dep_scale[c] if line == "liability" else loan_scale[c]
            bal = scale * share[k] * rng.lognormal(0.0, 0.15)
            if line == "liability" and rng.random() < 0.02:
                bal = rng.uniform(0, 800)                # near-dormant account: loses its unit cost
            bal = _money(bal)
            if is_new[c] and rng.random() < 0.85:
                base = 0.0                               # opened this period
            elif rng.random() < 0.05:
                base = 0.0                               # an existing customer's new account
            elif rng.random() < 0.10:
                base = bal * rng.lognormal(0.0, 0.9)     # large swing, either way
            else:
                base = bal * rng.lognormal(0.02, 0.25)
            row["avg_balance"] = bal
            row["base_avg_balance"] = _money(base)
            rate = rng.uniform(r_lo, r_hi)
            ftp = rng.uniform(f_lo, f_hi)
            row["rate"] = _rate_cell(rng, rate)
            row["ftp_rate"] = _rate_cell(rng, ftp, 0.04)
            if line == "asset":
                row["risk_weight"] = None if rng.random() < 0.15 else (
                    1.5 if name == "固定资产贷款" and rng.random() < 0.2 else rw)
                bad = np.exp(-0.6 * np.clip(size[c], -2.5, 3.0))   # big borrowers default less often
                cls = CLASSES[_pick(rng, CLASSES, (CLASS_P[0], *(p * bad for p in CLASS_P[1:])))]
                row["classification"] = None if rng.random() < 0.02 else cls
                if cls != "normal":
                    lo, hi = PROVISION[cls]
                    row["provision"] = _money(bal * rng.uniform(lo, hi))
                    if cls != "special" and rng.random() < 0.5:   # collected: part of what was provided
                        row["recovery"] = _money(row["provision"] * rng.uniform(0.1, 0.8))
                elif rng.random() < 0.006:
                    row["recovery"] = _money(rng.uniform(5_000, 80_000))   # written-off loan collected
        rows.append(row)
    accounts = pd.DataFrame(rows, columns=[c.key for c in sheet_by_key("accounts").columns])

    # ---- daily balances for some deposit accounts; their avg_balance follows from them
    dates = pd.date_range(end=PERIOD_END, periods=PERIOD_DAYS, freq="D")
    dep_idx = np.flatnonzero((accounts["line"] == "liability").to_numpy()
                             & (accounts["avg_balance"].to_numpy(dtype=float) > 10_000))
    chosen = np.sort(rng.choice(dep_idx, min(daily_accounts, len(dep_idx)), replace=False))
    daily_rows = []
    for k in chosen:
        target = float(accounts.at[k, "avg_balance"])
        steps = rng.normal(0.0, 0.03, PERIOD_DAYS) + np.where(rng.random(PERIOD_DAYS) < 0.03,
                                                              rng.normal(0.0, 0.3, PERIOD_DAYS), 0.0)
        path = target * np.exp(np.cumsum(steps) - np.cumsum(steps).mean())
        start = int(rng.integers(10, 45)) if rng.random() < 0.08 else 0   # opened during the period
        keep = rng.random(PERIOD_DAYS) >= 0.05
        keep[start] = True
        keep[-1] = True
        keep[:start] = False
        for d in np.flatnonzero(keep):
            daily_rows.append((accounts.at[k, "account_id"], dates[d], _money(path[d])))
    daily = pd.DataFrame(daily_rows, columns=["account_id", "date", "balance"])
    accounts = with_daily_average(accounts, daily, PERIOD_DAYS)

    # ---- assignments
    by_branch = [np.flatnonzero(m_branch == b) for b in range(n_branches)]
    support_w = np.array([{0: 0.3, 1: 0.6, 2: 1.2, 3: 3.0, 4: 1.0}[i] for i in level_idx])
    pat_names = [p[0] for p in PATTERNS]
    pat_p = [p[1] for p in PATTERNS]
    asg_rows = []

    def choose(pool: np.ndarray, w: np.ndarray, exclude: list[int]) -> int:
        mask = ~np.isin(pool, exclude)
        pool, w = pool[mask], w[mask]
        if len(pool) == 0:
            pool = np.setdiff1d(np.arange(n_managers), exclude)
            w = capacity[pool]
        return int(pool[_pick(rng, pool, w)])

    for c in range(n_customers):
        pattern = pat_names[_pick(rng, pat_names, pat_p)]
        if pattern == "none":
            continue
        local = by_branch[c_branch[c]]
        primary = choose(local, capacity[local], [])
        team = [primary]
        n_roles = {"p": 1, "ps": 2, "pss": 3, "p_given_s_blank": 2, "given_full": 2, "p_given_only": 1,
                   "given_below": 2 if rng.random() < 0.6 else 3}[pattern]
        if n_roles >= 2:
            pool = local if rng.random() < 0.85 else np.arange(n_managers)
            team.append(choose(pool, capacity[pool], team))
        if n_roles >= 3:
            team.append(choose(np.arange(n_managers), support_w, team))
        coefs: list[float | None] = [None] * n_roles
        if pattern == "p_given_s_blank":
            coefs = [0.6, None]
        elif pattern == "given_full":
            coefs = [0.7, 0.3] if rng.random() < 0.6 else [0.5, 0.5]
        elif pattern == "p_given_only":
            coefs = [(0.8, 0.9, 0.7)[int(rng.integers(3))]]
        elif pattern == "given_below":
            options = ((0.5, 0.3), (0.6, 0.2), (0.4, 0.4)) if n_roles == 2 else ((0.5, 0.2, 0.1), (0.4, 0.3, 0.1))
            coefs = list(options[int(rng.integers(len(options)))])
        for role, m, coef in zip(("primary", "secondary", "support"), team, coefs):
            asg_rows.append({"customer_id": c_ids[c], "manager_id": m_ids[m], "role": role, "coefficient": coef})
    assignments = pd.DataFrame(asg_rows, columns=["customer_id", "manager_id", "role", "coefficient"])
    assignments["coefficient"] = assignments["coefficient"].astype(float)

    # ---- targets: near each manager's attributed balances, for most managers
    coef = derived_coefficients(assignments)
    bal = accounts["avg_balance"].to_numpy(dtype=float)
    acc_line = accounts["line"].to_numpy(dtype=object)
    per_cust = pd.DataFrame({"customer_id": accounts["customer_id"],
                             "deposit_avg": np.where(acc_line == "liability", bal, 0.0),
                             "loan_avg": np.where(acc_line == "asset", bal, 0.0)}).groupby("customer_id").sum()
    att = pd.DataFrame({"manager_id": assignments["manager_id"].to_numpy(),
                        "deposit_avg": coef * assignments["customer_id"].map(per_cust["deposit_avg"]).to_numpy(),
                        "loan_avg": coef * assignments["customer_id"].map(per_cust["loan_avg"]).to_numpy()})
    att = att.groupby("manager_id").sum().reindex(m_ids).fillna(0.0)
    # a target blends the manager's own book with the median book of the level (tasks are set by level)
    level_median = att.groupby(level_idx).median()
    has_target = rng.random(n_managers) < 0.88
    target_rows = []
    for i, m in enumerate(m_ids):
        if not has_target[i]:
            continue
        for kpi in ("deposit_avg", "loan_avg"):
            own = max(float(att.at[m, kpi]), 100_000.0)
            norm = max(float(level_median.at[level_idx[i], kpi]), 100_000.0)
            x = own ** 0.5 * norm ** 0.5 * rng.lognormal(0.35, 0.25)
            target_rows.append({"manager_id": m, "kpi": kpi, "target": float(max(10_000, round(x / 10_000) * 10_000))})
    targets = pd.DataFrame(target_rows, columns=["manager_id", "kpi", "target"])

    # ---- non-financial KPIs for every manager
    kpi_rows = []
    for i, m in enumerate(m_ids):
        senior = level_idx[i] <= 1
        breach = rng.random() < 0.15
        kpi_rows += [
            {"manager_id": m, "kpi": "compliance_points", "value": float(rng.integers(1, 4)) if breach else 0.0},
            {"manager_id": m, "kpi": "complaints", "value": float(rng.poisson(0.6))},
            {"manager_id": m, "kpi": "training_hours", "value": float(rng.integers(8, 49))},
            {"manager_id": m, "kpi": "certifications", "value": float(rng.integers(1, 5) if senior else rng.integers(0, 3))},
        ]
    kpis = pd.DataFrame(kpi_rows, columns=["manager_id", "kpi", "value"])

    return {"managers": managers, "customers": customers, "accounts": accounts, "assignments": assignments,
            "daily_balances": daily, "targets": targets, "kpis": kpis}


# --------------------------------------------------------------------------------------------
# writing

def _localised(key: str, frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """Schema column order, enumerated values and headers in ``lang``."""
    sheet = sheet_by_key(key)
    out = pd.DataFrame(index=frame.index)
    for col in sheet.columns:
        values = frame[col.key] if col.key in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if col.kind in ("enum", "bool"):
            if col.kind == "bool":
                values = values.map(lambda v: "yes" if bool(v) else "no")
            if lang == "zh":
                table = {k: zh for k, (zh, _) in ENUMS[col.enum].items()}
                values = values.map(lambda v, t=table: t.get(v) if isinstance(v, str) else None)
        values = values.astype(object).where(values.notna(), None)
        out[col.zh if lang == "zh" else col.key] = values.to_numpy(dtype=object)
    return out


def write_workbook(frames: dict[str, pd.DataFrame], path, lang: str = "zh") -> bytes:
    """Write generated frames as an upload workbook.

    Parameters
    ----------
    frames : dict of str to DataFrame
        As returned by :func:`generate` (any subset of the sheets).
    path : path-like or None
        Target xlsx file (``None``: only return the bytes).
    lang : str
        ``zh``: Chinese sheet names, headers and enumerated values (资产, 主办, 是 ...);
        ``en``: the canonical English keys.

    Returns
    -------
    bytes
        The xlsx file.
    """
    from data.export import write_workbook as _write

    if lang not in ("zh", "en"):
        raise ValueError("lang must be 'zh' or 'en'")
    sheets = {}
    for key in SHEET_ORDER:
        if key in frames:
            sheets[sheet_by_key(key).zh if lang == "zh" else key] = _localised(key, frames[key], lang)
    data = _stable(_write(sheets))
    if path is not None:
        Path(path).write_bytes(data)
    return data


_CREATED = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def _stable(xlsx: bytes) -> bytes:
    """Pin the workbook's creation time (XlsxWriter writes "now") so a seed gives the same bytes."""
    src = zipfile.ZipFile(io.BytesIO(xlsx))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                body = _CREATED.sub(rb"\g<1>" + PERIOD_END.strftime("%Y-%m-%dT00:00:00Z").encode() + rb"\g<2>", body)
            out.writestr(info, body)
    return buf.getvalue()


def write_template(path, lang: str = "zh") -> bytes:
    """Write the blank upload template: all seven sheets, headers only."""
    empty = {s.key: pd.DataFrame(columns=[c.key for c in s.columns]) for s in SHEETS}
    return write_workbook(empty, path, lang)


def main(argv=None) -> int:
    """Command line: write the sample workbook and, optionally, the blank template."""
    parser = argparse.ArgumentParser(prog="python -m data.sample.generate",
                                     description="Generate the Jixiao sample bank extract (样例银行数据)")
    parser.add_argument("--out", default="data/sample/sample_bank.xlsx", help="sample workbook to write")
    parser.add_argument("--template", help="also write the blank template here")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh", help="headers and values (default zh)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--managers", type=int, default=40)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=6000)
    parser.add_argument("--daily-accounts", type=int, default=60)
    args = parser.parse_args(argv)
    frames = generate(args.seed, args.branches, args.managers, args.customers, args.accounts, args.daily_accounts)
    data = write_workbook(frames, args.out, args.lang)
    rows = ", ".join(f"{k} {len(v)}" for k, v in frames.items())
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB; {rows})")
    if args.template:
        write_template(args.template, args.lang)
        print(f"wrote {args.template}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def previous_period(frames: dict, seed: int = 2025) -> dict:
    """The sample bank one quarter earlier: same people and accounts, balances and fees moved.

    Daily balances are left out (they belong to the later quarter). Used to seed a second
    published period so that the History page has a trend to show.
    """
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in frames.items()}
    acc = out["accounts"]
    n = len(acc)
    acc["avg_balance"] = (acc["avg_balance"] * rng.uniform(0.8, 1.1, n)).round(2)
    acc["base_avg_balance"] = (acc["base_avg_balance"] * rng.uniform(0.85, 1.1, n)).round(2)
    acc["fee_income"] = (acc["fee_income"] * rng.uniform(0.6, 1.2, n)).round(2)
    acc["provision"] = (acc["provision"] * rng.uniform(0.5, 1.5, n)).round(2)
    out["daily_balances"] = out["daily_balances"].iloc[0:0].copy()
    if len(out.get("kpis", ())):
        k = out["kpis"]
        k["value"] = np.maximum(0, k["value"] + rng.integers(-1, 2, len(k)))
    return out
