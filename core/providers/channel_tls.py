"""A per-job TLS certificate for report channels served straight from a machine's public IP (Lambda).

RunPod's channel goes through RunPod's HTTPS proxy, but a Lambda instance has only its IP: over plain HTTP the job
token and every row would cross the internet readable and forgeable. No CA will sign for an IP that is not known
until the instance boots, so the console issues a self-signed certificate itself, ships the key with the token (in
the provider's launch request, which travels over HTTPS to the provider), and pins the certificate's SHA-256
fingerprint in ``remote.json``. The console then talks to that one certificate only: hostname and CA checks have
nothing to add to an exact pin, and a machine that answers with any other certificate gets neither token nor push.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelCert:
    cert_pem: str
    key_pem: str
    sha256: str  # of the DER certificate, lower-case hex: urllib3's ``assert_fingerprint`` form


def issue_channel_cert(job_id: str, *, days: int = 60) -> ChannelCert:
    """A fresh P-256 key and a self-signed certificate naming the job (valid longer than any budget allows)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ftc-channel-{job_id}"[:64])])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return ChannelCert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
        sha256=hashlib.sha256(der).hexdigest(),
    )


def pinned_request(sha256: str):  # -> a requests.Session.request
    """``requests.request`` that accepts exactly the certificate with this fingerprint (and nothing else)."""
    import functools

    import requests
    from requests.adapters import HTTPAdapter

    class _Pinned(HTTPAdapter):
        # In the key of every pool, direct or through a proxy (HTTPS_PROXY): a pin set only on the adapter's own
        # pool manager would be missing from the proxy manager, which would then take any certificate.
        def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
            host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
            return host, {**pool, "assert_fingerprint": sha256}

    s = requests.Session()
    s.mount("https://", _Pinned())
    # The pin replaces CA and hostname checks (a self-signed certificate for an IP): urllib3 still checks it and
    # counts the connection verified. Given per request, since a CA bundle in the environment (REQUESTS_CA_BUNDLE)
    # would override the session's setting.
    return functools.partial(s.request, verify=False)
