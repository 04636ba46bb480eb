"""Peer B, the Python stack limit: Starlette + aiohttp, no GraphQL, no policy, no audit.

GET /screen?key=K -> {"data": {ledger: {a1..a5}}} for the six ledgers of bench/ledgers.py, read concurrently
(asyncio.gather) from the emulator at $LEDGER_URL over one keep-alive aiohttp session with no connection
limit: the same JSON the GraphQL peers return, as peer-bench's peer_b.py serves it. oneScreen's throughput
targets are set against it (BENCHMARKS.md).

    LEDGER_URL=http://127.0.0.1:9100 uvicorn bench.peer_b:app --loop uvloop --http httptools
"""
from __future__ import annotations

import asyncio
import contextlib
import os

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .ledgers import LEDGERS, SELECTED


async def fetch_ledger(session: aiohttp.ClientSession, name: str, key: str) -> dict:
    async with session.get(f"/ledger/{name}", params={"key": key}) as resp:
        resp.raise_for_status()
        return await resp.json()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    app.state.session = aiohttp.ClientSession(base_url=os.environ.get("LEDGER_URL", "http://127.0.0.1:9100"),
                                              connector=connector)
    yield
    await app.state.session.close()


async def screen(request: Request) -> JSONResponse:
    key = request.query_params.get("key")
    if not key:
        return JSONResponse({"error": "key required"}, status_code=400)
    session = request.app.state.session
    records = await asyncio.gather(*(fetch_ledger(session, n, key) for n in LEDGERS))
    return JSONResponse({"data": {n: {a: r[a] for a in SELECTED} for n, r in zip(LEDGERS, records)}})


app = Starlette(routes=[Route("/screen", screen)], lifespan=lifespan)
