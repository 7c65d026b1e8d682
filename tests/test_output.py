"""The DOMAIN 10 document and the spreadsheets are written column by column: same content as the
row-by-row writers they replace, canonical text for publications, inert formula-looking text."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from calc.output import (document_bytes, document_parts, document_sha256, document_text, float_text, to_json_dict,
                         write_document)
from calc.pipeline import run
from calc.scenario import PAY_LINES, Scenario
from data.export import frame_to_csv_bytes, report_workbook, safe_text, write_workbook
from data.schema import FORMULA_PREFIXES

ROOT = Path(__file__).resolve().parent.parent


# --- the row-by-row document this module replaced, kept as the reference (small data only) ---

def _ref_num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _ref_contribution(row) -> dict:
    out = {line: _ref_num(row[line]) for line in PAY_LINES}
    out["total"] = _ref_num(row["total"])
    return out


def reference_json_dict(result) -> dict:
    m = result.managers.sort_values(["rank", "manager_id"], kind="stable")
    managers = [
        {
            "manager_id": r["manager_id"], "name": r["name"], "branch": r["branch"],
            "contribution": _ref_contribution(r),
            "deposit_avg": _ref_num(r["deposit_avg"]), "deposit_increase": _ref_num(r["deposit_increase"]),
            "loan_avg": _ref_num(r["loan_avg"]),
            "pay": _ref_num(r["pay"]), "points_pay": _ref_num(r["points_pay"]), "score": _ref_num(r["score"]),
            "grade": r["grade"], "rank": int(r["rank"]), "branch_rank": int(r["branch_rank"]),
        }
        for _, r in m.iterrows()
    ]
    customers = [
        {
            "customer_id": r["customer_id"], "contribution": _ref_contribution(r),
            "unattributed": _ref_num(r["unattributed"]), "tier": r["tier"],
            "relationship_level": int(r["relationship_level"]),
        }
        for _, r in result.customers.iterrows()
    ]
    t = result.totals
    totals = {k: _ref_num(t[k]) for k in ("contribution", "attributed", "unattributed", "pay", "points_pay")}
    return {"managers": managers, "customers": customers, "totals": totals}


def reference_text(result) -> str:
    """The canonical form publications froze before: json.dumps of the reference document."""
    return json.dumps(reference_json_dict(result), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --- data ---

@pytest.fixture(scope="module")
def sample_result():
    from data.ingest import load_extract

    extract, _ = load_extract(ROOT / "data" / "sample" / "sample_bank.xlsx")
    return run(extract.frames, Scenario())[1]


@pytest.fixture(scope="module")
def random_result(tmp_path_factory):
    """A small generated bank (another seed and shape than the sample), with hostile text and
    awkward floats written into the result the document is built from."""
    from data.ingest import parse_book
    from data.readers import read_input
    from data.sample.generate import _localised, generate
    from data.schema import sheet_by_key

    folder = tmp_path_factory.mktemp("rnd")
    for key, frame in generate(77, 3, 9, 150, 420, 5).items():   # one CSV per sheet, as a bank sends them
        _localised(key, frame, "zh").to_csv(folder / f"{sheet_by_key(key).zh}.csv", index=False)
    extract, report = parse_book(read_input(folder))
    assert report.ok, report.issues[:3]
    result = run(extract.frames, Scenario(stock_factor=0.7))[1]
    m, c = result.managers.copy(), result.customers.copy()
    hostile = ['he said "hi"', "back\\slash", "tab\there", "line\nbreak", "nul\x00x", "\x1fctl", "=1+2",
               "中文 名字", "emoji 😀", "\u2028sep", "\x7fdel"]
    m["name"] = [hostile[i % len(hostile)] for i in range(len(m))]
    m.loc[m.index[0], "score"] = np.nan
    m.loc[m.index[1], "pay"] = np.inf
    m.loc[m.index[2], "deposit_avg"] = -np.inf
    m.loc[m.index[3], "loan_avg"] = 1e-7
    m.loc[m.index[4], "loan_avg"] = 2.5e20
    m.loc[m.index[5], "loan_avg"] = -0.0
    m.loc[m.index[6], "loan_avg"] = 1234567890123456.7
    c.loc[c.index[0], "asset"] = 3e-5
    c.loc[c.index[1], "asset"] = 0.1 + 0.2
    c["customer_id"] = c["customer_id"].astype(object)
    c.loc[c.index[2], "customer_id"] = 'q"uote'
    totals = dict(result.totals, pay=float("nan"))
    return result.replace(managers=m, customers=c, totals=totals)


# --- the document ---

@pytest.mark.parametrize("which", ["sample_result", "random_result"])
def test_document_equals_the_row_by_row_document_exactly(which, request):
    result = request.getfixturevalue(which)
    doc = json.loads(document_text(result))
    assert doc == reference_json_dict(result)          # float equality, not approximate


@pytest.mark.parametrize("which", ["sample_result", "random_result"])
def test_document_text_is_byte_for_byte_the_frozen_canonical_form(which, request):
    """Publications frozen with json.dumps(sort_keys, compact) keep verifying."""
    result = request.getfixturevalue(which)
    assert document_text(result) == reference_text(result)
    assert document_bytes(result) == reference_text(result).encode("utf-8")


def test_document_order_and_types(sample_result):
    doc = json.loads(document_text(sample_result))
    ranks = [(m["rank"], m["manager_id"]) for m in doc["managers"]]
    assert ranks == sorted(ranks)
    assert [c["customer_id"] for c in doc["customers"]] == list(sample_result.customers["customer_id"])
    assert all(type(m["rank"]) is int and type(m["branch_rank"]) is int for m in doc["managers"])
    assert all(type(c["relationship_level"]) is int for c in doc["customers"])
    assert list(doc) == ["customers", "managers", "totals"]


def test_non_finite_amounts_are_null(random_result):
    doc = json.loads(document_text(random_result))
    assert doc["totals"]["pay"] is None
    assert "NaN" not in document_text(random_result) and "Infinity" not in document_text(random_result)


def test_float_text_round_trips_like_repr():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1e6, 5000), rng.normal(0, 1, 5000) * 10.0 ** rng.integers(-300, 300, 5000),
                        [0.0, -0.0, 1.0, 1e16, 1e-4, 1e-5, 9999999999999998.0, 5e-324, 2.0 ** 53, np.nan, np.inf]])
    got = float_text(x).to_list()
    assert got[:-2] == [repr(v) for v in x[:-2].tolist()]
    assert got[-2:] == [None, None]


def test_missing_column_is_a_clear_error(sample_result):
    broken = sample_result.replace(customers=sample_result.customers.drop(columns=["tier"]))
    with pytest.raises(ValueError, match="tier"):
        document_text(broken)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 10**6])
def test_streamed_document_is_the_same_bytes_in_bounded_pieces(random_result, chunk_rows):
    """A file written piece by piece (bounded memory at bank scale) is the canonical text, and the
    hash taken while writing is the hash of that text."""
    whole = reference_text(random_result).encode("utf-8")
    parts = list(document_parts(random_result, chunk_rows))
    assert b"".join(parts) == whole
    rows = len(random_result.customers) + len(random_result.managers)
    assert len(parts) >= min(rows, 2 * (rows // chunk_rows))        # really in pieces when asked
    sink = io.BytesIO()
    size, digest = write_document(random_result, sink, chunk_rows)
    assert sink.getvalue() == whole and size == len(whole)
    assert digest == hashlib.sha256(whole).hexdigest() == document_sha256(random_result)


def test_streamed_document_of_an_empty_result(sample_result):
    empty = sample_result.replace(customers=sample_result.customers.iloc[:0],
                                managers=sample_result.managers.iloc[:0])
    sink = io.BytesIO()
    write_document(empty, sink)
    doc = json.loads(sink.getvalue())
    assert doc["customers"] == [] and doc["managers"] == [] and doc["totals"] == to_json_dict(sample_result)["totals"]


def test_a_bad_result_writes_nothing(sample_result):
    """Every check runs before the first byte: a refused result never leaves half a file."""
    c = sample_result.customers.copy()
    c["relationship_level"] = c["relationship_level"].astype(float)
    c.loc[c.index[-1], "relationship_level"] = np.nan               # in the last piece
    for broken in (sample_result.replace(customers=c),
                   sample_result.replace(customers=sample_result.customers.drop(columns=["tier"]))):
        sink = io.BytesIO()
        with pytest.raises(ValueError, match="relationship_level|tier"):
            write_document(broken, sink, chunk_rows=10)
        assert sink.getvalue() == b""
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk_rows"):
            document_parts(sample_result, bad)


# --- spreadsheets ---

def _cells(data: bytes) -> dict[str, list[list]]:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return {ws.title: [[c for c in row] for row in ws.iter_rows()] for ws in wb.worksheets}


def test_workbook_types_formats_and_inert_text():
    frame = pd.DataFrame({
        "text": pd.Series(["plain", "=SUM(A1)", "+1", "-2", "@x", "\tt", "a & <b>", None, "_x0041_", "c\x01d"],
                          dtype="str"),
        "money": [1.5, -2.25, np.nan, np.inf, 0.1 + 0.2, 1e20, 3, 4, 5, 6],
        "count": pd.array([1, 2, None, 4, 5, 6, 7, 8, 9, 10], dtype="Int64"),
        "flag": [True, False] * 5,
        "day": pd.to_datetime(["2026-09-30"] * 9 + [None]),
        "mixed": ["3.45%", 0.0345, None, "=x", 7, True, dt.date(2026, 1, 2), "y", 1.0, "z"],
    })
    data = write_workbook({"表一": frame, "empty": pd.DataFrame()})
    assert data == write_workbook({"表一": frame, "empty": pd.DataFrame()})     # deterministic bytes
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["表一", "empty"]
    ws = wb["表一"]
    assert [c.value for c in ws[1]] == ["text", "money", "count", "flag", "day", "mixed"]
    assert ws["A1"].font.b and ws.freeze_panes == "A2"
    col = lambda letter: [ws[f"{letter}{r}"].value for r in range(2, 12)]  # noqa: E731
    assert col("A")[:8] == ["plain", "'=SUM(A1)", "'+1", "'-2", "'@x", "'\tt", "a & <b>", None]
    # Excel's _xHHHH_ escapes (a control character; a literal "_x0041_"): decoded as Excel and the
    # ingest reader do (openpyxl leaves inline strings undecoded)
    import python_calamine

    back = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
    assert [r[0] for r in back[9:11]] == ["_x0041_", "c\x01d"]
    assert col("B") == [1.5, -2.25, None, None, 0.1 + 0.2, 1e20, 3, 4, 5, 6]
    assert ws["B2"].number_format == "#,##0.00" and ws["B2"].data_type == "n"
    assert col("C") == [1, 2, None, 4, 5, 6, 7, 8, 9, 10]
    assert col("D") == [True, False] * 5
    assert col("E")[:9] == [dt.datetime(2026, 9, 30)] * 9 and col("E")[9] is None
    assert ws["E2"].number_format == "yyyy-mm-dd"
    assert col("F") == ["3.45%", 0.0345, None, "'=x", 7, True, dt.datetime(2026, 1, 2), "y", 1, "z"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert not [c.value for c in cells if isinstance(c.value, str) and c.value.startswith(FORMULA_PREFIXES)]


def test_workbook_reads_back_with_the_ingest_readers(tmp_path):
    import fastexcel

    frame = pd.DataFrame({"id": pd.Series(["007", "008"], dtype="str"), "v": [1.25, 2.5]})
    path = tmp_path / "x.xlsx"
    write_workbook({"s": frame}, path)
    back = fastexcel.read_excel(path.read_bytes()).load_sheet(0, dtypes={"id": "string"}).to_pandas()
    assert list(back["id"]) == ["007", "008"] and list(back["v"]) == [1.25, 2.5]


def test_bad_sheet_name_is_refused():
    with pytest.raises(ValueError, match="sheet name"):
        write_workbook({"a/b": pd.DataFrame({"x": [1]})})


def test_report_workbook_matches_the_result(sample_result):
    wb = openpyxl.load_workbook(io.BytesIO(report_workbook(sample_result, Scenario())))
    assert wb.sheetnames == ["客户经理", "客户", "合计", "方案"]
    rows = list(wb["客户"].iter_rows(values_only=True))
    assert rows[0][:3] == ("客户号", "姓名", "所属机构")
    c = sample_result.customers
    assert [r[0] for r in rows[1:]] == [safe_text(v) for v in c["customer_id"]]
    assert [r[9] for r in rows[1:]] == c["total"].tolist()           # unrounded, exactly
    m = list(wb["客户经理"].iter_rows(values_only=True))
    assert [r[0] for r in m[1:]] == sorted(sample_result.managers["rank"].tolist())


def test_csv_quotes_formula_text_only():
    frame = pd.DataFrame({"s": pd.Series(["=1", "ok", None], dtype="str"), "o": ["-x", 3, None], "n": [1.0, -2.0, 3.0]})
    text = frame_to_csv_bytes(frame).decode("utf-8-sig")
    back = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert list(back["s"]) == ["'=1", "ok", ""]
    assert list(back["o"]) == ["'-x", "3", ""]
    assert list(back["n"]) == [1.0, -2.0, 3.0]


def test_a_sheet_longer_than_excel_allows_is_refused():
    with pytest.raises(ValueError, match="at most 1,048,575"):
        write_workbook({"big": pd.DataFrame({"x": np.zeros(1_048_576)})})


def _reference_csv(frame: pd.DataFrame) -> bytes:
    """The cell-by-cell CSV writer frame_to_csv_bytes replaced (pandas to_csv after a per-cell quote)."""
    safe = frame.copy()
    for col in safe.columns:
        if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
            safe[col] = safe[col].map(lambda v: safe_text(v) if isinstance(v, str) else v)
    safe.columns = [safe_text(str(c)) for c in safe.columns]
    return safe.to_csv(index=False).encode("utf-8-sig")


def test_csv_is_what_pandas_wrote_cell_by_cell():
    frame = pd.DataFrame({
        "s": pd.Series(["=1", "ok, fine", None, 'q"uote', "a\nb"], dtype="str"),
        "o": ["-x", 3, None, 2.5, True], "n": [1.0, -2.0, np.nan, 1e-7, 1e20],
        "b": [True, False, True, True, False], "i": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        "d": pd.to_datetime(["2026-01-02", None, "2026-03-04", "2026-03-05", "2026-03-06"]),
        "t": pd.to_datetime(["2026-01-02 10:00", None, "2026-03-04 00:00", "2026-03-05 00:00", "2026-03-06 00:00"]),
        "inf": [np.inf, -np.inf, 0.0, -0.0, 3.0], "cat": pd.Categorical(["a", "=b", None, "a", "c"]),
        "=h": ["+x", "y", "z", "@w", "\tv"],
    })
    for f in (frame, frame.iloc[:0], pd.DataFrame()):
        assert frame_to_csv_bytes(f) == _reference_csv(f)
