"""A self-signed certificate for 127.0.0.1 and localhost, for the emulators' HTTPS modes (Notification Hubs
``sb://`` -> ``https://``, Web PubSub ``https://`` and ``wss://``). Clients trust the printed ``cert.pem``."""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def create_self_signed_certificate(
    cert_dir: str | Path | None = None, common_name: str = "devstack emulator"
) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (SAN 127.0.0.1, ::1, localhost) to ``cert_dir``; return both."""
    folder = Path(cert_dir) if cert_dir else Path(tempfile.mkdtemp(prefix="devstack-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """An SSL context serving the given certificate with TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def certificate_for(cert_dir: str | Path | None, common_name: str = "devstack emulator") -> tuple[Path, Path]:
    """The certificate and key an emulator serves in HTTPS mode.

    Without ``cert_dir``: a fresh pair in a temp folder. With it: ``cert.pem``/``key.pem`` found there are
    reused while valid for another day, so a certificate trusted once (``NODE_EXTRA_CA_CERTS``,
    ``REQUESTS_CA_BUNDLE``) keeps working across restarts and for several emulators; otherwise they are
    (re)created.
    """
    if cert_dir is not None:
        cert_path, key_path = Path(cert_dir) / "cert.pem", Path(cert_dir) / "key.pem"
        if cert_path.is_file() and key_path.is_file():
            try:
                certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
                if certificate.not_valid_after_utc - datetime.now(UTC) > timedelta(days=1):
                    return cert_path, key_path
            except ValueError:
                pass  # not a certificate: replace it
    return create_self_signed_certificate(cert_dir, common_name)


def https_server(
    https: bool, cert_dir: str | Path | None, common_name: str
) -> tuple[Path | None, ssl.SSLContext | None]:
    """An emulator's TLS setup: ``(cert_path, server context)`` in HTTPS mode, ``(None, None)`` otherwise."""
    if not https:
        return None, None
    cert_path, key_path = certificate_for(cert_dir, common_name)
    return cert_path, server_ssl_context(cert_path, key_path)


def main(argv: list[str] | None = None) -> int:
    """``python -m devstack.tls DIR``: make sure DIR holds a valid certificate; print its path."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m devstack.tls DIR", file=sys.stderr)
        return 2
    cert_path, _ = certificate_for(args[0])
    print(cert_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
