"""A stand-in for the agency API that serves the building register over HTTP (tests, demo, benchmarks).

It answers like the public data portal's 건축HUB 건축물대장정보 서비스, operation getBrTitleInfo
(GET {PREFIX}/getBrTitleInfo?serviceKey=..&sigunguCd=..&bjdongCd=..[&platGbCd=..&bun=..&ji=..]
[&numOfRows=10&pageNo=1][&_type=json]), from the demo `bldg_title` rows of molit_building.sqlite,
in the portal's envelope (XML by default, JSON with _type=json) and with the portal's result codes:
00 NORMAL SERVICE., 03 NODATA_ERROR, 10 INVALID_REQUEST_PARAMETER_ERROR,
22 LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR, 30 SERVICE_KEY_IS_NOT_REGISTERED_ERROR.
Like the portal's JSON, a page holding one item gives `"item": {...}` and a page holding none `"items": ""`.

Faults are injected at run time, in-process (`AgencyServer.set_faults`) or from another process
(POST /_control/faults {"mode": .., "latency_ms": .., "times": N}); see FAULT_MODES. `times` limits the
fault (mode and latency) to the next N requests. The items of one parcel can be replaced the same way
(`AgencyServer.set_items(pnu, items)`, POST /_control/items {"pnu": .., "items": [..]}) with what real
portals send: blanks (" "), padded text, numbers too long for a number (a JSON number of 22 digits is
sent as a bare number), more items than a client's page limit, extra columns.
GET /_control/stats gives {"requests": .., "max_concurrent": ..}; POST /_control/reset zeroes them.
Control endpoints answer loopback clients only.
The access log never holds the query string (it carries the service key).

    python -m oneScreen.demo.agency_api --demo-dir D --port P --service-key K
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import socket
import sqlite3
import struct
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

PREFIX = "/1613000/BldRgstHubService"
OPERATION = "getBrTitleInfo"
LEDGER_FILE = "molit_building.sqlite"
MAX_ROWS = 100
FAULT_MODES = ("none", "hang", "http500", "html200", "malformed_xml", "malformed_json", "quota", "auth",
               "drop", "reset")
RESULTS = {
    "00": "NORMAL SERVICE.",
    "03": "NODATA_ERROR",
    "10": "INVALID_REQUEST_PARAMETER_ERROR",
    "22": "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR",
    "30": "SERVICE_KEY_IS_NOT_REGISTERED_ERROR",
}
HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>로그인 - 행정망 게이트웨이</title></head>"
             "<body><h1>세션이 만료되었습니다</h1><form action=\"/login\"><input name=\"id\"></form></body></html>\n")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Faults:
    mode: str = "none"
    latency_ms: float = 0
    times: int | None = None  # None: until changed

    @classmethod
    def parse(cls, mode: Any = "none", latency_ms: Any = 0, times: Any = None) -> "Faults":
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or latency_ms < 0:
            raise ValueError("latency_ms must be a number >= 0")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError("times must be an integer >= 1 (or absent: until changed)")
        return cls(mode, latency_ms, times)


@dataclass
class AgencyState:
    """What the server holds: the rows (indexed by parcel), the service key, the faults and the counters."""

    service_key: str
    columns: tuple[str, ...]
    by_parcel: dict[tuple[str, str, str, str, str], list[dict[str, Any]]]
    by_dong: dict[tuple[str, str], list[dict[str, Any]]]
    faults: Faults = field(default_factory=Faults)
    requests: int = 0
    in_flight: int = 0
    max_concurrent: int = 0

    def set_items(self, pnu: str, items: list[dict[str, Any]]) -> None:
        """Answer lookups of parcel `pnu` (by sigunguCd, bjdongCd, platGbCd, bun, ji) with `items` from now on.
        Values are sent as given: strings as text, ints and floats as JSON numbers (XML: their text)."""
        if not (isinstance(pnu, str) and len(pnu) == 19 and pnu.isdigit()):
            raise ValueError("pnu must be a 19-digit parcel number")
        if not isinstance(items, list) or not all(isinstance(i, dict) and all(isinstance(k, str) for k in i)
                                                  for i in items):
            raise ValueError("items must be a list of objects")
        self.by_parcel[(pnu[0:5], pnu[5:10], plat_gb_cd(pnu), pnu[11:15], pnu[15:19])] = [dict(i) for i in items]

    def take_faults(self) -> Faults:
        """The faults for this request; a limited fault counts itself down."""
        f = self.faults
        if f.times is not None:
            self.faults = Faults() if f.times <= 1 else replace(f, times=f.times - 1)
        return f


STATE = web.AppKey("agency_state", AgencyState)


def load_rows(demo_dir: Path) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    """Every bldg_title row, each value as a string (like the API gives it), in the file's order."""
    path = Path(demo_dir) / LEDGER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: generate the demo ledgers first")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        cur = conn.execute("SELECT * FROM bldg_title ORDER BY rowid")
        columns = tuple(d[0] for d in cur.description)
        rows = [{c: "" if v is None else str(v) for c, v in zip(columns, r)} for r in cur]
    finally:
        conn.close()
    return columns, rows


def plat_gb_cd(pnu: str) -> str:
    """The API's 대지구분코드 from a PNU: '0' 대지 (PNU digit 11 is '1'), '1' 산 ('2')."""
    return {"1": "0", "2": "1"}.get(pnu[10:11], "")


def make_state(demo_dir: Path, service_key: str) -> AgencyState:
    columns, rows = load_rows(demo_dir)
    by_parcel: dict[tuple[str, str, str, str, str], list[dict[str, str]]] = {}
    by_dong: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in rows:
        pnu = r.get("pnu", "")
        by_parcel.setdefault((r["sigunguCd"], r["bjdongCd"], plat_gb_cd(pnu), r["bun"], r["ji"]), []).append(r)
        by_dong.setdefault((r["sigunguCd"], r["bjdongCd"]), []).append(r)
    return AgencyState(service_key, columns, by_parcel, by_dong)


def make_app(demo_dir: Path, service_key: str) -> web.Application:
    """The agency API application over the demo ledgers in `demo_dir`, accepting `service_key` only."""
    if not service_key:
        raise ValueError("the agency API needs a non-empty service key")
    app = web.Application()
    app[STATE] = make_state(Path(demo_dir), service_key)
    app.router.add_get(f"{PREFIX}/{OPERATION}", _get_title_info)
    app.router.add_get("/_control/faults", _get_faults)
    app.router.add_post("/_control/faults", _set_faults)
    app.router.add_post("/_control/items", _set_items)
    app.router.add_get("/_control/stats", _get_stats)
    app.router.add_post("/_control/reset", _reset_stats)
    return app


# ---------------------------------------------------------------- the API
async def _get_title_info(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    st.requests += 1
    st.in_flight += 1
    st.max_concurrent = max(st.max_concurrent, st.in_flight)
    try:
        faults = st.take_faults()
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.mode != "none":
            return await _FAULTS[faults.mode](request)
        return _answer(request, *_lookup(request, st))
    finally:
        st.in_flight -= 1


def _lookup(request: web.Request, st: AgencyState) -> tuple[str, list[dict[str, str]], int, int, int]:
    """(resultCode, items of the page, numOfRows, pageNo, totalCount) for the request's parameters."""
    q = request.query
    key = q.get("serviceKey", "")
    if not key or not hmac.compare_digest(key.encode(), st.service_key.encode()):
        return "30", [], 10, 1, 0
    try:
        num = min(int(q.get("numOfRows") or 10), MAX_ROWS)
        page = int(q.get("pageNo") or 1)
    except ValueError:
        return "10", [], 10, 1, 0
    sigungu, bjdong = q.get("sigunguCd", ""), q.get("bjdongCd", "")
    if not sigungu or not bjdong or num < 1 or page < 1:
        return "10", [], max(num, 1), max(page, 1), 0
    plat, bun, ji = q.get("platGbCd", ""), _pad(q.get("bun", "")), _pad(q.get("ji", ""))
    if plat and bun and ji:
        found = st.by_parcel.get((sigungu, bjdong, plat, bun, ji), [])
    else:
        found = [r for r in st.by_dong.get((sigungu, bjdong), [])
                 if (not plat or plat_gb_cd(r["pnu"]) == plat) and (not bun or r["bun"] == bun)
                 and (not ji or r["ji"] == ji)]
    if not found:
        return "03", [], num, page, 0
    return "00", found[(page - 1) * num: page * num], num, page, len(found)


def _pad(number: str) -> str:
    return number.zfill(4) if number.isdigit() else number


def _answer(request: web.Request, code: str, items: list[dict[str, str]] | None = None,
            num: int = 10, page: int = 1, total: int = 0) -> web.Response:
    items = items or []
    if request.query.get("_type", "").lower() == "json":
        item: Any = items[0] if len(items) == 1 else items  # the portal's XML->JSON: one item is an object
        doc = {"response": {"header": {"resultCode": code, "resultMsg": RESULTS[code]},
                            "body": {"items": {"item": item} if items else "", "numOfRows": num,
                                     "pageNo": page, "totalCount": total}}}
        return web.Response(text=json.dumps(doc, ensure_ascii=False), content_type="application/json",
                            charset="utf-8")
    parts = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?><response><header><resultCode>', code,
             "</resultCode><resultMsg>", RESULTS[code], "</resultMsg></header><body><items>"]
    for it in items:
        parts.append("<item>")
        parts.extend(f"<{k}>{escape(str(v))}</{k}>" for k, v in it.items())
        parts.append("</item>")
    parts.append(f"</items><numOfRows>{num}</numOfRows><pageNo>{page}</pageNo>"
                 f"<totalCount>{total}</totalCount></body></response>")
    return web.Response(text="".join(parts), content_type="application/xml", charset="utf-8")


# ---------------------------------------------------------------- faults
async def _hang(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(24 * 3600)  # cancelled when the server shuts down
    raise web.HTTPServiceUnavailable()


async def _http500(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text="Internal Server Error", content_type="text/plain")


async def _html200(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200, text=HTML_PAGE, content_type="text/html", charset="utf-8")


async def _malformed_xml(request: web.Request) -> web.StreamResponse:
    body = ('<?xml version="1.0" encoding="UTF-8"?><response><header><resultCode>00</resultCode>'
            "<resultMsg>NORMAL SERVICE.</resultMsg></header><body><items><item><bldNm>x</bld")
    return web.Response(text=body, content_type="application/xml", charset="utf-8")


async def _malformed_json(request: web.Request) -> web.StreamResponse:
    body = '{"response": {"header": {"resultCode": "00", "resultMsg": "NORMAL SERVICE."}, "body": {"items": {"item": [{'
    return web.Response(text=body, content_type="application/json", charset="utf-8")


async def _quota(request: web.Request) -> web.StreamResponse:
    return _answer(request, "22")


async def _auth(request: web.Request) -> web.StreamResponse:
    return _answer(request, "30")


async def _drop(request: web.Request) -> web.StreamResponse:
    """Headers and part of the body, then the connection is cut."""
    st = request.app[STATE]
    full = _answer(request, *_lookup(request, st))
    body = full.body if isinstance(full.body, bytes) else b""
    resp = web.StreamResponse(status=200, headers={"Content-Type": full.headers["Content-Type"]})
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    await asyncio.sleep(0.01)  # let the first part leave before the cut
    _abort(request, reset=False)
    return resp


async def _reset(request: web.Request) -> web.StreamResponse:
    """The connection is closed at once (TCP RST), before any byte of the answer."""
    _abort(request, reset=True)
    return web.Response()


def _abort(request: web.Request, *, reset: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if reset and sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


_FAULTS: dict[str, Callable[[web.Request], Any]] = {
    "hang": _hang, "http500": _http500, "html200": _html200, "malformed_xml": _malformed_xml,
    "malformed_json": _malformed_json, "quota": _quota, "auth": _auth, "drop": _drop, "reset": _reset,
}


# ---------------------------------------------------------------- control
def _loopback_only(request: web.Request) -> None:
    if request.remote not in ("127.0.0.1", "::1"):
        raise web.HTTPForbidden(text="control endpoints answer loopback clients only")


def _faults_json(f: Faults) -> dict[str, Any]:
    return {"mode": f.mode, "latency_ms": f.latency_ms, "times": f.times}


async def _get_faults(request: web.Request) -> web.Response:
    _loopback_only(request)
    return web.json_response(_faults_json(request.app[STATE].faults))


async def _set_faults(request: web.Request) -> web.Response:
    _loopback_only(request)
    try:
        body = await request.json()
        if not isinstance(body, dict) or set(body) - {"mode", "latency_ms", "times"}:
            raise ValueError("expected an object with mode, latency_ms, times")
        faults = Faults.parse(**body)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE].faults = faults
    return web.json_response(_faults_json(faults))


async def _set_items(request: web.Request) -> web.Response:
    _loopback_only(request)
    try:
        body = await request.json()
        if not isinstance(body, dict) or set(body) != {"pnu", "items"}:
            raise ValueError("expected an object with pnu and items")
        request.app[STATE].set_items(body["pnu"], body["items"])
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"pnu": body["pnu"], "items": len(body["items"])})


async def _get_stats(request: web.Request) -> web.Response:
    _loopback_only(request)
    st = request.app[STATE]
    return web.json_response({"requests": st.requests, "max_concurrent": st.max_concurrent})


async def _reset_stats(request: web.Request) -> web.Response:
    _loopback_only(request)
    st = request.app[STATE]
    st.requests = st.max_concurrent = 0
    return web.json_response({"requests": 0, "max_concurrent": 0})


# ---------------------------------------------------------------- running it
class _AccessLogger(AbstractAccessLogger):
    """Method, path (never the query string: it holds the service key), status, time."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("agency API %s %s -> %s in %.1f ms", request.method, request.path,
                          response.status, time * 1000)


def _runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, access_log_class=_AccessLogger, access_log=log, shutdown_timeout=0.5)


def _url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class AgencyServer:
    """The agency API on loopback for the time of an `async with` block: `srv.url`, `srv.set_faults(...)`."""

    def __init__(self, demo_dir: Path, service_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = make_app(demo_dir, service_key)
        self.host, self.port = host, port
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> AgencyState:
        return self.app[STATE]

    @property
    def requests(self) -> int:
        """getBrTitleInfo calls since the start (or the last reset_stats)."""
        return self.state.requests

    @property
    def max_concurrent(self) -> int:
        return self.state.max_concurrent

    def set_faults(self, mode: str = "none", latency_ms: float = 0, times: int | None = None) -> None:
        self.state.faults = Faults.parse(mode, latency_ms, times)

    def set_items(self, pnu: str, items: list[dict[str, Any]]) -> None:
        """Serve `items` for parcel `pnu` from now on (see AgencyState.set_items)."""
        self.state.set_items(pnu, items)

    def reset_stats(self) -> None:
        self.state.requests = self.state.max_concurrent = 0

    async def __aenter__(self) -> "AgencyServer":
        self._runner = _runner(self.app)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.url = _url(self._runner)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def start_in_thread(demo_dir: Path, service_key: str, host: str = "127.0.0.1",
                    port: int = 0) -> tuple[str, Callable[[], None]]:
    """Run the agency API in a daemon thread with its own event loop; return (base_url, stop) once it listens."""
    app = make_app(demo_dir, service_key)  # load errors surface here, in the caller's thread
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        runner = _runner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            box["url"], box["stop"] = _url(runner), asyncio.Event()
            ready.set()
            await box["stop"].wait()
        finally:
            await runner.cleanup()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # noqa: BLE001  (handed to the starting thread)
            box["error"] = exc
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=run, name="agency-api", daemon=True)
    thread.start()
    if not ready.wait(30) or "url" not in box:
        raise RuntimeError(f"the agency API did not start on {host}:{port}") from box.get("error")

    def stop() -> None:
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(box["stop"].set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        thread.join(10)

    return box["url"], stop


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m oneScreen.demo.agency_api", description=__doc__.split("\n")[0])
    p.add_argument("--demo-dir", type=Path, required=True, help="directory holding molit_building.sqlite")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--service-key", required=True)
    args = p.parse_args(argv)

    async def serve() -> None:
        async with AgencyServer(args.demo_dir, args.service_key, args.host, args.port) as srv:
            print(f"agency API listening on {srv.url}{PREFIX}/{OPERATION}", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()


def start_for_demo(catalog_path: Path, env: dict[str, str], demo_dir: Path) -> Callable[[], None] | None:
    """Demo mode: start this server in-process for the catalog's REST ledgers marked `demo_server: agency_api`
    (loopback only), unless their base URLs are set already. Sets their base-URL and service-key variables in
    `env`; returns a stop function, or None when nothing was started."""
    import secrets

    from ..catalog import load

    rest = [l.connector for l in load(catalog_path).ledgers.values()
            if l.connector.get("demo_server") == "agency_api"]
    if not rest or all(env.get(c["base_url_env"]) for c in rest):
        return None
    service_key = secrets.token_urlsafe(24)
    url, stop = start_in_thread(demo_dir, service_key)
    for c in rest:
        env.setdefault(c["base_url_env"], url)
        env.setdefault(c["service_key_env"], service_key)
    return stop
