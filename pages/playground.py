"""Playground: ask a registered model something and watch the answer stream in, with the base model's answer to
the same prompt beside it; on this machine (transformers) or through a running vLLM or Ollama server."""

from __future__ import annotations

import streamlit as st

from core.playground import EMPTY_ANSWER
from pages._shared import guard, short_model, store

SOURCES = {"local": "This machine", "vllm": "vLLM server", "ollama": "Ollama server"}

st.title("Playground")

with guard("listing models"):
    models = store().list_models()
    if not models:
        st.info("No models yet: a job that completes registers its model here.")
        st.page_link("pages/deploy.py", label="Launch a job", icon=":material/rocket_launch:")
        st.stop()
    by_id = {m.id: m for m in models}
    ids = list(by_id)
    wanted = st.session_state.get("playground_model")
    model_id = st.selectbox("Model", ids, index=ids.index(wanted) if wanted in ids else 0, key="playground_pick",
                            format_func=lambda i: f"{by_id[i].name} · {short_model(by_id[i].base_model)}")
    st.session_state["playground_model"] = model_id
    model = by_id[model_id]


def _remote_defaults(engine: str) -> tuple[str, str, str]:
    """URL, the tuned model's name and the base's name on the server, from what the Models screen recorded."""
    from core.chat import base_url_for

    actions = (model.metadata or {}).get("actions") or {}
    done = actions.get("vllm" if engine == "vllm" else "ollama") or {}
    url = done.get("chat_url") or base_url_for(engine)
    if engine == "vllm":
        return url, done.get("lora_name") or model.name, model.base_model or ""
    name = done.get("name") or model.name
    return url, name, done.get("base") or ""


c1, c2 = st.columns([2, 1])
source = c1.radio("Run on", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="playground_source")
compare = c2.toggle("Compare with the base model", value=True, key="playground_compare")
remote: dict = {}
if source != "local":
    url0, name0, base0 = _remote_defaults(source)
    r1, r2, r3 = st.columns(3)
    remote["url"] = r1.text_input("Server URL", value=url0, key=f"playground_url_{source}")
    remote["model"] = r2.text_input("Fine-tuned model's name there", value=name0, key=f"playground_name_{source}")
    remote["base"] = r3.text_input("Base model's name there", value=base0, key=f"playground_base_{source}",
                                   disabled=not compare)
    remote["key"] = st.text_input("API key (if the server has one)", type="password", key="playground_key") or None

with st.expander("Settings"):
    from core.playground import training_system_prompt

    s1, s2 = st.columns(2)
    max_new = s1.slider("Max new tokens", 8, 512, 96, key="playground_max_new")
    temperature = s2.slider("Temperature", 0.0, 1.5, 0.0, 0.05, key="playground_temperature",
                            help="0 answers greedily: the same prompt always gets the same answer")
    system = st.text_area("System message", value=training_system_prompt(store(), model) or "",
                          key=f"playground_system_{model.id}", help="Defaults to the one the training data used.")

unavailable = None
if source == "local":
    from core.serving import serving_summary

    if unavailable := serving_summary(model).get("unavailable"):
        st.warning(f"{unavailable} Chat with it through a vLLM or Ollama server that has it instead.")

history_key = f"playground_history_{model.id}_{source}"
history: list[dict] = st.session_state.setdefault(history_key, [])


def _messages(side: str, prompt: str) -> list[dict]:
    """Each side keeps its own conversation, so the base never sees the fine-tuned model's replies."""
    from core.playground import build_messages

    past = []
    for turn in history:
        past += [{"role": "user", "content": turn["prompt"]}, {"role": "assistant", "content": turn[side]}]
    return build_messages(prompt, system or None, past)


def _stream(side: str, prompt: str):
    if source == "local":
        from core.playground import GenerationSettings, local_chat

        chat = local_chat(model)
        return chat.stream(_messages(side, prompt), adapter=side == "fine_tuned",
                           settings=GenerationSettings(max_new_tokens=max_new, temperature=temperature))
    from core.chat import stream_chat

    name = remote["model"] if side == "fine_tuned" else remote["base"]
    return stream_chat(remote["url"], name, _messages(side, prompt), api_key=remote["key"], max_tokens=max_new,
                       temperature=temperature, service=SOURCES[source])


sides = [("base", "Base model"), ("fine_tuned", "Fine-tuned")] if compare else [("fine_tuned", "Fine-tuned")]
for turn in history:
    with st.chat_message("user"):
        st.markdown(turn["prompt"])
    cols = st.columns(len(sides))
    for col, (side, label) in zip(cols, sides):
        with col, st.chat_message("assistant"):
            st.caption(label)
            st.markdown(turn.get(side) or EMPTY_ANSWER)

prompt = st.chat_input("Ask the model", key="playground_prompt", disabled=bool(unavailable))
if prompt:
    with st.chat_message("user"):
        st.markdown(prompt)
    turn = {"prompt": prompt, "base": "", "fine_tuned": ""}
    cols = st.columns(len(sides))
    if source == "local":
        with guard("loading the model"), st.spinner("Loading the model (once per console process)..."):
            from core.playground import local_chat

            local_chat(model)
    for col, (side, label) in zip(cols, sides):
        with col, st.chat_message("assistant"):
            st.caption(label)
            with guard(f"asking the {label.lower()}"):
                if side == "base" and source != "local" and not remote.get("base"):
                    st.info("Name the base model on the server to compare.")
                    continue
                turn[side] = str(st.write_stream(_stream(side, prompt)) or "").strip()
                if not turn[side]:
                    st.markdown(EMPTY_ANSWER)
    history.append(turn)
if history and st.button("Clear conversation", key="playground_clear", icon=":material/delete_sweep:"):
    st.session_state[history_key] = []
    st.rerun()
