"""Settings of the publisher: ``MARKETFEED_*`` environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import in_range, known_log_level, non_negative, positive, setting
from common.kafka import KafkaSettings
from feed_publisher.universe import MAX_SYMBOLS


def _symbol_count(value: int) -> str | None:
    return None if 0 < value <= MAX_SYMBOLS else f"must be between 1 and {MAX_SYMBOLS}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherConfig(KafkaSettings):
    symbols: int = setting(500, help="number of simulated symbols", check=_symbol_count)
    rate: float = setting(
        5000.0, help="target messages per second (quotes + trades)", check=positive
    )
    seed: int | None = setting(
        None, help="random seed; the same seed gives the same ticks (default: random)"
    )
    trade_ratio: float = setting(0.1, help="share of ticks that are trades", check=in_range(0, 1))
    duration: float | None = setting(
        None, help="stop after this many seconds (default: run until stopped)", check=positive
    )
    linger_ms: int = setting(
        2, help="producer linger: how long a batch waits for more records", check=non_negative
    )
    cycle_ms: float = setting(
        0.0,
        help="send at most once per this many ms, what is due meanwhile together: bigger "
        "record batches (cheaper for brokers and consumers), at most this much later",
        check=non_negative,
    )
    max_batch: int = setting(
        5000, help="most ticks generated and sent in one cycle", check=positive
    )
    idempotence: bool = setting(
        False,
        help="Kafka idempotent producer (needs a broker with InitProducerId: Apache Kafka yes, "
        "embedded Tansu no; consumers de-duplicate by (epoch, seq) either way)",
    )
    snapshots: bool = setting(True, help="answer snapshot requests from caches")
    log_level: str = setting(
        "INFO", help="log level: DEBUG, INFO, WARNING, ERROR", check=known_log_level
    )
