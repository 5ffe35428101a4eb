"""The generated bootstrap script, run for real by bash on a local 'machine' with a stub trainer (fast), and the
bundle. The whole path with the real trainer is tests/providers/test_runpod_e2e.py."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from core.bootstrap import (
    build_bootstrap, build_bundle, deadline_from_budget, default_fetch, encode_for_env, env_start_command,
)
from core.config import parse_config
from core.errors import LaunchError
from core.jobspec import JobSpec, SinkSpec
from core.presets import demo_config_dict
from tests.fakes.machine import ROOT, LocalMachine, free_port, wait_for

STUB_TRAINER = r'''
import json, os, signal, sys, time
from pathlib import Path
from trainer.sink_http import PREFIX, ReportDir

spec = json.loads(Path(sys.argv[sys.argv.index("--config") + 1]).read_text())
mode = os.environ.get("STUB_MODE", "ok")
http = spec["sink"]["kind"] == "http"
rd = ReportDir(os.environ["FTC_REPORT_DIR"])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))

def emit(kind, payload):
    if http:
        rd.append([{"kind": kind, "payload": payload}])
    else:
        print(PREFIX + json.dumps({"kind": kind, "payload": payload}), flush=True)

if mode == "silent-crash":
    sys.exit(3)
rows = Path(spec["dataset_path"]).read_text().splitlines()
emit("status", {"status": "running", "fields": {}})
emit("metrics", {"rows": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]})
if http:
    rd.heartbeat({"current_step": 2, "progress": 0.5})
if mode == "hang":
    while not stop:
        time.sleep(0.1)
    emit("status", {"status": "cancelled", "fields": {"reason": "sigterm"}})
    sys.exit(0)
final = Path(spec["output_dir"]) / "final"
final.mkdir(parents=True, exist_ok=True)
(final / "adapter_model.safetensors").write_text(f"weights for {len(rows)} rows")
emit("status", {"status": "completing", "fields": {"artifact_path": str(final), "progress": 1.0}})
'''


@pytest.fixture()
def stub_bundle(tmp_path) -> Path:
    src = tmp_path / "stub-src"
    (src / "trainer").mkdir(parents=True)
    (src / "core").mkdir()
    (src / "core" / "__init__.py").write_text("")
    (src / "trainer" / "__init__.py").write_text("")
    (src / "trainer" / "__main__.py").write_text(STUB_TRAINER)
    (src / "trainer" / "sink_http.py").write_text((ROOT / "trainer" / "sink_http.py").read_text())
    (src / "trainer" / "requirements.txt").write_text("")
    return build_bundle(tmp_path / "stub-bundle.tar.gz", root=src)


def make_spec(tmp_path: Path, kind: str, *, model: str = "org/some-model") -> JobSpec:
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n')
    cfg = parse_config(demo_config_dict(model, str(data)))
    return JobSpec(job_id="job_test1", config=cfg, dataset_path=str(data), output_dir=str(tmp_path / "out"),
                   sink=SinkSpec(kind=kind))


def test_bundle_is_deterministic_and_carries_the_trainer(tmp_path):
    a = build_bundle(tmp_path / "a.tar.gz")
    b = build_bundle(tmp_path / "b.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    names = tarfile.open(a).getnames()
    assert {"trainer/__main__.py", "trainer/sink_http.py", "trainer/requirements.txt", "core/config.py",
            "core/jobspec.py", "core/datasets/formats.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith(("pages/", "tests/"))]


def test_trainer_requirements_leave_torch_to_the_image():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "trainer" / "requirements.txt").read_text().splitlines()]
    names = {ln.split(">")[0].split("=")[0].split("<")[0].strip().lower() for ln in lines if ln}
    assert "torch" not in names
    assert {"transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub"} <= names


def test_deadline_from_budget():
    assert deadline_from_budget(2.0, 4.0) == pytest.approx(1800.0)
    assert deadline_from_budget(2.0, 4.0, max_hours=0.25) == pytest.approx(900.0)
    assert deadline_from_budget(None, 4.0, max_hours=1) == pytest.approx(3600.0)
    assert deadline_from_budget(5.0, 0.0) is None  # free machines have no money deadline


def test_script_is_valid_bash_and_carries_no_secret(tmp_path, stub_bundle, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    spec = make_spec(tmp_path, "http")
    script = build_bootstrap(spec, provider="runpod", fetch=default_fetch(spec, stub_bundle), gpu_count=2,
                             release_cmd='runpodctl remove pod "$RUNPOD_POD_ID"', deadline_s=3600,
                             price_per_hour=1.5)
    path = tmp_path / "boot.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert "set -euo pipefail" in script and "trap ftc_on_exit EXIT" in script
    assert "hf_secret_value_123" not in script
    assert "torch.distributed.run --nnodes 1 --nproc_per_node 2" in script
    cmd = env_start_command()
    assert '"' not in cmd and "\\" not in cmd  # RunPod's SDK pastes it into GraphQL unescaped
    assert set(encode_for_env(script)) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@pytest.mark.parametrize("change, message", [
    (dict(kind="stdout"), "pushed"),
    (dict(drop="dataset"), r"missing \['dataset'\]"),
    (dict(hf_repo="not a repo"), "repo id"),
])
def test_bad_requests_are_refused_with_the_fix(tmp_path, stub_bundle, change, message):
    spec = make_spec(tmp_path, change.get("kind", "http"))
    fetch = default_fetch(spec, stub_bundle)
    fetch.pop(change.get("drop", "nothing"), None)
    with pytest.raises(LaunchError, match=message):
        build_bootstrap(spec, provider="runpod", fetch=fetch, hf_repo=change.get("hf_repo"))


def test_local_model_folder_must_travel(tmp_path, stub_bundle):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    spec = make_spec(tmp_path, "http", model=str(model))
    with pytest.raises(LaunchError, match="model"):
        build_bootstrap(spec, provider="runpod", fetch=default_fetch(spec, stub_bundle))


def _http_machine(tmp_path, stub_bundle, *, mode="ok", **kw):
    spec = make_spec(tmp_path, "http")
    port = free_port()
    script = build_bootstrap(spec, provider="fake", fetch=default_fetch(spec, stub_bundle), channel_port=port,
                             release_cmd='touch "$FTC_WORK/../RELEASED"', linger_s=60, **kw)
    m = LocalMachine(tmp_path / "machine", {"FTC_REPORT_TOKEN": "tok", "STUB_MODE": mode})
    m.start_script(script)
    return spec, m, port


def _console_round(client, job_id, after):
    from core.errors import ProviderUnavailable
    from core.providers.http_channel import sync

    try:
        return sync(client, job_id, after)[0]
    except ProviderUnavailable:
        return []


def test_http_bootstrap_takes_pushed_files_reports_and_releases_after_the_console_collected(
        tmp_path, stub_bundle, console_home):
    from core.providers.http_channel import ChannelClient, save_remote

    spec, m, port = _http_machine(tmp_path, stub_bundle)
    save_remote(spec.job_id, push={"bundle": str(stub_bundle), "dataset": spec.dataset_path})
    client = ChannelClient(f"http://127.0.0.1:{port}", "tok")
    got: list[dict] = []
    after = 0

    def collect():
        nonlocal after
        batch = _console_round(client, spec.job_id, after)
        got.extend(batch)
        after = max([after] + [e["seq"] for e in batch])
        return not m.alive

    try:
        wait_for(collect, 60, 0.3, "the machine to finish and release itself")
    finally:
        m.kill()
    assert (m.root / "workspace" / "RELEASED").exists(), m.output()
    kinds = [(e["kind"], (e["payload"].get("status"))) for e in got if e["kind"] != "heartbeat"]
    assert ("status", "running") in kinds and ("status", "completing") in kinds
    metrics = [r for e in got if e["kind"] == "metrics" for r in e["payload"]["rows"]]
    assert [r["step"] for r in metrics] == [1, 2]
    art = [e["payload"]["artifact_path"] for e in got if e["kind"] == "job"]
    assert art and (Path(art[-1]) / "adapter_model.safetensors").read_text() == "weights for 3 rows"
    assert json.loads((m.work / "report" / "state.json").read_text())["exit_code"] == 0
    # A second wrong-token request is refused.
    with pytest.raises(Exception):
        ChannelClient(f"http://127.0.0.1:{port}", "wrong").state()


def test_unreported_crash_is_reported_with_the_step_and_the_machine_released(tmp_path, stub_bundle):
    spec = make_spec(tmp_path, "stdout")
    fetch = {"bundle": {"source": "inline", "local": str(stub_bundle)},
             "dataset": {"source": "path", "path": spec.dataset_path}}
    script = build_bootstrap(spec, provider="fake", fetch=fetch, release_cmd='touch "$FTC_WORK/../RELEASED"')
    m = LocalMachine(tmp_path / "machine", {"STUB_MODE": "silent-crash"}).start_script(script)
    assert m.wait(60) == 3
    out = m.output()
    lines = [json.loads(x.split("@@FTC ", 1)[1]) for x in out.splitlines() if x.startswith("@@FTC ")]
    failed = [x for x in lines if x["kind"] == "status"]
    assert failed and failed[-1]["payload"]["status"] == "failed"
    assert "while training (exit status 3)" in failed[-1]["payload"]["fields"]["reason"]
    assert (m.root / "workspace" / "RELEASED").exists()


def test_restarted_container_does_not_train_twice(tmp_path, stub_bundle):
    spec = make_spec(tmp_path, "stdout")
    fetch = {"bundle": {"source": "inline", "local": str(stub_bundle)},
             "dataset": {"source": "inline", "local": spec.dataset_path}}
    script = build_bootstrap(spec, provider="fake", fetch=fetch,
                             release_cmd='echo release >> "$FTC_WORK/../RELEASES"; exit 0')
    m = LocalMachine(tmp_path / "machine")
    m.start_script(script)
    assert m.wait(60) == 0
    # The release "failed" to remove the machine and the provider restarts the container: it must only release.
    m.start_script(script)
    wait_for(lambda: (m.root / "workspace" / "RELEASES").read_text().count("release") == 2, 30)
    m.kill()
    assert m.output().count('"completing"') == 1


def test_deadline_watchdog_stops_the_trainer_and_releases(tmp_path, stub_bundle):
    spec = make_spec(tmp_path, "stdout")
    fetch = {"bundle": {"source": "inline", "local": str(stub_bundle)},
             "dataset": {"source": "inline", "local": spec.dataset_path}}
    script = build_bootstrap(spec, provider="fake", fetch=fetch, deadline_s=10, stop_grace_s=5,
                             release_cmd='touch "$FTC_WORK/../RELEASED"')
    m = LocalMachine(tmp_path / "machine", {"STUB_MODE": "hang"}).start_script(script)
    # 0 when the trainer handled SIGTERM, 143 when it was still starting (a loaded machine): both stop in time.
    assert m.wait(60) in (0, 143)
    out = m.output()
    statuses = [json.loads(x.split("@@FTC ", 1)[1])["payload"]["status"]
                for x in out.splitlines() if x.startswith("@@FTC ") and "status" in x]
    terminal = [s for s in statuses if s in ("budget_stopped", "cancelled", "failed", "completing")]
    # The watchdog's budget_stopped lands first; a later "cancelled" from the trainer cannot undo a terminal state.
    assert terminal[0] == "budget_stopped"
    assert "completing" not in terminal
    assert (m.root / "workspace" / "RELEASED").exists()


def test_the_job_spec_file_is_owner_only(tmp_path):
    # In team mode the spec's sink carries the job's ingest token; other local users must not read it.
    spec = make_spec(tmp_path, "supabase").model_copy(update={"sink": SinkSpec(kind="supabase", token="ftcjob_x:a")})
    path = tmp_path / "job.json"
    path.write_text("{}")
    path.chmod(0o644)
    spec.write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert JobSpec.read(path).sink.token == "ftcjob_x:a"


def test_a_team_job_keeps_the_providers_channel_and_its_token_out_of_the_script(tmp_path, stub_bundle):
    spec = make_spec(tmp_path, "supabase")
    spec = spec.model_copy(update={"sink": SinkSpec(kind="supabase", url="https://p.supabase.co",
                                                    token="job-token-secret:anon-key")})
    script = build_bootstrap(spec, provider="runpod", fetch=default_fetch(spec, stub_bundle), channel="http")
    assert "FTC_CHANNEL=http" in script and "job-token-secret" not in script
    with pytest.raises(LaunchError, match="'http' or 'stdout'"):
        build_bootstrap(spec, provider="runpod", fetch=default_fetch(spec, stub_bundle))  # no channel named
    with pytest.raises(LaunchError, match="does not go with"):
        build_bootstrap(make_spec(tmp_path, "http"), provider="hf", fetch={}, channel="stdout")


def test_the_trainer_takes_its_sink_token_from_the_secret_env(tmp_path, monkeypatch):
    import trainer.report
    from trainer.__main__ import make_reporter

    seen = {}

    def fake_make_sink(kind, job_id, **kw):
        seen.update(kind=kind, **kw)
        return trainer.report.NullSink()

    monkeypatch.setattr(trainer.report, "make_sink", fake_make_sink)
    monkeypatch.setenv("FTC_SINK_TOKEN", "job-token:anon")
    spec = make_spec(tmp_path, "supabase").model_copy(update={"spool_path": str(tmp_path / "spool.jsonl")})
    reporter = make_reporter(spec, is_main=True)
    try:
        assert seen["kind"] == "supabase" and seen["token"] == "job-token:anon"
    finally:
        reporter.finish(timeout=5)
