"""Issue 13: every page in Chinese, for every role, shows no English code word.

Walks each page with AppTest (logged in as each role, on the seeded sample bank) and reads what
a user reads: titles, text, captions, messages, widget labels and options, table headers and text
cells (as the column configuration shows them: labels, and option labels of select columns), chart
titles, axis titles, legend names and category labels. A code word is a snake_case word or one of
the codes the calculation uses (primary, derived, ratio, None ...). Names a user typed or a file
carries (user names, file names, ids) are data, not code words, and are not read.
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import pytest

from tests.apptest import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app.py"] + sorted(p.replace(str(ROOT) + "/", "") for p in glob.glob(str(ROOT / "pages" / "*.py")))
CODES = ("None|nan|NaN|True|False|primary|secondary|support|derived|given|normal|senior|advanced|assistant|unrated|"
         "asset|liability|intermediate|risk|ratio|inverse|deduction|financial|customer|internal|learning|small|error|"
         "warning|factor|points|period|rank|pay|score|code|weight|kind|cap|perspective|driver|cause|both|coefficients|"
         "corporate|retail|targets|mean|login|upload|publish|system")
CODE_WORD = re.compile(rf"\b(?:[a-z]+_[a-z_0-9]+|{CODES})\b")
DATA = re.compile(r"\S+\.(?:xlsx|csv|toml)\b|\]\([^)]*\)|\b(?:bh|rm|mgr)_[a-z0-9_]+\b|\b[A-Za-z]+\d+\b")


@pytest.fixture(autouse=True)
def _store(seeded_store):
    """The seeded store, its audit log holding every kind of event and refusal reason a bank sees
    (whatever other tests ran before), so the Users page shows each of them."""
    from data.terms import VALUE_WORDS

    if not getattr(seeded_store, "_every_audit_kind", False):
        for action in VALUE_WORDS["action"]:
            seeded_store.audit("mgr1", action, "user mgr1")
        for reason in VALUE_WORDS["reason"]:
            seeded_store.audit("mgr1", "login_failed", "user mgr1", after={"reason": reason})
        seeded_store._every_audit_kind = True
    return seeded_store


def _table_texts(el) -> list[tuple[str, str]]:
    """Headers and text cells of a dataframe or data editor, as its column configuration shows them."""
    out = []
    value = el.value
    try:
        config = json.loads(el.proto.columns or "{}")
    except (AttributeError, ValueError):
        config = {}
    for c in value.columns:
        conf = config.get(f"col:name:{c}", config.get(c, {})) or {}
        out.append(("table.header", str(conf.get("label") or c)))
        if value[c].dtype == object or str(value[c].dtype).startswith(("str", "string")):
            options = {o.get("value"): o.get("label") for o in (conf.get("type_config", {}) or {}).get("options", [])
                       if isinstance(o, dict)}
            for x in value[c].head(30):
                out.append(("table.cell", str(options.get(x, x))))
        elif value[c].head(30).isna().any():         # the browser writes a blank number as "None"
            out.append(("table.cell", "None"))
    return out


def _chart_texts(el) -> list[tuple[str, str]]:
    spec = json.loads(el.proto.spec)
    lay = spec.get("layout", {})
    out = []
    title = lay.get("title", {})
    out.append(("chart.title", str(title.get("text", "") if isinstance(title, dict) else title)))
    for axis in ("xaxis", "yaxis", "yaxis2"):
        text = (lay.get(axis, {}).get("title") or {})
        if isinstance(text, dict) and text.get("text"):
            out.append(("chart.axis", text["text"]))
    for tr in spec.get("data", []):
        if tr.get("name"):
            out.append(("chart.legend", str(tr["name"])))
        for k in ("x", "theta"):
            vals = tr.get(k)
            if isinstance(vals, list) and vals and isinstance(vals[0], str):
                out += [("chart.category", x) for x in vals[:40] if x is not None]     # None: a gap, not drawn
    return out


def texts(at) -> list[tuple[str, str]]:
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        out += [(kind, str(e.value)) for e in getattr(at, kind)]
    for kind in ("button", "checkbox", "toggle", "text_input", "number_input", "slider", "selectbox", "radio",
                 "multiselect", "tabs", "expander", "metric"):
        for e in getattr(at, kind):
            if getattr(e, "label", None):
                out.append((f"{kind}.label", str(e.label)))
            if kind in ("selectbox", "radio", "multiselect"):
                out += [(f"{kind}.option", str(o)) for o in list(e.options or [])[:60]]
    for el in at.dataframe:
        out += _table_texts(el)
    for el in at.get("plotly_chart"):
        out += _chart_texts(el)
    return out


def english_code_words(at) -> list[tuple[str, str]]:
    return sorted({(kind, text[:160]) for kind, text in texts(at) if CODE_WORD.search(DATA.sub(" ", text))})


@pytest.mark.parametrize("role", ["admin", "analyst", "branch_head", "manager"])
@pytest.mark.parametrize("page", PAGES)
def test_no_english_code_word_on_a_chinese_page(page, role):
    at = app(page, "zh", role=role).run()
    assert not at.exception, [e.value for e in at.exception]
    assert english_code_words(at) == []


def test_the_scanner_finds_a_code_word():
    """The scan itself can fail: a raw role code in a table is found."""
    import pandas as pd
    import streamlit as st  # noqa: F401
    from streamlit.testing.v1 import AppTest

    def page():
        import pandas as pd
        import streamlit as st

        st.dataframe(pd.DataFrame({"角色": ["primary"], "客户号": ["000123"]}))

    at = AppTest.from_function(page).run()
    assert english_code_words(at) == [("table.cell", "primary")]
    del pd


def test_the_scanner_finds_a_blank_number():
    """A blank number shows as "None" in the browser's table: the scan counts it as a code word."""
    from streamlit.testing.v1 import AppTest

    def page():
        import pandas as pd
        import streamlit as st

        st.dataframe(pd.DataFrame({"步骤": ["上期工资", "贡献变动"], "影响（元）": [None, 12.5]}))

    at = AppTest.from_function(page).run()
    assert english_code_words(at) == [("table.cell", "None")]
