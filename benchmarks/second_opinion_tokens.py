"""Mean against lowest token log-prob of the second opinion, recomputed from an eval run's traces.

Why: the second opinion (``gate_check_threshold``) can compare the checker's mean token log-prob of a
confident lead's segment or its lowest one (``gate_check_statistic``). This replays every checked
gated round of a run (the lead's accepted segments, in order) through the checking member in a fresh
session and prints both statistics per round, then their quantiles, so a threshold can be chosen
from a set's own distribution (docs/evaluation.md, "The second opinion by the least likely token").
Give it a recording run (``--set gate_check_threshold=-1e9``: every gated round is checked and none
is sent to a vote); in an ordinary run the rounds whose check failed were voted on and are left out,
since their winner is not the segment that was checked. An analysis script, not a timed test; a
fresh session's scores run a little higher than the engine's in-request ones.

    python benchmarks/second_opinion_tokens.py --dataset dev --run runs/dev-check-record [--category facts]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from specfuse_core.backend import Candidate, Sampling
from specfuse_core.evaluation.datasets import load_dataset
from specfuse_core.evaluation.runner import check
from specfuse_core.loading import load_preset_members
from specfuse_core.messages import normalize_conversation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dev")
    parser.add_argument(
        "--run", required=True, help="an eval run whose records carry gate checks; a recording run (gate_check_threshold=-1e9) checks every gated round"
    )
    parser.add_argument("--category", default=None)
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()

    items = {item.id: item for item in load_dataset(args.dataset)}
    members = {member.name: member for member in load_preset_members(args.preset)}
    rows = []
    with open(f"{args.run}/results.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if args.category and record["category"] != args.category:
                continue
            item = items[record["item_id"]]
            correct = check(item, record["answer"]).correct
            response = ""
            for round_ in record["trace"].get("rounds_detail", []):
                won = [c for c in round_["candidates"] if round_["winner"] in c["proposers"]]
                text = won[0]["text"] if won else ""
                checks = (round_.get("gate_check") or {}) if round_.get("gated") else {}  # a voted round's winner is not what was checked
                for checker in checks:
                    session = members[checker].start(normalize_conversation([{"role": "user", "content": item.prompt}]), Sampling())
                    candidate = [Candidate(text, False)]
                    mean, lowest = session.score(response, candidate)[0], session.score(response, candidate, "min")[0]
                    session.close()
                    rows.append((record["item_id"], correct, round_["round"], checker, mean, lowest))
                    print(f"{record['item_id']} correct={int(correct)} round={round_['round']} {checker} mean={mean:.2f} min={lowest:.2f} {text!r}")
                response += text
    if rows:
        quantiles = [5, 10, 20, 30]
        means, mins = np.array([r[4] for r in rows]), np.array([r[5] for r in rows])
        print(f"{len(rows)} checks; quantiles {quantiles}%: mean {np.percentile(means, quantiles).round(2).tolist()}, min {np.percentile(mins, quantiles).round(2).tolist()}")


if __name__ == "__main__":
    main()
