"""The writing socket's ``choose`` and ``regenerate`` frames (mixed into WritingConsumer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from studyapp.realtime import framebus
from studyapp.realtime.dbcalls import in_db_worker
from studyapp.writing import frames as out
from studyapp.writing import protocol, relay
from studyapp.writing.alternatives.relay import regeneration_start
from studyapp.writing.alternatives.services import pair_pick, reply_regenerate
from studyapp.writing.protocol import ProtocolError


class AlternativesHandlers:
    """Thin like the rest of the consumer: parse, check, call one service, relay.

    Expects the consumer's ``participation_id``, ``public_id`` and ``_send``.
    """

    participation_id: int | None
    public_id: str
    _send: Callable[[dict[str, Any]], Awaitable[None]]

    async def on_choose(self, frame: dict[str, Any]) -> None:
        choose = protocol.parse_choose(frame)
        if await relay.generation_in_flight(self.public_id):
            raise ProtocolError("busy")  # the pair is still streaming: nothing to pick from yet
        picked = await in_db_worker(pair_pick)(
            participation_id=self.participation_id,
            group=choose.group,
            generation_id=choose.generation_id,
        )
        message = picked.message
        turn = message.turn
        if not picked.duplicate:
            # Every tab of the participant shows the pick (numbered like any chat frame).
            frames = [
                out.pair_chosen(
                    turn=turn,
                    group=str(message.alternative_group),
                    generation_id=str(message.generation_id),
                    text=message.text,
                    finish_reason=message.finish_reason,
                )
            ]
            if picked.rating_due == turn:
                frames.append(out.rating_due(turn=turn))
            await framebus.publish(self.public_id, frames)
        await self._send(
            out.ack(
                "choose",
                turn=turn,
                generation_id=str(message.generation_id),
                duplicate=picked.duplicate,
            )
        )

    async def on_regenerate(self, frame: dict[str, Any]) -> None:
        turn = protocol.parse_regenerate(frame)
        if await relay.generation_in_flight(self.public_id):
            raise ProtocolError("busy")
        plan = await in_db_worker(reply_regenerate)(
            participation_id=self.participation_id, turn=turn
        )
        await regeneration_start(plan)
        await self._send(out.ack("regenerate", turn=plan.turn))
