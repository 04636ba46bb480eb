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

from conftest import env_for, eventually, sample
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
    """A production environment over the demo ledgers, with its audit store on PostgreSQL (production refuses
    any other) initialised as its owner would (`onescreen audit init`: production never creates it). Unless
    `extra` names them: the configuration is the files (a store would need a seeded version), and the rate
    limits and lookup budgets are counted per process (explicitly: production needs Redis otherwise)."""
    demo = data_dir / "demo"
    dsn = {"ONESCREEN_DSN_MOIS_RESIDENT": "mois_resident", "ONESCREEN_DSN_COURT_FAMILY": "court_family",
           "ONESCREEN_DSN_MOLIT_BUILDING": "molit_building", "ONESCREEN_DSN_MOLIT_LAND": "molit_land",
           "ONESCREEN_DSN_MOLIT_VEHICLE": "molit_vehicle", "ONESCREEN_DSN_NHIS": "nhis_eligibility"}
    env = {k: f"sqlite:///{demo / (v + '.sqlite')}" for k, v in dsn.items()}
    env.update(ONESCREEN_MODE="production", ONESCREEN_JWT_KEYS=str(keys_path), ONESCREEN_JWT_ISSUER=CLAIMS["iss"],
               ONESCREEN_JWT_AUDIENCE=CLAIMS["aud"], ONESCREEN_AUDIT_KEY="ab" * 32,
               ONESCREEN_AUDIT_SIGNING_KEY="cd" * 32, ONESCREEN_AUDIT_WITNESS_DIR=str(data_dir / "witness-prod"),
               ONESCREEN_URL_MOLIT_BLDG_HUB="http://127.0.0.1:9", ONESCREEN_KEY_MOLIT_BLDG_HUB="k")
    if "ONESCREEN_AUDIT_URL" not in extra:
        env.update(ONESCREEN_AUDIT_URL=production_audit_url(data_dir), ONESCREEN_CONFIG_URL="files")
    if "ONESCREEN_REDIS_URL" not in extra:
        env["ONESCREEN_COUNTERS"] = "per-process"
    env.update(extra)
    return env_for(data_dir, **env)


def production_audit_url(data_dir) -> str:
    """The PostgreSQL audit store of `data_dir`'s production tests: a database of its own for the session,
    initialised once (with the consent and change tables beside it, as `onescreen audit init` does)."""
    marker = data_dir / "audit-prod.url"
    if marker.exists():
        return marker.read_text()
    from oneScreen.changes import _meta as changes_meta
    from oneScreen.configstore import COMPANIONS
    from oneScreen.consent import _meta as consent_meta
    from sqlservers import session_pg_database
    url = session_pg_database("onescreen_prod")
    companions = [(consent_meta, "SELECT, INSERT"), (changes_meta, "SELECT, INSERT, UPDATE"), *COMPANIONS]
    in_thread(AuditStore(url).init(companions=companions))
    marker.write_text(url)
    return url


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


def _b64(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made(header: object, claims: dict, secret: bytes = b"") -> str:
    """A token PyJWT would refuse to make (an HMAC keyed with a public key, an odd header), signed by hand."""
    import hashlib
    import hmac
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


async def test_every_algorithm_and_key_type_gets_a_401_or_is_served_never_a_500(data_dir, tmp_path):
    """Issue 24: an ES256 token against an RSA key was a 500 (PyJWT's TypeError). Every algorithm PyJWT knows,
    signed with every key type it can sign with (and by hand where it cannot), against production services
    configured with RSA, EC and Ed25519 keys (PEM each, and one JWKS of all three) and the demo service: a
    token signed by a configured key of its algorithm's type is served, every other one is a clear 401."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

    RRN[:] = [sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]]
    private = {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
               "p256": ec.generate_private_key(ec.SECP256R1()), "p384": ec.generate_private_key(ec.SECP384R1()),
               "p521": ec.generate_private_key(ec.SECP521R1()), "k256": ec.generate_private_key(ec.SECP256K1()),
               "ed25519": ed25519.Ed25519PrivateKey.generate(), "ed448": ed448.Ed448PrivateKey.generate(),
               "hmac": b"a shared secret, sixty-four bytes long, for HS256, HS384 and HS512"}
    pem = {name: private[name].public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
           for name in ("rsa", "p256", "ed25519")}
    for name, data in pem.items():
        (tmp_path / f"{name}.pem").write_bytes(data)
    jwks = {"keys": [{**RSAAlgorithm.to_jwk(private["rsa"].public_key(), as_dict=True), "kid": "rsa"},
                     {**ECAlgorithm.to_jwk(private["p256"].public_key(), as_dict=True), "kid": "p256"},
                     {**OKPAlgorithm.to_jwk(private["ed25519"].public_key(), as_dict=True), "kid": "ed25519"}]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    configs = {"rsa PEM": ({"rsa"}, "rsa.pem"), "p256 PEM": ({"p256"}, "p256.pem"),
               "ed25519 PEM": ({"ed25519"}, "ed25519.pem"), "JWKS": ({"rsa", "p256", "ed25519"}, "jwks.json")}
    fits = {"RS": {"rsa"}, "PS": {"rsa"}, "ES256": {"p256"}, "ES384": {"p384"}, "ES512": {"p521"},
            "EdDSA": {"ed25519", "ed448"}}

    now = int(time.time())
    claims = {**CLAIMS, "iat": now, "exp": now + 300}
    tokens: dict[str, tuple[str, str | None]] = {}  # what -> (token, the key that really signed it, if any)
    algorithms = sorted(get_default_algorithms())
    assert {"ES256", "EdDSA", "HS256", "PS256", "RS256", "none"} <= set(algorithms)
    for alg in algorithms:
        for signer, key in private.items():
            for kid in (None, "rsa", "p256", "ed25519"):
                try:
                    token = jwt.encode(claims, None if alg == "none" else key, algorithm=alg,
                                       headers={"kid": kid} if kid else None)
                except (jwt.PyJWTError, TypeError, ValueError, NotImplementedError):
                    continue  # PyJWT will not sign with this key type
                tokens[f"{alg} by {signer} kid {kid}"] = (token, None if alg in ("none",) else signer)
        for name, data in pem.items():  # the classic confusion: an HMAC keyed with the service's public key
            if alg.startswith("HS"):
                tokens[f"{alg} keyed with the {name} PEM"] = (_hand_made({"alg": "HS256", "typ": "JWT"}, claims,
                                                                         data), None)
    odd_headers = [{"alg": ["ES256"]}, {"alg": None}, {}, {"alg": "ES256", "kid": {"x": 1}}, {"alg": "RS256", "kid": 7},
                   {"alg": "EdDSA", "crv": "X25519"}, {"alg": "ES256K"}, {"alg": "ES521"}, "ES256", ["RS256"]]
    for i, header in enumerate(odd_headers):
        tokens[f"odd header {i}"] = (_hand_made(header, claims), None)
    for i, shape in enumerate(["", "a", "a.b", "a.b.c", "....", "e30.e30.", "e30.e30.e30", "eyJhbGciOiJFUzI1NiJ9.x.y",
                               tokens["ES256 by p256 kid None"][0] + "x", "Ünïcödé.ü.ü"]):
        tokens[f"odd shape {i}"] = (shape, None)

    def expected(config_keys: set[str], what: str, signer: str | None) -> int:
        alg = what.split(" ", 1)[0]
        family = fits.get(alg, fits.get(alg[:2], set()))
        return 200 if signer in config_keys and signer in family else 401

    seen = set()
    for config, (config_keys, file) in {**configs, "demo": (set(), None)}.items():
        env = production_env(data_dir, tmp_path / file) if file else env_for(data_dir)
        app = create_app(load_settings(env), env)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for what, (token, signer) in tokens.items():
                r = await c.post("/graphql", json={"query": "{ me { user } }"},
                                 headers={"Authorization": f"Bearer {token}".encode()})
                want = expected(config_keys, what, signer)
                assert r.status_code == want, f"{config}: {what}: {r.status_code} {r.text[:200]}"
                if want == 401:
                    error = r.json()["errors"][0]
                    assert error["extensions"]["code"] == "UNAUTHENTICATED" and error["message"], (config, what)
                seen.add(want)
        await app.state.runtime.close()
    assert seen == {200, 401}


@pytest.mark.parametrize("jwk, reason", [
    ({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}, "not an RSA, EC or Ed25519/Ed448 public key"),
    ({"kty": "OKP", "crv": "X25519", "x": "5aQUM1bH3ePwdCkrJIixiCQQsxi_3ii6Qqbj3Ra8wlQ"}, "cannot be used"),
])
def test_production_refuses_a_jwks_with_a_key_that_cannot_check_signatures(data_dir, tmp_path, jwk, reason):
    """A symmetric (HMAC) or non-signing key in the SSO's key file is refused at start, naming the file and key."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "odd"}]}))
    env = production_env(data_dir, path)
    with pytest.raises(ValueError, match=reason) as info:
        create_app(load_settings(env), env)
    assert str(path) in str(info.value) and "'odd'" in str(info.value)


async def test_production_refuses_a_malformed_region_claim_and_accepts_none(data_dir, keys):
    """A production token (or trusted proxy header) whose region claim is present but malformed is a 401 that
    says so; a token without one is served, and sees nothing of a task limited to the caseworker's region."""
    private, path, _ = keys
    RRN[:] = [sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]]
    env = production_env(data_dir, path, ONESCREEN_TRUSTED_PROXY_HEADER="X-OneScreen-Identity",
                         ONESCREEN_TRUSTED_PROXIES="127.0.0.1")
    app = create_app(load_settings(env), env)
    now = int(time.time())
    try:
        for region in ("", "1", "00000", "11000-1", 11000):
            token = jwt.encode({**CLAIMS, "region": region, "iat": now, "exp": now + 300}, private, algorithm="RS256")
            r = await post(app, {"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, region
            assert "region" in r.json()["errors"][0]["message"]
            header = json.dumps({k: v for k, v in {**CLAIMS, "region": region}.items() if k not in ("iss", "aud")})
            assert (await post(app, {"X-OneScreen-Identity": header})).status_code == 401
        claims = {k: v for k, v in CLAIMS.items() if k != "region"}
        token = jwt.encode({**claims, "iat": now, "exp": now + 300}, private, algorithm="RS256")
        r = await post(app, {"Authorization": f"Bearer {token}"})  # vehicle_transfer is nationwide
        assert r.status_code == 200 and r.json()["data"]["citizen"]["name"], r.text
    finally:
        await app.state.runtime.close()


def test_a_malformed_trusted_proxy_address_stops_the_start():
    """A typo in ONESCREEN_TRUSTED_PROXIES is refused when the settings are read, naming the variable and the
    item, instead of silently trusting fewer (or other) proxies than the operator meant."""
    from oneScreen.settings import load

    with pytest.raises(ValueError, match=r"ONESCREEN_TRUSTED_PROXIES: '10\.0\.0\.300' is not an IP address"):
        load({"ONESCREEN_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.300", "ONESCREEN_TRUSTED_PROXY_HEADER": "X-Claims"})
    assert [str(n) for n in load({"ONESCREEN_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16"}).trusted_proxies] \
        == ["10.0.0.1/32", "192.168.0.0/16"]


async def test_the_audit_record_names_the_workstation_a_trusted_proxy_forwarded_for(data_dir, keys):
    """Behind the API gateway every peer is the gateway: a record naming it says nothing of where a caseworker
    read. From ONESCREEN_TRUSTED_PROXIES, X-Forwarded-For names the client (the rightmost address no trusted
    proxy added, so a caller's own prefix is not believed); from anyone else, or without trusted proxies, it
    is ignored, and a value that is no address is not believed. The trusted proxy's identity header is still
    judged by the peer, not by the forwarded address."""
    import io

    private, path, _ = keys
    RRN[:] = [sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]]
    now = int(time.time())
    bearer = {"Authorization": "Bearer " + jwt.encode({**CLAIMS, "iat": now, "exp": now + 300}, private,
                                                     algorithm="RS256")}
    identity = json.dumps({k: v for k, v in CLAIMS.items() if k not in ("iss", "aud")})

    async def client_of(app, headers) -> str:
        r = await post(app, headers)
        assert r.status_code == 200, r.text
        out = io.StringIO()
        await app.state.runtime.audit.export(out)
        return json.loads(out.getvalue().splitlines()[-1])["private"]["client"]  # a commitment in the hash input

    cases = {  # ONESCREEN_TRUSTED_PROXIES -> [(headers, the record's client)]; the test client's peer is 127.0.0.1
        "127.0.0.1": [({"X-Forwarded-For": "10.20.30.40"}, "10.20.30.40"),
                      ({"X-Forwarded-For": "203.0.113.9, 10.20.30.40"}, "10.20.30.40"),
                      ({"X-Forwarded-For": "not-an-address"}, "127.0.0.1"),
                      ({}, "127.0.0.1")],
        "10.0.0.0/8, 127.0.0.1": [({"X-Forwarded-For": "192.0.2.7, 10.1.1.1"}, "192.0.2.7")],
        "10.1.2.3": [({"X-Forwarded-For": "10.20.30.40"}, "127.0.0.1")],
    }
    for proxies, expected in cases.items():
        env = production_env(data_dir, path, ONESCREEN_TRUSTED_PROXY_HEADER="X-OneScreen-Identity",
                             ONESCREEN_TRUSTED_PROXIES=proxies)
        app = create_app(load_settings(env), env)
        try:
            for headers, client in expected:
                assert await client_of(app, {**bearer, **headers}) == client, (proxies, headers)
            if proxies == "127.0.0.1":  # the peer is the trusted proxy, whatever workstation it names
                got = await client_of(app, {"X-OneScreen-Identity": identity, "X-Forwarded-For": "10.20.30.40"})
                assert got == "10.20.30.40"
        finally:
            await app.state.runtime.close()
    env = production_env(data_dir, path)  # no trusted proxies: the header is nobody's word
    app = create_app(load_settings(env), env)
    try:
        assert await client_of(app, {**bearer, "X-Forwarded-For": "10.20.30.40"}) == "127.0.0.1"
    finally:
        await app.state.runtime.close()


async def test_a_rotated_key_file_is_followed_without_a_restart(data_dir, keys):
    """The identity provider rotates its signing key and the mounted key file changes: tokens of the new key
    are served within the watch interval, those of the key taken out are refused at once (not served for a
    minute from the verified-token cache), and a broken file leaves the keys in use, says why in /readyz and
    in one log line, until a good one comes."""
    from jwt.algorithms import RSAAlgorithm

    def public_jwks(public_keys) -> dict:
        return {"keys": [{**RSAAlgorithm.to_jwk(k, as_dict=True), "kid": f"k{i}"} for i, k in enumerate(public_keys)]}

    private, path, _ = keys
    RRN[:] = [sample(data_dir, "mois_resident:SELECT rrn FROM resident LIMIT 1")[0][0]]
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())

    def bearer(key):
        return {"Authorization": "Bearer " + jwt.encode({**CLAIMS, "iat": now, "exp": now + 300}, key,
                                                       algorithm="RS256")}

    async def status(app, key) -> int:
        return (await post(app, bearer(key))).status_code

    async def warnings(app) -> list[str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return (await c.get("/readyz")).json()["warnings"]

    async def warned() -> bool:
        return any("JWT keys" in w for w in await warnings(app))

    env = production_env(data_dir, path)
    app = create_app(load_settings(env), env)
    runtime = app.state.runtime
    watching = asyncio.ensure_future(runtime.follow_files(0.02))
    try:
        assert await status(app, private) == 200 and await status(app, rotated) == 401
        path.write_text(json.dumps(public_jwks([rotated.public_key()])))  # the old key taken out
        await eventually(lambda: status(app, rotated), 200, "the rotated key's token served")
        assert await status(app, private) == 401, "a token of the key taken out is still served"
        path.write_text('{"keys": [{"kty": "RSA", "n": "broken"}]}')
        await eventually(warned, True, "a warning of the broken key file")
        assert str(path) in " ".join(await warnings(app))
        assert await status(app, rotated) == 200, "a broken file replaced the keys in use"
        path.write_text(json.dumps(public_jwks([private.public_key(), rotated.public_key()])))
        await eventually(lambda: status(app, private), 200, "the key put back served")
        assert await status(app, rotated) == 200 and not await warnings(app)
    finally:
        watching.cancel()
        await runtime.close()

