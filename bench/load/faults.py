"""The fault campaign's scenarios (bench/faults/scenarios.py) on the soak's topology. Behind
the proxy every participant is on Caddy's port, so a fault on one ASGI process strikes once
half of all participants are streaming, not half of that process's."""

from __future__ import annotations

import asyncio

from bench.faults.scenarios import (
    KILLED_DOWN_S,
    SCENARIOS,
    Run,
    Scenario,
    mid_reply,
    restart_app,
)


def streaming(run: Run) -> int:
    return sum(p.page.streaming is not None for p in run.participants)


async def kill_one(run: Run) -> None:
    """``kill -9`` of one ASGI process mid-reply; a supervisor starts it again."""
    await mid_reply(run)
    run.notes.append(f"{streaming(run)} replies streaming (on any process) at the kill")
    run.clock.start()
    await asyncio.to_thread(run.stack.apps[0].kill9)
    run.clock.end()  # its replies are the others' to resolve from here on
    await asyncio.sleep(KILLED_DOWN_S)
    await restart_app(run, 0)


async def rolling_restart(run: Run) -> None:
    """SIGTERM to each ASGI process in turn, mid-reply, each started again once it exited, as
    a deploy rolls them."""
    for index, app in enumerate(run.stack.apps):
        await mid_reply(run)
        at_stop = streaming(run)
        run.clock.start()
        seconds = await asyncio.to_thread(app.terminate, run.scale.stop_limit)
        run.clock.end()
        exited = "killed at the limit" if seconds is None else f"exited after {seconds:.1f} s"
        run.notes.append(f"{app.name}: {at_stop} replies streaming (on any process), {exited}")
        await restart_app(run, index)


SOAK_SCENARIOS = {
    s.key: s
    for s in (
        Scenario("kill9", kill_one, heading="kill -9 of one of three ASGI processes"),
        Scenario("rolling", rolling_restart, heading="SIGTERM rolling restart of all three"),
        SCENARIOS["redis"],
        SCENARIOS["pg-short"],
        Scenario("model", SCENARIOS["model"].fault, heading="one of two model replicas killed"),
        SCENARIOS["fuzz"],
    )
}
