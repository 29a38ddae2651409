"""The hand-written pieces side by side: the app with each piece on and off, in one run.

Starts the loopback model server and one uvicorn process per configuration (every piece on;
each piece off alone, its library in its place; every piece off), all on one scratch database
and Redis, warms each up, then runs interleaved rounds. In each round every configuration takes
``--streams`` sends spread over ``--spread`` seconds and as many sent in one instant, in an order
rotated from round to round, each measured against the same number of clients straight to the
model server (bench/relay.py's ``run_level``). It prints each measurement, then per
configuration and load the medians of the added time to first token (p50 and p99) and their
range over the rounds (the run-to-run spread), lost and duplicated frames, and per piece its
gain (the medians off minus on) against the larger of the two spreads.

    python -m bench.pieces [--rounds 3] [--minutes 10] [--streams 200] [--spread 1]
                           [--only http1,fastsql] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import relay
from bench.relay_goal import goal_verdict, integrity_problems
from bench.sse import MODEL


@dataclass(frozen=True)
class Piece:
    name: str
    files: tuple[str, ...]
    off: dict[str, str]  # the environment that puts the library in its place
    library: str

    def lines(self) -> int:
        return sum(len((relay.REPO / f).read_text().splitlines()) for f in self.files)


PIECES = [
    Piece(
        "http1",
        ("collab_models/http1.py", "collab_models/transport.py"),
        {"COLLAB_MODELS_FAST_HTTP": "0"},
        "httpx",
    ),
    Piece(
        "fastsql",
        ("studyapp/realtime/fastsql.py", "studyapp/writing/rows.py"),
        {"WRITING_FAST_SQL": "0"},
        "the ORM",
    ),
    Piece(
        "scriptpipe",
        ("studyapp/realtime/scriptpipe.py",),
        {"RELAY_SCRIPT_CLIENT": "redis-py"},
        "redis-py asyncio",
    ),
    Piece(
        "eagerstart",
        ("studyapp/realtime/eagerstart.py",),
        {"RELAY_EAGER_START": "0"},
        "asyncio.create_task",
    ),
    Piece(
        "worker pipe",
        ("studyapp/realtime/dbprocesses.py", "studyapp/realtime/dbworker.py"),
        {"WRITING_DB_PIPE": "0"},
        "ProcessPoolExecutor",
    ),
]
ALL_ON = "all on"
KEYS = ("ttft_added_p50", "ttft_added_p99")
ALL_OFF = "all off"


def configurations(only: list[str]) -> dict[str, dict[str, str]]:
    """Each configuration's environment: every piece on, each chosen piece off, all off."""
    chosen = [p for p in PIECES if not only or p.name in only]
    configs = {ALL_ON: {}}
    configs.update({f"{p.name} off": p.off for p in chosen})
    configs[ALL_OFF] = {k: v for p in PIECES for k, v in p.off.items()}
    return configs


def start_app(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "studyapp.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning",
         "--ws-per-message-deflate", "false"],
        cwd=relay.REPO,
        start_new_session=True,  # its database worker processes are stopped with it
        env=env,
    )  # fmt: skip


def measure(port: int, model_port: int, streams: int, spread: float, label: str) -> dict:
    tokens = relay.make_tokens(streams, f"{label}-{time.time_ns()}")
    busy = relay.MachineBusy()
    direct, relayed = asyncio.run(relay.run_level(port, model_port, tokens, busy, spread_s=spread))
    row = relay.summarise(streams, direct, relayed, float("nan"), 0.0, float("nan"))
    row["machine_busy_percent"] = busy.percent
    return row


def stats(values: list[float]) -> tuple[float, float]:
    """Median and range (max - min) of one configuration's rounds."""
    return relay.percentile(values, 50), max(values) - min(values)


def gain(on: list[float], off: list[float]) -> tuple[float, float]:
    """A piece's gain (the median with it off minus the median with it on; positive: the piece
    helps) and the run-to-run spread it is judged against (the larger of the two ranges)."""
    (on_median, on_range), (off_median, off_range) = stats(on), stats(off)
    return off_median - on_median, max(on_range, off_range)


def verdict(p50_gains: list[list[float]]) -> str:
    """A piece pays for itself when its gain at p50 is beyond the spread at every load (p99,
    one stream in a hundred, moves too much from round to round to decide alone)."""
    if all(won > spread for won, spread in p50_gains):
        return "keep"
    return "within the spread: remove"


def report(rows: list[dict], configs: list[str], loads: list[tuple[str, float]]) -> list[dict]:
    """Print the medians and spreads per configuration, and each piece's gain; return the
    pieces' lines as dicts (for ``--json``)."""
    values: dict[tuple[str, str, str], list[float]] = {}
    for config in configs:
        for load, _ in loads:
            runs = [r for r in rows if r["config"] == config and r["load"] == load]
            for k in KEYS:
                values[config, load, k] = [r[k] for r in runs]
            p50, p99 = (stats(values[config, load, k]) for k in KEYS)
            lost = sum(r["lost_frames"] for r in runs)
            dup = sum(r["duplicated_frames"] for r in runs)
            failed = sum(r["failed"] + r["text_mismatches"] for r in runs)
            print(
                f"{config:<18} {load:<9} added TTFT p50 {p50[0]:+7.1f} (spread {p50[1]:5.1f})"
                f"  p99 {p99[0]:+7.1f} (spread {p99[1]:5.1f}) ms  over {len(runs)} rounds;"
                f"  lost {lost}, duplicated {dup}, failed or garbled {failed}",
                flush=True,
            )
    verdicts = []
    for piece in PIECES:
        config = f"{piece.name} off"
        if config not in configs:
            continue
        line = {"piece": piece.name, "lines": piece.lines(), "library": piece.library}
        gains = []
        for load, _ in loads:
            for k in KEYS:
                won, spread = gain(values[ALL_ON, load, k], values[config, load, k])
                line[f"{load} {k[-3:]}"] = [round(won, 1), round(spread, 1)]
                gains.append(f"{load} {k[-3:]} {won:+.1f} ± {spread:.1f}")
        beyond = [g for g in line.values() if isinstance(g, list) and g[0] > g[1]]
        line["beyond_spread"] = len(beyond)
        line["verdict"] = verdict([line[f"{load} p50"] for load, _ in loads])
        verdicts.append(line)
        print(
            f"{piece.name:<12} {piece.lines():>4} lines  gain (off - on) ms: {'; '.join(gains)}"
            f"  → {len(beyond)} of {len(gains)} beyond the spread: {line['verdict']}",
            flush=True,
        )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=1.0,
        help="seconds each phase waits at most for the machine to be under 15%% busy",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="start no round that would end later than this after the warm-up",
    )
    parser.add_argument("--warmup", type=int, default=50, help="streams of each warm-up round")
    parser.add_argument("--only", default="", help="pieces to switch off (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows and the gains here")
    args = parser.parse_args()
    # A SIGTERM (a timeout) stops the apps too: they run in sessions of their own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    relay.set_quiet_wait(args.quiet_wait)
    configs = configurations([n for n in args.only.split(",") if n])
    loads = [("spread", args.spread), ("at once", 0.0)]
    model_port = relay.free_port()
    model_url = f"http://127.0.0.1:{model_port}"
    base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    env = {"DATABASE_URL": relay.prepare_database(base_db), "REDIS_URL": redis_url}
    model = subprocess.Popen(
        [sys.executable, "-m", "tests.collab_models.vllm_fake", "--port", str(model_port),
         "--tps", str(args.tps), "--tokens", str(args.tokens), "--model", MODEL],
        cwd=relay.REPO,
    )  # fmt: skip
    relay.django_setup(env)
    relay.load_study(model_url)
    ports = {name: relay.free_port() for name in configs}
    base_env = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "studyapp.settings",
                "VLLM_URL": model_url, "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "RATE_LIMITS": "0"}  # every stream's socket comes from one address; fmt: skip
    apps = {name: start_app(ports[name], {**base_env, **extra}) for name, extra in configs.items()}
    rows: list[dict] = []
    failing = True
    try:
        relay.wait_port(model_port)
        for port in ports.values():
            relay.wait_port(port, timeout=60)
        print(f"model server at {args.tps:g} tokens/s, {args.tokens} tokens a reply; "
              f"{len(configs)} configurations: {', '.join(configs)}", flush=True)  # fmt: skip
        for name in configs:  # a fresh app's first burst pays for imports, pools, statements
            measure(ports[name], model_port, args.warmup, 0.0, "warmup")
        print("warm-up round of each configuration done (not reported)", flush=True)
        names = list(configs)
        started = time.monotonic()
        for round_no in range(args.rounds):
            spent = time.monotonic() - started
            if round_no and spent / round_no * (round_no + 1) > args.minutes * 60:
                print(f"round {round_no + 1} would end past {args.minutes:g} min: "
                      f"reporting {round_no} rounds", flush=True)  # fmt: skip
                break
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for load, spread in loads:
                for name in order:
                    row = measure(ports[name], model_port, args.streams, spread, name)
                    row.update(config=name, load=load, round=round_no + 1)
                    rows.append(row)
                    if args.json:  # what a run cut short had measured
                        args.json.write_text(json.dumps({"rows": rows}, indent=2))
                    print(
                        f"round {round_no + 1} {name:<18} {load:<9} added TTFT p50/p99 "
                        f"{row['ttft_added_p50']:+.1f}/{row['ttft_added_p99']:+.1f} ms  "
                        f"lost {row['lost_frames']} dup {row['duplicated_frames']} "
                        f"failed {row['failed']}  machine {row['machine_busy_percent']:.0f}% busy",
                        flush=True,
                    )
        verdicts = report(rows, names, loads)
        problems = integrity_problems(rows)
        if problems:
            print("streams went wrong: " + ", ".join(problems), flush=True)
        on = [r for r in rows if r["config"] == ALL_ON and r["load"] == "spread"]
        missed, line = goal_verdict(
            stats([r["ttft_added_p50"] for r in on])[0],
            stats([r["ttft_added_p99"] for r in on])[0],
            args.streams,
            args.spread,
        )
        print(f"{ALL_ON}: {line}", flush=True)
        failing = bool(problems) or missed
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "pieces": verdicts}, indent=2))
    finally:
        for app in apps.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(app.pid, signal.SIGTERM)
        model.terminate()
        for process in [*apps.values(), model]:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    sys.exit(1 if failing else 0)


if __name__ == "__main__":
    main()
