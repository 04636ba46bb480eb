"""Every setting of oneScreen, read once from ONESCREEN_* environment variables.

| variable | default | meaning |
| --- | --- | --- |
| ONESCREEN_MODE | demo | `demo` (demo ledgers, demo users and tokens) or `production` |
| ONESCREEN_DATA_DIR | $XDG_DATA_HOME/onescreen or ~/.local/share/onescreen | demo ledgers, demo signing key, the demo's configuration |
| ONESCREEN_CATALOG | demo: config/field_catalog.yaml in the data directory (a copy of the shipped one); production: field_catalog.yaml beside the package | the field catalog |
| ONESCREEN_POLICIES | demo: config/policies in the data directory (a copy); production: policies/ beside the package | roles and tasks |
| ONESCREEN_HOST | 127.0.0.1 | address `onescreen serve` listens on |
| ONESCREEN_PORT | 8000 | port `onescreen serve` listens on |
| ONESCREEN_LOG_LEVEL | INFO | log level of the JSON logs |
| ONESCREEN_TOKEN_TTL | 43200 | lifetime in seconds of demo tokens |
| ONESCREEN_AUDIT_URL | sqlite file audit.sqlite in the data directory | audit trail and consent records (PostgreSQL in production) |
| ONESCREEN_CONFIG_URL | production with a PostgreSQL audit store: the audit store's database; otherwise `files` | where the approved configuration lives: a database URL (versions, configstore.py; every pod follows the active one), or `files` (ONESCREEN_CATALOG and ONESCREEN_POLICIES, reloaded when they change) |
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
| ONESCREEN_LOOKUP_MISSES_PER_USER | 20 | lookups by identifier that find nothing, per user and window (0: off); LOOKUP_BUDGET_EXCEEDED (429) beyond |
| ONESCREEN_LOOKUP_MISSES_PER_ORG | 200 | the same per organisation (0: off) |
| ONESCREEN_LOOKUP_WINDOW | 600 | seconds of the lookup budgets' sliding window |
| ONESCREEN_REDIS_URL | - | Redis (redis://host:6379/0) holding the rate limits and lookup budgets of every pod (counters.py); required in production unless ONESCREEN_COUNTERS=per-process |
| ONESCREEN_REDIS_TIMEOUT | 0.25 | seconds one Redis call may take (connect included); then rate limits let the request through and lookups by identifier are refused |
| ONESCREEN_REDIS_PREFIX | onescreen: | prefix of every Redis key (several services or tests may share one Redis) |
| ONESCREEN_COUNTERS | shared with ONESCREEN_REDIS_URL, else per-process | `shared` (Redis) or `per-process` (each process counts alone: the limits hold per process); production refuses per-process unless it is set explicitly |
| ONESCREEN_REQUEST_TIMEOUT | 30 | seconds a GraphQL request may take |
| ONESCREEN_MAX_IN_FLIGHT | 256 | GraphQL requests one worker works on at once; more wait their turn (first come, first served) |
| ONESCREEN_QUEUE_TIMEOUT | 2 | seconds a GraphQL request may wait for its turn; beyond it 503 OVERLOADED with Retry-After, nothing read or disclosed |
| ONESCREEN_MAX_CHARS / _TOKENS / _DEPTH / _ALIASES | 12288 / 3000 / 12 / 200 | query limits (graphql/limits.py) |
| ONESCREEN_MAX_FIELDS / _REPEATS / _DIRECTIVES / _SUBJECTS / _COST | 8000 / 30 / 50 / 100 / 6000 | query limits |
| ONESCREEN_CACHE_MB | 64 | bytes (MB) the ledger caches of one worker hold together, each cached ledger an equal share (ledgercache.py); each also holds at most its catalog `cache_size` entries |
| ONESCREEN_WORKERS | 1 | worker processes of `onescreen serve` |
| ONESCREEN_MAX_HEADER_BYTES | 16384 | largest request head (request line and headers); 431 beyond |
| ONESCREEN_HEADER_TIMEOUT | 10 | seconds a connection has to send a whole request head; 408 and closed beyond |
| ONESCREEN_BODY_TIMEOUT | 10 | seconds a request has to send its body; 408 beyond |
| ONESCREEN_KEEPALIVE_TIMEOUT | 5 | seconds an idle kept-alive connection stays open |
| ONESCREEN_MAX_CONNECTIONS | 1000 | open connections one process serves; a request beyond gets 503 |
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


def _shipped_root() -> Path:
    """Where the files shipped with the code (catalog, policies, web screens) are: beside the package in a source
    checkout or an editable install; in an installed package, where pip put its data files (share/onescreen,
    setup.cfg's data_files: under the venv, the user base or a --target directory alike)."""
    if (ROOT / "field_catalog.yaml").is_file():
        return ROOT
    import sys
    from importlib import metadata
    candidates = [Path(sys.prefix) / "share" / "onescreen"]
    try:
        dist = metadata.distribution("onescreen")
        candidates[:0] = [Path(str(f.locate())).parent for f in dist.files or ()
                          if f.parts[-3:] == ("share", "onescreen", "field_catalog.yaml")]
        candidates.append(Path(str(dist.locate_file(""))) / "share" / "onescreen")  # pip install --target
    except metadata.PackageNotFoundError:
        pass
    return next((c.resolve() for c in candidates if (c / "field_catalog.yaml").is_file()), ROOT)


SHIPPED = _shipped_root()
SHIPPED_CATALOG = SHIPPED / "field_catalog.yaml"  # the configuration shipped with the code
SHIPPED_POLICIES = SHIPPED / "policies"
FRONTEND = SHIPPED / "frontend"  # the web screens
LIMIT_VARIABLES = {"ONESCREEN_MAX_CHARS": "max_chars", "ONESCREEN_MAX_TOKENS": "max_tokens",
                   "ONESCREEN_MAX_DEPTH": "max_depth", "ONESCREEN_MAX_ALIASES": "max_aliases",
                   "ONESCREEN_MAX_FIELDS": "max_fields", "ONESCREEN_MAX_REPEATS": "max_repeats",
                   "ONESCREEN_MAX_DIRECTIVES": "max_directives", "ONESCREEN_MAX_SUBJECTS": "max_subjects",
                   "ONESCREEN_MAX_COST": "max_cost"}  # graphql/limits.py `Limits`


@dataclass(frozen=True)
class Limits:
    """What one GraphQL request may ask for (checked by graphql/limits.py). Every figure counts a fragment wherever
    it is spread.

    The text limits fit the largest request the defaults allow, a batch of max_subjects subjects (2,483 tokens and
    9.3 KB with variables and a fragment of 58 fields), with a fifth to spare: the CPU of parsing and validating
    grows with them (`python -m bench hostile`)."""

    max_chars: int = 12_288  # characters of query text
    max_tokens: int = 3_000  # the parser's tokens: names, punctuation and values (not comments or white space)
    max_depth: int = 12  # fields nested below a root field (introspection fields' selections not counted)
    max_aliases: int = 200
    max_fields: int = 8_000  # selections (fields, fragment spreads, inline fragments)
    max_repeats: int = 30  # selections of a place of the response already selected (merged into it)
    max_directives: int = 50
    max_subjects: int = 100  # root fields that look up a subject
    max_cost: int = 6_000  # fields asked of subjects, summed over the subjects of the request


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
    lookup_misses_per_user: int
    lookup_misses_per_org: int
    lookup_window: float
    request_timeout: float
    max_in_flight: int
    queue_timeout: float
    limits: Limits
    workers: int
    cache_mb: float
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int
    jwt_keys: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    trusted_proxy_header: str | None = None
    trusted_proxies: tuple = ()  # ipaddress networks whose identity header is believed
    redis_url: str | None = None  # the shared counters (counters.py); None: counted in each process
    redis_timeout: float = 0.25
    redis_prefix: str = "onescreen:"
    counters: str = "per-process"  # "shared" (Redis) or "per-process"
    counters_explicit: bool = False  # ONESCREEN_COUNTERS was set (production accepts per-process only so)
    config_url: str | None = None  # the configuration store (configstore.py); None: the files are the configuration
    shipped_catalog: Path = SHIPPED_CATALOG
    shipped_policies: Path = SHIPPED_POLICIES
    # the citizen's receipts pushed by e-mail (notify.py); no SMTP host: nothing is sent (the outbox still fills)
    notify_smtp_host: str | None = None
    notify_smtp_port: int = 25
    notify_smtp_user: str | None = None  # its password: ONESCREEN_NOTIFY_SMTP_PASSWORD, from the environment only
    notify_smtp_starttls: bool = False
    notify_from: str = "onescreen@localhost"
    notify_in_process: bool = False  # the service delivers itself (else `onescreen notify run` does)
    notify_interval: float = 5.0  # seconds between looks at the outbox when it had nothing to send
    notify_max_attempts: int = 8  # tries of one mail before it goes to the dead state
    notify_backoff: float = 30.0  # seconds before the first retry; doubling per attempt

    @property
    def demo(self) -> bool:
        return self.mode == "demo"

    @property
    def active_config_dir(self) -> Path | None:
        """Demo mode: where the demo's own copy of the configuration lives (oneScreen/demo/config.py); the parts
        not set explicitly are read from and written to there, so demo edits never touch the shipped files."""
        return self.data_dir / "config" if self.demo else None


def load(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    mode = env.get("ONESCREEN_MODE", "demo")
    if mode not in ("demo", "production"):
        raise ValueError(f"ONESCREEN_MODE must be 'demo' or 'production', not {mode!r}")
    data_dir = Path(env.get("ONESCREEN_DATA_DIR") or _default_data_dir())
    active = data_dir / "config" if mode == "demo" else None
    return Settings(
        mode=mode,
        data_dir=data_dir,
        catalog_path=Path(env.get("ONESCREEN_CATALOG") or (active / "field_catalog.yaml" if active else SHIPPED_CATALOG)),
        policies_dir=Path(env.get("ONESCREEN_POLICIES") or (active / "policies" if active else SHIPPED_POLICIES)),
        host=env.get("ONESCREEN_HOST", "127.0.0.1"),
        port=_port(env, "ONESCREEN_PORT", 8000),
        log_level=_log_level(env, "ONESCREEN_LOG_LEVEL"),
        token_ttl=_positive(env, "ONESCREEN_TOKEN_TTL", 43200, int),
        audit_url=_database_url(env, "ONESCREEN_AUDIT_URL") or f"sqlite+aiosqlite:///{data_dir / 'audit.sqlite'}",
        audit_timeout=_positive(env, "ONESCREEN_AUDIT_TIMEOUT", 5.0, float),
        audit_signing_key_file=_path(env, "ONESCREEN_AUDIT_SIGNING_KEY_FILE"),
        audit_verify_keys=_path(env, "ONESCREEN_AUDIT_VERIFY_KEYS"),
        audit_witness_dir=_path(env, "ONESCREEN_AUDIT_WITNESS_DIR") or (data_dir / "audit-witness" if mode == "demo"
                                                                       else None),
        audit_checkpoint_records=_positive(env, "ONESCREEN_AUDIT_CHECKPOINT_RECORDS", 1000, int),
        audit_checkpoint_seconds=_positive(env, "ONESCREEN_AUDIT_CHECKPOINT_SECONDS", 60.0, float),
        allow_get=_flag(env, "ONESCREEN_ALLOW_GET", False),
        introspection=_flag(env, "ONESCREEN_INTROSPECTION", mode == "demo"),
        persisted_queries=Path(env["ONESCREEN_PERSISTED_QUERIES"]) if env.get("ONESCREEN_PERSISTED_QUERIES") else None,
        persisted_only=_flag(env, "ONESCREEN_PERSISTED_ONLY", False),
        rate_user_per_min=_count(env, "ONESCREEN_RATE_USER_PER_MIN", 600),
        rate_org_per_min=_count(env, "ONESCREEN_RATE_ORG_PER_MIN", 6000),
        lookup_misses_per_user=_count(env, "ONESCREEN_LOOKUP_MISSES_PER_USER", 20),
        lookup_misses_per_org=_count(env, "ONESCREEN_LOOKUP_MISSES_PER_ORG", 200),
        lookup_window=_positive(env, "ONESCREEN_LOOKUP_WINDOW", 600.0, float),
        request_timeout=_positive(env, "ONESCREEN_REQUEST_TIMEOUT", 30.0, float),
        max_in_flight=_positive(env, "ONESCREEN_MAX_IN_FLIGHT", 256, int),
        queue_timeout=_positive(env, "ONESCREEN_QUEUE_TIMEOUT", 2.0, float),
        limits=Limits(**{attr: _positive(env, name, None, int) for name, attr in LIMIT_VARIABLES.items() if env.get(name)}),
        workers=_positive(env, "ONESCREEN_WORKERS", 1, int),
        cache_mb=_positive(env, "ONESCREEN_CACHE_MB", 64.0, float),
        max_header_bytes=_positive(env, "ONESCREEN_MAX_HEADER_BYTES", 16384, int),
        header_timeout=_positive(env, "ONESCREEN_HEADER_TIMEOUT", 10.0, float),
        body_timeout=_positive(env, "ONESCREEN_BODY_TIMEOUT", 10.0, float),
        keepalive_timeout=_positive(env, "ONESCREEN_KEEPALIVE_TIMEOUT", 5.0, float),
        max_connections=_positive(env, "ONESCREEN_MAX_CONNECTIONS", 1000, int),
        jwt_keys=_path(env, "ONESCREEN_JWT_KEYS"),
        jwt_issuer=env.get("ONESCREEN_JWT_ISSUER") or None,
        jwt_audience=env.get("ONESCREEN_JWT_AUDIENCE") or None,
        trusted_proxy_header=env.get("ONESCREEN_TRUSTED_PROXY_HEADER") or None,
        trusted_proxies=_networks(env, "ONESCREEN_TRUSTED_PROXIES"),
        config_url=_config_url(env, mode),
        redis_url=env.get("ONESCREEN_REDIS_URL") or None,
        redis_timeout=_positive(env, "ONESCREEN_REDIS_TIMEOUT", 0.25, float),
        redis_prefix=env.get("ONESCREEN_REDIS_PREFIX", "onescreen:"),
        counters=_counters(env),
        counters_explicit=bool(env.get("ONESCREEN_COUNTERS")),
        notify_smtp_host=env.get("ONESCREEN_NOTIFY_SMTP_HOST") or None,
        notify_smtp_port=_positive(env, "ONESCREEN_NOTIFY_SMTP_PORT", 25, int),
        notify_smtp_user=env.get("ONESCREEN_NOTIFY_SMTP_USER") or None,
        notify_smtp_starttls=_flag(env, "ONESCREEN_NOTIFY_SMTP_STARTTLS", False),
        notify_from=env.get("ONESCREEN_NOTIFY_FROM") or "onescreen@localhost",
        notify_in_process=_flag(env, "ONESCREEN_NOTIFY_IN_PROCESS", False),
        notify_interval=_positive(env, "ONESCREEN_NOTIFY_INTERVAL", 5.0, float),
        notify_max_attempts=_positive(env, "ONESCREEN_NOTIFY_MAX_ATTEMPTS", 8, int),
        notify_backoff=_positive(env, "ONESCREEN_NOTIFY_BACKOFF", 30.0, float),
    )


def _counters(env: dict[str, str]) -> str:
    raw = env.get("ONESCREEN_COUNTERS") or ""
    if raw and raw not in ("shared", "per-process"):
        raise ValueError(f"ONESCREEN_COUNTERS must be 'shared' or 'per-process', not {raw!r}")
    return raw or ("shared" if env.get("ONESCREEN_REDIS_URL") else "per-process")


def _config_url(env: dict[str, str], mode: str) -> str | None:
    """ONESCREEN_CONFIG_URL: a database URL, or `files`; unset, production keeps the configuration in its
    PostgreSQL audit store's database (shared by every pod) and anything else reads the files."""
    raw = env.get("ONESCREEN_CONFIG_URL", "").strip()
    if raw == "files":
        return None
    if raw:
        return _database_url(env, "ONESCREEN_CONFIG_URL", " or 'files'")
    audit = env.get("ONESCREEN_AUDIT_URL") or ""
    return audit if mode == "production" and audit.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres") \
        else None


def _database_url(env: dict[str, str], name: str, alternative: str = "") -> str | None:
    """A database URL SQLAlchemy can parse; the error never shows the value (it may hold a password)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    from sqlalchemy.engine import make_url
    try:
        make_url(raw)
    except Exception:
        raise ValueError(f"{name} must be a database URL (postgresql://user:password@host:5432/db){alternative}; "
                         "the value given is not one (not shown: it may hold a password)") from None
    return raw


def _networks(env: dict[str, str], name: str) -> tuple:
    """Addresses or networks (CIDR), comma-separated; a malformed one stops the start (never silently dropped)."""
    import ipaddress
    out = []
    for item in (p.strip() for p in env.get(name, "").split(",")):
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{name}: {item!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return tuple(out)


def _path(env: dict[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def _positive(env: dict[str, str], name: str, default, kind):
    """A bound: a positive number (none is ever off: every wait has a bound, invariant 10)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, not {raw!r}")
    return value


def _port(env: dict[str, str], name: str, default: int) -> int:
    value = _positive(env, name, default, int)
    if value > 65535:
        raise ValueError(f"{name} must be a TCP port (1-65535), not {env.get(name)!r}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(env: dict[str, str], name: str) -> str:
    value = (env.get(name) or "INFO").upper()
    if value not in LOG_LEVELS:
        raise ValueError(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {env.get(name)!r}")
    return value


def _count(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return int(value)



def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0, not {value!r}")
