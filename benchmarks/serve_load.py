"""`specfuse serve` under a bounded loopback load: N requests, C at a time, half streamed and half not,
through the official ``openai`` client. Checks, not timings, are the point:

- no errors and no lost responses (every request gets a complete answer);
- no mixed-up responses: each answer equals what its prompt gets from the ensemble alone (greedy),
  and the prompts' answers are all different, so a swap would show;
- memory flat after warm-up: the server process's RSS after a warm-up wave, sampled during the run,
  and at the end.

Also prints latency (per request, and time to the first segment of streamed ones) and aggregate
completion tokens/s against the same prompts run one by one. Ends with `name=value` lines.

Usage: python benchmarks/serve_load.py [--requests 64] [--concurrency 8] [--max-tokens 16] [--prompts 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time

from openai import AsyncOpenAI

from specfuse_core import SpecFuse
from specfuse_core.serve import ServeLimits, ServerThread, ServeSettings, create_app

COUNTRIES = ["France", "Japan", "Kenya", "Peru", "Canada", "Egypt", "Norway", "India", "Chile", "Spain", "Italy", "Ghana", "Nepal", "Cuba", "Iran", "Fiji"]
MODEL = "specfuse-bench"


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is the capital of {COUNTRIES[i]}? Answer in one sentence."}]


def rss_gib() -> float:
    """Resident set size now (Linux: /proc/self/statm, which is what psutil reads too)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


class RssSampler:
    """Peak and samples of this process's RSS (server and client share it; the client's share is small)."""

    def __init__(self, period: float = 0.5) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.samples.append(rss_gib())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def one_request(client: AsyncOpenAI, index: int, n_prompts: int, max_tokens: int) -> dict:
    which = index % n_prompts
    started = time.perf_counter()
    first = None
    if index % 2:  # streamed
        stream = await client.chat.completions.create(model=MODEL, messages=prompt(which), max_tokens=max_tokens, stream=True, stream_options={"include_usage": True})
        parts, usage, finish, ids = [], None, None, set()
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.usage:
                usage = chunk.usage
            if chunk.choices:
                if chunk.choices[0].delta.content and first is None:
                    first = time.perf_counter() - started
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        assert len(ids) == 1, ids
        text, tokens, request_id = "".join(parts), usage.completion_tokens, ids.pop()
    else:
        reply = await client.chat.completions.create(model=MODEL, messages=prompt(which), max_tokens=max_tokens)
        text, tokens, finish, request_id = reply.choices[0].message.content, reply.usage.completion_tokens, reply.choices[0].finish_reason, reply.id
    return {"index": index, "prompt": which, "text": text, "tokens": tokens, "finish": finish, "id": request_id, "seconds": time.perf_counter() - started, "first": first}


async def wave(base_url: str, indices: list[int], concurrency: int, n_prompts: int, max_tokens: int, on_done=None) -> tuple[list[dict], list[str]]:
    gate = asyncio.Semaphore(concurrency)
    results, errors = [], []
    async with AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=3600) as client:

        async def guarded(i: int) -> None:
            async with gate:
                try:
                    results.append(await one_request(client, i, n_prompts, max_tokens))
                except Exception as error:  # noqa: BLE001 - counted and reported
                    errors.append(f"request {i}: {type(error).__name__}: {error}")
                if on_done:
                    on_done(len(results) + len(errors))

        await asyncio.gather(*(guarded(i) for i in indices))
    return results, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=8, help=f"distinct prompts (at most {len(COUNTRIES)})")
    args = parser.parse_args()
    n_prompts = min(args.prompts, len(COUNTRIES))
    print("command: python benchmarks/serve_load.py " + " ".join(sys.argv[1:]), flush=True)

    ensemble = SpecFuse.from_preset(args.preset)  # what `specfuse serve` builds (calibration included)
    ensemble.generate(prompt(n_prompts % len(COUNTRIES)), max_new_tokens=args.max_tokens)  # warm-up, not timed
    started = time.perf_counter()
    alone = [ensemble.generate(prompt(i), max_new_tokens=args.max_tokens) for i in range(n_prompts)]
    sequential_s = time.perf_counter() - started
    sequential_tps = sum(r.usage.completion_tokens for r in alone) / sequential_s
    distinct = len({r.text for r in alone}) == n_prompts
    print(f"alone, one by one: {n_prompts} prompts in {sequential_s:.1f} s, {sequential_tps:.2f} completion tokens/s; all answers distinct: {distinct}", flush=True)

    limits = ServeLimits(max_tokens_cap=max(args.max_tokens, 16), default_max_tokens=args.max_tokens, max_concurrent_requests=max(64, args.concurrency))
    app = create_app(ensemble, ServeSettings(model_name=MODEL, limits=limits))
    with ServerThread(app) as server:
        warm, warm_errors = asyncio.run(wave(server.base_url, list(range(args.concurrency)), args.concurrency, n_prompts, args.max_tokens))
        rss_warm = rss_gib()
        checkpoints: list[tuple[int, float]] = []

        def checkpoint(done: int) -> None:
            if done % max(1, args.requests // 4) == 0:
                checkpoints.append((done, rss_gib()))

        with RssSampler() as sampler:
            started = time.perf_counter()
            results, errors = asyncio.run(wave(server.base_url, list(range(args.requests)), args.concurrency, n_prompts, args.max_tokens, checkpoint))
            elapsed = time.perf_counter() - started
        rss_end = rss_gib()
        in_flight_after = len(app.state.inflight)

    errors += warm_errors
    wrong = [r for r in results if r["text"] != alone[r["prompt"]].text]
    unique_ids = len({r["id"] for r in results}) == len(results)
    tokens = sum(r["tokens"] for r in results)
    latencies = sorted(r["seconds"] for r in results)
    firsts = sorted(r["first"] for r in results if r["first"] is not None)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    print(f"load: {args.requests} requests, {args.concurrency} at a time, max_tokens {args.max_tokens}, {n_prompts} prompts, half streamed; {elapsed:.1f} s")
    print(f"errors: {len(errors)}; completed: {len(results)}/{args.requests}; mismatched answers: {len(wrong)}; unique ids: {unique_ids}; in flight afterwards: {in_flight_after}")
    for line in errors[:5]:
        print("  " + line)
    for r in wrong[:3]:
        print(f"  request {r['index']} (prompt {r['prompt']}): {r['text']!r} != {alone[r['prompt']].text!r}")
    print(f"throughput: {tokens / elapsed:.2f} completion tokens/s under load vs {sequential_tps:.2f} one by one (ratio {tokens / elapsed / sequential_tps:.2f})")
    print(f"latency per request: p50 {pct(latencies, 0.5):.1f} s, p95 {pct(latencies, 0.95):.1f} s; first segment (streamed): p50 {pct(firsts, 0.5):.1f} s, p95 {pct(firsts, 0.95):.1f} s")
    print(f"RSS: after warm-up {rss_warm:.3f} GiB, " + ", ".join(f"after {n} {v:.3f}" for n, v in checkpoints) + f", end {rss_end:.3f} GiB, peak {max(sampler.samples, default=rss_end):.3f} GiB")
    print(f"serve_load_errors={len(errors)}")
    print(f"serve_load_mismatches={len(wrong) + (args.requests - len(results))}")
    print(f"serve_load_rss_growth_mib={(rss_end - rss_warm) * 1024:.1f}")
    print(f"serve_load_throughput_ratio={tokens / elapsed / sequential_tps:.2f}")


if __name__ == "__main__":
    main()
