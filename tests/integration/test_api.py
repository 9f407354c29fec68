"""The HTTP API against the real stack: every endpoint, each error, idempotency, the stream.

One stack for the module (``tests/apienv.py``: publisher, order_entry, the API on a free port);
every request goes over real HTTP with httpx. Servers that are away are real too: a Redis URL
and a broker address where nothing listens.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from common.cache.lookup import lookup
from common.cache.reader import QuoteReader
from common.cache.settings import CacheSettings
from common.cache.snapshots import Snapshot
from common.config import build
from common.errors import ConfigError
from common.kafka import KafkaSettings
from common.runtime import EmbeddedBroker, EmbeddedStack
from common.runtime.stack import start_on_free_port
from common.schema import OrderFilled
from http_api.config import ApiConfig
from http_api.kafkalink import KafkaLink
from portfolio.marked import marked_positions
from portfolio.positions import PositionStore
from tests.apienv import (
    API_TOKEN,
    PF_CACHED,
    PF_COLD,
    PF_NOWHERE,
    TRADABLE,
    ApiEnv,
    api_config,
    api_env,
    running_api,
)
from tests.feedkey import FEED_KEY
from tests.helpers import eventually, spawn

DEAD_REDIS = "redis://:s3cret@127.0.0.1:1/0"


@pytest_asyncio.fixture(scope="module")
async def env(stack: EmbeddedStack) -> AsyncIterator[ApiEnv]:
    async with api_env(stack) as running:
        yield running


async def post_order(
    http: httpx.AsyncClient, key: str | None = None, **order: Any
) -> httpx.Response:
    body = {"side": "buy", "symbol": TRADABLE[0], "qty": 3, "account": "t-api", **order}
    headers = {"Idempotency-Key": key} if key else {}
    return await http.post("/v1/orders", json=body, headers=headers)


async def test_quotes_answer_as_marketfeed_quote(env: ApiEnv) -> None:
    r = await env.http.get("/v1/quotes", params={"symbols": f"{TRADABLE[0]},{TRADABLE[1]},ZZZZ"})
    assert r.status_code == 200
    rows = r.json()["quotes"]
    assert [(q["symbol"], q["status"]) for q in rows] == [
        (TRADABLE[0], "cached"),
        (TRADABLE[1], "cached"),
        ("ZZZZ", "not-of-interest"),
    ]
    assert set(rows[0]) >= {"bid", "ask", "bid_size", "ask_size", "seq", "age_s", "stale"}

    # portfolio's hand-filled cache: cached, cold (the publisher's snapshot), nowhere.
    symbols = [PF_CACHED, PF_COLD, PF_NOWHERE, "ZZZZ"]
    r = await env.http.get(
        "/v1/quotes", params={"symbols": ",".join(symbols), "service": "portfolio"}
    )
    assert r.status_code == 200
    statuses = [q["status"] for q in r.json()["quotes"]]
    assert statuses == ["cached", "snapshot", "missing", "not-of-interest"]

    # The command line's lookup, over the same cache, says the same.
    trust = CacheSettings(feed_key=FEED_KEY).trust()
    async with KafkaLink(env.kafka, orders_kept=10, trust=trust) as link:
        await asyncio.wait_for(link.ready.wait(), 20)

        async def fetch(missing: list[str]) -> Snapshot | None:
            return await link.snapshot(missing, 3.0)

        async with QuoteReader.from_url(env.portfolio_url, prefix=env.pf_prefix) as reader:
            cli_rows = await lookup(reader, symbols, fetch)
    assert [str(row.status) for row in cli_rows] == statuses
    assert r.json()["quotes"][0]["seq"] == cli_rows[0].as_dict()["seq"]  # not updated by hand

    r = await env.http.get("/v1/symbols", params={"service": "portfolio"})
    assert r.json()["symbols"] == sorted([PF_CACHED, PF_COLD, PF_NOWHERE])


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("/v1/quotes", {"symbols": "aa$"}, 400, "bad_symbol"),
        ("/v1/quotes", {"symbols": "AAAA", "service": "nope"}, 400, "unknown_service"),
        ("/v1/quotes", {}, 400, "bad_parameter"),
        ("/v1/quotes", {"symbols": " , "}, 400, "bad_parameter"),
        ("/v1/quotes", {"symbols": ",".join(f"S{i}" for i in range(501))}, 400, "bad_parameter"),
        ("/v1/stream/quotes", {"symbols": "AAAA", "max_rate": "-1"}, 400, "bad_parameter"),
        ("/v1/stream/quotes", {"symbols": "aa$"}, 400, "bad_symbol"),
        ("/v1/orders/no-such-order", {}, 404, "unknown_order"),
        ("/v1/orders", {"limit": "0"}, 400, "bad_parameter"),
        ("/v1/nothing", {}, 404, "not_found"),
    ],
)
async def test_bad_requests_are_json_with_a_reason(
    env: ApiEnv, path: str, params: dict[str, str], status: int, reason: str
) -> None:
    if path.startswith("/v1/orders/"):
        await asyncio.wait_for(env.api.backend.kafka.orders.caught_up.wait(), 20)
    r = await env.http.get(path, params=params)
    assert (r.status_code, r.json()["error"]) == (status, reason), r.text
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    "body",
    [
        {"side": "hold", "symbol": "AAAA", "qty": 1},
        {"side": "buy", "symbol": "AAAA", "qty": 0},
        {"side": "buy", "symbol": "AAAA", "qty": 1, "limit": -2},
        {"side": "buy", "symbol": "aa$", "qty": 1},
        {"side": "buy", "qty": 1},
        {"side": "buy", "symbol": "AAAA", "qty": 1, "colour": "red"},
    ],
)
async def test_an_invalid_order_is_422_and_nothing_is_sent(
    env: ApiEnv, body: dict[str, Any]
) -> None:
    before = len(env.api.backend.kafka.orders.recent(10_000))
    r = await env.http.post("/v1/orders", json=body)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_body"), r.text
    assert len(env.api.backend.kafka.orders.recent(10_000)) == before


async def test_post_waits_for_the_outcome_and_get_reads_the_event_log(env: ApiEnv) -> None:
    r = await post_order(env.http)
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "filled"
    assert [e["type"] for e in order["events"]] == ["order.accepted", "order.filled"]
    assert r.headers["location"] == f"/v1/orders/{order['order_id']}"
    got = await env.http.get(r.headers["location"])
    assert got.status_code == 200
    assert got.json()["events"] == order["events"]

    rejected = await post_order(env.http, symbol="ZZZZ")
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "UNKNOWN_SYMBOL")

    recent = (await env.http.get("/v1/orders", params={"limit": 50})).json()["orders"]
    assert {order["order_id"], rejected.json()["order_id"]} <= {o["order_id"] for o in recent}


async def test_a_retried_post_answers_the_first_outcome_and_places_one_order(
    env: ApiEnv,
) -> None:
    key = uuid.uuid4().hex
    first = await post_order(env.http, key)
    again = await post_order(env.http, key)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.json()["events"] == first.json()["events"]

    # Two at once with a new key: one order between them.
    key = uuid.uuid4().hex
    both = await asyncio.gather(post_order(env.http, key), post_order(env.http, key))
    assert {r.json()["order_id"] for r in both} == {both[0].json()["order_id"]}
    order_id = both[0].json()["order_id"]
    # What order_entry wrote, read again after more orders went through: one answer only.
    await post_order(env.http)
    events = env.api.backend.kafka.orders.events(order_id) or []
    assert [e.TYPE for e in events] == ["order.accepted", "order.filled"]

    reused = await post_order(env.http, key, side="sell")
    assert (reused.status_code, reused.json()["error"]) == (422, "idempotency_key_reused")


async def test_positions_and_lag(env: ApiEnv) -> None:
    client = aioredis.Redis.from_url(env.portfolio_url)
    store = PositionStore(client, prefix=env.pf_prefix)
    fill = OrderFilled(
        order_id=uuid.uuid4().hex,
        account="t-pos",
        symbol=PF_CACHED,
        side="B",
        qty=10,
        price=1.0,
        ts_ns=time.time_ns(),
    )
    await store.apply(fill)
    await client.aclose()
    r = await env.http.get("/v1/positions", params={"account": "t-pos"})
    assert r.status_code == 200
    body = r.json()
    async with QuoteReader.from_url(env.portfolio_url, prefix=env.pf_prefix) as reader:
        expected = await marked_positions(reader, prefix=env.pf_prefix, accounts=["t-pos"])
    assert [(p["symbol"], p["qty"], p["mark"]) for p in body["positions"]] == [
        (e.position.symbol, e.position.qty, e.mark) for e in expected
    ]
    assert body["totals"]["unrealised"] == pytest.approx(expected[0].unrealised)

    async def lag_sampled() -> bool:
        return (await env.http.get("/v1/lag")).status_code == 200

    await eventually(lag_sampled, what="a lag sample")
    lag = (await env.http.get("/v1/lag")).json()
    assert {s["service"] for s in lag["services"]} == {"order_entry", "portfolio"}
    oe = next(s for s in lag["services"] if s["service"] == "order_entry")
    assert oe["state"] in ("live", "idle")
    assert oe["partitions"]
    history = (await env.http.get("/v1/lag/history")).json()
    assert history["points"]
    assert "order_entry" in history["points"][-1]["services"]


async def test_the_stream_sends_only_the_requested_symbols_conflated(env: ApiEnv) -> None:
    wanted = {TRADABLE[0], TRADABLE[1]}
    seen: list[dict[str, Any]] = []
    params = {"symbols": ",".join(sorted(wanted)), "max_rate": "2"}
    async with env.http.stream("GET", "/v1/stream/quotes", params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r)
        while len(seen) < 6:
            kind, data = await anext(events)
            assert kind == "quotes"
            seen.append(data)
    quotes = [q for event in seen for q in event["quotes"]]
    assert {q["symbol"] for q in quotes} == wanted
    # The symbols change faster than 2 a second: the reader got the newest, never a backlog.
    assert seen[-1]["conflated"] > 0
    by_symbol: dict[str, list[int]] = {}
    for q in quotes[len(seen[0]["quotes"]) :]:
        by_symbol.setdefault(q["symbol"], []).append(q["seq"])
    assert any(b - a > 1 for seqs in by_symbol.values() for a, b in itertools.pairwise(seqs))


async def test_a_client_that_stops_reading_holds_nobody_up(env: ApiEnv) -> None:
    hub = env.api.backend.hub
    async with (
        hub.subscribe("order_entry", TRADABLE, 50.0) as stuck,
        hub.subscribe("order_entry", TRADABLE, 50.0) as reading,
    ):
        # `stuck` is never taken from (a sender blocked on a full socket); `reading` is.
        got = 0
        while got < 20:
            await asyncio.wait_for(reading.changed.wait(), 10)
            got += len(reading.take(5.0))
        assert stuck.replaced > 0  # newer values took the place of older ones...
        assert len(stuck.take(5.0)) <= len(TRADABLE)  # ...a slot per symbol, never a queue


async def test_openapi_docs_and_dashboard(env: ApiEnv) -> None:
    spec = (await env.http.get("/openapi.json")).json()
    assert {
        "/v1/quotes",
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/positions",
        "/v1/lag",
        "/v1/stream/quotes",
    } <= set(spec["paths"])
    assert (await env.http.get("/docs")).status_code == 200
    page = await env.http.get("/")
    assert page.status_code == 200
    assert 'src="/static/app.js"' in page.text
    for name in ("app.js", "chart.js", "style.css"):
        assert (await env.http.get(f"/static/{name}")).status_code == 200


async def test_servers_away_are_503_and_never_show_a_password(env: ApiEnv) -> None:
    # Redis away (with a password in its URL); the broker away (nothing listens there). The
    # cache of order_entry is still served: reading a cache needs no broker.
    config = api_config(
        KafkaSettings(bootstrap="127.0.0.1:1", topic_prefix=env.kafka.topic_prefix, partitions=4),
        order_entry_redis_url=env.redis_url,
        order_entry_redis_prefix=env.oe_prefix,
        portfolio_redis_url=DEAD_REDIS,
        connect_timeout=1.0,
    )
    async with running_api(config) as (_, http):
        r = await http.get("/v1/quotes", params={"symbols": PF_CACHED, "service": "portfolio"})
        assert (r.status_code, r.json()["error"]) == (503, "cache_unavailable")
        r = await http.get("/v1/positions")
        assert (r.status_code, r.json()["error"]) == (503, "cache_unavailable")
        assert "s3cret" not in r.text
        r = await http.get("/v1/quotes", params={"symbols": TRADABLE[0]})
        assert r.status_code == 200
        assert r.json()["quotes"][0]["status"] == "cached"
        r = await post_order(http)
        assert (r.status_code, r.json()["error"]) == (503, "broker_unavailable")
        for path in ("/v1/orders/x", "/v1/orders"):
            r = await http.get(path)
            assert (r.status_code, r.json()["error"]) == (503, "broker_unavailable")
        assert (await http.get("/v1/health")).json()["broker"] == "unavailable"


async def test_no_outcome_in_time_is_202_with_the_orders_url(stack: EmbeddedStack) -> None:
    # A broker, but no order_entry on these topics: the command is sent, nobody answers.
    kafka = KafkaSettings(
        bootstrap=stack.bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=4
    )
    async with running_api(api_config(kafka, order_timeout=1.0)) as (api, http):
        await asyncio.wait_for(api.backend.kafka.ready.wait(), 20)
        # The topic's metadata before the first send, which then needs one round trip.
        await api.backend.kafka.producer.partitions_for(kafka.topics.orders_commands)
        body = {"side": "buy", "symbol": "AAAA", "qty": 1}
        headers = {"Idempotency-Key": "no-outcome"}
        # The wait bounds the broker's acknowledgement too: on a busy machine it can come late
        # (504, may be retried with the same key, as a client does) before an ack in time (202).
        for _ in range(10):
            r = await http.post("/v1/orders", json=body, headers=headers, params={"wait": 0.5})
            if r.status_code != 504:
                break
        assert r.status_code == 202
        assert r.json()["status"] == "pending"
        assert r.headers["location"] == f"/v1/orders/{r.json()['order_id']}"


async def test_a_frozen_broker_is_504_and_the_order_may_be_retried(tmp_path: Path) -> None:
    # A broker of its own, frozen (SIGSTOP) once the API is connected: the command is never
    # acknowledged. The shared broker is left alone (other tests use it).
    broker = await start_on_free_port(lambda: EmbeddedBroker(log_path=tmp_path / "broker.log"))
    try:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic_prefix="t.", partitions=4)
        async with running_api(api_config(kafka, order_timeout=1.0)) as (api, http):
            await asyncio.wait_for(api.backend.kafka.ready.wait(), 20)
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                r = await post_order(http, "frozen-1")
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            assert (r.status_code, r.json()["error"]) == (504, "order_timeout")
            assert "Idempotency-Key" in r.json()["detail"]
    finally:
        await broker.kill()


async def test_python_m_http_api_prints_its_url_and_stops_on_sigterm(env: ApiEnv) -> None:
    argv = [
        sys.executable,
        "-m",
        "http_api",
        f"--bootstrap={env.kafka.bootstrap}",
        f"--topic-prefix={env.kafka.topic_prefix}",
        "--partitions=4",
        f"--redis-url={env.redis_url}",
        f"--order-entry-redis-prefix={env.oe_prefix}",
        "--port=0",
        "--log-level=WARNING",
    ]
    proc = await spawn(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MARKETFEED_FEED_KEY": FEED_KEY},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("marketfeed api: http://127.0.0.1:"), line
        url = line.split()[2]
        async with httpx.AsyncClient() as http:
            r = await http.get(url + "v1/quotes", params={"symbols": TRADABLE[0]})
        assert r.json()["quotes"][0]["status"] == "cached"
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()


async def _sse(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def test_without_the_token_only_health_metrics_and_login_answer(env: ApiEnv) -> None:
    """Every other user of the machine can reach the port: the token is what keeps them out."""
    base = env.http.base_url
    async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
        for path in ("/v1/quotes?symbols=AAAA", "/v1/orders", "/v1/positions", "/", "/docs"):
            refused = await anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
            assert API_TOKEN not in refused.text
        wrong = {"Authorization": "Bearer " + API_TOKEN[:-1] + "X"}
        assert (await anonymous.get("/v1/positions", headers=wrong)).status_code == 401
        # An order without the token is refused before anything is sent.
        order = {"side": "buy", "symbol": TRADABLE[0], "qty": 1, "account": "intruder"}
        assert (await anonymous.post("/v1/orders", json=order)).status_code == 401
        assert (await anonymous.get("/v1/health")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
        assert (await anonymous.get("/static/app.js")).status_code == 200
        assert (await anonymous.get("/login", params={"token": "guess"})).status_code == 401
    listed = await env.http.get("/v1/orders", params={"account": "intruder"})
    assert listed.json()["orders"] == []


async def test_the_login_link_gives_a_browser_its_session_cookie(env: ApiEnv) -> None:
    async with httpx.AsyncClient(base_url=env.http.base_url, timeout=30) as browser:
        login = await browser.get("/login", params={"token": API_TOKEN})
        assert login.status_code == 303
        assert login.headers["location"] == "/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        # httpx keeps the cookie as a browser does: the dashboard and the API now answer.
        assert (await browser.get("/")).status_code == 200
        quotes = await browser.get("/v1/quotes", params={"symbols": TRADABLE[0]})
        assert quotes.json()["quotes"][0]["status"] == "cached"


def test_an_api_open_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"--host=0\.0\.0\.0 without --api-token"):
        ApiConfig(host="0.0.0.0", bootstrap="127.0.0.1:1").resolve()
    with pytest.raises(ConfigError, match=r"MARKETFEED_API_TOKEN=\*\*\*: must be 16"):
        build(ApiConfig, environ={"MARKETFEED_API_TOKEN": "short"})
