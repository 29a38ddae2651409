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


async def kill_one(run: Run) -> None:
    """``kill -9`` of one ASGI process mid-reply; a supervisor starts it again."""
    await mid_reply(run)
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
        run.clock.start()
        seconds = await asyncio.to_thread(app.terminate, run.scale.stop_limit)
        run.clock.end()
        run.notes.append(
            f"{app.name}: " + ("killed at the limit" if seconds is None else f"{seconds:.1f} s")
        )
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
