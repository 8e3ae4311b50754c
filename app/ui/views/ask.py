"""Ask: a chat; the answer forms on a canvas (masks sharpening into text, step by step), then the final
answer with its citations (each opens its source passage, the supporting text highlighted), the validation
verdict per sentence, and how it was made (generator, steps, time, tokens/s)."""

from __future__ import annotations

import time
from functools import partial

import streamlit as st

from app.ui.common import context, file_name, file_of, read_ingested, still_ingested
from app.ui.render import answer_html, badge, e, md, canvas_html, meta_line, passage_html, sentences_html
from generator.citations import written_spans
from pipeline.errors import SculptragError
from pipeline.text import find_markers
from pipeline.types import Answer, DenoiseState
from validation.evidence import evidence_spans
from validation.text import sentence_spans

CANVAS_EVERY_S = 0.05  # the canvas is redrawn at most this often (every step on a fast model is a blur)
NOT_READABLE = "This source is not readable with your current groups (or it was deleted)."

svc, user, prefs = context()
st.title("Ask your documents")
history: list[dict] = st.session_state.setdefault("chat", [])
opened: dict[int, int] = st.session_state.setdefault("opened", {})  # answer index -> the citation marker shown


def _toggle(i: int, marker: int) -> None:
    if opened.get(i) == marker:
        opened.pop(i)
    else:
        opened[i] = marker


def show_source(i: int, answer: Answer, marker: int) -> None:
    """The cited passage with its supporting text highlighted, its document, page and file."""
    cite = next((c for c in answer.citations if c.marker == marker), None)
    if cite is None:
        return
    hit = answer.passages[cite.passage_number - 1]
    with st.container(border=True, key=f"source-{i}"):
        readable = svc.may_open(prefs.groups, hit.document.id)
        doc = svc.store.documents_by_id([hit.document.id]).get(hit.document.id) if readable else None
        if doc is None:  # (deleted, or not readable now: the same words either way)
            st.warning(NOT_READABLE)
            return
        claims = [s.text for s in answer.validation.sentences if marker in s.markers] or [
            answer.text[a:b] for a, b in sentence_spans(answer.text) if marker in find_markers(answer.text[a:b])]  # not validated
        where = [f"page {hit.page}" if hit.page else "", hit.section, hit.document.file_type.upper()]
        st.html(f"<b>[{marker}] {e(hit.document.title)}</b>" + meta_line(where) + passage_html(hit.text, evidence_spans(claims, hit.text)))
        if svc.remote:  # the service serves the file (to these groups, while it is the ingested one)
            st.download_button("Open the file", data=partial(svc.document_file, doc.id, prefs.groups),
                               file_name=file_name(doc.source_uri), on_click="ignore", mime=doc.media_type or None,
                               key=f"file-{i}-{marker}", icon=":material/attach_file:")
            return
        path = file_of(doc.source_uri)
        if path is not None and still_ingested(path, doc.sha256):
            st.download_button("Open the file", data=partial(read_ingested, path, doc.sha256), file_name=path.name,
                               on_click="ignore", mime=doc.media_type or None, key=f"file-{i}-{marker}",
                               icon=":material/attach_file:")  # read (and checked again) on click
        elif path is not None:
            st.caption(f"Source: {md(doc.source_uri)} (the file changed since it was ingested, so it is not offered)")
        else:
            st.caption(f"Source: {md(doc.source_uri)} (the file is no longer there)")


def show_answer(i: int, answer: Answer) -> None:
    sources = {c.marker: answer.passages[c.passage_number - 1].text for c in answer.citations
               if 0 < c.passage_number <= len(answer.passages)}
    st.html(answer_html(answer.text, written_spans(answer.text, sources) if answer.citations else ()))
    report = answer.validation
    status = report.status
    trace, t = answer.trace, answer.timings
    repair = report.repair
    repaired = f"repaired {len(repair)}×: {repair[0].before} → {repair[-1].after}" if repair else ""
    parts = [answer.generator,
             f"{trace.steps} steps, {trace.nfe} model calls" if trace and trace.steps else "",
             f"{trace.answer_tokens} tokens at {trace.tokens_per_s:.0f} tok/s" if trace and trace.tokens_per_s else "",
             f"{t['total_s']:.2f} s" if "total_s" in t else "", repaired]
    st.html(f'{badge(status, "Validation " + status.upper())} {meta_line(parts)}')
    if answer.citations:
        cols = st.columns(min(len(answer.citations), 4))
        for j, c in enumerate(answer.citations):
            page = f", p. {c.page}" if c.page else ""
            cols[j % len(cols)].button(f"[{c.marker}] {md(c.document_title[:60])}{page}", key=f"cite-{i}-{c.marker}",
                                       on_click=_toggle, args=(i, c.marker), type="tertiary",
                                       help="show the source passage")
        if i in opened:
            show_source(i, answer, opened[i])
    with st.expander("Checks on every sentence", expanded=status in ("warn", "fail")):
        st.html(sentences_html([(s.status, s.text, s.reasons) for s in report.sentences], report.reasons))
        if report.checker:
            st.caption(f"support checker: {md(report.checker)}")


if not prefs.groups:
    st.warning("You belong to no group, so there is nothing you may read. Ask your administrator for access.")
elif not svc.readable(prefs.groups):
    st.info("There are no documents you can read yet: add some on the Documents page.")
    st.page_link("views/documents.py", label="Go to Documents", icon=":material/description:")

for i, turn in enumerate(history):
    with st.chat_message("user"):
        st.text(turn["question"])
    with st.chat_message("assistant"):
        show_answer(i, turn["answer"])

question = st.chat_input("Ask a question about your documents", disabled=not prefs.groups)
if question:
    with st.chat_message("user"):
        st.text(question)
    with st.chat_message("assistant"):
        canvas = st.empty()
        canvas.caption("retrieving passages...")
        answer, shown = None, 0.0
        try:
            for item in svc.rag.stream(question, groups=prefs.groups, generator=prefs.generator, k=prefs.k,
                                       filters=prefs.search_filters(), options=prefs.generator_options(),
                                       repair_rounds=prefs.repair_rounds):
                if isinstance(item, DenoiseState):
                    now = time.perf_counter()
                    if now - shown >= CANVAS_EVERY_S or item.done:
                        canvas.html(canvas_html(item.text, item.step, item.masked))
                        shown = now
                else:
                    answer = item
        except SculptragError as err:
            canvas.error(md(err))
        if answer is not None:  # shown in place: no rerun of the page (and of the whole history) for it
            history.append({"question": question, "answer": answer})
            canvas.empty()
            show_answer(len(history) - 1, answer)
