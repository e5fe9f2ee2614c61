"""Batch reading: many image files through one Recognizer, fast and in the order given.

`expand_paths` turns what a user typed (files, folders, globs) into files. `predict_files(recognizer,
paths)` yields ``(path, Prediction)`` or ``(path, ScrawlError)`` for every path, in input order, with
the answers `Recognizer.predict` gives one file at a time: the same framing (scrawl.vision.frame with
the model's FrameSpec), the same model, the same error for a file that cannot be read (ImageError,
EmptyImageError, a charset the model cannot answer, ...).

For a few files (fewer than POOL_MIN_FILES) it is exactly `Recognizer.predict`, one file after the
other: no process pool to start. For more, worker processes decode and frame (`frame_files`), CHUNK
files per task with a bounded number of tasks in flight (memory stays flat over a million files),
while this process runs the model on batches of up to BATCH_SIZE framed images
(`Recognizer.predict_framed`): torch at one thread (on a small or shared machine single-threaded
processes keep going where an OpenMP pool stalls on its slowest thread), ONNX Runtime on every core
with threads that sleep between model calls (create the Recognizer with ``spin=False``; busy-waiting
threads would take the CPUs the workers need). A batch's probabilities can differ from one-at-a-time
ones in the last digit (torch picks other kernels for a batch), never in a label. With an ONNX model,
`scrawl predict` goes further: a FramePool made with the model's file has its workers read the files
to the end (`FramePool.read`, ONNX Runtime at one thread each), so no process waits for another and
only the answers cross between them: the same answers, with less CPU time.

The workers (`FramePool`) are spawned, fresh interpreters that import NumPy, OpenCV and Pillow (and
ONNX Runtime when the pool has a model), never torch: safe whatever threads this process runs (a forked child of a process whose
OpenCV thread pool is running deadlocks), on every platform. As for any multiprocessing code, a script
that reads many files must guard its entry point with ``if __name__ == "__main__":``. Start the pool
before loading the model (`scrawl predict` does) and the workers get ready while it loads. They ignore
Ctrl+C: the parent stops them.
"""

from __future__ import annotations

import glob
import itertools
import os
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ScrawlError
from ..settings import TOP_K

if TYPE_CHECKING:  # pragma: no cover
    from ..vision.framing import FrameSpec
    from .recognizer import Prediction, Recognizer

__all__ = ["BATCH_SIZE", "CHUNK", "IMAGE_SUFFIXES", "POOL_MIN_FILES", "FramePool", "default_workers", "expand_images",
           "expand_paths", "frame_files", "predict_files"]

# What a folder given to `scrawl predict` is read for.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

# Below this many files a process pool costs more than it saves (starting a worker takes ~0.3 s).
POOL_MIN_FILES = 64
# Framed images per model call: large enough that the per-call overhead vanishes, small enough that
# the first answers come quickly and the workers never wait for the model.
BATCH_SIZE = 256
# Files per worker task: amortises the inter-process round trip (~0.1 ms) over ~30 ms of framing, and
# frame_many's per-chunk histogram arithmetic over the chunk (small scans: 0.15 ms/file at 32, 0.14 at 64).
CHUNK = 64
# Tasks in flight per worker: enough to keep every worker busy while the model runs.
IN_FLIGHT_PER_WORKER = 4


def expand_paths(patterns: Sequence[str]) -> list[str]:
    """Files as given, folders as their image files (sorted), globs expanded. Unknown paths are kept
    so they get a per-file error."""
    out: list[str] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir():
            out.extend(sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif not p.exists() and glob.has_magic(pat):
            matches = sorted(m for m in glob.glob(pat, recursive=True) if os.path.isfile(m))
            out.extend(matches if matches else [pat])
        else:
            out.append(pat)
    return out


def expand_images(patterns: Sequence[str]) -> list[str]:
    """`expand_paths`, and a ScrawlError when that leaves nothing to read (only folders without images)."""
    paths = expand_paths(patterns)
    if not paths:
        raise ScrawlError(f"no images to read in {', '.join(map(str, patterns))}: a folder is read for "
                          f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
    return paths


def default_workers() -> int:
    """Worker processes for framing: one per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return max(1, os.cpu_count() or 1)


# In a worker of a FramePool made with an ONNX model: the Recognizer that reads its chunks.
_WORKER_READER: Recognizer | ScrawlError | None = None


def _init_worker(model: str | None = None) -> None:
    import cv2

    from .. import vision  # noqa: F401 (imported now, while the parent loads its model)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    cv2.setNumThreads(1)  # one image at a time per process; the processes are the parallelism
    if model is not None:
        global _WORKER_READER
        from .recognizer import Recognizer

        try:
            _WORKER_READER = Recognizer(model, runtime="onnx", threads=1)  # the processes are the parallelism
        except ScrawlError as exc:  # a bad file: the parent, loading it too, says so; a read raises it
            _WORKER_READER = exc


def _ready() -> None:
    """A task that only makes a worker start."""


def _frame_chunk(paths: Sequence[str], spec: FrameSpec) -> tuple[np.ndarray, dict[int, ScrawlError]]:
    """In a worker: (the framed images of the files that could be read, stacked; {index: error})."""
    from ..vision.scans import frame_many

    framed, errors = [], {}
    for i, item in enumerate(frame_many(paths, spec)):  # = frame(path, spec) each, small scans together
        if isinstance(item, ScrawlError):
            errors[i] = item
        else:
            framed.append(item)
    stacked = np.stack(framed) if framed else np.zeros((0, spec.size, spec.size), np.float32)
    return stacked, errors


def _read_chunk(paths: Sequence[str], top_k: int, charset: str | None) -> list:
    """In a worker with a model: each file's Prediction or ScrawlError, as predict_files gives them."""
    from ..vision.scans import frame_many

    if isinstance(_WORKER_READER, ScrawlError):
        raise _WORKER_READER
    group = list(zip(paths, frame_many(paths, _WORKER_READER.spec)))
    return [answer for _, answer in _predict_group(_WORKER_READER, group, top_k, charset)]


class FramePool:
    """Worker processes that decode and frame image files, started at once: create it before loading
    the model and they get ready (~0.3 s each) while it loads. A context manager; `close` stops them.
    model: an exported .onnx file that each worker loads too (ONNX Runtime, one thread), so that the
    workers read the files to the end (`read`) and only the answers come back: no process waits for
    another's model calls, and no framed batch crosses between processes (predict_files does this
    when the pool's model is the recognizer's).

    >>> with FramePool() as pool:
    ...     rec = Recognizer("digits")
    ...     answers = list(predict_files(rec, paths, pool=pool))
    """

    def __init__(self, workers: int | None = None, model: str | os.PathLike | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = default_workers() if workers is None else max(1, int(workers))
        self.model = None if model is None else Path(model)
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                         initargs=(None if model is None else str(model),))
        for _ in range(self.workers):  # each submit starts a worker until there are enough
            self._pool.submit(_ready)

    @classmethod
    @contextmanager
    def start(cls, files: int, workers: int | None = None,
              model: str | os.PathLike | None = None) -> Iterator[FramePool | None]:
        """A pool for reading `files` files, or None when they are too few to be worth one."""
        if files < POOL_MIN_FILES or (workers is not None and workers <= 1):
            yield None
            return
        with cls(workers, model) as pool:
            yield pool

    def frame(self, paths: Sequence[str], spec: FrameSpec, chunk: int = CHUNK) -> Iterator[np.ndarray | ScrawlError]:
        """Each file's framed image or ScrawlError, in input order (see `frame_files`)."""
        for n, (framed, errors) in self._in_order(_frame_chunk, paths, chunk, spec):
            good = iter(framed)
            for i in range(n):
                yield errors[i] if i in errors else next(good)

    def read(self, paths: Sequence[str], top_k: int = TOP_K, charset: str | None = None,
             chunk: int = CHUNK) -> Iterator[Prediction | ScrawlError]:
        """With a model: each file's Prediction or ScrawlError, in input order, read in the workers."""
        if self.model is None:
            raise ValueError("this FramePool has no model to read with: FramePool(model=...)")
        for _, answers in self._in_order(_read_chunk, paths, chunk, top_k, charset):
            yield from answers

    def _in_order(self, task, paths: Sequence[str], chunk: int, *args) -> Iterator[tuple[int, object]]:
        """(chunk length, task(chunk, *args)) for each chunk of paths, in order, with a bounded number
        of tasks in flight."""
        from concurrent.futures.process import BrokenProcessPool

        chunks = (paths[i : i + chunk] for i in range(0, len(paths), chunk))
        pending: deque = deque((len(part), self._pool.submit(task, part, *args))
                               for part in itertools.islice(chunks, self.workers * IN_FLIGHT_PER_WORKER))
        try:
            while pending:
                n, future = pending.popleft()
                part = next(chunks, None)
                if part is not None:
                    pending.append((len(part), self._pool.submit(task, part, *args)))
                yield n, future.result()
        except BrokenProcessPool:
            raise ScrawlError("a worker process reading the images stopped unexpectedly (out of memory? or a "
                              "script that starts Scrawl without `if __name__ == \"__main__\":`); "
                              "workers=1 reads them in this process") from None
        finally:
            for _, future in pending:
                future.cancel()

    def close(self) -> None:
        # wait=True: with wait=False the executor's manager thread may close its wake-up pipe while
        # Python's exit hook still writes to it ("OSError: Bad file descriptor" on stderr, seen under load)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FramePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def frame_files(paths: Sequence[str], spec: FrameSpec, *, workers: int | None = None,
                chunk: int = CHUNK) -> Iterator[np.ndarray | ScrawlError]:
    """Each file's framed image ((H, W) float32, as `scrawl.vision.frame` makes it) or the ScrawlError
    framing it raised, in input order, framed by `workers` processes (default: one per CPU; 1, or
    fewer than POOL_MIN_FILES files: in this process). Other exceptions (bugs) propagate."""
    from ..vision import frame

    with FramePool.start(len(paths), workers) as pool:
        if pool is not None:
            yield from pool.frame(paths, spec, chunk)
            return
        for path in paths:
            try:
                yield frame(path, spec)
            except ScrawlError as exc:
                yield exc


def predict_files(recognizer: Recognizer, paths: Sequence[str], *, top_k: int = TOP_K, charset: str | None = None,
                  batch_size: int = BATCH_SIZE, workers: int | None = None, pool: FramePool | None = None,
                  progress: bool = False) -> Iterator[tuple[str, Prediction | ScrawlError]]:
    """(path, Prediction) or (path, ScrawlError) for each of `paths`, in order (see the module's
    docstring). pool: a started FramePool to frame with (else one is started here when there are
    POOL_MIN_FILES files or more). progress: a tqdm bar on stderr (files, images/s)."""
    recognizer.require_characters()  # a line model reads (Recognizer.read), it does not predict
    paths = [os.fspath(p) for p in paths]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="reading", unit="img")
    try:
        if len(paths) < POOL_MIN_FILES:  # exactly Recognizer.predict, file by file
            for path in paths:
                yield path, _predict_one(recognizer, path, top_k, charset)
                if bar is not None:
                    bar.update(1)
            return
        if pool is not None and pool.model is not None and recognizer.runtime == "onnx" \
                and pool.model.resolve() == Path(recognizer.path).resolve():
            for i, answer in enumerate(pool.read(paths, top_k, charset)):  # the workers read them
                yield paths[i], answer
                if bar is not None and i % CHUNK == CHUNK - 1:
                    bar.update(CHUNK)
            if bar is not None:
                bar.update(len(paths) % CHUNK)
            return
        with _one_thread(recognizer):
            spec = recognizer.spec
            framed = pool.frame(paths, spec) if pool else frame_files(paths, spec, workers=workers)
            for group in _batched(zip(paths, framed), batch_size):
                yield from _predict_group(recognizer, group, top_k, charset)
                if bar is not None:
                    bar.update(len(group))
    finally:
        if bar is not None:
            bar.close()


def _predict_one(recognizer: Recognizer, path: str, top_k: int, charset: str | None) -> Prediction | ScrawlError:
    try:
        return recognizer.predict(path, top_k=top_k, charset=charset)
    except ScrawlError as exc:
        return exc


def _predict_group(recognizer: Recognizer, group: list, top_k: int,
                   charset: str | None) -> Iterator[tuple[str, Prediction | ScrawlError]]:
    """One model call for the framed images of `group` [(path, framed or error)], answers in order.
    An error of the call itself (a charset the model cannot answer) is every framed file's answer,
    as it would have been one file at a time."""
    ok = [item for _, item in group if not isinstance(item, ScrawlError)]
    answers: Iterator = iter(())
    failure = None
    if ok:
        try:
            answers = iter(recognizer.predict_framed(np.stack(ok), top_k=top_k, charset=charset))
        except ScrawlError as exc:
            failure = exc
    for path, item in group:
        if isinstance(item, ScrawlError):
            yield path, item
        else:
            yield path, failure if failure is not None else next(answers)


def _batched(items, n: int) -> Iterator[list]:
    it = iter(items)
    while group := list(itertools.islice(it, n)):
        yield group


@contextmanager
def _one_thread(recognizer: Recognizer):
    """torch at one intra-op thread while the workers frame (restored afterwards): a second OpenMP
    thread would only fight the workers for the CPUs."""
    if recognizer.runtime != "torch":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
