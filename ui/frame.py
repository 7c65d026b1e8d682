"""The shared frame every page calls first: page config, language, navigation, what-if panel.

Streamlit runs a ``pages/`` file alone when its URL is opened directly, so nothing here may
rely on ``app.py`` having run. Widget values are mirrored into plain session keys
(``_keep_<key>``) because Streamlit drops a widget's state when the user switches to a page
that has not rendered it yet; the mirror restores it, so the panel stays where it was left.
"""

from __future__ import annotations

import math

import time
from dataclasses import dataclass

import streamlit as st

from calc.light import Result
from calc.scenario import Scenario
from data.access import Access
from data.auth import Principal
from ui import state
from ui.auth import login_gate, logout_button
from ui.i18n import t

PAGES = (
    ("app.py", "page_overview", ":material/dashboard:"),
    ("pages/rankings.py", "page_rankings", ":material/leaderboard:"),
    ("pages/customers.py", "page_customers", ":material/groups:"),
    ("pages/scorecard.py", "page_scorecard", ":material/radar:"),
    ("pages/manager.py", "page_manager", ":material/person:"),
    ("pages/history.py", "page_history", ":material/timeline:"),
    ("pages/scenarios.py", "page_scenarios", ":material/tune:"),
    ("pages/upload.py", "page_upload", ":material/upload_file:"),
    ("pages/admin.py", "page_admin", ":material/admin_panel_settings:"),
)

# widget key -> (min, max, step); the default comes from the baseline scenario
SLIDERS = {
    "pay_factor_asset": (0.0, 0.5, 0.005),
    "pay_factor_liability": (0.0, 0.5, 0.005),
    "pay_factor_intermediate": (0.0, 0.5, 0.005),
    "pay_factor_risk": (0.0, 0.5, 0.005),
    "role_weight_primary": (0.0, 1.0, 0.05),
    "role_weight_secondary": (0.0, 1.0, 0.05),
    "role_weight_support": (0.0, 1.0, 0.05),
    "stock_factor": (0.0, 1.0, 0.05),
}
WHATIF_KEYS = (*SLIDERS, "pool", "pay_method")
LANG_KEY = "lang"


@dataclass
class Ctx:
    """What a page needs: who is asking, language, dataset, scenarios and their results.

    ``live`` is True for roles that use the what-if (admin, analyst): ``result`` is then the
    what-if's light stage. For branch heads and managers ``live`` is False, ``result`` is
    None, and pages read published results through ``access`` only.
    """

    lang: str
    who: Principal
    access: Access
    dataset: state.Dataset | None
    baseline: Scenario | None
    scenario: Scenario | None
    result: Result | None
    baseline_result: Result | None

    @property
    def live(self) -> bool:
        """True when this page computes the what-if for the user."""
        return self.result is not None

    @property
    def user(self) -> str:
        """The user name, for the audit log."""
        return self.who.username

    def t(self, key: str, **fmt) -> str:
        """A UI string in the chosen language."""
        return t(key, self.lang, **fmt)


def _baseline_values(s: Scenario) -> dict:
    out = {f"pay_factor_{k}": float(v) for k, v in s.pay_factor.items()}
    out.update({f"role_weight_{k}": float(v) for k, v in s.role_weight.items()})
    out.update(stock_factor=float(s.stock_factor), pool=float(s.pool), pay_method=s.pay_method)
    return out


def _keep(key: str) -> None:
    st.session_state[f"_keep_{key}"] = st.session_state[key]


def _restore(key: str, default) -> None:
    """Give a widget its kept value before it is drawn (first value: ``default``).

    The mirror ``_keep_<key>`` is the truth: ``on_change`` callbacks (run before the script)
    update it, and it is written back into the widget's key on every run, so a page switch,
    which gives the widget a new identity, cannot reset it.
    """
    mirror = f"_keep_{key}"
    if mirror not in st.session_state:
        st.session_state[mirror] = st.session_state.get(key, default)
    st.session_state[key] = st.session_state[mirror]


def _coerce_param(key: str, raw: str, default):
    try:
        if key == "pay_method":
            return raw if raw in ("factor", "points") else default
        value = float(raw)
        if not math.isfinite(value):                 # ?pool=nan or ?pay_factor_asset=inf: ignored
            return default
        if key in SLIDERS:
            lo, hi, _ = SLIDERS[key]
            return min(max(value, lo), hi)
        return max(value, 0.0)
    except (TypeError, ValueError):
        return default


def _from_query_params(defaults: dict) -> None:
    """On a session's first run, start the panel from the link's query parameters."""
    if st.session_state.get("_qp_read"):
        return
    st.session_state["_qp_read"] = True
    qp = st.query_params
    for key in WHATIF_KEYS:
        if key in qp:
            st.session_state[f"_keep_{key}"] = _coerce_param(key, qp[key], defaults.get(key))


def _to_query_params(values: dict, defaults: dict, lang: str) -> None:
    wanted = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in values.items() if v != defaults.get(k)}
    if lang != "zh":
        wanted[LANG_KEY] = lang
    current = {k: st.query_params[k] for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


KPI_STATE = ("_kpi_table", "_kpi_editor_base", "kpi_editor", "_kpi_preset_applied", "kpi_preset")


def clear_whatif() -> None:
    """Forget the what-if (sliders and edited KPI table): the panel starts again from the baseline."""
    for key in WHATIF_KEYS:
        st.session_state.pop(key, None)
        st.session_state.pop(f"_keep_{key}", None)
    for key in KPI_STATE:
        st.session_state.pop(key, None)


def language_switch() -> str:
    """The 中文 / English switch; returns ``zh`` or ``en``."""
    _restore(LANG_KEY, "zh")
    st.sidebar.radio("语言 / Language", ("zh", "en"), key=LANG_KEY, horizontal=True,
                     format_func=lambda v: "中文" if v == "zh" else "English", on_change=_keep, args=(LANG_KEY,))
    return st.session_state[LANG_KEY]


def navigation(lang: str, access: Access) -> None:
    """Links to the pages this role may open, in the chosen language (automatic navigation is off)."""
    from streamlit.errors import StreamlitAPIException

    with st.sidebar:
        for path, key, icon in PAGES:
            if not access.may_open(key):
                continue
            try:
                st.page_link(path, label=t(key, lang), icon=icon)
            except StreamlitAPIException:  # a page file run as its own entrypoint (tests): plain link
                url = "/" if path == "app.py" else "/" + path.split("/")[-1].removesuffix(".py")
                st.markdown(f"[{t(key, lang)}]({url})")


def _pick_dataset() -> None:
    state.set_active_dataset(st.session_state["dataset_pick"])
    clear_whatif()


def dataset_picker(dataset: state.Dataset, lang: str) -> None:
    """Choose the period and dataset version to work on (newest first)."""
    infos = state.datasets()
    ids = [i.id for i in infos]
    labels = {i.id: i.label for i in infos}
    if dataset.db_id in ids:
        st.session_state["dataset_pick"] = dataset.db_id
    st.sidebar.selectbox(t("dataset", lang), ids, key="dataset_pick", format_func=lambda i: labels.get(i, str(i)),
                         on_change=_pick_dataset)


def whatif_panel(baseline: Scenario, lang: str) -> Scenario:
    """Sliders for the light-stage parameters; returns the what-if scenario they define."""
    defaults = _baseline_values(baseline)
    for key in WHATIF_KEYS:
        _restore(key, defaults[key])
    side = st.sidebar
    side.subheader(t("whatif", lang))
    side.caption(f"{t('baseline', lang)}: {baseline.name}")
    side.markdown(f"**{t('pay_factors', lang)}**")
    for line in ("asset", "liability", "intermediate", "risk"):
        key = f"pay_factor_{line}"
        lo, hi, step = SLIDERS[key]
        side.slider(t(key, lang), lo, hi, step=step, key=key, format="%.3f", on_change=_keep, args=(key,))
    side.markdown(f"**{t('role_weights', lang)}**")
    for role in ("primary", "secondary", "support"):
        key = f"role_weight_{role}"
        lo, hi, step = SLIDERS[key]
        side.slider(t(key, lang), lo, hi, step=step, key=key, format="%.2f", on_change=_keep, args=(key,))
    lo, hi, step = SLIDERS["stock_factor"]
    side.slider(t("stock_factor", lang), lo, hi, step=step, key="stock_factor", format="%.2f", on_change=_keep,
                args=("stock_factor",))
    side.number_input(t("pool", lang), min_value=0.0, step=10_000.0, key="pool", format="%.0f", on_change=_keep,
                      args=("pool",))
    side.radio(t("pay_method", lang), ("factor", "points"), key="pay_method", horizontal=True,
               format_func=lambda v: t(f"pay_method_{v}", lang), on_change=_keep, args=("pay_method",))
    side.button(t("reset", lang), key="whatif_reset", on_click=clear_whatif)

    values = {k: st.session_state[k] for k in WHATIF_KEYS}
    changed = sum(1 for k in WHATIF_KEYS if values[k] != defaults[k]) + (1 if "_kpi_table" in st.session_state else 0)
    if changed:
        side.caption(t("modified", lang, n=changed))
    _to_query_params(values, defaults, lang)
    changes = dict(
        pay_factor={line: float(values[f"pay_factor_{line}"]) for line in ("asset", "liability", "intermediate", "risk")},
        role_weight={r: float(values[f"role_weight_{r}"]) for r in ("primary", "secondary", "support")},
        stock_factor=float(values["stock_factor"]), pool=float(values["pool"]), pay_method=values["pay_method"],
        name=baseline.name + (" (what-if)" if changed else ""),
    )
    if "_kpi_table" in st.session_state:
        changes["kpi"] = st.session_state["_kpi_table"]
    return baseline.replace(**changes)


@st.cache_resource(show_spinner=False)
def _startup_checks() -> bool:
    from data.guards import check_xml_safety

    check_xml_safety()
    return True


def frame(page: str) -> Ctx:
    """Draw the shared frame and compute what the page shows. Every page calls this first.

    Order: page config, start-up checks, language, login gate (stops the script without a
    session), the role check for this page (stops it when not allowed), navigation, then for
    admins and analysts the dataset picker and the what-if panel.

    Parameters
    ----------
    page : str
        The page's string key (``page_rankings``): title and permission.

    Returns
    -------
    Ctx
    """
    st.set_page_config(page_title=f"{t(page, 'zh')} · 绩效 Jixiao", page_icon=":material/analytics:", layout="wide")
    _startup_checks()
    if not st.session_state.get("_qp_lang_read"):
        st.session_state["_qp_lang_read"] = True
        if st.query_params.get(LANG_KEY) in ("zh", "en"):
            st.session_state[f"_keep_{LANG_KEY}"] = st.query_params[LANG_KEY]
    lang = language_switch()
    who = login_gate(lang)
    access = Access(state.store(), who)
    navigation(lang, access)
    logout_button(who, lang)
    if not access.may_open(page):
        st.title(t(page, lang))
        st.error(t("not_allowed", lang))
        st.stop()
    st.sidebar.divider()
    if not access.can("whatif"):
        st.title(t(page, lang))
        return Ctx(lang=lang, who=who, access=access, dataset=None, baseline=None, scenario=None, result=None,
                   baseline_result=None)
    dataset = state.active_dataset()
    baseline = state.baseline_scenario(dataset)
    _from_query_params(_baseline_values(baseline))
    dataset_picker(dataset, lang)
    scenario = whatif_panel(baseline, lang)
    t0 = time.perf_counter()
    result = state.light(dataset, scenario)
    light_ms = (time.perf_counter() - t0) * 1000
    baseline_result = state.light(dataset, baseline, cache=True)
    st.sidebar.caption(t("recalc_ms", lang, ms=light_ms))
    st.title(t(page, lang))
    return Ctx(lang=lang, who=who, access=access, dataset=dataset, baseline=baseline, scenario=scenario,
               result=result, baseline_result=baseline_result)
