"""`create_app(settings)`: the FastAPI application of `sculptrag serve` (OpenAPI page at /docs).

One app holds one `Services` (store, pipeline, warm ingestor: the same object the Streamlit app uses), one
`Scheduler` (the generator queue and its worker thread) and its `Metrics`; they start with the app and
stop with it. The models load in the background at start-up: /healthz answers at once, /readyz once the
embedder, the indexes and the default generator are loaded. Middleware, outermost first: metrics (every
answer counted by route template), then the body-size limit.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response

from app.ui.services import Services, User
from pipeline.config import Settings

from . import answers, documents
from .auth import caller
from .errors import error_response, install_handlers
from .limits import BodyLimitMiddleware, upload_limit
from .metrics import Metrics, MetricsMiddleware
from .scheduler import Scheduler


def create_app(settings: Settings | None = None, *, warm: bool = True) -> FastAPI:
    """The service for `settings` (default: from the environment, SCULPTRAG_...); `warm` loads the models at
    start-up rather than on the first request. uvicorn's `--factory` calls it with no arguments."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(settings, warm=warm)
        metrics: Metrics = app.state.metrics
        limits = settings.service
        scheduler = Scheduler(services.rag, queue_size=limits.queue_size, max_batch=limits.max_batch,
                              batch_wait_ms=limits.batch_wait_ms, on_batch=metrics.batch_size.observe,
                              on_depth=metrics.queue_depth.set)
        app.state.services, app.state.scheduler = services, scheduler
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
            services.close()

    app = FastAPI(title="sculptrag", version="0.1.0", lifespan=lifespan,
                  description="Cited, validated answers from your documents, written by a masked-diffusion model. "
                              "Send `Authorization: Bearer <key>` (keys: `sculptrag keys create`).")
    app.state.metrics = Metrics()  # made with the app: the middleware below counts into it
    install_handlers(app)
    app.include_router(answers.router)
    app.include_router(documents.router)

    @app.get("/v1/me", tags=["identity"], summary="Who the caller is (name, groups, whether they may edit) and "
             "the size limits their requests meet")
    def me(user: User = Depends(caller)) -> dict[str, Any]:
        return {"name": user.name, "groups": list(user.groups), "editor": user.editor, "source": user.source,
                "limits": {"max_upload_bytes": upload_limit(settings), "max_body_bytes": settings.service.max_body_bytes}}

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Models and indexes are loaded")
    def readyz(request: Request) -> Any:
        services: Services = request.app.state.services
        if services.ready.is_set():
            return {"status": "ready", "generator": settings.generator}
        if services.warm_error:
            services.warm_up_again()  # the next probe says whether that try did better
            return error_response(503, f"not ready: loading failed ({services.warm_error}); see the server log")
        return error_response(503, "not ready: the models and indexes are loading; retry shortly")

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        body, content_type = request.app.state.metrics.render()
        return Response(body, media_type=content_type)

    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
