"""Upload 上传: upload an extract, read the row-level report, preview, accept; templates.

All or nothing by default. Accepting the valid rows only is offered when every error is on a
row (:func:`data.quarantine.refusals`): the page then shows per sheet what is kept and what is
quarantined (dependants included) and asks for a confirmation before the accept button. A
structural error (missing sheet or column, unreadable file ...) is explained instead. Once
stored, the upload shows one message, with the rows kept and quarantined.
"""

import hashlib

import streamlit as st

from data.export import frame_to_csv_bytes, write_workbook
from data.quarantine import refusals, split_summary, split_valid
from data.sandbox import parse_isolated
from data.settings import heavy_engine
from data.store import sha256_bytes
from ui import state, views
from ui.frame import frame

ctx = frame("page_upload")
ss = st.session_state
PHASES = {"read": (0.0, 0.5), "check": (0.5, 1.0)}     # share of the bar while the child reads and checks
SHOWN_REFUSALS = 20                                   # structural problems listed; the report has them all
REPORT_LABELS = {"severity": "report_severity", "sheet": "report_sheet", "row": "report_row",
                 "column": "report_column", "value": "report_value", "message_zh": "report_message",
                 "message_en": "report_message", "reason": "report_reason", "values": "report_values"}
SPLIT_LABELS = {"sheet": "split_sheet", "read": "split_read", "kept": "split_kept",
                "quarantined_own_errors": "split_own", "quarantined_cascade": "split_cascade"}


def labels_of(columns) -> dict:
    """Translated column headers (the frame keeps its column codes; the browser shows these)."""
    return {c: st.column_config.Column(ctx.t(REPORT_LABELS[c])) for c in columns if c in REPORT_LABELS}


def report_table(report) -> None:
    """The report, one row per issue, headers and severity in the user's language; its download."""
    frame_ = report.to_frame()
    if not len(frame_):
        return
    msg_col = "message_zh" if ctx.lang == "zh" else "message_en"
    shown = frame_[["severity", "sheet", "row", "column", "value", msg_col]]
    config = labels_of(shown.columns)      # the codes stay in the frame; the browser shows words
    config["severity"] = st.column_config.SelectboxColumn(
        ctx.t("report_severity"), options=["error", "warning"], format_func=lambda s: ctx.t(f"severity_{s}"))
    st.dataframe(shown, hide_index=True, key="report_table", column_config=config)
    st.download_button(ctx.t("download_report"), write_workbook({"report": frame_}), "validation_report.xlsx",
                       key="download_report")


c1, c2 = st.columns(2)
c1.download_button(ctx.t("download_template"), state.TEMPLATE_PATH.read_bytes(), "jixiao_template.xlsx",
                   key="download_template")
c2.download_button(ctx.t("download_sample"), state.SAMPLE_PATH.read_bytes(), "sample_bank.xlsx", key="download_sample")

st.subheader(ctx.t("upload_title"))
st.caption(ctx.t("upload_help"))
files = st.file_uploader(ctx.t("upload_title"), accept_multiple_files=True, key="extract_upload",
                         type=["xlsx", "xlsm", "xls", "csv", "txt"], label_visibility="collapsed")
if heavy_engine() == "spark" and ctx.who.role == "admin":      # a warehouse period (issue 15)
    from calc.spark import master
    from data.warehouse import read_and_check

    with st.expander(ctx.t("warehouse_title"), expanded=bool(ss.get("_warehouse"))):
        st.caption(ctx.t("warehouse_help", master=views.md_text(master())))
        db = st.text_input(ctx.t("warehouse_db"), key="warehouse_db", placeholder="bank_2026q3").strip()
        if st.button(ctx.t("warehouse_read"), key="warehouse_read", disabled=not db):
            with st.spinner(ctx.t("warehouse_reading", db=views.md_text(db))):
                ss["_warehouse"] = read_and_check(db)
            ss.pop("accept_valid_rows", None)
            ss.pop("_upload_stored", None)

if not files and not ss.get("_warehouse"):
    ss.pop("_upload_stored", None)         # uploading the same file again is a new decision
digest = None
if files:
    ss.pop("_warehouse", None)             # a file chosen after a warehouse read replaces it
    payload = [(f.name, f.getvalue()) for f in files]
    digest = (sha256_bytes(payload[0][1]) if len(payload) == 1 else
              hashlib.sha256(b"".join(n.encode() + hashlib.sha256(d).digest() for n, d in sorted(payload))).hexdigest())
    if ss.get("_upload_digest") != digest:
        bar = st.progress(0.0, text=ctx.t("phase_read"))
        extract, report = parse_isolated(payload, progress=lambda phase, f: bar.progress(
            PHASES[phase][0] + f * (PHASES[phase][1] - PHASES[phase][0]), text=ctx.t(f"phase_{phase}")))
        bar.empty()
        ss["_upload"] = (extract, report, ", ".join(n for n, _ in payload))
        ss["_upload_digest"] = digest
        ss.pop("accept_valid_rows", None)  # another file: its own confirmation
        ss.pop("_upload_stored", None)
    extract, report, label = ss["_upload"]
elif ss.get("_warehouse"):
    digest, extract, report, label = ss["_warehouse"]
if digest is not None:
    stored = ss.get("_upload_stored")

    if stored is not None and stored[0] == digest:     # done: one message, nothing left to decide
        (st.success if stored[1] else st.info)(stored[2])
        with st.expander(ctx.t("report_title")):
            report_table(report)
    else:
        st.subheader(ctx.t("report_title"))
        if extract is not None and extract.notes:
            st.caption(ctx.t("encodings", notes=views.md_text("; ".join(extract.notes))))
        if ss.get("_upload_split", (None,))[0] != (digest, ctx.lang):    # once per file, not per click
            ss["_upload_split"] = ((digest, ctx.lang), [] if report.ok else refusals(extract, report, ctx.lang),
                                   None if report.ok or extract is None else split_summary(extract, report))
        _, refused, summary = ss["_upload_split"]
        if report.ok:
            rows = ", ".join(f"{extract.sheet_names.get(k, k)} {len(v):,}" for k, v in extract.frames.items() if len(v))
            st.success(ctx.t("valid", rows=views.md_text(rows)))
        elif refused:
            more = len(refused) - SHOWN_REFUSALS
            lines = "\n".join(f"- {views.md_text(r)}" for r in refused[:SHOWN_REFUSALS])
            st.error(f"{ctx.t('invalid', n=f'{len(report.errors):,}')}\n\n{ctx.t('structural_title')}\n\n{lines}"
                     + (f"\n- … (+{more:,})" if more > 0 else ""))
            st.caption(ctx.t("structural_help"))
        else:
            st.error(ctx.t("invalid_rows", n=f"{len(report.errors):,}"))
        report_table(report)
        if extract is not None:
            filled = [(k, v) for k, v in extract.frames.items() if len(v)]
            if filled:
                with st.expander(ctx.t("preview")):
                    tabs = st.tabs([extract.sheet_names.get(k, k) for k, _ in filled])
                    for tab, (k, v) in zip(tabs, filled):
                        tab.dataframe(v.head(100), hide_index=True)
            partial = False
            if not report.ok and not refused:
                st.subheader(ctx.t("split_title"))
                views.show(summary.drop(columns="key"), ctx.lang, key="split_summary", extra=SPLIT_LABELS,
                           download=False)
                st.caption(ctx.t("split_help"))
                own, cascade = int(summary["quarantined_own_errors"].sum()), int(summary["quarantined_cascade"].sum())
                partial = st.checkbox(ctx.t("accept_valid_confirm", kept=f"{int(summary['kept'].sum()):,}",
                                            quarantined=f"{own + cascade:,}", cascade=f"{cascade:,}"),
                                      key="accept_valid_rows")
            if report.ok or partial:
                periods = [d.period for d in state.datasets()]
                period = st.text_input(ctx.t("period"), value=periods[0] if periods else "2026Q3", key="upload_period")
                if st.button(ctx.t("accept"), key="accept_dataset", type="primary"):
                    bar = st.progress(0.0, text=ctx.t("phase_store"))
                    try:
                        valid, quarantine = split_valid(extract, report, ctx.lang)
                        info = state.store().save_dataset(period, label, digest, valid, ctx.user,
                                                          quarantine if len(quarantine) else None)
                    except ValueError as e:
                        bar.empty()
                        st.error(ctx.t("error_generic", err=views.md_text(e)))
                    else:
                        state.changed()               # the dataset list and the newest dataset are read again
                        bar.progress(0.6, text=ctx.t("phase_compute"))
                        state.set_active_dataset(info.id)
                        state.warm(info.id)       # the heavy stage, once, under the baseline the pages will use
                        bar.progress(1.0, text=ctx.t("phase_done"))
                        name = views.md_text(info.label)
                        if not info.created:
                            notice = ctx.t("unchanged", name=name)
                        elif info.rejected_rows:
                            notice = ctx.t("accepted_partial", name=name, kept=f"{sum(info.row_counts.values()):,}",
                                           quarantined=f"{info.rejected_rows:,}")
                        else:
                            notice = ctx.t("accepted", name=name)
                        ss["_upload_stored"] = (digest, info.created, notice)
                        st.rerun()

q = ctx.dataset.quarantine if ctx.dataset is not None else None
if q is not None and len(q):
    st.subheader(ctx.t("quarantine"))
    st.dataframe(q, hide_index=True, key="quarantine_table", column_config=labels_of(q.columns))
    st.download_button(ctx.t("download_quarantine"), frame_to_csv_bytes(q), "quarantine.csv", key="download_quarantine")
