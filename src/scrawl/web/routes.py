"""The REST API's routes, on an APIRouter: /api/predict, /api/read, /api/models, /api/limits and /api/health.

Each route only wires things together: its dependencies (scrawl.web.deps) give it the Service, the
request's image and checked options, and the worker pool that runs the recognition within the
concurrency limit; the Service gives the answer, which is returned as JSON as it is.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from .deps import Recognition, WorkerPool, get_service, read_recognition, recognition, worker_pool
from .schemas import (ERROR_RESPONSES, IMAGE_REQUEST_BODY, READ_REQUEST_BODY, Health, Limits, ModelInfo,
                      PredictResult, ReadResult)
from .service import Service

router = APIRouter(prefix="/api")

_IMAGE = {"requestBody": IMAGE_REQUEST_BODY}  # documented here; read by deps.recognition
_READ = {"requestBody": READ_REQUEST_BODY}  # read by deps.read_recognition
_ERRORS = ERROR_RESPONSES


@router.post("/predict", response_model=PredictResult, responses=_ERRORS, openapi_extra=_IMAGE,
             summary="Read one character")
async def predict(job: Recognition = Depends(recognition), service: Service = Depends(get_service),
                  pool: WorkerPool = Depends(worker_pool)):
    return JSONResponse(await pool.run(service.predict, job.image, job.model, job.top_k, job.charset))


@router.post("/read", response_model=ReadResult, responses=_ERRORS, openapi_extra=_READ,
             summary="Read lines of handwriting (a number, a word, a page, a photo)")
async def read(job: Recognition = Depends(read_recognition), service: Service = Depends(get_service),
               pool: WorkerPool = Depends(worker_pool)):
    return JSONResponse(await pool.run(service.read, job.image, job.model, job.top_k, job.charset, job.lexicon))


@router.get("/models", response_model=list[ModelInfo], summary="The models this server has")
async def models(service: Service = Depends(get_service)):
    return JSONResponse(service.describe())


@router.get("/limits", response_model=Limits, summary="The limits on requests, images and answers")
async def limits(request: Request):
    return JSONResponse(request.app.state.limits)


@router.get("/health", response_model=Health, summary="Liveness: the models are loaded")
async def health(request: Request, service: Service = Depends(get_service)):
    return JSONResponse({"status": "ok", "models": list(service.models),
                         "uptime_s": round(time.time() - request.app.state.started, 3)})
