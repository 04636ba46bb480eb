"""The raw JSON endpoint: the ceiling of a fully cached screen on this Python stack.

GET /screen?key=K -> the same JSON as peer B ({"data": {ledger: {a1..a5}}}), built per request
from records held in memory (no ledger call, no GraphQL, no policy, no audit). Starlette on
uvicorn (uvloop + httptools), like peer B. The all-cached oneScreen screen is compared with it.

    uvicorn bench.raw_endpoint:app
"""
from __future__ import annotations

import functools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .ledgers import LEDGERS, SELECTED, record


@functools.lru_cache(maxsize=65536)
def records(key: str) -> tuple[dict, ...]:
    return tuple(record(n, key) for n in LEDGERS)


async def screen(request: Request) -> JSONResponse:
    key = request.query_params.get("key")
    if not key:
        return JSONResponse({"error": "key required"}, status_code=400)
    data = {n: {a: r[a] for a in SELECTED} for n, r in zip(LEDGERS, records(key))}
    return JSONResponse({"data": data})


app = Starlette(routes=[Route("/screen", screen)])
