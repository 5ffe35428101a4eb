"""The machine-side report channel (trainer/sink_http.py) against the console's client (core/providers/http_channel)."""

from __future__ import annotations

import hashlib

import pytest

from core.errors import AuthError, ProviderError
from core.providers.http_channel import ChannelClient
from tests.fakes.machine import free_port
from trainer.sink_http import ChannelServer, ReportDir, make_http_sink


def test_trainer_run_by_hand_serves_its_rows_and_waits_for_the_console(tmp_path, monkeypatch):
    monkeypatch.delenv("FTC_REPORT_SERVED", raising=False)
    monkeypatch.setenv("FTC_REPORT_HOST", "127.0.0.1")
    monkeypatch.setenv("FTC_REPORT_LINGER_S", "30")
    port = free_port()
    sink = make_http_sink("job_a", token="tok", port=port, root=tmp_path / "report")
    sink.write([{"seq": 7, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.0}]}},
                {"seq": 8, "kind": "status", "payload": {"status": "completing", "fields": {}}}])
    sink.heartbeat({"current_step": 1})
    client = ChannelClient(f"http://127.0.0.1:{port}", "tok")
    doc = client.entries(0)
    # The channel numbers entries itself (gap-free from 1) and keeps the trainer's number as tseq.
    assert [(e["seq"], e["tseq"], e["kind"]) for e in doc["entries"]] == [(1, 7, "metrics"), (2, 8, "status")]
    assert doc["heartbeat"] == {"current_step": 1} and doc["last_seq"] == 2
    assert client.entries(2)["entries"] == []  # asking for what follows 2 acknowledges 2
    client.cancel()
    assert sink.cancel_requested() is True
    sink.close()  # settled: returns without waiting out the linger
    with pytest.raises(ProviderError):
        client.state()  # the server is gone


def test_wrong_token_and_damaged_pushes_are_refused(tmp_path):
    rd = ReportDir(tmp_path / "report")
    good = b'{"text": "hello"}\n'
    rd.want("dataset", hashlib.sha256(good).hexdigest(), len(good))
    port = free_port()
    server = ChannelServer(rd, "tok", "job_b", host="127.0.0.1", port=port).start()
    try:
        with pytest.raises(AuthError):
            ChannelClient(f"http://127.0.0.1:{port}", "nope").state()
        client = ChannelClient(f"http://127.0.0.1:{port}", "tok")
        assert client.state()["missing"] == ["dataset"]
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b'{"text": "hellO"}\n')
        with pytest.raises(ProviderError, match="damaged"):
            client.push("dataset", bad)
        with pytest.raises(ProviderError, match="no file named 'secrets' is expected") as err:
            client.push("secrets", bad)  # a name the machine does not expect
        assert not err.value.retryable
        ok = tmp_path / "ok.jsonl"
        ok.write_bytes(good)
        client.push("dataset", ok)
        assert client.state()["missing"] == [] and (rd.root / "files" / "dataset").read_bytes() == good
    finally:
        server.shutdown()
        server.server_close()
