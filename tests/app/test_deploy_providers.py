"""The Deploy screen lists Kaggle and Hugging Face with their capabilities and reads their offers."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def deploy_page(demo_home, monkeypatch) -> AppTest:
    from core.config import load_config_file

    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "HF_TOKEN", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", "/nonexistent")
    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    open_store().save_config("demo-sft", cfg.model_dump(mode="json"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/deploy.py")
    at.run()
    return at


def test_cards_show_kaggle_and_hugging_face_with_greyed_reasons(demo_home, monkeypatch):
    at = deploy_page(demo_home, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "**Kaggle**" in text and "**Hugging Face**" in text
    assert "Kaggle hands out a notebook's log when its session ends" in text
    assert "A Job or Space is one machine" in text
    captions = " ".join(c.value for c in at.caption)
    assert "Reports through: stdout" in captions

    at.button(key="deploy_use_kaggle").click().run()
    assert not at.exception, [e.value for e in at.exception]
    gpu = at.selectbox(key="deploy_gpu_kaggle")
    assert gpu.options == ["T4 · 16 GB · free"]
    assert any(m.value == "free" for m in at.metric)

    at.button(key="deploy_use_huggingface").click().run()
    assert not at.exception, [e.value for e in at.exception]
    # No token: the offers call fails with what to do, shown once, no stack trace.
    assert any("HF_TOKEN" in e.value for e in at.error), [e.value for e in at.error]
