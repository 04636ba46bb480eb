"""Shared helpers of the benchmarks: the run context, targets and their report, processes, wrk, tokens.

Everything runs on loopback. Servers under test are pinned to CPU 1 (`taskset -c 1`); the load
generator (wrk) and the ledger emulator share CPU 0, as peer-bench's run.sh does.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .ledgers import LEDGERS, SELECTED  # noqa: F401  (the six ledgers and the five attributes a screen shows)

ROOT = Path(__file__).resolve().parent.parent  # the project checkout
# peer-bench: the external peers A (Hive Gateway) and C (naive strawberry) and their installer, used when present
PEER_DIR = Path(os.environ.get("PEER_BENCH_DIR", ROOT.parent / "shared" / "peer-bench")).resolve()
PEER_ROOT = Path(os.environ.get("PEER_BENCH_ROOT", "/tmp/peer-bench"))
PEER_PY = PEER_ROOT / "venv" / "bin" / "python"
PEER_NODE_DIR = PEER_ROOT / "node"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = f"onescreen_bench_{os.getpid()}"  # one database per run: concurrent runs (CI's smoke) never collide
WITHOUT = set(filter(None, os.environ.get("BENCH_WITHOUT", "").split(",")))  # e.g. wrk,node,peers,postgres
SERVER_CPU = "1"
LOAD_CPU = "0"


# ---------------------------------------------------------------- run context and report
@dataclass
class Target:
    what: str  # e.g. "p50 at c=1 / slowest ledger"
    measured: float | None  # None: not measured in this run
    limit: float
    op: str  # "<=", ">=", "<", ">"
    unit: str = ""  # how to print measured and limit ("x", " s", " MB", "/s", "%")
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        m, l = self.measured, self.limit
        return {"<=": m <= l, ">=": m >= l, "<": m < l, ">": m > l}[self.op]

    def verdict(self, smoke: bool) -> str:
        if self.measured is None:
            return "NOT MEASURED"
        if smoke:
            return "(smoke: not judged)"
        return "PASS" if self.passed else "FALLS SHORT"


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f}{unit}"
    if abs(value) >= 10:
        return f"{value:.1f}{unit}"
    return f"{value:.2f}{unit}"


@dataclass
class Result:
    name: str
    title: str
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_measured: dict[str, str] = field(default_factory=dict)  # what could not be measured here -> why
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Run:
    smoke: bool
    tmp: Path
    profile: bool = False
    minutes: float | None = None  # `bench memory --minutes N`: the soak's length
    results: list[Result] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    argv: list[str] = field(default_factory=list)
    _audit_urls: dict[str, str] = field(default_factory=dict)
    has_wrk: bool = field(default_factory=lambda: shutil.which("wrk") is not None and "wrk" not in WITHOUT)
    has_taskset: bool = field(default_factory=lambda: shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2)

    def dur(self, full: float, smoke: float = 1.0) -> float:
        return smoke if self.smoke else full

    def command(self, bench: str) -> str:
        soak = self.minutes and ("memory" in bench.split() or not bench.strip())
        flags = (" --smoke" if self.smoke else "") + (f" --minutes {self.minutes:g}" if soak else "")
        return f"cd {ROOT} && {shlex.quote(sys.executable)} -m bench {bench}{flags}"

    def pin(self, cpu: str) -> list[str]:
        return ["taskset", "-c", cpu] if self.has_taskset else []

    def audit_url(self, which: str = "", code: str | None = None) -> str:
        """The durable audit store of the servers under test, initialised as its owner would (`onescreen audit
        init`): a fresh PostgreSQL database once per run (production's store), else a SQLite file (said so in
        the output). `which` gives a build of an A/B comparison a store of its own (builds of other schema
        versions must not share one), `code` the checkout whose `audit init` makes it (by default this one)."""
        if which not in self._audit_urls:
            if pg_available():
                url = pg_fresh_db(f"onescreen_bench_{which}_{os.getpid()}" if which else PG_DB)
            else:
                url = f"sqlite+aiosqlite:///{self.tmp / f'audit{which}.sqlite'}"
                say("  note: PostgreSQL is not running on 127.0.0.1:5432; the audit store is a SQLite file")
            init_audit_store(url, code)
            self._audit_urls[which] = url
        return self._audit_urls[which]

    def drop_audit_stores(self) -> None:
        for url in self._audit_urls.values():
            if url.startswith("postgresql"):
                pg_drop_db(url.rsplit("/", 1)[1])


def init_audit_store(url: str, code: str | None = None) -> str:
    """`onescreen audit init` on `url` (production servers never create their store) by the checkout `code`
    (default: this one); returns `url`."""
    code = code or str(ROOT)
    out = subprocess.run([sys.executable, "-m", "oneScreen.cli", "audit", "init"], cwd=code, text=True,
                         env=base_env(ONESCREEN_AUDIT_URL=url, PYTHONPATH=code), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    if out.returncode == 2 and "invalid choice: 'init'" in out.stderr:
        return url  # a build older than `audit init` (e.g. f1d3b3c) creates its store when it starts
    if out.returncode:
        raise RuntimeError(f"`onescreen audit init` in {code} failed ({out.returncode}): {out.stderr[-800:]}")
    return url


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    say("    " + line)
    say("    " + "-" * len(line))
    for r in rows:
        say("    " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def print_targets(run: Run, res: Result) -> None:
    for t in res.targets:
        m = fmt(t.measured, t.unit)
        note = f"  ({t.note})" if t.note else ""
        say(f"  TARGET {res.name}: {t.what}: {m} (target {t.op} {fmt(t.limit, t.unit)}) -> {t.verdict(run.smoke)}{note}")


def machine() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cI %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "oneScreen", "connectors"],
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
        info["code"] = f"{head[:100]}" + (f" (+{len(dirty)} uncommitted files in oneScreen/, connectors/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout + ""
        info["wrk"] = (out.splitlines() or ["?"])[0].split(" Copyright")[0]
    try:
        import uvloop  # noqa: F401
        import httptools  # noqa: F401
        info["server loop"] = f"uvloop {uvloop.__version__} + httptools {httptools.__version__}"
    except ImportError:
        info["server loop"] = "asyncio + h11 (uvloop/httptools not installed: pip install uvloop httptools)"
    return info


# ---------------------------------------------------------------- processes
_STARTED: list["Proc"] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process this benchmark started (and only those are ever stopped, by pid)."""

    def __init__(self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 log: Path) -> None:
        self.name, self.cmd, self.log = name, cmd, log
        self._fh = open(log, "ab")
        self.p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._fh, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        _STARTED.append(self)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._fh.close()
        if self in _STARTED:
            _STARTED.remove(self)

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def stop_all() -> None:
    for p in list(_STARTED):
        p.stop()


def wait_http(url: str, proc: Proc | None = None, timeout: float = 60.0, *, data: bytes | None = None,
              headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = http(url, data=data, headers=headers, timeout=2)
            if status < 500:
                return
        except OSError:
            pass
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited while starting:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout:.0f} s: {url}" + (f"\n{proc.tail()}" if proc else ""))
        time.sleep(0.1)


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cpu_ticks(pid: int) -> int:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])  # utime + stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return 0


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metrics(base: str) -> dict[str, float]:
    """The Prometheus samples of a oneScreen /metrics page: {'name{labels}': value}."""
    _, body = http(base + "/metrics")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def metric_sum(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{"))


# ---------------------------------------------------------------- wrk
@dataclass
class Load:
    conc: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # % of one core
    command: str


BENCH_LUA = Path(__file__).with_name("bench.lua")  # the same request every time
DISTINCT_LUA = Path(__file__).with_name("distinct.lua")  # every request another subject (K1001, K1002, ...)


def wrk(run: Run, url: str, conc: int, seconds: float, *, body_file: Path | None = None,
        headers: dict[str, str] | None = None, server_pid: int | None = None, distinct: bool = False) -> Load:
    """One bounded wrk run (bench/bench.lua: POST the body file, print PB_RESULT), wrk pinned to CPU 0.
    `distinct`: bench/distinct.lua instead, which asks for another subject in every request."""
    script = DISTINCT_LUA if distinct else BENCH_LUA
    cmd = run.pin(LOAD_CPU) + ["wrk", "-t1", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
                               "-s", str(script)]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    env = {**os.environ, "PB_BODY_FILE": str(body_file) if body_file else ""}
    t0 = cpu_ticks(server_pid) if server_pid else 0
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    t1 = cpu_ticks(server_pid) if server_pid else 0
    line = next((l for l in out.stdout.splitlines() if l.startswith("PB_RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no PB_RESULT: {out.stdout[-500:]} {out.stderr[-500:]}")
    kv = dict(t.split("=", 1) for t in line.split()[1:])
    dur = int(kv["duration_us"]) / 1e6
    errs = sum(int(kv[k]) for k in ("connect", "read", "write", "status", "timeout"))
    tck = os.sysconf("SC_CLK_TCK")
    shown = " ".join(shlex.quote(c) for c in cmd)
    if body_file:
        shown = f"PB_BODY_FILE={shlex.quote(str(body_file))} {shown}"
    return Load(conc, dur, int(kv["requests"]), int(kv["requests"]) / dur, int(kv["p50_us"]) / 1000,
                int(kv["p99_us"]) / 1000, errs, 100 * (t1 - t0) / tck / dur if server_pid else 0.0,
                redact(shown))


def redact(text: str) -> str:
    """Bearer tokens are long and expire: show them as $TOKEN in printed commands."""
    import re
    return re.sub(r"Bearer [A-Za-z0-9._-]+", "Bearer $TOKEN", text)


# ---------------------------------------------------------------- identity (production mode)
class Identity:
    """An RS256 key pair standing in for the government SSO: the public key for the server, tokens for wrk."""

    ISSUER = "https://sso.bench.invalid"
    AUDIENCE = "onescreen"

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = directory / "sso-public.pem"
        self.public_pem.write_bytes(self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def token(self, roles: Sequence[str], user: str = "bench.user", org: str = "BENCH", region: str = "national") -> str:
        import jwt
        now = int(time.time())
        claims = {"sub": user, "name": user, "org": org, "region": region, "roles": list(roles),
                  "iss": self.ISSUER, "aud": self.AUDIENCE, "iat": now, "nbf": now, "exp": now + 4 * 3600}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def env(self) -> dict[str, str]:
        return {"ONESCREEN_MODE": "production", "ONESCREEN_JWT_KEYS": str(self.public_pem),
                "ONESCREEN_JWT_ISSUER": self.ISSUER, "ONESCREEN_JWT_AUDIENCE": self.AUDIENCE,
                "ONESCREEN_AUDIT_KEY": "ab" * 32, "ONESCREEN_AUDIT_SIGNING_KEY": "cd" * 32,
                "ONESCREEN_AUDIT_WITNESS_DIR": str(self.public_pem.parent / "audit-witness")}


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a oneScreen process: ours without ONESCREEN_*, rate limits and lookup budgets off (one
    bench user at up to c=128: a lookup by identifier counts against the budget while in flight; counted per
    process, explicitly, as production needs Redis otherwise), and the
    configuration read from its files: each server has a catalog of its own over a shared audit database (where
    production keeps one store of versions), and where a snapshot comes from changes no request's path (older
    builds, which icount compares with, ignore the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env.update(ONESCREEN_RATE_USER_PER_MIN="0", ONESCREEN_RATE_ORG_PER_MIN="0", ONESCREEN_LOOKUP_MISSES_PER_USER="0",
               ONESCREEN_LOOKUP_MISSES_PER_ORG="0", ONESCREEN_WORKERS="1", PYTHONDONTWRITEBYTECODE="1",
               ONESCREEN_CONFIG_URL="files", ONESCREEN_COUNTERS="per-process")
    env.update(extra)
    return env


# ---------------------------------------------------------------- PostgreSQL
def pg_available() -> bool:
    if "postgres" in WITHOUT:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def _pg_exec(url: str, *statements: str) -> list[Any]:
    import asyncpg
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        return [await conn.fetch(s) for s in statements]
    finally:
        await conn.close()


def pg_exec(url: str, *statements: str) -> list[Any]:
    return asyncio.run(_pg_exec(url, *statements))


def pg_fresh_db(name: str = PG_DB) -> str:
    """A fresh, empty benchmark database (dropped and created again); returns its SQLAlchemy URL.

    Databases left by runs whose process is gone (onescreen_bench_<pid>) are dropped first."""
    rows = pg_exec(PG_ADMIN_URL, "SELECT datname FROM pg_database WHERE datname LIKE 'onescreen_bench_%'")[0]
    stale = []
    for (datname,) in rows:
        pid = datname.rsplit("_", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            stale.append(f'DROP DATABASE IF EXISTS "{datname}" WITH (FORCE)')
    pg_exec(PG_ADMIN_URL, *stale, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


def pg_drop_db(name: str = PG_DB) -> None:
    try:
        pg_exec(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def pg_settings() -> str:
    try:
        rows = pg_exec(PG_ADMIN_URL, "SHOW server_version", "SHOW synchronous_commit", "SHOW fsync")
        return f"PostgreSQL {rows[0][0][0]}, synchronous_commit={rows[1][0][0]}, fsync={rows[2][0][0]}"
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL unavailable ({exc.__class__.__name__})"


@contextlib.contextmanager
def ref_and_tree(run: "Run", ref: str) -> Iterator[dict[str, str]]:
    """{ref: its checkout, "working tree": ROOT}: `ref` checked out with `git worktree` into the run's temp dir,
    for A/Bs that serve both builds through PYTHONPATH. Afterwards every process started is stopped, the
    checkout removed and the run's database dropped."""
    ref_dir = run.tmp / "ref"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(ref_dir), ref], cwd=ROOT, check=True)
    try:
        yield {ref: str(ref_dir), "working tree": str(ROOT)}
    finally:
        stop_all()
        subprocess.run(["git", "worktree", "remove", "--force", str(ref_dir)], cwd=ROOT, check=False)
        run.drop_audit_stores()


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path
