"""Ollama: a Modelfile for the model (ADAPTER on its base where Ollama imports safetensors adapters, the merged
model where it imports safetensors models, the GGUF route explained for the rest), and registration with a
running Ollama server through its REST API.

Wire format (ollama/ollama docs/api.md, "Create a Model" as rewritten in PR #8388, and the official client
ollama-python ``_client.py`` ``Client.create`` / ``Client.create_blob``):

- ``HEAD /api/blobs/sha256:<hex>``: 200 when the server already has the blob, 404 otherwise.
- ``POST /api/blobs/sha256:<hex>`` with the raw file as the body: 201 Created; 400 when the digest does not match.
- ``POST /api/create`` with ``{"model", "from"?, "files"?: {name: digest}, "adapters"?: {name: digest},
  "template"?, "system"?, "parameters"?, "stream"}``; a stream of ``{"status": ...}`` lines ending in
  ``{"status": "success"}``, or ``{"error": ...}``.

Which architectures import (docs.ollama.com/import, "Importing a fine tuned adapter from Safetensors weights" and
"Importing a model from Safetensors weights"): adapters for Llama (2, 3, 3.1, 3.2), Mistral (1, 2, Mixtral) and
Gemma (1, 2); full models additionally Phi3, and Qwen2/Qwen3 in current releases. Everything else goes through
llama.cpp's converters to GGUF.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core import http_client
from core.errors import ConsoleError
from core.export import adapter_dir, artifact_dir, base_model_of, full_model_dir, merged_ready
from core.store.records import ModelRecord

DEFAULT_HOST = "http://127.0.0.1:11434"
ADAPTER_ARCHS = frozenset({"llama", "mistral", "mixtral", "gemma", "gemma2"})
MODEL_ARCHS = ADAPTER_ARCHS | {"phi3", "qwen2", "qwen3"}
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
# Files of a transformers model folder that Ollama's converter reads (parser.filesForModel picks the same set).
MODEL_FILE_GLOBS = ("model*.safetensors", "*.json", "tokenizer.model", "chat_template.jinja")
SKIP_MODEL_FILES = {"merge_info.json", "training_args.json", "console_config.json", "run_summary.json"}

# Ollama's Go template for ChatML, the layout the demo tokenizer and the trainer's fallback template use.
CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


def host_url(host: str | None = None) -> str:
    """``OLLAMA_HOST`` the way the Ollama CLI reads it: scheme and port optional. 0.0.0.0 is where a server
    listens, not an address to connect to, so it means this machine."""
    raw = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).strip().rstrip("/")
    if "://" not in raw:
        raw = "http://" + raw
    scheme, rest = raw.split("://", 1)
    hostport, _, path = rest.partition("/")
    if hostport.startswith("0.0.0.0"):
        hostport = "127.0.0.1" + hostport[len("0.0.0.0"):]
    if ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":443" if scheme == "https" else ":11434"
    return f"{scheme}://{hostport}" + (f"/{path}" if path else "")


def architecture(model: ModelRecord) -> str | None:
    """``model_type`` from the trained folder's or the base's config.json when on this machine (no download)."""
    base = base_model_of(model)
    full = full_model_dir(model)
    cfg = (full or Path(base).expanduser()) / "config.json"
    if cfg.is_file():
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(base, local_files_only=True).model_type
    except Exception:  # noqa: BLE001 - not cached locally: the architecture stays unknown
        return None


def uses_chatml(folder: Path) -> bool:
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        f = folder / name
        if f.is_file() and "<|im_start|>" in f.read_text(encoding="utf-8", errors="ignore"):
            return True
    return False


@dataclass
class OllamaPlan:
    """How this model reaches Ollama: ``adapter`` (FROM base + ADAPTER), ``merged`` (FROM merged folder) or
    ``gguf`` (convert first)."""

    route: str
    arch: str | None
    base: str | None  # Ollama model name, or local base folder, for the adapter route
    source: str | None  # the folder whose files go to Ollama
    reason: str
    template: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def modelfile(self, model: ModelRecord) -> str:
        lines = [f"# FineTune Console: {model.name} ({model.id}), route: {self.route}"]
        if self.route == "adapter":
            lines += [f"FROM {self.base}", f"ADAPTER {self.source}"]
        elif self.route == "merged":
            if not self.source:
                raise ConsoleError("Merge the adapter first; Ollama imports this model as a merged safetensors "
                                   "folder.", hint=f"python -m core export {model.id} --merge")
            lines += [f"FROM {self.source}"]
        else:
            lines += ["# Ollama cannot import this architecture from safetensors; see GGUF.md next to this file.",
                      "FROM ./model.gguf"]
        if self.template:
            lines.append(f'TEMPLATE """{self.template}"""')
        for key, values in self.parameters.items():
            for v in values if isinstance(values, list) else [values]:
                lines.append(f'PARAMETER {key} "{v}"' if isinstance(v, str) else f"PARAMETER {key} {v}")
        return "\n".join(lines) + "\n"


def plan(model: ModelRecord, *, base: str | None = None, prefer: str | None = None) -> OllamaPlan:
    """Choose the route. ``base`` names the base model in Ollama (e.g. ``llama3.2:1b``); a base that is a local
    folder can be imported by Ollama itself, a Hub id cannot (Ollama has its own names)."""
    full = full_model_dir(model)
    folder = artifact_dir(model)
    arch = architecture(model)
    hub_base = base_model_of(model)
    local_base = Path(hub_base).expanduser().is_dir()
    template, params = (CHATML_TEMPLATE, {"stop": ["<|im_end|>"]}) if uses_chatml(folder) else (None, {})
    if prefer not in (None, "adapter", "merged"):
        raise ConsoleError(f"Unknown Ollama route '{prefer}'; use adapter or merged.")
    if not full and arch in ADAPTER_ARCHS and prefer != "merged" and (base or local_base):
        return OllamaPlan("adapter", arch, base or str(Path(hub_base).expanduser().absolute()), str(folder),
                          "Ollama imports safetensors LoRA adapters for this architecture.", template, params)
    if arch in MODEL_ARCHS:
        merged = merged_ready(model)
        why = ("This job fully fine-tuned the model; Ollama imports its safetensors folder as it is." if full else
               "Ollama imports this architecture as a full safetensors model; the adapter is merged first."
               if arch not in ADAPTER_ARCHS else
               "The base is not in Ollama under a known name, so the merged model is imported instead.")
        return OllamaPlan("merged", arch, None, str(merged) if merged else None, why, template, params)
    return OllamaPlan("gguf", arch, None, None,
                      f"Ollama does not import '{arch or 'unknown'}' safetensors; convert to GGUF with llama.cpp.",
                      template, params)


def gguf_guide(model: ModelRecord, merged: str | None) -> str:
    full = full_model_dir(model)
    if full:
        steps = (f"python llama.cpp/convert_hf_to_gguf.py {full} --outfile model.gguf --outtype f16\n")
        modelfile = "Modelfile: `FROM ./model.gguf`."
    else:
        steps = (f"# A) merged model (one file, any llama.cpp architecture)\n"
                 f"python -m core export {model.id} --merge          # writes {merged or '<job>/merged'}\n"
                 f"python llama.cpp/convert_hf_to_gguf.py {merged or '<merged folder>'} --outfile model.gguf "
                 f"--outtype f16\n# B) or the adapter alone, applied on a GGUF of the same base\n"
                 f"python llama.cpp/convert_lora_to_gguf.py {adapter_dir(model)} --base {base_model_of(model)} "
                 f"--outfile adapter.gguf\n")
        modelfile = "Modelfile for A: `FROM ./model.gguf`. For B: `FROM <the base as GGUF>` and `ADAPTER ./adapter.gguf`."
    return f"""# GGUF route for {model.name}

Ollama reads GGUF for every architecture llama.cpp supports. Convert with llama.cpp's scripts:

```bash
git clone https://github.com/ggml-org/llama.cpp && pip install -r llama.cpp/requirements.txt
{steps}```

{modelfile}
Then `ollama create {ollama_name(model)} -f Modelfile` and `ollama run {ollama_name(model)}`.
Quantize while importing with `ollama create -q q4_K_M ...` (q4_K_M and q8_0 are the recommended types).
"""


def ollama_name(model: ModelRecord) -> str:
    """Ollama names are lowercase ``name[:tag]``; keep letters, digits, dash, underscore and dot."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model.name.lower()).strip("-.")
    return safe or f"ftc-{model.id.lower()}"


def write_export(model: ModelRecord, out_dir: Path, the_plan: OllamaPlan) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"Modelfile": the_plan.modelfile(model)}
    if the_plan.route != "adapter":
        files["GGUF.md"] = gguf_guide(model, the_plan.source)
    for name, text in files.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    return {name: str(out_dir / name) for name in files}


# -- REST client -------------------------------------------------------------------------------------------------

def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


class OllamaClient:
    service = "Ollama"

    def __init__(self, host: str | None = None, timeout: float = 600.0) -> None:
        self.host = host_url(host)
        self.timeout = timeout

    def _url(self, path: str) -> str:
        return f"{self.host}{path}"

    def version(self) -> str:
        return http_client.call("GET", self._url("/api/version"), service=self.service, timeout=10).json()["version"]

    def has_blob(self, digest: str) -> bool:
        from core.errors import ResourceNotFound

        try:
            http_client.call("HEAD", self._url(f"/api/blobs/{digest}"), service=self.service, timeout=30)
            return True
        except ResourceNotFound:
            return False

    def create_blob(self, path: Path) -> str:
        """Upload one file unless the server already holds it; returns its digest."""
        digest = file_digest(path)
        if not self.has_blob(digest):
            # Streamed in chunks with its length declared, so a multi-GB safetensors file never sits in memory.
            with path.open("rb") as f:
                http_client.call("POST", self._url(f"/api/blobs/{digest}"), service=self.service,
                                 timeout=self.timeout, content=iter(lambda: f.read(1 << 20), b""),
                                 headers={"Content-Length": str(path.stat().st_size)})
        return digest

    def upload_files(self, paths: list[Path]) -> dict[str, str]:
        return {p.name: self.create_blob(p) for p in paths}

    def create(self, name: str, *, from_: str | None = None, files: dict[str, str] | None = None,
               adapters: dict[str, str] | None = None, template: str | None = None, system: str | None = None,
               parameters: dict[str, Any] | None = None,
               on_status: Callable[[str], None] | None = None) -> list[str]:
        body: dict[str, Any] = {"model": name, "stream": True}
        for key, value in (("from", from_), ("files", files), ("adapters", adapters), ("template", template),
                           ("system", system), ("parameters", parameters)):
            if value:
                body[key] = value
        statuses: list[str] = []
        with http_client.stream("POST", self._url("/api/create"), service=self.service, json_body=body,
                                timeout=self.timeout) as resp:
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                part = json.loads(line)
                if part.get("error"):
                    raise ConsoleError(f"Ollama could not create {name}: {part['error']}")
                statuses.append(part.get("status", ""))
                if on_status:
                    on_status(statuses[-1])
        if not statuses or statuses[-1] != "success":
            raise ConsoleError(f"Ollama ended the creation of {name} without success ({statuses[-1:] or 'no reply'}).")
        return statuses

    def tags(self) -> list[str]:
        data = http_client.call("GET", self._url("/api/tags"), service=self.service, timeout=30).json()
        return [m.get("name") or m.get("model") for m in data.get("models", [])]


def model_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for pattern in MODEL_FILE_GLOBS:
        out += [p for p in sorted(folder.glob(pattern)) if p.is_file() and p.name not in SKIP_MODEL_FILES]
    return list(dict.fromkeys(out))


@dataclass
class Registration:
    name: str
    host: str
    route: str
    base: str | None
    statuses: list[str]
    blobs: dict[str, str]


def register(model: ModelRecord, the_plan: OllamaPlan, *, name: str | None = None,
             client: OllamaClient | None = None, on_status: Callable[[str], None] | None = None) -> Registration:
    """Upload the blobs and create the model on the server: ``create_blob`` for each file, then ``create``."""
    client = client or OllamaClient()
    name = name or ollama_name(model)
    blobs: dict[str, str] = {}
    if the_plan.route == "adapter":
        base = the_plan.base or ""
        base_dir = Path(base)
        if base_dir.is_dir():
            # A local base folder has no Ollama name yet: import it once as <name>-base, then put the adapter on it.
            base_files = client.upload_files(model_files(base_dir))
            blobs.update(base_files)
            base = f"{name}-base"
            client.create(base, files=base_files, template=the_plan.template, parameters=the_plan.parameters,
                          on_status=on_status)
        adapters = client.upload_files([Path(the_plan.source) / f for f in ADAPTER_FILES])  # type: ignore[arg-type]
        blobs.update(adapters)
        statuses = client.create(name, from_=base, adapters=adapters, template=the_plan.template,
                                 parameters=the_plan.parameters, on_status=on_status)
        return Registration(name, client.host, "adapter", base, statuses, blobs)
    if the_plan.route == "merged":
        if not the_plan.source:
            raise ConsoleError("Merge the adapter first; Ollama imports this model as a merged safetensors folder.",
                               hint=f"python -m core export {model.id} --merge")
        files = client.upload_files(model_files(Path(the_plan.source)))
        statuses = client.create(name, files=files, template=the_plan.template, parameters=the_plan.parameters,
                                 on_status=on_status)
        return Registration(name, client.host, "merged", None, statuses, files)
    raise ConsoleError(the_plan.reason, hint="Follow GGUF.md from `python -m core export MODEL --ollama`.")
