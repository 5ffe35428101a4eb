"""AppTests of the Jobs, Monitor and Compare screens on seeded jobs: what the tables and charts hold."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.monitor_seed import SPIKE_LOSS, add_steps, seed_job
from tests.support.plotly_spec import charts, values

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


@pytest.fixture()
def seeded(console_home):
    from core.store import open_store

    s = open_store()
    jobs = {
        "gpu": seed_job(s, steps=3_000, total_steps=5_000, name="gpu-run", samples=6, rounds=5, budget=3.0,
                        spike_step=1_234, eval_every=100),
        "cpu": seed_job(s, steps=400, status="completed", gpu=False, name="cpu-run", lr=1e-3, samples=4, rounds=3,
                        tokens_per_sample=128),
        "failed": seed_job(s, steps=30, total_steps=200, status="failed", name="oom-run", batch=64),
    }
    s.update_job(jobs["failed"].id, reason="The GPU ran out of memory: CUDA out of memory.")
    s.add_error(jobs["failed"].id, "cuda_oom", "The GPU ran out of memory: tried to allocate 2 GiB", "Traceback...",
                "Lower training.batch_size and raise gradient_accumulation_steps.")
    return s, jobs


def app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def trace(fig: dict, name: str) -> dict:
    return next(t for t in fig["data"] if t["name"] == name)


def table(at: AppTest, column: str) -> list:
    """The dataframes that have ``column``, in page order (read-only tables carry no key in AppTest)."""
    return [d.value for d in at.dataframe if column in d.value.columns]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_jobs_list_shows_each_job_and_filters(seeded):
    s, jobs = seeded
    at = app()
    df = at.dataframe[0].value
    assert len(df) == 3
    row = df[df["job"] == jobs["gpu"].id].iloc[0]
    assert row["status"].endswith("running") and row["progress"] == 60 and row["step"] == "3000/5000"
    assert row["gpu"] == "A100 80GB" and row["cost"] == "$0.75" and row["model"] == "Qwen/Qwen2.5-0.5B"
    cpu = df[df["job"] == jobs["cpu"].id].iloc[0]
    assert cpu["status"].endswith("completed") and cpu["duration"] == "3m 20s"
    at.multiselect(key="home_status").set_value(["failed"]).run()
    assert list(at.dataframe[0].value["job"]) == [jobs["failed"].id]
    at.multiselect(key="home_status").set_value([]).run()
    at.text_input(key="home_search").input("cpu-run").run()
    assert list(at.dataframe[0].value["job"]) == [jobs["cpu"].id]


def test_monitor_of_a_long_gpu_run(seeded):
    s, jobs = seeded
    job = jobs["gpu"]
    at = app("pages/monitor.py", monitor_job=job.id)
    assert metric(at, "Step") == "3000 / 5000"
    assert any("A100 80GB" in m.value and "gpu-run" in m.value for m in at.markdown)
    assert metric(at, "Spent (budget $3.00)") == "$0.75"
    assert next(m for m in at.metric if m.label.startswith("Spent")).proto.help == "$2.25 of the budget left"
    assert at.get("progress")[0].proto.value == 60
    assert metric(at, "GPU memory (of 80 GB)").endswith(" GB") and metric(at, "Predictions") == "30"
    rows = s.get_predictions(job.id)
    last = [r for r in rows if r["step"] == max(r["step"] for r in rows)]
    assert metric(at, "ROUGE-L") == f"{sum(r['rouge_l'] for r in last) / len(last):.3g}"
    figs = charts(at)
    assert {"chart_loss", "chart_lr", "chart_throughput", "chart_grad_norm", "chart_gpu_memory", "chart_gpu_load",
            "chart_cost", "chart_scores", "chart_sample_trend"} <= set(figs)
    # no WebGL trace anywhere: the page stays clear of the browser's WebGL context limit
    assert {t["type"] for f in figs.values() for t in f["data"]} == {"scatter"}
    loss = trace(figs["chart_loss"], "train loss")
    x, y = values(loss["x"]), values(loss["y"])
    assert len(x) <= 2000 and y.max() == SPIKE_LOSS and 1234 in x and x[-1] == 3000
    assert list(values(trace(figs["chart_loss"], "eval loss")["x"])) == list(range(100, 3001, 100))
    assert {t["name"] for t in figs["chart_gpu_load"]["data"]} == {"utilisation %", "temperature °C"}
    cost = figs["chart_cost"]
    assert list(values(trace(cost, "budget")["y"])) == [3.0, 3.0]
    proj = trace(cost, "projection")
    assert list(values(proj["x"])) == [3000, 5000] and values(proj["y"])[0] == pytest.approx(0.75)
    scores = figs["chart_scores"]
    assert len(values(trace(scores, "ROUGE-L")["x"])) == 5
    # predictions browser: worst and most regressed samples, the regressed one opened with its diff
    worst, best, regressed = table(at, "drop")
    assert worst.iloc[0]["sample"] == "s000" and regressed.iloc[0]["sample"] == "s001"
    assert regressed.iloc[0]["drop"] == pytest.approx(0.75)
    assert at.selectbox(key="monitor_sample").value == "s001"
    assert len(values(trace(figs["chart_sample_trend"], "ROUGE-L")["x"])) == 5
    (rounds,) = [m.value for m in at.markdown if "ftc-diff" in m.value]
    diffs = rounds.split('<div class="ftc-diff">')[1:]
    assert len(diffs) == 5 and '<span class="ftc-insert"' in diffs[0] and "banana" in diffs[0]
    assert '<span class="ftc-delete"' in diffs[0]
    steps = [int(x.split("</b>")[0]) for x in rounds.split("step <b>")[1:]]
    assert steps == sorted((r["step"] for r in rows if r["sample_id"] == "s001"), reverse=True)  # newest first

    # the next refresh reads only what the trainer wrote since
    jm = next(iter(at.session_state["_job_monitors"].values()))
    read = jm.metrics.rows_read
    add_steps(s, job, 3_001, 25)
    at.run()
    assert not at.exception
    jm = next(iter(at.session_state["_job_monitors"].values()))
    assert jm.metrics.rows_read == read + 26
    assert metric(at, "Step") == "3025 / 5000"
    assert values(trace(charts(at)["chart_loss"], "train loss")["x"])[-1] == 3025


def test_monitor_stop_asks_for_confirmation(seeded):
    s, jobs = seeded
    job = jobs["gpu"]
    at = app("pages/monitor.py", monitor_job=job.id)
    at.button(key="monitor_stop").click().run()
    assert s.get_job(job.id).cancel_requested is False
    assert any("Stop and keep checkpoint?" in w.value for w in at.warning)
    at.button(key="monitor_confirm_no").click().run()
    assert not at.warning and s.get_job(job.id).cancel_requested is False
    at.button(key="monitor_stop").click().run()
    at.button(key="monitor_confirm_yes").click().run()
    assert s.get_job(job.id).cancel_requested is True


def test_monitor_of_a_failed_cpu_job_shows_the_error_and_its_hint(seeded, tmp_path):
    s, jobs = seeded
    log = tmp_path / "train.log"
    log.write_text("".join(f"log line {i}\n" for i in range(1, 201)))
    s.update_job(jobs["failed"].id, log_path=str(log), provider="runpod", provider_ref="pod-abc123")
    at = app("pages/monitor.py", monitor_job=jobs["failed"].id)
    assert any("**runpod** `pod-abc123` · A100 80GB" in m.value for m in at.markdown)  # the pod id beside the provider
    (tail,) = [c.value for c in at.code if "log line" in c.value]
    assert tail.splitlines()[-1] == "log line 200" and "log line 100\n" not in tail  # the tail, not the whole log
    errors = [e.value for e in at.error]
    assert "The GPU ran out of memory: CUDA out of memory." in errors
    assert any("cuda_oom" in e and "tried to allocate 2 GiB" in e for e in errors)
    assert any("Lower training.batch_size" in m.value for m in at.markdown)
    assert not {"monitor_stop", "monitor_cancel"} & {b.key for b in at.button}  # no stop buttons on a finished job
    at = app("pages/monitor.py", monitor_job=jobs["cpu"].id)
    figs = charts(at)
    assert "chart_gpu_memory" not in figs
    cpu = trace(figs["chart_cpu"], "CPU %")
    assert len(values(cpu["x"])) == 400 and metric(at, "ETA") == "done"


def test_compare_runs(seeded):
    s, jobs = seeded
    ids = [jobs["gpu"].id, jobs["cpu"].id]
    s.update_job(ids[0], estimate={"cost_usd": 1.5, "cost_range": {"low": 1.2, "mid": 1.5, "high": 2.1}})
    at = app("pages/compare.py", compare_jobs=ids)
    assert at.multiselect(key="compare_pick").value == ids
    fig = charts(at)["compare_loss"]
    assert [t["name"] for t in fig["data"]] == ["gpu-run train", "gpu-run eval", "cpu-run train", "cpu-run eval"]
    assert values(trace(fig, "cpu-run train")["x"])[-1] == 400
    (results,) = table(at, "best eval loss")
    assert list(results["run"]) == ["gpu-run", "cpu-run"] and list(results["steps"]) == [3000, 400]
    assert list(results["cost"]) == ["$0.75", "$0.00"]
    assert list(results["estimated at launch"]) == ["$1.20 – $2.10", "—"]
    best_eval = min(r["eval_loss"] for r in s.get_metrics(jobs["gpu"].id) if r["eval_loss"] is not None)
    assert results.iloc[0]["best eval loss"] == pytest.approx(best_eval)
    assert results.iloc[1]["ROUGE-L"] == pytest.approx(s_last_round_mean(s, jobs["cpu"].id))
    (diff,) = table(at, "setting")
    lr = diff[diff["setting"] == "training.learning_rate"].iloc[0]
    assert lr["gpu-run"] == "0.0002" and lr["cpu-run"] == "0.001"
    assert "lora.r" not in set(diff["setting"])  # identical settings are hidden
    at.radio(key="compare_axis").set_value("tokens").run()
    fig = charts(at)["compare_loss"]
    # tokens seen = steps x 16 samples a step x tokens per sample (256 and 128)
    assert values(trace(fig, "gpu-run train")["x"])[-1] == pytest.approx(3000 * 16 * 256)
    assert values(trace(fig, "cpu-run train")["x"])[-1] == pytest.approx(400 * 16 * 128)


def s_last_round_mean(s, job_id):
    rows = s.get_predictions(job_id)
    last = max(r["step"] for r in rows)
    at = [r["rouge_l"] for r in rows if r["step"] == last]
    return sum(at) / len(at)


def test_a_queued_job_has_no_data_yet_on_the_monitor_and_in_compare(seeded):
    from core.store.records import JobRecord, new_id

    s, jobs = seeded
    queued = s.create_job(JobRecord(id=new_id("job"), provider="local", status="queued", config_name="waiting",
                                    config={"training": {"num_epochs": 2}}))
    at = app("pages/monitor.py", monitor_job=queued.id)
    assert metric(at, "Step") == "0 / ?" and metric(at, "ETA") == "—" and metric(at, "Predictions") == "0"
    assert not charts(at)
    captions = " ".join(c.value for c in at.caption)
    assert "No loss logged yet." in captions and "No predictions yet" in captions
    assert at.button(key="monitor_cancel")  # a queued job can still be cancelled
    at = app("pages/compare.py", compare_jobs=[queued.id, jobs["cpu"].id])
    (results,) = table(at, "best eval loss")
    assert list(results["run"]) == ["waiting", "cpu-run"] and list(results["steps"]) == [0, 400]
    assert [t["name"] for t in charts(at)["compare_loss"]["data"]] == ["cpu-run train", "cpu-run eval"]


def test_cost_chart_and_header_hold_the_launch_estimate(seeded):
    s, jobs = seeded
    job = jobs["gpu"]
    s.update_job(job.id, estimate={"cost_usd": 1.5, "cost_range": {"low": 1.2, "mid": 1.5, "high": 2.1},
                                   "price_check": {"message": "RunPod bills $1.99/h, not the $1.80/h quoted."}})
    at = app("pages/monitor.py", monitor_job=job.id)
    band = trace(charts(at)["chart_cost"], "launch estimate")
    assert band["fill"] == "toself" and sorted(set(band["y"])) == [1.2, 2.1] and max(band["x"]) == 5000
    projected = next(m for m in at.metric if m.label == "Projected at the end")
    assert "pace" in projected.proto.help and "$1.20 – $2.10" in projected.proto.help
    assert any("not the $1.80/h quoted" in w.value for w in at.warning)


def test_a_finished_job_opens_its_model_on_models_and_playground(seeded):
    from core.registry import build_model_record

    s, jobs = seeded
    earlier = seed_job(s, steps=20, status="completed", gpu=False, name="earlier-run")
    unregistered = seed_job(s, steps=20, status="completed", gpu=False, name="registering")
    other = s.add_model(build_model_record(s, earlier))
    model = s.add_model(build_model_record(s, jobs["cpu"]))
    at = app("pages/monitor.py", monitor_job=jobs["cpu"].id, models_selected=other.id)
    assert not any(b.key == "monitor_stop" for b in at.button)
    at.button(key="monitor_to_models").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="models_pick").value == model.id  # not the model the Models screen showed last
    # once a job ended, the estimator's error is under the header: what it said against what happened
    from core.estimate import record_outcome

    s.update_job(jobs["cpu"].id, estimate={"time": {"train_hours": {"low": 0.02, "mid": 0.05, "high": 0.1}}})
    outcome = record_outcome(s, jobs["cpu"].id)
    at = app("pages/monitor.py", monitor_job=jobs["cpu"].id, playground_model=other.id)
    (note,) = [c.value for c in at.caption if c.value.startswith("Estimate vs actual")]
    assert f"time error {outcome['time_error_pct']:+.0f}%" in note
    at.button(key="monitor_to_playground").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="playground_pick").value == model.id
    # a completed job whose model is not in the registry yet says so, and offers no dead link
    at = app("pages/monitor.py", monitor_job=unregistered.id)
    assert not any(b.key in ("monitor_to_models", "monitor_to_playground") for b in at.button)
    assert any("being registered" in c.value for c in at.caption)


def test_a_stopped_job_resumes_from_its_checkpoint_or_says_why_not(seeded):
    import json as _json

    from core.paths import artifacts_dir

    s, jobs = seeded
    job = jobs["failed"]
    at = app("pages/monitor.py", monitor_job=job.id)
    at.button(key="monitor_resume").click().run()
    assert any("saved no checkpoint" in e.value for e in at.error)  # said on the page, not raised
    assert s.get_job(job.id).status == "failed"

    ckpt = artifacts_dir() / job.id / "checkpoints" / "checkpoint-30"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(_json.dumps({"global_step": 30}))
    at.button(key="monitor_resume").click().run()
    assert s.get_job(job.id).status in ("queued", "provisioning", "running")
