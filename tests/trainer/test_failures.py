"""Error classification: the exceptions the libraries really raise become a type, a readable reason and a hint."""

from __future__ import annotations

import errno
import json

import pytest

from trainer.failures import classify


def raised(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        return exc
    raise AssertionError("expected an exception")


def test_cuda_out_of_memory():
    import torch

    c = classify(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                                        "capacity of 23.6 GiB of which 1.2 GiB is free."))
    assert c.error_type == "cuda_oom"
    assert c.message.startswith("The GPU ran out of memory: CUDA out of memory")
    for fix in ("batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "4bit", "max_length"):
        assert fix in c.hint


def test_oom_wrapped_by_another_error_is_still_oom():
    import torch

    def inner():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    def outer():
        try:
            inner()
        except RuntimeError as exc:
            raise RuntimeError("training step failed") from exc

    assert classify(raised(outer)).error_type == "cuda_oom"


def test_cpu_out_of_memory_names_the_machine():
    c = classify(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                              "you tried to allocate 123456789 bytes."))
    assert c.error_type == "out_of_memory" and c.message.startswith("The machine ran out of memory")


def test_gated_model():
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    url = "https://huggingface.co/meta-llama/Llama-2-7b-hf/resolve/main/config.json"
    exc = GatedRepoError("403 Client Error. Cannot access gated repo for url " + url,
                         response=httpx2.Response(403, request=httpx2.Request("GET", url)))
    wrapped = OSError("You are trying to access a gated repo. Make sure to have access to it.")
    wrapped.__cause__ = exc
    for e in (exc, wrapped):
        c = classify(e)
        assert c.error_type == "gated_model" and "licence" in c.hint and "token" in c.hint


def test_missing_model_from_transformers(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from transformers import AutoTokenizer

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: the constant itself, or each download retries for ~45 s.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    c = classify(raised(lambda: AutoTokenizer.from_pretrained(str(tmp_path / "no-such-model"))))
    assert c.error_type == "model_not_found" and "model.name" in c.hint
    c = classify(raised(lambda: AutoTokenizer.from_pretrained("nobody-at-all/no-such-model-anywhere")))
    assert c.error_type in ("hub_unreachable", "model_not_found")


def test_broken_chat_template_fails_before_the_model_loads(demo_assets):
    from core.config import TrainingConfig
    from trainer.modeling import load_tokenizer

    cfg = TrainingConfig.model_validate({
        "name": "t", "model": {"name": str(demo_assets / "tiny-llama"), "chat_template": "{% for m in messages %}"},
        "data": {"train_path": "x.jsonl"},
    })
    c = classify(raised(lambda: load_tokenizer(cfg)))
    assert c.error_type == "chat_template"
    assert "model.chat_template" in c.message and "model.chat_template" in c.hint


def test_missing_chat_template_from_transformers(demo_assets):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_assets / "tiny-llama")
    tok.chat_template = None
    exc = raised(lambda: tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False))
    assert classify(exc).error_type == "chat_template"


def test_rows_the_validator_flags_are_skipped_and_a_file_of_only_those_fails_naming_a_line(tmp_path, capsys):
    from core.config import TrainingConfig
    from trainer.data import prepare

    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(6)]
    rows[3]["messages"][1]["content"] = 42
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = TrainingConfig.model_validate({"name": "t", "model": {"name": "m"},
                                         "data": {"train_path": str(path), "eval_split": 0}})
    data = prepare(cfg, path)
    assert len(data.train) == 5 and data.skipped == 1
    assert "a3" not in json.dumps(data.train) and "a4" in json.dumps(data.train)
    assert "skipped 1 rows the validator flags (first: line 4: messages[1].content must be a string" \
        in capsys.readouterr().out

    for r in rows:
        r["messages"][1]["content"] = 42
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    c = classify(raised(lambda: prepare(cfg, path)))
    assert c.error_type == "bad_dataset"
    assert c.message == ("No row of the dataset can be trained on; line 1: messages[1].content must be a string "
                         "(the message text), not a number.")
    assert "Dataset page" in c.hint


def test_arrow_type_error_is_a_bad_row():
    from datasets import Dataset

    exc = raised(lambda: Dataset.from_list([{"text": "a"}, {"text": {"nested": 1}}]))
    assert classify(exc).error_type == "bad_dataset"


@pytest.mark.parametrize("exc", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                 "data/12: file write failed"),
    RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                 "\"No space left on device\" })"),
])
def test_disk_full(exc):
    c = classify(exc)
    assert c.error_type == "disk_full" and c.message.startswith("The disk is full")
    assert "save_total_limit" in c.hint


def test_quantization_without_cuda_is_refused_before_loading(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from core.config import TrainingConfig
    from trainer.modeling import load_model

    for mode in ("4bit", "8bit"):
        cfg = TrainingConfig.model_validate({
            "name": "q", "model": {"name": str(tmp_path / "not-even-a-model"), "device_map": "auto"},
            "data": {"train_path": "x.jsonl"}, "quantization": {"mode": mode},
        })
        # The model path does not exist: reaching from_pretrained would raise a different error.
        c = classify(raised(lambda: load_model(cfg)))
        assert c.error_type == "config"
        assert c.message == f"{mode} quantization (QLoRA) needs a CUDA GPU and none is visible on this machine."
        assert "quantization.mode" in c.hint


def test_unknown_error_keeps_its_type_and_first_line():
    c = classify(ValueError("something odd\nwith a second line"))
    assert c.error_type == "ValueError" and c.message == "something odd" and "traceback" in c.hint
