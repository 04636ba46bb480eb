"""The ledger emulator of the benchmarks: peer-bench's six REST ledgers, in two shapes, from one process.

- GET /ledger/{name}?key=K : exactly ../shared/peer-bench/ledgers.py (its own handler): a bare JSON
  object {key, a1..a10}, after the injected latency. The peers (A, B, C) read this.
- GET /portal/{name}?key=K : the same record after the same latency, wrapped in the public data
  portal's JSON envelope (response.header.resultCode, response.body.items.item, totalCount), which
  is what connectors/rest.py reads. oneScreen reads this while its REST connector cannot read a
  bare object (see BENCHMARKS.md, "Overhead and peers").
- GET /_stats : requests and body bytes served per route (for the fetch-economy figures);
  POST /_stats/reset zeroes them. GET /healthz : ok.

Latency: LEDGER_LATENCY_MS (default 20) and LEDGER_LATENCY_MS_<NAME>, as ledgers.py.

    python -m bench.emulator PORT
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import sys

from aiohttp import web

sys.dont_write_bytecode = True  # keep ../shared/peer-bench free of __pycache__
sys.path.insert(0, os.environ.get("PEER_BENCH_DIR") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                                     "shared", "peer-bench"))
import ledgers  # noqa: E402  (peer-bench's ledgers.py: LEDGERS, LAT, record, body, ledger, healthz)

STATS = {"ledger": 0, "portal": 0, "ledger_bytes": 0, "portal_bytes": 0}


@functools.lru_cache(maxsize=65536)
def portal_body(name: str, key: str) -> bytes:
    doc = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL SERVICE."},
                        "body": {"items": {"item": ledgers.record(name, key)}, "numOfRows": 10, "pageNo": 1,
                                 "totalCount": 1}}}
    return json.dumps(doc).encode()


async def bare(request: web.Request) -> web.StreamResponse:
    resp = await ledgers.ledger(request)
    STATS["ledger"] += 1
    STATS["ledger_bytes"] += len(resp.body or b"")
    return resp


async def portal(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ledgers.LEDGERS:
        return web.json_response({"error": "unknown ledger"}, status=404)
    key = request.query.get("key")
    if not key:
        return web.json_response({"error": "key required"}, status=400)
    await asyncio.sleep(ledgers.LAT[name] / 1000.0)
    body = portal_body(name, key)
    STATS["portal"] += 1
    STATS["portal_bytes"] += len(body)
    return web.Response(body=body, content_type="application/json")


async def stats(_request: web.Request) -> web.Response:
    return web.json_response(STATS)


async def reset(_request: web.Request) -> web.Response:
    for k in STATS:
        STATS[k] = 0
    return web.json_response(STATS)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9100
    app = web.Application()
    app.router.add_get("/ledger/{name}", bare)
    app.router.add_get("/portal/{name}", portal)
    app.router.add_get("/healthz", ledgers.healthz)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_stats/reset", reset)
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(f"bench ledger emulator on 127.0.0.1:{port} latency_ms={ledgers.LAT}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
