"""Turn an exception into a readable reason and a hint that says what to change (issue 4, spec §7).

The whole chain is read (``raise ... from``, and exceptions raised while handling another), because libraries
often wrap the telling error: a full disk surfaces as torch's "PytorchStreamWriter failed writing file", a gated
model as an ``OSError`` around huggingface_hub's ``GatedRepoError``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass
class Classified:
    error_type: str
    message: str
    hint: str


OOM_HINT = ("Lower training.batch_size and raise gradient_accumulation_steps to keep the effective batch, turn on "
            "training.gradient_checkpointing, use QLoRA (quantization.mode 4bit), or shorten data.max_length.")
GATED_HINT = ("Accept the model's licence on its Hugging Face page with the account whose token the job uses, and "
              "save that HF token in Settings.")
MISSING_HINT = ("Check model.name (org/name on the Hub, or an existing local folder with config.json) and "
                "model.revision; a private model needs an HF token with access.")
OFFLINE_HINT = ("The machine could not reach the Hugging Face Hub and has no cached copy: check its network, unset "
                "HF_HUB_OFFLINE, or give model.name as a local folder.")
TEMPLATE_HINT = ("Set model.chat_template to a Jinja template over `messages`, leave it empty to use the model's own "
                 "or the ChatML fallback, or train from a 'text' or prompt/completion dataset.")
DATASET_HINT = "Validate the file on the Dataset page and fix or drop the lines it names."
DISK_HINT = ("Free space or raise the volume size; lower training.save_total_limit to keep fewer checkpoints, or "
             "raise training.save_steps to save less often.")


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _kind(exc: BaseException) -> str | None:
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    low = str(exc).lower()
    if name == "OutOfMemoryError" or "out of memory" in low or "cublas_status_alloc_failed" in low \
            or "can't allocate memory" in low:
        return "oom"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "no space left on device" in low \
            or "failed writing file" in low or "file write failed" in low:
        return "disk"
    if name == "GatedRepoError" or "gated repo" in low or ("access to model" in low and "restricted" in low):
        return "gated"
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError") or "is not a valid model identifier" in low \
            or "repository not found" in low or "does not appear to have a file named" in low \
            or "repo id must be in the form" in low:
        return "missing"
    if name == "LocalEntryNotFoundError" or "couldn't connect to" in low:
        return "offline"
    if module.startswith("jinja2") or "chat_template" in low or "chat template" in low:
        return "template"
    if name == "DatasetError" or module.startswith("pyarrow") or ("dataset" in low and (
            "column" in low or "key" in low or "format" in low)):
        return "dataset"
    return None


def classify(exc: BaseException) -> Classified:
    chain = _chain(exc)
    kinds = [(k, e) for e in chain if (k := _kind(e))]
    if kinds:
        kind, cause = kinds[0]
        own = getattr(cause, "message", None)  # a ConsoleError's message without its hint
        line = _first_line(own if isinstance(own, str) and own else str(cause) or type(cause).__name__)
        if kind == "oom":
            where = "GPU" if "cpu" not in line.lower() and "can't allocate memory" not in line.lower() else "machine"
            return Classified("cuda_oom" if where == "GPU" else "out_of_memory",
                              f"The {where} ran out of memory: {line}", OOM_HINT)
        if kind == "disk":
            return Classified("disk_full", f"The disk is full: {line}", DISK_HINT)
        if kind == "gated":
            return Classified("gated_model", f"The model is gated and this token has no access: {line}", GATED_HINT)
        if kind == "missing":
            return Classified("model_not_found", f"The model could not be found: {line}", MISSING_HINT)
        if kind == "offline":
            return Classified("hub_unreachable", f"The model could not be downloaded: {line}", OFFLINE_HINT)
        if kind == "template":
            return Classified("chat_template", f"The chat template cannot be used: {line}", TEMPLATE_HINT)
        message = line if type(cause).__name__ == "DatasetError" else f"A dataset row cannot be used: {line}"
        return Classified("bad_dataset", message, getattr(cause, "hint", None) or DATASET_HINT)
    name = type(exc).__name__
    if name in ("TrainerError", "ConfigError"):
        return Classified("config", getattr(exc, "message", str(exc)),
                          getattr(exc, "hint", None) or "Fix the config and launch again.")
    if name == "KeyboardInterrupt":
        return Classified("interrupted", "Training was interrupted.", "Resume the job to continue from its "
                          "last checkpoint.")
    return Classified(name, _first_line(str(exc) or name), "Read the traceback in the job's errors; if it points "
                      "at the console rather than your data or model, report it with the job's log.")


def _first_line(text: str, limit: int = 400) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"
