"""Attacks on the Streamlit app's access control, each finding of the security review run as the attacker
(or the unlucky user) would: a forged proxy header, an anonymous or non-editor session, the app served to
the network, another group's evaluation reports and rejected files, server folders outside the roots, a
group name used as a path, a cited file swapped for a symlink, and messages that would tell "deleted" from
"not yours". Mostly AppTest (the request's headers are what `app.ui.common.request_headers` returns);
the browser-level forged-header check is in tests/app/test_browser.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.ui.common import FileChanged, read_ingested
from app.ui.services import group_key, resolve_user
from pipeline import Store, ingest
from pipeline.config import AppSettings, IngestSettings, Settings

from .conftest import SECRET

pytestmark = pytest.mark.slow  # AppTest runs the real app (models load once per settings)

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "app" / "ui" / "main.py"
PROXY_SECRET = "proxy-secret-0123456789abcdef"
PROOF = ("X-Sculptrag-Proxy-Secret", PROXY_SECRET)


# -- set-up: one store, the app in header mode (a sign-in proxy) and in local mode --------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    """roots/ (the only server folder the header-mode app may read) with public and hr documents, ingested
    by the operator; the environment of each app mode."""
    base = tmp_path_factory.mktemp("app-attacks")
    roots = base / "roots"
    for folder, name, text in [
        ("public", "canteen.txt", "The canteen opens at eight and serves soup on Fridays."),
        ("hr", "salaries.txt", f"Confidential salary review. The bonus code word is {SECRET}. Salaries rise in March."),
    ]:
        (roots / folder).mkdir(parents=True, exist_ok=True)
        (roots / folder / name).write_text(text + "\n")
    settings = Settings(store_dir=base / "store", ingest=IngestSettings(parse_workers=0))
    ingest([roots / "public"], settings, groups=["public"], embedder=embedder)
    ingest([roots / "hr"], settings, groups=["hr"], embedder=embedder)
    common = {"SCULPTRAG_STORE_DIR": str(settings.store_dir), "SCULPTRAG_GENERATOR": "extractive",
              "SCULPTRAG_INGEST__PARSE_WORKERS": "0", "SCULPTRAG_APP__EVAL_DIR": str(base / "eval")}
    header = {**common, "SCULPTRAG_APP__GROUPS_HEADER": "X-Forwarded-Groups", "SCULPTRAG_APP__USER_HEADER": "X-Forwarded-User",
              "SCULPTRAG_APP__PROXY_SECRET": PROXY_SECRET, "SCULPTRAG_APP__EDITOR_GROUPS": '["editors"]',
              "SCULPTRAG_APP__FOLDER_ROOTS": json.dumps([str(roots)])}
    local = {**common, "SCULPTRAG_APP__USER_GROUPS": '["public", "hr"]'}  # no folder roots
    return {"base": base, "roots": roots, "settings": settings, "header": header, "local": local, "embedder": embedder}


@pytest.fixture
def open_app(site, monkeypatch):
    """open_app("header", headers) or open_app("local"): a fresh AppTest session, already run once."""
    from streamlit.testing.v1 import AppTest

    def start(mode: str, headers: list[tuple[str, str]] = ()):
        for k in [k for k in os.environ if k.startswith("SCULPTRAG_")]:
            monkeypatch.delenv(k)
        for k, v in site[mode].items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr("app.ui.common.request_headers", lambda: list(headers))
        at = AppTest.from_file(str(MAIN), default_timeout=300)
        at.run()
        assert not at.exception, at.exception
        return at

    return start


def signed_in(groups: str, user: str = "ana") -> list[tuple[str, str]]:
    """The headers the real proxy sends for a person."""
    return [("X-Forwarded-Groups", groups), ("X-Forwarded-User", user), PROOF]


def text_of(at) -> str:
    """Everything the session's page shows as text (HTML, alerts, captions, tables)."""
    parts = [h.value for h in at.get("html")]
    for kind in ("markdown", "caption", "info", "warning", "error", "success"):
        parts += [str(x.value) for x in at.get(kind)]
    parts += [d.value.to_csv() for d in at.dataframe]
    return "\n".join(parts)


def sidebar(at) -> str:
    return "\n".join(h.value for h in at.sidebar.get("html"))


def keys(at, kind: str) -> set[str]:
    return {w.key for w in at.get(kind)}


def frame(at, column: str):
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def docs_by_name(site) -> dict[str, list[str]]:
    return {Path(d.source_uri).name: d.group_names for d in Store(site["settings"]).documents()}


def ingest_folder(at, folder: Path, *, prune: bool = False, set_groups: bool = False, groups: list[str] | None = None):
    at.switch_page("views/documents.py").run()
    if groups is not None:
        at.multiselect(key="doc_groups").set_value(groups).run()
    if set_groups:
        at.checkbox(key="doc_set_groups").check().run()
    if prune:
        at.checkbox(key="doc_prune").check().run()
    at.text_input(key="doc_folder").input(str(folder)).run()
    at.button(key="ingest_folder").click().run()
    assert not at.exception, at.exception


# -- 1. the groups header is believed only from the proxy ------------------------------------------------
def test_a_forged_groups_header_without_the_proxy_secret_reads_nothing(open_app):
    for headers in ([("X-Forwarded-Groups", "hr, editors"), ("X-Forwarded-User", "mallory")],  # no proof
                    [("X-Forwarded-Groups", "hr, editors"), ("X-Sculptrag-Proxy-Secret", "guess-guess-guess-guess")],
                    [("X-Forwarded-Groups", "hr, editors"), PROOF, ("X-Sculptrag-Proxy-Secret", "second")]):  # sent twice
        at = open_app("header", headers)
        side = sidebar(at)
        assert "anonymous" in side and "groups: none" in side and "0 documents you can read" in side
        assert "mallory" not in side
        assert at.chat_input[0].disabled
        at.switch_page("views/documents.py").run()
        assert not at.file_uploader and "uploads-0" not in keys(at, "file_uploader")
        assert SECRET not in text_of(at) and "salaries" not in text_of(at)


def test_the_proxy_secret_lets_the_proxys_groups_in(open_app):
    at = open_app("header", signed_in("hr", "ana"))
    assert "ana" in sidebar(at) and "groups: hr" in sidebar(at)
    at.chat_input[0].set_value("What is the bonus code word?").run()
    assert SECRET in at.session_state["chat"][-1]["answer"].text


def test_a_repeated_groups_header_names_no_group():
    settings = Settings(app=AppSettings(groups_header="X-Forwarded-Groups", proxy_secret=PROXY_SECRET))
    user = resolve_user(settings, [("X-Forwarded-Groups", "public"), PROOF, ("x-forwarded-groups", "hr")])
    assert user.groups == () and not user.editor
    assert resolve_user(settings, [("X-Forwarded-Groups", "../hr, <b>"), PROOF]).groups == ()  # bad names: none


def test_header_mode_without_a_proxy_secret_believes_nobody_and_the_app_will_not_start(monkeypatch, tmp_path):
    settings = Settings(app=AppSettings(groups_header="X-Forwarded-Groups", editor_groups=("hr",)))
    user = resolve_user(settings, {"X-Forwarded-Groups": "hr", "X-Sculptrag-Proxy-Secret": "anything at all, really"})
    assert user.groups == () and not user.editor
    monkeypatch.setenv("SCULPTRAG_APP__GROUPS_HEADER", "X-Forwarded-Groups")
    execs = []
    monkeypatch.setattr(os, "execve", lambda *a: execs.append(a))
    result = CliRunner().invoke(cli, ["app", "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and not execs
    assert "SCULPTRAG_APP__PROXY_SECRET" in result.output


# -- 2. only named editors edit behind the proxy; the anonymous never ----------------------------------------
def test_editing_behind_the_proxy_needs_editor_groups():
    proxied = Settings(app=AppSettings(groups_header="X-Forwarded-Groups", proxy_secret=PROXY_SECRET))
    assert not resolve_user(proxied, [("X-Forwarded-Groups", "hr"), PROOF]).editor  # none named: nobody edits
    named = proxied.model_copy(update={"app": proxied.app.model_copy(update={"editor_groups": ("hr",)})})
    assert resolve_user(named, [("X-Forwarded-Groups", "hr"), PROOF]).editor
    assert not resolve_user(named, [("X-Forwarded-Groups", "hr")]).editor  # no proof: anonymous
    assert resolve_user(Settings(), {}).editor  # locally, the local user edits by default


def test_a_signed_in_reader_cannot_ingest_delete_or_run_an_evaluation(open_app):
    at = open_app("header", signed_in("public", "bo"))
    at.switch_page("views/documents.py").run()
    assert not at.file_uploader and "doc_delete_pick" not in keys(at, "selectbox")
    assert "editors" in text_of(at)  # says who may
    at.switch_page("views/evaluate.py").run()
    at.radio(key="eval_mode").set_value("Run an evaluation").run()
    assert "eval_run" not in keys(at, "button")


# -- 3. serving the network; the PID; tracebacks --------------------------------------------------------------
@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.20", "intranet.example.com"])
def test_the_app_is_not_served_to_the_network_without_a_proxy(monkeypatch, tmp_path, address):
    monkeypatch.delenv("SCULPTRAG_APP__GROUPS_HEADER", raising=False)
    execs = []
    monkeypatch.setattr(os, "execve", lambda *a: execs.append(a))
    result = CliRunner().invoke(cli, ["app", "--store", str(tmp_path), "--address", address])
    assert result.exit_code == 2 and not execs and "--allow-remote" in result.output
    result = CliRunner().invoke(cli, ["app", "--store", str(tmp_path), "--address", address, "--allow-remote"])
    assert result.exit_code == 0 and len(execs) == 1


def test_the_app_behind_a_proxy_may_listen_wide_and_hides_error_details(monkeypatch, tmp_path):
    monkeypatch.setenv("SCULPTRAG_APP__GROUPS_HEADER", "X-Forwarded-Groups")
    monkeypatch.setenv("SCULPTRAG_APP__PROXY_SECRET", PROXY_SECRET)
    execs = []
    monkeypatch.setattr(os, "execve", lambda *a: execs.append(a))
    result = CliRunner().invoke(cli, ["app", "--store", str(tmp_path), "--address", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    (exe, argv, env), = execs
    assert argv[1:4] == ["-m", "streamlit", "run"]
    assert argv[argv.index("--client.showErrorDetails") + 1] == "none"
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stopping_the_app_process_stops_streamlit(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCULPTRAG_")}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "app", "--store", str(tmp_path / "store"), "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, "the app did not start"
            time.sleep(0.3)
        assert b"streamlit" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # the PID is Streamlit's own
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


# -- 4. evaluation reports: only for those in all of their groups -----------------------------------------
@pytest.fixture(scope="module")
def reports(site):
    """A real report run for group hr, and copies of it: one for public, one that names no groups."""
    from evaluation import EvalRun, load_dataset, run_eval, write_report

    base, eval_dir = site["base"], site["base"] / "eval"
    corpus = base / "eval-corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "tides.txt").write_text(f"High tide at Port Erin is at 06:40 on Mondays, code {SECRET}.\n")
    questions = base / "tides.jsonl"
    questions.write_text(json.dumps({"question": "When is high tide at Port Erin?", "gold_answer": "06:40"}) + "\n")
    report = run_eval(EvalRun(dataset=load_dataset(str(questions), corpus=corpus), generators=["extractive"], k=2,
                              groups=["hr"], settings=site["settings"], store_dir=base / "eval-store"),
                      embedder=site["embedder"])
    write_report(report, eval_dir / "hr-report")
    for name, groups in [("public-report", ["public"]), ("old-report", None)]:
        copy = json.loads(json.dumps(report))
        if groups is None:
            del copy["config"]["groups"]
        else:
            copy["config"]["groups"] = groups
        (eval_dir / name).mkdir()
        (eval_dir / name / "report.json").write_text(json.dumps(copy))
    return eval_dir


def shown_reports(at) -> set[str]:
    at.switch_page("views/evaluate.py").run()
    assert not at.exception, at.exception
    picks = [s for s in at.selectbox if s.key == "eval_pick"]
    return {label.split(" · ")[0] for label in picks[0].options} if picks else set()


def test_reports_show_only_to_those_in_all_of_their_groups(open_app, reports):
    assert shown_reports(open_app("header", signed_in("public"))) == {"public-report"}
    assert shown_reports(open_app("header", signed_in("public, hr"))) == {"public-report", "hr-report"}
    anonymous = open_app("header", [("X-Forwarded-Groups", "hr, public")])
    assert shown_reports(anonymous) == set() and SECRET not in text_of(anonymous)
    assert shown_reports(open_app("local")) == {"public-report", "hr-report", "old-report"}  # the local user's own


def test_a_narrowed_session_sees_only_the_reports_of_its_groups(open_app, reports):
    at = open_app("local")
    at.switch_page("views/settings.py").run()
    at.multiselect(key="set_groups").set_value(["public"]).run()
    assert shown_reports(at) == {"public-report", "old-report"}


def test_an_evaluation_runs_with_the_editors_groups(open_app, site):
    roots = site["roots"]
    (roots / "eval" / "docs").mkdir(parents=True, exist_ok=True)
    (roots / "eval" / "docs" / "ferry.txt").write_text("The ferry to Calf Island leaves from the south pier.\n")
    (roots / "eval" / "ferry.jsonl").write_text(json.dumps({"question": "Where does the ferry leave from?",
                                                            "gold_answer": "the south pier"}) + "\n")
    at = open_app("header", signed_in("editors, public", "ed"))
    at.switch_page("views/evaluate.py").run()
    at.radio(key="eval_mode").set_value("Run an evaluation").run()
    at.selectbox(key="eval_dataset").select("your own questions (.jsonl/.csv on the server)").run()
    at.text_input(key="eval_file").input(str(roots / "eval" / "ferry.jsonl")).run()
    at.text_input(key="eval_corpus").input(str(roots / "eval" / "docs")).run()
    at.multiselect(key="eval_generators").set_value(["extractive"]).run()
    at.button(key="eval_run").click().run()
    assert not at.exception, at.exception
    report = json.loads((site["base"] / "eval" / "ferry" / "report.json").read_text())
    assert report["config"]["groups"] == ["editors", "public"]
    assert "ferry" in shown_reports(at) and "ferry" not in shown_reports(open_app("header", signed_in("public")))


# -- 5. server folders: only under folder_roots, in every mode ----------------------------------------------
def test_without_folder_roots_no_server_folder_can_be_ingested(open_app):
    at = open_app("local")
    at.switch_page("views/documents.py").run()
    assert "doc_folder" not in keys(at, "text_input")
    assert "SCULPTRAG_APP__FOLDER_ROOTS" in text_of(at)
    at.switch_page("views/evaluate.py").run()
    at.radio(key="eval_mode").set_value("Run an evaluation").run()
    assert not any("your own questions" in o for o in at.selectbox(key="eval_dataset").options)
    assert not resolve_user(Settings(), {}).allowed_folder(Path.home() / ".ssh", ())


def test_folders_outside_the_roots_are_refused_through_links_and_dots(open_app, site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa.txt").write_text("-----BEGIN OPENSSH PRIVATE KEY----- not for the index\n")
    link = site["roots"] / "link-out"
    link.symlink_to(outside, target_is_directory=True)
    try:
        at = open_app("header", signed_in("editors, public", "ed"))
        for folder in ["/etc", str(link), str(site["roots"] / ".." / outside.name), str(outside)]:
            ingest_folder(at, Path(folder))
            assert any("outside the folders" in e.value for e in at.error), folder
        assert "id_rsa.txt" not in docs_by_name(site)
    finally:
        link.unlink()


# -- 6. rejected files: only those of the session's groups --------------------------------------------------
def test_rejected_files_show_only_for_the_groups_they_were_ingested_for(open_app, site, tmp_path):
    (tmp_path / "hr").mkdir()
    (tmp_path / "public").mkdir()
    (tmp_path / "hr" / "blank-salary-sheet.txt").write_text("  \n")
    (tmp_path / "public" / "blank-menu.txt").write_text("  \n")
    ingest([tmp_path / "hr"], site["settings"], groups=["hr"], embedder=site["embedder"])
    ingest([tmp_path / "public"], site["settings"], groups=["public"], embedder=site["embedder"])
    at = open_app("header", signed_in("editors, public", "ed"))
    at.switch_page("views/documents.py").run()
    files = set(frame(at, "when")["file"])
    assert "blank-menu.txt" in files and "blank-salary-sheet.txt" not in files


# -- 7. ingest from the app: only what the user may touch ----------------------------------------------------
def test_a_public_editor_cannot_update_regroup_or_prune_an_hr_document(open_app, site):
    at = open_app("header", signed_in("editors, public", "ed"))
    ingest_folder(at, site["roots"] / "hr", set_groups=True, groups=["public"])
    outcome = next(o for o in at.session_state["last_ingest"].outcomes if o.path.endswith("salaries.txt"))
    assert outcome.reason == "not permitted" and SECRET not in text_of(at)
    assert docs_by_name(site)["salaries.txt"] == ["hr"]

    gone = site["roots"] / "hr-archive"
    gone.mkdir()
    (gone / "old-review.txt").write_text("Archived review of the pay bands for the warehouse team.\n")
    ingest([gone], site["settings"], groups=["hr"], embedder=site["embedder"])
    (gone / "old-review.txt").unlink()
    ingest_folder(at, gone, prune=True)
    assert "old-review.txt" in docs_by_name(site)  # the public editor's prune left the hr document alone


def test_stored_documents_keep_their_groups_unless_the_box_is_ticked(open_app, site):
    team = site["roots"] / "team"
    team.mkdir()
    (team / "rota.txt").write_text("The weekend rota changes every second Monday of the month.\n")
    at = open_app("header", signed_in("editors, public", "ed"))
    ingest_folder(at, team, groups=["public"])
    ingest_folder(at, team, groups=["editors"])
    assert docs_by_name(site)["rota.txt"] == ["public"]
    ingest_folder(at, team, groups=["editors"], set_groups=True)
    assert docs_by_name(site)["rota.txt"] == ["editors"]


# -- 8. upload folders: a hash, never a name ----------------------------------------------------------------
def test_uploads_land_in_a_folder_named_by_a_hash_inside_the_upload_dir(open_app, site):
    at = open_app("header", signed_in("editors, public", "ed"))
    at.switch_page("views/documents.py").run()
    at.multiselect(key="doc_groups").set_value(["public"]).run()
    at.file_uploader[0].upload("../../../escape.txt", b"The bicycle shed is unlocked at seven every morning.", "text/plain")
    at.run()
    at.button(key="ingest_uploads").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    uploads = (site["settings"].store_dir / "uploads").resolve()
    saved = [p for p in uploads.rglob("*") if p.is_file()]
    assert [p.relative_to(uploads).parts for p in saved] == [(f"g-{group_key(['public'])}", "escape.txt")]
    assert group_key([".."]).isalnum() and group_key(["hr", "public"]) == group_key(["public", "hr"])


# -- 9. "Open the file" serves the ingested bytes or nothing -----------------------------------------------
def test_a_cited_file_swapped_for_a_symlink_is_not_served(open_app, site, tmp_path):
    doc = tmp_path / "observatory.txt"
    doc.write_text("The observatory dome opens at 21:00 on clear nights, says the astronomy club.\n")
    ingest([doc], site["settings"], groups=["public"], embedder=site["embedder"])
    at = open_app("local")
    at.chat_input[0].set_value("When does the observatory dome open?").run()
    answer = at.session_state["chat"][-1]["answer"]
    cite = next(c for c in answer.citations if c.source_uri.endswith("observatory.txt"))
    marker, doc_id = cite.marker, answer.passages[cite.passage_number - 1].document.id
    at.button(key=f"cite-0-{marker}").click().run()
    assert f"file-0-{marker}" in keys(at, "download_button")

    private = tmp_path / "private.key"
    private.write_text("-----BEGIN PRIVATE KEY----- server secret\n")
    doc.unlink()
    doc.symlink_to(private)
    at.run()
    assert f"file-0-{marker}" not in keys(at, "download_button")
    assert "changed since it was ingested" in text_of(at)
    with pytest.raises(FileChanged):  # and at click time, were the page older than the swap
        read_ingested(doc, Store(site["settings"]).documents_by_id([doc_id])[doc_id].sha256)


def test_read_ingested_serves_only_the_same_regular_file(tmp_path):
    import hashlib

    data = b"quarterly figures\n"
    good = tmp_path / "figures.txt"
    good.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert read_ingested(good, sha) == data
    link = tmp_path / "link.txt"
    link.symlink_to(good)
    with pytest.raises(FileChanged):
        read_ingested(link, sha)  # even a link to the right bytes: the path was re-pointed
    good.write_bytes(b"quarterly figures, edited\n")
    with pytest.raises(FileChanged):
        read_ingested(good, sha)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileChanged):
        read_ingested(fifo, sha)  # no hang on a FIFO
    with pytest.raises(FileChanged):
        read_ingested(tmp_path / "gone.txt", sha)


# -- 10. "deleted" and "not yours" read the same -----------------------------------------------------------------
def test_a_regrouped_source_and_a_deleted_one_read_the_same(open_app, site, tmp_path):
    texts = {"lighthouse.txt": "The lighthouse keeper logs the lamp hours every evening at dusk.",
             "harbour.txt": "The harbour master collects mooring fees on the first day of each month."}
    for name, text in texts.items():
        (tmp_path / name).write_text(text + "\n")
    ingest([tmp_path], site["settings"], groups=["public"], embedder=site["embedder"])
    at = open_app("local")
    messages = []
    for i, (question, name) in enumerate([("Who logs the lamp hours at the lighthouse?", "lighthouse.txt"),
                                          ("Who collects the harbour mooring fees?", "harbour.txt")]):
        at.chat_input[0].set_value(question).run()
        answer = at.session_state["chat"][-1]["answer"]
        cite = next(c for c in answer.citations if c.source_uri.endswith(name))
        at.button(key=f"cite-{i}-{cite.marker}").click().run()
        assert texts[name][:20] in text_of(at)
        if name == "lighthouse.txt":  # regrouped to a group this user does not have
            ingest([tmp_path / name], site["settings"], groups=["finance"], set_groups=True, embedder=site["embedder"])
        else:
            Store(site["settings"]).delete_documents([answer.passages[cite.passage_number - 1].document.id])
        at.run()
        messages.append([w.value for w in at.warning])
        at.button(key=f"cite-{i}-{cite.marker}").click().run()  # close it
    assert messages[0] == messages[1] and len(messages[0]) == 1
