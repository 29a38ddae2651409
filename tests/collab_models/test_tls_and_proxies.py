"""https model servers with a private CA, and proxies honoured by every request alike."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collab_models.arms import build_arm
from collab_models.base import ModelError
from collab_models.transport import CA_BUNDLE_ENV
from tests.collab_models.conftest import MODEL
from tests.collab_models.vllm_fake import FakeVLLM, Script

HISTORY = [{"role": "user", "content": "Hello"}]
CA_KEY_USAGE = dict.fromkeys(
    ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
     "encipher_only", "decipher_only"),
    False,
) | {"digital_signature": True, "key_cert_sign": True, "crl_sign": True}  # fmt: skip


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed CA and a certificate it signed for 127.0.0.1, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Lab test CA"))
        .issuer_name(_name("Lab test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**CA_KEY_USAGE), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_bytes = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "ca": _pem(folder / "ca.pem", ca.public_bytes(pem)),
        "cert": _pem(folder / "server.pem", cert.public_bytes(pem)),
        "key": _pem(folder / "server.key", key_bytes),
    }


@pytest.fixture
async def https_fake(private_ca: dict[str, str]) -> AsyncIterator[FakeVLLM]:
    async with FakeVLLM(
        tps=0, ssl_certfile=private_ca["cert"], ssl_keyfile=private_ca["key"]
    ) as fake:
        yield fake


def _arm(url: str):
    return build_arm({"name": "base", "endpoints": [url], "model": MODEL, "retries": 0})


async def test_a_reply_streams_over_https_with_the_private_ca_configured(
    https_fake: FakeVLLM, private_ca: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CA_BUNDLE_ENV, private_ca["ca"])
    https_fake.script(Script(text="Hello over TLS"))
    assert https_fake.url.startswith("https://")
    stream = _arm(https_fake.url).reply(HISTORY)
    assert "".join([d async for d in stream]) == "Hello over TLS"
    assert stream.record is not None
    assert stream.record.endpoint == https_fake.url


async def test_without_the_ca_the_reply_fails_with_a_message_naming_the_setting(
    https_fake: FakeVLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    with pytest.raises(ModelError) as failure:
        async for _ in _arm(https_fake.url).reply(HISTORY):
            pass
    assert "not trusted" in str(failure.value)
    assert CA_BUNDLE_ENV in str(failure.value)
    assert https_fake.chat_requests() == []


async def test_a_proxy_in_the_environment_carries_streams_and_probes_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeVLLM(tps=0) as target, FakeVLLM(tps=0) as proxy:
        # The proxy is a second fake: it answers requests in absolute form itself.
        monkeypatch.setenv("COLLAB_MODELS_TRUST_ENV", "1")
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        arm = _arm(target.url)
        results = await arm.probe()
        assert all(r.ok for r in results), results
        assert list(target.requests) == []  # nothing went direct
        paths = [r.path for r in proxy.requests]
        assert "/health" in paths
        assert paths.count("/v1/chat/completions") == 2  # the two-turn exchange
