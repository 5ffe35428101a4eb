"""vLLM: the serve command derived from the adapter, and hot-loading into a running server (loopback fake)."""

from __future__ import annotations

import json
import shlex

import pytest

from core import vllm
from core.errors import AuthError, ConsoleError
from tests.support.fake_vllm import FakeVLLM

pytestmark = pytest.mark.training


@pytest.mark.parametrize("r,size", [(1, 1), (2, 8), (8, 8), (16, 16), (17, 32), (64, 64), (300, 320), (512, 512)])
def test_max_lora_rank_is_the_smallest_size_vllm_accepts(r, size):
    assert vllm.max_lora_rank(r) == size


def test_rank_above_vllm_limit_says_to_merge():
    with pytest.raises(ConsoleError, match="Merge the adapter"):
        vllm.max_lora_rank(513)


def _model():
    from core.store import open_store

    return open_store().list_models()[0]


def test_serve_command_for_base_plus_adapter(finished_home):
    model = _model()
    cmd = vllm.serve_command(model, port=8100, allow_runtime_lora=True)
    argv = cmd.argv
    assert argv[:4] == ["vllm", "serve", finished_home.base, "--enable-lora"]
    module = json.loads(argv[argv.index("--lora-modules") + 1])
    assert module == {"name": model.name, "path": model.artifact_path, "base_model_name": finished_home.base}
    assert argv[argv.index("--max-lora-rank") + 1] == "16"  # the demo adapter has r = 16
    assert argv[-2:] == ["--port", "8100"]
    assert cmd.env == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    assert shlex.split(cmd.shell) == ["VLLM_ALLOW_RUNTIME_LORA_UPDATING=True", *argv]
    assert cmd.base_url == "http://localhost:8100/v1"


def test_serve_merged_needs_a_merge(finished_home, monkeypatch):
    monkeypatch.setattr(vllm, "merged_ready", lambda m: None)
    with pytest.raises(ConsoleError, match="no merged model"):
        vllm.serve_command(_model(), merged=True)


def test_hot_load_into_a_running_server(finished_home):
    model = _model()
    with FakeVLLM(finished_home.base) as server:
        out = vllm.hot_load(model, server.url + "/v1")
        assert server.loras == {model.name: model.artifact_path}
        assert "added successfully" in out["message"] and out["base_url"] == server.url + "/v1"
        again = vllm.hot_load(model, server.url)  # already loaded: not an error
        assert "already loaded" in again["message"]
        served = [m["id"] for m in vllm.VLLMClient(server.url).models()]
        assert served == [finished_home.base, model.name]
        assert "removed successfully" in vllm.VLLMClient(server.url).unload_lora(model.name)


def test_hot_load_errors(finished_home):
    model = _model()
    with FakeVLLM(finished_home.base, runtime_lora=False) as server:
        with pytest.raises(ConsoleError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
            vllm.hot_load(model, server.url)
    with FakeVLLM(finished_home.base, api_key="sk-local") as server:
        with pytest.raises(AuthError):
            vllm.hot_load(model, server.url)
        vllm.hot_load(model, server.url, api_key="sk-local")
        assert model.name in server.loras
    with FakeVLLM("meta-llama/Llama-3.2-1B") as server:
        with pytest.raises(ConsoleError, match="not this adapter's base"):
            vllm.hot_load(model, server.url)
    with FakeVLLM(finished_home.base) as server:
        with pytest.raises(ConsoleError, match="No adapter found"):
            vllm.hot_load(model, server.url, path_on_server="/nowhere")


def test_base_is_recognised_by_its_path_not_its_served_name(finished_home):
    model = _model()
    with FakeVLLM(finished_home.base, served_name="tiny") as server:
        vllm.hot_load(model, server.url)
        assert server.loras == {model.name: model.artifact_path}
    # The old suffix test took any model whose name merely ended like the base for that base.
    with FakeVLLM("/models/not-tiny-llama") as server:
        with pytest.raises(ConsoleError, match="not this adapter's base"):
            vllm.hot_load(model, server.url)
    assert vllm.serves_base({"id": "llama", "root": "/srv/Llama-3.2-1B"}, "meta-llama/Llama-3.2-1B")
    assert not vllm.serves_base({"id": "Llama-3.2-1B-Instruct"}, "meta-llama/Llama-3.2-1B")
