"""oneDNN's linear product on plain tensors against the converting entry point with the old row caps,
alternating in one process, alone and with N concurrent requests. A figure script, not a timed test.

Why: until the twenty-first session a member's linear layers called ``mkldnn_linear``, which wants its
input converted to oneDNN's tensor type and its output converted back, and passes over 128 rows
(output layers) or 512 rows (hidden layers) took MKL. Now they call ``mkldnn::_linear_pointwise`` on
plain tensors, with no row caps (specfuse_core/local/onednn_linear.py). Both give the same bits where
both use oneDNN, so the outputs of the two modes should be equal; this prints tokens/s of each mode,
the prompts alone and N at once, each repeat running both modes in alternating order.

    python benchmarks/onednn_plain_product.py --concurrency 8 --max-new-tokens 64 --repeats 2
"""

from __future__ import annotations

import argparse
import json

from batched_ratio import alone, together
from batched_rounds import prompts

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.local import onednn_linear

PLAIN = (onednn_linear.PRODUCT, onednn_linear.OneDnnOutputLinear._worth_it, onednn_linear.OneDnnHiddenLinear._worth_it)


def _old_output_rule(self: onednn_linear.OneDnnOutputLinear, rows: int) -> bool:
    return rows <= 128


def _old_hidden_rule(self: onednn_linear.OneDnnHiddenLinear, rows: int) -> bool:
    return rows <= 512 and self.out_features >= onednn_linear.MIN_HIDDEN_OUTPUTS


CONVERTING = (onednn_linear._converting_product, _old_output_rule, _old_hidden_rule)


def use(mode: str) -> None:
    product, output_rule, hidden_rule = PLAIN if mode == "plain" else CONVERTING
    onednn_linear.PRODUCT = product
    onednn_linear.OneDnnOutputLinear._worth_it = output_rule
    onednn_linear.OneDnnHiddenLinear._worth_it = hidden_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if onednn_linear.PRODUCT is not onednn_linear._plain_product:
        raise SystemExit("this PyTorch build has no plain-tensor oneDNN linear: nothing to compare")

    ensemble = SpecFuse.from_preset("tiny", config=EnsembleConfig(max_batch_requests=args.concurrency))
    texts = prompts(args.concurrency)
    ensemble.generate("Warm up.", max_new_tokens=8)
    totals = {mode: {"alone": [0, 0.0], "together": [0, 0.0]} for mode in ("plain", "converting")}
    outputs: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        order = ("converting", "plain") if repeat % 2 == 0 else ("plain", "converting")
        for mode in order:
            use(mode)
            tokens, seconds, lone = alone(ensemble, texts, args.max_new_tokens)
            totals[mode]["alone"][0] += tokens
            totals[mode]["alone"][1] += seconds
            tokens_n, seconds_n, batched = together(ensemble, texts, args.max_new_tokens)
            totals[mode]["together"][0] += tokens_n
            totals[mode]["together"][1] += seconds_n
            outputs.setdefault(f"{mode} alone", lone)
            same = lone == batched and lone == outputs[f"{mode} alone"]
            print(json.dumps({"repeat": repeat + 1, "mode": mode, "alone_tokens_per_s": round(tokens / seconds, 2),
                              "together_tokens_per_s": round(tokens_n / seconds_n, 2), "outputs_as_before": same}), flush=True)
    use("plain")
    rates = {mode: {kind: t / s for kind, (t, s) in parts.items()} for mode, parts in totals.items()}
    print(json.dumps({
        "concurrency": args.concurrency, "max_new_tokens": args.max_new_tokens, "repeats": args.repeats,
        "plain_over_converting_alone": round(rates["plain"]["alone"] / rates["converting"]["alone"], 3),
        "plain_over_converting_together": round(rates["plain"]["together"] / rates["converting"]["together"], 3),
        "ratio_together_over_alone": {mode: round(r["together"] / r["alone"], 2) for mode, r in rates.items()},
        "outputs_equal_across_modes": outputs["plain alone"] == outputs["converting alone"],
    }), flush=True)


if __name__ == "__main__":
    main()
