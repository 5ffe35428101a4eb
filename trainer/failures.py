"""Turn an exception into a readable reason and a hint that says what to change (issue 4, spec §7)."""

from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass
class Classified:
    error_type: str
    message: str
    hint: str


def classify(exc: BaseException) -> Classified:
    name = type(exc).__name__
    text = str(exc) or name
    low = text.lower()
    if name == "OutOfMemoryError" or "cuda out of memory" in low or "cuda error: out of memory" in low:
        return Classified("cuda_oom", f"The GPU ran out of memory: {_first_line(text)}",
                          "Lower training.batch_size and raise gradient_accumulation_steps, turn on "
                          "gradient_checkpointing, use QLoRA (quantization 4bit), or shorten data.max_length.")
    if name in ("GatedRepoError",) or "gated repo" in low or "access to model" in low and "restricted" in low:
        return Classified("gated_model", f"The model is gated: {_first_line(text)}",
                          "Accept the model's licence on its Hugging Face page and set an HF token with access.")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError") or "is not a local folder and is not a valid model" in low \
            or "repository not found" in low or "does not appear to have a file named" in low:
        return Classified("model_not_found", f"The model could not be found: {_first_line(text)}",
                          "Check model.name (org/name on the Hub, or an existing local folder) and your HF token.")
    if "chat_template" in low or "chat template" in low:
        return Classified("chat_template", f"The tokenizer has no usable chat template: {_first_line(text)}",
                          "Set model.chat_template, or train from a 'text' or prompt/completion dataset.")
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == errno.ENOSPC or "no space left" in low:
        return Classified("disk_full", f"The disk is full: {_first_line(text)}",
                          "Free space or raise the volume size; lower training.save_total_limit to keep fewer "
                          "checkpoints.")
    if name in ("DatasetError",) or "dataset" in low and ("key" in low or "column" in low or "format" in low):
        return Classified("bad_dataset", f"A dataset row could not be used: {_first_line(text)}",
                          "Validate the file on the Dataset page and fix or drop the lines it names.")
    if name == "TrainerError" or name == "ConfigError":
        hint = getattr(exc, "hint", None) or "Fix the config and launch again."
        return Classified("config", getattr(exc, "message", text), hint)
    if name == "KeyboardInterrupt":
        return Classified("interrupted", "Training was interrupted.", "Launch again with resume to continue.")
    return Classified(name, _first_line(text), "Read the traceback in the job's errors; if it is a bug in the "
                      "console, report it with the job's log.")


def _first_line(text: str, limit: int = 400) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"
