"""The chat's database calls in worker processes (studyapp/realtime/dbcalls.py): the results and
refusals cross intact, a dead worker costs only the calls it had, and a worker never outlives
its parent."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from studyapp.participants.models import Status
from studyapp.realtime import dbcalls, dbprocesses, dbworker
from studyapp.realtime.dbprocesses import DatabaseWorkerLost
from studyapp.writing.models import Message, Role
from studyapp.writing.services import WritingRefused, message_send
from tests.writing.conftest import db

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_processes(settings):
    settings.WRITING_DB_PROCESSES = 1
    yield
    dbcalls.shutdown()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.usefixtures("worker_processes")
async def test_calls_run_in_one_worker_process_of_this_process():
    pid = dbcalls.in_db_worker(dbworker.pid)
    first = await pid()
    assert first != os.getpid()
    assert await pid() == first


@pytest.mark.usefixtures("worker_processes")
async def test_a_message_sent_through_a_worker_is_stored_and_planned(writer):
    plan = await dbcalls.in_db_worker(message_send)(
        participation_id=writer.pk, text="Help me with a blog post", client_msg_id="w-1"
    )
    assert (plan.participation_id, plan.turn) == (writer.pk, 1)
    assert plan.user_text == "Help me with a blog post"
    assert plan.history == [{"role": "user", "content": "Help me with a blog post"}]
    assert plan.condition_config == writer.condition.config
    stored = await db(lambda: list(Message.objects.filter(participation=writer)))
    assert [(m.turn, m.role, m.client_msg_id) for m in stored] == [(1, Role.USER, "w-1")]


@pytest.mark.usefixtures("worker_processes")
async def test_a_refusal_reaches_the_socket_with_its_code_and_message(writer):
    def finish():
        writer.status = Status.FINISHED
        writer.save(update_fields=["status"])

    await db(finish)
    with pytest.raises(WritingRefused) as refused:
        await dbcalls.in_db_worker(message_send)(
            participation_id=writer.pk, text="One more", client_msg_id=""
        )
    assert (refused.value.code, refused.value.message) == ("not_writing", "This chat has ended.")


@pytest.mark.usefixtures("worker_processes")
async def test_a_killed_worker_fails_the_calls_it_had_and_the_next_gets_a_new_worker():
    pid = dbcalls.in_db_worker(dbworker.pid)
    dead = await pid()
    slow = asyncio.ensure_future(dbcalls.in_db_worker(functools.partial(time.sleep, 30))())
    queued = asyncio.ensure_future(pid())  # waits behind the slow call
    await asyncio.sleep(0.3)
    os.kill(dead, signal.SIGKILL)
    for call in (slow, queued):
        with pytest.raises(DatabaseWorkerLost):
            await asyncio.wait_for(call, 10)
    fresh = await pid()
    assert fresh not in (dead, os.getpid())


@pytest.mark.usefixtures("worker_processes")
async def test_calls_spread_over_the_workers_and_answers_keep_their_order(settings):
    settings.WRITING_DB_PROCESSES = 2
    pid = dbcalls.in_db_worker(dbworker.pid)
    both = await asyncio.gather(pid(), pid())  # two calls at once: one each, both started
    assert sorted(both) == sorted(dbprocesses.pids())
    slow = asyncio.ensure_future(dbcalls.in_db_worker(functools.partial(time.sleep, 3))())
    await asyncio.sleep(0.1)
    # The busy worker is passed over while the other one answers.
    answered = [await asyncio.wait_for(pid(), 2.5) for _ in range(3)]
    assert len(set(answered)) == 1
    assert not slow.done()
    await slow
    echoes = await asyncio.gather(*(dbcalls.in_db_worker(abs)(-n) for n in range(50)))
    assert echoes == list(range(50))


@pytest.mark.usefixtures("worker_processes")
async def test_an_answer_that_does_not_pickle_is_a_clear_error():
    with pytest.raises(RuntimeError, match="could not be sent back"):
        await dbcalls.in_db_worker(threading.Lock)()
    assert await dbcalls.in_db_worker(dbworker.pid)() in dbprocesses.pids()


def test_a_worker_exits_when_its_parent_is_killed():
    script = (
        "import asyncio, time, django\n"
        "django.setup()\n"
        "from studyapp.realtime import dbcalls, dbworker\n"
        "print(asyncio.run(dbcalls.in_db_worker(dbworker.pid)()), flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "studyapp.settings",
           "WRITING_DB_PROCESSES": "1"}  # fmt: skip
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        worker = int(parent.stdout.readline())
        assert worker != parent.pid
        assert _running(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker)
    finally:
        parent.kill()
        parent.wait()


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("worker_processes", "restored_gc")
async def test_the_server_lifespan_starts_the_workers_and_stops_them():
    from studyapp.realtime.lifespan import GEN0_THRESHOLD, lifespan

    messages = asyncio.Queue()
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    running = asyncio.ensure_future(lifespan({"type": "lifespan"}, messages.get, send))
    await messages.put({"type": "lifespan.startup"})
    await _until(lambda: sent)
    worker = await dbcalls.in_db_worker(dbworker.pid)()
    assert _running(worker)
    # What startup left is frozen out of the collector, and young collections are rarer.
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    await messages.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(running, 30)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    await _until(lambda: not _running(worker))


async def _until(predicate, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
