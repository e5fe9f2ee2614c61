"""The model card: everything needed to rebuild, run and describe a model, in one typed object.

It travels inside every checkpoint (as `meta`) and is the ONNX sidecar (plus the export's own fields),
so a model file rebuilds its network and reads images without any flags (nanoGPT's
`GPTConfig(**model_args)` idea). `ModelCard.from_dict` is the one place a card is validated; files
written before cards had a task (checkpoint format 1, ONNX sidecar format 1) load as `classify`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CheckpointError
from ..tasks import DEFAULT_TASK, TASKS, Task, get_task
from ..vision import FrameSpec


@dataclass
class ModelCard:
    arch: str  # architecture name in scrawl.models (e.g. "scrawlnet")
    model_config: dict  # its constructor arguments, num_classes included
    classes: list[str]  # output index -> character (a sequence task's alphabet)
    frame: FrameSpec  # how an image is laid out as the model's input
    task: str = DEFAULT_TASK  # "classify" (one character per image); see scrawl.tasks
    dataset: dict = field(default_factory=dict)  # what it was trained on: name, sizes, extra sources, split seed
    train_config: dict | None = None  # the TrainConfig of the run that made it
    history: list = field(default_factory=list)  # one row per epoch: losses, accuracies, seconds
    metrics: dict = field(default_factory=dict)  # headline figures, e.g. {"best_val_acc": 0.99}
    parameters: int | None = None  # trainable parameters
    description: str | None = None  # one line for people (the web app's model picker)
    extra: dict = field(default_factory=dict)  # anything else the file carries (versions, created, run, export)

    @property
    def task_impl(self) -> Task:
        return get_task(self.task)

    def to_dict(self) -> dict:
        """JSON-safe; the card's own fields first, then `extra` flattened beside them."""
        out: dict[str, Any] = {"arch": self.arch, "model_config": dict(self.model_config), "classes": list(self.classes),
                               "frame": self.frame.to_dict(), "task": self.task, "dataset": dict(self.dataset)}
        if self.train_config is not None:
            out["train_config"] = dict(self.train_config)
        out["history"] = list(self.history)
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        if self.parameters is not None:
            out["parameters"] = int(self.parameters)
        if self.description is not None:
            out["description"] = self.description
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "model") -> "ModelCard":
        """Validate a card read from a file; CheckpointError naming `where` and the problem."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: damaged metadata: not a mapping")
        missing = [k for k in ("arch", "model_config", "classes", "frame") if k not in d]
        if missing:
            raise CheckpointError(f"{where}: damaged metadata: lacks {', '.join(missing)}")

        def bad(what: str):
            return CheckpointError(f"{where}: damaged metadata: {what}")

        if not isinstance(d["arch"], str) or not d["arch"]:
            raise bad('"arch" must name an architecture')
        if not isinstance(d["model_config"], dict):
            raise bad('"model_config" must be a mapping')
        classes = d["classes"]
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise bad('"classes" must be a list of labels')
        task = d.get("task", DEFAULT_TASK)
        if task not in TASKS:
            raise CheckpointError(f"{where}: a model for task {task!r}, which this Scrawl does not know "
                                  f"(it knows {', '.join(TASKS)}); upgrade Scrawl to use it")
        try:
            frame = FrameSpec.from_dict(d["frame"])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise bad(f"bad frame spec {d['frame']!r}: {exc}") from None
        for key, kind in (("dataset", dict), ("history", list), ("metrics", dict)):
            if key in d and not isinstance(d[key], kind):
                raise bad(f"{key!r} must be a {kind.__name__}")
        if d.get("train_config") is not None and not isinstance(d["train_config"], dict):
            raise bad('"train_config" must be a mapping')
        params = d.get("parameters")
        if params is not None and (isinstance(params, bool) or not isinstance(params, int)):
            raise bad('"parameters" must be a whole number')
        own = {f.name for f in fields(cls)}
        return cls(arch=d["arch"], model_config=dict(d["model_config"]), classes=list(classes), frame=frame,
                   task=task, dataset=dict(d.get("dataset") or {}), train_config=d.get("train_config"),
                   history=list(d.get("history") or []), metrics=dict(d.get("metrics") or {}),
                   parameters=params, description=d.get("description"),
                   extra={k: v for k, v in d.items() if k not in own})

    def build_model(self):
        """The untrained network this card describes (torch is imported here)."""
        from ..models import build_model, model_task

        if model_task(self.arch) != self.task:
            raise ValueError(f"architecture {self.arch!r} is for task {model_task(self.arch)!r}, the card says {self.task!r}")
        return build_model(self.arch, **self.model_config)
