"""The app and the CLI as clients of a running service (`sculptrag app --api URL`): the Streamlit pages,
driven by AppTest, ask, list, upload and delete through the real server, and see only what the key reads.
The client itself (app/client.py): streamed states then the answer with its passages, errors as ServiceError."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.client import ServiceClient, ServiceError
from pipeline.types import Answer, DenoiseState

from .conftest import HR_TITLE, SECRET

pytestmark = pytest.mark.timeout(300)
MAIN = Path(__file__).resolve().parents[2] / "app" / "ui" / "main.py"


@pytest.fixture
def remote_app(service, monkeypatch, tmp_path):
    """An AppTest session of the app in API mode with the named key (no local store: the folder is empty)."""
    from streamlit.testing.v1 import AppTest

    def open_app(key_name: str, generator: str = "extractive"):
        monkeypatch.setenv("SCULPTRAG_API_URL", service["url"])
        monkeypatch.setenv("SCULPTRAG_API_KEY", service["keys"][key_name])
        monkeypatch.setenv("SCULPTRAG_STORE_DIR", str(tmp_path / "no-store-here"))
        monkeypatch.setenv("SCULPTRAG_GENERATOR", generator)
        at = AppTest.from_file(str(MAIN), default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        return at

    return open_app


def _ask(at, question: str) -> Answer:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at.session_state["chat"][-1]["answer"]


def _page(at) -> str:
    return "\n".join([h.value for h in at.get("html")] + [m.value for m in at.markdown] +
                     [str(d.value) for d in at.dataframe])


def test_the_app_asks_the_service_and_opens_a_cited_source(remote_app, tmp_path):
    at = remote_app("reader", generator="sculpt")
    assert "reader" in _page(at) and "groups: public" in _page(at)  # the user is the key's holder
    answer = _ask(at, "When does the canteen serve soup?")
    assert "Fridays" in answer.text and answer.citations
    assert answer.generator == "sculpt" and answer.passages  # streamed states, then the answer with its passages
    cite = answer.citations[0]
    at.button(key=f"cite-0-{cite.marker}").click().run()
    assert not at.exception, at.exception
    source = [h.value for h in at.get("html") if 'class="sr-passage"' in h.value]
    assert len(source) == 1 and "soup" in source[0]
    assert at.download_button(key=f"file-0-{cite.marker}").label == "Open the file"
    assert not (tmp_path / "no-store-here").exists()  # nothing local was opened or made


def test_a_key_without_hr_never_sees_hr_documents_in_the_app(remote_app):
    at = remote_app("reader")
    answer = _ask(at, "What is the bonus code word in the salary review?")
    assert SECRET not in answer.text + "".join(p.text for p in answer.passages)
    assert SECRET not in _page(at)
    at.switch_page("views/documents.py").run()
    assert not at.exception, at.exception
    listed = _page(at)
    assert "canteen" in listed and HR_TITLE not in listed
    assert not at.file_uploader  # a reader key may not add documents

    hr = remote_app("hr")
    answer = _ask(hr, "What is the bonus code word in the salary review?")
    assert SECRET in "".join(p.text for p in answer.passages)
    hr.switch_page("views/documents.py").run()
    assert HR_TITLE in _page(hr)


def test_an_editor_key_uploads_and_deletes_through_the_app(remote_app, service):
    at = remote_app("editor")
    at.switch_page("views/documents.py").run()
    box = at.file_uploader[0]
    box.upload("visitors.txt", b"Visitors sign in at the north gate and wear a yellow badge.", "text/plain")
    at.run()
    at.button(key="ingest_uploads").click().run()
    assert not at.exception, at.exception
    report = at.session_state["last_ingest"]
    assert report.ingested == 1 and report.outcomes[0].path == "visitors.txt"
    assert "visitors" in _page(at)

    client = ServiceClient(service["url"], service["keys"]["editor"])
    doc = next(d for d in client.documents() if d["file_name"] == "visitors.txt")
    at.selectbox(key="doc_delete_pick").set_value(doc["id"]).run()
    at.checkbox(key="doc_delete_sure").check().run()
    at.button(key="doc_delete").click().run()
    assert not at.exception, at.exception
    assert all(d["file_name"] != "visitors.txt" for d in client.documents())


def test_the_evaluate_page_says_where_evaluations_run(remote_app):
    at = remote_app("reader")
    at.switch_page("views/evaluate.py").run()
    assert not at.exception, at.exception
    assert any("sculptrag eval" in i.value for i in at.info)


def test_the_client_streams_states_then_the_answer_and_raises_service_errors(service):
    client = ServiceClient(service["url"], service["keys"]["reader"])
    items = list(client.stream("When are parking permits renewed?", generator="sculpt", k=3))
    states, answer = items[:-1], items[-1]
    assert states and all(isinstance(s, DenoiseState) for s in states)
    assert isinstance(answer, Answer) and "January" in answer.text and len(answer.passages) <= 3
    assert client.me()["groups"] == ["public"] and "sculpt" in client.generators()

    with pytest.raises(ServiceError) as e:
        client.ask("When are parking permits renewed?", groups=["hr"])  # narrowing may not widen
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        ServiceClient(service["url"], "sr-not-a-key").documents()
    assert e.value.status == 401 and "not valid" in str(e.value)
    with pytest.raises(ServiceError) as e:
        client.document_file(service["hr_id"])  # exists, but not for this key: as if it did not
    assert e.value.status == 404
    with pytest.raises(ServiceError) as e:
        ServiceClient("http://127.0.0.1:9").me()
    assert e.value.status == 0 and "cannot reach" in str(e.value)
