"""Arms: one study condition turned into something that answers a conversation.

The web app calls :func:`build_arm` with a condition block of a study file and then
``arm.reply(history)`` for each turn; it never sees backends, prompts or adapters.

A condition block (all keys but ``name`` optional; ``backend`` defaults to ``openai``)::

    name: proactive_base
    backend: openai                # openai | transformers | offline
    endpoints: ["${VLLM_URL:-http://127.0.0.1:8001}"]
    model: meta-llama/Llama-3.1-8B-Instruct
    adapter: collabllm/CollabLLM-writing-Llama-3.1-8B-Instruct   # openai: informational (the
                                   # server names it in `model`); transformers: loaded with peft
    prompt: proactive              # or system_prompt: "...", or prompt_file: path, or none,
                                   # or a published prompt: collabllm:proact_instruction
    prompt_package_version: 0.0.8  # published prompts: the package version the study names
    prompt_fallback: proactive     # offline only: the project prompt that stands in where the
                                   # package is not installed (recorded as itself)
    response_format: json_response # or text
    sampling: {temperature: 0.8, top_p: 1.0, max_tokens: 1024, seed: 7}
    timeouts: {connect: 5, first_token: 120, between_tokens: 15, total: 300}
    retries: 2                     # extra attempts on a failed connection or a 5xx
    context_tokens: 8192           # the model's window: older turns are dropped to fit
                                   # (collab_models/context.py); a server's context-length
                                   # error drops them too, with or without this
    health_check: false            # probe GET /health before reusing a replica that failed
    api_key: "${VLLM_API_KEY:-}"
    style: proactive               # offline only: base | proactive | collabllm
    rate: 40                       # offline only: tokens per second
    device: auto                   # transformers only: auto | cpu | cuda | cuda:1
    dtype: auto                    # transformers only: auto | float32 | bfloat16 | float16

``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` in ``endpoints``, ``model``,
``api_key``, ``prompt_file``, ``device`` and ``adapter`` are expanded from the environment when
the arm is built. An endpoint that expands to several URLs separated by commas or spaces
(``${VLLM_BASE_URLS}``) gives several replicas.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from collab_models.adapters import RESPONSE_FORMATS, make_adapter
from collab_models.base import (
    Backend,
    ChatMessage,
    ModelError,
    ReplyStream,
    SamplingParams,
    TurnRecord,
)
from collab_models.blinding import RetriedReply
from collab_models.context import fit_window, shrink_for_error
from collab_models.offline_backend import DEFAULT_RATE, STYLES, OfflineBackend
from collab_models.openai_backend import OpenAIBackend, Timeouts
from collab_models.probes import ProbeResult, probe_endpoint, probe_exchange
from collab_models.prompts import Prompt, build_messages, resolve_prompt
from collab_models.published_prompts import PATH_VARIABLE as PUBLISHED_PATH_VARIABLE
from collab_models.streaming import AdaptedStream

BACKENDS = ("openai", "transformers", "offline")
_KNOWN_KEYS = {
    "name", "weight", "backend", "endpoints", "endpoint", "model", "adapter", "prompt",
    "system_prompt", "prompt_file", "response_format", "sampling", "style", "rate", "timeouts",
    "retries", "health_check", "api_key", "device", "dtype", "extra_body", "description",
    "label", "prompt_package_version", "prompt_fallback", "context_tokens",
}  # fmt: skip
_EXPANDED_KEYS = ("model", "api_key", "prompt_file", "device", "adapter")
_ONLINE_KEYS = (
    "endpoints", "endpoint", "timeouts", "retries", "health_check", "api_key", "extra_body",
    "device", "dtype",
)  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(ValueError):
    """A condition block that cannot be turned into an arm."""


def expand_env(value: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` (unset or empty) and ``${VAR-default}`` (unset).

    Defaults nest (``${VLLM_URLS_BASE:-${VLLM_URL:-http://127.0.0.1:8001}}``); values taken
    from the environment are inserted as they are, never expanded again.
    """
    env = os.environ if environ is None else environ
    text, _, missing = _expand(value, 0, env, inside=False)
    if missing:
        raise ConfigError(f"environment variable {missing} is not set (used in {value!r})")
    return text


def _expand(s: str, i: int, env: Mapping[str, str], *, inside: bool) -> tuple[str, int, str]:
    """Expand ``s`` from ``i`` to its end, or to the ``}`` closing a default when ``inside``.

    Returns the text, where it stopped, and the first unset variable that was needed ("" if
    none), so that an unset variable only in an unused default is no error.
    """
    out: list[str] = []
    missing = ""
    while i < len(s):
        if inside and s[i] == "}":
            break
        name = _NAME.match(s, i + 2) if s.startswith("${", i) else None
        if name is None:
            out.append(s[i])
            i += 1
            continue
        j = name.end()
        op = ":-" if s.startswith(":-", j) else "-" if s.startswith("-", j) else ""
        default, default_missing = "", ""
        if op:
            default, j, default_missing = _expand(s, j + len(op), env, inside=True)
        if not s.startswith("}", j):
            raise ConfigError(f"unclosed ${{...}} in {s!r}")
        current = env.get(name.group())
        if (op == ":-" and not current) or (op == "-" and current is None):
            out.append(default)
            missing = missing or default_missing
        elif current is None:
            missing = missing or name.group()
        else:
            out.append(current)
        i = j + 1
    return "".join(out), i, missing


def derive_style(config: Mapping[str, Any]) -> str:
    """The offline style that mimics a condition: from its ``style``, else from its prompt."""
    if config.get("style"):
        return str(config["style"])
    prompt = str(config.get("prompt") or "")
    if prompt in ("collabllm", "collabllm:system_prompt") or prompt.startswith("collabllm."):
        return "collabllm"
    if prompt or config.get("system_prompt") or config.get("prompt_file"):
        return "proactive"
    return "base"


def override_offline(config: Mapping[str, Any]) -> dict[str, Any]:
    """The same condition on the offline backend (the demo study): same name, prompt, response
    format and sampling; a style derived from its prompt; no endpoints or server settings."""
    offline = {k: v for k, v in config.items() if k not in _ONLINE_KEYS}
    offline["backend"] = "offline"
    offline["style"] = derive_style(config)
    return offline


@dataclass
class Arm:
    """One condition, ready to answer. Build it with :func:`build_arm`."""

    name: str
    backend: Backend
    prompt: Prompt
    response_format: str
    sampling: SamplingParams
    model: str = ""
    adapter: str = ""
    endpoints: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    context_tokens: int | None = None

    def reply(self, history: list[ChatMessage], *, seed: int | None = None) -> ReplyStream:
        """Stream the next assistant message for ``history`` (user and assistant messages).

        The system prompt is added here, sampling values are sent explicitly, and the response
        adapter turns the raw reply into shown text. Iterate the result for text deltas; once it
        ends, ``.record`` carries ``prompt_version``, ``adapter`` and ``sampling`` as well. A
        failure raises :class:`~collab_models.base.ModelError` after the record is set.
        """
        sampling = self.sampling if seed is None else replace(self.sampling, seed=seed)
        window = _Window(list(history))
        if self.context_tokens:
            # Room for the prompt's own text (the system prompt, or the template around the
            # conversation) as well as for the reply.
            overhead = len(json.dumps(build_messages(self.prompt, [], sampling))) // 3
            trimmed = fit_window(
                window.history,
                context_tokens=self.context_tokens - overhead,
                max_tokens=sampling.max_tokens,
            )
            window = _Window(trimmed.messages, trimmed.dropped)

        def attempt(n: int) -> ReplyStream:
            # A retry of a JSON reply that showed nothing must not sample the same reply.
            params = sampling
            if n and sampling.seed is not None:
                params = replace(sampling, seed=(sampling.seed + 7919 * n) % 2**31)
            dropped = window.dropped

            def decorate(record: TurnRecord) -> None:
                record.prompt_version = self.prompt.version
                record.prompt_sha256 = self.prompt.sha256
                record.adapter = self.adapter
                record.sampling = params.as_dict()
                record.dropped_turns = dropped

            messages = window.history
            if getattr(self.backend, "uses_prompt", True):
                messages = build_messages(self.prompt, messages, params)
            inner = self.backend.stream(messages, params)
            return AdaptedStream(inner, make_adapter(self.response_format), decorate)

        def shrink(exc: ModelError) -> bool:
            trimmed = shrink_for_error(window.history, str(exc), sampling.max_tokens)
            window.history = trimmed.messages
            window.dropped += trimmed.dropped
            return trimmed.dropped > 0

        retries = 1 if self.response_format == "json_response" else 0
        return RetriedReply(attempt, retries=retries, shrink=shrink)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for logs and dashboards (no secrets)."""
        return {
            "name": self.name,
            "backend": self.backend.name,
            "model": self.model,
            "adapter": self.adapter,
            "endpoints": list(self.endpoints),
            "prompt_version": self.prompt.version,
            "prompt": self.prompt.describe(),
            "response_format": self.response_format,
            "sampling": self.sampling.as_dict(),
            **self.extra,
        }

    async def probe(self) -> list[ProbeResult]:
        """Readiness checks for ``check_models``: for an openai arm, ``/health`` and
        ``/v1/models`` on every endpoint; then, for every arm, a short multi-turn exchange
        through :meth:`reply` as the study will use it (prompt, adapter name, sampling,
        response format: a JSON arm fails without a ``response`` field)."""
        results: list[ProbeResult] = []
        if isinstance(self.backend, OpenAIBackend):
            for url in self.endpoints:
                checks = await probe_endpoint(
                    url, self.model, api_key=self.backend.api_key, completion=False
                )
                results += checks
                if not all(r.ok for r in checks):
                    return results
        label = ",".join(self.endpoints) or self.backend.name
        json_arm = self.response_format == "json_response"
        return results + await probe_exchange(self.reply, json_arm=json_arm, label=label)


@dataclass
class _Window:
    """The part of a conversation sent to the model, and how many exchanges were left out."""

    history: list[ChatMessage]
    dropped: int = 0


def _sampling(raw: Any) -> SamplingParams:
    if raw is None:
        return SamplingParams()
    if not isinstance(raw, Mapping):
        raise ConfigError("sampling must be a mapping")
    unknown = set(raw) - {"temperature", "top_p", "max_tokens", "seed"}
    if unknown:
        raise ConfigError(f"unknown sampling keys {sorted(unknown)}")
    try:
        sampling = SamplingParams(
            temperature=float(raw.get("temperature", SamplingParams.temperature)),
            top_p=float(raw.get("top_p", SamplingParams.top_p)),
            max_tokens=int(raw.get("max_tokens", SamplingParams.max_tokens)),
            seed=None if raw.get("seed") is None else int(raw["seed"]),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad sampling value: {exc}") from exc
    if sampling.temperature < 0 or not 0 < sampling.top_p <= 1 or sampling.max_tokens < 1:
        raise ConfigError("sampling needs temperature >= 0, 0 < top_p <= 1, max_tokens >= 1")
    return sampling


def _text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _endpoints(config: Mapping[str, Any]) -> list[str]:
    raw = config.get("endpoints", config.get("endpoint"))
    items = [raw] if isinstance(raw, str) else list(raw or [])
    urls: list[str] = []
    for item in items:
        urls += [u for u in re.split(r"[\s,]+", expand_env(str(item))) if u]
    return urls


def build_arm(
    config: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    offline_rate: float | None = None,
    strict: bool = True,
) -> Arm:
    """Turn a condition block into an :class:`Arm` (see the module docstring for the keys).

    Cheap and side-effect free: nothing is contacted or loaded until the first reply, so study
    loading can call it to validate. ``base_dir`` anchors a relative ``prompt_file``;
    ``offline_rate`` (tokens/second) overrides the ``rate`` of an offline arm. Raises
    :class:`ConfigError` with a readable message on a bad block; with ``strict`` (the default)
    an unknown key is an error too (it is usually a typo).
    """
    try:
        if strict and isinstance(config, Mapping) and set(config) - _KNOWN_KEYS:
            raise ValueError(f"unknown keys {sorted(set(config) - _KNOWN_KEYS)}")
        return _build(config, base_dir=base_dir, offline_rate=offline_rate)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        name = config.get("name", "?") if isinstance(config, Mapping) else "?"
        raise ConfigError(f"condition {name!r}: {exc}") from exc


_ENV_REFERENCE = re.compile(r"\$\{(\w+)")
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[Any, ...], Arm] = OrderedDict()


def cached_arm(
    config: Mapping[str, Any], *, base_dir: Path | None = None, offline_rate: float | None = None
) -> Arm:
    """:func:`build_arm`, once per distinct condition block: every reply of a condition gets
    the same arm, so its replicas' round-robin turns from one reply to the next (a new arm
    starts the turn afresh) and the build (environment expansion, URL parsing) is not repeated
    per message. A change to an environment variable the block names, or to its
    prompt file, builds a new arm."""
    key = _cache_key(config, base_dir, offline_rate)
    arm = _cache.get(key)
    if arm is None:
        arm = build_arm(config, base_dir=base_dir, offline_rate=offline_rate)
        _cache[key] = arm
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return arm


def _cache_key(
    config: Mapping[str, Any], base_dir: Path | None, offline_rate: float | None
) -> tuple[Any, ...]:
    text = json.dumps(config, sort_keys=True, default=str)
    names = sorted(set(_ENV_REFERENCE.findall(text)))
    env = tuple((name, os.environ.get(name)) for name in names)
    # Where published prompts are read from decides whether the package's text or a fallback.
    published = os.environ.get(PUBLISHED_PATH_VARIABLE)
    return text, env, _prompt_file_version(config, base_dir), str(base_dir), offline_rate, published


def _prompt_file_version(config: Mapping[str, Any], base_dir: Path | None) -> int | None:
    raw = config.get("prompt_file") if isinstance(config, Mapping) else None
    if not raw:
        return None
    try:
        path = Path(expand_env(str(raw)))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return path.stat().st_mtime_ns
    except (ConfigError, OSError):
        return None  # build_arm reports it


def _build(config: Mapping[str, Any], *, base_dir: Path | None, offline_rate: float | None) -> Arm:
    values = {k: expand_env(str(config[k])) for k in _EXPANDED_KEYS if config.get(k)}
    kind = str(config.get("backend") or "openai")
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r} (expected one of {BACKENDS})")
    response_format = str(config.get("response_format") or "text")
    if response_format not in RESPONSE_FORMATS:
        raise ValueError(f"unknown response_format {response_format!r}")
    prompt = resolve_prompt(
        prompt=config.get("prompt"),
        system_prompt=config.get("system_prompt"),
        prompt_file=values.get("prompt_file"),
        base_dir=base_dir,
        package_version=_text_or_none(config.get("prompt_package_version")),
        # A real arm must send what the study names; only an offline one may stand in.
        fallback=_text_or_none(config.get("prompt_fallback")) if kind == "offline" else None,
    )
    model = values.get("model", "")
    backend: Backend
    endpoints: tuple[str, ...] = ()
    extra: dict[str, Any] = {}
    if kind == "openai":
        openai = OpenAIBackend(
            endpoints=_endpoints(config),
            model=model,
            timeouts=Timeouts.from_config(config.get("timeouts")),
            retries=int(config.get("retries", 2)),
            api_key=values.get("api_key"),
            health_check=bool(config.get("health_check", False)),
            extra_body=config.get("extra_body"),
        )
        backend, endpoints = openai, openai.endpoints
        extra["timeouts"] = dataclasses.asdict(openai.timeouts)
    elif kind == "transformers":
        from collab_models.transformers_backend import TransformersBackend

        backend = TransformersBackend(
            model=model,
            device=values.get("device", "auto"),
            dtype=str(config.get("dtype", "auto")),
            adapter=values.get("adapter", ""),
        )
    else:
        style = derive_style(config)
        if style not in STYLES:
            raise ValueError(f"unknown offline style {style!r} (expected one of {STYLES})")
        rate = offline_rate if offline_rate is not None else config.get("rate", DEFAULT_RATE)
        backend = OfflineBackend(
            style=style,
            rate=None if rate is None else float(rate),
            json_reply=response_format == "json_response",
        )
        extra.update(style=style, rate=rate)
        model = model or f"offline/{style}"
    return Arm(
        name=str(config.get("name") or kind),
        backend=backend,
        prompt=prompt,
        response_format=response_format,
        sampling=_sampling(config.get("sampling")),
        model=model,
        adapter=values.get("adapter", ""),
        endpoints=endpoints,
        extra=extra,
        context_tokens=_context_tokens(config.get("context_tokens")),
    )


def _context_tokens(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError("context_tokens must be a whole number of tokens >= 1")
    return raw
