"""The soak: ``python -m bench.load [--steps 100,250,500,750,1000] [--scenarios ...]``.

Starts the production topology on this machine (bench/load/topology.py: Caddy, three ASGI
processes, PostgreSQL, Redis, Celery, two model replicas), raises the number of scripted
participants step by step until the added time to first visible character passes
``--p99-limit`` at p99 or any error appears (bench/load/steps.py), then runs the fault campaign
on the same topology (bench/load/faults.py). After each step and each fault it prints the
model requests from the app that each replica served. See bench/load/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench.faults.__main__ import print_outcome, print_table, scale_from
from bench.faults.scenarios import Outcome, random_tag, run_scenario
from bench.load.faults import SOAK_SCENARIOS
from bench.load.steps import ROLES, Step, StepConfig, run_step
from bench.load.topology import SoakStack
from bench.relay import percentile


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--steps", default="100,250,500,750,1000,1250,1500",
                        help="participants at each load step, comma-separated")  # fmt: skip
    parser.add_argument("--step-seconds", type=float, default=120.0)
    parser.add_argument("--interval", type=float, default=20.0, help="seconds between messages")
    parser.add_argument("--p99-limit", type=float, default=250.0, help="added p99 goal, ms")
    parser.add_argument(
        "--scenarios", default=",".join(SOAK_SCENARIOS),
        help=f"faults, comma-separated, or none (default all: {','.join(SOAK_SCENARIOS)})",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="faults at the campaign's --quick")
    parser.add_argument("--participants", type=int, help="honest participants per fault")
    parser.add_argument("--turns", type=int, help="turns per participant in a fault")
    parser.add_argument("--fuzzers", type=int, help="fuzzing clients")
    parser.add_argument("--pg-short", type=float, default=5.0, help="PostgreSQL outage, s")
    parser.add_argument("--stuck-after", type=float, default=45.0)
    parser.add_argument("--stop-limit", type=float)
    parser.add_argument("--tps", type=float, default=50.0, help="model tokens per second")
    parser.add_argument("--tokens", type=int, default=60, help="tokens per reply")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    args = parser.parse_args(argv)
    args.drops, args.pg_long = None, 45.0  # the campaign's, unused here
    chosen = [] if args.scenarios == "none" else args.scenarios.split(",")
    unknown = set(chosen) - set(SOAK_SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.chosen = chosen
    return args


STEP_COLUMNS = (
    "participants", "messages", "direct p50/p99 (ms)", "app p50/p99 (ms)", "added p50/p99 (ms)",
    "errors", "CPU % of a core by process", "load avg",
)  # fmt: skip


def step_row(step: Step) -> list[str]:
    cpu = ", ".join(f"{r} {step.cpu_percent[r]:.0f}" for r in ROLES if step.cpu_percent[r] >= 1)
    errors = ", ".join(f"{k} {v}" for k, v in step.errors.items()) or "0"
    return [
        str(step.participants), str(step.sends),
        f"{percentile(step.direct_ms, 50):.0f} / {percentile(step.direct_ms, 99):.0f}",
        f"{percentile(step.app_ms, 50):.0f} / {percentile(step.app_ms, 99):.0f}",
        f"{step.added(50):.0f} / {step.added(99):.0f}", errors, cpu, f"{step.load_average:.1f}",
    ]  # fmt: skip


def print_steps(steps: list[Step]) -> None:
    print("\n| " + " | ".join(STEP_COLUMNS) + " |")
    print("|" + " --- |" * len(STEP_COLUMNS))
    for step in steps:
        print("| " + " | ".join(step_row(step)) + " |")


def replica_note(before: list[int], after: list[int]) -> str:
    """The app's model requests per replica between two counts; a replica at 0 is named."""
    served = [b - a for a, b in zip(before, after, strict=True)]
    line = "model requests from the app per replica: " + " / ".join(map(str, served))
    idle = [f"model-{i}" if i else "model" for i, n in enumerate(served) if n == 0]
    return line + (f" (NO TRAFFIC: {', '.join(idle)})" if idle and sum(served) else "")


def load_steps(stack: SoakStack, args: argparse.Namespace) -> tuple[list[Step], int]:
    """Every step up to the first that misses the goal; the participants held. Each step has
    marker words of its own, so that a reply shown to a participant of another step is seen."""
    config = StepConfig(seconds=args.step_seconds, interval=args.interval,
                        stuck_after=args.stuck_after)  # fmt: skip
    steps, held = [], 0
    stack.start_apps()
    try:
        for count in (int(n) for n in args.steps.split(",")):
            before = stack.model_requests()
            steps.append(run_step(stack, count, config, random_tag()))
            print("  ".join(f"{c}={v}" for c, v in zip(STEP_COLUMNS, step_row(steps[-1]),
                                                       strict=True)), flush=True)  # fmt: skip
            print(f"  {replica_note(before, stack.model_requests())}", flush=True)
            if not steps[-1].passed(args.p99_limit):
                break
            held = count
    finally:
        stack.stop_apps(args.stop_limit or 60)
    return steps, held


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = scale_from(args)
    stack = SoakStack(tps=args.tps, tokens=args.tokens)
    steps: list[Step] = []
    outcomes: list[Outcome] = []
    held = 0
    try:
        started = time.monotonic()
        stack.start()
        print(f"servers up in {time.monotonic() - started:.0f} s ({stack.root}); "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        if args.steps:
            steps, held = load_steps(stack, args)
        for key in args.chosen:
            before = stack.model_requests()
            # Marker words of its own, so that one scenario's reply shown in another's is seen.
            outcomes.append(run_scenario(stack, SOAK_SCENARIOS[key], scale, random_tag()))
            outcomes[-1].notes.append(replica_note(before, stack.model_requests()))
            print_outcome(outcomes[-1])
    finally:
        served = stack.model_requests()  # the logs go with the stack unless --keep
        stack.close(keep=args.keep)
    if steps:
        print_steps(steps)
        print(f"\nparticipants held at added p99 <= {args.p99_limit:g} ms with no error: {held}")
    if outcomes:
        print_table(outcomes)
        for outcome in outcomes:
            print(f"{outcome.fault}: {outcome.notes[-1]}")
    print(f"model requests from the app per replica, whole run: {' / '.join(map(str, served))}")
    if args.keep:
        print(f"servers' logs kept in {stack.logs}")
    if args.json:
        results = {"held": held, "steps": [asdict(s) for s in steps],
                   "faults": [o.as_dict() for o in outcomes]}  # fmt: skip
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(o.met() for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
