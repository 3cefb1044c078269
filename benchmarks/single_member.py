"""An ensemble of one member against plain ``model.generate``: same model, same prompt, greedy.

Prints both speeds and `single_member_speed_ratio` (ours / generate; target >= 0.9), and whether
the tokens are identical.

Usage: python benchmarks/single_member.py [--tokens 128] [--member smollm2-135m]
"""

from __future__ import annotations

import argparse
import time

import torch

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.loading import load_preset_members

PROMPT = [{"role": "user", "content": "Explain how a refrigerator works, step by step."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--member", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    member = next(m for m in load_preset_members("tiny") if m.name == args.member)
    prompt = torch.tensor([member.prompt_ids(PROMPT)])
    ensemble = SpecFuse([member], EnsembleConfig(max_new_tokens=args.tokens))

    def plain():
        with torch.inference_mode():
            return member.model.generate(prompt, max_new_tokens=args.tokens, do_sample=False)[0, prompt.shape[1] :].tolist()

    def ours():
        stream = ensemble.stream(PROMPT)
        list(stream)
        return stream.request.sessions[member.name].response_ids

    plain(), ours()  # warm-up
    timings = {"generate": [], "specfuse": []}
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        for label, fn in (("generate", plain), ("specfuse", ours)):
            start = time.perf_counter()
            tokens = fn()
            timings[label].append((time.perf_counter() - start) / len(tokens))
            if label == "generate":
                reference = tokens
            else:
                identical = tokens == reference
    best = {k: min(v) for k, v in timings.items()}
    print(f"member {member.name}: generate {best['generate'] * 1000:.1f} ms/token, specfuse {best['specfuse'] * 1000:.1f} ms/token, identical tokens: {identical}")
    print(f"single_member_speed_ratio={best['generate'] / best['specfuse']:.2f}")


if __name__ == "__main__":
    main()
