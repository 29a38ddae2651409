"""The database worker pipe (studyapp/realtime/dbprocesses.py): a call that cannot cross fails
alone, and no answer ever reaches a caller it does not belong to."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from studyapp.realtime import dbcalls, dbprocesses, dbworker
from studyapp.realtime.dbprocesses import DatabaseCallNotSent, DatabaseWorkerLost
from studyapp.writing.models import Message, Role
from tests.writing.conftest import LiveServer, db, make_participation
from tests.writing.test_live_relay import LiveClient

pytestmark = pytest.mark.django_db(transaction=True)

DEPTH = 1000  # past the recursion limit: pickle gives up on it


@pytest.fixture
def worker_processes(settings):
    settings.WRITING_DB_PROCESSES = 1
    yield
    dbcalls.shutdown()


def _nested(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def _refuse_unpickling() -> None:
    raise ValueError("this object cannot be rebuilt")


class _Unloadable:
    """Pickles in the ASGI process, fails to unpickle in the worker."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse_unpickling, ())


class _TwoPartError(Exception):
    """Pickles in the worker, but cannot be rebuilt from its one stored argument."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


def _raise_two_part() -> None:
    raise _TwoPartError("odd", "error")


async def _echoes(count: int) -> list[int]:
    """``count`` calls at once, each answering its own number."""
    calls = (dbcalls.in_db_worker(abs)(-n) for n in range(1, count + 1))
    return await asyncio.wait_for(asyncio.gather(*calls), 10)


@pytest.mark.usefixtures("worker_processes")
@pytest.mark.parametrize(
    "argument", [lambda: None, _nested(DEPTH)], ids=["lambda", f"{DEPTH}_deep_list"]
)
async def test_a_call_that_does_not_pickle_fails_alone_and_later_calls_get_their_own_answers(
    argument,
):
    worker = await dbcalls.in_db_worker(dbworker.pid)()
    with pytest.raises(DatabaseCallNotSent, match="could not be sent"):
        await asyncio.wait_for(dbcalls.in_db_worker(len)(argument), 10)
    assert await _echoes(8) == list(range(1, 9))
    assert dbprocesses.pids() == [worker]  # the same worker: nothing was out of step


@pytest.mark.usefixtures("worker_processes")
async def test_a_call_that_does_not_unpickle_in_the_worker_fails_alone():
    worker = await dbcalls.in_db_worker(dbworker.pid)()
    bad = dbcalls.in_db_worker(functools.partial(abs, _Unloadable()))()
    answers = await asyncio.wait_for(
        asyncio.gather(
            bad, *(dbcalls.in_db_worker(abs)(-n) for n in range(1, 5)), return_exceptions=True
        ),
        10,
    )
    assert isinstance(answers[0], ValueError)
    assert answers[1:] == [1, 2, 3, 4]
    assert await dbcalls.in_db_worker(dbworker.pid)() == worker


@pytest.mark.usefixtures("worker_processes")
async def test_an_answer_that_cannot_be_read_here_fails_only_its_call():
    worker = await dbcalls.in_db_worker(dbworker.pid)()
    with pytest.raises(RuntimeError, match="could not be read"):
        await asyncio.wait_for(dbcalls.in_db_worker(_raise_two_part)(), 10)
    assert await _echoes(8) == list(range(1, 9))
    assert await dbcalls.in_db_worker(dbworker.pid)() == worker


@pytest.mark.usefixtures("worker_processes")
async def test_a_result_too_deep_to_pickle_is_answered_to_its_own_call():
    deep = dbcalls.in_db_worker(_nested)(DEPTH)
    answers = await asyncio.wait_for(
        asyncio.gather(
            deep, *(dbcalls.in_db_worker(abs)(-n) for n in range(1, 5)), return_exceptions=True
        ),
        10,
    )
    assert isinstance(answers[0], RuntimeError)
    assert "could not be sent back" in str(answers[0])
    assert answers[1:] == [1, 2, 3, 4]


@pytest.mark.usefixtures("worker_processes")
async def test_an_answer_to_another_call_fails_the_waiting_calls_and_replaces_the_worker():
    first = await dbcalls.in_db_worker(dbworker.pid)()
    slow = asyncio.ensure_future(dbcalls.in_db_worker(functools.partial(time.sleep, 1))())
    await asyncio.sleep(0.2)
    (worker,) = dbprocesses._workers
    (waiting_id, _), *_ = worker.answers.waiting
    # An answer arrives bearing another call's id (a channel out of step).
    worker.answers.data_received(dbworker.frame(("ok", "someone else's"), waiting_id + 1))
    with pytest.raises(DatabaseWorkerLost, match="out of step"):
        await asyncio.wait_for(slow, 5)
    fresh = await dbcalls.in_db_worker(dbworker.pid)()
    assert fresh != first
    assert await _echoes(8) == list(range(1, 9))


# -- through a live server --------------------------------------------------------------------
def _conversation(participation, n: int) -> list[str]:
    texts = []
    for turn in (1, 2):
        user = f"Participant {n} asks question {turn} ({participation.public_id})"
        reply = f"An answer for participant {n}, turn {turn}"
        Message.objects.create(participation=participation, turn=turn, role=Role.USER, text=user)
        Message.objects.create(
            participation=participation, turn=turn, role=Role.ASSISTANT, text=reply
        )
        texts += [user, reply]
    return texts


@pytest.fixture
def uvicorn_server(monkeypatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("WRITING_DB_PROCESSES", "1")  # the pipe, not threads
    server = LiveServer(tokens_per_second=25)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _deep_edits_frame(depth: int) -> str:
    edits = '[{"t": 1, "data": ' + "[" * depth + "]" * depth + "}]"
    return '{"type": "doc", "text": "x", "version_base": 0, "edits": ' + edits + "}"


async def test_a_deep_doc_frame_leaves_every_participant_its_own_conversation(
    demo_version, uvicorn_server
):
    participants = [await db(make_participation, demo_version) for _ in range(8)]
    expected = [await db(_conversation, p, n) for n, p in enumerate(participants)]
    attacker = await LiveClient.open(uvicorn_server, await db(make_participation, demo_version))
    await attacker.hello(None)
    # Valid JSON, nested far enough that pickle gives up but not so far that json.loads does.
    await attacker.ws.send(_deep_edits_frame(700))
    refused = await attacker.recv()

    async def conversation(participation) -> list[str]:
        client = await LiveClient.open(uvicorn_server, participation)
        state = await client.hello(None)
        await client.close()
        return [m["text"] for m in state["messages"]]

    seen = await asyncio.gather(*(conversation(p) for p in participants), return_exceptions=True)
    assert seen == expected
    assert (refused["type"], refused["code"]) == ("error", "bad_json")
    await attacker.send({"type": "doc", "text": "still here", "version_base": 0})
    assert (await attacker.recv())["type"] == "doc_saved"
    await attacker.close()
