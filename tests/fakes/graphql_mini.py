"""Just enough GraphQL to serve what RunPod's SDK sends: one operation, fields with literal arguments (strings,
numbers, booleans, null, enums, objects, lists), nested selection sets. No variables, fragments or directives:
the SDK (runpod/api/queries/*.py, runpod/api/mutations/*.py) builds every query with f-strings and literals."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r'\s*(?:(\.\.\.)|([{}()\[\]:,!$=@])|("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|([_A-Za-z][_0-9A-Za-z]*))')


class GraphQLSyntaxError(ValueError):
    pass


@dataclass
class Field:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    selections: list["Field"] | None = None


@dataclass
class Enum:
    value: str


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = re.sub(r"#[^\n]*", "", text)
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise GraphQLSyntaxError(f"Syntax Error: Unexpected character at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group(1):
            out.append(("punct", "..."))
        elif m.group(2):
            out.append(("punct", m.group(2)))
        elif m.group(3):
            out.append(("string", m.group(3)[1:-1].encode().decode("unicode_escape")))
        elif m.group(4):
            num = m.group(4)
            out.append(("number", num))
        else:
            out.append(("name", m.group(5)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise GraphQLSyntaxError(f"Syntax Error: Expected {value!r}, found {tok[1] if tok else '<EOF>'!r}")
        self.i += 1
        return tok

    def document(self) -> tuple[str, list[Field]]:
        op = "query"
        tok = self.peek()
        if tok and tok[0] == "name" and tok[1] in ("query", "mutation"):
            op = self.take()[1]
            if self.peek() and self.peek()[0] == "name":
                self.take()  # operation name
        sel = self.selection_set()
        if self.peek() is not None:
            raise GraphQLSyntaxError("Syntax Error: one operation per document")
        return op, sel

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() and self.peek()[1] != "}":
            fields.append(self.field())
            if self.peek() and self.peek()[1] == ",":
                self.take()
        self.take("}")
        return fields

    def field(self) -> Field:
        name = self.take()[1]
        f = Field(name)
        if self.peek() and self.peek()[1] == "(":
            self.take("(")
            while self.peek()[1] != ")":
                key = self.take()[1]
                self.take(":")
                f.args[key] = self.value()
                if self.peek()[1] == ",":
                    self.take()
            self.take(")")
        if self.peek() and self.peek()[1] == "{":
            f.selections = self.selection_set()
        return f

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return text
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, Enum(text))
        if text == "{":
            obj = {}
            while self.peek()[1] != "}":
                key = self.take()[1]
                self.take(":")
                obj[key] = self.value()
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
            return obj
        if text == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return items
        raise GraphQLSyntaxError(f"Syntax Error: Unexpected {text!r}")


def parse(text: str) -> tuple[str, list[Field]]:
    return _Parser(text).document()


def plain(value: Any) -> Any:
    """Arguments with enums turned into their names."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def project(value: Any, selections: list[Field] | None) -> Any:
    """Keep only the selected fields, the way a GraphQL server shapes its answer."""
    if selections is None or value is None:
        return value
    if isinstance(value, list):
        return [project(v, selections) for v in value]
    out = {}
    for f in selections:
        out[f.name] = project(value.get(f.name), f.selections)
    return out
