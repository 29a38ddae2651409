"""Any local Hugging Face causal LM, on CPU or GPU, streamed into asyncio.

``transformers`` and ``torch`` are imported only when a model is first used (they are the
optional ``.[local]`` extra). ``generate`` runs in a daemon thread; a text streamer hands each
finished piece of text to the event loop with ``call_soon_threadsafe``, and a stopping criterion
that watches a cancel flag ends the thread at the next token when the caller closes the stream.

A condition's ``adapter`` (a local directory or hub name of a PEFT LoRA adapter, the CollabLLM
arm's) is applied to the model with ``peft``, also part of ``.[local]``.

Models and tokenizers are loaded once per (path, adapter, device, dtype) and shared.
``torch.manual_seed`` is global, so a seeded reply is reproducible only while no other
generation runs beside it.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cache
from typing import Any

from collab_models.base import ChatMessage, ModelError, SamplingParams, TurnRecord
from collab_models.streaming import ProducerStream

_LOADED: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}", permanent=True)
    return value


def _with_adapter(lm: Any, adapter: str) -> Any:
    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ModelError(
            "a LoRA adapter on the transformers backend needs peft: pip install '.[local]'",
            permanent=True,
        ) from exc
    try:
        return PeftModel.from_pretrained(lm, adapter)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load adapter {adapter!r}: {exc}", permanent=True) from exc


def load_model(
    model: str, *, device: str = "auto", dtype: str = "auto", adapter: str = ""
) -> tuple[Any, Any]:
    """(model, tokenizer) for a local path or hub name, with the LoRA ``adapter`` applied when
    given, loaded once and cached (blocking)."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ModelError(
            "the transformers backend needs the optional extra: pip install '.[local]'",
            permanent=True,
        ) from exc
    resolved = _resolve_device(device)
    key = (model, adapter, resolved, dtype)
    with _LOAD_LOCK:
        if key not in _LOADED:
            try:
                tokenizer: Any = AutoTokenizer.from_pretrained(model)
                lm: Any = AutoModelForCausalLM.from_pretrained(
                    model, dtype=_resolve_dtype(dtype, resolved)
                )
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot load model {model!r}: {exc}", permanent=True) from exc
            if adapter:
                lm = _with_adapter(lm, adapter)
            lm.to(resolved)
            lm.eval()
            _LOADED[key] = (lm, tokenizer)
        return _LOADED[key]


@cache
def _helper_classes() -> tuple[type[Any], type[Any], type[Any]]:
    """The streamer and stopping-criterion classes (defined lazily: they subclass transformers)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

    class LoopStreamer(TextStreamer):
        """Hands each finished piece of text to the event loop's queue."""

        def __init__(self, tokenizer: Any, deliver: Any) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self._deliver = deliver

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                self._deliver(text)

    class CancelFlag(StoppingCriteria):
        """Stops generation once ``event`` is set."""

        def __init__(self, event: threading.Event) -> None:
            self.event = event

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = self.event.is_set()
            return torch.full(
                (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
            )

    return LoopStreamer, CancelFlag, StoppingCriteriaList


def _encode(tokenizer: Any, messages: list[ChatMessage]) -> dict[str, Any]:
    if getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        return dict(encoded)
    # A base model without a chat template: a plain transcript ending with the assistant's cue.
    prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return dict(tokenizer(prompt, return_tensors="pt"))


class TransformersBackend:
    """Streams replies from a local causal LM (path or hub name) with its chat template."""

    name = "transformers"

    def __init__(
        self, *, model: str, device: str = "auto", dtype: str = "auto", adapter: str = ""
    ) -> None:
        if not model:
            raise ValueError("a transformers arm needs a model path or name")
        self.model = model
        self.adapter = adapter
        self.device = device
        self.dtype = dtype

    def stream(self, messages: list[ChatMessage], sampling: SamplingParams) -> ProducerStream:
        draft = TurnRecord(
            text="",
            raw_output="",
            backend=self.name,
            model=self.model,
            sampling=sampling.as_dict(),
            endpoint=f"local:{self.device}",
        )
        messages = list(messages)

        async def produce(stream: ProducerStream) -> None:
            await self._produce(stream, messages, sampling)

        return ProducerStream(produce, draft)

    async def _produce(
        self, stream: ProducerStream, messages: list[ChatMessage], sampling: SamplingParams
    ) -> None:
        lm, tokenizer = await asyncio.to_thread(
            load_model, self.model, device=self.device, dtype=self.dtype, adapter=self.adapter
        )
        inputs = {k: v.to(lm.device) for k, v in _encode(tokenizer, messages).items()}
        prompt_len = int(inputs["input_ids"].shape[-1])
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()
        outcome: dict[str, Any] = {}

        def deliver(item: str | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone; the cancel flag will end the thread
                cancel.set()

        streamer_cls, cancel_cls, criteria_list = _helper_classes()
        kwargs = self._generate_kwargs(tokenizer, sampling)
        kwargs.update(inputs)
        kwargs["streamer"] = streamer_cls(tokenizer, deliver)
        kwargs["stopping_criteria"] = criteria_list([cancel_cls(cancel)])

        def run() -> None:
            try:
                if sampling.seed is not None:
                    import torch

                    torch.manual_seed(sampling.seed)
                outcome["output"] = lm.generate(**kwargs)
            except Exception as exc:  # reported to the caller as a ModelError
                outcome["error"] = exc
            finally:
                deliver(None)

        threading.Thread(target=run, name="collab-models-generate", daemon=True).start()
        try:
            while (item := await queue.get()) is not None:
                stream.emit(item)
        finally:
            cancel.set()  # a no-op when generation already ended
        if "error" in outcome:
            exc = outcome["error"]
            raise ModelError(f"generation failed: {type(exc).__name__}: {exc}")
        generated = int(outcome["output"].shape[-1]) - prompt_len
        stream.draft.prompt_tokens = prompt_len
        stream.draft.completion_tokens = generated
        stream.draft.finish_reason = "length" if generated >= sampling.max_tokens else "stop"

    @staticmethod
    def _generate_kwargs(tokenizer: Any, sampling: SamplingParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_tokens}
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        if pad is not None:
            kwargs["pad_token_id"] = pad
        return kwargs
