"""The row-level validation report: every problem found in an extract, in Chinese and English.

Each :class:`Issue` names the sheet, the row as Excel numbers it (header = the row it was found
on, usually 1; first data row = 2), the column, the offending value and the rule broken. The
whole report is one :class:`Report`: printable, convertible to a frame for download.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Issue", "Report", "ExtractError", "RULES"]

# rule code -> (English template, Chinese template). Templates use str.format fields.
RULES: dict[str, tuple[str, str]] = {
    "file_unreadable": ("the file cannot be read as {expected}: {detail}", "文件无法作为{expected}读取：{detail}"),
    "file_type": ("the file is not a supported spreadsheet ({detail}); upload .xlsx or .csv",
                  "文件不是支持的表格格式（{detail}）；请上传 .xlsx 或 .csv"),
    "file_too_large": ("the file is too large: {detail}", "文件过大：{detail}"),
    "file_unsafe": ("the file was refused as unsafe: {detail}", "文件存在安全风险，已拒绝：{detail}"),
    "csv_quote": ('a quote (") opened on this row of {file} is never closed, so every line after it would be '
                  'read as one cell; close the quote or remove it',
                  '{file} 中此行的引号（"）没有闭合，其后的所有行都会被读成一个单元格；请补上或删除该引号'),
    "encoding": ("the text is neither UTF-8 nor GB18030 ({detail})", "文本编码既不是 UTF-8 也不是 GB18030（{detail}）"),
    "missing_sheet": ("required sheet '{sheet}' ({sheet_zh}) is missing; sheets found: {found}",
                      "缺少必需的工作表“{sheet_zh}”（{sheet}）；现有工作表：{found}"),
    "duplicate_sheet": ("two sheets map to '{sheet}': {found}", "有两个工作表都对应“{sheet_zh}”：{found}"),
    "unknown_sheet": ("sheet '{found}' is not part of the template and was not read",
                      "工作表“{found}”不在模板中，未读取"),
    "missing_column": ("required column '{col_key}' ({column_zh}) is missing; headers found: {found}",
                       "缺少必需的列“{column_zh}”（{col_key}）；现有表头：{found}"),
    "duplicate_column": ("two headers map to column '{column}': {found}", "有两个表头都对应列“{column_zh}”：{found}"),
    "unknown_column": ("column '{found}' is not part of the template and was not read",
                       "列“{found}”不在模板中，未读取"),
    "empty_sheet": ("the sheet has no data rows", "工作表没有数据行"),
    "required": ("a value is required", "必填项为空"),
    "not_number": ("'{value}' is not a number", "“{value}”不是数字"),
    "not_date": ("'{value}' is not a date (write 2026-09-30)", "“{value}”不是日期（请写作 2026-09-30）"),
    "negative": ("{value} is negative; balances must be >= 0", "{value} 为负数；余额不能小于 0"),
    "rate_percent": ("{value} looks like a percent: write {hint} or {value}%",
                     "{value} 看起来是百分数：请写作 {hint} 或 {value}%"),
    "rate_range": ("{value} is outside 0..1 (rates are decimal fractions per year)",
                   "{value} 超出 0..1 范围（利率为年化小数）"),
    "out_of_range": ("{value} is outside {low}..{high}", "{value} 超出 {low}..{high} 范围"),
    "coefficient_range": ("coefficient {value} must be > 0 and <= 1", "关联度系数 {value} 必须大于 0 且不超过 1"),
    "coefficient_sum": ("coefficients given for customer {key} sum to {value}, above 1",
                        "客户 {key} 已填的关联度系数合计 {value}，超过 1"),
    "coefficient_zero_left": ("coefficients given for customer {key} already sum to 1: the blank ones get 0",
                              "客户 {key} 已填系数合计为 1，空白系数将为 0"),
    "unknown_value": ("'{value}' is not one of: {choices}", "“{value}”不是允许的取值：{choices}"),
    "duplicate_id": ("{column} '{value}' appears more than once (first on row {first_row})",
                     "{column_zh}“{value}”重复出现（首次在第 {first_row} 行）"),
    "duplicate_pair": ("the pair {value} appears more than once (first on row {first_row})",
                       "组合 {value} 重复出现（首次在第 {first_row} 行）"),
    "unknown_key": ("{column} '{value}' is not in sheet '{target}'", "{column_zh}“{value}”在“{target_zh}”表中不存在"),
    "ignored_value": ("{column} {value} is ignored on a {line} account", "{line} 账户的{column_zh} {value} 不参与计算"),
    "avg_replaced": ("avg_balance {value} replaced by {computed} computed from daily balances",
                     "日均余额 {value} 已由每日余额计算值 {computed} 替代"),
    "unknown_kpi": ("KPI '{value}' is neither computed nor uploaded; every manager scores it on 0",
                    "指标“{value}”既非系统计算也未上传，所有客户经理按 0 计"),
    "id_number": ("id {value} was stored as a number in Excel; leading zeros, if any, are lost",
                  "编号 {value} 在 Excel 中为数字格式，前导零（如有）已丢失"),
    "formula_text": ("text '{value}' starts like a formula; it is kept as plain text",
                     "文本“{value}”以公式符号开头，已按普通文本处理"),
    # hostile and strange cells (docs/RULES.md, "Hostile and strange cells")
    "file_encrypted": ("the workbook is encrypted (protected by a password to open): save it again without the "
                       "password (Excel: File > Info > Protect Workbook > Encrypt with Password, clear it; WPS: "
                       "File > Document Encryption) and upload that copy",
                       "工作簿已加密（设有打开密码）：请去掉密码后另存（Excel：文件 > 信息 > 保护工作簿 > 用密码进行加密，"
                       "清空密码；WPS：文件 > 文档加密），再上传该副本"),
    "encoding_utf16": ("the file is {detail}; save it as CSV UTF-8 (Excel or WPS: Save As > CSV UTF-8) and upload "
                       "that", "文件为 UTF-16 文本（{detail}），无法读取；请另存为 UTF-8 CSV（Excel 或 WPS：另存为 > CSV UTF-8）后上传"),
    "used_range": ("the sheet's cells reach {value} ({columns} columns x {rows} rows); a sheet may use at most "
                   "{max_columns} columns, {max_rows} rows and {max_cells} cells in all, so it was not read. A stray "
                   "value far from the table? Delete the rows and columns beyond your data (Ctrl+End in Excel or WPS "
                   "goes to the last used cell) and save again",
                   "工作表的单元格延伸到 {value}（{columns} 列 x {rows} 行）；每个工作表最多 {max_columns} 列、{max_rows} 行、"
                   "共 {max_cells} 个单元格，因此未读取。是否有远离表格的误输入？请删除数据以外的行和列（在 Excel 或 WPS 中按 "
                   "Ctrl+End 可定位到最后使用的单元格）后重新保存"),
    "xml_padding": ("the file was refused as unsafe: {size} MB of the sheet's XML hold no tag at all, padding rather "
                    "than cells (as in a zip bomb), which no spreadsheet program writes; open the file in Excel or WPS "
                    "and save it again",
                    "文件存在安全风险，已拒绝：工作表 XML 中连续 {size} MB 没有任何标签，是填充内容而非单元格（类似压缩炸弹），"
                    "表格软件不会这样保存；请用 Excel 或 WPS 打开后重新保存"),
    "shared_string": ("cell {value} refers to shared text '{index}', which is not an entry number: the file is "
                      "damaged (the cell would show another cell's text). Open it in Excel or WPS and save it again",
                      "单元格 {value} 引用的共享文本编号“{index}”不是有效编号：文件已损坏（该单元格会显示其他单元格的文字）。"
                      "请用 Excel 或 WPS 打开后重新保存"),
    "shared_string_past": ("cell {value} refers to shared text no. {index}, but the workbook's shared-text table holds "
                           "{size} entries: the file is damaged. Open it in Excel or WPS and save it again",
                           "单元格 {value} 引用第 {index} 号共享文本，但工作簿的共享文本表只有 {size} 条：文件已损坏。"
                           "请用 Excel 或 WPS 打开后重新保存"),
    "formula_no_value": ("cell {cell} holds a formula ({value}) with no saved value, so it would read as blank (0): "
                         "the workbook must be saved by Excel or WPS, which store each formula's value, or paste "
                         "the cells as values",
                         "单元格 {cell} 是公式（{value}），但文件中没有保存其计算结果，会被读成空白（0）：请用 Excel 或 WPS "
                         "保存该工作簿（会保存公式结果），或将这些单元格粘贴为数值"),
    "formula_no_value_more": ("{count} more formula cells with no saved value in this sheet (the first at {cell}); "
                              "save the workbook in Excel or WPS, or paste the cells as values",
                              "本表另有 {count} 个公式单元格没有保存计算结果（第一个在 {cell}）；请用 Excel 或 WPS 保存，"
                              "或粘贴为数值"),
    "hidden_sheet": ("sheet '{found}' is {state} in the workbook; it was read like any other sheet (unhide it to "
                     "check what it holds)", "工作表“{found}”在工作簿中{state_zh}；已按普通工作表读取（请取消隐藏后核对其内容）"),
    "too_large": ("{value} is beyond ±{limit}, larger than any real amount (a typo or an overflow?)",
                  "{value} 超出 ±{limit}，大于任何实际金额（输入错误或溢出？）"),
    "date_range": ("date {value} is outside {low}..{high} (a typo?)", "日期 {value} 超出 {low}..{high} 范围（输入错误？）"),
    "date_outlier": ("date {value} is {days} days from the median date of this column ({median}); dates of one "
                     "extract lie within {limit} days of it, and one far away would move the period's end "
                     "(2062 typed for 2026?)",
                     "日期 {value} 与本列日期中位数（{median}）相差 {days} 天；同一份数据的日期应在其前后 {limit} 天内，"
                     "相差过远会移动期间终点（是否把 2026 误写为 2062？）"),
    "text_too_long": ("'{value}' is {length} characters long; this column holds at most {limit}",
                      "“{value}”长 {length} 个字符；此列最多 {limit} 个字符"),
    "text_nul": ("'{value}' holds a NUL character (byte 0, shown as ␀), which cannot be stored; remove it",
                 "“{value}”含有 NUL 字符（字节 0，显示为 ␀），无法保存；请删除"),
}


_EXPECTED_ZH = {"a workbook": "工作簿", "a spreadsheet": "表格文件", "a folder of CSV files": "CSV 文件夹",
                "a file or folder": "文件或文件夹", "a CSV file": "CSV 文件"}


@dataclass(frozen=True)
class Issue:
    """One problem found in an upload.

    Attributes
    ----------
    rule : str
        Key into :data:`RULES`.
    severity : str
        ``error`` blocks the run; ``warning`` is reported and the run goes on.
    sheet : str
        Sheet (or CSV file) name as the user wrote it; ``""`` for whole-file problems.
    row : int or None
        Excel row number (1-based, as Excel shows it); ``None`` for sheet-level problems.
    column : str
        Column header as the user wrote it; ``""`` when not about one column.
    value : str
        The offending value as text.
    params : dict
        Extra fields for the message template.
    """

    rule: str
    severity: str = "error"
    sheet: str = ""
    row: int | None = None
    column: str = ""
    value: str = ""
    params: dict = field(default_factory=dict, hash=False, compare=False)

    def message(self, lang: str = "en") -> str:
        """The rule broken, in ``en`` or ``zh``."""
        en, zh = RULES[self.rule]
        fields = {"value": self.value, "column": self.column, "column_zh": self.column, **self.params}
        if lang == "zh" and "expected" in fields:
            fields["expected"] = _EXPECTED_ZH.get(fields["expected"], fields["expected"])
        try:
            return (zh if lang == "zh" else en).format(**fields)
        except (KeyError, IndexError):  # a template field missing is our bug, never the user's crash
            return f"{self.rule}: {self.value}"

    def where(self, lang: str = "en") -> str:
        """``sheet 'accounts', row 7, column 'rate'`` (or the Chinese equivalent)."""
        parts = []
        if lang == "zh":
            if self.sheet:
                parts.append(f"工作表“{self.sheet}”")
            if self.row is not None:
                parts.append(f"第 {self.row} 行")
            if self.column:
                parts.append(f"列“{self.column}”")
            return "，".join(parts)
        if self.sheet:
            parts.append(f"sheet '{self.sheet}'")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def line(self, lang: str = "en") -> str:
        """One printable line: severity, place and message."""
        sev = {"error": "错误", "warning": "提示"}[self.severity] if lang == "zh" else self.severity.upper()
        place = self.where(lang)
        sep = "：" if lang == "zh" else ": "
        return f"[{sev}] {place}{sep if place else ''}{self.message(lang)}"


@dataclass
class Report:
    """All issues of one upload, in the order found (sheet order, then row)."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        """Append one issue."""
        self.issues.append(issue)

    def extend(self, issues) -> None:
        """Append several issues."""
        self.issues.extend(issues)

    @property
    def errors(self) -> list[Issue]:
        """Issues that block the run."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Issues reported while the run goes on."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def sorted(self) -> list[Issue]:
        """Errors first, then by sheet and row."""
        return sorted(self.issues, key=lambda i: (i.severity != "error", i.sheet, i.row or 0, i.column))

    def to_frame(self) -> pd.DataFrame:
        """One row per issue, with both languages, for display and download."""
        rows = [
            {
                "severity": i.severity,
                "sheet": i.sheet,
                "row": i.row,
                "column": i.column,
                "value": i.value,
                "rule": i.rule,
                "message_en": i.message("en"),
                "message_zh": i.message("zh"),
            }
            for i in self.sorted()
        ]
        cols = ["severity", "sheet", "row", "column", "value", "rule", "message_en", "message_zh"]
        frame = pd.DataFrame(rows, columns=cols)
        frame["row"] = frame["row"].astype("Int64")
        return frame

    def text(self, lang: str = "both", limit: int | None = None) -> str:
        """The report as printable lines; ``lang`` is ``en``, ``zh`` or ``both``."""
        items = self.sorted()
        shown = items if limit is None else items[:limit]
        lines = []
        for i in shown:
            if lang in ("en", "both"):
                lines.append(i.line("en"))
            if lang in ("zh", "both"):
                lines.append(("    " if lang == "both" else "") + i.line("zh"))
        if len(shown) < len(items):
            lines.append(f"... and {len(items) - len(shown)} more / 另有 {len(items) - len(shown)} 条")
        n_err, n_warn = len(self.errors), len(self.warnings)
        lines.append(f"{n_err} error(s), {n_warn} warning(s) / {n_err} 个错误，{n_warn} 个提示")
        return "\n".join(lines)


class ExtractError(ValueError):
    """The extract cannot be used; ``report`` holds every problem found."""

    @classmethod
    def of(cls, rule: str, sheet: str = "", **params) -> "ExtractError":
        """An error whose report is the single whole-file issue ``rule`` (e.g. an unreadable file)."""
        return cls(Report([Issue(rule, sheet=sheet, params=params)]))

    def __init__(self, report: Report):
        self.report = report
        first = report.errors[0] if report.errors else None
        summary = f"{len(report.errors)} error(s) in the extract"
        if first is not None:
            summary += f"; first: {first.line('en')}"
        super().__init__(summary)
