"""Dataset row formats: detection from a row's keys and conversion to what TRL's trainers take.

Pure Python (no numpy, no datasets): the trainer bundle carries it, and the validator builds on it.
"""

from __future__ import annotations

from typing import Any

FORMATS = ("text", "chat", "instruction", "prompt_completion", "dpo", "kto", "sharegpt")

# Keys that identify a format, most specific first (a kto row also has prompt/completion).
_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("dpo", frozenset({"prompt", "chosen", "rejected"})),
    ("kto", frozenset({"prompt", "completion", "label"})),
    ("prompt_completion", frozenset({"prompt", "completion"})),
    ("instruction", frozenset({"instruction", "output"})),
    ("chat", frozenset({"messages"})),
    ("sharegpt", frozenset({"conversations"})),
    ("text", frozenset({"text"})),
)

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system", "tool": "tool",
                  "function_call": "assistant", "observation": "tool", "function": "tool"}


def detect_row_format(row: Any) -> str | None:
    """The format whose keys the row has, most specific first (the order of ``_SIGNATURES``); extra keys are
    ignored. The validator calls this once per row, hence the unrolled membership tests."""
    if type(row) is not dict:
        return None
    if "prompt" in row:
        if "chosen" in row and "rejected" in row:
            return "dpo"
        if "completion" in row:
            return "kto" if "label" in row else "prompt_completion"
    if "instruction" in row and "output" in row:
        return "instruction"
    if "messages" in row:
        return "chat"
    if "conversations" in row:
        return "sharegpt"
    if "text" in row:
        return "text"
    return None


def signature(fmt: str) -> frozenset[str]:
    """The keys a row of ``fmt`` must have."""
    return _SIGNATURE_OF[fmt]


_SIGNATURE_OF = dict(_SIGNATURES)


def sharegpt_to_messages(conversations: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": SHAREGPT_ROLES.get(str(t.get("from", "")).lower(), str(t.get("from"))),
             "content": t.get("value", "")} for t in conversations]


def instruction_prompt(row: dict[str, Any]) -> str:
    extra = row.get("input") or ""
    return f"{row['instruction']}\n\n{extra}" if extra else str(row["instruction"])


def to_chat(row: dict[str, Any], fmt: str) -> dict[str, Any] | None:
    """Convert a row to the `chat` format (issue 3's conversion fix); None when it has no conversation."""
    if fmt == "chat":
        return {"messages": row["messages"]}
    if fmt == "sharegpt":
        msgs = sharegpt_to_messages(row["conversations"])
        # LLaMA-Factory's ShareGPT layout carries the system prompt beside the turns.
        if isinstance(row.get("system"), str) and row["system"] and not (msgs and msgs[0]["role"] == "system"):
            msgs.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": msgs}
    if fmt == "instruction":
        msgs = [{"role": "user", "content": instruction_prompt(row)}, {"role": "assistant", "content": row["output"]}]
        if row.get("system"):
            msgs.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": msgs}
    if fmt == "prompt_completion":
        return {"messages": _as_messages(row["prompt"], "user") + _as_messages(row["completion"], "assistant")}
    return None


def _as_messages(value: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return value
    return [{"role": role, "content": str(value)}]


def _text_of(value: Any) -> str:
    """The text of a completion given as a string or as a list of messages (the last one's content)."""
    if isinstance(value, list):
        return str(value[-1].get("content", "")) if value else ""
    return str(value)


def to_training_row(row: dict[str, Any], fmt: str, method: str) -> list[dict[str, Any]]:
    """Rows in the shape TRL's trainer for ``method`` expects (a DPO pair becomes two KTO rows)."""
    if method == "sft":
        if fmt == "text":
            return [{"text": row["text"]}]
        if fmt == "prompt_completion":
            return [{"prompt": row["prompt"], "completion": row["completion"]}]
        if fmt == "instruction":
            return [{"prompt": [{"role": "user", "content": instruction_prompt(row)}],
                     "completion": [{"role": "assistant", "content": row["output"]}]}]
        chat = to_chat(row, fmt)
        return [chat] if chat else []
    if method in ("dpo", "orpo"):
        if fmt == "dpo":
            return [{"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}]
        return []
    if method == "kto":
        if fmt == "kto":
            return [{"prompt": row["prompt"], "completion": row["completion"], "label": bool(row["label"])}]
        if fmt == "dpo":
            return [{"prompt": row["prompt"], "completion": row["chosen"], "label": True},
                    {"prompt": row["prompt"], "completion": row["rejected"], "label": False}]
        return []
    raise ValueError(f"unknown method {method}")


def prediction_sample(row: dict[str, Any], fmt: str) -> tuple[Any, str] | None:
    """(prompt, expected answer) for the predictions browser; the prompt is a string or a message list."""
    if fmt in ("chat", "sharegpt"):
        msgs = row["messages"] if fmt == "chat" else sharegpt_to_messages(row["conversations"])
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if not last:
            return None
        return msgs[:last], str(msgs[last].get("content", ""))
    if fmt == "instruction":
        return [{"role": "user", "content": instruction_prompt(row)}], str(row["output"])
    if fmt == "prompt_completion":
        return row["prompt"], _text_of(row["completion"])
    if fmt == "dpo":
        return row["prompt"], _text_of(row["chosen"])
    if fmt == "kto":
        return (row["prompt"], _text_of(row["completion"])) if row.get("label") else None
    if fmt == "text":
        words = str(row["text"]).split(" ")
        if len(words) < 4:
            return None
        cut = max(1, len(words) // 2)
        return " ".join(words[:cut]), " ".join(words[cut:])
    return None


def split_sizes(rows: int, eval_split: float, max_samples: int | None = None) -> tuple[int, int]:
    """(train, eval) row counts the trainer makes from ``rows`` usable rows (trainer/data.py ``prepare``)."""
    if max_samples:
        rows = min(rows, max_samples)
    n_eval = int(round(rows * eval_split))
    if eval_split > 0 and rows > 1:
        n_eval = max(1, n_eval)
    return rows - n_eval, n_eval
