"""Why a broker turned a client away at the TLS level, in words a user can act on.

aiokafka says only "Unable to bootstrap" when a plaintext client meets a TLS listener, or a TLS
client has no certificate (or the wrong one) where the listener requires one: the connection is
simply closed. When a bootstrap fails, :func:`tls_refusal` probes the address once with a TLS
handshake of its own (blocking, a few seconds at most) and names what is missing, or returns
None when TLS is not the problem (nothing listens, a plain broker and a plain client...).
"""

from __future__ import annotations

import socket
import ssl

from common.kafkasec import KafkaSecurity, ssl_context

_TIMEOUT_S = 3.0
_FLAGS = "--security-protocol SSL with --ssl-cafile, --ssl-certfile and --ssl-keyfile"


def tls_refusal(bootstrap: str, security: KafkaSecurity) -> str | None:
    """What the first server of ``bootstrap`` holds against this client's TLS, if anything."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].strip().rpartition(":")
    try:
        address = (host, int(port))
    except ValueError:
        return None
    if not security.uses_tls:
        if _speaks_tls(address):
            return (
                f"the broker at {bootstrap} accepts TLS only; this client speaks plaintext "
                f"({_FLAGS})"
            )
        return None
    return _refuses_this_client(address, bootstrap, security)


def _speaks_tls(address: tuple[str, int]) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(address, timeout=_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=address[0]),
        ):
            return True
    except ssl.SSLError as exc:
        # An alert is TLS spoken back (one that wants a certificate, say); a plain Kafka
        # listener gives no TLS record at all.
        return "WRONG_VERSION_NUMBER" not in str(exc) and "record layer" not in str(exc)
    except OSError:
        return False


def _refuses_this_client(
    address: tuple[str, int], bootstrap: str, security: KafkaSecurity
) -> str | None:
    context = ssl_context(security)
    try:
        with (
            socket.create_connection(address, timeout=_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=address[0]) as tls,
        ):
            # With TLS 1.3 a server checks the client's certificate after the client thinks
            # the handshake is done: its verdict is the first thing read.
            tls.settimeout(0.5)
            try:
                if not tls.recv(1):
                    return (
                        f"the broker at {bootstrap} closed the connection right after the TLS "
                        "handshake (it wants a client certificate of its CA?)"
                    )
            except TimeoutError:
                return None  # still connected: TLS let this client in
    except ssl.SSLCertVerificationError as exc:
        return (
            f"the broker at {bootstrap} has a certificate --ssl-cafile does not vouch for "
            f"({exc.verify_message})"
        )
    except ssl.SSLError as exc:
        text = str(exc)
        if "CERTIFICATE_REQUIRED" in text or "HANDSHAKE_FAILURE" in text:
            if security.ssl_certfile is None:
                return (
                    f"the broker at {bootstrap} requires a client certificate: give "
                    "--ssl-certfile and --ssl-keyfile"
                )
            return f"the broker at {bootstrap} refused this client's certificate ({text})"
        if "UNKNOWN_CA" in text or "BAD_CERTIFICATE" in text or "CERTIFICATE_UNKNOWN" in text:
            return (
                f"the broker at {bootstrap} refused this client's certificate: it is not "
                "signed by a CA the broker trusts"
            )
        if "WRONG_VERSION_NUMBER" in text or "record layer" in text:
            return (
                f"the broker at {bootstrap} does not speak TLS (--security-protocol "
                "PLAINTEXT or SASL_PLAINTEXT?)"
            )
        return f"TLS with the broker at {bootstrap} failed: {text}"
    except TimeoutError:
        # A plain Kafka listener reads a ClientHello as the start of a request and waits.
        return (
            f"the broker at {bootstrap} did not answer a TLS handshake (it speaks plaintext? "
            "--security-protocol PLAINTEXT or SASL_PLAINTEXT)"
        )
    except OSError:
        return None
    return None
