"""Hostile uploads: a corpus of broken and malicious files, through ``cli.py evaluate`` and the Upload page.

The corpus is generated once per session (~1 s, ~15 MB on disk): an empty file, an executable
renamed ``.xlsx``, a truncated workbook, three zip bombs (3 GiB claimed, caught by the total
limit; 512 MiB at ~1000:1, caught by the per-part ratio; and one just under both limits, which
the reader must still handle under 1 GB), a billion-laughs ``sharedStrings.xml`` (plus a variant whose DOCTYPE sits after a long
comment), random bytes named ``.csv`` (with and without NUL bytes), and three inputs that must
be *accepted*: a GB18030 CSV folder and a UTF-8-with-BOM CSV folder with Chinese sheet names
and headers, and a workbook whose text cells look like formulas.

Each refused file, through ``cli.py evaluate``: exit code 1, a message naming the reason, no
traceback, under 10 s, peak resident memory under 1 GB, no output written; through ``cli.py
load``: nothing stored. On the Upload page (AppTest, logged in as the conftest admin): an
error, a report row, no exception, no accept button, the store and the active dataset
unchanged. Formula-looking text is exported inert (quoted, never a formula cell).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from streamlit.testing.v1 import AppTest

from data.guards import MAX_RATIO, MAX_UNCOMPRESSED_BYTES
from data.ingest import load_extract
from tests import apptest
from tests.apptest import table_with
from tests.test_ingest import BASE, write_book

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "sample_bank.xlsx"

GiB = 2**30
MiB = 2**20
CLI_SECONDS = 10                 # acceptance: refused in under 10 s each ...
CLI_PEAK_BYTES = 1 * GiB         # ... with peak memory under 1 GB
AS_SAFETY_NET = 4 * GiB          # see run_cli: keeps a real explosion from eating the machine

# The formula-looking text placed in text cells of the formula workbook (all stored as strings).
FORMULA_TEXT = {
    ("客户经理", 1, 1): '=HYPERLINK("http://evil","click")',    # manager 007 name
    ("客户经理", 2, 1): "+1+1",                                 # manager 008 name
    ("客户", 1, 1): "@SUM(A1)",                                 # customer 000123 name
    ("客户", 2, 1): "-2+3",                                     # customer 000124 name
    ("客户经理", 1, 2): "=cmd|' /C calc'!A0",                   # manager 007 branch (DDE)
}
DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n")


# ---------------------------------------------------------------------------------------------
# corpus builders

_CT = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
       '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
       '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
       '<Default Extension="xml" ContentType="application/xml"/>'
       '<Override PartName="/xl/workbook.xml" '
       'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
       '<Override PartName="/xl/worksheets/sheet1.xml" '
       'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
         'officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
             '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
             'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
             '<sheets><sheet name="客户经理" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WORKBOOK_RELS = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                  '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                  '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                  'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
_SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
_SHEET_TAIL = b"</sheetData></worksheet>"


def _deflate_part(data: bytes) -> tuple[bytes, int, int]:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(), zlib.crc32(data), len(data)


def _bomb_part(size: int, noise: int = 0) -> tuple[list[tuple[bytes, int]], int, int]:
    """A genuine deflate stream of ``size``-ish bytes of worksheet XML padded with spaces.

    Deflate reaches ~1000:1 on one repeated byte. After a full flush the compressor keeps no
    history, so the compressed form of one 16 MiB block of spaces is the same every time: it
    is computed once and repeated (the CRC is still computed over the real bytes, ~6 GB/s).
    That makes a 3 GiB part in well under a second, ~3 MB on disk, and it decompresses for real.
    ``noise`` random bytes (base64, so still XML text) at the head of each block lower the ratio.

    Returns ``([(bytes, repeat), ...], crc32, uncompressed size)``.
    """
    chunk = base64.b64encode(random.Random(noise).randbytes(noise)) + b" " * (16 * MiB)
    n = max(1, (size - len(_SHEET_HEAD) - len(_SHEET_TAIL)) // len(chunk))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(_SHEET_HEAD) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(_SHEET_TAIL) + c.flush()
    crc = zlib.crc32(_SHEET_HEAD)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(_SHEET_TAIL, crc)
    usize = len(_SHEET_HEAD) + n * len(chunk) + len(_SHEET_TAIL)
    assert usize < 2**32, "no zip64 in this hand-written zip"
    return [(head, 1), (block, n), (tail, 1)], crc, usize


def _write_zip(path: Path, parts: dict[str, tuple[list[tuple[bytes, int]], int, int]]) -> Path:
    """Write a deflated zip by hand (so a part's compressed bytes can be given pre-made)."""
    central = []
    with open(path, "wb") as fh:
        for name, (pieces, crc, usize) in parts.items():
            raw = name.encode("utf-8")
            csize = sum(len(b) * k for b, k in pieces)
            offset = fh.tell()
            fh.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0x800, 8, 0, 0x21, crc, csize, usize, len(raw), 0))
            fh.write(raw)
            for b, k in pieces:
                for _ in range(k):
                    fh.write(b)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0x800, 8, 0, 0x21, crc, csize, usize,
                                       len(raw), 0, 0, 0, 0, 0, offset) + raw)
        cd_offset = fh.tell()
        cd = b"".join(central)
        fh.write(cd)
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), len(cd), cd_offset, 0))
    return path


def _skeleton_xlsx(path: Path, sheet: tuple[list[tuple[bytes, int]], int, int]) -> Path:
    def small(text):
        b, crc, n = _deflate_part(text.encode("utf-8"))
        return [(b, 1)], crc, n

    return _write_zip(path, {"[Content_Types].xml": small(_CT), "_rels/.rels": small(_RELS),
                             "xl/workbook.xml": small(_WORKBOOK), "xl/_rels/workbook.xml.rels": small(_WORKBOOK_RELS),
                             "xl/worksheets/sheet1.xml": sheet})


def _xlsxwriter_book(path: Path, sheets: dict) -> Path:
    """BASE written with XlsxWriter, which (unlike openpyxl) stores text in xl/sharedStrings.xml."""
    wb = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if isinstance(v, str):
                    ws.write_string(r, c, v)
                elif v is not None:
                    ws.write_number(r, c, v)
    wb.close()
    return path


def _billion_laughs(src: Path, dst: Path, pad: int = 0) -> Path:
    """``src`` with a DOCTYPE of nested entities (lol1..lol9 = 10**9 'lol') in sharedStrings.xml.

    Manager 007's name becomes ``&lol9;`` so a parser that expands entities would build 3 GB.
    ``pad`` puts a comment of that many bytes before the DOCTYPE (legal XML: comments may come
    before the document type declaration).
    """
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)]
    doctype = "<!DOCTYPE sst [\n" + "\n".join(entities) + "\n]>\n"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/sharedStrings.xml":
                decl, rest = data.decode("utf-8").split("?>", 1)
                assert "<t>王芳</t>" in rest
                comment = f"<!--{'x' * pad}-->" if pad else ""
                data = (decl + "?>\n" + comment + doctype + rest.replace("<t>王芳</t>", "<t>&lol9;</t>")).encode()
            zout.writestr(info.filename, data)
    return dst


def _formula_book(path: Path) -> Path:
    """BASE with formula-looking text in text cells, stored as *string* cells (never formulas)."""
    sheets = copy.deepcopy(BASE)
    for (sheet, r, c), text in FORMULA_TEXT.items():
        sheets[sheet][r][c] = text
    wb = openpyxl.load_workbook(write_book(path, sheets))
    for (sheet, r, c), text in FORMULA_TEXT.items():
        cell = wb[sheet].cell(row=r + 1, column=c + 1)
        assert cell.value == text
        cell.data_type = "s"     # openpyxl made '=...' a formula on assignment; store it as text
    wb.save(path)
    return path


def _csv_folder(folder: Path, encoding: str) -> Path:
    folder.mkdir()
    for name, rows in BASE.items():
        text = "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows)
        (folder / f"{name}.csv").write_bytes(text.encode(encoding))
    return folder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every file of the corpus, by case name (built in ~1 s, ~15 MB on disk)."""
    d = tmp_path_factory.mktemp("hostile")
    c: dict[str, Path] = {}
    valid = write_book(d / "valid.xlsx", BASE)

    c["empty"] = d / "empty.xlsx"
    c["empty"].write_bytes(b"")

    with open(sys.executable, "rb") as fh:                     # an ELF binary renamed .xlsx
        (d / "evil.xlsx").write_bytes(fh.read(64 * 1024))
    c["executable"] = d / "evil.xlsx"

    data = valid.read_bytes()
    (d / "truncated.xlsx").write_bytes(data[: len(data) // 2])
    c["truncated"] = d / "truncated.xlsx"

    c["zip_bomb"] = _skeleton_xlsx(d / "bomb.xlsx", _bomb_part(3 * GiB))
    # below the total limit, so only the per-part expansion ratio can catch it
    c["zip_bomb_ratio"] = _skeleton_xlsx(d / "bomb_ratio.xlsx", _bomb_part(512 * MiB))
    # just under both guard limits (total and ratio): it reaches the reader, which must still stay under 1 GB
    c["zip_bomb_under_limits"] = _skeleton_xlsx(d / "bomb_under.xlsx",
                                                _bomb_part(MAX_UNCOMPRESSED_BYTES - 24 * MiB, noise=200 * 1024))

    shared = _xlsxwriter_book(d / "shared_strings.xlsx", BASE)
    c["billion_laughs"] = _billion_laughs(shared, d / "laughs.xlsx")
    c["billion_laughs_padded"] = _billion_laughs(shared, d / "laughs_padded.xlsx", pad=8192)

    rnd = random.Random(20260930)
    (d / "random").mkdir()
    (d / "random" / "data.csv").write_bytes(rnd.randbytes(64 * 1024))
    c["random_csv"] = d / "random" / "data.csv"
    (d / "random_text").mkdir()                                 # no NUL byte: must fail on decoding
    (d / "random_text" / "data.csv").write_bytes(bytes(rnd.randrange(1, 256) for _ in range(64 * 1024)))
    c["random_text_csv"] = d / "random_text" / "data.csv"

    c["gb18030_folder"] = _csv_folder(d / "csv_gb18030", "gb18030")
    c["utf8_bom_folder"] = _csv_folder(d / "csv_utf8_bom", "utf-8-sig")
    c["formula_workbook"] = _formula_book(d / "formulas.xlsx")
    c["_valid"] = valid
    c["_shared"] = shared
    return c


# case -> words every refusal message must contain (case-insensitive; English report text)
REFUSED = {
    "empty": ["cannot be read", "empty"],
    "executable": ["not a supported spreadsheet", "binary"],
    "truncated": ["cannot be read", "damaged"],
    "zip_bomb": ["unsafe", "uncompressed"],
    "zip_bomb_ratio": ["unsafe", "zip bomb"],
    "zip_bomb_under_limits": ["required sheet"],
    "billion_laughs": ["unsafe", "DOCTYPE"],
    "billion_laughs_padded": ["unsafe", "DOCTYPE"],
    "random_csv": ["not a supported spreadsheet", "binary"],
    "random_text_csv": ["neither UTF-8 nor GB18030"],
}
ACCEPTED = ["gb18030_folder", "utf8_bom_folder", "formula_workbook"]


def test_the_corpus_is_what_it_claims(corpus):
    assert corpus["empty"].stat().st_size == 0
    assert corpus["executable"].read_bytes()[:4] == b"\x7fELF"
    assert 0 < corpus["truncated"].stat().st_size == corpus["_valid"].stat().st_size // 2
    for case, claimed in (("zip_bomb", 3 * GiB), ("zip_bomb_ratio", 512 * MiB)):
        size = corpus[case].stat().st_size
        with zipfile.ZipFile(corpus[case]) as zf:
            assert "[Content_Types].xml" in zf.namelist()
            info = zf.getinfo("xl/worksheets/sheet1.xml")
            assert info.file_size >= claimed - 16 * MiB and size < 4 * MiB
            assert info.file_size / info.compress_size > 5 * MAX_RATIO
            with zf.open(info) as part:                       # it really inflates (first 32 MiB)
                head = part.read(32 * MiB)
            assert head.startswith(_SHEET_HEAD) and head.count(b" ") > 32 * MiB - 200
    with zipfile.ZipFile(corpus["zip_bomb"]) as zf:
        assert sum(i.file_size for i in zf.infolist()) > 2 * MAX_UNCOMPRESSED_BYTES
    with zipfile.ZipFile(corpus["zip_bomb_ratio"]) as zf:
        assert sum(i.file_size for i in zf.infolist()) < MAX_UNCOMPRESSED_BYTES
    with zipfile.ZipFile(corpus["zip_bomb_under_limits"]) as zf:          # slips under both guard limits
        info = zf.getinfo("xl/worksheets/sheet1.xml")
        assert MAX_UNCOMPRESSED_BYTES - 48 * MiB < sum(i.file_size for i in zf.infolist()) < MAX_UNCOMPRESSED_BYTES
        assert MAX_RATIO / 2 < info.file_size / info.compress_size < MAX_RATIO
        with zf.open(info) as part:
            assert part.read(64 * MiB).startswith(_SHEET_HEAD)
    # the same skeleton with a small sheet opens as a workbook: the bombs look like real xlsx
    small, crc, size = _deflate_part(_SHEET_HEAD + b'<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c></row>'
                                     + _SHEET_TAIL)
    tiny = _skeleton_xlsx(corpus["zip_bomb"].parent / "tiny.xlsx", ([(small, 1)], crc, size))
    from python_calamine import CalamineWorkbook
    assert CalamineWorkbook.from_path(str(tiny)).get_sheet_by_name("客户经理").to_python() == [["x"]]
    # billion laughs: the control without the DOCTYPE is valid; the hostile part declares lol1..lol9
    extract, report = load_extract(corpus["_shared"])
    assert report.ok and list(extract["managers"]["manager_id"]) == ["007", "008"]
    for case in ("billion_laughs", "billion_laughs_padded"):
        with zipfile.ZipFile(corpus[case]) as zf:
            xml = zf.read("xl/sharedStrings.xml")
        assert b"<!DOCTYPE sst [" in xml and b'<!ENTITY lol9 "&lol8;' in xml and b"<t>&lol9;</t>" in xml
    assert corpus["billion_laughs_padded"].read_bytes() != corpus["billion_laughs"].read_bytes()
    assert b"\x00" in corpus["random_csv"].read_bytes()[:4096]
    assert b"\x00" not in corpus["random_text_csv"].read_bytes()
    for f in corpus["gb18030_folder"].iterdir():
        with pytest.raises(UnicodeDecodeError):
            f.read_bytes().decode("utf-8")                     # really GB18030, not ASCII
    assert all(f.read_bytes().startswith(b"\xef\xbb\xbf") for f in corpus["utf8_bom_folder"].iterdir())
    wb = openpyxl.load_workbook(corpus["formula_workbook"])
    for (sheet, r, c), text in FORMULA_TEXT.items():
        cell = wb[sheet].cell(row=r + 1, column=c + 1)
        assert (cell.value, cell.data_type) == (text, "s")


# ---------------------------------------------------------------------------------------------
# cli.py evaluate

# Runs in a fresh interpreter: starts the CLI as its only child, waits for it with wait4 and
# writes the child's wall time and ru_maxrss (KiB on Linux) to the file named by argv[1].
_MEASURE = """\
import os, resource, subprocess, sys, time
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))    # inherited by the CLI
start = time.perf_counter()
child = subprocess.Popen(sys.argv[3:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
child.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{wall} {usage.ru_maxrss}")
sys.exit(code if code >= 0 else 128 - code)
"""


def run_cli(*args, timeout: float = 60) -> tuple[int, str, str, float, int]:
    """Run ``cli.py ARGS``; return (exit code, stdout, stderr, wall seconds, peak RSS bytes).

    How memory is measured, and why this way: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in
    pytest is the maximum over *every* child pytest ever reaped, so it cannot isolate one run;
    and even ``os.wait4`` on a child forked directly from pytest is wrong, because Linux
    carries the forking process's resident set (pytest + AppTest, ~260 MB) into the child's
    ``ru_maxrss`` until it execs. So each case runs a fresh ``python -c`` wrapper (~10 MB)
    whose only child is the CLI; the wrapper reaps it with ``os.wait4`` and reports that
    child's own peak RSS and wall time. The wrapper also sets ``RLIMIT_AS`` (inherited by the
    CLI) to 4 GiB, only as a safety net so a real explosion fails loudly instead of eating the
    machine: it cannot be the 1 GB check itself, because address space is not memory, and a
    healthy numpy/pandas CLI already reserves ~1.4 GB of it (thread stacks, malloc arenas,
    mapped libraries) while its resident set stays under 200 MB. The assertion is on RSS.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats"
        cmd = [sys.executable, "-c", _MEASURE, str(stats), str(AS_SAFETY_NET),
               sys.executable, str(ROOT / "cli.py"), *map(str, args)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)          # the wrapper leads its own session: kill it and the CLI
            proc.communicate()
            pytest.fail(f"cli.py {' '.join(map(str, args))} still running after {timeout} s")
        wall, maxrss = stats.read_text().split()
    peak = int(maxrss) * (1 if sys.platform == "darwin" else 1024)     # Linux reports KiB
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), float(wall), peak


@pytest.mark.parametrize("case", list(REFUSED))
def test_cli_refuses_hostile_file_quickly_in_bounded_memory(case, corpus, tmp_path):
    out = tmp_path / "out.json"
    xlsx = tmp_path / "out.xlsx"
    code, stdout, stderr, wall, peak = run_cli("evaluate", corpus[case], "--json", out, "--xlsx", xlsx)
    print(f"\n[{case}] exit {code}, {wall:.2f} s, peak RSS {peak / MiB:.0f} MiB")
    low = stderr.lower()
    problems = [
        *(["a traceback"] if "Traceback" in stdout + stderr else []),
        *([f"exit code {code}, not 1"] if code != 1 else []),
        *(["no 'the extract is invalid' line"] if "the extract is invalid" not in stderr else []),
        *(["an internal error"] if "内部错误" in stderr or "internal error" in low else []),
        *[f"no {w!r} in the message" for w in REFUSED[case] if w.lower() not in low],
        *([f"{wall:.1f} s, not under {CLI_SECONDS} s"] if wall >= CLI_SECONDS else []),
        *([f"peak RSS {peak / MiB:.0f} MiB, not under {CLI_PEAK_BYTES / MiB:.0f} MiB"] if peak >= CLI_PEAK_BYTES else []),
        *(["an output file was written"] if out.exists() or xlsx.exists() else []),
    ]
    assert not problems, f"{case}: {'; '.join(problems)}\n{stderr}"


@pytest.mark.parametrize("case", ["gb18030_folder", "utf8_bom_folder"])
def test_cli_accepts_csv_folders_in_both_encodings(case, corpus, tmp_path):
    out = tmp_path / "out.json"
    code, stdout, stderr, wall, peak = run_cli("evaluate", corpus[case], "--json", out)
    print(f"\n[{case}] exit {code}, {wall:.2f} s, peak RSS {peak / MiB:.0f} MiB")
    assert "Traceback" not in stdout + stderr
    assert code == 0, stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(c["customer_id"] for c in doc["customers"]) == ["000123", "000124"]
    assert {m["manager_id"]: m["name"] for m in doc["managers"]} == {"007": "王芳", "008": "李强"}
    assert {m["branch"] for m in doc["managers"]} == {"城东支行", "城西支行"}     # Chinese decoded, not mojibake


def _formula_cells(path: Path) -> list[str]:
    """Every formula cell in a workbook, by openpyxl and by the raw sheet XML (<f> elements)."""
    found = []
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            found += [f"{ws.title}!{c.coordinate}" for c in row if c.data_type == "f"]
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.startswith("xl/worksheets/") and re.search(rb"<f[ >]", zf.read(name)):
                found.append(f"{name} has <f>")
    return found


def _strings(path: Path) -> list[str]:
    wb = openpyxl.load_workbook(path)
    return [c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]


def test_cli_accepts_formula_text_and_exports_it_inert(corpus, tmp_path):
    out, xlsx, report = tmp_path / "out.json", tmp_path / "report.xlsx", tmp_path / "validation.xlsx"
    code, stdout, stderr, _, _ = run_cli("evaluate", corpus["formula_workbook"], "--json", out, "--xlsx", xlsx,
                                         "--report", report)
    assert "Traceback" not in stdout + stderr
    assert code == 0, stderr
    assert "starts like a formula" in stderr                       # warned, not refused
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert {m["manager_id"]: m["name"] for m in doc["managers"]} == {
        "007": FORMULA_TEXT[("客户经理", 1, 1)], "008": FORMULA_TEXT[("客户经理", 2, 1)]}
    for path in (xlsx, report):
        assert not _formula_cells(path), path.name
        strings = _strings(path)
        live = [s for s in strings if s.startswith(DANGEROUS)]
        assert not live, f"{path.name}: text a spreadsheet would evaluate: {live}"
    exported = set(_strings(xlsx))
    for text in FORMULA_TEXT.values():
        assert "'" + text in exported, f"{text!r} not exported as '{text}"
    # the validation report quotes the user's text too (its value column holds the cell text)
    assert any(s.startswith("'=HYPERLINK") for s in _strings(report))


# ---------------------------------------------------------------------------------------------
# the Upload page

UPLOAD_PERIOD = "2019Q4"      # accepted test uploads go to an old period: the newest stays the sample bank


def app(page: str = "app.py", lang: str = "en", role: str = "admin") -> AppTest:
    """An AppTest of ``page`` logged in as the conftest test user of ``role`` (only admins may upload)."""
    return apptest.app(page, lang, role)


def ranking_ids(at: AppTest) -> list[str]:
    return sorted(apptest.ranking_ids(at))


def upload_payload(path: Path) -> list[tuple[str, bytes, str]]:
    """A file, or every CSV file of a folder at once, as the browser would upload them."""
    if path.is_dir():
        return [(f.name, f.read_bytes(), "text/csv") for f in sorted(path.iterdir())]
    mime = "text/csv" if path.suffix == ".csv" else "application/octet-stream"
    return [(path.name, path.read_bytes(), mime)]


def stored(store) -> list[tuple]:
    """What the store holds: every dataset version."""
    return [(d.id, d.period, d.version, d.sha256) for d in store.datasets()]


@pytest.fixture(scope="module")
def sample(seeded_store) -> tuple[int, list[str]]:
    """The stored sample bank (2026Q3): its dataset id and its 40 manager ids."""
    extract, _ = load_extract(SAMPLE)
    ids = sorted(extract["managers"]["manager_id"])
    assert len(ids) == 40
    (info,) = [d for d in seeded_store.datasets("2026Q3") if d.file_name == "sample_bank.xlsx"]
    return info.id, ids


def _on_sample(sample) -> AppTest:
    """A logged-in session working on the sample bank, on the rankings page."""
    at = app("app.py").run()
    at.selectbox(key="dataset_pick").set_value(sample[0]).run()
    at.switch_page("pages/rankings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert ranking_ids(at) == sample[1]
    return at


def _upload(at: AppTest, path: Path) -> AppTest:
    at.switch_page("pages/upload.py").run()
    at.file_uploader(key="extract_upload").set_value(upload_payload(path)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _accept(at: AppTest) -> AppTest:
    if "upload_period" in [w.key for w in at.text_input]:
        at.text_input(key="upload_period").set_value(UPLOAD_PERIOD).run()
    at.button(key="accept_dataset").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _assert_refused_on_page(at: AppTest, case: str) -> None:
    assert at.error, f"{case}: no error shown"
    assert not at.success, [s.value for s in at.success]
    assert "accept_dataset" not in [b.key for b in at.button], "a refused file offers no accept button"
    report = table_with(at, "severity", "message_en")
    errors = report[report["severity"] == "error"]
    assert len(errors) >= 1, f"{case}: no report row"
    text = " ".join(errors["message_en"]).lower()
    missing = [w for w in REFUSED[case] if w.lower() not in text]
    assert not missing, f"{case}: report lacks {missing}: {text}"


@pytest.mark.parametrize("case", list(REFUSED))
def test_upload_page_refuses_hostile_file_and_keeps_the_dataset(case, corpus, sample, seeded_store):
    at = _on_sample(sample)
    before = stored(seeded_store)
    start = time.perf_counter()
    _upload(at, corpus[case])
    took = time.perf_counter() - start
    print(f"\n[{case}] upload page {took:.2f} s")
    assert took < CLI_SECONDS
    _assert_refused_on_page(at, case)
    assert stored(seeded_store) == before, "the store is unchanged"
    at.switch_page("pages/rankings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert ranking_ids(at) == sample[1], "the sample bank is still the active dataset"


@pytest.mark.parametrize("case", ACCEPTED)
def test_upload_page_accepts_valid_encodings_and_formula_text(case, corpus, seeded_store):
    at = _upload(app("app.py").run(), corpus[case])
    assert at.success and not at.error, ([e.value for e in at.error], [e.value for e in at.success])
    before = stored(seeded_store)
    _accept(at)
    added = [d for d in stored(seeded_store) if d not in before]
    assert len(added) == 1 and added[0][1] == UPLOAD_PERIOD, added
    at.switch_page("pages/rankings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert ranking_ids(at) == ["007", "008"]
    if case == "formula_workbook":
        names = set(table_with(at, "Manager ID", "Name")["Name"])
        assert names == {FORMULA_TEXT[("客户经理", 1, 1)], FORMULA_TEXT[("客户经理", 2, 1)]}


def test_refused_uploads_leave_an_accepted_dataset_in_place(corpus, seeded_store):
    """Accept BASE, then send every hostile file in turn: the store and the rankings stay on BASE.

    One file per kind of defence (reader, zip guard, XML guard, CSV decoding) keeps this quick;
    every case is checked on its own above. The store is compared after each upload, the
    rankings once at the end (a refused upload that switched the dataset could not be undone
    by a later refused one).
    """
    at = _accept(_upload(app("app.py").run(), corpus["_valid"]))
    at.switch_page("pages/rankings.py").run()
    assert ranking_ids(at) == ["007", "008"]
    before = stored(seeded_store)
    for case in ("empty", "truncated", "zip_bomb", "billion_laughs", "random_text_csv"):
        _upload(at, corpus[case])
        _assert_refused_on_page(at, case)
        assert stored(seeded_store) == before, f"store changed by {case}"
    at.switch_page("pages/rankings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert ranking_ids(at) == ["007", "008"]


@pytest.mark.parametrize("case", [c for c in REFUSED if c != "zip_bomb_under_limits"])
def test_cli_load_refuses_hostile_file_and_leaves_the_store_unchanged(case, corpus, seeded_store, capsys):
    """``cli.py load`` (the headless way into the store): exit 1, a message, nothing stored.

    Run in-process (``cli.main``) to keep this fast: the subprocess behaviour, timing and
    memory of the same reading path are checked with ``evaluate`` above. The under-limits
    bomb is left out because in-process it would take a GB of this test process.
    """
    import cli

    before = stored(seeded_store)
    code = cli.main(["load", str(corpus[case]), "--period", UPLOAD_PERIOD, "--user", "hostile-test"])
    out, err = capsys.readouterr()
    assert code == 1, (code, out, err)
    assert "Traceback" not in out + err
    assert "the extract is invalid" in err
    missing = [w for w in REFUSED[case] if w.lower() not in err.lower()]
    assert not missing, f"message lacks {missing}: {err}"
    assert stored(seeded_store) == before
