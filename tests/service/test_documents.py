"""The document routes over a real `sculptrag serve`: list, upload, download, delete, ingest a server folder;
editors only where it changes the store; sizes and groups checked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(300)

NOTE = b"The library lends projectors to staff for up to three days at a time.\n"


def test_upload_list_download_ask_delete(client):
    editor = client("editor")
    r = editor.post("/v1/documents", files=[("files", ("projectors.txt", NOTE, "text/plain"))], data={"groups": "public"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ingested"] == 1 and report["outcomes"][0]["path"] == "projectors.txt"  # no server path
    doc = next(d for d in client("reader").get("/v1/documents").json()["documents"] if d["file_name"] == "projectors.txt")
    assert doc["groups"] == ["public"] and doc["chunks"] >= 1

    f = client("reader").get(f"/v1/documents/{doc['id']}/file")
    assert f.status_code == 200 and f.content == NOTE
    assert "projectors.txt" in f.headers["content-disposition"]
    answer = client("reader").post("/v1/ask", json={"question": "For how many days does the library lend projectors to staff?",
                                                    "generator": "extractive"}).json()
    assert "three days" in answer["text"]

    assert client("reader").delete(f"/v1/documents/{doc['id']}").status_code == 403  # readers do not delete
    d = editor.delete(f"/v1/documents/{doc['id']}")
    assert d.status_code == 200 and d.json()["chunks_removed"] >= 1
    assert doc["id"] not in {x["id"] for x in editor.get("/v1/documents").json()["documents"]}
    assert editor.get(f"/v1/documents/{doc['id']}/file").status_code == 404


def test_uploads_are_for_editors_with_their_own_groups_and_bounded(client):
    files = [("files", ("note.txt", NOTE, "text/plain"))]
    r = client("reader").post("/v1/documents", files=files, data={"groups": "public"})
    assert r.status_code == 403 and "editors" in r.json()["error"]["message"]
    r = client("editor").post("/v1/documents", files=files, data={"groups": "hr"})
    assert r.status_code == 403 and "only groups you hold" in r.json()["error"]["message"]
    big = [("files", ("big.txt", b"word " * 5000, "text/plain"))]  # 25,000 bytes > max_upload_bytes (20,000)
    r = client("editor").post("/v1/documents", files=big, data={"groups": "public"})
    assert r.status_code == 413 and "MAX_UPLOAD_BYTES" in r.json()["error"]["message"]
    r = client("editor").post("/v1/documents", files=files)
    assert r.status_code == 422 and "groups" in r.json()["error"]["message"]


def test_ingest_a_server_folder_inside_the_roots_only(client, service):
    editor = client("editor")
    r = editor.post("/v1/ingest", json={"paths": ["/etc"], "groups": ["public"]})
    assert r.status_code == 403 and "FOLDER_ROOTS" in r.json()["error"]["message"]
    r = client("reader").post("/v1/ingest", json={"paths": [str(service["roots"])], "groups": ["public"]})
    assert r.status_code == 403
    r = editor.post("/v1/ingest", json={"paths": [str(service["roots"] / "handbook")], "groups": ["public"]})
    assert r.status_code == 200, r.text
    assert r.json()["ingested"] + r.json()["unchanged"] == 1
    answer = client("reader").post("/v1/ask", json={"question": "How many days of paid holiday do staff get?",
                                                    "generator": "extractive"}).json()
    assert "twenty-five days" in answer["text"]
    assert "sculptrag_ingest_files_total" in editor.get("/metrics").text
