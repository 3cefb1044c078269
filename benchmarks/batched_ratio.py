"""Throughput of N concurrent requests against the same prompts alone, the two interleaved so that
the machine's drift hits both alike. A figure script, not a timed test.

Why: batched_rounds.py runs all prompts alone, then the concurrent batch. On a shared machine whose
speed drifts by 10-40% between runs, and by up to 20% within one (its N=1 row against the same
prompt alone), that order lets drift land on one side only. Here each repeat runs the first half of
the prompts alone, the N at once, the second half alone, and the N at once again; the ratio is
taken over all repeats' totals, and per repeat to show the spread. Outputs are compared with the
lone ones.

    python benchmarks/batched_ratio.py --concurrency 8 --max-new-tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

from batched_rounds import prompts

from specfuse_core import EnsembleConfig, SpecFuse


def alone(ensemble: SpecFuse, texts: list[str], tokens: int) -> tuple[int, float, list[str]]:
    """The prompts one after another: (tokens, seconds, texts)."""
    start, count, outputs = time.perf_counter(), 0, []
    for prompt in texts:
        result = ensemble.generate(prompt, max_new_tokens=tokens)
        count += result.usage.completion_tokens
        outputs.append(result.text)
    return count, time.perf_counter() - start, outputs


def together(ensemble: SpecFuse, texts: list[str], tokens: int) -> tuple[int, float, list[str]]:
    """The prompts at once, one thread each (their rounds share passes): (tokens, seconds, texts)."""
    results: dict[int, object] = {}

    def answer(index: int) -> None:
        results[index] = ensemble.generate(texts[index], max_new_tokens=tokens)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(len(texts))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ordered = [results[i] for i in range(len(texts))]
    return sum(r.usage.completion_tokens for r in ordered), wall, [r.text for r in ordered]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_batch_requests=args.concurrency))
    ensemble.generate("Warm up.", max_new_tokens=8)
    texts = prompts(args.concurrency)
    half = len(texts) // 2
    repeats, lone_texts, identical = [], None, True
    for repeat in range(args.repeats):
        a1 = alone(ensemble, texts[:half], args.max_new_tokens)
        c1 = together(ensemble, texts, args.max_new_tokens)
        a2 = alone(ensemble, texts[half:], args.max_new_tokens)
        c2 = together(ensemble, texts, args.max_new_tokens)
        lone_texts = a1[2] + a2[2]
        identical = identical and c1[2] == lone_texts and c2[2] == lone_texts
        alone_rate = (a1[0] + a2[0]) / (a1[1] + a2[1])
        together_rate = (c1[0] + c2[0]) / (c1[1] + c2[1])
        repeats.append({"alone_tokens": a1[0] + a2[0], "alone_s": round(a1[1] + a2[1], 2),
                        "together_tokens": c1[0] + c2[0], "together_s": round(c1[1] + c2[1], 2),
                        "alone_tokens_per_s": round(alone_rate, 2), "together_tokens_per_s": round(together_rate, 2),
                        "ratio": round(together_rate / alone_rate, 2)})
        print(json.dumps(repeats[-1]), flush=True)
    alone_rate = sum(r["alone_tokens"] for r in repeats) / sum(r["alone_s"] for r in repeats)
    together_rate = sum(r["together_tokens"] for r in repeats) / sum(r["together_s"] for r in repeats)
    report = {"concurrency": args.concurrency, "max_new_tokens": args.max_new_tokens, "repeats": repeats,
              "ratio_over_all": round(together_rate / alone_rate, 2),
              "ratio_median_of_repeats": round(statistics.median(r["ratio"] for r in repeats), 2),
              "outputs_identical_to_alone": identical}
    print(json.dumps({k: v for k, v in report.items() if k != "repeats"}))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
