"""Scrawl's web app: a drawing page and a REST API (`scrawl serve`).

`create_app()` (app.py) builds the FastAPI application: the Service (service.py: the models and the
answers, without HTTP; reading.py: the /api/read answers of a line model and of the segmenter), the
API's routes on an APIRouter (routes.py) with their dependencies (deps.py: request options, concurrency
limit), request parsing (inputs.py), the OpenAPI shapes (schemas.py), the pages (pages.py) and the size
and header guard (guard.py). The models are loaded once, when it starts
(lifespan). Importing this package loads FastAPI but not torch: the models and OpenCV are imported at
startup, and with runtime "onnx" torch never is.
"""

from .app import create_app

__all__ = ["create_app"]
