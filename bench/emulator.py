"""The ledger emulator of the benchmarks: the six ledgers of bench/ledgers.py over HTTP, in two shapes.

- GET /ledger/{name}?key=K : the record as a bare JSON object {key, a1..a10}, after the injected latency
  (404 {"error": "unknown ledger"}, 400 {"error": "key required"}): what the peer servers read, exactly as
  peer-bench's ledgers.py answers.
- GET /portal/{name}?key=K : the same record after the same latency, wrapped in the public data
  portal's JSON envelope (response.header.resultCode, response.body.items.item, totalCount), which
  is what connectors/rest.py reads by default.
- GET /_stats : requests and body bytes served per route (for the fetch-economy figures);
  POST /_stats/reset zeroes them. GET /healthz : ok (no latency).

Latency: LEDGER_LATENCY_MS (default 20) and LEDGER_LATENCY_MS_<NAME> (bench/ledgers.py).

    python -m bench.emulator PORT
"""
from __future__ import annotations

import asyncio
import functools
import json
import sys
from typing import Callable

from aiohttp import web

from .ledgers import LEDGERS, body, latency_ms, record

LATENCY = {n: latency_ms(n) / 1000.0 for n in LEDGERS}  # seconds, read once at start
STATS = {"ledger": 0, "portal": 0, "ledger_bytes": 0, "portal_bytes": 0}


@functools.lru_cache(maxsize=65536)
def portal_body(name: str, key: str) -> bytes:
    doc = {"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL SERVICE."},
                        "body": {"items": {"item": record(name, key)}, "numOfRows": 10, "pageNo": 1,
                                 "totalCount": 1}}}
    return json.dumps(doc).encode()


def _route(route: str, make: Callable[[str, str], bytes]):
    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in LEDGERS:
            return web.json_response({"error": "unknown ledger"}, status=404)
        key = request.query.get("key")
        if not key:
            return web.json_response({"error": "key required"}, status=400)
        await asyncio.sleep(LATENCY[name])
        data = make(name, key)
        STATS[route] += 1
        STATS[f"{route}_bytes"] += len(data)
        return web.Response(body=data, content_type="application/json")
    return handler


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def stats(_request: web.Request) -> web.Response:
    return web.json_response(STATS)


async def reset(_request: web.Request) -> web.Response:
    for k in STATS:
        STATS[k] = 0
    return web.json_response(STATS)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9100
    app = web.Application()
    app.router.add_get("/ledger/{name}", _route("ledger", body))
    app.router.add_get("/portal/{name}", _route("portal", portal_body))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_stats/reset", reset)
    try:  # uvloop keeps the emulator cheap, so it is never the bottleneck
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(f"bench ledger emulator on 127.0.0.1:{port} latency_ms={ {n: s * 1000 for n, s in LATENCY.items()} }",
          flush=True)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
