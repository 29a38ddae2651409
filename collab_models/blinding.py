"""A JSON arm's reply that showed nothing is asked for once more, then replaced.

A Proactive Base reply is a JSON object whose ``response`` alone is shown
(:mod:`collab_models.adapters`). When the model writes no ``response`` (prose, an object
without the field, a reply cut off inside the hidden fields, broken JSON before it), nothing
may be shown: the hidden fields would unblind the participant, and a "please retry" would
mark the arm as the one that fails. So the reply is asked for again at once with another
seed, and if that fails too the participant is shown :data:`NEUTRAL_REPLY`, a plain
assistant-like turn. Every failed attempt is kept in the record (``raw_output``) and named in
its ``error`` (a warning: the turn succeeded), and logged.

The same stream asks again after a context-length error (before anything was shown), once
``shrink`` has shortened the conversation (collab_models/context.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable

from collab_models.adapters import NoResponse
from collab_models.base import ModelError, ReplyStream, TurnRecord
from collab_models.context import CONTEXT_LENGTH

log = logging.getLogger(__name__)

NEUTRAL_REPLY = (
    "Sorry, I did not quite catch that. Could you tell me again what you would like me to do next?"
)
RETRY_MARK = "\n\n[no response field; asked again]\n\n"

Attempt = Callable[[int], ReplyStream]  # the n-th attempt (0, 1, ...) of the reply
# Shortens the conversation after the server's context-length error; False: nothing to drop.
Shrink = Callable[[ModelError], bool]
MAX_SHRINKS = 4  # each costs one immediate refusal from the server


class RetriedReply:
    """A reply stream that retries a :class:`NoResponse` ``retries`` times, then shows
    ``neutral`` instead, and retries a context-length error after ``shrink``. Other model
    errors end it as they would the inner stream."""

    def __init__(
        self,
        attempt: Attempt,
        *,
        retries: int = 1,
        neutral: str = NEUTRAL_REPLY,
        shrink: Shrink | None = None,
    ) -> None:
        self.record: TurnRecord | None = None
        self._shrink = shrink
        self._shrinks = 0
        self._attempt = attempt
        self._current = attempt(0)
        self._tries = 1
        self._left = retries
        self._neutral = neutral
        self._failed: list[TurnRecord] = []
        self._started: float | None = None
        self._shown_at: float | None = None
        self._done = False

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    def start(self) -> None:
        self._clock()
        self._current.start()

    def _clock(self) -> None:
        if self._started is None:
            self._started = time.perf_counter()

    def _seen(self) -> None:
        if self._shown_at is None:
            self._shown_at = time.perf_counter()

    async def deliver_to(self, listener: Callable[[str], None]) -> None:
        """Hand each shown delta to ``listener`` (see ``ProducerStream.deliver_to``)."""

        def seen(delta: str) -> None:
            self._seen()
            listener(delta)

        self._clock()
        while not self._done:
            try:
                await self._current.deliver_to(seen)
            except NoResponse as exc:
                if self._again():
                    continue
                listener(self._substitute(exc))
                return
            except ModelError as exc:
                if self._shorter(exc):
                    continue
                self._settle()
                raise
            self._settle()

    async def __anext__(self) -> str:
        self._clock()
        while not self._done:
            try:
                delta = await self._current.__aiter__().__anext__()
            except StopAsyncIteration:
                self._settle()
                break
            except NoResponse as exc:
                if self._again():
                    continue
                return self._substitute(exc)
            except ModelError as exc:
                if self._shorter(exc):
                    continue
                self._settle()
                raise
            self._seen()
            return delta
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self.record is not None:
            return
        self._done = True  # a delivery in another task ends with this attempt
        await self._current.aclose()
        self._settle()

    def _shorter(self, exc: ModelError) -> bool:
        """After a context-length error with nothing shown: shorten and begin again."""
        if exc.kind != CONTEXT_LENGTH or self._shown_at is not None or self._shrink is None:
            return False
        if self._shrinks >= MAX_SHRINKS or not self._shrink(exc):
            exc.args = (f"{exc} (the latest message alone is too long for the window)",)
            return False
        self._shrinks += 1
        self._next()
        return True

    def _next(self) -> None:
        self._current = self._attempt(self._tries)
        self._tries += 1
        self._current.start()

    def _again(self) -> bool:
        """Begin the next attempt, if one is left."""
        failed = self._current.record
        if failed is not None:
            self._failed.append(failed)
            log.warning("JSON reply without a response (attempt %d): %s", self._tries, failed.error)
        if self._left <= 0:
            return False
        self._left -= 1
        self._next()
        return True

    def _substitute(self, exc: NoResponse) -> str:
        """Show the neutral reply in place of one the model never gave."""
        self._seen()
        base = self._failed[-1] if self._failed else self._current.record
        self.record = self._merged(
            base,
            text=self._neutral,
            finish_reason="stop",
            error=f"{exc}; replaced by the neutral reply after {self._tries} attempt(s)",
        )
        self._done = True
        log.warning("JSON reply replaced by the neutral reply: %s", exc)
        return self._neutral

    def _settle(self) -> None:
        self._done = True
        if self.record is not None:
            return
        record = self._current.record
        if record is None:
            return
        changes = {}
        if self._failed:
            why = "; ".join(r.error for r in self._failed)
            changes["error"] = record.error or f"{why}; answered on attempt {self._tries}"
        self.record = self._merged(record, **changes)

    def _merged(self, record: TurnRecord | None, **changes: object) -> TurnRecord:
        if record is None:
            record = TurnRecord(text="", raw_output="", backend="unknown", model="")
        attempts = list(self._failed)
        if not any(r is record for r in attempts):
            attempts.append(record)
        first = attempts[0]
        ttft = None
        if self._shown_at is not None and self._started is not None:
            ttft = round((self._shown_at - self._started) * 1000.0, 3)
        return dataclasses.replace(
            record,
            raw_output=RETRY_MARK.join(r.raw_output for r in attempts),
            ttft_ms=ttft,
            model_ttft_ms=first.model_ttft_ms,
            **changes,  # type: ignore[arg-type]
        )
