"""The Deploy screen with SkyPilot (streamlit AppTest): its settings form, the common GPUs offered when SkyPilot's
catalog is out of reach, and a multi-node launch through the driver against the fake ``sky``."""

from __future__ import annotations

import yaml

from tests.pages.test_deploy_page import page, saved_config  # noqa: F401 - fixture
from tests.providers.test_skypilot import fake  # noqa: F401 - fixture


def test_skypilot_settings_offers_and_a_multi_node_launch(saved_config, fake, monkeypatch):  # noqa: F811
    import core.credentials as creds
    from core.store import open_store

    monkeypatch.setattr(creds, "_session", {})
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", "/nonexistent")
    at = page()
    at.session_state["deploy_provider"] = "skypilot"
    at.run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "**SkyPilot (any cloud)** :green-badge[selected]" in text
    gpu = at.selectbox(key="deploy_gpu_skypilot")
    assert any(str(o).startswith("H100 · 80 GB") for o in gpu.options)
    gpu.set_value(next(i for i, o in enumerate(gpu.options) if str(o).startswith("H100 ·"))).run()
    at.number_input(key="deploy_count_skypilot").set_value(4).run()
    at.number_input(key="deploy_p_skypilot_num_nodes").set_value(2).run()
    at.checkbox(key="deploy_p_skypilot_use_spot").check().run()
    at.text_input(key="deploy_p_skypilot_cloud").input("gcp").run()
    at.button(key="deploy_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = open_store().list_jobs()[0]
    assert job.provider == "skypilot" and job.status == "provisioning", job.reason
    config = fake.read()["launched"][-1]["config"]
    assert config["resources"] == {"accelerators": "H100:4", "use_spot": True, "disk_size": 256, "cloud": "gcp"}
    assert config["num_nodes"] == 2 and fake.read()["launched"][-1]["cluster"] == job.provider_ref
    assert yaml.safe_dump(config)  # what the driver handed to SkyPilot is plain YAML data
