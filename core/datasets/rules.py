"""What a row of each format must hold, as ``(field, rule, message)`` problems.

Pure Python on decoded JSON values (the trainer can carry it). ``row_problems(row, file_format)`` is the one
judge of a row: the validator, the "drop invalid lines" fix and the trainer all ask it. Fields are JSON paths
relative to the row (``messages[2].role``); ``""`` means the whole row. Messages say what to change.
"""

from __future__ import annotations

from typing import Any

from core.datasets.formats import SHAREGPT_ROLES, detect_row_format, signature

ROLES = ("system", "user", "assistant", "tool")
_ROLE_SET = frozenset(ROLES)
_MISSING = object()

Problem = tuple[str, str, str]

# Stable rule ids. Errors make a line invalid; warnings do not; fatal rules make the whole file unreadable.
ERROR_RULES: dict[str, str] = {
    "invalid_json": "The line is not valid JSON.",
    "invalid_utf8": "The line holds bytes that are not UTF-8.",
    "line_too_long": "The line is too large to read as one row.",
    "not_object": "The line is JSON but not an object.",
    "duplicate_key": "An object repeats a key (a JSON reader keeps only the last value).",
    "unknown_format": "The object's keys match no dataset format.",
    "format_mismatch": "The row is in another format than the rest of the file.",
    "missing_key": "A key the file's format requires is absent.",
    "wrong_type": "A value has the wrong JSON type.",
    "empty_value": "A required string or list is empty.",
    "invalid_role": "A message role (or ShareGPT 'from') is not a known one.",
    "no_assistant": "A conversation has no assistant turn to learn from.",
    "last_not_assistant": "A conversation does not end with the assistant's turn.",
    "mixed_forms": "Prompt and answers mix plain strings and message lists.",
    "chosen_equals_rejected": "A preference pair's chosen and rejected answers are the same.",
    "method_mismatch": "The training method cannot learn from the file's format.",
}
WARNING_RULES: dict[str, str] = {
    "bom": "The file starts with a UTF-8 byte order mark (read correctly).",
    "crlf": "Lines end with CRLF (Windows line endings; read correctly).",
    "blank_line": "A blank line (skipped).",
    "duplicate_row": "The row repeats an earlier row exactly.",
    "long_row": "The row is very long.",
    "not_utf8_file": "Many lines are not UTF-8; the file may be in another encoding.",
    "method_conversion": "The rows will be converted for the chosen method.",
    "kto_one_label": "Every KTO row has the same label.",
    "tokenizer_unavailable": "The model's tokenizer could not be loaded; token statistics are missing.",
    "no_chat_template": "The tokenizer has no chat template; conversations were counted as plain text.",
    "chat_template_failed": "The model's chat template rejected the row.",
    "truncated_rows": "Rows longer than max_length will be truncated.",
}
FATAL_RULES: dict[str, str] = {
    "unreadable": "The file does not exist or cannot be opened.",
    "empty_file": "The file holds no rows.",
    "utf16": "The file is UTF-16 or UTF-32, not UTF-8.",
    "binary": "The file is an archive or other binary file.",
    "json_array": "The file is one JSON array, not JSON Lines.",
    "multiline_json": "Each JSON object spans several lines, not one line each.",
    "no_json_lines": "No line of the file is JSON.",
}


def kind(value: Any) -> str:
    """A JSON type in words, for messages."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "true/false"
    if type(value) in (int, float):
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "a list"
    return "an object"


def _keys(keys: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(keys))


def row_problems(row: Any, file_format: str | None) -> list[Problem]:
    """Problems of one decoded JSON line in a file whose rows are ``file_format`` (None: judge the row alone)."""
    return judge(row, file_format)[1]


def judge(row: Any, file_format: str | None) -> tuple[str | None, list[Problem]]:
    """(the row's own format by its keys, its problems as a row of a ``file_format`` file)."""
    if type(row) is not dict:
        return None, [("", "not_object", f"The line is {kind(row)}, not a JSON object; write each row as one object "
                                         "such as {\"messages\": [...]}.")]
    row_format = detect_row_format(row)
    if file_format is None:
        file_format = row_format
    if row_format is not None:
        if row_format == file_format:
            out: list[Problem] = []
            _CHECKS[row_format](row, out)
            return row_format, out
        if not signature(row_format) < signature(file_format):  # a kto file's row without label is "missing"
            return row_format, [("", "format_mismatch",
                                 f"This row is '{row_format}' ({_keys(signature(row_format))}) but the file is "
                                 f"'{file_format}' ({_keys(signature(file_format))}); write every row in the same "
                                 "format.")]
    return row_format, _missing_or_unknown(row, file_format)


def _missing_or_unknown(row: dict[str, Any], file_format: str | None) -> list[Problem]:
    have = frozenset(row)
    if file_format is None:
        return [("", "unknown_format", f"Keys ({_keys(have) or 'none'}) match no dataset format; use text, "
                                       "messages, instruction/output, prompt/completion, prompt/chosen/rejected, "
                                       "prompt/completion/label or conversations.")]
    need = signature(file_format)
    missing = need - have
    if len(missing) < len(need):  # it shares a key with the file's format: one of its rows, with keys missing
        return [(k, "missing_key", f"Missing '{k}': this file's rows are '{file_format}' ({_keys(need)}).")
                for k in sorted(missing)]
    return [("", "unknown_format", f"Keys ({_keys(have) or 'none'}) match no dataset format; this file's rows are "
                                   f"'{file_format}', which need {_keys(need)}.")]


# -- values -------------------------------------------------------------------------------------------------

def _text(value: Any, field: str, out: list[Problem], what: str) -> bool:
    """A non-empty string (whitespace alone counts as empty)."""
    if type(value) is str:
        if value and not value.isspace():
            return True
        out.append((field, "empty_value", f"{field} is empty; write the {what} or drop the row."))
        return False
    out.append((field, "wrong_type", f"{field} must be a string (the {what}), not {kind(value)}."))
    return False


def _role_hint(role: str) -> str:
    low = role.lower()
    if low in _ROLE_SET:
        return f"; roles are lower case: use '{low}'"
    mapped = SHAREGPT_ROLES.get(low)
    if mapped in _ROLE_SET:
        return f"; '{role}' is a ShareGPT name: use '{mapped}'"
    return ""


def check_messages(msgs: Any, field: str, out: list[Problem], *, ends_with_assistant: bool) -> None:
    """A non-empty list of {role, content}; an assistant turn that calls tools may have no content."""
    if type(msgs) is not list:
        out.append((field, "wrong_type", f"{field} must be a list of messages {{role, content}}, not {kind(msgs)}."))
        return
    if not msgs:
        out.append((field, "empty_value", f"{field} is an empty list; add the conversation's messages."))
        return
    has_assistant = False
    for i, m in enumerate(msgs):
        if type(m) is not dict:
            out.append((f"{field}[{i}]", "wrong_type",
                        f"{field}[{i}] must be an object {{role, content}}, not {kind(m)}."))
            continue
        role = m.get("role", _MISSING)
        if type(role) is str and role in _ROLE_SET:
            if role == "assistant":
                has_assistant = True
        elif role is _MISSING:
            out.append((f"{field}[{i}].role", "missing_key", f"{field}[{i}] has no role; add one of {', '.join(ROLES)}."))
        elif type(role) is not str:
            out.append((f"{field}[{i}].role", "wrong_type", f"{field}[{i}].role must be a string, not {kind(role)}."))
        else:
            out.append((f"{field}[{i}].role", "invalid_role",
                        f"Role '{role}' is not one of {', '.join(ROLES)}{_role_hint(role)}."))
        content = m.get("content", _MISSING)
        if type(content) is str and content and not content.isspace():
            continue
        if role == "assistant" and m.get("tool_calls") and type(m.get("tool_calls")) is list \
                and content in (_MISSING, None, ""):
            continue  # a tool call carries its payload in tool_calls
        if content is _MISSING:
            out.append((f"{field}[{i}].content", "missing_key", f"{field}[{i}] has no content; add the message text."))
        else:
            _text(content, f"{field}[{i}].content", out, "message text")
    if not ends_with_assistant:
        return
    if not has_assistant:
        out.append((field, "no_assistant", f"{field} has no assistant turn; add the answer the model should learn."))
        return
    last = msgs[-1]
    if type(last) is dict and type(last.get("role")) is str and last["role"] in _ROLE_SET \
            and last["role"] != "assistant":
        out.append((f"{field}[{len(msgs) - 1}].role", "last_not_assistant",
                    f"The conversation ends with a '{last['role']}' turn; end it with the assistant's answer or drop "
                    "the trailing turn."))


# -- formats ------------------------------------------------------------------------------------------------

def _check_text(row: dict[str, Any], out: list[Problem]) -> None:
    _text(row["text"], "text", out, "training text")


def _check_chat(row: dict[str, Any], out: list[Problem]) -> None:
    check_messages(row["messages"], "messages", out, ends_with_assistant=True)


def _check_instruction(row: dict[str, Any], out: list[Problem]) -> None:
    _text(row["instruction"], "instruction", out, "instruction")
    _text(row["output"], "output", out, "expected output")
    for key in ("input", "system"):
        v = row.get(key)
        if v is not None and type(v) is not str:
            out.append((key, "wrong_type", f"{key} must be a string (it may be empty), not {kind(v)}."))


def _check_sharegpt(row: dict[str, Any], out: list[Problem]) -> None:
    turns = row["conversations"]
    if type(turns) is not list:
        out.append(("conversations", "wrong_type",
                    f"conversations must be a list of turns {{from, value}}, not {kind(turns)}."))
        return
    if not turns:
        out.append(("conversations", "empty_value", "conversations is an empty list; add the turns."))
        return
    roles: list[str | None] = []
    for i, t in enumerate(turns):
        f = f"conversations[{i}]"
        if type(t) is not dict:
            out.append((f, "wrong_type", f"{f} must be an object {{from, value}}, not {kind(t)}."))
            roles.append(None)
            continue
        who = t.get("from", _MISSING)
        role = SHAREGPT_ROLES.get(who.lower()) if type(who) is str else None
        roles.append(role)
        if who is _MISSING:
            out.append((f"{f}.from", "missing_key", f"{f} has no 'from'; add human, gpt or system."))
        elif type(who) is not str:
            out.append((f"{f}.from", "wrong_type", f"{f}.from must be a string, not {kind(who)}."))
        elif role is None:
            out.append((f"{f}.from", "invalid_role",
                        f"'from' is '{who}'; use human, gpt, system, function_call or observation."))
        value = t.get("value", _MISSING)
        if value is _MISSING:
            out.append((f"{f}.value", "missing_key", f"{f} has no 'value'; add the turn's text."))
        elif not (type(value) is str and value and not value.isspace()):
            _text(value, f"{f}.value", out, "turn's text")
    if "assistant" not in roles:
        out.append(("conversations", "no_assistant", "conversations has no gpt turn; add the answer to learn."))
    elif roles[-1] is not None and roles[-1] != "assistant":
        out.append((f"conversations[{len(turns) - 1}].from", "last_not_assistant",
                    f"The conversation ends with a '{turns[-1]['from']}' turn; end it with a gpt turn."))


def _check_pair(row: dict[str, Any], out: list[Problem], keys: tuple[str, ...]) -> None:
    """prompt_completion, kto and dpo: every key a string, or every key a list of messages (TRL's two forms)."""
    forms: dict[str, str] = {}
    for k in keys:
        v = row[k]
        if type(v) is str:
            forms[k] = "a string"
            _text(v, k, out, "prompt" if k == "prompt" else "answer")
        elif type(v) is list:
            forms[k] = "a list of messages"
            check_messages(v, k, out, ends_with_assistant=k != "prompt")
        else:
            out.append((k, "wrong_type", f"{k} must be a string or a list of messages, not {kind(v)}."))
    first = next(iter(forms.values()), None)
    for k, form in forms.items():
        if form != first:
            out.append((k, "mixed_forms", f"{k} is {form} but {next(iter(forms))} is {first}; give "
                                          f"{', '.join(keys)} all as strings or all as lists of messages."))
    if "chosen" in forms and "rejected" in forms and not out:
        try:
            same = row["chosen"] == row["rejected"]
        except RecursionError:
            same = False
        if same:
            out.append(("rejected", "chosen_equals_rejected",
                        "chosen and rejected are identical, so the pair teaches nothing; change the rejected "
                        "answer or drop the row."))


def _check_prompt_completion(row: dict[str, Any], out: list[Problem]) -> None:
    _check_pair(row, out, ("prompt", "completion"))


def _check_dpo(row: dict[str, Any], out: list[Problem]) -> None:
    _check_pair(row, out, ("prompt", "chosen", "rejected"))


def _check_kto(row: dict[str, Any], out: list[Problem]) -> None:
    _check_pair(row, out, ("prompt", "completion"))
    label = row["label"]
    if type(label) is not bool:
        hint = f" (use {str(bool(label)).lower()})" if type(label) is int and label in (0, 1) else ""
        out.append(("label", "wrong_type", f"label must be true (desirable) or false (undesirable), not "
                                           f"{kind(label)}{hint}."))


_CHECKS = {
    "text": _check_text, "chat": _check_chat, "instruction": _check_instruction, "sharegpt": _check_sharegpt,
    "prompt_completion": _check_prompt_completion, "dpo": _check_dpo, "kto": _check_kto,
}


# -- fast acceptance ----------------------------------------------------------------------------------------

def _accept_text(row: dict[str, Any], roles: dict[str, int]) -> int:
    t = row.get("text")
    if type(t) is not str or not t or t.isspace() or len(row) > 1 and detect_row_format(row) != "text":
        return -1
    return len(t)


def _never(row: dict[str, Any], roles: dict[str, int]) -> int:
    return -1


# (row, roles) -> the row's content characters when it is surely a valid row of the format (its roles counted),
# -1 when it must be judged. Only a shortcut: judge() decides, and a test holds the two to the same verdicts.
# Chat rows take the typed decoder of core/datasets/fastpath.py before this.
ACCEPT = {"text": _accept_text}


def acceptor(fmt: str | None) -> Any:
    return ACCEPT.get(fmt, _never) if fmt else _never
