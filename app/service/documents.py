"""The document routes: list, upload, delete, download, and ingest server folders.

The same rules as the app's Documents page, through the same code (app.ui.services.Services): a caller
lists and downloads only documents their groups in use may read; uploading, ingesting and deleting are for
editors, who give only groups they hold and cannot update, regroup, prune or delete a document they cannot
read. A document the caller may not read answers exactly as one that does not exist (404, the same
message), so its existence is never confirmed. Server folders are limited to `app.folder_roots`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.ui.services import FileChanged, Services, User, file_name, file_of, read_ingested, upload_steps
from pipeline.types import IngestReport

from .auth import caller, editor, groups_in_use, held_groups
from .errors import ApiError
from .limits import upload_limit

router = APIRouter(prefix="/v1", tags=["documents"])

GroupsQuery = Query(None, description="narrow the caller's groups (comma separated or repeated)")


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1, description="files or folders on the server, under app.folder_roots")
    groups: list[str] = Field(min_length=1, description="who may read new documents (groups the caller holds)")
    set_groups: bool = Field(False, description="also give `groups` to documents already stored")
    prune: bool = Field(False, description="delete stored documents under these folders whose files are gone")


class UploadedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=4096, description="the name the file is uploaded by")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the file's SHA-256, hex")


class UnchangedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(min_length=1, description="the groups the files would be uploaded for")
    set_groups: bool = Field(False, description="the upload would also give `groups` to stored documents")
    files: list[UploadedFile] = Field(min_length=1, max_length=10_000)


def _svc(request: Request) -> Services:
    return request.app.state.services


def _not_found(document_id: int) -> ApiError:
    return ApiError(404, f"no document {document_id} that you may read (it does not exist, or your groups may "
                         "not read it); GET /v1/documents lists yours")


def _document_out(doc, user_groups: tuple[str, ...]) -> dict[str, Any]:
    return {"id": doc.id, "title": doc.title, "file_name": file_name(doc.source_uri), "source_uri": doc.source_uri,
            "media_type": doc.media_type, "file_type": doc.file_type, "size": doc.size, "pages": doc.pages,
            "chunks": doc.n_chunks, "groups": [g for g in doc.group_names if g in user_groups],
            "entity": doc.entity, "period": doc.period, "dated": doc.dated,
            "ingested_at": doc.ingested_at.isoformat()}


def _give_groups(user: User, groups: list[str] | str) -> tuple[str, ...]:
    """The groups an editor gives new documents: valid, and all held by the editor (else 403)."""
    given, outside = held_groups(user, groups)
    if outside:
        raise ApiError(403, f"you may give documents only groups you hold; not yours: {', '.join(outside)}")
    return given


def _ingest(request: Request, user: User, paths: list[Path], groups: tuple[str, ...], kind: str, *,
            set_groups: bool = False, prune: bool = False) -> IngestReport:
    svc = _svc(request)
    with svc.ingest_lock:
        report = svc.ingestor().ingest(paths, groups=groups, set_groups=set_groups, caller_groups=user.groups,
                                       prune=prune, wait=30.0)
    request.app.state.metrics.count_ingest(kind, report)
    return report


@router.get("/documents", summary="The documents the caller may read")
def list_documents(request: Request, groups: list[str] | None = GroupsQuery, user: User = Depends(caller)) -> dict[str, Any]:
    svc = _svc(request)
    in_use = groups_in_use(user, groups)
    readable = svc.readable(in_use)
    return {"documents": [_document_out(d, user.groups) for d in svc.store.documents() if d.id in readable]}


@router.post("/documents", summary="Upload files (multipart) and ingest them for the given groups (editors)")
async def upload(request: Request, files: list[UploadFile] = File(..., description="one or more files"),
                 groups: list[str] = Form(..., description="who may read them (comma separated or repeated)"),
                 set_groups: bool = Form(False), user: User = Depends(editor)) -> dict[str, Any]:
    given = _give_groups(user, groups)
    limit = upload_limit(_svc(request).settings)
    received: list[tuple[str, bytes]] = []
    for f in files:
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, f"{f.filename!r} is larger than {limit} bytes: upload a smaller file, or raise "
                                "SCULPTRAG_SERVICE__MAX_UPLOAD_BYTES on the server")
        received.append((f.filename or "upload", data))

    def save_and_ingest() -> dict[str, Any]:
        svc = _svc(request)
        try:
            paths = [svc.save_upload(name, data, given, user.groups) for name, data in received]
        except OSError as e:
            raise ApiError(409, f"could not keep the uploaded files: {e}") from e
        report = _ingest(request, user, paths, given, "upload", set_groups=set_groups)
        named = {str(path): "/".join(upload_steps(name)) for path, (name, _) in zip(paths, received)}
        kept_at = re.compile(re.escape(svc.upload_dir.resolve().as_uri()) + r"/g-[0-9a-f]+/")
        for o in report.outcomes:  # the client named the files; where the server keeps them is its own business
            o.path = named.get(o.path, Path(o.path).name)
            o.detail = kept_at.sub("", o.detail)
        return report.model_dump(mode="json")

    return await run_in_threadpool(save_and_ingest)


@router.post("/documents/unchanged", summary="Which of these files (name, SHA-256) an upload for these groups would "
             "leave unchanged, so they need not be sent (editors)")
def unchanged_uploads(body: UnchangedRequest, request: Request, user: User = Depends(editor)) -> dict[str, Any]:
    given = _give_groups(user, body.groups)
    svc = _svc(request)
    return {"unchanged": svc.unchanged_uploads([(f.name, f.sha256) for f in body.files], given, user.groups,
                                               set_groups=body.set_groups)}


@router.delete("/documents/{document_id}", summary="Delete a document the caller may read, and its chunks (editors)")
def delete_document(document_id: int, request: Request, groups: list[str] | None = GroupsQuery,
                    user: User = Depends(editor)) -> dict[str, Any]:
    removed = _svc(request).delete_document(document_id, groups_in_use(user, groups))
    if removed is None:
        raise _not_found(document_id)
    return {"deleted": document_id, "chunks_removed": removed}


@router.get("/documents/{document_id}/file", summary="Download a document's source file (while it is the ingested one)",
            response_class=Response)
def document_file(document_id: int, request: Request, groups: list[str] | None = GroupsQuery,
                  user: User = Depends(caller)) -> Response:
    svc = _svc(request)
    if not svc.may_open(groups_in_use(user, groups), document_id):
        raise _not_found(document_id)
    doc = svc.store.documents_by_id([document_id]).get(document_id)
    if doc is None:
        raise _not_found(document_id)
    path = file_of(doc.source_uri)
    if path is None:
        raise ApiError(409, "this document's file is no longer on the server; re-ingest it to serve it again")
    try:
        data = read_ingested(path, doc.sha256)
    except FileChanged:
        raise ApiError(409, "this document's file changed since it was ingested, so it is not served; re-ingest it") from None
    name = file_name(doc.source_uri)
    return Response(data, media_type=doc.media_type or "application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.post("/ingest", summary="Ingest files or folders on the server, under app.folder_roots (editors)")
def ingest_folders(body: IngestRequest, request: Request, user: User = Depends(editor)) -> dict[str, Any]:
    roots = _svc(request).settings.app.folder_roots
    given = _give_groups(user, body.groups)
    for raw in body.paths:
        if not user.allowed_folder(raw, roots):
            raise ApiError(403, f"{raw!r} is outside the folders this server may ingest "
                                f"({'SCULPTRAG_APP__FOLDER_ROOTS: ' + ', '.join(map(str, roots)) if roots else 'none: SCULPTRAG_APP__FOLDER_ROOTS is empty'})")
        if not Path(raw).expanduser().exists():
            raise ApiError(422, f"there is no file or folder at {raw!r} on the server")
    paths = [Path(p).expanduser() for p in body.paths]
    report = _ingest(request, user, paths, given, "folder", set_groups=body.set_groups, prune=body.prune)
    return report.model_dump(mode="json")
