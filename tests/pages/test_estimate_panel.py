"""The estimate panel the training and deploy screens show, rendered by Streamlit's own test runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chat_rows import write_chat_jsonl

LLAMA7 = str(Path(__file__).parents[1] / "core" / "fixtures" / "model_configs" / "llama-2-7b-hf")


def _panel(cfg: dict, provider: str, gpu: str, price: float, budget: float) -> None:
    from core.config import parse_config
    from pages._estimate_panel import render_estimate

    render_estimate(parse_config(cfg), provider=provider, gpu=gpu, price_per_hour=price, budget_usd=budget)


def _job_panel(estimate: dict) -> None:
    from types import SimpleNamespace

    from pages._estimate_panel import render_job_estimate

    render_job_estimate(SimpleNamespace(estimate=estimate))


@pytest.fixture()
def cfg(tmp_path) -> dict:
    return {"name": "panel", "model": {"name": LLAMA7},
            "data": {"train_path": str(write_chat_jsonl(tmp_path / "chat.jsonl")), "max_length": 512},
            "training": {"bf16": True, "batch_size": 2, "gradient_checkpointing": True},
            "quantization": {"mode": "4bit"}, "predictions": {"enabled": False}}


def test_panel_shows_fit_time_cost_and_budget_warning(console_home, cfg):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_panel, kwargs={"cfg": cfg, "provider": "runpod", "gpu": "RTX 4090",
                                               "price": 0.5, "budget": 0.01}).run(timeout=300)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model"] == "6.74B params"
    assert metrics["Memory on RTX 4090"].endswith(" GB")
    assert metrics["Time"] != "—" and metrics["Cost"].startswith("$")
    assert any("fits" in m.value and "RTX 4090" in m.value for m in at.markdown)
    assert any("budget" in w.value for w in at.warning)  # $0.01 cannot pay for the run


def test_job_panel_shows_price_mismatch_and_estimate_error():
    from streamlit.testing.v1 import AppTest

    estimate = {
        "price_check": {"quoted": 0.34, "reported": 0.69, "difference_pct": 102.9,
                        "message": "The quote was $0.340/h but the provider reports $0.690/h."},
        "outcome": {"actual_hours": 1.0, "estimated_hours": {"low": 0.5, "mid": 0.8, "high": 1.2},
                    "time_error_pct": -20.0, "actual_cost_usd": 0.69, "cost_error_pct": -60.6},
    }
    at = AppTest.from_function(_job_panel, kwargs={"estimate": estimate}).run(timeout=60)
    assert not at.exception
    assert [w.value for w in at.warning] == [estimate["price_check"]["message"]]
    caption = " ".join(c.value for c in at.caption)
    assert "time error -20%" in caption and "cost error -61%" in caption and "ran 1h 00m" in caption
