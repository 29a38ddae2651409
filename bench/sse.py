"""The content deltas of a vLLM chat stream, read chunk by chunk (the benchmark's clients)."""

from __future__ import annotations

import json


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
