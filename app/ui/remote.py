"""The app's API mode (`sculptrag app --api URL`, or $SCULPTRAG_API_URL): the pages talk to a running
`sculptrag serve` instead of loading the store and the models, so a laptop can use a shared server.

`RemoteServices` stands in for `Services` with what the pages use (the store's document list, the pipeline's
`stream`, readable documents, upload, folder ingest, delete, the cited file), each one HTTP call to the
service with the key in $SCULPTRAG_API_KEY. The server decides everything about access: every list, answer,
source and file comes from a route that reads only what the key's groups (narrowed to the user's groups in
use) may read, so the app holds nothing the key could not read.

Who the user is: locally, the key's holder (the key's groups; editing if the key may edit). Behind a sign-in
proxy, the proxy's user, with only those of their groups that the key holds too (and editing only when both
the proxy's rules and the key allow it).

Not over the API: evaluation runs (they need the store: run `sculptrag eval` where it is) and the list of
rejected files (the server's log and `sculptrag status` have them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator, Sequence

from app.client import ServiceClient, ServiceError
from pipeline.config import Settings
from pipeline.types import Answer, DenoiseState, IngestReport, SearchFilters

from .services import User


@dataclass(frozen=True)
class RemoteDocument:
    """A document as the service lists it, with the fields the pages read from a stored Document."""

    id: int
    title: str
    source_uri: str
    file_type: str
    media_type: str | None
    pages: int | None
    n_chunks: int
    group_names: tuple[str, ...]
    entity: str | None
    period: str | None
    ingested_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RemoteDocument":
        return cls(id=int(d["id"]), title=d["title"], source_uri=d["source_uri"], file_type=d["file_type"],
                   media_type=d.get("media_type"), pages=d.get("pages"), n_chunks=int(d.get("chunks") or 0),
                   group_names=tuple(d.get("groups") or ()), entity=d.get("entity"), period=d.get("period"),
                   ingested_at=datetime.fromisoformat(d["ingested_at"]))


class RemoteStore:
    """The store's read side, as far as the pages use it: what the key may read."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def documents(self, groups: Sequence[str] | None = None) -> list[RemoteDocument]:
        return [RemoteDocument.from_json(d) for d in self.client.documents(groups)]

    def documents_by_id(self, ids: Sequence[int]) -> dict[int, RemoteDocument]:
        wanted = {int(i) for i in ids}
        return {d.id: d for d in self.documents() if d.id in wanted}

    def document_metadata(self) -> list[tuple[int, str | None, str | None]]:
        return [(d.id, d.entity, d.period) for d in self.documents() if d.entity or d.period]

    def quarantined(self, groups: Sequence[str] | None = None) -> list:
        return []  # not served over the API


class RemoteRag:
    """`RagPipeline.stream` over the service's Server-Sent Events."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def stream(self, question: str, *, groups: Sequence[str] | None = None, generator: str | None = None,
               k: int | None = None, filters: SearchFilters | None = None, options: dict[str, Any] | None = None,
               repair_rounds: int | None = None) -> Iterator[DenoiseState | Answer]:
        return self.client.stream(question, groups=groups, generator=generator, k=k, filters=filters,
                                  options=options, repair_rounds=repair_rounds, passages=True)


class RemoteServices:
    remote = True

    def __init__(self, settings: Settings, url: str, key: str | None = None) -> None:
        self.settings = settings
        self.url = url
        self.client = ServiceClient(url, key)
        self.store = RemoteStore(self.client)
        self.rag = RemoteRag(self.client)
        self.warm_error: str | None = None
        self.identity: dict[str, Any] = {"name": "", "groups": [], "editor": False}
        self._identified = False
        self.warm_up_again()

    def warm_up_again(self) -> None:
        """Ask the service who this key is (again, after a failure): until it answers, the error shows on every
        page and the user reads nothing; the page after it answers has the key's groups."""
        if self._identified:
            return
        try:
            self.identity = self.client.me()
            self.warm_error, self._identified = None, True
        except ServiceError as e:
            self.warm_error = str(e)

    def user(self, local: User) -> User:
        """The user of a session: the key's holder locally; behind a proxy, the proxy's user within the key."""
        key_groups = tuple(self.identity.get("groups") or ())
        key_edits = bool(self.identity.get("editor"))
        if not self.settings.app.header_mode:
            return User(name=self.identity.get("name") or "API key", groups=key_groups, editor=key_edits,
                        source=f"the API key at {self.url}")
        return User(name=local.name, groups=tuple(g for g in local.groups if g in key_groups),
                    editor=local.editor and key_edits, source=local.source)

    def generators(self) -> list[str]:
        return self.client.generators()

    def readable(self, groups: Sequence[str]) -> set[int]:
        return {d.id for d in self.store.documents(groups)} if groups else set()

    def may_open(self, user_groups: Sequence[str], document_id: int) -> bool:
        return int(document_id) in self.readable(user_groups)

    def delete_document(self, document_id: int, groups: Sequence[str]) -> int | None:
        try:
            return self.client.delete_document(document_id, groups)
        except ServiceError as e:
            if e.status == 404:
                return None
            raise

    def document_file(self, document_id: int, groups: Sequence[str]) -> bytes:
        return self.client.document_file(document_id, groups)

    def upload(self, files: Sequence[tuple[str, bytes]], groups: Sequence[str], *, set_groups: bool = False) -> IngestReport:
        return self.client.upload(files, groups, set_groups=set_groups)

    def ingest_paths(self, paths: Sequence[str], groups: Sequence[str], *, set_groups: bool = False,
                     prune: bool = False) -> IngestReport:
        return self.client.ingest(paths, groups, set_groups=set_groups, prune=prune)

    def close(self) -> None:
        self.client.close()
