"""Jixiao headless commands.

Usage
-----
python cli.py evaluate INPUT [--scenario FILE.toml] [--json OUT.json] [--xlsx OUT.xlsx] [--report OUT.xlsx]
                    [--accept-valid-rows [--quarantine OUT.xlsx]]

python cli.py evaluate INPUT [--scenario S] --edits EDITS.csv --json OUT.json
python cli.py evaluate INPUT [--scenario S] --budget K [--lock LINE ...] --json OUT.json
python cli.py compare INPUT_A INPUT_B [--scenario-a SA] [--scenario-b SB] [--json OUT.json]
python cli.py load INPUT --period 2026Q3 [--accept-valid-rows]
python cli.py publish --period 2026Q3 [--scenario FILE.toml] [--reason TEXT]
python cli.py verify (--period 2026Q3 | --all)
python cli.py statement --period 2026Q3 --manager M [--version N] [--json OUT.json]
python cli.py seed
python cli.py user add USERNAME --role ROLE [--branch B] [--manager-id M]   (password from stdin)
python cli.py user list

INPUT is a workbook (.xlsx, .xlsm, .xls; the content decides; .ods and .xlsb are refused) or a
folder of CSV files. Exit codes: 0 done, 1 the input or scenario is invalid (the row-level report
is printed), 2 bad command line, ``--accept-valid-rows`` on an extract with structural errors, or
the store busy, 3 an internal error (no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

# Set by a command that leaves nothing to close (every output file is closed, no database
# connection is open): the process then ends without the interpreter's finalisation, which
# tears down pandas, polars, pyarrow and DuckDB module by module (~0.2 s, ~0.35 s after a
# 1M-account run) for memory the system takes back at once anyway.
_NOTHING_TO_CLOSE = False


def _load_scenario(path: str | None):
    from calc.scenario import Scenario

    if not path:
        return Scenario()
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"scenario file {path} does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"scenario file {path} is not UTF-8 text") from None
    return Scenario.from_toml(text)


def _summary(result, limit: int = 15, lang: str = "zh") -> str:
    """The first ``limit`` managers by rank and the bank's totals, in ``lang`` (the term table)."""
    from data.terms import cli_word, value_word

    w = lambda key, **fmt: cli_word(key, lang, **fmt)     # noqa: E731
    m = result.managers.sort_values(["rank", "manager_id"], kind="stable").head(limit)
    lines = [f"{w('rank'):>4}  {w('manager'):<10} {w('name'):<10} {w('branch'):<12} {w('contribution'):>14} "
             f"{w('pay'):>12} {w('score'):>7}  {w('grade')}"]
    cols = [m[c].tolist() for c in ("rank", "manager_id", "name", "branch", "total", "pay", "score", "grade")]
    for rank, mid, name, branch, total, pay, score, grade in zip(*cols):     # at most ``limit`` rows
        lines.append(f"{int(rank):>4}  {mid:<10} {name:<10} {branch:<12} {total:>14,.2f} "
                     f"{pay:>12,.2f} {score:>7.2f}  {value_word('grade', grade, lang)}")
    if len(result.managers) > limit:
        lines.append(w("more", n=f"{len(result.managers) - limit:,}"))
    t = result.totals
    lines.append(w("totals", **{k: f"{t[k]:,.2f}" for k in ("contribution", "attributed", "unattributed", "pay",
                                                            "points_pay")}))
    return "\n".join(lines)


def _validated(input_path: str, accept_valid_rows: bool, report_path: str | None = None, max_warnings: int = 50):
    """Read and validate INPUT, printing the report; return ``(frames, quarantine or None)`` or None.

    None means the input is unusable (the report was printed). With ``accept_valid_rows``, rows
    with errors and the rows depending on them are split off into the quarantine, and what is
    kept and quarantined per sheet is printed first; an extract with structural errors (a
    missing sheet or required column, an unreadable file ...), which no quarantine can mend
    (:func:`data.quarantine.refusals`), returns ``EXIT_USAGE`` instead (the report printed).
    """
    from data.ingest import parse_book
    from data.quarantine import refusals, split_summary, split_valid
    from data.readers import read_input
    from data.report import ExtractError

    try:
        extract, report = parse_book(read_input(input_path))
    except ExtractError as e:
        extract, report = None, e.report
    if extract is not None and extract.notes:
        print("encoding / 编码: " + "; ".join(extract.notes), file=sys.stderr)
    if report_path:
        from data.export import write_workbook

        write_workbook({"report": report.to_frame()}, report_path)
    refused = refusals(extract, report, "en") if accept_valid_rows and not report.ok else []
    if extract is None or (not report.ok and not accept_valid_rows) or refused:
        print(f"{input_path}: the extract is invalid / 数据校验未通过", file=sys.stderr)
        print(report.text(), file=sys.stderr)
        if refused:
            print("--accept-valid-rows refused: the extract has structural errors, which no quarantine can mend; "
                  "fix them and load again / 存在结构性错误（缺少工作表或必需列、文件无法读取等），不能仅采用有效行；"
                  "请修正后重新导入:", file=sys.stderr)
            for line_en, line_zh in zip(refused, refusals(extract, report, "zh")):
                print(f"  {line_en}\n    {line_zh}", file=sys.stderr)
            return EXIT_USAGE
        return None
    if report.issues:
        print(report.text(limit=max_warnings), file=sys.stderr)
    if report.ok:
        return extract.frames, None
    summary = split_summary(extract, report)
    print("sheet / 工作表: read 读取, kept 保留, quarantined with errors 因错误隔离, "
          "quarantined as dependants 因依赖被拒行而隔离", file=sys.stderr)
    for r in summary.itertuples(index=False):
        print(f"  {r.sheet}: {r.read:,} read, {r.kept:,} kept, {r.quarantined_own_errors:,} with errors, "
              f"{r.quarantined_cascade:,} dependants", file=sys.stderr)
    frames, quarantine = split_valid(extract, report)
    print(f"{len(quarantine)} row(s) quarantined / {len(quarantine)} 行已隔离", file=sys.stderr)
    return frames, quarantine


def _engine_ready(args) -> bool:
    """Settle ``args.engine`` (the option, else the configured engine) and say why it cannot run
    (False) before any input is read."""
    from data.settings import heavy_engine

    try:
        args.engine = args.engine or heavy_engine()
    except ValueError as e:
        print(f"engine error / 计算引擎错误: {e}", file=sys.stderr)
        return False
    from data.warehouse import is_warehouse

    if args.engine == "spark" or is_warehouse(str(args.input)):
        from calc.spark import unavailable

        why = unavailable()
        if why:
            print(f"the Spark engine cannot run here / 无法使用 Spark 引擎: {why}", file=sys.stderr)
            return False
    return True


def cmd_evaluate(args) -> int:
    """Validate INPUT, run both stages, write the JSON / xlsx outputs.

    Big objects are let go as soon as the next step no longer needs them: the extract's frames
    (and the heavy stage's Base, which holds the account rows) before the outputs are written,
    and the JSON document is streamed to its file in bounded pieces (:func:`calc.output.write_document`),
    so the outputs add tens of MB, not the size of the document, at any number of customers.
    """
    from calc.pipeline import run

    global _NOTHING_TO_CLOSE
    _NOTHING_TO_CLOSE = True     # files only, each closed by a with block; no database
    try:
        scenario = _load_scenario(args.scenario)
    except ValueError as e:
        print(f"scenario error / 方案错误: {e}", file=sys.stderr)
        return EXIT_INVALID
    if not _engine_ready(args):
        return EXIT_INVALID
    got = _validated(args.input, args.accept_valid_rows, args.report, args.max_warnings)
    if got is None:
        return EXIT_INVALID
    if isinstance(got, int):      # --accept-valid-rows refused for structural errors
        return got
    frames, quarantine = got
    del got
    _release_unused_memory()     # what reading and checking freed: the heavy stage allocates elsewhere
    if quarantine is not None:  # --accept-valid-rows: every rejected row is written or printed
        from data.export import frame_to_csv_bytes, write_workbook

        if args.quarantine:
            if args.quarantine.lower().endswith(".csv"):
                Path(args.quarantine).write_bytes(frame_to_csv_bytes(quarantine))
            else:
                write_workbook({"quarantine": quarantine}, args.quarantine)
        else:
            for row in quarantine.itertuples(index=False):
                print(f"  quarantined: sheet '{row.sheet}', row {row.row}: {row.reason}", file=sys.stderr)
        del quarantine
    if args.edits or args.budget is not None:
        got = _whatif(args, frames, scenario)
        if got is None:
            return EXIT_INVALID
        result, scenario, extra = got
    else:
        result, extra = run(frames, scenario, engine=args.engine)[1], None    # the Base (it holds the account rows) is not kept
    del frames
    _release_unused_memory()     # the extract and the heavy stage's buffers: the outputs need neither
    if args.json:   # the canonical document (compact, keys sorted), streamed column by column
        from calc.output import write_document

        try:
            with open(args.json, "wb") as fh:
                write_document(result, fh, extra=extra)
        except BaseException:                 # never leave half a document behind
            if Path(args.json).is_file():
                Path(args.json).unlink()
            raise
    if args.xlsx:
        from data.export import report_workbook

        try:
            report_workbook(result, scenario, lang=args.lang, target=args.xlsx)
        except ValueError as e:   # e.g. more customers than an xlsx sheet holds
            print(f"xlsx report not written / 未写出 xlsx 报表: {e}", file=sys.stderr)
            return EXIT_INVALID
    if not args.json or args.verbose:
        print(_summary(result, lang=args.lang))
    return 0


def _whatif(args, frames, scenario):
    """DOMAIN 11.5: the coefficient edits of ``--edits`` and the budget scaling of ``--budget``
    (``--lock``); ``(result, scenario used, extra document keys)`` or None (the problem printed)."""
    from calc.heavy import build_base
    from calc.light import evaluate
    from calc.pipeline import require_valid
    from calc.whatif import scale_to_budget
    from data.report import ExtractError

    base = build_base(require_valid(frames), scenario, engine=args.engine)
    if args.edits:
        from data.edits import apply_edit_file

        if not Path(args.edits).is_file():
            print(f"edits file {args.edits} does not exist / 修改文件不存在", file=sys.stderr)
            return None
        try:
            base, parsed = apply_edit_file(base, args.edits)
        except ExtractError as e:
            print(f"{args.edits}: the edits were not applied / 修改未生效", file=sys.stderr)
            print(e.report.text(), file=sys.stderr)
            return None
        n = len(parsed.edits)
        print(f"{n} coefficient edit(s) applied / 已应用 {n} 条关联度系数修改", file=sys.stderr)
    result = evaluate(base, scenario)
    extra = None
    if args.budget is not None:
        try:
            b = scale_to_budget(result, scenario, args.budget, args.lock or ())
        except ValueError as e:
            print(f"budget error / 预算错误: {e}", file=sys.stderr)
            return None
        if not b.reached:
            why = {"locked_exceed": "the locked lines alone pay more than the budget / 锁定条线的工资已超过预算",
                   "nothing_to_scale": "no unlocked line pays anything / 未锁定条线没有工资可调整",
                   "factor_cap": "a pay-link factor would pass 1 / 挂钩系数将超过 1"}[b.reason]
            print(f"budget {args.budget:,.2f} cannot be met / 无法达到预算: {why}; nearest total / 最接近的合计 "
                  f"{b.total:,.2f} (k = {b.k:.6g})", file=sys.stderr)
            return None
        scenario = scenario.replace(pay_factor=b.pay_factor)
        result = evaluate(base, scenario)
        extra = {"scaled": {"k": b.k, "pay_factor": b.pay_factor}}
        print(f"pay-link factors scaled by k = {b.k:.6g} / 挂钩系数缩放 k = {b.k:.6g}: total pay {b.total:,.2f}",
              file=sys.stderr)
    return result, scenario, extra


def cmd_compare(args) -> int:
    """DOMAIN 11.5: chain substitution of every manager's pay between two extracts (or two
    scenarios on one), as ``{"managers": [...]}`` in unrounded yuan."""
    import json

    from calc.pipeline import run
    from calc.whatif import chain

    global _NOTHING_TO_CLOSE
    _NOTHING_TO_CLOSE = True
    states = []
    for which, path, scen in (("A", args.input_a, args.scenario_a), ("B", args.input_b, args.scenario_b)):
        try:
            scenario = _load_scenario(scen)
        except ValueError as e:
            print(f"scenario {which} error / 方案 {which} 错误: {e}", file=sys.stderr)
            return EXIT_INVALID
        got = _validated(path, False)
        if got is None:
            return EXIT_INVALID
        base, result = run(got[0], scenario)
        states.append((base, result, scenario))
    managers, lines = chain(*states)
    cols = ["manager_id", "pay_a", "pay_b", "contribution_effect", "attribution_effect", "factor_effect"]
    rows = [{k: (v if k == "manager_id" else float(v)) for k, v in zip(cols, r)}
            for r in managers[cols].itertuples(index=False)]
    text = json.dumps({"managers": rows}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    if not args.json or args.verbose:
        print(f"{'manager':<10} {'pay A':>12} {'contribution':>13} {'attribution':>12} {'factor':>10} {'pay B':>12}")
        for r in rows[:30]:
            print(f"{r['manager_id']:<10} {r['pay_a']:>12,.2f} {r['contribution_effect']:>13,.2f} "
                  f"{r['attribution_effect']:>12,.2f} {r['factor_effect']:>10,.2f} {r['pay_b']:>12,.2f}")
        if len(rows) > 30:
            print(f"... {len(rows) - 30} more managers (use --json for all)")
    return 0


def _release_unused_memory() -> None:
    """Give back to the system the memory of objects just freed, before the next stage allocates.

    Arrow's pool (mimalloc) and glibc's heap keep freed blocks for reuse, but the next stage
    allocates elsewhere (DuckDB and polars have their own allocators): at 5M accounts ~0.1 GB
    after reading and ~1.2 GB after the heavy stage would stay resident for nothing.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):   # not glibc (musl): nothing to trim
            pass


def cmd_load(args) -> int:
    """Store INPUT as the period's next dataset version (a byte-identical file is a no-op)."""
    from data.store import Store, sha256_path

    got = _validated(args.input, args.accept_valid_rows)
    if got is None:
        return EXIT_INVALID
    if isinstance(got, int):      # --accept-valid-rows refused for structural errors
        return got
    frames, quarantine = got
    try:
        store = Store.open()
        info = store.save_dataset(args.period, Path(args.input).name, sha256_path(args.input), frames, args.user,
                                  quarantine)
    except ValueError as e:
        print(f"load refused / 未能入库: {e}", file=sys.stderr)
        return EXIT_INVALID
    rows = ", ".join(f"{k} {v}" for k, v in info.row_counts.items() if v)
    if info.created:
        print(f"stored {info.label}: {rows}" + (f"; {info.rejected_rows} rejected rows quarantined"
                                                 if info.rejected_rows else ""))
    else:
        print(f"unchanged: the same file is already stored as {info.label}")
    return 0


def cmd_publish(args) -> int:
    """Freeze the period's results under a scenario (re-publishing needs --reason)."""
    from data.store import Store

    try:
        scenario = _load_scenario(args.scenario)
        store = Store.open()
        pub = store.publish(args.period, scenario, args.reason or "", args.user)
    except ValueError as e:
        print(f"publish refused / 未能发布: {e}", file=sys.stderr)
        return EXIT_INVALID
    if not pub.get("created", True):
        print(f"unchanged: {pub['period']} v{pub['version']} is already published from the same dataset with the same "
              f"parameters / 未变更：已以相同数据与参数发布为 v{pub['version']}")
        return 0
    print(f"published {pub['period']} v{pub['version']} (result sha256 {pub['result_hash'][:16]}…)")
    return 0


# How Store.verify found a publication: the line printed for it (English / Chinese).
_VERIFIED = {
    "hash": "reproduces exactly (same SHA-256) / 完全一致（哈希相同）",
    "numbers": ("reproduces number for number (every value equal as float64; only the text differs) / "
                "数值一致（每个数完全相等，仅文本格式不同）"),
    "rounding": ("reproduces to rounding (every amount within 1e-6 yuan; the calculation code changed since "
                 "publication and adds in another order) / 在舍入误差内一致（各金额差不超过 1e-6 元；发布后计算代码已更新）"),
    None: "DIFFERS from the frozen result / 与发布结果不一致",
}


def cmd_verify(args) -> int:
    """Recompute publications and compare each with its frozen result: every version of the period
    (newest first), or with ``--all`` every period's. Exit 1 when any one differs."""
    from data.store import Store

    store = Store.open()
    pubs = store.publications(None if args.all else args.period)
    if pubs.empty:
        where = "the store has no publication / 尚无任何发布" if args.all else \
            f"period {args.period} has no publication / 该期间尚未发布"
        print(where, file=sys.stderr)
        return EXIT_INVALID
    counts = dict.fromkeys(_VERIFIED, 0)
    inconsistent = 0
    checked: dict = {}                                # dataset id -> check_dataset, once per dataset
    statements_differ = 0
    rows_differ = 0
    for row in pubs.itertuples(index=False):          # newest first (period, then version)
        check = store.verify(int(row.id), checked)
        how = check["how"]
        counts[how] += 1
        code = (f"published with code {check['code_version'][:12]}, now {check['code_now'][:12]} / "
                f"发布时代码 {check['code_version'][:12]}，现为 {check['code_now'][:12]}")
        note = ""
        if check["code_changed"]:
            note = (f" (the calculation code changed since publication: {code})" if how != "rounding"
                    else f" ({code})")
        head = _VERIFIED[how]
        if how is not None and "differ" in (check["rows"], check["rows_hash"]):
            head = f"the document {head}, but its frozen rows DIFFER / 但冻结的结果行不一致"
        print(f"{row.period} v{row.version}: {head}{note}")
        for problem in check["problems"]:
            print(f"  {problem}")
        if check["rows"] == "differ" and how is not None:
            print("  frozen result rows DIFFER from the recomputed result / 冻结的结果行与重新计算结果不一致"
                  + ("" if check["code_changed"] else " (same code: the stored rows were changed / 代码未变：存储的行被改动)"))
            for problem in check["row_problems"]:
                print(f"  {problem}")
        if check["rows_hash"] == "differ":
            print("  frozen rows do not match the hash stored at publish / 冻结的行与发布时记录的哈希不符")
        elif check["rows_hash"] == "absent":
            print("  no stored row hash (published before row hashes were kept): rows checked against the recomputed "
                  "document / 无冻结行哈希（早于该功能发布）：已逐行对照重新计算的结果核对")
        if not check["document_intact"] and how is not None:
            print("  the stored document's text no longer has the hash recorded at publish; its numbers were compared "
                  "/ 发布文件文本与发布时记录的哈希不符，已逐数核对")
        if not check["same"] and how is not None:
            rows_differ += 1
        if check["statements"] == "differ":
            statements_differ += 1
            print(f"  frozen statements DIFFER from the recomputed ones / 冻结的工资单与重新计算结果不一致"
                  + ("" if check["code_changed"] else " (same code: the stored rows were changed / 代码未变：存储的行被改动)"))
            for problem in check["statement_problems"]:
                print(f"  {problem}")
        elif check["statements"] == "absent":
            print("  statements were not frozen (published before they were); a statement of it is recomputed / "
                  "该发布早于工资单冻结，工资单按需重新计算")
        for sheet in check["snapshot_fallback"]:
            print(f"  snapshot of {sheet} failed its check, read from its rows / {sheet} 快照校验失败，已改用明细行",
                  file=sys.stderr)
        if not check["dataset_consistent"]:
            inconsistent += 1
            for problem in check["dataset_problems"]:
                print(f"  dataset rows and snapshot disagree / 数据集明细与快照不一致: {problem}", file=sys.stderr)
    if len(pubs) > 1:
        print(f"{len(pubs)} publications checked / 已核验 {len(pubs)} 个发布: {counts['hash']} same hash / 哈希相同, "
              f"{counts['numbers']} same numbers / 数值一致, {counts['rounding']} to rounding / 舍入误差内一致, "
              f"{counts[None]} differ / 不一致")
    return EXIT_INVALID if counts[None] or inconsistent or statements_differ or rows_differ else 0


def cmd_statement(args) -> int:
    """One manager's published statement, as frozen at publish (a publication made before statements
    were frozen is recomputed, with a warning on stderr and in the JSON)."""
    import json

    from data.export import statement_document
    from data.store import Store

    store = Store.open()
    pubs = store.publications(args.period)
    if args.version is not None:
        pubs = pubs[pubs["version"] == args.version]
    if pubs.empty:
        which = f"{args.period} v{args.version}" if args.version is not None else args.period
        print(f"period {which} has no publication / 该期间尚未发布", file=sys.stderr)
        return EXIT_INVALID
    pub = pubs.iloc[0]                                  # newest version first
    try:
        chain = store.statement(int(pub["id"]), args.manager)
    except ValueError as e:
        print(f"no statement / 无工资单: {e}", file=sys.stderr)
        return EXIT_INVALID
    for warning in chain["warnings"]:
        print(f"warning / 注意: {warning}", file=sys.stderr)
    doc = statement_document(chain, str(pub["period"]))
    if args.json:
        text = json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    else:
        s = chain["summary"].iloc[0]
        print(f"{pub['period']} v{int(pub['version'])} {s['manager_id']} {s['name']} ({s['branch']}): "
              f"pay {float(s['pay']):,.2f}" + ("" if chain["frozen"] else " (recomputed / 重新计算)"))
        for line, v in doc["lines"].items():
            print(f"  {line:<13} contribution {v['contribution'] or 0:>16,.2f} x {v['factor'] or 0:<6g} = "
                  f"{v['pay'] or 0:>12,.2f}")
        print(f"  {len(doc['customers'])} customer(s) credited; --json writes them all")
    return 0


def cmd_seed(args) -> int:
    """Load the sample bank into the configured store, when it holds no dataset yet."""
    from data.db import database_url
    from data.seed import seed, shown_url
    from data.store import Store

    store = Store.open()
    where = shown_url(database_url())
    if seed(store, force=True):
        print(f"seeded the sample bank (2026Q2, 2026Q3 published) into {where}")
        return 0
    print(f"not seeded: {where} already holds a dataset / 未载入示例：该库已有数据", file=sys.stderr)
    return EXIT_INVALID


def cmd_user_add(args) -> int:
    """Add an account; the password is read from standard input (never from the command line)."""
    from data.auth import Users
    from data.store import Store

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        users = Users(Store.open())
        users.create(args.username, None if args.sso_only else password, args.role, actor=args.actor,
                     branch=args.branch, manager_id=args.manager_id, oidc_subject=args.oidc_subject)
    except ValueError as e:
        print(f"user not added / 未能添加用户: {e}", file=sys.stderr)
        return EXIT_INVALID
    print(f"added {args.username} ({args.role}{', ' + args.branch if args.branch else ''}"
          f"{', ' + args.manager_id if args.manager_id else ''})")
    return 0


def cmd_user_list(args) -> int:
    """List accounts (never their hashes)."""
    from pandas import isna as pd_isna

    from data.auth import Users
    from data.store import Store

    table = Users(Store.open()).list()
    if table.empty:
        print("no users yet / 尚无用户")
        return 0
    text = lambda v: v if isinstance(v, str) else ""  # noqa: E731 - missing values come back as NaN
    for r in table.itertuples(index=False):
        state = "active" if r.active else "inactive"
        lock = f", locked until {r.locked_until}" if not pd_isna(r.locked_until) else ""
        print(f"{r.username:<20} {r.role:<12} {text(r.branch):<12} {text(r.manager_id):<10} {state}{lock}")
    return 0


class _Roles:
    """The account roles (:data:`data.auth.ROLES`) as argparse choices, imported when argparse
    first reads them: data.auth brings SQLAlchemy (0.15-0.5 s), which ``evaluate`` never needs."""

    @staticmethod
    def _roles() -> tuple[str, ...]:
        from data.auth import ROLES

        return ROLES

    def __contains__(self, value) -> bool:
        return value in self._roles()

    def __iter__(self):
        return iter(self._roles())


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (sub-commands)."""
    parser = argparse.ArgumentParser(prog="cli.py", description="Jixiao client-manager performance (绩效) tools")
    parser.add_argument("--debug", action="store_true", help="show a traceback on an internal error")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="validate an extract and compute pay, scores, grades and ranks")
    ev.add_argument("input", help="workbook (.xlsx), folder of CSV files, or spark:DB (a warehouse database's tables)")
    ev.add_argument("--scenario", help="scenario TOML file (default: DOMAIN defaults)")
    ev.add_argument("--engine", choices=("duckdb", "polars", "spark"), default=None,
                    help="engine of the heavy stage (default: JIXIAO_ENGINE or secrets.toml's engine, else duckdb); "
                         "spark runs on JIXIAO_SPARK_MASTER (default local[2])")
    ev.add_argument("--json", help="write the result document (DOMAIN section 10) here")
    ev.add_argument("--xlsx", help="write the xlsx report (managers, customers, totals, scenario) here")
    ev.add_argument("--report", help="write the validation report as xlsx here (also when valid)")
    ev.add_argument("--accept-valid-rows", action="store_true",
                    help="compute on the valid rows; rejected rows (and rows that depend on them) are quarantined")
    ev.add_argument("--quarantine", help="with --accept-valid-rows: write the rejected rows here (.xlsx or .csv)")
    ev.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the xlsx report")
    ev.add_argument("--max-warnings", type=int, default=50, help="warnings printed at most (default 50)")
    ev.add_argument("-v", "--verbose", action="store_true", help="print the ranking summary even with --json")
    ev.add_argument("--edits", help="coefficient edits CSV (action, customer_id, manager_id, role, coefficient; "
                                    "DOMAIN 11.1) applied before computing")
    ev.add_argument("--budget", type=float, help="scale the unlocked pay-link factors so total pay meets this (yuan)")
    ev.add_argument("--lock", nargs="+", choices=("asset", "liability", "intermediate", "risk"), metavar="LINE",
                    help="with --budget: lines whose factor stays (asset, liability, intermediate, risk)")
    ev.set_defaults(func=cmd_evaluate)

    cp = sub.add_parser("compare", help="why pay changed between two extracts or scenarios (chain substitution)")
    cp.add_argument("input_a", help="state A: workbook or folder of CSV files")
    cp.add_argument("input_b", help="state B: workbook or folder of CSV files (may be the same as A)")
    cp.add_argument("--scenario-a", dest="scenario_a", help="scenario TOML of A (default: DOMAIN defaults)")
    cp.add_argument("--scenario-b", dest="scenario_b", help="scenario TOML of B (default: DOMAIN defaults)")
    cp.add_argument("--json", help="write {managers: [...]} here")
    cp.add_argument("-v", "--verbose", action="store_true", help="print the table even with --json")
    cp.set_defaults(func=cmd_compare)

    ld = sub.add_parser("load", help="store an extract as a period's new dataset version")
    ld.add_argument("input", help="workbook (.xlsx), folder of CSV files, or spark:DB (a warehouse database's tables)")
    ld.add_argument("--period", required=True, help="period label, e.g. 2026Q3 (also 2026M09, 2026H2, 2026Y)")
    ld.add_argument("--user", default="cli", help="recorded as the uploader (default: cli)")
    ld.add_argument("--accept-valid-rows", action="store_true", help="store the valid rows, quarantine the rest")
    ld.set_defaults(func=cmd_load)

    pb = sub.add_parser("publish", help="freeze a period's results (the official scenario)")
    pb.add_argument("--period", required=True)
    pb.add_argument("--scenario", help="scenario TOML (default: DOMAIN defaults)")
    pb.add_argument("--reason", help="why; required when the period was published before")
    pb.add_argument("--user", default="cli", help="recorded as the publisher (default: cli)")
    pb.set_defaults(func=cmd_publish)

    vf = sub.add_parser("verify", help="check that published results reproduce (every version of a period, or all)")
    which = vf.add_mutually_exclusive_group(required=True)
    which.add_argument("--period", help="check every publication of this period, newest first")
    which.add_argument("--all", action="store_true", help="check every publication of every period")
    vf.set_defaults(func=cmd_verify)

    sm = sub.add_parser("statement", help="one manager's published statement, as frozen at publish")
    sm.add_argument("--period", required=True)
    sm.add_argument("--manager", required=True, help="manager id")
    sm.add_argument("--version", type=int, help="publication version (default: the newest)")
    sm.add_argument("--json", help="write the statement here (JSON)")
    sm.set_defaults(func=cmd_statement)

    sd = sub.add_parser("seed", help="load the sample bank into the configured store (only when it is empty)")
    sd.set_defaults(func=cmd_seed)

    us = sub.add_parser("user", help="manage accounts").add_subparsers(dest="user_command", required=True)
    ua = us.add_parser("add", help="add an account (password from stdin)")
    ua.add_argument("username")
    ua.add_argument("--role", required=True, choices=_Roles(), metavar="ROLE", help="one of %(choices)s")
    ua.add_argument("--branch", help="required for branch_head")
    ua.add_argument("--manager-id", dest="manager_id", help="required for manager")
    ua.add_argument("--oidc-subject", dest="oidc_subject", help="single sign-on subject mapped to this account")
    ua.add_argument("--sso-only", action="store_true", help="no password: single sign-on only")
    ua.add_argument("--actor", default="cli", help="recorded in the audit log (default: cli)")
    ua.set_defaults(func=cmd_user_add)
    ul = us.add_parser("list", help="list accounts")
    ul.set_defaults(func=cmd_user_list)
    return parser


def _store_busy(e: BaseException) -> str | None:
    """The message for an error that means "another process holds the store" (a writer that waited
    too long, a database still locked), else None."""
    from data.db import StoreBusy

    if isinstance(e, StoreBusy):
        return str(e)
    text = str(getattr(e, "orig", e)).lower()
    if type(e).__name__ == "OperationalError" and ("database is locked" in text or "busy" in text):
        return ("another process is writing to the store; nothing was written, try again later / "
                "另一个进程正在写入数据库，未写入任何内容，请稍后重试")
    return None


def main(argv=None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from data.guards import check_xml_safety

        check_xml_safety()
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback for the user
        busy = _store_busy(e)
        if busy is not None and not args.debug:
            print(f"store busy / 数据库忙: {busy}", file=sys.stderr)
            return EXIT_USAGE
        if args.debug:
            raise
        print(f"internal error / 内部错误: {type(e).__name__}: {e} (run with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    code = main()
    if _NOTHING_TO_CLOSE:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):   # a closed pipe (| head): nothing more can be said
                pass
        os._exit(code)
    sys.exit(code)
