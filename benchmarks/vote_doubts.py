"""Which token made the checker doubt the lead, in the rounds of an ensemble run where it did?

Why: the second opinion (``gate_check_threshold``, statistic ``min``) sends a confident lead's segment
to a vote when the checking member finds one of its tokens unlikely. The trace records only that
least log-prob, not the token. This re-scores, under the checker, the lead's candidate of every round
where the checker's value was recorded (the response so far as context, as the engine scores it),
checks that the recomputed value matches the recorded one, and counts which tokens the doubts were
about: layout only (no letter or digit: a LaTeX backslash, a line break, ``**``) or words and
numbers, and whether the checker's own candidate then won the vote. An analysis script, not a test.

    python benchmarks/vote_doubts.py --run runs/gsm8k-tokens96 --dataset gsm8k --data-dir ../shared/data \
        --lead qwen2.5-coder-0.5b --checker smollm2-135m --threshold -4.0
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import torch

from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.loading import load_preset_members
from specfuse_core.messages import normalize_conversation

CONTENT = re.compile(r"[^\W_]", re.UNICODE)  # a letter or digit in any script


def candidate_logprobs(member, prompt: str, response: str, candidate: str) -> list[tuple[str, float]]:
    """(token text, log-prob) of ``candidate``'s tokens after the prompt and ``response``, tokenized
    together as the engine does (the tokens shared with the response alone are context)."""
    context = member.prompt_ids(normalize_conversation([{"role": "user", "content": prompt}]))
    before, after = member.encode(response), member.encode(response + candidate)
    shared = 0
    while shared < min(len(before), len(after)) and before[shared] == after[shared]:
        shared += 1
    ids = context + after
    start = len(context) + shared
    if start >= len(ids):
        return []
    with torch.no_grad():
        logits = member.model(input_ids=torch.tensor([ids], device=member.device)).logits[0].float()
    logprobs = torch.log_softmax(logits[start - 1 : -1], -1)
    tokens = ids[start:]
    picked = logprobs[torch.arange(len(tokens)), torch.tensor(tokens)]
    return [(member.decode([t]), float(lp)) for t, lp in zip(tokens, picked)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a `specfuse eval` folder with an ensemble mode")
    parser.add_argument("--mode", default="ensemble")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--lead", required=True)
    parser.add_argument("--checker", required=True)
    parser.add_argument("--threshold", type=float, default=-4.0, help="the calibration's gate_check_threshold")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()

    items = {item.id: item for item in load_dataset(args.dataset, args.data_dir)}
    checker = {m.name: m for m in load_preset_members(args.preset)}[args.checker]
    checked = reproduced = 0
    doubts: list[dict] = []
    with open(Path(args.run) / "results.jsonl", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    for record in records:
        if record["mode"] != args.mode:
            continue
        prompt, response = items[record["item_id"]].prompt, ""
        for rd in record["trace"]["rounds_detail"]:
            recorded = (rd.get("gate_check") or {}).get(args.checker)
            lead = next((c for c in rd["candidates"] if args.lead in c["proposers"]), None)
            if recorded is not None and lead is not None:
                checked += 1
                scored = candidate_logprobs(checker, prompt, response, lead["text"])
                if scored:
                    token, least = min(scored, key=lambda pair: pair[1])
                    if abs(least - recorded) < 0.05:
                        reproduced += 1
                        if recorded < args.threshold:
                            words = [lp for text, lp in scored if CONTENT.search(text)]
                            doubts.append({
                                "item": record["item_id"], "round": rd["round"], "token": token, "least": least,
                                "layout_only": not CONTENT.search(token),
                                "words_alone_doubted": bool(words) and min(words) < args.threshold,
                                "checker_won": rd["winner"] == args.checker,
                            })
            response += next(c["text"] for c in rd["candidates"] if rd["winner"] in c["proposers"])

    print(f"rounds the checker scored: {checked}; recomputed value matches the trace: {reproduced}")
    print(f"doubts below {args.threshold}: {len(doubts)}; the checker's candidate won {sum(d['checker_won'] for d in doubts)}")
    layout = [d for d in doubts if d["layout_only"]]
    print(
        f"least likely token is layout only: {len(layout)} (the words alone still below the threshold: "
        f"{sum(d['words_alone_doubted'] for d in layout)}); the checker won {sum(d['checker_won'] for d in layout)} of them"
    )
    print("doubted tokens:", ", ".join(f"{t!r} {n}" for t, n in Counter(d["token"].strip() for d in doubts).most_common(10)))
    print("doubted tokens where the checker won:", ", ".join(
        f"{t!r} {n}" for t, n in Counter(d["token"].strip() for d in doubts if d["checker_won"]).most_common(10)))


if __name__ == "__main__":
    main()
