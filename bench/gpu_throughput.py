"""Benchmark (CUDA only): LoRA SFT throughput of a ~0.5B model at sequence length 2048, console trainer vs plain TRL.

    python bench/gpu_throughput.py                       # Qwen2.5-0.5B shape, batch 4, seq 2048
    python bench/gpu_throughput.py --batch 8 --steps 40 --peak-tflops 989

The model is built from a config (Qwen2.5-0.5B's shape: 24 layers, hidden 896, 14 heads / 2 KV heads, vocabulary
151,936, ~494M parameters) with random weights: nothing is downloaded. Rows are synthetic text long enough to fill
2048 tokens after truncation, so every step trains batch x 2048 tokens.

Both sides are the same SFTTrainer built by trainer.run.build_trainer (bf16, LoRA r=16 on every linear layer, Liger
kernels when installed); the console side has every callback on, the reporter flushing to a SQLite store and the
GPU sampler (nvidia-ml-py) at 1 s. Runs alternate so both see the same GPU state. Reported: wall time per step,
tokens/s, and MFU with LoRA counted as 4·N FLOPs per token (forward 2N, backward through the frozen weights 2N, no
weight gradients; attention's own FLOPs left out, as is usual for this figure), against the GPU's dense bf16 peak.

Without CUDA it refuses and exits 1 (``--smoke`` runs a tiny version on CPU to check the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets (SXM parts; PCIe parts are lower).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0,
                    "RTX 4090": 165.0, "A6000": 155.0}

QWEN_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
                rope_theta=1_000_000.0)
TINY = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True)


def build_model_dir(out: Path, shape: dict, dtype: str) -> int:
    """A Qwen2 model with random weights and a byte-level tokenizer, saved as a local model folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    words = [f"w{i}" for i in range(4000)]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([" ".join(random.Random(i).sample(words, 50)) for i in range(200)],
                            trainer=trainers.BpeTrainer(vocab_size=min(shape["vocab_size"], 8000),
                                                        special_tokens=["<pad>", "<|im_end|>"], show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>")
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = Qwen2Config(**shape, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, dtype=dtype)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def write_rows(path: Path, rows: int, words_per_row: int) -> None:
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"text": " ".join(f"w{rng.randrange(4000)}" for _ in range(words_per_row))}) + "\n")


def spec_for(tmp: Path, name: str, model_dir: Path, data: Path, args, cuda: bool, db: Path | None):
    from core.config import TrainingConfig
    from core.jobspec import JobSpec, SinkSpec

    cfg = TrainingConfig.model_validate({
        "name": f"gpu-bench-{name}",
        "model": {"name": str(model_dir), "torch_dtype": "bfloat16" if cuda else "float32",
                  "device_map": "cuda" if cuda else "cpu"},
        "data": {"train_path": str(data), "eval_split": 0, "max_length": args.seq},
        "training": {"method": "sft", "max_steps": args.steps, "batch_size": args.batch, "learning_rate": 1e-4,
                     "logging_steps": 1, "save_steps": 10**6, "bf16": cuda, "gradient_checkpointing": args.gc,
                     "optim": "adamw_torch_fused" if cuda else "adamw_torch"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "predictions": {"enabled": False},
    })
    out = tmp / name
    return JobSpec(job_id=f"job_gpu_{name}", config=cfg, dataset_path=str(data), output_dir=str(out),
                   sink=SinkSpec(kind="sqlite" if db else "none", path=str(db) if db else None),
                   spool_path=str(out / "spool.jsonl"), system_sample_s=1.0)


class Side:
    def __init__(self, name: str, spec, console: bool) -> None:
        from trainer.callbacks import RunState
        from trainer.report import NullReporter, Reporter, SQLiteSink
        from trainer.run import build_trainer

        self.name, self.spec, self.console, self.run = name, spec, console, RunState()
        self.reporter = Reporter(SQLiteSink(spec.sink.path, spec.job_id), spec.job_id, spec.spool_path) \
            if console else NullReporter()
        self.trainer = build_trainer(spec, self.reporter, self.run, with_console_callbacks=console).trainer
        self.per_step: list[float] = []

    def train_once(self, sync) -> None:
        from trainer.callbacks import SystemMonitor

        monitor = SystemMonitor(self.reporter, self.run, 1.0).start() if self.console else None
        sync()
        t0 = time.perf_counter()
        self.trainer.train()
        sync()
        self.per_step.append((time.perf_counter() - t0) / self.trainer.state.global_step)
        if monitor:
            monitor.stop()


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS.items():
        if key.lower() in name.lower():
            return value
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gc", action="store_true", help="gradient checkpointing")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when not in the built-in table")
    ap.add_argument("--smoke", action="store_true", help="a tiny model on CPU, to check this script without a GPU")
    args = ap.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("gpu_throughput: needs a CUDA GPU and none is visible (torch.cuda.is_available() is False); "
              "run it on a GPU machine, or pass --smoke for a CPU check of the script.", file=sys.stderr)
        return 1
    if args.smoke:
        args.seq, args.batch, args.steps, args.rounds = min(args.seq, 128), min(args.batch, 2), min(args.steps, 3), 1
    import transformers

    transformers.logging.set_verbosity_error()
    from core.store.records import JobRecord
    from core.store.sqlite import SQLiteStore
    from trainer import modeling

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gpu = torch.cuda.get_device_name(0) if cuda else "CPU (smoke)"
    with tempfile.TemporaryDirectory(prefix="ftc-gpu-bench-") as t:
        tmp = Path(t)
        model_dir = tmp / "model"
        n_params = build_model_dir(model_dir, TINY if args.smoke else QWEN_05B, "bfloat16" if cuda else "float32")
        data = tmp / "rows.jsonl"
        # ~1.3 tokens a word with this tokenizer: 2x the words leaves every row truncated to exactly --seq tokens
        write_rows(data, rows=args.batch * (args.steps + 2) * 2, words_per_row=args.seq * 2)
        db = tmp / "console.db"
        SQLiteStore(db).create_job(JobRecord(id="job_gpu_console", status="running"))
        plain = Side("plain TRL", spec_for(tmp, "plain", model_dir, data, args, cuda, None), console=False)
        ours = Side("console", spec_for(tmp, "console", model_dir, data, args, cuda, db), console=True)
        liger = modeling.use_liger(ours.spec.config)
        plain.train_once(sync), ours.train_once(sync)  # warm-up: kernels, allocator, Liger/compile caches
        plain.per_step.clear(), ours.per_step.clear()
        for r in range(args.rounds):
            for side in ((plain, ours) if r % 2 == 0 else (ours, plain)):
                side.train_once(sync)
        ours.reporter.finish(timeout=60)
        trainable = sum(p.numel() for p in ours.trainer.model.parameters() if p.requires_grad)

    tokens_per_step = args.batch * args.seq
    peak = peak_tflops(gpu, args.peak_tflops)
    print(f"gpu throughput: {gpu}; Qwen2-shaped model, {n_params / 1e6:.0f}M parameters ({trainable / 1e6:.1f}M "
          f"LoRA), seq {args.seq}, batch {args.batch}, bf16={cuda}, gradient checkpointing={args.gc}, Liger={liger}")
    for side in (plain, ours):
        step = statistics.median(side.per_step)
        tps = tokens_per_step / step
        mfu = f"{4 * n_params * tps / (peak * 1e12) * 100:.1f}%" if peak else "n/a (pass --peak-tflops)"
        print(f"  {side.name:<10} {step * 1e3:8.1f} ms/step  {tps:10.0f} tokens/s  MFU {mfu}")
    ratio = statistics.median(ours.per_step) / statistics.median(plain.per_step)
    print(f"  ratio console / plain TRL (time per step): {ratio:.3f}   target <= 1.03")
    return 0


if __name__ == "__main__":
    sys.exit(main())
