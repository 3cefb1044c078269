"""Would a second candidate from the lead's second-choice first token, put to the vote, fix its answers?

Why: many of Qwen's wrong short answers hinge on the first token ("Yes" to "Is Paris in Germany?",
"Market" when capital letters are asked for). Chain-of-thought decoding (Wang and Zhou, 2024) finds
right answers on branches that greedy decoding skips. This takes the lead's lone answers from a
members' eval run and, per item:

1. writes a branch: the lead's second most likely first token, then greedy, up to the same cap;
2. checks it with the item's own checker (the oracle: would picking the branch have fixed the item?);
3. scores both answers under every member (mean token log-prob), so that the report can replay a
   vote between them: per verifier a softmax over the two, summed with the preset's calibrated
   weights (as a round's vote does) or with equal weights; only where the lead's first-token margin
   (top-1 less top-2 log-prob) is at most a limit.

Resumable (``--out`` is appended to). An analysis script, not a test; nothing here changes the engine.

    python benchmarks/lead_branch.py --dataset dev --run runs/dev19-members --out runs/branch-dev.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from answer_cascade import results
from checker_doubt import token_stats

from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.evaluation.runner import check
from specfuse_core.loading import load_preset_members
from specfuse_core.messages import normalize_conversation
from specfuse_core.presets import preset_calibration, preset_members


def branch(lead, prompt: str, answer: str, cap: int) -> tuple[str, float] | None:
    """The lead's answer from its second-choice first token on, and its first-token margin (None: the
    second choice ends the turn)."""
    context = lead.prompt_ids(normalize_conversation([{"role": "user", "content": prompt}]))
    with torch.no_grad():
        first = torch.log_softmax(lead.model(input_ids=torch.tensor([context])).logits[0, -1].float(), -1)
    top = first.topk(2)
    margin, second = float(top.values[0] - top.values[1]), int(top.indices[1])
    stops = sorted(lead.stop_token_ids)
    if second in stops:
        return None
    with torch.no_grad():
        out = lead.model.generate(
            torch.tensor([context + [second]]), max_new_tokens=cap - 1, do_sample=False, eos_token_id=stops, pad_token_id=stops[0]
        )
    tokens = [t for t in out[0, len(context) :].tolist() if t not in stops]
    return lead.tokenizer.decode(tokens, skip_special_tokens=True), margin


def collect(args: argparse.Namespace) -> list[dict]:
    items = {item.id: item for item in load_dataset(args.dataset)}
    lone = results(args.run, args.lead)
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    done = {row["id"] for row in rows}
    members = {m.name: m for m in load_preset_members(args.preset)}
    with out.open("a", encoding="utf-8") as handle:
        for item_id, record in lone.items():
            item = items[item_id]
            if item_id in done or (args.category and item.category not in args.category):
                continue
            made = branch(members[args.lead], item.prompt, record["answer"], args.max_tokens)
            if made is None:
                continue
            text, margin = made
            row = {
                "id": item_id,
                "category": item.category,
                "margin": margin,
                "greedy_right": bool(record["correct"]),
                "branch_right": bool(check(item, text).correct),
                "branch": text[:300],
                "scores": {
                    name: [(token_stats(m, item.prompt, t, None) or {"mean": float("-inf")})["mean"] for t in (record["answer"], text)]
                    for name, m in members.items()
                },
            }
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            rows.append(row)
    return rows


def picks_branch(row: dict, weights: dict[str, float]) -> bool:
    total = np.zeros(2)
    for name, weight in weights.items():
        scores = np.array(row["scores"][name], dtype=float)
        if not np.isfinite(scores).all():  # an empty answer has no score: the other one takes the vote
            shares = np.isfinite(scores).astype(float)
        else:
            shares = np.exp(scores - scores.max())
        total += weight * shares / max(shares.sum(), 1.0)
    return bool(total[1] > total[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dev")
    parser.add_argument("--run", action="append", required=True, help="`specfuse eval` folders with the lead alone (repeatable)")
    parser.add_argument("--out", required=True, help="per-item figures (jsonl; an existing file is resumed)")
    parser.add_argument("--lead", default="qwen2.5-coder-0.5b")
    parser.add_argument("--category", action="append", default=["facts", "instructions"], help="categories to branch (default: facts, instructions)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    names = [m.name for m in preset_members(args.preset)]
    if args.lead not in names:
        raise SystemExit(f"--lead must name a member of the {args.preset!r} preset: {', '.join(names)}")

    rows = collect(args)
    if not rows:
        raise SystemExit(f"no item of {args.run} has an answer by {args.lead} in categories {args.category}")
    calibration = preset_calibration(args.preset)
    calibrated = dict(calibration.member_weights) if calibration else {name: 1.0 for name in names}
    selectors = {"calibrated vote": calibrated, "equal weights": {name: 1.0 for name in names}}
    for category in sorted({row["category"] for row in rows}):
        ours = [row for row in rows if row["category"] == category]
        fixes = sum(not r["greedy_right"] and r["branch_right"] for r in ours)
        breaks = sum(r["greedy_right"] and not r["branch_right"] for r in ours)
        print(f"{category}: {len(ours)} items, lead right {sum(r['greedy_right'] for r in ours)}; the branch would fix {fixes}, break {breaks}")
        for limit in (0.5, 1.0, float("inf")):
            changes = []
            for label, weights in selectors.items():
                gained = lost = 0
                for row in ours:
                    if row["margin"] <= limit and picks_branch(row, weights) and row["branch_right"] != row["greedy_right"]:
                        gained += row["branch_right"]
                        lost += row["greedy_right"]
                changes.append(f"{label} +{gained} -{lost}")
            print(f"  margin <= {limit}: " + "; ".join(changes))


if __name__ == "__main__":
    main()
