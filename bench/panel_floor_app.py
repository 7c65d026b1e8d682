"""The floor of Jixiao's what-if panel pattern (bench.whatif): the same eight slider-and-box
pairs in the sidebar, each its own fragment, whose ``on_change`` reruns the page's what-if
fragment and the moved pair by key (``ui.frame._moved``), with one line of text as the page.

What this app takes per move is what the pattern costs before any page content: the
interaction's run that calls the callback, then the keyed fragment run.
"""

import streamlit as st

KEYS = ("x", "liability", "intermediate", "risk", "primary", "secondary", "support", "stock")


def _moved(key: str) -> None:
    st.rerun(["page", f"pair_{key}"])


def _pair(key: str):
    def pair() -> None:
        st.slider(key, 0.0, 0.5, 0.1, step=0.005, key=key, on_change=_moved, args=(key,))
        st.number_input(key, 0.0, 0.5, 0.1, step=0.001, key=f"{key}_box", label_visibility="collapsed")

    pair.__qualname__ = f"pair_{key}"
    return st.fragment(pair, key=f"pair_{key}")


PAIRS = {key: _pair(key) for key in KEYS}
with st.sidebar:
    for key in KEYS:
        PAIRS[key]()
st.title("Panel floor")


@st.fragment(key="page")
def page() -> None:
    st.markdown(f"x = {st.session_state['x']:.3f}")


page()
