"""Signed checkpoints (invariant 7, tamper-evident beyond the database): sealed every N records, every T
seconds and on a clean stop; signed with a key outside the database; copied to a witness directory; and
checked by `verify`, which names what was rewritten and can start at a trusted checkpoint.

Real SQLite files (and the real PostgreSQL for the rewrite attack through the owner's eyes); keys made here.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from oneScreen import audit
from oneScreen.audit import (AuditStore, Checkpoint, Checkpointing, KeyRing, Signer, Witness, audit_path,
                             merkle_root, verify, verify_path)
from oneScreen.audit.chain import encode, link
from oneScreen.audit.checkpoints import DOMAIN, public_pem
from test_audit import event, raw, recompute, sqlite_url
from test_catalog import run_cli

KEY = Signer.ed25519(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "audit").mkdir()
    return {"db": tmp_path / "audit" / "audit.sqlite", "witness": tmp_path / "witness"}


def make_store(paths: dict[str, Path], signer: Signer = KEY, **kw: Any) -> AuditStore:
    c = Checkpointing(signer, paths["witness"], every_records=kw.pop("every_records", 10**6),
                      every_seconds=kw.pop("every_seconds", 3600))
    return AuditStore(sqlite_url(paths["db"]), create=True, checkpointing=c, **kw)


async def sealed_trail(paths: dict[str, Path], spans: list[int]) -> AuditStore:
    """A store whose records are sealed in checkpoints of `spans` records each (then left open)."""
    store = make_store(paths)
    await store.open()
    n = 0
    for span in spans:
        await store.append_many([event(n + i) for i in range(span)])
        n += span
        await store.sealer.seal()
    return store


def rehash_from(conn: sqlite3.Connection, seq: int, change: str) -> None:
    """The attack: edit record `seq`, then recompute its hash and every later prev_hash and hash."""
    conn.execute(f"UPDATE onescreen_audit SET {change} WHERE seq = ?", (seq,))
    prev = conn.execute("SELECT hash FROM onescreen_audit WHERE seq = ?", (seq - 1,)).fetchone()[0]
    for (s,) in conn.execute("SELECT seq FROM onescreen_audit WHERE seq >= ? ORDER BY seq", (seq,)).fetchall():
        row = conn.execute("SELECT * FROM onescreen_audit WHERE seq = ?", (s,)).fetchone()
        cols = [d[0] for d in conn.execute("SELECT * FROM onescreen_audit LIMIT 0").description]
        r = type("Row", (), dict(zip(cols, row)))
        r.at = datetime.fromisoformat(r.at)
        rec = audit.store.record(r)
        digest = link(prev, encode(s, rec.at, rec.event, nonce=rec.nonce))
        conn.execute("UPDATE onescreen_audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, s))
        prev = digest


async def exported(store: AuditStore) -> list[dict[str, Any]]:
    out = io.StringIO()
    await store.export(out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_editing_a_record_and_rehashing_the_chain_is_detected_and_the_range_named(paths):
    """Invariant 7: the attack that defeats a bare hash chain (edit record 7, recompute every later hash) no
    longer verifies: the signed checkpoint sealing records 6-10 names them."""
    store = await sealed_trail(paths, [5, 5, 5])
    assert (await store.verify()).checkpoints == 3
    with closing(raw(paths["db"])) as conn:
        rehash_from(conn, 7, "task = 'housing_benefit'")
    lines = await exported(store)
    assert all(recompute(x) == x["hash"] for x in lines)  # the rewritten chain is consistent in itself
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:]))
    result = await store.verify()
    assert (result.ok, result.first_bad_seq, result.checkpoints) == (False, 6, 1)
    assert result.reason == ("records 6-10 do not match signed checkpoint 2: they were changed after it was "
                             "sealed (and the chain rehashed)")
    await store.close()


async def test_a_forged_or_removed_checkpoint_is_refused(paths):
    """Invariant 7: who rewrites the records cannot re-sign their checkpoints: one signed with another key,
    or one changed after signing, is refused; one removed from the store is still in the witness."""
    store = await sealed_trail(paths, [5, 5])
    cp1, cp2 = await store.checkpoints()
    with closing(raw(paths["db"])) as conn:
        rehash_from(conn, 7, "task = 'housing_benefit'")
        head = conn.execute("SELECT hash FROM onescreen_audit WHERE seq = 10").fetchone()[0]
        hashes = [h for (h,) in conn.execute("SELECT hash FROM onescreen_audit WHERE seq > 5 ORDER BY seq")]
    fitting = dataclasses.replace(cp2, head=head, root=merkle_root(hashes))  # matches the rewritten records

    def forge(signer: Signer, key_id: str) -> Checkpoint:
        cp = dataclasses.replace(fitting, key_id=key_id)
        return dataclasses.replace(cp, signature=base64.b64encode(signer.sign(DOMAIN + cp.body())).decode())

    other = Signer.ed25519(Ed25519PrivateKey.generate())
    cases = {
        "other key": (forge(other, other.key_id), f"checkpoint 2: signed by key {other.key_id}, which is not a "
                                                  f"trusted key"),
        "other key, our key id": (forge(other, KEY.key_id), "checkpoint 2: the signature does not match"),
        "changed after signing": (fitting, "checkpoint 2: the signature does not match"),
    }
    for what, (forged, reason) in cases.items():
        with closing(raw(paths["db"])) as conn:
            conn.execute("DELETE FROM onescreen_audit_checkpoint WHERE number = 2")
            conn.execute("INSERT INTO onescreen_audit_checkpoint VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         tuple(dataclasses.asdict(forged).values()))
        result = await verify(store, keys=KeyRing([KEY.public_key]))  # signatures only: no witness
        assert (result.ok, result.reason and result.reason.split(" (forged")[0]) == (False, reason), what
        result = await store.verify()  # with the witness
        assert not result.ok and result.reason.startswith("checkpoint 2"), what
    with closing(raw(paths["db"])) as conn:
        conn.execute("DELETE FROM onescreen_audit_checkpoint WHERE number = 2")
    result = await store.verify()
    assert result.reason == "checkpoint 2 is in the witness directory but not in the store"
    await store.close()


async def test_verify_from_a_trusted_checkpoint_reads_only_the_records_after_it(paths, monkeypatch):
    """Invariant 7 at scale: a verify from checkpoint N costs the records after it, not the whole trail
    (counted), and still names a bad record there."""
    monkeypatch.setattr(audit.store, "CHUNK", 4)  # several reads
    store = await sealed_trail(paths, [10, 10, 10])
    await store.append_many([event(100 + i) for i in range(5)])  # 5 not sealed yet
    store.rows_read = 0
    full = await store.verify()
    assert (full.ok, full.count, full.checkpoints, store.rows_read) == (True, 35, 3, 35)
    store.rows_read = 0
    later = await store.verify(from_number=2)
    assert (later.ok, later.count, later.checkpoints, store.rows_read) == (True, 15, 1, 15)
    assert later.head_hash == full.head_hash
    with closing(raw(paths["db"])) as conn:
        conn.execute("UPDATE onescreen_audit SET task = 'x' WHERE seq = 33")
    store.rows_read = 0
    bad = await store.verify(from_number=3)
    assert (bad.ok, bad.first_bad_seq, bad.count, store.rows_read) == (False, 33, 3, 4)  # one read of 4 rows
    assert (await store.verify(from_number=9)).reason == "there is no checkpoint 9 to start from"
    await store.close()


async def test_checkpoints_are_sealed_every_n_records_every_t_seconds_and_on_a_clean_stop(paths):
    store = make_store(paths, every_records=10, every_seconds=3600)
    await store.open()
    # the sealer runs beside the writer and seals what is pending when it wakes: a sealer slower than 25
    # appends (a loaded machine) sealed all 25 in one checkpoint, so each batch waits for its seal, bounded
    for batch in (range(0, 10), range(10, 25)):
        for i in batch:
            await store.append(event(i))
        async with asyncio.timeout(10):
            while store.sealer.last is None or store.sealer.last.seq < (10 if batch.start == 0 else 20):
                await asyncio.sleep(0.01)
    await store.close()  # a clean stop seals the rest
    again = AuditStore(sqlite_url(paths["db"]))
    cps = await again.checkpoints()
    assert cps[-1].seq == 25 and sum(c.count for c in cps) == 25 and len(cps) >= 2
    assert [c.number for c in cps] == list(range(1, len(cps) + 1))
    assert Witness(paths["witness"], "onescreen_audit").numbers() == [c.number for c in cps]
    await again.close()

    timed = make_store(paths, every_records=10**6, every_seconds=0.05)
    await timed.open()
    await timed.append(event(99))
    async with asyncio.timeout(10):
        while timed.sealer.last is None:
            await asyncio.sleep(0.01)
    assert timed.sealer.last.seq == 26
    await timed.close()


async def test_a_rotated_key_keeps_old_checkpoints_verifiable_by_key_id(paths, tmp_path):
    """Rotation by key id: checkpoints signed by the old key verify while its public key is still trusted."""
    old = await sealed_trail(paths, [3])
    await old.close()
    new_key = Signer.ed25519(Ed25519PrivateKey.generate())
    new = make_store(paths, signer=new_key)
    await new.open()
    await new.append(event(50))
    await new.close()
    assert [c.key_id for c in await AuditStore(sqlite_url(paths["db"])).checkpoints()] == [KEY.key_id,
                                                                                            new_key.key_id]
    published = tmp_path / "keys.pem"
    published.write_text(public_pem(KEY.public_key) + public_pem(new_key.public_key))
    store = AuditStore(sqlite_url(paths["db"]))
    witness = Witness(paths["witness"], "onescreen_audit")
    assert (await verify(store, keys=KeyRing.from_pem_file(published), witness=witness)).checkpoints == 2
    only_new = await verify(store, keys=KeyRing([new_key.public_key]), witness=witness)
    assert only_new.reason == f"checkpoint 1: signed by key {KEY.key_id}, which is not a trusted key"
    await store.close()


def test_the_cli_publishes_the_key_lists_checkpoints_and_verifies_from_one(data_dir, tmp_path):
    """`onescreen audit public-key | checkpoints | verify --from` over a demo data directory."""
    async def fill() -> None:
        from oneScreen.audit import setup
        from oneScreen.settings import load

        from conftest import env_for
        env = env_for(data_dir)
        store = setup.service_store(load(env), env)
        await store.open()
        for i in range(3):
            await store.append_many([event(10 * i + j) for j in range(4)])
            await store.sealer.seal()
        await store.close()

    asyncio.run(fill())
    env = {"ONESCREEN_DATA_DIR": str(data_dir)}
    pem = run_cli("audit", "public-key", env_extra=env)
    assert pem.returncode == 0 and "-----BEGIN PUBLIC KEY-----" in pem.stdout
    keys = tmp_path / "published.pem"
    keys.write_text(pem.stdout.split("\n", 1)[1])
    [kid] = KeyRing.from_pem_file(keys).keys
    assert pem.stdout.startswith(f"# key id {kid}")
    listed = run_cli("audit", "checkpoints", env_extra=env)
    assert listed.returncode == 0 and [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["1", "1-4", "4"], ["2", "5-8", "4"], ["3", "9-12", "4"]]
    assert all(kid in line for line in listed.stdout.splitlines()[1:])
    ok = run_cli("audit", "verify", "--from", "2", env_extra=env)
    assert ok.returncode == 0 and "audit trail intact: 4 records" in ok.stdout, ok.stderr
    assert (data_dir / "audit-checkpoint.key").stat().st_mode & 0o077 == 0  # the demo key: owner-only


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, as written: MTH(D[n]) splits at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])).digest()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 70), seed=st.integers(0, 2**32))
def test_the_merkle_root_is_rfc_6962s_and_every_audit_path_proves_its_record(n, seed):
    """The checkpoints' Merkle tree is RFC 6962's (leaf 0x00 || hash, node 0x01 || left || right), and the
    audit path of each record (for the citizens' inclusion proofs to come) proves it, and only it."""
    hashes = [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in range(n)]
    root = merkle_root(hashes)
    assert root == _reference_root([bytes.fromhex(h) for h in hashes]).hex()
    for i, h in enumerate(hashes):
        path = audit_path(hashes, i)
        assert verify_path(h, i, n, path, root)
        assert not verify_path(hashlib.sha256(b"other").hexdigest(), i, n, path, root)
        if n > 1:
            assert not verify_path(h, (i + 1) % n, n, path, root)
    with pytest.raises(IndexError):
        audit_path(hashes, n)


def test_the_signing_key_comes_from_the_environment_or_a_file_never_the_database(tmp_path):
    from cryptography.hazmat.primitives import serialization

    from oneScreen.audit.checkpoints import load_signer
    seed = bytes(range(32)).hex()
    assert load_signer(secret_hex=seed, key_file=None, demo_dir=None).key_id == KEY.key_id
    pem = tmp_path / "k.pem"
    pem.write_bytes(Ed25519PrivateKey.from_private_bytes(bytes(range(32))).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert load_signer(secret_hex=None, key_file=pem, demo_dir=None).key_id == KEY.key_id
    assert load_signer(secret_hex=None, key_file=None, demo_dir=None) is None  # production: none configured
    for bad in ("xyz", "ab" * 16):
        with pytest.raises(ValueError, match="64 hex digits") as info:
            load_signer(secret_hex=bad, key_file=None, demo_dir=None)
        assert bad not in str(info.value)
