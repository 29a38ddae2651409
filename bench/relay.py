"""Relay benchmark: what the app adds between a streaming model server and the participant.

Starts a loopback model server that speaks vLLM's stream format at ``--tps`` tokens/second per
stream, and the ASGI app (uvicorn, Redis channel layer, PostgreSQL) with a study whose arm points
at it. For each concurrency level N it runs N participants over real WebSockets, each sending one
message and reading the streamed reply, and N clients connected straight to the model server.
It prints time to first token and gaps between frames (p50/p99) as each side sees them, what the
relay adds, the app process's CPU and peak memory, and lost or duplicated frames.

The direct clients use the app's own HTTP/1.1 client and the participants a lean WebSocket
client (bench/wsclient.py), both reading in the socket's callback; an unreported warm-up round
comes first, and each phase starts on a quiet machine. ``--app floor`` measures a bare ASGI
relay instead of the app (bench/floor_app.py): what any Python relay of this shape adds here.

    python -m bench.relay --streams 1,50,200 [--repeat 5] [--timeline] [--app-workers 2]
                          [--warmup N] [--app floor] [--clients lean,websockets]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import websockets

from bench import wsclient
from bench.relay_goal import goal_verdict, integrity_problems
from bench.sse import CHAT_HEADERS, MODEL, ContentDeltas, chat_body
from collab_models.http1 import H1Pool

REPO = Path(__file__).resolve().parent.parent
# A database of its own per checkout, where several run benchmarks on one server.
BENCH_DB = os.environ.get("BENCH_RELAY_DB", "collabstudy_bench_relay")
STUDY_SLUG = "bench-relay"


@dataclass
class StreamResult:
    ttft_ms: float
    key: str = ""  # the participation's public id, as the app's timeline names it
    sent: float = float("nan")  # perf_counter when the message was sent
    gaps_ms: list[float] = field(default_factory=list)
    text: str = ""
    final_text: str = ""
    lost: int = 0
    duplicated: int = 0
    error: str = ""
    previous: float = float("nan")  # when the last delta arrived
    done: bool = False

    def delta(self, text: str, now: float) -> None:
        """A delta arrived at ``now`` (perf_counter): the first sets TTFT, the rest a gap."""
        if math.isnan(self.ttft_ms):
            self.ttft_ms = (now - self.sent) * 1000
        else:
            self.gaps_ms.append((now - self.previous) * 1000)
        self.previous = now
        self.text += text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port}")


# -- set-up -------------------------------------------------------------------------------------
def database_url(base: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + BENCH_DB


def prepare_database(base_url: str) -> str:
    with psycopg.connect(base_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return database_url(base_url)


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyapp.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_study(model_url: str) -> None:
    from studyapp.studies.services import study_load

    text = (REPO / "deploy" / "studies" / "collabllm-cowriting.yaml").read_text()
    os.environ["VLLM_URL"] = model_url
    study_load(text=text, slug=STUDY_SLUG)


def make_tokens(count: int, label: str) -> list[tuple[str, str]]:
    """``count`` participations on the Base arm, on the writing step: (socket token, key)."""
    from django.utils import timezone

    from studyapp.participants.models import Participation, Platform, Status
    from studyapp.participants.tokens import participation_token
    from studyapp.studies.models import Study

    study = Study.objects.get(slug=STUDY_SLUG)
    version = study.versions.order_by("-number").first()
    condition = version.conditions.get(name="base")
    now = timezone.now()
    made = Participation.objects.bulk_create(
        Participation(
            study=study,
            version=version,
            condition=condition,
            platform=Platform.PILOT,
            external_id=f"{label}-{i}",
            is_test=True,
            document_type="blog_post",
            topic="Travelling on a tight budget",
            status=Status.WRITING,
            consented_at=now,
            assigned_at=now,
            writing_at=now,
        )
        for i in range(count)
    )
    return [(participation_token(public_id=str(p.public_id)), p.public_id.hex) for p in made]


def participations(floor: bool, count: int, label: str) -> list[tuple[str, str]]:
    """Socket tokens and keys for ``count`` participants (the floor app checks none)."""
    if floor:
        return [("floor", f"{label}-{i}") for i in range(count)]
    return make_tokens(count, label)


# -- clients ------------------------------------------------------------------------------------
def take_frame(result: StreamResult, frame: dict, now: float, last_seq: int) -> int:
    """Account one frame of the reply into ``result``; return the new last seq."""
    seq = frame.get("seq")
    if isinstance(seq, int):
        # Frames are numbered per participation: a gap is a lost frame, a repeat a duplicate.
        result.duplicated += seq <= last_seq
        result.lost += max(0, seq - last_seq - 1)
        last_seq = max(last_seq, seq)
    if frame["type"] == "delta":
        result.delta(frame["text"], now)
    elif frame["type"] == "turn_end":
        result.final_text = frame.get("text", "")
        result.done = True
    elif frame["type"] in ("turn_error", "error"):
        result.error = json.dumps(frame)
        result.done = True
    return last_seq


HELLO = json.dumps({"type": "hello", "last_seq": None, "focused": True})
SEND = json.dumps({"type": "send", "text": "Help me write a blog post."})


async def _go(start: asyncio.Event, delay: float) -> None:
    """Wait for the round's start, then for this client's own offset in it (``--spread``)."""
    await start.wait()
    if delay:
        await asyncio.sleep(delay)


def _nothing() -> None:
    pass


async def participant(
    app_port: int,
    token: str,
    key: str,
    start: asyncio.Event,
    delay: float = 0.0,
    greeted: Callable[[], None] = _nothing,
) -> StreamResult:
    """A participant on the lean client (bench/wsclient.py): frames are read in the socket's
    ``data_received``, timed there, as the direct clients read the model server's chunks."""
    loop = asyncio.get_running_loop()
    path = f"/ws/study/{STUDY_SLUG}/?token={token}"
    headers = {"Origin": f"http://127.0.0.1:{app_port}"}
    ws = await wsclient.connect("127.0.0.1", app_port, path, headers)
    result = StreamResult(ttft_ms=float("nan"), key=key)
    state: asyncio.Future[dict] = loop.create_future()
    ended: asyncio.Future[None] = loop.create_future()
    last_seq = 0

    def on_text(text: str, now: float) -> None:
        nonlocal last_seq
        frame = json.loads(text)
        if not state.done():
            state.set_result(frame)
            return
        last_seq = take_frame(result, frame, now, last_seq)
        if result.done and not ended.done():
            ended.set_result(None)

    ws.on_text = on_text
    try:
        ws.send_text(HELLO)
        last_seq = (await asyncio.wait_for(state, 60)).get("last_seq") or 0
        greeted()
        await _go(start, delay)
        result.sent = time.perf_counter()
        ws.send_text(SEND)
        await asyncio.wait({ended, ws.closed}, return_when=asyncio.FIRST_COMPLETED)
        if not ended.done():
            result.error = f"socket closed ({ws.close_code}) before the reply ended"
        return result
    finally:
        await ws.close()


async def participant_websockets(
    app_port: int,
    token: str,
    key: str,
    start: asyncio.Event,
    delay: float = 0.0,
    greeted: Callable[[], None] = _nothing,
) -> StreamResult:
    """A participant on the ``websockets`` library (``--client websockets``): its reader
    task, queue and ``recv()`` cost a few task switches per frame on the benchmark's loop."""
    url = f"ws://127.0.0.1:{app_port}/ws/study/{STUDY_SLUG}/?token={token}"
    headers = {"Origin": f"http://127.0.0.1:{app_port}"}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22) as ws:
        await ws.send(HELLO)
        last_seq = json.loads(await ws.recv()).get("last_seq") or 0
        greeted()
        await _go(start, delay)
        result = StreamResult(ttft_ms=float("nan"), key=key, sent=time.perf_counter())
        await ws.send(SEND)
        while not result.done:
            frame = json.loads(await ws.recv())
            last_seq = take_frame(result, frame, time.perf_counter(), last_seq)
        return result


DIRECT_BODY = chat_body("Help me write a blog post.")


async def direct(
    pool: H1Pool, model_port: int, start: asyncio.Event, delay: float = 0.0
) -> StreamResult:
    """A client straight to the model server, on the HTTP/1.1 client the app itself uses, so
    that the difference to a participant is the relay and not two clients' own costs. It opens
    its connection when it sends, as the app does when it has no idle one (after a pause longer
    than the keep-alive, as between the 200-stream rounds)."""
    await _go(start, delay)
    loop = asyncio.get_running_loop()
    result = StreamResult(ttft_ms=float("nan"), sent=time.perf_counter())
    deltas = ContentDeltas()

    def sink(data: bytes) -> None:
        now = time.perf_counter()
        for content in deltas.feed(data):
            result.delta(content, now)

    outgoing = pool.send_now(
        "POST", "127.0.0.1", model_port, "/v1/chat/completions",
        headers=CHAT_HEADERS, body=DIRECT_BODY,
    )  # fmt: skip
    exchange = await pool.response(outgoing, connect_timeout=30)
    try:
        await exchange.pump(sink, lambda: loop.time() + 120)
    finally:
        await exchange.aclose()
    result.final_text = result.text
    return result


CLIENTS = {"lean": participant, "websockets": participant_websockets}


async def run_level(
    app_port: int,
    model_port: int,
    tokens: list[tuple[str, str]],
    busy: MachineBusy,
    client: str = "lean",
    spread_s: float = 0.0,
) -> tuple[list, list]:
    # Each client's offset from the round's start: all at once (0), or spread at random over
    # ``spread_s``; the direct clients and the participants get the same offsets.
    rng = random.Random(len(tokens))
    offsets = [rng.uniform(0, spread_s) for _ in tokens]
    start = asyncio.Event()
    pool = H1Pool()
    direct_tasks = [asyncio.create_task(direct(pool, model_port, start, d)) for d in offsets]
    await machine_quiet()
    # The previous round's garbage (some 20,000 objects) collected now, not by a pause of this
    # process's event loop in the middle of the round: that once delayed every direct first
    # token by 80 ms, and "added" read near zero.
    gc.collect()
    start.set()
    direct_results = await asyncio.gather(*direct_tasks)
    pool.close()
    start, everyone = asyncio.Event(), asyncio.Event()
    greeted = 0

    def greet() -> None:
        nonlocal greeted
        greeted += 1
        if greeted == len(tokens):
            everyone.set()

    relay_tasks = [
        asyncio.create_task(CLIENTS[client](app_port, t, k, start, d, greet))
        for (t, k), d in zip(tokens, offsets, strict=True)
    ]
    # Every socket connected and said hello (a client that failed never does: then at most 10 s).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everyone.wait(), 10)
    await machine_quiet()
    gc.collect()
    busy.start()
    start.set()
    relay_results = await asyncio.gather(*relay_tasks, return_exceptions=True)
    busy.stop()
    return direct_results, relay_results


# -- process accounting -------------------------------------------------------------------------
def app_pids(pid: int) -> list[int]:
    """The app process and, with ``--app-workers`` > 1, its worker processes."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(c) for c in children.read_text().split())]


def _stat_cpu_seconds(stat: str) -> float:
    """User plus system CPU seconds from the text of a ``/proc/PID/stat``."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def app_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in app_pids(pid))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def app_peak_rss_mb(pid: int) -> float:
    """The largest process's peak: a worker's, when there are workers."""
    return max(peak_rss_mb(p) for p in app_pids(pid))


def cpu_by_role(app_pid: int, model_pid: int) -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by its role in the bench."""
    app, totals = set(app_pids(app_pid)), dict.fromkeys(ROLES, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if pid == os.getpid():
            role = "bench"
        elif pid == model_pid:
            role = "model server"
        elif b"studyapp.realtime.dbworker" in command or b"multiprocessing.spawn" in command:
            # Children of uvicorn (or its workers): the pipe's or ProcessPoolExecutor's.
            role = "database workers"
        elif pid in app:
            role = "uvicorn"
        elif name.startswith("postgres"):
            role = "PostgreSQL"
        elif name.startswith("redis"):
            role = "Redis"
        else:
            role = "other"
        totals[role] += _stat_cpu_seconds(stat)
    return totals


ROLES = ("uvicorn", "database workers", "PostgreSQL", "Redis", "model server", "bench", "other")


class MachineBusy:
    """How busy all the machine's cores were between ``start`` and ``stop`` (/proc/stat), and,
    given ``by_role`` (a :func:`cpu_by_role`), which processes used that CPU."""

    def __init__(self, by_role: Callable[[], dict[str, float]] | None = None) -> None:
        self.percent = float("nan")
        self.cpu_s: dict[str, float] = {}
        self.by_role = by_role
        self._start: tuple[int, int] | None = None
        self._start_cpu: dict[str, float] = {}

    @staticmethod
    def _read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    def start(self) -> None:
        self._start_cpu = self.by_role() if self.by_role else {}
        self._start = self._read()

    def stop(self) -> None:
        if self._start is not None:
            busy, total = self._read()
            self.percent = 100 * (busy - self._start[0]) / max(1, total - self._start[1])
        if self.by_role:
            now = self.by_role()
            self.cpu_s = {r: now[r] - self._start_cpu.get(r, 0.0) for r in ROLES}


# How long a phase waits for a quiet machine (bench/pieces.py waits less: its configurations
# take turns under the same load, and a machine shared with test suites is seldom quiet).
QUIET_WITHIN_S = 30.0


def set_quiet_wait(seconds: float) -> None:
    global QUIET_WITHIN_S
    QUIET_WITHIN_S = seconds


async def machine_quiet(below_percent: float = 15.0, within_s: float | None = None) -> None:
    """Wait until the machine is idle: the previous round's bookkeeping (turn records,
    disconnect events, the hellos' queries) must not run into the next measurement."""
    within_s = QUIET_WITHIN_S if within_s is None else within_s
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        probe = MachineBusy()
        probe.start()
        await asyncio.sleep(0.25)
        probe.stop()
        if probe.percent < below_percent:
            return
    if within_s >= 10:
        print(f"the machine stayed above {below_percent:g}% busy for {within_s:g} s; measuring")


def summarise(level: int, direct_results: list, relay_results: list, cpu: float, wall: float,
              rss: float) -> dict:  # fmt: skip
    failures = [r for r in relay_results if isinstance(r, BaseException) or r.error]
    ok = [r for r in relay_results if not isinstance(r, BaseException) and not r.error]
    d_ttft = [r.ttft_ms for r in direct_results]
    r_ttft = [r.ttft_ms for r in ok]
    d_gaps = [g for r in direct_results for g in r.gaps_ms]
    r_gaps = [g for r in ok for g in r.gaps_ms]
    return {
        "streams": level,
        "failed": len(failures),
        "first_failure": str(failures[0])[:300] if failures else "",
        "ttft_direct_p50": percentile(d_ttft, 50),
        "ttft_direct_p99": percentile(d_ttft, 99),
        "ttft_relay_p50": percentile(r_ttft, 50),
        "ttft_relay_p99": percentile(r_ttft, 99),
        "ttft_added_p50": percentile(r_ttft, 50) - percentile(d_ttft, 50),
        "ttft_added_p99": percentile(r_ttft, 99) - percentile(d_ttft, 99),
        "gap_direct_p50": percentile(d_gaps, 50),
        "gap_direct_p99": percentile(d_gaps, 99),
        "gap_relay_p50": percentile(r_gaps, 50),
        "gap_relay_p99": percentile(r_gaps, 99),
        "lost_frames": sum(r.lost for r in ok),
        "duplicated_frames": sum(r.duplicated for r in ok),
        "text_mismatches": sum(r.text != r.final_text for r in ok),
        "app_cpu_percent": 100 * cpu / wall if wall else float("nan"),
        "app_peak_rss_mb": rss,
    }


# The app's steps, in order (studyapp/realtime/timeline.py marks them).
TIMELINE_STEPS = [
    ("send_received", "the socket's send handler starts"),
    ("model_call_opened", "the model call is opened"),
    ("model_delta_arrived", "the model's first token reaches the app"),
    ("turn_started", "the generation starts (marker and turn_start stored)"),
    ("turn_stored", "the user message is stored (message_send returns)"),
    ("delta_flushed", "the first delta is flushed by the generation"),
    ("delta_sent", "the first delta is sent on the socket"),
]


def timeline_table(path: Path, results: list) -> list[tuple[str, float, float]]:
    """Per step, p50 and p99 over the streams of ms from the message's send to the step's
    first mark for that participation."""
    sent = {r.key: r.sent for r in results if isinstance(r, StreamResult) and r.key}
    first: dict[tuple[str, str], float] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        step, key, at = json.loads(line)
        if key in sent and at >= sent[key] - 0.01:
            first.setdefault((step, key), at)
    table = []
    for step, label in TIMELINE_STEPS:
        after = [(first[step, k] - s) * 1000 for k, s in sent.items() if (step, k) in first]
        table.append((label, percentile(after, 50), percentile(after, 99)))
    return table


def print_row(row: dict) -> None:
    spread = f" spread {row['spread_s']:g} s" if row.get("spread_s") else ""
    print(
        f"N={row['streams']:>4} {row.get('client', 'lean'):>10}{spread}  failed={row['failed']}  "
        f"TTFT ms direct p50/p99 {row['ttft_direct_p50']:.1f}/{row['ttft_direct_p99']:.1f}  "
        f"relay {row['ttft_relay_p50']:.1f}/{row['ttft_relay_p99']:.1f}  "
        f"added {row['ttft_added_p50']:+.1f}/{row['ttft_added_p99']:+.1f}\n"
        f"        gaps ms direct p50/p99 {row['gap_direct_p50']:.1f}/{row['gap_direct_p99']:.1f}  "
        f"relay {row['gap_relay_p50']:.1f}/{row['gap_relay_p99']:.1f}  "
        f"lost={row['lost_frames']} dup={row['duplicated_frames']} "
        f"text_mismatch={row['text_mismatches']}  "
        f"app CPU {row['app_cpu_percent']:.0f}% ({row.get('app_cpu_s', float('nan')):.2f} s, "
        f"uvicorn's own process {row.get('asgi_cpu_s', float('nan')):.2f} s)  "
        f"peak RSS {row['app_peak_rss_mb']:.0f} MB  "
        f"machine busy while relaying {row.get('machine_busy_percent', float('nan')):.0f}%",
        flush=True,
    )
    if row.get("relaying_cpu_s"):
        used = ", ".join(f"{role} {s:.2f}" for role, s in row["relaying_cpu_s"].items())
        print(f"        CPU s while relaying, by process: {used}", flush=True)
    if row["first_failure"]:
        print(f"        first failure: {row['first_failure']}", flush=True)


def medians(rows: list[dict], levels: list[int], clients: list[str]):
    """Per level and client: its runs, and the median over them of each TTFT percentile (the
    model server's own time to first token moves by 100 ms and more from one run to the next
    at 200 streams)."""
    for level, client in [(n, c) for n in levels for c in clients]:
        runs = [r for r in rows if r["streams"] == level and r["client"] == client]
        yield level, client, runs, {
            k: percentile([r[k] for r in runs], 50) for k in runs[0] if k.startswith("tt")
        }


def print_medians(rows: list[dict], levels: list[int], clients: list[str]) -> None:
    for level, client, runs, median in medians(rows, levels, clients):
        print(
            f"N={level:>4} {client:>10}  median of {len(runs)} runs: TTFT ms direct p50/p99 "
            f"{median['ttft_direct_p50']:.1f}/{median['ttft_direct_p99']:.1f}  relay "
            f"{median['ttft_relay_p50']:.1f}/{median['ttft_relay_p99']:.1f}  added "
            f"{median['ttft_added_p50']:+.1f}/{median['ttft_added_p99']:+.1f}  "
            f"(failed {sum(r['failed'] for r in runs)}, lost {sum(r['lost_frames'] for r in runs)}"
            f", duplicated {sum(r['duplicated_frames'] for r in runs)})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="1,50,200")
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--app-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="run each level this many times and also print the medians over the runs",
    )  # fmt: skip
    parser.add_argument(
        "--timeline", action="store_true", help="also print when each step of the relay happens"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--app",
        choices=["collabstudy", "floor"],
        default="collabstudy",
        help="floor: instead of the app, a bare ASGI relay with nothing else "
        "(bench/floor_app.py), for what any Python relay of this shape adds here",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=0.0,
        help="seconds over which each round's clients send, at random offsets (default 0: "
        "all at the same instant, the worst case)",
    )
    parser.add_argument(
        "--clients",
        default="lean",
        help="the participants' WebSocket client: lean (bench/wsclient.py), websockets, or "
        "both (lean,websockets: each level runs once with each, alternating)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="streams in an unreported first round (default: the largest level; 0: none). A "
        "fresh app's first burst pays for imports, pools and prepared queries once.",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WITHIN_S,
        help="seconds each phase waits at most for the machine to be under 15%% busy",
    )
    args = parser.parse_args()
    set_quiet_wait(args.quiet_wait)
    timeline = Path(tempfile.mkdtemp(prefix="relay-timeline-")) / "marks.jsonl"
    model_port, app_port = free_port(), free_port()
    model_url = f"http://127.0.0.1:{model_port}"
    floor = args.app == "floor"
    if not floor:
        base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        env = {"DATABASE_URL": prepare_database(base_db), "REDIS_URL": redis_url}
    else:
        env = {"FLOOR_MODEL_URL": model_url}
    if args.timeline:
        env["RELAY_TIMELINE"] = str(timeline)
    model = subprocess.Popen(
        [sys.executable, "-m", "tests.collab_models.vllm_fake", "--port", str(model_port),
         "--tps", str(args.tps), "--tokens", str(args.tokens), "--model", MODEL],
        cwd=REPO,
    )  # fmt: skip
    if not floor:
        django_setup(env)
        load_study(model_url)
    target = "bench.floor_app:app" if floor else "studyapp.asgi:application"
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1",
         "--port", str(app_port), "--no-access-log", "--log-level", "warning",
         "--ws-per-message-deflate", "false", "--workers", str(args.app_workers)],
        cwd=REPO,
        start_new_session=True,  # its workers are stopped with it
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "studyapp.settings",
             "VLLM_URL": model_url, "ALLOWED_HOSTS": "127.0.0.1,localhost",
             "RATE_LIMITS": "0"},  # every stream's socket comes from one address
    )  # fmt: skip
    rows, failing = [], True
    try:
        wait_port(model_port)
        wait_port(app_port)
        print(f"model server {model_url} at {args.tps:g} tokens/s, {args.tokens} tokens a reply")
        levels = [int(n) for n in args.streams.split(",")]
        warmup = max(levels) if args.warmup is None else args.warmup
        if warmup:
            tokens = participations(floor, warmup, f"warmup-{time.time_ns()}")
            asyncio.run(run_level(app_port, model_port, tokens, MachineBusy()))
            print(f"warm-up round of {warmup} streams done (not reported)")
        clients = args.clients.split(",")
        runs = [(n, c) for n in levels for _ in range(args.repeat) for c in clients]
        for level, client in runs:
            tokens = participations(floor, level, f"n{level}-{time.time_ns()}")
            cpu0, wall0 = app_cpu_seconds(app.pid), time.perf_counter()
            own0 = cpu_seconds(app.pid)
            busy = MachineBusy(functools.partial(cpu_by_role, app.pid, model.pid))
            direct, relayed = asyncio.run(
                run_level(app_port, model_port, tokens, busy, client, args.spread)
            )
            cpu, wall = app_cpu_seconds(app.pid) - cpu0, time.perf_counter() - wall0
            row = summarise(level, direct, relayed, cpu, wall, app_peak_rss_mb(app.pid))
            row["machine_busy_percent"] = busy.percent
            row["relaying_cpu_s"] = busy.cpu_s
            row["app_cpu_s"] = cpu
            row["asgi_cpu_s"] = cpu_seconds(app.pid) - own0
            row["client"] = client
            row["spread_s"] = args.spread
            rows.append(row)
            print_row(row)
            if args.timeline:
                from studyapp.realtime.timeline import FLUSH_S

                time.sleep(2 * FLUSH_S)  # the app writes its marks once every FLUSH_S
                for label, p50, p99 in timeline_table(timeline, relayed):
                    print(f"        {label:<55} p50 {p50:8.1f} ms  p99 {p99:8.1f} ms")
        if args.repeat > 1:
            print_medians(rows, levels, clients)
        failing = judge(rows, levels, clients, args.spread)
    finally:
        # One SIGTERM to the app's process group (uvicorn, its workers and their database
        # processes): a second one would make uvicorn skip its graceful shutdown.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.pid, signal.SIGTERM)
        model.terminate()
        for process in (app, model):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                print(f"{process.args[2]} did not stop within 10 s of SIGTERM; killed")
                process.kill()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    sys.exit(1 if failing else 0)


def judge(rows: list[dict], levels: list[int], clients: list[str], spread_s: float) -> bool:
    """Prints the goal's verdict (bench/relay_goal.py) and says whether the bench fails."""
    failing = False
    for level, _client, _runs, median in medians(rows, levels, clients):
        counts, line = goal_verdict(
            median["ttft_added_p50"], median["ttft_added_p99"], level, spread_s
        )
        failing |= counts
        if line:
            print(line, flush=True)
    problems = integrity_problems(rows)
    if problems:
        print("streams went wrong: " + ", ".join(problems), flush=True)
    return failing or bool(problems)


if __name__ == "__main__":
    main()
