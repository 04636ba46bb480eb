"""The deployment artefacts stay true to the code: Dockerfile, deploy/ manifests and docs/OPERATIONS.md.

Guards invariant 9 on the deployment side (secrets only from the environment: never a
literal secret in a manifest or the image) and keeps the operations guide complete: every
ONESCREEN_* variable the code reads, and every metric it exports, is documented. No Docker
engine or Kubernetes cluster is needed: files are parsed, and the configuration the pods
would mount is laid out in a temporary directory and loaded with the service's own loaders.
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "OPERATIONS.md"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

VARIABLE = re.compile(r"ONESCREEN_[A-Z0-9_]*[A-Z0-9]")
SECRETISH = re.compile(r"(AUDIT_URL|AUDIT_KEY|_DSN_|_KEY_|PASSWORD|SECRET|TOKEN)")
CREDENTIAL_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # scheme://user:password@host


# ---------------------------------------------------------------- helpers
def _names(text: str) -> set[str]:
    """ONESCREEN_* names in a text; a prefix followed by '*', '...' or '{' (a family, not a name) is skipped."""
    out = set()
    for m in VARIABLE.finditer(text):
        following = text[m.end():m.end() + 1]
        if following in ("_", "*", "{") or text[m.end():m.end() + 2] == "_*":
            continue
        out.add(m.group())
    return out


def code_variables() -> set[str]:
    """Every ONESCREEN_* variable the service reads: its sources and the catalog's per-ledger names."""
    names: set[str] = set()
    for package in ("oneScreen", "connectors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            names |= _names(path.read_text(encoding="utf-8"))
    names |= _names((ROOT / "field_catalog.yaml").read_text(encoding="utf-8"))
    return names


def catalog_connectors() -> list[dict]:
    data = yaml.safe_load((ROOT / "field_catalog.yaml").read_text(encoding="utf-8"))
    return [ledger["connector"] for ledger in data["ledgers"]]


def manifests() -> dict[str, list[dict]]:
    """deploy/*.yaml -> their YAML documents (every file must parse)."""
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        out[path.name] = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    return out


def resource(kind: str, name_prefix: str = "onescreen") -> dict:
    found = [d for docs in manifests().values() for d in docs
             if d.get("kind") == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert found, f"no {kind} named {name_prefix}* in deploy/"
    return found[0]


def kustomized() -> list[dict]:
    """The documents kustomization.yaml applies (its resources), without running kustomize."""
    kz = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    docs = []
    for name in kz["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")) if d is not None]
    return docs


def deployment() -> dict:
    return resource("Deployment")


def pod_spec() -> dict:
    return deployment()["spec"]["template"]["spec"]


def container() -> dict:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    return containers[0]


def env_configmap() -> dict[str, str]:
    return {k: str(v) for k, v in resource("ConfigMap", "onescreen-env")["data"].items()}


def config_configmap() -> dict:
    return resource("ConfigMap", "onescreen-config")


def init_container(name: str = "config-import") -> dict:
    return next(c for c in pod_spec().get("initContainers", []) if c["name"] == name)


def volume(name: str) -> dict:
    return next(v for v in pod_spec()["volumes"] if v["name"] == name)


def mount_path(name: str, of: dict | None = None) -> str:
    return next(m["mountPath"] for m in (of or container())["volumeMounts"] if m["name"] == name)


# ---------------------------------------------------------------- the operations guide
def test_every_variable_the_code_reads_is_documented():
    """Each ONESCREEN_* name in oneScreen/, connectors/ and field_catalog.yaml appears in docs/OPERATIONS.md."""
    documented = _names(DOC.read_text(encoding="utf-8"))
    read = code_variables()
    assert read, "the scan found no variable at all: the pattern or the layout changed"
    missing = sorted(read - documented)
    assert not missing, f"read by the code but not documented in docs/OPERATIONS.md: {missing}"


def test_every_documented_variable_is_read_somewhere():
    """The guide names no variable that nothing reads (a renamed or removed setting)."""
    used: set[str] = set(code_variables())
    for folder in ("tests", "bench", ".ci"):
        for path in sorted((ROOT / folder).rglob("*")) if (ROOT / folder).exists() else []:
            if path.is_file() and path.suffix in (".py", "", ".sh", ".yaml") and path.name != "test_deploy.py":
                used |= _names(path.read_text(encoding="utf-8", errors="replace"))
    stale = sorted(_names(DOC.read_text(encoding="utf-8")) - used)
    assert not stale, f"docs/OPERATIONS.md documents variables nothing reads: {stale}"


def test_every_metric_is_documented():
    from oneScreen.metrics import Metrics

    doc = DOC.read_text(encoding="utf-8")
    families = sorted({m.name for m in Metrics().registry.collect()})
    assert families
    missing = [f for f in families if f not in doc]
    assert not missing, f"metrics exported but not listed in docs/OPERATIONS.md: {missing}"


# ---------------------------------------------------------------- manifests
def test_manifests_parse_and_are_namespaced():
    docs = manifests()
    assert {"kustomization.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml",
            "networkpolicy.yaml", "namespace.yaml", "secret.example.yaml"} <= set(docs)
    for name, items in docs.items():
        assert items, f"{name} is empty"
        if name == "kustomization.yaml":
            continue
        for d in items:
            assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), name
            if d["kind"] != "Namespace":
                assert d["metadata"].get("namespace") == "onescreen", f"{name}: {d['kind']} outside the namespace"


def test_kustomization_applies_every_manifest_but_the_secret_example():
    kz = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text(encoding="utf-8"))
    resources = kz["resources"]
    for name in resources:
        assert (DEPLOY / name).is_file(), f"kustomization.yaml lists a missing file {name}"
    assert "secret.example.yaml" not in resources, "the example Secret (placeholders) must never be applied"
    assert not any(d["kind"] == "Secret" for d in kustomized()), "no Secret is applied from git"
    expected = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(resources) == expected


def test_deployment_has_probes_limits_and_a_locked_down_container():
    dep = deployment()
    c, pod = container(), pod_spec()
    assert dep["spec"]["replicas"] == 3
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), f"resources.{kind} needs cpu and memory"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert pod["automountServiceAccountToken"] is False
    assert "emptyDir" in volume("tmp") and mount_path("tmp") == "/tmp"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_termination_grace_covers_pre_stop_and_the_drain():
    """SIGKILL must not come before the pre-stop pause plus uvicorn's graceful shutdown."""
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = re.search(r"timeout_graceful_shutdown=(\d+)", (ROOT / "oneScreen" / "cli.py").read_text())
    drain = int(graceful.group(1)) if graceful else 30
    assert pod_spec()["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain


def test_no_literal_secret_in_manifests_applied():
    """Secret-looking variables come from secretKeyRef; no value anywhere applied holds a credential."""
    for e in container()["env"]:
        if SECRETISH.search(e["name"]):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            assert ref and "value" not in e, f"{e['name']} must come from a Secret reference"
        else:
            assert "value" not in e or not CREDENTIAL_URL.search(str(e["value"]))
    for name, value in env_configmap().items():
        assert not SECRETISH.search(name), f"{name} is a secret: it belongs in the Secret, not the ConfigMap"
        assert not CREDENTIAL_URL.search(value), f"{name} holds a credential"
    for d in kustomized():
        text = yaml.safe_dump(d, allow_unicode=True)
        assert not CREDENTIAL_URL.search(text), f"{d['kind']} {d['metadata']['name']} holds user:password@"
        assert not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text)


def test_secret_example_is_placeholders_only_and_matches_the_references():
    docs = manifests()["secret.example.yaml"]
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in docs}
    assert {"onescreen-secrets", "onescreen-jwt"} <= set(secrets)
    for name, data in secrets.items():
        for key, value in data.items():
            assert "REPLACE_ME" in str(value), f"{name}.{key} must be a placeholder (REPLACE_ME), never a value"
    referenced = {e["valueFrom"]["secretKeyRef"]["key"] for e in container()["env"] if "valueFrom" in e
                  and e["valueFrom"]["secretKeyRef"]["name"] == "onescreen-secrets"}
    assert referenced == set(secrets["onescreen-secrets"]), "secret.example.yaml and deployment.yaml disagree"
    assert volume("jwt")["secret"]["secretName"] == "onescreen-jwt"
    assert {i["key"] for i in volume("jwt")["secret"]["items"]} == set(secrets["onescreen-jwt"])


def test_deployment_provides_every_variable_the_catalog_names():
    """A ledger's DSN and service key come from the Secret, its base URL from the env ConfigMap."""
    from_secret = {e["name"] for e in container()["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    env = env_configmap()
    assert {"ONESCREEN_AUDIT_URL", "ONESCREEN_AUDIT_KEY"} <= from_secret
    for c in catalog_connectors():
        for key in ("dsn_env", "service_key_env"):
            if c.get(key):
                assert c[key] in from_secret, f"{c[key]} (catalog {key}) is not given to the pods from the Secret"
        if c.get("base_url_env"):
            assert c["base_url_env"] in env, f"{c['base_url_env']} (catalog base_url_env) is not in onescreen-env"


def test_env_configmap_sets_production_and_only_known_variables():
    env = env_configmap()
    unknown = sorted(set(env) - code_variables())
    assert not unknown, f"onescreen-env sets variables the code never reads (typo or removed): {unknown}"
    assert env["ONESCREEN_MODE"] == "production"
    assert env["ONESCREEN_WORKERS"] == "1"
    config_dir = mount_path("config", init_container())
    assert env["ONESCREEN_CATALOG"] == f"{config_dir}/field_catalog.yaml"
    assert env["ONESCREEN_POLICIES"] == f"{config_dir}/policies"
    assert env["ONESCREEN_JWT_KEYS"].startswith(mount_path("jwt") + "/")
    assert env["ONESCREEN_JWT_ISSUER"] and env["ONESCREEN_JWT_AUDIENCE"]
    assert [s["configMapRef"]["name"] for s in container()["envFrom"]] == ["onescreen-env"]


def test_config_configmap_is_immutable_content_named_and_mapped_by_the_deployment():
    cm = config_configmap()
    data = cm["data"]
    assert cm.get("immutable") is True
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key].encode("utf-8") + b"\0")
    assert cm["metadata"]["name"] == f"onescreen-config-{digest.hexdigest()[:10]}", \
        "the ConfigMap's name is not its content hash: run python deploy/gen_configmap.py"
    vol = volume("config")["configMap"]
    assert vol["name"] == cm["metadata"]["name"], "deployment.yaml mounts another ConfigMap: run deploy/gen_configmap.py"
    items = {i["key"]: i["path"] for i in vol["items"]}
    assert set(items) == set(data), "volume items and ConfigMap keys differ: run python deploy/gen_configmap.py"
    for key, path in items.items():
        assert key == path.replace("/", "__")


def test_mounted_configuration_loads_with_the_service_loaders(tmp_path):
    """Lay the ConfigMap out as the kubelet would and load it from the paths onescreen-env gives."""
    from oneScreen import catalog as catalog_mod, policy as policy_mod

    data = config_configmap()["data"]
    mount = Path(mount_path("config", init_container()))
    for item in volume("config")["configMap"]["items"]:
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[item["key"]], encoding="utf-8")
    env = env_configmap()
    catalog_path = tmp_path / Path(env["ONESCREEN_CATALOG"]).relative_to(mount)
    policies_dir = tmp_path / Path(env["ONESCREEN_POLICIES"]).relative_to(mount)
    cat = catalog_mod.load(catalog_path)
    pol = policy_mod.load(policies_dir, cat)
    assert cat.ledgers and pol.tasks


def test_the_service_mounts_no_configuration_and_an_init_container_seeds_the_store_from_the_configmap():
    """Issue 17: the approved configuration is a version in PostgreSQL, which every pod follows; deploy/ mounts no
    configuration the service would need to write. The ConfigMap's files only seed an empty store, read-only."""
    assert not any(m["name"] == "config" for m in container()["volumeMounts"]), "the service reads the store"
    seed = init_container()
    assert seed["image"] == container()["image"]
    assert seed["command"] == ["onescreen", "config", "import"]  # never --replace: a store with a version stays
    assert next(m for m in seed["volumeMounts"] if m["name"] == "config")["readOnly"] is True
    assert [s["configMapRef"]["name"] for s in seed["envFrom"]] == ["onescreen-env"]
    assert {e["name"] for e in seed["env"]} == {"ONESCREEN_AUDIT_URL"}  # the store is the audit store's database
    assert "ONESCREEN_CONFIG_URL" not in env_configmap()
    sc = seed["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(seed["resources"]["limits"])


def test_service_hpa_pdb_and_network_policy_select_the_pods():
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    selector = deployment()["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    svc = resource("Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container()["ports"]}
    assert all(p["targetPort"] in port_names or p["targetPort"] == 8000 for p in svc["spec"]["ports"])
    assert {p["containerPort"] for p in container()["ports"]} == {8000}

    hpa = resource("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "onescreen"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 30)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]

    pdb = resource("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    np = resource("NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for rule in np["spec"]["ingress"]:
        assert all("namespaceSelector" in peer for peer in rule["from"]), "ingress only from named namespaces"
        assert [p["port"] for p in rule["ports"]] == [8000]


# ---------------------------------------------------------------- image
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_pins_its_base_and_runs_as_a_non_root_user():
    instructions = dockerfile_instructions()
    stages: list[str] = []
    for word, args in instructions:
        if word != "FROM":
            continue
        parts = args.split()
        image = next(p for p in parts if not p.startswith("--"))
        if image.lower() in stages:
            continue  # FROM an earlier stage
        assert "$" not in image, f"base image {image} must be written out, not an ARG"
        pinned = "@sha256:" in image or re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image)
        assert pinned, f"base image {image} must be pinned by digest or exact version tag"
        assert not image.endswith(":latest")
        if len(parts) >= 3 and parts[-2].upper() == "AS":
            stages.append(parts[-1].lower())
    last_from = max(i for i, (w, _) in enumerate(instructions) if w == "FROM")
    users = [a for w, a in instructions[last_from:] if w == "USER"]
    assert users, "the final stage has no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the final USER must not be root"
    assert user.isdigit(), "use a numeric USER so Kubernetes' runAsNonRoot can verify it"
    assert int(user) == pod_spec()["securityContext"]["runAsUser"]


def test_dockerfile_defaults_to_production_and_serves_with_health_check():
    instructions = dockerfile_instructions()
    env = {}
    for word, args in instructions:
        if word == "ENV":
            for token in shlex.split(args):
                if "=" in token:
                    k, _, v = token.partition("=")
                    env[k] = v
    assert env["ONESCREEN_MODE"] == "production"
    assert env["ONESCREEN_CATALOG"] == "/app/field_catalog.yaml"
    assert env["ONESCREEN_POLICIES"] == "/app/policies"
    leaked = sorted(k for k in env if SECRETISH.search(k))
    assert not leaked, f"secrets must not be baked into the image: {leaked}"
    assert not any(w == "ARG" and SECRETISH.search(a) for w, a in instructions)
    assert ("EXPOSE", "8000") in instructions
    health = [a for w, a in instructions if w == "HEALTHCHECK"]
    assert health and "/healthz" in health[-1]
    entry = [a for w, a in instructions if w == "ENTRYPOINT"]
    assert entry and yaml.safe_load(entry[-1]) == ["onescreen", "serve", "--host", "0.0.0.0"]
    copied = " ".join(a for w, a in instructions if w == "COPY")
    for needed in ("field_catalog.yaml", "policies", "frontend", "oneScreen", "connectors", "setup.cfg"):
        assert needed in copied, f"the image does not copy {needed}"


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern[1:] if negate else pattern
        candidates = [p] + ([p[3:]] if p.startswith("**/") else [])
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        hit = any(fnmatch.fnmatch(prefix, c) for c in candidates for prefix in prefixes) or \
            (p.startswith("**/") and any(fnmatch.fnmatch(part, p[3:]) for part in parts))
        if hit:
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_image_copies_and_drops_secrets():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.strip().startswith("#")]
    for word, args in dockerfile_instructions():
        if word != "COPY" or "--from" in args:
            continue
        for source in args.split()[:-1]:
            assert not _ignored(source.rstrip("/"), patterns), f".dockerignore drops {source}, which the image copies"
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    for must_drop in (".git", "tests", ".venv", "secrets", "a/b/audit.sqlite", "x/signing.key", "tls/server.pem",
                      ".env", "deploy/.env.production"):
        assert _ignored(must_drop, patterns), f".dockerignore lets {must_drop} into the build context"


@pytest.mark.parametrize("source", ["oneScreen/app.py", "policies/tasks/basic_livelihood.yaml", "README.md"])
def test_dockerignore_matcher_keeps_sources(source):
    """The matcher above is itself right about files the build needs."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert not _ignored(source, patterns)


def test_every_package_the_service_imports_is_a_declared_dependency():
    """A plain `pip install .` gets everything oneScreen/ and connectors/ import (graphql-core and yarl were
    imported without being declared); optional integrations (OpenTelemetry tracing) are imported only when present."""
    import ast
    import configparser
    import importlib.metadata as md
    import re
    import sys

    imported: set[str] = set()
    for path in [*(ROOT / "oneScreen").rglob("*.py"), *(ROOT / "connectors").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third = imported - set(sys.stdlib_module_names) - {"oneScreen", "connectors", "opentelemetry"}
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    declared = {re.split(r"[<>=\[ ]", line.strip())[0].lower().replace("_", "-")
                for line in cfg["options"]["install_requires"].splitlines() if line.strip() and not line.strip().startswith("#")}
    distributions = md.packages_distributions()
    missing = {name: distributions.get(name) for name in third
               if not any(d.lower().replace("_", "-") in declared for d in distributions.get(name, []))}
    assert missing == {}


def test_a_plain_install_serves_the_web_screens_and_the_demo(tmp_path):
    """`pip install .` (not editable) then `onescreen serve`: the package carries its web screens, catalog and
    policies (setup.cfg's data_files, found by settings.py), so the installed copy serves the demo and the
    caseworker screen with no checkout beside it."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from conftest import free_port, need_service

    wheels, target, data = tmp_path / "wheels", tmp_path / "installed", tmp_path / "data"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    need_service(built.returncode == 0, f"could not build the wheel (the build needs setuptools from the package "
                                        f"index): {built.stderr[-500:]}")
    wheel = next(wheels.glob("onescreen-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    port = free_port()
    env.update(PYTHONPATH=str(target), ONESCREEN_DATA_DIR=str(data), ONESCREEN_PORT=str(port))
    where = subprocess.run([sys.executable, "-c", "import oneScreen.settings as s; print(s.__file__); print(s.SHIPPED)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where  # the installed copy, not this checkout
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "oneScreen.cli", "serve"], env=env, cwd=tmp_path, stdout=out,
                                stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        page = httpx.get(f"{base}/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert httpx.get(f"{base}/app.js", timeout=5).status_code == 200
        token = httpx.post(f"{base}/demo/token", json={"user": "kim.jumin"}, timeout=5).json()["token"]
        tasks = httpx.post(f"{base}/graphql", json={"query": "{ tasks { code } }"}, timeout=10,
                           headers={"Authorization": f"Bearer {token}"}).json()
        assert {t["code"] for t in tasks["data"]["tasks"]} >= {"move_in_report"}
    finally:
        proc.terminate()
        proc.wait(timeout=40)
