"""Scrawl: read handwriting — digits, letters and strings of them.

Nothing heavy is imported here: `from scrawl import Recognizer` loads torch only when a model is
loaded with the torch runtime (the onnx runtime never does).
"""

__version__ = "0.1.0"

__all__ = ["Recognizer", "__version__"]


def __getattr__(name):
    # Lazy so that `import scrawl` (and `scrawl --help`) stay fast.
    if name == "Recognizer":
        from .runtime.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'scrawl' has no attribute {name!r}")
