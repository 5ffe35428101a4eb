"""Ollama: the route each architecture takes, the Modelfile, and registration through a loopback Ollama."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core import ollama
from core.errors import ConsoleError, ProviderError
from tests.support.fake_ollama import FakeOllama

pytestmark = pytest.mark.training


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("raw,url", [
    (None, "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("0.0.0.0:9999", "http://127.0.0.1:9999"),
    ("gpu-box:11500", "http://gpu-box:11500"),
    ("https://ollama.example.com", "https://ollama.example.com:443"),
    ("http://10.0.0.5:11434/", "http://10.0.0.5:11434"),
])
def test_host_url_reads_ollama_host_like_the_cli(raw, url, monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    if raw:
        monkeypatch.setenv("OLLAMA_HOST", raw)
    assert ollama.host_url() == url


def _model():
    from core.store import open_store

    return open_store().get_model(open_store().list_models()[0].id)


def test_llama_with_a_local_base_takes_the_adapter_route(finished_home):
    model = _model()
    plan = ollama.plan(model)
    assert (plan.route, plan.arch) == ("adapter", "llama")
    assert plan.base == finished_home.base and plan.source == model.artifact_path
    text = plan.modelfile(model)
    assert f"FROM {finished_home.base}\nADAPTER {model.artifact_path}\n" in text
    assert 'TEMPLATE """{{- range .Messages }}<|im_start|>' in text  # the demo tokenizer speaks ChatML
    assert 'PARAMETER stop "<|im_end|>"' in text
    named = ollama.plan(model, base="llama3.2:1b")
    assert named.modelfile(model).count("FROM llama3.2:1b\n") == 1


@pytest.mark.parametrize("arch,route", [("qwen2", "merged"), ("phi3", "merged"), ("gpt2", "gguf"), (None, "gguf"),
                                        ("gemma2", "adapter"), ("mistral", "adapter")])
def test_route_per_architecture(finished_home, monkeypatch, arch, route):
    monkeypatch.setattr(ollama, "architecture", lambda m: arch)
    assert ollama.plan(_model()).route == route


def test_gguf_export_writes_the_conversion_guide(finished_home, monkeypatch, tmp_path):
    monkeypatch.setattr(ollama, "architecture", lambda m: "gpt2")
    model = _model()
    files = ollama.write_export(model, tmp_path, ollama.plan(model))
    guide = Path(files["GGUF.md"]).read_text()
    assert "convert_hf_to_gguf.py" in guide and "convert_lora_to_gguf.py" in guide
    assert f"--base {finished_home.base}" in guide
    assert "FROM ./model.gguf" in Path(files["Modelfile"]).read_text()


def test_register_adapter_route_imports_the_local_base_then_the_adapter(finished_home):
    model = _model()
    adapter = Path(model.artifact_path)
    with FakeOllama() as server:
        reg = ollama.register(model, ollama.plan(model), name="demo-tuned", client=ollama.OllamaClient(server.url))
        base = server.models["demo-tuned-base"]
        tuned = server.models["demo-tuned"]
        uploads = {r.path.rsplit("/", 1)[-1] for r in server.calls("POST", r"^/api/blobs/")}
        # Second registration: every blob is already there, so nothing is uploaded again.
        ollama.register(model, ollama.plan(model), name="demo-tuned", client=ollama.OllamaClient(server.url))
        assert len(server.calls("POST", r"^/api/blobs/")) == len(uploads)
    base_dir = Path(finished_home.base)
    assert base["files"]["model.safetensors"] == _sha(base_dir / "model.safetensors")
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(base["files"])
    assert tuned["from"] == "demo-tuned-base"
    assert tuned["adapters"] == {n: _sha(adapter / n) for n in ("adapter_model.safetensors", "adapter_config.json")}
    assert tuned["parameters"] == {"stop": ["<|im_end|>"]}
    assert uploads == set(base["files"].values()) | set(tuned["adapters"].values())
    assert reg.statuses[-1] == "success" and reg.route == "adapter"


def test_register_on_a_base_already_in_ollama(finished_home):
    model = _model()
    with FakeOllama(existing=("llama3.2:1b",)) as server:
        ollama.register(model, ollama.plan(model, base="llama3.2:1b"), name="x", client=ollama.OllamaClient(server.url))
        assert server.models["x"]["from"] == "llama3.2:1b" and len(server.models) == 2
        with pytest.raises(ConsoleError, match="file does not exist"):
            ollama.register(model, ollama.plan(model, base="mistral:7b"), name="y",
                            client=ollama.OllamaClient(server.url))


def test_register_merged_route_sends_the_merged_folder(finished_home, tmp_path, monkeypatch):
    from core.export import merge_adapter

    model = _model()
    merged = Path(merge_adapter(model, tmp_path / "merged").path)
    plan = ollama.plan(model, prefer="merged")
    plan.source = str(merged)
    with FakeOllama() as server:
        ollama.register(model, plan, name="m", client=ollama.OllamaClient(server.url))
        files = server.models["m"]["files"]
    assert files["model.safetensors"] == _sha(merged / "model.safetensors")
    assert "merge_info.json" not in files and server.models["m"]["from"] is None


def test_register_errors(finished_home, monkeypatch):
    model = _model()
    with pytest.raises(ProviderError, match="Cannot reach Ollama"):
        ollama.register(model, ollama.plan(model), client=ollama.OllamaClient("127.0.0.1:9"))
    with FakeOllama() as server:
        server.fail_next("POST", r"^/api/blobs/", 500, {"error": "disk full"})
        with pytest.raises(ProviderError, match="disk full"):
            ollama.register(model, ollama.plan(model), client=ollama.OllamaClient(server.url))
    monkeypatch.setattr(ollama, "architecture", lambda m: "gpt2")
    with pytest.raises(ConsoleError, match="convert to GGUF"):
        ollama.register(model, ollama.plan(model), client=ollama.OllamaClient("127.0.0.1:9"))


def test_export_for_a_merged_route_merges_first(finished_home, tmp_path, monkeypatch):
    import core.export
    from core import serving
    from core.store import open_store

    monkeypatch.setattr(core.export, "merged_dir_for", lambda m: tmp_path / "merged")
    monkeypatch.setattr(ollama, "architecture", lambda m: "qwen2")
    store = open_store()
    with pytest.raises(ConsoleError, match="Merge the adapter first"):
        serving.export_ollama(store, finished_home.model_id, out=str(tmp_path / "o1"), merge_if_needed=False)
    info = serving.export_ollama(store, finished_home.model_id, out=str(tmp_path / "o2"))
    assert info["route"] == "merged" and (tmp_path / "merged" / "model.safetensors").is_file()
    assert f"\nFROM {tmp_path / 'merged'}\n" in Path(info["files"]["Modelfile"]).read_text()
