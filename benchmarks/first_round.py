"""Requests started together: time to their first segment with and without the scheduler hearing of
requests being opened (and, with ``--asyncio``, async rounds on the ensemble's own threads). A figure
script, not a timed test; run one timing benchmark at a time.

Why: N requests started at once (LangChain ``.batch``, a burst at the server) reach their first round
milliseconds apart, since each validates, formats and routes its prompt first. Before the scheduler
heard of requests being opened (``RoundScheduler.announce`` / ``arrived``, called by
``SpecFuse.start``), the first to arrive ran its first round alone while the others waited for it.
Async requests (``--asyncio``: ``agenerate`` calls gathered in one event loop) also ran their rounds on
the loop's default thread pool, cores + 4 threads, which capped their batches at 6 on two cores.
This runs the N prompts at once in both modes, alternating, and prints the time to each request's
first segment, the wall time and the batch sizes (docs/performance.md, "Requests started together").

    python benchmarks/first_round.py --concurrency 8 --max-new-tokens 64 --repeats 2 [--asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

from batched_rounds import prompts

from specfuse_core import EnsembleConfig, SpecFuse


def hear_openings(ensemble: SpecFuse, heard: bool, settle_s: float) -> None:
    """``heard=False``: the old behaviour: the scheduler is told nothing of requests being opened, a
    first round does not settle, and async rounds run on the event loop's default pool. ``settle_s``:
    the scheduler's own setting, restored when ``heard``."""
    scheduler = ensemble._rounds
    if heard:
        for name in ("announce", "arrived"):
            scheduler.__dict__.pop(name, None)
        ensemble.__dict__.pop("astep", None)
        scheduler.settle_s = settle_s
    else:
        scheduler.announce = lambda: None
        scheduler.arrived = lambda request: None
        scheduler.settle_s = 0.0
        ensemble.astep = lambda request: asyncio.to_thread(ensemble.step, request)


def at_once(ensemble: SpecFuse, texts: list[str], tokens: int) -> tuple[list[float], float, list[str]]:
    """The prompts at once, one thread each: (seconds to each first segment, wall seconds, texts)."""
    firsts: list[float] = [0.0] * len(texts)
    outputs: list[str] = [""] * len(texts)
    started = time.perf_counter()

    def answer(index: int) -> None:
        stream = ensemble.stream(texts[index], max_new_tokens=tokens)
        for count, _ in enumerate(stream):
            if count == 0:
                firsts[index] = time.perf_counter() - started
        outputs[index] = stream.result().text

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return firsts, time.perf_counter() - started, outputs


def gathered(ensemble: SpecFuse, texts: list[str], tokens: int) -> tuple[list[float], float, list[str]]:
    """The prompts as async streams gathered in one event loop: as :func:`at_once`."""
    firsts: list[float] = [0.0] * len(texts)
    outputs: list[str] = [""] * len(texts)

    async def answer(index: int, started: float) -> None:
        stream = ensemble.astream(texts[index], max_new_tokens=tokens)
        count = 0
        async for _ in stream:
            if count == 0:
                firsts[index] = time.perf_counter() - started
            count += 1
        outputs[index] = stream.result().text

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(answer(i, started) for i in range(len(texts))))
        return time.perf_counter() - started

    wall = asyncio.run(run())
    return firsts, wall, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--asyncio", action="store_true", help="async streams in one event loop instead of threads")
    args = parser.parse_args()
    run = gathered if args.asyncio else at_once

    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_batch_requests=args.concurrency))
    ensemble.generate("Warm up.", max_new_tokens=8)
    settle_s = ensemble._rounds.settle_s
    sizes: list[int] = []
    prepare = ensemble._rounds.prepare
    ensemble._rounds.prepare = lambda requests: (sizes.append(len(requests)), prepare(requests))
    texts = prompts(args.concurrency)
    reference: list[str] | None = None
    for repeat in range(args.repeats):
        for heard in ([False, True] if repeat % 2 == 0 else [True, False]):  # alternate which goes first
            hear_openings(ensemble, heard, settle_s)
            batches = ensemble._rounds.batches
            sizes.clear()
            firsts, wall, outputs = run(ensemble, texts, args.max_new_tokens)
            reference = reference or outputs
            print(f"repeat {repeat + 1}, openings {'heard' if heard else 'not heard'}: first segment mean "
                  f"{statistics.mean(firsts):.1f} s, min {min(firsts):.1f} s, max {max(firsts):.1f} s; wall {wall:.1f} s; "
                  f"{ensemble._rounds.batches - batches} batches, sizes {sizes}; outputs {'the same' if outputs == reference else 'DIFFERENT'}",
                  flush=True)
    hear_openings(ensemble, True, settle_s)


if __name__ == "__main__":
    main()
