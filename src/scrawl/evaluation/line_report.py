"""A line model's evaluation report: report.md with the headline figures, CER by line length and by
writer, the most confused characters, and worst_lines.png (the worst-read lines with what was read).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write
from .plots import _new_figure, _rc, _save_figure


def plot_worst_lines(ev, path: Path, max_lines: int) -> Path | None:
    """The lines with the most character errors (relative to their length), each with truth and reading."""
    from rapidfuzz.distance import Levenshtein

    rates = [Levenshtein.distance(t, r) / max(1, len(t)) for t, r in zip(ev.texts, ev.read)]
    order = [i for i in np.argsort(rates, kind="stable")[::-1] if rates[i] > 0][:max_lines]
    if not order:
        return None
    with _rc():
        fig = _new_figure(8, 0.9 * len(order) + 0.3)
        for row, i in enumerate(order):
            ax = fig.add_subplot(len(order), 1, row + 1)
            ax.imshow(ev.images[i], cmap="gray", vmin=0, vmax=255, aspect="equal")
            ax.set_axis_off()
            ax.set_title(f"true {ev.texts[i]!r}   read {ev.read[i]!r}   CER {rates[i]:.0%}", fontsize=8, loc="left")
        fig.tight_layout()
        return _save_figure(fig, path)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_line_report(out_dir: Path, ev, max_lines: int = 24) -> dict[str, Path]:
    """report.md, metrics.json and worst_lines.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m, paths = ev.metrics, {}
    worst = plot_worst_lines(ev, out_dir / "worst_lines.png", max_lines)
    if worst is not None:
        paths["worst_lines"] = worst
    atomic_write(out_dir / "metrics.json", json.dumps({"info": ev.info, "metrics": ev.metrics}, indent=2) + "\n")
    paths["metrics"] = out_dir / "metrics.json"
    lines = [f"# Scrawl line evaluation: {ev.info.get('dataset')}", ""]
    lines += [f"- {k}: {v}" for k, v in ev.info.items()]
    lines += ["", f"**CER {m['cer']:.2%}**, WER {m['wer']:.2%}, exact lines {m['exact']:.2%}, "
                  f"word accuracy {m['word_accuracy']:.2%} ({m['n']} lines, {m['characters']} characters, "
                  f"{m['words']} words)", ""]
    if "with_word_prior" in m:
        w = m["with_word_prior"]
        lines += [f"With the word prior: CER {w['cer']:.2%}, WER {w['wer']:.2%}, exact {w['exact']:.2%}, "
                  f"word accuracy {w['word_accuracy']:.2%}", ""]
    lines += ["## CER by line length", ""]
    lines += _table(["characters", "lines", "CER"],
                    [[k, v["lines"], f"{v['cer']:.2%}"] for k, v in m["cer_by_length"].items()])
    if m["cer_by_writer"]:
        writers = m["cer_by_writer"]
        lines += ["", f"## CER by writer ({len(writers)} writers; the 10 hardest, then the median)", ""]
        median = sorted(w["cer"] for w in writers)[len(writers) // 2]
        lines += _table(["writer", "lines", "CER"], [[w["writer"], w["lines"], f"{w['cer']:.2%}"] for w in writers[:10]])
        lines += ["", f"Median writer CER: {median:.2%}"]
    lines += ["", "## Most confused characters", ""]
    lines += _table(["true", "read", "count"],
                    [[repr(c["true"]) if c["true"] else "(inserted)", repr(c["read"]) if c["read"] else "(missed)",
                      c["count"]] for c in m["confusions"]])
    if worst is not None:
        lines += ["", "## Worst lines", "", "![worst lines](worst_lines.png)"]
    atomic_write(out_dir / "report.md", "\n".join(lines) + "\n")
    paths["report"] = out_dir / "report.md"
    return paths
