"""Who is asking: caseworker identity from a bearer token. No identity, no data.

Demo mode: tokens for demo users, signed with a key kept in the data
directory (so a token minted by `onescreen token` is valid for a server on
the same data directory). Production mode: JWTs from the government SSO,
verified with a public key or JWKS file (ONESCREEN_JWT_KEYS), issuer and
audience checked, asymmetric algorithms only (no `none`, no HS/RS confusion).
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cachetools import TTLCache

from . import jurisdiction
from .errors import Unauthenticated
from .policy import Caller

DEMO_ISSUER = "onescreen-demo"
DEMO_AUDIENCE = "onescreen"
ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
DEMO_USERS_FILE = Path(__file__).parent / "demo" / "users.yaml"


@dataclass(frozen=True)
class DemoUser:
    user: str
    name: str
    org: str
    region: str | None  # "national", a 시도 or 시군구 code; None: no region (e.g. a citizen)
    roles: tuple[str, ...]
    subject: str | None = None  # a citizen user: "auto" = the first demo resident


def demo_users() -> list[DemoUser]:
    data = yaml.safe_load(DEMO_USERS_FILE.read_text(encoding="utf-8"))
    return [DemoUser(u["user"], u["name"], u["org"], u.get("region"), tuple(u["roles"]), u.get("subject"))
            for u in data["users"]]


def _demo_subject(data_dir: Path) -> str:
    import sqlite3
    path = Path(data_dir) / "demo" / "mois_resident.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT rrn FROM resident ORDER BY rrn LIMIT 1").fetchone()[0]


def demo_key(data_dir: Path) -> bytes:
    """The demo signing key of this data directory, created (mode 0600) on first use."""
    path = Path(data_dir) / "demo-signing.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.encode())
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return bytes.fromhex(path.read_text().strip())


def mint_demo_token(data_dir: Path, user: str, ttl: int = 43200) -> str:
    users = {u.user: u for u in demo_users()}
    if user not in users:
        raise KeyError(f"unknown demo user {user!r} (known: {', '.join(users)})")
    u = users[user]
    now = int(time.time())
    claims = {"sub": u.user, "name": u.name, "org": u.org, "roles": list(u.roles),
              "iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "iat": now, "nbf": now, "exp": now + ttl}
    if u.region is not None:
        claims["region"] = u.region
    if u.subject:
        claims["subject"] = _demo_subject(data_dir) if u.subject == "auto" else u.subject
    return jwt.encode(claims, demo_key(data_dir), algorithm="HS256")


class Verifier:
    """Turns an Authorization header into a Caller, or raises Unauthenticated (never says why in detail)."""

    def __init__(self, *, demo_key: bytes | None = None, keys_path: Path | None = None,
                 issuer: str | None = None, audience: str | None = None) -> None:
        self.demo_key = demo_key
        self.issuer, self.audience = issuer, audience
        # a verified token is trusted again for at most a minute (and never past its exp): signature checks
        # are the costliest step of a cached screen; bounded in memory
        self._verified: TTLCache = TTLCache(maxsize=10_000, ttl=60)
        self.keys: list[Any] = _load_keys(keys_path) if keys_path else []
        if demo_key is None and not self.keys:
            raise ValueError("production mode needs ONESCREEN_JWT_KEYS (a PEM public key or a JWKS file)")
        if self.keys and not (issuer and audience):
            raise ValueError("production mode needs ONESCREEN_JWT_ISSUER and ONESCREEN_JWT_AUDIENCE")

    def caller(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthenticated("a bearer token is required")
        token = authorization[len("Bearer "):].strip()
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():  # verified recently and not yet expired
            return hit[0]
        claims = self._verify(token)
        caller = self.from_claims(claims)
        self._verified[token] = (caller, float(claims["exp"]))
        return caller

    def from_trusted_header(self, value: str) -> Caller:
        """Trusted reverse-proxy mode: the proxy (already checked to be trusted) sends the claims as JSON."""
        try:
            claims = json.loads(value)
            if not isinstance(claims, dict):
                raise ValueError
        except ValueError:
            raise Unauthenticated("the identity header is not a JSON object of claims") from None
        return self.from_claims(claims)

    @staticmethod
    def from_claims(claims: dict) -> Caller:
        """The caller the claims describe. `region`, when present and not null, must be well-formed
        (jurisdiction.py); a token without one may still perform nationwide tasks, and sees nothing of a task
        limited to the caseworker's region."""
        try:
            roles = claims["roles"]
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise TypeError
            subject = claims.get("subject")
            region = claims.get("region")
            caller = Caller(str(claims["sub"]), str(claims.get("name", claims["sub"])), str(claims.get("org", "")),
                            region, frozenset(roles), str(subject) if subject else None)
        except (KeyError, TypeError):
            raise Unauthenticated("the token lacks the claims sub and roles") from None
        if region is not None and (problem := jurisdiction.problem(region)) is not None:
            raise Unauthenticated(f"the token's region claim is malformed: {problem}")  # never echoes the claim
        return caller

    def _verify(self, token: str) -> dict:
        options = {"require": ["exp", "iat", "sub"]}
        try:
            if self.demo_key is not None:
                return jwt.decode(token, self.demo_key, algorithms=["HS256"], issuer=DEMO_ISSUER,
                                  audience=DEMO_AUDIENCE, options=options, leeway=30)
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ASYMMETRIC:
                raise Unauthenticated("token algorithm not allowed")
            for key in self._candidates(header):
                try:
                    return jwt.decode(token, key, algorithms=ASYMMETRIC, issuer=self.issuer,
                                      audience=self.audience, options=options, leeway=30)
                except jwt.InvalidSignatureError:
                    continue
            raise Unauthenticated("token signature does not verify")
        except jwt.PyJWTError:
            raise Unauthenticated("the token is invalid or expired") from None

    def _candidates(self, header: dict) -> list[Any]:
        kid = header.get("kid")
        if kid:
            matching = [k for kid_, k in self.keys if kid_ == kid]
            if matching:
                return matching
        return [k for _kid, k in self.keys]


def _load_keys(path: Path) -> list[tuple[str | None, Any]]:
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        jwks = json.loads(text)
        return [(k.get("kid"), jwt.PyJWK(k).key) for k in jwks.get("keys", [])]
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    return [(None, load_pem_public_key(text.encode()))]
