"""compose.yaml, the production path, checked by reading it: no Docker engine runs here.

The checks are about wiring that would only fail at ``docker compose up``: addresses that point
at the wrong listener, a Redis shared by two services, a ``depends_on`` that cannot become
healthy, a ``MARKETFEED_*`` variable no service reads, partition counts that disagree, a command
that runs a module the image does not contain, a process Prometheus does not scrape.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from common.config import ENV_PREFIX, build, env_name, redis_url
from common.kafka import KafkaSettings
from common.symbols import load_symbols
from feed_publisher.config import PublisherConfig
from feed_publisher.universe import universe
from http_api.config import ApiConfig
from marketfeed.targets import BrokerSettings
from order_entry.config import OrderEntryConfig
from portfolio.config import PortfolioConfig

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"

# Services whose config module is not written yet. Their MARKETFEED_* variables are checked
# against KafkaSettings plus PENDING_SETTINGS until `<module>.config` exists; from then on they
# are checked against the service's own config dataclass (see settings_of), and this fallback
# no longer applies to them.
PENDING_CONFIG_MODULES = frozenset({"order_entry", "portfolio"})
PENDING_SETTINGS = frozenset({"MARKETFEED_REDIS_URL"})

# Modules whose `python -m` entry point is not written yet: only their package must exist.
PENDING_MAIN_MODULES = frozenset({"order_entry", "portfolio"})

# The services that keep a Redis cache, each its own.
CONSUMER_MODULES = frozenset({"order_entry", "portfolio"})
# Serves its metrics on its own HTTP port (MARKETFEED_HOST / MARKETFEED_PORT), not --metrics-port.
API_MODULE = "http_api"


@functools.cache
def load_compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), "compose.yaml is not a mapping"
    assert isinstance(doc.get("services"), dict), "compose.yaml has no services"
    return doc


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load_compose()["services"]
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as strings, from either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {} for name in deps}
    return {name: dict(spec or {}) for name, spec in deps.items()}


def command_module(service: Mapping[str, Any]) -> str:
    """X of a ``python -m X`` command."""
    command = service.get("command")
    argv = shlex.split(command) if isinstance(command, str) else list(command or [])
    assert len(argv) >= 3, f"command {command!r} is not `python -m MODULE`"
    assert argv[0] in {"python", "python3"}, f"command {command!r} does not run python"
    assert argv[1] == "-m", f"command {command!r} does not run a module"
    return str(argv[2])


def image_name(service: Mapping[str, Any]) -> str:
    """``apache/kafka:3.9.1`` -> ``apache/kafka``; ``redis:7-alpine`` -> ``redis``."""
    return str(service.get("image", "")).rsplit(":", 1)[0]


def built_services() -> dict[str, dict[str, Any]]:
    """The marketfeed services: the ones built from this repository's Dockerfile."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def kafka_service() -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in services().items() if image_name(s) == "apache/kafka"]
    assert len(found) == 1, f"expected one apache/kafka service, found {[n for n, _ in found]}"
    return found[0]


def redis_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if image_name(s).rsplit("/", 1)[-1] == "redis"}


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}; an empty host means all interfaces."""
    listeners = {}
    for item in value.split(","):
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)://([^:/]*):(\d+)\s*", item)
        assert match, f"cannot parse listener {item!r}"
        listeners[match[1]] = (match[2], int(match[3]))
    return listeners


def kafka_internal_addresses() -> set[str]:
    """``host:port`` of the advertised listeners the other containers can reach.

    Read from KAFKA_ADVERTISED_LISTENERS: those whose host is the kafka service's own name, the
    name compose's network resolves for the other containers.
    """
    name, kafka = kafka_service()
    env = environment(kafka)
    advertised = parse_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    bound = parse_listeners(env["KAFKA_LISTENERS"])
    controllers = set(env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(","))
    internal = set()
    for listener, (host, port) in advertised.items():
        if host != name:
            continue
        assert listener not in controllers, f"{listener} is a controller listener"
        # Inside the compose network nothing remaps ports: the advertised port is the bound one.
        assert listener in bound, f"advertised listener {listener} is not in KAFKA_LISTENERS"
        assert bound[listener][1] == port, (
            f"{listener} is advertised on port {port} but bound on {bound[listener][1]}"
        )
        internal.add(f"{host}:{port}")
    assert internal, f"no advertised listener of kafka names the host {name!r}"
    return internal


def config_classes(module: str) -> list[type[Any]] | None:
    """The settings dataclasses of ``<module>.config`` (those with ``setting`` fields, each
    extending KafkaSettings or the read commands' BrokerSettings); None if that module does not
    exist."""
    try:
        config = importlib.import_module(f"{module}.config")
    except ModuleNotFoundError as exc:
        if exc.name != f"{module}.config":
            raise
        return None
    classes = [
        obj
        for obj in vars(config).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == config.__name__
        and env_settings(obj)
    ]
    assert classes, f"{module}.config defines no settings dataclass"
    for cls in classes:
        assert issubclass(cls, KafkaSettings | BrokerSettings), f"{cls} names no broker"
    return classes


def env_settings(cls: type[Any]) -> set[str]:
    """The variables ``common.config.build`` reads for ``cls``."""
    return {env_name(f.name) for f in dataclasses.fields(cls) if f.init and "help" in f.metadata}


def marketfeed_env(service: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if k.startswith(ENV_PREFIX)}


BUILT = sorted(built_services())


def test_the_expected_services_are_there() -> None:
    modules = {command_module(svc) for svc in built_services().values()}
    assert modules == {"feed_publisher", "order_entry", "portfolio", API_MODULE}
    assert len(redis_services()) == len(CONSUMER_MODULES)
    kafka_service()


def test_kafka_is_a_single_kraft_node_that_does_not_create_topics() -> None:
    name, kafka = kafka_service()
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    # The publisher creates the topics with the configured partition count.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    bound = parse_listeners(env["KAFKA_LISTENERS"])
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in bound
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voters == [f"{env['KAFKA_NODE_ID']}@{name}:{bound[controller][1]}"]
    assert "test" in kafka.get("healthcheck", {})


@pytest.mark.parametrize("name", BUILT)
def test_bootstrap_is_the_kafka_internal_listener(name: str) -> None:
    service = services()[name]
    # Built as the service will build it, so a missing variable shows up as the default address.
    settings = build(KafkaSettings, environ=environment(service))
    internal = kafka_internal_addresses()
    for server in settings.bootstrap.split(","):
        assert server.strip() in internal, f"{name}: {server} is not one of {sorted(internal)}"
    assert kafka_service()[0] in depends_on(service), f"{name} does not wait for kafka"


def test_each_consumer_has_its_own_redis() -> None:
    redises = redis_services()
    owners: dict[str, str] = {}
    consumers = {n: s for n, s in built_services().items() if command_module(s) in CONSUMER_MODULES}
    assert len(consumers) == len(CONSUMER_MODULES)
    for name, service in consumers.items():
        url = environment(service).get("MARKETFEED_REDIS_URL")
        assert url is not None, f"{name} has no MARKETFEED_REDIS_URL"
        assert redis_url(url) is None, f"{name}: {url} is not a redis URL"
        host = urlsplit(url).hostname
        assert host in redises, f"{name}: {url} names no Redis service of compose.yaml"
        assert urlsplit(url).port in {None, 6379}, f"{name}: {url} is not Redis's port"
        assert host not in owners, f"{name} and {owners.get(host)} share the Redis {host}"
        owners[host] = name
        assert host in depends_on(service), f"{name} does not wait for its Redis {host}"
    assert set(owners) == set(redises), f"unused Redis services: {set(redises) - set(owners)}"


def test_redis_keeps_the_ledger_and_positions_on_a_volume() -> None:
    # Each service's Redis holds durable state beside its cache (order ledger, positions).
    for name, service in redis_services().items():
        command = service.get("command")
        argv = shlex.split(command) if isinstance(command, str) else list(command or [])
        assert argv[argv.index("--appendonly") + 1] == "yes", f"{name} writes no AOF"
        mounts = [str(v).split(":", 1) for v in service.get("volumes") or []]
        assert any(target == "/data" for _, target in mounts), f"{name}: /data is not a volume"
        for source, _ in mounts:
            declared = load_compose().get("volumes") or {}
            assert source in declared, f"{name}: undeclared volume {source}"


def test_each_consumer_is_configured_to_start() -> None:
    """The environment alone gives each consuming service what it needs to start."""
    for name, service in built_services().items():
        module = command_module(service)
        env = {k: str(v) for k, v in environment(service).items()}
        if module == "order_entry":
            config = build(OrderEntryConfig, {}, env)
            symbols = load_symbols(config.tradable, config.tradable_file, flag="--tradable")
            assert symbols, f"{name} has no tradable symbols"
            published = environment(services()["publisher"]).get("MARKETFEED_SYMBOLS", "500")
            assert symbols <= set(universe(int(published))), f"{name} trades unpublished symbols"
        elif module == "portfolio":
            config_p = build(PortfolioConfig, {}, env)
            load_symbols(config_p.watchlist, config_p.watchlist_file, flag="--watchlist")


@pytest.mark.parametrize("name", sorted(services()))
def test_depends_on_waits_for_a_healthcheck(name: str) -> None:
    for target, spec in depends_on(services()[name]).items():
        assert target in services(), f"{name} depends on unknown service {target}"
        assert spec.get("condition") == "service_healthy", f"{name} -> {target}: not healthy"
        healthcheck = services()[target].get("healthcheck") or {}
        assert healthcheck.get("test"), f"{target} has no healthcheck, so it never gets healthy"
        assert not healthcheck.get("disable"), f"{target} has its healthcheck disabled"
        assert healthcheck["test"] not in (["NONE"], "NONE"), f"{target} disables its healthcheck"


@pytest.mark.parametrize("name", BUILT)
def test_marketfeed_variables_are_real_settings(name: str) -> None:
    service = services()[name]
    module = command_module(service)
    env = marketfeed_env(service)
    classes = config_classes(module)
    if classes is None:
        assert module in PENDING_CONFIG_MODULES, f"{module}.config is missing"
        known = env_settings(KafkaSettings) | PENDING_SETTINGS
        classes = [KafkaSettings]
    else:
        known = set().union(*(env_settings(cls) for cls in classes))
    unknown = set(env) - known
    assert not unknown, f"{name}: no {module} setting reads {sorted(unknown)}"
    # And the values parse and pass the settings' own checks.
    for cls in classes:
        build(cls, environ=env)


def test_publisher_is_checked_against_its_config() -> None:
    publishers = [s for s in built_services().values() if command_module(s) == "feed_publisher"]
    assert len(publishers) == 1
    env = marketfeed_env(publishers[0])
    assert set(env) <= {env_name(f.name) for f in dataclasses.fields(PublisherConfig)}
    config = build(PublisherConfig, environ=env)
    # Apache Kafka supports the idempotent producer (the embedded broker does not).
    assert config.idempotence


def test_partitions_are_the_same_everywhere() -> None:
    counts = {
        name: build(KafkaSettings, environ=environment(svc)).partitions
        for name, svc in built_services().items()
    }
    assert len(set(counts.values())) == 1, f"partition counts differ: {counts}"


def _dockerfile_copies() -> set[str]:
    sources: set[str] = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            sources.update(w.strip("./") for w in words[1:-1] if not w.startswith("--"))
    return sources


def _packaged() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]


def test_dockerfile_runs_as_a_user() -> None:
    assert DOCKERFILE.is_file()
    users = [
        line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER")
    ]
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}, "the image runs as root"


@pytest.mark.parametrize("name", BUILT)
def test_command_runs_a_module_the_image_contains(name: str) -> None:
    service = services()[name]
    build_spec = service["build"]
    context = ROOT / (build_spec if isinstance(build_spec, str) else build_spec.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build_spec, str) else build_spec.get("dockerfile")
    assert (context / (dockerfile or "Dockerfile")).resolve() == DOCKERFILE
    module = command_module(service)
    package = ROOT / module
    assert package.is_dir(), f"{name} runs `python -m {module}` but there is no {module}/"
    if module not in PENDING_MAIN_MODULES:
        assert (package / "__main__.py").is_file(), f"{module}/__main__.py is missing"
    assert module in _dockerfile_copies(), f"the Dockerfile does not COPY {module}/"
    assert module in _packaged(), f"pyproject.toml does not package {module}"


def _prometheus() -> tuple[dict[str, Any], dict[str, Any]]:
    """The prometheus service, and the config file it mounts (read from the repository)."""
    found = [s for s in services().values() if image_name(s) == "prom/prometheus"]
    assert len(found) == 1, "expected one prom/prometheus service"
    prometheus = found[0]
    command = " ".join(prometheus.get("command") or [])
    assert f"--config.file={PROMETHEUS_CONFIG}" in command
    mounts = [str(v).split(":") for v in prometheus.get("volumes") or []]
    sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == PROMETHEUS_CONFIG]
    assert sources, f"nothing is mounted at {PROMETHEUS_CONFIG}"
    path = (ROOT / sources[0]).resolve()
    assert path.is_file(), f"{sources[0]} is not in the repository"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(config, dict), f"{path} is not a mapping"
    assert config.get("scrape_configs"), f"{path}: no scrape_configs"
    return prometheus, config


def _scraped() -> set[str]:
    """Every ``host:port`` Prometheus scrapes at /metrics."""
    _, config = _prometheus()
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job.get("job_name")
        for static in job.get("static_configs") or []:
            targets.update(static.get("targets") or [])
    return targets


@pytest.mark.parametrize("name", BUILT)
def test_prometheus_scrapes_every_process(name: str) -> None:
    service = services()[name]
    module = command_module(service)
    if module == API_MODULE:
        config = build(ApiConfig, {}, environment(service))
        host, port = config.host, str(config.port)
    else:
        classes = config_classes(module) or []
        metrics = build(classes[0], {}, environment(service))
        assert metrics.metrics_on, f"{name}: no /metrics (MARKETFEED_METRICS_PORT)"
        host, port = metrics.metrics_host, metrics.metrics_port
    # Loopback inside a container is unreachable from the prometheus container.
    assert host not in {"127.0.0.1", "localhost"}, f"{name} listens on loopback only"
    assert f"{name}:{port}" in _scraped(), f"Prometheus does not scrape {name}:{port}"


def test_prometheus_scrapes_only_services_that_exist() -> None:
    for target in _scraped():
        host = target.rsplit(":", 1)[0]
        assert host in built_services(), f"Prometheus scrapes {target}: no such marketfeed service"


def test_the_api_reads_each_services_own_redis() -> None:
    apis = [s for s in built_services().values() if command_module(s) == API_MODULE]
    assert len(apis) == 1
    env = environment(apis[0])
    for service in CONSUMER_MODULES:
        consumer = next(s for s in built_services().values() if command_module(s) == service)
        variable = env_name(f"{service}_redis_url")
        assert env.get(variable) == environment(consumer)["MARKETFEED_REDIS_URL"], variable
        assert urlsplit(env[variable]).hostname in depends_on(apis[0])
