"""Fan-out of remote members: a round of a two-remote-member ensemble against the sum and the max of
the members' own HTTP call times, measured in the same run, on loopback.

Starts two llama-cpp-python servers (the tiny preset's SmolLM2 GGUF, ``--threads`` each) and runs one
request three times: "fan-out" (each server is its own device, so the engine's thread pool calls
both at once) and "serial" (both members forced onto one device: one call after the other). For each
phase it sums, over rounds, the phase's wall time, the slower member's call time (max) and both
members' call times (sum). Fan-out works when the phase time tracks the max, not the sum.

Usage: python benchmarks/remote_fanout.py [--tokens 80] [--threads 1] [--temperature 0]
Needs llama-cpp-python[server] (.ci/install_llama_cpp_server.sh). Last line: name=value.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

from specfuse_core import EnsembleConfig, SpecFuse
from specfuse_core.presets import preset_members, resolve_preset_member
from specfuse_core.remote import RemoteMember, RemoteMemberConfig
from specfuse_core.remote.launch import LlamaCppServer

PROMPT = [{"role": "user", "content": "Describe a walk through a forest in autumn."}]


def run(ensemble: SpecFuse, tokens: int, temperature: float) -> dict[str, dict[str, float]]:
    """Per phase: wall time of the phase, and max / sum of the members' own call times (all rounds)."""
    cpu = time.process_time()  # this process only: the coordinator's own work, not the servers'
    request = ensemble.start(PROMPT, max_new_tokens=tokens, temperature=temperature, seed=0)
    while ensemble.step(request) is not None:
        pass
    cpu = time.process_time() - cpu
    per_round: dict[tuple[int, str], list[float]] = defaultdict(list)
    for session in request.sessions.values():
        for round_number, phase, seconds in session.timings:
            per_round[(round_number, phase)].append(seconds)
    totals = {phase: {"wall": 0.0, "max": 0.0, "sum": 0.0, "rounds": 0} for phase in ("draft", "score", "round")}
    totals["coordinator"] = {"cpu_ms_per_round": 1000 * cpu / max(1, len(request.trace.rounds))}
    for trace in request.trace.rounds:
        draft, score = per_round.get((trace.round, "draft"), []), per_round.get((trace.round, "score"), [])
        own = [d + s for d, s in zip(draft, score)] if score else draft  # each member's own time in the round
        for phase, wall, calls in (
            ("draft", trace.draft_seconds, draft),
            ("score", trace.verify_seconds, score),
            ("round", trace.draft_seconds + trace.verify_seconds, own),
        ):
            if len(calls) < 2:  # unanimous round (no scoring) or a member missing: nothing to compare
                continue
            totals[phase]["wall"] += wall
            totals[phase]["max"] += max(calls)
            totals[phase]["sum"] += sum(calls)
            totals[phase]["rounds"] += 1
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1, help="threads per server")
    parser.add_argument(
        "--temperature", type=float, default=0.0,
        help="0: both servers draft the same text, rounds are draft-only; > 0: drafts differ and rounds also score",
    )
    args = parser.parse_args()
    entry = next(m for m in preset_members("tiny") if m.name == "smollm2-135m")
    gguf, tokenizer_dir = entry.locate(), resolve_preset_member(entry)
    logs = tempfile.mkdtemp(prefix="specfuse-fanout-")
    with LlamaCppServer(gguf, "smol-a", n_threads=args.threads, log_path=f"{logs}/a.log") as a, \
         LlamaCppServer(gguf, "smol-b", n_threads=args.threads, log_path=f"{logs}/b.log") as b:
        members = [
            RemoteMember(RemoteMemberConfig(base_url=s.base_url, model=s.alias, tokenizer=str(tokenizer_dir)))
            for s in (a, b)
        ]
        ensemble = SpecFuse(members, EnsembleConfig())
        run(ensemble, 20, args.temperature)  # warm-up: first-request costs on both servers
        results = {}
        for mode in ("fan-out", "serial", "fan-out "):  # fan-out twice, around serial, to see machine noise
            for m in members:
                m.device = "remote:shared" if mode == "serial" else f"remote:{m.config.base_url}"
            results[mode] = run(ensemble, args.tokens, args.temperature)
    print(f"two SmolLM2 servers on loopback, {args.threads} thread(s) each; seconds summed over compared rounds")
    print(f"{'mode':9} {'phase':6} {'rounds':>6} {'phase wall':>10} {'max member':>10} {'sum members':>11} {'wall/max':>8} {'wall/sum':>8}")
    for mode, totals in results.items():
        for phase, t in totals.items():
            if t.get("rounds"):
                print(f"{mode:9} {phase:6} {t['rounds']:>6} {t['wall']:>10.2f} {t['max']:>10.2f} {t['sum']:>11.2f} "
                      f"{t['wall'] / t['max']:>8.2f} {t['wall'] / t['sum']:>8.2f}")
    cpu = [r["coordinator"]["cpu_ms_per_round"] for r in results.values()]
    print(f"coordinator CPU (tokenising, JSON, threads): {min(cpu):.1f}-{max(cpu):.1f} ms per round")
    fan, serial = results["fan-out"]["round"], results["serial"]["round"]
    print(f"fan-out round time {fan['wall']:.2f} s vs serial {serial['wall']:.2f} s over the same rounds' work")
    print(f"remote_fanout_round_over_max={fan['wall'] / fan['max']:.2f}")


if __name__ == "__main__":
    main()
