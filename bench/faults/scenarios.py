"""The faults, one scenario each, and how a scenario is run and counted.

Each scenario starts two fresh ASGI processes, gives every scripted participant a participation
of its own, runs them (and, for the fuzzing scenario, the fuzzers) while its fault strikes in
the middle of replies, then stops the ASGI processes with SIGTERM and counts, from the frames
and the database, what went wrong (bench/faults/accounting.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import string
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.faults import study
from bench.faults.accounting import Tally, bad_answers, marker_word, participant_tally, wrong_frames
from bench.faults.hostile import corpus
from bench.faults.participants import (
    RELOADS,
    FaultClock,
    FuzzResult,
    Participant,
    Plan,
    fuzzer,
)
from bench.faults.stack import Stack
from studyapp.writing.protocol import ERROR_CODES

REDIS_DOWN_S = 2.5
MODEL_DOWN_S = 2.0
KILLED_DOWN_S = 5.0  # before the killed ASGI process is started again, as a supervisor would
MAX_TURNS = 27  # the reference study allows 30


@dataclass
class Scale:
    participants: int
    turns: int
    drops: int
    drop_participants: int
    fuzzers: int
    pg_short_s: float
    pg_long_s: float
    stuck_after: float
    stop_limit: float


@dataclass
class Outcome:
    fault: str
    replies: int = 0
    lost: int = 0
    duplicated: int = 0
    stranded: int = 0
    wrong: int = 0
    reloads: int = 0
    resends: int = 0
    mishandled: int = 0  # hostile frames not refused with a documented code
    error_lines: int = 0
    tracebacks: int = 0
    log_lines: int = 0
    seconds: float = 0.0
    recovery_s: float | None = None  # fault's start to every waiting page's next reply end
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def human(self) -> str:
        if not self.reloads and not self.resends:
            return "never"
        return f"{self.reloads} reloads, {self.resends} resends"

    def met(self) -> bool:
        counts = (self.lost, self.duplicated, self.stranded, self.wrong, self.mishandled)
        return not any(counts) and self.human() == "never"

    def as_dict(self) -> dict:
        return {**asdict(self), "human": self.human(), "met": self.met()}


@dataclass
class Run:
    """What a fault needs while it runs."""

    stack: Stack
    scale: Scale
    clock: FaultClock
    participants: list[Participant]
    notes: list[str]

    def streaming_on(self, port: int) -> int:
        return sum(p.port == port and p.page.streaming is not None for p in self.participants)


Fault = Callable[[Run], Coroutine[Any, Any, None]]


@dataclass
class Scenario:
    key: str
    fault: Fault | None = None
    fuzz: bool = False
    heading: str = ""  # the title when it is not TITLES[key]

    def title(self, scale: Scale) -> str:
        return (self.heading or TITLES[self.key]).format(scale=scale)


# -- faults -----------------------------------------------------------------------------------
async def mid_reply(run: Run, port: int | None = None, limit_s: float = 60.0) -> None:
    """Wait until every participant has had a reply and half of them (of those on ``port``,
    if given) are streaming one."""
    deadline = time.monotonic() + limit_s
    on_port = [p for p in run.participants if port is None or p.port == port]
    while time.monotonic() < deadline:
        replied = all(p.page.completed_turns() >= 1 or p.done for p in run.participants)
        streaming = sum(p.page.streaming is not None for p in on_port)
        if replied and streaming >= max(1, len(on_port) // 2):
            return
        await asyncio.sleep(0.02)


async def everyone_replied(run: Run, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if all(p.page.completed_turns() >= 1 or p.done for p in run.participants):
            return
        await asyncio.sleep(0.05)


async def restart_app(run: Run, index: int) -> None:
    app = run.stack.apps[index]
    await asyncio.to_thread(app.start)
    await asyncio.to_thread(app.wait_ready)


async def kill_app(run: Run) -> None:
    app = run.stack.apps[0]
    await mid_reply(run, app.port)
    run.notes.append(f"{run.streaming_on(app.port)} replies streaming on the killed process")
    run.clock.start()
    await asyncio.to_thread(app.kill9)
    run.clock.end()  # its replies are the survivor's to resolve from here on
    await asyncio.sleep(KILLED_DOWN_S)
    await restart_app(run, 0)


async def terminate_app(run: Run) -> None:
    app = run.stack.apps[0]
    await mid_reply(run, app.port)
    run.notes.append(f"{run.streaming_on(app.port)} replies streaming on the stopped process")
    run.clock.start()
    seconds = await asyncio.to_thread(app.terminate, run.scale.stop_limit)
    run.clock.end()
    limit = f"did not exit within {run.scale.stop_limit:g} s of SIGTERM (killed)"
    run.notes.append(limit if seconds is None else f"exited {seconds:.1f} s after SIGTERM")
    await restart_app(run, 0)


async def restart_redis(run: Run) -> None:
    await mid_reply(run)
    run.clock.start()
    await asyncio.to_thread(run.stack.redis.shutdown_nosave)
    await asyncio.sleep(REDIS_DOWN_S)
    await asyncio.to_thread(run.stack.redis.start)
    run.clock.end()


def restart_postgres(outage_s: Callable[[Scale], float]) -> Fault:
    async def fault(run: Run) -> None:
        await mid_reply(run)
        run.clock.start()
        await asyncio.to_thread(run.stack.postgres.stop, "fast")
        await asyncio.sleep(outage_s(run.scale))
        await asyncio.to_thread(run.stack.postgres.start)
        run.clock.end()

    return fault


async def restart_model(run: Run) -> None:
    await mid_reply(run)
    run.clock.start()
    await asyncio.to_thread(run.stack.model.kill)
    await asyncio.sleep(MODEL_DOWN_S)
    await asyncio.to_thread(run.stack.model.start)
    run.clock.end()


TITLES = {
    "drops": "{scale.drops:,} socket drops mid-reply",
    "kill9": "kill -9 of one of two ASGI processes",
    "sigterm": "SIGTERM of one of two ASGI processes",
    "redis": "Redis restart (SHUTDOWN NOSAVE), sockets open",
    "pg-short": "PostgreSQL down {scale.pg_short_s:g} s",
    "pg-long": "PostgreSQL down {scale.pg_long_s:g} s",
    "model": "model server restart mid-reply",
    "fuzz": "{scale.fuzzers} fuzzing clients beside honest ones",
}
SCENARIOS = {
    s.key: s
    for s in (
        Scenario("drops"),
        Scenario("kill9", kill_app),
        Scenario("sigterm", terminate_app),
        Scenario("redis", restart_redis),
        Scenario("pg-short", restart_postgres(lambda scale: scale.pg_short_s)),
        Scenario("pg-long", restart_postgres(lambda scale: scale.pg_long_s)),
        Scenario("model", restart_model),
        Scenario("fuzz", fuzz=True),
    )
}


# -- plans ------------------------------------------------------------------------------------
def drop_plans(scale: Scale, rng: random.Random) -> list[Plan]:
    """``scale.drops`` drops shared by the participants, each in a different turn's reply."""
    people = scale.drop_participants
    plans = []
    for i in range(people):
        drops = scale.drops // people + (i < scale.drops % people)
        turns = min(MAX_TURNS, max(scale.turns, math.ceil(drops * 1.35)))
        chosen = rng.sample(range(1, turns + 1), min(drops, turns))
        plans.append(Plan(turns, {turn: rng.randint(0, 5) for turn in chosen}))
    return plans


def plans_for(scenario: Scenario, scale: Scale, rng: random.Random) -> list[Plan]:
    if scenario.key == "drops":
        return drop_plans(scale, rng)
    if scenario.fuzz:  # every other reply cut: each reconnect's hello reads the database again
        turns = range(2, scale.turns + 1, 2)
        return [
            Plan(scale.turns, {t: rng.randint(0, 5) for t in turns})
            for _ in range(scale.participants)
        ]
    return [Plan(scale.turns) for _ in range(scale.participants)]


# -- running ----------------------------------------------------------------------------------
def run_scenario(stack: Stack, scenario: Scenario, scale: Scale, tag: str) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(scenario.title(scale))
    mark = stack.log_mark()
    stack.start_apps()
    rng = random.Random(f"{tag}-{scenario.key}")
    plans = plans_for(scenario, scale, rng)
    fuzzers = scale.fuzzers if scenario.fuzz else 0
    people = study.participations(len(plans) + fuzzers, f"{tag}-{scenario.key}")
    markers = [marker_word(tag, i) for i in range(len(people))]
    participants, fuzzed, clock = asyncio.run(
        _drive(stack, scenario, scale, people, markers, plans, outcome.notes)
    )
    outcome.recovery_s = recovery_s(participants, clock)
    exits = stack.stop_apps(scale.stop_limit)
    if None in exits:
        outcome.notes.append(
            f"{exits.count(None)} ASGI process(es) still running {scale.stop_limit:g} s after "
            "the SIGTERM that ended the scenario (killed)"
        )
    count_outcome(outcome, people, markers, participants, fuzzed)
    logs = stack.log_counts(mark)
    outcome.error_lines, outcome.tracebacks, outcome.log_lines = (
        logs.errors, logs.tracebacks, logs.lines,
    )  # fmt: skip
    outcome.seconds = time.monotonic() - started
    return outcome


async def _drive(
    stack: Stack, scenario: Scenario, scale: Scale, people: list[tuple[str, str]],
    markers: list[str], plans: list[Plan], notes: list[str],
) -> tuple[list[Participant], list[FuzzResult], FaultClock]:  # fmt: skip
    clock = FaultClock()
    participants = [
        Participant(
            marker=markers[i], token=people[i][0], path=study.WS_PATH, ports=stack.ports,
            first_port=stack.ports()[i % len(stack.ports())], plan=plan, clock=clock,
            stuck_after=scale.stuck_after,
        )
        for i, plan in enumerate(plans)
    ]  # fmt: skip
    deadline = time.monotonic() + _budget_s(scale, plans)
    honest = [asyncio.create_task(p.run(deadline)) for p in participants]
    run = Run(stack, scale, clock, participants, notes)
    fault = asyncio.create_task(scenario.fault(run)) if scenario.fault else None
    fuzzing = asyncio.create_task(
        _fuzz(run, [(markers[i], people[i][0]) for i in range(len(plans), len(people))], honest)
    )
    await asyncio.gather(*honest)
    if fault is not None:
        await fault
    fuzzed = await fuzzing
    notes.extend(_what_participants_did(participants))
    return participants, fuzzed, clock


def recovery_s(participants: list[Participant], clock: FaultClock) -> float | None:
    """Seconds from the fault's start until every participant still writing then had seen a
    reply end again (those who never did are counted as stranded or lost, not here)."""
    if clock.started_at is None:
        return None
    ends = []
    for participant in participants:
        ended = next(
            (
                entry.at
                for entry in participant.log
                if entry.kind == "recv"
                and entry.at >= clock.started_at
                and '"turn_end"' in entry.data
                and json.loads(entry.data).get("type") == "turn_end"
            ),
            None,
        )
        if ended is not None:
            ends.append(ended - clock.started_at)
    return max(ends, default=None)


async def _fuzz(
    run: Run, fuzzers: list[tuple[str, str]], honest: list[asyncio.Task[None]]
) -> list[FuzzResult]:
    """The fuzzers, from when every honest participant has had a reply until all are done:
    a broken process then has conversations to show to the wrong participant."""
    if not fuzzers:
        return []
    await everyone_replied(run)
    ports = run.stack.ports()
    return list(
        await asyncio.gather(
            *(
                fuzzer(marker=marker, token=token, path=study.WS_PATH, ports=ports,
                       corpus=corpus(marker), until=lambda: all(t.done() for t in honest))
                for marker, token in fuzzers
            )
        )
    )  # fmt: skip


def _what_participants_did(participants: list[Participant]) -> list[str]:
    """Sockets cut, Retry pressed (as the page offered) and refusals the pages showed."""
    notes = []
    entries = [e for p in participants for e in p.log]
    for kind, what in (("drop", "sockets cut mid-reply"), ("retry", "Retry presses")):
        count = sum(e.kind == kind for e in entries)
        if count:
            notes.append(f"{count} {what}")
    received = (json.loads(e.data) for e in entries if e.kind == "recv")
    # A send refused for now (``retry_after``) is sent again by the page itself: named apart.
    refusals = Counter(
        f"{f.get('code')} (page resent)"
        if f.get("of") == "send" and "retry_after" in f
        else f.get("code")
        for f in received
        if f.get("type") == "error"
    )
    if refusals:
        notes.append("refusals shown: " + ", ".join(f"{c} x{n}" for c, n in refusals.items()))
    gave_up = sum(any(e.kind == "gave_up" for e in p.log) for p in participants)
    if gave_up:
        notes.append(f"{gave_up} participants gave up after {RELOADS} reloads")
    return notes


def _budget_s(scale: Scale, plans: list[Plan]) -> float:
    """Long enough for every turn, a page stuck after each reload, the longest outage and a
    process's stop."""
    turns = max(plan.turns for plan in plans)
    stuck = (RELOADS + 1) * scale.stuck_after
    return turns * 5 + stuck + scale.pg_long_s + scale.stop_limit + 60


def count_outcome(
    outcome: Outcome, people: list[tuple[str, str]], markers: list[str],
    participants: list[Participant], fuzzed: list[FuzzResult],
) -> None:  # fmt: skip
    ids = [public_id for _, public_id in people]
    rows = study.message_rows(ids)
    owners = {
        row.generation_id: markers[i] for i, key in enumerate(ids) for row in rows.get(key, [])
    }
    total = Tally()
    for i, participant in enumerate(participants):
        total.add(participant_tally(participant.log, rows.get(ids[i], []), me=markers[i],
                                    owners=owners))  # fmt: skip
    for result in fuzzed:
        wrong = wrong_frames(result.frames, me=result.marker, owners=owners)
        mishandled = bad_answers(result.answers, set(ERROR_CODES) - {"server_error"})
        total.wrong += len(wrong)
        outcome.mishandled += len(mishandled)
        total.problems.extend(f"{result.marker}: {m}" for m in [*wrong, *mishandled][:5])
    if fuzzed:
        outcome.notes.append(f"{sum(len(r.answers) for r in fuzzed)} hostile frames sent")
    for name in ("replies", "lost", "duplicated", "stranded", "wrong", "reloads", "resends"):
        setattr(outcome, name, getattr(total, name))
    outcome.problems = total.problems


def random_tag() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=4))
