"""What the API does, without HTTP: the loaded models and the predict / read / describe answers.

Loaded once (Service.load, from the app's lifespan) and shared by all requests; the methods are called
from the thread pool: torch's inference is thread-safe for a model in eval mode, and so is ONNX Runtime's
InferenceSession.run. With runtime "onnx" nothing here imports torch. The torch models are served with
their batch norms folded into the convolutions (Recognizer(optimize=True)); the "uncertain" threshold
is scrawl.settings.UNCERTAIN_BELOW unless the app is given another.

Two kinds of model: "character" models (task classify) read one character per image (/api/predict) and,
through the segmenter, strings of them (a model with the reject class also says when an image, or a
piece of ink, is not a character: `rejected`); "line" models (task ctc) read whole lines (/api/read only).
/api/read uses the first line model unless told otherwise, or the default character model (segmenter)
when the server has no line model. The word prior (a Lexicon) is loaded with the line models.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from pathlib import Path

from ..errors import EmptyImageError, ScrawlError
from ..labels import NOT_A_CHARACTER, characters_of, charsets_for
from ..settings import UNCERTAIN_BELOW
from .reading import read_lines, read_segmented

log = logging.getLogger(__name__)

NOTHING = "nothing to read"


class Service:
    def __init__(self, models: list[str] | tuple[str, ...], *, runtime: str = "torch", threads: int = 1,
                 uncertain_below: float = UNCERTAIN_BELOW, max_characters: int | None = None):
        from ..runtime.files import resolve_model  # no torch here: only the torch runtime imports it, at load

        self.runtime = runtime
        self.sources: dict[str, str] = {}
        for model in models:
            path = resolve_model(model, runtime)  # a missing file or unknown name is a clear error now, not at startup
            if runtime == "onnx":
                from ..runtime.onnx import check_onnx_file

                check_onnx_file(path)  # so is a missing or mismatched sidecar
            name = _model_name(model)
            if name in self.sources:
                raise ScrawlError(f"two models are named {name!r}: rename one of the checkpoint files")
            self.sources[name] = str(model)
        self.default = next(iter(self.sources))
        self.threads = threads
        self.uncertain_below = uncertain_below
        self.max_characters = max_characters
        self.models: dict = {}  # name -> Recognizer, filled by load()
        self.kinds: dict[str, str] = {}  # name -> "character" or "line", filled by load()
        self.lexicon = None  # the word prior, loaded with the first line model

    def load(self) -> None:
        import numpy as np

        from ..runtime.recognizer import Recognizer

        if self.runtime == "torch" and self.threads:
            import torch

            torch.set_num_threads(self.threads)  # process-wide in torch; per session in ONNX Runtime
        if self.threads:
            import cv2

            # Preprocessing too: OpenCV's thread pool costs more than it gains on one small image
            # (measured: frame() 1.39 -> 1.14 ms), and concurrent requests use the other cores.
            cv2.setNumThreads(self.threads)
        for name, source in self.sources.items():
            t = time.perf_counter()
            # optimize: torch models are served with batch norm folded into the convolutions (~1.5x
            # faster on one thread); ONNX Runtime fuses batch norms itself (graph optimizations).
            rec = Recognizer(source, runtime=self.runtime, threads=self.threads, optimize=True)
            kind = "line" if rec.card.task == "ctc" else "character"
            # Warm-up: the first call allocates; no request should pay for it.
            size = rec.spec.size
            if kind == "line":
                rec.logits(np.zeros((1, 1, size, 8 * size), np.float32))  # a line about 8 heights long
                self._load_lexicon()
            else:
                rec.predict_framed(np.zeros((1, size, size), np.float32))
            self.models[name] = rec
            self.kinds[name] = kind
            log.info("loaded %s model %s (%d classes, %s runtime) from %s in %.2f s", kind, name, len(rec.classes),
                     self.runtime, rec.path, time.perf_counter() - t)

    def _load_lexicon(self) -> None:
        if self.lexicon is None:
            from ..tasks.lexicon import Lexicon

            self.lexicon = Lexicon()
            self.lexicon.prior("warm up the word tables")  # wordfreq loads its tables on first use
            self.lexicon.vocabulary()  # and the known words re-spelling looks up (~0.3 s), not in a request

    def default_for(self, kind: str) -> str | None:
        """The model used when a request names none: for "character" or "line" the first loaded model of
        that kind (the app's default model first); for "read" the first line model, else the default
        character model (read through the segmenter); None if there is none."""
        if kind == "read":
            return self.default_for("line") or self.default_for("character")
        names = [self.default, *self.models]
        return next((n for n in names if self.kinds.get(n) == kind), None)

    # --- answers ------------------------------------------------------------------------------

    def predict(self, data: bytes, name: str, top_k: int, charset: str | None = None) -> dict:
        rec = self.models[name]
        try:
            framed = rec.frame(data)
        except EmptyImageError as exc:
            return {"model": name, "empty": True, "message": f"{NOTHING}: {exc}", "label": None,
                    "confidence": 0.0, "uncertain": True, "top_k": [], "not_a_character": 0.0, "rejected": False,
                    "framed": None}
        pred = rec.predict_framed(framed[None], top_k=top_k, charset=charset)[0]
        return {"model": name, "empty": False, "message": None, **self._character(pred)}

    def read(self, data: bytes, name: str, top_k: int, charset: str | None = None, lexicon: bool = False) -> dict:
        """The /api/read answer (scrawl.web.reading): a line model reads lines, a character model reads
        through the segmenter. EmptyImageError when there is nothing to read."""
        from ..vision.segment import MAX_CHARACTERS

        rec = self.models[name]
        if self.kinds[name] == "line":
            out = read_lines(rec, data, top_k=top_k, charset=charset, lexicon=self.lexicon if lexicon else None,
                             uncertain_below=self.uncertain_below)
        else:
            out = read_segmented(rec, data, top_k=top_k, charset=charset, character=self._character,
                                 max_characters=self.max_characters or MAX_CHARACTERS)
        return {"model": name, **out}

    def _character(self, pred) -> dict:
        d = pred.to_dict()  # label, confidence, top_k, not_a_character, rejected
        # Prediction.uncertain's rule with the app's threshold: a rejected image is never a sure answer.
        d["uncertain"] = pred.rejected or pred.confidence < self.uncertain_below
        d["framed"] = framed_png(pred.framed)
        return d

    def describe(self) -> list[dict]:
        from ..runtime.files import BUNDLED, BUNDLED_TITLES

        out = []
        for name, rec in self.models.items():
            meta = rec.meta
            classes = list(rec.classes)
            trained_on = (meta.get("dataset") or {}).get("name")
            # A bundled model by its short title; a user's file by its stem (the name), even one called digits.pt.
            title = BUNDLED_TITLES.get(name, name) if self.sources.get(name) in BUNDLED else name
            kind = self.kinds[name]
            description = meta.get("description") or _describe(classes, meta.get("arch"), trained_on or "unknown data",
                                                               kind)
            out.append({"name": name, "title": title, "kind": kind, "default": name == self.default_for(kind),
                        "classes": classes, "charsets": _charsets(classes, kind), "description": description,
                        "arch": meta.get("arch"), "trained_on": trained_on})
        return out


def _charsets(classes: list[str], kind: str) -> list[str]:
    """The charsets worth offering: those that change the answers. A line model keeps its space and
    punctuation under a charset of letters (scrawl.runtime.reader), so "alnum" changes nothing there."""
    sets = charsets_for(classes)
    if kind != "line":
        return sets
    from ..runtime.reader import allowed_classes

    return [s for s in sets if len(allowed_classes(classes, s)) < len(classes)]


def _model_name(model: str) -> str:
    from ..runtime.files import BUNDLED

    if model in BUNDLED:
        return model
    return Path(os.fspath(model)).stem


def _describe(classes: list[str], arch, trained_on: str, kind: str = "character") -> str:
    chars = characters_of(classes)
    if kind == "line":
        what = f"lines of handwriting: numbers, words and punctuation ({len(classes)} characters, space included)"
    elif chars == [str(i) for i in range(10)]:
        what = "handwritten digits 0-9"
    else:
        shown = "".join(chars) if all(len(c) == 1 for c in chars) and len(chars) <= 62 else f"{len(chars)} classes"
        what = f"handwritten characters ({shown})"
    if kind != "line" and NOT_A_CHARACTER in classes:
        what += ", or not a character (a tap, a dash, a scribble)"
    return f"{what}; {arch} network trained on {trained_on}"


def framed_png(framed) -> str:
    """The model's 28x28 input as a PNG data URL, as-is (light ink on black, like MNIST)."""
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", (np.clip(framed, 0, 1) * 255 + 0.5).astype(np.uint8))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
