"""Evaluate: open an evaluation report (summary, the quality-vs-latency plot, every question's answers), or
run one: a dataset through retrieval, the chosen generators and validation, side by side."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import streamlit as st

from app.ui.common import context
from app.ui.render import answer_html, badge, e, md, meta_line, sentences_html
from app.ui.services import group_key, ready_generators
from pipeline.errors import SculptragError
from evaluation.datasets import BUILTIN, DATA
from evaluation.report import summary_table

svc, user, prefs = context()
st.title("Evaluate")
if svc.remote:
    st.info(f"This app asks the service at {md(svc.url)}; evaluations run next to the store: use "
            "`sculptrag eval` on that machine (its reports open here when the app runs there).")
    st.stop()
eval_dir = Path(svc.settings.app.eval_dir)


@st.cache_data(show_spinner=False, max_entries=512)
def _report_groups(path: str, mtime_ns: int) -> tuple[str, ...] | None:
    """The groups a report was run with (its questions, answers and passages are what they may read);
    None when it does not say. (Cached per file version: reports can be large.)"""
    try:
        groups = json.loads(Path(path).read_text(encoding="utf-8"))["config"]["groups"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return tuple(groups) if isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups) else None


def visible(groups: tuple[str, ...] | None) -> bool:
    """May this session see a report run with `groups`? Only with every one of them in use; a report that
    does not say is the local user's alone."""
    if groups is None:
        return user.source == "settings"
    return set(groups) <= set(prefs.groups)


def reports() -> list[Path]:
    """The reports in eval_dir this session may see, newest first."""
    found = []
    for path in eval_dir.glob("*/report.json") if eval_dir.is_dir() else []:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            continue
        if visible(_report_groups(str(path), mtime)):
            found.append((mtime, path))
    return [p for _, p in sorted(found, reverse=True)]


def report_folder(name: str, groups: tuple[str, ...]) -> Path:
    """Where a run's report goes: eval_dir/<dataset>, unless a report there was run with other groups (it is
    someone else's to keep): then eval_dir/<dataset>-<hash of the groups>."""
    name = re.sub(r"[^\w.-]+", "_", name).strip("._") or "dataset"  # (a file's stem: "..", say, is no folder name)
    folder = eval_dir / name
    old = folder / "report.json"
    if old.is_file() and _report_groups(str(old), old.stat().st_mtime_ns) != tuple(sorted(groups)):
        folder = eval_dir / f"{name}-{group_key(groups)}"
    return folder


def show(report: dict, html_path: Path | None) -> None:
    from evaluation.report import NO_PLOT, PLOT_CAPTION, quality_latency_svg, render

    cfg = report["config"]
    st.subheader(f"{md(report['dataset'])}: {cfg['items']} questions, k = {cfg['k']}")
    st.caption(md(f"{report.get('created', '')} · checker {cfg.get('checker', '')} · repair rounds {cfg.get('repair_rounds', 0)}"))
    for name, status in report.get("generators", {}).items():
        if status.get("status") == "error":
            st.warning(md(f"{name} did not run: {status['error']}"))
    headers, rows = summary_table(report)
    st.dataframe([dict(zip(headers, r)) for r in rows], hide_index=True, key="eval_summary")
    st.markdown("**Quality vs latency**")
    svg = quality_latency_svg(report)
    if svg:
        st.image(svg, caption=PLOT_CAPTION, width=680)
    else:
        st.caption(NO_PLOT)

    def page() -> str:  # read or rendered only when downloaded
        return html_path.read_text(encoding="utf-8") if html_path and html_path.is_file() else render(report)

    st.download_button("Download the full report (HTML)", page, file_name=f"{report['dataset']}-report.html",
                       mime="text/html", key="eval_download", on_click="ignore")
    items = report.get("items", [])
    if items:
        st.markdown("**Question by question**")
        i = st.selectbox("Question", range(len(items)), key="eval_item",
                         format_func=lambda j: f"{items[j]['id']}: {items[j]['question'][:100]}")
        item = items[i]
        gold = item.get("gold_answer")
        st.html(f"<b>Question:</b> {e(item['question'])}<br><b>Gold answer:</b> {e(gold if gold is not None else '-')}"
                + ("" if item.get("answerable", True) else " (unanswerable)"))
        for name, row in item.get("answers", {}).items():
            if "error" in row:
                st.html(f"<b>{e(name)}</b>: {badge('fail', 'error')} {e(row['error'])}")
                continue
            metrics = [f"F1 {row['token_f1']:.2f}" if row.get("token_f1") is not None else "",
                       f"{row['seconds']:.2f} s" if row.get("seconds") is not None else ""]
            st.html(f"<b>{e(name)}</b> {badge(row.get('status', 'not run'))} {meta_line(metrics)}"
                    + answer_html(row.get("text", ""))
                    + sentences_html([(s.get("status", "pass"), s.get("text", ""), s.get("reasons", []))
                                      for s in row.get("sentences", [])], row.get("reasons", [])))


OPEN, RUN = "Open a report", "Run an evaluation"
new = st.session_state.pop("eval_new", None)
if new:  # a run just finished: show its report
    st.session_state["eval_mode"], st.session_state["eval_pick"] = OPEN, new
mode = st.radio("Mode", [OPEN, RUN], horizontal=True, key="eval_mode", label_visibility="collapsed")
if mode == OPEN:
    found = reports()
    if found:
        labels = {str(p): f"{p.parent.name} · {datetime.fromtimestamp(p.stat().st_mtime):%Y-%m-%d %H:%M}" for p in found}
        if st.session_state.get("eval_pick") not in labels:
            st.session_state.pop("eval_pick", None)
        chosen = st.selectbox("Report", list(labels), format_func=labels.get, key="eval_pick")
        try:
            show(json.loads(Path(chosen).read_text(encoding="utf-8")), Path(chosen).with_name("report.html"))
        except (OSError, ValueError, KeyError) as err:
            st.error(md(f"Cannot read {chosen}: {err}"))
    else:
        st.info("No reports for your groups yet: run one, or open a report.json from your computer.")
    uploaded = st.file_uploader("Open a report.json from your computer", type=["json"], key="eval_upload")
    if uploaded is not None:
        try:
            show(json.loads(uploaded.getvalue().decode("utf-8")), None)
        except (ValueError, KeyError) as err:
            st.error(f"That is not a sculptrag report: {md(err)}")

else:
    if not user.editor:
        editors = svc.settings.app.editor_groups
        st.caption("Running evaluations is for " + (md(", ".join(editors)) if editors else
                                                     "the app's editors (`SCULPTRAG_APP__EDITOR_GROUPS`)") + ".")
    elif not prefs.groups:
        st.caption("You belong to no group, so an evaluation would read nothing.")
    else:
        roots = svc.settings.app.folder_roots
        have_data = DATA.is_dir()
        choices = ([*BUILTIN] if have_data else []) + (["your own questions (.jsonl/.csv on the server)"] if roots else [])
        if not roots:
            st.caption("Your own question files on the server need `SCULPTRAG_APP__FOLDER_ROOTS` (the folders this app "
                       "may read).")
        dataset = st.selectbox("Dataset", choices, key="eval_dataset",
                               help=f"built-in sets are read from {DATA}" if have_data else None)
        own = dataset is not None and dataset not in BUILTIN
        path = corpus = ""
        if own:
            path = st.text_input("Question file", key="eval_file", placeholder=f"{roots[0]}/questions.jsonl")
            corpus = st.text_input("Its documents (folder)", key="eval_corpus", placeholder=f"{roots[0]}/docs")
        ready = ready_generators(svc.settings)  # those that need no model folder, or have one configured
        gens = st.multiselect("Generators to compare", ready, default=[g for g in ("sculpt", "extractive") if g in ready],
                              key="eval_generators")
        c1, c2 = st.columns(2)
        limit = int(c1.number_input("Questions", 1, 10_000, 20, key="eval_limit"))
        k = int(c2.number_input("Passages per question (k)", 1, 20, prefs.k, key="eval_k"))
        st.caption("Runs for your groups in use, " + md(", ".join(prefs.groups))
                   + ": only people in all of them will see its report.")
        if st.button("Run", type="primary", disabled=not dataset or not gens or (own and not path), key="eval_run"):
            from evaluation.datasets import load_dataset
            from evaluation.report import write_report
            from evaluation.runner import EvalRun, run_eval

            if own and not all(user.allowed_folder(p, roots) for p in (path, corpus) if p):
                st.error("That file or folder is outside the folders this app may read (`SCULPTRAG_APP__FOLDER_ROOTS`).")
            else:
                bar = st.progress(0.0, text="building the evaluation store...")
                groups = prefs.groups
                try:
                    ds = load_dataset(dataset if not own else path, limit=limit, corpus=corpus or None)
                    # one evaluation store per set of groups: a stored document keeps the groups it was first given
                    folder = report_folder(ds.name, groups)
                    run = EvalRun(dataset=ds, generators=gens, k=k, limit=limit, groups=groups, settings=svc.settings,
                                  store_dir=eval_dir / ".stores" / f"g-{group_key(groups)}" / folder.name)
                    report = run_eval(run, embedder=svc.rag.retriever.load_embedder(),
                                      progress=lambda d, t, q: bar.progress(d / max(t, 1), text=f"{d} of {t}: {q[:80]}"))
                    json_path, _ = write_report(report, folder)
                except SculptragError as err:
                    bar.empty()
                    st.error(md(err))
                else:
                    st.session_state["eval_new"] = str(json_path)
                    st.rerun()
