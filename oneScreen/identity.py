"""Who is asking: caseworker identity from a bearer token. No identity, no data.

Demo mode: tokens for demo users, signed with a key kept in the data
directory (so a token minted by `onescreen token` is valid for a server on
the same data directory). Production mode: JWTs from the government SSO,
verified with a public key or JWKS file (ONESCREEN_JWT_KEYS), issuer and
audience checked, asymmetric algorithms only (no `none`, no HS/RS confusion),
each checked only with keys of its own type: whatever a token says, it is a
caller or a 401, never a 500.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cachetools import TTLCache
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from . import jurisdiction
from .errors import Unauthenticated
from .keyfile import local_key
from .policy import Caller

DEMO_ISSUER = "onescreen-demo"
DEMO_AUDIENCE = "onescreen"
ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}  # the one curve of each ES algorithm
PUBLIC_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
log = logging.getLogger("onescreen.identity")
DEMO_USERS_FILE = Path(__file__).parent / "demo" / "users.yaml"


@dataclass(frozen=True)
class DemoUser:
    user: str
    name: str
    org: str
    region: str | None  # "national", a 시도 or 시군구 code; None: no region (e.g. a citizen)
    roles: tuple[str, ...]
    subject: str | None = None  # a citizen user: "auto" = the first demo resident

    @property
    def caller(self) -> Caller:
        return Caller(self.user, self.name, self.org, self.region, frozenset(self.roles))


def demo_users() -> list[DemoUser]:
    data = yaml.safe_load(DEMO_USERS_FILE.read_text(encoding="utf-8"))
    return [DemoUser(u["user"], u["name"], u["org"], u.get("region"), tuple(u["roles"]), u.get("subject"))
            for u in data["users"]]


def demo_user(user: str) -> DemoUser:
    """The demo user named `user`; KeyError whose message names the known ones."""
    users = {u.user: u for u in demo_users()}
    if user not in users:
        raise KeyError(f"unknown demo user {user!r} (known: {', '.join(users)})")
    return users[user]


def _demo_subject(data_dir: Path) -> str:
    import sqlite3
    path = Path(data_dir) / "demo" / "mois_resident.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT rrn FROM resident ORDER BY rrn LIMIT 1").fetchone()[0]


def demo_key(data_dir: Path) -> bytes:
    """The demo signing key of this data directory, created (mode 0600) on first use."""
    return local_key(Path(data_dir) / "demo-signing.key")


def mint_demo_token(data_dir: Path, user: str, ttl: int = 43200) -> str:
    u = demo_user(user)
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
                 issuer: str | None = None, audience: str | None = None,
                 trusted_proxy_header: str | None = None, trusted_proxies: tuple = ()) -> None:
        self.demo_key = demo_key
        self.proxy_header, self.proxies = trusted_proxy_header, trusted_proxies
        self.issuer, self.audience = issuer, audience
        # a verified token is trusted again for at most a minute (and never past its exp): signature checks
        # are the costliest step of a cached screen; bounded in memory
        self._verified: TTLCache = TTLCache(maxsize=10_000, ttl=60)
        self.keys_path = Path(keys_path) if keys_path else None
        self.keys: list[Any] = _load_keys(keys_path) if keys_path else []
        if demo_key is None and not self.keys:
            raise ValueError("production mode needs ONESCREEN_JWT_KEYS (a PEM public key or a JWKS file)")
        if self.keys and not (issuer and audience):
            raise ValueError("production mode needs ONESCREEN_JWT_ISSUER and ONESCREEN_JWT_AUDIENCE")

    def identify(self, headers: Any, client_host: str | None) -> Caller:
        """The caller of a request: from a trusted proxy's header when that mode is on and the peer is one of
        the trusted proxies, else from its bearer token."""
        if self.proxy_header and self.proxy_header in headers:
            if client_host is None or not self._trusted(client_host):
                raise Unauthenticated("identity headers are accepted only from the trusted proxies")
            return self.from_trusted_header(headers[self.proxy_header])
        return self.caller(headers.get("authorization"))

    def use_keys(self, keys: list[Any]) -> None:
        """Verify with `keys` (read again from the key file, read_key_file) from now on. Tokens verified within
        the last minute are verified again: a key the identity provider took out stops its tokens now."""
        self.keys = keys
        self._verified.clear()

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

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
            alg = header.get("alg")
            if not isinstance(alg, str) or alg not in ASYMMETRIC:
                raise Unauthenticated("token algorithm not allowed")
            candidates = self._candidates(header, alg)
            if not candidates:
                raise Unauthenticated(f"no signing key of this service is for the token's algorithm ({alg})")
            for key in candidates:
                try:
                    return jwt.decode(token, key, algorithms=[alg], issuer=self.issuer,
                                      audience=self.audience, options=options, leeway=30)
                except jwt.InvalidSignatureError:
                    continue
            raise Unauthenticated("token signature does not verify")
        except jwt.PyJWTError:
            raise Unauthenticated("the token is invalid or expired") from None
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # PyJWT and cryptography raise these for keys and signatures they cannot use; _candidates gives each
            # algorithm keys of its own type, so this is a library surprise: still the caller's 401, not a 500
            log.warning("token verification failed unexpectedly", extra={"reason": type(exc).__name__})
            raise Unauthenticated("the token is invalid or expired") from None

    def _candidates(self, header: dict, alg: str) -> list[Any]:
        """The keys that can check `alg` (the key's type, and the JWK's own `alg` when it names one), those with
        the token's `kid` first choice."""
        fitting = [(kid, key) for kid, key_alg, key in self.keys if _fits(alg, key) and key_alg in (None, alg)]
        kid = header.get("kid")
        if kid:
            matching = [k for kid_, k in fitting if kid_ == kid]
            if matching:
                return matching
        return [k for _kid, k in fitting]


def _fits(alg: str, key: Any) -> bool:
    """Whether `key` is of the type `alg` (one of ASYMMETRIC) verifies with: PyJWT raises TypeError otherwise."""
    if alg in CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == CURVES[alg]
    if alg == "EdDSA":
        return isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey))
    return isinstance(key, rsa.RSAPublicKey)  # RS*, PS*


def read_key_file(path: Path) -> list[tuple[str | None, str | None, Any]]:
    """The key file's keys, for a verifier to use; ValueError naming the file when they cannot be used
    (unreadable, malformed, a key of the wrong kind, or no signing key at all)."""
    try:
        keys = _load_keys(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except (AttributeError, TypeError) as exc:  # JSON of another shape than a JWKS
        raise ValueError(f"{path}: not a PEM public key or a JWKS ({exc.__class__.__name__})") from None
    except ValueError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    if not keys:
        raise ValueError(f"{path}: holds no signing key")
    return keys


def _load_keys(path: Path) -> list[tuple[str | None, str | None, Any]]:
    """(kid, the JWK's alg, public key) of each signing key in a JWKS or PEM file; refuses keys that can sign
    nothing this service accepts (symmetric, private, DSA, X25519, ...) with the file and the key's position."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        out = []
        for i, k in enumerate(json.loads(text).get("keys", [])):
            if k.get("use", "sig") != "sig":
                continue  # an encryption key: not for signatures
            try:
                key = jwt.PyJWK(k).key
            except jwt.PyJWTError as exc:
                raise ValueError(f"{path}: key {i} (kid {k.get('kid')!r}) cannot be used: {exc}") from None
            out.append((k.get("kid"), k.get("alg"), _public(key, f"{path}: key {i} (kid {k.get('kid')!r})")))
        return out
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    return [(None, None, _public(load_pem_public_key(text.encode()), str(path)))]


def _public(key: Any, where: str) -> Any:
    if not isinstance(key, PUBLIC_KEY_TYPES):
        raise ValueError(f"{where} is not an RSA, EC or Ed25519/Ed448 public key ({type(key).__name__}): "
                         "production accepts only asymmetric signatures")
    return key
