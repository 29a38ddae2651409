"""The fault campaign's model server: tests/collab_models/vllm_fake.py (vLLM's stream format on
loopback, at a set number of tokens per second) whose replies begin with the marker word of the
message they answer, so that a reply shown to another participant is seen. Each chat request
writes one line to stdout (``chat request``, ``app`` when it carries a marker word, i.e. came
from the app), so the soak counts the requests each replica served (bench/load/topology.py).

    python -m bench.faults.model --port 8001 --tps 50 --tokens 60
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.faults.accounting import MARKER
from tests.collab_models.vllm_fake import DEFAULT_MODELS, FakeVLLM, Script, _Server

REQUEST_LINE = "chat request"


class MarkerEcho(FakeVLLM):
    def _tokens(self, script: Script, body: dict[str, Any]) -> list[str]:
        tokens = super()._tokens(script, body)
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        found = MARKER.findall(str(users[-1].get("content", ""))) if users else []
        print(REQUEST_LINE + (" app" if found else ""), flush=True)
        return [f"For {found[-1]}:", " " + tokens[0].lstrip(), *tokens[1:]] if found else tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--tokens", type=int, default=60)
    args = parser.parse_args()
    fake = MarkerEcho(
        port=args.port, tps=args.tps, tokens=args.tokens, models=DEFAULT_MODELS, keep_requests=10
    )
    sock = fake._bind()

    async def serve() -> None:
        server = _Server(fake._config(loop="auto", http="auto"))
        task = await server.serve_until_ready([sock])
        print(f"model server listening on {fake.url}", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
