"""Display helpers shared by pages: choose, label and format columns. No calculation here."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from calc.explain import compare, reconciliation
from data.export import labelled, write_workbook
from ui import state
from ui.i18n import t

ROW_LIMIT = 5_000     # rows of a table sent to the browser


def label_columns(frame: pd.DataFrame, lang: str, extra: dict | None = None) -> pd.DataFrame:
    """:func:`data.export.labelled`, plus ``extra`` columns labelled with UI strings (key -> string key)."""
    extra_names = {k: t(v, lang) for k, v in (extra or {}).items() if k in frame.columns}
    return labelled(frame.rename(columns=extra_names), lang)


def grade_label(series: pd.Series, lang: str) -> pd.Series:
    """``senior`` -> 资深客户经理 / Senior."""
    return series.map(lambda g: t(f"grade_{g}", lang))


def tier_label(series: pd.Series, lang: str) -> pd.Series:
    """``world_class`` -> the value tier's name in ``lang``."""
    return series.map(lambda x: t(f"tier_{x}", lang))


def reconciles(ctx) -> bool:
    """True when accounts = customers = attributed + unattributed for the current what-if."""
    return reconciliation(state.base_for(ctx.dataset, ctx.scenario), ctx.result)["ok"]


def top_bottom(ctx, n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best and worst ``n`` managers by rank (grades in the page's language)."""
    m = ctx.result.managers.sort_values(["rank", "manager_id"])
    cols = ["rank", "manager_id", "name", "branch", "pay", "score", "grade"]
    shown = m[cols].assign(grade=grade_label(m["grade"], ctx.lang))
    return shown.head(n), shown.tail(n).iloc[::-1]


def movement(ctx) -> pd.DataFrame:
    """Baseline against what-if, per manager (see :func:`calc.explain.compare`)."""
    return compare(ctx.baseline_result, ctx.result, ctx.baseline, ctx.scenario)


def branch_options(ctx) -> list[str]:
    """Branches in the current dataset, sorted."""
    return sorted(ctx.result.managers["branch"].dropna().unique().tolist())


def show(frame: pd.DataFrame, lang: str, key: str | None = None, extra: dict | None = None,
         limit: int = ROW_LIMIT, **kwargs) -> None:
    """``st.dataframe`` with labelled columns and money rounded to fen (0.01 yuan).

    At most ``limit`` rows are sent to the browser (a bank's 200k customers would be megabytes on
    every rerun); a caption says how many rows there are, and the downloads carry all of them.
    """
    total = len(frame)
    shown = label_columns(frame.head(limit), lang, extra)
    floats = shown.select_dtypes("float").columns
    shown[floats] = shown[floats].round(2)
    st.dataframe(shown, hide_index=True, key=key, **kwargs)
    if total > limit:
        st.caption(t("rows_shown", lang, shown=f"{limit:,}", total=f"{total:,}"))
        name = key or "table"
        st.download_button(t("download_all_rows", lang, total=f"{total:,}"),
                           lambda: write_workbook({name[:31]: label_columns(frame, lang, extra)}), f"{name}.xlsx",
                           key=f"{name}_all_rows")


def pick_manager(ctx, key: str) -> str:
    """A select box of the what-if's managers (by rank); returns the chosen manager id."""
    m = ctx.result.managers.sort_values(["rank", "manager_id"])
    names = dict(zip(m["manager_id"], m["name"] + " · " + m["branch"]))
    return st.selectbox(ctx.t("choose_manager"), list(names), key=key, format_func=lambda i: f"{i} {names[i]}")
