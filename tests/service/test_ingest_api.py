"""`sculptrag ingest --api URL`: a folder uploaded to a running service by the CLI, with what a local ingest
would refuse refused before anything leaves this machine; and the upload route's file names, folders kept,
never outside the upload folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from app.client import ServiceClient, upload_name
from app.ui.services import group_key, upload_steps

pytestmark = pytest.mark.timeout(300)

KEY_BLOCK = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
             "-----END OPENSSH PRIVATE KEY-----\n")


def sculptrag(*args: str, **env: str) -> subprocess.CompletedProcess:
    exe = shutil.which("sculptrag")
    cmd = ([exe] if exe else [sys.executable, "-m", "app.cli"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def count(report: str, row: str) -> int:
    """A count from the printed ingest report's table."""
    return int(re.search(rf"│ {row} +│ +(\d+) │", report).group(1))


def test_upload_steps_stay_inside_and_keep_folders():
    assert upload_steps("site/guide/index.html") == ["site", "guide", "index.html"]
    assert upload_steps("../../etc/passwd") == ["etc", "passwd"]
    assert upload_steps("..\\..\\boot.ini") == ["boot.ini"]
    assert upload_steps("/abs/./x/../y.txt") == ["abs", "x", "y.txt"]
    assert upload_steps("a<b>|c.txt") == ["a_b_c.txt"]
    assert upload_steps("") == upload_steps("../..") == ["upload"]
    assert len(upload_steps("/".join(["d"] * 40) + "/f.txt")) == 16 and upload_steps("/".join(["d"] * 40) + "/f.txt")[-1] == "f.txt"


def test_upload_name_is_the_path_under_the_outermost_folder_given(tmp_path):
    outer = tmp_path / "docs"
    inner = outer / "guide"
    assert upload_name(inner / "a.txt", [outer, inner]) == "docs/guide/a.txt"
    assert upload_name(inner / "a.txt", [inner]) == "guide/a.txt"
    assert upload_name(tmp_path / "b.txt", [outer, tmp_path / "b.txt"]) == "b.txt"


def test_cli_uploads_a_folder_to_the_service(service, tmp_path, client):
    folder = tmp_path / "binders"
    (folder / "north").mkdir(parents=True)
    (folder / "south").mkdir()
    (folder / "north" / "notes.txt").write_text("The north wing's binders are returned every Thursday by noon.\n")
    (folder / "south" / "notes.txt").write_text("The south wing keeps its binders in the archive room on floor two.\n")
    (folder / ".hidden.txt").write_text("a hidden note\n")
    (folder / "deploy.txt").write_text("the deploy key\n" + KEY_BLOCK)
    (folder / "big.txt").write_text("word " * 5000)  # 25,000 bytes: over the service's 20,000
    editor = service["keys"]["editor"]

    ran = sculptrag("ingest", str(folder), "--api", service["url"], "--groups", "public", SCULPTRAG_API_KEY=editor)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert service["url"] in ran.stdout and count(ran.stdout, "ingested") == 2
    assert count(ran.stdout, "rejected") == 2 and count(ran.stdout, "skipped") == 1
    assert "rejected by reason: credentials: 1, too large: 1" in ran.stdout and "hidden: 1" in ran.stdout

    documents = client("reader").get("/v1/documents").json()["documents"]
    uploaded = [d for d in documents if d["file_name"] == "notes.txt"]
    assert len(uploaded) == 2  # the same name in two folders: two documents
    uploads = (service["store"] / "uploads").resolve()
    saved = {p.relative_to(uploads).as_posix() for p in uploads.rglob("*") if p.is_file()}
    g = f"g-{group_key(['public'])}"
    assert {f"{g}/binders/north/notes.txt", f"{g}/binders/south/notes.txt"} <= saved
    assert not any(name.endswith(("deploy.txt", "big.txt", "hidden.txt")) for name in saved)  # never sent

    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in uploads.rglob("*.txt")}
    again = sculptrag("ingest", str(folder), "--api", service["url"], "--groups", "public", SCULPTRAG_API_KEY=editor)
    assert again.returncode == 0 and count(again.stdout, "unchanged") == 2 and count(again.stdout, "ingested") == 0
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in uploads.rglob("*.txt")} == kept  # not sent again
    (folder / "south" / "notes.txt").write_text("The south wing keeps its binders in the archive room on floor three.\n")
    changed = sculptrag("ingest", str(folder), "--api", service["url"], "--groups", "public", SCULPTRAG_API_KEY=editor)
    assert count(changed.stdout, "unchanged") == 1 and count(changed.stdout, "updated") == 1
    answer = client("reader").post("/v1/ask", json={"question": "Where does the south wing keep its binders?",
                                                    "generator": "extractive"}).json()
    assert "archive room on floor three" in answer["text"]

    report = ServiceClient(service["url"], editor).upload_paths([str(folder / "north")], ["public"])
    (outcome,) = report.outcomes  # another root, another name: the same bytes as a stored document
    assert (outcome.path, outcome.reason) == ("north/notes.txt", "duplicate content")
    assert outcome.detail == "same bytes as binders/north/notes.txt"  # not where the server keeps it
    for d in client("editor").get("/v1/documents").json()["documents"]:
        if d["file_name"] == "notes.txt":
            client("editor").delete(f"/v1/documents/{d['id']}")


def test_cli_ingest_api_refuses_what_the_key_may_not_do(service, tmp_path):
    note = tmp_path / "memo.txt"
    note.write_text("The visitors' car park closes at six in the evening.\n")
    url = service["url"]
    as_reader = sculptrag("ingest", str(note), "--api", url, SCULPTRAG_API_KEY=service["keys"]["reader"])
    assert as_reader.returncode == 2 and "403" in as_reader.stderr and "editor" in as_reader.stderr
    other_groups = sculptrag("ingest", str(note), "--api", url, "--groups", "hr", SCULPTRAG_API_KEY=service["keys"]["editor"])
    assert other_groups.returncode == 2 and "only groups you hold" in other_groups.stderr
    no_key = sculptrag("ingest", str(note), "--api", url)
    assert no_key.returncode == 2 and "401" in no_key.stderr
    prune = sculptrag("ingest", str(note), "--api", url, "--prune", SCULPTRAG_API_KEY=service["keys"]["editor"])
    assert prune.returncode == 2 and "--on-server" in prune.stderr
    assert sculptrag("ingest", str(note), "--on-server").returncode == 2


def test_cli_ingest_api_on_server_folders(service):
    ran = sculptrag("ingest", str(service["roots"] / "handbook"), "--api", service["url"], "--on-server",
                    "--groups", "public", SCULPTRAG_API_KEY=service["keys"]["editor"])
    assert ran.returncode == 0, ran.stderr
    assert count(ran.stdout, "ingested") + count(ran.stdout, "unchanged") == 1
    outside = sculptrag("ingest", "/etc", "--api", service["url"], "--on-server", SCULPTRAG_API_KEY=service["keys"]["editor"])
    assert outside.returncode == 2 and "FOLDER_ROOTS" in outside.stderr


def test_upload_paths_in_several_requests_make_one_report(service, client, tmp_path, monkeypatch):
    import app.client

    monkeypatch.setattr(app.client, "UPLOAD_BATCH_FILES", 1)
    folder = tmp_path / "rota"
    folder.mkdir()
    for day, task in (("monday", "waters the plants"), ("tuesday", "empties the recycling"), ("wednesday", "orders milk")):
        (folder / f"{day}.txt").write_text(f"On {day} the office junior {task} before ten.\n")
    (folder / ".draft.txt").write_text("hidden\n")
    seen: list[tuple[int, int, str]] = []
    report = ServiceClient(service["url"], service["keys"]["editor"]).upload_paths(
        [str(folder), str(tmp_path / "missing.txt")], ["public"], progress=lambda *a: seen.append(a))
    assert (report.files_seen, report.ingested, report.rejected, report.skipped) == (5, 3, 1, 1)
    assert sorted(o.path for o in report.outcomes if o.status == "ingested") == [
        "rota/monday.txt", "rota/tuesday.txt", "rota/wednesday.txt"]
    assert [done for done, _, _ in seen] == [1, 2, 3] and {total for _, total, _ in seen} == {3}
    for d in client("editor").get("/v1/documents").json()["documents"]:
        if d["file_name"] in {"monday.txt", "tuesday.txt", "wednesday.txt"}:
            client("editor").delete(f"/v1/documents/{d['id']}")


def test_the_unchanged_question_is_for_editors_and_their_groups(client):
    body = {"groups": ["public"], "files": [{"name": "binders/north/notes.txt", "sha256": "0" * 64}]}
    assert client("reader").post("/v1/documents/unchanged", json=body).status_code == 403
    assert client("editor").post("/v1/documents/unchanged", json={**body, "groups": ["hr"]}).status_code == 403
    r = client("editor").post("/v1/documents/unchanged", json=body)
    assert r.status_code == 200 and r.json() == {"unchanged": []}  # no such bytes stored under that name
    bad = client("editor").post("/v1/documents/unchanged", json={**body, "files": [{"name": "x", "sha256": "xyz"}]})
    assert bad.status_code == 422


def test_the_cli_against_a_service_loads_no_pipeline(service, tmp_path, client):
    """`ask --api` and `ingest --api` are clients: no retrieval, parsing or embedding code is imported."""
    note = tmp_path / "kettle.txt"
    note.write_text("The kitchen kettle is descaled every second Friday.\n")
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from app.cli import cli\n"
        f"for args in (['ask', 'When is the kettle descaled?', '--api', {service['url']!r}, '--generator', 'extractive'],\n"
        f"             ['ingest', {str(note)!r}, '--api', {service['url']!r}]):\n"
        "    result = CliRunner().invoke(cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "heavy = {'pipeline.rag', 'pipeline.retrieve', 'pipeline.ingestion', 'pipeline.embedding', 'ingest.parse',\n"
        "         'generator.sculpt', 'unstructured', 'onnxruntime', 'torch', 'faiss'}\n"
        "print(sorted(heavy & set(sys.modules)))\n")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SCULPTRAG_API_KEY": service["keys"]["editor"]})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "[]"
    for d in client("editor").get("/v1/documents").json()["documents"]:
        if d["file_name"] == "kettle.txt":
            client("editor").delete(f"/v1/documents/{d['id']}")
