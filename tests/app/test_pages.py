"""Every screen renders with seeded data, with no exception, showing what the store holds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from core.store import open_store
from tests.support.plotly_spec import values
from tests.support.seed import seed_finished_job

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_every_page_renders_on_an_empty_console(console_home):
    for page in ("pages/home.py", "pages/dataset.py", "pages/training.py", "pages/deploy.py", "pages/monitor.py",
                 "pages/models.py"):
        at = app(page)
        assert at.title, page


def test_jobs_page_lists_seeded_jobs(console_home):
    ok = seed_finished_job(open_store())
    bad = seed_finished_job(open_store(), status="failed")
    at = app("pages/home.py")
    df = at.dataframe[0].value
    assert set(df["job"]) == {ok.id, bad.id}
    assert {label.split()[-1] for label in df["status"]} == {"completed", "failed"}  # badge icon, then status


def test_monitor_shows_status_charts_predictions_and_error_hint(console_home):
    job = seed_finished_job(open_store(), status="failed")
    at = app("pages/monitor.py")
    text = " ".join(m.value for m in at.markdown)
    assert "Failed" in text and "Lower training.batch_size" in text
    assert any("ran out of memory" in e.value for e in at.error)
    assert any(m.label == "Step" and m.value == "60 / 60" for m in at.metric)
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    loss_fig = next(f for f in figs if "Loss" in json.dumps(f["layout"].get("title", "")))
    ys = values(loss_fig["data"][0]["y"])
    assert len(ys) >= 60 and ys[-1] < ys[0]
    # the predictions browser opens on a sample and shows its generations, newest round first
    assert at.selectbox(key="monitor_sample").value == "line_0"
    (rounds,) = [m.value for m in at.markdown if "ftc-diff" in m.value]
    assert rounds.index("answer 0") < rounds.index("noise")


def test_models_page_shows_lineage(console_home):
    job = seed_finished_job(open_store())
    at = app("pages/models.py")
    assert at.dataframe[0].value["model"][0] == "base-model-finetuned-seed"
    text = " ".join(m.value for m in at.markdown)
    assert job.id in text and "seedhash"[:8] in text


def test_training_form_validates_and_saves(console_home):
    at = app("pages/training.py")
    assert any("valid" in s.value for s in at.success)
    at.text_input(key="cfgf.name").input("my-config").run()
    at.number_input(key="cfgf.training.learning_rate").set_value(0.0).run()
    assert any("learning_rate" in m.value for m in at.markdown), "the invalid field is named"
    at.number_input(key="cfgf.training.learning_rate").set_value(0.001).run()
    at.button(key="save_config").click().run()
    assert not at.exception
    saved = open_store().get_config("my-config")
    assert saved.config["training"]["learning_rate"] == 0.001


def test_console_start_imports_no_torch_transformers_or_cloud_sdk(console_home):
    code = f"""
import sys, json
sys.path.insert(0, {str(ROOT)!r})
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / 'streamlit_app.py')!r}, default_timeout=60)
at.run()
for p in ("pages/home.py", "pages/dataset.py", "pages/training.py", "pages/deploy.py", "pages/monitor.py", "pages/models.py"):
    at.switch_page(p); at.run()
    assert not at.exception, p
heavy = ["torch", "transformers", "trl", "peft", "datasets", "runpod", "kaggle", "huggingface_hub", "supabase", "sky"]
print(json.dumps([m for m in heavy if m in sys.modules]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_a_broken_store_is_a_message_not_a_stack_trace(console_home, monkeypatch):
    # The sidebar opens the store outside any page's guard; the router's guard catches what pages do not.
    from core.store import reset_store_cache

    monkeypatch.setenv("CONSOLE_STORE_URL", "mysql://admin:hunter2-xyz@db.example.com/console")
    reset_store_cache()
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("Unsupported store URL 'mysql://admin:***@db.example.com/console'" in e for e in errors), errors
    assert not any("hunter2" in e for e in errors)
