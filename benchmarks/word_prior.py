"""The word prior's weight (scrawl.tasks.lexicon.WEIGHT), chosen on lines the other benchmarks do not report.

Reads --lines lines of UNIPEN's validation writers (`line_test_set("unipen-words", limit=--lines,
skip=2000)`: past the 2,000 that benchmarks/read_lines.py and `scrawl evaluate line --limit 2000`
report) with the bundled line model through `Recognizer.read` (top_k 8), without a prior, and for
each --weights value with `Lexicon.rerank` alone (the model's n-best re-ranked) and with
`Lexicon.search` (what `--lexicon` does: the best reading's words also re-spelled from known words one
edit away). Prints and writes benchmarks/results/word_prior.{json,md}: CER, word accuracy, exact lines
and the median and mean read time per line for each (one thread; long lines cost the most).

    python benchmarks/word_prior.py [--lines 400] [--weights 0.3,0.6,1.0] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORTED = 2000  # lines the other benchmarks report, passed over here


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=400)
    ap.add_argument("--weights", default="0.3,0.6,1.0")
    ap.add_argument("--model", default="line")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)

    from scrawl.evaluation.lines import line_metrics, line_test_set
    from scrawl.runtime.recognizer import Recognizer
    from scrawl.tasks import lexicon as lexicon_module
    from scrawl.tasks.lexicon import Lexicon

    class RerankOnly(Lexicon):
        def search(self, logp, candidates, classes):
            return self.rerank(candidates)

    rec = Recognizer(args.model, runtime="onnx", threads=1)
    test = line_test_set("unipen-words", args.data_dir, limit=args.lines, skip=REPORTED)
    rows = []
    runs = [("none", None, None)] + [(way, float(w), kind) for w in args.weights.split(",")
                                     for way, kind in (("rerank", RerankOnly), ("search", Lexicon))]
    for way, weight, kind in runs:
        lexicon = None if kind is None else kind(weight=weight)
        if lexicon is not None:
            lexicon.prior("warm up")
            lexicon.vocabulary()
        read, seconds = [], []
        for image in test.images:
            t = time.perf_counter()
            read.append(rec.read(image, top_k=8, lexicon=lexicon).text.replace("\n", " "))
            seconds.append(time.perf_counter() - t)
        m = line_metrics(test.texts, read)
        rows.append({"prior": way, "weight": weight, "cer": m["cer"], "word_accuracy": m["word_accuracy"],
                     "exact": m["exact"], "median_ms": 1000 * statistics.median(seconds),
                     "mean_ms": 1000 * statistics.fmean(seconds)})
        print(f"{way:6} {weight if weight is not None else '':>5} CER {m['cer']:.2%}  word accuracy "
              f"{m['word_accuracy']:.2%}  exact {m['exact']:.2%}  {rows[-1]['median_ms']:.1f} ms/line "
              f"(mean {rows[-1]['mean_ms']:.1f})", flush=True)
    report = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "model": args.model,
              "lines": len(test.texts), "skipped": REPORTED, "default_weight": lexicon_module.WEIGHT, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "word_prior.json").write_text(json.dumps(report, indent=2) + "\n")
    md = ["# The word prior's weight (benchmarks/word_prior.py)", "",
          f"{report['lines']} lines of UNIPEN's validation writers past the {REPORTED} the other benchmarks "
          f"report, model {args.model} (ONNX Runtime, 1 thread), {report['when']}; Scrawl's weight: "
          f"{lexicon_module.WEIGHT}.", "",
          "| prior | weight | CER | word accuracy | exact lines | ms per line, median | mean |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {r['prior']} | {'' if r['weight'] is None else r['weight']} | {r['cer']:.2%} | "
           f"{r['word_accuracy']:.2%} | {r['exact']:.2%} | {r['median_ms']:.1f} | {r['mean_ms']:.1f} |" for r in rows]
    (args.out / "word_prior.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
