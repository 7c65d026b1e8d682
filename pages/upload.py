"""Upload 上传: upload an extract, read the row-level report, preview, accept; templates."""

import hashlib

import streamlit as st

from data.export import frame_to_csv_bytes, write_workbook
from data.sandbox import parse_isolated
from data.store import sha256_bytes
from data.quarantine import split_valid
from ui import state, views
from ui.frame import frame

ctx = frame("page_upload")
ss = st.session_state
PHASES = {"read": (0.0, 0.5), "check": (0.5, 1.0)}     # share of the bar while the child reads and checks

c1, c2 = st.columns(2)
c1.download_button(ctx.t("download_template"), state.TEMPLATE_PATH.read_bytes(), "jixiao_template.xlsx",
                   key="download_template")
c2.download_button(ctx.t("download_sample"), state.SAMPLE_PATH.read_bytes(), "sample_bank.xlsx", key="download_sample")

st.subheader(ctx.t("upload_title"))
st.caption(ctx.t("upload_help"))
files = st.file_uploader(ctx.t("upload_title"), accept_multiple_files=True, key="extract_upload",
                         type=["xlsx", "xlsm", "xls", "xlsb", "ods", "csv", "txt"], label_visibility="collapsed")
if files:
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
    extract, report, label = ss["_upload"]

    st.subheader(ctx.t("report_title"))
    frame_ = report.to_frame()
    if extract is not None and extract.notes:
        st.caption(ctx.t("encodings", notes=views.md_text("; ".join(extract.notes))))
    if report.ok:
        rows = ", ".join(f"{extract.sheet_names.get(k, k)} {len(v)}" for k, v in extract.frames.items() if len(v))
        st.success(ctx.t("valid", rows=rows))
    else:
        st.error(ctx.t("invalid", n=len(report.errors)))
    if len(frame_):
        msg_col = "message_zh" if ctx.lang == "zh" else "message_en"
        st.dataframe(frame_[["severity", "sheet", "row", "column", "value", msg_col]], hide_index=True,
                     key="report_table")
        st.download_button(ctx.t("download_report"), write_workbook({"report": frame_}), "validation_report.xlsx",
                           key="download_report")
    if extract is not None:
        filled = [(k, v) for k, v in extract.frames.items() if len(v)]
        if filled:
            with st.expander(ctx.t("preview")):
                tabs = st.tabs([extract.sheet_names.get(k, k) for k, _ in filled])
                for tab, (k, v) in zip(tabs, filled):
                    tab.dataframe(v.head(100), hide_index=True)
        partial = False
        if not report.ok:
            partial = st.checkbox(ctx.t("accept_valid"), key="accept_valid_rows")
        if report.ok or partial:
            periods = [d.period for d in state.datasets()]
            period = st.text_input(ctx.t("period"), value=periods[0] if periods else "2026Q3", key="upload_period")
            if st.button(ctx.t("accept"), key="accept_dataset", type="primary"):
                bar = st.progress(0.0, text=ctx.t("phase_store"))
                valid, quarantine = split_valid(extract, report, "zh" if ctx.lang == "zh" else "en")
                try:
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
                    ss["_upload_notice"] = ctx.t("accepted" if info.created else "unchanged", name=info.label)
                    st.rerun()
if ss.get("_upload_notice"):
    st.success(ss.pop("_upload_notice"))

q = ctx.dataset.quarantine if ctx.dataset is not None else None
if q is not None and len(q):
    st.subheader(ctx.t("quarantine"))
    st.dataframe(q, hide_index=True, key="quarantine_table")
    st.download_button(ctx.t("download_quarantine"), frame_to_csv_bytes(q), "quarantine.csv", key="download_quarantine")
