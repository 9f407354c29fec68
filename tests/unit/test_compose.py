"""compose.yaml, the production path, checked by reading it: no Docker engine runs here.

The checks are about wiring that would only fail at ``docker compose up``: addresses that point
at the wrong listener, a Redis shared by two services, a ``depends_on`` that cannot become
healthy, a ``MARKETFEED_*`` variable no service reads, partition counts that disagree, a command
that runs a module the image does not contain, a process Prometheus does not scrape.
"""

from __future__ import annotations

import dataclasses
import importlib
import tomllib
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
from tests.composefile import (
    ROOT,
    Deployment,
    argv_of,
    built_services,
    command_module,
    depends_on,
    deploy,
    environment,
    image_name,
    kafka_service,
    load_compose,
    redis_services,
    service_of_module,
    services,
)

PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The services that keep a Redis cache, each its own, and their configs.
CONSUMER_CONFIGS: dict[str, type[OrderEntryConfig | PortfolioConfig]] = {
    "order_entry": OrderEntryConfig,
    "portfolio": PortfolioConfig,
}
CONSUMER_MODULES = frozenset(CONSUMER_CONFIGS)
# Serves its metrics on its own HTTP port (MARKETFEED_HOST / MARKETFEED_PORT), not --metrics-port.
API_MODULE = "http_api"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(tmp_path_factory.mktemp("deployment"))


def config_classes(module: str) -> list[type[Any]]:
    """The settings dataclasses of ``<module>.config`` (those with ``setting`` fields, each
    extending KafkaSettings or the read commands' BrokerSettings)."""
    config = importlib.import_module(f"{module}.config")
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
    """The variables ``common.config.build`` reads for ``cls`` (a secret's *_FILE too)."""
    names: set[str] = set()
    fields = [f for f in dataclasses.fields(cls) if f.init and "help" in f.metadata]
    for f in fields:
        names.add(env_name(f.name))
        if f.metadata.get("secret") and not any(g.name == f"{f.name}_file" for g in fields):
            names.add(env_name(f.name) + "_FILE")
    return names


def marketfeed_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}


BUILT = sorted(built_services())


def test_the_expected_services_are_there() -> None:
    modules = {command_module(svc) for svc in built_services().values()}
    assert modules == {"feed_publisher", "order_entry", "portfolio", API_MODULE}
    assert len(redis_services()) == len(CONSUMER_MODULES)
    kafka_service()


def test_each_consumer_has_its_own_redis(deployment: Deployment) -> None:
    redises = redis_services()
    owners: dict[str, str] = {}
    consumers = {n: s for n, s in built_services().items() if command_module(s) in CONSUMER_MODULES}
    assert len(consumers) == len(CONSUMER_MODULES)
    for name, service in consumers.items():
        url = build(
            CONSUMER_CONFIGS[command_module(service)], {}, deployment.environ(name)
        ).redis_url
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
        argv = argv_of(service)
        assert argv[argv.index("--appendonly") + 1] == "yes", f"{name} writes no AOF"
        mounts = [str(v).split(":", 1) for v in service.get("volumes") or []]
        assert any(target == "/data" for _, target in mounts), f"{name}: /data is not a volume"
        for source, _ in mounts:
            declared = load_compose().get("volumes") or {}
            assert source in declared, f"{name}: undeclared volume {source}"


def test_each_consumer_is_configured_to_start(deployment: Deployment) -> None:
    """The environment alone gives each consuming service what it needs to start."""
    for name, service in built_services().items():
        module = command_module(service)
        env = deployment.environ(name)
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
def test_marketfeed_variables_are_real_settings(name: str, deployment: Deployment) -> None:
    module = command_module(services()[name])
    env = marketfeed_env(deployment.environ(name))
    classes = config_classes(module)
    known = set().union(*(env_settings(cls) for cls in classes))
    unknown = set(env) - known
    assert not unknown, f"{name}: no {module} setting reads {sorted(unknown)}"
    # And the values parse and pass the settings' own checks.
    for cls in classes:
        build(cls, environ=env)


def test_publisher_is_checked_against_its_config(deployment: Deployment) -> None:
    name, _ = service_of_module("feed_publisher")
    env = marketfeed_env(deployment.environ(name))
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
def test_prometheus_scrapes_every_process(name: str, deployment: Deployment) -> None:
    module = command_module(services()[name])
    env = deployment.environ(name)
    if module == API_MODULE:
        config = build(ApiConfig, {}, env)
        host, port = config.host, str(config.port)
    else:
        metrics = build(config_classes(module)[0], {}, env)
        assert metrics.metrics_on, f"{name}: no /metrics (MARKETFEED_METRICS_PORT)"
        host, port = metrics.metrics_host, metrics.metrics_port
    # Loopback inside a container is unreachable from the prometheus container.
    assert host not in {"127.0.0.1", "localhost"}, f"{name} listens on loopback only"
    assert f"{name}:{port}" in _scraped(), f"Prometheus does not scrape {name}:{port}"


def test_prometheus_scrapes_only_services_that_exist() -> None:
    for target in _scraped():
        host = target.rsplit(":", 1)[0]
        assert host in built_services(), f"Prometheus scrapes {target}: no such marketfeed service"


def test_the_api_reads_each_services_own_redis(deployment: Deployment) -> None:
    api_name, api = service_of_module(API_MODULE)
    config = build(ApiConfig, {}, deployment.environ(api_name))
    token = (deployment.made / "api.token").read_text().strip()
    assert config.api_token == token, "the API does not read its token from its secret"
    for service in CONSUMER_MODULES:
        name, _ = service_of_module(service)
        own = build(CONSUMER_CONFIGS[service], {}, deployment.environ(name)).redis_url
        read = getattr(config, f"{service}_redis_url")
        config.resolve()  # it listens beyond loopback: only with a token
        assert read == own, f"the API reads {service}'s cache elsewhere than {service} writes it"
        assert urlsplit(read).hostname in depends_on(api)
