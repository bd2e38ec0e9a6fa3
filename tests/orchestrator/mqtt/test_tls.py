"""mqtts:// against a real Mosquitto TLS listener: a private CA and a client certificate the broker requires."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.errors import ConfigError

PREFIX = "orchestrator/t1"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, issuer_key, *, server: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    files = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None, ca_key, server=False)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, key, ca, ca_key, server=server)
        files[f"{name}_cert"] = tmp_path / f"{name}.crt"
        files[f"{name}_key"] = tmp_path / f"{name}.key"
        files[f"{name}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(files[f"{name}_key"], key)
    files["ca"] = tmp_path / "ca.crt"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


@pytest.fixture
def tls_broker(pki, broker_factory):
    """Mosquitto with a TLS listener that requires a client certificate signed by the CA."""
    return broker_factory(
        listener_options=(
            f"cafile {pki['ca']}",
            f"certfile {pki['server_cert']}",
            f"keyfile {pki['server_key']}",
            "require_certificate true",
        )
    )


async def test_mqtts_with_a_private_ca_and_a_client_certificate(tmp_path, pki, kit, subscribe, tls_broker):
    tls = {"ca_file": str(pki["ca"]), "cert_file": str(pki["client_cert"]), "key_file": str(pki["client_key"])}
    config = kit.config(kit.mqtt(tls_broker, url=f"mqtts://127.0.0.1:{tls_broker.port}", tls=tls))
    async with kit.run(config) as daemon:
        assert kit.service(daemon).address.tls
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
        async with aiomqtt.Client("127.0.0.1", tls_broker.port, tls_context=context) as reader:
            await reader.subscribe(f"{PREFIX}/online", qos=1)
            async for message in reader.messages:
                assert message.payload == b"online"
                break


async def test_a_client_without_a_certificate_is_refused(pki, tls_broker):
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", tls_broker.port, tls_context=context, timeout=1):
            pass


def test_unreadable_tls_files_are_a_config_error(kit, mosquitto, tmp_path):
    from orchestrator.config.loader import load_config
    from orchestrator.daemon import Daemon

    tls = {"ca_file": str(tmp_path / "missing-ca.crt")}
    config = kit.config(kit.mqtt(mosquitto, url=f"mqtts://127.0.0.1:{mosquitto.port}", tls=tls))
    with pytest.raises(ConfigError, match=r"mqtt\.tls: cannot use the TLS files"):
        Daemon(load_config(config, env={}))
