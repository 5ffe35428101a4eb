"""``python -m core serve | export | chat | models``: the same actions from the command line, with exit codes."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from tests.support.fake_hub import TOKEN, FakeHub
from tests.support.fake_ollama import FakeOllama
from tests.support.fake_vllm import FakeVLLM

pytestmark = pytest.mark.training


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_serve_with_vllm_prints_the_command(finished_home, capsys):
    code, out, _ = run(capsys, "serve", finished_home.model_id, "--with", "vllm", "--json")
    data = json.loads(out)
    assert code == 0 and data["argv"][:3] == ["vllm", "serve", finished_home.base]
    assert "--max-lora-rank 16" in data["shell"]
    code, out, _ = run(capsys, "models", "show", finished_home.model_id, "--json")
    assert json.loads(out)["metadata"]["actions"]["vllm_command"]["shell"] == data["shell"]


def test_serve_with_vllm_url_hot_loads(finished_home, capsys):
    with FakeVLLM(finished_home.base) as server:
        code, out, _ = run(capsys, "serve", finished_home.model_id, "--with", "vllm", "--url", server.url)
        assert code == 0 and list(server.loras) == [json.loads(run(capsys, "models", "show", finished_home.model_id,
                                                                     "--json")[1])["name"]]
        assert "added successfully" in out
        code, out, _ = run(capsys, "chat", finished_home.model_id, "Capital of France?", "--with", "vllm", "--url",
                           server.url, "--json")
    assert code == 0 and json.loads(out)["answer"] == "The capital of France is Paris."


def test_serve_with_ollama_registers_it(finished_home, capsys, monkeypatch):
    with FakeOllama() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        code, out, _ = run(capsys, "serve", finished_home.model_id, "--with", "ollama", "--name", "tuned", "--json")
        assert code == 0 and set(server.models) == {"tuned", "tuned-base"}
    data = json.loads(out)
    assert data["route"] == "adapter" and data["chat_url"] == server.url + "/v1"


def test_export_push_and_ollama(finished_home, capsys, monkeypatch):
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        code, out, _ = run(capsys, "export", finished_home.model_id, "--push", "alice/cli-push", "--ollama", "--json")
        assert code == 0 and "adapter_model.safetensors" in hub.repos["alice/cli-push"]["files"]
    data = json.loads(out)
    assert data["push"]["private"] is True and data["ollama"]["route"] == "adapter"
    assert open(data["ollama"]["files"]["Modelfile"]).read().startswith("# FineTune Console")


def test_cli_errors(finished_home, capsys, monkeypatch):
    code, _, err = run(capsys, "export", finished_home.model_id)
    assert code == 2 and "--merge" in err
    code, _, err = run(capsys, "serve", "model_does_not_exist", "--with", "vllm")
    assert code == 1 and "No model" in err
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    code, _, err = run(capsys, "serve", finished_home.model_id, "--with", "ollama")
    assert code == 1 and "Cannot reach Ollama" in err
    code, _, _ = run(capsys, "serve", finished_home.model_id, "--with", "tgi")
    assert code == 2


def test_chat_locally_with_compare(finished_home, capsys):
    code, out, _ = run(capsys, "chat", finished_home.model_id, "What is the capital of Japan?", "--compare",
                       "--max-new-tokens", "12", "--json")
    data = json.loads(out)
    assert code == 0 and data["system"] == "You are a concise assistant."
    # The barely trained base model may end at once (an empty answer); the fine-tuned one answers, differently.
    assert data["fine_tuned"] and data["base"] != data["fine_tuned"]


def test_export_merge_then_serve_the_merged_model(finished_home, capsys, monkeypatch, tmp_path):
    import core.export

    # The session's finished job is shared: merge into this test's folder, not next to the shared adapter.
    monkeypatch.setattr(core.export, "merged_dir_for", lambda m: tmp_path / "merged")
    model_id = finished_home.model_id
    code, out, _ = run(capsys, "export", model_id, "--merge", "--json")
    merged = json.loads(out)["merge"]
    assert code == 0 and merged["path"] == str(tmp_path / "merged")
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(merged["files"])
    code, _, err = run(capsys, "export", model_id, "--merge")
    assert code == 1 and "already holds a merged model" in err
    code, out, _ = run(capsys, "serve", model_id, "--with", "vllm", "--merged", "--json")
    argv = json.loads(out)["argv"]
    assert code == 0 and argv[:3] == ["vllm", "serve", str(tmp_path / "merged")] and "--enable-lora" not in argv
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [model_id]
    assert rows[0]["metadata"]["actions"]["merge"]["path"] == str(tmp_path / "merged")
    code, out, _ = run(capsys, "models")
    assert out.split()[:2] == [model_id, rows[0]["name"]]


def test_models_show_for_a_person(finished_home, capsys):
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    code, out, _ = run(capsys, "models", "show", model.name)  # by name as well as by id
    assert code == 0 and out.startswith(f"{model.name}  ({model.id})")
    assert f"base:      {finished_home.base}" in out and model.dataset_hash[:16] in out
    assert f"loss:      {model.metrics['final_loss']} · bleu {model.metrics['bleu']}" in out
    assert f"{model.artifact_path} (local)" in out
