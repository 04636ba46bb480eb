"""A receipt's proof, checked as a citizen would check it: `onescreen audit prove SEQ` (or the page's download)
and the standalone verifier `python -m oneScreen.verify_receipt proof.json --public-key key.pem` (invariant 7,
tamper-evident for the subject, without trusting the operator).

Real SQLite audit files, real checkpoints signed with keys made here, the verifier run as its own process.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from oneScreen.audit import Checkpoint, Signer
from oneScreen.audit.checkpoints import DOMAIN, public_pem
from oneScreen.audit.proof import prove
from oneScreen.errors import BadRequest
from test_audit import event, raw
from test_audit_checkpoints import KEY, make_store, paths, rehash_from, sealed_trail  # noqa: F401 (fixture)
from test_catalog import run_cli

ROOT = Path(__file__).resolve().parent.parent


def verifier(proof: dict[str, Any], tmp_path: Path, pem: str) -> subprocess.CompletedProcess:
    """The standalone verifier in its own process, as a citizen runs it; it must import nothing else of oneScreen."""
    (tmp_path / "proof.json").write_text(json.dumps(proof, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "key.pem").write_text(pem, encoding="ascii")
    code = ("import sys, oneScreen.verify_receipt as v\n"
            "rc = v.main(sys.argv[1:])\n"
            "others = sorted(m for m in sys.modules if m.startswith('oneScreen') and m not in "
            "('oneScreen', 'oneScreen.verify_receipt'))\n"
            "print('IMPORTED', others, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code, str(tmp_path / "proof.json"), "--public-key",
                           str(tmp_path / "key.pem")], capture_output=True, text=True, cwd=ROOT, timeout=60)


async def test_a_valid_proof_verifies_with_the_standalone_verifier_for_every_record(paths, tmp_path):
    """Every record of trees of odd and even sizes has a proof that verifies, using the stdlib + cryptography only."""
    store = await sealed_trail(paths, [5, 1, 8])
    try:
        proofs = [await prove(store, seq) for seq in range(1, 15)]
    finally:
        await store.close()
    from oneScreen.verify_receipt import load_keys, verify
    keys = load_keys(public_pem(KEY.public_key).encode())
    for p in proofs:
        assert verify(p, keys).startswith(f"valid: audit record {p['seq']} ")
    assert [p["checkpoint"]["number"] for p in proofs] == [1] * 5 + [2] + [3] * 8
    done = verifier(proofs[8], tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 0, done.stderr
    assert "valid: audit record 9" in done.stdout and "checkpoint 3" in done.stdout
    assert "IMPORTED []" in done.stderr  # standalone: no other module of oneScreen


async def test_a_record_edited_in_the_store_fails_with_a_clear_message(paths, tmp_path):
    store = await sealed_trail(paths, [4])
    await store.close()
    with raw(paths["db"]) as conn:  # an administrator turns a MASKED into a DENIED after the fact
        conn.execute("UPDATE onescreen_audit SET fields = replace(fields, 'MASKED', 'DENIED') WHERE seq = 2")
    store = make_store(paths)
    await store.open()
    try:
        proof = await prove(store, 2)
    finally:
        await store.close()
    assert any(f["status"] == "DENIED" for f in proof["record"]["fields"])
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert "INVALID: record 2 was changed after it was written" in done.stderr


async def test_a_record_edited_and_rehashed_is_not_in_the_signed_tree(paths, tmp_path):
    store = await sealed_trail(paths, [6])
    await store.close()
    with raw(paths["db"]) as conn:
        rehash_from(conn, 3, "task = 'vehicle_transfer'")
    store = make_store(paths)
    await store.open()
    try:
        proof = await prove(store, 3)
    finally:
        await store.close()
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert "INVALID: record 3 is not in the Merkle tree of checkpoint 1" in done.stderr


async def test_a_proof_against_a_forged_checkpoint_fails(paths, tmp_path):
    """The operator rewrites the record and seals a checkpoint of their own: with another key it is not trusted;
    with the real key id but a root of their choosing, the signature does not match."""
    store = await sealed_trail(paths, [3])
    try:
        proof = await prove(store, 2)
    finally:
        await store.close()
    forged = json.loads(json.dumps(proof))
    forged["record"]["task"] = "vehicle_transfer"  # a record that was never written ...
    from oneScreen.audit.chain import canonical, link
    forged["hash"] = link(forged["prev_hash"], canonical(forged["record"]).encode())
    from oneScreen.audit.chain import audit_path, merkle_root
    leaves = [proof["hash"]] * 3
    leaves[1] = forged["hash"]
    forged["audit_path"] = audit_path(leaves, 1)
    cp = Checkpoint(**{k: v for k, v in proof["checkpoint"].items()})
    other = Signer.ed25519(Ed25519PrivateKey.generate())  # ... sealed by a key that is not the service's
    mine = dataclasses.replace(cp, root=merkle_root(leaves), key_id=other.key_id, signature="")
    mine = dataclasses.replace(mine, signature=base64.b64encode(other.sign(DOMAIN + mine.body())).decode())
    forged["checkpoint"] = dataclasses.asdict(mine)
    done = verifier(forged, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert f"INVALID: checkpoint 1 is signed by key {other.key_id}, which is not one of the given public keys" \
        in done.stderr
    forged["checkpoint"] = dataclasses.asdict(dataclasses.replace(mine, key_id=KEY.key_id))
    done = verifier(forged, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert "INVALID: checkpoint 1: the signature does not match (a forged checkpoint" in done.stderr


def test_onescreen_audit_prove_prints_a_proof_that_verifies_with_audit_public_key(data_dir, tmp_path):
    """The CLI's two halves: `audit prove SEQ` (JSON) and `audit public-key` (PEM) check each other; a record
    not sealed yet is refused with what to wait for."""
    import asyncio

    from oneScreen.audit import AuditStore, Checkpointing
    from oneScreen.audit.checkpoints import load_signer

    async def write(n: int, seal: bool) -> None:
        signer = load_signer(secret_hex=None, key_file=None, demo_dir=data_dir)
        store = AuditStore(f"sqlite+aiosqlite:///{data_dir / 'audit.sqlite'}", create=True,
                           checkpointing=Checkpointing(signer, None, every_records=10**6, every_seconds=3600))
        await store.open()
        await store.append_many([event(100 + n + i) for i in range(n)])
        if seal:
            await store.sealer.seal()
        store.sealer = None  # no seal at close: the last records stay unsealed
        await store.close()

    asyncio.run(write(3, True))
    asyncio.run(write(1, False))
    env = {"ONESCREEN_DATA_DIR": str(data_dir)}
    key = run_cli("audit", "public-key", env_extra=env)
    assert key.returncode == 0, key.stderr
    proved = run_cli("audit", "prove", "2", env_extra=env)
    assert proved.returncode == 0, proved.stderr
    done = verifier(json.loads(proved.stdout), tmp_path, key.stdout)
    assert done.returncode == 0, done.stderr
    assert "lee.bokji" not in proved.stdout and "10.0.0.7" not in proved.stdout
    revealed = run_cli("audit", "prove", "2", "--reveal", "user", env_extra=env)  # an auditor's proof
    assert revealed.returncode == 0, revealed.stderr
    done = verifier(json.loads(revealed.stdout), tmp_path, key.stdout)
    assert done.returncode == 0 and "user 'lee.bokji'" in done.stdout, done.stderr
    assert "10.0.0.7" not in revealed.stdout
    pending = run_cli("audit", "prove", "4", env_extra=env)
    assert pending.returncode == 1 and "audit record 4 is not sealed in a signed checkpoint yet" in pending.stderr
    missing = run_cli("audit", "prove", "99", env_extra=env)
    assert missing.returncode == 1 and "there is no audit record 99" in missing.stderr


# ---------------------------------------------------------------- the officer stays hidden (record format 2)
OFFICER, ADDRESS = "lee.bokji", "10.0.0.7"  # test_audit.event's user and client


async def test_a_proof_hides_the_officers_id_and_address_and_still_verifies(paths, tmp_path):
    """A citizen's proof names what was disclosed for which task, but not who looked (user id) or from where
    (client address): both are only commitments in the record, and the nonce is not in the proof."""
    store = await sealed_trail(paths, [3])
    try:
        proof = await prove(store, 2)
        row = await store.read(lambda conn: conn.exec_driver_sql("SELECT nonce FROM onescreen_audit WHERE seq = 2"))
        nonce = row.scalar()
    finally:
        await store.close()
    text = json.dumps(proof, ensure_ascii=False)
    assert OFFICER not in text and ADDRESS not in text and nonce not in text
    assert proof["record"]["task"] == "basic_livelihood" and proof["revealed"] == {}
    assert sorted(proof["record"]["commitments"]) == ["client", "user"]
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 0, done.stderr
    assert "valid: audit record 2" in done.stdout and OFFICER not in done.stdout


async def test_a_forged_commitment_fails(paths, tmp_path):
    """Someone swaps the officer's commitment in a proof (to pin the access on another officer): the record no
    longer hashes to the sealed record hash."""
    store = await sealed_trail(paths, [3])
    try:
        proof = await prove(store, 2)
    finally:
        await store.close()
    from oneScreen.audit.chain import commitment
    proof["record"]["commitments"]["user"] = commitment(b"\x00" * 32, "kim.other")
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert "INVALID: record 2 was changed after it was written" in done.stderr


async def test_editing_the_stored_officer_fails_audit_verify_and_the_proof(paths, tmp_path):
    """The stored user id is still covered by the hash (through its commitment and the record's nonce): an
    administrator who rewrites it breaks `audit verify` and every proof of that record."""
    store = await sealed_trail(paths, [4])
    await store.close()
    with raw(paths["db"]) as conn:
        conn.execute("UPDATE onescreen_audit SET user_id = 'kim.other' WHERE seq = 3")
    store = make_store(paths)
    await store.open()
    try:
        result = await store.verify()
        proof = await prove(store, 3)
    finally:
        await store.close()
    assert (result.ok, result.first_bad_seq, result.reason) == (False, 3, "record 3: hash does not match its content")
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert "INVALID: record 3 was changed after it was written" in done.stderr


async def test_a_revealed_member_is_checked_against_its_commitment(paths, tmp_path):
    """An auditor's proof (`audit prove SEQ --reveal user`) shows the officer with that member's salt (never the
    nonce): it verifies, the client stays hidden, and a revealed value swapped for another does not verify."""
    store = await sealed_trail(paths, [3])
    try:
        proof = await prove(store, 1, reveal=["user"])
    finally:
        await store.close()
    text = json.dumps(proof, ensure_ascii=False)
    assert proof["revealed"]["user"]["value"] == OFFICER and ADDRESS not in text
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 0, done.stderr
    assert f"user '{OFFICER}'" in done.stdout
    proof["revealed"]["user"]["value"] = "kim.other"
    done = verifier(proof, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 1
    assert "INVALID: the revealed user of record 1 is not the one committed to in the record" in done.stderr


async def test_a_proof_hides_the_officers_name_too_which_only_an_auditor_reveals(paths, tmp_path):
    """The door records the officer's name from their sign-in; before schema version 4 it sat in the record's
    `detail`, in clear in every citizen's proof. Now it is a private member like the user id: the citizen's
    proof verifies without it, an auditor's (--reveal user_name) shows it, and a record that commits no name
    (format 2) says so instead of failing."""
    store = make_store(paths)
    await store.open()
    try:
        await store.append_many([event(0), event(1, user_name="이복지")])
        await store.sealer.seal()
        citizen = await prove(store, 2)
        auditor = await prove(store, 2, reveal=["user_name"])
        with pytest.raises(BadRequest, match="audit record 1 commits no user_name"):
            await prove(store, 1, reveal=["user_name"])
    finally:
        await store.close()
    text = json.dumps(citizen, ensure_ascii=False)
    assert "이복지" not in text and OFFICER not in text and citizen["record"]["format"] == 3
    assert sorted(citizen["record"]["commitments"]) == ["client", "user", "user_name"]
    done = verifier(citizen, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 0 and "valid: audit record 2" in done.stdout, done.stderr
    assert auditor["revealed"]["user_name"]["value"] == "이복지"
    done = verifier(auditor, tmp_path, public_pem(KEY.public_key))
    assert done.returncode == 0 and "user_name '이복지'" in done.stdout, done.stderr
