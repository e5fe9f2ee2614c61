"""The API's FastAPI dependencies: the loaded Service, a recognition request's image and options (one for
/api/predict, one for /api/read), and the worker pool that limits how many recognitions run and wait
at once.

The Service and the WorkerPool are made once by the app (create_app / its lifespan) and kept in
`app.state`; these functions hand them to the routes. All are `async def`, so FastAPI calls them on the
event loop rather than in a thread.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import anyio
from fastapi import Depends, Query, Request

from .inputs import ApiError, image_and_options, parse_lexicon, pick_options
from .schemas import OPTION_DOCS
from .service import Service


async def get_service(request: Request) -> Service:
    """The app's Service: its models are loaded at startup and shared by every request."""
    return request.app.state.service


@dataclass(frozen=True)
class Recognition:
    """What a predict / read request asks for: the image bytes and its checked options."""

    image: bytes
    model: str  # a loaded model's name
    top_k: int
    charset: str | None  # None: all of the model's classes
    lexicon: bool = False  # /api/read with a line model: the word prior (Lexicon.search)


# The options in the query string: plain strings, checked by pick_options (so that a bad value gets the
# API's own 422 message, not a generic validation error).
TOP_K_QUERY = Query(None, description=OPTION_DOCS["top_k"])
MODEL_QUERY = Query(None, description=OPTION_DOCS["model"])
READ_MODEL_QUERY = Query(None, description=OPTION_DOCS["read_model"])
CHARSET_QUERY = Query(None, description=OPTION_DOCS["charset"])
LEXICON_QUERY = Query(None, description=OPTION_DOCS["lexicon"])


async def recognition(request: Request, top_k: str | None = TOP_K_QUERY, model: str | None = MODEL_QUERY,
                      charset: str | None = CHARSET_QUERY,
                      service: Service = Depends(get_service)) -> Recognition:
    """/api/predict's image and options (the body's JSON keys or form fields, else the query string's):
    400 / 415 for a malformed body, 422 for a bad option or a model that reads lines, not characters."""
    data, options = await image_and_options(request)
    default = service.default_for("character")
    if default is None:
        raise ApiError(422, "this server has no single-character model: send the image to POST /api/read")
    name, k, chars = pick_options(top_k, model, options, service.models, default, charset)
    if service.kinds[name] != "character":
        others = ", ".join(n for n, kind in service.kinds.items() if kind == "character")
        raise ApiError(422, f"model {name!r} reads lines of handwriting, not one character: send the image to "
                            f"POST /api/read (for /api/predict choose one of {others})")
    return Recognition(data, name, k, chars)


async def read_recognition(request: Request, top_k: str | None = TOP_K_QUERY, model: str | None = READ_MODEL_QUERY,
                           charset: str | None = CHARSET_QUERY, lexicon: str | None = LEXICON_QUERY,
                           service: Service = Depends(get_service)) -> Recognition:
    """/api/read's image and options, as for /api/predict plus `lexicon`; any loaded model (a character
    model reads through the segmenter), by default the first line model."""
    data, options = await image_and_options(request)
    name, k, chars = pick_options(top_k, model, options, service.models, service.default_for("read"), charset)
    use_lexicon = parse_lexicon(options.get("lexicon", lexicon))
    if use_lexicon and service.kinds[name] != "line":
        raise ApiError(422, f"lexicon works with a line model; {name!r} reads one character at a time "
                            "(the segmenter): leave lexicon out or choose a line model")
    return Recognition(data, name, k, chars, use_lexicon)


class WorkerPool:
    """The concurrency limit: recognitions run in worker threads (so the event loop keeps serving), at most
    `workers` at once and at most `max_queue` more waiting; each may take at most `timeout` seconds,
    waiting included. Past the queue a request is refused at once (503 + Retry-After) instead of waiting
    without bound: a queue nobody can drain only adds latency and memory. Made in the app's lifespan (its
    limiter belongs to the running event loop)."""

    def __init__(self, workers: int, max_queue: int, timeout: float):
        self.limiter = anyio.CapacityLimiter(workers)
        self.pending = 0  # recognitions running or waiting
        self.max_pending = workers + max(0, max_queue)
        self.timeout = timeout

    async def run(self, fn, *args):
        """fn(*args) in a worker thread, within the limits; ApiError(503) when busy or too slow."""
        if self.pending >= self.max_pending:
            raise ApiError(503, f"the server is busy ({self.pending} recognitions running or waiting): "
                                "try again in a second", headers={"Retry-After": "1"})
        self.pending += 1
        try:
            with anyio.fail_after(self.timeout):
                # Abandoned on timeout: the thread finishes on its own and then frees its worker slot.
                return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self.limiter,
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise ApiError(503, f"the recognition took longer than {self.timeout:g} s: try a smaller "
                                "image", headers={"Retry-After": "5"}) from None
        finally:
            self.pending -= 1


async def worker_pool(request: Request) -> WorkerPool:
    """The app's WorkerPool (see WorkerPool)."""
    return request.app.state.workers
