"""The TLS terminator in front of the embedded broker: a run's certificate in, nobody else."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from common.runtime.binaries import broker_binary
from common.runtime.pki import Pki, issue_pki
from common.runtime.process import ChildProcess, free_port, tcp_accepts
from common.runtime.tlsproxy import TlsTerminator, server_context

HOST = "127.0.0.1"


def client_context(pki: Pki, *, with_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        context.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    return context


@pytest_asyncio.fixture
async def tls_broker(tmp_path: Path) -> AsyncIterator[tuple[Pki, str]]:
    """A broker of its own, advertising the terminator in front of it; yields (pki, bootstrap)."""
    pki = issue_pki(tmp_path / "pki")
    broker_port, tls_port = free_port(HOST), free_port(HOST)
    broker = ChildProcess(
        name="broker",
        argv=[
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://{HOST}:{broker_port}",
            "--advertised-listener-url",
            f"tcp://{HOST}:{tls_port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        ready=lambda: tcp_accepts(HOST, broker_port),
        stop_timeout=2.0,
    )
    context = server_context(ca=pki.ca, cert=pki.server.cert, key=pki.server.key)
    async with (
        broker,
        TlsTerminator(listen=(HOST, tls_port), target=(HOST, broker_port), context=context),
    ):
        yield pki, f"{HOST}:{tls_port}"


def test_private_keys_are_for_their_owner_only(tmp_path: Path) -> None:
    pki = issue_pki(tmp_path / "pki")
    for key in (pki.server.key, pki.client.key):
        assert key.stat().st_mode & 0o077 == 0
    assert (tmp_path / "pki").stat().st_mode & 0o077 == 0
    assert not list((tmp_path / "pki").glob("ca*.key")), "the CA key never touches the disk"


async def test_a_client_with_the_runs_certificate_produces_and_consumes(
    tls_broker: tuple[Pki, str],
) -> None:
    pki, bootstrap = tls_broker
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, security_protocol="SSL", ssl_context=client_context(pki)
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait("tls.check", b"through the terminator", key=b"K")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, security_protocol="SSL", ssl_context=client_context(pki)
    )
    await consumer.start()
    try:
        tp = TopicPartition("tls.check", sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        records = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
    finally:
        await consumer.stop()
    assert [r.value for r in records] == [b"through the terminator"]


@pytest.mark.parametrize("case", ["no certificate", "another CA", "plaintext"])
async def test_anyone_else_is_refused(
    tls_broker: tuple[Pki, str], tmp_path: Path, case: str
) -> None:
    pki, bootstrap = tls_broker
    if case == "no certificate":
        kwargs = {"security_protocol": "SSL", "ssl_context": client_context(pki, with_cert=False)}
    elif case == "another CA":
        rogue = issue_pki(tmp_path / "rogue")
        context = client_context(pki, with_cert=False)
        context.load_cert_chain(str(rogue.client.cert), str(rogue.client.key))
        kwargs = {"security_protocol": "SSL", "ssl_context": context}
    else:
        kwargs = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000, **kwargs)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
