"""The soak's load steps: N scripted participants (bench/faults/participants.py, through the
proxy) each sending a message every ~``interval`` seconds, beside a few clients connected
straight to the model replicas at the same pace; time to first visible character on each side,
errors, and CPU by process.

A participant's time to first visible character runs from its ``send`` frame leaving to the
first ``delta`` frame arriving; a direct client's from its request leaving to the first content
chunk (bench/relay.py's ``direct``). The step's "added" p50/p99 is the difference.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.faults import study
from bench.faults.accounting import Entry, marker_word
from bench.faults.participants import FaultClock, Participant, Plan
from bench.faults.scenarios import Outcome, count_outcome
from bench.load.topology import SoakStack
from bench.relay import direct, percentile
from collab_models.http1 import H1Pool

TAIL_S = 10.0  # a send this close to the step's end may go unanswered without an error
ROLES = ("caddy", "uvicorn", "celery", "PostgreSQL", "Redis", "model servers", "load client",
         "other")  # fmt: skip


@dataclass
class StepConfig:
    seconds: float = 120.0
    interval: float = 20.0
    stuck_after: float = 45.0
    direct_every: int = 25  # one direct client per this many participants (at least 2)


@dataclass
class Step:
    participants: int
    sends: int = 0
    replies: int = 0  # stored for the step's participants (active, not failed)
    app_ms: list[float] = field(default_factory=list)
    direct_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of one core
    load_average: float = 0.0

    def added(self, q: float) -> float:
        return percentile(self.app_ms, q) - percentile(self.direct_ms, q)

    def error_count(self) -> int:
        return sum(self.errors.values())

    def passed(self, p99_limit_ms: float) -> bool:
        return self.error_count() == 0 and self.app_ms != [] and self.added(99) <= p99_limit_ms


# -- what the participants saw --------------------------------------------------------------
def first_character_ms(log: list[Entry]) -> tuple[list[float], int]:
    """Times from each ``send`` of a message to the first ``delta`` after it, and how many
    messages got none (a retried or failed turn, or the end of the step)."""
    times, pending, unanswered = [], None, 0
    for entry in log:
        if entry.kind == "send" and '"send"' in entry.data:
            if pending is not None:
                unanswered += 1
            pending = entry.at
        elif entry.kind == "recv" and pending is not None and _is_delta(entry.data):
            times.append((entry.at - pending) * 1000)
            pending = None
    return times, unanswered + (pending is not None)


def _is_delta(text: str) -> bool:
    return '"delta"' in text and json.loads(text).get("type") == "delta"


def log_errors(log: list[Entry], unanswered_before: float) -> dict[str, int]:
    """What went wrong as a participant saw it: error frames, closed sockets, reloads, and
    messages sent before ``unanswered_before`` whose reply never began."""
    errors: dict[str, int] = {}

    def add(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    pending = None
    for entry in log:
        if entry.kind in ("lost", "reload", "gave_up"):
            add(f"socket {entry.kind}")
        elif entry.kind == "send" and '"send"' in entry.data:
            pending = entry.at
        elif entry.kind == "recv":
            kind = json.loads(entry.data).get("type")
            if kind in ("error", "turn_error"):
                add(kind)
            if kind == "delta":
                pending = None
    if pending is not None and pending < unanswered_before:
        add("no reply")
    return errors


# -- CPU by process -------------------------------------------------------------------------
def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return found


def stack_roles(stack: SoakStack) -> dict[int, str]:
    """The stack's own processes (and their children) by role."""
    roles: dict[int, str] = {}
    groups: dict[str, Sequence[subprocess.Popen[bytes] | None]] = {
        "caddy": [stack.proxy.process],
        "uvicorn": [app.process for app in stack.apps],
        "celery": stack.celery.processes if stack.celery else [],
        "model servers": [model.process for model in stack.models],
    }
    for role, processes in groups.items():
        for process in processes:
            if process is not None:
                roles.update(dict.fromkeys(descendants(process.pid), role))
    return roles


def cpu_by_role(roles: dict[int, str]) -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by role."""
    totals = dict.fromkeys(ROLES, 0.0)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid, name = int(entry.name), stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if pid == os.getpid():
            role = "load client"
        elif pid in roles:
            role = roles[pid]
        elif name.startswith("postgres"):
            role = "PostgreSQL"
        elif name.startswith("redis"):
            role = "Redis"
        else:
            role = "other"
        totals[role] += seconds
    return totals


# -- one step -------------------------------------------------------------------------------
def run_step(stack: SoakStack, count: int, config: StepConfig, tag: str) -> Step:
    """``count`` participants for ``config.seconds``; the ASGI processes must be running.
    ``tag`` (four lowercase letters, as ``random_tag`` makes) is the step's own: it names its
    participations and their marker words."""
    people = study.participations(count, f"{tag}-load-{count}")
    markers = [marker_word(tag, i) for i in range(count)]
    step = Step(count)
    roles = stack_roles(stack)
    before, started = cpu_by_role(roles), time.monotonic()
    participants, direct_ms = asyncio.run(_drive(stack, people, markers, config))
    wall = time.monotonic() - started
    after = cpu_by_role(roles)
    step.cpu_percent = {r: 100 * (after[r] - before[r]) / wall for r in ROLES}
    step.load_average = os.getloadavg()[0]
    step.direct_ms = direct_ms
    end = started + config.seconds
    for participant in participants:
        times, _ = first_character_ms(participant.log)
        step.app_ms.extend(times)
        step.sends += sum(e.kind == "send" and '"send"' in e.data for e in participant.log)
        for kind, n in log_errors(participant.log, end - TAIL_S).items():
            step.errors[kind] = step.errors.get(kind, 0) + n
    outcome = Outcome(f"load {count}")
    count_outcome(outcome, people, markers, participants, [])
    step.replies = outcome.replies
    for name in ("lost", "duplicated", "stranded", "wrong"):
        if getattr(outcome, name):
            step.errors[f"replies {name}"] = getattr(outcome, name)
    return step


async def _drive(
    stack: SoakStack, people: list[tuple[str, str]], markers: list[str], config: StepConfig
) -> tuple[list[Participant], list[float]]:
    rng = random.Random(len(people))
    clock = FaultClock()
    ramp = min(config.interval / 2, len(people) / 100)  # connects spread, not one storm
    start = time.monotonic()
    participants, tasks = [], []
    for i, (token, _) in enumerate(people):
        connect_at = rng.uniform(0, ramp)
        first_send = connect_at + rng.uniform(1, config.interval)
        turns = max(1, int((config.seconds - first_send) // config.interval) + 1)
        plan = Plan(turns, think_s=(config.interval * 0.8, config.interval * 1.2))
        participant = Participant(
            marker=markers[i], token=token, path=study.WS_PATH, ports=stack.ports,
            first_port=stack.ports()[0], plan=plan, clock=clock,
            stuck_after=config.stuck_after,
        )  # fmt: skip
        participants.append(participant)
        tasks.append(asyncio.create_task(_join(participant, start, connect_at, first_send, config)))
    clients = max(2, len(people) // config.direct_every)
    pool = H1Pool()
    ports = [model.port for model in stack.models]
    direct_tasks = [
        asyncio.create_task(_direct_client(pool, ports[i % len(ports)], start, config, rng))
        for i in range(clients)
    ]
    await asyncio.gather(*tasks)
    direct_ms = [ms for found in await asyncio.gather(*direct_tasks) for ms in found]
    pool.close()
    return participants, direct_ms


async def _join(
    participant: Participant, start: float, connect_at: float, first_send: float,
    config: StepConfig,
) -> None:  # fmt: skip
    await asyncio.sleep(connect_at)
    participant.next_send_at = start + first_send
    await participant.run(start + config.seconds + 2 * config.stuck_after)


async def _direct_client(
    pool: H1Pool, port: int, start: float, config: StepConfig, rng: random.Random
) -> list[float]:
    """Requests straight to one model replica, at the participants' pace, for the step."""
    times, at = [], start + rng.uniform(1, config.interval)
    ready = asyncio.Event()
    ready.set()
    while at < start + config.seconds:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        result = await direct(pool, port, ready)
        times.append(result.ttft_ms)
        at += rng.uniform(config.interval * 0.8, config.interval * 1.2)
    return times
