"""``marketfeed compose-secrets``: every secret compose.yaml mounts, made once, consistently.

compose.yaml runs Apache Kafka with SASL_SSL (SCRAM-SHA-512) and ACLs and each Redis with a
password; the services read their credentials from Docker secrets (files under /run/secrets).
This command writes those files into one directory (``secrets/`` beside compose.yaml):

- ``feed.key``: the deployment's feed key (the publisher signs, the caches verify);
- ``kafka-ca.pem``: the CA the services trust for the broker (public), and ``kafka-server.pem``,
  the broker's private key and certificate (for the name ``kafka``), a PEM keystore;
- ``kafka-users.properties``: every service's SCRAM user and password, for the broker to create
  its users from; ``kafka-<user>.password``: the same password again, for that service alone;
- ``redis-<service>.conf``: a Redis server's ``requirepass``; ``<service>.redis-url``: the URL, with
  that password, that the service (and the API) reads it by;
- ``api.token``: the token every request to the HTTP API must carry.

A password lives in two files on purpose: the broker (and a Redis server) and the service that
connects to it run as different users, and each file is readable by its reader only. The files
are 0600 in a 0700 directory; compose bind-mounts a secret with its owner and mode, so, run as
root, this command gives each file to the user id of the container that reads it (marketfeed's
image 10001, apache/kafka 1000, redis 999). Run as anyone else, it says which ``chown`` to run.

It never overwrites: a running deployment keeps working until ``--force`` makes a new set (then
every container must be recreated).
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.cli import EXIT_OK
from common.config import add_arguments, build, setting
from common.errors import ConfigError, MarketfeedError
from common.feedsign import FeedKeys, write_key_file
from common.privatefile import write_private
from common.runtime.pki import issue_pki

# The user ids of the images compose.yaml runs (Dockerfile; apache/kafka's appuser; redis).
MARKETFEED_UID = 10001
KAFKA_UID = 1000
REDIS_UID = 999

# Kafka principals (User:<name>), one per service that connects (deploy/kafka/acls.tsv).
KAFKA_USERS = ("publisher", "order-entry", "portfolio", "api")
# Redis servers, by the service whose cache each holds (compose.yaml's redis-<service>).
REDIS_SERVICES = ("order-entry", "portfolio")
BROKER_HOST = "kafka"  # the broker's name on compose's network, in its certificate

# A deployment's certificates are rotated by running this again; two years, not a run's week.
_VALIDITY = datetime.timedelta(days=730)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretsSettings:
    out: Path = setting(Path("secrets"), help="directory to write the secrets into")
    force: bool = setting(False, help="replace secrets that exist (recreate every container)")


@dataclass(frozen=True, slots=True)
class Secret:
    name: str  # the file's name in the directory
    data: bytes
    owner: int | None  # uid of the container that reads it; None: public (0644)


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, SecretsSettings)


async def run(args: argparse.Namespace) -> int:
    settings = build(SecretsSettings, args)
    written = write_secrets(settings.out, force=settings.force)
    for secret in written:
        owner = "public" if secret.owner is None else f"uid {secret.owner}"
        print(f"wrote {settings.out / secret.name} ({owner})")
    if os.geteuid() != 0:
        print(
            "not root: the files are yours, and the containers run as other users; run "
            + "; ".join(_chown_commands(settings.out, written))
        )
    print("next: docker compose up -d --build")
    return EXIT_OK


def make_secrets() -> list[Secret]:
    """A consistent set: each password in the files of both of its readers."""
    made: list[Secret] = []
    with tempfile.TemporaryDirectory() as scratch:
        key_file = Path(scratch) / "feed.key"
        write_key_file(key_file, FeedKeys((secrets.token_bytes(32),)))
        made.append(Secret("feed.key", key_file.read_bytes(), MARKETFEED_UID))
        pki = issue_pki(
            Path(scratch) / "pki",
            host="127.0.0.1",
            common_name="marketfeed kafka",
            dns_names=(BROKER_HOST, "localhost"),
            validity=_VALIDITY,
        )
        # Kafka's PEM keystore: the private key (PKCS#8, unencrypted) and its certificate.
        keystore = pki.server.key.read_bytes() + pki.server.cert.read_bytes()
        made.append(Secret("kafka-ca.pem", pki.ca.read_bytes(), None))
        made.append(Secret("kafka-server.pem", keystore, KAFKA_UID))
    users = {user: secrets.token_hex(24) for user in KAFKA_USERS}
    listing = "".join(f"{user}={password}\n" for user, password in users.items())
    made.append(Secret("kafka-users.properties", listing.encode(), KAFKA_UID))
    for user, password in users.items():
        made.append(Secret(f"kafka-{user}.password", f"{password}\n".encode(), MARKETFEED_UID))
    for service in REDIS_SERVICES:
        password = secrets.token_hex(24)
        conf = f'requirepass "{password}"\n'
        url = f"redis://:{password}@redis-{service}:6379/0\n"
        made.append(Secret(f"redis-{service}.conf", conf.encode(), REDIS_UID))
        made.append(Secret(f"{service}.redis-url", url.encode(), MARKETFEED_UID))
    made.append(Secret("api.token", f"{secrets.token_urlsafe(32)}\n".encode(), MARKETFEED_UID))
    return made


def write_secrets(directory: Path, *, force: bool = False) -> list[Secret]:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--out={directory}: not a directory")
    made = make_secrets()
    there = [s.name for s in made if (directory / s.name).exists()]
    if there and not force:
        raise ConfigError(
            f"{directory} already holds {', '.join(there)}: --force replaces the whole set "
            "(then recreate every container)"
        )
    chown = os.geteuid() == 0
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        for secret in made:
            _write(directory / secret.name, secret, chown=chown)
    except OSError as exc:
        where = exc.filename or directory
        raise MarketfeedError(f"cannot write the secrets to {where}: {exc.strerror}") from None
    return made


def _write(path: Path, secret: Secret, *, chown: bool) -> None:
    """Never readable by anyone but its reader, not even briefly; a public one (the CA's
    certificate) is then opened to all."""
    write_private(path, secret.data, owner=secret.owner if chown else None)
    if secret.owner is None:
        path.chmod(0o644)


def _chown_commands(directory: Path, written: list[Secret]) -> list[str]:
    by_owner: dict[int, list[str]] = {}
    for secret in written:
        if secret.owner is not None:
            by_owner.setdefault(secret.owner, []).append(str(directory / secret.name))
    return [f"sudo chown {uid}:{uid} {' '.join(files)}" for uid, files in by_owner.items()]
