"""Attacks on the write path of access control and on ingestion's inputs: each finding of the security
review, run as the attacker or the unlucky operator ran it, asserting that nothing of a forbidden document
shows anywhere in the output and that groups change only when someone allowed says so."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from pipeline import Store, ingest
from pipeline.errors import ConfigError, StoreError
from pipeline.groups import parse_groups
from pipeline.rag import RagPipeline

from .conftest import SECRET

OPENSSH_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               "-----END OPENSSH PRIVATE KEY-----\n")


def everything_public_sees(settings, embedder, question="What is the bonus code word in the salary review?") -> str:
    """All a public caller can get: the answer, its citations and the passages, as one string."""
    answer = RagPipeline(settings).ask(question, groups=["public"], generator="extractive")
    return answer.model_dump_json()


def groups_of(settings) -> dict[str, list[str]]:
    return {Path(d.source_uri).name: d.group_names for d in Store(settings).documents()}


# -- critical: re-ingest must not change groups ------------------------------------------------------------
def test_reingest_without_groups_keeps_an_hr_document_hr(corpus, settings, embedder):
    ingest([corpus / "public"], settings, embedder=embedder)
    ingest([corpus / "hr"], settings, groups=["hr"], embedder=embedder)
    report = ingest([corpus], settings, embedder=embedder)  # the operator forgets --groups
    assert report.kept_groups == 1 and report.updated == 0
    assert groups_of(settings)["salaries.txt"] == ["hr"]
    assert SECRET not in everything_public_sees(settings, embedder)
    # the file changes: its chunks are replaced, its groups are still its own
    (corpus / "hr" / "salaries.txt").write_text(f"Updated review. The bonus code word is still {SECRET}.\n")
    report = ingest([corpus], settings, embedder=embedder)
    assert report.updated == 1 and groups_of(settings)["salaries.txt"] == ["hr"]
    assert SECRET not in everything_public_sees(settings, embedder)


def test_cli_reingest_keeps_groups_and_set_groups_changes_them(corpus, settings, embedder, monkeypatch):
    monkeypatch.setenv("SCULPTRAG_INGEST__PARSE_WORKERS", "0")
    store = str(settings.store_dir)
    run = CliRunner().invoke
    assert run(cli, ["ingest", str(corpus / "hr"), "--store", store, "--groups", "hr"]).exit_code == 0
    result = run(cli, ["ingest", str(corpus), "--store", store])
    assert result.exit_code == 0, result.output
    assert "kept their own groups" in result.output
    assert groups_of(settings)["salaries.txt"] == ["hr"]
    asked = run(cli, ["ask", "What is the bonus code word?", "--store", store, "--generator", "extractive", "--json"])
    assert asked.exit_code == 0 and SECRET not in asked.output
    # only an explicit --set-groups changes them; a comma list is two groups, as everywhere
    assert run(cli, ["ingest", str(corpus / "hr"), "--store", store, "--set-groups"]).exit_code == 2
    result = run(cli, ["ingest", str(corpus / "hr"), "--store", store, "--groups", "hr,finance", "--set-groups"])
    assert result.exit_code == 0, result.output
    assert groups_of(settings)["salaries.txt"] == ["finance", "hr"]


def test_empty_or_bad_groups_are_an_error_not_public(corpus, settings, embedder):
    for bad in ([], "", " , ", ["..", "hr"], ["<b>x</b>"], ["hr;finance"]):
        with pytest.raises(ConfigError):
            ingest([corpus / "hr"], settings, groups=bad, embedder=embedder)
    assert Store(settings).counts()["documents"] == 0


def test_one_rule_for_group_lists():
    assert parse_groups("hr") == ("hr",)  # one group, never the letters h and r
    assert parse_groups("hr,finance") == parse_groups(["finance", "hr"]) == parse_groups(["hr, finance"]) == ("finance", "hr")
    assert parse_groups(None, allow_empty=True) == ()
    for bad in ("..", "../x", "a\nb", "[/x]", "x" * 200):
        with pytest.raises(ConfigError):
            parse_groups(bad)


def test_ask_with_a_string_group_is_that_group(corpus, settings, embedder):
    ingest([corpus / "hr"], settings, groups=["hr"], embedder=embedder)
    ingest([corpus / "public"], settings, groups=["h", "r"], embedder=embedder)  # groups named like the letters
    answer = RagPipeline(settings).ask("bonus code word", groups="hr", generator="extractive")
    assert answer.passages and all("salar" in p.text.lower() for p in answer.passages)


# -- a caller acting for a person (app, service) --------------------------------------------------------------
def test_a_caller_cannot_regroup_update_or_prune_what_they_cannot_read(corpus, settings, embedder):
    ingest([corpus / "hr"], settings, groups=["hr"], embedder=embedder)
    # a public editor ingests the whole folder, asking to set groups: the hr file is not theirs to change
    report = ingest([corpus], settings, groups=["public"], set_groups=True, caller_groups=["public"], embedder=embedder)
    (refused,) = [o for o in report.outcomes if o.path.endswith("salaries.txt")]
    assert refused.status == "rejected" and refused.reason == "not permitted" and "hr" not in refused.detail
    assert groups_of(settings)["salaries.txt"] == ["hr"]
    # nor overwrite it with new content, nor prune it away
    (corpus / "hr" / "salaries.txt").write_text("Nothing to see here, all salaries are public now.\n")
    ingest([corpus], settings, groups=["public"], caller_groups=["public"], embedder=embedder)
    (corpus / "hr" / "salaries.txt").unlink()
    report = ingest([corpus], settings, groups=["public"], caller_groups=["public"], prune=True, embedder=embedder)
    assert report.removed == 0
    (doc,) = [d for d in Store(settings).documents() if d.source_uri.endswith("salaries.txt")]
    assert doc.group_names == ["hr"] and SECRET in " ".join(c.text for c in Store(settings).chunks(range(1, 100)))
    # giving groups one does not hold is refused outright
    with pytest.raises(ConfigError, match="only groups you belong to"):
        ingest([corpus / "public"], settings, groups=["hr"], caller_groups=["public"], embedder=embedder)
    # someone who reads it may change it
    ingest([corpus], settings, groups=["hr", "legal"], set_groups=True, caller_groups=["hr", "legal"], prune=True, embedder=embedder)
    assert "salaries.txt" not in groups_of(settings)


def test_duplicates_and_quarantine_say_nothing_of_other_groups(corpus, settings, embedder):
    ingest([corpus / "hr"], settings, groups=["hr"], embedder=embedder)
    (corpus / "hr" / "empty.txt").write_text("   \n")
    ingest([corpus / "hr"], settings, groups=["hr"], embedder=embedder)
    upload = corpus / "public" / "leaked-copy.txt"
    upload.write_bytes((corpus / "hr" / "salaries.txt").read_bytes())  # same bytes, guessed by a public user
    report = ingest([upload], settings, groups=["public"], caller_groups=["public"], embedder=embedder)
    said = " ".join(f"{o.status} {o.reason} {o.detail}" for o in report.outcomes)
    assert "salaries" not in said and "duplicate" not in said and report.ingested == 1  # their own copy, readable by them
    store = Store(settings)
    assert [Path(q.source_uri).name for q in store.quarantined(["public"])] == []
    assert [Path(q.source_uri).name for q in store.quarantined(["hr"])] == ["empty.txt"]
    assert [Path(q.source_uri).name for q in store.quarantined()] == ["empty.txt"]  # the operator sees all
    # within one group a duplicate is still a duplicate, and its reader may be told which
    twin = corpus / "hr" / "twin.txt"
    twin.write_bytes((corpus / "hr" / "salaries.txt").read_bytes())
    report = ingest([twin], settings, groups=["hr"], caller_groups=["hr"], embedder=embedder)
    (rej,) = report.rejections()
    assert rej.reason == "duplicate content" and "salaries.txt" in rej.detail


# -- eval --------------------------------------------------------------------------------------------------------
def test_eval_never_writes_to_a_store_it_did_not_make(corpus, settings, embedder, tmp_path):
    from evaluation import EvalRun, load_dataset, run_eval

    ingest([corpus / "hr"], settings, groups=["hr"], embedder=embedder)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "What is the bonus code word?", "gold_answer": SECRET}) + "\n")
    ds = load_dataset(str(questions), corpus=corpus / "hr")
    with pytest.raises(ConfigError, match="not a store made by `sculptrag eval`"):
        run_eval(EvalRun(dataset=ds, generators=["extractive"], store_dir=settings.store_dir, settings=settings),
                 embedder=embedder)
    assert groups_of(settings)["salaries.txt"] == ["hr"]
    # its own store: documents get the groups the questions are asked with, and the report records them
    report = run_eval(EvalRun(dataset=ds, generators=["extractive"], store_dir=tmp_path / "eval-store",
                              settings=settings, groups=["public"]), embedder=embedder)
    assert report["config"]["groups"] == ["public"]
    report = run_eval(EvalRun(dataset=ds, generators=["extractive"], store_dir=tmp_path / "eval-store",
                              settings=settings, groups=["auditors"]),
                      embedder=embedder)  # the stored documents keep "public": this caller reads none of them
    assert report["config"]["groups"] == ["auditors"] and SECRET not in json.dumps(report["items"][0]["answers"])


# -- inputs distrusted -------------------------------------------------------------------------------------------
def test_links_out_of_the_folder_keys_and_credentials_are_refused(tmp_path, settings, embedder):
    folder = tmp_path / "share"
    (folder / "ssh").mkdir(parents=True)
    (folder / "ok.txt").write_text("The quarterly report is due on the fifth working day.\n")
    (folder / "passwd-link.txt").symlink_to("/etc/passwd")
    (folder / "etc-link").symlink_to("/etc", target_is_directory=True)
    (folder / "inside-link.txt").symlink_to(folder / "ok.txt")
    (folder / "ssh" / "id_ed25519").write_text(OPENSSH_KEY)
    (folder / "ssh" / "notes.txt").write_text("Server access notes.\n" + OPENSSH_KEY)  # key material by content
    (folder / ".env").write_text("DATABASE_PASSWORD=hunter2\n")
    (folder / "aws.txt").write_text("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = abc\n")
    (folder / ".hidden-notes.txt").write_text("Just some hidden notes of mine.\n")
    report = ingest([folder], settings, embedder=embedder)
    by_name = {Path(o.path).name: o for o in report.outcomes}
    assert report.ingested == 1 and [Path(d.source_uri).name for d in Store(settings).documents()] == ["ok.txt"]
    assert by_name["passwd-link.txt"].reason == by_name["etc-link"].reason == "not permitted"
    for name in ("id_ed25519", "notes.txt", ".env", "aws.txt"):
        assert by_name[name].status == "rejected" and by_name[name].reason == "credentials", name
    assert by_name[".hidden-notes.txt"].status == "skipped" and report.skipped >= 1
    assert "inside-link.txt" not in by_name or by_name["inside-link.txt"].status != "rejected"
    quarantined = {Path(q.source_uri).name: q.reason for q in Store(settings).quarantined()}
    assert quarantined["id_ed25519"] == "credentials" and quarantined["passwd-link.txt"] == "not permitted"
    text = " ".join(c.text for c in Store(settings).chunks(range(1, 100)))
    assert "root:" not in text and "PRIVATE KEY" not in text and "hunter2" not in text


def test_a_private_key_is_told_by_its_body_not_by_its_marker_alone(tmp_path):
    from ingest.discover import Refused, _read_regular, key_block

    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDc4QusgkahH9rL"  # a key's first line (64 characters)
    keys = {
        "pem": f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n",
        "openssh": OPENSSH_KEY,
        "encrypted, with headers": f"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,"
                                   f"932256E9ACCDC996\n\n{body}\n-----END RSA PRIVATE KEY-----\n",
        "indented in a manual": f"<pre>/etc/ssl/chain.pem:\n    -----BEGIN PRIVATE KEY-----\n    {body}\n</pre>",
        "in a JSON string": json.dumps({"key": f"-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----"}),
        "on one line": f"KEY=-----BEGIN PRIVATE KEY-----{body}-----END PRIVATE KEY-----",
        "in a web page": f"<p>-----BEGIN PRIVATE KEY-----<br>{body[:32]}<br/>{body[32:]}<br>-----END PRIVATE KEY-----</p>",
        "flattened": f"-----BEGIN PRIVATE KEY----- {body[:32]} {body[32:]} -----END PRIVATE KEY-----",
        "cut short": f"-----BEGIN PRIVATE KEY-----\n{body}\n...\n",
    }
    for name, text in keys.items():
        assert key_block(text.encode()), name
    not_keys = {  # manuals that name the marker, or show a block with a placeholder for the key
        "named": 'Keys in files starting with "<code>-----BEGIN PRIVATE KEY-----</code>",\nmust be converted first.',
        "named in prose": "A file that starts with -----BEGIN PRIVATE KEY----- holds the key data, which must be kept "
                          "away from every other user of the machine and from the backups too",
        "placeholder": "-----BEGIN RSA PRIVATE KEY-----\n... (private key in base64 encoding) ...\n"
                       "-----END RSA PRIVATE KEY-----\n",
        "too short for any key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
    }
    for name, text in not_keys.items():
        assert not key_block(text.encode()), name
    # a key whose marker and body fall in different blocks of the read is still found
    for at in range(0, 200, 7):
        path = tmp_path / f"notes-{at}.txt"
        path.write_text("x" * at + "Notes.\n" + keys["pem"] + "More notes.\n" * 50)
        with pytest.raises(Refused):
            _read_regular(path, block=64)
    path = tmp_path / "manual.txt"
    path.write_text(("Convert keys in files starting with -----BEGIN PRIVATE KEY----- first.\n" + "Text. " * 40) * 20)
    assert _read_regular(path, block=64)[0]


def test_a_cloud_secret_is_told_by_its_value_not_by_its_name_alone(tmp_path):
    from ingest.discover import Refused, _read_regular, cloud_secret

    secrets = {  # a credentials file, a shell profile, a JSON config, a note: each sets the secret to a value
        "credentials file": "[default]\naws_access_key_id = AKIAIOSFODNN7Q2ZX4KD\n"
                            "aws_secret_access_key = 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\n",
        "export": "export AWS_SECRET_ACCESS_KEY=Zk8s9d/7Hs6Ps0Qk2Lw+Yt5Rx3Vb1Nm4Jc0Ga2Ed\n",
        "json": '{"aws_secret_access_key": "Zk8s9d/7Hs6Ps0Qk2Lw+Yt5Rx3Vb1Nm4Jc0Ga2Ed"}',
        "a short one": "aws_secret_access_key = abc\n",
    }
    for name, text in secrets.items():
        assert cloud_secret(text.encode()), name
    examples = {  # manuals and templates that show where the secret goes (PostGIS's manual has the first two)
        "repeated letters": "SET postgis.gdal_config_options = "
                            "'AWS_ACCESS_KEY_ID=xxxxxxxxxxxxxxx AWS_SECRET_ACCESS_KEY=yyyyyyyy';",
        "continued": "AWS_SECRET_ACCESS_KEY=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx \\\nraster2pgsql -s 990000",
        "a slot": "aws_secret_access_key = <your secret key>",
        "a slot in a web page": "<pre>AWS_SECRET_ACCESS_KEY=&lt;secret&gt;</pre>",
        "a variable": "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY aws s3 ls",
        "a template": "aws_secret_access_key: {{ vault_aws_secret }}",
        "AWS's example key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "left empty": "aws_secret_access_key =\nregion = eu-west-1\n",
        "named in prose": "Set AWS_SECRET_ACCESS_KEY in the server's environment, never in a file.",
    }
    for name, text in examples.items():
        assert not cloud_secret(text.encode()), name
    manual = tmp_path / "raster.html"  # a long manual with a placeholder in an example: read whole
    manual.write_text("<p>Rasters can live in the cloud.</p>" * 200 + "<pre>" + examples["repeated letters"] + "</pre>"
                      + "<p>More.</p>" * 200)
    assert _read_regular(manual, block=64)[0]
    notes = tmp_path / "notes.txt"  # a real one across a block boundary is still found
    notes.write_text("x" * 50 + secrets["export"] + "More notes.\n" * 50)
    with pytest.raises(Refused):
        _read_regular(notes, block=64)


def test_a_manual_that_shows_the_key_format_is_ingested_and_a_key_beside_it_is_not(tmp_path, settings, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tls.html").write_text(
        "<html><body><h1>TLS setup</h1><p>The server reads its key from one file:</p><pre>"
        "-----BEGIN RSA PRIVATE KEY-----\n... (private key in base64 encoding) ...\n-----END RSA PRIVATE KEY-----\n"
        "</pre><p>Keys that start with <code>-----BEGIN PRIVATE KEY-----</code> are converted with openssl rsa."
        "</p></body></html>")
    (folder / "deploy.txt").write_text("The deploy key, for the record:\n" + OPENSSH_KEY)
    report = ingest([folder], settings, embedder=embedder)
    by_name = {Path(o.path).name: o for o in report.outcomes}
    assert by_name["deploy.txt"].status == "rejected" and by_name["deploy.txt"].reason == "credentials"
    assert [Path(d.source_uri).name for d in Store(settings).documents()] == ["tls.html"]
    text = " ".join(c.text for c in Store(settings).chunks(range(1, 100)))
    assert "converted with openssl rsa" in text and "b3BlbnNzaC1rZXkt" not in text


def test_a_fifo_is_reported_and_never_opened(tmp_path, settings, embedder):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "ok.txt").write_text("The quarterly report is due on the fifth working day.\n")
    os.mkfifo(folder / "pipe.txt")
    done: dict = {}
    t = threading.Thread(target=lambda: done.update(r=ingest([folder], settings, embedder=embedder)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "ingest hung on a FIFO"
    (fifo,) = [o for o in done["r"].outcomes if o.path.endswith("pipe.txt")]
    assert fifo.status == "rejected" and "FIFO" in fifo.detail and done["r"].ingested == 1
    assert Store(settings).check()["consistent"]


def test_a_second_writer_waits_for_the_first(tmp_path, settings):
    store = Store(settings)
    released = threading.Event()

    def hold():
        with store.writer():
            released.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.3)
    with pytest.raises(StoreError, match="another process is writing"):
        with Store(settings).writer(wait=0):
            pass
    threading.Timer(0.5, released.set).start()
    t0 = time.monotonic()
    with Store(settings).writer(wait=10):
        assert time.monotonic() - t0 >= 0.3  # it waited, then got in
    t.join()


def test_markup_in_file_names_is_printed_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("SCULPTRAG_INGEST__PARSE_WORKERS", "0")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "[").mkdir()
    (folder / "[" / "x] broken.txt").write_text("   \n")  # the path reads "[/x] broken.txt": a Rich closing tag
    (folder / "[bold red]loud.txt").write_text("\x00\x01\x02" * 10)
    result = CliRunner().invoke(cli, ["ingest", str(folder), "--store", str(tmp_path / "s")], terminal_width=200)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "[/x] broken.txt" in result.output and "[bold red]loud.txt" in result.output
