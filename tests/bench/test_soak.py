"""bench/load: the soak's pieces at tiny scale (Caddy, the real binary, in front of WebSocket
upstreams as the soak configures it; the times to first visible character and the errors read
from a participant's frames; CPU counted by role), then one tiny load step of the whole soak."""

import json
import os
import re
import subprocess
import sys

import pytest
import websockets
from websockets.asyncio.server import serve

from bench.faults.accounting import Entry
from bench.faults.services import free_port
from bench.load.__main__ import STEP_COLUMNS
from bench.load.steps import cpu_by_role, first_character_ms, log_errors
from bench.load.topology import Caddy


async def test_caddy_passes_websockets_to_every_live_upstream_and_skips_a_dead_one(tmp_path):
    async def answer(ws):
        async for message in ws:
            await ws.send(f"{ws.local_address[1]}:{message}")

    async with serve(answer, "127.0.0.1", 0) as one, serve(answer, "127.0.0.1", 0) as two:
        live = {s.sockets[0].getsockname()[1] for s in (one, two)}
        (tmp_path / "logs").mkdir()
        proxy = Caddy(tmp_path, [*live, free_port()])  # the third: nothing listens there
        proxy.start()
        try:
            answered_by = set()
            for i in range(12):
                url = f"ws://127.0.0.1:{proxy.port}/ws/study/x/"
                async with websockets.connect(url, open_timeout=10) as ws:
                    await ws.send(f"hi {i}")
                    port, text = str(await ws.recv()).split(":", 1)
                    assert text == f"hi {i}"
                    answered_by.add(int(port))
        finally:
            proxy.stop()
    assert answered_by == live


def _log(*items: tuple[str, dict | str, float]) -> list[Entry]:
    return [Entry(kind, data if isinstance(data, str) else json.dumps(data), at)
            for kind, data, at in items]  # fmt: skip


def test_first_character_times_and_errors_come_from_the_frames_a_participant_saw():
    log = _log(
        ("send", {"type": "hello"}, 0.0),
        ("recv", {"type": "state"}, 0.01),
        ("send", {"type": "send", "text": "a"}, 1.0),
        ("recv", {"type": "turn_start", "turn": 1}, 1.004),
        ("recv", {"type": "delta", "text": "For"}, 1.025),
        ("recv", {"type": "delta", "text": " you"}, 1.05),
        ("recv", {"type": "turn_end", "turn": 1}, 2.0),
        ("send", {"type": "send", "text": "b"}, 21.0),
        ("recv", {"type": "turn_error", "turn": 2}, 22.0),
        ("lost", "1006", 23.0),
        ("send", {"type": "send", "text": "c"}, 41.0),
    )
    times, unanswered = first_character_ms(log)
    assert times == pytest.approx([25.0])
    assert unanswered == 2
    assert log_errors(log, unanswered_before=60) == {"turn_error": 1, "socket lost": 1,
                                                     "no reply": 1}  # fmt: skip
    # A message sent in the step's last seconds may still be unanswered when it ends.
    assert log_errors(log, unanswered_before=40) == {"turn_error": 1, "socket lost": 1}


def test_cpu_is_counted_for_the_role_of_each_process():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    busy = subprocess.Popen([sys.executable, "-c", burn + "print('done', flush=True)\ninput()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert busy.stdout is not None
        assert busy.stdout.readline() == "done\n"
        as_caddy = cpu_by_role({busy.pid: "caddy"})
        unnamed = cpu_by_role({})
    finally:
        busy.kill()
        busy.wait()
    assert as_caddy["caddy"] >= 0.35
    assert unnamed["caddy"] == 0
    assert unnamed["other"] - as_caddy["other"] >= 0.35 - 0.05  # the same seconds, unnamed


def test_the_soak_counts_the_app_requests_each_model_replica_served(tmp_path):
    from types import SimpleNamespace

    from bench.faults.model import REQUEST_LINE
    from bench.load.__main__ import replica_note
    from bench.load.topology import SoakStack

    (tmp_path / "model.log").write_text(f"listening\n{REQUEST_LINE} app\n{REQUEST_LINE}\n" * 3)
    (tmp_path / "model-1.log").write_text(f"{REQUEST_LINE} app\n")
    stack = SimpleNamespace(
        logs=tmp_path, models=[SimpleNamespace(name="model"), SimpleNamespace(name="model-1")]
    )
    assert SoakStack.model_requests(stack) == [3, 1]  # the direct clients' requests left out
    assert replica_note([1, 1], [3, 1]).endswith("2 / 0 (NO TRAFFIC: model-1)")
    assert replica_note([0, 0], [5, 4]).endswith(": 5 / 4")


def test_a_load_step_counts_each_replica_s_share_of_the_replies_its_participants_got(tmp_path):
    """The whole soak (its own PostgreSQL, Redis, Celery, Caddy, three ASGI processes and two
    model replicas) through one tiny load step, as ``make soak`` runs it."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | {
        "SECRET_KEY": "bench-only-key-of-throwaway-databases",  # as the Makefile's soak sets
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
    }
    results = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--steps", "3", "--step-seconds", "5",
         "--interval", "1.5", "--scenarios", "none", "--tps", "400", "--tokens", "12",
         "--json", str(results)],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{STEP_COLUMNS[0]}=3 "))
    note = re.fullmatch(
        r"  model requests from the app per replica: (\d+) / (\d+)",
        lines[at + 1],
    )
    assert note, done.stdout  # printed right after the step's line, with no replica idle
    served = [int(n) for n in note.groups()]
    step = json.loads(results.read_text())["steps"][0]
    assert step["errors"] == {}, done.stdout
    assert step["replies"] >= 3, done.stdout  # a reply for each participant at least
    assert all(n > 0 for n in served), done.stdout  # the app uses both replicas
    assert sum(served) == step["replies"], done.stdout
