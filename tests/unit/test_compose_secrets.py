"""``marketfeed compose-secrets``: a consistent set, each file for its reader only, never
overwritten by accident, one line for what cannot be done."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from common.feedsign import FeedKeys
from marketfeed.cli import main
from marketfeed.compose_secrets import KAFKA_UID, KAFKA_USERS, MARKETFEED_UID, REDIS_UID


def test_a_consistent_set_each_file_its_readers_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "secrets"
    assert main(["compose-secrets", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    users = dict(
        line.split("=", 1) for line in (out / "kafka-users.properties").read_text().splitlines()
    )
    assert sorted(users) == sorted(KAFKA_USERS)
    for user, password in users.items():
        assert (out / f"kafka-{user}.password").read_text() == f"{password}\n"
        assert password not in printed
    for service in ("order-entry", "portfolio"):
        password = (out / f"redis-{service}.conf").read_text().split('"')[1]
        url = f"redis://:{password}@redis-{service}:6379/0\n"
        assert (out / f"{service}.redis-url").read_text() == url
    FeedKeys.parse((out / "feed.key").read_text(), source="test")
    certs = x509.load_pem_x509_certificates((out / "kafka-server.pem").read_bytes())
    names = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kafka" in names.get_values_for_type(x509.DNSName)
    assert b"PRIVATE KEY" in (out / "kafka-server.pem").read_bytes()
    owners = {
        "feed.key": MARKETFEED_UID,
        "kafka-server.pem": KAFKA_UID,
        "kafka-users.properties": KAFKA_UID,
        "kafka-api.password": MARKETFEED_UID,
        "order-entry.redis-url": MARKETFEED_UID,
        "redis-portfolio.conf": REDIS_UID,
    }
    for name, uid in owners.items():
        info = (out / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o600, name
        if os.geteuid() == 0:
            assert info.st_uid == uid, name
    assert stat.S_IMODE((out / "kafka-ca.pem").stat().st_mode) == 0o644


def test_an_existing_set_is_kept_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    assert main(["compose-secrets", "--out", str(out)]) == 0
    key = (out / "feed.key").read_text()
    assert main(["compose-secrets", "--out", str(out)]) == 2
    assert (out / "feed.key").read_text() == key
    assert main(["compose-secrets", "--out", str(out), "--force"]) == 0
    assert (out / "feed.key").read_text() != key


def test_where_it_cannot_write_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["compose-secrets", "--out", str(a_file)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"--out={a_file}: not a directory")
    assert main(["compose-secrets", "--out", str(a_file / "below")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "cannot write the secrets" in err
