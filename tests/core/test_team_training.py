"""Team mode end to end with the real trainer: a job deployed on this machine from a signed-in user's team
workspace trains the tiny demo model, reports every row through the supabase sink (the `supabase` client over
HTTP, the PostgREST shim, the ingest functions with its job token) into the real database, and the console
settles it and registers the model in the team."""

from __future__ import annotations

import pytest

from core.config import load_config_file
from core.jobspec import JobSpec
from core.paths import job_dir
from core.store.postgres import PostgresStore
from core.team_jobs import TeamJobService
from core.team_settings import TeamSettings
from tests.support.team_db import make_team, make_user
from trainer.report import make_sink
from trainer.sink_supabase import TokenRefused

pytestmark = [pytest.mark.postgres, pytest.mark.training, pytest.mark.slow]


def test_local_job_in_team_mode_reports_through_the_ingest_functions(demo_home, pg_db, local_supabase):
    settings = TeamSettings(url=local_supabase.url, anon_key=local_supabase.anon_key, db_url=pg_db)
    alice = make_user(pg_db, "alice@example.com")
    red = make_team(pg_db, alice, "Red")
    base = PostgresStore(pg_db)
    store = base.as_user(alice, red)
    try:
        cfg = load_config_file(demo_home / "demo" / "sft.yaml")
        cfg.training.max_steps = 12
        svc = TeamJobService(store, team=settings)
        job = svc.deploy(cfg, provider="local")
        job = svc.wait(job.id, timeout_s=900, interval_s=1.0)
        assert job.status == "completed", (job.reason, store.get_errors(job.id))
        metrics = store.get_metrics(job.id)
        losses = [r["loss"] for r in metrics if r.get("loss") is not None]
        assert len(losses) >= 2 and job.current_step == 12
        assert store.get_predictions(job.id), "prediction rows reached the team database"
        model = store.find_model_by_job(job.id)
        assert model is not None and model.team_id == red
        calls = {path for _, path in local_supabase.rest.calls}
        assert {"/rpc/ingest_metrics", "/rpc/ingest_status", "/rpc/ingest_heartbeat"} <= calls
        # The token the machine held is dead now that the job ended.
        spec = JobSpec.read(job_dir(job.id) / "job.json")
        sink = make_sink(spec.sink.kind, job.id, url=spec.sink.url, token=spec.sink.token)
        with pytest.raises(TokenRefused, match="has ended"):
            sink.heartbeat({"current_step": 13})
        sink.close()
    finally:
        base.close()


def test_runpod_job_in_team_mode_reports_with_its_token_from_the_pods_secret_env(demo_home, pg_db, local_supabase,
                                                                                 tmp_path, monkeypatch):
    """The trainer on a (fake) RunPod pod reports to the team database itself, with the job token it got through
    the pod's env; the pod's own channel still carries the files and the adapter, and the pod removes itself."""
    from core import lifecycle as L
    from core.jobs import ServiceSettings
    from core.providers.runpod import RunPodProvider
    from tests.fakes.machine import free_port
    from tests.fakes.runpod_api import FakeRunPod
    from tests.providers.test_runpod_e2e import poll_to_end, small_demo

    pods = FakeRunPod(machines_root=tmp_path / "pods", install=True).start()
    monkeypatch.setenv("RUNPOD_API_BASE_URL", pods.url)
    settings = TeamSettings(url=local_supabase.url, anon_key=local_supabase.anon_key, db_url=pg_db)
    alice = make_user(pg_db, "alice@example.com")
    red = make_team(pg_db, alice, "Red")
    base = PostgresStore(pg_db)
    store = base.as_user(alice, red)
    port = free_port()
    prov = RunPodProvider({"api_key": pods.api_key}, proxy_url="http://127.0.0.1:{port}")
    try:
        svc = TeamJobService(store, team=settings, provider_factory=lambda name: prov,
                             settings=ServiceSettings(provisioning_timeout_s=600, cancel_grace_s=60))
        job = svc.create(small_demo(demo_home, 4), provider="runpod", gpu_type="RTX 4090", budget_usd=50.0,
                         params={"cloud_type": "COMMUNITY", "port": port})
        job = svc.launch(job.id)
        ref = job.provider_ref
        machine = pods.machines.get(ref)
        job, _ = poll_to_end(svc, job.id, live=lambda j: not j.is_terminal)
        log = machine.output() if machine else ""
        assert job.status == L.COMPLETED, (job.reason, log[-3000:])
        assert machine.env.get("FTC_SINK_TOKEN") == JobSpec.read(job_dir(job.id) / "job.json").sink.token
        shipped = (machine.work / "job.json").read_text()
        assert "FTC_SINK_TOKEN" not in log and machine.env["FTC_SINK_TOKEN"].split(":")[0] not in shipped
        calls = {path for _, path in local_supabase.rest.calls}
        assert {"/rpc/ingest_metrics", "/rpc/ingest_status"} <= calls  # the trainer itself reported
        losses = [r["loss"] for r in store.get_metrics(job.id) if r.get("loss") is not None]
        assert losses and store.get_predictions(job.id)
        model = store.find_model_by_job(job.id)
        assert model is not None and model.team_id == red
        assert ref in pods.terminated
    finally:
        pods.kill_all()
        pods.stop()
        base.close()
