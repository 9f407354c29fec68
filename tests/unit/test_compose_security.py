"""compose.yaml's security, checked without Docker: what can be run here is run.

- The broker's start script (deploy/kafka/start.sh) runs for real, with stand-ins for the Kafka
  tools that record how they were called: the configuration it writes, the SCRAM users it
  creates (passwords through files, never on a command line), the ACLs it applies, its stop.
- Each service's Kafka settings are built from its compose environment and the secrets it
  mounts: SASL_SSL as its own SCRAM user, with the password the broker creates that user with,
  and a TLS handshake, in memory, between the service's context and the broker's keystore.
- deploy/kafka/acls.tsv is evaluated against the topic and group names the code builds: every
  service may do what it does (the requests of a `marketfeed up` run), and no service but the
  publisher may write market data, none but order_entry order events.
- Each Redis server runs with its compose command: the service's URL gets in; no password gets
  NOAUTH (what the healthcheck looks for); CONFIG is gone.

What is not run: Apache Kafka itself (no JVM or image here). Whether Kafka 3.9 accepts the
configuration is by its documentation, not by a test.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.config import build
from common.kafka import KafkaSettings
from common.kafkasec import SecurityProtocol, connection, sasl_password
from common.runtime.binaries import redis_binary
from common.runtime.process import free_port
from common.topics import Topics
from order_entry.config import OrderEntryConfig
from portfolio.config import PortfolioConfig
from tests.composefile import (
    ROOT,
    Deployment,
    argv_of,
    built_services,
    deploy,
    environment,
    kafka_service,
    redis_services,
    service_of_module,
)

ACLS = ROOT / "deploy" / "kafka" / "acls.tsv"
START = ROOT / "deploy" / "kafka" / "start.sh"
TOOLS = (
    "kafka-storage.sh",
    "kafka-server-start.sh",
    "kafka-broker-api-versions.sh",
    "kafka-configs.sh",
    "kafka-acls.sh",
)
# A stand-in for each Kafka tool: it logs its name and arguments (and, for kafka-configs.sh, the
# file it is given, read at call time). The "broker" runs until SIGTERM; api-versions answers
# only once the broker runs, so the script's wait is exercised.
FAKE_TOOL = """#!/bin/sh
tool=$(basename "$0")
echo "$tool $*" >>"$FAKE_LOG"
case "$tool" in
kafka-server-start.sh)
    trap 'echo "broker stopped by TERM" >>"$FAKE_LOG"; exit 0' TERM
    touch "$FAKE_LOG.running"
    while :; do sleep 0.05; done ;;
kafka-broker-api-versions.sh)
    [ -e "$FAKE_LOG.running" ] ;;
kafka-configs.sh)
    while [ $# -gt 0 ]; do
        [ "$1" = --add-config-file ] && echo "  file: $(cat "$2")" >>"$FAKE_LOG"
        shift
    done ;;
esac
"""


@dataclass(frozen=True, slots=True)
class BrokerRun:
    properties: dict[str, str]
    calls: list[str]
    exit_code: int
    work: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(tmp_path_factory.mktemp("deployment"))


@pytest.fixture(scope="module")
def broker(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> BrokerRun:
    name, kafka = kafka_service()
    assert argv_of(kafka, "entrypoint") == ["/bin/sh", "/deploy/kafka/start.sh"]
    assert "./deploy/kafka:/deploy/kafka:ro" in (kafka.get("volumes") or [])
    root = tmp_path_factory.mktemp("kafka")
    (root / "bin").mkdir()
    for tool in TOOLS:
        (root / "bin" / tool).write_text(FAKE_TOOL)
        (root / "bin" / tool).chmod(0o755)
    log, work = root / "calls.log", root / "work"
    env = {
        "PATH": os.environ["PATH"],
        "KAFKA_HOME": str(root),
        "MARKETFEED_SECRETS": str(deployment.mount(name)),
        "MARKETFEED_WORK": str(work),
        "MARKETFEED_ACLS": str(ACLS),
        "CLUSTER_ID": environment(kafka)["CLUSTER_ID"],
        "FAKE_LOG": str(log),
    }
    with subprocess.Popen(
        ["sh", str(START)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        deadline = time.monotonic() + 60
        while not (work / "ready").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate()
                raise AssertionError(f"start.sh never got ready: {err.decode()}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    return BrokerRun(
        properties=_properties((work / "server.properties").read_text()),
        calls=log.read_text().splitlines(),
        exit_code=proc.returncode,
        work=work,
    )


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    found = {}
    for item in value.split(","):
        name, address = item.split("://")
        host, port = address.rsplit(":", 1)
        found[name] = (host, int(port))
    return found


def _users(deployment: Deployment) -> dict[str, str]:
    listing = (deployment.mount(kafka_service()[0]) / "kafka-users.properties").read_text()
    return dict(line.split("=", 1) for line in listing.splitlines() if line)


def _security(deployment: Deployment, name: str) -> KafkaSettings:
    return build(KafkaSettings, {}, deployment.environ(name))


# --- the broker's start script ---------------------------------------------------------------


def test_the_broker_is_set_up_before_it_is_ready_and_stops_on_sigterm(
    broker: BrokerRun, deployment: Deployment
) -> None:
    tools = [call.split()[0] for call in broker.calls if not call.startswith(" ")]
    assert tools[0] == "kafka-storage.sh"
    assert "kafka-server-start.sh" in tools
    cluster = environment(kafka_service()[1])["CLUSTER_ID"]
    assert f"--cluster-id {cluster}" in broker.calls[0]
    assert "--ignore-formatted" in broker.calls[0]
    # Users and grants before ready, then the broker got the TERM and the script exited 0.
    assert broker.calls[-1] == "broker stopped by TERM"
    assert broker.exit_code == 0
    users = _users(deployment)
    made = [c for c in broker.calls if c.startswith("kafka-configs.sh")]
    assert sorted(c.split("--entity-name ")[1].split()[0] for c in made) == sorted(users)
    files = [c.removeprefix("  file: ") for c in broker.calls if c.startswith("  file: ")]
    assert sorted(files) == sorted(f"SCRAM-SHA-512=password={pw}" for pw in users.values())
    for password in users.values():
        assert not [c for c in broker.calls if password in c and not c.startswith("  file: ")]
    assert not (broker.work / "scram.properties").exists(), "a password file was left behind"
    applied = [c for c in broker.calls if c.startswith("kafka-acls.sh")]
    assert len(applied) == len(_grants())
    for grant, call in zip(_grants(), applied, strict=True):
        assert f"--allow-principal User:{grant.principal}" in call
        assert f"--{grant.resource} {grant.name} --resource-pattern-type {grant.pattern}" in call
        assert {op.strip() for op in call.split("--operation ")[1:]} == set(grant.ops)


def test_clients_reach_the_broker_only_over_sasl_ssl(broker: BrokerRun) -> None:
    conf = broker.properties
    name, _ = kafka_service()
    protocols = dict(p.split(":") for p in conf["listener.security.protocol.map"].split(","))
    bound = _listeners(conf["listeners"])
    advertised = _listeners(conf["advertised.listeners"])
    reachable = {n for n, (host, _) in advertised.items() if host == name}
    assert reachable == {"SASL_SSL"}
    assert protocols["SASL_SSL"] == "SASL_SSL"
    # Everything else is plaintext on the container's loopback, for KRaft and the set-up.
    for listener, (host, _) in bound.items():
        if listener != "SASL_SSL":
            assert host in {"localhost", "127.0.0.1"}, f"{listener} is reachable from outside"
    # ANONYMOUS (the super user) can only be a client of those loopback listeners.
    assert conf["super.users"] == "User:ANONYMOUS"
    assert conf["authorizer.class.name"].endswith("StandardAuthorizer")
    assert conf["allow.everyone.if.no.acl.found"] == "false"
    assert conf["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert conf["auto.create.topics.enable"] == "false"
    assert set(conf["process.roles"].split(",")) == {"broker", "controller"}
    address = f"{advertised['SASL_SSL'][0]}:{advertised['SASL_SSL'][1]}"
    assert bound["SASL_SSL"][1] == advertised["SASL_SSL"][1]
    for service in built_services().values():
        bootstrap = build(KafkaSettings, environ=environment(service)).bootstrap
        assert bootstrap == address
        assert name in (service.get("depends_on") or {})


@pytest.mark.parametrize("name", sorted(built_services()))
def test_each_service_is_its_own_scram_user_over_tls(
    name: str, deployment: Deployment, broker: BrokerRun
) -> None:
    settings = _security(deployment, name)
    assert settings.security_protocol == SecurityProtocol.SASL_SSL
    assert settings.sasl_mechanism == broker.properties["sasl.enabled.mechanisms"]
    users = _users(deployment)
    assert settings.sasl_username in users
    assert sasl_password(settings) == users[settings.sasl_username]
    others = {_security(deployment, n).sasl_username for n in built_services() if n != name}
    assert settings.sasl_username not in others, "two services share a Kafka user"
    # The service's TLS context accepts the broker's certificate for the name it dials.
    keystore = broker.properties["ssl.keystore.location"]
    assert keystore.startswith(str(deployment.mount(kafka_service()[0])))
    host = settings.bootstrap.split(":")[0]
    _handshake(connection(settings)["ssl_context"], Path(keystore), host)


def _handshake(client: ssl.SSLContext, keystore: Path, host: str) -> None:
    """A TLS handshake between ``client`` and a server with ``keystore``, in memory."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(keystore)  # the key and its certificate, in one PEM file
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for side, obj in (("c", c), ("s", s)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("the TLS handshake did not complete")


# --- the ACLs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    principal: str
    resource: str
    pattern: str
    name: str
    ops: tuple[str, ...]

    def covers(self, resource: str, name: str) -> bool:
        if resource != self.resource:
            return False
        return name == self.name if self.pattern == "literal" else name.startswith(self.name)


def _grants() -> list[Grant]:
    grants = []
    for line in ACLS.read_text().splitlines():
        if line and not line.startswith("#"):
            principal, resource, pattern, name, ops = line.split("\t")
            grants.append(Grant(principal, resource, pattern, name, tuple(ops.split(","))))
    return grants


# What each operation implies (Kafka's authorizer: Read, Write, Delete, Alter imply Describe).
_IMPLIES = {"Read": {"Describe"}, "Write": {"Describe"}}


def allowed(principal: str, op: str, resource: str, name: str) -> bool:
    return any(
        grant.principal == principal
        and grant.covers(resource, name)
        and (op in grant.ops or any(op in _IMPLIES.get(g, set()) for g in grant.ops))
        for grant in _grants()
    )


def _principal(deployment: Deployment, module: str) -> str:
    username = _security(deployment, service_of_module(module)[0]).sasl_username
    assert username is not None
    return username


Need = tuple[str, str, str]  # (operation, resource, name)


def _needs(deployment: Deployment) -> dict[str, list[Need]]:
    """(operation, resource, name) each service needs: what it sent in a `marketfeed up` run,
    with the names built as the code builds them."""
    topics = Topics()
    oe = build(OrderEntryConfig, {}, deployment.environ(service_of_module("order_entry")[0]))
    pf = build(PortfolioConfig, {}, deployment.environ(service_of_module("portfolio")[0]))

    def cache(name: str, config: OrderEntryConfig | PortfolioConfig, role: str) -> list[Need]:
        app = config.group_id(name, role)
        return [
            ("Read", "topic", topics.quotes),
            ("Write", "topic", topics.snapshot_requests),
            ("Create", "topic", topics.snapshot_requests),
            ("Read", "topic", topics.snapshot_replies(name)),
            ("Create", "topic", topics.snapshot_replies(name)),
            ("Write", "topic", topics.dead_letter(name)),
            ("Create", "topic", topics.dead_letter(name)),
            ("Read", "group", app),
            ("Read", "group", config.group_id(name, "quote-cache")),
            # faust's own topics: <app id>-__assignor-__leader, changelogs
            ("Create", "topic", f"{app}-__assignor-__leader"),
            ("Read", "topic", f"{app}-__assignor-__leader"),
            ("Write", "topic", f"{app}-__assignor-__leader"),
        ]

    market = [topics.quotes, topics.trades, topics.snapshot_requests]
    replies = [topics.snapshot_replies(s) for s in ("order_entry", "portfolio", "api")]
    return {
        "feed_publisher": [("Write", "topic", t) for t in [*market[:2], *replies]]
        + [("Create", "topic", t) for t in market]
        + [("Read", "topic", topics.snapshot_requests)],
        "order_entry": [
            *cache("order_entry", oe, "orders"),
            ("Read", "topic", topics.orders_commands),
            ("Create", "topic", topics.orders_commands),
            ("Write", "topic", topics.orders_events),
            ("Create", "topic", topics.orders_events),
        ],
        "portfolio": [
            *cache("portfolio", pf, "positions"),
            ("Read", "topic", topics.orders_events),
            ("Create", "topic", topics.orders_events),
        ],
        "http_api": [
            ("Read", "topic", topics.quotes),
            ("Write", "topic", topics.snapshot_requests),
            ("Read", "topic", topics.snapshot_replies("api")),
            ("Create", "topic", topics.snapshot_replies("api")),
            ("Write", "topic", topics.orders_commands),
            ("Read", "topic", topics.orders_events),
        ],
    }


@pytest.mark.parametrize("module", ["feed_publisher", "order_entry", "portfolio", "http_api"])
def test_each_service_may_do_what_it_does(module: str, deployment: Deployment) -> None:
    principal = _principal(deployment, module)
    refused = [n for n in _needs(deployment)[module] if not allowed(principal, *n)]
    assert not refused, f"{principal} would be refused {refused}"


def test_only_the_publisher_writes_market_data_and_only_order_entry_order_events(
    deployment: Deployment,
) -> None:
    topics = Topics()
    publisher = _principal(deployment, "feed_publisher")
    order_entry = _principal(deployment, "order_entry")
    market = [topics.quotes, topics.trades, *(topics.snapshot_replies(s) for s in ("x", "api"))]
    principals = {g.principal for g in _grants()}
    assert principals == {_principal(deployment, m) for m in _needs(deployment)}
    for principal in principals:
        for topic in market:
            assert allowed(principal, "Write", "topic", topic) == (principal == publisher)
        may = allowed(principal, "Write", "topic", topics.orders_events)
        assert may == (principal == order_entry), f"{principal} may write order events"
    # Nobody may delete or reconfigure a topic, touch the cluster or grant itself more.
    for grant in _grants():
        assert grant.resource in {"topic", "group"}, grant
        assert not {"All", "Delete", "Alter", "AlterConfigs"} & set(grant.ops), grant


# --- Redis -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """The order_entry Redis, started with its compose command (paths and port aside)."""
    name = next(n for n in redis_services() if "order-entry" in n)
    argv = argv_of(redis_services()[name])
    assert argv[0] == "redis-server"
    conf = Deployment.in_container(argv[1], deployment.mount(name))
    port = free_port()
    data = tmp_path_factory.mktemp("redis-data")
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    with subprocess.Popen(
        [redis_binary(), conf, *argv[2:], *local],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        try:
            _wait_listening(port, proc)
            yield name, port
        finally:
            proc.terminate()
            proc.wait(10)


def _client(port: int, password: str | None = None) -> redis.Redis:
    # No retries: redis-py's default backs off for seconds before it reports a refusal.
    return redis.Redis(port=port, password=password, socket_timeout=1, retry=Retry(NoBackoff(), 0))


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        assert proc.poll() is None, "redis-server exited: its compose command is wrong"
        try:
            _client(port).ping()
        except redis.AuthenticationError:
            return
        except redis.ConnectionError:
            time.sleep(0.05)
        else:
            raise AssertionError("redis-server answers without a password")
    raise AssertionError("redis-server did not listen")


def test_the_service_url_gets_into_its_redis_and_nothing_else_does(
    redis_server: tuple[str, int], deployment: Deployment
) -> None:
    name, port = redis_server
    service, _ = service_of_module("order_entry")
    url = urlsplit(build(OrderEntryConfig, {}, deployment.environ(service)).redis_url)
    assert url.hostname == name
    local = urlunsplit(url._replace(netloc=f":{url.password}@127.0.0.1:{port}"))
    client = redis.Redis.from_url(local, retry=Retry(NoBackoff(), 0))
    assert client.ping()
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.config_get("dir")
    client.close()
    with pytest.raises(redis.AuthenticationError):
        _client(port, password="wrong").ping()


def test_the_redis_healthcheck_passes_only_while_it_answers(
    redis_server: tuple[str, int],
) -> None:
    name, port = redis_server
    test = redis_services()[name]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    cli = shutil.which("redis-cli") or str(Path(redis_binary()).with_name("redis-cli"))
    up = test[1].replace("redis-cli", f"{cli} -p {port}")
    assert subprocess.run(["sh", "-c", up], check=False, timeout=10).returncode == 0
    down = test[1].replace("redis-cli", f"{cli} -p {free_port()}")
    assert subprocess.run(["sh", "-c", down], check=False, timeout=10).returncode != 0
