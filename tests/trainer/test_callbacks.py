"""Callback arithmetic on a controlled clock (throughput, ETA, budget lookahead), the chat template fallback,
checkpoint discovery and the launch command line. No training here."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

import trainer.callbacks as cb
from trainer.callbacks import MetricsCallback, RunState, StopCallback


class Recorder:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.jobs: list[dict] = []
        self.cancel = False

    def metrics(self, rows):
        self.rows += rows

    def job(self, **fields):
        self.jobs.append(fields)

    def cancel_requested(self):
        return self.cancel


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def state(step: int, max_steps: int = 10, epoch: float = 0.0):
    return SimpleNamespace(global_step=step, max_steps=max_steps, epoch=epoch)


def run_steps(m: MetricsCallback, clock: Clock, first: int, last: int, *, step_s: float, gap_s: float) -> None:
    for step in range(first, last + 1):
        m.on_step_begin(None, state(step - 1), None)
        clock.t += step_s
        m.on_step_end(None, state(step), None)
        clock.t += gap_s  # logging, evaluation, checkpoint saves, prediction rounds


def test_throughput_counts_step_time_only_and_eta_counts_wall_time(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(cb.time, "perf_counter", clock)
    rec = Recorder()
    m = MetricsCallback(rec, RunState(), samples_per_step=8)
    m.on_train_begin(None, state(0), None)
    run_steps(m, clock, 1, 4, step_s=0.5, gap_s=1.5)
    m.on_log(None, state(4, epoch=0.4), None, logs={"loss": 1.0, "learning_rate": 1e-3, "num_tokens": 4000})
    row = rec.rows[-1]
    assert row["samples_per_sec"] == pytest.approx(4 * 8 / 2.0)  # 4 steps of 0.5 s; the 1.5 s gaps excluded
    assert row["tokens_per_sec"] == pytest.approx(4000 / 2.0)
    eta = rec.jobs[-1]["estimate"]["eta_seconds"]
    # wall time since the first step began (gaps included) per step done, times the 6 steps left
    assert eta == pytest.approx(8.0 / 4 * 6)
    assert rec.jobs[-1]["progress"] == 0.4 and rec.jobs[-1]["current_step"] == 4

    run_steps(m, clock, 5, 6, step_s=0.25, gap_s=0)
    m.on_log(None, state(6, epoch=0.6), None, logs={"loss": 0.8, "num_tokens": 5000})
    assert rec.rows[-1]["samples_per_sec"] == pytest.approx(2 * 8 / 0.5)
    assert rec.rows[-1]["tokens_per_sec"] == pytest.approx(1000 / 0.5)


def test_after_a_resume_eta_and_tokens_count_this_run_only(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(cb.time, "perf_counter", clock)
    rec = Recorder()
    m = MetricsCallback(rec, RunState(), samples_per_step=4)
    m.on_train_begin(None, state(50, max_steps=100), None)
    clock.t += 30  # model loading, data skipping: not a training step
    run_steps(m, clock, 51, 52, step_s=1.0, gap_s=0)
    m.on_log(None, state(52, max_steps=100), None, logs={"loss": 0.5, "num_tokens": 200})  # TRL restarts at 0
    assert rec.rows[-1]["tokens_per_sec"] == pytest.approx(100.0)
    assert rec.jobs[-1]["estimate"]["eta_seconds"] == pytest.approx(1.0 * 48)


def test_eval_rows_merge_with_the_step_and_carry_no_throughput(monkeypatch):
    rec = Recorder()
    m = MetricsCallback(rec, RunState(), samples_per_step=4)
    m.on_train_begin(None, state(0), None)
    m.on_log(None, state(3), None, logs={"eval_loss": 0.7, "eval_runtime": 2.0})
    m.on_log(None, state(3), None, logs={"train_runtime": 9.0, "train_loss": 1.0})  # the summary: not a row
    assert len(rec.rows) == 1
    assert rec.rows[0]["eval_loss"] == 0.7 and "samples_per_sec" not in rec.rows[0] and rec.rows[0]["step"] == 3


def test_off_rank_zero_nothing_is_reported(monkeypatch):
    rec = Recorder()
    m = MetricsCallback(rec, RunState(is_main=False), samples_per_step=4)
    m.on_train_begin(None, state(0), None)
    m.on_log(None, state(1), None, logs={"loss": 1.0})
    assert rec.rows == [] and rec.jobs == []


def budget_guard(prior: float, intervals: list[float], save_s: float, budget: float = 10.0) -> StopCallback:
    # $1 a second; the cost so far is `prior` (plus the microseconds this test takes).
    run = RunState(cost_per_hour=3600.0, prior_cost_usd=prior, started_monotonic=time.monotonic())
    guard = StopCallback(Recorder(), run, budget_usd=budget, max_hours=None)
    guard._intervals.extend(intervals)
    guard._save_s = save_s
    return guard


def test_budget_guard_stops_when_the_next_step_and_a_save_would_pass_the_budget():
    assert budget_guard(9.0, [0.5, 0.6], save_s=0.2)._decide() == (None, None)  # 9.0 + 0.8 < 10
    reason, detail = budget_guard(9.0, [0.5, 0.9], save_s=0.2)._decide()  # 9.0 + 1.1 >= 10
    assert reason == "budget_stopped" and "$10.00 budget" in detail
    # a slow step seen recently (a prediction round) counts, not just the average
    assert budget_guard(8.0, [0.1] * 7 + [1.95], save_s=0.1)._decide()[0] == "budget_stopped"


def test_time_limit_and_cancel():
    run = RunState(started_monotonic=time.monotonic() - 3599.5)
    guard = StopCallback(Recorder(), run, budget_usd=None, max_hours=1.0)
    guard._intervals.append(1.0)
    assert guard._decide()[0] == "budget_stopped"
    rec = Recorder()
    guard = StopCallback(rec, RunState(), budget_usd=None, max_hours=None)
    assert guard._decide() == (None, None)
    rec.cancel = True
    assert guard._decide()[0] == "cancelled"
    guard = StopCallback(Recorder(), RunState(sigterm=True), budget_usd=None, max_hours=None)
    assert guard._decide()[0] == "cancelled"


def test_a_stop_saves_a_checkpoint_and_ends_training():
    run = RunState(sigterm=True)
    guard = StopCallback(Recorder(), run, budget_usd=None, max_hours=None)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    guard.on_step_end(None, state(3), control)
    assert control.should_save and control.should_training_stop
    assert run.stop_reason == "cancelled"


def test_fallback_chat_template_for_a_model_without_one(demo_assets, tmp_path):
    import shutil

    from core.config import FALLBACK_CHAT_TEMPLATE, TrainingConfig
    from trainer.modeling import load_tokenizer

    model_dir = tmp_path / "base"
    shutil.copytree(demo_assets / "tiny-llama", model_dir)
    (model_dir / "chat_template.jinja").unlink(missing_ok=True)
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    tok_cfg.pop("chat_template", None)
    (model_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    cfg = TrainingConfig.model_validate({"name": "t", "model": {"name": str(model_dir)},
                                         "data": {"train_path": "x.jsonl"}})
    tok, source = load_tokenizer(cfg)
    assert source == "fallback" and tok.chat_template == FALLBACK_CHAT_TEMPLATE
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
                                   tokenize=False)
    assert text == f"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>{tok.eos_token}\n"
    tok, source = load_tokenizer(cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"})}))
    assert source == "config"
    tok, source = load_tokenizer(TrainingConfig.model_validate(
        {"name": "t", "model": {"name": str(demo_assets / "tiny-llama")}, "data": {"train_path": "x.jsonl"}}))
    assert source == "model"


def test_latest_checkpoint_skips_one_cut_short(tmp_path):
    from trainer.checkpoints import latest_checkpoint, remove_incomplete

    root = tmp_path / "checkpoints"
    for step, complete in ((4, True), (8, True), (12, False)):
        d = root / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (root / "checkpoint-16").mkdir()
    (root / "checkpoint-16" / "trainer_state.json").write_text('{"global_st')  # torn write
    assert latest_checkpoint(tmp_path) == str(root / "checkpoint-8")
    assert sorted(remove_incomplete(tmp_path)) == [str(root / "checkpoint-12"), str(root / "checkpoint-16")]
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-4", "checkpoint-8"]
    assert latest_checkpoint(tmp_path / "nothing-here") is None


def test_launch_command_lines():
    from trainer.launch import trainer_argv

    assert trainer_argv("py", "job.json") == ["py", "-m", "trainer", "--config", "job.json"]
    assert trainer_argv("py", "job.json", nproc=2, resume=True) == [
        "py", "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        "-m", "trainer", "--config", "job.json", "--resume"]
    assert trainer_argv("py", "j", nproc=8, nnodes=2, node_rank=1, master_addr="10.0.0.1")[3:8] == [
        "--nproc_per_node=8", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29500"]
    with pytest.raises(ValueError):
        trainer_argv("py", "j", nnodes=2)


def test_method_info_marks_orpo_experimental():
    from core.config import METHOD_FORMATS, METHOD_INFO

    assert set(METHOD_INFO) == set(METHOD_FORMATS)
    assert [m for m, info in METHOD_INFO.items() if info["experimental"]] == ["orpo"]
    assert "experimental" in METHOD_INFO["orpo"]["trl_trainer"]


def test_padding_free_and_packing_are_sft_only():
    from core.config import TrainingConfig, parse_config
    from core.errors import ConfigError

    base = {"name": "t", "model": {"name": "m"}, "data": {"train_path": "x.jsonl"}}
    assert TrainingConfig.model_validate({**base, "training": {"padding_free": True}}).training.padding_free
    with pytest.raises(ConfigError) as exc:
        parse_config({**base, "training": {"method": "dpo", "padding_free": True}})
    assert ("training.padding_free", "padding-free batches are for SFT only in TRL; turn it off for DPO") in \
        exc.value.problems
