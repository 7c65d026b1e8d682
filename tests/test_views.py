"""Large tables: a page sends at most ROW_LIMIT rows, says how many there are, and offers them all."""

from streamlit.testing.v1 import AppTest


def _page(n_rows: int, limit: int):
    def script(n_rows, limit):
        import pandas as pd

        from ui import views

        frame = pd.DataFrame({"customer_id": [f"C{i:06d}" for i in range(n_rows)], "total": [float(i) for i in range(n_rows)]})
        views.show(frame, "zh", key="big", limit=limit)

    at = AppTest.from_function(script, kwargs={"n_rows": n_rows, "limit": limit}, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def test_a_table_over_the_limit_sends_the_first_rows_and_offers_all_of_them():
    at = _page(1_200, 1_000)
    shown = at.dataframe[0].value
    assert len(shown) == 1_000 and list(shown["客户号"].head(2)) == ["C000000", "C000001"]
    assert any("1,000" in c.value and "1,200" in c.value for c in at.caption)
    assert len(at.get("download_button")) == 1


def test_a_table_within_the_limit_is_shown_whole_without_a_note():
    at = _page(999, 1_000)
    assert len(at.dataframe[0].value) == 999
    assert not at.caption and not at.get("download_button")
