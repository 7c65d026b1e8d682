"""The shared frame every page calls first: page config, language, navigation, what-if panel.

Streamlit runs a ``pages/`` file alone when its URL is opened directly, so nothing here may
rely on ``app.py`` having run. Widget values are mirrored into one plain session key (the dict
``_keep``, widget key -> value) because Streamlit drops a widget's state when the user switches
to a page that has not rendered it yet (History, Upload and Users have no panel); the mirror
restores it, so the panel stays where it was left.

A page whose figures the panel changes draws them through :func:`whatif`: one fragment that a
lever move reruns alone, with the moved slider's pair (both are ``st.fragment`` s rerun by key from
the lever's ``on_change``), so a move skips the login check, navigation and the rest of the panel.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import streamlit as st

from calc.light import Result
from calc.scenario import PAY_LINES, Scenario
from calc.whatif import EditError, scale_to_budget
from data.access import Access
from data.edits import edit_message
from data.auth import Principal
from ui import state
from ui.auth import login_gate, logout_button
from ui.i18n import t
from ui.views import md_text

PAGES = (
    ("app.py", "page_overview", ":material/dashboard:"),
    ("pages/rankings.py", "page_rankings", ":material/leaderboard:"),
    ("pages/customers.py", "page_customers", ":material/groups:"),
    ("pages/scorecard.py", "page_scorecard", ":material/radar:"),
    ("pages/manager.py", "page_manager", ":material/person:"),
    ("pages/coefficients.py", "page_coefficients", ":material/account_tree:"),
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
COEFFICIENT_LEVERS = ("role_weight_primary", "role_weight_secondary", "role_weight_support", "stock_factor")
LANG_KEY = "lang"


# pages a lever of the what-if panel changes; only these draw the panel and compute the what-if.
# Scenarios too: what it saves, exports, compares and publishes is the panel's what-if.
PANEL_PAGES = ("page_overview", "page_rankings", "page_customers", "page_scorecard", "page_manager",
               "page_coefficients", "page_scenarios")
PANEL_FILES = tuple(path for path, key, _ in PAGES if key in PANEL_PAGES)   # their scripts (tests, bench)
DATASET_PAGES = (*PANEL_PAGES, "page_upload")      # pages that read the session's dataset


@dataclass
class Ctx:
    """What a page needs: who is asking, language, dataset, scenarios and their results.

    ``live`` is True for roles that use the what-if (admin, analyst). On the pages of the
    what-if panel (:data:`PANEL_PAGES`) ``result`` is then the what-if's light stage in the
    ``Ctx`` that :func:`whatif` hands to the page's drawing (the frame's own has ``held``, the
    baseline, and no result yet); on the others it is None. For branch heads and managers ``live`` is False, ``result`` is None,
    and pages read published results through ``access`` only.
    """

    lang: str
    who: Principal
    access: Access
    dataset: state.Dataset | None
    baseline: Scenario | None
    scenario: Scenario | None
    result: Result | None
    baseline_result: Result | None
    live: bool = False
    whatif: state.WhatIf | None = None
    page: str = ""
    panel: dict | None = None
    kpi_key: tuple = ()
    edits_key: tuple = ()
    held: state.Baseline | None = None

    @property
    def baseline_key(self) -> tuple:
        """What identifies the baseline (:attr:`held`'s key); ``()`` without one."""
        return self.held.key if self.held is not None else ()

    @property
    def user(self) -> str:
        """The user name, for the audit log."""
        return self.who.username

    def t(self, key: str, **fmt) -> str:
        """A UI string in the chosen language."""
        return t(key, self.lang, **fmt)

    def memo(self, name, compute):
        """``compute()`` once per what-if (and ``name``): a rerun that does not move the panel,
        or another session with the same what-if, reuses it. Put the language in ``name`` when
        the value holds text."""
        if self.whatif is None:
            return compute()
        return self.whatif.memo(name, compute)

    def memo_on(self, levers: tuple, name, compute):
        """``compute()`` once per dataset, baseline, edited KPI table and the values of ``levers``
        (panel keys): for what moves with some levers only (``()``: with none, the data, the
        baseline and the KPI table alone). E.g. a customer's coefficients move with
        :data:`COEFFICIENT_LEVERS` only, not with the pay-link factors."""
        if self.panel is None:
            return compute()
        return state.kept((name, self.dataset.id, self.baseline_key, self.kpi_key, self.edits_key,
                           tuple(self.panel[k] for k in levers)), compute)


def _baseline_values(s: Scenario) -> dict:
    out = {f"pay_factor_{k}": float(v) for k, v in s.pay_factor.items()}
    out.update({f"role_weight_{k}": float(v) for k, v in s.role_weight.items()})
    out.update(stock_factor=float(s.stock_factor), pool=float(s.pool), pay_method=s.pay_method)
    return out


BOX = "_box"     # suffix of the number box under a slider: the same value, typed exactly
KEEP = "_keep"   # one session key for every mirror: each widget drawn scans the session's keys


def _kept() -> dict:
    kept = st.session_state.get(KEEP)
    if kept is None:
        kept = st.session_state[KEEP] = {}
    return kept


def _keep(key: str) -> None:
    _kept()[key] = st.session_state[key]


WHATIF_FRAGMENT = "whatif"   # st.fragment key of a page's what-if part (:func:`whatif`)
_UNSET = object()
_WRITE_ALL = "_panel_write_all"   # session key: the pairs are drawn for the first time on this page
_PANEL_PAGE = "_panel_page"       # session key: the page whose full run drew the panel last
ECHO = "_box_echo"              # session key: per lever, the box value last replaced and when (monotonic s)
ECHO_SECONDS = 1.0               # a box "edit" back to that value this soon after is the browser's echo
SLID = "_slid"                   # session key: the slider moved by the interaction being handled
LIVE_FLAG = "_whatif_fragment"   # session key: the page on screen has drawn that fragment (this full run)


def _moved(key: str, box: bool = False) -> None:
    """A lever of the panel moved (``on_change``): keep its value and, on a page whose what-if is
    a fragment, rerun only that fragment and the lever's slider-and-box pair, not the whole page
    (the frame, navigation and the rest of the panel are unchanged by a move)."""
    ss = st.session_state
    if box:
        if ss.get(SLID) == key:         # the slider moved in this same interaction: it wins (the box's
            return                      # value then is the one the browser held before the last move)
        held, at = ss.get(ECHO, {}).get(key, (_UNSET, 0.0))
        if ss[key + BOX] == held and time.monotonic() - at < ECHO_SECONDS:
            return      # the value the box showed before this server's last write reached the browser,
                        # sent along with another lever's move: not an edit (the write follows it)
        ss.get(ECHO, {}).pop(key, None)          # an edit the browser made: no echo can follow it
    ss[SLID] = None if box else key
    _kept()[key] = ss[key + BOX if box else key]
    if ss.get(LIVE_FLAG):
        st.rerun([WHATIF_FRAGMENT, *([_pair_key(key)] if key in SLIDERS else [])])


def _write_box(key: str, value: float) -> None:
    """Write ``value`` into the number box of ``key``, remembering the value it replaces until the
    new one reaches the browser (see :func:`_moved`). Every server write into a box goes here."""
    ss = st.session_state
    ss.setdefault(ECHO, {})[key] = (ss.get(key + BOX, _UNSET), time.monotonic())
    ss[key + BOX] = value


def _restore(key: str, default) -> None:
    """Give a widget (and its number box) its kept value before it is drawn (first value: ``default``).

    The mirror ``_keep[key]`` is the truth: ``on_change`` callbacks (run before the script)
    update it, and it is written back into the widget's key on every run, so a page switch,
    which gives the widget a new identity, cannot reset it, and the slider and its number box
    always show the same value.
    """
    kept = _kept()
    if key not in kept:
        kept[key] = st.session_state.get(key, default)
    if key not in SLIDERS:           # a slider and its box are written by their pair (:func:`_draw_pair`),
        st.session_state[key] = kept[key]   # which also runs alone when the slider moves


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
    kept = _kept()
    if kept.get("_qp_read"):
        return
    kept["_qp_read"] = True
    qp = st.query_params
    for key in WHATIF_KEYS:
        if key in qp:
            kept[key] = _coerce_param(key, qp[key], defaults.get(key))


def _to_query_params(values: dict, defaults: dict, lang: str) -> None:
    wanted = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in values.items() if v != defaults.get(k)}
    if lang != "zh":
        wanted[LANG_KEY] = lang
    current = {k: st.query_params[k] for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


NOW_KEY = "_whatif_now"        # the what-if last shown in this session
EDITS_KEY = "_coef_edits"     # the what-if's coefficient edits (a tuple of Scenario.edits tables)
KPI_STATE = (EDITS_KEY, "_kpi_table", "_kpi_editor_base", "kpi_editor", "_kpi_preset_applied", "kpi_preset")


def clear_whatif() -> None:
    """Forget the what-if (sliders and edited KPI table): the panel starts again from the baseline."""
    for key in WHATIF_KEYS:
        st.session_state.pop(key, None)
        st.session_state.pop(key + BOX, None)
        _kept().pop(key, None)
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

    links = True
    with st.sidebar:
        for path, key, icon in PAGES:
            if not access.may_open(key):
                continue
            if links:
                try:
                    st.page_link(path, label=t(key, lang), icon=icon)
                    continue
                except StreamlitAPIException:  # a page file run as its own entrypoint (tests): plain links
                    links = False
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


# slider key -> (slider format, number box step, number box format)
_FORMATS = {**{f"pay_factor_{x}": ("%.3f", 0.0005, "%.4f") for x in ("asset", "liability", "intermediate", "risk")},
            **{f"role_weight_{x}": ("%.2f", 0.01, "%.3f") for x in ("primary", "secondary", "support")},
            "stock_factor": ("%.2f", 0.01, "%.3f")}


def _pair_key(key: str) -> str:
    return f"lever_{key}"


def _draw_pair(key: str, lang: str) -> None:
    """A slider and, under it, a number box for an exact value; both hold the same value.

    Under, not beside: columns would add three elements per slider to every rerun's messages
    (a move's time on a real server grows with the number of elements sent, ~0.3 ms each).
    """
    lo, hi, step = SLIDERS[key]
    fmt, box_step, box_fmt = _FORMATS[key]
    ss, kept = st.session_state, _kept()[key]
    # A value written into a widget's key is sent to the browser as "set", over a press it made
    # meanwhile (rapid presses were lost): only a value that differs is written, except on the
    # panel's first run on a page, where the widget has a new identity (Streamlit's id includes
    # the page) whose browser state would otherwise start at its default.
    write_all = ss.get(_WRITE_ALL)
    if write_all or ss.get(key, _UNSET) != kept:
        ss[key] = kept
    if write_all or ss.get(key + BOX, _UNSET) != kept:
        _write_box(key, kept)
    ss[SLID] = None                     # the interaction's callbacks are done
    st.slider(t(key, lang), lo, hi, step=step, key=key, format=fmt, on_change=_moved, args=(key,),
              help=t(f"help_{key.rsplit('_', 1)[0] if key.startswith(('pay_factor', 'role_weight')) else key}", lang))
    st.number_input(t(key, lang), min_value=lo, max_value=hi, step=box_step, key=key + BOX, format=box_fmt,
                    on_change=_moved, args=(key, True), label_visibility="collapsed")


def _pair_fragment(key: str):
    """The pair of ``key`` as its own fragment (one definition per lever: a fragment key names one
    definition), so that a move redraws the pair moved (its box shows the slider's new value)."""
    def pair(lang: str) -> None:
        _draw_pair(key, lang)

    pair.__qualname__ = f"pair_{key}"
    return st.fragment(pair, key=_pair_key(key))


_PAIRS = {key: _pair_fragment(key) for key in SLIDERS}


def _slider(side, key: str, lang: str, fresh: bool = True) -> None:
    """Draw the slider-and-box pair of ``key`` in ``side`` (the sidebar), in a full run;
    ``fresh``: the panel's first run on this page (:func:`_draw_pair` writes every value)."""
    st.session_state[_WRITE_ALL] = fresh
    try:
        with side:
            _PAIRS[key](lang)
    finally:
        st.session_state[_WRITE_ALL] = False


def _kpi_key() -> tuple:
    rows = st.session_state.get("_kpi_table")
    return () if rows is None else tuple(tuple(r.items()) for r in rows)


def whatif_edits(baseline: Scenario) -> tuple:
    """The what-if's coefficient edits: the session's (set on the Coefficients page), else the baseline's."""
    return tuple(st.session_state.get(EDITS_KEY, baseline.edits))


def set_whatif_edits(edits) -> None:
    """Make ``edits`` (a sequence of Scenario.edits tables) the what-if's coefficient edits."""
    st.session_state[EDITS_KEY] = tuple(dict(e) for e in edits)


def whatif_panel(baseline: Scenario, lang: str, fresh: bool = True) -> None:
    """Draw the sliders (each with a number box) for the light-stage parameters; their values
    are read by :func:`panel_values`. ``fresh``: the panel was not drawn on this page by the
    full run before (its widgets are new to the browser)."""
    defaults = _baseline_values(baseline)
    for key in WHATIF_KEYS:
        _restore(key, defaults[key])
    side = st.sidebar
    side.markdown(f"### {t('whatif', lang)}\n{t('baseline', lang)}: {md_text(baseline.name)}")   # user text
    side.markdown(f"**{t('pay_factors', lang)}**")
    for line in ("asset", "liability", "intermediate", "risk"):
        _slider(side, f"pay_factor_{line}", lang, fresh)
    side.markdown(f"**{t('role_weights', lang)}**")
    for role in ("primary", "secondary", "support"):
        _slider(side, f"role_weight_{role}", lang, fresh)
    _slider(side, "stock_factor", lang, fresh)
    side.number_input(t("pool", lang), min_value=0.0, step=10_000.0, key="pool", format="%.0f", help=t("help_pool", lang),
                      on_change=_moved, args=("pool",))
    side.radio(t("pay_method", lang), ("factor", "points"), key="pay_method", horizontal=True, help=t("help_pay_method", lang),
               format_func=lambda v: t(f"pay_method_{v}", lang), on_change=_moved, args=("pay_method",))
    with side.expander(t("budget_title", lang)):
        st.number_input(t("budget_amount", lang), min_value=0.0, value=None, step=10_000.0, format="%.2f",
                        key="budget_amount")
        st.multiselect(t("budget_lock", lang), PAY_LINES, key="budget_lock", format_func=lambda x: t(x, lang))
        st.button(t("budget_apply", lang), key="budget_apply", on_click=_scale_to_budget, args=(lang,))
        notice = st.session_state.pop("_budget_notice", None)
        if notice is not None:
            (st.success if notice[0] == "ok" else st.warning)(notice[1])
    side.button(t("reset", lang), key="whatif_reset", on_click=clear_whatif)


def panel_values(baseline: Scenario, lang: str) -> tuple[dict, int]:
    """The panel's values (widget key -> value, from the kept mirror) and how many levers differ
    from ``baseline``; the page's link (query parameters) follows them."""
    defaults = _baseline_values(baseline)
    kept = _kept()
    values = {k: kept.get(k, defaults[k]) for k in WHATIF_KEYS}
    changed = sum(1 for k in WHATIF_KEYS if values[k] != defaults[k]) + (1 if "_kpi_table" in st.session_state else 0) \
        + (1 if whatif_edits(baseline) != tuple(baseline.edits) else 0)
    _to_query_params(values, defaults, lang)
    return values, changed


def _scale_to_budget(lang: str) -> None:
    """The budget button (DOMAIN 11.3): scale the unlocked pay-link factors of the what-if on
    screen so total pay meets the budget; the sliders take the scaled values (within their range)."""
    ss = st.session_state
    held = ss.get(NOW_KEY)
    if held is None:
        return
    budget = ss.get("budget_amount")
    if budget is None:
        ss["_budget_notice"] = ("warn", t("budget_enter", lang))
        return
    b = scale_to_budget(held.result, held.scenario, float(budget), ss.get("budget_lock") or (),
                        cap=min(SLIDERS[f"pay_factor_{x}"][1] for x in PAY_LINES))
    total = f"{b.total:,.2f}"
    if b.reached or b.reason == "factor_cap":
        for line, value in b.pay_factor.items():
            key = f"pay_factor_{line}"
            ss[key] = _kept()[key] = float(value)
            _write_box(key, float(value))
    if b.reached:
        ss["_budget_notice"] = ("ok", t("budget_done", lang, k=f"{b.k:.4f}", total=total))
    else:
        ss["_budget_notice"] = ("warn", t(f"budget_{b.reason}", lang, total=total,
                                          cap=SLIDERS["pay_factor_asset"][1]))


def whatif_scenario(baseline: Scenario, values: dict, changed: int) -> Scenario:
    """The what-if scenario the panel's ``values`` (and the edited KPI table) define."""
    changes = dict(
        pay_factor={line: float(values[f"pay_factor_{line}"]) for line in ("asset", "liability", "intermediate", "risk")},
        role_weight={r: float(values[f"role_weight_{r}"]) for r in ("primary", "secondary", "support")},
        stock_factor=float(values["stock_factor"]), pool=float(values["pool"]), pay_method=values["pay_method"],
        name=baseline.name + (" (what-if)" if changed else ""),
    )
    if "_kpi_table" in st.session_state:
        changes["kpi"] = st.session_state["_kpi_table"]
    if EDITS_KEY in st.session_state:
        changes["edits"] = list(st.session_state[EDITS_KEY])
    return baseline.replace(**changes)


_checked = False


def _startup_checks() -> None:
    """Once per process: the XML-defence check (cheap to ask again: a flag)."""
    global _checked
    if not _checked:
        from data.guards import check_xml_safety

        check_xml_safety()
        _checked = True


def frame(page: str) -> Ctx:
    """Draw the shared frame and compute what the page shows. Every page calls this first.

    Order: page config, start-up checks, language, login gate (stops the script without a
    session), the role check for this page (stops it when not allowed), navigation, then for
    admins and analysts the dataset picker and, on the pages a lever changes
    (:data:`PANEL_PAGES`), the what-if panel. A panel page then draws its figures through
    :func:`whatif`, which computes the what-if (``ctx.result``) and draws the title.

    A rerun queries the store for nothing it already read (:mod:`ui.state` keeps the dataset
    list, the dataset, the baseline and results), and a rerun that does not move the panel
    computes nothing again: the what-if is kept per (dataset, baseline, panel values).

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
    drawn_on = st.session_state.pop(_PANEL_PAGE, None)     # the panel's page in the last full run (None: none)
    kept = _kept()
    if not kept.get("_qp_lang_read"):
        kept["_qp_lang_read"] = True
        if st.query_params.get(LANG_KEY) in ("zh", "en"):
            kept[LANG_KEY] = st.query_params[LANG_KEY]
    lang = language_switch()
    who = login_gate(lang)
    access = Access(state.store(), who)
    navigation(lang, access)
    logout_button(who, lang)
    if not access.may_open(page):
        st.title(t(page, lang))
        st.error(t("not_allowed", lang))
        st.stop()
    live = access.can("whatif")
    ctx = Ctx(lang=lang, who=who, access=access, dataset=None, baseline=None, scenario=None, result=None,
              baseline_result=None, live=live, page=page)
    if not live or page not in DATASET_PAGES:
        st.title(t(page, lang))
        return ctx
    ctx.dataset = dataset = state.active_dataset()
    if dataset is None:                      # an empty store: only the upload page has something to do
        st.title(t(page, lang))
        if page in PANEL_PAGES:
            st.info(t("no_dataset", lang))
            st.stop()
        return ctx
    dataset_picker(dataset, lang)
    if page not in PANEL_PAGES:
        st.title(t(page, lang))
        return ctx
    held = state.baseline(dataset)
    ctx.baseline = baseline = held.scenario
    _from_query_params(_baseline_values(baseline))
    whatif_panel(baseline, lang, fresh=drawn_on != page)
    st.session_state[_PANEL_PAGE] = page
    ctx.held = held
    st.session_state[LIVE_FLAG] = False          # until the page draws its what-if fragment
    return ctx


def _compute(ctx: Ctx) -> None:
    """The what-if of the panel's values on ``ctx`` (its results, the sidebar's count of levers
    moved and recalculation time)."""
    lang, dataset, held = ctx.lang, ctx.dataset, ctx.held
    baseline = held.scenario
    values, changed = panel_values(baseline, lang)
    ctx.panel = values
    t0 = time.perf_counter()
    ctx.kpi_key = _kpi_key()
    ctx.edits_key = tuple(tuple(sorted(e.items())) for e in whatif_edits(baseline))
    try:
        ctx.baseline_result = state.light(dataset, baseline, cache=True, key=("baseline", held.key))
    except EditError as e:            # a saved scenario's edits name another dataset's customers
        st.sidebar.warning(t("baseline_edits_dropped", lang, err=md_text(edit_message(e, lang))))
        held = state.Baseline(baseline.replace(edits=[]), (*held.key, "without edits"))
        ctx.held, ctx.baseline, baseline = held, held.scenario, held.scenario
        ctx.baseline_result = state.light(dataset, baseline, cache=True, key=("baseline", held.key))
        if EDITS_KEY not in st.session_state:
            ctx.edits_key = ()
    try:
        ctx.whatif = state.whatif(dataset, held, (tuple(values.values()), ctx.kpi_key, ctx.edits_key),
                                  lambda: whatif_scenario(baseline, values, changed))
    except EditError as e:            # a baseline's or the session's edits that do not fit this dataset
        st.error(t("edits_do_not_apply", lang, err=md_text(edit_message(e, lang))))
        if EDITS_KEY in st.session_state:
            st.session_state.pop(EDITS_KEY)
            st.button(t("reload", lang), key="edits_reload")
        st.stop()
    ctx.scenario, ctx.result = ctx.whatif.scenario, ctx.whatif.result
    st.session_state[NOW_KEY] = ctx.whatif          # what the budget button scales
    light_ms = (time.perf_counter() - t0) * 1000
    st.sidebar.caption(" · ".join(([t("modified", lang, n=changed)] if changed else []) + [t("recalc_ms", lang, ms=light_ms)]))


def whatif(ctx: Ctx, draw) -> None:
    """Draw ``draw(ctx)``, the part of a page that the what-if panel changes, with the what-if of
    the panel's current values, as the fragment a lever move reruns alone (:func:`_moved`).

    Every page of :data:`PANEL_PAGES` calls it once, after :func:`frame`. For roles without the
    what-if (the frame left no baseline on ``ctx``) this is just ``draw(ctx)``.
    """
    if ctx.held is None:
        draw(ctx)
        return
    st.session_state[LIVE_FLAG] = True               # a lever move may now rerun the fragment alone
    st.title(t(ctx.page, ctx.lang))                  # what a move does not change is drawn once, outside
    st.caption(t(f"levers_{ctx.page}", ctx.lang))    # the fragment: every element a move sends costs time
    _whatif_part(ctx, draw)


@st.fragment(key=WHATIF_FRAGMENT)
def _whatif_part(ctx: Ctx, draw) -> None:
    if state.baseline(ctx.dataset).key != ctx.held.key:   # published, or a scenario loaded, since the
        st.rerun()                                          # last full run: the panel starts from it
    now = dataclasses.replace(ctx)      # a fragment rerun gets the full run's arguments: a fresh copy each time
    _compute(now)
    draw(now)
