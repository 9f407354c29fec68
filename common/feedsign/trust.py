"""What a reader of the feed accepts: a record signed by the deployment's key, with plausible
times and sequence numbers. One object, built once from a reader's settings, asked per record.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.feedsign.plausible import Plausibility, Version
from common.feedsign.signing import Verifier
from common.generations.rollover import KafkaRecord
from common.schema import Quote

DEFAULT_CLOCK_SKEW_S = 5.0
DEFAULT_SEQ_JUMP = 100_000


@dataclass(frozen=True, slots=True)
class FeedTrust:
    verifier: Verifier | None  # None: an unsigned feed is accepted (--insecure-unsigned-feed)
    plausibility: Plausibility

    def signature_reason(self, context: str, record: KafkaRecord) -> str | None:
        """Why ``record`` is not signed for ``context`` by one of our keys (None: it is)."""
        if self.verifier is None:
            return None
        return self.verifier.reason(context, record.key, record.value, record.headers)

    def quote_reason(
        self, context: str, record: KafkaRecord, quote: Quote, cached: Version | None, now_ns: int
    ) -> tuple[str | None, bool]:
        """Why a quote about to be applied is refused (None: it is not), and whether the
        symbol should be re-read from a snapshot (a signed seq jump)."""
        reason = self.signature_reason(context, record)
        if reason is None:
            reason = self.plausibility.clock_reason(quote, now_ns)
        if reason is not None:
            return reason, False
        reason = self.plausibility.seq_reason(quote, cached)
        return reason, reason is not None
