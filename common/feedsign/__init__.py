"""The signed market-data feed: keys, signing, verification (``common.feedsign.signing``),
where the keys come from (``common.feedsign.settings``) and plausibility checks that hold
whatever the signature says (``common.feedsign.plausible``)."""

from common.feedsign.plausible import Plausibility
from common.feedsign.settings import FeedKeySettings, FeedSettings, feed_keys, write_key_file
from common.feedsign.signing import KID_HEADER, SIG_HEADER, FeedKeys, Signer, Verifier
from common.feedsign.trust import FeedTrust

__all__ = [
    "KID_HEADER",
    "SIG_HEADER",
    "FeedKeySettings",
    "FeedKeys",
    "FeedSettings",
    "FeedTrust",
    "Plausibility",
    "Signer",
    "Verifier",
    "feed_keys",
    "write_key_file",
]
