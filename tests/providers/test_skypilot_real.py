"""The SkyPilot provider against the real SkyPilot in ``.venv-sky`` (``make sky``): the generated task goes through
SkyPilot's own parser and schema, an offline dry run picks a machine from catalog files, and the fake ``sky`` used
by test_skypilot.py is checked to have the real signatures. Skipped where ``.venv-sky`` was not built."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from core.errors import LaunchError
from core.providers.skypilot import SKY_VENV, SkyPilotProvider

SKY_PY = SKY_VENV / "bin" / "python"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "sky_pkg" / "sky"

pytestmark = pytest.mark.skipif(not SKY_PY.exists(), reason="needs .venv-sky (run `make sky`)")


@pytest.fixture()
def real(monkeypatch):
    monkeypatch.setenv("FTC_SKY_PYTHON", str(SKY_PY))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return SkyPilotProvider(timeout_s=300)


def make_task(demo_home, provider, *, env=None, params=None, gpu_type="A100", gpu_count=2) -> tuple[Path, str]:
    from core.config import load_config_file
    from core.jobs import JobService
    from core.store import open_store

    svc = JobService(open_store(), provider_factory=lambda name: provider)
    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    job = svc.create(cfg, provider="skypilot", gpu_type=gpu_type, gpu_count=gpu_count,
                     params=params or {"num_nodes": 2, "use_spot": True, "disk_size": 300})
    req = svc._launch_request(svc.store.get_job(job.id), provider)
    req.env.update(env or {})
    path, _, cluster = provider.prepare(req)
    return path, cluster


def test_generated_task_passes_skypilots_parser_and_schema(demo_home, real):
    path, cluster = make_task(demo_home, real, env={"HF_TOKEN": "hf_x"})
    doc = real.driver("validate", str(path), env={"HF_TOKEN": "hf_x"})
    assert doc["name"] == cluster and doc["num_nodes"] == 2
    assert doc["accelerators"] == [{"A100": 2}] and doc["use_spot"] == [True]
    assert doc["file_mounts"] == [f"~/ftc/payload/{n}" for n in
                                  ("bootstrap.sh", "bundle.tar.gz", "dataset.jsonl", "model.tar.gz")]


def test_an_output_bucket_is_a_storage_mount_skypilot_accepts(demo_home, real):
    path, _ = make_task(demo_home, real, params={"output_bucket": "s3://team-models/ftc/"})
    doc = real.driver("validate", str(path))
    assert doc["storage_mounts"] == {"~/ftc/output-bucket": {"source": "s3://team-models", "mode": "MOUNT"}}
    script = (path.parent / "bootstrap.sh").read_text()
    assert "cp -R output/final/. ~/ftc/output-bucket/ftc/job_" in script


def test_a_task_skypilot_rejects_is_a_clear_launch_error(tmp_path, real):
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources:\n  accelerators: A100:2\n  gpus_per_node: 3\nrun: echo\n")
    with pytest.raises(LaunchError, match="SkyPilot refused the task"):
        real.driver("validate", str(bad))


SANDBOX = r"""
import os, sys
home = os.environ["HOME"]
for rel, text in {
    "lambda/vms.csv": "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
                      + "".join(f"gpu_2x_a100,A100,2.0,60.0,450.0,2.58,{r},,\n" for r in ("us-east-1", "us-west-1"))
                      + "gpu_1x_a100,A100,1.0,30.0,200.0,1.29,us-east-1,,\n",
    "common/accelerators.csv": "AcceleratorName,Clouds\nA100,\"['AWS', 'GCP', 'Lambda']\"\n",
}.items():
    path = os.path.join(home, ".sky/catalogs/v8", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write(text)
if "--catalog-only" not in sys.argv:
    from sky import check, global_user_state, skypilot_config
    from sky.clouds import cloud
    ws = skypilot_config.get_active_workspace()
    global_user_state.set_allowed_clouds(check._get_workspace_allowed_clouds(ws), ws)
    global_user_state.set_enabled_clouds(["Lambda"], cloud.CloudCapability.COMPUTE, ws)
"""


@pytest.mark.slow
def test_offline_dry_run_picks_a_machine_from_the_catalog(demo_home, real, tmp_path, monkeypatch):
    """No network: Lambda's catalog as files, Lambda marked enabled in SkyPilot's state (what `sky check` caches),
    and an ``rsync`` stub (SkyPilot checks that rsync exists before it would sync the file mounts)."""
    home, bin_dir = tmp_path / "skyhome", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    (bin_dir / "rsync").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "rsync").chmod(0o755)
    env = {**os.environ, "HOME": str(home)}
    subprocess.run([str(SKY_PY), "-c", SANDBOX], env=env, check=True, capture_output=True, timeout=300)
    path, cluster = make_task(demo_home, real, params={"num_nodes": 2, "cloud": "lambda", "disk_size": 300})
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    doc = real.driver("dryrun", str(path), "--cluster", cluster, "--idle-minutes", "2")
    chosen = doc["chosen"]
    assert (chosen["cloud"], chosen["instance_type"], chosen["region"]) == ("Lambda", "gpu_2x_a100", "us-east-1")
    assert chosen["accelerators"] == {"A100": 2} and chosen["cost_per_hour"] == pytest.approx(2 * 2.58)
    # No A100:8 in this catalog: SkyPilot's own refusal becomes NoCapacityError.
    path8, cluster8 = make_task(demo_home, real, gpu_count=8, params={"cloud": "lambda"})
    from core.errors import NoCapacityError

    with pytest.raises(NoCapacityError, match="no machine for this job"):
        real.driver("dryrun", str(path8), "--cluster", cluster8)


SIGNATURES = r"""
import importlib.util, inspect, json, sys
import sky, sky.exceptions
spec = importlib.util.spec_from_file_location("fake_sky", sys.argv[1] + "/__init__.py")
fake = importlib.util.module_from_spec(spec); spec.loader.exec_module(fake)
spec = importlib.util.spec_from_file_location("fake_exc", sys.argv[1] + "/exceptions.py")
fexc = importlib.util.module_from_spec(spec); spec.loader.exec_module(fexc)
out = {}
def names(fn):
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind is not p.VAR_KEYWORD and not p.name.startswith("_")]
from sky.client import sdk
for n in ("launch", "status", "queue", "tail_logs", "down", "cost_report", "api_status", "api_cancel", "get"):
    out[n] = [names(getattr(sky, n)), names(getattr(fake, n))]
spec = importlib.util.spec_from_file_location("fake_cat", sys.argv[1] + "/catalog.py")
fcat = importlib.util.module_from_spec(spec); spec.loader.exec_module(fcat)
from sky import catalog
out["catalog.list_accelerators"] = [names(catalog.list_accelerators), names(fcat.list_accelerators)]
from sky.catalog import common as cat_common
out["InstanceTypeInfo"] = [list(cat_common.InstanceTypeInfo._fields), list(fcat.InstanceTypeInfo._fields)]
out["client.sdk.enabled_clouds"] = [names(sdk.enabled_clouds), names(fake.enabled_clouds)]
out["Task.from_yaml_config"] = [names(sky.Task.from_yaml_config), names(fake.Task.from_yaml_config)]
for n, cls in vars(fexc).items():
    if isinstance(cls, type) and issubclass(cls, Exception):
        real = getattr(sky.exceptions, n)
        out["exc:" + n] = [[b.__name__ for b in real.__mro__[1:]], [b.__name__ for b in cls.__mro__[1:]]]
print(json.dumps(out))
"""


def test_the_fake_sky_has_skypilots_signatures():
    proc = subprocess.run([str(SKY_PY), "-c", SIGNATURES, str(FAKE)], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(found) >= 17
    for name, (real_sig, fake_sig) in found.items():
        assert real_sig == fake_sig, name


@pytest.fixture()
def api_server(tmp_path, monkeypatch):
    """SkyPilot's own API server, started locally by the first call (as a user's first `sky` command does), in a
    scratch HOME; stopped afterwards."""
    home = tmp_path / "sky-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    yield home
    subprocess.run([str(SKY_VENV / "bin" / "sky"), "api", "stop"], capture_output=True, timeout=120,
                   env={**os.environ, "HOME": str(home)})


@pytest.mark.slow
def test_driver_against_skypilots_api_server_with_no_cloud_set_up(demo_home, real, api_server):
    from core.errors import AuthError, ProviderUnavailable

    path, cluster = make_task(demo_home, real)
    with pytest.raises(AuthError, match="no cloud enabled"):
        real.validate_credentials()
    # Offline, SkyPilot first fails to fetch its catalog: retryable, and said so.
    with pytest.raises(ProviderUnavailable, match="not reachable"):
        real.driver("launch", str(path), "--cluster", cluster, "--wait", "120")
    subprocess.run([str(SKY_PY), "-c", SANDBOX, "--catalog-only"], check=True, capture_output=True, timeout=300)
    with pytest.raises(AuthError, match="sky check") as exc:
        real.driver("launch", str(path), "--cluster", cluster, "--wait", "120")
    assert "\x1b[" not in str(exc.value)
    # The same refusal followed the slow way: launch returns at once, status() reads the request's outcome.
    doc = real.driver("launch", str(path), "--cluster", cluster, "--wait", "0")
    assert doc["request_id"] and doc["done"] is False
    from core.providers.http_channel import job_from_name, save_remote

    save_remote(job_from_name(cluster), provider="skypilot", ref=cluster, request_id=doc["request_id"])
    for _ in range(60):
        st = real.status(cluster)
        if st.state != "provisioning":
            break
        time.sleep(2)
    assert st.state == "failed" and "cannot use any cloud account" in st.message
    assert real.driver("status", cluster, "--refresh", "--jobs") == {"ok": True, "clusters": []}
    assert real.cost(cluster) is None
    real.cancel(cluster)  # never launched: not an error
    assert real.list_owned() == []
