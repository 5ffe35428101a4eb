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


def test_the_bootstrap_serves_tls_with_the_certificate_from_its_env(tmp_path):
    """``ftc_channel.py serve`` as the Lambda bootstrap runs it: standard library only, the certificate and key
    from the env file; the console's pinned client pulls rows, and a console without the pin is refused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import requests

    from core.providers.channel_tls import issue_channel_cert
    from tests.fakes.machine import wait_for

    cert = issue_channel_cert("job_t")
    port = free_port()
    rd = ReportDir(tmp_path / "report")
    rd.append([{"kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.5}]}}])
    script = Path(__file__).resolve().parents[2] / "trainer" / "sink_http.py"
    env = {"PATH": os.environ["PATH"], "FTC_REPORT_TOKEN": "tok", "FTC_REPORT_TLS_CERT": cert.cert_pem,
           "FTC_REPORT_TLS_KEY": cert.key_pem}
    proc = subprocess.Popen([sys.executable, "-I", str(script), "--dir", str(rd.root), "serve", "--job-id", "job_t",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path)
    try:
        client = ChannelClient(f"https://127.0.0.1:{port}", "tok", pin=cert.sha256)

        def pulled():
            try:
                return client.entries(0)
            except ProviderError:
                return None

        doc = wait_for(pulled, 30, what="the TLS channel to serve")
        assert [e["payload"]["rows"][0]["loss"] for e in doc["entries"]] == [2.5]
        with pytest.raises(requests.exceptions.SSLError):  # CA-verified https: a self-signed certificate fails
            requests.get(f"https://127.0.0.1:{port}/v1/state", timeout=5)
        assert oct((rd.root / ".channel-key.pem").stat().st_mode)[-3:] == "600"
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_pin_holds_through_an_https_proxy(tmp_path, monkeypatch):
    """With HTTPS_PROXY set, requests talks through the proxy's own pool manager; the pin must hold there too."""
    from core.errors import ProviderUnavailable
    from core.providers.channel_tls import issue_channel_cert
    from tests.fakes.connect_proxy import ConnectProxy

    cert, other = issue_channel_cert("job_p"), issue_channel_cert("job_p")
    rd = ReportDir(tmp_path / "report")
    server = ChannelServer(rd, "tok", "job_p", host="127.0.0.1", port=free_port(),
                           tls=(cert.cert_pem, cert.key_pem)).start()
    proxy = ConnectProxy()
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(ProviderUnavailable, match="did not present the certificate"):
            ChannelClient(url, "tok", pin=other.sha256).cancel()
        assert proxy.connects and not (rd.root / "cancel").exists()  # through the proxy, and refused there
        ChannelClient(url, "tok", pin=cert.sha256).cancel()
        assert (rd.root / "cancel").exists()
    finally:
        proxy.close()
        server.shutdown()
        server.server_close()
