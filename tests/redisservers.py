"""Redis for tests of the shared counters: the machine's server (keys under a prefix of their own, removed after)
or a private `redis-server` on a free port that a test may kill.

Missing, the test skips with the reason (fails under ONESCREEN_REQUIRE_SERVICES=1, as conftest.need_service).
Server: ONESCREEN_TEST_REDIS_URL, default the project machines' (redis://127.0.0.1:6379/0).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

from conftest import free_port, need_service

REDIS_URL = os.environ.get("ONESCREEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available(url: str = REDIS_URL) -> bool:
    import redis
    try:
        with contextlib.closing(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)) as r:
            return bool(r.ping())
    except (redis.RedisError, OSError):
        return False


@contextlib.contextmanager
def shared_redis() -> Iterator[dict[str, str]]:
    """The settings of the shared counters on the machine's Redis, under a key prefix of their own."""
    need_service(redis_available(), f"Redis is not reachable at {REDIS_URL}")
    prefix = f"onescreen-test-{os.getpid()}-{uuid.uuid4().hex[:8]}:"
    try:
        yield {"ONESCREEN_REDIS_URL": REDIS_URL, "ONESCREEN_REDIS_PREFIX": prefix}
    finally:
        import redis
        with contextlib.closing(redis.Redis.from_url(REDIS_URL, socket_timeout=5)) as r:
            keys = list(r.scan_iter(match=prefix + "*", count=1000))
            if keys:
                r.delete(*keys)


class PrivateRedis:
    """A `redis-server` of the test's own on a free loopback port (no persistence); `kill()` makes it unreachable."""

    def __init__(self, directory: Path) -> None:
        exe = shutil.which("redis-server")
        need_service(exe is not None, "redis-server is not installed (Debian package redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(directory)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not redis_available(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def command_calls(self, command: str) -> int:
        """How many times the server ran `command` (INFO commandstats), e.g. 'evalsha'."""
        import redis
        with contextlib.closing(redis.Redis.from_url(self.url, socket_timeout=2)) as r:
            return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    def reset_stats(self) -> None:
        import redis
        with contextlib.closing(redis.Redis.from_url(self.url, socket_timeout=2)) as r:
            r.config_resetstat()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class SilentServer:
    """A loopback port that accepts connections and never answers (a hung Redis): every call waits its bound.
    `connections` counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self.held)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
