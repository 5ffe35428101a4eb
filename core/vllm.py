"""vLLM: the exact ``vllm serve`` command for a registered model, and hot-loading its adapter into a running server.

From vLLM's docs/features/lora.md ("Serving LoRA Adapters", "Dynamically serving LoRA Adapters", "New format for
--lora-modules"): ``vllm serve BASE --enable-lora --lora-modules '{"name", "path", "base_model_name"}'``;
``--max-lora-rank`` must cover the adapter's rank and be one of the sizes ``LoRAConfig`` accepts (vllm/config/lora.py
``MaxLoRARanks``: 1, 8, 16, 32, 64, 128, 256, 320, 512). At run time, with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``,
``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` answers 200 with ``Success: LoRA adapter '<name>' added
successfully``; the route does not exist (404) when runtime updating is off; loading a name twice is a 400 whose
message says it "has already been loaded".
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from core import http_client
from core.errors import ConsoleError, ProviderError, ResourceNotFound
from core.export import adapter_dir, base_model_of, full_model_dir, lora_rank, merged_ready
from core.store.records import ModelRecord

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_PORT = 8000


def max_lora_rank(r: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that still holds rank ``r``."""
    for size in MAX_LORA_RANKS:
        if r <= size:
            return size
    raise ConsoleError(f"LoRA rank {r} is above 512, the largest vLLM serves.",
                       hint="Merge the adapter and serve the merged model instead.")


def lora_name(model: ModelRecord) -> str:
    return model.name


@dataclass
class ServeCommand:
    argv: list[str]
    env: dict[str, str]
    served_name: str
    base_url: str

    @property
    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + shlex.join(self.argv)


def serve_command(model: ModelRecord, *, merged: bool = False, port: int = DEFAULT_PORT, host: str | None = None,
                  max_model_len: int | None = None, gpu_memory_utilization: float | None = None,
                  allow_runtime_lora: bool = False) -> ServeCommand:
    """``vllm serve`` for the base with this adapter as a LoRA module, or for the merged (or fully fine-tuned)
    folder."""
    if merged or full_model_dir(model):
        folder = merged_ready(model)
        if not folder:
            raise ConsoleError("There is no merged model to serve yet.", hint=f"python -m core export {model.id} --merge")
        argv = ["vllm", "serve", str(folder), "--served-model-name", model.name]
    else:
        base = base_model_of(model)
        module = {"name": lora_name(model), "path": str(adapter_dir(model).resolve()), "base_model_name": base}
        argv = ["vllm", "serve", base, "--enable-lora", "--lora-modules", json.dumps(module),
                "--max-lora-rank", str(max_lora_rank(lora_rank(model)))]
    if host:
        argv += ["--host", host]
    argv += ["--port", str(port)]
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    if gpu_memory_utilization:
        argv += ["--gpu-memory-utilization", str(gpu_memory_utilization)]
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"} if allow_runtime_lora and not merged else {}
    return ServeCommand(argv, env, model.name, f"http://{host or 'localhost'}:{port}/v1")


def _api_root(base_url: str) -> str:
    """Accept ``http://host:8000`` or ``http://host:8000/v1``."""
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


class VLLMClient:
    service = "vLLM"

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.root = _api_root(base_url)
        self.headers = http_client.bearer(api_key)

    def models(self) -> list[dict]:
        resp = http_client.call("GET", f"{self.root}/v1/models", service=self.service, headers=self.headers)
        return resp.json().get("data", [])

    def load_lora(self, name: str, path: str) -> str:
        """Idempotent: an adapter already loaded under this name counts as loaded."""
        url = f"{self.root}/v1/load_lora_adapter"
        try:
            resp = http_client.call("POST", url, service=self.service, headers=self.headers, timeout=300,
                                    json_body={"lora_name": name, "lora_path": path})
        except ResourceNotFound:
            raise ConsoleError("This vLLM server does not accept adapters at run time.",
                               hint="Restart it with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora.") from None
        except ProviderError as exc:
            if "already been loaded" in str(exc):
                return f"LoRA adapter '{name}' was already loaded."
            raise
        return resp.text.strip()

    def unload_lora(self, name: str) -> str:
        resp = http_client.call("POST", f"{self.root}/v1/unload_lora_adapter", service=self.service,
                                headers=self.headers, json_body={"lora_name": name})
        return resp.text.strip()


def serves_base(card: dict, base: str) -> bool:
    """Whether a ``/v1/models`` entry is this base: by the path it was loaded from (``root``; the ``id`` is only
    its served name) or its served name, exactly or by the last path part (a Hub id here, a local copy there)."""
    def last(s: str) -> str:
        return s.rstrip("/").rsplit("/", 1)[-1]

    seen = [v for v in (card.get("root"), card.get("id")) if v]
    return base in seen or last(base) in {last(v) for v in seen}


def hot_load(model: ModelRecord, base_url: str, *, api_key: str | None = None,
             path_on_server: str | None = None) -> dict[str, str]:
    """Load the adapter into a running vLLM. The path is read by the server, so a remote server needs the
    adapter where it can see it (``path_on_server``)."""
    if full_model_dir(model):
        raise ConsoleError(f"{model.name} is a full fine-tune, not a LoRA adapter; a running vLLM cannot hot-load it.",
                           hint=f"Start vLLM on its folder: python -m core serve {model.id} --with vllm")
    client = VLLMClient(base_url, api_key)
    bases = [m for m in client.models() if not m.get("parent")]
    base = base_model_of(model)
    if not any(serves_base(m, base) for m in bases):
        names = ", ".join(sorted(str(m.get("root") or m.get("id")) for m in bases)) or "nothing"
        raise ConsoleError(f"The vLLM server at {base_url} serves {names}, not this adapter's base {base}.",
                           hint="Start vLLM on the same base model.")
    message = client.load_lora(lora_name(model), path_on_server or str(adapter_dir(model).resolve()))
    return {"lora_name": lora_name(model), "message": message, "base_url": f"{client.root}/v1"}
