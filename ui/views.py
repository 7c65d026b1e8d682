"""Display helpers shared by pages: choose, label and format columns, page long tables. No calculation here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import streamlit as st

from calc.explain import reconciliation
from calc.light import GRADE_ORDER
from calc.segments import TIER_ORDER
from data.export import LABELS, labelled, number_kind, write_workbook
from ui import state
from ui.i18n import VALUE_WORDS, t

PAGE_ROWS = 50        # rows of a long table sent to the browser per page
SEARCH_COLUMNS = ("manager_id", "customer_id", "name", "branch", "username")


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~$:"})


def md_text(text) -> str:
    """User text (a scenario or file name, a cell value) made inert for Streamlit's markdown:
    every markdown character is escaped, so ``[x](http://...)`` shows as typed, never as a link."""
    return str(text).translate(_MD_SPECIAL)


def label_columns(frame: pd.DataFrame, lang: str, extra: dict | None = None) -> pd.DataFrame:
    """:func:`data.export.labelled`, plus ``extra`` columns labelled with UI strings (key -> string key)."""
    extra_names = {k: t(v, lang) for k, v in (extra or {}).items() if k in frame.columns}
    return labelled(frame.rename(columns=extra_names), lang)


def _label(column, lang: str, extra: dict | None) -> str:
    """The label of one column: ``extra``'s UI string, else :data:`data.export.LABELS`, else itself."""
    if extra and column in extra:
        return t(extra[column], lang)
    pair = LABELS.get(column)
    return column if pair is None else pair[0 if lang == "zh" else 1]


def _words(series: pd.Series, names: dict) -> pd.Series:
    """``series`` with each code replaced by its word in ``names`` (a code not in it stays)."""
    return pd.Series([names.get(x, x) for x in series.tolist()], index=series.index, dtype=object)


def words(names: dict):
    """A ``labels`` function for :func:`show`: codes to words by the dict ``names``."""
    return lambda series: _words(series, names)


def grade_label(series: pd.Series, lang: str) -> pd.Series:
    """``senior`` -> 资深客户经理 / Senior."""
    return _words(series, {g: t(f"grade_{g}", lang) for g in GRADE_ORDER})


def tier_label(series: pd.Series, lang: str) -> pd.Series:
    """``world_class`` -> the value tier's name in ``lang``."""
    return _words(series, {x: t(f"tier_{x}", lang) for x in TIER_ORDER})


def reconciles(ctx) -> bool:
    """True when accounts = customers = attributed + unattributed for the current what-if."""
    return reconciliation(state.base_for(ctx.dataset, ctx.scenario), ctx.result)["ok"]


def top_bottom(ctx, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the best and the worst ``n`` managers by rank (the worst last first);
    show them with ``show(..., order=..., columns=TOP_COLUMNS, labels=...)``."""
    m = ctx.result.managers
    order = np.lexsort((m["manager_id"].to_numpy(dtype=object).astype(str), m["rank"].to_numpy()))
    return order[:n], order[::-1][:n]


TOP_COLUMNS = ["rank", "manager_id", "name", "branch", "pay", "score", "grade"]


def branch_options(ctx) -> list[str]:
    """Branches in the current dataset, sorted."""
    return ctx.memo_on((), "branches", lambda: sorted(ctx.result.managers["branch"].dropna().unique().tolist()))


def value_word_of(sheet_key: str, lang: str) -> str:
    """A sheet's name (``managers`` -> 客户经理) for messages that count rows per sheet."""
    from data.schema import sheet_by_key

    try:
        sheet = sheet_by_key(sheet_key)
    except (KeyError, ValueError):
        return sheet_key
    return sheet.zh if lang == "zh" else sheet_key


def value_labels(labels: dict | None, lang: str) -> dict:
    """``labels`` plus, for every column of :data:`ui.i18n.VALUE_WORDS` it does not already cover,
    codes turned into words (a role ``primary`` shows as 主办, a KPI ``deposit_avg`` as 存款日均余额);
    a code without a word shows as itself, a missing value as empty."""
    out = dict(labels or {})
    for column, table in VALUE_WORDS.items():
        if column not in out:
            words = {code: pair[0 if lang == "zh" else 1] for code, pair in table.items()}
            out[column] = lambda s, words=words: s.map(
                lambda v: "" if v is None or (isinstance(v, float) and v != v) else words.get(str(v), v))
    return out


def with_labels(frame: pd.DataFrame, labels: dict | None) -> pd.DataFrame:
    """``frame`` with ``labels`` (column -> function of the column, e.g. codes to words) applied."""
    if not labels:
        return frame
    return frame.assign(**{c: f(frame[c]) for c, f in labels.items() if c in frame.columns})


_FORMATS = {"money": "localized", "fine": "%.4f", "percent": "%.2f%%", "integer": "%d"}


def _number_config(key, label: str) -> st.column_config.NumberColumn:
    """How a numeric column shows: money with separators (fen), rates as percentages, coefficients
    with 4 decimals, counts and ranks whole (:func:`data.export.number_kind`)."""
    return st.column_config.NumberColumn(label, format=_FORMATS[number_kind(str(key))])


def _round(a, key):
    """A float column as sent: rates x 100 (shown with %), 2 decimals; coefficients 4; money 2."""
    kind = number_kind(str(key))
    if kind == "percent":
        return pc.round(pc.multiply(a, 100.0), 2)
    return pc.round(a, 6 if kind == "fine" else 2)


def _display(frame: pd.DataFrame, lang: str, extra: dict | None, labels: dict | None = None):
    """The rows as sent and their column configuration: codes in words (``labels``), columns
    labelled, money rounded to fen, rates as percentages, coefficients with 4 decimals.

    An Arrow table built column by column (what ``st.dataframe`` sends anyway), so a page of rows
    costs a few calls per column, not a pandas pass per step; a frame Arrow cannot type (mixed
    objects) goes as a labelled pandas frame instead.
    """
    config = {}
    try:
        cols = {}
        for c in frame.columns:
            a = pa.array(labels[c](frame[c]) if labels and c in labels else frame[c], from_pandas=True)
            if pa.types.is_null(a.type):
                a = pa.array([""] * len(a), pa.string())
            elif pa.types.is_string(a.type) or pa.types.is_large_string(a.type):
                a = pc.fill_null(a, "")                  # a missing text shows empty, never "None" or "nan"
            label = _label(c, lang, extra)
            if pa.types.is_floating(a.type) or pa.types.is_integer(a.type):
                config[label] = _number_config(c, label)
                if pa.types.is_floating(a.type):
                    a = _round(a, c)
            cols[label] = a
        if len(cols) < len(frame.columns):           # two columns with one label: keep both, as pandas does
            raise ValueError("duplicate labels")
        return pa.table(cols), config
    except (pa.ArrowException, ValueError, TypeError):
        shown = label_columns(with_labels(frame, labels), lang, extra)
        floats = shown.select_dtypes("float").columns
        if len(floats):
            shown[floats] = shown[floats].round(2)
        return shown, {}


def side_by_side(n: int) -> list:
    """``n`` places in one row for one element each (metrics, two charts): a horizontal container
    is one element on a move's rerun, where ``st.columns(n)`` sends ``n + 1`` (each costs the
    server and the browser a little on every move)."""
    row = st.container(horizontal=True)
    return [row] * n


def _search(frame: pd.DataFrame, text: str, columns) -> np.ndarray:
    """Which rows of ``frame`` have ``text`` in one of ``columns`` (case-insensitive, literal)."""
    hit = np.zeros(len(frame), dtype=bool)
    for c in columns:
        hit |= frame[c].astype("str").str.contains(text, case=False, regex=False, na=False).to_numpy(dtype=bool)
    return hit


def _rows(frame: pd.DataFrame, positions, columns=None) -> pd.DataFrame:
    """The rows at ``positions`` (all when None) of ``columns`` (all when None), without copying the rest."""
    cols = slice(None) if columns is None else [frame.columns.get_loc(c) for c in columns]
    if positions is None:
        return frame if columns is None else frame.iloc[:, cols]
    return frame.iloc[positions, cols]


def show(frame: pd.DataFrame, lang: str, key: str | None = None, extra: dict | None = None,
         limit: int = PAGE_ROWS, search: tuple | None = None, download: bool = True, labels: dict | None = None,
         shape=None, order=None, columns=None, kept=None, **kwargs) -> None:
    """``st.dataframe`` with labelled columns and money rounded to fen (0.01 yuan), one page at a time.

    A table longer than ``limit`` rows sends one page of ``limit`` rows (a bank's 200k customers
    would be megabytes on every rerun): a search box (over the id and name columns, or
    ``search``), a page number, a caption with the rows shown and the total, and the whole table
    as an xlsx download (built only when clicked). A shorter table is shown whole, alone.

    What is done per row is done to the rows sent only (and to every row when the download is
    clicked), not to the whole table at every rerun: ``labels`` (column -> function) turn codes
    into words; ``shape`` (rows -> rows) builds the displayed columns from ``frame``'s; ``order``
    (row positions) gives the rows and their order, and ``columns`` the columns ``shape`` reads,
    without copying ``frame``.

    ``kept(name, compute)`` (e.g. a ``Ctx.memo_on`` of the levers the table moves with) keeps
    the rows built for display: a table that a move does not change is not rebuilt on every move.
    """
    shape = shape or (lambda rows: rows)
    labels = value_labels(labels, lang)
    order = None if order is None else np.asarray(order)
    total = len(frame) if order is None else len(order)

    def displayed(which: tuple, positions):
        build = lambda: _display(shape(_rows(frame, positions, columns)), lang, extra, labels)
        return build() if kept is None else kept(("display", key, lang, *which), build)

    if total <= limit:
        table, config = displayed(("all",), order)
        st.dataframe(table, hide_index=True, key=key, **{"column_config": config, **kwargs})
        return
    name = key or "table"
    searched_in = [c for c in (search or SEARCH_COLUMNS) if c in frame.columns]
    ss = st.session_state
    box = pager = st.container(horizontal=True, vertical_alignment="bottom", key=f"{name}_pager")   # one element
    found = order
    text = ""
    if searched_in:
        text = box.text_input(t("search", lang), key=f"{name}_search", placeholder=t("search_hint", lang),
                              width=360).strip()
        if text:
            hit = _search(frame, text, searched_in)
            found = np.flatnonzero(hit) if order is None else np.asarray(order)[hit[order]]
    n = total if found is None else len(found)
    pages = max(1, math.ceil(n / limit))
    page_key = f"{name}_page"
    searched = ss.setdefault("_searched", {})          # one session key for every table's last search
    if searched.get(name, "") != text:                  # a new search starts on its first page
        searched[name] = text
        ss[page_key] = 1
    elif ss.get(page_key, 1) > pages:                   # fewer rows than before (a filter)
        ss[page_key] = pages
    page = int(pager.number_input(t("page", lang, pages=f"{pages:,}"), min_value=1, max_value=pages, step=1,
                                  key=page_key, width=160))
    first = (page - 1) * limit
    window = slice(first, first + limit)
    positions = np.arange(n)[window] if found is None else found[window]
    table, config = displayed((text, first), positions)
    st.dataframe(table, hide_index=True, key=key, **{"column_config": config, **kwargs})
    fmt = dict(first=f"{first + 1 if len(positions) else 0:,}", last=f"{first + len(positions):,}", shown=f"{n:,}",
               total=f"{total:,}")
    st.caption(t("rows_found" if text else "rows_shown", lang, **fmt))
    if download:
        st.download_button(t("download_all_rows", lang, total=f"{total:,}"),
                           lambda: write_workbook({name[:31]: label_columns(
                               with_labels(shape(_rows(frame, order, columns)), labels), lang, extra)}),
                           f"{name}.xlsx", key=f"{name}_all_rows")


PICK_LIMIT = 300      # managers in one select box; a larger bank picks the branch first


def branch_box(ctx, key: str, label: str, manager: str | None, fallback: str) -> str:
    """A select box of the dataset's branches under ``key``; returns the branch chosen. Until one
    is, it shows ``manager``'s branch, or ``fallback`` when that manager is unknown."""
    branches = branch_options(ctx)
    ss = st.session_state
    if ss.get(key) not in branches:
        m = ctx.result.managers
        branch_of = ctx.memo_on((), "branch_of", lambda: dict(zip(m["manager_id"], m["branch"])))
        ss[key] = branch_of.get(manager, fallback)
    return st.selectbox(label, branches, key=key)


def pick_manager(ctx, key: str) -> str:
    """A select box of the what-if's managers (by rank); returns the chosen manager id.

    With more than PICK_LIMIT managers a branch select box comes first and the second lists
    that branch's managers, so a rerun does not send thousands of names.
    """
    m = ctx.result.managers
    ss = st.session_state
    branch = None
    if len(m) > PICK_LIMIT:
        branch = branch_box(ctx, f"{key}_branch", ctx.t("branch_filter"), ss.get(key),
                            m["branch"].iloc[int(m["rank"].to_numpy().argmin())])    # the best's branch

    def options():
        part = m if branch is None else m[m["branch"].to_numpy() == branch]
        ids, rank = part["manager_id"].to_numpy(dtype=object), part["rank"].to_numpy()
        order = np.lexsort((ids.astype(str), rank))
        labels = part["name"].to_numpy(dtype=object) + " · " + part["branch"].to_numpy(dtype=object)
        return dict(zip(ids[order], labels[order]))

    names = ctx.memo(("manager_names", branch), options)
    if branch is not None and ss.get(key) not in names:
        ss[key] = next(iter(names))
    return st.selectbox(ctx.t("choose_manager"), list(names), key=key, format_func=lambda i: f"{i} {names[i]}")
