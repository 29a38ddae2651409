"""Readiness probes of OpenAI-compatible endpoints, for ``check_models`` and the pool.

``GET /health`` (is the engine up), ``GET /v1/models`` (is the model or LoRA adapter name
served), one short streamed completion with its timings, and :func:`probe_exchange`: a short
multi-turn exchange through an arm's own ``reply`` (its prompt, adapter name, sampling and
response format), which fails a JSON arm whose model does not answer with a ``response``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from collab_models.adapters import MALFORMED
from collab_models.base import ChatMessage, ModelError, ReplyStream, SamplingParams, TurnRecord
from collab_models.openai_backend import OpenAIBackend, Timeouts, normalize_base_url
from collab_models.transport import get_client


def _describe_transport_error(exc: httpx.HTTPError) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {detail}"


@dataclass
class ProbeResult:
    """One readiness check of one endpoint."""

    check: str  # "health", "models" or "completion"
    url: str
    ok: bool
    detail: str
    latency_ms: float | None = None
    ttft_ms: float | None = None
    completion_tokens: int | None = None

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        timing = f" ({self.latency_ms:.0f} ms)" if self.latency_ms is not None else ""
        return f"[{mark}] {self.check:<10} {self.url}{timing}: {self.detail}"


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 1)


async def probe_health(base_url: str, *, timeout_s: float = 5.0) -> ProbeResult:
    """``GET /health``: 200 means the server is up and its engine ready."""
    url = normalize_base_url(base_url)
    start = time.perf_counter()
    try:
        response = await get_client().get(f"{url}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return ProbeResult("health", url, False, _describe_transport_error(exc))
    ok = response.status_code == 200
    return ProbeResult("health", url, ok, f"HTTP {response.status_code}", _elapsed_ms(start))


async def probe_models(
    base_url: str, model: str, *, timeout_s: float = 5.0, api_key: str | None = None
) -> ProbeResult:
    """``GET /v1/models``: is ``model`` (a base model or a LoRA adapter name) served here?"""
    url = normalize_base_url(base_url)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    start = time.perf_counter()
    try:
        response = await get_client().get(f"{url}/v1/models", timeout=timeout_s, headers=headers)
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return ProbeResult("models", url, False, f"{type(exc).__name__}: {exc}")
    elapsed = _elapsed_ms(start)
    if response.status_code != 200:
        return ProbeResult("models", url, False, f"HTTP {response.status_code}", elapsed)
    items = data.get("data") if isinstance(data, dict) else None
    served = [str(m.get("id")) for m in items or [] if isinstance(m, dict)]
    if model in served:
        return ProbeResult("models", url, True, f"{model!r} is served", elapsed)
    return ProbeResult("models", url, False, f"{model!r} not in served models {served}", elapsed)


async def probe_completion(
    base_url: str,
    model: str,
    *,
    max_tokens: int = 16,
    timeout_s: float = 60.0,
    api_key: str | None = None,
) -> ProbeResult:
    """One short streamed completion, with time to first token and total time."""
    url = normalize_base_url(base_url)
    backend = OpenAIBackend(
        endpoints=[url],
        model=model,
        retries=0,
        api_key=api_key,
        timeouts=Timeouts(first_token=timeout_s, between_tokens=timeout_s, total=timeout_s),
    )
    messages: list[ChatMessage] = [{"role": "user", "content": "Say hello in one short sentence."}]
    stream = backend.stream(messages, SamplingParams(temperature=0.0, max_tokens=max_tokens))
    text: list[str] = []
    try:
        async for delta in stream:
            text.append(delta)
    except ModelError as exc:
        return ProbeResult("completion", url, False, str(exc))
    finally:
        await stream.aclose()
    record = stream.record
    if record is None:  # cannot happen once the stream ended; keeps the types honest
        return ProbeResult("completion", url, False, "stream ended without a record")
    return ProbeResult(
        "completion",
        url,
        True,
        f"{record.completion_tokens} tokens, finish {record.finish_reason}: {''.join(text)!r}",
        latency_ms=record.duration_ms,
        ttft_ms=record.ttft_ms,
        completion_tokens=record.completion_tokens,
    )


async def probe_endpoint(
    base_url: str, model: str, *, api_key: str | None = None, completion: bool = True
) -> list[ProbeResult]:
    """All checks of one endpoint in order; later checks are skipped once one fails."""
    results = [await probe_health(base_url)]
    if results[-1].ok:
        results.append(await probe_models(base_url, model, api_key=api_key))
    if completion and results[-1].ok:
        results.append(await probe_completion(base_url, model, api_key=api_key))
    return results


# A participant's first two messages, as the study will see them.
EXCHANGE = (
    "I'd like help writing a short blog post about cooking at home for my friends.",
    "Thanks. Please keep it to about three sentences.",
)


def _speed(record: TurnRecord) -> str:
    ttft = f"{record.ttft_ms:.0f} ms" if record.ttft_ms is not None else "?"
    model = f"{record.model_ttft_ms:.0f} ms" if record.model_ttft_ms is not None else "?"
    rate = "?"
    if record.completion_tokens and record.duration_ms and record.model_ttft_ms is not None:
        generating_s = (record.duration_ms - record.model_ttft_ms) / 1000
        if generating_s > 0:
            rate = f"{record.completion_tokens / generating_s:.1f}"
    return f"first shown {ttft} (model {model}), {rate} tokens/s"


async def probe_exchange(
    reply: Callable[[list[ChatMessage]], ReplyStream], *, json_arm: bool, label: str
) -> list[ProbeResult]:
    """Run :data:`EXCHANGE` through ``reply`` (an arm's), one result per turn; a turn that
    fails, shows nothing, or (``json_arm``) came without a ``response`` field fails."""
    history: list[ChatMessage] = []
    results: list[ProbeResult] = []
    for turn, message in enumerate(EXCHANGE, start=1):
        history.append({"role": "user", "content": message})
        stream = reply(history)
        try:
            text = "".join([delta async for delta in stream])
        except ModelError as exc:
            results.append(ProbeResult(f"turn {turn}", label, False, str(exc)))
            return results
        record = stream.record
        problem = ""
        if record is None or not text.strip():
            problem = "the reply showed no text"
        elif json_arm and record.error.startswith(MALFORMED):
            problem = f"not a JSON reply with a response field ({record.error})"
        detail = problem or (f"{_speed(record)}: {text[:80]!r}" if record else "")
        results.append(
            ProbeResult(
                f"turn {turn}",
                label,
                not problem,
                detail,
                latency_ms=record.duration_ms if record else None,
                ttft_ms=record.ttft_ms if record else None,
                completion_tokens=record.completion_tokens if record else None,
            )
        )
        if problem:
            return results
        history.append({"role": "assistant", "content": text})
    return results
