"""AppTest helpers shared by the page tests: a page logged in as a test user, and its tables."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


class Page(AppTest):
    """An AppTest that shows the whole page after a lever move, as a browser does.

    A lever move reruns only the page's what-if fragment (:func:`ui.frame.whatif`), and AppTest's
    element tree then holds that fragment's elements alone, where a browser keeps the rest of
    the page from the last full run. So after a fragment-only run (the frame's language switch,
    drawn first on every full run, before the login gate, is missing) the page is run once more
    without any change, which draws the same page in full; ``fragment_tree`` keeps what the
    fragment run sent.
    """

    fragment_tree = None

    def _run(self, widget_state=None, timeout=None) -> AppTest:
        out = super()._run(widget_state, timeout)
        if not self.exception and not any(r.key == "lang" for r in self.radio):
            self.fragment_tree = self._tree
            out = super()._run(None, timeout)
        else:
            self.fragment_tree = None
        return out


def app(page: str = "app.py", lang: str = "zh", role: str | None = "admin", **state) -> AppTest:
    """An AppTest of ``page``, logged in as the conftest test user of ``role`` (None: not logged
    in), with ``state`` put into its session state. Not run yet."""
    from conftest import TEST_USERS
    from data.auth import Principal

    at = Page(str(ROOT / page), default_timeout=60)
    at.session_state["lang"] = lang
    if role is not None:
        name, _, branch, manager_id = TEST_USERS[role]
        at.session_state["_who"] = Principal(name, role, branch, manager_id)
        at.session_state["_last_seen"] = time.time()
    for key, value in state.items():
        at.session_state[key] = value
    return at


def table_with(at: AppTest, *columns: str):
    """The first dataframe on the page that has all ``columns`` (AppTest keeps no dataframe keys)."""
    for d in at.dataframe:
        value = d.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}: {[list(d.value.columns) for d in at.dataframe]}")


def ranking_ids(at: AppTest) -> list[str]:
    """Manager ids of the ranking table on the rankings page (the table with a branch-rank
    column; the summary of moves above it has none), in its order."""
    for d in at.dataframe:
        df = d.value
        for rank, col in (("机构内排名", "客户经理编号"), ("Branch rank", "Manager ID")):
            if rank in df.columns and col in df.columns:
                return list(df[col])
    raise AssertionError(f"no ranking table: {[list(d.value.columns) for d in at.dataframe]}")
