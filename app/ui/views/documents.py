"""Documents: upload files or ingest a server folder (with progress), see what was ingested, rejected (and
why) or unchanged, list the documents you may read, filter them by group, delete one."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.ui.common import context, file_name
from app.ui.render import md
from pipeline.errors import SculptragError
from pipeline.types import IngestReport

svc, user, prefs = context()
st.title("Documents")
GONE = "That document is no longer there for you (deleted, or not readable with your groups)."
EDITORS_ONLY = ("You can read documents here; adding and deleting them is for "
                + md(", ".join(svc.settings.app.editor_groups)) + "." if svc.settings.app.editor_groups and user.groups else
                "You can read documents here; adding and deleting them is for the app's editors "
                "(`SCULPTRAG_APP__EDITOR_GROUPS`).")


def run_remote(call, what: str) -> bool:
    """API mode: the service ingests (uploaded files or its own folders) under the same rules; the report
    goes to the session. False (and the service's message shown) on failure."""
    try:
        with st.spinner(f"{what} on the service..."):
            report = call()
    except SculptragError as err:
        st.error(md(err))
        return False
    st.session_state["last_ingest"] = report
    return True


def run_ingest(paths: list[Path], groups: tuple[str, ...], *, set_groups: bool = False, prune: bool = False) -> bool:
    """Ingest with a progress bar, as this user: they may give only their own groups, and may not update,
    regroup or prune a stored document they cannot read (the ingest reports it "not permitted"). The report
    goes to the session. False (and the error shown) on failure."""
    bar = st.progress(0.0, text="waiting for any other ingest to finish...")

    def progress(done: int, total: int, path: str) -> None:
        bar.progress(done / max(total, 1), text=f"{done} of {total}: {Path(path).name}")

    try:
        with svc.ingest_lock:
            bar.progress(0.0, text="parsing and embedding...")
            report = svc.ingestor().ingest(paths, groups=groups, set_groups=set_groups, caller_groups=user.groups,
                                           prune=prune, progress=progress)
    except SculptragError as err:
        bar.empty()
        st.error(md(err))
        return False
    bar.progress(1.0, text=f"done in {report.seconds:.1f} s")
    st.session_state["last_ingest"] = report
    return True


def show_report(report: IngestReport) -> None:
    st.subheader("Last ingest")
    cols = st.columns(5)
    for col, (label, value) in zip(cols, [("ingested", report.ingested), ("updated", report.updated),
                                          ("unchanged", report.unchanged), ("rejected", report.rejected),
                                          ("chunks added", report.chunks_added)]):
        col.metric(label, value)
    if report.outcomes:
        st.dataframe([{"file": Path(o.path).name, "status": o.status, "reason": o.reason, "detail": o.detail,
                       "chunks": o.chunks} for o in report.outcomes], hide_index=True, key="ingest_outcomes")


if user.editor and prefs.groups:
    with st.container(border=True):
        st.subheader("Add documents")
        groups = tuple(st.multiselect("Who may read them (groups)", list(user.groups), default=list(prefs.groups[:1]),
                                      key="doc_groups"))
        set_groups = st.checkbox("Also set these groups on documents already stored (else they keep theirs)",
                                 key="doc_set_groups")
        upload_tab, folder_tab = st.tabs(["Upload files", "A folder on the server"])
        with upload_tab:
            n = st.session_state.setdefault("upload_round", 0)
            files = st.file_uploader("Files (PDF, Office, HTML, e-mail, text...)", accept_multiple_files=True,
                                     key=f"uploads-{n}", max_upload_size=svc.settings.app.max_upload_mb)
            if st.button("Ingest the uploaded files", disabled=not files or not groups, type="primary", key="ingest_uploads"):
                if svc.remote:
                    if run_remote(lambda: svc.upload([(f.name, f.getvalue()) for f in files], groups,
                                                     set_groups=set_groups), "ingesting the files"):
                        st.session_state["upload_round"] = n + 1
                        st.rerun()
                else:
                    try:
                        paths = [svc.save_upload(f.name, f.getvalue(), groups, user.groups) for f in files]
                    except OSError as err:
                        st.error(md(f"Could not keep the uploaded files: {err}"))
                    else:
                        if run_ingest(paths, groups, set_groups=set_groups):
                            st.session_state["upload_round"] = n + 1  # a fresh, empty upload box
                            st.rerun()
        with folder_tab:
            roots = svc.settings.app.folder_roots
            if svc.remote:  # the service's folder roots decide (SCULPTRAG_APP__FOLDER_ROOTS on the server)
                folder = st.text_input("Folder path on the service's machine", key="doc_folder")
                prune = st.checkbox("Also delete stored documents from this folder whose files are gone (only those "
                                    "you may read)", key="doc_prune")
                if st.button("Ingest the folder", disabled=not folder.strip() or not groups, key="ingest_folder"):
                    if run_remote(lambda: svc.ingest_paths([folder.strip()], groups, set_groups=set_groups, prune=prune),
                                  "ingesting the folder"):
                        st.rerun()
            elif not roots:
                st.info("Ingesting a folder on the server is off. To turn it on, name the folders it may read in "
                        '`SCULPTRAG_APP__FOLDER_ROOTS` (a JSON list, e.g. `["/srv/shared"]`) and restart the app.')
            else:
                st.caption("Folders under: " + md(", ".join(map(str, roots))))
                folder = st.text_input("Folder path", key="doc_folder", placeholder=str(roots[0]))
                prune = st.checkbox("Also delete stored documents from this folder whose files are gone (only those "
                                    "you may read)", key="doc_prune")
                if st.button("Ingest the folder", disabled=not folder.strip() or not groups, key="ingest_folder"):
                    if not user.allowed_folder(folder.strip(), roots):
                        st.error("You may not ingest from that folder: it is outside the folders this app may read "
                                 "(`SCULPTRAG_APP__FOLDER_ROOTS`).")
                    elif not Path(folder.strip()).expanduser().exists():
                        st.error(f"There is no folder or file at {md(folder.strip())}.")
                    elif run_ingest([Path(folder.strip()).expanduser()], groups, set_groups=set_groups, prune=prune):
                        st.rerun()
elif not user.editor:
    st.caption(EDITORS_ONLY)

if "last_ingest" in st.session_state:
    show_report(st.session_state["last_ingest"])

st.subheader("Your documents")
readable = svc.readable(prefs.groups)
docs = [d for d in svc.store.documents() if d.id in readable]
shown_groups = sorted({g for d in docs for g in d.group_names if g in user.groups})
pick = st.multiselect("Filter by group", shown_groups, key="doc_filter")
if pick:
    docs = [d for d in docs if set(pick) & set(d.group_names)]
if not docs:
    st.info("No documents to show." if readable else "There are no documents you can read yet.")
else:
    st.dataframe([{"title": d.title, "file": file_name(d.source_uri), "type": d.file_type,
                   "pages": d.pages, "chunks": d.n_chunks, "groups": ", ".join(g for g in d.group_names if g in user.groups),
                   "ingested": d.ingested_at.strftime("%Y-%m-%d %H:%M")} for d in docs],
                 hide_index=True, key="doc_table")
    if user.editor:
        with st.expander("Delete a document"):
            labels = {d.id: f"{d.title} ({file_name(d.source_uri)})" for d in docs}
            target = st.selectbox("Document", list(labels), format_func=labels.get, key="doc_delete_pick")
            sure = st.checkbox("Yes, delete it and its chunks from the index", key="doc_delete_sure")
            if st.button("Delete", disabled=not sure, key="doc_delete"):
                doc = next(d for d in docs if d.id == target)
                removed = svc.delete_document(doc.id, prefs.groups)
                if removed is None:  # regrouped (or deleted) since the list was drawn: not this user's to delete
                    st.session_state["deleted"] = ("warning", GONE)
                else:
                    st.session_state["deleted"] = ("success", f"Deleted {doc.title} ({removed} chunks).")
                del st.session_state["doc_delete_sure"]
                st.rerun()
        if "deleted" in st.session_state:
            kind, message = st.session_state.pop("deleted")
            (st.success if kind == "success" else st.warning)(md(message))

if user.editor:
    quarantined = svc.store.quarantined(groups=prefs.groups)  # only rejections of ingests run for these groups
    if quarantined:
        with st.expander(f"Rejected files ({len(quarantined)})"):
            st.dataframe([{"file": file_name(q.source_uri), "reason": q.reason, "detail": q.detail,
                           "when": q.at.strftime("%Y-%m-%d %H:%M")} for q in quarantined], hide_index=True, key="quarantine")
