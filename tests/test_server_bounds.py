"""Invariant 10 at the socket: `onescreen serve` bounds what one client may hold, over raw connections.

A huge request head is refused (431) without being read in full; a head (or body) that never ends is cut
within its timeout; idle connections close; beyond the connection cap requests are refused (503). Each
test waits on the socket with a bound and asserts what happened, never how long it took.
"""
from __future__ import annotations

import http.client
import select
import socket
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import serve
from test_catalog import run_cli

WAIT = 30  # seconds any one socket operation may take before the test gives up on it


def connect(base: str) -> socket.socket:
    url = urlsplit(base)
    return socket.create_connection((url.hostname, url.port), timeout=WAIT)


def response(sock: socket.socket) -> http.client.HTTPResponse:
    """The next response on `sock`, read whole (its body in `.body`)."""
    r = http.client.HTTPResponse(sock)
    r.begin()
    r.body = r.read()
    return r


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (waits for it at most WAIT seconds)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def rest(sock: socket.socket) -> bytes:
    """Whatever the server still sends before it closes the connection (at most WAIT seconds of waiting)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def request(path: str = "/healthz", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: onescreen.test\r\n" + extra + b"\r\n"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_oversized_request_head_is_refused_without_being_read(data_dir: Path, tmp_path: Path, workers: str):
    """A 64 MB Authorization header was read in full (4-7 s) before its 401. Now a head over
    ONESCREEN_MAX_HEADER_BYTES is answered 431 and the connection closed once that many bytes came, with one
    worker or several: the client cannot even hand over a quarter of it."""
    with serve(data_dir, tmp_path / "server.log", "--workers", workers, ONESCREEN_MAX_HEADER_BYTES="16384") as base:
        with closing(connect(base)) as sock:  # a large head under the bound is served as usual
            sock.sendall(request("/graphql", b"Authorization: Bearer " + b"x" * 12_000 + b"\r\n"))
            assert response(sock).status == 405
        with closing(connect(base)) as sock:  # just over the bound, in one piece: 431, then closed
            sock.sendall(request("/healthz", b"X-Filler: " + b"x" * 20_000 + b"\r\n"))
            r = response(sock)
            assert r.status == 431 and r.getheader("connection") == "close"
            assert closed(sock)
        with closing(connect(base)) as sock:  # 64 MB, streamed: the server stops reading long before the end
            sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: onescreen.test\r\nAuthorization: Bearer ")
            chunk, total, sent = b"x" * 65536, 64 * 1024 * 1024, 0
            try:
                while sent < total:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (ConnectionResetError, BrokenPipeError):
                pass
            assert sent < total // 4, f"the server took {sent} bytes of a 64 MB header"
            answer = rest(sock)  # the 431, unless the reset of the unread rest overtook it: closed either way
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert "request head too large" in (tmp_path / "server.log").read_text()


def test_a_request_that_never_finishes_is_cut_within_its_timeout(data_dir: Path, tmp_path: Path):
    """300 connections trickling headers were held for 60 s. Now a head that does not end within
    ONESCREEN_HEADER_TIMEOUT (trickled, or never sent at all) is closed, and so is a body that does not arrive
    within ONESCREEN_BODY_TIMEOUT; an idle kept-alive connection closes after ONESCREEN_KEEPALIVE_TIMEOUT."""
    with serve(data_dir, tmp_path / "server.log", ONESCREEN_HEADER_TIMEOUT="1", ONESCREEN_BODY_TIMEOUT="1",
               ONESCREEN_KEEPALIVE_TIMEOUT="1") as base:
        with closing(connect(base)) as trickler:  # one header byte at a time, never the blank line
            trickler.sendall(b"POST /graphql HTTP/1.1\r\nHost: onescreen.test\r\nX-Slow: ")
            cut = False
            for _ in range(200):  # a byte each time the server stays silent for 0.2 s (bounded: 40 s)
                if select.select([trickler], [], [], 0.2)[0]:
                    cut = True
                    break
                try:
                    trickler.sendall(b"x")
                except (ConnectionResetError, BrokenPipeError):
                    cut = True
                    break
            assert cut, "a trickled head was never cut"
            r = response(trickler)
            assert r.status == 408 and closed(trickler)
        with closing(connect(base)) as silent:  # connects and sends nothing
            assert closed(silent)
        token = run_cli("token", "--user", "jung.jutaek", env_extra={"ONESCREEN_DATA_DIR": str(data_dir)}).stdout
        half = (b"POST /graphql HTTP/1.1\r\nHost: onescreen.test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n%s\r\n{\"query\": ")
        with closing(connect(base)) as slow_body:  # a whole head, then half the body it announced
            slow_body.sendall(half % (b"Authorization: Bearer " + token.strip().encode() + b"\r\n"))
            r = response(slow_body)
            assert r.status == 408 and b"BODY_TIMEOUT" in r.body
            assert closed(slow_body)
        with closing(connect(base)) as early:  # answered (401) before its body ended: closed, the rest unread
            early.sendall(half % b"")
            assert response(early).status == 401
            assert closed(early)
        with closing(connect(base)) as idle:  # one request, then nothing: closed after the keep-alive timeout
            idle.sendall(request())
            assert response(idle).status == 200
            assert closed(idle)


def test_the_connection_cap_refuses_requests_beyond_it(data_dir: Path, tmp_path: Path):
    """Beyond ONESCREEN_MAX_CONNECTIONS open connections, a request is answered 503 (and its connection
    closed); once a connection goes, a new one is served again."""
    with serve(data_dir, tmp_path / "server.log", ONESCREEN_MAX_CONNECTIONS="3", ONESCREEN_KEEPALIVE_TIMEOUT="60",
               ONESCREEN_HEADER_TIMEOUT="60") as base:
        held = [connect(base) for _ in range(3)]
        try:
            for sock in held:  # each served once and kept open
                sock.sendall(request())
                assert response(sock).status == 200
            with closing(connect(base)) as extra:
                extra.sendall(request())
                assert response(extra).status == 503
                assert closed(extra)
            held.pop().close()
            for _ in range(100):  # the server notices the close on its own time: ask again, a bounded number of times
                with closing(connect(base)) as again:
                    again.sendall(request())
                    status = response(again).status
                if status == 200:
                    break
                select.select([], [], [], 0.1)
            assert status == 200
            for sock in held:  # the connections under the cap were never disturbed
                sock.sendall(request())
                assert response(sock).status == 200
        finally:
            for sock in held:
                sock.close()


@pytest.mark.parametrize("name", ["ONESCREEN_MAX_HEADER_BYTES", "ONESCREEN_HEADER_TIMEOUT", "ONESCREEN_BODY_TIMEOUT",
                                  "ONESCREEN_KEEPALIVE_TIMEOUT", "ONESCREEN_MAX_CONNECTIONS"])
@pytest.mark.parametrize("value", ["0", "-1", "many", "nan"])
def test_a_bound_cannot_be_turned_off(name, value):
    """Every wait and every size has a bound: zero, negative or unreadable values refuse the start, by name."""
    from oneScreen.settings import load

    with pytest.raises(ValueError, match=name):
        load({name: value})
