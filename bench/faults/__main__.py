"""The fault campaign: ``python -m bench.faults [--quick] [--drops N] [--json PATH]``.

Starts its own PostgreSQL, Redis, model server, Celery and two ASGI processes (bench/faults/
stack.py), runs each fault as a scenario with scripted participants (bench/faults/scenarios.py)
and prints, per fault, the replies lost, duplicated, stranded and shown to the wrong participant,
and whether a human had to act. Goal: 0 / 0 / 0 / 0 and never; the command exits 1 when a
scenario misses it. See bench/README.md, "Fault campaign".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.faults.scenarios import SCENARIOS, Outcome, Scale, random_tag, run_scenario
from bench.faults.services import readme_graceful_timeout
from bench.faults.stack import Stack

FULL = {"participants": 40, "turns": 6, "drops": 1000, "drop_participants": 50, "fuzzers": 20}
QUICK = {"participants": 6, "turns": 3, "drops": 12, "drop_participants": 6, "fuzzers": 4}
COLUMNS = ("fault", "replies", "lost", "duplicated", "stranded", "wrong participant",
           "human had to act", "recovery (s)", "ERROR lines", "tracebacks")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults",
        description="Break the app's own servers under scripted participants; count what the "
        "participants lost (bench/README.md, Fault campaign).",
    )
    parser.add_argument("--quick", action="store_true", help="every fault at a small scale")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"which, comma-separated (default all: {','.join(SCENARIOS)})",
    )
    parser.add_argument("--drops", type=int, help="socket drops in the drops scenario")
    parser.add_argument("--participants", type=int, help="honest participants per scenario")
    parser.add_argument("--turns", type=int, help="turns per participant")
    parser.add_argument("--fuzzers", type=int, help="fuzzing clients")
    parser.add_argument("--pg-short", type=float, default=5.0, help="short outage, seconds")
    parser.add_argument("--pg-long", type=float, default=45.0, help="long outage, seconds")
    parser.add_argument(
        "--stuck-after",
        type=float,
        default=45.0,
        help="seconds a page may wait with no fault in progress before its "
        "participant reloads it (longer than the 30 s in-flight marker)",
    )
    parser.add_argument(
        "--stop-limit",
        type=float,
        help="seconds an ASGI process may take to exit after SIGTERM (default: 10 more than "
        "README.md's --timeout-graceful-shutdown, or 60)",
    )
    parser.add_argument("--tps", type=float, default=50.0, help="model tokens per second")
    parser.add_argument("--tokens", type=int, default=60, help="tokens per reply")
    parser.add_argument("--no-celery", action="store_true", help="no Celery worker and beat")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (servers' logs) and print its path",
    )
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def scale_from(args: argparse.Namespace) -> Scale:
    sizes = dict(QUICK if args.quick else FULL)
    for name in ("drops", "participants", "turns", "fuzzers"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    graceful = readme_graceful_timeout()
    stop_limit = args.stop_limit or (graceful + 10 if graceful else 60)
    return Scale(
        **sizes, pg_short_s=args.pg_short, pg_long_s=args.pg_long,
        stuck_after=args.stuck_after, stop_limit=stop_limit,
    )  # fmt: skip


def row(outcome: Outcome) -> list[str]:
    return [
        outcome.fault, str(outcome.replies), str(outcome.lost), str(outcome.duplicated),
        str(outcome.stranded), str(outcome.wrong), outcome.human(), recovery(outcome),
        str(outcome.error_lines), str(outcome.tracebacks),
    ]  # fmt: skip


def recovery(outcome: Outcome) -> str:
    return "-" if outcome.recovery_s is None else f"{outcome.recovery_s:.1f}"


def print_outcome(outcome: Outcome) -> None:
    verdict = "met" if outcome.met() else "MISSED"
    print(f"\n{outcome.fault}: goal {verdict} ({outcome.seconds:.0f} s)", flush=True)
    print("  " + "  ".join(f"{c}={v}" for c, v in zip(COLUMNS[1:], row(outcome)[1:], strict=True)))
    if outcome.mishandled:
        print(f"  hostile frames not refused with a documented code: {outcome.mishandled}")
    for note in outcome.notes:
        print(f"  note: {note}")
    for problem in outcome.problems[:10]:
        print(f"  problem: {problem}")
    sys.stdout.flush()


def print_table(outcomes: list[Outcome]) -> None:
    print("\n| " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    for outcome in outcomes:
        print("| " + " | ".join(row(outcome)) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = scale_from(args)
    chosen = [SCENARIOS[key] for key in args.scenarios.split(",")]
    stack = Stack(tps=args.tps, tokens=args.tokens, celery=not args.no_celery)
    outcomes: list[Outcome] = []
    try:
        started = time.monotonic()
        stack.start()
        print(f"servers up in {time.monotonic() - started:.0f} s ({stack.root})", flush=True)
        for scenario in chosen:  # each with marker words of its own
            outcomes.append(run_scenario(stack, scenario, scale, random_tag()))
            print_outcome(outcomes[-1])
    finally:
        stack.close(keep=args.keep)
    print_table(outcomes)
    if args.keep:
        print(f"servers' logs kept in {stack.logs}")
    if args.json:
        args.json.write_text(json.dumps([o.as_dict() for o in outcomes], indent=2))
    return 0 if all(o.met() for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
