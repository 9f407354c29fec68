"""Building blocks of the processes' Prometheus collectors: families, batch histograms, retries.

The collectors read, at scrape time, the counters each part keeps already (a ``Counter``, its
stats dataclass), rather than every hot path incrementing a Prometheus metric too. ``Families``
gathers the samples of one scrape under the conventions of the project: a ``marketfeed_``
prefix, the unit in the name, ``_total`` counters, a ``service`` label on everything, and
bounded label values only (a partition, a reason code; never a symbol or an order id).

``BatchHistogram`` is the one histogram that needs observing: it takes a whole numpy array of
samples at once (one ``searchsorted`` and ``bincount`` per batch of thousands), where
prometheus_client's ``Histogram.observe`` takes a lock per sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from common.retry import Retry

PREFIX = "marketfeed_"
# Seconds, from a fraction of a millisecond (a live tail) to a stall.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class Families:
    """The samples of one scrape, by family; ``service`` is the first label of each.

    A family must appear once in an exposition: every part of a process adds its samples to
    the one ``Families`` of the scrape (``ServiceCollector``), never yields its own.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._families: dict[str, Metric] = {}

    def counter(self, name: str, doc: str, value: float, **labels: str) -> None:
        """One sample of the counter ``marketfeed_NAME_total`` (``name`` without the suffix)."""
        family = self._families.get(name)
        if not isinstance(family, CounterMetricFamily):
            family = CounterMetricFamily(PREFIX + name, doc, labels=["service", *labels])
            self._families[name] = family
        family.add_metric([self.service, *labels.values()], value)

    def gauge(self, name: str, doc: str, value: float, **labels: str) -> None:
        family = self._families.get(name)
        if not isinstance(family, GaugeMetricFamily):
            family = GaugeMetricFamily(PREFIX + name, doc, labels=["service", *labels])
            self._families[name] = family
        family.add_metric([self.service, *labels.values()], value)

    def histogram(self, histogram: BatchHistogram) -> None:
        self._families[histogram.name] = histogram.family({"service": self.service})

    def counters(self, docs: Mapping[str, str], values: Mapping[str, float], prefix: str) -> None:
        """``prefix_KEY_total`` for each key of ``docs``, valued from ``values`` (0 if absent)."""
        for key, doc in docs.items():
            self.counter(f"{prefix}_{key}", doc, values.get(key, 0))

    def retries(self, part: str, retries: Mapping[str, Retry | None]) -> None:
        """The state of each dependency's ``Retry`` (``dependency``: redis, kafka) in ``part``
        (cache, orders, positions, sink...)."""
        for dependency, retry in retries.items():
            if retry is None:
                continue
            self.gauge(
                "dependency_failing",
                "1 while the dependency is failing and operations on it are being retried",
                float(retry.failing),
                part=part,
                dependency=dependency,
            )
            self.counter(
                "dependency_failures",
                "failed attempts on the dependency (each retried)",
                retry.failures,
                part=part,
                dependency=dependency,
            )

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


class Part(Protocol):
    """One part of a process that has something to say at a scrape."""

    def add_to(self, families: Families) -> None: ...


class ServiceCollector:
    """The one collector of a process's own metrics: each part adds to the same scrape."""

    def __init__(self, service: str, *parts: Part) -> None:
        self.service = service
        self.parts = list(parts)

    def collect(self) -> Iterator[Metric]:
        families = Families(self.service)
        for part in self.parts:
            part.add_to(families)
        yield from families


class BatchHistogram:
    """A Prometheus histogram of seconds, observed a numpy array at a time."""

    def __init__(
        self, name: str, doc: str, *, buckets: Sequence[float] = LATENCY_BUCKETS_S
    ) -> None:
        self.name = PREFIX + name
        self.doc = doc
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last: above every bound
        self._sum = 0.0

    def observe(self, seconds: npt.ArrayLike) -> None:
        values = np.asarray(seconds, dtype=np.float64)
        if values.size == 0:
            return
        # side="left": a value equal to a bound counts in that bucket (``le``).
        where = np.searchsorted(self._bounds, values, side="left")
        self._counts += np.bincount(where, minlength=len(self._counts))
        self._sum += float(values.sum())

    @property
    def count(self) -> int:
        return int(self._counts.sum())

    def family(self, labels: Mapping[str, str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.doc, labels=list(labels))
        cumulative = np.cumsum(self._counts).tolist()
        buckets = [(_le(b), c) for b, c in zip(self._bounds.tolist(), cumulative, strict=False)]
        buckets.append(("+Inf", cumulative[-1]))
        family.add_metric(list(labels.values()), buckets, self._sum)
        return family


def _le(bound: float) -> str:
    return repr(float(bound))


def per_partition(values: Mapping[int, float]) -> Iterable[tuple[str, float]]:
    """(partition label, value) in partition order."""
    for partition in sorted(values):
        yield str(partition), values[partition]
