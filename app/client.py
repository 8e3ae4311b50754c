"""A client of a running `sculptrag serve`: what `sculptrag ask --api URL` and the app's API mode
(`sculptrag app --api URL`) use instead of loading models and the store themselves.

The URL comes from `--api` or $SCULPTRAG_API_URL, the key from $SCULPTRAG_API_KEY. Every call answers a typed
object (Answer, DenoiseState, IngestReport) or raises ServiceError with the service's own message (its JSON
error body says what to change) and status; a service that cannot be reached is a ServiceError too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import httpx

from pipeline.errors import SculptragError
from pipeline.types import Answer, DenoiseState, FileOutcome, IngestReport, SearchFilters

TIMEOUT = httpx.Timeout(10.0, read=600.0)  # connecting is quick or fails; an answer may wait in the queue
UPLOAD_BATCH_FILES = 64  # files per upload request (each request is one ingest run on the service)
UPLOAD_BATCH_BYTES = 32 * 1024 * 1024  # and bytes per request, unless one file alone is larger (up to the limit)
UNCHANGED_CHECK = 200  # files per `unchanged` question (~30 KB of JSON)


class ServiceError(SculptragError):
    """The service refused or failed a request (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.report: IngestReport | None = None  # upload_paths: what the requests before this one did


def upload_name(path: Path, roots: Sequence[Path]) -> str:
    """The name a discovered file is uploaded by: its path under the outermost folder given that holds it, that
    folder's own name first ("handbook/ch1.html"), or the file's name when it was given by name."""
    holders = [r for r in roots if r in path.parents]
    if not holders:
        return path.name
    root = min(holders, key=lambda r: len(r.parts))
    return path.relative_to(root.parent).as_posix()


class ServiceClient:
    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.key = key if key is not None else os.environ.get("SCULPTRAG_API_KEY")
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT,
                                  headers={"Authorization": f"Bearer {self.key}"} if self.key else {})

    def close(self) -> None:
        self._http.close()

    # -- plumbing ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise ServiceError(0, f"cannot reach the service at {self.url}: {e}") from None
        if r.status_code >= 400:
            raise self._error(r.status_code, r.content)
        return r

    def _error(self, status: int, body: bytes) -> ServiceError:
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = body[:300].decode(errors="replace")
        if status == 401 and not self.key:
            message += " (set SCULPTRAG_API_KEY)"
        return ServiceError(status, f"the service answered {status}: {message}")

    @staticmethod
    def _ask_body(question: str, *, groups: Sequence[str] | None, generator: str | None, k: int | None,
                  filters: SearchFilters | None, options: dict[str, Any] | None, repair_rounds: int | None,
                  passages: bool, stream: bool) -> dict[str, Any]:
        body = {"question": question, "generator": generator, "k": k,
                "groups": list(groups) if groups is not None else None,
                "filters": filters.model_dump(mode="json", exclude_defaults=True) if filters else None,
                "options": options or None, "repair_rounds": repair_rounds, "passages": passages or None,
                "stream": stream or None}
        return {key: value for key, value in body.items() if value is not None}

    # -- the routes ----------------------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """The key's identity: {"name", "groups", "editor", "source"}."""
        return self._request("GET", "/v1/me").json()

    def generators(self) -> list[str]:
        return [m["id"] for m in self._request("GET", "/v1/models").json()["data"]]

    def ask(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
            k: int | None = None, filters: SearchFilters | None = None, options: dict[str, Any] | None = None,
            repair_rounds: int | None = None, passages: bool = False) -> Answer:
        body = self._ask_body(question, groups=groups, generator=generator, k=k, filters=filters, options=options,
                              repair_rounds=repair_rounds, passages=passages, stream=False)
        return Answer.model_validate(self._request("POST", "/v1/ask", json=body).json())

    def stream(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
               k: int | None = None, filters: SearchFilters | None = None, options: dict[str, Any] | None = None,
               repair_rounds: int | None = None, passages: bool = True) -> Iterator[DenoiseState | Answer]:
        """The service's Server-Sent Events as objects: DenoiseState per denoising step, then the Answer (with
        its passages by default, so citations can be opened). Closing the iterator early closes the connection,
        which cancels the request on the server."""
        body = self._ask_body(question, groups=groups, generator=generator, k=k, filters=filters, options=options,
                              repair_rounds=repair_rounds, passages=passages, stream=True)
        try:
            with self._http.stream("POST", "/v1/ask", json=body) as r:
                if r.status_code >= 400:
                    raise self._error(r.status_code, r.read())
                event = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                        if event == "state":
                            yield DenoiseState.model_validate_json(data)
                        elif event == "answer":
                            yield Answer.model_validate_json(data)
                            return
                        elif event == "error":
                            raise self._error(json.loads(data).get("error", {}).get("status", 500), data.encode())
                raise ServiceError(502, "the service ended the stream without an answer")
        except httpx.HTTPError as e:
            raise ServiceError(0, f"lost the connection to the service at {self.url}: {e}") from None

    def documents(self, groups: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The documents these groups (default: all of the key's) may read, as the service lists them."""
        return self._request("GET", "/v1/documents", params={"groups": list(groups)} if groups else None).json()["documents"]

    def delete_document(self, document_id: int, groups: Sequence[str] | None = None) -> int:
        """Delete a document; the chunks removed. ServiceError 404 when these groups may not read it (or it is gone)."""
        r = self._request("DELETE", f"/v1/documents/{int(document_id)}", params={"groups": list(groups)} if groups else None)
        return int(r.json()["chunks_removed"])

    def document_file(self, document_id: int, groups: Sequence[str] | None = None) -> bytes:
        return self._request("GET", f"/v1/documents/{int(document_id)}/file",
                             params={"groups": list(groups)} if groups else None).content

    def upload(self, files: Sequence[tuple[str, bytes]], groups: Sequence[str], *, set_groups: bool = False) -> IngestReport:
        r = self._request("POST", "/v1/documents", files=[("files", (name, data)) for name, data in files],
                          data={"groups": ",".join(groups), "set_groups": str(set_groups).lower()},
                          timeout=httpx.Timeout(10.0, read=3600.0))
        return IngestReport.model_validate(r.json())

    def upload_paths(self, paths: Sequence[str], groups: Sequence[str], *, set_groups: bool = False,
                     progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
        """Upload local files, folders (recursive) and globs and ingest them on the service: what `sculptrag
        ingest --api` does. One IngestReport for the run, whatever the number of requests.

        What is sent is found by the discovery a local ingest uses (ingest/discover.py), so hidden files, links
        out of a folder and key material never leave this machine, and read with the same checks. Each file
        goes by its path under the folder given ("handbook/ch1.html"; a file given by name: its name), so
        re-sending a folder updates the documents it made; the files the service already holds as they are
        (same name, bytes and chunking: `unchanged`) are counted unchanged and not sent. Files go in requests
        of at most UPLOAD_BATCH_FILES files and the service's upload limit (from /v1/me); a larger file is
        rejected here. A request the service refuses raises ServiceError with `.report`, what
        the requests before it did."""
        from ingest.discover import Refused, expand_paths, file_record, read_file

        t0 = time.perf_counter()
        limits = self.me().get("limits") or {}
        limit = int(limits.get("max_upload_bytes") or UPLOAD_BATCH_BYTES)
        found = expand_paths(paths)
        local = IngestReport()
        for m in found.missing:
            local.outcomes.append(FileOutcome(path=m, status="rejected", reason="not found", detail="no such file, folder or glob match"))
        for path, status, reason, detail in found.left_out:
            local.outcomes.append(FileOutcome(path=path, status=status, reason=reason, detail=detail))
        sent: list[IngestReport] = []
        batch: list[tuple[str, bytes]] = []
        sent_from: dict[str, str] = {}

        def total() -> IngestReport:
            report = local.model_copy(deep=True)
            report.files_seen = len(report.outcomes) + report.unchanged
            report.rejected = sum(o.status == "rejected" for o in report.outcomes)
            report.skipped = sum(o.status == "skipped" for o in report.outcomes)
            for part in sent:
                report.add(part)
            report.seconds = time.perf_counter() - t0
            return report

        def send(done: int) -> None:
            """Upload the batch; `done`: the files handled (sent, unchanged or refused) once it is in."""
            try:
                sent.append(self.upload(batch, groups, set_groups=set_groups))
            except ServiceError as e:
                e.report = total()
                raise
            if progress:
                progress(done, len(named), batch[-1][0])
            batch.clear()

        def refuse(f: Path, e: Exception) -> None:
            reason, detail = (e.reason, e.detail) if isinstance(e, Refused) else \
                ("not found", f"cannot read: {e.strerror or e}")
            local.outcomes.append(FileOutcome(path=str(f), status="rejected", reason=reason, detail=detail))

        named: list[tuple[Path, str, str]] = []  # (file, name, sha256) of the files that may go
        for f in found.files:
            name = upload_name(f, found.roots)
            try:
                if (size := f.stat().st_size) > limit:
                    raise Refused("too large", f"{size} bytes; the service at {self.url} takes files of up to "
                                  f"{limit} bytes (SCULPTRAG_SERVICE__MAX_UPLOAD_BYTES on the server)")
                if name in sent_from:
                    raise Refused("name clash", f"would be sent as {name!r}, like {sent_from[name]}, and replace it: "
                                  "rename one, or give a folder that holds both")
                named.append((f, name, file_record(f).sha256))
                sent_from[name] = str(f)
            except (Refused, OSError) as e:
                refuse(f, e)
        same = self.unchanged([(name, sha) for _, name, sha in named], groups, set_groups=set_groups)
        local.unchanged = len(same)
        room, batch_bytes = min(limit, UPLOAD_BATCH_BYTES), 0
        for handled, (f, name, _) in enumerate(named):  # handled: the files before f
            if name in same:
                continue
            try:
                _, data = read_file(f)  # (read again: the hashing pass keeps no file's bytes)
            except (Refused, OSError) as e:
                refuse(f, e)
                continue
            if batch and (len(batch) >= UPLOAD_BATCH_FILES or batch_bytes + len(data) > room):
                send(handled)
            if not batch:
                batch_bytes = 0
            batch.append((name, data))
            batch_bytes += len(data)
        if batch:
            send(len(named))
        return total()

    def unchanged(self, files: Sequence[tuple[str, str]], groups: Sequence[str], *, set_groups: bool = False) -> set[str]:
        """The names among `files` ((name, sha256)) that the service holds as they are for `groups`
        (`POST /v1/documents/unchanged`), asked UNCHANGED_CHECK files at a time."""
        same: set[str] = set()
        for start in range(0, len(files), UNCHANGED_CHECK):
            body = {"groups": list(groups), "set_groups": set_groups,
                    "files": [{"name": name, "sha256": sha} for name, sha in files[start:start + UNCHANGED_CHECK]]}
            same.update(self._request("POST", "/v1/documents/unchanged", json=body).json()["unchanged"])
        return same

    def ingest(self, paths: Sequence[str], groups: Sequence[str], *, set_groups: bool = False,
               prune: bool = False) -> IngestReport:
        """Ingest files or folders on the server (under its folder roots)."""
        r = self._request("POST", "/v1/ingest", json={"paths": list(paths), "groups": list(groups),
                                                      "set_groups": set_groups, "prune": prune},
                          timeout=httpx.Timeout(10.0, read=3600.0))
        return IngestReport.model_validate(r.json())
