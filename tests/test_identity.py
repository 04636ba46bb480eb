"""Production identity: JWTs from the SSO, verified with a public key; a trusted proxy header; no demo keys."""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import env_for, sample
from oneScreen.app import create_app
from oneScreen.audit import AuditStore
from oneScreen.identity import mint_demo_token
from oneScreen.settings import load as load_settings

QUERY = """query($s: ID!) { citizen(rrn: $s, task: "vehicle_transfer", caseRef: "P-1") { name } }"""
CLAIMS = {"sub": "choi.p", "name": "최운영", "org": "차량등록사업소", "region": "11000",
          "roles": ["vehicle_registration_officer"], "iss": "https://sso.gov.example", "aud": "onescreen"}


@pytest.fixture
def keys(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "sso.pem"
    path.write_bytes(pem)
    return private, path, pem


def production_env(data_dir, keys_path, **extra):
    """A production environment over the demo ledgers, with its audit store initialised as its owner would
    (`onescreen audit init`: production never creates it)."""
    demo = data_dir / "demo"
    dsn = {"ONESCREEN_DSN_MOIS_RESIDENT": "mois_resident", "ONESCREEN_DSN_COURT_FAMILY": "court_family",
           "ONESCREEN_DSN_MOLIT_BUILDING": "molit_building", "ONESCREEN_DSN_MOLIT_LAND": "molit_land",
           "ONESCREEN_DSN_MOLIT_VEHICLE": "molit_vehicle", "ONESCREEN_DSN_NHIS": "nhis_eligibility"}
    env = {k: f"sqlite:///{demo / (v + '.sqlite')}" for k, v in dsn.items()}
    env.update(ONESCREEN_MODE="production", ONESCREEN_JWT_KEYS=str(keys_path), ONESCREEN_JWT_ISSUER=CLAIMS["iss"],
               ONESCREEN_JWT_AUDIENCE=CLAIMS["aud"], ONESCREEN_AUDIT_KEY="ab" * 32,
               ONESCREEN_AUDIT_URL=f"sqlite+aiosqlite:///{data_dir / 'audit-prod.sqlite'}",
               ONESCREEN_AUDIT_SIGNING_KEY="cd" * 32, ONESCREEN_AUDIT_WITNESS_DIR=str(data_dir / "witness-prod"),
               ONESCREEN_URL_MOLIT_BLDG_HUB="http://127.0.0.1:9", ONESCREEN_KEY_MOLIT_BLDG_HUB="k")
    env.update(extra)
    if not (data_dir / "audit-prod.sqlite").exists():
        in_thread(AuditStore(env["ONESCREEN_AUDIT_URL"]).init())
    return env_for(data_dir, **env)


def in_thread(coro):
    """Run a coroutine to its end on its own event loop (callers may be inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def post(app, headers):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/graphql", json={"query": QUERY, "variables": {"s": RRN[0]}}, headers=headers)


RRN: list[str] = []


async def test_production_accepts_only_valid_sso_tokens(data_dir, keys):
    private, path, pem = keys
    RRN[:] = [sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]]
    env = production_env(data_dir, path)
    app = create_app(load_settings(env), env)
    now = int(time.time())
    good = jwt.encode({**CLAIMS, "iat": now, "exp": now + 300}, private, algorithm="RS256")
    r = await post(app, {"Authorization": f"Bearer {good}"})
    assert r.status_code == 200 and r.json()["data"]["citizen"]["name"], r.text
    bad_tokens = {
        "expired": jwt.encode({**CLAIMS, "iat": now - 900, "exp": now - 600}, private, algorithm="RS256"),
        "wrong audience": jwt.encode({**CLAIMS, "aud": "other", "iat": now, "exp": now + 300}, private, algorithm="RS256"),
        "wrong issuer": jwt.encode({**CLAIMS, "iss": "https://evil", "iat": now, "exp": now + 300}, private, algorithm="RS256"),
        "not yet valid": jwt.encode({**CLAIMS, "iat": now, "nbf": now + 600, "exp": now + 900}, private, algorithm="RS256"),
        "alg none": jwt.encode({**CLAIMS, "iat": now, "exp": now + 300}, None, algorithm="none"),
        "forged signature": good[:-8] + ("A" * 8 if not good.endswith("A" * 8) else "B" * 8),
        "demo token": mint_demo_token(data_dir, "choi.chaeryang"),
    }
    import hmac, hashlib, base64
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "iat": now, "exp": now + 300}).encode()).rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
    bad_tokens["HS256 signed with the public key"] = (header + b"." + payload + b"." + sig).decode()
    for what, token in bad_tokens.items():
        r = await post(app, {"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, what
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/graphql")).status_code == 405  # no GraphiQL in production
    await app.state.runtime.close()


def test_production_refuses_to_start_without_keys_or_with_the_demo_key(data_dir, keys):
    _, path, _ = keys
    env = production_env(data_dir, path)
    env.pop("ONESCREEN_JWT_KEYS")
    with pytest.raises(ValueError, match="ONESCREEN_JWT_KEYS"):
        create_app(load_settings(env), env)
    demo_key = data_dir / "demo-signing.key"
    mint_demo_token(data_dir, "choi.chaeryang")
    env = production_env(data_dir, demo_key)
    with pytest.raises(Exception):
        create_app(load_settings(env), env)
    env = production_env(data_dir, path)
    env.pop("ONESCREEN_AUDIT_KEY")
    with pytest.raises(ValueError, match="ONESCREEN_AUDIT_KEY"):
        create_app(load_settings(env), env)
    env = production_env(data_dir, path)
    env.pop("ONESCREEN_AUDIT_URL")
    with pytest.raises(ValueError, match="ONESCREEN_AUDIT_URL"):
        create_app(load_settings(env), env)
    for missing in ("ONESCREEN_AUDIT_SIGNING_KEY", "ONESCREEN_AUDIT_WITNESS_DIR"):
        env = production_env(data_dir, path)
        env.pop(missing)
        with pytest.raises(ValueError, match=missing):
            create_app(load_settings(env), env)


async def test_a_trusted_proxy_header_is_believed_only_from_a_trusted_proxy(data_dir, keys):
    _, path, _ = keys
    RRN[:] = [sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]]
    claims = json.dumps({k: v for k, v in CLAIMS.items() if k not in ("iss", "aud")})  # ASCII: JSON escapes
    for proxies, expected in (("127.0.0.1", 200), ("10.1.2.3", 401), ("10.0.0.0/8, 127.0.0.0/8", 200)):
        env = production_env(data_dir, path, ONESCREEN_TRUSTED_PROXY_HEADER="X-OneScreen-Identity",
                             ONESCREEN_TRUSTED_PROXIES=proxies)
        app = create_app(load_settings(env), env)
        r = await post(app, {"X-OneScreen-Identity": claims})
        assert r.status_code == expected, r.text
        await app.state.runtime.close()
