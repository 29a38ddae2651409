"""Reply streams shared by all backends.

:class:`ProducerStream` runs a backend's producer coroutine as its own task and hands its deltas
to the caller through a queue. Running the producer apart from the consumer means ``aclose()``
works from any task (a "stop" button handled elsewhere), and a cancelled producer closes its
HTTP connection or stops its generation thread at once.

:class:`AdaptedStream` wraps any reply stream with a response adapter (see
:mod:`collab_models.adapters`) and fills in the arm's fields of the final record. Its record's
``ttft_ms`` is the time to the first character shown (what the participant waits for), its
``model_ttft_ms`` the time to the model's first token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from collab_models.base import FinishReason, ModelError, ReplyStream, TurnRecord

Producer = Callable[["ProducerStream"], Coroutine[Any, Any, None]]
# Run by ``start()`` with the stream, before the producer's task is made; returns what closes
# anything it began that the producer never took over (or None).
Prepare = Callable[["ProducerStream"], Callable[[], None] | None]
# Takes each delta as it arrives (``deliver_to``); an exception it raises fails the stream.
Listener = Callable[[str], None]


class _End:
    """Queue marker: the producer has finished (``error`` set when it failed)."""

    __slots__ = ("error",)

    def __init__(self, error: ModelError | None = None) -> None:
        self.error = error


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


class ProducerStream:
    """A :class:`~collab_models.base.ReplyStream` fed by a producer coroutine.

    The producer receives this stream, calls :meth:`emit` for each text delta and may fill in
    :attr:`draft` (tokens, finish reason, model, endpoint). It starts on :meth:`start` or the
    first ``__anext__``. It signals failure by raising :class:`ModelError`; any other exception
    is wrapped in one. A backend's ``prepare`` runs synchronously at the start, before the
    producer's task gets its first turn of the event loop (the OpenAI backend sends its request
    there).
    """

    def __init__(
        self, producer: Producer, draft: TurnRecord, *, prepare: Prepare | None = None
    ) -> None:
        self.record: TurnRecord | None = None
        self.draft = draft
        self._producer = producer
        self._queue: asyncio.Queue[str | _End] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._prepare = prepare
        self._discard: Callable[[], None] | None = None
        self._parts: list[str] = []
        self._started = 0.0
        self._done = False
        self._listener: Listener | None = None

    # -- producer side -------------------------------------------------------------------------
    def emit(self, delta: str) -> None:
        """Hand one text delta to the caller (empty deltas are dropped)."""
        if not delta:
            return
        if self.draft.ttft_ms is None:
            self.draft.ttft_ms = _ms_since(self._started)
        if self._listener is None:
            self._queue.put_nowait(delta)
        elif (error := self._hand(self._listener, delta)) is not None:
            self._queue.put_nowait(_End(error))

    def _hand(self, listener: Listener, delta: str) -> ModelError | None:
        """Give ``delta`` to ``listener``; if it raises, stop the producer and return the
        error that ends the stream (a consumer's bug fails the turn, as when iterating)."""
        self._parts.append(delta)
        try:
            listener(delta)
        except Exception as exc:
            self._listener = None
            if self._task is not None:
                self._task.cancel()
            return ModelError(f"{type(exc).__name__}: {exc}")
        return None

    @property
    def started_at(self) -> float:
        """``time.perf_counter()`` when the producer started."""
        return self._started

    def start(self) -> None:
        """Start the generation now instead of at the first ``__anext__``."""
        if self._task is not None or self._done:
            return
        self._started = time.perf_counter()
        if self._prepare is not None:
            self._discard = self._prepare(self)
            self._prepare = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _release(self) -> None:
        if self._discard is not None:
            self._discard()
            self._discard = None

    async def _run(self) -> None:
        try:
            await self._producer(self)
        except ModelError as exc:
            self._queue.put_nowait(_End(exc))
        except asyncio.CancelledError:
            self._queue.put_nowait(_End())
            raise
        except Exception as exc:  # a backend bug must end the turn, not hang the caller
            self._queue.put_nowait(_End(ModelError(f"{type(exc).__name__}: {exc}")))
        else:
            self._queue.put_nowait(_End())
        finally:
            self._release()

    # -- consumer side -------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        if self._task is None:
            self.start()
        item = await self._queue.get()
        if isinstance(item, str):
            self._parts.append(item)
            return item
        self._end(item)
        raise StopAsyncIteration

    async def deliver_to(self, listener: Listener) -> None:
        """Hand every delta to ``listener`` as the producer emits it, in the producer's own
        turn of the event loop, and return when the stream ends (raising its
        :class:`ModelError`, as ``__anext__`` would). Iterating costs the consumer's task a
        wake-up per delta: at 200 replies of 50 tokens a second, 10,000 a second."""
        if self._done:
            return
        if self._task is None:
            self.start()
        self._listener = listener
        while True:
            item = await self._queue.get()  # deltas queued before the listener, then the end
            if not isinstance(item, str):
                self._end(item)
                return
            if self._listener is None:  # it failed in ``emit``: its error is queued
                continue
            if (error := self._hand(listener, item)) is not None:
                self._end(_End(error))  # raises it

    def _end(self, item: _End) -> None:
        if self._done:  # aclose() ran while we waited
            return
        self._done = True
        if item.error is not None:
            self._finish("error", str(item.error))
            raise item.error
        self._finish(self.draft.finish_reason)

    async def aclose(self) -> None:
        """Cancel the generation; the record keeps the text handed out so far."""
        if self._done:
            return
        self._done = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])
        self._release()  # a task cancelled before its first step ran no ``finally``
        self._finish("cancelled")
        self._queue.put_nowait(_End())  # wakes a consumer waiting in another task

    def _finish(self, reason: FinishReason, error: str = "") -> None:
        text = "".join(self._parts)
        self.draft.text = text
        self.draft.raw_output = text
        self.draft.finish_reason = reason
        if error:
            self.draft.error = error
        if self._task is not None:
            self.draft.duration_ms = _ms_since(self._started)
        self.record = self.draft


class ResponseAdapter(Protocol):
    """Turns raw model deltas into the text shown to the participant."""

    def feed(self, delta: str) -> str:
        """Take one raw delta; return the text to show now (may be empty)."""
        ...

    def finish(self) -> tuple[str, str]:
        """The stream ended: return (text still to show, warning or ""), or raise
        ``ModelError`` when the reply has nothing the participant may see."""
        ...


class AdaptedStream:
    """A reply stream seen through a response adapter, with the arm's fields on the record."""

    def __init__(
        self,
        inner: ReplyStream,
        adapter: ResponseAdapter,
        decorate: Callable[[TurnRecord], None] | None = None,
    ) -> None:
        self.record: TurnRecord | None = None
        self._inner = inner
        self._source = inner.__aiter__()
        self._adapter = adapter
        self._decorate = decorate
        self._parts: list[str] = []
        self._raw: list[str] = []
        self._done = False
        self._started: float | None = None
        self._shown_at: float | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    def start(self) -> None:
        """Start the generation now (see ``ProducerStream.start``)."""
        self._clock()
        self._inner.start()

    def _clock(self) -> None:
        if self._started is None:
            self._started = time.perf_counter()

    async def deliver_to(self, listener: Listener) -> None:
        """Hand each shown delta to ``listener`` as it arrives (see
        ``ProducerStream.deliver_to``) and return when the stream ends."""

        def feed(delta: str) -> None:
            shown = self._take(delta)
            if shown:
                listener(shown)

        self._clock()
        try:
            await self._inner.deliver_to(feed)
        except ModelError:
            self._done = True
            self._finish("")
            raise
        if self._done:  # aclose() ran while we waited
            return
        tail = self._end()
        if tail:
            listener(tail)

    async def __anext__(self) -> str:
        self._clock()
        while not self._done:
            try:
                delta = await anext(self._source)
            except StopAsyncIteration:
                if self._done:  # aclose() ran while we waited
                    break
                tail = self._end()
                if tail:
                    return tail
                break
            except ModelError:
                self._done = True
                self._finish("")
                raise
            shown = self._take(delta)
            if shown:
                return shown
        raise StopAsyncIteration

    def _take(self, delta: str) -> str:
        """One raw delta in; the text it shows (may be empty)."""
        self._raw.append(delta)
        shown = self._adapter.feed(delta)
        if shown:
            self._shown(shown)
        return shown

    def _shown(self, text: str) -> None:
        if self._shown_at is None:
            self._shown_at = time.perf_counter()
        self._parts.append(text)

    def _end(self) -> str:
        """The raw stream ended: finish the record; return the text still to show."""
        self._done = True
        try:
            tail, warning = self._adapter.finish()
        except ModelError as exc:  # nothing the participant may see (collab_models.adapters)
            self._finish(str(exc), failed=True)
            raise
        if tail:
            self._shown(tail)
        self._finish(warning)
        return tail

    async def aclose(self) -> None:
        """Cancel the generation; the record keeps the text shown so far."""
        if self._done:
            return
        self._done = True
        await self._inner.aclose()
        self._finish("")

    def _finish(self, warning: str, *, failed: bool = False) -> None:
        inner = self._inner.record
        if inner is None:  # the inner stream always sets one; guard for foreign streams
            inner = TurnRecord(text="", raw_output="", backend="unknown", model="")
        record = dataclasses.replace(
            inner,
            text="".join(self._parts),
            raw_output=inner.raw_output or "".join(self._raw),
            sampling=dict(inner.sampling),
            model_ttft_ms=inner.ttft_ms,
            ttft_ms=self._visible_ttft_ms(),
        )
        if warning and not record.error:
            record.error = warning
        if failed:
            record.error = f"{warning} (finish_reason {record.finish_reason})"
            record.finish_reason = "error"
        if self._decorate is not None:
            self._decorate(record)
        self.record = record

    def _visible_ttft_ms(self) -> float | None:
        if self._shown_at is None or self._started is None:
            return None
        return round((self._shown_at - self._started) * 1000.0, 3)
