"""An open-loop load generator: requests sent at a constant rate whatever the server answers (bench/openloop.py).

    python -m bench.arrivals URL --rate 400 --seconds 10 [--body FILE] [-H 'Name: value'] [--closed C]

Request i is due at start + i/rate and is sent then, on a connection of its own if every open one is busy
(aiohttp, no connection limit), without waiting for any earlier answer. Its latency is measured from the
moment it was DUE, not from when it went out: if the generator itself falls behind (its CPU is shared), the
delay counts against the server's figure rather than hiding (no coordinated omission), and the lag is printed
so a late generator is visible. Every request asks for another subject (the first "K1" of the body or URL
becomes K<n>, as bench/distinct.lua does), so no server shares reads between screens.

Why not wrk, h2load or httperf: wrk is closed-loop (each connection waits for its answer: the rate falls as the
server slows, which hides the queue a caseworker meets); h2load's and httperf's --rate is a rate of new
connections (each carrying a fixed number of requests), not of requests over kept-alive connections, and
httperf reports no percentiles. This generator pins itself to its own CPU (os.sched_setaffinity) when told to.

--closed C: instead, C workers each sending the next request when the last is answered (a closed loop like wrk,
for a capacity figure where wrk is missing). Prints one JSON line: counts, rates, p50/p99/p99.9/max in ms,
the generator's lag behind the schedule, and the status codes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def subject(template: bytes, n: int) -> bytes:
    return re.sub(rb"K1(?!\d)", f"K{n}".encode(), template, count=1)


async def run(url: str, rate: float, seconds: float, body: bytes | None, headers: dict[str, str],
              closed: int = 0, first: int = 1_000_001, timeout: float = 10.0) -> dict:
    conn = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    lat: list[float] = []
    lag: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    hdr = dict(headers)
    if body is not None:
        hdr.setdefault("Content-Type", "application/json")
        hdr.setdefault("Accept", "application/json")
    tmo = aiohttp.ClientTimeout(total=timeout)
    loop = asyncio.get_running_loop()

    async with aiohttp.ClientSession(connector=conn, timeout=tmo) as session:
        async def one(n: int, due: float) -> None:
            nonlocal errors
            lag.append(loop.time() - due)
            try:
                if body is not None:
                    req = session.post(url, data=subject(body, n), headers=hdr)
                else:
                    req = session.get(subject(url.encode(), n).decode(), headers=hdr)
                async with req as resp:
                    await resp.read()
                    statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
                    if resp.status == 200:
                        lat.append(loop.time() - due)
                    else:
                        errors += 1
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                errors += 1
                statuses["error"] = statuses.get("error", 0) + 1

        t0 = loop.time() + 0.05
        sent = 0
        if closed:
            stop = t0 + seconds

            async def worker(w: int) -> None:
                nonlocal sent
                await asyncio.sleep(max(0.0, t0 - loop.time()))
                while loop.time() < stop:
                    sent += 1
                    await one(first + sent, loop.time())

            await asyncio.gather(*(worker(w) for w in range(closed)))
            end_send = loop.time()
        else:
            total = int(rate * seconds)
            tasks: set[asyncio.Task] = set()
            while sent < total:
                now = loop.time()
                due = t0 + sent / rate
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                while sent < total and t0 + sent / rate <= now:  # every request now due goes out
                    t = loop.create_task(one(first + sent, t0 + sent / rate))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                    sent += 1
            end_send = loop.time()
            if tasks:
                await asyncio.wait(set(tasks), timeout=timeout + 1)
        end = loop.time()
    lat.sort()
    lag.sort()
    ms = 1000.0
    return {"mode": f"closed c={closed}" if closed else "open", "rate": rate, "seconds": seconds,
            "sent": sent, "ok": len(lat), "errors": errors, "statuses": statuses,
            "sent_rate": sent / max(end_send - t0, 1e-9), "ok_rate": len(lat) / max(end - t0, 1e-9),
            "p50_ms": percentile(lat, 50) * ms, "p99_ms": percentile(lat, 99) * ms,
            "p999_ms": percentile(lat, 99.9) * ms, "max_ms": (lat[-1] if lat else 0.0) * ms,
            "lag_p99_ms": percentile(lag, 99) * ms, "lag_max_ms": (lag[-1] if lag else 0.0) * ms}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.arrivals", description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second (open loop)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--body", help="POST this file's bytes (the first K1 replaced per request); else GET")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    p.add_argument("--closed", type=int, default=0, help="a closed loop of this many workers instead")
    p.add_argument("--cpu", type=int, help="pin this process to this CPU (os.sched_setaffinity)")
    p.add_argument("--first", type=int, default=1_000_001, help="the first subject number")
    a = p.parse_args(argv)
    if a.cpu is not None and hasattr(os, "sched_setaffinity") and a.cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {a.cpu})
    headers = dict(h.split(": ", 1) for h in a.header)
    body = open(a.body, "rb").read() if a.body else None
    coro = run(a.url, a.rate, a.seconds, body, headers, a.closed, a.first)
    try:
        import uvloop
        out = uvloop.run(coro)
    except ImportError:
        out = asyncio.run(coro)
    print("ARRIVALS " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
