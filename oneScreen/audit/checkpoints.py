"""Signed checkpoints: every N records or T seconds (and on a clean stop) the trail's head is sealed.

Owns the half of invariant 7 that the database alone cannot give: a checkpoint (last seq, head hash,
count, time, RFC 6962 Merkle root of the records since the previous checkpoint, the previous checkpoint's
digest) is signed with an Ed25519 key that is not in the database and written to the store AND to a
witness directory, so a trail rewritten and rehashed by whoever controls the database no longer matches.
The signing call is one function (`Signer.sign`): a KMS or HSM can take its place.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .chain import GENESIS, canonical, iso, merkle_root
from .schema import Tables

log = logging.getLogger("onescreen.audit")

DOMAIN = b"onescreen audit checkpoint v1\n"  # signed before the body: a signature means nothing elsewhere
MAX_SPAN = 100_000  # records one checkpoint seals at most (bounded memory; a longer backlog gets several)
SEAL_TIMEOUT = 60.0  # seconds one sealing may take (off the request path)


@dataclass(frozen=True)
class Checkpoint:
    number: int  # 1, 2, 3, ... in the order sealed
    seq: int  # the last record it seals
    head: str  # that record's hash
    count: int  # records it seals: seq of the previous checkpoint + 1 .. seq
    root: str  # RFC 6962 Merkle root of those records' hashes
    at: str  # UTC ISO 8601 time of sealing
    previous: str  # digest() of the previous checkpoint; 64 zeros for the first
    key_id: str  # which key signed it (rotation by key id)
    signature: str = ""  # base64 Ed25519 signature of DOMAIN + body()

    @property
    def first_seq(self) -> int:
        return self.seq - self.count + 1

    def body(self) -> bytes:
        """What is signed (after DOMAIN): the canonical JSON of every attribute but the signature."""
        return canonical({k: v for k, v in asdict(self).items() if k != "signature"}).encode("utf-8")

    def digest(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()

    def to_json(self) -> str:
        return canonical(asdict(self))

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "Checkpoint":
        """From a stored row or a witness file; ValueError/KeyError/TypeError when it is not one."""
        return cls(number=int(m["number"]), seq=int(m["seq"]), head=str(m["head"]), count=int(m["count"]),
                   root=str(m["root"]), at=str(m["at"]), previous=str(m["previous"]), key_id=str(m["key_id"]),
                   signature=str(m["signature"]))


# ---------------------------------------------------------------- keys
def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class Signer:
    """One signing key: its id, its public key, and the one call that signs (replaceable by a KMS/HSM)."""

    key_id: str
    public_key: Ed25519PublicKey
    sign: Callable[[bytes], bytes]

    @classmethod
    def ed25519(cls, private_key: Ed25519PrivateKey) -> "Signer":
        public = private_key.public_key()
        return cls(key_id(public), public, private_key.sign)


def load_signer(*, secret_hex: str | None, key_file: Path | None, demo_dir: Path | None) -> Signer | None:
    """The checkpoint signing key: a 32-byte Ed25519 seed in hex (an environment secret), a PEM (PKCS#8)
    file, or in demo mode a key generated once in the data directory. None when none is configured."""
    if secret_hex:
        try:
            seed = bytes.fromhex(secret_hex.strip())
        except ValueError:
            raise ValueError("ONESCREEN_AUDIT_SIGNING_KEY must be 64 hex digits (an Ed25519 seed)") from None
        if len(seed) != 32:
            raise ValueError("ONESCREEN_AUDIT_SIGNING_KEY must be 64 hex digits (an Ed25519 seed)")
        return Signer.ed25519(Ed25519PrivateKey.from_private_bytes(seed))
    if key_file is None and demo_dir is not None:
        key_file = demo_dir / "audit-checkpoint.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption())
            try:
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another worker made it first
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
    if key_file is None:
        return None
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{key_file}: not a readable PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{key_file}: the checkpoint signing key must be an Ed25519 key")
    return Signer.ed25519(key)


class KeyRing:
    """The public keys a verifier trusts, by key id: the current one and those rotated out."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self.keys = {key_id(k): k for k in keys}

    @classmethod
    def from_pem_file(cls, path: Path, also: Iterable[Ed25519PublicKey] = ()) -> "KeyRing":
        """Every PEM public key in the file (concatenated blocks), plus `also`."""
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the checkpoint public keys ({type(exc).__name__})") from None
        keys = list(also)
        end = "-----END PUBLIC KEY-----"
        for i, block in enumerate(b for b in text.split(end) if b.strip()):
            try:
                key = serialization.load_pem_public_key((block.strip() + "\n" + end + "\n").encode())
            except ValueError:
                raise ValueError(f"{path}: public key {i + 1} is not a PEM public key") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"{path}: public key {i + 1} is not an Ed25519 key")
            keys.append(key)
        return cls(keys)

    def check(self, cp: Checkpoint) -> str | None:
        """None when `cp` is signed by a trusted key; else what is wrong."""
        key = self.keys.get(cp.key_id)
        if key is None:
            return f"checkpoint {cp.number}: signed by key {cp.key_id}, which is not a trusted key"
        try:
            key.verify(base64.b64decode(cp.signature, validate=True), DOMAIN + cp.body())
        except (InvalidSignature, binascii.Error, ValueError):
            return f"checkpoint {cp.number}: the signature does not match (forged, or changed after signing)"
        return None


# ---------------------------------------------------------------- the witness
class Witness:
    """An append-only directory: one file per checkpoint, created once (never overwritten), fsynced.

    Put it where the database's administrators cannot write (another volume, a WORM mount, `chattr +a`)."""

    def __init__(self, directory: Path, trail: str) -> None:
        self.directory, self.trail = directory, trail

    def path(self, number: int) -> Path:
        return self.directory / f"{self.trail}-{number:012d}.json"

    def write(self, cp: Checkpoint) -> None:
        data = (cp.to_json() + "\n").encode("utf-8")
        path = self.path(cp.number)
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            if path.read_bytes() != data:
                raise ValueError(f"the witness already holds a different checkpoint {cp.number}") from None
            return
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read(self, number: int) -> Checkpoint | None:
        """The witness copy of checkpoint `number`, None when it has none; ValueError when it is unreadable."""
        try:
            text = self.path(number).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return Checkpoint.from_mapping(json.loads(text))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"the witness copy of checkpoint {number} cannot be read") from None

    def numbers(self) -> list[int]:
        prefix, out = f"{self.trail}-", []
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                stem = p.name[len(prefix):-len(".json")]
                if p.name.startswith(prefix) and p.name.endswith(".json") and stem.isdigit():
                    out.append(int(stem))
        return sorted(out)


# ---------------------------------------------------------------- sealing
class Sealer:
    """Seals checkpoints of one store: when told N records were committed, every T seconds, and at stop.

    Sealers of several processes take turns under their own lock (not the writers'), so appends go on
    while a checkpoint is sealed."""

    def __init__(self, engine: Any, t: Tables, signer: Signer, witness: Witness | None, *, every_records: int,
                 every_seconds: float, lock_key: int, clock: Callable[[], datetime] | None = None) -> None:
        if every_records < 1 or every_seconds <= 0:
            raise ValueError("checkpoints need every_records >= 1 and every_seconds > 0")
        self.engine, self.t, self.signer, self.witness = engine, t, signer, witness
        self.every_records, self.every_seconds, self.lock_key = every_records, every_seconds, lock_key
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._since = 0  # records committed by this process since the last sealing
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._unwitnessed: list[Checkpoint] = []  # sealed, but their witness copy failed: tried again
        self.sealed = 0  # checkpoints sealed by this process
        self.sealed_records = 0  # records they seal
        self.seconds = 0.0  # time spent sealing (for the benchmark's cost per record)
        self.last: Checkpoint | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="onescreen-audit-sealer")

    def committed(self, n: int) -> None:
        """The writer committed `n` records."""
        self._since += n
        if self._since >= self.every_records:
            self._wake.set()

    async def stop(self) -> None:
        """Stop the timer and seal what is left (a clean stop ends with a checkpoint)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._seal_logged()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.every_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._seal_logged()

    async def _seal_logged(self) -> None:
        try:
            await self.seal()
        except Exception as exc:  # noqa: BLE001 - sealing is retried on the next turn; requests go on
            log.error("audit checkpoint not sealed", extra={"operation": "audit.checkpoint", "outcome": "failed",
                                                            "reason": type(exc).__name__})

    async def seal(self) -> list[Checkpoint]:
        """Seal every record since the last checkpoint (in checkpoints of at most MAX_SPAN records), then
        write the witness copies: of those, and of the checkpoint before them if it has none yet (its sealer
        may have lost the answer to its commit)."""
        self._since = 0
        started = asyncio.get_running_loop().time()
        sealed: list[Checkpoint] = []
        before: Checkpoint | None = None
        try:
            async with asyncio.timeout(SEAL_TIMEOUT):
                while True:
                    cp, last = await self._seal_one()
                    before = last if not sealed else before
                    if cp is None:
                        break
                    sealed.append(cp)
                    if cp.count < MAX_SPAN:
                        break
        finally:
            self.seconds += asyncio.get_running_loop().time() - started
        self.sealed += len(sealed)
        self.sealed_records += sum(c.count for c in sealed)
        if sealed:
            self.last = sealed[-1]
        self._unwitnessed += sealed
        if self.witness is not None:
            if before is not None and before not in self._unwitnessed and self.witness.read(before.number) is None \
                    and KeyRing([self.signer.public_key]).check(before) is None:
                self._unwitnessed.insert(0, before)
            while self._unwitnessed:
                await asyncio.to_thread(self.witness.write, self._unwitnessed[0])
                self._unwitnessed.pop(0)
        return sealed

    async def _seal_one(self) -> tuple[Checkpoint | None, Checkpoint | None]:
        """(the checkpoint sealed now or None when nothing is new, the last checkpoint before it)"""
        r, c = self.t.records, self.t.checkpoints
        engine = self.engine
        if engine.dialect.name == "sqlite":
            engine = engine.execution_options(onescreen_begin="IMMEDIATE")
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": self.lock_key})
            last_row = (await conn.execute(sa.select(c).order_by(c.c.number.desc()).limit(1))).mappings().first()
            last = Checkpoint.from_mapping(last_row) if last_row else None
            after = last.seq if last else 0
            rows = (await conn.execute(sa.select(r.c.seq, r.c.prev_hash, r.c.hash).where(r.c.seq > after)
                                       .order_by(r.c.seq).limit(MAX_SPAN))).all()
            if not rows:
                return None, last
            prev = last.head if last else GENESIS
            for i, row in enumerate(rows):  # seal only a whole chain: verify names what broke it
                if row.seq != after + 1 + i or row.prev_hash != prev:
                    raise ValueError("the trail does not chain on from the last checkpoint; not sealed")
                prev = row.hash
            cp = Checkpoint(number=last.number + 1 if last else 1, seq=rows[-1].seq, head=rows[-1].hash,
                            count=len(rows), root=merkle_root([row.hash for row in rows]), at=iso(self.clock()),
                            previous=last.digest() if last else GENESIS, key_id=self.signer.key_id)
            cp = replace(cp, signature=base64.b64encode(self.signer.sign(DOMAIN + cp.body())).decode())
            await conn.execute(c.insert().values(**asdict(cp)))
        return cp, last


async def stored(conn: Any, t: Tables, after_number: int = 0, limit: int | None = None) -> list[Checkpoint]:
    """Checkpoints in the store, oldest first (from number `after_number` + 1)."""
    c = t.checkpoints
    q = sa.select(c).where(c.c.number > after_number).order_by(c.c.number)
    if limit is not None:
        q = q.limit(limit)
    return [Checkpoint.from_mapping(m) for m in (await conn.execute(q)).mappings().all()]
