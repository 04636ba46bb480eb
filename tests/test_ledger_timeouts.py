"""A ledger that stops answering costs a screen its timeout, never more: SQL included (connect, pool checkout,
query, fetch), measured on the real PostgreSQL behind a loopback proxy that holds its traffic."""
from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.engine import make_url

from conftest import Api
from sqlservers import pg_demo_url  # noqa: F401  (fixture)
from tcpproxy import TcpProxy
from test_screen import SCREEN, citizens, fields_of

TIMEOUT = 1.0  # the vehicle ledger's timeout in this test
MARGIN = 0.25  # what a screen may take beyond it


def vehicle_behind(proxy: TcpProxy, make_app, catalog_copy, pg_demo_url: str, *settings: str):
    """The demo app with its vehicle ledger read from PostgreSQL through `proxy`, with these ledger `settings`
    (catalog lines, e.g. "timeout: 1") added to it."""
    path = catalog_copy / "field_catalog.yaml"
    text = path.read_text(encoding="utf-8")
    block = "connector: {kind: sql, dsn_env: ONESCREEN_DSN_MOLIT_VEHICLE"
    assert text.count(block) == 1
    path.write_text(text.replace(block, "".join(f"{line}\n    " for line in settings) + block, 1), encoding="utf-8")
    dsn = make_url(pg_demo_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return make_app(ONESCREEN_CATALOG=str(path), ONESCREEN_POLICIES=str(catalog_copy / "policies"),
                    ONESCREEN_DSN_MOLIT_VEHICLE=dsn)


async def test_a_held_postgresql_ledger_ends_every_screen_within_its_timeout_and_a_margin(
        pg_demo_url, make_app, catalog_copy, data_dir):  # noqa: F811
    """A PostgreSQL ledger whose traffic is held (a blackholed network: connections open, nothing answers)
    gave screens of 3.96-5.03 s with a 3 s timeout: the read was cancelled on time, but the cancelled
    SQLAlchemy/asyncpg connection then waited on the dead socket while it cleaned up. Counted over screens
    that meet a held pooled connection (query and pre-ping) and screens that must open a new one (connect):
    none may exceed timeout + 250 ms, and each says the vehicle ledger gave no answer in time while the
    other ledgers' fields are served."""
    rrns = citizens(data_dir, 30)
    pg = make_url(pg_demo_url)
    async with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        app = vehicle_behind(proxy, make_app, catalog_copy, pg_demo_url, f"timeout: {TIMEOUT}")
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://onescreen.test", timeout=30) as client:
                api = Api(client, data_dir, app)

                async def screen(rrn: str, case: str) -> tuple[float, dict]:
                    started = time.monotonic()
                    status, body = await api.gql("choi.chaeryang", SCREEN,
                                                 {"t": "vehicle_transfer", "s": rrn, "c": case})
                    assert status == 200, body
                    return time.monotonic() - started, fields_of(body["data"]["screen"])

                _, warm = await screen(rrns[0], "2026-차량-0001")  # the pool now holds an open connection
                assert warm["citizen.vehicles"]["status"] in ("OK", "EMPTY"), warm["citizen.vehicles"]

                proxy.hold()
                took: list[float] = []
                # one screen alone meets the pooled connection (pre-ping, query); the waves after it make new
                # connections (connect) while the held ones are still being given up. Small waves: what is
                # measured is the wait for the ledger, not a shared 2-core machine's queue of screens
                waves = [rrns[1:2]] + [rrns[i:i + 4] for i in range(2, 30, 4)]
                for n, wave in enumerate(waves):
                    done = await asyncio.gather(*(screen(r, f"2026-차량-{n:04d}") for r in wave))
                    for seconds, fields in done:
                        took.append(seconds)
                        vehicles = fields["citizen.vehicles"]
                        assert vehicles["status"] == "UNAVAILABLE", vehicles
                        assert fields["citizen.name"]["status"] == "OK", fields["citizen.name"]
                late = [round(s, 2) for s in took if s > TIMEOUT + MARGIN]
                assert not late, f"{len(late)} of {len(took)} screens took longer than {TIMEOUT + MARGIN} s: {late}"
        finally:
            proxy.release()
            await app.state.runtime.close()


async def test_an_sql_ledger_raised_to_more_reads_at_once_gets_as_many_connections(
        pg_demo_url, make_app, catalog_copy, data_dir):  # noqa: F811
    """A ledger's max_concurrency lets that many reads be in flight; its SQL pool held 10 connections whatever it
    said, so reads beyond the tenth waited for a connection (until their timeout, when the ledger was slow).
    Counted on the wire: with the ledger's traffic held, 14 screens open 14 connections to it."""
    wanted = 14
    rrns = citizens(data_dir, wanted + 1)
    pg = make_url(pg_demo_url)
    async with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        app = vehicle_behind(proxy, make_app, catalog_copy, pg_demo_url, "timeout: 10",
                             f"max_concurrency: {wanted}")
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://onescreen.test", timeout=30) as client:
                api = Api(client, data_dir, app)

                async def screen(rrn: str, case: str) -> dict:
                    status, body = await api.gql("choi.chaeryang", SCREEN,
                                                 {"t": "vehicle_transfer", "s": rrn, "c": case})
                    assert status == 200, body
                    return fields_of(body["data"]["screen"])

                assert (await screen(rrns[0], "2026-차량-0100"))["citizen.vehicles"]["status"] != "UNAVAILABLE"
                proxy.hold()
                screens = [asyncio.ensure_future(screen(r, f"2026-차량-{101 + i}")) for i, r in enumerate(rrns[1:])]
                try:
                    async with asyncio.timeout(8):
                        while proxy.open_connections < wanted:
                            await asyncio.sleep(0.02)
                except TimeoutError:
                    for s in screens:
                        s.cancel()
                    await asyncio.gather(*screens, return_exceptions=True)
                    raise AssertionError(f"{proxy.open_connections} connections for {wanted} reads in flight")
                finally:
                    proxy.release()
                for fields in await asyncio.gather(*screens):  # once released, every read got its answer
                    assert fields["citizen.vehicles"]["status"] != "UNAVAILABLE", fields["citizen.vehicles"]
                assert proxy.open_connections == wanted  # and no more than it allows
        finally:
            proxy.release()
            await app.state.runtime.close()
