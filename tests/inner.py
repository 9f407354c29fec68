"""A pytest session of its own (pytester), with the suite's conftest: for the tests of the
suite's own guards (timeouts, a hung broker, what a failed test leaves open)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_inner(
    pytester: pytest.Pytester, inner: Path, *extra: str, timeout: float = 120
) -> tuple[pytest.RunResult, str]:
    """Run ``inner`` in one process (``-n 0``) with the suite's conftest and configuration;
    the result and everything it printed."""
    result = pytester.runpytest_subprocess(
        str(inner),
        "-p",
        "tests.conftest",
        *extra,
        "-c",
        str(REPO / "pyproject.toml"),
        "--rootdir",
        str(pytester.path),
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        timeout=timeout,
    )
    return result, result.stdout.str() + result.stderr.str()
