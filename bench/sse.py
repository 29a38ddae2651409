"""The vLLM chat stream the benchmark's clients ask for, and its content deltas read chunk by
chunk."""

from __future__ import annotations

import json

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CHAT_HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}


def chat_body(text: str) -> bytes:
    """A streamed chat completion request for one user message, sampling values explicit."""
    return json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": text}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.8,
            "top_p": 1.0,
            "max_tokens": 1024,
        }
    ).encode()


class ContentDeltas:
    """Split a stream's body into ``data:`` lines and keep their content deltas."""

    def __init__(self) -> None:
        self.partial = b""  # an incomplete last line, completed by the next chunk

    def feed(self, data: bytes) -> list[str]:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        contents = []
        for line in lines:
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or []
            content = choices[0]["delta"].get("content") if choices else None
            if content:
                contents.append(content)
        return contents
