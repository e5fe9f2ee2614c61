"""Tasks: what differs between kinds of recognizer, behind one small interface.

A task owns how targets are batched, the training loss, how outputs decode into answers (with a
charset), the metrics, and the shape of an exported model's output. The training loop, checkpoints,
evaluation, export and serving call the task named in the model card instead of assuming softmax over
classes: `classify` (one image, one character) and `ctc` (one image of a line, a sequence of
characters). `lexicon` is the line reader's optional word prior (wordfreq), which re-ranks a line's
n-best, re-spells its words from known words and never changes a number.
"""

from __future__ import annotations

from .base import Task
from .classify import ClassifyTask
from .ctc import CTCTask

TASKS: dict[str, Task] = {t.name: t for t in (ClassifyTask(), CTCTask())}
DEFAULT_TASK = "classify"  # what a model card without a task (checkpoint format 1) is


def get_task(name: str) -> Task:
    """The task called `name`; ValueError naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; this Scrawl knows: {', '.join(TASKS)}") from None


__all__ = ["DEFAULT_TASK", "TASKS", "CTCTask", "ClassifyTask", "Task", "get_task"]
