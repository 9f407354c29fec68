"""The simulated market's symbols: ``n`` deterministic four-letter tickers.

Deterministic so that a consumer configured with "the first 50 symbols" and a publisher started
separately agree without talking to each other.
"""

from __future__ import annotations

import string

_LETTERS = string.ascii_uppercase
_WIDTH = 4
MAX_SYMBOLS = len(_LETTERS) ** _WIDTH  # 456,976


def symbol_name(index: int) -> str:
    """The ``index``-th ticker: 0 -> AAAA, 1 -> AAAB, ..."""
    if not 0 <= index < MAX_SYMBOLS:
        raise ValueError(f"symbol index {index} outside 0..{MAX_SYMBOLS - 1}")
    chars = []
    for _ in range(_WIDTH):
        index, digit = divmod(index, len(_LETTERS))
        chars.append(_LETTERS[digit])
    return "".join(reversed(chars))


def universe(count: int) -> list[str]:
    return [symbol_name(i) for i in range(count)]
