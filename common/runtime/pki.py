"""A throw-away certificate authority for one run: a CA, a server certificate, client certificates.

``marketfeed up --tls`` puts a TLS terminator in front of the embedded broker, which has no
working TLS of its own (see the research notes on Tansu 0.6.0). Every client, the services
included, must then present a certificate signed by this run's CA. The CA's private key never
leaves the run directory and every private key file is readable by its owner only (0600), so
another user of the machine can neither connect nor mint a certificate.

Keys are ECDSA P-256: quick to generate (milliseconds) and cheap in handshakes.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.privatefile import write_private

# A run lasts hours, not years; a certificate that outlives it is only a liability.
_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Identity:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """Where the files of one run's authority are."""

    ca: Path  # the CA certificate clients and the server trust
    server: Identity  # the terminator's certificate (for 127.0.0.1 and localhost)
    client: Identity  # the certificate every marketfeed client of the run presents


def issue_pki(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    common_name: str = "marketfeed",
    dns_names: tuple[str, ...] = ("localhost",),
    validity: datetime.timedelta = _VALIDITY,
) -> Pki:
    """Create a CA and a server and a client identity signed by it, in ``directory`` (0700).

    The server certificate names ``host`` (an IP address, or None for none) and ``dns_names``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} run CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server = _issue(
        directory / "server",
        ca_cert,
        ca_key,
        common_name=f"{common_name} broker",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.IPAddress(ipaddress.ip_address(host)), *map(x509.DNSName, dns_names)],
        validity=validity,
    )
    client = issue_client(
        directory / "client",
        ca_cert,
        ca_key,
        common_name=f"{common_name} client",
        validity=validity,
    )
    return Pki(ca=ca_path, server=server, client=client)


def issue_client(
    stem: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    validity: datetime.timedelta = _VALIDITY,
) -> Identity:
    """A client identity (``stem``.pem / ``stem``.key) signed by the CA."""
    return _issue(
        stem,
        ca_cert,
        ca_key,
        common_name=common_name,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        validity=validity,
    )


def _issue(
    stem: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    san: list[x509.GeneralName] | None = None,
    validity: datetime.timedelta = _VALIDITY,
) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(name, ca_cert.subject, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    identity = Identity(cert=stem.with_suffix(".pem"), key=stem.with_suffix(".key"))
    identity.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(
        identity.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return identity


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: datetime.timedelta,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A minute of slack for clocks that disagree a little.
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + validity)
    )
