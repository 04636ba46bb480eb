"""A loopback TCP proxy that a test controls, to cut and restore a database connection mid-run.

    async with TcpProxy("127.0.0.1", 5432) as proxy:   # listens on 127.0.0.1:proxy.port
        ...
        proxy.cut()       # every open connection is closed; new ones are accepted, then closed at once
        proxy.restore()   # new connections are forwarded again

asyncio streams only; bounded (a cap on simultaneous connections, fixed-size reads with
back-pressure); on exit every connection and task it made is closed.
"""
from __future__ import annotations

import asyncio
from typing import Any


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
        self._cut = False
        self._server: asyncio.base_events.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
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

    def _close_links(self) -> None:
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
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
            link = (client_w, up_w)
            self._links.add(link)
            try:
                await asyncio.gather(self._pump(client_r, up_w), self._pump(up_r, client_w))
            finally:
                self._links.discard(link)
                client_w.transport.abort()
                up_w.transport.abort()
        except asyncio.CancelledError:
            # only __aexit__ cancels a handler; ending quietly keeps asyncio's stream callback
            # (which calls task.exception()) from reporting the cancellation as an error
            client_w.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(self.chunk_size):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()  # one side gone: the other goes too
