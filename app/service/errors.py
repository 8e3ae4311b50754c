"""Every error the service answers is JSON: `{"error": {"status", "code", "message"}}`, never HTML.

`ApiError` is what the routes raise on purpose (the message says what to change); the handlers installed by
`install_handlers` turn it, FastAPI's validation errors, Starlette's 404/405 and any unexpected exception
(logged, never shown: a traceback could quote a document) into that shape. A message never names a
document the caller may not read: routes that find no readable document answer exactly as for none.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.errors import ConfigError, SculptragError

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid", 500: "internal", 503: "unavailable"}


class ApiError(Exception):
    """An HTTP error with a message that says what to change; `headers` go with the answer (Retry-After)."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status, "code": CODES.get(status, "error"), "message": message, **extra}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, message, **extra), status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.message, e.headers, **e.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg', '')}"
                    for err in e.errors()]
        return error_response(422, "the request is not valid: " + "; ".join(problems), details=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        message = {404: "no such route; see /docs for the API", 405: "this route does not take that method; see /docs"}
        return error_response(e.status_code, message.get(e.status_code, str(e.detail)), getattr(e, "headers", None))

    @app.exception_handler(ConfigError)
    async def _config(_: Request, e: ConfigError) -> JSONResponse:
        return error_response(422, str(e))

    @app.exception_handler(SculptragError)
    async def _sculptrag(_: Request, e: SculptragError) -> JSONResponse:
        return error_response(503, str(e))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(e).__name__}); the server log has the details")


def as_api_error(e: BaseException) -> ApiError:
    """An answer job's failure as the error its client gets (the scheduler hands exceptions back as they came)."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, concurrent.futures.CancelledError):
        return ApiError(503, "the request was cancelled before it was answered (the server is stopping); retry")
    if isinstance(e, ConfigError):
        return ApiError(422, str(e))
    if isinstance(e, SculptragError):
        return ApiError(503, str(e))
    log.error("answer failed", exc_info=e)
    return ApiError(500, f"internal error ({type(e).__name__}); the server log has the details")
