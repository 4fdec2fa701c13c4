"""Checkpoints: keys, the checkpointer's schedule, and the PDP's wiring of both."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdp.audit.chain.checkpoint import (
    DEV_KEY_FILE,
    Checkpoint,
    Checkpointer,
    checkpoint_private_key,
    checkpoint_public_key,
    generate_key_file,
    key_id,
    load_private_key,
    load_public_key,
    make_checkpoint,
    public_pem,
)
from pdp.audit.chain.verify import verify_log
from pdp.audit.store import DecisionStore
from pdp.components import build_components
from pdp.config import load_settings

MakeRecord = Callable[..., dict[str, Any]]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_signed_checkpoint_verifies_and_any_change_breaks_it() -> None:
    key = Ed25519PrivateKey.generate()
    cp = make_checkpoint(7, "ab" * 32, kind="periodic", key=key)
    assert cp.key_id == key_id(key.public_key()) and cp.verify(key.public_key()) is None
    for changed in (Checkpoint(8, cp.head_hash, cp.timestamp, cp.kind, cp.key_id, cp.signature),
                    Checkpoint(7, "cd" * 32, cp.timestamp, cp.kind, cp.key_id, cp.signature),
                    Checkpoint(7, cp.head_hash, cp.timestamp, "anchor", cp.key_id, cp.signature),
                    Checkpoint(7, cp.head_hash, "2020-01-01T00:00:00.000000Z", cp.kind,
                               cp.key_id, cp.signature)):
        assert changed.verify(key.public_key()) == "the signature does not verify"


def test_unknown_checkpoint_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        make_checkpoint(1, "ab" * 32, kind="whenever", key=None)


def test_key_files_round_trip_and_are_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "checkpoint.pem"
    key = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert key_id(load_private_key(path).public_key()) == key_id(key.public_key())
    public = tmp_path / "checkpoint.pub.pem"
    public.write_text(public_pem(key.public_key()))
    assert key_id(load_public_key(public)) == key_id(key.public_key())
    assert key_id(load_public_key(path)) == key_id(key.public_key())  # the private file too
    with pytest.raises(FileExistsError):
        generate_key_file(path)


def test_a_key_that_is_not_ed25519_is_a_value_error(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        load_private_key(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_private_key(tmp_path / "missing.pem")


def test_dev_mode_creates_a_key_once_and_production_has_none_unless_configured(
        tmp_path: Path) -> None:
    dev = load_settings(None, dev=True, state_dir=tmp_path / "state")
    first = checkpoint_private_key(dev)
    assert first is not None and (tmp_path / "state" / DEV_KEY_FILE).is_file()
    again = checkpoint_private_key(dev)
    assert again is not None and key_id(again.public_key()) == key_id(first.public_key())
    prod = load_settings(None, state_dir=tmp_path / "other")
    assert checkpoint_private_key(prod) is None and checkpoint_public_key(prod) is None
    # A tool reading the dev state dir (pdp audit verify) finds the dev key's public half.
    reader = load_settings(None, state_dir=tmp_path / "state")
    found = checkpoint_public_key(reader)
    assert found is not None and key_id(found) == key_id(first.public_key())


def test_configured_key_must_exist(tmp_path: Path) -> None:
    settings = load_settings(None, state_dir=tmp_path,
                             audit={"checkpoint_key": str(tmp_path / "nope.pem")})
    with pytest.raises(ValueError, match="cannot read checkpoint key"):
        checkpoint_private_key(settings)


def test_checkpointer_signs_after_every_n_records_and_on_close(
        sql_store: DecisionStore, make_record: MakeRecord) -> None:
    key = Ed25519PrivateKey.generate()
    cps = Checkpointer(sql_store, key, every_records=5, every_s=3600)  # type: ignore[arg-type]
    for _ in range(4):
        sql_store.append_sync(make_record())
    assert cps.maybe_checkpoint() is None  # 4 < 5 and the hour is not over
    sql_store.append_sync(make_record())
    written = cps.maybe_checkpoint()
    assert written is not None and written.seq == 5 and written.kind == "periodic"
    assert cps.maybe_checkpoint() is None  # the head did not move
    sql_store.append_sync(make_record())
    cps.close()
    kinds = [(c.seq, c.kind) for c in sql_store.checkpoints()]  # type: ignore[attr-defined]
    assert kinds == [(5, "periodic"), (6, "shutdown")]
    assert verify_log(sql_store, public_key=key.public_key()).ok


def test_checkpointer_signs_when_the_interval_passes(sql_store: DecisionStore,
                                                     make_record: MakeRecord) -> None:
    now = [0.0]
    cps = Checkpointer(sql_store, Ed25519PrivateKey.generate(),  # type: ignore[arg-type]
                       every_records=1000, every_s=60, clock=lambda: now[0])
    sql_store.append_sync(make_record())
    assert cps.maybe_checkpoint() is None
    now[0] = 61.0
    written = cps.maybe_checkpoint()
    assert written is not None and written.seq == 1


def test_checkpointer_thread_writes_without_being_asked(sql_store: DecisionStore,
                                                        make_record: MakeRecord) -> None:
    cps = Checkpointer(sql_store, Ed25519PrivateKey.generate(),  # type: ignore[arg-type]
                       every_records=3, every_s=3600, poll_s=0.01).start()
    try:
        for _ in range(3):
            sql_store.append_sync(make_record())
        wait_for(lambda: cps.written >= 1)
    finally:
        cps.close()
    assert sql_store.checkpoints()[0].seq == 3  # type: ignore[attr-defined]


def test_a_dev_pdp_signs_its_head_on_shutdown_and_verifies(tmp_path: Path,
                                                           bundle_copy: Any) -> None:
    settings = load_settings(None, dev=True, policies=bundle_copy(), state_dir=tmp_path / "s")
    parts = build_components(settings)
    assert parts.audit_maintenance is not None
    parts.close()
    from pdp.audit.factory import open_configured_log

    log = open_configured_log(settings)
    try:
        head = log.head()  # type: ignore[attr-defined]
        checkpoints = log.checkpoints()  # type: ignore[attr-defined]
        assert head[0] >= 1 and checkpoints[-1].seq == head[0]
        assert checkpoints[-1].kind == "shutdown"
        report = verify_log(log, public_key=checkpoint_public_key(settings))
        assert report.ok and report.signatures == "signed"
    finally:
        log.close()


def test_without_dev_or_key_no_maintenance_runs(tmp_path: Path, bundle_copy: Any) -> None:
    settings = load_settings(None, policies=bundle_copy(), state_dir=tmp_path / "s")
    parts = build_components(settings)
    try:
        assert parts.audit_maintenance is None
    finally:
        parts.close()
