"""Publishing a chosen scenario: what differs from the period's last publication, then confirm.

The comparison is pure (:func:`publish_diff`, :func:`scenario_changes`, :func:`document_totals`,
:func:`refusal`): a candidate scenario and its result against the last publication as frozen in
the store (its scenario, its frozen manager rows and its document's totals). :func:`section` draws
it at the bottom of the Scenarios page: pick a saved scenario (or name and save the current
what-if), see the parameters, totals and managers that change, confirm, publish.

"Identical" means the same dataset version and the same parameters (every scenario field but the
name): the page says so and offers no button, and a store that answers ``created: False`` (an
identical publication already exists) is told apart from a new version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from calc.explain import compare_managers
from calc.scenario import Scenario
from data import db as _db
from data.db import T, database_url
from data.store import code_version
from ui import state, views
from ui.i18n import STRINGS, t, value_word

__all__ = ["Published", "Diff", "TOTAL_ITEMS", "TOTAL_LABELS", "parameters", "scenario_changes", "document_totals",
           "publish_diff", "refusal", "say_refusal", "BUSY", "NAME_CHARS", "param_label", "value_text", "section"]

# the DOMAIN 10 totals compared, in this order
TOTAL_ITEMS = ("contribution", "attributed", "unattributed", "pay", "points_pay")
# their labels (ui/i18n.py keys)
TOTAL_LABELS = {"contribution": "total_contribution", "attributed": "attributed", "unattributed": "unattributed",
                 "pay": "total_pay", "points_pay": "pay_method_points"}
_KPI_ATTRS = ("perspective", "weight", "kind", "cap")
NAME_CHARS = T.scenarios.c.name.type.length        # the longest scenario name the store keeps


@dataclass(frozen=True)
class Published:
    """The period's last publication as frozen: what a new one is compared with."""

    version: int
    dataset_id: int
    scenario: Scenario
    managers: pd.DataFrame      # the frozen manager rows (pub_managers)
    totals: dict                # the frozen document's totals
    code_version: str = ""      # the calculation code it was computed with (data.store.code_version)


@dataclass(frozen=True)
class Diff:
    """A candidate publication against the last one.

    ``params``: ``key`` (TOML key; ``dataset`` for the dataset version, ``code_version`` for the
    calculation code), ``old``, ``new``, one row per difference; ``totals``: ``item``, ``old`` (NaN
    without a last publication), ``new``, ``delta``; ``movers``: :func:`calc.explain.compare_managers`
    rows of the managers whose rank or grade moves (A = published, B = the candidate);
    ``managers``: how many were compared.
    """

    params: pd.DataFrame
    totals: pd.DataFrame
    movers: pd.DataFrame
    identical: bool
    managers: int


def parameters(scenario: Scenario) -> dict:
    """The scenario's parameters: every field but its name (the TOML layout of DOMAIN 9)."""
    data = scenario.to_dict()
    data.pop("name", None)
    return data


def scenario_changes(old: Scenario, new: Scenario) -> list[tuple[str, object, object]]:
    """Every parameter that differs, as ``(key, old value, new value)`` in the scenario's field order.

    Keys are the TOML keys: ``days``, ``pay_factor.intermediate`` (one row per table entry),
    ``kpi.<code>.<attribute>`` for a KPI in both tables, ``kpi.<code>`` (the whole row as text,
    None on the side that lacks it) for a KPI in one only, and ``kpi`` (codes in order) when the
    same rows come in another order. The name is not a parameter.
    """
    a, b = parameters(old), parameters(new)
    out: list[tuple[str, object, object]] = []
    for key in [*a, *(k for k in b if k not in a)]:       # edits are written only when there are some
        x, y = a.get(key), b.get(key)
        if key == "edits":
            if x != y:
                out.append((key, _edits_text(x), _edits_text(y)))
        elif key == "kpi":
            out.extend(_kpi_changes(x, y))
        elif isinstance(x, dict):
            out.extend((f"{key}.{k}", x[k], y.get(k)) for k in x if x[k] != y.get(k))
        elif x != y:
            out.append((key, x, y))
    return out


def _edits_text(edits: list | None) -> str | None:
    """Coefficient edits as one line: ``set 003884/RM0432 0.5; remove 001365/RM2930``."""
    if not edits:
        return None
    return "; ".join(" ".join(str(x) for x in (e["action"], f"{e['customer_id']}/{e['manager_id']}",
                                               e.get("role"), e.get("coefficient")) if x is not None)
                     for e in edits)


def _kpi_text(row: dict) -> str:
    return " ".join(f"{row[k]:g}" if isinstance(row[k], float) else str(row[k]) for k in ("code", *_KPI_ATTRS))


def _kpi_changes(old: list[dict], new: list[dict]) -> list[tuple[str, object, object]]:
    a = {r["code"]: r for r in old}
    b = {r["code"]: r for r in new}
    out = []
    for code in [*a, *(c for c in b if c not in a)]:
        if code not in b:
            out.append((f"kpi.{code}", _kpi_text(a[code]), None))
        elif code not in a:
            out.append((f"kpi.{code}", None, _kpi_text(b[code])))
        else:
            out.extend((f"kpi.{code}.{k}", a[code][k], b[code][k]) for k in _KPI_ATTRS if a[code][k] != b[code][k])
    if not out and list(a) != list(b):
        out.append(("kpi", " ".join(a), " ".join(b)))
    return out


def document_totals(document: str | bytes) -> dict:
    """The ``totals`` object of a stored DOMAIN 10 document, read from its end.

    The canonical document sorts its keys and ``totals`` comes last (after ``customers`` and
    ``managers``); a quote inside a JSON string is escaped, so the last ``"totals":`` is the key.
    """
    text = document.decode("utf-8") if isinstance(document, (bytes, bytearray, memoryview)) else document
    i = text.rfind('"totals":')
    if i < 0:
        raise ValueError("the document has no totals")
    totals, _ = json.JSONDecoder().raw_decode(text, i + len('"totals":'))
    return {k: (float("nan") if v is None else float(v)) for k, v in totals.items()}


def publish_diff(last: Published | None, scenario: Scenario, managers: pd.DataFrame, totals: dict,
                 dataset_id: int, code: str = "") -> Diff:
    """What publishing ``scenario`` (its result: ``managers``, ``totals``) on ``dataset_id`` changes.

    Parameters
    ----------
    last : Published or None
        The period's last publication; None when the period was never published.
    scenario : Scenario
        The candidate.
    managers : DataFrame
        The candidate result's managers (``Result.managers``).
    totals : dict
        The candidate result's totals (``Result.totals``).
    dataset_id : int
        The dataset version it would be published on.
    code : str
        The calculation code it would be computed with; a publication made with other code is not
        repeated by the same parameters (the numbers may differ). Empty: not compared.

    Returns
    -------
    Diff
        ``identical`` when the dataset, the code and every parameter are the same (a no-op).
    """
    new_totals = [float(totals[k]) for k in TOTAL_ITEMS]
    if last is None:
        old_totals = [float("nan")] * len(TOTAL_ITEMS)
        params = pd.DataFrame(columns=["key", "old", "new"])
        return Diff(params, _totals_frame(old_totals, new_totals), pd.DataFrame(), False, len(managers))
    rows = [] if last.dataset_id == dataset_id else [("dataset", last.dataset_id, dataset_id)]
    if code and last.code_version and code != last.code_version:
        rows.append(("code_version", last.code_version[:12], code[:12]))
    rows += scenario_changes(last.scenario, scenario)
    params = pd.DataFrame(rows, columns=["key", "old", "new"])
    identical = not rows and parameters(last.scenario) == parameters(scenario)
    old_totals = [float(last.totals.get(k, float("nan"))) for k in TOTAL_ITEMS]
    movers = compare_managers(last.managers, managers, last.scenario, scenario, moved_only=True)
    return Diff(params, _totals_frame(old_totals, new_totals), movers, identical, len(managers))


def _totals_frame(old: list[float], new: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({"item": list(TOTAL_ITEMS), "old": old, "new": new})
    frame["delta"] = frame["new"] - frame["old"]
    return frame


# The store refuses in English (data.store.Store.publish, save_scenario); the user reads their own language.
_REFUSALS = (
    (re.compile(r"published before \(v(?P<version>\d+)\).*needs a reason"), "publish_needs_reason"),
    (re.compile(r"no dataset stored for period"), "publish_no_dataset"),
    (re.compile(r"statements do not explain the pay"), "publish_statements_broken"),
    (re.compile(r"scenario name has \d+ characters; at most (?P<max>\d+)"), "publish_name_too_long"),
    (re.compile(r"holds a NUL character"), "publish_text_nul"),
)
# Another write held the store too long (data.db.StoreBusy, a RuntimeError; looked up by name).
BUSY = tuple(c for c in (getattr(_db, "StoreBusy", None),) if c is not None)
_CJK = re.compile(r"[\u4e00-\u9fff]")


def refusal(error: Exception, lang: str = "zh") -> tuple[str, dict]:
    """The i18n key (and its fields) saying why the store refused to save or publish.

    A known refusal gets its own message; a PermissionError ``publish_not_allowed``; a busy store
    ``publish_busy``; any other ``publish_refused`` with the store's text as the detail (only the
    half in ``lang`` of a text the store writes in both, ``English / 中文``).
    """
    if isinstance(error, PermissionError):
        return "publish_not_allowed", {}
    if BUSY and isinstance(error, BUSY):
        return "publish_busy", {}
    text = str(error)
    for pattern, key in _REFUSALS:
        m = pattern.search(text)
        if m:
            return key, m.groupdict()
    english, sep, chinese = text.rpartition(" / ")
    if sep and _CJK.search(chinese) and not _CJK.search(english):
        text = chinese if lang == "zh" else english
    return "publish_refused", {"err": text}


# ---------------------------------------------------------------------------------- display
def param_label(key: str, lang: str) -> str:
    """A parameter's name for people: ``pay_factor.intermediate`` -> 绩效工资挂钩系数 · 中间业务."""
    parts = key.split(".")
    head = parts[0]
    if head == "dataset":
        return t("dataset", lang)
    if head == "code_version":
        return t("param_code_version", lang)
    if head == "kpi":
        if len(parts) == 1:
            return t("param_kpi_order", lang)
        text = f"{t('param_kpi', lang)} · {value_word('kpi', parts[1], lang)}"
        return text + (f" · {t('kpi_' + parts[2], lang)}" if len(parts) > 2 else "")
    if len(parts) == 1:
        return t(head if head in STRINGS else f"param_{head}", lang)
    full = f"{head}_{parts[1]}"                      # pay_factor_asset, role_weight_primary
    if full in STRINGS and head in ("pay_factor", "role_weight"):
        return f"{t(head + 's', lang)} · {t(full, lang)}"
    word = {"grades": f"grade_{parts[1]}", "tiers": f"tier_{parts[1]}"}.get(head, parts[1])
    return f"{t('param_' + head, lang)} · {t(word, lang)}"


def value_text(key: str, value, lang: str, datasets: dict | None = None) -> str:
    """A parameter value as shown: numbers in full (``0.02``, ``1,000,000``), yes / no, words for codes."""
    if value is None:
        return "—"
    if key == "dataset":
        return (datasets or {}).get(value, f"#{value}")
    if isinstance(value, bool):
        return t("value_true" if value else "value_false", lang)
    if key == "pay_method":
        return t(f"pay_method_{value}", lang)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.10g}"
    return str(value)


def _last_publication(ctx, pubs: pd.DataFrame) -> Published | None:
    """The period's newest publication as frozen (read once per process: publications never change)."""
    if pubs.empty:
        return None
    row = pubs.iloc[0]
    pub_id = int(row["id"])

    def load() -> Published:
        store = ctx.access.store
        reader = getattr(store, "published_totals", None)          # a store that sums them itself
        totals = reader(pub_id) if reader else document_totals(store.published_document(pub_id))
        return Published(version=int(row["version"]), dataset_id=int(row["dataset_id"]),
                         scenario=store.load_scenario(int(row["scenario_id"])),
                         managers=ctx.access.managers(pub_id), totals=totals,
                         code_version=str(row.get("code_version") or ""))

    return state.kept(("published_frozen", database_url(), pub_id, row["result_hash"]), load)


def _candidate(ctx, saved: dict):
    """The scenario to publish, its result and whether it is the current what-if (None: nothing yet)."""
    sources = ("saved", "new") if saved else ("new",)
    source = st.radio(ctx.t("publish_source"), sources, key="publish_source", horizontal=True,
                      format_func=lambda s: ctx.t(f"publish_source_{s}"))
    if source == "saved":
        label = st.selectbox(ctx.t("publish_pick"), list(saved), key="publish_pick", index=None,
                             placeholder=ctx.t("publish_pick_placeholder"))
        if label is None:                   # nothing computed before a choice (another scenario may need a heavy stage)
            return None
        scenario = saved[label]
        return scenario, state.light(ctx.dataset, scenario, cache=True), False
    name = st.text_input(ctx.t("publish_new_name"), key="publish_new_name", max_chars=NAME_CHARS).strip()
    if not name:
        st.info(ctx.t("publish_name_needed"))
        return None
    return ctx.scenario.replace(name=name), ctx.result, True


def section(ctx) -> None:
    """The publish section of the Scenarios page (for those who may publish)."""
    st.subheader(ctx.t("publish_title"))
    period = ctx.dataset.period
    if ctx.dataset.db_id is None or not period:
        st.info(ctx.t("publish_no_dataset", period=period or "—"))
        return
    pubs = state.publications(period)
    st.caption(ctx.t("publish_help_pick", period=period, dataset=views.md_text(ctx.dataset.label), versions=len(pubs)))
    chosen = _candidate(ctx, state.saved_scenarios())
    if chosen is None:
        return
    scenario, result, is_whatif = chosen
    last = _last_publication(ctx, pubs)
    labels = {d.id: d.label for d in state.datasets()}
    toml = scenario.to_toml()
    against = None if last is None else int(pubs.iloc[0]["id"])
    diff = state.kept(("publish_diff", database_url(), ctx.dataset.id, toml, against),
                      lambda: publish_diff(last, scenario, result.managers, result.totals, ctx.dataset.db_id,
                                          code_version()))
    if last is None:
        st.info(ctx.t("publish_first", period=period))
    else:
        st.caption(ctx.t("publish_against", period=period, version=last.version,
                         scenario=views.md_text(last.scenario.name),
                         dataset=views.md_text(labels.get(last.dataset_id, f"#{last.dataset_id}"))))
        if diff.identical:
            st.info(ctx.t("publish_identical", version=last.version))
            return
    _show_diff(ctx, diff, last, labels)
    version = int(pubs["version"].max()) + 1 if len(pubs) else 1
    reason = st.text_input(ctx.t("publish_reason"), key="publish_reason") if last is not None else ""
    digest = hashlib.sha256(f"{toml}\n{ctx.dataset.db_id}\n{version}".encode()).hexdigest()[:16]
    confirmed = st.checkbox(ctx.t("publish_confirm", name=views.md_text(scenario.name), period=period, version=version),
                            key=f"publish_confirm_{digest}")      # a new choice is confirmed anew
    label = ctx.t("publish_save_and_publish" if is_whatif else "publish")
    if st.button(label, type="primary", key="publish_go", disabled=not confirmed):
        _publish(ctx, scenario, reason, last, is_whatif)


def _show_diff(ctx, diff: Diff, last: Published | None, labels: dict) -> None:
    if last is not None:
        st.markdown(f"**{ctx.t('publish_params')}**")
        p = diff.params
        table = pd.DataFrame({"param": [param_label(k, ctx.lang) for k in p["key"]], "key": list(p["key"]),
                              "old": [value_text(k, v, ctx.lang, labels) for k, v in zip(p["key"], p["old"])],
                              "new": [value_text(k, v, ctx.lang, labels) for k, v in zip(p["key"], p["new"])]})
        views.show(table, ctx.lang, key="publish_params", download=False,
                   extra={"param": "publish_param", "key": "publish_param_key", "old": "publish_old",
                          "new": "publish_new"})
    st.markdown(f"**{ctx.t('publish_totals')}**")
    totals = diff.totals.assign(item=[ctx.t(TOTAL_LABELS[k]) for k in diff.totals["item"]])
    views.show(totals, ctx.lang, key="publish_totals", download=False,
               extra={"item": "publish_item", "old": "publish_old", "new": "publish_new", "delta": "publish_delta"})
    if last is None:
        return
    m = diff.movers
    st.markdown(f"**{ctx.t('publish_movers')}**")
    if m.empty:
        st.caption(ctx.t("publish_no_movers"))
        return
    st.caption(ctx.t("publish_movers_summary", ranks=f"{int((m['rank_change'] != 0).sum()):,}",
                     grades=f"{int(m['grade_crossed'].astype(bool).sum()):,}", n=f"{diff.managers:,}"))
    grade = lambda g: views.grade_label(g, ctx.lang)       # noqa: E731
    views.show(m[["manager_id", "name", "branch", "rank_a", "rank_b", "rank_change", "pay_a", "pay_b", "pay_delta",
                  "grade_a", "grade_b", "driver", "cause"]], ctx.lang, key="publish_movers",
               labels={"grade_a": grade, "grade_b": grade, "driver": lambda d: d.map(lambda x: ctx.t(x) if x else ""),
                       "cause": lambda c: c.map(lambda x: ctx.t(f"cause_{x}"))},
               extra={"rank_a": "publish_rank_old", "rank_b": "publish_rank_new", "rank_change": "rank_change",
                      "pay_a": "publish_pay_old", "pay_b": "publish_pay_new", "pay_delta": "pay_change",
                      "grade_a": "publish_grade_old", "grade_b": "publish_grade_new", "driver": "driver_col",
                      "cause": "cause_col"})


def _publish(ctx, scenario: Scenario, reason: str, last: Published | None, is_whatif: bool) -> None:
    """Save (a named what-if) and publish; every refusal in the user's language."""
    period = ctx.dataset.period
    reason = (reason or "").strip()
    if last is not None and not reason:            # the store's own rule, said before asking it
        st.error(ctx.t("publish_needs_reason", period=period, version=last.version))
        return
    try:
        ctx.access.require("publish")
        if is_whatif:
            state.save_scenario(scenario, ctx.user)
        with st.spinner(ctx.t("publish_running")):
            pub = ctx.access.store.publish(period, scenario, reason, ctx.user, dataset_id=ctx.dataset.db_id)
    except (ValueError, PermissionError, *BUSY) as e:
        say_refusal(ctx, e)
        return
    state.changed()                                 # publications, the baseline and saved scenarios are read again
    if pub.get("created", True):
        st.success(ctx.t("published", period=pub["period"], version=pub["version"]))
    else:
        st.info(ctx.t("publish_identical", version=pub["version"]))



def say_refusal(ctx, error: Exception, generic: str = "publish_refused") -> None:
    """Show why the store refused (:func:`refusal`) in the user's language; store text made inert.
    ``generic``: the i18n key (with ``{err}``) for a refusal without a message of its own."""
    key, fields = refusal(error, ctx.lang)
    key = generic if key == "publish_refused" else key
    fields.setdefault("period", ctx.dataset.period if ctx.dataset is not None else "")
    fields.setdefault("max", NAME_CHARS)
    if "err" in fields:
        fields["err"] = views.md_text(fields["err"])
    st.error(ctx.t(key, **fields))
