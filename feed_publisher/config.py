"""Settings of the publisher: ``MARKETFEED_*`` environment variables, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import in_range, known_log_level, non_negative, positive, setting
from common.exposition import MetricsSettings
from common.feedsign import FeedSettings
from common.generations.naming import HistoryMode, history_mode
from feed_publisher.universe import MAX_SYMBOLS


def _symbol_count(value: int) -> str | None:
    return None if 0 < value <= MAX_SYMBOLS else f"must be between 1 and {MAX_SYMBOLS}"


def _keep(value: int) -> str | None:
    # The generation being written and the one before it, which readers may still be finishing.
    return None if value >= 2 else "must be >= 2"


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherConfig(FeedSettings, MetricsSettings):
    # Redeclared with a longer default: the feed is long-lived and rides out a broker that
    # stalls for minutes (it holds what it sent and resends it); the one-shot commands, whose
    # user is waiting, give up after 20 s.
    connect_timeout: float = setting(
        300.0,
        help="seconds to keep retrying a broker that is unreachable or acknowledges nothing "
        "before giving up",
        check=positive,
    )
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
        0,
        help="producer linger: how long aiokafka holds a batch before sending it (the publisher "
        "builds whole batches itself, see --cycle-ms: a linger only delays them)",
        check=non_negative,
    )
    cycle_ms: float = setting(
        10.0,
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
    request_timeout_ms: int | None = setting(
        None,
        help="a send not acknowledged within this many ms is sent again, and may then be "
        "written twice (default: as long as --connect-timeout, so that a broker that stalls "
        "and comes back gets nothing twice)",
        check=positive,
    )
    stall_after: float = setting(
        5.0,
        help="the broker acknowledging nothing for this many seconds means it is stalled: the "
        "ticks that come due are dropped until it acknowledges again",
        check=positive,
    )
    max_held: int = setting(
        200_000,
        help="records sent and not yet acknowledged beyond which publishing waits",
        check=positive,
    )
    md_history: str = setting(
        HistoryMode.AUTO.value,
        help="how market-data history is bounded: generations (md.quotes.gN, rolled and "
        "deleted by the publisher), retention (one topic, the broker's retention), or auto "
        "(generations on a broker known to keep everything, the embedded one)",
        check=history_mode,
        metavar="auto|generations|retention",
    )
    retention_s: float = setting(
        3600.0,
        help="retention: the market-data topics this publisher creates keep records this many "
        "seconds (retention.ms), on a broker that enforces it",
        check=positive,
    )
    # A fetch lists every batch of the partitions it covers (~0.45 us each on the embedded
    # broker) and comes back empty when that overruns the consumer's wait: 16 x 500 batches
    # is ~3.6 ms, inside the caches' 5 ms --fetch-max-wait-ms.
    roll_batches: int = setting(
        500,
        help="generations: roll to the next once a partition holds this many record batches",
        check=positive,
    )
    roll_seconds: float = setting(
        60.0, help="generations: roll to the next after this many seconds", check=positive
    )
    keep_generations: int = setting(
        2, help="generations: how many to keep (older ones are deleted)", check=_keep
    )

    @property
    def send_timeout_ms(self) -> int:
        """The producer's request timeout: --request-timeout-ms, or --connect-timeout."""
        if self.request_timeout_ms is not None:
            return self.request_timeout_ms
        return int(self.connect_timeout * 1000)

    log_level: str = setting(
        "INFO", help="log level: DEBUG, INFO, WARNING, ERROR", check=known_log_level
    )
