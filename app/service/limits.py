"""Request size limits, enforced before a route reads the body: a body over the limit is a 413 (JSON).

JSON routes take `service.max_body_bytes`; the upload route (`POST /v1/documents`) takes one file of
`service.max_upload_bytes` plus room for the multipart framing. A declared Content-Length over the limit is
refused at once; a body without one (chunked) is counted as it arrives and cut off at the limit.
The other limits (question length, k, the size of each uploaded file) are checked by the routes.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import Settings

from .errors import error_body

MULTIPART_ROOM = 64 * 1024  # boundaries, part headers and form fields around an uploaded file


def upload_limit(settings: Settings) -> int:
    """The largest uploaded file, in bytes (service.max_upload_bytes, else the app's max_upload_mb)."""
    return settings.service.max_upload_bytes or settings.app.max_upload_mb * 1024 * 1024


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a body without Content-Length passes the limit: an HTTPException, so the
    route's body parsing lets it through and the JSON handlers answer 413."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.json_limit = settings.service.max_body_bytes
        self.upload_limit = upload_limit(settings) + MULTIPART_ROOM

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if scope.get("method") == "POST" and scope.get("path") == "/v1/documents":
            return self.upload_limit, "upload a smaller file, or raise SCULPTRAG_SERVICE__MAX_UPLOAD_BYTES on the server"
        return self.json_limit, "send a smaller request body, or raise SCULPTRAG_SERVICE__MAX_BODY_BYTES on the server"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, hint = self._limit(scope)
        message = f"the request body is larger than {limit} bytes: {hint}"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, message)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(message)
            return msg

        async def tracked(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _send_413(send, message)


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps(error_body(413, message)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
