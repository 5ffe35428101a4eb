"""A form generated from the pydantic TrainingConfig: every field, its type, its bounds and its help text come
from core/config.py, so the screen can never drift from what the trainer accepts."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import streamlit as st
from pydantic.fields import FieldInfo

from core.config import TrainingConfig

SECTIONS = [
    ("model", "Model"), ("data", "Data"), ("training", "Training"), ("lora", "LoRA"),
    ("quantization", "Quantization"), ("predictions", "Predictions during training"), ("budget", "Budget"),
]
OPEN_SECTIONS = {"model", "data", "training"}
PREFIX = "cfgf"


def _key(section: str, field: str) -> str:
    return f"{PREFIX}.{section}.{field}"


def reset_form(cfg: dict[str, Any]) -> None:
    """Load a config into the form (presets, saved configs): widgets re-initialise from it on the next run."""
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(PREFIX + ".")]:
        del st.session_state[k]
    st.session_state["cfg_current"] = cfg


def _args(annotation: Any) -> tuple[Any, bool, tuple[Any, ...]]:
    """(core type, optional?, literal choices) for a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(parts) < len(typing.get_args(annotation))
        if len(parts) == 1:
            core, _, choices = _args(parts[0])
            return core, optional, choices
        return parts, optional, ()  # a union of several types (target_modules)
    if origin is Literal:
        return Literal, False, typing.get_args(annotation)
    return annotation, False, ()


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in info.metadata:
        for attr, name in (("ge", "min_value"), ("gt", "min_value"), ("le", "max_value"), ("lt", "max_value")):
            v = getattr(m, attr, None)
            if v is not None:
                out[name] = v
    return out


def _to_widget(value: Any, core: Any) -> Any:
    if isinstance(core, list):  # list[str] | "all-linear" | None
        if value is None:
            return ""
        return value if isinstance(value, str) else ", ".join(value)
    if core is str and value is None:
        return ""
    return value


def _from_widget(value: Any, core: Any, optional: bool) -> Any:
    if isinstance(core, list):
        text = (value or "").strip()
        if not text:
            return None
        if text == "all-linear":
            return text
        return [p.strip() for p in text.split(",") if p.strip()]
    if core is str and optional and (value is None or str(value).strip() == ""):
        return None
    return value


def _widget(section: str, name: str, info: FieldInfo, current: Any) -> Any:
    core, optional, choices = _args(info.annotation)
    key = _key(section, name)
    if key not in st.session_state:
        st.session_state[key] = _to_widget(current, core)
    label = name.replace("_", " ")
    help_ = info.description
    if core is Literal:
        return st.selectbox(label, choices, key=key, help=help_)
    if core is bool:
        return st.toggle(label, key=key, help=help_)
    if core is int:
        b = _bounds(info)
        return st.number_input(label, step=1, key=key, help=help_, min_value=b.get("min_value"),
                               max_value=b.get("max_value"), placeholder="not set" if optional else None)
    if core is float:
        b = _bounds(info)
        return st.number_input(label, format="%g", step=None, key=key, help=help_,
                               min_value=float(b["min_value"]) if "min_value" in b else None,
                               max_value=float(b["max_value"]) if "max_value" in b else None,
                               placeholder="not set" if optional else None)
    if name == "chat_template":
        return _from_widget(st.text_area(label, key=key, help=help_, height=80), core, optional)
    if isinstance(core, list):
        return _from_widget(st.text_input(label, key=key, help=(help_ or "") +
                                          " — comma separated names, 'all-linear', or empty"), core, optional)
    return _from_widget(st.text_input(label, key=key, help=help_), core, optional)


def render(cfg: dict[str, Any]) -> dict[str, Any]:
    """Draw the form for ``cfg`` and return the dict the widgets now hold (not yet validated)."""
    out: dict[str, Any] = {}
    name_key = f"{PREFIX}.name"
    if name_key not in st.session_state:
        st.session_state[name_key] = cfg.get("name", "")
    out["name"] = st.text_input("Config name", key=name_key)
    desc_key = f"{PREFIX}.description"
    if desc_key not in st.session_state:
        st.session_state[desc_key] = cfg.get("description", "")
    out["description"] = st.text_input("Description", key=desc_key)
    for section, title in SECTIONS:
        section_model = TrainingConfig.model_fields[section].annotation
        current = cfg.get(section) or {}
        values: dict[str, Any] = {}
        with st.expander(title, expanded=section in OPEN_SECTIONS):
            cols = st.columns(3)
            for i, (fname, finfo) in enumerate(section_model.model_fields.items()):
                default = finfo.get_default(call_default_factory=True)
                with cols[i % 3]:
                    values[fname] = _widget(section, fname, finfo, current.get(fname, default))
        out[section] = values
    return out
