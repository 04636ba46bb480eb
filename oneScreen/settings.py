"""Every setting of oneScreen, read once from ONESCREEN_* environment variables.

| variable | default | meaning |
| --- | --- | --- |
| ONESCREEN_MODE | demo | `demo` (demo ledgers, demo users and tokens) or `production` |
| ONESCREEN_DATA_DIR | $XDG_DATA_HOME/onescreen or ~/.local/share/onescreen | demo ledgers, demo signing key |
| ONESCREEN_CATALOG | field_catalog.yaml beside the package | the field catalog |
| ONESCREEN_POLICIES | policies/ beside the package | roles and tasks |
| ONESCREEN_HOST | 127.0.0.1 | address `onescreen serve` listens on |
| ONESCREEN_PORT | 8000 | port `onescreen serve` listens on |
| ONESCREEN_LOG_LEVEL | INFO | log level of the JSON logs |
| ONESCREEN_TOKEN_TTL | 43200 | lifetime in seconds of demo tokens |
| ONESCREEN_AUDIT_URL | sqlite file audit.sqlite in the data directory | audit trail and consent records (PostgreSQL in production) |
| ONESCREEN_AUDIT_KEY | demo: generated in the data directory | hex key (>= 32 hex digits) for the keyed pseudonyms of subjects; required in production |
| ONESCREEN_AUDIT_TIMEOUT | 5 | seconds an audit append may take, all included (connect, lock, insert, commit); then 503 |
| ONESCREEN_AUDIT_SIGNING_KEY | demo: a key file generated in the data directory | secret: Ed25519 seed (64 hex digits) signing audit checkpoints; this or the _FILE variant is required in production |
| ONESCREEN_AUDIT_SIGNING_KEY_FILE | - | PEM (PKCS#8) Ed25519 private key file signing audit checkpoints |
| ONESCREEN_AUDIT_VERIFY_KEYS | - | PEM file of the public keys `audit verify` trusts (old and new, for rotation) |
| ONESCREEN_AUDIT_WITNESS_DIR | demo: audit-witness in the data directory | append-only directory keeping a copy of every checkpoint; required in production |
| ONESCREEN_AUDIT_CHECKPOINT_RECORDS / _SECONDS | 1000 / 60 | seal a checkpoint after this many records or seconds |
| ONESCREEN_JWT_KEYS | - | production: path to a PEM public key or a JWKS file |
| ONESCREEN_JWT_ISSUER / ONESCREEN_JWT_AUDIENCE | - | production: required issuer and audience of tokens |
| ONESCREEN_ALLOW_GET | 0 | 1: serve GraphQL queries over GET too (never mutations) |
| ONESCREEN_INTROSPECTION | 1 in demo, 0 in production | 1: allow schema introspection |
| ONESCREEN_PERSISTED_QUERIES | - | JSON file {sha256: query} of registered queries |
| ONESCREEN_PERSISTED_ONLY | 0 | 1: run only registered queries |
| ONESCREEN_RATE_USER_PER_MIN | 600 | requests a minute per user (0: off); 429 with Retry-After beyond |
| ONESCREEN_RATE_ORG_PER_MIN | 6000 | requests a minute per organisation (0: off) |
| ONESCREEN_REQUEST_TIMEOUT | 30 | seconds a GraphQL request may take |
| ONESCREEN_MAX_DEPTH / _ALIASES / _TOKENS / _SUBJECTS / _COST | 12 / 200 / 20000 / 100 / 6000 | query limits |
| ONESCREEN_WORKERS | 1 | worker processes of `onescreen serve` |
| ONESCREEN_TRUSTED_PROXY_HEADER | - (off) | trusted reverse-proxy mode: header carrying the caller's claims as JSON |
| ONESCREEN_TRUSTED_PROXIES | - | comma-separated addresses of the proxies whose identity header is believed |

Ledger DSNs are named per ledger in the catalog (`connector.dsn_env`); secrets
only ever come from the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .graphql.limits import Limits

ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "onescreen"


@dataclass(frozen=True)
class Settings:
    mode: str
    data_dir: Path
    catalog_path: Path
    policies_dir: Path
    host: str
    port: int
    log_level: str
    token_ttl: int
    audit_url: str
    audit_timeout: float
    audit_signing_key_file: Path | None
    audit_verify_keys: Path | None
    audit_witness_dir: Path | None
    audit_checkpoint_records: int
    audit_checkpoint_seconds: float
    allow_get: bool
    introspection: bool
    persisted_queries: Path | None
    persisted_only: bool
    rate_user_per_min: int
    rate_org_per_min: int
    request_timeout: float
    limits: Limits
    workers: int

    @property
    def demo(self) -> bool:
        return self.mode == "demo"


def load(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    mode = env.get("ONESCREEN_MODE", "demo")
    if mode not in ("demo", "production"):
        raise ValueError(f"ONESCREEN_MODE must be 'demo' or 'production', not {mode!r}")
    data_dir = Path(env.get("ONESCREEN_DATA_DIR") or _default_data_dir())
    return Settings(
        mode=mode,
        data_dir=data_dir,
        catalog_path=Path(env.get("ONESCREEN_CATALOG") or ROOT / "field_catalog.yaml"),
        policies_dir=Path(env.get("ONESCREEN_POLICIES") or ROOT / "policies"),
        host=env.get("ONESCREEN_HOST", "127.0.0.1"),
        port=int(env.get("ONESCREEN_PORT", "8000")),
        log_level=env.get("ONESCREEN_LOG_LEVEL", "INFO"),
        token_ttl=int(env.get("ONESCREEN_TOKEN_TTL", "43200")),
        audit_url=env.get("ONESCREEN_AUDIT_URL") or f"sqlite+aiosqlite:///{data_dir / 'audit.sqlite'}",
        audit_timeout=_positive(env, "ONESCREEN_AUDIT_TIMEOUT", 5.0),
        audit_signing_key_file=_path(env, "ONESCREEN_AUDIT_SIGNING_KEY_FILE"),
        audit_verify_keys=_path(env, "ONESCREEN_AUDIT_VERIFY_KEYS"),
        audit_witness_dir=_path(env, "ONESCREEN_AUDIT_WITNESS_DIR") or (data_dir / "audit-witness" if mode == "demo"
                                                                       else None),
        audit_checkpoint_records=int(_positive(env, "ONESCREEN_AUDIT_CHECKPOINT_RECORDS", 1000)),
        audit_checkpoint_seconds=_positive(env, "ONESCREEN_AUDIT_CHECKPOINT_SECONDS", 60.0),
        allow_get=_flag(env, "ONESCREEN_ALLOW_GET", False),
        introspection=_flag(env, "ONESCREEN_INTROSPECTION", mode == "demo"),
        persisted_queries=Path(env["ONESCREEN_PERSISTED_QUERIES"]) if env.get("ONESCREEN_PERSISTED_QUERIES") else None,
        persisted_only=_flag(env, "ONESCREEN_PERSISTED_ONLY", False),
        rate_user_per_min=int(env.get("ONESCREEN_RATE_USER_PER_MIN", "600")),
        rate_org_per_min=int(env.get("ONESCREEN_RATE_ORG_PER_MIN", "6000")),
        request_timeout=float(env.get("ONESCREEN_REQUEST_TIMEOUT", "30")),
        limits=Limits(
            max_depth=int(env.get("ONESCREEN_MAX_DEPTH", Limits.max_depth)),
            max_aliases=int(env.get("ONESCREEN_MAX_ALIASES", Limits.max_aliases)),
            max_tokens=int(env.get("ONESCREEN_MAX_TOKENS", Limits.max_tokens)),
            max_subjects=int(env.get("ONESCREEN_MAX_SUBJECTS", Limits.max_subjects)),
            max_cost=int(env.get("ONESCREEN_MAX_COST", Limits.max_cost))),
        workers=int(env.get("ONESCREEN_WORKERS", "1")),
    )


def _path(env: dict[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def _positive(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be greater than 0")
    return value


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0, not {value!r}")
