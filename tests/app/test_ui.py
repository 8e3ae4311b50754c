"""The Streamlit app, driven by Streamlit's AppTest: each page's main interactions."""

from __future__ import annotations

import json
import time

import pytest

from app.ui.render import answer_html, passage_html
from generator.citations import written_spans
from app.ui.services import Prefs, resolve_user
from pipeline.config import AppSettings, Settings

pytestmark = pytest.mark.slow


def htmls(at) -> list[str]:
    return [h.value for h in at.get("html")]


def frame(at, column: str):
    """The first table on the page with this column (AppTest does not keep a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def ask(at, question: str):
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at.session_state["chat"][-1]["answer"]


def test_ask_shows_a_cited_validated_answer_and_a_citation_opens_its_source(app):
    answer = ask(app, "How many laptops were delivered on January 23, 2023?")
    assert "200 laptops" in answer.text
    page = "\n".join(htmls(app))
    assert "200 laptops" in page and "Validation PASS" in page
    assert "sculpt" in page and "tok/s" in page  # how it was made
    cite = answer.citations[0]
    button = app.button(key=f"cite-0-{cite.marker}")
    assert button.label.startswith(f"[{cite.marker}] ")

    button.click().run()
    source = [h for h in htmls(app) if 'class="sr-passage"' in h]
    assert len(source) == 1
    assert "<mark>" in source[0] and "200 laptops" in source[0].split("<mark>", 1)[1]  # the support, highlighted
    assert app.download_button(key=f"file-0-{cite.marker}").label == "Open the file"

    app.button(key=f"cite-0-{cite.marker}").click().run()  # a second click closes it
    assert not [h for h in htmls(app) if 'class="sr-passage"' in h]


def test_document_markup_renders_as_text(app):
    answer = ask(app, "What is the greeting banner of the intranet portal?")
    hit = next(h for h in answer.passages if "portal" in h.document.title.lower() or "<script>" in h.text)
    assert "<script>" in hit.text  # the stored text really holds the markup
    marker = next(c.marker for c in answer.citations if c.chunk_id == hit.chunk_id)
    label = app.button(key=f"cite-0-{marker}").label
    assert r"\*\*intranet\*\*" in label and r"\!\[logo\]" in label  # a Markdown title is escaped, not rendered
    app.button(key=f"cite-0-{marker}").click().run()
    shown = "\n".join(htmls(app))
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in shown
    assert "<script" not in shown and "<img" not in shown and "<a href" not in shown


def test_settings_change_takes_effect(app):
    app.switch_page("views/settings.py").run()
    app.selectbox(key="set_generator").set_value("extractive").run()
    app.slider(key="set_k").set_value(3).run()
    assert not app.exception, app.exception
    app.switch_page("views/ask.py").run()
    answer = ask(app, "In which state is Galaxy Gaming incorporated?")
    assert answer.generator == "extractive"
    assert len(answer.passages) <= 3
    assert any("extractive" in h for h in htmls(app))


def test_sampling_settings_reach_the_generator(app):
    app.switch_page("views/settings.py").run()
    app.number_input(key="set_sculpt_max_steps").set_value(2).run()
    app.switch_page("views/ask.py").run()
    answer = ask(app, "How many laptops were delivered on January 23, 2023?")
    assert answer.generator == "sculpt" and answer.trace.steps <= 2


def test_a_document_filter_keeps_answers_to_one_company(app):
    app.switch_page("views/settings.py").run()
    box = app.multiselect(key="set_filter_entity")
    assert "Galaxy Gaming, Inc." in box.options  # what the 10-K states on its cover page
    box.set_value(["Galaxy Gaming, Inc."]).run()
    app.switch_page("views/ask.py").run()
    answer = ask(app, "What do the license terms say about patents?")
    assert answer.passages and all(h.document.source_uri.endswith("example-10k-1p.html") for h in answer.passages)


def test_narrowed_groups_hide_documents(app):
    answer = ask(app, "When does the merger with Quillfeather close?")
    assert any("Quillfeather" in h.text for h in answer.passages)  # the local user is in hr
    app.switch_page("views/settings.py").run()
    app.multiselect(key="set_groups").set_value(["public"]).run()
    app.switch_page("views/ask.py").run()
    answer = ask(app, "When does the merger with Quillfeather close?")
    assert not any("Quillfeather" in h.text for h in answer.passages)
    app.switch_page("views/documents.py").run()
    titles = [str(t) for t in frame(app, "ingested")["title"]]
    assert titles and not any("Board minutes" in t for t in titles)


def test_upload_ingests_and_reports(app, app_env):
    app.switch_page("views/documents.py").run()
    box = app.file_uploader[0]
    box.upload("office-hours.txt", b"The help desk is open from 7:30 to 18:00 on weekdays, and closed on public holidays.",
               "text/plain")
    box.upload("blank.txt", b"   \n  ", "text/plain")
    app.run()
    app.button(key="ingest_uploads").click().run()
    assert not app.exception, app.exception
    report = app.session_state["last_ingest"]
    assert report.ingested == 1 and report.rejected == 1
    assert [o.reason for o in report.rejections()] == ["empty"]
    outcomes = frame(app, "status")
    assert set(outcomes["status"]) == {"ingested", "rejected"}
    files = [str(f) for f in frame(app, "ingested")["file"]]
    assert "office-hours.txt" in files

    app.switch_page("views/ask.py").run()
    answer = ask(app, "When is the help desk open?")
    assert any("help desk" in c.quote for c in answer.citations)


def test_folder_ingest_reports_a_missing_folder_and_ingests_a_real_one(app, app_env):
    app.switch_page("views/documents.py").run()
    app.text_input(key="doc_folder").input(str(app_env["base"] / "no-such-folder")).run()
    app.button(key="ingest_folder").click().run()
    assert any("There is no folder" in e.value for e in app.error)
    folder = app_env["base"] / "handbook"
    folder.mkdir(exist_ok=True)
    (folder / "canteen.txt").write_text("The staff canteen serves lunch from 11:45 to 14:00, Monday to Friday.")
    app.text_input(key="doc_folder").input(str(folder)).run()
    app.button(key="ingest_folder").click().run()
    assert not app.exception and not app.error
    assert app.session_state["last_ingest"].ingested == 1
    assert "canteen.txt" in [str(f) for f in frame(app, "ingested")["file"]]


def test_delete_removes_a_document_from_retrieval(app, app_env):
    app.switch_page("views/documents.py").run()
    app.file_uploader[0].upload("parking.txt", b"Staff parking permits cost 35 euros a month and are sold at reception.",
                                "text/plain")
    app.run()
    app.button(key="ingest_uploads").click().run()
    from pipeline.store import Store

    doc = next(d for d in Store(Settings(store_dir=app_env["store"])).documents() if d.source_uri.endswith("parking.txt"))
    app.selectbox(key="doc_delete_pick").set_value(doc.id).run()
    app.checkbox(key="doc_delete_sure").check().run()
    app.button(key="doc_delete").click().run()
    assert not app.exception, app.exception
    assert any("Deleted" in s.value for s in app.success)
    assert "parking.txt" not in [str(f) for f in frame(app, "ingested")["file"]]
    app.switch_page("views/ask.py").run()
    answer = ask(app, "How much does a staff parking permit cost?")
    assert not any("parking" in h.text for h in answer.passages)


def test_evaluate_runs_and_opens_a_report(app, app_env):
    base = app_env["base"]
    corpus = base / "eval-corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "tides.txt").write_text("High tide at Port Erin is at 06:40 on Mondays. Low tide follows at 12:55.")
    (corpus / "ferry.txt").write_text("The ferry to Calf Island leaves from the south pier every two hours.")
    questions = base / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"question": "When is high tide at Port Erin on Mondays?", "gold_answer": "06:40", "gold_sources": ["tides.txt"]},
        {"question": "Where does the ferry to Calf Island leave from?", "gold_answer": "the south pier",
         "gold_sources": ["ferry.txt"]},
    ]))
    app.switch_page("views/evaluate.py").run()
    app.radio(key="eval_mode").set_value("Run an evaluation").run()
    app.selectbox(key="eval_dataset").select("your own questions (.jsonl/.csv on the server)").run()
    app.text_input(key="eval_file").input(str(questions)).run()
    app.text_input(key="eval_corpus").input(str(corpus)).run()
    app.multiselect(key="eval_generators").set_value(["extractive"]).run()
    app.button(key="eval_run").click().run()
    assert not app.exception, app.exception
    summary = frame(app, "generator")
    assert list(summary["generator"]) == ["extractive"] and int(summary["n"][0]) == 2
    plot = app.get("image")  # the quality-vs-latency plot
    assert plot and "median latency" in plot[0].captions[0]
    assert (base / "eval" / "questions" / "report.html").is_file()


def test_sessions_share_one_set_of_models(app, app_env):
    from streamlit.testing.v1 import AppTest

    from app.ui.common import services

    ask(app, "In which state is Galaxy Gaming incorporated?")
    svc = services()
    gen = svc.rag.generator()[0]
    other = AppTest.from_file(str(app_env["main"]), default_timeout=300)
    other.run()
    ask(other, "In which state is Galaxy Gaming incorporated?")
    assert services() is svc and svc.rag.generator()[0] is gen  # a second session loaded nothing again


# -- access rules, without a browser -----------------------------------------------------------------------
def test_groups_come_from_the_proxy_header_when_configured():
    secret = "s" * 32
    settings = Settings(app=AppSettings(groups_header="X-Forwarded-Groups", user_header="X-Forwarded-User",
                                        proxy_secret=secret, editor_groups=("admins",)))
    proof = {"X-Sculptrag-Proxy-Secret": secret}
    user = resolve_user(settings, {"x-forwarded-groups": "hr, legal", "X-Forwarded-User": "ana", **proof})
    assert user.groups == ("hr", "legal") and user.name == "ana" and not user.editor
    assert resolve_user(settings, proof).groups == ()  # no groups named: reads nothing
    assert resolve_user(settings, {"X-Forwarded-Groups": "admins", **proof}).editor
    assert resolve_user(settings, {"X-Forwarded-Groups": "admins"}).groups == ()  # not through the proxy: nothing
    assert not user.allowed_folder("/etc", ())  # server folders only under folder_roots


def test_local_user_and_folder_roots(tmp_path):
    settings = Settings(app=AppSettings(user_groups=("public", "hr"), folder_roots=(tmp_path,)))
    user = resolve_user(settings, {"X-Forwarded-Groups": "admins"})  # no header configured: ignored
    assert user.groups == ("public", "hr") and user.editor and user.source == "settings"
    assert user.allowed_folder(tmp_path / "sub", settings.app.folder_roots)
    assert not user.allowed_folder(tmp_path.parent, settings.app.folder_roots)
    assert not user.allowed_folder(tmp_path / ".." / "x", settings.app.folder_roots)
    prefs = Prefs.defaults(settings, user)
    assert prefs.groups == ("public", "hr") and prefs.generator == settings.generator


def test_passage_html_escapes_and_highlights():
    text = "a <b>bold</b> claim & more"
    out = passage_html(text, [(2, 13)])
    assert out == '<div class="sr-passage">a <mark>&lt;b&gt;bold&lt;/b&gt;</mark> claim &amp; more</div>'


def test_written_words_are_set_apart_from_quotes():
    sources = {1: "In 2021 Medvedev won the men's title.", 2: "Raducanu won the <women's> title."}
    text = "Medvedev won the men's title [1] and Raducanu won the <women's> title. [2]"
    spans = written_spans(text, sources)
    assert [text[a:b] for a, b in spans] == ["and"]  # the quotes are verbatim: only the joining word is written
    out = answer_html(text, spans)
    assert '<em class="sr-written" title="written by the generator, not quoted">and</em>' in out
    assert "&lt;women&#x27;s&gt;" in out and out.count('class="sr-cite"') == 2
    lost = "Medvedev lost [1]."
    assert [lost[a:b] for a, b in written_spans(lost, sources)] == ["Medvedev lost"]  # not a quote: written
    assert written_spans("The title. [1]. Raducanu won [2].", {1: "The title.", 2: "Raducanu won"}) == []


def test_a_failed_warm_up_is_tried_again_and_its_error_goes_once_loading_works(tmp_path, embedder):
    """The page shows a failed warm-up and asks for another try; once a try loads, the error is gone (a
    transient failure does not stay on every page until the app restarts)."""
    from app.ui.services import Services
    from pipeline import Store, ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("The night bus leaves the depot at 23:40.\n")
    settings = Settings(store_dir=tmp_path / "store", generator="extractive")
    ingest([docs], settings, groups=["public"], embedder=embedder)
    store = Store(settings)
    real = store.get_state("embedding_model")
    store.set_state(embedding_model="some-other-model")  # the embedder will not match: loading fails
    svc = Services(settings)
    for _ in range(600):
        if svc.warm_error or svc.ready.is_set():
            break
        time.sleep(0.1)
    assert svc.warm_error and "some-other-model" in svc.warm_error and not svc.ready.is_set()
    store.set_state(embedding_model=real)
    svc.warm_up_again()
    assert svc.ready.wait(60) and svc.warm_error is None
