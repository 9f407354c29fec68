"""How a client proves who it is to Kafka: the security settings, and the one place that turns
them into the connection arguments of every aiokafka client and of faust.

Every producer, consumer and admin client of marketfeed is made with ``**connection(settings)``
(and faust apps with :func:`faust_credentials`), so a setting given once reaches every hop:
``--security-protocol`` PLAINTEXT / SSL / SASL_PLAINTEXT / SASL_SSL, ``--sasl-mechanism`` PLAIN /
SCRAM-SHA-256 / SCRAM-SHA-512 with ``--sasl-username`` and ``--sasl-password`` (a secret: from
the environment or ``--sasl-password-file``, never a child's command line), and
``--ssl-cafile`` / ``--ssl-certfile`` / ``--ssl-keyfile`` for the server's CA and a client
certificate (``marketfeed up --tls``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from common.config import setting
from common.errors import ConfigError


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


def _one_of(kind: type[StrEnum]) -> Any:
    def check(value: Any) -> str | None:
        names = [m.value for m in kind]
        return None if str(value) in names else f"must be one of {', '.join(names)}"

    return check


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSecurity:
    """How to connect to the brokers; every Kafka-facing config (and read command) has these."""

    security_protocol: str = setting(
        SecurityProtocol.PLAINTEXT.value,
        help="Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        check=_one_of(SecurityProtocol),
        metavar="PROTOCOL",
    )
    sasl_mechanism: str = setting(
        SaslMechanism.PLAIN.value,
        help="SASL mechanism (SASL_* protocols): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        check=_one_of(SaslMechanism),
        metavar="MECHANISM",
    )
    sasl_username: str | None = setting(None, help="SASL user name", metavar="USER")
    sasl_password: str | None = setting(
        None,
        help="SASL password (prefer the environment variable or --sasl-password-file)",
        secret=True,
        metavar="PASSWORD",
    )
    sasl_password_file: Path | None = setting(
        None, help="file holding the SASL password (first line)", metavar="PATH"
    )
    ssl_cafile: Path | None = setting(
        None, help="CA certificate(s) to trust for the brokers (SSL protocols)", metavar="PEM"
    )
    ssl_certfile: Path | None = setting(
        None, help="client certificate to present (SSL protocols)", metavar="PEM"
    )
    ssl_keyfile: Path | None = setting(None, help="private key of --ssl-certfile", metavar="PEM")

    def __post_init__(self) -> None:
        protocol = SecurityProtocol(self.security_protocol)
        if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
            if not self.sasl_username:
                raise ConfigError(f"--security-protocol={protocol}: needs --sasl-username")
            if self.sasl_password is None and self.sasl_password_file is None:
                raise ConfigError(
                    f"--security-protocol={protocol}: needs --sasl-password-file or "
                    "MARKETFEED_SASL_PASSWORD"
                )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)


PLAINTEXT = KafkaSecurity()


def security_of(settings: KafkaSecurity) -> KafkaSecurity:
    """Only the security settings of ``settings`` (a service config or a read command's)."""
    return KafkaSecurity(**security_fields(settings))


def security_fields(settings: KafkaSecurity) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(KafkaSecurity)}


def ssl_context(settings: KafkaSecurity) -> ssl.SSLContext:
    """TLS 1.2+, the brokers' certificate checked against ``--ssl-cafile`` (else the system's
    CAs), with the client certificate when one is given."""
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
            context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"Kafka TLS files: {_why(exc)}") from None
    return context


def sasl_password(settings: KafkaSecurity) -> str:
    if settings.sasl_password is not None:
        return settings.sasl_password
    assert settings.sasl_password_file is not None  # __post_init__
    try:
        return settings.sasl_password_file.read_text().splitlines()[0]
    except (OSError, IndexError) as exc:
        raise ConfigError(
            f"--sasl-password-file={settings.sasl_password_file}: {_why(exc)}"
        ) from None


def connection(settings: KafkaSecurity) -> dict[str, Any]:
    """The keyword arguments every aiokafka client is made with (besides its own)."""
    protocol = SecurityProtocol(settings.security_protocol)
    kwargs: dict[str, Any] = {"security_protocol": protocol.value}
    if settings.uses_tls:
        kwargs["ssl_context"] = ssl_context(settings)
    if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = sasl_password(settings)
    return kwargs


def faust_credentials(settings: KafkaSecurity) -> Any:
    """``broker_credentials`` of a faust app: the same settings as :func:`connection`."""
    from faust.auth import SASLCredentials, SSLCredentials  # noqa: PLC0415 (faust is heavy)

    protocol = SecurityProtocol(settings.security_protocol)
    if protocol is SecurityProtocol.PLAINTEXT:
        return None
    if protocol is SecurityProtocol.SSL:
        return SSLCredentials(ssl_context(settings))
    return SASLCredentials(
        username=settings.sasl_username,
        password=sasl_password(settings),
        mechanism=settings.sasl_mechanism,
        ssl_context=ssl_context(settings) if settings.uses_tls else None,
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    return str(exc) or type(exc).__name__
