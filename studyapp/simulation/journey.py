"""One simulated participant's walk through a study over HTTP and the co-writing WebSocket.

Every step is a request a browser would make (entry link, consent, pre-writing, the writing
page, its socket, Finish, the final questions); the app stores what it stores for a person.
The brain (studyapp/simulation/brains.py) decides what to send; this module speaks the pages
and docs/protocol.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from studyapp.simulation.brains import Brain, Chat
from studyapp.simulation.chatsocket import ChatSocket, Frame
from studyapp.simulation.pages import read_form, writing_config

# How many times a failed reply is retried before the participant gives up.
RETRIES = 2


class JourneyError(Exception):
    """The app answered in a way a participant could not go on from."""


@dataclass
class JourneyResult:
    label: str
    persona: str
    # completed (reached the last page) | dropped (left mid-chat) | ended_early (the app
    # refused Finish: too few turns) | failed (the app answered something unusable)
    outcome: str = "failed"
    error: str = ""
    turns: int = 0
    stop_clicks: int = 0
    stops: int = 0  # replies that did end stopped (a short one may end before the click lands)
    reloads: int = 0
    regenerations: int = 0
    ratings: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Journey:
    def __init__(
        self, *, base_url: str, slug: str, key: str, label: str, brain: Brain, spec: dict,
        wait_s: float = 120.0,
    ) -> None:  # fmt: skip
        self.base_url, self.slug, self.key, self.label = base_url.rstrip("/"), slug, key, label
        self.brain, self.spec, self.wait_s = brain, spec, wait_s
        self.result = JourneyResult(label=label, persona=brain.persona)
        self.http = httpx.AsyncClient(
            base_url=self.base_url, follow_redirects=True, timeout=wait_s, trust_env=False
        )

    async def run(self) -> JourneyResult:
        started = time.monotonic()
        try:
            self.result.outcome = await self._walk()
        except Exception as exc:  # one participant's failure is reported, never fatal to a run
            self.result.outcome = "failed"
            self.result.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            await self.http.aclose()
            self.result.seconds = time.monotonic() - started
        return self.result

    # -- pages ---------------------------------------------------------------------------------
    async def _walk(self) -> str:
        params = {"simulated_label": self.label, "simulation_key": self.key}
        page = await self.http.get(f"/study/{self.slug}/", params=params)
        page = await self._consent(self._expect(page, "/consent/"))
        chat, page = await self._prewriting(self._expect(page, "/prewriting/"))
        config = writing_config(self._expect(page, "/write/").text)
        ended = await self._write(chat, config)
        if ended != "finish":
            return ended
        page = await self._post(config["finish_url"], {})
        if page.status_code == 409:
            return "ended_early"  # the app refused Finish (too few turns, empty document)
        page = await self._final(self._expect(page, "/final/"), chat)
        self._expect(page, "/done/")
        return "completed"  # the journey's end; the app alone knows how it scored it

    def _expect(self, response: httpx.Response, path_end: str) -> httpx.Response:
        if response.status_code != 200 or not response.url.path.endswith(path_end):
            raise JourneyError(
                f"expected the page {path_end!r}, got {response.status_code} at {response.url.path}"
            )
        return response

    async def _post(self, url: str, data: dict[str, Any]) -> httpx.Response:
        token = self.http.cookies.get("csrftoken", "")
        return await self.http.post(url, data={**data, "csrfmiddlewaretoken": token})

    async def _consent(self, page: httpx.Response) -> httpx.Response:
        form = read_form(page.text)
        boxes = {name: "on" for name in form.kinds if name.startswith("agree_")}
        return await self._post(str(page.url), {**boxes, "decision": "agree"})

    async def _prewriting(self, page: httpx.Response) -> tuple[Chat, httpx.Response]:
        form = read_form(page.text)
        names = sorted((n for n in form.kinds if n.startswith("answer_")), key=_index)
        questions = [form.label_of(n) for n in names]
        doc_key = self._document_type(questions)
        topic, answers = await self.brain.prewriting(
            document_type=doc_key, topics=form.values.get("topic", []), questions=questions
        )
        data = {"topic": topic, **dict(zip(names, answers, strict=True))}
        given = dict(zip(questions, answers, strict=True))
        chat = Chat(document_type=doc_key, topic=topic, answers=given)
        return chat, await self._post(str(page.url), data)

    def _document_type(self, questions: list[str]) -> str:
        """The assigned document type: the one whose questions the page asks."""
        for doc in self.spec["document_types"]:
            if list(doc["questions"]) == questions:
                return str(doc["key"])
        return ""

    async def _final(self, page: httpx.Response, chat: Chat) -> httpx.Response:
        answers = await self.brain.survey(chat, spec=self.spec)
        return await self._post(str(page.url), answers)

    # -- the co-writing page -------------------------------------------------------------------
    async def _write(self, chat: Chat, config: dict[str, Any]) -> str:
        socket = self._socket(config)
        try:
            self._see(chat, await socket.open())
            chat.min_turns, chat.max_turns = config["min_turns"], config["max_turns"]
            turn = 0
            while True:
                if socket.rating_due is not None:
                    await self._rate(socket, chat, config)
                text = None
                if turn < chat.max_turns:
                    text = await self.brain.next_message(chat)
                if text is None:
                    return "finish"
                turn += 1
                socket, end = await self._turn(socket, chat, text, turn)
                every = config.get("rating_every") or 0
                if every and end["turn"] % every == 0 and socket.rating_due is None:
                    # Sent right after the checkpoint's turn_end, in the same batch.
                    await socket.until(lambda f: f["type"] == "rating_due", what="rating_due")
                self._count_turns(chat, config)
                await self._regenerate_if_planned(socket, chat, turn)
                await self._edit(socket, chat)
                if self.brain.habits.drop_after == turn:
                    return "dropped"
        finally:
            await socket.close()

    def _socket(self, config: dict[str, Any]) -> ChatSocket:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = f"{scheme}://{parts.netloc}{config['ws_path']}?token={config['token']}"
        return ChatSocket(url, f"{parts.scheme}://{parts.netloc}", wait_s=self.wait_s)

    def _see(self, chat: Chat, state: Frame) -> None:
        """What a (re)loaded page shows: the conversation and document as the server has them."""
        chat.messages = [dict(m) for m in state["messages"]]
        chat.document = state["document"]["text"]
        chat.turns_completed = state["turns_completed"]

    def _count_turns(self, chat: Chat, config: dict[str, Any]) -> None:
        """Turns that count toward the minimum, as the page counts them (the server decides)."""
        least = config["min_message_words"]
        asked = {m["turn"] for m in chat.messages
                 if m["role"] == "user" and len(m["text"].split()) >= least}  # fmt: skip
        chat.turns_completed = len(
            {m["turn"] for m in chat.messages
             if m["role"] == "assistant" and m["turn"] in asked and m["text"].split()}
        )  # fmt: skip
        self.result.turns = chat.turns_completed

    def _reply(self, chat: Chat, end: Frame) -> None:
        """The reply ``end`` carries becomes the turn's reply in the local copy of the chat."""
        chat.messages = [
            m for m in chat.messages if not (m["role"] == "assistant" and m["turn"] == end["turn"])
        ]
        chat.messages.append({"turn": end["turn"], "role": "assistant", "text": end["text"]})

    async def _turn(
        self, socket: ChatSocket, chat: Chat, text: str, turn: int
    ) -> tuple[ChatSocket, Frame]:
        habits = self.brain.habits
        await socket.send_message(text)
        start = await socket.until(
            lambda f: f["type"] == "turn_start" and not f.get("regenerate"),
            what=f"turn_start of turn {turn}",
        )
        chat.messages.append({"turn": start["turn"], "role": "user", "text": text})
        if habits.stop_from is not None and turn >= habits.stop_from and not self.result.stops:
            # Once the reply has begun (a stop sent before may find no reply yet). The socket
            # handles it after storing the message, so a short reply can still end first:
            # the next reply is stopped instead.
            await socket.send({"type": "stop"})
            self.result.stop_clicks += 1
        elif turn in habits.reload_at:
            # The participant reloads the page mid-reply: a new token, a fresh socket.
            await socket.close()
            self.result.reloads += 1
            page = await self.http.get(f"/study/{self.slug}/write/")
            socket = self._socket(writing_config(self._expect(page, "/write/").text))
            state = await socket.open()
            self._see(chat, state)
            if state["generation"] is None:  # it ended meanwhile: the state holds the reply
                for m in state["messages"]:
                    if m["turn"] == start["turn"] and m["role"] == "assistant":
                        return socket, {"type": "turn_end", **m}
                await socket.send({"type": "retry"})
        for _ in range(RETRIES + 1):
            end = await socket.until(
                lambda f: f["type"] in ("turn_end", "turn_error") and f.get("turn") == start["turn"]
                and not f.get("regenerate"),
                what=f"turn_end of turn {start['turn']}",
            )  # fmt: skip
            if end["type"] == "turn_end":
                self.result.stops += end["finish_reason"] == "cancelled"
                self._reply(chat, end)
                return socket, end
            self.result.notes.append(f"turn {turn}: {end.get('message')}")
            await socket.send({"type": "retry"})
        raise JourneyError(f"the reply to turn {turn} failed {RETRIES + 1} times")

    async def _rate(self, socket: ChatSocket, chat: Chat, config: dict[str, Any]) -> None:
        turn = socket.rating_due
        value = await self.brain.rate(chat, turn=turn, scale=config["rating_scale"])
        await socket.send({"type": "rate", "turn": turn, "value": value})
        await socket.until(lambda f: f["type"] == "ack" and f.get("of") == "rate", what="rate ack")
        socket.rating_due = None
        self.result.ratings += 1

    async def _regenerate_if_planned(self, socket: ChatSocket, chat: Chat, turn: int) -> None:
        if turn not in self.brain.habits.regenerate_at or socket.rating_due is not None:
            return
        latest = chat.messages[-1] if chat.messages else {}
        if latest.get("role") != "assistant":
            return
        await socket.send({"type": "regenerate", "turn": latest["turn"]})
        end = await socket.until(
            lambda f: f["type"] in ("turn_end", "turn_error") and bool(f.get("regenerate")),
            what="the regenerated reply",
        )
        if end["type"] == "turn_end":
            self.result.regenerations += 1
            self._reply(chat, end)

    async def _edit(self, socket: ChatSocket, chat: Chat) -> None:
        text = await self.brain.edit_document(chat)
        if text == chat.document:
            return
        edit = {"t": int(time.time() * 1000), "type": "insertText", "at": len(chat.document),
                "delta": len(text) - len(chat.document), "len": len(text),
                "data": text[len(chat.document):][:200] or None}  # fmt: skip
        await socket.send(
            {"type": "doc", "text": text, "version_base": socket.doc_version, "edits": [edit]}
        )
        await socket.until(lambda f: f["type"] == "doc_saved", what="doc_saved")
        chat.document = text


def _index(name: str) -> int:
    return int(name.rsplit("_", 1)[1])
