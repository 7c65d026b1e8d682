"""Why pay changed (连环替代法, DOMAIN 11.2): one renderer for the what-if (baseline -> what-if on the
Manager page) and for two published periods (a statement's comparison with an earlier period)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import views

__all__ = ["show_chain"]


def show_chain(ctx, steps: pd.DataFrame, per_line: pd.DataFrame, key: str, labels: tuple[str, str]) -> None:
    """Draw one manager's chain: the walk from pay A to pay B through the three effects, and the
    arithmetic per line.

    Parameters
    ----------
    ctx
        The page context (language, strings).
    steps, per_line : DataFrame
        One row of :func:`calc.whatif.chain` (or ``chain_states``) and that manager's line rows.
    key : str
        Prefix of the tables' widget keys.
    labels : tuple of str
        The i18n keys naming state A and state B (e.g. ``why_pay_a``, ``why_pay_b``).
    """
    if steps.empty:
        st.info(ctx.t("why_same"))
        return
    w = steps.iloc[0]
    if abs(float(w["change"])) < 0.005:
        st.info(ctx.t("why_same"))
        return
    walk = pd.DataFrame({
        "step": [ctx.t(k) for k in (labels[0], "why_contribution", "why_attribution", "why_factor", labels[1])],
        "pay": [w["pay_a"], w["step1"], w["step2"], w["pay_b"], w["pay_b"]],
        # the starting row changes nothing yet: 0, not a blank (a table shows a blank number as "None")
        "effect": [0.0, w["contribution_effect"], w["attribution_effect"], w["factor_effect"], w["change"]]})
    views.show(walk, ctx.lang, key=f"{key}_steps", extra={"step": "why_step", "pay": "why_pay", "effect": "why_effect"})
    views.show(per_line.drop(columns=["manager_id"]), ctx.lang, key=f"{key}_lines",
               extra={"ca_Ca": "why_ca_Ca", "ca_Cb": "why_ca_Cb", "cb_Cb": "why_cb_Cb", "f_a": "why_f_a",
                      "f_b": "why_f_b", "contribution_effect": "why_line_contribution",
                      "attribution_effect": "why_line_attribution", "factor_effect": "why_line_factor"})
    if bool(w["floored"]):
        st.caption(ctx.t("why_floored"))
