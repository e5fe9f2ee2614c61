"""Scrawl's web app: a drawing page and a REST API (`scrawl serve`).

`create_app()` builds the FastAPI application; the models are loaded once, when it starts (lifespan).
Importing this package loads FastAPI but not torch: the models and OpenCV are imported at startup.
"""

from .app import create_app

__all__ = ["create_app"]
