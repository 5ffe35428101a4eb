import pytest

from core.config import parse_config, load_config_file, dump_yaml
from core.errors import ConfigError, InputError
from core.presets import preset, demo_config_dict


def base(**over):
    d = {"name": "x", "model": {"name": "Qwen/Qwen2.5-0.5B"}, "data": {"train_path": "d.jsonl"}}
    for k, v in over.items():
        d.setdefault(k, {}).update(v)
    return d


def problems(d):
    with pytest.raises(ConfigError) as ei:
        parse_config(d)
    return dict(ei.value.problems)


def test_defaults_are_valid():
    cfg = parse_config(base())
    assert cfg.training.method == "sft" and cfg.lora.r == 16 and cfg.predictions.sample_count == 5
    assert cfg.predictions.sample_frequency == "epoch" and cfg.predictions.max_new_tokens == 128


def test_presets_validate():
    assert preset("small").model.name == "Qwen/Qwen2.5-0.5B"
    large = preset("large")
    assert large.quantization.mode == "4bit" and large.lora.r == 64 and large.training.gradient_accumulation_steps == 4
    with pytest.raises(ConfigError, match="Unknown preset"):
        preset("huge")


@pytest.mark.parametrize("over,field,fragment", [
    ({"training": {"bf16": True, "fp16": True}}, "training.fp16", "cannot both"),
    ({"data": {"eval_split": 0}, "predictions": {"sample_frequency": "eval"}}, "predictions.sample_frequency", "eval_split"),
    ({"predictions": {"sample_frequency": "steps"}}, "predictions.step_interval", "step_interval"),
    ({"quantization": {"mode": "4bit"}, "model": {"device_map": "cpu"}}, "model.device_map", "CUDA"),
    ({"training": {"optim": "paged_adamw_32bit"}}, "training.optim", "quantized"),
    ({"quantization": {"mode": "4bit"}, "lora": {"enabled": False}}, "lora.enabled", "turn LoRA on"),
    ({"training": {"method": "dpo", "packing": True}}, "training.packing", "SFT only"),
    ({"training": {"method": "dpo"}, "data": {"format": "chat"}}, "data.format", "DPO cannot learn"),
])
def test_cross_field_rules_name_field_and_fix(over, field, fragment):
    p = problems(base(**over))
    assert field in p, p
    assert fragment in p[field]


def test_eval_split_percentage_gets_a_fix():
    p = problems(base(data={"eval_split": 10}))
    assert "use 0.1" in p["data.eval_split"]


def test_unknown_field_is_named():
    p = problems(base(training={"learning_rat": 0.1}))
    assert "training.learning_rat" in p and "unknown field" in p["training.learning_rat"]


def test_missing_model_is_named():
    d = base()
    del d["model"]
    assert "model" in problems(d)


def test_load_yaml_resolves_relative_paths(tmp_path):
    (tmp_path / "data.jsonl").write_text('{"text": "hi"}\n')
    cfg = parse_config(base())
    cfg.data.train_path = "data.jsonl"
    f = tmp_path / "c.yaml"
    f.write_text(dump_yaml(cfg))
    loaded = load_config_file(f)
    assert loaded.data.train_path == str(tmp_path / "data.jsonl")


def test_unparseable_file_is_input_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("model: [unclosed")
    with pytest.raises(InputError):
        load_config_file(f)
    with pytest.raises(InputError):
        load_config_file(tmp_path / "missing.yaml")
    binary = tmp_path / "model.safetensors"  # the wrong file picked: not text at all
    binary.write_bytes(b"\x80\x81\xfe\xff" * 64)
    with pytest.raises(InputError, match="cannot be read as UTF-8 text"):
        load_config_file(binary)


def test_demo_preset_is_valid():
    cfg = parse_config(demo_config_dict("/m", "/d.jsonl", "dpo"))
    assert cfg.training.method == "dpo" and cfg.training.sft_weight == 1.0
