"""compose.yaml read as data, and a deployment of it without Docker: its secrets made by
``marketfeed compose-secrets`` and mounted, for each service, as compose would mount them.

A service's ``/run/secrets/<target>`` becomes ``<its mount directory>/<target>``, a directory
holding only the secrets that service lists, so a service that reads a secret it does not mount
fails here as it would in its container.
"""

from __future__ import annotations

import functools
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from marketfeed.compose_secrets import write_secrets

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
SECRETS_ROOT = "/run/secrets/"


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


def argv_of(service: Mapping[str, Any], key: str = "command") -> list[str]:
    command = service.get(key)
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command or []]


def command_module(service: Mapping[str, Any]) -> str:
    """X of a ``python -m X`` command."""
    argv = argv_of(service)
    assert len(argv) >= 3, f"command {argv!r} is not `python -m MODULE`"
    assert argv[0] in {"python", "python3"}, f"command {argv!r} does not run python"
    assert argv[1] == "-m", f"command {argv!r} does not run a module"
    return argv[2]


def image_name(service: Mapping[str, Any]) -> str:
    """``apache/kafka:3.9.1`` -> ``apache/kafka``; ``redis:7-alpine`` -> ``redis``."""
    return str(service.get("image", "")).rsplit(":", 1)[0]


def built_services() -> dict[str, dict[str, Any]]:
    """The marketfeed services: the ones built from this repository's Dockerfile."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def service_of_module(module: str) -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in built_services().items() if command_module(s) == module]
    assert len(found) == 1, f"expected one service running {module}, found {len(found)}"
    return found[0]


def kafka_service() -> tuple[str, dict[str, Any]]:
    found = [(n, s) for n, s in services().items() if image_name(s) == "apache/kafka"]
    assert len(found) == 1, f"expected one apache/kafka service, found {[n for n, _ in found]}"
    return found[0]


def redis_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if image_name(s).rsplit("/", 1)[-1] == "redis"}


def mounted_secrets(service: Mapping[str, Any]) -> dict[str, str]:
    """{target file name under /run/secrets: the secret's file in the repository}."""
    declared = load_compose().get("secrets") or {}
    mounts: dict[str, str] = {}
    for entry in service.get("secrets") or []:
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        assert source in declared, f"secret {source} is not declared at the top level"
        mounts[str(target)] = str(declared[source]["file"])
    return mounts


@dataclass(frozen=True, slots=True)
class Deployment:
    """compose.yaml's secrets, made and mounted per service under ``root``."""

    root: Path

    @property
    def made(self) -> Path:
        return self.root / "secrets"

    def mount(self, name: str) -> Path:
        """Service ``name``'s /run/secrets: only what it mounts, under the names it mounts."""
        directory = self.root / "run" / name
        if not directory.exists():
            directory.mkdir(parents=True)
            for target, file in mounted_secrets(services()[name]).items():
                assert file.startswith("./secrets/"), f"{name}: {file} is not made by the command"
                source = self.made / file.removeprefix("./secrets/")
                assert source.is_file(), f"{name} mounts {file}, which the command does not make"
                shutil.copy2(source, directory / target)
        return directory

    def environ(self, name: str) -> dict[str, str]:
        """Service ``name``'s environment, its /run/secrets/ paths in its mount directory."""
        mount = self.mount(name)
        env = environment(services()[name])
        return {k: self.in_container(v, mount) for k, v in env.items()}

    @staticmethod
    def in_container(value: str, mount: Path) -> str:
        if value.startswith(SECRETS_ROOT):
            return str(mount / value.removeprefix(SECRETS_ROOT))
        return value


def deploy(root: Path) -> Deployment:
    deployment = Deployment(root)
    write_secrets(deployment.made)
    return deployment
