"""The floor a live page is measured against (bench.whatif): a title and one slider."""

import streamlit as st

st.title("One slider")
st.slider("x", 0.0, 0.5, 0.1, step=0.005, key="x")
