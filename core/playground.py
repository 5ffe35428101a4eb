"""Chat with a registered model on this machine: transformers generation with tokens streamed as they are produced,
and the base model's answer to the same prompt beside the fine-tuned one.

One copy of the weights serves both sides of a LoRA model: the base answer is generated with the adapter switched
off (``PeftModel.disable_adapter``), so comparing costs no second model in memory. A lock keeps the two sides from
generating at once, since switching the adapter changes the shared model. A full fine-tune changed every weight, so
its base is a second model, loaded on the first comparison.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Iterator

from core.errors import ConsoleError
from core.store.records import ModelRecord

# What the screens show for an answer with no text (a barely trained base model often ends at once).
EMPTY_ANSWER = "_(no text: the model ended its answer at once)_"


@dataclass
class GenerationSettings:
    max_new_tokens: int = 96
    temperature: float = 0.0
    top_p: float = 0.9


def build_messages(prompt: str, system: str | None = None,
                   history: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + list(history or []) + [{"role": "user", "content": prompt}]


class LocalChat:
    def __init__(self, model: ModelRecord, *, dtype: str = "float32", device: str = "auto") -> None:
        from core.export import full_model_dir, load_causal_lm, load_peft_model

        self.record = model
        self._dtype = dtype
        self.full = full_model_dir(model)
        if self.full:
            from transformers import AutoTokenizer

            self.model = load_causal_lm(str(self.full), dtype=dtype, device=device)
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.full))
        else:
            self.model, self.tokenizer = load_peft_model(model, dtype=dtype, device=device)
        self._base: Any = None
        self._lock = threading.Lock()

    def _base_model(self) -> Any:
        from core.export import base_model_of, load_causal_lm

        with self._lock:
            if self._base is None:
                device = next(self.model.parameters()).device
                self._base = load_causal_lm(base_model_of(self.record), dtype=self._dtype, device=str(device))
        return self._base

    def _inputs(self, messages: list[dict[str, str]]) -> Any:
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in enc.items()}

    def _generate_kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        tok = self.tokenizer
        kw: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "eos_token_id": tok.eos_token_id,
                              "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id}
        if settings.temperature > 0:
            kw.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kw

    def stream(self, messages: list[dict[str, str]], *, adapter: bool = True,
               settings: GenerationSettings | None = None) -> Iterator[str]:
        """Text pieces as the model produces them (``TextIteratorStreamer`` fed by a generating thread)."""
        from transformers import TextIteratorStreamer

        settings = settings or GenerationSettings()
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self._inputs(messages)
        lm = self._base_model() if self.full and not adapter else self.model
        failure: list[BaseException] = []

        def run() -> None:
            import torch

            with self._lock:
                switch = nullcontext() if adapter or self.full else self.model.disable_adapter()
                try:
                    with switch, torch.inference_mode():
                        lm.generate(**inputs, streamer=streamer, **self._generate_kwargs(settings))
                except BaseException as exc:  # noqa: BLE001 - handed to the reading thread below
                    failure.append(exc)
                    streamer.end()

        worker = threading.Thread(target=run, name="playground-generate", daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise ConsoleError(f"Generation failed: {type(failure[0]).__name__}: {failure[0]}")

    def answer(self, messages: list[dict[str, str]], *, adapter: bool = True,
               settings: GenerationSettings | None = None) -> str:
        return "".join(self.stream(messages, adapter=adapter, settings=settings)).strip()

    def compare(self, messages: list[dict[str, str]], settings: GenerationSettings | None = None) -> dict[str, str]:
        return {"base": self.answer(messages, adapter=False, settings=settings),
                "fine_tuned": self.answer(messages, adapter=True, settings=settings)}


_CACHE: "OrderedDict[tuple[str, str], LocalChat]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2  # models held in memory at once; the oldest is dropped


def local_chat(model: ModelRecord, *, dtype: str = "float32") -> LocalChat:
    """The loaded model for this registry entry, loaded once per process."""
    key = (model.id, dtype)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    chat = LocalChat(model, dtype=dtype)
    with _CACHE_LOCK:
        _CACHE[key] = chat
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return chat


def training_system_prompt(store: Any, model: ModelRecord) -> str | None:
    """The system message the training rows carried, so the playground asks the way the model was taught."""
    if not model.dataset_id:
        return None
    try:
        path = store.get_dataset(model.dataset_id).path
        with open(path, encoding="utf-8") as f:
            first = json.loads(f.readline())
    except Exception:  # noqa: BLE001 - no dataset file on this machine: no default
        return None
    for msg in first.get("messages") or first.get("conversations") or []:
        if isinstance(msg, dict) and msg.get("role") == "system":
            return msg.get("content")
    return None
