"""Is a greedy decode slower in a worker thread than in the main thread, or only in a fresh thread?

Why: a lone request in the batched-rounds benchmark ran 10-17% slower in a thread of its own than in
the main thread, and async callers and `specfuse serve` run rounds in worker threads. (Timed alternately,
as here, the gap was not there; the sixteenth session found why: see the caveat below.) This times
plain `transformers` `generate` of one member (no specfuse engine) alternately in the main thread, in
one long-lived worker thread (warmed once), and in a fresh thread per call, so the three share the
machine's state over the run. Ratios within one run only; a diagnostic, not a test. Caveat
(sixteenth session): the long-lived worker thread keeps an OpenMP team alive throughout, and libgomp
then slows every thread's parallel work alike, so this design hides a thread gap rather than showing
it (docs/performance.md, "OpenMP teams across threads").
``--ensemble`` times the whole tiny ensemble's streamed answer instead (the engine's own path, as the
batched-rounds benchmark drives it), alternating the same way.

    python benchmarks/worker_thread_decode.py --member qwen2.5-coder-0.5b --tokens 24 --repeats 5
    python benchmarks/worker_thread_decode.py --ensemble --tokens 64 --repeats 4
    python benchmarks/worker_thread_decode.py --ensemble --dtype bfloat16 --tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from collections.abc import Callable

import torch

from specfuse_core.loading import load_preset_members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", default="qwen2.5-coder-0.5b")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", help="the members' dtype (e.g. bfloat16)")
    parser.add_argument("--ensemble", action="store_true", help="time the preset's ensemble (SpecFuse.stream), not one member's generate")
    args = parser.parse_args()
    decode = ensemble_decode(args) if args.ensemble else member_decode(args)
    compare_threads(decode, args.repeats)


def member_decode(args: argparse.Namespace) -> Callable[[], float]:
    """One member's plain ``transformers`` greedy ``generate`` of exactly ``--tokens`` tokens, timed."""
    member = {m.name: m for m in load_preset_members(args.preset, dtype=getattr(torch, args.dtype))}[args.member]
    ids = torch.tensor([member.encode("Explain why the sky is blue in two sentences.")], device=member.device)

    def decode() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            member.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                                  min_new_tokens=args.tokens, do_sample=False)
        return time.perf_counter() - start

    return decode


def ensemble_decode(args: argparse.Namespace) -> Callable[[], float]:
    """One streamed ensemble answer of exactly the same text each call (greedy), timed."""
    from specfuse_core import SpecFuse

    ensemble = SpecFuse.from_preset(args.preset, dtype=getattr(torch, args.dtype))

    def decode() -> float:
        start = time.perf_counter()
        stream = ensemble.stream("Explain in two sentences how tides work.", max_new_tokens=args.tokens)
        for _ in stream:
            pass
        stream.result()
        return time.perf_counter() - start

    return decode


def compare_threads(decode: Callable[[], float], repeats: int) -> None:
    """Alternate the three placements so that they share the machine's drift over the run."""
    jobs: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()

    def long_lived() -> None:
        while jobs.get() is not None:
            done.put(decode())

    def in_long_lived() -> float:
        jobs.put(1)
        return done.get()

    def in_fresh_thread() -> float:
        result: list[float] = []
        thread = threading.Thread(target=lambda: result.append(decode()))
        thread.start()
        thread.join()
        return result[0]

    threading.Thread(target=long_lived, daemon=True).start()
    decode()  # warm the main thread
    in_long_lived()  # and the long-lived worker
    times: dict[str, list[float]] = {"main thread": [], "long-lived worker thread": [], "fresh thread per call": []}
    for _ in range(repeats):
        for name, run in zip(times, (decode, in_long_lived, in_fresh_thread)):
            times[name].append(run())
    jobs.put(None)
    base = statistics.median(times["main thread"])
    for name, values in times.items():
        print(f"{name:>26}: " + " ".join(f"{v:.2f}" for v in values)
              + f" s; median {statistics.median(values):.2f} s ({statistics.median(values) / base:.2f}x the main thread)")


if __name__ == "__main__":
    main()
