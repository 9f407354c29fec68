"""Every process of ``marketfeed up`` serves Prometheus metrics, and they move.

One short ``up``: the /metrics URL of each process and the API's URL are read from ``up.json``
(as a user, or Prometheus's file discovery, would); each endpoint is scraped, its metric names
checked against the documented ones (README, "Metrics"), and scraped again until its counters
moved. The run then stops as cleanly as any other.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import eventually, marketfeed_command
from tests.integration.test_up import assert_stopped_cleanly, ctrl_c, orders_answered, up

CACHE = [
    *(
        f"marketfeed_cache_{name}_total"
        for name in (
            "received", "filtered", "applied", "conflated", "stale", "gaps", "dead_letters",
            "rollovers", "snapshots", "snapshot_quotes", "gap_fills", "replays",
            "lost_generations", "out_of_range", "rebuilds", "commit_errors",
        )
    ),
    "marketfeed_cache_warm",
    "marketfeed_cache_symbols",
    "marketfeed_cache_generation",
    "marketfeed_cache_offset_lag",
    "marketfeed_cache_time_lag_seconds",
    "marketfeed_cache_e2e_latency_seconds",
]  # fmt: skip
RETRIES = ["marketfeed_dependency_failing", "marketfeed_dependency_failures_total"]
PROCESS = ["process_cpu_seconds_total", "process_resident_memory_bytes"]
# The documented metrics of each process (README, "Metrics"), and a counter that must move.
DOCUMENTED = {
    "publisher": (
        [
            *(
                f"marketfeed_publisher_{name}_total"
                for name in (
                    "generated",
                    "sent",
                    "acked",
                    "failed",
                    "dropped",
                    "snapshots_served",
                    "snapshots_rejected",
                    "rolls",
                    "deleted",
                    "delete_failures",
                )
            ),
            "marketfeed_publisher_held",
            "marketfeed_publisher_generation",
            "marketfeed_publisher_lateness_seconds",
            "marketfeed_publisher_stalled",
        ],
        "marketfeed_publisher_acked_total",
    ),
    "order_entry": (
        [
            *CACHE,
            *(
                f"marketfeed_orders_{name}_total"
                for name in ("commands", "duplicates", "resent", "recovered", "dead_letters")
            ),
            "marketfeed_orders_outcomes_total",
            "marketfeed_orders_partitions",
            "marketfeed_orders_rebalances_total",
        ],
        "marketfeed_cache_received_total",
    ),
    "portfolio": (
        [
            *CACHE,
            "marketfeed_positions_applied_total",
            "marketfeed_positions_redelivered_total",
            "marketfeed_positions_dead_letters_total",
            "marketfeed_positions_symbols_held",
        ],
        "marketfeed_cache_received_total",
    ),
    "order_flow": (
        [
            *(
                f"marketfeed_order_flow_{name}_total"
                for name in ("sent", "acked", "failed", "unpriced", "orders")
            ),
            "marketfeed_order_flow_lateness_seconds",
        ],
        "marketfeed_order_flow_sent_total",
    ),
    "api": (
        [
            "marketfeed_api_stream_clients",
            *(
                f"marketfeed_api_stream_{name}_total"
                for name in ("polls", "updates", "conflated", "events")
            ),
            "marketfeed_api_broker_connected",
            "marketfeed_api_responses_total",
        ],
        "marketfeed_api_responses_total",
    ),
}
# Processes without a retry state of their own to show.
NO_RETRIES = {"order_flow"}


async def scrape(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """Every sample of ``url``: ``name{labels}`` -> value."""
    answer = await client.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def names(samples: dict[str, float]) -> set[str]:
    return {key.split("{", 1)[0] for key in samples}


def _is(sample: str, name: str) -> bool:
    """Whether ``sample`` is of the metric ``name`` (a histogram's: _bucket, _count, _sum)."""
    return sample == name or sample.startswith(name + "_")


def total(samples: dict[str, float], name: str) -> float:
    return sum(v for key, v in samples.items() if key.startswith(name + "{"))


async def test_every_process_serves_the_documented_metrics_and_they_move(tmp_path: Path) -> None:
    async with up(tmp_path, "--rate", "1000", "--orders-rate", "10") as run:
        await run.wait_for(lambda: orders_answered(run), "orders answered")
        state = run.state
        pids, metrics, api = state["processes"], state["metrics"], state["api"]
        assert isinstance(pids, dict)
        assert isinstance(metrics, dict)
        assert isinstance(api, str)
        assert set(metrics) == set(DOCUMENTED), metrics
        assert metrics["api"] == api + "metrics"
        for name, url in metrics.items():
            assert url.startswith("http://127.0.0.1:"), (name, url)
            assert url in run.out, f"the banner does not show {name}'s {url}"
        async with httpx.AsyncClient(timeout=10) as client:
            # Something for the API to count (it counts an answer once it starts sending it):
            # a request without up's token is refused, one with it is answered.
            token = state["api_token"]
            assert isinstance(token, str)
            assert len(token) >= 32
            assert token not in run.out, "up printed its API token"
            refused = await client.get(api + "v1/quotes", params={"symbols": "AAAA"})
            assert refused.status_code == 401
            answer = await client.get(
                api + "v1/quotes",
                params={"symbols": "AAAA"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200
            # `marketfeed dashboard` prints the login link that gives a browser its cookie.
            code, printed, err = await marketfeed_command("dashboard", state_dir=tmp_path / "state")
            assert code == 0, err
            link = printed.strip()
            assert link == f"{api}login?token={token}"
            login = await client.get(link)
            assert login.status_code == 303
            assert "marketfeed_api" in login.cookies
            first = {name: await scrape(client, url) for name, url in metrics.items()}
            for name, (documented, _) in DOCUMENTED.items():
                expected = set(documented) | set(PROCESS)
                if name not in NO_RETRIES:
                    expected |= set(RETRIES)
                got = names(first[name])
                missing = {d for d in expected if not any(_is(n, d) for n in got)}
                assert not missing, f"{name} lacks {sorted(missing)}"
                undocumented = {
                    n
                    for n in got
                    if n.startswith("marketfeed_") and not any(_is(n, d) for d in expected)
                }
                assert not undocumented, f"{name} serves undocumented {sorted(undocumented)}"

            async def moved() -> bool:
                for name, (_, counter) in DOCUMENTED.items():
                    now = await scrape(client, metrics[name])
                    if total(now, counter) <= total(first[name], counter):
                        return False
                return True

            await eventually(moved, timeout=30, what="every process's counter to move")
            order_entry = await scrape(client, metrics["order_entry"])
            assert (
                order_entry["marketfeed_cache_e2e_latency_seconds_count{service=order_entry}"] > 0
            )
            assert total(order_entry, "marketfeed_orders_outcomes_total") > 0
            quotes = "marketfeed_api_responses_total{route=/v1/quotes,service=api,status=200}"
            assert (await scrape(client, api + "metrics"))[quotes] >= 1
        ctrl_c(run)
        assert await run.ended() == 0, run.err
    assert_stopped_cleanly(run, pids)
