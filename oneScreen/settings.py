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
| ONESCREEN_JWT_KEYS | - | production: path to a PEM public key or a JWKS file |
| ONESCREEN_JWT_ISSUER / ONESCREEN_JWT_AUDIENCE | - | production: required issuer and audience of tokens |
| ONESCREEN_TRUSTED_PROXY_HEADER | - (off) | trusted reverse-proxy mode: header carrying the caller's claims as JSON |
| ONESCREEN_TRUSTED_PROXIES | - | comma-separated addresses of the proxies whose identity header is believed |

Ledger DSNs are named per ledger in the catalog (`connector.dsn_env`); secrets
only ever come from the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
    )
