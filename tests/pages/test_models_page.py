"""AppTest of the Models screen: list, detail, and every action against loopback Hub, Ollama and vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.fake_hub import TOKEN, FakeHub
from tests.support.fake_ollama import FakeOllama
from tests.support.fake_vllm import FakeVLLM

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "models.py")


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error", "code")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def test_empty_registry(console_home):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No models yet" in at.info[0].value


@pytest.mark.training
def test_detail_shows_lineage_scores_and_serving_options(finished_home):
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Final loss"] == f"{model.metrics['final_loss']:.3f}"
    assert metrics["BLEU"] == str(model.metrics["bleu"])
    text = _texts(at)
    assert model.dataset_hash[:12] in text and model.source_job_id in text
    assert "--max-lora-rank 16" in text and "vllm serve" in text
    assert "Route: **adapter** (llama)" in text
    assert [t.label for t in at.tabs] == ["Merge", "Hugging Face Hub", "Ollama", "vLLM"]
    scores = next(df.value for df in at.dataframe if "score" in df.value.columns)
    assert dict(zip(scores["score"], scores["value"]))["rouge_l"] == model.metrics["rouge_l"]


@pytest.mark.training
def test_actions_reach_the_services(finished_home, monkeypatch):
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    at = AppTest.from_file(PAGE, default_timeout=120).run()

    _button(at, "models_ollama_export").click().run()
    assert f"ADAPTER {model.artifact_path}" in _texts(at)

    with FakeOllama() as ollama_server:
        at.text_input(key="models_ollama_host").set_value(ollama_server.url)
        at.text_input(key="models_ollama_name").set_value("from-page")
        _button(at, "models_ollama_register").click().run()
        assert not at.exception
        assert {"from-page", "from-page-base"} == set(ollama_server.models)
        assert "`ollama run from-page`" in _texts(at)

    with FakeVLLM(finished_home.base) as vllm_server:
        at.text_input(key="models_vllm_url").set_value(vllm_server.url)
        _button(at, "models_vllm_load").click().run()
        assert model.name in vllm_server.loras and "added successfully" in _texts(at)

    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        at.text_input(key="models_hub_repo").set_value("alice/from-page")
        at.text_input(key="models_hub_token").set_value(TOKEN)
        _button(at, "models_hub_push").click().run()
        assert hub.repos["alice/from-page"]["private"] is True
        assert "Pushed the adapter" in _texts(at)
        assert TOKEN not in _texts(at)  # the secret is never echoed on the page

    actions = open_store().get_model(model.id).metadata["actions"]
    assert {"export_ollama", "ollama", "vllm", "push_adapter"} <= set(actions)


@pytest.mark.training
def test_a_failing_service_is_a_message_not_a_trace(finished_home):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="models_vllm_url").set_value("http://127.0.0.1:9")
    _button(at, "models_vllm_load").click().run()
    assert not at.exception
    assert "Cannot reach vLLM" in at.error[0].value


@pytest.mark.training
def test_merge_button_then_push_the_merged_model(finished_home, monkeypatch, tmp_path):
    import core.export

    monkeypatch.setattr(core.export, "merged_dir_for", lambda m: tmp_path / "merged")
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert _button(at, "models_merge").label == "Merge adapter into base"
    _button(at, "models_merge").click().run()
    assert not at.exception
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert f"Merged model: `{tmp_path / 'merged'}`" in _texts(at)
    assert _button(at, "models_merge").label == "Merge again"
    assert not at.checkbox(key="models_vllm_merged").disabled  # the merged model can now be served
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        at.text_input(key="models_hub_repo").set_value("alice/merged-from-page")
        at.text_input(key="models_hub_token").set_value(TOKEN)
        at.radio(key="models_hub_what").set_value("merged")
        _button(at, "models_hub_push").click().run()
        files = hub.repos["alice/merged-from-page"]["files"]
    assert "model.safetensors" in files and "adapter_model.safetensors" not in files
    assert "Pushed the merged" in _texts(at)


@pytest.mark.training
def test_a_full_fine_tune_offers_what_applies_to_it(full_model):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.warning
    text = _texts(at)
    assert "no adapter to merge" in text and not [b for b in at.button if b.key == "models_merge"]
    assert f"vllm serve {full_model.artifact_path} --served-model-name" in text and "--enable-lora" not in text
    assert "Route: **merged** (llama)" in text
    assert at.radio(key="models_hub_what").options == ["model"]
    assert not [b for b in at.button if b.key == "models_vllm_load"]
