"""A loopback TCP proxy that a test controls, to fault a database connection mid-run.

    async with TcpProxy("127.0.0.1", 5432) as proxy:   # listens on 127.0.0.1:proxy.port
        ...
        proxy.cut()       # every open connection is closed; new ones are accepted, then closed at once
        proxy.restore()   # new connections are forwarded again
        proxy.hold()      # nothing moves either way (connections stay open, new ones are accepted and held);
        proxy.release()   # ... then what was held is delivered, even for a client that has gone since
        proxy.drop_reply((b"COMMIT;",))  # the next message a client sends holding one of these bytes goes
                                         # through; the server's answer to it is dropped and that link cut
        await proxy.replies_dropped.wait_for(1)

asyncio streams only; bounded (a cap on simultaneous connections, fixed-size reads, a cap on what is held);
on exit every connection and task it made is closed.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

HOLD_LIMIT = 1 << 20  # bytes held per direction of a link; beyond it the proxy stops reading (back-pressure)


class Counter:
    """A count a test can wait on (with a bound), instead of sleeping."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Event()

    def add(self) -> None:
        self.value += 1
        self._changed.set()

    async def wait_for(self, value: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while self.value < value:
                self._changed.clear()
                await self._changed.wait()


class _Link:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client, self.upstream = client, upstream
        self.doomed = False  # the server's next bytes are dropped and the link cut (drop_reply)

    def abort(self) -> None:
        self.client.transport.abort()
        self.upstream.transport.abort()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, max_connections: int = 32,
                 connect_timeout: float = 5.0, chunk_size: int = 65536) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.chunk_size = chunk_size
        self.port = 0
        self.accepted = 0  # connections accepted since start (forwarded or refused)
        self.refused = 0  # connections closed at once (cut, or over max_connections)
        self.replies_dropped = Counter()  # server answers dropped by drop_reply
        self._cut = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._markers: tuple[bytes, ...] = ()
        self._drops_left = 0
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def __aenter__(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        self._cut = True
        self._flowing.set()
        self._close_links()
        if self._tasks:  # aborted links end their pumps on the next loop turns
            _, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        """Close every open connection now, and close new ones as soon as they are accepted."""
        self._cut = True
        self._close_links()

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut = False

    def hold(self) -> None:
        """Forward nothing, either way, until release(); read and keep what comes (up to HOLD_LIMIT)."""
        self._flowing.clear()

    def release(self) -> None:
        """Deliver what was held, in order (also to the server of a client that has gone), and flow again."""
        self._flowing.set()

    def drop_reply(self, markers: tuple[bytes, ...], times: int = 1) -> None:
        """The next `times` times a client sends bytes holding one of `markers`: forward them, then drop the
        server's answer and cut that connection (the server did the work; the client never hears of it)."""
        self._markers, self._drops_left = markers, times

    def _close_links(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        try:
            if self._cut or len(self._links) >= self.max_connections:
                self.refused += 1
                client_w.transport.abort()
                return
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), self.connect_timeout)
            except (OSError, asyncio.TimeoutError):
                client_w.transport.abort()
                return
            if self._cut:  # cut while we were connecting upstream
                client_w.transport.abort()
                up_w.transport.abort()
                return
            link = _Link(client_w, up_w)
            self._links.add(link)
            try:
                await asyncio.gather(self._direction(link, client_r, up_w, upstream=True),
                                     self._direction(link, up_r, client_w, upstream=False))
            finally:
                self._links.discard(link)
                link.abort()
        except asyncio.CancelledError:
            # only __aexit__ cancels a handler; ending quietly keeps asyncio's stream callback
            # (which calls task.exception()) from reporting the cancellation as an error
            client_w.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _direction(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                         upstream: bool) -> None:
        """One direction of a link: a reader that keeps what comes, a sender that forwards it while flowing.
        When the reader's side closes, what it read is still delivered, then the other side is closed."""
        queue: deque[bytes] = deque()
        more = asyncio.Event()
        room = asyncio.Event()
        room.set()
        ended = False

        async def read() -> None:
            nonlocal ended
            tail = b""
            try:
                while True:
                    await room.wait()
                    data = await reader.read(self.chunk_size)
                    if not data:
                        break
                    if upstream and self._drops_left and any(m in tail + data for m in self._markers):
                        self._drops_left -= 1
                        link.doomed = True
                    tail = data[-64:]
                    queue.append(data)
                    if sum(map(len, queue)) >= HOLD_LIMIT:
                        room.clear()
                    more.set()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                ended = True
                more.set()

        async def send() -> None:
            while True:
                await more.wait()
                await self._flowing.wait()
                while queue:
                    data = queue.popleft()
                    room.set()
                    if not upstream and link.doomed:  # the answer to the marked message: dropped, link cut
                        link.abort()
                        self.replies_dropped.add()
                        return
                    writer.write(data)
                    await writer.drain()
                more.clear()
                if ended and not queue:
                    return

        reading = asyncio.ensure_future(read())
        try:
            await send()
        except (OSError, ConnectionError):
            pass
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            if not writer.transport.is_closing():
                try:  # a graceful close: what was written still reaches the other side
                    writer.close()
                    await asyncio.wait_for(writer.wait_closed(), 2.0)
                except (OSError, ConnectionError, asyncio.TimeoutError):
                    writer.transport.abort()
