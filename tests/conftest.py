"""Shared fixtures. The demo model is built once per session (about a minute on 2 cores) and shared."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ARTIFACTS = ROOT / "test-artifacts"

# One torch thread per process: the suite runs trainers beside a console server and Chromium on 2 cores, where
# torch's spinning OpenMP threads would otherwise collapse under oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# pg_server / pg_db: a real PostgreSQL server with the Supabase migrations applied (team-mode tests).
pytest_plugins = ["tests.support.postgres"]


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> Path:
    """$CONSOLE_HOME/demo built once by the project's own code: tiny Llama, tokenizer, datasets, configs."""
    cached = os.environ.get("FTC_TEST_DEMO_DIR")
    if cached and (Path(cached) / "tiny-llama" / "model.safetensors").exists():
        return Path(cached)
    from core.demo import build_demo

    d = tmp_path_factory.mktemp("demo-assets") / "demo"
    build_demo(d)
    return d


@pytest.fixture()
def console_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty $CONSOLE_HOME and store for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CONSOLE_HOME", str(home))
    monkeypatch.delenv("CONSOLE_STORE_URL", raising=False)
    from core.store import reset_store_cache

    reset_store_cache()
    yield home
    reset_store_cache()
    kill_job_processes(home)


def kill_job_processes(home: Path) -> None:
    """Local trainers run in their own process group so they outlive a console restart; a test's must not
    outlive the test (they would slow every later test on a 2-core machine)."""
    import signal

    for pid_file in (home / "jobs").glob("*/pid"):
        try:
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture()
def demo_home(console_home, demo_assets) -> Path:
    """A fresh $CONSOLE_HOME whose demo/ folder holds the session's demo assets (configs rewritten to it)."""
    from core.demo import build_datasets, write_demo_configs

    demo = console_home / "demo"
    demo.mkdir()
    (demo / "tiny-llama").symlink_to(demo_assets / "tiny-llama", target_is_directory=True)
    files = build_datasets(demo / "data")
    write_demo_configs(demo, demo / "tiny-llama", files)
    return console_home


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory, demo_assets):
    """A $CONSOLE_HOME holding one completed demo SFT job (one epoch, ~45 s on 2 cores) and its registered model,
    trained once per session by the real local provider. Tests that only read it share it; use ``finished_home``
    to point the store at it."""
    from types import SimpleNamespace

    from core.demo import build_datasets, write_demo_configs
    from core.store import open_store, reset_store_cache

    home = tmp_path_factory.mktemp("finished-demo") / "home"
    demo = home / "demo"
    demo.mkdir(parents=True)
    (demo / "tiny-llama").symlink_to(demo_assets / "tiny-llama", target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSOLE_HOME", str(home))
        mp.delenv("CONSOLE_STORE_URL", raising=False)
        reset_store_cache()
        from core.config import load_config_file
        from core.jobs import JobService

        cfg = load_config_file(write_demo_configs(demo, demo / "tiny-llama", build_datasets(demo / "data"))["sft"])
        cfg.training.num_epochs = 1
        cfg.predictions.sample_count = 4
        svc = JobService(open_store())
        job = svc.wait(svc.deploy(cfg, provider="local").id, timeout_s=600, interval_s=0.5)
        assert job.status == "completed", job.reason
        model = open_store().find_model_by_job(job.id)
        reset_store_cache()
    return SimpleNamespace(home=home, job_id=job.id, model_id=model.id, base=str(demo / "tiny-llama"))


@pytest.fixture()
def finished_home(finished_demo, monkeypatch):
    """Point $CONSOLE_HOME and the store at the session's finished demo job."""
    from core.store import reset_store_cache

    monkeypatch.setenv("CONSOLE_HOME", str(finished_demo.home))
    monkeypatch.delenv("CONSOLE_STORE_URL", raising=False)
    reset_store_cache()
    yield finished_demo
    reset_store_cache()


@pytest.fixture()
def full_model(finished_home, tmp_path, monkeypatch):
    """A registered full fine-tune (no adapter) in a fresh store of its own. A merged model is exactly what a full
    fine-tune leaves behind, a transformers folder of safetensors whose weights differ from the base, so it is made
    by merging the session's trained adapter."""
    from core.export import merge_adapter
    from core.store import open_store, reset_store_cache
    from core.store.records import ModelRecord

    lora = open_store().get_model(finished_home.model_id)
    folder = tmp_path / "full-ft" / "final"
    merge_adapter(lora, folder)
    (folder / "merge_info.json").unlink()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CONSOLE_HOME", str(home))
    reset_store_cache()
    rec = ModelRecord(id="model_full", name="tiny-llama-full", source="training_job", base_model=finished_home.base,
                      artifact_path=str(folder), metrics={"final_loss": 1.5}, config={"lora": {"enabled": False}},
                      metadata={"training_method": "sft"})
    open_store().add_model(rec)
    yield rec
    reset_store_cache()
