"""Generated configurations for the benchmarks, written to a temporary directory at run time.

- `peer_config`: a catalog + policies directory over the six benchmark ledgers (bench/ledgers.py: resident,
  family, building, land, vehicle, health; 10 attributes each), a subject type `person` keyed like
  them ("K1"), and one task `peer_screen` granting a1..a5 of every ledger (30 fields, three
  of them masked). The ledgers are REST (the emulator) or SQL (SQLite tables of the same records).
- `scale_config`: N ledgers x 50 fields over 10 subject types with links, and T tasks of 30
  fields each: the configuration-scale benchmark's catalog.
"""
from __future__ import annotations

import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import ledgers
from .common import LEDGERS, SELECTED

N_ATTRS = 10
TASK = "peer_screen"
ROLE = "bench_officer"
MASKED = {"resident_a1": "name", "health_a1": "name", "vehicle_a2": "phone"}  # field name -> strategy


def _flow(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False)  # JSON is YAML flow style


@dataclass(frozen=True)
class PeerConfig:
    directory: Path
    catalog: Path
    policies: Path
    task: str = TASK
    role: str = ROLE

    def typed_query(self, key: str = "K1", case_ref: str = "BENCH-0001", alias: str | None = None,
                    sel: str | None = None) -> str:
        sel = sel or " ".join(f"{n}A{i}" for n in LEDGERS for i in range(1, len(SELECTED) + 1))
        head = f"{alias}: " if alias else ""
        return f'{head}person(key: "{key}", task: "{self.task}", caseRef: "{case_ref}") {{ {sel} }}'

    def body(self, key: str = "K1") -> bytes:
        return json.dumps({"query": "{ " + self.typed_query(key) + " }"}).encode()

    def variables_body(self, key: str = "K1") -> bytes:
        """The typed query with the subject as a variable: one query text for every subject, as a client sends it
        (and as a persisted query must be); bench/distinct.lua changes the key in `variables` per request."""
        q = self.typed_query("$KEY").replace('"$KEY"', "$k")
        return json.dumps({"query": "query($k: ID!) { " + q + " }", "variables": {"k": key}}).encode()

    def batch_body(self, keys: list[str]) -> bytes:
        """Many subjects by alias, their selection named once in a fragment, as a batch client writes it: a hundred
        inline copies of the 30 fields would be 42 KB, past ONESCREEN_MAX_CHARS."""
        parts = [self.typed_query(k, alias=f"s{i}", sel="...P") for i, k in enumerate(keys)]
        fields = " ".join(f"{n}A{i}" for n in LEDGERS for i in range(1, len(SELECTED) + 1))
        return json.dumps({"query": "{ " + " ".join(parts) + " } fragment P on Person { " + fields + " }"}).encode()

    def screen_body(self, key: str = "K1") -> bytes:
        q = (f'{{ screen(task: "{self.task}", subject: "{key}", caseRef: "BENCH-0001") {{ requestId sections {{ '
             f'title fields {{ id label status display value source {{ agency ledger asOf cached }} }} }} }} }}')
        return json.dumps({"query": q}).encode()


def expected_typed(key: str = "K1") -> dict[str, Any]:
    """What the typed query must return for `key`: the ledgers' values, masked where the task masks."""
    from oneScreen import masking
    out = {}
    for n in LEDGERS:
        rec = ledgers.record(n, key)
        for i in range(1, len(SELECTED) + 1):
            v = rec[f"a{i}"]
            strategy = MASKED.get(f"{n}_a{i}")
            out[f"{n}A{i}"] = masking.apply(strategy, v) if strategy else v
    return {"person": out}


def rest_connector(url_env: str, key_env: str, prefix: str = "/portal", connections: int = 128,
                   **extra: Any) -> Callable[[str], dict[str, Any]]:
    def make(name: str) -> dict[str, Any]:
        return {"kind": "rest", "base_url_env": url_env, "service_key_env": key_env,
                "operation": f"{prefix}/{name}", "format": "json", "params": {"key": "key"},
                "page_size": 10, "max_pages": 1, "max_connections": connections, "request_timeout": 5, **extra}
    return make


def sql_connector(dsn_env: str) -> Callable[[str], dict[str, Any]]:
    return lambda name: {"kind": "sql", "dsn_env": dsn_env, "table": name}


def peer_config(directory: Path, connector: Callable[[str], dict[str, Any]], *, cache_ttl: float = 0,
                cache_size: int = 10_000, concurrency: int = 128, timeout: float = 5.0, batch: int = 1,
                ledger_extra: dict[str, dict[str, Any]] | None = None) -> PeerConfig:
    """The six peer ledgers as a oneScreen catalog, and the 30-field task over them. `batch`: the subjects one
    request may name (batch_body() needs 100); at 1, the task file also loads in builds older than
    `subjects_per_request`, so `bench.icount` can compare with them. `ledger_extra`: settings of one ledger's
    own, by name (e.g. its timeout)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "# generated by bench/configs.py: the six benchmark ledgers as a oneScreen catalog",
        "version: 1",
        "agencies:",
        "  - " + _flow({"id": "BENCH", "name": "벤치마크 기관", "name_en": "Benchmark agency"}),
        "subject_types:",
        "  - " + _flow({"id": "person", "label": "사람", "label_en": "Person", "key_label": "키",
                        "key_label_en": "Key", "key_pattern": r"^K\d{1,9}$", "key_arg": "key"}),
        "ledgers:",
    ]
    for n in LEDGERS:
        lines.append("  - " + _flow({
            "id": f"bench.{n}", "agency": "BENCH", "name": f"{n} 대장", "name_en": f"{n} ledger", "subject": "person",
            "key_column": "key", "cache_ttl": cache_ttl, "cache_size": cache_size, "timeout": timeout,
            "max_concurrency": concurrency, "connector": connector(n), **(ledger_extra or {}).get(n, {})}))
    lines.append("fields:")
    for n in LEDGERS:
        for i in range(1, N_ATTRS + 1):
            lines.append("  - " + _flow({
                "id": f"person.{n}_a{i}", "ledger": f"bench.{n}", "column": f"a{i}", "type": "string",
                "sensitivity": "personal", "label": f"{n} 항목 {i}", "label_en": f"{n} attribute {i}"}))
    catalog = directory / "field_catalog.yaml"
    catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")

    policies = directory / "policies"
    (policies / "tasks").mkdir(parents=True, exist_ok=True)
    (policies / "roles.yaml").write_text("roles:\n  - " + _flow(
        {"id": ROLE, "label": "벤치마크 담당자", "label_en": "Benchmark officer"}) + "\n", encoding="utf-8")
    task = [f"code: {TASK}", "name: 벤치마크 화면", "name_en: Benchmark screen",
            "legal_basis: 벤치마크 (법적 근거 아님)", "legal_basis_en: Benchmark (no legal basis)",
            "subject: person", f"roles: [{ROLE}]", *([f"subjects_per_request: {batch}"] if batch > 1 else []),
            "sections:"]
    for n in LEDGERS:
        task += [f"  - title: {n}", f"    title_en: {n}", "    fields:"]
        for a in SELECTED:
            name = f"{n}_{a}"
            if name in MASKED:
                task.append("      - " + _flow({"field": f"person.{name}", "mask": MASKED[name]}))
            else:
                task.append(f"      - person.{name}")
    (policies / "tasks" / f"{TASK}.yaml").write_text("\n".join(task) + "\n", encoding="utf-8")
    return PeerConfig(directory, catalog, policies)


def sqlite_ledgers(path: Path, n_subjects: int) -> Path:
    """One SQLite file with a table per peer ledger (key, a1..a10) holding bench/ledgers.py's records of K1..Kn."""
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    try:
        for n in LEDGERS:
            cols = ", ".join(f"a{i} TEXT" for i in range(1, N_ATTRS + 1))
            conn.execute(f'CREATE TABLE "{n}" (key TEXT PRIMARY KEY, {cols})')
            rows = []
            for k in range(1, n_subjects + 1):
                rec = ledgers.record(n, f"K{k}")
                rows.append((rec["key"], *(rec[f"a{i}"] for i in range(1, N_ATTRS + 1))))
            conn.executemany(f'INSERT INTO "{n}" VALUES ({", ".join("?" * (N_ATTRS + 1))})', rows)
        conn.commit()
    finally:
        conn.close()
    return path


# ---------------------------------------------------------------- configuration scale
SUBJECTS = 10
AGENCIES = 20
ROLES = 20
FIELDS_PER_TASK = 30
TYPES = ("string", "string", "string", "integer", "number", "date", "boolean")
SENSITIVITY = ("public", "internal", "personal", "personal", "sensitive")


def _sensitive(fid: str) -> bool:
    return SENSITIVITY[int(fid[-2:]) % len(SENSITIVITY)] == "sensitive"


def scale_config(directory: Path, n_ledgers: int, n_fields: int, n_tasks: int) -> tuple[Path, Path, dict[str, str]]:
    """A catalog of n_ledgers (>= 10) x n_fields (one ledger in 10 REST, the rest SQL; one in 7 with many rows per
    subject), a link from every subject type to the next, and n_tasks tasks of 30 fields (some through the
    link, some masked, some consent-gated). Returns (catalog, policies dir, environment it needs)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = ["# generated by bench/configs.py: configuration-scale catalog", "version: 1", "agencies:"]
    out += ["  - " + _flow({"id": f"AG{a:02d}", "name": f"기관 {a}", "name_en": f"Agency {a}"})
            for a in range(AGENCIES)]
    out.append("subject_types:")
    for s in range(SUBJECTS):
        out.append("  - " + _flow({"id": f"subj_{s}", "label": f"대상 {s}", "label_en": f"Subject {s}",
                                   "key_label": "관리번호", "key_label_en": "Number",
                                   "key_pattern": r"^[0-9A-Z-]{4,20}$", "key_arg": "id"}))
    out.append("ledgers:")
    ledger_ids, many = [], set()
    for i in range(n_ledgers):
        s = i % SUBJECTS
        lid = f"ag{i % AGENCIES:02d}.ledger_{i:04d}"
        ledger_ids.append((lid, s))
        rows = "many" if i % 7 == 3 and i >= SUBJECTS else "one"  # every subject type keeps a one-row ledger
        if rows == "many":
            many.add(lid)
        if i % 10 == 9:
            conn = {"kind": "rest", "base_url_env": "BENCH_SCALE_URL", "service_key_env": "BENCH_SCALE_KEY",
                    "operation": f"/api/ledger_{i:04d}", "format": "json", "params": {"id": "key"}}
        else:
            conn = {"kind": "sql", "dsn_env": "BENCH_SCALE_DSN", "table": f"t_{i:04d}"}
        out.append("  - " + _flow({"id": lid, "agency": f"AG{i % AGENCIES:02d}", "name": f"대장 {i}",
                                   "name_en": f"Ledger {i}", "subject": f"subj_{s}", "rows": rows,
                                   "key_column": "id", "cache_ttl": 30, "connector": conn}))
    out.append("fields:")
    fields_of: dict[int, list[str]] = {s: [] for s in range(SUBJECTS)}
    for i, (lid, s) in enumerate(ledger_ids):
        for f in range(n_fields):
            fid = f"subj_{s}.l{i:04d}_f{f:02d}"
            spec: dict[str, Any] = {"id": fid, "ledger": lid, "column": f"c{f:02d}", "type": TYPES[f % len(TYPES)],
                                    "sensitivity": SENSITIVITY[f % len(SENSITIVITY)], "label": f"항목 {i}-{f}",
                                    "label_en": f"Attribute {i}-{f}"}
            if f == 0:
                spec.update(type="string", sensitivity="unique_id", mask="rrn")
            out.append("  - " + _flow(spec))
            if lid not in many:
                fields_of[s].append(fid)
    out.append("links:")
    link_of = {}
    for s in range(SUBJECTS):
        src = next(lid for lid, ss in ledger_ids if ss == s and lid not in many)
        link_of[s] = f"subj_{s}.to_next"
        out.append("  - " + _flow({"id": link_of[s], "ledger": src, "column": "next_id",
                                   "target": f"subj_{(s + 1) % SUBJECTS}", "label": "연결", "label_en": "Link"}))
    catalog = directory / "field_catalog.yaml"
    catalog.write_text("\n".join(out) + "\n", encoding="utf-8")

    policies = directory / "policies"
    tasks_dir = policies / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    for old in tasks_dir.glob("*.yaml"):
        old.unlink()
    (policies / "roles.yaml").write_text("roles:\n" + "".join(
        "  - " + _flow({"id": f"role_{r}", "label": f"역할 {r}", "label_en": f"Role {r}"}) + "\n"
        for r in range(ROLES)), encoding="utf-8")
    for t in range(n_tasks):
        s = t % SUBJECTS
        own, nxt = fields_of[s], fields_of[(s + 1) % SUBJECTS]
        picks: list[Any] = []
        for j in range(FIELDS_PER_TASK):
            if j % 10 == 9:  # every tenth field through the link to the next subject type
                target = nxt[(t * 7 + j * 13) % len(nxt)]
                path = f"{link_of[s]} > {target}"
                # sensitive data shown in full names its own basis (policy lint, as any configuration must pass)
                picks.append({"field": path, "full_value_basis": "벤치마크"} if _sensitive(target) else path)
            else:
                fid = own[(t * 31 + j * 17) % len(own)]
                if fid.endswith("_f00") or _sensitive(fid):
                    picks.append({"field": fid, "full_value_basis": "벤치마크"})
                elif j == 3:
                    picks.append({"field": fid, "consent": True})
                else:
                    picks.append(fid)
        seen, uniq = set(), []
        for p in picks:
            k = p if isinstance(p, str) else p["field"]
            if k not in seen:
                seen.add(k)
                uniq.append(p)
        lines = [f"code: task_{t:04d}", f"name: 사무 {t}", f"name_en: Task {t}", f"legal_basis: 법 제{t}조",
                 f"legal_basis_en: Act, Article {t}", f"subject: subj_{s}", f"roles: [role_{t % ROLES}]", "sections:"]
        for sec in range(3):
            chunk = uniq[sec * 10:(sec + 1) * 10]
            if not chunk:
                continue
            lines += [f"  - title: 구역 {sec}", f"    title_en: Section {sec}", "    fields:"]
            lines += ["      - " + (json.dumps(p, ensure_ascii=False) if isinstance(p, str) else _flow(p))
                      for p in chunk]
        (tasks_dir / f"task_{t:04d}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dsn = directory / "scale.sqlite"
    sqlite3.connect(dsn).close()
    env = {"BENCH_SCALE_DSN": f"sqlite+aiosqlite:///{dsn}", "BENCH_SCALE_URL": "http://127.0.0.1:9",
           "BENCH_SCALE_KEY": "bench-service-key"}
    return catalog, policies, env


if __name__ == "__main__":  # python -m bench.configs DIR: write the peer config there, to look at
    d = Path(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
    cfg = peer_config(d / "peer", rest_connector("BENCH_LEDGER_URL", "BENCH_LEDGER_KEY"))
    print(cfg.catalog, cfg.policies)
    print(scale_config(d / "scale", 20, 50, 16)[:2])
