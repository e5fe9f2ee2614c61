"""The FastAPI application: the drawing page, the REST API and its offline OpenAPI docs.

`create_app(models=["digits"])` is the factory; the models are loaded once, in the app's lifespan, and
every request reuses them (no per-request loading). Requests are guarded before any decoding: bodies over
`max_body_bytes` are refused from their Content-Length and again while being read; every failure is a
4xx JSON {"error": "..."} that says what was wrong, and the server keeps serving.

The recognition work (decoding, framing, the model) runs in worker threads, at most `workers` at once
(one per core), so the event loop keeps accepting requests; the model uses `threads` threads per request
(1: one small image is fastest single-threaded, and concurrent requests then use the other cores).

`runtime="onnx"` serves exported .onnx models (scrawl export) with ONNX Runtime, and never imports torch.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from ..errors import ScrawlError
from . import schemas
from .guard import Guard
from .inputs import ApiError, image_and_options, pick_options
from .service import Service

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 10 * 2**20  # 10 MiB: a 12 Mpx phone JPEG is 3-6 MB
# Recognitions allowed to wait for a worker. Past that the server answers 503 + Retry-After at once
# instead of queueing without bound (a queue nobody can drain only adds latency and memory).
DEFAULT_MAX_QUEUE = 32
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds a recognition may take, waiting included, before a 503
# Below this confidence an answer is flagged uncertain. The bundled model is trained with label
# smoothing 0.05, so a sure answer scores ~0.95; 0.6 leaves room for honest doubt between two classes.
UNCERTAIN_BELOW = 0.6
STATIC = Path(str(resources.files("scrawl.web") / "static"))
# No inline script or style anywhere: the page and the docs load their code from files.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scrawl API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs-assets/swagger-ui.css"><link rel="icon" href="/static/favicon.svg">
</head><body><div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script>
</body></html>"""
DESCRIPTION = """Read handwriting: one character (`/api/predict`) or a string of them (`/api/read`).

Send an image as a multipart upload (field `file`), as raw bytes with an `image/*` Content-Type, or as
JSON `{"image": "data:image/png;base64,..."}`. Options `top_k`, `model` and `charset` (digits, upper, lower,
letters, alnum: the answer is always within it) go in the query string (or the JSON object / form fields).

An image without ink is not an error: the answer is a 200 with `"empty": true`, no label (text `""`) and
a `message` ("nothing to read ..."). Answers below a confidence of 0.6 carry `"uncertain": true`; look at
`top_k` for the alternatives. `framed` is the 28x28 image the model saw, as-is: light ink on black.

Errors are JSON `{"error": "..."}`: 400 malformed request (empty body, bad JSON or data URL), 413 body
too large, 415 unsupported Content-Type, 422 the image cannot be used (not an image, truncated, zero
size, too many pixels, too many characters) or a bad option."""


def create_app(models: list[str] | tuple[str, ...] | None = None, *, runtime: str = "torch",
               max_body_bytes: int = DEFAULT_MAX_BODY, threads: int = 1, workers: int | None = None,
               uncertain_below: float = UNCERTAIN_BELOW, max_characters: int | None = None,
               max_queue: int = DEFAULT_MAX_QUEUE, request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> FastAPI:
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
        app.state.limiter = anyio.CapacityLimiter(workers)
        app.state.pending = 0  # recognitions running or waiting
        app.state.max_pending = workers + max(0, max_queue)
        app.state.request_timeout = request_timeout
        yield

    app = FastAPI(title="Scrawl", version=_version(), description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(Guard, max_body_bytes=max_body_bytes, csp=CSP)
    _add_error_handlers(app)
    _add_pages(app)
    _add_api(app, service)
    return app


def _bundled_models(runtime: str = "torch") -> list[str]:
    from ..runtime.recognizer import BUNDLED, DEFAULT_MODEL, bundled_path, check_runtime

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


def _add_pages(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    docs_assets = _swagger_assets()
    if docs_assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=docs_assets), name="docs-assets")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if docs_assets is None:
            return HTMLResponse("<p>The API docs need the fastapi-offline package; the schema is at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>", status_code=503)
        return HTMLResponse(DOCS_HTML)


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the fastapi-offline package (served locally: no CDN, works offline)."""
    try:
        path = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        log.warning("fastapi-offline is not installed: /docs is unavailable (the schema is at /openapi.json)")
        return None
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def _add_api(app: FastAPI, service: Service) -> None:
    image_body = schemas.IMAGE_REQUEST_BODY
    errors = schemas.ERROR_RESPONSES
    top_k_q = Query(None, description="how many alternatives to return (1-100, default 3)")
    model_q = Query(None, description="a model name from /api/models (default: the default model)")
    charset_q = Query(None, description="answer only within digits, upper, lower, letters or alnum (default: all)")

    async def work(request: Request, fn, *args):
        # In a worker thread, so the event loop keeps serving; at most `workers` at once, at most
        # `max_queue` more waiting, each for at most `request_timeout` seconds.
        state = request.app.state
        if state.pending >= state.max_pending:
            raise ApiError(503, f"the server is busy ({state.pending} recognitions running or waiting): "
                                "try again in a second", headers={"Retry-After": "1"})
        state.pending += 1
        try:
            with anyio.fail_after(state.request_timeout):
                # Abandoned on timeout: the thread finishes on its own and then frees its worker slot.
                return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=state.limiter,
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise ApiError(503, f"the recognition took longer than {state.request_timeout:g} s: try a smaller "
                                "image", headers={"Retry-After": "5"}) from None
        finally:
            state.pending -= 1

    @app.post("/api/predict", response_model=schemas.PredictResult, responses=errors,
              openapi_extra={"requestBody": image_body}, summary="Read one character")
    async def predict(request: Request, top_k: str | None = top_k_q, model: str | None = model_q,
                   charset: str | None = charset_q):
        data, options = await image_and_options(request)
        name, k, chars = pick_options(top_k, model, options, service.models, service.default, charset)
        return JSONResponse(await work(request, service.predict, data, name, k, chars))

    @app.post("/api/read", response_model=schemas.ReadResult, responses=errors,
              openapi_extra={"requestBody": image_body},
              summary="Read a string of characters (a number, a word, lines of them, a photo)")
    async def read(request: Request, top_k: str | None = top_k_q, model: str | None = model_q,
                   charset: str | None = charset_q):
        data, options = await image_and_options(request)
        name, k, chars = pick_options(top_k, model, options, service.models, service.default, charset)
        return JSONResponse(await work(request, service.read, data, name, k, chars))

    @app.get("/api/models", response_model=list[schemas.ModelInfo], summary="The models this server has")
    async def models():
        return JSONResponse(service.describe())

    @app.get("/api/health", response_model=schemas.Health, summary="Liveness: the models are loaded")
    async def health(request: Request):
        return JSONResponse({"status": "ok", "models": list(service.models),
                             "uptime_s": round(time.time() - request.app.state.started, 3)})
