"""From a registered model to files other tools load: the LoRA adapter merged into its base (safetensors), and the
adapter or merged model pushed to a private Hugging Face repo.

torch, transformers, peft and huggingface_hub are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from fnmatch import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import AuthError, ConsoleError, ProviderError, QuotaError
from core.store.records import ModelRecord

# What a Hub upload leaves out: the pickled trainer arguments (a pickle is not something to publish) and the
# checkpoints a resumed run would need but a user of the model does not.
HUB_IGNORE = ["training_args.bin", "checkpoints/*", "checkpoint-*/*", "*.pt", "*.pth", "merge_info.json"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def adapter_dir(model: ModelRecord) -> Path:
    """The model's adapter folder on this machine, or a message saying why there is none."""
    path = (model.adapters.get("lora") or {}).get("path") or model.artifact_path
    if not path:
        raise ConsoleError(f"Model {model.name} has no artifact recorded.",
                           hint="Only completed jobs that saved an adapter can be merged, exported or served.")
    if path.startswith("hf://"):
        raise ConsoleError(f"The adapter of {model.name} is on the Hugging Face Hub ({path}), not on this machine.",
                           hint=f"Download it with `hf download {path.removeprefix('hf://')}` and register the folder.")
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        if (folder / "config.json").is_file():
            raise ConsoleError(f"{folder} holds a fully fine-tuned model, not a LoRA adapter; there is nothing to merge.",
                               hint="Serve or push the folder as it is.")
        raise ConsoleError(f"The adapter folder {folder} is missing or has no adapter_config.json.",
                           hint="A remote job's artifact must be retrieved before it can be used here.")
    return folder


def full_model_dir(model: ModelRecord) -> Path | None:
    """The artifact folder when the job fully fine-tuned the model (a transformers folder, no adapter): there is
    nothing to merge, and it is served, pushed and imported as it is."""
    path = model.artifact_path
    if not path or path.startswith("hf://"):
        return None
    folder = Path(path).expanduser()
    if (folder / "adapter_config.json").is_file() or not (folder / "config.json").is_file():
        return None
    return folder if any(folder.glob("*.safetensors")) else None


def artifact_dir(model: ModelRecord) -> Path:
    """The folder of trained weights on this machine: the full model, else the adapter."""
    return full_model_dir(model) or adapter_dir(model)


def adapter_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))


def base_model_of(model: ModelRecord) -> str:
    """The base the adapter was trained on: what PEFT recorded, else the registry's lineage."""
    try:
        recorded = adapter_config(adapter_dir(model)).get("base_model_name_or_path")
    except ConsoleError:
        recorded = None
    base = recorded or model.base_model
    if not base:
        raise ConsoleError(f"Model {model.name} does not say which base model it was trained on.")
    return base


def lora_rank(model: ModelRecord) -> int:
    """The adapter's rank r, including per-module overrides (vLLM must be started with at least the largest)."""
    try:
        cfg = adapter_config(adapter_dir(model))
        ranks = [int(cfg.get("r") or 0), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())]
        return max(ranks)
    except ConsoleError:
        return int((model.adapters.get("lora") or {}).get("r") or 0)


def merged_dir_for(model: ModelRecord) -> Path:
    """Next to the adapter: ``<job artifacts>/merged``."""
    return adapter_dir(model).parent / "merged"


def merged_ready(model: ModelRecord) -> Path | None:
    """A folder of plain weights to serve: the merged model, or the full fine-tune that needs no merge."""
    if full := full_model_dir(model):
        return full
    try:
        out = merged_dir_for(model)
    except ConsoleError:
        return None
    return out if (out / "config.json").is_file() and any(out.glob("*.safetensors")) else None


@dataclass
class MergeResult:
    path: str
    base_model: str
    adapter: str
    seconds: float
    files: list[str]


def load_causal_lm(name_or_path: str, *, dtype: str = "float32", device: str = "cpu") -> Any:
    """A transformers model in eval mode. ``device="auto"`` takes the first CUDA GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=getattr(torch, dtype)).to(device)
    lm.eval()
    return lm


def load_peft_model(model: ModelRecord, *, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """Base + adapter as a PEFT model, and the adapter's tokenizer."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    folder = adapter_dir(model)
    base = load_causal_lm(base_model_of(model), dtype=dtype, device=device)
    peft_model = PeftModel.from_pretrained(base, str(folder))
    peft_model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return peft_model, tokenizer


def merge_adapter(model: ModelRecord, out_dir: str | Path | None = None, *, dtype: str = "float32",
                  overwrite: bool = False) -> MergeResult:
    """Fold the LoRA update into the base weights and save a plain transformers model as safetensors.

    Merging in float32 keeps the merged weights as close to base + B·A as the base precision allows; a bf16 base
    is saved back in bf16 by passing ``dtype="bfloat16"``.
    """
    t0 = time.monotonic()
    out = Path(out_dir).expanduser() if out_dir else merged_dir_for(model)
    if out.exists() and any(out.iterdir()):
        if not overwrite and (out / "config.json").is_file():
            raise ConsoleError(f"{out} already holds a merged model.", hint="Pass overwrite to merge again.")
        shutil.rmtree(out)
    peft_model, tokenizer = load_peft_model(model, dtype=dtype)
    merged = peft_model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    base = base_model_of(model)
    (out / "merge_info.json").write_text(json.dumps({
        "model_id": model.id, "base_model": base, "adapter": str(adapter_dir(model)), "dtype": dtype,
    }, indent=2), encoding="utf-8")
    (out / "README.md").write_text(model_card(model, merged=True), encoding="utf-8")
    return MergeResult(path=str(out), base_model=base, adapter=str(adapter_dir(model)),
                       seconds=round(time.monotonic() - t0, 2), files=sorted(p.name for p in out.iterdir()))


def model_card(model: ModelRecord, *, merged: bool) -> str:
    """README.md for the Hub: the metadata the Hub indexes (its ``base_model`` links the model to its base's
    page, so people find it) and the lineage the registry holds. A base that is a local folder is left out of the
    metadata, since the Hub rejects a ``base_model`` that is not one of its repos."""
    base = model.base_model or ""
    meta, metrics = model.metadata or {}, model.metrics or {}
    method = (meta.get("training_method") or "sft").lower()
    header = ["---", "library_name: transformers" if merged else "library_name: peft"]
    if HUB_ID.match(base) and not Path(base).expanduser().exists():
        header.append(f"base_model: {base}")
    r = (model.adapters.get("lora") or {}).get("r")
    kind = "lora" if not merged else "merged-lora" if r else "full-fine-tune"
    header += ["tags:", "- finetune-console", f"- {method}", f"- {kind}", "---"]
    rows = [("Base model", base or "—"), ("Method", method.upper()),
            ("Dataset", f"{model.dataset_size or '—'} rows, sha256 {(model.dataset_hash or '—')[:16]}"),
            ("Final training loss", metrics.get("final_loss", "—")),
            *((k.upper().replace("_", "-"), metrics[k]) for k in ("bleu", "rouge_l") if metrics.get(k) is not None),
            ("LoRA", "none, a full fine-tune" if not r else f"r {r}, merged into the base" if merged else f"r {r}")]
    table = "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    return "\n".join(header) + f"\n\n# {model.name}\n\nFine-tuned with FineTune Console.\n\n{table}\n"


# -- Hugging Face Hub --------------------------------------------------------------------------------------------

@dataclass
class PushResult:
    repo_id: str
    url: str
    commit: str | None
    what: str
    private: bool
    files: list[str]


def push_to_hub(folder: str | Path, repo_id: str, *, token: str | None, what: str = "adapter",
                private: bool = True, endpoint: str | None = None, commit_message: str | None = None,
                readme: str | None = None) -> PushResult:
    """Create the repo (private unless asked otherwise; an existing one is reused) and upload the folder in one
    commit through ``HfApi.create_repo`` + ``HfApi.create_commit``.

    ``readme`` replaces the folder's README.md: the card PEFT and TRL write names a local base as ``base_model``,
    which the Hub refuses, failing the whole upload.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    src = Path(folder)
    if not src.is_dir():
        raise ConsoleError(f"Nothing to push: {src} is not a folder.")
    if not token:
        raise AuthError("Pushing to the Hugging Face Hub needs a token with write access.",
                        hint="Set HF_TOKEN or add it under Settings → Hugging Face.")
    files = sorted(rel for rel in (p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
                   if not any(fnmatch(rel, pat) for pat in HUB_IGNORE))
    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(src / rel))
           for rel in files if not (readme and rel == "README.md")]
    if readme:
        ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode("utf-8")))
        files = sorted({*files, "README.md"})
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(repo_id=url.repo_id, repo_type="model", operations=ops,
                                 commit_message=commit_message or f"Upload fine-tuned {what} from FineTune Console")
    except HfHubHTTPError as exc:
        raise _hub_error(exc, repo_id) from None
    except ValueError as exc:  # the Hub refused the model card's metadata (HfApi._validate_yaml)
        raise ConsoleError(f"The Hugging Face Hub refused the model card: {exc}",
                           hint="Fix the metadata between the --- lines of README.md.") from None
    return PushResult(repo_id=url.repo_id, url=str(url), commit=getattr(info, "oid", None), what=what,
                      private=private, files=files)


def _hub_error(exc: Any, repo_id: str) -> ProviderError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return AuthError("The Hugging Face Hub refused the token.", hint="Check HF_TOKEN; it needs write access.")
    if status == 403:
        return AuthError(f"The token may not write to {repo_id}.",
                         hint="Use a repo under your own name or an organisation where you can write.")
    if status == 429:
        return QuotaError("The Hugging Face Hub is rate-limiting this account.", hint="Try again in a minute.")
    err = ProviderError(f"The Hugging Face Hub answered {status or 'an error'} while pushing to {repo_id}.",
                        hint="Try again; the upload is one commit, so nothing half-written stays behind.")
    err.retryable = bool(status and status >= 500)
    return err
