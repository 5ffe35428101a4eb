"""AppTest of the Playground: the tiny model answers for real, base beside fine-tuned; and a vLLM server (fake)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.fake_vllm import FakeVLLM

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "playground.py")

pytestmark = pytest.mark.training


def _answers(at: AppTest) -> list[str]:
    """The markdown written inside assistant messages, in page order."""
    return [md.value for msg in at.chat_message if msg.name == "assistant" for md in msg.markdown]


def test_local_answers_side_by_side(finished_home):
    from core.playground import EMPTY_ANSWER, GenerationSettings, build_messages, local_chat
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    assert not at.exception
    assert at.text_area[0].value == "You are a concise assistant."  # the training data's system message
    at.chat_input(key="playground_prompt").set_value("What is the capital of Japan?").run()
    assert not at.exception
    want = local_chat(model).compare(build_messages("What is the capital of Japan?", "You are a concise assistant."),
                                     GenerationSettings(max_new_tokens=96))
    assert want["fine_tuned"]
    assert _answers(at) == [want["base"] or EMPTY_ANSWER, want["fine_tuned"]]
    # The turn stays on the page after the next rerun, and can be cleared.
    at.run()
    assert _answers(at) == [want["base"] or EMPTY_ANSWER, want["fine_tuned"]]
    next(b for b in at.button if b.key == "playground_clear").click().run()
    assert _answers(at) == []


def test_through_a_vllm_server(finished_home):
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    with FakeVLLM(finished_home.base, reply="Tokyo is the capital.") as server:
        server.loras[model.name] = model.artifact_path
        at = AppTest.from_file(PAGE, default_timeout=60).run()
        at.radio(key="playground_source").set_value("vllm").run()
        assert at.text_input(key="playground_name_vllm").value == model.name
        at.text_input(key="playground_url_vllm").set_value(server.url + "/v1")
        at.chat_input(key="playground_prompt").set_value("Capital of Japan?").run()
        assert not at.exception
        asked = [r.json()["model"] for r in server.calls("POST", "/v1/chat/completions")]
    assert asked == [finished_home.base, model.name]
    assert _answers(at) == ["Tokyo is the capital.", "Tokyo is the capital."]


def test_through_ollama_after_registering_on_the_models_screen(finished_home):
    """Registering with Ollama records where and under which names the model lives; the playground starts there."""
    from core import serving
    from core.store import open_store

    from tests.support.fake_ollama import FakeOllama

    with FakeOllama(reply="Tokyo.") as server:
        serving.register_ollama(open_store(), finished_home.model_id, name="tuned-ollama", host=server.url)
        at = AppTest.from_file(PAGE, default_timeout=60).run()
        at.radio(key="playground_source").set_value("ollama").run()
        assert at.text_input(key="playground_url_ollama").value == server.url + "/v1"
        assert at.text_input(key="playground_name_ollama").value == "tuned-ollama"
        assert at.text_input(key="playground_base_ollama").value == "tuned-ollama-base"
        at.chat_input(key="playground_prompt").set_value("Capital of Japan?").run()
        assert not at.exception
        asked = [r.json()["model"] for r in server.calls("POST", "/v1/chat/completions")]
    assert asked == ["tuned-ollama-base", "tuned-ollama"]
    assert _answers(at) == ["Tokyo.", "Tokyo."]


def test_weights_not_on_this_machine_say_so_instead_of_failing(console_home):
    from core.store import open_store
    from core.store.records import ModelRecord

    open_store().add_model(ModelRecord(id="model_hub", name="on-the-hub", base_model="meta-llama/Llama-3.2-1B",
                                       artifact_path="hf://alice/adapter"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    assert "on the Hugging Face Hub" in at.warning[0].value and "vLLM or Ollama server" in at.warning[0].value
    assert at.chat_input(key="playground_prompt").proto.disabled
    at.radio(key="playground_source").set_value("vllm").run()
    assert not at.warning and not at.chat_input(key="playground_prompt").proto.disabled
