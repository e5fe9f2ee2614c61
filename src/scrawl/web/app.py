"""The app factory: `create_app(models=["digits"])` builds the FastAPI application from its parts.

- service.py: the models and the answers, without HTTP (loaded once, in the app's lifespan; every
  request reuses them, no per-request loading);
- routes.py: the REST API on an APIRouter, with deps.py's dependencies for the request options and the
  concurrency limit (recognitions run in worker threads, at most `workers` at once, one per core, so
  the event loop keeps accepting requests; the model uses `threads` threads per request: one small
  image is fastest single-threaded, and concurrent requests then use the other cores);
- pages.py: the drawing page, its static files and the offline API docs;
- guard.py: every request is guarded before any decoding: bodies over `max_body_bytes` are refused
  from their Content-Length and again while being read, every answer gets the security headers, and
  HEAD answers never have a body; its AccessLog logs one line per request (logger
  "scrawl.web.access", INFO: client, method, path, status, ms), under any server;
- the error handlers here: every failure is a 4xx JSON {"error": "..."} that says what was wrong, and
  the server keeps serving (an image with nothing to read, on /api/read: 422 with "empty": true);
- the limits (`limits()`): published in the API description and at GET /api/limits.
The defaults are scrawl.settings'. `runtime="onnx"` serves exported .onnx models (scrawl export) with
ONNX Runtime, and never imports torch.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from .. import settings
from ..errors import EmptyImageError, ScrawlError
from .deps import WorkerPool
from .guard import AccessLog, Guard
from .inputs import ApiError
from .pages import CSP, add_pages
from .routes import router
from .schemas import api_description
from .service import Service

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = int(settings.MAX_BODY_MB * 2**20)  # bytes


def create_app(models: list[str] | tuple[str, ...] | None = None, *, runtime: str = "torch",
               max_body_bytes: int = DEFAULT_MAX_BODY, threads: int = 1, workers: int | None = None,
               uncertain_below: float = settings.UNCERTAIN_BELOW, max_characters: int | None = None,
               max_queue: int = settings.MAX_QUEUE, request_timeout: float = settings.REQUEST_TIMEOUT) -> FastAPI:
    """The web app. models: bundled model names or model files, checkpoints for runtime "torch" and
    exported .onnx files for runtime "onnx" (default: every bundled model that is installed, "digits"
    first); the first is the default. Names are checked now; the models load when the app starts.
    threads: threads per recognition; workers: recognitions running at once (default: one per
    CPU core; more requests wait their turn, so a burst of large photos cannot exhaust the memory);
    max_queue: how many may wait (beyond that: 503 with Retry-After); request_timeout: seconds a
    recognition may take, waiting included (beyond that: 503)."""
    # Uploaded files stay in memory up to the body limit: Starlette would otherwise spool parts over
    # 1 MiB to a temporary file, and uploads are never to touch the disk.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_body_bytes + 1)
    service = Service(models or _bundled_models(runtime), runtime=runtime, threads=threads,
                      uncertain_below=uncertain_below, max_characters=max_characters)
    workers = workers or os.cpu_count() or 1

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.load)
        app.state.started = time.time()
        app.state.workers = WorkerPool(workers, max_queue, request_timeout)
        yield

    app_limits = limits(max_body_bytes, max_characters, workers, max_queue, request_timeout)
    app = FastAPI(title="Scrawl", version=_version(), description=api_description(uncertain_below, app_limits),
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.limits = app_limits
    app.add_middleware(Guard, max_body_bytes=max_body_bytes, csp=CSP)
    app.add_middleware(AccessLog)  # added last: outermost, so it logs the guard's refusals too
    _add_error_handlers(app)
    add_pages(app)
    app.include_router(router)
    return app


def limits(max_body_bytes: int, max_characters: int | None, workers: int, max_queue: int,
           request_timeout: float) -> dict:
    """The limits a client meets (schemas.Limits), from the app's settings and the vision modules' own."""
    from ..settings import MAX_TOP_K
    from ..vision.framing import MAX_LINE_WIDTH
    from ..vision.ink import MAX_PIXELS
    from ..vision.lines import MAX_LINES
    from ..vision.segment import MAX_CHARACTERS

    return {"max_body_bytes": int(max_body_bytes), "max_pixels": MAX_PIXELS, "max_lines": MAX_LINES,
            "max_line_width": MAX_LINE_WIDTH,
            "max_characters": max_characters or MAX_CHARACTERS, "max_top_k": MAX_TOP_K, "workers": workers,
            "max_queue": max(0, max_queue), "request_timeout_s": float(request_timeout)}


def _bundled_models(runtime: str = "torch") -> list[str]:
    from ..runtime.files import BUNDLED, DEFAULT_MODEL, bundled_path, check_runtime

    check_runtime(runtime)
    names = [DEFAULT_MODEL] + [n for n in BUNDLED if n != DEFAULT_MODEL]
    return [n for n in names if n == DEFAULT_MODEL or bundled_path(n, runtime).is_file()]


def _version() -> str:
    from .. import __version__

    return __version__


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(EmptyImageError)
    async def nothing_to_read(request: Request, exc: EmptyImageError):
        # Only /api/read lets this through (/api/predict answers a blank image with "empty": true).
        message = str(exc) if str(exc).startswith("nothing") else f"nothing to read: {exc}"
        return JSONResponse({"error": message, "empty": True}, status_code=422)

    @app.exception_handler(ScrawlError)
    async def scrawl_error(request: Request, exc: ScrawlError):
        # Undecodable, truncated, zero-size or oversized images, too many characters: the image is the
        # problem, not the request's syntax.
        return _error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return _error(404, f"no such page or endpoint: {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug: logged, and still a JSON answer
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error (logged on the server)")
