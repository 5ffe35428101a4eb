"""A loopback stand-in for a vLLM OpenAI-compatible server, following vLLM's docs/features/lora.md and its
``vllm/entrypoints/openai`` routes:

- ``GET /v1/models`` -> ``{"object": "list", "data": [{"id", "object": "model", "root", "parent"}]}``
  (``vllm/entrypoints/openai/serving_models.py show_available_models``): a base is listed under its served name
  (``--served-model-name``, else the path) with the path it was loaded from as ``root``; LoRA modules with their
  base's served name as ``parent``.
- ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}`` -> 200 ``Success: LoRA adapter '<name>' added
  successfully.``; 400 error JSON when the name is already loaded or the path holds no adapter; the route is absent
  (404) unless the server runs with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (``runtime_lora`` here).
- ``POST /v1/unload_lora_adapter`` ``{"lora_name"}`` -> 200 ``Success: LoRA adapter '<name>' removed successfully.``
- ``POST /v1/chat/completions`` with ``"stream": true`` -> server-sent ``chat.completion.chunk`` events.
- With an API key set, requests without ``Authorization: Bearer <key>`` get 401.

Error bodies use vLLM's ``ErrorResponse``: ``{"object": "error", "message", "type", "code"}``.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.loopback import LoopbackServer, Request, Response, chat_chunks, sse


def _error(status: int, message: str, kind: str = "BadRequestError") -> Response:
    return Response(status, {"object": "error", "message": message, "type": kind, "code": status})


class FakeVLLM(LoopbackServer):
    def __init__(self, base_model: str, *, runtime_lora: bool = True, api_key: str | None = None,
                 reply: str = "The capital of France is Paris.", served_name: str | None = None) -> None:
        super().__init__()
        self.base_model = base_model
        self.served_name = served_name or base_model
        self.api_key = api_key
        self.reply = reply
        self.loras: dict[str, str] = {}
        self.route("GET", r"/v1/models", self._guard(self._models))
        if runtime_lora:
            self.route("POST", r"/v1/load_lora_adapter", self._guard(self._load))
            self.route("POST", r"/v1/unload_lora_adapter", self._guard(self._unload))
        self.route("POST", r"/v1/chat/completions", self._guard(self._chat))

    def _guard(self, handler):
        def wrapped(req: Request) -> Response:
            if self.api_key and req.headers.get("authorization") != f"Bearer {self.api_key}":
                return Response(401, {"error": "Unauthorized"})
            return handler(req)
        return wrapped

    def _models(self, req: Request) -> Response:
        data = [{"id": self.served_name, "object": "model", "owned_by": "vllm", "root": self.base_model, "parent": None}]
        data += [{"id": n, "object": "model", "owned_by": "vllm", "root": p, "parent": self.served_name}
                 for n, p in self.loras.items()]
        return Response(200, {"object": "list", "data": data})

    def _load(self, req: Request) -> Response:
        body = req.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(400, "Both 'lora_name' and 'lora_path' must be provided.")
        if name in self.loras:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        if not (Path(path) / "adapter_config.json").is_file():
            return _error(400, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError")
        self.loras[name] = path
        return Response(200, f"Success: LoRA adapter '{name}' added successfully.")

    def _unload(self, req: Request) -> Response:
        name = req.json().get("lora_name")
        if name not in self.loras:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self.loras[name]
        return Response(200, f"Success: LoRA adapter '{name}' removed successfully.")

    def _chat(self, req: Request) -> Response:
        body = req.json()
        if body["model"] not in {self.served_name, *self.loras}:
            return _error(404, f"The model `{body['model']}` does not exist.", "NotFoundError")
        return Response(200, chunks=sse(chat_chunks(body["model"], self.reply)),
                        headers={"Content-Type": "text/event-stream"})
