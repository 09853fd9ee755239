"""The Temporal connection settings: Temporal's own env config honoured under FACELOOP_*,
TLS / mTLS material checked up front, the API key never printed, and what connect() puts
on the wire (a local TLS server that requires a client cert sees the handshake)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from faceloop.cli import app
from faceloop.errors import InputError
from faceloop.settings import Settings, get_settings
from faceloop.workflows.client import connect, temporal_tls


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FACELOOP_TEMPORAL_* / TEMPORAL_* from the machine, and no Temporal config file."""
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "FACELOOP_TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))


def pem_pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    return cert, key


def test_temporals_env_config_fills_what_faceloop_does_not_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = pem_pair(tmp_path, "client")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ns.acct")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(key))
    s = Settings()
    assert (s.temporal_address, s.temporal_namespace) == ("ns.acct.tmprl.cloud:7233", "ns.acct")
    assert (s.temporal_tls_cert, s.temporal_tls_key) == (cert, key)
    assert s.temporal_tls_enabled
    sources = {name: source for name, _, source, _ in s.effective()}
    assert sources["FACELOOP_TEMPORAL_ADDRESS"] == "temporal env config"
    assert sources["FACELOOP_TEMPORAL_PORT"] == "default"


def test_a_temporal_toml_profile_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "temporal.toml"
    toml.write_text(
        '[profile.prod]\naddress = "temporal.internal:7233"\nnamespace = "ads"\n'
        '[profile.prod.tls]\nserver_name = "temporal.internal"\n'
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(toml))
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    s = Settings()
    assert (s.temporal_address, s.temporal_namespace) == ("temporal.internal:7233", "ads")
    assert s.temporal_tls_server_name == "temporal.internal" and s.temporal_tls_enabled


def test_faceloop_settings_win_over_temporals_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "from-temporal:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "from-temporal")
    monkeypatch.setenv("TEMPORAL_API_KEY", "temporal-key")
    monkeypatch.setenv("FACELOOP_TEMPORAL_ADDRESS", "from-faceloop:7233")
    monkeypatch.setenv("FACELOOP_TEMPORAL_NAMESPACE", "from-faceloop")
    monkeypatch.setenv("FACELOOP_TEMPORAL_API_KEY", "faceloop-key")
    s = Settings()
    assert (s.temporal_address, s.temporal_namespace) == ("from-faceloop:7233", "from-faceloop")
    assert s.temporal_api_key is not None
    assert s.temporal_api_key.get_secret_value() == "faceloop-key"
    sources = {name: source for name, _, source, _ in s.effective()}
    assert sources["FACELOOP_TEMPORAL_ADDRESS"] == "env"


def test_without_any_setting_the_defaults_hold() -> None:
    s = Settings()
    assert (s.temporal_address, s.temporal_namespace) == (None, "default")
    assert not s.temporal_tls_enabled and temporal_tls(s) is False


def test_an_api_key_implies_tls_and_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELOOP_TEMPORAL_API_KEY", "sk-very-secret")
    monkeypatch.setenv("TEMPORAL_API_KEY", "sk-other-secret")
    s = Settings()
    assert s.temporal_tls_enabled and temporal_tls(s) is True
    # the values, not the word: a setting's name may hold it (FACELOOP_S3__SECRET_ACCESS_KEY)
    assert "very-secret" not in repr(s) and "other-secret" not in repr(s)
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "very-secret" not in result.output and "other-secret" not in result.output
    shown = json.loads(result.output)["FACELOOP_TEMPORAL_API_KEY"]
    assert shown == {"value": "**********", "source": "env"}


def test_an_api_key_with_tls_turned_off_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACELOOP_TEMPORAL_API_KEY", "k")
    monkeypatch.setenv("FACELOOP_TEMPORAL_TLS", "false")
    with pytest.raises(InputError, match="only sent over TLS"):
        get_settings()


def test_an_unknown_dev_server_sync_mode_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`off` would be a durability the embedded stack does not offer: refused with the field
    and the values it takes, and nothing is written to the data dir."""
    monkeypatch.setenv("FACELOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACELOOP_TEMPORAL_SQLITE_SYNC", "off")
    with pytest.raises(InputError, match=r"temporal_sqlite_sync.*'normal' or 'full'"):
        get_settings()
    assert not (tmp_path / "home").exists()


def test_a_client_cert_without_its_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, _ = pem_pair(tmp_path, "client")
    monkeypatch.setenv("FACELOOP_TEMPORAL_TLS_CERT", str(cert))
    with pytest.raises(InputError, match="TLS_CERT is set without FACELOOP_TEMPORAL_TLS_KEY"):
        get_settings()


def test_an_unreadable_tls_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACELOOP_TEMPORAL_TLS_CA", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(InputError, match=r"FACELOOP_TEMPORAL_TLS_CA=.*missing-ca.pem cannot be"):
        get_settings()


def test_inline_cert_data_from_temporals_env_config_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_DATA", "-----BEGIN CERTIFICATE-----")
    with pytest.raises(InputError, match="write it to a file and set"):
        get_settings()


def test_a_missing_temporal_profile_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "nope")
    with pytest.raises(InputError, match=r"Temporal's env config .* could not be read"):
        get_settings()


# --- on the wire: a TLS server that requires a client cert signed by our CA ----------------


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if subject == issuer[0]:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), False
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    return builder.sign(issuer[1], hashes.SHA256())


def _write(
    tmp_path: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp_path / f"{name}.pem", tmp_path / f"{name}.key"


async def test_connect_speaks_mtls_with_the_ca_server_name_and_client_cert(
    tmp_path: Path,
) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("faceloop test CA", ca_key, ("faceloop test CA", ca_key))
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_pem, _ = _write(tmp_path, "ca", ca, ca_key)
    srv_pem, srv_key = _write(
        tmp_path,
        "server",
        _cert("temporal.test", server_key, ("faceloop test CA", ca_key)),
        server_key,
    )
    cli_pem, cli_key = _write(
        tmp_path,
        "client",
        _cert("faceloop-worker", client_key, ("faceloop test CA", ca_key)),
        client_key,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_pem))
    server_ctx.load_cert_chain(srv_pem, srv_key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.set_alpn_protocols(["h2"])
    peers: list[dict[str, Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the handshake is done (client cert verified) before this runs; a real Temporal
        # server would now speak gRPC, this one only records who connected
        peers.append(writer.get_extra_info("peercert"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}",
        temporal_tls_ca=ca_pem,
        temporal_tls_cert=cli_pem,
        temporal_tls_key=cli_key,
        temporal_tls_server_name="temporal.test",
    )
    async with server:
        with pytest.raises(Exception):  # noqa: B017 - no gRPC behind the handshake
            await asyncio.wait_for(connect(settings), 10)
    assert peers, "no TLS handshake completed: connect() did not present the client cert"
    subject = dict(pair[0] for pair in peers[0]["subject"])
    assert subject["commonName"] == "faceloop-worker"


def test_invalid_settings_are_one_line_errors_from_the_console_script(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACELOOP_", "TEMPORAL_"))}
    env.update(FACELOOP_HOME=str(tmp_path), FACELOOP_TEMPORAL_TLS_CERT=str(tmp_path / "no.pem"))
    proc = subprocess.run(
        [sys.executable, "-m", "faceloop.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error:") and "FACELOOP_TEMPORAL_TLS_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr
