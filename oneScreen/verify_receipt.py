"""Check a receipt's proof without the service: `python -m oneScreen.verify_receipt proof.json --public-key key.pem`.

Standalone on purpose: the Python standard library and the `cryptography` package only, nothing else of
oneScreen, so a citizen (or anyone they trust) can read it in one sitting and run it on their own machine.
It checks, in order: each revealed private member matches its commitment in the record (sha256 of the
member's salt followed by the canonical JSON of its value; a member not revealed, such as the officer's
user id and address, stays hidden: only its commitment is in the proof); the record's content hashes to the
record hash (chain.py's encoding: sha256 of the previous hash followed by the canonical JSON of the
record, commitments included); that hash is leaf `leaf_index` of the Merkle
tree (RFC 6962 / RFC 9162 2.1.3.2) whose root the checkpoint names; the checkpoint is signed (Ed25519, over
"onescreen audit checkpoint v1\\n" + the canonical JSON of its body) by one of the given public keys.
Exit 0: valid; exit 1: invalid, with the reason; exit 2: the files cannot be read.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMATS = ("onescreen-receipt-proof/1", "onescreen-receipt-proof/2")  # /2: with `revealed`
DOMAIN = b"onescreen audit checkpoint v1\n"
CHECKPOINT_KEYS = ("number", "seq", "head", "count", "root", "at", "previous", "key_id")


class Invalid(Exception):
    """The proof does not hold; the message says why."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _leaf(record_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(record_hash)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(record_hash: str, index: int, size: int, path: list[str]) -> str | None:
    """The root that `path` leads to from leaf `index` of a tree of `size` leaves (RFC 9162 2.1.3.2); None when
    the path cannot belong to such a tree."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, _leaf(record_hash)
    for p in path:
        sibling = bytes.fromhex(p)
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(sibling, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, sibling)
        fn, sn = fn >> 1, sn >> 1
    return r.hex() if sn == 0 else None


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def load_keys(pem: bytes) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM text (concatenated blocks; `#` comment lines are ignored)."""
    keys: dict[str, Ed25519PublicKey] = {}
    end = b"-----END PUBLIC KEY-----"
    for block in pem.split(end):
        begin = block.find(b"-----BEGIN PUBLIC KEY-----")
        if begin < 0:
            continue
        key = serialization.load_pem_public_key(block[begin:] + end + b"\n")
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("a public key in the file is not an Ed25519 key")
        keys[key_id(key)] = key
    if not keys:
        raise ValueError("no PEM public key in the file")
    return keys


def verify(proof: Any, keys: dict[str, Ed25519PublicKey]) -> str:
    """What the proof proves, in one line; Invalid with the reason when it does not hold."""
    try:
        if not isinstance(proof, dict) or proof.get("format") not in FORMATS:
            raise Invalid(f"not a receipt proof (format {FORMATS[-1]!r} expected)")
        record, cp = proof["record"], proof["checkpoint"]
        seq, index, size = int(proof["seq"]), int(proof["leaf_index"]), int(proof["tree_size"])
        prev_hash, record_hash, path = str(proof["prev_hash"]), str(proof["hash"]), list(proof["audit_path"])
        if not isinstance(record, dict) or not isinstance(cp, dict):
            raise Invalid("the proof's record and checkpoint must be JSON objects")
        if record.get("seq") != seq:
            raise Invalid(f"the record inside the proof is record {record.get('seq')}, not record {seq}")
        revealed, commitments = proof.get("revealed") or {}, record.get("commitments") or {}
        if not isinstance(revealed, dict) or not isinstance(commitments, dict):
            raise Invalid("the proof's revealed members and the record's commitments must be JSON objects")
        # 0. every revealed value is the one committed to in the record
        for member, shown in sorted(revealed.items()):
            if member not in commitments:
                raise Invalid(f"record {seq} has no commitment for the revealed member {member!r}")
            digest = hashlib.sha256(bytes.fromhex(str(shown["salt"])) + canonical(shown["value"])).hexdigest()
            if digest != commitments[member]:
                raise Invalid(f"the revealed {member} of record {seq} is not the one committed to in the record")
        # 1. the record's content is what was hashed into the chain
        if hashlib.sha256(prev_hash.encode("utf-8") + canonical(record)).hexdigest() != record_hash:
            raise Invalid(f"record {seq} was changed after it was written: its content does not hash to its "
                          f"record hash {record_hash[:16]}…")
        # 2. that hash is in the tree the checkpoint seals
        body = {k: cp[k] for k in CHECKPOINT_KEYS}
        first = int(cp["seq"]) - int(cp["count"]) + 1
        if size != int(cp["count"]) or index != seq - first:
            raise Invalid(f"checkpoint {cp['number']} seals records {first}-{cp['seq']}, not record {seq} at "
                          f"place {index} of {size}")
        root = root_from_path(record_hash, index, size, path)
        if root is None or root != cp["root"]:
            raise Invalid(f"record {seq} is not in the Merkle tree of checkpoint {cp['number']}: its audit path "
                          f"leads to another root than the signed one")
        if int(cp["seq"]) == seq and cp["head"] != record_hash:
            raise Invalid(f"checkpoint {cp['number']} names another hash for record {seq}")
        # 3. the checkpoint is signed by a key the verifier trusts
        key = keys.get(str(cp["key_id"]))
        if key is None:
            raise Invalid(f"checkpoint {cp['number']} is signed by key {cp['key_id']}, which is not one of the "
                          f"given public keys ({', '.join(sorted(keys))})")
        try:
            key.verify(base64.b64decode(str(cp["signature"]), validate=True), DOMAIN + canonical(body))
        except (InvalidSignature, binascii.Error, ValueError):
            raise Invalid(f"checkpoint {cp['number']}: the signature does not match (a forged checkpoint, or one "
                          f"changed after it was signed)") from None
    except (KeyError, TypeError, ValueError) as exc:  # Invalid is none of these: it passes
        raise Invalid(f"the proof is incomplete or malformed ({type(exc).__name__}: {exc})") from None
    shown = "".join(f", {m} {v['value']!r}" for m, v in sorted(revealed.items()))
    return (f"valid: audit record {seq} ({record.get('at')}, task {record.get('task')}{shown}) is in the audit "
            f"trail, sealed in checkpoint {cp['number']} ({cp['at']}) signed by key {cp['key_id']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oneScreen.verify_receipt",
                                     description="check a oneScreen receipt's proof against the audit public key")
    parser.add_argument("proof", help="the proof (JSON), as downloaded from 내 정보 이용내역 or `onescreen audit prove`")
    parser.add_argument("--public-key", required=True, metavar="PEM",
                        help="the audit checkpoint public key(s), as `onescreen audit public-key` prints them")
    args = parser.parse_args(argv)
    try:
        with open(args.proof, "rb") as fh:
            proof = json.loads(fh.read().decode("utf-8"))
        with open(args.public_key, "rb") as fh:
            keys = load_keys(fh.read())
    except (OSError, ValueError) as exc:
        print(f"cannot read the files: {exc}", file=sys.stderr)
        return 2
    try:
        print(verify(proof, keys))
    except Invalid as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
