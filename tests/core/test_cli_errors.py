"""The CLI's error contract: a ConsoleError is one line and its exit code; anything else (a bug) is one line and
exit 1, never a traceback, unless FTC_DEBUG asks for it."""

from __future__ import annotations

import pytest

from core import cli


def _boom(args):
    raise KeyError("hf_secret_in_a_header")


def test_an_unexpected_error_is_one_line_without_traceback_or_message(console_home, monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_jobs", _boom)
    monkeypatch.delenv("FTC_DEBUG", raising=False)
    assert cli.main(["jobs"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "hf_secret" not in err
    assert err.startswith("error: unexpected KeyError") and "FTC_DEBUG=1" in err


def test_ftc_debug_lets_the_traceback_through(console_home, monkeypatch):
    monkeypatch.setattr(cli, "cmd_jobs", _boom)
    monkeypatch.setenv("FTC_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["jobs"])


def test_bad_provider_setting_and_unknown_job_are_user_errors(console_home, capsys):
    assert cli.main(["status", "job_nope"]) == 1
    assert capsys.readouterr().err.strip() == "error: No job with id 'job_nope'."
    assert cli.main(["deploy", "/no/such.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_deploy_whose_launch_fails_exits_1(console_home, monkeypatch, tmp_path, capsys):
    import yaml

    from tests.core.test_jobs_estimate import config
    from tests.support.chat_rows import write_chat_jsonl

    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "none.toml"))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config(write_chat_jsonl(tmp_path / "chat.jsonl"))))
    assert cli.main(["deploy", str(cfg), "--provider", "runpod", "--gpu", "RTX 4090"]) == 1
    assert "failed (Launch failed: No RunPod API key is set." in capsys.readouterr().out


def test_an_unknown_status_filter_is_refused_not_an_empty_list(console_home, capsys):
    assert cli.main(["jobs", "--status", "finished"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'finished'" in err and "completed" in err


@pytest.mark.parametrize("command", ["estimate", "deploy"])
def test_a_gpu_count_under_one_is_a_usage_error(console_home, capsys, command):
    # estimate used to price -1 GPUs (negative hours); the usage error names the flag before anything is read.
    assert cli.main([command, "cfg.yaml", "--gpu-count", "-1"]) == 2
    assert "--gpu-count: takes a whole number of GPUs, 1 or more, not '-1'" in capsys.readouterr().err
