"""Collects the subject reads of one request and resolves them together.

Owns invariant 3 across a request's root fields: every root field (aliases, several subjects) starts in
the same loop tick and names its read before dispatch, so each ledger is read once per stage for all of
them. A request refused meanwhile (one subject too many) reads nothing.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from .errors import OneScreenError
from .gateway import Gateway
from .screen import FieldResult, SubjectRequest, resolve


class Batcher:
    """Dispatch waits until a loop tick passes with no new read, so every root field of the operation
    (they start together) joins the same batch."""

    def __init__(self, gateway: Gateway, refused: Callable[[], OneScreenError | None]) -> None:
        self.gateway = gateway
        self.refused = refused  # the request's refusal, if any, when the batch is dispatched
        self.pending: list[tuple[SubjectRequest, asyncio.Future]] = []
        self.scheduled = False
        self.fresh = False

    def load(self, request: SubjectRequest) -> "asyncio.Future[dict[str, FieldResult]]":
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((request, future))
        self.fresh = True
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._settle)
        return future

    def _settle(self) -> None:
        if self.fresh:
            self.fresh = False
            asyncio.get_running_loop().call_soon(self._settle)
            return
        self.scheduled = False
        batch, self.pending = self.pending, []
        asyncio.ensure_future(self._dispatch(batch))

    async def _dispatch(self, batch: list[tuple[SubjectRequest, asyncio.Future]]) -> None:
        refused = self.refused()
        if refused is not None:  # a root field named one subject too many: nothing of the request is read
            for _, future in batch:
                if not future.done():
                    future.set_exception(refused)
            return
        try:
            results = await resolve([r for r, _ in batch], self.gateway)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else OneScreenError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)
