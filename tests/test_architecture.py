"""The design card's rules that code review alone would miss."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CALC = {"streamlit", "plotly", "sqlalchemy"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_calc_imports_no_ui_or_storage_library():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN_IN_CALC)
                 for p in (ROOT / "calc").rglob("*.py") if _imports(p) & FORBIDDEN_IN_CALC}
    assert not offenders, f"calc/ must stay pure pandas/numpy: {offenders}"


def test_the_purity_check_sees_an_offending_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom streamlit import session_state\n")
    assert _imports(bad) & FORBIDDEN_IN_CALC == {"streamlit"}


def test_calc_runs_with_ui_and_storage_libraries_unimportable():
    import subprocess
    import sys
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in {'streamlit', 'plotly', 'sqlalchemy'}:\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import calc.pipeline, calc.output, calc.scenario, calc.segments\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
