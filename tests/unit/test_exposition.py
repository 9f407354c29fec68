"""The /metrics endpoint and the collectors' building blocks, without any server of ours."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.collectors import BatchHistogram, Families, ServiceCollector
from common.config import build
from common.errors import ConfigError
from common.exposition import MetricsServer, find_metrics_url, new_registry
from order_flow.config import OrderFlowConfig


class _Part:
    def __init__(self) -> None:
        self.done = 0
        self.latency = BatchHistogram("test_latency_seconds", "a latency", buckets=(0.01, 0.1))

    def add_to(self, f: Families) -> None:
        f.counter("test_done", "things done", self.done)
        f.counter("test_by_reason", "by reason", 2, reason="A")
        f.counter("test_by_reason", "by reason", 3, reason="B")
        f.histogram(self.latency)


async def _get(port: int, request: bytes) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = (await reader.read()).decode()
    writer.close()
    head, _, body = answer.partition("\r\n\r\n")
    return head.splitlines()[0], body


async def test_metrics_are_served_once_per_family_and_follow_the_counters() -> None:
    part = _Part()
    registry = new_registry()
    registry.register(ServiceCollector("svc", part))
    server = MetricsServer(registry, host="127.0.0.1", port=0, service="svc")
    async with server:
        assert server.port != 0
        part.done = 7
        part.latency.observe([0.005, 0.01, 0.05, 5.0])
        status, body = await _get(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert families["marketfeed_test_done"].samples[0].value == 7
        assert families["marketfeed_test_done"].samples[0].labels == {"service": "svc"}
        reasons = {
            s.labels["reason"]: s.value for s in families["marketfeed_test_by_reason"].samples
        }
        assert reasons == {"A": 2, "B": 3}
        buckets = {
            s.labels["le"]: s.value
            for s in families["marketfeed_test_latency_seconds"].samples
            if s.name.endswith("_bucket")
        }
        # A value equal to a bound counts in its bucket; cumulative; +Inf holds them all.
        assert buckets == {"0.01": 2, "0.1": 3, "+Inf": 4}
        assert "process_cpu_seconds" in families
        assert body.count("# TYPE marketfeed_test_by_reason_total counter") == 1
        assert (await _get(server.port, b"GET /other HTTP/1.1\r\n\r\n"))[0].endswith(
            "404 Not Found"
        )
        status, _ = await _get(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert status.endswith("405 Method Not Allowed")
    # Stopped: nothing listens any more.
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", server.port)


def test_the_printed_line_gives_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    log = "x\nmarketfeed metrics: http://127.0.0.1:4321/metrics (publisher)\ny\n"
    assert find_metrics_url(log) == "http://127.0.0.1:4321/metrics"
    assert find_metrics_url("marketfeed api: http://127.0.0.1:1/ (docs at /docs)") is None


def test_metrics_port_setting() -> None:
    assert not build(OrderFlowConfig, {}, {}).metrics_on  # off unless asked
    assert build(OrderFlowConfig, {}, {"MARKETFEED_METRICS_PORT": "0"}).metrics_on
    for bad in ("65536", "-1", "http"):
        with pytest.raises(ConfigError, match=r"^--metrics-port=.*: must be a port"):
            build(OrderFlowConfig, {"metrics_port": bad}, {})


async def test_a_port_in_use_is_one_clear_error() -> None:
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    try:
        server = MetricsServer(new_registry(), host="127.0.0.1", port=port, service="svc")
        with pytest.raises(ConfigError, match=f"--metrics-port={port}: cannot listen"):
            await server.start()
    finally:
        taken.close()
