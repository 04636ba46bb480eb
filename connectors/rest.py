"""REST connector (aiohttp): reads a ledger through an agency's lookup API, one GET per subject key.

Made for the public data portal's (data.go.kr) style: a service key in the query string, a
response envelope with a result code, items, a total count and numOfRows/pageNo paging, XML or
JSON. XML is parsed with defusedxml (no DTD, no entities, no external references). The service
key, the subject keys, the values and the raw bodies never reach an error, a log line or a
traceback (aiohttp errors, whose text can carry the URL, are replaced, not chained).

Config (the ledger's `connector:` mapping):

    kind: rest
    base_url_env: ONESCREEN_URL_MOLIT_BLDG_HUB     # required: variable holding the base URL
    service_key_env: ONESCREEN_KEY_MOLIT_BLDG_HUB  # required: variable holding the service key
    operation: /1613000/BldRgstHubService/getBrTitleInfo   # required: path after the base URL
    format: xml            # xml (default) or json (sends _type=json)
    params:                # required: request parameter -> template over the subject key
      sigunguCd: "key[0:5]"                                 #   a slice of the key
      platGbCd: {of: "key[10:11]", map: {"1": "0", "2": "1"}} #   a slice, mapped
      # also "key" (the whole key) and {const: "..."}
    items_path: response.body.items.item          # default as shown; null: the document is the item(s)
    result_code_path: response.header.resultCode   # default as shown
    result_codes: {ok: ["00"], no_data: ["03"], quota: ["22"], auth: ["20", "30", "31", "32"],
                   retry: ["01", "02", "04", "05"]}  # default as shown; other codes are errors
    total_count_path: response.body.totalCount     # default as shown; pages follow while short of it
    page_size: 100         # numOfRows (1..1000)
    max_pages: 10          # pages per key at most (more: the key's rows come back Truncated, with the total)
    max_connections: 10    # default: the spec's max_connections
    request_timeout: 5     # seconds per HTTP request (default 10)
    sample_key: "1111010100100010000"  # a key with data, for columns()

Keys starting with `demo_` are left to the service. A key that does not fit the templates (too
short, or a slice the map lacks) has no rows and costs no request. A service key given
percent-encoded (the portal's "encoding" key) is decoded once, so it is not encoded twice.
Redirects are not followed (the service key would go along). When the envelope has no result
code, the portal's fault envelope (OpenAPI_ServiceResponse.cmmMsgHeader.returnReasonCode) is read.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any, Mapping, Sequence
from urllib.parse import unquote

import aiohttp
import defusedxml
import defusedxml.ElementTree as SafeET
from xml.etree.ElementTree import Element, ParseError
from yarl import URL

from .base import ConnectorConfigError, ConnectorError, Row, SourceSpec, Truncated

log = logging.getLogger(__name__)

DEFAULT_RESULT_CODES = {"ok": ("00",), "no_data": ("03",), "quota": ("22",), "auth": ("20", "30", "31", "32"),
                        "retry": ("01", "02", "04", "05")}
PORTAL_FAULT_CODE_PATH = "OpenAPI_ServiceResponse.cmmMsgHeader.returnReasonCode"
RESERVED_PARAMS = frozenset({"serviceKey", "numOfRows", "pageNo", "_type"})
CONFIG_KEYS = frozenset({"kind", "base_url_env", "service_key_env", "operation", "format", "params", "items_path",
                         "result_code_path", "result_codes", "total_count_path", "page_size", "max_pages",
                         "max_connections", "request_timeout", "sample_key"})
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
_SLICE = re.compile(r"key(?:\[(\d*):(\d*)\])?")
_CODE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


class _Template:
    """How one request parameter is made from a subject key; None when the key does not fit."""

    def __init__(self, ledger: str, name: str, spec: Any) -> None:
        where = f"ledger {ledger}: connector.params.{name}"
        self.const: str | None = None
        self.map: dict[str, str] | None = None
        self.start, self.stop = 0, None
        if isinstance(spec, Mapping):
            if set(spec) == {"const"} and isinstance(spec["const"], (str, int)):
                self.const = str(spec["const"])
                return
            if set(spec) != {"of", "map"} or not isinstance(spec["map"], Mapping) or not spec["map"]:
                raise ConnectorConfigError(f"{where}: a mapping template is {{of: \"key[a:b]\", map: {{...}}}} "
                                           f"or {{const: \"...\"}}")
            self.map = {str(k): str(v) for k, v in spec["map"].items()}
            spec = spec["of"]
        m = _SLICE.fullmatch(spec) if isinstance(spec, str) else None
        if m is None:
            raise ConnectorConfigError(f"{where}: expected \"key\", \"key[a:b]\", {{of: ..., map: ...}} "
                                       f"or {{const: ...}}, got {spec!r}")
        if m.group(1) is not None or m.group(2) is not None:
            self.start = int(m.group(1) or 0)
            self.stop = int(m.group(2)) if m.group(2) else None
            if self.stop is not None and self.stop <= self.start:
                raise ConnectorConfigError(f"{where}: empty slice {spec!r}")

    def render(self, key: str) -> str | None:
        if self.const is not None:
            return self.const
        if len(key) < (self.stop if self.stop is not None else self.start + 1):
            return None
        part = key[self.start:self.stop]
        return part if self.map is None else self.map.get(part)


def _env(spec: SourceSpec, entry: str) -> str:
    name = spec.config.get(entry)
    if not isinstance(name, str) or not name:
        raise ConnectorConfigError(f"ledger {spec.ledger}: rest connector needs '{entry}' "
                                   f"(an environment variable name)")
    value = spec.env.get(name)
    if not value:
        raise ConnectorConfigError(f"ledger {spec.ledger}: environment variable {name} ({entry}) is not set")
    return value


def _number(spec: SourceSpec, entry: str, default: float, lo: float, hi: float, integer: bool = True) -> Any:
    value = spec.config.get(entry, default)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not lo <= value <= hi:
        what = "an integer" if integer else "a number"
        raise ConnectorConfigError(f"ledger {spec.ledger}: connector.{entry} must be {what} "
                                   f"from {lo:g} to {hi:g}, got {value!r}")
    return value


def _path(spec: SourceSpec, entry: str, default: str | None) -> tuple[str, ...] | None:
    value = spec.config.get(entry, default)
    if value is None:
        return None
    if not isinstance(value, str) or not all(value.split(".")):
        raise ConnectorConfigError(f"ledger {spec.ledger}: connector.{entry} must be a dotted path "
                                   f"such as response.body.items.item, got {value!r}")
    return tuple(value.split("."))


class RestConnector:
    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        cfg, ledger = spec.config, spec.ledger
        unknown = sorted(k for k in cfg if k not in CONFIG_KEYS and not str(k).startswith("demo_"))
        if unknown:
            raise ConnectorConfigError(f"ledger {ledger}: unknown rest connector entries "
                                       f"{', '.join(map(str, unknown))} "
                                       f"(known: {', '.join(sorted(CONFIG_KEYS))})")
        operation = cfg.get("operation")
        if not isinstance(operation, str) or not operation.startswith("/") or "?" in operation:
            raise ConnectorConfigError(f"ledger {ledger}: connector.operation must be a path starting with '/' "
                                       f"and without a query string")
        self.format = cfg.get("format", "xml")
        if self.format not in ("xml", "json"):
            raise ConnectorConfigError(f"ledger {ledger}: connector.format must be xml or json, got {self.format!r}")
        params = cfg.get("params")
        if not isinstance(params, Mapping) or not params:
            raise ConnectorConfigError(f"ledger {ledger}: connector.params must map request parameters "
                                       f"to key templates")
        reserved = sorted(RESERVED_PARAMS & set(params))
        if reserved:
            raise ConnectorConfigError(f"ledger {ledger}: connector.params.{reserved[0]} is set "
                                       f"by the connector itself")
        self.params = {str(n): _Template(ledger, str(n), t) for n, t in params.items()}
        self.items_path = _path(spec, "items_path", "response.body.items.item")
        self.result_code_path = _path(spec, "result_code_path", "response.header.resultCode")
        self.total_count_path = _path(spec, "total_count_path", "response.body.totalCount")
        self.result_codes = self._result_codes(cfg.get("result_codes"))
        self.page_size = _number(spec, "page_size", 100, 1, 1000)
        self.max_pages = _number(spec, "max_pages", 10, 1, 1000)
        self.max_connections = _number(spec, "max_connections", spec.max_connections, 1, 1000)
        self.request_timeout = _number(spec, "request_timeout", 10, 0.001, 3600, integer=False)
        sample = cfg.get("sample_key")
        if sample is not None and not isinstance(sample, str):
            raise ConnectorConfigError(f"ledger {ledger}: connector.sample_key must be a string")
        self.sample_key: str | None = sample
        # Secrets and endpoints: only from the environment, checked last (the config is fixed first).
        base = _env(spec, "base_url_env")
        try:
            url = URL(base.rstrip("/") + operation)
        except ValueError:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host or url.query_string:
            raise ConnectorConfigError(f"ledger {ledger}: environment variable {cfg['base_url_env']} must hold "
                                       f"an http(s) base URL without a query string")
        self.url = url
        key = _env(spec, "service_key_env")
        self._service_key = unquote(key) if _PERCENT.search(key) else key
        self._fixed = {"serviceKey": self._service_key, "numOfRows": str(self.page_size)}
        if self.format == "json":
            self._fixed["_type"] = "json"
        # One timer per read: when the caller abandons every fetch within `budget` seconds anyway (the gateway),
        # a per-request timer that cannot fire first is left out (columns() keeps the session's).
        self._timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        self._fetch_timeout = aiohttp.ClientTimeout() if spec.budget is not None \
            and self.request_timeout >= spec.budget else self._timeout
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def _result_codes(self, value: Any) -> dict[str, frozenset[str]]:
        where = f"ledger {self.spec.ledger}: connector.result_codes"
        if value is None:
            value = DEFAULT_RESULT_CODES
        if not isinstance(value, Mapping):
            raise ConnectorConfigError(f"{where} must map ok / no_data / quota / auth / retry to lists of codes")
        unknown = sorted(str(k) for k in value if k not in DEFAULT_RESULT_CODES)
        if unknown:
            raise ConnectorConfigError(f"{where}.{unknown[0]}: unknown category "
                                       f"(known: {', '.join(DEFAULT_RESULT_CODES)})")
        out: dict[str, frozenset[str]] = {}
        for cat in DEFAULT_RESULT_CODES:
            codes = value.get(cat, ())
            if isinstance(codes, (str, int)) or not all(isinstance(c, (str, int)) for c in codes):
                raise ConnectorConfigError(f"{where}.{cat} must be a list of codes")
            out[cat] = frozenset(str(c) for c in codes)
        if not out["ok"]:
            raise ConnectorConfigError(f"{where}.ok must name at least one code")
        return out

    # ------------------------------------------------------------ protocol
    async def fetch(self, keys: Sequence[str], columns: Sequence[str]) -> dict[str, list[Row]]:
        wanted = {k: p for k in dict.fromkeys(keys) if (p := self._request_params(k)) is not None}
        results: dict[str, list[dict[str, Any]]] = {}
        if len(wanted) == 1:  # one subject (most screens): no task group
            [(k, params)] = wanted.items()
            found = {k: await self._items(k, params, self._fetch_timeout)}
        else:
            failure: BaseException | None = None
            try:
                async with asyncio.TaskGroup() as tg:
                    tasks = {k: tg.create_task(self._items(k, p, self._fetch_timeout)) for k, p in wanted.items()}
            except BaseExceptionGroup as group:
                failure = _first_failure(group)
            if failure is not None:
                raise failure  # outside the except block: no chained context
            found = {k: task.result() for k, task in tasks.items()}
        paths = [(c, c.split(".")) for c in columns]
        for k, items in found.items():
            if items:
                rows = [{c: _get(item, path) for c, path in paths} for item in items]
                results[k] = Truncated(rows, items.total) if isinstance(items, Truncated) else rows
        return results

    async def search(self, equals: Mapping[str, Any], contains: Mapping[str, str],
                     columns: Sequence[str], limit: int, order: Sequence[str] = ()) -> list[Row]:
        raise ConnectorError("this ledger cannot be searched", reason_ko="이 대장은 검색할 수 없습니다")

    async def columns(self) -> dict[str, str]:
        if not self.sample_key:
            raise ConnectorError(f"ledger {self.spec.ledger}: set connector.sample_key to list the API's item paths")
        if self._request_params(self.sample_key) is None:
            raise ConnectorError(f"ledger {self.spec.ledger}: connector.sample_key does not fit connector.params")
        items = await self._items(self.sample_key)
        if not items:
            raise ConnectorError(f"ledger {self.spec.ledger}: the agency API has no data for connector.sample_key")
        out: dict[str, str] = {}
        for item in items:
            _flatten(item, "", out)
        return out

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # ------------------------------------------------------------ one key
    def _request_params(self, key: str) -> dict[str, str] | None:
        out = {}
        for name, template in self.params.items():
            value = template.render(str(key))
            if value is None:
                return None
            out[name] = value
        return out

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session_loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                timeout=self._timeout,
                headers={"Accept": "application/json" if self.format == "json" else "application/xml",
                         "User-Agent": "oneScreen-rest-connector"})
        return self._session

    async def _items(self, key: str, params: dict[str, str] | None = None,
                     timeout: aiohttp.ClientTimeout | None = None) -> list[dict[str, Any]]:
        """Every item for one key, following pages while fewer than the total count arrived.

        One GET per page, in line (a coroutine of its own per GET was paid again on every resumption of the
        read). Every failure becomes a ConnectorError raised outside any except block."""
        params = self._request_params(key) if params is None else params
        assert params is not None
        query = {**params, **self._fixed}
        session, timeout = self._client(), timeout or self._timeout
        items: list[dict[str, Any]] = []
        for page in range(1, self.max_pages + 1):
            started = time.perf_counter()
            failure: ConnectorError | None = None
            phase = "connect"
            try:
                async with session.get(self.url, params={**query, "pageNo": str(page)},
                                       allow_redirects=False, timeout=timeout) as resp:
                    phase = "body"
                    status, ctype, length = resp.status, resp.content_type, resp.content_length
                    if status >= 300:
                        failure = ConnectorError(f"HTTP {status} from agency API",
                                                 retryable=status >= 500 or status == 429,
                                                 reason_ko=f"기관 API가 HTTP {status} 오류로 응답했습니다")
                    elif length is not None and length <= MAX_RESPONSE_BYTES:
                        body = await resp.read()  # the parser stops at Content-Length: bounded
                    else:
                        body = await _read_limited(resp)
            except (TimeoutError, _TooLarge, aiohttp.ClientError, OSError, ValueError) as exc:
                failure = self._failure(exc, phase)
            if log.isEnabledFor(logging.DEBUG):  # skip building the record's fields on every read otherwise
                ms = round((time.perf_counter() - started) * 1000, 1)
                log.debug("agency API call", extra={"ledger": self.spec.ledger, "operation": self.url.path,
                                                    "page": page, "ms": ms,
                                                    "failed": failure.reason if failure else None})
            if failure is not None:
                raise failure
            doc = self._parse(body, ctype)
            status = self._status(doc)
            if status == "no_data":
                return items
            found = _items_at(doc, self.items_path)
            total = self._total(doc)
            if found is None and page == 1 and total:
                where = ".".join(self.items_path or ())
                raise ConnectorError(f"agency API response has no items at {where}",
                                     reason_ko=f"기관 API 응답의 {where}에 항목이 없습니다")
            found = found or []
            items.extend(found)
            if total is None or len(items) >= total or not found:
                return items
        log.warning("agency API has more pages than connector.max_pages: the key's rows are marked truncated",
                    extra={"ledger": self.spec.ledger,
                           "reason": f"{len(items)} of {total} rows read (max_pages {self.max_pages}, "
                                     f"page_size {self.page_size})"})
        return Truncated(items, total)

    def _failure(self, exc: BaseException, phase: str) -> ConnectorError:
        """The ConnectorError for what a GET raised (aiohttp's own errors can carry the URL: never passed on)."""
        if isinstance(exc, TimeoutError):
            return ConnectorError(f"agency API did not answer within {self.request_timeout:g}s", retryable=True,
                                  reason_ko=f"기관 API가 {self.request_timeout:g}초 안에 응답하지 않았습니다")
        if isinstance(exc, aiohttp.ClientPayloadError):
            return ConnectorError("connection dropped mid-response", retryable=True,
                                  reason_ko="응답을 받는 중에 연결이 끊겼습니다")
        if isinstance(exc, _TooLarge):
            return ConnectorError(f"agency API response exceeds {MAX_RESPONSE_BYTES} bytes",
                                  reason_ko=f"기관 API 응답이 {MAX_RESPONSE_BYTES}바이트를 넘습니다")
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason, reason_ko = _os_reason(exc)
            return ConnectorError(f"cannot connect to agency API ({reason})", retryable=True,
                                  reason_ko=f"기관 API에 연결할 수 없습니다 ({reason_ko})")
        if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
            if phase == "body":
                return ConnectorError("connection dropped mid-response", retryable=True,
                                      reason_ko="응답을 받는 중에 연결이 끊겼습니다")
            return ConnectorError("agency API closed the connection without answering", retryable=True,
                                  reason_ko="기관 API가 응답 없이 연결을 닫았습니다")
        return ConnectorError(f"agency API request failed ({exc.__class__.__name__})", retryable=True,
                              reason_ko=f"기관 API 요청이 실패했습니다 ({exc.__class__.__name__})")

    def _parse(self, body: bytes, ctype: str) -> Any:
        wanted = "XML" if self.format == "xml" else "JSON"
        head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
        looks_xml, looks_json = head.startswith(b"<"), head.startswith((b"{", b"["))
        if head.startswith((b"<!doctype html", b"<html")) or (looks_xml and not head.startswith(b"<?xml")
                                                              and b"<html" in head) \
                or (ctype == "text/html" and not looks_json and not head.startswith(b"<?xml")):
            raise ConnectorError(f"agency API answered with HTML, not {wanted}",
                                 reason_ko=f"기관 API가 {wanted} 대신 HTML 화면(로그인·오류 안내 등)을 보냈습니다")
        failure: ConnectorError | None = None
        if looks_xml:
            try:
                return _xml_to_dict(SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True,
                                                      forbid_external=True))
            except defusedxml.DefusedXmlException:
                failure = ConnectorError("agency API sent XML with a DTD or entities (refused)",
                                         reason_ko="기관 API가 DTD나 엔티티가 든 XML을 보내 거부했습니다")
            except (ParseError, _TooDeep, RecursionError, ValueError):
                failure = ConnectorError("malformed XML from agency API",
                                         reason_ko="기관 API가 보낸 XML의 형식이 잘못되었습니다")
        elif looks_json:
            try:
                return json.loads(body)
            except (ValueError, RecursionError):
                failure = ConnectorError("malformed JSON from agency API",
                                         reason_ko="기관 API가 보낸 JSON의 형식이 잘못되었습니다")
        else:
            failure = ConnectorError(f"malformed {wanted} from agency API",
                                     reason_ko=f"기관 API가 보낸 {wanted}의 형식이 잘못되었습니다")
        raise failure

    def _status(self, doc: Any) -> str:
        if self.result_code_path is None:
            return "ok"
        code = _get(doc, self.result_code_path)
        if code is None:
            code = _get(doc, PORTAL_FAULT_CODE_PATH.split("."))
        if code is None or isinstance(code, (dict, list)):
            where = ".".join(self.result_code_path)
            raise ConnectorError(f"agency API response has no result code at {where}",
                                 reason_ko=f"기관 API 응답의 {where}에 결과 코드가 없습니다")
        code = str(code).strip()
        codes = self.result_codes
        if code in codes["ok"]:
            return "ok"
        if code in codes["no_data"]:
            return "no_data"
        shown = code if _CODE.fullmatch(code) else "(unreadable)"
        if code in codes["quota"]:
            raise ConnectorError(f"agency API quota exceeded (resultCode {shown})",
                                 reason_ko=f"기관 API 호출 한도를 넘었습니다 (resultCode {shown})")
        if code in codes["auth"]:
            raise ConnectorError(f"agency API rejected the service key (resultCode {shown})",
                                 reason_ko=f"기관 API가 서비스키를 거부했습니다 (resultCode {shown})")
        raise ConnectorError(f"agency API error resultCode {shown}", retryable=code in codes["retry"],
                             reason_ko=f"기관 API 오류 (resultCode {shown})")

    def _total(self, doc: Any) -> int | None:
        if self.total_count_path is None:
            return None
        total = _get(doc, self.total_count_path)
        if total is None or total == "":
            return None
        text = str(total).strip()
        if not text.isdigit():
            where = ".".join(self.total_count_path)
            raise ConnectorError(f"agency API gave a non-numeric {where}",
                                 reason_ko=f"기관 API의 {where} 값이 숫자가 아닙니다")
        return int(text)


# ---------------------------------------------------------------- helpers
class _TooLarge(Exception):
    pass


class _TooDeep(Exception):
    pass


async def _read_limited(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None:
        if resp.content_length > MAX_RESPONSE_BYTES:
            raise _TooLarge()
        return await resp.read()  # the parser stops at Content-Length: bounded
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _os_reason(exc: aiohttp.ClientConnectorError) -> tuple[str, str]:
    if isinstance(exc, getattr(aiohttp, "ClientConnectorDNSError", ())):
        return "host name not found", "호스트 이름을 찾을 수 없음"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused", "연결 거부"
    return exc.os_error.__class__.__name__, exc.os_error.__class__.__name__


def _first_failure(group: BaseExceptionGroup) -> BaseException:
    """The ConnectorError to report for a fetch whose keys failed (the first one), else the first error."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            walk(e) if isinstance(e, BaseExceptionGroup) else leaves.append(e)

    walk(group)
    for e in leaves:
        if isinstance(e, ConnectorError):
            e.__context__ = None
            return e
    return leaves[0]


def _xml_to_dict(root: Element) -> dict[str, Any]:
    """The JSON shape of an XML document: elements with children become objects (a repeated child a list),
    leaves their text ("" when empty). Namespaces and attributes are dropped."""

    def conv(el: Element, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _TooDeep()
        if len(el) == 0:
            return el.text or ""
        out: dict[str, Any] = {}
        for child in el:
            name, value = _local(child.tag), conv(child, depth + 1)
            if name not in out:
                out[name] = value
            elif isinstance(out[name], list):  # conv never returns a list: this one is of repeated elements
                out[name].append(value)
            else:
                out[name] = [out[name], value]
        return out

    return {_local(root.tag): conv(root, 0)}


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else str(tag)


def _get(doc: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _items_at(doc: Any, path: Sequence[str] | None) -> list[dict[str, Any]] | None:
    """The items at `path` (a list, or one object for one item); [] for "", None when the path is absent.

    `path` None: the document itself is the item (an object) or the items (a list), as plain JSON APIs answer."""
    found = doc if path is None else _get(doc, path)
    if found is None:
        return None
    if found == "":
        return []
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
        where = ".".join(path or ("(document)",))
        raise ConnectorError(f"agency API items at {where} are not objects",
                             reason_ko=f"기관 API의 {where} 항목이 객체가 아닙니다")
    return found


def _flatten(item: Any, prefix: str, out: dict[str, str]) -> None:
    for name, value in item.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            _flatten(value, path + ".", out)
        else:
            kind = ("string" if isinstance(value, str) else "boolean" if isinstance(value, bool)
                    else ("integer" if abs(value) < 2 ** 53 else "integer (beyond 53 bits)") if isinstance(value, int)
                    else "number" if isinstance(value, float)
                    else "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null")
            if out.get(path, "null") == "null":
                out[path] = kind

