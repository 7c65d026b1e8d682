"""Coefficient edit files (DOMAIN 11.5 ``--edits``): read, check against a dataset, report by row.

An edits file is a CSV (or a workbook's first sheet) with the columns ``action`` (set / derive /
add / remove, or 设置 / 恢复推导 / 新增 / 删除), ``customer_id``, ``manager_id``, ``role`` and
``coefficient``; the headers may be the Chinese names of the assignments sheet (客户号,
客户经理编号, 角色, 关联度系数) and 操作 for the action. It holds a few hundred rows at most
(what a what-if session changes), so rows are read one by one.

Every problem becomes a report line naming the file, the Excel row, the column and the value,
in English and Chinese, as for an extract (:mod:`data.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from calc.heavy import Base
from calc.whatif import Edit, EditError, apply_edits
from data.readers import read_bytes
from data.report import RULES, ExtractError, Issue, Report
from data.schema import enum_value, normalize_label, sheet_by_key

__all__ = ["EditFile", "read_edits", "apply_edit_file", "edit_issue", "edit_message", "COLUMNS"]

COLUMNS = ("action", "customer_id", "manager_id", "role", "coefficient")
MAX_EDITS = 100_000
_ACTION_ALIASES = {"set": "set", "设置": "set", "设定": "set", "derive": "derive", "恢复推导": "derive", "推导": "derive",
                   "add": "add", "新增": "add", "增加": "add", "remove": "remove", "删除": "remove", "移除": "remove"}

# rule code -> (English, Chinese); registered with the extract rules so a report prints them
RULES.update({
    "edit_header": ("the edits file lacks the column '{col_key}' ({column_zh}); headers found: {found}",
                    "修改文件缺少“{column_zh}”（{col_key}）列；找到的表头：{found}"),
    "edit_empty": ("the edits file holds no edit", "修改文件中没有任何修改"),
    "edit_too_many": ("the edits file holds {n} edits, more than {limit}", "修改文件有 {n} 条修改，超过上限 {limit}"),
    "edit_action": ("action '{value}' must be one of set, derive, add, remove (设置, 恢复推导, 新增, 删除)",
                    "操作“{value}”必须是 设置、恢复推导、新增、删除（set, derive, add, remove）之一"),
    "edit_required": ("this column is required", "此列必填"),
    "edit_coefficient": ("coefficient '{value}' must be a number with 0 < c <= 1", "关联度系数“{value}”必须是大于 0 且不超过 1 的数"),
    "edit_set_needs_coefficient": ("set needs a coefficient (0 < c <= 1)", "设置操作需要填写关联度系数（大于 0 且不超过 1）"),
    "edit_role": ("add needs a role: primary, secondary or support (主办, 协办, 支持)", "新增操作需要角色：主办、协办或支持"),
    "edit_unknown_customer": ("customer {value} is not in this dataset", "客户 {value} 不在本数据集中"),
    "edit_unknown_manager": ("manager {value} is not in this dataset", "客户经理 {value} 不在本数据集中"),
    "edit_pair_exists": ("customer {customer} already has manager {value}; use set or remove",
                         "客户 {customer} 已由客户经理 {value} 管户；请用 设置 或 删除"),
    "edit_pair_missing": ("customer {customer} has no manager {value} to {action}",
                          "客户 {customer} 没有客户经理 {value}，无法{action_zh}"),
    "edit_sum": ("after these edits the given coefficients of customer {customer} sum to {value}, more than 1; "
                 "the edits were not applied", "按这些修改，客户 {customer} 的给定关联度系数合计为 {value}，超过 1；修改未生效"),
})
_ACTION_ZH = {"set": "设置", "derive": "恢复推导", "add": "新增", "remove": "删除", "move": "移交"}


@dataclass
class EditFile:
    """A parsed edits file: the edits in file order, the Excel row of each, and each column's
    header as typed (for messages)."""

    name: str
    edits: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    headers: dict = field(default_factory=dict)


def _headers() -> dict[str, str]:
    """Normalised header -> column key: the assignments sheet's names and aliases, plus the action."""
    sheet = sheet_by_key("assignments")
    out = {normalize_label(x): "action" for x in ("action", "操作", "动作", "修改", "edit")}
    for c in sheet.columns:
        for label in (c.key, c.zh, *c.aliases):
            out.setdefault(normalize_label(label), c.key)
    return out


def _text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def read_edits(name: str, data: bytes) -> EditFile:
    """Parse an edits file.

    Parameters
    ----------
    name : str
        The file name (messages name it as the sheet).
    data : bytes

    Returns
    -------
    EditFile
        The edits in file order (ids as typed, role as its English code), their Excel rows and
        the headers as typed.

    Raises
    ------
    ExtractError
        With one report line per bad cell (Excel row, column, value, rule), or for a file that
        is not a table or lacks a column.
    """
    book = read_bytes(name, data)
    if not book.sheets:
        raise ExtractError.of("edit_empty", sheet=name)
    sheet = book.sheets[0]
    rows = sheet.head(None)
    if not rows:
        raise ExtractError.of("edit_empty", sheet=name)
    lookup = _headers()
    header = [_text(h) for h in rows[0]]
    at: dict[str, int] = {}
    for j, h in enumerate(header):
        key = lookup.get(normalize_label(h))
        if key is not None and key not in at:
            at[key] = j
    assignments = sheet_by_key("assignments")
    zh = {"action": "操作", **{c.key: c.zh for c in assignments.columns}}
    missing = [k for k in ("action", "customer_id", "manager_id") if k not in at]
    if missing:
        found = ", ".join(h for h in header if h) or "(none)"
        raise ExtractError(Report([Issue("edit_header", sheet=name, row=1, params={
            "col_key": k, "column_zh": zh[k], "found": found}) for k in missing]))
    body = rows[1:]
    if len(body) > MAX_EDITS:
        raise ExtractError.of("edit_too_many", sheet=name, n=f"{len(body):,}", limit=f"{MAX_EDITS:,}")
    issues: list[Issue] = []
    edits: list[Edit] = []
    excel_rows: list[int] = []
    head = {k: (header[j] or k) for k, j in at.items()}

    def cell(r: list, key: str) -> str:
        j = at.get(key)
        return _text(r[j]) if j is not None and j < len(r) else ""

    for i, r in enumerate(body):
        excel_row = i + 2
        values = {k: cell(r, k) for k in COLUMNS}
        if not any(values.values()):
            continue                                  # a blank row between edits
        action = _ACTION_ALIASES.get(normalize_label(values["action"]))
        bad = False

        def add(rule: str, key: str, **params):
            nonlocal bad
            issues.append(Issue(rule, sheet=name, row=excel_row, column=head.get(key, key), value=values.get(key, ""),
                                params=params))
            bad = True

        if action is None:
            add("edit_action", "action", value=values["action"])
        for key in ("customer_id", "manager_id"):
            if not values[key]:
                add("edit_required", key)
        coefficient = None
        if values["coefficient"]:
            try:
                coefficient = float(values["coefficient"].replace(",", ""))
            except ValueError:
                coefficient = math.nan
            if not (math.isfinite(coefficient) and 0.0 < coefficient <= 1.0):
                add("edit_coefficient", "coefficient", value=values["coefficient"])
        if action == "set" and not values["coefficient"]:
            add("edit_set_needs_coefficient", "coefficient")
        role = None
        if values["role"]:
            role = enum_value("role", values["role"])
        if action == "add" and role is None:
            add("edit_role", "role")
        if not bad:
            edits.append(Edit(action, values["customer_id"], values["manager_id"], role=role, coefficient=coefficient))
            excel_rows.append(excel_row)
    if issues:
        raise ExtractError(Report(issues))
    if not edits:
        raise ExtractError.of("edit_empty", sheet=name)
    return EditFile(name, edits, excel_rows, head)


def apply_edit_file(base: Base, path: str | Path) -> tuple[Base, EditFile]:
    """Read the edits file at ``path`` and apply it to ``base`` (DOMAIN 11.1).

    Returns
    -------
    tuple of (Base, EditFile)

    Raises
    ------
    ExtractError
        A bad cell (see :func:`read_edits`), or an edit the dataset refuses (unknown customer or
        manager, a pair that does not exist, a sum above 1), naming the Excel row.
    """
    path = Path(path)
    parsed = read_edits(path.name, path.read_bytes())
    try:
        return apply_edits(base, parsed.edits), parsed
    except EditError as e:
        raise ExtractError(Report([edit_issue(e, parsed)])) from None


def edit_issue(e: EditError, parsed: EditFile) -> Issue:
    """The report line of an :class:`~calc.whatif.EditError` (row and column of the edit at fault;
    for a sum above 1, the first edit of that customer)."""
    edits, rows = parsed.edits, parsed.rows
    index = e.index
    if index is None and e.customer_id is not None:
        index = next((i for i, x in enumerate(edits) if x.customer_id.strip() == e.customer_id), None)
    row = rows[index] if index is not None and index < len(rows) else None
    edit = edits[index] if index is not None and index < len(edits) else None
    column = parsed.headers.get(e.field or "coefficient", e.field or "coefficient")
    value = e.params.get("value")
    shown = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    params = {"value": shown, "customer": e.customer_id or (edit.customer_id if edit else ""),
              "action": e.params.get("action", ""), "action_zh": _ACTION_ZH.get(e.params.get("action", ""), "")}
    rule = f"edit_{e.rule}" if f"edit_{e.rule}" in RULES else "edit_sum"
    return Issue(rule, sheet=parsed.name, row=row, column=column, value=shown, params=params)



def edit_message(e: EditError, lang: str = "en") -> str:
    """An :class:`~calc.whatif.EditError` in the user's language (``zh`` or ``en``), naming the
    customer, manager or sum as the report line does."""
    if not e.rule:
        return str(e)
    value = e.params.get("value")
    shown = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    action = e.params.get("action", "")
    params = {"value": shown, "customer": e.customer_id or "", "action": action,
              "action_zh": _ACTION_ZH.get(action, action)}
    rule = f"edit_{e.rule}" if f"edit_{e.rule}" in RULES else None
    if rule is None:
        return str(e)
    return Issue(rule, params=params).message(lang)
