"""From a registered model to something people use: the actions the Models screen and the CLI share (merge, push
to the Hub, export for Ollama, register with Ollama, the vLLM command, hot-load into vLLM), each recorded on the
model's registry row, and the ``serve``, ``export`` and ``chat`` commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.errors import ConsoleError, InputError
from core.registry import record_action
from core.store.records import ModelRecord

ENGINES = ("vllm", "ollama")


def _model(store: Any, model_id: str) -> ModelRecord:
    return store.get_model(model_id)


# -- actions -------------------------------------------------------------------------------------------------

def merge(store: Any, model_id: str, *, out: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    from core.export import merge_adapter

    model = _model(store, model_id)
    result = asdict(merge_adapter(model, out, overwrite=overwrite))
    record_action(store, model.id, "merge", {"path": result["path"], "seconds": result["seconds"]})
    return result


def push(store: Any, model_id: str, repo_id: str, *, what: str = "adapter", private: bool = True,
         token: str | None = None, endpoint: str | None = None) -> dict[str, Any]:
    """Push the adapter folder or the merged model to a (private by default) Hub repo."""
    from core.credentials import credentials_for
    from core.export import adapter_dir, full_model_dir, merged_ready, model_card, push_to_hub

    model = _model(store, model_id)
    if full_model_dir(model) and what in ("adapter", "merged"):
        what = "model"  # a full fine-tune has no adapter: its folder is the model
    if what in ("merged", "model"):
        folder = merged_ready(model)
        if not folder:
            raise ConsoleError("Merge the adapter before pushing the merged model.",
                               hint=f"python -m core export {model.id} --merge")
    elif what == "adapter":
        folder = adapter_dir(model)
    else:
        raise InputError(f"Push 'adapter' or 'merged', not '{what}'.")
    token = token or credentials_for("huggingface").get("token")
    result = asdict(push_to_hub(folder, repo_id, token=token, what=what, private=private,
                                endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None,
                                readme=model_card(model, merged=what != "adapter")))
    record_action(store, model.id, f"push_{what}", {k: result[k] for k in ("repo_id", "url", "commit", "private")})
    return result


def _ollama_plan(store: Any, model_id: str, *, base: str | None, prefer: str | None,
                 merge_if_needed: bool) -> tuple[ModelRecord, Any]:
    """The Ollama route; the merged route needs merged weights on disk, so the adapter is merged first when asked
    (a Modelfile or a registration pointing at no folder would fail only later, inside Ollama)."""
    from core import ollama

    model = _model(store, model_id)
    the_plan = ollama.plan(model, base=base, prefer=prefer)
    if the_plan.route == "merged" and not the_plan.source and merge_if_needed:
        merge(store, model.id)
        model = _model(store, model.id)
        the_plan = ollama.plan(model, base=base, prefer=prefer)
    return model, the_plan


def export_ollama(store: Any, model_id: str, *, base: str | None = None, out: str | None = None,
                  prefer: str | None = None, merge_if_needed: bool = True) -> dict[str, Any]:
    """Write a Modelfile (and the GGUF guide when Ollama cannot import the weights directly)."""
    from core import ollama
    from core.export import artifact_dir

    model, the_plan = _ollama_plan(store, model_id, base=base, prefer=prefer, merge_if_needed=merge_if_needed)
    folder = Path(out).expanduser() if out else artifact_dir(model).parent / "ollama"
    files = ollama.write_export(model, folder, the_plan)
    info = {"route": the_plan.route, "arch": the_plan.arch, "reason": the_plan.reason, "folder": str(folder),
            "files": files, "name": ollama.ollama_name(model),
            "command": f"ollama create {ollama.ollama_name(model)} -f {folder / 'Modelfile'}"}
    record_action(store, model.id, "export_ollama", {k: info[k] for k in ("route", "folder", "command")})
    return info


def register_ollama(store: Any, model_id: str, *, name: str | None = None, base: str | None = None,
                    host: str | None = None, prefer: str | None = None, merge_if_needed: bool = True,
                    on_status: Any = None) -> dict[str, Any]:
    """Register the model with a running Ollama server (create_blob for each file, then create)."""
    from core import ollama

    model, the_plan = _ollama_plan(store, model_id, base=base, prefer=prefer, merge_if_needed=merge_if_needed)
    reg = ollama.register(model, the_plan, name=name, client=ollama.OllamaClient(host), on_status=on_status)
    info = {"name": reg.name, "host": reg.host, "route": reg.route, "base": reg.base, "statuses": reg.statuses,
            "blobs": reg.blobs, "chat_url": f"{reg.host}/v1"}
    record_action(store, model.id, "ollama", {k: info[k] for k in ("name", "host", "route", "base", "chat_url")})
    return info


def vllm_command(store: Any, model_id: str, **kw: Any) -> dict[str, Any]:
    from core import vllm

    model = _model(store, model_id)
    cmd = vllm.serve_command(model, **kw)
    info = {"argv": cmd.argv, "shell": cmd.shell, "env": cmd.env, "served_name": cmd.served_name,
            "base_url": cmd.base_url}
    record_action(store, model.id, "vllm_command", {"shell": cmd.shell, "base_url": cmd.base_url})
    return info


def vllm_hot_load(store: Any, model_id: str, url: str, *, api_key: str | None = None,
                  path_on_server: str | None = None) -> dict[str, Any]:
    from core import vllm

    model = _model(store, model_id)
    info = vllm.hot_load(model, url, api_key=api_key, path_on_server=path_on_server)
    record_action(store, model.id, "vllm", {"lora_name": info["lora_name"], "chat_url": info["base_url"]})
    return info


def serving_summary(model: ModelRecord) -> dict[str, Any]:
    """What the Models screen shows before any action: rank, vLLM sizes, the Ollama route, files on disk."""
    from core import ollama, vllm
    from core.export import adapter_dir, base_model_of, full_model_dir, lora_rank, merged_ready

    out: dict[str, Any] = {"base_model": model.base_model, "actions": (model.metadata or {}).get("actions") or {}}
    if full := full_model_dir(model):
        out.update(full=str(full), merged=str(full), base_model=base_model_of(model), max_lora_rank=None,
                   vllm_note="A full fine-tune: vLLM serves the folder itself, no LoRA flags.")
    else:
        try:
            folder = adapter_dir(model)
        except ConsoleError as exc:
            out["unavailable"] = str(exc)
            return out
        r = lora_rank(model)
        out.update(adapter=str(folder), base_model=base_model_of(model), lora_r=r,
                   merged=str(merged_ready(model) or "") or None)
        try:
            out["max_lora_rank"] = vllm.max_lora_rank(r)
        except ConsoleError as exc:
            out["max_lora_rank"] = None
            out["vllm_note"] = str(exc)
    the_plan = ollama.plan(model)
    out["ollama"] = {"route": the_plan.route, "arch": the_plan.arch, "reason": the_plan.reason,
                     "name": ollama.ollama_name(model)}
    return out


# -- CLI -----------------------------------------------------------------------------------------------------

def _store():
    from core.store import open_store

    return open_store()


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, default=str) if args.json else text)


def cmd_serve(args: argparse.Namespace) -> int:
    store = _store()
    if args.engine == "vllm":
        if args.url:
            info = vllm_hot_load(store, args.model, args.url, api_key=_vllm_key(args),
                                 path_on_server=args.path_on_server)
            _print(args, info, f"{info['message']}\nchat: {info['base_url']} (model '{info['lora_name']}')")
            return 0
        info = vllm_command(store, args.model, merged=args.merged, port=args.port, host=args.host,
                            allow_runtime_lora=args.allow_runtime_lora)
        _print(args, info, info["shell"] + f"\n# then chat at {info['base_url']} with model '{info['served_name']}'")
        return 0
    statuses = (lambda s: print(f"  {s}", file=sys.stderr)) if not args.json else None
    info = register_ollama(store, args.model, name=args.name, base=args.base, host=args.url,
                           prefer="merged" if args.merged else None, on_status=statuses)
    _print(args, info, f"registered {info['name']} on {info['host']} ({info['route']})\n"
                       f"run: ollama run {info['name']}   chat: {info['chat_url']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if not (args.merge or args.push or args.ollama):
        raise InputError("Say what to export: --merge, --push REPO and/or --ollama.")
    store = _store()
    out: dict[str, Any] = {}
    lines: list[str] = []
    if args.merge:
        out["merge"] = merge(store, args.model, out=args.out, overwrite=args.overwrite)
        lines.append(f"merged into {out['merge']['path']} in {out['merge']['seconds']} s")
    if args.push:
        out["push"] = push(store, args.model, args.push, what="merged" if args.merge else "adapter",
                           private=not args.public)
        lines.append(f"pushed {out['push']['what']} to {out['push']['url']} ({'private' if out['push']['private'] else 'public'})")
    if args.ollama:
        out["ollama"] = export_ollama(store, args.model, base=args.base,
                                      prefer="merged" if args.merge else None)
        lines.append(f"Ollama ({out['ollama']['route']}): {out['ollama']['command']}")
    _print(args, out, "\n".join(lines))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from core.playground import GenerationSettings, build_messages, local_chat, training_system_prompt

    store = _store()
    model = _model(store, args.model)
    system = args.system if args.system is not None else training_system_prompt(store, model)
    messages = build_messages(args.prompt, system)
    if args.engine:
        from core.chat import base_url_for, stream_chat

        url = base_url_for(args.engine, args.url)
        pieces = stream_chat(url, args.served_name or model.name, messages, max_tokens=args.max_new_tokens,
                             temperature=args.temperature, service=args.engine,
                             api_key=_vllm_key(args) if args.engine == "vllm" else None)
        text = "".join(_echo(pieces, not args.json))
        _print(args, {"model": model.id, "engine": args.engine, "answer": text}, "")
        return 0
    chat = local_chat(model)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    result: dict[str, Any] = {"model": model.id, "system": system}
    if args.compare:
        if not args.json:
            print("base:       ", end="", flush=True)
        result["base"] = "".join(_echo(chat.stream(messages, adapter=False, settings=settings), not args.json)).strip()
        if not args.json:
            print("\nfine-tuned: ", end="", flush=True)
    result["fine_tuned"] = "".join(_echo(chat.stream(messages, settings=settings), not args.json)).strip()
    _print(args, result, "")
    return 0


def _vllm_key(args: argparse.Namespace) -> str | None:
    """The vLLM server's key: $VLLM_API_KEY (what ``vllm serve`` itself reads), which, unlike a flag, other users of
    this machine cannot read in the process list."""
    return getattr(args, "api_key", None) or os.environ.get("VLLM_API_KEY") or None


def _echo(pieces: Any, show: bool) -> Any:
    for piece in pieces:
        if show:
            print(piece, end="", flush=True)
        yield piece


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Called by ``core.cli`` to add ``serve``, ``export`` and ``chat``."""
    def add(name: str, fn: Any, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--json", action="store_true", help="print JSON")
        sp.add_argument("model", help="model id or name (python -m core models)")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("serve", cmd_serve, "serve a model: the vLLM command or hot-load, or register it with Ollama")
    sp.add_argument("--with", dest="engine", choices=ENGINES, required=True)
    sp.add_argument("--url", help="a running server: vLLM base URL to hot-load into, or the Ollama host "
                                  "(default $OLLAMA_HOST)")
    sp.add_argument("--merged", action="store_true", help="serve the merged model instead of base + adapter")
    sp.add_argument("--port", type=int, default=8000, help="vLLM port in the printed command")
    sp.add_argument("--host", help="vLLM --host in the printed command")
    sp.add_argument("--allow-runtime-lora", action="store_true", dest="allow_runtime_lora",
                    help="add VLLM_ALLOW_RUNTIME_LORA_UPDATING=True so more adapters can be hot-loaded later")
    sp.add_argument("--api-key", dest="api_key",
                    help="vLLM --api-key, when the server has one; better in $VLLM_API_KEY (a flag shows in ps)")
    sp.add_argument("--path-on-server", dest="path_on_server", help="the adapter's path as the vLLM server sees it")
    sp.add_argument("--name", help="Ollama model name (default: the registry name)")
    sp.add_argument("--base", help="the base model's name in Ollama, e.g. llama3.2:1b")

    sp = add("export", cmd_export, "merge the adapter, push to the Hugging Face Hub, or write an Ollama Modelfile")
    sp.add_argument("--merge", action="store_true", help="merge the LoRA adapter into the base (safetensors)")
    sp.add_argument("--out", help="folder for the merged model (default: next to the adapter)")
    sp.add_argument("--overwrite", action="store_true", help="replace an earlier merge")
    sp.add_argument("--push", metavar="REPO", help="push to this Hub repo (the merged model with --merge, else the "
                                                   "adapter)")
    sp.add_argument("--public", action="store_true", help="make a new Hub repo public (default private)")
    sp.add_argument("--ollama", action="store_true", help="write a Modelfile (or the GGUF guide)")
    sp.add_argument("--base", help="the base model's name in Ollama, for the ADAPTER route")

    sp = add("chat", cmd_chat, "ask a model a question (on this machine, or through a vLLM/Ollama server)")
    sp.add_argument("prompt")
    sp.add_argument("--compare", action="store_true", help="also answer with the base model")
    sp.add_argument("--system", help="system message (default: the one in the training data)")
    sp.add_argument("--with", dest="engine", choices=ENGINES, help="ask a running server instead of loading here")
    sp.add_argument("--url", help="server URL (default: the engine's local address)")
    sp.add_argument("--served-name", dest="served_name", help="the model's name on the server")
    sp.add_argument("--max-new-tokens", type=int, default=96, dest="max_new_tokens")
    sp.add_argument("--temperature", type=float, default=0.0)
