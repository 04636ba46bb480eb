"""The HTTP server `onescreen serve` runs: uvicorn on httptools, with bounds on what one client may hold.

Owns invariant 10 at the socket, before a request reaches the app: a request head (request line and headers)
of more than `max_header_bytes` is answered 431 once that many bytes came without the head ending; a head must
arrive within `header_timeout` of the connection opening or of its first byte (else 408 and closed); an idle
kept-alive connection closes after `keepalive_timeout`; beyond `max_connections` open connections a request is
answered 503; a connection whose response left before its request body ended is closed, not read on.

Why httptools and a subclass: llhttp (httptools) bounds nothing, neither header size nor time, and uvicorn's
HttpToolsProtocol only times idle kept-alive connections (a connection that sends nothing, or trickles its
head, is held for ever). h11 bounds an unfinished head (h11_max_incomplete_event_size) but answers 400 and has
no head timeout either, and its pure-Python parsing costs about 0.1 ms more CPU per request than httptools
(a typical 1 KB request parsed and answered: about 120 against 5 us), a fifth of an all-cached screen.
The subclass leans on HttpToolsProtocol's internals (its parser callbacks, `cycle`, `pipeline`): setup.cfg
keeps uvicorn to the versions tested.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("onescreen.server")


@dataclass(frozen=True)
class HeadBounds:
    max_bytes: int  # ONESCREEN_MAX_HEADER_BYTES
    timeout: float  # ONESCREEN_HEADER_TIMEOUT


def uvicorn_options(settings: "Settings") -> dict[str, Any]:
    """uvicorn.run() keyword arguments that apply the settings' bounds (the same for one process and for
    `--workers N`, whose workers are spawned: the protocol factory must pickle, hence a partial)."""
    bounds = HeadBounds(settings.max_header_bytes, settings.header_timeout)
    return {
        "http": functools.partial(BoundedHttpToolsProtocol, bounds=bounds),
        "timeout_keep_alive": settings.keepalive_timeout,
        # uvicorn answers 503 when `connections >= limit_concurrency`, counting the one asking: +1 serves N
        "limit_concurrency": settings.max_connections + 1,
    }


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a bound on the size of a request head and on the time it takes."""

    def __init__(self, *args: Any, bounds: HeadBounds, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounds = bounds
        self.head_bytes: int | None = 0  # bytes of the request head read so far; None while a body is read
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_bytes is None:  # a body: the app bounds its size and the time it waits for it
            super().data_received(data)
            return
        if self.head_timer is None and not self._busy():
            self._start_head_timer()  # the first byte of the next request on a kept-alive connection
        room = max(0, self.bounds.max_bytes - self.head_bytes)
        if len(data) <= room:
            self.head_bytes += len(data)
            super().data_received(data)
            return
        # The parser gets no more of the head than the bound: if the head does not end within it, 431.
        view = memoryview(data)
        self.head_bytes = self.bounds.max_bytes
        super().data_received(view[:room])
        if self.transport.is_closing():
            return
        if self.head_bytes == self.bounds.max_bytes:  # still the same head (it ends: None, or 0 after a body)
            log.warning("request head too large: answered 431 and closed",
                        extra={"reason": f"over ONESCREEN_MAX_HEADER_BYTES={self.bounds.max_bytes}"})
            self._refuse(431, b"Request Header Fields Too Large")
        else:
            self.data_received(view[room:])  # the body, or the next request's head, counted afresh

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self.head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_bytes = 0

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body and not self.pipeline:
            # answered before its body was all read (401, 413, ...): the rest of it would be read with no bound
            self.transport.close()
        super().on_response_complete()

    def _busy(self) -> bool:
        """Whether a response is still being made (the head timer then waits: the app's time is not the client's)."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self.head_timer = self.loop.call_later(self.bounds.timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if not self.head_bytes:  # nothing sent: closed like an idle kept-alive connection
            self.transport.close()
            return
        log.warning("request head not received in time: answered 408 and closed",
                    extra={"reason": f"over ONESCREEN_HEADER_TIMEOUT={self.bounds.timeout:g}s"})
        self._refuse(408, b"Request Timeout")

    def _refuse(self, status: int, text: bytes) -> None:
        """Answer `status` on the connection itself (no request reached the app) and close it."""
        head = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
                b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(text)]
        self.transport.write(b"".join(head) + text)
        self.transport.close()
