"""Per-token time of constrained vs unconstrained drafting on the tiny preset, side by side in one run.

Each member drafts the same number of tokens from the same prompt, once free and once under a JSON
schema (the grammar compiled beforehand, as the process-wide cache does after the first request), so
the difference is the mask + advance of ``LocalSession.next_token``. Run:

    python benchmarks/constrained_overhead.py --tokens 32 --repeats 3
"""

from __future__ import annotations

import argparse
import time

from pydantic import BaseModel

from specfuse_core import SpecFuse
from specfuse_core.backend import Sampling
from specfuse_core.constrained import response_format_from


class Record(BaseModel):
    title: str
    summary: str
    tags: list[str]


def per_token(member, fmt, tokens: int, repeats: int) -> float:
    """Mean seconds per drafted token of ``repeats`` drafts of ``tokens`` tokens (fmt None: free)."""
    conversation = [{"role": "user", "content": "Describe the city of Lyon as a JSON record with a title, a summary and tags."}]
    spent = drafted = 0.0
    for _ in range(repeats):
        session = member.start(conversation, Sampling())
        if fmt is not None:
            session.constrain(fmt)
        started = time.perf_counter()
        draft = session.draft("", tokens, align=False)
        spent += time.perf_counter() - started
        drafted += max(draft.tokens_drafted, 1)
        session.close()
    return spent / drafted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    fmt = response_format_from(Record)
    ensemble = SpecFuse.from_preset("tiny")
    print(f"{'member':24} {'free ms/tok':>12} {'constrained ms/tok':>19} {'ratio':>6}")
    for member in ensemble.members:
        member.start([{"role": "user", "content": "warm"}], Sampling()).constrain(fmt)  # compile once (cached)
        free = per_token(member, None, args.tokens, args.repeats)
        constrained = per_token(member, fmt, args.tokens, args.repeats)
        print(f"{member.name:24} {free * 1e3:12.2f} {constrained * 1e3:19.2f} {constrained / free:6.2f}x")


if __name__ == "__main__":
    main()
